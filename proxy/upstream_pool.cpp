#include "cutoff/upstream_pool.hpp"

#include <algorithm>
#include <charconv>

namespace cutoff {

void UpstreamPool::make_key(std::string& key, std::string_view host, uint16_t port,
                            UpstreamTransport transport) {
  char digits[8];
  auto [end, ec] = std::to_chars(digits, digits + sizeof digits, port);
  key.assign(host).append(":").append(digits, end).push_back(static_cast<char>(transport));
}

TcpSocket UpstreamPool::take(std::string_view host, uint16_t port, UpstreamTransport transport,
                             SocketEvents* events, sockaddr_in6* peer) {
  make_key(scratch_key_, host, port, transport);
  auto it = by_key_.find(std::string_view(scratch_key_));
  if (it == by_key_.end() || it->second.empty()) return TcpSocket{};
  Entry* entry = it->second.back();
  it->second.pop_back();
  count_idle(-1);
  entry->deadline.disarm();
  TcpSocket socket = std::move(entry->socket);
  socket.set_events(events);
  *peer = entry->peer;
  recycle(entry);
  return socket;
}

void UpstreamPool::park(std::string_view host, uint16_t port, UpstreamTransport transport,
                        TcpSocket socket, const sockaddr_in6& peer, Duration keepalive,
                        int max_idle) {
  make_key(scratch_key_, host, port, transport);
  auto it = by_key_.find(std::string_view(scratch_key_));
  if (max_idle <= 0) return;  // `socket` closes as it goes out of scope
  if (it != by_key_.end() && it->second.size() >= static_cast<size_t>(max_idle)) {
    drop(it->second.front());  // the oldest: the one most likely to be closed soon anyway
  }
  Entry* entry;
  if (free_.empty()) {
    entries_.push_back(std::make_unique<Entry>(*this, loop_));
    entry = entries_.back().get();
  } else {
    entry = free_.back();
    free_.pop_back();
  }
  make_key(entry->key, host, port, transport);
  entry->socket = std::move(socket);
  entry->peer = peer;
  entry->socket.set_events(entry);
  entry->socket.start_reading();  // hear the upstream's FIN while parked
  entry->deadline.arm(TimeoutName::upstream_keepalive_timeout, keepalive);
  if (it == by_key_.end()) {
    sweep_empty_keys();
    it = by_key_.emplace(entry->key, std::vector<Entry*>{}).first;
  }
  it->second.push_back(entry);
  count_idle(1);
}

void UpstreamPool::drop(Entry* entry) {
  auto it = by_key_.find(std::string_view(entry->key));
  if (it != by_key_.end()) {
    auto& list = it->second;
    list.erase(std::remove(list.begin(), list.end(), entry), list.end());
  }
  count_idle(-1);
  entry->deadline.disarm();
  entry->socket.close();
  recycle(entry);
}

// A key whose connections were all taken stays, so that the common take and
// park of one host allocates nothing; keys of hosts seen once are dropped
// when empty keys outnumber the parked connections.
void UpstreamPool::sweep_empty_keys() {
  if (by_key_.size() < 2 * idle_ + 64) return;
  std::erase_if(by_key_, [](const auto& item) { return item.second.empty(); });
}

bool UpstreamPool::all_parked_armed() const {
  for (const auto& [key, list] : by_key_) {
    for (const Entry* entry : list) {
      if (!entry->deadline.armed()) return false;
    }
  }
  return true;
}

void UpstreamPool::count_idle(int64_t delta) {
  idle_ = static_cast<size_t>(static_cast<int64_t>(idle_) + delta);
  metrics_->upstream_idle.add(delta);
}

void UpstreamPool::recycle(Entry* entry) {
  free_.push_back(entry);
}

void UpstreamPool::clear() {
  by_key_.clear();
  free_.clear();
  entries_.clear();  // closes their sockets and timers
  count_idle(-static_cast<int64_t>(idle_));
}

}  // namespace cutoff
