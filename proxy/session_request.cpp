// The client's side of an exchange: reading the request head, deciding
// whether and where it may go, and forwarding its body.

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>

#include "cutoff/requested_timeouts.hpp"
#include "cutoff/session.hpp"
#include "cutoff/test_identity.hpp"
#include "cutoff/uri_path.hpp"
#include "cutoff/warning_tally.hpp"
#include "cutoff/worker.hpp"

namespace cutoff {
namespace {

constexpr std::string_view kOriginFormAnswer =
    "cutoff is a forward proxy: send absolute-form requests by pointing the client at it "
    "(HTTP_PROXY=http://<proxy address>/ and HTTPS_PROXY likewise).";

// Safe to send again on a fresh connection: an idempotent method (RFC 9110
// §9.2.2) and no body at all. Decided on the head: a body's length counts
// down as it is read, so it cannot be asked later.
bool replayable(const HttpParser& request) {
  const Framing& framing = request.framing();
  if (framing.kind == Framing::Kind::chunked || framing.length > 0) return false;
  switch (request.method()) {
    case HTTP_GET:
    case HTTP_HEAD:
    case HTTP_OPTIONS:
    case HTTP_TRACE:
    case HTTP_PUT:
    case HTTP_DELETE:
      return true;
    default:
      return false;
  }
}

// Proxy-Authorization: Basic <token>, with a token the config lists.
bool has_credentials(const MessageHead& head, const std::vector<std::string>& tokens) {
  std::string_view token = basic_token(head.find("proxy-authorization"));
  return !token.empty() && std::find(tokens.begin(), tokens.end(), token) != tokens.end();
}

}  // namespace

bool Session::client_allowed() const {
  return allowed_client(config().listen.allow_clients, reinterpret_cast<const sockaddr*>(&peer_));
}

void Session::begin_exchange() {
  if (!ex_) ex_ = worker_.borrow_exchange(*this);
  // The parser starts afresh: a pipelined request is replayed from the
  // stash, never from inside llhttp.
  ex_->request_parser.reset();
  ex_->lookup = nullptr;
  ex_->started_at = uv_now(worker_.loop());
  ex_->started_hr = uv_hrtime();
  ex_->config = worker_.config();
  ex_->record = ExchangeRecord{};
  ex_->record.client = name_client();
  ex_->route = RouteChoice{&ex_->config->defaults, "default"};
  ex_->record.route = ex_->route.name;
  ex_->is_connect = ex_->is_upgrade = ex_->request_keep_alive = ex_->request_done = false;
  ex_->replayable = ex_->response_started = ex_->retried = false;
  ex_->upstream_dirty = ex_->logged = false;
  ex_->parent = nullptr;
  ex_->awaiting_parent = false;
  ex_->parent_proxy_status.clear();
  ex_->test_id.clear();
  ex_->asked.clear();
  ex_->failure.clear();
  upstream_eof_ = false;
  ex_->plan = ResponsePlan{};
}

void Session::on_client_bytes(const char* data, size_t len) {
  switch (phase_) {
    case Phase::idle:
      begin_exchange();
      enter(Phase::reading_head);
      // What a client sends first when its proxy URL says https://; no HTTP
      // method starts so.
      if (looks_like_tls_handshake(data, len)) return refuse_tls_handshake();
      [[fallthrough]];
    case Phase::reading_head:
      return parse_request_head(data, len);
    case Phase::tls_handshake:
    case Phase::tunnelling:
      if (ex_->watching_hello) watch_client_hello(data, len);
      ex_->record.up_bytes += len;
      deadline().arrived(0);  // tunnels have no min_rate
      upstream_.send(data, len);
      return pause_if_backlogged(upstream_, client_);
    case Phase::resolving:
    case Phase::connecting:
    case Phase::upstream_handshake:
    case Phase::sending_request:
    case Phase::awaiting_response:
    case Phase::streaming:
      if (!ex_->request_done) return forward_request_body(data, len);
      return stash(data, len);     // a pipelined request (or tunnel bytes): it waits its turn
    case Phase::client_handshake:  // the TLS layer passes nothing on before the handshake ends
    case Phase::ended:
      return;
  }
}

// The client's TLS stack will not show it our answer, so the log says what
// to change as well.
void Session::refuse_tls_handshake() {
  // One tally for the process, whatever the number of workers: a
  // misconfigured client retries at every request.
  static WarningTally tally(60 * 1000);
  tally.add(1);
  int64_t seen = tally.take_due(static_cast<int64_t>(uv_now(worker_.loop())));
  if (seen > 0) {
    spdlog::warn(
        "{}: a TLS handshake arrived on the proxy port{}: the client's proxy URL must "
        "start with http://, not https://",
        client_name(),
        seen == 1 ? std::string()
                  : fmt::format(" ({} since the last such warning, which comes at most once a "
                                "minute)",
                                seen));
  }
  reject(400, ProxyError::http_request_error,
         "cutoff's proxy port speaks plain HTTP: use an http:// proxy URL "
         "(HTTPS_PROXY=http://<proxy address>), also for https:// destinations");
}

void Session::parse_request_head(const char* data, size_t len) {
  size_t used = 0;
  switch (ex_->request_parser.feed(data, len, &used)) {
    case HttpParser::Event::need_more:
      return;
    case HttpParser::Event::head:
    case HttpParser::Event::upgrade:
      stash(data + used, len - used);
      return on_request_head();
    case HttpParser::Event::message_complete:
    case HttpParser::Event::error:
      break;
  }
  int status = ex_->request_parser.error_status();
  std::string sentence = status == 400 ? fmt::format("the request could not be parsed: {}",
                                                     ex_->request_parser.error_reason())
                                       : ex_->request_parser.error_reason();
  reject(status, ProxyError::http_request_error, sentence);
}

void Session::on_request_head() {
  const MessageHead& head = ex_->request_parser.head();
  ex_->record.method = head.method();
  ex_->record.target = show_target(head.target(), config().log_query);
  ex_->record.http_major = head.http_major();
  ex_->record.http_minor = head.http_minor();
  ex_->is_connect = ex_->request_parser.method() == HTTP_CONNECT;
  ex_->is_upgrade = !ex_->is_connect && ex_->request_parser.upgrade_requested();
  ex_->request_keep_alive = ex_->request_parser.keep_alive();
  ex_->replayable = !ex_->is_connect && !ex_->is_upgrade && replayable(ex_->request_parser);
  // What follows a CONNECT or an Upgrade head is tunnel data, never parsed.
  ex_->request_done = ex_->is_connect || ex_->is_upgrade;

  if (!read_cutoff_fields(head)) return;
  if (interception_ && ex_->is_connect) {
    return reject(400, ProxyError::http_request_error,
                  "a CONNECT inside an intercepted HTTPS connection cannot be served: "
                  "send it to the proxy port");
  }
  // A parent that leads back here (SPEC §11) is noticed at the first
  // repeat, before the loop eats every descriptor.
  if (config().uses_parent_proxy && carries_own_via(head)) {
    return reject(502, ProxyError::proxy_loop_detected,
                  "this request has been through this cutoff already: its parent proxy "
                  "(parent_proxy, or HTTP_PROXY/HTTPS_PROXY with \"env\") leads back to cutoff");
  }
  switch (parse_target(head)) {
    case TargetError::none:
      break;
    case TargetError::origin_form:
      return reject(400, ProxyError::http_request_error, kOriginFormAnswer);
    case TargetError::unsupported_scheme:
      return reject(400, ProxyError::http_request_error,
                    "cutoff forwards http:// URLs; for https:// the client must use CONNECT "
                    "(set HTTPS_PROXY)");
    case TargetError::userinfo:
      return reject(400, ProxyError::http_request_error,
                    "the request target carries a user name or password (user:password@host), "
                    "which cutoff does not forward: send credentials in an Authorization field");
    case TargetError::malformed:
      return reject(400, ProxyError::http_request_error,
                    interception_     ? "inside an intercepted HTTPS connection a request names "
                                        "its path only, as in GET /path"
                    : ex_->is_connect ? "CONNECT needs a host:port target"
                                      : "the request target is not a valid http:// URL");
  }

  if (!choose_route()) return;
  choose_parent();
  if (!ex_->is_connect) {
    deadline().arm_cap(TimeoutName::request_timeout,
                       limit(TimeoutName::request_timeout, route().request_timeout));
  }

  const ListenConfig& listen = config().listen;
  // Checked on every exchange, under the exchange's config: a reload that
  // narrows allow_clients applies to open keep-alive connections too.
  if (!client_allowed()) {
    return reject(403, ProxyError::http_request_denied,
                  fmt::format("client {} is not allowed to use this proxy "
                              "(listen.allow_clients)",
                              client_name()));
  }
  // Inside an intercepted connection the client's CONNECT was the one to
  // show credentials (clients send none inside TLS).
  if (!listen.proxy_auth.empty() && !interception_ && !has_credentials(head, listen.proxy_auth)) {
    return fail(Outcome::failed(ProxyError::http_request_denied), ProxyError::http_request_denied,
                407, "this proxy needs Basic credentials in Proxy-Authorization",
                "Proxy-Authenticate: Basic realm=\"cutoff\"\r\n");
  }
  // A deny that a route on addresses could still overturn waits for them
  // (never through a parent: cutoff does not resolve the target then).
  if (route().action == RouteAction::deny &&
      (!ex_->route.address_pending || ex_->parent != nullptr)) {
    return reject(
        403, ProxyError::http_request_denied,
        fmt::format("requests to {} are denied (route {})", target_authority(), ex_->route.name));
  }
  if (ex_->is_connect && !listen.connect_any_port &&
      std::find(listen.connect_ports.begin(), listen.connect_ports.end(), ex_->target.port) ==
          listen.connect_ports.end()) {
    return reject(
        403, ProxyError::http_request_denied,
        fmt::format("CONNECT to port {} is not allowed (listen.connect_ports)", ex_->target.port));
  }
  if (!ex_->request_done && !take_request_body_so_far()) return;
  if (!ex_->is_connect && take_pooled_upstream()) return send_request_head();
  if (ex_->is_connect && route().tls == TlsMode::intercept &&
      route().action == RouteAction::forward) {
    return intercept();
  }
  open_upstream();
}

// cutoff's own fields (SPEC §12): which test sent the request, and what
// it asks of its deadlines. False: the request was refused.
bool Session::read_cutoff_fields(const MessageHead& head) {
  // Both fields are hop-by-hop to cutoff, as are credentials: a head with
  // no such field (most) names no test and asks nothing.
  if (head.count(HeaderRole::hop_by_hop) == 0 && !interception_) return true;
  std::string_view unusable_id = read_test_id(head, &ex_->test_id);
  if (ex_->test_id.empty() && interception_) ex_->test_id = interception_->test_id;
  ex_->record.test_id = ex_->test_id;
  std::string why =
      unusable_id.empty() ? read_requested_timeouts(head, &ex_->asked) : std::string(unusable_id);
  if (why.empty()) return true;
  reject(400, ProxyError::http_request_error, why);
  return false;
}

// A request inside an intercepted connection names only its path: its host
// and port are the CONNECT's, and logs show it as an https:// URL.
TargetError Session::parse_target(const MessageHead& head) {
  if (interception_) {
    ex_->target.host = interception_->host;
    ex_->target.port = interception_->port;
    ex_->record.target.scheme = interception_->origin;
    return parse_origin_target(head.target(), &ex_->target);
  }
  return ex_->is_connect
             ? parse_authority(head.target(), &ex_->target)
             : parse_absolute_target(head.target(), &ex_->target, &worker_.authority_memo());
}

// The body bytes that came with the head are parsed now, before any
// upstream is chosen: a body that breaks, or a client that stops inside it,
// never reaches an upstream. False: the request was refused.
bool Session::take_request_body_so_far() {
  std::string bytes;
  bytes.swap(ex_->stash);
  forward_request_body(bytes.empty() ? "" : bytes.data(), bytes.size());
  reclaim_stash(bytes);
  return phase_ != Phase::ended;
}

// Routes see the canonical host (parsed so) and, when a route matches on
// paths, the normalised path (SPEC §9). False: the request was refused.
bool Session::choose_route() {
  ex_->match_path.clear();
  ex_->match_path_lenient.clear();
  if (config().routes_match_paths && !ex_->is_connect) {
    std::string_view path = ex_->target.path;
    switch (normalize_path(path, PathReading::strict, &ex_->match_path)) {
      case PathError::none:
        break;
      case PathError::bad_escape:
        reject(400, ProxyError::http_request_error,
               "the request path has a \"%\" that is not followed by two hex digits");
        return false;
      case PathError::hidden_separator:
        reject(400, ProxyError::http_request_error,
               "the request path has a \";\" parameter holding an escaped or backward slash, "
               "which servers split differently");
        return false;
    }
    if (readings_may_differ(path)) {
      normalize_path(path, PathReading::lenient, &ex_->match_path_lenient);
    }
  }
  ex_->route = select_route(config(), route_query());
  ex_->record.route = ex_->route.name;
  return true;
}

RouteQuery Session::route_query() const {
  RouteQuery query;
  query.host = ex_->target.host;
  query.port = ex_->target.port;
  query.method = ex_->request_parser.head().method();
  query.path = ex_->match_path;
  query.path_lenient = ex_->match_path_lenient;
  query.is_connect = ex_->is_connect;
  return query;
}

// Parses body bytes and sends them on, or holds them until the head has
// gone to the upstream.
void Session::forward_request_body(const char* data, size_t len) {
  size_t used = 0;
  uint64_t body_before = ex_->request_parser.body_bytes();
  HttpParser::Event event = ex_->request_parser.feed(data, len, &used);
  // llhttp may count the byte that broke the body as read (an overflowing
  // chunk size digit): nothing of a feed that failed is forwarded.
  if (used > 0 && event != HttpParser::Event::error) {
    if (head_sent()) {
      upstream_.send(data, used);
      ex_->record.up_bytes += used;
      // min_rate counts the payload, not the chunk framing around it.
      deadline().arrived(ex_->request_parser.body_bytes() - body_before);
    } else {
      ex_->body_ahead.append(data, used);
      if (ex_->body_ahead.size() >= kHighWater) client_.stop_reading();
    }
  }
  switch (event) {
    case HttpParser::Event::need_more:
      if (head_sent()) pause_if_backlogged(upstream_, client_);
      return;
    case HttpParser::Event::message_complete:
      stash(data + used, len - used);
      return on_request_complete();
    default:
      return reject(400, ProxyError::http_request_error,
                    fmt::format("the request body could not be parsed: {}",
                                ex_->request_parser.error_reason()));
  }
}

void Session::on_request_complete() {
  ex_->request_done = true;
  if (phase_ == Phase::sending_request) enter(Phase::awaiting_response);
  // The upload ended under an early response that the client is not
  // reading: from now on only the download moves, and it is paused.
  if (client_.queued() >= kHighWater) pause_rate_if_download();
}

void Session::next_request() {
  // Idle: the connection keeps no exchange state (its deadline included)
  // and no config.
  std::string pending;
  pending.swap(ex_->stash);
  worker_.return_exchange(std::move(ex_));
  enter(Phase::idle);
  keep_reading_client();
  if (pending.empty()) return;
  // A pipelined request arrived while the last one was served.
  on_client_bytes(pending.data(), pending.size());
  if (ex_) reclaim_stash(pending);
}

}  // namespace cutoff
