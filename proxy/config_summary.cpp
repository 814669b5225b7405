#include "cutoff/config_summary.hpp"

#include <algorithm>
#include <map>
#include <set>

namespace cutoff {
namespace {

// -- How values are written: short, and without spaces where a start-up
// line lists them as key=value.

std::string show(Duration d) {
  return d.to_string();
}
std::string show(bool b) {
  return b ? "true" : "false";
}
std::string show(unsigned n) {
  return std::to_string(n);
}
std::string show(int n) {
  return std::to_string(n);
}
std::string show(const std::string& text) {
  return text;
}
std::string show(Teardown t) {
  return t == Teardown::graceful ? "graceful" : "reset";
}
std::string show(RouteAction a) {
  return a == RouteAction::deny ? "deny" : "forward";
}
std::string show(TlsMode m) {
  return m == TlsMode::intercept ? "intercept" : "tunnel";
}
std::string show(LogFormat f) {
  return f == LogFormat::json ? "json" : "text";
}

template <typename T, typename Show>
std::string list(const std::vector<T>& items, Show show_one) {
  std::string out = "[";
  for (size_t i = 0; i < items.size(); ++i) {
    if (i > 0) out += ",";
    out += show_one(items[i]);
  }
  return out + "]";
}

std::string show(const std::vector<uint16_t>& ports) {
  return list(ports, [](uint16_t port) { return std::to_string(port); });
}
std::string show(const std::vector<std::string>& words) {
  return list(words, [](const std::string& word) { return word; });
}
std::string show(const std::vector<Cidr>& networks) {
  return list(networks, cidr_to_string);
}

std::string show(const TcpKeepalive& k) {
  if (!k.enabled) return "off";
  return "{idle=" + show(k.idle) + ",interval=" + show(k.interval) + ",count=" + show(k.count) +
         "}";
}

std::string show(const RouteMatch& m) {
  std::vector<std::string> parts;
  if (!m.host.empty()) parts.push_back("host=" + m.host);
  if (!m.ports.empty()) parts.push_back("port=" + show(m.ports));
  if (!m.methods.empty()) parts.push_back("method=" + show(m.methods));
  if (!m.path_prefix.empty()) parts.push_back("path_prefix=" + m.path_prefix);
  if (!m.addresses.empty()) parts.push_back("address=" + show(m.addresses));
  std::string out = "{";
  for (size_t i = 0; i < parts.size(); ++i) out += (i > 0 ? "," : "") + parts[i];
  return out + "}";
}

std::string show_workers(unsigned workers) {
  return workers == 0 ? "one per CPU" : show(workers);
}

std::string show_connect_ports(const ListenConfig& l) {
  return l.connect_any_port ? "[*]" : show(l.connect_ports);
}

std::string show_name_servers(const DnsConfig& dns) {
  if (dns.servers.empty()) return "resolv.conf";
  return list(dns.servers, [](const DnsServer& s) {
    bool v6 = s.ip.find(':') != std::string::npos;
    return (v6 ? "[" + s.ip + "]" : s.ip) + ":" + std::to_string(s.port);
  });
}

// Credentials are compared on reload but only counted in logs.
std::string count_credentials(const ListenConfig& l) {
  size_t n = l.proxy_auth.size();
  if (n == 0) return "none";
  return std::to_string(n) + (n == 1 ? " credential" : " credentials");
}
std::string all_credentials(const ListenConfig& l) {
  return show(l.proxy_auth);
}

// -- The tables: every key of every section, in the order of
// conf/cutoff.toml. A new config key is one line in one of them.

constexpr bool kOnStartupLine = true;

template <typename Part>
struct Key {
  const char* name;
  std::string (*value)(const Part&);
  bool on_startup_line = false;
  std::string (*hidden)(const Part&) = nullptr;
};

const Key<Config> kTopKeys[] = {
    {"workers", [](const Config& c) { return show_workers(c.workers); }},
    {"drain_timeout", [](const Config& c) { return show(c.drain_timeout); }, kOnStartupLine},
    {"linger_timeout", [](const Config& c) { return show(c.linger_timeout); }, kOnStartupLine},
    {"log_level", [](const Config& c) { return show(c.log_level); }},
    {"log_query", [](const Config& c) { return show(c.log_query); }},
};

const Key<ListenConfig> kListenKeys[] = {
    {"address", [](const ListenConfig& l) { return show(l.address); }},
    {"request_header_timeout", [](const ListenConfig& l) { return show(l.request_header_timeout); },
     kOnStartupLine},
    {"client_keepalive_timeout",
     [](const ListenConfig& l) { return show(l.client_keepalive_timeout); }, kOnStartupLine},
    {"max_client_connections",
     [](const ListenConfig& l) { return show(l.max_client_connections); }},
    {"allow_clients", [](const ListenConfig& l) { return show(l.allow_clients); }},
    {"connect_ports", show_connect_ports},
    {"via", [](const ListenConfig& l) { return show(l.via); }},
    {"server_timing", [](const ListenConfig& l) { return show(l.server_timing); }},
    {"proxy_auth", count_credentials, !kOnStartupLine, all_credentials},
};

const Key<AdminConfig> kAdminKeys[] = {
    {"address", [](const AdminConfig& a) { return show(a.address); }},
    {"allow_clients", [](const AdminConfig& a) { return show(a.allow_clients); }},
};

const Key<AccessLogConfig> kAccessLogKeys[] = {
    {"format", [](const AccessLogConfig& a) { return show(a.format); }},
    {"path", [](const AccessLogConfig& a) { return show(a.path); }},
};

const Key<TlsConfig> kTlsKeys[] = {
    {"ca_cert", [](const TlsConfig& t) { return show(t.ca_cert); }},
    {"ca_key", [](const TlsConfig& t) { return show(t.ca_key); }},
    {"upstream_ca", [](const TlsConfig& t) { return show(t.upstream_ca); }},
};

const Key<TestsConfig> kTestsKeys[] = {
    {"max_tests", [](const TestsConfig& t) { return show(t.max_tests); }},
    {"max_exchanges_per_test", [](const TestsConfig& t) { return show(t.max_exchanges_per_test); }},
    {"metrics_label", [](const TestsConfig& t) { return show(t.metrics_label); }},
};

const Key<DnsConfig> kDnsKeys[] = {
    {"servers", show_name_servers},
};

// [defaults] and every [[route]]: a route lists its effective settings.
const Key<RouteSettings> kRouteSettingKeys[] = {
    {"action", [](const RouteSettings& s) { return show(s.action); }, kOnStartupLine},
    {"dns_timeout", [](const RouteSettings& s) { return show(s.dns_timeout); }, kOnStartupLine},
    {"connect_timeout", [](const RouteSettings& s) { return show(s.connect_timeout); },
     kOnStartupLine},
    {"response_header_timeout",
     [](const RouteSettings& s) { return show(s.response_header_timeout); }, kOnStartupLine},
    {"idle_timeout", [](const RouteSettings& s) { return show(s.idle_timeout); }, kOnStartupLine},
    {"request_timeout", [](const RouteSettings& s) { return show(s.request_timeout); },
     kOnStartupLine},
    {"min_rate", [](const RouteSettings& s) { return s.min_rate.to_string(); }, kOnStartupLine},
    {"upstream_keepalive_timeout",
     [](const RouteSettings& s) { return show(s.upstream_keepalive_timeout); }, kOnStartupLine},
    {"tunnel_idle_timeout", [](const RouteSettings& s) { return show(s.tunnel_idle_timeout); },
     kOnStartupLine},
    {"tunnel_max_duration", [](const RouteSettings& s) { return show(s.tunnel_max_duration); },
     kOnStartupLine},
    {"tls_handshake_timeout", [](const RouteSettings& s) { return show(s.tls_handshake_timeout); },
     kOnStartupLine},
    {"tls", [](const RouteSettings& s) { return show(s.tls); }, kOnStartupLine},
    {"tls_verify_upstream", [](const RouteSettings& s) { return show(s.tls_verify_upstream); }},
    {"teardown", [](const RouteSettings& s) { return show(s.teardown); }},
    {"tcp_keepalive", [](const RouteSettings& s) { return show(s.tcp_keepalive); }, kOnStartupLine},
    {"tcp_user_timeout", [](const RouteSettings& s) { return show(s.tcp_user_timeout); },
     kOnStartupLine},
    {"max_idle_per_upstream", [](const RouteSettings& s) { return show(s.max_idle_per_upstream); }},
    {"parent_proxy", [](const RouteSettings& s) { return describe_parent(s.parent_proxy); },
     kOnStartupLine},
};

template <typename Part, size_t N>
void add_section(ConfigSummary* out, const std::string& section, const Part& part,
                 const Key<Part> (&keys)[N]) {
  for (const Key<Part>& key : keys) {
    out->push_back(SummaryEntry{section, key.name, key.value(part),
                                key.hidden ? key.hidden(part) : std::string(),
                                key.on_startup_line});
  }
}

std::string route_section(const std::string& name) {
  return "route \"" + name + "\"";
}

bool is_route(const std::string& section) {
  return section.rfind("route \"", 0) == 0;
}

// Start-up lists [defaults], the routes, [listen], then the top level.
int startup_rank(const std::string& section) {
  if (section == "defaults") return 0;
  if (is_route(section)) return 1;
  if (section == "listen") return 2;
  return 3;
}

std::string section_label(const std::string& section) {
  if (section.empty()) return "global";
  if (is_route(section)) return section;
  return "[" + section + "]";
}

using Index = std::map<std::string, const SummaryEntry*>;

Index index_by_key(const ConfigSummary& summary) {
  Index index;
  for (const SummaryEntry& e : summary) index.emplace(e.key(), &e);
  return index;
}

// A route key that had the [defaults] value before and has it after: the
// route inherits it, and the [defaults] change already says so.
bool followed_defaults(const SummaryEntry& was, const SummaryEntry& now, const Index& before,
                       const Index& after) {
  if (!is_route(was.section)) return false;
  auto old_default = before.find("defaults." + was.name);
  auto new_default = after.find("defaults." + was.name);
  if (old_default == before.end() || new_default == after.end()) return false;
  return was.value == old_default->second->value && was.hidden == old_default->second->hidden &&
         now.value == new_default->second->value && now.hidden == new_default->second->hidden;
}

std::vector<std::string> route_names(const ConfigSummary& summary) {
  std::vector<std::string> names;
  const std::string* last = nullptr;
  for (const SummaryEntry& e : summary) {
    if (!is_route(e.section) || (last && *last == e.section)) continue;
    last = &e.section;
    names.push_back(e.section.substr(7, e.section.size() - 8));  // between the quotes
  }
  return names;
}

std::vector<std::string> only_those_in(const std::vector<std::string>& names,
                                       const std::vector<std::string>& others) {
  std::vector<std::string> kept;
  for (const std::string& n : names) {
    if (std::find(others.begin(), others.end(), n) != others.end()) kept.push_back(n);
  }
  return kept;
}

// The first match wins, so routes that stayed but swapped places change
// what matches even when no key of theirs did.
void add_order_change(const ConfigSummary& before, const ConfigSummary& after,
                      std::vector<std::string>* changes) {
  std::vector<std::string> old_names = route_names(before);
  std::vector<std::string> new_names = route_names(after);
  if (only_those_in(old_names, new_names) == only_those_in(new_names, old_names)) return;
  changes->push_back("route order " + show(old_names) + " -> " + show(new_names));
}

}  // namespace

std::string SummaryEntry::key() const {
  return section.empty() ? name : section + "." + name;
}

ConfigSummary summarize(const Config& config) {
  ConfigSummary out;
  add_section(&out, "", config, kTopKeys);
  add_section(&out, "listen", config.listen, kListenKeys);
  add_section(&out, "admin", config.admin, kAdminKeys);
  add_section(&out, "access_log", config.access_log, kAccessLogKeys);
  add_section(&out, "dns", config.dns, kDnsKeys);
  add_section(&out, "tls", config.tls, kTlsKeys);
  add_section(&out, "tests", config.tests, kTestsKeys);
  add_section(&out, "defaults", config.defaults, kRouteSettingKeys);
  for (const Route& route : config.routes) {
    std::string section = route_section(route.name);
    out.push_back(SummaryEntry{section, "match", show(route.match), "", kOnStartupLine});
    add_section(&out, section, route.settings, kRouteSettingKeys);
  }
  return out;
}

std::vector<std::string> startup_lines(const ConfigSummary& summary) {
  std::vector<std::pair<int, std::string>> sections;  // rank, section; in summary order
  std::map<std::string, std::string> listed;          // section -> "k=v k=v"
  for (const SummaryEntry& e : summary) {
    if (!e.on_startup_line) continue;
    std::string& line = listed[e.section];
    if (line.empty()) sections.emplace_back(startup_rank(e.section), e.section);
    line += (line.empty() ? "" : " ") + e.name + "=" + e.value;
  }
  std::stable_sort(sections.begin(), sections.end(),
                   [](const auto& a, const auto& b) { return a.first < b.first; });
  std::vector<std::string> lines;
  for (const auto& [rank, section] : sections) {
    lines.push_back(section_label(section) + ": " + listed[section]);
  }
  return lines;
}

std::vector<std::string> config_changes(const ConfigSummary& before, const ConfigSummary& after) {
  const Index old_index = index_by_key(before);
  const Index new_index = index_by_key(after);
  std::vector<std::string> changes;
  std::set<std::string> routes_told;  // added or removed, said once per route
  for (const SummaryEntry& was : before) {
    auto found = new_index.find(was.key());
    if (found == new_index.end()) {
      if (!is_route(was.section)) {
        changes.push_back(was.key() + " removed");
      } else if (routes_told.insert(was.section).second) {
        changes.push_back(was.section + " removed");
      }
      continue;
    }
    const SummaryEntry& now = *found->second;
    if (was.value == now.value && was.hidden == now.hidden) continue;
    if (followed_defaults(was, now, old_index, new_index)) continue;
    if (was.value == now.value) {
      changes.push_back(was.key() + " changed (" + now.value + ")");
    } else {
      changes.push_back(was.key() + " " + was.value + " -> " + now.value);
    }
  }
  for (const SummaryEntry& now : after) {
    if (old_index.count(now.key()) != 0) continue;
    if (!is_route(now.section)) {
      changes.push_back(now.key() + " " + now.value + " added");
    } else if (routes_told.insert(now.section).second) {
      changes.push_back(now.section + " added");
    }
  }
  add_order_change(before, after, &changes);
  return changes;
}

std::string join_changes(const std::vector<std::string>& changes) {
  if (changes.empty()) return "no change";
  std::string out;
  for (const std::string& c : changes) out += (out.empty() ? "" : ", ") + c;
  return out;
}

}  // namespace cutoff
