#pragma once
// The local CA that TLS interception (SPEC §10) mints its leaf certificates
// from: loaded once from the operator's PEM files, then shared read-only by
// every worker thread.

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "cutoff/openssl_handles.hpp"

namespace cutoff {

class CertificateAuthority {
 public:
  // How long a leaf is valid: long enough that no connection outlives it,
  // far below the 398 days clients accept from public CAs.
  static constexpr int64_t kLeafLifetimeS = 30 * 86400;

  // Reads the CA certificate and its private key (PEM files). nullptr on
  // error, with *error a sentence naming the file and what to do about it:
  // the file is missing or unreadable, is not PEM, the key is readable by
  // other users (it signs certificates every client here trusts), the key
  // does not belong to the certificate, the certificate is not a CA or is
  // outside its validity.
  static std::shared_ptr<const CertificateAuthority> load(const std::string& cert_path,
                                                          const std::string& key_path,
                                                          std::string* error);

  // A leaf certificate for `host`, signed by the CA, for leaf_key(): an IPv4
  // or IPv6 literal (brackets allowed) becomes an IP subjectAltName, a DNS
  // name a DNS subjectAltName and the subject's CN (if it fits in one). nullptr if `host` is
  // neither, or OpenSSL fails. Any thread, concurrently.
  X509Ptr mint(std::string_view host) const;

  // The one key of every leaf: an ECDSA P-256 key generated at load, so that
  // minting costs one signature and no key generation.
  EVP_PKEY* leaf_key() const { return leaf_key_.get(); }

  // The CA certificate, which a server sends after the leaf as its chain.
  X509* certificate() const { return certificate_.get(); }

  CertificateAuthority(const CertificateAuthority&) = delete;
  CertificateAuthority& operator=(const CertificateAuthority&) = delete;

 private:
  CertificateAuthority(X509Ptr certificate, EvpPkeyPtr key, EvpPkeyPtr leaf_key,
                       std::vector<X509ExtensionPtr> leaf_extensions);
  // mint() for a checked name; on failure the reason is on OpenSSL's error
  // queue.
  X509Ptr build(const std::string& name) const;
  bool sign(X509* leaf) const;

  X509Ptr certificate_;
  EvpPkeyPtr key_;
  EvpPkeyPtr leaf_key_;
  // Every extension but the subjectAltName is the same in every leaf; built
  // once here, copied into each.
  std::vector<X509ExtensionPtr> leaf_extensions_;
};

// The name a leaf is minted and cached for: lowercase (names compare
// case-insensitively) and without the brackets of an IPv6 literal.
std::string leaf_name(std::string_view host);

}  // namespace cutoff
