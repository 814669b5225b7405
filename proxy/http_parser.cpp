#include "cutoff/http_parser.hpp"

#include <algorithm>
#include <cassert>
#include <cstring>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

#include "cutoff/ascii.hpp"

namespace cutoff {
namespace {

// Every header name of every message is compared through this table, a
// byte at a time: lower case, and "_" read as "-".
constexpr auto kNameFold = [] {
  std::array<char, 256> fold{};
  for (int c = 0; c < 256; ++c) fold[c] = ascii_lower(static_cast<char>(c));
  fold['_'] = '-';
  return fold;
}();

// A name as a known one, case-insensitively and with "_" read as "-": CGI
// gateways and some frameworks map both to the same variable, so that
// "Transfer_Encoding" would frame the body for them.
bool names_alike(std::string_view name, std::string_view known) {
  for (size_t i = 0; i < name.size(); ++i) {
    if (kNameFold[static_cast<unsigned char>(name[i])] != known[i]) return false;
  }
  return true;
}

}  // namespace

bool field_named(std::string_view name, std::string_view known) {
  return name.size() == known.size() && names_alike(name, known);
}

namespace {

// Every request and response header passes through here: the length picks
// the one or two names worth comparing.
HeaderRole role_of(std::string_view name) {
  auto is = [&](std::string_view known) { return names_alike(name, known); };
  switch (name.size()) {
    case 2:
      return is("te") ? HeaderRole::hop_by_hop : HeaderRole::end_to_end;
    case 4:
      return is("host") ? HeaderRole::host : HeaderRole::end_to_end;
    case 7:
      return is("trailer") || is("upgrade") ? HeaderRole::hop_by_hop : HeaderRole::end_to_end;
    case 10:
      if (is("connection")) return HeaderRole::connection;
      return is("keep-alive") ? HeaderRole::hop_by_hop : HeaderRole::end_to_end;
    case 14:
      if (is("content-length")) return HeaderRole::content_length;
      // cutoff's own request fields (SPEC §12): read, never forwarded.
      return is("cutoff-test-id") || is("cutoff-timeout") ? HeaderRole::hop_by_hop
                                                          : HeaderRole::end_to_end;
    case 16:
      // Not in any RFC, but llhttp reads it as Connection, and so does cutoff.
      return is("proxy-connection") ? HeaderRole::connection : HeaderRole::end_to_end;
    case 17:
      return is("transfer-encoding") ? HeaderRole::transfer_encoding : HeaderRole::end_to_end;
    case 18:
      return is("proxy-authenticate") ? HeaderRole::hop_by_hop : HeaderRole::end_to_end;
    case 19:
      return is("proxy-authorization") ? HeaderRole::hop_by_hop : HeaderRole::end_to_end;
    default:
      return HeaderRole::end_to_end;
  }
}

// Fields a trailer section may not carry: everything but end-to-end ones,
// and the end-to-end fields that authenticate or describe the content.
bool head_only(std::string_view name) {
  if (role_of(name) != HeaderRole::end_to_end) return true;
  static constexpr std::string_view kHeadOnly[] = {
      "authorization",    "cookie",        "set-cookie",   "www-authenticate",
      "content-encoding", "content-range", "content-type", "expect",
  };
  for (std::string_view known : kHeadOnly) {
    if (name.size() == known.size() && names_alike(name, known)) return true;
  }
  return false;
}

// FNV-1a over the lower-cased name: Connection options are compared with
// every header name through this first.
uint64_t name_hash(std::string_view name) {
  uint64_t h = 14695981039346656037ull;
  for (char c : name) h = (h ^ static_cast<unsigned char>(ascii_lower(c))) * 1099511628211ull;
  return h;
}

// A name's length as one bit of a mask: names of 63 bytes or more share the
// last bit.
uint64_t length_bit(size_t length) {
  return uint64_t{1} << std::min<size_t>(length, 63);
}

// reason-phrase = *( HTAB / SP / VCHAR / obs-text ) (RFC 9112 §4).
bool is_reason_phrase(std::string_view s) {
  for (char ch : s) {
    unsigned char c = static_cast<unsigned char>(ch);
    if (c != '\t' && (c < 0x20 || c == 0x7F)) return false;
  }
  return true;
}

// Whether every LF from p + 1 to end - 1 (the bytes whose neighbours are
// all in [p, end)) has CR before it and neither SP nor HTAB after it; end - p
// must be 18 or more. Without SSE2: not known.
bool lines_clean(const char* p, const char* end) {
#ifdef __SSE2__
  const __m128i lf = _mm_set1_epi8('\n'), cr = _mm_set1_epi8('\r');
  const __m128i sp = _mm_set1_epi8(' '), htab = _mm_set1_epi8('\t');
  auto load = [](const char* at) { return _mm_loadu_si128(reinterpret_cast<const __m128i*>(at)); };
  // The 16 bytes at q, each with the byte before and the byte after it.
  auto clean = [&](const char* q) {
    __m128i after = load(q + 1);
    __m128i folds = _mm_or_si128(_mm_cmpeq_epi8(after, sp), _mm_cmpeq_epi8(after, htab));
    __m128i ends_line = _mm_andnot_si128(folds, _mm_cmpeq_epi8(load(q - 1), cr));
    return _mm_movemask_epi8(_mm_andnot_si128(ends_line, _mm_cmpeq_epi8(load(q), lf))) == 0;
  };
  const char* last = end - 17;  // the last 16 bytes with a byte after them
  for (const char* q = p + 1; q < last; q += 16) {
    if (!clean(q)) return false;
  }
  return clean(last);
#else
  (void)p, (void)end;
  return false;
#endif
}

}  // namespace

void MessageHead::clear() {
  header_count_ = 0;
  role_counts_ = {};
  target_ = reason_ = Span{};
  method_ = {};
  status_ = 0;
  major_ = minor_ = 1;
}

void MessageHead::restart() {
  storage_.clear();
  base_ = storage_.data();
}

// The first piece of a head is parsed where it lies and copied once the
// feed ends; a later piece is appended first, whole, so that a field begun
// in an earlier read stays in one piece while llhttp reports the rest of it
// (what follows the head is cut off again in end_feed).
void MessageHead::begin_feed(const char* data, size_t len) {
  feed_data_ = data;
  fed_before_ = static_cast<uint32_t>(storage_.size());
  if (storage_.empty()) {
    base_ = data;
    return;
  }
  storage_.append(data, len);
  base_ = storage_.data();
}

void MessageHead::end_feed(const char* data, const char* stop) {
  size_t parsed = static_cast<size_t>(stop - data);
  if (fed_before_ == 0) {
    storage_.assign(data, parsed);
  } else {
    storage_.resize(fed_before_ + parsed);
  }
  base_ = storage_.data();
  feed_data_ = nullptr;
}

void MessageHead::grow_headers() {
  headers_.resize(std::max<size_t>(16, 2 * headers_.size()));
}

bool MessageHead::extend(Span& span, const char* at, size_t len) {
  uint32_t offset = offset_of(at);
  if (span.length == 0) {
    span.offset = offset;
  } else if (span.offset + span.length != offset) {
    return false;
  }
  span.length += static_cast<uint32_t>(len);
  return true;
}

std::string_view MessageHead::find(std::string_view name) const {
  for (const HeaderSpan& h : headers()) {
    if (iequals(view(h.name), name)) return view(h.value);
  }
  return {};
}

std::string MessageHead::join(std::string_view name) const {
  std::string out;
  for (const HeaderSpan& h : headers()) {
    if (!iequals(view(h.name), name)) continue;
    for_each_list_item(view(h.value), [&](std::string_view item) {
      if (!out.empty()) out.append(", ");
      out.append(item);
      return true;
    });
  }
  return out;
}

const llhttp_settings_t* HttpParser::settings() {
  static const llhttp_settings_t s = [] {
    llhttp_settings_t init;
    llhttp_settings_init(&init);
    init.on_url = on_url;
    init.on_status = on_status;
    init.on_header_field = on_header_field;
    init.on_header_field_complete = on_header_field_complete;
    init.on_header_value = on_header_value;
    init.on_version_complete = on_version_complete;
    init.on_headers_complete = on_headers_complete;
    init.on_body = on_body;
    init.on_message_complete = on_message_complete;
    init.on_chunk_header = on_chunk_header;
    init.on_chunk_extension_name = on_chunk_extension_name;
    init.on_chunk_extension_name_complete = on_chunk_extension_name_complete;
    init.on_chunk_extension_value = on_chunk_extension_value;
    init.on_chunk_extension_value_complete = on_chunk_extension_value_complete;
    return init;
  }();
  return &s;
}

HttpParser::HttpParser(llhttp_type_t type) {
  llhttp_init(&parser_, type, settings());
  parser_.data = this;
}

void HttpParser::reset() {
  llhttp_type_t type = static_cast<llhttp_type_t>(parser_.type);
  llhttp_init(&parser_, type, settings());
  parser_.data = this;
  begin_message();
  body_bytes_ = 0;
  error_status_ = 400;
  error_reason_ = nullptr;
  complete_pending_ = skip_body_ = false;
  last_byte_ = 0;
  extension_ = ChunkExtensionCheck{};
  trailer_name_length_ = 0;
}

// Everything a message leaves behind goes before the next one: at reset(),
// or once the last message was reported whole, at the next feed (before
// any byte of the next message, which may begin in it). llhttp's
// on_message_begin would do the same at that message's first byte, with a
// callback per message.
void HttpParser::begin_message() {
  head_.clear();
  head_.restart();
  framing_ = Framing{};
  body_declared_not_sent_ = false;
  head_bytes_ = 0;
  head_done_ = message_done_ = head_reported_ = in_trailers_ = false;
  field_done_ = true;
  last_head_byte_ = 0;
}

HttpParser::Event HttpParser::feed(const char* data, size_t len, size_t* consumed) {
  *consumed = 0;
  if (complete_pending_) {
    complete_pending_ = false;
    return Event::message_complete;
  }
  // The last message was reported whole: these bytes start the next head,
  // which gets its own size budget.
  if (message_done_) begin_message();
  // A head may not grow past kMaxHead: parse at most what fits, and if the
  // head is still not complete after that, the head is too large.
  size_t limit = len;
  bool capped = false;
  if (!head_done_ && len > kMaxHead - head_bytes_) {
    limit = kMaxHead - head_bytes_;
    capped = true;
  }
  bool in_head = !head_done_;
  bool trailers_before = in_trailers_;
  trailer_start_ = nullptr;
  if (in_head) head_.begin_feed(data, limit);
  llhttp_errno_t rc = llhttp_execute(&parser_, data, limit);
  const char* stop = rc == HPE_OK ? data + limit : llhttp_get_error_pos(&parser_);
  if (in_head) {
    head_.end_feed(data, stop);
    head_bytes_ += static_cast<size_t>(stop - data);
    if (rc == HPE_OK && capped && !head_done_) {
      return fail(431, "the head is larger than 64 KiB");
    }
    if (const char* fault = line_fault(data, stop)) return fail(400, fault);
  } else if (in_trailers_) {
    if (const char* fault = line_fault(trailers_before ? data : trailer_start_, stop)) {
      return fail(400, fault);
    }
  }
  if (message_done_ && framing_.kind == Framing::Kind::chunked) {
    if (const char* fault = last_line_fault(data, stop)) return fail(400, fault);
  }
  if (stop > data) last_byte_ = stop[-1];
  return event_from(rc, data, stop, consumed);
}

// The line that ends a chunked message (the empty line after the last
// chunk, or after its trailer fields) is one llhttp takes with a bare LF
// even in strict mode. The message ended in this feed, at `end`.
const char* HttpParser::last_line_fault(const char* data, const char* end) const {
  char before_lf = end - 2 >= data ? end[-2] : last_byte_;
  return before_lf == '\r' ? nullptr : "a line that ends in LF without CR";
}

// llhttp unfolds obs-fold (a field line continued on the next line after
// CRLF and a space) instead of refusing it, and takes a bare LF after the
// request line; a proxy must not guess what either meant (SPEC §2), so both
// are looked for here, in heads and trailer sections, across reads.
const char* HttpParser::line_fault(const char* p, const char* end) {
  if (p == end) return nullptr;
  auto folds = [](char c) { return c == ' ' || c == '\t'; };
  if (last_head_byte_ == '\n' && folds(*p)) return "obs-fold (a field continued on the next line)";
  // Most heads have no fault, which lines_clean() tells 16 bytes at a time
  // for all but the first byte (the byte before it came in an earlier
  // read) and the last (the byte after it has not come yet). The loop below
  // finds the first fault, if there may be one.
  if (end - p >= 18 && *p != '\n' && (end[-1] != '\n' || end[-2] == '\r') && lines_clean(p, end)) {
    last_head_byte_ = end[-1];
    return nullptr;
  }
  for (const char* lf = p; (lf = static_cast<const char*>(std::memchr(lf, '\n', end - lf)));) {
    char before = lf == p ? last_head_byte_ : lf[-1];
    if (before != '\r') return "a line that ends in LF without CR";
    if (++lf < end && folds(*lf)) return "obs-fold (a field continued on the next line)";
  }
  last_head_byte_ = end[-1];
  return nullptr;
}

HttpParser::Event HttpParser::event_from(llhttp_errno_t rc, const char* data, const char* stop,
                                         size_t* consumed) {
  *consumed = static_cast<size_t>(stop - data);
  switch (rc) {
    case HPE_OK:
      return Event::need_more;
    case HPE_PAUSED:
      llhttp_resume(&parser_);
      if (head_done_ && !head_reported_) {
        head_reported_ = true;
        complete_pending_ = message_done_;  // a head with no body: both at once
        return Event::head;
      }
      return Event::message_complete;
    case HPE_PAUSED_UPGRADE:
      return Event::upgrade;
    default:
      return Event::error;
  }
}

HttpParser::Event HttpParser::fail(int status, const char* reason) {
  error_status_ = status;
  error_reason_ = reason;
  return Event::error;
}

const char* HttpParser::error_reason() const {
  if (error_reason_ != nullptr) return error_reason_;
  const char* reason = llhttp_get_error_reason(&parser_);
  return reason != nullptr ? reason : "incomplete message";
}

HttpParser::Event HttpParser::finish() {
  // A close-delimited body ends here; on_message_complete pauses as usual.
  llhttp_errno_t rc = llhttp_finish(&parser_);
  if (rc != HPE_OK && rc != HPE_PAUSED) return Event::error;
  return message_done_ ? Event::message_complete : Event::error;
}

int HttpParser::on_url(llhttp_t* p, const char* at, size_t len) {
  HttpParser& self = HttpParser::self(p);
  if (self.head_.target_.length + len > kMaxTarget) {
    self.fail(414, "the request target is longer than 8 KiB");
    return HPE_USER;
  }
  return self.take(self.head_.target_, at, len);
}

int HttpParser::on_status(llhttp_t* p, const char* at, size_t len) {
  HttpParser& self = HttpParser::self(p);
  return self.take(self.head_.reason_, at, len);
}

// Runs for every field of every head: what is rare (a trailer, a head with
// more fields than any before it) is out of line, so that the common path
// saves no registers.
int HttpParser::on_header_field(llhttp_t* p, const char* at, size_t len) {
  HttpParser& self = HttpParser::self(p);
  if (self.head_done_) return self.take_trailer_name(at, len);
  if (!self.field_done_) return self.take(self.field_->name, at, len);  // a name split by reads
  self.field_ = self.head_.add_header(at, len);
  if (self.field_ == nullptr) [[unlikely]]
    return self.grow_then_field(at, len);
  self.field_done_ = false;
  return 0;
}

// A tail call from on_header_field, which then finds room.
int HttpParser::grow_then_field(const char* at, size_t len) {
  head_.grow_headers();
  return on_header_field(&parser_, at, len);
}

// Trailers travel as raw bytes; their lines and names are checked.
int HttpParser::take_trailer_name(const char* at, size_t len) {
  if (!in_trailers_) {
    in_trailers_ = true;
    trailer_start_ = at;
    last_head_byte_ = '\n';  // the CRLF of the last chunk's size line
  }
  // Longer names than the buffer holds are no known name: only count them.
  size_t kept = trailer_name_length_;
  if (kept < sizeof trailer_name_) {
    std::memcpy(trailer_name_ + kept, at, std::min(len, sizeof trailer_name_ - kept));
  }
  trailer_name_length_ += len;
  return 0;
}

int HttpParser::on_header_field_complete(llhttp_t* p) {
  HttpParser& self = HttpParser::self(p);
  if (self.head_done_) return self.end_trailer_field();
  // llhttp's strict mode still takes a field with an empty name.
  if (self.field_done_ || self.field_->name.length == 0) {
    self.fail(400, "a field with an empty name");
    return -1;
  }
  self.field_done_ = true;
  MessageHead::HeaderSpan& header = *self.field_;
  header.role = role_of(self.head_.view(header.name));
  ++self.head_.role_counts_[static_cast<size_t>(header.role)];
  return 0;
}

// A trailer field must have a name, and not one that only a head may carry
// (RFC 9110 §6.5.1): trailers are forwarded as they came, and a next hop
// that merged such a field into the head would frame, route, authenticate
// or decode the message anew.
int HttpParser::end_trailer_field() {
  size_t length = trailer_name_length_;
  trailer_name_length_ = 0;
  if (length == 0) {
    fail(400, "a trailer field with an empty name");
    return -1;
  }
  if (length <= sizeof trailer_name_ && head_only(std::string_view(trailer_name_, length))) {
    fail(400, "a trailer field that only a head may carry");
    return -1;
  }
  return 0;
}

int HttpParser::on_header_value(llhttp_t* p, const char* at, size_t len) {
  HttpParser& self = HttpParser::self(p);
  if (self.head_done_) return 0;
  return self.take(self.field_->value, at, len);
}

// A piece of the head that does not follow the last piece of its element is
// a line llhttp unfolded (feed() names the fault from the bytes).
int HttpParser::take(MessageHead::Span& span, const char* at, size_t len) {
  if (head_.extend(span, at, len)) return 0;
  fail(400, "obs-fold (a field continued on the next line)");
  return -1;
}

// A request's start line is whole: from here on its method is known, so a
// head that stalls in its fields can still be named in the log.
int HttpParser::on_version_complete(llhttp_t* p) {
  if (p->type == HTTP_REQUEST) {
    self(p).head_.method_ = llhttp_method_name(static_cast<llhttp_method_t>(p->method));
  }
  return 0;
}

int HttpParser::on_headers_complete(llhttp_t* p) {
  HttpParser& self = HttpParser::self(p);
  MessageHead& head = self.head_;
  head.major_ = p->http_major;
  head.minor_ = p->http_minor;
  if (p->type == HTTP_RESPONSE) head.status_ = p->status_code;
  self.head_done_ = true;
  return self.settle_head();
}

// Everything cutoff must know before it forwards a byte of this message; a
// head it cannot forward unambiguously is an error here.
int HttpParser::settle_head() {
  const llhttp_t* p = &parser_;
  bool request = p->type == HTTP_REQUEST;
  if (p->http_major != 1 || p->http_minor > 1) {
    fail(400, "an HTTP version other than 1.0 and 1.1");
    return -1;
  }
  if (!request && p->status_code < 100) {
    fail(400, "a status code below 100");
    return -1;
  }
  if (!request && !is_reason_phrase(head_.reason())) {
    fail(400, "a reason phrase with a control character");
    return -1;
  }
  if (!apply_connection_options()) return -1;
  if (const char* refusal = decide_body_framing()) {
    fail(400, refusal);
    return -1;
  }
  bool has_body = framing_.kind == Framing::Kind::chunked ||
                  (framing_.kind == Framing::Kind::length && framing_.length > 0);
  // RFC 9110 §7.8: an Upgrade in an HTTP/1.0 request is ignored.
  if (request && p->upgrade && p->method != HTTP_CONNECT && p->http_minor == 0) parser_.upgrade = 0;
  if (p->upgrade) {
    // CONNECT or an Upgrade: llhttp pauses with HPE_PAUSED_UPGRADE once the
    // head ends. Bytes after such a request head belong to the new protocol,
    // so a request that also declares a body is ambiguous.
    if (request && has_body) {
      fail(400, p->method == HTTP_CONNECT ? "a CONNECT request with a body"
                                          : "an Upgrade request with a body");
      return -1;
    }
    if ((!request || p->method != HTTP_CONNECT) && head_.join("upgrade").empty()) {
      fail(400, "an Upgrade field that names no protocol");
      return -1;
    }
    // A 101's own framing fields mean nothing: what follows is the new
    // protocol, to be tunnelled untouched (2: no body, then the upgrade).
    return request ? 0 : 2;
  }
  // A response to HEAD, an interim 1xx, 204 and 304 end with their head,
  // whatever framing headers they carry (RFC 9112 §6.3); on_message_complete
  // then pauses.
  if (!request && framing_.kind == Framing::Kind::none) return 1;
  return HPE_PAUSED;
}

// Marks the headers that Connection names as hop-by-hop (never the framing
// or Host, which cutoff writes itself), with the options capped so that the
// check stays linear in the size of the head.
//
// Most heads name only "keep-alive" or "upgrade": fields with a role of
// their own, which no option changes, so options like these are counted but
// left out of the matching. A field is compared with the other options only
// when its name has the length of one of them.
bool HttpParser::apply_connection_options() {
  if (head_.count(HeaderRole::connection) == 0) return true;
  // The options that may name an end-to-end field. Left uninitialised (a
  // string_view array would not be): most heads name none.
  struct Option {
    const char* data;
    size_t size;
    uint64_t hash;
  } options[kMaxConnectionOptions];
  int named = 0;         // every token option counts towards the cap
  int count = 0;         // the ones that may name an end-to-end field
  uint64_t lengths = 0;  // bit n: an option of length n (63: 63 or longer)
  bool too_many = false;
  for (const MessageHead::HeaderSpan& h : head_.headers()) {
    if (h.role != HeaderRole::connection) continue;
    for_each_list_item(head_.view(h.value), [&](std::string_view option) {
      if (named == kMaxConnectionOptions) {
        too_many = true;
        return false;
      }
      // A name with a role of its own (a token, then) stays as it is, in
      // whatever case a field spells it.
      if (role_of(option) != HeaderRole::end_to_end) {
        ++named;
        return true;
      }
      if (!is_token(option)) return true;
      ++named;
      options[count++] = {option.data(), option.size(), name_hash(option)};
      lengths |= length_bit(option.size());
      return true;
    });
    if (too_many) {
      fail(400, "the Connection header names more than 32 options");
      return false;
    }
  }
  if (count == 0) return true;
  for (MessageHead::HeaderSpan& h : head_.headers()) {
    if (h.role != HeaderRole::end_to_end) continue;
    if ((lengths & length_bit(h.name.length)) == 0) continue;
    std::string_view name = head_.view(h.name);
    uint64_t hash = name_hash(name);
    for (int i = 0; i < count; ++i) {
      if (hash == options[i].hash && iequals(name, {options[i].data, options[i].size})) {
        h.role = HeaderRole::hop_by_hop;
        --head_.role_counts_[static_cast<size_t>(HeaderRole::end_to_end)];
        ++head_.role_counts_[static_cast<size_t>(HeaderRole::hop_by_hop)];
        break;
      }
    }
  }
  return true;
}

const char* HttpParser::decide_body_framing() {
  const llhttp_t* p = &parser_;
  FramingFields fields;
  fields.request = p->type == HTTP_REQUEST;
  fields.http10 = p->http_major == 1 && p->http_minor == 0;
  fields.bodiless =
      skip_body_ || p->status_code < 200 || p->status_code == 204 || p->status_code == 304;
  fields.transfer_encoding_count = head_.count(HeaderRole::transfer_encoding);
  if (fields.transfer_encoding_count > 0)
    fields.transfer_encoding = head_.find("transfer-encoding");
  fields.content_length_count = head_.count(HeaderRole::content_length);
  fields.content_length = p->content_length;
  fields.parser_chunked = (p->flags & F_CHUNKED) != 0;
  fields.parser_content_length = (p->flags & F_CONTENT_LENGTH) != 0;
  // A head with no body that still declares one (a HEAD or 304 response
  // with its length, a 204 with one): a server that sends the body anyway
  // would answer the next request on the connection with it.
  body_declared_not_sent_ =
      fields.bodiless && (fields.transfer_encoding_count > 0 ||
                          (fields.content_length_count > 0 && p->content_length > 0));
  return decide_framing(fields, &framing_);
}

// Chunk sizes above 2^31 - 1 bytes are refused: no sender needs them, and a
// next hop that keeps sizes in 32 bits would read a smaller chunk and take
// the rest as the next message.
int HttpParser::on_chunk_header(llhttp_t* p) {
  if (p->content_length <= kMaxChunk) return 0;
  self(p).fail(400, "a chunk larger than 2 GiB");
  return -1;
}

int HttpParser::on_chunk_extension_name(llhttp_t* p, const char* at, size_t len) {
  return self(p).extension_.name({at, len}) ? 0 : -1;
}

int HttpParser::on_chunk_extension_name_complete(llhttp_t* p) {
  return self(p).extension_.end_name() ? 0 : -1;
}

int HttpParser::on_chunk_extension_value(llhttp_t* p, const char* at, size_t len) {
  return self(p).extension_.value({at, len}) ? 0 : -1;
}

int HttpParser::on_chunk_extension_value_complete(llhttp_t* p) {
  return self(p).extension_.end_value() ? 0 : -1;
}

int HttpParser::on_body(llhttp_t* p, const char* at, size_t len) {
  HttpParser& self = HttpParser::self(p);
  self.body_bytes_ += len;
  if (self.sink_) self.sink_->on_body(at, len);
  return 0;
}

int HttpParser::on_message_complete(llhttp_t* p) {
  HttpParser& self = HttpParser::self(p);
  self.message_done_ = true;
  if (p->upgrade) return 0;  // llhttp pauses for the upgrade itself
  return HPE_PAUSED;
}

}  // namespace cutoff
