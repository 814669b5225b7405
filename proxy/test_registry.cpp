#include "cutoff/test_registry.hpp"

#include <algorithm>

#include "cutoff/access_log.hpp"

namespace cutoff {
namespace {

// Keeps at most `most` bytes of `text`, marking a cut with "...".
std::string_view cut(std::string_view text, size_t most) {
  return text.size() <= most ? text : text.substr(0, most - 3);
}

void append_cut(std::string& out, std::string_view text, size_t most) {
  out.append(cut(text, most));
  if (text.size() > most) out.append("...");
}

}  // namespace

TestExchange::TestExchange(const ExchangeRecord& record, std::string_view failure,
                           int64_t started_unix_ms)
    : started_unix_ms(started_unix_ms),
      dns_ms(record.dns_ms),
      connect_ms(record.connect_ms),
      first_byte_ms(record.first_byte_ms),
      total_ms(record.total_ms),
      up_bytes(record.up_bytes),
      down_bytes(record.down_bytes),
      outcome(record.outcome),
      status(record.status),
      reused(record.reused) {
  std::string target = record.target.to_string();
  // The method is a token llhttp knows, the route a config name: both short.
  text_.reserve(record.method.size() + std::min(target.size(), kMaxTarget) + record.route.size() +
                std::min(failure.size(), kMaxFailure));
  text_.append(record.method);
  method_ = static_cast<uint16_t>(text_.size());
  append_cut(text_, target, kMaxTarget);
  target_ = static_cast<uint16_t>(text_.size() - method_);
  text_.append(record.route.substr(0, UINT16_MAX));
  route_ = static_cast<uint16_t>(text_.size() - method_ - target_);
  append_cut(text_, failure, kMaxFailure);
}

bool TestExchange::failed() const {
  switch (outcome.kind) {
    case Outcome::Kind::timeout:
    case Outcome::Kind::stopped:
      return true;
    case Outcome::Kind::error:
      return outcome.error != ProxyError::http_request_error &&
             outcome.error != ProxyError::http_request_denied;
    default:
      return false;
  }
}

TestRegistry::TestRegistry(const TestsConfig& limits) : limits_(limits) {}

void TestRegistry::set_limits(const TestsConfig& limits) {
  std::lock_guard lock(mutex_);
  limits_ = limits;
  trim_tests();
  for (TestRecord& test : tests_) trim_exchanges(test, limits_.max_exchanges_per_test);
}

void TestRegistry::add(std::string_view id, const ExchangeRecord& record, std::string_view failure,
                       int64_t ended_unix_ms) {
  TestExchange exchange(record, failure, ended_unix_ms - record.total_ms);
  std::string outcome = outcome_token(record.outcome);
  std::lock_guard lock(mutex_);
  auto found = index_.find(id);
  if (found == index_.end()) {
    tests_.emplace_back().id = std::string(id);
    tests_.back().first_unix_ms = exchange.started_unix_ms;
    found = index_.emplace(tests_.back().id, std::prev(tests_.end())).first;
    trim_tests();
  } else {
    // The test is the most recently heard from now.
    tests_.splice(tests_.end(), tests_, found->second);
  }
  TestRecord& test = *found->second;
  test.last_unix_ms = std::max(test.last_unix_ms, ended_unix_ms);
  test.first_unix_ms = std::min(test.first_unix_ms, exchange.started_unix_ms);
  ++test.exchanges;
  if (exchange.failed()) ++test.failures;
  auto counted = std::find_if(test.outcomes.begin(), test.outcomes.end(),
                              [&](const auto& entry) { return entry.first == outcome; });
  if (counted == test.outcomes.end()) {
    test.outcomes.emplace_back(std::move(outcome), 1);
  } else {
    ++counted->second;
  }
  test.kept.push_back(std::move(exchange));
  trim_exchanges(test, limits_.max_exchanges_per_test);
}

bool TestRegistry::forget(std::string_view id) {
  std::lock_guard lock(mutex_);
  auto found = index_.find(id);
  if (found == index_.end()) return false;
  auto test = found->second;
  index_.erase(found);
  tests_.erase(test);
  return true;
}

size_t TestRegistry::bytes() const {
  std::lock_guard lock(mutex_);
  size_t total = 0;
  for (const TestRecord& test : tests_) {
    total += sizeof test + test.id.capacity() + test.outcomes.capacity() * 48;
    for (const TestExchange& exchange : test.kept) total += exchange.bytes();
  }
  return total;
}

// The test quiet for longest goes first: a suite's running tests stay.
void TestRegistry::trim_tests() {
  while (tests_.size() > limits_.max_tests) {
    index_.erase(tests_.front().id);
    tests_.pop_front();
    ++tests_forgotten_;
  }
}

// The oldest exchange that went well goes first; only when every one kept
// failed does the oldest failure go.
void TestRegistry::trim_exchanges(TestRecord& test, size_t limit) {
  while (test.kept.size() > limit) {
    auto well = std::find_if(test.kept.begin(), test.kept.end(),
                             [](const TestExchange& e) { return !e.failed(); });
    test.kept.erase(well == test.kept.end() ? test.kept.begin() : well);
    ++test.forgotten;
  }
}

}  // namespace cutoff
