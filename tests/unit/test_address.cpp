#include <catch2/catch.hpp>
#include <string>

#include "cutoff/address.hpp"

using namespace cutoff;

namespace {

// The canonical form, or "refused".
std::string canonical(std::string_view host, bool bracketed = false) {
  std::string out;
  return canonical_host(host, bracketed, &out) ? out : "refused";
}

}  // namespace

// SPEC §9: every spelling of one address routes as that address.
TEST_CASE("canonical_host: IPv4 in any inet_aton spelling is a dotted quad", "[address]") {
  for (const char* spelling : {"127.0.0.1", "2130706433", "0x7f000001", "0X7F000001", "127.1",
                               "0177.0.0.1", "0x7f.0.0.1", "127.0.1", "127.0.0.1.", "0177.1"}) {
    INFO(spelling);
    CHECK(canonical(spelling) == "127.0.0.1");
  }
  CHECK(canonical("10.1") == "10.0.0.1");
  CHECK(canonical("1.2.3.04") == "1.2.3.4");  // a leading zero makes it octal
  CHECK(canonical("1.2.3.010") == "1.2.3.8");
  CHECK(canonical("192.168.001.1") == "192.168.1.1");
  CHECK(canonical("0") == "0.0.0.0");
  CHECK(canonical("999") == "0.0.3.231");
  CHECK(canonical("255.255.255.255") == "255.255.255.255");
}

TEST_CASE("canonical_host: IPv6 as inet_ntop writes it, IPv4-mapped as a dotted quad",
          "[address]") {
  CHECK(canonical("::1", true) == "::1");
  CHECK(canonical("0:0:0:0:0:0:0:1", true) == "::1");
  CHECK(canonical("2001:DB8:0::A", true) == "2001:db8::a");
  CHECK(canonical("::ffff:127.0.0.1", true) == "127.0.0.1");
  CHECK(canonical("::FFFF:7f00:1", true) == "127.0.0.1");
  CHECK(canonical("fe80::1%25eth0", true) == "refused");  // zones never reach a route
  CHECK(canonical("127.0.0.1", true) == "refused");       // brackets hold IPv6 only
  CHECK(canonical("", true) == "refused");
}

TEST_CASE("canonical_host: names in lower case, one trailing dot removed", "[address]") {
  CHECK(canonical("Example.COM") == "example.com");
  CHECK(canonical("example.com.") == "example.com");
  CHECK(canonical("my_service") == "my_service");
  CHECK(canonical("a-b.c-d") == "a-b.c-d");
  CHECK(canonical("localhost") == "localhost");
  CHECK(canonical("1password.com") == "1password.com");
  CHECK(canonical("deadbeef") == "deadbeef");  // no 0x: a name, not a number
  CHECK(canonical(std::string(63, 'a') + ".com") == std::string(63, 'a') + ".com");
}

TEST_CASE("canonical_host: what is neither a name nor an address", "[address]") {
  for (const char* host :
       {"", ".", "example.com..", "a..b", ".a", "exa mple.com", "ex%61mple.com", "1.2.3.256",
        "1.2.3.4.5", "4294967296", "a.b.123", "host:80", "ex@mple", "xn--\xc3\xa9", "a/b"}) {
    INFO(host);
    CHECK(canonical(host) == "refused");
  }
  CHECK(canonical(std::string(64, 'a') + ".com") == "refused");
  CHECK(canonical(std::string(250, 'a') + ".com") == "refused");
}
