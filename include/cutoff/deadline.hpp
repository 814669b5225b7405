#pragma once
// The single deadline that guards whatever a connection is waiting for.
//
// A connection moves through phases; each phase re-points the deadline at its
// own timeout ("arm"). Two timeouts may additionally cap a whole span of
// phases (request_timeout over an exchange, tunnel_max_duration over a
// tunnel); the deadline then fires at whichever of phase and cap comes first
// and reports that one's name. Idle timeouts are measured from the last byte
// moved: `touch()` only records the time, and an early wake-up re-arms for the
// remainder, so moving bytes never touches the timer heap.

#include <uv.h>

#include <cstdint>
#include <optional>

#include "cutoff/duration.hpp"
#include "cutoff/timeout.hpp"
#include "cutoff/uv_handle.hpp"

namespace cutoff {

struct Expiry {
  TimeoutName name;
  Duration value;
};

// The arithmetic of a deadline, free of any event loop so that unit tests can
// drive it with a fake clock. Times are milliseconds on a monotonic clock.
class DeadlinePlan {
 public:
  static constexpr uint64_t kNever = UINT64_MAX;

  // `idle`: expires `value` after the last touch() instead of after `now`.
  void arm_phase(TimeoutName name, Duration value, uint64_t now, bool idle);
  // An `off` value leaves the span uncapped.
  void arm_cap(TimeoutName name, Duration value, uint64_t now);
  void clear_cap() { cap_at_ = kNever; }
  void disarm();
  void touch(uint64_t now) { last_activity_ = now; }

  bool armed() const { return phase_at_ != kNever || cap_at_ != kNever; }
  // When the timer must next wake up; kNever when disarmed.
  uint64_t wake_at() const;
  // What expired at `now`, or nothing if activity moved the deadline on.
  std::optional<Expiry> expired(uint64_t now) const;
  // Milliseconds left before the deadline fires (0 when overdue).
  uint64_t remaining(uint64_t now) const;
  TimeoutName phase_name() const { return phase_name_; }
  // The timeout that fires first if nothing changes: the cap's or the phase's.
  TimeoutName due_name() const;

 private:
  uint64_t phase_deadline() const;

  TimeoutName phase_name_ = TimeoutName::client_keepalive_timeout;
  Duration phase_value_;
  uint64_t phase_at_ = kNever;  // fixed phases: absolute expiry
  bool phase_idle_ = false;
  uint64_t last_activity_ = 0;

  TimeoutName cap_name_ = TimeoutName::request_timeout;
  Duration cap_value_;
  uint64_t cap_at_ = kNever;
};

// Saturating addition of a duration to a time.
uint64_t add_saturating(uint64_t now, Duration d);

class DeadlineListener {
 public:
  virtual void on_deadline(const Expiry& expiry) = 0;

 protected:
  ~DeadlineListener() = default;
};

// A DeadlinePlan driven by one libuv timer.
//
// The timer runs whenever the plan is armed; it may also wake early, after a
// deadline moved later or was disarmed, and then simply sleeps again. An
// expiry calls listener.on_deadline() exactly once; the listener must re-arm
// or disarm from there.
class Deadline {
 public:
  Deadline(uv_loop_t* loop, DeadlineListener& listener);

  void arm(TimeoutName name, Duration value, bool idle = false);
  void arm_cap(TimeoutName name, Duration value);
  void clear_cap();
  void disarm();
  void touch() { plan_.touch(uv_now(loop_)); }

  bool armed() const { return plan_.armed(); }
  TimeoutName phase_name() const { return plan_.phase_name(); }
  TimeoutName due_name() const { return plan_.due_name(); }
  uint64_t remaining() const { return plan_.remaining(uv_now(loop_)); }

 private:
  void schedule();
  static void on_timer(uv_timer_t* timer);

  uv_loop_t* loop_;
  DeadlineListener& listener_;
  DeadlinePlan plan_;
  UvPtr<uv_timer_t> timer_;
  uint64_t scheduled_at_ = DeadlinePlan::kNever;  // when the timer fires; kNever: stopped
};

}  // namespace cutoff
