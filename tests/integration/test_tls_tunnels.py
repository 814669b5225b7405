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

The certificate is made for the test with the openssl command line
(tlscerts), the TLS server is the fake upstream behind TLS (tlsupstream);
every server is on 127.0.0.1.
"""

import json
import shutil
import ssl
import tempfile
import time
import unittest

from fakeupstream import pattern
from harness import ADMIN_ON, SCALE, CutoffTestCase, admin_get, merge, ms, run_tool
from tlscerts import needs_openssl, self_signed
from tlsclient import start_tls

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


@needs_openssl
class TlsTunnelTest(CutoffTestCase):
    CONFIG = merge(ADMIN_ON, {"defaults": {"tls_handshake_timeout": "400ms",
                                           "tunnel_idle_timeout": "3s"}})
    TIME_LIMIT = 10.0

    @classmethod
    def setUpClass(cls):
        cls.certs = tempfile.mkdtemp(prefix="cutoff-tls-")
        cls.cert, cls.key = self_signed(cls.certs, NAME, dns=[NAME])
        super().setUpClass()

    @classmethod
    def tearDownClass(cls):
        super().tearDownClass()
        shutil.rmtree(cls.certs, True)

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
        srv = self.tls_upstream(self.cert, self.key)
        cl = self.tunnel(srv.port)
        start_tls(cl, ssl.create_default_context(cafile=self.cert), NAME)
        cl.request("GET", "/ok", host=NAME)
        self.assertEqual(cl.read_response().body, pattern(5))
        # Quiet for longer than tls_handshake_timeout: a finished
        # handshake is tunnel_idle_timeout's (3 s) to judge.
        time.sleep(2 * TLS_HANDSHAKE)
        cl.request("GET", "/ok?again", host=NAME)
        self.assertEqual(cl.read_response().body, pattern(5))
        cl.close()
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
        srv = self.tls_upstream(self.cert, self.key)
        r = run_tool(["curl", "-sS", "--max-time", str(5 * SCALE), "--cacert", self.cert,
                      "-x", f"http://127.0.0.1:{self.cutoff.port}",
                      "--connect-to", f"{NAME}:{srv.port}:127.0.0.1:{srv.port}",
                      f"https://{NAME}:{srv.port}/ok"], timeout=10 * SCALE)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout, pattern(5))
        e = self.cutoff.wait_access(lambda e: e["method"] == "CONNECT", target=f":{srv.port}")
        self.assertEqual((e["outcome"], e.get("sni")), ("ok", NAME), e)


if __name__ == "__main__":
    unittest.main()
