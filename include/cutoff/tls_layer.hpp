#pragma once
// TLS on memory buffers, for a connection on the event loop (SPEC §10).
//
// OpenSSL never touches the socket: the connection hands it the ciphertext it
// read (receive), takes the plaintext out (read), gives it plaintext to
// encrypt (write) and sends whatever ciphertext is pending (output). So TLS
// is a layer under the connection's owner, which reads and writes plain
// bytes either way, and the loop stays the only thing that waits.

#include <openssl/ssl.h>

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>

#include "cutoff/openssl_handles.hpp"

namespace cutoff {

class LeafCache;

// Why a handshake (or a connection) failed, in the words of RFC 9209's
// error types and a reason a person can act on.
struct TlsFailure {
  enum class Kind : uint8_t {
    none,
    certificate,  // the peer's certificate did not verify (its reason says why)
    alert,        // the peer sent an alert (its description is the reason)
    protocol,     // anything else the TLS library refused
  };
  Kind kind = Kind::none;
  std::string reason;
};

class TlsLayer {
 public:
  // cutoff as the server of an intercepting connection: the certificate is
  // minted (or taken from `leaves`) for `host`, the CONNECT host.
  static std::unique_ptr<TlsLayer> accept(SSL_CTX* ctx, std::shared_ptr<LeafCache> leaves,
                                          std::string_view host);
  // cutoff as the client of an upstream: SNI and the name check for `host`
  // (an address literal is checked as an address, and sent no SNI). Without
  // `verify`, any certificate is taken.
  static std::unique_ptr<TlsLayer> connect(SSL_CTX* ctx, const std::string& host, bool verify);

  TlsLayer(const TlsLayer&) = delete;
  TlsLayer& operator=(const TlsLayer&) = delete;

  // Ciphertext read from the network.
  void receive(const char* data, size_t len);

  enum class Progress { waiting, done, failed };
  // Moves the handshake on with what was received; its answers wait in
  // output(). Call until it is done.
  Progress handshake();
  bool handshake_done() const { return handshake_done_; }

  enum class Read { data, waiting, closed, failed };
  // Decrypts the next piece of application data into `out` (*n bytes).
  // `closed`: the peer's close_notify; `failed`: see failure().
  Read read(char* out, size_t size, size_t* n);
  // Whether received bytes wait to be read: a record decrypted but not read
  // out, or ciphertext not yet looked at.
  bool buffered() const;
  // Encrypts `data` into output(); false once the connection has failed.
  bool write(const char* data, size_t len);
  // Queues a close_notify: the last thing this side sends.
  void close_notify();

  // Ciphertext waiting to be sent; clear_output() once it is handed on.
  std::string_view output() const;
  void clear_output();

  // cutoff's connection to an upstream ended (TCP FIN) without the
  // upstream's close_notify: what came last may be cut short (RFC 8446
  // §6.1), so the end is an error, not the end of a body.
  bool end_is_truncation() const;

  const TlsFailure& failure() const { return failure_; }
  // The server name the client asked for (server side), or empty.
  std::string_view server_name() const;

 private:
  TlsLayer(SSL_CTX* ctx, bool server);
  void fail(int ssl_result);
  static int select_certificate(SSL* ssl, void* arg);

  SslPtr ssl_;
  BIO* in_ = nullptr;   // owned by ssl_
  BIO* out_ = nullptr;  // owned by ssl_
  std::shared_ptr<LeafCache> leaves_;
  std::string host_;  // the CONNECT host, which the leaf names
  TlsFailure failure_;
  bool handshake_done_ = false;
};

}  // namespace cutoff
