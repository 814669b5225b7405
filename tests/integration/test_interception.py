"""TLS interception (SPEC section 10): a route with tls = "intercept"
answers CONNECT at once, terminates the client's TLS with a leaf minted
from its CA, and treats every request inside like plain HTTP, upstream
over a TLS connection of its own (verified, pooled, under every deadline
of section 4).

Certificates, made once for the module: the interception CA by
`cutoff ca init`; a separate "upstream CA" (openssl, tlscerts) that signs
the upstream servers' certificates and that cutoff trusts as
`[tls] upstream_ca`; a certificate for another name; a self-signed one.
The upstreams are tlsupstream.TlsUpstream (the fake upstream's catalogue
inside TLS, or a ClientHello met with silence or an alert); the test
client speaks TLS through tlsclient, which tells FIN from RST. Names
resolve through a FakeDns on 127.0.0.1, all to 127.0.0.1.

InterceptTest (defaults: intercept; route `lax` for LAX with
tls_verify_upstream = false):
- test_connect_answered_at_once_then_leaf_with_ip_san: 200 before any
  upstream connection; the leaf has the IP SAN, no ALPN h2 either side;
  the CONNECT is logged when the client handshake ends, the request with
  its https:// target.
- test_name_resolved_by_cutoff_gets_a_dns_leaf_and_sni_upstream: a name
  (FakeDns) gets a DNS SAN; cutoff sends the SNI upstream; sni= logged.
- test_keepalive_requests_share_one_upstream_tls_connection: 3 requests
  in one client connection, one upstream connection, 3 access lines
  (reused 0, 1, 1), one CONNECT line; a second client reuses it (pool).
- test_upstream_never_answers_client_hello: 504 connection_timeout
  naming tls_handshake_timeout at tls_handshake_timeout; upstream reset.
- test_upstream_never_answers_request: 504 http_response_timeout at
  response_header_timeout; upstream reset.
- test_upstream_stalls_body: head, part of the body, client RST at
  idle_timeout; upstream reset.
- test_upstream_resets_mid_body: client RST at once; outcome names
  connection_terminated.
- test_upstream_certificate_for_another_name: 502 tls_certificate_error
  at once, details naming the name; the lax route gets 200.
- test_upstream_with_unknown_issuer: 502 tls_certificate_error at once;
  the lax route gets 200.
- test_upstream_alert_during_handshake: 502 tls_alert_received at once.
- test_client_handshake_never_comes: closed at tls_handshake_timeout,
  CONNECT logged timeout:tls_handshake_timeout.
- test_client_without_the_ca_curl_fails_at_once: curl exits 60, CONNECT
  logged error:tls_alert_received, no upstream connection.
- Real clients: curl -x --cacert (IP), curl with https_proxy (a name),
  urllib (ProxyHandler, ssl context), wget --ca-certificate with
  https_proxy, Node (NODE_EXTRA_CA_CERTS, CONNECT by hand) when installed.

TunnelRoutesTest (defaults: tunnel; route `mitm` intercepts API; no
upstream_ca):
- test_tunnel_unanswered_request_ends_at_tunnel_idle_timeout.
- test_tunnel_wrong_name_is_the_clients_business: the client's own
  verification fails, the upstream sees its alert, cutoff logs ok.
- test_intercept_without_upstream_ca_refuses_the_test_ca: 502
  tls_certificate_error (the system store does not know the test CA).

ConfigTest (no running cutoff): `cutoff ca init` output and key mode;
--check refuses intercept without ca_cert (naming the route and ca_cert)
and a CA key others can read (saying chmod 600), accepts the valid one.
"""

import json
import os
import shutil
import ssl
import stat
import tempfile
import time
import unittest
import urllib.request

from fakedns import FakeDns
from fakeupstream import pattern
from harness import (SCALE, SLACK, Cutoff, CutoffTestCase, build_request, find_binary, ms,
                     run_tool, shown, time_limit)
from tlscerts import TestCa, self_signed
from tlsclient import start_tls

TLS_HANDSHAKE = ms(400)
RESPONSE_HEADER = ms(500)
IDLE = ms(300)
TUNNEL_IDLE = ms(400)
# "At once": no deadline involved (every deadline here is 300 ms or more).
QUICK = 0.15 + SLACK
TOOL_TIMEOUT = 15 * SCALE

API = "api.example.test"      # the good certificate's name
WRONG = "wrong.example.test"  # verified against a certificate for OTHER
OTHER = "other.example.test"
LAX = "lax.example.test"      # the route that does not verify upstreams
NAMES = (API, WRONG, LAX)


class Pki:
    """Every certificate of the module, made once."""

    def __init__(self, binary: str):
        self.dir = tempfile.mkdtemp(prefix="cutoff-intercept-")
        try:
            self._make(binary)
        except BaseException:
            self.remove()
            raise

    def _make(self, binary: str):
        self.upstream_ca = TestCa(self.dir)
        self.good = self.upstream_ca.issue("good", dns=[API], ips=["127.0.0.1"])
        self.other = self.upstream_ca.issue("other", dns=[OTHER])
        self.lone = self_signed(self.dir, "127.0.0.1", ips=["127.0.0.1"])
        self.ca_dir = os.path.join(self.dir, "ca")
        os.mkdir(self.ca_dir, 0o700)
        self.ca_init = run_tool([binary, "ca", "init", self.ca_dir], timeout=30 * SCALE)
        self.ca_cert = os.path.join(self.ca_dir, "ca.pem")
        self.ca_key = os.path.join(self.ca_dir, "ca-key.pem")
        if self.ca_init.returncode != 0 or not os.path.exists(self.ca_key):
            raise RuntimeError(f"`cutoff ca init` failed ({self.ca_init.returncode}):\n"
                               + (self.ca_init.stdout + self.ca_init.stderr).decode(errors="replace"))

    def client_context(self, alpn=None) -> ssl.SSLContext:
        """What an intercepted client trusts: cutoff's CA and nothing else."""
        ctx = ssl.create_default_context(cafile=self.ca_cert)
        if alpn:
            ctx.set_alpn_protocols(list(alpn))
        return ctx

    def remove(self):
        shutil.rmtree(self.dir, True)


PKI: Pki | None = None
DNS: FakeDns | None = None


def setUpModule():
    global PKI, DNS
    binary = find_binary()
    if not binary:
        raise unittest.SkipTest("cutoff binary not found: set CUTOFF_BIN or build build/cutoff")
    if not shutil.which("openssl"):
        raise unittest.SkipTest("needs the openssl command")
    PKI = Pki(binary)
    DNS = FakeDns().start()
    for name in NAMES:
        DNS.answer(name, "127.0.0.1")


def tearDownModule():
    if DNS is not None:
        DNS.stop()
    if PKI is not None:
        PKI.remove()


def is_connect(e):
    return e["method"] == "CONNECT"


def is_request(e):
    return e["method"] != "CONNECT"


class InterceptTestCase(CutoffTestCase):
    """Helpers for a client of an intercepting cutoff."""

    TIME_LIMIT = 10.0

    @classmethod
    def config(cls) -> dict:
        raise NotImplementedError

    @classmethod
    def setUpClass(cls):
        cls.CONFIG = cls.config()
        super().setUpClass()

    def intercept(self, port: int, host: str = "127.0.0.1", alpn=None):
        """CONNECT host:port, answered 200 at once, then the TLS handshake
        with cutoff (SNI host; none for an IP), trusting cutoff's CA
        alone. Returns (client, its TlsSocket)."""
        r, cl, t0 = self.connect_tunnel(port, host=host)
        self.assertEqual(r.status, 200, r)
        self.assertLess(r.t_head - t0, QUICK, "CONNECT was not answered at once")
        tls = start_tls(cl, PKI.client_context(alpn), host)
        return cl, tls

    @staticmethod
    def get(cl, path: str, host: str, port: int, timeout: float | None = None):
        """One GET in origin-form inside the tunnel; (response, elapsed)."""
        t0 = time.monotonic()
        cl.request("GET", path, host=f"{host}:{port}")
        r = cl.read_response(timeout=timeout)
        return r, time.monotonic() - t0

    def request_entry(self, port: int, path: str, host: str = "127.0.0.1"):
        """The access line of a request inside the tunnel."""
        return self.cutoff.wait_access(is_request, target=f"https://{host}:{port}{path}")

    def connect_entry(self, port: int, host: str = "127.0.0.1"):
        return self.cutoff.wait_access(is_connect, target=f"{host}:{port}")

    def assertEntry(self, e, status, outcome, route="default"):
        self.assertEqual((e.get("status"), e.get("outcome"), e.get("route")),
                         (str(status), outcome, route), e["line"])


class InterceptTest(InterceptTestCase):
    @classmethod
    def config(cls):
        return {
            "tls": {"ca_cert": PKI.ca_cert, "ca_key": PKI.ca_key,
                    "upstream_ca": PKI.upstream_ca.cert},
            "dns": {"servers": [DNS.address]},
            # tunnel_idle_timeout far from the others: an intercepted
            # connection is HTTP, not a tunnel, so it must never fire here.
            "defaults": {"tls": "intercept", "tls_handshake_timeout": "400ms",
                         "response_header_timeout": "500ms", "idle_timeout": "300ms",
                         "tunnel_idle_timeout": "3s"},
        }

    ROUTES = [{"name": "lax", "match": {"host": LAX}, "tls_verify_upstream": False}]

    # -- what the client sees of cutoff ------------------------------------------

    def test_connect_answered_at_once_then_leaf_with_ip_san(self):
        srv = self.tls_upstream(*PKI.good, alpn=("h2", "http/1.1"))
        cl, tls = self.intercept(srv.port, alpn=("h2", "http/1.1"))
        self.assertEqual(srv.connection_count(), 0, "cutoff connected upstream before a request")
        self.assertIn(("IP Address", "127.0.0.1"), tls.getpeercert()["subjectAltName"])
        self.assertNotEqual(tls.selected_alpn_protocol(), "h2", "ALPN must offer http/1.1 only")
        # The CONNECT is logged once the client's handshake is done.
        e = self.connect_entry(srv.port)
        self.assertEntry(e, 200, "ok")
        self.assertNotIn("sni", e, "an IP literal has no SNI")
        r, _ = self.get(cl, "/ok?size=300", "127.0.0.1", srv.port)
        self.assertEqual((r.status, r.body), (200, pattern(300)), r)
        req = srv.requests[0]
        self.assertEqual((req.target, req.header("Host")), ("/ok?size=300", f"127.0.0.1:{srv.port}"))
        rec = srv.conn(0)
        self.assertIsNone(rec.sni)
        self.assertNotEqual(rec.alpn, "h2", "cutoff offered h2 upstream")
        self.assertEntry(self.request_entry(srv.port, "/ok?size=300"), 200, "ok")

    def test_name_resolved_by_cutoff_gets_a_dns_leaf_and_sni_upstream(self):
        srv = self.tls_upstream(*PKI.good)
        cl, tls = self.intercept(srv.port, host=API)
        self.assertIn(("DNS", API), tls.getpeercert()["subjectAltName"])
        r, _ = self.get(cl, "/ok", API, srv.port)
        self.assertEqual((r.status, r.body), (200, pattern(5)), r)
        self.assertEqual(srv.conn(0).sni, API)
        self.assertEqual(srv.requests[0].header("Host"), f"{API}:{srv.port}")
        e = self.connect_entry(srv.port, API)
        self.assertEqual((e["status"], e["outcome"], e.get("sni")), ("200", "ok", API), e["line"])
        self.assertEntry(self.request_entry(srv.port, "/ok", API), 200, "ok")

    def test_keepalive_requests_share_one_upstream_tls_connection(self):
        srv = self.tls_upstream(*PKI.good)
        mark = len(self.cutoff.access_entries())
        cl, _ = self.intercept(srv.port)
        for i in range(3):
            r, _ = self.get(cl, f"/ok?n={i}", "127.0.0.1", srv.port)
            self.assertEqual((r.status, r.header("X-Upstream-Conn"), r.header("X-Upstream-Request")),
                             (200, "0", str(i)), r)
        self.assertEqual(srv.connection_count(), 1)
        lines = self.cutoff.wait_access(is_request, target=f"https://127.0.0.1:{srv.port}/ok?n=",
                                        count=3, since=mark)
        self.assertEqual([(e["status"], e["outcome"], e["reused"]) for e in lines],
                         [("200", "ok", "0"), ("200", "ok", "1"), ("200", "ok", "1")],
                         "\n".join(e["line"] for e in lines))
        self.assertEqual(len([e for e in self.cutoff.access_entries()[mark:] if is_connect(e)]), 1)
        # Another client connection to the same host:port: the pooled one.
        other, _ = self.intercept(srv.port)
        r, _ = self.get(other, "/ok?n=again", "127.0.0.1", srv.port)
        self.assertEqual((r.status, r.header("X-Upstream-Conn")), (200, "0"), r)
        self.assertEqual(srv.connection_count(), 1)

    # -- the upstream misbehaves ---------------------------------------------------

    def test_upstream_never_answers_client_hello(self):
        srv = self.tls_upstream(handshake="silent")
        cl, _ = self.intercept(srv.port)
        r, elapsed = self.get(cl, "/x", "127.0.0.1", srv.port)
        self.assertGenerated(r, 504, "connection_timeout")
        self.assertDetails(r, self.hostport(srv), shown(400), "default",
                           also=["tls_handshake_timeout"])
        self.assertElapsed(elapsed, TLS_HANDSHAKE, "504 after")
        self.assertWholeThenFin(r, cl)
        rec = self.assertUpstreamEnd(srv, "rst")
        self.assertElapsed(rec.end_time - rec.time_of("client_hello"), TLS_HANDSHAKE,
                           "upstream reset after", early=0.02)
        self.assertEntry(self.request_entry(srv.port, "/x"), 504, "timeout:tls_handshake_timeout")

    def test_upstream_never_answers_request(self):
        srv = self.tls_upstream(*PKI.good)
        cl, _ = self.intercept(srv.port)
        r, elapsed = self.get(cl, "/hang", "127.0.0.1", srv.port)
        self.assertGenerated(r, 504, "http_response_timeout")
        self.assertDetails(r, self.hostport(srv), shown(500), "default")
        self.assertElapsed(elapsed, RESPONSE_HEADER, "504 after")
        self.assertWholeThenFin(r, cl)
        rec = self.assertUpstreamEnd(srv, "rst")
        self.assertElapsed(rec.end_time - rec.requests[0].t_head, RESPONSE_HEADER,
                           "upstream reset after", early=0.02)
        self.assertEntry(self.request_entry(srv.port, "/hang"), 504,
                         "timeout:response_header_timeout")

    def test_upstream_stalls_body(self):
        srv = self.tls_upstream(*PKI.good)
        cl, _ = self.intercept(srv.port)
        path = "/stall-mid-body?size=10000&sent=1000"
        r, _ = self.get(cl, path, "127.0.0.1", srv.port, timeout=IDLE + 2.0)
        self.assertEqual((r.status, r.header("Content-Length")), (200, "10000"), r)
        self.assertEqual((r.complete, r.body), (False, pattern(1000)))
        # As in plain HTTP once the response started: a reset, never a
        # FIN (or close_notify) that could pass the truncated body off.
        self.assertEqual(cl.end, "rst", "a truncated response must end in RST")
        self.assertElapsed(cl.end_time - r.t_head, IDLE, "client RST after the stall", early=0.02)
        rec = self.assertUpstreamEnd(srv, "rst")
        self.assertElapsed(rec.end_time - rec.requests[0].t_head, IDLE, "upstream reset after",
                           early=0.02)
        self.assertEntry(self.request_entry(srv.port, path), 200, "timeout:idle_timeout")

    def test_upstream_resets_mid_body(self):
        srv = self.tls_upstream(*PKI.good)
        cl, _ = self.intercept(srv.port)
        path = "/reset-mid-body?size=10000&sent=1000&delay=50"
        r, _ = self.get(cl, path, "127.0.0.1", srv.port)
        self.assertEqual((r.status, r.complete, r.body), (200, False, pattern(1000)), r)
        self.assertEqual(cl.end, "rst", "a truncated response must end in RST")
        self.assertLess(cl.end_time - r.t_head, ms(50) + QUICK)
        e = self.request_entry(srv.port, path)
        self.assertIn("connection_terminated", e.get("outcome", ""), e["line"])

    def test_close_delimited_body_needs_the_upstreams_close_notify(self):
        # Inside TLS, the end of a body delimited by the close is the
        # upstream's close_notify; a bare FIN may have cut it short, so the
        # client gets a reset, never a body passed off as whole.
        srv = self.tls_upstream(*PKI.good)
        for notify, end, outcome in (("1", "fin", "ok"), ("0", "rst", "error:connection_terminated")):
            with self.subTest(close_notify=notify):
                cl, _ = self.intercept(srv.port)
                path = f"/close-delimited?size=3000&notify={notify}"
                cl.request("GET", path, host=f"127.0.0.1:{srv.port}")
                r = cl.read_head()
                body = cl.read_exactly(3000)
                self.assertEqual((r.status, body), (200, pattern(3000)), r)
                self.assertEqual(cl.wait_end(2.0), end)
                self.assertEntry(self.request_entry(srv.port, path), 200, outcome)

    def test_bytes_behind_a_response_never_answer_the_next_request(self):
        # The upstream sends a second, unasked-for response in a record of
        # its own right behind the first; the client has pipelined its
        # next request. As with plain HTTP, that connection is not reused:
        # the next request gets its own answer from a fresh connection.
        srv = self.tls_upstream(*PKI.good)
        cl, _ = self.intercept(srv.port)
        host = f"127.0.0.1:{srv.port}"
        cl.send(build_request("GET", "/extra-record", [("Host", host)]) +
                build_request("GET", "/ok?size=7", [("Host", host)]))
        first, second = cl.read_response(), cl.read_response()
        self.assertEqual((first.status, first.body), (200, b"r1"), first)
        self.assertEqual((second.status, second.body), (200, pattern(7)), second)
        self.assertEqual(srv.connection_count(), 2, "the connection with extra bytes was reused")

    def test_server_name_is_logged_only_as_a_host_name(self):
        # OpenSSL takes any bytes for a server name; the access log shows
        # one only if it is a plausible host name, lower-cased, so that a
        # client cannot write fields or lines of its own into the log.
        srv = self.tls_upstream(*PKI.good)
        mark = len(self.cutoff.access_entries())
        for sni in ("evil outcome=ok status=200", "x\nforged line", "Upper.Example.TEST"):
            run_tool(["openssl", "s_client", "-proxy", f"127.0.0.1:{self.cutoff.port}",
                      "-connect", f"127.0.0.1:{srv.port}", "-servername", sni, "-brief"],
                     timeout=TOOL_TIMEOUT, input=b"")
        lines = self.cutoff.wait_access(is_connect, target=f"127.0.0.1:{srv.port}", count=3,
                                        since=mark)
        self.assertEqual([e.get("sni") for e in lines], [None, None, "upper.example.test"],
                         "\n".join(e["line"] for e in lines))
        self.assertEqual(len(self.cutoff.access_entries()) - mark, 3, "a line was forged")

    def test_reload_without_tls_leaves_intercepted_connections_working(self):
        # A SIGHUP to a config that intercepts nothing and names no CA:
        # new CONNECTs are tunnels, but a connection intercepted before
        # keeps the TLS it began with (it used to crash cutoff).
        config = self.config()
        config["defaults"] = dict(config["defaults"], upstream_keepalive_timeout="100ms")
        cutoff = self.dedicated_cutoff(config)
        srv = self.tls_upstream(*PKI.good)
        r, cl, _ = self.connect_tunnel(srv.port, cutoff=cutoff)
        self.assertEqual(r.status, 200, r)
        start_tls(cl, PKI.client_context(), "127.0.0.1")
        r, _ = self.get(cl, "/ok?n=1", "127.0.0.1", srv.port)
        self.assertEqual(r.status, 200, r)
        cutoff.config = {k: v for k, v in cutoff.config.items() if k != "tls"}
        cutoff.config["defaults"] = dict(cutoff.config["defaults"], tls="tunnel")
        cutoff.reload()
        srv.wait_end(0, 2.0)  # the pooled connection's keep-alive ran out
        # So a fresh TLS connection upstream, under the TLS it began with.
        r, _ = self.get(cl, "/ok?n=2", "127.0.0.1", srv.port)
        self.assertEqual((r.status, srv.connection_count()), (200, 2), r)
        self.assertTrue(cutoff.alive())

    def test_upstream_certificate_for_another_name(self):
        srv = self.tls_upstream(*PKI.other)
        cl, _ = self.intercept(srv.port, host=WRONG)
        r, elapsed = self.get(cl, "/ok", WRONG, srv.port)
        self.assertGenerated(r, 502, "tls_certificate_error")
        self.assertDetails(r, f"{WRONG}:{srv.port}", also=[WRONG])
        self.assertRegex(r.proxy_status["details"], r"(?i)name|match",
                         "the details do not say that the name is wrong")
        self.assertLess(elapsed, QUICK)
        self.assertEqual(srv.requests, [], "a request reached an unverified upstream")
        self.assertEntry(self.request_entry(srv.port, "/ok", WRONG), 502,
                         "error:tls_certificate_error")
        # The same server through the route that does not verify.
        lax, _ = self.intercept(srv.port, host=LAX)
        r, _ = self.get(lax, "/ok", LAX, srv.port)
        self.assertEqual((r.status, r.body), (200, pattern(5)), r)
        self.assertEntry(self.request_entry(srv.port, "/ok", LAX), 200, "ok", route="lax")

    def test_upstream_with_unknown_issuer(self):
        srv = self.tls_upstream(*PKI.lone)
        cl, _ = self.intercept(srv.port)
        r, elapsed = self.get(cl, "/ok", "127.0.0.1", srv.port)
        self.assertGenerated(r, 502, "tls_certificate_error")
        self.assertDetails(r, self.hostport(srv))
        self.assertLess(elapsed, QUICK)
        self.assertEqual(srv.requests, [], "a request reached an unverified upstream")
        self.assertEntry(self.request_entry(srv.port, "/ok"), 502, "error:tls_certificate_error")
        lax, _ = self.intercept(srv.port, host=LAX)
        r, _ = self.get(lax, "/ok", LAX, srv.port)
        self.assertEqual((r.status, r.body), (200, pattern(5)), r)

    def test_upstream_alert_during_handshake(self):
        srv = self.tls_upstream(handshake="alert")
        cl, _ = self.intercept(srv.port)
        r, elapsed = self.get(cl, "/ok", "127.0.0.1", srv.port)
        self.assertGenerated(r, 502, "tls_alert_received")
        self.assertDetails(r, self.hostport(srv))
        self.assertLess(elapsed, QUICK)
        self.assertIsNotNone(srv.conn(0).time_of("client_hello"))
        self.assertEntry(self.request_entry(srv.port, "/ok"), 502, "error:tls_alert_received")

    # -- the client misbehaves -----------------------------------------------------

    def test_client_handshake_never_comes(self):
        srv = self.tls_upstream(*PKI.good)
        r, cl, _ = self.connect_tunnel(srv.port)
        self.assertEqual(r.status, 200, r)
        end = cl.wait_end(TLS_HANDSHAKE + 1.0)
        # Nothing was owed to it: a FIN, as for any idle connection.
        self.assertEqual(end, "fin", "the silent client's connection was not closed with FIN")
        self.assertElapsed(cl.end_time - r.t_head, TLS_HANDSHAKE, "closed after", early=0.02)
        self.assertEntry(self.connect_entry(srv.port), 200, "timeout:tls_handshake_timeout")
        self.assertEqual(srv.connection_count(), 0)

    def test_client_without_the_ca_curl_fails_at_once(self):
        if not shutil.which("curl"):
            self.skipTest("curl not installed")
        srv = self.tls_upstream(*PKI.good)
        t0 = time.monotonic()
        p = run_tool(["curl", "-sS", "-x", self.cutoff.url, f"https://127.0.0.1:{srv.port}/ok"],
                     TOOL_TIMEOUT, env=self.tool_env())
        elapsed = time.monotonic() - t0
        # 60: the peer's certificate cannot be authenticated with known CAs.
        self.assertEqual(p.returncode, 60, p.stderr)
        self.assertLess(elapsed, TLS_HANDSHAKE, "curl waited for a deadline")
        self.assertEntry(self.connect_entry(srv.port), 200, "error:tls_alert_received")
        self.assertEqual(srv.connection_count(), 0)

    # -- real clients --------------------------------------------------------------

    def tool_env(self, **extra):
        """A clean environment with a temp HOME (no ~/.curlrc, ~/.wgetrc)."""
        home = tempfile.mkdtemp(prefix="cutoff-intercept-home-")
        self.addCleanup(shutil.rmtree, home, True)
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": home, "LC_ALL": "C"}
        env.update(extra)
        return env

    def assertThroughInterception(self, srv, path, host="127.0.0.1"):
        """The upstream saw the request from cutoff (its Via), and cutoff
        logged it with its https:// target."""
        req = next(r for r in srv.requests if r.target == path)
        self.assertTrue(any("cutoff" in v for v in req.headers_named("via")),
                        f"request did not come from cutoff: {req.headers}")
        self.assertEntry(self.request_entry(srv.port, path, host), 200, "ok")

    @time_limit(20)
    def test_curl_proxy_flag_and_cacert(self):
        if not shutil.which("curl"):
            self.skipTest("curl not installed")
        srv = self.tls_upstream(*PKI.good)
        p = run_tool(["curl", "-sS", "--cacert", PKI.ca_cert, "-x", self.cutoff.url,
                      f"https://127.0.0.1:{srv.port}/ok?size=1000"], TOOL_TIMEOUT,
                     env=self.tool_env())
        self.assertEqual((p.returncode, p.stdout), (0, pattern(1000)), p.stderr)
        self.assertThroughInterception(srv, "/ok?size=1000")

    @time_limit(20)
    def test_curl_https_proxy_env_with_a_name(self):
        if not shutil.which("curl"):
            self.skipTest("curl not installed")
        srv = self.tls_upstream(*PKI.good)
        # No --resolve: curl sends the name in CONNECT, cutoff resolves it.
        p = run_tool(["curl", "-sS", "--cacert", PKI.ca_cert, f"https://{API}:{srv.port}/chunked"],
                     TOOL_TIMEOUT, env=self.tool_env(https_proxy=self.cutoff.url, no_proxy=""))
        self.assertEqual((p.returncode, p.stdout), (0, pattern(1000)), p.stderr)
        self.assertThroughInterception(srv, "/chunked", API)
        self.assertEqual(self.connect_entry(srv.port, API).get("sni"), API)

    @time_limit(20)
    def test_urllib_with_the_ca(self):
        srv = self.tls_upstream(*PKI.good)
        opener = urllib.request.build_opener(
            urllib.request.ProxyHandler({"https": self.cutoff.url}),
            urllib.request.HTTPSHandler(context=PKI.client_context()))
        with opener.open(f"https://127.0.0.1:{srv.port}/ok?size=700", timeout=5 * SCALE) as resp:
            self.assertEqual((resp.status, resp.read()), (200, pattern(700)))
        self.assertThroughInterception(srv, "/ok?size=700")

    @time_limit(20)
    def test_requests_inside_inherit_the_connects_test_id(self):
        srv = self.tls_upstream(*PKI.good)
        host, port = self.cutoff.addr
        opener = urllib.request.build_opener(
            urllib.request.ProxyHandler({"https": f"http://suite.inherits:x@{host}:{port}"}),
            urllib.request.HTTPSHandler(context=PKI.client_context()))
        with opener.open(f"https://127.0.0.1:{srv.port}/ok?size=701", timeout=5 * SCALE) as resp:
            self.assertEqual(resp.status, 200)
        self.assertEqual(self.connect_entry(srv.port).get("test"), "suite.inherits")
        inside = self.request_entry(srv.port, "/ok?size=701")
        self.assertEqual(inside.get("test"), "suite.inherits", inside["line"])
        req = next(r for r in srv.requests if r.target == "/ok?size=701")
        self.assertEqual(req.headers_named("proxy-authorization"), [])

    @time_limit(20)
    def test_wget_https_proxy_env(self):
        if not shutil.which("wget"):
            self.skipTest("wget not installed")
        srv = self.tls_upstream(*PKI.good)
        env = self.tool_env(https_proxy=self.cutoff.url)
        out = os.path.join(env["HOME"], "out")
        p = run_tool(["wget", "--no-config", "-q", "-O", out, f"--ca-certificate={PKI.ca_cert}",
                      f"https://127.0.0.1:{srv.port}/ok?size=4000"], TOOL_TIMEOUT, env=env)
        self.assertEqual(p.returncode, 0, p.stderr)
        with open(out, "rb") as f:
            self.assertEqual(f.read(), pattern(4000))
        self.assertThroughInterception(srv, "/ok?size=4000")

    @time_limit(20)
    def test_node_with_extra_ca_certs(self):
        node = shutil.which("node")
        if not node:
            self.skipTest("node not installed")
        srv = self.tls_upstream(*PKI.good)
        p = run_tool([node, "-e", NODE_GET, f"127.0.0.1:{self.cutoff.port}",
                      f"127.0.0.1:{srv.port}", "/ok?size=900"], TOOL_TIMEOUT,
                     env=self.tool_env(NODE_EXTRA_CA_CERTS=PKI.ca_cert))
        self.assertEqual(p.returncode, 0, p.stderr)
        status, _, body = p.stdout.partition(b"\n")
        self.assertEqual((status, body), (b"200", pattern(900)), p.stderr)
        self.assertThroughInterception(srv, "/ok?size=900")


# A CONNECT made by hand, then https.get over the tunnel: node's own https
# has no proxy support. argv: PROXY_HOST:PORT TARGET_HOST:PORT PATH.
# Prints the status, a newline, then the body.
NODE_GET = r"""
const http = require('http'), https = require('https'), tls = require('tls'), net = require('net');
const [proxy, target, path] = process.argv.slice(1);
const split = (hp) => { const i = hp.lastIndexOf(':'); return [hp.slice(0, i), +hp.slice(i + 1)]; };
const [proxyHost, proxyPort] = split(proxy), [host, port] = split(target);
const fail = (code) => (e) => { console.error(String(e && e.message || e)); process.exit(code); };
const connect = http.request({host: proxyHost, port: proxyPort, method: 'CONNECT', path: target,
                              headers: {host: target}});
connect.on('connect', (res, socket) => {
  if (res.statusCode !== 200) fail(2)('CONNECT answered ' + res.statusCode);
  const servername = net.isIP(host) ? undefined : host;
  const get = https.get({host, port, path,
                         createConnection: () => tls.connect({socket, host, servername})}, (r) => {
    const chunks = [];
    r.on('data', (c) => chunks.push(c));
    r.on('end', () => {
      process.stdout.write(r.statusCode + '\n');
      process.stdout.write(Buffer.concat(chunks));
      socket.destroy();
    });
  });
  get.on('error', fail(3));
});
connect.on('error', fail(4));
connect.end();
"""


class TunnelRoutesTest(InterceptTestCase):
    """Interception is per route: the default here is the tunnel, and this
    cutoff has no upstream_ca."""

    @classmethod
    def config(cls):
        return {
            "tls": {"ca_cert": PKI.ca_cert, "ca_key": PKI.ca_key},
            "dns": {"servers": [DNS.address]},
            "defaults": {"tls_handshake_timeout": "400ms", "tunnel_idle_timeout": "400ms"},
        }

    ROUTES = [{"name": "mitm", "match": {"host": API}, "tls": "intercept"}]

    def tunnelled_tls(self, srv, name):
        """CONNECT 127.0.0.1:port, then TLS with the upstream itself,
        verified against the test CA as name."""
        r, cl, _ = self.connect_tunnel(srv.port)
        self.assertEqual(r.status, 200, r)
        ctx = ssl.create_default_context(cafile=PKI.upstream_ca.cert)
        return cl, start_tls(cl, ctx, name)

    def test_tunnel_unanswered_request_ends_at_tunnel_idle_timeout(self):
        srv = self.tls_upstream(*PKI.good)
        # Verified against the test CA alone: the upstream's own certificate.
        cl, _ = self.tunnelled_tls(srv, "127.0.0.1")
        cl.request("GET", "/hang", host=f"127.0.0.1:{srv.port}")
        self.assertTrue(srv.wait_requests(1, 1.0 * SCALE))
        end = cl.wait_end(TUNNEL_IDLE + 1.0)
        self.assertEqual(end, "fin", "the idle tunnel's client was not closed with FIN")
        self.assertElapsed(cl.end_time - cl.t_sent, TUNNEL_IDLE, "client closed after", early=0.02)
        rec = srv.wait_end(0, 1.0 * SCALE)
        self.assertEqual(rec.state, "rst", rec)  # teardown = "reset", the default
        self.assertElapsed(rec.end_time - cl.t_sent, TUNNEL_IDLE, "upstream closed after",
                           early=0.02)
        e = self.connect_entry(srv.port)
        self.assertEntry(e, 200, "timeout:tunnel_idle_timeout")
        self.assertFalse([x for x in self.cutoff.access_entries()
                          if x["target"].startswith("https://") and f":{srv.port}/" in x["target"]],
                         "a tunnel was intercepted")

    def test_tunnel_wrong_name_is_the_clients_business(self):
        srv = self.tls_upstream(*PKI.other)
        with self.assertRaises(ssl.SSLCertVerificationError):
            self.tunnelled_tls(srv, API)
        # The client's alert went through the tunnel to the upstream.
        rec = srv.wait_end(0, 1.0 * SCALE)
        self.assertIsNotNone(rec.tls_error, rec)
        self._clients[-1].close()
        self.assertEntry(self.connect_entry(srv.port), 200, "ok")

    def test_intercept_without_upstream_ca_refuses_the_test_ca(self):
        srv = self.tls_upstream(*PKI.good)
        cl, _ = self.intercept(srv.port, host=API)
        r, elapsed = self.get(cl, "/ok", API, srv.port)
        self.assertGenerated(r, 502, "tls_certificate_error")
        self.assertDetails(r, f"{API}:{srv.port}", route="mitm")
        self.assertLess(elapsed, QUICK)
        self.assertEntry(self.request_entry(srv.port, "/ok", API), 502,
                         "error:tls_certificate_error", route="mitm")


class ConfigTest(CutoffTestCase):
    """`cutoff ca init` and --check, no running cutoff."""

    NEEDS_CUTOFF = False
    TIME_LIMIT = 10.0

    def setUp(self):
        super().setUp()
        self.checker = Cutoff()
        self.addCleanup(self.checker.cleanup_dir)

    def check(self, text: str):
        """`cutoff --check` on text: (exit code, stdout and stderr)."""
        p = self.checker.check_config(text)
        return p.returncode, (p.stdout + p.stderr).decode(errors="replace")

    def tls_table(self, key=None) -> str:
        return f"[tls]\nca_cert = {json.dumps(PKI.ca_cert)}\nca_key = {json.dumps(key or PKI.ca_key)}\n"

    def test_ca_init_writes_a_private_key_and_says_how_to_trust_it(self):
        self.assertEqual(stat.S_IMODE(os.stat(PKI.ca_key).st_mode), 0o600)
        p = run_tool(["openssl", "x509", "-in", PKI.ca_cert, "-noout", "-ext", "basicConstraints"],
                     timeout=10)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn(b"CA:TRUE", p.stdout)
        # The lines to copy go to stdout.
        said = PKI.ca_init.stdout.decode(errors="replace")
        for what in ("SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "NODE_EXTRA_CA_CERTS", "--cacert",
                     PKI.ca_cert):
            self.assertIn(what, said, f"`cutoff ca init` does not print {what}; stderr: "
                          + PKI.ca_init.stderr.decode(errors="replace"))

    def test_check_accepts_an_intercepting_route_with_its_ca(self):
        rc, msg = self.check(self.tls_table()
                             + '\n[[route]]\nname = "mitm"\nmatch = { host = "*" }\n'
                               'tls = "intercept"\ntls_verify_upstream = false\n')
        self.assertEqual(rc, 0, msg)

    def test_check_refuses_intercept_without_a_ca(self):
        rc, msg = self.check('[[route]]\nname = "mitm"\nmatch = { host = "*" }\ntls = "intercept"\n')
        self.assertEqual(rc, 1, msg)
        self.assertIn("mitm", msg)
        self.assertIn("ca_cert", msg)
        rc, msg = self.check('[defaults]\ntls = "intercept"\n')
        self.assertEqual(rc, 1, msg)
        self.assertIn("ca_cert", msg)

    def test_check_refuses_a_ca_key_others_can_read(self):
        tmp = tempfile.mkdtemp(prefix="cutoff-intercept-key-")
        self.addCleanup(shutil.rmtree, tmp, True)
        loose = os.path.join(tmp, "ca-key.pem")
        shutil.copyfile(PKI.ca_key, loose)
        os.chmod(loose, 0o644)
        rc, msg = self.check(self.tls_table(loose)
                             + '\n[[route]]\nname = "mitm"\nmatch = { host = "*" }\n'
                               'tls = "intercept"\n')
        self.assertEqual(rc, 1, msg)
        self.assertRegex(msg, r"chmod 0?600")


if __name__ == "__main__":
    unittest.main()
