#include "cutoff/tls_contexts.hpp"

#include <openssl/err.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace cutoff {
namespace {

constexpr unsigned char kHttp11[] = {8, 'h', 't', 't', 'p', '/', '1', '.', '1'};

// ALPN on the client's side: http/1.1 when it offers it, else no ALPN at
// all (the client then speaks HTTP/1.1 by default, or gives up).
int select_http11(SSL*, const unsigned char** out, unsigned char* out_len, const unsigned char* in,
                  unsigned in_len, void*) {
  unsigned char* selected = nullptr;
  if (SSL_select_next_proto(&selected, out_len, kHttp11, sizeof kHttp11, in, in_len) !=
      OPENSSL_NPN_NEGOTIATED) {
    return SSL_TLSEXT_ERR_NOACK;
  }
  *out = selected;
  return SSL_TLSEXT_ERR_OK;
}

std::string openssl_reason() {
  unsigned long code = ERR_peek_last_error();
  const char* reason = code != 0 ? ERR_reason_error_string(code) : nullptr;
  ERR_clear_error();
  return reason != nullptr ? reason : "unknown error";
}

// What both sides share: TLS 1.2 or later, no renegotiation, and buffers
// given back while a connection is idle.
SslCtxPtr make_context(const SSL_METHOD* method) {
  SslCtxPtr ctx(SSL_CTX_new(method));
  if (!ctx) return ctx;
  SSL_CTX_set_min_proto_version(ctx.get(), TLS1_2_VERSION);
  SSL_CTX_set_options(ctx.get(), SSL_OP_NO_RENEGOTIATION);
  SSL_CTX_set_mode(ctx.get(), SSL_MODE_RELEASE_BUFFERS);
  SSL_CTX_set_session_cache_mode(ctx.get(), SSL_SESS_CACHE_OFF);
  return ctx;
}

}  // namespace

std::shared_ptr<const TlsContexts> TlsContexts::for_config(const Config& config,
                                                           std::string* error) {
  error->clear();
  bool wanted = config.intercepts || !config.tls.ca_cert.empty() || !config.tls.upstream_ca.empty();
  return wanted ? load(config.tls, error) : nullptr;
}

std::shared_ptr<const TlsContexts> TlsContexts::load(const TlsConfig& tls, std::string* error) {
  auto contexts = std::make_shared<TlsContexts>();
  if (!tls.ca_cert.empty()) {
    contexts->authority_ = CertificateAuthority::load(tls.ca_cert, tls.ca_key, error);
    if (!contexts->authority_) return nullptr;
    contexts->server_ = make_context(TLS_server_method());
    SSL_CTX* server = contexts->server_.get();
    if (!server || SSL_CTX_use_PrivateKey(server, contexts->authority_->leaf_key()) != 1) {
      *error = "tls: cannot set up the interception context: " + openssl_reason();
      return nullptr;
    }
    // Clients do not resume sessions with a proxy they reach anew for each
    // CONNECT often enough to pay for tickets.
    SSL_CTX_set_num_tickets(server, 0);
    SSL_CTX_set_alpn_select_cb(server, select_http11, nullptr);
  }
  contexts->client_ = make_context(TLS_client_method());
  SSL_CTX* client = contexts->client_.get();
  if (!client || SSL_CTX_set_default_verify_paths(client) != 1 ||
      SSL_CTX_set_alpn_protos(client, kHttp11, sizeof kHttp11) != 0) {
    *error = "tls: cannot set up the upstream context: " + openssl_reason();
    return nullptr;
  }
  if (!tls.upstream_ca.empty()) {
    // OpenSSL says only "system lib" for a file it cannot open.
    if (access(tls.upstream_ca.c_str(), R_OK) != 0) {
      *error = "tls.upstream_ca: cannot read " + tls.upstream_ca + ": " + std::strerror(errno);
      return nullptr;
    }
    if (SSL_CTX_load_verify_locations(client, tls.upstream_ca.c_str(), nullptr) != 1) {
      *error = "tls.upstream_ca: " + tls.upstream_ca +
               " holds no usable PEM certificate: " + openssl_reason();
      return nullptr;
    }
  }
  return contexts;
}

}  // namespace cutoff
