#include "cutoff/test_report.hpp"

#include <fmt/format.h>

#include <ctime>

#include "cutoff/access_log.hpp"
#include "cutoff/metrics_text.hpp"

namespace cutoff {
namespace {

void append_json_ms(std::string& out, std::string_view field, int64_t ms) {
  out.append(field);
  out.append(ms == kNoTime ? "null" : std::to_string(ms));
}

void append_outcomes_json(std::string& out, const TestRecord& test) {
  out.append("{");
  for (size_t i = 0; i < test.outcomes.size(); ++i) {
    if (i > 0) out.push_back(',');
    append_json_string(out, test.outcomes[i].first);
    fmt::format_to(std::back_inserter(out), ":{}", test.outcomes[i].second);
  }
  out.append("}");
}

void append_exchange_json(std::string& out, const TestExchange& e) {
  out.append("{\"started\":\"").append(utc_time(e.started_unix_ms)).append("\",\"method\":");
  append_json_string(out, e.method());
  out.append(",\"target\":");
  append_json_string(out, e.target());
  out.append(",\"route\":");
  append_json_string(out, e.route());
  out.append(",\"status\":").append(e.status == 0 ? "null" : std::to_string(e.status));
  out.append(",\"outcome\":");
  append_json_string(out, outcome_token(e.outcome));
  out.append(e.reused ? ",\"reused\":true" : ",\"reused\":false");
  append_json_ms(out, ",\"dns_ms\":", e.dns_ms);
  append_json_ms(out, ",\"connect_ms\":", e.connect_ms);
  append_json_ms(out, ",\"first_byte_ms\":", e.first_byte_ms);
  append_json_ms(out, ",\"total_ms\":", e.total_ms);
  fmt::format_to(std::back_inserter(out),
                 ",\"up_bytes\":{},\"down_bytes\":{},\"failure\":", e.up_bytes, e.down_bytes);
  if (e.failure().empty()) {
    out.append("null}");
  } else {
    append_json_string(out, e.failure());
    out.push_back('}');
  }
}

// Text as XML character data or an attribute value.
void append_xml(std::string& out, std::string_view text) {
  for (char c : text) {
    switch (c) {
      case '<':
        out.append("&lt;");
        break;
      case '>':
        out.append("&gt;");
        break;
      case '&':
        out.append("&amp;");
        break;
      case '"':
        out.append("&quot;");
        break;
      default:
        // Test ids and targets are printable ASCII; a failure sentence may
        // quote a byte XML 1.0 cannot carry at all.
        out.push_back(static_cast<unsigned char>(c) < 0x20 && c != '\n' && c != '\t' ? '?' : c);
    }
  }
}

std::string seconds(int64_t ms) {
  return fmt::format("{:.3f}", static_cast<double>(std::max<int64_t>(ms, 0)) / 1000.0);
}

// "GET http://example.com/ -> 504 after 2001 ms: <why>"
std::string failure_message(const TestExchange& e) {
  return fmt::format("{} {} -> {} after {} ms", e.method(), e.target(),
                     e.status == 0 ? "no response" : std::to_string(e.status), e.total_ms);
}

void append_testcase(std::string& out, const TestRecord& test) {
  out.append("    <testcase classname=\"cutoff\" name=\"");
  append_xml(out, test.id);
  out.append("\" time=\"").append(seconds(test.last_unix_ms - test.first_unix_ms)).append("\">\n");
  for (const TestExchange& e : test.kept) {
    if (!e.failed()) continue;
    out.append("      <failure type=\"");
    append_xml(out, outcome_token(e.outcome));
    out.append("\" message=\"");
    append_xml(out, failure_message(e));
    out.append("\">");
    append_xml(out, e.failure());
    out.append("</failure>\n");
  }
  out.append("      <system-out>");
  std::string summary = fmt::format("{} exchange(s) through cutoff from {} to {}:", test.exchanges,
                                    utc_time(test.first_unix_ms), utc_time(test.last_unix_ms));
  for (const auto& [outcome, count] : test.outcomes)
    summary += fmt::format(" {} {}", outcome, count);
  if (test.forgotten > 0) {
    summary += fmt::format("; the {} oldest are no longer kept ([tests] max_exchanges_per_test)",
                           test.forgotten);
  }
  append_xml(out, summary);
  out.append("</system-out>\n    </testcase>\n");
}

}  // namespace

std::string utc_time(int64_t unix_ms) {
  std::time_t seconds = static_cast<std::time_t>(unix_ms / 1000);
  std::tm tm{};
  gmtime_r(&seconds, &tm);
  return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z", tm.tm_year + 1900, tm.tm_mon + 1,
                     tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, unix_ms % 1000);
}

void append_test_json(std::string& out, std::string_view id, const TestRecord* test,
                      std::string_view open) {
  out.append("{\"test\":");
  append_json_string(out, id);
  if (test == nullptr) {
    out.append(
        ",\"exchanges_total\":0,\"exchanges_forgotten\":0,\"failures\":0,\"outcomes\":{},"
        "\"exchanges\":[]");
  } else {
    fmt::format_to(std::back_inserter(out),
                   ",\"exchanges_total\":{},\"exchanges_forgotten\":{},\"failures\":{},"
                   "\"outcomes\":",
                   test->exchanges, test->forgotten, test->failures);
    append_outcomes_json(out, *test);
    out.append(",\"exchanges\":[");
    for (size_t i = 0; i < test->kept.size(); ++i) {
      if (i > 0) out.push_back(',');
      append_exchange_json(out, test->kept[i]);
    }
    out.append("]");
  }
  out.append(",\"open\":[").append(open).append("]}\n");
}

void append_test_list_json(std::string& out, const std::list<TestRecord>& tests,
                           uint64_t tests_forgotten) {
  fmt::format_to(std::back_inserter(out), "{{\"tests_forgotten\":{},\"tests\":[", tests_forgotten);
  bool first = true;
  for (const TestRecord& test : tests) {
    if (!first) out.push_back(',');
    first = false;
    out.append("{\"test\":");
    append_json_string(out, test.id);
    fmt::format_to(std::back_inserter(out),
                   ",\"exchanges_total\":{},\"failures\":{},\"first\":\"{}\",\"last\":\"{}\"}}",
                   test.exchanges, test.failures, utc_time(test.first_unix_ms),
                   utc_time(test.last_unix_ms));
  }
  out.append("]}\n");
}

std::string junit_report(const std::list<TestRecord>& tests, uint64_t tests_forgotten) {
  size_t failing = 0;
  for (const TestRecord& test : tests) failing += test.failures > 0 ? 1 : 0;
  std::string out = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n";
  out += fmt::format("<testsuites name=\"cutoff\" tests=\"{}\" failures=\"{}\">\n", tests.size(),
                     failing);
  out += fmt::format("  <testsuite name=\"cutoff\" tests=\"{}\" failures=\"{}\" errors=\"0\">\n",
                     tests.size(), failing);
  if (tests_forgotten > 0) {
    out += fmt::format(
        "    <properties><property name=\"tests_forgotten\" value=\"{}\"/></properties>\n",
        tests_forgotten);
  }
  for (const TestRecord& test : tests) append_testcase(out, test);
  out += "  </testsuite>\n</testsuites>\n";
  return out;
}

void append_test_metrics(std::string& out, const std::list<TestRecord>& tests) {
  constexpr std::string_view kName = "cutoff_test_exchanges_total";
  out.append("# HELP ").append(kName).append(
      " Exchanges finished per test id ([tests] metrics_label) and outcome; tests forgotten "
      "by [tests] max_tests leave the series.\n");
  out.append("# TYPE ").append(kName).append(" counter\n");
  for (const TestRecord& test : tests) {
    for (const auto& [outcome, count] : test.outcomes) {
      out.append(kName).append("{test=\"");
      append_label_value(out, test.id);
      out.append("\",outcome=\"").append(outcome).append("\"} ");
      out.append(std::to_string(count)).push_back('\n');
    }
  }
}

}  // namespace cutoff
