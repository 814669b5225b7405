#pragma once
// Addresses as the config writes them: "host:port" for listeners and CIDR
// networks for the client allowlist.

#include <cstdint>
#include <string>
#include <string_view>

namespace cutoff {

// An IPv4 or IPv6 network in CIDR notation, parsed once at load time.
struct Cidr {
  bool v6 = false;
  uint8_t addr[16] = {};  // network byte order; IPv4 uses the first 4 bytes
  int prefix = 0;
};

// Parses "host:port", "[v6]:port" or ":port". Used for listen/admin
// addresses and by --listen/--admin. Returns false with *error filled.
// host is an IPv4 literal, an IPv6 literal (returned without brackets), an
// RFC 1123 host name, or "" for ":port" (every local address). Port 0 is
// allowed: it asks for an ephemeral port.
bool parse_host_port(std::string_view text, std::string* host, uint16_t* port, std::string* error);

// Parses "10.0.0.0/8", "::1/128" or a bare address (full-length prefix).
bool parse_cidr(std::string_view text, Cidr* out, std::string* error);

// True when the address (4 or 16 bytes, network order) is inside the network.
bool cidr_contains(const Cidr& net, const uint8_t* addr, bool v6);

}  // namespace cutoff
