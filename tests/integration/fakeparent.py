"""A parent proxy for cutoff's integration tests (SPEC section 11).

FakeParent is a small forward proxy on 127.0.0.1: CONNECT opens a tunnel to
the target, an absolute-form request is sent on to its origin (on a fresh
connection, "Connection: close") and the answer comes back with a
Content-Length on the same, kept-alive connection from cutoff. Every request
it reads is recorded (method, target, Proxy-Authorization, which connection)
so that a test can check the form cutoff used, its credentials and its
pooling.

Modes, for a parent that misbehaves:
- "forward": as above;
- "hang": reads a CONNECT and never answers it;
- "refuse": answers every request with `refuse_status`, a Proxy-Status of
  its own (`proxy_status`), and closes;
- "interim": answers CONNECT with a 100 Continue before its 200.
With `credentials` ("user:password"), a request without them gets 407.
"""

from __future__ import annotations

import base64
import select
import socket
from urllib.parse import urlsplit

from fakenet import LOOPBACK, Conn, PeerFin, _TcpServer
from fakeupstream import head_bytes, parse_request_head

PROXY_STATUS = "fakeparent; error=http_request_denied"


class ParentRequest:
    def __init__(self, method, target, authorization, conn_id):
        self.method = method
        self.target = target
        self.authorization = authorization
        self.conn_id = conn_id

    def __repr__(self):
        return f"{self.method} {self.target} (conn {self.conn_id}, auth {self.authorization!r})"


def basic(credentials: str) -> str:
    return "Basic " + base64.b64encode(credentials.encode()).decode()


class FakeParent(_TcpServer):
    name = "fakeparent"

    def __init__(self, mode: str = "forward", credentials: str | None = None,
                 refuse_status: int = 403, proxy_status: str = PROXY_STATUS):
        super().__init__(LOOPBACK, 0)
        self.mode = mode
        self.expected = basic(credentials) if credentials else None
        self.refuse_status = refuse_status
        self.proxy_status = proxy_status
        self.requests: list[ParentRequest] = []

    def wait_requests(self, n: int, timeout: float) -> bool:
        return self.wait_for(lambda: len(self.requests) >= n, timeout)

    def handle(self, conn: Conn):
        try:
            while True:
                head = conn.read_until(b"\r\n\r\n")
                req = parse_request_head(head, conn.rec.id, len(conn.rec.requests))
                with self._cv:
                    conn.rec.requests.append(req)
                    self.requests.append(ParentRequest(req.method, req.target,
                                                       req.header("proxy-authorization"),
                                                       conn.rec.id))
                    self._cv.notify_all()
                if self.expected and req.header("proxy-authorization") != self.expected:
                    return self.answer(conn, 407, [("Proxy-Authenticate", 'Basic realm="parent"')])
                if self.mode == "refuse":
                    return self.answer(conn, self.refuse_status,
                                       [("Proxy-Status", self.proxy_status)])
                if req.method == "CONNECT":
                    if self.mode == "hang":
                        return conn.park(read=True)
                    return self.tunnel(conn, req.target)
                if not self.forward(conn, req):
                    return
        except PeerFin:
            return

    @staticmethod
    def answer(conn: Conn, status: int, headers):
        body = f"fake parent: {status}\n".encode()
        conn.send_all(head_bytes(status, list(headers) + [("Content-Length", len(body)),
                                                          ("Connection", "close")]) + body)
        conn.close()

    def forward(self, conn: Conn, req) -> bool:
        url = urlsplit(req.target)
        if url.scheme != "http":
            self.answer(conn, 400, [])
            return False
        length = int(req.header("content-length", "0"))
        body = conn.read_exact(length) if length else b""
        path = (url.path or "/") + (f"?{url.query}" if url.query else "")
        lines = [f"{req.method} {path} HTTP/1.1"]
        for name, value in req.headers:
            if name.lower() not in ("proxy-authorization", "proxy-connection", "connection"):
                lines.append(f"{name}: {value}")
        lines.append("Connection: close")
        with socket.create_connection((url.hostname, url.port or 80), timeout=30) as origin:
            origin.sendall(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
            answer = self.read_to_end(origin, conn)
        head, _, body = answer.partition(b"\r\n\r\n")
        status_line, *fields = head.decode("latin-1").split("\r\n")
        kept = [f for f in fields
                if f.split(":", 1)[0].strip().lower()
                not in ("content-length", "connection", "transfer-encoding")]
        out = "\r\n".join([status_line] + kept + [f"Content-Length: {len(body)}",
                                                  f"X-Parent-Conn: {conn.rec.id}"])
        conn.send_all(out.encode("latin-1") + b"\r\n\r\n" + body)
        return True

    def read_to_end(self, origin: socket.socket, conn: Conn) -> bytes:
        """The origin's answer, up to its FIN; watching cutoff's side meanwhile,
        so that a FIN or reset from cutoff is recorded (and ends the wait)."""
        chunks = []
        while not self.stopping:
            ready, _, _ = select.select([origin, conn.sock], [], [], 0.05)
            if conn.sock in ready:
                conn.recv_some(0.01)  # raises PeerFin or PeerReset when cutoff left
            if origin not in ready:
                continue
            data = origin.recv(65536)
            if not data:
                break
            chunks.append(data)
        return b"".join(chunks)

    def tunnel(self, conn: Conn, authority: str):
        host, _, port = authority.rpartition(":")
        target = socket.create_connection((host.strip("[]"), int(port)), timeout=5)
        target.setblocking(False)
        if self.mode == "interim":
            conn.send_all(b"HTTP/1.1 100 Continue\r\n\r\n")
        conn.send_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
        try:
            if conn.buf:
                target.sendall(bytes(conn.buf))
                conn.buf.clear()
            self.relay(conn.sock, target)
        finally:
            target.close()

    def relay(self, a: socket.socket, b: socket.socket):
        """Copies both ways until both sides have sent FIN (or one reset)."""
        open_from = {a: b, b: a}
        while open_from and not self.stopping:
            ready, _, _ = select.select(list(open_from), [], [], 0.05)
            for src in ready:
                try:
                    data = src.recv(65536)
                except OSError:
                    return
                dst = open_from[src]
                if data:
                    dst.setblocking(True)
                    dst.sendall(data)
                    dst.setblocking(False)
                    continue
                del open_from[src]
                try:
                    dst.shutdown(socket.SHUT_WR)
                except OSError:
                    return
