#pragma once
// What logs and /connections show of a request target (SPEC §7). A query
// string often carries credentials (tokens, signed-URL signatures, session
// ids), so unless `log_query = true` everything after the path is replaced
// by a fixed marker: "http://host/p?q=1" is shown as "http://host/p?<redacted>".
//
// The shown target is a prefix of the real one plus, maybe, the marker: it is
// never copied, and a target without '?' or '#' costs one scan and nothing
// else.

#include <string>
#include <string_view>

namespace cutoff {

// Stands where the query (and a fragment, if a client sent one) was. '<' and
// '>' may not appear unescaped in a URL, so the marker cannot be mistaken for
// a query a client sent.
inline constexpr std::string_view kRedactionMarker = "<redacted>";

// A request target as shown: `kept`, followed by kRedactionMarker when
// `redacted`.
struct ShownTarget {
  std::string_view kept;
  bool redacted = false;

  bool empty() const { return kept.empty() && !redacted; }
  // The whole shown text (allocates: for tests and rare diagnostics).
  std::string to_string() const;
};

// The target up to and including its first '?' or '#', then the marker.
// A target with neither, or with nothing after it, is shown whole: there is
// nothing to hide. A '?' escaped as %3F belongs to the path and is kept.
// Works the same on origin-form ("/p?q"), absolute-form ("http://h/p?q")
// and authority-form ("h:443") targets.
ShownTarget redact_query(std::string_view target);

// redact_query, unless `log_query`: then the target whole.
inline ShownTarget show_target(std::string_view target, bool log_query) {
  return log_query ? ShownTarget{target, false} : redact_query(target);
}

}  // namespace cutoff
