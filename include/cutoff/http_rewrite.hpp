#pragma once
// What a proxy changes in a message as it forwards it (RFC 9110 §7.6,
// RFC 9112), as pure functions over parsed heads: target parsing, hop-by-hop
// header removal, Via, Host, and how a response body is framed towards the
// client.

#include <cstdint>
#include <string>
#include <string_view>

#include "cutoff/http_parser.hpp"

namespace cutoff {

// Where a request goes.
struct Target {
  std::string host;  // lower-case; IPv6 without brackets
  uint16_t port = 0;
  std::string_view path;    // path and query as sent, views the request head
  bool empty_path = false;  // "http://h?q": origin-form puts "/" before the query
};

enum class TargetError { none, origin_form, unsupported_scheme, malformed };

// "http://host[:port]/path?q" -> host, port (default 80), "/path?q".
TargetError parse_absolute_target(std::string_view target, Target* out);
// CONNECT's "host:port" (port required).
TargetError parse_authority(std::string_view authority, Target* out);

// The Connection header's verdict plus the other headers it names, which are
// hop-by-hop for this message only.
struct ConnectionHeader {
  static constexpr int kMaxLines = 8;  // further Connection lines are ignored
  bool close = false;
  bool keep_alive = false;
  bool upgrade = false;
  std::string_view lines[kMaxLines];  // the raw Connection values, scanned on demand
  int line_count = 0;
};
ConnectionHeader scan_connection(const MessageHead& head);

// True for headers that never cross the proxy (plus those Connection names).
bool is_hop_by_hop(std::string_view name, const ConnectionHeader& connection);

struct RequestRewrite {
  bool via = true;
  bool upgrade = false;  // keep Upgrade and ask for it with Connection: upgrade
};

// Appends the upstream request head: origin-form request line in HTTP/1.1,
// Host from the target, end-to-end headers, Via.
void build_request_head(std::string& out, const MessageHead& request, const Target& target,
                        const RequestRewrite& rewrite);

// How a response body travels from the upstream to the client.
enum class BodyFraming {
  none,            // HEAD, 1xx, 204, 304, or Content-Length: 0
  content_length,  // passed through
  chunked,         // passed through to an HTTP/1.1 client
  dechunk,         // decoded for an HTTP/1.0 client, which then sees a close-delimited body
  until_close,     // close-delimited: passed through, then the client connection closes
};

struct ResponsePlan {
  BodyFraming framing = BodyFraming::none;
  bool client_keep_alive = false;  // the client connection may carry another request
};

struct ResponseFacts {
  bool request_is_head = false;
  bool client_http10 = false;
  bool client_wants_keep_alive = false;  // llhttp's verdict on the request
  int status = 200;
  bool chunked = false;
  bool has_content_length = false;
  uint64_t content_length = 0;
};

ResponsePlan plan_response(const ResponseFacts& facts);

struct ResponseRewrite {
  bool via = true;
  bool upgrade = false;  // a 101: keep Upgrade, Connection: upgrade
  ResponsePlan plan;
  bool client_http10 = false;
  std::string_view extra_headers;  // whole header lines cutoff adds, e.g. Server-Timing
};

// Appends the head sent to the client.
void build_response_head(std::string& out, const MessageHead& response,
                         const ResponseRewrite& rewrite);

// Case-insensitive ASCII comparison of header names and tokens.
bool iequals(std::string_view a, std::string_view b);

}  // namespace cutoff
