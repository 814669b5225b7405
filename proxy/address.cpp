#include "cutoff/address.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <algorithm>
#include <charconv>
#include <cstring>

#include "cutoff/ascii.hpp"

namespace cutoff {
namespace {

std::string quoted(std::string_view text) {
  return "\"" + std::string(text) + "\"";
}

bool all_digits(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

// RFC 1123 host name: dot-separated labels of letters, digits and inner
// hyphens, each 1..63 characters, 253 in all.
bool is_hostname(std::string_view host) {
  if (host.empty() || host.size() > 253) return false;
  size_t start = 0;
  while (start <= host.size()) {
    size_t end = host.find('.', start);
    if (end == std::string_view::npos) end = host.size();
    const std::string_view label = host.substr(start, end - start);
    if (label.empty() || label.size() > 63) return false;
    if (label.front() == '-' || label.back() == '-') return false;
    for (char c : label) {
      const bool ok =
          (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-';
      if (!ok) return false;
    }
    start = end + 1;
  }
  return true;
}

// A name as a URL may carry it: dot-separated labels of 1..63 letters,
// digits, hyphens or underscores (service names in containers have them),
// 253 characters in all, lower case. The last label is not all digits: such
// a host is an IPv4 spelling that inet_aton refused, not a name.
bool is_canonical_name(std::string_view host) {
  if (host.empty() || host.size() > 253) return false;
  size_t start = 0;
  bool digits_only = true;  // so far in the current label
  for (size_t i = 0; i < host.size(); ++i) {
    char c = host[i];
    if (c == '.') {
      if (i == start || i - start > 63) return false;
      start = i + 1;
      digits_only = true;
      continue;
    }
    bool digit = c >= '0' && c <= '9';
    if (!digit && !(c >= 'a' && c <= 'z') && c != '-' && c != '_') return false;
    digits_only = digits_only && digit;
  }
  return start < host.size() && host.size() - start <= 63 && !digits_only;
}

// Only digits, hex digits, "x" and dots: what inet_aton's numbers are made
// of. (glibc's inet_aton stops at whitespace and ignores what follows.)
bool is_numeric_ipv4_spelling(std::string_view host) {
  return std::all_of(host.begin(), host.end(), [](char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || c == 'x' || c == '.';
  });
}

// Four decimal numbers 0..255 without leading zeros: the canonical form, as
// inet_ntop writes it. (Cheaper than asking inet_pton, for every request.)
bool is_dotted_quad(std::string_view host) {
  int parts = 0;
  size_t i = 0;
  while (i < host.size() && parts < 4) {
    size_t start = i;
    unsigned value = 0;
    while (i < host.size() && host[i] >= '0' && host[i] <= '9' && i - start < 3) {
      value = value * 10 + static_cast<unsigned>(host[i++] - '0');
    }
    size_t digits = i - start;
    if (digits == 0 || value > 255 || (digits > 1 && host[start] == '0')) return false;
    ++parts;
    if (i < host.size() && (host[i] != '.' || parts == 4)) return false;
    if (i < host.size()) ++i;
    if (i == host.size() && host.back() == '.') return false;
  }
  return parts == 4 && i == host.size();
}

bool fail_with(std::string* error, std::string message) {
  if (error) *error = std::move(message);
  return false;
}

}  // namespace

bool parse_host_port(std::string_view text, std::string* host, uint16_t* port, std::string* error) {
  constexpr std::string_view kForm = "expected host:port, like \"127.0.0.1:3128\"";
  if (text.empty()) return fail_with(error, "empty address; " + std::string(kForm));
  std::string_view host_part;
  std::string_view port_part;
  if (text.front() == '[') {
    const size_t close = text.find(']');
    if (close == std::string_view::npos) {
      return fail_with(error, quoted(text) + ": missing \"]\" after the IPv6 address");
    }
    host_part = text.substr(1, close - 1);
    const std::string_view rest = text.substr(close + 1);
    if (rest.empty() || rest.front() != ':') {
      return fail_with(error, quoted(text) + ": expected :port after \"]\"");
    }
    port_part = rest.substr(1);
    in6_addr addr;
    if (inet_pton(AF_INET6, std::string(host_part).c_str(), &addr) != 1) {
      return fail_with(error, quoted(text) + ": " + quoted(host_part) + " is not an IPv6 address");
    }
  } else {
    const size_t colon = text.rfind(':');
    if (colon == std::string_view::npos) {
      return fail_with(error, quoted(text) + " has no port; " + std::string(kForm));
    }
    host_part = text.substr(0, colon);
    port_part = text.substr(colon + 1);
    if (host_part.find(':') != std::string_view::npos) {
      return fail_with(error,
                       quoted(text) + ": an IPv6 address needs brackets, like \"[::1]:3128\"");
    }
    // An empty host (":3128") means every local address.
    if (!host_part.empty()) {
      const bool looks_numeric = std::all_of(host_part.begin(), host_part.end(), [](char c) {
        return (c >= '0' && c <= '9') || c == '.';
      });
      if (looks_numeric) {
        in_addr addr;
        if (inet_pton(AF_INET, std::string(host_part).c_str(), &addr) != 1) {
          return fail_with(error,
                           quoted(text) + ": " + quoted(host_part) + " is not an IPv4 address");
        }
      } else if (!is_hostname(host_part)) {
        return fail_with(error, quoted(text) + ": " + quoted(host_part) + " is not a host name");
      }
    }
  }
  if (port_part.empty()) return fail_with(error, quoted(text) + ": missing port after \":\"");
  if (!all_digits(port_part)) {
    return fail_with(error, quoted(text) + ": " + quoted(port_part) + " is not a port number");
  }
  if (port_part.size() > 5 || std::stoul(std::string(port_part)) > 65535) {
    return fail_with(
        error, quoted(text) + ": port " + std::string(port_part) + " is out of range 0..65535");
  }
  if (host) *host = std::string(host_part);
  if (port) *port = static_cast<uint16_t>(std::stoul(std::string(port_part)));
  return true;
}

bool parse_ip_port(std::string_view text, uint16_t default_port, std::string* ip, uint16_t* port,
                   std::string* error) {
  constexpr std::string_view kForm =
      "expected an IP address with an optional port, like \"10.0.0.53\", \"10.0.0.53:5353\" or "
      "\"[fd00::53]:53\"";
  if (text.empty()) return fail_with(error, "empty address; " + std::string(kForm));
  in_addr v4;
  in6_addr v6;
  std::string host(text);
  uint16_t number = default_port;
  const bool bracketed_alone = text.size() > 2 && text.front() == '[' && text.back() == ']';
  if (bracketed_alone) host = std::string(text.substr(1, text.size() - 2));
  const bool bare = inet_pton(AF_INET, host.c_str(), &v4) == 1 ||
                    (!bracketed_alone && inet_pton(AF_INET6, host.c_str(), &v6) == 1);
  if (bracketed_alone && inet_pton(AF_INET6, host.c_str(), &v6) != 1) {
    return fail_with(error, quoted(text) + ": " + quoted(host) + " is not an IPv6 address");
  }
  if (!bare && !bracketed_alone) {
    if (text.find(':') == std::string_view::npos) {
      return fail_with(error, quoted(text) + " is not an IP address; " + std::string(kForm));
    }
    // With a port: the one host:port grammar, then the host must be an
    // address and the port a real one.
    if (!parse_host_port(text, &host, &number, error)) return false;
    if (inet_pton(AF_INET, host.c_str(), &v4) != 1 && inet_pton(AF_INET6, host.c_str(), &v6) != 1) {
      return fail_with(error, quoted(text) + ": " + quoted(host) +
                                  " is not an IP address; name servers are given by address");
    }
    if (number == 0) return fail_with(error, quoted(text) + ": port 0 is out of range 1..65535");
  }
  if (ip) *ip = std::move(host);
  if (port) *port = number;
  return true;
}

bool canonical_host(std::string_view host, bool bracketed, std::string* out) {
  char text[INET6_ADDRSTRLEN + 1];
  if (bracketed) {
    in6_addr v6;
    if (host.size() >= sizeof text) return false;
    host.copy(text, host.size());
    text[host.size()] = '\0';
    if (inet_pton(AF_INET6, text, &v6) != 1) return false;
    static constexpr uint8_t kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF};
    bool mapped = std::memcmp(v6.s6_addr, kMapped, sizeof kMapped) == 0;
    inet_ntop(mapped ? AF_INET : AF_INET6, mapped ? &v6.s6_addr[12] : v6.s6_addr, text,
              sizeof text);
    out->assign(text);
    return true;
  }
  if (!host.empty() && host.back() == '.') host.remove_suffix(1);
  if (host.empty() || host.size() > 253) return false;
  // Already canonical, as most numeric hosts are: nothing to lower-case or
  // convert.
  if (is_dotted_quad(host)) {
    out->assign(host);
    return true;
  }
  out->resize(host.size());
  for (size_t i = 0; i < host.size(); ++i) (*out)[i] = ascii_lower(host[i]);
  if (!is_numeric_ipv4_spelling(*out)) return is_canonical_name(*out);
  if (is_dotted_quad(*out)) return true;
  in_addr v4;
  // inet_aton reads the other forms getaddrinfo would connect to as well;
  // those are addresses, whatever they look like.
  if (inet_aton(out->c_str(), &v4) == 0) return is_canonical_name(*out);
  inet_ntop(AF_INET, &v4, text, sizeof text);
  out->assign(text);
  return true;
}

bool is_host_name(std::string_view canonical) {
  return canonical.find(':') == std::string_view::npos && !is_dotted_quad(canonical);
}

bool parse_cidr(std::string_view text, Cidr* out, std::string* error) {
  const size_t slash = text.find('/');
  const std::string addr_text(text.substr(0, slash));
  Cidr net;
  net.v6 = addr_text.find(':') != std::string::npos;
  if (addr_text.empty() ||
      inet_pton(net.v6 ? AF_INET6 : AF_INET, addr_text.c_str(), net.addr) != 1) {
    return fail_with(error,
                     quoted(text) + ": " + quoted(addr_text) + " is not an IPv4 or IPv6 address");
  }
  const int max_prefix = net.v6 ? 128 : 32;
  net.prefix = max_prefix;
  if (slash != std::string_view::npos) {
    const std::string_view prefix_text = text.substr(slash + 1);
    if (!all_digits(prefix_text) || prefix_text.size() > 3 ||
        std::stoi(std::string(prefix_text)) > max_prefix) {
      return fail_with(
          error, quoted(text) + ": the prefix length must be 0.." + std::to_string(max_prefix));
    }
    net.prefix = std::stoi(std::string(prefix_text));
  }
  // Refuse host bits beyond the prefix: "10.0.0.1/8" usually means the
  // writer had a different network in mind, so say which one it would be.
  Cidr network = net;
  bool host_bits = false;
  const int bytes = net.v6 ? 16 : 4;
  for (int i = 0; i < bytes; ++i) {
    const int bits_in_prefix = std::clamp(net.prefix - i * 8, 0, 8);
    const uint8_t mask = static_cast<uint8_t>(0xFF00u >> bits_in_prefix);
    network.addr[i] = static_cast<uint8_t>(net.addr[i] & mask);
    if (network.addr[i] != net.addr[i]) host_bits = true;
  }
  if (host_bits) {
    char shown[INET6_ADDRSTRLEN] = {};
    inet_ntop(net.v6 ? AF_INET6 : AF_INET, network.addr, shown, sizeof shown);
    return fail_with(error, std::string(text) + " has host bits set; did you mean \"" + shown +
                                "/" + std::to_string(net.prefix) + "\"?");
  }
  if (out) *out = net;
  return true;
}

std::string cidr_to_string(const Cidr& net) {
  char text[INET6_ADDRSTRLEN] = {};
  inet_ntop(net.v6 ? AF_INET6 : AF_INET, net.addr, text, sizeof text);
  return std::string(text) + "/" + std::to_string(net.prefix);
}

bool cidr_contains(const Cidr& net, const uint8_t* addr, bool v6) {
  static constexpr uint8_t kMappedPrefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF};
  const uint8_t* candidate = addr;
  uint8_t mapped[16];
  if (net.v6 != v6) {
    if (v6) {
      // An IPv4 client on a dual-stack socket shows up as ::ffff:a.b.c.d.
      if (std::memcmp(addr, kMappedPrefix, sizeof kMappedPrefix) != 0) return false;
      candidate = addr + 12;
    } else {
      std::memcpy(mapped, kMappedPrefix, sizeof kMappedPrefix);
      std::memcpy(mapped + 12, addr, 4);
      candidate = mapped;
    }
  }
  const int whole = net.prefix / 8;
  if (std::memcmp(candidate, net.addr, static_cast<size_t>(whole)) != 0) return false;
  const int rest = net.prefix % 8;
  if (rest == 0) return true;
  const uint8_t mask = static_cast<uint8_t>(0xFF00u >> rest);
  return (candidate[whole] & mask) == (net.addr[whole] & mask);
}

bool allowed_client(const std::vector<Cidr>& allow, const sockaddr* peer) {
  const uint8_t* bytes;
  bool v6 = peer->sa_family == AF_INET6;
  if (v6) {
    bytes = reinterpret_cast<const sockaddr_in6*>(peer)->sin6_addr.s6_addr;
  } else if (peer->sa_family == AF_INET) {
    bytes = reinterpret_cast<const uint8_t*>(&reinterpret_cast<const sockaddr_in*>(peer)->sin_addr);
  } else {
    return false;
  }
  return std::any_of(allow.begin(), allow.end(),
                     [&](const Cidr& net) { return cidr_contains(net, bytes, v6); });
}

}  // namespace cutoff
