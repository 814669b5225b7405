#pragma once
// A configured span of time, or the explicit value "off".
//
// Durations come from the config as strings with a unit ("250ms", "5s",
// "2m", "1h"). "off" is one explicit state, never a magic zero, so a timeout
// that may be disabled says so in its type's state instead of in a sentinel
// scattered through the code.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace cutoff {

class Duration {
 public:
  constexpr Duration() = default;  // off

  static constexpr Duration off() { return Duration{}; }
  static constexpr Duration millis(uint64_t ms) { return Duration{ms}; }
  static constexpr Duration seconds(uint64_t s) { return Duration{s * 1000}; }

  constexpr bool is_off() const { return !ms_.has_value(); }
  // Milliseconds; only meaningful when !is_off().
  constexpr uint64_t ms() const { return ms_.value_or(0); }

  // The shortest exact spelling: "250ms", "5s", "2m", "1h", "off".
  std::string to_string() const;

  friend constexpr bool operator==(Duration, Duration) = default;

 private:
  constexpr explicit Duration(uint64_t ms) : ms_(ms) {}
  std::optional<uint64_t> ms_;
};

// Parses "<integer><unit>" with unit ms, s, m or h, or "off" when allow_off.
// Returns nullopt and fills *error with a one-line reason on failure.
// Zero ("0s") is refused: a deadline of zero would fire before any wait.
std::optional<Duration> parse_duration(std::string_view text, bool allow_off, std::string* error);

}  // namespace cutoff
