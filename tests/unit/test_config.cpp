#include <arpa/inet.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdio>
#include <fstream>
#include <string>
#include <variant>
#include <vector>

#include "cutoff/config.hpp"

using namespace cutoff;

namespace {

const char* kFile = "test.toml";

Config parse_ok(const std::string& text) {
  ConfigResult result = parse_config(text, kFile);
  if (auto* errors = std::get_if<std::vector<ConfigError>>(&result)) {
    for (const ConfigError& e : *errors) UNSCOPED_INFO(e.to_string());
    FAIL("expected the config to parse");
  }
  return std::get<Config>(std::move(result));
}

std::vector<ConfigError> parse_errors(const std::string& text) {
  ConfigResult result = parse_config(text, kFile);
  REQUIRE(std::holds_alternative<std::vector<ConfigError>>(result));
  return std::get<std::vector<ConfigError>>(std::move(result));
}

// The text must produce exactly one error, at line:column, containing `what`.
ConfigError one_error(const std::string& text, int line, int column, const std::string& what) {
  const std::vector<ConfigError> errors = parse_errors(text);
  for (const ConfigError& e : errors) UNSCOPED_INFO(e.to_string());
  REQUIRE(errors.size() == 1);
  const ConfigError& e = errors.front();
  CHECK(e.file == kFile);
  CHECK(e.line == line);
  CHECK(e.column == column);
  CHECK_THAT(e.message, Catch::Contains(what));
  return e;
}

std::string cidr_text(const Cidr& net) {
  char buf[INET6_ADDRSTRLEN] = {};
  inet_ntop(net.v6 ? AF_INET6 : AF_INET, net.addr, buf, sizeof buf);
  return std::string(buf) + "/" + std::to_string(net.prefix);
}

std::vector<std::string> cidr_texts(const std::vector<Cidr>& nets) {
  std::vector<std::string> out;
  for (const Cidr& net : nets) out.push_back(cidr_text(net));
  return out;
}

// SPEC 7a's defaults, field by field.
void check_spec_defaults(const Config& c) {
  CHECK(c.workers == 0);
  CHECK(c.drain_timeout == Duration::seconds(30));
  CHECK(c.linger_timeout == Duration::seconds(2));
  CHECK(c.log_level == "info");
  CHECK(c.listen.address == "127.0.0.1:3128");
  CHECK(c.listen.request_header_timeout == Duration::seconds(10));
  CHECK(c.listen.client_keepalive_timeout == Duration::seconds(60));
  CHECK(c.listen.max_client_connections == 10000);
  CHECK(cidr_texts(c.listen.allow_clients) ==
        std::vector<std::string>{"127.0.0.0/8", "::1/128", "10.0.0.0/8", "172.16.0.0/12",
                                 "192.168.0.0/16"});
  CHECK(c.listen.connect_ports == std::vector<uint16_t>{443});
  CHECK_FALSE(c.listen.connect_any_port);
  CHECK(c.listen.via);
  CHECK(c.admin.address == "127.0.0.1:9901");
  CHECK(c.access_log.format == LogFormat::text);
  CHECK(c.access_log.path == "-");
  CHECK(c.dns.servers.empty());  // resolv.conf's
  const RouteSettings& d = c.defaults;
  CHECK(d.dns_timeout == Duration::seconds(5));
  CHECK(d.connect_timeout == Duration::seconds(5));
  CHECK(d.response_header_timeout == Duration::seconds(30));
  CHECK(d.idle_timeout == Duration::seconds(60));
  CHECK(d.request_timeout.is_off());
  CHECK(d.upstream_keepalive_timeout == Duration::seconds(30));
  CHECK(d.tunnel_idle_timeout == Duration::seconds(300));
  CHECK(d.tunnel_max_duration.is_off());
  CHECK(d.tls_handshake_timeout == Duration::seconds(10));
  CHECK(d.teardown == Teardown::reset);
  CHECK(d.action == RouteAction::forward);
  CHECK(d.tcp_keepalive.enabled);
  CHECK(d.tcp_keepalive.idle == Duration::seconds(30));
  CHECK(d.tcp_keepalive.interval == Duration::seconds(10));
  CHECK(d.tcp_keepalive.count == 3);
  CHECK(d.tcp_user_timeout == Duration::seconds(30));
  CHECK(d.min_rate == MinRate::of(1024, Duration::seconds(30)));
  CHECK(c.routes.empty());
}

}  // namespace

TEST_CASE("default_config matches SPEC 7a", "[config]") {
  check_spec_defaults(default_config());
}

TEST_CASE("an empty file gives the defaults", "[config]") {
  check_spec_defaults(parse_ok(""));
  check_spec_defaults(parse_ok("# nothing but a comment\n"));
}

TEST_CASE("the SPEC 7a example spelled out parses to the same defaults", "[config]") {
  const Config c = parse_ok(R"(
workers = 2
drain_timeout = "30s"
linger_timeout = "2s"

[listen]
address = "127.0.0.1:3128"
request_header_timeout = "10s"
client_keepalive_timeout = "60s"
max_client_connections = 10000
allow_clients = ["127.0.0.0/8", "::1/128", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"]
connect_ports = [443]

[admin]
address = "127.0.0.1:9901"

[access_log]
format = "text"
path = "-"

[defaults]
dns_timeout = "5s"
connect_timeout = "5s"
response_header_timeout = "30s"
idle_timeout = "60s"
request_timeout = "off"
upstream_keepalive_timeout = "30s"
tunnel_idle_timeout = "5m"
tunnel_max_duration = "off"
teardown = "reset"
tcp_keepalive = { idle = "30s", interval = "10s", count = 3 }
tcp_user_timeout = "30s"

[[route]]
name = "slow-api"
match = { host = "*.api.example.com", port = [443, 8443] }
response_header_timeout = "2m"

[[route]]
name = "no-telemetry"
match = { host = "telemetry.example.net" }
action = "deny"
)");
  Config expected = c;
  expected.workers = 0;
  expected.routes.clear();
  check_spec_defaults(expected);
  CHECK(c.workers == 2);

  REQUIRE(c.routes.size() == 2);
  const Route& slow = c.routes[0];
  CHECK(slow.name == "slow-api");
  CHECK(slow.match.host == "*.api.example.com");
  CHECK(slow.match.ports == std::vector<uint16_t>{443, 8443});
  CHECK(slow.match.methods.empty());
  CHECK(slow.match.path_prefix.empty());
  CHECK(slow.settings.response_header_timeout == Duration::seconds(120));
  CHECK(slow.settings.connect_timeout == Duration::seconds(5));
  CHECK(slow.settings.action == RouteAction::forward);

  const Route& deny = c.routes[1];
  CHECK(deny.name == "no-telemetry");
  CHECK(deny.match.host == "telemetry.example.net");
  CHECK(deny.match.ports.empty());
  CHECK(deny.settings.action == RouteAction::deny);
  CHECK(deny.settings.response_header_timeout == Duration::seconds(30));
}

TEST_CASE("a full config with non-default values, [defaults] after the routes", "[config]") {
  const Config c = parse_ok(R"(
workers = 4
drain_timeout = "45s"
linger_timeout = "500ms"
log_level = "debug"

[[route]]
name = "slow-api"
match = { host = "*.API.example.com", port = [443, 8443], method = ["get", "Post"] }
response_header_timeout = "2m"
tcp_keepalive = { count = 7 }

[[route]]
name = "uploads"
match = { host = "files.example.com", port = 80, method = "PUT", path_prefix = "/upload/" }
request_timeout = "10m"
teardown = "reset"

[[route]]
name = "no-keepalive"
match = { host = "*" }
tcp_keepalive = "off"
tcp_user_timeout = "off"

[listen]
address = "[::1]:0"
request_header_timeout = "3s"
client_keepalive_timeout = "2m"
max_client_connections = 64
allow_clients = ["0.0.0.0/0", "::/0"]
connect_ports = [443, 8443]
via = false

[admin]
address = "off"

[access_log]
format = "json"
path = "/var/log/cutoff/access.log"

[defaults]
dns_timeout = "1s"
connect_timeout = "2s"
response_header_timeout = "15s"
idle_timeout = "20s"
request_timeout = "1h"
upstream_keepalive_timeout = "10s"
tunnel_idle_timeout = "90s"
tunnel_max_duration = "2h"
tls_handshake_timeout = "3s"
teardown = "graceful"
action = "forward"
tcp_keepalive = { idle = "1m", interval = "5s", count = 4 }
tcp_user_timeout = "45s"
)");
  CHECK(c.workers == 4);
  CHECK(c.drain_timeout == Duration::seconds(45));
  CHECK(c.linger_timeout == Duration::millis(500));
  CHECK(c.log_level == "debug");
  CHECK(c.listen.address == "[::1]:0");
  CHECK(c.listen.request_header_timeout == Duration::seconds(3));
  CHECK(c.listen.client_keepalive_timeout == Duration::seconds(120));
  CHECK(c.listen.max_client_connections == 64);
  CHECK(cidr_texts(c.listen.allow_clients) == std::vector<std::string>{"0.0.0.0/0", "::/0"});
  CHECK(c.listen.connect_ports == std::vector<uint16_t>{443, 8443});
  CHECK_FALSE(c.listen.connect_any_port);
  CHECK_FALSE(c.listen.via);
  CHECK(c.admin.address == "off");
  CHECK(c.access_log.format == LogFormat::json);
  CHECK(c.access_log.path == "/var/log/cutoff/access.log");

  const RouteSettings& d = c.defaults;
  CHECK(d.dns_timeout == Duration::seconds(1));
  CHECK(d.connect_timeout == Duration::seconds(2));
  CHECK(d.response_header_timeout == Duration::seconds(15));
  CHECK(d.idle_timeout == Duration::seconds(20));
  CHECK(d.request_timeout == Duration::seconds(3600));
  CHECK(d.upstream_keepalive_timeout == Duration::seconds(10));
  CHECK(d.tunnel_idle_timeout == Duration::seconds(90));
  CHECK(d.tunnel_max_duration == Duration::seconds(7200));
  CHECK(d.tls_handshake_timeout == Duration::seconds(3));
  CHECK(d.teardown == Teardown::graceful);
  CHECK(d.action == RouteAction::forward);
  CHECK(d.tcp_keepalive.enabled);
  CHECK(d.tcp_keepalive.idle == Duration::seconds(60));
  CHECK(d.tcp_keepalive.interval == Duration::seconds(5));
  CHECK(d.tcp_keepalive.count == 4);
  CHECK(d.tcp_user_timeout == Duration::seconds(45));

  REQUIRE(c.routes.size() == 3);
  const Route& slow = c.routes[0];
  CHECK(slow.name == "slow-api");
  CHECK(slow.match.host == "*.api.example.com");
  CHECK(slow.match.ports == std::vector<uint16_t>{443, 8443});
  CHECK(slow.match.methods == std::vector<std::string>{"GET", "POST"});
  // Overridden here; everything else comes from the [defaults] written below.
  CHECK(slow.settings.response_header_timeout == Duration::seconds(120));
  CHECK(slow.settings.dns_timeout == Duration::seconds(1));
  CHECK(slow.settings.connect_timeout == Duration::seconds(2));
  CHECK(slow.settings.idle_timeout == Duration::seconds(20));
  CHECK(slow.settings.request_timeout == Duration::seconds(3600));
  CHECK(slow.settings.upstream_keepalive_timeout == Duration::seconds(10));
  CHECK(slow.settings.tunnel_idle_timeout == Duration::seconds(90));
  CHECK(slow.settings.tunnel_max_duration == Duration::seconds(7200));
  CHECK(slow.settings.teardown == Teardown::graceful);
  CHECK(slow.settings.tcp_user_timeout == Duration::seconds(45));
  // A partial tcp_keepalive table keeps the inherited idle and interval.
  CHECK(slow.settings.tcp_keepalive.enabled);
  CHECK(slow.settings.tcp_keepalive.idle == Duration::seconds(60));
  CHECK(slow.settings.tcp_keepalive.interval == Duration::seconds(5));
  CHECK(slow.settings.tcp_keepalive.count == 7);

  const Route& up = c.routes[1];
  CHECK(up.name == "uploads");
  CHECK(up.match.host == "files.example.com");
  CHECK(up.match.ports == std::vector<uint16_t>{80});
  CHECK(up.match.methods == std::vector<std::string>{"PUT"});
  CHECK(up.match.path_prefix == "/upload/");
  CHECK(up.settings.request_timeout == Duration::seconds(600));
  CHECK(up.settings.teardown == Teardown::reset);
  CHECK(up.settings.response_header_timeout == Duration::seconds(15));

  const Route& nk = c.routes[2];
  CHECK(nk.match.host == "*");
  CHECK_FALSE(nk.settings.tcp_keepalive.enabled);
  CHECK(nk.settings.tcp_user_timeout.is_off());
  CHECK(nk.settings.connect_timeout == Duration::seconds(2));
}

TEST_CASE("[defaults] may say action = deny, and routes inherit it", "[config]") {
  const Config c = parse_ok(R"([defaults]
action = "deny"
[[route]]
name = "allowed"
match = { host = "ok.example.com" }
action = "forward"
[[route]]
name = "inherits"
match = { host = "other.example.com" }
)");
  CHECK(c.defaults.action == RouteAction::deny);
  REQUIRE(c.routes.size() == 2);
  CHECK(c.routes[0].settings.action == RouteAction::forward);
  CHECK(c.routes[1].settings.action == RouteAction::deny);
}

TEST_CASE("routes may be written as a regular table with a [route.match] subtable", "[config]") {
  const Config c = parse_ok(R"([[route]]
name = "a"
[route.match]
host = "a.example.com"
port = [8080]
)");
  REQUIRE(c.routes.size() == 1);
  CHECK(c.routes[0].match.host == "a.example.com");
  CHECK(c.routes[0].match.ports == std::vector<uint16_t>{8080});
}

TEST_CASE("unknown keys are errors with a suggestion", "[config][errors]") {
  ConfigError e = one_error("wrkers = 2\n", 1, 1, "unknown key \"wrkers\"");
  CHECK_THAT(e.message, Catch::Contains("did you mean \"workers\"?"));

  e = one_error("[defaults]\nconect_timeout = \"5s\"\n", 2, 1, "unknown key \"conect_timeout\"");
  CHECK_THAT(e.message, Catch::Contains("in [defaults]"));
  CHECK_THAT(e.message, Catch::Contains("did you mean \"connect_timeout\"?"));

  e = one_error("[listen]\n  adress = \"127.0.0.1:1\"\n", 2, 3, "did you mean \"address\"?");

  e = one_error("[listen]\nfrobnicate = 1\n", 2, 1, "unknown key \"frobnicate\" in [listen]");
  CHECK_THAT(e.message, !Catch::Contains("did you mean"));

  e = one_error("[admin]\nport = 1\n", 2, 1, "unknown key \"port\" in [admin]");
  e = one_error("[access_log]\nfromat = \"json\"\n", 2, 1, "did you mean \"format\"?");
  e = one_error("[[route]]\nname = \"r\"\nmatch = { host = \"x\", prot = 1 }\n", 3, 23,
                "unknown key \"prot\" in route[0].match; did you mean \"port\"?");
  e = one_error("[[route]]\nname = \"r\"\nmatch = {}\nconnect_timeot = \"1s\"\n", 4, 1,
                "did you mean \"connect_timeout\"?");
  e = one_error("[defaults]\ntcp_keepalive = { idle = \"30s\", intervall = \"5s\" }\n", 2, 33,
                "did you mean \"interval\"?");
}

TEST_CASE("a misplaced key says where it belongs", "[config][errors]") {
  // The classic TOML slip: a top-level key written under a table header.
  ConfigError e = one_error("[listen]\nworkers = 2\n", 2, 1, "unknown key \"workers\" in [listen]");
  CHECK_THAT(e.message, Catch::Contains("belongs at the top level"));

  e = one_error("connect_timeout = \"1s\"\n", 1, 1, "belongs in [defaults] or a [[route]]");
  e = one_error("[[route]]\nname = \"r\"\nmatch = {}\nhost = \"x\"\n", 4, 1,
                "belongs in a route's match table");
}

TEST_CASE("top-level values are checked", "[config][errors]") {
  one_error("workers = 0\n", 1, 11, "workers: 0 is out of range 1..1024");
  one_error("workers = \"2\"\n", 1, 11, "workers: expected an integer, got a string");
  one_error("workers = 2.5\n", 1, 11, "expected an integer, got a float");
  one_error("drain_timeout = 5\n", 1, 17,
            "drain_timeout: expected a duration string like \"5s\", got an integer");
  one_error("linger_timeout = \"2x\"\n", 1, 18, "linger_timeout: \"2x\": unknown unit \"x\"");
  one_error("drain_timeout = \"off\"\n", 1, 17, "\"off\" is not allowed");
  one_error("linger_timeout = \"0s\"\n", 1, 18, "greater than zero");
  one_error("log_level = \"verbose\"\n", 1, 13,
            "log_level: \"verbose\" is not one of \"trace\", \"debug\", \"info\", \"warn\", "
            "\"error\", \"critical\", \"off\"");
  CHECK(parse_ok("log_level = \"off\"\n").log_level == "off");
  one_error("listen = 1\n", 1, 10, "listen: expected a table, got an integer");
}

TEST_CASE("\"off\" is allowed only where SPEC 4 allows it", "[config][errors]") {
  const Config c = parse_ok(
      "[defaults]\nrequest_timeout = \"off\"\ntunnel_max_duration = \"off\"\n"
      "tcp_user_timeout = \"off\"\n");
  CHECK(c.defaults.request_timeout.is_off());
  CHECK(c.defaults.tunnel_max_duration.is_off());
  CHECK(c.defaults.tcp_user_timeout.is_off());

  for (const char* key : {"dns_timeout", "connect_timeout", "response_header_timeout",
                          "idle_timeout", "upstream_keepalive_timeout", "tunnel_idle_timeout"}) {
    INFO(key);
    const std::string text = std::string("[defaults]\n") + key + " = \"off\"\n";
    const int column = static_cast<int>(std::string(key).size()) + 4;
    one_error(text, 2, column, std::string("defaults.") + key + ": \"off\" is not allowed");
  }
  one_error("[listen]\nrequest_header_timeout = \"off\"\n", 2, 26, "\"off\" is not allowed");
  one_error("[listen]\nclient_keepalive_timeout = \"off\"\n", 2, 28, "\"off\" is not allowed");
  one_error("[defaults]\nrequest_timeout = 30\n", 2, 19,
            "expected a duration string like \"5s\", or \"off\", got an integer");
}

TEST_CASE("listen values are checked", "[config][errors]") {
  one_error("[listen]\naddress = \"127.0.0.1\"\n", 2, 11,
            "listen.address: \"127.0.0.1\" has no port");
  one_error("[listen]\naddress = \"999.0.0.1:80\"\n", 2, 11, "is not an IPv4 address");
  one_error("[listen]\naddress = \"[::1]:70000\"\n", 2, 11, "port 70000 is out of range 0..65535");
  one_error("[listen]\naddress = \"::1:80\"\n", 2, 11, "needs brackets");
  one_error("[listen]\naddress = \"off\"\n", 2, 11, "listen.address");
  one_error("[listen]\naddress = 3128\n", 2, 11, "expected a string, got an integer");
  CHECK(parse_ok("[listen]\naddress = \"localhost:0\"\n").listen.address == "localhost:0");

  one_error("[listen]\nmax_client_connections = 0\n", 2, 26, "out of range 1..");
  one_error("[listen]\nvia = \"yes\"\n", 2, 7, "listen.via: expected true or false, got a string");

  ConfigError e = one_error("[listen]\nallow_clients = [\"127.0.0.0/8\", \"10.0.0.1/8\"]\n", 2, 33,
                            "10.0.0.1/8 has host bits set");
  CHECK_THAT(e.message, Catch::Contains("did you mean \"10.0.0.0/8\"?"));
  one_error("[listen]\nallow_clients = [\"10.0.0.0/33\"]\n", 2, 18, "prefix length must be 0..32");
  one_error("[listen]\nallow_clients = [\"nope\"]\n", 2, 18, "is not an IPv4 or IPv6 address");
  one_error("[listen]\nallow_clients = [5]\n", 2, 18, "expected a string, got an integer");
  one_error("[listen]\nallow_clients = \"10.0.0.0/8\"\n", 2, 17, "expected an array of CIDR");
  one_error("[listen]\nallow_clients = []\n", 2, 17, "would refuse every client");
}

TEST_CASE("connect_ports", "[config]") {
  Config c = parse_ok("[listen]\nconnect_ports = [\"*\"]\n");
  CHECK(c.listen.connect_any_port);
  CHECK(c.listen.connect_ports.empty());

  c = parse_ok("[listen]\nconnect_ports = [443, 8443, 22]\n");
  CHECK_FALSE(c.listen.connect_any_port);
  CHECK(c.listen.connect_ports == std::vector<uint16_t>{443, 8443, 22});

  one_error("[listen]\nconnect_ports = [0]\n", 2, 18, "0 is out of range 1..65535");
  one_error("[listen]\nconnect_ports = [443, 65536]\n", 2, 23, "65536 is out of range 1..65535");
  one_error("[listen]\nconnect_ports = [\"*\", 443]\n", 2, 18, "\"*\" must be the only element");
  one_error("[listen]\nconnect_ports = [\"443\"]\n", 2, 18,
            "expected a port number 1..65535 or \"*\", got \"443\"");
  one_error("[listen]\nconnect_ports = 443\n", 2, 17, "expected an array of ports");
}

TEST_CASE("admin and access_log values are checked", "[config][errors]") {
  one_error("[admin]\naddress = \"nope\"\n", 2, 11, "admin.address: \"nope\" has no port");
  CHECK(parse_ok("[admin]\naddress = \"[::1]:9901\"\n").admin.address == "[::1]:9901");
  one_error("[access_log]\nformat = \"xml\"\n", 2, 10,
            "access_log.format: \"xml\" is not one of \"text\", \"json\"");
  one_error("[access_log]\npath = \"\"\n", 2, 8, "empty path");
  one_error("[access_log]\npath = 1\n", 2, 8, "expected a string");
}

TEST_CASE("[dns] servers", "[config][dns]") {
  Config c = parse_ok(
      "[dns]\nservers = [\"127.0.0.1:5353\", \"10.0.0.53\", \"[::1]:53\", \"fd00::53\", "
      "\"[fd00::54]\"]\n");
  CHECK(
      c.dns.servers ==
      std::vector<DnsServer>{
          {"127.0.0.1", 5353}, {"10.0.0.53", 53}, {"::1", 53}, {"fd00::53", 53}, {"fd00::54", 53}});

  one_error("[dns]\nservers = [\"127.0.0.1:5353\", \"localhost:53\"]\n", 2, 30,
            "dns.servers: \"localhost:53\": \"localhost\" is not an IP address");
  one_error("[dns]\nservers = [\"ns1.example.com\"]\n", 2, 12,
            "dns.servers: \"ns1.example.com\" is not an IP address");
  one_error("[dns]\nservers = [\"127.0.0.1:0\"]\n", 2, 12, "port 0 is out of range 1..65535");
  one_error("[dns]\nservers = [\"127.0.0.1:65536\"]\n", 2, 12, "out of range");
  // Without brackets the whole text is the address: "::1:53" is an IPv6
  // address of its own, and a port needs "[::1]:53".
  CHECK(parse_ok("[dns]\nservers = [\"::1:53\"]\n").dns.servers ==
        std::vector<DnsServer>{{"::1:53", 53}});
  one_error("[dns]\nservers = [\"fd00::53:dns\"]\n", 2, 12, "needs brackets");
  one_error("[dns]\nservers = [\"[127.0.0.1]\"]\n", 2, 12, "is not an IPv6 address");
  one_error("[dns]\nservers = [53]\n", 2, 12, "dns.servers element: expected a string");
  one_error("[dns]\nservers = \"127.0.0.1\"\n", 2, 11, "dns.servers: expected an array");
  one_error("[dns]\nservers = []\n", 2, 11, "empty list; leave servers out");
  ConfigError e =
      one_error("[dns]\nserver = [\"127.0.0.1\"]\n", 2, 1, "unknown key \"server\" in [dns]");
  CHECK_THAT(e.message, Catch::Contains("did you mean \"servers\"?"));
  e = one_error("[listen]\nservers = [\"127.0.0.1\"]\n", 2, 1, "unknown key \"servers\"");
  CHECK_THAT(e.message, Catch::Contains("\"servers\" belongs in [dns]"));
  one_error("dns = 1\n", 1, 7, "dns: expected a table, got an integer");
}

TEST_CASE("route settings values are checked", "[config][errors]") {
  one_error("[defaults]\nteardown = \"abort\"\n", 2, 12,
            "defaults.teardown: \"abort\" is not one of \"reset\", \"graceful\"");
  one_error("[defaults]\naction = \"allow\"\n", 2, 10,
            "\"allow\" is not one of \"forward\", \"deny\"");
  one_error("[defaults]\nidle_timeout = \"1.5s\"\n", 2, 16, "fractions are not allowed");
  one_error("[defaults]\ntunnel_idle_timeout = \"9999h\"\n", 2, 23, "too long");
  one_error("[[route]]\nname = \"r\"\nmatch = {}\nteardown = \"soft\"\n", 4, 12,
            "route[0].teardown: \"soft\" is not one of");
}

TEST_CASE("tcp_user_timeout fits the kernel's TCP_USER_TIMEOUT", "[config][errors]") {
  // The kernel takes milliseconds in an int: 2147483647ms, about 596h.
  CHECK(parse_ok("[defaults]\ntcp_user_timeout = \"2147483647ms\"\n").defaults.tcp_user_timeout ==
        Duration::millis(2147483647));
  CHECK(parse_ok("[defaults]\ntcp_user_timeout = \"596h\"\n").defaults.tcp_user_timeout ==
        Duration::seconds(596 * 3600));
  CHECK(parse_ok("[defaults]\ntcp_user_timeout = \"off\"\n").defaults.tcp_user_timeout.is_off());
  one_error("[defaults]\ntcp_user_timeout = \"2147483648ms\"\n", 2, 20,
            "defaults.tcp_user_timeout: \"2147483648ms\" is longer than the kernel takes for "
            "TCP_USER_TIMEOUT (at most 2147483647ms, about 596h)");
  one_error("[defaults]\ntcp_user_timeout = \"597h\"\n", 2, 20, "at most 2147483647ms");
  one_error("[[route]]\nname = \"r\"\nmatch = {}\ntcp_user_timeout = \"700h\"\n", 4, 20,
            "route[0].tcp_user_timeout: \"700h\" is longer than");
}

TEST_CASE("min_rate in [defaults] and routes", "[config][min_rate]") {
  SECTION("spellings") {
    CHECK(parse_ok("[defaults]\nmin_rate = \"100B/2s\"\n").defaults.min_rate ==
          MinRate::of(100, Duration::seconds(2)));
    CHECK(parse_ok("[defaults]\nmin_rate = \"64KiB/5s\"\n").defaults.min_rate ==
          MinRate::of(64 * 1024, Duration::seconds(5)));
    CHECK(parse_ok("[defaults]\nmin_rate = \"2MiB/1m\"\n").defaults.min_rate ==
          MinRate::of(2 * 1024 * 1024, Duration::seconds(60)));
    CHECK(parse_ok("[defaults]\nmin_rate = \"1GiB/1h\"\n").defaults.min_rate ==
          MinRate::of(uint64_t{1} << 30, Duration::seconds(3600)));
    CHECK(parse_ok("[defaults]\nmin_rate = \"off\"\n").defaults.min_rate.is_off());
  }
  SECTION("routes inherit [defaults] and may override it") {
    const Config c = parse_ok(R"(
[defaults]
min_rate = "10KiB/10s"
[[route]]
name = "inherits"
match = { host = "a.example" }
[[route]]
name = "own"
match = { host = "b.example" }
min_rate = "1B/500ms"
[[route]]
name = "unlimited"
match = { host = "c.example" }
min_rate = "off"
)");
    REQUIRE(c.routes.size() == 3);
    CHECK(c.routes[0].settings.min_rate == MinRate::of(10 * 1024, Duration::seconds(10)));
    CHECK(c.routes[1].settings.min_rate == MinRate::of(1, Duration::millis(500)));
    CHECK(c.routes[2].settings.min_rate.is_off());
  }
  SECTION("bad values name file:line:column") {
    one_error("[defaults]\nmin_rate = \"0B/30s\"\n", 2, 12,
              "defaults.min_rate: \"0B/30s\": an amount of zero never fires");
    one_error("[defaults]\nmin_rate = \"1KiB/0s\"\n", 2, 12,
              "defaults.min_rate: \"1KiB/0s\": the window: \"0s\": a duration must be greater "
              "than zero");
    one_error("[defaults]\nmin_rate = \"100/2s\"\n", 2, 12, "the amount has no unit");
    one_error("[defaults]\nmin_rate = \"1KB/30s\"\n", 2, 12, "unknown unit \"KB\"");
    one_error("[defaults]\nmin_rate = \"1KiB\"\n", 2, 12, "has no window");
    one_error("[defaults]\nmin_rate = \"1KiB/30\"\n", 2, 12, "has no unit");
    one_error("[defaults]\nmin_rate = 1024\n", 2, 12,
              "defaults.min_rate: expected a rate string like \"1KiB/30s\", or \"off\", got "
              "an integer");
    one_error("[[route]]\nname = \"r\"\nmatch = {}\nmin_rate = \"1KiB/50ms\"\n", 4, 12,
              "route[0].min_rate: \"1KiB/50ms\": the window must be at least 100ms");
    one_error("[defaults]\nmin_rate_ = \"1KiB/30s\"\n", 2, 1, "did you mean \"min_rate\"?");
  }
}

TEST_CASE("tcp_keepalive", "[config]") {
  Config c = parse_ok("[defaults]\ntcp_keepalive = \"off\"\n");
  CHECK_FALSE(c.defaults.tcp_keepalive.enabled);

  c = parse_ok("[defaults.tcp_keepalive]\nidle = \"2m\"\ncount = 9\n");
  CHECK(c.defaults.tcp_keepalive.enabled);
  CHECK(c.defaults.tcp_keepalive.idle == Duration::seconds(120));
  CHECK(c.defaults.tcp_keepalive.interval == Duration::seconds(10));
  CHECK(c.defaults.tcp_keepalive.count == 9);

  one_error("[defaults]\ntcp_keepalive = { count = 0 }\n", 2, 27,
            "defaults.tcp_keepalive.count: 0 is out of range 1..100");
  one_error("[defaults]\ntcp_keepalive = { count = 101 }\n", 2, 27, "out of range 1..100");
  one_error("[defaults]\ntcp_keepalive = { idle = \"off\" }\n", 2, 26, "\"off\" is not allowed");
  one_error("[defaults]\ntcp_keepalive = { interval = 5 }\n", 2, 30,
            "expected a duration string like \"5s\"");
  one_error("[defaults]\ntcp_keepalive = { idle = \"1500ms\" }\n", 2, 26,
            "must be a whole number of seconds");
  one_error("[defaults]\ntcp_keepalive = \"on\"\n", 2, 17, "expected \"off\" or a table");
  one_error("[defaults]\ntcp_keepalive = 5\n", 2, 17, "expected \"off\" or a table");
}

TEST_CASE("route names are required, non-empty and unique", "[config][errors]") {
  one_error("[[route]]\nmatch = {}\n", 1, 1, "route[0]: missing required key \"name\"");
  one_error("[[route]]\nname = \"r\"\n", 1, 1, "route[0]: missing required key \"match\"");
  one_error("[[route]]\nname = \"\"\nmatch = {}\n", 2, 8, "must not be empty");
  one_error("[[route]]\nname = 7\nmatch = {}\n", 2, 8, "route[0].name: expected a string");
  one_error("[[route]]\nname = \"default\"\nmatch = {}\n", 2, 8, "\"default\" is reserved");
  one_error("[[route]]\nname = \"a b\"\nmatch = {}\n", 2, 8, "visible ASCII");
  const ConfigError e = one_error(
      "[[route]]\nname = \"dup\"\nmatch = {}\n\n[[route]]\nname = \"other\"\nmatch = {}\n\n"
      "[[route]]\nname = \"dup\"\nmatch = {}\n",
      10, 8, "route[2]: duplicate route name \"dup\" (first used on line 2)");
  (void)e;
  one_error("[route]\nname = \"r\"\n", 1, 1, "write [[route]] (an array of tables), not [route]");
  one_error("route = 5\n", 1, 9, "expected an array of tables");
  one_error("route = [1]\n", 1, 10, "route[0]: expected a table, got an integer");
}

TEST_CASE("route match values are checked and normalised", "[config]") {
  auto match_of = [](const std::string& match) {
    const Config c = parse_ok("[[route]]\nname = \"r\"\nmatch = " + match + "\n");
    REQUIRE(c.routes.size() == 1);
    return c.routes[0].match;
  };
  CHECK(match_of("{ host = \"Example.COM\" }").host == "example.com");
  CHECK(match_of("{ host = \"*\" }").host == "*");
  CHECK(match_of("{ host = \"*.Example.com\" }").host == "*.example.com");
  CHECK(match_of("{ port = 8080 }").ports == std::vector<uint16_t>{8080});
  CHECK(match_of("{ port = [80, 443] }").ports == std::vector<uint16_t>{80, 443});
  CHECK(match_of("{ method = \"get\" }").methods == std::vector<std::string>{"GET"});
  CHECK(match_of("{ method = [\"connect\", \"M-SEARCH\"] }").methods ==
        std::vector<std::string>{"CONNECT", "M-SEARCH"});
  CHECK(match_of("{ path_prefix = \"/api/\" }").path_prefix == "/api/");
  // SPEC §9: hosts canonical and prefixes normalised, as requests are.
  CHECK(match_of("{ host = \"127.1\" }").host == "127.0.0.1");
  CHECK(match_of("{ host = \"0x7f000001\" }").host == "127.0.0.1");
  CHECK(match_of("{ host = \"Example.com.\" }").host == "example.com");
  CHECK(match_of("{ host = \"*.Example.com.\" }").host == "*.example.com");
  CHECK(match_of("{ host = \"[::1]\" }").host == "::1");
  CHECK(match_of("{ host = \"::FFFF:10.0.0.1\" }").host == "10.0.0.1");
  CHECK(match_of("{ path_prefix = \"/%61dmin//x/./\" }").path_prefix == "/admin/x/");
  CHECK(match_of("{ path_prefix = \"/caf\u00e9/a b\" }").path_prefix == "/caf%C3%A9/a%20b");
  const RouteMatch by_address = match_of("{ address = [\"10.0.0.0/8\", \"fd00::/8\"] }");
  REQUIRE(by_address.addresses.size() == 2);
  CHECK(by_address.addresses[0].prefix == 8);
  CHECK(by_address.addresses[1].v6);
  const RouteMatch empty = match_of("{}");
  CHECK(empty.host.empty());
  CHECK(empty.ports.empty());
  CHECK(empty.methods.empty());
  CHECK(empty.path_prefix.empty());

  const std::string head = "[[route]]\nname = \"r\"\nmatch = ";
  // Column 9 is the match table's "{"; the values start at fixed offsets after it.
  one_error(head + "{ host = \"a*.com\" }\n", 3, 18, "\"*\" may only be the whole host");
  one_error(head + "{ host = \"*a.com\" }\n", 3, 18, "\"*\" may only be");
  one_error(head + "{ host = \"*.\" }\n", 3, 18, "\"*\" may only be");
  one_error(head + "{ host = \"*.*.com\" }\n", 3, 18, "\"*\" may only be");
  one_error(head + "{ host = \"a.*\" }\n", 3, 18, "\"*\" may only be");
  one_error(head + "{ host = \"\" }\n", 3, 18, "empty host");
  one_error(head + "{ port = 0 }\n", 3, 18, "route[0].match.port: 0 is out of range 1..65535");
  one_error(head + "{ port = [80, 70000] }\n", 3, 23, "70000 is out of range 1..65535");
  one_error(head + "{ port = [] }\n", 3, 18, "empty list");
  one_error(head + "{ port = \"443\" }\n", 3, 18, "expected a port number or an array");
  one_error(head + "{ method = \"GE T\" }\n", 3, 20, "\"GE T\" is not an HTTP method token");
  one_error(head + "{ method = [\"GET\", \"\"] }\n", 3, 28, "\"\" is not an HTTP method token");
  one_error(head + "{ method = [] }\n", 3, 20, "empty list");
  one_error(head + "{ path_prefix = \"api\" }\n", 3, 25, "\"api\" must start with \"/\"");
  one_error(head + "{ path_prefix = \"/a%zz\" }\n", 3, 25, "not followed by two hex digits");
  one_error(head + "{ path_prefix = \"/a?b\" }\n", 3, 25, "leave out \"?\" and \"#\"");
  for (const char* prefix : {"/a;v=1/", "/a%2fb", "/a%5Cb", "/a\\\\b"}) {
    INFO(prefix);
    one_error(head + "{ path_prefix = \"" + prefix + "\" }\n", 3, 25,
              "which servers read differently");
  }
  one_error(head + "{ host = \"exa mple.com\" }\n", 3, 18, "neither a host name nor an address");
  one_error(head + "{ host = \"[127.0.0.1]\" }\n", 3, 18, "neither a host name nor");
  one_error(head + "{ address = [] }\n", 3, 21, "empty list");
  one_error(head + "{ host = \"*.1\" }\n", 3, 18, "a wildcard covers the names below a domain");
  one_error(head + "{ host = \"*.127.0.0.1\" }\n", 3, 18, "not addresses");
  one_error(head + "{ host = \"*.[::1]\" }\n", 3, 18, "not addresses");
  one_error(head + "{ address = [\"10.0.0.1/8\"] }\n", 3, 22, "has host bits set");
  one_error(head + "{ address = \"10.0.0.0/8\" }\n", 3, 21, "expected an array of CIDR strings");
  one_error(head + "\"example.com\"\n", 3, 9, "route[0].match: expected a table");
}

TEST_CASE("every error of a file is reported, in file order", "[config][errors]") {
  const std::vector<ConfigError> errors = parse_errors(R"(workers = 0
bogus = 1

[[route]]
name = "a"
match = { host = "x*" }
connect_timeout = "soon"

[listen]
address = "nowhere"

[defaults]
dns_timeout = "off"
)");
  REQUIRE(errors.size() == 6);
  CHECK(errors[0].to_string() == "test.toml:1:11: workers: 0 is out of range 1..1024");
  CHECK(errors[1].line == 2);
  CHECK(errors[1].column == 1);
  CHECK(errors[2].line == 6);
  CHECK(errors[2].column == 18);
  CHECK(errors[3].line == 7);
  CHECK(errors[3].column == 19);
  CHECK(errors[4].line == 10);
  CHECK(errors[4].column == 11);
  CHECK(errors[5].line == 13);
  CHECK(errors[5].column == 15);
}

TEST_CASE("a TOML syntax error is one error with its position", "[config][errors]") {
  std::vector<ConfigError> errors = parse_errors("workers = 2\nlisten = \n");
  REQUIRE(errors.size() == 1);
  CHECK(errors[0].file == "test.toml");
  CHECK(errors[0].line == 2);
  CHECK(errors[0].column == 10);
  CHECK_FALSE(errors[0].message.empty());

  errors = parse_errors("workers = 2\nworkers = 3\n");
  REQUIRE(errors.size() == 1);
  CHECK(errors[0].line == 2);
}

TEST_CASE("ConfigError::to_string", "[config]") {
  CHECK(ConfigError{"a.toml", 3, 7, "bad"}.to_string() == "a.toml:3:7: bad");
  CHECK(ConfigError{"a.toml", 0, 0, "cannot read file: x"}.to_string() ==
        "a.toml: cannot read file: x");
}

TEST_CASE("load_config_file", "[config]") {
  SECTION("missing file") {
    const ConfigResult r = load_config_file("/nonexistent/cutoff.toml");
    REQUIRE(std::holds_alternative<std::vector<ConfigError>>(r));
    const auto& errors = std::get<std::vector<ConfigError>>(r);
    REQUIRE(errors.size() == 1);
    CHECK(errors[0].line == 0);
    CHECK(errors[0].column == 0);
    CHECK(errors[0].to_string() ==
          "/nonexistent/cutoff.toml: cannot read file: No such file or directory");
  }
  SECTION("a directory") {
    const ConfigResult r = load_config_file("/");
    REQUIRE(std::holds_alternative<std::vector<ConfigError>>(r));
    CHECK(std::get<std::vector<ConfigError>>(r)[0].message == "cannot read file: Is a directory");
  }
  SECTION("a real file, good and bad") {
    char path[] = "/tmp/cutoff-config-test-XXXXXX";
    const int fd = mkstemp(path);
    REQUIRE(fd >= 0);
    close(fd);
    {
      std::ofstream out(path);
      out << "workers = 3\n[listen]\naddress = \"127.0.0.1:0\"\n";
    }
    ConfigResult r = load_config_file(path);
    REQUIRE(std::holds_alternative<Config>(r));
    CHECK(std::get<Config>(r).workers == 3);
    CHECK(std::get<Config>(r).listen.address == "127.0.0.1:0");
    {
      std::ofstream out(path);
      out << "\n\nworkers = -1\n";
    }
    r = load_config_file(path);
    REQUIRE(std::holds_alternative<std::vector<ConfigError>>(r));
    const auto& errors = std::get<std::vector<ConfigError>>(r);
    REQUIRE(errors.size() == 1);
    CHECK(errors[0].to_string() ==
          std::string(path) + ":3:11: workers: -1 is out of range 1..1024");
    std::remove(path);
  }
}

TEST_CASE("parse_host_port", "[config][address]") {
  std::string host;
  uint16_t port = 1;
  std::string error;
  auto ok = [&](const char* text, const char* want_host, uint16_t want_port) {
    INFO(text);
    error.clear();
    REQUIRE(parse_host_port(text, &host, &port, &error));
    CHECK(host == want_host);
    CHECK(port == want_port);
  };
  ok("127.0.0.1:3128", "127.0.0.1", 3128);
  ok("0.0.0.0:0", "0.0.0.0", 0);
  ok("[::1]:8080", "::1", 8080);
  ok("[::]:65535", "::", 65535);
  ok("localhost:9901", "localhost", 9901);
  ok("proxy-1.internal.example.com:3128", "proxy-1.internal.example.com", 3128);
  ok(":3128", "", 3128);

  auto bad = [&](const char* text, const char* what) {
    INFO(text);
    error.clear();
    CHECK_FALSE(parse_host_port(text, &host, &port, &error));
    CHECK_THAT(error, Catch::Contains(what));
  };
  bad("", "empty address");
  bad("127.0.0.1", "has no port");
  bad("127.0.0.1:", "missing port");
  bad("127.0.0.1:65536", "out of range 0..65535");
  bad("127.0.0.1:100000", "out of range 0..65535");
  bad("127.0.0.1:http", "is not a port number");
  bad("127.0.0.1:-1", "is not a port number");
  bad("256.0.0.1:80", "is not an IPv4 address");
  bad("1.2.3:80", "is not an IPv4 address");
  bad("::1:80", "needs brackets");
  bad("[::1:80", "missing \"]\"");
  bad("[::1]80", "expected :port");
  bad("[::1]", "expected :port");
  bad("[nope]:80", "is not an IPv6 address");
  bad("bad_host:80", "is not a host name");
  bad("-bad.example:80", "is not a host name");
  bad("a..b:80", "is not a host name");
  bad("host :80", "is not a host name");
}

TEST_CASE("parse_ip_port", "[config][address]") {
  std::string ip;
  uint16_t port = 1;
  std::string error;
  auto ok = [&](const char* text, const char* want_ip, uint16_t want_port) {
    INFO(text);
    error.clear();
    REQUIRE(parse_ip_port(text, 53, &ip, &port, &error));
    CHECK(ip == want_ip);
    CHECK(port == want_port);
  };
  ok("10.0.0.53", "10.0.0.53", 53);
  ok("10.0.0.53:5353", "10.0.0.53", 5353);
  ok("::1", "::1", 53);
  ok("fd00::53", "fd00::53", 53);
  ok("[fd00::53]", "fd00::53", 53);
  ok("[fd00::53]:65535", "fd00::53", 65535);

  auto bad = [&](const char* text, const char* what) {
    INFO(text);
    error.clear();
    CHECK_FALSE(parse_ip_port(text, 53, &ip, &port, &error));
    CHECK_THAT(error, Catch::Contains(what));
  };
  bad("", "empty address");
  bad("localhost", "is not an IP address");
  bad("localhost:53", "is not an IP address");
  bad(":53", "is not an IP address");
  bad("127.1", "is not an IP address");
  bad("10.0.0.53:0", "port 0 is out of range 1..65535");
  bad("10.0.0.53:", "missing port");
  bad("10.0.0.53:dns", "is not a port number");
  bad("[fd00::53]:70000", "out of range");
  bad("[10.0.0.53]", "is not an IPv6 address");
  bad("[fd00::53", "missing \"]\"");
  bad("fd00::53:zz", "needs brackets");
}

TEST_CASE("parse_cidr", "[config][cidr]") {
  Cidr net;
  std::string error;
  REQUIRE(parse_cidr("10.0.0.0/8", &net, &error));
  CHECK_FALSE(net.v6);
  CHECK(net.prefix == 8);
  CHECK(net.addr[0] == 10);
  CHECK(net.addr[1] == 0);

  REQUIRE(parse_cidr("192.168.1.7", &net, &error));
  CHECK(net.prefix == 32);
  CHECK(cidr_text(net) == "192.168.1.7/32");

  REQUIRE(parse_cidr("::1", &net, &error));
  CHECK(net.v6);
  CHECK(net.prefix == 128);
  CHECK(net.addr[15] == 1);

  REQUIRE(parse_cidr("2001:db8::/32", &net, &error));
  CHECK(net.v6);
  CHECK(net.prefix == 32);
  CHECK(cidr_text(net) == "2001:db8::/32");

  REQUIRE(parse_cidr("0.0.0.0/0", &net, &error));
  CHECK(net.prefix == 0);
  REQUIRE(parse_cidr("172.16.0.0/12", &net, &error));
  CHECK(net.addr[1] == 16);

  auto bad = [&](const char* text, const char* what) {
    INFO(text);
    error.clear();
    CHECK_FALSE(parse_cidr(text, &net, &error));
    CHECK_THAT(error, Catch::Contains(what));
  };
  bad("10.0.0.1/8", "10.0.0.1/8 has host bits set; did you mean \"10.0.0.0/8\"?");
  bad("172.17.0.0/12", "did you mean \"172.16.0.0/12\"?");
  bad("2001:db8::1/64", "did you mean \"2001:db8::/64\"?");
  bad("10.0.0.0/33", "the prefix length must be 0..32");
  bad("::/129", "the prefix length must be 0..128");
  bad("10.0.0.0/", "the prefix length");
  bad("10.0.0.0/-1", "the prefix length");
  bad("10.0.0.0/8/8", "the prefix length");
  bad("10.0.0.0/0008", "the prefix length");
  bad("10.0.0/8", "is not an IPv4 or IPv6 address");
  bad("/8", "is not an IPv4 or IPv6 address");
  bad("example.com/8", "is not an IPv4 or IPv6 address");
  bad("", "is not an IPv4 or IPv6 address");
}

TEST_CASE("cidr_contains", "[config][cidr]") {
  auto net_of = [](const char* text) {
    Cidr net;
    std::string error;
    REQUIRE(parse_cidr(text, &net, &error));
    return net;
  };
  auto v4 = [](const char* text) {
    std::vector<uint8_t> a(4);
    REQUIRE(inet_pton(AF_INET, text, a.data()) == 1);
    return a;
  };
  auto v6 = [](const char* text) {
    std::vector<uint8_t> a(16);
    REQUIRE(inet_pton(AF_INET6, text, a.data()) == 1);
    return a;
  };
  const Cidr ten = net_of("10.0.0.0/8");
  CHECK(cidr_contains(ten, v4("10.1.2.3").data(), false));
  CHECK(cidr_contains(ten, v4("10.255.255.255").data(), false));
  CHECK_FALSE(cidr_contains(ten, v4("11.0.0.0").data(), false));
  CHECK_FALSE(cidr_contains(ten, v4("9.255.255.255").data(), false));

  const Cidr twelve = net_of("172.16.0.0/12");
  CHECK(cidr_contains(twelve, v4("172.31.255.1").data(), false));
  CHECK_FALSE(cidr_contains(twelve, v4("172.32.0.1").data(), false));
  CHECK_FALSE(cidr_contains(twelve, v4("172.15.0.1").data(), false));

  const Cidr host = net_of("192.168.1.7");
  CHECK(cidr_contains(host, v4("192.168.1.7").data(), false));
  CHECK_FALSE(cidr_contains(host, v4("192.168.1.8").data(), false));

  const Cidr all4 = net_of("0.0.0.0/0");
  CHECK(cidr_contains(all4, v4("203.0.113.9").data(), false));

  // IPv4-mapped IPv6 clients (dual-stack sockets) match IPv4 networks.
  CHECK(cidr_contains(ten, v6("::ffff:10.9.8.7").data(), true));
  CHECK_FALSE(cidr_contains(ten, v6("::ffff:11.9.8.7").data(), true));
  CHECK(cidr_contains(net_of("127.0.0.0/8"), v6("::ffff:127.0.0.1").data(), true));
  // A plain IPv6 address is not an IPv4 client, even when its low bytes look like one.
  CHECK_FALSE(cidr_contains(ten, v6("::10.1.2.3").data(), true));
  CHECK_FALSE(cidr_contains(all4, v6("2001:db8::1").data(), true));

  const Cidr loop6 = net_of("::1/128");
  CHECK(cidr_contains(loop6, v6("::1").data(), true));
  CHECK_FALSE(cidr_contains(loop6, v6("::2").data(), true));
  CHECK_FALSE(cidr_contains(loop6, v4("0.0.0.1").data(), false));

  const Cidr doc = net_of("2001:db8::/33");
  CHECK(cidr_contains(doc, v6("2001:db8:7fff::1").data(), true));
  CHECK_FALSE(cidr_contains(doc, v6("2001:db8:8000::1").data(), true));

  // An IPv4 client matches a network written in IPv4-mapped form.
  const Cidr mapped = net_of("::ffff:10.0.0.0/104");
  CHECK(cidr_contains(mapped, v4("10.2.3.4").data(), false));
  CHECK_FALSE(cidr_contains(mapped, v4("11.2.3.4").data(), false));
}

TEST_CASE("admin.allow_clients: defaults as listen.allow_clients, set and checked alike",
          "[config]") {
  const std::vector<std::string> private_ranges = {"127.0.0.0/8", "::1/128", "10.0.0.0/8",
                                                   "172.16.0.0/12", "192.168.0.0/16"};
  CHECK(cidr_texts(default_config().admin.allow_clients) == private_ranges);
  CHECK(cidr_texts(parse_ok("").admin.allow_clients) == private_ranges);

  Config c = parse_ok("[admin]\nallow_clients = [\"10.1.0.0/16\", \"::1\"]\n");
  CHECK(cidr_texts(c.admin.allow_clients) == std::vector<std::string>{"10.1.0.0/16", "::1/128"});
  // The two lists are independent.
  CHECK(cidr_texts(c.listen.allow_clients) == private_ranges);

  ConfigError e = one_error("[admin]\nallow_clients = [\"127.0.0.0/8\", \"10.0.0.1/8\"]\n", 2, 33,
                            "admin.allow_clients: 10.0.0.1/8 has host bits set");
  one_error("[admin]\nallow_clients = [\"nope\"]\n", 2, 18, "admin.allow_clients");
  one_error("[admin]\nallow_clients = \"10.0.0.0/8\"\n", 2, 17, "expected an array of CIDR");
  one_error("[admin]\nallow_clients = []\n", 2, 17,
            "admin.allow_clients: an empty list would refuse every client");
  e = one_error("[admin]\nalow_clients = [\"10.0.0.0/8\"]\n", 2, 1, "in [admin]");
  CHECK_THAT(e.message, Catch::Contains("did you mean \"allow_clients\"?"));
}

TEST_CASE("log_query: off by default, a top-level boolean", "[config]") {
  CHECK_FALSE(default_config().log_query);
  CHECK_FALSE(parse_ok("").log_query);
  CHECK(parse_ok("log_query = true\n").log_query);
  CHECK_FALSE(parse_ok("log_query = false\n").log_query);
  one_error("log_query = \"yes\"\n", 1, 13, "log_query: expected true or false, got a string");
  ConfigError e = one_error("[access_log]\nlog_query = true\n", 2, 1, "unknown key");
  CHECK_THAT(e.message, Catch::Contains("belongs at the top level"));
}

TEST_CASE("tls: tunnels by default; interception per route, with a CA", "[config]") {
  const Config plain = parse_ok("");
  CHECK(plain.defaults.tls == TlsMode::tunnel);
  CHECK(plain.defaults.tls_verify_upstream);
  CHECK_FALSE(plain.intercepts);

  const Config c = parse_ok(R"([tls]
ca_cert = "ca/ca.pem"
ca_key = "ca/ca-key.pem"
upstream_ca = "test-servers.pem"

[[route]]
name = "intercepted"
match = { host = "*.example.test" }
tls = "intercept"
tls_verify_upstream = false
)");
  CHECK(c.tls.ca_cert == "ca/ca.pem");
  CHECK(c.tls.ca_key == "ca/ca-key.pem");
  CHECK(c.tls.upstream_ca == "test-servers.pem");
  CHECK(c.intercepts);
  REQUIRE(c.routes.size() == 1);
  CHECK(c.routes[0].settings.tls == TlsMode::intercept);
  CHECK_FALSE(c.routes[0].settings.tls_verify_upstream);
  CHECK(c.defaults.tls == TlsMode::tunnel);
  CHECK(parse_ok("[defaults]\ntls = \"intercept\"\n[tls]\nca_cert = \"a\"\nca_key = \"b\"\n")
            .intercepts);
}

TEST_CASE("tls: interception without a CA, or half a CA, is refused where it is asked for",
          "[config]") {
  ConfigError e = one_error(R"([[route]]
name = "api"
match = { host = "api.example.test" }
tls = "intercept"
)",
                            4, 7, "route \"api\": tls = \"intercept\" needs a CA");
  CHECK_THAT(e.message, Catch::Contains("cutoff ca init"));
  one_error("[defaults]\ntls = \"intercept\"\n", 2, 7, "defaults: tls = \"intercept\" needs a CA");
  one_error("[tls]\nca_cert = \"ca.pem\"\n", 2, 11, "ca_cert and ca_key go together");
  one_error("[tls]\nca_key = \"ca-key.pem\"\n", 2, 10, "ca_cert and ca_key go together");
  one_error("[tls]\nupstream_ca = \"\"\n", 2, 15, "tls.upstream_ca: empty path");
  one_error("[defaults]\ntls = \"decrypt\"\n", 2, 7, "defaults.tls");
  one_error("[defaults]\ntls_verify_upstream = \"no\"\n", 2, 23, "expected true or false");
  e = one_error("[tls]\nca_crt = \"a\"\n", 2, 1, "in [tls]");
  CHECK_THAT(e.message, Catch::Contains("did you mean \"ca_cert\"?"));
}

TEST_CASE("parent_proxy: a URL, none, or env, per route", "[config][parent_proxy]") {
  const Config config = parse_ok(
      "[defaults]\nparent_proxy = \"http://ci:pw@proxy.corp:3128\"\n"
      "[[route]]\nname = \"inside\"\nmatch = { host = \"*.internal\" }\nparent_proxy = \"none\"\n");
  const ParentProxy& parent = config.defaults.parent_proxy;
  REQUIRE(parent.source == ParentProxy::Source::url);
  CHECK(parent.for_target("example.com", 80, false)->url == "http://proxy.corp:3128");
  CHECK(parent.for_target("example.com", 443, true)->url == "http://proxy.corp:3128");
  CHECK(config.routes[0].settings.parent_proxy.source == ParentProxy::Source::none);
  CHECK(default_config().defaults.parent_proxy.source == ParentProxy::Source::none);
}

TEST_CASE("parent_proxy = env reads cutoff's environment at load", "[config][parent_proxy]") {
  ::setenv("HTTPS_PROXY", "http://10.9.8.7:8080", 1);
  ::setenv("NO_PROXY", ".internal,127.0.0.1", 1);
  ::unsetenv("https_proxy");
  ::unsetenv("http_proxy");
  ::unsetenv("HTTP_PROXY");
  ::unsetenv("no_proxy");
  const Config config = parse_ok("[defaults]\nparent_proxy = \"env\"\n");
  const ParentProxy& parent = config.defaults.parent_proxy;
  CHECK(parent.for_target("example.com", 443, true)->url == "http://10.9.8.7:8080");
  CHECK(parent.for_target("example.com", 80, false) == nullptr);
  CHECK(parent.for_target("git.internal", 443, true) == nullptr);

  ::setenv("HTTPS_PROXY", "https://10.9.8.7:8080", 1);
  one_error("[defaults]\nparent_proxy = \"env\"\n", 2, 16, "HTTPS_PROXY: ");
  ::unsetenv("HTTPS_PROXY");
  ::unsetenv("NO_PROXY");
}

TEST_CASE("parent_proxy refuses what it cannot use", "[config][parent_proxy]") {
  one_error("[defaults]\nparent_proxy = \"socks5://p:1080\"\n", 2, 16, "plain HTTP");
  one_error("[defaults]\nparent_proxy = 3128\n", 2, 16, "defaults.parent_proxy");
}

TEST_CASE("[tests]: what is kept about test suites, defaults and bounds", "[config][tests]") {
  for (const Config& c : {default_config(), parse_ok(""), parse_ok("[tests]\n")}) {
    CHECK(c.tests.max_tests == 1000);
    CHECK(c.tests.max_exchanges_per_test == 100);
    CHECK_FALSE(c.tests.metrics_label);
  }
  const Config c = parse_ok(
      "[tests]\nmax_tests = 1000000\nmax_exchanges_per_test = 100000\nmetrics_label = true\n");
  CHECK(c.tests.max_tests == 1'000'000);
  CHECK(c.tests.max_exchanges_per_test == 100'000);
  CHECK(c.tests.metrics_label);
  const Config least = parse_ok("[tests]\nmax_tests = 1\nmax_exchanges_per_test = 1\n");
  CHECK(least.tests.max_tests == 1);
  CHECK(least.tests.max_exchanges_per_test == 1);
  CHECK_FALSE(parse_ok("[tests]\nmetrics_label = false\n").tests.metrics_label);
}

TEST_CASE("[tests] values are checked", "[config][tests][errors]") {
  one_error("[tests]\nmax_tests = 0\n", 2, 13, "tests.max_tests: 0 is out of range 1..1000000");
  one_error("[tests]\nmax_tests = 1000001\n", 2, 13,
            "tests.max_tests: 1000001 is out of range 1..1000000");
  one_error("[tests]\nmax_tests = -1\n", 2, 13, "tests.max_tests: -1 is out of range 1..1000000");
  one_error("[tests]\nmax_tests = \"1000\"\n", 2, 13,
            "tests.max_tests: expected an integer, got a string");
  one_error("[tests]\nmax_tests = 1.5\n", 2, 13, "tests.max_tests: expected an integer");
  one_error("[tests]\nmax_exchanges_per_test = 0\n", 2, 26,
            "tests.max_exchanges_per_test: 0 is out of range 1..100000");
  one_error("[tests]\nmax_exchanges_per_test = 100001\n", 2, 26,
            "tests.max_exchanges_per_test: 100001 is out of range 1..100000");
  one_error("[tests]\nmax_exchanges_per_test = true\n", 2, 26,
            "tests.max_exchanges_per_test: expected an integer");
  one_error("[tests]\nmetrics_label = 1\n", 2, 17,
            "tests.metrics_label: expected true or false, got an integer");
  one_error("[tests]\nmetrics_label = \"true\"\n", 2, 17,
            "tests.metrics_label: expected true or false, got a string");
  one_error("tests = 5\n", 1, 9, "tests: expected a table");
}

TEST_CASE("[tests]: unknown keys, with a suggestion", "[config][tests][errors]") {
  ConfigError e = one_error("[tests]\nmax_test = 5\n", 2, 1, "unknown key \"max_test\" in [tests]");
  CHECK_THAT(e.message, Catch::Contains("did you mean \"max_tests\"?"));
  e = one_error("[tests]\nmax_exchanges_per_tests = 5\n", 2, 1, "in [tests]");
  CHECK_THAT(e.message, Catch::Contains("did you mean \"max_exchanges_per_test\"?"));
  e = one_error("[tests]\nmetric_label = true\n", 2, 1, "in [tests]");
  CHECK_THAT(e.message, Catch::Contains("did you mean \"metrics_label\"?"));
  e = one_error("[tests]\nworkers = 2\n", 2, 1, "unknown key \"workers\"");
  CHECK_THAT(e.message, Catch::Contains("belongs at the top level"));
  // A [tests] key elsewhere says where it belongs.
  e = one_error("[defaults]\nmax_tests = 5\n", 2, 1, "unknown key \"max_tests\"");
  CHECK_THAT(e.message, Catch::Contains("in [tests]"));
  e = one_error("[test]\nmax_tests = 5\n", 1, 2, "unknown key \"test\"");
  CHECK_THAT(e.message, Catch::Contains("did you mean \"tests\"?"));
}
