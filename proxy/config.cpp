#include "cutoff/config.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <toml++/toml.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <limits>
#include <map>
#include <span>
#include <utility>

#include "cutoff/ascii.hpp"
#include "cutoff/base64.hpp"
#include "cutoff/parent_proxy.hpp"
#include "cutoff/uri_path.hpp"

namespace cutoff {
namespace {

using KeyList = std::span<const std::string_view>;

// The key names of every table. They are the contract of SPEC 7a; the
// unknown-key check and its "did you mean" suggestions come from these lists.
constexpr std::string_view kTopKeys[] = {
    "workers", "drain_timeout", "linger_timeout", "log_level", "log_query",
    "listen",  "admin",         "access_log",     "dns",       "tls",
    "tests",   "defaults",      "route"};
constexpr std::string_view kTopScalarKeys[] = {"workers", "drain_timeout", "linger_timeout",
                                               "log_level", "log_query"};
constexpr std::string_view kListenKeys[] = {"address",
                                            "request_header_timeout",
                                            "client_keepalive_timeout",
                                            "max_client_connections",
                                            "allow_clients",
                                            "connect_ports",
                                            "via",
                                            "server_timing",
                                            "proxy_auth"};
constexpr std::string_view kAdminKeys[] = {"address", "allow_clients"};
constexpr std::string_view kAccessLogKeys[] = {"format", "path"};
constexpr std::string_view kDnsKeys[] = {"servers"};
constexpr std::string_view kTlsKeys[] = {"ca_cert", "ca_key", "upstream_ca"};
constexpr std::string_view kTestsKeys[] = {"max_tests", "max_exchanges_per_test", "metrics_label"};
constexpr std::string_view kSettingsKeys[] = {"dns_timeout",
                                              "connect_timeout",
                                              "response_header_timeout",
                                              "idle_timeout",
                                              "request_timeout",
                                              "min_rate",
                                              "upstream_keepalive_timeout",
                                              "tunnel_idle_timeout",
                                              "tunnel_max_duration",
                                              "tls_handshake_timeout",
                                              "tls",
                                              "tls_verify_upstream",
                                              "teardown",
                                              "action",
                                              "tcp_keepalive",
                                              "tcp_user_timeout",
                                              "max_idle_per_upstream",
                                              "parent_proxy"};
constexpr std::string_view kRouteOwnKeys[] = {"name", "match"};
constexpr std::string_view kMatchKeys[] = {"host", "port", "method", "path_prefix", "address"};
constexpr std::string_view kKeepaliveKeys[] = {"idle", "interval", "count"};
constexpr std::string_view kLogLevels[] = {"trace", "debug",    "info", "warn",
                                           "error", "critical", "off"};

// Where a key would have been valid, for the hint on a misplaced key (the
// classic TOML slip: `workers = 2` written below `[listen]` lands in listen).
struct KeyHome {
  KeyList keys;
  std::string_view place;
};
constexpr KeyHome kKeyHomes[] = {
    {kTopScalarKeys, "at the top level, above the first [table] header"},
    {kListenKeys, "in [listen]"},
    {kAccessLogKeys, "in [access_log]"},
    {kDnsKeys, "in [dns]"},
    {kTlsKeys, "in [tls]"},
    {kTestsKeys, "in [tests]"},
    {kSettingsKeys, "in [defaults] or a [[route]]"},
    {kRouteOwnKeys, "in a [[route]]"},
    {kMatchKeys, "in a route's match table, like match = { host = \"example.com\" }"},
    {kKeepaliveKeys, "in tcp_keepalive, like tcp_keepalive = { idle = \"30s\" }"},
};

constexpr const char* kDefaultAllowClients[] = {"127.0.0.0/8", "::1/128", "10.0.0.0/8",
                                                "172.16.0.0/12", "192.168.0.0/16"};

// Linux takes TCP keepalive idle and interval in whole seconds, 1..32767.
constexpr uint64_t kMaxKeepaliveSeconds = 32767;
// TCP_USER_TIMEOUT takes milliseconds in an int: at most about 596h.
constexpr uint64_t kMaxUserTimeoutMs = std::numeric_limits<int>::max();
constexpr unsigned kMaxWorkers = 1024;

bool contains(KeyList list, std::string_view key) {
  return std::find(list.begin(), list.end(), key) != list.end();
}

std::string quoted(std::string_view text) {
  return "\"" + std::string(text) + "\"";
}

// Optimal string alignment distance: Levenshtein plus adjacent swaps, so
// "conenct_timeout" and "tiemout" count as the one slip they are.
size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<std::vector<size_t>> d(a.size() + 1, std::vector<size_t>(b.size() + 1));
  for (size_t i = 0; i <= a.size(); ++i) d[i][0] = i;
  for (size_t j = 0; j <= b.size(); ++j) d[0][j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
      d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1]) {
        d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
      }
    }
  }
  return d[a.size()][b.size()];
}

std::string_view type_name(toml::node_type type) {
  switch (type) {
    case toml::node_type::table:
      return "a table";
    case toml::node_type::array:
      return "an array";
    case toml::node_type::string:
      return "a string";
    case toml::node_type::integer:
      return "an integer";
    case toml::node_type::floating_point:
      return "a float";
    case toml::node_type::boolean:
      return "a boolean";
    case toml::node_type::date:
      return "a date";
    case toml::node_type::time:
      return "a time";
    case toml::node_type::date_time:
      return "a date-time";
    case toml::node_type::none:
      break;
  }
  return "nothing";
}

std::string to_upper(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
  }
  return out;
}

// Walks a parsed TOML document into a Config, collecting every problem
// instead of stopping at the first, so one --check run lists them all.
class Loader {
 public:
  explicit Loader(std::string_view source) : source_(source) {}

  void load(const toml::table& root, Config* config);
  std::vector<ConfigError> take_errors() { return std::move(errors_); }

 private:
  void error(const toml::source_region& where, std::string message) {
    errors_.push_back(ConfigError{source_, static_cast<int>(where.begin.line),
                                  static_cast<int>(where.begin.column), std::move(message)});
  }
  // `known` and `also_known` are the keys valid where `key` was found.
  void unknown_key(const toml::key& key, std::string_view where, KeyList known,
                   KeyList also_known = {});
  void wrong_type(const toml::node& node, const std::string& path, std::string_view expected) {
    error(node.source(), path + ": expected " + std::string(expected) + ", got " +
                             std::string(type_name(node.type())));
  }

  bool get_duration(const toml::node& node, const std::string& path, bool allow_off, Duration* out);
  bool get_min_rate(const toml::node& node, const std::string& path, MinRate* out);
  bool get_integer(const toml::node& node, const std::string& path, int64_t lo, int64_t hi,
                   int64_t* out);
  bool get_string(const toml::node& node, const std::string& path, std::string* out);
  bool get_choice(const toml::node& node, const std::string& path, KeyList choices,
                  std::string* out);
  const toml::table* get_table(const toml::node& node, const std::string& path);
  bool get_address(const toml::node& node, const std::string& path, bool allow_off,
                   std::string* out);

  void load_listen(const toml::node& node, ListenConfig* listen);
  void load_proxy_auth(const toml::node& node, ListenConfig* listen);
  void load_allow_clients(const toml::node& node, const std::string& path, std::vector<Cidr>* out);
  bool load_cidr_list(const toml::node& node, const std::string& path, std::vector<Cidr>* out);
  void load_connect_ports(const toml::node& node, ListenConfig* listen);
  void load_admin(const toml::node& node, AdminConfig* admin);
  void load_access_log(const toml::node& node, AccessLogConfig* log);
  void load_dns(const toml::node& node, DnsConfig* dns);
  void load_tls(const toml::node& node, TlsConfig* tls);
  void load_tests(const toml::node& node, TestsConfig* tests);
  void check_interception(const toml::table& root, const Config& config);
  void load_parent_proxy(const toml::node& node, const std::string& path, ParentProxy* parent);
  void load_defaults(const toml::node& node, RouteSettings* settings);
  // Returns false when `key` is not a RouteSettings key.
  bool load_setting(std::string_view key, const toml::node& node, const std::string& prefix,
                    RouteSettings* settings);
  void load_keepalive(const toml::node& node, const std::string& path, TcpKeepalive* keepalive);
  void load_routes(const toml::node& node, const RouteSettings& defaults,
                   std::vector<Route>* routes);
  void load_route(const toml::table& table, const std::string& path, Route* route);
  void load_match(const toml::node& node, const std::string& path, RouteMatch* match);
  void load_match_host(const toml::node& node, const std::string& path, RouteMatch* match);
  void load_port_list(const toml::node& node, const std::string& path,
                      std::vector<uint16_t>* ports);
  void load_method_list(const toml::node& node, const std::string& path,
                        std::vector<std::string>* methods);

  std::string source_;
  std::vector<ConfigError> errors_;
};

void Loader::unknown_key(const toml::key& key, std::string_view where, KeyList known,
                         KeyList also_known) {
  std::string message = "unknown key " + quoted(key.str()) + " " + std::string(where);
  std::string_view best;
  size_t best_distance = 3;  // suggest only within an edit distance of 2
  for (KeyList list : {known, also_known}) {
    for (std::string_view candidate : list) {
      const size_t distance = edit_distance(key.str(), candidate);
      if (distance < best_distance) {
        best_distance = distance;
        best = candidate;
      }
    }
  }
  if (!best.empty()) {
    message += "; did you mean " + quoted(best) + "?";
  } else {
    for (const KeyHome& home : kKeyHomes) {
      if (contains(home.keys, key.str())) {
        message += "; " + quoted(key.str()) + " belongs " + std::string(home.place);
        break;
      }
    }
  }
  error(key.source(), std::move(message));
}

bool Loader::get_duration(const toml::node& node, const std::string& path, bool allow_off,
                          Duration* out) {
  const auto* value = node.as_string();
  if (!value) {
    wrong_type(
        node, path,
        allow_off ? "a duration string like \"5s\", or \"off\"" : "a duration string like \"5s\"");
    return false;
  }
  std::string reason;
  const std::optional<Duration> parsed = parse_duration(value->get(), allow_off, &reason);
  if (!parsed) {
    error(node.source(), path + ": " + reason);
    return false;
  }
  *out = *parsed;
  return true;
}

bool Loader::get_min_rate(const toml::node& node, const std::string& path, MinRate* out) {
  const auto* value = node.as_string();
  if (!value) {
    wrong_type(node, path, "a rate string like \"1KiB/30s\", or \"off\"");
    return false;
  }
  std::string reason;
  const std::optional<MinRate> parsed = parse_min_rate(value->get(), &reason);
  if (!parsed) {
    error(node.source(), path + ": " + reason);
    return false;
  }
  *out = *parsed;
  return true;
}

bool Loader::get_integer(const toml::node& node, const std::string& path, int64_t lo, int64_t hi,
                         int64_t* out) {
  const auto* value = node.as_integer();
  if (!value) {
    wrong_type(node, path, "an integer");
    return false;
  }
  const int64_t v = value->get();
  if (v < lo || v > hi) {
    error(node.source(), path + ": " + std::to_string(v) + " is out of range " +
                             std::to_string(lo) + ".." + std::to_string(hi));
    return false;
  }
  *out = v;
  return true;
}

bool Loader::get_string(const toml::node& node, const std::string& path, std::string* out) {
  const auto* value = node.as_string();
  if (!value) {
    wrong_type(node, path, "a string");
    return false;
  }
  *out = value->get();
  return true;
}

bool Loader::get_choice(const toml::node& node, const std::string& path, KeyList choices,
                        std::string* out) {
  std::string list;
  for (std::string_view choice : choices) {
    if (!list.empty()) list += ", ";
    list += quoted(choice);
  }
  const auto* value = node.as_string();
  if (!value) {
    wrong_type(node, path, "one of " + list);
    return false;
  }
  if (!contains(choices, value->get())) {
    error(node.source(), path + ": " + quoted(value->get()) + " is not one of " + list);
    return false;
  }
  *out = value->get();
  return true;
}

const toml::table* Loader::get_table(const toml::node& node, const std::string& path) {
  const auto* table = node.as_table();
  if (!table) wrong_type(node, path, "a table");
  return table;
}

bool Loader::get_address(const toml::node& node, const std::string& path, bool allow_off,
                         std::string* out) {
  std::string text;
  if (!get_string(node, path, &text)) return false;
  if (allow_off && text == "off") {
    *out = text;
    return true;
  }
  std::string host;
  uint16_t port = 0;
  std::string reason;
  if (!parse_host_port(text, &host, &port, &reason)) {
    error(node.source(), path + ": " + reason);
    return false;
  }
  *out = text;
  return true;
}

void Loader::load(const toml::table& root, Config* config) {
  for (auto&& [key, node] : root) {
    const std::string name(key.str());
    if (name == "workers") {
      int64_t v = 0;
      if (get_integer(node, name, 1, kMaxWorkers, &v)) config->workers = static_cast<unsigned>(v);
    } else if (name == "drain_timeout") {
      get_duration(node, name, false, &config->drain_timeout);
    } else if (name == "linger_timeout") {
      get_duration(node, name, false, &config->linger_timeout);
    } else if (name == "log_level") {
      get_choice(node, name, kLogLevels, &config->log_level);
    } else if (name == "log_query") {
      if (const auto* flag = node.as_boolean()) {
        config->log_query = flag->get();
      } else {
        wrong_type(node, name, "true or false");
      }
    } else if (name == "listen") {
      load_listen(node, &config->listen);
    } else if (name == "admin") {
      load_admin(node, &config->admin);
    } else if (name == "access_log") {
      load_access_log(node, &config->access_log);
    } else if (name == "dns") {
      load_dns(node, &config->dns);
    } else if (name == "tls") {
      load_tls(node, &config->tls);
    } else if (name == "tests") {
      load_tests(node, &config->tests);
    } else if (name == "defaults" || name == "route") {
      // Below, in order: every route starts from the final [defaults],
      // wherever [defaults] sits in the file.
    } else {
      unknown_key(key, "at the top level", kTopKeys);
    }
  }
  if (const toml::node* defaults = root.get("defaults"))
    load_defaults(*defaults, &config->defaults);
  if (const toml::node* routes = root.get("route")) {
    load_routes(*routes, config->defaults, &config->routes);
  }
  for (const Route& route : config->routes) {
    config->routes_match_paths |= !route.match.path_prefix.empty();
    config->routes_match_addresses |= !route.match.addresses.empty();
    config->intercepts |= route.settings.tls == TlsMode::intercept;
    config->uses_parent_proxy |= route.settings.parent_proxy.source != ParentProxy::Source::none;
  }
  config->intercepts |= config->defaults.tls == TlsMode::intercept;
  config->uses_parent_proxy |= config->defaults.parent_proxy.source != ParentProxy::Source::none;
  check_interception(root, *config);
}

void Loader::load_tls(const toml::node& node, TlsConfig* tls) {
  const toml::table* table = get_table(node, "tls");
  if (!table) return;
  for (auto&& [key, value] : *table) {
    std::string* field = key.str() == "ca_cert"       ? &tls->ca_cert
                         : key.str() == "ca_key"      ? &tls->ca_key
                         : key.str() == "upstream_ca" ? &tls->upstream_ca
                                                      : nullptr;
    if (field == nullptr) {
      unknown_key(key, "in [tls]", kTlsKeys);
      continue;
    }
    const std::string path = "tls." + std::string(key.str());
    if (!get_string(value, path, field)) continue;
    if (field->empty()) error(value.source(), path + ": empty path");
  }
}

// Interception needs a CA, and a CA needs both halves. Said where the
// operator asked for interception, so the fix is obvious.
void Loader::check_interception(const toml::table& root, const Config& config) {
  const TlsConfig& tls = config.tls;
  if (tls.ca_cert.empty() != tls.ca_key.empty()) {
    const toml::node* given =
        root.at_path(tls.ca_cert.empty() ? "tls.ca_key" : "tls.ca_cert").node();
    error(given ? given->source() : root.source(),
          "tls: ca_cert and ca_key go together: name both the CA certificate and its key");
  }
  if (!config.intercepts || !tls.ca_cert.empty()) return;
  auto refuse = [&](const toml::node* where, const std::string& who) {
    error(where ? where->source() : root.source(),
          who +
              ": tls = \"intercept\" needs a CA to mint certificates from: set [tls] ca_cert "
              "and ca_key (`cutoff ca init DIR` makes one)");
  };
  if (config.defaults.tls == TlsMode::intercept)
    refuse(root.at_path("defaults.tls").node(), "defaults");
  const toml::array* routes = root.get_as<toml::array>("route");
  for (size_t i = 0; routes && i < config.routes.size() && i < routes->size(); ++i) {
    const toml::table* table = routes->get(i)->as_table();
    const toml::node* own = table ? table->get("tls") : nullptr;
    if (own && config.routes[i].settings.tls == TlsMode::intercept) {
      refuse(own, "route " + quoted(config.routes[i].name));
    }
  }
}

// The Basic credentials clients must send in Proxy-Authorization, kept as
// the base64 token the header carries so a request is checked by comparison.
void Loader::load_proxy_auth(const toml::node& node, ListenConfig* listen) {
  const toml::array* array = node.as_array();
  if (array == nullptr) {
    wrong_type(node, "listen.proxy_auth", "a list of \"user:password\" strings");
    return;
  }
  for (const toml::node& element : *array) {
    std::string credentials;
    if (!get_string(element, "listen.proxy_auth", &credentials)) continue;
    size_t colon = credentials.find(':');
    if (colon == 0 || colon == std::string::npos) {
      error(element.source(), "listen.proxy_auth: expected \"user:password\"");
      continue;
    }
    listen->proxy_auth.push_back(base64_encode(credentials));
  }
}

void Loader::load_listen(const toml::node& node, ListenConfig* listen) {
  const toml::table* table = get_table(node, "listen");
  if (!table) return;
  for (auto&& [key, value] : *table) {
    const std::string name(key.str());
    const std::string path = "listen." + name;
    if (name == "address") {
      get_address(value, path, false, &listen->address);
    } else if (name == "request_header_timeout") {
      get_duration(value, path, false, &listen->request_header_timeout);
    } else if (name == "client_keepalive_timeout") {
      get_duration(value, path, false, &listen->client_keepalive_timeout);
    } else if (name == "max_client_connections") {
      int64_t v = 0;
      if (get_integer(value, path, 1, std::numeric_limits<uint32_t>::max(), &v)) {
        listen->max_client_connections = static_cast<uint32_t>(v);
      }
    } else if (name == "allow_clients") {
      load_allow_clients(value, path, &listen->allow_clients);
    } else if (name == "connect_ports") {
      load_connect_ports(value, listen);
    } else if (name == "via") {
      if (const auto* flag = value.as_boolean()) {
        listen->via = flag->get();
      } else {
        wrong_type(value, path, "true or false");
      }
    } else if (name == "server_timing") {
      if (const auto* flag = value.as_boolean()) {
        listen->server_timing = flag->get();
      } else {
        wrong_type(value, path, "true or false");
      }
    } else if (name == "proxy_auth") {
      load_proxy_auth(value, listen);
    } else {
      unknown_key(key, "in [listen]", kListenKeys);
    }
  }
}

// listen.allow_clients or admin.allow_clients.
void Loader::load_allow_clients(const toml::node& node, const std::string& path,
                                std::vector<Cidr>* out) {
  const toml::array* array = node.as_array();
  if (array && array->empty()) {
    // An empty allowlist would refuse every client: almost surely a mistake.
    error(node.source(), path +
                             ": an empty list would refuse every client; to allow any client "
                             "write [\"0.0.0.0/0\", \"::/0\"]");
    return;
  }
  std::vector<Cidr> nets;
  if (load_cidr_list(node, path, &nets)) *out = std::move(nets);
}

// An array of CIDR strings; false (errors reported) when it is not one.
bool Loader::load_cidr_list(const toml::node& node, const std::string& path,
                            std::vector<Cidr>* out) {
  const toml::array* array = node.as_array();
  if (!array) {
    wrong_type(node, path, "an array of CIDR strings like [\"10.0.0.0/8\"]");
    return false;
  }
  size_t errors_before = errors_.size();
  for (const toml::node& element : *array) {
    std::string text;
    if (!get_string(element, path + " element", &text)) continue;
    Cidr net;
    std::string reason;
    if (!parse_cidr(text, &net, &reason)) {
      error(element.source(), path + ": " + reason);
      continue;
    }
    out->push_back(net);
  }
  return errors_.size() == errors_before;
}

void Loader::load_connect_ports(const toml::node& node, ListenConfig* listen) {
  const std::string path = "listen.connect_ports";
  const toml::array* array = node.as_array();
  if (!array) {
    wrong_type(node, path, "an array of ports like [443], or [\"*\"]");
    return;
  }
  std::vector<uint16_t> ports;
  bool any = false;
  for (const toml::node& element : *array) {
    if (const auto* text = element.as_string()) {
      if (text->get() == "*" && array->size() == 1) {
        any = true;
      } else if (text->get() == "*") {
        error(element.source(), path + ": \"*\" must be the only element: connect_ports = [\"*\"]");
      } else {
        error(element.source(),
              path + ": expected a port number 1..65535 or \"*\", got " + quoted(text->get()));
      }
      continue;
    }
    int64_t port = 0;
    if (get_integer(element, path + " element", 1, 65535, &port)) {
      ports.push_back(static_cast<uint16_t>(port));
    }
  }
  listen->connect_ports = std::move(ports);
  listen->connect_any_port = any;
}

void Loader::load_admin(const toml::node& node, AdminConfig* admin) {
  const toml::table* table = get_table(node, "admin");
  if (!table) return;
  for (auto&& [key, value] : *table) {
    if (key.str() == "address") {
      get_address(value, "admin.address", true, &admin->address);
    } else if (key.str() == "allow_clients") {
      load_allow_clients(value, "admin.allow_clients", &admin->allow_clients);
    } else {
      unknown_key(key, "in [admin]", kAdminKeys);
    }
  }
}

void Loader::load_access_log(const toml::node& node, AccessLogConfig* log) {
  const toml::table* table = get_table(node, "access_log");
  if (!table) return;
  for (auto&& [key, value] : *table) {
    if (key.str() == "format") {
      std::string format;
      static constexpr std::string_view kFormats[] = {"text", "json"};
      if (get_choice(value, "access_log.format", kFormats, &format)) {
        log->format = format == "json" ? LogFormat::json : LogFormat::text;
      }
    } else if (key.str() == "path") {
      std::string path;
      if (!get_string(value, "access_log.path", &path)) continue;
      if (path.empty()) {
        error(value.source(), "access_log.path: empty path; use \"-\" for stdout");
        continue;
      }
      log->path = path;
    } else {
      unknown_key(key, "in [access_log]", kAccessLogKeys);
    }
  }
}

// What the two counts allow is the operator's call: an exchange kept takes
// about 180 bytes with a short target and at most about 1.7 KiB (its target
// and failure sentence cut at their longest), so the defaults hold 100,000
// exchanges in 15 to 170 MiB. The upper limits only catch a count no suite
// needs.
void Loader::load_tests(const toml::node& node, TestsConfig* tests) {
  const toml::table* table = get_table(node, "tests");
  if (!table) return;
  for (auto&& [key, value] : *table) {
    int64_t v = 0;
    if (key.str() == "max_tests") {
      if (get_integer(value, "tests.max_tests", 1, 1'000'000, &v)) {
        tests->max_tests = static_cast<uint32_t>(v);
      }
    } else if (key.str() == "max_exchanges_per_test") {
      if (get_integer(value, "tests.max_exchanges_per_test", 1, 100'000, &v)) {
        tests->max_exchanges_per_test = static_cast<uint32_t>(v);
      }
    } else if (key.str() == "metrics_label") {
      if (const auto* flag = value.as_boolean()) {
        tests->metrics_label = flag->get();
      } else {
        wrong_type(value, "tests.metrics_label", "true or false");
      }
    } else {
      unknown_key(key, "in [tests]", kTestsKeys);
    }
  }
}

void Loader::load_dns(const toml::node& node, DnsConfig* dns) {
  const toml::table* table = get_table(node, "dns");
  if (!table) return;
  for (auto&& [key, value] : *table) {
    if (key.str() != "servers") {
      unknown_key(key, "in [dns]", kDnsKeys);
      continue;
    }
    const std::string path = "dns.servers";
    const toml::array* array = value.as_array();
    if (!array) {
      wrong_type(value, path, "an array of addresses like [\"10.0.0.53\", \"[fd00::53]:5353\"]");
      continue;
    }
    if (array->empty()) {
      error(value.source(), path +
                                ": empty list; leave servers out to use the name servers of "
                                "/etc/resolv.conf");
      continue;
    }
    std::vector<DnsServer> servers;
    for (const toml::node& element : *array) {
      std::string text;
      if (!get_string(element, path + " element", &text)) continue;
      DnsServer server;
      std::string reason;
      if (!parse_ip_port(text, 53, &server.ip, &server.port, &reason)) {
        error(element.source(), path + ": " + reason);
        continue;
      }
      servers.push_back(std::move(server));
    }
    dns->servers = std::move(servers);
  }
}

void Loader::load_defaults(const toml::node& node, RouteSettings* settings) {
  const toml::table* table = get_table(node, "defaults");
  if (!table) return;
  for (auto&& [key, value] : *table) {
    if (!load_setting(key.str(), value, "defaults.", settings)) {
      unknown_key(key, "in [defaults]", kSettingsKeys);
    }
  }
}

bool Loader::load_setting(std::string_view key, const toml::node& node, const std::string& prefix,
                          RouteSettings* settings) {
  struct DurationKey {
    std::string_view name;
    Duration RouteSettings::*field;
    bool allow_off;
  };
  // Only these three may be "off" (SPEC 4): every other wait needs a deadline.
  static constexpr DurationKey kDurations[] = {
      {"dns_timeout", &RouteSettings::dns_timeout, false},
      {"connect_timeout", &RouteSettings::connect_timeout, false},
      {"response_header_timeout", &RouteSettings::response_header_timeout, false},
      {"idle_timeout", &RouteSettings::idle_timeout, false},
      {"request_timeout", &RouteSettings::request_timeout, true},
      {"upstream_keepalive_timeout", &RouteSettings::upstream_keepalive_timeout, false},
      {"tunnel_idle_timeout", &RouteSettings::tunnel_idle_timeout, false},
      {"tunnel_max_duration", &RouteSettings::tunnel_max_duration, true},
      {"tls_handshake_timeout", &RouteSettings::tls_handshake_timeout, false},
      {"tcp_user_timeout", &RouteSettings::tcp_user_timeout, true},
  };
  const std::string path = prefix + std::string(key);
  for (const DurationKey& d : kDurations) {
    if (d.name != key) continue;
    Duration value;
    if (!get_duration(node, path, d.allow_off, &value)) return true;
    if (key == "tcp_user_timeout" && !value.is_off() && value.ms() > kMaxUserTimeoutMs) {
      error(node.source(), path + ": " + quoted(value.to_string()) +
                               " is longer than the kernel takes for TCP_USER_TIMEOUT (at most " +
                               std::to_string(kMaxUserTimeoutMs) + "ms, about 596h)");
      return true;
    }
    settings->*d.field = value;
    return true;
  }
  if (key == "min_rate") {
    get_min_rate(node, path, &settings->min_rate);
    return true;
  }
  if (key == "teardown") {
    std::string v;
    static constexpr std::string_view kTeardowns[] = {"reset", "graceful"};
    if (get_choice(node, path, kTeardowns, &v)) {
      settings->teardown = v == "graceful" ? Teardown::graceful : Teardown::reset;
    }
    return true;
  }
  if (key == "tls") {
    std::string v;
    static constexpr std::string_view kModes[] = {"tunnel", "intercept"};
    if (get_choice(node, path, kModes, &v)) {
      settings->tls = v == "intercept" ? TlsMode::intercept : TlsMode::tunnel;
    }
    return true;
  }
  if (key == "tls_verify_upstream") {
    if (const auto* flag = node.as_boolean()) {
      settings->tls_verify_upstream = flag->get();
    } else {
      wrong_type(node, path, "true or false");
    }
    return true;
  }
  if (key == "action") {
    std::string v;
    static constexpr std::string_view kActions[] = {"forward", "deny"};
    if (get_choice(node, path, kActions, &v)) {
      settings->action = v == "deny" ? RouteAction::deny : RouteAction::forward;
    }
    return true;
  }
  if (key == "tcp_keepalive") {
    load_keepalive(node, path, &settings->tcp_keepalive);
    return true;
  }
  if (key == "parent_proxy") {
    load_parent_proxy(node, path, &settings->parent_proxy);
    return true;
  }
  if (key == "max_idle_per_upstream") {
    int64_t v = 0;
    if (get_integer(node, path, 0, 100000, &v))
      settings->max_idle_per_upstream = static_cast<int>(v);
    return true;
  }
  return false;
}

// "none", "env" (read now, from cutoff's own environment) or a proxy URL.
void Loader::load_parent_proxy(const toml::node& node, const std::string& path,
                               ParentProxy* parent) {
  std::string text;
  if (!get_string(node, path, &text)) return;
  std::string reason;
  if (text == "none") {
    *parent = ParentProxy{};
  } else if (text == "env") {
    if (!parent_from_environment(::getenv, parent, &reason)) {
      error(node.source(), path + ": \"env\" takes cutoff's environment, where " + reason);
    }
  } else {
    ProxyEndpoint endpoint;
    if (!parse_proxy_url(text, &endpoint, &reason)) {
      error(node.source(), path + ": " + reason + " (or \"none\", or \"env\")");
      return;
    }
    parent->source = ParentProxy::Source::url;
    parent->http = endpoint;
    parent->https = std::move(endpoint);
  }
}

void Loader::load_keepalive(const toml::node& node, const std::string& path,
                            TcpKeepalive* keepalive) {
  constexpr std::string_view kExpected =
      "\"off\" or a table like { idle = \"30s\", interval = \"10s\", count = 3 }";
  if (const auto* text = node.as_string()) {
    if (text->get() == "off") {
      keepalive->enabled = false;
    } else {
      error(node.source(),
            path + ": expected " + std::string(kExpected) + ", got " + quoted(text->get()));
    }
    return;
  }
  const toml::table* table = node.as_table();
  if (!table) {
    wrong_type(node, path, kExpected);
    return;
  }
  // Keys left out keep their inherited values.
  keepalive->enabled = true;
  for (auto&& [key, value] : *table) {
    const std::string name(key.str());
    const std::string sub = path + "." + name;
    if (name == "idle" || name == "interval") {
      Duration d;
      if (!get_duration(value, sub, false, &d)) continue;
      if (d.ms() % 1000 != 0 || d.ms() / 1000 > kMaxKeepaliveSeconds) {
        error(value.source(), sub + ": " + quoted(d.to_string()) +
                                  " must be a whole number of seconds between 1s and " +
                                  std::to_string(kMaxKeepaliveSeconds) + "s");
        continue;
      }
      (name == "idle" ? keepalive->idle : keepalive->interval) = d;
    } else if (name == "count") {
      int64_t count = 0;
      if (get_integer(value, sub, 1, 100, &count)) keepalive->count = static_cast<int>(count);
    } else {
      unknown_key(key, "in " + path, kKeepaliveKeys);
    }
  }
}

void Loader::load_routes(const toml::node& node, const RouteSettings& defaults,
                         std::vector<Route>* routes) {
  const toml::array* array = node.as_array();
  if (!array) {
    error(node.source(), node.is_table()
                             ? "route: write [[route]] (an array of tables), not [route]"
                             : "route: expected an array of tables ([[route]]), got " +
                                   std::string(type_name(node.type())));
    return;
  }
  // Name -> line of its first use, for the duplicate message.
  std::map<std::string, int, std::less<>> seen;
  size_t index = 0;
  for (const toml::node& element : *array) {
    const std::string path = "route[" + std::to_string(index++) + "]";
    const toml::table* table = element.as_table();
    if (!table) {
      wrong_type(element, path, "a table");
      continue;
    }
    Route route;
    route.settings = defaults;
    load_route(*table, path, &route);
    if (!route.name.empty()) {
      const toml::node* name_node = table->get("name");
      const int line = static_cast<int>(name_node->source().begin.line);
      auto [it, inserted] = seen.emplace(route.name, line);
      if (!inserted) {
        error(name_node->source(), path + ": duplicate route name " + quoted(route.name) +
                                       " (first used on line " + std::to_string(it->second) + ")");
      }
    }
    routes->push_back(std::move(route));
  }
}

void Loader::load_route(const toml::table& table, const std::string& path, Route* route) {
  bool has_name = false;
  bool has_match = false;
  for (auto&& [key, value] : table) {
    const std::string name(key.str());
    if (name == "name") {
      has_name = true;
      std::string text;
      if (!get_string(value, path + ".name", &text)) continue;
      if (text.empty()) {
        error(value.source(), path + ".name: a route name must not be empty");
      } else if (text == "default") {
        error(value.source(),
              path + ".name: \"default\" is reserved for requests that match no route");
      } else if (!std::all_of(text.begin(), text.end(), [](char c) {
                   return c > 0x20 && c < 0x7f && c != '"' && c != '\\';
                 })) {
        // Names appear in Proxy-Status, metrics labels and log lines.
        error(value.source(), path + ".name: " + quoted(text) +
                                  " may only contain visible ASCII characters other than "
                                  "quotes and backslashes");
      } else {
        route->name = text;
      }
    } else if (name == "match") {
      has_match = true;
      load_match(value, path + ".match", &route->match);
    } else if (!load_setting(name, value, path + ".", &route->settings)) {
      unknown_key(key, "in " + path, kRouteOwnKeys, kSettingsKeys);
    }
  }
  if (!has_name) error(table.source(), path + ": missing required key \"name\"");
  if (!has_match) {
    error(table.source(),
          path + ": missing required key \"match\"; match = { host = \"*\" } matches everything");
  }
}

void Loader::load_match(const toml::node& node, const std::string& path, RouteMatch* match) {
  const toml::table* table = node.as_table();
  if (!table) {
    wrong_type(node, path, "a table like { host = \"example.com\" }");
    return;
  }
  for (auto&& [key, value] : *table) {
    const std::string name(key.str());
    const std::string sub = path + "." + name;
    if (name == "host") {
      load_match_host(value, sub, match);
    } else if (name == "port") {
      load_port_list(value, sub, &match->ports);
    } else if (name == "method") {
      load_method_list(value, sub, &match->methods);
    } else if (name == "path_prefix") {
      std::string prefix;
      if (!get_string(value, sub, &prefix)) continue;
      if (prefix.empty() || prefix.front() != '/') {
        error(value.source(), sub + ": " + quoted(prefix) + " must start with \"/\"");
      } else if (prefix.find_first_of("?#") != std::string::npos) {
        error(value.source(), sub + ": " + quoted(prefix) +
                                  " is matched against the path only; leave out \"?\" and \"#\"");
      } else if (readings_may_differ(prefix)) {
        // Servers read these in more than one way; a prefix must mean one path.
        error(value.source(), sub + ": " + quoted(prefix) +
                                  " has \";\", \"\\\", \"%2F\" or \"%5C\", which servers read "
                                  "differently; write the prefix without them");
      } else if (normalize_path(prefix, PathReading::strict, &match->path_prefix) !=
                 PathError::none) {
        error(value.source(),
              sub + ": " + quoted(prefix) + " has a \"%\" that is not followed by two hex digits");
      }
    } else if (name == "address") {
      if (load_cidr_list(value, sub, &match->addresses) && match->addresses.empty()) {
        error(value.source(), sub + ": empty list; leave address out to match any address");
      }
    } else {
      unknown_key(key, "in " + path, kMatchKeys);
    }
  }
}

// "*", "*.example.com" or one host, stored canonical (address.hpp) so that
// it compares equal to every spelling a client may use.
void Loader::load_match_host(const toml::node& node, const std::string& path, RouteMatch* match) {
  std::string host;
  if (!get_string(node, path, &host)) return;
  if (host.empty()) {
    error(node.source(), path + ": empty host; use \"*\" for any host");
    return;
  }
  if (host == "*") {
    match->host = host;
    return;
  }
  const bool wildcard = host.size() > 2 && host.compare(0, 2, "*.") == 0;
  std::string_view bare = wildcard ? std::string_view(host).substr(2) : std::string_view(host);
  if (bare.find('*') != std::string_view::npos) {
    error(node.source(), path + ": " + quoted(host) +
                             ": \"*\" may only be the whole host (\"*\") or a leading "
                             "label (\"*.example.com\")");
    return;
  }
  const bool bracketed = bare.size() > 2 && bare.front() == '[' && bare.back() == ']';
  if (bracketed) bare = bare.substr(1, bare.size() - 2);
  std::string canonical;
  if (!canonical_host(bare, bracketed || bare.find(':') != std::string_view::npos, &canonical)) {
    error(node.source(), path + ": " + quoted(host) + " is neither a host name nor an address");
    return;
  }
  if (wildcard && !is_host_name(canonical)) {
    error(node.source(), path + ": " + quoted(host) +
                             ": a wildcard covers the names below a domain, not addresses; "
                             "match addresses with match.address");
    return;
  }
  match->host = wildcard ? "*." + canonical : canonical;
}

void Loader::load_port_list(const toml::node& node, const std::string& path,
                            std::vector<uint16_t>* ports) {
  int64_t port = 0;
  if (node.is_integer()) {
    if (get_integer(node, path, 1, 65535, &port)) ports->push_back(static_cast<uint16_t>(port));
    return;
  }
  const toml::array* array = node.as_array();
  if (!array) {
    wrong_type(node, path, "a port number or an array of port numbers");
    return;
  }
  if (array->empty()) {
    error(node.source(), path + ": empty list; leave port out to match any port");
    return;
  }
  for (const toml::node& element : *array) {
    if (get_integer(element, path + " element", 1, 65535, &port)) {
      ports->push_back(static_cast<uint16_t>(port));
    }
  }
}

void Loader::load_method_list(const toml::node& node, const std::string& path,
                              std::vector<std::string>* methods) {
  auto add = [&](const toml::node& element) {
    std::string method;
    if (!get_string(element, path, &method)) return;
    if (!is_token(method)) {
      error(element.source(), path + ": " + quoted(method) + " is not an HTTP method token");
      return;
    }
    methods->push_back(to_upper(method));
  };
  if (node.is_string()) {
    add(node);
    return;
  }
  const toml::array* array = node.as_array();
  if (!array) {
    wrong_type(node, path, "a method string or an array of method strings");
    return;
  }
  if (array->empty()) {
    error(node.source(), path + ": empty list; leave method out to match any method");
    return;
  }
  for (const toml::node& element : *array) add(element);
}

}  // namespace

std::string ConfigError::to_string() const {
  if (line <= 0) return file + ": " + message;
  if (column <= 0) return file + ":" + std::to_string(line) + ": " + message;
  return file + ":" + std::to_string(line) + ":" + std::to_string(column) + ": " + message;
}

Config default_config() {
  Config config;
  for (const char* text : kDefaultAllowClients) {
    Cidr net;
    [[maybe_unused]] const bool ok = parse_cidr(text, &net, nullptr);
    config.listen.allow_clients.push_back(net);
    config.admin.allow_clients.push_back(net);
  }
  config.listen.connect_ports = {443};
  return config;
}

ConfigResult parse_config(std::string_view text, std::string_view source) {
  toml::table root;
  try {
    root = toml::parse(text, source);
  } catch (const toml::parse_error& e) {
    return std::vector<ConfigError>{
        ConfigError{std::string(source), static_cast<int>(e.source().begin.line),
                    static_cast<int>(e.source().begin.column), std::string(e.description())}};
  }
  Config config = default_config();
  Loader loader(source);
  loader.load(root, &config);
  std::vector<ConfigError> errors = loader.take_errors();
  if (errors.empty()) return config;
  std::stable_sort(errors.begin(), errors.end(), [](const ConfigError& a, const ConfigError& b) {
    return std::pair(a.line, a.column) < std::pair(b.line, b.column);
  });
  return errors;
}

ConfigResult load_config_file(const std::string& path) {
  auto unreadable = [&](int err) {
    return std::vector<ConfigError>{
        ConfigError{path, 0, 0, std::string("cannot read file: ") + std::strerror(err)}};
  };
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return unreadable(errno);
  std::string text;
  char buffer[16384];
  for (;;) {
    const ssize_t n = ::read(fd, buffer, sizeof buffer);
    if (n > 0) {
      text.append(buffer, static_cast<size_t>(n));
    } else if (n == 0) {
      break;
    } else if (errno != EINTR) {
      const int err = errno;
      ::close(fd);
      return unreadable(err);
    }
  }
  ::close(fd);
  return parse_config(text, path);
}

}  // namespace cutoff
