// ClientHelloReader: the server name of a TLS client's first flight, read
// from the plaintext records however they are split, and everything else
// left alone as "not TLS".

#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "cutoff/tls_client_hello.hpp"

using namespace cutoff;
using Result = ClientHelloReader::Result;

namespace {

std::string be(uint32_t value, size_t size) {
  std::string out(size, '\0');
  for (size_t i = 0; i < size; ++i) out[size - 1 - i] = static_cast<char>(value >> (8 * i));
  return out;
}

std::string vec(const std::string& body, size_t length_size) {
  return be(static_cast<uint32_t>(body.size()), length_size) + body;
}

std::string server_name_extension(const std::string& name) {
  std::string entry = std::string(1, '\0') + vec(name, 2);  // host_name
  return be(0, 2) + vec(vec(entry, 2), 2);
}

// A ClientHello handshake message as a TLS 1.3 client writes it.
std::string client_hello(const std::string& extensions) {
  std::string body = be(0x0303, 2) + std::string(32, 'r') + vec(std::string(32, 's'), 1) +
                     vec(be(0x1301, 2) + be(0x1302, 2), 2) + vec(std::string(1, '\0'), 1) +
                     vec(extensions, 2);
  return std::string(1, '\x01') + vec(body, 3);
}

std::string hello_with_sni(const std::string& name) {
  // Another extension first (supported_versions), as real clients send.
  std::string versions = be(43, 2) + vec(vec(be(0x0304, 2), 1), 2);
  return client_hello(versions + server_name_extension(name));
}

std::string record(const std::string& fragment) {
  return std::string(1, '\x16') + be(0x0301, 2) + vec(fragment, 2);
}

Result feed_all(ClientHelloReader& reader, const std::string& bytes) {
  return reader.feed(bytes.data(), bytes.size());
}

}  // namespace

TEST_CASE("a whole ClientHello in one read gives its server name", "[tls_client_hello]") {
  ClientHelloReader reader;
  CHECK(feed_all(reader, record(hello_with_sni("registry.example.test"))) == Result::hello);
  CHECK(reader.sni() == "registry.example.test");
  // Later bytes (the rest of the handshake) change nothing.
  CHECK(feed_all(reader, "\x17\x03\x03") == Result::hello);
}

TEST_CASE("a ClientHello fed a byte at a time", "[tls_client_hello]") {
  std::string bytes = record(hello_with_sni("a.example.test"));
  ClientHelloReader reader;
  for (size_t i = 0; i + 1 < bytes.size(); ++i) {
    REQUIRE(reader.feed(&bytes[i], 1) == Result::need_more);
  }
  CHECK(reader.feed(&bytes.back(), 1) == Result::hello);
  CHECK(reader.sni() == "a.example.test");
}

TEST_CASE("a ClientHello split across records", "[tls_client_hello]") {
  std::string hello = hello_with_sni("split.example.test");
  for (size_t cut : {size_t{1}, size_t{3}, size_t{4}, size_t{40}, hello.size() - 1}) {
    CAPTURE(cut);
    ClientHelloReader reader;
    std::string bytes = record(hello.substr(0, cut)) + record(hello.substr(cut));
    CHECK(feed_all(reader, bytes) == Result::hello);
    CHECK(reader.sni() == "split.example.test");
  }
}

TEST_CASE("a ClientHello without a server name", "[tls_client_hello]") {
  ClientHelloReader reader;
  std::string versions = be(43, 2) + vec(vec(be(0x0304, 2), 1), 2);
  CHECK(feed_all(reader, record(client_hello(versions))) == Result::hello);
  CHECK(reader.sni().empty());
}

TEST_CASE("a server name is lower-cased, and dropped unless it is a host name",
          "[tls_client_hello]") {
  ClientHelloReader upper;
  CHECK(feed_all(upper, record(hello_with_sni("API.Example.TEST"))) == Result::hello);
  CHECK(upper.sni() == "api.example.test");
  for (const char* odd : {"a b.test", "a\"b.test", "x\nsni=forged", "\x01", "a/b"}) {
    CAPTURE(odd);
    ClientHelloReader reader;
    CHECK(feed_all(reader, record(hello_with_sni(odd))) == Result::hello);
    CHECK(reader.sni().empty());
  }
}

TEST_CASE("other protocols are not TLS", "[tls_client_hello]") {
  for (const std::string& first :
       {std::string("GET / HTTP/1.1\r\n"), std::string("SSH-2.0-OpenSSH_9.2\r\n"),
        std::string("\x16\x02\x00\x00\x05hello", 10), std::string("\x17\x03\x03\x00\x01x", 6),
        std::string("\x00", 1)}) {
    ClientHelloReader reader;
    CHECK(feed_all(reader, first) == Result::not_tls);
  }
  CHECK(looks_like_tls_handshake("\x16", 1));
  CHECK(looks_like_tls_handshake("\x16\x03\x01", 3));
  CHECK_FALSE(looks_like_tls_handshake("\x16\x02", 2));
  CHECK_FALSE(looks_like_tls_handshake("GET", 3));
  CHECK_FALSE(looks_like_tls_handshake("", 0));
}

TEST_CASE("malformed or oversized hellos are not read", "[tls_client_hello]") {
  SECTION("another handshake message first") {
    std::string server_hello = std::string(1, '\x02') + vec(std::string(40, 'x'), 3);
    ClientHelloReader reader;
    CHECK(feed_all(reader, record(server_hello)) == Result::not_tls);
  }
  SECTION("an empty record") {
    ClientHelloReader reader;
    CHECK(feed_all(reader, std::string("\x16\x03\x01\x00\x00", 5)) == Result::not_tls);
  }
  SECTION("a hello longer than kMaxHello") {
    std::string header = std::string(1, '\x01') + be(ClientHelloReader::kMaxHello + 1, 3);
    ClientHelloReader reader;
    CHECK(feed_all(reader, record(header)) == Result::not_tls);
  }
  SECTION("extensions whose lengths overrun the hello") {
    std::string bad = be(0, 2) + be(500, 2) + "short";
    ClientHelloReader reader;
    CHECK(feed_all(reader, record(client_hello(bad))) == Result::not_tls);
  }
  SECTION("a record of another type in the middle of the hello") {
    std::string hello = hello_with_sni("x.test");
    std::string bytes = record(hello.substr(0, 10)) + std::string("\x17\x03\x03\x00\x01x", 6);
    ClientHelloReader reader;
    CHECK(feed_all(reader, bytes) == Result::not_tls);
  }
  SECTION("a hello in more records than a client would use") {
    std::string hello = hello_with_sni("x.test");
    std::string bytes;
    for (size_t i = 0; i < ClientHelloReader::kMaxRecords + 1; ++i) {
      bytes += record(hello.substr(i * 4, 4));
    }
    bytes += record(hello.substr((ClientHelloReader::kMaxRecords + 1) * 4));
    ClientHelloReader reader;
    CHECK(feed_all(reader, bytes) == Result::not_tls);
  }
}
