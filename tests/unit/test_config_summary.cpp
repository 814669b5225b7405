#include <catch2/catch.hpp>
#include <string>
#include <variant>
#include <vector>

#include "cutoff/config_summary.hpp"

using namespace cutoff;

namespace {

Config parse_ok(const std::string& text) {
  ConfigResult result = parse_config(text, "test.toml");
  if (auto* errors = std::get_if<std::vector<ConfigError>>(&result)) {
    for (const ConfigError& e : *errors) UNSCOPED_INFO(e.to_string());
    FAIL("expected the config to parse");
  }
  return std::get<Config>(std::move(result));
}

std::string value_of(const ConfigSummary& summary, const std::string& key) {
  for (const SummaryEntry& e : summary) {
    if (e.key() == key) return e.value;
  }
  FAIL("no key " << key);
  return "";
}

std::vector<std::string> keys_of(const ConfigSummary& summary) {
  std::vector<std::string> keys;
  for (const SummaryEntry& e : summary) keys.push_back(e.key());
  return keys;
}

std::vector<std::string> changes(const std::string& before, const std::string& after) {
  return config_changes(summarize(parse_ok(before)), summarize(parse_ok(after)));
}

const std::string kTwoRoutes = R"(
[defaults]
idle_timeout = "60s"

[[route]]
name = "api"
match = { host = "*.api.example.com", port = [443, 8443] }
response_header_timeout = "2m"

[[route]]
name = "static"
match = { path_prefix = "/static/", method = ["GET", "HEAD"] }
idle_timeout = "5s"
)";

}  // namespace

TEST_CASE("the summary lists every key of the built-in defaults, in file order") {
  const ConfigSummary summary = summarize(default_config());
  CHECK(keys_of(summary) == std::vector<std::string>{"workers",
                                                     "drain_timeout",
                                                     "linger_timeout",
                                                     "log_level",
                                                     "log_query",
                                                     "listen.address",
                                                     "listen.request_header_timeout",
                                                     "listen.client_keepalive_timeout",
                                                     "listen.max_client_connections",
                                                     "listen.allow_clients",
                                                     "listen.connect_ports",
                                                     "listen.via",
                                                     "listen.server_timing",
                                                     "listen.proxy_auth",
                                                     "admin.address",
                                                     "admin.allow_clients",
                                                     "access_log.format",
                                                     "access_log.path",
                                                     "dns.servers",
                                                     "tls.ca_cert",
                                                     "tls.ca_key",
                                                     "tls.upstream_ca",
                                                     "tests.max_tests",
                                                     "tests.max_exchanges_per_test",
                                                     "tests.metrics_label",
                                                     "defaults.action",
                                                     "defaults.dns_timeout",
                                                     "defaults.connect_timeout",
                                                     "defaults.response_header_timeout",
                                                     "defaults.idle_timeout",
                                                     "defaults.request_timeout",
                                                     "defaults.min_rate",
                                                     "defaults.upstream_keepalive_timeout",
                                                     "defaults.tunnel_idle_timeout",
                                                     "defaults.tunnel_max_duration",
                                                     "defaults.tls_handshake_timeout",
                                                     "defaults.tls",
                                                     "defaults.tls_verify_upstream",
                                                     "defaults.teardown",
                                                     "defaults.tcp_keepalive",
                                                     "defaults.tcp_user_timeout",
                                                     "defaults.max_idle_per_upstream",
                                                     "defaults.parent_proxy"});
  CHECK(value_of(summary, "workers") == "one per CPU");
  CHECK(value_of(summary, "listen.address") == "127.0.0.1:3128");
  CHECK(value_of(summary, "listen.allow_clients") ==
        "[127.0.0.0/8,::1/128,10.0.0.0/8,172.16.0.0/12,192.168.0.0/16]");
  CHECK(value_of(summary, "listen.connect_ports") == "[443]");
  CHECK(value_of(summary, "listen.proxy_auth") == "none");
  CHECK(value_of(summary, "dns.servers") == "resolv.conf");
  CHECK(value_of(summary, "defaults.request_timeout") == "off");
  CHECK(value_of(summary, "defaults.tunnel_idle_timeout") == "5m");
  CHECK(value_of(summary, "defaults.tcp_keepalive") == "{idle=30s,interval=10s,count=3}");
  CHECK(value_of(summary, "tests.max_tests") == "1000");
  CHECK(value_of(summary, "tests.max_exchanges_per_test") == "100");
  CHECK(value_of(summary, "tests.metrics_label") == "false");
}

TEST_CASE("a route lists its match and its effective settings") {
  const ConfigSummary summary = summarize(parse_ok(kTwoRoutes));
  CHECK(value_of(summary, "route \"api\".match") == "{host=*.api.example.com,port=[443,8443]}");
  CHECK(value_of(summary, "route \"api\".response_header_timeout") == "2m");
  CHECK(value_of(summary, "route \"api\".idle_timeout") == "1m");  // inherited
  CHECK(value_of(summary, "route \"static\".match") == "{method=[GET,HEAD],path_prefix=/static/}");
  CHECK(value_of(summary, "route \"static\".idle_timeout") == "5s");
}

TEST_CASE("values are written as the config would spell them") {
  const ConfigSummary summary = summarize(parse_ok(R"(
workers = 2
[listen]
connect_ports = ["*"]
allow_clients = ["0.0.0.0/0", "::/0"]
proxy_auth = ["ci:secret", "bot:hunter2"]
[dns]
servers = ["10.0.0.53", "[fd00::53]:5353"]
[access_log]
format = "json"
path = "/var/log/cutoff.log"
[defaults]
tcp_keepalive = "off"
teardown = "graceful"
[[route]]
name = "meta"
match = { address = ["169.254.0.0/16"] }
action = "deny"
)"));
  CHECK(value_of(summary, "workers") == "2");
  CHECK(value_of(summary, "listen.connect_ports") == "[*]");
  CHECK(value_of(summary, "listen.allow_clients") == "[0.0.0.0/0,::/0]");
  CHECK(value_of(summary, "dns.servers") == "[10.0.0.53:53,[fd00::53]:5353]");
  CHECK(value_of(summary, "access_log.format") == "json");
  CHECK(value_of(summary, "access_log.path") == "/var/log/cutoff.log");
  CHECK(value_of(summary, "defaults.tcp_keepalive") == "off");
  CHECK(value_of(summary, "defaults.teardown") == "graceful");
  CHECK(value_of(summary, "route \"meta\".match") == "{address=[169.254.0.0/16]}");
  CHECK(value_of(summary, "route \"meta\".action") == "deny");
}

TEST_CASE("credentials are counted, never shown") {
  const ConfigSummary summary =
      summarize(parse_ok("[listen]\nproxy_auth = [\"ci:secret\", \"bot:hunter2\"]\n"));
  CHECK(value_of(summary, "listen.proxy_auth") == "2 credentials");
  for (const std::string& line : startup_lines(summary)) {
    CHECK(line.find("secret") == std::string::npos);
  }
  const auto changed = changes("[listen]\nproxy_auth = [\"ci:secret\"]\n",
                               "[listen]\nproxy_auth = [\"ci:other\"]\n");
  REQUIRE(changed == std::vector<std::string>{"listen.proxy_auth changed (1 credential)"});
}

TEST_CASE("start-up lines: [defaults], each route with its match, [listen], global") {
  const auto lines = startup_lines(summarize(parse_ok(kTwoRoutes)));
  const std::string bounds =
      "dns_timeout=5s connect_timeout=5s response_header_timeout={} idle_timeout={} "
      "request_timeout=off min_rate=1KiB/30s upstream_keepalive_timeout=30s "
      "tunnel_idle_timeout=5m "
      "tunnel_max_duration=off tls_handshake_timeout=10s tls=tunnel "
      "tcp_keepalive={idle=30s,interval=10s,count=3} "
      "tcp_user_timeout=30s parent_proxy=none";
  auto with = [&](const std::string& response_header, const std::string& idle) {
    std::string out = bounds;
    out.replace(out.find("{}"), 2, response_header);
    out.replace(out.find("{}"), 2, idle);
    return out;
  };
  REQUIRE(lines.size() == 5);
  CHECK(lines[0] == "[defaults]: action=forward " + with("30s", "1m"));
  CHECK(lines[1] ==
        "route \"api\": match={host=*.api.example.com,port=[443,8443]} action=forward " +
            with("2m", "1m"));
  CHECK(lines[2] ==
        "route \"static\": match={method=[GET,HEAD],path_prefix=/static/} "
        "action=forward " +
            with("30s", "5s"));
  CHECK(lines[3] == "[listen]: request_header_timeout=10s client_keepalive_timeout=1m");
  CHECK(lines[4] == "global: drain_timeout=30s linger_timeout=2s");
}

TEST_CASE("the same config twice has no change") {
  CHECK(changes(kTwoRoutes, kTwoRoutes).empty());
  CHECK(join_changes({}) == "no change");
}

TEST_CASE("a changed key is named with its old and new value") {
  const auto changed = changes("workers = 2\n[defaults]\nconnect_timeout = \"5s\"\n",
                               "workers = 4\n[defaults]\nconnect_timeout = \"1s\"\n");
  CHECK(changed == std::vector<std::string>{"workers 2 -> 4", "defaults.connect_timeout 5s -> 1s"});
  CHECK(join_changes(changed) == "workers 2 -> 4, defaults.connect_timeout 5s -> 1s");
}

TEST_CASE("a [defaults] change is not repeated for the routes that inherit it") {
  std::string after = kTwoRoutes;
  after.replace(after.find("idle_timeout = \"60s\""), 20, "idle_timeout = \"10s\"");
  // "api" inherits idle_timeout; "static" sets its own.
  CHECK(changes(kTwoRoutes, after) == std::vector<std::string>{"defaults.idle_timeout 1m -> 10s"});
}

TEST_CASE("a route that stops inheriting is named") {
  std::string after = kTwoRoutes;
  after.replace(after.find("response_header_timeout = \"2m\""), 30,
                "response_header_timeout = \"2m\"\nidle_timeout = \"1s\"");
  CHECK(changes(kTwoRoutes, after) ==
        std::vector<std::string>{"route \"api\".idle_timeout 1m -> 1s"});
}

TEST_CASE("routes added, removed and reordered") {
  const std::string api = "[[route]]\nname = \"api\"\nmatch = { host = \"api.example.com\" }\n";
  const std::string web = "[[route]]\nname = \"web\"\nmatch = { port = 80 }\n";
  const std::string ci = "[[route]]\nname = \"ci\"\nmatch = { host = \"ci.example.com\" }\n";
  CHECK(changes(api, api + web) == std::vector<std::string>{"route \"web\" added"});
  CHECK(changes(api + web, web) == std::vector<std::string>{"route \"api\" removed"});
  CHECK(changes(api + web, web + api) ==
        std::vector<std::string>{"route order [api,web] -> [web,api]"});
  // A route put in front of others changes no order among those that stayed.
  CHECK(changes(api + web, ci + api + web) == std::vector<std::string>{"route \"ci\" added"});
  CHECK(changes(api, "[[route]]\nname = \"api\"\nmatch = { host = \"api.example.org\" }\n") ==
        std::vector<std::string>{
            "route \"api\".match {host=api.example.com} -> {host=api.example.org}"});
}
