"""Every wait has a deadline (SPEC sections 4-6): misbehaving upstreams and clients.

Each test asserts the status and Proxy-Status token, that the deadline fired
neither early nor more than max(50 ms, 5 %) + slack late, how the upstream saw
its connection end, and (in tearDown) that nothing was left behind."""

import threading
import time
import unittest

from fakeupstream import pattern
from harness import (SCALE, SLACK, BackgroundUpload, Client, CutoffTestCase, Dribble,
                     build_request, ms, time_wait_count, tolerance)

LINGER = ms(200)
REQUEST_HEADER = ms(500)
CLIENT_KEEPALIVE = ms(300)
CONNECT = ms(300)
RESPONSE_HEADER = ms(400)
IDLE = ms(300)
UPSTREAM_KEEPALIVE = ms(300)
REQUEST_TIMEOUT = ms(500)  # only on the "reqtimeout" route
QUICK = 0.1 + SLACK  # "at once": an error that needs no deadline


class TimeoutsTest(CutoffTestCase):
    ROUTES = [
        {"name": "graceful", "match": {"path_prefix": "/graceful/"}, "teardown": "graceful"},
        {"name": "reqtimeout", "match": {"path_prefix": "/reqtimeout/"},
         "request_timeout": "500ms"},
    ]
    TIME_LIMIT = 10.0

    def outcome(self, up, path):
        return self.cutoff.wait_access(target=f":{up.port}{path}")

    # -- the upstream never answers --------------------------------------------

    def test_hang_504_and_upstream_reset(self):
        up = self.upstream()
        r, cl, elapsed = self.exchange("GET", self.url(up, "/hang"))
        self.assertGenerated(r, 504, "http_response_timeout")
        self.assertElapsed(elapsed, RESPONSE_HEADER, "504 after")
        rec = self.assertUpstreamEnd(up, "rst")
        self.assertElapsed(rec.end_time - rec.requests[0].t_head, RESPONSE_HEADER,
                           "upstream reset after", early=0.02)
        self.assertEqual(cl.wait_end(), "fin")
        e = self.outcome(up, "/hang")
        self.assertEqual((e.get("status"), e.get("outcome")), ("504", "timeout:response_header_timeout"),
                         e["line"])

    def test_hang_graceful_teardown_upstream_closes(self):
        up = self.upstream()
        r, _, elapsed = self.exchange("GET", self.url(up, "/graceful/hang"))
        self.assertGenerated(r, 504, "http_response_timeout")
        self.assertElapsed(elapsed, RESPONSE_HEADER)
        rec = self.assertUpstreamEnd(up, "fin")  # FIN first, not RST
        self.assertElapsed(rec.end_time - rec.requests[0].t_head, RESPONSE_HEADER, early=0.02)
        self.assertEqual(self.outcome(up, "/graceful/hang").get("route"), "graceful")

    def test_hang_graceful_teardown_linger_expires_with_rst(self):
        up = self.upstream()
        r, _, _ = self.exchange("GET", self.url(up, "/graceful/hang?on_fin=ignore"))
        self.assertGenerated(r, 504, "http_response_timeout")
        t_fin = up.wait_event("fin", 0)
        t_rst = up.wait_event("rst", 0, timeout=LINGER + 1.0)
        self.assertEqual(up.conn(0).kinds()[:2], ["fin", "rst"], up.conn(0))
        self.assertElapsed(t_rst - t_fin, LINGER, "linger RST after FIN")

    def test_slow_head_within_deadline_is_fine(self):
        up = self.upstream()
        r, _, elapsed = self.exchange("GET", self.url(up, "/slow-head?delay=%d" % (250 * SCALE)))
        self.assertEqual((r.status, r.body), (200, pattern(5)))
        self.assertEqual(self.outcome(up, "/slow-head").get("outcome"), "ok")

    def test_slow_head_beyond_deadline(self):
        up = self.upstream()
        r, _, elapsed = self.exchange("GET", self.url(up, "/slow-head?delay=%d" % (2000 * SCALE)))
        self.assertGenerated(r, 504, "http_response_timeout")
        self.assertElapsed(elapsed, RESPONSE_HEADER)
        self.assertUpstreamEnd(up, "rst")

    # -- connecting --------------------------------------------------------------

    def test_connect_never_completes_504(self):
        fb = self.full_backlog()
        r, _, elapsed = self.exchange("GET", f"http://127.0.0.1:{fb.port}/x")
        self.assertGenerated(r, 504, "connection_timeout")
        self.assertElapsed(elapsed, CONNECT)
        e = self.cutoff.wait_access(target=f":{fb.port}/x")
        self.assertEqual(e.get("outcome"), "timeout:connect_timeout", e["line"])

    def test_connection_refused_502_at_once(self):
        cp = self.closed_port()
        r, _, elapsed = self.exchange("GET", f"http://127.0.0.1:{cp.port}/x")
        self.assertGenerated(r, 502, "connection_refused")
        self.assertLess(elapsed, QUICK)
        e = self.cutoff.wait_access(target=f":{cp.port}/x")
        self.assertEqual(e.get("outcome"), "error:connection_refused", e["line"])

    # -- the upstream goes away -------------------------------------------------

    def test_close_without_answer_502(self):
        up = self.upstream()
        r, _, elapsed = self.exchange("GET", self.url(up, "/close"))
        self.assertGenerated(r, 502, "connection_terminated")
        self.assertLess(elapsed, QUICK)
        self.assertEqual(self.outcome(up, "/close").get("outcome"), "error:connection_terminated")

    def test_reset_without_answer_502(self):
        up = self.upstream()
        r, _, elapsed = self.exchange("GET", self.url(up, "/reset"))
        self.assertGenerated(r, 502, "connection_terminated")
        self.assertLess(elapsed, QUICK)

    def test_stall_mid_body_client_gets_partial_then_rst(self):
        up = self.upstream()
        cl = self.client()
        cl.request("GET", self.url(up, "/stall-mid-body?size=10000&sent=1000"))
        r = cl.read_response(timeout=IDLE + 2.0)
        self.assertEqual(r.status, 200)
        self.assertEqual(r.header("Content-Length"), "10000")
        self.assertFalse(r.complete)
        self.assertEqual(r.body, pattern(1000))
        self.assertEqual(cl.end, "rst", "a truncated response must end in RST")
        self.assertElapsed(cl.end_time - r.t_head, IDLE, "client RST after the stall", early=0.02)
        rec = self.assertUpstreamEnd(up, "rst")
        self.assertElapsed(rec.end_time - rec.requests[0].t_head, IDLE, "upstream reset", early=0.02)
        e = self.outcome(up, "/stall-mid-body")
        self.assertEqual(e.get("outcome"), "timeout:idle_timeout", e["line"])

    def test_reset_mid_body_client_gets_rst(self):
        up = self.upstream()
        cl = self.client()
        cl.request("GET", self.url(up, "/reset-mid-body?size=10000&sent=1000&delay=50"))
        r = cl.read_response()
        self.assertFalse(r.complete)
        self.assertEqual(r.body, pattern(1000))
        self.assertEqual(cl.end, "rst")
        self.assertLess(cl.end_time - r.t_head, ms(50) + QUICK)
        e = self.outcome(up, "/reset-mid-body")
        self.assertTrue(e.get("outcome", "").startswith("error:"), e["line"])

    def test_drip_ends_only_by_request_timeout(self):
        up = self.upstream()
        cl = self.client()
        t0 = time.monotonic()
        cl.request("GET", self.url(up, "/reqtimeout/drip?interval=%d" % (50 * SCALE)))
        r = cl.read_response(timeout=REQUEST_TIMEOUT + 2.0)
        self.assertEqual(r.status, 200)
        self.assertFalse(r.complete)
        self.assertGreater(len(r.body), 3, "the drip should have flowed for a while")
        self.assertEqual(cl.end, "rst")
        self.assertElapsed(cl.end_time - t0, REQUEST_TIMEOUT, "request_timeout abort")
        self.assertUpstreamEnd(up, "rst")
        e = self.outcome(up, "/reqtimeout/drip")
        self.assertEqual(e.get("outcome"), "timeout:request_timeout", e["line"])

    def test_drip_slower_than_nothing_but_faster_than_idle_completes(self):
        up = self.upstream()
        # 12 bytes at 50 ms: 600 ms in all, twice idle_timeout; no gap reaches it.
        r, _, elapsed = self.exchange("GET", self.url(up, "/drip?size=12&interval=%d" % (50 * SCALE)))
        self.assertEqual((r.status, r.body), (200, pattern(12)))
        self.assertGreater(elapsed, IDLE)

    def test_close_less_upstream_does_not_hold_the_exchange(self):
        up = self.upstream()
        r, cl, elapsed = self.exchange("GET", self.url(up, "/close-less?size=100"))
        self.assertEqual((r.status, r.body), (200, pattern(100)))
        self.assertLess(elapsed, QUICK)
        # cutoff honours the upstream's Connection: close by closing itself.
        rec = self.assertUpstreamEnd(up, "fin", timeout=IDLE + 1.0)
        self.assertLess(rec.end_time - rec.response_ends[0], QUICK)
        self.assertEqual(self.outcome(up, "/close-less").get("outcome"), "ok")

    def test_upstream_never_reads_large_request_body(self):
        up = self.upstream()
        cl = self.client()
        total = 64 << 20
        cl.send(build_request("POST", self.url(up, "/no-read-body"), [("Content-Length", str(total))]))
        t0 = time.monotonic()
        with BackgroundUpload(cl, total):
            r = cl.read_response(timeout=RESPONSE_HEADER + 2.0)
        elapsed = r.t_head - t0
        self.assertGenerated(r, 504, "http_response_timeout")
        lo, hi = min(IDLE, RESPONSE_HEADER), max(IDLE, RESPONSE_HEADER)
        self.assertTrue(lo - 0.005 <= elapsed <= hi + tolerance(hi) + 0.05,
                        f"504 after {elapsed * 1000:.0f} ms, want {lo * 1000:.0f}..{hi * 1000:.0f} ms")
        self.assertUpstreamEnd(up, "rst")
        e = self.outcome(up, "/no-read-body")
        self.assertIn(e.get("outcome"), ("timeout:idle_timeout", "timeout:response_header_timeout"),
                      e["line"])

    # -- pooled and idle connections ---------------------------------------------

    def test_pooled_upstream_closed_after_upstream_keepalive_timeout(self):
        up = self.upstream()
        r, cl, _ = self.exchange("GET", self.url(up, "/ok"))
        self.assertEqual(r.status, 200)
        cl.close()
        rec = self.assertUpstreamEnd(up, "fin", timeout=UPSTREAM_KEEPALIVE + 1.0)
        self.assertElapsed(rec.end_time - rec.response_ends[-1], UPSTREAM_KEEPALIVE,
                           "pooled connection closed after", early=0.02)

    def test_idle_client_keepalive_closed_with_fin(self):
        up = self.upstream()
        r, cl, _ = self.exchange("GET", self.url(up, "/ok"))
        self.assertEqual(r.status, 200)
        t_resp = time.monotonic()
        self.assertEqual(cl.wait_end(CLIENT_KEEPALIVE + 1.0), "fin")
        self.assertEqual(bytes(cl.buf), b"", "nothing may be sent on an idle close")
        self.assertElapsed(cl.end_time - t_resp, CLIENT_KEEPALIVE, "idle client closed after", early=0.02)

    def test_connection_that_never_sends_is_closed(self):
        cl = self.client()
        t0 = time.monotonic()
        self.assertEqual(cl.wait_end(REQUEST_HEADER + 1.0), "fin")
        lo, hi = min(CLIENT_KEEPALIVE, REQUEST_HEADER), max(CLIENT_KEEPALIVE, REQUEST_HEADER)
        elapsed = cl.end_time - t0
        self.assertTrue(lo - 0.005 <= elapsed <= hi + tolerance(hi),
                        f"closed after {elapsed * 1000:.0f} ms")

    # -- slow clients ---------------------------------------------------------------

    def test_slow_request_head_408(self):
        cl = self.client()
        t0 = time.monotonic()
        cl.send(b"GET http://127.0.0.1:9/ok HTTP/1.1\r\nHost: 127.0.0.1:9\r\n")
        r = cl.read_response(timeout=REQUEST_HEADER + 2.0)
        self.assertGenerated(r, 408)
        self.assertElapsed(r.t_head - t0, REQUEST_HEADER, "408 after")
        self.assertEqual(cl.wait_end(LINGER + 1.0), "fin")

    def test_head_one_byte_at_a_time_408_from_first_byte(self):
        cl = self.client()
        t0 = time.monotonic()
        cl.send(b"G")
        rest = b"ET http://127.0.0.1:9/ok HTTP/1.1\r\nX-Slow: " + b"a" * 1000
        with Dribble(cl, rest, 0.1 * SCALE):
            r = cl.read_response(timeout=REQUEST_HEADER + 2.0)
        self.assertGenerated(r, 408)
        self.assertElapsed(r.t_head - t0, REQUEST_HEADER, "408 after (progress must not extend it)")

    def test_client_vanishes_mid_request_body(self):
        up = self.upstream()
        cl = self.client()
        cl.send(build_request("POST", self.url(up, "/echo"), [("Content-Length", "100000")]) + b"x" * 1000)
        self.assertTrue(up.wait_requests(1, 1.0 * SCALE))
        t = time.monotonic()
        cl.abort()
        rec = up.wait_end(0, 1.0 * SCALE)
        self.assertIn(rec.state, ("rst", "fin"), rec)
        self.assertLess(rec.end_time - t, QUICK, "upstream not torn down when the client vanished")
        e = self.outcome(up, "/echo")
        self.assertEqual(e.get("outcome"), "client_abort", e["line"])

    def test_client_stops_reading_large_response(self):
        up = self.upstream()
        rss0 = self.cutoff.rss_kb()
        cl = self.client()
        size = 64 << 20
        cl.request("GET", self.url(up, f"/ok?size={size}"))
        # cutoff must stop reading the upstream (bounded memory), then give
        # up after idle_timeout without progress.
        rec = up.wait_end(0, IDLE + 3.0 * SCALE)
        self.assertEqual(rec.state, "rst", rec)
        self.assertLess(rec.bytes_out, size)
        growth_mb = (self.cutoff.rss_kb() - rss0) / 1024
        self.assertLess(growth_mb, 24, f"cutoff RSS grew {growth_mb:.0f} MB: response buffered?")
        self.assertEqual(cl.wait_end(2.0), "rst", "the aborted response must end in RST")
        e = self.outcome(up, "/ok?size=")
        self.assertEqual(e.get("outcome"), "timeout:idle_timeout", e["line"])

    # -- isolation -------------------------------------------------------------------

    def test_hanging_upstreams_do_not_slow_others(self):
        hang = self.upstream()
        ok = self.upstream()
        results = {}

        def go(key, url):
            try:
                c = Client(self.cutoff.addr, 5)
                t0 = time.monotonic()
                c.request("GET", url)
                r = c.read_response()
                results[key] = (r.status, time.monotonic() - t0)
                c.close()
            except Exception as e:
                results[key] = (repr(e), None)
        # A fresh server may reuse a port that older sockets still hold in
        # TIME_WAIT: count what this test adds, not what was there.
        time_wait_before = time_wait_count(hang.port)
        threads = [threading.Thread(target=go, args=(("hang", i), self.url(hang, f"/hang?i={i}")))
                   for i in range(10)]
        for t in threads:
            t.start()
        self.assertTrue(hang.wait_requests(10, 2.0 * SCALE), "hanging requests did not all arrive")
        fast = [threading.Thread(target=go, args=(("ok", i), self.url(ok, f"/ok?i={i}")))
                for i in range(10)]
        for t in fast:
            t.start()
        for t in threads + fast:
            t.join(5 * SCALE)
        for i in range(10):
            status, took = results[("ok", i)]
            self.assertEqual(status, 200, results)
            self.assertLess(took, 0.1 + SLACK, f"ok request {i} took {took * 1000:.0f} ms")
            status, took = results[("hang", i)]
            self.assertEqual(status, 504, results)
            self.assertLess(took, RESPONSE_HEADER + tolerance(RESPONSE_HEADER) + SLACK)
        # Stuck upstreams are reset, so none of them lingers in TIME_WAIT.
        self.assertTrue(hang.wait_all_closed(1.0 * SCALE))
        self.assertEqual([r.state for r in hang.connections()], ["rst"] * 10)
        self.assertLessEqual(time_wait_count(hang.port), time_wait_before)


if __name__ == "__main__":
    unittest.main()
