#include "cutoff/tls_layer.hpp"

#include <openssl/err.h>
#include <openssl/x509v3.h>

#include <climits>

#include "cutoff/address.hpp"
#include "cutoff/leaf_cache.hpp"

namespace cutoff {
namespace {

// OpenSSL reports an alert from the peer as a reason code offset by this
// (SSL_R_SSLV3_ALERT_*, SSL_R_TLSV1_ALERT_*: 1000 + the alert's number).
constexpr int kAlertReasonOffset = 1000;
constexpr int kAlertReasonEnd = kAlertReasonOffset + 256;

int clamp_int(size_t len) {
  return len > INT_MAX ? INT_MAX : static_cast<int>(len);
}

}  // namespace

TlsLayer::TlsLayer(SSL_CTX* ctx, bool server) : ssl_(SSL_new(ctx)) {
  in_ = BIO_new(BIO_s_mem());
  out_ = BIO_new(BIO_s_mem());
  // A drained memory BIO asks for more rather than reporting the end.
  BIO_set_mem_eof_return(in_, -1);
  SSL_set_bio(ssl_.get(), in_, out_);
  if (server) {
    SSL_set_accept_state(ssl_.get());
  } else {
    SSL_set_connect_state(ssl_.get());
  }
}

std::unique_ptr<TlsLayer> TlsLayer::accept(SSL_CTX* ctx, std::shared_ptr<LeafCache> leaves,
                                           std::string_view host) {
  std::unique_ptr<TlsLayer> layer(new TlsLayer(ctx, /*server=*/true));
  layer->leaves_ = std::move(leaves);
  layer->host_ = host;
  SSL_set_cert_cb(layer->ssl_.get(), select_certificate, layer.get());
  return layer;
}

std::unique_ptr<TlsLayer> TlsLayer::connect(SSL_CTX* ctx, const std::string& host, bool verify) {
  std::unique_ptr<TlsLayer> layer(new TlsLayer(ctx, /*server=*/false));
  SSL* ssl = layer->ssl_.get();
  // Canonical hosts (address.hpp): an address literal is not a host name.
  const bool literal = !is_host_name(host);
  if (!literal) SSL_set_tlsext_host_name(ssl, host.c_str());
  if (verify) {
    SSL_set_verify(ssl, SSL_VERIFY_PEER, nullptr);
    if (literal) {
      X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), host.c_str());
    } else {
      SSL_set1_host(ssl, host.c_str());
    }
  } else {
    SSL_set_verify(ssl, SSL_VERIFY_NONE, nullptr);
  }
  return layer;
}

// Called once the ClientHello is in. The leaf names the CONNECT host, where
// the requests go, whatever the SNI asks for: a client cannot have cutoff
// vouch for another name, nor make it sign one leaf per made-up name.
int TlsLayer::select_certificate(SSL* ssl, void* arg) {
  auto* self = static_cast<TlsLayer*>(arg);
  X509* leaf = self->leaves_->get(self->host_);
  return leaf != nullptr && SSL_use_certificate(ssl, leaf) == 1 ? 1 : 0;
}

void TlsLayer::receive(const char* data, size_t len) {
  // A failed connection reads nothing more: what its peer still sends
  // (while it closes) is dropped, not kept.
  if (failure_.kind != TlsFailure::Kind::none) return;
  while (len > 0) {
    int n = BIO_write(in_, data, clamp_int(len));
    if (n <= 0) return;
    data += n;
    len -= static_cast<size_t>(n);
  }
}

TlsLayer::Progress TlsLayer::handshake() {
  if (handshake_done_) return Progress::done;
  if (failure_.kind != TlsFailure::Kind::none) return Progress::failed;
  int rc = SSL_do_handshake(ssl_.get());
  if (rc == 1) {
    handshake_done_ = true;
    return Progress::done;
  }
  int error = SSL_get_error(ssl_.get(), rc);
  if (error == SSL_ERROR_WANT_READ || error == SSL_ERROR_WANT_WRITE) return Progress::waiting;
  fail(error);
  return Progress::failed;
}

TlsLayer::Read TlsLayer::read(char* out, size_t size, size_t* n) {
  *n = 0;
  if (failure_.kind != TlsFailure::Kind::none) return Read::failed;
  int rc = SSL_read(ssl_.get(), out, clamp_int(size));
  if (rc > 0) {
    *n = static_cast<size_t>(rc);
    return Read::data;
  }
  int error = SSL_get_error(ssl_.get(), rc);
  switch (error) {
    case SSL_ERROR_WANT_READ:
    case SSL_ERROR_WANT_WRITE:
      return Read::waiting;
    case SSL_ERROR_ZERO_RETURN:
      return Read::closed;
    default:
      fail(error);
      return Read::failed;
  }
}

bool TlsLayer::end_is_truncation() const {
  return !SSL_is_server(ssl_.get()) && handshake_done_ &&
         (SSL_get_shutdown(ssl_.get()) & SSL_RECEIVED_SHUTDOWN) == 0;
}

bool TlsLayer::buffered() const {
  return SSL_has_pending(ssl_.get()) == 1 || BIO_ctrl_pending(in_) > 0;
}

bool TlsLayer::write(const char* data, size_t len) {
  // Nothing goes out before the handshake is done, nor after a failure.
  if (!handshake_done_ || failure_.kind != TlsFailure::Kind::none) return false;
  while (len > 0) {
    // A memory BIO takes everything: a write is whole or the connection failed.
    int rc = SSL_write(ssl_.get(), data, clamp_int(len));
    if (rc <= 0) {
      fail(SSL_get_error(ssl_.get(), rc));
      return false;
    }
    data += rc;
    len -= static_cast<size_t>(rc);
  }
  return true;
}

void TlsLayer::close_notify() {
  if (!handshake_done_ || failure_.kind != TlsFailure::Kind::none) return;
  SSL_shutdown(ssl_.get());
  ERR_clear_error();
}

std::string_view TlsLayer::output() const {
  char* data = nullptr;
  long len = BIO_get_mem_data(out_, &data);
  return len > 0 ? std::string_view(data, static_cast<size_t>(len)) : std::string_view();
}

void TlsLayer::clear_output() {
  (void)BIO_reset(out_);
}

std::string_view TlsLayer::server_name() const {
  const char* sni = SSL_get_servername(ssl_.get(), TLSEXT_NAMETYPE_host_name);
  return sni != nullptr ? std::string_view(sni) : std::string_view();
}

// Sorts a failure into what the peer did (an alert), what its certificate
// lacked, or a protocol error, and leaves the thread's error queue empty
// for the next connection.
void TlsLayer::fail(int ssl_error) {
  long verify = SSL_get_verify_result(ssl_.get());
  unsigned long code = ERR_peek_error();
  int reason = ERR_GET_REASON(code);
  // OpenSSL records a verify result even when told not to verify.
  bool verifying = (SSL_get_verify_mode(ssl_.get()) & SSL_VERIFY_PEER) != 0;
  if (!SSL_is_server(ssl_.get()) && verifying && verify != X509_V_OK) {
    failure_ = {TlsFailure::Kind::certificate, X509_verify_cert_error_string(verify)};
  } else if (ERR_GET_LIB(code) == ERR_LIB_SSL && reason >= kAlertReasonOffset &&
             reason < kAlertReasonEnd) {
    failure_ = {TlsFailure::Kind::alert, SSL_alert_desc_string_long(reason - kAlertReasonOffset)};
  } else if (code != 0) {
    const char* text = ERR_reason_error_string(code);
    failure_ = {TlsFailure::Kind::protocol, text != nullptr ? text : "TLS error"};
  } else {
    failure_ = {TlsFailure::Kind::protocol, ssl_error == SSL_ERROR_SYSCALL
                                                ? "the connection ended inside a TLS record"
                                                : "TLS error"};
  }
  ERR_clear_error();
}

}  // namespace cutoff
