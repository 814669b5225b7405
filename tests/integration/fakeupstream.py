"""The scripted HTTP/1.1 upstream for cutoff's integration tests.

FakeUpstream's behaviour is chosen by the request: the LAST segment of the
path names the behaviour (so "/ok", "/graceful/hang" and "/r/x/hang" all
work, which lets a test steer a request onto a `path_prefix` route), and
query parameters give sizes and delays in milliseconds. Healthy behaviours
keep the connection alive and serve many requests on it. Every answer carries
X-Upstream-Conn / X-Upstream-Request (connection id, request number on it),
so a client can see upstream connection reuse.

`python3 fakeupstream.py --catalogue` prints the behaviours; tests/README.md
has the same table. Connection records (how each connection ended, from the
server's side) come from fakenet._TcpServer.
"""

from __future__ import annotations

import hashlib
import http
import itertools
import json
import select
import socket
import sys
import time
from urllib.parse import parse_qsl, urlsplit

from fakenet import (HEAD_LIMIT, LOOPBACK, BadRequest, Blackhole, ClosedPort,  # noqa: F401
                     Conn, FullBacklog, PeerFin, RawEchoServer, _TcpServer, pattern, raw_echo)

# ---------------------------------------------------------------------------
# HTTP


class Request:
    def __init__(self, method, target, version, headers, raw_head, conn_id, index):
        self.method = method
        self.target = target
        self.version = version
        self.headers = headers  # [(name, value)] in arrival order
        self.raw_head = raw_head
        self.conn_id = conn_id
        self.index = index  # 0-based request number on its connection
        self.t_head = time.monotonic()
        parts = urlsplit(target)
        self.path = parts.path
        self.query = dict(parse_qsl(parts.query, keep_blank_values=True))
        segs = [s for s in self.path.split("/") if s]
        self.behaviour = segs[-1] if segs else ""
        self.body = b""
        self.trailers = []

    def header(self, name: str, default=None):
        name = name.lower()
        for k, v in self.headers:
            if k.lower() == name:
                return v
        return default

    def headers_named(self, name: str) -> list[str]:
        name = name.lower()
        return [v for k, v in self.headers if k.lower() == name]

    def has_token(self, name: str, token: str) -> bool:
        token = token.lower()
        return any(token == t.strip().lower()
                   for v in self.headers_named(name) for t in v.split(","))

    @property
    def keep_alive(self) -> bool:
        if self.has_token("connection", "close"):
            return False
        if self.version == "HTTP/1.0":
            return self.has_token("connection", "keep-alive")
        return True

    def qint(self, name: str, default: int) -> int:
        return int(self.query.get(name, default))

    def qms(self, name: str, default_ms: int) -> float:
        """A millisecond query parameter, in seconds."""
        return int(self.query.get(name, default_ms)) / 1000.0

    def as_json(self) -> dict:
        return {
            "method": self.method,
            "target": self.target,
            "version": self.version,
            "headers": [[k, v] for k, v in self.headers],
            "body_len": len(self.body),
            "body_sha256": hashlib.sha256(self.body).hexdigest(),
            "trailers": [[k, v] for k, v in self.trailers],
            "conn": self.conn_id,
            "index": self.index,
        }


def parse_request_head(raw: bytes, conn_id: int, index: int) -> Request:
    text = raw.decode("latin-1")
    lines = text.split("\r\n")
    try:
        method, target, version = lines[0].split(" ")
    except ValueError:
        raise BadRequest(f"bad request line {lines[0]!r}")
    headers = []
    for line in lines[1:]:
        if not line:
            continue
        if ":" not in line:
            raise BadRequest(f"bad header line {line!r}")
        k, v = line.split(":", 1)
        headers.append((k, v.strip()))
    return Request(method, target, version, headers, raw, conn_id, index)


def read_chunked(conn: Conn, sink=None):
    """Reads a chunked body; returns (body, trailers). sink(data) gets each chunk."""
    body = bytearray()
    while True:
        line = conn.read_until(b"\r\n", limit=4096)
        size = int(line.split(b";")[0].strip(), 16)
        if size == 0:
            break
        data = conn.read_exact(size)
        conn.read_exact(2)
        if sink:
            sink(data)
        else:
            body += data
    trailers = []
    while True:
        line = conn.read_until(b"\r\n", limit=HEAD_LIMIT)
        if line == b"\r\n":
            break
        k, v = line.decode("latin-1").split(":", 1)
        trailers.append((k, v.strip()))
    return bytes(body), trailers


def read_body(conn: Conn, req: Request, sink=None) -> bytes:
    te = req.header("transfer-encoding")
    if te and "chunked" in te.lower():
        req.body, req.trailers = read_chunked(conn, sink)
    else:
        n = int(req.header("content-length", "0") or 0)
        if sink:
            left = n
            while left:
                if not conn.buf:
                    conn.recv_some(None)
                take = min(left, len(conn.buf))
                sink(bytes(conn.buf[:take]))
                del conn.buf[:take]
                left -= take
        else:
            req.body = conn.read_exact(n)
    return req.body


NO_BODY_STATUSES = {204, 304}


def status_line(code: int) -> str:
    try:
        reason = http.HTTPStatus(code).phrase
    except ValueError:
        reason = "Whatever"
    return f"HTTP/1.1 {code} {reason}\r\n"


def head_bytes(code: int, headers) -> bytes:
    out = status_line(code)
    for k, v in headers:
        out += f"{k}: {v}\r\n"
    return (out + "\r\n").encode("latin-1")


class FakeUpstream(_TcpServer):
    """The scripted HTTP origin; see BEHAVIOURS."""

    name = "fakeupstream"

    def __init__(self, host: str = LOOPBACK, port: int = 0, backlog: int = 128):
        super().__init__(host, port, backlog)
        self.requests: list[Request] = []
        # While > 0, a request arriving on an already used connection is
        # answered by closing that connection (FIN), and the count drops by
        # one: a pooled connection that "turns out dead when reused".
        self.drop_reused_requests = 0

    def handle(self, conn: Conn):
        on_fin = "close"
        try:
            while True:
                try:
                    head = conn.read_until(b"\r\n\r\n")
                except PeerFin:
                    return  # a clean close between requests
                req = parse_request_head(head, conn.rec.id, len(conn.rec.requests))
                with self._cv:
                    conn.rec.requests.append(req)
                    self.requests.append(req)
                    self._cv.notify_all()
                on_fin = req.query.get("on_fin", "close")
                if req.index > 0 and self.drop_reused_requests > 0:
                    self.drop_reused_requests -= 1
                    conn.close()
                    return
                fn = BEHAVIOURS.get(req.behaviour, b_not_found)
                if not fn(self, conn, req):
                    return
        except PeerFin:
            if on_fin == "ignore":
                conn.wait_reset_after_fin()
        except BadRequest as e:
            body = f"fake upstream: {e}\n".encode()
            conn.send_all(head_bytes(400, [("Content-Length", len(body)),
                                           ("Connection", "close")]) + body)

    def wait_requests(self, n: int, timeout: float) -> bool:
        return self.wait_for(lambda: len(self.requests) >= n, timeout)

    # -- response helpers --------------------------------------------------

    @staticmethod
    def std_headers(conn: Conn, req: Request):
        return [("X-Upstream-Conn", str(conn.rec.id)), ("X-Upstream-Request", str(req.index))]

    def respond(self, conn: Conn, req: Request, code: int, body: bytes = b"",
                headers=(), keep=None, length: bool = True) -> bool:
        """Writes a whole response; returns whether to keep the connection."""
        keep = req.keep_alive if keep is None else keep
        hs = self.std_headers(conn, req) + list(headers)
        no_body = code in NO_BODY_STATUSES or 100 <= code < 200
        if length and not no_body:
            hs.append(("Content-Length", str(len(body))))
        if not keep:
            hs.append(("Connection", "close"))
        out = head_bytes(code, hs)
        if req.method != "HEAD" and not no_body:
            out += body
        conn.send_all(out)
        conn.rec.response_ends.append(time.monotonic())
        return keep


# Each behaviour reads what it needs of the request and returns True to keep
# the connection for another request. The docstring's first line is the
# catalogue entry.


def b_ok(srv, conn, req):
    """200 with a Content-Length body of `size` pattern bytes (default 5), sent in 256 KiB writes. Keep-alive."""
    read_body(conn, req)
    size = req.qint("size", 5)
    if size <= 65536:
        return srv.respond(conn, req, 200, pattern(size),
                           [("Content-Type", "application/octet-stream")])
    hs = srv.std_headers(conn, req) + [("Content-Type", "application/octet-stream"),
                                       ("Content-Length", str(size))]
    if not req.keep_alive:
        hs.append(("Connection", "close"))
    conn.send_all(head_bytes(200, hs))
    if req.method != "HEAD":
        block = 251 * 1024  # a whole number of pattern cycles
        chunk = pattern(block)
        for off in range(0, size, block):
            conn.send_all(chunk[:min(block, size - off)])
    conn.rec.response_ends.append(time.monotonic())
    return req.keep_alive


def b_chunked(srv, conn, req):
    """200 chunked: `size` bytes (default 1000) in `chunk`-byte chunks (default 100); trailers=1 adds X-Trailer: done."""
    read_body(conn, req)
    size, chunk = req.qint("size", 1000), max(1, req.qint("chunk", 100))
    trailers = req.query.get("trailers") == "1"
    hs = srv.std_headers(conn, req) + [("Content-Type", "application/octet-stream"),
                                       ("Transfer-Encoding", "chunked")]
    if trailers:
        hs.append(("Trailer", "X-Trailer"))
    if not req.keep_alive:
        hs.append(("Connection", "close"))
    out = bytearray(head_bytes(200, hs))
    if req.method != "HEAD":
        body = pattern(size)
        for i in range(0, size, chunk):
            part = body[i:i + chunk]
            out += f"{len(part):x}\r\n".encode() + part + b"\r\n"
        out += b"0\r\n" + (b"X-Trailer: done\r\n" if trailers else b"") + b"\r\n"
    conn.send_all(bytes(out))
    conn.rec.response_ends.append(time.monotonic())
    return req.keep_alive


def b_close_delimited(srv, conn, req):
    """200 without Content-Length or chunking: `size` bytes (default 1000), then FIN; waits for the peer to close. notify=0: inside TLS, the FIN comes without a close_notify."""
    read_body(conn, req)
    conn.close_notify_on_shutdown = req.query.get("notify") != "0"
    hs = srv.std_headers(conn, req) + [("Content-Type", "application/octet-stream")]
    out = head_bytes(200, hs)
    if req.method != "HEAD":
        out += pattern(req.qint("size", 1000))
    conn.send_all(out)
    conn.rec.response_ends.append(time.monotonic())
    conn.shutdown_write()
    conn.park(read=True)


def b_extra_record(srv, conn, req):
    """200 "r1" (Content-Length 2), and in the same write a second response nobody asked for (inside TLS, in a record of its own). Keep-alive."""
    read_body(conn, req)
    first = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nr1"
    extra = b"HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nINJECTED"
    if hasattr(conn, "send_records"):
        conn.send_records([first, extra])
    else:
        conn.send_all(first + extra)
    conn.park(read=True)


def b_echo(srv, conn, req):
    """200 echoing the request body; the received head (method, target, version, headers, trailers, body sha256) is JSON in X-Echo-Head. head=body: the JSON is the body instead. hop=1: response carries hop-by-hop headers. stream=1: body streamed back while read (needs Content-Length)."""
    extra = [("Content-Type", "application/octet-stream")]
    if req.query.get("hop") == "1":
        extra += [("Connection", "X-Resp-Hop, keep-alive"), ("X-Resp-Hop", "secret"),
                  ("Keep-Alive", "timeout=5"), ("Proxy-Authenticate", "Basic realm=x"),
                  ("X-End-To-End", "kept")]
    if req.query.get("stream") == "1" and req.header("content-length"):
        n = int(req.header("content-length"))
        hs = srv.std_headers(conn, req) + extra + [("Content-Length", str(n))]
        if not req.keep_alive:
            hs.append(("Connection", "close"))
        conn.send_all(head_bytes(200, hs))
        read_body(conn, req, sink=conn.send_all)
        conn.rec.response_ends.append(time.monotonic())
        return req.keep_alive
    read_body(conn, req)
    info = json.dumps(req.as_json(), separators=(",", ":"))
    if req.query.get("head") == "body":
        return srv.respond(conn, req, 200, info.encode(), [("Content-Type", "application/json")])
    return srv.respond(conn, req, 200, req.body, extra + [("X-Echo-Head", info)])


def b_status(srv, conn, req):
    """Answers with status `code` (default 200); 204 and 304 (and HEAD) without a body, others with a short one."""
    read_body(conn, req)
    code = req.qint("code", 200)
    hs = [("Content-Type", "text/plain")]
    if code == 304:
        hs.append(("ETag", '"v1"'))
    return srv.respond(conn, req, code, f"status {code}\n".encode(), hs)


def b_hang(srv, conn, req):
    """Reads the head (and anything after it), never answers; notices FIN/RST at once. on_fin=ignore: after the peer's FIN keep the socket open (to see a linger RST)."""
    conn.park(read=True)


def b_slow_head(srv, conn, req):
    """Waits `delay` ms (default 1000) before answering like /ok (`size`)."""
    read_body(conn, req)
    deadline = req.t_head + req.qms("delay", 1000)
    while time.monotonic() < deadline:
        conn.recv_some(max(0.0, deadline - time.monotonic()))
    return srv.respond(conn, req, 200, pattern(req.qint("size", 5)))


def b_stall_mid_body(srv, conn, req):
    """Head with Content-Length `size` (default 10000), `sent` bytes of it (default 1000), then silence (keeps reading)."""
    read_body(conn, req)
    size, sent = req.qint("size", 10000), req.qint("sent", 1000)
    hs = srv.std_headers(conn, req) + [("Content-Length", str(size)),
                                       ("Content-Type", "application/octet-stream")]
    conn.send_all(head_bytes(200, hs) + pattern(sent))
    conn.park(read=True)


def b_drip(srv, conn, req):
    """Head with Content-Length `size` (default 100000), then one body byte every `interval` ms (default 50) until done or the peer goes; pad=N: chunked instead, each byte a chunk whose extension carries N bytes of padding."""
    read_body(conn, req)
    size, interval, pad = req.qint("size", 100000), req.qms("interval", 50), req.qint("pad", -1)
    framing = ("Content-Length", str(size)) if pad < 0 else ("Transfer-Encoding", "chunked")
    hs = srv.std_headers(conn, req) + [framing, ("Content-Type", "application/octet-stream")]
    conn.send_all(head_bytes(200, hs))
    body = pattern(size)
    extension = b";pad=" + b"p" * pad if pad > 0 else b""
    for i in range(size):
        byte = body[i:i + 1]
        conn.send_all(byte if pad < 0 else b"1" + extension + b"\r\n" + byte + b"\r\n")
        deadline = time.monotonic() + interval
        while time.monotonic() < deadline:
            conn.recv_some(deadline - time.monotonic())
    if pad >= 0:
        conn.send_all(b"0\r\n\r\n")
    conn.rec.response_ends.append(time.monotonic())
    return req.keep_alive


def b_paced(srv, conn, req):
    """Head with Content-Length `size` (default 1 MiB), then, after `delay` ms (default 0), `chunk` body bytes (default 64 KiB) every `interval` ms (default 25): a steady download at a known pace."""
    read_body(conn, req)
    size, chunk, interval = req.qint("size", 1 << 20), max(1, req.qint("chunk", 65536)), req.qms("interval", 25)
    hs = srv.std_headers(conn, req) + [("Content-Length", str(size)),
                                       ("Content-Type", "application/octet-stream")]
    conn.send_all(head_bytes(200, hs))
    body = pattern(size)
    next_send = time.monotonic() + req.qms("delay", 0)
    for off in range(0, size, chunk):
        # Paced against the clock, not after each send: a slow send does not
        # slow the average pace down.
        while time.monotonic() < next_send:
            conn.recv_some(next_send - time.monotonic())
        conn.send_all(body[off:off + chunk])
        next_send += interval
    conn.rec.response_ends.append(time.monotonic())
    return req.keep_alive


def b_slow_read(srv, conn, req):
    """Reads the request body `chunk` bytes (default 4096) every `interval` ms (default 100), with a 64 KiB receive buffer, until it is whole (then answers 200 ok) or the peer goes; stop=N: closes (FIN) N ms after the head instead, whatever it read."""
    conn.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    chunk, interval = max(1, req.qint("chunk", 4096)), req.qms("interval", 100)
    stop_at = req.t_head + req.qms("stop", 0) if "stop" in req.query else None
    total = int(req.header("content-length") or 0)
    got = len(conn.buf)
    conn.buf.clear()
    while got < total:
        if stop_at is not None and time.monotonic() >= stop_at:
            return conn.close()
        time.sleep(interval)
        if not conn._poll(select.POLLIN | select.POLLRDHUP, 1.0):
            continue
        try:
            data = conn.sock.recv(min(chunk, total - got))
        except OSError:
            data = b""
        if not data:
            conn.park(read=False)  # records how the peer went
        got += len(data)
    return srv.respond(conn, req, 200, b"ok", [("Content-Type", "text/plain")])


def b_early(srv, conn, req):
    """Answers before reading the request body: a 200 head with Content-Length `size` (default 2) at once, then reads the whole request body, then sends the response body."""
    size = req.qint("size", 2)
    conn.send_all(head_bytes(200, srv.std_headers(conn, req) + [("Content-Length", str(size))]))
    read_body(conn, req)
    conn.send_all(pattern(size))
    conn.rec.response_ends.append(time.monotonic())
    return req.keep_alive


def b_close(srv, conn, req):
    """Closes (FIN) right after reading the head, without answering."""
    conn.close()


def b_reset(srv, conn, req):
    """Resets (SO_LINGER 0, RST) right after reading the head, without answering."""
    conn.reset()


def b_reset_mid_body(srv, conn, req):
    """Head with Content-Length `size` (default 10000), `sent` bytes (default 1000), waits `delay` ms (default 50), then RST."""
    read_body(conn, req)
    size, sent = req.qint("size", 10000), req.qint("sent", 1000)
    hs = srv.std_headers(conn, req) + [("Content-Length", str(size))]
    conn.send_all(head_bytes(200, hs) + pattern(sent))
    deadline = time.monotonic() + req.qms("delay", 50)
    while time.monotonic() < deadline:
        conn.recv_some(deadline - time.monotonic())
    conn.reset()


def b_no_read_body(srv, conn, req):
    """Reads only the head (of a POST), never reads the body, never answers; watches for FIN/RST via POLLRDHUP. drip=interim: meanwhile sends `102 Processing` responses a byte every `interval` ms (default 50); drip=body: a 200 head with Content-Length `size` (default 1000000), then its body `chunk` bytes (default 1) every `interval` ms."""
    conn.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    drip, interval = req.query.get("drip"), req.qms("interval", 50)
    if drip == "interim":
        pieces = itertools.cycle(bytes([b]) for b in b"HTTP/1.1 102 Processing\r\n\r\n")
    elif drip == "body":
        size, chunk = req.qint("size", 1000000), max(1, req.qint("chunk", 1))
        head = head_bytes(200, srv.std_headers(conn, req) + [("Content-Length", str(size))])
        body = pattern(size)
        pieces = itertools.chain([head], (body[i:i + chunk] for i in range(0, size, chunk)))
    else:
        pieces = iter(())
    for piece in pieces:
        try:
            conn.sock.sendall(piece)
        except OSError:
            break
        if conn._poll(select.POLLRDHUP, interval):
            break  # the peer went: park() records how
    conn.park(read=False)


def b_close_less(srv, conn, req):
    """Answers 200 with Connection: close and a Content-Length body (`size`, default 100), then never closes (keeps reading)."""
    read_body(conn, req)
    srv.respond(conn, req, 200, pattern(req.qint("size", 100)), keep=False)
    conn.park(read=True)


def b_continue(srv, conn, req):
    """Honours Expect: 100-continue (sends 100 after `delay` ms, default 0), reads the body, answers 200 with JSON {expect, body_len, body_sha256, early_bytes}."""
    expect = (req.header("expect") or "").lower() == "100-continue"
    early = 0
    if expect:
        deadline = req.t_head + req.qms("delay", 0)
        while time.monotonic() < deadline:
            conn.recv_some(deadline - time.monotonic())
        early = len(conn.buf)
        conn.send_all(b"HTTP/1.1 100 Continue\r\n\r\n")
    read_body(conn, req)
    info = {"expect": expect, "body_len": len(req.body), "early_bytes": early,
            "body_sha256": hashlib.sha256(req.body).hexdigest()}
    return srv.respond(conn, req, 200, json.dumps(info).encode(),
                       [("Content-Type", "application/json")])


def b_upgrade(srv, conn, req):
    """With an Upgrade header: 101 (Upgrade: same value, Connection: Upgrade), then echoes raw bytes; on the peer's FIN sends FIN back. Without: 426."""
    proto = req.header("upgrade")
    if not proto:
        return srv.respond(conn, req, 426, b"upgrade required\n")
    hs = srv.std_headers(conn, req) + [("Upgrade", proto), ("Connection", "Upgrade")]
    conn.send_all(head_bytes(101, hs))
    conn.rec.response_ends.append(time.monotonic())
    raw_echo(conn)


def b_big_head(srv, conn, req):
    """200 whose head carries an X-Big header of `size` bytes (default 70000)."""
    read_body(conn, req)
    return srv.respond(conn, req, 200, b"", [("X-Big", "b" * req.qint("size", 70000))])


def b_garbage(srv, conn, req):
    """Sends a line that is not HTTP, then closes."""
    conn.send_all(b"THIS IS NOT HTTP\r\n\r\n")
    conn.close()


def b_not_found(srv, conn, req):
    body = ("unknown behaviour; known: " + ", ".join(sorted(BEHAVIOURS)) + "\n").encode()
    read_body(conn, req)
    return srv.respond(conn, req, 404, body, [("Content-Type", "text/plain")])


BEHAVIOURS = {
    "ok": b_ok,
    "chunked": b_chunked,
    "close-delimited": b_close_delimited,
    "echo": b_echo,
    "extra-record": b_extra_record,
    "status": b_status,
    "hang": b_hang,
    "slow-head": b_slow_head,
    "stall-mid-body": b_stall_mid_body,
    "drip": b_drip,
    "paced": b_paced,
    "early": b_early,
    "slow-read": b_slow_read,
    "close": b_close,
    "reset": b_reset,
    "reset-mid-body": b_reset_mid_body,
    "no-read-body": b_no_read_body,
    "close-less": b_close_less,
    "continue": b_continue,
    "upgrade": b_upgrade,
    "big-head": b_big_head,
    "garbage": b_garbage,
}


def catalogue() -> str:
    lines = []
    for name, fn in BEHAVIOURS.items():
        lines.append(f"/{name:16} {fn.__doc__}")
    return "\n".join(lines)


def serve_until_interrupted(srv: FakeUpstream, url: str, describe=str):
    """Runs `srv` for manual poking until Ctrl-C or SIGTERM, then prints
    its connection records (each through `describe`) and exits 0."""
    import signal

    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    srv.start()
    print(f"{srv.name} on {url.format(port=srv.port)}  (Ctrl-C stops)", flush=True)
    try:
        while True:
            time.sleep(1)
    except KeyboardInterrupt:
        pass
    finally:
        srv.stop()
        for r in srv.connections():
            print(describe(r))
        sys.exit(0)


if __name__ == "__main__":
    import argparse

    ap = argparse.ArgumentParser(description="Run the fake upstream for manual poking.")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--catalogue", action="store_true", help="print the behaviours and exit")
    args = ap.parse_args()
    if args.catalogue:
        print(catalogue())
        sys.exit(0)
    serve_until_interrupted(FakeUpstream(port=args.port), f"http://{LOOPBACK}:{{port}}/")
