#include <algorithm>
#include <catch2/catch.hpp>
#include <chrono>
#include <cstdint>
#include <list>
#include <string>
#include <string_view>
#include <vector>

#include "cutoff/exchange.hpp"
#include "cutoff/test_registry.hpp"

using namespace cutoff;

namespace {

TestsConfig limits(uint32_t max_tests, uint32_t max_exchanges_per_test) {
  TestsConfig config;
  config.max_tests = max_tests;
  config.max_exchanges_per_test = max_exchanges_per_test;
  return config;
}

ExchangeRecord record(std::string_view target, Outcome outcome = Outcome::ok()) {
  ExchangeRecord r;
  r.client = "127.0.0.1:50000";
  r.method = "GET";
  r.target.kept = target;
  r.route = "default";
  r.status = outcome.kind == Outcome::Kind::ok ? 200 : 504;
  r.total_ms = 10;
  r.outcome = outcome;
  return r;
}

const Outcome kTimeout = Outcome::timed_out(TimeoutName::response_header_timeout);

// Adds one exchange of `id` with target "/<n>".
void add(TestRegistry& tests, std::string_view id, int n, Outcome outcome = Outcome::ok()) {
  const std::string target = "/" + std::to_string(n);
  tests.add(id, record(target, outcome), {}, 1'000'000 + n);
}

// The ids known, the one quiet for longest first.
std::vector<std::string> ids(const TestRegistry& tests) {
  std::vector<std::string> out;
  tests.with_all([&](const std::list<TestRecord>& all, uint64_t) {
    for (const TestRecord& test : all) out.push_back(test.id);
  });
  return out;
}

uint64_t tests_forgotten(const TestRegistry& tests) {
  uint64_t out = 0;
  tests.with_all([&](const std::list<TestRecord>&, uint64_t forgotten) { out = forgotten; });
  return out;
}

// The targets `id` still keeps, oldest first; "?" when the test is unknown.
std::vector<std::string> kept(const TestRegistry& tests, std::string_view id) {
  std::vector<std::string> out{"?"};
  tests.with_test(id, [&](const TestRecord* test) {
    if (test == nullptr) return;
    out.clear();
    for (const TestExchange& e : test->kept) out.emplace_back(e.target());
  });
  return out;
}

// A copy of a test's counts, for checks outside the lock.
struct Counts {
  bool known = false;
  uint64_t exchanges = 0, forgotten = 0, failures = 0;
  std::vector<std::pair<std::string, uint64_t>> outcomes;
  int64_t first = 0, last = 0;
};

Counts counts(const TestRegistry& tests, std::string_view id) {
  Counts out;
  tests.with_test(id, [&](const TestRecord* test) {
    if (test == nullptr) return;
    out = {true,           test->exchanges,     test->forgotten,   test->failures,
           test->outcomes, test->first_unix_ms, test->last_unix_ms};
  });
  return out;
}

using Targets = std::vector<std::string>;

}  // namespace

TEST_CASE("test registry: add, with_test and forget", "[test_registry]") {
  TestRegistry tests(limits(10, 10));
  CHECK_FALSE(counts(tests, "a").known);
  CHECK(ids(tests).empty());

  tests.add("a", record("http://example.test/x"), {}, 5000);
  tests.add("a", record("http://example.test/y", kTimeout), "no answer", 7000);
  tests.add("b", record("http://example.test/z"), {}, 6000);
  CHECK(ids(tests) == std::vector<std::string>{"a", "b"});

  tests.with_test("a", [](const TestRecord* test) {
    REQUIRE(test != nullptr);
    CHECK(test->id == "a");
    CHECK(test->exchanges == 2);
    CHECK(test->forgotten == 0);
    CHECK(test->failures == 1);
    REQUIRE(test->kept.size() == 2);
    const TestExchange& first = test->kept[0];
    CHECK(first.method() == "GET");
    CHECK(first.target() == "http://example.test/x");
    CHECK(first.route() == "default");
    CHECK(first.failure().empty());
    CHECK(first.status == 200);
    CHECK(first.started_unix_ms == 5000 - 10);
    CHECK(first.total_ms == 10);
    const TestExchange& second = test->kept[1];
    CHECK(second.target() == "http://example.test/y");
    CHECK(second.failure() == "no answer");
    CHECK(second.status == 504);
    CHECK(second.outcome.kind == Outcome::Kind::timeout);
    // From the first exchange's start to the last one's end.
    CHECK(test->first_unix_ms == 4990);
    CHECK(test->last_unix_ms == 7000);
  });

  CHECK(tests.forget("a"));
  CHECK_FALSE(tests.forget("a"));
  CHECK_FALSE(tests.forget("never"));
  CHECK_FALSE(counts(tests, "a").known);
  CHECK(ids(tests) == std::vector<std::string>{"b"});
  // Forgotten on request is not forgotten for want of room.
  CHECK(tests_forgotten(tests) == 0);
  // A test forgotten starts afresh.
  add(tests, "a", 1);
  CHECK(counts(tests, "a").exchanges == 1);
}

TEST_CASE("test registry: the record's fields, all of them", "[test_registry]") {
  TestRegistry tests(limits(10, 10));
  ExchangeRecord r = record("example.test:443");
  r.method = "CONNECT";
  r.route = "tunnels";
  r.dns_ms = 1;
  r.connect_ms = 2;
  r.first_byte_ms = 3;
  r.total_ms = 400;
  r.up_bytes = 5;
  r.down_bytes = 6;
  r.reused = true;
  r.status = 200;
  tests.add("t", r, {}, 10'000);
  tests.with_test("t", [](const TestRecord* test) {
    REQUIRE(test != nullptr);
    REQUIRE(test->kept.size() == 1);
    const TestExchange& e = test->kept.front();
    CHECK(e.method() == "CONNECT");
    CHECK(e.target() == "example.test:443");
    CHECK(e.route() == "tunnels");
    CHECK(e.dns_ms == 1);
    CHECK(e.connect_ms == 2);
    CHECK(e.first_byte_ms == 3);
    CHECK(e.total_ms == 400);
    CHECK(e.up_bytes == 5);
    CHECK(e.down_bytes == 6);
    CHECK(e.reused);
    CHECK(e.started_unix_ms == 9600);
  });
}

TEST_CASE("test registry: the first and last times span every exchange", "[test_registry]") {
  TestRegistry tests(limits(10, 10));
  ExchangeRecord slow = record("/slow");
  slow.total_ms = 5000;
  tests.add("t", record("/quick"), {}, 10'000);  // 9990 .. 10000
  tests.add("t", slow, {}, 12'000);              // 7000 .. 12000: began first
  tests.add("t", record("/late"), {}, 11'000);   // ended before the slow one
  const Counts c = counts(tests, "t");
  CHECK(c.first == 7000);
  CHECK(c.last == 12'000);
}

TEST_CASE("test registry: a redacted target is kept as logs show it", "[test_registry]") {
  TestRegistry tests(limits(10, 10));
  ExchangeRecord r = record("http://example.test/search?");
  r.target.redacted = true;
  tests.add("t", r, {}, 1000);
  CHECK(kept(tests, "t") == Targets{"http://example.test/search?" + std::string(kRedactionMarker)});
}

TEST_CASE("test registry: the test quiet for longest is forgotten first", "[test_registry]") {
  TestRegistry tests(limits(3, 10));
  add(tests, "a", 1);
  add(tests, "b", 2);
  add(tests, "c", 3);
  CHECK(tests_forgotten(tests) == 0);
  // A new exchange of "a" makes it the one heard from last.
  add(tests, "a", 4);
  CHECK(ids(tests) == std::vector<std::string>{"b", "c", "a"});
  add(tests, "d", 5);
  CHECK(ids(tests) == std::vector<std::string>{"c", "a", "d"});
  CHECK_FALSE(counts(tests, "b").known);
  CHECK(tests_forgotten(tests) == 1);
  CHECK(kept(tests, "a") == Targets{"/1", "/4"});
  add(tests, "e", 6);
  add(tests, "f", 7);
  CHECK(ids(tests) == std::vector<std::string>{"d", "e", "f"});
  CHECK(tests_forgotten(tests) == 3);
  // A forgotten test that comes back starts afresh, and pushes out the
  // quietest again.
  add(tests, "b", 8);
  CHECK(ids(tests) == std::vector<std::string>{"e", "f", "b"});
  CHECK(counts(tests, "b").exchanges == 1);
  CHECK(tests_forgotten(tests) == 4);
}

TEST_CASE("test registry: within a test, the oldest exchange that went well goes first",
          "[test_registry]") {
  TestRegistry tests(limits(10, 3));
  add(tests, "t", 1);
  add(tests, "t", 2, kTimeout);
  add(tests, "t", 3);
  add(tests, "t", 4);  // /1 goes: the oldest that went well
  CHECK(kept(tests, "t") == Targets{"/2", "/3", "/4"});
  add(tests, "t", 5, kTimeout);  // /3 goes
  CHECK(kept(tests, "t") == Targets{"/2", "/4", "/5"});
  add(tests, "t", 6, Outcome::failed(ProxyError::connection_refused));  // /4 goes
  CHECK(kept(tests, "t") == Targets{"/2", "/5", "/6"});
  // Every one kept failed: an exchange that went well is forgotten at once,
  add(tests, "t", 7);
  CHECK(kept(tests, "t") == Targets{"/2", "/5", "/6"});
  // and a failure pushes out the oldest failure.
  add(tests, "t", 8, kTimeout);
  CHECK(kept(tests, "t") == Targets{"/5", "/6", "/8"});

  // Counts stay exact, whatever was forgotten.
  const Counts c = counts(tests, "t");
  CHECK(c.exchanges == 8);
  CHECK(c.forgotten == 5);
  CHECK(c.failures == 4);
  CHECK(c.outcomes ==
        std::vector<std::pair<std::string, uint64_t>>{
            {"ok", 4}, {"timeout:response_header_timeout", 3}, {"error:connection_refused", 1}});
}

TEST_CASE("test registry: what a client did wrong is kept no longer than what went well",
          "[test_registry]") {
  TestRegistry tests(limits(10, 2));
  add(tests, "t", 1, kTimeout);
  add(tests, "t", 2, Outcome::failed(ProxyError::http_request_error));
  add(tests, "t", 3, Outcome::client_aborted());  // /2 goes: no failure
  CHECK(kept(tests, "t") == Targets{"/1", "/3"});
  add(tests, "t", 4, Outcome::failed(ProxyError::http_request_denied));  // /3 goes
  CHECK(kept(tests, "t") == Targets{"/1", "/4"});
  const Counts c = counts(tests, "t");
  CHECK(c.failures == 1);
  CHECK(c.outcomes ==
        std::vector<std::pair<std::string, uint64_t>>{{"timeout:response_header_timeout", 1},
                                                      {"error:http_request_error", 1},
                                                      {"client_abort", 1},
                                                      {"error:http_request_denied", 1}});
}

TEST_CASE("test registry: new, smaller limits trim at once", "[test_registry]") {
  TestRegistry tests(limits(5, 5));
  for (const char* id : {"a", "b", "c", "d"}) {
    for (int n = 1; n <= 4; ++n) add(tests, id, n, n == 2 ? kTimeout : Outcome::ok());
  }
  tests.set_limits(limits(2, 2));
  CHECK(ids(tests) == std::vector<std::string>{"c", "d"});
  CHECK(tests_forgotten(tests) == 2);
  CHECK(kept(tests, "c") == Targets{"/2", "/4"});
  CHECK(kept(tests, "d") == Targets{"/2", "/4"});
  CHECK(counts(tests, "d").forgotten == 2);
  CHECK(counts(tests, "d").exchanges == 4);
  // Larger limits bring nothing back, and apply to what comes next.
  tests.set_limits(limits(3, 3));
  CHECK(kept(tests, "d") == Targets{"/2", "/4"});
  add(tests, "d", 5);
  CHECK(kept(tests, "d") == Targets{"/2", "/4", "/5"});
  add(tests, "e", 1);
  CHECK(ids(tests) == std::vector<std::string>{"c", "d", "e"});
  CHECK(tests.labels_metrics() == false);
  TestsConfig labelled = limits(3, 3);
  labelled.metrics_label = true;
  tests.set_limits(labelled);
  CHECK(tests.labels_metrics());
}

TEST_CASE("test registry: a long target and failure are cut, marked with ...", "[test_registry]") {
  TestRegistry tests(limits(10, 10));
  const std::string target = "http://example.test/" + std::string(3000, 'p');
  const std::string failure = std::string(2000, 'f');
  tests.add("t", record(target, kTimeout), failure, 1000);
  // Exactly at the limits: whole.
  const std::string target_at_limit = target.substr(0, TestExchange::kMaxTarget);
  const std::string failure_at_limit = failure.substr(0, TestExchange::kMaxFailure);
  tests.add("t", record(target_at_limit, kTimeout), failure_at_limit, 1000);
  tests.with_test("t", [&](const TestRecord* test) {
    REQUIRE(test != nullptr);
    REQUIRE(test->kept.size() == 2);
    const TestExchange& cut = test->kept[0];
    CHECK(cut.method() == "GET");
    CHECK(cut.target().size() == TestExchange::kMaxTarget);
    CHECK(cut.target() == target.substr(0, TestExchange::kMaxTarget - 3) + "...");
    CHECK(cut.route() == "default");
    CHECK(cut.failure().size() == TestExchange::kMaxFailure);
    CHECK(cut.failure() == failure.substr(0, TestExchange::kMaxFailure - 3) + "...");
    CHECK(cut.bytes() <
          sizeof(TestExchange) + TestExchange::kMaxTarget + TestExchange::kMaxFailure + 64);
    const TestExchange& whole = test->kept[1];
    CHECK(whole.target() == target_at_limit);
    CHECK(whole.failure() == failure_at_limit);
  });
}

TEST_CASE("test exchange: which outcomes count against the test", "[test_registry]") {
  auto failed = [](Outcome outcome) { return TestExchange(record("/", outcome), {}, 0).failed(); };
  CHECK(failed(Outcome::timed_out(TimeoutName::response_header_timeout)));
  CHECK(failed(Outcome::timed_out(TimeoutName::connect_timeout)));
  CHECK(failed(Outcome::timed_out(TimeoutName::min_rate)));
  CHECK(failed(Outcome::failed(ProxyError::dns_error)));
  CHECK(failed(Outcome::failed(ProxyError::connection_refused)));
  CHECK(failed(Outcome::failed(ProxyError::connection_terminated)));
  CHECK(failed(Outcome::failed(ProxyError::destination_unavailable)));
  CHECK(failed(Outcome::failed(ProxyError::http_protocol_error)));
  CHECK(failed(Outcome::failed(ProxyError::tls_certificate_error)));
  CHECK(failed(Outcome::failed(ProxyError::proxy_loop_detected)));
  CHECK_FALSE(failed(Outcome::failed(ProxyError::http_request_error)));
  CHECK_FALSE(failed(Outcome::failed(ProxyError::http_request_denied)));
  CHECK_FALSE(failed(Outcome::client_aborted()));
  CHECK_FALSE(failed(Outcome::ok()));
  // Stopped at once (a second SIGTERM) while it waited: what a CI job that
  // killed cutoff over a hang wants to see.
  CHECK(failed(Outcome::stopped()));
}

// SPEC §12: memory for this is bounded. Far more ids and exchanges than
// the limits, in a suite's order (each test's exchanges one after the
// other, a few of them failing).
TEST_CASE("test registry: many tests and exchanges stay within the limits", "[test_registry]") {
  constexpr uint32_t kMaxTests = 1000;
  constexpr uint32_t kMaxExchanges = 100;
  constexpr int kIds = 2000;
  constexpr int kExchangesPerId = 120;
  TestRegistry tests(limits(kMaxTests, kMaxExchanges));
  const std::string failure = "cutoff: no response header from example.test:80 in 2s";
  size_t longest_text = 0;
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < kIds; ++i) {
    const std::string id = "tests/test_suite.py::test_case_number_" + std::to_string(i);
    for (int n = 0; n < kExchangesPerId; ++n) {
      const std::string target = "http://service.example.test/api/v1/items/" + std::to_string(n);
      const bool fails = n % 10 == 3;
      tests.add(id, record(target, fails ? kTimeout : Outcome::ok()), fails ? failure : "",
                1'000'000 + n);
      longest_text = std::max(longest_text, 3 + target.size() + 7 + (fails ? failure.size() : 0));
    }
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  INFO("added " << kIds * kExchangesPerId << " exchanges in " << seconds << " s");

  tests.with_all([&](const std::list<TestRecord>& all, uint64_t forgotten) {
    CHECK(all.size() == kMaxTests);
    CHECK(forgotten == kIds - kMaxTests);
    // The last ids heard from are the ones kept.
    CHECK(all.front().id ==
          "tests/test_suite.py::test_case_number_" + std::to_string(kIds - kMaxTests));
    CHECK(all.back().id == "tests/test_suite.py::test_case_number_" + std::to_string(kIds - 1));
    for (const TestRecord& test : all) {
      REQUIRE(test.kept.size() == kMaxExchanges);
      CHECK(test.exchanges == kExchangesPerId);
      CHECK(test.forgotten == kExchangesPerId - kMaxExchanges);
      CHECK(test.failures == kExchangesPerId / 10);
    }
    // Every failure is still kept: only exchanges that went well went.
    const TestRecord& last = all.back();
    size_t failed = 0;
    for (const TestExchange& e : last.kept) failed += e.failed() ? 1 : 0;
    CHECK(failed == kExchangesPerId / 10);
  });

  // The memory held: every exchange with its text (a string's capacity is
  // at least 30 once it leaves its inline buffer), every test with its id
  // and a few outcome counts.
  const size_t per_exchange = sizeof(TestExchange) + std::max<size_t>(longest_text, 30);
  const size_t per_test = sizeof(TestRecord) + 64 + 8 * 48;
  const size_t bound = kMaxTests * (kMaxExchanges * per_exchange + per_test);
  const size_t held = tests.bytes();
  INFO("held " << held << " bytes, bound " << bound);
  CHECK(held <= bound);
  CHECK(held >= kMaxTests * kMaxExchanges * sizeof(TestExchange));
  // About 20 MB at most for a thousand tests of a hundred exchanges each.
  CHECK(bound < 25'000'000);
}
