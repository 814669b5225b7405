#pragma once
// The TLS side of one configuration, ready for connections (SPEC §10): the
// server context that intercepted clients meet, with certificates minted
// from the [tls] CA, and the client context for cutoff's own connections to
// upstreams, trusting the system store and [tls] upstream_ca. Built when a
// config is applied (start, --check, reload), so a CA that cannot be used is
// a config error rather than a failed connection.

#include <memory>
#include <string>

#include "cutoff/certificate_authority.hpp"
#include "cutoff/config.hpp"
#include "cutoff/openssl_handles.hpp"

namespace cutoff {

class TlsContexts {
 public:
  // The contexts `config` needs: null when it needs none (it neither
  // intercepts nor names TLS files, which are checked all the same), or,
  // with *error naming the file and the reason, when one cannot be used.
  static std::shared_ptr<const TlsContexts> for_config(const Config& config, std::string* error);
  // The contexts of [tls], whatever the routes say; null with *error as above.
  static std::shared_ptr<const TlsContexts> load(const TlsConfig& tls, std::string* error);

  // Null without a CA.
  SSL_CTX* server() const { return server_.get(); }
  SSL_CTX* client() const { return client_.get(); }
  const std::shared_ptr<const CertificateAuthority>& authority() const { return authority_; }

 private:
  std::shared_ptr<const CertificateAuthority> authority_;
  SslCtxPtr server_;
  SslCtxPtr client_;
};

}  // namespace cutoff
