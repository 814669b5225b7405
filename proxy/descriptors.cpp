#include "cutoff/descriptors.hpp"

#include <fcntl.h>
#include <sys/resource.h>
#include <unistd.h>
#include <uv.h>

#include <algorithm>
#include <cerrno>

namespace cutoff {

DescriptorLimit raise_descriptor_limit() {
  DescriptorLimit result;
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) != 0) {
    result.error = uv_translate_sys_error(errno);
    return result;
  }
  result.before = result.now = static_cast<uint64_t>(limit.rlim_cur);
  if (limit.rlim_cur >= limit.rlim_max) return result;
  limit.rlim_cur = limit.rlim_max;
  if (setrlimit(RLIMIT_NOFILE, &limit) != 0) {
    result.error = uv_translate_sys_error(errno);
    return result;
  }
  result.now = static_cast<uint64_t>(limit.rlim_cur);
  return result;
}

DescriptorReserve::DescriptorReserve(int count) {
  while (count_ < std::min(count, kMax)) {
    int fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (fd < 0) break;
    fds_[count_++] = fd;
  }
}

void DescriptorReserve::release() {
  while (count_ > 0) ::close(fds_[--count_]);
}

uint64_t descriptor_limit() {
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) != 0) return 0;
  return static_cast<uint64_t>(limit.rlim_cur);
}

bool out_of_descriptors(int error) {
  return error == UV_EMFILE || error == UV_ENFILE;
}

std::string describe_error(int error) {
  std::string text = uv_strerror(error);
  if (out_of_descriptors(error)) {
    text += " (RLIMIT_NOFILE " + std::to_string(descriptor_limit()) + ")";
  }
  return text;
}

}  // namespace cutoff
