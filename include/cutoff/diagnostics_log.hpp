#pragma once
// The diagnostics log (spdlog's default logger, on stderr) without blocking.
//
// Any thread logs through it, a worker's included, so a stderr that nobody
// reads must not stop the proxy either. Lines go through one LineBuffer
// under the sink's lock (held for a non-blocking write at most, never while
// waiting for the reader): when stderr takes nothing, they wait up to a
// bound, past which they are dropped whole and counted in
// cutoff_log_lines_dropped_total. Once stderr takes lines again, a warning
// says how many were dropped (at most one a minute). Once stderr was found
// full, what waits is written at the next flush, which the server makes a
// few times a second.

#include <spdlog/logger.h>
#include <spdlog/sinks/base_sink.h>

#include <memory>
#include <mutex>
#include <string>

#include "cutoff/line_buffer.hpp"
#include "cutoff/metrics.hpp"
#include "cutoff/warning_tally.hpp"

namespace cutoff {

class DiagnosticsSink final : public spdlog::sinks::base_sink<std::mutex> {
 public:
  // Counts dropped lines in metrics->log_lines_dropped (a single writer:
  // every update is made under the sink's lock).
  DiagnosticsSink(std::shared_ptr<LineOutput> output, std::shared_ptr<Metrics> metrics);

 protected:
  void sink_it_(const spdlog::details::log_msg& msg) override;
  void flush_() override;

 private:
  void count_dropped();
  // Queues the warning about dropped lines when one is due and fits.
  void warn_if_due();

  LineBuffer buffer_;
  std::shared_ptr<Metrics> metrics_;
  WarningTally drops_;
  spdlog::memory_buf_t formatted_;
};

// A logger named "cutoff" that writes to stderr through a DiagnosticsSink.
// *note: see FdOutput::inherited.
std::shared_ptr<spdlog::logger> make_diagnostics_logger(std::shared_ptr<Metrics> metrics,
                                                        std::string* note);

}  // namespace cutoff
