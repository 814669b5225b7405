"""Forwarding through cutoff: HTTP semantics (SPEC sections 1 and 2)."""

import hashlib
import json
import threading
import time
import unittest

from fakeupstream import pattern
from harness import SCALE, SLACK, Client, CutoffTestCase, build_request, time_wait_count

HOP_BY_HOP = ["connection", "proxy-connection", "keep-alive", "te", "trailer",
              "upgrade", "proxy-authorization", "proxy-authenticate"]


def header_names(echo):
    return [k.lower() for k, _ in echo["headers"]]


class ForwardingTest(CutoffTestCase):
    ROUTES = [{"name": "deny-me", "match": {"path_prefix": "/denied/"}, "action": "deny"}]
    TIME_LIMIT = 15.0

    def assertOkLogged(self, up, path, status=200):
        e = self.cutoff.wait_access(target=f":{up.port}{path}")
        self.assertEqual(e.get("status"), str(status), e["line"])
        self.assertEqual(e.get("outcome"), "ok", e["line"])
        return e

    # -- bodies ------------------------------------------------------------

    def test_get_with_content_length(self):
        up = self.upstream()
        r, cl, elapsed = self.exchange("GET", self.url(up, "/ok?size=1000"))
        self.assertEqual((r.status, r.framing, r.body), (200, "length", pattern(1000)))
        self.assertLess(elapsed, 0.2 + SLACK)
        e = self.assertOkLogged(up, "/ok?size=1000")
        self.assertEqual(e["method"], "GET")
        self.assertEqual(e.get("route"), "default")
        self.assertEqual(e.get("reused"), "0")
        self.assertGreaterEqual(int(e.get("down_bytes", "0")), 1000)

    def test_head_has_no_body_and_connection_stays_usable(self):
        up = self.upstream()
        cl = self.client()
        cl.request("HEAD", self.url(up, "/ok?size=1000"))
        r = cl.read_response("HEAD")
        self.assertEqual((r.status, r.header("Content-Length"), r.body), (200, "1000", b""))
        cl.request("GET", self.url(up, "/ok?size=10"))
        r = cl.read_response()
        self.assertEqual((r.status, r.body), (200, pattern(10)))
        self.assertEqual(bytes(cl.buf), b"", "bytes after the response: a HEAD body leaked")

    def test_post_with_content_length(self):
        up = self.upstream()
        body = pattern(10000, 3)
        r, _, _ = self.exchange("POST", self.url(up, "/echo"), [("Content-Type", "x/y")], body)
        self.assertEqual((r.status, r.body), (200, body))
        self.assertEqual(r.echo["method"], "POST")
        self.assertEqual(r.echo["body_sha256"], hashlib.sha256(body).hexdigest())
        self.assertOkLogged(up, "/echo")

    def test_chunked_request_with_trailers(self):
        up = self.upstream()
        chunks = [pattern(100), pattern(3000, 100), pattern(1, 3100)]
        wire = b"".join(f"{len(c):x}\r\n".encode() + c + b"\r\n" for c in chunks)
        wire += b"0\r\nX-Req-Trailer: yes\r\n\r\n"
        r, _, _ = self.exchange("POST", self.url(up, "/echo"),
                                [("Transfer-Encoding", "chunked"), ("Trailer", "X-Req-Trailer")], wire)
        self.assertEqual(r.status, 200)
        self.assertEqual(r.body, b"".join(chunks))
        self.assertIn(["X-Req-Trailer", "yes"], r.echo["trailers"], "request trailer not forwarded")

    def test_chunked_response_with_trailers(self):
        up = self.upstream()
        r, cl, _ = self.exchange("GET", self.url(up, "/chunked?size=5000&chunk=333&trailers=1"))
        self.assertEqual((r.status, r.framing, r.body), (200, "chunked", pattern(5000)))
        self.assertIn(("X-Trailer", "done"), r.trailers, "response trailer not forwarded")
        # The connection is still good for another request.
        cl.request("GET", self.url(up, "/ok?size=7"))
        self.assertEqual(cl.read_response().body, pattern(7))

    def test_close_delimited_response(self):
        up = self.upstream()
        r, cl, _ = self.exchange("GET", self.url(up, "/close-delimited?size=5000"))
        self.assertEqual(r.status, 200)
        self.assertTrue(r.complete, r)
        self.assertEqual(r.body, pattern(5000))
        if r.framing == "close":
            self.assertEqual(cl.end, "fin", "a complete close-delimited body must end with FIN")
        self.assertOkLogged(up, "/close-delimited")
        # cutoff closes its side once it has read the upstream's EOF.
        self.assertEqual(up.wait_end(0).kinds()[:2], ["shutdown", "fin"])

    def test_no_body_for_204_304(self):
        up = self.upstream()
        cl = self.client()
        for code in (204, 304):
            cl.request("GET", self.url(up, f"/status?code={code}"))
            r = cl.read_response()
            self.assertEqual((r.status, r.body), (code, b""))
            self.assertIsNone(r.header("Transfer-Encoding"), r)
        cl.request("GET", self.url(up, "/ok?size=3"))
        r = cl.read_response()
        self.assertEqual((r.status, r.body), (200, pattern(3)))
        self.assertEqual(bytes(cl.buf), b"")

    # -- rewriting -----------------------------------------------------------

    def test_request_rewritten_origin_form_host_via_hop_by_hop(self):
        up = self.upstream()
        headers = [
            ("Host", "wrong.example"),
            ("Connection", "X-Named-By-Connection, keep-alive"),
            ("X-Named-By-Connection", "secret"),
            ("Proxy-Connection", "keep-alive"),
            ("Keep-Alive", "timeout=5"),
            ("TE", "trailers"),
            ("Trailer", "X-Nothing"),
            ("Proxy-Authorization", "Basic dXNlcjpwYXNz"),
            ("X-End-To-End", "kept"),
        ]
        r, _, _ = self.exchange("GET", self.url(up, "/echo?q=1&r=%2F"), headers, host=False)
        self.assertEqual(r.status, 200)
        seen = r.echo
        self.assertEqual(seen["target"], "/echo?q=1&r=%2F", "request target must be origin-form")
        self.assertEqual(seen["version"], "HTTP/1.1")
        hosts = [v for k, v in seen["headers"] if k.lower() == "host"]
        self.assertEqual(hosts, [f"127.0.0.1:{up.port}"], "Host must come from the URL")
        vias = [v for k, v in seen["headers"] if k.lower() == "via"]
        self.assertTrue(any("1.1 cutoff" in v for v in vias), f"Via: {vias}")
        names = header_names(seen)
        self.assertNotIn("x-named-by-connection", names)
        for h in HOP_BY_HOP:
            if h == "connection":
                conn = " ".join(v for k, v in seen["headers"] if k.lower() == "connection").lower()
                self.assertNotIn("x-named-by-connection", conn)
                continue
            self.assertNotIn(h, names, f"hop-by-hop {h} forwarded: {seen['headers']}")
        self.assertIn(["X-End-To-End", "kept"], seen["headers"])

    def test_response_hop_by_hop_removed_via_added(self):
        up = self.upstream()
        r, _, _ = self.exchange("GET", self.url(up, "/echo?hop=1"))
        self.assertEqual(r.status, 200)
        names = [k.lower() for k, _ in r.headers]
        for h in ("x-resp-hop", "keep-alive", "proxy-authenticate"):
            self.assertNotIn(h, names, f"{h} forwarded to the client: {r.headers}")
        self.assertNotIn("x-resp-hop", " ".join(r.headers_named("Connection")).lower())
        self.assertEqual(r.header("X-End-To-End"), "kept")
        self.assertTrue(any("cutoff" in v for v in r.headers_named("Via")), f"Via: {r.headers}")

    # -- protocol features ----------------------------------------------------

    def test_expect_100_continue(self):
        up = self.upstream()
        body = pattern(1000)
        cl = self.client()
        cl.request("POST", self.url(up, "/continue"),
                   [("Expect", "100-continue"), ("Content-Length", str(len(body)))])
        interim = cl.read_head(timeout=1.0)  # curl waits 1 s before sending anyway
        self.assertEqual(interim.status, 100, interim)
        cl.send(body)
        r = cl.read_response()
        self.assertEqual(r.status, 200)
        info = json.loads(r.body)
        self.assertEqual(info["body_len"], 1000)
        self.assertEqual(info["body_sha256"], hashlib.sha256(body).hexdigest())

    def test_http10_client_never_gets_chunked(self):
        up = self.upstream()
        r, cl, _ = self.exchange("GET", self.url(up, "/chunked?size=3000&chunk=100"), version="HTTP/1.0")
        self.assertEqual(r.status, 200)
        self.assertIsNone(r.header("Transfer-Encoding"), f"chunked to an HTTP/1.0 client: {r.headers}")
        self.assertTrue(r.complete, r)
        self.assertEqual(r.body, pattern(3000))

    def test_keepalive_reuse_both_sides(self):
        up = self.upstream()
        cl = self.client()
        for i in range(10):
            cl.request("GET", self.url(up, f"/ok?size=50&n={i}"))
            r = cl.read_response()
            self.assertEqual((r.status, r.body), (200, pattern(50)))
        self.assertEqual(up.connection_count(), 1, up.connections())
        self.assertEqual(up.conn(0).request_count, 10)
        entries = self.cutoff.wait_access(target=f":{up.port}/ok?", count=10)
        by_n = {e["target"].rsplit("n=", 1)[1]: e for e in entries}
        self.assertEqual(by_n["0"].get("reused"), "0", by_n["0"]["line"])
        for i in range(1, 10):
            self.assertEqual(by_n[str(i)].get("reused"), "1", by_n[str(i)]["line"])
            self.assertEqual(by_n[str(i)].get("client"), by_n["0"].get("client"))

    def test_pool_shared_across_client_connections_and_no_time_wait_growth(self):
        up = self.upstream()
        for i in range(20):
            r, cl, _ = self.exchange("GET", self.url(up, f"/ok?size=5&n={i}"))
            self.assertEqual(r.status, 200)
            cl.close()
        self.assertEqual(up.connection_count(), 1, "the upstream connection was not pooled")
        self.assertEqual(up.conn(0).request_count, 20)
        self.assertLessEqual(time_wait_count(up.port), 1)

    def test_dead_pooled_connection_retried_for_idempotent_request(self):
        up = self.upstream()
        cl = self.client()
        cl.request("GET", self.url(up, "/ok?size=5&n=0"))
        self.assertEqual(cl.read_response().status, 200)
        up.drop_reused_requests = 1  # the pooled connection dies when reused
        cl.request("GET", self.url(up, "/ok?size=5&n=1"))
        r = cl.read_response()
        self.assertEqual((r.status, r.body), (200, pattern(5)), "GET not retried on a new connection")
        self.assertEqual(up.connection_count(), 2)
        # The fresh connection goes back to the pool like any other.
        cl.request("GET", self.url(up, "/ok?size=5&n=2"))
        self.assertEqual(cl.read_response().status, 200)
        self.assertEqual(up.connection_count(), 2, "the retried connection was not pooled")

    def test_dead_pooled_connection_not_retried_for_request_with_body(self):
        up = self.upstream()
        cl = self.client()
        cl.request("GET", self.url(up, "/ok?size=5"))
        self.assertEqual(cl.read_response().status, 200)
        up.drop_reused_requests = 1
        cl.request("POST", self.url(up, "/echo"), body=b"not idempotent")
        r = cl.read_response()
        self.assertGenerated(r, 502, "connection_terminated")
        self.assertEqual(up.connection_count(), 1, "a POST with a body was retried")

    def test_large_bodies_both_ways(self):
        up = self.upstream()
        body = pattern(4 << 20, 17)
        r, _, _ = self.exchange("POST", self.url(up, "/echo"), body=body, timeout=20)
        self.assertEqual(r.status, 200)
        self.assertEqual(len(r.body), len(body))
        self.assertTrue(r.body == body, "upload/echo corrupted")
        r, _, _ = self.exchange("GET", self.url(up, f"/ok?size={4 << 20}"), timeout=20)
        self.assertTrue(r.body == pattern(4 << 20), "download corrupted")

    def test_full_duplex_streaming(self):
        # The upstream echoes while it reads; the client writes from a thread
        # while it reads. Works only if cutoff streams both ways at once.
        up = self.upstream()
        size = 4 << 20
        body = pattern(size, 5)
        cl = self.client(timeout=20)
        cl.send(build_request("POST", self.url(up, "/echo?stream=1"),
                              [("Content-Length", str(size))]))
        errors = []

        def writer():
            try:
                for i in range(0, size, 65536):
                    cl.sock.sendall(body[i:i + 65536])
            except OSError as e:
                errors.append(e)
        t = threading.Thread(target=writer, daemon=True)
        t.start()
        r = cl.read_response(timeout=20)
        t.join(5)
        self.assertFalse(errors)
        self.assertEqual(r.status, 200)
        self.assertTrue(r.body == body, f"streamed echo corrupted ({len(r.body)} bytes)")

    # -- requests cutoff refuses ---------------------------------------------

    def test_origin_form_request_explains_http_proxy(self):
        r, cl, _ = self.exchange("GET", "/some/path", host=f"127.0.0.1:{self.cutoff.port}")
        self.assertEqual(r.status, 400)
        self.assertIn(b"HTTP_PROXY", r.body)

    def assertBadRequest(self, raw, status):
        up = self.upstream()
        cl = self.client()
        cl.send(raw.replace(b"UPSTREAM", f"127.0.0.1:{up.port}".encode()))
        r = cl.read_response()
        self.assertEqual(r.status, status, f"{r!r} {r.body[:200]!r}")
        self.assertEqual(up.connection_count(), 0, "a bad request reached the upstream")
        self.assertIn(cl.wait_end(1.0), ("fin",), "cutoff should close after a bad request")

    def test_both_content_length_and_transfer_encoding(self):
        self.assertBadRequest(b"POST http://UPSTREAM/echo HTTP/1.1\r\nHost: UPSTREAM\r\n"
                              b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
                              b"0\r\n\r\n", 400)

    def test_differing_duplicate_content_length(self):
        self.assertBadRequest(b"POST http://UPSTREAM/echo HTTP/1.1\r\nHost: UPSTREAM\r\n"
                              b"Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello!", 400)

    def test_obs_fold(self):
        self.assertBadRequest(b"GET http://UPSTREAM/ok HTTP/1.1\r\nHost: UPSTREAM\r\n"
                              b"X-Folded: a\r\n  b\r\n\r\n", 400)

    def test_bare_cr(self):
        self.assertBadRequest(b"GET http://UPSTREAM/ok HTTP/1.1\r\nHost: UPSTREAM\r\n"
                              b"X-Bare: a\rb\r\n\r\n", 400)

    def test_bad_chunk_size(self):
        up = self.upstream()
        cl = self.client()
        cl.request("POST", self.url(up, "/echo"), [("Transfer-Encoding", "chunked")], b"zz\r\nhello\r\n0\r\n\r\n")
        r = cl.read_response()
        # The head may already be on its way upstream; what counts is that
        # the broken body is refused and never answered with a 200.
        self.assertIn(r.status, (400, 502), r)
        self.assertNotEqual(r.status, 200)

    def test_target_over_8k_is_414(self):
        self.assertBadRequest(b"GET http://UPSTREAM/ok?pad=" + b"a" * (9 * 1024)
                              + b" HTTP/1.1\r\nHost: UPSTREAM\r\n\r\n", 414)

    def test_head_over_64k_is_431(self):
        pad = b"".join(b"X-Pad-%d: %s\r\n" % (i, b"p" * 1000) for i in range(70))
        self.assertBadRequest(b"GET http://UPSTREAM/ok HTTP/1.1\r\nHost: UPSTREAM\r\n" + pad + b"\r\n", 431)

    def test_deny_route(self):
        up = self.upstream()
        r, _, _ = self.exchange("GET", self.url(up, "/denied/ok"))
        self.assertGenerated(r, 403, "http_request_denied")
        self.assertEqual(up.connection_count(), 0)
        e = self.cutoff.wait_access(target=f":{up.port}/denied/ok")
        self.assertEqual((e.get("route"), e.get("status")), ("deny-me", "403"), e["line"])

    def test_response_head_over_64k_is_502(self):
        up = self.upstream()
        r, _, _ = self.exchange("GET", self.url(up, "/big-head?size=70000"))
        self.assertGenerated(r, 502, "http_protocol_error")

    def test_unparsable_response_is_502(self):
        up = self.upstream()
        r, _, _ = self.exchange("GET", self.url(up, "/garbage"))
        self.assertGenerated(r, 502, "http_protocol_error")


class MultiWorkerTest(CutoffTestCase):
    """Two event loops (SO_REUSEPORT listeners): concurrent clients all served."""

    CONFIG = {"workers": 2}
    TIME_LIMIT = 15.0

    def test_concurrent_clients(self):
        up = self.upstream()
        results, errors = [], []

        def one(i):
            try:
                cl = Client(self.cutoff.addr, 5)
                for j in range(3):
                    cl.request("GET", self.url(up, f"/ok?size={i * 10 + j}"))
                    r = cl.read_response()
                    results.append(r.body == pattern(i * 10 + j))
                cl.close()
            except Exception as e:  # reported below
                errors.append(repr(e))
        threads = [threading.Thread(target=one, args=(i,), daemon=True) for i in range(20)]
        t0 = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join(10 * SCALE)
        self.assertFalse(errors)
        self.assertEqual(results, [True] * 60)
        self.assertLess(time.monotonic() - t0, 3 * SCALE)


if __name__ == "__main__":
    unittest.main()
