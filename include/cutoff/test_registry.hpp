#pragma once
// What cutoff remembers per test (SPEC §12): the exchanges each test id made,
// for the admin's GET /tests/ID and the --report file, in bounded memory.
//
// Workers add a finished exchange when its request named a test; the
// control thread reads and forgets. One mutex guards it all: an exchange
// takes it once, at its end, and only when it has a test id, so a suite
// that sends none pays nothing.
//
// Bounds ([tests], re-read on SIGHUP): at most max_tests tests, the one
// quiet for longest forgotten first; at most max_exchanges_per_test
// exchanges each, the oldest that went well forgotten first, so that what
// a test met that went wrong stays longest. Counts per outcome stay exact
// either way, and every answer says what was forgotten.

#include <cstdint>
#include <deque>
#include <list>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "cutoff/config.hpp"
#include "cutoff/exchange.hpp"

namespace cutoff {

// One finished exchange, as a test's report shows it.
struct TestExchange {
  // A target longer than this is cut (and ends with "..."), as is a failure
  // sentence: what one exchange holds stays bounded.
  static constexpr size_t kMaxTarget = 1024;
  static constexpr size_t kMaxFailure = 512;

  TestExchange(const ExchangeRecord& record, std::string_view failure, int64_t started_unix_ms);

  std::string_view method() const { return std::string_view(text_).substr(0, method_); }
  std::string_view target() const { return std::string_view(text_).substr(method_, target_); }
  std::string_view route() const {
    return std::string_view(text_).substr(method_ + target_, route_);
  }
  std::string_view failure() const {
    return std::string_view(text_).substr(method_ + target_ + route_);
  }
  // A timeout, an upstream's failure, or an exchange cut short when cutoff
  // was stopped at once (a CI job killing it over a hang): what a test
  // report counts against the test. A request cutoff refused (400, 403,
  // 407) is the test's own doing, and a client that left is no failure of
  // the way.
  bool failed() const;
  size_t bytes() const { return sizeof *this + text_.capacity(); }

  int64_t started_unix_ms;
  int64_t dns_ms, connect_ms, first_byte_ms, total_ms;
  uint64_t up_bytes, down_bytes;
  Outcome outcome;
  int status;
  bool reused;

 private:
  // method, target, route and failure, one after the other: one allocation.
  std::string text_;
  uint16_t method_, target_, route_;
};

// One test id and what it did.
struct TestRecord {
  std::string id;
  std::deque<TestExchange> kept;  // oldest first
  uint64_t exchanges = 0;         // all of them, kept or forgotten
  uint64_t forgotten = 0;         // exchanges no longer kept
  uint64_t failures = 0;          // all of them, kept or forgotten
  // Every outcome met ("ok", "timeout:idle_timeout", ...) with its count.
  std::vector<std::pair<std::string, uint64_t>> outcomes;
  int64_t first_unix_ms = 0;  // the first exchange's start
  int64_t last_unix_ms = 0;   // the last exchange's end
};

class TestRegistry {
 public:
  explicit TestRegistry(const TestsConfig& limits);
  TestRegistry(const TestRegistry&) = delete;
  TestRegistry& operator=(const TestRegistry&) = delete;

  // Any thread. New bounds apply at once (the excess is forgotten).
  void set_limits(const TestsConfig& limits);
  // [tests] metrics_label of the config of the moment.
  bool labels_metrics() const {
    std::lock_guard lock(mutex_);
    return limits_.metrics_label;
  }
  // Any thread: a finished exchange of test `id`; `failure` is the
  // sentence its error response carried, if any.
  void add(std::string_view id, const ExchangeRecord& record, std::string_view failure,
           int64_t ended_unix_ms);
  // Forgets a test; false when it was not known.
  bool forget(std::string_view id);

  // Calls `read(const TestRecord*)` under the lock with the test, or null
  // when it is not known.
  template <typename Read>
  void with_test(std::string_view id, Read read) const {
    std::lock_guard lock(mutex_);
    auto it = index_.find(id);
    read(it == index_.end() ? nullptr : &*it->second);
  }
  // Calls `read(const std::list<TestRecord>&, uint64_t tests_forgotten)`
  // under the lock: every test, the one quiet for longest first.
  template <typename Read>
  void with_all(Read read) const {
    std::lock_guard lock(mutex_);
    read(tests_, tests_forgotten_);
  }

  // Memory held by what is kept: records, exchanges and their text.
  size_t bytes() const;

 private:
  void trim_tests();
  static void trim_exchanges(TestRecord& test, size_t limit);

  mutable std::mutex mutex_;
  TestsConfig limits_;
  std::list<TestRecord> tests_;  // the one quiet for longest first
  std::unordered_map<std::string_view, std::list<TestRecord>::iterator> index_;
  uint64_t tests_forgotten_ = 0;
};

}  // namespace cutoff
