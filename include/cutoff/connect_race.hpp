#pragma once
// Connecting to a host with several addresses the way RFC 8305 ("Happy
// Eyeballs") says: the attempts overlap instead of queueing behind one that
// hangs.
//
// The addresses are tried in RFC 8305 §4's order (address_order.hpp: the
// resolver's first, then the families alternating). The first attempt
// starts at once; each further one starts when the one before it has not
// connected within the Connection Attempt Delay (250 ms, RFC 8305 §5's
// recommendation), or at once when an attempt fails (refused, unreachable).
// Earlier attempts keep running meanwhile: the first to connect wins, and
// every other attempt is closed right away (a plain close: none of them has
// carried a byte). When every attempt has failed, the race is lost with the
// last attempt's error.
//
// The race has no deadline of its own: its owner guards it (a session's
// connect_timeout covers the whole race) and cancels it when that expires,
// which closes every attempt. The delay timer and the attempts exist only
// while the race runs; a finished or cancelled race holds no handle.

#include <uv.h>

#include <cstdint>

#include "cutoff/resolver.hpp"
#include "cutoff/tcp_socket.hpp"
#include "cutoff/uv_handle.hpp"

namespace cutoff {

class ConnectRaceListener {
 public:
  // `winner` is connected to `peer`, with no events receiver: the new
  // owner points its events at itself (set_events).
  virtual void on_race_won(TcpSocket winner, const sockaddr_in6& peer) = 0;
  // Every address failed; `last_error` is the libuv error of the last
  // attempt that failed.
  virtual void on_race_lost(int last_error) = 0;

 protected:
  ~ConnectRaceListener() = default;
};

class ConnectRace final : SocketEvents {
 public:
  static constexpr uint64_t kAttemptDelayMs = 250;

  ConnectRace() = default;
  ~ConnectRace() { cancel(); }
  ConnectRace(const ConnectRace&) = delete;
  ConnectRace& operator=(const ConnectRace&) = delete;

  // Starts connecting to `addresses` (at least one; in the resolver's order
  // of preference). The listener hears exactly one outcome, unless cancel()
  // comes first; when every address fails at once it hears it from inside
  // start(). The race is over (not running()) before the listener is
  // called, so the listener may start another.
  void start(uv_loop_t* loop, ReadBuffer* buffer, const AddressList& addresses,
             ConnectRaceListener* listener);
  // Closes every attempt and the timer; the listener hears nothing more.
  // No-op when the race is not running.
  void cancel();
  bool running() const { return listener_ != nullptr; }

 private:
  // --- SocketEvents: attempts only ever connect ---
  void on_connect(TcpSocket& socket, int status) override;
  void on_data(TcpSocket&, const char*, size_t) override {}
  void on_read_end(TcpSocket&, int) override {}
  void on_drained(TcpSocket&, int) override {}
  void on_shutdown(TcpSocket&, int) override {}

  // Starts the next address's attempt; one that fails at once makes way for
  // the one after it. Loses the race when nothing is left to wait for.
  void start_next();
  void arm_attempt_delay();
  static void on_attempt_delay(uv_timer_t* timer);
  void win(int index);
  void lose();
  // Closes the attempts and the timer, and forgets the listener.
  void finish();

  ConnectRaceListener* listener_ = nullptr;  // while running
  uv_loop_t* loop_ = nullptr;
  ReadBuffer* buffer_ = nullptr;
  AddressList order_;  // RFC 8305 §4's order
  // attempts_[i] connects to order_.at(i); empty once it failed or lost.
  TcpSocket attempts_[AddressList::kMax];
  int next_ = 0;       // the index of the next attempt to start
  int in_flight_ = 0;  // attempts started and still connecting
  int last_error_ = 0;
  // The Connection Attempt Delay. Armed when an attempt starts and another
  // address is left; re-armed by the next start (early, when an attempt
  // failed). Closed when the race ends. Its expiry starts the next attempt.
  // Allocated only for a race with more than one address.
  UvPtr<uv_timer_t> delay_;
};

}  // namespace cutoff
