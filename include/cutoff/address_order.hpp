#pragma once
// The order in which a name's addresses are tried (RFC 8305 §4).
//
// The resolver already sorts a name's addresses by preference (c-ares
// applies RFC 6724's destination address selection, as getaddrinfo does,
// so IPv6 comes first where the host can reach IPv6). Trying them in that
// order would put every address of the preferred family before the first
// of the other, so a host whose IPv6 is broken would wait out one attempt
// per IPv6 address before trying IPv4. RFC 8305 interleaves the families
// instead: the most preferred address, then the other family's best, then
// the first family's second, and so on, each family keeping its own order.
// When one family runs out, the rest of the other follows.

#include <sys/socket.h>

#include <span>

#include "cutoff/resolver.hpp"

namespace cutoff {

// Appends `in` (most preferred first) to `out` in the interleaved order,
// until `out` holds AddressList::kMax. A list that is interleaved already
// comes out unchanged.
void interleave_families(std::span<const sockaddr* const> in, AddressList* out);

// The same for a whole AddressList.
AddressList interleave_families(const AddressList& in);

}  // namespace cutoff
