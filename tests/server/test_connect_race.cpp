// ConnectRace on a loop of its own, against listeners on ::1 and 127.0.0.1:
// one whose handshake never completes (a full accept queue), one that
// refuses, one that answers. The next address waits for the attempt delay
// only behind an attempt that hangs; the winner is the only handle left
// open; a cancelled race leaves nothing behind and is never heard of; every
// test ends with uv_loop_close succeeding.

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <cstring>
#include <vector>

#include "cutoff/connect_race.hpp"
#include "server_harness.hpp"

using namespace cutoff;
using namespace cutoff::testing;

namespace {

using Clock = std::chrono::steady_clock;

struct RaceResult final : ConnectRaceListener {
  int calls = 0;
  bool won = false;
  int error = 0;
  TcpSocket winner;
  sockaddr_in6 peer{};
  Clock::time_point when;
  void on_race_won(TcpSocket socket, const sockaddr_in6& address) override {
    ++calls;
    won = true;
    winner = std::move(socket);
    peer = address;
    when = Clock::now();
  }
  void on_race_lost(int last_error) override {
    ++calls;
    error = last_error;
    when = Clock::now();
  }
};

// A TCP socket on the loopback address of `family`, bound to `port` (0: any).
int bound_socket(int family, uint16_t port) {
  int fd = socket(family, SOCK_STREAM, 0);
  REQUIRE(fd >= 0);
  sockaddr_storage a{};
  socklen_t len;
  if (family == AF_INET6) {
    auto* v6 = reinterpret_cast<sockaddr_in6*>(&a);
    v6->sin6_family = AF_INET6;
    v6->sin6_addr = in6addr_loopback;
    v6->sin6_port = htons(port);
    len = sizeof *v6;
  } else {
    sockaddr_in v4 = ipv4("127.0.0.1", port);
    std::memcpy(&a, &v4, sizeof v4);
    len = sizeof v4;
  }
  if (bind(fd, reinterpret_cast<sockaddr*>(&a), len) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

uint16_t local_port(int fd) {
  sockaddr_storage a{};
  socklen_t len = sizeof a;
  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  return ntohs(a.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6*>(&a)->sin6_port
                                       : reinterpret_cast<sockaddr_in*>(&a)->sin_port);
}

// Whether this host has IPv6 on loopback; the tests that need ::1 pass
// with a warning where it has not.
bool have_ipv6_loopback() {
  int fd = bound_socket(AF_INET6, 0);
  if (fd < 0) return false;
  close(fd);
  return true;
}

// A port on loopback in one of three moods, each a socket of ours.
class LoopbackPort {
 public:
  enum class Mood { answers, refuses, hangs };

  LoopbackPort(int family, Mood mood, uint16_t port = 0) {
    fd_ = bound_socket(family, port);
    REQUIRE(fd_ >= 0);
    port_ = local_port(fd_);
    if (mood == Mood::refuses) return;  // bound, not listening: RST
    REQUIRE(listen(fd_, mood == Mood::answers ? 16 : 0) == 0);
    if (mood == Mood::hangs) fill_backlog(family);
  }
  ~LoopbackPort() {
    for (int fd : fillers_) close(fd);
    close(fd_);
  }
  uint16_t port() const { return port_; }

 private:
  // Connections of our own, never accepted, until one is left hanging: from
  // then on the queue is full and a new SYN gets no answer.
  void fill_backlog(int family) {
    for (int i = 0; i < 16; ++i) {
      int fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK, 0);
      fillers_.push_back(fd);
      sockaddr_storage a{};
      socklen_t len = sizeof a;
      getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
      connect(fd, reinterpret_cast<sockaddr*>(&a), len);
      pollfd p{fd, POLLOUT, 0};
      if (poll(&p, 1, 100) == 0) return;
    }
    FAIL("the accept queue never filled");
  }

  int fd_ = -1;
  uint16_t port_ = 0;
  std::vector<int> fillers_;
};

sockaddr_in6 loopback6(uint16_t port) {
  sockaddr_in6 a{};
  a.sin6_family = AF_INET6;
  a.sin6_addr = in6addr_loopback;
  a.sin6_port = htons(port);
  return a;
}

AddressList both(uint16_t v6_port, uint16_t v4_port) {
  AddressList list;
  sockaddr_in6 v6 = loopback6(v6_port);
  list.add(reinterpret_cast<sockaddr*>(&v6));
  sockaddr_in v4 = ipv4("127.0.0.1", v4_port);
  list.add(reinterpret_cast<sockaddr*>(&v4));
  return list;
}

// The handles on the loop that are not closing: what the race still holds
// (plus the winner, if the test kept it).
int live_handles(uv_loop_t* loop) {
  int n = 0;
  uv_walk(
      loop,
      [](uv_handle_t* h, void* arg) {
        if (!uv_is_closing(h)) ++*static_cast<int*>(arg);
      },
      &n);
  return n;
}

double ms_between(Clock::time_point from, Clock::time_point to) {
  return std::chrono::duration<double, std::milli>(to - from).count();
}

}  // namespace

TEST_CASE("an address that hangs is raced by the next family after the attempt delay",
          "[server][connect_race]") {
  if (!have_ipv6_loopback()) {
    WARN("no ::1 on this host: nothing to race");
    return;
  }
  LoopbackPort hangs(AF_INET6, LoopbackPort::Mood::hangs);
  LoopbackPort answers(AF_INET, LoopbackPort::Mood::answers);
  Loop loop;
  ReadBuffer buffer;
  ConnectRace race;
  RaceResult outcome;
  const Clock::time_point start = Clock::now();
  race.start(loop.get(), &buffer, both(hangs.port(), answers.port()), &outcome);
  CHECK(race.running());
  REQUIRE(loop.run_until([&] { return outcome.calls > 0; }, 2000));
  CHECK(outcome.won);
  CHECK(!race.running());
  CHECK(outcome.peer.sin6_family == AF_INET);
  CHECK(ntohs(reinterpret_cast<sockaddr_in*>(&outcome.peer)->sin_port) == answers.port());
  const double took = ms_between(start, outcome.when);
  CHECK(took >= ConnectRace::kAttemptDelayMs - 1);
  CHECK(took < ConnectRace::kAttemptDelayMs + 100 * time_scale());
  // The attempt on ::1 and the delay timer are closed with the win: the
  // winner is the only handle left.
  CHECK(live_handles(loop.get()) == 1);
  outcome.winner.close();
}

TEST_CASE("a refused address makes way for the next at once", "[server][connect_race]") {
  if (!have_ipv6_loopback()) {
    WARN("no ::1 on this host: nothing to race");
    return;
  }
  LoopbackPort refuses(AF_INET6, LoopbackPort::Mood::refuses);
  LoopbackPort answers(AF_INET, LoopbackPort::Mood::answers);
  Loop loop;
  ReadBuffer buffer;
  ConnectRace race;
  RaceResult outcome;
  const Clock::time_point start = Clock::now();
  race.start(loop.get(), &buffer, both(refuses.port(), answers.port()), &outcome);
  REQUIRE(loop.run_until([&] { return outcome.calls > 0; }, 2000));
  CHECK(outcome.won);
  CHECK(outcome.peer.sin6_family == AF_INET);
  CHECK(ms_between(start, outcome.when) < ConnectRace::kAttemptDelayMs / 2);
  CHECK(live_handles(loop.get()) == 1);
  outcome.winner.close();
}

TEST_CASE("the first address that connects wins before the other is tried",
          "[server][connect_race]") {
  if (!have_ipv6_loopback()) {
    WARN("no ::1 on this host: nothing to race");
    return;
  }
  LoopbackPort answers6(AF_INET6, LoopbackPort::Mood::answers);
  LoopbackPort hangs4(AF_INET, LoopbackPort::Mood::hangs);
  Loop loop;
  ReadBuffer buffer;
  ConnectRace race;
  RaceResult outcome;
  race.start(loop.get(), &buffer, both(answers6.port(), hangs4.port()), &outcome);
  REQUIRE(loop.run_until([&] { return outcome.calls > 0; }, 2000));
  CHECK(outcome.won);
  CHECK(outcome.peer.sin6_family == AF_INET6);
  CHECK(live_handles(loop.get()) == 1);
  outcome.winner.close();
}

TEST_CASE("when every address refuses the race is lost at once with the last error",
          "[server][connect_race]") {
  LoopbackPort first(AF_INET, LoopbackPort::Mood::refuses);
  LoopbackPort second(AF_INET, LoopbackPort::Mood::refuses);
  Loop loop;
  ReadBuffer buffer;
  ConnectRace race;
  RaceResult outcome;
  const Clock::time_point start = Clock::now();
  race.start(loop.get(), &buffer,
             addresses({{"127.0.0.1", first.port()}, {"127.0.0.1", second.port()}}), &outcome);
  REQUIRE(loop.run_until([&] { return outcome.calls > 0; }, 2000));
  CHECK(!outcome.won);
  CHECK(outcome.error == UV_ECONNREFUSED);
  CHECK(ms_between(start, outcome.when) < ConnectRace::kAttemptDelayMs / 2);
  CHECK(live_handles(loop.get()) == 0);
}

TEST_CASE("a cancelled race closes every attempt and is never heard of", "[server][connect_race]") {
  LoopbackPort first(AF_INET, LoopbackPort::Mood::hangs);
  LoopbackPort second(AF_INET, LoopbackPort::Mood::hangs);
  Loop loop;
  ReadBuffer buffer;
  ConnectRace race;
  RaceResult outcome;
  race.start(loop.get(), &buffer,
             addresses({{"127.0.0.1", first.port()}, {"127.0.0.1", second.port()}}), &outcome);
  // Both attempts hang once the second has started, after the delay.
  loop.run_until([] { return false; }, ConnectRace::kAttemptDelayMs + 100);
  CHECK(live_handles(loop.get()) == 3);  // two attempts and the delay timer
  race.cancel();
  CHECK(!race.running());
  CHECK(live_handles(loop.get()) == 0);
  loop.run_until([] { return false; }, 50);
  CHECK(outcome.calls == 0);
}
