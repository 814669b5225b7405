#pragma once
// A TCP connection on the event loop, with the teardown rules of SPEC §5.
//
// Reads land in the worker's one shared read buffer and are handed to the
// owner synchronously; an owner that cannot consume everything copies what it
// keeps. Writes are attempted at once (uv_try_write); only what the kernel
// does not take is copied into a backlog, whose size is the backpressure
// signal: the owner stops reading the other side while `queued()` is high and
// resumes on `on_drained`.
//
// TLS: after start_tls(), what the owner sends is encrypted and what it reads
// was decrypted (tls_layer.hpp); the owner sees the same plain bytes and
// events either way, plus on_handshake when the TLS handshake ends.
//
// Closing: close() sends FIN (after nothing is pending); abort() sends RST.
// shutdown_write() queues a FIN behind pending writes, for lingering closes.
// The socket's handle lives in a heap block that outlives the TcpSocket until
// libuv's close callback, and its requests point at that block, so cancelled
// requests never touch a destroyed owner.

#include <uv.h>

#include <cstddef>
#include <memory>
#include <string>
#include <utility>

#include "cutoff/tls_layer.hpp"
#include "cutoff/uv_handle.hpp"

namespace cutoff {

class TcpSocket;

// Events of one socket, delivered to its current owner.
class SocketEvents {
 public:
  virtual void on_data(TcpSocket& socket, const char* data, size_t len) = 0;
  // The peer's FIN (UV_EOF) or a read error such as UV_ECONNRESET.
  virtual void on_read_end(TcpSocket& socket, int status) = 0;
  virtual void on_connect(TcpSocket& socket, int status) = 0;
  // Everything queued has reached the kernel; or a write failed (status < 0).
  virtual void on_drained(TcpSocket& socket, int status) = 0;
  // The FIN queued by shutdown_write() went out (or failed).
  virtual void on_shutdown(TcpSocket& socket, int status) = 0;
  // The TLS handshake of start_tls() is done (0) or failed (UV_EPROTO; the
  // socket's tls()->failure() says why). Only sockets that start TLS.
  virtual void on_handshake(TcpSocket&, int) {}

 protected:
  ~SocketEvents() = default;
};

// The worker-wide buffer every read lands in. Only one read callback runs at a
// time on a loop, so one buffer serves all of a worker's sockets.
struct ReadBuffer {
  static constexpr size_t kSize = 64 * 1024;
  char bytes[kSize];
  bool in_use = false;
};

class TcpSocket {
 public:
  TcpSocket() = default;
  TcpSocket(TcpSocket&& other) noexcept { *this = std::move(other); }
  TcpSocket& operator=(TcpSocket&& other) noexcept;
  ~TcpSocket() { close(); }

  // Prepares a socket for uv_accept or connect().
  int init(uv_loop_t* loop, ReadBuffer* buffer, SocketEvents* events);
  explicit operator bool() const { return core_ != nullptr; }
  uv_tcp_t* handle() { return &core_->tcp; }
  uv_stream_t* stream() { return reinterpret_cast<uv_stream_t*>(&core_->tcp); }

  void set_events(SocketEvents* events) { core_->events = events; }
  int connect(const sockaddr* address);
  int start_reading();
  void stop_reading();
  bool reading() const { return core_ && core_->reading; }

  // Sends the buffers; whatever the kernel does not take now is copied. A
  // write error is reported by on_drained (status < 0), never here, except
  // UV_EPIPE after shutdown_write().
  int send(const uv_buf_t* bufs, unsigned count);
  int send(const char* data, size_t len);

  // From now on this connection speaks TLS through `layer`: a client layer
  // sends its ClientHello at once, a server layer answers the peer's.
  // `read_ahead`: bytes of the peer's that were read before, taken as if
  // they arrived now (events may fire before this returns).
  void start_tls(std::unique_ptr<TlsLayer> layer, std::string_view read_ahead = {});
  // The TLS layer, or null for plain TCP.
  const TlsLayer* tls() const { return core_ ? tls_of(core_.get()) : nullptr; }
  size_t queued() const {
    return core_ && core_->extra ? core_->extra->backlog.size() + core_->extra->inflight.size() : 0;
  }
  // Bytes the peer has not acknowledged yet (on the wire: TLS records count
  // whole): what waits in libuv (counting
  // what it has written of the in-flight buffer) and the kernel's send queue
  // (SIOCOUTQ; with our FIN, once shut down). It shrinks while a slow peer
  // reads, even before on_drained; one ioctl(2).
  size_t unacknowledged() const;
  // Bytes the peer has acknowledged since the socket was set up: what was
  // given to send() less unacknowledged() (so one ioctl(2) too). How fast a
  // receiver really takes a body, when cutoff holds bytes back for it.
  uint64_t acknowledged() const;

  // TCP keepalive probes (SO_KEEPALIVE, TCP_KEEPIDLE/INTVL/CNT, in whole
  // seconds) and TCP_USER_TIMEOUT, so a vanished peer is noticed by the
  // kernel even between cutoff's own deadlines. Each returns 0 or the libuv
  // error of the first option the kernel refused, for the caller to log;
  // the connection itself stays usable either way.
  int set_keepalive(unsigned idle_s, unsigned interval_s, unsigned count);
  int set_user_timeout(unsigned ms);

  // Queues a FIN behind pending writes; on_shutdown reports it. Once only:
  // later calls return 0 and do nothing.
  int shutdown_write();
  // Our FIN has left: everything queued before it was flushed.
  bool fin_sent() const { return core_ && core_->fin_sent; }
  // Graceful close: FIN if the kernel has nothing unread, and drops anything
  // still queued. No-op on an empty socket.
  void close();
  // Abortive close: RST (SO_LINGER 0), discarding anything queued.
  void abort();

 private:
  // What a socket holds for as long as it is open: the handle, and what
  // every read and write needs. An idle keep-alive connection holds this
  // and nothing else (see Extra): 280 bytes, a 288-byte heap chunk.
  //
  // The handle comes first, so that its callbacks find the Core at the
  // handle's own address (core_of), and the handle's `data` holds the
  // worker's read buffer rather than a pointer back to the Core; until it
  // closes, when UvCloser takes that slot.
  struct Core {
    uv_tcp_t tcp;
    TcpSocket* owner = nullptr;
    SocketEvents* events = nullptr;
    // What most connections never need, allocated the first time one does:
    // a write the kernel did not take at once (the write request and the
    // bytes it holds), or TLS. A plain connection whose writes the kernel
    // takes whole carries none of it. The connect and shutdown requests
    // are not kept at all: each is allocated when it is made, and libuv
    // holds it until its callback.
    struct Extra {
      uv_write_t write_req;
      std::string inflight;           // bytes handed to uv_write
      std::string backlog;            // bytes waiting for the in-flight write to finish
      std::unique_ptr<TlsLayer> tls;  // when the bytes on the wire are TLS
    };
    std::unique_ptr<Extra> extra;
    // Every byte given to send() (2^60 bytes is more than any connection
    // carries), and the flags, in one word.
    uint64_t sent : 60 = 0;
    bool reading : 1 = false;
    bool connecting : 1 = false;
    bool fin_queued : 1 = false;
    bool fin_sent : 1 = false;
  };
  friend uv_handle_t* uv_handle_of(Core* core) {
    return reinterpret_cast<uv_handle_t*>(&core->tcp);
  }

  static constexpr size_t kTlsRecord = 16 * 1024;  // the most plaintext one TLS record holds
  static TlsLayer* tls_of(const Core* core) {
    return core->extra ? core->extra->tls.get() : nullptr;
  }
  static Core::Extra& extra_of(Core* core);
  static Core* core_of(void* handle);
  static ReadBuffer* buffer_of(const Core* core) {
    return static_cast<ReadBuffer*>(core->tcp.data);
  }
  int flush_backlog();
  // send() of the bytes as they go on the wire.
  int send_raw(const uv_buf_t* bufs, unsigned count);
  int send_encrypted(const uv_buf_t* bufs, unsigned count);
  // Sends the ciphertext the TLS layer has produced.
  static int send_tls_output(Core* core);
  static void on_ciphertext(Core* core, const char* data, size_t len);
  static void deliver_plaintext(Core* core);
  static void on_alloc(uv_handle_t* handle, size_t suggested, uv_buf_t* buf);
  static void on_read(uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf);
  static void on_write(uv_write_t* req, int status);
  static void on_shutdown_done(uv_shutdown_t* req, int status);
  static void on_connected(uv_connect_t* req, int status);

  UvPtr<Core> core_;
};

}  // namespace cutoff
