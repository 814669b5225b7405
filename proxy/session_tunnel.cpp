// Tunnels: a CONNECT, or an Upgrade the upstream accepted. Bytes pass both
// ways untouched; each side's FIN is passed on to the other, and the tunnel
// ends when both are in.

#include "cutoff/session.hpp"
#include "cutoff/worker.hpp"

namespace cutoff {

void Session::start_tunnel(const char* upstream_bytes, size_t len) {
  enter(Phase::tunnelling);
  deadline_.clear_cap();
  deadline_.arm_cap(TimeoutName::tunnel_max_duration, route().tunnel_max_duration);
  if (len > 0) send_to_client(upstream_bytes, len);
  if (!ex_->stash.empty()) {
    upstream_.send(ex_->stash.data(), ex_->stash.size());
    ex_->record.up_bytes += ex_->stash.size();
    ex_->stash.clear();
  }
  // A client that half-closed before the tunnel was up: its FIN goes on now.
  if (client_eof_) upstream_.shutdown_write();
  keep_reading_client();
  upstream_.start_reading();
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
