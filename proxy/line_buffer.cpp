#include "cutoff/line_buffer.hpp"

#include <algorithm>
#include <cassert>
#include <cerrno>
#include <cstring>
#include <utility>

namespace cutoff {

bool LineOutput::try_take(const void* who) {
  const void* expected = nullptr;
  return writer_.compare_exchange_strong(expected, who, std::memory_order_acquire,
                                         std::memory_order_relaxed);
}

void LineOutput::release(const void* who) {
  const void* expected = who;
  bool released = writer_.compare_exchange_strong(expected, nullptr, std::memory_order_release,
                                                  std::memory_order_relaxed);
  assert(released);
  (void)released;
}

LineBuffer::LineBuffer(std::shared_ptr<LineOutput> output, size_t limit, size_t write_at)
    : output_(std::move(output)),
      limit_(limit),
      write_at_(write_at),
      data_(std::make_unique_for_overwrite<char[]>(limit)) {}

LineBuffer::~LineBuffer() {
  flush();
  if (mid_line_) output_->release(this);
}

bool LineBuffer::append(std::string_view line) {
  assert(!line.empty() && line.back() == '\n');
  if (line.size() > room()) {
    if (!output_full_) flush();
    if (line.size() > room()) {
      ++dropped_;
      return false;
    }
  }
  std::memcpy(data_.get() + end_, line.data(), line.size());
  commit(line.size());
  return true;
}

void LineBuffer::commit(size_t size) {
  assert(head_ == 0 && end_ + size <= limit_ && size > 0 && data_[end_ + size - 1] == '\n');
  end_ += size;
  if (buffered() >= write_at_ && !output_full_) flush();
}

void LineBuffer::flush() {
  output_full_ = false;
  while (buffered() > 0) {
    // Another writer is in the middle of a write or of a line: ours wait
    // for the next flush.
    if (!mid_line_ && !output_->try_take(this)) break;
    size_t chunk = next_chunk();
    ssize_t n = output_->write_some(data_.get() + head_, chunk);
    if (n == -EAGAIN || n == 0) {
      output_full_ = true;
      finish_write();
      break;
    }
    if (n < 0) {
      // The destination is gone (EPIPE, EBADF, ENOSPC...): what waits
      // cannot be written anywhere.
      drop_all();
      finish_write();
      break;
    }
    head_ += static_cast<size_t>(n);
    mid_line_ = data_[head_ - 1] != '\n';
    finish_write();
    if (static_cast<size_t>(n) < chunk) {
      // The output took part of it: it is full for now.
      output_full_ = true;
      break;
    }
  }
  to_front();
}

void LineBuffer::set_output(std::shared_ptr<LineOutput> output) {
  flush();
  if (mid_line_) {
    // Lines always end with '\n', so the started one has its end here.
    size_t end = pending().find('\n');
    assert(end != std::string_view::npos);
    head_ += end + 1;
    to_front();
    ++dropped_;
    mid_line_ = false;
    output_->release(this);
  }
  output_ = std::move(output);
  output_full_ = false;
}

int64_t LineBuffer::take_dropped() {
  return std::exchange(dropped_, 0);
}

void LineBuffer::finish_write() {
  if (!mid_line_) output_->release(this);
}

void LineBuffer::to_front() {
  if (head_ == 0) return;
  std::memmove(data_.get(), data_.get() + head_, buffered());
  end_ -= head_;
  head_ = 0;
}

void LineBuffer::drop_all() {
  // A started line is counted too: its end was never written.
  std::string_view lines = pending();
  dropped_ += std::count(lines.begin(), lines.end(), '\n');
  head_ = end_;
  mid_line_ = false;
}

size_t LineBuffer::next_chunk() const {
  std::string_view pending = this->pending();
  // The rest of a started line goes alone: after it, writes are whole lines
  // again.
  if (mid_line_) return pending.find('\n') + 1;
  size_t atomic = output_->atomic_size();
  if (atomic == 0 || pending.size() <= atomic) return pending.size();
  size_t last = pending.rfind('\n', atomic - 1);
  // A single line longer than an atomic write goes alone; if the output
  // takes only part of it, the slot keeps other writers out until the rest
  // is written.
  if (last == std::string_view::npos) return pending.find('\n') + 1;
  return last + 1;
}

}  // namespace cutoff
