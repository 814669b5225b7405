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
//
// A phase in which a body moves may also carry a low-speed limit (min_rate):
// consecutive windows, each of which must carry a number of body bytes.
// `arrived()` adds the body bytes it is given to the running window; the
// window is judged only when the timer wakes at its end, which is when the
// next one begins. The first window starts with the first byte that arrives
// in the phase: until then nothing moves at all, which is idle_timeout's to
// judge (a request body waiting for the upstream's 100 Continue, say). Bytes
// of chunk framing arrive but count for nothing. While the client pauses a
// download (it does not read, so cutoff stops reading the upstream), the
// window is held, as curl holds its own low-speed check while a transfer
// is paused: the client's pause is not the upstream's drip.
//
// Arrivals misjudge a slow receiver: cutoff reads a sender only as fast as
// the receiver's kernel buffers empty, which the kernel reports in bursts
// of a megabyte or more. So once cutoff has had to hold bytes back in a
// window (note_backlog()), a window short of arrivals still passes if the
// receivers it held bytes for acknowledged enough of them since (the
// listener's mark_deliveries() and deliveries_since_mark(), asked only at
// those moments).

#include <uv.h>

#include <cstdint>
#include <optional>

#include "cutoff/duration.hpp"
#include "cutoff/min_rate.hpp"
#include "cutoff/timeout.hpp"
#include "cutoff/uv_handle.hpp"

namespace cutoff {

struct Expiry {
  TimeoutName name;
  Duration value;  // for min_rate: its window
  // min_rate only: the bytes that each window had to carry.
  uint64_t min_bytes = 0;
};

// The arithmetic of a deadline, free of any event loop so that unit tests can
// drive it with a fake clock. Times are milliseconds on a monotonic clock.
class DeadlinePlan {
 public:
  static constexpr uint64_t kNever = UINT64_MAX;

  // `idle`: expires `value` after the last touch() instead of after `now`.
  // `min_rate`: the phase's windows, the first from `now`; off for most.
  void arm_phase(TimeoutName name, Duration value, uint64_t now, bool idle,
                 MinRate min_rate = MinRate::off());
  // An `off` value leaves the span uncapped.
  void arm_cap(TimeoutName name, Duration value, uint64_t now);
  void clear_cap() { cap_at_ = kNever; }
  void disarm();
  // Bytes went out at `now` (a write reached the kernel): the idle clock
  // restarts.
  void touch(uint64_t now) { last_activity_ = now; }
  // Bytes arrived at `now`, `body_bytes` of them body: the idle clock
  // restarts and min_rate counts the body. True when they started the
  // phase's first min_rate window, which the timer must now wake for.
  bool arrived(uint64_t now, uint64_t body_bytes) {
    last_activity_ = now;
    window_bytes_ += body_bytes;
    if (rate_ != RateState::awaiting_bytes) return false;
    start_window(now, min_rate_.window().ms());
    return true;
  }
  // The client paused the download: the running window stops where it
  // is...
  void pause_rate(uint64_t now);
  // ...and goes on from there once the client caught up. True when a
  // window resumed, which the timer must now wake for. A new phase drops
  // the pause.
  bool resume_rate(uint64_t now);

  bool armed() const { return phase_at_ != kNever || cap_at_ != kNever; }
  // When the timer must next wake up (a deadline, or the end of a min_rate
  // window); kNever when disarmed.
  uint64_t wake_at() const;
  // What expired at `now`, or nothing if activity moved the deadline on. A
  // min_rate window that has ended with enough bytes gives way to the next
  // one here, which is why this is not const: call it when the timer wakes.
  std::optional<Expiry> expired(uint64_t now);
  // Milliseconds left before the deadline fires if no more bytes move
  // (0 when overdue).
  uint64_t remaining(uint64_t now) const;
  TimeoutName phase_name() const { return phase_name_; }
  // The timeout that fires first if nothing changes: the cap's, the phase's
  // or min_rate.
  TimeoutName due_name() const;

  // Cutoff held bytes back for a slow receiver in a running window: the
  // listener marks what its receivers had acknowledged then (once; later
  // marks come with each window passed on deliveries).
  bool wants_delivery_mark() const { return rate_ == RateState::running && !delivery_marked_; }
  void set_delivery_marked() { delivery_marked_ = true; }
  bool delivery_marked() const { return delivery_marked_; }
  // At the end of a window short of arrivals, after a backlog: passes it,
  // starting the next, if the receivers acknowledged `delivered` >= the
  // amount since the mark (which the listener then moves to now).
  bool pass_on_delivery(uint64_t now, uint64_t delivered);

 private:
  uint64_t phase_deadline() const;
  // When min_rate fires if no more bytes move; kNever when it is off.
  uint64_t rate_deadline() const;
  void start_window(uint64_t now, uint64_t length);
  void next_window(uint64_t now);

  TimeoutName phase_name_ = TimeoutName::client_keepalive_timeout;
  Duration phase_value_;
  uint64_t phase_at_ = kNever;  // fixed phases: absolute expiry
  bool phase_idle_ = false;
  uint64_t last_activity_ = 0;

  enum class RateState : uint8_t { off, awaiting_bytes, running, held };
  MinRate min_rate_;
  RateState rate_ = RateState::off;
  uint64_t window_end_ = kNever;  // set while running, else kNever
  uint64_t window_left_ = 0;      // while held: what was left of the window
  uint64_t window_bytes_ = 0;     // moved since the current window began
  bool delivery_marked_ = false;  // since a backlog, see pass_on_delivery()

  TimeoutName cap_name_ = TimeoutName::request_timeout;
  Duration cap_value_;
  uint64_t cap_at_ = kNever;
};

// Saturating addition of a duration to a time.
inline uint64_t add_saturating(uint64_t now, Duration d) {
  if (d.is_off()) return DeadlinePlan::kNever;
  return d.ms() > DeadlinePlan::kNever - now ? DeadlinePlan::kNever : now + d.ms();
}

class DeadlineListener {
 public:
  virtual void on_deadline(const Expiry& expiry) = 0;
  // For min_rate with slow receivers (see DeadlinePlan): remember what the
  // receivers cutoff holds bytes back for have acknowledged so far...
  virtual void mark_deliveries() {}
  // ...and tell how many more they acknowledged since.
  virtual uint64_t deliveries_since_mark() { return 0; }

 protected:
  ~DeadlineListener() = default;
};

// A DeadlinePlan driven by one libuv timer.
//
// The timer runs whenever the plan is armed; it may also wake early, after a
// deadline moved later or was disarmed, and then simply sleeps again. An
// expiry calls listener.on_deadline() exactly once; the listener must re-arm
// or disarm from there.
//
// A deadline may be lent along with what it guards (an exchange's state,
// exchange_state.hpp, goes from connection to connection): whoever borrows
// it names itself with listen() before arming it, and disarms it before
// giving it back. A disarmed deadline calls no listener, whatever its timer
// does.
class Deadline {
 public:
  Deadline(uv_loop_t* loop, DeadlineListener& listener) : Deadline(loop) { listener_ = &listener; }
  explicit Deadline(uv_loop_t* loop);

  void listen(DeadlineListener* listener) { listener_ = listener; }

  void arm(TimeoutName name, Duration value, bool idle = false);
  // An idle phase in which a body moves: it ends after `value` without a
  // byte, or at the end of a min_rate window short of its bytes.
  void arm(TimeoutName name, Duration value, MinRate min_rate);
  void arm_cap(TimeoutName name, Duration value);
  void clear_cap();
  void disarm();
  // A write reached the kernel: one store, no timer update.
  void touch() { plan_.touch(uv_now(loop_)); }
  // Bytes arrived, `body_bytes` of them body: a couple of stores, and a
  // timer update only when they start the phase's first min_rate window.
  void arrived(uint64_t body_bytes) {
    if (plan_.arrived(uv_now(loop_), body_bytes)) schedule();
  }
  void pause_rate() { plan_.pause_rate(uv_now(loop_)); }
  // Cutoff holds bytes back for a slow receiver.
  void note_backlog() {
    if (!plan_.wants_delivery_mark()) return;
    listener_->mark_deliveries();
    plan_.set_delivery_marked();
  }
  void resume_rate() {
    if (plan_.resume_rate(uv_now(loop_))) schedule();
  }

  bool armed() const { return plan_.armed(); }
  TimeoutName phase_name() const { return plan_.phase_name(); }
  TimeoutName due_name() const { return plan_.due_name(); }
  uint64_t remaining() const { return plan_.remaining(uv_now(loop_)); }

 private:
  void schedule();
  static void on_timer(uv_timer_t* timer);

  uv_loop_t* loop_;
  DeadlineListener* listener_ = nullptr;
  DeadlinePlan plan_;
  UvPtr<uv_timer_t> timer_;
  uint64_t scheduled_at_ = DeadlinePlan::kNever;  // when the timer fires; kNever: stopped
};

}  // namespace cutoff
