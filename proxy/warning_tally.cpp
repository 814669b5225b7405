#include "cutoff/warning_tally.hpp"

namespace cutoff {

int64_t WarningTally::take_due(int64_t now_ms) {
  if (pending_.load(std::memory_order_relaxed) == 0) return 0;
  int64_t next = next_ms_.load(std::memory_order_relaxed);
  if (now_ms < next) return 0;
  // One thread wins the right to warn for this interval.
  if (!next_ms_.compare_exchange_strong(next, now_ms + interval_ms_, std::memory_order_relaxed)) {
    return 0;
  }
  return pending_.exchange(0, std::memory_order_relaxed);
}

}  // namespace cutoff
