#include "cutoff/closing.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <iterator>

namespace cutoff {

void Closing::start(TcpSocket socket, Duration flush_idle, Duration linger, bool peer_fin_in) {
  socket_ = std::move(socket);
  socket_.set_events(this);
  flush_idle_ = flush_idle;
  linger_ = linger;
  started_at_ = uv_now(loop_);
  peer_fin_in_ = peer_fin_in;
  if (socket_.shutdown_write() != 0) {
    // No FIN can be queued (the connection is already broken): nothing we
    // send would arrive anyway.
    return end(/*reset=*/true);
  }
  if (!peer_fin_in_) socket_.start_reading();
  unacknowledged_ = socket_.unacknowledged();
  progressed_at_ = uv_now(loop_);
  check_flush();
}

void Closing::on_read_end(TcpSocket&, int status) {
  if (status != UV_EOF) return end(/*reset=*/true);  // the peer reset: nothing more to do
  peer_fin_in_ = true;
  if (lingering_ || socket_.fin_sent()) end(/*reset=*/false);
}

void Closing::on_drained(TcpSocket&, int status) {
  if (status < 0) return end(/*reset=*/true);
  progressed_at_ = uv_now(loop_);
}

void Closing::on_shutdown(TcpSocket&, int status) {
  if (status < 0) return end(/*reset=*/true);
  poll_ = 1;
  check_flush();
}

void Closing::check_flush() {
  if (socket_.fin_sent() && peer_fin_in_) return end(/*reset=*/false);
  uint64_t now = uv_now(loop_);
  size_t left = socket_.unacknowledged();
  if (left < unacknowledged_) progressed_at_ = now;
  unacknowledged_ = left;
  if (left == 0 && socket_.fin_sent()) {
    lingering_ = true;
    return deadline_.arm(TimeoutName::linger_timeout, linger_);
  }
  uint64_t idle_ends = progressed_at_ + flush_idle_.ms();
  if (now >= idle_ends) return end(/*reset=*/true);  // the peer stopped reading
  deadline_.arm(TimeoutName::idle_timeout, Duration::millis(std::min(poll_, idle_ends - now)));
  poll_ = std::min(poll_ * 2, kMaxPoll);
}

void Closing::on_deadline(const Expiry&) {
  if (lingering_) return end(/*reset=*/true);  // no FIN from the peer in time
  check_flush();
}

void Closing::end(bool reset) {
  if (reset) {
    socket_.abort();
  } else {
    socket_.close();
  }
  deadline_.disarm();
  set_.finished(*this, reset);  // last: this entry is now on the finished list
}

void Closing::describe(std::string& out, int worker_index, uint64_t now) const {
  auto it = std::back_inserter(out);
  uint64_t left = deadline_.remaining();
  fmt::format_to(it,
                 "{{\"id\":{},\"worker\":{},\"client\":\"{}\",\"phase\":\"closing\","
                 "\"age_ms\":{},\"phase_ms\":{},\"deadline\":\"{}\",\"deadline_left_ms\":{}}}",
                 client->id, worker_index, client->name, now - client->accepted_at,
                 now - started_at_, timeout_token(deadline_.due_name()),
                 left == DeadlinePlan::kNever ? 0 : left);
}

void ClosingSet::close(TcpSocket socket, Duration flush_idle, Duration linger, bool peer_fin_in,
                       std::optional<ClientTag> client) {
  reap();  // never called from a Closing's own callback
  if (!socket) {
    if (client && on_client_closed_) on_client_closed_();
    return;
  }
  closing_.emplace_back(*this, loop_);
  Closing& closing = closing_.back();
  closing.self = std::prev(closing_.end());
  closing.client = std::move(client);
  closing.start(std::move(socket), flush_idle, linger, peer_fin_in);
}

void ClosingSet::finished(Closing& closing, bool reset) {
  if (reset && resets_ != nullptr) resets_->add();
  finished_.splice(finished_.end(), closing_, closing.self);
  if (closing.client && on_client_closed_) on_client_closed_();
  if (closing_.empty() && on_empty_) on_empty_();
}

void ClosingSet::describe(std::string& out, int worker_index, uint64_t now) const {
  for (const Closing& closing : closing_) {
    if (!closing.client) continue;
    if (!out.empty()) out.push_back(',');
    closing.describe(out, worker_index, now);
  }
}

bool ClosingSet::all_armed() const {
  return std::all_of(closing_.begin(), closing_.end(),
                     [](const Closing& c) { return c.deadline_armed(); });
}

void ClosingSet::abort_flushing() {
  for (auto it = closing_.begin(); it != closing_.end();) {
    Closing& closing = *it++;
    if (closing.flushing()) closing.reset();
  }
}

void ClosingSet::abort_all() {
  while (!closing_.empty()) closing_.front().reset();
}

}  // namespace cutoff
