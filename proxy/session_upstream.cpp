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
  upstream_ = worker_.pool().take(pool_host(), pool_port(), upstream_transport(), this, &peer);
  if (!upstream_) return false;
  // Through a parent, the peer is the parent: routes on addresses do not see it.
  if (config().routes_match_addresses && ex_->parent == nullptr) {
    RouteChoice choice = route_for_address(reinterpret_cast<const sockaddr*>(&peer));
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

RouteChoice Session::route_for_address(const sockaddr* address) const {
  RouteQuery query = route_query();
  query.address = address;
  return select_route(config(), query);
}

// With routes that match on addresses, every address is checked before any
// is tried (SPEC §9): one in a denied range denies the request without a
// connection. The first address's route governs the connecting (its
// connect_timeout; the dns_timeout and request_timeout already running stay
// those of the route the request chose), and the address that wins the race
// chooses the route for the rest (on_race_won): a route on one family
// never keeps the other family out of the race. False: the request was
// refused.
bool Session::route_by_address() {
  if (!config().routes_match_addresses) return true;
  RouteChoice first = ex_->route;
  for (int i = 0; i < ex_->addresses.count; ++i) {
    RouteChoice choice = route_for_address(ex_->addresses.at(i));
    if (choice.settings->action == RouteAction::deny) {
      sockaddr_storage address{};
      std::memcpy(&address, &ex_->addresses.entries[i], sizeof ex_->addresses.entries[i]);
      ex_->route = choice;
      ex_->record.route = choice.name;
      reject(403, ProxyError::http_request_denied,
             fmt::format("requests to {} are denied: its address {} is in route {}",
                         target_authority(), format_address(address), choice.name));
      return false;
    }
    if (i == 0) first = choice;
  }
  ex_->route = first;
  ex_->record.route = first.name;
  return true;
}

// Through a parent proxy cutoff resolves and connects to the parent only:
// the target's name is the parent's to resolve (a runner behind a corporate
// proxy often cannot). A target given as an address still meets the routes
// on addresses first, so that a deny on 169.254.169.254 holds either way.
void Session::open_upstream() {
  if (ex_->parent && config().routes_match_addresses &&
      parse_ip_literal(ex_->target.host, ex_->target.port, &ex_->addresses) &&
      !route_by_address()) {
    return;
  }
  if (parse_ip_literal(hop_host(), hop_port(), &ex_->addresses)) {
    if (ex_->parent == nullptr && !route_by_address()) return;
    enter(Phase::connecting);
    return connect_upstream();
  }
  enter(Phase::resolving);
  ex_->lookup = worker_.resolver().resolve(hop_host(), hop_port(), &ex_->listener);
  if (ex_->lookup == nullptr) {
    fail_upstream(ProxyError::dns_error,
                  fmt::format("{} could not be resolved (route {})", hop_name(), ex_->route.name));
  }
}

void Session::on_resolved(int status, const AddressList& addresses) {
  ex_->lookup = nullptr;
  assert(phase_ == Phase::resolving);
  ex_->record.dns_ms = since(phase_started_at_);
  if (status != 0) {
    return fail_upstream(ProxyError::dns_error,
                         fmt::format("{} could not be resolved: {} (route {})", hop_name(),
                                     uv_strerror(status), ex_->route.name));
  }
  ex_->addresses = addresses;
  if (ex_->parent == nullptr && !route_by_address()) return;
  enter(Phase::connecting);
  connect_upstream();
}

// Races the next hop's addresses (RFC 8305, connect_race.hpp), all under one
// connect_timeout: fail() ends the race along with the exchange.
void Session::connect_upstream() {
  ex_->race.start(worker_.loop(), worker_.read_buffer(), ex_->addresses, &ex_->listener);
}

void Session::on_race_won(TcpSocket winner, const sockaddr_in6& peer) {
  upstream_ = std::move(winner);
  upstream_.set_events(this);
  // The address that answered, which need not be the first: the pool and
  // the address routes of a reused connection go by it, as the rest of
  // this exchange does.
  ex_->upstream_peer = peer;
  if (config().routes_match_addresses && ex_->parent == nullptr) {
    ex_->route = route_for_address(reinterpret_cast<const sockaddr*>(&peer));
    ex_->record.route = ex_->route.name;
  }
  on_upstream_connected();
}

void Session::on_race_lost(int last_error) {
  ProxyError error = last_error == UV_ECONNREFUSED ? ProxyError::connection_refused
                     : last_error == UV_ETIMEDOUT  ? ProxyError::connection_timeout
                                                   : ProxyError::destination_unavailable;
  fail_upstream(error, fmt::format("connect to {} failed: {} (route {})", describe_target(),
                                   uv_strerror(last_error), ex_->route.name));
}

// Upstream connects are the race's (on_race_won); the client connection
// was accepted, and pooled connections are connected already.
void Session::on_connect(TcpSocket&, int) {
  assert(!"a session's sockets never connect themselves");
}

void Session::on_upstream_connected() {
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
  // A tunnel, or TLS to the target, goes through the parent's CONNECT.
  if (ex_->parent && (ex_->is_connect || ex_->target.tls)) return ask_parent_to_connect();
  use_upstream(nullptr, 0);
}

// The connection reaches the target (straight, through the parent's
// CONNECT, or a plain HTTP connection to the parent): cutoff's TLS starts,
// the client's CONNECT is answered, or the request goes. `read_ahead`: what
// the target sent with the parent's answer.
void Session::use_upstream(const char* read_ahead, size_t len) {
  ex_->record.connect_ms = since(phase_started_at_);
  if (ex_->target.tls) {
    enter(Phase::upstream_handshake);
    upstream_.start_tls(TlsLayer::connect(interception_->tls->client(), ex_->target.host,
                                          route().tls_verify_upstream),
                        std::string_view(read_ahead, len));
    upstream_.start_reading();
    return;
  }
  if (ex_->is_connect) {
    send_to_client(kConnectEstablished.data(), kConnectEstablished.size());
    ex_->record.status = 200;
    ex_->response_started = true;
    return start_tunnel(read_ahead, len);
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
  if (!ex_->target.tls) return ex_->parent ? UpstreamTransport::proxy : UpstreamTransport::plain;
  return route().tls_verify_upstream ? UpstreamTransport::tls_verified
                                     : UpstreamTransport::tls_unverified;
}

const std::string& Session::hop_host() const {
  return ex_->parent ? ex_->parent->host : ex_->target.host;
}

uint16_t Session::hop_port() const {
  return ex_->parent ? ex_->parent->port : ex_->target.port;
}

std::string Session::hop_name() const {
  if (ex_->parent == nullptr) return ex_->target.host;
  return fmt::format("{} (the name of parent proxy {})", ex_->parent->host, ex_->parent->url);
}

const std::string& Session::pool_host() const {
  return ex_->target.tls ? ex_->tls_pool_host : hop_host();
}

uint16_t Session::pool_port() const {
  return ex_->target.tls ? ex_->target.port : hop_port();
}

void Session::send_request_head() {
  assert(ex_->staged == 0 && "the scratch buffer still holds bytes for the client");
  std::string& head = worker_.scratch();
  head.clear();
  // Plain HTTP through a parent: the parent needs the whole URL.
  const bool through_parent = ex_->parent != nullptr && !ex_->target.tls;
  build_request_head(head, ex_->request_parser.head(), ex_->request_parser.framing(), ex_->target,
                     RequestRewrite{config().listen.via, ex_->is_upgrade, through_parent,
                                    through_parent ? ex_->parent->authorization : ""});
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
