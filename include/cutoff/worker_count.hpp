#pragma once
// How many workers (event loops) a config asks for, and why that many.
//
// The one place where the count is decided, so that start-up can say why
// and a reload can compare it. By default it follows the CPUs the process
// may use (cpu_limit.hpp), not the host's count: in a container limited to
// 2 CPUs on a 64-CPU node, 2 workers.

#include <string>

#include "cutoff/config.hpp"
#include "cutoff/cpu_limit.hpp"

namespace cutoff {

struct WorkerCount {
  unsigned count = 1;
  // For the start-up log: "configured: workers = 2", "one per CPU, 8 CPUs
  // in its CPU affinity", or "one per CPU it may use: a CPU quota of 2 CPUs
  // (cgroup v2 cpu.max 150000 100000, rounded up), 8 CPUs in its CPU
  // affinity".
  std::string reason;
};

// `workers` when it is set, else one per CPU the process may use.
WorkerCount worker_count(const Config& config);

// The default count from what was found: the CPUs of the affinity mask
// (0: unknown, then `online`), capped by the cgroup's quota.
WorkerCount workers_for(unsigned affinity, unsigned online, const CpuQuota& quota);

}  // namespace cutoff
