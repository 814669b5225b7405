// The Prometheus exposition of the admin endpoint's /metrics: several
// workers added up, cumulative histograms, label escaping.

#include <catch2/catch.hpp>
#include <cmath>
#include <sstream>
#include <string>
#include <vector>

#include "cutoff/metrics.hpp"
#include "cutoff/metrics_text.hpp"
#include "cutoff/version.hpp"

using namespace cutoff;

namespace {

bool has_line(const std::string& text, const std::string& line) {
  std::istringstream in(text);
  for (std::string got; std::getline(in, got);) {
    if (got == line) return true;
  }
  return false;
}

size_t count_prefix(const std::string& text, const std::string& prefix) {
  std::istringstream in(text);
  size_t n = 0;
  for (std::string got; std::getline(in, got);) {
    if (got.rfind(prefix, 0) == 0) ++n;
  }
  return n;
}

std::string render(const std::vector<const Metrics*>& workers) {
  std::string out;
  render_prometheus(out, workers);
  return out;
}

// Two workers that have seen different routes and traffic.
struct TwoWorkers {
  Metrics a, b;
  TwoWorkers() {
    RouteMetrics& a_default = a.route("default");
    a.record_exchange(a_default, 200, 500);      // 0.5 ms: first bucket
    a.record_exchange(a_default, 204, 3000);     // 3 ms: le=0.005
    a.record_exchange(a_default, 504, 5000000);  // 5 s: le=10
    a_default.timeouts[static_cast<size_t>(TimeoutName::connect_timeout)].add();
    RouteMetrics& b_default = b.route("default");
    b.record_exchange(b_default, 200, 1000);      // exactly 1 ms: le=0.001 (bounds are inclusive)
    b.record_exchange(b_default, 0, 20000000);    // 20 s, no status: +Inf only
    b.record_exchange(b.route("api"), 302, 100);  // 0.1 ms
    b_default.timeouts[static_cast<size_t>(TimeoutName::connect_timeout)].add(2);
    b.route("api").timeouts[static_cast<size_t>(TimeoutName::response_header_timeout)].add();
    a.upstream_errors[static_cast<size_t>(ProxyError::connection_refused)].add(3);
    b.upstream_errors[static_cast<size_t>(ProxyError::connection_refused)].add(1);
    b.upstream_errors[static_cast<size_t>(ProxyError::dns_error)].add(1);
    a.client_connections.add(4);
    b.client_connections.add(6);
    a.tunnels.add(1);
    b.upstream_idle.add(7);
    a.bytes_up.add(100);
    b.bytes_up.add(23);
    a.bytes_down.add(1000);
    b.bytes_down.add(2345);
    b.client_connections_refused.add(9);
    a.log_lines_dropped.add(12);
    b.log_lines_dropped.add(30);
    a.accept_pauses.add(2);
    b.accept_pauses.add(1);
  }
};

}  // namespace

TEST_CASE("request counters are summed over workers, per route and status class",
          "[metrics_text]") {
  TwoWorkers w;
  std::string text = render({&w.a, &w.b});
  CHECK(has_line(text,
                 "# HELP cutoff_requests_total Exchanges finished, by route and status "
                 "class (none: no response status)."));
  CHECK(has_line(text, "# TYPE cutoff_requests_total counter"));
  CHECK(has_line(text, "cutoff_requests_total{route=\"default\",code=\"2xx\"} 3"));
  CHECK(has_line(text, "cutoff_requests_total{route=\"default\",code=\"5xx\"} 1"));
  CHECK(has_line(text, "cutoff_requests_total{route=\"default\",code=\"none\"} 1"));
  CHECK(has_line(text, "cutoff_requests_total{route=\"default\",code=\"4xx\"} 0"));
  CHECK(has_line(text, "cutoff_requests_total{route=\"api\",code=\"3xx\"} 1"));
  // Routes come out sorted, whatever order the workers saw them in.
  CHECK(text.find("route=\"api\",code=\"none\"") < text.find("route=\"default\",code=\"none\""));
}

TEST_CASE("the latency histogram is cumulative and +Inf equals _count", "[metrics_text]") {
  TwoWorkers w;
  std::string text = render({&w.a, &w.b});
  CHECK(has_line(text, "# TYPE cutoff_request_duration_seconds histogram"));
  const std::string b = "cutoff_request_duration_seconds_bucket{route=\"default\",le=";
  CHECK(has_line(text, b + "\"0.001\"} 2"));
  CHECK(has_line(text, b + "\"0.0025\"} 2"));
  CHECK(has_line(text, b + "\"0.005\"} 3"));
  CHECK(has_line(text, b + "\"2.5\"} 3"));
  CHECK(has_line(text, b + "\"10\"} 4"));
  CHECK(has_line(text, b + "\"+Inf\"} 5"));
  CHECK(has_line(text, "cutoff_request_duration_seconds_count{route=\"default\"} 5"));
  // 0.5 ms + 3 ms + 5 s + 1 ms + 20 s, in seconds.
  CHECK(has_line(text, "cutoff_request_duration_seconds_sum{route=\"default\"} 25.0045"));
  CHECK(has_line(text, "cutoff_request_duration_seconds_bucket{route=\"api\",le=\"+Inf\"} 1"));
  CHECK(has_line(text, "cutoff_request_duration_seconds_sum{route=\"api\"} 0.0001"));
  // Every bound plus +Inf, for each of the two routes.
  CHECK(count_prefix(text, "cutoff_request_duration_seconds_bucket{") ==
        2 * (kLatencyBuckets.size() + 1));
}

TEST_CASE("timeouts and upstream errors list only the series that happened", "[metrics_text]") {
  TwoWorkers w;
  std::string text = render({&w.a, &w.b});
  CHECK(has_line(text, "# TYPE cutoff_timeouts_total counter"));
  CHECK(has_line(text, "cutoff_timeouts_total{timeout=\"connect_timeout\",route=\"default\"} 3"));
  CHECK(
      has_line(text, "cutoff_timeouts_total{timeout=\"response_header_timeout\",route=\"api\"} 1"));
  CHECK(count_prefix(text, "cutoff_timeouts_total{") == 2);
  CHECK(has_line(text, "# TYPE cutoff_upstream_errors_total counter"));
  CHECK(has_line(text, "cutoff_upstream_errors_total{error=\"connection_refused\"} 4"));
  CHECK(has_line(text, "cutoff_upstream_errors_total{error=\"dns_error\"} 1"));
  CHECK(count_prefix(text, "cutoff_upstream_errors_total{") == 2);
}

TEST_CASE("gauges and byte counters are summed", "[metrics_text]") {
  TwoWorkers w;
  std::string text = render({&w.a, &w.b});
  CHECK(has_line(text, "# TYPE cutoff_client_connections gauge"));
  CHECK(has_line(text, "cutoff_client_connections 10"));
  CHECK(has_line(text, "# TYPE cutoff_tunnels gauge"));
  CHECK(has_line(text, "cutoff_tunnels 1"));
  CHECK(has_line(text, "# TYPE cutoff_upstream_idle_connections gauge"));
  CHECK(has_line(text, "cutoff_upstream_idle_connections 7"));
  CHECK(has_line(text, "# TYPE cutoff_client_connections_refused_total counter"));
  CHECK(has_line(text, "cutoff_client_connections_refused_total 9"));
  CHECK(has_line(text, "# TYPE cutoff_accept_pauses_total counter"));
  CHECK(has_line(text, "cutoff_accept_pauses_total 3"));
  CHECK(has_line(text, "# TYPE cutoff_bytes_total counter"));
  CHECK(has_line(text, "cutoff_bytes_total{direction=\"up\"} 123"));
  CHECK(has_line(text, "cutoff_bytes_total{direction=\"down\"} 3345"));
  CHECK(has_line(text, "# TYPE cutoff_log_lines_dropped_total counter"));
  CHECK(has_line(text, "cutoff_log_lines_dropped_total 42"));
}

TEST_CASE("with no traffic every family still has its HELP and TYPE", "[metrics_text]") {
  Metrics idle;
  std::string text = render({&idle, nullptr});
  for (const char* family :
       {"cutoff_requests_total", "cutoff_request_duration_seconds", "cutoff_timeouts_total",
        "cutoff_upstream_errors_total", "cutoff_client_connections", "cutoff_tunnels",
        "cutoff_upstream_idle_connections", "cutoff_client_connections_refused_total",
        "cutoff_accept_pauses_total", "cutoff_bytes_total", "cutoff_log_lines_dropped_total",
        "cutoff_build_info", "cutoff_exchanges_total", "cutoff_exchanges_in_flight"}) {
    INFO(family);
    CHECK(count_prefix(text, std::string("# HELP ") + family + " ") == 1);
    CHECK(count_prefix(text, std::string("# TYPE ") + family + " ") == 1);
  }
  CHECK(has_line(text, "cutoff_client_connections 0"));
  CHECK(has_line(text, "cutoff_log_lines_dropped_total 0"));
  CHECK(count_prefix(text, "cutoff_requests_total{") == 0);
  CHECK(text.back() == '\n');
}

TEST_CASE("label values are escaped", "[metrics_text]") {
  Metrics m;
  m.record_exchange(m.route("we\"ird\\name\nx"), 200, 10);
  std::string text = render({&m});
  CHECK(has_line(text, "cutoff_requests_total{route=\"we\\\"ird\\\\name\\nx\",code=\"2xx\"} 1"));
  std::string escaped;
  append_label_value(escaped, "a\\b\"c\nd");
  CHECK(escaped == "a\\\\b\\\"c\\nd");
}

TEST_CASE("latency buckets past 1 s bracket the timeouts", "[metrics_text]") {
  CHECK(kLatencyBuckets.back() == 300.0);
  TwoWorkers w;
  std::string text = render({&w.a, &w.b});
  const std::string b = "cutoff_request_duration_seconds_bucket{route=\"default\",le=";
  // The 5 s exchange sits on a bound (inclusive), the 20 s one below 30.
  CHECK(has_line(text, b + "\"5\"} 4"));
  CHECK(has_line(text, b + "\"10\"} 4"));
  CHECK(has_line(text, b + "\"30\"} 5"));
  CHECK(has_line(text, b + "\"60\"} 5"));
  CHECK(has_line(text, b + "\"120\"} 5"));
  CHECK(has_line(text, b + "\"300\"} 5"));
  // Bounds come out in increasing order.
  CHECK(text.find(b + "\"2.5\"}") < text.find(b + "\"5\"}"));
  CHECK(text.find(b + "\"5\"}") < text.find(b + "\"10\"}"));
  CHECK(text.find(b + "\"300\"}") < text.find(b + "\"+Inf\"}"));
}

// Bounds are inclusive: a duration right on one, or a microsecond under it,
// counts in its bucket; a microsecond more counts in the next (+Inf after
// the last).
TEST_CASE("latency buckets: on a bound and a microsecond either side", "[metrics_text]") {
  for (size_t i = 0; i < kLatencyBuckets.size(); ++i) {
    Metrics m;
    RouteMetrics& route = m.route("default");
    auto on = static_cast<uint64_t>(std::llround(kLatencyBuckets[i] * 1e6));
    m.record_exchange(route, 200, on - 1);
    m.record_exchange(route, 200, on);
    m.record_exchange(route, 200, on + 1);
    INFO("bound " << kLatencyBuckets[i]);
    for (size_t b = 0; b < route.latency_buckets.size(); ++b) {
      CHECK(route.latency_buckets[b].get() == (b == i ? 2 : b == i + 1 ? 1 : 0));
    }
  }
}

TEST_CASE("cutoff_build_info carries the version", "[metrics_text]") {
  Metrics idle;
  std::string text = render({&idle});
  CHECK(has_line(text, "# TYPE cutoff_build_info gauge"));
  CHECK(has_line(text, std::string("cutoff_build_info{version=\"") + kVersion + "\"} 1"));
}

TEST_CASE("exchanges are counted by status class and outcome, summed over workers",
          "[metrics_text]") {
  Metrics a, b;
  RouteMetrics& a_default = a.route("default");
  RouteMetrics& b_default = b.route("default");
  a.count_outcome(a_default, 200, Outcome::ok());
  b.count_outcome(b_default, 200, Outcome::ok());
  // A 200 whose body was then cut: 2xx, but not ok.
  a.count_outcome(a_default, 200, Outcome::timed_out(TimeoutName::idle_timeout));
  b.count_outcome(b_default, 200, Outcome::failed(ProxyError::connection_terminated));
  b.count_outcome(b_default, 504, Outcome::timed_out(TimeoutName::response_header_timeout));
  a.count_outcome(a.route("api"), 0, Outcome::client_aborted());
  a.count_outcome(a.route("api"), 0, Outcome::stopped());
  std::string text = render({&a, &b});
  const std::string n = "cutoff_exchanges_total{route=";
  CHECK(has_line(text, "# TYPE cutoff_exchanges_total counter"));
  CHECK(has_line(text, n + "\"default\",code=\"2xx\",outcome=\"ok\"} 2"));
  CHECK(has_line(text, n + "\"default\",code=\"2xx\",outcome=\"timeout:idle_timeout\"} 1"));
  CHECK(has_line(text, n + "\"default\",code=\"2xx\",outcome=\"error:connection_terminated\"} 1"));
  CHECK(has_line(text,
                 n + "\"default\",code=\"5xx\",outcome=\"timeout:response_header_timeout\"} 1"));
  CHECK(has_line(text, n + "\"api\",code=\"none\",outcome=\"client_abort\"} 1"));
  CHECK(has_line(text, n + "\"api\",code=\"none\",outcome=\"stopped\"} 1"));
  // Only the combinations that happened.
  CHECK(count_prefix(text, "cutoff_exchanges_total{") == 6);
}

TEST_CASE("every outcome has a slot of its own", "[metrics_text]") {
  for (size_t slot = 0; slot < kOutcomeSlots; ++slot) {
    CHECK(outcome_slot(outcome_in_slot(slot)) == slot);
  }
  CHECK(outcome_slot(Outcome::timed_out(TimeoutName::drain_timeout)) < kOutcomeSlots);
  CHECK(outcome_slot(Outcome::failed(ProxyError::http_request_error)) < kOutcomeSlots);
  CHECK(outcome_slot(Outcome::stopped()) == kOutcomeSlots - 1);
}

TEST_CASE("exchanges in flight are shown by phase, idle and ended left out", "[metrics_text]") {
  Metrics a, b;
  a.in_phase[static_cast<size_t>(SessionPhase::awaiting_response)].add(2);
  b.in_phase[static_cast<size_t>(SessionPhase::awaiting_response)].add(1);
  b.in_phase[static_cast<size_t>(SessionPhase::tunnelling)].add(1);
  a.in_phase[static_cast<size_t>(SessionPhase::idle)].add(5);
  std::string text = render({&a, &b});
  const std::string n = "cutoff_exchanges_in_flight{phase=";
  CHECK(has_line(text, "# TYPE cutoff_exchanges_in_flight gauge"));
  CHECK(has_line(text, n + "\"awaiting_response\"} 3"));
  CHECK(has_line(text, n + "\"tunnelling\"} 1"));
  CHECK(has_line(text, n + "\"reading_head\"} 0"));
  CHECK(has_line(text, n + "\"client_handshake\"} 0"));
  CHECK(has_line(text, n + "\"upstream_handshake\"} 0"));
  CHECK(count_prefix(text, n) == 10);
  CHECK(count_prefix(text, n + "\"idle\"") == 0);
  CHECK(count_prefix(text, n + "\"ended\"") == 0);
}
