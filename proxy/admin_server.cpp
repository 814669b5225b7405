#include "cutoff/admin_server.hpp"

#include <strings.h>

#include <algorithm>
#include <charconv>
#include <cstdint>
#include <string_view>
#include <utility>

#include "cutoff/http_parser.hpp"
#include "cutoff/metrics_text.hpp"
#include "cutoff/proxy_error.hpp"
#include "cutoff/socket_address.hpp"
#include "cutoff/test_report.hpp"
#include "cutoff/uri_path.hpp"

namespace cutoff {

namespace {

// Room for a burst of connections the loop has not accepted yet: with a
// full listen queue the kernel drops SYNs, and a client (a probe among them)
// waits a second for its retransmission.
constexpr int kBacklog = 1024;

enum class Resource { healthz, readyz, metrics, connections, tests, test, unknown };

constexpr std::string_view kTestPrefix = "/tests/";

// The path of an origin-form or absolute-form target, without its query.
std::string_view request_path(std::string_view target) {
  for (std::string_view scheme : {"http://", "https://"}) {
    if (target.size() >= scheme.size() &&
        strncasecmp(target.data(), scheme.data(), scheme.size()) == 0) {
      target.remove_prefix(scheme.size());
      size_t slash = target.find('/');
      target = slash == std::string_view::npos ? std::string_view("/") : target.substr(slash);
      break;
    }
  }
  return target.substr(0, target.find_first_of("?#"));
}

Resource find_resource(std::string_view path) {
  if (path == "/healthz") return Resource::healthz;
  if (path == "/readyz") return Resource::readyz;
  if (path == "/metrics") return Resource::metrics;
  if (path == "/connections") return Resource::connections;
  if (path == "/tests") return Resource::tests;
  if (path.size() > kTestPrefix.size() && path.starts_with(kTestPrefix)) return Resource::test;
  return Resource::unknown;
}

constexpr std::string_view kText = "text/plain; charset=utf-8";
constexpr std::string_view kJson = "application/json";

}  // namespace

// One admin connection: one request, one response, then a graceful close.
class AdminServer::Connection final : public SocketEvents,
                                      public std::enable_shared_from_this<Connection> {
 public:
  explicit Connection(AdminServer& server) : server_(server), parser_(HTTP_REQUEST) {}

  // Takes the pending connection from `listener`. Returns 0, UV_EACCES for
  // a client outside admin.allow_clients, or another libuv error; the
  // connection is then unused, and dropping it closes the socket with a
  // FIN, nothing read or sent.
  int accept(uv_stream_t* listener);
  // Starts reading and arms the deadline of an accepted connection.
  void start();

  void on_data(TcpSocket& socket, const char* data, size_t len) override;
  void on_read_end(TcpSocket& socket, int status) override;
  void on_connect(TcpSocket&, int) override {}
  void on_drained(TcpSocket&, int) override {}  // nothing is sent before the answer
  void on_shutdown(TcpSocket&, int) override {}

  // Waiting on the client alone, for the rest of its request head: such a
  // connection can be closed to make room.
  bool waiting_on_client() const { return state_ == State::reading; }
  uint64_t accepted_at() const { return accepted_at_; }
  // Closes the connection to make room for a new one (FIN: the client has
  // nothing it asked for yet).
  void evict() { end(/*reset=*/false); }

 private:
  enum class State {
    reading,    // waiting for a whole request head
    answering,  // waiting for the AdminSource's /connections snapshot
    done,       // answered (the socket is in the server's ClosingSet) or closed
  };

  void handle_request();
  void answer_connections();
  void on_snapshot(std::string objects);
  void answer_test(std::string_view encoded_id, std::string_view method);
  void on_test_snapshot(const std::string& id, std::string open);
  void respond(int status, std::string_view content_type, std::string_view body,
               std::string_view extra_headers = {});
  // Closes the socket (RST when `reset`, else FIN) and hands the connection
  // to the server for deferred deletion.
  void end(bool reset);
  static void on_deadline(uv_timer_t* timer);

  AdminServer& server_;
  TcpSocket socket_;
  HttpParser parser_;
  // Armed at accept with the head deadline; re-armed when the request head
  // is whole with what is left of the connection's deadline, which bounds
  // it from accept to its answer. Disarmed (closed) when the connection
  // ends. Expiry closes the connection with a FIN: nothing was sent yet.
  UvPtr<uv_timer_t> deadline_;
  uint64_t accepted_at_ = 0;  // loop time
  State state_ = State::reading;
  size_t received_ = 0;     // request bytes seen before the head was whole
  bool head_only_ = false;  // a HEAD request: headers without the body
  bool peer_done_ = false;  // the client's FIN (or an error) ended our reading
};

int AdminServer::Connection::accept(uv_stream_t* listener) {
  int rc = socket_.init(server_.loop_, server_.read_buffer_.get(), this);
  if (rc != 0) return rc;
  rc = uv_accept(listener, socket_.stream());
  if (rc != 0) return rc;
  sockaddr_storage peer{};
  int len = sizeof peer;
  rc = uv_tcp_getpeername(socket_.handle(), reinterpret_cast<sockaddr*>(&peer), &len);
  if (rc != 0) return rc;
  // Metrics and connection details are not for anyone who can reach the
  // port: a stranger learns nothing but a FIN.
  if (!allowed_client(server_.source_.admin_allow_clients(), reinterpret_cast<sockaddr*>(&peer))) {
    return UV_EACCES;
  }
  return socket_.start_reading();
}

void AdminServer::Connection::start() {
  accepted_at_ = uv_now(server_.loop_);
  deadline_ = make_uv<uv_timer_t>();
  uv_timer_init(server_.loop_, deadline_.get());
  deadline_->data = this;
  uv_timer_start(deadline_.get(), on_deadline, server_.head_deadline_.ms(), 0);
}

void AdminServer::Connection::on_data(TcpSocket&, const char* data, size_t len) {
  // Anything after the request head (a body, a pipelined request, bytes
  // sent while lingering) is read and dropped, so that closing the socket
  // never finds unread input and turns our FIN into an RST.
  if (state_ != State::reading) return;
  size_t before = received_;
  received_ += len;
  size_t consumed = 0;
  switch (parser_.feed(data, len, &consumed)) {
    case HttpParser::Event::need_more:
      if (received_ > kMaxRequest) respond(431, kText, "request head larger than 8 KiB\n");
      return;
    case HttpParser::Event::head:
    case HttpParser::Event::message_complete:
    case HttpParser::Event::upgrade:
      if (before + consumed > kMaxRequest) {
        respond(431, kText, "request head larger than 8 KiB\n");
        return;
      }
      handle_request();
      return;
    case HttpParser::Event::error:
      respond(parser_.error_status(), kText, std::string(parser_.error_reason()) + "\n");
      return;
  }
}

void AdminServer::Connection::handle_request() {
  // The head is whole: from here the connection's own deadline applies.
  uint64_t age = uv_now(server_.loop_) - accepted_at_;
  uint64_t left = server_.deadline_.ms() > age ? server_.deadline_.ms() - age : 0;
  uv_timer_start(deadline_.get(), on_deadline, left, 0);
  const MessageHead& head = parser_.head();
  Resource resource = find_resource(request_path(head.target()));
  head_only_ = head.method() == "HEAD";
  if (resource == Resource::unknown) {
    respond(404, kText, "not found: try /healthz, /readyz, /metrics, /connections or /tests\n");
    return;
  }
  if (resource == Resource::test) {
    answer_test(request_path(head.target()).substr(kTestPrefix.size()), head.method());
    return;
  }
  if (head.method() != "GET" && !head_only_) {
    respond(405, kText, "method not allowed: use GET\n", "Allow: GET, HEAD\r\n");
    return;
  }
  switch (resource) {
    case Resource::healthz:
      respond(200, kText, "ok\n");
      return;
    case Resource::readyz:
      if (server_.source_.ready()) {
        respond(200, kText, "ready\n");
      } else {
        respond(503, kText, "draining\n");
      }
      return;
    case Resource::metrics: {
      std::string body;
      render_prometheus(body, server_.source_.worker_metrics());
      TestRegistry& tests = server_.source_.tests();
      if (tests.labels_metrics()) {
        tests.with_all(
            [&](const std::list<TestRecord>& all, uint64_t) { append_test_metrics(body, all); });
      }
      respond(200, kPrometheusContentType, body);
      return;
    }
    case Resource::connections:
      answer_connections();
      return;
    case Resource::tests: {
      std::string body;
      server_.source_.tests().with_all([&](const std::list<TestRecord>& all, uint64_t forgotten) {
        append_test_list_json(body, all, forgotten);
      });
      respond(200, kJson, body);
      return;
    }
    case Resource::test:
    case Resource::unknown:
      return;
  }
}

void AdminServer::Connection::answer_connections() {
  state_ = State::answering;
  // The workers answer later, on this thread; by then this connection may
  // have hit its deadline or the server may be closed, so the answer holds
  // only a weak reference and is dropped when nobody waits for it.
  std::weak_ptr<Connection> weak = weak_from_this();
  server_.source_.snapshot_connections({}, [weak](std::string objects) {
    if (std::shared_ptr<Connection> self = weak.lock()) self->on_snapshot(std::move(objects));
  });
}

// GET /tests/ID: what the test did, and what it still waits for (from the
// workers, as /connections gathers it); DELETE forgets it.
void AdminServer::Connection::answer_test(std::string_view encoded_id, std::string_view method) {
  // The id as a path segment carries it: percent-encoded where it holds
  // "/", "?", spaces and the like.
  std::string id;
  if (!percent_decode(encoded_id, &id)) {
    respond(400, kText, "the test id in the path has a \"%\" without two hex digits\n");
    return;
  }
  if (method == "DELETE") {
    if (server_.source_.tests().forget(id)) {
      respond(200, kText, "forgotten\n");
    } else {
      respond(404, kText, "no such test\n");
    }
    return;
  }
  if (method != "GET" && !head_only_) {
    respond(405, kText, "method not allowed: use GET or DELETE\n", "Allow: GET, HEAD, DELETE\r\n");
    return;
  }
  state_ = State::answering;
  std::weak_ptr<Connection> weak = weak_from_this();
  server_.source_.snapshot_connections(id, [weak, id](std::string open) {
    if (std::shared_ptr<Connection> self = weak.lock()) self->on_test_snapshot(id, std::move(open));
  });
}

void AdminServer::Connection::on_test_snapshot(const std::string& id, std::string open) {
  if (state_ != State::answering) return;
  std::string body;
  bool known = !open.empty();
  server_.source_.tests().with_test(id, [&](const TestRecord* test) {
    known = known || test != nullptr;
    append_test_json(body, id, test, open);
  });
  if (known) {
    respond(200, kJson, body);
  } else {
    respond(404, kJson, body);
  }
}

void AdminServer::Connection::on_snapshot(std::string objects) {
  if (state_ != State::answering) return;
  std::string body;
  body.reserve(objects.size() + 24);
  body.append("{\"connections\":[").append(objects).append("]}\n");
  respond(200, kJson, body);
}

void AdminServer::Connection::respond(int status, std::string_view content_type,
                                      std::string_view body, std::string_view extra_headers) {
  char number[24];
  std::string out;
  out.reserve(160 + body.size());
  auto end_status = std::to_chars(number, number + sizeof number, status).ptr;
  out.append("HTTP/1.1 ").append(number, end_status).append(" ").append(status_reason(status));
  out.append("\r\nContent-Type: ").append(content_type);
  auto end_length = std::to_chars(number, number + sizeof number, body.size()).ptr;
  out.append("\r\nContent-Length: ").append(number, end_length);
  out.append("\r\nCache-Control: no-store\r\n").append(extra_headers);
  out.append("Connection: close\r\n\r\n");
  if (!head_only_) out.append(body);
  // The answer is flushed, FIN follows, and the client's FIN is awaited by
  // the server's ClosingSet, as for proxied connections; a write error
  // surfaces there.
  socket_.send(out.data(), out.size());
  server_.closings_.close(std::move(socket_), server_.deadline_, server_.head_deadline_,
                          peer_done_);
  end(/*reset=*/false);
}

void AdminServer::Connection::on_read_end(TcpSocket&, int status) {
  peer_done_ = true;
  if (status != UV_EOF) {
    end(/*reset=*/true);  // reset by the client: nobody reads an answer
    return;
  }
  // A client may half-close after its request and still read the answer.
  if (state_ == State::reading) end(/*reset=*/false);
}

void AdminServer::Connection::end(bool reset) {
  if (state_ == State::done) return;
  state_ = State::done;
  deadline_.reset();
  if (reset) {
    socket_.abort();
  } else {
    socket_.close();
  }
  server_.finish(this);
}

void AdminServer::Connection::on_deadline(uv_timer_t* timer) {
  // The client has not been answered yet: it only waits, and gets a FIN.
  static_cast<Connection*>(timer->data)->end(/*reset=*/false);
}

AdminServer::AdminServer(uv_loop_t* loop, AdminSource& source, Duration deadline)
    : loop_(loop),
      source_(source),
      deadline_(deadline.is_off() ? kDefaultDeadline : deadline),
      head_deadline_(Duration::millis(std::min(kHeadDeadline.ms(), deadline_.ms()))),
      read_buffer_(std::make_unique<ReadBuffer>()),
      closings_(loop),
      listener_(loop, "admin", [this](uv_stream_t* listener) { accept_one(listener); }) {}

AdminServer::~AdminServer() {
  close();
}

int AdminServer::listen(const std::string& address, std::string* bound) {
  sockaddr_storage local{}, actual{};
  int rc = resolve_listen_address(address, &local);
  if (rc == 0) rc = listener_.listen(local, /*reuse_port=*/false, kBacklog, &actual);
  if (rc != 0) return rc;
  if (bound != nullptr) *bound = format_address(actual);
  return 0;
}

void AdminServer::close() {
  listener_.close();
  // Destroying a connection closes its socket and its timer; an answer
  // still on its way finds its weak reference expired.
  connections_.clear();
  finished_.clear();
  closings_.abort_all();
  closings_.reap();
  reaper_.reset();
}

void AdminServer::accept_one(uv_stream_t* listener) {
  // Accepted whatever follows: left in the backlog, it would be reported
  // again and again. A refused client (outside admin.allow_clients) is
  // closed here, before it can make a waiting connection give up its slot.
  auto connection = std::make_shared<Connection>(*this);
  if (connection->accept(listener) != 0) return;
  if (connections_.size() >= kMaxConnections && !make_room()) return;
  connection->start();
  connections_.push_back(std::move(connection));
}

bool AdminServer::make_room() {
  // A full table of clients that each sent half a request (or never close
  // after their answer) must not keep a health probe out: the one that has
  // waited longest makes room. Connections being answered are left alone.
  Connection* oldest = nullptr;
  for (const auto& connection : connections_) {
    if (!connection->waiting_on_client()) continue;
    if (oldest == nullptr || connection->accepted_at() < oldest->accepted_at()) {
      oldest = connection.get();
    }
  }
  if (oldest == nullptr) return false;
  oldest->evict();  // finish() takes it out of connections_
  return true;
}

void AdminServer::finish(Connection* connection) {
  auto it = std::find_if(connections_.begin(), connections_.end(),
                         [connection](const auto& c) { return c.get() == connection; });
  if (it == connections_.end()) return;
  finished_.push_back(std::move(*it));
  if (it != connections_.end() - 1) *it = std::move(connections_.back());
  connections_.pop_back();
  if (!reaper_) {
    reaper_ = make_uv<uv_timer_t>();
    uv_timer_init(loop_, reaper_.get());
    reaper_->data = this;
  }
  uv_timer_start(reaper_.get(), on_reap, 0, 0);
}

void AdminServer::on_reap(uv_timer_t* timer) {
  // Every finished connection has closed its socket and timer; what is left
  // is memory, freed outside of any of its callbacks.
  auto* self = static_cast<AdminServer*>(timer->data);
  self->finished_.clear();
  self->closings_.reap();
}

}  // namespace cutoff
