#pragma once
// cutoff's own file descriptors: the process limit, raised at start-up, and
// the errors that running out of descriptors produces.
//
// Every client and upstream connection holds a descriptor, and so does each
// worker's event loop (epoll, a wake-up eventfd, a signal pipe) and listener.

#include <cstdint>
#include <string>

namespace cutoff {

struct DescriptorLimit {
  uint64_t before = 0;  // the soft RLIMIT_NOFILE cutoff was started with
  uint64_t now = 0;     // the soft limit from now on
  int error = 0;        // a libuv error when raising it failed, else 0
};

// Raises the soft RLIMIT_NOFILE to the hard limit (an unprivileged process
// may always do that).
DescriptorLimit raise_descriptor_limit();

// The current soft RLIMIT_NOFILE (0 if it cannot be read).
uint64_t descriptor_limit();

// A few descriptors held back for the way out. When start-up fails for
// want of descriptors, release() gives them back, so that tearing the
// workers down (closing loops, a last log line, a sanitizer's own checks)
// is not starved as well.
class DescriptorReserve {
 public:
  explicit DescriptorReserve(int count);
  ~DescriptorReserve() { release(); }
  DescriptorReserve(const DescriptorReserve&) = delete;
  DescriptorReserve& operator=(const DescriptorReserve&) = delete;
  void release();

 private:
  static constexpr int kMax = 4;
  int fds_[kMax];
  int count_ = 0;
};

// True for UV_EMFILE and UV_ENFILE.
bool out_of_descriptors(int error);

// uv_strerror(error), followed by " (RLIMIT_NOFILE n)" when the error is
// running out of descriptors: "too many open files (RLIMIT_NOFILE 1024)".
std::string describe_error(int error);

}  // namespace cutoff
