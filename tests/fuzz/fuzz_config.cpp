// The config loader (SPEC §3, §7a, §9) on arbitrary text.
//
// Input: the TOML text itself. Loading must refuse bad text with errors
// (never crash or throw), and what it accepts must be in the form the router
// compares against: canonical hosts and normalised path prefixes, because a
// route written in another spelling would silently never match.

#include <string>
#include <string_view>
#include <variant>

#include "cutoff/address.hpp"
#include "cutoff/config.hpp"
#include "cutoff/uri_path.hpp"
#include "fuzz_support.hpp"

namespace cutoff::fuzz {
namespace {

constexpr std::string_view kSource = "fuzz.toml";

// "", "*", "*.<canonical>" or a canonical host (address.hpp).
void check_match_host(const std::string& host) {
  Context context("route match.host", host);
  if (host.empty() || host == "*") return;
  std::string_view bare = host;
  if (bare.substr(0, 2) == "*.") bare.remove_prefix(2);
  std::string again;
  FUZZ_CHECK(canonical_host(bare, bare.find(':') != std::string_view::npos, &again));
  FUZZ_CHECK(again == bare);
}

void check_path_prefix(const std::string& prefix) {
  Context context("route match.path_prefix", prefix);
  if (prefix.empty()) return;
  std::string again;
  FUZZ_CHECK(normalize_path(prefix, PathReading::strict, &again) == PathError::none);
  FUZZ_CHECK(again == prefix);
}

void check_methods(const std::vector<std::string>& methods) {
  for (const std::string& method : methods) {
    Context context("route match.method", method);
    FUZZ_CHECK(!method.empty());
    for (char c : method) FUZZ_CHECK(is_tchar(c) && !(c >= 'a' && c <= 'z'));
  }
}

void check_route(const Route& route) {
  check_match_host(route.match.host);
  check_path_prefix(route.match.path_prefix);
  check_methods(route.match.methods);
  for (uint16_t port : route.match.ports) FUZZ_CHECK(port != 0);
  for (const Cidr& net : route.match.addresses) FUZZ_CHECK(net.prefix <= (net.v6 ? 128 : 32));
}

void check_accepted(const Config& config) {
  bool paths = false;
  bool addresses = false;
  for (const Route& route : config.routes) {
    check_route(route);
    paths |= !route.match.path_prefix.empty();
    addresses |= !route.match.addresses.empty();
  }
  // The router skips path normalisation and address checks on these flags.
  FUZZ_CHECK(config.routes_match_paths == paths);
  FUZZ_CHECK(config.routes_match_addresses == addresses);
  // The listener is started from this text later: it must parse then too.
  FUZZ_CHECK(parse_host_port(config.listen.address, nullptr, nullptr, nullptr));
  if (config.admin.address != "off") {
    FUZZ_CHECK(parse_host_port(config.admin.address, nullptr, nullptr, nullptr));
  }
  // The resolver hands these to c-ares as they are: bare addresses, real ports.
  for (const DnsServer& server : config.dns.servers) {
    Context context("dns.servers", server.ip);
    std::string ip;
    FUZZ_CHECK(parse_ip_port(server.ip, 53, &ip, nullptr, nullptr) && ip == server.ip);
    FUZZ_CHECK(server.port != 0);
  }
}

void check_refused(const std::vector<ConfigError>& errors) {
  FUZZ_CHECK(!errors.empty());
  for (const ConfigError& error : errors) {
    FUZZ_CHECK(error.file == kSource);
    FUZZ_CHECK(!error.message.empty());
    FUZZ_CHECK(error.line >= 0 && error.column >= 0);
  }
}

}  // namespace
}  // namespace cutoff::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace cutoff::fuzz;
  std::string_view text(reinterpret_cast<const char*>(data), size);
  Context context("config text", text);
  cutoff::ConfigResult result = cutoff::parse_config(text, kSource);
  if (const auto* config = std::get_if<cutoff::Config>(&result)) {
    check_accepted(*config);
  } else {
    check_refused(std::get<std::vector<cutoff::ConfigError>>(result));
  }
  return 0;
}
