#pragma once
// What the test registry (test_registry.hpp) shows: the admin's /tests
// answers in JSON, the --report file in JUnit XML, and the per-test series
// of /metrics ([tests] metrics_label).

#include <cstdint>
#include <list>
#include <string>
#include <string_view>

#include "cutoff/test_registry.hpp"

namespace cutoff {

// GET /tests/ID: the test's exchanges (none when `test` is null: it has
// only open ones so far) and `open`, the /connections objects of its
// exchanges still running, joined by commas.
void append_test_json(std::string& out, std::string_view id, const TestRecord* test,
                      std::string_view open);

// GET /tests: every known id with its counts, the one quiet for longest
// first.
void append_test_list_json(std::string& out, const std::list<TestRecord>& tests,
                           uint64_t tests_forgotten);

// --report: one testcase per test id, one failure per timeout or upstream
// error it met (of those still kept).
std::string junit_report(const std::list<TestRecord>& tests, uint64_t tests_forgotten);

// cutoff_test_exchanges_total{test,outcome}, with its HELP and TYPE lines.
void append_test_metrics(std::string& out, const std::list<TestRecord>& tests);

// "2026-12-03T16:04:05.123Z"
std::string utc_time(int64_t unix_ms);

}  // namespace cutoff
