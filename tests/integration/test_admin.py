"""The admin endpoint and the logs give nothing away (SPEC section 7), and
/metrics says how exchanges end:

- [admin] allow_clients: a client outside it is closed at accept with
  nothing sent; loopback is in by default; a reload that narrows or widens
  it applies to the next admin connection; a bad entry is a config error
  with file:line:column.
- Query strings are redacted by default in /connections, the text and the
  JSON access log (absolute-form and origin-form targets), and never reach
  the diagnostics log; `log_query = true` keeps them. A user name and
  password in the target ("http://user:pw@host/") are refused with a 400
  that says why, and never shown, whatever log_query says.
- The image's health check (conf/healthcheck.sh) passes against a running
  cutoff without leaving an access-log line or an error in /metrics, and
  names the address when nothing accepts on the proxy port.
- /metrics: latency buckets up to 300 s, cutoff_build_info,
  cutoff_exchanges_in_flight by phase (moving while an exchange waits for
  its response head, back after), cutoff_exchanges_total by status class
  and outcome (a 200 cut by idle_timeout is not an ok 2xx).

The harness turns log_query on for every other module (they tell exchanges
apart by query); the redaction tests here remove it to see the default.
"""

import json
import os
import re
import shutil
import subprocess
import tempfile

from fakeupstream import pattern
from harness import (ADMIN_ON, DELETE, SCALE, Client, admin_addr, admin_get, merge, ms,
                     time_limit)
from test_operations import OpsTestCase

MARKER = "<redacted>"
SECRET = "token=s3cr3t"
ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
# The admin head deadline is 1 s whatever the build: a close well before it
# was decided at accept.
AT_ACCEPT_S = 0.8


def project_version():
    with open(os.path.join(ROOT, "CMakeLists.txt")) as f:
        return re.search(r"project\(cutoff VERSION (\S+)", f.read()).group(1)


def read_json_lines(path):
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.endswith("\n")]


# ---------------------------------------------------------------------------
# [admin] allow_clients

class AdminAllowlistTest(OpsTestCase):
    NEEDS_CUTOFF = False

    def admin_client(self, c):
        cl = Client(admin_addr(c), timeout=2.0)
        self._clients.append(cl)
        return cl

    def assertRefusedAtAccept(self, c, send_request: bool):
        """A connection to the admin port ends (FIN, or RST when our request
        was unread) before any byte comes back, long before the head
        deadline."""
        cl = self.admin_client(c)
        if send_request:
            try:
                cl.request("GET", "/metrics")
            except (ConnectionResetError, BrokenPipeError):
                pass  # closed already: what is checked below
        end = cl.wait_end(timeout=2.0)
        self.assertIn(end, ("fin", "rst") if send_request else ("fin",))
        self.assertEqual(bytes(cl.buf), b"", "a refused admin client was sent bytes")
        self.assertLess(cl.end_time - cl.t_connect, AT_ACCEPT_S, "not closed at accept")

    def test_client_outside_admin_allow_clients_gets_nothing(self):
        c = self.dedicated_cutoff(merge(ADMIN_ON, {"admin": {"allow_clients": ["10.0.0.0/8"]}}))
        self.assertRefusedAtAccept(c, send_request=False)
        self.assertRefusedAtAccept(c, send_request=True)
        # The proxy's own allowlist is another list: loopback is still served.
        up = self.upstream()
        r, _, _ = self.exchange("GET", self.url(up, "/ok"), cutoff=c)
        self.assertEqual(r.status, 200, r)

    def test_loopback_allowed_by_default_and_when_listed(self):
        c = self.dedicated_cutoff(ADMIN_ON)
        self.assertEqual(admin_get(c, "/healthz").status, 200)
        c2 = self.dedicated_cutoff(merge(ADMIN_ON, {"admin": {
            "allow_clients": ["10.0.0.0/8", "127.0.0.1/32"]}}))
        self.assertEqual(admin_get(c2, "/healthz").status, 200)

    def test_reload_narrows_then_widens_for_new_connections(self):
        c = self.dedicated_cutoff(ADMIN_ON)
        self.assertEqual(admin_get(c, "/healthz").status, 200)
        c.config["admin"]["allow_clients"] = ["192.168.0.0/16"]
        c.reload()
        self.assertRefusedAtAccept(c, send_request=True)
        c.config["admin"]["allow_clients"] = ["127.0.0.0/8"]
        c.reload()
        self.assertEqual(admin_get(c, "/healthz").status, 200)

    def test_bad_entry_is_an_error_with_its_location(self):
        c = self.dedicated_cutoff()
        bad = c.check_config('[admin]\naddress = "127.0.0.1:0"\n'
                             'allow_clients = ["127.0.0.0/8", "10.0.0.1/8"]\n')
        self.assertEqual(bad.returncode, 1)
        msg = (bad.stdout + bad.stderr).decode()
        self.assertRegex(msg, r"check\.toml:3:33: admin\.allow_clients: 10\.0\.0\.1/8 has host "
                              r"bits set")
        empty = c.check_config('[admin]\nallow_clients = []\n')
        self.assertEqual(empty.returncode, 1)
        self.assertRegex((empty.stdout + empty.stderr).decode(), r"check\.toml:2:17: ")


# ---------------------------------------------------------------------------
# Query redaction

class RedactionTest(OpsTestCase):
    """The default: log_query off. log_level debug, so that every
    diagnostics line an exchange can write is looked at too."""

    CONFIG = {**ADMIN_ON, "log_query": DELETE, "log_level": "debug",
              "defaults": {"response_header_timeout": "3s"}}

    def test_text_access_log_redacts_absolute_form_query(self):
        up = self.upstream()
        r, _, _ = self.exchange("GET", self.url(up, f"/red/ok?{SECRET}&x=1"))
        self.assertEqual(r.status, 200, r)
        # The upstream still gets the query: redaction is for what cutoff records.
        self.assertEqual(up.requests[-1].target, f"/red/ok?{SECRET}&x=1")
        e = self.cutoff.wait_access(target=f":{up.port}/red/ok")
        self.assertEqual(e["target"], self.url(up, f"/red/ok?{MARKER}"), e)
        self.assertNotIn("s3cr3t", self.cutoff.stdout_text())
        self.assertNotIn("s3cr3t", self.cutoff.stderr_text())

    def test_origin_form_and_a_fragment_are_redacted(self):
        r, _, _ = self.exchange("GET", f"/red/origin?{SECRET}")
        self.assertEqual(r.status, 400, r)
        e = self.cutoff.wait_access(target="/red/origin")
        self.assertEqual(e["target"], f"/red/origin?{MARKER}", e)
        up = self.upstream()
        r, _, _ = self.exchange("GET", self.url(up, f"/red/ok#{SECRET}"))
        self.assertEqual(r.status, 200, r)
        e = self.cutoff.wait_access(target=f":{up.port}/red/ok#")
        self.assertEqual(e["target"], self.url(up, f"/red/ok#{MARKER}"), e)
        self.assertNotIn("s3cr3t", self.cutoff.stdout_text())
        self.assertNotIn("s3cr3t", self.cutoff.stderr_text())

    def test_connections_redacts_a_hanging_request(self):
        up = self.upstream()
        cl = self.client()
        cl.request("GET", self.url(up, f"/red/hang?{SECRET}"))
        self.assertTrue(up.wait_requests(1, 1.0 * SCALE))
        listed = self.wait_for(
            lambda: [e for e in self.connections() if e.get("phase") == "awaiting_response"],
            "the hanging exchange in /connections")
        self.assertEqual(listed[0]["target"], self.url(up, f"/red/hang?{MARKER}"), listed)
        cl.abort()
        e = self.cutoff.wait_access(target=f":{up.port}/red/hang")
        self.assertEqual(e["target"], self.url(up, f"/red/hang?{MARKER}"), e)
        self.assertNotIn("s3cr3t", self.cutoff.stderr_text())


    def test_userinfo_is_refused_and_never_shown(self):
        up = self.upstream()
        target = f"http://user:s3cr3t@127.0.0.1:{up.port}/red/userinfo"
        r, _, _ = self.exchange("GET", target)
        self.assertGenerated(r, 400)
        self.assertIn("Authorization", r.body.decode())
        e = self.cutoff.wait_access(target="/red/userinfo")
        self.assertEqual(e["target"], f"http://{MARKER}@127.0.0.1:{up.port}/red/userinfo", e)
        r, _, _ = self.exchange("CONNECT", "user:s3cr3t@127.0.0.1:443")
        self.assertGenerated(r, 400)
        e = self.cutoff.wait_access(target=f"{MARKER}@127.0.0.1:443")
        self.assertEqual(e["method"], "CONNECT", e)
        self.assertEqual(len(up.requests), 0)
        self.assertNotIn("s3cr3t", self.cutoff.stdout_text())
        self.assertNotIn("s3cr3t", self.cutoff.stderr_text())


class HealthcheckTest(OpsTestCase):
    CONFIG = ADMIN_ON
    SCRIPT = os.path.join(ROOT, "conf", "healthcheck.sh")

    def run_check(self, proxy_port):
        env = dict(os.environ, CUTOFF_ADMIN_PORT=str(admin_addr(self.cutoff)[1]),
                   CUTOFF_PROXY_PORT=str(proxy_port), CUTOFF_HEALTH_ADDRESS="127.0.0.1")
        return subprocess.run(["bash", self.SCRIPT], env=env, capture_output=True, text=True,
                              timeout=5 * SCALE)

    def test_a_healthy_cutoff_passes_and_logs_nothing(self):
        for _ in range(3):
            done = self.run_check(self.cutoff.port)
            self.assertEqual((done.returncode, done.stdout), (0, ""), done)
        # An exchange after the checks: once its line is in, any line the
        # checks made would be too.
        up = self.upstream()
        r, _, _ = self.exchange("GET", self.url(up, "/ok?after-checks"))
        self.assertEqual(r.status, 200, r)
        self.cutoff.wait_access(target="/ok?after-checks")
        self.assertEqual([e["target"] for e in self.cutoff.access_entries()],
                         [self.url(up, "/ok?after-checks")])
        m = self.scrape()
        self.assertEqual(m.get("cutoff_requests_total", route="default", code="4xx"), 0, m.text)

    def test_nothing_on_the_proxy_port_is_unhealthy_and_named(self):
        closed = self.closed_port()
        done = self.run_check(closed.port)
        self.assertEqual(done.returncode, 1, done)
        self.assertIn(f"127.0.0.1:{closed.port}", done.stdout)
        self.assertIn("0.0.0.0", done.stdout)


class RedactionJsonTest(OpsTestCase):
    NEEDS_CUTOFF = False

    def json_cutoff(self, log_query):
        folder = tempfile.mkdtemp(prefix="cutoff-it-json-")
        self.addCleanup(shutil.rmtree, folder, True)
        path = os.path.join(folder, "access.json")
        config = {"access_log": {"format": "json", "path": path}}
        config["log_query"] = log_query if log_query is not None else DELETE
        return self.dedicated_cutoff(config), path

    def json_target(self, log_query):
        c, path = self.json_cutoff(log_query)
        up = self.upstream()
        r, _, _ = self.exchange("GET", self.url(up, f"/j/ok?{SECRET}"), cutoff=c)
        self.assertEqual(r.status, 200, r)
        lines = self.wait_for(lambda: read_json_lines(path), "a JSON access log line")
        return lines[-1]["target"], self.url(up, "/j/ok?")

    def test_json_access_log_redacts_by_default(self):
        target, prefix = self.json_target(log_query=None)
        self.assertEqual(target, prefix + MARKER)

    def test_json_access_log_keeps_query_with_log_query(self):
        target, prefix = self.json_target(log_query=True)
        self.assertEqual(target, prefix + SECRET)


class LogQueryTest(OpsTestCase):
    """log_query = true: targets whole, as the client sent them."""

    CONFIG = {**ADMIN_ON, "log_query": True, "defaults": {"response_header_timeout": "3s"}}

    def test_text_log_and_connections_keep_the_query(self):
        up = self.upstream()
        r, _, _ = self.exchange("GET", self.url(up, f"/lq/ok?{SECRET}"))
        self.assertEqual(r.status, 200, r)
        e = self.cutoff.wait_access(target=f":{up.port}/lq/ok")
        self.assertEqual(e["target"], self.url(up, f"/lq/ok?{SECRET}"), e)
        cl = self.client()
        cl.request("GET", self.url(up, f"/lq/hang?{SECRET}"))
        self.assertTrue(up.wait_requests(2, 1.0 * SCALE))
        listed = self.wait_for(
            lambda: [e for e in self.connections() if e.get("phase") == "awaiting_response"],
            "the hanging exchange in /connections")
        self.assertEqual(listed[0]["target"], self.url(up, f"/lq/hang?{SECRET}"), listed)
        cl.abort()
        self.cutoff.wait_access(target=f":{up.port}/lq/hang")

    def test_userinfo_is_hidden_all_the_same(self):
        r, _, _ = self.exchange("GET", f"http://user:s3cr3t@127.0.0.1:1/lq/userinfo?{SECRET}")
        self.assertGenerated(r, 400)
        e = self.cutoff.wait_access(target="/lq/userinfo")
        self.assertEqual(e["target"], f"http://{MARKER}@127.0.0.1:1/lq/userinfo?{SECRET}", e)
        self.assertNotIn("user:s3cr3t", self.cutoff.stdout_text())


# ---------------------------------------------------------------------------
# /metrics

class MetricsTest(OpsTestCase):
    CONFIG = merge(ADMIN_ON, {"listen": {"client_keepalive_timeout": "1s"}})
    ROUTES = [
        {"name": "m-stall", "match": {"path_prefix": "/m-stall/"}, "idle_timeout": "250ms"},
        {"name": "m-hang", "match": {"path_prefix": "/m-hang/"},
         "response_header_timeout": "3s"},
    ]

    def test_build_info_and_buckets_that_bracket_the_timeouts(self):
        m = self.scrape()
        self.assertEqual(m.get("cutoff_build_info", version=project_version()), 1, m.text)
        self.assertEqual(m.types.get("cutoff_build_info"), "gauge")
        up = self.upstream()
        r, _, _ = self.exchange("GET", self.url(up, "/ok"))
        self.assertEqual(r.status, 200, r)
        m = self.wait_metrics(lambda m: m.get("cutoff_request_duration_seconds_count",
                                              route="default") >= 1, "the exchange counted")
        bounds = sorted(float(lb["le"]) for lb, _ in
                        m.labelled("cutoff_request_duration_seconds_bucket")
                        if lb.get("route") == "default")
        for bound in (1, 2.5, 5, 10, 30, 60, 120, 300, float("inf")):
            self.assertIn(float(bound), bounds, bounds)
        self.assertHistogram(m, "default")

    def test_in_flight_gauge_follows_an_exchange_awaiting_its_response(self):
        key = dict(phase="awaiting_response")
        base = self.scrape()
        self.assertEqual(base.get("cutoff_exchanges_in_flight", **key), 0, base.text)
        self.assertEqual(base.types.get("cutoff_exchanges_in_flight"), "gauge")
        phases = {lb["phase"] for lb, _ in base.labelled("cutoff_exchanges_in_flight")}
        self.assertEqual(phases, {"reading_head", "resolving", "connecting", "upstream_handshake",
                                  "sending_request", "awaiting_response", "streaming",
                                  "client_handshake", "tls_handshake", "tunnelling"})
        up = self.upstream()
        idle = self.client()
        idle.request("GET", self.url(up, "/ok"))
        self.assertEqual(idle.read_response().status, 200)
        cl = self.client()
        cl.request("GET", self.url(up, "/m-hang/hang"))
        self.assertTrue(up.wait_requests(2, 1.0 * SCALE))
        m = self.wait_metrics(lambda m: m.get("cutoff_exchanges_in_flight", **key) == 1,
                              "one exchange awaiting its response")
        # The idle keep-alive connection is not an exchange in flight.
        self.assertEqual(sum(v for _, v in m.labelled("cutoff_exchanges_in_flight")), 1, m.text)
        cl.abort()
        self.wait_metrics(lambda m: m.get("cutoff_exchanges_in_flight", **key) == 0,
                          "the gauge back to 0 once the client left")
        self.cutoff.wait_access(target=f":{up.port}/m-hang/hang")

    @time_limit(10)
    def test_a_200_cut_by_idle_timeout_is_counted_by_its_outcome(self):
        up = self.upstream()
        label = dict(route="m-stall", code="2xx")
        before = self.scrape()
        cl = self.client()
        cl.request("GET", self.url(up, "/m-stall/stall-mid-body?size=10000&sent=1000"))
        r = cl.read_response(timeout=ms(250) + 2.0)
        self.assertEqual(r.status, 200, r)
        self.assertFalse(r.complete)
        self.assertEqual(r.body, pattern(1000))
        self.assertOutcome(f":{up.port}/m-stall/", 200, "timeout:idle_timeout", "m-stall")
        after = self.wait_metrics(
            lambda m: m.get("cutoff_requests_total", **label)
            > before.get("cutoff_requests_total", **label), "the exchange counted")

        def delta(name, **labels):
            return after.get(name, **labels) - before.get(name, **labels)
        self.assertEqual(delta("cutoff_requests_total", **label), 1, after.text)
        self.assertEqual(delta("cutoff_exchanges_total", outcome="timeout:idle_timeout", **label),
                         1, after.text)
        self.assertEqual(delta("cutoff_exchanges_total", outcome="ok", **label), 0, after.text)
        self.assertEqual(after.types.get("cutoff_exchanges_total"), "counter")
        # A whole 200 on the same route is an ok one.
        r, _, _ = self.exchange("GET", self.url(up, "/m-stall/ok"))
        self.assertEqual(r.status, 200, r)
        self.wait_metrics(lambda m: m.get("cutoff_exchanges_total", outcome="ok", **label)
                          == before.get("cutoff_exchanges_total", outcome="ok", **label) + 1,
                          "the whole 200 counted as ok")
        self.assertUpstreamEnd(up, "rst", i=0)


if __name__ == "__main__":
    import unittest
    unittest.main()
