#include "cutoff/tcp_socket.hpp"

#include <linux/sockios.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include <cassert>
#include <cerrno>
#include <cstddef>
#include <cstring>

namespace cutoff {

TcpSocket& TcpSocket::operator=(TcpSocket&& other) noexcept {
  if (this != &other) {
    close();
    core_ = std::move(other.core_);
    if (core_) core_->owner = this;
  }
  return *this;
}

int TcpSocket::init(uv_loop_t* loop, ReadBuffer* buffer, SocketEvents* events) {
  close();
  core_ = make_uv<Core>();
  int rc = uv_tcp_init(loop, &core_->tcp);
  if (rc != 0) {
    // Never initialised: there is nothing to uv_close, free the block directly.
    delete core_.release();
    return rc;
  }
  core_->tcp.data = buffer;
  core_->owner = this;
  core_->events = events;
  uv_tcp_nodelay(&core_->tcp, 1);
  return 0;
}

TcpSocket::Core* TcpSocket::core_of(void* handle) {
  // The block is at the address of its first member, the handle. Core is
  // not standard-layout to clang's library (its unique_ptr is not), so the
  // offset is asked directly; GCC and clang both give offsetof its meaning
  // for such a type, and warn that the standard does not.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Winvalid-offsetof"
  static_assert(offsetof(Core, tcp) == 0);
#pragma GCC diagnostic pop
  static_assert(sizeof(Core) <= sizeof(uv_tcp_t) + 32, "an idle connection's socket grew");
  return reinterpret_cast<Core*>(handle);
}

TcpSocket::Core::Extra& TcpSocket::extra_of(Core* core) {
  if (!core->extra) {
    core->extra = std::make_unique<Core::Extra>();
    core->extra->write_req.data = core;
  }
  return *core->extra;
}

// A connect or shutdown request is made for its one use: from the moment
// libuv accepts it, it is libuv's until its callback, which libuv always
// calls (with UV_ECANCELED when the socket closes first) and which frees it.
int TcpSocket::connect(const sockaddr* address) {
  auto req = std::make_unique<uv_connect_t>();
  req->data = core_.get();
  int rc = uv_tcp_connect(req.get(), &core_->tcp, address, on_connected);
  if (rc != 0) return rc;
  req.release();  // on_connected takes it back
  core_->connecting = true;
  return 0;
}

int TcpSocket::start_reading() {
  if (core_->reading) return 0;
  int rc = uv_read_start(stream(), on_alloc, on_read);
  if (rc == 0) core_->reading = true;
  return rc;
}

void TcpSocket::stop_reading() {
  if (!core_ || !core_->reading) return;
  uv_read_stop(stream());
  core_->reading = false;
}

int TcpSocket::send(const char* data, size_t len) {
  uv_buf_t buf = uv_buf_init(const_cast<char*>(data), static_cast<unsigned>(len));
  return send(&buf, 1);
}

int TcpSocket::send(const uv_buf_t* bufs, unsigned count) {
  return tls_of(core_.get()) ? send_encrypted(bufs, count) : send_raw(bufs, count);
}

int TcpSocket::send_encrypted(const uv_buf_t* bufs, unsigned count) {
  // Pieces that fit one record together (a response head and a small body)
  // go as one: a record costs far more than copying them.
  TlsLayer& tls = *tls_of(core_.get());
  char record[kTlsRecord];
  size_t total = 0;
  for (unsigned i = 0; i < count; ++i) total += bufs[i].len;
  if (count > 1 && total <= sizeof record) {
    size_t at = 0;
    for (unsigned i = 0; i < count; ++i) {
      std::memcpy(record + at, bufs[i].base, bufs[i].len);
      at += bufs[i].len;
    }
    if (!tls.write(record, total)) return UV_EPROTO;
  } else {
    for (unsigned i = 0; i < count; ++i) {
      if (bufs[i].len > 0 && !tls.write(bufs[i].base, bufs[i].len)) return UV_EPROTO;
    }
  }
  return send_tls_output(core_.get());
}

int TcpSocket::send_tls_output(Core* core) {
  TlsLayer& tls = *tls_of(core);
  std::string_view out = tls.output();
  if (out.empty() || core->owner == nullptr) return 0;
  uv_buf_t buf = uv_buf_init(const_cast<char*>(out.data()), static_cast<unsigned>(out.size()));
  int rc = core->owner->send_raw(&buf, 1);
  tls.clear_output();
  return rc;
}

void TcpSocket::start_tls(std::unique_ptr<TlsLayer> layer, std::string_view read_ahead) {
  Core* core = core_.get();
  extra_of(core).tls = std::move(layer);
  if (!read_ahead.empty()) return on_ciphertext(core, read_ahead.data(), read_ahead.size());
  // A client speaks first; a server's handshake() only waits for the hello.
  core->extra->tls->handshake();
  send_tls_output(core);
}

int TcpSocket::send_raw(const uv_buf_t* bufs, unsigned count) {
  Core& core = *core_;
  for (unsigned i = 0; i < count; ++i) core.sent += bufs[i].len;
  unsigned first = 0;
  size_t offset = 0;
  if (!core.extra || core.extra->inflight.empty()) {
    // Nothing queued: let the kernel take what it can right now. This is
    // the whole write on a healthy connection, with no copy.
    // A refused write (EPIPE, ECONNRESET) is queued all the same: uv_write
    // then fails it on the next loop turn and on_drained reports the error,
    // so the owner learns of it outside the call that sent.
    int written = uv_try_write(stream(), bufs, count);
    size_t left = written > 0 ? static_cast<size_t>(written) : 0;
    while (first < count && left >= bufs[first].len) left -= bufs[first++].len;
    offset = left;
    if (first == count) return 0;
  }
  Core::Extra& extra = extra_of(&core);
  for (unsigned i = first; i < count; ++i) {
    extra.backlog.append(bufs[i].base + (i == first ? offset : 0),
                         bufs[i].len - (i == first ? offset : 0));
  }
  return extra.inflight.empty() ? flush_backlog() : 0;
}

int TcpSocket::flush_backlog() {
  Core::Extra& extra = *core_->extra;
  extra.inflight.swap(extra.backlog);
  uv_buf_t buf = uv_buf_init(extra.inflight.data(), static_cast<unsigned>(extra.inflight.size()));
  return uv_write(&extra.write_req, stream(), &buf, 1, on_write);
}

int TcpSocket::set_keepalive(unsigned idle_s, unsigned interval_s, unsigned count) {
  int rc = uv_tcp_keepalive(&core_->tcp, 1, idle_s);
  if (rc != 0) return rc;
  uv_os_fd_t fd;
  rc = uv_fileno(reinterpret_cast<uv_handle_t*>(&core_->tcp), &fd);
  if (rc != 0) return rc;
  int interval = static_cast<int>(interval_s);
  int probes = static_cast<int>(count);
  if (setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &interval, sizeof interval) != 0 ||
      setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &probes, sizeof probes) != 0) {
    return uv_translate_sys_error(errno);
  }
  return 0;
}

int TcpSocket::set_user_timeout(unsigned ms) {
  uv_os_fd_t fd;
  int rc = uv_fileno(reinterpret_cast<uv_handle_t*>(&core_->tcp), &fd);
  if (rc != 0) return rc;
  if (setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &ms, sizeof ms) != 0) {
    return uv_translate_sys_error(errno);
  }
  return 0;
}

size_t TcpSocket::unacknowledged() const {
  if (!core_) return 0;
  size_t backlog = core_->extra ? core_->extra->backlog.size() : 0;
  size_t queued =
      backlog + uv_stream_get_write_queue_size(reinterpret_cast<const uv_stream_t*>(&core_->tcp));
  uv_os_fd_t fd;
  int in_kernel = 0;
  if (uv_fileno(reinterpret_cast<const uv_handle_t*>(&core_->tcp), &fd) != 0 ||
      ioctl(fd, SIOCOUTQ, &in_kernel) != 0) {
    in_kernel = 0;
  }
  return queued + static_cast<size_t>(in_kernel);
}

uint64_t TcpSocket::acknowledged() const {
  if (!core_) return 0;
  uint64_t waiting = unacknowledged();
  return core_->sent > waiting ? core_->sent - waiting : 0;
}

int TcpSocket::shutdown_write() {
  if (core_->fin_queued) return 0;
  if (core_->connecting) return UV_ENOTCONN;
  if (TlsLayer* tls = tls_of(core_.get())) {
    tls->close_notify();
    send_tls_output(core_.get());
  }
  auto req = std::make_unique<uv_shutdown_t>();
  req->data = core_.get();
  int rc = uv_shutdown(req.get(), stream(), on_shutdown_done);
  if (rc != 0) return rc;
  req.release();  // on_shutdown_done takes it back (see connect())
  core_->fin_queued = true;
  return 0;
}

void TcpSocket::close() {
  if (!core_) return;
  core_->events = nullptr;
  core_->owner = nullptr;
  core_.reset();  // uv_close: FIN unless unread input makes the kernel send RST
}

void TcpSocket::abort() {
  if (!core_) return;
  // Set SO_LINGER ourselves rather than uv_tcp_close_reset, which refuses
  // once a shutdown is pending.
  uv_os_fd_t fd;
  if (uv_fileno(reinterpret_cast<uv_handle_t*>(&core_->tcp), &fd) == 0) {
    linger lin{1, 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &lin, sizeof lin);
  }
  close();
}

void TcpSocket::on_alloc(uv_handle_t* handle, size_t, uv_buf_t* buf) {
  ReadBuffer* buffer = buffer_of(core_of(handle));
  assert(!buffer->in_use && "one read at a time per loop");
  buffer->in_use = true;
  *buf = uv_buf_init(buffer->bytes, ReadBuffer::kSize);
}

void TcpSocket::on_read(uv_stream_t* stream, ssize_t nread, const uv_buf_t*) {
  Core* core = core_of(stream);
  ReadBuffer* buffer = buffer_of(core);
  // Release first: the owner may close this socket (and free `core`) from
  // inside its callback.
  buffer->in_use = false;
  if (nread == 0 || core->events == nullptr) return;
  if (nread > 0) {
    if (tls_of(core)) return on_ciphertext(core, buffer->bytes, static_cast<size_t>(nread));
    core->events->on_data(*core->owner, buffer->bytes, static_cast<size_t>(nread));
    return;
  }
  // The read side is over: libuv stops reading on EOF; make it explicit.
  uv_read_stop(stream);
  core->reading = false;
  int status = static_cast<int>(nread);
  if (status == UV_EOF && tls_of(core) && tls_of(core)->end_is_truncation()) status = UV_EPROTO;
  core->events->on_read_end(*core->owner, status);
}

// TLS records in: the handshake moves on until it is done, then the
// plaintext goes to the owner a record at a time, through the worker's read
// buffer (the layer has its own copy of the ciphertext). The owner may close
// or hand the socket over from any callback, so each step looks again.
void TcpSocket::on_ciphertext(Core* core, const char* data, size_t len) {
  TlsLayer& tls = *tls_of(core);
  tls.receive(data, len);
  if (!tls.handshake_done()) {
    TlsLayer::Progress progress = tls.handshake();
    send_tls_output(core);  // the handshake's next flight, or our alert
    if (progress == TlsLayer::Progress::waiting || core->events == nullptr) return;
    core->events->on_handshake(*core->owner, progress == TlsLayer::Progress::done ? 0 : UV_EPROTO);
    if (progress != TlsLayer::Progress::done) return;
  }
  deliver_plaintext(core);
}

// Everything one read brought is decrypted, then handed over in one piece,
// as a plain socket hands over one read: a response and the bytes behind it
// arrive together, so the owner sees what trails a response (and never
// reuses that connection) whatever the records' boundaries.
void TcpSocket::deliver_plaintext(Core* core) {
  ReadBuffer* buffer = buffer_of(core);
  while (core->events != nullptr) {
    size_t filled = 0;
    TlsLayer::Read result = TlsLayer::Read::data;
    while (filled < ReadBuffer::kSize) {
      size_t n = 0;
      result = tls_of(core)->read(buffer->bytes + filled, ReadBuffer::kSize - filled, &n);
      if (result != TlsLayer::Read::data) break;
      filled += n;
      // Asking again with nothing buffered would only hear "want more".
      if (!tls_of(core)->buffered()) {
        result = TlsLayer::Read::waiting;
        break;
      }
    }
    if (filled > 0) core->events->on_data(*core->owner, buffer->bytes, filled);
    if (core->events == nullptr) return;
    send_tls_output(core);                         // an answer to a key update, or our alert
    if (result == TlsLayer::Read::data) continue;  // the buffer was full
    if (result == TlsLayer::Read::waiting) return;
    // close_notify is the TLS end of stream; anything else broke it.
    uv_read_stop(reinterpret_cast<uv_stream_t*>(&core->tcp));
    core->reading = false;
    core->events->on_read_end(*core->owner, result == TlsLayer::Read::closed ? UV_EOF : UV_EPROTO);
    return;
  }
}

void TcpSocket::on_write(uv_write_t* req, int status) {
  auto* core = static_cast<Core*>(req->data);
  // A closing socket's requests finish with ECANCELED (or, if they had
  // completed just before, with 0) after the owner has let go of it.
  if (core->events == nullptr) return;
  Core::Extra& extra = *core->extra;
  extra.inflight.clear();
  if (status == 0 && !extra.backlog.empty()) {
    status = core->owner->flush_backlog();
    if (status == 0) return;
  }
  if (extra.inflight.capacity() > 4 * ReadBuffer::kSize) {
    std::string().swap(extra.inflight);
  }
  core->events->on_drained(*core->owner, status);
}

void TcpSocket::on_shutdown_done(uv_shutdown_t* req, int status) {
  std::unique_ptr<uv_shutdown_t> done(req);
  auto* core = static_cast<Core*>(req->data);
  core->fin_sent = status == 0;
  if (core->events) core->events->on_shutdown(*core->owner, status);
}

void TcpSocket::on_connected(uv_connect_t* req, int status) {
  std::unique_ptr<uv_connect_t> done(req);
  auto* core = static_cast<Core*>(req->data);
  core->connecting = false;
  if (core->events) core->events->on_connect(*core->owner, status);
}

}  // namespace cutoff
