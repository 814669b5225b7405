#include "cutoff/deadline.hpp"

#include <algorithm>
#include <cassert>

namespace cutoff {

uint64_t add_saturating(uint64_t now, Duration d) {
  if (d.is_off()) return DeadlinePlan::kNever;
  return d.ms() > DeadlinePlan::kNever - now ? DeadlinePlan::kNever : now + d.ms();
}

void DeadlinePlan::arm_phase(TimeoutName name, Duration value, uint64_t now, bool idle) {
  assert(!value.is_off() && "a phase always has a deadline");
  phase_name_ = name;
  phase_value_ = value;
  phase_idle_ = idle;
  last_activity_ = now;
  phase_at_ = add_saturating(now, value);
}

void DeadlinePlan::arm_cap(TimeoutName name, Duration value, uint64_t now) {
  cap_name_ = name;
  cap_value_ = value;
  cap_at_ = add_saturating(now, value);
}

void DeadlinePlan::disarm() {
  phase_at_ = kNever;
  cap_at_ = kNever;
}

uint64_t DeadlinePlan::phase_deadline() const {
  if (phase_at_ == kNever) return kNever;
  return phase_idle_ ? add_saturating(last_activity_, phase_value_) : phase_at_;
}

uint64_t DeadlinePlan::wake_at() const {
  return std::min(phase_deadline(), cap_at_);
}

std::optional<Expiry> DeadlinePlan::expired(uint64_t now) const {
  // The cap wins a tie: it is the stricter promise made to the user.
  if (cap_at_ != kNever && now >= cap_at_) return Expiry{cap_name_, cap_value_};
  uint64_t phase_at = phase_deadline();
  if (phase_at != kNever && now >= phase_at) return Expiry{phase_name_, phase_value_};
  return std::nullopt;
}

TimeoutName DeadlinePlan::due_name() const {
  return cap_at_ != kNever && cap_at_ <= phase_deadline() ? cap_name_ : phase_name_;
}

uint64_t DeadlinePlan::remaining(uint64_t now) const {
  uint64_t at = wake_at();
  return at == kNever ? kNever : (at > now ? at - now : 0);
}

Deadline::Deadline(uv_loop_t* loop, DeadlineListener& listener)
    : loop_(loop), listener_(listener), timer_(make_uv<uv_timer_t>()) {
  uv_timer_init(loop_, timer_.get());
  timer_->data = this;
}

void Deadline::arm(TimeoutName name, Duration value, bool idle) {
  plan_.arm_phase(name, value, uv_now(loop_), idle);
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

void Deadline::disarm() {
  plan_.disarm();
  schedule();
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
  std::optional<Expiry> expiry = self->plan_.expired(uv_now(self->loop_));
  if (!expiry) {
    self->schedule();  // bytes moved since arming: sleep for the remainder
    return;
  }
  self->plan_.disarm();
  self->listener_.on_deadline(*expiry);
}

}  // namespace cutoff
