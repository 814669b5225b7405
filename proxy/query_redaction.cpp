#include "cutoff/query_redaction.hpp"

namespace cutoff {

// Hides a userinfo ("user:password@") at the start of the authority.
// The authority begins after "scheme://" (absolute form), after "//" (a
// network-path reference, which a client may send by mistake) or at the
// start (authority form), and ends at the first '/', '?' or '#'; an '@'
// after it is part of the path or the query, not a credential. The last '@'
// ends the userinfo, as browsers read it, so that no part of a password
// shows.
ShownTarget redact_userinfo(std::string_view target) {
  ShownTarget shown{{}, false, target, false};
  // Nearly every target has no '@' at all: one memchr says so.
  if (target.find('@') == std::string_view::npos) return shown;
  size_t authority_at = 0;
  if (target.starts_with("//")) {
    authority_at = 2;
  } else if (!target.empty() && target.front() == '/') {
    return shown;  // origin form: no authority
  } else if (size_t colon = target.find(':');
             colon != std::string_view::npos && target.substr(colon, 3) == "://") {
    authority_at = colon + 3;
  }
  size_t at_sign = std::string_view::npos;
  for (size_t i = authority_at; i < target.size(); ++i) {
    char c = target[i];
    if (c == '/' || c == '?' || c == '#') break;
    if (c == '@') at_sign = i;
  }
  if (at_sign == std::string_view::npos) return shown;
  return ShownTarget{target.substr(0, authority_at), true, target.substr(at_sign + 1), false};
}

std::string ShownTarget::to_string() const {
  std::string text;
  write(text, [](std::string& out, std::string_view piece) { out.append(piece); });
  return text;
}

ShownTarget redact_query(std::string_view target) {
  ShownTarget shown = redact_userinfo(target);
  // The query starts at the first '?' and the fragment at the first '#';
  // whichever comes first, nothing after it is shown. Two single-byte finds
  // (memchr) are cheaper than one search for either byte, which tests both
  // at each byte.
  std::string_view rest = shown.kept;
  size_t delimiter = rest.find('?');
  size_t hash = rest.substr(0, delimiter).find('#');
  if (hash != std::string_view::npos) delimiter = hash;
  if (delimiter == std::string_view::npos || delimiter + 1 == rest.size()) return shown;
  shown.kept = rest.substr(0, delimiter + 1);
  shown.redacted = true;
  return shown;
}

}  // namespace cutoff
