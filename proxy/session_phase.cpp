#include "cutoff/session_phase.hpp"

namespace cutoff {

std::string_view phase_name(SessionPhase phase) {
  switch (phase) {
    case SessionPhase::idle:
      return "idle";
    case SessionPhase::reading_head:
      return "reading_head";
    case SessionPhase::resolving:
      return "resolving";
    case SessionPhase::connecting:
      return "connecting";
    case SessionPhase::upstream_handshake:
      return "upstream_handshake";
    case SessionPhase::sending_request:
      return "sending_request";
    case SessionPhase::awaiting_response:
      return "awaiting_response";
    case SessionPhase::streaming:
      return "streaming";
    case SessionPhase::client_handshake:
      return "client_handshake";
    case SessionPhase::tls_handshake:
      return "tls_handshake";
    case SessionPhase::tunnelling:
      return "tunnelling";
    case SessionPhase::ended:
      return "ended";
  }
  return "unknown";
}

}  // namespace cutoff
