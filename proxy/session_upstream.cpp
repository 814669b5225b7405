// Reaching the upstream: a pooled connection or a fresh one (resolve, check
// the addresses against the routes, connect), sending the request head, and
// the one retry that is safe.

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <atomic>
#include <cassert>
#include <cstring>

#include "cutoff/session.hpp"
#include "cutoff/socket_address.hpp"
#include "cutoff/worker.hpp"

namespace cutoff {
namespace {

constexpr std::string_view kConnectEstablished = "HTTP/1.1 200 Connection Established\r\n\r\n";

unsigned whole_seconds(Duration d) {
  return static_cast<unsigned>(std::max<uint64_t>(1, (d.ms() + 999) / 1000));
}

// The kernel refusing tcp_keepalive or tcp_user_timeout is a property of the
// host (an old kernel, a sandbox), the same for every connection: said once.
void warn_socket_options(int error) {
  static std::atomic<bool> warned{false};
  if (warned.exchange(true)) return;
  spdlog::warn(
      "upstream sockets run without tcp_keepalive or tcp_user_timeout: the kernel "
      "refused them ({})",
      uv_strerror(error));
}

}  // namespace

// A parked connection to the target, if there is one whose address the
// routes still let through.
bool Session::take_pooled_upstream() {
  sockaddr_in6& peer = ex_->upstream_peer;
  upstream_ =
      worker_.pool().take(ex_->target.host, ex_->target.port, upstream_transport(), this, &peer);
  if (!upstream_) return false;
  if (config().routes_match_addresses) {
    RouteQuery query = route_query();
    query.address = reinterpret_cast<const sockaddr*>(&peer);
    RouteChoice choice = select_route(config(), query);
    if (choice.settings->action == RouteAction::deny) {
      // A fresh lookup gives the refusal its reasons.
      upstream_.close();
      return false;
    }
    ex_->route = choice;
    ex_->record.route = choice.name;
  }
  ex_->record.reused = true;
  return true;
}

// With routes that match on addresses, every address is checked before any
// is tried (SPEC §9): one in a denied range denies the request without a
// connection, and the first address's route governs the connection (the
// dns_timeout and request_timeout already running stay those of the route
// the request chose). False: the request was refused.
bool Session::route_by_address() {
  if (!config().routes_match_addresses) return true;
  RouteQuery query = route_query();
  AddressList kept;
  RouteChoice first = ex_->route;
  for (int i = 0; i < ex_->addresses.count; ++i) {
    query.address = ex_->addresses.at(i);
    RouteChoice choice = select_route(config(), query);
    if (choice.settings->action == RouteAction::deny) {
      sockaddr_storage address{};
      std::memcpy(&address, &ex_->addresses.entries[i], sizeof ex_->addresses.entries[i]);
      ex_->route = choice;
      ex_->record.route = choice.name;
      reject(403, ProxyError::http_request_denied,
             fmt::format("requests to {} are denied: its address {} is in route {}",
                         describe_target(), format_address(address), choice.name));
      return false;
    }
    if (i == 0) first = choice;
    if (choice.settings == first.settings) kept.add(query.address);
  }
  ex_->addresses = kept;
  ex_->route = first;
  ex_->record.route = first.name;
  return true;
}

void Session::open_upstream() {
  if (parse_ip_literal(ex_->target.host, ex_->target.port, &ex_->addresses)) {
    if (!route_by_address()) return;
    ex_->next_address = 0;
    enter(Phase::connecting);
    return try_next_address();
  }
  enter(Phase::resolving);
  ex_->lookup = worker_.resolver().resolve(ex_->target.host, ex_->target.port, this);
  if (ex_->lookup == nullptr) {
    fail_upstream(ProxyError::dns_error, fmt::format("{} could not be resolved (route {})",
                                                     ex_->target.host, ex_->route.name));
  }
}

void Session::on_resolved(int status, const AddressList& addresses) {
  ex_->lookup = nullptr;
  assert(phase_ == Phase::resolving);
  ex_->record.dns_ms = since(phase_started_at_);
  if (status != 0) {
    return fail_upstream(ProxyError::dns_error,
                         fmt::format("{} could not be resolved: {} (route {})", ex_->target.host,
                                     uv_strerror(status), ex_->route.name));
  }
  ex_->addresses = addresses;
  if (!route_by_address()) return;
  ex_->next_address = 0;
  enter(Phase::connecting);
  try_next_address();
}

// Tries the target's addresses in turn, all under one connect_timeout.
void Session::try_next_address() {
  while (ex_->next_address < ex_->addresses.count) {
    const sockaddr* address = ex_->addresses.at(ex_->next_address);
    ex_->upstream_peer = ex_->addresses.entries[ex_->next_address++];
    int rc = upstream_.init(worker_.loop(), worker_.read_buffer(), this);
    if (rc == 0) rc = upstream_.connect(address);
    if (rc == 0) return;  // on_connect follows
    ex_->last_connect_error = rc;
    upstream_.close();
  }
  ProxyError error = ex_->last_connect_error == UV_ECONNREFUSED ? ProxyError::connection_refused
                     : ex_->last_connect_error == UV_ETIMEDOUT
                         ? ProxyError::connection_timeout
                         : ProxyError::destination_unavailable;
  fail_upstream(error, fmt::format("connect to {} failed: {} (route {})", describe_target(),
                                   uv_strerror(ex_->last_connect_error), ex_->route.name));
}

void Session::on_connect(TcpSocket&, int status) {
  if (status == 0) return on_upstream_connected();
  ex_->last_connect_error = status;
  upstream_.close();
  try_next_address();
}

void Session::on_upstream_connected() {
  ex_->record.connect_ms = since(phase_started_at_);
  const RouteSettings& r = route();
  int rc = 0;
  if (r.tcp_keepalive.enabled) {
    rc = upstream_.set_keepalive(whole_seconds(r.tcp_keepalive.idle),
                                 whole_seconds(r.tcp_keepalive.interval),
                                 static_cast<unsigned>(r.tcp_keepalive.count));
  }
  if (rc == 0 && !r.tcp_user_timeout.is_off()) {
    rc = upstream_.set_user_timeout(static_cast<unsigned>(r.tcp_user_timeout.ms()));
  }
  if (rc != 0) warn_socket_options(rc);
  if (ex_->target.tls) {
    enter(Phase::upstream_handshake);
    upstream_.start_tls(
        TlsLayer::connect(interception_->tls->client(), ex_->target.host, r.tls_verify_upstream));
    upstream_.start_reading();
    return;
  }
  if (ex_->is_connect) {
    send_to_client(kConnectEstablished.data(), kConnectEstablished.size());
    ex_->record.status = 200;
    ex_->response_started = true;
    return start_tunnel(nullptr, 0);
  }
  send_request_head();
}

// cutoff's own TLS with an intercepted request's upstream: verified (unless
// the route says not to), and a failure answered in RFC 9209's words.
void Session::on_upstream_handshake(int status) {
  if (status == 0) return send_request_head();
  const TlsFailure& failure = upstream_.tls()->failure();
  switch (failure.kind) {
    case TlsFailure::Kind::certificate:
      return fail_upstream(
          ProxyError::tls_certificate_error,
          fmt::format("the certificate of {} was refused: {} (route {}; for a test server with "
                      "its own certificate, add its CA to [tls] upstream_ca or set "
                      "tls_verify_upstream = false on the route)",
                      describe_target(), failure.reason, ex_->route.name));
    case TlsFailure::Kind::alert:
      return fail_upstream(ProxyError::tls_alert_received,
                           fmt::format("{} ended the TLS handshake with an alert: {} (route {})",
                                       describe_target(), failure.reason, ex_->route.name));
    default:
      return fail_upstream(ProxyError::tls_protocol_error,
                           fmt::format("the TLS handshake with {} failed: {} (route {})",
                                       describe_target(), failure.reason, ex_->route.name));
  }
}

UpstreamTransport Session::upstream_transport() const {
  if (!ex_->target.tls) return UpstreamTransport::plain;
  return route().tls_verify_upstream ? UpstreamTransport::tls_verified
                                     : UpstreamTransport::tls_unverified;
}

void Session::send_request_head() {
  assert(ex_->staged == 0 && "the scratch buffer still holds bytes for the client");
  std::string& head = worker_.scratch();
  head.clear();
  build_request_head(head, ex_->request_parser.head(), ex_->request_parser.framing(), ex_->target,
                     RequestRewrite{config().listen.via, ex_->is_upgrade});
  upstream_.send(head.data(), head.size());
  ex_->record.up_bytes += head.size();
  upstream_.start_reading();
  ex_->response_parser.reset();
  ex_->response_parser.set_skip_body(ex_->request_parser.method() == HTTP_HEAD);
  // The body bytes parsed while the upstream was being reached go first.
  if (!ex_->body_ahead.empty()) {
    upstream_.send(ex_->body_ahead.data(), ex_->body_ahead.size());
    ex_->record.up_bytes += ex_->body_ahead.size();
    ex_->body_ahead.clear();
  }
  enter(ex_->request_done ? Phase::awaiting_response : Phase::sending_request);
  keep_reading_client();
}

// A pooled connection that died before answering is retried once on a fresh
// connection, for a request that had no body (decided at its head). Any other
// request is not sent twice: the client gets its 502 at once (SPEC §7b).
bool Session::retry_on_fresh_connection() {
  if (!ex_->record.reused || ex_->retried || ex_->record.first_byte_ms != kNoTime ||
      !ex_->replayable) {
    return false;
  }
  ex_->retried = true;
  ex_->record.reused = false;
  upstream_.close();
  upstream_eof_ = false;
  open_upstream();
  return true;
}

// How a stuck upstream goes: RST by default, or FIN and a lingering read in
// the worker's ClosingSet when the route says "graceful".
void Session::teardown_upstream() {
  if (!upstream_) return;
  if (route().teardown == Teardown::graceful && phase_ != Phase::connecting) {
    worker_.closings().close(std::move(upstream_), route().idle_timeout, config().linger_timeout,
                             upstream_eof_);
    return;
  }
  upstream_.abort();
}

}  // namespace cutoff
