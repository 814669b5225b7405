#include "cutoff/parent_proxy.hpp"

#include <arpa/inet.h>

#include <algorithm>
#include <charconv>

#include "cutoff/ascii.hpp"
#include "cutoff/base64.hpp"
#include "cutoff/uri_path.hpp"

namespace cutoff {
namespace {

constexpr uint16_t kDefaultProxyPort = 1080;  // curl's, for a proxy URL without one

bool is_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && is_space(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_space(s.back())) s.remove_suffix(1);
  return s;
}

bool parse_port(std::string_view text, uint16_t* port) {
  unsigned value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size() || value == 0 || value > 65535) {
    return false;
  }
  *port = static_cast<uint16_t>(value);
  return true;
}

// Splits "host[:port]", "[v6][:port]" or a bare IPv6 address (more than one
// colon, no brackets: no port). *port stays as it was without one.
bool split_host_port(std::string_view text, std::string_view* host, bool* bracketed,
                     uint16_t* port) {
  *bracketed = !text.empty() && text.front() == '[';
  std::string_view rest;
  if (*bracketed) {
    size_t close = text.find(']');
    if (close == std::string_view::npos) return false;
    *host = text.substr(1, close - 1);
    rest = text.substr(close + 1);
    if (!rest.empty() && rest.front() != ':') return false;
  } else if (std::count(text.begin(), text.end(), ':') > 1) {
    *host = text;
  } else {
    size_t colon = text.find(':');
    *host = text.substr(0, colon);
    if (colon != std::string_view::npos) rest = text.substr(colon);
  }
  if (rest.empty()) return true;
  return parse_port(rest.substr(1), port);
}

std::string host_in_url(const std::string& host) {
  return host.find(':') != std::string::npos ? "[" + host + "]" : host;
}

// The address bytes of a canonical host that is an IP literal.
bool address_bytes(std::string_view host, uint8_t bytes[16], bool* v6) {
  std::string text(host);
  if (inet_pton(AF_INET, text.c_str(), bytes) == 1) {
    *v6 = false;
    return true;
  }
  *v6 = true;
  return inet_pton(AF_INET6, text.c_str(), bytes) == 1;
}

bool ends_with_domain(std::string_view host, std::string_view domain) {
  if (host.size() == domain.size()) return host == domain;
  return host.size() > domain.size() && host.substr(host.size() - domain.size()) == domain &&
         host[host.size() - domain.size() - 1] == '.';
}

}  // namespace

bool parse_proxy_url(std::string_view text, ProxyEndpoint* out, std::string* error) {
  text = trim(text);
  size_t scheme_end = text.find("://");
  if (scheme_end != std::string_view::npos) {
    if (!iequals(text.substr(0, scheme_end), "http")) {
      *error = "cutoff talks to a parent proxy in plain HTTP: use an http:// URL, not " +
               std::string(text.substr(0, scheme_end)) + "://";
      return false;
    }
    text.remove_prefix(scheme_end + 3);
  }
  if (!text.empty() && text.back() == '/') text.remove_suffix(1);
  if (text.find_first_of("/?#") != std::string_view::npos) {
    *error = "a proxy URL names a host and port only, without a path";
    return false;
  }
  ProxyEndpoint endpoint;
  size_t at = text.rfind('@');
  if (at != std::string_view::npos) {
    std::string_view userinfo = text.substr(0, at);
    size_t colon = userinfo.find(':');
    std::string user, password;
    if (!percent_decode(userinfo.substr(0, colon), &user) ||
        (colon != std::string_view::npos &&
         !percent_decode(userinfo.substr(colon + 1), &password))) {
      *error = "the user name or password has a \"%\" that is not followed by two hex digits";
      return false;
    }
    endpoint.authorization =
        "Proxy-Authorization: Basic " + base64_encode(user + ":" + password) + "\r\n";
    text.remove_prefix(at + 1);
  }
  std::string_view host;
  bool bracketed = false;
  endpoint.port = kDefaultProxyPort;
  if (!split_host_port(text, &host, &bracketed, &endpoint.port) || host.empty() ||
      !canonical_host(host, bracketed, &endpoint.host)) {
    *error = "expected http://[user:password@]host:port";
    return false;
  }
  endpoint.url = "http://" + host_in_url(endpoint.host) + ":" + std::to_string(endpoint.port);
  *out = std::move(endpoint);
  return true;
}

void NoProxy::parse(std::string_view list) {
  all_ = trim(list) == "*";
  entries_.clear();
  ignored_ = 0;
  if (all_) return;
  size_t i = 0;
  while (i < list.size()) {
    size_t end = list.find_first_of(", \t", i);
    if (end == std::string_view::npos) end = list.size();
    std::string_view item = list.substr(i, end - i);
    i = end + 1;
    if (item.empty()) continue;
    Entry entry;
    if (read_entry(item, &entry)) {
      entries_.push_back(std::move(entry));
    } else {
      ++ignored_;
    }
  }
}

bool NoProxy::read_entry(std::string_view item, Entry* entry) {
  std::string_view host;
  bool bracketed = false;
  if (!split_host_port(item, &host, &bracketed, &entry->port)) return false;
  // "*.example.com" is written for ".example.com" often enough to read it so.
  if (host.substr(0, 2) == "*.") host.remove_prefix(1);
  while (!host.empty() && host.front() == '.') host.remove_prefix(1);
  std::string reason, canonical;
  if (host.find('/') != std::string_view::npos) return parse_cidr(host, &entry->network, &reason);
  if (canonical_host(host, bracketed, &canonical) && !is_host_name(canonical)) {
    return parse_cidr(canonical, &entry->network, &reason);
  }
  // Names are compared as written (lower case, no trailing dot).
  for (char c : host) entry->name.push_back(ascii_lower(c));
  if (!entry->name.empty() && entry->name.back() == '.') entry->name.pop_back();
  return !entry->name.empty() && entry->name.find_first_of("*[]") == std::string::npos;
}

bool NoProxy::matches(std::string_view host, uint16_t port) const {
  if (all_) return true;
  uint8_t bytes[16];
  bool v6 = false;
  const bool is_address = !is_host_name(host) && address_bytes(host, bytes, &v6);
  for (const Entry& entry : entries_) {
    if (entry.port != 0 && entry.port != port) continue;
    if (!entry.name.empty()) {
      if (ends_with_domain(host, entry.name)) return true;
    } else if (is_address && entry.network.v6 == v6 && cidr_contains(entry.network, bytes, v6)) {
      return true;
    }
  }
  return false;
}

const ProxyEndpoint* ParentProxy::for_target(std::string_view host, uint16_t port,
                                             bool secure) const {
  const std::optional<ProxyEndpoint>& parent = secure ? https : http;
  if (!parent || (source == Source::env && no_proxy.matches(host, port))) return nullptr;
  return &*parent;
}

bool parent_from_environment(const std::function<const char*(const char*)>& getenv,
                             ParentProxy* out, std::string* error) {
  ParentProxy parent;
  parent.source = ParentProxy::Source::env;
  auto read = [&](const char* lower, const char* upper, const char** name) -> std::string_view {
    for (const char* candidate : {lower, upper}) {
      const char* value = getenv(candidate);
      if (value != nullptr && !trim(value).empty()) {
        *name = candidate;
        return value;
      }
    }
    return {};
  };
  struct Variable {
    const char* lower;
    const char* upper;
    std::optional<ProxyEndpoint>* field;
  };
  for (const Variable& v : {Variable{"http_proxy", "HTTP_PROXY", &parent.http},
                            Variable{"https_proxy", "HTTPS_PROXY", &parent.https}}) {
    const char* name = nullptr;
    std::string_view value = read(v.lower, v.upper, &name);
    if (value.empty()) continue;
    ProxyEndpoint endpoint;
    std::string reason;
    if (!parse_proxy_url(value, &endpoint, &reason)) {
      *error = std::string(name) + ": " + reason;
      return false;
    }
    *v.field = std::move(endpoint);
  }
  const char* name = nullptr;
  parent.no_proxy.parse(read("no_proxy", "NO_PROXY", &name));
  *out = std::move(parent);
  return true;
}

std::string describe_parent(const ParentProxy& parent) {
  switch (parent.source) {
    case ParentProxy::Source::none:
      return "none";
    case ParentProxy::Source::url:
      return parent.http->url;
    case ParentProxy::Source::env:
      break;
  }
  auto show = [](const std::optional<ProxyEndpoint>& endpoint) {
    return endpoint ? endpoint->url : std::string("none");
  };
  std::string out = "env{http=" + show(parent.http) + ",https=" + show(parent.https) +
                    ",no_proxy=" + std::to_string(parent.no_proxy.size());
  if (parent.no_proxy.ignored() > 0) {
    out += ",no_proxy_ignored=" + std::to_string(parent.no_proxy.ignored());
  }
  return out + "}";
}

}  // namespace cutoff
