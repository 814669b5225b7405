#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "cutoff/chunk_extension.hpp"

using namespace cutoff;

namespace {

// One extension, its name and value each given in pieces as llhttp may
// report them; true when the check takes it.
bool accepted(std::vector<std::string_view> name, std::vector<std::string_view> value,
              bool has_value = true) {
  ChunkExtensionCheck check;
  for (std::string_view part : name) {
    if (!check.name(part)) return false;
  }
  if (!check.end_name()) return false;
  if (!has_value) return true;
  for (std::string_view part : value) {
    if (!check.value(part)) return false;
  }
  return check.end_value();
}

}  // namespace

TEST_CASE("chunk extensions: what RFC 9112 allows", "[chunk_extension]") {
  CHECK(accepted({"name"}, {}, false));
  CHECK(accepted({"na", "me"}, {"token"}));
  CHECK(accepted({"a"}, {"b!#$%&'*+-.^_`|~9"}));
  CHECK(accepted({"a"}, {"\"quoted; with \\\"escapes\\\" and\ttab\""}));
  CHECK(accepted({"a"}, {"\"split ", "across", " reads\""}));
  CHECK(accepted({"a"}, {"\"obs-text \xe9\""}));
  CHECK(accepted({"a"}, {"\"\""}));
}

TEST_CASE("chunk extensions: what llhttp takes but the RFC does not", "[chunk_extension]") {
  CHECK_FALSE(accepted({}, {}, false));  // "5;" and "5;=v": no name
  CHECK_FALSE(accepted({""}, {"v"}));
  CHECK_FALSE(accepted({"a"}, {}));             // "5;a=": no value
  CHECK_FALSE(accepted({"a"}, {"x\"d\""}));     // a token running into a quote
  CHECK_FALSE(accepted({"a"}, {"\"b\x7f\""}));  // DEL inside quotes
  CHECK_FALSE(accepted({"a"}, {"\"b\x01\""}));  // a control inside quotes
  CHECK_FALSE(accepted({"a"}, {"\"b\"c"}));     // something after the closing quote
  CHECK_FALSE(accepted({"a"}, {"\"unterminated"}));
  CHECK_FALSE(accepted({"a"}, {"\"escaped end\\\""}));
  CHECK_FALSE(accepted({"a b"}, {"v"}));
  CHECK_FALSE(accepted({"a"}, {"v w"}));
}

TEST_CASE("chunk extensions: one check serves every extension of a chunk in turn",
          "[chunk_extension]") {
  ChunkExtensionCheck check;
  CHECK(check.name("a"));
  CHECK(check.end_name());
  CHECK(check.value("1"));
  CHECK(check.end_value());
  CHECK(check.name("flag"));
  CHECK(check.end_name());
  CHECK(check.name("c"));
  CHECK(check.end_name());
  CHECK(check.value("\"x\""));
  CHECK(check.end_value());
}
