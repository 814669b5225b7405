"""CONNECT and Upgrade tunnels (SPEC sections 1, 4 and 8)."""

import time
import unittest

from fakeupstream import pattern
from harness import CutoffTestCase, ms, tolerance

CONNECT = ms(300)
TUNNEL_IDLE = ms(300)


class TunnelsTest(CutoffTestCase):
    TIME_LIMIT = 10.0

    def open_tunnel(self, port, cutoff=None):
        cl = self.client(cutoff)
        cl.send(f"CONNECT 127.0.0.1:{port} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
        r = cl.read_response("CONNECT")
        return r, cl

    def test_connect_round_trip(self):
        echo = self.echo_server()
        r, cl = self.open_tunnel(echo.port)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(self.round_trip(cl, b"hello"), b"hello")
        big = pattern(2 << 20, 9)
        self.assertTrue(self.round_trip(cl, big) == big, "tunnel corrupted 2 MiB")
        # Half-close travels through: our FIN reaches the target, its FIN us.
        cl.shutdown_write()
        self.assertEqual(cl.wait_end(1.0), "fin")
        self.assertEqual(echo.wait_end(0).state, "fin")
        e = self.cutoff.wait_access(lambda e: e["method"] == "CONNECT", target=f":{echo.port}")
        self.assertEqual(e.get("outcome"), "ok", e["line"])

    def test_connect_target_closes_first(self):
        echo = self.echo_server()
        r, cl = self.open_tunnel(echo.port)
        self.assertEqual(r.status, 200)
        self.assertEqual(self.round_trip(cl, b"x"), b"x")
        cl.close()
        self.assertIn(echo.wait_end(0).state, ("fin", "rst"))

    def test_connect_idle_tunnel_closed_on_both_sides(self):
        bh = self.blackhole()
        r, cl = self.open_tunnel(bh.port)
        self.assertEqual(r.status, 200)
        cl.send(b"some bytes")
        t_last = time.monotonic()
        end = cl.wait_end(TUNNEL_IDLE + 1.0)
        self.assertIn(end, ("fin", "rst"), "client side of the idle tunnel not closed")
        self.assertElapsed(cl.end_time - t_last, TUNNEL_IDLE, "client closed after", early=0.02)
        rec = bh.wait_end(0, 1.0)
        self.assertIn(rec.state, ("fin", "rst"), rec)
        self.assertElapsed(rec.end_time - t_last, TUNNEL_IDLE, "target closed after", early=0.02)
        e = self.cutoff.wait_access(lambda e: e["method"] == "CONNECT", target=f":{bh.port}")
        self.assertEqual(e.get("outcome"), "timeout:tunnel_idle_timeout", e["line"])

    def test_connect_traffic_keeps_tunnel_alive(self):
        echo = self.echo_server()
        r, cl = self.open_tunnel(echo.port)
        self.assertEqual(r.status, 200)
        t0 = time.monotonic()
        while time.monotonic() - t0 < 2 * TUNNEL_IDLE:
            self.assertEqual(self.round_trip(cl, b"."), b".")
            time.sleep(TUNNEL_IDLE / 3)
        self.assertEqual(self.round_trip(cl, b"still up"), b"still up")

    def test_connect_to_full_backlog_504(self):
        fb = self.full_backlog()
        t0 = time.monotonic()
        r, cl = self.open_tunnel(fb.port)
        self.assertGenerated(r, 504, "connection_timeout")
        self.assertElapsed(r.t_head - t0, CONNECT)

    def test_connect_refused_502(self):
        cp = self.closed_port()
        r, _ = self.open_tunnel(cp.port)
        self.assertGenerated(r, 502, "connection_refused")

    def test_connect_port_not_allowed_403(self):
        c = self.dedicated_cutoff({"listen": {"connect_ports": [443]}})
        echo = self.echo_server()
        r, _ = self.open_tunnel(echo.port, cutoff=c)
        self.assertGenerated(r, 403, "http_request_denied")
        self.assertEqual(echo.connection_count(), 0)

    def test_tunnel_max_duration(self):
        echo = self.echo_server()
        c = self.dedicated_cutoff(routes=[{"name": "short", "match": {"port": [echo.port]},
                                           "tunnel_max_duration": "500ms"}])
        r, cl = self.open_tunnel(echo.port, cutoff=c)
        self.assertEqual(r.status, 200)
        t0 = r.t_head
        limit = ms(500)
        # Keep bytes flowing (so idle never fires) until the tunnel is cut.
        while time.monotonic() - t0 < limit + tolerance(limit) + 0.5:
            try:
                cl.sock.sendall(b".")
                cl.read_exactly(1, timeout=TUNNEL_IDLE)
            except Exception:
                break
            time.sleep(TUNNEL_IDLE / 4)
        end = cl.wait_end(1.0)
        self.assertIn(end, ("fin", "rst"))
        self.assertElapsed(cl.end_time - t0, limit, "tunnel cut after", early=0.02)
        e = c.wait_access(lambda e: e["method"] == "CONNECT")
        self.assertEqual(e.get("outcome"), "timeout:tunnel_max_duration", e["line"])

    # -- Upgrade -----------------------------------------------------------------

    def open_upgrade(self, up):
        cl = self.client()
        cl.request("GET", self.url(up, "/upgrade"), [("Connection", "Upgrade"), ("Upgrade", "websocket"),
                                                    ("Sec-WebSocket-Version", "13")])
        return cl.read_response(), cl

    def test_upgrade_works_both_ways(self):
        up = self.upstream()
        r, cl = self.open_upgrade(up)
        self.assertEqual(r.status, 101, r)
        self.assertEqual((r.header("Upgrade") or "").lower(), "websocket")
        self.assertTrue(r.has_token("Connection", "upgrade"), r.headers)
        self.assertEqual(self.round_trip(cl, b"\x81\x05hello"), b"\x81\x05hello")
        big = pattern(1 << 20, 1)
        self.assertTrue(self.round_trip(cl, big) == big)
        cl.shutdown_write()
        self.assertEqual(cl.wait_end(1.0), "fin")
        self.assertEqual(up.wait_end(0).state, "fin")

    def test_upgrade_idle_tunnel_closed(self):
        up = self.upstream()
        r, cl = self.open_upgrade(up)
        self.assertEqual(r.status, 101)
        t0 = r.t_head
        self.assertIn(cl.wait_end(TUNNEL_IDLE + 1.0), ("fin", "rst"))
        self.assertElapsed(cl.end_time - t0, TUNNEL_IDLE, "upgraded tunnel closed after", early=0.02)
        rec = up.wait_end(0, 1.0)
        self.assertIn(rec.state, ("fin", "rst"))

    def test_upgrade_refused_by_upstream_is_plain_response(self):
        up = self.upstream()
        cl = self.client()
        # /ok ignores Upgrade and answers 200: no tunnel, connection reusable.
        cl.request("GET", self.url(up, "/ok?size=4"), [("Connection", "Upgrade"), ("Upgrade", "websocket")])
        r = cl.read_response()
        self.assertEqual((r.status, r.body), (200, pattern(4)))
        if r.has_token("Connection", "close"):
            self.assertEqual(cl.wait_end(1.0), "fin")
            return  # announced: closing is allowed
        # Not announced: the connection must still serve a request.
        cl.request("GET", self.url(up, "/ok?size=6"))
        self.assertEqual(cl.read_response().body, pattern(6))


if __name__ == "__main__":
    unittest.main()
