#pragma once
// Idle upstream connections, kept per (host, port, transport) for reuse.
//
// A pooled connection is watched while it waits: any byte or close from the
// upstream makes it unusable and it is closed at once, and its
// upstream_keepalive_timeout closes it (FIN) when nobody took it in time.
// Entries are recycled, so parking and taking a connection allocates nothing
// in the steady state.

#include <uv.h>

#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "cutoff/deadline.hpp"
#include "cutoff/metrics.hpp"
#include "cutoff/tcp_socket.hpp"

namespace cutoff {

// What a connection to an upstream speaks. A connection is lent only to a
// request that needs the same: an unverified TLS connection never serves a
// route that verifies.
// `proxy`: plain HTTP to a parent proxy, requests in absolute form.
enum class UpstreamTransport : char {
  plain = 'p',
  tls_verified = 'v',
  tls_unverified = 'u',
  proxy = 'x',
};

class UpstreamPool {
 public:
  UpstreamPool(uv_loop_t* loop, Metrics* metrics) : loop_(loop), metrics_(metrics) {}
  UpstreamPool(const UpstreamPool&) = delete;
  UpstreamPool& operator=(const UpstreamPool&) = delete;

  // The most recently parked live connection to host:port speaking
  // `transport`, or an empty socket; *peer receives the address it is
  // connected to.
  TcpSocket take(std::string_view host, uint16_t port, UpstreamTransport transport,
                 SocketEvents* events, sockaddr_in6* peer);
  // Parks a connection, connected to `peer`, that just finished a response
  // cleanly. With `max_idle` parked for host:port already, the oldest of
  // them is closed first (0: the connection is closed, nothing is parked).
  void park(std::string_view host, uint16_t port, UpstreamTransport transport, TcpSocket socket,
            const sockaddr_in6& peer, Duration keepalive, int max_idle);
  // The invariant of SPEC §4 for parked connections: each waits under its
  // upstream_keepalive_timeout.
  bool all_parked_armed() const;
  // Closes every idle connection and frees every entry (worker shutdown).
  void clear();

 private:
  // One parked connection. Its deadline is armed while parked:
  // upstream_keepalive_timeout from the moment it was parked; taking the
  // connection disarms it; expiry closes the connection.
  struct Entry final : SocketEvents, DeadlineListener {
    Entry(UpstreamPool& pool, uv_loop_t* loop) : pool(pool), deadline(loop, *this) {}
    void on_data(TcpSocket&, const char*, size_t) override { pool.drop(this); }
    void on_read_end(TcpSocket&, int) override { pool.drop(this); }
    void on_connect(TcpSocket&, int) override {}
    void on_drained(TcpSocket&, int status) override {
      if (status < 0) pool.drop(this);
    }
    void on_shutdown(TcpSocket&, int) override {}
    void on_deadline(const Expiry&) override { pool.drop(this); }

    UpstreamPool& pool;
    // The list of its key in by_key_, which stays while the entry is parked
    // in it: only empty lists are ever removed.
    std::vector<Entry*>* list = nullptr;
    TcpSocket socket;
    sockaddr_in6 peer;  // holds a sockaddr_in or a sockaddr_in6, as AddressList does
    Deadline deadline;
  };

  static void make_key(std::string& key, std::string_view host, uint16_t port,
                       UpstreamTransport transport);
  // The list of parked connections to host:port speaking `transport` (it
  // may be empty), or null when the key has no list.
  std::vector<Entry*>* list_for(std::string_view host, uint16_t port, UpstreamTransport transport);
  // A new, empty list for the key, made after sweeping empty keys.
  std::vector<Entry*>* make_list(std::string_view host, uint16_t port, UpstreamTransport transport);
  void remember(std::string_view host, uint16_t port, UpstreamTransport transport,
                std::vector<Entry*>* list);
  void drop(Entry* entry);  // closes the connection and recycles the entry
  void recycle(Entry* entry);

  struct KeyHash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  void count_idle(int64_t delta);
  void sweep_empty_keys();

  uv_loop_t* loop_;
  Metrics* metrics_;
  std::unordered_map<std::string, std::vector<Entry*>, KeyHash, std::equal_to<>> by_key_;
  std::vector<std::unique_ptr<Entry>> entries_;  // owns every entry, parked or free
  std::vector<Entry*> free_;
  std::string scratch_key_;
  size_t idle_ = 0;
  // The list of the last key looked up. A keep-alive client takes and parks
  // one upstream's connection at every request, mostly with nothing in
  // between: this spares both calls the building and hashing of the key.
  // Null until a lookup finds a list, and again when lists are removed.
  std::vector<Entry*>* last_list_ = nullptr;
  std::string last_host_;
  uint16_t last_port_ = 0;
  UpstreamTransport last_transport_ = UpstreamTransport::plain;
};

}  // namespace cutoff
