#include "cutoff/access_log.hpp"

#include <fcntl.h>
#include <spdlog/sinks/base_sink.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <iterator>
#include <mutex>

namespace cutoff {

// Collects formatted lines and writes them in one write(2) when the buffer
// fills or on flush (periodic, and at exit).
class BufferedFdSink final : public spdlog::sinks::base_sink<std::mutex> {
 public:
  BufferedFdSink(int fd, bool owned) : fd_(fd), owned_(owned) {}
  // Writes what is buffered to the old descriptor, then switches to `fd`.
  void replace_fd(int fd) {
    std::lock_guard<std::mutex> lock(mutex_);
    flush_();
    if (owned_) ::close(fd_);
    fd_ = fd;
    owned_ = true;
  }
  ~BufferedFdSink() override {
    std::lock_guard<std::mutex> lock(mutex_);
    flush_();
    if (owned_) ::close(fd_);
  }

 protected:
  void sink_it_(const spdlog::details::log_msg& msg) override {
    formatter_->format(msg, buffer_);
    if (buffer_.size() >= kFlushAt) flush_();
  }
  void flush_() override {
    const char* p = buffer_.data();
    size_t left = buffer_.size();
    while (left > 0) {
      ssize_t n = ::write(fd_, p, left);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;  // a log destination that fails drops lines, never blocks the proxy
      p += n;
      left -= static_cast<size_t>(n);
    }
    buffer_.clear();
  }

 private:
  static constexpr size_t kFlushAt = 32 * 1024;
  int fd_;
  bool owned_;
  spdlog::memory_buf_t buffer_;
};

namespace {

void append_ms(std::string& out, int64_t ms) {
  if (ms == kNoTime) {
    out.push_back('-');
  } else {
    fmt::format_to(std::back_inserter(out), "{}", ms);
  }
}

}  // namespace

void append_json_string(std::string& out, std::string_view s) {
  out.push_back('"');
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
  append_text_field(out, r.target.empty() ? "-" : r.target);
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
}

void format_access_json(std::string& out, const ExchangeRecord& r) {
  auto it = std::back_inserter(out);
  out.append("{\"client\":");
  append_json_string(out, r.client);
  out.append(",\"method\":");
  append_json_string(out, r.method);
  out.append(",\"target\":");
  append_json_string(out, r.target);
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
  fmt::format_to(it, ",\"reused\":{},\"outcome\":\"{}\"}}", r.reused ? "true" : "false",
                 outcome_token(r.outcome));
}

AccessLog::AccessLog(const AccessLogConfig& config) : format_(config.format), path_(config.path) {
  int fd = STDOUT_FILENO;
  bool owned = false;
  if (config.path != "-") {
    fd = ::open(config.path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) {
      throw spdlog::spdlog_ex("cannot open access log " + config.path + ": " +
                              std::strerror(errno));
    }
    owned = true;
  }
  sink_ = std::make_shared<BufferedFdSink>(fd, owned);
  logger_ = std::make_shared<spdlog::logger>("access", sink_);
  // JSON lines get their time as the first field: the pattern opens the
  // object and write() passes the record without its own opening brace.
  logger_->set_pattern(format_ == LogFormat::json ? "{\"time\":\"%Y-%m-%dT%H:%M:%S.%e%z\",%v"
                                                  : "%Y-%m-%dT%H:%M:%S.%e%z %v");
  logger_->set_level(spdlog::level::info);
  logger_->flush_on(spdlog::level::off);
}

AccessLog::~AccessLog() {
  flush();
}

void AccessLog::reopen() {
  if (path_ == "-") return;
  int fd = ::open(path_.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) {
    spdlog::error("cannot reopen access log {}: {}", path_, std::strerror(errno));
    return;
  }
  sink_->replace_fd(fd);
}

void AccessLog::write(const ExchangeRecord& record) {
  thread_local std::string line;
  line.clear();
  if (format_ == LogFormat::json) {
    format_access_json(line, record);
  } else {
    format_access_text(line, record);
  }
  std::string_view text(line);
  if (format_ == LogFormat::json) text.remove_prefix(1);
  logger_->info(text);
}

void AccessLog::flush() {
  logger_->flush();
}

}  // namespace cutoff
