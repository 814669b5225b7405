#include <catch2/catch.hpp>
#include <cstdint>
#include <list>
#include <string>
#include <string_view>

#include "cutoff/exchange.hpp"
#include "cutoff/test_registry.hpp"
#include "cutoff/test_report.hpp"

using namespace cutoff;

namespace {

// 2026-12-03T16:04:05.123Z
constexpr int64_t kNoon = 1796313845123;

ExchangeRecord record(std::string_view target, Outcome outcome, int status) {
  ExchangeRecord r;
  r.client = "127.0.0.1:50000";
  r.method = "GET";
  r.target.kept = target;
  r.route = "api";
  r.status = status;
  r.dns_ms = 1;
  r.connect_ms = 2;
  r.first_byte_ms = outcome.kind == Outcome::Kind::ok ? 3 : kNoTime;
  r.total_ms = 2001;
  r.up_bytes = 7;
  r.down_bytes = 99;
  r.outcome = outcome;
  return r;
}

const Outcome kTimeout = Outcome::timed_out(TimeoutName::response_header_timeout);
const Outcome kRefused = Outcome::failed(ProxyError::connection_refused);

size_t occurrences(std::string_view text, std::string_view what) {
  size_t count = 0;
  for (size_t at = text.find(what); at != std::string_view::npos; at = text.find(what, at + 1)) {
    ++count;
  }
  return count;
}

std::string junit(const TestRegistry& tests) {
  std::string out;
  tests.with_all([&](const std::list<TestRecord>& all, uint64_t forgotten) {
    out = junit_report(all, forgotten);
  });
  return out;
}

}  // namespace

TEST_CASE("utc_time: ISO 8601 in UTC, to the millisecond", "[test_report]") {
  CHECK(utc_time(0) == "1970-01-01T00:00:00.000Z");
  CHECK(utc_time(1) == "1970-01-01T00:00:00.001Z");
  CHECK(utc_time(999) == "1970-01-01T00:00:00.999Z");
  CHECK(utc_time(1000) == "1970-01-01T00:00:01.000Z");
  CHECK(utc_time(kNoon) == "2026-12-03T16:04:05.123Z");
  CHECK(utc_time(951782400000) == "2000-02-29T00:00:00.000Z");
  CHECK(utc_time(4102444799999) == "2099-12-31T23:59:59.999Z");
}

TEST_CASE("junit report: an empty run is a valid empty suite", "[test_report]") {
  const std::string xml = junit_report({}, 0);
  CHECK(xml ==
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
        "<testsuites name=\"cutoff\" tests=\"0\" failures=\"0\">\n"
        "  <testsuite name=\"cutoff\" tests=\"0\" failures=\"0\" errors=\"0\">\n"
        "  </testsuite>\n"
        "</testsuites>\n");
}

TEST_CASE("junit report: one testcase per test, one failure per failed exchange", "[test_report]") {
  TestRegistry tests(TestsConfig{});
  tests.add("passing", record("http://example.test/ok", Outcome::ok(), 200), {}, kNoon);
  tests.add("hung", record("http://example.test/slow", kTimeout, 504),
            "no response header from example.test:80 within 2s", kNoon);
  tests.add("hung", record("http://example.test/fine", Outcome::ok(), 200), {}, kNoon + 5000);
  tests.add("hung", record("http://example.test/down", kRefused, 502), "connection refused",
            kNoon + 6000);
  // A request cutoff refused is the test's own doing: no failure.
  tests.add("bad-request",
            record("http://example.test/", Outcome::failed(ProxyError::http_request_error), 400),
            "Cutoff-Timeout names idle twice", kNoon);
  const std::string xml = junit(tests);
  INFO(xml);

  CHECK(xml.rfind("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n", 0) == 0);
  CHECK_THAT(xml, Catch::Contains("<testsuites name=\"cutoff\" tests=\"3\" failures=\"1\">"));
  CHECK_THAT(
      xml, Catch::Contains("<testsuite name=\"cutoff\" tests=\"3\" failures=\"1\" errors=\"0\">"));
  CHECK(occurrences(xml, "<testcase ") == 3);
  CHECK(occurrences(xml, "</testcase>") == 3);
  CHECK(occurrences(xml, "<failure ") == 2);
  CHECK_THAT(xml,
             Catch::Contains("<testcase classname=\"cutoff\" name=\"passing\" time=\"2.001\">"));
  // From the first exchange's start to the last one's end.
  CHECK_THAT(xml, Catch::Contains("<testcase classname=\"cutoff\" name=\"hung\" time=\"8.001\">"));
  CHECK_THAT(xml, Catch::Contains(
                      "<failure type=\"timeout:response_header_timeout\" message=\"GET "
                      "http://example.test/slow -&gt; 504 after 2001 ms\">no response header from "
                      "example.test:80 within 2s</failure>"));
  CHECK_THAT(xml, Catch::Contains("<failure type=\"error:connection_refused\" message=\"GET "
                                  "http://example.test/down -&gt; 502 after 2001 ms\">connection "
                                  "refused</failure>"));
  CHECK_THAT(xml, Catch::Contains("<system-out>3 exchange(s) through cutoff from "
                                  "2026-12-03T16:04:03.122Z to 2026-12-03T16:04:11.123Z: "
                                  "timeout:response_header_timeout 1 ok 1 "
                                  "error:connection_refused 1</system-out>"));
  CHECK(xml.ends_with("\n  </testsuite>\n</testsuites>\n"));
}

TEST_CASE("junit report: no response is said so", "[test_report]") {
  TestRegistry tests(TestsConfig{});
  tests.add("t", record("example.test:443", kTimeout, 0), {}, kNoon);
  const std::string xml = junit(tests);
  CHECK_THAT(xml, Catch::Contains("message=\"GET example.test:443 -&gt; no response after 2001 "
                                  "ms\"></failure>"));
}

TEST_CASE("junit report: ids, targets and sentences are escaped for XML", "[test_report]") {
  TestRegistry tests(TestsConfig{});
  tests.add("a<b>&\"c\" 'd'", record("http://example.test/?q=<&>\"", kTimeout, 504),
            "said \"<no>\" & left\r\n\x01", kNoon);
  const std::string xml = junit(tests);
  INFO(xml);
  CHECK_THAT(xml, Catch::Contains("name=\"a&lt;b&gt;&amp;&quot;c&quot; 'd'\""));
  CHECK_THAT(xml, Catch::Contains("message=\"GET http://example.test/?q=&lt;&amp;&gt;&quot; -&gt; "
                                  "504 after 2001 ms\""));
  // Bytes XML 1.0 cannot carry at all become '?'; a line feed stays.
  CHECK_THAT(xml, Catch::Contains(">said &quot;&lt;no&gt;&quot; &amp; left?\n?</failure>"));
  CHECK_THAT(xml, !Catch::Contains("a<b"));
}

TEST_CASE("junit report: what was forgotten is said", "[test_report]") {
  TestsConfig limits;
  limits.max_tests = 1;
  limits.max_exchanges_per_test = 2;
  TestRegistry tests(limits);
  tests.add("gone", record("/", kTimeout, 504), {}, kNoon);
  for (int i = 0; i < 5; ++i) tests.add("kept", record("/", Outcome::ok(), 200), {}, kNoon);
  const std::string xml = junit(tests);
  INFO(xml);
  CHECK_THAT(xml, Catch::Contains("tests=\"1\" failures=\"0\""));
  CHECK_THAT(xml, Catch::Contains(
                      "<properties><property name=\"tests_forgotten\" value=\"1\"/></properties>"));
  CHECK_THAT(xml, Catch::Contains("; the 3 oldest are no longer kept ([tests] "
                                  "max_exchanges_per_test)</system-out>"));
  CHECK_THAT(junit_report({}, 0), !Catch::Contains("<properties>"));
}

TEST_CASE("test JSON: one test's exchanges and counts", "[test_report]") {
  TestRegistry tests(TestsConfig{});
  tests.add("t\"1", record("http://example.test/slow", kTimeout, 504), "no \"answer\"", kNoon);
  tests.add("t\"1", record("http://example.test/ok", Outcome::ok(), 200), {}, kNoon);
  std::string json = "before";
  tests.with_test("t\"1", [&](const TestRecord* test) {
    REQUIRE(test != nullptr);
    append_test_json(json, "t\"1", test, "{\"id\":7}");
  });
  INFO(json);
  CHECK(json.rfind("before{\"test\":\"t\\\"1\",", 0) == 0);
  CHECK(json.back() == '\n');
  for (const char* field : {"\"exchanges_total\":2",
                            "\"exchanges_forgotten\":0",
                            "\"failures\":1",
                            "\"outcomes\":{\"timeout:response_header_timeout\":1,\"ok\":1}",
                            "\"started\":\"2026-12-03T16:04:03.122Z\"",
                            "\"method\":\"GET\"",
                            "\"target\":\"http://example.test/slow\"",
                            "\"route\":\"api\"",
                            "\"status\":504",
                            "\"outcome\":\"timeout:response_header_timeout\"",
                            "\"reused\":false",
                            "\"dns_ms\":1",
                            "\"connect_ms\":2",
                            "\"first_byte_ms\":null",
                            "\"first_byte_ms\":3",
                            "\"total_ms\":2001",
                            "\"up_bytes\":7",
                            "\"down_bytes\":99",
                            "\"failure\":\"no \\\"answer\\\"\"",
                            "\"failure\":null}",
                            "\"open\":[{\"id\":7}]}"}) {
    INFO(field);
    CHECK(occurrences(json, field) >= 1);
  }
  CHECK(occurrences(json, "\"started\":") == 2);
  CHECK(occurrences(json, "\"reused\":false") == 2);
  CHECK(occurrences(json, "\"failure\":null") == 1);
}

TEST_CASE("test JSON: a test with only open exchanges so far", "[test_report]") {
  std::string json;
  append_test_json(json, "new", nullptr, "");
  CHECK(json ==
        "{\"test\":\"new\",\"exchanges_total\":0,\"exchanges_forgotten\":0,\"failures\":0,"
        "\"outcomes\":{},\"exchanges\":[],\"open\":[]}\n");
}

TEST_CASE("test list JSON: every id with its counts", "[test_report]") {
  TestRegistry tests(TestsConfig{});
  tests.add("first", record("/", kTimeout, 504), {}, kNoon);
  tests.add("sec<ond>", record("/", Outcome::ok(), 200), {}, kNoon + 1000);
  std::string json;
  tests.with_all([&](const std::list<TestRecord>& all, uint64_t forgotten) {
    append_test_list_json(json, all, forgotten + 4);
  });
  CHECK(json ==
        "{\"tests_forgotten\":4,\"tests\":["
        "{\"test\":\"first\",\"exchanges_total\":1,\"failures\":1,"
        "\"first\":\"2026-12-03T16:04:03.122Z\",\"last\":\"2026-12-03T16:04:05.123Z\"},"
        "{\"test\":\"sec<ond>\",\"exchanges_total\":1,\"failures\":0,"
        "\"first\":\"2026-12-03T16:04:04.122Z\",\"last\":\"2026-12-03T16:04:06.123Z\"}]}\n");
  json.clear();
  append_test_list_json(json, {}, 0);
  CHECK(json == "{\"tests_forgotten\":0,\"tests\":[]}\n");
}

TEST_CASE("test metrics: one series per test and outcome, labels escaped", "[test_report]") {
  TestRegistry tests(TestsConfig{});
  tests.add("plain", record("/", Outcome::ok(), 200), {}, kNoon);
  tests.add("plain", record("/", Outcome::ok(), 200), {}, kNoon);
  tests.add("odd\"\\name", record("/", kTimeout, 504), {}, kNoon);
  std::string text;
  tests.with_all(
      [&](const std::list<TestRecord>& all, uint64_t) { append_test_metrics(text, all); });
  INFO(text);
  CHECK(text.rfind("# HELP cutoff_test_exchanges_total ", 0) == 0);
  CHECK_THAT(text, Catch::Contains("\n# TYPE cutoff_test_exchanges_total counter\n"));
  CHECK_THAT(text, Catch::EndsWith(
                       "cutoff_test_exchanges_total{test=\"plain\",outcome=\"ok\"} 2\n"
                       "cutoff_test_exchanges_total{test=\"odd\\\"\\\\name\",outcome=\"timeout:"
                       "response_header_timeout\"} 1\n"));
}
