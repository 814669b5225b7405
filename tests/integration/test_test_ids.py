"""Which test hung? (SPEC section 12): test identity, /tests, --report and
Cutoff-Timeout.

- A test names itself with a Cutoff-Test-Id field or with the proxy URL's
  user name; real clients send the latter as Proxy-Authorization: curl with
  a user name alone, Python's urllib and wget only with a password as well.
  Neither reaches the upstream. The id is in the access log (text and JSON)
  and in /connections.
- GET /tests/ID shows an exchange still waiting (phase, deadline, time
  left) and, once it ended, its status, outcome, phase times and why it
  failed; GET /tests lists the ids; DELETE /tests/ID forgets one. The
  bounds forget the test quiet for longest and, within a test, the oldest
  exchange that went well.
- --report FILE: after the drain, a JUnit XML file with a testcase per id
  and a failure per timeout or upstream error (read with xml.etree).
- Cutoff-Timeout shortens an exchange's deadlines, never lengthens them,
  is not forwarded, and a bad value is a 400 that says why.
"""

import base64
import json
import os
import shutil
import signal
import stat
import subprocess
import tempfile
import time
import urllib.parse
import urllib.request
import xml.etree.ElementTree as ET

from harness import (ADMIN_ON, SCALE, Client, CutoffTestCase, admin_addr, admin_get, merge, ms,
                     time_limit)

RESPONSE_HEADER = ms(400)  # the harness's default
QUICK = 0.15 * SCALE


def admin_call(c, method, path, timeout=2.0):
    host, port = admin_addr(c)
    cl = Client((host, port), timeout)
    try:
        cl.request(method, path, host=f"{host}:{port}")
        return cl.read_response(method, timeout=timeout)
    finally:
        cl.close()


def test_path(test_id):
    return "/tests/" + urllib.parse.quote(test_id, safe="")


def first_request(up):
    """The first request the fake upstream received, once it has."""
    arrived = up.wait_for(lambda: bool(up._records) and bool(up._records[0].requests),
                          2.0 * SCALE)
    assert arrived, "the upstream received no request"
    return up.conn(0).requests[0]


def asked(**timeouts):
    """A Cutoff-Timeout value, its durations scaled as the config's are."""
    return ", ".join(f"{name}={round(ms(value) * 1000)}ms" for name, value in timeouts.items())


def basic(user, password=""):
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


class TestIdsTest(CutoffTestCase):
    CONFIG = ADMIN_ON

    def doc_of(self, test_id):
        r = admin_get(self.cutoff, test_path(test_id))
        return r.status, json.loads(r.body)

    def finished(self, test_id, count=1):
        """/tests/ID once `count` exchanges of the test have ended."""
        def done():
            status, doc = self.doc_of(test_id)
            return doc if status == 200 and doc["exchanges_total"] >= count else None
        return self.wait_for(done, f"{count} exchange(s) of {test_id} in /tests")

    # -- naming the test ---------------------------------------------------

    def test_header_names_the_test_and_is_not_forwarded(self):
        up = self.upstream()
        test_id = 'tests/test_api.py::test_get[one "1"]'
        r, _, _ = self.exchange("GET", self.url(up, "/echo?n=header"),
                                [("Cutoff-Test-Id", test_id)])
        self.assertEqual(r.status, 200, r)
        seen = [k.lower() for k, _ in r.echo["headers"]]
        self.assertNotIn("cutoff-test-id", seen)
        e = self.cutoff.wait_access(target="n=header")
        self.assertEqual(e.get("test"), "tests/test_api.py::test_get[one%20%221%22]", e["line"])
        doc = self.finished(test_id)
        self.assertEqual(doc["test"], test_id)
        self.assertEqual(doc["outcomes"], {"ok": 1})

    def test_curl_sends_the_proxy_url_user_name_for_plain_and_connect(self):
        up = self.upstream()
        proxy = f"http://curl-plain@{self.cutoff.addr[0]}:{self.cutoff.addr[1]}"
        for flags, test_id in (([], "curl-plain"), (["-p"], "curl-tunnel")):
            proxy = f"http://{test_id}@{self.cutoff.addr[0]}:{self.cutoff.addr[1]}"
            out = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}",
                                  "--max-time", "5", "-x", proxy, *flags,
                                  self.url(up, f"/ok?n={test_id}")],
                                 capture_output=True, text=True, timeout=10)
            self.assertEqual(out.stdout, "200", out)
        plain = self.cutoff.wait_access(target="n=curl-plain")
        self.assertEqual(plain.get("test"), "curl-plain", plain["line"])
        tunnel = self.cutoff.wait_access(lambda e: e["method"] == "CONNECT")
        self.assertEqual(tunnel.get("test"), "curl-tunnel", tunnel["line"])

    def test_urllib_sends_user_name_only_with_a_password(self):
        up = self.upstream()
        host, port = self.cutoff.addr
        for proxy, query in ((f"http://py-id:x@{host}:{port}", "with"),
                             (f"http://py-alone@{host}:{port}", "alone")):
            opener = urllib.request.build_opener(urllib.request.ProxyHandler({"http": proxy}))
            with opener.open(self.url(up, f"/ok?n={query}"), timeout=5) as r:
                self.assertEqual(r.status, 200)
        self.assertEqual(self.cutoff.wait_access(target="n=with").get("test"), "py-id")
        self.assertIsNone(self.cutoff.wait_access(target="n=alone").get("test"))

    def test_with_proxy_auth_the_credentials_user_is_the_test(self):
        up = self.upstream()
        c = self.dedicated_cutoff({"listen": {"proxy_auth": ["ci-user:s3cret"]}})
        r, _, _ = self.exchange("GET", self.url(up, "/ok?n=auth"),
                                [("Proxy-Authorization", basic("ci-user", "s3cret"))], cutoff=c)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(c.wait_access(target="n=auth").get("test"), "ci-user")
        r, _, _ = self.exchange("GET", self.url(up, "/ok?n=wrong"),
                                [("Proxy-Authorization", basic("ci-user", "nope"))], cutoff=c)
        self.assertEqual(r.status, 407, r)

    def test_header_wins_over_credentials(self):
        up = self.upstream()
        r, _, _ = self.exchange("GET", self.url(up, "/ok?n=both"),
                                [("Proxy-Authorization", basic("from-url")),
                                 ("Cutoff-Test-Id", "from-header")])
        self.assertEqual(r.status, 200, r)
        self.assertEqual(self.cutoff.wait_access(target="n=both").get("test"), "from-header")

    def test_underscore_spelling_names_the_test(self):
        # cutoff drops "Cutoff_Test_Id" as its own field, as it reads
        # "Transfer_Encoding" as framing; dropped unread, the id would be lost.
        up = self.upstream()
        r, _, _ = self.exchange("GET", self.url(up, "/echo?n=underscore"),
                                [("Cutoff_Test_Id", "snake")])
        self.assertEqual(r.status, 200, r)
        self.assertNotIn("cutoff_test_id", [k.lower() for k, _ in r.echo["headers"]])
        self.assertEqual(self.cutoff.wait_access(target="n=underscore").get("test"), "snake")

    def test_unusable_header_is_a_400_that_says_why(self):
        up = self.upstream()
        for value, query in (("x" * 257, "long"), ("caf\xe9", "latin")):
            r, _, _ = self.exchange("GET", self.url(up, f"/ok?n={query}"),
                                    [("Cutoff-Test-Id", value)])
            self.assertGenerated(r, 400)
            self.assertIn(b"Cutoff-Test-Id must be 1 to 256 characters of printable ASCII",
                          r.body)
        r, _, _ = self.exchange("GET", self.url(up, "/ok?n=two"),
                                [("Cutoff-Test-Id", "a"), ("Cutoff-Test-Id", "b")])
        self.assertGenerated(r, 400)
        self.assertIn(b"two different Cutoff-Test-Id fields", r.body)
        self.assertEqual(up.connection_count(), 0)

    # -- /tests and /connections --------------------------------------------

    def test_hung_request_is_shown_open_then_as_its_timeout(self):
        up = self.upstream()
        test_id = "tests/test_slow.py::test_hangs"
        cl = self.client()
        t0 = time.monotonic()
        cl.request("GET", self.url(up, "/hang?n=hung"), [("Cutoff-Test-Id", test_id)])
        first_request(up)
        status, doc = self.doc_of(test_id)
        self.assertEqual(status, 200, doc)
        self.assertEqual(doc["exchanges"], [])
        [open_exchange] = doc["open"]
        self.assertEqual(open_exchange["test"], test_id)
        self.assertEqual(open_exchange["phase"], "awaiting_response")
        self.assertEqual(open_exchange["deadline"], "response_header_timeout")
        self.assertLessEqual(open_exchange["deadline_left_ms"], RESPONSE_HEADER * 1000)
        self.assertIn("n=hung", open_exchange["target"])
        [listed] = [x for x in json.loads(admin_get(self.cutoff, "/connections").body)
                    ["connections"] if x.get("test") == test_id]
        self.assertEqual(listed["id"], open_exchange["id"])

        r = cl.read_response()
        self.assertGenerated(r, 504, "http_response_timeout")
        self.assertElapsed(time.monotonic() - t0, RESPONSE_HEADER)
        doc = self.finished(test_id)
        self.assertEqual(doc["open"], [])
        self.assertEqual((doc["exchanges_total"], doc["failures"]), (1, 1))
        self.assertEqual(doc["outcomes"], {"timeout:response_header_timeout": 1})
        [e] = doc["exchanges"]
        self.assertEqual((e["method"], e["status"], e["outcome"], e["route"]),
                         ("GET", 504, "timeout:response_header_timeout", "default"))
        self.assertIn(f"127.0.0.1:{up.port}/hang?n=hung", e["target"])
        self.assertIn("did not answer within", e["failure"])
        self.assertIsNone(e["dns_ms"])
        self.assertIsInstance(e["connect_ms"], int)
        self.assertIsNone(e["first_byte_ms"])
        self.assertGreaterEqual(e["total_ms"], RESPONSE_HEADER * 1000 - 5)
        self.assertTrue(e["started"].endswith("Z"), e)

    def test_list_and_forget(self):
        up = self.upstream()
        for test_id in ("list-a", "list-b"):
            self.exchange("GET", self.url(up, f"/ok?n={test_id}"), [("Cutoff-Test-Id", test_id)])
        self.finished("list-b")
        listed = json.loads(admin_get(self.cutoff, "/tests").body)
        ids = [t["test"] for t in listed["tests"]]
        self.assertLess(ids.index("list-a"), ids.index("list-b"))  # quiet for longest first
        self.assertEqual(admin_call(self.cutoff, "DELETE", test_path("list-a")).status, 200)
        self.assertEqual(admin_call(self.cutoff, "DELETE", test_path("list-a")).status, 404)
        self.assertEqual(admin_get(self.cutoff, test_path("list-a")).status, 404)
        self.assertEqual(admin_get(self.cutoff, test_path("list-b")).status, 200)
        self.assertEqual(admin_get(self.cutoff, "/tests/bad%zz").status, 400)


class TestBoundsTest(CutoffTestCase):
    CONFIG = merge(ADMIN_ON, {"tests": {"max_tests": 2, "max_exchanges_per_test": 2}})

    def test_quietest_test_and_oldest_good_exchange_are_forgotten(self):
        up = self.upstream()
        for test_id, path in (("first", "/ok"), ("second", "/ok"), ("first", "/ok"),
                              ("third", "/ok")):
            self.exchange("GET", self.url(up, f"{path}?id={test_id}"),
                          [("Cutoff-Test-Id", test_id)])
        self.wait_for(lambda: admin_get(self.cutoff, test_path("third")).status == 200, "third")
        listed = json.loads(admin_get(self.cutoff, "/tests").body)
        # "second" was heard from least recently when "third" came.
        self.assertEqual([t["test"] for t in listed["tests"]], ["first", "third"])
        self.assertEqual(listed["tests_forgotten"], 1)

        # A failure, then two good exchanges: the failure is kept.
        for path in ("/status?code=200&n=0", "/reset?n=1", "/ok?n=2", "/ok?n=3"):
            self.exchange("GET", self.url(up, path), [("Cutoff-Test-Id", "third")])
        doc = json.loads(admin_get(self.cutoff, test_path("third")).body)
        self.wait_for(lambda: json.loads(admin_get(self.cutoff, test_path("third")).body)
                      ["exchanges_total"] == 5, "five exchanges of third")
        doc = json.loads(admin_get(self.cutoff, test_path("third")).body)
        self.assertEqual((doc["exchanges_total"], doc["exchanges_forgotten"], doc["failures"]),
                         (5, 3, 1))
        self.assertEqual([e["target"].split("n=")[-1] for e in doc["exchanges"]], ["1", "3"])
        self.assertEqual(doc["outcomes"], {"ok": 4, "error:connection_terminated": 1})


class TestMetricsLabelTest(CutoffTestCase):
    CONFIG = merge(ADMIN_ON, {"tests": {"metrics_label": True}})

    def test_per_test_series_only_when_asked(self):
        up = self.upstream()
        self.exchange("GET", self.url(up, "/ok"), [("Cutoff-Test-Id", 'a"b')])
        series = 'cutoff_test_exchanges_total{test="a\\"b",outcome="ok"} 1'
        self.wait_for(lambda: series in admin_get(self.cutoff, "/metrics").body.decode(),
                      "the per-test series")
        plain = self.dedicated_cutoff(ADMIN_ON)
        self.exchange("GET", self.url(up, "/ok"), [("Cutoff-Test-Id", "x")], cutoff=plain)
        plain.wait_access()
        self.assertNotIn("cutoff_test_exchanges_total", admin_get(plain, "/metrics").body.decode())


class CutoffTimeoutTest(CutoffTestCase):
    ROUTES = [{"name": "slow", "match": {"path_prefix": "/slow/"},
               "response_header_timeout": "2s"}]

    def test_shortens_response_header_timeout_and_is_not_forwarded(self):
        up = self.upstream()
        r, _, elapsed = self.exchange("GET", self.url(up, "/slow/hang"),
                                      [("Cutoff-Timeout", asked(response_header=200, idle=1000))])
        self.assertGenerated(r, 504, "http_response_timeout")
        self.assertElapsed(elapsed, ms(200))
        self.assertIn("response_header_timeout from Cutoff-Timeout", r.proxy_status["details"])
        self.assertNotIn("cutoff-timeout",
                         [k.lower() for k, _ in first_request(up).headers])

    def test_underscore_spelling_shortens_too(self):
        up = self.upstream()
        r, _, elapsed = self.exchange("GET", self.url(up, "/slow/hang"),
                                      [("Cutoff_Timeout", asked(response_header=200))])
        self.assertGenerated(r, 504, "http_response_timeout")
        self.assertElapsed(elapsed, ms(200))

    def test_never_lengthens(self):
        up = self.upstream()
        r, _, elapsed = self.exchange("GET", self.url(up, "/hang"),
                                      [("Cutoff-Timeout", asked(response_header=2000))])
        self.assertGenerated(r, 504, "http_response_timeout")
        self.assertElapsed(elapsed, RESPONSE_HEADER)
        self.assertNotIn("Cutoff-Timeout", r.proxy_status["details"])

    def test_shortens_request_timeout(self):
        up = self.upstream()
        r, _, elapsed = self.exchange("GET", self.url(up, "/slow/hang"),
                                      [("Cutoff-Timeout", asked(request=150))])
        self.assertGenerated(r, 504, "http_response_timeout")
        self.assertElapsed(elapsed, ms(150))

    def test_shortens_a_tunnels_idle_timeout(self):
        echo = self.echo_server()
        cl = self.client()
        cl.request("CONNECT", f"127.0.0.1:{echo.port}",
                   [("Cutoff-Timeout", asked(tunnel_idle=100))], host=f"127.0.0.1:{echo.port}")
        self.assertEqual(cl.read_head().status, 200)
        t0 = time.monotonic()
        self.assertEqual(cl.wait_end(timeout=2.0 * SCALE), "fin")
        self.assertElapsed(time.monotonic() - t0, ms(100))

    def test_bad_values_are_400_with_a_reason(self):
        up = self.upstream()
        for value, reason in (
                ("response_header=2", b'"2" has no unit'),
                ("speed=1s", b'unknown name "speed"'),
                ("idle=off", b"idle=off would lengthen the deadline"),
                ("idle=1s, idle=2s", b"names idle twice"),
                ("idle", b'"idle" is not name=duration'),
                ("", b"Cutoff-Timeout is empty")):
            r, _, _ = self.exchange("GET", self.url(up, "/ok"), [("Cutoff-Timeout", value)])
            self.assertGenerated(r, 400)
            self.assertIn(reason, r.body, value)
        self.assertEqual(up.connection_count(), 0)


class ReportTest(CutoffTestCase):
    NEEDS_CUTOFF = False

    @time_limit(15)
    def test_junit_report_after_drain(self):
        up = self.upstream()
        out_dir = tempfile.mkdtemp(prefix="cutoff-report-")
        self.addCleanup(shutil.rmtree, out_dir)
        report = os.path.join(out_dir, "cutoff.xml")
        c = self.dedicated_cutoff(extra_args=["--report", report])
        for test_id, path in (("suite::passes", "/ok"), ("suite::hangs <1>", "/hang"),
                              ("suite::passes", "/ok"), ("suite::refused", "/reset")):
            self.exchange("GET", self.url(up, path), [("Cutoff-Test-Id", test_id)], cutoff=c)
        c.wait_access(count=4)
        self.assertFalse(os.path.exists(report))  # written at exit, not before
        self.assertEqual(c.stop(), 0, c.stderr_text()[-2000:])
        self.assertIn(f"report: 3 test(s) written to {report}", c.stderr_text())

        root = ET.parse(report).getroot()
        self.assertEqual(root.tag, "testsuites")
        self.assertEqual((root.get("tests"), root.get("failures")), ("3", "2"))
        [suite] = root.findall("testsuite")
        cases = {case.get("name"): case for case in suite.findall("testcase")}
        self.assertEqual(set(cases), {"suite::passes", "suite::hangs <1>", "suite::refused"})
        self.assertEqual(cases["suite::passes"].findall("failure"), [])
        self.assertIn("2 exchange(s)", cases["suite::passes"].find("system-out").text)
        [hung] = cases["suite::hangs <1>"].findall("failure")
        self.assertEqual(hung.get("type"), "timeout:response_header_timeout")
        self.assertIn(f"GET http://127.0.0.1:{up.port}/hang -> 504 after", hung.get("message"))
        self.assertIn("did not answer within", hung.text)
        [refused] = cases["suite::refused"].findall("failure")
        self.assertEqual(refused.get("type"), "error:connection_terminated")
        self.assertIn("-> 502 after", refused.get("message"))
        for case in cases.values():
            self.assertEqual(case.get("classname"), "cutoff")
            self.assertGreaterEqual(float(case.get("time")), 0.0)

    @time_limit(15)
    def test_immediate_stop_counts_the_hang_as_a_failure(self):
        up = self.upstream()
        out_dir = tempfile.mkdtemp(prefix="cutoff-report-")
        self.addCleanup(shutil.rmtree, out_dir)
        report = os.path.join(out_dir, "cutoff.xml")
        c = self.dedicated_cutoff({"drain_timeout": "10s",
                                   "defaults": {"response_header_timeout": "10s"}},
                                  extra_args=["--report", report])
        cl = self.client(c)
        cl.request("GET", self.url(up, "/hang"), [("Cutoff-Test-Id", "suite::killed")])
        first_request(up)
        c.proc.send_signal(signal.SIGTERM)
        self.wait_for(lambda: "draining" in c.stderr_text(), "the drain to begin")
        c.proc.send_signal(signal.SIGTERM)
        self.assertEqual(c.proc.wait(5 * SCALE), 0)
        [case] = ET.parse(report).getroot().iter("testcase")
        [failure] = case.findall("failure")
        self.assertEqual(failure.get("type"), "stopped")
        self.assertIn("a second SIGTERM", failure.text)
        self.assertIn("phase awaiting_response", failure.text)

    def test_unwritable_report_refused_at_start(self):
        c = subprocess.run([self.cutoff_binary(), "--report", "/nonexistent-dir/x.xml", "--check"],
                           capture_output=True, text=True, timeout=10)
        self.assertEqual(c.returncode, 1, c)
        self.assertIn("--report /nonexistent-dir/x.xml cannot be written", c.stderr)

    def test_report_through_a_symlink_fills_its_target(self):
        out_dir = tempfile.mkdtemp(prefix="cutoff-report-")
        self.addCleanup(shutil.rmtree, out_dir)
        target = os.path.join(out_dir, "artifacts.xml")
        link = os.path.join(out_dir, "link.xml")
        os.symlink(target, link)
        with open(target, "w") as f:
            f.write("an older report")
        up = self.upstream()
        c = self.dedicated_cutoff(extra_args=["--report", link])
        self.exchange("GET", self.url(up, "/ok"), [("Cutoff-Test-Id", "linked")], cutoff=c)
        c.wait_access(count=1)
        self.assertEqual(c.stop(), 0, c.stderr_text()[-2000:])
        self.assertTrue(os.path.islink(link), "the link was replaced by a file")
        [case] = ET.parse(target).getroot().iter("testcase")
        self.assertEqual(case.get("name"), "linked")

    def test_report_onto_a_fifo_refused_at_start(self):
        # Renamed over, the FIFO (or a device such as /dev/stdout) would
        # become a regular file.
        out_dir = tempfile.mkdtemp(prefix="cutoff-report-")
        self.addCleanup(shutil.rmtree, out_dir)
        fifo = os.path.join(out_dir, "fifo")
        os.mkfifo(fifo)
        c = subprocess.run([self.cutoff_binary(), "--report", fifo, "--check"],
                           capture_output=True, text=True, timeout=10)
        self.assertEqual(c.returncode, 1, c)
        self.assertIn(f"--report {fifo} cannot be written: it is not a regular file", c.stderr)
        self.assertTrue(stat.S_ISFIFO(os.lstat(fifo).st_mode))

    @staticmethod
    def cutoff_binary():
        from harness import find_binary
        return find_binary()


if __name__ == "__main__":
    import unittest
    unittest.main()
