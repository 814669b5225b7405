// CertificateAuthority: a CA written by `cutoff ca init` loads, refuses what
// clients would refuse or what would leak, and mints leaves that a strict
// verifier accepts for exactly their host.

#include <openssl/err.h>
#include <openssl/pem.h>
#include <sys/stat.h>

#include <catch2/catch.hpp>
#include <ctime>
#include <thread>
#include <vector>

#include "cutoff/certificate_authority.hpp"
#include "cutoff/certificate_fields.hpp"
#include "temp_ca.hpp"

using namespace cutoff;
using namespace cutoff::testing;

namespace {

// What X509_verify_cert says of `leaf` as a TLS server's certificate for
// `host` (a name, or an IP literal when `ip` is set), with OpenSSL's strict
// checks of RFC 5280 on, as Python's VERIFY_X509_STRICT asks for them.
int verify(X509* ca_cert, X509* leaf, const std::string& host, bool ip = false) {
  X509StorePtr store(X509_STORE_new());
  X509StoreCtxPtr ctx(X509_STORE_CTX_new());
  REQUIRE(X509_STORE_add_cert(store.get(), ca_cert) == 1);
  REQUIRE(X509_STORE_CTX_init(ctx.get(), store.get(), leaf, nullptr) == 1);
  X509_VERIFY_PARAM* param = X509_STORE_CTX_get0_param(ctx.get());
  REQUIRE(X509_VERIFY_PARAM_set_purpose(param, X509_PURPOSE_SSL_SERVER) == 1);
  X509_VERIFY_PARAM_set_flags(param, X509_V_FLAG_X509_STRICT);
  if (ip) {
    REQUIRE(X509_VERIFY_PARAM_set1_ip_asc(param, host.c_str()) == 1);
  } else {
    REQUIRE(X509_VERIFY_PARAM_set1_host(param, host.c_str(), 0) == 1);
  }
  X509_verify_cert(ctx.get());
  int result = X509_STORE_CTX_get_error(ctx.get());
  ERR_clear_error();
  return result;
}

std::string verify_text(int result) {
  return X509_verify_cert_error_string(result);
}

const X509_EXTENSION* extension(X509* cert, int nid) {
  int at = X509_get_ext_by_NID(cert, nid, -1);
  return at >= 0 ? X509_get_ext(cert, at) : nullptr;
}

std::string serial_of(X509* cert) {
  BignumPtr bn(ASN1_INTEGER_to_BN(X509_get0_serialNumber(cert), nullptr));
  char* hex = BN_bn2hex(bn.get());
  std::string text = hex ? hex : "";
  OPENSSL_free(hex);
  return text;
}

// Seconds from now to `time` (negative: in the past).
int64_t seconds_from_now(const ASN1_TIME* time) {
  int days = 0;
  int seconds = 0;
  REQUIRE(ASN1_TIME_diff(&days, &seconds, nullptr, time) == 1);
  return int64_t{days} * 86400 + seconds;
}

EvpPkeyPtr read_key(const std::string& path) {
  BioPtr bio(BIO_new_file(path.c_str(), "r"));
  REQUIRE(bio);
  return EvpPkeyPtr(PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr));
}

std::string load_error(const std::string& cert, const std::string& key) {
  std::string error;
  CHECK_FALSE(CertificateAuthority::load(cert, key, &error));
  return error;
}

}  // namespace

TEST_CASE("a CA written by ca init loads", "[certificate_authority]") {
  TempCa t;
  INFO(t.error);
  REQUIRE(t.ca);
  CHECK(t.error.empty());
  CHECK(X509_check_ca(t.ca->certificate()) == 1);
  CHECK(EVP_PKEY_get_base_id(t.ca->leaf_key()) == EVP_PKEY_EC);
  CHECK(EVP_PKEY_get_bits(t.ca->leaf_key()) == 256);
  CHECK(ERR_peek_error() == 0);
}

TEST_CASE("a leaf verifies strictly for its own host and no other", "[certificate_authority]") {
  TempCa t;
  REQUIRE(t.ca);
  X509* ca = t.ca->certificate();
  X509Ptr leaf = t.ca->mint("example.com");
  REQUIRE(leaf);
  CHECK(verify_text(verify(ca, leaf.get(), "example.com")) == verify_text(X509_V_OK));
  CHECK(verify(ca, leaf.get(), "example.org") == X509_V_ERR_HOSTNAME_MISMATCH);
  CHECK(verify(ca, leaf.get(), "www.example.com") == X509_V_ERR_HOSTNAME_MISMATCH);

  // Another CA's leaf for the same host is not this CA's.
  TempCa other;
  REQUIRE(other.ca);
  X509Ptr stranger = other.ca->mint("example.com");
  CHECK(verify(ca, stranger.get(), "example.com") == X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY);
}

TEST_CASE("IP literals get an IP subjectAltName", "[certificate_authority]") {
  TempCa t;
  REQUIRE(t.ca);
  X509* ca = t.ca->certificate();
  for (const char* host : {"127.0.0.1", "::1", "[::1]", "2001:db8::7"}) {
    INFO(host);
    X509Ptr leaf = t.ca->mint(host);
    REQUIRE(leaf);
    std::string address = leaf_name(host);
    CHECK(verify_text(verify(ca, leaf.get(), address, true)) == verify_text(X509_V_OK));
    CHECK(verify(ca, leaf.get(), address) == X509_V_ERR_HOSTNAME_MISMATCH);
  }
  X509Ptr v4 = t.ca->mint("127.0.0.1");
  CHECK(verify(ca, v4.get(), "127.0.0.2", true) == X509_V_ERR_IP_ADDRESS_MISMATCH);
  // No CN, which a client could take for a host name.
  CHECK(X509_NAME_entry_count(X509_get_subject_name(v4.get())) == 0);
  // A name that starts like an address is a name.
  X509Ptr named = t.ca->mint("1.2.3.4.nip.io");
  REQUIRE(named);
  CHECK(verify(ca, named.get(), "1.2.3.4.nip.io") == X509_V_OK);
  CHECK(verify(ca, named.get(), "1.2.3.4", true) == X509_V_ERR_IP_ADDRESS_MISMATCH);
}

TEST_CASE("names are case-insensitive, and long ones still verify", "[certificate_authority]") {
  TempCa t;
  REQUIRE(t.ca);
  X509* ca = t.ca->certificate();
  X509Ptr upper = t.ca->mint("WWW.Example.COM");
  REQUIRE(upper);
  CHECK(verify(ca, upper.get(), "www.example.com") == X509_V_OK);
  // Longer than a commonName may be: the subject stays empty, and the strict
  // check wants the subjectAltName critical then.
  std::string long_name = std::string(70, 'a') + ".example.com";
  X509Ptr leaf = t.ca->mint(long_name);
  REQUIRE(leaf);
  CHECK(verify_text(verify(ca, leaf.get(), long_name)) == verify_text(X509_V_OK));
}

TEST_CASE("a host that is no name or address gets no leaf", "[certificate_authority]") {
  TempCa t;
  REQUIRE(t.ca);
  for (const char* host : {"", "a b.com", "exa\nmple.com", "x.com/", "caf\xc3\xa9.com"}) {
    INFO(host);
    CHECK_FALSE(t.ca->mint(host));
  }
  CHECK_FALSE(t.ca->mint(std::string(254, 'a')));
  CHECK(ERR_peek_error() == 0);
}

TEST_CASE("a leaf carries what strict clients demand", "[certificate_authority]") {
  TempCa t;
  REQUIRE(t.ca);
  X509Ptr leaf = t.ca->mint("example.com");
  REQUIRE(leaf);
  X509* ca = t.ca->certificate();

  CHECK(X509_get_version(leaf.get()) == X509_VERSION_3);
  CHECK(X509_check_private_key(leaf.get(), t.ca->leaf_key()) == 1);
  CHECK(X509_verify(leaf.get(), X509_get0_pubkey(ca)) == 1);
  CHECK(X509_check_issued(ca, leaf.get()) == X509_V_OK);

  const ASN1_INTEGER* serial = X509_get0_serialNumber(leaf.get());
  BignumPtr bn(ASN1_INTEGER_to_BN(serial, nullptr));
  CHECK_FALSE(BN_is_negative(bn.get()));
  CHECK(BN_num_bits(bn.get()) > 64);
  CHECK(BN_num_bits(bn.get()) <= 128);
  X509Ptr again = t.ca->mint("example.com");
  CHECK(serial_of(leaf.get()) != serial_of(again.get()));

  int64_t not_before = seconds_from_now(X509_get0_notBefore(leaf.get()));
  int64_t not_after = seconds_from_now(X509_get0_notAfter(leaf.get()));
  CHECK(not_before <= -3500);
  CHECK(not_before >= -3700);
  CHECK(not_after > 7 * 86400);
  CHECK(not_after < 398 * 86400);

  const X509_EXTENSION* basic = extension(leaf.get(), NID_basic_constraints);
  REQUIRE(basic);
  CHECK(X509_EXTENSION_get_critical(basic) == 1);
  CHECK_FALSE(X509_get_extension_flags(leaf.get()) & EXFLAG_CA);
  const X509_EXTENSION* usage = extension(leaf.get(), NID_key_usage);
  REQUIRE(usage);
  CHECK(X509_EXTENSION_get_critical(usage) == 1);
  CHECK(X509_get_key_usage(leaf.get()) == KU_DIGITAL_SIGNATURE);
  CHECK(X509_get_extended_key_usage(leaf.get()) == XKU_SSL_SERVER);

  const ASN1_OCTET_STRING* authority = X509_get0_authority_key_id(leaf.get());
  const ASN1_OCTET_STRING* ca_id = X509_get0_subject_key_id(ca);
  REQUIRE(authority);
  REQUIRE(ca_id);
  CHECK(ASN1_OCTET_STRING_cmp(authority, ca_id) == 0);
  Asn1OctetStringPtr own = key_identifier(t.ca->leaf_key());
  REQUIRE(X509_get0_subject_key_id(leaf.get()));
  CHECK(ASN1_OCTET_STRING_cmp(X509_get0_subject_key_id(leaf.get()), own.get()) == 0);

  char cn[80] = {};
  X509_NAME_get_text_by_NID(X509_get_subject_name(leaf.get()), NID_commonName, cn, sizeof cn);
  CHECK(std::string(cn) == "example.com");
  CHECK(X509_NAME_cmp(X509_get_issuer_name(leaf.get()), X509_get_subject_name(ca)) == 0);
}

TEST_CASE("a client that trusts the CA completes a TLS handshake", "[certificate_authority]") {
  TempCa t;
  REQUIRE(t.ca);
  X509Ptr leaf = t.ca->mint("example.com");
  REQUIRE(leaf);
  // The server's side as interception sets it up: the leaf, the shared key,
  // the CA as the chain.
  SslCtxPtr server_ctx(SSL_CTX_new(TLS_server_method()));
  REQUIRE(SSL_CTX_use_certificate(server_ctx.get(), leaf.get()) == 1);
  REQUIRE(SSL_CTX_use_PrivateKey(server_ctx.get(), t.ca->leaf_key()) == 1);
  REQUIRE(SSL_CTX_add1_chain_cert(server_ctx.get(), t.ca->certificate()) == 1);
  SslCtxPtr client_ctx(SSL_CTX_new(TLS_client_method()));
  REQUIRE(X509_STORE_add_cert(SSL_CTX_get_cert_store(client_ctx.get()), t.ca->certificate()) == 1);
  SSL_CTX_set_verify(client_ctx.get(), SSL_VERIFY_PEER, nullptr);
  X509_VERIFY_PARAM_set_flags(SSL_CTX_get0_param(client_ctx.get()), X509_V_FLAG_X509_STRICT);

  SslPtr client(SSL_new(client_ctx.get()));
  SslPtr server(SSL_new(server_ctx.get()));
  REQUIRE(SSL_set1_host(client.get(), "example.com") == 1);
  BIO* client_end = nullptr;
  BIO* server_end = nullptr;
  REQUIRE(BIO_new_bio_pair(&client_end, 0, &server_end, 0) == 1);
  SSL_set_bio(client.get(), client_end, client_end);
  SSL_set_bio(server.get(), server_end, server_end);
  SSL_set_connect_state(client.get());
  SSL_set_accept_state(server.get());
  int client_rc = 0;
  int server_rc = 0;
  for (int turn = 0; turn < 10 && (client_rc != 1 || server_rc != 1); ++turn) {
    client_rc = SSL_do_handshake(client.get());
    server_rc = SSL_do_handshake(server.get());
  }
  CHECK(client_rc == 1);
  CHECK(server_rc == 1);
  CHECK(verify_text(static_cast<int>(SSL_get_verify_result(client.get()))) ==
        verify_text(X509_V_OK));
  ERR_clear_error();
}

TEST_CASE("workers mint at once on several threads", "[certificate_authority]") {
  TempCa t;
  REQUIRE(t.ca);
  constexpr int kThreads = 4;
  constexpr int kEach = 8;
  std::vector<std::vector<X509Ptr>> minted(kThreads);
  std::vector<std::thread> threads;
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back([&t, &minted, i] {
      for (int n = 0; n < kEach; ++n) {
        minted[i].push_back(t.ca->mint("host" + std::to_string(n) + ".example"));
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  for (const auto& each : minted) {
    for (int n = 0; n < kEach; ++n) {
      REQUIRE(each[n]);
      CHECK(verify(t.ca->certificate(), each[n].get(), "host" + std::to_string(n) + ".example") ==
            X509_V_OK);
    }
  }
}

TEST_CASE("an RSA CA signs leaves too", "[certificate_authority]") {
  TempDir dir;
  EvpPkeyPtr key(EVP_RSA_gen(2048));
  REQUIRE(key);
  X509Ptr cert(X509_new());
  REQUIRE(start_certificate(cert.get(), 86400));
  X509_NAME* name = X509_get_subject_name(cert.get());
  X509_NAME_add_entry_by_NID(name, NID_commonName, MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>("rsa test CA"), -1, -1, 0);
  X509_set_issuer_name(cert.get(), name);
  X509_set_pubkey(cert.get(), key.get());
  X509ExtensionPtr extensions[] = {make_extension(NID_basic_constraints, "critical,CA:TRUE"),
                                   make_extension(NID_key_usage, "critical,keyCertSign"),
                                   subject_key_identifier(key.get())};
  for (X509ExtensionPtr& e : extensions) {
    REQUIRE(X509_add_ext(cert.get(), e.get(), -1) == 1);
  }
  REQUIRE(X509_sign(cert.get(), key.get(), EVP_sha256()) > 0);
  write_text(dir.file("ca.pem"), pem_of(cert.get()));
  write_text(dir.file("ca-key.pem"), pem_of(key.get()));
  chmod(dir.file("ca-key.pem").c_str(), 0600);

  std::string error;
  auto ca = CertificateAuthority::load(dir.file("ca.pem"), dir.file("ca-key.pem"), &error);
  INFO(error);
  REQUIRE(ca);
  X509Ptr leaf = ca->mint("example.com");
  REQUIRE(leaf);
  CHECK(X509_get_signature_nid(leaf.get()) == NID_sha256WithRSAEncryption);
  CHECK(verify(ca->certificate(), leaf.get(), "example.com") == X509_V_OK);
}

TEST_CASE("a CA key that others may read is refused", "[certificate_authority]") {
  TempDir dir;
  REQUIRE(ca_init(dir.path()) == 0);
  const std::string key = dir.file("ca-key.pem");
  REQUIRE(chmod(key.c_str(), 0644) == 0);
  std::string error = load_error(dir.file("ca.pem"), key);
  CHECK_THAT(error,
             Catch::Contains("readable by other users") && Catch::Contains("chmod 600 " + key));
  // Readable by its group is a choice (a group of services may share it).
  REQUIRE(chmod(key.c_str(), 0640) == 0);
  std::string ignored;
  CHECK(CertificateAuthority::load(dir.file("ca.pem"), key, &ignored));
}

TEST_CASE("a certificate that is no CA is refused", "[certificate_authority]") {
  TempCa t;
  REQUIRE(t.ca);
  X509Ptr leaf = t.ca->mint("example.com");
  write_text(t.dir.file("leaf.pem"), pem_of(leaf.get()));
  write_text(t.dir.file("leaf-key.pem"), pem_of(t.ca->leaf_key()));
  chmod(t.dir.file("leaf-key.pem").c_str(), 0600);
  std::string error = load_error(t.dir.file("leaf.pem"), t.dir.file("leaf-key.pem"));
  CHECK_THAT(error, Catch::Contains(t.dir.file("leaf.pem")) &&
                        Catch::Contains("is not a CA certificate") && Catch::Contains("CA:TRUE"));
}

TEST_CASE("a key of another CA is refused", "[certificate_authority]") {
  TempDir one;
  TempDir two;
  REQUIRE(ca_init(one.path()) == 0);
  REQUIRE(ca_init(two.path()) == 0);
  std::string error = load_error(one.file("ca.pem"), two.file("ca-key.pem"));
  CHECK(error == "the CA key " + two.file("ca-key.pem") +
                     " does not belong to the CA certificate " + one.file("ca.pem"));
}

TEST_CASE("an expired CA is refused", "[certificate_authority]") {
  TempCa t;
  REQUIRE(t.ca);
  X509Ptr old(X509_dup(t.ca->certificate()));
  X509_gmtime_adj(X509_getm_notBefore(old.get()), -3 * 86400);
  X509_gmtime_adj(X509_getm_notAfter(old.get()), -86400);
  EvpPkeyPtr key = read_key(t.dir.file("ca-key.pem"));
  REQUIRE(X509_sign(old.get(), key.get(), EVP_sha256()) > 0);
  write_text(t.dir.file("old.pem"), pem_of(old.get()));
  std::string error = load_error(t.dir.file("old.pem"), t.dir.file("ca-key.pem"));
  CHECK_THAT(error,
             Catch::StartsWith("the CA certificate " + t.dir.file("old.pem") + " expired on "));
}

TEST_CASE("files that are missing, not PEM, swapped or encrypted", "[certificate_authority]") {
  TempDir dir;
  REQUIRE(ca_init(dir.path()) == 0);
  const std::string cert = dir.file("ca.pem");
  const std::string key = dir.file("ca-key.pem");

  CHECK(load_error(dir.file("nope.pem"), key) ==
        "cannot read the CA certificate " + dir.file("nope.pem") + ": No such file or directory");
  CHECK(load_error(cert, dir.file("nope.pem")) ==
        "cannot read the CA key " + dir.file("nope.pem") + ": No such file or directory");
  CHECK_THAT(load_error(dir.path(), key), Catch::Contains("is not a regular file"));

  write_text(dir.file("junk.pem"), "hello\n");
  CHECK_THAT(load_error(dir.file("junk.pem"), key), Catch::Contains("is not a PEM certificate"));
  chmod(dir.file("junk.pem").c_str(), 0600);
  CHECK_THAT(load_error(cert, dir.file("junk.pem")), Catch::Contains("is not a PEM private key"));
  write_text(dir.file("key-as-cert.pem"), read_text(cert));
  chmod(dir.file("key-as-cert.pem").c_str(), 0600);
  CHECK_THAT(load_error(key, dir.file("key-as-cert.pem")), Catch::Contains("swapped"));
  CHECK_THAT(load_error(key, key), Catch::Contains("swapped"));

  EvpPkeyPtr secret = read_key(key);
  BioPtr bio(BIO_new_file(dir.file("locked.pem").c_str(), "w"));
  REQUIRE(PEM_write_bio_PrivateKey(bio.get(), secret.get(), EVP_aes_128_cbc(),
                                   reinterpret_cast<const unsigned char*>("pass"), 4, nullptr,
                                   nullptr) == 1);
  bio.reset();
  chmod(dir.file("locked.pem").c_str(), 0600);
  CHECK_THAT(load_error(cert, dir.file("locked.pem")), Catch::Contains("is encrypted"));
  CHECK(ERR_peek_error() == 0);
}
