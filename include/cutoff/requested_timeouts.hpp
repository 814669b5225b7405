#pragma once
// What a request's Cutoff-Timeout field asks of its own exchange's deadlines
// (SPEC §12): "response_header=2s, idle=1s, request=10s", the names of §4
// without "_timeout". A test that knows its call should answer fast says so,
// and fails in that time instead of the route's. It can only shorten a
// deadline, never lengthen one: a value above the route's leaves the
// route's.

#include <array>
#include <string>
#include <string_view>

#include "cutoff/duration.hpp"
#include "cutoff/http_parser.hpp"
#include "cutoff/timeout.hpp"

namespace cutoff {

class RequestedTimeouts {
 public:
  // Reads one field value and adds what it asks. Returns the sentence of a
  // 400 (unknown name, bad or missing duration, a name given twice), else
  // empty.
  std::string add(std::string_view value);
  // The deadline the exchange runs under: `configured`, or what was asked
  // when that is shorter. Inline: every phase of every exchange asks, and
  // most exchanges asked nothing.
  Duration apply(TimeoutName name, Duration configured) const {
    return any_ ? shorter_of(name, configured) : configured;
  }
  // What was asked for this deadline; off when nothing was.
  Duration asked(TimeoutName name) const { return asked_[static_cast<size_t>(name)]; }
  bool any() const { return any_; }
  void clear() {
    if (any_) forget();
  }

 private:
  // One "name=duration" element of the list.
  std::string add_item(std::string_view item);
  Duration shorter_of(TimeoutName name, Duration configured) const;
  void forget();

  // Indexed by TimeoutName; off where nothing was asked.
  std::array<Duration, static_cast<size_t>(TimeoutName::drain_timeout) + 1> asked_{};
  bool any_ = false;
};

// Adds every Cutoff-Timeout field of `head` to *out; the sentence of a 400,
// or empty.
std::string read_requested_timeouts(const MessageHead& head, RequestedTimeouts* out);

}  // namespace cutoff
