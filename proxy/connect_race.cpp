#include "cutoff/connect_race.hpp"

#include <cassert>
#include <utility>

#include "cutoff/address_order.hpp"

namespace cutoff {

void ConnectRace::start(uv_loop_t* loop, ReadBuffer* buffer, const AddressList& addresses,
                        ConnectRaceListener* listener) {
  assert(!running() && addresses.count > 0);
  listener_ = listener;
  loop_ = loop;
  buffer_ = buffer;
  order_ = interleave_families(addresses);
  next_ = 0;
  in_flight_ = 0;
  last_error_ = 0;
  start_next();
}

void ConnectRace::cancel() {
  if (running()) finish();
}

void ConnectRace::start_next() {
  while (next_ < order_.count) {
    const int index = next_++;
    TcpSocket& attempt = attempts_[index];
    int rc = attempt.init(loop_, buffer_, this);
    if (rc == 0) rc = attempt.connect(order_.at(index));
    if (rc == 0) {
      ++in_flight_;
      if (next_ < order_.count) arm_attempt_delay();
      return;
    }
    // Refused before a packet left (an address family this host cannot
    // reach, say): the next address does not wait for the delay.
    last_error_ = rc;
    attempt.close();
  }
  // Every address has had its attempt: the ones in flight decide.
  if (delay_) uv_timer_stop(delay_.get());
  if (in_flight_ == 0) lose();
}

void ConnectRace::arm_attempt_delay() {
  if (!delay_) {
    delay_ = make_uv<uv_timer_t>();
    uv_timer_init(loop_, delay_.get());
    delay_->data = this;
  }
  uv_timer_start(delay_.get(), on_attempt_delay, kAttemptDelayMs, 0);
}

void ConnectRace::on_attempt_delay(uv_timer_t* timer) {
  static_cast<ConnectRace*>(timer->data)->start_next();
}

void ConnectRace::on_connect(TcpSocket& socket, int status) {
  const int index = static_cast<int>(&socket - attempts_);
  assert(index >= 0 && index < next_);
  --in_flight_;
  if (status == 0) return win(index);
  last_error_ = status;
  socket.close();
  // A failed attempt does not hold up the next address (RFC 8305 §5).
  if (next_ < order_.count) return start_next();
  if (in_flight_ == 0) lose();
}

// The winner leaves the race before the listener hears of it, so whatever
// the listener does (start another race, even) finds the race over.
void ConnectRace::win(int index) {
  TcpSocket winner = std::move(attempts_[index]);
  winner.set_events(nullptr);
  const sockaddr_in6 peer = order_.entries[index];
  ConnectRaceListener* listener = listener_;
  finish();
  listener->on_race_won(std::move(winner), peer);
}

void ConnectRace::lose() {
  ConnectRaceListener* listener = listener_;
  const int error = last_error_;
  finish();
  listener->on_race_lost(error);
}

void ConnectRace::finish() {
  // RST: a loser that connected all the same leaves no TIME_WAIT behind.
  for (TcpSocket& attempt : attempts_) attempt.abort();
  delay_.reset();  // uv_close; freed in its close callback
  in_flight_ = 0;
  listener_ = nullptr;
}

}  // namespace cutoff
