#pragma once
// The admin endpoint (SPEC §7, §12): /healthz, /readyz, /metrics,
// /connections and /tests over HTTP/1.1, on the control thread's loop.
//
// Every admin connection carries one request and is closed after its
// response (Connection: close) by a ClosingSet (closing.hpp), as proxied
// connections are: the response is flushed (a client that stops reading is
// reset after `deadline`), a FIN follows, and the rest of the input is
// discarded until the client's FIN (for the head deadline at most). A short
// deadline covers the request head, which a probe sends at once, and
// `deadline` the time from accept to the answer. When every connection slot
// is taken, the connection that has waited longest for the rest of its head
// is closed to make room, so that clients holding connections open cannot
// keep /healthz from answering.

#include <uv.h>

#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include "cutoff/admin_source.hpp"
#include "cutoff/closing.hpp"
#include "cutoff/duration.hpp"
#include "cutoff/listener.hpp"
#include "cutoff/tcp_socket.hpp"
#include "cutoff/uv_handle.hpp"

namespace cutoff {

class AdminServer {
 public:
  static constexpr Duration kDefaultDeadline = Duration::seconds(5);
  // The whole request head must arrive within this of accept (or within
  // the connection's deadline when that is shorter).
  static constexpr Duration kHeadDeadline = Duration::seconds(1);
  // A request head larger than this is refused with 431.
  static constexpr size_t kMaxRequest = 8 * 1024;
  // Open connections at most. Over it the oldest connection waiting on its
  // client is closed; when none is, the new one is accepted and closed.
  static constexpr size_t kMaxConnections = 256;

  // `deadline` bounds each admin connection from accept to close.
  AdminServer(uv_loop_t* loop, AdminSource& source, Duration deadline = kDefaultDeadline);
  ~AdminServer();
  AdminServer(const AdminServer&) = delete;
  AdminServer& operator=(const AdminServer&) = delete;

  // Binds "host:port" (port 0 picks a free port) and starts serving. *bound
  // receives the address as bound ("ip:port"). Returns 0 or a libuv error;
  // UV_EINVAL when `address` does not parse.
  int listen(const std::string& address, std::string* bound);
  // Stops listening and closes every admin connection (FIN if it has nothing
  // unread, else RST). Answers that arrive later are dropped. Idempotent.
  void close();

  size_t connection_count() const { return connections_.size(); }

 private:
  class Connection;

  void accept_one(uv_stream_t* listener);
  // Evicts the oldest connection waiting on its client; false if none is.
  bool make_room();
  // Deferred deletion: a connection is never destroyed inside one of its own
  // callbacks; it is moved to finished_ and freed on the next loop turn.
  void finish(Connection* connection);
  static void on_reap(uv_timer_t* timer);

  uv_loop_t* loop_;
  AdminSource& source_;
  Duration deadline_;
  Duration head_deadline_;
  std::unique_ptr<ReadBuffer> read_buffer_;  // shared by every admin connection on the loop
  ClosingSet closings_;                      // answered connections on their way out
  Listener listener_;
  // Shared so that an asynchronous /connections answer can hold a weak
  // reference and find out whether its connection still exists.
  std::vector<std::shared_ptr<Connection>> connections_;
  std::vector<std::shared_ptr<Connection>> finished_;
  // Armed (zero delay) when a connection finishes; its expiry frees the
  // finished connections; never armed otherwise.
  UvPtr<uv_timer_t> reaper_;
};

}  // namespace cutoff
