// What a session tells the outside about itself: the access-log line and
// metrics of each exchange, its entry in /connections, Server-Timing.

#include <fmt/format.h>

#include <chrono>

#include "cutoff/access_log.hpp"
#include "cutoff/session.hpp"
#include "cutoff/socket_address.hpp"
#include "cutoff/worker.hpp"

namespace cutoff {

// "Server-Timing: dns;dur=1, connect;dur=2, first_byte;dur=5" with the
// phases this exchange went through, in milliseconds.
std::string_view Session::server_timing(char* buf, size_t size) const {
  auto out = fmt::format_to_n(buf, size, "Server-Timing: ");
  const char* sep = "";
  auto add = [&](const char* name, int64_t ms) {
    if (ms == kNoTime) return;
    out = fmt::format_to_n(out.out, size - (out.out - buf), "{}{};dur={}", sep, name, ms);
    sep = ", ";
  };
  add("dns", ex_->record.dns_ms);
  add("connect", ex_->record.connect_ms);
  add("first_byte", ex_->record.first_byte_ms);
  out = fmt::format_to_n(out.out, size - (out.out - buf), "\r\n");
  return std::string_view(buf, static_cast<size_t>(out.out - buf));
}

void Session::log_exchange() {
  if (ex_->logged) return;
  ex_->logged = true;
  if (ex_->record.method.empty()) record_request_line();
  ex_->record.total_ms = since(ex_->started_at);
  worker_.access_log().write(ex_->record);
  count_exchange();
  if (!ex_->test_id.empty() && worker_.tests() != nullptr) {
    auto now = std::chrono::system_clock::now().time_since_epoch();
    worker_.tests()->add(ex_->test_id, ex_->record, ex_->failure,
                         std::chrono::duration_cast<std::chrono::milliseconds>(now).count());
  }
}

// A head that ended before it was whole (a timeout, a FIN, a bad field): when
// its start line had arrived, the access log still names the request, which
// is what its reader looks for.
void Session::record_request_line() {
  const MessageHead& head = ex_->request_parser.head();
  if (head.method().empty()) return;
  ex_->record.method = head.method();
  ex_->record.target = show_target(head.target(), config().log_query);
  ex_->record.http_major = head.http_major();
  ex_->record.http_minor = head.http_minor();
}

// The exchange's contribution to /metrics.
void Session::count_exchange() {
  Metrics& metrics = worker_.metrics();
  RouteMetrics& route = metrics.route(ex_->record.route);
  metrics.record_exchange(route, ex_->record.status, (uv_hrtime() - ex_->started_hr) / 1000);
  metrics.count_outcome(route, ex_->record.status, ex_->record.outcome);
  metrics.bytes_up.add(static_cast<int64_t>(ex_->record.up_bytes));
  metrics.bytes_down.add(static_cast<int64_t>(ex_->record.down_bytes));
  const Outcome& outcome = ex_->record.outcome;
  if (outcome.kind == Outcome::Kind::timeout) {
    route.timeouts[static_cast<size_t>(outcome.timeout)].add();
  }
  if (outcome.kind == Outcome::Kind::error && outcome.error != ProxyError::http_request_error &&
      outcome.error != ProxyError::http_request_denied) {
    metrics.upstream_errors[static_cast<size_t>(outcome.error)].add();
  }
  if (outcome.kind == Outcome::Kind::timeout && (outcome.timeout == TimeoutName::dns_timeout ||
                                                 outcome.timeout == TimeoutName::connect_timeout)) {
    metrics
        .upstream_errors[static_cast<size_t>(outcome.timeout == TimeoutName::dns_timeout
                                                 ? ProxyError::dns_timeout
                                                 : ProxyError::connection_timeout)]
        .add();
  }
}

void Session::describe(std::string& out, int worker_index, uint64_t now) const {
  auto it = std::back_inserter(out);
  bool in_exchange = ex_ && phase_ != Phase::idle;
  char client[kAddressTextSize];
  format_address(reinterpret_cast<const sockaddr*>(&peer_), client, sizeof client);
  fmt::format_to(it, "{{\"id\":{},\"worker\":{},\"client\":\"{}\",\"phase\":\"{}\"", id_,
                 worker_index, client, phase_name(phase_));
  if (in_exchange) {
    out.append(",\"method\":");
    append_json_string(out, ex_->record.method);
    out.append(",\"target\":");
    append_json_target(out, ex_->record.target);
    out.append(",\"route\":");
    append_json_string(out, ex_->record.route);
    if (!ex_->record.sni.empty()) {
      out.append(",\"sni\":");
      append_json_string(out, ex_->record.sni);
    }
    if (!ex_->test_id.empty()) {
      out.append(",\"test\":");
      append_json_string(out, ex_->test_id);
    }
  }
  // An idle connection's deadline is its place in the keep-alive queue.
  uint64_t left = 0;
  TimeoutName due = TimeoutName::client_keepalive_timeout;
  if (phase_ == Phase::idle) {
    uint64_t at = worker_.keep_alive_expiry(*this);
    left = at > now ? at - now : 0;
  } else if (ex_) {
    left = deadline().remaining();
    due = deadline().due_name();
  }
  fmt::format_to(it,
                 ",\"age_ms\":{},\"phase_ms\":{},\"deadline\":\"{}\",\"deadline_left_ms\":{},"
                 "\"up_bytes\":{},\"down_bytes\":{}}}",
                 now - (in_exchange ? ex_->started_at : accepted_at_), now - phase_started_at_,
                 timeout_token(due), left == DeadlinePlan::kNever ? 0 : left,
                 in_exchange ? ex_->record.up_bytes : 0, in_exchange ? ex_->record.down_bytes : 0);
}

}  // namespace cutoff
