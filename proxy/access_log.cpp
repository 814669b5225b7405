#include "cutoff/access_log.hpp"

#include <spdlog/spdlog.h>
#include <unistd.h>

#include <array>
#include <bit>
#include <cassert>
#include <charconv>
#include <chrono>
#include <cstring>
#include <utility>

#include "cutoff/log_output.hpp"

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace cutoff {

namespace {

// A worker's lines wait in its buffer while the destination is full; past
// this many bytes, new lines are dropped. It absorbs a reader that falls
// behind for a moment, not one that has stopped.
constexpr size_t kBufferLimit = 128 * 1024;
// One write(2) per this many bytes of lines, besides the periodic flush.
constexpr size_t kWriteAt = 32 * 1024;
constexpr int64_t kDropWarningIntervalMs = 60 * 1000;

// A line is written through a cursor into memory already sized for the
// longest text its record can make (most_bytes), so that each piece is a
// copy with no size check, no call into the string and no format string.
class Cursor {
 public:
  explicit Cursor(char* at) : p_(at) {}
  void append(std::string_view s) {
    // An empty view may have no data at all, which memcpy may not be given.
    if (s.empty()) return;
    std::memcpy(p_, s.data(), s.size());
    p_ += s.size();
  }
  void push_back(char c) { *p_++ = c; }
  // Most numbers of a line are under 1000 (a version digit, a status, times
  // in milliseconds, small bodies): those skip to_chars and its search for
  // the length.
  template <typename Integer>
  void append_number(Integer n) {
    if (std::cmp_greater_equal(n, 0) && std::cmp_less(n, 1000)) {
      append_small(static_cast<unsigned>(n));
      return;
    }
    p_ = std::to_chars(p_, p_ + kMaxDigits, n).ptr;
  }
  char* end() const { return p_; }

  // The most an integer of 64 bits takes: "-9223372036854775808".
  static constexpr size_t kMaxDigits = 20;

 private:
  // n < 1000, in as many digits as it takes.
  void append_small(unsigned n) {
    static constexpr auto kPairs = [] {
      std::array<char, 200> pairs{};
      for (int i = 0; i < 100; ++i) {
        pairs[2 * i] = static_cast<char>('0' + i / 10);
        pairs[2 * i + 1] = static_cast<char>('0' + i % 10);
      }
      return pairs;
    }();
    char* p = p_;
    if (n < 10) {
      p[0] = static_cast<char>('0' + n);
      p_ = p + 1;
    } else if (n < 100) {
      std::memcpy(p, &kPairs[2 * n], 2);
      p_ = p + 2;
    } else {
      p[0] = static_cast<char>('0' + n / 100);
      std::memcpy(p + 1, &kPairs[2 * (n % 100)], 2);
      p_ = p + 3;
    }
  }

  char* p_;
};

// Fills `out` with the text of `write`, which puts at most `most` bytes.
template <typename Write>
void append_bounded(std::string& out, size_t most, Write write) {
  size_t start = out.size();
  out.resize(start + most);
  Cursor cursor(out.data() + start);
  write(cursor);
  size_t length = static_cast<size_t>(cursor.end() - out.data());
  assert(length <= start + most);
  out.resize(length);
}

// The outcome token as its kind ("ok", "timeout:", "error:", ...) and, for
// a timeout or an error, the name after it.
std::pair<std::string_view, std::string_view> outcome_pieces(const Outcome& outcome) {
  switch (outcome.kind) {
    case Outcome::Kind::ok:
      return {"ok", {}};
    case Outcome::Kind::timeout:
      return {"timeout:", timeout_token(outcome.timeout)};
    case Outcome::Kind::error:
      return {"error:", error_token(outcome.error)};
    case Outcome::Kind::client_abort:
      return {"client_abort", {}};
    case Outcome::Kind::stopped:
      return {"stopped", {}};
  }
  return {"unknown", {}};
}

// The most bytes a line of `r` takes in either format, time excluded. Each
// byte of a string may grow to six in JSON (\u00XX), to three in text
// (%XX); the names, quotes and separators take under 300 bytes, the outcome
// token under 40 ("timeout:upstream_keepalive_timeout").
size_t most_bytes(const ExchangeRecord& r) {
  constexpr size_t kFixed = 512;
  constexpr size_t kNumbers = 9;  // version (2), status, bytes (2), times (4)
  size_t strings = r.client.size() + r.method.size() + r.route.size() + r.sni.size() +
                   r.target.scheme.size() + r.target.kept.size() + r.test_id.size();
  return kFixed + kNumbers * Cursor::kMaxDigits + 6 * strings + 2 * kRedactionMarker.size();
}

// A time field of a text line: a number, or '-' when it was not reached.
void put_ms(Cursor& out, int64_t ms) {
  if (ms == kNoTime) {
    out.push_back('-');
  } else {
    out.append_number(ms);
  }
}

// A time field of a JSON line: a number, or null when it was not reached.
void put_json_ms(Cursor& out, std::string_view field, int64_t ms) {
  out.append(field);
  if (ms == kNoTime) {
    out.append("null");
  } else {
    out.append_number(ms);
  }
}

// The characters of a JSON string, without its quotes.
template <typename Out>
void append_json_chars(Out& out, std::string_view s) {
  constexpr char kHex[] = "0123456789abcdef";
  for (char c : s) {
    if (c == '"' || c == '\\') {
      out.push_back('\\');
      out.push_back(c);
    } else if (static_cast<unsigned char>(c) < 0x20) {
      const char escaped[6] = {'\\', 'u', '0', '0', kHex[(c >> 4) & 15], kHex[c & 15]};
      out.append(std::string_view(escaped, sizeof escaped));
    } else {
      out.push_back(c);
    }
  }
}

template <typename Out>
void put_json_string(Out& out, std::string_view s) {
  out.push_back('"');
  append_json_chars(out, s);
  out.push_back('"');
}

template <typename Out>
void put_json_target(Out& out, const ShownTarget& target) {
  out.push_back('"');
  target.write(out, append_json_chars<Out>);
  out.push_back('"');
}

// The bytes a text field shows as they are: printable ASCII but the quote
// and the backslash.
constexpr auto kPlain = [] {
  std::array<bool, 256> plain{};
  for (int c = 0x21; c < 0x7F; ++c) plain[c] = c != '"' && c != '\\';
  return plain;
}();

#if defined(__SSE2__)
// Bit i says that byte i of the 16 at `p` is not plain. Read as signed, a
// plain byte is at least '!' (non-ASCII bytes are negative) and is not DEL,
// the quote or the backslash.
unsigned not_plain_mask(const char* p) {
  __m128i bytes = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
  __m128i low = _mm_cmplt_epi8(bytes, _mm_set1_epi8('!'));
  __m128i del = _mm_cmpeq_epi8(bytes, _mm_set1_epi8(0x7F));
  __m128i quote = _mm_cmpeq_epi8(bytes, _mm_set1_epi8('"'));
  __m128i backslash = _mm_cmpeq_epi8(bytes, _mm_set1_epi8('\\'));
  __m128i any = _mm_or_si128(_mm_or_si128(low, del), _mm_or_si128(quote, backslash));
  return static_cast<unsigned>(_mm_movemask_epi8(any));
}
#endif

// How many bytes at the start of `s` are plain. A target is tens of bytes,
// nearly all plain: 16 are tested at once where the CPU can.
size_t plain_run(std::string_view s) {
  size_t run = 0;
#if defined(__SSE2__)
  if (s.size() >= 16) {
    for (; run + 16 <= s.size(); run += 16) {
      if (unsigned mask = not_plain_mask(s.data() + run)) return run + std::countr_zero(mask);
    }
    // The last bytes, as the 16 that end `s`: those before `run` are plain.
    size_t last = s.size() - 16;
    unsigned mask = not_plain_mask(s.data() + last) >> (run - last);
    return mask == 0 ? s.size() : run + std::countr_zero(mask);
  }
#endif
  while (run < s.size() && kPlain[static_cast<unsigned char>(s[run])]) ++run;
  return run;
}

// The client chose these bytes: a quote, a backslash, a control or non-ASCII
// byte is written as %XX, so that a target cannot end its field early or
// forge the ones after it.
void put_text_field(Cursor& out, std::string_view s) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  while (!s.empty()) {
    size_t run = plain_run(s);
    out.append(s.substr(0, run));
    if (run == s.size()) return;
    unsigned char c = static_cast<unsigned char>(s[run]);
    const char escaped[3] = {'%', kHex[c >> 4], kHex[c & 15]};
    out.append(std::string_view(escaped, 3));
    s.remove_prefix(run + 1);
  }
}

void put_text(Cursor& out, const ExchangeRecord& r) {
  out.append(r.client);
  out.append(" \"");
  // A request refused before its line was parsed still gets three fields.
  out.append(r.method.empty() ? "-" : r.method);
  out.push_back(' ');
  if (r.target.empty()) {
    out.push_back('-');
  } else {
    r.target.write(out, put_text_field);
  }
  out.append(" HTTP/");
  out.append_number(r.http_major);
  out.push_back('.');
  out.append_number(r.http_minor);
  out.append("\" route=");
  out.append(r.route);
  out.append(" status=");
  if (r.status == 0) {
    out.push_back('-');
  } else {
    out.append_number(r.status);
  }
  out.append(" up_bytes=");
  out.append_number(r.up_bytes);
  out.append(" down_bytes=");
  out.append_number(r.down_bytes);
  out.append(" dns_ms=");
  put_ms(out, r.dns_ms);
  out.append(" connect_ms=");
  put_ms(out, r.connect_ms);
  out.append(" first_byte_ms=");
  put_ms(out, r.first_byte_ms);
  // total_ms is always a number in text, kNoTime included.
  out.append(" total_ms=");
  out.append_number(r.total_ms);
  out.append(r.reused ? " reused=1 outcome=" : " reused=0 outcome=");
  auto [kind, name] = outcome_pieces(r.outcome);
  out.append(kind);
  out.append(name);
  // Only tunnels that carried a TLS server name have one; the name holds
  // host name characters only (ClientHelloReader), nothing to escape.
  if (!r.sni.empty()) {
    out.append(" sni=");
    out.append(r.sni);
  }
  // Printable ASCII (test_identity.hpp), spaces and quotes escaped.
  if (!r.test_id.empty()) {
    out.append(" test=");
    put_text_field(out, r.test_id);
  }
}

// A JSON line without its opening brace: the writer puts the time first.
void put_json_fields(Cursor& out, const ExchangeRecord& r) {
  out.append("\"client\":");
  put_json_string(out, r.client);
  out.append(",\"method\":");
  put_json_string(out, r.method);
  out.append(",\"target\":");
  put_json_target(out, r.target);
  out.append(",\"version\":\"");
  out.append_number(r.http_major);
  out.push_back('.');
  out.append_number(r.http_minor);
  out.append("\",\"route\":");
  put_json_string(out, r.route);
  out.append(",\"status\":");
  if (r.status == 0) {
    out.append("null");
  } else {
    out.append_number(r.status);
  }
  out.append(",\"up_bytes\":");
  out.append_number(r.up_bytes);
  out.append(",\"down_bytes\":");
  out.append_number(r.down_bytes);
  put_json_ms(out, ",\"dns_ms\":", r.dns_ms);
  put_json_ms(out, ",\"connect_ms\":", r.connect_ms);
  put_json_ms(out, ",\"first_byte_ms\":", r.first_byte_ms);
  put_json_ms(out, ",\"total_ms\":", r.total_ms);
  out.append(r.reused ? ",\"reused\":true,\"outcome\":\"" : ",\"reused\":false,\"outcome\":\"");
  auto [kind, name] = outcome_pieces(r.outcome);
  out.append(kind);
  out.append(name);
  out.append("\",\"sni\":");
  if (r.sni.empty()) {
    out.append("null");
  } else {
    put_json_string(out, r.sni);
  }
  out.append(",\"test\":");
  if (r.test_id.empty()) {
    out.append("null}");
  } else {
    put_json_string(out, r.test_id);
    out.push_back('}');
  }
}

}  // namespace

void append_json_string(std::string& out, std::string_view s) {
  put_json_string(out, s);
}

void append_json_target(std::string& out, const ShownTarget& target) {
  put_json_target(out, target);
}

std::string outcome_token(const Outcome& outcome) {
  auto [kind, name] = outcome_pieces(outcome);
  std::string token(kind);
  token.append(name);
  return token;
}

void format_access_text(std::string& out, const ExchangeRecord& r) {
  append_bounded(out, most_bytes(r), [&](Cursor& cursor) { put_text(cursor, r); });
}

void format_access_json(std::string& out, const ExchangeRecord& r) {
  append_bounded(out, most_bytes(r), [&](Cursor& cursor) {
    cursor.push_back('{');
    put_json_fields(cursor, r);
  });
}

AccessLog::AccessLog(const AccessLogConfig& config)
    : format_(config.format), path_(config.path), drops_(kDropWarningIntervalMs) {
  if (path_ == "-") {
    std::string note;
    output_ = FdOutput::inherited(STDOUT_FILENO, &note);
    if (!note.empty()) spdlog::warn("access log: {}", note);
    return;
  }
  std::string error;
  output_ = FdOutput::open_file(path_, &error);
  if (!output_) throw spdlog::spdlog_ex("cannot open access log " + path_ + ": " + error);
}

std::shared_ptr<LineOutput> AccessLog::reopen() {
  if (path_ == "-") return nullptr;
  std::string error;
  std::shared_ptr<LineOutput> output = FdOutput::open_file(path_, &error);
  if (!output) {
    spdlog::error("cannot reopen access log {}: {}", path_, error);
    return nullptr;
  }
  output_ = output;
  return output;
}

AccessLogWriter::AccessLogWriter(AccessLog& log, Counter* dropped)
    : log_(log), dropped_(dropped), buffer_(log.output(), kBufferLimit, kWriteAt) {}

AccessLogWriter::~AccessLogWriter() {
  flush();
}

// The line is written in place, time first, straight into the buffer when
// it has room for the longest text the record can make. Else it goes into a
// string that keeps the size of the longest line so far (no fill per line),
// then through append(), which makes room or drops it.
void AccessLogWriter::write(const ExchangeRecord& record) {
  std::string_view time = timestamp_.text(std::chrono::system_clock::now());
  size_t most = time.size() + most_bytes(record);
  char* at = buffer_.reserve(most);
  bool in_place = at != nullptr;
  if (!in_place) {
    if (line_.size() < most) line_.resize(most);
    at = line_.data();
  }
  Cursor out(at);
  if (log_.format() == LogFormat::json) {
    out.append("{\"time\":\"");
    out.append(time);
    out.append("\",");
    put_json_fields(out, record);
  } else {
    out.append(time);
    out.push_back(' ');
    put_text(out, record);
  }
  out.push_back('\n');
  size_t length = static_cast<size_t>(out.end() - at);
  assert(length <= most);
  if (in_place) {
    buffer_.commit(length);
  } else {
    buffer_.append(std::string_view(at, length));
  }
  count_dropped();
}

void AccessLogWriter::flush() {
  buffer_.flush();
  count_dropped();
  int64_t now_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                       std::chrono::steady_clock::now().time_since_epoch())
                       .count();
  if (int64_t lines = log_.drops().take_due(now_ms)) {
    spdlog::warn(
        "access log: dropped {} line(s) since the last warning: the destination does not take "
        "them (cutoff_log_lines_dropped_total)",
        lines);
  }
}

void AccessLogWriter::set_output(std::shared_ptr<LineOutput> output) {
  buffer_.set_output(std::move(output));
  count_dropped();
}

void AccessLogWriter::count_dropped() {
  int64_t lines = buffer_.take_dropped();
  if (lines == 0) return;
  dropped_->add(lines);
  log_.drops().add(lines);
}

}  // namespace cutoff
