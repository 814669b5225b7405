#include "cutoff/http_rewrite.hpp"

#include <uv.h>

#include <algorithm>
#include <charconv>

namespace cutoff {
namespace {

constexpr std::string_view kVia = "Via: 1.1 cutoff\r\n";

char lower(char c) {
  return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// Calls fn(token) for each comma-separated token of a list header value.
template <class Fn>
void for_each_token(std::string_view list, Fn fn) {
  while (!list.empty()) {
    size_t comma = list.find(',');
    std::string_view token = trim(list.substr(0, comma));
    if (!token.empty()) fn(token);
    if (comma == std::string_view::npos) break;
    list.remove_prefix(comma + 1);
  }
}

bool valid_host_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_';
}

// Splits "host[:port]" or "[v6][:port]" and validates both parts.
TargetError parse_host_port(std::string_view authority, bool port_required, uint16_t default_port,
                            Target* out) {
  std::string_view host;
  std::string_view port;
  if (!authority.empty() && authority.front() == '[') {
    size_t close = authority.find(']');
    if (close == std::string_view::npos) return TargetError::malformed;
    host = authority.substr(1, close - 1);
    std::string_view rest = authority.substr(close + 1);
    if (!rest.empty()) {
      if (rest.front() != ':') return TargetError::malformed;
      port = rest.substr(1);
    }
    char buf[INET6_ADDRSTRLEN + 1];
    unsigned char addr[16];
    if (host.size() >= sizeof buf) return TargetError::malformed;
    std::copy(host.begin(), host.end(), buf);
    buf[host.size()] = '\0';
    if (uv_inet_pton(AF_INET6, buf, addr) != 0) return TargetError::malformed;
  } else {
    size_t colon = authority.rfind(':');
    host = authority.substr(0, colon);
    if (colon != std::string_view::npos) port = authority.substr(colon + 1);
  }
  if (host.empty() || host.size() > 253) return TargetError::malformed;
  out->host.clear();
  for (char c : host) {
    char l = lower(c);
    if (authority.front() != '[' && !valid_host_char(l)) return TargetError::malformed;
    out->host.push_back(l);
  }
  if (port.empty()) {
    if (port_required) return TargetError::malformed;
    out->port = default_port;
    return TargetError::none;
  }
  unsigned value = 0;
  auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
  if (ec != std::errc() || end != port.data() + port.size() || value == 0 || value > 65535) {
    return TargetError::malformed;
  }
  out->port = static_cast<uint16_t>(value);
  return TargetError::none;
}

void append_header(std::string& out, std::string_view name, std::string_view value) {
  out.append(name).append(": ").append(value).append("\r\n");
}

}  // namespace

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (lower(a[i]) != lower(b[i])) return false;
  }
  return true;
}

TargetError parse_absolute_target(std::string_view target, Target* out) {
  if (!target.empty() && target.front() == '/') return TargetError::origin_form;
  constexpr std::string_view kScheme = "http://";
  if (target.size() < kScheme.size() || !iequals(target.substr(0, kScheme.size()), kScheme)) {
    return target.find("://") != std::string_view::npos ? TargetError::unsupported_scheme
                                                        : TargetError::malformed;
  }
  std::string_view rest = target.substr(kScheme.size());
  size_t path_at = rest.find_first_of("/?");
  std::string_view authority = rest.substr(0, path_at);
  if (authority.find('@') != std::string_view::npos) return TargetError::malformed;
  TargetError err = parse_host_port(authority, false, 80, out);
  if (err != TargetError::none) return err;
  out->path = path_at == std::string_view::npos ? std::string_view("/") : rest.substr(path_at);
  out->empty_path = out->path.front() == '?';
  return TargetError::none;
}

TargetError parse_authority(std::string_view authority, Target* out) {
  out->path = {};
  out->empty_path = false;
  return parse_host_port(authority, true, 0, out);
}

ConnectionHeader scan_connection(const MessageHead& head) {
  ConnectionHeader c;
  for (size_t i = 0; i < head.header_count(); ++i) {
    MessageHead::Header h = head.header(i);
    if (!iequals(h.name, "connection") && !iequals(h.name, "proxy-connection")) continue;
    if (iequals(h.name, "connection") && c.line_count < ConnectionHeader::kMaxLines) {
      c.lines[c.line_count++] = h.value;
    }
    for_each_token(h.value, [&](std::string_view token) {
      if (iequals(token, "close")) c.close = true;
      if (iequals(token, "keep-alive")) c.keep_alive = true;
      if (iequals(token, "upgrade")) c.upgrade = true;
    });
  }
  return c;
}

bool is_hop_by_hop(std::string_view name, const ConnectionHeader& connection) {
  static constexpr std::string_view kAlways[] = {
      "connection", "proxy-connection",    "keep-alive",         "te",
      "trailer",    "proxy-authorization", "proxy-authenticate", "upgrade",
  };
  for (std::string_view h : kAlways) {
    if (iequals(name, h)) return true;
  }
  bool named = false;
  for (int i = 0; i < connection.line_count && !named; ++i) {
    for_each_token(connection.lines[i], [&](std::string_view token) {
      if (iequals(token, name)) named = true;
    });
  }
  return named;
}

void build_request_head(std::string& out, const MessageHead& request, const Target& target,
                        const RequestRewrite& rewrite) {
  ConnectionHeader connection = scan_connection(request);
  out.append(request.method()).append(target.empty_path ? " /" : " ");
  out.append(target.path).append(" HTTP/1.1\r\nHost: ");
  bool v6 = target.host.find(':') != std::string::npos;
  if (v6) out.push_back('[');
  out.append(target.host);
  if (v6) out.push_back(']');
  if (target.port != 80) {
    char port[8];
    auto [end, ec] = std::to_chars(port, port + sizeof port, target.port);
    out.append(":").append(port, end);
  }
  out.append("\r\n");
  for (size_t i = 0; i < request.header_count(); ++i) {
    MessageHead::Header h = request.header(i);
    if (iequals(h.name, "host")) continue;
    if (is_hop_by_hop(h.name, connection)) continue;
    append_header(out, h.name, h.value);
  }
  if (rewrite.upgrade) {
    append_header(out, "Upgrade", request.find("upgrade"));
    out.append("Connection: upgrade\r\n");
  }
  if (rewrite.via) out.append(kVia);
  out.append("\r\n");
}

ResponsePlan plan_response(const ResponseFacts& f) {
  ResponsePlan plan;
  plan.client_keep_alive = f.client_wants_keep_alive;
  bool no_body = f.request_is_head || (f.status >= 100 && f.status < 200) || f.status == 204 ||
                 f.status == 304;
  if (no_body) {
    plan.framing = BodyFraming::none;
  } else if (f.chunked) {
    plan.framing = f.client_http10 ? BodyFraming::dechunk : BodyFraming::chunked;
  } else if (f.has_content_length) {
    plan.framing = f.content_length == 0 ? BodyFraming::none : BodyFraming::content_length;
  } else {
    plan.framing = BodyFraming::until_close;
  }
  // Without a length, the end of the body is the end of the connection.
  if (plan.framing == BodyFraming::dechunk || plan.framing == BodyFraming::until_close) {
    plan.client_keep_alive = false;
  }
  return plan;
}

void build_response_head(std::string& out, const MessageHead& response,
                         const ResponseRewrite& rewrite) {
  ConnectionHeader connection = scan_connection(response);
  char status[8];
  auto [end, ec] = std::to_chars(status, status + sizeof status, response.status());
  out.append("HTTP/1.1 ").append(status, end).append(" ").append(response.reason()).append("\r\n");
  for (size_t i = 0; i < response.header_count(); ++i) {
    MessageHead::Header h = response.header(i);
    if (is_hop_by_hop(h.name, connection)) continue;
    if (rewrite.plan.framing == BodyFraming::dechunk && iequals(h.name, "transfer-encoding")) {
      continue;
    }
    append_header(out, h.name, h.value);
  }
  if (rewrite.upgrade) {
    append_header(out, "Upgrade", response.find("upgrade"));
    out.append("Connection: upgrade\r\n");
  } else if (!rewrite.plan.client_keep_alive) {
    out.append("Connection: close\r\n");
  } else if (rewrite.client_http10) {
    out.append("Connection: keep-alive\r\n");
  }
  if (rewrite.via) out.append(kVia);
  out.append(rewrite.extra_headers);
  out.append("\r\n");
}

}  // namespace cutoff
