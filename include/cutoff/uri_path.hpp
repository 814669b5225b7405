#pragma once
// Request paths as `path_prefix` routes see them (SPEC §9), so that a route
// cannot be bypassed by another spelling of the same path. The path itself is
// forwarded as the client sent it; only the match uses these forms.

#include <string>
#include <string_view>

namespace cutoff {

// How "%2F" and "%5C" (and a raw "\") are read. RFC 3986 keeps them data,
// inside a segment; some servers decode them into path separators. A prefix
// must hold under both readings to be a rule, so routes match either form.
enum class EscapedSlashes { kept, as_slashes };

// RFC 3986 §6.2.2 on the path of a request target (up to "?"): escapes of
// unreserved characters decoded, other escapes with upper-case hex, dot
// segments removed, runs of "/" merged; always starts with "/". False when a
// "%" is not followed by two hex digits (the path cannot be normalised).
bool normalize_path(std::string_view path, EscapedSlashes slashes, std::string* out);

// True when the two readings of EscapedSlashes may differ for this path.
bool has_escaped_slashes(std::string_view path);

}  // namespace cutoff
