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

// RFC 3986 §6.2.2 on the path of a request target (up to "?"): escapes of
// unreserved characters decoded, other escapes with upper-case hex, dot
// segments removed, runs of "/" merged; always starts with "/". The lenient
// reading first applies the server habits above. False when a "%" is not
// followed by two hex digits (the path cannot be normalised).
bool normalize_path(std::string_view path, PathReading reading, std::string* out);

// False when both readings surely give the same path.
bool readings_may_differ(std::string_view path);

}  // namespace cutoff
