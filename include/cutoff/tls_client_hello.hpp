#pragma once
// The first bytes a client sends through a CONNECT tunnel, read without
// decrypting anything: are they a TLS handshake, and which server name
// (SNI) does its ClientHello ask for? (SPEC §10: tunnels read only the
// plaintext record headers and the ClientHello.)
//
// The bytes themselves pass through the tunnel untouched as they come; the
// reader keeps a copy only of a ClientHello that spans several reads, and
// only up to kMaxHello. Anything it cannot read as a ClientHello (another
// protocol, a malformed or oversized hello) is left to pass as plain bytes:
// CONNECT may carry any TCP protocol, and judging TLS is the server's job.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace cutoff {

// A server name as it may appear in a log: a DNS name's letters, digits,
// '-', '.' and '_' (RFC 6066 forbids IP literals here), lower-cased. Else
// nothing: the name is for people to read, and a client chose its bytes.
std::string plausible_host_name(std::string_view name);

class ClientHelloReader {
 public:
  // A ClientHello larger than this is not read (post-quantum key shares
  // make hellos of 1.5 to 2 KiB; 16 KiB leaves room for any real one).
  static constexpr size_t kMaxHello = 16 * 1024;
  // Records the hello may span (real clients use one, rarely two).
  static constexpr size_t kMaxRecords = 4;

  enum class Result : uint8_t {
    need_more,  // a TLS handshake so far, its ClientHello not whole yet
    hello,      // a whole ClientHello: sni() holds its server name, if any
    not_tls,    // not a TLS ClientHello (or one too large or malformed to read)
  };

  // Reads the next bytes the client sent; once the result is not
  // need_more, further calls return it again without reading.
  Result feed(const char* data, size_t len);
  Result result() const { return result_; }
  // The server name of a whole ClientHello, lower-cased; empty when it
  // carries none (a client connecting to an IP address) or none that is a
  // plausible host name.
  const std::string& sni() const { return sni_; }

 private:
  Result parse_records(std::string_view bytes);
  Result parse_hello(std::string_view hello);

  Result result_ = Result::need_more;
  size_t complete_records_ = 0;  // at the last parse
  std::string bytes_;            // the records so far, while they span several reads
  std::string sni_;
};

// True when `data` starts like a TLS record carrying a handshake (content
// type 22, protocol version 3.x): how a TLS client's first bytes look.
bool looks_like_tls_handshake(const char* data, size_t len);

}  // namespace cutoff
