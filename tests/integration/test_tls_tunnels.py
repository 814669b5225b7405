"""TLS-aware CONNECT tunnels (SPEC section 10): cutoff reads the plaintext
record headers and the ClientHello of a tunnel, never decrypting anything.

- A ClientHello that the upstream never answers (it accepted TCP and went
  quiet) closes both sides at tls_handshake_timeout: the client with FIN,
  the upstream as the route's teardown says (reset here); the access log
  says outcome=timeout:tls_handshake_timeout with the SNI, and
  /connections shows the phase tls_handshake while it waits.
- A ClientHello trickled and never finished is bounded the same way.
- A real TLS server answers: the handshake completes, the tunnel lives on
  past tls_handshake_timeout under tunnel_idle_timeout, and the access log
  records sni=.
- Plain TCP through CONNECT is left alone: no handshake deadline, no SNI.

Certificates are made for the test with the openssl command line; every
server is on 127.0.0.1.
"""

import json
import os
import shutil
import socket
import ssl
import subprocess
import tempfile
import threading
import time
import unittest

from harness import ADMIN_ON, SCALE, CutoffTestCase, admin_get, merge, ms, run_tool

TLS_HANDSHAKE = ms(400)
NAME = "tls.example.test"


def client_hello(server_hostname: str) -> bytes:
    """The first flight of a real TLS client, taken from a memory BIO."""
    ctx = ssl.create_default_context()
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = ctx.wrap_bio(incoming, outgoing, server_hostname=server_hostname)
    try:
        tls.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return outgoing.read()


class TlsServer:
    """A TLS server on 127.0.0.1 answering every request on a connection
    with `200 ok` (keep-alive), one thread per connection."""

    def __init__(self, cert: str, key: str):
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(cert, key)
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.stopping = False
        self.threads = [threading.Thread(target=self._accept, daemon=True)]
        self.threads[0].start()

    def _accept(self):
        self.sock.settimeout(0.1)
        while not self.stopping:
            try:
                conn, _ = self.sock.accept()
            except (socket.timeout, OSError):
                continue
            t = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            self.threads.append(t)
            t.start()

    def _serve(self, conn):
        conn.settimeout(5.0 * SCALE)
        try:
            with self.ctx.wrap_socket(conn, server_side=True) as tls:
                buf = b""
                while not self.stopping:
                    data = tls.recv(65536)
                    if not data:
                        return
                    buf += data
                    while b"\r\n\r\n" in buf:
                        _, buf = buf.split(b"\r\n\r\n", 1)
                        tls.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        except (OSError, ssl.SSLError):
            return

    def stop(self):
        self.stopping = True
        self.sock.close()
        for t in self.threads:
            t.join(2.0)


@unittest.skipUnless(shutil.which("openssl"), "needs the openssl command")
class TlsTunnelTest(CutoffTestCase):
    CONFIG = merge(ADMIN_ON, {"defaults": {"tls_handshake_timeout": "400ms",
                                           "tunnel_idle_timeout": "3s"}})
    TIME_LIMIT = 10.0

    @classmethod
    def setUpClass(cls):
        cls.certs = tempfile.mkdtemp(prefix="cutoff-tls-")
        cls.cert = os.path.join(cls.certs, "cert.pem")
        cls.key = os.path.join(cls.certs, "key.pem")
        run_tool(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                  "ec_paramgen_curve:P-256", "-nodes", "-days", "1", "-subj", f"/CN={NAME}",
                  "-addext", f"subjectAltName=DNS:{NAME}", "-keyout", cls.key, "-out", cls.cert],
                 timeout=20)
        super().setUpClass()

    @classmethod
    def tearDownClass(cls):
        super().tearDownClass()
        shutil.rmtree(cls.certs, True)

    def tls_server(self) -> TlsServer:
        srv = TlsServer(self.cert, self.key)
        self.addCleanup(srv.stop)
        return srv

    def tunnel(self, port):
        r, cl, _ = self.connect_tunnel(port)
        self.assertEqual(r.status, 200, r)
        return cl

    def test_unanswered_client_hello_closes_both_sides(self):
        bh = self.blackhole()
        cl = self.tunnel(bh.port)
        cl.send(client_hello("hung.example.test"))
        t0 = time.monotonic()
        listed = self.wait_for(
            lambda: [c for c in json.loads(admin_get(self.cutoff, "/connections").body)
                     ["connections"] if c.get("phase") == "tls_handshake"],
            "the tunnel in phase tls_handshake")
        self.assertEqual((listed[0]["sni"], listed[0]["deadline"]),
                         ("hung.example.test", "tls_handshake_timeout"), listed)
        self.assertEqual(cl.wait_end(TLS_HANDSHAKE + 1.0), "fin")
        self.assertElapsed(cl.end_time - t0, TLS_HANDSHAKE, "client closed after", early=0.02)
        rec = bh.wait_end(0, 1.0)
        self.assertEqual(rec.state, "rst", rec)
        self.assertElapsed(rec.end_time - t0, TLS_HANDSHAKE, "upstream closed after",
                           early=0.02)
        e = self.cutoff.wait_access(lambda e: e["method"] == "CONNECT", target=f":{bh.port}")
        self.assertEqual((e["status"], e["outcome"], e.get("sni")),
                         ("200", "timeout:tls_handshake_timeout", "hung.example.test"), e)

    def test_trickled_client_hello_is_bounded_too(self):
        bh = self.blackhole()
        cl = self.tunnel(bh.port)
        cl.send(client_hello(NAME)[:20])  # the hello never completes
        t0 = time.monotonic()
        self.assertEqual(cl.wait_end(TLS_HANDSHAKE + 1.0), "fin")
        self.assertElapsed(cl.end_time - t0, TLS_HANDSHAKE, "client closed after", early=0.02)
        e = self.cutoff.wait_access(lambda e: e["method"] == "CONNECT", target=f":{bh.port}")
        self.assertEqual(e["outcome"], "timeout:tls_handshake_timeout", e)
        self.assertNotIn("sni", e)

    def test_real_handshake_records_the_sni_and_the_tunnel_lives_on(self):
        srv = self.tls_server()
        cl = self.tunnel(srv.port)
        ctx = ssl.create_default_context(cafile=self.cert)
        with ctx.wrap_socket(cl.sock, server_hostname=NAME) as tls:
            tls.settimeout(5.0 * SCALE)
            tls.sendall(b"GET / HTTP/1.1\r\nHost: " + NAME.encode() + b"\r\n\r\n")
            self.assertTrue(tls.recv(100).endswith(b"ok"))
            # Quiet for longer than tls_handshake_timeout: a finished
            # handshake is tunnel_idle_timeout's (3 s) to judge.
            time.sleep(2 * TLS_HANDSHAKE)
            tls.sendall(b"GET /again HTTP/1.1\r\nHost: " + NAME.encode() + b"\r\n\r\n")
            self.assertTrue(tls.recv(100).endswith(b"ok"))
            cl.sock = None  # the TLS socket owns it now
        e = self.cutoff.wait_access(lambda e: e["method"] == "CONNECT", target=f":{srv.port}")
        self.assertEqual((e["outcome"], e.get("sni")), ("ok", NAME), e)

    def test_plain_tcp_through_connect_is_left_alone(self):
        echo = self.echo_server()
        cl = self.tunnel(echo.port)
        self.assertEqual(self.round_trip(cl, b"SSH-2.0-test\r\n"), b"SSH-2.0-test\r\n")
        time.sleep(2 * TLS_HANDSHAKE)  # no handshake deadline for plain bytes
        self.assertEqual(self.round_trip(cl, b"still here"), b"still here")
        cl.shutdown_write()
        self.assertEqual(cl.wait_end(1.0), "fin")
        e = self.cutoff.wait_access(lambda e: e["method"] == "CONNECT", target=f":{echo.port}")
        self.assertEqual(e["outcome"], "ok", e)
        self.assertNotIn("sni", e)

    @unittest.skipUnless(shutil.which("curl"), "needs curl")
    def test_curl_through_the_tunnel(self):
        srv = self.tls_server()
        r = run_tool(["curl", "-sS", "--max-time", str(5 * SCALE), "--cacert", self.cert,
                      "-x", f"http://127.0.0.1:{self.cutoff.port}",
                      "--connect-to", f"{NAME}:{srv.port}:127.0.0.1:{srv.port}",
                      f"https://{NAME}:{srv.port}/"], timeout=10 * SCALE)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout, b"ok")
        e = self.cutoff.wait_access(lambda e: e["method"] == "CONNECT", target=f":{srv.port}")
        self.assertEqual((e["outcome"], e.get("sni")), ("ok", NAME), e)


if __name__ == "__main__":
    unittest.main()
