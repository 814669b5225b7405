#include <catch2/catch.hpp>
#include <optional>
#include <string>

#include "cutoff/base64.hpp"

using namespace cutoff;

TEST_CASE("base64: decode reverses encode for every length of the last group", "[base64]") {
  // Every byte value appears somewhere, so a sign slip on a high byte shows.
  std::string all;
  for (int c = 0; c < 256; ++c) all.push_back(static_cast<char>(c));
  for (size_t length = 0; length <= 10; ++length) {
    for (size_t start = 0; start + length <= all.size(); start += 37) {
      const std::string plain = all.substr(start, length);
      const std::string encoded = base64_encode(plain);
      INFO("length " << length << ", start " << start << ": " << encoded);
      CHECK(encoded.size() == (length + 2) / 3 * 4);
      const std::optional<std::string> decoded = base64_decode(encoded);
      REQUIRE(decoded);
      CHECK(*decoded == plain);
    }
  }
}

TEST_CASE("base64: known values decode", "[base64]") {
  CHECK(base64_decode("") == std::string());
  CHECK(base64_decode("Zg==") == std::string("f"));
  CHECK(base64_decode("Zm8=") == std::string("fo"));
  CHECK(base64_decode("Zm9v") == std::string("foo"));
  CHECK(base64_decode("dXNlcjpwdw==") == std::string("user:pw"));
  CHECK(base64_decode("+/+/") == std::string("\xfb\xff\xbf"));
  CHECK(base64_decode("AAAA") == std::string(3, '\0'));
}

TEST_CASE("base64: a length that is not whole groups of four is refused", "[base64]") {
  for (const char* bad : {"Z", "Zg", "Zg=", "Zm9", "Zm9vY", "Zm9vYg", "Zm9vYmE", "Zg===="}) {
    INFO(bad);
    CHECK_FALSE(base64_decode(bad));
  }
}

TEST_CASE("base64: a byte outside the alphabet is refused", "[base64]") {
  for (const char* bad :
       {"Zm9*", "Zm 9", "Zm9v\nZg==", "-_-_", "Zm9v Zg==", "Zm9\x80", "Zm9\xff", "Zg=\x01"}) {
    INFO(bad);
    CHECK_FALSE(base64_decode(bad));
  }
  CHECK_FALSE(base64_decode(std::string("Zm9\0", 4)));
}

TEST_CASE("base64: padding only at the very end, at most two", "[base64]") {
  for (const char* bad : {"Zg==Zm9v", "Zm8=Zm9v", "Z=9v", "=Zm9", "Zm=v",
                          "Z===", "====", "Zm9v====", "Zm9vZ===", "Z=g="}) {
    INFO(bad);
    CHECK_FALSE(base64_decode(bad));
  }
}
