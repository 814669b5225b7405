"""Self-tests of the fake servers and the raw client, without cutoff.

If these fail, the proxy tests cannot be trusted: they check that the fakes
misbehave as the catalogue says and that FIN and RST are told apart."""

import shutil
import socket
import ssl
import struct
import tempfile
import time
import unittest

from fakeload import LoopClients, percentile
from fakenet import LOOPBACK6
from fakeupstream import pattern
from harness import SCALE, Client, CutoffTestCase, build_request
from tlscerts import TestCa, needs_openssl, self_signed
from tlsclient import start_tls


class FakeServersTest(CutoffTestCase):
    NEEDS_CUTOFF = False
    TIME_LIMIT = 5.0

    def direct(self, srv, timeout=2.0):
        cl = Client(srv.addr, timeout)
        self._clients.append(cl)
        return cl

    def test_keepalive_many_requests_one_connection(self):
        up = self.upstream()
        cl = self.direct(up)
        for i in range(5):
            cl.request("GET", f"/ok?size={i * 100}", host="x")
            r = cl.read_response()
            self.assertEqual((r.status, r.body), (200, pattern(i * 100)))
            self.assertEqual(r.header("X-Upstream-Request"), str(i))
        self.assertEqual(up.connection_count(), 1)
        self.assertEqual(up.conn(0).request_count, 5)
        cl.close()
        self.assertEqual(up.wait_end(0).state, "fin")

    def test_chunked_with_trailers_and_head(self):
        up = self.upstream()
        cl = self.direct(up)
        cl.request("GET", "/chunked?size=1000&chunk=64&trailers=1", host="x")
        r = cl.read_response()
        self.assertEqual((r.framing, r.body, r.trailers), ("chunked", pattern(1000), [("X-Trailer", "done")]))
        cl.request("HEAD", "/chunked", host="x")
        r = cl.read_response("HEAD")
        self.assertEqual(r.body, b"")
        cl.request("GET", "/status?code=204", host="x")
        self.assertEqual(cl.read_response().status, 204)

    def test_close_delimited(self):
        up = self.upstream()
        cl = self.direct(up)
        cl.request("GET", "/close-delimited?size=3000", host="x")
        r = cl.read_response()
        self.assertEqual((r.framing, r.complete, r.body), ("close", True, pattern(3000)))
        cl.close()
        self.assertEqual(up.wait_end(0).kinds()[:2], ["shutdown", "fin"])

    def test_echo_reports_head(self):
        up = self.upstream()
        cl = self.direct(up)
        cl.request("POST", "/echo", [("X-A", "1"), ("Transfer-Encoding", "chunked")],
                   b"5\r\nhello\r\n0\r\nX-T: y\r\n\r\n", host="h")
        r = cl.read_response()
        self.assertEqual(r.body, b"hello")
        self.assertEqual(r.echo["target"], "/echo")
        self.assertIn(["X-A", "1"], r.echo["headers"])
        self.assertEqual(r.echo["trailers"], [["X-T", "y"]])

    def test_hang_sees_fin_and_rst(self):
        up = self.upstream()
        cl = self.direct(up)
        cl.request("GET", "/hang", host="x")
        self.assertTrue(up.wait_requests(1, 1))
        t = time.monotonic()
        cl.close()
        rec = up.wait_end(0)
        self.assertEqual(rec.state, "fin")
        self.assertLess(rec.end_time - t, 0.1 * SCALE)
        cl2 = self.direct(up)
        cl2.request("GET", "/hang", host="x")
        self.assertTrue(up.wait_requests(2, 1))
        cl2.abort()
        self.assertEqual(up.wait_end(1).state, "rst")

    def test_hang_on_fin_ignore_then_rst(self):
        up = self.upstream()
        cl = self.direct(up)
        cl.request("GET", "/hang?on_fin=ignore", host="x")
        self.assertTrue(up.wait_requests(1, 1))
        cl.shutdown_write()
        self.assertIsNotNone(up.wait_event("fin", 0))
        time.sleep(0.1)
        self.assertEqual(up.conn(0).kinds(), ["fin"])
        cl.abort()
        self.assertIsNotNone(up.wait_event("rst", 0))

    def test_no_read_body_sees_fin_and_rst(self):
        # A FIN queues behind unsent data, so with a full window only an RST
        # can reach a server that never reads; a FIN after a small body can.
        up = self.upstream()
        cl = self.direct(up)
        cl.send(build_request("POST", "/no-read-body", [("Content-Length", "100")], host="x") + b"x" * 50)
        self.assertTrue(up.wait_requests(1, 1))
        cl.shutdown_write()
        self.assertEqual(up.wait_end(0).state, "fin")
        cl = self.direct(up)
        cl.sock.setblocking(False)
        cl.sock.send(build_request("POST", "/no-read-body", [("Content-Length", "10000000")], host="x"))
        sent = 0
        try:
            while sent < 10_000_000:
                sent += cl.sock.send(b"x" * 65536)
                time.sleep(0.001)
        except BlockingIOError:
            pass
        self.assertLess(sent, 10_000_000)
        cl.abort()
        self.assertEqual(up.wait_end(1).state, "rst")

    def test_stall_and_reset_mid_body(self):
        up = self.upstream()
        cl = self.direct(up)
        cl.request("GET", "/stall-mid-body?size=5000&sent=700", host="x")
        with self.assertRaises(TimeoutError):
            cl.read_response(timeout=0.3)
        self.assertEqual(bytes(cl.buf), pattern(700))
        cl.abort()
        cl = self.direct(up)
        cl.request("GET", "/reset-mid-body?size=5000&sent=700&delay=100", host="x")
        r = cl.read_response()
        self.assertEqual((r.complete, cl.end, r.body), (False, "rst", pattern(700)))

    def test_close_reset_garbage(self):
        up = self.upstream()
        for path, end in (("/close", "fin"), ("/reset", "rst"), ("/garbage", "fin")):
            cl = self.direct(up)
            cl.request("GET", path, host="x")
            self.assertEqual(cl.wait_end(), end, path)
            self.assertEqual(up.wait_end(-1).state, "reset" if path == "/reset" else "closed")

    def test_close_less_and_drip_and_slow_head(self):
        up = self.upstream()
        cl = self.direct(up)
        cl.request("GET", "/close-less?size=10", host="x")
        r = cl.read_response()
        self.assertEqual((r.body, r.header("Connection")), (pattern(10), "close"))
        self.assertEqual(cl.wait_end(0.2), "open")
        cl.close()
        cl = self.direct(up)
        t = time.monotonic()
        cl.request("GET", "/drip?size=4&interval=50", host="x")
        r = cl.read_response()
        self.assertEqual(r.body, pattern(4))
        self.assertGreaterEqual(time.monotonic() - t, 0.15)
        t = time.monotonic()
        cl.request("GET", "/slow-head?delay=150", host="x")
        self.assertEqual(cl.read_response().status, 200)
        self.assertGreaterEqual(time.monotonic() - t, 0.15)

    def test_paced(self):
        up = self.upstream()
        cl = self.direct(up)
        t = time.monotonic()
        cl.request("GET", "/paced?size=1000&chunk=300&interval=50", host="x")
        r = cl.read_response()
        self.assertEqual(r.body, pattern(1000))
        # Four chunks, three intervals between them.
        self.assertGreaterEqual(time.monotonic() - t, 0.15)

    def test_continue_and_upgrade(self):
        up = self.upstream()
        cl = self.direct(up)
        cl.request("POST", "/continue", [("Expect", "100-continue"), ("Content-Length", "3")], host="x")
        self.assertEqual(cl.read_head().status, 100)
        cl.send(b"abc")
        self.assertEqual(cl.read_response().status, 200)
        cl.request("GET", "/upgrade", [("Upgrade", "websocket"), ("Connection", "Upgrade")], host="x")
        self.assertEqual(cl.read_response().status, 101)
        cl.send(b"ping")
        while len(cl.buf) < 4:
            cl._recv(time.monotonic() + 1)
        self.assertEqual(bytes(cl.buf), b"ping")
        cl.shutdown_write()
        self.assertEqual(cl.wait_end(), "fin")

    def test_raw_echo_and_blackhole(self):
        echo = self.echo_server()
        cl = self.direct(echo)
        cl.send(b"hello")
        while len(cl.buf) < 5:
            cl._recv(time.monotonic() + 1)
        cl.shutdown_write()
        self.assertEqual(cl.wait_end(), "fin")
        self.assertEqual(echo.wait_end(0).state, "fin")
        bh = self.blackhole(on_fin="ignore")
        cl = self.direct(bh)
        cl.send(b"x")
        cl.shutdown_write()
        self.assertIsNotNone(bh.wait_event("fin", 0))
        self.assertEqual(cl.wait_end(0.1), "open")
        cl.abort()
        self.assertIsNotNone(bh.wait_event("rst", 0))

    def test_full_backlog_hangs_and_closed_port_refuses(self):
        fb = self.full_backlog()
        s = socket.socket()
        s.settimeout(0.2)
        with self.assertRaises((socket.timeout, TimeoutError)):
            s.connect(fb.addr)
        s.close()
        cp = self.closed_port()
        s = socket.socket()
        t = time.monotonic()
        with self.assertRaises(ConnectionRefusedError):
            s.connect(cp.addr)
        self.assertLess(time.monotonic() - t, 0.1)
        s.close()

    def test_fakes_on_ipv6_loopback_share_a_port_number_with_ipv4_ones(self):
        try:
            with socket.socket(socket.AF_INET6) as s:
                s.bind((LOOPBACK6, 0))
        except OSError as e:
            self.skipTest(f"no IPv6 on loopback: {e}")
        up = self.upstream()
        fb = self.full_backlog(LOOPBACK6, up.port)
        self.assertEqual(fb.addr, (LOOPBACK6, up.port))
        s = socket.socket(socket.AF_INET6)
        s.settimeout(0.2)
        with self.assertRaises((socket.timeout, TimeoutError)):
            s.connect(fb.addr)
        s.close()
        cl = self.direct(up)  # 127.0.0.1 on the same port still answers
        cl.request("GET", "/ok", host="x")
        self.assertEqual(cl.read_response().status, 200)
        cp = self.closed_port(LOOPBACK6)
        s = socket.socket(socket.AF_INET6)
        with self.assertRaises(ConnectionRefusedError):
            s.connect(cp.addr)
        s.close()
        up6 = self.upstream(LOOPBACK6)
        cl = self.direct(up6)
        cl.request("GET", "/ok", host="x")
        self.assertEqual(cl.read_response().status, 200)
        self.assertEqual(up6.conn(0).peer[0], LOOPBACK6)

    def test_raw_script_server_records_bytes_and_follows_its_script(self):
        keep_alive = ["request", b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", "repeat"]
        srv = self.raw_upstream(script=keep_alive, per_conn=[keep_alive, ["head", "reset"]])
        cl = self.direct(srv)
        body = b"3\r\nabc\r\n0\r\nX-T: 1\r\n\r\n"
        sent = build_request("POST", "/a", [("Transfer-Encoding", "chunked")], host="x") + body
        cl.send(sent)
        self.assertEqual(cl.read_response("POST").body, b"ok")
        cl.request("GET", "/b", host="x")
        self.assertEqual(cl.read_response().body, b"ok")
        self.assertEqual(srv.wait_received(len(sent) + 1, 0)[:len(sent)], sent)
        self.assertEqual([r.target for r in srv.requests()], ["/a", "/b"])
        self.assertEqual(srv.requests()[0].raw_body, body)
        other = self.direct(srv)
        other.request("GET", "/c", host="x")
        self.assertEqual(other.wait_end(), "rst")
        self.assertEqual(srv.wait_end(1).state, "reset")
        cl.close()
        self.assertEqual(srv.wait_end(0).state, "fin")

    def test_loop_server_and_clients(self):
        ok = self.loop_server("ok")
        load = LoopClients(("127.0.0.1", ok.port), f"http://127.0.0.1:{ok.port}/ok", 5, 3)
        load.run(time.monotonic() + 2.0 * SCALE)
        self.assertEqual(len(load.results), 15)
        self.assertEqual({status for *_, status, _ in load.results}, {200})
        self.assertEqual(len(load.latencies(skip_rounds=1)), 10)
        self.assertTrue(ok.wait_for(lambda: all(r.end == "fin" for r in ok.records), 1.0))
        self.assertEqual([r.requests for r in ok.records], [3] * 5)
        bh = self.loop_server("blackhole")
        s = socket.create_connection(("127.0.0.1", bh.port))
        s.sendall(b"GET / HTTP/1.1\r\n\r\n")
        self.assertTrue(bh.wait_for(lambda: bh.records and bh.records[0].bytes_in > 0, 1.0))
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        s.close()
        self.assertTrue(bh.wait_for(lambda: bh.records[0].end == "rst", 1.0), bh.records)
        self.assertEqual(percentile([3, 1, 2, 4], 50), 2)
        self.assertEqual(percentile(list(range(1, 201)), 99), 198)


@needs_openssl
class TlsFakesTest(CutoffTestCase):
    """The TLS upstream (tlsupstream) and the TLS client (tlsclient) that
    the interception tests stand on, against each other."""

    NEEDS_CUTOFF = False
    TIME_LIMIT = 5.0
    NAME = "api.example.test"

    @classmethod
    def setUpClass(cls):
        cls.certs = tempfile.mkdtemp(prefix="cutoff-fake-tls-")
        cls.ca = TestCa(cls.certs)
        cls.leaf = cls.ca.issue("leaf", dns=[cls.NAME], ips=["127.0.0.1"])
        cls.lone = self_signed(cls.certs, "127.0.0.1", ips=["127.0.0.1"])

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.certs, True)

    def tls_client(self, srv, name, ca=None, alpn=("http/1.1",), timeout=2.0):
        """A Client that has done its TLS handshake with srv."""
        cl = Client(srv.addr, timeout)
        self._clients.append(cl)
        ctx = ssl.create_default_context(cafile=ca or self.ca.cert)
        ctx.set_alpn_protocols(list(alpn))
        start_tls(cl, ctx, name)
        return cl

    def test_keepalive_over_tls_records_sni_and_alpn(self):
        srv = self.tls_upstream(*self.leaf, alpn=("h2", "http/1.1"))
        cl = self.tls_client(srv, self.NAME)
        for i in range(3):
            cl.request("GET", f"/ok?size={i * 100}", host=self.NAME)
            r = cl.read_response()
            self.assertEqual((r.status, r.body, r.header("X-Upstream-Request")),
                             (200, pattern(i * 100), str(i)))
        self.assertEqual(srv.connection_count(), 1)
        rec = srv.conn(0)
        self.assertEqual((rec.sni, rec.alpn, rec.tls_error), (self.NAME, "http/1.1", None))
        self.assertEqual(rec.kinds()[:2], ["client_hello", "handshake"])
        cl.close()
        self.assertEqual(srv.wait_end(0).state, "fin")
        # An IP literal: no SNI, the certificate's IP SAN verifies.
        ip = self.tls_client(srv, "127.0.0.1")
        ip.request("GET", "/status?code=204", host="127.0.0.1")
        self.assertEqual(ip.read_response().status, 204)
        self.assertIsNone(srv.conn(1).sni)

    def test_hang_stall_and_reset_inside_tls_tell_fin_from_rst(self):
        srv = self.tls_upstream(*self.leaf)
        cl = self.tls_client(srv, self.NAME)
        cl.request("GET", "/stall-mid-body?size=5000&sent=700", host="x")
        with self.assertRaises(TimeoutError):
            cl.read_response(timeout=0.3)
        self.assertEqual(bytes(cl.buf)[-700:], pattern(700))
        cl.abort()
        self.assertEqual(srv.wait_end(0).state, "rst")
        cl = self.tls_client(srv, self.NAME)
        cl.request("GET", "/reset-mid-body?size=5000&sent=700&delay=50", host="x")
        r = cl.read_response()
        self.assertEqual((r.complete, cl.end, r.body), (False, "rst", pattern(700)))
        self.assertEqual(srv.wait_end(1).state, "reset")
        cl = self.tls_client(srv, self.NAME)
        cl.request("GET", "/hang", host="x")
        self.assertTrue(srv.wait_requests(3, 1))
        # close_notify and FIN (a bare close() would reset: the session
        # tickets TLS 1.3 sent after the handshake are still unread).
        cl.shutdown_write()
        self.assertEqual(srv.wait_end(2).state, "fin")
        # close_notify, then FIN: a whole close-delimited body.
        cl = self.tls_client(srv, self.NAME)
        cl.request("GET", "/close-delimited?size=3000", host="x")
        r = cl.read_response()
        self.assertEqual((r.framing, r.complete, r.body), ("close", True, pattern(3000)))
        cl.close()
        self.assertEqual(srv.wait_end(3).kinds()[-2:], ["shutdown", "fin"])

    def test_clients_refuse_a_wrong_name_and_an_unknown_issuer(self):
        srv = self.tls_upstream(*self.leaf)
        with self.assertRaisesRegex(ssl.SSLCertVerificationError, "other.example.test"):
            self.tls_client(srv, "other.example.test")
        with self.assertRaises(ssl.SSLCertVerificationError):
            self.tls_client(srv, self.NAME, ca=self.lone[0])
        # The server saw each client's alert.
        self.assertTrue(srv.wait_for(lambda: srv.connection_count() == 2 and all(
            r.finished and r.tls_error for r in srv.connections()), 1.0), srv.connections())
        lone = self.tls_upstream(*self.lone)
        with self.assertRaises(ssl.SSLCertVerificationError):
            self.tls_client(lone, "127.0.0.1")
        self.tls_client(lone, "127.0.0.1", ca=self.lone[0])

    def test_silent_and_alert_handshakes(self):
        silent = self.tls_upstream(handshake="silent")
        t = time.monotonic()
        with self.assertRaises(TimeoutError):
            self.tls_client(silent, self.NAME, timeout=0.3)
        self.assertGreaterEqual(time.monotonic() - t, 0.3 * SCALE - 0.01)
        self.assertIsNotNone(silent.conn(0).time_of("client_hello"))
        self._clients[-1].abort()
        self.assertEqual(silent.wait_end(0).state, "rst")
        alert = self.tls_upstream(handshake="alert")
        with self.assertRaisesRegex(ssl.SSLError, "(?i)alert handshake failure"):
            self.tls_client(alert, self.NAME)
        rec = alert.wait_end(0)
        self.assertEqual(rec.kinds()[:2], ["client_hello", "closed"])


if __name__ == "__main__":
    unittest.main()
