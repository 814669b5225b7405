#include "cutoff/socket_address.hpp"

#include <fmt/format.h>
#include <netinet/in.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include <cerrno>
#include <cstring>

#include "cutoff/address.hpp"
#include "cutoff/resolver.hpp"

namespace cutoff {
namespace {

// False only when the kernel has no IPv6 at all (booted with it disabled,
// or built without it): then not even a socket can be made. IPv6 turned
// off on every interface still takes a [::] socket, and it serves IPv4.
bool host_has_ipv6() {
  int fd = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return errno != EAFNOSUPPORT;
  ::close(fd);
  return true;
}

// ":port" means every local address, IPv4 and IPv6: [::], which the
// listeners bind with IPV6_V6ONLY off (libuv's uv_tcp_bind does so unless
// asked otherwise), so one socket takes both. Without IPv6, 0.0.0.0.
std::string every_local_address(std::string_view address) {
  if (host_has_ipv6()) return "::";
  spdlog::warn("{}: this host has no IPv6; listening on IPv4 only (0.0.0.0)", address);
  return "0.0.0.0";
}

char* put_decimal(char* out, unsigned value) {
  char digits[10];
  int n = 0;
  do {
    digits[n++] = static_cast<char>('0' + value % 10);
    value /= 10;
  } while (value != 0);
  while (n > 0) *out++ = digits[--n];
  return out;
}

}  // namespace

int resolve_listen_address(std::string_view address, sockaddr_storage* out) {
  std::string host, error;
  uint16_t port = 0;
  if (!parse_host_port(address, &host, &port, &error)) return UV_EINVAL;
  if (host.empty()) host = every_local_address(address);
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

void format_address(const sockaddr* address, char* out, size_t size) {
  // IPv4 by hand: every exchange's log line names its client, and
  // inet_ntop's snprintf costs as much as a tenth of a small request.
  constexpr size_t kLongestIp4 = sizeof "255.255.255.255:65535";
  if (address->sa_family == AF_INET && size >= kLongestIp4) {
    const auto* a = reinterpret_cast<const sockaddr_in*>(address);
    const auto* octets = reinterpret_cast<const unsigned char*>(&a->sin_addr);
    for (int i = 0; i < 4; ++i) {
      out = put_decimal(out, octets[i]);
      *out++ = i < 3 ? '.' : ':';
    }
    *put_decimal(out, ntohs(a->sin_port)) = '\0';
    return;
  }
  char ip[INET6_ADDRSTRLEN] = "?";
  fmt::format_to_n_result<char*> end;
  if (address->sa_family == AF_INET6) {
    const auto* a = reinterpret_cast<const sockaddr_in6*>(address);
    uv_ip6_name(a, ip, sizeof ip);
    end = fmt::format_to_n(out, size - 1, "[{}]:{}", ip, ntohs(a->sin6_port));
  } else {
    const auto* a = reinterpret_cast<const sockaddr_in*>(address);
    uv_ip4_name(a, ip, sizeof ip);
    end = fmt::format_to_n(out, size - 1, "{}:{}", ip, ntohs(a->sin_port));
  }
  *end.out = '\0';
}

void format_address(const sockaddr_storage& address, char* out, size_t size) {
  format_address(reinterpret_cast<const sockaddr*>(&address), out, size);
}

std::string format_address(const sockaddr_storage& address) {
  char text[kAddressTextSize];
  format_address(address, text, sizeof text);
  return text;
}

}  // namespace cutoff
