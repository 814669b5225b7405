#include "cutoff/worker_count.hpp"

#include <thread>

namespace cutoff {

WorkerCount worker_count(const Config& config) {
  if (config.workers > 0) {
    return {config.workers, "configured: workers = " + std::to_string(config.workers)};
  }
  unsigned cpus = std::thread::hardware_concurrency();
  if (cpus == 0) return {1, "one per CPU, but the number of CPUs is unknown"};
  return {cpus, "one per CPU, " + std::to_string(cpus) + (cpus == 1 ? " CPU" : " CPUs") + " found"};
}

}  // namespace cutoff
