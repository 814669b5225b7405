#pragma once
// The phases of a client connection, as the session's state machine
// (session.hpp) moves through them and as /connections and /metrics name
// them. Kept apart from the session so that what reports on phases needs
// nothing else of it.

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace cutoff {

// Each phase names the deadline that guards it; Session::enter() arms it.
enum class SessionPhase : uint8_t {
  idle,                // client_keepalive_timeout: waiting for a request's first byte
  reading_head,        // request_header_timeout: from that byte to the end of the head
  resolving,           // dns_timeout: looking up the upstream's name
  connecting,          // connect_timeout: all of the upstream's addresses together
  upstream_handshake,  // tls_handshake_timeout: cutoff's TLS handshake with an intercepted
                       // request's upstream
  sending_request,     // idle_timeout, min_rate: the request body moves up, no response yet
  awaiting_response,   // response_header_timeout: request sent, response head not yet whole
  streaming,           // idle_timeout, min_rate: the response body moves down
  client_handshake,    // tls_handshake_timeout: an intercepting CONNECT, answered; the
                       // client's TLS handshake with cutoff
  tls_handshake,       // tls_handshake_timeout: a CONNECT tunnel's ClientHello, unanswered
  tunnelling,          // tunnel_idle_timeout: CONNECT or Upgrade, bytes both ways
  ended,               // none: nothing left to wait for; the worker frees the session
};

inline constexpr size_t kSessionPhases = static_cast<size_t>(SessionPhase::ended) + 1;

// "idle", "reading_head", ...: the enumerator's own name.
std::string_view phase_name(SessionPhase phase);

// True for the phases of an exchange in flight, from its first byte to its
// end: neither idle between requests nor ended.
constexpr bool in_exchange(SessionPhase phase) {
  return phase != SessionPhase::idle && phase != SessionPhase::ended;
}

// True for the phases of a tunnel: bytes pass both ways as they come.
constexpr bool in_tunnel(SessionPhase phase) {
  return phase == SessionPhase::tls_handshake || phase == SessionPhase::tunnelling;
}

}  // namespace cutoff
