#include "cutoff/route.hpp"

#include <netinet/in.h>

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

bool address_matches(const std::vector<Cidr>& networks, const sockaddr* address) {
  const uint8_t* bytes;
  bool v6 = address->sa_family == AF_INET6;
  if (v6) {
    bytes = reinterpret_cast<const sockaddr_in6*>(address)->sin6_addr.s6_addr;
  } else {
    bytes =
        reinterpret_cast<const uint8_t*>(&reinterpret_cast<const sockaddr_in*>(address)->sin_addr);
  }
  return std::any_of(networks.begin(), networks.end(),
                     [&](const Cidr& net) { return cidr_contains(net, bytes, v6); });
}

bool has_prefix(std::string_view path, std::string_view prefix) {
  return path.substr(0, prefix.size()) == prefix;
}

bool path_matches(std::string_view prefix, const RouteQuery& query, Readings readings) {
  bool strict = has_prefix(query.path, prefix);
  if (query.path_lenient.empty()) return strict;
  bool lenient = has_prefix(query.path_lenient, prefix);
  return readings == Readings::any ? strict || lenient : strict && lenient;
}

// Everything but the address.
bool request_matches(const RouteMatch& match, const RouteQuery& query, Readings readings) {
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
    if (!path_matches(match.path_prefix, query, readings)) return false;
  }
  return true;
}

}  // namespace

bool route_matches(const RouteMatch& match, const RouteQuery& query, Readings readings) {
  if (!request_matches(match, query, readings)) return false;
  if (match.addresses.empty()) return true;
  return query.address != nullptr && address_matches(match.addresses, query.address);
}

RouteChoice select_route(const Config& config, const RouteQuery& query) {
  bool pending = false;
  for (const Route& route : config.routes) {
    Readings readings =
        route.settings.action == RouteAction::deny ? Readings::any : Readings::every;
    if (route_matches(route.match, query, readings)) {
      return RouteChoice{&route.settings, route.name, pending};
    }
    if (query.address == nullptr && !route.match.addresses.empty() &&
        request_matches(route.match, query, readings)) {
      pending = true;
    }
  }
  return RouteChoice{&config.defaults, "default", pending};
}

}  // namespace cutoff
