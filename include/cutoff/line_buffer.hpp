#pragma once
// Log lines on their way to a destination that may stop taking them.
//
// A LineBuffer belongs to one writer (a worker's access log, or the
// diagnostics log under its own lock). It holds whole lines up to a bound and
// writes them to a LineOutput that never blocks: when the output is full, the
// lines wait in the buffer; when the buffer is full too, each new line is
// dropped whole and counted. The process keeps serving either way.
//
// Several writers share one LineOutput (every worker writes to the same
// stdout). A line must never be torn by another writer's bytes, so each
// write is made while holding the output's writer slot, an atomic that a
// writer takes without waiting or not at all (then it tries again on its next
// flush). The slot stays with a writer whose write ended inside a line until
// the rest of that line is out, so nobody writes into the middle of it.

#include <sys/types.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string_view>

namespace cutoff {

// Where lines go: written without ever blocking.
class LineOutput {
 public:
  virtual ~LineOutput() = default;
  // Writes up to `size` bytes and returns how many were taken, or -errno:
  // -EAGAIN when the destination cannot take any more now.
  virtual ssize_t write_some(const char* data, size_t size) = 0;
  // Writes of up to this many bytes are all-or-nothing and never mixed with
  // another process's bytes (PIPE_BUF for a pipe); 0 when there is no such
  // promise.
  virtual size_t atomic_size() const { return 0; }

  // The writer slot (see above); a writer passes its own address as `who`.
  bool try_take(const void* who);
  void release(const void* who);

 private:
  std::atomic<const void*> writer_{nullptr};
};

class LineBuffer {
 public:
  // Holds at most `limit` bytes; append() writes once `write_at` bytes are
  // waiting (0 or 1: at every line), flush() whatever waits.
  LineBuffer(std::shared_ptr<LineOutput> output, size_t limit, size_t write_at);
  ~LineBuffer();
  LineBuffer(const LineBuffer&) = delete;
  LineBuffer& operator=(const LineBuffer&) = delete;

  // Queues one line, which ends with '\n'. Returns false when it was
  // dropped: the buffer has no room for it and the output takes nothing.
  bool append(std::string_view line);
  // Where a line of at most `most` bytes can be written in place, after the
  // lines that wait, or null when there is not that much room (the caller
  // then writes it elsewhere and append()s it). commit() queues it, as
  // append() would.
  char* reserve(size_t most) { return most <= room() ? data_.get() + end_ : nullptr; }
  void commit(size_t size);
  // Writes as much as the output takes now.
  void flush();
  // Sends what follows to `output`. What waits goes there too, except the
  // rest of a line already half written to the old output: that line is
  // dropped rather than finished in the middle of the new one.
  void set_output(std::shared_ptr<LineOutput> output);

  // Lines dropped since the last call.
  int64_t take_dropped();
  size_t buffered() const { return end_ - head_; }
  size_t room() const { return limit_ - buffered(); }

 private:
  // Hands the slot back unless a write stopped inside a line.
  void finish_write();
  // Moves what waits to the front, so that the room after it is whole.
  void to_front();
  // The destination failed: every waiting line is dropped and counted.
  void drop_all();
  // The next bytes to write: for an output with atomic writes, the whole
  // lines that fit in one (at least one line); otherwise everything.
  size_t next_chunk() const;
  std::string_view pending() const { return {data_.get() + head_, buffered()}; }

  std::shared_ptr<LineOutput> output_;
  size_t limit_;
  size_t write_at_;
  // limit_ bytes; those pending are [head_, end_): whole lines, except...
  std::unique_ptr<char[]> data_;
  size_t head_ = 0;  // 0 but inside flush(), which ends with to_front()
  size_t end_ = 0;
  bool mid_line_ = false;  // ...that the first was partly written (we hold the slot)
  // The last write found the output full: append() waits for the next
  // flush() instead of trying again at every line.
  bool output_full_ = false;
  int64_t dropped_ = 0;
};

}  // namespace cutoff
