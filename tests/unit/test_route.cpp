#include <arpa/inet.h>

#include <catch2/catch.hpp>
#include <string>

#include "cutoff/config.hpp"
#include "cutoff/route.hpp"

using namespace cutoff;

namespace {

RouteQuery get(std::string_view host, uint16_t port = 80, std::string_view path = "/") {
  RouteQuery q;
  q.host = host;
  q.port = port;
  q.method = "GET";
  q.path = path;
  return q;
}

RouteQuery connect(std::string_view host, uint16_t port = 443) {
  RouteQuery q;
  q.host = host;
  q.port = port;
  q.method = "CONNECT";
  q.is_connect = true;
  return q;
}

Config config(std::string_view toml) {
  ConfigResult result = parse_config(toml, "t.toml");
  REQUIRE(std::holds_alternative<Config>(result));
  return std::get<Config>(std::move(result));
}

RouteMatch host_match(std::string host) {
  RouteMatch m;
  m.host = std::move(host);
  return m;
}

}  // namespace

TEST_CASE("an empty match fits everything", "[route]") {
  const RouteMatch m;
  CHECK(route_matches(m, get("example.com"), Readings::every));
  CHECK(route_matches(m, connect("example.com"), Readings::every));
  CHECK(route_matches(m, get("10.0.0.1", 8080, "/x?y"), Readings::every));
}

TEST_CASE("exact host", "[route]") {
  const RouteMatch m = host_match("api.example.com");
  CHECK(route_matches(m, get("api.example.com"), Readings::every));
  CHECK(route_matches(m, connect("api.example.com"), Readings::every));
  CHECK_FALSE(route_matches(m, get("example.com"), Readings::every));
  CHECK_FALSE(route_matches(m, get("x.api.example.com"), Readings::every));
  CHECK_FALSE(route_matches(m, get("api.example.com.evil"), Readings::every));
  CHECK_FALSE(route_matches(m, get("api.example.co"), Readings::every));
}

TEST_CASE("wildcard suffix host", "[route]") {
  const RouteMatch m = host_match("*.example.com");
  CHECK(route_matches(m, get("a.example.com"), Readings::every));
  CHECK(route_matches(m, get("a.b.example.com"), Readings::every));
  CHECK(route_matches(m, connect("www.example.com"), Readings::every));
  CHECK_FALSE(route_matches(m, get("example.com"), Readings::every));
  CHECK_FALSE(route_matches(m, get("badexample.com"), Readings::every));
  CHECK_FALSE(route_matches(m, get("a.example.com.evil.net"), Readings::every));
  CHECK_FALSE(route_matches(m, get(".example.com"), Readings::every));
  CHECK_FALSE(route_matches(m, get(""), Readings::every));
}

TEST_CASE("star host matches any host", "[route]") {
  const RouteMatch m = host_match("*");
  CHECK(route_matches(m, get("example.com"), Readings::every));
  CHECK(route_matches(m, get("127.0.0.1"), Readings::every));
  CHECK(route_matches(m, connect("x.y.z"), Readings::every));
}

TEST_CASE("port lists", "[route]") {
  RouteMatch m;
  m.ports = {443, 8443};
  CHECK(route_matches(m, connect("h", 443), Readings::every));
  CHECK(route_matches(m, connect("h", 8443), Readings::every));
  CHECK_FALSE(route_matches(m, connect("h", 444), Readings::every));
  CHECK_FALSE(route_matches(m, get("h", 80), Readings::every));
  m.ports = {80};
  CHECK(route_matches(m, get("h", 80), Readings::every));
  CHECK_FALSE(route_matches(m, get("h", 8080), Readings::every));
}

TEST_CASE("method lists", "[route]") {
  RouteMatch m;
  m.methods = {"GET", "HEAD"};
  CHECK(route_matches(m, get("h"), Readings::every));
  RouteQuery head = get("h");
  head.method = "HEAD";
  CHECK(route_matches(m, head, Readings::every));
  RouteQuery post = get("h");
  post.method = "POST";
  CHECK_FALSE(route_matches(m, post, Readings::every));
  CHECK_FALSE(route_matches(m, connect("h"), Readings::every));
  // Methods are case-sensitive (RFC 9110 9.1); the config stores upper case.
  RouteQuery lower = get("h");
  lower.method = "get";
  CHECK_FALSE(route_matches(m, lower, Readings::every));

  m.methods = {"CONNECT"};
  CHECK(route_matches(m, connect("h"), Readings::every));
  CHECK_FALSE(route_matches(m, get("h"), Readings::every));
}

TEST_CASE("path prefix", "[route]") {
  RouteMatch m;
  m.path_prefix = "/api/";
  CHECK(route_matches(m, get("h", 80, "/api/"), Readings::every));
  CHECK(route_matches(m, get("h", 80, "/api/v1/users?id=3"), Readings::every));
  CHECK_FALSE(route_matches(m, get("h", 80, "/api"), Readings::every));
  CHECK_FALSE(route_matches(m, get("h", 80, "/apiv2/"), Readings::every));
  CHECK_FALSE(route_matches(m, get("h", 80, "/"), Readings::every));
  CHECK_FALSE(route_matches(m, get("h", 80, ""), Readings::every));
  // A tunnel carries no visible path, so a path rule never claims it.
  CHECK_FALSE(route_matches(m, connect("h"), Readings::every));
  RouteQuery odd = connect("h");
  odd.path = "/api/x";
  CHECK_FALSE(route_matches(m, odd, Readings::every));
}

// A deny holds if any reading has its prefix; other routes need every reading.
TEST_CASE("path prefix: the strict and the lenient reading", "[route]") {
  RouteMatch m;
  m.path_prefix = "/admin";
  RouteQuery q = get("h", 80, "/%2Fadmin/x");
  CHECK_FALSE(route_matches(m, q, Readings::any));
  q.path_lenient = "/admin/x";
  CHECK(route_matches(m, q, Readings::any));
  CHECK_FALSE(route_matches(m, q, Readings::every));
  m.path_prefix = "/public/";
  RouteQuery borrow = get("h", 80, "/public/..\\admin");
  borrow.path_lenient = "/admin";
  CHECK(route_matches(m, borrow, Readings::any));
  CHECK_FALSE(route_matches(m, borrow, Readings::every));
  RouteQuery both = get("h", 80, "/public/a;b");
  both.path_lenient = "/public/a";
  CHECK(route_matches(m, both, Readings::every));
}

TEST_CASE("select_route: an allow route cannot be borrowed by a lenient spelling", "[route]") {
  const Config c = config(R"(
[[route]]
name = "allow-public"
match = { path_prefix = "/public/" }

[[route]]
name = "deny-rest"
match = { host = "*" }
action = "deny"
)");
  RouteQuery plain = get("h", 80, "/public/x");
  CHECK(select_route(c, plain).name == "allow-public");
  RouteQuery sneaky = get("h", 80, "/public/..\\admin");
  sneaky.path_lenient = "/admin";
  CHECK(select_route(c, sneaky).name == "deny-rest");
}

TEST_CASE("address: fits only once the upstream address is known", "[route]") {
  RouteMatch m;
  Cidr net;
  REQUIRE(parse_cidr("10.0.0.0/8", &net, nullptr));
  m.addresses = {net};
  RouteQuery q = get("internal.example");
  CHECK_FALSE(route_matches(m, q, Readings::every));
  sockaddr_in inside{};
  inside.sin_family = AF_INET;
  inet_pton(AF_INET, "10.1.2.3", &inside.sin_addr);
  q.address = reinterpret_cast<const sockaddr*>(&inside);
  CHECK(route_matches(m, q, Readings::every));
  sockaddr_in outside = inside;
  inet_pton(AF_INET, "192.168.1.1", &outside.sin_addr);
  q.address = reinterpret_cast<const sockaddr*>(&outside);
  CHECK_FALSE(route_matches(m, q, Readings::every));
  // An IPv4-mapped IPv6 address is the IPv4 address.
  sockaddr_in6 mapped{};
  mapped.sin6_family = AF_INET6;
  inet_pton(AF_INET6, "::ffff:10.9.9.9", &mapped.sin6_addr);
  q.address = reinterpret_cast<const sockaddr*>(&mapped);
  CHECK(route_matches(m, q, Readings::every));
}

TEST_CASE("select_route: a route on addresses before the chosen one leaves it pending", "[route]") {
  const Config c = config(R"(
[[route]]
name = "internal"
match = { address = ["10.0.0.0/8"] }

[[route]]
name = "rest"
match = { host = "*" }
action = "deny"
)");
  CHECK(c.routes_match_addresses);
  CHECK_FALSE(c.routes_match_paths);
  RouteChoice before = select_route(c, get("db.example"));
  CHECK(before.name == "rest");
  CHECK(before.address_pending);
  sockaddr_in inside{};
  inside.sin_family = AF_INET;
  inet_pton(AF_INET, "10.1.2.3", &inside.sin_addr);
  RouteQuery q = get("db.example");
  q.address = reinterpret_cast<const sockaddr*>(&inside);
  RouteChoice after = select_route(c, q);
  CHECK(after.name == "internal");
  CHECK_FALSE(after.address_pending);
}

TEST_CASE("every condition must hold", "[route]") {
  RouteMatch m = host_match("*.example.com");
  m.ports = {8080};
  m.methods = {"POST"};
  m.path_prefix = "/upload";
  RouteQuery q = get("files.example.com", 8080, "/upload/a");
  q.method = "POST";
  CHECK(route_matches(m, q, Readings::every));
  RouteQuery wrong_host = q;
  wrong_host.host = "files.example.org";
  CHECK_FALSE(route_matches(m, wrong_host, Readings::every));
  RouteQuery wrong_port = q;
  wrong_port.port = 80;
  CHECK_FALSE(route_matches(m, wrong_port, Readings::every));
  RouteQuery wrong_method = q;
  wrong_method.method = "GET";
  CHECK_FALSE(route_matches(m, wrong_method, Readings::every));
  RouteQuery wrong_path = q;
  wrong_path.path = "/download";
  CHECK_FALSE(route_matches(m, wrong_path, Readings::every));
}

TEST_CASE("select_route: first match wins, else the defaults", "[route]") {
  const ConfigResult result = parse_config(R"(
[defaults]
connect_timeout = "7s"

[[route]]
name = "specific"
match = { host = "api.example.com", port = 443 }
connect_timeout = "1s"

[[route]]
name = "wild"
match = { host = "*.example.com" }
connect_timeout = "2s"

[[route]]
name = "uploads"
match = { path_prefix = "/upload/", method = ["PUT", "POST"] }
request_timeout = "10m"

[[route]]
name = "deny-telemetry"
match = { host = "telemetry.example.net" }
action = "deny"
)",
                                           "routes.toml");
  REQUIRE(std::holds_alternative<Config>(result));
  const Config& c = std::get<Config>(result);

  RouteChoice choice = select_route(c, connect("api.example.com", 443));
  CHECK(choice.name == "specific");
  CHECK(choice.settings == &c.routes[0].settings);
  CHECK(choice.settings->connect_timeout == Duration::seconds(1));

  // Same host on another port falls through to the wildcard.
  choice = select_route(c, connect("api.example.com", 8443));
  CHECK(choice.name == "wild");
  CHECK(choice.settings->connect_timeout == Duration::seconds(2));

  choice = select_route(c, get("www.example.com"));
  CHECK(choice.name == "wild");

  // The wildcard comes first, so an upload to example.com's subdomain is "wild".
  RouteQuery put = get("a.example.com", 80, "/upload/x");
  put.method = "PUT";
  CHECK(select_route(c, put).name == "wild");

  put.host = "uploads.example.org";
  choice = select_route(c, put);
  CHECK(choice.name == "uploads");
  CHECK(choice.settings->request_timeout == Duration::seconds(600));
  CHECK(choice.settings->connect_timeout == Duration::seconds(7));

  choice = select_route(c, get("telemetry.example.net"));
  CHECK(choice.name == "deny-telemetry");
  CHECK(choice.settings->action == RouteAction::deny);

  choice = select_route(c, get("example.com"));
  CHECK(choice.name == "default");
  CHECK(choice.settings == &c.defaults);
  CHECK(choice.settings->connect_timeout == Duration::seconds(7));
  CHECK(choice.settings->action == RouteAction::forward);

  // CONNECT never takes a path_prefix route.
  RouteQuery tunnel = connect("uploads.example.org");
  CHECK(select_route(c, tunnel).name == "default");
}

TEST_CASE("select_route with no routes", "[route]") {
  const Config c = default_config();
  const RouteChoice choice = select_route(c, get("anything"));
  CHECK(choice.name == "default");
  CHECK(choice.settings == &c.defaults);
}
