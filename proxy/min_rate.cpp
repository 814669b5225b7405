#include "cutoff/min_rate.hpp"

#include <cstdint>
#include <string>

namespace cutoff {
namespace {

struct ByteUnit {
  std::string_view name;
  uint64_t scale;
};
// Largest first, so that printing picks the largest exact unit.
constexpr ByteUnit kUnits[] = {
    {"GiB", uint64_t{1} << 30}, {"MiB", uint64_t{1} << 20}, {"KiB", uint64_t{1} << 10}, {"B", 1}};

// No body crawls along at a terabyte per window; a larger amount is a typo,
// and the cap keeps the byte count of a window far from overflow.
constexpr uint64_t kMaxBytes = uint64_t{1} << 40;

// Windows shorter than this cannot be measured: a deadline may fire up to
// 50 ms late (SPEC §4), and each window costs a timer wake-up.
constexpr uint64_t kMinWindowMs = 100;

constexpr const char* kForm = "expected an amount and a window, like \"1KiB/30s\", or \"off\"";

std::string quoted(std::string_view text) {
  return "\"" + std::string(text) + "\"";
}

bool is_digit(char c) {
  return c >= '0' && c <= '9';
}

const ByteUnit* find_unit(std::string_view name) {
  for (const ByteUnit& unit : kUnits) {
    if (unit.name == name) return &unit;
  }
  return nullptr;
}

// The largest unit that divides `bytes` exactly.
const ByteUnit& exact_unit(uint64_t bytes) {
  for (const ByteUnit& unit : kUnits) {
    if (bytes != 0 && bytes % unit.scale == 0) return unit;
  }
  return kUnits[std::size(kUnits) - 1];
}

// "<integer><unit>" into bytes; fills *error on failure.
std::optional<uint64_t> parse_amount(std::string_view whole, std::string_view text,
                                     std::string* error) {
  auto fail = [&](std::string message) -> std::optional<uint64_t> {
    if (error) *error = std::move(message);
    return std::nullopt;
  };
  size_t i = 0;
  uint64_t value = 0;
  while (i < text.size() && is_digit(text[i])) {
    // Saturate past the limit; the digits still count as read.
    value = value > kMaxBytes ? value : value * 10 + static_cast<uint64_t>(text[i] - '0');
    ++i;
  }
  if (i == 0) return fail(quoted(whole) + " does not start with an amount; " + kForm);
  const std::string_view unit_name = text.substr(i);
  if (unit_name.empty()) {
    return fail(quoted(whole) + ": the amount has no unit; add B, KiB, MiB or GiB, like \"" +
                std::string(text) + "B\"");
  }
  if (unit_name.front() == '.' || unit_name.front() == ',') {
    return fail(quoted(whole) + ": fractions are not allowed; use a smaller unit, like \"1536B\"");
  }
  const ByteUnit* unit = find_unit(unit_name);
  if (unit == nullptr) {
    return fail(quoted(whole) + ": unknown unit " + quoted(unit_name) +
                "; use B, KiB, MiB or GiB (KiB is 1024 bytes)");
  }
  if (value == 0) {
    return fail(quoted(whole) + ": an amount of zero never fires; use \"off\" to disable");
  }
  if (value > kMaxBytes / unit->scale) {
    return fail(quoted(whole) + ": the amount is too large; the maximum is 1024GiB");
  }
  return value * unit->scale;
}

}  // namespace

std::string bytes_in_words(uint64_t bytes) {
  const ByteUnit& unit = exact_unit(bytes);
  return std::to_string(bytes / unit.scale) + " " + std::string(unit.name);
}

std::string MinRate::to_string() const {
  if (is_off()) return "off";
  const ByteUnit& unit = exact_unit(bytes_);
  return std::to_string(bytes_ / unit.scale) + std::string(unit.name) + "/" + window_.to_string();
}

std::optional<MinRate> parse_min_rate(std::string_view text, std::string* error) {
  auto fail = [&](std::string message) -> std::optional<MinRate> {
    if (error) *error = std::move(message);
    return std::nullopt;
  };
  if (text == "off") return MinRate::off();
  const size_t slash = text.find('/');
  if (slash == std::string_view::npos) {
    return fail(quoted(text) + " has no window; " + kForm);
  }
  std::optional<uint64_t> bytes = parse_amount(text, text.substr(0, slash), error);
  if (!bytes) return std::nullopt;
  std::string reason;
  std::optional<Duration> window = parse_duration(text.substr(slash + 1), false, &reason);
  if (!window) return fail(quoted(text) + ": the window: " + reason);
  if (window->ms() < kMinWindowMs) {
    return fail(quoted(text) + ": the window must be at least " +
                Duration::millis(kMinWindowMs).to_string());
  }
  return MinRate::of(*bytes, *window);
}

}  // namespace cutoff
