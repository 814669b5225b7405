#include "cutoff/cares_resolver.hpp"

#include <ares.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <spdlog/spdlog.h>

#include <cstddef>
#include <cstdint>
#include <mutex>
#include <span>

#include "cutoff/address_order.hpp"

namespace cutoff {

// One lookup of this resolver. c-ares owns it while its query runs
// (in_flight) and hands it back in on_addrinfo; an answer given without the
// network waits in ready_ instead. Either way it is freed once its answer
// has been delivered or dropped.
class Resolver::Lookup {
 public:
  CaresResolver* owner = nullptr;
  ResolveListener* listener = nullptr;  // nullptr once cancelled
  uint16_t port = 0;
  bool in_flight = false;
  // An answer waiting in ready_.
  int status = 0;
  AddressList addresses;
};

namespace {

// c-ares's own time budget for one query (A and AAAA each). The first try
// waits 1 s, well below any usual dns_timeout (default 5 s), so a lost
// datagram is sent again while the client still waits; c-ares doubles the
// wait after each round over the servers, so 4 tries give up after about
// 15 s per server (1 + 2 + 4 + 8). That is longer than a usual dns_timeout
// on purpose: the session's deadline, not c-ares, decides when a slow
// lookup becomes 504 dns_timeout (a dns_timeout above the budget ends as 502
// dns_error, "temporary failure", as getaddrinfo's own timeout did). The
// budget bounds how long a query nobody waits for can run on, and that is
// rarely reached: once no running query has a listener, all are cancelled.
// c-ares's defaults (5 s, 4 tries: over a minute) would keep such queries
// far longer; resolv.conf's `timeout` and `attempts` options are overridden.
constexpr int kFirstTryMs = 1000;
constexpr int kTriesPerServer = 4;

void set_port(sockaddr_in6* entry, uint16_t port) {
  if (entry->sin6_family == AF_INET6) {
    entry->sin6_port = htons(port);
  } else {
    reinterpret_cast<sockaddr_in*>(entry)->sin_port = htons(port);
  }
}

}  // namespace

int uv_status_from_ares(int ares_status) {
  switch (ares_status) {
    case ARES_SUCCESS:
      return 0;
    case ARES_ENOTFOUND:  // NXDOMAIN, after every search domain
    case ARES_ENONAME:
    case ARES_EBADNAME:
      return UV_EAI_NONAME;
    case ARES_ENODATA:  // the name exists, with no address
      return UV_EAI_NODATA;
    case ARES_ETIMEOUT:  // the servers did not answer in c-ares's budget
    case ARES_ECONNREFUSED:
    case ARES_ESERVFAIL:
    case ARES_EREFUSED:
      return UV_EAI_AGAIN;
    case ARES_ENOMEM:
      return UV_EAI_MEMORY;
    case ARES_EBADFAMILY:
      return UV_EAI_FAMILY;
    case ARES_ECANCELLED:
    case ARES_EDESTRUCTION:
      return UV_ECANCELED;
    default:  // malformed answers and the like
      return UV_EAI_FAIL;
  }
}

void CaresResolver::ChannelCloser::operator()(ares_channeldata* channel) const {
  ares_destroy(channel);
}

CaresResolver::CaresResolver(uv_loop_t* loop, const std::vector<DnsServer>& servers) : loop_(loop) {
  // Neither timer keeps the loop running: a lookup matters only while a
  // session waits for it, and the session's own deadline keeps the loop
  // alive.
  timer_ = make_uv<uv_timer_t>();
  uv_timer_init(loop_, timer_.get());
  timer_->data = this;
  uv_unref(uv_handle_of(timer_.get()));
  deliver_timer_ = make_uv<uv_timer_t>();
  uv_timer_init(loop_, deliver_timer_.get());
  deliver_timer_->data = this;
  uv_unref(uv_handle_of(deliver_timer_.get()));

  static std::once_flag library;
  std::call_once(library, [] { ares_library_init(ARES_LIB_INIT_ALL); });
  ares_options options{};
  options.sock_state_cb = on_socket_state;
  options.sock_state_cb_data = this;
  options.timeout = kFirstTryMs;
  options.tries = kTriesPerServer;
  ares_channel channel = nullptr;
  int rc = ares_init_options(&channel, &options,
                             ARES_OPT_SOCK_STATE_CB | ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES);
  if (rc != ARES_SUCCESS) {
    spdlog::error("cannot set up the DNS resolver: {}; every lookup fails", ares_strerror(rc));
    return;
  }
  channel_.reset(channel);
  if (servers.empty()) return;
  // The config loader has checked every address.
  std::vector<ares_addr_port_node> nodes(servers.size());
  for (size_t i = 0; i < servers.size(); ++i) {
    ares_addr_port_node& node = nodes[i];
    node.next = i + 1 < nodes.size() ? &nodes[i + 1] : nullptr;
    if (inet_pton(AF_INET, servers[i].ip.c_str(), &node.addr.addr4) == 1) {
      node.family = AF_INET;
    } else {
      node.family = AF_INET6;
      inet_pton(AF_INET6, servers[i].ip.c_str(), &node.addr.addr6);
    }
    node.udp_port = servers[i].port;
    node.tcp_port = servers[i].port;
  }
  rc = ares_set_servers_ports(channel_.get(), nodes.data());
  if (rc != ARES_SUCCESS) {
    spdlog::error("cannot use the [dns] servers: {}; every lookup fails", ares_strerror(rc));
    channel_.reset();
  }
}

CaresResolver::~CaresResolver() {
  // First the channel, whose callbacks still need the watches and counters.
  channel_.reset();
  sockets_.clear();
}

Resolver::Lookup* CaresResolver::resolve(const std::string& host, uint16_t port,
                                         ResolveListener* listener) {
  auto lookup = std::make_unique<Lookup>();
  lookup->owner = this;
  lookup->listener = listener;
  lookup->port = port;
  // RFC 6761 §6.4: names under .invalid never resolve, and a resolver
  // should say so without asking the network.
  if (is_reserved_invalid(host)) return defer(std::move(lookup), UV_EAI_NONAME, AddressList{});
  AddressList literal;
  if (parse_ip_literal(host, port, &literal)) return defer(std::move(lookup), 0, literal);
  if (!channel_) return nullptr;

  ares_addrinfo_hints hints{};
  hints.ai_family = AF_UNSPEC;  // A and AAAA
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = ARES_AI_NUMERICSERV;
  const std::string service = std::to_string(port);
  Lookup* raw = lookup.release();  // c-ares holds it now
  raw->in_flight = true;
  ++in_flight_;
  // c-ares answers from /etc/hosts (and fails bad names) inside this call;
  // on_addrinfo queues such an answer for the next loop turn.
  Lookup* outer = starting_;
  starting_ = raw;
  ++depth_;
  ares_getaddrinfo(channel_.get(), host.c_str(), service.c_str(), &hints, on_addrinfo, raw);
  --depth_;
  starting_ = outer;
  settle();
  return raw;
}

void CaresResolver::cancel(Lookup* lookup) {
  if (lookup == nullptr || lookup->listener == nullptr) return;
  lookup->listener = nullptr;
  // An answer already queued is dropped when its turn comes.
  if (!lookup->in_flight) return;
  ++unheard_;
  settle();
}

Resolver::Lookup* CaresResolver::defer(std::unique_ptr<Lookup> lookup, int status,
                                       const AddressList& addresses) {
  lookup->status = status;
  lookup->addresses = addresses;
  Lookup* raw = lookup.get();
  ready_.push_back(std::move(lookup));
  if (!uv_is_active(uv_handle_of(deliver_timer_.get()))) {
    uv_timer_start(deliver_timer_.get(), on_deliver, 0, 0);
  }
  return raw;
}

void CaresResolver::on_deliver(uv_timer_t* timer) {
  auto* self = static_cast<CaresResolver*>(timer->data);
  // A listener may start another lookup that is answered at once; it waits
  // for the next turn rather than growing this one.
  std::deque<std::unique_ptr<Lookup>> batch;
  batch.swap(self->ready_);
  for (const std::unique_ptr<Lookup>& lookup : batch) {
    if (lookup->listener != nullptr)
      lookup->listener->on_resolved(lookup->status, lookup->addresses);
  }
}

void CaresResolver::on_addrinfo(void* arg, int status, int, ares_addrinfo* result) {
  std::unique_ptr<Lookup> lookup(static_cast<Lookup*>(arg));
  CaresResolver& self = *lookup->owner;
  lookup->in_flight = false;
  --self.in_flight_;
  if (lookup->listener == nullptr) --self.unheard_;
  AddressList addresses;
  int uv_status = uv_status_from_ares(status);
  if (status == ARES_SUCCESS && result != nullptr) {
    // c-ares has sorted the answer (RFC 6724). Only AddressList::kMax
    // addresses are kept, taken in RFC 8305's interleaved order, so that a
    // name with many addresses of one family keeps some of the other to
    // fall back on. That needs at most kMax of each family.
    const sockaddr* found[2 * AddressList::kMax];
    size_t count = 0;
    int per_family[2] = {0, 0};
    for (ares_addrinfo_node* node = result->nodes; node != nullptr; node = node->ai_next) {
      if (node->ai_family != AF_INET && node->ai_family != AF_INET6) continue;
      int& taken = per_family[node->ai_family == AF_INET6 ? 1 : 0];
      if (taken == AddressList::kMax) continue;
      ++taken;
      found[count++] = node->ai_addr;
    }
    interleave_families(std::span(found, count), &addresses);
    for (int i = 0; i < addresses.count; ++i) set_port(&addresses.entries[i], lookup->port);
    if (addresses.count == 0) uv_status = UV_EAI_NODATA;
  }
  if (result != nullptr) ares_freeaddrinfo(result);
  // Cancelled because nobody listens, or the resolver is going away (its
  // listeners are gone before it).
  if (status == ARES_ECANCELLED || status == ARES_EDESTRUCTION) return;
  if (lookup.get() == self.starting_) {
    self.defer(std::move(lookup), uv_status, addresses);
    return;
  }
  if (lookup->listener != nullptr) lookup->listener->on_resolved(uv_status, addresses);
}

void CaresResolver::process(int read_fd, int write_fd) {
  ++depth_;
  ares_process_fd(channel_.get(), read_fd, write_fd);
  --depth_;
  settle();
}

void CaresResolver::settle() {
  if (depth_ > 0 || !channel_) return;
  if (in_flight_ > 0 && unheard_ == in_flight_) {
    // Nobody waits for any running query: end them now rather than at
    // their own timeouts, which also closes c-ares's sockets.
    ++depth_;
    ares_cancel(channel_.get());
    --depth_;
  }
  timeval tv{};
  if (const timeval* next = ares_timeout(channel_.get(), nullptr, &tv)) {
    // Rounded up: a timer that fires early only finds nothing due.
    const uint64_t ms = static_cast<uint64_t>(next->tv_sec) * 1000 +
                        (static_cast<uint64_t>(next->tv_usec) + 999) / 1000;
    uv_timer_start(timer_.get(), on_timer, ms, 0);
  } else {
    uv_timer_stop(timer_.get());
  }
}

void CaresResolver::on_timer(uv_timer_t* timer) {
  static_cast<CaresResolver*>(timer->data)->process(ARES_SOCKET_BAD, ARES_SOCKET_BAD);
}

void CaresResolver::on_socket_state(void* data, int fd, int readable, int writable) {
  auto* self = static_cast<CaresResolver*>(data);
  auto it = self->sockets_.find(fd);
  if (!readable && !writable) {
    // c-ares closes the socket right after this; the watch goes first.
    if (it != self->sockets_.end()) self->sockets_.erase(it);
    return;
  }
  if (it == self->sockets_.end()) {
    auto watch = make_uv<SocketWatch>();
    int rc = uv_poll_init(self->loop_, &watch->poll, fd);
    if (rc != 0) {
      delete watch.release();  // never initialised: nothing to uv_close
      spdlog::warn("cannot watch a DNS socket: {}; its queries end at their timeout",
                   uv_strerror(rc));
      return;
    }
    watch->poll.data = watch.get();
    watch->owner = self;
    watch->fd = fd;
    uv_unref(uv_handle_of(watch.get()));  // as the timers
    it = self->sockets_.emplace(fd, std::move(watch)).first;
  }
  uv_poll_start(&it->second->poll, (readable ? UV_READABLE : 0) | (writable ? UV_WRITABLE : 0),
                on_poll);
}

void CaresResolver::on_poll(uv_poll_t* poll, int status, int events) {
  // process() may close this very watch: read what it needs first.
  auto* watch = static_cast<SocketWatch*>(poll->data);
  CaresResolver* self = watch->owner;
  const int fd = watch->fd;
  // On an error c-ares reads the socket, sees the error and moves on to
  // the next server.
  const bool failed = status < 0;
  self->process(failed || (events & UV_READABLE) ? fd : ARES_SOCKET_BAD,
                failed || (events & UV_WRITABLE) ? fd : ARES_SOCKET_BAD);
}

}  // namespace cutoff
