#pragma once
// How the body of each message is delimited (RFC 9112 §6), decided from the
// parsed head before a byte of the message is forwarded.
//
// cutoff frames every message it forwards itself: the Content-Length or
// Transfer-Encoding it sends is written from what it parsed and validated,
// never copied from what came in, and never dropped because a Connection
// header named it. What cannot be framed without guessing is refused: 400
// for a request, 502 http_protocol_error for a response.

#include <cstdint>
#include <string_view>

namespace cutoff {

struct Framing {
  enum class Kind : uint8_t {
    none,         // no body
    length,       // Content-Length: `length` bytes (0 included)
    chunked,      // Transfer-Encoding: chunked
    until_close,  // a response body that ends when the upstream closes
  };
  Kind kind = Kind::none;
  uint64_t length = 0;
};

// The framing fields of one head, as the parser found them.
struct FramingFields {
  bool request = true;
  bool http10 = false;
  // A response that has no body whatever it declares: to HEAD, 1xx, 204, 304.
  bool bodiless = false;
  int transfer_encoding_count = 0;
  std::string_view transfer_encoding;  // the value of the first such field
  int content_length_count = 0;
  uint64_t content_length = 0;  // llhttp's parse of the value
  bool parser_chunked = false;  // llhttp's own verdicts, cross-checked
  bool parser_content_length = false;
};

// Fills *out and returns nullptr, or returns why the head cannot be framed.
// Transfer-Encoding must be exactly "chunked": other codings are refused in
// both directions rather than guessed at (a response whose last coding is
// not chunked would otherwise end only when the connection does).
const char* decide_framing(const FramingFields& fields, Framing* out);

// How a response body travels from the upstream to the client.
enum class BodyFraming {
  none,            // HEAD, 1xx, 204, 304, or Content-Length: 0
  content_length,  // passed through
  chunked,         // passed through to an HTTP/1.1 client
  dechunk,         // decoded for an HTTP/1.0 client, which then sees a close-delimited body
  until_close,     // close-delimited: passed through, then the client connection closes
};

struct ResponsePlan {
  BodyFraming framing = BodyFraming::none;
  bool client_keep_alive = false;  // the client connection may carry another request
};

struct ResponseFacts {
  bool client_http10 = false;
  bool client_wants_keep_alive = false;  // llhttp's verdict on the request
  Framing upstream;                      // as decided for the response head
};

ResponsePlan plan_response(const ResponseFacts& facts);

}  // namespace cutoff
