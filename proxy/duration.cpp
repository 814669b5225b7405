#include "cutoff/duration.hpp"

#include <cstdint>
#include <string>

namespace cutoff {
namespace {

constexpr uint64_t kMsPerSecond = 1000;
constexpr uint64_t kMsPerMinute = 60 * kMsPerSecond;
constexpr uint64_t kMsPerHour = 60 * kMsPerMinute;

// The longest duration a config may name. Nothing cutoff waits for should
// take a month; a larger value is far more likely a typo than an intent, and
// the cap keeps every deadline computation (now + duration) far from overflow.
constexpr uint64_t kMaxMs = 30 * 24 * kMsPerHour;

std::string quoted(std::string_view text) {
  return "\"" + std::string(text) + "\"";
}

bool is_digit(char c) {
  return c >= '0' && c <= '9';
}

}  // namespace

std::string Duration::to_string() const {
  if (is_off()) return "off";
  const uint64_t v = ms();
  if (v == 0) return "0s";
  if (v % kMsPerHour == 0) return std::to_string(v / kMsPerHour) + "h";
  if (v % kMsPerMinute == 0) return std::to_string(v / kMsPerMinute) + "m";
  if (v % kMsPerSecond == 0) return std::to_string(v / kMsPerSecond) + "s";
  return std::to_string(v) + "ms";
}

std::optional<Duration> parse_duration(std::string_view text, bool allow_off, std::string* error) {
  auto fail = [&](std::string message) -> std::optional<Duration> {
    if (error) *error = std::move(message);
    return std::nullopt;
  };
  constexpr const char* kForm = "expected an integer and a unit (ms, s, m or h), like \"5s\"";

  if (text.empty()) return fail(std::string("empty duration; ") + kForm);
  if (text == "off") {
    if (allow_off) return Duration::off();
    return fail("\"off\" is not allowed here; a duration like \"5s\" is required");
  }

  size_t i = 0;
  uint64_t value = 0;
  bool overflow = false;
  while (i < text.size() && is_digit(text[i])) {
    value = value * 10 + static_cast<uint64_t>(text[i] - '0');
    // Stop growing once past any possible limit; the digits still count.
    if (value > kMaxMs) {
      overflow = true;
      value = kMaxMs + 1;
    }
    ++i;
  }
  if (i == 0) return fail(quoted(text) + " is not a duration; " + kForm);
  if (i < text.size() && (text[i] == '.' || text[i] == ',')) {
    return fail(quoted(text) + ": fractions are not allowed; use a smaller unit, like \"1500ms\"");
  }

  const std::string_view unit = text.substr(i);
  uint64_t scale = 0;
  if (unit == "ms") {
    scale = 1;
  } else if (unit == "s") {
    scale = kMsPerSecond;
  } else if (unit == "m") {
    scale = kMsPerMinute;
  } else if (unit == "h") {
    scale = kMsPerHour;
  } else if (unit.empty()) {
    return fail(quoted(text) + " has no unit; add ms, s, m or h, like \"" + std::string(text) +
                "s\"");
  } else {
    return fail(quoted(text) + ": unknown unit " + quoted(unit) + "; use ms, s, m or h");
  }

  if (value == 0) {
    return fail(quoted(text) + ": a duration must be greater than zero" +
                (allow_off ? " (use \"off\" to disable)" : ""));
  }
  if (overflow || value > kMaxMs / scale) {
    return fail(quoted(text) + " is too long; the maximum is 30 days (\"720h\")");
  }
  return Duration::millis(value * scale);
}

}  // namespace cutoff
