"""A TLS client socket that still tells FIN from RST (Python stdlib only).

Python's SSLSocket reports a connection reset in the middle of a TLS stream
as an unexpected EOF, the same as a bare FIN, and the tests must tell them
apart (a truncated response ends with RST). TlsSocket runs TLS in memory
BIOs over the plain socket and behaves like one for harness.Client:

- recv(n) returns plaintext; b"" when the TCP connection ended with FIN
  (after a close_notify, which is not answered, or without one); a reset raises
  ConnectionResetError; a timeout raises socket.timeout;
- sendall, settimeout, setsockopt, shutdown (close_notify first for
  SHUT_WR), close, fileno, getsockname as a socket;
- getpeercert(), selected_alpn_protocol(), version() as an SSLSocket;
- a failed handshake raises the ssl.SSLError, after sending our alert as a
  real client would.

start_tls(client, ctx, server_hostname) turns a harness.Client (after a
CONNECT, say) into a TLS client in place; read_response and wait_end then
work as before.
"""

from __future__ import annotations

import socket
import ssl


class TlsSocket:
    def __init__(self, sock: socket.socket, ctx: ssl.SSLContext, server_hostname: str | None):
        self.sock = sock
        self._incoming, self._outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.tls = ctx.wrap_bio(self._incoming, self._outgoing, server_hostname=server_hostname)
        self.closed_by_peer = False  # close_notify received

    def _flush(self):
        data = self._outgoing.read()
        if data:
            self.sock.sendall(data)

    def _feed(self) -> bool:
        """Hands the next ciphertext to TLS; False on FIN."""
        data = self.sock.recv(65536)
        if not data:
            return False
        self._incoming.write(data)
        return True

    def handshake(self):
        while True:
            try:
                self.tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                self._flush()
                if not self._feed():
                    raise ssl.SSLEOFError("the peer closed during the TLS handshake")
            except ssl.SSLError:
                try:
                    self._flush()  # the alert saying why
                except OSError:
                    pass
                raise
        self._flush()
        return self

    # -- socket-like -------------------------------------------------------

    def recv(self, n: int) -> bytes:
        while True:
            if self.closed_by_peer:
                # After close_notify only the TCP ending is left to see.
                while self.sock.recv(65536):
                    pass
                return b""
            try:
                data = self.tls.read(n)
                if data:
                    return data
                # An empty read is the peer's close_notify.
            except ssl.SSLWantReadError:
                self._flush()
                if not self._feed():
                    return b""  # FIN without close_notify
                continue
            except ssl.SSLZeroReturnError:
                pass
            # Not answered with our own close_notify: bytes sent now could
            # only provoke a reset from a peer that has closed already.
            self.closed_by_peer = True

    def sendall(self, data: bytes):
        self.tls.write(data)
        self._flush()

    def settimeout(self, t):
        self.sock.settimeout(t)

    def setsockopt(self, *args):
        self.sock.setsockopt(*args)

    def shutdown(self, how):
        if how in (socket.SHUT_WR, socket.SHUT_RDWR):
            try:
                self.tls.unwrap()
            except ssl.SSLError:
                pass
            self._flush()
        self.sock.shutdown(how)

    def close(self):
        self.sock.close()

    def fileno(self):
        return self.sock.fileno()

    def getsockname(self):
        return self.sock.getsockname()

    # -- SSLSocket-like ------------------------------------------------------

    def getpeercert(self, binary_form: bool = False):
        return self.tls.getpeercert(binary_form)

    def selected_alpn_protocol(self):
        return self.tls.selected_alpn_protocol()

    def version(self):
        return self.tls.version()


def start_tls(client, ctx: ssl.SSLContext, server_hostname: str | None) -> TlsSocket:
    """Runs the TLS handshake on a harness.Client's socket and makes the
    client speak TLS from then on; returns the TlsSocket."""
    if client.buf:
        raise ValueError(f"bytes before the TLS handshake: {bytes(client.buf[:40])!r}")
    tls = TlsSocket(client.sock, ctx, server_hostname).handshake()
    client.sock = tls
    return tls
