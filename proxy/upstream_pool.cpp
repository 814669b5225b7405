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

std::vector<UpstreamPool::Entry*>* UpstreamPool::list_for(std::string_view host, uint16_t port,
                                                          UpstreamTransport transport) {
  if (last_list_ != nullptr && port == last_port_ && transport == last_transport_ &&
      host == last_host_) {
    return last_list_;
  }
  make_key(scratch_key_, host, port, transport);
  auto it = by_key_.find(std::string_view(scratch_key_));
  if (it == by_key_.end()) return nullptr;
  remember(host, port, transport, &it->second);
  return &it->second;
}

std::vector<UpstreamPool::Entry*>* UpstreamPool::make_list(std::string_view host, uint16_t port,
                                                           UpstreamTransport transport) {
  sweep_empty_keys();
  make_key(scratch_key_, host, port, transport);
  std::vector<Entry*>* list = &by_key_[scratch_key_];
  remember(host, port, transport, list);
  return list;
}

void UpstreamPool::remember(std::string_view host, uint16_t port, UpstreamTransport transport,
                            std::vector<Entry*>* list) {
  last_host_.assign(host);
  last_port_ = port;
  last_transport_ = transport;
  last_list_ = list;
}

TcpSocket UpstreamPool::take(std::string_view host, uint16_t port, UpstreamTransport transport,
                             SocketEvents* events, sockaddr_in6* peer) {
  std::vector<Entry*>* list = list_for(host, port, transport);
  if (list == nullptr || list->empty()) return TcpSocket{};
  Entry* entry = list->back();
  list->pop_back();
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
  if (max_idle <= 0) return;  // `socket` closes as it goes out of scope
  std::vector<Entry*>* list = list_for(host, port, transport);
  if (list == nullptr) {
    list = make_list(host, port, transport);
  } else if (list->size() >= static_cast<size_t>(max_idle)) {
    drop(list->front());  // the oldest: the one most likely to be closed soon anyway
  }
  Entry* entry;
  if (free_.empty()) {
    entries_.push_back(std::make_unique<Entry>(*this, loop_));
    entry = entries_.back().get();
  } else {
    entry = free_.back();
    free_.pop_back();
  }
  entry->list = list;
  entry->socket = std::move(socket);
  entry->peer = peer;
  entry->socket.set_events(entry);
  entry->socket.start_reading();  // hear the upstream's FIN while parked
  entry->deadline.arm(TimeoutName::upstream_keepalive_timeout, keepalive);
  list->push_back(entry);
  count_idle(1);
}

void UpstreamPool::drop(Entry* entry) {
  auto& list = *entry->list;
  list.erase(std::remove(list.begin(), list.end(), entry), list.end());
  entry->list = nullptr;
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
  last_list_ = nullptr;
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
  entry->list = nullptr;
  free_.push_back(entry);
}

void UpstreamPool::clear() {
  last_list_ = nullptr;
  by_key_.clear();
  free_.clear();
  entries_.clear();  // closes their sockets and timers
  count_idle(-static_cast<int64_t>(idle_));
}

}  // namespace cutoff
