#pragma once
// What a proxy changes in a message as it forwards it (RFC 9110 §7.6,
// RFC 9112), as pure functions over parsed heads: target parsing, hop-by-hop
// header removal, Via, Host, and the framing cutoff writes itself.

#include <cstdint>
#include <string>
#include <string_view>

#include "cutoff/http_framing.hpp"
#include "cutoff/http_parser.hpp"

namespace cutoff {

// Where a request goes.
struct Target {
  std::string host;  // canonical (address.hpp); IPv6 without brackets
  uint16_t port = 0;
  // "host[:port]" as Host and an absolute-form target write it: IPv6 in
  // brackets, the port left out when it is the scheme's default.
  std::string authority;
  // Path and query as sent, without a fragment; views the request head.
  std::string_view path;
  bool empty_path = false;  // "http://h?q": origin-form puts "/" before the query
  bool no_path = false;     // "http://h": neither path nor query (OPTIONS * then)
  // https: a request inside an intercepted connection, which goes to its
  // upstream over TLS (default port 443).
  bool tls = false;
};

// `userinfo`: "user:password@" before the host, which RFC 9110 §4.2.4 has
// recipients treat as an error; the client means an Authorization field.
enum class TargetError { none, origin_form, unsupported_scheme, userinfo, malformed };

// The authority of the last absolute target parsed without error, and
// what it came to. A keep-alive client names the same upstream request
// after request: its canonical host need not be worked out each time.
struct AuthorityMemo {
  std::string spelled;  // as the client wrote it
  std::string host;
  uint16_t port = 0;
  std::string authority;
};

// "http://host[:port]/path?q" -> host, port (default 80), "/path?q". With a
// memo, an authority spelled as the memo's takes its host from there.
TargetError parse_absolute_target(std::string_view target, Target* out,
                                  AuthorityMemo* memo = nullptr);
// CONNECT's "host:port" (port required).
TargetError parse_authority(std::string_view authority, Target* out);
// Origin-form "/path?q" (or "*") of a request inside an intercepted
// connection, whose host and port are the CONNECT's, already in *out.
TargetError parse_origin_target(std::string_view target, Target* out);

// The Via field cutoff sends a parent proxy, whatever listen.via says:
// "Via: 1.1 cutoff (MARK)", MARK a random name for this process. A request
// that arrives carrying it went round a loop of parents back to this very
// process (RFC 9110 §7.6.3: Via is how proxies notice loops), which the
// request line alone cannot show: a parent named localhost, 0.0.0.0 or a
// container's service name may all be cutoff itself.
void append_parent_via(std::string& out);
bool carries_own_via(const MessageHead& request);

struct RequestRewrite {
  bool via = true;
  bool upgrade = false;  // keep Upgrade and ask for it with Connection: upgrade
  // To a parent proxy: the request line names the whole http:// URL
  // (RFC 9112 §3.2.2), the parent's Via is sent (append_parent_via), and
  // `proxy_authorization` (a whole header line, or empty) gives the
  // parent cutoff's credentials.
  bool absolute_form = false;
  std::string_view proxy_authorization;
};

// Appends the upstream request head: an HTTP/1.1 request line in origin
// form (or absolute form), Host from the target, end-to-end headers, the
// framing of `framing`, Via.
void build_request_head(std::string& out, const MessageHead& request, const Framing& framing,
                        const Target& target, const RequestRewrite& rewrite);

struct ResponseRewrite {
  bool via = true;
  bool upgrade = false;  // a 101: keep Upgrade, Connection: upgrade
  bool interim = false;  // a 1xx before the final response: no Connection, no extras
  ResponsePlan plan;
  Framing upstream;                // the framing the response head declared
  bool client_http10 = false;      // gets Connection: keep-alive when kept alive
  std::string_view extra_headers;  // whole header lines cutoff adds, e.g. Server-Timing
};

// Appends the head sent to the client.
void build_response_head(std::string& out, const MessageHead& response,
                         const ResponseRewrite& rewrite);

}  // namespace cutoff
