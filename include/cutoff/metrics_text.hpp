#pragma once
// The Prometheus text exposition format (version 0.0.4) of every worker's
// metrics, added up, for the admin endpoint's /metrics.

#include <string>
#include <vector>

#include "cutoff/metrics.hpp"

namespace cutoff {

// The Content-Type that goes with render_prometheus's output.
inline constexpr const char* kPrometheusContentType = "text/plain; version=0.0.4; charset=utf-8";

// Appends one exposition of the sum over `workers` (null entries are
// skipped): # HELP and # TYPE for every family, series sorted by label so the
// output is stable from one scrape to the next.
void render_prometheus(std::string& out, const std::vector<const Metrics*>& workers);

// Appends `value` escaped for a label value: backslash, double quote and
// newline become \\, \" and \n.
void append_label_value(std::string& out, std::string_view value);

}  // namespace cutoff
