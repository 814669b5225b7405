#include "cutoff/exchange_listener.hpp"

#include <cassert>
#include <utility>

#include "cutoff/session.hpp"

namespace cutoff {

void ExchangeListener::on_deadline(const Expiry& expiry) {
  assert(session_ != nullptr && "a spare exchange's deadline fired");
  session_->on_deadline(expiry);
}

void ExchangeListener::mark_deliveries() {
  session_->mark_deliveries();
}

uint64_t ExchangeListener::deliveries_since_mark() {
  return session_->deliveries_since_mark();
}

void ExchangeListener::on_resolved(int status, const AddressList& addresses) {
  assert(session_ != nullptr && "a lookup outlived its exchange");
  session_->on_resolved(status, addresses);
}

void ExchangeListener::on_body(const char* data, size_t len) {
  session_->on_body(data, len);
}

void ExchangeListener::on_race_won(TcpSocket winner, const sockaddr_in6& peer) {
  assert(session_ != nullptr && "a connect race outlived its exchange");
  session_->on_race_won(std::move(winner), peer);
}

void ExchangeListener::on_race_lost(int last_error) {
  assert(session_ != nullptr && "a connect race outlived its exchange");
  session_->on_race_lost(last_error);
}

}  // namespace cutoff
