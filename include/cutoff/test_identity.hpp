#pragma once
// Which test sent a request (SPEC §12): its Cutoff-Test-Id field, or, with
// no code change in the test, the user name of the proxy URL
// (http://TEST-ID@proxy:3128), which clients send as Proxy-Authorization:
// Basic. The field wins over the credentials. Neither is forwarded: both
// are cutoff's own (HeaderRole::hop_by_hop).

#include <string>
#include <string_view>

#include "cutoff/http_parser.hpp"

namespace cutoff {

// An id is 1 to this many bytes of printable ASCII, spaces included: what
// test runners name tests with, and safe in every report cutoff writes.
inline constexpr size_t kMaxTestIdLength = 256;

bool valid_test_id(std::string_view id);

// The token of a "Basic <token>" authorization value (the scheme in any
// case, spaces around the token dropped), or empty when it is not one.
std::string_view basic_token(std::string_view authorization);

// The user name of "Basic <base64 of user:password>", or empty when the
// value is not such credentials.
std::string basic_user_name(std::string_view authorization);

// Reads the request's test id into *id (left empty when it names none).
// Returns the sentence of a 400 when the Cutoff-Test-Id field is unusable,
// else empty. A user name that is not a valid id is no id: credentials are
// not always meant as one.
std::string_view read_test_id(const MessageHead& head, std::string* id);

}  // namespace cutoff
