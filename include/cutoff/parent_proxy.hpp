#pragma once
// Parent proxies (SPEC §11): the proxy a route hands its traffic to instead
// of going to the destination itself, as CI runners behind a corporate proxy
// need. Plain HTTP goes to the parent in absolute form; tunnels and
// intercepted HTTPS through a CONNECT to it. Everything here is decided when
// a config is loaded: a request only asks which parent, if any, serves its
// destination.

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "cutoff/address.hpp"

namespace cutoff {

// One parent proxy, as a URL named it.
struct ProxyEndpoint {
  std::string host;  // canonical (address.hpp)
  uint16_t port = 0;
  // The whole "Proxy-Authorization: Basic ...\r\n" line for the URL's
  // user:password, or empty without credentials.
  std::string authorization;
  // "http://host:port" (without user name or password): how logs and
  // answers name the parent.
  std::string url;

  bool operator==(const ProxyEndpoint& other) const {
    return host == other.host && port == other.port && authorization == other.authorization;
  }
};

// Parses a proxy URL with curl's conventions: "http://[user[:password]@]
// host[:port]", where a missing scheme means http://, a missing port 1080,
// and the user name and password are percent-decoded. Other schemes
// (https://, socks5://) are refused: cutoff talks to its parent in plain HTTP.
bool parse_proxy_url(std::string_view text, ProxyEndpoint* out, std::string* error);

// Destinations that bypass the parent, by curl's NO_PROXY rules: entries
// separated by commas or spaces; the whole list "*" matches every host; a
// name matches itself and its subdomains (a leading dot changes nothing);
// an IP address or CIDR network matches hosts given as addresses inside it;
// and any entry may end in ":port" to match that port only.
class NoProxy {
 public:
  // An entry that cannot be read (a bad port or network) is left out and
  // counted: an odd entry in an environment shared with other tools must
  // not stop cutoff.
  void parse(std::string_view list);
  // `host` is canonical (address.hpp), as routes see it.
  bool matches(std::string_view host, uint16_t port) const;
  bool empty() const { return !all_ && entries_.empty(); }
  size_t size() const { return all_ ? 1 : entries_.size(); }
  size_t ignored() const { return ignored_; }

 private:
  struct Entry {
    std::string name;  // canonical, no leading dot; empty for a network
    Cidr network;
    uint16_t port = 0;  // 0: any port
  };
  static bool read_entry(std::string_view item, Entry* entry);
  bool all_ = false;
  std::vector<Entry> entries_;
  size_t ignored_ = 0;
};

// What a route's parent_proxy setting says.
struct ParentProxy {
  enum class Source : uint8_t {
    none,  // straight to the destination
    url,   // one parent for everything
    env,   // cutoff's own HTTP_PROXY / HTTPS_PROXY / NO_PROXY
  };
  Source source = Source::none;
  // The parent for plain HTTP, and for CONNECT and intercepted HTTPS
  // (`secure`); with Source::url the same one.
  std::optional<ProxyEndpoint> http;
  std::optional<ProxyEndpoint> https;
  NoProxy no_proxy;

  // The parent a request to host:port goes through, or null: direct.
  const ProxyEndpoint* for_target(std::string_view host, uint16_t port, bool secure) const;
};

// Fills *out from the environment as curl reads it: http_proxy, then
// HTTP_PROXY; https_proxy, then HTTPS_PROXY; no_proxy, then NO_PROXY. An
// unset or empty variable means direct. False, with *error naming the
// variable, for a value that does not parse.
bool parent_from_environment(const std::function<const char*(const char*)>& getenv,
                             ParentProxy* out, std::string* error);

// "none", "http://host:port", or
// "env{http=URL|none,https=URL|none,no_proxy=N[,no_proxy_ignored=M]}": how
// the start-up line and --check show a route's setting.
std::string describe_parent(const ParentProxy& parent);

}  // namespace cutoff
