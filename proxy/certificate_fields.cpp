#include "cutoff/certificate_fields.hpp"

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/sha.h>

namespace cutoff {
namespace {

// Clients whose clock is behind ours by up to this still accept a
// certificate issued just now.
constexpr long kClockSkewS = 3600;

bool set_random_serial(X509* cert) {
  BignumPtr serial(BN_new());
  if (!serial) return false;
  // A serial of zero is not allowed; with 128 random bits it is only a
  // formality to exclude it.
  do {
    if (BN_rand(serial.get(), 128, BN_RAND_TOP_ANY, BN_RAND_BOTTOM_ANY) != 1) return false;
  } while (BN_is_zero(serial.get()));
  return BN_to_ASN1_INTEGER(serial.get(), X509_get_serialNumber(cert)) != nullptr;
}

std::string bio_text(BIO* bio) {
  char* data = nullptr;
  long size = BIO_get_mem_data(bio, &data);
  return size > 0 ? std::string(data, static_cast<size_t>(size)) : std::string();
}

}  // namespace

EvpPkeyPtr generate_p256_key() {
  return EvpPkeyPtr(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256"));
}

bool start_certificate(X509* cert, int64_t lifetime_s) {
  return X509_set_version(cert, X509_VERSION_3) == 1 && set_random_serial(cert) &&
         X509_gmtime_adj(X509_getm_notBefore(cert), -kClockSkewS) != nullptr &&
         X509_gmtime_adj(X509_getm_notAfter(cert), static_cast<long>(lifetime_s)) != nullptr;
}

X509ExtensionPtr make_extension(int nid, const char* value) {
  return X509ExtensionPtr(X509V3_EXT_nconf_nid(nullptr, nullptr, nid, value));
}

Asn1OctetStringPtr key_identifier(EVP_PKEY* key) {
  X509_PUBKEY* raw = nullptr;
  if (X509_PUBKEY_set(&raw, key) != 1) return nullptr;
  X509PubkeyPtr pubkey(raw);
  const unsigned char* bits = nullptr;
  int bits_length = 0;
  if (X509_PUBKEY_get0_param(nullptr, &bits, &bits_length, nullptr, pubkey.get()) != 1) {
    return nullptr;
  }
  unsigned char digest[SHA_DIGEST_LENGTH];
  unsigned int digest_length = 0;
  if (EVP_Digest(bits, static_cast<size_t>(bits_length), digest, &digest_length, EVP_sha1(),
                 nullptr) != 1) {
    return nullptr;
  }
  Asn1OctetStringPtr id(ASN1_OCTET_STRING_new());
  if (!id || ASN1_OCTET_STRING_set(id.get(), digest, static_cast<int>(digest_length)) != 1) {
    return nullptr;
  }
  return id;
}

X509ExtensionPtr subject_key_identifier(EVP_PKEY* key) {
  Asn1OctetStringPtr id = key_identifier(key);
  if (!id) return nullptr;
  return X509ExtensionPtr(X509V3_EXT_i2d(NID_subject_key_identifier, 0, id.get()));
}

std::string pem_of(X509* cert) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio || PEM_write_bio_X509(bio.get(), cert) != 1) return {};
  return bio_text(bio.get());
}

std::string pem_of(EVP_PKEY* private_key) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio || PEM_write_bio_PrivateKey(bio.get(), private_key, nullptr, nullptr, 0, nullptr,
                                       nullptr) != 1) {
    return {};
  }
  return bio_text(bio.get());
}

std::string take_openssl_error() {
  // The oldest error is the cause; the later ones are the callers giving up.
  unsigned long code = ERR_get_error();
  ERR_clear_error();
  const char* reason = code != 0 ? ERR_reason_error_string(code) : nullptr;
  return reason ? reason : "unknown";
}

}  // namespace cutoff
