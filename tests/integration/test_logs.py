"""Logs that never block cutoff (SPEC section 7c): a stdout or stderr that
nobody reads costs log lines, dropped whole and counted in
cutoff_log_lines_dropped_total, never the proxy's time. And with every
worker writing its own lines, SIGUSR1 still moves them all to the new file.

cutoff's stdout (the access log) or stderr (diagnostics) is a pipe that the
test reads only when it chooses. First it reads nothing while parallel
clients drive two workers: every request must still be answered within its
bound, a new connection accepted, /healthz answered, and lines counted as
dropped. Then it reads: what was neither written nor dropped arrives, every
line whole, a warning on stderr says how many were dropped, and lines logged
from then on all arrive.
"""

import fcntl
import json
import os
import re
import select
import shutil
import signal
import tempfile
import threading
import time
import unittest

from fakeload import LoopClients
from harness import (ADMIN_ON, SCALE, Client, Cutoff, CutoffTestCase, admin_addr, admin_get, merge,
                     run_tool)

DROPPED_RE = re.compile(r"^cutoff_log_lines_dropped_total (\d+)$", re.M)
# Every access line of these tests: a GET through the default route that
# the upstream answered with 200.
ACCESS_LINE_RE = re.compile(
    r'\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d\d:\d\d 127\.0\.0\.1:\d+ '
    r'"GET http://127\.0\.0\.1:\d+/ok(\?\S*)? HTTP/1\.1" route=default status=200 '
    r'up_bytes=\d+ down_bytes=\d+ dns_ms=- connect_ms=(-|\d+) first_byte_ms=\d+ total_ms=\d+ '
    r'reused=[01] outcome=ok')
DIAGNOSTIC_LINE_RE = re.compile(
    r'\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d\d:\d\d (trace|debug|info|warning|error|critical) .+')
REQUEST_BOUND = 2.0  # seconds (scaled) for any one request under load


class PipeReader:
    """The reading end of a pipe, read by a thread only while reading is on."""

    def __init__(self, fd: int, reading: bool):
        self.fd = fd
        self._data = bytearray()
        self._on = threading.Event()
        if reading:
            self._on.set()
        self._reading = threading.Lock()  # held around each read
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        while not self._done.is_set():
            if not self._on.wait(0.02):
                continue
            with self._reading:
                if not self._on.is_set():
                    continue
                ready, _, _ = select.select([self.fd], [], [], 0.02)
                if not ready:
                    continue
                chunk = os.read(self.fd, 65536)
                if not chunk:
                    return  # every writer is gone
                self._data += chunk

    def start_reading(self):
        self._on.set()

    def stop_reading(self):
        """Returns once no read is under way; none follows until started."""
        self._on.clear()
        with self._reading:
            pass

    def text(self) -> str:
        with self._reading:
            return bytes(self._data).decode("utf-8", "replace")

    def close(self):
        self._done.set()
        self._thread.join(5)
        os.close(self.fd)


class PipedCutoff(Cutoff):
    """A cutoff whose stdout and/or stderr is a pipe (the other a file as
    usual); `pipe_size` sets the pipe's capacity (F_SETPIPE_SZ)."""

    def __init__(self, config, routes=(), stdout_pipe=False, stderr_pipe=False, pipe_size=None):
        super().__init__(config, routes)
        self.stdout_pipe, self.stderr_pipe, self.pipe_size = stdout_pipe, stderr_pipe, pipe_size
        self.out_reader = None
        self.err_reader = None

    def _pipe(self, reading: bool):
        r, w = os.pipe()
        if self.pipe_size:
            fcntl.fcntl(w, fcntl.F_SETPIPE_SZ, self.pipe_size)
        return PipeReader(r, reading), os.fdopen(w, "wb")

    def open_outputs(self):
        out, err = super().open_outputs()
        if self.stdout_pipe:
            out.close()
            self.out_reader, out = self._pipe(reading=False)
        if self.stderr_pipe:
            # Read until cutoff has said where it listens.
            err.close()
            self.err_reader, err = self._pipe(reading=True)
        return out, err

    def stdout_text(self) -> str:
        return self.out_reader.text() if self.out_reader else super().stdout_text()

    def stderr_text(self) -> str:
        return self.err_reader.text() if self.err_reader else super().stderr_text()

    def close_readers(self):
        for reader in (self.out_reader, self.err_reader):
            if reader is not None:
                reader.start_reading()  # whatever is left, so cutoff can exit
                reader.close()


class StalledLogTest(CutoffTestCase):
    NEEDS_CUTOFF = False
    TIME_LIMIT = 40.0

    def piped_cutoff(self, config, routes=(), **pipes) -> PipedCutoff:
        c = PipedCutoff(merge(ADMIN_ON, merge({"workers": 2}, config)), routes, **pipes)
        self.addCleanup(self.stop_cutoff, c)
        c.start()
        if not hasattr(self, "_extra_cutoffs"):
            self._extra_cutoffs = []
        self._extra_cutoffs.append(c)  # its fds are checked after the test
        return c

    def stop_cutoff(self, c):
        try:
            if c.err_reader is not None:
                c.err_reader.start_reading()
            rc = c.stop()
            self.assertFalse(c.killed, "cutoff ignored SIGTERM and was killed")
            self.assertEqual(rc, 0, c.stderr_text()[-2000:])
        finally:
            c.close_readers()
            c.cleanup_dir()

    def dropped(self, c) -> int:
        r = admin_get(c, "/metrics")
        self.assertEqual(r.status, 200, r)
        m = DROPPED_RE.search(r.body.decode())
        self.assertIsNotNone(m, "no cutoff_log_lines_dropped_total in /metrics")
        return int(m.group(1))

    def assertServing(self, c, target):
        """A new connection is accepted and answered in time, and so is
        /healthz."""
        r, _, elapsed = self.exchange("GET", target, cutoff=c, timeout=REQUEST_BOUND * SCALE)
        self.assertEqual(r.status, 200, r)
        self.assertLess(elapsed, REQUEST_BOUND * SCALE)
        t0 = time.monotonic()
        self.assertEqual(admin_get(c, "/healthz", timeout=REQUEST_BOUND * SCALE).status, 200)
        self.assertLess(time.monotonic() - t0, REQUEST_BOUND * SCALE)

    def drive(self, c, target, conns, rounds) -> int:
        """conns keep-alive connections, `rounds` requests each; every one
        answered 200 within the bound. Returns the number of requests."""
        clients = LoopClients(c.addr, target, conns, rounds)
        clients.run(time.monotonic() + 15 * SCALE)
        self.assertEqual(len(clients.results), conns * rounds)
        self.assertEqual({status for *_, status, _ in clients.results}, {200})
        self.assertLess(max(clients.latencies()), REQUEST_BOUND * SCALE)
        return conns * rounds

    def test_stdout_nobody_reads(self):
        c = self.piped_cutoff({}, stdout_pipe=True)
        up = self.loop_server("ok")
        # A few thousand lines: more than the pipe and both workers' buffers
        # hold together.
        requests = self.drive(c, self.url(up, "/ok"), conns=32, rounds=125)
        self.assertServing(c, self.url(up, "/ok?new=1"))
        requests += 1
        dropped = self.dropped(c)
        self.assertGreater(dropped, 0)
        warning = self.wait_for(
            lambda: re.search(r"warning access log: dropped (\d+) line\(s\)", c.stderr_text()),
            "the warning about dropped access log lines", 2.0)
        self.assertLessEqual(int(warning.group(1)), dropped)
        self.assertGreater(int(warning.group(1)), 0)

        # Reading again: every line was either written or dropped.
        c.out_reader.start_reading()
        self.wait_for(lambda: c.stdout_text().count("\n") + dropped == requests,
                      f"{requests - dropped} access log lines", 5.0)
        # Lines logged from now on all arrive.
        later = self.drive(c, self.url(up, "/ok?later=1"), conns=4, rounds=25)
        self.wait_for(lambda: c.stdout_text().count("?later=1") == later,
                      f"{later} later access log lines", 5.0)
        self.assertEqual(self.dropped(c), dropped)
        text = c.stdout_text()
        self.assertTrue(text.endswith("\n"), text[-300:])
        lines = text.splitlines()
        self.assertEqual(len(lines), requests - dropped + later)
        for line in lines:
            self.assertRegex(line, f"^{ACCESS_LINE_RE.pattern}$")

    def test_stderr_nobody_reads(self):
        # Every failed exchange logs a debug line that names its route: a
        # long name makes a few hundred of them fill a small pipe and the
        # diagnostics buffer.
        route = "r-" + "x" * 600
        routes = [{"name": route, "match": {"path_prefix": "/"}}]
        c = self.piped_cutoff({"log_level": "debug"}, routes, stderr_pipe=True, pipe_size=4096)
        admin_addr(c)  # read from stderr while it was still read
        c.err_reader.stop_reading()
        up = self.loop_server("ok")
        closed = self.closed_port()
        errors = []

        def refused(n):
            for _ in range(n):
                cl = Client(c.addr, REQUEST_BOUND * SCALE)
                try:
                    t0 = time.monotonic()
                    cl.request("GET", self.url(closed, "/ok"))
                    r = cl.read_response()
                    if r.status != 502 or time.monotonic() - t0 > REQUEST_BOUND * SCALE:
                        errors.append(f"{r.status} after {time.monotonic() - t0:.3f} s")
                except Exception as e:  # a hang ends in a timeout here
                    errors.append(repr(e))
                finally:
                    cl.close()

        threads = [threading.Thread(target=refused, args=(100,)) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30 * SCALE)
        self.assertEqual(errors, [])
        self.assertServing(c, self.url(up, "/ok"))
        dropped = self.dropped(c)
        self.assertGreater(dropped, 0)

        c.err_reader.start_reading()
        warning = self.wait_for(
            lambda: re.search(r"warning diagnostics: dropped (\d+) line\(s\)", c.stderr_text()),
            "the warning about dropped diagnostic lines", 5.0)
        self.assertGreater(int(warning.group(1)), 0)
        self.assertLessEqual(int(warning.group(1)), dropped)
        text = c.stderr_text()
        lines = text.splitlines()
        for line in lines:
            self.assertRegex(line, f"^{DIAGNOSTIC_LINE_RE.pattern}$")
            if "connection_refused" in line:
                self.assertTrue(line.endswith(f"(route {route})"), line)


class ReopenTest(CutoffTestCase):
    NEEDS_CUTOFF = False
    TIME_LIMIT = 20.0

    def test_sigusr1_moves_every_worker(self):
        tmp = tempfile.mkdtemp(prefix="cutoff-logs-")
        self.addCleanup(shutil.rmtree, tmp, True)
        path = os.path.join(tmp, "access.json")
        c = self.dedicated_cutoff({"workers": 2, "access_log": {"format": "json", "path": path}})
        up = self.loop_server("ok")

        def lines(p):
            with open(p) as f:
                text = f.read()
            self.assertTrue(text == "" or text.endswith("\n"), text[-300:])
            return [json.loads(line) for line in text.splitlines()]

        def drive_and_wait(phase, p):
            clients = LoopClients(c.addr, self.url(up, f"/ok?phase={phase}"), 8, 50)
            clients.run(time.monotonic() + 15 * SCALE)
            deadline = time.monotonic() + 3 * SCALE
            while len(lines(p)) < 400:
                self.assertLess(time.monotonic(), deadline, f"400 lines in {p}")
                time.sleep(0.02)

        drive_and_wait(1, path)
        rotated = path + ".1"
        os.rename(path, rotated)
        mark = len(c.stderr_text())
        c.proc.send_signal(signal.SIGUSR1)
        deadline = time.monotonic() + 2 * SCALE
        while "access log reopened by every worker" not in c.stderr_text()[mark:]:
            self.assertLess(time.monotonic(), deadline, "no `access log reopened` line")
            time.sleep(0.01)
        drive_and_wait(2, path)
        old, new = lines(rotated), lines(path)
        self.assertEqual([e["target"][-8:] for e in old], ["?phase=1"] * 400)
        self.assertEqual([e["target"][-8:] for e in new], ["?phase=2"] * 400)


class FifoTest(CutoffTestCase):
    """An access log in a FIFO whose reader (a log shipper) comes after
    cutoff: --check accepts it, cutoff starts, and the reader gets the lines
    written before it came."""

    NEEDS_CUTOFF = False

    def test_fifo_without_a_reader_yet(self):
        tmp = tempfile.mkdtemp(prefix="cutoff-fifo-")
        self.addCleanup(shutil.rmtree, tmp, True)
        path = os.path.join(tmp, "access.fifo")
        os.mkfifo(path)
        c = self.dedicated_cutoff({"access_log": {"path": path}})
        check = run_tool([c.binary, "--check", "--config", os.path.join(c.dir, "cutoff.toml")],
                         timeout=10 * SCALE)
        self.assertEqual(check.returncode, 0, check.stderr)
        up = self.upstream()
        r, _, _ = self.exchange("GET", self.url(up, "/ok?before-the-reader"), cutoff=c)
        self.assertEqual(r.status, 200, r)
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        self.addCleanup(os.close, fd)
        got = b""
        deadline = time.monotonic() + 2 * SCALE
        while b"before-the-reader" not in got:
            self.assertLess(time.monotonic(), deadline, f"no access line in the FIFO: {got!r}")
            select.select([fd], [], [], 0.1)
            try:
                got += os.read(fd, 65536)
            except BlockingIOError:
                pass
        self.assertIn(b" status=200 ", got)


if __name__ == "__main__":
    unittest.main()
