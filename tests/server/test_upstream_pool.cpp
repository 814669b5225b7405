// UpstreamPool on a loop of its own, with real loopback connections: a
// connection is lent only for the host, port and transport it was parked
// under, most recent first, whichever key was looked up last; the oldest
// goes past max_idle; one the upstream closes while parked is dropped; and
// keys left empty by many hosts are swept without losing the others. Each
// parked connection carries a peer address of its own as a tag, which take()
// hands back.

#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <string>
#include <vector>

#include "cutoff/metrics.hpp"
#include "cutoff/tcp_socket.hpp"
#include "cutoff/upstream_pool.hpp"
#include "server_harness.hpp"

using namespace cutoff;
using cutoff::testing::ipv4;
using cutoff::testing::time_scale;

namespace {

constexpr Duration kKeepalive = Duration::seconds(60);
constexpr int kMaxIdle = 8;

struct NoEvents final : SocketEvents {
  void on_data(TcpSocket&, const char*, size_t) override {}
  void on_read_end(TcpSocket&, int) override {}
  void on_connect(TcpSocket&, int status) override {
    connected = true;
    connect_status = status;
  }
  void on_drained(TcpSocket&, int) override {}
  void on_shutdown(TcpSocket&, int) override {}
  bool connected = false;
  int connect_status = 1;
};

// Runs the loop until `done` or a couple of seconds have passed.
template <typename Done>
bool run_until(uv_loop_t* loop, Done done) {
  auto until = std::chrono::steady_clock::now() +
               std::chrono::milliseconds(static_cast<int>(2000 * time_scale()));
  while (!done()) {
    if (std::chrono::steady_clock::now() > until) return false;
    uv_run(loop, UV_RUN_NOWAIT);
    poll(nullptr, 0, 1);
  }
  return true;
}

// A peer address whose port tells parked connections apart.
sockaddr_in6 tag(uint16_t n) {
  sockaddr_in6 peer{};
  peer.sin6_family = AF_INET6;
  peer.sin6_port = n;
  return peer;
}

class PoolTest {
 public:
  PoolTest() {
    REQUIRE(uv_loop_init(&loop_) == 0);
    listener_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    REQUIRE(listener_ >= 0);
    sockaddr_in address = ipv4("127.0.0.1", 0);
    REQUIRE(bind(listener_, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0);
    REQUIRE(listen(listener_, 64) == 0);
    socklen_t len = sizeof address_;
    REQUIRE(getsockname(listener_, reinterpret_cast<sockaddr*>(&address_), &len) == 0);
    pool_ = std::make_unique<UpstreamPool>(&loop_, &metrics_);
  }

  ~PoolTest() {
    pool_->clear();
    pool_.reset();
    for (int fd : accepted_) ::close(fd);
    ::close(listener_);
    uv_run(&loop_, UV_RUN_DEFAULT);
    CHECK(uv_loop_close(&loop_) == 0);
  }

  // A connected socket; the upstream's end is accepted_[index].
  TcpSocket connection(size_t* index = nullptr) {
    TcpSocket socket;
    NoEvents events;
    REQUIRE(socket.init(&loop_, &buffer_, &events) == 0);
    REQUIRE(socket.connect(reinterpret_cast<const sockaddr*>(&address_)) == 0);
    REQUIRE(run_until(&loop_, [&] { return events.connected; }));
    REQUIRE(events.connect_status == 0);
    int fd = accept(listener_, nullptr, nullptr);
    REQUIRE(fd >= 0);
    if (index) *index = accepted_.size();
    accepted_.push_back(fd);
    socket.set_events(&events_);
    return socket;
  }

  void park(std::string_view host, uint16_t port, UpstreamTransport transport, TcpSocket socket,
            uint16_t n, int max_idle = kMaxIdle) {
    pool_->park(host, port, transport, std::move(socket), tag(n), kKeepalive, max_idle);
  }

  // The tag of the connection lent for the key, or 0 for none.
  uint16_t take(std::string_view host, uint16_t port, UpstreamTransport transport,
                TcpSocket* out = nullptr) {
    sockaddr_in6 peer = tag(0);
    TcpSocket socket = pool_->take(host, port, transport, &events_, &peer);
    if (!socket) return 0;
    uint16_t n = peer.sin6_port;
    CHECK(n != 0);
    if (out) *out = std::move(socket);
    return n;
  }

  // The upstream's end of a connection has seen cutoff close it.
  bool upstream_saw_close(size_t index) {
    return run_until(&loop_, [&] {
      pollfd p{accepted_[index], POLLIN, 0};
      char byte;
      return poll(&p, 1, 0) == 1 && recv(accepted_[index], &byte, 1, MSG_DONTWAIT) <= 0;
    });
  }

  void close_upstream(size_t index) {
    ::close(accepted_[index]);
    accepted_[index] = -1;
  }

  int64_t idle() const { return metrics_.upstream_idle.get(); }
  uv_loop_t* loop() { return &loop_; }
  UpstreamPool& pool() { return *pool_; }

 private:
  uv_loop_t loop_;
  ReadBuffer buffer_;
  Metrics metrics_;
  NoEvents events_;
  std::unique_ptr<UpstreamPool> pool_;
  int listener_ = -1;
  sockaddr_in address_{};
  std::vector<int> accepted_;
};

constexpr auto kPlain = UpstreamTransport::plain;

}  // namespace

TEST_CASE("pool: a connection is lent only for its own host, port and transport",
          "[server][pool]") {
  PoolTest t;
  t.park("a.test", 80, kPlain, t.connection(), 1);
  CHECK(t.idle() == 1);
  CHECK(t.take("a.test", 81, kPlain) == 0);
  CHECK(t.take("b.test", 80, kPlain) == 0);
  CHECK(t.take("a.tes", 80, kPlain) == 0);
  CHECK(t.take("a.test", 80, UpstreamTransport::tls_verified) == 0);
  CHECK(t.take("a.test", 80, UpstreamTransport::tls_unverified) == 0);
  CHECK(t.idle() == 1);
  CHECK(t.take("a.test", 80, kPlain) == 1);
  CHECK(t.take("a.test", 80, kPlain) == 0);
  CHECK(t.idle() == 0);
}

TEST_CASE("pool: most recent first, whichever key was looked up last", "[server][pool]") {
  PoolTest t;
  t.park("a.test", 80, kPlain, t.connection(), 1);
  t.park("b.test", 80, kPlain, t.connection(), 2);
  t.park("a.test", 80, kPlain, t.connection(), 3);
  t.park("a.test", 8080, kPlain, t.connection(), 4);
  t.park("a.test", 80, UpstreamTransport::tls_verified, t.connection(), 5);
  CHECK(t.idle() == 5);
  CHECK(t.take("a.test", 80, kPlain) == 3);
  CHECK(t.take("b.test", 80, kPlain) == 2);
  CHECK(t.take("a.test", 80, UpstreamTransport::tls_verified) == 5);
  CHECK(t.take("a.test", 80, kPlain) == 1);
  CHECK(t.take("a.test", 8080, kPlain) == 4);
  CHECK(t.take("b.test", 80, kPlain) == 0);
  CHECK(t.take("a.test", 80, kPlain) == 0);
  CHECK(t.idle() == 0);

  // The same connection, parked and taken again under one key after another.
  TcpSocket socket = t.connection();
  for (int round = 0; round < 3; ++round) {
    for (const char* host : {"a.test", "b.test", "c.test"}) {
      t.park(host, 80, kPlain, std::move(socket), 7);
      CHECK(t.take("a.test", 80, UpstreamTransport::tls_verified) == 0);
      REQUIRE(t.take(host, 80, kPlain, &socket) == 7);
    }
  }
}

TEST_CASE("pool: past max_idle the oldest is closed", "[server][pool]") {
  PoolTest t;
  size_t first = 0;
  t.park("a.test", 80, kPlain, t.connection(&first), 1, 2);
  t.park("a.test", 80, kPlain, t.connection(), 2, 2);
  t.park("b.test", 80, kPlain, t.connection(), 9, 2);
  t.park("a.test", 80, kPlain, t.connection(), 3, 2);
  CHECK(t.idle() == 3);
  CHECK(t.upstream_saw_close(first));
  CHECK(t.take("a.test", 80, kPlain) == 3);
  CHECK(t.take("a.test", 80, kPlain) == 2);
  CHECK(t.take("a.test", 80, kPlain) == 0);
  CHECK(t.take("b.test", 80, kPlain) == 9);
  // max_idle 0: nothing is kept, the connection is closed.
  size_t unkept = 0;
  t.park("a.test", 80, kPlain, t.connection(&unkept), 4, 0);
  CHECK(t.idle() == 0);
  CHECK(t.upstream_saw_close(unkept));
  CHECK(t.take("a.test", 80, kPlain) == 0);
}

TEST_CASE("pool: a connection its upstream closes while parked is dropped", "[server][pool]") {
  PoolTest t;
  size_t first = 0;
  t.park("a.test", 80, kPlain, t.connection(), 1);
  t.park("a.test", 80, kPlain, t.connection(&first), 2);
  t.park("b.test", 80, kPlain, t.connection(), 3);
  t.close_upstream(first);
  REQUIRE(run_until(t.loop(), [&] { return t.idle() == 2; }));
  CHECK(t.pool().all_parked_armed());
  CHECK(t.take("a.test", 80, kPlain) == 1);
  CHECK(t.take("a.test", 80, kPlain) == 0);
  t.park("a.test", 80, kPlain, t.connection(), 4);
  CHECK(t.take("a.test", 80, kPlain) == 4);
  CHECK(t.take("b.test", 80, kPlain) == 3);
}

// Keys left empty are swept once they outnumber the parked connections by
// far; the keys that still hold connections, and the last one used, work on.
TEST_CASE("pool: many hosts, their empty keys swept, the others kept", "[server][pool]") {
  PoolTest t;
  t.park("kept.test", 443, UpstreamTransport::tls_verified, t.connection(), 1);
  TcpSocket socket = t.connection();
  for (int i = 0; i < 300; ++i) {
    std::string host = "host" + std::to_string(i) + ".test";
    t.park(host, 80, kPlain, std::move(socket), 2);
    REQUIRE(t.take(host, 80, kPlain, &socket) == 2);
    CHECK(t.take(host, 80, kPlain) == 0);
    if (i % 50 == 0) {
      std::string earlier = "host" + std::to_string(i / 2) + ".test";
      CHECK(t.take(earlier, 80, kPlain) == 0);
    }
  }
  CHECK(t.idle() == 1);
  CHECK(t.pool().all_parked_armed());
  CHECK(t.take("kept.test", 443, UpstreamTransport::tls_verified) == 1);
  t.park("host299.test", 80, kPlain, std::move(socket), 3);
  CHECK(t.take("host299.test", 80, kPlain) == 3);
}
