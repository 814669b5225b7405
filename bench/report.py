#!/usr/bin/env python3
"""Turns bench/run.sh's results.tsv into a markdown table.

Columns of the TSV: name, requests, duration_us, errors, read_errors,
cpu_us_per_request,
p50_us, p99_us, kib_per_idle_conn, idle_mode. When a "cutoff" row exists,
every measured value is followed by its ratio to cutoff's (value / cutoff).
"""

import sys


def number(text):
    try:
        return float(text)
    except ValueError:
        return None


def main(path):
    rows = []
    with open(path) as f:
        for line in f:
            name, requests, duration_us, errors, read_errors, cpu, p50, p99, idle, mode = (
                line.rstrip("\n").split("\t"))
            requests = int(requests)
            rows.append({
                "name": name,
                "rps": requests / (int(duration_us) / 1e6),
                "cpu": number(cpu),
                "p50": int(p50) / 1000,
                "p99": int(p99) / 1000,
                "idle": number(idle),
                "mode": mode,
                "errors": int(errors),
                "read_errors": int(read_errors),
            })
    base = next((r for r in rows if r["name"] == "cutoff"), None)

    def cell(row, key, fmt):
        value = row[key]
        if value is None:
            return "-"
        text = fmt.format(value)
        if key == "idle" and row["mode"] == "fresh":
            text += "*"
        if base is not None and row is not base and base[key]:
            text += f" ({value / base[key]:.2f}x)"
        return text

    def errors(row):
        text = str(row["errors"])
        if row["read_errors"]:
            text += f" + {row['read_errors']} closed†"
        return text

    print("| proxy | requests/s | CPU µs/request | p50 ms | p99 ms "
          "| KiB/idle client conn | errors |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['name']} | {cell(r, 'rps', '{:.0f}')} | {cell(r, 'cpu', '{:.0f}')} "
              f"| {cell(r, 'p50', '{:.2f}')} | {cell(r, 'p99', '{:.2f}')} "
              f"| {cell(r, 'idle', '{:.1f}')} | {errors(r)} |")
    print()
    if base is not None:
        print("(x) is the ratio to cutoff's value: above 1 means more requests/s, "
              "or more CPU, latency or memory, than cutoff.")
    else:
        print("cutoff was not measured (no binary).")
    if any(r["read_errors"] for r in rows):
        print("† connections the proxy closed after a complete response without "
              "announcing it (`Connection: close`); wrk counts them as read errors "
              "and reconnects.")
    if any(r["mode"] == "fresh" for r in rows):
        print("\\* closes client connections after each response: measured on "
              "connections that sent no request.")


if __name__ == "__main__":
    main(sys.argv[1])
