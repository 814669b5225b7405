"""Closing without losing a byte (SPEC sections 7b and 5), from the client's
side: what bytes it gets, when, and how its connection ends.

- A slow reader of a response that ends the connection (Connection: close,
  close-delimited, HTTP/1.0) gets every byte and then FIN, however long the
  flush takes; one that stops reading is reset at idle_timeout.
- A SIGTERM drain with a response tail still queued to a slow reader: every
  byte, then FIN; a response in flight during a drain says Connection: close.
- A client that half-closes after its whole request gets its response; a FIN
  in the middle of a request body is an abort.
- A request with a body is never replayed when its pooled connection dies:
  502 connection_terminated at once; a GET is replayed on a fresh connection.
- Tunnels closed by each side in turn: both peers see FIN, and cutoff's fds
  return at once, not after linger_timeout.
- Clients outside allow_clients are refused at accept, and a reload that
  narrows allow_clients applies to an open keep-alive connection.
- max_idle_per_upstream caps the idle pooled connections of one upstream.
"""

from __future__ import annotations

import json
import random
import signal
import socket
import struct
import threading
import time

from fakeupstream import pattern
from harness import (SCALE, SLACK, ConnectionEnded, CutoffTestCase, admin_get, build_request, ms,
                     time_limit)

LINGER = ms(200)  # harness default linger_timeout
IDLE = ms(300)  # harness default idle_timeout
QUICK = 0.1 + SLACK  # "at once": an ending that needs no deadline
BIG = 3 * 1024 * 1024


class SlowReader:
    """A client with a small receive buffer that reads `step` bytes every
    `pause` seconds, so that most of a big response waits in cutoff."""

    def __init__(self, addr, step=64 * 1024, pause=0.02):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 * 1024)
        self.sock.connect(addr)
        self.step, self.pause = step, pause
        self.data = bytearray()
        self.end = None

    def send(self, data: bytes):
        self.sock.sendall(data)

    def read_all(self, timeout: float, stop_after: int | None = None):
        """Reads slowly until FIN or RST (self.end), or until `stop_after`
        bytes, after which it stops reading altogether."""
        deadline = time.monotonic() + timeout * SCALE
        while time.monotonic() < deadline:
            if stop_after is not None and len(self.data) >= stop_after:
                return
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                got = self.sock.recv(self.step)
            except ConnectionResetError:
                self.end = "rst"
                return
            except socket.timeout:
                break
            if not got:
                self.end = "fin"
                return
            self.data += got
            time.sleep(self.pause)
        raise AssertionError(f"slow reader: no end after {len(self.data)} bytes")

    def wait_end(self, timeout: float) -> str:
        """After it stopped reading, with data still unread: how the
        connection ended, from the TCP state (reading would consume the data
        a reset must destroy): "rst" (CLOSE), "fin" (CLOSE_WAIT) or "open"."""
        deadline = time.monotonic() + timeout * SCALE
        while time.monotonic() < deadline:
            state = self.sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 1)[0]
            if state == 7:  # TCP_CLOSE: the peer's RST
                return "rst"
            if state == 8:  # TCP_CLOSE_WAIT: the peer's FIN
                return "fin"
            time.sleep(0.01)
        return "open"

    def close(self):
        self.sock.close()


def split_response(data: bytes):
    head, _, body = bytes(data).partition(b"\r\n\r\n")
    return head.decode("latin-1"), body


class ClosingTest(CutoffTestCase):
    TIME_LIMIT = 15.0

    def slow_reader(self, cutoff=None) -> SlowReader:
        r = SlowReader((cutoff or self.cutoff).addr)
        self.addCleanup(r.close)
        return r

    # == slow readers ============================================================

    def check_slow_reader_gets_everything(self, target: str, version="HTTP/1.1",
                                          headers=(("Connection", "close"),)):
        r = self.slow_reader()
        r.send(build_request("GET", target, headers, version=version))
        t0 = time.monotonic()
        r.read_all(timeout=20)
        head, body = split_response(r.data)
        self.assertIn(" 200 ", head.split("\r\n")[0], head)
        self.assertEqual(len(body), BIG, f"{target}: got {len(body)} of {BIG} body bytes")
        self.assertEqual(body, pattern(BIG), "body bytes differ")
        self.assertEqual(r.end, "fin", "the connection must end with FIN after the last byte")
        # The flush outlasted linger_timeout: the old code reset it there.
        self.assertGreater(time.monotonic() - t0, 2 * LINGER)

    @time_limit(30)
    def test_slow_reader_gets_whole_connection_close_response(self):
        up = self.upstream()
        self.check_slow_reader_gets_everything(self.url(up, f"/ok?size={BIG}"))
        self.cutoff.wait_access(target=f"/ok?size={BIG}")

    @time_limit(30)
    def test_slow_reader_gets_whole_close_delimited_response(self):
        up = self.upstream()
        self.check_slow_reader_gets_everything(self.url(up, f"/close-delimited?size={BIG}"),
                                               headers=())

    @time_limit(30)
    def test_slow_reader_gets_whole_http10_response(self):
        up = self.upstream()
        self.check_slow_reader_gets_everything(self.url(up, f"/ok?size={BIG}"),
                                               version="HTTP/1.0", headers=())

    @time_limit(15)
    def test_reader_that_stops_is_reset_at_idle_timeout(self):
        up = self.upstream()
        r = self.slow_reader()
        r.send(build_request("GET", self.url(up, f"/ok?size={BIG}"), [("Connection", "close")]))
        r.read_all(timeout=5, stop_after=256 * 1024)
        stopped = time.monotonic()
        self.assertEqual(r.wait_end(timeout=IDLE * 2 + 2), "rst",
                         "a client that stopped reading is reset when idle_timeout fires")
        self.assertGreaterEqual(time.monotonic() - stopped, IDLE - 0.05)

    @time_limit(15)
    def test_client_resets_racing_the_last_response_bytes(self):
        # A client's reset that lands while cutoff writes the end of a
        # response: the write fails after the response is whole and the
        # connection idle again, with no exchange to end (it crashed
        # cutoff). The race is won a few times in a thousand resets, so
        # several clients reset for a while.
        up = self.upstream()
        target = self.url(up, "/slow-head?delay=2&size=20000")
        stop = time.monotonic() + 2.0 * SCALE
        resets = [0]

        def resetting_client(seed: int):
            pause = random.Random(seed)
            while time.monotonic() < stop and self.cutoff.alive():
                with socket.create_connection(self.cutoff.addr) as sock:
                    sock.sendall(build_request("GET", target))
                    time.sleep(pause.uniform(0.0015, 0.004))
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                    struct.pack("ii", 1, 0))
                resets[0] += 1

        threads = [threading.Thread(target=resetting_client, args=(i,)) for i in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertTrue(self.cutoff.alive(), f"cutoff died after {resets[0]} resets")
        self.assertEqual(self.exchange("GET", self.url(up))[0].status, 200)

    # == half-close ==============================================================

    @time_limit(10)
    def test_client_half_close_after_request_gets_response(self):
        up = self.upstream()
        cl = self.client()
        # The upstream answers after 150 ms: the FIN is in before the response.
        cl.request("GET", self.url(up, "/slow-head?delay=150"))
        cl.shutdown_write()
        resp = cl.read_response()
        self.assertEqual(resp.status, 200, resp)
        self.assertTrue(resp.has_token("Connection", "close"), resp.headers)
        self.assertEqual(cl.wait_end(), "fin")
        entry = self.cutoff.wait_access(target="/slow-head?delay=150")
        self.assertEqual(entry["outcome"], "ok", entry)

    @time_limit(10)
    def test_client_half_close_after_request_body_gets_response(self):
        up = self.upstream()
        cl = self.client()
        cl.request("POST", self.url(up, "/echo"), body=b"x" * 5000)
        cl.shutdown_write()
        resp = cl.read_response()
        self.assertEqual(resp.status, 200, resp)
        self.assertEqual(resp.body, b"x" * 5000)
        self.assertEqual(cl.wait_end(), "fin")

    @time_limit(10)
    def test_client_fin_in_the_middle_of_a_body_is_an_abort(self):
        up = self.raw_upstream(("head", "park"))
        cl = self.client()
        cl.send(build_request("POST", self.url(up, "/up"), [("Content-Length", "1000")])
                + b"y" * 400)
        up.wait_received(400, 0)
        t0 = time.monotonic()
        cl.shutdown_write()
        self.assertEqual(cl.wait_end(), "fin")
        self.assertEqual(bytes(cl.buf), b"", "an aborted request gets no answer")
        self.assertTrue(up.wait_all_closed(1.0 * SCALE))
        self.assertEqual(up.conn(0).end, "rst", up.conn(0))
        self.assertLess(up.conn(0).end_time - t0, QUICK)
        entry = self.cutoff.wait_access(target="/up")
        self.assertEqual(entry["outcome"], "client_abort", entry)

    # == no replay of a request with a body ======================================

    OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"

    @time_limit(10)
    def test_request_with_body_is_not_replayed_when_pooled_connection_dies(self):
        # Connection 0 answers a GET, then reads a PUT whole and closes.
        up = self.raw_upstream(per_conn=[("request", self.OK, "request", "close")],
                               script=("request", self.OK, "repeat"))
        cl = self.client()
        cl.request("GET", self.url(up, "/first"))
        self.assertEqual(cl.read_response().status, 200)
        t0 = time.monotonic()
        cl.request("PUT", self.url(up, "/artifact"), body=b"z" * 1000)
        resp = cl.read_response()
        elapsed = time.monotonic() - t0
        self.assertGenerated(resp, 502, "connection_terminated")
        self.assertLess(elapsed, QUICK, "the 502 comes at once, not at a deadline")
        self.assertEqual(up.connection_count(), 1, "the PUT was sent again on a new connection")
        self.assertEqual(len(up.requests()), 2)

    @time_limit(10)
    def test_get_is_replayed_once_when_pooled_connection_dies(self):
        up = self.raw_upstream(per_conn=[("request", self.OK, "head", "close")],
                               script=("request", self.OK, "repeat"))
        cl = self.client()
        cl.request("GET", self.url(up, "/first"))
        self.assertEqual(cl.read_response().status, 200)
        cl.request("GET", self.url(up, "/second"))
        resp = cl.read_response()
        self.assertEqual(resp.status, 200, resp)
        self.assertEqual(up.connection_count(), 2)
        self.assertIn(b"GET /second ", up.received(1))

    # == tunnels =================================================================

    def check_tunnel_close(self, client_first: bool):
        if client_first:
            script = ("park",)  # reads until the client's FIN arrives, then closes with FIN
        else:
            script = (b"bye", "fin", "park")
        up = self.raw_upstream(script)
        resp, cl, _ = self.connect_tunnel(up.port)
        self.assertEqual(resp.status, 200, resp)
        up.wait_connections(1, 2 * SCALE)
        if client_first:
            cl.send(b"hello")
            up.wait_received(5, 0)
            cl.shutdown_write()
        else:
            self.assertEqual(cl.read_exactly(3), b"bye")
            cl.shutdown_write()
        t0 = time.monotonic()
        self.assertEqual(cl.wait_end(), "fin")
        self.assertTrue(up.wait_all_closed(1.0 * SCALE))
        self.assertEqual(up.conn(0).end, "fin", up.conn(0))
        self.assertNotIn("rst", up.conn(0).kinds())
        ok, n = self.cutoff.wait_fds_back_to(self.fd_baseline, LINGER / 2)
        self.assertTrue(ok, f"fds {n} != {self.fd_baseline} within half the linger_timeout")
        self.assertLess(time.monotonic() - t0, QUICK + LINGER / 2)

    @time_limit(10)
    def test_tunnel_closed_by_client_first(self):
        self.check_tunnel_close(client_first=True)

    @time_limit(10)
    def test_tunnel_closed_by_upstream_first(self):
        self.check_tunnel_close(client_first=False)

    @time_limit(10)
    def test_client_fin_right_after_connect_reaches_the_upstream(self):
        # The FIN arrives while cutoff is still connecting: it is passed on
        # once the tunnel is up, not held until tunnel_idle_timeout.
        up = self.raw_upstream(("park",))
        cl = self.client()
        cl.send(f"CONNECT 127.0.0.1:{up.port} HTTP/1.1\r\nHost: 127.0.0.1:{up.port}\r\n\r\n"
                .encode())
        cl.shutdown_write()
        t0 = time.monotonic()
        self.assertEqual(cl.read_response("CONNECT").status, 200)
        self.assertEqual(cl.wait_end(), "fin")
        self.assertTrue(up.wait_all_closed(1.0 * SCALE))
        self.assertEqual(up.conn(0).end, "fin", up.conn(0))
        self.assertLess(up.conn(0).end_time - t0, QUICK, "the FIN waited for a deadline")


    @time_limit(10)
    def test_client_fin_before_101_reaches_the_upstream(self):
        up = self.raw_upstream(("head", b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: echo\r\n"
                                        b"Connection: Upgrade\r\n\r\n", "park"))
        cl = self.client()
        cl.send(build_request("GET", self.url(up, "/ws"),
                              [("Upgrade", "echo"), ("Connection", "Upgrade")]))
        cl.shutdown_write()
        t0 = time.monotonic()
        self.assertEqual(cl.read_response().status, 101)
        self.assertEqual(cl.wait_end(), "fin")
        self.assertTrue(up.wait_all_closed(1.0 * SCALE))
        self.assertEqual(up.conn(0).end, "fin", up.conn(0))
        self.assertLess(up.conn(0).end_time - t0, QUICK, "the FIN waited for a deadline")

    @time_limit(10)
    def test_client_fin_inside_a_body_while_connecting_is_an_abort_at_once(self):
        # The body is parsed as it comes, even before the upstream is there:
        # a FIN inside it ends the exchange now, and nothing is sent on.
        fb = self.full_backlog()
        cl = self.client()
        cl.send(build_request("POST", f"http://127.0.0.1:{fb.port}/up",
                              [("Content-Length", "1000")]) + b"y" * 400)
        t0 = time.monotonic()
        cl.shutdown_write()
        self.assertEqual(cl.wait_end(), "fin")
        self.assertEqual(bytes(cl.buf), b"", "an aborted request gets no answer")
        self.assertLess(time.monotonic() - t0, QUICK, "the abort waited for connect_timeout")
        entry = self.cutoff.wait_access(target="/up")
        self.assertEqual(entry["outcome"], "client_abort", entry)

    @time_limit(15)
    def test_closing_connections_count_against_max_client_connections(self):
        up = self.upstream()
        c = self.dedicated_cutoff({"listen": {"max_client_connections": 2},
                                   "defaults": {"idle_timeout": "3s"},
                                   "admin": {"address": "127.0.0.1:0"}})
        size = 2 * 1024 * 1024
        readers = [SlowReader(c.addr) for _ in range(2)]
        for r in readers:
            self.addCleanup(r.close)
            r.send(build_request("GET", self.url(up, f"/ok?size={size}"),
                                 [("Connection", "close")]))
        # Both responses are complete on cutoff's side (logged); what is left
        # waits for clients that do not read: their connections are closing.
        c.wait_access(target=f"/ok?size={size}", count=2)
        conns = json.loads(admin_get(c, "/connections").body)["connections"]
        self.assertEqual(sorted(x["phase"] for x in conns), ["closing", "closing"], conns)
        extra = self.client(c)
        self.assertEqual(extra.wait_end(), "fin", "a third client was served over the cap")
        self.assertEqual(bytes(extra.buf), b"")
        for r in readers:
            r.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            r.close()
        deadline = time.monotonic() + 2 * SCALE
        while True:  # the reset connections leave; the cap admits again
            try:
                resp, _, _ = self.exchange("GET", self.url(up, "/ok"), cutoff=c)
                if resp.status == 200:
                    break
            except ConnectionEnded:
                pass  # still over the cap: closed at accept
            self.assertLess(time.monotonic(), deadline)


class DrainTest(CutoffTestCase):
    """Each test has its own cutoff, since each ends it."""

    NEEDS_CUTOFF = False
    TIME_LIMIT = 20.0

    @time_limit(30)
    def test_drain_with_tail_queued_to_slow_reader(self):
        up = self.upstream()
        c = self.dedicated_cutoff({"drain_timeout": "10s"})
        r = SlowReader(c.addr)
        self.addCleanup(r.close)
        r.send(build_request("GET", self.url(up, f"/ok?size={BIG}")))
        up.wait_for(lambda: up.connection_count() and up.conn(0).response_ends, 5 * SCALE)
        c.proc.send_signal(signal.SIGTERM)
        r.read_all(timeout=20)
        head, body = split_response(r.data)
        self.assertEqual(len(body), BIG)
        self.assertEqual(r.end, "fin")
        self.assertEqual(c.proc.wait(5 * SCALE), 0)

    @time_limit(10)
    def test_response_during_drain_says_connection_close(self):
        up = self.upstream()
        c = self.dedicated_cutoff({"drain_timeout": "2s"})
        cl = self.client(c)
        cl.request("GET", self.url(up, "/slow-head?delay=300"))
        up.wait_connections(1, 2 * SCALE)
        c.proc.send_signal(signal.SIGTERM)
        resp = cl.read_response()
        self.assertEqual(resp.status, 200, resp)
        self.assertTrue(resp.has_token("Connection", "close"), resp.headers)
        self.assertEqual(cl.wait_end(), "fin")
        self.assertEqual(c.proc.wait(5 * SCALE), 0)

    @time_limit(10)
    def test_drain_timeout_answers_end_with_fin(self):
        up = self.upstream()
        c = self.dedicated_cutoff({"drain_timeout": "400ms",
                                   "defaults": {"response_header_timeout": "5s"}})
        clients = [self.client(c) for _ in range(3)]
        for cl in clients:
            cl.request("GET", self.url(up, "/hang"))
        up.wait_connections(3, 2 * SCALE)
        c.proc.send_signal(signal.SIGTERM)
        for cl in clients:
            resp = cl.read_response()
            self.assertGenerated(resp, 504, "http_response_timeout")
            self.assertEqual(cl.wait_end(), "fin", "a drain_timeout answer must end with FIN")
        self.assertEqual(c.proc.wait(5 * SCALE), 0)


class ClientAclTest(CutoffTestCase):
    NEEDS_CUTOFF = False

    @time_limit(10)
    def test_client_outside_allow_clients_is_refused_at_accept(self):
        c = self.dedicated_cutoff({"listen": {"allow_clients": ["10.0.0.0/8"]}})
        cl = self.client(c)
        t0 = time.monotonic()
        # Nothing is sent: the refusal comes before any request.
        self.assertEqual(cl.wait_end(), "fin")
        self.assertEqual(bytes(cl.buf), b"")
        self.assertLess(time.monotonic() - t0, QUICK)

    @time_limit(15)
    def test_narrowed_allow_clients_applies_to_open_keepalive_connection(self):
        up = self.upstream()
        c = self.dedicated_cutoff({"listen": {"client_keepalive_timeout": "5s"}})
        cl = self.client(c)
        cl.request("GET", self.url(up, "/ok"))
        self.assertEqual(cl.read_response().status, 200)
        c.config["listen"]["allow_clients"] = ["10.0.0.0/8"]
        c.reload()
        deadline = time.monotonic() + 3 * SCALE
        # The worker takes the new config with its next exchange: this one.
        while True:
            cl.request("GET", self.url(up, "/ok"))
            resp = cl.read_response()
            if resp.status == 403:
                break
            self.assertEqual(resp.status, 200, resp)
            self.assertLess(time.monotonic(), deadline, "the reload never applied")
        self.assertGenerated(resp, 403, "http_request_denied")
        # Names the refused client and the setting that refused it.
        self.assertDetails(resp, also=["127.0.0.1", "listen.allow_clients"])
        self.assertEqual(cl.wait_end(), "fin")
        self.assertEqual(up.connection_count(), 1, "the refused request reached the upstream")


class PoolCapTest(CutoffTestCase):
    ROUTES = [{"name": "capped", "match": {"path_prefix": "/slow-head"},
               "max_idle_per_upstream": 2, "upstream_keepalive_timeout": "1s"}]

    @time_limit(15)
    def test_max_idle_per_upstream_caps_parked_connections(self):
        up = self.upstream()
        clients = [self.client() for _ in range(3)]
        for cl in clients:  # three at once: three upstream connections
            cl.request("GET", self.url(up, "/slow-head?delay=200"))
        for cl in clients:
            self.assertEqual(cl.read_response().status, 200)
        self.assertEqual(up.connection_count(), 3)
        # Parked one after another: the third parking closes the oldest.
        self.assertTrue(up.wait_for(lambda: any(r.finished for r in up.connections()),
                                    2 * SCALE), up.connections())
        # Two more requests, one after the other, take the two parked ones.
        for _ in range(2):
            resp, _, _ = self.exchange("GET", self.url(up, "/slow-head?delay=0"))
            self.assertEqual(resp.status, 200)
        self.assertEqual(up.connection_count(), 3, "a parked connection was not kept")
        self.assertEqual(sum(1 for r in up.connections() if r.finished), 1, up.connections())
