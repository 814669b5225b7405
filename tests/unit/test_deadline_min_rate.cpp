// The min_rate windows of DeadlinePlan, driven by a fake clock.

#include <catch2/catch.hpp>
#include <cstdint>
#include <optional>

#include "cutoff/deadline.hpp"
#include "cutoff/duration.hpp"
#include "cutoff/min_rate.hpp"
#include "cutoff/timeout.hpp"

using namespace cutoff;

namespace {

constexpr uint64_t kNever = DeadlinePlan::kNever;

Duration ms(uint64_t n) {
  return Duration::millis(n);
}

// 100 bytes in every 2 s window, under an idle_timeout of 300 ms: the shape
// of the integration tests, small enough to reason about by hand.
const MinRate kRate = MinRate::of(100, ms(2000));

// A body phase as Session::enter() arms it, at `now`.
DeadlinePlan body_phase(uint64_t now, MinRate rate = kRate, Duration idle = ms(300)) {
  DeadlinePlan plan;
  plan.arm_phase(TimeoutName::idle_timeout, idle, now, /*idle=*/true, rate);
  return plan;
}

// Moves `bytes` bytes every `step` ms from `from` until `to` (exclusive),
// waking the plan whenever it asks to be woken, as the libuv timer would.
// Returns the first expiry and when it came.
struct Fired {
  Expiry expiry;
  uint64_t at;
};
std::optional<Fired> drive(DeadlinePlan& plan, uint64_t from, uint64_t to, uint64_t step,
                           uint64_t bytes) {
  for (uint64_t t = from; t < to; ++t) {
    if (t >= plan.wake_at()) {
      if (std::optional<Expiry> e = plan.expired(t)) return Fired{*e, t};
    }
    if ((t - from) % step == 0) plan.arrived(t, bytes);
  }
  return std::nullopt;
}

}  // namespace

TEST_CASE("min_rate: a drip fires at the end of the first window", "[deadline][min_rate]") {
  DeadlinePlan plan = body_phase(1000);
  CHECK(plan.wake_at() == 1300);  // idle comes first until bytes move
  // One byte every 200 ms: idle_timeout never fires, 10 bytes per window do.
  std::optional<Fired> fired = drive(plan, 1000, 10000, 200, 1);
  REQUIRE(fired.has_value());
  CHECK(fired->expiry.name == TimeoutName::min_rate);
  CHECK(fired->expiry.value == ms(2000));
  CHECK(fired->expiry.min_bytes == 100);
  CHECK(fired->at == 3000);
}

TEST_CASE("min_rate: enough bytes in every window never fire", "[deadline][min_rate]") {
  DeadlinePlan plan = body_phase(0);
  // 10 bytes every 100 ms is 200 per window: twice the rate, for ten windows.
  CHECK_FALSE(drive(plan, 0, 20000, 100, 10).has_value());
  CHECK(plan.armed());
}

TEST_CASE("min_rate: the first window starts with the first byte that arrives",
          "[deadline][min_rate]") {
  DeadlinePlan plan = body_phase(0, kRate, ms(60000));
  // Nothing has come: only idle_timeout can fire (a request body waiting
  // for the upstream's 100 Continue, say).
  CHECK(plan.wake_at() == 60000);
  CHECK(plan.due_name() == TimeoutName::idle_timeout);
  // A write that reached the kernel (the request head) starts no window.
  plan.touch(3000);
  CHECK(plan.wake_at() == 63000);
  // The first bytes that arrive do, even when none of them is body (the
  // 100 Continue, or chunk framing): the timer must now wake at its end.
  CHECK(plan.arrived(5000, 0));
  CHECK(plan.wake_at() == 7000);
  CHECK(plan.due_name() == TimeoutName::min_rate);
  CHECK_FALSE(plan.arrived(5001, 1));
  // Framing alone never makes a window's amount.
  CHECK_FALSE(plan.arrived(6000, 0));
  std::optional<Expiry> e = plan.expired(7000);
  REQUIRE(e.has_value());
  CHECK(e->name == TimeoutName::min_rate);
}

TEST_CASE("min_rate: windows are consecutive, not sliding", "[deadline][min_rate]") {
  DeadlinePlan plan = body_phase(0, kRate, ms(60000));
  // A burst early in the first window (2000..4000) carries it...
  plan.arrived(2000, 1);
  plan.arrived(2100, 500);
  CHECK(plan.wake_at() == 4000);
  CHECK_FALSE(plan.expired(4000).has_value());
  // ...but no more than it: the second window starts empty at 4000.
  CHECK(plan.wake_at() == 6000);
  plan.arrived(5999, 99);
  std::optional<Expiry> e = plan.expired(6000);
  REQUIRE(e.has_value());
  CHECK(e->name == TimeoutName::min_rate);

  SECTION("the amount exactly is enough") {
    DeadlinePlan exact = body_phase(0, kRate, ms(60000));
    exact.arrived(0, 60);
    exact.arrived(1999, 40);
    CHECK_FALSE(exact.expired(2000).has_value());
  }
}

TEST_CASE("min_rate: a window is held while the client pauses the download",
          "[deadline][min_rate]") {
  DeadlinePlan plan = body_phase(0, kRate, ms(60000));
  plan.arrived(0, 10);
  // At 500 the client stops reading and cutoff stops reading the upstream:
  // what the upstream does not send now is not its drip.
  plan.pause_rate(500);
  CHECK(plan.wake_at() == 60000);
  CHECK(plan.due_name() == TimeoutName::idle_timeout);
  CHECK_FALSE(plan.expired(2000).has_value());
  // The client catches up at 9000: the window goes on with the 1500 ms it
  // had left and the bytes it had counted.
  CHECK(plan.resume_rate(9000));
  CHECK(plan.wake_at() == 10500);
  CHECK_FALSE(plan.resume_rate(9001));  // not held any more

  SECTION("a window that then gets its bytes passes") {
    plan.arrived(10000, 90);
    CHECK_FALSE(plan.expired(10500).has_value());
    CHECK(plan.wake_at() == 12500);
  }
  SECTION("a window still short of its bytes fires") {
    plan.arrived(10000, 89);
    std::optional<Expiry> e = plan.expired(10500);
    REQUIRE(e.has_value());
    CHECK(e->name == TimeoutName::min_rate);
  }
  SECTION("holding before the first body byte changes nothing") {
    DeadlinePlan fresh = body_phase(0, kRate, ms(60000));
    fresh.pause_rate(100);
    CHECK_FALSE(fresh.resume_rate(200));
    CHECK(fresh.arrived(300, 1));
    CHECK(fresh.wake_at() == 2300);
  }
  SECTION("a new phase drops the hold") {
    plan.arm_phase(TimeoutName::idle_timeout, ms(60000), 9500, /*idle=*/true, kRate);
    CHECK_FALSE(plan.resume_rate(9600));
    CHECK(plan.arrived(9700, 1));
    CHECK(plan.wake_at() == 11700);
  }
}

TEST_CASE("min_rate: the window is only judged when it ends", "[deadline][min_rate]") {
  DeadlinePlan plan = body_phase(0, kRate, ms(60000));
  plan.arrived(0, 1);
  // An early wake-up (the timer was set for an earlier deadline) finds
  // nothing due, however few bytes have moved so far.
  CHECK_FALSE(plan.expired(1999).has_value());
  CHECK(plan.wake_at() == 2000);
  // A late wake-up judges the window that ended and starts the next one at
  // its end, so the windows stay on their grid.
  plan.arrived(500, 100);
  CHECK_FALSE(plan.expired(2040).has_value());
  CHECK(plan.wake_at() == 4000);
  // A wake-up so late that the next window has ended too starts a fresh
  // one: that delay was the proxy's, not the peer's.
  plan.arrived(3000, 100);
  CHECK_FALSE(plan.expired(6500).has_value());
  CHECK(plan.wake_at() == 8500);
}

TEST_CASE("min_rate: a new phase restarts the window", "[deadline][min_rate]") {
  DeadlinePlan plan = body_phase(0, kRate, ms(60000));
  plan.arrived(1000, 10);
  // The response head arrives: the request body phase ends, the response
  // body phase waits for its first body byte, with no bytes counted.
  plan.arm_phase(TimeoutName::idle_timeout, ms(60000), 1500, /*idle=*/true, kRate);
  CHECK(plan.wake_at() == 61500);
  CHECK_FALSE(plan.expired(3000).has_value());
  plan.arrived(1600, 50);
  CHECK(plan.wake_at() == 3600);
  plan.arrived(3500, 50);
  CHECK_FALSE(plan.expired(3600).has_value());
  CHECK(plan.wake_at() == 5600);

  SECTION("a phase without min_rate drops the window") {
    plan.arm_phase(TimeoutName::response_header_timeout, ms(30000), 4000, /*idle=*/false);
    CHECK(plan.wake_at() == 34000);
    CHECK_FALSE(plan.expired(5500).has_value());
    CHECK_FALSE(plan.expired(33999).has_value());
    REQUIRE(plan.expired(34000).has_value());
    CHECK(plan.expired(34000)->name == TimeoutName::response_header_timeout);
  }
  SECTION("disarm drops the window") {
    plan.disarm();
    CHECK(plan.wake_at() == kNever);
    CHECK_FALSE(plan.expired(100000).has_value());
  }
}

TEST_CASE("min_rate off never fires", "[deadline][min_rate]") {
  DeadlinePlan plan = body_phase(0, MinRate::off());
  CHECK(plan.wake_at() == 300);
  CHECK_FALSE(drive(plan, 0, 60000, 200, 1).has_value());
  CHECK(plan.due_name() == TimeoutName::idle_timeout);
}

TEST_CASE("min_rate and idle_timeout: a stall is reported as idle", "[deadline][min_rate]") {
  SECTION("idle shorter than the window") {
    DeadlinePlan plan = body_phase(0);
    // One byte at 100 ms, then nothing.
    std::optional<Fired> fired = drive(plan, 100, 10000, 100000, 1);
    REQUIRE(fired.has_value());
    CHECK(fired->expiry.name == TimeoutName::idle_timeout);
    CHECK(fired->at == 400);
  }
  SECTION("idle ending with the window: idle wins the tie") {
    DeadlinePlan plan = body_phase(0, kRate, ms(2000));
    std::optional<Expiry> e = plan.expired(2000);
    REQUIRE(e.has_value());
    CHECK(e->name == TimeoutName::idle_timeout);
  }
  SECTION("idle longer than the window: min_rate comes first") {
    DeadlinePlan plan = body_phase(0, kRate, ms(60000));
    // One byte at 0, then nothing.
    std::optional<Fired> fired = drive(plan, 0, 10000, 100000, 1);
    REQUIRE(fired.has_value());
    CHECK(fired->expiry.name == TimeoutName::min_rate);
    CHECK(fired->at == 2000);
  }
  SECTION("no byte at all: idle_timeout, however long") {
    DeadlinePlan plan = body_phase(0, kRate, ms(60000));
    CHECK(plan.wake_at() == 60000);
    CHECK_FALSE(plan.expired(59999).has_value());
    std::optional<Expiry> e = plan.expired(60000);
    REQUIRE(e.has_value());
    CHECK(e->name == TimeoutName::idle_timeout);
  }
}

TEST_CASE("min_rate and request_timeout: whichever comes first", "[deadline][min_rate]") {
  SECTION("a cap inside the first window") {
    DeadlinePlan plan;
    plan.arm_cap(TimeoutName::request_timeout, ms(1500), 0);
    plan.arm_phase(TimeoutName::idle_timeout, ms(300), 0, /*idle=*/true, kRate);
    std::optional<Fired> fired = drive(plan, 0, 10000, 200, 1);
    REQUIRE(fired.has_value());
    CHECK(fired->expiry.name == TimeoutName::request_timeout);
    CHECK(fired->at == 1500);
  }
  SECTION("the cap wins a tie with a window") {
    DeadlinePlan plan;
    plan.arm_cap(TimeoutName::request_timeout, ms(2000), 0);
    plan.arm_phase(TimeoutName::idle_timeout, ms(60000), 0, /*idle=*/true, kRate);
    plan.arrived(0, 1);
    CHECK(plan.due_name() == TimeoutName::request_timeout);
    REQUIRE(plan.expired(2000).has_value());
    CHECK(plan.expired(2000)->name == TimeoutName::request_timeout);
  }
  SECTION("a fast body outlives its windows but not the cap") {
    DeadlinePlan plan;
    plan.arm_cap(TimeoutName::request_timeout, ms(9000), 0);
    plan.arm_phase(TimeoutName::idle_timeout, ms(300), 0, /*idle=*/true, kRate);
    std::optional<Fired> fired = drive(plan, 0, 20000, 10, 100);
    REQUIRE(fired.has_value());
    CHECK(fired->expiry.name == TimeoutName::request_timeout);
    CHECK(fired->at == 9000);
  }
}

TEST_CASE("min_rate: remaining and due_name tell what fires next", "[deadline][min_rate]") {
  DeadlinePlan plan = body_phase(0, kRate, ms(60000));
  CHECK(plan.due_name() == TimeoutName::idle_timeout);
  plan.arrived(0, 1);
  CHECK(plan.due_name() == TimeoutName::min_rate);
  CHECK(plan.remaining(500) == 1500);
  // With its bytes in, this window passes: if nothing more moves, the next
  // one is the first that fails.
  plan.arrived(600, 99);
  CHECK(plan.due_name() == TimeoutName::min_rate);
  CHECK(plan.remaining(600) == 3400);
  // The timer still wakes at the window's end, to open the next one.
  CHECK(plan.wake_at() == 2000);

  SECTION("idle_timeout due before the window ends") {
    DeadlinePlan idle = body_phase(0, kRate, ms(300));
    CHECK(idle.due_name() == TimeoutName::idle_timeout);
    CHECK(idle.remaining(100) == 200);
  }
  SECTION("a cap due first") {
    plan.arm_cap(TimeoutName::request_timeout, ms(1000), 0);
    CHECK(plan.due_name() == TimeoutName::request_timeout);
    CHECK(plan.remaining(600) == 400);
  }
}

TEST_CASE("min_rate: after a backlog, what the receivers acknowledged can pass a window",
          "[deadline][min_rate]") {
  DeadlinePlan plan = body_phase(0, kRate, ms(60000));
  CHECK_FALSE(plan.wants_delivery_mark());  // no window yet
  plan.arrived(0, 10);
  CHECK_FALSE(plan.delivery_marked());
  // Without a backlog, arrivals alone judge the window.
  CHECK_FALSE(plan.pass_on_delivery(2000, 1000000));

  // At 500 cutoff holds bytes back for a receiver: marked once.
  REQUIRE(plan.wants_delivery_mark());
  plan.set_delivery_marked();
  CHECK_FALSE(plan.wants_delivery_mark());
  REQUIRE(plan.expired(2000).has_value());  // 10 bytes arrived: short
  CHECK_FALSE(plan.pass_on_delivery(2000, 99));
  CHECK(plan.pass_on_delivery(2000, 100));
  CHECK(plan.wake_at() == 4000);  // the next window, still marked
  CHECK(plan.delivery_marked());

  SECTION("a new phase drops the mark") {
    plan.arm_phase(TimeoutName::idle_timeout, ms(60000), 4500, /*idle=*/true, kRate);
    CHECK_FALSE(plan.delivery_marked());
  }
  SECTION("a paused window wants no mark") {
    DeadlinePlan paused = body_phase(0, kRate, ms(60000));
    paused.arrived(0, 10);
    paused.pause_rate(100);
    CHECK_FALSE(paused.wants_delivery_mark());
  }
}
