#include "cutoff/query_redaction.hpp"

#include <bit>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace cutoff {

namespace {

// What redact_query() looks for in a target, found in one pass.
struct Delimiters {
  size_t query = std::string_view::npos;  // the first '?' or '#'
  bool at_sign = false;                   // an '@' anywhere
};

#if defined(__SSE2__)
// The delimiters among the 16 bytes at `p`, as bit masks (bit i for p[i]).
struct BlockMasks {
  unsigned query;
  unsigned at_sign;
};

BlockMasks masks_at(const char* p) {
  __m128i bytes = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
  __m128i query = _mm_or_si128(_mm_cmpeq_epi8(bytes, _mm_set1_epi8('?')),
                               _mm_cmpeq_epi8(bytes, _mm_set1_epi8('#')));
  __m128i at_sign = _mm_cmpeq_epi8(bytes, _mm_set1_epi8('@'));
  return {static_cast<unsigned>(_mm_movemask_epi8(query)),
          static_cast<unsigned>(_mm_movemask_epi8(at_sign))};
}
#endif

// One pass where three searches of a byte each (memchr) would read most
// targets three times: where the CPU can, 16 bytes at a time.
Delimiters find_delimiters(std::string_view s) {
  Delimiters found;
  size_t i = 0;
#if defined(__SSE2__)
  if (s.size() >= 16) {
    auto take = [&](BlockMasks m, size_t at) {
      if (m.query != 0 && found.query == std::string_view::npos) {
        found.query = at + static_cast<size_t>(std::countr_zero(m.query));
      }
      found.at_sign = found.at_sign || m.at_sign != 0;
    };
    for (; i + 16 <= s.size(); i += 16) take(masks_at(s.data() + i), i);
    // The last bytes, as the 16 that end `s`, those already seen masked off.
    size_t last = s.size() - 16;
    BlockMasks m = masks_at(s.data() + last);
    m.query >>= i - last;
    m.at_sign >>= i - last;
    take(m, i);
    return found;
  }
#endif
  for (; i < s.size(); ++i) {
    char c = s[i];
    if ((c == '?' || c == '#') && found.query == std::string_view::npos) found.query = i;
    found.at_sign = found.at_sign || c == '@';
  }
  return found;
}

// The target with its query hidden, from the place it starts.
ShownTarget hide_query(ShownTarget shown, size_t delimiter) {
  if (delimiter == std::string_view::npos || delimiter + 1 == shown.kept.size()) return shown;
  shown.kept = shown.kept.substr(0, delimiter + 1);
  shown.redacted = true;
  return shown;
}

}  // namespace

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
  // The query starts at the first '?' and the fragment at the first '#';
  // whichever comes first, nothing after it is shown. Nearly every target
  // has no '@', and so no userinfo to hide first.
  Delimiters found = find_delimiters(target);
  if (!found.at_sign) return hide_query(ShownTarget{{}, false, target, false}, found.query);
  ShownTarget shown = redact_userinfo(target);
  return hide_query(shown, find_delimiters(shown.kept).query);
}

}  // namespace cutoff
