#pragma once
// Addresses as the config writes them: "host:port" for listeners, IP
// addresses with an optional port for name servers, and CIDR networks for
// the client allowlist.

#include <sys/socket.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

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

// Parses a name server address: "10.0.0.53", "10.0.0.53:5353", "fd00::53",
// "[fd00::53]" or "[fd00::53]:5353". The host must be an IP address (a
// resolver cannot look up its own servers); *ip gets it without brackets.
// Without brackets the whole text is tried as an address first, so an IPv6
// address with a port needs them: "::1:53" is an address of its own.
// Without a port, *port is `default_port`; a given port must be 1..65535.
// Returns false with *error filled.
bool parse_ip_port(std::string_view text, uint16_t default_port, std::string* ip, uint16_t* port,
                   std::string* error);

// The one spelling of a host that routes see (SPEC §9): lower case, one
// trailing dot removed, IPv4 in any inet_aton form ("127.1", "0x7f000001",
// "2130706433", "0177.0.0.1") as a dotted quad, IPv6 as inet_ntop writes it
// and an IPv4-mapped IPv6 address as its dotted quad. `bracketed`: the host
// came inside [...] and must be an IPv6 address. False when the host is
// neither a valid name nor an address; *out is then unspecified.
bool canonical_host(std::string_view host, bool bracketed, std::string* out);

// True when a canonical host is a name, not an address.
bool is_host_name(std::string_view canonical);

// Parses "10.0.0.0/8", "::1/128" or a bare address (full-length prefix).
bool parse_cidr(std::string_view text, Cidr* out, std::string* error);

// "10.0.0.0/8", "::1/128": the spelling parse_cidr reads back.
std::string cidr_to_string(const Cidr& net);

// True when the address (4 or 16 bytes, network order) is inside the network.
bool cidr_contains(const Cidr& net, const uint8_t* addr, bool v6);

// True when a peer's socket address (AF_INET or AF_INET6; an IPv4 client on
// a dual-stack socket as ::ffff:a.b.c.d) is inside any of the networks: the
// one check behind listen.allow_clients and admin.allow_clients. False for
// any other family.
bool allowed_client(const std::vector<Cidr>& allow, const sockaddr* peer);

}  // namespace cutoff
