// The server object with an injected resolver: DNS timeouts and failures,
// late answers after the exchange is gone, and several addresses tried in
// turn, through real sockets on 127.0.0.1.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <memory>
#include <string>
#include <thread>

#include "cutoff/access_log.hpp"
#include "cutoff/config.hpp"
#include "cutoff/resolver.hpp"
#include "cutoff/uv_handle.hpp"
#include "cutoff/worker.hpp"

using namespace cutoff;
using Clock = std::chrono::steady_clock;

namespace {

// Sanitizer builds run slower; CUTOFF_TIME_SCALE stretches the slack.
double time_scale() {
  const char* s = std::getenv("CUTOFF_TIME_SCALE");
  return s ? std::atof(s) : 1.0;
}

// Answers every lookup after `delay_ms` with `status` and `addresses`,
// from a timer on the worker's loop, exactly like a thread-pool lookup that
// comes back late. cancel() only detaches the listener.
class ScriptedResolver final : public Resolver {
 public:
  ScriptedResolver(uv_loop_t* loop, uint64_t delay_ms, int status, AddressList addresses)
      : loop_(loop), delay_ms_(delay_ms), status_(status), addresses_(addresses) {}

  // The scripted addresses keep their own ports, so that one name can lead
  // to several local servers.
  Lookup* resolve(const std::string&, uint16_t, ResolveListener* listener) override {
    auto pending = std::make_unique<Pending>();
    pending->owner = this;
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

  int started = 0;
  int cancelled = 0;
  int delivered = 0;
  int dropped = 0;

 private:
  struct Pending {
    ScriptedResolver* owner;
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
    pending->listener->on_resolved(self.status_, self.addresses_);
  }

  uv_loop_t* loop_;
  uint64_t delay_ms_;
  int status_;
  AddressList addresses_;
  std::vector<std::unique_ptr<Pending>> pending_;
};

// A listening socket on 127.0.0.1 that answers each request with a fixed
// response, in a thread of its own.
class TinyOrigin {
 public:
  TinyOrigin() {
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
    REQUIRE(listen(fd_, 16) == 0);
    socklen_t len = sizeof a;
    getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    thread_ = std::thread([this] { serve(); });
  }
  ~TinyOrigin() {
    shutdown(fd_, SHUT_RDWR);
    close(fd_);
    thread_.join();
  }
  uint16_t port() const { return port_; }

 private:
  void serve() {
    for (;;) {
      int c = accept(fd_, nullptr, nullptr);
      if (c < 0) return;
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
  int fd_;
  uint16_t port_ = 0;
  std::thread thread_;
};

// A port on 127.0.0.1 with nothing listening: connecting is refused.
uint16_t closed_port() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  close(fd);
  return ntohs(a.sin_port);
}

AddressList loopback(std::initializer_list<uint16_t> ports) {
  AddressList list;
  for (uint16_t port : ports) {
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(port);
    list.add(reinterpret_cast<sockaddr*>(&a));
  }
  return list;
}

struct Reply {
  std::string text;
  double seconds = 0;
};

// Sends one request through the proxy and reads until the proxy closes.
Reply fetch(uint16_t proxy_port, const std::string& request) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  timeval tv{5, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(proxy_port);
  REQUIRE(connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
  auto start = Clock::now();
  send(fd, request.data(), request.size(), MSG_NOSIGNAL);
  Reply reply;
  char buf[4096];
  for (;;) {
    ssize_t n = recv(fd, buf, sizeof buf, 0);
    if (n <= 0) break;
    reply.text.append(buf, static_cast<size_t>(n));
  }
  reply.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  close(fd);
  return reply;
}

// Runs a Worker with `resolver` on its own thread for the test's duration.
class ProxyUnderTest {
 public:
  ProxyUnderTest(Config config, uint64_t delay_ms, int status, AddressList addresses)
      : log_(AccessLogConfig{LogFormat::text, "/dev/null"}) {
    config.listen.address = "127.0.0.1:0";
    worker_ = std::make_unique<Worker>(std::make_shared<const Config>(std::move(config)), log_);
    auto resolver =
        std::make_unique<ScriptedResolver>(worker_->loop(), delay_ms, status, addresses);
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

Config fast_config() {
  Config config = default_config();
  config.linger_timeout = Duration::millis(200);
  config.defaults.dns_timeout = Duration::millis(100);
  config.defaults.connect_timeout = Duration::millis(300);
  config.defaults.response_header_timeout = Duration::millis(500);
  return config;
}

}  // namespace

TEST_CASE("a resolver slower than dns_timeout gets 504 dns_timeout at the deadline",
          "[server][dns]") {
  const double scale = time_scale();
  ProxyUnderTest proxy(fast_config(), /*delay_ms=*/600, 0, loopback({1}));
  Reply reply = fetch(proxy.port(), "GET http://slow.example.test/ HTTP/1.1\r\n\r\n");
  CHECK(reply.text.rfind("HTTP/1.1 504 Gateway Timeout\r\n", 0) == 0);
  CHECK(reply.text.find("Proxy-Status: cutoff; error=dns_timeout; details=\"resolving "
                        "slow.example.test timed out after 100ms (dns_timeout, route default)\"") !=
        std::string::npos);
  CHECK(reply.seconds >= 0.095);
  CHECK(reply.seconds < 0.1 + 0.05 + 0.1 * scale);
  // The late answer still arrives, after the exchange is gone: it must be
  // dropped without touching freed memory (ASan watches this test).
  proxy.linger(static_cast<int>(700 * scale));
  CHECK(proxy.resolver().started == 1);
  CHECK(proxy.resolver().cancelled == 1);
  CHECK(proxy.resolver().dropped == 1);
  CHECK(proxy.resolver().delivered == 0);
}

TEST_CASE("a name that does not resolve gets 502 dns_error, distinct from dns_timeout",
          "[server][dns]") {
  ProxyUnderTest proxy(fast_config(), /*delay_ms=*/5, UV_EAI_NONAME, AddressList{});
  Reply reply = fetch(proxy.port(), "GET http://missing.example.test/ HTTP/1.1\r\n\r\n");
  CHECK(reply.text.rfind("HTTP/1.1 502 Bad Gateway\r\n", 0) == 0);
  CHECK(reply.text.find("error=dns_error; details=\"missing.example.test could not be resolved") !=
        std::string::npos);
  CHECK(reply.seconds < 0.1 * time_scale());
  CHECK(proxy.resolver().delivered == 1);
}

TEST_CASE("several addresses are tried in turn within one connect_timeout", "[server][dns]") {
  TinyOrigin origin;
  ProxyUnderTest proxy(fast_config(), /*delay_ms=*/1, 0,
                       loopback({closed_port(), closed_port(), origin.port()}));
  Reply reply = fetch(proxy.port(), "GET http://multi.example.test/ HTTP/1.1\r\n\r\n");
  INFO(reply.text);
  CHECK(reply.text.rfind("HTTP/1.1 200 OK\r\n", 0) == 0);
  CHECK(reply.text.size() >= 2);
  CHECK(reply.text.substr(reply.text.size() - 2) == "ok");
}

TEST_CASE("when every address refuses, the client gets 502 connection_refused", "[server][dns]") {
  ProxyUnderTest proxy(fast_config(), /*delay_ms=*/1, 0, loopback({closed_port(), closed_port()}));
  Reply reply = fetch(proxy.port(), "GET http://refused.example.test/ HTTP/1.1\r\n\r\n");
  CHECK(reply.text.rfind("HTTP/1.1 502 Bad Gateway\r\n", 0) == 0);
  CHECK(reply.text.find("error=connection_refused") != std::string::npos);
}
