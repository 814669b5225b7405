// Routes on resolved addresses (SPEC §9), through the server object with an
// injected resolver: a name that resolves into a denied range is refused
// before any connection, every address of a name is checked (route order
// decides which route an address falls under), and "allow internal
// addresses, deny the rest" lets the address routes decide before a
// deny-by-host route. Real sockets on 127.0.0.0/8 only: the scripted answers
// list a loopback address first, so a proxy that connected without checking
// would reach a local listener (and be caught) rather than the network.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <variant>

#include "cutoff/access_log.hpp"
#include "cutoff/config.hpp"
#include "cutoff/resolver.hpp"
#include "cutoff/uv_handle.hpp"
#include "cutoff/worker.hpp"

using namespace cutoff;

namespace {

double time_scale() {
  const char* s = std::getenv("CUTOFF_TIME_SCALE");
  return s ? std::atof(s) : 1.0;
}

sockaddr_in ipv4(const char* address, uint16_t port) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  REQUIRE(inet_pton(AF_INET, address, &a.sin_addr) == 1);
  return a;
}

AddressList addresses(std::initializer_list<std::pair<const char*, uint16_t>> list) {
  AddressList out;
  for (const auto& [address, port] : list) {
    sockaddr_in a = ipv4(address, port);
    out.add(reinterpret_cast<const sockaddr*>(&a));
  }
  return out;
}

// Answers each name from a script, 1 ms later from a timer on the worker's
// loop (as a thread-pool lookup would); an unscripted name does not resolve.
class ScriptResolver final : public Resolver {
 public:
  ScriptResolver(uv_loop_t* loop, std::map<std::string, AddressList> script)
      : loop_(loop), script_(std::move(script)) {}

  Lookup* resolve(const std::string& host, uint16_t, ResolveListener* listener) override {
    auto pending = std::make_unique<Pending>();
    pending->owner = this;
    pending->host = host;
    pending->listener = listener;
    pending->timer = make_uv<uv_timer_t>();
    uv_timer_init(loop_, pending->timer.get());
    pending->timer->data = pending.get();
    uv_timer_start(pending->timer.get(), on_timer, 1, 0);
    ++started;
    Pending* raw = pending.get();
    pending_.push_back(std::move(pending));
    return reinterpret_cast<Lookup*>(raw);
  }

  void cancel(Lookup* lookup) override { reinterpret_cast<Pending*>(lookup)->listener = nullptr; }

  std::atomic<int> started{0};

 private:
  struct Pending {
    ScriptResolver* owner;
    std::string host;
    ResolveListener* listener;
    UvPtr<uv_timer_t> timer;
  };

  static void on_timer(uv_timer_t* timer) {
    auto* pending = static_cast<Pending*>(timer->data);
    if (pending->listener == nullptr) return;
    const auto& script = pending->owner->script_;
    auto it = script.find(pending->host);
    if (it == script.end()) {
      pending->listener->on_resolved(UV_EAI_NONAME, AddressList{});
    } else {
      pending->listener->on_resolved(0, it->second);
    }
  }

  uv_loop_t* loop_;
  std::map<std::string, AddressList> script_;
  std::vector<std::unique_ptr<Pending>> pending_;
};

// A listener on a loopback address that counts the connections it accepts
// and answers each with a 200 and Connection: close.
class CountingOrigin {
 public:
  explicit CountingOrigin(const char* address = "127.0.0.1") : bound_address_(address) {
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a = ipv4(address, 0);
    REQUIRE(bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
    REQUIRE(listen(fd_, 16) == 0);
    socklen_t len = sizeof a;
    getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    thread_ = std::thread([this] { serve(); });
  }
  ~CountingOrigin() {
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
    const char* address = bound_address_;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a = ipv4(address, port_);
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
  const char* bound_address_;
  int fd_;
  uint16_t port_ = 0;
  std::atomic<bool> stopping_{false};
  std::atomic<int> accepted_{0};
  int barriers_ = 0;
  std::thread thread_;
};

// Sends one request through the proxy and reads until the proxy closes.
std::string fetch(uint16_t proxy_port, const std::string& request) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  timeval tv{static_cast<time_t>(5 * time_scale()), 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  sockaddr_in a = ipv4("127.0.0.1", proxy_port);
  REQUIRE(connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
  send(fd, request.data(), request.size(), MSG_NOSIGNAL);
  std::string reply;
  char buf[4096];
  for (;;) {
    ssize_t n = recv(fd, buf, sizeof buf, 0);
    if (n <= 0) break;
    reply.append(buf, static_cast<size_t>(n));
  }
  close(fd);
  return reply;
}

std::string get(uint16_t proxy_port, const std::string& authority) {
  return fetch(proxy_port, "GET http://" + authority + "/ HTTP/1.1\r\nHost: " + authority +
                               "\r\nConnection: close\r\n\r\n");
}

std::string connect_to(uint16_t proxy_port, const std::string& authority) {
  return fetch(proxy_port, "CONNECT " + authority + " HTTP/1.1\r\nHost: " + authority + "\r\n\r\n");
}

Config parse(const std::string& toml) {
  ConfigResult result = parse_config(toml, "test_address_routes");
  if (auto* errors = std::get_if<std::vector<ConfigError>>(&result)) {
    for (const auto& e : *errors) UNSCOPED_INFO(e.to_string());
    FAIL("the test's config does not parse");
  }
  return std::get<Config>(std::move(result));
}

// A Worker with the scripted resolver, running on its own thread.
class Proxy {
 public:
  Proxy(const std::string& routes_toml, std::map<std::string, AddressList> script)
      : log_(AccessLogConfig{LogFormat::text, "/dev/null"}) {
    Config config = parse(
        "linger_timeout = \"200ms\"\n"
        "[listen]\naddress = \"127.0.0.1:0\"\nconnect_ports = [\"*\"]\n"
        "[defaults]\ndns_timeout = \"500ms\"\nconnect_timeout = \"500ms\"\n"
        "response_header_timeout = \"1s\"\n" +
        routes_toml);
    REQUIRE(config.routes_match_addresses);
    worker_ = std::make_unique<Worker>(std::make_shared<const Config>(std::move(config)), log_);
    auto resolver = std::make_unique<ScriptResolver>(worker_->loop(), std::move(script));
    resolver_ = resolver.get();
    worker_->set_resolver(std::move(resolver));
    std::string bound;
    REQUIRE(worker_->listen(&bound) == 0);
    port_ = static_cast<uint16_t>(std::stoi(bound.substr(bound.rfind(':') + 1)));
    stop_ = make_uv<uv_async_t>();
    uv_async_init(worker_->loop(), stop_.get(), [](uv_async_t* async) {
      auto* self = static_cast<Proxy*>(async->data);
      self->worker_->stop();
      self->stop_.reset();
    });
    stop_->data = this;
    thread_ = std::thread([this] { worker_->run(); });
  }
  ~Proxy() {
    uv_async_send(stop_.get());
    thread_.join();
    worker_.reset();
  }
  uint16_t port() const { return port_; }
  int lookups() const { return resolver_->started; }

 private:
  AccessLog log_;
  std::unique_ptr<Worker> worker_;
  ScriptResolver* resolver_ = nullptr;
  UvPtr<uv_async_t> stop_;
  std::thread thread_;
  uint16_t port_ = 0;
};

bool starts_with(const std::string& text, const std::string& prefix) {
  return text.rfind(prefix, 0) == 0;
}

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

// The Proxy-Status line of a reply, for messages.
std::string proxy_status(const std::string& reply) {
  size_t at = reply.find("Proxy-Status:");
  if (at == std::string::npos) return "";
  return reply.substr(at, reply.find("\r\n", at) - at);
}

}  // namespace

TEST_CASE("a name that resolves into a denied range is refused before any connection",
          "[server][address_routes]") {
  CountingOrigin origin;
  const uint16_t port = origin.port();
  const std::string authority = "internal.test:" + std::to_string(port);
  Proxy proxy(
      "[[route]]\nname = \"no-ten\"\nmatch = { address = [\"10.0.0.0/8\"] }\n"
      "action = \"deny\"\n",
      {{"internal.test", addresses({{"127.0.0.1", port}, {"10.0.0.7", port}})}});

  std::string reply = get(proxy.port(), authority);
  INFO(reply);
  CHECK(starts_with(reply, "HTTP/1.1 403 "));
  CHECK(contains(reply, "Proxy-Status: cutoff; error=http_request_denied; details=\""));
  CHECK(contains(proxy_status(reply), "10.0.0.7:" + std::to_string(port)));
  CHECK(contains(proxy_status(reply), "route no-ten"));
  CHECK(contains(reply, "Content-Type: text/plain"));
  CHECK(contains(reply, "Connection: close"));

  std::string tunnel = connect_to(proxy.port(), authority);
  INFO(tunnel);
  CHECK(starts_with(tunnel, "HTTP/1.1 403 "));
  CHECK(contains(proxy_status(tunnel), "10.0.0.7:" + std::to_string(port)));

  CHECK(proxy.lookups() == 2);
  CHECK(origin.accepted_by_now() == 0);
}

TEST_CASE("a name whose addresses are all outside the denied range is forwarded",
          "[server][address_routes]") {
  CountingOrigin origin;
  const uint16_t port = origin.port();
  Proxy proxy(
      "[[route]]\nname = \"no-ten\"\nmatch = { address = [\"10.0.0.0/8\"] }\n"
      "action = \"deny\"\n",
      {{"fine.test", addresses({{"127.0.0.1", port}})}});
  std::string reply = get(proxy.port(), "fine.test:" + std::to_string(port));
  INFO(reply);
  CHECK(starts_with(reply, "HTTP/1.1 200 OK\r\n"));
  CHECK(origin.accepted() == 1);
}

TEST_CASE("every address counts: the first allowed by route order, a later one denied",
          "[server][address_routes]") {
  // 127.0.0.1 is inside the denied /8 too, but route order lets it through;
  // 127.0.0.2 only falls under the deny route, and that refuses the request.
  CountingOrigin origin;
  const uint16_t port = origin.port();
  Proxy proxy(
      "[[route]]\nname = \"one-host\"\nmatch = { address = [\"127.0.0.1/32\"] }\n"
      "[[route]]\nname = \"no-loopback\"\nmatch = { address = [\"127.0.0.0/8\"] }\n"
      "action = \"deny\"\n",
      {{"mixed.test", addresses({{"127.0.0.1", port}, {"127.0.0.2", port}})},
       {"single.test", addresses({{"127.0.0.1", port}})}});

  std::string denied = get(proxy.port(), "mixed.test:" + std::to_string(port));
  INFO(denied);
  CHECK(starts_with(denied, "HTTP/1.1 403 "));
  CHECK(contains(denied, "error=http_request_denied"));
  CHECK(contains(proxy_status(denied), "127.0.0.2:" + std::to_string(port)));
  CHECK(contains(proxy_status(denied), "route no-loopback"));
  CHECK(origin.accepted_by_now() == 0);
  std::string allowed = get(proxy.port(), "single.test:" + std::to_string(port));
  INFO(allowed);
  CHECK(starts_with(allowed, "HTTP/1.1 200 OK\r\n"));
  CHECK(origin.accepted() == 1);

  // A literal in the denied part of the range: refused without a lookup.
  const int lookups = proxy.lookups();
  std::string literal = get(proxy.port(), "127.0.0.2:" + std::to_string(port));
  INFO(literal);
  CHECK(starts_with(literal, "HTTP/1.1 403 "));
  CHECK(contains(proxy_status(literal), "127.0.0.2:" + std::to_string(port)));
  CHECK(proxy.lookups() == lookups);
  CHECK(origin.accepted_by_now() == 1);
}

TEST_CASE("allow internal addresses, deny the rest: the address routes decide",
          "[server][address_routes]") {
  // "Internal" is 127.0.0.1 here and "the rest" 127.0.0.2, so that nothing
  // leaves loopback even if the deny failed.
  CountingOrigin internal("127.0.0.1");
  CountingOrigin external("127.0.0.2");
  const std::string internal_port = std::to_string(internal.port());
  const std::string external_port = std::to_string(external.port());
  Proxy proxy(
      "[[route]]\nname = \"internal\"\n"
      "match = { address = [\"10.0.0.0/8\", \"127.0.0.1/32\"] }\n"
      "[[route]]\nname = \"deny-rest\"\nmatch = { host = \"*\" }\naction = \"deny\"\n",
      {{"inside.test", addresses({{"127.0.0.1", internal.port()}})},
       {"outside.test", addresses({{"127.0.0.2", external.port()}})}});

  SECTION("a name resolving to an internal address is forwarded") {
    std::string reply = get(proxy.port(), "inside.test:" + internal_port);
    INFO(reply);
    CHECK(starts_with(reply, "HTTP/1.1 200 OK\r\n"));
    CHECK(internal.accepted() == 1);
    std::string literal = get(proxy.port(), "127.0.0.1:" + internal_port);
    INFO(literal);
    CHECK(starts_with(literal, "HTTP/1.1 200 OK\r\n"));
    CHECK(internal.accepted() == 2);
  }
  SECTION("a name resolving elsewhere is denied without a connection") {
    std::string reply = get(proxy.port(), "outside.test:" + external_port);
    INFO(reply);
    CHECK(starts_with(reply, "HTTP/1.1 403 "));
    CHECK(contains(reply, "error=http_request_denied"));
    CHECK(contains(proxy_status(reply), "127.0.0.2:" + external_port));
    CHECK(contains(proxy_status(reply), "route deny-rest"));
    std::string tunnel = connect_to(proxy.port(), "outside.test:" + external_port);
    INFO(tunnel);
    CHECK(starts_with(tunnel, "HTTP/1.1 403 "));
    std::string literal = get(proxy.port(), "127.0.0.2:" + external_port);
    INFO(literal);
    CHECK(starts_with(literal, "HTTP/1.1 403 "));
    CHECK(external.accepted_by_now() == 0);
  }
}
