// A reload (SIGHUP) gives every new exchange the new config; the old one must
// then be freed once the exchanges that run under it are over. A connection
// that waits between requests, or that never sent one, holds none: with a
// big route table and frequent reloads, idle keep-alive connections would
// otherwise keep one copy of it each.

#include <catch2/catch.hpp>
#include <string>
#include <variant>

#include "server_harness.hpp"

using namespace cutoff;
using namespace cutoff::testing;

namespace {

Config keepalive_config() {
  ConfigResult result = parse_config(
      "[listen]\nclient_keepalive_timeout = \"10s\"\n"
      "[defaults]\nconnect_timeout = \"1s\"\nresponse_header_timeout = \"2s\"\n",
      "test_config_lifetime");
  REQUIRE(std::holds_alternative<Config>(result));
  return std::get<Config>(std::move(result));
}

int connect_to_proxy(uint16_t port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  timeval tv{static_cast<time_t>(5 * time_scale()), 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  sockaddr_in a = ipv4("127.0.0.1", port);
  REQUIRE(connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
  return fd;
}

// One keep-alive GET on `fd`; the whole answer (the origin sends "ok").
std::string get_keep_alive(int fd, uint16_t origin_port) {
  std::string authority = "127.0.0.1:" + std::to_string(origin_port);
  std::string request = "GET http://" + authority + "/ HTTP/1.1\r\nHost: " + authority + "\r\n\r\n";
  send(fd, request.data(), request.size(), MSG_NOSIGNAL);
  std::string reply;
  char buf[4096];
  while (reply.find("\r\n\r\nok") == std::string::npos) {
    ssize_t n = recv(fd, buf, sizeof buf, 0);
    if (n <= 0) break;
    reply.append(buf, static_cast<size_t>(n));
  }
  return reply;
}

}  // namespace

TEST_CASE("idle keep-alive connections pin no config across reloads", "[server][reload]") {
  Origin origin;
  ProxyUnderTest proxy(keepalive_config(), 0, UV_EAI_NONAME, AddressList{});
  std::weak_ptr<const Config> first = proxy.config();
  // Accepted in this order: the silent one first, then the one that is
  // served (whose answer proves both were accepted under the first config).
  int silent = connect_to_proxy(proxy.port());
  int served = connect_to_proxy(proxy.port());
  REQUIRE(get_keep_alive(served, origin.port()).rfind("HTTP/1.1 200", 0) == 0);

  for (int i = 0; i < 3; ++i) proxy.reload(keepalive_config());
  CHECK(first.expired());

  // Both connections are still open and serve under the new config.
  CHECK(get_keep_alive(served, origin.port()).rfind("HTTP/1.1 200", 0) == 0);
  CHECK(get_keep_alive(silent, origin.port()).rfind("HTTP/1.1 200", 0) == 0);
  close(silent);
  close(served);
}
