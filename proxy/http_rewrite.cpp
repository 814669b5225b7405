#include "cutoff/http_rewrite.hpp"

#include <fmt/format.h>

#include <array>
#include <cstdint>
#include <random>

#include "cutoff/address.hpp"
#include "cutoff/ascii.hpp"

namespace cutoff {
namespace {

// Literals as views: append(const char*) may measure them at run time.
using namespace std::string_view_literals;

constexpr std::string_view kVia = "Via: 1.1 cutoff\r\n";
constexpr std::string_view kViaLast = "Via: 1.1 cutoff\r\n\r\n";

// A port number as a URL spells it: decimal digits (leading zeros allowed)
// for 1..65535.
bool parse_port(std::string_view digits, uint16_t* port) {
  if (digits.empty()) return false;
  unsigned value = 0;
  for (char c : digits) {
    if (c < '0' || c > '9') return false;
    value = value * 10 + static_cast<unsigned>(c - '0');
    if (value > 65535) return false;
  }
  if (value == 0) return false;
  *port = static_cast<uint16_t>(value);
  return true;
}

// Writes n's decimal digits so that they end at `end`; returns where they
// begin.
char* put_digits(char* end, uint64_t n) {
  do {
    *--end = static_cast<char>('0' + n % 10);
    n /= 10;
  } while (n != 0);
  return end;
}

void append_number(std::string& out, uint64_t n) {
  char digits[20];
  char* end = digits + sizeof digits;
  char* begin = put_digits(end, n);
  out.append(begin, end);
}

// Target::authority from its host, port and scheme.
void render_authority(Target* target) {
  std::string& out = target->authority;
  bool v6 = target->host.find(':') != std::string::npos;
  out.clear();
  if (v6) out.push_back('[');
  out.append(target->host);
  if (v6) out.push_back(']');
  if (target->port != (target->tls ? 443 : 80)) {
    out.push_back(':');
    append_number(out, target->port);
  }
}

// Splits "host[:port]" or "[v6][:port]" and canonicalises the host (SPEC §9).
TargetError parse_host_port(std::string_view authority, bool port_required, uint16_t default_port,
                            Target* out) {
  std::string_view host;
  std::string_view port;
  bool bracketed = !authority.empty() && authority.front() == '[';
  if (bracketed) {
    size_t close = authority.find(']');
    if (close == std::string_view::npos) return TargetError::malformed;
    host = authority.substr(1, close - 1);
    std::string_view rest = authority.substr(close + 1);
    if (!rest.empty()) {
      if (rest.front() != ':') return TargetError::malformed;
      port = rest.substr(1);
    }
  } else {
    size_t colon = authority.rfind(':');
    host = authority.substr(0, colon);
    if (colon != std::string_view::npos) port = authority.substr(colon + 1);
  }
  if (!canonical_host(host, bracketed, &out->host)) return TargetError::malformed;
  if (port.empty()) {
    if (port_required) return TargetError::malformed;
    out->port = default_port;
  } else if (!parse_port(port, &out->port)) {
    return TargetError::malformed;
  }
  render_authority(out);
  return TargetError::none;
}

// The characters that end an absolute target's authority (the path, the
// query, a fragment) or mark a userinfo in it.
enum AuthorityMark : uint8_t { kPlain = 0, kEnd, kAt };
constexpr auto kAuthorityMarks = [] {
  std::array<uint8_t, 256> marks{};
  marks['/'] = marks['?'] = marks['#'] = kEnd;
  marks['@'] = kAt;
  return marks;
}();

void append_header(std::string& out, std::string_view name, std::string_view value) {
  out.append(name).append(": "sv).append(value).append("\r\n"sv);
}

// One append for the whole line: a head is a run of small appends, and each
// costs more than the bytes it copies.
void append_content_length(std::string& out, uint64_t length) {
  constexpr std::string_view kName = "Content-Length: ";
  char line[kName.size() + 20 + 2];
  char* end = line + sizeof line;
  end[-2] = '\r';
  end[-1] = '\n';
  char* begin = put_digits(end - 2, length) - kName.size();
  kName.copy(begin, kName.size());
  out.append(begin, end);
}

// "HTTP/1.1 200 ", the status in three digits as llhttp parsed it.
void append_status_line(std::string& out, int status, std::string_view reason) {
  if (status >= 100 && status <= 999) {
    char line[] = "HTTP/1.1 000 ";
    put_digits(line + 12, static_cast<uint64_t>(status));
    out.append(line, sizeof line - 1);
  } else {
    out.append("HTTP/1.1 "sv);
    append_number(out, static_cast<uint64_t>(status));
    out.push_back(' ');
  }
  out.append(reason).append("\r\n"sv);
}

// Forwards end-to-end field lines: consecutive ones that arrived in the
// form cutoff would write ("name: value\r\n") leave in one append of the
// bytes as they came, the others are written anew. Anything else written
// to `out` in between must flush() the run first, to keep the order.
class FieldLines {
 public:
  FieldLines(std::string& out, const MessageHead& head) : out_(out), head_(head) {}
  void add(size_t i) {
    std::string_view line = head_.raw_line(i);
    if (line.empty()) {
      flush();
      MessageHead::Header h = head_.header(i);
      append_header(out_, h.name, h.value);
      return;
    }
    if (line.data() != end_) {
      flush();
      begin_ = line.data();
    }
    end_ = line.data() + line.size();
  }
  void flush() {
    if (begin_ != end_) out_.append(begin_, end_);
    begin_ = end_ = nullptr;
  }

 private:
  std::string& out_;
  const MessageHead& head_;
  const char* begin_ = nullptr;
  const char* end_ = nullptr;
};

constexpr std::string_view kChunked = "Transfer-Encoding: chunked\r\n";

// The path and query of an origin-form or absolute-form target.
void append_path(std::string& out, const Target& target) {
  if (target.empty_path) out.push_back('/');
  out.append(target.path);
}

// "(1f2e3d4c)": drawn once per process, so that two cutoffs chained on
// purpose never take each other's requests for their own.
std::string_view own_via_mark() {
  static const std::string mark = [] {
    std::random_device random;
    return fmt::format("({:08x})", random());
  }();
  return mark;
}

// Assigned field by field, so that the memo's strings keep their capacity.
void remember(std::string_view spelled, const Target& target, AuthorityMemo* memo) {
  memo->spelled.assign(spelled);
  memo->host = target.host;
  memo->port = target.port;
  memo->authority = target.authority;
}

}  // namespace

void append_parent_via(std::string& out) {
  out.append("Via: 1.1 cutoff "sv).append(own_via_mark()).append("\r\n"sv);
}

bool carries_own_via(const MessageHead& request) {
  for (size_t i = 0; i < request.header_count(); ++i) {
    MessageHead::Header h = request.header(i);
    if (h.role == HeaderRole::end_to_end && iequals(h.name, "via") &&
        h.value.find(own_via_mark()) != std::string_view::npos) {
      return true;
    }
  }
  return false;
}

TargetError parse_absolute_target(std::string_view target, Target* out, AuthorityMemo* memo) {
  out->tls = false;
  if (!target.empty() && target.front() == '/') return TargetError::origin_form;
  constexpr std::string_view kScheme = "http://";
  // Clients write the scheme in lower case; compared so first, as bytes.
  bool http = target.starts_with(kScheme) || (target.size() >= kScheme.size() &&
                                              iequals(target.substr(0, kScheme.size()), kScheme));
  if (!http) {
    return target.find("://") != std::string_view::npos ? TargetError::unsupported_scheme
                                                        : TargetError::malformed;
  }
  std::string_view rest = target.substr(kScheme.size());
  // One pass finds where the authority ends, at the path, the query or a
  // fragment, and whether it holds a userinfo.
  size_t end = 0;
  bool userinfo = false;
  for (; end < rest.size(); ++end) {
    uint8_t mark = kAuthorityMarks[static_cast<unsigned char>(rest[end])];
    if (mark == kPlain) continue;
    if (mark == kEnd) break;
    userinfo = true;
  }
  if (userinfo) return TargetError::userinfo;
  std::string_view authority = rest.substr(0, end);
  // An empty authority is malformed, and the empty memo's.
  if (memo != nullptr && !authority.empty() && authority == memo->spelled) {
    out->host = memo->host;
    out->port = memo->port;
    out->authority = memo->authority;
  } else {
    TargetError err = parse_host_port(authority, false, 80, out);
    if (err != TargetError::none) return err;
    if (memo != nullptr) remember(authority, *out, memo);
  }
  // A fragment is the client's business and never travels (RFC 9110 §7.1).
  out->no_path = end == rest.size() || rest[end] == '#';
  if (out->no_path) {
    out->path = "/";
  } else {
    std::string_view path = rest.substr(end);
    out->path = path.substr(0, path.find('#'));
  }
  out->empty_path = out->path.front() == '?';
  return TargetError::none;
}

TargetError parse_authority(std::string_view authority, Target* out) {
  out->tls = false;
  out->path = {};
  out->empty_path = out->no_path = false;
  if (authority.find('@') != std::string_view::npos) return TargetError::userinfo;
  return parse_host_port(authority, true, 0, out);
}

TargetError parse_origin_target(std::string_view target, Target* out) {
  out->tls = true;
  render_authority(out);
  out->empty_path = false;
  out->no_path = target == "*";
  if (out->no_path) {
    out->path = "/";
    return TargetError::none;
  }
  if (target.empty() || target.front() != '/') return TargetError::malformed;
  out->path = target.substr(0, target.find('#'));
  return TargetError::none;
}

void build_request_head(std::string& out, const MessageHead& request, const Framing& framing,
                        const Target& target, const RequestRewrite& rewrite) {
  out.append(request.method()).push_back(' ');
  // RFC 9112 §3.2.4: OPTIONS asking about the server itself, not a resource.
  const bool asks_server = target.no_path && request.method() == "OPTIONS";
  if (rewrite.absolute_form) {
    out.append("http://"sv).append(target.authority);
    if (!asks_server) append_path(out, target);
  } else if (asks_server) {
    out.push_back('*');
  } else {
    append_path(out, target);
  }
  out.append(" HTTP/1.1\r\nHost: "sv).append(target.authority).append("\r\n"sv);
  // The framing line takes the place of the field it was decided from.
  bool framed = false;
  FieldLines lines(out, request);
  for (size_t i = 0; i < request.header_count(); ++i) {
    switch (request.role(i)) {
      case HeaderRole::end_to_end:
        lines.add(i);
        break;
      case HeaderRole::content_length:
      case HeaderRole::transfer_encoding:
        if (framed) break;
        lines.flush();
        framed = true;
        if (framing.kind == Framing::Kind::chunked) out.append(kChunked);
        if (framing.kind == Framing::Kind::length) append_content_length(out, framing.length);
        break;
      default:
        break;
    }
  }
  lines.flush();
  if (rewrite.upgrade) {
    append_header(out, "Upgrade", request.join("upgrade"));
    out.append("Connection: upgrade\r\n"sv);
  }
  out.append(rewrite.proxy_authorization);
  if (rewrite.absolute_form) {
    append_parent_via(out);
  } else if (rewrite.via) {
    out.append(kVia);
  }
  out.append("\r\n"sv);
}

void build_response_head(std::string& out, const MessageHead& response,
                         const ResponseRewrite& rewrite) {
  int status = response.status();
  append_status_line(out, status, response.reason());
  // A final response without a body that is not a 204 answers HEAD or is a
  // 304: its Content-Length describes the representation and is kept.
  bool declared_length =
      rewrite.upstream.kind == Framing::Kind::none && status >= 200 && status != 204;
  bool framed = false;
  FieldLines lines(out, response);
  for (size_t i = 0; i < response.header_count(); ++i) {
    switch (response.role(i)) {
      case HeaderRole::end_to_end:
        lines.add(i);
        break;
      case HeaderRole::content_length:
        if (framed) break;
        lines.flush();
        if (rewrite.upstream.kind == Framing::Kind::length) {
          append_content_length(out, rewrite.upstream.length);
          framed = true;
        } else if (declared_length) {
          append_header(out, "Content-Length", trim_ows(response.header(i).value));
          framed = true;
        }
        break;
      case HeaderRole::transfer_encoding:
        if (framed || rewrite.plan.framing != BodyFraming::chunked) break;
        lines.flush();
        out.append(kChunked);
        framed = true;
        break;
      default:
        break;
    }
  }
  lines.flush();
  if (rewrite.upgrade) {
    append_header(out, "Upgrade", response.join("upgrade"));
    out.append("Connection: upgrade\r\n"sv);
  } else if (rewrite.interim) {
    // The connection's fate is told by the final response.
  } else if (!rewrite.plan.client_keep_alive) {
    out.append("Connection: close\r\n"sv);
  } else if (rewrite.client_http10) {
    out.append("Connection: keep-alive\r\n"sv);
  }
  std::string_view extra = rewrite.interim ? std::string_view() : rewrite.extra_headers;
  if (rewrite.via && extra.empty()) {
    out.append(kViaLast);  // the common end of a head, in one append
    return;
  }
  if (rewrite.via) out.append(kVia);
  out.append(extra).append("\r\n"sv);
}

}  // namespace cutoff
