#pragma once
// What logs and /connections show of a request target (SPEC §7). A query
// string often carries credentials (tokens, signed-URL signatures, session
// ids), so unless `log_query = true` everything after the path is replaced
// by a fixed marker: "http://host/p?q=1" is shown as "http://host/p?<redacted>".
// A user name and password before the host ("http://user:pw@host/") are
// always replaced, whatever log_query says: they are nothing but a secret.
//
// The shown target is made of pieces of the real one and, maybe, markers: it
// is never copied, and a target without '?', '#' or '@' costs one scan and
// nothing else.

#include <string>
#include <string_view>

namespace cutoff {

// Stands where the query (and a fragment, if a client sent one) or the
// userinfo was. '<' and '>' may not appear unescaped in a URL, so the
// marker cannot be mistaken for something a client sent.
inline constexpr std::string_view kRedactionMarker = "<redacted>";

// A request target as shown: `scheme`, then "<redacted>@" when
// `userinfo_hidden`, then `kept`, then kRedactionMarker when `redacted`.
struct ShownTarget {
  // "http://" before a hidden userinfo; for a request inside an intercepted
  // connection, the origin its path belongs to ("https://host"); else empty.
  std::string_view scheme;
  bool userinfo_hidden = false;
  std::string_view kept;
  bool redacted = false;  // the query was hidden

  bool empty() const { return scheme.empty() && !userinfo_hidden && kept.empty() && !redacted; }
  // Appends the shown text to `out`, passing the target's own bytes through
  // `append_chars(out, piece)` (the caller's escaping) and the markers as
  // they are: they hold nothing that needs escaping.
  template <typename Out, typename AppendChars>
  void write(Out& out, AppendChars append_chars) const {
    append_chars(out, scheme);
    if (userinfo_hidden) {
      out.append(kRedactionMarker);
      out.push_back('@');
    }
    append_chars(out, kept);
    if (redacted) out.append(kRedactionMarker);
  }
  // The whole shown text (allocates: for tests and rare diagnostics).
  std::string to_string() const;
};

// The target with its userinfo hidden, and its query: everything after its
// first '?' or '#' replaced by the marker. A target with neither, or with
// nothing after it, keeps its end: there is nothing to hide. A '?' escaped
// as %3F belongs to the path and is kept. Works the same on origin-form
// ("/p?q"), absolute-form ("http://u:p@h/p?q") and authority-form
// ("u:p@h:443") targets.
ShownTarget redact_query(std::string_view target);

// The target with only its userinfo hidden (log_query = true).
ShownTarget redact_userinfo(std::string_view target);

inline ShownTarget show_target(std::string_view target, bool log_query) {
  return log_query ? redact_userinfo(target) : redact_query(target);
}

}  // namespace cutoff
