"""TLS upstreams for cutoff's integration tests (Python stdlib only).

TlsUpstream is fakeupstream.FakeUpstream behind TLS: once the handshake is
done, every behaviour of the catalogue works inside TLS exactly as it does
in plain HTTP, chosen by the request path (`/ok` keeps the connection alive
and counts it, `/hang` never answers, `/stall-mid-body` sends the head and
part of the body then goes quiet, `/reset-mid-body` resets in the middle of
the body, ...). The TLS runs in memory BIOs over fakenet's polled Conn, so
each connection's record says how its TCP connection ended (FIN, RST...)
as for every fake server, and stop() ends everything at once.

`handshake` chooses how the server meets a ClientHello:

    "ok"      the handshake with `cert` / `key`, then HTTP as above; a
              certificate issued for another name, or a self-signed one,
              makes the "wrong name" and "unknown CA" upstreams
    "silent"  accepts TCP, reads the ClientHello and never answers it
    "alert"   answers the ClientHello with a fatal handshake_failure alert
              record (15 03 03 00 02 02 28), then closes (FIN)

What each connection's ConnRecord gains: the events "client_hello" (the
first TLS handshake record arrived) and "handshake" (completed); `sni` (the
server name the client sent, or None), `alpn` (the protocol selected, or
None), `tls_error` (why a handshake failed on our side, e.g. the client
rejected the certificate with an alert, or None).

`python3 tlsupstream.py CERT KEY` runs one for openssl s_client or curl.
"""

from __future__ import annotations

import ssl
import sys
import time

from fakenet import LOOPBACK, Conn, PeerReset
from fakeupstream import FakeUpstream, serve_until_interrupted

HANDSHAKE_RECORD = 0x16
# A TLS 1.2-versioned record: alert (21), length 2, fatal (2),
# handshake_failure (40). TLS 1.3 clients accept it in answer to a hello.
ALERT_HANDSHAKE_FAILURE = bytes([0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x28])
HANDSHAKES = ("ok", "silent", "alert")


class TlsConn(Conn):
    """A Conn whose buf holds the decrypted stream: recv_some and
    send_all speak TLS, the socket underneath is polled as for plain Conns."""

    def __init__(self, server, sock, record, ctx: ssl.SSLContext):
        super().__init__(server, sock, record)
        self._incoming, self._outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.tls = ctx.wrap_bio(self._incoming, self._outgoing, server_side=True)
        self.tls.conn_record = record  # for the SNI callback
        self.handshaken = False

    def _flush(self, timeout=None):
        data = self._outgoing.read()
        if data:
            super().send_all(data, timeout)

    def _feed(self, timeout) -> bool:
        """Hands the next ciphertext from the socket to TLS; False on timeout."""
        data = self.recv_raw(timeout)
        if data is None:
            return False
        if not self.rec.time_of("client_hello") and data[0] == HANDSHAKE_RECORD:
            self.rec._add("client_hello")
        self._incoming.write(data)
        return True

    def do_handshake(self) -> bool:
        """The server's handshake; False (with rec.tls_error) when TLS failed."""
        while True:
            try:
                self.tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                self._flush()
                self._feed(None)
            except ssl.SSLError as e:
                self.rec.tls_error = e.reason or str(e)
                try:
                    self._flush()  # our alert, if TLS made one
                except PeerReset:
                    pass
                return False
        self._flush()
        self.handshaken = True
        self.rec.alpn = self.tls.selected_alpn_protocol()
        self.rec._add("handshake")
        return True

    def recv_some(self, timeout=None):
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            try:
                data = self.tls.read(65536)
            except ssl.SSLWantReadError:
                self._flush()  # e.g. TLS 1.3 session tickets
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return None
                self._feed(left)
                continue
            except ssl.SSLZeroReturnError:
                data = b""
            if not data:
                # close_notify (an empty read): record how the TCP
                # connection itself ends.
                while True:
                    self.recv_raw(None)
            self.buf += data
            return data

    def send_all(self, data: bytes, timeout=None) -> None:
        self.tls.write(data)
        self._flush(timeout)

    def send_records(self, pieces, timeout=None) -> None:
        """Each piece in a TLS record of its own, all in one TCP write."""
        for piece in pieces:
            self.tls.write(piece)
        self._flush(timeout)

    # A handler may end its TLS with a bare FIN instead (see close-delimited).
    close_notify_on_shutdown = True

    def _close_notify(self):
        if not self.handshaken or self.fin_seen or self.rec.finished:
            return
        try:
            self.tls.unwrap()
        except ssl.SSLError:
            pass  # our close_notify is written; the peer's is not awaited
        try:
            self._flush(0.5)
        except (PeerReset, TimeoutError, OSError):
            pass

    def shutdown_write(self):
        if self.close_notify_on_shutdown:
            self._close_notify()
        super().shutdown_write()

    def close(self):
        if self.open:
            self._close_notify()
        super().close()


class TlsUpstream(FakeUpstream):
    """FakeUpstream inside TLS; see the module docstring."""

    name = "tlsupstream"

    def __init__(self, cert: str | None = None, key: str | None = None, handshake: str = "ok",
                 alpn=("http/1.1",), host: str = LOOPBACK, port: int = 0):
        super().__init__(host, port)
        if handshake not in HANDSHAKES:
            raise ValueError(f"handshake must be one of {HANDSHAKES}, not {handshake!r}")
        self.handshake = handshake
        self.ctx = None
        if handshake == "ok":
            self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self.ctx.load_cert_chain(cert, key)
            if alpn:
                self.ctx.set_alpn_protocols(list(alpn))
            self.ctx.sni_callback = self._on_sni

    @staticmethod
    def _on_sni(tls, name, ctx):
        tls.conn_record.sni = name

    def handle(self, conn: Conn):
        rec = conn.rec
        rec.sni = rec.alpn = rec.tls_error = None
        if self.handshake == "silent":
            return self._silent(conn)
        if self.handshake == "alert":
            return self._alert(conn)
        # The accepted Conn hands its socket to a TlsConn, which stop()
        # releases and this thread closes.
        tls = TlsConn(self, conn.sock, rec, self.ctx)
        self._conns[self._conns.index(conn)] = tls
        conn.open = False
        try:
            if tls.do_handshake():
                super().handle(tls)
        except ssl.SSLError as e:  # a bad record from the peer, mid-stream
            rec.tls_error = e.reason or str(e)
        finally:
            if self.stopping:
                tls.release()
            else:
                tls.close()

    @staticmethod
    def _note_hello(conn: Conn, data: bytes):
        if data and not conn.rec.time_of("client_hello") and data[0] == HANDSHAKE_RECORD:
            conn.rec._add("client_hello")

    def _silent(self, conn: Conn):
        """Reads (and drops) whatever comes; never sends a byte."""
        while True:
            self._note_hello(conn, conn.recv_raw(None))

    def _alert(self, conn: Conn):
        """Waits for one whole handshake record, answers it with an alert."""
        while True:
            conn.recv_some(None)
            self._note_hello(conn, bytes(conn.buf[:1]))
            if len(conn.buf) >= 5 and len(conn.buf) >= 5 + int.from_bytes(conn.buf[3:5], "big"):
                break
        conn.buf.clear()
        conn.send_all(ALERT_HANDSHAKE_FAILURE)
        conn.close()


if __name__ == "__main__":
    import argparse

    ap = argparse.ArgumentParser(description="Run a TLS fake upstream for manual poking.")
    ap.add_argument("cert")
    ap.add_argument("key")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--handshake", choices=HANDSHAKES, default="ok")
    args = ap.parse_args()
    serve_until_interrupted(TlsUpstream(args.cert, args.key, args.handshake, port=args.port),
                            f"https://{LOOPBACK}:{{port}}/",
                            lambda r: f"{r} sni={r.sni} alpn={r.alpn} tls_error={r.tls_error}")
