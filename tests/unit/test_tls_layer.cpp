// TlsLayer on both ends of a connection that is nothing but memory: what
// one side outputs is what the other receives, so the handshake, the data,
// and each kind of failure can be watched without sockets.

#include <catch2/catch.hpp>
#include <string>

#include "cutoff/leaf_cache.hpp"
#include "cutoff/tls_contexts.hpp"
#include "cutoff/tls_layer.hpp"
#include "temp_ca.hpp"

using namespace cutoff;
using cutoff::testing::TempDir;

namespace {

// An intercepting cutoff (the server) and an upstream-bound cutoff (the
// client) pointed at each other, both from one CA: the client trusts it as
// its upstream_ca, the server mints from it.
struct Pair {
  explicit Pair(const std::string& name, bool trust = true, bool verify = true) {
    REQUIRE(cutoff::testing::ca_init(dir.path() + "/ca") == 0);
    TlsConfig config;
    config.ca_cert = dir.path() + "/ca/ca.pem";
    config.ca_key = dir.path() + "/ca/ca-key.pem";
    if (trust) config.upstream_ca = config.ca_cert;
    std::string error;
    contexts = TlsContexts::load(config, &error);
    REQUIRE(error.empty());
    REQUIRE(contexts);
    leaves = std::make_shared<LeafCache>(contexts->authority(), 8);
    server = TlsLayer::accept(contexts->server(), leaves, name);
    client = TlsLayer::connect(contexts->client(), name, verify);
  }

  // Carries what each side has to say to the other until neither has more.
  void exchange() {
    for (int round = 0; round < 10; ++round) {
      std::string to_server(client->output()), to_client(server->output());
      client->clear_output();
      server->clear_output();
      if (to_server.empty() && to_client.empty()) return;
      server->receive(to_server.data(), to_server.size());
      client->receive(to_client.data(), to_client.size());
      if (!server->handshake_done()) server->handshake();
      if (!client->handshake_done()) client->handshake();
    }
  }

  std::string read_all(TlsLayer& layer, TlsLayer::Read* last) {
    std::string text;
    char buf[512];
    size_t n = 0;
    while ((*last = layer.read(buf, sizeof buf, &n)) == TlsLayer::Read::data) text.append(buf, n);
    return text;
  }

  TempDir dir;
  std::shared_ptr<const TlsContexts> contexts;
  std::shared_ptr<LeafCache> leaves;
  std::unique_ptr<TlsLayer> server;
  std::unique_ptr<TlsLayer> client;
};

}  // namespace

TEST_CASE("TlsLayer: a handshake, requests both ways, and close_notify", "[tls_layer]") {
  Pair pair("api.example.test");
  CHECK(pair.client->handshake() == TlsLayer::Progress::waiting);  // the ClientHello
  CHECK_FALSE(pair.client->output().empty());
  pair.exchange();
  REQUIRE(pair.client->handshake_done());
  REQUIRE(pair.server->handshake_done());
  CHECK(pair.server->server_name() == "api.example.test");

  REQUIRE(pair.client->write("GET / HTTP/1.1\r\n\r\n", 18));
  pair.exchange();
  TlsLayer::Read last;
  CHECK(pair.read_all(*pair.server, &last) == "GET / HTTP/1.1\r\n\r\n");
  CHECK(last == TlsLayer::Read::waiting);

  // More than a record's worth arrives whole, in pieces.
  std::string body(40000, 'x');
  REQUIRE(pair.server->write(body.data(), body.size()));
  pair.exchange();
  CHECK(pair.read_all(*pair.client, &last) == body);

  pair.server->close_notify();
  pair.exchange();
  pair.read_all(*pair.client, &last);
  CHECK(last == TlsLayer::Read::closed);
}

TEST_CASE("TlsLayer: an IP literal is checked as an address and sends no SNI", "[tls_layer]") {
  Pair pair("127.0.0.1");
  pair.client->handshake();
  pair.exchange();
  REQUIRE(pair.client->handshake_done());
  CHECK(pair.server->server_name().empty());
}

TEST_CASE("TlsLayer: failures are sorted into certificate, alert and protocol", "[tls_layer]") {
  SECTION("an unknown issuer: the client's certificate failure, the server's alert") {
    Pair pair("api.example.test", /*trust=*/false);
    pair.client->handshake();
    pair.exchange();
    CHECK_FALSE(pair.client->handshake_done());
    CHECK(pair.client->failure().kind == TlsFailure::Kind::certificate);
    CHECK_THAT(pair.client->failure().reason, Catch::Contains("local issuer"));
    CHECK(pair.server->failure().kind == TlsFailure::Kind::alert);
    CHECK_THAT(pair.server->failure().reason, Catch::Contains("unknown CA"));
    // Nothing can be written on a failed connection.
    CHECK_FALSE(pair.client->write("x", 1));
  }
  SECTION("not verifying takes the same certificate") {
    Pair pair("api.example.test", /*trust=*/false, /*verify=*/false);
    pair.client->handshake();
    pair.exchange();
    CHECK(pair.client->handshake_done());
  }
  SECTION("garbage instead of a ServerHello") {
    Pair pair("api.example.test");
    pair.client->handshake();
    pair.client->clear_output();
    const std::string garbage = "HTTP/1.1 400 Bad Request\r\n\r\n";
    pair.client->receive(garbage.data(), garbage.size());
    CHECK(pair.client->handshake() == TlsLayer::Progress::failed);
    CHECK(pair.client->failure().kind == TlsFailure::Kind::protocol);
    CHECK_FALSE(pair.client->failure().reason.empty());
  }
}
