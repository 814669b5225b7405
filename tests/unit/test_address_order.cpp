// RFC 8305 §4: the order in which a name's addresses are tried.

#include <arpa/inet.h>
#include <netinet/in.h>

#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "cutoff/address_order.hpp"

using namespace cutoff;

namespace {

// A list of literals ("::1", "127.0.0.1") in the order given.
AddressList list(std::initializer_list<const char*> literals) {
  AddressList out;
  for (const char* literal : literals) {
    AddressList one;
    REQUIRE(parse_ip_literal(literal, 80, &one));
    out.add(one.at(0));
  }
  return out;
}

// The literals of a list, in its order.
std::vector<std::string> names(const AddressList& addresses) {
  std::vector<std::string> out;
  for (int i = 0; i < addresses.count; ++i) {
    char text[INET6_ADDRSTRLEN] = {};
    const sockaddr* a = addresses.at(i);
    if (a->sa_family == AF_INET6) {
      inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6*>(a)->sin6_addr, text, sizeof text);
    } else {
      inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(a)->sin_addr, text, sizeof text);
    }
    out.emplace_back(text);
  }
  return out;
}

using Names = std::vector<std::string>;

}  // namespace

TEST_CASE("interleave_families: the first address's family leads, then they alternate",
          "[address_order]") {
  CHECK(
      names(interleave_families(list({"2001:db8::1", "2001:db8::2", "192.0.2.1", "192.0.2.2"}))) ==
      Names{"2001:db8::1", "192.0.2.1", "2001:db8::2", "192.0.2.2"});
  // IPv4 first when the resolver preferred it (a host without IPv6 routes).
  CHECK(names(interleave_families(list({"192.0.2.1", "192.0.2.2", "2001:db8::1"}))) ==
        Names{"192.0.2.1", "2001:db8::1", "192.0.2.2"});
}

TEST_CASE("interleave_families: each family keeps the resolver's order", "[address_order]") {
  CHECK(names(interleave_families(list({"::1", "192.0.2.9", "192.0.2.1", "2001:db8::5"}))) ==
        Names{"::1", "192.0.2.9", "2001:db8::5", "192.0.2.1"});
}

TEST_CASE("interleave_families: when one family runs out the other follows in order",
          "[address_order]") {
  CHECK(names(interleave_families(list({"2001:db8::1", "192.0.2.1", "192.0.2.2", "192.0.2.3"}))) ==
        Names{"2001:db8::1", "192.0.2.1", "192.0.2.2", "192.0.2.3"});
  CHECK(names(interleave_families(
            list({"2001:db8::1", "2001:db8::2", "2001:db8::3", "192.0.2.1"}))) ==
        Names{"2001:db8::1", "192.0.2.1", "2001:db8::2", "2001:db8::3"});
}

TEST_CASE("interleave_families: one family, one address, none: unchanged", "[address_order]") {
  CHECK(names(interleave_families(list({"192.0.2.3", "192.0.2.1", "192.0.2.2"}))) ==
        Names{"192.0.2.3", "192.0.2.1", "192.0.2.2"});
  CHECK(names(interleave_families(list({"::1"}))) == Names{"::1"});
  CHECK(interleave_families(AddressList{}).count == 0);
}

TEST_CASE("interleave_families: an interleaved list comes out unchanged", "[address_order]") {
  AddressList once = interleave_families(list({"::1", "::2", "::3", "127.0.0.1"}));
  CHECK(names(interleave_families(once)) == names(once));
}

TEST_CASE("interleave_families: a long answer keeps both families within kMax", "[address_order]") {
  // Six IPv6 addresses before the only IPv4 one, as a resolver may list
  // them: cutting the list at kMax first would lose IPv4 altogether.
  std::vector<AddressList> singles;
  for (const char* literal : {"2001:db8::1", "2001:db8::2", "2001:db8::3", "2001:db8::4",
                              "2001:db8::5", "2001:db8::6", "192.0.2.1"}) {
    singles.push_back(list({literal}));
  }
  std::vector<const sockaddr*> all;
  for (const AddressList& one : singles) all.push_back(one.at(0));
  AddressList out;
  interleave_families(std::span(all.data(), all.size()), &out);
  REQUIRE(AddressList::kMax == 4);
  CHECK(names(out) == Names{"2001:db8::1", "192.0.2.1", "2001:db8::2", "2001:db8::3"});
}

TEST_CASE("interleave_families: ports and scope ids come through whole", "[address_order]") {
  AddressList in;
  REQUIRE(parse_ip_literal("fe80::1", 8443, &in));
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&in.entries[0]);
  v6->sin6_scope_id = 3;
  AddressList v4;
  REQUIRE(parse_ip_literal("192.0.2.1", 8080, &v4));
  in.add(v4.at(0));
  AddressList out = interleave_families(in);
  REQUIRE(out.count == 2);
  const auto* first = reinterpret_cast<const sockaddr_in6*>(out.at(0));
  CHECK(ntohs(first->sin6_port) == 8443);
  CHECK(first->sin6_scope_id == 3);
  CHECK(ntohs(reinterpret_cast<const sockaddr_in*>(out.at(1))->sin_port) == 8080);
}
