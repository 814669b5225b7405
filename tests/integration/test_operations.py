"""Operations for a sidecar (SPEC section 7): the admin listener (/healthz,
/readyz, /metrics, /connections) with one and with two workers, SIGHUP with
exchanges in flight, SIGTERM draining on two workers, proxy_auth,
max_client_connections and EMFILE, the JSON access log and SIGUSR1, and
Server-Timing. Everything goes through real sockets and signals on 127.0.0.1.

The admin listener is started on `127.0.0.1:0` ([admin] address); its port
comes from the `admin listening on HOST:PORT` line on stderr. Counters are
compared as before/after deltas of one scrape each, polled until they move
(a worker counts an exchange a moment after the client has its response), and
then required to have moved by exactly the expected amount.
"""

import base64
import json
import os
import re
import resource
import shutil
import signal
import socket
import tempfile
import time
import unittest

from fakeupstream import pattern
from harness import (ADMIN_ON, SCALE, Client, CutoffTestCase, admin_addr, admin_get, find_binary,
                     merge, ms, run_tool, time_limit, tolerance)

SAMPLE_RE = re.compile(r"^([A-Za-z_:][A-Za-z0-9_:]*)(?:\{(.*)\})? (\S+)$")
LABEL_RE = re.compile(r'([A-Za-z_][A-Za-z0-9_]*)="((?:[^"\\]|\\.)*)"')
CONNECTION_KEYS = {"id", "worker", "client", "phase", "age_ms", "phase_ms", "deadline",
                   "deadline_left_ms", "up_bytes", "down_bytes"}
EXCHANGE_KEYS = {"method", "target", "route"}
ACCESS_FIELDS = {"client", "method", "target", "version", "route", "status", "up_bytes",
                 "down_bytes", "dns_ms", "connect_ms", "first_byte_ms", "total_ms", "reused",
                 "outcome"}


# ---------------------------------------------------------------------------
# The admin endpoint, seen from outside

class Metrics:
    """A parsed Prometheus text exposition: get(name, **labels), 0 if absent
    (cutoff prints a timeout or error counter only once it is non-zero)."""

    def __init__(self, text):
        self.text = text
        self.samples = {}
        self.types = {}
        for line in text.splitlines():
            if line.startswith("# TYPE "):
                _, _, name, kind = line.split(" ", 3)
                self.types[name] = kind
                continue
            if not line or line.startswith("#"):
                continue
            m = SAMPLE_RE.match(line)
            if not m:
                raise AssertionError(f"not a Prometheus sample line: {line!r}")
            labels = frozenset(LABEL_RE.findall(m.group(2) or ""))
            self.samples[(m.group(1), labels)] = float(m.group(3))

    def get(self, name, **labels):
        return self.samples.get((name, frozenset(labels.items())), 0.0)

    def labelled(self, name):
        """[(labels dict, value)] for every sample of `name`."""
        return [(dict(k[1]), v) for k, v in self.samples.items() if k[0] == name]


def cpu_seconds(pid):
    """utime + stime of a process, from /proc/PID/stat."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # fields[0] is the state (field 3); utime and stime are fields 14 and 15.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class OpsTestCase(CutoffTestCase):
    """Admin helpers on top of CutoffTestCase."""

    TIME_LIMIT = 10.0

    def setUp(self):
        if not find_binary():
            self.skipTest("cutoff binary not found: set CUTOFF_BIN or build build/cutoff")
        super().setUp()

    def scrape(self, c=None):
        r = admin_get(c or self.cutoff, "/metrics")
        self.assertEqual(r.status, 200, r)
        self.assertTrue((r.header("Content-Type") or "").startswith("text/plain"), r)
        return Metrics(r.body.decode())

    def connections(self, c=None):
        r = admin_get(c or self.cutoff, "/connections")
        self.assertEqual(r.status, 200, r)
        self.assertTrue((r.header("Content-Type") or "").startswith("application/json"), r)
        doc = json.loads(r.body)
        self.assertEqual(list(doc), ["connections"], doc)
        return doc["connections"]

    def wait_metrics(self, pred, what, c=None, timeout=2.0):
        """Scrapes until pred(metrics) holds; returns that scrape."""
        deadline = time.monotonic() + timeout * SCALE
        while True:
            m = self.scrape(c)
            if pred(m):
                return m
            if time.monotonic() > deadline:
                self.fail(f"/metrics never showed {what}; last scrape:\n{m.text}")
            time.sleep(0.02)

    def assertHistogram(self, m, route):
        """cutoff_request_duration_seconds{route}: cumulative buckets, +Inf == _count."""
        buckets = sorted(((float(lb["le"]), v) for lb, v in
                          m.labelled("cutoff_request_duration_seconds_bucket")
                          if lb.get("route") == route), key=lambda x: x[0])
        self.assertTrue(buckets, f"no histogram buckets for route {route}")
        counts = [v for _, v in buckets]
        self.assertEqual(counts, sorted(counts), f"buckets of {route} not cumulative: {buckets}")
        self.assertEqual(buckets[-1][0], float("inf"))
        self.assertEqual(buckets[-1][1],
                         m.get("cutoff_request_duration_seconds_count", route=route))
        self.assertEqual(m.types.get("cutoff_request_duration_seconds"), "histogram")


# ---------------------------------------------------------------------------
# /healthz, /readyz, /metrics, /connections

class AdminTest(OpsTestCase):
    """The admin endpoint on a one-worker cutoff (AdminTwoWorkersTest: two)."""

    WORKERS = 1
    CONFIG = merge(ADMIN_ON, {"workers": 1, "listen": {"client_keepalive_timeout": "1s"}})
    ROUTES = [
        {"name": "ops-rht", "match": {"path_prefix": "/ops-rht/"},
         "response_header_timeout": "250ms"},
        {"name": "ops-listed", "match": {"path_prefix": "/ops-listed/"},
         "response_header_timeout": "1500ms"},
        {"name": "ops-refused", "match": {"path_prefix": "/ops-refused/"}},
    ]

    def test_healthz_and_readyz(self):
        for path, body in (("/healthz", b"ok"), ("/readyz", b"ready")):
            r = admin_get(self.cutoff, path)
            self.assertEqual((r.status, r.body.strip()), (200, body), f"{path}: {r!r}")
        self.assertEqual(admin_get(self.cutoff, "/nope").status, 404)

    def test_timeout_moves_timeout_and_5xx_counters_by_one(self):
        up = self.upstream()
        before = self.scrape()
        key = dict(timeout="response_header_timeout", route="ops-rht")
        r, _, elapsed = self.exchange("GET", self.url(up, "/ops-rht/hang"))
        self.assertGenerated(r, 504, "http_response_timeout")
        self.assertElapsed(elapsed, ms(250))
        after = self.wait_metrics(
            lambda m: m.get("cutoff_timeouts_total", **key) > before.get("cutoff_timeouts_total", **key)
            and m.get("cutoff_request_duration_seconds_count", route="ops-rht")
            > before.get("cutoff_request_duration_seconds_count", route="ops-rht"),
            "the response_header_timeout counted")
        time.sleep(0.05 * SCALE)  # anything counted twice would show by now
        after = self.scrape()

        def delta(name, **labels):
            return after.get(name, **labels) - before.get(name, **labels)
        self.assertEqual(delta("cutoff_timeouts_total", **key), 1, after.text)
        self.assertEqual(delta("cutoff_requests_total", route="ops-rht", code="5xx"), 1, after.text)
        for code in ("none", "1xx", "2xx", "3xx", "4xx"):
            self.assertEqual(delta("cutoff_requests_total", route="ops-rht", code=code), 0, code)
        for name in ("idle_timeout", "connect_timeout", "request_timeout"):
            self.assertEqual(delta("cutoff_timeouts_total", timeout=name, route="ops-rht"), 0, name)
        self.assertEqual(delta("cutoff_request_duration_seconds_count", route="ops-rht"), 1)
        took = delta("cutoff_request_duration_seconds_sum", route="ops-rht")
        self.assertGreaterEqual(took, ms(250) - 0.005, "duration sum below the deadline")
        self.assertLessEqual(took, ms(250) + tolerance(ms(250)), "duration sum too long")
        self.assertHistogram(after, "ops-rht")
        self.assertEqual(after.types.get("cutoff_timeouts_total"), "counter")
        self.assertUpstreamEnd(up, "rst")

    def test_refused_connect_moves_upstream_errors(self):
        cp = self.closed_port()
        key = dict(error="connection_refused")
        before = self.scrape()
        r, _, _ = self.exchange("GET", f"http://127.0.0.1:{cp.port}/ops-refused/x")
        self.assertGenerated(r, 502, "connection_refused")
        after = self.wait_metrics(
            lambda m: m.get("cutoff_upstream_errors_total", **key)
            > before.get("cutoff_upstream_errors_total", **key)
            and m.get("cutoff_requests_total", route="ops-refused", code="5xx")
            > before.get("cutoff_requests_total", route="ops-refused", code="5xx"),
            "connection_refused counted")
        time.sleep(0.05 * SCALE)
        after = self.scrape()
        self.assertEqual(after.get("cutoff_upstream_errors_total", **key)
                         - before.get("cutoff_upstream_errors_total", **key), 1, after.text)
        self.assertEqual(after.get("cutoff_requests_total", route="ops-refused", code="5xx")
                         - before.get("cutoff_requests_total", route="ops-refused", code="5xx"), 1)

    def test_tunnel_gauge_while_open_and_zero_after(self):
        echo = self.echo_server()
        up = self.upstream()
        base = self.scrape().get("cutoff_tunnels")
        self.assertEqual(base, 0, "a tunnel counted before any was opened")
        r, connect_cl, _ = self.connect_tunnel(echo.port)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(self.round_trip(connect_cl, b"ping"), b"ping")
        self.wait_metrics(lambda m: m.get("cutoff_tunnels") == 1, "cutoff_tunnels 1 (CONNECT)")
        listed = [e for e in self.connections() if e["phase"] == "tunnelling"]
        self.assertEqual(len(listed), 1, listed)
        self.assertEqual(listed[0]["method"], "CONNECT", listed[0])
        self.assertIn(f"127.0.0.1:{echo.port}", listed[0]["target"])
        # An Upgrade tunnel counts too.
        up_cl = self.client()
        up_cl.request("GET", self.url(up, "/upgrade"),
                      [("Connection", "Upgrade"), ("Upgrade", "websocket")])
        r = up_cl.read_response()
        self.assertEqual(r.status, 101, r)
        self.assertEqual(self.round_trip(up_cl, b"pong"), b"pong")
        self.wait_metrics(lambda m: m.get("cutoff_tunnels") == 2, "cutoff_tunnels 2 (+ Upgrade)")
        connect_cl.close()
        self.wait_metrics(lambda m: m.get("cutoff_tunnels") == 1, "cutoff_tunnels back to 1")
        up_cl.close()
        self.wait_metrics(lambda m: m.get("cutoff_tunnels") == 0, "cutoff_tunnels back to 0")

    def test_pooled_upstream_connection_gauge_and_bytes(self):
        up = self.upstream()
        before = self.scrape()
        self.assertEqual(before.get("cutoff_upstream_idle_connections"), 0, before.text)
        r, cl, _ = self.exchange("POST", self.url(up, "/echo"), body=pattern(300))
        self.assertEqual((r.status, r.body), (200, pattern(300)))
        m = self.wait_metrics(lambda m: m.get("cutoff_upstream_idle_connections") == 1,
                              "one idle pooled upstream connection")
        self.assertEqual(m.get("cutoff_client_connections")
                         - before.get("cutoff_client_connections"), 1, m.text)
        self.assertGreaterEqual(m.get("cutoff_bytes_total", direction="down")
                                - before.get("cutoff_bytes_total", direction="down"), 300)
        # Heads count too: the request head and body up, response head and body down.
        self.assertGreater(m.get("cutoff_bytes_total", direction="up")
                           - before.get("cutoff_bytes_total", direction="up"), 300, m.text)
        self.assertEqual(m.get("cutoff_requests_total", route="default", code="2xx")
                         - before.get("cutoff_requests_total", route="default", code="2xx"), 1)
        # The pool lets it go after upstream_keepalive_timeout (300 ms).
        cl.close()
        self.wait_metrics(lambda m: m.get("cutoff_upstream_idle_connections") == 0
                          and m.get("cutoff_client_connections")
                          == before.get("cutoff_client_connections"),
                          "the pooled connection and the client gone", timeout=1.5)
        self.assertUpstreamEnd(up, ("fin", "rst"))

    def test_connections_lists_hanging_exchange_and_idle_keepalive(self):
        up = self.upstream()
        idle = self.client()
        idle.request("GET", self.url(up, "/ok"))
        self.assertEqual(idle.read_response().status, 200)
        cl = self.client()
        t_sent = time.monotonic()
        cl.request("POST", self.url(up, "/ops-listed/hang?x=1"), body=pattern(50))
        self.assertTrue(up.wait_requests(2, 1.0 * SCALE))
        time.sleep(0.05 * SCALE)
        conns = self.connections()
        t_seen = time.monotonic()
        for e in conns:
            self.assertLessEqual(CONNECTION_KEYS, set(e), e)
            self.assertIn(e["worker"], range(self.WORKERS), e)
        by_client = {e["client"]: e for e in conns}
        self.assertEqual(len(by_client), len(conns), f"two entries for one client: {conns}")

        e = by_client.get(f"127.0.0.1:{cl.local_port}")
        self.assertIsNotNone(e, f"hanging exchange not listed: {conns}")
        self.assertEqual(e["phase"], "awaiting_response", e)
        self.assertEqual(e["method"], "POST", e)
        self.assertEqual(e["target"], self.url(up, "/ops-listed/hang?x=1"), e)
        self.assertEqual(e["route"], "ops-listed", e)
        self.assertEqual(e["deadline"], "response_header_timeout", e)
        configured = ms(1500) * 1000
        waited = (t_seen - t_sent) * 1000
        self.assertLessEqual(e["deadline_left_ms"], configured + 1, e)
        self.assertGreaterEqual(e["deadline_left_ms"], configured - waited - 50 * SCALE, e)
        self.assertLessEqual(e["age_ms"], waited + 50 * SCALE, e)
        self.assertLessEqual(e["phase_ms"], e["age_ms"], e)
        self.assertGreater(e["up_bytes"], 50, e)  # the head and the 50-byte body
        self.assertEqual(e["down_bytes"], 0, e)

        i = by_client.get(f"127.0.0.1:{idle.local_port}")
        self.assertIsNotNone(i, f"idle keep-alive connection not listed: {conns}")
        self.assertEqual(i["phase"], "idle", i)
        self.assertFalse(EXCHANGE_KEYS & set(i), f"an idle connection names an exchange: {i}")
        self.assertEqual(i["deadline"], "client_keepalive_timeout", i)
        self.assertLessEqual(i["deadline_left_ms"], ms(1000) * 1000 + 1, i)
        # The admin connection itself is not a proxy connection.
        self.assertEqual(len(conns), 2, conns)

    def test_connections_and_gauges_aggregate_across_workers(self):
        up = self.upstream()
        base = self.scrape().get("cutoff_client_connections")
        clients, mine = [], []
        for i in range(24):
            cl = self.client()
            cl.request("GET", self.url(up, f"/ops-listed/hang?n={i}"))
            clients.append(cl)
            if len(clients) < 4:
                continue
            self.assertTrue(up.wait_requests(len(clients), 1.0 * SCALE))
            mine = [e for e in self.connections() if "/ops-listed/hang?n=" in e.get("target", "")]
            if len({e["worker"] for e in mine}) == self.WORKERS:
                break
        self.assertEqual({e["worker"] for e in mine}, set(range(self.WORKERS)),
                         f"{len(clients)} connections never reached every worker: {mine}")
        self.assertEqual(sorted(e["target"] for e in mine),
                         sorted(self.url(up, f"/ops-listed/hang?n={i}") for i in range(len(clients))))
        self.assertTrue(all(e["phase"] == "awaiting_response" for e in mine), mine)
        self.assertEqual(len({(e["worker"], e["id"]) for e in mine}), len(mine), mine)
        m = self.scrape()
        self.assertEqual(m.get("cutoff_client_connections") - base, len(clients), m.text)
        for cl in clients:
            cl.close()
        self.wait_metrics(lambda m: m.get("cutoff_client_connections") == base,
                          "cutoff_client_connections back to its base")

    @time_limit(10)
    def test_readyz_503_while_draining(self):
        up = self.upstream()
        c = self.dedicated_cutoff(merge(ADMIN_ON, {"workers": self.WORKERS, "drain_timeout": "3s",
                                                   "defaults": {"response_header_timeout": "3s"}}))
        self.assertEqual(admin_get(c, "/readyz").status, 200)
        cl = self.client(c)
        cl.request("GET", self.url(up, "/slow-head?delay=%d" % (800 * SCALE)))
        self.assertTrue(up.wait_requests(1, 1.0 * SCALE))
        c.proc.send_signal(signal.SIGTERM)
        r = self.wait_for(lambda: (lambda r: r if r.status == 503 else None)(admin_get(c, "/readyz")),
                          "/readyz to answer 503 while draining", timeout=0.5)
        self.assertEqual(r.body.strip(), b"draining")
        self.assertIsNone(c.proc.poll(), "exited before the in-flight exchange finished")
        resp = cl.read_response(timeout=3.0)
        self.assertEqual((resp.status, resp.body), (200, pattern(5)), "in-flight exchange not drained")
        self.assertEqual(c.proc.wait(2.0 * SCALE), 0)


class AdminTwoWorkersTest(AdminTest):
    """The same, with two workers: /metrics and /connections add up both."""

    WORKERS = 2
    CONFIG = merge(AdminTest.CONFIG, {"workers": 2})


# ---------------------------------------------------------------------------
# SIGHUP with exchanges in flight

class ReloadInFlightTest(OpsTestCase):
    NEEDS_CUTOFF = False
    WORKERS = 1
    N = 20

    def start(self, routes):
        return self.dedicated_cutoff(
            {"workers": self.WORKERS, "listen": {"client_keepalive_timeout": "3s"}}, routes)

    @staticmethod
    def routes(name, deny=None):
        out = [{"name": name, "match": {"path_prefix": "/r/"}, "response_header_timeout": "3s"}]
        if deny:
            out.append({"name": "gone", "match": {"path_prefix": deny}, "action": "deny"})
        return out

    def send_slow(self, c, up, n, delay_ms):
        clients = []
        for i in range(n):
            cl = self.client(c)
            cl.request("GET", self.url(up, f"/r/slow-head?delay={int(delay_ms * SCALE)}&i={i}"))
            clients.append(cl)
        self.assertTrue(up.wait_requests(n, 2.0 * SCALE), f"only {len(up.requests)} of {n} arrived")
        return clients

    def wait_stderr(self, c, text, since=0):
        self.wait_for(lambda: text in c.stderr_text()[since:], f"{text!r} on stderr")

    @time_limit(15)
    def test_sighup_with_20_requests_in_flight(self):
        up = self.upstream()
        c = self.start(self.routes("before", deny="/old-deny/"))
        clients = self.send_slow(c, up, self.N, 700)
        c.routes = self.routes("after", deny="/new-deny/")
        c.write_config()
        mark = len(c.stderr_text())
        t_hup = time.monotonic()
        c.proc.send_signal(signal.SIGHUP)
        self.wait_stderr(c, "configuration reloaded", mark)
        time.sleep(0.1 * SCALE)  # the workers pick the new config up on their next turn
        for i, cl in enumerate(clients):
            r = cl.read_response(timeout=3.0)
            self.assertEqual((r.status, r.body), (200, pattern(5)), f"request {i} across the reload")
            self.assertGreater(r.t_head, t_hup, "answered before the reload: not in flight")
        entries = c.wait_access(target="/r/slow-head", count=self.N)
        self.assertEqual({(e["route"], e["outcome"]) for e in entries}, {("before", "ok")},
                         "an in-flight exchange changed route or failed")
        # New exchanges, on a new connection and on one that was in flight, use the new routes.
        r, _, _ = self.exchange("GET", self.url(up, "/r/ok?new=1"), cutoff=c)
        self.assertEqual(r.status, 200)
        self.assertEqual(c.wait_access(target="/r/ok?new=1")["route"], "after")
        clients[0].request("GET", self.url(up, "/r/ok?new=2"))
        self.assertEqual(clients[0].read_response().status, 200)
        self.assertEqual(c.wait_access(target="/r/ok?new=2")["route"], "after")
        r, _, _ = self.exchange("GET", self.url(up, "/new-deny/ok"), cutoff=c)
        self.assertGenerated(r, 403, "http_request_denied")
        r, _, _ = self.exchange("GET", self.url(up, "/old-deny/ok"), cutoff=c)
        self.assertEqual(r.status, 200, "the old deny route survived the reload")
        self.assertTrue(c.alive())

    @time_limit(15)
    def test_bad_reload_refused_with_location_and_old_config_stays(self):
        up = self.upstream()
        c = self.start(self.routes("before", deny="/old-deny/"))
        clients = self.send_slow(c, up, 5, 500)
        good = open(os.path.join(c.dir, "cutoff.toml")).read()
        bad = (good.replace('"/r/"', '"/moved/"') + '\n[[route]]\nname = "broken"\n'
               'match = { path_prefix = "/b/" }\nresponse_header_timeout = "5 parsecs"\n')
        bad_line = bad.splitlines().index('response_header_timeout = "5 parsecs"') + 1
        with open(os.path.join(c.dir, "cutoff.toml"), "w") as f:
            f.write(bad)
        mark = len(c.stderr_text())
        c.proc.send_signal(signal.SIGHUP)
        self.wait_stderr(c, "reload refused", mark)
        self.assertRegex(c.stderr_text()[mark:], rf"cutoff\.toml:{bad_line}:\d+",
                         "the refused reload does not name file:line:column")
        for i, cl in enumerate(clients):
            r = cl.read_response(timeout=3.0)
            self.assertEqual((r.status, r.body), (200, pattern(5)), f"request {i} across a bad reload")
        r, _, _ = self.exchange("GET", self.url(up, "/old-deny/ok"), cutoff=c)
        self.assertGenerated(r, 403, "http_request_denied")
        r, _, _ = self.exchange("GET", self.url(up, "/r/ok?after-bad=1"), cutoff=c)
        self.assertEqual(r.status, 200)
        self.assertEqual(c.wait_access(target="/r/ok?after-bad=1")["route"], "before")
        self.assertTrue(c.alive())

    @time_limit(10)
    def test_sighup_shorter_client_keepalive_reaches_idle_connections(self):
        # An idle connection holds no config: after the reload it expires the
        # new client_keepalive_timeout after it went idle, not the old one.
        up = self.upstream()
        c = self.start(self.routes("before"))
        idle = self.client(c)
        idle.request("GET", self.url(up, "/r/ok"))
        self.assertEqual(idle.read_response().status, 200)
        t_idle = time.monotonic()
        c.config = merge(c.config, {"listen": {"client_keepalive_timeout": "600ms"}})
        c.reload()
        later = self.client(c)
        later.request("GET", self.url(up, "/r/ok?later=1"))
        self.assertEqual(later.read_response().status, 200)
        t_later = time.monotonic()
        self.assertEqual(idle.wait_end(ms(3000)), "fin")
        self.assertElapsed(idle.end_time - t_idle, ms(600), "idle across the reload closed after",
                           early=0.02)
        self.assertEqual(later.wait_end(ms(3000)), "fin")
        self.assertElapsed(later.end_time - t_later, ms(600), "idle after the reload closed after",
                           early=0.02)


class ReloadInFlightTwoWorkersTest(ReloadInFlightTest):
    WORKERS = 2


# ---------------------------------------------------------------------------
# SIGTERM with two workers

class DrainTwoWorkersTest(OpsTestCase):
    NEEDS_CUTOFF = False

    @time_limit(15)
    def test_sigterm_in_flight_on_both_workers_complete_and_exit_zero(self):
        up = self.upstream()
        c = self.dedicated_cutoff(merge(ADMIN_ON, {
            "workers": 2, "drain_timeout": "3s", "defaults": {"response_header_timeout": "3s"}}))
        delay = 1000
        clients, mine = [], []
        for i in range(24):
            cl = self.client(c)
            cl.request("GET", self.url(up, f"/slow-head?delay={int(delay * SCALE)}&i={i}"))
            clients.append(cl)
            if len(clients) < 4:
                continue
            self.assertTrue(up.wait_requests(len(clients), 1.0 * SCALE))
            mine = [e for e in self.connections(c) if e["phase"] == "awaiting_response"]
            if {e["worker"] for e in mine} == {0, 1}:
                break
        self.assertEqual({e["worker"] for e in mine}, {0, 1},
                         f"{len(clients)} exchanges never reached both workers")
        self.assertEqual(len(mine), len(clients), "some exchange ended before SIGTERM")
        t_term = time.monotonic()
        c.proc.send_signal(signal.SIGTERM)
        for i, cl in enumerate(clients):
            r = cl.read_response(timeout=3.0)
            self.assertEqual((r.status, r.body), (200, pattern(5)), f"exchange {i} not drained")
            self.assertGreater(r.t_head, t_term)
        rc = c.proc.wait(2.0 * SCALE)
        took = time.monotonic() - t_term
        self.assertEqual(rc, 0, c.stderr_text()[-2000:])
        self.assertLess(took, ms(delay) + 1.0 * SCALE, "drain waited for more than the exchanges")
        # Both workers logged their exchanges before exiting.
        entries = [e for e in c.access_entries() if "/slow-head?" in e["target"]]
        self.assertEqual(len(entries), len(clients), c.stdout_text()[-2000:])
        self.assertEqual({e["outcome"] for e in entries}, {"ok"})


# ---------------------------------------------------------------------------
# Access control

def basic(credentials):
    return "Basic " + base64.b64encode(credentials.encode()).decode()


class ProxyAuthTest(OpsTestCase):
    CONFIG = merge(ADMIN_ON, {"listen": {"proxy_auth": ["user:pass"]}})
    TIME_LIMIT = 20.0

    def assert407(self, r, up):
        self.assertGenerated(r, 407, "http_request_denied")
        self.assertEqual(r.headers_named("Proxy-Authenticate"), ['Basic realm="cutoff"'], r)
        self.assertEqual(up.connection_count(), 0, "a request without credentials went upstream")

    def test_without_credentials_407(self):
        up = self.upstream()
        r, _, _ = self.exchange("GET", self.url(up, "/ok?auth=none"))
        self.assert407(r, up)
        self.assertOutcome("/ok?auth=none", 407, "error:http_request_denied", "default")
        r, _, _ = self.connect_tunnel(up.port)
        self.assert407(r, up)

    def test_wrong_credentials_407(self):
        up = self.upstream()
        for value in (basic("user:wrong"), basic("nobody:pass"), basic("user:pass") + "x",
                      "Bearer dXNlcjpwYXNz", "Basic", "Basic !!!"):
            r, _, _ = self.exchange("GET", self.url(up, "/ok"), [("Proxy-Authorization", value)])
            self.assert407(r, up)

    def test_right_credentials_forwarded_without_them(self):
        up = self.upstream()
        r, _, _ = self.exchange("GET", self.url(up, "/echo"),
                                [("Proxy-Authorization", basic("user:pass"))])
        self.assertEqual(r.status, 200, r)
        names = {k.lower() for k, _ in r.echo["headers"]}
        self.assertNotIn("proxy-authorization", names, "credentials leaked to the upstream")
        echo = self.echo_server()
        r, cl, _ = self.connect_tunnel_with(echo.port, basic("user:pass"))
        self.assertEqual(r.status, 200, r)
        self.assertEqual(self.round_trip(cl, b"hi"), b"hi")

    def connect_tunnel_with(self, port, auth):
        cl = self.client()
        t0 = time.monotonic()
        cl.send(f"CONNECT 127.0.0.1:{port} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                f"Proxy-Authorization: {auth}\r\n\r\n".encode())
        return cl.read_response("CONNECT"), cl, t0

    @unittest.skipUnless(shutil.which("curl"), "curl not installed")
    def test_curl_proxy_credentials(self):
        up = self.upstream()
        tmp = tempfile.mkdtemp(prefix="cutoff-ops-")
        self.addCleanup(shutil.rmtree, tmp, True)
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": tmp, "LC_ALL": "C"}
        host, port = self.cutoff.addr
        for creds, code in (("user:pass@", b"200"), ("user:nope@", b"407"), ("", b"407")):
            p = run_tool(["curl", "-sS", "-o", os.devnull, "-w", "%{http_code}", "-x",
                          f"http://{creds}{host}:{port}", self.url(up, "/ok?size=100")],
                         15 * SCALE, env=env)
            self.assertEqual(p.stdout, code, f"curl -x http://{creds}...: {p.stderr}")
        self.assertEqual(len(up.requests), 1, "only the right credentials reach the upstream")


class ClientCapTest(OpsTestCase):
    NEEDS_CUTOFF = False
    WORKERS = 1

    def test_over_cap_closed_at_once_and_counted(self):
        c = self.dedicated_cutoff(merge(ADMIN_ON, {
            "workers": self.WORKERS,
            "listen": {"max_client_connections": 3, "client_keepalive_timeout": "3s"}}))
        up = self.upstream()
        held = [self.client(c) for _ in range(3)]
        for h in held:
            h.request("GET", self.url(up, "/ok"))
            self.assertEqual(h.read_response().status, 200)
        before = self.scrape(c)
        self.assertEqual(before.get("cutoff_client_connections"), 3, before.text)
        for n in (1, 2):
            extra = self.client(c)
            t0 = time.monotonic()
            end = extra.wait_end(1.0)
            self.assertIn(end, ("fin", "rst"), "connection over the cap not closed")
            self.assertLess(extra.end_time - t0, 0.2 * SCALE, "connection over the cap not closed at once")
            self.wait_metrics(
                lambda m: m.get("cutoff_client_connections_refused_total")
                == before.get("cutoff_client_connections_refused_total") + n,
                f"{n} refused connection(s) counted", c)
        m = self.scrape(c)
        self.assertEqual(m.get("cutoff_client_connections"), 3, m.text)
        self.assertEqual(m.get("cutoff_client_connections_refused_total")
                         - before.get("cutoff_client_connections_refused_total"), 2, m.text)
        held[0].close()
        self.wait_metrics(lambda m: m.get("cutoff_client_connections") == 2, "a freed slot", c)
        r, _, _ = self.exchange("GET", self.url(up, "/ok"), cutoff=c)
        self.assertEqual(r.status, 200)


class ClientCapTwoWorkersTest(ClientCapTest):
    WORKERS = 2


class EmfileTest(OpsTestCase):
    NEEDS_CUTOFF = False
    FD_LIMIT = 64

    @time_limit(20)
    def test_emfile_no_busy_loop_and_service_resumes(self):
        up = self.upstream()
        # A connection that sends nothing is idle (client_keepalive_timeout):
        # both long, so the flood holds cutoff at its limit for the whole second.
        c = self.dedicated_cutoff({"listen": {"request_header_timeout": "10s",
                                              "client_keepalive_timeout": "10s",
                                              "max_client_connections": 10000}})
        # Warm-up before the limit: one exchange, and one connection that just
        # closes. UBSan's -fsanitize=vptr checks the first virtual call of each
        # kind with a pipe(2) probe (IsAccessibleMemoryRange), which fails at the
        # fd limit and reports a bogus "invalid vptr"; afterwards its cache answers.
        r, cl, _ = self.exchange("GET", self.url(up, "/ok"), cutoff=c)
        self.assertEqual(r.status, 200)
        cl.close()
        self.client(c).close()
        ok, n = c.wait_fds_back_to(c.baseline_fds, self.SETTLE * SCALE)
        self.assertTrue(ok, f"cutoff fds {n} not back to {c.baseline_fds} after the warm-up")
        self.assertLess(c.fd_count(), self.FD_LIMIT - 16, "cutoff starts with too many fds")
        resource.prlimit(c.pid, resource.RLIMIT_NOFILE, (self.FD_LIMIT, self.FD_LIMIT))
        flood = []

        def more(n):
            for _ in range(n):
                s = socket.socket()
                s.setblocking(False)
                s.connect_ex(c.addr)
                flood.append(s)
        try:
            more(3 * self.FD_LIMIT)
            self.wait_for(lambda: c.fd_count() >= self.FD_LIMIT - 1,
                          f"cutoff to reach its fd limit ({c.fd_count()} fds)")
            cpu0, t0 = cpu_seconds(c.pid), time.monotonic()
            while time.monotonic() - t0 < 1.0:  # keep knocking: every 10 ms, one more
                more(1)
                time.sleep(0.01)
            cpu = cpu_seconds(c.pid) - cpu0
            wall = time.monotonic() - t0
            self.assertGreaterEqual(c.fd_count(), self.FD_LIMIT - 1, "cutoff left its fd limit")
            self.assertTrue(c.alive(), "cutoff died at its fd limit:\n" + c.stderr_text()[-2000:])
            self.assertLess(cpu, 0.3, f"cutoff used {cpu:.2f} s of CPU in {wall:.2f} s at EMFILE")
            # Connections over the fd limit were accepted and closed (libuv's
            # spare-fd trick), which is how EMFILE shows from outside.
            closed = 0
            for s in flood:
                try:
                    closed += s.recv(1) == b""
                except BlockingIOError:
                    pass
                except OSError:
                    closed += 1
            self.assertGreater(closed, 0, "the flood never made cutoff refuse a connection")
        finally:
            for s in flood:
                s.close()
        # Once the flood is gone, cutoff serves again.
        def served():
            try:
                r, cl, _ = self.exchange("GET", self.url(up, "/ok"), cutoff=c, timeout=1.0)
                cl.close()
                return r.status == 200
            except Exception:
                return False
        try:
            self.wait_for(served, "a request to succeed after the flood", timeout=3.0, interval=0.05)
        except AssertionError:
            state = "running" if c.alive() else f"exited {c.proc.poll()}"
            self.fail(f"no request succeeded after the flood; cutoff {state}:\n"
                      + c.stderr_text()[-1500:])
        self.assertTrue(c.alive())
        self.assertIn("listening on", c.stderr_text())


# ---------------------------------------------------------------------------
# Logs and Server-Timing

def read_json_lines(path):
    try:
        with open(path) as f:
            text = f.read()
    except FileNotFoundError:
        return []
    return [json.loads(line) for line in text.splitlines() if line.strip()]


class LogsTest(OpsTestCase):
    NEEDS_CUTOFF = False

    def setUp(self):
        super().setUp()
        self.tmp = tempfile.mkdtemp(prefix="cutoff-ops-")
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.path = os.path.join(self.tmp, "access.json")

    def wait_lines(self, path, pred, count=1, timeout=1.0):
        found = []

        def enough():
            nonlocal found
            found = [e for e in read_json_lines(path) if pred(e)]
            return len(found) >= count
        self.wait_for(enough, f"{count} access log line(s) in {path}", timeout)
        return found

    def test_json_access_log_one_object_per_line(self):
        routes = [{"name": "j-rht", "match": {"path_prefix": "/j-rht/"},
                   "response_header_timeout": "200ms"}]
        c = self.dedicated_cutoff({"access_log": {"format": "json", "path": self.path},
                                   "listen": {"client_keepalive_timeout": "2s"}}, routes)
        up = self.upstream()
        cl = self.client(c)
        cl.request("POST", self.url(up, "/echo?n=1"), body=pattern(100))
        self.assertEqual(cl.read_response().status, 200)
        cl.request("GET", self.url(up, "/ok?size=7"), version="HTTP/1.0",
                   headers=[("Connection", "keep-alive")])
        self.assertEqual(cl.read_response().status, 200)
        r, _, _ = self.exchange("GET", self.url(up, "/j-rht/hang"), cutoff=c)
        self.assertEqual(r.status, 504)
        entries = self.wait_lines(self.path, lambda e: True, 3)
        self.assertEqual(len(entries), 3, entries)
        for e in entries:
            self.assertLessEqual(ACCESS_FIELDS, set(e), e)
            for k in ("dns_ms", "connect_ms", "first_byte_ms"):
                self.assertTrue(e[k] is None or (isinstance(e[k], int) and e[k] >= 0), (k, e))
            self.assertIsInstance(e["total_ms"], int)
            self.assertIsInstance(e["reused"], bool)
        first, second, hang = entries
        self.assertEqual(first["client"], f"127.0.0.1:{cl.local_port}")
        self.assertEqual((first["method"], first["target"], first["version"], first["route"],
                          first["status"], first["outcome"], first["reused"]),
                         ("POST", self.url(up, "/echo?n=1"), "1.1", "default", 200, "ok", False))
        self.assertGreater(first["up_bytes"], 100)  # the head and the 100-byte body
        self.assertGreaterEqual(first["down_bytes"], 100)
        self.assertIsInstance(first["connect_ms"], int, "a new upstream connection has connect_ms")
        self.assertIsInstance(first["first_byte_ms"], int)
        self.assertGreaterEqual(first["total_ms"], first["first_byte_ms"])
        self.assertEqual((second["version"], second["reused"], second["status"]), ("1.0", True, 200))
        self.assertGreater(second["up_bytes"], 0)
        self.assertGreaterEqual(second["down_bytes"], 7)
        self.assertEqual((hang["route"], hang["status"], hang["outcome"]),
                         ("j-rht", 504, "timeout:response_header_timeout"))
        self.assertIsNone(hang["first_byte_ms"])
        self.assertGreaterEqual(hang["total_ms"], ms(200) * 1000 - 5)
        self.assertEqual(c.access_entries(), [], "access lines also went to stdout")

    def test_sigusr1_reopens_a_renamed_access_log(self):
        c = self.dedicated_cutoff({"access_log": {"format": "json", "path": self.path}})
        up = self.upstream()
        r, _, _ = self.exchange("GET", self.url(up, "/ok?n=1"), cutoff=c)
        self.assertEqual(r.status, 200)
        t_resp = time.monotonic()
        self.wait_lines(self.path, lambda e: e["target"].endswith("?n=1"))
        flushed_after = time.monotonic() - t_resp
        self.assertLess(flushed_after, 0.1 + 0.1 * SCALE, "the access log is flushed late")
        rotated = self.path + ".1"
        os.rename(self.path, rotated)
        mark = len(c.stderr_text())
        c.proc.send_signal(signal.SIGUSR1)
        self.wait_for(lambda: os.path.exists(self.path), "a new file at the original path")
        self.wait_for(lambda: "reopening the access log" in c.stderr_text()[mark:], "SIGUSR1 logged")
        time.sleep(0.02 * SCALE)
        r, _, _ = self.exchange("GET", self.url(up, "/ok?n=2"), cutoff=c)
        self.assertEqual(r.status, 200)
        self.wait_lines(self.path, lambda e: e["target"].endswith("?n=2"))
        self.assertEqual([e["target"][-4:] for e in read_json_lines(rotated)], ["?n=1"])
        self.assertEqual([e["target"][-4:] for e in read_json_lines(self.path)], ["?n=2"])
        self.assertTrue(c.alive())

    def server_timing(self, r):
        values = r.headers_named("Server-Timing")
        out = {}
        for v in values:
            for part in v.split(","):
                m = re.fullmatch(r"\s*([\w-]+);dur=(\d+(?:\.\d+)?)\s*", part)
                self.assertTrue(m, f"malformed Server-Timing {v!r}")
                out[m.group(1)] = float(m.group(2))
        return out, values

    def test_server_timing_on(self):
        c = self.dedicated_cutoff({"listen": {"server_timing": True,
                                              "client_keepalive_timeout": "2s"}})
        up = self.upstream()
        cl = self.client(c)
        delay = 150
        cl.request("GET", self.url(up, f"/slow-head?delay={int(delay * SCALE)}"))
        r = cl.read_response()
        self.assertEqual((r.status, r.body), (200, pattern(5)))
        timing, values = self.server_timing(r)
        self.assertEqual(len(values), 1, values)
        self.assertIn("connect", timing, f"a new upstream connection without connect: {values}")
        self.assertIn("first_byte", timing, values)
        self.assertGreaterEqual(timing["first_byte"], ms(delay) * 1000 - 5, values)
        self.assertLess(timing["first_byte"], ms(delay) * 1000 + 1000 * tolerance(ms(delay)), values)
        # The same upstream connection again: no connect phase.
        cl.request("GET", self.url(up, "/ok"))
        r = cl.read_response()
        self.assertEqual(r.status, 200)
        timing, values = self.server_timing(r)
        self.assertIn("first_byte", timing, values)
        self.assertNotIn("connect", timing, f"a reused upstream connection with connect: {values}")
        self.assertEqual(up.connection_count(), 1)

    def test_server_timing_off_by_default(self):
        c = self.dedicated_cutoff()
        up = self.upstream()
        r, _, _ = self.exchange("GET", self.url(up, "/ok"), cutoff=c)
        self.assertEqual(r.status, 200)
        self.assertIsNone(r.header("Server-Timing"), r.headers)


if __name__ == "__main__":
    unittest.main()
