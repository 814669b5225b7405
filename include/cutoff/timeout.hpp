#pragma once
// The names of cutoff's timeouts, as they appear in the config, in logs and in
// the access log's `outcome=timeout:<name>`.

#include <cstdint>
#include <string_view>

namespace cutoff {

enum class TimeoutName : uint8_t {
  request_header_timeout,
  client_keepalive_timeout,
  dns_timeout,
  connect_timeout,
  response_header_timeout,
  idle_timeout,
  request_timeout,
  min_rate,  // a low-speed limit rather than a wait, but it ends an exchange the same way
  upstream_keepalive_timeout,
  tunnel_idle_timeout,
  tunnel_max_duration,
  tls_handshake_timeout,
  linger_timeout,
  drain_timeout,
};

std::string_view timeout_token(TimeoutName name);

}  // namespace cutoff
