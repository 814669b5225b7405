#pragma once
// Request paths as `path_prefix` routes see them (SPEC §9), so that a route
// cannot be bypassed by another spelling of the same path. The path itself is
// forwarded as the client sent it; only the match uses these forms.

#include <string>
#include <string_view>

namespace cutoff {

// How a path is read. `strict` is RFC 3986's reading. Servers are often more
// lenient: they decode "%2F" and "%5C" into separators, take "\" for "/"
// (IIS, URL parsers after WHATWG), and drop ";parameters" from segments
// (Tomcat, Jetty, Spring read "/..;/admin" as "/admin"). A path that reads
// the same both ways gives one answer; for one that does not, routes decide
// which reading must hold (route.hpp).
enum class PathReading { strict, lenient };

// Why a path cannot be normalised (and routes cannot vouch for it).
enum class PathError {
  none,
  bad_escape,        // a "%" not followed by two hex digits
  hidden_separator,  // a ";parameter" holding "%2F", "%5C" or "\": servers
                     // disagree on where it ends (Tomcat cuts it at the next
                     // raw "/", before decoding)
};

// RFC 3986 §6.2.2 on the path of a request target (up to "?"): escapes of
// unreserved characters decoded, other escapes with upper-case hex, bytes
// that a path may not carry raw (space, quote, "\", non-ASCII, ...)
// escaped, dot segments removed, runs of "/" merged; always starts with "/".
// The lenient reading first applies the server habits above.
PathError normalize_path(std::string_view path, PathReading reading, std::string* out);

// False when both readings surely give the same path.
bool readings_may_differ(std::string_view path);

// A URI component with every "%XX" decoded ("%40" -> "@"), into *out; false
// for a "%" without two hex digits.
bool percent_decode(std::string_view in, std::string* out);

}  // namespace cutoff
