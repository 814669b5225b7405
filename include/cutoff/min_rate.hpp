#pragma once
// A low-speed limit: at least so many bytes in every window of a given
// duration while a body moves, or "off".
//
// Written in the config as "<amount>/<window>" ("1KiB/30s", "100B/2s"). The
// amount always has a unit (B, KiB, MiB or GiB), as durations always do: a
// bare "100/2s" could as well mean kilobytes to a reader, so it is refused
// rather than guessed.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "cutoff/duration.hpp"

namespace cutoff {

class MinRate {
 public:
  constexpr MinRate() = default;  // off

  static constexpr MinRate off() { return MinRate{}; }
  static constexpr MinRate of(uint64_t bytes, Duration window) { return MinRate{bytes, window}; }

  constexpr bool is_off() const { return window_.is_off(); }
  // Bytes required in each window; only meaningful when !is_off().
  constexpr uint64_t bytes() const { return bytes_; }
  constexpr Duration window() const { return window_; }

  // The config spelling, largest exact units: "1KiB/30s", "off".
  std::string to_string() const;

  friend constexpr bool operator==(MinRate, MinRate) = default;

 private:
  constexpr MinRate(uint64_t bytes, Duration window) : bytes_(bytes), window_(window) {}
  uint64_t bytes_ = 0;
  Duration window_ = Duration::off();
};

// A byte count for people, in the largest unit that divides it exactly:
// "100 B", "1 KiB", "1536 B".
std::string bytes_in_words(uint64_t bytes);

// Parses "<integer><unit>/<duration>" or "off". Returns nullopt and fills
// *error with a one-line reason on failure. A zero amount or window is
// refused: the first would never fire, the second would fire at once.
std::optional<MinRate> parse_min_rate(std::string_view text, std::string* error);

}  // namespace cutoff
