"""Happy Eyeballs (RFC 8305): a name with IPv6 and IPv4 addresses, on loopback.

cutoff's `[dns] servers` is a FakeDns that answers each test's name with
AAAA ::1 and A 127.0.0.1. c-ares sorts ::1 first (RFC 6724), so ::1 is
tried first; the test puts a different fake on the same port number of
each address:

- ::1 never completes the handshake (a full accept queue), 127.0.0.1
  answers: the request succeeds, connected in about the 250 ms attempt
  delay (the access log's connect_ms), far from connect_timeout; the ::1
  attempt is closed when IPv4 wins (cutoff holds no socket to it any more
  when the response arrives), and the next request reuses the pooled IPv4
  connection;
- ::1 refuses: 127.0.0.1 is tried at once, without the 250 ms wait;
- ::1 answers: it wins at once and IPv4 is never tried;
- both never complete the handshake: 504 connection_timeout at
  connect_timeout (one deadline for the whole race, not one per address),
  and every attempt closed.

Skipped where the host has no IPv6 on loopback.
"""

import os
import re
import shutil
import socket
import subprocess
import unittest

from fakedns import FakeDns
from fakenet import LOOPBACK, LOOPBACK6
from fakeupstream import pattern
from harness import CutoffTestCase, ms, shown, tolerance

ATTEMPT_DELAY = 0.250  # RFC 8305's Connection Attempt Delay, a constant of cutoff's (not scaled)
CONNECT = 800  # connect_timeout (ms, scaled): far from the attempt delay, and from twice itself
AT_ONCE = ATTEMPT_DELAY / 2  # a connect that did not wait for the delay
DOMAIN = "cutoff.test"  # RFC 6761 reserves .test for testing

def ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind((LOOPBACK6, 0))
        return True
    except OSError:
        return False


def sockets_to(pid: int, host: str, port: int) -> list[str]:
    """The states (as ss names them: SYN-SENT, ESTAB, ...) of process
    `pid`'s TCP sockets whose peer is host:port. ss has the kernel filter
    the table, so the answer is one consistent snapshot (reading
    /proc/net/tcp while other sockets come and go can list one twice)."""
    if not shutil.which("ss"):
        raise unittest.SkipTest("ss (iproute2) not installed")
    inodes = set()
    fd_dir = f"/proc/{pid}/fd"
    for n in os.listdir(fd_dir):
        try:
            link = os.readlink(os.path.join(fd_dir, n))
        except OSError:
            continue
        if link.startswith("socket:["):
            inodes.add(link[len("socket:["):-1])
    peer = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    out = subprocess.run(["ss", "-tanHe", "dst", peer], capture_output=True, text=True,
                         timeout=10).stdout
    states = []
    for line in out.splitlines():
        m = re.search(r"\bino:(\d+)", line)
        if m and m.group(1) in inodes:
            states.append(line.split()[0])
    return sorted(states)


class HappyEyeballsTest(CutoffTestCase):
    TIME_LIMIT = 8.0
    dns: FakeDns
    names = 0
    # A route on IPv4 addresses that only changes a setting: it must not
    # keep IPv4 out of a race that IPv6 starts.
    ROUTES = [{"name": "v4", "match": {"host": f"*.split.{DOMAIN}", "address": ["127.0.0.0/8"]},
               "response_header_timeout": "700ms"}]

    @classmethod
    def setUpClass(cls):
        if not ipv6_loopback():
            raise unittest.SkipTest("no IPv6 on loopback (::1)")
        cls.dns = FakeDns().start()
        cls.CONFIG = {"dns": {"servers": [cls.dns.address]},
                      "defaults": {"dns_timeout": "1s", "connect_timeout": f"{CONNECT}ms"}}
        try:
            super().setUpClass()
        except BaseException:
            cls.dns.stop()
            raise

    @classmethod
    def tearDownClass(cls):
        try:
            super().tearDownClass()
        finally:
            cls.dns.stop()

    def dual_stack_name(self) -> str:
        """A name of its own for this test, with AAAA ::1 and A 127.0.0.1."""
        type(self).names += 1
        name = f"dual-{self.names}.{DOMAIN}"
        self.dns.answer(name, LOOPBACK6, LOOPBACK)
        return name

    def held_sockets(self, host: str, port: int) -> list[str]:
        return sockets_to(self.cutoff.pid, host, port)

    def connect_ms(self, target: str) -> float:
        e = self.assertOutcome(target, 200, "ok", "default")
        self.assertNotEqual(e.get("connect_ms"), "-", e["line"])
        return int(e["connect_ms"]) / 1000.0

    def test_ipv4_answers_when_ipv6_never_completes_the_handshake(self):
        up = self.upstream()
        self.full_backlog(LOOPBACK6, up.port)
        name = self.dual_stack_name()
        r, _, elapsed = self.exchange("GET", f"http://{name}:{up.port}/ok?first")
        # Won by IPv4, so the attempt on ::1 was closed then, not at
        # connect_timeout: cutoff no longer holds it, only the IPv4
        # connection, pooled.
        held6 = self.held_sockets(LOOPBACK6, up.port)
        held4 = self.held_sockets(LOOPBACK, up.port)
        # At once, within upstream_keepalive_timeout: the pooled IPv4
        # connection serves the next request, with no new race.
        again, _, _ = self.exchange("GET", f"http://{name}:{up.port}/ok?second")
        self.assertEqual((r.status, r.body), (200, pattern(5)), r)
        self.assertEqual((held6, held4), ([], ["ESTAB"]))
        self.assertLess(elapsed, ms(CONNECT), "the request waited for connect_timeout")
        took = self.connect_ms(f"{name}:{up.port}/ok?first")
        # Not before the delay (::1 was tried first and hung), not much after.
        self.assertGreaterEqual(took, ATTEMPT_DELAY - 0.001)
        self.assertLessEqual(took, ATTEMPT_DELAY + tolerance(ATTEMPT_DELAY))
        self.assertEqual(again.status, 200, again)
        e = self.assertOutcome(f"{name}:{up.port}/ok?second", 200, "ok", "default")
        self.assertEqual((e.get("reused"), e.get("connect_ms")), ("1", "-"), e["line"])
        self.assertEqual(up.connection_count(), 1)

    def test_a_route_on_one_family_keeps_the_other_in_the_race(self):
        up = self.upstream()
        self.full_backlog(LOOPBACK6, up.port)
        name = f"v4.split.{DOMAIN}"
        self.dns.answer(name, LOOPBACK6, LOOPBACK)
        r, _, elapsed = self.exchange("GET", f"http://{name}:{up.port}/ok")
        self.assertEqual(r.status, 200, r)
        self.assertLess(elapsed, ms(CONNECT), "IPv4 was left out of the race")
        # The address that connected chose the route.
        self.assertOutcome(f"{name}:{up.port}/ok", 200, "ok", "v4")

    def test_refused_ipv6_falls_through_to_ipv4_at_once(self):
        up = self.upstream()
        self.closed_port(LOOPBACK6, up.port)
        name = self.dual_stack_name()
        r, _, _ = self.exchange("GET", f"http://{name}:{up.port}/ok")
        self.assertEqual((r.status, r.body), (200, pattern(5)), r)
        self.assertLess(self.connect_ms(f"{name}:{up.port}/ok"), AT_ONCE,
                        "a refused address must not hold the next one for the attempt delay")
        self.assertEqual(up.connection_count(), 1)

    def test_ipv6_that_answers_wins_and_ipv4_is_never_tried(self):
        up6 = self.upstream(LOOPBACK6)
        up4 = self.upstream(LOOPBACK, up6.port)
        name = self.dual_stack_name()
        r, _, _ = self.exchange("GET", f"http://{name}:{up6.port}/ok")
        self.assertEqual((r.status, r.body), (200, pattern(5)), r)
        self.assertLess(self.connect_ms(f"{name}:{up6.port}/ok"), AT_ONCE)
        self.assertEqual((up6.connection_count(), up4.connection_count()), (1, 0))

    def test_both_families_black_holed_time_out_once_at_connect_timeout(self):
        v4 = self.full_backlog()
        self.full_backlog(LOOPBACK6, v4.port)
        name = self.dual_stack_name()
        r, cl, elapsed = self.exchange("GET", f"http://{name}:{v4.port}/never")
        self.assertGenerated(r, 504, "connection_timeout")
        self.assertDetails(r, target=f"{name}:{v4.port}", value=shown(CONNECT), route="default",
                           also=("connect_timeout",))
        # One deadline for the whole race: not one per address.
        self.assertElapsed(elapsed, ms(CONNECT))
        self.assertOutcome(f"{name}:{v4.port}/never", 504, "timeout:connect_timeout", "default")
        # Both attempts were closed when the deadline ended the race.
        self.wait_for(lambda: not self.held_sockets(LOOPBACK6, v4.port)
                      and not self.held_sockets(LOOPBACK, v4.port),
                      "cutoff still holds an attempt", timeout=0.1)
        self.assertWholeThenFin(r, cl)


if __name__ == "__main__":
    unittest.main()
