#pragma once
// Route selection: the first [[route]] whose match fits, else [defaults].

#include <string_view>

#include "cutoff/config.hpp"

namespace cutoff {

// What an exchange is matched on. `host` must already be lower-case;
// `path` is empty for CONNECT.
struct RouteQuery {
  std::string_view host;
  uint16_t port = 0;
  std::string_view method;
  std::string_view path;
  bool is_connect = false;
};

bool route_matches(const RouteMatch& match, const RouteQuery& query);

// The chosen route: `settings` always points at valid settings (the route's
// or the defaults'), and `name` is the route's name or "default".
struct RouteChoice {
  const RouteSettings* settings;
  std::string_view name;
};

RouteChoice select_route(const Config& config, const RouteQuery& query);

}  // namespace cutoff
