#include "cutoff/chunk_extension.hpp"

#include "cutoff/ascii.hpp"

namespace cutoff {
namespace {

// qdtext and the octets a quoted-pair may escape (RFC 9110 §5.6.4): HTAB,
// SP, visible ASCII and obs-text; never other controls or DEL.
bool quotable(unsigned char c) {
  return c == '\t' || (c >= 0x20 && c != 0x7F);
}

}  // namespace

bool ChunkExtensionCheck::name(std::string_view part) {
  for (char c : part) {
    if (!is_tchar(c)) return false;
  }
  name_seen_ = name_seen_ || !part.empty();
  return true;
}

bool ChunkExtensionCheck::end_name() {
  bool ok = name_seen_;
  name_seen_ = false;
  state_ = State::value_start;
  return ok;
}

bool ChunkExtensionCheck::value(std::string_view part) {
  for (char ch : part) {
    unsigned char c = static_cast<unsigned char>(ch);
    switch (state_) {
      case State::name:
        return false;  // llhttp reports names before values
      case State::value_start:
        state_ = c == '"' ? State::quoted : State::token;
        if (state_ == State::token && !is_tchar(ch)) return false;
        break;
      case State::token:
        if (!is_tchar(ch)) return false;
        break;
      case State::quoted:
        if (c == '"') {
          state_ = State::closed;
        } else if (c == '\\') {
          state_ = State::escaped;
        } else if (!quotable(c)) {
          return false;
        }
        break;
      case State::escaped:
        if (!quotable(c)) return false;
        state_ = State::quoted;
        break;
      case State::closed:
        return false;  // nothing may follow the closing quote
    }
  }
  return true;
}

bool ChunkExtensionCheck::end_value() {
  bool ok = state_ == State::token || state_ == State::closed;
  state_ = State::name;
  return ok;
}

}  // namespace cutoff
