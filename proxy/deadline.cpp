#include "cutoff/deadline.hpp"

#include <algorithm>
#include <cassert>

namespace cutoff {

void DeadlinePlan::arm_phase(TimeoutName name, Duration value, uint64_t now, bool idle,
                             MinRate min_rate) {
  assert(!value.is_off() && "a phase always has a deadline");
  phase_name_ = name;
  phase_value_ = value;
  phase_idle_ = idle;
  last_activity_ = now;
  phase_at_ = add_saturating(now, value);
  min_rate_ = min_rate;
  rate_ = min_rate.is_off() ? RateState::off : RateState::awaiting_bytes;
  window_end_ = kNever;
  window_bytes_ = 0;
  delivery_marked_ = false;
}

void DeadlinePlan::arm_cap(TimeoutName name, Duration value, uint64_t now) {
  cap_name_ = name;
  cap_value_ = value;
  cap_at_ = add_saturating(now, value);
}

void DeadlinePlan::disarm() {
  phase_at_ = kNever;
  cap_at_ = kNever;
  rate_ = RateState::off;
  window_end_ = kNever;
}

void DeadlinePlan::start_window(uint64_t now, uint64_t length) {
  rate_ = RateState::running;
  window_end_ = now > kNever - length ? kNever : now + length;
}

void DeadlinePlan::pause_rate(uint64_t now) {
  if (rate_ != RateState::running) return;
  rate_ = RateState::held;
  window_left_ = window_end_ > now ? window_end_ - now : 0;
  window_end_ = kNever;
}

bool DeadlinePlan::resume_rate(uint64_t now) {
  if (rate_ != RateState::held) return false;
  start_window(now, window_left_);
  return true;
}

uint64_t DeadlinePlan::phase_deadline() const {
  if (phase_at_ == kNever) return kNever;
  return phase_idle_ ? add_saturating(last_activity_, phase_value_) : phase_at_;
}

uint64_t DeadlinePlan::rate_deadline() const {
  if (window_end_ == kNever) return kNever;
  // A window that already has its bytes passes; the next one, still empty,
  // is the first that can fail.
  return window_bytes_ >= min_rate_.bytes() ? add_saturating(window_end_, min_rate_.window())
                                            : window_end_;
}

// Windows are consecutive, not sliding: the next one starts where the last
// ended. Should the loop wake so late that the next one has ended as well,
// that lost time is cutoff's, not the peer's: the next window starts now.
void DeadlinePlan::next_window(uint64_t now) {
  uint64_t window = min_rate_.window().ms();
  start_window(window_end_ + window > now ? window_end_ : now, window);
  window_bytes_ = 0;
}

bool DeadlinePlan::pass_on_delivery(uint64_t now, uint64_t delivered) {
  if (!delivery_marked_ || delivered < min_rate_.bytes()) return false;
  next_window(now);
  return true;
}

uint64_t DeadlinePlan::wake_at() const {
  return std::min({phase_deadline(), cap_at_, window_end_});
}

std::optional<Expiry> DeadlinePlan::expired(uint64_t now) {
  // The cap wins a tie: it is the stricter promise made to the user. An idle
  // phase wins over min_rate: "no byte at all" says more than "too few".
  if (cap_at_ != kNever && now >= cap_at_) return Expiry{cap_name_, cap_value_};
  uint64_t phase_at = phase_deadline();
  if (phase_at != kNever && now >= phase_at) return Expiry{phase_name_, phase_value_};
  if (window_end_ != kNever && now >= window_end_) {
    if (window_bytes_ < min_rate_.bytes()) {
      return Expiry{TimeoutName::min_rate, min_rate_.window(), min_rate_.bytes()};
    }
    next_window(now);
  }
  return std::nullopt;
}

// Ties are broken as expired() breaks them.
TimeoutName DeadlinePlan::due_name() const {
  uint64_t phase_at = phase_deadline();
  uint64_t rate_at = rate_deadline();
  if (cap_at_ != kNever && cap_at_ <= std::min(phase_at, rate_at)) return cap_name_;
  return rate_at < phase_at ? TimeoutName::min_rate : phase_name_;
}

uint64_t DeadlinePlan::remaining(uint64_t now) const {
  uint64_t at = std::min({phase_deadline(), cap_at_, rate_deadline()});
  return at == kNever ? kNever : (at > now ? at - now : 0);
}

Deadline::Deadline(uv_loop_t* loop) : loop_(loop), timer_(make_uv<uv_timer_t>()) {
  uv_timer_init(loop_, timer_.get());
  timer_->data = this;
}

void Deadline::arm(TimeoutName name, Duration value, bool idle) {
  plan_.arm_phase(name, value, uv_now(loop_), idle);
  schedule();
}

void Deadline::arm(TimeoutName name, Duration value, MinRate min_rate) {
  plan_.arm_phase(name, value, uv_now(loop_), /*idle=*/true, min_rate);
  schedule();
}

void Deadline::arm_cap(TimeoutName name, Duration value) {
  plan_.arm_cap(name, value, uv_now(loop_));
  schedule();
}

void Deadline::clear_cap() {
  plan_.clear_cap();
  schedule();
}

// The timer is left as it is: it wakes, finds nothing armed and stops.
void Deadline::disarm() {
  plan_.disarm();
}

void Deadline::schedule() {
  uint64_t at = plan_.wake_at();
  // A deadline that moves later (or goes away) leaves the timer where it is:
  // it wakes early, finds nothing due and sleeps again until the new time.
  // Most phase changes move the deadline later, so most of them cost no
  // update of the loop's timer heap.
  if (at == DeadlinePlan::kNever || at >= scheduled_at_) return;
  scheduled_at_ = at;
  uint64_t now = uv_now(loop_);
  uv_timer_start(timer_.get(), on_timer, at > now ? at - now : 0, 0);
}

void Deadline::on_timer(uv_timer_t* timer) {
  auto* self = static_cast<Deadline*>(timer->data);
  self->scheduled_at_ = DeadlinePlan::kNever;
  uint64_t now = uv_now(self->loop_);
  std::optional<Expiry> expiry = self->plan_.expired(now);
  // A window short of arrivals after a backlog: the receiver may have taken
  // enough all the same.
  if (expiry && expiry->name == TimeoutName::min_rate && self->plan_.delivery_marked() &&
      self->plan_.pass_on_delivery(now, self->listener_->deliveries_since_mark())) {
    self->listener_->mark_deliveries();
    expiry.reset();
  }
  if (!expiry) {
    self->schedule();  // bytes moved since arming: sleep for the remainder
    return;
  }
  self->plan_.disarm();
  self->listener_->on_deadline(*expiry);
}

}  // namespace cutoff
