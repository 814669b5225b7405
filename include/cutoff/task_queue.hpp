#pragma once
// Work handed to an event loop from other threads: the only way one thread
// acts on another's loop (drain, reload, stop, snapshots for the admin).

#include <uv.h>

#include <functional>
#include <mutex>
#include <vector>

#include "cutoff/uv_handle.hpp"

namespace cutoff {

class TaskQueue {
 public:
  // Create on the loop's own thread, before the loop runs. The queue does
  // not keep the loop alive by itself.
  explicit TaskQueue(uv_loop_t* loop);
  TaskQueue(const TaskQueue&) = delete;
  TaskQueue& operator=(const TaskQueue&) = delete;

  // Any thread: `task` runs on the loop's thread soon after; once the loop
  // has ended (close()), it runs at once on the caller's thread instead, so
  // that nothing posted is ever lost.
  void post(std::function<void()> task);
  // The loop's thread, after its loop ended: runs what is still queued and
  // turns later posts into direct calls.
  void close();

 private:
  static void on_async(uv_async_t* async);

  std::mutex mutex_;
  std::vector<std::function<void()>> tasks_;
  bool closed_ = false;
  UvPtr<uv_async_t> async_;
};

}  // namespace cutoff
