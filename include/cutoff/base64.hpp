#pragma once
// Base64 (RFC 4648, with padding), for the Basic credentials of
// Proxy-Authorization: the ones clients must show, and the ones cutoff
// shows a parent proxy.

#include <optional>
#include <string>
#include <string_view>

namespace cutoff {

std::string base64_encode(std::string_view in);
// Strict: whole groups of four, padding only at the end; nullopt otherwise.
std::optional<std::string> base64_decode(std::string_view in);

}  // namespace cutoff
