#include "cutoff/resolver.hpp"

#include <cstring>

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

bool is_reserved_invalid(std::string_view host) {
  if (!host.empty() && host.back() == '.') host.remove_suffix(1);
  constexpr std::string_view kInvalid = "invalid";
  if (host == kInvalid) return true;
  return host.size() > kInvalid.size() && host.ends_with(kInvalid) &&
         host[host.size() - kInvalid.size() - 1] == '.';
}

}  // namespace cutoff
