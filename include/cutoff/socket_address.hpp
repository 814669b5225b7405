#pragma once
// Socket addresses: resolving the listen address, and printing addresses as
// "ip:port" / "[v6]:port" for logs.

#include <netinet/in.h>
#include <sys/socket.h>

#include <cstddef>
#include <string>
#include <string_view>

namespace cutoff {

// "host:port" (as parse_host_port accepts it) to a socket address. An empty
// host (":port") is every local address: [::], for IPv4 and IPv6 on one
// dual-stack socket, or 0.0.0.0 with a warning when the host has no IPv6.
// Names are resolved once, blocking: this is for start-up only. Returns 0
// or a libuv error.
int resolve_listen_address(std::string_view address, sockaddr_storage* out);

// Room for the longest "[v6]:port" and its NUL.
inline constexpr size_t kAddressTextSize = INET6_ADDRSTRLEN + 10;

// Writes "ip:port" or "[v6]:port" into out (always NUL-terminated).
void format_address(const sockaddr_storage& address, char* out, size_t size);
// The same for an AF_INET or AF_INET6 address.
void format_address(const sockaddr* address, char* out, size_t size);
std::string format_address(const sockaddr_storage& address);

}  // namespace cutoff
