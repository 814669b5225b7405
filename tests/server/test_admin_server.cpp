// The admin endpoint on a loop of its own, with a fake AdminSource, through
// real sockets on 127.0.0.1: routes, asynchronous /connections answers
// (including ones that arrive after their connection is gone), the
// per-connection deadline, and a loop left empty at the end.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <cerrno>
#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "cutoff/admin_server.hpp"
#include "cutoff/admin_source.hpp"
#include "cutoff/metrics.hpp"
#include "cutoff/uv_handle.hpp"

using namespace cutoff;
using Clock = std::chrono::steady_clock;

namespace {

double time_scale() {
  const char* s = std::getenv("CUTOFF_TIME_SCALE");
  return s ? std::atof(s) : 1.0;
}

// Stands in for the workers. /connections is answered at once, after
// `answer_delay_ms` from a timer on the admin loop (as the real source does
// when the workers reply), or never, until the loop stops: then every held
// answer is delivered, after the server has closed its connections.
class FakeSource final : public AdminSource {
 public:
  enum class Answer { at_once, later, never };

  explicit FakeSource(uv_loop_t* loop) : loop_(loop) {
    metrics.record_exchange(metrics.route("default"), 200, 1500);
    parse_cidr("127.0.0.0/8", &loopback_.emplace_back(), nullptr);
    parse_cidr("10.0.0.0/8", &elsewhere_.emplace_back(), nullptr);
  }

  bool ready() const override { return ready_flag.load(); }
  // As a reload would change it: loopback clients in, or only 10.0.0.0/8.
  // Asked once per accepted connection, which `accepted` counts.
  const std::vector<Cidr>& admin_allow_clients() const override {
    ++accepted;
    return admit_loopback.load() ? loopback_ : elsewhere_;
  }
  std::vector<const Metrics*> worker_metrics() const override { return {&metrics, &metrics}; }

  TestRegistry& tests() override { return tests_; }

  void snapshot_connections(std::string only_test, std::function<void(std::string)> done) override {
    ++snapshots;
    last_only_test = std::move(only_test);
    if (answer == Answer::at_once) {
      done(objects);
      return;
    }
    auto held = std::make_unique<Held>();
    held->owner = this;
    held->done = std::move(done);
    if (answer == Answer::later) {
      held->timer = make_uv<uv_timer_t>();
      uv_timer_init(loop_, held->timer.get());
      held->timer->data = held.get();
      uv_timer_start(held->timer.get(), on_timer, answer_delay_ms, 0);
    }
    held_.push_back(std::move(held));
  }

  // On the loop's thread, after the server closed: late answers go out to
  // connections that no longer exist, and every timer is closed.
  void stop() {
    for (auto& held : held_) {
      if (held->done) held->done(objects);
      held->timer.reset();
    }
    held_.clear();
  }

  std::atomic<bool> ready_flag{true};
  std::atomic<bool> admit_loopback{true};
  Answer answer = Answer::at_once;
  uint64_t answer_delay_ms = 100;
  std::string objects = R"({"id":1,"phase":"connect"},{"id":2,"phase":"tunnel"})";
  Metrics metrics;
  std::atomic<int> snapshots{0};
  std::string last_only_test;  // what the last snapshot was narrowed to
  mutable std::atomic<size_t> accepted{0};
  TestRegistry tests_{TestsConfig{}};

 private:
  struct Held {
    FakeSource* owner;
    std::function<void(std::string)> done;
    UvPtr<uv_timer_t> timer;
  };
  static void on_timer(uv_timer_t* timer) {
    auto* held = static_cast<Held*>(timer->data);
    auto done = std::move(held->done);
    held->done = nullptr;
    done(held->owner->objects);
  }

  uv_loop_t* loop_;
  std::vector<std::unique_ptr<Held>> held_;
  std::vector<Cidr> loopback_;
  std::vector<Cidr> elsewhere_;
};

// An AdminServer on its own loop and thread for the test's duration. Stopping
// closes the server, the fake's timers and the stop signal itself; the loop
// must then close cleanly.
class AdminUnderTest {
 public:
  explicit AdminUnderTest(Duration deadline = AdminServer::kDefaultDeadline,
                          FakeSource::Answer answer = FakeSource::Answer::at_once) {
    REQUIRE(uv_loop_init(&loop_) == 0);
    source_ = std::make_unique<FakeSource>(&loop_);
    source_->answer = answer;
    server_ = std::make_unique<AdminServer>(&loop_, *source_, deadline);
    std::string bound;
    REQUIRE(server_->listen("127.0.0.1:0", &bound) == 0);
    REQUIRE(bound.rfind("127.0.0.1:", 0) == 0);
    port_ = static_cast<uint16_t>(std::stoi(bound.substr(bound.rfind(':') + 1)));
    stop_ = make_uv<uv_async_t>();
    uv_async_init(&loop_, stop_.get(), [](uv_async_t* async) {
      auto* self = static_cast<AdminUnderTest*>(async->data);
      self->open_at_stop_ = self->server_->connection_count();
      self->server_->close();
      self->source_->stop();
      self->stop_.reset();  // closed on the loop's own thread
    });
    stop_->data = this;
    thread_ = std::thread([this] { uv_run(&loop_, UV_RUN_DEFAULT); });
  }

  // Stops the loop; returns what uv_loop_close says (0: every handle closed).
  int stop() {
    if (!stopped_) {
      stopped_ = true;
      uv_async_send(stop_.get());
      thread_.join();
      server_.reset();
      close_rc_ = uv_loop_close(&loop_);
    }
    return close_rc_;
  }
  ~AdminUnderTest() { stop(); }

  uint16_t port() const { return port_; }
  FakeSource& source() { return *source_; }
  size_t open_at_stop() const { return open_at_stop_; }

 private:
  uv_loop_t loop_;
  std::unique_ptr<FakeSource> source_;
  std::unique_ptr<AdminServer> server_;
  UvPtr<uv_async_t> stop_;
  std::thread thread_;
  uint16_t port_ = 0;
  size_t open_at_stop_ = 0;
  bool stopped_ = false;
  int close_rc_ = 0;
};

int connect_to(uint16_t port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  timeval tv{10, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(port);
  REQUIRE(connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
  return fd;
}

struct Reply {
  std::string text;
  bool reset = false;  // the connection ended with an RST rather than a FIN
  double seconds = 0;

  int status() const { return text.size() >= 12 ? std::stoi(text.substr(9, 3)) : 0; }
  std::string body() const {
    size_t end = text.find("\r\n\r\n");
    return end == std::string::npos ? "" : text.substr(end + 4);
  }
  bool has_header(const std::string& line) const {
    return text.find("\r\n" + line + "\r\n") != std::string::npos;
  }
};

// Reads until the server closes.
Reply read_all(int fd, Clock::time_point start) {
  Reply reply;
  char buf[4096];
  for (;;) {
    ssize_t n = recv(fd, buf, sizeof buf, 0);
    if (n < 0 && errno == ECONNRESET) reply.reset = true;
    if (n <= 0) break;
    reply.text.append(buf, static_cast<size_t>(n));
  }
  reply.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  close(fd);
  return reply;
}

Reply fetch(uint16_t port, const std::string& request, bool half_close = false) {
  int fd = connect_to(port);
  auto start = Clock::now();
  send(fd, request.data(), request.size(), MSG_NOSIGNAL);
  if (half_close) shutdown(fd, SHUT_WR);
  return read_all(fd, start);
}

Reply get(uint16_t port, const std::string& path) {
  return fetch(port, "GET " + path + " HTTP/1.1\r\nHost: admin\r\n\r\n");
}

}  // namespace

TEST_CASE("admin: /healthz answers 200 ok and closes with a FIN", "[server][admin]") {
  AdminUnderTest admin;
  Reply reply = get(admin.port(), "/healthz");
  INFO(reply.text);
  CHECK(reply.text.rfind("HTTP/1.1 200 OK\r\n", 0) == 0);
  CHECK(reply.has_header("Connection: close"));
  CHECK(reply.has_header("Content-Length: 3"));
  CHECK(reply.body() == "ok\n");
  CHECK_FALSE(reply.reset);
  CHECK(admin.stop() == 0);
}

TEST_CASE("admin: /readyz is 200 until the source stops being ready, then 503", "[server][admin]") {
  AdminUnderTest admin;
  Reply ready = get(admin.port(), "/readyz");
  CHECK(ready.status() == 200);
  CHECK(ready.body() == "ready\n");
  admin.source().ready_flag = false;
  Reply draining = get(admin.port(), "/readyz");
  CHECK(draining.text.rfind("HTTP/1.1 503 Service Unavailable\r\n", 0) == 0);
  CHECK(draining.body() == "draining\n");
  CHECK(admin.stop() == 0);
}

TEST_CASE("admin: /metrics is Prometheus text with the workers summed", "[server][admin]") {
  AdminUnderTest admin;
  Reply reply = get(admin.port(), "/metrics?name=x");
  INFO(reply.text);
  CHECK(reply.status() == 200);
  CHECK(reply.has_header("Content-Type: text/plain; version=0.0.4; charset=utf-8"));
  // The fake hands the same worker twice: its one exchange counts twice.
  CHECK(reply.body().find("\ncutoff_requests_total{route=\"default\",code=\"2xx\"} 2\n") !=
        std::string::npos);
  CHECK(reply.body().rfind("# HELP ", 0) == 0);
  CHECK(admin.stop() == 0);
}

TEST_CASE("admin: /connections wraps the source's objects in a JSON array", "[server][admin]") {
  SECTION("answered at once") {
    AdminUnderTest admin;
    Reply reply = get(admin.port(), "/connections");
    INFO(reply.text);
    CHECK(reply.status() == 200);
    CHECK(reply.has_header("Content-Type: application/json"));
    CHECK(reply.body() ==
          "{\"connections\":[{\"id\":1,\"phase\":\"connect\"},{\"id\":2,\"phase\":\"tunnel\"}]}\n");
    CHECK(admin.stop() == 0);
  }
  SECTION("answered later, from the loop") {
    AdminUnderTest admin(AdminServer::kDefaultDeadline, FakeSource::Answer::later);
    Reply reply = get(admin.port(), "/connections");
    INFO(reply.text);
    CHECK(reply.status() == 200);
    CHECK(reply.body().rfind("{\"connections\":[{\"id\":1,", 0) == 0);
    CHECK(reply.seconds >= 0.09);
    CHECK(admin.stop() == 0);
  }
  SECTION("with no open exchange") {
    AdminUnderTest admin;
    admin.source().objects.clear();
    CHECK(get(admin.port(), "/connections").body() == "{\"connections\":[]}\n");
    CHECK(admin.stop() == 0);
  }
}

TEST_CASE("admin: an answer that arrives after its connection is gone is dropped",
          "[server][admin]") {
  const double scale = time_scale();
  SECTION("the deadline closed the connection first") {
    AdminUnderTest admin(Duration::millis(150), FakeSource::Answer::never);
    Reply reply = get(admin.port(), "/connections");
    CHECK(reply.text.empty());
    CHECK(reply.seconds >= 0.14);
    CHECK(reply.seconds < 0.15 + 0.3 * scale);
    CHECK(admin.source().snapshots == 1);
    // stop() delivers the held answer after the server let go of it; ASan
    // watches for a use after free.
    CHECK(admin.stop() == 0);
  }
  SECTION("the client reset the connection first") {
    AdminUnderTest admin(AdminServer::kDefaultDeadline, FakeSource::Answer::later);
    admin.source().answer_delay_ms = 200;
    int fd = connect_to(admin.port());
    const std::string request = "GET /connections HTTP/1.1\r\n\r\n";
    send(fd, request.data(), request.size(), MSG_NOSIGNAL);
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    linger lin{1, 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &lin, sizeof lin);
    close(fd);  // RST
    std::this_thread::sleep_for(std::chrono::milliseconds(static_cast<int>(300 * scale)));
    CHECK(admin.source().snapshots == 1);
    CHECK(admin.stop() == 0);
    CHECK(admin.open_at_stop() == 0);
  }
}

TEST_CASE("admin: unknown paths get 404, other methods 405", "[server][admin]") {
  AdminUnderTest admin;
  Reply missing = get(admin.port(), "/nope");
  CHECK(missing.text.rfind("HTTP/1.1 404 Not Found\r\n", 0) == 0);
  CHECK_FALSE(missing.body().empty());
  CHECK(fetch(admin.port(), "HEAD /nope HTTP/1.1\r\n\r\n").body().empty());
  Reply post = fetch(admin.port(), "POST /healthz HTTP/1.1\r\nContent-Length: 2\r\n\r\nhi");
  CHECK(post.text.rfind("HTTP/1.1 405 Method Not Allowed\r\n", 0) == 0);
  CHECK(post.has_header("Allow: GET, HEAD"));
  CHECK_FALSE(post.reset);
  Reply head = fetch(admin.port(), "HEAD /healthz HTTP/1.1\r\n\r\n");
  CHECK(head.status() == 200);
  CHECK(head.has_header("Content-Length: 3"));
  CHECK(head.body().empty());
  CHECK(admin.stop() == 0);
}

TEST_CASE("admin: malformed and oversized requests are refused", "[server][admin]") {
  AdminUnderTest admin;
  CHECK(fetch(admin.port(), "GET /healthz HTTP/1.1\r\nHost: a\rb\r\n\r\n").status() == 400);
  std::string big = "GET /healthz HTTP/1.1\r\nX-Pad: " + std::string(9000, 'a') + "\r\n\r\n";
  Reply too_big = fetch(admin.port(), big);
  CHECK(too_big.status() == 431);
  CHECK(admin.stop() == 0);
}

TEST_CASE("admin: a client that half-closes after its request still gets the answer",
          "[server][admin]") {
  AdminUnderTest admin;
  Reply reply = fetch(admin.port(), "GET /healthz HTTP/1.0\r\n\r\n", /*half_close=*/true);
  CHECK(reply.status() == 200);
  CHECK(reply.body() == "ok\n");
  CHECK(admin.stop() == 0);
}

TEST_CASE("admin: a client that sends nothing, or half a request, is closed at the deadline",
          "[server][admin]") {
  const double scale = time_scale();
  AdminUnderTest admin(Duration::millis(200));
  int silent = connect_to(admin.port());
  int partial = connect_to(admin.port());
  auto start = Clock::now();
  send(partial, "GET /heal", 9, MSG_NOSIGNAL);
  Reply from_silent = read_all(silent, start);
  Reply from_partial = read_all(partial, start);
  CHECK(from_silent.text.empty());
  CHECK(from_silent.seconds >= 0.19);
  CHECK(from_silent.seconds < 0.2 + 0.3 * scale);
  CHECK(from_partial.text.empty());
  CHECK(from_partial.seconds < 0.2 + 0.3 * scale);
  CHECK(admin.stop() == 0);
  CHECK(admin.open_at_stop() == 0);
}

TEST_CASE("admin: many concurrent clients are all answered", "[server][admin]") {
  AdminUnderTest admin(AdminServer::kDefaultDeadline, FakeSource::Answer::later);
  admin.source().answer_delay_ms = 20;
  constexpr int kClients = 60;
  std::vector<int> fds;
  auto start = Clock::now();
  for (int i = 0; i < kClients; ++i) {
    fds.push_back(connect_to(admin.port()));
    std::string request =
        std::string("GET ") + (i % 2 ? "/connections" : "/metrics") + " HTTP/1.1\r\n\r\n";
    send(fds.back(), request.data(), request.size(), MSG_NOSIGNAL);
  }
  int ok = 0;
  for (int fd : fds) ok += read_all(fd, start).status() == 200 ? 1 : 0;
  CHECK(ok == kClients);
  CHECK(admin.source().snapshots == kClients / 2);
  CHECK(admin.stop() == 0);
}

TEST_CASE("admin: closing the server with clients still connected leaves the loop empty",
          "[server][admin]") {
  AdminUnderTest admin(AdminServer::kDefaultDeadline, FakeSource::Answer::never);
  int idle = connect_to(admin.port());
  int waiting = connect_to(admin.port());
  const std::string request = "GET /connections HTTP/1.1\r\n\r\n";
  send(waiting, request.data(), request.size(), MSG_NOSIGNAL);
  while (admin.source().snapshots == 0) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  CHECK(admin.stop() == 0);
  CHECK(admin.open_at_stop() == 2);
  auto now = Clock::now();
  CHECK(read_all(idle, now).text.empty());
  CHECK(read_all(waiting, now).text.empty());
}

TEST_CASE("admin: a client outside allow_clients is closed at once with nothing sent",
          "[server][admin]") {
  AdminUnderTest admin;
  admin.source().admit_loopback = false;
  Reply refused = get(admin.port(), "/metrics");
  // Closed unread: a FIN, or an RST when the request was already in.
  CHECK(refused.text.empty());
  CHECK(refused.seconds < 1.0 * time_scale());  // not the head deadline: at accept
  // The allowlist is asked at every accept: a change reaches the next client.
  admin.source().admit_loopback = true;
  CHECK(get(admin.port(), "/healthz").status() == 200);
  CHECK(admin.stop() == 0);
  CHECK(admin.open_at_stop() == 0);
}

TEST_CASE("admin: refused clients cannot push waiting ones out of their slots", "[server][admin]") {
  AdminUnderTest admin;
  std::vector<int> waiting;
  for (size_t i = 0; i < AdminServer::kMaxConnections; ++i) {
    waiting.push_back(connect_to(admin.port()));
  }
  // Half a request on the oldest: it would be the first evicted.
  const std::string head_start = "GET /healthz HTTP/1.1\r\n";
  send(waiting.front(), head_start.data(), head_start.size(), MSG_NOSIGNAL);
  // Every waiting one admitted before loopback is refused: connect()
  // returns before the server's loop has accepted, and a busy machine may
  // leave some in the listen queue a while.
  while (admin.source().accepted < AdminServer::kMaxConnections) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  admin.source().admit_loopback = false;
  // Accepted after the waiting ones (the listen queue is FIFO), within the
  // waiting one's 1 s head deadline.
  for (int i = 0; i < 4; ++i) CHECK(get(admin.port(), "/healthz").text.empty());
  admin.source().admit_loopback = true;
  send(waiting.front(), "\r\n", 2, MSG_NOSIGNAL);
  CHECK(read_all(waiting.front(), Clock::now()).status() == 200);
  for (size_t i = 1; i < waiting.size(); ++i) close(waiting[i]);
  CHECK(admin.stop() == 0);
}

TEST_CASE("admin: a bad address is refused", "[server][admin]") {
  uv_loop_t loop;
  REQUIRE(uv_loop_init(&loop) == 0);
  {
    FakeSource source(&loop);
    AdminServer server(&loop, source);
    std::string bound;
    CHECK(server.listen("not an address", &bound) == UV_EINVAL);
    CHECK(bound.empty());
  }
  uv_run(&loop, UV_RUN_DEFAULT);
  CHECK(uv_loop_close(&loop) == 0);
}
