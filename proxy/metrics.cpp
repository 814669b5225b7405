#include "cutoff/metrics.hpp"

#include <algorithm>

namespace cutoff {

RouteMetrics& Metrics::route(std::string_view name) {
  // Only this worker's thread inserts, so finding without the lock is safe.
  auto it = routes_.find(name);
  if (it != routes_.end()) return *it->second;
  std::lock_guard<std::mutex> lock(mutex_);
  return *routes_.emplace(std::string(name), std::make_unique<RouteMetrics>()).first->second;
}

void Metrics::record_exchange(RouteMetrics& route, int status, uint64_t duration_us) {
  int status_class = status / 100;
  route.requests_by_class[status_class >= 1 && status_class <= 5 ? status_class : 0].add();
  double seconds = static_cast<double>(duration_us) / 1e6;
  size_t bucket = static_cast<size_t>(
      std::lower_bound(kLatencyBuckets.begin(), kLatencyBuckets.end(), seconds) -
      kLatencyBuckets.begin());
  route.latency_buckets[bucket].add();
  route.latency_sum_us.add(static_cast<int64_t>(duration_us));
  route.latency_count.add();
}

}  // namespace cutoff
