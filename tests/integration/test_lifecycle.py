"""Operations (SPEC section 7): --check, SIGTERM/SIGINT and draining, SIGHUP
reload, the client cap and the client allowlist. Each test runs its own cutoff."""

import os
import signal
import subprocess
import time
import unittest

from fakeupstream import pattern
from harness import SCALE, Client, ConnectionEnded, Cutoff, CutoffTestCase, find_binary, ms, tolerance

DRAIN = ms(600)


class LifecycleTest(CutoffTestCase):
    NEEDS_CUTOFF = False
    TIME_LIMIT = 15.0

    def setUp(self):
        if not find_binary():
            self.skipTest("cutoff binary not found: set CUTOFF_BIN or build build/cutoff")
        super().setUp()

    def start(self, config=None, routes=()):
        c = Cutoff(config, routes).start()

        def cleanup():
            c.stop()
            c.cleanup_dir()
        self.addCleanup(cleanup)
        return c

    def terminate(self, c, sig=signal.SIGTERM, limit=2.0):
        """Sends sig; returns (exit code, seconds to exit); fails after limit."""
        t0 = time.monotonic()
        c.proc.send_signal(sig)
        try:
            rc = c.proc.wait(limit * SCALE)
        except subprocess.TimeoutExpired:
            self.fail(f"cutoff still running {limit * SCALE:.1f} s after {sig.name}")
        return rc, time.monotonic() - t0

    # -- --check ---------------------------------------------------------------

    def test_check_valid_and_invalid_config(self):
        c = Cutoff()
        ok = c.check_config('[listen]\naddress = "127.0.0.1:0"\n')
        self.assertEqual(ok.returncode, 0, ok.stderr)
        bad = c.check_config('[listen]\naddress = "127.0.0.1:0"\nbogus_key = 1\n\n'
                             '[defaults]\nconnect_timeout = "5 parsecs"\n')
        c.cleanup_dir()
        self.assertEqual(bad.returncode, 1)
        msg = (bad.stdout + bad.stderr).decode()
        self.assertRegex(msg, r"check\.toml:3:\d+", "unknown key not located as file:line:column")
        self.assertRegex(msg, r"check\.toml:6:\d+", "bad duration not located as file:line:column")

    # -- signals -----------------------------------------------------------------

    def test_sigterm_idle_exits_zero(self):
        c = self.start()
        rc, took = self.terminate(c)
        self.assertEqual(rc, 0)
        self.assertLess(took, 1.0 * SCALE + 0.1)

    def test_sigint_idle_exits_zero(self):
        c = self.start()
        rc, _ = self.terminate(c, signal.SIGINT)
        self.assertEqual(rc, 0)

    def test_sigterm_lets_in_flight_exchange_finish(self):
        up = self.upstream()
        c = self.start({"drain_timeout": "600ms"})
        cl = Client(c.addr)
        self._clients.append(cl)
        cl.request("GET", self.url(up, "/slow-head?delay=%d" % (300 * SCALE)))
        self.assertTrue(up.wait_requests(1, 1.0 * SCALE))
        c.proc.send_signal(signal.SIGTERM)
        r = cl.read_response(timeout=2.0)
        self.assertEqual((r.status, r.body), (200, pattern(5)), "in-flight exchange not drained")
        rc = c.proc.wait(2.0 * SCALE)
        self.assertEqual(rc, 0)

    def test_sigterm_stops_accepting(self):
        c = self.start({"drain_timeout": "600ms"})
        up = self.upstream()
        cl = Client(c.addr)
        self._clients.append(cl)
        cl.request("GET", self.url(up, "/hang"))  # keeps cutoff draining
        self.assertTrue(up.wait_requests(1, 1.0 * SCALE))
        c.proc.send_signal(signal.SIGTERM)
        time.sleep(0.1 * SCALE)
        with self.assertRaises(OSError, msg="new connections accepted while draining"):
            late = Client(c.addr, timeout=0.5)
            late.request("GET", self.url(up, "/ok"))
            late.read_response(timeout=0.5)
        c.proc.wait(3.0 * SCALE)

    def test_drain_timeout_tears_down_the_rest(self):
        up = self.upstream()
        c = self.start({"drain_timeout": "600ms", "defaults": {"response_header_timeout": "5s"}})
        cl = Client(c.addr)
        self._clients.append(cl)
        cl.request("GET", self.url(up, "/hang"))
        self.assertTrue(up.wait_requests(1, 1.0 * SCALE))
        rc, took = self.terminate(c, limit=3.0)
        self.assertEqual(rc, 0)
        self.assertLess(took, DRAIN + tolerance(DRAIN) + 0.5 * SCALE)
        self.assertGreaterEqual(took, DRAIN - 0.005)
        self.assertIn(up.wait_end(0).state, ("rst", "fin"))

    def test_sighup_reloads_without_dropping_connections(self):
        up = self.upstream()
        c = self.start(routes=[{"name": "block", "match": {"path_prefix": "/x/"}, "action": "deny"}],
                       config={"listen": {"client_keepalive_timeout": "5s"}})
        cl = Client(c.addr)
        self._clients.append(cl)
        cl.request("GET", self.url(up, "/x/ok"))
        self.assertEqual(cl.read_response().status, 403)
        cl = Client(c.addr)
        self._clients.append(cl)
        cl.request("GET", self.url(up, "/ok"))
        self.assertEqual(cl.read_response().status, 200)
        c.routes = []
        c.write_config()
        c.proc.send_signal(signal.SIGHUP)
        time.sleep(0.3 * SCALE)
        self.assertTrue(c.alive(), "cutoff died on SIGHUP")
        # The old keep-alive connection survives, and sees the new config.
        cl.request("GET", self.url(up, "/x/ok"))
        self.assertEqual(cl.read_response().status, 200)
        # A bad config is refused and the running one stays.
        with open(os.path.join(c.dir, "cutoff.toml"), "a") as f:
            f.write("\nnot valid toml [[[\n")
        c.proc.send_signal(signal.SIGHUP)
        time.sleep(0.3 * SCALE)
        self.assertTrue(c.alive(), "cutoff died on a bad reload")
        cl.request("GET", self.url(up, "/x/ok"))
        self.assertEqual(cl.read_response().status, 200)

    # -- who may connect ------------------------------------------------------------

    def test_client_connection_cap(self):
        c = self.start({"listen": {"max_client_connections": 3, "client_keepalive_timeout": "2s"}})
        held = [Client(c.addr) for _ in range(3)]
        self._clients.extend(held)
        up = self.upstream()
        for h in held:  # make sure cutoff has accepted all three
            h.request("GET", self.url(up, "/ok"))
            self.assertEqual(h.read_response().status, 200)
        extra = Client(c.addr)
        self._clients.append(extra)
        self.assertIn(extra.wait_end(1.0), ("fin", "rst"), "connection over the cap not closed")
        self.assertTrue(c.alive())
        held[0].close()
        time.sleep(0.1 * SCALE)
        again = Client(c.addr)
        self._clients.append(again)
        again.request("GET", self.url(up, "/ok"))
        self.assertEqual(again.read_response().status, 200)

    def test_client_not_in_allowlist_denied(self):
        c = self.start({"listen": {"allow_clients": ["10.0.0.0/8"]}})
        up = self.upstream()
        cl = Client(c.addr)
        self._clients.append(cl)
        try:
            cl.request("GET", self.url(up, "/ok"))
            r = cl.read_response(timeout=1.0)
        except (OSError, ConnectionEnded):
            r = None  # accept-and-close is a fine way to say no
        if r is not None:
            self.assertGenerated(r, 403, "http_request_denied")
        self.assertEqual(up.connection_count(), 0, "a client outside allow_clients reached the upstream")


if __name__ == "__main__":
    unittest.main()
