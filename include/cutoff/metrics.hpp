#pragma once
// Counters and gauges of one worker, for the admin endpoint's /metrics.
//
// Each worker updates only its own Metrics, from its own thread; the admin
// thread reads every worker's and adds them up. Values are single-writer
// atomics: an update is a plain load and store (no locked instruction), and a
// reader sees each value whole. Per-route entries are created on first use
// under a mutex the reader also takes; their addresses never change.

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>

#include "cutoff/proxy_error.hpp"
#include "cutoff/timeout.hpp"

namespace cutoff {

// A counter or gauge written by one thread and read by others.
class Counter {
 public:
  void add(int64_t n = 1) {
    value_.store(value_.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
  }
  int64_t get() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<int64_t> value_{0};
};

// Upper bounds, in seconds, of the latency histogram buckets (+Inf implied).
inline constexpr std::array<double, 12> kLatencyBuckets = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                                           0.1,   0.25,   0.5,   1.0,  2.5,   10.0};
inline constexpr size_t kTimeoutNames = static_cast<size_t>(TimeoutName::drain_timeout) + 1;
inline constexpr size_t kProxyErrors = static_cast<size_t>(ProxyError::http_request_error) + 1;

struct RouteMetrics {
  std::array<Counter, 6> requests_by_class;  // index 0: no status; 1..5: 1xx..5xx
  std::array<Counter, kTimeoutNames> timeouts;
  std::array<Counter, kLatencyBuckets.size() + 1> latency_buckets;  // non-cumulative; last is +Inf
  Counter latency_sum_us;
  Counter latency_count;
};

class Metrics {
 public:
  // The entry for a route name, created on first use (worker thread only).
  RouteMetrics& route(std::string_view name);

  // Records a finished exchange (worker thread only).
  void record_exchange(RouteMetrics& route, int status, uint64_t duration_us);

  std::array<Counter, kProxyErrors> upstream_errors;  // connect/DNS/protocol errors by type
  Counter client_connections;                         // gauge: open client connections
  Counter tunnels;                                    // gauge: open CONNECT/Upgrade tunnels
  Counter bytes_up;                                   // client -> upstream
  Counter bytes_down;                                 // upstream -> client
  Counter client_connections_refused;                 // over max_client_connections
  Counter accept_pauses;                              // a listener paused accepting (EMFILE, ...)
  Counter upstream_idle;                              // gauge: pooled idle upstream connections
  Counter closes_reset;  // graceful closes that ended in an RST (a peer stopped reading or closing)
  Counter log_lines_dropped;  // log lines a stalled destination did not take

  // Calls fn(name, metrics) for each route seen so far (any thread).
  template <class Fn>
  void for_each_route(Fn fn) const {
    std::lock_guard<std::mutex> lock(mutex_);
    for (const auto& [name, entry] : routes_) fn(std::string_view(name), *entry);
  }

 private:
  struct Hash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  mutable std::mutex mutex_;  // guards routes_' structure, not the counters
  std::unordered_map<std::string, std::unique_ptr<RouteMetrics>, Hash, std::equal_to<>> routes_;
};

}  // namespace cutoff
