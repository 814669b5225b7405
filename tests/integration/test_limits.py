"""cutoff's own limits (SPEC sections 7 and 7c): running out of file
descriptors with two workers, more workers than the descriptor limit allows,
the soft descriptor limit raised at start-up, a second cutoff started on an
address that one already serves, and admin clients that hold every admin
connection slot with half a request.

Descriptor limits are set for the cutoff process alone (RLIMIT_NOFILE in the
child before exec); CPU time comes from /proc/PID/stat, the fd count from
/proc/PID/fd.
"""

import os
import re
import resource
import socket
import time
import unittest

from harness import (ADMIN_ON, SCALE, SLACK, ConnectionEnded, Cutoff, CutoffTestCase, admin_addr,
                     admin_get, merge, ms, time_limit, wait_until)

CRITICAL_RE = re.compile(r"^\S+ critical (.*)$", re.MULTILINE)
SANITIZER_RE = re.compile(r"AddressSanitizer|LeakSanitizer|runtime error:|Assertion .* failed")


def cpu_seconds(pid):
    """utime + stime of a process, from /proc/PID/stat."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # fields[0] is the state (field 3); utime and stime are fields 14 and 15.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def open_files_limit(pid):
    """(soft, hard) "Max open files" of a process, from /proc/PID/limits."""
    with open(f"/proc/{pid}/limits") as f:
        for line in f:
            if line.startswith("Max open files"):
                soft, hard = line.split()[3:5]
                return int(soft), int(hard)
    raise AssertionError("no Max open files line in /proc/PID/limits")


def need_hard_nofile(test, n):
    """Skips the test when this process may not give a child n descriptors."""
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if hard != resource.RLIM_INFINITY and hard < n:
        test.skipTest(f"the hard RLIMIT_NOFILE here is {hard}, the test needs {n}")


class LimitsTestCase(CutoffTestCase):
    NEEDS_CUTOFF = False

    def refused_start(self, config, **kw):
        """Runs a cutoff that must refuse to start: exit 1 with exactly one
        critical line (returned), and no sanitizer report or assertion."""
        c = Cutoff(config, **kw)
        try:
            p = c.run_to_exit()
        finally:
            c.cleanup_dir()
        self.assertEqual(p.returncode, 1, f"cutoff exited {p.returncode}:\n{p.stderr[-3000:]}")
        self.assertIsNone(SANITIZER_RE.search(p.stderr), p.stderr[-3000:])
        errors = CRITICAL_RE.findall(p.stderr)
        self.assertEqual(len(errors), 1, p.stderr[-3000:])
        return errors[0]


# ---------------------------------------------------------------------------
# EMFILE with two workers (SPEC 7c)

class EmfileTwoWorkersTest(LimitsTestCase):
    FD_LIMIT = 64
    DEADLINE = 2000  # the exchange in flight: response_header_timeout, unscaled ms
    CONFIG = merge(ADMIN_ON, {
        "workers": 2,
        # A connection that sends nothing stays idle for all of the test, so
        # the flood holds cutoff at its limit.
        "listen": {"request_header_timeout": "10s", "client_keepalive_timeout": "10s",
                   "max_client_connections": 10000},
        "defaults": {"response_header_timeout": f"{DEADLINE}ms"},
    })
    ROUTES = [{"name": "warm-up", "match": {"path_prefix": "/warm/"},
               "response_header_timeout": "100ms"}]

    def start_at_limit(self):
        """A two-worker cutoff under FD_LIMIT descriptors, warmed up: UBSan's
        vptr check probes memory with a pipe(2) the first time it meets each
        virtual call, which fails at the fd limit and reports a bogus error;
        one of each exchange and ending the test makes (a closing
        connection's deadline among them) fills its cache beforehand."""
        up = self.upstream()
        c = self.dedicated_cutoff(self.CONFIG, self.ROUTES, nofile=(self.FD_LIMIT, self.FD_LIMIT))
        r, cl, _ = self.exchange("GET", self.url(up, "/ok"), cutoff=c)
        self.assertEqual(r.status, 200)
        cl.close()
        r, cl, _ = self.exchange("GET", self.url(up, "/warm/hang"), cutoff=c)
        self.assertEqual(r.status, 504)
        cl.close()
        self.client(c).close()
        # A client that keeps its socket after a Connection: close answer:
        # the closing connection's linger_timeout fires.
        lingering = self.client(c)
        lingering.request("GET", self.url(up, "/ok"), [("Connection", "close")])
        self.assertEqual(lingering.read_response().status, 200)
        self.assertEqual(lingering.wait_end(), "fin")
        self.assertEqual(admin_get(c, "/metrics").status, 200)
        ok, n = c.wait_fds_back_to(c.baseline_fds, self.SETTLE * SCALE)
        self.assertTrue(ok, f"cutoff fds {n} not back to {c.baseline_fds} after the warm-up")
        self.assertLess(c.fd_count(), self.FD_LIMIT - 16, "cutoff starts with too many fds")
        return up, c

    def flood(self, c, sockets, n):
        for _ in range(n):
            s = socket.socket()
            s.setblocking(False)
            s.connect_ex(c.addr)
            sockets.append(s)

    def reach_limit(self, c, sockets):
        self.flood(c, sockets, 2 * self.FD_LIMIT)
        # A paused listener has closed its own handle's descriptor: a few
        # below the limit is as full as it gets.
        wait_until(lambda: c.fd_count() >= self.FD_LIMIT - 4,
                   f"cutoff to reach its fd limit ({c.fd_count()} fds)")

    @time_limit(30)
    def test_deadlines_fire_and_accepting_resumes(self):
        up, c = self.start_at_limit()
        waiting = self.client(c)
        seen = len(up.requests)
        t0 = time.monotonic()
        waiting.request("GET", self.url(up, "/hang"))
        self.assertTrue(up.wait_requests(seen + 1, 2 * SCALE), "the request never reached the upstream")
        sockets = []
        try:
            self.reach_limit(c, sockets)
            cpu0, w0 = cpu_seconds(c.pid), time.monotonic()
            while time.monotonic() - w0 < 1.0:  # keep knocking: one more every 10 ms
                self.flood(c, sockets, 1)
                time.sleep(0.01)
            # The exchange that was in flight when descriptors ran out still
            # gets its deadline, on time.
            resp = waiting.read_response(timeout=ms(self.DEADLINE) / SCALE + 2)
            self.assertGenerated(resp, 504, "http_response_timeout")
            self.assertElapsed(resp.t_head - t0, ms(self.DEADLINE), "the 504 at the fd limit")
            cpu, wall = cpu_seconds(c.pid) - cpu0, time.monotonic() - w0
            self.assertTrue(c.alive(), "cutoff died at its fd limit:\n" + c.stderr_text()[-2000:])
            self.assertLess(cpu, 0.2 * wall + 0.1,
                            f"cutoff used {cpu:.2f} s of CPU in {wall:.2f} s at its fd limit")
        finally:
            for s in sockets:
                s.close()

        # Once the flood is gone, new connections are accepted and served.
        def served():
            try:
                r, cl, _ = self.exchange("GET", self.url(up, "/ok"), cutoff=c, timeout=1.0)
                cl.close()
                return r.status == 200
            except (OSError, TimeoutError, AssertionError, ConnectionEnded):
                return False  # the flood's last connections still being let go
        wait_until(served, "a request to be served after the flood", timeout=3.0, interval=0.05)
        # Warnings are rate-limited: at most one per listener here.
        warnings = c.stderr_text().count("listener: accept failed")
        self.assertLessEqual(warnings, 3, c.stderr_text()[-2000:])

    @time_limit(30)
    def test_sigterm_at_the_limit_exits_promptly(self):
        _, c = self.start_at_limit()
        sockets = []
        try:
            self.reach_limit(c, sockets)
            t0 = time.monotonic()
            rc = c.stop()
            elapsed = time.monotonic() - t0
        finally:
            for s in sockets:
                s.close()
        self.assertFalse(c.killed, "cutoff ignored SIGTERM at its fd limit")
        self.assertEqual(rc, 0, c.stderr_text()[-2000:])
        # Within drain_timeout (1 s) and a linger: nothing spins, nothing hangs.
        self.assertLess(elapsed, ms(2000) + SLACK, f"exit took {elapsed * 1000:.0f} ms")


# ---------------------------------------------------------------------------
# Start-up

class StartupLimitsTest(LimitsTestCase):

    @time_limit(60)
    def test_too_many_workers_for_the_descriptor_limit(self):
        for workers, limit in ((256, 1024), (64, 200)):
            with self.subTest(workers=workers, limit=limit):
                need_hard_nofile(self, limit)
                error = self.refused_start({"workers": workers}, nofile=(limit, limit))
                self.assertEqual(error, f"cannot start {workers} workers: too many open files "
                                        f"(RLIMIT_NOFILE {limit})")

    def test_soft_descriptor_limit_raised_to_the_hard_limit(self):
        need_hard_nofile(self, 512)
        c = self.dedicated_cutoff(nofile=(256, 512))
        self.assertEqual(open_files_limit(c.pid), (512, 512))
        self.assertIn("descriptor limit (RLIMIT_NOFILE) raised from 256 to 512", c.stderr_text())


class SecondInstanceTest(LimitsTestCase):

    @time_limit(60)
    def test_an_address_already_served_is_refused(self):
        first = self.dedicated_cutoff(merge(ADMIN_ON, {
            "workers": 2, "listen": {"client_keepalive_timeout": "10s"}}))
        port = first.port
        admin_port = admin_addr(first)[1]
        for workers in (2, 1):
            with self.subTest(listener="proxy", workers=workers):
                error = self.refused_start({"workers": workers},
                                           extra_args=["--listen", f"127.0.0.1:{port}"])
                self.assertEqual(error, f"cannot listen on 127.0.0.1:{port}: address already in use")
            with self.subTest(listener="admin", workers=workers):
                error = self.refused_start(merge(ADMIN_ON, {"workers": workers}),
                                           extra_args=["--admin", f"127.0.0.1:{admin_port}"])
                self.assertEqual(error, f"cannot listen on 127.0.0.1:{admin_port} (admin): "
                                        "address already in use")
        # The first keeps all of its traffic, and its two workers share it.
        up = self.upstream()
        held = [self.client(first) for _ in range(16)]
        for cl in held:
            cl.request("GET", self.url(up, "/ok"))
            self.assertEqual(cl.read_response().status, 200)
        r = admin_get(first, "/connections")
        self.assertEqual(r.status, 200)
        workers = set(int(w) for w in re.findall(rb'"worker":(\d+)', r.body))
        self.assertEqual(workers, {0, 1}, r.body[:2000])


# ---------------------------------------------------------------------------
# The admin listener

class AdminLockoutTest(LimitsTestCase):
    HOLDERS = 300  # more than the admin's 256 connection slots
    PROBE_BOUND = 0.25  # seconds, scaled: well under the 1 s head deadline

    @time_limit(40)
    def test_half_requests_do_not_lock_out_healthz(self):
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft < self.HOLDERS + 200:
            need_hard_nofile(self, self.HOLDERS + 200)
            resource.setrlimit(resource.RLIMIT_NOFILE, (self.HOLDERS + 200, hard))
            self.addCleanup(resource.setrlimit, resource.RLIMIT_NOFILE, (soft, hard))
        c = self.dedicated_cutoff(ADMIN_ON)
        host, port = admin_addr(c)
        base = c.fd_count()
        for _ in range(3):
            held = []
            try:
                for _ in range(self.HOLDERS):
                    s = socket.create_connection((host, port), timeout=2 * SCALE)
                    s.sendall(b"GET /healthz HTTP/1.1\r\nHost: admin\r\n")  # no blank line
                    held.append(s)
                # Every slot is taken by a half request.
                wait_until(lambda: c.fd_count() >= base + 250,
                           f"cutoff to hold the admin connections ({c.fd_count()} fds)")
                for _ in range(3):
                    t0 = time.monotonic()
                    r = admin_get(c, "/healthz", timeout=2.0)
                    elapsed = time.monotonic() - t0
                    self.assertEqual(r.status, 200, r)
                    self.assertEqual(r.body, b"ok\n")
                    self.assertLess(elapsed, self.PROBE_BOUND * SCALE,
                                    f"/healthz took {elapsed * 1000:.0f} ms")
            finally:
                for s in held:
                    s.close()


if __name__ == "__main__":
    unittest.main()
