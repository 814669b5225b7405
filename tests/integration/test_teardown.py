"""SPEC sections 4-6 end to end: one real scenario per row of the section 6
error table, teardown as the peer sees it (section 5), the "off" switches of
section 4, and TIME_WAIT that does not grow with the request count.

SPEC section 6 row -> test (rows a section 8 scenario already proves are
tested in test_scenarios.py, named here):

  dns_error (502) ............... test_scenarios: test_host_under_invalid
  dns_timeout (504) ............. not here: producing it needs a slow resolver,
      and any real lookup would leave loopback; tests/server/test_resolution.cpp
      covers the row by injecting a slow resolver into the server object.
  connection_refused (502) ...... test_row_connection_refused
  connection_timeout (504) ...... test_scenarios: test_upstream_never_completes_handshake,
                                  test_connect_to_target_never_completing_handshake
  connection_terminated (502) ... test_scenarios: test_upstream_closes_without_answering,
                                  test_upstream_resets_without_answering
  http_response_timeout (504) ... test_scenarios: test_upstream_accepts_and_never_answers
      (head too slow), test_upstream_never_reads_large_request_body (idle before
      the response); here test_row_http_response_timeout_by_request_timeout
  http_protocol_error (502) ..... test_row_http_protocol_error
  http_request_denied (403) ..... test_row_http_request_denied_by_route,
      test_row_http_request_denied_by_connect_port; by the client ACL: test_closing's
      ClientAclTest (a stranger is refused at accept; a 403 once a reload narrows
      allow_clients under an open connection)
  bad request (400/414/431) ..... test_row_bad_request_400_414_431
  client too slow (408) ......... test_scenarios: test_client_sends_head_one_byte_at_a_time

Teardown: teardown = "reset" (the default) is asserted by every test_scenarios
test whose deadline fires (the upstream sees RST at the deadline, the client
the whole error response then FIN, or RST when a response had started); the
test_teardown_graceful_* tests here cover teardown = "graceful".
"""

from __future__ import annotations

import time
import unittest

from fakeupstream import pattern
from harness import (SCALE, SLACK, ConnectionEnded, CutoffTestCase, build_request, ms, shown,
                     time_limit, time_wait_count, tolerance)

LINGER = ms(200)  # harness default linger_timeout
QUICK = 0.1 + SLACK  # "at once": an ending that needs no deadline


class TeardownTest(CutoffTestCase):
    ROUTES = [
        {"name": "graceful", "match": {"path_prefix": "/graceful/"}, "teardown": "graceful",
         "response_header_timeout": "300ms", "idle_timeout": "250ms"},
        {"name": "reqtimeout-head", "match": {"path_prefix": "/reqtimeout-head/"},
         "request_timeout": "350ms", "response_header_timeout": "2s"},
        {"name": "deny", "match": {"path_prefix": "/deny/"}, "action": "deny"},
        {"name": "origin", "match": {"path_prefix": "/o/"}},
    ]
    TIME_LIMIT = 10.0

    # == SPEC section 6 rows no test_scenarios scenario covers =====================

    @time_limit(5)
    def test_row_connection_refused(self):
        cp = self.closed_port()
        r, cl, elapsed = self.exchange("GET", f"http://127.0.0.1:{cp.port}/o/x")
        self.assertGenerated(r, 502, "connection_refused")
        self.assertDetails(r, f"127.0.0.1:{cp.port}", route="origin")
        self.assertLess(elapsed, QUICK)
        self.assertWholeThenFin(r, cl)
        self.assertOutcome(f":{cp.port}/o/x", 502, "error:connection_refused", "origin")

    @time_limit(5)
    def test_row_http_protocol_error(self):
        up = self.upstream()
        r, cl, elapsed = self.exchange("GET", self.url(up, "/o/garbage"))
        self.assertGenerated(r, 502, "http_protocol_error")
        self.assertDetails(r, self.hostport(up), route="origin")
        self.assertLess(elapsed, QUICK)
        self.assertWholeThenFin(r, cl)
        self.assertOutcome(f":{up.port}/o/garbage", 502, "error:http_protocol_error", "origin")

    @time_limit(5)
    def test_row_http_response_timeout_by_request_timeout(self):
        # request_timeout (350 ms) before the response started: a 504 like
        # idle_timeout's, naming request_timeout's value, not the head's 2 s.
        up = self.upstream()
        r, cl, elapsed = self.exchange("GET", self.url(up, "/reqtimeout-head/hang"))
        self.assertGenerated(r, 504, "http_response_timeout")
        self.assertDetails(r, self.hostport(up), shown(350), "reqtimeout-head")
        self.assertElapsed(elapsed, ms(350), "504 after")
        self.assertWholeThenFin(r, cl)
        self.assertUpstreamEnd(up, "rst")
        self.assertOutcome(f":{up.port}/reqtimeout-head/", 504, "timeout:request_timeout",
                           "reqtimeout-head")

    @time_limit(5)
    def test_row_http_request_denied_by_route(self):
        up = self.upstream()
        r, cl, _ = self.exchange("GET", self.url(up, "/deny/ok"))
        self.assertGenerated(r, 403, "http_request_denied")
        self.assertDetails(r, self.hostport(up), route="deny")
        self.assertWholeThenFin(r, cl)
        self.assertEqual(up.connection_count(), 0)
        self.assertOutcome(f":{up.port}/deny/ok", 403, "error:http_request_denied", "deny")

    @time_limit(5)
    def test_row_http_request_denied_by_connect_port(self):
        c = self.dedicated_cutoff({"listen": {"connect_ports": [443]}})
        echo = self.echo_server()
        r, cl, _ = self.connect_tunnel(echo.port, cutoff=c)
        self.assertGenerated(r, 403, "http_request_denied")
        self.assertDetails(r, also=[str(echo.port)])
        self.assertWholeThenFin(r, cl)
        self.assertEqual(echo.connection_count(), 0)

    @time_limit(5)
    def test_row_bad_request_400_414_431(self):
        up = self.upstream()
        hp = self.hostport(up).encode()
        cases = [
            (400, b"POST http://UP/o/echo HTTP/1.1\r\nHost: UP\r\nContent-Length: 5\r\n"
                  b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
            (414, b"GET http://UP/o/ok?pad=" + b"a" * (9 * 1024) + b" HTTP/1.1\r\nHost: UP\r\n\r\n"),
            (431, b"GET http://UP/o/ok HTTP/1.1\r\nHost: UP\r\n"
                  + b"".join(b"X-Pad-%d: %s\r\n" % (i, b"p" * 1000) for i in range(70)) + b"\r\n"),
        ]
        for status, raw in cases:
            with self.subTest(status=status):
                cl = self.client()
                cl.send(raw.replace(b"UP", hp))
                r = cl.read_response()
                self.assertGenerated(r, status)
                self.assertEqual(r.proxy_status.get("name"), "cutoff", r.headers)
                self.assertNotIn("error", r.proxy_status, "a bad request has no Proxy-Status error token")
                self.assertTrue(r.proxy_status.get("details"), r.headers)
                self.assertWholeThenFin(r, cl, f"{status}")
        self.assertEqual(up.connection_count(), 0, "a bad request reached the upstream")

    # == Teardown as the upstream sees it (SPEC section 5) =======================
    # teardown = "reset" is asserted by the scenarios above (default routes).

    @time_limit(5)
    def test_teardown_graceful_upstream_sees_fin(self):
        up = self.upstream()
        r, cl, elapsed = self.exchange("GET", self.url(up, "/graceful/hang"))
        self.assertGenerated(r, 504, "http_response_timeout")
        self.assertDetails(r, self.hostport(up), shown(300), "graceful")
        self.assertElapsed(elapsed, ms(300), "504 after")
        self.assertWholeThenFin(r, cl)
        rec = self.assertUpstreamEnd(up, "fin")  # FIN first, not RST
        self.assertNotIn("rst", rec.kinds(), rec)
        self.assertElapsed(rec.end_time - rec.requests[0].t_head, ms(300), "upstream FIN after",
                           early=0.02)
        self.assertOutcome(f":{up.port}/graceful/hang", 504, "timeout:response_header_timeout", "graceful")

    @time_limit(5)
    def test_teardown_graceful_linger_expires_with_rst(self):
        # The upstream keeps its side open after our FIN: after linger_timeout
        # cutoff gives up with an RST.
        up = self.upstream()
        r, cl, _ = self.exchange("GET", self.url(up, "/graceful/hang?on_fin=ignore"))
        self.assertGenerated(r, 504, "http_response_timeout")
        self.assertWholeThenFin(r, cl)
        t_fin = up.wait_event("fin", 0)
        t_rst = up.wait_event("rst", 0, timeout=LINGER + 1.0)
        rec = up.conn(0)
        self.assertEqual(rec.kinds()[:2], ["fin", "rst"], rec)
        self.assertElapsed(t_fin - rec.requests[0].t_head, ms(300), "upstream FIN after", early=0.02)
        self.assertElapsed(t_rst - t_fin, LINGER, "linger RST after the FIN")

    @time_limit(5)
    def test_teardown_graceful_response_started_client_rst(self):
        # The response had started: the client is reset whatever the route's
        # teardown; the upstream still gets the graceful FIN.
        up = self.upstream()
        cl = self.client()
        cl.request("GET", self.url(up, "/graceful/stall-mid-body?size=10000&sent=1000"))
        r = cl.read_response(timeout=ms(250) + 2.0)
        self.assertEqual(r.status, 200)
        self.assertFalse(r.complete)
        self.assertEqual(r.body, pattern(1000))
        self.assertEqual(cl.end, "rst", "a truncated response must end in RST")
        self.assertElapsed(cl.end_time - r.t_head, ms(250), "client RST after", early=0.02)
        rec = self.assertUpstreamEnd(up, "fin")
        self.assertElapsed(rec.end_time - rec.requests[0].t_head, ms(250), "upstream FIN after",
                           early=0.02)
        self.assertOutcome(f":{up.port}/graceful/stall", 200, "timeout:idle_timeout", "graceful")



    # == TIME_WAIT ===============================================================

    @time_limit(20)
    def test_time_wait_does_not_grow(self):
        up = self.upstream()
        before = time_wait_count(up.port)
        cl = self.client()
        req = build_request("GET", self.url(up, "/ok"))
        for i in range(2000):
            cl.send(req)
            r = cl.read_response()
            if r.status != 200 or r.body != pattern(5):
                self.fail(f"request {i}: {r!r}")
        after = time_wait_count(up.port)
        self.assertEqual(up.connection_count(), 1, "upstream connections were not reused")
        self.assertEqual(up.conn(0).request_count, 2000)
        self.assertLessEqual(after - before, 5, f"TIME_WAIT on the upstream port: {before} -> {after}")


class OffSwitchTest(CutoffTestCase):
    """"off" disables a deadline only where it is off: the defaults here cap
    requests at 400 ms and tunnels at 400 ms; the "unbounded" routes turn both
    off. Plus tunnel_max_duration on a route closing an active tunnel."""

    CONFIG = {"defaults": {"request_timeout": "400ms", "tunnel_max_duration": "400ms"}}
    ROUTES = [
        {"name": "unbounded", "match": {"path_prefix": "/unbounded/"},
         "request_timeout": "off", "tunnel_max_duration": "off"},
        {"name": "connect-unbounded", "match": {"method": ["CONNECT"]}, "tunnel_max_duration": "off"},
    ]
    CAP = ms(400)
    TUNNEL_IDLE = ms(300)  # harness default

    def keep_tunnel_busy(self, cl, until: float):
        """Round trips of one byte every tunnel_idle/4 (so tunnel_idle_timeout
        never fires) until `until` or the tunnel ends; returns the count."""
        n = 0
        while time.monotonic() < until:
            try:
                cl.sock.sendall(b".")
                if cl.read_exactly(1, timeout=self.TUNNEL_IDLE / SCALE) != b".":
                    self.fail("tunnel echoed the wrong byte")
            except (OSError, ConnectionEnded, TimeoutError):
                break
            n += 1
            time.sleep(self.TUNNEL_IDLE / 4)
        return n

    @time_limit(6)
    def test_request_timeout_off_lets_drip_run_past_it(self):
        # 16 bytes, one per 50 ms: 800 ms, twice the default request_timeout;
        # no gap reaches idle_timeout (300 ms).
        up = self.upstream()
        r, _, elapsed = self.exchange("GET", self.url(up, "/unbounded/drip?size=16&interval=%d" % (50 * SCALE)))
        self.assertEqual((r.status, r.body), (200, pattern(16)))
        self.assertTrue(r.complete)
        self.assertGreater(elapsed, self.CAP + tolerance(self.CAP), "the drip did not outlast the cap")
        self.assertOutcome(f":{up.port}/unbounded/drip", 200, "ok", "unbounded")

    @time_limit(6)
    def test_request_timeout_on_cuts_the_same_drip(self):
        up = self.upstream()
        cl = self.client()
        t0 = time.monotonic()
        cl.request("GET", self.url(up, "/drip?size=16&interval=%d" % (50 * SCALE)))
        r = cl.read_response(timeout=self.CAP + 2.0)
        self.assertEqual(r.status, 200)
        self.assertFalse(r.complete)
        self.assertEqual(cl.end, "rst")
        self.assertElapsed(cl.end_time - t0, self.CAP, "request_timeout abort after")
        self.assertUpstreamEnd(up, "rst")
        self.assertOutcome(f":{up.port}/drip", 200, "timeout:request_timeout", "default")

    @time_limit(6)
    def test_tunnel_max_duration_off_keeps_active_connect_tunnel(self):
        echo = self.echo_server()
        r, cl, _ = self.connect_tunnel(echo.port)
        self.assertEqual(r.status, 200, r)
        until = r.t_head + 2 * self.CAP
        self.keep_tunnel_busy(cl, until)
        self.assertGreaterEqual(time.monotonic(), until, "the tunnel ended early")
        self.assertEqual(self.round_trip(cl, b"still up"), b"still up")
        cl.shutdown_write()
        self.assertEqual(cl.wait_end(1.0), "fin")
        self.assertEqual(echo.wait_end(0).state, "fin")
        self.assertOutcome(f"127.0.0.1:{echo.port}", 200, "ok", "connect-unbounded",
                           pred=lambda e: e["method"] == "CONNECT")

    def open_upgrade(self, up, path):
        cl = self.client()
        cl.request("GET", self.url(up, path), [("Connection", "Upgrade"), ("Upgrade", "websocket")])
        r = cl.read_response()
        self.assertEqual(r.status, 101, r)
        return r, cl

    @time_limit(6)
    def test_tunnel_max_duration_off_keeps_active_upgrade_tunnel(self):
        up = self.upstream()
        r, cl = self.open_upgrade(up, "/unbounded/upgrade")
        until = r.t_head + 2 * self.CAP
        self.keep_tunnel_busy(cl, until)
        self.assertGreaterEqual(time.monotonic(), until, "the upgraded connection ended early")
        self.assertEqual(self.round_trip(cl, b"still up"), b"still up")
        cl.shutdown_write()
        self.assertEqual(cl.wait_end(1.0), "fin")
        self.assertOutcome(f":{up.port}/unbounded/upgrade", 101, "ok", "unbounded")

    @time_limit(6)
    def test_tunnel_max_duration_closes_active_upgrade_tunnel(self):
        up = self.upstream()
        r, cl = self.open_upgrade(up, "/upgrade")
        n = self.keep_tunnel_busy(cl, r.t_head + self.CAP + tolerance(self.CAP) + 0.5 * SCALE)
        self.assertGreater(n, 2, "the tunnel was not active")
        self.assertIn(cl.wait_end(1.0), ("fin", "rst"))
        self.assertElapsed(cl.end_time - r.t_head, self.CAP, "tunnel cut after", early=0.02)
        rec = self.assertUpstreamEnd(up, "rst")  # a deadline fired: teardown "reset"
        self.assertElapsed(rec.end_time - r.t_head, self.CAP, "upstream reset after", early=0.02)
        self.assertOutcome(f":{up.port}/upgrade", 101, "timeout:tunnel_max_duration", "default")

    @time_limit(6)
    def test_tunnel_max_duration_on_route_closes_active_connect_tunnel(self):
        echo = self.echo_server()
        c = self.dedicated_cutoff(routes=[{"name": "short-tunnels", "match": {"port": [echo.port]},
                                           "tunnel_max_duration": "450ms"}])
        r, cl, _ = self.connect_tunnel(echo.port, cutoff=c)
        self.assertEqual(r.status, 200, r)
        limit = ms(450)
        n = self.keep_tunnel_busy(cl, r.t_head + limit + tolerance(limit) + 0.5 * SCALE)
        self.assertGreater(n, 2, "the tunnel was not active")
        self.assertIn(cl.wait_end(1.0), ("fin", "rst"))
        self.assertElapsed(cl.end_time - r.t_head, limit, "tunnel cut after", early=0.02)
        rec = self.assertUpstreamEnd(echo, "rst")
        self.assertElapsed(rec.end_time - r.t_head, limit, "target reset after", early=0.02)
        self.assertOutcome(f"127.0.0.1:{echo.port}", 200, "timeout:tunnel_max_duration", "short-tunnels",
                           cutoff=c, pred=lambda e: e["method"] == "CONNECT")


if __name__ == "__main__":
    unittest.main()
