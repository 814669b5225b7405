#include <catch2/catch.hpp>
#include <string>

#include "cutoff/duration.hpp"

using cutoff::Duration;
using cutoff::parse_duration;

namespace {

// Parses text that must be valid and returns its milliseconds.
uint64_t ms_of(const std::string& text) {
  std::string error;
  const auto d = parse_duration(text, false, &error);
  INFO(text << ": " << error);
  REQUIRE(d.has_value());
  REQUIRE_FALSE(d->is_off());
  return d->ms();
}

// Parses text that must be refused and returns the reason.
std::string refusal(const std::string& text, bool allow_off = false) {
  std::string error;
  const auto d = parse_duration(text, allow_off, &error);
  INFO(text);
  REQUIRE_FALSE(d.has_value());
  REQUIRE_FALSE(error.empty());
  return error;
}

}  // namespace

TEST_CASE("parse_duration accepts every unit", "[duration]") {
  CHECK(ms_of("250ms") == 250);
  CHECK(ms_of("1ms") == 1);
  CHECK(ms_of("5s") == 5000);
  CHECK(ms_of("2m") == 120000);
  CHECK(ms_of("1h") == 3600000);
  CHECK(ms_of("1500ms") == 1500);
  CHECK(ms_of("05s") == 5000);
}

TEST_CASE("parse_duration handles off", "[duration]") {
  std::string error;
  const auto off = parse_duration("off", true, &error);
  REQUIRE(off.has_value());
  CHECK(off->is_off());
  CHECK(*off == Duration::off());

  const std::string reason = refusal("off", false);
  CHECK(reason.find("\"off\" is not allowed") != std::string::npos);
}

TEST_CASE("parse_duration refuses zero", "[duration]") {
  CHECK(refusal("0s").find("greater than zero") != std::string::npos);
  CHECK(refusal("0ms").find("greater than zero") != std::string::npos);
  CHECK(refusal("0h", true).find("use \"off\"") != std::string::npos);
}

TEST_CASE("parse_duration refuses garbage", "[duration]") {
  CHECK(refusal("").find("empty") != std::string::npos);
  CHECK(refusal("5").find("has no unit") != std::string::npos);
  CHECK(refusal("5x").find("unknown unit \"x\"") != std::string::npos);
  CHECK(refusal("5S").find("unknown unit") != std::string::npos);
  CHECK(refusal("5sec").find("unknown unit") != std::string::npos);
  CHECK(refusal("1.5s").find("fractions") != std::string::npos);
  CHECK(refusal("-5s").find("is not a duration") != std::string::npos);
  CHECK(refusal("+5s").find("is not a duration") != std::string::npos);
  CHECK(refusal(" 5s").find("is not a duration") != std::string::npos);
  CHECK(refusal("5 s").find("unknown unit") != std::string::npos);
  CHECK(refusal("5s ").find("unknown unit") != std::string::npos);
  CHECK(refusal("s").find("is not a duration") != std::string::npos);
  CHECK(refusal("Off").find("is not a duration") != std::string::npos);
  CHECK(refusal("5s5ms").find("unknown unit") != std::string::npos);
}

TEST_CASE("parse_duration refuses overflow beyond 30 days", "[duration]") {
  CHECK(ms_of("720h") == 720ull * 3600 * 1000);
  CHECK(ms_of("43200m") == 720ull * 3600 * 1000);
  CHECK(refusal("721h").find("too long") != std::string::npos);
  CHECK(refusal("2592000001ms").find("too long") != std::string::npos);
  CHECK(refusal("99999999999999999999999999h").find("too long") != std::string::npos);
  CHECK(refusal("18446744073709551617ms").find("too long") != std::string::npos);
}

TEST_CASE("parse_duration tolerates a null error pointer", "[duration]") {
  CHECK_FALSE(parse_duration("nope", false, nullptr).has_value());
  CHECK(parse_duration("1s", false, nullptr) == Duration::seconds(1));
}

TEST_CASE("Duration::to_string picks the shortest exact form", "[duration]") {
  CHECK(Duration::off().to_string() == "off");
  CHECK(Duration::millis(1500).to_string() == "1500ms");
  CHECK(Duration::millis(250).to_string() == "250ms");
  CHECK(Duration::seconds(5).to_string() == "5s");
  CHECK(Duration::seconds(90).to_string() == "90s");
  CHECK(Duration::seconds(120).to_string() == "2m");
  CHECK(Duration::seconds(3600).to_string() == "1h");
  CHECK(Duration::seconds(5400).to_string() == "90m");
  CHECK(Duration::millis(3600001).to_string() == "3600001ms");
}

TEST_CASE("Duration::to_string round-trips through parse_duration", "[duration]") {
  for (const char* text :
       {"1ms", "999ms", "1500ms", "1s", "59s", "90s", "2m", "61m", "1h", "25h", "720h"}) {
    std::string error;
    const auto d = parse_duration(text, false, &error);
    REQUIRE(d.has_value());
    CHECK(d->to_string() == text);
    CHECK(parse_duration(d->to_string(), false, &error) == d);
  }
  CHECK(parse_duration("60s", false, nullptr)->to_string() == "1m");
  CHECK(parse_duration("1000ms", false, nullptr)->to_string() == "1s");
  CHECK(parse_duration("120m", false, nullptr)->to_string() == "2h");
}

TEST_CASE("Duration off is distinct from every value", "[duration]") {
  CHECK(Duration().is_off());
  CHECK(Duration::off() != Duration::millis(0));
  CHECK(Duration::seconds(2) == Duration::millis(2000));
  CHECK_FALSE(Duration::seconds(2).is_off());
}
