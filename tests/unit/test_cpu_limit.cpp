// The CPUs a process may use, from sample cgroup files laid out as the
// kernel mounts them (v2 unified, v1 with cpu alone or joined with cpuacct).

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>

#include "cutoff/cpu_limit.hpp"
#include "cutoff/worker_count.hpp"
#include "temp_dir.hpp"

using namespace cutoff;
using cutoff::testing::TempDir;

namespace {

void put(const std::string& path, const std::string& text) {
  std::filesystem::create_directories(std::filesystem::path(path).parent_path());
  std::ofstream(path) << text;
}

}  // namespace

TEST_CASE("cpu.max and cfs_quota_us: whole CPUs, rounded up", "[cpu_limit]") {
  CHECK(cpus_of_cpu_max("max 100000") == 0);
  CHECK(cpus_of_cpu_max("200000 100000") == 2);
  CHECK(cpus_of_cpu_max("150000 100000") == 2);
  CHECK(cpus_of_cpu_max("50000 100000") == 1);
  CHECK(cpus_of_cpu_max("50000 100000\n") == 1);
  CHECK(cpus_of_cpu_max("") == 0);
  CHECK(cpus_of_cpu_max("nonsense") == 0);
  CHECK(cpus_of_cpu_max("0 100000") == 0);
  CHECK(cpus_of_cfs_quota("-1", "100000") == 0);
  CHECK(cpus_of_cfs_quota("250000", "100000") == 3);
  CHECK(cpus_of_cfs_quota("250000\n", "100000\n") == 3);
  CHECK(cpus_of_cfs_quota("100000", "0") == 0);
}

TEST_CASE("cgroup v2: the tightest cpu.max from the process's cgroup up", "[cpu_limit]") {
  TempDir root;
  put(root.file("cpu.max"), "max 100000\n");
  put(root.file("kubepods/cpu.max"), "400000 100000\n");
  put(root.file("kubepods/pod1/cpu.max"), "150000 100000\n");
  put(root.file("kubepods/pod1/c1/cpu.max"), "max 100000\n");
  CpuQuota q = cgroup_cpu_quota(root.path(), "0::/kubepods/pod1/c1\n");
  CHECK(q.cpus == 2);
  CHECK(q.source == "cgroup v2 cpu.max 150000 100000");
  // A container that sees its own cgroup as the root.
  TempDir own;
  put(own.file("cpu.max"), "100000 100000\n");
  CHECK(cgroup_cpu_quota(own.path(), "0::/\n").cpus == 1);
  // No limit anywhere.
  TempDir none;
  put(none.file("cpu.max"), "max 100000\n");
  CHECK(cgroup_cpu_quota(none.path(), "0::/\n").cpus == 0);
  CHECK(cgroup_cpu_quota(none.path(), "").cpus == 0);
}

TEST_CASE("cgroup v1: the cpu controller, alone or joined with cpuacct", "[cpu_limit]") {
  TempDir joined;
  put(joined.file("cpu,cpuacct/cpu.cfs_period_us"), "100000\n");
  put(joined.file("cpu,cpuacct/cpu.cfs_quota_us"), "-1\n");
  put(joined.file("cpu,cpuacct/docker/abc/cpu.cfs_period_us"), "100000\n");
  put(joined.file("cpu,cpuacct/docker/abc/cpu.cfs_quota_us"), "50000\n");
  CpuQuota q = cgroup_cpu_quota(
      joined.path(), "12:memory:/docker/abc\n4:cpu,cpuacct:/docker/abc\n1:name=systemd:/\n");
  CHECK(q.cpus == 1);
  CHECK(q.source == "cgroup v1 cpu.cfs_quota_us 50000 over cpu.cfs_period_us 100000");

  TempDir alone;
  put(alone.file("cpu/cpu.cfs_period_us"), "100000\n");
  put(alone.file("cpu/cpu.cfs_quota_us"), "300000\n");
  CHECK(cgroup_cpu_quota(alone.path(), "1:cpu:/\n2:cpuacct:/\n").cpus == 3);
  // cpuacct alone is not the cpu controller.
  CHECK(cgroup_cpu_quota(alone.path(), "2:cpuacct:/\n").cpus == 0);
}

TEST_CASE("the default workers: affinity, capped by the quota", "[cpu_limit]") {
  WorkerCount w = workers_for(8, 64, CpuQuota{2, "cgroup v2 cpu.max 150000 100000"});
  CHECK(w.count == 2);
  CHECK(w.reason ==
        "one per CPU it may use: a CPU quota of 2 CPUs (cgroup v2 cpu.max 150000 100000, "
        "rounded up), 8 CPUs in its CPU affinity");
  w = workers_for(4, 64, CpuQuota{});
  CHECK(w.count == 4);
  CHECK(w.reason == "one per CPU, 4 CPUs in its CPU affinity");
  // A quota above the affinity changes nothing.
  CHECK(workers_for(1, 64, CpuQuota{3, "x"}).count == 1);
  // Affinity unknown: the CPUs online.
  w = workers_for(0, 6, CpuQuota{});
  CHECK(w.count == 6);
  CHECK(w.reason == "one per CPU, 6 CPUs found");
  CHECK(workers_for(0, 0, CpuQuota{}).count == 1);
  CHECK(workers_for(0, 0, CpuQuota{2, "x"}).count == 2);
}
