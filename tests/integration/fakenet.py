"""Raw TCP fakes for cutoff's integration tests (Python stdlib only).

The building blocks every fake server shares, and the raw targets:

- _TcpServer: threaded, binds 127.0.0.1:0, start()/stop() or a context
  manager; stop() closes every socket and joins every thread. Each accepted
  connection gets a ConnRecord saying, from the server's side, when it opened,
  how many requests it served, and how it ended:

    "fin"    the peer sent FIN (recv returned b"")
    "rst"    the peer reset it (ECONNRESET/EPIPE, or POLLHUP after its FIN)
    "closed" this server closed first (FIN)
    "reset"  this server reset it (SO_LINGER 0)
    None     still open (state "open")

  Every wait polls the socket in short steps, so a peer's FIN or RST is seen
  within ~20 ms even while a fake "hangs", and stop() ends everything at once.
- RawEchoServer and Blackhole: raw TCP targets for CONNECT.
- FullBacklog: a listener whose SYNs are never answered (connect hangs).
- ClosedPort: a port that refuses connections.

Every server binds 127.0.0.1 unless given another host ("::1" for IPv6)
and an ephemeral port unless given one, so a test can put different
servers on one port number of ::1 and 127.0.0.1.

The scripted HTTP origin built on these is fakeupstream.FakeUpstream.
"""

from __future__ import annotations

import select
import socket
import struct
import sys
import threading
import time

LOOPBACK = "127.0.0.1"
LOOPBACK6 = "::1"
POLL_STEP = 0.02  # seconds between checks of the stop flag while waiting
HEAD_LIMIT = 1 << 20

_PATTERN_BASE = bytes((i * 37 + 11) % 256 for i in range(251))


def pattern(n: int, offset: int = 0) -> bytes:
    """Deterministic body bytes: a 251-byte cycle, so shifted or lost bytes show."""
    start = offset % 251
    reps = (start + n) // 251 + 1
    return (_PATTERN_BASE * reps)[start:start + n]


def family_of(host: str) -> int:
    """The address family of a literal address ("::1" or "127.0.0.1")."""
    return socket.AF_INET6 if ":" in host else socket.AF_INET


class Stopping(Exception):
    """The server is stopping; the connection thread unwinds."""


class PeerFin(Exception):
    """The peer sent FIN."""


class PeerReset(Exception):
    """The peer reset the connection."""


class BadRequest(Exception):
    pass


class ConnRecord:
    """What one accepted connection looked like from the server's side."""

    def __init__(self, cid: int, peer, cv: threading.Condition):
        self.id = cid
        self.peer = peer
        self.opened = time.monotonic()
        self.events: list[tuple[str, float]] = []
        self.requests: list[Request] = []
        self.response_ends: list[float] = []  # when each response was fully written
        self.bytes_in = 0
        self.bytes_out = 0
        self._cv = cv

    def _add(self, kind: str) -> None:
        with self._cv:
            self.events.append((kind, time.monotonic()))
            self._cv.notify_all()

    def _event(self, *kinds):
        for kind, t in self.events:
            if kind in kinds:
                return kind, t
        return None, None

    @property
    def end(self):
        """First of fin/rst/closed/reset, or None while open."""
        return self._event("fin", "rst", "closed", "reset")[0]

    @property
    def end_time(self):
        return self._event("fin", "rst", "closed", "reset")[1]

    @property
    def state(self) -> str:
        return self.end or "open"

    @property
    def finished(self) -> bool:
        return self.end is not None

    def time_of(self, kind: str):
        return self._event(kind)[1]

    def kinds(self) -> list[str]:
        return [k for k, _ in self.events]

    @property
    def request_count(self) -> int:
        return len(self.requests)

    def __repr__(self):
        ev = ", ".join(f"{k}@{t - self.opened:.3f}" for k, t in self.events)
        return f"<conn {self.id} from {self.peer} requests={len(self.requests)} events=[{ev}]>"


class Conn:
    """An accepted non-blocking socket with a read buffer; all waits poll."""

    def __init__(self, server: "_TcpServer", sock: socket.socket, record: ConnRecord):
        self.server = server
        self.sock = sock
        self.rec = record
        self.buf = bytearray()
        self.fin_seen = False
        self.open = True
        sock.setblocking(False)

    # -- reading ---------------------------------------------------------

    def _poll(self, mask: int, timeout):
        """Waits for mask in POLL_STEP slices; returns revents or 0 on timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        p = select.poll()
        p.register(self.sock.fileno(), mask)
        while True:
            if self.server.stopping:
                raise Stopping()
            step = POLL_STEP
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    return 0
                step = min(step, left)
            ev = p.poll(step * 1000)
            if ev:
                return ev[0][1]

    def recv_some(self, timeout=None):
        """Appends what arrives to buf and returns it; None on timeout.

        Raises PeerFin or PeerReset (recorded) when the peer goes away."""
        data = self.recv_raw(timeout)
        if data:
            self.buf += data
        return data

    def recv_raw(self, timeout=None):
        """The bytes that arrive on the socket, as recv_some, without
        buffering them (a subclass that decrypts them buffers the plaintext)."""
        if self.fin_seen:
            raise PeerFin()
        if not self._poll(select.POLLIN, timeout):
            return None
        try:
            data = self.sock.recv(65536)
        except BlockingIOError:
            return None
        except (ConnectionResetError, BrokenPipeError):
            self.rec._add("rst")
            raise PeerReset()
        except OSError as e:
            self.rec._add("rst")
            raise PeerReset() from e
        if not data:
            self.fin_seen = True
            self.rec._add("fin")
            raise PeerFin()
        self.rec.bytes_in += len(data)
        return data

    def read_until(self, marker: bytes, limit: int = HEAD_LIMIT, timeout=None) -> bytes:
        start = 0
        while True:
            i = self.buf.find(marker, start)
            if i >= 0:
                out = bytes(self.buf[: i + len(marker)])
                del self.buf[: i + len(marker)]
                return out
            if len(self.buf) > limit:
                raise BadRequest("head too large")
            start = max(0, len(self.buf) - len(marker) + 1)
            if self.recv_some(timeout) is None:
                raise TimeoutError()

    def read_exact(self, n: int, timeout=None) -> bytes:
        while len(self.buf) < n:
            if self.recv_some(timeout) is None:
                raise TimeoutError()
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    def park(self, read: bool = True):
        """Never sends again; returns only by raising PeerFin/PeerReset/Stopping.

        read=True keeps reading (and discarding) so the peer's FIN or RST is
        seen at once; read=False never reads (the peer's data piles up in our
        receive buffer) and watches POLLRDHUP / POLLHUP instead."""
        if read:
            while True:
                self.recv_some(None)
                self.buf.clear()
        while True:
            ev = self._poll(select.POLLRDHUP, None)
            if ev & (select.POLLHUP | select.POLLERR):
                self.rec._add("rst")
                raise PeerReset()
            if ev & select.POLLRDHUP:
                self.fin_seen = True
                self.rec._add("fin")
                raise PeerFin()

    def wait_reset_after_fin(self):
        """After the peer's FIN, keeps the socket open (no FIN from us) and
        records the peer's RST when it comes (POLLHUP in CLOSE_WAIT)."""
        while True:
            ev = self._poll(0, None)
            if ev & (select.POLLHUP | select.POLLERR):
                self.rec._add("rst")
                raise PeerReset()

    # -- writing ---------------------------------------------------------

    def send_all(self, data: bytes, timeout=None) -> None:
        view = memoryview(data)
        while view:
            try:
                n = self.sock.send(view)
            except BlockingIOError:
                if not self._poll(select.POLLOUT, timeout):
                    raise TimeoutError()
                continue
            except (ConnectionResetError, BrokenPipeError):
                self.rec._add("rst")
                raise PeerReset()
            self.rec.bytes_out += n
            view = view[n:]

    def shutdown_write(self):
        try:
            self.sock.shutdown(socket.SHUT_WR)
            self.rec._add("shutdown")
        except OSError:
            pass

    # -- ending ----------------------------------------------------------

    def _drain(self):
        # Unread input would turn close() into an RST; read what is there.
        try:
            while self.sock.recv(65536):
                pass
        except OSError:
            pass

    def close(self):
        """Closes with FIN (records "closed" unless the peer already ended it)."""
        if not self.open:
            return
        self.open = False
        self._drain()
        if not self.rec.finished:
            self.rec._add("closed")
        self.sock.close()

    def reset(self):
        """Closes with RST (SO_LINGER 0)."""
        if not self.open:
            return
        self.open = False
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        if not self.rec.finished:
            self.rec._add("reset")
        self.sock.close()

    def release(self):
        """Closes at stop() without recording an end (the record stays "open")."""
        if self.open:
            self.open = False
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.sock.close()


class _TcpServer:
    """A threaded TCP server on 127.0.0.1:0 (or the host and port given)
    recording every connection."""

    name = "tcp"

    def __init__(self, host: str = LOOPBACK, port: int = 0, backlog: int = 128):
        self.host = host
        self._port = port
        self.backlog = backlog
        self.stopping = False
        self._cv = threading.Condition()
        self._records: list[ConnRecord] = []
        self._threads: list[threading.Thread] = []
        self._conns: list[Conn] = []
        self._lsock = None
        self._accept_thread = None

    # -- lifecycle -------------------------------------------------------

    def start(self):
        s = socket.socket(family_of(self.host), socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((self.host, self._port))
        s.listen(self.backlog)
        s.setblocking(False)
        self._lsock = s
        self._port = s.getsockname()[1]
        self._accept_thread = threading.Thread(
            target=self._accept_loop, name=f"{self.name}-accept-{self._port}", daemon=True)
        self._accept_thread.start()
        return self

    def stop(self, timeout: float = 5.0):
        """Closes the listener and every connection, then joins all threads."""
        if self._lsock is None:
            return
        self.stopping = True
        deadline = time.monotonic() + timeout
        self._accept_thread.join(max(0.0, deadline - time.monotonic()))
        self._lsock.close()
        for t in list(self._threads):
            t.join(max(0.0, deadline - time.monotonic()))
        for c in list(self._conns):
            c.release()
        self._lsock = None
        alive = [t.name for t in self._threads if t.is_alive()]
        if alive:
            raise RuntimeError(f"{self.name}: threads still running after stop(): {alive}")

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    @property
    def port(self) -> int:
        return self._port

    @property
    def addr(self):
        return (self.host, self._port)

    def _accept_loop(self):
        p = select.poll()
        p.register(self._lsock.fileno(), select.POLLIN)
        while not self.stopping:
            if not p.poll(POLL_STEP * 1000):
                continue
            try:
                sock, peer = self._lsock.accept()
            except (BlockingIOError, InterruptedError):
                continue
            except OSError:
                if self.stopping:
                    return
                raise
            with self._cv:
                rec = ConnRecord(len(self._records), peer, self._cv)
                self._records.append(rec)
                self._cv.notify_all()
            conn = Conn(self, sock, rec)
            self._conns.append(conn)
            t = threading.Thread(target=self._run_conn, args=(conn,),
                                 name=f"{self.name}-{self._port}-c{rec.id}", daemon=True)
            self._threads.append(t)
            t.start()

    def _run_conn(self, conn: Conn):
        try:
            self.handle(conn)
        except (Stopping, PeerReset, PeerFin, TimeoutError):
            pass
        except Exception as e:  # a bug in a behaviour: say so, never hang
            print(f"{self.name}: connection {conn.rec.id}: {e!r}", file=sys.stderr)
            conn.reset()
        finally:
            if self.stopping:
                conn.release()
            else:
                conn.close()

    def handle(self, conn: Conn):
        raise NotImplementedError

    # -- what tests look at ----------------------------------------------

    def connections(self) -> list[ConnRecord]:
        with self._cv:
            return list(self._records)

    def connection_count(self) -> int:
        with self._cv:
            return len(self._records)

    def conn(self, i: int = -1) -> ConnRecord:
        with self._cv:
            return self._records[i]

    def wait_for(self, pred, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self._cv:
            while not pred():
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cv.wait(min(left, 0.05))
            return True

    def wait_connections(self, n: int, timeout: float) -> bool:
        return self.wait_for(lambda: len(self._records) >= n, timeout)

    def wait_end(self, i: int = -1, timeout: float = 2.0):
        """Waits until connection i has ended; returns its record."""
        self.wait_connections(1 if i < 0 else i + 1, timeout)
        rec = self.conn(i)
        self.wait_for(lambda: rec.finished, timeout)
        return rec

    def wait_event(self, kind: str, i: int = -1, timeout: float = 2.0):
        """Waits until connection i recorded `kind`; returns its time or None."""
        self.wait_connections(1 if i < 0 else i + 1, timeout)
        rec = self.conn(i)
        self.wait_for(lambda: rec.time_of(kind) is not None, timeout)
        return rec.time_of(kind)

    def wait_all_closed(self, timeout: float, since: int = 0) -> bool:
        """True when every connection (from index `since`) has ended."""
        return self.wait_for(lambda: all(r.finished for r in self._records[since:]), timeout)

    def open_connections(self, since: int = 0) -> list[ConnRecord]:
        with self._cv:
            return [r for r in self._records[since:] if not r.finished]


def raw_echo(conn: Conn):
    """Echoes until the peer's FIN, then sends FIN back and waits for the close."""
    if conn.buf:
        data, conn.buf = bytes(conn.buf), bytearray()
        conn.send_all(data)
    try:
        while True:
            data = conn.recv_some(None)
            conn.buf.clear()
            conn.send_all(data)
    except PeerFin:
        conn.shutdown_write()


# ---------------------------------------------------------------------------
# Raw TCP targets for CONNECT


class RawEchoServer(_TcpServer):
    """Echoes bytes; answers the peer's FIN with its own."""

    name = "rawecho"

    def handle(self, conn: Conn):
        raw_echo(conn)


class Blackhole(_TcpServer):
    """Accepts, reads and discards, never sends; records the peer's FIN/RST.

    on_fin="ignore" keeps the socket open after the peer's FIN so a later RST
    (a lingering close giving up) is recorded too."""

    name = "blackhole"

    def __init__(self, host: str = LOOPBACK, port: int = 0, on_fin: str = "close"):
        super().__init__(host, port)
        self.on_fin = on_fin

    def handle(self, conn: Conn):
        try:
            conn.park(read=True)
        except PeerFin:
            if self.on_fin == "ignore":
                conn.wait_reset_after_fin()


class FullBacklog:
    """A listener that never accepts and whose accept queue is full, so a new
    connect() never completes (its SYNs are dropped). start() fills the queue
    with its own connections and verifies from Python that a fresh connect
    really hangs; it raises RuntimeError when the kernel does not cooperate."""

    def __init__(self, probe_timeout: float = 0.3, host: str = LOOPBACK, port: int = 0):
        self.probe_timeout = probe_timeout
        self.host = host
        self._port = port
        self._lsock = None
        self._fillers: list[socket.socket] = []

    def start(self):
        family = family_of(self.host)
        s = socket.socket(family, socket.SOCK_STREAM)
        s.bind((self.host, self._port))
        s.listen(0)
        self._lsock = s
        self.port = s.getsockname()[1]
        self.addr = (self.host, self.port)
        for _ in range(16):
            c = socket.socket(family, socket.SOCK_STREAM)
            c.setblocking(False)
            self._fillers.append(c)
            c.connect_ex(self.addr)
            if not select.select([], [c], [], 0.1)[1]:
                break  # this one is stuck in SYN_SENT: the queue is full
        else:
            self.stop()
            raise RuntimeError("FullBacklog: the accept queue never filled")
        probe = socket.socket(family, socket.SOCK_STREAM)
        probe.settimeout(self.probe_timeout)
        try:
            probe.connect(self.addr)
        except (socket.timeout, TimeoutError):
            pass  # what we want
        else:
            self.stop()
            raise RuntimeError("FullBacklog: a probe connect() completed")
        finally:
            probe.close()
        return self

    def stop(self):
        for c in self._fillers:
            c.close()
        self._fillers.clear()
        if self._lsock is not None:
            self._lsock.close()
            self._lsock = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


class ClosedPort:
    """A port that refuses connections: bound (so nobody else takes it) but not
    listening, so a SYN to it is answered with RST."""

    def __init__(self, host: str = LOOPBACK, port: int = 0):
        self.host = host
        self._port = port
        self._sock = None

    def start(self):
        self._sock = socket.socket(family_of(self.host), socket.SOCK_STREAM)
        self._sock.bind((self.host, self._port))
        self.port = self._sock.getsockname()[1]
        self.addr = (self.host, self.port)
        return self

    def stop(self):
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


# ---------------------------------------------------------------------------
# A raw scripted upstream


class RawRequest:
    """One request as RawScriptServer read it: the exact head and body bytes."""

    def __init__(self, raw_head: bytes, index: int):
        self.raw_head = raw_head
        self.raw_body = b""
        self.index = index  # 0-based request number on its connection
        self.t_head = time.monotonic()
        lines = raw_head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ")
        self.method, self.target, self.version = (parts + ["", "", ""])[:3]
        self.headers = [tuple(p.strip() if i else p for i, p in enumerate(line.split(":", 1)))
                        for line in lines[1:] if line]

    def header(self, name: str, default=None):
        return next((h[1] for h in self.headers if h[0].lower() == name.lower() and len(h) > 1),
                    default)

    @property
    def raw(self) -> bytes:
        return self.raw_head + self.raw_body

    def __repr__(self):
        return f"<RawRequest {self.raw_head[:60]!r}... body={len(self.raw_body)}B>"


class RawScriptServer(_TcpServer):
    """An upstream that records every byte it receives, exactly, and answers
    from a script of steps (the same script for every connection, or
    `per_conn[i]` for connection i):

      bytes        send them
      callable     send fn(req) (req: the last RawRequest read, or None)
      "head"       read one request head (a RawRequest with no body)
      "request"    read one request head and its body (Content-Length or
                   chunked, read raw), appended to rec.requests
      int n        wait until n bytes in all have arrived on the connection
      "fin"        shutdown(SHUT_WR), go on
      "close"      close with FIN;  "reset": close with RST
      "park"       read until the peer ends the connection (also what
                   follows the last step)
      "repeat"     start the script again (a keep-alive loop)

    received(i) is every byte connection i got, chunks(i) the same as
    [(monotonic time, bytes)]; wait_received(n, i) waits for n of them.
    Connection ends are recorded as for every _TcpServer (ConnRecord)."""

    name = "rawscript"

    def __init__(self, script=("park",), per_conn=(), host: str = LOOPBACK, port: int = 0):
        super().__init__(host, port)
        self.script = list(script)
        self.per_conn = [list(s) for s in per_conn]
        self._chunks: dict[int, list[tuple[float, bytes]]] = {}

    # -- what tests look at ----------------------------------------------

    def chunks(self, i: int = -1) -> list[tuple[float, bytes]]:
        with self._cv:
            if not self._records:
                return []
            return list(self._chunks.get(self._records[i].id, []))

    def received(self, i: int = -1) -> bytes:
        return b"".join(d for _, d in self.chunks(i))

    def all_received(self) -> list[bytes]:
        return [self.received(i) for i in range(self.connection_count())]

    def wait_received(self, n: int, i: int = -1, timeout: float = 2.0) -> bytes:
        """Waits until connection i has received n bytes (or ended); returns them."""
        self.wait_connections(1 if i < 0 else i + 1, timeout)
        if self.connection_count() == 0:
            return b""
        rec = self.conn(i)
        self.wait_for(lambda: sum(len(d) for _, d in self._chunks.get(rec.id, [])) >= n
                      or rec.finished, timeout)
        return self.received(i)

    def requests(self) -> list[RawRequest]:
        return [r for rec in self.connections() for r in rec.requests]

    # -- the connection ----------------------------------------------------

    def _recv(self, conn: Conn, timeout=None):
        data = conn.recv_some(timeout)
        if data:
            with self._cv:
                self._chunks.setdefault(conn.rec.id, []).append((time.monotonic(), data))
                self._cv.notify_all()
        return data

    def _until(self, conn: Conn, marker: bytes) -> bytes:
        while True:
            i = conn.buf.find(marker)
            if i >= 0:
                out = bytes(conn.buf[:i + len(marker)])
                del conn.buf[:i + len(marker)]
                return out
            if len(conn.buf) > HEAD_LIMIT:
                raise BadRequest("head too large")
            self._recv(conn)

    def _exact(self, conn: Conn, n: int) -> bytes:
        while len(conn.buf) < n:
            self._recv(conn)
        out = bytes(conn.buf[:n])
        del conn.buf[:n]
        return out

    def _read_request(self, conn: Conn, body: bool) -> RawRequest:
        req = RawRequest(self._until(conn, b"\r\n\r\n"), len(conn.rec.requests))
        if body:
            te = (req.header("transfer-encoding") or "").lower()
            if "chunked" in te:
                parts = []
                while True:
                    line = self._until(conn, b"\r\n")
                    parts.append(line)
                    size = int(line.split(b";")[0].strip(), 16)
                    if size == 0:
                        break
                    parts.append(self._exact(conn, size + 2))
                while True:  # trailer fields, then the empty line
                    line = self._until(conn, b"\r\n")
                    parts.append(line)
                    if line == b"\r\n":
                        break
                req.raw_body = b"".join(parts)
            else:
                req.raw_body = self._exact(conn, int(req.header("content-length") or 0))
        with self._cv:
            conn.rec.requests.append(req)
            self._cv.notify_all()
        return req

    def handle(self, conn: Conn):
        rid = conn.rec.id
        with self._cv:
            self._chunks.setdefault(rid, [])
        steps = self.per_conn[rid] if rid < len(self.per_conn) else self.script
        total = lambda: sum(len(d) for _, d in self._chunks[rid])  # noqa: E731
        req = None
        i = 0
        while i < len(steps):
            step = steps[i]
            i += 1
            if isinstance(step, (bytes, bytearray)):
                conn.send_all(bytes(step))
            elif callable(step):
                conn.send_all(step(req))
            elif isinstance(step, int):
                while total() < step:
                    self._recv(conn)
            elif step in ("head", "request"):
                req = self._read_request(conn, step == "request")
            elif step == "fin":
                conn.shutdown_write()
            elif step == "close":
                try:  # what is already here is recorded before close() drains it
                    while self._recv(conn, 0.001):
                        pass
                except (PeerFin, PeerReset):
                    pass
                return conn.close()
            elif step == "reset":
                return conn.reset()
            elif step == "park":
                break
            elif step == "repeat":
                i = 0
            else:
                raise ValueError(f"unknown script step {step!r}")
        while True:
            self._recv(conn)
