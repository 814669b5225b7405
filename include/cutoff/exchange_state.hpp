#pragma once
// The state of one exchange in progress, kept apart from its client
// connection so that an idle keep-alive connection holds none of it: a worker
// recycles these, and a connection borrows one from a request's first byte
// until it is idle again. That includes the exchange's one deadline, with
// its timer: an idle connection waits under the worker's keep-alive queue
// instead (keep_alive_queue.hpp).

#include <cstdint>
#include <memory>
#include <string>

#include "cutoff/config.hpp"
#include "cutoff/connect_race.hpp"
#include "cutoff/deadline.hpp"
#include "cutoff/exchange.hpp"
#include "cutoff/exchange_listener.hpp"
#include "cutoff/http_parser.hpp"
#include "cutoff/http_rewrite.hpp"
#include "cutoff/requested_timeouts.hpp"
#include "cutoff/resolver.hpp"
#include "cutoff/route.hpp"
#include "cutoff/socket_address.hpp"
#include "cutoff/tls_client_hello.hpp"

namespace cutoff {

struct ExchangeState {
  explicit ExchangeState(uv_loop_t* loop) : deadline(loop) {}

  // Takes the events of the deadline, the lookup, the connect race and a
  // decoded body, for the session that borrows the state.
  ExchangeListener listener;
  // Guards every phase of the exchange (session.hpp's enter()); `listener`
  // listens to it.
  Deadline deadline;
  // The config current when the exchange began; a reload changes the next
  // exchange, never this one.
  std::shared_ptr<const Config> config;
  HttpParser request_parser{HTTP_REQUEST};
  HttpParser response_parser{HTTP_RESPONSE};
  Target target;
  RouteChoice route{nullptr, {}};
  // The parent proxy the exchange goes through (SPEC §11), or null: direct.
  // Points into `config`, which the exchange holds.
  const ProxyEndpoint* parent = nullptr;
  // A CONNECT to the parent is out and its answer not yet in: still
  // `connecting`, under the same connect_timeout.
  bool awaiting_parent = false;
  // The parent's Proxy-Status when it refused: cutoff's own entry follows it.
  std::string parent_proxy_status;
  // An intercepted request's pool key host: the target's, with the parent
  // it goes through.
  std::string tls_pool_host;
  Resolver::Lookup* lookup = nullptr;  // while resolving
  AddressList addresses;
  // Connecting to `addresses` (RFC 8305): holds the attempts while the
  // phase is `connecting`, nothing before or after.
  ConnectRace race;
  sockaddr_in6 upstream_peer{};  // the address the upstream connection goes to
  // The readings of the path routes match (uri_path.hpp), when some route
  // has a path_prefix; the lenient one only when it may differ.
  std::string match_path;
  std::string match_path_lenient;
  ResponsePlan plan;
  // The test that sent the request (SPEC §12), which record.test_id shows,
  // and what its Cutoff-Timeout asked of the deadlines.
  std::string test_id;
  RequestedTimeouts asked;
  // Why a failed exchange failed, kept only for a test's report (the
  // client has it in the error response).
  std::string failure;
  // Response heads are composed in the worker's scratch buffer and sent
  // together with the body bytes that follow them; this many bytes at its
  // front still wait to go to the client.
  size_t staged = 0;
  ExchangeRecord record;
  // The client's "ip:port", which record.client shows: formatted for the
  // session whose id is `client_name_of`, so that a connection that keeps
  // borrowing the same state formats it once.
  char client_name[kAddressTextSize] = {};
  uint64_t client_name_of = 0;
  uint64_t started_at = 0;  // loop time (ms) of the request's first byte
  uint64_t started_hr = 0;  // the same in nanoseconds, for latency histograms
  bool is_connect = false;
  bool is_upgrade = false;
  bool request_keep_alive = false;
  // Decided at the request head: an idempotent method and no body at all, so
  // the request may be sent again on a fresh connection (SPEC §7b).
  bool replayable = false;
  bool request_done = false;
  bool response_started = false;
  bool retried = false;
  bool upstream_dirty = false;  // bytes after a complete response: never reuse
  bool logged = false;
  // Client bytes read ahead of where the exchange can take them: a pipelined
  // next request, or tunnel bytes before the tunnel is up. Never parsed.
  std::string stash;
  // Request body bytes already parsed (validated), waiting for the upstream
  // to be connected and the head sent.
  std::string body_ahead;
  // What each peer had acknowledged when min_rate last marked deliveries
  // (DeadlineListener::mark_deliveries), or kNoMark for a peer that cutoff
  // held nothing back for then.
  static constexpr uint64_t kNoMark = UINT64_MAX;
  uint64_t client_acked_mark = kNoMark;
  uint64_t upstream_acked_mark = kNoMark;
  // A CONNECT tunnel's first client bytes, read for a TLS ClientHello while
  // `watching_hello` (until the hello is whole, or the bytes are not TLS,
  // or the upstream spoke first).
  ClientHelloReader client_hello;
  bool watching_hello = false;
};

}  // namespace cutoff
