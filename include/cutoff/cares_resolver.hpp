#pragma once
// The resolver cutoff runs with: c-ares, driven by the worker's own loop.
//
// Each worker has one c-ares channel. c-ares opens its sockets itself and
// says through its socket-state callback which ones to watch and how; each
// gets a uv_poll_t, and one timer wakes c-ares for its retransmissions and
// per-query timeouts. Nothing runs on libuv's thread pool and nothing
// blocks, so a name whose server never answers delays no other name: each
// query has its own deadline inside c-ares, while the session's dns_timeout
// stays the deadline its client sees.
//
// c-ares reads /etc/resolv.conf (name servers, search domains, ndots),
// /etc/hosts and nsswitch.conf itself, as glibc would. `[dns] servers`
// replaces the name servers only.

#include <uv.h>

#include <cstddef>
#include <deque>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "cutoff/config.hpp"
#include "cutoff/resolver.hpp"
#include "cutoff/uv_handle.hpp"

struct ares_channeldata;
struct ares_addrinfo;

namespace cutoff {

class CaresResolver final : public Resolver {
 public:
  // `servers` empty: the name servers of /etc/resolv.conf. A channel that
  // cannot be set up is logged, and every lookup then fails to start.
  CaresResolver(uv_loop_t* loop, const std::vector<DnsServer>& servers);
  ~CaresResolver() override;
  CaresResolver(const CaresResolver&) = delete;
  CaresResolver& operator=(const CaresResolver&) = delete;

  // Names under .invalid (RFC 6761) and IP literals are answered without
  // c-ares; every answer reaches the listener after resolve() has
  // returned, on this loop.
  Lookup* resolve(const std::string& host, uint16_t port, ResolveListener* listener) override;
  // The listener hears nothing more. c-ares cannot drop one query, so the
  // query runs on unheard; once no running query has a listener left, all
  // are cancelled together and their sockets closed.
  void cancel(Lookup* lookup) override;

  // The c-ares sockets being watched now (tests check that none is left).
  size_t open_sockets() const { return sockets_.size(); }

 private:
  // One c-ares socket on the loop. The handle comes first: the block is
  // what UvPtr hands to uv_close.
  struct SocketWatch {
    uv_poll_t poll;
    CaresResolver* owner = nullptr;
    int fd = -1;
  };
  friend uv_handle_t* uv_handle_of(SocketWatch* watch) {
    return reinterpret_cast<uv_handle_t*>(&watch->poll);
  }

  static void on_socket_state(void* data, int fd, int readable, int writable);
  static void on_poll(uv_poll_t* poll, int status, int events);
  static void on_timer(uv_timer_t* timer);
  static void on_deliver(uv_timer_t* timer);
  static void on_addrinfo(void* arg, int status, int timeouts, ares_addrinfo* result);

  // Lets c-ares read or write one socket (ARES_SOCKET_BAD for none) and
  // expire its overdue queries, then settles what that changed.
  void process(int read_fd, int write_fd);
  // Outside every c-ares call: cancels the queries nobody listens to any
  // more, then re-arms timer_ for c-ares's next deadline.
  void settle();
  // Queues an answer for delivery on the next loop turn.
  Lookup* defer(std::unique_ptr<Lookup> lookup, int status, const AddressList& addresses);

  // ares_destroy: pending queries end with ARES_EDESTRUCTION (no listener
  // hears of them) and c-ares closes its sockets through on_socket_state.
  struct ChannelCloser {
    void operator()(ares_channeldata* channel) const;
  };

  uv_loop_t* loop_;
  std::unordered_map<int, UvPtr<SocketWatch>> sockets_;
  // Armed by settle() whenever c-ares has a query in flight, for the
  // moment c-ares names (ares_timeout): the next retransmission or the end
  // of a query's own time budget. Stopped when no query is left. Its expiry
  // lets c-ares resend or fail the overdue queries (ARES_ETIMEOUT).
  UvPtr<uv_timer_t> timer_;
  // Armed (0 ms) by defer(); its expiry hands the queued answers to their
  // listeners, so no listener is called from inside resolve().
  UvPtr<uv_timer_t> deliver_timer_;
  std::deque<std::unique_ptr<Lookup>> ready_;
  // Declared after what its callbacks touch; the destructor closes it first.
  std::unique_ptr<ares_channeldata, ChannelCloser> channel_;
  Lookup* starting_ = nullptr;  // inside ares_getaddrinfo for this lookup
  size_t in_flight_ = 0;        // lookups c-ares holds
  size_t unheard_ = 0;          // of those, the ones cancelled
  int depth_ = 0;               // c-ares calls under way on this stack
};

// A c-ares status as the libuv getaddrinfo error a Session understands
// (UV_EAI_NONAME for a name that does not exist, UV_EAI_AGAIN for servers
// that did not answer, ...); 0 for ARES_SUCCESS.
int uv_status_from_ares(int ares_status);

}  // namespace cutoff
