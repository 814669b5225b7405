#include "cutoff/route.hpp"

#include <algorithm>

namespace cutoff {
namespace {

bool host_matches(std::string_view pattern, std::string_view host) {
  if (pattern.empty() || pattern == "*") return true;
  if (pattern.size() > 2 && pattern.substr(0, 2) == "*.") {
    // "*.example.com" covers every name below example.com, at any depth,
    // but not example.com itself.
    const std::string_view suffix = pattern.substr(1);  // ".example.com"
    return host.size() > suffix.size() && host.substr(host.size() - suffix.size()) == suffix;
  }
  return pattern == host;
}

}  // namespace

bool route_matches(const RouteMatch& match, const RouteQuery& query) {
  if (!host_matches(match.host, query.host)) return false;
  if (!match.ports.empty() &&
      std::find(match.ports.begin(), match.ports.end(), query.port) == match.ports.end()) {
    return false;
  }
  if (!match.methods.empty() &&
      std::find(match.methods.begin(), match.methods.end(), query.method) == match.methods.end()) {
    return false;
  }
  if (!match.path_prefix.empty()) {
    // A tunnel has no path to look at, so a path rule cannot vouch for it.
    if (query.is_connect) return false;
    if (query.path.substr(0, match.path_prefix.size()) != match.path_prefix) return false;
  }
  return true;
}

RouteChoice select_route(const Config& config, const RouteQuery& query) {
  for (const Route& route : config.routes) {
    if (route_matches(route.match, query)) return RouteChoice{&route.settings, route.name};
  }
  return RouteChoice{&config.defaults, "default"};
}

}  // namespace cutoff
