#!/usr/bin/env python3
"""Helpers of counts.sh.

  counts.py client --port P --url U --count N
      one client connection to the proxy on 127.0.0.1:P, N keep-alive GETs of
      U one after the other; exit 1 unless every answer is a whole 200.
  counts.py report SHORT LONG LABEL=DIR...
      the figures of each DIR (written by counts.sh) per request, as Markdown.

A figure per request is (count at LONG requests - count at SHORT) / (LONG -
SHORT): start-up, the first request's connect and shutdown cancel out.
"""

import argparse
import os
import re
import socket
import subprocess
import sys

from idle_conns import read_response


def client(args):
    host = args.url.split("/")[2]
    request = f"GET {args.url} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()
    with socket.create_connection(("127.0.0.1", args.port), timeout=60) as s:
        for i in range(args.count):
            s.sendall(request)
            if not read_response(s):
                sys.exit(f"counts: the proxy closed the connection at request {i + 1}")
    return 0


def callgrind_total(path):
    with open(path) as f:
        for line in f:
            if line.startswith(("summary:", "totals:")):
                return int(line.split()[1])
    raise SystemExit(f"counts: no total in {path}")


def callgrind_self(path):
    """Self Ir by function, from callgrind_annotate."""
    out = subprocess.run(["callgrind_annotate", "--threshold=100", path],
                         capture_output=True, text=True, check=True).stdout
    costs = {}
    for m in re.finditer(r"^\s*([\d,]+) (?:\([\d.]+%\)\s+)?(\S.*?)(?: \[[^]]*\])?$", out, re.M):
        name = m.group(2)
        if name.endswith("PROGRAM TOTALS") or ":" not in name:
            continue
        name = name.split(":", 1)[1]
        costs[name] = costs.get(name, 0) + int(m.group(1).replace(",", ""))
    return costs


def strace_calls(path):
    """Calls by syscall, from the summary of strace -c."""
    calls = {}
    with open(path) as f:
        for line in f:
            fields = line.split()
            if len(fields) >= 5 and fields[3].isdigit() and fields[-1] != "total":
                calls[fields[-1]] = calls.get(fields[-1], 0) + int(fields[3])
    return calls


def per_request(short, long, n):
    keys = set(short) | set(long)
    return {k: (long.get(k, 0) - short.get(k, 0)) / n for k in keys}


def report(args):
    n = args.long - args.short
    runs = [item.split("=", 1) for item in args.runs]
    rows = {}  # figure -> [value per run]
    funcs = []
    for i, (_, d) in enumerate(runs):
        def put(figure, value):
            rows.setdefault(figure, [None] * len(runs))[i] = value
        f = lambda name: os.path.join(d, name)
        put("instructions/request (Ir)",
            (callgrind_total(f(f"callgrind.{args.long}")) - callgrind_total(f(f"callgrind.{args.short}"))) / n)
        funcs.append(per_request(callgrind_self(f(f"callgrind.{args.short}")),
                                 callgrind_self(f(f"callgrind.{args.long}")), n))
        calls = per_request(strace_calls(f(f"strace.{args.short}")), strace_calls(f(f"strace.{args.long}")), n)
        put("syscalls/request", sum(calls.values()))
        for name, value in calls.items():
            if abs(value) >= 0.005:
                put(f"- {name}", value)
        with open(f("idle")) as fh:
            put("KiB/idle client connection",
                float(re.search(r"kib_per_conn=(\S+)", fh.read()).group(1)))

    def fmt(v, decimals):
        return "-" if v is None else f"{v:,.{decimals}f}"

    labels = [label for label, _ in runs]
    ratio = len(runs) == 2
    print("| figure | " + " | ".join(labels) + (f" | {labels[1]}/{labels[0]} |" if ratio else " |"))
    print("|---|" + "---:|" * (len(runs) + ratio))
    syscalls = sorted((k for k in rows if k.startswith("- ")), key=lambda k: -max(v or 0 for v in rows[k]))
    order = ["instructions/request (Ir)", "syscalls/request", *syscalls, "KiB/idle client connection"]
    for figure in order:
        values = rows[figure]
        decimals = 0 if figure.startswith("instr") else 2
        line = f"| {figure} | " + " | ".join(fmt(v, decimals) for v in values) + " |"
        if ratio:
            a, b = values
            line += f" {b / a:.2f} |" if a and b is not None else " - |"
        print(line)

    # Where the instructions of a request go: self Ir per request by function.
    def short(name):
        return name if len(name) <= 90 else name[:87] + "..."
    print()
    if ratio:
        base, new = funcs
        names = sorted(set(base) | set(new), key=lambda k: -abs(new.get(k, 0) - base.get(k, 0)))
        print(f"Functions whose self Ir/request changed most ({labels[0]} -> {labels[1]}):")
        print()
        print(f"| function | {labels[0]} | {labels[1]} | change |")
        print("|---|---:|---:|---:|")
        for k in names[:args.top]:
            a, b = base.get(k, 0), new.get(k, 0)
            print(f"| `{short(k)}` | {a:,.0f} | {b:,.0f} | {b - a:+,.0f} |")
        print()
    for label, costs in zip(labels, funcs):
        print(f"Top functions by self Ir/request ({label}):")
        print()
        print("| function | Ir/request |")
        print("|---|---:|")
        for k in sorted(costs, key=lambda k: -costs[k])[:args.top]:
            print(f"| `{short(k)}` | {costs[k]:,.0f} |")
        print()
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True)
    c = sub.add_parser("client")
    c.add_argument("--port", type=int, required=True)
    c.add_argument("--url", required=True)
    c.add_argument("--count", type=int, required=True)
    r = sub.add_parser("report")
    r.add_argument("short", type=int)
    r.add_argument("long", type=int)
    r.add_argument("runs", nargs="+", metavar="LABEL=DIR")
    r.add_argument("--top", type=int, default=10)
    args = ap.parse_args()
    return client(args) if args.command == "client" else report(args)


if __name__ == "__main__":
    sys.exit(main())
