// The session's state machine: every phase, the deadline that guards it, what
// happens when that deadline fires, and how socket events reach the phase
// that handles them. The phases' work is in the session_*.cpp files:
// request (the client's side of an exchange), upstream (reaching it, retry),
// response (relaying it), tunnel, and ending.

#include "cutoff/session.hpp"

#include <fmt/format.h>
#include <netinet/in.h>

#include <cassert>

#include "cutoff/socket_address.hpp"
#include "cutoff/worker.hpp"

namespace cutoff {

Session::Session(Worker& worker) : worker_(worker) {}

Session::~Session() {
  set_phase(Phase::ended);
  if (!ex_) return;
  if (ex_->lookup != nullptr) worker_.resolver().cancel(ex_->lookup);
  ex_->lookup = nullptr;
  ex_->race.cancel();
  worker_.return_exchange(std::move(ex_));
}

const Config& Session::config() const {
  return ex_ ? *ex_->config : *worker_.config();
}

// Every phase change goes through here, so the phase and tunnel gauges stay
// exact. (accept() starts a session in `ended` without counting it, and
// the destructor ends it here: `ended` nets to zero over a session's life.)
void Session::set_phase(Phase phase) {
  if (phase == phase_) return;
  Metrics& metrics = worker_.metrics();
  metrics.in_phase[static_cast<size_t>(phase_)].add(-1);
  metrics.in_phase[static_cast<size_t>(phase)].add(1);
  if (in_tunnel(phase_) != in_tunnel(phase)) metrics.tunnels.add(in_tunnel(phase) ? 1 : -1);
  phase_ = phase;
}

bool Session::accept(uv_stream_t* server, std::list<Session>::iterator self) {
  self_ = self;
  id_ = worker_.next_session_id();
  accepted_at_ = uv_now(worker_.loop());
  phase_ = Phase::ended;  // until the connection is really ours (no tunnel to count)
  if (client_.init(worker_.loop(), worker_.read_buffer(), this) != 0) return false;
  if (uv_accept(server, client_.stream()) != 0) {
    client_.close();
    return false;
  }
  int len = sizeof peer_;
  uv_tcp_getpeername(client_.handle(), reinterpret_cast<sockaddr*>(&peer_), &len);
  if (!client_allowed()) {
    // Refused before it sends anything: a stranger learns nothing but a FIN.
    client_.close();
    return false;
  }
  client_.start_reading();
  enter(Phase::idle);
  return true;
}

// The one place where a phase meets its deadline. Every phase but idle is an
// exchange's, under the exchange's own deadline.
void Session::enter(Phase phase) {
  if (phase_ == Phase::idle) worker_.end_keep_alive(self_);
  set_phase(phase);
  phase_started_at_ = uv_now(worker_.loop());
  const ListenConfig& listen = config().listen;
  switch (phase) {
    case Phase::idle:
      // client_keepalive_timeout: the worker's keep-alive queue keeps it for
      // all its idle connections under one timer, with the worker's current
      // config (an idle connection pins none).
      return worker_.keep_alive(self_);
    case Phase::reading_head:
      return deadline().arm(TimeoutName::request_header_timeout, listen.request_header_timeout);
    case Phase::resolving:
      return arm(TimeoutName::dns_timeout, route().dns_timeout);
    case Phase::connecting:
      return arm(TimeoutName::connect_timeout, route().connect_timeout);
    case Phase::upstream_handshake:
    case Phase::client_handshake:
      return arm(TimeoutName::tls_handshake_timeout, route().tls_handshake_timeout);
    case Phase::sending_request:
      // A body moves: a stall ends it (idle_timeout), and so does a drip
      // that keeps it barely alive (min_rate).
      return deadline().arm(TimeoutName::idle_timeout,
                            limit(TimeoutName::idle_timeout, route().idle_timeout),
                            route().min_rate);
    case Phase::awaiting_response:
      return arm(TimeoutName::response_header_timeout, route().response_header_timeout);
    case Phase::streaming:
      return deadline().arm(TimeoutName::idle_timeout,
                            limit(TimeoutName::idle_timeout, route().idle_timeout),
                            route().min_rate);
    case Phase::tls_handshake:
      return arm(TimeoutName::tls_handshake_timeout, route().tls_handshake_timeout);
    case Phase::tunnelling:
      return deadline().arm(TimeoutName::tunnel_idle_timeout,
                            limit(TimeoutName::tunnel_idle_timeout, route().tunnel_idle_timeout),
                            /*idle=*/true);
    case Phase::ended:
      if (ex_) deadline().disarm();
      return;
  }
}

// The route's value, or the shorter one the request's Cutoff-Timeout asked
// for (SPEC §12).
Duration Session::limit(TimeoutName name, Duration configured) const {
  return ex_->asked.apply(name, configured);
}

void Session::arm(TimeoutName name, Duration configured) {
  deadline().arm(name, limit(name, configured));
}

bool Session::deadline_armed() const {
  switch (phase_) {
    case Phase::ended:
      return true;
    case Phase::idle:
      return worker_.keep_alive_armed();
    default:
      return ex_ && deadline().armed();
  }
}

void Session::on_deadline(const Expiry& expiry) {
  switch (phase_) {
    case Phase::idle:
      return begin_closing();  // a quiet keep-alive connection: FIN, then linger
    case Phase::reading_head:
      return fail_request_head_timeout(expiry);
    case Phase::resolving:
    case Phase::connecting:
    case Phase::upstream_handshake:
    case Phase::sending_request:
    case Phase::awaiting_response:
    case Phase::streaming:
      return fail_timeout(expiry);
    case Phase::client_handshake:
      return end_client_handshake(Outcome::timed_out(expiry.name));
    case Phase::tls_handshake:
    case Phase::tunnelling:
      return end_tunnel(Outcome::timed_out(expiry.name));
    case Phase::ended:
      return;
  }
}

// --- socket events -------------------------------------------------------------

void Session::on_data(TcpSocket& socket, const char* data, size_t len) {
  if (&socket == &client_) {
    on_client_bytes(data, len);
  } else {
    on_upstream_bytes(data, len);
  }
}

void Session::on_handshake(TcpSocket& socket, int status) {
  if (&socket == &client_) return on_client_handshake(status);
  on_upstream_handshake(status);
}

void Session::on_read_end(TcpSocket& socket, int status) {
  if (&socket == &client_) {
    client_eof_ = true;
    return on_client_end(status);
  }
  upstream_eof_ = true;
  on_upstream_end(status);
}

// The client's FIN or reset. A FIN after the whole request is a half-close
// (SPEC §7b): the response still comes, and the connection ends after it.
void Session::on_client_end(int status) {
  bool fin = status == UV_EOF;
  switch (phase_) {
    case Phase::idle:
      return begin_closing();  // nothing owed: our FIN goes out and the socket closes
    case Phase::client_handshake:
      return client_gone();
    case Phase::tls_handshake:
    case Phase::tunnelling:
      if (fin) return tunnel_half_close(client_);
      return end_tunnel(Outcome::client_aborted());
    case Phase::ended:
      return;
    default:
      // The request is whole (its body was parsed as it came, even before
      // the upstream was there): the exchange goes on. A FIN inside a
      // request, or a reset, is an abort.
      if (fin && ex_->request_done) return;
      return client_gone();
  }
}

void Session::on_upstream_end(int status) {
  bool fin = status == UV_EOF;
  switch (phase_) {
    case Phase::tls_handshake:
    case Phase::tunnelling:
      if (fin) return tunnel_half_close(upstream_);
      return end_tunnel(Outcome::failed(ProxyError::connection_terminated));
    case Phase::streaming:
      // A close-delimited body ends with the connection.
      if (fin && ex_->response_parser.finish() == HttpParser::Event::message_complete) {
        return on_response_complete(0);
      }
      return fail_upstream(ProxyError::connection_terminated,
                           fmt::format("{} closed the connection in the middle of the response "
                                       "(route {})",
                                       describe_target(), ex_->route.name));
    case Phase::connecting:
      // Only a parent's connection is read before it is used.
      return fail_upstream(
          ProxyError::connection_terminated,
          fmt::format("parent proxy {} closed the connection before answering CONNECT {} ({}, "
                      "route {})",
                      ex_->parent->url, target_authority(), fin ? "FIN" : uv_err_name(status),
                      ex_->route.name));
    case Phase::upstream_handshake:
      return fail_upstream(
          ProxyError::connection_terminated,
          fmt::format("{} closed the connection during the TLS handshake ({}, "
                      "route {})",
                      describe_target(), fin ? "FIN" : uv_err_name(status), ex_->route.name));
    case Phase::sending_request:
    case Phase::awaiting_response:
      if (retry_on_fresh_connection()) return;
      return fail_upstream(
          ProxyError::connection_terminated,
          fmt::format("{} closed the connection before a complete response head ({}, route {})",
                      describe_target(), fin ? "FIN" : uv_err_name(status), ex_->route.name));
    default:
      return;
  }
}

void Session::on_drained(TcpSocket& socket, int status) {
  bool client = &socket == &client_;
  if (status < 0) {
    // The peer is gone (EPIPE, ECONNRESET): nothing more can reach it.
    if (client) return client_gone();
    if (in_tunnel(phase_)) {
      return end_tunnel(Outcome::failed(ProxyError::connection_terminated));
    }
    return fail_upstream(ProxyError::connection_terminated,
                         fmt::format("writing to {} failed: {} (route {})", describe_target(),
                                     uv_strerror(status), ex_->route.name));
  }
  // An idle connection may still be flushing its last response.
  if (!ex_) return;
  deadline().touch();  // bytes reached the kernel: moving, though counted when they came in
  if (client) {
    // The client caught up: read from the upstream again, and min_rate
    // judges the download again.
    deadline().resume_rate();
    if (upstream_ && (phase_ == Phase::streaming || in_tunnel(phase_))) {
      upstream_.start_reading();
    }
  } else {
    keep_reading_client();
  }
}

// Only tunnels pass a FIN on while the session runs; a FIN that cannot go
// out means that side is broken.
void Session::on_shutdown(TcpSocket&, int status) {
  if (status < 0 && in_tunnel(phase_)) {
    end_tunnel(Outcome::failed(ProxyError::connection_terminated));
  }
}

// --- helpers -------------------------------------------------------------------

void Session::keep_reading_client() {
  if (!client_ || client_eof_) return;
  if (ex_ && (ex_->stash.size() >= kHighWater || ex_->body_ahead.size() >= kHighWater)) return;
  if (upstream_ && upstream_.queued() >= kHighWater) return;
  client_.start_reading();
}

void Session::pause_if_backlogged(TcpSocket& writer, TcpSocket& reader) {
  if (writer.queued() < kHighWater) return;
  reader.stop_reading();
  deadline().note_backlog();
  if (&writer == &client_) pause_rate_if_download();
}

// Only a receiver that cutoff holds bytes back for is marked, and counts:
// a fast one's arrivals tell the truth already, and what it acknowledges
// (interim responses, chunk framing) must not pass for body.
void Session::mark_deliveries() {
  if (!ex_) return;
  auto mark = [](const TcpSocket& socket) {
    return socket && socket.queued() > 0 ? socket.acknowledged() : ExchangeState::kNoMark;
  };
  ex_->client_acked_mark = mark(client_);
  ex_->upstream_acked_mark = mark(upstream_);
}

uint64_t Session::deliveries_since_mark() {
  if (!ex_) return 0;
  auto since = [](const TcpSocket& socket, uint64_t mark) -> uint64_t {
    if (!socket || mark == ExchangeState::kNoMark) return 0;
    uint64_t acked = socket.acknowledged();
    return acked > mark ? acked - mark : 0;
  };
  return since(client_, ex_->client_acked_mark) + since(upstream_, ex_->upstream_acked_mark);
}

// The client fell behind a download: min_rate waits for it (its own pause
// is not the upstream's drip; idle_timeout bounds how long it may last).
// Not while its upload still moves: that body is judged too, and a client
// that neither reads nor sends keeps nothing alive. Nor for an upstream
// slow to take an upload: that is the upstream's slowness, which min_rate
// is there to judge.
void Session::pause_rate_if_download() {
  if (phase_ == Phase::streaming && ex_->request_done) deadline().pause_rate();
}

void Session::stash(const char* data, size_t len) {
  if (len == 0) return;
  ex_->stash.append(data, len);
  if (ex_->stash.size() >= kHighWater) client_.stop_reading();
}

// Gives a drained stash's buffer back, so that the next stash allocates nothing.
void Session::reclaim_stash(std::string& spent) {
  if (!ex_->stash.empty()) return;
  spent.clear();
  ex_->stash.swap(spent);
}

// A write the kernel refuses is reported through on_drained, on the next loop
// turn, so every caller can go on as if it had been queued.
void Session::send_to_client(const char* data, size_t len) {
  if (ex_->staged == 0) {
    ex_->record.down_bytes += len;
    client_.send(data, len);
    return;
  }
  std::string& staged = worker_.scratch();
  uv_buf_t bufs[2] = {uv_buf_init(staged.data(), static_cast<unsigned>(ex_->staged)),
                      uv_buf_init(const_cast<char*>(data), static_cast<unsigned>(len))};
  ex_->record.down_bytes += ex_->staged + len;
  ex_->staged = 0;
  client_.send(bufs, 2);
}

// May come after the exchange ended (a response complete in the bytes just
// read), which flushed what it had staged.
void Session::flush_to_client() {
  if (!ex_ || ex_->staged == 0) return;
  if (!client_) {
    ex_->staged = 0;
    return;
  }
  send_to_client("", 0);
}

std::string Session::target_authority() const {
  if (ex_->target.host.find(':') != std::string::npos) {
    return fmt::format("[{}]:{}", ex_->target.host, ex_->target.port);
  }
  return fmt::format("{}:{}", ex_->target.host, ex_->target.port);
}

std::string Session::describe_target() const {
  if (ex_->parent == nullptr) return target_authority();
  return fmt::format("{} through parent proxy {}", target_authority(), ex_->parent->url);
}

// Once for a connection that keeps borrowing the same state, which one that
// sends request after request does.
void Session::format_client_name() {
  format_address(reinterpret_cast<const sockaddr*>(&peer_), ex_->client_name,
                 sizeof ex_->client_name);
  ex_->client_name_of = id_;
}

int64_t Session::since(uint64_t start) const {
  return static_cast<int64_t>(uv_now(worker_.loop()) - start);
}

}  // namespace cutoff
