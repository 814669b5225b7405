#pragma once
// What the parts of a running exchange report: its deadline, its name
// lookup, its connect race, and a body its parser decodes. The exchange
// state (exchange_state.hpp) listens to them and passes each event on to
// the session that has borrowed it.
//
// The session is not the listener itself so that an idle keep-alive
// connection, which runs no exchange, does not carry what only an exchange
// needs: a vtable pointer for each of these interfaces, 32 bytes of every
// connection.

#include <cstddef>
#include <cstdint>

#include "cutoff/connect_race.hpp"
#include "cutoff/deadline.hpp"
#include "cutoff/http_parser.hpp"
#include "cutoff/resolver.hpp"

namespace cutoff {

class Session;

class ExchangeListener final : public DeadlineListener,
                               public ResolveListener,
                               public BodySink,
                               public ConnectRaceListener {
 public:
  // The session the events go to from now on; null while the state is
  // spare (no event comes then: the session cancels what it started, and a
  // spare state's deadline is disarmed).
  void lend_to(Session* session) { session_ = session; }

  void on_deadline(const Expiry& expiry) override;
  void mark_deliveries() override;
  uint64_t deliveries_since_mark() override;
  void on_resolved(int status, const AddressList& addresses) override;
  void on_body(const char* data, size_t len) override;
  void on_race_won(TcpSocket winner, const sockaddr_in6& peer) override;
  void on_race_lost(int last_error) override;

 private:
  Session* session_ = nullptr;
};

}  // namespace cutoff
