"""Name resolution (SPEC sections 4, 6 and 7c) against a fake DNS server.

cutoff runs with `[dns] servers` pointing at a FakeDns on 127.0.0.1, which
answers the names a test gives it, never answers the names it swallows and
says NXDOMAIN to the rest.

- FakeDnsTest: self-tests of the fake (answers, NXDOMAIN, silence).
- DnsTest:
  - a name the server knows resolves (A and AAAA are both asked) and the
    request reaches the upstream;
  - 50 requests to names that are never answered get 504 dns_timeout at
    dns_timeout while requests to answered names keep completing at once
    (a hung name delays no other name), and cutoff's descriptors are back
    at their baseline afterwards;
  - NXDOMAIN is 502 dns_error at once;
  - `localhost` comes from /etc/hosts without a query;
  - SIGHUP with other servers warns and keeps the running ones.

No name leaves loopback: the only server cutoff asks is the fake.
"""

import select
import socket
import time
import unittest

from fakedns import FakeDns, build_query, parse_answer
from fakeupstream import pattern
from harness import SCALE, SLACK, CutoffTestCase, localhost_addresses, ms

DNS_TIMEOUT = ms(1000)
LINGER = ms(200)
QUICK = 0.1 + SLACK  # "at once": an answer that waits for no deadline
HANGING = 50
DOMAIN = "cutoff.test"  # RFC 6761 reserves .test for testing


class FakeDnsTest(CutoffTestCase):
    NEEDS_CUTOFF = False
    TIME_LIMIT = 5.0

    def ask(self, dns, name, qtype, qid):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.addCleanup(s.close)
        s.settimeout(ms(300))
        s.sendto(build_query(name, qtype, qid), ("127.0.0.1", dns.port))
        try:
            return parse_answer(s.recv(4096))
        except socket.timeout:
            return None

    def test_answers_nxdomain_and_silence(self):
        with FakeDns() as dns:
            dns.answer("both.example", "192.0.2.1", "2001:db8::1").answer("v4.example", "192.0.2.2")
            dns.swallow("quiet.example")
            self.assertEqual(self.ask(dns, "Both.Example", 1, 1), (1, 0, ["192.0.2.1"]))
            self.assertEqual(self.ask(dns, "both.example", 28, 2), (2, 0, ["2001:db8::1"]))
            self.assertEqual(self.ask(dns, "v4.example", 28, 3), (3, 0, []))
            self.assertEqual(self.ask(dns, "other.example", 1, 4), (4, 3, []))
            self.assertIsNone(self.ask(dns, "quiet.example", 1, 5))
            self.assertIsNone(self.ask(dns, "quiet.example.search.local", 1, 6))
            self.assertEqual(dns.types_asked("both.example"), {"A", "AAAA"})
            self.assertEqual(len(dns.names_asked()), 6)


class DnsTest(CutoffTestCase):
    TIME_LIMIT = 10.0
    dns: FakeDns

    @classmethod
    def setUpClass(cls):
        cls.dns = FakeDns().start()
        cls.CONFIG = {"dns": {"servers": [cls.dns.address]},
                      "defaults": {"dns_timeout": "1s"}}
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

    def get(self, url, timeout=5.0):
        r, _, elapsed = self.exchange("GET", url, timeout=timeout)
        return r, elapsed

    def test_name_from_the_server_reaches_the_upstream(self):
        up = self.upstream()
        name = f"origin.{DOMAIN}"
        self.dns.answer(name, "127.0.0.1")
        r, _ = self.get(f"http://{name}:{up.port}/ok")
        self.assertEqual((r.status, r.body), (200, pattern(5)), r)
        self.assertEqual(self.dns.types_asked(name), {"A", "AAAA"})
        self.assertEqual(up.conn(0).requests[0].header("Host"), f"{name}:{up.port}")
        e = self.assertOutcome(f"{name}:{up.port}/ok", 200, "ok", "default")
        self.assertNotEqual(e.get("dns_ms"), "-", e["line"])

    def test_hung_names_delay_no_other_name(self):
        up = self.upstream()
        # Each hanging request asks for a name of its own: no answer to one
        # query may stand in for another.
        hanging = [f"hang-{i}.{DOMAIN}" for i in range(HANGING)]
        for name in hanging:
            self.dns.swallow(name)
        clients, sent = [], {}
        for name in hanging:
            cl = self.client()
            cl.request("GET", f"http://{name}:{up.port}/never")
            clients.append(cl)
            sent[cl.sock.fileno()] = (cl, name, cl.t_sent)
        # All 50 queries are out before the healthy requests start.
        deadline = time.monotonic() + DNS_TIMEOUT / 2
        while len(set(self.dns.names_asked()) & set(hanging)) < HANGING:
            self.assertLess(time.monotonic(), deadline, "the hanging names were not all asked")
            time.sleep(0.01)
        healthy = []
        for i in range(10):
            name = f"ok-{i}.{DOMAIN}"
            self.dns.answer(name, "127.0.0.1")
            r, elapsed = self.get(f"http://{name}:{up.port}/ok")
            self.assertEqual((r.status, r.body), (200, pattern(5)), f"{name}: {r!r}")
            healthy.append(elapsed)
        self.assertLess(max(healthy), QUICK,
                        f"answered names took {[round(t * 1000) for t in healthy]} ms "
                        f"while {HANGING} names hung")
        # The hanging ones end at their own dns_timeout, each measured from
        # its own request.
        arrived = {}
        end = time.monotonic() + DNS_TIMEOUT + 2.0
        while len(arrived) < HANGING and time.monotonic() < end:
            waiting = [fd for fd in sent if fd not in arrived]
            ready, _, _ = select.select(waiting, [], [], 0.05)
            now = time.monotonic()
            for fd in ready:
                arrived[fd] = now
        self.assertEqual(len(arrived), HANGING, "some hanging requests got no answer")
        for fd, (cl, name, t_sent) in sent.items():
            r = cl.read_response()
            self.assertGenerated(r, 504, "dns_timeout")
            self.assertDetails(r, target=name, also=("dns_timeout",))
            self.assertElapsed(arrived[fd] - t_sent, DNS_TIMEOUT, f"504 for {name}")
        self.assertEqual(up.connection_count(), 10, "only the answered names reach the upstream")
        # Nobody waits for the hung queries any more: their socket is closed
        # (and each client connection once its client has closed it).
        for cl in clients:
            cl.close()
        ok, n = self.cutoff.wait_fds_back_to(self.fd_baseline, LINGER + QUICK)
        self.assertTrue(ok, f"cutoff fds {n} != baseline {self.fd_baseline}:\n  "
                        + "\n  ".join(sorted(self.cutoff.fds())))

    def test_nxdomain_is_dns_error_at_once(self):
        name = f"missing.{DOMAIN}"
        r, elapsed = self.get(f"http://{name}:8080/")
        self.assertGenerated(r, 502, "dns_error")
        self.assertDetails(r, target=name, also=("could not be resolved",))
        self.assertLess(elapsed, QUICK, "NXDOMAIN must not wait for dns_timeout")
        self.assertIn(name, self.dns.names_asked())
        self.assertOutcome(f"{name}:8080/", 502, "error:dns_error", "default")

    def test_localhost_comes_from_etc_hosts(self):
        addrs = localhost_addresses()
        if "127.0.0.1" not in addrs:
            self.skipTest(f"/etc/hosts, looked up first, has no 127.0.0.1 localhost ({addrs!r})")
        up = self.upstream()
        r, _ = self.get(f"http://localhost:{up.port}/ok")
        self.assertEqual((r.status, r.body), (200, pattern(5)), r)
        asked = [n for n in self.dns.names_asked() if n.startswith("localhost")]
        self.assertEqual(asked, [], "localhost was sent to the DNS server")

    def test_reload_keeps_the_servers_until_the_next_start(self):
        up = self.upstream()
        name = f"reload.{DOMAIN}"
        self.dns.answer(name, "127.0.0.1")
        c = self.dedicated_cutoff(self.CONFIG)
        with FakeDns() as other:
            other.answer(name, "127.0.0.2")
            c.config["dns"]["servers"] = [other.address]
            c.reload(timeout=2.0)
            self.assertRegex(c.stderr_text(),
                             r"reload \S+: dns\.servers \S+ -> \S+ takes effect at the next start")
            r, _, _ = self.exchange("GET", f"http://{name}:{up.port}/ok", cutoff=c)
            self.assertEqual((r.status, r.body), (200, pattern(5)), r)
            self.assertEqual(other.names_asked(), [])


if __name__ == "__main__":
    unittest.main()
