#pragma once
// What one exchange (a request and its response, or a tunnel) did: the record
// behind its access-log line.

#include <cstdint>
#include <string_view>

#include "cutoff/proxy_error.hpp"
#include "cutoff/query_redaction.hpp"
#include "cutoff/timeout.hpp"

namespace cutoff {

struct Outcome {
  enum class Kind : uint8_t { ok, timeout, error, client_abort, stopped };
  Kind kind = Kind::ok;
  TimeoutName timeout = TimeoutName::idle_timeout;       // when kind == timeout
  ProxyError error = ProxyError::connection_terminated;  // when kind == error

  static Outcome ok() { return {}; }
  static Outcome timed_out(TimeoutName name) { return {Kind::timeout, name, {}}; }
  static Outcome failed(ProxyError error) { return {Kind::error, {}, error}; }
  static Outcome client_aborted() { return {Kind::client_abort, {}, {}}; }
  // cutoff stopped at once (a second SIGTERM) while the exchange ran.
  static Outcome stopped() { return {Kind::stopped, {}, {}}; }
};

// A time not reached during the exchange (no DNS for an address literal,
// no connect for a pooled connection, ...).
inline constexpr int64_t kNoTime = -1;

struct ExchangeRecord {
  std::string_view client;  // "ip:port"
  std::string_view method;
  ShownTarget target;  // as logs show it: the query redacted unless log_query
  int http_major = 1;
  int http_minor = 1;
  std::string_view route;
  int status = 0;           // 0: no response was sent
  uint64_t up_bytes = 0;    // client -> upstream, body or tunnel bytes
  uint64_t down_bytes = 0;  // upstream -> client, response head and body
  int64_t dns_ms = kNoTime;
  int64_t connect_ms = kNoTime;
  int64_t first_byte_ms = kNoTime;
  int64_t total_ms = 0;
  // A CONNECT tunnel's TLS server name (lower-case host name characters
  // only), empty when none was seen.
  std::string_view sni;
  // The test that sent the request (test_identity.hpp), empty when none.
  std::string_view test_id;
  bool reused = false;
  Outcome outcome;
};

}  // namespace cutoff
