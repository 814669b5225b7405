#include "cutoff/task_queue.hpp"

namespace cutoff {

TaskQueue::TaskQueue(uv_loop_t* loop) : async_(make_uv<uv_async_t>()) {
  uv_async_init(loop, async_.get(), on_async);
  async_->data = this;
  uv_unref(uv_handle_of(async_.get()));
}

void TaskQueue::post(std::function<void()> task) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (!closed_) {
      tasks_.push_back(std::move(task));
      uv_async_send(async_.get());
      return;
    }
  }
  task();  // the loop is gone: nothing runs on it any more
}

void TaskQueue::close() {
  std::vector<std::function<void()>> rest;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    closed_ = true;
    rest.swap(tasks_);
  }
  for (auto& task : rest) task();
}

void TaskQueue::on_async(uv_async_t* async) {
  auto* self = static_cast<TaskQueue*>(async->data);
  std::vector<std::function<void()>> batch;
  {
    std::lock_guard<std::mutex> lock(self->mutex_);
    batch.swap(self->tasks_);
  }
  for (auto& task : batch) task();
}

}  // namespace cutoff
