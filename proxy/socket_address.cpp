#include "cutoff/socket_address.hpp"

#include <fmt/format.h>
#include <netinet/in.h>
#include <uv.h>

#include <cstring>

#include "cutoff/address.hpp"
#include "cutoff/resolver.hpp"

namespace cutoff {

int resolve_listen_address(std::string_view address, sockaddr_storage* out) {
  std::string host, error;
  uint16_t port = 0;
  if (!parse_host_port(address, &host, &port, &error)) return UV_EINVAL;
  if (host.empty()) host = "0.0.0.0";
  AddressList literal;
  if (parse_ip_literal(host, port, &literal)) {
    std::memcpy(out, literal.at(0), sizeof literal.entries[0]);
    return 0;
  }
  uv_getaddrinfo_t req;
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE;
  std::string service = std::to_string(port);
  int rc = uv_getaddrinfo(nullptr, &req, nullptr, host.c_str(), service.c_str(), &hints);
  if (rc != 0) return rc;
  std::memcpy(out, req.addrinfo->ai_addr, req.addrinfo->ai_addrlen);
  uv_freeaddrinfo(req.addrinfo);
  return 0;
}

void format_address(const sockaddr_storage& address, char* out, size_t size) {
  char ip[INET6_ADDRSTRLEN] = "?";
  fmt::format_to_n_result<char*> end;
  if (address.ss_family == AF_INET6) {
    const auto& a = reinterpret_cast<const sockaddr_in6&>(address);
    uv_ip6_name(&a, ip, sizeof ip);
    end = fmt::format_to_n(out, size - 1, "[{}]:{}", ip, ntohs(a.sin6_port));
  } else {
    const auto& a = reinterpret_cast<const sockaddr_in&>(address);
    uv_ip4_name(&a, ip, sizeof ip);
    end = fmt::format_to_n(out, size - 1, "{}:{}", ip, ntohs(a.sin_port));
  }
  *end.out = '\0';
}

std::string format_address(const sockaddr_storage& address) {
  char text[INET6_ADDRSTRLEN + 10];
  format_address(address, text, sizeof text);
  return text;
}

}  // namespace cutoff
