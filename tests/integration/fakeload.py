"""One-thread load tools for cutoff's integration tests (Python stdlib only).

The threaded fakes (fakenet, fakeupstream) give every connection a thread that
polls in 20 ms slices; with a hundred connections that polling, and the GIL it
takes, would be measured as latency. These run every connection in a single
thread that sleeps in select() until there is something to do:

- LoopServer("ok"): answers every request head with a small keep-alive 200.
- LoopServer("blackhole"): reads and discards, never answers; records how
  each connection ended ("fin" / "rst", and when), like fakenet's ConnRecord.
- LoopClients: many keep-alive client connections driven at once, each sending
  GETs one after another; records each response's timing and Proxy-Status.
"""

from __future__ import annotations

import math
import selectors
import socket
import struct
import threading
import time
from types import SimpleNamespace



def percentile(values, p: float) -> float:
    """The p-th percentile (nearest rank) of values."""
    s = sorted(values)
    return s[max(0, math.ceil(p / 100.0 * len(s)) - 1)]


class LoopServer:
    """A one-thread TCP server on 127.0.0.1:0. mode "ok" answers every request
    head (GET, no body) with a small keep-alive 200; mode "blackhole" reads and
    discards, never answers. Each connection gets a record with `end` ("fin",
    "rst", or None while open) and `end_time`, like fakenet's ConnRecord."""

    OK_BODY = b"hello"
    OK = (b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\n" + OK_BODY)

    def __init__(self, mode: str):
        self.mode = mode
        self.name = f"loop-{mode}"
        self.records: list[SimpleNamespace] = []
        self._cv = threading.Condition()
        self._stopping = False

    def start(self):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", 0))
        s.listen(512)
        s.setblocking(False)
        self._lsock = s
        self.port = s.getsockname()[1]
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()
        return self

    def stop(self):
        self._stopping = True
        self._thread.join(5)

    def _end(self, sel, sock, rec, kind):
        with self._cv:
            if rec.end is None:
                rec.end, rec.end_time = kind, time.monotonic()
            self._cv.notify_all()
        sel.unregister(sock)
        sock.close()

    def _run(self):
        sel = selectors.DefaultSelector()
        sel.register(self._lsock, selectors.EVENT_READ, None)
        try:
            while not self._stopping:
                for key, _ in sel.select(0.05):
                    if key.data is None:
                        self._accept(sel)
                    else:
                        self._readable(sel, *key.data)
        finally:
            for key in list(sel.get_map().values()):
                sock = key.fileobj
                if key.data is not None:  # still open at stop: reset, not recorded
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                sock.close()
            sel.close()

    def _accept(self, sel):
        while True:
            try:
                sock, _ = self._lsock.accept()
            except (BlockingIOError, InterruptedError):
                return
            sock.setblocking(False)
            rec = SimpleNamespace(opened=time.monotonic(), end=None, end_time=None, bytes_in=0,
                                  requests=0)
            with self._cv:
                self.records.append(rec)
                self._cv.notify_all()
            sel.register(sock, selectors.EVENT_READ, (sock, rec, bytearray()))

    def _readable(self, sel, sock, rec, buf):
        try:
            data = sock.recv(65536)
        except BlockingIOError:
            return
        except OSError:
            return self._end(sel, sock, rec, "rst")
        if not data:
            return self._end(sel, sock, rec, "fin")
        with self._cv:
            rec.bytes_in += len(data)
            self._cv.notify_all()
        if self.mode != "ok":
            return
        buf += data
        while True:
            i = buf.find(b"\r\n\r\n")
            if i < 0:
                return
            del buf[:i + 4]
            rec.requests += 1
            try:
                sock.send(self.OK)  # tiny: the socket buffer always takes it
            except OSError:
                return self._end(sel, sock, rec, "rst")

    # -- what tests look at (the same names as fakenet's servers) ------------

    def connection_count(self) -> int:
        with self._cv:
            return len(self.records)

    def wait_for(self, pred, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self._cv:
            while not pred():
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cv.wait(min(left, 0.05))
            return True

    def wait_all_closed(self, timeout: float) -> bool:
        return self.wait_for(lambda: all(r.end for r in self.records), timeout)

    def open_connections(self):
        with self._cv:
            return [r for r in self.records if r.end is None]


class LoopClients:
    """Runs many keep-alive client connections to cutoff in one thread: each
    sends `rounds` GETs for `target` one after another (the next once the last
    response is whole). Records, per response: (round, send time, done time,
    status, Proxy-Status). Responses must carry a Content-Length."""

    def __init__(self, addr, target: str, conns: int, rounds: int, connect_timeout: float = 5.0):
        self.addr, self.target, self.rounds = addr, target, rounds
        host = target.split("://", 1)[1].split("/", 1)[0] if "://" in target else f"{addr[0]}:{addr[1]}"
        self.request = f"GET {target} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode("latin-1")
        self.results: list[tuple[int, float, float, int, str]] = []
        self.ends: list[tuple[str, float]] = []  # how each connection ended, once done
        self.socks = [socket.create_connection(addr, timeout=connect_timeout) for _ in range(conns)]

    def latencies(self, skip_rounds: int = 0) -> list[float]:
        """Seconds from send to whole response, rounds before skip_rounds left out."""
        return [done - sent for rnd, sent, done, _, _ in self.results if rnd >= skip_rounds]

    def run(self, deadline: float, read_end: bool = False):
        """Drives every connection until all rounds are done (and, with
        read_end, until cutoff closed each one); raises on a broken connection
        or at `deadline` (monotonic)."""
        sel = selectors.DefaultSelector()
        try:
            for s in self.socks:
                s.setblocking(False)
                st = SimpleNamespace(sock=s, round=0, buf=bytearray(), t_send=time.monotonic(),
                                     done=False)
                sel.register(s, selectors.EVENT_READ, st)
                s.send(self.request)
            active = len(self.socks)
            while active:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"LoopClients: {active} connections still busy at the deadline")
                for key, _ in sel.select(min(left, 0.1)):
                    st = key.data
                    try:
                        data = st.sock.recv(65536)
                    except BlockingIOError:
                        continue
                    except ConnectionResetError:
                        data = None
                    if not data:
                        kind = "fin" if data == b"" else "rst"
                        if not st.done:
                            raise ConnectionError(f"LoopClients: connection ended ({kind}) before "
                                                  f"response {st.round + 1}: {bytes(st.buf[:200])!r}")
                        self.ends.append((kind, time.monotonic()))
                        sel.unregister(st.sock)
                        active -= 1
                        continue
                    if st.done:
                        raise AssertionError(f"bytes after the last response: {data[:200]!r}")
                    st.buf += data
                    if self._take_response(st):
                        st.round += 1
                        if st.round < self.rounds:
                            st.t_send = time.monotonic()
                            st.sock.send(self.request)
                        else:
                            st.done = True
                            if not read_end:
                                sel.unregister(st.sock)
                                active -= 1
        finally:
            sel.close()
            for s in self.socks:
                s.close()

    def _take_response(self, st) -> bool:
        i = st.buf.find(b"\r\n\r\n")
        if i < 0:
            return False
        head = bytes(st.buf[:i]).decode("latin-1").split("\r\n")
        fields = {}
        for line in head[1:]:
            k, _, v = line.partition(":")
            fields[k.strip().lower()] = v.strip()
        n = int(fields.get("content-length", "0"))
        if len(st.buf) < i + 4 + n:
            return False
        t_done = time.monotonic()
        del st.buf[:i + 4 + n]
        self.results.append((st.round, st.t_send, t_done, int(head[0].split()[1]),
                             fields.get("proxy-status", "")))
        return True
