#pragma once
// How many workers (event loops) a config asks for, and why that many.
//
// The one place where the count is decided, so that start-up can say why
// and a reload can compare it; following a container's CPU quota would be
// a change here only.

#include <string>

#include "cutoff/config.hpp"

namespace cutoff {

struct WorkerCount {
  unsigned count = 1;
  // For the start-up log: "configured: workers = 2", or "one per CPU, 8
  // CPUs found".
  std::string reason;
};

// `workers` when it is set, else one per CPU the system reports.
WorkerCount worker_count(const Config& config);

}  // namespace cutoff
