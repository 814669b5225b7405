#pragma once
// Socket addresses: resolving the listen address, and printing addresses as
// "ip:port" / "[v6]:port" for logs.

#include <sys/socket.h>

#include <cstddef>
#include <string>
#include <string_view>

namespace cutoff {

// "host:port" (as parse_host_port accepts it; an empty host is every local
// address) to a socket address. Names are resolved once, blocking: this is
// for start-up only. Returns 0 or a libuv error.
int resolve_listen_address(std::string_view address, sockaddr_storage* out);

// Writes "ip:port" or "[v6]:port" into out (always NUL-terminated).
void format_address(const sockaddr_storage& address, char* out, size_t size);
std::string format_address(const sockaddr_storage& address);

}  // namespace cutoff
