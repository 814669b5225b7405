#include "cutoff/http_framing.hpp"

#include "cutoff/ascii.hpp"

namespace cutoff {

const char* decide_framing(const FramingFields& f, Framing* out) {
  *out = Framing{};
  // llhttp and cutoff must agree on every Content-Length, even in a
  // response without a body: a HEAD or 304 answer passes its length on.
  if ((f.content_length_count > 0) != f.parser_content_length) {
    return "a Content-Length the parser did not read as one";
  }
  if (f.content_length_count > 1) return "more than one Content-Length field";
  if (!f.request && f.bodiless) return nullptr;  // its Transfer-Encoding is only dropped
  if (f.transfer_encoding_count > 0) {
    // RFC 9112 §6.1 and §6.3: each of these makes the length ambiguous, and
    // a proxy that picked one reading could disagree with the next hop.
    if (f.http10) return "Transfer-Encoding in an HTTP/1.0 message";
    if (f.content_length_count > 0) return "both Content-Length and Transfer-Encoding";
    if (f.transfer_encoding_count > 1) return "more than one Transfer-Encoding field";
    if (!iequals(trim_ows(f.transfer_encoding), "chunked")) {
      return "a Transfer-Encoding other than chunked";
    }
    if (!f.parser_chunked) return "a Transfer-Encoding the parser did not read as chunked";
    out->kind = Framing::Kind::chunked;
    return nullptr;
  }
  if (f.parser_chunked) return "chunked framing without a Transfer-Encoding field";
  if (f.content_length_count == 1) {
    out->kind = Framing::Kind::length;
    out->length = f.content_length;
    return nullptr;
  }
  out->kind = f.request ? Framing::Kind::none : Framing::Kind::until_close;
  return nullptr;
}

ResponsePlan plan_response(const ResponseFacts& f) {
  ResponsePlan plan;
  plan.client_keep_alive = f.client_wants_keep_alive;
  switch (f.upstream.kind) {
    case Framing::Kind::none:
      plan.framing = BodyFraming::none;
      break;
    case Framing::Kind::length:
      plan.framing = f.upstream.length == 0 ? BodyFraming::none : BodyFraming::content_length;
      break;
    case Framing::Kind::chunked:
      plan.framing = f.client_http10 ? BodyFraming::dechunk : BodyFraming::chunked;
      break;
    case Framing::Kind::until_close:
      plan.framing = BodyFraming::until_close;
      break;
  }
  // Without a length, the end of the body is the end of the connection.
  if (plan.framing == BodyFraming::dechunk || plan.framing == BodyFraming::until_close) {
    plan.client_keep_alive = false;
  }
  return plan;
}

}  // namespace cutoff
