#include "cutoff/tls_client_hello.hpp"

#include <algorithm>

#include "cutoff/ascii.hpp"

namespace cutoff {
namespace {

constexpr uint8_t kHandshakeRecord = 22;
constexpr uint8_t kClientHello = 1;
constexpr uint16_t kServerNameExtension = 0;
constexpr uint8_t kHostName = 0;
constexpr size_t kRecordHeader = 5;
constexpr size_t kHandshakeHeader = 4;
// RFC 8446 §5.1: a plaintext record carries at most 2^14 bytes.
constexpr size_t kMaxRecord = 16 * 1024;

// Reads big-endian integers and length-prefixed vectors from a byte span;
// every read past the end fails and leaves the reader failed.
class Bytes {
 public:
  explicit Bytes(std::string_view s) : rest_(s) {}

  bool ok() const { return ok_; }
  bool empty() const { return rest_.empty(); }

  uint32_t number(size_t size) {
    if (!take(size)) return 0;
    uint32_t value = 0;
    for (size_t i = 0; i < size; ++i) value = value << 8 | static_cast<uint8_t>(taken_[i]);
    return value;
  }
  void skip(size_t size) { take(size); }
  // A vector with a `length_size`-byte length in front.
  Bytes vector(size_t length_size) {
    size_t length = number(length_size);
    return take(length) ? Bytes(taken_) : failed();
  }
  std::string_view rest() const { return rest_; }

 private:
  bool take(size_t size) {
    if (!ok_ || size > rest_.size()) return ok_ = false;
    taken_ = rest_.substr(0, size);
    rest_.remove_prefix(size);
    return true;
  }
  static Bytes failed() {
    Bytes b({});
    b.ok_ = false;
    return b;
  }

  std::string_view rest_;
  std::string_view taken_;
  bool ok_ = true;
};

uint16_t record_length(std::string_view header) {
  return static_cast<uint16_t>(static_cast<uint8_t>(header[3]) << 8 |
                               static_cast<uint8_t>(header[4]));
}

}  // namespace

std::string plausible_host_name(std::string_view name) {
  if (name.empty() || name.size() > 253) return {};
  std::string out(name);
  for (char& c : out) {
    c = ascii_lower(c);
    bool allowed =
        (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_';
    if (!allowed) return {};
  }
  return out;
}

bool looks_like_tls_handshake(const char* data, size_t len) {
  return len >= 1 && static_cast<uint8_t>(data[0]) == kHandshakeRecord &&
         (len == 1 || data[1] == 0x03);
}

ClientHelloReader::Result ClientHelloReader::feed(const char* data, size_t len) {
  if (result_ != Result::need_more || len == 0) return result_;
  // Records around the largest hello read: beyond them, give up reading.
  constexpr size_t kMaxKept = kMaxHello + kMaxRecords * kRecordHeader + kHandshakeHeader;
  std::string_view bytes(data, len);
  if (!bytes_.empty()) {
    bytes_.append(data, std::min(len, kMaxKept - bytes_.size()));
    bytes = bytes_;
  }
  result_ = parse_records(bytes);
  if (result_ == Result::need_more) {
    // Most hellos arrive whole in the first read and are parsed where they
    // lie; the rest are kept until they are whole.
    if (bytes_.empty()) {
      bytes_.assign(data, std::min(len, kMaxKept));
    } else if (bytes_.size() == kMaxKept) {
      result_ = Result::not_tls;
    }
  }
  if (result_ != Result::need_more) std::string().swap(bytes_);
  return result_;
}

// The handshake messages of consecutive handshake records, up to the end of
// the ClientHello. A ClientHello may span records, and a record may end in
// the middle of it; another record type before it is complete means this
// is not a TLS client's first flight. The records are walked again at each
// read, but their fragments are put together only when another record has
// completed, and there are at most kMaxRecords of them: a client sending
// its hello a byte at a time costs a few comparisons per read.
ClientHelloReader::Result ClientHelloReader::parse_records(std::string_view bytes) {
  std::string_view fragments[kMaxRecords];
  size_t records = 0;
  while (bytes.size() >= kRecordHeader) {
    if (!looks_like_tls_handshake(bytes.data(), bytes.size())) return Result::not_tls;
    size_t length = record_length(bytes);
    if (length == 0 || length > kMaxRecord) return Result::not_tls;
    if (bytes.size() < kRecordHeader + length) break;
    if (records == kMaxRecords) return Result::not_tls;
    fragments[records++] = bytes.substr(kRecordHeader, length);
    bytes.remove_prefix(kRecordHeader + length);
  }
  // The start of the next record header can already say "not TLS".
  if (!bytes.empty() && !looks_like_tls_handshake(bytes.data(), bytes.size())) {
    return Result::not_tls;
  }
  if (records == complete_records_) return Result::need_more;
  complete_records_ = records;
  std::string joined;  // only for a hello split across records
  std::string_view handshake = fragments[0];
  if (records > 1) {
    for (size_t i = 0; i < records; ++i) joined.append(fragments[i]);
    handshake = joined;
  }
  if (handshake.size() < kHandshakeHeader) return Result::need_more;
  if (static_cast<uint8_t>(handshake[0]) != kClientHello) return Result::not_tls;
  Bytes header(handshake);
  header.skip(1);
  size_t hello_length = header.number(3);
  if (hello_length > kMaxHello) return Result::not_tls;
  if (handshake.size() - kHandshakeHeader < hello_length) return Result::need_more;
  return parse_hello(handshake.substr(kHandshakeHeader, hello_length));
}

// RFC 8446 §4.1.2 (and RFC 5246 §7.4.1.2 before it): version, random,
// session id, cipher suites, compression methods, then the extensions, of
// which server_name (RFC 6066 §3) is the one read.
ClientHelloReader::Result ClientHelloReader::parse_hello(std::string_view hello) {
  Bytes b(hello);
  b.skip(2 + 32);  // legacy_version, random
  b.vector(1);     // legacy_session_id
  b.vector(2);     // cipher_suites
  b.vector(1);     // legacy_compression_methods
  if (!b.ok()) return Result::not_tls;
  if (b.empty()) return Result::hello;  // an old hello without extensions
  Bytes extensions = b.vector(2);
  while (extensions.ok() && !extensions.empty()) {
    uint32_t type = extensions.number(2);
    Bytes body = extensions.vector(2);
    if (!body.ok()) break;
    if (type != kServerNameExtension) continue;
    Bytes names = body.vector(2);
    while (names.ok() && !names.empty()) {
      uint32_t name_type = names.number(1);
      Bytes name = names.vector(2);
      if (name.ok() && name_type == kHostName) {
        sni_ = plausible_host_name(name.rest());
        return Result::hello;
      }
    }
    return Result::hello;
  }
  return extensions.ok() ? Result::hello : Result::not_tls;
}

}  // namespace cutoff
