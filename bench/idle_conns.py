#!/usr/bin/env python3
"""Memory a proxy spends per idle client connection.

Opens COUNT client connections to the proxy, sends one keep-alive request on
each and reads the answer, then leaves them idle and measures how much the
resident memory of the proxy's process tree grew, per connection. A proxy that
closes client connections after every response (tinyproxy) is measured on
connections that never sent a request instead, and the result is marked "*".

Prints one line: "RESULT rss_before_kib=<b> rss_after_kib=<a> kib_per_conn=<x>
mode=<keepalive|fresh> open=<n>" (the resident memory of the proxy's process
tree before and after the connections, in KiB).
"""

import argparse
import os
import socket
import sys
import time


def tree_pids(root):
    children = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    pids, todo = [], [root]
    while todo:
        pid = todo.pop()
        pids.append(pid)
        todo.extend(children.get(pid, []))
    return pids


def rss_kib(root):
    total = 0
    for pid in tree_pids(root):
        try:
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        except OSError:
            pass
    return total


def read_response(sock):
    """Reads one response with a Content-Length body; False if it closed."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            return False
        data += chunk
    head, body = data.split(b"\r\n\r\n", 1)
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            return False
        body += chunk
    return True


def still_open(sock):
    sock.settimeout(0)
    try:
        return sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) != b""
    except BlockingIOError:
        return True
    except OSError:
        return False


def open_conns(port, count, request):
    socks = []
    for _ in range(count):
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        if request:
            s.sendall(request)
            read_response(s)
        socks.append(s)
    return socks


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--pid", type=int, required=True, help="the proxy's main process")
    ap.add_argument("--port", type=int, required=True, help="the proxy's port")
    ap.add_argument("--url", required=True, help="backend URL to request")
    ap.add_argument("--count", type=int, default=2000)
    args = ap.parse_args()

    host = args.url.split("/")[2]
    request = (f"GET {args.url} HTTP/1.1\r\nHost: {host}\r\n"
               "Connection: keep-alive\r\n\r\n").encode()

    # Warm up: the first request allocates upstream pools and buffers.
    open_conns(args.port, 5, request)
    time.sleep(0.5)

    before = rss_kib(args.pid)
    socks = open_conns(args.port, args.count, request)
    time.sleep(1.0)
    alive = [s for s in socks if still_open(s)]
    mode = "keepalive"
    if len(alive) < args.count // 2:
        for s in socks:
            s.close()
        time.sleep(1.0)
        before = rss_kib(args.pid)
        socks = open_conns(args.port, args.count, None)
        time.sleep(1.0)
        alive = [s for s in socks if still_open(s)]
        mode = "fresh"
    after = rss_kib(args.pid)
    for s in socks:
        s.close()
    per_conn = (after - before) / max(len(alive), 1)
    print(f"RESULT rss_before_kib={before} rss_after_kib={after} kib_per_conn={per_conn:.2f} "
          f"mode={mode} open={len(alive)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
