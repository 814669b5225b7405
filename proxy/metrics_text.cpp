#include "cutoff/metrics_text.hpp"

#include <array>
#include <charconv>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <map>
#include <string_view>

#include "cutoff/access_log.hpp"
#include "cutoff/proxy_error.hpp"
#include "cutoff/session_phase.hpp"
#include "cutoff/timeout.hpp"
#include "cutoff/version.hpp"

namespace cutoff {

namespace {

constexpr std::array<std::string_view, kStatusClasses> kStatusClassNames = {"none", "1xx", "2xx",
                                                                            "3xx",  "4xx", "5xx"};

// One route's counters added up over every worker.
struct RouteSum {
  std::array<int64_t, kStatusClasses> requests{};
  std::array<int64_t, kStatusClasses * kOutcomeSlots> outcomes{};  // like RouteMetrics
  std::array<int64_t, kTimeoutNames> timeouts{};
  std::array<int64_t, kLatencyBuckets.size() + 1> buckets{};  // non-cumulative, like RouteMetrics
  int64_t sum_us = 0;
};

struct Totals {
  std::map<std::string, RouteSum, std::less<>> routes;  // sorted: a stable exposition
  std::array<int64_t, kProxyErrors> upstream_errors{};
  int64_t client_connections = 0;
  int64_t client_connections_refused = 0;
  int64_t accept_pauses = 0;
  int64_t tunnels = 0;
  std::array<int64_t, kSessionPhases> in_phase{};
  int64_t upstream_idle = 0;
  int64_t closes_reset = 0;
  int64_t bytes_up = 0;
  int64_t bytes_down = 0;
  int64_t log_lines_dropped = 0;
};

void add_route(RouteSum& sum, const RouteMetrics& route) {
  for (size_t i = 0; i < sum.requests.size(); ++i)
    sum.requests[i] += route.requests_by_class[i].get();
  for (size_t i = 0; i < sum.outcomes.size(); ++i) sum.outcomes[i] += route.outcomes[i].get();
  for (size_t i = 0; i < sum.timeouts.size(); ++i) sum.timeouts[i] += route.timeouts[i].get();
  for (size_t i = 0; i < sum.buckets.size(); ++i) sum.buckets[i] += route.latency_buckets[i].get();
  sum.sum_us += route.latency_sum_us.get();
}

Totals add_up(const std::vector<const Metrics*>& workers) {
  Totals totals;
  for (const Metrics* metrics : workers) {
    if (metrics == nullptr) continue;
    metrics->for_each_route([&](std::string_view name, const RouteMetrics& route) {
      auto it = totals.routes.find(name);
      if (it == totals.routes.end())
        it = totals.routes.emplace(std::string(name), RouteSum{}).first;
      add_route(it->second, route);
    });
    for (size_t i = 0; i < totals.upstream_errors.size(); ++i) {
      totals.upstream_errors[i] += metrics->upstream_errors[i].get();
    }
    totals.client_connections += metrics->client_connections.get();
    totals.client_connections_refused += metrics->client_connections_refused.get();
    totals.accept_pauses += metrics->accept_pauses.get();
    totals.tunnels += metrics->tunnels.get();
    for (size_t i = 0; i < totals.in_phase.size(); ++i) {
      totals.in_phase[i] += metrics->in_phase[i].get();
    }
    totals.upstream_idle += metrics->upstream_idle.get();
    totals.closes_reset += metrics->closes_reset.get();
    totals.bytes_up += metrics->bytes_up.get();
    totals.bytes_down += metrics->bytes_down.get();
    totals.log_lines_dropped += metrics->log_lines_dropped.get();
  }
  return totals;
}

void append_int(std::string& out, int64_t value) {
  char text[24];
  auto end = std::to_chars(text, text + sizeof text, value).ptr;
  out.append(text, end);
}

// The shortest plain decimal that reads back as the same double ("0.0025",
// "1", "10"; never "1e-04"), as Prometheus' own clients print bucket bounds.
std::string_view format_double(char (&text)[64], double value) {
  auto end = std::to_chars(text, text + sizeof text, value, std::chars_format::fixed).ptr;
  return std::string_view(text, static_cast<size_t>(end - text));
}

void append_family(std::string& out, std::string_view name, std::string_view type,
                   std::string_view help) {
  out.append("# HELP ").append(name).append(" ").append(help).append("\n");
  out.append("# TYPE ").append(name).append(" ").append(type).append("\n");
}

// A label list such as {route="api",code="2xx"}; `labels` alternate name and
// value.
void append_labels(std::string& out, std::initializer_list<std::string_view> labels) {
  out.push_back('{');
  bool name = true;
  for (std::string_view part : labels) {
    if (name) {
      if (out.back() != '{') out.push_back(',');
      out.append(part).append("=\"");
    } else {
      append_label_value(out, part);
      out.push_back('"');
    }
    name = !name;
  }
  out.push_back('}');
}

void append_sample(std::string& out, std::string_view name,
                   std::initializer_list<std::string_view> labels, int64_t value) {
  out.append(name);
  if (labels.size() != 0) append_labels(out, labels);
  out.push_back(' ');
  append_int(out, value);
  out.push_back('\n');
}

void render_requests(std::string& out, const Totals& totals) {
  constexpr std::string_view kName = "cutoff_requests_total";
  append_family(out, kName, "counter",
                "Exchanges finished, by route and status class (none: no response status).");
  for (const auto& [route, sum] : totals.routes) {
    for (size_t i = 0; i < kStatusClassNames.size(); ++i) {
      append_sample(out, kName, {"route", route, "code", kStatusClassNames[i]}, sum.requests[i]);
    }
  }
}

// cutoff_requests_total split further by how each exchange ended, with the
// access log's outcome tokens; only the combinations that happened.
void render_outcomes(std::string& out, const Totals& totals) {
  constexpr std::string_view kName = "cutoff_exchanges_total";
  append_family(out, kName, "counter",
                "Exchanges finished, by route, status class and outcome (as the access log "
                "names it: ok, timeout:NAME, error:TYPE, client_abort, stopped).");
  for (const auto& [route, sum] : totals.routes) {
    for (size_t code = 0; code < kStatusClasses; ++code) {
      for (size_t slot = 0; slot < kOutcomeSlots; ++slot) {
        int64_t count = sum.outcomes[code * kOutcomeSlots + slot];
        if (count == 0) continue;
        std::string outcome = outcome_token(outcome_in_slot(slot));
        append_sample(out, kName,
                      {"route", route, "code", kStatusClassNames[code], "outcome", outcome}, count);
      }
    }
  }
}

void render_durations(std::string& out, const Totals& totals) {
  append_family(out, "cutoff_request_duration_seconds", "histogram",
                "Time from request head to the end of the exchange, by route.");
  for (const auto& [route, sum] : totals.routes) {
    // The buckets are read one by one while workers keep counting, so
    // _count is taken from the buckets themselves: +Inf and _count then
    // always agree, as Prometheus requires.
    int64_t cumulative = 0;
    char text[64];
    for (size_t i = 0; i < sum.buckets.size(); ++i) {
      cumulative += sum.buckets[i];
      std::string_view le =
          i < kLatencyBuckets.size() ? format_double(text, kLatencyBuckets[i]) : "+Inf";
      append_sample(out, "cutoff_request_duration_seconds_bucket", {"route", route, "le", le},
                    cumulative);
    }
    out.append("cutoff_request_duration_seconds_sum");
    append_labels(out, {"route", route});
    out.push_back(' ');
    out.append(format_double(text, static_cast<double>(sum.sum_us) / 1e6));
    out.push_back('\n');
    append_sample(out, "cutoff_request_duration_seconds_count", {"route", route}, cumulative);
  }
}

void render_timeouts(std::string& out, const Totals& totals) {
  constexpr std::string_view kName = "cutoff_timeouts_total";
  append_family(out, kName, "counter", "Deadlines that fired, by timeout name and route.");
  for (const auto& [route, sum] : totals.routes) {
    for (size_t i = 0; i < sum.timeouts.size(); ++i) {
      if (sum.timeouts[i] == 0) continue;
      std::string_view timeout = timeout_token(static_cast<TimeoutName>(i));
      append_sample(out, kName, {"timeout", timeout, "route", route}, sum.timeouts[i]);
    }
  }
}

void render_upstream_errors(std::string& out, const Totals& totals) {
  constexpr std::string_view kName = "cutoff_upstream_errors_total";
  append_family(out, kName, "counter",
                "Failed upstream exchanges, by Proxy-Status error type (RFC 9209).");
  for (size_t i = 0; i < totals.upstream_errors.size(); ++i) {
    if (totals.upstream_errors[i] == 0) continue;
    std::string_view error = error_token(static_cast<ProxyError>(i));
    append_sample(out, kName, {"error", error}, totals.upstream_errors[i]);
  }
}

void render_single(std::string& out, std::string_view name, std::string_view type,
                   std::string_view help, int64_t value) {
  append_family(out, name, type, help);
  append_sample(out, name, {}, value);
}

void render_connections(std::string& out, const Totals& totals) {
  render_single(out, "cutoff_client_connections", "gauge", "Open client connections.",
                totals.client_connections);
  render_single(out, "cutoff_client_connections_refused_total", "counter",
                "Client connections closed at once because max_client_connections was reached.",
                totals.client_connections_refused);
  render_single(out, "cutoff_accept_pauses_total", "counter",
                "Times a proxy listener stopped accepting for a moment because accept failed "
                "(out of file descriptors, usually).",
                totals.accept_pauses);
  render_single(out, "cutoff_tunnels", "gauge", "Open CONNECT and Upgrade tunnels.",
                totals.tunnels);
  constexpr std::string_view kInFlight = "cutoff_exchanges_in_flight";
  append_family(out, kInFlight, "gauge",
                "Exchanges and tunnels in progress, by the phase they are in (as /connections "
                "names it).");
  for (size_t i = 0; i < kSessionPhases; ++i) {
    auto phase = static_cast<SessionPhase>(i);
    if (!in_exchange(phase)) continue;
    append_sample(out, kInFlight, {"phase", phase_name(phase)}, totals.in_phase[i]);
  }
  render_single(out, "cutoff_upstream_idle_connections", "gauge",
                "Idle upstream connections kept in the pools for reuse.", totals.upstream_idle);
  render_single(out, "cutoff_closes_reset_total", "counter",
                "Graceful closes ended by an RST: the peer stopped reading what was queued, "
                "or did not close within linger_timeout.",
                totals.closes_reset);
}

void render_bytes(std::string& out, const Totals& totals) {
  constexpr std::string_view kName = "cutoff_bytes_total";
  append_family(out, kName, "counter",
                "Bytes sent, heads included: up to upstreams, down to clients.");
  append_sample(out, kName, {"direction", "up"}, totals.bytes_up);
  append_sample(out, kName, {"direction", "down"}, totals.bytes_down);
}

void render_logs(std::string& out, const Totals& totals) {
  render_single(out, "cutoff_log_lines_dropped_total", "counter",
                "Log lines (access log and diagnostics) dropped whole because their "
                "destination did not take them.",
                totals.log_lines_dropped);
}

}  // namespace

void append_label_value(std::string& out, std::string_view value) {
  for (char c : value) {
    switch (c) {
      case '\\':
        out.append("\\\\");
        break;
      case '"':
        out.append("\\\"");
        break;
      case '\n':
        out.append("\\n");
        break;
      default:
        out.push_back(c);
    }
  }
}

void render_prometheus(std::string& out, const std::vector<const Metrics*>& workers) {
  Totals totals = add_up(workers);
  append_family(out, "cutoff_build_info", "gauge", "Always 1; the version running in a label.");
  append_sample(out, "cutoff_build_info", {"version", kVersion}, 1);
  render_requests(out, totals);
  render_outcomes(out, totals);
  render_durations(out, totals);
  render_timeouts(out, totals);
  render_upstream_errors(out, totals);
  render_connections(out, totals);
  render_bytes(out, totals);
  render_logs(out, totals);
}

}  // namespace cutoff
