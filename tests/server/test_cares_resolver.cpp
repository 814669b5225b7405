// CaresResolver on a loop of its own, against name servers on 127.0.0.1
// that never answer or that refuse: no listener is called from inside
// resolve(), a cancelled lookup is never heard of, cancelling the last
// lookup closes c-ares's sockets at once, and every test ends with an empty
// loop. Answers from a real (fake) server are covered by the integration
// tests (tests/integration/test_dns.py).

#include <ares.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <fstream>
#include <functional>
#include <sstream>
#include <string>

#include "cutoff/cares_resolver.hpp"
#include "server_harness.hpp"

using namespace cutoff;
using namespace cutoff::testing;

namespace {

struct Heard final : ResolveListener {
  int calls = 0;
  int status = 1;
  AddressList addresses;
  void on_resolved(int s, const AddressList& a) override {
    ++calls;
    status = s;
    addresses = a;
  }
};

// A UDP socket on 127.0.0.1 that never reads: a name server that never
// answers.
class SilentServer {
 public:
  SilentServer() {
    fd_ = socket(AF_INET, SOCK_DGRAM, 0);
    sockaddr_in a = ipv4("127.0.0.1", 0);
    REQUIRE(bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
    socklen_t len = sizeof a;
    getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
  }
  ~SilentServer() { close(fd_); }
  uint16_t port() const { return port_; }
  // Whether a query has arrived, waiting up to `ms`.
  bool asked(int ms) {
    pollfd p{fd_, POLLIN, 0};
    return poll(&p, 1, ms) == 1;
  }

 private:
  int fd_;
  uint16_t port_ = 0;
};

std::vector<DnsServer> at(uint16_t port) {
  return {DnsServer{"127.0.0.1", port}};
}

}  // namespace

TEST_CASE("answers without the network come on a later loop turn", "[server][dns][cares]") {
  SilentServer server;
  Loop loop;
  CaresResolver resolver(loop.get(), at(server.port()));

  Heard invalid;
  REQUIRE(resolver.resolve("nothing.invalid", 80, &invalid) != nullptr);
  Heard literal;
  REQUIRE(resolver.resolve("::1", 8080, &literal) != nullptr);
  Heard dropped;
  Resolver::Lookup* lookup = resolver.resolve("127.0.0.1", 80, &dropped);
  REQUIRE(lookup != nullptr);
  CHECK(invalid.calls + literal.calls + dropped.calls == 0);  // not from inside resolve()
  resolver.cancel(lookup);

  REQUIRE(loop.run_until([&] { return invalid.calls > 0 && literal.calls > 0; }, 1000));
  CHECK(invalid.status == UV_EAI_NONAME);  // RFC 6761: no server is asked
  CHECK_FALSE(server.asked(0));
  CHECK(literal.status == 0);
  REQUIRE(literal.addresses.count == 1);
  const auto* v6 = reinterpret_cast<const sockaddr_in6*>(literal.addresses.at(0));
  CHECK(v6->sin6_family == AF_INET6);
  CHECK(ntohs(v6->sin6_port) == 8080);
  CHECK(dropped.calls == 0);
  CHECK(resolver.open_sockets() == 0);
}

TEST_CASE("/etc/hosts answers without a query, on a later loop turn", "[server][dns][cares]") {
  // Only where /etc/hosts has 127.0.0.1 for localhost and is read first.
  std::ifstream hosts("/etc/hosts");
  std::string line;
  bool listed = false;
  while (std::getline(hosts, line)) {
    std::istringstream fields(line.substr(0, line.find('#')));
    std::string address, name;
    fields >> address;
    while (fields >> name) listed |= address == "127.0.0.1" && name == "localhost";
  }
  std::ifstream nsswitch("/etc/nsswitch.conf");
  bool files_first = true;
  while (std::getline(nsswitch, line)) {
    std::istringstream fields(line);
    std::string key, first;
    fields >> key >> first;
    if (key == "hosts:") files_first = first == "files";
  }
  if (!listed || !files_first) {
    WARN("skipped: /etc/hosts, read first, has no 127.0.0.1 localhost");
    return;
  }
  SilentServer server;
  Loop loop;
  CaresResolver resolver(loop.get(), at(server.port()));
  Heard heard;
  REQUIRE(resolver.resolve("localhost", 3128, &heard) != nullptr);
  CHECK(heard.calls == 0);
  REQUIRE(loop.run_until([&] { return heard.calls > 0; }, 1000));
  CHECK(heard.status == 0);
  bool found = false;
  for (int i = 0; i < heard.addresses.count; ++i) {
    const auto* v4 = reinterpret_cast<const sockaddr_in*>(heard.addresses.at(i));
    if (v4->sin_family != AF_INET) continue;
    CHECK(ntohs(v4->sin_port) == 3128);
    found |= ntohl(v4->sin_addr.s_addr) == INADDR_LOOPBACK;
  }
  CHECK(found);
  CHECK_FALSE(server.asked(0));
}

TEST_CASE("a cancelled lookup is never heard of; the last cancel closes the sockets",
          "[server][dns][cares]") {
  SilentServer server;
  Loop loop;
  CaresResolver resolver(loop.get(), at(server.port()));
  Heard first, second;
  Resolver::Lookup* a = resolver.resolve("first.cutoff.test", 80, &first);
  Resolver::Lookup* b = resolver.resolve("second.cutoff.test", 80, &second);
  REQUIRE(a != nullptr);
  REQUIRE(b != nullptr);
  CHECK(server.asked(static_cast<int>(1000 * time_scale())));
  CHECK(resolver.open_sockets() == 1);  // one UDP socket per server

  resolver.cancel(a);
  CHECK(resolver.open_sockets() == 1);  // the second lookup still waits
  resolver.cancel(b);
  CHECK(resolver.open_sockets() == 0);
  loop.run_until([] { return false; }, 50);
  CHECK(first.calls == 0);
  CHECK(second.calls == 0);
}

TEST_CASE("a server that refuses fails the lookup at once, as a temporary failure",
          "[server][dns][cares]") {
  Loop loop;
  CaresResolver resolver(loop.get(), at(closed_port(SOCK_DGRAM)));
  Heard heard;
  auto start = std::chrono::steady_clock::now();
  REQUIRE(resolver.resolve("refused.cutoff.test", 80, &heard) != nullptr);
  REQUIRE(loop.run_until([&] { return heard.calls > 0; }, 500));
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  CHECK(heard.calls == 1);
  CHECK(heard.status == UV_EAI_AGAIN);
  CHECK(seconds < 0.5 * time_scale());  // well before c-ares's first retry
  CHECK(resolver.open_sockets() == 0);
}

TEST_CASE("a resolver destroyed with lookups in flight calls nobody and leaves an empty loop",
          "[server][dns][cares]") {
  SilentServer server;
  Loop loop;
  Heard heard;
  {
    CaresResolver resolver(loop.get(), at(server.port()));
    REQUIRE(resolver.resolve("pending.cutoff.test", 80, &heard) != nullptr);
    REQUIRE(resolver.resolve("nothing.invalid", 80, &heard) != nullptr);
    CHECK(server.asked(static_cast<int>(1000 * time_scale())));
  }
  loop.run_until([] { return false; }, 20);
  CHECK(heard.calls == 0);
}

TEST_CASE("c-ares statuses become the getaddrinfo errors sessions report", "[server][dns]") {
  CHECK(uv_status_from_ares(ARES_SUCCESS) == 0);
  CHECK(uv_status_from_ares(ARES_ENOTFOUND) == UV_EAI_NONAME);
  CHECK(uv_status_from_ares(ARES_EBADNAME) == UV_EAI_NONAME);
  CHECK(uv_status_from_ares(ARES_ENODATA) == UV_EAI_NODATA);
  CHECK(uv_status_from_ares(ARES_ETIMEOUT) == UV_EAI_AGAIN);
  CHECK(uv_status_from_ares(ARES_ESERVFAIL) == UV_EAI_AGAIN);
  CHECK(uv_status_from_ares(ARES_ECONNREFUSED) == UV_EAI_AGAIN);
  CHECK(uv_status_from_ares(ARES_ENOMEM) == UV_EAI_MEMORY);
  CHECK(uv_status_from_ares(ARES_EBADRESP) == UV_EAI_FAIL);
  CHECK(uv_status_from_ares(ARES_ECANCELLED) == UV_ECANCELED);
}
