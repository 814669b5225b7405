#pragma once
// What the fuzz targets share: checks that abort (so that libFuzzer and the
// replay tests report a broken invariant like a crash), cutting the input
// into reads the way a socket would, and driving HttpParser the way the
// session does, with the stream offset of every event.

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "cutoff/ascii.hpp"
#include "cutoff/http_parser.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

namespace cutoff::fuzz {

using Event = HttpParser::Event;

// Named values printed with a failed check, so that a crash report says
// which head or path broke the invariant, not only which line.
class Context {
 public:
  Context(const char* name, std::string_view value) { stack().emplace_back(name, value); }
  ~Context() { stack().pop_back(); }
  Context(const Context&) = delete;
  Context& operator=(const Context&) = delete;

  static std::vector<std::pair<const char*, std::string_view>>& stack() {
    static std::vector<std::pair<const char*, std::string_view>> values;
    return values;
  }
};

// Protocol text with CR, LF and other control bytes made visible.
inline void print_escaped(std::string_view text) {
  for (char c : text) {
    auto byte = static_cast<unsigned char>(c);
    if (c == '\r') {
      std::fputs("\\r", stderr);
    } else if (c == '\n') {
      std::fputs("\\n\n    ", stderr);
    } else if (byte < 0x20 || byte >= 0x7f || c == '\\') {
      std::fprintf(stderr, "\\x%02x", byte);
    } else {
      std::fputc(c, stderr);
    }
  }
  std::fputc('\n', stderr);
}

[[noreturn]] inline void check_failed(const char* what, const char* file, int line) {
  std::fprintf(stderr, "\n%s:%d: invariant violated: %s\n", file, line, what);
  for (const auto& [name, value] : Context::stack()) {
    std::fprintf(stderr, "  %s (%zu bytes):\n    ", name, value.size());
    print_escaped(value);
  }
  std::abort();
}

#define FUZZ_CHECK(cond)                                                  \
  do {                                                                    \
    if (!(cond)) ::cutoff::fuzz::check_failed(#cond, __FILE__, __LINE__); \
  } while (0)

// Cuts a stream into the reads that deliver it, as one input byte chooses:
// all at once, byte by byte, or pseudo-random sizes (small ones stress the
// parser's state across reads, larger ones its fast paths).
class Splits {
 public:
  explicit Splits(uint8_t seed) : mode_(seed & 3u), state_(0x9E3779B9u ^ (seed * 0x01000193u)) {}

  // The size of the next read, 1..remaining (0 only when nothing remains).
  size_t next(size_t remaining) {
    size_t n = remaining;
    if (mode_ == 1) n = 1;
    if (mode_ == 2) n = 1 + random() % 8;
    if (mode_ == 3) n = 1 + random() % 96;
    return std::min(n, remaining);
  }

 private:
  uint32_t random() {  // xorshift32: deterministic, so a crash reproduces
    state_ ^= state_ << 13;
    state_ ^= state_ >> 17;
    state_ ^= state_ << 5;
    return state_;
  }
  uint32_t mode_;
  uint32_t state_;
};

// Collects what the parser decodes (BodySink), i.e. the body without its
// chunk framing.
class CollectingSink final : public BodySink {
 public:
  void on_body(const char* data, size_t len) override { body.append(data, len); }
  std::string body;
};

// Feeds one stream to a parser in reads, as the session does: a read is
// fed until the parser has used all of it, and after an event the rest of
// the read goes on to the next feed (even when nothing is left of it: a head
// without a body completes on an empty feed).
class Driver {
 public:
  Driver(HttpParser& parser, std::string_view stream, Splits& splits)
      : parser_(parser), stream_(stream), splits_(splits) {}

  // Feeds until an event other than need_more, or until the stream ends
  // (need_more then). The bytes the parser used are appended to *used, if
  // given: for a body, exactly what cutoff forwards raw.
  Event next(std::string* used = nullptr) {
    for (;;) {
      size_t n = 0;
      Event e = parser_.feed(pending_.empty() ? "" : pending_.data(), pending_.size(), &n);
      FUZZ_CHECK(n <= pending_.size());
      if (used) used->append(pending_.substr(0, n));
      pending_.remove_prefix(n);
      offset_ += n;
      if (e != Event::need_more) return e;
      FUZZ_CHECK(pending_.empty());  // need_more: the parser took the whole read
      if (!read()) return Event::need_more;
    }
  }

  // Bytes of the stream the parser has used so far.
  size_t offset() const { return offset_; }
  bool at_end() const { return pending_.empty() && read_to_ == stream_.size(); }
  std::string_view stream() const { return stream_; }

 private:
  bool read() {
    size_t n = splits_.next(stream_.size() - read_to_);
    if (n == 0) return false;
    pending_ = stream_.substr(read_to_, n);
    read_to_ += n;
    return true;
  }

  HttpParser& parser_;
  std::string_view stream_;
  Splits& splits_;
  std::string_view pending_;
  size_t read_to_ = 0;
  size_t offset_ = 0;
};

// Where a head that starts at `start` must end: after the first empty line,
// a line ending in CRLF or (RFC 9112 §2.2 lets a recipient accept it) a bare
// LF; empty lines before the start line are skipped. A parser that reports
// the head elsewhere has read body bytes as head or the other way round.
inline size_t head_end(std::string_view stream, size_t start) {
  size_t line = stream.find_first_not_of("\r\n", start);
  for (size_t lf = stream.find('\n', line); lf != std::string_view::npos;
       lf = stream.find('\n', lf + 1)) {
    size_t before = lf - line;  // bytes of this line before its LF, so far
    if (before >= 1 && stream[lf - 1] == '\n') return lf + 1;
    if (before >= 2 && stream[lf - 1] == '\r' && stream[lf - 2] == '\n') return lf + 1;
  }
  return std::string_view::npos;
}

// A chunked body read to the letter of RFC 9112 §7.1 (CRLF ends every line,
// extensions are tokens or quoted strings, trailer fields have no control
// bytes), as the strictest next hop would. cutoff forwards chunked bodies
// byte for byte, so anything laxer would let a next hop frame them otherwise.
class StrictChunked {
 public:
  // The chunk data of `body`, or false if `body` is not exactly one chunked body.
  static bool decode(std::string_view body, std::string* data) {
    StrictChunked reader(body);
    data->clear();
    for (;;) {
      uint64_t size = 0;
      if (!reader.chunk_size(&size) || !reader.extensions()) return false;
      // Not in RFC 9112's grammar but accepted by cutoff's llhttp (a side
      // effect of allowing BWS before ";"): whitespace before the CRLF. No
      // parser reads another size from it, so it cannot move the framing.
      reader.whitespace();
      if (!reader.crlf()) return false;
      if (size == 0) break;
      if (size > reader.rest_.size()) return false;
      data->append(reader.rest_.substr(0, size));
      reader.rest_.remove_prefix(size);
      if (!reader.crlf()) return false;
    }
    while (!reader.crlf()) {
      if (!reader.field_line() || !reader.crlf()) return false;
    }
    return reader.rest_.empty();
  }

 private:
  explicit StrictChunked(std::string_view body) : rest_(body) {}

  static bool is_hex(char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
  }
  static bool is_field_char(char c) {  // VCHAR, obs-text, SP, HTAB
    auto byte = static_cast<unsigned char>(c);
    return byte == '\t' || (byte >= 0x20 && byte != 0x7f);
  }
  bool take(char c) {
    if (rest_.empty() || rest_.front() != c) return false;
    rest_.remove_prefix(1);
    return true;
  }
  bool crlf() {
    if (rest_.substr(0, 2) != "\r\n") return false;
    rest_.remove_prefix(2);
    return true;
  }
  void whitespace() {
    while (take(' ') || take('\t')) continue;
  }
  bool token() {
    size_t n = 0;
    while (n < rest_.size() && is_tchar(rest_[n])) ++n;
    rest_.remove_prefix(n);
    return n > 0;
  }
  bool chunk_size(uint64_t* size) {
    size_t n = 0;
    for (; n < rest_.size() && is_hex(rest_[n]); ++n) {
      if (*size >> 60) return false;  // more than 64 bits
      char c = rest_[n];
      int digit = c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10;
      *size = *size * 16 + static_cast<uint64_t>(digit);
    }
    rest_.remove_prefix(n);
    return n > 0;
  }
  bool quoted_string() {
    if (!take('"')) return false;
    while (!rest_.empty()) {
      char c = rest_.front();
      rest_.remove_prefix(1);
      if (c == '"') return true;
      if (c == '\\') {
        if (rest_.empty() || !is_field_char(rest_.front())) return false;
        rest_.remove_prefix(1);
      } else if (!is_field_char(c)) {
        return false;
      }
    }
    return false;
  }
  // *( BWS ";" BWS name [ BWS "=" BWS value ] )
  bool extensions() {
    for (;;) {
      std::string_view before = rest_;
      whitespace();
      if (!take(';')) {
        rest_ = before;  // BWS belongs to an extension only
        return true;
      }
      whitespace();
      if (!token()) return false;
      std::string_view after_name = rest_;
      whitespace();
      if (!take('=')) {
        rest_ = after_name;
        continue;
      }
      whitespace();
      if (!token() && !quoted_string()) return false;
    }
  }
  // field-name ":" OWS field-value OWS, up to (not including) its CRLF.
  bool field_line() {
    if (!token() || !take(':')) return false;
    while (!rest_.empty() && is_field_char(rest_.front())) rest_.remove_prefix(1);
    return true;
  }

  std::string_view rest_;
};

inline bool same_framing(const Framing& a, const Framing& b) {
  return a.kind == b.kind && a.length == b.length;
}

// A chunked body that cutoff passes through raw holds to RFC 9112 and
// decodes to what cutoff decoded: the next hop may be stricter than llhttp.
inline void check_strict_chunked(std::string_view raw, std::string_view decoded) {
  std::string strict;
  FUZZ_CHECK(StrictChunked::decode(raw, &strict));
  FUZZ_CHECK(strict == decoded);
}

inline size_t count_role(const MessageHead& head, HeaderRole role) {
  size_t n = 0;
  for (size_t i = 0; i < head.header_count(); ++i) n += head.header(i).role == role;
  return n;
}

inline size_t count_named(const MessageHead& head, std::string_view name) {
  size_t n = 0;
  for (size_t i = 0; i < head.header_count(); ++i) n += iequals(head.header(i).name, name);
  return n;
}

// The hop-by-hop fields every message loses (SPEC §2), Connection included.
inline bool fixed_hop_by_hop(std::string_view name) {
  // The last two are cutoff's own request fields (SPEC §12): read, never
  // passed on, in either direction.
  for (std::string_view hop :
       {"connection", "proxy-connection", "keep-alive", "te", "trailer", "upgrade",
        "proxy-authorization", "proxy-authenticate", "cutoff-test-id", "cutoff-timeout"}) {
    if (iequals(name, hop)) return true;
  }
  return false;
}

// Every field of a head cutoff wrote has a name (a token, RFC 9110 §5.1):
// a next hop may refuse a nameless ": value" line or join it to the field
// before it.
inline void check_field_names(const MessageHead& head) {
  for (size_t i = 0; i < head.header_count(); ++i) {
    std::string_view name = head.header(i).name;
    Context context("field name", name);
    FUZZ_CHECK(!name.empty());
    for (char c : name) FUZZ_CHECK(is_tchar(c));
  }
}

// The options of the message's Connection fields: more hop-by-hop names.
inline std::vector<std::string_view> connection_options(const MessageHead& head) {
  std::vector<std::string_view> options;
  for (size_t i = 0; i < head.header_count(); ++i) {
    if (head.header(i).role != HeaderRole::connection) continue;
    for_each_list_item(head.header(i).value, [&](std::string_view option) {
      options.push_back(option);
      return true;
    });
  }
  return options;
}

using HeaderList = std::vector<std::pair<std::string_view, std::string_view>>;

// The fields cutoff passes through unchanged, in order.
inline HeaderList end_to_end_headers(const MessageHead& head) {
  HeaderList list;
  for (size_t i = 0; i < head.header_count(); ++i) {
    MessageHead::Header h = head.header(i);
    if (h.role == HeaderRole::end_to_end) list.emplace_back(h.name, h.value);
  }
  return list;
}

// The protocols of every Upgrade field, in order.
inline std::vector<std::string_view> upgrade_protocols(const MessageHead& head) {
  std::vector<std::string_view> protocols;
  for (size_t i = 0; i < head.header_count(); ++i) {
    if (!iequals(head.header(i).name, "upgrade")) continue;
    for_each_list_item(head.header(i).value, [&](std::string_view protocol) {
      protocols.push_back(protocol);
      return true;
    });
  }
  return protocols;
}

// An upgrade is forwarded with one Upgrade field that offers what the sender
// offered: no protocol lost, none invented.
inline void check_upgrade_field(const MessageHead& original, const MessageHead& sent) {
  FUZZ_CHECK(count_named(sent, "upgrade") == 1);
  FUZZ_CHECK(upgrade_protocols(sent) == upgrade_protocols(original));
}

// What the next hop makes of the bytes cutoff sends: one message, whose
// head ends exactly where cutoff's head does and whose body ends exactly at
// the end of the bytes (or, when close-delimited, at the close). Returns
// the decoded body; the parser keeps the head for further checks.
inline std::string expect_one_message(HttpParser& parser, std::string_view head,
                                      std::string_view body, Splits& splits, bool upgrade,
                                      bool close_delimited) {
  std::string bytes(head);
  bytes.append(body);
  Context context("re-parsed stream", bytes);
  CollectingSink sink;
  parser.set_body_sink(&sink);
  Driver driver(parser, bytes, splits);
  Event e = driver.next();
  FUZZ_CHECK(e == (upgrade ? Event::upgrade : Event::head));
  FUZZ_CHECK(driver.offset() == head.size());
  if (upgrade) {
    parser.set_body_sink(nullptr);
    return {};
  }
  e = driver.next();
  if (close_delimited) {
    FUZZ_CHECK(e == Event::need_more);
    e = parser.finish();
  }
  FUZZ_CHECK(e == Event::message_complete);
  FUZZ_CHECK(driver.offset() == bytes.size());
  parser.set_body_sink(nullptr);
  return std::move(sink.body);
}

}  // namespace cutoff::fuzz
