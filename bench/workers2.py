#!/usr/bin/env python3
"""Helpers of workers2.sh.

  workers2.py measure --name N --round R --pid P --port PORT --url U [...]
      measures one running proxy (P: its main process; its threads and
      child processes count with it), prints one JSON line:
        1. resident memory before any traffic;
        2. wrk for --warmup seconds, then for --duration seconds, with the
           user and system CPU time of the proxy (/proc/PID/stat) read before
           and after: requests/s, CPU per request;
        3. strace -c -f attached to every process of the proxy for a wrk run
           of --strace-short seconds, then another of --strace-long seconds:
           syscalls per request, (calls(long) - calls(short)) /
           (requests(long) - requests(short)), so that what each of wrk's
           connections costs (accept, close, an upstream connect) cancels;
        4. idle_conns.py with --idle-conns connections: KiB per idle client
           connection, and the resident memory with 10,000 of them (measured
           when --idle-conns is 10000, else extrapolated from the growth per
           connection).
      With --access-log, waits until the log has a line for every request
      counted (the proxy flushes it on a timer) and fails if it does not.
  workers2.py report RESULTS.jsonl
      the rounds of every proxy as Markdown: medians with their spread, and
      each figure as a ratio to haproxy's and nginx's of the same round.
"""

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import time

from counts import per_request, strace_calls
from idle_conns import rss_kib, tree_pids

HERE = os.path.dirname(os.path.abspath(__file__))
CLK_TCK = os.sysconf("SC_CLK_TCK")
LISTEN, ESTABLISHED, CLOSE_WAIT = "0A", "01", "08"


def cpu_ticks(root):
    """(user, system) clock ticks of a process tree, reaped children included."""
    user = system = 0
    for pid in tree_pids(root):
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        # Fields 14-17 of proc(5): utime, stime, cutime, cstime.
        user += int(fields[11]) + int(fields[13])
        system += int(fields[12]) + int(fields[14])
    return user, system


def wrk(args, seconds):
    """One wrk run through the proxy; its RESULT line as a dict of ints."""
    out = subprocess.run(
        ["wrk", "-t1", f"-c{args.conns}", f"-d{seconds:g}s", "--timeout", "5s",
         "-s", os.path.join(HERE, "proxy.lua"), f"http://127.0.0.1:{args.port}/"],
        env={**os.environ, "TARGET_URL": args.url}, capture_output=True, text=True,
        check=True).stdout
    line = next((l for l in out.splitlines() if l.startswith("RESULT ")), None)
    if line is None:
        sys.exit(f"workers2: no RESULT from wrk: {out}")
    result = {k: int(v) for k, v in (kv.split("=") for kv in line.split()[1:])}
    result["requests_ok"] = result["requests"] - result["errors"]
    return result


def client_sockets(port):
    """Connections to the proxy's port it still holds open (wrk's, after a run)."""
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                next(f)
                for line in f:
                    fields = line.split()
                    local_port = int(fields[1].rsplit(":", 1)[1], 16)
                    if local_port == port and fields[3] in (ESTABLISHED, CLOSE_WAIT):
                        count += 1
        except OSError:
            pass
    return count


def await_condition(check, what, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            sys.exit(f"workers2: timed out waiting for {what}")
        time.sleep(0.02)


def threads_traced(pids):
    for pid in pids:
        for tid in os.listdir(f"/proc/{pid}/task"):
            try:
                with open(f"/proc/{pid}/task/{tid}/status") as f:
                    tracer = next(l for l in f if l.startswith("TracerPid:")).split()[1]
            except (OSError, StopIteration):
                continue
            if tracer == "0":
                return False
    return True


def traced_run(args, seconds, out):
    """wrk for SECONDS under strace -c; (calls by syscall, requests)."""
    pids = tree_pids(args.pid)
    cmd = ["strace", "-c", "-f", "-o", out]
    for pid in pids:
        cmd += ["-p", str(pid)]
    tracer = subprocess.Popen(cmd, stderr=subprocess.DEVNULL)
    try:
        await_condition(lambda: threads_traced(pids), "strace to attach")
        result = wrk(args, seconds)
        # The proxy closes wrk's connections after wrk has gone: count that
        # in, as the run that is subtracted counts it too.
        await_condition(lambda: client_sockets(args.port) == 0, "the proxy to close wrk's connections")
    finally:
        tracer.send_signal(signal.SIGINT)
        tracer.wait(timeout=30)
    return strace_calls(out), result["requests_ok"]


def idle_connections(args):
    out = subprocess.run(
        [sys.executable, os.path.join(HERE, "idle_conns.py"), "--pid", str(args.pid),
         "--port", str(args.port), "--url", args.url, "--count", str(args.idle_conns)],
        capture_output=True, text=True, check=True, timeout=600).stdout
    line = next(l for l in out.splitlines() if l.startswith("RESULT "))
    fields = dict(kv.split("=") for kv in line.split()[1:])
    if fields["mode"] != "keepalive" or int(fields["open"]) != args.idle_conns:
        sys.exit(f"workers2: {args.name} kept {fields['open']} of {args.idle_conns} "
                 f"idle connections ({fields['mode']})")
    return fields


def count_lines(path):
    with open(path, "rb") as f:
        return sum(1 for _ in f)


def measure(args):
    row = {"name": args.name, "round": args.round}
    row["rss_start_kib"] = rss_kib(args.pid)
    answered = 0

    answered += wrk(args, args.warmup)["requests_ok"]
    before = cpu_ticks(args.pid)
    load = wrk(args, args.duration)
    after = cpu_ticks(args.pid)
    answered += load["requests_ok"]
    n = max(load["requests_ok"], 1)
    row["requests"] = load["requests_ok"]
    row["errors"] = load["errors"]
    row["rps"] = load["requests_ok"] / (load["duration_us"] / 1e6)
    row["p50_ms"] = load["p50_us"] / 1000
    row["p99_ms"] = load["p99_us"] / 1000
    row["user_us"] = (after[0] - before[0]) * 1e6 / CLK_TCK / n
    row["system_us"] = (after[1] - before[1]) * 1e6 / CLK_TCK / n
    row["cpu_us"] = row["user_us"] + row["system_us"]
    row["cpu_percent"] = ((after[0] + after[1] - before[0] - before[1]) / CLK_TCK
                          / (load["duration_us"] / 1e6) * 100)

    short_calls, short_n = traced_run(args, args.strace_short, f"{args.work}/strace.short")
    long_calls, long_n = traced_run(args, args.strace_long, f"{args.work}/strace.long")
    answered += short_n + long_n
    if long_n <= short_n:
        sys.exit(f"workers2: {args.name}: {long_n} requests under strace in "
                 f"{args.strace_long} s, {short_n} in {args.strace_short} s")
    by_call = per_request(short_calls, long_calls, long_n - short_n)
    row["syscalls"] = sum(by_call.values())
    row["syscalls_by_name"] = {k: v for k, v in by_call.items() if abs(v) >= 0.005}

    idle = idle_connections(args)
    answered += args.idle_conns + 5  # idle_conns.py warms up with five requests
    per_conn = float(idle["kib_per_conn"])
    row["idle_conns"] = args.idle_conns
    row["kib_per_idle_conn"] = per_conn
    row["rss_10k_kib"] = (int(idle["rss_after_kib"]) if args.idle_conns == 10000
                          else int(idle["rss_before_kib"]) + 10000 * per_conn)

    if args.access_log:
        await_condition(lambda: count_lines(args.access_log) >= answered,
                        f"{answered} lines in {args.access_log}")
        row["access_log_lines"] = count_lines(args.access_log)
    row["requests_answered"] = answered
    print(json.dumps(row), flush=True)
    return 0


# ------------------------------------------------------------------ report
FIGURES = [  # key in a result row, heading, format
    ("rps", "requests/s", "{:,.0f}"),
    ("cpu_us", "CPU µs/request", "{:.1f}"),
    ("user_us", "user µs/request", "{:.1f}"),
    ("system_us", "system µs/request", "{:.1f}"),
    ("syscalls", "syscalls/request", "{:.2f}"),
    ("p99_ms", "p99 ms", "{:.2f}"),
    ("rss_start_kib", "RSS idle, KiB", "{:,.0f}"),
    ("kib_per_idle_conn", "KiB/idle client conn", "{:.2f}"),
    ("rss_10k_kib", "RSS with 10k idle conns, MiB", "{:.1f}"),
]
PAIRS = [("cutoff", "haproxy"), ("cutoff", "nginx"), ("nginx", "haproxy")]


def spread(values, fmt):
    med = statistics.median(values)
    if len(values) == 1:
        return fmt.format(med)
    return f"{fmt.format(med)} ({fmt.format(min(values))}-{fmt.format(max(values))})"


def value(row, key):
    return row[key] / 1024 if key == "rss_10k_kib" else row[key]


def report(args):
    rows = []
    with open(args.results) as f:
        for line in f:
            rows.append(json.loads(line))
    names = list(dict.fromkeys(r["name"] for r in rows))
    by = {(r["name"], r["round"]): r for r in rows}
    rounds = sorted({r["round"] for r in rows})

    print(f"Medians of {len(rounds)} rounds, (min-max) over the rounds:")
    print()
    print("| proxy | " + " | ".join(h for _, h, _ in FIGURES) + " | errors |")
    print("|---|" + "---:|" * (len(FIGURES) + 1))
    for name in names:
        cells = []
        for key, _, fmt in FIGURES:
            cells.append(spread([value(by[(name, r)], key) for r in rounds if (name, r) in by],
                                fmt))
        errors = sum(by[(name, r)]["errors"] for r in rounds if (name, r) in by)
        print(f"| {name} | " + " | ".join(cells) + f" | {errors} |")
    print()

    pairs = [(n, p) for n, p in PAIRS if n in names and p in names]
    if pairs:
        print("Ratios, each the median of the rounds' own ratios (min-max); "
              "under 1 means less than the peer (more for requests/s):")
        print()
        print("| figure | " + " | ".join(f"{n} / {p}" for n, p in pairs) + " |")
        print("|---|" + "---:|" * len(pairs))
        for key, heading, _ in FIGURES:
            cells = []
            for n, p in pairs:
                ratios = [value(by[(n, r)], key) / value(by[(p, r)], key) for r in rounds
                          if (n, r) in by and (p, r) in by and value(by[(p, r)], key)]
                cells.append(spread(ratios, "{:.2f}x") if ratios else "-")
            print(f"| {heading} | " + " | ".join(cells) + " |")
        print()

    calls = sorted({c for r in rows for c in r["syscalls_by_name"]},
                   key=lambda c: -max(r["syscalls_by_name"].get(c, 0) for r in rows))
    print("Syscalls per request by name (median of the rounds; those at 0.005 or more):")
    print()
    print("| syscall | " + " | ".join(names) + " |")
    print("|---|" + "---:|" * len(names))
    for call in calls:
        medians = [statistics.median(by[(n, r)]["syscalls_by_name"].get(call, 0)
                                     for r in rounds if (n, r) in by) for n in names]
        if all(abs(m) < 0.005 for m in medians):
            continue
        print(f"| {call} | " + " | ".join(f"{m:.2f}" for m in medians) + " |")
    print()

    idle = sorted({r["idle_conns"] for r in rows})
    if idle != [10000]:
        print(f"RSS with 10k idle connections: extrapolated from {', '.join(map(str, idle))} "
              "(RSS before them + 10,000 x KiB per connection).")
        print()

    if "cutoff" in names and "haproxy" in names:
        def ratio_line(key, label, target):
            ratios = [by[("cutoff", r)][key] / by[("haproxy", r)][key] for r in rounds
                      if ("cutoff", r) in by and ("haproxy", r) in by]
            med = statistics.median(ratios)
            verdict = "met" if med <= target else "not met"
            print(f"- {label}: cutoff {med:.2f}x haproxy's (by round "
                  f"{', '.join(f'{x:.2f}x' for x in ratios)}); target at most {target}x: {verdict}")
        ratio_line("user_us", "user CPU per request", 0.5)
        ratio_line("syscalls", "syscalls per request", 1.0)
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("measure")
    m.add_argument("--name", required=True)
    m.add_argument("--round", type=int, required=True)
    m.add_argument("--pid", type=int, required=True, help="the proxy's main process")
    m.add_argument("--port", type=int, required=True, help="the proxy's port")
    m.add_argument("--url", required=True, help="backend URL to request")
    m.add_argument("--work", required=True, help="a directory for strace's files")
    m.add_argument("--conns", type=int, default=50)
    m.add_argument("--warmup", type=float, default=2)
    m.add_argument("--duration", type=float, default=10)
    m.add_argument("--strace-short", type=float, default=2)
    m.add_argument("--strace-long", type=float, default=6)
    m.add_argument("--idle-conns", type=int, default=10000)
    m.add_argument("--access-log", help="the proxy's access log: check a line per request")
    r = sub.add_parser("report")
    r.add_argument("results")
    args = ap.parse_args()
    return measure(args) if args.cmd == "measure" else report(args)


if __name__ == "__main__":
    sys.exit(main())
