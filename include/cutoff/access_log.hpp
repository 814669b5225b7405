#pragma once
// One line per exchange, as text or JSON, through spdlog.
//
// Lines are buffered and written when the buffer fills or on flush(), which
// the worker calls on a short period and at exit, rather than one write(2)
// per exchange: under load the log must not cost a syscall per request.

#include <spdlog/logger.h>

#include <memory>
#include <string>

#include "cutoff/config.hpp"
#include "cutoff/exchange.hpp"

namespace cutoff {

class BufferedFdSink;

class AccessLog {
 public:
  // Opens the configured destination ("-" for stdout). Throws spdlog_ex when
  // a file cannot be opened.
  explicit AccessLog(const AccessLogConfig& config);
  ~AccessLog();
  void write(const ExchangeRecord& record);
  void flush();
  // Opens the file again (after log rotation moved it away; SIGUSR1).
  void reopen();

 private:
  LogFormat format_;
  std::string path_;
  std::shared_ptr<BufferedFdSink> sink_;
  std::shared_ptr<spdlog::logger> logger_;
};

// The text of one line, without the timestamp (unit-tested directly).
void format_access_text(std::string& out, const ExchangeRecord& record);
void format_access_json(std::string& out, const ExchangeRecord& record);

// Appends `s` as a quoted JSON string.
void append_json_string(std::string& out, std::string_view s);

// "ok", "timeout:<name>", "error:<token>", "client_abort" or "stopped".
std::string outcome_token(const Outcome& outcome);

}  // namespace cutoff
