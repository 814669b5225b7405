#include <catch2/catch.hpp>
#include <string>

#include "cutoff/min_rate.hpp"

using cutoff::bytes_in_words;
using cutoff::Duration;
using cutoff::MinRate;
using cutoff::parse_min_rate;

namespace {

MinRate accepted(const std::string& text) {
  std::string error;
  const auto rate = parse_min_rate(text, &error);
  INFO(text << ": " << error);
  REQUIRE(rate.has_value());
  return *rate;
}

std::string refusal(const std::string& text) {
  std::string error;
  const auto rate = parse_min_rate(text, &error);
  INFO(text);
  REQUIRE_FALSE(rate.has_value());
  REQUIRE_FALSE(error.empty());
  return error;
}

}  // namespace

TEST_CASE("parse_min_rate reads an amount with a unit and a window", "[min_rate]") {
  CHECK(accepted("1KiB/30s") == MinRate::of(1024, Duration::seconds(30)));
  CHECK(accepted("100B/2s") == MinRate::of(100, Duration::seconds(2)));
  CHECK(accepted("64KiB/5s") == MinRate::of(65536, Duration::seconds(5)));
  CHECK(accepted("3MiB/1m") == MinRate::of(3 * 1024 * 1024, Duration::seconds(60)));
  CHECK(accepted("2GiB/1h") == MinRate::of(uint64_t{2} << 30, Duration::seconds(3600)));
  CHECK(accepted("1B/100ms") == MinRate::of(1, Duration::millis(100)));
  CHECK(accepted("1024GiB/1s").bytes() == uint64_t{1} << 40);
  CHECK(accepted("off").is_off());
  CHECK(MinRate().is_off());
}

TEST_CASE("parse_min_rate refuses what it would have to guess", "[min_rate]") {
  CHECK_THAT(refusal(""), Catch::Contains("has no window"));
  CHECK_THAT(refusal("1KiB"), Catch::Contains("has no window"));
  CHECK_THAT(refusal("/30s"), Catch::Contains("does not start with an amount"));
  CHECK_THAT(refusal("KiB/30s"), Catch::Contains("does not start with an amount"));
  CHECK_THAT(refusal("100/2s"), Catch::Contains("the amount has no unit; add B, KiB, MiB or GiB"));
  CHECK_THAT(refusal("1KB/30s"), Catch::Contains("unknown unit \"KB\""));
  CHECK_THAT(refusal("1kib/30s"), Catch::Contains("unknown unit \"kib\""));
  CHECK_THAT(refusal("1.5KiB/30s"), Catch::Contains("fractions are not allowed"));
  CHECK_THAT(refusal("1 KiB/30s"), Catch::Contains("unknown unit \" KiB\""));
  CHECK_THAT(refusal("0B/30s"), Catch::Contains("an amount of zero never fires; use \"off\""));
  CHECK_THAT(refusal("0KiB/30s"), Catch::Contains("an amount of zero"));
  CHECK_THAT(refusal("1KiB/0s"), Catch::Contains("a duration must be greater than zero"));
  CHECK_THAT(refusal("1KiB/30"), Catch::Contains("the window: \"30\" has no unit"));
  CHECK_THAT(refusal("1KiB/off"), Catch::Contains("\"off\" is not allowed here"));
  CHECK_THAT(refusal("1KiB/99ms"), Catch::Contains("the window must be at least 100ms"));
  CHECK_THAT(refusal("1025GiB/1s"), Catch::Contains("too large"));
  CHECK_THAT(refusal("99999999999999999999999B/1s"), Catch::Contains("too large"));
  CHECK_THAT(refusal("Off"), Catch::Contains("has no window"));
}

TEST_CASE("MinRate prints as the config spells it", "[min_rate]") {
  CHECK(MinRate::of(1024, Duration::seconds(30)).to_string() == "1KiB/30s");
  CHECK(MinRate::of(100, Duration::seconds(2)).to_string() == "100B/2s");
  CHECK(MinRate::of(1536, Duration::millis(500)).to_string() == "1536B/500ms");
  CHECK(MinRate::of(uint64_t{1} << 30, Duration::seconds(60)).to_string() == "1GiB/1m");
  CHECK(MinRate::off().to_string() == "off");
  for (const char* text : {"1KiB/30s", "100B/2s", "64KiB/5s", "7MiB/1h", "1B/100ms"}) {
    CHECK(accepted(text).to_string() == text);
  }
}

TEST_CASE("bytes_in_words uses the largest exact unit", "[min_rate]") {
  CHECK(bytes_in_words(100) == "100 B");
  CHECK(bytes_in_words(1024) == "1 KiB");
  CHECK(bytes_in_words(1536) == "1536 B");
  CHECK(bytes_in_words(64 * 1024) == "64 KiB");
  CHECK(bytes_in_words(5 << 20) == "5 MiB");
  CHECK(bytes_in_words(uint64_t{3} << 30) == "3 GiB");
  CHECK(bytes_in_words(0) == "0 B");
}
