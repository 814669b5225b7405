// Tunnels: a CONNECT, or an Upgrade the upstream accepted. Bytes pass both
// ways untouched; each side's FIN is passed on to the other, and the tunnel
// ends when both are in. A CONNECT tunnel whose client starts a TLS
// handshake is in the tls_handshake phase until the upstream answers its
// ClientHello, whose server name (SNI) the access log records (SPEC §10).

#include "cutoff/session.hpp"
#include "cutoff/worker.hpp"

namespace cutoff {

void Session::start_tunnel(const char* upstream_bytes, size_t len) {
  enter(Phase::tunnelling);
  deadline().clear_cap();
  deadline().arm_cap(TimeoutName::tunnel_max_duration,
                     limit(TimeoutName::tunnel_max_duration, route().tunnel_max_duration));
  // An Upgrade's protocol is the upstream's to judge; a CONNECT's first
  // client bytes are read for a ClientHello.
  ex_->client_hello = ClientHelloReader{};
  ex_->watching_hello = ex_->is_connect;
  if (len > 0) send_to_client(upstream_bytes, len);
  if (!ex_->stash.empty()) {
    if (ex_->watching_hello) watch_client_hello(ex_->stash.data(), ex_->stash.size());
    upstream_.send(ex_->stash.data(), ex_->stash.size());
    ex_->record.up_bytes += ex_->stash.size();
    ex_->stash.clear();
  }
  // A client that half-closed before the tunnel was up: its FIN goes on now.
  if (client_eof_) upstream_.shutdown_write();
  keep_reading_client();
  upstream_.start_reading();
}

// The client's first bytes in a CONNECT tunnel. A ClientHello, whole or
// not yet, starts tls_handshake_timeout; anything else is plain TCP, which
// CONNECT may carry as well, and is left alone.
void Session::watch_client_hello(const char* data, size_t len) {
  switch (ex_->client_hello.feed(data, len)) {
    case ClientHelloReader::Result::not_tls:
      ex_->watching_hello = false;
      if (phase_ == Phase::tls_handshake) enter(Phase::tunnelling);
      return;
    case ClientHelloReader::Result::hello:
      ex_->watching_hello = false;
      ex_->record.sni = ex_->client_hello.sni();
      break;
    case ClientHelloReader::Result::need_more:
      break;
  }
  if (phase_ == Phase::tunnelling) enter(Phase::tls_handshake);
}

// The upstream's first bytes: its answer to the ClientHello (or, for a
// protocol where the server speaks first, no handshake to watch).
void Session::end_hello_watch() {
  if (ex_->watching_hello) {
    ex_->watching_hello = false;
    ex_->client_hello = ClientHelloReader{};  // gives back what a partial hello kept
  }
  if (phase_ == Phase::tls_handshake) enter(Phase::tunnelling);
}

// One side sent its FIN: pass it on behind what is queued for the other.
// Once both are in, both sockets close as soon as their FIN is out, with
// FIN and without lingering: neither peer will send another byte.
void Session::tunnel_half_close(TcpSocket& from) {
  TcpSocket& to = &from == &client_ ? upstream_ : client_;
  to.shutdown_write();
  if (!(client_eof_ && upstream_eof_)) return;
  ex_->record.outcome = Outcome::ok();
  log_exchange();
  worker_.closings().close(std::move(upstream_), route().tunnel_idle_timeout,
                           config().linger_timeout, /*peer_fin_in=*/true);
  hand_over_client(route().tunnel_idle_timeout);
  end(/*client_handed_over=*/true);
}

// A deadline or a broken side ends the tunnel: the upstream goes as the
// route's teardown says, the client gets what is queued and a FIN.
void Session::end_tunnel(Outcome outcome) {
  ex_->record.outcome = outcome;
  log_exchange();
  teardown_upstream();
  begin_closing();
}

}  // namespace cutoff
