// The keep-alive queue on a real loop, without sleeping: connections are
// said to have gone idle in the past, so that their expiries are due at once
// or far ahead, and each turn of the loop shows what the one timer did.

#include <uv.h>

#include <catch2/catch.hpp>
#include <cstdint>
#include <list>
#include <string>
#include <vector>

#include "cutoff/duration.hpp"
#include "cutoff/keep_alive_queue.hpp"
#include "cutoff/timeout.hpp"

using namespace cutoff;

namespace {

// A connection as the queue sees it. Like a session, it leaves the queue
// when its keep-alive expires (into `closed`).
struct Idle {
  std::string name;
  uint64_t since = 0;
  KeepAliveQueue<Idle>* queue = nullptr;
  std::list<Idle>* closed = nullptr;
  std::list<Idle>::iterator self;
  std::vector<std::string>* expired = nullptr;

  uint64_t idle_since() const { return since; }
  void expire(const Expiry& expiry) {
    REQUIRE(expiry.name == TimeoutName::client_keepalive_timeout);
    expired->push_back(name + "/" + expiry.value.to_string());
    queue->take(*closed, self);
  }
};

struct Fixture {
  uv_loop_t loop{};
  std::list<Idle> busy;
  std::list<Idle> closed;
  std::vector<std::string> expired;
  uint64_t t0 = 0;  // loop time when the test began; "ago" counts back from it

  Fixture() {
    REQUIRE(uv_loop_init(&loop) == 0);
    uv_update_time(&loop);
    t0 = uv_now(&loop);
  }
  ~Fixture() {
    uv_run(&loop, UV_RUN_DEFAULT);  // close callbacks
    CHECK(uv_loop_close(&loop) == 0);
  }

  // A connection that went idle `ago` ms before t0 joins `queue`.
  void go_idle(KeepAliveQueue<Idle>& queue, const std::string& name, uint64_t ago) {
    busy.push_back(Idle{name, t0 - ago, &queue, &closed, {}, &expired});
    busy.back().self = std::prev(busy.end());
    queue.push(busy, busy.back().self);
  }
  // One turn of the loop, without blocking: timers that are due run.
  void turn() { uv_run(&loop, UV_RUN_NOWAIT); }
};

std::vector<std::string> names(const std::list<Idle>& list) {
  std::vector<std::string> out;
  for (const Idle& idle : list) out.push_back(idle.name);
  return out;
}

}  // namespace

TEST_CASE("keep-alive queue: connections expire oldest first, only when due", "[keep_alive][uv]") {
  Fixture f;
  {
    KeepAliveQueue<Idle> queue(&f.loop, Duration::seconds(10));
    CHECK(queue.armed());  // empty: nothing waits
    f.go_idle(queue, "a", 12000);
    f.go_idle(queue, "b", 11000);
    f.go_idle(queue, "c", 5000);
    f.go_idle(queue, "d", 1000);
    CHECK(queue.armed());
    CHECK(queue.expires_at(queue.items().front()) == f.t0 - 2000);
    f.turn();
    // The two overdue ones go in one wake-up, in the order they went idle.
    CHECK(f.expired == std::vector<std::string>{"a/10s", "b/10s"});
    CHECK(names(queue.items()) == std::vector<std::string>{"c", "d"});
    CHECK(queue.armed());  // now due for c, in 5 s
    f.turn();
    CHECK(f.expired.size() == 2);

    // c's next request begins: it leaves the queue and never expires; the
    // timer, due for c, stays armed for d.
    queue.take(f.busy, queue.items().begin());
    CHECK(names(queue.items()) == std::vector<std::string>{"d"});
    CHECK(names(f.busy) == std::vector<std::string>{"c"});
    CHECK(queue.armed());
    f.turn();
    CHECK(f.expired.size() == 2);

    queue.take(f.busy, queue.items().begin());
    CHECK(queue.items().empty());
    queue.close();
  }
}

TEST_CASE("keep-alive queue: a reload's timeout counts from when each went idle",
          "[keep_alive][uv]") {
  Fixture f;
  {
    KeepAliveQueue<Idle> queue(&f.loop, Duration::seconds(60));
    f.go_idle(queue, "a", 30000);
    f.go_idle(queue, "b", 20000);
    f.go_idle(queue, "c", 5000);
    f.turn();
    CHECK(f.expired.empty());

    // Shorter: those idle longer than it close at once, the others wait the
    // rest of it.
    queue.set_timeout(Duration::seconds(10));
    CHECK(queue.armed());
    f.turn();
    CHECK(f.expired == std::vector<std::string>{"a/10s", "b/10s"});
    CHECK(names(queue.items()) == std::vector<std::string>{"c"});
    CHECK(queue.expires_at(queue.items().front()) == f.t0 + 5000);

    // Longer: the timer, due sooner, wakes early and sleeps again.
    queue.set_timeout(Duration::seconds(30));
    CHECK(queue.armed());
    f.turn();
    CHECK(f.expired.size() == 2);

    // One that goes idle after the reload has the new timeout too.
    f.go_idle(queue, "d", 0);
    CHECK(queue.expires_at(queue.items().back()) == f.t0 + 30000);
    queue.set_timeout(Duration::seconds(4));
    f.turn();
    CHECK(f.expired == std::vector<std::string>{"a/10s", "b/10s", "c/4s"});
    CHECK(names(queue.items()) == std::vector<std::string>{"d"});
    CHECK(queue.armed());

    queue.take(f.busy, queue.items().begin());
    queue.close();
  }
}
