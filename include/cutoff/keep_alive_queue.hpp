#pragma once
// The idle keep-alive client connections of one worker, each waiting for its
// next request under client_keepalive_timeout (SPEC §4), all under one timer.
//
// One config gives every connection the same timeout, so connections expire
// in the order they went idle: the queue is a FIFO and its timer only ever
// waits for the first. A connection's expiry is not stored but computed, the
// time it went idle plus the queue's timeout, so that a reload can change
// the timeout of them all at once (an idle connection pins no config): a
// shorter one closes at once those idle for longer than it, a longer one
// lets them all wait longer. Either way the order they went idle in stays
// the order they expire in.
//
// The queue holds the connections themselves, nodes of a std::list that
// move in and out by splice (no allocation, no copy): a connection joins it
// when it goes idle and leaves it when its next request begins, when it
// closes, or when the timer expires it.
//
// The timer is armed whenever the queue is not empty, due at or before the
// first connection's expiry (armed() says so, for the worker's check of
// SPEC §4's invariant). When that connection leaves early, the timer is left
// as it is: it wakes early, finds nothing due and sleeps until the next
// expiry, so a connection going idle and busy again costs no update of the
// loop's timer heap.
//
// T is the connection (the Session), with:
//   uint64_t idle_since() const;        loop time (ms) it went idle
//   void expire(const Expiry& expiry);  its keep-alive expired; it must
//                                       leave the queue from there

#include <uv.h>

#include <cassert>
#include <cstdint>
#include <list>

#include "cutoff/deadline.hpp"
#include "cutoff/duration.hpp"
#include "cutoff/timeout.hpp"
#include "cutoff/uv_handle.hpp"

namespace cutoff {

template <class T>
class KeepAliveQueue {
 public:
  using List = std::list<T>;

  // The loop need not be initialised yet: the timer is made when first
  // needed.
  KeepAliveQueue(uv_loop_t* loop, Duration timeout) : loop_(loop), timeout_(timeout) {
    assert(!timeout.is_off() && "an idle connection always has a deadline");
  }
  KeepAliveQueue(const KeepAliveQueue&) = delete;
  KeepAliveQueue& operator=(const KeepAliveQueue&) = delete;

  // `item`, a node of `from`, goes idle now and joins the queue at its back.
  void push(List& from, typename List::iterator item) {
    items_.splice(items_.end(), from, item);
    schedule();
  }
  // `item` is busy again (or closing): back into `to`.
  void take(List& to, typename List::iterator item) { to.splice(to.end(), items_, item); }

  // A reload: every idle connection now expires `timeout` after it went
  // idle.
  void set_timeout(Duration timeout) {
    assert(!timeout.is_off() && "an idle connection always has a deadline");
    timeout_ = timeout;
    schedule();
  }

  uint64_t expires_at(const T& item) const { return add_saturating(item.idle_since(), timeout_); }
  Duration timeout() const { return timeout_; }
  List& items() { return items_; }
  const List& items() const { return items_; }
  // SPEC §4's invariant: every idle connection waits under the timer.
  bool armed() const { return items_.empty() || scheduled_at_ <= expires_at(items_.front()); }

  // Shutdown: the timer is closed (the queue must be empty by then).
  void close() {
    assert(items_.empty());
    timer_.reset();
    scheduled_at_ = DeadlinePlan::kNever;
  }

 private:
  // Wakes the timer for the first expiry, unless it is due before that
  // already.
  void schedule() {
    if (items_.empty()) return;
    uint64_t at = expires_at(items_.front());
    if (at >= scheduled_at_) return;
    if (!timer_) {
      timer_ = make_uv<uv_timer_t>();
      uv_timer_init(loop_, timer_.get());
      timer_->data = this;
    }
    scheduled_at_ = at;
    uint64_t now = uv_now(loop_);
    uv_timer_start(timer_.get(), on_timer, at > now ? at - now : 0, 0);
  }

  static void on_timer(uv_timer_t* timer) {
    auto* self = static_cast<KeepAliveQueue*>(timer->data);
    self->scheduled_at_ = DeadlinePlan::kNever;
    uint64_t now = uv_now(self->loop_);
    Expiry expiry{TimeoutName::client_keepalive_timeout, self->timeout_};
    while (!self->items_.empty() && now >= self->expires_at(self->items_.front())) {
      T* first = &self->items_.front();
      first->expire(expiry);
      assert((self->items_.empty() || &self->items_.front() != first) &&
             "an expired connection leaves the queue");
    }
    self->schedule();
  }

  uv_loop_t* loop_;
  List items_;  // oldest first
  Duration timeout_;
  UvPtr<uv_timer_t> timer_;
  uint64_t scheduled_at_ = DeadlinePlan::kNever;  // when the timer fires; kNever: stopped
};

}  // namespace cutoff
