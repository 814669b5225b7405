#pragma once
// Closing a connection without losing a byte (SPEC §7b), in one place.
//
// A connection that cutoff is done with is handed over here with whatever is
// still queued for its peer, and goes through three steps, each under its
// own deadline:
//
//   flushing   idle_timeout: every queued byte and our FIN reach the peer,
//              acknowledged (libuv's queue and the kernel's send queue both
//              empty). A peer that keeps reading, however slowly, gets every
//              byte; one that stops reading for idle_timeout is reset. The
//              kernel reports no progress by event, so a flush is checked on
//              a short timer that backs off to kMaxPoll.
//   lingering  linger_timeout, from the moment our FIN is acknowledged:
//              input is read and dropped until the peer's FIN, so that the
//              peer reads our last bytes rather than a reset caused by data
//              it sent after them.
//   closed     the peer's FIN is in and ours is out: close, no RST.
//
// A peer whose FIN came in earlier (a tunnel whose both sides are done, a
// client that half-closed after its request) sends nothing more, so nothing
// can turn our close into an RST: its socket closes as soon as our FIN has
// left cutoff, and the kernel delivers what it still holds. Only an expired
// deadline or a peer that resets makes a close abortive.
//
// Closing connections belong to the worker (or the admin server), not to the
// session that started them, so a session ends as soon as it has nothing
// left to say.

#include <uv.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <list>
#include <optional>
#include <string>

#include "cutoff/deadline.hpp"
#include "cutoff/duration.hpp"
#include "cutoff/metrics.hpp"
#include "cutoff/tcp_socket.hpp"

namespace cutoff {

class ClosingSet;

// A client connection on its way out is still a client connection: it
// counts against max_client_connections and shows in /connections.
struct ClientTag {
  uint64_t id = 0;
  std::string name;          // "ip:port"
  uint64_t accepted_at = 0;  // loop time
};

class Closing final : SocketEvents, DeadlineListener {
 public:
  static constexpr uint64_t kMaxPoll = 100;  // ms between checks of a slow flush

  Closing(ClosingSet& set, uv_loop_t* loop) : set_(set), loop_(loop), deadline_(loop, *this) {}
  Closing(const Closing&) = delete;
  Closing& operator=(const Closing&) = delete;

  void start(TcpSocket socket, Duration flush_idle, Duration linger, bool peer_fin_in);
  void reset() { end(/*reset=*/true); }
  bool flushing() const { return !lingering_; }
  bool deadline_armed() const { return deadline_.armed(); }
  // Appends this connection as a /connections JSON object (clients only).
  void describe(std::string& out, int worker_index, uint64_t now) const;
  std::list<Closing>::iterator self;
  std::optional<ClientTag> client;

 private:
  void on_data(TcpSocket&, const char*, size_t) override {}  // dropped
  void on_read_end(TcpSocket& socket, int status) override;
  void on_connect(TcpSocket&, int) override {}
  void on_drained(TcpSocket& socket, int status) override;
  void on_shutdown(TcpSocket& socket, int status) override;
  void on_deadline(const Expiry& expiry) override;
  // Looks at the flush: moves on when it is done, else checks again later.
  void check_flush();
  void end(bool reset);

  ClosingSet& set_;
  uv_loop_t* loop_;
  TcpSocket socket_;
  Deadline deadline_;
  Duration flush_idle_;
  Duration linger_;
  size_t unacknowledged_ = 0;   // at the last look
  uint64_t started_at_ = 0;     // loop time
  uint64_t progressed_at_ = 0;  // loop time the flush last moved
  uint64_t poll_ = 1;           // ms until the next look
  bool peer_fin_in_ = false;
  bool lingering_ = false;
};

// The connections of one loop that are closing.
class ClosingSet {
 public:
  // `resets` (optional) counts the closes that ended in an RST.
  explicit ClosingSet(uv_loop_t* loop, Counter* resets = nullptr) : loop_(loop), resets_(resets) {}
  ClosingSet(const ClosingSet&) = delete;
  ClosingSet& operator=(const ClosingSet&) = delete;

  // Takes `socket` through flushing and lingering (see above). `flush_idle`
  // bounds a flush that stops moving; `linger` the wait for the peer's FIN.
  // `client`: the connection is a client's (see ClientTag).
  void close(TcpSocket socket, Duration flush_idle, Duration linger, bool peer_fin_in = false,
             std::optional<ClientTag> client = std::nullopt);
  size_t size() const { return closing_.size(); }
  // Called when a client connection (one closed with a ClientTag) is gone.
  void on_client_closed(std::function<void()> callback) { on_client_closed_ = std::move(callback); }
  // /connections: one JSON object per closing client connection, each
  // preceded by a comma unless `out` is empty.
  void describe(std::string& out, int worker_index, uint64_t now) const;
  // SPEC §4's invariant: every closing connection waits under a deadline.
  bool all_armed() const;
  // Resets the connections still flushing (drain_timeout: their peers stopped
  // reading long ago); lingering ones keep their short deadline.
  void abort_flushing();
  // Resets every one (shutdown).
  void abort_all();
  // Called whenever the set becomes empty.
  void on_empty(std::function<void()> callback) { on_empty_ = std::move(callback); }
  // Frees finished entries (close() does too); the owner calls it outside
  // their callbacks.
  void reap() { finished_.clear(); }

 private:
  friend class Closing;
  void finished(Closing& closing, bool reset);

  uv_loop_t* loop_;
  Counter* resets_;
  std::list<Closing> closing_;
  std::list<Closing> finished_;
  std::function<void()> on_empty_;
  std::function<void()> on_client_closed_;
};

}  // namespace cutoff
