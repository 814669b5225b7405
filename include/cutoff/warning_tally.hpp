#pragma once
// Events that deserve a warning, but not one per event: lines dropped by a
// log, a client speaking TLS to the proxy port. Any thread adds to the
// tally; the warning comes at most once per interval, with the count since
// the last one, so that a flood cannot flood the diagnostics log in turn.

#include <atomic>
#include <cstdint>

namespace cutoff {

class WarningTally {
 public:
  explicit WarningTally(int64_t interval_ms) : interval_ms_(interval_ms) {}
  void add(int64_t events) {
    if (events > 0) pending_.fetch_add(events, std::memory_order_relaxed);
  }
  // The events to warn about now (and forgets them), or 0: none happened, or
  // the last warning is less than an interval old. The first warning is due
  // at once. Any thread.
  int64_t take_due(int64_t now_ms);

 private:
  int64_t interval_ms_;
  std::atomic<int64_t> pending_{0};
  std::atomic<int64_t> next_ms_{INT64_MIN};
};

}  // namespace cutoff
