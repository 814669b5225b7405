#!/usr/bin/env python3
"""Soak cutoff with healthy and misbehaving traffic at once (bench/soak.sh runs it).

For --minutes, on 127.0.0.1 only, against one cutoff with two workers and
short deadlines:

- healthy clients: small GETs (keep-alive sessions and one-shot
  `Connection: close` requests) and larger downloads through a healthy
  upstream; each has a deadline (below) and must come back whole and in time;
- misbehaving traffic, one thread per kind (KINDS): upstreams that accept and
  never answer, drip one byte at a time, stall or reset mid-body; clients that
  read a big response slowly, stop reading, vanish, dawdle over their head or
  sit idle; CONNECT tunnels with round trips or idle; names the fake DNS server
  answers with 127.0.0.1 and names it never answers.

The processes (forked): the healthy upstream; the misbehaving servers (the
scripted upstream, a blackhole, an echo target for CONNECT, the fake DNS
server); the healthy clients; the misbehaving clients; and this one, which
runs cutoff, tails its access log, reads its RSS and descriptors from /proc
every second, prints a line per minute and ONE summary line at the end.

It fails (exit 1) when cutoff died or did not exit 0 on SIGTERM, when a
healthy request failed, was not logged `outcome=ok`, or took longer than its
deadline, when RSS grew by more than --rss-bound-kb between the end of the
warm-up and the end, or when descriptors grew: idle ones (before the traffic,
and after it once every deadline had fired) by more than --fd-bound, loaded
ones (median of ten samples) by more than --fd-load-bound.

A healthy request's deadline is what cutoff itself would allow a misbehaving
upstream before answering: connect_timeout + response_header_timeout for a
small GET, plus idle_timeout for a download.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import queue
import random
import re
import select
import shutil
import socket
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from pathlib import Path

# The harness scales durations by these; the soak's deadlines are absolute.
for _name in ("CUTOFF_TIME_SCALE", "CUTOFF_WORKERS", "CUTOFF_TIME_SLACK_MS"):
    os.environ.pop(_name, None)

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "integration"))

import fakedns  # noqa: E402
import fakenet  # noqa: E402
import fakeupstream  # noqa: E402
import harness  # noqa: E402

# ---------------------------------------------------------------------------
# Deadlines (milliseconds): short, so that many fire every minute.

CONNECT_MS = 300
RESPONSE_HEADER_MS = 500
IDLE_MS = 500
DNS_MS = 500
REQUEST_HEADER_MS = 500
CLIENT_KEEPALIVE_MS = 1000
TUNNEL_IDLE_MS = 1000
UPSTREAM_KEEPALIVE_MS = 1000
LINGER_MS = 500
DRIP_REQUEST_MS = 2000  # request_timeout of the route the drips take

HEALTHY_SMALL_DEADLINE = (CONNECT_MS + RESPONSE_HEADER_MS) / 1000
HEALTHY_DOWNLOAD_DEADLINE = (CONNECT_MS + RESPONSE_HEADER_MS + IDLE_MS) / 1000
SMALL_SIZES = (5, 200, 2048, 16384)
DOWNLOAD_SIZES = (262144, 1048576)

# How late a deadline may be seen by a client here: SPEC's max(50 ms, 5 %)
# plus scheduling slack for Python threads on shared cores.
SLACK = 0.3
DNS_NAMES = 64  # ok-N.soak.test answered, hang-N.soak.test swallowed

PATTERNS = {n: fakenet.pattern(n) for n in SMALL_SIZES + DOWNLOAD_SIZES}


def late_bound(deadline_ms: float) -> float:
    d = deadline_ms / 1000
    return d + max(0.05, 0.05 * d) + SLACK


def config(access_log: str, dns_address: str) -> dict:
    dur = lambda v: f"{v}ms"  # noqa: E731
    return {
        "workers": 2,
        "log_level": "info",
        "linger_timeout": dur(LINGER_MS),
        "drain_timeout": "2s",
        "listen": {
            "address": "127.0.0.1:0",
            "request_header_timeout": dur(REQUEST_HEADER_MS),
            "client_keepalive_timeout": dur(CLIENT_KEEPALIVE_MS),
            "connect_ports": ["*"],
        },
        "admin": {"address": "off"},
        "access_log": {"format": "text", "path": access_log},
        "dns": {"servers": [dns_address]},
        "defaults": {
            "dns_timeout": dur(DNS_MS),
            "connect_timeout": dur(CONNECT_MS),
            "response_header_timeout": dur(RESPONSE_HEADER_MS),
            "idle_timeout": dur(IDLE_MS),
            "upstream_keepalive_timeout": dur(UPSTREAM_KEEPALIVE_MS),
            "tunnel_idle_timeout": dur(TUNNEL_IDLE_MS),
            "teardown": "reset",
        },
    }


ROUTES = [
    # Only request_timeout ends a drip (a byte every 100 ms keeps idle_timeout away).
    {"name": "drip", "match": {"path_prefix": "/soak/drip/"},
     "request_timeout": f"{DRIP_REQUEST_MS}ms"},
    # Stalled bodies are torn down gracefully: FIN, then linger.
    {"name": "stall", "match": {"path_prefix": "/soak/stall/"}, "teardown": "graceful"},
]

# ---------------------------------------------------------------------------
# Servers


def forget_history(srv) -> None:
    """The fakes record every connection and request for tests to look at;
    over a soak that is a leak of our own. Drops what has ended."""
    with srv._cv:
        if hasattr(srv, "requests"):
            srv.requests.clear()
        srv._records[:] = [r for r in srv._records if not r.finished]
        for r in srv._records:
            r.requests.clear()
            r.response_ends.clear()
    srv._threads[:] = [t for t in srv._threads if t.is_alive()]
    srv._conns[:] = [c for c in srv._conns if c.open]


def run_servers(which: str, pipe, stop) -> None:
    servers = []
    ports = {}
    if which == "healthy":
        servers.append(fakeupstream.FakeUpstream(backlog=512).start())
        ports["healthy"] = servers[0].port
    else:
        up = fakeupstream.FakeUpstream(backlog=512).start()
        bh = fakenet.Blackhole().start()
        echo = fakenet.RawEchoServer().start()
        servers += [up, bh, echo]
        ports.update(bad=up.port, blackhole=bh.port, echo=echo.port)
    dns = None
    if which == "bad":
        dns = fakedns.FakeDns()
        for i in range(DNS_NAMES):
            dns.answer(f"ok-{i}.soak.test", "127.0.0.1")
            dns.swallow(f"hang-{i}.soak.test")
        dns.start()
        ports["dns"] = dns.address
    pipe.send(ports)
    try:
        while not stop.wait(2.0):
            for srv in servers:
                forget_history(srv)
            if dns is not None:
                with dns._lock:
                    dns.queries.clear()
    finally:
        for srv in servers:
            try:
                srv.stop()
            except RuntimeError as e:
                print(f"soak: {e}", file=sys.stderr)
        if dns is not None:
            dns.stop()


# ---------------------------------------------------------------------------
# Healthy clients


def healthy_get(cl, port: int, kind: str, size: int, close: bool):
    """One GET on an open client; returns (seconds, ok, detail)."""
    deadline = HEALTHY_SMALL_DEADLINE if kind == "small" else HEALTHY_DOWNLOAD_DEADLINE
    target = f"http://127.0.0.1:{port}/soak/healthy/{kind}/ok?size={size}"
    headers = [("Connection", "close")] if close else []
    t0 = time.monotonic()
    try:
        cl.request("GET", target, headers)
        resp = cl.read_response("GET", timeout=deadline + 2.0)
    except (OSError, TimeoutError, harness.ConnectionEnded) as e:
        return time.monotonic() - t0, False, f"{target}: {e!r}"
    dt = time.monotonic() - t0
    if resp.status != 200 or not resp.complete or resp.body != PATTERNS[size]:
        return dt, False, (f"{target}: status {resp.status}, complete={resp.complete}, "
                           f"{len(resp.body)} bytes, Proxy-Status {resp.header('Proxy-Status')}")
    if dt > deadline:
        return dt, False, f"{target}: {dt * 1000:.0f} ms, over its {deadline * 1000:.0f} ms deadline"
    return dt, True, ""


def healthy_loop(index: int, addr, port: int, stop, out) -> None:
    rng = random.Random(1000 + index)

    def report(kind, dt, ok, detail):
        out.put(("healthy", time.monotonic(), kind, dt, ok, detail))

    while not stop.is_set():
        r = rng.random()
        try:
            cl = harness.Client(addr, timeout=3.0)
        except OSError as e:
            report("small", 0.0, False, f"connect to cutoff: {e!r}")
            time.sleep(0.1)
            continue
        try:
            if r < 0.55:  # a keep-alive session of small GETs
                for _ in range(rng.randint(2, 10)):
                    dt, ok, detail = healthy_get(cl, port, "small", rng.choice(SMALL_SIZES), False)
                    report("small", dt, ok, detail)
                    if not ok or stop.is_set():
                        break
                    time.sleep(rng.uniform(0.005, 0.03))
            elif r < 0.92:  # one small GET, Connection: close
                report("small", *healthy_get(cl, port, "small", rng.choice(SMALL_SIZES), True))
            else:  # a download, keep-alive or not
                report("download", *healthy_get(cl, port, "download", rng.choice(DOWNLOAD_SIZES),
                                                rng.random() < 0.5))
        finally:
            cl.close()
        time.sleep(rng.uniform(0.005, 0.03))


# ---------------------------------------------------------------------------
# Misbehaving traffic: each kind returns (as expected?, detail).


def _proxy_status_error(resp) -> str:
    return resp.proxy_status.get("error", "")


def _expect_generated(resp, elapsed, status, error, deadline_ms):
    if resp.status != status or _proxy_status_error(resp) != error:
        return False, f"got {resp.status} {resp.header('Proxy-Status')}, wanted {status} {error}"
    if elapsed > late_bound(deadline_ms) + CONNECT_MS / 1000:
        return False, f"{error} after {elapsed * 1000:.0f} ms ({deadline_ms} ms deadline)"
    return True, ""


def k_blackhole(c):
    """An upstream that accepts and never answers: 504 after response_header_timeout."""
    cl = harness.Client(c.addr, timeout=5.0)
    try:
        t0 = time.monotonic()
        cl.request("GET", f"http://127.0.0.1:{c.ports['blackhole']}/soak/blackhole/x")
        resp = cl.read_response("GET", timeout=late_bound(RESPONSE_HEADER_MS) + 2)
        return _expect_generated(resp, time.monotonic() - t0, 504, "http_response_timeout",
                                 RESPONSE_HEADER_MS)
    finally:
        cl.close()


def _partial_then_reset(c, path, deadline_ms, what):
    cl = harness.Client(c.addr, timeout=5.0)
    try:
        t0 = time.monotonic()
        cl.request("GET", f"http://127.0.0.1:{c.ports['bad']}{path}")
        resp = cl.read_response("GET", timeout=late_bound(deadline_ms) + 3)
        elapsed = time.monotonic() - t0
        if resp.status != 200 or resp.complete or cl.end != "rst":
            return False, (f"{what}: status {resp.status}, complete={resp.complete}, "
                           f"end {cl.end}, wanted a partial 200 then RST")
        if deadline_ms and elapsed > late_bound(deadline_ms) + CONNECT_MS / 1000:
            return False, f"{what}: reset after {elapsed * 1000:.0f} ms ({deadline_ms} ms deadline)"
        return True, ""
    finally:
        cl.close()


def k_drip(c):
    """One byte every 100 ms: only the route's request_timeout ends it (RST)."""
    return _partial_then_reset(c, "/soak/drip/drip?interval=100&size=100000", DRIP_REQUEST_MS,
                               "drip")


def k_stall(c):
    """Part of the body, then silence: idle_timeout resets the client."""
    return _partial_then_reset(c, "/soak/stall/stall-mid-body?size=100000&sent=1000", IDLE_MS,
                               "stall")


def k_reset(c):
    """The upstream resets mid-body: the client is reset too."""
    return _partial_then_reset(c, "/soak/reset/reset-mid-body?size=100000&sent=5000&delay=50", 0,
                               "reset mid-body")


def _raw_get(c, path, rcvbuf):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.settimeout(5.0)
    s.connect(c.addr)
    port = c.ports["bad"]
    s.sendall(f"GET http://127.0.0.1:{port}{path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n"
              .encode())
    return s


def _read_head(s, deadline):
    buf = bytearray()
    while b"\r\n\r\n" not in buf:
        s.settimeout(max(0.01, deadline - time.monotonic()))
        data = s.recv(4096)
        if not data:
            raise ConnectionError("closed before the response head")
        buf += data
    i = buf.index(b"\r\n\r\n")
    return bytes(buf[:i]).decode("latin-1"), bytearray(buf[i + 4:])


def k_slow_reader(c):
    """Reads a 1 MiB response 8 KiB every 20 ms: it must get every byte."""
    size = 1048576
    s = _raw_get(c, f"/soak/slowread/ok?size={size}", 16384)
    try:
        deadline = time.monotonic() + 30
        head, body = _read_head(s, deadline)
        if not head.startswith("HTTP/1.1 200"):
            return False, f"slow reader: {head.splitlines()[0]!r}"
        while len(body) < size:
            if time.monotonic() > deadline:
                return False, f"slow reader: {len(body)} of {size} bytes after 30 s"
            time.sleep(0.02)
            s.settimeout(5.0)
            data = s.recv(8192)
            if not data:
                return False, f"slow reader: closed after {len(body)} of {size} bytes"
            body += data
        if bytes(body) != PATTERNS[size]:
            return False, "slow reader: body differs"
        return True, ""
    except (OSError, ConnectionError) as e:
        return False, f"slow reader: {e!r}"
    finally:
        s.close()


def k_stops_reading(c):
    """Asks for 16 MiB and stops reading after the head: idle_timeout resets it."""
    s = _raw_get(c, "/soak/noread/ok?size=16777216", 8192)
    try:
        t0 = time.monotonic()
        _read_head(s, t0 + 3)
        p = select.poll()
        p.register(s.fileno(), select.POLLRDHUP)
        events = p.poll((late_bound(IDLE_MS) + 3) * 1000)
        elapsed = time.monotonic() - t0
        if not events or not events[0][1] & (select.POLLHUP | select.POLLERR):
            return False, f"stops reading: no reset {elapsed * 1000:.0f} ms after the head"
        return True, ""
    except (OSError, ConnectionError) as e:
        return False, f"stops reading: {e!r}"
    finally:
        s.close()


def k_client_abort(c):
    """Waits on a hanging upstream, then vanishes (RST) before the response."""
    cl = harness.Client(c.addr, timeout=5.0)
    try:
        cl.request("GET", f"http://127.0.0.1:{c.ports['bad']}/soak/abort/hang")
        time.sleep(c.rng.uniform(0.05, 0.3))
        readable = select.select([cl.sock], [], [], 0)[0]
        return not readable, "client abort: an answer came before the abort" if readable else ""
    finally:
        cl.abort()


def _tunnel(c):
    cl = harness.Client(c.addr, timeout=5.0)
    port = c.ports["echo"]
    cl.send(f"CONNECT 127.0.0.1:{port} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
    resp = cl.read_response("CONNECT", timeout=3.0)
    if resp.status != 200:
        cl.close()
        raise ConnectionError(f"CONNECT answered {resp.status} {resp.header('Proxy-Status')}")
    return cl


def k_tunnel(c):
    """A working CONNECT tunnel: three round trips, then FIN both ways."""
    try:
        cl = _tunnel(c)
    except (OSError, ConnectionError, TimeoutError, harness.ConnectionEnded) as e:
        return False, f"tunnel: {e!r}"
    try:
        for i in range(3):
            data = fakenet.pattern(4096, offset=i * 7)
            cl.send(data)
            if cl.read_exactly(len(data), timeout=3.0) != data:
                return False, "tunnel: the echo differs"
        cl.shutdown_write()
        end = cl.wait_end(timeout=3.0)
        return end == "fin", "" if end == "fin" else f"tunnel: ended {end} after our FIN"
    except (OSError, TimeoutError, harness.ConnectionEnded) as e:
        return False, f"tunnel: {e!r}"
    finally:
        cl.close()


def k_tunnel_idle(c):
    """A CONNECT tunnel left idle after one round trip: tunnel_idle_timeout closes it."""
    try:
        cl = _tunnel(c)
    except (OSError, ConnectionError, TimeoutError, harness.ConnectionEnded) as e:
        return False, f"idle tunnel: {e!r}"
    try:
        cl.send(b"ping")
        cl.read_exactly(4, timeout=3.0)
        t0 = time.monotonic()
        end = cl.wait_end(timeout=late_bound(TUNNEL_IDLE_MS) + 2)
        elapsed = time.monotonic() - t0
        if end == "open" or elapsed > late_bound(TUNNEL_IDLE_MS):
            return False, f"idle tunnel: {end} after {elapsed * 1000:.0f} ms"
        return True, ""
    except (OSError, TimeoutError, harness.ConnectionEnded) as e:
        return False, f"idle tunnel: {e!r}"
    finally:
        cl.close()


def k_dns_hang(c):
    """A name the DNS server never answers: 504 dns_timeout."""
    cl = harness.Client(c.addr, timeout=5.0)
    try:
        name = f"hang-{c.rng.randrange(DNS_NAMES)}.soak.test"
        t0 = time.monotonic()
        cl.request("GET", f"http://{name}:{c.ports['bad']}/soak/dnshang/ok")
        resp = cl.read_response("GET", timeout=late_bound(DNS_MS) + 2)
        return _expect_generated(resp, time.monotonic() - t0, 504, "dns_timeout", DNS_MS)
    finally:
        cl.close()


def k_dns_ok(c):
    """A name the DNS server answers with 127.0.0.1: a normal 200."""
    cl = harness.Client(c.addr, timeout=5.0)
    try:
        name = f"ok-{c.rng.randrange(DNS_NAMES)}.soak.test"
        cl.request("GET", f"http://{name}:{c.ports['bad']}/soak/dnsok/ok?size=200")
        resp = cl.read_response("GET", timeout=3.0)
        if resp.status != 200 or resp.body != PATTERNS[200]:
            return False, f"dns ok: {resp.status} {resp.header('Proxy-Status')}"
        return True, ""
    finally:
        cl.close()


def k_idle_client(c):
    """One GET, then an idle keep-alive connection: client_keepalive_timeout closes it."""
    cl = harness.Client(c.addr, timeout=5.0)
    try:
        cl.request("GET", f"http://127.0.0.1:{c.ports['bad']}/soak/idle/ok?size=200")
        resp = cl.read_response("GET", timeout=3.0)
        if resp.status != 200:
            return False, f"idle client: {resp.status} {resp.header('Proxy-Status')}"
        t0 = time.monotonic()
        end = cl.wait_end(timeout=late_bound(CLIENT_KEEPALIVE_MS) + 2)
        elapsed = time.monotonic() - t0
        if end != "fin" or elapsed > late_bound(CLIENT_KEEPALIVE_MS):
            return False, f"idle client: {end} after {elapsed * 1000:.0f} ms"
        return True, ""
    finally:
        cl.close()


def k_slow_head(c):
    """Sends its head a byte every 50 ms: 408 after request_header_timeout."""
    cl = harness.Client(c.addr, timeout=5.0)
    try:
        port = c.ports["bad"]
        head = (f"GET http://127.0.0.1:{port}/soak/slowhead/ok HTTP/1.1\r\n"
                f"Host: 127.0.0.1:{port}\r\n\r\n").encode()
        t0 = time.monotonic()
        for i in range(len(head)):
            try:
                cl.sock.send(head[i:i + 1])
            except OSError:
                break  # cutoff closed (after its 408): read what it sent
            if select.select([cl.sock], [], [], 0.05)[0]:
                break
        resp = cl.read_response("GET", timeout=3.0)
        elapsed = time.monotonic() - t0
        if resp.status != 408:
            return False, f"slow head: {resp.status}, wanted 408"
        if elapsed > late_bound(REQUEST_HEADER_MS):
            return False, f"slow head: 408 after {elapsed * 1000:.0f} ms"
        return True, ""
    finally:
        cl.close()


# kind: (function, threads)
KINDS = {
    "blackhole": (k_blackhole, 2),
    "drip": (k_drip, 2),
    "stall": (k_stall, 1),
    "reset_mid_body": (k_reset, 1),
    "slow_reader": (k_slow_reader, 1),
    "stops_reading": (k_stops_reading, 1),
    "client_abort": (k_client_abort, 1),
    "tunnel": (k_tunnel, 1),
    "tunnel_idle": (k_tunnel_idle, 1),
    "dns_hang": (k_dns_hang, 2),
    "dns_ok": (k_dns_ok, 1),
    "idle_client": (k_idle_client, 1),
    "slow_head": (k_slow_head, 1),
}


class KindContext:
    def __init__(self, addr, ports, seed):
        self.addr, self.ports, self.rng = addr, ports, random.Random(seed)


def bad_loop(kind: str, index: int, addr, ports, stop, out) -> None:
    fn = KINDS[kind][0]
    c = KindContext(addr, ports, f"{kind}-{index}")
    while not stop.is_set():
        try:
            ok, detail = fn(c)
        except (OSError, TimeoutError, ConnectionError, harness.ConnectionEnded) as e:
            ok, detail = False, f"{kind}: {e!r}"
        out.put(("bad", time.monotonic(), kind, ok, detail))
        time.sleep(c.rng.uniform(0.02, 0.15))


def run_clients(which: str, addr, ports, count: int, stop, out) -> None:
    threads = []
    if which == "healthy":
        for i in range(count):
            threads.append(threading.Thread(target=healthy_loop,
                                            args=(i, addr, ports["healthy"], stop, out)))
    else:
        for kind, (_, n) in KINDS.items():
            for i in range(n):
                threads.append(threading.Thread(target=bad_loop,
                                                args=(kind, i, addr, ports, stop, out)))
    for t in threads:
        t.daemon = True
        t.start()
    for t in threads:
        t.join()


# ---------------------------------------------------------------------------
# Watching cutoff


def proc_sample(pid: int):
    """(RSS in KiB, open descriptors) of a live process."""
    rss = 0
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
                break
    return rss, len(os.listdir(f"/proc/{pid}/fd"))


def percentile(values, p):
    s = sorted(values)
    return s[max(0, -(-len(s) * p // 100) - 1)]


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f}"


class AccessTail:
    """Reads the access log as cutoff flushes it; counts outcomes and checks
    every healthy exchange (outcome ok, total_ms within its deadline)."""

    HEALTHY = re.compile(r"/soak/healthy/(small|download)/")

    def __init__(self, path: str):
        self.path = path
        self.offset = 0
        self.rest = b""
        self.outcomes = Counter()
        self.total = 0
        self.unparsed = 0
        self.healthy = 0
        self.healthy_bad: list[str] = []
        self.healthy_bad_count = 0

    def poll(self) -> int:
        try:
            with open(self.path, "rb") as f:
                f.seek(self.offset)
                data = f.read()
        except FileNotFoundError:
            return 0
        self.offset += len(data)
        lines = (self.rest + data).split(b"\n")
        self.rest = lines.pop()
        for raw in lines:
            self.line(raw.decode("utf-8", "replace"))
        return len(lines)

    def line(self, text: str) -> None:
        e = harness.parse_access_line(text)
        if e is None:
            self.unparsed += 1
            return
        self.total += 1
        self.outcomes[e.get("outcome", "-")] += 1
        m = self.HEALTHY.search(e["target"])
        if not m:
            return
        self.healthy += 1
        deadline = HEALTHY_SMALL_DEADLINE if m.group(1) == "small" else HEALTHY_DOWNLOAD_DEADLINE
        total_ms = e.get("total_ms", "")
        if (e.get("outcome") != "ok" or e.get("status") != "200" or not total_ms.isdigit()
                or int(total_ms) > deadline * 1000):
            self.healthy_bad_count += 1
            if len(self.healthy_bad) < 5:
                self.healthy_bad.append(text)


class Minute:
    def __init__(self):
        self.small = []
        self.download = []
        self.healthy_failed = 0
        self.bad = 0
        self.requests = 0
        self.samples = []  # (rss, fds)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--binary", required=True, help="the cutoff binary (a Release build)")
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--warmup", type=float, default=None,
                    help="seconds before the start values are taken (default: a tenth of "
                         "the run, 10 to 60 s)")
    ap.add_argument("--healthy-clients", type=int, default=3)
    ap.add_argument("--rss-bound-kb", type=int, default=2048)
    ap.add_argument("--fd-bound", type=int, default=0)
    ap.add_argument("--fd-load-bound", type=int, default=32)
    ap.add_argument("--keep", action="store_true", help="keep the work directory (logs)")
    args = ap.parse_args()

    total_s = args.minutes * 60
    warmup = args.warmup if args.warmup is not None else min(60.0, max(10.0, total_s / 10))
    if warmup + 15 > total_s:
        ap.error("the run must be at least 15 s longer than the warm-up")
    work = tempfile.mkdtemp(prefix="cutoff-soak-")
    access_path = os.path.join(work, "access.log")
    ctx = mp.get_context("fork")
    started = time.strftime("%Y-%m-%dT%H:%MZ", time.gmtime())

    stop_servers = ctx.Event()
    stop_clients = ctx.Event()
    results = ctx.Queue()
    procs = []

    def spawn(name, target, *a):
        p = ctx.Process(target=target, args=a, name=name, daemon=True)
        p.start()
        procs.append(p)
        return p

    ports = {}
    for which in ("healthy", "bad"):
        here, there = ctx.Pipe()
        spawn(f"{which}-servers", run_servers, which, there, stop_servers)
        if not here.poll(10):
            print(f"soak: the {which} servers did not start", file=sys.stderr)
            return 2
        ports.update(here.recv())

    cut = harness.Cutoff(config(access_path, ports["dns"]), ROUTES, binary=args.binary)
    cut.dir = work
    failures = []
    died = None
    minutes: dict[int, Minute] = defaultdict(Minute)
    healthy_fail_details = []
    healthy_max = {"small": 0.0, "download": 0.0}
    healthy_n = 0
    bad_counts = Counter()
    bad_fail = Counter()
    bad_fail_details = defaultdict(list)
    tail = AccessTail(access_path)
    loaded = []  # (t, rss, fds) once warm
    try:
        cut.start()
        pid = cut.pid
        time.sleep(0.5)
        idle_before = cut.settled_fd_count()
        rss_idle_before = proc_sample(pid)[0]
        print(f"soak: cutoff pid {pid} on {cut.addr[0]}:{cut.addr[1]}, 2 workers; "
              f"{args.minutes:g} min, warm-up {warmup:g} s; idle fds {idle_before}, "
              f"rss {rss_idle_before} KiB; work dir {work}", flush=True)

        t0 = time.monotonic()
        last_minute = max(0, -(-int(total_s) // 60) - 1)

        def minute_of(t):
            return minutes[min(max(0, int((t - t0) // 60)), last_minute)]

        spawn("healthy-clients", run_clients, "healthy", cut.addr, ports, args.healthy_clients,
              stop_clients, results)
        spawn("bad-clients", run_clients, "bad", cut.addr, ports, 0, stop_clients, results)

        def drain(deadline):
            nonlocal healthy_n
            while time.monotonic() < deadline:
                try:
                    item = results.get(timeout=max(0.0, min(0.05, deadline - time.monotonic())))
                except queue.Empty:
                    return
                minute = minute_of(item[1])
                if item[0] == "healthy":
                    _, _, kind, dt, ok, detail = item
                    healthy_n += 1
                    (minute.small if kind == "small" else minute.download).append(dt)
                    healthy_max[kind] = max(healthy_max[kind], dt)
                    if not ok:
                        minute.healthy_failed += 1
                        if len(healthy_fail_details) < 5:
                            healthy_fail_details.append(detail)
                else:
                    _, _, kind, ok, detail = item
                    minute.bad += 1
                    bad_counts[kind] += 1
                    if not ok:
                        bad_fail[kind] += 1
                        if len(bad_fail_details[kind]) < 3:
                            bad_fail_details[kind].append(detail)

        def minute_line(i):
            m = minutes[i]
            rss, fds = m.samples[-1] if m.samples else (0, 0)
            p50 = ms(percentile(m.small, 50)) if m.small else "-"
            p99 = ms(percentile(m.small, 99)) if m.small else "-"
            dl = ms(max(m.download)) if m.download else "-"
            print(f"soak: minute {i + 1}: healthy={len(m.small) + len(m.download)} "
                  f"failed={m.healthy_failed} p50_ms={p50} p99_ms={p99} download_max_ms={dl} "
                  f"misbehaving={m.bad} logged={m.requests} rss_kb={rss} fds={fds} "
                  f"fds_max={max((s[1] for s in m.samples), default=0)}", flush=True)

        end = t0 + total_s
        next_tick = t0
        printed = 0
        while True:
            now = time.monotonic()
            if now >= end:
                break
            drain(min(end, next_tick))
            if time.monotonic() < next_tick:
                continue
            next_tick += 1.0
            idx = min(int((time.monotonic() - t0) // 60), last_minute)
            minutes[idx].requests += tail.poll()
            if not cut.alive():
                died = cut.proc.returncode
                break
            rss, fds = proc_sample(pid)
            minutes[idx].samples.append((rss, fds))
            if time.monotonic() - t0 >= warmup:
                loaded.append((time.monotonic(), rss, fds))
            while printed < idx:
                minute_line(printed)
                printed += 1

        # Stop the traffic; everything in flight ends at its deadline.
        stop_clients.set()
        stop_by = time.monotonic() + 30
        for p in procs[2:]:
            while p.is_alive() and time.monotonic() < stop_by:
                drain(time.monotonic() + 0.2)
                p.join(0.01)
            if p.is_alive():
                failures.append(f"{p.name} did not stop")
                p.terminate()
        drain(time.monotonic() + 0.5)
        if died is None and not cut.alive():
            died = cut.proc.returncode
        if died is None:
            minutes[last_minute].requests += tail.poll()
            while printed < len(minutes):
                minute_line(printed)
                printed += 1
            # Idle again: pooled upstreams expire, lingering closes end.
            settle_by = time.monotonic() + 15
            while True:
                idle_after = cut.fd_count()
                if idle_after <= idle_before or time.monotonic() > settle_by:
                    break
                time.sleep(0.2)
            rss_idle_after = proc_sample(pid)[0]
            fd_list = cut.fds() if idle_after > idle_before + args.fd_bound else []
            rc = cut.stop()
            if rc != 0:
                failures.append(f"cutoff exited {rc} on SIGTERM")
        else:
            failures.append(f"cutoff died (exit {died})")
            while printed < len(minutes):
                minute_line(printed)
                printed += 1
            cut.stop()
            idle_after, rss_idle_after, fd_list = None, None, []
        tail.poll()
        if tail.rest:
            tail.line(tail.rest.decode("utf-8", "replace"))
            tail.rest = b""
    finally:
        stop_clients.set()
        stop_servers.set()
        if cut.proc is not None:
            cut.stop()
        for p in procs:
            p.join(10)
            if p.is_alive():
                p.terminate()

    # -- verdict ---------------------------------------------------------
    if len(loaded) < 20:
        failures.append("too few samples after the warm-up")
        loaded = loaded or [(0, 0, 0)]
    start_rss = statistics.median(s[1] for s in loaded[:10])
    end_rss = statistics.median(s[1] for s in loaded[-10:])
    start_fds = statistics.median(s[2] for s in loaded[:10])
    end_fds = statistics.median(s[2] for s in loaded[-10:])
    if end_rss - start_rss > args.rss_bound_kb:
        failures.append(f"RSS grew by {end_rss - start_rss:.0f} KiB after the warm-up "
                        f"(bound {args.rss_bound_kb})")
    if end_fds - start_fds > args.fd_load_bound:
        failures.append(f"loaded fds grew from {start_fds:.0f} to {end_fds:.0f} "
                        f"(bound +{args.fd_load_bound})")
    if idle_after is not None and idle_after > idle_before + args.fd_bound:
        failures.append(f"idle fds {idle_before} before, {idle_after} after the traffic "
                        f"(bound +{args.fd_bound})")
    healthy_failed = sum(m.healthy_failed for m in minutes.values())
    if healthy_failed:
        failures.append(f"{healthy_failed} healthy requests failed or missed their deadline")
    if tail.healthy_bad_count:
        failures.append(f"{tail.healthy_bad_count} healthy exchanges logged late or not ok")
    stderr = Path(cut.stderr_path).read_text(errors="replace") if cut.stderr_path else ""
    # cutoff's stderr lines: "TIME LEVEL message".
    warnings = [line for line in stderr.splitlines()
                if line.split(" ", 2)[1:2] in (["warning"], ["error"], ["critical"])]
    report = harness.SANITIZER_RE.search(stderr)
    if report:
        failures.append(f"sanitizer report: {report.group(0)}")

    for detail in healthy_fail_details:
        print(f"soak: healthy failure: {detail}", file=sys.stderr)
    for line in tail.healthy_bad:
        print(f"soak: healthy exchange logged: {line}", file=sys.stderr)
    for kind, details in bad_fail_details.items():
        for detail in details:
            print(f"soak: unexpected ({kind}): {detail}", file=sys.stderr)
    for line in warnings[:10]:
        print(f"soak: cutoff stderr: {line}", file=sys.stderr)
    for line in fd_list:
        print(f"soak: fd left open: {line}", file=sys.stderr)
    for f in failures:
        print(f"soak: FAIL: {f}", file=sys.stderr)

    per_minute = ",".join(
        f"{ms(percentile(m.small, 50))}/{ms(percentile(m.small, 99))}" if m.small else "-/-"
        for _, m in sorted(minutes.items()))
    outcomes = ",".join(f"{k}={v}" for k, v in tail.outcomes.most_common())
    unexpected = ",".join(f"{k}={v}/{bad_counts[k]}" for k, v in sorted(bad_fail.items())) or "0"
    print(f"soak summary: date={started} minutes={args.minutes:g} workers=2 "
          f"requests={tail.total} outcomes={{{outcomes}}} "
          f"healthy={healthy_n} healthy_failed={healthy_failed} "
          f"healthy_max_ms=small:{ms(healthy_max['small'])},download:{ms(healthy_max['download'])} "
          f"healthy_p50/p99_ms_per_minute=[{per_minute}] "
          f"misbehaving={sum(bad_counts.values())} unexpected={unexpected} "
          f"rss_kb={start_rss:.0f}->{end_rss:.0f} fds={start_fds:.0f}->{end_fds:.0f} "
          f"idle_fds={idle_before}->{idle_after if idle_after is not None else '-'} "
          f"stderr_warnings={len(warnings)} "
          f"cutoff={'died' if died is not None else 'ok'} "
          f"result={'FAIL' if failures else 'PASS'}", flush=True)
    if failures or args.keep:
        print(f"soak: logs kept in {work}", file=sys.stderr)
    else:
        shutil.rmtree(work, ignore_errors=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
