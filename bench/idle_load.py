#!/usr/bin/env python3
"""Latency of busy clients while cutoff holds many idle ones.

  bench/idle_load.py [CUTOFF_BINARY] [--idle N] [--conns N] [--duration S]
                     [--rounds N]

The target: with 10,000 idle keep-alive client connections open, 50 active
ones keep their p99 latency within 1.5 times the p99 they have without them.

On 127.0.0.1 only: one nginx process serving a 100-byte file
(bench/nginx.conf), and one cutoff (default build/cutoff, a Release build:
./build.sh build) with bench/cutoff.toml (workers = 1), its
max_client_connections raised above IDLE + CONNS and its
client_keepalive_timeout to 10 minutes, so that no idle connection is closed
while it is measured. The load is run.sh's: wrk, one thread, CONNS keep-alive
connections sending absolute-form GETs of the file through cutoff
(bench/proxy.lua), as fast as the answers come, for DURATION seconds; its
RESULT line gives p50 and p99.

Each round runs the load without idle connections, then with IDLE of them
(or the other way round in every other round, so that a drift of the
machine's pace falls on both): before the loaded run, IDLE connections are
opened to cutoff, each sends one keep-alive GET and reads the answer (as
idle_conns.py does), and all must still be open after the run. They are
closed before the next run without them, once cutoff's descriptors are back
to their count before. The p99 of each kind is the median of its rounds'.

Prints a line per run, then
  RESULT p99_without_us=... p99_with_us=... ratio=... idle=... conns=... rounds=...
and exits 1 if a run had errors or an idle connection was closed.
Needs nginx, wrk and python3; raises its own descriptor limit to the hard
limit (cutoff inherits it), which must allow IDLE + CONNS + a few hundred.
"""

import argparse
import os
import re
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from idle_conns import read_response, rss_kib, still_open  # noqa: E402


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, seconds=10.0):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"idle_load: nothing listens on port {port}")


def fd_count(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def wait_fds(pid, at_most, seconds=30.0):
    deadline = time.monotonic() + seconds
    while fd_count(pid) > at_most:
        if time.monotonic() > deadline:
            raise SystemExit(f"idle_load: cutoff still has {fd_count(pid)} descriptors "
                             f"(at most {at_most} expected)")
        time.sleep(0.05)


def render(template, out, **values):
    with open(template) as f:
        text = f.read()
    for key, value in values.items():
        text = text.replace(f"@{key}@", str(value))
    with open(out, "w") as f:
        f.write(text)


def cutoff_config(out, port, max_clients):
    render(os.path.join(HERE, "cutoff.toml"), out, PROXY_PORT=port)
    with open(out) as f:
        text = f.read()
    # Into the [listen] table the template already has.
    listen = f'address = "127.0.0.1:{port}"\n'
    assert listen in text, "bench/cutoff.toml has no [listen] address line"
    text = text.replace(listen, listen + f"max_client_connections = {max_clients}\n"
                        'client_keepalive_timeout = "10m"\n')
    with open(out, "w") as f:
        f.write(text)


def open_idle(port, count, request):
    socks = []
    for _ in range(count):
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        s.sendall(request)
        if not read_response(s):
            raise SystemExit("idle_load: an idle connection was closed before its answer")
        socks.append(s)
    return socks


def load(port, url, conns, duration):
    """One wrk run; its RESULT line as a dict of ints."""
    out = subprocess.run(
        ["wrk", "-t1", f"-c{conns}", f"-d{duration}s", "--timeout", "5s",
         "-s", os.path.join(HERE, "proxy.lua"), f"http://127.0.0.1:{port}/"],
        env=dict(os.environ, TARGET_URL=url), capture_output=True, text=True, check=True).stdout
    line = next((l for l in out.splitlines() if l.startswith("RESULT ")), None)
    if line is None:
        raise SystemExit(f"idle_load: no RESULT line from wrk:\n{out}")
    return {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", line)}


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("cutoff", nargs="?", default=os.path.join(os.path.dirname(HERE), "build",
                                                              "cutoff"))
    ap.add_argument("--idle", type=int, default=10000, help="idle connections (10000)")
    ap.add_argument("--conns", type=int, default=50, help="active connections (50)")
    ap.add_argument("--duration", type=int, default=10, help="seconds per loaded run (10)")
    ap.add_argument("--rounds", type=int, default=3, help="runs of each kind (3)")
    args = ap.parse_args()

    for tool in ("nginx", "wrk"):
        if shutil.which(tool) is None:
            raise SystemExit(f"idle_load: {tool} missing (apt-get install nginx wrk)")
    if not os.access(args.cutoff, os.X_OK):
        raise SystemExit(f"idle_load: no cutoff binary at {args.cutoff} (./build.sh build)")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = args.idle + args.conns + 256
    if hard != resource.RLIM_INFINITY and hard < need:
        raise SystemExit(f"idle_load: the descriptor limit ({hard}) is below {need}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

    work = tempfile.mkdtemp(prefix="cutoff-idle-load.")
    os.chmod(work, 0o755)
    procs = []
    try:
        os.makedirs(os.path.join(work, "www"))
        os.makedirs(os.path.join(work, "nginx-tmp"))
        os.makedirs(os.path.join(work, "servers"))
        with open(os.path.join(work, "www", "file"), "w") as f:
            f.write("x" * 100)
        backend = free_port()
        render(os.path.join(HERE, "nginx.conf"), os.path.join(work, "nginx.conf"), DIR=work,
               BACKEND_PORT=backend)
        procs.append(subprocess.Popen(["nginx", "-c", os.path.join(work, "nginx.conf"),
                                       "-e", os.path.join(work, "nginx-error.log")]))
        wait_port(backend)
        port = free_port()
        cutoff_config(os.path.join(work, "cutoff.toml"), port, args.idle + args.conns + 100)
        with open(os.path.join(work, "cutoff.stderr"), "w") as err:
            cutoff = subprocess.Popen([args.cutoff, "--config", os.path.join(work, "cutoff.toml")],
                                      stdout=subprocess.DEVNULL, stderr=err)
        procs.append(cutoff)
        wait_port(port)

        url = f"http://127.0.0.1:{backend}/file"
        request = (f"GET {url} HTTP/1.1\r\nHost: 127.0.0.1:{backend}\r\n"
                   "Connection: keep-alive\r\n\r\n").encode()
        # Between runs cutoff holds its listener, its loop's descriptors and
        # at most a pooled upstream connection per active client.
        settled_fds = fd_count(cutoff.pid) + args.conns
        load(port, url, args.conns, 2)  # warm-up: pools, buffers, caches
        print(f"idle_load: cutoff {args.cutoff}, {args.conns} active connections, "
              f"{args.duration} s per run, {args.idle} idle connections when idle", flush=True)

        p99 = {"without": [], "with": []}
        failed = False
        for round_no in range(args.rounds):
            kinds = ("without", "with") if round_no % 2 == 0 else ("with", "without")
            for kind in kinds:
                socks, rss, per_idle = [], rss_kib(cutoff.pid), None
                if kind == "with":
                    socks = open_idle(port, args.idle, request)
                    rss_idle = rss_kib(cutoff.pid)
                    # Later rounds reuse the memory the first one freed.
                    if not p99["with"]:
                        per_idle = (rss_idle - rss) / args.idle
                    rss = rss_idle
                r = load(port, url, args.conns, args.duration)
                alive = sum(still_open(s) for s in socks)
                for s in socks:
                    s.close()
                # The next run starts once cutoff has let the closed ones go.
                wait_fds(cutoff.pid, settled_fds)
                errors = r["errors"] + r["read_errors"]
                print(f"round {round_no + 1} {kind:>7} idle: requests={r['requests']} "
                      f"p50_us={r['p50_us']} p99_us={r['p99_us']} errors={errors} "
                      f"idle_open={alive}/{len(socks)} cutoff_rss_kib={rss}"
                      + (f" kib_per_idle={per_idle:.2f}" if per_idle is not None else ""),
                      flush=True)
                p99[kind].append(r["p99_us"])
                failed |= errors > 0 or alive != len(socks)

        without = statistics.median(p99["without"])
        with_idle = statistics.median(p99["with"])
        print(f"RESULT p99_without_us={without:.0f} p99_with_us={with_idle:.0f} "
              f"ratio={with_idle / without:.2f} idle={args.idle} conns={args.conns} "
              f"rounds={args.rounds}")
        if cutoff.poll() is not None:
            print("idle_load: cutoff died", file=sys.stderr)
            failed = True
        return 1 if failed else 0
    finally:
        for p in reversed(procs):
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
