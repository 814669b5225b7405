#include "cutoff/session.hpp"

#include <fmt/format.h>
#include <netinet/in.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cassert>
#include <cstring>

#include "cutoff/access_log.hpp"
#include "cutoff/ascii.hpp"
#include "cutoff/socket_address.hpp"
#include "cutoff/uri_path.hpp"
#include "cutoff/worker.hpp"

namespace cutoff {
namespace {

// Above this many bytes queued towards one side, cutoff stops reading the
// other side until the queue drains: memory per connection stays bounded.
constexpr size_t kHighWater = 64 * 1024;

constexpr std::string_view kConnectEstablished = "HTTP/1.1 200 Connection Established\r\n\r\n";

constexpr std::string_view kOriginFormAnswer =
    "cutoff is a forward proxy: send absolute-form requests by pointing the client at it "
    "(HTTP_PROXY=http://<proxy address>/ and HTTPS_PROXY likewise).";

bool idempotent_without_body(const HttpParser& request) {
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
  std::string_view value = head.find("proxy-authorization");
  constexpr std::string_view kBasic = "basic ";
  if (value.size() <= kBasic.size() || !iequals(value.substr(0, kBasic.size()), kBasic)) {
    return false;
  }
  value.remove_prefix(kBasic.size());
  while (!value.empty() && value.front() == ' ') value.remove_prefix(1);
  while (!value.empty() && value.back() == ' ') value.remove_suffix(1);
  return std::find(tokens.begin(), tokens.end(), value) != tokens.end();
}

bool client_allowed(const std::vector<Cidr>& allow, const sockaddr_storage& peer) {
  const uint8_t* bytes;
  bool v6 = peer.ss_family == AF_INET6;
  if (v6) {
    bytes = reinterpret_cast<const sockaddr_in6&>(peer).sin6_addr.s6_addr;
  } else {
    bytes = reinterpret_cast<const uint8_t*>(&reinterpret_cast<const sockaddr_in&>(peer).sin_addr);
  }
  return std::any_of(allow.begin(), allow.end(),
                     [&](const Cidr& net) { return cidr_contains(net, bytes, v6); });
}

unsigned whole_seconds(Duration d) {
  return static_cast<unsigned>(std::max<uint64_t>(1, (d.ms() + 999) / 1000));
}

}  // namespace

Session::Session(Worker& worker)
    : worker_(worker), config_(worker.config()), deadline_(worker.loop(), *this) {}

Session::~Session() {
  set_phase(Phase::closing);
  if (!ex_) return;
  if (ex_->lookup != nullptr) worker_.resolver().cancel(ex_->lookup);
  ex_->lookup = nullptr;
  worker_.return_exchange(std::move(ex_));
}

// Every phase change goes through here, so the tunnel gauge stays exact.
void Session::set_phase(Phase phase) {
  if (phase == phase_) return;
  if (phase_ == Phase::tunnelling) worker_.metrics().tunnels.add(-1);
  if (phase == Phase::tunnelling) worker_.metrics().tunnels.add(1);
  phase_ = phase;
}

bool Session::accept(uv_stream_t* server, std::list<Session>::iterator self) {
  self_ = self;
  id_ = worker_.next_session_id();
  accepted_at_ = uv_now(worker_.loop());
  phase_ = Phase::closing;  // until the connection is really ours (no tunnel to count)
  if (client_.init(worker_.loop(), worker_.read_buffer(), this) != 0) return false;
  if (uv_accept(server, client_.stream()) != 0) {
    client_.close();
    return false;
  }
  sockaddr_storage peer{};
  int len = sizeof peer;
  uv_tcp_getpeername(client_.handle(), reinterpret_cast<sockaddr*>(&peer), &len);
  format_address(peer, client_name_, sizeof client_name_);
  client_allowed_ = client_allowed(config_->listen.allow_clients, peer);
  client_.start_reading();
  enter(Phase::idle);
  return true;
}

// The one place where a phase meets its deadline.
void Session::enter(Phase phase) {
  set_phase(phase);
  phase_started_at_ = uv_now(worker_.loop());
  const ListenConfig& listen = config_->listen;
  switch (phase) {
    case Phase::idle:
      return deadline_.arm(TimeoutName::client_keepalive_timeout, listen.client_keepalive_timeout);
    case Phase::reading_head:
      return deadline_.arm(TimeoutName::request_header_timeout, listen.request_header_timeout);
    case Phase::resolving:
      return deadline_.arm(TimeoutName::dns_timeout, route().dns_timeout);
    case Phase::connecting:
      return deadline_.arm(TimeoutName::connect_timeout, route().connect_timeout);
    case Phase::sending_request:
      return deadline_.arm(TimeoutName::idle_timeout, route().idle_timeout, /*idle=*/true);
    case Phase::awaiting_response:
      return deadline_.arm(TimeoutName::response_header_timeout, route().response_header_timeout);
    case Phase::streaming:
      return deadline_.arm(TimeoutName::idle_timeout, route().idle_timeout, /*idle=*/true);
    case Phase::tunnelling:
      return deadline_.arm(TimeoutName::tunnel_idle_timeout, route().tunnel_idle_timeout,
                           /*idle=*/true);
    case Phase::closing:
      deadline_.clear_cap();
      return deadline_.arm(TimeoutName::linger_timeout, config_->linger_timeout);
  }
}

void Session::on_deadline(const Expiry& expiry) {
  switch (phase_) {
    case Phase::idle:
      // A quiet keep-alive connection: a plain FIN.
      client_.close();
      set_phase(Phase::closing);
      return finish_if_closed();
    case Phase::reading_head:
      return fail(
          Outcome::timed_out(expiry.name), ProxyError::http_request_error, 408,
          fmt::format("the request head did not arrive within {}", expiry.value.to_string()));
    case Phase::resolving:
    case Phase::connecting:
    case Phase::sending_request:
    case Phase::awaiting_response:
    case Phase::streaming:
      return fail_timeout(expiry);
    case Phase::tunnelling:
      return end_tunnel(Outcome::timed_out(expiry.name));
    case Phase::closing:
      // The peers did not finish closing in time: reset what is left.
      client_.abort();
      upstream_.abort();
      return finish_if_closed();
  }
}

// --- reading requests -------------------------------------------------------

void Session::begin_exchange() {
  if (!ex_) ex_ = worker_.borrow_exchange();
  // The parser starts afresh: a pipelined request is replayed from the
  // stash, never from inside llhttp.
  ex_->request_parser.reset();
  ex_->lookup = nullptr;
  ex_->started_at = uv_now(worker_.loop());
  ex_->started_hr = uv_hrtime();
  // Each exchange runs under the config current when it began; a reload
  // changes the next one, never this one.
  config_ = worker_.config();
  ex_->record = ExchangeRecord{};
  ex_->record.client = client_name_;
  ex_->route = RouteChoice{&config_->defaults, "default"};
  ex_->record.route = ex_->route.name;
  ex_->is_connect = ex_->is_upgrade = ex_->request_keep_alive = ex_->request_done = false;
  ex_->response_started = ex_->retried = ex_->upstream_dirty = ex_->logged = false;
  client_eof_ = upstream_eof_ = client_shutdown_done_ = upstream_shutdown_done_ = false;
  ex_->plan = ResponsePlan{};
}

void Session::on_data(TcpSocket& socket, const char* data, size_t len) {
  if (&socket == &client_) {
    on_client_bytes(data, len);
  } else {
    on_upstream_bytes(data, len);
  }
}

void Session::on_client_bytes(const char* data, size_t len) {
  switch (phase_) {
    case Phase::idle:
      begin_exchange();
      enter(Phase::reading_head);
      [[fallthrough]];
    case Phase::reading_head:
      return parse_request_head(data, len);
    case Phase::tunnelling:
      ex_->record.up_bytes += len;
      deadline_.touch();
      upstream_.send(data, len);
      return pause_if_backlogged(upstream_, client_);
    case Phase::closing:
      return;  // lingering: whatever the client still sends is discarded
    case Phase::sending_request:
    case Phase::awaiting_response:
    case Phase::streaming:
      if (!ex_->request_done) return forward_request_body(data, len);
      return stash(data, len);  // a pipelined request: it waits its turn
    case Phase::resolving:
    case Phase::connecting:
      return stash(data, len);  // body bytes before the upstream is there
  }
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
  ex_->record.target = head.target();
  ex_->record.http_major = head.http_major();
  ex_->record.http_minor = head.http_minor();
  ex_->is_connect = ex_->request_parser.method() == HTTP_CONNECT;
  ex_->is_upgrade = !ex_->is_connect && ex_->request_parser.upgrade_requested();
  ex_->request_keep_alive = ex_->request_parser.keep_alive();

  TargetError error = ex_->is_connect ? parse_authority(head.target(), &ex_->target)
                                      : parse_absolute_target(head.target(), &ex_->target);
  switch (error) {
    case TargetError::none:
      break;
    case TargetError::origin_form:
      return reject(400, ProxyError::http_request_error, kOriginFormAnswer);
    case TargetError::unsupported_scheme:
      return reject(400, ProxyError::http_request_error,
                    "cutoff forwards http:// URLs; for https:// the client must use CONNECT "
                    "(set HTTPS_PROXY)");
    case TargetError::malformed:
      return reject(400, ProxyError::http_request_error,
                    ex_->is_connect ? "CONNECT needs a host:port target"
                                    : "the request target is not a valid http:// URL");
  }

  if (!choose_route()) return;
  if (!ex_->is_connect) deadline_.arm_cap(TimeoutName::request_timeout, route().request_timeout);

  const ListenConfig& listen = config_->listen;
  if (!client_allowed_) {
    return reject(403, ProxyError::http_request_denied,
                  fmt::format("client {} is not allowed to use this proxy", client_name_));
  }
  if (!listen.proxy_auth.empty() && !has_credentials(head, listen.proxy_auth)) {
    return fail(Outcome::failed(ProxyError::http_request_denied), ProxyError::http_request_denied,
                407, "this proxy needs Basic credentials in Proxy-Authorization",
                "Proxy-Authenticate: Basic realm=\"cutoff\"\r\n");
  }
  // A deny that a route on addresses could still overturn waits for them.
  if (route().action == RouteAction::deny && !ex_->route.address_pending) {
    return reject(
        403, ProxyError::http_request_denied,
        fmt::format("requests to {} are denied (route {})", describe_target(), ex_->route.name));
  }
  if (ex_->is_connect && !listen.connect_any_port &&
      std::find(listen.connect_ports.begin(), listen.connect_ports.end(), ex_->target.port) ==
          listen.connect_ports.end()) {
    return reject(
        403, ProxyError::http_request_denied,
        fmt::format("CONNECT to port {} is not allowed (listen.connect_ports)", ex_->target.port));
  }
  if (!ex_->is_connect && take_pooled_upstream()) return send_request_head();
  open_upstream();
}

// Routes see the canonical host (parsed so) and, when a route matches on
// paths, the normalised path (SPEC §9). False: the request was refused.
bool Session::choose_route() {
  ex_->match_path.clear();
  ex_->match_path_lenient.clear();
  if (config_->routes_match_paths && !ex_->is_connect) {
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
  ex_->route = select_route(*config_, route_query());
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

// A parked connection to the target, if there is one whose address the
// routes still let through.
bool Session::take_pooled_upstream() {
  sockaddr_in6& peer = ex_->upstream_peer;
  upstream_ = worker_.pool().take(ex_->target.host, ex_->target.port, this, &peer);
  if (!upstream_) return false;
  if (config_->routes_match_addresses) {
    RouteQuery query = route_query();
    query.address = reinterpret_cast<const sockaddr*>(&peer);
    RouteChoice choice = select_route(*config_, query);
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

// --- reaching the upstream ----------------------------------------------------

// With routes that match on addresses, every address is checked before any
// is tried (SPEC §9): one in a denied range denies the request without a
// connection, and the first address's route governs the connection (the
// dns_timeout and request_timeout already running stay those of the route
// the request chose). False: the request was refused.
bool Session::route_by_address() {
  if (!config_->routes_match_addresses) return true;
  RouteQuery query = route_query();
  AddressList kept;
  RouteChoice first = ex_->route;
  for (int i = 0; i < ex_->addresses.count; ++i) {
    query.address = ex_->addresses.at(i);
    RouteChoice choice = select_route(*config_, query);
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
  if (r.tcp_keepalive.enabled) {
    upstream_.set_keepalive(whole_seconds(r.tcp_keepalive.idle),
                            whole_seconds(r.tcp_keepalive.interval),
                            static_cast<unsigned>(r.tcp_keepalive.count));
  }
  if (!r.tcp_user_timeout.is_off()) {
    upstream_.set_user_timeout(static_cast<unsigned>(r.tcp_user_timeout.ms()));
  }
  if (ex_->is_connect) {
    send_to_client(kConnectEstablished.data(), kConnectEstablished.size());
    ex_->record.status = 200;
    ex_->response_started = true;
    return start_tunnel(nullptr, 0);
  }
  send_request_head();
}

// --- forwarding the request --------------------------------------------------

void Session::send_request_head() {
  assert(staged_ == 0 && "the scratch buffer still holds bytes for the client");
  std::string& head = worker_.scratch();
  head.clear();
  build_request_head(head, ex_->request_parser.head(), ex_->request_parser.framing(), ex_->target,
                     RequestRewrite{config_->listen.via, ex_->is_upgrade});
  upstream_.send(head.data(), head.size());
  ex_->record.up_bytes += head.size();
  upstream_.start_reading();
  ex_->response_parser.reset();
  ex_->response_parser.set_skip_body(ex_->request_parser.method() == HTTP_HEAD);
  if (ex_->is_upgrade || ex_->request_done) {
    // An Upgrade request has no body; a retried request was already read.
    ex_->request_done = true;
    return enter(Phase::awaiting_response);
  }
  enter(Phase::sending_request);
  // Body bytes that arrived with the head (or while connecting) go first;
  // with no body at all this completes the request at once.
  std::string body;
  body.swap(ex_->stash);
  forward_request_body(body.empty() ? "" : body.data(), body.size());
  reclaim_stash(body);
  keep_reading_client();
}

void Session::forward_request_body(const char* data, size_t len) {
  size_t used = 0;
  HttpParser::Event event = ex_->request_parser.feed(data, len, &used);
  // llhttp may count the byte that broke the body as read (an overflowing
  // chunk size digit): nothing of a feed that failed is forwarded.
  if (used > 0 && event != HttpParser::Event::error) {
    upstream_.send(data, used);
    ex_->record.up_bytes += used;
    deadline_.touch();
  }
  switch (event) {
    case HttpParser::Event::need_more:
      return pause_if_backlogged(upstream_, client_);
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
}

// --- relaying the response ---------------------------------------------------

void Session::on_upstream_bytes(const char* data, size_t len) {
  relay_response(data, len);
  // The response head and the body bytes that came with it leave in one write.
  flush_to_client();
}

void Session::relay_response(const char* data, size_t len) {
  switch (phase_) {
    case Phase::tunnelling:
      deadline_.touch();
      send_to_client(data, len);
      return pause_if_backlogged(client_, upstream_);
    case Phase::sending_request:
    case Phase::awaiting_response:
    case Phase::streaming:
      break;
    default:
      return;  // a graceful teardown discards what the upstream still sends
  }
  if (ex_->record.first_byte_ms == kNoTime) ex_->record.first_byte_ms = since(ex_->started_at);
  for (;;) {
    size_t used = 0;
    HttpParser::Event event = ex_->response_parser.feed(data, len, &used);
    // Body bytes pass through as they came, framing and all, unless the
    // parser decodes them for an HTTP/1.0 client (on_body).
    bool body_bytes =
        event == HttpParser::Event::need_more || event == HttpParser::Event::message_complete;
    if (body_bytes && ex_->response_started && used > 0 &&
        ex_->plan.framing != BodyFraming::dechunk) {
      send_to_client(data, used);
      deadline_.touch();
    }
    switch (event) {
      case HttpParser::Event::need_more:
        return pause_if_backlogged(client_, upstream_);
      case HttpParser::Event::head:
        if (!on_response_head()) return;
        break;
      case HttpParser::Event::message_complete:
        if (ex_->response_started) return on_response_complete(len - used);
        break;  // an interim 1xx ended; the real response follows
      case HttpParser::Event::upgrade:
        if (!on_response_head()) return;
        return start_tunnel(data + used, len - used);
      case HttpParser::Event::error:
        return fail_upstream(
            ProxyError::http_protocol_error,
            fmt::format("{} sent an invalid response: {} (route {})", describe_target(),
                        ex_->response_parser.error_reason(), ex_->route.name));
    }
    data += used;
    len -= used;
  }
}

// Sends the response head on to the client. False if the exchange failed.
bool Session::on_response_head() {
  const MessageHead& response = ex_->response_parser.head();
  const MessageHead& request = ex_->request_parser.head();
  int status = response.status();
  bool upgrading = status == 101 && ex_->is_upgrade && ex_->response_parser.upgrade_requested();
  if (status == 101 && !upgrading) {
    fail_upstream(ProxyError::http_protocol_error,
                  fmt::format("{} switched protocols without being asked to (route {})",
                              describe_target(), ex_->route.name));
    return false;
  }
  // The head is staged, not sent: it leaves with the first body bytes.
  std::string& out = worker_.scratch();
  if (staged_ == 0) out.clear();
  ResponseRewrite rewrite;
  rewrite.via = config_->listen.via;
  rewrite.client_http10 = request.http10();
  rewrite.upstream = ex_->response_parser.framing();
  if (status < 200 && !upgrading) {
    // Interim responses (100 Continue, 103 Early Hints with its Link
    // fields) reach HTTP/1.1 clients only.
    if (!request.http10()) {
      rewrite.interim = true;
      build_response_head(out, response, rewrite);
      staged_ = out.size();
    }
    return true;
  }
  ResponseFacts facts;
  facts.client_http10 = request.http10();
  facts.client_wants_keep_alive = ex_->request_keep_alive && ex_->request_done && !ex_->is_upgrade;
  facts.upstream = rewrite.upstream;
  ex_->plan = plan_response(facts);
  ex_->response_parser.set_body_sink(ex_->plan.framing == BodyFraming::dechunk ? this : nullptr);
  char timing[160];
  rewrite.extra_headers =
      config_->listen.server_timing ? server_timing(timing, sizeof timing) : std::string_view();
  rewrite.upgrade = upgrading;
  rewrite.plan = ex_->plan;
  build_response_head(out, response, rewrite);
  staged_ = out.size();
  ex_->record.status = status;
  ex_->response_started = true;
  if (!upgrading) enter(Phase::streaming);
  return true;
}

void Session::on_body(const char* data, size_t len) {
  send_to_client(data, len);
  deadline_.touch();
}

void Session::on_response_complete(size_t trailing_bytes) {
  flush_to_client();
  // Bytes after a whole response mean the upstream and cutoff disagree on
  // framing: that connection cannot be trusted with another request.
  if (trailing_bytes > 0) ex_->upstream_dirty = true;
  ex_->record.outcome = Outcome::ok();
  log_exchange();
  bool reusable = !ex_->upstream_dirty && !upstream_eof_ && ex_->request_done &&
                  !worker_.draining() && ex_->response_parser.keep_alive() &&
                  ex_->plan.framing != BodyFraming::until_close &&
                  !ex_->response_parser.body_declared_not_sent();
  if (reusable) {
    worker_.pool().park(ex_->target.host, ex_->target.port, std::move(upstream_),
                        ex_->upstream_peer, route().upstream_keepalive_timeout);
  } else {
    upstream_.close();
  }
  if (ex_->plan.client_keep_alive && ex_->request_done && !client_eof_ && !worker_.draining()) {
    return next_request();
  }
  begin_closing();
}

void Session::next_request() {
  deadline_.clear_cap();
  enter(Phase::idle);
  keep_reading_client();
  if (ex_->stash.empty()) {
    worker_.return_exchange(std::move(ex_));  // idle: the connection keeps nothing
    return;
  }
  // A pipelined request arrived while the last one was served.
  std::string pending;
  pending.swap(ex_->stash);
  on_client_bytes(pending.data(), pending.size());
  reclaim_stash(pending);
}

// --- tunnels -----------------------------------------------------------------

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
  keep_reading_client();
  upstream_.start_reading();
}

// One side sent its FIN: pass it on, and end the tunnel once both have.
void Session::tunnel_half_close(TcpSocket& from) {
  TcpSocket& to = &from == &client_ ? upstream_ : client_;
  (&from == &client_ ? client_eof_ : upstream_eof_) = true;
  to.shutdown_write();
  if (!(client_eof_ && upstream_eof_)) return;
  ex_->record.outcome = Outcome::ok();
  log_exchange();
  enter(Phase::closing);
  finish_if_closed();
}

void Session::end_tunnel(Outcome outcome) {
  ex_->record.outcome = outcome;
  log_exchange();
  teardown_upstream();
  client_.close();
  enter(Phase::closing);
  finish_if_closed();
}

// --- endings -----------------------------------------------------------------

void Session::fail_timeout(const Expiry& expiry) {
  std::string value = expiry.value.to_string();
  std::string_view name = timeout_token(expiry.name);
  switch (phase_) {
    case Phase::resolving:
      return fail(Outcome::timed_out(expiry.name), ProxyError::dns_timeout, 504,
                  fmt::format("resolving {} timed out after {} ({}, route {})", ex_->target.host,
                              value, name, ex_->route.name));
    case Phase::connecting:
      return fail(Outcome::timed_out(expiry.name), ProxyError::connection_timeout, 504,
                  fmt::format("connect to {} timed out after {} ({}, route {})", describe_target(),
                              value, name, ex_->route.name));
    case Phase::sending_request:
      return fail(Outcome::timed_out(expiry.name), ProxyError::http_response_timeout, 504,
                  fmt::format("the request to {} did not complete within {} ({}, route {})",
                              describe_target(), value, name, ex_->route.name));
    default:
      return fail(Outcome::timed_out(expiry.name), ProxyError::http_response_timeout, 504,
                  fmt::format("{} did not answer within {} ({}, route {})", describe_target(),
                              value, name, ex_->route.name));
  }
}

void Session::fail_upstream(ProxyError error, std::string_view sentence) {
  fail(Outcome::failed(error), error, error_status(error), sentence);
}

void Session::reject(int status, ProxyError error, std::string_view sentence) {
  fail(Outcome::failed(error), error, status, sentence);
}

void Session::fail(Outcome outcome, ProxyError error, int status, std::string_view sentence,
                   std::string_view extra_headers) {
  flush_to_client();
  ex_->record.outcome = outcome;
  if (ex_->lookup != nullptr) {
    worker_.resolver().cancel(ex_->lookup);
    ex_->lookup = nullptr;
  }
  teardown_upstream();
  if (ex_->response_started) {
    // The client already has part of a response: reset it, so that a
    // truncated body is never mistaken for a complete one.
    client_.abort();
    spdlog::debug("{}: response aborted: {}", client_name_, sentence);
  } else {
    std::string& out = worker_.scratch();
    out.clear();
    build_error_response(out, status, error, sentence, /*close=*/true, extra_headers,
                         ex_->request_parser.method() == HTTP_HEAD);
    send_to_client(out.data(), out.size());
    ex_->record.status = status;
    spdlog::debug("{}: {} {}: {}", client_name_, status, error_token(error), sentence);
  }
  log_exchange();
  begin_closing();
}

// The client left (FIN or RST) before its exchange ended.
void Session::client_gone() {
  ex_->record.outcome = Outcome::client_aborted();
  if (ex_->lookup != nullptr) {
    worker_.resolver().cancel(ex_->lookup);
    ex_->lookup = nullptr;
  }
  teardown_upstream();
  client_.close();
  log_exchange();
  enter(Phase::closing);
  finish_if_closed();
}

// A pooled connection that died before answering is retried once on a fresh
// connection, for idempotent requests without a body (SPEC §2).
bool Session::retry_on_fresh_connection() {
  if (!ex_->record.reused || ex_->retried || ex_->record.first_byte_ms != kNoTime ||
      !idempotent_without_body(ex_->request_parser)) {
    return false;
  }
  ex_->retried = true;
  ex_->record.reused = false;
  upstream_.close();
  upstream_eof_ = false;
  open_upstream();
  return true;
}

// How a stuck upstream goes: RST by default, or FIN and a lingering read
// (finished in the closing phase) when the route says "graceful".
void Session::teardown_upstream() {
  if (!upstream_) return;
  if (route().teardown == Teardown::graceful && phase_ != Phase::connecting &&
      upstream_.shutdown_write() == 0) {
    upstream_eof_ = false;
    upstream_.start_reading();
    return;
  }
  upstream_.abort();
}

// The client connection ends: our FIN goes out after the pending response,
// and input is read and dropped until the client's FIN, so that the client
// reads its response rather than a reset caused by unread data.
void Session::begin_closing() {
  if (client_) {
    if (client_.shutdown_write() == 0) {
      client_.start_reading();
    } else {
      client_.close();
    }
  }
  enter(Phase::closing);
  finish_if_closed();
}

// Closing phase: a socket is done when the peer's FIN is in and ours is out.
void Session::close_when_done(TcpSocket& socket) {
  bool client = &socket == &client_;
  if ((client ? client_eof_ : upstream_eof_) &&
      (client ? client_shutdown_done_ : upstream_shutdown_done_)) {
    socket.close();
  }
}

void Session::finish_if_closed() {
  if (phase_ != Phase::closing || client_ || upstream_) return;
  deadline_.disarm();
  worker_.retire(this);
}

void Session::drain() {
  // Between exchanges a connection can go now; one in the middle of an
  // exchange closes when its response is done.
  if (phase_ == Phase::idle) {
    client_.close();
    set_phase(Phase::closing);
    finish_if_closed();
  }
}

void Session::expire(const Expiry& expiry) {
  // A connection already closing keeps its own linger deadline.
  if (phase_ != Phase::closing) on_deadline(expiry);
}

void Session::terminate() {
  bool responding = false;
  if (ex_ && phase_ != Phase::idle && phase_ != Phase::closing) {
    responding = ex_->response_started;
    if (!ex_->logged) {
      ex_->record.outcome = Outcome::stopped();
      log_exchange();
    }
    if (ex_->lookup != nullptr) {
      worker_.resolver().cancel(ex_->lookup);
      ex_->lookup = nullptr;
    }
  }
  upstream_.abort();
  // A response cut short must not look complete to the client.
  if (responding) {
    client_.abort();
  } else {
    client_.close();
  }
  set_phase(Phase::closing);
  finish_if_closed();
}

// --- socket events -------------------------------------------------------------

void Session::on_read_end(TcpSocket& socket, int status) {
  bool client = &socket == &client_;
  bool fin = status == UV_EOF;
  switch (phase_) {
    case Phase::closing:
      (client ? client_eof_ : upstream_eof_) = true;
      if (fin) {
        close_when_done(socket);
      } else {
        socket.close();
      }
      return finish_if_closed();
    case Phase::tunnelling:
      if (fin) return tunnel_half_close(socket);
      return end_tunnel(client ? Outcome::client_aborted()
                               : Outcome::failed(ProxyError::connection_terminated));
    case Phase::idle:
      client_.close();
      set_phase(Phase::closing);
      return finish_if_closed();
    case Phase::reading_head:
      return client_gone();
    default:
      break;
  }
  if (client) return client_gone();
  upstream_eof_ = true;
  if (phase_ == Phase::streaming) {
    // A close-delimited body ends with the connection.
    if (fin && ex_->response_parser.finish() == HttpParser::Event::message_complete) {
      return on_response_complete(0);
    }
    return fail_upstream(ProxyError::connection_terminated,
                         fmt::format("{} closed the connection in the middle of the response "
                                     "(route {})",
                                     describe_target(), ex_->route.name));
  }
  if (retry_on_fresh_connection()) return;
  fail_upstream(ProxyError::connection_terminated,
                fmt::format("{} closed the connection before a complete response head "
                            "({}, route {})",
                            describe_target(), fin ? "FIN" : uv_err_name(status), ex_->route.name));
}

void Session::on_drained(TcpSocket& socket, int status) {
  bool client = &socket == &client_;
  if (status < 0) {
    // The peer is gone (EPIPE, ECONNRESET): nothing more can reach it.
    if (phase_ == Phase::closing) {
      socket.abort();
      return finish_if_closed();
    }
    if (client) return client_gone();
    if (phase_ == Phase::tunnelling) {
      return end_tunnel(Outcome::failed(ProxyError::connection_terminated));
    }
    return fail_upstream(ProxyError::connection_terminated,
                         fmt::format("writing to {} failed: {} (route {})", describe_target(),
                                     uv_strerror(status), ex_->route.name));
  }
  if (phase_ == Phase::closing) return;
  deadline_.touch();  // bytes reached the kernel: the exchange is moving
  if (client) {
    // The client caught up: read from the upstream again.
    if (upstream_ && (phase_ == Phase::streaming || phase_ == Phase::tunnelling)) {
      upstream_.start_reading();
    }
  } else {
    keep_reading_client();
  }
}

void Session::on_shutdown(TcpSocket& socket, int status) {
  bool client = &socket == &client_;
  (client ? client_shutdown_done_ : upstream_shutdown_done_) = true;
  if (status < 0) {
    socket.abort();
  } else if (phase_ == Phase::closing) {
    close_when_done(socket);
  }
  finish_if_closed();
}

// --- helpers -------------------------------------------------------------------

void Session::keep_reading_client() {
  if (!client_ || (ex_ && ex_->stash.size() >= kHighWater)) return;
  if (upstream_ && upstream_.queued() >= kHighWater) return;
  client_.start_reading();
}

void Session::pause_if_backlogged(TcpSocket& writer, TcpSocket& reader) {
  if (writer.queued() >= kHighWater) reader.stop_reading();
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

void Session::send_to_client(const char* data, size_t len) {
  if (staged_ == 0) {
    ex_->record.down_bytes += len;
    client_.send(data, len);
    return;
  }
  std::string& staged = worker_.scratch();
  uv_buf_t bufs[2] = {uv_buf_init(staged.data(), static_cast<unsigned>(staged_)),
                      uv_buf_init(const_cast<char*>(data), static_cast<unsigned>(len))};
  ex_->record.down_bytes += staged_ + len;
  staged_ = 0;
  client_.send(bufs, 2);
}

void Session::flush_to_client() {
  if (staged_ == 0) return;
  if (!client_) {
    staged_ = 0;
    return;
  }
  send_to_client("", 0);
}

std::string Session::describe_target() const {
  if (ex_->target.host.find(':') != std::string::npos) {
    return fmt::format("[{}]:{}", ex_->target.host, ex_->target.port);
  }
  return fmt::format("{}:{}", ex_->target.host, ex_->target.port);
}

int64_t Session::since(uint64_t start) const {
  return static_cast<int64_t>(uv_now(worker_.loop()) - start);
}

}  // namespace cutoff
