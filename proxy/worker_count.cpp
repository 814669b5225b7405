#include "cutoff/worker_count.hpp"

#include <fstream>
#include <sstream>
#include <thread>

#include "cutoff/cpu_limit.hpp"

namespace cutoff {
namespace {

std::string cpus_text(unsigned n) {
  return std::to_string(n) + (n == 1 ? " CPU" : " CPUs");
}

std::string self_cgroup() {
  std::ifstream in("/proc/self/cgroup");
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

}  // namespace

WorkerCount worker_count(const Config& config) {
  if (config.workers > 0) {
    return {config.workers, "configured: workers = " + std::to_string(config.workers)};
  }
  return workers_for(affinity_cpus(), std::thread::hardware_concurrency(),
                     cgroup_cpu_quota("/sys/fs/cgroup", self_cgroup()));
}

WorkerCount workers_for(unsigned affinity, unsigned online, const CpuQuota& quota) {
  unsigned cpus = affinity > 0 ? affinity : online;
  if (cpus == 0 && quota.cpus == 0) return {1, "one per CPU, but the number of CPUs is unknown"};
  std::string found =
      affinity > 0 ? cpus_text(affinity) + " in its CPU affinity" : cpus_text(online) + " found";
  if (quota.cpus > 0 && (cpus == 0 || quota.cpus < cpus)) {
    return {quota.cpus, "one per CPU it may use: a CPU quota of " + cpus_text(quota.cpus) + " (" +
                            quota.source + ", rounded up), " + found};
  }
  return {cpus, "one per CPU, " + found};
}

}  // namespace cutoff
