#pragma once
// An llhttp parser in strict mode that collects one message head at a time and
// reports, event by event, where the head and the message end, so that the
// caller can forward body bytes exactly as they arrived (raw pass-through).
//
// Limits (SPEC §2): a request head over 64 KiB is refused with 431 and a
// request target over 8 KiB with 414; a response head over 64 KiB is an
// upstream protocol error.
//
// A head is reported only once cutoff can forward it without guessing (SPEC
// §9): its framing decided (http_framing.hpp), the headers its Connection
// field names known, no obs-fold. Everything else is an error before a byte
// of the message is forwarded.

#include <llhttp.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "cutoff/chunk_extension.hpp"
#include "cutoff/http_framing.hpp"

namespace cutoff {

// What a header field is to a proxy (RFC 9110 §7.6.1), decided once while
// the head is parsed.
enum class HeaderRole : uint8_t {
  end_to_end,         // forwarded as it came
  hop_by_hop,         // never forwarded: the fixed list, or named by Connection
  connection,         // Connection itself: its options name more hop-by-hop fields
  content_length,     // framing: cutoff writes its own (http_framing.hpp)
  transfer_encoding,  // framing: cutoff writes its own
  host,               // replaced by the authority of the target
};
constexpr size_t kHeaderRoles = 6;

// Whether a field name is `known` (lower case, with "-") as cutoff reads
// names: case-insensitively and with "_" read as "-", as CGI gateways map
// both to one variable. A field the parser gave a role of its own is the
// same field to whoever reads its value.
bool field_named(std::string_view name, std::string_view known);

// A message head; header names and values view into its own storage and stay
// valid until the parser is fed again after the message completed (the
// head is cleared then, even by a feed of nothing but CRLFs).
//
// The storage is the head's bytes as they arrived, and every name, value,
// target and reason is an offset and a length in it: the parser records
// where each lies rather than copying it, and copies the whole head once per
// read. A line the parser left as it came (`raw_line`) can then be forwarded
// as it is, and a head forwards the same bytes however its reads split it.
class MessageHead {
 public:
  MessageHead() = default;
  // Views point into the storage: a copy would point into another's.
  MessageHead(const MessageHead&) = delete;
  MessageHead& operator=(const MessageHead&) = delete;

  struct Header {
    std::string_view name;
    std::string_view value;
    HeaderRole role;
  };

  void clear();
  // A request's method, as soon as its start line is whole; empty before.
  std::string_view method() const { return method_; }
  std::string_view target() const { return view(target_); }
  int status() const { return status_; }
  std::string_view reason() const { return view(reason_); }
  int http_major() const { return major_; }
  int http_minor() const { return minor_; }
  bool http10() const { return major_ == 1 && minor_ == 0; }
  size_t header_count() const { return header_count_; }
  Header header(size_t i) const {
    return {view(headers_[i].name), view(headers_[i].value), headers_[i].role};
  }
  HeaderRole role(size_t i) const { return headers_[i].role; }
  // The first value of a header (case-insensitive name), or empty.
  std::string_view find(std::string_view name) const;
  // Every list item of every field with this name, joined with ", " as
  // one field line would carry them (RFC 9110 §5.3).
  std::string join(std::string_view name) const;
  // How many header fields have this role.
  int count(HeaderRole role) const { return role_counts_[static_cast<size_t>(role)]; }
  // Header i's field line with its CRLF, when it arrived as exactly
  // "name: value\r\n" (one space, no other whitespace); empty otherwise.
  // Lines that follow one another in the head follow one another here, so
  // that a run of them can be copied as one piece.
  std::string_view raw_line(size_t i) const {
    const HeaderSpan& h = headers_[i];
    size_t colon = size_t{h.name.offset} + h.name.length;
    size_t end = size_t{h.value.offset} + h.value.length;  // where the CRLF must be
    if (h.value.length == 0 || h.value.offset != colon + 2 || end + 2 > storage_.size()) return {};
    const char* bytes = storage_.data();
    if (bytes[colon] != ':' || bytes[colon + 1] != ' ' || bytes[end] != '\r' ||
        bytes[end + 1] != '\n') {
      return {};
    }
    return {bytes + h.name.offset, end + 2 - h.name.offset};
  }

 private:
  friend class HttpParser;
  struct Span {
    uint32_t offset = 0;
    uint32_t length = 0;
  };
  struct HeaderSpan {
    Span name, value;
    HeaderRole role = HeaderRole::end_to_end;
  };
  std::string_view view(Span s) const { return {base_ + s.offset, s.length}; }
  // A new message: forgets the bytes of the last one.
  void restart();
  // Around each parse of head bytes: `begin_feed` makes the bytes at `data`
  // viewable while they are parsed, `end_feed` keeps those up to `stop`.
  void begin_feed(const char* data, size_t len);
  void end_feed(const char* data, const char* stop);
  // Takes `len` more bytes at `at` (in the bytes being parsed) into `span`;
  // false if they do not follow its bytes so far, as when llhttp unfolds an
  // obs-fold line.
  bool extend(Span& span, const char* at, size_t len);
  // A new header whose name begins with the `len` bytes at `at`; null when
  // every slot is taken (grow_headers() adds some). Never allocates: it runs
  // for every field.
  HeaderSpan* add_header(const char* at, size_t len) {
    HeaderSpan* h = headers_.data() + header_count_;
    if (h == headers_.data() + headers_.size()) return nullptr;
    ++header_count_;
    *h = HeaderSpan{{offset_of(at), static_cast<uint32_t>(len)}, {}};
    return h;
  }
  // Where `at`, in the bytes being parsed, lies in the head.
  uint32_t offset_of(const char* at) const {
    return static_cast<uint32_t>(fed_before_ + static_cast<size_t>(at - feed_data_));
  }
  [[gnu::cold]] void grow_headers();
  // This head's headers, in the order they came.
  std::span<HeaderSpan> headers() { return {headers_.data(), header_count_}; }
  std::span<const HeaderSpan> headers() const { return {headers_.data(), header_count_}; }

  // The head's bytes from its first, once a feed has ended.
  std::string storage_;
  // Where offsets count from: storage_, or while the first piece of a head
  // is parsed, the caller's bytes (copied to storage_ when the feed ends).
  const char* base_ = "";
  // While a feed parses: where its bytes begin, and how many head bytes
  // came before them.
  const char* feed_data_ = nullptr;
  uint32_t fed_before_ = 0;
  // The first header_count_ slots are this head's headers. The slots stay
  // from one head to the next: a parser lent from one exchange to the next
  // has room for its fields already.
  std::vector<HeaderSpan> headers_;
  size_t header_count_ = 0;
  std::array<int, kHeaderRoles> role_counts_{};
  Span target_, reason_;
  std::string_view method_;  // llhttp's static name
  int status_ = 0;
  int major_ = 1, minor_ = 1;
};

// Receives decoded body bytes when the parser decodes instead of passing
// the body through (a chunked response to an HTTP/1.0 client).
class BodySink {
 public:
  virtual void on_body(const char* data, size_t len) = 0;

 protected:
  ~BodySink() = default;
};

class HttpParser {
 public:
  static constexpr size_t kMaxHead = 64 * 1024;
  static constexpr size_t kMaxTarget = 8 * 1024;
  // More options than this in Connection fields make the head an error: each
  // option is checked against every header, so the bound keeps that linear.
  static constexpr int kMaxConnectionOptions = 32;
  static constexpr uint64_t kMaxChunk = (uint64_t{1} << 31) - 1;

  enum class Event {
    need_more,         // everything consumed, the message goes on
    head,              // a whole head was parsed; the body (if any) follows
    message_complete,  // the message (and its body) ended
    upgrade,           // the rest of the stream is another protocol
    error,
  };

  explicit HttpParser(llhttp_type_t type);
  HttpParser(const HttpParser&) = delete;
  HttpParser& operator=(const HttpParser&) = delete;

  // Parses until the next event; *consumed says how many bytes it used.
  Event feed(const char* data, size_t len, size_t* consumed);
  // The peer closed: ends a close-delimited body.
  Event finish();
  // Starts afresh for a new connection.
  void reset();

  const MessageHead& head() const { return head_; }
  uint8_t method() const { return parser_.method; }
  bool keep_alive() const { return llhttp_should_keep_alive(&parser_) != 0; }
  // How the body of the current message is delimited, once its head is in.
  const Framing& framing() const { return framing_; }
  // A response without a body (to HEAD, 204, 304) whose head declared one:
  // its connection is not to be trusted with another request.
  bool body_declared_not_sent() const { return body_declared_not_sent_; }
  bool upgrade_requested() const { return parser_.upgrade != 0; }
  bool in_body() const { return head_done_ && !message_done_; }
  // Body bytes parsed since reset(): the payload only, without chunk sizes,
  // extensions or trailers (what min_rate counts).
  uint64_t body_bytes() const { return body_bytes_; }

  // For a response to HEAD: the head has no body whatever it declares.
  void set_skip_body(bool skip) { skip_body_ = skip; }
  // Decode the body into `sink` instead of passing it through.
  void set_body_sink(BodySink* sink) { sink_ = sink; }

  // For errors: the status to answer a bad request with (400, 414, 431).
  int error_status() const { return error_status_; }
  // Why parsing failed, never null.
  const char* error_reason() const;

 private:
  static int on_url(llhttp_t* p, const char* at, size_t len);
  static int on_status(llhttp_t* p, const char* at, size_t len);
  static int on_header_field(llhttp_t* p, const char* at, size_t len);
  static int on_header_field_complete(llhttp_t* p);
  static int on_header_value(llhttp_t* p, const char* at, size_t len);
  static int on_version_complete(llhttp_t* p);
  static int on_headers_complete(llhttp_t* p);
  static int on_body(llhttp_t* p, const char* at, size_t len);
  static int on_message_complete(llhttp_t* p);
  static int on_chunk_header(llhttp_t* p);
  static int on_chunk_extension_name(llhttp_t* p, const char* at, size_t len);
  static int on_chunk_extension_name_complete(llhttp_t* p);
  static int on_chunk_extension_value(llhttp_t* p, const char* at, size_t len);
  static int on_chunk_extension_value_complete(llhttp_t* p);
  static const llhttp_settings_t* settings();
  static HttpParser& self(llhttp_t* p) { return *static_cast<HttpParser*>(p->data); }
  void begin_message();
  int settle_head();
  int take(MessageHead::Span& span, const char* at, size_t len);
  [[gnu::cold]] int take_trailer_name(const char* at, size_t len);
  [[gnu::cold]] int grow_then_field(const char* at, size_t len);
  int end_trailer_field();
  const char* last_line_fault(const char* data, const char* end) const;
  bool apply_connection_options();
  const char* decide_body_framing();
  const char* line_fault(const char* p, const char* end);
  Event fail(int status, const char* reason);
  Event event_from(llhttp_errno_t rc, const char* data, const char* stop, size_t* consumed);

  llhttp_t parser_;
  MessageHead head_;
  Framing framing_;
  bool body_declared_not_sent_ = false;
  BodySink* sink_ = nullptr;
  ChunkExtensionCheck extension_;
  // Where this feed's trailer section began (obs-fold is looked for there).
  const char* trailer_start_ = nullptr;
  // The name of the trailer field being read, as far as a known name goes.
  char trailer_name_[20] = {};
  size_t trailer_name_length_ = 0;
  size_t head_bytes_ = 0;
  uint64_t body_bytes_ = 0;
  int error_status_ = 400;
  const char* error_reason_ = nullptr;  // set when cutoff, not llhttp, refused the message
  bool head_done_ = false;
  bool message_done_ = false;
  bool head_reported_ = false;
  bool complete_pending_ = false;
  bool skip_body_ = false;
  bool field_done_ = true;
  // The header being read (its name, then its value); a slot of head_
  // that stays where it is until the next header is added.
  MessageHead::HeaderSpan* field_ = nullptr;
  bool in_trailers_ = false;
  char last_head_byte_ = 0;  // the last head (or trailer) byte seen
  char last_byte_ = 0;       // the last byte of the previous feed
};

}  // namespace cutoff
