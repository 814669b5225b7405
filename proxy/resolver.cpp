#include "cutoff/resolver.hpp"

#include <netdb.h>

#include <cstring>
#include <memory>

namespace cutoff {

void AddressList::add(const sockaddr* address) {
  if (count == kMax) return;
  size_t size = address->sa_family == AF_INET6 ? sizeof(sockaddr_in6) : sizeof(sockaddr_in);
  std::memcpy(&entries[count++], address, size);
}

bool parse_ip_literal(const std::string& host, uint16_t port, AddressList* out) {
  out->count = 0;
  sockaddr_in v4{};
  if (uv_ip4_addr(host.c_str(), port, &v4) == 0) {
    out->add(reinterpret_cast<const sockaddr*>(&v4));
    return true;
  }
  sockaddr_in6 v6{};
  if (host.find(':') != std::string::npos && uv_ip6_addr(host.c_str(), port, &v6) == 0) {
    out->add(reinterpret_cast<const sockaddr*>(&v6));
    return true;
  }
  return false;
}

// One getaddrinfo request. It frees itself when the thread pool hands the
// result back, whether or not anyone still listens.
class Resolver::Lookup {
 public:
  uv_getaddrinfo_t req{};
  ResolveListener* listener = nullptr;
};

namespace {

void on_getaddrinfo(uv_getaddrinfo_t* req, int status, addrinfo* result) {
  std::unique_ptr<Resolver::Lookup> lookup(static_cast<Resolver::Lookup*>(req->data));
  AddressList addresses;
  if (status == 0) {
    for (addrinfo* ai = result; ai != nullptr; ai = ai->ai_next) {
      if (ai->ai_family == AF_INET || ai->ai_family == AF_INET6) addresses.add(ai->ai_addr);
    }
    if (addresses.count == 0) status = UV_EAI_NODATA;
  }
  uv_freeaddrinfo(result);
  if (lookup->listener != nullptr && status != UV_ECANCELED) {
    lookup->listener->on_resolved(status, addresses);
  }
}

}  // namespace

bool is_reserved_invalid(std::string_view host) {
  if (!host.empty() && host.back() == '.') host.remove_suffix(1);
  constexpr std::string_view kInvalid = "invalid";
  if (host == kInvalid) return true;
  return host.size() > kInvalid.size() && host.ends_with(kInvalid) &&
         host[host.size() - kInvalid.size() - 1] == '.';
}

Resolver::Lookup* UvResolver::resolve(const std::string& host, uint16_t port,
                                      ResolveListener* listener) {
  auto lookup = std::make_unique<Lookup>();
  lookup->listener = listener;
  lookup->req.data = lookup.get();
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_ADDRCONFIG | AI_NUMERICSERV;
  // RFC 6761 §6.4: names under .invalid never resolve, and a resolver should
  // say so without asking the network. Restricting the lookup to numeric
  // hosts gets that answer (EAI_NONAME) through the usual asynchronous path.
  if (is_reserved_invalid(host)) hints.ai_flags |= AI_NUMERICHOST;
  std::string service = std::to_string(port);
  int rc =
      uv_getaddrinfo(loop_, &lookup->req, on_getaddrinfo, host.c_str(), service.c_str(), &hints);
  // libuv refuses to start a lookup only for bad arguments; the caller
  // answers that at once as a dns_error.
  return rc == 0 ? lookup.release() : nullptr;
}

void UvResolver::cancel(Lookup* lookup) {
  if (lookup == nullptr) return;
  lookup->listener = nullptr;
  // Succeeds only while the request still waits for a pool thread.
  uv_cancel(reinterpret_cast<uv_req_t*>(&lookup->req));
}

}  // namespace cutoff
