"""Parent proxies (SPEC section 11): cutoff behind another proxy.

Each test starts a parent (fakeparent.FakeParent, or Debian's tinyproxy
where installed) and a cutoff of its own whose parent_proxy names it.

ParentProxyTest:
- test_plain_request_goes_in_absolute_form_with_credentials: the parent
  reads "GET http://127.0.0.1:P/ok" with cutoff's Basic credentials, never
  the client's.
- test_connections_to_the_parent_are_pooled: requests of three clients for
  two origins share one connection to the parent.
- test_connect_goes_through_the_parents_connect: the tunnel works both
  ways; the parent read CONNECT host:port with the credentials.
- test_parent_that_never_answers_connect: 504 connection_timeout at
  connect_timeout (which covers the parent's answer), naming the parent;
  the parent's connection reset.
- test_parent_asking_for_credentials_gives_502: 407 to CONNECT and to a
  plain request: 502 destination_unavailable naming the parent and 407,
  never a 407 the client would take as cutoff's.
- test_parent_refusal_keeps_its_proxy_status: the parent's entry, then
  cutoff's; the next exchange's answer is cutoff's alone.
- test_oversized_parent_proxy_status_is_left_out: cutoff's member stays
  readable.
- test_interim_answer_before_the_parents_200: a 100 before the 200.
- test_loop_back_to_cutoff_is_stopped_at_the_first_repeat: the parent is
  cutoff itself (as localhost): 502 proxy_loop_detected after one hop.
- test_address_deny_holds_for_address_targets: a deny route on addresses
  holds for a target given as an address, parent or not.
- test_parent_name_that_does_not_resolve: 502 dns_error naming the parent.
- test_response_header_timeout_applies_through_the_parent: an origin that
  hangs behind the parent: 504 http_response_timeout at
  response_header_timeout.
- test_unreachable_parent_is_named: 502 connection_refused naming the
  parent.
- test_env_with_no_proxy: parent_proxy = "env": HTTP_PROXY for plain
  requests, HTTPS_PROXY for CONNECT, NO_PROXY entries go direct.

InterceptThroughParentTest (tls = "intercept"):
- test_intercepted_https_through_the_parent: the TLS connection to the
  origin runs inside the parent's CONNECT, and is pooled.
- test_pooled_tls_connections_keep_to_their_way: a pooled direct TLS
  connection never serves a route through the parent, nor the other way.
- test_a_407_inside_tls_is_the_origins: passed on, not blamed on the parent.

TinyproxyTest: the same plain request and CONNECT through tinyproxy.
"""

import os
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
import unittest
from unittest import mock

from fakeparent import PROXY_STATUS, FakeParent, basic
from harness import (SCALE, SLACK, CutoffTestCase, find_binary, merge, ms, parse_proxy_status,
                     run_tool, shown)
from tlscerts import TestCa
from tlsclient import start_tls

CONNECT = ms(300)
RESPONSE_HEADER = ms(400)
QUICK = 0.15 + SLACK
CREDENTIALS = "ci:s3cr%40t"  # as written in the URL: the password is "s3cr@t"


class ParentTestCase(CutoffTestCase):
    NEEDS_CUTOFF = False
    TIME_LIMIT = 10.0

    def parent(self, **kw) -> FakeParent:
        return self._own(FakeParent(**kw).start())

    def behind(self, parent_url: str, config=None, routes=()):
        """A cutoff of this test's own whose [defaults] parent_proxy is
        `parent_url`; checked for leaked descriptors at the end."""
        c = self.dedicated_cutoff(merge({"defaults": {"parent_proxy": parent_url}}, config or {}),
                                  routes)
        self.addCleanup(self.assertFdsBack, c)
        return c

    def assertFdsBack(self, c):
        ok, n = c.wait_fds_back_to(c.baseline_fds, 2 * SCALE)
        self.assertTrue(ok, f"cutoff holds {n} fds, {c.baseline_fds} before the test")

    def connect(self, c, port: int):
        cl = self.client(c)
        t0 = time.monotonic()
        cl.send(f"CONNECT 127.0.0.1:{port} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
        return cl.read_response("CONNECT"), cl, time.monotonic() - t0


class ParentProxyTest(ParentTestCase):
    def test_plain_request_goes_in_absolute_form_with_credentials(self):
        up = self.upstream()
        parent = self.parent(credentials="ci:s3cr@t")
        c = self.behind(f"http://{CREDENTIALS}@127.0.0.1:{parent.port}")
        r, _, _ = self.exchange("GET", self.url(up, "/ok?x=1"), cutoff=c,
                                headers=[("Proxy-Authorization", basic("client:own"))])
        self.assertEqual(r.status, 200, r)
        self.assertEqual(len(parent.requests), 1, parent.requests)
        seen = parent.requests[0]
        self.assertEqual((seen.method, seen.target), ("GET", self.url(up, "/ok?x=1")))
        self.assertEqual(seen.authorization, basic("ci:s3cr@t"))
        self.assertEqual(len(up.requests), 1)
        self.assertIsNone(up.requests[0].header("proxy-authorization"))
        e = c.wait_access(target=f":{up.port}/ok")
        self.assertEqual((e["status"], e["outcome"]), ("200", "ok"), e["line"])

    def test_connections_to_the_parent_are_pooled(self):
        one, two = self.upstream(), self.upstream()
        parent = self.parent()
        c = self.behind(f"http://127.0.0.1:{parent.port}")
        for up in (one, two, one):
            r, cl, _ = self.exchange("GET", self.url(up), cutoff=c)
            self.assertEqual(r.status, 200, r)
            cl.close()
        self.assertEqual(parent.connection_count(), 1, parent.connections())
        self.assertEqual({p.conn_id for p in parent.requests}, {parent.conn(0).id})
        reused = [e["reused"] for e in c.wait_access(target=":", count=3)]
        self.assertEqual(reused, ["0", "1", "1"])

    def test_connect_goes_through_the_parents_connect(self):
        echo = self.echo_server()
        parent = self.parent(credentials="ci:s3cr@t")
        c = self.behind(f"http://{CREDENTIALS}@127.0.0.1:{parent.port}")
        r, cl, _ = self.connect(c, echo.port)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(self.round_trip(cl, b"through the parent"), b"through the parent")
        seen = parent.requests[0]
        self.assertEqual((seen.method, seen.target), ("CONNECT", f"127.0.0.1:{echo.port}"))
        self.assertEqual(seen.authorization, basic("ci:s3cr@t"))
        cl.shutdown_write()
        self.assertEqual(cl.wait_end(2.0), "fin")
        e = c.wait_access(lambda e: e["method"] == "CONNECT")
        self.assertEqual(e["outcome"], "ok", e["line"])

    def test_parent_that_never_answers_connect(self):
        parent = self.parent(mode="hang")
        c = self.behind(f"http://127.0.0.1:{parent.port}")
        r, _, elapsed = self.connect(c, 9)
        self.assertGenerated(r, 504, "connection_timeout")
        self.assertElapsed(elapsed, CONNECT, "504 after")
        self.assertDetails(r, target="127.0.0.1:9", value=shown("300ms"),
                           also=[f"parent proxy http://127.0.0.1:{parent.port}",
                                 "did not answer CONNECT", "connect_timeout"])
        self.assertEqual(parent.wait_end(0, 2.0).state, "rst", parent.connections())

    def test_parent_asking_for_credentials_gives_502(self):
        up = self.upstream()
        parent = self.parent(credentials="ci:s3cr@t")
        c = self.behind(f"http://127.0.0.1:{parent.port}")
        r, _, elapsed = self.connect(c, up.port)
        self.assertGenerated(r, 502, "destination_unavailable")
        self.assertLess(elapsed, QUICK)
        self.assertDetails(r, also=[f"parent proxy http://127.0.0.1:{parent.port}",
                                    "refused CONNECT 127.0.0.1:", "407",
                                    "http://user:password@host:port"])
        r, _, _ = self.exchange("GET", self.url(up), cutoff=c)
        self.assertGenerated(r, 502, "destination_unavailable")
        self.assertIsNone(r.header("Proxy-Authenticate"))
        self.assertDetails(r, also=["refused GET to 127.0.0.1:", "407"])
        self.assertEqual(len(up.requests), 0)

    def test_parent_refusal_keeps_its_proxy_status(self):
        parent = self.parent(mode="refuse", refuse_status=403)
        c = self.behind(f"http://127.0.0.1:{parent.port}")
        r, _, _ = self.connect(c, 443)
        self.assertEqual(r.status, 502, r)
        value = r.header("Proxy-Status")
        self.assertTrue(value.startswith(PROXY_STATUS + ", cutoff; "), value)
        ours = parse_proxy_status(value[len(PROXY_STATUS) + 2:])
        self.assertEqual(ours["error"], "destination_unavailable")
        self.assertIn("403 Forbidden", ours["details"])
        # The next exchange (its state recycled from this one) is cutoff's alone.
        r, _, _ = self.exchange("GET", "/origin-form", cutoff=c)
        self.assertEqual(r.status, 400, r)
        self.assertTrue(r.header("Proxy-Status").startswith("cutoff; "), r)

    def test_oversized_parent_proxy_status_is_left_out(self):
        parent = self.parent(mode="refuse", refuse_status=503, proxy_status="p; details=\""
                             + "x" * 2000 + "\"")
        c = self.behind(f"http://127.0.0.1:{parent.port}")
        r, _, _ = self.connect(c, 443)
        self.assertGenerated(r, 502, "destination_unavailable")
        self.assertDetails(r, also=["503 Service Unavailable"])

    def test_interim_answer_before_the_parents_200(self):
        echo = self.echo_server()
        parent = self.parent(mode="interim")
        c = self.behind(f"http://127.0.0.1:{parent.port}")
        r, cl, _ = self.connect(c, echo.port)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(self.round_trip(cl, b"after 100"), b"after 100")

    def test_loop_back_to_cutoff_is_stopped_at_the_first_repeat(self):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        # cutoff's own address under another spelling: only Via can tell.
        c = self.dedicated_cutoff({"defaults": {"parent_proxy": f"http://localhost:{port}"}},
                                  extra_args=["--listen", f"127.0.0.1:{port}"])
        self.addCleanup(self.assertFdsBack, c)
        r, _, _ = self.exchange("GET", "http://127.0.0.1:9/loop", cutoff=c)
        # The inner answer, forwarded by the outer hop as any parent answer is.
        self.assertGenerated(r, 502, "proxy_loop_detected", close=False)
        self.assertEqual(len(c.wait_access(target="/loop", count=2)), 2)
        r, _, _ = self.connect(c, 443)
        self.assertEqual(r.status, 502, r)
        self.assertIn("error=proxy_loop_detected", r.header("Proxy-Status"))
        self.assertEqual(r.proxy_status.get("name"), "cutoff")

    def test_address_deny_holds_for_address_targets(self):
        parent = self.parent()
        routes = [{"name": "metadata", "match": {"address": ["127.0.0.2/32"]}, "action": "deny"}]
        c = self.behind(f"http://127.0.0.1:{parent.port}", routes=routes)
        r, _, _ = self.exchange("GET", "http://2130706434/latest", cutoff=c)
        self.assertGenerated(r, 403, "http_request_denied")
        self.assertEqual(parent.requests, [])

    def test_parent_name_that_does_not_resolve(self):
        c = self.behind("http://parent.invalid:3128")
        r, _, _ = self.exchange("GET", "http://127.0.0.1:9/x", cutoff=c)
        self.assertGenerated(r, 502, "dns_error")
        self.assertDetails(r, also=["the name of parent proxy http://parent.invalid:3128"])

    def test_response_header_timeout_applies_through_the_parent(self):
        up = self.upstream()
        parent = self.parent()
        c = self.behind(f"http://127.0.0.1:{parent.port}")
        r, _, elapsed = self.exchange("GET", self.url(up, "/hang"), cutoff=c)
        self.assertGenerated(r, 504, "http_response_timeout")
        self.assertElapsed(elapsed, RESPONSE_HEADER, "504 after")
        self.assertDetails(r, also=[f"through parent proxy http://127.0.0.1:{parent.port}"])
        self.assertEqual(parent.wait_end(0, 2.0).state, "rst")

    def test_unreachable_parent_is_named(self):
        closed = self.closed_port()
        c = self.behind(f"http://127.0.0.1:{closed.port}")
        r, _, _ = self.exchange("GET", "http://127.0.0.1:9/ok", cutoff=c)
        self.assertGenerated(r, 502, "connection_refused")
        self.assertDetails(r, also=[f"through parent proxy http://127.0.0.1:{closed.port}"])

    def test_env_with_no_proxy(self):
        up, echo = self.upstream(), self.echo_server()
        plain, secure = self.parent(), self.parent()
        env = {"http_proxy": f"http://127.0.0.1:{plain.port}",
               "HTTPS_PROXY": f"127.0.0.1:{secure.port}",
               "NO_PROXY": f"example.invalid, localhost:{up.port}"}
        with mock.patch.dict(os.environ, env):
            for name in ("HTTP_PROXY", "https_proxy", "no_proxy"):
                os.environ.pop(name, None)
            c = self.behind("env")
        self.assertIn(f"parent_proxy=env{{http=http://127.0.0.1:{plain.port},"
                      f"https=http://127.0.0.1:{secure.port},no_proxy=2}}", c.stderr_text())
        r, _, _ = self.exchange("GET", self.url(up), cutoff=c)
        self.assertEqual(r.status, 200, r)
        r, _, _ = self.exchange("GET", f"http://localhost:{up.port}/ok", cutoff=c)
        self.assertEqual(r.status, 200, r)
        self.assertEqual([p.target for p in plain.requests], [self.url(up)])
        r, cl, _ = self.connect(c, echo.port)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(self.round_trip(cl, b"x"), b"x")
        self.assertEqual([p.target for p in secure.requests], [f"127.0.0.1:{echo.port}"])


class InterceptThroughParentTest(ParentTestCase):
    """tls = "intercept" with a parent: cutoff's TLS to the origin runs
    inside the parent's CONNECT. Certificates made once for the class."""

    TIME_LIMIT = 20.0

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        if not shutil.which("openssl") or not find_binary():
            raise unittest.SkipTest("needs the openssl command and the cutoff binary")
        cls.dir = tempfile.mkdtemp(prefix="cutoff-parent-tls-")
        upstream_ca = TestCa(cls.dir)
        cls.cert = upstream_ca.issue("good", ips=["127.0.0.1"])
        ca_dir = os.path.join(cls.dir, "ca")
        init = run_tool([find_binary(), "ca", "init", ca_dir], timeout=30 * SCALE)
        if init.returncode != 0:
            raise RuntimeError(f"cutoff ca init failed: {init}")
        cls.ca_pem = os.path.join(ca_dir, "ca.pem")
        cls.tls = {"ca_cert": cls.ca_pem, "ca_key": os.path.join(ca_dir, "ca-key.pem"),
                   "upstream_ca": upstream_ca.cert}

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.dir, True)
        super().tearDownClass()

    def intercepted(self, c, port: int):
        cl = self.client(c)
        cl.send(f"CONNECT 127.0.0.1:{port} HTTP/1.1\r\n\r\n".encode())
        self.assertEqual(cl.read_response("CONNECT").status, 200)
        start_tls(cl, ssl.create_default_context(cafile=self.ca_pem), "127.0.0.1")
        return cl

    def test_intercepted_https_through_the_parent(self):
        srv = self.tls_upstream(*self.cert)
        parent = self.parent(credentials="ci:s3cr@t")
        c = self.behind(f"http://{CREDENTIALS}@127.0.0.1:{parent.port}",
                        config={"tls": self.tls, "defaults": {"tls": "intercept"}})
        cl = self.intercepted(c, srv.port)
        for _ in range(2):
            cl.request("GET", "/ok", host=f"127.0.0.1:{srv.port}")
            self.assertEqual(cl.read_response().status, 200)
        # cutoff's own TLS connection to the origin ran inside one CONNECT.
        self.assertEqual([(p.method, p.target, p.authorization) for p in parent.requests],
                         [("CONNECT", f"127.0.0.1:{srv.port}", basic("ci:s3cr@t"))])
        e = c.wait_access(lambda e: e["method"] == "GET", count=2,
                          target=f"https://127.0.0.1:{srv.port}/ok")
        self.assertEqual([x["reused"] for x in e], ["0", "1"])

    def test_pooled_tls_connections_keep_to_their_way(self):
        srv = self.tls_upstream(*self.cert)
        parent = self.parent()
        routes = [{"name": "posts-direct", "match": {"method": ["POST"]}, "parent_proxy": "none"}]
        c = self.behind(f"http://127.0.0.1:{parent.port}", routes=routes,
                        config={"tls": self.tls, "defaults": {"tls": "intercept"}})
        cl = self.intercepted(c, srv.port)
        for method in ("POST", "GET", "POST"):
            cl.request(method, "/ok", host=f"127.0.0.1:{srv.port}", body=b"" if method == "POST"
                       else None)
            self.assertEqual(cl.read_response().status, 200)
        e = c.wait_access(lambda e: e["method"] in ("GET", "POST"), count=3)
        self.assertEqual([(x["route"], x["reused"]) for x in e],
                         [("posts-direct", "0"), ("default", "0"), ("posts-direct", "1")])
        self.assertEqual([p.method for p in parent.requests], ["CONNECT"])

    def test_a_407_inside_tls_is_the_origins(self):
        srv = self.tls_upstream(*self.cert)
        parent = self.parent()
        c = self.behind(f"http://127.0.0.1:{parent.port}",
                        config={"tls": self.tls, "defaults": {"tls": "intercept"}})
        cl = self.intercepted(c, srv.port)
        cl.request("GET", "/status?code=407", host=f"127.0.0.1:{srv.port}")
        self.assertEqual(cl.read_response().status, 407)


class TinyproxyTest(ParentTestCase):
    """Debian's tinyproxy as the parent, where it is installed."""

    def tinyproxy(self) -> int:
        binary = shutil.which("tinyproxy")
        if not binary:
            self.skipTest("tinyproxy is not installed")
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        d = tempfile.mkdtemp(prefix="cutoff-tinyproxy-")
        self.addCleanup(shutil.rmtree, d, True)
        conf = os.path.join(d, "tinyproxy.conf")
        with open(conf, "w") as f:
            f.write(f"Port {port}\nListen 127.0.0.1\nTimeout 30\nMaxClients 20\n"
                    "Allow 127.0.0.1\nLogLevel Error\n")
        proc = subprocess.Popen([binary, "-d", "-c", conf], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)

        def stop():
            proc.terminate()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.addCleanup(stop)
        deadline = time.monotonic() + 5 * SCALE
        while time.monotonic() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    return port
            time.sleep(0.02)
        self.fail("tinyproxy did not listen")

    def test_plain_and_connect_through_tinyproxy(self):
        port = self.tinyproxy()
        up, echo = self.upstream(), self.echo_server()
        c = self.behind(f"http://127.0.0.1:{port}")
        r, _, _ = self.exchange("GET", self.url(up), cutoff=c)
        self.assertEqual(r.status, 200, r)
        r, cl, _ = self.connect(c, echo.port)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(self.round_trip(cl, b"via tinyproxy"), b"via tinyproxy")
        cl.close()


if __name__ == "__main__":
    unittest.main()
