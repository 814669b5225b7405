#!/usr/bin/env python3
"""Load generator and report of https.sh.

  https.py load NAME --mode MODE --origin-port P [--proxy-port P] [--pid PID]
                [--cafile F]... [--fresh] [--procs N] [--warmup S] [--duration S]
      PROCS processes, each with one connection at a time to 127.0.0.1,
      sending GET /file of the origin and reading the whole answer before the
      next. MODE says how a connection is made:
        http     absolute-form GETs of http://127.0.0.1:P/file to the proxy;
        connect  CONNECT 127.0.0.1:P through the proxy, then TLS (whoever
                 answers: cutoff intercepting, or the origin through a tunnel)
                 and origin-form GETs inside;
        direct   TLS straight to the origin.
      Keep-alive by default; --fresh makes a new connection (CONNECT and TLS
      handshake included) for each request, which says Connection: close.
      Every answer must be a 200 with the 100-byte body; anything else is an
      error (and a new connection). After WARMUP seconds of the same traffic,
      the answers are counted for DURATION seconds, and the CPU time the
      proxy spent meanwhile (utime and stime of /proc/PID/stat, all its
      threads). Prints one tab-separated line: NAME, requests, errors, wall
      seconds, user and system seconds of PID (- without a PID).
  https.py report FILE [--target NAME [--limit X]]
      the lines of `load` as a Markdown table, a row per scenario (its lines
      of every round summed), with ratios to the first scenario; with --target,
      whether that scenario's CPU per request is at most X (2) times the
      first's, over all rounds and by round. Exit 1 when a request failed.
"""

import argparse
import multiprocessing
import os
import socket
import ssl
import sys
import time

BODY = b"x" * 100


class Failed(Exception):
    pass


def read_answer(sock):
    """Reads one response; True when it is a 200 with BODY."""
    data = b""
    while True:
        end = data.find(b"\r\n\r\n")
        if end >= 0:
            break
        chunk = sock.recv(65536)
        if not chunk:
            raise Failed("closed before the head")
        data += chunk
    head = data[:end].lower()
    at = head.find(b"\r\ncontent-length:")
    if at < 0:
        raise Failed("no content-length")
    eol = head.find(b"\r\n", at + 2)
    length = int(head[at + 17:eol if eol >= 0 else len(head)])
    body = data[end + 4:]
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            raise Failed("closed inside the body")
        body += chunk
    return head.startswith(b"http/1.1 200 ") and body == BODY


class Client:
    def __init__(self, args):
        self.args = args
        origin = f"127.0.0.1:{args.origin_port}"
        close = "Connection: close\r\n" if args.fresh else ""
        target = f"http://{origin}/file" if args.mode == "http" else "/file"
        self.request = f"GET {target} HTTP/1.1\r\nHost: {origin}\r\n{close}\r\n".encode()
        self.connect = f"CONNECT {origin} HTTP/1.1\r\nHost: {origin}\r\n\r\n".encode()
        self.tls = None
        if args.mode != "http":
            self.tls = ssl.create_default_context()
            for cafile in args.cafile:
                self.tls.load_verify_locations(cafile)
            self.tls.set_alpn_protocols(["http/1.1"])
        self.sock = None

    def open(self):
        a = self.args
        port = a.origin_port if a.mode == "direct" else a.proxy_port
        sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if a.mode == "connect":
            sock.sendall(self.connect)
            head = b""
            while b"\r\n\r\n" not in head:
                chunk = sock.recv(4096)
                if not chunk:
                    raise Failed("CONNECT closed")
                head += chunk
            if not head.startswith(b"HTTP/1.1 200 "):
                raise Failed("CONNECT refused: " + head.split(b"\r\n", 1)[0].decode(errors="replace"))
        if self.tls is not None:
            sock = self.tls.wrap_socket(sock, server_hostname="127.0.0.1")
        return sock

    def close(self):
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def exchange(self):
        """One request; True when its answer is whole and right."""
        try:
            if self.sock is None:
                self.sock = self.open()
            self.sock.sendall(self.request)
            good = read_answer(self.sock)
        except (OSError, ValueError, Failed):
            good = False
        if not good or self.args.fresh:
            self.close()
        return good


def worker(args, start, barrier, results):
    client = Client(args)
    while time.monotonic() < start + args.warmup:
        client.exchange()
    barrier.wait()
    end = time.monotonic() + args.duration
    requests = errors = 0
    while time.monotonic() < end:
        if client.exchange():
            requests += 1
        else:
            errors += 1
    barrier.wait()
    client.close()
    results.put((requests, errors))


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tick, int(fields[12]) / tick


def load(args):
    mp = multiprocessing.get_context("fork")
    barrier = mp.Barrier(args.procs + 1, timeout=args.warmup + args.duration + 60)
    results = mp.Queue()
    start = time.monotonic()
    procs = [mp.Process(target=worker, args=(args, start, barrier, results)) for _ in range(args.procs)]
    for p in procs:
        p.start()
    barrier.wait()
    cpu0, t0 = cpu_seconds(args.pid) if args.pid else None, time.monotonic()
    barrier.wait()
    cpu1, t1 = cpu_seconds(args.pid) if args.pid else None, time.monotonic()
    counts = [results.get(timeout=60) for _ in procs]
    for p in procs:
        p.join()
    requests = sum(c[0] for c in counts)
    errors = sum(c[1] for c in counts)
    user = f"{cpu1[0] - cpu0[0]:.2f}" if args.pid else "-"
    system = f"{cpu1[1] - cpu0[1]:.2f}" if args.pid else "-"
    print(f"{args.name}\t{requests}\t{errors}\t{t1 - t0:.3f}\t{user}\t{system}")
    return 0


def figures(rounds):
    """Requests/s, errors and cutoff's CPU per request (µs) over rounds."""
    requests = sum(r["requests"] for r in rounds)
    seconds = sum(r["seconds"] for r in rounds)
    row = {"errors": sum(r["errors"] for r in rounds), "rps": requests / seconds}
    if rounds[0]["user"] is not None:
        user = sum(r["user"] for r in rounds)
        system = sum(r["system"] for r in rounds)
        n = max(requests, 1)
        row.update(cpu=(user + system) * 1e6 / n, user=user * 1e6 / n, system=system * 1e6 / n,
                   load=(user + system) / seconds * 100)
    return row


def report(args):
    rounds = {}  # scenario -> its lines, one per round, in order
    with open(args.file) as f:
        for line in f:
            name, requests, errors, seconds, user, system = line.rstrip("\n").split("\t")
            rounds.setdefault(name, []).append({
                "requests": int(requests), "errors": int(errors), "seconds": float(seconds),
                "user": None if user == "-" else float(user),
                "system": None if system == "-" else float(system)})
    rows = [dict(figures(r), name=name) for name, r in rounds.items()]
    base = rows[0]

    def cell(row, key, fmt):
        if key not in row:
            return "-"
        text = fmt.format(row[key])
        if row is not base and base.get(key):
            text += f" ({row[key] / base[key]:.2f}x)"
        return text

    print("| scenario | requests/s | cutoff CPU µs/request | user | system | cutoff CPU % | errors |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for row in rows:
        print(f"| {row['name']} | {cell(row, 'rps', '{:,.0f}')} | {cell(row, 'cpu', '{:.1f}')} | "
              f"{cell(row, 'user', '{:.1f}')} | {cell(row, 'system', '{:.1f}')} | "
              f"{'-' if 'load' not in row else format(row['load'], '.0f')} | {row['errors']} |")
    if args.target:
        row = next(r for r in rows if r["name"] == args.target)
        ratio = row["cpu"] / base["cpu"]
        print()
        each = [figures([t])["cpu"] / figures([b])["cpu"]
                for t, b in zip(rounds[args.target], rounds[base["name"]])]
        print(f"{args.target}: {ratio:.2f}x the cutoff CPU per request of {base['name']} "
              f"(user {row['user'] / base['user']:.2f}x, system {row['system'] / base['system']:.2f}x; "
              f"by round {', '.join(f'{x:.2f}x' for x in each)}); "
              f"target at most {args.limit:g}x: {'met' if ratio <= args.limit else 'NOT met'}")
    errors = sum(r["errors"] for r in rows)
    if errors:
        print(f"https: {errors} requests failed", file=sys.stderr)
        return 1
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True)
    c = sub.add_parser("load")
    c.add_argument("name")
    c.add_argument("--mode", choices=["http", "connect", "direct"], required=True)
    c.add_argument("--origin-port", type=int, required=True)
    c.add_argument("--proxy-port", type=int)
    c.add_argument("--pid", type=int, help="the proxy, whose CPU time is measured")
    c.add_argument("--cafile", action="append", default=[], help="a CA to trust (repeatable)")
    c.add_argument("--fresh", action="store_true", help="a new connection per request")
    c.add_argument("--procs", type=int, default=4)
    c.add_argument("--warmup", type=float, default=1.0)
    c.add_argument("--duration", type=float, default=8.0)
    r = sub.add_parser("report")
    r.add_argument("file")
    r.add_argument("--target", help="the scenario whose CPU per request is held to --limit times the first's")
    r.add_argument("--limit", type=float, default=2.0)
    args = ap.parse_args()
    return load(args) if args.command == "load" else report(args)


if __name__ == "__main__":
    sys.exit(main())
