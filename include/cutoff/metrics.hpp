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

#include "cutoff/exchange.hpp"
#include "cutoff/proxy_error.hpp"
#include "cutoff/session_phase.hpp"
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
// Past 1 s they bracket the usual timeouts (5 s DNS and connect, 30 s
// response head, 60 s idle, 5 min tunnels), so that an exchange ended by a
// deadline lands in a bucket of its own instead of a catch-all.
inline constexpr std::array<double, 17> kLatencyBuckets = {0.001, 0.0025, 0.005, 0.01,  0.025, 0.05,
                                                           0.1,   0.25,   0.5,   1.0,   2.5,   5.0,
                                                           10.0,  30.0,   60.0,  120.0, 300.0};
// The same bounds in whole microseconds, which every one of them is: a
// duration of whole microseconds is within a bound exactly when its value
// in seconds is.
inline constexpr auto kLatencyBucketsUs = [] {
  std::array<uint64_t, kLatencyBuckets.size()> us{};
  for (size_t i = 0; i < us.size(); ++i)
    us[i] = static_cast<uint64_t>(kLatencyBuckets[i] * 1e6 + 0.5);
  return us;
}();
inline constexpr size_t kTimeoutNames = static_cast<size_t>(TimeoutName::drain_timeout) + 1;
inline constexpr size_t kProxyErrors = static_cast<size_t>(ProxyError::http_request_error) + 1;
// Status classes: 0 for no status, 1..5 for 1xx..5xx.
inline constexpr size_t kStatusClasses = 6;
size_t status_class(int status);

// One slot per outcome the access log can name (a bounded label set): ok,
// timeout:<name> for each timeout, error:<token> for each error,
// client_abort, stopped.
inline constexpr size_t kOutcomeSlots = 1 + kTimeoutNames + kProxyErrors + 2;
size_t outcome_slot(const Outcome& outcome);
Outcome outcome_in_slot(size_t slot);

struct RouteMetrics {
  std::array<Counter, kStatusClasses> requests_by_class;  // see status_class()
  // Exchanges by status class and outcome, at [class * kOutcomeSlots +
  // outcome_slot]: a 200 whose body was then cut by a timeout counts as 2xx
  // with that timeout, not as a plain 2xx.
  std::array<Counter, kStatusClasses * kOutcomeSlots> outcomes;
  std::array<Counter, kTimeoutNames> timeouts;
  std::array<Counter, kLatencyBuckets.size() + 1> latency_buckets;  // non-cumulative; last is +Inf
  Counter latency_sum_us;
  Counter latency_count;
};

class Metrics {
 public:
  // The entry for a route name, created on first use (worker thread only).
  RouteMetrics& route(std::string_view name) {
    // Most exchanges of a worker take the route of the one before.
    if (last_ != nullptr && name == last_name_) return *last_;
    return find_route(name);
  }

  // Records a finished exchange (worker thread only).
  void record_exchange(RouteMetrics& route, int status, uint64_t duration_us);
  // Counts a finished exchange by status class and outcome (worker thread
  // only).
  void count_outcome(RouteMetrics& route, int status, const Outcome& outcome);

  std::array<Counter, kProxyErrors> upstream_errors;  // connect/DNS/protocol errors by type
  Counter client_connections;                         // gauge: open client connections
  Counter tunnels;                                    // gauge: open CONNECT/Upgrade tunnels
  // Gauges: client connections in each phase (Session::set_phase moves
  // them). Only the phases of an exchange in flight are shown.
  std::array<Counter, kSessionPhases> in_phase;
  Counter bytes_up;                    // client -> upstream
  Counter bytes_down;                  // upstream -> client
  Counter client_connections_refused;  // over max_client_connections
  Counter accept_pauses;               // a listener paused accepting (EMFILE, ...)
  Counter upstream_idle;               // gauge: pooled idle upstream connections
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
  // route() past the entry of the last exchange. Entries are never erased: a
  // name compared is cheaper than one hashed.
  RouteMetrics& find_route(std::string_view name);

  mutable std::mutex mutex_;  // guards routes_' structure, not the counters
  std::unordered_map<std::string, std::unique_ptr<RouteMetrics>, Hash, std::equal_to<>> routes_;
  // The entry route() returned last, and its name (the map's own key, which
  // stays where it is).
  std::string_view last_name_;
  RouteMetrics* last_ = nullptr;
};

}  // namespace cutoff
