#include <catch2/catch.hpp>
#include <string>

#include "cutoff/ascii.hpp"
#include "cutoff/http_framing.hpp"

using namespace cutoff;

namespace {

std::string kind_name(Framing::Kind k) {
  switch (k) {
    case Framing::Kind::none:
      return "none";
    case Framing::Kind::length:
      return "length";
    case Framing::Kind::chunked:
      return "chunked";
    case Framing::Kind::until_close:
      return "until_close";
  }
  return "?";
}

std::string plan_name(BodyFraming f) {
  switch (f) {
    case BodyFraming::none:
      return "none";
    case BodyFraming::content_length:
      return "content_length";
    case BodyFraming::chunked:
      return "chunked";
    case BodyFraming::dechunk:
      return "dechunk";
    case BodyFraming::until_close:
      return "until_close";
  }
  return "?";
}

FramingFields request() {
  return FramingFields{};
}

FramingFields response() {
  FramingFields f;
  f.request = false;
  return f;
}

FramingFields with_te(FramingFields f, std::string_view value) {
  f.transfer_encoding_count = 1;
  f.transfer_encoding = value;
  f.parser_chunked = iequals(trim_ows(value), "chunked");
  return f;
}

FramingFields with_cl(FramingFields f, uint64_t length) {
  f.content_length_count = 1;
  f.content_length = length;
  f.parser_content_length = true;
  return f;
}

// The verdict: a kind name, or the refusal's reason.
std::string verdict(const FramingFields& f, Framing* out = nullptr) {
  Framing framing;
  const char* refusal = decide_framing(f, &framing);
  if (out) *out = framing;
  return refusal ? std::string("refused: ") + refusal : kind_name(framing.kind);
}

}  // namespace

TEST_CASE("decide_framing: what a request declares", "[http_framing]") {
  CHECK(verdict(request()) == "none");
  Framing f;
  CHECK(verdict(with_cl(request(), 47), &f) == "length");
  CHECK(f.length == 47);
  CHECK(verdict(with_cl(request(), 0), &f) == "length");
  CHECK(f.length == 0);
  CHECK(verdict(with_te(request(), "chunked")) == "chunked");
  CHECK(verdict(with_te(request(), " Chunked\t")) == "chunked");
}

TEST_CASE("decide_framing: what a response declares", "[http_framing]") {
  CHECK(verdict(response()) == "until_close");
  CHECK(verdict(with_cl(response(), 5)) == "length");
  CHECK(verdict(with_te(response(), "chunked")) == "chunked");
  FramingFields bodiless = with_te(response(), "gzip");
  bodiless.bodiless = true;  // HEAD, 1xx, 204, 304: the fields are only dropped
  CHECK(verdict(bodiless) == "none");
}

TEST_CASE("decide_framing: ambiguous framing is refused in both directions", "[http_framing]") {
  for (FramingFields base : {request(), response()}) {
    INFO("request: " << base.request);
    CHECK(verdict(with_te(base, "gzip")) == "refused: a Transfer-Encoding other than chunked");
    CHECK(verdict(with_te(base, "xchunked")) == "refused: a Transfer-Encoding other than chunked");
    CHECK(verdict(with_te(base, "gzip, chunked")) ==
          "refused: a Transfer-Encoding other than chunked");
    CHECK(verdict(with_te(base, "chunked, chunked")) ==
          "refused: a Transfer-Encoding other than chunked");
    CHECK(verdict(with_cl(with_te(base, "chunked"), 5)) ==
          "refused: both Content-Length and Transfer-Encoding");
    FramingFields twice = with_te(base, "chunked");
    twice.transfer_encoding_count = 2;
    CHECK(verdict(twice) == "refused: more than one Transfer-Encoding field");
    FramingFields lengths = with_cl(base, 5);
    lengths.content_length_count = 2;
    CHECK(verdict(lengths) == "refused: more than one Content-Length field");
    FramingFields old = with_te(base, "chunked");
    old.http10 = true;
    CHECK(verdict(old) == "refused: Transfer-Encoding in an HTTP/1.0 message");
    // llhttp and cutoff must agree on what is chunked.
    FramingFields disagree = with_te(base, "chunked");
    disagree.parser_chunked = false;
    CHECK(verdict(disagree) == "refused: a Transfer-Encoding the parser did not read as chunked");
    FramingFields phantom = base;
    phantom.parser_chunked = true;
    CHECK(verdict(phantom) == "refused: chunked framing without a Transfer-Encoding field");
    FramingFields alias = with_cl(base, 5);  // "Content_Length": llhttp did not read it
    alias.parser_content_length = false;
    CHECK(verdict(alias) == "refused: a Content-Length the parser did not read as one");
  }
}

namespace {

ResponseFacts facts(Framing::Kind kind, uint64_t length = 0) {
  ResponseFacts f;
  f.client_wants_keep_alive = true;
  f.upstream.kind = kind;
  f.upstream.length = length;
  return f;
}

}  // namespace

TEST_CASE("plan_response: responses without a body", "[http_framing]") {
  ResponsePlan p = plan_response(facts(Framing::Kind::none));
  CHECK(plan_name(p.framing) == "none");
  CHECK(p.client_keep_alive);
  ResponseFacts f = facts(Framing::Kind::length, 0);
  CHECK(plan_name(plan_response(f).framing) == "none");
  f.client_http10 = true;
  CHECK(plan_name(plan_response(f).framing) == "none");
  CHECK(plan_response(f).client_keep_alive);
}

TEST_CASE("plan_response: Content-Length passes through", "[http_framing]") {
  ResponseFacts f = facts(Framing::Kind::length, 42);
  CHECK(plan_name(plan_response(f).framing) == "content_length");
  CHECK(plan_response(f).client_keep_alive);
  f.client_http10 = true;
  CHECK(plan_name(plan_response(f).framing) == "content_length");
  CHECK(plan_response(f).client_keep_alive);
}

TEST_CASE("plan_response: chunked to HTTP/1.1, dechunked for HTTP/1.0", "[http_framing]") {
  ResponseFacts f = facts(Framing::Kind::chunked);
  ResponsePlan p = plan_response(f);
  CHECK(plan_name(p.framing) == "chunked");
  CHECK(p.client_keep_alive);
  f.client_http10 = true;
  p = plan_response(f);
  CHECK(plan_name(p.framing) == "dechunk");
  CHECK_FALSE(p.client_keep_alive);  // the end of the body is the end of the connection
}

TEST_CASE("plan_response: a close-delimited body ends the client connection", "[http_framing]") {
  ResponseFacts f = facts(Framing::Kind::until_close);
  CHECK(plan_name(plan_response(f).framing) == "until_close");
  CHECK_FALSE(plan_response(f).client_keep_alive);
}

TEST_CASE("plan_response: the client's keep-alive wish is propagated", "[http_framing]") {
  for (Framing::Kind kind : {Framing::Kind::none, Framing::Kind::length, Framing::Kind::chunked}) {
    ResponseFacts f = facts(kind, 5);
    f.client_wants_keep_alive = false;
    CHECK_FALSE(plan_response(f).client_keep_alive);
  }
}

TEST_CASE("iequals compares ASCII case-insensitively", "[ascii]") {
  CHECK(iequals("Content-Length", "content-length"));
  CHECK(iequals("", ""));
  CHECK(iequals("ABC-xyz", "abc-XYZ"));
  CHECK_FALSE(iequals("abc", "abd"));
  CHECK_FALSE(iequals("abc", "abcd"));
  CHECK_FALSE(iequals("a-b", "a_b"));
  CHECK_FALSE(iequals("[", "{"));  // 0x5B vs 0x7B: not letters
}

TEST_CASE("for_each_list_item: trimmed, non-empty items; stops when asked", "[ascii]") {
  std::string seen;
  for_each_list_item(" a ,,\tb\t, c", [&](std::string_view item) {
    seen += "[" + std::string(item) + "]";
    return item != "b";
  });
  CHECK(seen == "[a][b]");
}
