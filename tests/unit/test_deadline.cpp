#include <uv.h>

#include <catch2/catch.hpp>
#include <cstdint>
#include <optional>
#include <vector>

#include "cutoff/deadline.hpp"
#include "cutoff/duration.hpp"
#include "cutoff/timeout.hpp"

using namespace cutoff;

namespace {

constexpr uint64_t kNever = DeadlinePlan::kNever;

Duration ms(uint64_t n) {
  return Duration::millis(n);
}

}  // namespace

TEST_CASE("a fresh plan is disarmed", "[deadline]") {
  DeadlinePlan plan;
  CHECK_FALSE(plan.armed());
  CHECK(plan.wake_at() == kNever);
  CHECK(plan.remaining(0) == kNever);
  CHECK(plan.remaining(123456) == kNever);
  CHECK_FALSE(plan.expired(0).has_value());
  CHECK_FALSE(plan.expired(kNever - 1).has_value());
  CHECK_FALSE(plan.expired(kNever).has_value());
}

TEST_CASE("a fixed phase expires its value after arming, whatever moves", "[deadline]") {
  DeadlinePlan plan;
  plan.arm_phase(TimeoutName::connect_timeout, ms(5000), 1000, /*idle=*/false);
  CHECK(plan.armed());
  CHECK(plan.phase_name() == TimeoutName::connect_timeout);
  CHECK(plan.wake_at() == 6000);
  CHECK(plan.remaining(1000) == 5000);
  CHECK(plan.remaining(2500) == 3500);

  // Activity does not move a fixed phase.
  plan.touch(5500);
  CHECK(plan.wake_at() == 6000);
  CHECK(plan.remaining(5500) == 500);

  CHECK_FALSE(plan.expired(1000).has_value());
  CHECK_FALSE(plan.expired(5999).has_value());
  std::optional<Expiry> e = plan.expired(6000);
  REQUIRE(e.has_value());
  CHECK(e->name == TimeoutName::connect_timeout);
  CHECK(e->value == ms(5000));
  REQUIRE(plan.expired(9000).has_value());
  CHECK(plan.expired(9000)->name == TimeoutName::connect_timeout);
  CHECK(plan.remaining(6000) == 0);
  CHECK(plan.remaining(7000) == 0);
}

TEST_CASE("an idle phase is measured from the last touch", "[deadline]") {
  DeadlinePlan plan;
  plan.arm_phase(TimeoutName::idle_timeout, ms(1000), 100, /*idle=*/true);
  CHECK(plan.phase_name() == TimeoutName::idle_timeout);
  CHECK(plan.wake_at() == 1100);

  plan.touch(600);
  CHECK(plan.wake_at() == 1600);
  CHECK(plan.remaining(1100) == 500);
  // The timer woke at the originally scheduled time: nothing expired, it must
  // sleep for the remainder.
  CHECK_FALSE(plan.expired(1100).has_value());
  CHECK_FALSE(plan.expired(1599).has_value());

  plan.touch(1500);
  CHECK(plan.wake_at() == 2500);
  CHECK_FALSE(plan.expired(1600).has_value());
  CHECK_FALSE(plan.expired(2499).has_value());

  std::optional<Expiry> e = plan.expired(2500);
  REQUIRE(e.has_value());
  CHECK(e->name == TimeoutName::idle_timeout);
  CHECK(e->value == ms(1000));
  CHECK(plan.remaining(2500) == 0);
}

TEST_CASE("arming a phase starts the idle clock afresh and replaces the old phase", "[deadline]") {
  DeadlinePlan plan;
  plan.touch(0);
  plan.arm_phase(TimeoutName::tunnel_idle_timeout, ms(300), 1000, /*idle=*/true);
  CHECK(plan.wake_at() == 1300);  // not 300: arming counts as activity

  plan.arm_phase(TimeoutName::response_header_timeout, ms(2000), 1200, /*idle=*/false);
  CHECK(plan.phase_name() == TimeoutName::response_header_timeout);
  CHECK(plan.wake_at() == 3200);
  plan.touch(3000);
  CHECK(plan.wake_at() == 3200);  // now a fixed phase: touch is ignored
  CHECK_FALSE(plan.expired(1300).has_value());
  REQUIRE(plan.expired(3200).has_value());
  CHECK(plan.expired(3200)->name == TimeoutName::response_header_timeout);
  CHECK(plan.expired(3200)->value == ms(2000));
}

TEST_CASE("a cap that comes first wins", "[deadline]") {
  DeadlinePlan plan;
  plan.arm_cap(TimeoutName::request_timeout, ms(3000), 0);
  plan.arm_phase(TimeoutName::idle_timeout, ms(1000), 0, /*idle=*/true);
  // Bytes keep moving: the idle phase never fires but the cap does.
  for (uint64_t t = 500; t < 3000; t += 500) {
    plan.touch(t);
    CHECK_FALSE(plan.expired(t).has_value());
  }
  CHECK(plan.wake_at() == 3000);
  CHECK(plan.remaining(2500) == 500);
  std::optional<Expiry> e = plan.expired(3000);
  REQUIRE(e.has_value());
  CHECK(e->name == TimeoutName::request_timeout);
  CHECK(e->value == ms(3000));
}

TEST_CASE("a phase that comes before its cap reports the phase", "[deadline]") {
  DeadlinePlan plan;
  plan.arm_cap(TimeoutName::tunnel_max_duration, ms(60000), 0);
  plan.arm_phase(TimeoutName::tunnel_idle_timeout, ms(1000), 0, /*idle=*/true);
  CHECK(plan.wake_at() == 1000);
  CHECK_FALSE(plan.expired(999).has_value());
  std::optional<Expiry> e = plan.expired(1000);
  REQUIRE(e.has_value());
  CHECK(e->name == TimeoutName::tunnel_idle_timeout);
  CHECK(e->value == ms(1000));
}

TEST_CASE("the cap wins a tie with the phase", "[deadline]") {
  SECTION("fixed phase") {
    DeadlinePlan plan;
    plan.arm_cap(TimeoutName::request_timeout, ms(5000), 0);
    plan.arm_phase(TimeoutName::response_header_timeout, ms(4000), 1000, /*idle=*/false);
    CHECK(plan.wake_at() == 5000);
    std::optional<Expiry> e = plan.expired(5000);
    REQUIRE(e.has_value());
    CHECK(e->name == TimeoutName::request_timeout);
    CHECK(e->value == ms(5000));
  }
  SECTION("idle phase, both long overdue") {
    DeadlinePlan plan;
    plan.arm_cap(TimeoutName::tunnel_max_duration, ms(2000), 0);
    plan.arm_phase(TimeoutName::tunnel_idle_timeout, ms(500), 0, /*idle=*/true);
    std::optional<Expiry> e = plan.expired(10000);
    REQUIRE(e.has_value());
    CHECK(e->name == TimeoutName::tunnel_max_duration);
    CHECK(e->value == ms(2000));
  }
}

TEST_CASE("an off cap leaves the span uncapped", "[deadline]") {
  DeadlinePlan plan;
  plan.arm_cap(TimeoutName::request_timeout, Duration::off(), 0);
  CHECK_FALSE(plan.armed());
  CHECK(plan.wake_at() == kNever);

  plan.arm_phase(TimeoutName::idle_timeout, ms(100), 0, /*idle=*/true);
  CHECK(plan.wake_at() == 100);
  plan.touch(1'000'000);
  CHECK(plan.wake_at() == 1'000'100);
  CHECK_FALSE(plan.expired(1'000'099).has_value());
  REQUIRE(plan.expired(1'000'100).has_value());
  CHECK(plan.expired(1'000'100)->name == TimeoutName::idle_timeout);

  SECTION("an off cap replaces an earlier real cap") {
    DeadlinePlan capped;
    capped.arm_cap(TimeoutName::request_timeout, ms(50), 0);
    capped.arm_phase(TimeoutName::idle_timeout, ms(1000), 0, /*idle=*/false);
    CHECK(capped.wake_at() == 50);
    capped.arm_cap(TimeoutName::request_timeout, Duration::off(), 10);
    CHECK(capped.wake_at() == 1000);
    CHECK_FALSE(capped.expired(999).has_value());
    REQUIRE(capped.expired(1000).has_value());
    CHECK(capped.expired(1000)->name == TimeoutName::idle_timeout);
  }
}

TEST_CASE("clear_cap keeps the phase and drops the cap", "[deadline]") {
  DeadlinePlan plan;
  plan.arm_cap(TimeoutName::request_timeout, ms(100), 0);
  plan.arm_phase(TimeoutName::idle_timeout, ms(500), 0, /*idle=*/false);
  CHECK(plan.wake_at() == 100);
  plan.clear_cap();
  CHECK(plan.armed());
  CHECK(plan.wake_at() == 500);
  CHECK_FALSE(plan.expired(100).has_value());
  REQUIRE(plan.expired(500).has_value());
  CHECK(plan.expired(500)->name == TimeoutName::idle_timeout);
}

TEST_CASE("a cap alone arms the plan", "[deadline]") {
  DeadlinePlan plan;
  plan.arm_cap(TimeoutName::tunnel_max_duration, ms(700), 300);
  CHECK(plan.armed());
  CHECK(plan.wake_at() == 1000);
  CHECK(plan.remaining(400) == 600);
  CHECK_FALSE(plan.expired(999).has_value());
  REQUIRE(plan.expired(1000).has_value());
  CHECK(plan.expired(1000)->name == TimeoutName::tunnel_max_duration);
  CHECK(plan.expired(1000)->value == ms(700));
}

TEST_CASE("disarm forgets both phase and cap", "[deadline]") {
  DeadlinePlan plan;
  plan.arm_cap(TimeoutName::request_timeout, ms(100), 0);
  plan.arm_phase(TimeoutName::connect_timeout, ms(50), 0, /*idle=*/false);
  REQUIRE(plan.armed());
  plan.disarm();
  CHECK_FALSE(plan.armed());
  CHECK(plan.wake_at() == kNever);
  CHECK(plan.remaining(0) == kNever);
  CHECK_FALSE(plan.expired(50).has_value());
  CHECK_FALSE(plan.expired(100).has_value());
  CHECK_FALSE(plan.expired(kNever).has_value());

  // And it can be armed again afterwards.
  plan.arm_phase(TimeoutName::client_keepalive_timeout, ms(10), 200, /*idle=*/false);
  CHECK(plan.armed());
  CHECK(plan.wake_at() == 210);
  REQUIRE(plan.expired(210).has_value());
  CHECK(plan.expired(210)->name == TimeoutName::client_keepalive_timeout);
}

TEST_CASE("add_saturating never wraps", "[deadline]") {
  CHECK(add_saturating(10, ms(5)) == 15);
  CHECK(add_saturating(0, ms(0)) == 0);
  CHECK(add_saturating(123, Duration::off()) == kNever);
  CHECK(add_saturating(kNever - 10, ms(9)) == kNever - 1);
  CHECK(add_saturating(kNever - 10, ms(10)) == kNever);
  CHECK(add_saturating(kNever - 10, ms(11)) == kNever);
  CHECK(add_saturating(kNever - 10, ms(kNever)) == kNever);
  CHECK(add_saturating(kNever, ms(1)) == kNever);
  CHECK(add_saturating(1, ms(kNever)) == kNever);
}

TEST_CASE("deadlines near the end of time saturate instead of firing early", "[deadline]") {
  SECTION("a huge fixed phase") {
    DeadlinePlan plan;
    plan.arm_phase(TimeoutName::drain_timeout, ms(kNever - 5), 100, /*idle=*/false);
    CHECK(plan.wake_at() == kNever);
    CHECK_FALSE(plan.expired(0).has_value());
    CHECK_FALSE(plan.expired(100).has_value());
    CHECK_FALSE(plan.expired(kNever - 1).has_value());
  }
  SECTION("a huge cap") {
    DeadlinePlan plan;
    plan.arm_cap(TimeoutName::request_timeout, ms(kNever - 1), 2);
    plan.arm_phase(TimeoutName::idle_timeout, ms(10), 2, /*idle=*/false);
    CHECK(plan.wake_at() == 12);
    REQUIRE(plan.expired(12).has_value());
    CHECK(plan.expired(12)->name == TimeoutName::idle_timeout);
  }
  SECTION("an idle phase touched near the end") {
    DeadlinePlan plan;
    plan.arm_phase(TimeoutName::idle_timeout, ms(1000), 0, /*idle=*/true);
    plan.touch(kNever - 10);
    CHECK(plan.armed());
    CHECK(plan.wake_at() == kNever);
    CHECK_FALSE(plan.expired(kNever - 10).has_value());
    CHECK_FALSE(plan.expired(kNever - 1).has_value());
  }
  SECTION("close to, but below, the end") {
    DeadlinePlan plan;
    plan.arm_phase(TimeoutName::linger_timeout, ms(50), kNever - 100, /*idle=*/false);
    CHECK(plan.wake_at() == kNever - 50);
    CHECK(plan.remaining(kNever - 100) == 50);
    CHECK_FALSE(plan.expired(kNever - 51).has_value());
    REQUIRE(plan.expired(kNever - 50).has_value());
    CHECK(plan.expired(kNever - 50)->name == TimeoutName::linger_timeout);
  }
}

// --- the libuv-driven Deadline ----------------------------------------------

namespace {

struct RecordingListener final : DeadlineListener {
  struct Fired {
    Expiry expiry;
    uint64_t at;
    bool armed_in_callback;
  };
  uv_loop_t* loop = nullptr;
  Deadline* deadline = nullptr;
  std::vector<Fired> fired;

  void on_deadline(const Expiry& expiry) override {
    fired.push_back({expiry, uv_now(loop), deadline->armed()});
  }
};

// Touches the deadline every few milliseconds for a while, then stops.
struct Toucher {
  uv_timer_t timer{};
  Deadline* deadline = nullptr;
  RecordingListener* listener = nullptr;
  int touches_left = 0;
  uint64_t last_touch = 0;
  size_t fired_while_touching = 0;

  static void on_tick(uv_timer_t* t) {
    auto* self = static_cast<Toucher*>(t->data);
    self->deadline->touch();
    self->last_touch = uv_now(t->loop);
    self->fired_while_touching += self->listener->fired.size();
    if (--self->touches_left == 0) uv_timer_stop(t);
  }
};

}  // namespace

TEST_CASE("Deadline on a real loop: touch keeps an idle deadline alive, expiry fires once",
          "[deadline][uv]") {
  uv_loop_t loop;
  REQUIRE(uv_loop_init(&loop) == 0);

  RecordingListener listener;
  listener.loop = &loop;
  Toucher toucher;
  {
    Deadline deadline(&loop, listener);
    listener.deadline = &deadline;
    CHECK_FALSE(deadline.armed());

    uv_update_time(&loop);
    const uint64_t armed_at = uv_now(&loop);
    deadline.arm(TimeoutName::idle_timeout, Duration::millis(20), /*idle=*/true);
    CHECK(deadline.armed());
    CHECK(deadline.phase_name() == TimeoutName::idle_timeout);
    CHECK(deadline.remaining() == 20);

    // Touch every 4 ms for about 60 ms: three times the idle timeout.
    REQUIRE(uv_timer_init(&loop, &toucher.timer) == 0);
    toucher.timer.data = &toucher;
    toucher.deadline = &deadline;
    toucher.listener = &listener;
    toucher.touches_left = 15;
    REQUIRE(uv_timer_start(&toucher.timer, Toucher::on_tick, 4, 4) == 0);

    // Runs until nothing is active: the toucher stops itself, then the
    // deadline fires and, since the listener does not re-arm, stays stopped.
    uv_run(&loop, UV_RUN_DEFAULT);

    CHECK(toucher.touches_left == 0);
    CHECK(toucher.fired_while_touching == 0);
    REQUIRE(listener.fired.size() == 1);
    const RecordingListener::Fired& f = listener.fired.front();
    CHECK(f.expiry.name == TimeoutName::idle_timeout);
    CHECK(f.expiry.value == Duration::millis(20));
    CHECK_FALSE(f.armed_in_callback);  // the plan is disarmed before the listener runs
    CHECK(f.at >= toucher.last_touch + 20);
    CHECK(f.at >= armed_at + 60);  // the touches really kept it alive
    CHECK_FALSE(deadline.armed());

    // Nothing else is pending: another turn of the loop reports nothing more.
    uv_run(&loop, UV_RUN_NOWAIT);
    CHECK(listener.fired.size() == 1);

    // A disarmed deadline never fires.
    deadline.arm(TimeoutName::connect_timeout, Duration::millis(5));
    deadline.disarm();
    CHECK_FALSE(deadline.armed());
    uv_run(&loop, UV_RUN_DEFAULT);
    CHECK(listener.fired.size() == 1);
  }  // ~Deadline hands its timer to uv_close

  uv_close(reinterpret_cast<uv_handle_t*>(&toucher.timer), nullptr);
  uv_run(&loop, UV_RUN_DEFAULT);
  CHECK(uv_loop_close(&loop) == 0);
}

TEST_CASE("Deadline on a real loop: a cap fires before an idle phase that keeps moving",
          "[deadline][uv]") {
  uv_loop_t loop;
  REQUIRE(uv_loop_init(&loop) == 0);

  RecordingListener listener;
  listener.loop = &loop;
  Toucher toucher;
  {
    Deadline deadline(&loop, listener);
    listener.deadline = &deadline;
    uv_update_time(&loop);
    const uint64_t armed_at = uv_now(&loop);
    deadline.arm_cap(TimeoutName::tunnel_max_duration, Duration::millis(30));
    deadline.arm(TimeoutName::tunnel_idle_timeout, Duration::millis(20), /*idle=*/true);
    CHECK(deadline.remaining() == 20);

    REQUIRE(uv_timer_init(&loop, &toucher.timer) == 0);
    toucher.timer.data = &toucher;
    toucher.deadline = &deadline;
    toucher.listener = &listener;
    toucher.touches_left = 20;  // ~80 ms, well past the cap
    REQUIRE(uv_timer_start(&toucher.timer, Toucher::on_tick, 4, 4) == 0);
    uv_run(&loop, UV_RUN_DEFAULT);

    REQUIRE(listener.fired.size() == 1);
    CHECK(listener.fired[0].expiry.name == TimeoutName::tunnel_max_duration);
    CHECK(listener.fired[0].expiry.value == Duration::millis(30));
    CHECK(listener.fired[0].at >= armed_at + 30);
  }
  uv_close(reinterpret_cast<uv_handle_t*>(&toucher.timer), nullptr);
  uv_run(&loop, UV_RUN_DEFAULT);
  CHECK(uv_loop_close(&loop) == 0);
}

TEST_CASE("due_name names whichever of phase and cap fires first", "[deadline]") {
  DeadlinePlan plan;
  plan.arm_phase(TimeoutName::response_header_timeout, Duration::millis(500), 1000, false);
  CHECK(plan.due_name() == TimeoutName::response_header_timeout);
  plan.arm_cap(TimeoutName::request_timeout, Duration::millis(200), 1000);
  CHECK(plan.due_name() == TimeoutName::request_timeout);
  plan.arm_cap(TimeoutName::request_timeout, Duration::millis(900), 1000);
  CHECK(plan.due_name() == TimeoutName::response_header_timeout);
  plan.arm_cap(TimeoutName::request_timeout, Duration::off(), 1000);
  CHECK(plan.due_name() == TimeoutName::response_header_timeout);
}

TEST_CASE("Deadline on a real loop: the first arrival wakes the timer for its window",
          "[deadline][uv][min_rate]") {
  uv_loop_t loop;
  REQUIRE(uv_loop_init(&loop) == 0);

  RecordingListener listener;
  listener.loop = &loop;
  {
    Deadline deadline(&loop, listener);
    listener.deadline = &deadline;
    uv_update_time(&loop);
    // The timer sleeps for idle_timeout (10 s) until bytes arrive; the
    // window they start (100 ms, short of its 1000 bytes) must wake it.
    deadline.arm(TimeoutName::idle_timeout, Duration::seconds(10),
                 MinRate::of(1000, Duration::millis(100)));
    CHECK(deadline.due_name() == TimeoutName::idle_timeout);
    const uint64_t arrived_at = uv_now(&loop);
    deadline.arrived(10);
    CHECK(deadline.due_name() == TimeoutName::min_rate);
    uv_run(&loop, UV_RUN_DEFAULT);
    REQUIRE(listener.fired.size() == 1);
    CHECK(listener.fired.front().expiry.name == TimeoutName::min_rate);
    CHECK(listener.fired.front().at >= arrived_at + 100);
    CHECK(listener.fired.front().at < arrived_at + 1000);
  }
  uv_run(&loop, UV_RUN_DEFAULT);
  CHECK(uv_loop_close(&loop) == 0);
}
