// The server object with an injected resolver: DNS timeouts and failures,
// late answers after the exchange is gone, and several addresses tried in
// turn, through real sockets on 127.0.0.1.

#include <catch2/catch.hpp>
#include <string>

#include "server_harness.hpp"

using namespace cutoff;
using namespace cutoff::testing;

namespace {

AddressList loopback(std::initializer_list<uint16_t> ports) {
  AddressList list;
  for (uint16_t port : ports) {
    sockaddr_in a = ipv4("127.0.0.1", port);
    list.add(reinterpret_cast<sockaddr*>(&a));
  }
  return list;
}

Config fast_config() {
  Config config = default_config();
  config.linger_timeout = Duration::millis(200);
  config.defaults.dns_timeout = Duration::millis(100);
  config.defaults.connect_timeout = Duration::millis(300);
  config.defaults.response_header_timeout = Duration::millis(500);
  return config;
}

}  // namespace

TEST_CASE("a resolver slower than dns_timeout gets 504 dns_timeout at the deadline",
          "[server][dns]") {
  const double scale = time_scale();
  ProxyUnderTest proxy(fast_config(), /*delay_ms=*/600, 0, loopback({1}));
  Reply reply = fetch(proxy.port(), "GET http://slow.example.test/ HTTP/1.1\r\n\r\n");
  CHECK(reply.text.rfind("HTTP/1.1 504 Gateway Timeout\r\n", 0) == 0);
  CHECK(reply.text.find("Proxy-Status: cutoff; error=dns_timeout; details=\"resolving "
                        "slow.example.test timed out after 100ms (dns_timeout, route default)\"") !=
        std::string::npos);
  CHECK(reply.seconds >= 0.095);
  CHECK(reply.seconds < 0.1 + 0.05 + 0.1 * scale);
  // The late answer still arrives, after the exchange is gone: it must be
  // dropped without touching freed memory (ASan watches this test).
  proxy.linger(static_cast<int>(700 * scale));
  CHECK(proxy.resolver().started == 1);
  CHECK(proxy.resolver().cancelled == 1);
  CHECK(proxy.resolver().dropped == 1);
  CHECK(proxy.resolver().delivered == 0);
}

TEST_CASE("a name that does not resolve gets 502 dns_error, distinct from dns_timeout",
          "[server][dns]") {
  ProxyUnderTest proxy(fast_config(), /*delay_ms=*/5, UV_EAI_NONAME, AddressList{});
  Reply reply = fetch(proxy.port(), "GET http://missing.example.test/ HTTP/1.1\r\n\r\n");
  CHECK(reply.text.rfind("HTTP/1.1 502 Bad Gateway\r\n", 0) == 0);
  CHECK(reply.text.find("error=dns_error; details=\"missing.example.test could not be resolved") !=
        std::string::npos);
  CHECK(reply.seconds < 0.1 * time_scale());
  CHECK(proxy.resolver().delivered == 1);
}

TEST_CASE("several addresses are tried in turn within one connect_timeout", "[server][dns]") {
  Origin origin;
  ProxyUnderTest proxy(fast_config(), /*delay_ms=*/1, 0,
                       loopback({closed_port(), closed_port(), origin.port()}));
  Reply reply = fetch(proxy.port(), "GET http://multi.example.test/ HTTP/1.1\r\n\r\n");
  INFO(reply.text);
  CHECK(reply.text.rfind("HTTP/1.1 200 OK\r\n", 0) == 0);
  CHECK(reply.text.size() >= 2);
  CHECK(reply.text.substr(reply.text.size() - 2) == "ok");
}

TEST_CASE("when every address refuses, the client gets 502 connection_refused", "[server][dns]") {
  ProxyUnderTest proxy(fast_config(), /*delay_ms=*/1, 0, loopback({closed_port(), closed_port()}));
  Reply reply = fetch(proxy.port(), "GET http://refused.example.test/ HTTP/1.1\r\n\r\n");
  CHECK(reply.text.rfind("HTTP/1.1 502 Bad Gateway\r\n", 0) == 0);
  CHECK(reply.text.find("error=connection_refused") != std::string::npos);
}
