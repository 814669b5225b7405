"""Real clients through cutoff (SPEC section 8): curl, Python urllib, wget.

Every target is a local fake server; the proxy variables name cutoff on
127.0.0.1 and the tools run with a clean environment and a temp HOME (no
~/.curlrc or ~/.wgetrc). Note the variable names each tool honours:
curl reads `http_proxy` only in lower case for http:// URLs (HTTP_PROXY is
ignored, a CGI safeguard) and HTTPS_PROXY/https_proxy for https:// URLs;
urllib reads both cases; wget reads http_proxy but only with use_proxy on.
"""

import http.server
import json
import os
import shutil
import ssl
import sys
import tempfile
import threading
import time
import unittest

from fakeupstream import pattern
from harness import SCALE, CutoffTestCase, ms, run_tool, tolerance
from tlscerts import needs_openssl, self_signed

TOOL_TIMEOUT = 15 * SCALE


def need(tool):
    return unittest.skipUnless(shutil.which(tool), f"{tool} not installed")


class ClientsTest(CutoffTestCase):
    TIME_LIMIT = 20.0

    def setUp(self):
        super().setUp()
        self.tmp = tempfile.mkdtemp(prefix="cutoff-clients-")
        self.addCleanup(shutil.rmtree, self.tmp, True)

    def env(self, **proxies):
        e = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": self.tmp, "LC_ALL": "C"}
        e.update(proxies)
        return e

    @property
    def proxy(self):
        return self.cutoff.url

    def out(self, name="out"):
        return os.path.join(self.tmp, name)

    def read(self, name="out"):
        with open(self.out(name), "rb") as f:
            return f.read()

    def assertThroughCutoff(self, up, path):
        """The upstream saw the request in origin-form with cutoff's Via."""
        req = next(r for r in up.requests if r.target == path)
        self.assertTrue(any("cutoff" in v for v in req.headers_named("via")),
                        f"request did not go through cutoff: {req.headers}")
        self.cutoff.wait_access(target=f":{up.port}{path}")

    # -- curl ----------------------------------------------------------------

    @need("curl")
    def test_curl_x(self):
        up = self.upstream()
        p = run_tool(["curl", "-sS", "-x", self.proxy, "-o", self.out(), "-w", "%{http_code}",
                      self.url(up, "/ok?size=1000")], TOOL_TIMEOUT, env=self.env())
        self.assertEqual((p.returncode, p.stdout), (0, b"200"), p.stderr)
        self.assertEqual(self.read(), pattern(1000))
        self.assertThroughCutoff(up, "/ok?size=1000")

    @need("curl")
    def test_curl_http_proxy_env(self):
        up = self.upstream()
        p = run_tool(["curl", "-sS", "-o", self.out(), "-w", "%{http_code}", self.url(up, "/chunked?size=3000")],
                     TOOL_TIMEOUT, env=self.env(http_proxy=self.proxy, no_proxy="", NO_PROXY=""))
        self.assertEqual((p.returncode, p.stdout), (0, b"200"), p.stderr)
        self.assertEqual(self.read(), pattern(3000))
        self.assertThroughCutoff(up, "/chunked?size=3000")

    @need("curl")
    def test_curl_keepalive_many_urls_one_upstream_connection(self):
        up = self.upstream()
        urls = []
        for i in range(1, 6):
            urls += ["-o", "/dev/null", self.url(up, f"/ok?size={i}")]
        p = run_tool(["curl", "-sS", "-x", self.proxy, "-w", "%{http_code} %{num_connects}\n"]
                     + urls, TOOL_TIMEOUT, env=self.env())
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(p.stdout.decode().split(), ["200", "1"] + ["200", "0"] * 4)
        self.assertEqual(up.connection_count(), 1)

    @need("curl")
    def test_curl_proxytunnel_connect(self):
        # -p makes curl CONNECT through the proxy even for http://, which is
        # what an https:// URL behind HTTPS_PROXY does minus the TLS.
        up = self.upstream()
        p = run_tool(["curl", "-sS", "-p", "-o", self.out(), "-w", "%{http_code}",
                      self.url(up, "/ok?size=777")], TOOL_TIMEOUT,
                     env=self.env(http_proxy=self.proxy, no_proxy=""))
        self.assertEqual((p.returncode, p.stdout), (0, b"200"), p.stderr)
        self.assertEqual(self.read(), pattern(777))
        req = up.requests[0]
        self.assertEqual(req.target, "/ok?size=777")
        self.assertFalse(req.headers_named("via"), "a tunnelled request must not be rewritten")
        self.cutoff.wait_access(lambda e: e["method"] == "CONNECT", target=f"127.0.0.1:{up.port}")

    @need("curl")
    @needs_openssl
    def test_curl_https_proxy_env_real_tls(self):
        cert, key = self_signed(self.tmp, "127.0.0.1", ips=["127.0.0.1"])
        seen = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                seen.append(self.path)
                body = b"secret hello"
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *a):
                pass
        srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        srv.daemon_threads = True
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert, key)
        srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
        t = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        t.start()

        def stop():
            srv.shutdown()
            srv.server_close()
            t.join(5)
        self.addCleanup(stop)
        port = srv.server_address[1]
        p = run_tool(["curl", "-sS", "--cacert", cert, f"https://127.0.0.1:{port}/tls"], TOOL_TIMEOUT,
                     env=self.env(HTTPS_PROXY=self.proxy, NO_PROXY=""))
        self.assertEqual((p.returncode, p.stdout), (0, b"secret hello"), p.stderr)
        self.assertEqual(seen, ["/tls"])
        e = self.cutoff.wait_access(lambda e: e["method"] == "CONNECT", target=f"127.0.0.1:{port}")
        self.assertEqual(e.get("outcome"), "ok", e["line"])

    @need("curl")
    def test_curl_upload_with_expect_100_continue(self):
        # curl sends Expect: 100-continue for bodies over 1 MiB and waits
        # --expect100-timeout (10 s here) for the 100; a working relay
        # answers long before that.
        up = self.upstream()
        body = pattern(2 << 20, 3)
        with open(self.out("up"), "wb") as f:
            f.write(body)
        t0 = time.monotonic()
        p = run_tool(["curl", "-sS", "-x", self.proxy, "--data-binary", "@" + self.out("up"),
                      "--expect100-timeout", "10",
                      "-o", self.out(), "-w", "%{http_code}", self.url(up, "/continue")],
                     TOOL_TIMEOUT, env=self.env())
        elapsed = time.monotonic() - t0
        self.assertEqual((p.returncode, p.stdout), (0, b"200"), p.stderr)
        info = json.loads(self.read())
        self.assertTrue(info["expect"], "curl's Expect: 100-continue was not forwarded")
        self.assertEqual(info["body_len"], len(body))
        self.assertLess(elapsed, 5, "curl waited for a 100 Continue that never came")

    @need("curl")
    def test_curl_http10(self):
        up = self.upstream()
        p = run_tool(["curl", "-sS", "-0", "-x", self.proxy, "-D", self.out("head"), "-o", self.out(),
                      self.url(up, "/chunked?size=2000")], TOOL_TIMEOUT, env=self.env())
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(self.read(), pattern(2000))
        self.assertNotIn(b"chunked", self.read("head").lower())

    @need("curl")
    def test_curl_sees_504_with_proxy_status(self):
        up = self.upstream()
        t0 = time.monotonic()
        p = run_tool(["curl", "-sS", "-x", self.proxy, "-D", self.out("head"), "-o", self.out(),
                      "-w", "%{http_code}", self.url(up, "/hang")], TOOL_TIMEOUT, env=self.env())
        elapsed = time.monotonic() - t0
        self.assertEqual((p.returncode, p.stdout), (0, b"504"), p.stderr)
        self.assertIn(b"error=http_response_timeout", self.read("head"))
        self.assertLess(elapsed, ms(400) + tolerance(ms(400)) + 0.3 * SCALE)

    # -- Python urllib ---------------------------------------------------------

    def test_urllib_proxy_handler(self):
        import urllib.request
        up = self.upstream()
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({"http": self.proxy}))
        with opener.open(self.url(up, "/echo?via=handler"), data=b"abc", timeout=5 * SCALE) as resp:
            self.assertEqual(resp.status, 200)
            self.assertEqual(resp.read(), b"abc")
            seen = json.loads(resp.headers["X-Echo-Head"])
        self.assertEqual(seen["target"], "/echo?via=handler")
        self.assertThroughCutoff(up, "/echo?via=handler")

    def test_urllib_http_proxy_env(self):
        up = self.upstream()
        code = ("import sys, urllib.request\n"
                "r = urllib.request.urlopen(sys.argv[1], timeout=5)\n"
                "sys.stdout.buffer.write(r.read())\n")
        p = run_tool([sys.executable, "-c", code, self.url(up, "/ok?size=300")], TOOL_TIMEOUT,
                     env=self.env(HTTP_PROXY=self.proxy))
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(p.stdout, pattern(300))
        self.assertThroughCutoff(up, "/ok?size=300")

    # -- wget ------------------------------------------------------------------

    @need("wget")
    def test_wget(self):
        up = self.upstream()
        p = run_tool(["wget", "--no-config", "-q", "-O", self.out(), "-e", "use_proxy=yes",
                      "-e", f"http_proxy={self.proxy}", self.url(up, "/close-delimited?size=4000")],
                     TOOL_TIMEOUT, env=self.env())
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(self.read(), pattern(4000))
        self.assertThroughCutoff(up, "/close-delimited?size=4000")

    @need("wget")
    def test_wget_http_proxy_env(self):
        up = self.upstream()
        p = run_tool(["wget", "--no-config", "-q", "-O", self.out(), self.url(up, "/ok?size=10")],
                     TOOL_TIMEOUT, env=self.env(http_proxy=self.proxy))
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(self.read(), pattern(10))
        self.assertThroughCutoff(up, "/ok?size=10")


if __name__ == "__main__":
    unittest.main()
