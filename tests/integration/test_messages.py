"""Messages a person can act on: what cutoff says when a client is set up
wrongly or an exchange is cut short.

- A TLS handshake sent to the proxy port (a proxy URL that says https://)
  gets a 400 that says to use an http:// proxy URL, and the log says so too
  (the client's TLS stack will not show the 400), at most once a minute.
- A 408 names the request in the access log when its start line had
  arrived, and so does a head that the client cut short.
- The 504 that drain_timeout produces states how long the exchange really
  ran, not the drain_timeout value.
"""

import re
import shutil
import signal
import ssl
import time
import unittest

from harness import (SCALE, CutoffTestCase, build_request, ms, run_tool, time_limit,
                     tolerance)

TLS_HINT = "http:// proxy URL"
LOG_HINT = "must start with http://, not https://"


def client_hello() -> bytes:
    """The first flight of a real TLS client, taken from a memory BIO."""
    ctx = ssl.create_default_context()
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = ctx.wrap_bio(incoming, outgoing, server_hostname="example.test")
    try:
        tls.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return outgoing.read()


class TlsToProxyPortTest(CutoffTestCase):
    """Each test has a cutoff of its own: the warning comes at most once a
    minute per worker, so a shared one would have warned already."""

    NEEDS_CUTOFF = False

    def test_client_hello_gets_400_naming_the_fix(self):
        c = self.dedicated_cutoff()
        cl = self.client(c)
        cl.send(client_hello())
        resp = cl.read_response()
        self.assertGenerated(resp, 400)
        self.assertIn(TLS_HINT, resp.body.decode())
        self.assertEqual(cl.wait_end(), "fin")
        self.wait_for(lambda: LOG_HINT in c.stderr_text(), "the log line about https:// proxy URLs")

    @unittest.skipUnless(shutil.which("curl"), "needs curl")
    def test_curl_with_https_proxy_url_is_told_in_the_log(self):
        c = self.dedicated_cutoff()
        up = self.upstream()
        r = run_tool(["curl", "-sS", "--max-time", str(5 * SCALE), "-x",
                      f"https://127.0.0.1:{c.port}", self.url(up)], timeout=10 * SCALE)
        self.assertNotEqual(r.returncode, 0, "curl cannot do TLS with a plain-HTTP port")
        self.wait_for(lambda: LOG_HINT in c.stderr_text(), "the log line about https:// proxy URLs")
        self.assertEqual(up.connection_count(), 0)

    def test_a_flood_of_handshakes_is_one_warning(self):
        c = self.dedicated_cutoff()
        hello = client_hello()
        for _ in range(20):
            cl = self.client(c)
            cl.send(hello)
            self.assertGenerated(cl.read_response(), 400)
            cl.close()
        # Each warning is written before its 400: once the last 400 is in
        # the access log, any second warning would be on stderr.
        c.wait_access(pred=lambda e: e["status"] == "400", count=20)
        self.assertEqual(c.stderr_text().count(LOG_HINT), 1, c.stderr_text())


class RequestHeadTimeoutTest(CutoffTestCase):
    CONFIG = {"listen": {"request_header_timeout": "300ms"}}

    def test_408_logs_the_request_line_that_arrived(self):
        cl = self.client()
        cl.send(b"GET http://127.0.0.1:9/stalled-head HTTP/1.1\r\nHost: 127.0.0.1:9\r\n")
        resp = cl.read_response()
        self.assertGenerated(resp, 408)
        e = type(self).cutoff.wait_access(target="/stalled-head")
        self.assertEqual(e["method"], "GET")
        self.assertEqual(e["status"], "408")
        self.assertEqual(e["outcome"], "timeout:request_header_timeout")

    def test_a_head_cut_by_the_client_logs_its_request_line(self):
        cl = self.client()
        cl.send(b"GET http://127.0.0.1:9/cut-head HTTP/1.1\r\nHost: 127.0.0.1:9\r\n")
        cl.shutdown_write()
        self.assertEqual(cl.wait_end(), "fin")
        e = type(self).cutoff.wait_access(target="/cut-head")
        self.assertEqual((e["method"], e["version"]), ("GET", "HTTP/1.1"), e)
        self.assertEqual(e["outcome"], "client_abort", e)

    def test_408_before_the_start_line_names_no_request(self):
        c = type(self).cutoff
        since = len(c.access_entries())
        cl = self.client()
        cl.send(b"GET http://127.0.0.1:9/half-a-line")
        resp = cl.read_response()
        self.assertGenerated(resp, 408)
        e = c.wait_access(lambda e: e["status"] == "408", since=since)
        self.assertEqual((e["method"], e["target"]), ("-", "-"), e["line"])


class DrainAnswerTest(CutoffTestCase):
    NEEDS_CUTOFF = False

    @time_limit(10)
    def test_drain_504_states_the_exchange_age(self):
        drain_ms = 400
        held_ms = 600  # the exchange is older than drain_timeout when it ends
        up = self.upstream()
        c = self.dedicated_cutoff({"drain_timeout": f"{drain_ms}ms",
                                   "defaults": {"response_header_timeout": "10s"}})
        cl = self.client(c)
        t0 = time.monotonic()
        cl.send(build_request("GET", self.url(up, "/hang")))
        up.wait_connections(1, 2 * SCALE)
        time.sleep(ms(held_ms))  # ages the exchange; nothing is awaited here
        c.proc.send_signal(signal.SIGTERM)
        resp = cl.read_response()
        took = time.monotonic() - t0
        self.assertGenerated(resp, 504, "http_response_timeout")
        details = resp.proxy_status["details"]
        m = re.search(r"had run for (\d+) ms", details)
        self.assertTrue(m, details)
        age = int(m.group(1)) / 1000
        self.assertGreaterEqual(age, ms(held_ms + drain_ms) - 0.005, details)
        self.assertLessEqual(age, took + 0.005, details)
        self.assertIn("drain_timeout", details)
        self.assertEqual(cl.wait_end(), "fin")
        self.assertEqual(c.proc.wait(5 * SCALE), 0)
        self.assertLess(took, ms(held_ms + drain_ms) + tolerance(ms(drain_ms)) + 1.0 * SCALE)


if __name__ == "__main__":
    unittest.main()
