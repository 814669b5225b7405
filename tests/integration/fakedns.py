"""A DNS server for cutoff's integration tests (Python stdlib only).

FakeDns listens on UDP 127.0.0.1 (an ephemeral port) and answers each query
from what the test told it:

- answer(name, *addresses): A and AAAA queries for `name` get the addresses
  of that family (none is a NOERROR answer without records, so a name with
  only IPv4 addresses still resolves);
- swallow(name): queries for `name`, or for `name` with a search domain
  appended, are never answered;
- every other name gets NXDOMAIN.

Names compare case-insensitively, without the trailing dot. Every query is
logged (`queries`, `names_asked()`), so a test can prove that a name was
asked for, or that it was not. stop() closes the socket and joins the
thread.
"""

from __future__ import annotations

import select
import socket
import struct
import threading
import time

LOOPBACK = "127.0.0.1"
POLL_STEP = 0.02  # seconds between checks of the stop flag
TTL = 60

QTYPES = {1: "A", 28: "AAAA"}
_FAMILY = {"A": socket.AF_INET, "AAAA": socket.AF_INET6}

FLAG_RESPONSE = 0x8000
FLAG_AUTHORITATIVE = 0x0400
FLAG_RECURSION_DESIRED = 0x0100
FLAG_RECURSION_AVAILABLE = 0x0080
RCODE_NXDOMAIN = 3


def _norm(name: str) -> str:
    return name.rstrip(".").lower()


def _question(packet: bytes):
    """(name, qtype number, end of the question) of a one-question
    message, or None."""
    if len(packet) < 12 or struct.unpack("!H", packet[4:6])[0] != 1:
        return None
    labels, i = [], 12
    while True:
        if i >= len(packet):
            return None
        n = packet[i]
        i += 1
        if n == 0:
            break
        if n & 0xC0 or i + n > len(packet):
            return None  # a question carries no compression
        labels.append(packet[i:i + n].decode("ascii", "replace"))
        i += n
    if i + 4 > len(packet):
        return None
    qtype, _qclass = struct.unpack("!HH", packet[i:i + 4])
    return ".".join(labels), qtype, i + 4


def parse_query(packet: bytes):
    """(id, flags, name, qtype number, end of the question) of a query, or
    None when the packet is not a one-question query."""
    question = _question(packet)
    if question is None:
        return None
    qid, flags = struct.unpack("!HH", packet[:4])
    if flags & FLAG_RESPONSE:
        return None
    return (qid, flags) + question


def build_query(name: str, qtype: int, qid: int = 0x1234) -> bytes:
    """A one-question query with recursion desired (for self-tests)."""
    question = b"".join(bytes([len(p)]) + p.encode("ascii") for p in name.split(".") if p)
    return (struct.pack("!HHHHHH", qid, FLAG_RECURSION_DESIRED, 1, 0, 0, 0)
            + question + b"\x00" + struct.pack("!HH", qtype, 1))


def parse_answer(packet: bytes):
    """(id, rcode, [addresses]) of one of FakeDns's answers (for self-tests)."""
    qid, flags, _qd, ancount = struct.unpack("!HHHH", packet[:8])
    end = _question(packet)[2]
    out, i = [], end
    for _ in range(ancount):
        rtype, _rclass, _ttl, rdlen = struct.unpack("!HHIH", packet[i + 2:i + 12])
        rdata = packet[i + 12:i + 12 + rdlen]
        out.append(socket.inet_ntop(_FAMILY[QTYPES[rtype]], rdata))
        i += 12 + rdlen
    return qid, flags & 0xF, out


class FakeDns:
    def __init__(self):
        self._answers: dict[str, list[str]] = {}
        self._swallowed: set[str] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.queries: list[tuple[str, str, float]] = []  # (name, "A"/"AAAA"/number, when)
        self.sock = None
        self.port = None
        self._thread = None

    # -- script ----------------------------------------------------------

    def answer(self, name: str, *addresses: str) -> "FakeDns":
        with self._lock:
            self._answers[_norm(name)] = list(addresses)
        return self

    def swallow(self, name: str) -> "FakeDns":
        with self._lock:
            self._swallowed.add(_norm(name))
        return self

    # -- log -------------------------------------------------------------

    def names_asked(self) -> list[str]:
        with self._lock:
            return [name for name, _, _ in self.queries]

    def types_asked(self, name: str) -> set[str]:
        name = _norm(name)
        with self._lock:
            return {qtype for n, qtype, _ in self.queries if n == name}

    # -- lifecycle -------------------------------------------------------

    @property
    def address(self) -> str:
        """The server as [dns] servers names it."""
        return f"{LOOPBACK}:{self.port}"

    def start(self) -> "FakeDns":
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((LOOPBACK, 0))
        self.port = self.sock.getsockname()[1]
        self._thread = threading.Thread(target=self._serve, name=f"fakedns:{self.port}",
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self):
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # -- serving ---------------------------------------------------------

    def _serve(self):
        while not self._stop.is_set():
            ready, _, _ = select.select([self.sock], [], [], POLL_STEP)
            if not ready:
                continue
            try:
                packet, peer = self.sock.recvfrom(4096)
            except OSError:
                continue
            reply = self._reply(packet)
            if reply is not None:
                try:
                    self.sock.sendto(reply, peer)
                except OSError:
                    pass

    def _swallowed_name(self, name: str) -> bool:
        return any(name == s or name.startswith(s + ".") for s in self._swallowed)

    def _reply(self, packet: bytes):
        parsed = parse_query(packet)
        if parsed is None:
            return None
        qid, flags, raw_name, qtype, end = parsed
        name = _norm(raw_name)
        kind = QTYPES.get(qtype, str(qtype))
        with self._lock:
            self.queries.append((name, kind, time.monotonic()))
            if self._swallowed_name(name):
                return None
            addresses = self._answers.get(name)
        reply_flags = (FLAG_RESPONSE | FLAG_AUTHORITATIVE | FLAG_RECURSION_AVAILABLE
                       | (flags & FLAG_RECURSION_DESIRED))
        records = []
        if addresses is None:
            reply_flags |= RCODE_NXDOMAIN
        elif kind in _FAMILY:
            family = _FAMILY[kind]
            for address in addresses:
                try:
                    rdata = socket.inet_pton(family, address)
                except OSError:
                    continue  # the other family
                # The owner name points back at the question (offset 12).
                records.append(b"\xc0\x0c" + struct.pack("!HHIH", qtype, 1, TTL, len(rdata))
                               + rdata)
        head = struct.pack("!HHHHHH", qid, reply_flags, 1, len(records), 0, 0)
        return head + packet[12:end] + b"".join(records)
