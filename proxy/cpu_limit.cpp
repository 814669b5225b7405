#include "cutoff/cpu_limit.hpp"

#include <sched.h>

#include <charconv>
#include <fstream>
#include <sstream>
#include <vector>

namespace cutoff {
namespace {

bool parse_number(std::string_view text, uint64_t* out) {
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.remove_suffix(1);
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), *out);
  return ec == std::errc() && end == text.data() + text.size();
}

unsigned whole_cpus(uint64_t quota, uint64_t period) {
  if (quota == 0 || period == 0) return 0;
  uint64_t cpus = (quota + period - 1) / period;
  return cpus > 0xffff ? 0xffff : static_cast<unsigned>(cpus);
}

bool read_file(const std::string& path, std::string* out) {
  std::ifstream in(path);
  if (!in) return false;
  std::ostringstream text;
  text << in.rdbuf();
  *out = text.str();
  return true;
}

// "/a/b/c" -> "/a/b/c", "/a/b", "/a", "": the cgroup and its ancestors.
std::vector<std::string> up_to_root(std::string_view path) {
  std::vector<std::string> dirs;
  std::string dir(path);
  while (!dir.empty() && dir.back() == '/') dir.pop_back();
  for (;;) {
    dirs.push_back(dir);
    if (dir.empty()) return dirs;
    dir.resize(dir.rfind('/') == std::string::npos ? 0 : dir.rfind('/'));
  }
}

bool has_controller(std::string_view list, std::string_view name) {
  while (!list.empty()) {
    size_t comma = list.find(',');
    if (list.substr(0, comma) == name) return true;
    if (comma == std::string_view::npos) return false;
    list.remove_prefix(comma + 1);
  }
  return false;
}

void keep_tightest(CpuQuota* best, unsigned cpus, std::string source) {
  if (cpus == 0 || (best->cpus != 0 && best->cpus <= cpus)) return;
  best->cpus = cpus;
  best->source = std::move(source);
}

}  // namespace

unsigned cpus_of_cpu_max(std::string_view text) {
  size_t space = text.find(' ');
  if (space == std::string_view::npos) return 0;
  uint64_t quota = 0, period = 0;
  if (!parse_number(text.substr(0, space), &quota)) return 0;  // "max", or not cpu.max
  if (!parse_number(text.substr(space + 1), &period)) return 0;
  return whole_cpus(quota, period);
}

unsigned cpus_of_cfs_quota(std::string_view quota_text, std::string_view period_text) {
  uint64_t quota = 0, period = 0;
  // "-1" (no limit) does not parse as unsigned.
  if (!parse_number(quota_text, &quota) || !parse_number(period_text, &period)) return 0;
  return whole_cpus(quota, period);
}

CpuQuota cgroup_cpu_quota(const std::string& root, std::string_view self_cgroup) {
  CpuQuota best;
  std::istringstream lines{std::string(self_cgroup)};
  for (std::string line; std::getline(lines, line);) {
    // "hierarchy-id:controllers:path"; v2 is "0::path".
    size_t first = line.find(':');
    size_t second = first == std::string::npos ? first : line.find(':', first + 1);
    if (second == std::string::npos) continue;
    std::string controllers = line.substr(first + 1, second - first - 1);
    std::string path = line.substr(second + 1);
    if (controllers.empty()) {
      for (const std::string& dir : up_to_root(path)) {
        std::string text;
        if (!read_file(root + dir + "/cpu.max", &text)) continue;
        while (!text.empty() && text.back() == '\n') text.pop_back();
        keep_tightest(&best, cpus_of_cpu_max(text), "cgroup v2 cpu.max " + text);
      }
      continue;
    }
    // v1: the line of the cpu controller, mounted on its own ("cpu") or
    // with others under their joint name ("cpu,cpuacct").
    if (!has_controller(controllers, "cpu")) continue;
    std::string mount = root + "/" + controllers;
    std::string probe;
    if (!read_file(mount + "/cpu.cfs_period_us", &probe)) mount = root + "/cpu";
    for (const std::string& dir : up_to_root(path)) {
      std::string quota, period;
      if (!read_file(mount + dir + "/cpu.cfs_quota_us", &quota) ||
          !read_file(mount + dir + "/cpu.cfs_period_us", &period)) {
        continue;
      }
      while (!quota.empty() && quota.back() == '\n') quota.pop_back();
      while (!period.empty() && period.back() == '\n') period.pop_back();
      keep_tightest(&best, cpus_of_cfs_quota(quota, period),
                    "cgroup v1 cpu.cfs_quota_us " + quota + " over cpu.cfs_period_us " + period);
    }
  }
  return best;
}

unsigned affinity_cpus() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof set, &set) != 0) return 0;
  return static_cast<unsigned>(CPU_COUNT(&set));
}

}  // namespace cutoff
