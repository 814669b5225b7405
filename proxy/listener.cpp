#include "cutoff/listener.hpp"

#include <fcntl.h>
#include <netinet/in.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <utility>

#include "cutoff/descriptors.hpp"

namespace cutoff {

int probe_bind(const sockaddr_storage& address) {
  const auto* sa = reinterpret_cast<const sockaddr*>(&address);
  socklen_t len = address.ss_family == AF_INET6 ? sizeof(sockaddr_in6) : sizeof(sockaddr_in);
  int fd = socket(address.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return uv_translate_sys_error(errno);
  // As uv_tcp_bind does: connections of an earlier run in TIME_WAIT must
  // not make the address look taken.
  int on = 1;
  int rc = setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
  // As uv_tcp_bind does too: [::] takes IPv4 as well, so the probe must
  // collide with IPv4 listeners on the port, whatever the system default.
  int v6_only = 0;
  if (rc == 0 && address.ss_family == AF_INET6) {
    rc = setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6_only, sizeof v6_only);
  }
  if (rc == 0) rc = bind(fd, sa, len);
  if (rc != 0) rc = uv_translate_sys_error(errno);
  ::close(fd);
  return rc;
}

Listener::Listener(uv_loop_t* loop, std::string name, AcceptFn on_accept)
    : loop_(loop), name_(std::move(name)), on_accept_(std::move(on_accept)) {}

Listener::~Listener() {
  close();
}

int Listener::listen(const sockaddr_storage& address, bool reuse_port, int backlog,
                     sockaddr_storage* bound) {
  close();
  backlog_ = backlog;
  handle_ = make_uv<uv_tcp_t>();
  int rc = uv_tcp_init_ex(loop_, handle_.get(), address.ss_family);
  if (rc != 0) {
    // Never initialised (no socket): nothing to uv_close.
    delete handle_.release();
    return rc;
  }
  handle_->data = this;
  uv_os_fd_t fd = -1;
  uv_fileno(uv_handle_of(handle_.get()), &fd);
  if (reuse_port) {
    // libuv 1.44 has no flag for it: set it on the socket before bind.
    int on = 1;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &on, sizeof on) != 0) {
      rc = uv_translate_sys_error(errno);
    }
  }
  auto* stream = reinterpret_cast<uv_stream_t*>(handle_.get());
  if (rc == 0) rc = uv_tcp_bind(handle_.get(), reinterpret_cast<const sockaddr*>(&address), 0);
  if (rc == 0) rc = uv_listen(stream, backlog, on_connection);
  if (rc == 0) {
    keep_fd_ = fcntl(fd, F_DUPFD_CLOEXEC, 0);
    if (keep_fd_ < 0) rc = uv_translate_sys_error(errno);
  }
  if (rc != 0) {
    handle_.reset();
    return rc;
  }
  int len = sizeof *bound;
  uv_tcp_getsockname(handle_.get(), reinterpret_cast<sockaddr*>(bound), &len);
  return 0;
}

void Listener::close() {
  retry_timer_.reset();
  handle_.reset();
  if (keep_fd_ >= 0) {
    ::close(keep_fd_);
    keep_fd_ = -1;
  }
  backoff_ = kFirstRetry;
  failing_ = false;
  warned_ = false;
}

void Listener::on_connection(uv_stream_t* server, int status) {
  auto* self = static_cast<Listener*>(server->data);
  if (status < 0) {
    // libuv would try accept() again at once, and again, for as long as
    // the cause lasts: stop it by closing the handle.
    self->pause(status);
    return;
  }
  if (self->failing_) self->end_failures();
  self->on_accept_(server);
}

void Listener::pause(int status) {
  uint64_t now = uv_now(loop_);
  if (handle_) {
    handle_.reset();  // maybe inside its own callback: libuv frees it later
    if (pauses_) pauses_->add();
  }
  if (!failing_) {
    failing_ = true;
    failing_since_ms_ = now;
  }
  // One warning per run of failures, and at most one per interval; a run
  // too close to the last warning is counted in the next one.
  if (!warned_ && now >= next_warning_ms_) {
    std::string earlier;
    if (unreported_ > 0) {
      earlier = "; " + std::to_string(unreported_) + " shorter run(s) of failures not logged";
    }
    spdlog::warn("{} listener: accept failed: {}; not accepting for {}, then retrying{}", name_,
                 describe_error(status), backoff_.to_string(), earlier);
    warned_ = true;
    next_warning_ms_ = now + kWarningInterval.ms();
    unreported_ = 0;
  }
  if (!retry_timer_) {
    retry_timer_ = make_uv<uv_timer_t>();
    uv_timer_init(loop_, retry_timer_.get());
    retry_timer_->data = this;
  }
  uv_timer_start(retry_timer_.get(), on_retry, backoff_.ms(), 0);
  backoff_ = Duration::millis(std::min(backoff_.ms() * 2, kLongestRetry.ms()));
}

void Listener::end_failures() {
  if (warned_) {
    spdlog::info("{} listener: accepting again after {} ms", name_,
                 uv_now(loop_) - failing_since_ms_);
  } else {
    ++unreported_;
  }
  failing_ = false;
  warned_ = false;
  backoff_ = kFirstRetry;
}

void Listener::on_retry(uv_timer_t* timer) {
  auto* self = static_cast<Listener*>(timer->data);
  int rc = self->resume();
  if (rc != 0) self->pause(rc);
}

int Listener::resume() {
  // The new descriptor needs a free slot itself: failing here is the
  // cheapest way to learn that descriptors are still exhausted.
  int fd = fcntl(keep_fd_, F_DUPFD_CLOEXEC, 0);
  if (fd < 0) return uv_translate_sys_error(errno);
  auto handle = make_uv<uv_tcp_t>();
  int rc = uv_tcp_init(loop_, handle.get());
  if (rc != 0) {
    delete handle.release();
    ::close(fd);
    return rc;
  }
  handle->data = this;
  rc = uv_tcp_open(handle.get(), fd);
  if (rc != 0) {
    ::close(fd);
    return rc;  // `handle` closes here
  }
  // listen() again on a listening socket only sets its backlog; epoll
  // reports the connections that queued up meanwhile at once.
  rc = uv_listen(reinterpret_cast<uv_stream_t*>(handle.get()), backlog_, on_connection);
  if (rc != 0) return rc;  // closing `handle` closes `fd`
  handle_ = std::move(handle);
  return 0;
}

}  // namespace cutoff
