#pragma once
// A listening TCP socket on an event loop that survives running out of
// file descriptors (SPEC §7c).
//
// When accept() fails with EMFILE, libuv first tries its own remedy: it
// closes a descriptor it keeps in reserve for the loop, accepts and closes
// the waiting connections, and opens the reserve again. With several event
// loops in one process that remedy races: another thread takes the freed
// slot, the reserve cannot be reopened, and from then on libuv hands every
// failure to the connection callback and tries again at once, never
// returning to epoll_wait. A callback cannot stop a libuv listener except by
// closing its handle, so that is what a Listener does on any accept error:
// it closes the handle, keeps the socket itself open through a duplicate
// descriptor taken at listen time (so the port, the SO_REUSEPORT group and
// the connections queued in the kernel all stay), and a timer opens a new
// handle on the same socket after a short back-off. The other remedy, a
// reserve descriptor per loop to accept and close with, was not chosen: it
// is the very mechanism that races between loops, and closing connections
// that could be served a moment later helps nobody when descriptors free up
// quickly. Existing connections are untouched either way.

#include <sys/socket.h>
#include <uv.h>

#include <cstdint>
#include <functional>
#include <string>

#include "cutoff/duration.hpp"
#include "cutoff/metrics.hpp"
#include "cutoff/uv_handle.hpp"

namespace cutoff {

class Listener {
 public:
  // Called once per connection waiting to be accepted; it must take the
  // connection with uv_accept(server, ...) before returning.
  using AcceptFn = std::function<void(uv_stream_t* server)>;

  // The first retry after a failed accept, and the longest wait between
  // retries while they keep failing (the wait doubles each time).
  static constexpr Duration kFirstRetry = Duration::millis(100);
  static constexpr Duration kLongestRetry = Duration::seconds(1);
  // At most one warning per this interval; the next one counts the rest.
  static constexpr Duration kWarningInterval = Duration::seconds(10);

  // `name` says which listener it is in log lines ("proxy", "admin").
  Listener(uv_loop_t* loop, std::string name, AcceptFn on_accept);
  ~Listener();
  Listener(const Listener&) = delete;
  Listener& operator=(const Listener&) = delete;

  // Binds `address` (with SO_REUSEPORT when `reuse_port`) and listens.
  // *bound receives the address as bound. Returns 0 or a libuv error.
  int listen(const sockaddr_storage& address, bool reuse_port, int backlog,
             sockaddr_storage* bound);
  // Stops listening and closes the socket. Idempotent.
  void close();
  // Each pause (accepting stopped after an accept error) adds one.
  void count_pauses(Counter* pauses) { pauses_ = pauses; }

  bool listening() const { return keep_fd_ >= 0; }
  bool paused() const { return listening() && !handle_; }

 private:
  static void on_connection(uv_stream_t* server, int status);
  static void on_retry(uv_timer_t* timer);
  // Closes the handle and arms the retry timer with the current back-off.
  void pause(int status);
  // The first connection accepted after a pause: back-off and reporting
  // start over.
  void end_failures();
  // Opens a handle on the kept socket; returns 0 or a libuv error.
  int resume();

  uv_loop_t* loop_;
  std::string name_;
  AcceptFn on_accept_;
  int backlog_ = 0;
  // The libuv handle while accepting; empty while paused.
  UvPtr<uv_tcp_t> handle_;
  // A duplicate of the listening socket, held from listen() to close(): it
  // keeps the socket open while the handle is closed.
  int keep_fd_ = -1;
  // Armed by a pause with the current back-off; disarmed by close(). Its
  // expiry opens a new handle, or pauses again (longer) when that fails.
  UvPtr<uv_timer_t> retry_timer_;
  Duration backoff_ = kFirstRetry;
  bool failing_ = false;          // no connection accepted since the last pause
  bool warned_ = false;           // this run of failures was reported
  uint64_t next_warning_ms_ = 0;  // loop time before which no warning is logged
  uint64_t unreported_ = 0;       // runs of failures not warned about since the last warning
  uint64_t failing_since_ms_ = 0;
  Counter* pauses_ = nullptr;
};

// Binds a throwaway socket to `address` without SO_REUSEPORT and closes it
// again. UV_EADDRINUSE means another socket serves the address, including
// another process's SO_REUSEPORT listeners, which a worker's own
// SO_REUSEPORT bind would silently join. Always 0 for port 0.
int probe_bind(const sockaddr_storage& address);

}  // namespace cutoff
