// Routes on resolved addresses (SPEC §9), through the server object with an
// injected resolver: a name that resolves into a denied range is refused
// before any connection, every address of a name is checked (route order
// decides which route an address falls under), and "allow internal
// addresses, deny the rest" lets the address routes decide before a
// deny-by-host route. Real sockets on 127.0.0.0/8 only: the scripted answers
// list a loopback address first, so a proxy that connected without checking
// would reach a local listener (and be caught) rather than the network.

#include <catch2/catch.hpp>
#include <string>
#include <variant>

#include "server_harness.hpp"

using namespace cutoff;
using namespace cutoff::testing;

namespace {

Config parse(const std::string& routes_toml) {
  ConfigResult result = parse_config(
      "linger_timeout = \"200ms\"\n"
      "[listen]\nconnect_ports = [\"*\"]\n"
      "[defaults]\ndns_timeout = \"500ms\"\nconnect_timeout = \"500ms\"\n"
      "response_header_timeout = \"1s\"\n" +
          routes_toml,
      "test_address_routes");
  if (auto* errors = std::get_if<std::vector<ConfigError>>(&result)) {
    for (const auto& e : *errors) UNSCOPED_INFO(e.to_string());
    FAIL("the test's config does not parse");
  }
  Config config = std::get<Config>(std::move(result));
  REQUIRE(config.routes_match_addresses);
  return config;
}

// A proxy whose resolver answers only the scripted names (others: no such name).
struct Proxy : ProxyUnderTest {
  Proxy(const std::string& routes_toml, Script script)
      : ProxyUnderTest(parse(routes_toml), 1, UV_EAI_NONAME, AddressList{}, std::move(script)) {}
  int lookups() { return resolver().started; }
};

Reply get(uint16_t proxy_port, const std::string& authority) {
  return fetch(proxy_port, "GET http://" + authority + "/ HTTP/1.1\r\nHost: " + authority +
                               "\r\nConnection: close\r\n\r\n");
}

Reply connect_to(uint16_t proxy_port, const std::string& authority) {
  return fetch(proxy_port, "CONNECT " + authority + " HTTP/1.1\r\nHost: " + authority + "\r\n\r\n");
}

// The Proxy-Status line of a reply, as a reply of its own.
Reply proxy_status(const Reply& reply) {
  size_t at = reply.text.find("Proxy-Status:");
  if (at == std::string::npos) return {};
  return {reply.text.substr(at, reply.text.find("\r\n", at) - at)};
}

}  // namespace

TEST_CASE("a name that resolves into a denied range is refused before any connection",
          "[server][address_routes]") {
  Origin origin;
  const uint16_t port = origin.port();
  const std::string authority = "internal.test:" + std::to_string(port);
  Proxy proxy(
      "[[route]]\nname = \"no-ten\"\nmatch = { address = [\"10.0.0.0/8\"] }\n"
      "action = \"deny\"\n",
      {{"internal.test", addresses({{"127.0.0.1", port}, {"10.0.0.7", port}})}});

  Reply reply = get(proxy.port(), authority);
  INFO(reply.text);
  CHECK(reply.starts_with("HTTP/1.1 403 "));
  CHECK(reply.contains("Proxy-Status: cutoff; error=http_request_denied; details=\""));
  CHECK(proxy_status(reply).contains("10.0.0.7:" + std::to_string(port)));
  CHECK(proxy_status(reply).contains("route no-ten"));
  CHECK(reply.contains("Content-Type: text/plain"));
  CHECK(reply.contains("Connection: close"));

  Reply tunnel = connect_to(proxy.port(), authority);
  INFO(tunnel.text);
  CHECK(tunnel.starts_with("HTTP/1.1 403 "));
  CHECK(proxy_status(tunnel).contains("10.0.0.7:" + std::to_string(port)));

  CHECK(proxy.lookups() == 2);
  CHECK(origin.accepted_by_now() == 0);
}

TEST_CASE("a name whose addresses are all outside the denied range is forwarded",
          "[server][address_routes]") {
  Origin origin;
  const uint16_t port = origin.port();
  Proxy proxy(
      "[[route]]\nname = \"no-ten\"\nmatch = { address = [\"10.0.0.0/8\"] }\n"
      "action = \"deny\"\n",
      {{"fine.test", addresses({{"127.0.0.1", port}})}});
  Reply reply = get(proxy.port(), "fine.test:" + std::to_string(port));
  INFO(reply.text);
  CHECK(reply.starts_with("HTTP/1.1 200 OK\r\n"));
  CHECK(origin.accepted() == 1);
}

TEST_CASE("every address counts: the first allowed by route order, a later one denied",
          "[server][address_routes]") {
  // 127.0.0.1 is inside the denied /8 too, but route order lets it through;
  // 127.0.0.2 only falls under the deny route, and that refuses the request.
  Origin origin;
  const uint16_t port = origin.port();
  Proxy proxy(
      "[[route]]\nname = \"one-host\"\nmatch = { address = [\"127.0.0.1/32\"] }\n"
      "[[route]]\nname = \"no-loopback\"\nmatch = { address = [\"127.0.0.0/8\"] }\n"
      "action = \"deny\"\n",
      {{"mixed.test", addresses({{"127.0.0.1", port}, {"127.0.0.2", port}})},
       {"single.test", addresses({{"127.0.0.1", port}})}});

  Reply denied = get(proxy.port(), "mixed.test:" + std::to_string(port));
  INFO(denied.text);
  CHECK(denied.starts_with("HTTP/1.1 403 "));
  CHECK(denied.contains("error=http_request_denied"));
  CHECK(proxy_status(denied).contains("127.0.0.2:" + std::to_string(port)));
  CHECK(proxy_status(denied).contains("route no-loopback"));
  CHECK(origin.accepted_by_now() == 0);
  Reply allowed = get(proxy.port(), "single.test:" + std::to_string(port));
  INFO(allowed.text);
  CHECK(allowed.starts_with("HTTP/1.1 200 OK\r\n"));
  CHECK(origin.accepted() == 1);

  // A literal in the denied part of the range: refused without a lookup.
  const int lookups = proxy.lookups();
  Reply literal = get(proxy.port(), "127.0.0.2:" + std::to_string(port));
  INFO(literal.text);
  CHECK(literal.starts_with("HTTP/1.1 403 "));
  CHECK(proxy_status(literal).contains("127.0.0.2:" + std::to_string(port)));
  CHECK(proxy.lookups() == lookups);
  CHECK(origin.accepted_by_now() == 1);
}

TEST_CASE("allow internal addresses, deny the rest: the address routes decide",
          "[server][address_routes]") {
  // "Internal" is 127.0.0.1 here and "the rest" 127.0.0.2, so that nothing
  // leaves loopback even if the deny failed.
  Origin internal("127.0.0.1");
  Origin external("127.0.0.2");
  const std::string internal_port = std::to_string(internal.port());
  const std::string external_port = std::to_string(external.port());
  Proxy proxy(
      "[[route]]\nname = \"internal\"\n"
      "match = { address = [\"10.0.0.0/8\", \"127.0.0.1/32\"] }\n"
      "[[route]]\nname = \"deny-rest\"\nmatch = { host = \"*\" }\naction = \"deny\"\n",
      {{"inside.test", addresses({{"127.0.0.1", internal.port()}})},
       {"outside.test", addresses({{"127.0.0.2", external.port()}})}});

  SECTION("a name resolving to an internal address is forwarded") {
    Reply reply = get(proxy.port(), "inside.test:" + internal_port);
    INFO(reply.text);
    CHECK(reply.starts_with("HTTP/1.1 200 OK\r\n"));
    CHECK(internal.accepted() == 1);
    Reply literal = get(proxy.port(), "127.0.0.1:" + internal_port);
    INFO(literal.text);
    CHECK(literal.starts_with("HTTP/1.1 200 OK\r\n"));
    CHECK(internal.accepted() == 2);
  }
  SECTION("a name resolving elsewhere is denied without a connection") {
    Reply reply = get(proxy.port(), "outside.test:" + external_port);
    INFO(reply.text);
    CHECK(reply.starts_with("HTTP/1.1 403 "));
    CHECK(reply.contains("error=http_request_denied"));
    CHECK(proxy_status(reply).contains("127.0.0.2:" + external_port));
    CHECK(proxy_status(reply).contains("route deny-rest"));
    Reply tunnel = connect_to(proxy.port(), "outside.test:" + external_port);
    INFO(tunnel.text);
    CHECK(tunnel.starts_with("HTTP/1.1 403 "));
    Reply literal = get(proxy.port(), "127.0.0.2:" + external_port);
    INFO(literal.text);
    CHECK(literal.starts_with("HTTP/1.1 403 "));
    CHECK(external.accepted_by_now() == 0);
  }
}
