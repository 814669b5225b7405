#include "cutoff/timeout.hpp"

namespace cutoff {

std::string_view timeout_token(TimeoutName name) {
  switch (name) {
    case TimeoutName::request_header_timeout:
      return "request_header_timeout";
    case TimeoutName::client_keepalive_timeout:
      return "client_keepalive_timeout";
    case TimeoutName::dns_timeout:
      return "dns_timeout";
    case TimeoutName::connect_timeout:
      return "connect_timeout";
    case TimeoutName::response_header_timeout:
      return "response_header_timeout";
    case TimeoutName::idle_timeout:
      return "idle_timeout";
    case TimeoutName::request_timeout:
      return "request_timeout";
    case TimeoutName::min_rate:
      return "min_rate";
    case TimeoutName::upstream_keepalive_timeout:
      return "upstream_keepalive_timeout";
    case TimeoutName::tunnel_idle_timeout:
      return "tunnel_idle_timeout";
    case TimeoutName::tunnel_max_duration:
      return "tunnel_max_duration";
    case TimeoutName::tls_handshake_timeout:
      return "tls_handshake_timeout";
    case TimeoutName::linger_timeout:
      return "linger_timeout";
    case TimeoutName::drain_timeout:
      return "drain_timeout";
  }
  return "unknown_timeout";
}

}  // namespace cutoff
