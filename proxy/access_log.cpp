#include "cutoff/access_log.hpp"

#include <spdlog/spdlog.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <iterator>

#include "cutoff/log_output.hpp"

namespace cutoff {

namespace {

// A worker's lines wait in its buffer while the destination is full; past
// this many bytes, new lines are dropped. It absorbs a reader that falls
// behind for a moment, not one that has stopped.
constexpr size_t kBufferLimit = 128 * 1024;
// One write(2) per this many bytes of lines, besides the periodic flush.
constexpr size_t kWriteAt = 32 * 1024;
constexpr int64_t kDropWarningIntervalMs = 60 * 1000;

void append_ms(std::string& out, int64_t ms) {
  if (ms == kNoTime) {
    out.push_back('-');
  } else {
    fmt::format_to(std::back_inserter(out), "{}", ms);
  }
}

// The characters of a JSON string, without its quotes.
void append_json_chars(std::string& out, std::string_view s) {
  for (char c : s) {
    if (c == '"' || c == '\\') {
      out.push_back('\\');
      out.push_back(c);
    } else if (static_cast<unsigned char>(c) < 0x20) {
      fmt::format_to(std::back_inserter(out), "\\u{:04x}", static_cast<unsigned>(c));
    } else {
      out.push_back(c);
    }
  }
}

}  // namespace

void append_json_string(std::string& out, std::string_view s) {
  out.push_back('"');
  append_json_chars(out, s);
  out.push_back('"');
}

void append_json_target(std::string& out, const ShownTarget& target) {
  out.push_back('"');
  target.write(out, append_json_chars);
  out.push_back('"');
}

std::string outcome_token(const Outcome& outcome) {
  switch (outcome.kind) {
    case Outcome::Kind::ok:
      return "ok";
    case Outcome::Kind::timeout:
      return "timeout:" + std::string(timeout_token(outcome.timeout));
    case Outcome::Kind::error:
      return "error:" + std::string(error_token(outcome.error));
    case Outcome::Kind::client_abort:
      return "client_abort";
    case Outcome::Kind::stopped:
      return "stopped";
  }
  return "unknown";
}

// The client chose these bytes: a quote, a backslash, a control or non-ASCII
// byte is written as %XX, so that a target cannot end its field early or
// forge the ones after it.
void append_text_field(std::string& out, std::string_view s) {
  constexpr char kHex[] = "0123456789ABCDEF";
  static constexpr auto kPlain = [] {
    std::array<bool, 256> plain{};
    for (int c = 0x21; c < 0x7F; ++c) plain[c] = c != '"' && c != '\\';
    return plain;
  }();
  while (!s.empty()) {
    size_t run = 0;
    while (run < s.size() && kPlain[static_cast<unsigned char>(s[run])]) ++run;
    out.append(s.substr(0, run));
    if (run == s.size()) return;
    unsigned char c = static_cast<unsigned char>(s[run]);
    char escaped[3] = {'%', kHex[c >> 4], kHex[c & 15]};
    out.append(escaped, 3);
    s.remove_prefix(run + 1);
  }
}

void format_access_text(std::string& out, const ExchangeRecord& r) {
  auto it = std::back_inserter(out);
  // A request refused before its line was parsed still gets three fields.
  std::string_view method = r.method.empty() ? "-" : r.method;
  fmt::format_to(it, "{} \"{} ", r.client, method);
  if (r.target.empty()) {
    out.push_back('-');
  } else {
    r.target.write(out, append_text_field);
  }
  fmt::format_to(it, " HTTP/{}.{}\" route={} status=", r.http_major, r.http_minor, r.route);
  if (r.status == 0) {
    out.push_back('-');
  } else {
    fmt::format_to(it, "{}", r.status);
  }
  fmt::format_to(it, " up_bytes={} down_bytes={} dns_ms=", r.up_bytes, r.down_bytes);
  append_ms(out, r.dns_ms);
  out.append(" connect_ms=");
  append_ms(out, r.connect_ms);
  out.append(" first_byte_ms=");
  append_ms(out, r.first_byte_ms);
  fmt::format_to(it, " total_ms={} reused={} outcome={}", r.total_ms, r.reused ? 1 : 0,
                 outcome_token(r.outcome));
  // Only tunnels that carried a TLS server name have one; the name holds
  // host name characters only (ClientHelloReader), nothing to escape.
  if (!r.sni.empty()) out.append(" sni=").append(r.sni);
}

void format_access_json(std::string& out, const ExchangeRecord& r) {
  auto it = std::back_inserter(out);
  out.append("{\"client\":");
  append_json_string(out, r.client);
  out.append(",\"method\":");
  append_json_string(out, r.method);
  out.append(",\"target\":");
  append_json_target(out, r.target);
  fmt::format_to(it, ",\"version\":\"{}.{}\",\"route\":", r.http_major, r.http_minor);
  append_json_string(out, r.route);
  out.append(",\"status\":");
  if (r.status == 0) {
    out.append("null");
  } else {
    fmt::format_to(it, "{}", r.status);
  }
  fmt::format_to(it, ",\"up_bytes\":{},\"down_bytes\":{}", r.up_bytes, r.down_bytes);
  auto ms = [&](const char* name, int64_t v) {
    fmt::format_to(it, ",\"{}\":", name);
    if (v == kNoTime) {
      out.append("null");
    } else {
      fmt::format_to(it, "{}", v);
    }
  };
  ms("dns_ms", r.dns_ms);
  ms("connect_ms", r.connect_ms);
  ms("first_byte_ms", r.first_byte_ms);
  ms("total_ms", r.total_ms);
  fmt::format_to(it, ",\"reused\":{},\"outcome\":\"{}\",\"sni\":", r.reused ? "true" : "false",
                 outcome_token(r.outcome));
  if (r.sni.empty()) {
    out.append("null}");
  } else {
    append_json_string(out, r.sni);
    out.push_back('}');
  }
}

AccessLog::AccessLog(const AccessLogConfig& config)
    : format_(config.format), path_(config.path), drops_(kDropWarningIntervalMs) {
  if (path_ == "-") {
    std::string note;
    output_ = FdOutput::inherited(STDOUT_FILENO, &note);
    if (!note.empty()) spdlog::warn("access log: {}", note);
    return;
  }
  std::string error;
  output_ = FdOutput::open_file(path_, &error);
  if (!output_) throw spdlog::spdlog_ex("cannot open access log " + path_ + ": " + error);
}

std::shared_ptr<LineOutput> AccessLog::reopen() {
  if (path_ == "-") return nullptr;
  std::string error;
  std::shared_ptr<LineOutput> output = FdOutput::open_file(path_, &error);
  if (!output) {
    spdlog::error("cannot reopen access log {}: {}", path_, error);
    return nullptr;
  }
  output_ = output;
  return output;
}

AccessLogWriter::AccessLogWriter(AccessLog& log, Counter* dropped)
    : log_(log),
      dropped_(dropped),
      // JSON lines get their time as the first field: the pattern opens the
      // object and write() passes the record without its own opening brace.
      formatter_(log.format() == LogFormat::json ? "{\"time\":\"%Y-%m-%dT%H:%M:%S.%e%z\",%v"
                                                 : "%Y-%m-%dT%H:%M:%S.%e%z %v",
                 spdlog::pattern_time_type::local, "\n"),
      buffer_(log.output(), kBufferLimit, kWriteAt) {}

AccessLogWriter::~AccessLogWriter() {
  flush();
}

void AccessLogWriter::write(const ExchangeRecord& record) {
  line_.clear();
  if (log_.format() == LogFormat::json) {
    format_access_json(line_, record);
  } else {
    format_access_text(line_, record);
  }
  std::string_view text(line_);
  if (log_.format() == LogFormat::json) text.remove_prefix(1);
  spdlog::details::log_msg msg("access", spdlog::level::info,
                               spdlog::string_view_t(text.data(), text.size()));
  formatted_.clear();
  formatter_.format(msg, formatted_);
  buffer_.append(std::string_view(formatted_.data(), formatted_.size()));
  count_dropped();
}

void AccessLogWriter::flush() {
  buffer_.flush();
  count_dropped();
  int64_t now_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                       std::chrono::steady_clock::now().time_since_epoch())
                       .count();
  if (int64_t lines = log_.drops().take_due(now_ms)) {
    spdlog::warn(
        "access log: dropped {} line(s) since the last warning: the destination does not take "
        "them (cutoff_log_lines_dropped_total)",
        lines);
  }
}

void AccessLogWriter::set_output(std::shared_ptr<LineOutput> output) {
  buffer_.set_output(std::move(output));
  count_dropped();
}

void AccessLogWriter::count_dropped() {
  int64_t lines = buffer_.take_dropped();
  if (lines == 0) return;
  dropped_->add(lines);
  log_.drops().add(lines);
}

}  // namespace cutoff
