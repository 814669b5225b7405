#pragma once
// Route selection: the first [[route]] whose match fits, else [defaults].

#include <sys/socket.h>

#include <string_view>

#include "cutoff/config.hpp"

namespace cutoff {

// What an exchange is matched on. `host` is canonical (address.hpp); the
// paths are normalised (uri_path.hpp), both empty for CONNECT.
struct RouteQuery {
  std::string_view host;
  uint16_t port = 0;
  std::string_view method;
  std::string_view path;          // the strict reading
  std::string_view path_lenient;  // the lenient reading, when it may differ; else empty
  bool is_connect = false;
  // The upstream address about to be tried, once known; until then routes
  // that match on addresses do not fit.
  const sockaddr* address = nullptr;
};

// Which readings of the path (uri_path.hpp) must have a route's prefix.
// A deny holds when any reading has it, so that no spelling slips past it;
// any other route only when every reading has it, so that a spelling one
// server reads as another path cannot borrow the route's permission.
enum class Readings { any, every };

bool route_matches(const RouteMatch& match, const RouteQuery& query, Readings readings);

// The chosen route: `settings` always points at valid settings (the route's
// or the defaults'), and `name` is the route's name or "default".
struct RouteChoice {
  const RouteSettings* settings;
  std::string_view name;
  // Chosen without an address, while an earlier route that matches on
  // addresses fits otherwise: the resolved addresses may still decide.
  bool address_pending = false;
};

RouteChoice select_route(const Config& config, const RouteQuery& query);

}  // namespace cutoff
