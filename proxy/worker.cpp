#include "cutoff/worker.hpp"

#include <spdlog/spdlog.h>
#include <sys/socket.h>

#include <cassert>
#include <cstdlib>
#include <cstring>

#include "cutoff/session.hpp"

namespace cutoff {
namespace {

constexpr int kBacklog = 1024;
constexpr uint64_t kAccessLogFlushMs = 100;

// Resolves a listen host: an address literal, or a name looked up once at
// start-up (blocking is fine before the loop runs).
int listen_address(const std::string& host, uint16_t port, sockaddr_storage* out) {
  AddressList literal;
  if (parse_ip_literal(host, port, &literal)) {
    std::memcpy(out, literal.at(0), sizeof literal.entries[0]);
    return 0;
  }
  uv_getaddrinfo_t req;
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE;
  std::string service = std::to_string(port);
  int rc = uv_getaddrinfo(nullptr, &req, nullptr, host.c_str(), service.c_str(), &hints);
  if (rc != 0) return rc;
  std::memcpy(out, req.addrinfo->ai_addr, req.addrinfo->ai_addrlen);
  uv_freeaddrinfo(req.addrinfo);
  return 0;
}

std::string describe(const sockaddr_storage& address) {
  char ip[INET6_ADDRSTRLEN] = "?";
  if (address.ss_family == AF_INET6) {
    const auto& a = reinterpret_cast<const sockaddr_in6&>(address);
    uv_ip6_name(&a, ip, sizeof ip);
    return "[" + std::string(ip) + "]:" + std::to_string(ntohs(a.sin6_port));
  }
  const auto& a = reinterpret_cast<const sockaddr_in&>(address);
  uv_ip4_name(&a, ip, sizeof ip);
  return std::string(ip) + ":" + std::to_string(ntohs(a.sin_port));
}

}  // namespace

Worker::Worker(std::shared_ptr<const Config> config, AccessLog& access_log)
    : config_(std::move(config)), access_log_(access_log), pool_(&loop_) {
  int rc = uv_loop_init(&loop_);
  assert(rc == 0);
  (void)rc;
  resolver_ = std::make_unique<UvResolver>(&loop_);
  reaper_ = make_uv<uv_check_t>();
  uv_check_init(&loop_, reaper_.get());
  reaper_->data = this;
  uv_check_start(reaper_.get(), on_check);
  uv_unref(uv_handle_of(reaper_.get()));
#ifdef CUTOFF_DEADLINE_CHECKS
  invariant_ = make_uv<uv_prepare_t>();
  uv_prepare_init(&loop_, invariant_.get());
  invariant_->data = this;
  uv_prepare_start(invariant_.get(), on_prepare);
  uv_unref(uv_handle_of(invariant_.get()));
#endif
  flush_timer_ = make_uv<uv_timer_t>();
  uv_timer_init(&loop_, flush_timer_.get());
  flush_timer_->data = this;
  uv_timer_start(flush_timer_.get(), on_flush_timer, kAccessLogFlushMs, kAccessLogFlushMs);
  uv_unref(uv_handle_of(flush_timer_.get()));
}

Worker::~Worker() {
  stop();
  retired_.clear();
  resolver_.reset();  // a resolver may own handles of this loop
  reaper_.reset();
  invariant_.reset();
  flush_timer_.reset();
  // Let every close callback run, then the loop must be empty.
  uv_run(&loop_, UV_RUN_DEFAULT);
  int rc = uv_loop_close(&loop_);
  if (rc != 0) spdlog::error("event loop closed with handles still open: {}", uv_strerror(rc));
  access_log_.flush();
}

int Worker::listen(std::string* bound) {
  std::string host;
  uint16_t port = 0;
  std::string error;
  if (!parse_host_port(config_->listen.address, &host, &port, &error)) return UV_EINVAL;
  if (host.empty()) host = "0.0.0.0";  // ":3128" means every local address
  sockaddr_storage address{};
  int rc = listen_address(host, port, &address);
  if (rc != 0) return rc;
  listener_ = make_uv<uv_tcp_t>();
  uv_tcp_init_ex(&loop_, listener_.get(), address.ss_family);
  listener_->data = this;
  rc = uv_tcp_bind(listener_.get(), reinterpret_cast<const sockaddr*>(&address), 0);
  if (rc == 0)
    rc = uv_listen(reinterpret_cast<uv_stream_t*>(listener_.get()), kBacklog, on_connection);
  if (rc != 0) {
    listener_.reset();
    return rc;
  }
  sockaddr_storage actual{};
  int len = sizeof actual;
  uv_tcp_getsockname(listener_.get(), reinterpret_cast<sockaddr*>(&actual), &len);
  *bound = describe(actual);
  return 0;
}

void Worker::run() {
  uv_run(&loop_, UV_RUN_DEFAULT);
}

void Worker::stop() {
  if (stopping_) return;
  stopping_ = true;
  listener_.reset();
  drain_timer_.reset();
  uv_timer_stop(flush_timer_.get());
  // terminate() retires each session, moving it out of sessions_.
  while (!sessions_.empty()) sessions_.front().terminate();
  pool_.clear();
  access_log_.flush();
}

void Worker::drain(Duration timeout) {
  if (draining_ || stopping_) return;
  draining_ = true;
  listener_.reset();
  pool_.clear();
  // drain() may retire sessions: step past each before asking it.
  for (auto it = sessions_.begin(); it != sessions_.end();) (it++)->drain();
  if (sessions_.empty()) return stop();
  drain_timer_ = make_uv<uv_timer_t>();
  uv_timer_init(&loop_, drain_timer_.get());
  drain_timer_->data = this;
  uv_timer_start(drain_timer_.get(), on_drain_timeout, timeout.ms(), 0);
}

void Worker::on_drain_timeout(uv_timer_t* timer) {
  auto* self = static_cast<Worker*>(timer->data);
  spdlog::warn("drain_timeout: tearing down {} connection(s)", self->sessions_.size());
  self->stop();
}

void Worker::retire(Session* session) {
  retired_.splice(retired_.end(), sessions_, session->self());
  if (draining_ && sessions_.empty()) stop();
}

void Worker::on_connection(uv_stream_t* server, int status) {
  auto* self = static_cast<Worker*>(server->data);
  if (status < 0) {
    spdlog::warn("accept failed: {}", uv_strerror(status));
    return;
  }
  self->accept_one();
}

void Worker::accept_one() {
  auto* server = reinterpret_cast<uv_stream_t*>(listener_.get());
  if (sessions_.size() >= config_->listen.max_client_connections) {
    // Over the cap: accept and close at once, so the client learns it now
    // and the listen queue never backs up.
    TcpSocket refused;
    if (refused.init(&loop_, &read_buffer_, nullptr) == 0) uv_accept(server, refused.stream());
    return;
  }
  sessions_.emplace_back(*this);
  auto it = std::prev(sessions_.end());
  if (!it->accept(server, it)) retire(&*it);
}

void Worker::on_check(uv_check_t* check) {
  auto* self = static_cast<Worker*>(check->data);
  self->retired_.clear();
}

void Worker::on_prepare(uv_prepare_t* prepare) {
  auto* self = static_cast<Worker*>(prepare->data);
  for (const Session& session : self->sessions_) {
    if (!session.deadline_armed()) {
      spdlog::critical("invariant broken: a connection waits in phase {} with no deadline",
                       Session::phase_name(session.phase()));
      std::abort();
    }
  }
}

void Worker::on_flush_timer(uv_timer_t* timer) {
  static_cast<Worker*>(timer->data)->access_log_.flush();
}

}  // namespace cutoff
