#pragma once
// The configuration: what one TOML file (or the built-in defaults) says.
//
// Loading may throw nothing: every problem becomes a ConfigError naming
// file:line:column, and a config with any error is refused whole.

#include <cstdint>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "cutoff/address.hpp"
#include "cutoff/duration.hpp"
#include "cutoff/min_rate.hpp"
#include "cutoff/parent_proxy.hpp"

namespace cutoff {

enum class Teardown { reset, graceful };
enum class RouteAction { forward, deny };
enum class LogFormat { text, json };
// What a CONNECT route does with TLS (SPEC §10): pass it through, reading
// only the handshake's plaintext, or terminate it with a minted certificate
// and proxy the requests inside as plain HTTP.
enum class TlsMode { tunnel, intercept };

struct TcpKeepalive {
  bool enabled = true;
  Duration idle = Duration::seconds(30);
  Duration interval = Duration::seconds(10);
  int count = 3;
};

// Everything a route may set; [defaults] fills every field, and each
// [[route]] starts from a copy of [defaults] and overrides what it names.
struct RouteSettings {
  Duration dns_timeout = Duration::seconds(5);
  Duration connect_timeout = Duration::seconds(5);
  Duration response_header_timeout = Duration::seconds(30);
  Duration idle_timeout = Duration::seconds(60);
  Duration request_timeout = Duration::off();
  // While a body moves: ends a drip that idle_timeout never would (every
  // byte restarts it) without capping a long download as request_timeout
  // would.
  MinRate min_rate = MinRate::of(1024, Duration::seconds(30));  // may be off
  Duration upstream_keepalive_timeout = Duration::seconds(30);
  Duration tunnel_idle_timeout = Duration::seconds(300);
  Duration tunnel_max_duration = Duration::off();
  // In a CONNECT tunnel: from the client's TLS ClientHello to the upstream's
  // first answer to it.
  // With tls = "intercept", each of cutoff's own handshakes as well: the
  // client's, and the upstream's.
  Duration tls_handshake_timeout = Duration::seconds(10);
  TlsMode tls = TlsMode::tunnel;
  // Intercepted requests: the upstream's certificate is checked against the
  // system store and [tls] upstream_ca, and its name against the host.
  bool tls_verify_upstream = true;
  Teardown teardown = Teardown::reset;
  RouteAction action = RouteAction::forward;
  TcpKeepalive tcp_keepalive;
  Duration tcp_user_timeout = Duration::seconds(30);  // may be off
  // Idle pooled connections kept per upstream host:port; the oldest goes
  // first when another is parked.
  int max_idle_per_upstream = 64;
  // Where requests go instead of their destination (SPEC §11); Source::none:
  // straight there.
  ParentProxy parent_proxy;
};

// An empty field matches anything.
struct RouteMatch {
  // Canonical (address.hpp). "" or "*": any host; "*.example.com": that
  // domain's subdomains (not example.com itself); otherwise an exact name or
  // address.
  std::string host;
  std::vector<uint16_t> ports;
  std::vector<std::string> methods;  // upper-case tokens, e.g. "GET", "CONNECT"
  std::string path_prefix;           // normalised (uri_path.hpp); plain HTTP only
  // Checked after DNS on every upstream address before it is tried.
  std::vector<Cidr> addresses;
};

struct Route {
  std::string name;
  RouteMatch match;
  RouteSettings settings;
};

struct ListenConfig {
  std::string address = "127.0.0.1:3128";
  Duration request_header_timeout = Duration::seconds(10);
  Duration client_keepalive_timeout = Duration::seconds(60);
  uint32_t max_client_connections = 10000;
  std::vector<Cidr> allow_clients;      // defaults: loopback and private ranges
  std::vector<uint16_t> connect_ports;  // default {443}
  bool connect_any_port = false;        // connect_ports = ["*"]
  bool via = true;                      // add "Via: 1.1 cutoff"
  bool server_timing = false;           // add Server-Timing (dns, connect, first byte)
  // Base64 "user:password" tokens; when any, clients must send one as
  // Proxy-Authorization: Basic (407 otherwise).
  std::vector<std::string> proxy_auth;
};

struct AdminConfig {
  std::string address = "127.0.0.1:9901";  // "off" disables
  // Who may connect, checked at accept under the config of the moment;
  // others are closed before anything is read or sent. Defaults as
  // listen.allow_clients: loopback and private ranges.
  std::vector<Cidr> allow_clients;
};

struct AccessLogConfig {
  LogFormat format = LogFormat::text;
  std::string path = "-";  // "-" is stdout
};

// A name server as [dns] servers names it.
struct DnsServer {
  std::string ip;  // an IPv4 or IPv6 address, without brackets
  uint16_t port = 53;
  bool operator==(const DnsServer&) const = default;
};

struct DnsConfig {
  // Empty: the name servers of /etc/resolv.conf. Search domains, ndots and
  // /etc/hosts are the system's either way.
  std::vector<DnsServer> servers;
};

// [tls]: the CA that interception mints certificates from, and the extra
// CAs upstream certificates may chain to. Paths as given (relative ones to
// the working directory); the files are read when the config is applied.
struct TlsConfig {
  std::string ca_cert;
  std::string ca_key;
  std::string upstream_ca;
};

// [tests]: what cutoff keeps about the test suites it serves (SPEC §12), for
// the admin's /tests and the --report file. Memory is bounded by the two
// counts: the test quiet for longest is forgotten first, and within a test
// its oldest exchange that went well.
struct TestsConfig {
  uint32_t max_tests = 1000;
  uint32_t max_exchanges_per_test = 100;
  // /metrics counts exchanges per test id as well. Off by default: every id
  // is a new series, and a suite has thousands.
  bool metrics_label = false;
};

struct Config {
  unsigned workers = 0;  // 0: one per CPU
  Duration drain_timeout = Duration::seconds(30);
  Duration linger_timeout = Duration::seconds(2);
  std::string log_level = "info";  // trace, debug, info, warn, error, critical, off
  // Request targets in the access log and /connections keep their query
  // strings (query_redaction.hpp); off by default, since queries carry
  // tokens and signatures.
  bool log_query = false;
  ListenConfig listen;
  AdminConfig admin;
  AccessLogConfig access_log;
  DnsConfig dns;
  TlsConfig tls;
  TestsConfig tests;
  RouteSettings defaults;
  std::vector<Route> routes;  // file order; the first match wins
  // Whether any route matches on paths or addresses: requests then pay for
  // path normalisation and per-address route checks, and only then.
  bool routes_match_paths = false;
  bool routes_match_addresses = false;
  // Whether [defaults] or any route says tls = "intercept".
  bool intercepts = false;
  // Some route has a parent proxy: requests are checked for cutoff's own
  // Via mark (a parent that leads back here).
  bool uses_parent_proxy = false;
};

struct ConfigError {
  std::string file;
  int line = 0;    // 1-based; 0 when unknown
  int column = 0;  // 1-based; 0 when unknown
  std::string message;
  // "file:line:column: message"
  std::string to_string() const;
};

using ConfigResult = std::variant<Config, std::vector<ConfigError>>;

// The built-in defaults, as used when no file is given.
Config default_config();

// Parses TOML text; `source` names it in errors (usually the file path).
ConfigResult parse_config(std::string_view text, std::string_view source);

// Reads and parses a file; an unreadable file is one error.
ConfigResult load_config_file(const std::string& path);

}  // namespace cutoff
