#include <arpa/inet.h>
#include <netinet/in.h>

#include <catch2/catch.hpp>
#include <cstring>
#include <string>

#include "cutoff/socket_address.hpp"

using namespace cutoff;

namespace {

sockaddr_storage ip4(const char* ip, uint16_t port) {
  sockaddr_storage s{};
  auto* a = reinterpret_cast<sockaddr_in*>(&s);
  a->sin_family = AF_INET;
  a->sin_port = htons(port);
  REQUIRE(inet_pton(AF_INET, ip, &a->sin_addr) == 1);
  return s;
}

sockaddr_storage ip6(const char* ip, uint16_t port) {
  sockaddr_storage s{};
  auto* a = reinterpret_cast<sockaddr_in6*>(&s);
  a->sin6_family = AF_INET6;
  a->sin6_port = htons(port);
  REQUIRE(inet_pton(AF_INET6, ip, &a->sin6_addr) == 1);
  return s;
}

std::string shown(const sockaddr_storage& address, size_t size = kAddressTextSize) {
  char out[kAddressTextSize];
  std::memset(out, 'X', sizeof out);
  format_address(reinterpret_cast<const sockaddr*>(&address), out, size);
  return out;
}

}  // namespace

TEST_CASE("format_address writes ip:port and [v6]:port", "[socket_address]") {
  CHECK(shown(ip4("127.0.0.1", 3128)) == "127.0.0.1:3128");
  CHECK(shown(ip4("0.0.0.0", 0)) == "0.0.0.0:0");
  CHECK(shown(ip4("255.255.255.255", 65535)) == "255.255.255.255:65535");
  CHECK(shown(ip4("10.20.30.40", 8)) == "10.20.30.40:8");
  CHECK(shown(ip6("::1", 443)) == "[::1]:443");
  CHECK(shown(ip6("2001:db8::1:0:0:1", 65535)) == "[2001:db8::1:0:0:1]:65535");
  CHECK(format_address(ip4("192.168.1.2", 80)) == "192.168.1.2:80");
}

TEST_CASE("format_address cuts to the room it is given, NUL-terminated", "[socket_address]") {
  CHECK(shown(ip4("255.255.255.255", 65535), 22) == "255.255.255.255:65535");
  CHECK(shown(ip4("255.255.255.255", 65535), 10) == "255.255.2");
  CHECK(shown(ip6("::1", 443), 5) == "[::1");
}
