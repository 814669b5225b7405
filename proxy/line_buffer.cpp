#include "cutoff/line_buffer.hpp"

#include <algorithm>
#include <cassert>
#include <cerrno>
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
    : output_(std::move(output)), limit_(limit), write_at_(write_at) {
  data_.reserve(limit_);
}

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
  data_.append(line);
  if (buffered() >= write_at_ && !output_full_) flush();
  return true;
}

void LineBuffer::flush() {
  output_full_ = false;
  while (buffered() > 0) {
    // Another writer is in the middle of a write or of a line: ours wait
    // for the next flush.
    if (!mid_line_ && !output_->try_take(this)) break;
    size_t chunk = next_chunk();
    ssize_t n = output_->write_some(data_.data() + head_, chunk);
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
  if (head_ == data_.size()) {
    data_.clear();
  } else {
    data_.erase(0, head_);
  }
  head_ = 0;
}

void LineBuffer::set_output(std::shared_ptr<LineOutput> output) {
  flush();
  if (mid_line_) {
    // Lines always end with '\n', so the started one has its end here.
    size_t end = data_.find('\n', head_);
    assert(end != std::string::npos);
    data_.erase(0, end + 1);
    head_ = 0;
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

void LineBuffer::drop_all() {
  // A started line is counted too: its end was never written.
  dropped_ += std::count(data_.begin() + static_cast<ptrdiff_t>(head_), data_.end(), '\n');
  head_ = data_.size();
  mid_line_ = false;
}

size_t LineBuffer::next_chunk() const {
  std::string_view pending(data_.data() + head_, buffered());
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
