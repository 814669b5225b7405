#pragma once
// What the server tests share: a Worker running on its own thread with a
// scripted resolver, a loopback origin that counts its connections, and a
// client that sends one request through the proxy. Real sockets on
// 127.0.0.0/8 only.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <functional>
#include <future>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "cutoff/access_log.hpp"
#include "cutoff/config.hpp"
#include "cutoff/resolver.hpp"
#include "cutoff/uv_handle.hpp"
#include "cutoff/worker.hpp"

namespace cutoff::testing {

// Sanitizer builds run slower; CUTOFF_TIME_SCALE stretches the slack.
inline double time_scale() {
  const char* s = std::getenv("CUTOFF_TIME_SCALE");
  return s ? std::atof(s) : 1.0;
}

inline sockaddr_in ipv4(const char* address, uint16_t port) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  REQUIRE(inet_pton(AF_INET, address, &a.sin_addr) == 1);
  return a;
}

// An address list of IPv4 literals with their own ports, so that one name
// can lead to several local servers.
inline AddressList addresses(std::initializer_list<std::pair<const char*, uint16_t>> list) {
  AddressList out;
  for (const auto& [address, port] : list) {
    sockaddr_in a = ipv4(address, port);
    out.add(reinterpret_cast<const sockaddr*>(&a));
  }
  return out;
}

// A port on 127.0.0.1 with nothing listening: connecting (SOCK_STREAM) or
// sending a datagram to it (SOCK_DGRAM) is refused.
inline uint16_t closed_port(int type = SOCK_STREAM) {
  int fd = socket(AF_INET, type, 0);
  sockaddr_in a = ipv4("127.0.0.1", 0);
  bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  close(fd);
  return ntohs(a.sin_port);
}

// A loop for one test of a component that runs without a Worker (the
// resolver, the connect race). Handles such as the resolver's do not keep a
// loop running (a session's deadline does that), so run_until() keeps it
// alive with a timer of its own, which also bounds the wait. The test ends
// with every handle closed: uv_loop_close must succeed.
class Loop {
 public:
  Loop() { REQUIRE(uv_loop_init(&loop_) == 0); }
  ~Loop() {
    uv_run(&loop_, UV_RUN_DEFAULT);  // the close callbacks
    CHECK(uv_loop_close(&loop_) == 0);
  }
  uv_loop_t* get() { return &loop_; }

  // Runs the loop until `done` holds or `ms` have passed; whether it held.
  // `done` is checked before the loop would block, so a callback that
  // makes it true ends the run without waiting for the bound.
  bool run_until(const std::function<bool()>& done, uint64_t ms) {
    struct Run {
      const std::function<bool()>& done;
      bool expired = false;
    } run{done};
    UvPtr<uv_timer_t> bound = make_uv<uv_timer_t>();
    uv_timer_init(&loop_, bound.get());
    bound->data = &run;
    uv_timer_start(
        bound.get(), [](uv_timer_t* t) { static_cast<Run*>(t->data)->expired = true; },
        static_cast<uint64_t>(ms * time_scale()), 0);
    UvPtr<uv_prepare_t> check = make_uv<uv_prepare_t>();
    uv_prepare_init(&loop_, check.get());
    check->data = &run;
    uv_prepare_start(check.get(), [](uv_prepare_t* p) {
      if (static_cast<Run*>(p->data)->done()) uv_stop(p->loop);
    });
    while (!done() && !run.expired) uv_run(&loop_, UV_RUN_ONCE);
    return done();
  }

 private:
  uv_loop_t loop_;
};

// Names and the addresses a ScriptedResolver answers them with.
using Script = std::map<std::string, AddressList>;

// Answers every lookup `delay_ms` later, from a timer on the worker's loop,
// exactly like a thread-pool lookup that comes back late: a scripted name
// with its addresses, any other with the default answer. cancel() only
// detaches the listener.
class ScriptedResolver final : public Resolver {
 public:
  ScriptedResolver(uv_loop_t* loop, uint64_t delay_ms, int status, AddressList addresses,
                   Script script)
      : loop_(loop),
        delay_ms_(delay_ms),
        status_(status),
        addresses_(addresses),
        script_(std::move(script)) {}

  Lookup* resolve(const std::string& host, uint16_t, ResolveListener* listener) override {
    auto pending = std::make_unique<Pending>();
    pending->owner = this;
    pending->host = host;
    pending->listener = listener;
    pending->timer = make_uv<uv_timer_t>();
    uv_timer_init(loop_, pending->timer.get());
    pending->timer->data = pending.get();
    uv_timer_start(pending->timer.get(), on_timer, delay_ms_, 0);
    ++started;
    Pending* raw = pending.get();
    pending_.push_back(std::move(pending));
    return reinterpret_cast<Lookup*>(raw);
  }

  void cancel(Lookup* lookup) override {
    reinterpret_cast<Pending*>(lookup)->listener = nullptr;
    ++cancelled;
  }

  std::atomic<int> started{0};
  std::atomic<int> cancelled{0};
  std::atomic<int> delivered{0};
  std::atomic<int> dropped{0};

 private:
  struct Pending {
    ScriptedResolver* owner;
    std::string host;
    ResolveListener* listener;
    UvPtr<uv_timer_t> timer;
  };

  static void on_timer(uv_timer_t* timer) {
    auto* pending = static_cast<Pending*>(timer->data);
    ScriptedResolver& self = *pending->owner;
    if (pending->listener == nullptr) {
      ++self.dropped;  // the exchange gave up: the late answer goes nowhere
      return;
    }
    ++self.delivered;
    auto it = self.script_.find(pending->host);
    if (it != self.script_.end()) {
      pending->listener->on_resolved(0, it->second);
    } else {
      pending->listener->on_resolved(self.status_, self.addresses_);
    }
  }

  uv_loop_t* loop_;
  uint64_t delay_ms_;
  int status_;
  AddressList addresses_;
  Script script_;
  std::vector<std::unique_ptr<Pending>> pending_;
};

// A listener on a loopback address that answers each connection's request
// with a 200 "ok" and Connection: close, and counts the connections.
class Origin {
 public:
  explicit Origin(const char* address = "127.0.0.1") : address_(address) {
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a = ipv4(address, 0);
    REQUIRE(bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
    REQUIRE(listen(fd_, 16) == 0);
    socklen_t len = sizeof a;
    getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    thread_ = std::thread([this] { serve(); });
  }
  ~Origin() {
    stopping_ = true;
    thread_.join();
    close(fd_);
  }
  uint16_t port() const { return port_; }
  // Connections accepted, not counting accepted_by_now()'s own.
  int accepted() const { return accepted_ - barriers_; }
  // The connections accepted before now, waited for without a sleep: a
  // connection the proxy opened was queued before its answer was written,
  // and the accept queue is first in, first out, so once this function's own
  // direct connection has been served, every earlier one has been counted.
  int accepted_by_now() {
    ++barriers_;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a = ipv4(address_, port_);
    REQUIRE(connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
    const char request[] = "GET /barrier HTTP/1.1\r\n\r\n";
    send(fd, request, sizeof request - 1, MSG_NOSIGNAL);
    timeval tv{static_cast<time_t>(5 * time_scale()), 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    char buf[256];
    while (recv(fd, buf, sizeof buf, 0) > 0) {
    }
    close(fd);
    return accepted();
  }

 private:
  void serve() {
    while (!stopping_) {
      pollfd p{fd_, POLLIN, 0};
      if (poll(&p, 1, 10) <= 0) continue;
      int c = accept(fd_, nullptr, nullptr);
      if (c < 0) continue;
      ++accepted_;
      timeval tv{2, 0};
      setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
      char buf[4096];
      std::string got;
      while (got.find("\r\n\r\n") == std::string::npos) {
        ssize_t n = recv(c, buf, sizeof buf, 0);
        if (n <= 0) break;
        got.append(buf, static_cast<size_t>(n));
      }
      const char reply[] = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok";
      send(c, reply, sizeof reply - 1, MSG_NOSIGNAL);
      close(c);
    }
  }

  const char* address_;
  int fd_;
  uint16_t port_ = 0;
  std::atomic<bool> stopping_{false};
  std::atomic<int> accepted_{0};
  int barriers_ = 0;
  std::thread thread_;
};

struct Reply {
  std::string text;
  double seconds = 0;
  bool starts_with(const std::string& prefix) const { return text.rfind(prefix, 0) == 0; }
  bool contains(const std::string& part) const { return text.find(part) != std::string::npos; }
};

// Sends one request through the proxy and reads until the proxy closes.
inline Reply fetch(uint16_t proxy_port, const std::string& request) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  timeval tv{static_cast<time_t>(5 * time_scale()), 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  sockaddr_in a = ipv4("127.0.0.1", proxy_port);
  REQUIRE(connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
  auto start = std::chrono::steady_clock::now();
  send(fd, request.data(), request.size(), MSG_NOSIGNAL);
  Reply reply;
  char buf[4096];
  for (;;) {
    ssize_t n = recv(fd, buf, sizeof buf, 0);
    if (n <= 0) break;
    reply.text.append(buf, static_cast<size_t>(n));
  }
  reply.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  close(fd);
  return reply;
}

// Runs a Worker with a ScriptedResolver on its own thread for the test's
// duration.
class ProxyUnderTest {
 public:
  ProxyUnderTest(Config config, uint64_t delay_ms, int status, AddressList addresses,
                 Script script = {})
      : log_(AccessLogConfig{LogFormat::text, "/dev/null"}) {
    config.listen.address = "127.0.0.1:0";
    worker_ = std::make_unique<Worker>(std::make_shared<const Config>(std::move(config)), log_);
    auto resolver = std::make_unique<ScriptedResolver>(worker_->loop(), delay_ms, status, addresses,
                                                       std::move(script));
    resolver_ = resolver.get();
    worker_->set_resolver(std::move(resolver));
    std::string bound;
    REQUIRE(worker_->listen(&bound) == 0);
    port_ = static_cast<uint16_t>(std::stoi(bound.substr(bound.rfind(':') + 1)));
    stop_ = make_uv<uv_async_t>();
    uv_async_init(worker_->loop(), stop_.get(), [](uv_async_t* async) {
      auto* self = static_cast<ProxyUnderTest*>(async->data);
      self->worker_->stop();
      self->stop_.reset();  // closed on the loop's own thread
    });
    stop_->data = this;
    thread_ = std::thread([this] { worker_->run(); });
  }
  ~ProxyUnderTest() {
    uv_async_send(stop_.get());
    thread_.join();
    worker_.reset();
  }
  uint16_t port() const { return port_; }
  ScriptedResolver& resolver() { return *resolver_; }
  // Runs fn on the worker's loop and returns its result.
  template <class Fn>
  auto on_loop(Fn fn) -> decltype(fn()) {
    std::promise<decltype(fn())> result;
    worker_->post([&] { result.set_value(fn()); });
    return result.get_future().get();
  }
  // The worker's current config, read on its own thread.
  std::shared_ptr<const Config> config() {
    return on_loop([this] { return worker_->config(); });
  }
  // A reload (SIGHUP's effect on a worker); done when this returns.
  void reload(Config config) {
    auto shared = std::make_shared<const Config>(std::move(config));
    on_loop([&] {
      worker_->reload(shared, nullptr);
      return 0;
    });
  }
  // Lets the loop run for a while (late answers arrive) before stopping.
  void linger(int ms) { std::this_thread::sleep_for(std::chrono::milliseconds(ms)); }

 private:
  AccessLog log_;
  std::unique_ptr<Worker> worker_;
  ScriptedResolver* resolver_ = nullptr;
  UvPtr<uv_async_t> stop_;
  std::thread thread_;
  uint16_t port_ = 0;
};

}  // namespace cutoff::testing
