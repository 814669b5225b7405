#include <catch2/catch.hpp>
#include <map>

#include "cutoff/base64.hpp"
#include "cutoff/parent_proxy.hpp"

using namespace cutoff;

namespace {

ProxyEndpoint url(std::string_view text) {
  ProxyEndpoint endpoint;
  std::string error;
  INFO(text);
  REQUIRE(parse_proxy_url(text, &endpoint, &error));
  return endpoint;
}

std::string url_error(std::string_view text) {
  ProxyEndpoint endpoint;
  std::string error;
  CHECK_FALSE(parse_proxy_url(text, &endpoint, &error));
  return error;
}

NoProxy no_proxy(std::string_view list) {
  NoProxy rules;
  rules.parse(list);
  INFO(list);
  CHECK(rules.ignored() == 0);
  return rules;
}

}  // namespace

TEST_CASE("base64 encodes with padding", "[parent_proxy]") {
  CHECK(base64_encode("") == "");
  CHECK(base64_encode("f") == "Zg==");
  CHECK(base64_encode("fo") == "Zm8=");
  CHECK(base64_encode("foo") == "Zm9v");
  CHECK(base64_encode("user:pass") == "dXNlcjpwYXNz");
}

TEST_CASE("a proxy URL gives host, port and credentials", "[parent_proxy]") {
  ProxyEndpoint plain = url("http://proxy.corp.example:3128");
  CHECK(plain.host == "proxy.corp.example");
  CHECK(plain.port == 3128);
  CHECK(plain.authorization.empty());
  CHECK(plain.url == "http://proxy.corp.example:3128");

  ProxyEndpoint with_credentials = url("http://alice:s%40cret@10.0.0.1:8080/");
  CHECK(with_credentials.host == "10.0.0.1");
  CHECK(with_credentials.authorization ==
        "Proxy-Authorization: Basic " + base64_encode("alice:s@cret") + "\r\n");
  // The password never shows where the parent is named.
  CHECK(with_credentials.url == "http://10.0.0.1:8080");

  CHECK(url("http://bob@proxy:1").authorization ==
        "Proxy-Authorization: Basic " + base64_encode("bob:") + "\r\n");
}

TEST_CASE("a proxy URL follows curl: no scheme is http, no port is 1080", "[parent_proxy]") {
  CHECK(url("proxy.example:3128").url == "http://proxy.example:3128");
  CHECK(url("HTTP://Proxy.Example").url == "http://proxy.example:1080");
  CHECK(url("http://[::1]:3128").host == "::1");
  CHECK(url("http://[::1]:3128").url == "http://[::1]:3128");
  CHECK(url("  http://127.0.0.1:3128\n").port == 3128);
}

TEST_CASE("a proxy URL that cutoff cannot use is refused with a reason", "[parent_proxy]") {
  CHECK_THAT(url_error("https://proxy:3128"), Catch::Contains("plain HTTP"));
  CHECK_THAT(url_error("socks5://proxy:1080"), Catch::Contains("not socks5://"));
  CHECK_THAT(url_error("http://proxy:3128/path"), Catch::Contains("without a path"));
  CHECK_THAT(url_error("http://proxy:0"), Catch::Contains("host:port"));
  CHECK_THAT(url_error("http://proxy:99999"), Catch::Contains("host:port"));
  CHECK_THAT(url_error("http://::1:3128"), Catch::Contains("host:port"));
  CHECK_THAT(url_error("http://"), Catch::Contains("host:port"));
  CHECK_THAT(url_error("http://a:%zz@proxy:1"), Catch::Contains("two hex digits"));
}

TEST_CASE("NO_PROXY names match themselves and their subdomains", "[parent_proxy]") {
  NoProxy rules = no_proxy("example.com, .internal ,localhost");
  CHECK(rules.matches("example.com", 80));
  CHECK(rules.matches("api.example.com", 443));
  CHECK_FALSE(rules.matches("badexample.com", 80));
  CHECK_FALSE(rules.matches("example.com.evil.test", 80));
  CHECK(rules.matches("internal", 80));
  CHECK(rules.matches("db.internal", 80));
  CHECK(rules.matches("localhost", 8080));
  CHECK_FALSE(rules.matches("localhost.example", 80));

  CHECK(no_proxy("Example.COM.").matches("www.example.com", 80));
  CHECK(no_proxy("*.corp").matches("git.corp", 80));
  CHECK(no_proxy("a b\tc").matches("c", 80));
}

TEST_CASE("NO_PROXY * alone bypasses every host", "[parent_proxy]") {
  CHECK(no_proxy("*").matches("anything.example", 80));
  CHECK(no_proxy(" * ").matches("10.1.2.3", 443));
  // As curl reads it: "*" among other entries is no wildcard.
  NoProxy mixed;
  mixed.parse("localhost,*");
  CHECK_FALSE(mixed.matches("anything.example", 80));
  CHECK(mixed.matches("localhost", 80));
  CHECK_FALSE(no_proxy("").matches("anything.example", 80));
  CHECK(no_proxy("").empty());
}

TEST_CASE("NO_PROXY addresses and networks match hosts given as addresses", "[parent_proxy]") {
  NoProxy rules = no_proxy("127.0.0.1,10.0.0.0/8,::1,fd00::/8,192.168.1.0/24");
  CHECK(rules.matches("127.0.0.1", 80));
  CHECK_FALSE(rules.matches("127.0.0.2", 80));
  CHECK(rules.matches("10.200.3.4", 80));
  CHECK(rules.matches("::1", 80));
  CHECK(rules.matches("fd12::5", 80));
  CHECK(rules.matches("192.168.1.77", 80));
  CHECK_FALSE(rules.matches("192.168.2.1", 80));
  // No name is resolved to be compared with an address.
  CHECK_FALSE(rules.matches("localhost", 80));
  // Networks hold addresses of their own family only.
  CHECK_FALSE(no_proxy("::/0").matches("10.0.0.1", 80));
  CHECK(no_proxy("::/0").matches("fe80::1", 80));
}

TEST_CASE("NO_PROXY entries with a port match that port only", "[parent_proxy]") {
  NoProxy rules = no_proxy("example.com:8080,127.0.0.1:9000,[::1]:9001");
  CHECK(rules.matches("example.com", 8080));
  CHECK(rules.matches("api.example.com", 8080));
  CHECK_FALSE(rules.matches("example.com", 80));
  CHECK(rules.matches("127.0.0.1", 9000));
  CHECK_FALSE(rules.matches("127.0.0.1", 9001));
  CHECK(rules.matches("::1", 9001));
  CHECK_FALSE(rules.matches("::1", 9000));
}

TEST_CASE("NO_PROXY leaves out and counts entries it cannot read", "[parent_proxy]") {
  NoProxy rules;
  rules.parse("10.0.0.0/33,example.com:http,host:,[fd00::]/8,*.ok.test,a*b,good.test");
  CHECK(rules.ignored() == 5);
  CHECK(rules.size() == 2);
  CHECK(rules.matches("x.ok.test", 80));
  CHECK(rules.matches("good.test", 80));
  CHECK_FALSE(rules.matches("10.0.0.1", 80));
}

TEST_CASE("parent_proxy env reads the variables as curl does", "[parent_proxy]") {
  std::map<std::string, std::string> env;
  auto getenv = [&env](const char* name) -> const char* {
    auto it = env.find(name);
    return it == env.end() ? nullptr : it->second.c_str();
  };
  ParentProxy parent;
  std::string error;

  SECTION("lower case wins over upper case") {
    env = {{"http_proxy", "http://lower:1"},
           {"HTTP_PROXY", "http://upper:2"},
           {"HTTPS_PROXY", "http://secure:3"},
           {"NO_PROXY", "localhost"}};
    REQUIRE(parent_from_environment(getenv, &parent, &error));
    CHECK(parent.source == ParentProxy::Source::env);
    CHECK(parent.http->url == "http://lower:1");
    CHECK(parent.https->url == "http://secure:3");
    CHECK(parent.for_target("example.com", 80, false)->url == "http://lower:1");
    CHECK(parent.for_target("example.com", 443, true)->url == "http://secure:3");
    CHECK(parent.for_target("localhost", 80, false) == nullptr);
    CHECK(describe_parent(parent) == "env{http=http://lower:1,https=http://secure:3,no_proxy=1}");
  }
  SECTION("an unset or empty variable means direct") {
    env = {{"https_proxy", " "}};
    REQUIRE(parent_from_environment(getenv, &parent, &error));
    CHECK(parent.for_target("example.com", 80, false) == nullptr);
    CHECK(parent.for_target("example.com", 443, true) == nullptr);
    CHECK(describe_parent(parent) == "env{http=none,https=none,no_proxy=0}");
  }
  SECTION("a bad value names its variable") {
    env = {{"HTTPS_PROXY", "socks5://p:1"}};
    CHECK_FALSE(parent_from_environment(getenv, &parent, &error));
    CHECK_THAT(error, Catch::StartsWith("HTTPS_PROXY: "));
    env = {{"no_proxy", "10.0.0.0/40,localhost"}};
    REQUIRE(parent_from_environment(getenv, &parent, &error));
    CHECK(describe_parent(parent) == "env{http=none,https=none,no_proxy=1,no_proxy_ignored=1}");
  }
}

TEST_CASE("a parent proxy URL serves every target, whatever NO_PROXY says", "[parent_proxy]") {
  ParentProxy parent;
  parent.source = ParentProxy::Source::url;
  parent.http = parent.https = url("http://p:3128");
  CHECK(parent.for_target("localhost", 80, false) == &*parent.http);
  CHECK(parent.for_target("localhost", 443, true) == &*parent.https);
  CHECK(describe_parent(parent) == "http://p:3128");
  CHECK(describe_parent(ParentProxy{}) == "none");
}
