#include "cutoff/diagnostics_log.hpp"

#include <spdlog/fmt/fmt.h>
#include <unistd.h>

#include <chrono>
#include <string_view>

#include "cutoff/log_output.hpp"

namespace cutoff {
namespace {

// Start-up, reloads and signals log a few lines; a debug level logs a line
// per failed exchange. This much waits while stderr takes nothing.
constexpr size_t kBufferLimit = 64 * 1024;
constexpr int64_t kDropWarningIntervalMs = 60 * 1000;
// The warning is queued only with this much room, so that it fits.
constexpr size_t kWarningRoom = 256;

int64_t steady_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

}  // namespace

DiagnosticsSink::DiagnosticsSink(std::shared_ptr<LineOutput> output,
                                 std::shared_ptr<Metrics> metrics)
    // Every line is written at once, as stderr expects, unless stderr was
    // full at the last try.
    : buffer_(std::move(output), kBufferLimit, 1),
      metrics_(std::move(metrics)),
      drops_(kDropWarningIntervalMs) {}

void DiagnosticsSink::sink_it_(const spdlog::details::log_msg& msg) {
  warn_if_due();
  formatted_.clear();
  formatter_->format(msg, formatted_);
  buffer_.append(std::string_view(formatted_.data(), formatted_.size()));
  count_dropped();
}

void DiagnosticsSink::flush_() {
  buffer_.flush();
  count_dropped();
  warn_if_due();
}

void DiagnosticsSink::count_dropped() {
  int64_t lines = buffer_.take_dropped();
  if (lines == 0) return;
  metrics_->log_lines_dropped.add(lines);
  drops_.add(lines);
}

void DiagnosticsSink::warn_if_due() {
  if (buffer_.room() < kWarningRoom) return;
  int64_t lines = drops_.take_due(steady_ms());
  if (lines == 0) return;
  std::string text = fmt::format(
      "diagnostics: dropped {} line(s) since the last warning: stderr does not take them "
      "(cutoff_log_lines_dropped_total)",
      lines);
  spdlog::details::log_msg warning("cutoff", spdlog::level::warn, text);
  formatted_.clear();
  formatter_->format(warning, formatted_);
  buffer_.append(std::string_view(formatted_.data(), formatted_.size()));
}

std::shared_ptr<spdlog::logger> make_diagnostics_logger(std::shared_ptr<Metrics> metrics,
                                                        std::string* note) {
  auto sink = std::make_shared<DiagnosticsSink>(FdOutput::inherited(STDERR_FILENO, note),
                                                std::move(metrics));
  return std::make_shared<spdlog::logger>("cutoff", std::move(sink));
}

}  // namespace cutoff
