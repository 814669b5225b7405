#pragma once
// Name resolution behind an interface, so that tests can inject a slow or
// failing resolver. The real one is CaresResolver (cares_resolver.hpp).

#include <netinet/in.h>
#include <uv.h>

#include <cstdint>
#include <string>
#include <string_view>

namespace cutoff {

// Up to kMax addresses of one name, in the resolver's order.
struct AddressList {
  static constexpr int kMax = 4;
  sockaddr_in6 entries[kMax];  // each holds a sockaddr_in or a sockaddr_in6
  int count = 0;
  const sockaddr* at(int i) const { return reinterpret_cast<const sockaddr*>(&entries[i]); }
  void add(const sockaddr* address);
};

class ResolveListener {
 public:
  // status 0 with at least one address, or a libuv error (UV_EAI_NONAME, ...).
  virtual void on_resolved(int status, const AddressList& addresses) = 0;

 protected:
  ~ResolveListener() = default;
};

class Resolver {
 public:
  class Lookup;  // opaque; valid until its result is delivered or cancelled
  virtual ~Resolver() = default;
  // Starts a lookup; the listener hears back exactly once, unless cancelled,
  // and never from inside resolve(). nullptr: the lookup could not even
  // start (answered as a dns_error).
  virtual Lookup* resolve(const std::string& host, uint16_t port, ResolveListener* listener) = 0;
  // The listener hears nothing more of this lookup.
  virtual void cancel(Lookup* lookup) = 0;
};

// True for "invalid" and names under it (RFC 6761), which never resolve.
bool is_reserved_invalid(std::string_view host);

// Parses an IPv4 or IPv6 literal; true when `host` is one.
bool parse_ip_literal(const std::string& host, uint16_t port, AddressList* out);

}  // namespace cutoff
