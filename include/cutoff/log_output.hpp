#pragma once
// A log destination behind a file descriptor, written without ever blocking
// and without changing a descriptor that cutoff shares with other processes.
//
// stdout and stderr are inherited: their open file description is shared
// with the parent and with whatever else writes to the same pipe or
// terminal, so setting O_NONBLOCK on it would make their writes fail with
// EAGAIN too. Instead, per kind of destination:
//  - a pipe, FIFO or character device (terminal): cutoff opens
//    /proc/self/fd/N again, which gives a description of its own on the same
//    pipe or device, and sets O_NONBLOCK on that one;
//  - a socket (a journal stream, say): send(2) with MSG_DONTWAIT, which is
//    non-blocking for that call only;
//  - a regular file: written as it is; a write to a file never waits for a
//    reader.
// Only when /proc cannot give a description of its own is O_NONBLOCK set on
// the shared one, and the caller is told so it can say it in the log: a
// proxy blocked on its logs is worse.

#include <memory>
#include <string>

#include "cutoff/line_buffer.hpp"

namespace cutoff {

class FdOutput final : public LineOutput {
 public:
  // The destination behind an inherited descriptor (1 or 2). *note receives
  // a sentence for the log when O_NONBLOCK had to be set on the shared
  // description; it is left empty otherwise.
  static std::shared_ptr<FdOutput> inherited(int fd, std::string* note);
  // A file cutoff opens itself for appending, created with mode 0644 if
  // missing. Null, with *error set, when it cannot be opened. A FIFO at
  // that path is opened non-blocking too, read-write when it has no reader
  // yet, so that cutoff starts whichever of the two comes first.
  static std::shared_ptr<FdOutput> open_file(const std::string& path, std::string* error);

  ~FdOutput() override;
  FdOutput(const FdOutput&) = delete;
  FdOutput& operator=(const FdOutput&) = delete;

  ssize_t write_some(const char* data, size_t size) override;
  size_t atomic_size() const override { return atomic_size_; }

 private:
  enum class Call { write, send };
  FdOutput(int fd, bool owned, Call call, size_t atomic_size)
      : fd_(fd), owned_(owned), call_(call), atomic_size_(atomic_size) {}

  int fd_;
  bool owned_;  // opened by cutoff (closed here), or inherited (left open)
  Call call_;
  size_t atomic_size_;
};

}  // namespace cutoff
