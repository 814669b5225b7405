// A Listener on a loop of its own, through a real loopback connection: when
// accept() fails for want of descriptors and libuv's own remedy fails too,
// accepting pauses (one pause, no busy loop) and resumes once descriptors
// are back. The test lowers this process's RLIMIT_NOFILE for a moment.

#include <fcntl.h>
#include <netinet/in.h>
#include <spdlog/spdlog.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cerrno>
#include <memory>

#include "cutoff/descriptors.hpp"
#include "cutoff/listener.hpp"
#include "cutoff/metrics.hpp"
#include "cutoff/tcp_socket.hpp"
#include "cutoff/uv_handle.hpp"
#include "server_harness.hpp"

using namespace cutoff;
using cutoff::testing::ipv4;
using cutoff::testing::time_scale;

namespace {

double thread_cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}

// Restores the descriptor limit however the test ends.
struct LimitGuard {
  rlimit saved{};
  LimitGuard() { REQUIRE(getrlimit(RLIMIT_NOFILE, &saved) == 0); }
  ~LimitGuard() { setrlimit(RLIMIT_NOFILE, &saved); }
  void restore() const { setrlimit(RLIMIT_NOFILE, &saved); }
};

struct Run {
  uv_loop_t* loop = nullptr;
  LimitGuard* limit = nullptr;
  std::unique_ptr<Listener> listener;
  TcpSocket peer;
  ReadBuffer buffer;
  UvPtr<uv_timer_t> restore_timer;  // gives the descriptors back
  UvPtr<uv_timer_t> give_up_timer;  // ends the loop if nothing is accepted
  int accept_rc = 1;
  uint64_t restored_at = 0;
  uint64_t accepted_at = 0;
};

}  // namespace

TEST_CASE("listener: out of descriptors, accepting pauses once and then resumes",
          "[server][listener]") {
  const double scale = time_scale();
  // UBSan checks each kind of virtual call once, with a pipe(2) that fails at
  // the limit: the warning the listener logs there is formatted by the same
  // calls as this line.
  spdlog::info("listener test: {} ({}), retrying after {}", "running out of descriptors",
               describe_error(UV_EMFILE), Listener::kFirstRetry.to_string());
  LimitGuard limit;
  int client = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  REQUIRE(client >= 0);
  // A free descriptor number below the loop's and the listener's: with the
  // soft limit set to it, closing libuv's reserve descriptor or the
  // listener's frees a number over the limit, so libuv's own remedy fails
  // the way it does when another thread takes the freed slot.
  int gap = open("/dev/null", O_RDONLY | O_CLOEXEC);
  REQUIRE(gap >= 0);

  uv_loop_t loop;
  REQUIRE(uv_loop_init(&loop) == 0);
  Run run;
  run.loop = &loop;
  run.limit = &limit;
  Counter pauses;
  run.listener = std::make_unique<Listener>(&loop, "test", [&run](uv_stream_t* server) {
    if (run.peer.init(run.loop, &run.buffer, nullptr) == 0) {
      run.accept_rc = uv_accept(server, run.peer.stream());
    }
    run.accepted_at = uv_now(run.loop);
    run.listener->close();
    uv_timer_stop(run.give_up_timer.get());
  });
  run.listener->count_pauses(&pauses);
  sockaddr_storage address{}, bound{};
  reinterpret_cast<sockaddr_in&>(address) = ipv4("127.0.0.1", 0);
  REQUIRE(run.listener->listen(address, /*reuse_port=*/false, 16, &bound) == 0);

  run.restore_timer = make_uv<uv_timer_t>();
  uv_timer_init(&loop, run.restore_timer.get());
  run.restore_timer->data = &run;
  run.give_up_timer = make_uv<uv_timer_t>();
  uv_timer_init(&loop, run.give_up_timer.get());
  run.give_up_timer->data = &run;

  // The connection waits in the listen queue until the loop runs.
  int rc = connect(client, reinterpret_cast<const sockaddr*>(&bound), sizeof(sockaddr_in));
  REQUIRE((rc == 0 || errno == EINPROGRESS));
  // From here until the limit is back, no Catch2 assertion: they make
  // virtual calls that UBSan would check with a descriptor it cannot get.
  ::close(gap);
  rlimit lowered = limit.saved;
  lowered.rlim_cur = static_cast<rlim_t>(gap);
  const bool lowered_ok = setrlimit(RLIMIT_NOFILE, &lowered) == 0;
  int probe = open("/dev/null", O_RDONLY | O_CLOEXEC);
  const bool exhausted = probe < 0 && errno == EMFILE;
  if (probe >= 0) ::close(probe);
  uv_timer_start(
      run.restore_timer.get(),
      [](uv_timer_t* timer) {
        auto* r = static_cast<Run*>(timer->data);
        r->limit->restore();
        r->restored_at = uv_now(r->loop);
      },
      250, 0);
  uv_timer_start(
      run.give_up_timer.get(),
      [](uv_timer_t* timer) { static_cast<Run*>(timer->data)->listener->close(); },
      static_cast<uint64_t>(3000 * scale), 0);
  const uint64_t started = uv_now(&loop);
  const double cpu0 = thread_cpu_seconds();
  uv_run(&loop, UV_RUN_DEFAULT);
  const double cpu = thread_cpu_seconds() - cpu0;
  limit.restore();

  REQUIRE(lowered_ok);
  CHECK(exhausted);
  CHECK(run.accept_rc == 0);
  CHECK(pauses.get() == 1);
  CHECK(run.restored_at > started);
  CHECK(run.accepted_at >= run.restored_at);
  CHECK(run.accepted_at - run.restored_at <= Listener::kLongestRetry.ms() + 200 * scale);
  // Paused, the loop slept in epoll_wait; spinning on accept() for the
  // quarter second would have used about as much CPU.
  CHECK(cpu < 0.1 * scale);

  ::close(client);
  run.peer.close();
  run.restore_timer.reset();
  run.give_up_timer.reset();
  run.listener.reset();
  uv_run(&loop, UV_RUN_DEFAULT);
  CHECK(uv_loop_close(&loop) == 0);
}
