// LeafCache: one leaf per host, reused, bounded (least recently used goes
// first) and re-minted once old.

#include <catch2/catch.hpp>
#include <string>

#include "cutoff/leaf_cache.hpp"
#include "temp_ca.hpp"

using namespace cutoff;
using namespace cutoff::testing;

namespace {

// Tells leaves apart where a pointer cannot: a freed leaf's address may be
// the next one's.
std::string serial_of(X509* cert) {
  REQUIRE(cert);
  BignumPtr bn(ASN1_INTEGER_to_BN(X509_get0_serialNumber(cert), nullptr));
  char* hex = BN_bn2hex(bn.get());
  std::string text = hex ? hex : "";
  OPENSSL_free(hex);
  return text;
}

bool names(X509* cert, const std::string& host) {
  return cert && X509_check_host(cert, host.data(), host.size(), 0, nullptr) == 1;
}

}  // namespace

TEST_CASE("a host's leaf is minted once and then reused", "[leaf_cache]") {
  TempCa t;
  REQUIRE(t.ca);
  LeafCache cache(t.ca, 8);
  CHECK(cache.size() == 0);
  X509* first = cache.get("example.com");
  REQUIRE(first);
  CHECK(names(first, "example.com"));
  CHECK(cache.get("example.com") == first);
  CHECK(cache.get("Example.COM") == first);  // names compare case-insensitively
  CHECK(cache.size() == 1);
  X509* other = cache.get("example.org");
  CHECK(names(other, "example.org"));
  CHECK(other != first);
  CHECK(cache.size() == 2);
  CHECK(cache.get("[::1]") == cache.get("::1"));
  CHECK(cache.size() == 3);
}

TEST_CASE("the cache stays within its capacity, least recently used first out", "[leaf_cache]") {
  TempCa t;
  REQUIRE(t.ca);
  LeafCache cache(t.ca, 3);
  const std::string a = serial_of(cache.get("a.example"));
  const std::string b = serial_of(cache.get("b.example"));
  const std::string c = serial_of(cache.get("c.example"));
  CHECK(serial_of(cache.get("a.example")) == a);  // a is now the most recent
  const std::string d = serial_of(cache.get("d.example"));
  CHECK(cache.size() == 3);
  // b was the least recently used: gone, and minted anew.
  CHECK(serial_of(cache.get("a.example")) == a);
  CHECK(serial_of(cache.get("c.example")) == c);
  CHECK(serial_of(cache.get("d.example")) == d);
  CHECK(cache.size() == 3);
  CHECK(serial_of(cache.get("b.example")) != b);
  CHECK(cache.size() == 3);
  // ...which pushed out a, the least recently used by then.
  CHECK(serial_of(cache.get("c.example")) == c);
  CHECK(serial_of(cache.get("a.example")) != a);
  for (int i = 0; i < 20; ++i) cache.get("h" + std::to_string(i) + ".example");
  CHECK(cache.size() == 3);
}

TEST_CASE("a leaf is re-minted once it is old, not before", "[leaf_cache]") {
  TempCa t;
  REQUIRE(t.ca);
  int64_t now_ms = 1000;
  LeafCache cache(t.ca, 4, [&now_ms] { return now_ms; });
  const std::string first = serial_of(cache.get("example.com"));
  now_ms += LeafCache::kRemintAfterMs - 1;
  CHECK(serial_of(cache.get("example.com")) == first);
  now_ms += 1;
  const std::string second = serial_of(cache.get("example.com"));
  CHECK(second != first);
  CHECK(cache.size() == 1);
  // The age counts from the re-mint.
  now_ms += LeafCache::kRemintAfterMs - 1;
  CHECK(serial_of(cache.get("example.com")) == second);
  // Far inside the leaf's validity.
  CHECK(LeafCache::kRemintAfterMs * 7 <= CertificateAuthority::kLeafLifetimeS * 1000);
}

TEST_CASE("a host without a leaf is not cached", "[leaf_cache]") {
  TempCa t;
  REQUIRE(t.ca);
  LeafCache cache(t.ca, 0);  // taken as 1
  CHECK_FALSE(cache.get("not a host"));
  CHECK(cache.size() == 0);
  X509* one = cache.get("one.example");
  CHECK(cache.get("one.example") == one);
  CHECK(cache.size() == 1);
  cache.get("two.example");
  CHECK(cache.size() == 1);
}
