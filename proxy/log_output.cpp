#include "cutoff/log_output.hpp"

#include <fcntl.h>
#include <limits.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

namespace cutoff {
namespace {

// What a pipe promises: a write of up to PIPE_BUF bytes goes in whole or,
// on a non-blocking description, fails with EAGAIN; no other writer's bytes
// land inside it.
size_t atomic_size_of(const struct stat& st) {
  return S_ISFIFO(st.st_mode) ? PIPE_BUF : 0;
}

}  // namespace

std::shared_ptr<FdOutput> FdOutput::inherited(int fd, std::string* note) {
  note->clear();
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    // Closed at start: every write fails (EBADF) and its lines are dropped.
    return std::shared_ptr<FdOutput>(new FdOutput(fd, false, Call::write, 0));
  }
  if (S_ISSOCK(st.st_mode)) {
    return std::shared_ptr<FdOutput>(new FdOutput(fd, false, Call::send, 0));
  }
  if (!S_ISFIFO(st.st_mode) && !S_ISCHR(st.st_mode)) {
    return std::shared_ptr<FdOutput>(new FdOutput(fd, false, Call::write, 0));
  }
  std::string self = "/proc/self/fd/" + std::to_string(fd);
  int own = ::open(self.c_str(), O_WRONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
  if (own >= 0) {
    return std::shared_ptr<FdOutput>(new FdOutput(own, true, Call::write, atomic_size_of(st)));
  }
  int open_error = errno;
  int flags = ::fcntl(fd, F_GETFL);
  if (flags >= 0) ::fcntl(fd, F_SETFL, flags | O_NONBLOCK);
  *note = "cannot open " + self + " (" + std::strerror(open_error) +
          "): O_NONBLOCK is set on descriptor " + std::to_string(fd) +
          ", shared with the processes that gave it to cutoff";
  return std::shared_ptr<FdOutput>(new FdOutput(fd, false, Call::write, atomic_size_of(st)));
}

std::shared_ptr<FdOutput> FdOutput::open_file(const std::string& path, std::string* error) {
  // O_NONBLOCK changes nothing for a regular file and keeps a FIFO from
  // blocking cutoff, at open and at every write.
  int fd = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_NONBLOCK | O_CLOEXEC, 0644);
  if (fd < 0 && errno == ENXIO) {
    // A FIFO that nobody reads yet, say a log shipper that starts after
    // cutoff: opened read-write, it takes lines (the pipe holds 64 KiB, the
    // rest is dropped and counted) until its reader comes.
    fd = ::open(path.c_str(), O_RDWR | O_NONBLOCK | O_CLOEXEC);
  }
  if (fd < 0) {
    *error = std::strerror(errno);
    return nullptr;
  }
  struct stat st {};
  size_t atomic = ::fstat(fd, &st) == 0 ? atomic_size_of(st) : 0;
  return std::shared_ptr<FdOutput>(new FdOutput(fd, true, Call::write, atomic));
}

FdOutput::~FdOutput() {
  if (owned_) ::close(fd_);
}

ssize_t FdOutput::write_some(const char* data, size_t size) {
  for (;;) {
    ssize_t n = call_ == Call::send ? ::send(fd_, data, size, MSG_DONTWAIT | MSG_NOSIGNAL)
                                    : ::write(fd_, data, size);
    if (n >= 0) return n;
    if (errno == EINTR) continue;
    // EWOULDBLOCK is EAGAIN on Linux.
    return -errno;
  }
}

}  // namespace cutoff
