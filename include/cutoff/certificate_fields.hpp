#pragma once
// The pieces every certificate cutoff issues is made of, shared by
// `cutoff ca init` (the CA itself) and the CA's leaves, so that both agree on
// keys, serials, validity and key identifiers.

#include <cstdint>
#include <string>

#include "cutoff/openssl_handles.hpp"

namespace cutoff {

// A fresh ECDSA P-256 key: accepted by every TLS client, and cheap to sign
// and verify with. nullptr if OpenSSL fails.
EvpPkeyPtr generate_p256_key();

// Makes `cert` an X.509 v3 certificate with a random positive 128-bit serial
// (RFC 5280 §4.1.2.2: unpredictable, at most 20 octets), valid from an hour
// ago, so that a client whose clock lags a little still accepts it, until
// `lifetime_s` seconds from now.
bool start_certificate(X509* cert, int64_t lifetime_s);

// An extension as `openssl x509 -extfile` spells it ("critical,CA:FALSE"),
// built once so that it can be added to any number of certificates.
X509ExtensionPtr make_extension(int nid, const char* value);

// The key identifier of RFC 5280 §4.2.1.2, method 1: the SHA-1 of the public
// key's bits. The same key always gets the same identifier, which is what
// lets a verifier match a leaf's authority key identifier to its CA.
Asn1OctetStringPtr key_identifier(EVP_PKEY* key);

// The subjectKeyIdentifier extension for `key`.
X509ExtensionPtr subject_key_identifier(EVP_PKEY* key);

// PEM text; empty if OpenSSL fails.
std::string pem_of(X509* cert);
std::string pem_of(EVP_PKEY* private_key);

// The reason of the last OpenSSL error on this thread ("unknown" without
// one). Empties the thread's error queue, so that a later TLS call on the
// same thread does not mistake an old error for its own.
std::string take_openssl_error();

}  // namespace cutoff
