#include "cutoff/metrics.hpp"

namespace cutoff {

RouteMetrics& Metrics::find_route(std::string_view name) {
  // Only this worker's thread inserts, so finding without the lock is safe.
  auto it = routes_.find(name);
  if (it == routes_.end()) {
    std::lock_guard<std::mutex> lock(mutex_);
    it = routes_.emplace(std::string(name), std::make_unique<RouteMetrics>()).first;
  }
  last_name_ = it->first;
  last_ = it->second.get();
  return *last_;
}

size_t status_class(int status) {
  int hundreds = status / 100;
  return hundreds >= 1 && hundreds <= 5 ? static_cast<size_t>(hundreds) : 0;
}

size_t outcome_slot(const Outcome& outcome) {
  switch (outcome.kind) {
    case Outcome::Kind::ok:
      return 0;
    case Outcome::Kind::timeout:
      return 1 + static_cast<size_t>(outcome.timeout);
    case Outcome::Kind::error:
      return 1 + kTimeoutNames + static_cast<size_t>(outcome.error);
    case Outcome::Kind::client_abort:
      return 1 + kTimeoutNames + kProxyErrors;
    case Outcome::Kind::stopped:
      return 2 + kTimeoutNames + kProxyErrors;
  }
  return 0;
}

Outcome outcome_in_slot(size_t slot) {
  if (slot == 0) return Outcome::ok();
  if (slot <= kTimeoutNames) return Outcome::timed_out(static_cast<TimeoutName>(slot - 1));
  slot -= 1 + kTimeoutNames;
  if (slot < kProxyErrors) return Outcome::failed(static_cast<ProxyError>(slot));
  return slot == kProxyErrors ? Outcome::client_aborted() : Outcome::stopped();
}

void Metrics::count_outcome(RouteMetrics& route, int status, const Outcome& outcome) {
  route.outcomes[status_class(status) * kOutcomeSlots + outcome_slot(outcome)].add();
}

void Metrics::record_exchange(RouteMetrics& route, int status, uint64_t duration_us) {
  route.requests_by_class[status_class(status)].add();
  // Most exchanges are short: counting up from the first bound finds their
  // bucket in a step or two.
  size_t bucket = 0;
  while (bucket < kLatencyBucketsUs.size() && duration_us > kLatencyBucketsUs[bucket]) ++bucket;
  route.latency_buckets[bucket].add();
  route.latency_sum_us.add(static_cast<int64_t>(duration_us));
  route.latency_count.add();
}

}  // namespace cutoff
