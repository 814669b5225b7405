"""Framing on the wire: no byte reaches an upstream that cutoff has not
validated (SPEC sections 2, 6 and 9).

Every test here looks at raw bytes: what a RawScriptServer (fakenet) received
on each of its connections, byte for byte, and what the client got. The
upstream answers from a script, so a response can be anything, malformed
included.

- Request smuggling through `Connection: Content-Length` and `Connection:
  Transfer-Encoding`: the upstream gets exactly one request whose body is the
  smuggled bytes, and a second, unrelated client on the reused upstream
  connection gets the answer to its own request.
- Responses framed by a Connection-named field, refused response framings
  (502, upstream reset, never reused), 1xx/204/304/HEAD framing fields,
  103 Early Hints, chunk extensions, errors in a chunked body after the head
  (client RST).
- Requests refused before any upstream byte (head errors: not even a
  connection), errors found in a chunked request body (the upstream got the
  head and the valid prefix, then RST, and is never reused), fragments,
  HTTP/1.0 with Transfer-Encoding.
- Two differential tables, REQUEST_ROWS and RESPONSE_ROWS: malformed and
  ambiguous messages (smuggling corpora and valid look-alikes), each row
  stating the client's outcome and exactly what may reach the upstream.

Each row is followed by a "sentinel" request to the same upstream, which
shows where it lands: on the pooled connection (the row left it clean), or
on a new one (the row's connection was torn down, or never opened). Its
bytes are the barrier that makes "nothing else arrived" checkable without
a sleep.
"""

import threading

from harness import SCALE, CutoffTestCase, build_request, time_limit

# -- wire helpers --------------------------------------------------------------
# Rows are written with "{P}" for the upstream's port, filled in per row.


def wire(data: bytes, port: int) -> bytes:
    return data.replace(b"{P}", str(port).encode())


def lines(*hs) -> bytes:
    return b"".join(h + b"\r\n" for h in hs)


def rq(*hs, body=b"", method=b"POST", path=b"/t", version=b"HTTP/1.1", host=b"127.0.0.1:{P}"):
    """A client request in absolute form to the row's upstream; `hs` are raw
    header lines (no CRLF) after a Host line."""
    return (method + b" http://" + host + path + b" " + version + b"\r\n"
            + b"Host: 127.0.0.1:{P}\r\n" + lines(*hs) + b"\r\n" + body)


def fw(*hs, body=b"", method=b"POST", path=b"/t") -> bytes:
    """What cutoff must forward: origin form, HTTP/1.1, Host from the URL
    first, the end-to-end fields in order (framing written by cutoff at the
    place of the client's framing field), Via last."""
    return (method + b" " + path + b" HTTP/1.1\r\nHost: 127.0.0.1:{P}\r\n" + lines(*hs)
            + b"Via: 1.1 cutoff\r\n\r\n" + body)


def chunked(*chunks, trailer=b"") -> bytes:
    return (b"".join(b"%x\r\n" % len(c) + c + b"\r\n" for c in chunks)
            + b"0\r\n" + trailer + b"\r\n")


OK_RESP = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
OK_CLIENT = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nVia: 1.1 cutoff\r\n\r\nok"
SENT_RESP = b"HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nsentinel"
SENT_CLIENT = b"HTTP/1.1 200 OK\r\nContent-Length: 8\r\nVia: 1.1 cutoff\r\n\r\nsentinel"
SENT_FWD = b"GET /sentinel HTTP/1.1\r\nHost: 127.0.0.1:{P}\r\nVia: 1.1 cutoff\r\n\r\n"


def sentinel_request(port: int) -> bytes:
    return build_request("GET", f"http://127.0.0.1:{port}/sentinel")


def ok_or_sentinel(req) -> bytes:
    return SENT_RESP if req.target == "/sentinel" else OK_RESP


def answer(req) -> bytes:
    """An upstream answer naming the request it parsed."""
    body = f"answer to {req.method} {req.target}".encode()
    return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body


# -- the request table ---------------------------------------------------------


class Fwd(bytes):
    """The upstream receives exactly these bytes, and the connection stays
    clean (the sentinel reuses it)."""


class Rst:
    """The upstream receives exactly `must` (the head and the valid body
    prefix), possibly followed by a prefix of `may` (bytes before the point
    where the parser found the error), then RST; it is never reused."""

    def __init__(self, must: bytes, may: bytes = b""):
        self.must, self.may = must, may


NOTHING = None  # no upstream connection at all


class Req:
    def __init__(self, name, send, status, up, client=OK_CLIENT, method="POST"):
        self.name, self.status, self.up, self.client, self.method = name, status, up, client, method
        self.send = send if isinstance(send, tuple) else (send,)


def bad(name, send):
    return Req(name, send, 400, NOTHING)


def denied(name, send):
    return Req(name, send, 403, NOTHING)


def ok(name, send, forwarded, method="POST"):
    return Req(name, send, 200, Fwd(forwarded), method=method)


def body_error(name, head_lines, good, bad_part, may=b""):
    """A chunked request whose body goes wrong at `bad_part`: `good` is sent
    (and must be forwarded) first, then `bad_part`."""
    return Req(name, (rq(*head_lines, body=good), bad_part), 400,
               Rst(fw(b"Transfer-Encoding: chunked", body=good), may))


TE = b"Transfer-Encoding: chunked"
CL5 = b"Content-Length: 5"
SMUGGLED = b"GET /admin/secret HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"  # 47 bytes
CONN33 = b"Connection: " + b", ".join(b"o%d" % i for i in range(33))
CONN32 = b"Connection: " + b", ".join(b"o%d" % i for i in range(32))
BODY = chunked(b"hello")

REQUEST_ROWS = [
    # CL.TE, TE.CL: both fields, in either order, whatever the values.
    bad("CL.TE classic", rq(b"Content-Length: 6", TE, body=b"0\r\n\r\nG")),
    bad("TE.CL classic",
        rq(TE, b"Content-Length: 4", body=b"5c\r\nGPOST / HTTP/1.1\r\n\r\n0\r\n\r\n")),
    bad("CL.TE with CL 0", rq(b"Content-Length: 0", TE, body=BODY)),
    bad("CL.TE smuggling a request", rq(b"Content-Length: 52", TE, body=b"0\r\n\r\n" + SMUGGLED)),
    # TE.TE obfuscations.
    bad("TE gzip", rq(b"Transfer-Encoding: gzip", body=b"hello")),
    bad("TE xchunked", rq(b"Transfer-Encoding: xchunked", body=BODY)),
    bad("TE chunked, chunked", rq(b"Transfer-Encoding: chunked, chunked", body=BODY)),
    bad("TE gzip, chunked", rq(b"Transfer-Encoding: gzip, chunked", body=BODY)),
    bad("TE identity", rq(b"Transfer-Encoding: identity", body=b"hello")),
    bad("TE chunk", rq(b"Transfer-Encoding: chunk", body=BODY)),
    bad("TE quoted", rq(b'Transfer-Encoding: "chunked"', body=BODY)),
    bad("TE chunked with a parameter", rq(b"Transfer-Encoding: chunked;q=1", body=BODY)),
    bad("TE chunked then a comma", rq(b"Transfer-Encoding: chunked,", body=BODY)),
    bad("TE comma then chunked", rq(b"Transfer-Encoding: ,chunked", body=BODY)),
    bad("TE empty", rq(b"Transfer-Encoding:", body=BODY)),
    bad("two TE fields", rq(TE, TE, body=BODY)),
    bad("TE chunked then Transfer-encoding: x", rq(TE, b"Transfer-encoding: x", body=BODY)),
    bad("TE x then chunked", rq(b"Transfer-Encoding: x", TE, body=BODY)),
    bad("space before the colon of TE", rq(b"Transfer-Encoding : chunked", body=BODY)),
    bad("TE folded onto the next line", rq(b"Transfer-Encoding:", b" chunked", body=BODY)),
    bad("TE with a bare CR", rq(b"Transfer-Encoding: chunked\rX: y", body=BODY)),
    bad("TE chunked in HTTP/1.0", rq(TE, body=BODY, version=b"HTTP/1.0")),
    bad("TE gzip in HTTP/1.0", rq(b"Transfer-Encoding: gzip", body=b"hello", version=b"HTTP/1.0")),
    ok("TE after a tab", rq(b"Transfer-Encoding:\tchunked", body=BODY), fw(TE, body=BODY)),
    ok("TE with trailing space", rq(b"Transfer-Encoding: chunked ", body=BODY), fw(TE, body=BODY)),
    ok("TE upper case", rq(b"Transfer-Encoding: CHUNKED", body=BODY), fw(TE, body=BODY)),
    ok("TE name in lower case", rq(b"transfer-encoding: chunked", body=BODY), fw(TE, body=BODY)),
    # CGI gateways read "_" as "-": an alias of a framing field is refused,
    # an alias of a hop-by-hop field dropped.
    bad("Transfer_Encoding, an alias of Transfer-Encoding", rq(b"Transfer_Encoding: chunked")),
    bad("Content_Length, an alias of Content-Length", rq(b"Content_Length: 5", body=b"hello")),
    ok("Keep_Alive is dropped as Keep-Alive is", rq(b"Keep_Alive: 5", b"X_Custom: 1"),
       fw(b"X_Custom: 1")),
    # Content-Length.
    bad("two equal CL", rq(CL5, CL5, body=b"hello")),
    bad("two different CL", rq(CL5, b"Content-Length: 6", body=b"hello!")),
    bad("CL 5, 5", rq(b"Content-Length: 5, 5", body=b"hello")),
    bad("CL 5,5", rq(b"Content-Length: 5,5", body=b"hello")),
    bad("CL +5", rq(b"Content-Length: +5", body=b"hello")),
    bad("CL -5", rq(b"Content-Length: -5", body=b"hello")),
    bad("CL 0x5", rq(b"Content-Length: 0x5", body=b"hello")),
    bad("CL 5 5", rq(b"Content-Length: 5 5", body=b"hello")),
    bad("CL empty", rq(b"Content-Length:", body=b"hello")),
    bad("CL overflows 64 bits", rq(b"Content-Length: 99999999999999999999999", body=b"hello")),
    bad("space before the colon of CL", rq(b"Content-Length : 5", body=b"hello")),
    bad("CL folded onto the next line", rq(b"Content-Length:", b" 5", body=b"hello")),
    ok("CL after a tab", rq(b"Content-Length:\t5", body=b"hello"), fw(CL5, body=b"hello")),
    ok("CL with leading zeros", rq(b"Content-Length: 005", body=b"hello"), fw(CL5, body=b"hello")),
    ok("CL with trailing space", rq(b"Content-Length: 5 ", body=b"hello"), fw(CL5, body=b"hello")),
    ok("CL name in lower case", rq(b"content-length: 5", body=b"hello"), fw(CL5, body=b"hello")),
    ok("CL 0", rq(b"Content-Length: 0"), fw(b"Content-Length: 0")),
    ok("CL framing keeps its place", rq(b"X-A: 1", CL5, b"X-B: 2", body=b"hello"),
       fw(b"X-A: 1", CL5, b"X-B: 2", body=b"hello")),
    # Connection naming framing, Host, or too much.
    ok("Connection: Content-Length", rq(b"Connection: Content-Length", b"Content-Length: 47",
                                        body=SMUGGLED), fw(b"Content-Length: 47", body=SMUGGLED)),
    ok("Connection: Transfer-Encoding", rq(b"Connection: Transfer-Encoding", TE, body=BODY),
       fw(TE, body=BODY)),
    ok("Connection names both framings", rq(b"Connection: content-length, transfer-encoding",
                                            CL5, body=b"hello"), fw(CL5, body=b"hello")),
    ok("Connection: Host", rq(b"Connection: Host", CL5, body=b"hello"), fw(CL5, body=b"hello")),
    ok("Connection names X-Hop", rq(b"Connection: X-Hop, keep-alive", b"X-Hop: 1", b"X-E2e: 2"),
       fw(b"X-E2e: 2")),
    ok("fixed hop-by-hop fields removed",
       rq(b"Keep-Alive: 5", b"TE: trailers", b"Trailer: X-T", b"Proxy-Connection: keep-alive",
          b"Proxy-Authorization: Basic eDp5", b"Proxy-Authenticate: x", b"Upgrade: h2c",
          b"X-E2e: 1"), fw(b"X-E2e: 1")),
    ok("Connection with 32 options", rq(CONN32, b"o7: x", b"X-E2e: 1"), fw(b"X-E2e: 1")),
    bad("Connection with 33 options", rq(CONN33)),
    # Line structure.
    bad("obs-fold with a space", rq(b"X-A: 1", b" 2")),
    bad("obs-fold with a tab", rq(b"X-A: 1", b"\t2")),
    bad("obs-fold on the first field",
        b"GET http://127.0.0.1:{P}/t HTTP/1.1\r\n Host: 127.0.0.1:{P}\r\n\r\n"),
    bad("bare LF line endings", b"GET http://127.0.0.1:{P}/t HTTP/1.1\nHost: 127.0.0.1:{P}\n\n"),
    bad("one field ends with bare LF", rq(b"X-A: 1\nX-B: 2")),
    bad("bare LF after the request line",
        b"GET http://127.0.0.1:{P}/t HTTP/1.1\nHost: 127.0.0.1:{P}\r\n\r\n"),
    bad("bare CR in a value", rq(b"X-A: 1\r2")),
    bad("bare CR as a line end", rq(b"X-A: 1\rX-B: 2")),
    bad("NUL in a value", rq(b"X-A: 1\x002")),
    bad("NUL in a name", rq(b"X-\x00A: 1")),
    bad("space before a colon", rq(b"X-A : 1")),
    bad("tab before a colon", rq(b"X-A\t: 1")),
    bad("a field without a colon", rq(b"X-A 1")),
    # CONNECT and Upgrade with a body.
    bad("CONNECT with Content-Length",
        b"CONNECT 127.0.0.1:{P} HTTP/1.1\r\nHost: 127.0.0.1:{P}\r\nContent-Length: 5\r\n\r\nhello"),
    bad("CONNECT with Transfer-Encoding",
        b"CONNECT 127.0.0.1:{P} HTTP/1.1\r\nHost: 127.0.0.1:{P}\r\n" + TE + b"\r\n\r\n" + BODY),
    bad("Upgrade with Content-Length",
        rq(b"Connection: upgrade", b"Upgrade: websocket", CL5, body=b"hello", method=b"GET")),
    bad("Upgrade with Transfer-Encoding",
        rq(b"Connection: upgrade", b"Upgrade: websocket", TE, body=BODY, method=b"GET")),
    # Hosts: canonical, or refused before anything is resolved.
    ok("host 127.1", rq(method=b"GET", host=b"127.1:{P}"), fw(method=b"GET")),
    ok("host 2130706433", rq(method=b"GET", host=b"2130706433:{P}"), fw(method=b"GET")),
    ok("host 0x7f000001", rq(method=b"GET", host=b"0x7f000001:{P}"), fw(method=b"GET")),
    ok("host 0177.0.0.1", rq(method=b"GET", host=b"0177.0.0.1:{P}"), fw(method=b"GET")),
    ok("host [::ffff:127.0.0.1]", rq(method=b"GET", host=b"[::ffff:127.0.0.1]:{P}"),
       fw(method=b"GET")),
    ok("host with a trailing dot", rq(method=b"GET", host=b"127.0.0.1.:{P}"), fw(method=b"GET")),
    bad("host 256.0.0.1", rq(method=b"GET", host=b"256.0.0.1:{P}")),
    bad("host 1.2.3.4.5", rq(method=b"GET", host=b"1.2.3.4.5:{P}")),
    bad("host a..b", rq(method=b"GET", host=b"a..b:{P}")),
    bad("host with user info", rq(method=b"GET", host=b"user@127.0.0.1:{P}")),
    bad("port 0", rq(method=b"GET", host=b"127.0.0.1:0")),
    bad("port 99999", rq(method=b"GET", host=b"127.0.0.1:99999")),
    bad("unclosed IPv6 bracket", rq(method=b"GET", host=b"[::1:{P}")),
    # Fragments never travel; paths travel as sent, routes see them normalised.
    ok("fragment", rq(method=b"GET", path=b"/p#frag"), fw(method=b"GET", path=b"/p")),
    ok("fragment after a query", rq(method=b"GET", path=b"/p?q=1#frag"),
       fw(method=b"GET", path=b"/p?q=1")),
    ok("fragment that looks like a path", rq(method=b"GET", path=b"/p#/admin/secret"),
       fw(method=b"GET", path=b"/p")),
    ok("query without a path", rq(method=b"GET", path=b"?x=1"), fw(method=b"GET", path=b"/?x=1")),
    denied("dot segments into /admin", rq(method=b"GET", path=b"/public/../admin/secret")),
    denied("escaped /admin", rq(method=b"GET", path=b"/%61dmin/secret")),
    denied("doubled slash /admin", rq(method=b"GET", path=b"//admin/secret")),
    ok("/ADMIN is another path", rq(method=b"GET", path=b"/ADMIN/secret"),
       fw(method=b"GET", path=b"/ADMIN/secret")),
    # Chunked bodies: extensions and trailers pass raw; errors reset the upstream.
    ok("chunk extensions a=b;c=d", rq(TE, body=b"5;a=b;c=d\r\nhello\r\n0\r\n\r\n"),
       fw(TE, body=b"5;a=b;c=d\r\nhello\r\n0\r\n\r\n")),
    ok("chunk extension after a space", rq(TE, body=b"5 ;foo\r\nhello\r\n0\r\n\r\n"),
       fw(TE, body=b"5 ;foo\r\nhello\r\n0\r\n\r\n")),
    ok("chunk extension with a space after ;", rq(TE, body=b"5; a\r\nhello\r\n0\r\n\r\n"),
       fw(TE, body=b"5; a\r\nhello\r\n0\r\n\r\n")),
    ok("quoted chunk extension", rq(TE, body=b'5;a="q;r";c\r\nhello\r\n0\r\n\r\n'),
       fw(TE, body=b'5;a="q;r";c\r\nhello\r\n0\r\n\r\n')),
    ok("extension on the last chunk", rq(TE, body=b"5\r\nhello\r\n0;end=1\r\n\r\n"),
       fw(TE, body=b"5\r\nhello\r\n0;end=1\r\n\r\n")),
    ok("chunk size in upper case with leading zeros",
       rq(TE, body=b"00A\r\n0123456789\r\n0\r\n\r\n"),
       fw(TE, body=b"00A\r\n0123456789\r\n0\r\n\r\n")),
    ok("OPTIONS with no path is OPTIONS *", rq(method=b"OPTIONS", path=b""),
       fw(method=b"OPTIONS", path=b"*"), method="OPTIONS"),
    ok("trailers", rq(TE, body=chunked(b"hello", trailer=b"X-T: 1\r\nX-U: 2\r\n")),
       fw(TE, body=chunked(b"hello", trailer=b"X-T: 1\r\nX-U: 2\r\n"))),
    body_error("chunk size zz", [TE], b"5\r\nhello\r\n", b"zz\r\nhello\r\n0\r\n\r\n"),
    body_error("chunk size -1", [TE], b"5\r\nhello\r\n", b"-1\r\nhello\r\n0\r\n\r\n"),
    body_error("chunk size 0x5", [TE], b"5\r\nhello\r\n", b"0x5\r\nhello\r\n0\r\n\r\n",
               may=b"0"),
    body_error("chunk size overflows 64 bits", [TE], b"5\r\nhello\r\n",
               b"10000000000000005\r\nhello\r\n0\r\n\r\n", may=b"1000000000000000"),
    body_error("garbage after the chunk size", [TE], b"5\r\nhello\r\n",
               b"5 garbage\r\nhello\r\n0\r\n\r\n", may=b"5 "),
    body_error("chunk data longer than its size", [TE], b"5\r\nhello\r\n",
               b"5\r\nhello!!\r\n0\r\n\r\n", may=b"5\r\nhello"),
    body_error("first chunk size empty", [TE], b"", b"\r\nhello\r\n0\r\n\r\n"),
    # Sizes a 32-bit next hop would read as a small chunk.
    body_error("a chunk of 2 GiB", [TE], b"5\r\nhello\r\n", b"80000000\r\nhello",
               may=b"80000000\r\n"),
    # Trailers may not frame, route or control the connection.
    body_error("Content-Length in the trailer section", [TE], b"5\r\nhello\r\n",
               b"0\r\nContent-Length: 5\r\n\r\n", may=b"0\r\nContent-Length: 5\r\n"),
    body_error("Connection in the trailer section", [TE], b"5\r\nhello\r\n",
               b"0\r\nConnection: close\r\n\r\n", may=b"0\r\nConnection: close\r\n"),
    body_error("Authorization in the trailer section", [TE], b"5\r\nhello\r\n",
               b"0\r\nAuthorization: Basic eA==\r\n\r\n",
               may=b"0\r\nAuthorization: Basic eA==\r\n"),
    body_error("obs-fold in the trailer section", [TE], b"5\r\nhello\r\n0\r\nX-T: 1\r\n",
               b" folded\r\n\r\n"),
    body_error("bare LF in the trailer section", [TE], b"5\r\nhello\r\n0\r\n",
               b"X-T: 1\nX-U: 2\r\n\r\n", may=b"X-T: 1"),
    body_error("space before a trailer colon", [TE], b"5\r\nhello\r\n0\r\n",
               b"X-T : 1\r\n\r\n", may=b"X-T"),
]


# -- the response table ----------------------------------------------------------


class Pass:
    """The client gets exactly `client`; `reuse`: the upstream connection is
    clean and serves the sentinel; `keep`: the client connection stays open
    for the sentinel (else it ends with FIN). `end`: how connection 0 ended,
    from the upstream's side, when it is not reused (None: any way)."""

    def __init__(self, name, resp, client, reuse=True, keep=True, method="GET", end="fin",
                 after=()):
        self.name, self.resp, self.client = name, resp, client
        self.reuse, self.keep, self.method, self.end, self.after = reuse, keep, method, end, after


class Bad:
    """502 http_protocol_error before any byte of a response; the upstream
    connection is reset and never reused."""

    def __init__(self, name, resp, method="GET"):
        self.name, self.resp, self.method = name, resp, method


class Abort:
    """The upstream sends `first` (the client gets exactly `client`), then
    `second`, which is wrong: the client connection is reset (it may still
    see a prefix of `may`), as is the upstream's; never reused."""

    def __init__(self, name, first, second, client, may=b"", method="GET"):
        self.name, self.first, self.second, self.client = name, first, second, client
        self.may, self.method = may, method


def h200(*hs, body=b"", status=b"200 OK", version=b"HTTP/1.1"):
    return version + b" " + status + b"\r\n" + lines(*hs) + b"\r\n" + body


def c200(*hs, body=b"", status=b"200 OK"):
    return b"HTTP/1.1 " + status + b"\r\n" + lines(*hs) + b"Via: 1.1 cutoff\r\n\r\n" + body


CHUNKED_BODY = b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
CLOSE = b"Connection: close"

RESPONSE_ROWS = [
    Pass("Content-Length", h200(CL5, body=b"hello"), c200(CL5, body=b"hello")),
    Pass("Connection: Content-Length", h200(b"Connection: Content-Length", CL5, body=b"hello"),
         c200(CL5, body=b"hello")),
    Pass("Connection: Transfer-Encoding", h200(b"Connection: Transfer-Encoding", TE,
                                               body=CHUNKED_BODY), c200(TE, body=CHUNKED_BODY)),
    Pass("Connection names both framings", h200(b"Connection: content-length, X-Hop", b"X-Hop: 1",
                                                 CL5, body=b"hello"), c200(CL5, body=b"hello")),
    Pass("chunked", h200(TE, body=CHUNKED_BODY), c200(TE, body=CHUNKED_BODY)),
    Pass("chunk extensions a=b;c=d", h200(TE, body=b"5;a=b;c=d\r\nhello\r\n0\r\n\r\n"),
         c200(TE, body=b"5;a=b;c=d\r\nhello\r\n0\r\n\r\n")),
    Pass("chunk extension after a space", h200(TE, body=b"5 ;foo\r\nhello\r\n0\r\n\r\n"),
         c200(TE, body=b"5 ;foo\r\nhello\r\n0\r\n\r\n")),
    Pass("chunk extension with a space after ;", h200(TE, body=b"5; a\r\nhello\r\n0\r\n\r\n"),
         c200(TE, body=b"5; a\r\nhello\r\n0\r\n\r\n")),
    Pass("quoted chunk extension", h200(TE, body=b'5;a="q;r";c\r\nhello\r\n0\r\n\r\n'),
         c200(TE, body=b'5;a="q;r";c\r\nhello\r\n0\r\n\r\n')),
    Pass("chunked with trailers", h200(TE, body=chunked(b"hello", trailer=b"X-T: 1\r\n")),
         c200(TE, body=chunked(b"hello", trailer=b"X-T: 1\r\n"))),
    Pass("chunk size in upper case with leading zeros",
         h200(TE, body=b"00A\r\n0123456789\r\n0\r\n\r\n"),
         c200(TE, body=b"00A\r\n0123456789\r\n0\r\n\r\n")),
    Pass("TE upper case, lower-case name", h200(b"transfer-encoding: CHUNKED", body=CHUNKED_BODY),
         c200(TE, body=CHUNKED_BODY)),
    Pass("CL 0", h200(b"Content-Length: 0"), c200(b"Content-Length: 0")),
    Pass("CL with leading zeros", h200(b"Content-Length: 005", body=b"hello"),
         c200(CL5, body=b"hello")),
    Pass("CL after a tab", h200(b"content-length:\t5", body=b"hello"), c200(CL5, body=b"hello")),
    Pass("hop-by-hop fields removed",
         h200(b"Connection: X-Hop", b"X-Hop: 1", b"Keep-Alive: timeout=5", b"Trailer: X-T",
              b"Proxy-Authenticate: Basic", b"Upgrade: h2c", b"X-E2e: 1", CL5, body=b"hello"),
         c200(b"X-E2e: 1", CL5, body=b"hello")),
    Pass("Connection: close", h200(CLOSE, CL5, body=b"hello"), c200(CL5, body=b"hello"),
         reuse=False),
    Pass("HTTP/1.0 with a length", h200(CL5, body=b"hello", version=b"HTTP/1.0"),
         c200(CL5, body=b"hello"), reuse=False),
    Pass("close-delimited", h200(body=b"hello"), c200(CLOSE, body=b"hello"), reuse=False,
         keep=False, end="closed", after=("close",)),
    Pass("bytes after a Content-Length body", h200(CL5, body=b"helloEXTRA"),
         c200(CL5, body=b"hello"), reuse=False, end=None),
    # A bodiless response that declares a body leaves a connection a server
    # might still send that body on: it is not reused.
    Pass("204 with Content-Length, no body", h200(CL5, status=b"204 No Content"),
         c200(status=b"204 No Content"), reuse=False),
    Pass("204 with Content-Length and stray bytes",
         h200(CL5, status=b"204 No Content", body=b"hello"), c200(status=b"204 No Content"),
         reuse=False, end=None),
    Pass("204 with Transfer-Encoding", h200(TE, status=b"204 No Content"),
         c200(status=b"204 No Content"), reuse=False),
    Pass("204 with Content-Length 0", h200(b"Content-Length: 0", status=b"204 No Content"),
         c200(status=b"204 No Content")),
    Pass("304 with Transfer-Encoding", h200(b'ETag: "v"', TE, status=b"304 Not Modified"),
         c200(b'ETag: "v"', status=b"304 Not Modified"), reuse=False),
    Pass("304 with Content-Length", h200(b'ETag: "v"', CL5, status=b"304 Not Modified"),
         c200(b'ETag: "v"', CL5, status=b"304 Not Modified"), reuse=False),
    Pass("304 without framing", h200(b'ETag: "v"', status=b"304 Not Modified"),
         c200(b'ETag: "v"', status=b"304 Not Modified")),
    Pass("HEAD with Content-Length", h200(CL5), c200(CL5), method="HEAD", reuse=False),
    Pass("HEAD with Content-Length 0", h200(b"Content-Length: 0"), c200(b"Content-Length: 0"),
         method="HEAD"),
    Pass("HEAD with Content-Length and stray bytes", h200(CL5, body=b"hello"), c200(CL5),
         method="HEAD", reuse=False, end=None),
    Pass("103 Early Hints with Link",
         h200(b"Link: </a.css>; rel=preload", b"Link: </b.js>; rel=preload",
              status=b"103 Early Hints") + h200(CL5, body=b"hello"),
         c200(b"Link: </a.css>; rel=preload", b"Link: </b.js>; rel=preload",
              status=b"103 Early Hints") + c200(CL5, body=b"hello")),
    Pass("103 with Content-Length", h200(b"Link: </a.css>; rel=preload", CL5,
                                         status=b"103 Early Hints") + h200(CL5, body=b"hello"),
         c200(b"Link: </a.css>; rel=preload", status=b"103 Early Hints")
         + c200(CL5, body=b"hello")),
    Pass("100 Continue then 200", h200(status=b"100 Continue") + h200(CL5, body=b"hello"),
         c200(status=b"100 Continue") + c200(CL5, body=b"hello")),
    Bad("HEAD answered with Content_Length", h200(b"Content_Length: 6"), method="HEAD"),
    Bad("304 with Content_Length", h200(b"Content_Length: 6", status=b"304 Not Modified")),
    Bad("a reason phrase with a control character",
        h200(CL5, status=b"200 O\x01K", body=b"hello")),
    Bad("TE gzip", h200(b"Transfer-Encoding: gzip", body=b"hello")),
    Bad("TE xchunked", h200(b"Transfer-Encoding: xchunked", body=CHUNKED_BODY)),
    Bad("TE chunked, chunked", h200(b"Transfer-Encoding: chunked, chunked", body=CHUNKED_BODY)),
    Bad("TE gzip, chunked", h200(b"Transfer-Encoding: gzip, chunked", body=CHUNKED_BODY)),
    Bad("TE identity", h200(b"Transfer-Encoding: identity", body=b"hello")),
    Bad("TE quoted", h200(b'Transfer-Encoding: "chunked"', body=CHUNKED_BODY)),
    Bad("two TE fields", h200(TE, TE, body=CHUNKED_BODY)),
    Bad("CL and TE", h200(CL5, TE, body=CHUNKED_BODY)),
    Bad("TE and CL", h200(TE, CL5, body=CHUNKED_BODY)),
    Bad("HTTP/1.0 with TE", h200(TE, body=CHUNKED_BODY, version=b"HTTP/1.0")),
    Bad("status 000", h200(CL5, body=b"hello", status=b"000 Zero")),
    Bad("status 099", h200(CL5, body=b"hello", status=b"099 Low")),
    Bad("two CL fields", h200(CL5, CL5, body=b"hello")),
    Bad("CL 5, 5", h200(b"Content-Length: 5, 5", body=b"hello")),
    Bad("CL +5", h200(b"Content-Length: +5", body=b"hello")),
    Bad("CL -5", h200(b"Content-Length: -5", body=b"hello")),
    Bad("obs-fold in the head", h200(b"X-A: 1", b" 2", CL5, body=b"hello")),
    Bad("obs-fold on TE", h200(b"Transfer-Encoding:", b" chunked", body=CHUNKED_BODY)),
    Bad("space before a colon", h200(b"Transfer-Encoding : chunked", body=CHUNKED_BODY)),
    Bad("bare CR in a value", h200(b"X-A: 1\r2", CL5, body=b"hello")),
    Bad("NUL in a value", h200(b"X-A: 1\x002", CL5, body=b"hello")),
    Abort("bad chunk size", h200(TE, body=b"5\r\nhello\r\n"), b"zz\r\nhello\r\n0\r\n\r\n",
          c200(TE, body=b"5\r\nhello\r\n")),
    Abort("chunk size -1", h200(TE, body=b"5\r\nhello\r\n"), b"-1\r\nhello\r\n0\r\n\r\n",
          c200(TE, body=b"5\r\nhello\r\n")),
    Abort("chunk size overflows 64 bits", h200(TE, body=b"5\r\nhello\r\n"),
          b"10000000000000005\r\nhello\r\n0\r\n\r\n", c200(TE, body=b"5\r\nhello\r\n"),
          may=b"1000000000000000"),
    Abort("a chunk of 2 GiB", h200(TE, body=b"5\r\nhello\r\n"), b"80000000\r\nhello",
          c200(TE, body=b"5\r\nhello\r\n"), may=b"80000000\r\n"),
    Abort("chunk data longer than its size", h200(TE, body=b"5\r\nhello\r\n"),
          b"5\r\nhello!!\r\n0\r\n\r\n", c200(TE, body=b"5\r\nhello\r\n"), may=b"5\r\nhello"),
    Abort("obs-fold in the trailer section", h200(TE, body=b"5\r\nhello\r\n0\r\nX-T: 1\r\n"),
          b" folded\r\n\r\n", c200(TE, body=b"5\r\nhello\r\n0\r\nX-T: 1\r\n")),
]


class FramingTest(CutoffTestCase):
    ROUTES = [{"name": "admin-deny", "match": {"host": "127.0.0.1", "path_prefix": "/admin"},
               "action": "deny"}]
    TIME_LIMIT = 10.0

    # -- running rows --------------------------------------------------------

    def gate(self) -> threading.Event:
        """An event an upstream script step can wait on; set at cleanup so
        that no script thread outlives the test."""
        g = threading.Event()
        self.addCleanup(g.set)
        return g

    def assertRefused(self, r, cl, status):
        """cutoff's own error: Connection: close, text/plain, then FIN."""
        if status == 400:
            self.assertGenerated(r, 400)
            self.assertNotIn("error", r.proxy_status, r.header("Proxy-Status"))
        else:
            self.assertGenerated(r, 403, "http_request_denied")
        self.assertWholeThenFin(r, cl)

    def sentinel(self, up, cl=None):
        """The sentinel request to `up` (on `cl`, or a new client) must get the
        sentinel answer, byte for byte."""
        cl = cl or self.client(timeout=2.0)
        cl.send(sentinel_request(up.port))
        got = cl.read_exactly(len(SENT_CLIENT), timeout=2.0)
        self.assertEqual(got, SENT_CLIENT, "the sentinel's answer")
        return cl

    def run_request_row(self, row: Req):
        up = self.raw_upstream(["request", ok_or_sentinel, "repeat"])
        port = up.port
        cl = self.client(timeout=2.0)
        cl.send(wire(row.send[0], port))
        if len(row.send) > 1:
            # The valid part must be forwarded before the bad part is sent.
            must = wire(row.up.must, port)
            self.assertEqual(up.wait_received(len(must), 0, 2.0 * SCALE)[:len(must)], must,
                             "the head and the valid body prefix")
            cl.send(wire(row.send[1], port))
        r = cl.read_response(row.method, timeout=2.0)
        if row.status == 200:
            self.assertEqual(r.raw_head + r.body, row.client, "what the client got")
        else:
            self.assertRefused(r, cl, row.status)
        cl.close()
        self.sentinel(up)
        sent = wire(SENT_FWD, port)
        got = up.all_received()
        if row.up is NOTHING:
            self.assertEqual(got, [sent], "the refused request reached the upstream")
        elif isinstance(row.up, Fwd):
            self.assertEqual(got, [wire(row.up, port) + sent])
        else:
            must, may = wire(row.up.must, port), row.up.may
            self.assertEqual(len(got), 2, f"the sentinel did not get a new connection: {got}")
            self.assertEqual(got[0][:len(must)], must)
            self.assertTrue(may.startswith(got[0][len(must):]),
                            f"after the valid prefix the upstream got {got[0][len(must):]!r}")
            self.assertEqual(got[1], sent)
            self.assertUpstreamEnd(up, "rst", 0)

    def run_response_row(self, row):
        gate = self.gate()
        if isinstance(row, Abort):
            second = row.second
            first = [row.first, lambda req: (gate.wait(3 * SCALE), second)[1], "park"]
        else:
            first = [row.resp] + list(getattr(row, "after", ()))
        up = self.raw_upstream(["park"], per_conn=[["head"] + first + ["head", SENT_RESP],
                                                   ["head", SENT_RESP]])
        port = up.port
        fwd = (f"{row.method} /r HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
               f"Via: 1.1 cutoff\r\n\r\n").encode()
        sent = wire(SENT_FWD, port)
        cl = self.client(timeout=2.0)
        logged = len(self.cutoff.access_entries())
        cl.send(build_request(row.method, f"http://127.0.0.1:{port}/r"))
        reused = False
        if isinstance(row, Pass):
            self.assertEqual(cl.read_exactly(len(row.client), timeout=2.0), row.client,
                             "what the client got")
            if row.keep:
                self.sentinel(up, cl)
            else:
                self.assertEqual(cl.wait_end(), "fin")
                self.assertEqual(bytes(cl.buf), b"", "bytes after the response")
                self.sentinel(up)
            reused = row.reuse
        elif isinstance(row, Bad):
            r = cl.read_response(row.method, timeout=2.0)
            self.assertGenerated(r, 502, "http_protocol_error", head=row.method == "HEAD")
            self.assertDetails(r, target=f"127.0.0.1:{port}", route="default")
            self.assertWholeThenFin(r, cl)
            self.sentinel(up)
        else:
            self.assertEqual(cl.read_exactly(len(row.client), timeout=2.0), row.client,
                             "what the client got before the error")
            gate.set()
            self.assertEqual(cl.wait_end(), "rst", "the client connection was not reset")
            self.assertTrue(row.may.startswith(bytes(cl.buf)), f"then {bytes(cl.buf)!r}")
            # The port may be one an earlier row's upstream had: only lines
            # logged since this row's request count.
            e = self.cutoff.wait_access(target=f":{port}/r", since=logged)
            self.assertEqual(e.get("outcome"), "error:http_protocol_error", e["line"])
            self.sentinel(up)
        got = up.all_received()
        if reused:
            self.assertEqual(got, [fwd + sent], "the upstream connection was not reused")
        else:
            self.assertEqual(got, [fwd, sent], "the upstream connection was reused")
            want = "rst" if not isinstance(row, Pass) else row.end
            rec = up.wait_end(0, 2.0 * SCALE)
            if want is None:
                self.assertTrue(rec.finished, rec)
            else:
                self.assertEqual(rec.state, want, rec)

    def row_by_name(self, table, name):
        return next(r for r in table if r.name == name)

    # -- (a) request smuggling through Connection-named framing ----------------

    def smuggle(self, framing_lines, body):
        # Client A smuggles a request to /admin/secret in the body of a POST
        # to /public; client B, on its own connection, asks for /innocent.
        up = self.raw_upstream(["request", answer, "repeat"])
        port = up.port
        url = f"http://127.0.0.1:{port}"
        # The route does deny /admin/secret: asked directly, it is refused.
        r, cl, _ = self.exchange("GET", url + "/admin/secret", timeout=2.0)
        self.assertGenerated(r, 403, "http_request_denied")
        a = self.client(timeout=2.0)
        a.send(wire(rq(*framing_lines, body=body, path=b"/public"), port))
        ra = a.read_response(timeout=2.0)
        want_a = b"answer to POST /public"
        self.assertEqual(ra.raw_head + ra.body, b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n"
                         b"Via: 1.1 cutoff\r\n\r\n%s" % (len(want_a), want_a))
        b = self.client(timeout=2.0)
        b.request("GET", url + "/innocent")
        rb = b.read_response(timeout=2.0)
        want_b = b"answer to GET /innocent"
        self.assertEqual(rb.raw_head + rb.body, b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n"
                         b"Via: 1.1 cutoff\r\n\r\n%s" % (len(want_b), want_b))
        eb = self.cutoff.wait_access(target=f":{port}/innocent")
        self.assertEqual(eb.get("reused"), "1", eb["line"])
        # Exactly two requests on one connection: the POST, its body whole.
        framing = [h for h in framing_lines if not h.lower().startswith(b"connection:")]
        self.assertEqual(up.all_received(), [
            wire(fw(*framing, body=body, path=b"/public"), port)
            + wire(b"GET /innocent HTTP/1.1\r\nHost: 127.0.0.1:{P}\r\nVia: 1.1 cutoff\r\n\r\n",
                   port)])
        reqs = up.requests()
        self.assertEqual([(q.method, q.target) for q in reqs],
                         [("POST", "/public"), ("GET", "/innocent")])
        self.assertEqual(reqs[0].raw_body, body)

    def test_smuggling_connection_content_length(self):
        self.assertEqual(len(SMUGGLED), 47)
        self.smuggle([b"Connection: Content-Length", b"Content-Length: 47"], SMUGGLED)

    def test_smuggling_connection_transfer_encoding(self):
        self.smuggle([b"Connection: Transfer-Encoding", TE], chunked(SMUGGLED))

    # -- (b) responses ----------------------------------------------------------

    def test_response_connection_content_length_keeps_alive(self):
        self.run_response_row(self.row_by_name(RESPONSE_ROWS, "Connection: Content-Length"))

    def test_response_connection_transfer_encoding(self):
        self.run_response_row(self.row_by_name(RESPONSE_ROWS, "Connection: Transfer-Encoding"))

    def test_response_refused_framings_502_upstream_reset(self):
        for name in ("TE gzip", "TE xchunked", "CL and TE", "HTTP/1.0 with TE", "status 000"):
            with self.subTest(name):
                self.run_response_row(self.row_by_name(RESPONSE_ROWS, name))
                port = self._servers[-1].port
                self.assertOutcome(f":{port}/r", 502, "error:http_protocol_error", "default")

    def test_response_chunk_error_after_head_resets_client(self):
        for name in ("bad chunk size", "obs-fold in the trailer section"):
            with self.subTest(name):
                self.run_response_row(self.row_by_name(RESPONSE_ROWS, name))

    # -- (c) requests refused before the upstream -----------------------------

    def test_request_te_refused_no_upstream_connection(self):
        for name in ("TE gzip", "TE xchunked"):
            with self.subTest(name):
                self.run_request_row(self.row_by_name(REQUEST_ROWS, name))

    def test_request_refused_on_a_pooled_connection_sends_nothing(self):
        # A pooled connection to the upstream is not used for a refused
        # request: it gets no byte and then serves the next request.
        up = self.raw_upstream(["request", ok_or_sentinel, "repeat"])
        port = up.port
        cl = self.client(timeout=2.0)
        cl.send(wire(rq(CL5, body=b"hello"), port))
        self.assertEqual(cl.read_exactly(len(OK_CLIENT)), OK_CLIENT)
        # The same client connection, then a new one: both refused.
        cl.send(wire(rq(b"Transfer-Encoding: gzip", body=b"hello"), port))
        self.assertRefused(cl.read_response(timeout=2.0), cl, 400)
        r, cl2, _ = self.exchange("POST", f"http://127.0.0.1:{port}/t",
                                  [("Content-Length", "5"), ("Content-Length", "5")], b"hello",
                                  timeout=2.0)
        self.assertRefused(r, cl2, 400)
        self.sentinel(up)
        self.assertEqual(up.all_received(),
                         [wire(fw(CL5, body=b"hello") + SENT_FWD, port)])

    def test_pipelined_bad_request_after_a_good_one(self):
        # A good request and a CL.TE one in one write: the first is
        # forwarded and answered, the second refused; the upstream connection
        # got the first request only, and stays clean for the next.
        up = self.raw_upstream(["request", ok_or_sentinel, "repeat"])
        port = up.port
        cl = self.client(timeout=2.0)
        cl.send(wire(rq(CL5, body=b"hello")
                     + rq(b"Content-Length: 52", TE, body=b"0\r\n\r\n" + SMUGGLED), port))
        self.assertEqual(cl.read_exactly(len(OK_CLIENT), timeout=2.0), OK_CLIENT)
        self.assertRefused(cl.read_response(timeout=2.0), cl, 400)
        self.sentinel(up)
        self.assertEqual(up.all_received(), [wire(fw(CL5, body=b"hello") + SENT_FWD, port)])

    def test_request_bad_chunk_size_resets_upstream_never_reused(self):
        for name in ("chunk size zz", "chunk size -1", "chunk size overflows 64 bits"):
            with self.subTest(name):
                self.run_request_row(self.row_by_name(REQUEST_ROWS, name))

    def test_request_bad_trailer_resets_upstream_never_reused(self):
        for name in ("obs-fold in the trailer section", "bare LF in the trailer section"):
            with self.subTest(name):
                self.run_request_row(self.row_by_name(REQUEST_ROWS, name))

    # -- (d) protocol details -----------------------------------------------------

    def test_status_000(self):
        self.run_response_row(self.row_by_name(RESPONSE_ROWS, "status 000"))

    def test_204_with_content_length(self):
        for name in ("204 with Content-Length, no body", "204 with Content-Length and stray bytes"):
            with self.subTest(name):
                self.run_response_row(self.row_by_name(RESPONSE_ROWS, name))

    def test_304_and_head_framing_fields(self):
        for name in ("304 with Transfer-Encoding", "304 with Content-Length",
                     "HEAD with Content-Length"):
            with self.subTest(name):
                self.run_response_row(self.row_by_name(RESPONSE_ROWS, name))

    def test_103_early_hints_with_link(self):
        self.run_response_row(self.row_by_name(RESPONSE_ROWS, "103 Early Hints with Link"))

    def test_chunk_extensions_both_ways(self):
        for name in ("chunk extensions a=b;c=d", "chunk extension after a space",
                     "chunk extension with a space after ;", "quoted chunk extension"):
            with self.subTest("request " + name):
                self.run_request_row(self.row_by_name(REQUEST_ROWS, name))
            with self.subTest("response " + name):
                self.run_response_row(self.row_by_name(RESPONSE_ROWS, name))

    def test_obs_fold_in_trailers_both_ways(self):
        with self.subTest("request"):
            self.run_request_row(self.row_by_name(REQUEST_ROWS, "obs-fold in the trailer section"))
        with self.subTest("response"):
            self.run_response_row(self.row_by_name(RESPONSE_ROWS,
                                                   "obs-fold in the trailer section"))

    def test_fragment_never_sent(self):
        for name in ("fragment", "fragment after a query", "fragment that looks like a path"):
            with self.subTest(name):
                self.run_request_row(self.row_by_name(REQUEST_ROWS, name))

    def test_http10_with_transfer_encoding(self):
        with self.subTest("request"):
            self.run_request_row(self.row_by_name(REQUEST_ROWS, "TE chunked in HTTP/1.0"))
        with self.subTest("response"):
            self.run_response_row(self.row_by_name(RESPONSE_ROWS, "HTTP/1.0 with TE"))

    # -- the differential tables ----------------------------------------------------

    @time_limit(40)
    def test_request_table(self):
        self.assertGreaterEqual(len(REQUEST_ROWS), 60)
        self.assertEqual(len({r.name for r in REQUEST_ROWS}), len(REQUEST_ROWS))
        for row in REQUEST_ROWS:
            with self.subTest(row.name):
                self.run_request_row(row)

    @time_limit(40)
    def test_response_table(self):
        self.assertGreaterEqual(len(RESPONSE_ROWS), 40)
        self.assertEqual(len({r.name for r in RESPONSE_ROWS}), len(RESPONSE_ROWS))
        for row in RESPONSE_ROWS:
            with self.subTest(row.name):
                self.run_response_row(row)
