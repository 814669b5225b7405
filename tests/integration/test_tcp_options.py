"""TCP keepalive and TCP_USER_TIMEOUT on upstream sockets (SPEC section 5).

TCP_USER_TIMEOUT is set next to it but cannot be read from outside the
process. The kernel reports a socket's keepalive timer in `ss -o` output
("timer:(keepalive,...)"), which shows that cutoff set SO_KEEPALIVE with the
route's idle time on the connection it opened to the upstream, for plain
HTTP and for CONNECT tunnels alike."""

import re
import subprocess
import unittest

from harness import CutoffTestCase, time_limit


def keepalive_timer_seconds(upstream_port: int):
    """Seconds left on the keepalive timer of cutoff's socket(s) to the given
    upstream port, or None when none has one. ss prints "39sec" or "1min2sec"
    for timers of 10 s and more, which is what the tests use."""
    out = subprocess.run(["ss", "-tnoH", "state", "established", f"( dport = :{upstream_port} )"],
                         capture_output=True, text=True, timeout=5).stdout
    m = re.search(r"timer:\(keepalive,(?:(\d+)min)?(\d+)sec", out)
    if not m:
        return None
    return int(m.group(1) or 0) * 60 + int(m.group(2))


class TcpOptionsTest(CutoffTestCase):
    CONFIG = {"defaults": {"tcp_keepalive": {"idle": "40s", "interval": "2s", "count": 3},
                           "tcp_user_timeout": "5s"}}
    ROUTES = [{"name": "no-keepalive", "match": {"path_prefix": "/nokeep/"},
               "tcp_keepalive": "off"}]

    @time_limit(10)
    def test_plain_http_upstream_socket_has_keepalive(self):
        up = self.upstream()
        cl = self.client()
        cl.request("GET", self.url(up, "/ok?size=3"))
        self.assertEqual(cl.read_response().status, 200)
        # The connection is pooled now; its keepalive timer counts down from
        # the route's 40 s (the kernel's default would be 2 h, cutoff's 30 s).
        left = keepalive_timer_seconds(up.port)
        self.assertIsNotNone(left, "no keepalive timer on cutoff's upstream socket")
        self.assertLessEqual(left, 40.0)
        self.assertGreater(left, 35.0)

    @time_limit(10)
    def test_route_can_turn_keepalive_off(self):
        up = self.upstream()
        cl = self.client()
        cl.request("GET", self.url(up, "/nokeep/ok?size=3"))
        self.assertEqual(cl.read_response().status, 200)
        self.assertEqual(up.connection_count(), 1)
        self.assertIsNone(keepalive_timer_seconds(up.port))

    @time_limit(10)
    def test_connect_tunnel_socket_has_keepalive(self):
        echo = self.echo_server()
        cl = self.client()
        cl.send(f"CONNECT 127.0.0.1:{echo.port} HTTP/1.1\r\n\r\n".encode())
        self.assertEqual(cl.read_response("CONNECT").status, 200)
        left = keepalive_timer_seconds(echo.port)
        self.assertIsNotNone(left, "no keepalive timer on the tunnel's upstream socket")
        self.assertLessEqual(left, 40.0)
        self.assertGreater(left, 35.0)
        cl.close()


if __name__ == "__main__":
    unittest.main()
