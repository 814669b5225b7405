#pragma once
// How many CPUs this process may really use: its CPU affinity, and the CPU
// quota of its cgroup (a container's --cpus, a pod's CPU limit), which the
// host's CPU count knows nothing of. The default number of workers follows
// it (worker_count.hpp).

#include <string>
#include <string_view>

namespace cutoff {

// A cgroup CPU quota as whole CPUs, rounded up (1.5 CPUs -> 2); 0: none.
struct CpuQuota {
  unsigned cpus = 0;
  std::string source;  // "cgroup v2 cpu.max 150000 100000", for the start-up line
};

// cgroup v2's cpu.max ("max 100000" or "150000 100000"): the CPUs it allows,
// or 0 for no limit or text that is not cpu.max.
unsigned cpus_of_cpu_max(std::string_view text);
// cgroup v1's cpu.cfs_quota_us ("-1" or "150000") over cpu.cfs_period_us.
unsigned cpus_of_cfs_quota(std::string_view quota, std::string_view period);

// The tightest quota on the way from this process's cgroup up to the root.
// `root`: where the cgroup file systems are mounted ("/sys/fs/cgroup");
// `self_cgroup`: the text of /proc/self/cgroup. A container usually sees
// its own cgroup as the root, so the root's own files count too.
CpuQuota cgroup_cpu_quota(const std::string& root, std::string_view self_cgroup);

// The CPUs in this process's affinity mask; 0 if unknown.
unsigned affinity_cpus();

}  // namespace cutoff
