#pragma once
// One line per exchange, as text or JSON, after the local time.
//
// Each worker has its own AccessLogWriter, which buffers its lines and
// writes them when 32 KiB wait or on flush(), which the worker calls on a
// short period and at exit, rather than one write(2) per exchange: under load
// the log must not cost a syscall per request. The workers share no lock:
// each writes whole lines, without blocking, to the one destination
// (LineBuffer). A destination that stops taking lines (a stdout nobody
// reads) costs lines, dropped whole and counted, never the proxy's time.

#include <memory>
#include <string>

#include "cutoff/config.hpp"
#include "cutoff/exchange.hpp"
#include "cutoff/line_buffer.hpp"
#include "cutoff/local_timestamp.hpp"
#include "cutoff/metrics.hpp"
#include "cutoff/warning_tally.hpp"

namespace cutoff {

// The destination and the format, shared by every worker's writer.
class AccessLog {
 public:
  // Opens the configured destination ("-" for stdout). Throws spdlog_ex when
  // a file cannot be opened.
  explicit AccessLog(const AccessLogConfig& config);

  LogFormat format() const { return format_; }
  // The destination a new writer starts with.
  std::shared_ptr<LineOutput> output() const { return output_; }
  // Opens the file again (after log rotation moved it away; SIGUSR1) and
  // returns it for the writers to move to (AccessLogWriter::set_output).
  // Null for stdout, or when the file cannot be opened (logged).
  std::shared_ptr<LineOutput> reopen();

  // Lines dropped by every writer, for the warning (at most once a minute).
  WarningTally& drops() { return drops_; }

 private:
  LogFormat format_;
  std::string path_;
  std::shared_ptr<LineOutput> output_;
  WarningTally drops_;
};

// One worker's access log (that worker's thread only).
class AccessLogWriter {
 public:
  // Counts dropped lines in `dropped` (the worker's metrics).
  AccessLogWriter(AccessLog& log, Counter* dropped);
  ~AccessLogWriter();
  AccessLogWriter(const AccessLogWriter&) = delete;
  AccessLogWriter& operator=(const AccessLogWriter&) = delete;

  void write(const ExchangeRecord& record);
  // Writes what waits, as far as the destination takes it, and warns (at
  // most once a minute, for all workers) when lines were dropped.
  void flush();
  // Moves to a reopened destination (see LineBuffer::set_output).
  void set_output(std::shared_ptr<LineOutput> output);

 private:
  void count_dropped();

  AccessLog& log_;
  Counter* dropped_;
  LocalTimestamp timestamp_;
  LineBuffer buffer_;
  std::string line_;  // the line being written, reused
};

// The text of one line, without the timestamp (unit-tested directly).
void format_access_text(std::string& out, const ExchangeRecord& record);
void format_access_json(std::string& out, const ExchangeRecord& record);

// Appends `s` as a quoted JSON string.
void append_json_string(std::string& out, std::string_view s);
// Appends a shown target (marker included) as one quoted JSON string.
void append_json_target(std::string& out, const ShownTarget& target);

// "ok", "timeout:<name>", "error:<token>", "client_abort" or "stopped".
std::string outcome_token(const Outcome& outcome);

}  // namespace cutoff
