// Upstream responses, as cutoff reads them and relays them to the client
// (SPEC §2).
//
// Input: one byte of facts about the client's request (HTTP/1.0, keep-alive,
// HEAD, an upgrade), one byte choosing how the stream is cut into reads
// (Splits), then the bytes an upstream sends. Interim 1xx responses and the
// final one are parsed as the session does; each head cutoff accepts is
// planned and rebuilt, and what the client would read (that head, then the
// body as passed through or dechunked) must parse as the same message, framed
// as the plan says.

#include <string>
#include <string_view>

#include "cutoff/http_framing.hpp"
#include "cutoff/http_parser.hpp"
#include "cutoff/http_rewrite.hpp"
#include "fuzz_support.hpp"

namespace cutoff::fuzz {
namespace {

// Interim responses before the final one; more add little but time.
constexpr int kMaxResponses = 4;

constexpr std::string_view kServerTiming = "Server-Timing: upstream;dur=1.5\r\n";

// What the session knows about the request the response answers.
struct Request {
  explicit Request(uint8_t bits)
      : http10(bits & 1u),
        keep_alive(bits & 2u),
        head(bits & 4u),
        upgrade(bits & 8u),
        via(!(bits & 16u)),
        server_timing(bits & 32u) {}
  bool http10, keep_alive, head, upgrade, via, server_timing;
};

// Which Connection field the client gets, if any: the plan's verdict, told
// the way each client version understands it.
std::string_view expected_connection(const ResponseRewrite& rewrite) {
  if (rewrite.upgrade) return "upgrade";
  if (rewrite.interim) return {};
  if (!rewrite.plan.client_keep_alive) return "close";
  return rewrite.client_http10 ? "keep-alive" : std::string_view();
}

void check_connection(const MessageHead& original, const MessageHead& sent,
                      const ResponseRewrite& rewrite) {
  std::string_view connection = expected_connection(rewrite);
  FUZZ_CHECK(count_named(sent, "connection") == (connection.empty() ? 0 : 1));
  if (!connection.empty()) FUZZ_CHECK(sent.find("connection") == connection);
  if (rewrite.upgrade) {
    check_upgrade_field(original, sent);
  } else {
    FUZZ_CHECK(count_named(sent, "upgrade") == 0);
  }
  for (size_t i = 0; i < sent.header_count(); ++i) {
    std::string_view name = sent.header(i).name;
    if (iequals(name, "connection") || (rewrite.upgrade && iequals(name, "upgrade"))) continue;
    FUZZ_CHECK(!fixed_hop_by_hop(name));
  }
  for (std::string_view option : connection_options(original)) {
    Context context("option of the upstream's Connection", option);
    bool cutoffs_own = iequals(option, "content-length") || iequals(option, "transfer-encoding") ||
                       iequals(option, "connection") || (rewrite.via && iequals(option, "via")) ||
                       (rewrite.upgrade && iequals(option, "upgrade")) ||
                       (!rewrite.extra_headers.empty() && iequals(option, "server-timing"));
    if (!cutoffs_own) FUZZ_CHECK(count_named(sent, option) == 0);
  }
}

// The framing fields match the plan (SPEC §2): a length or chunked passed
// through as validated, nothing where the client reads to the close, and a
// bodiless response keeps only the Content-Length that describes a HEAD or
// 304 representation.
void check_framing_fields(const MessageHead& sent, const ResponseRewrite& rewrite) {
  size_t lengths = count_role(sent, HeaderRole::content_length);
  size_t codings = count_role(sent, HeaderRole::transfer_encoding);
  int status = sent.status();
  if (rewrite.client_http10) FUZZ_CHECK(codings == 0);  // never chunked to HTTP/1.0
  switch (rewrite.plan.framing) {
    case BodyFraming::content_length:
      FUZZ_CHECK(lengths == 1 && codings == 0);
      FUZZ_CHECK(sent.find("content-length") == std::to_string(rewrite.upstream.length));
      break;
    case BodyFraming::chunked:
      FUZZ_CHECK(lengths == 0 && codings == 1);
      FUZZ_CHECK(sent.find("transfer-encoding") == "chunked");
      break;
    case BodyFraming::dechunk:
    case BodyFraming::until_close:
      FUZZ_CHECK(lengths == 0 && codings == 0);
      FUZZ_CHECK(sent.find("connection") == "close");
      break;
    case BodyFraming::none:
      FUZZ_CHECK(codings == 0);
      if (status < 200 || status == 204) {
        FUZZ_CHECK(lengths == 0);
      } else if (rewrite.upstream.kind == Framing::Kind::length) {
        FUZZ_CHECK(lengths == 1 && sent.find("content-length") == "0");
      } else {
        FUZZ_CHECK(lengths <= 1);
      }
      break;
  }
}

// The client's parser frames the body as the plan does.
void check_client_framing(const HttpParser& client, const ResponseRewrite& rewrite) {
  const Framing& framing = client.framing();
  switch (rewrite.plan.framing) {
    case BodyFraming::content_length:
      FUZZ_CHECK(same_framing(framing, rewrite.upstream));
      break;
    case BodyFraming::chunked:
      FUZZ_CHECK(framing.kind == Framing::Kind::chunked);
      break;
    case BodyFraming::dechunk:
    case BodyFraming::until_close:
      FUZZ_CHECK(framing.kind == Framing::Kind::until_close);
      break;
    case BodyFraming::none:
      FUZZ_CHECK(framing.kind == Framing::Kind::none ||
                 (framing.kind == Framing::Kind::length && framing.length == 0));
      break;
  }
}

// Nothing end-to-end is lost, reordered or invented: the upstream's fields in
// order, then cutoff's own (Upgrade is checked on its own).
void check_end_to_end(const MessageHead& original, const MessageHead& sent,
                      const ResponseRewrite& rewrite) {
  HeaderList expected = end_to_end_headers(original);
  std::string_view connection = expected_connection(rewrite);
  if (!connection.empty()) expected.emplace_back("Connection", connection);
  if (rewrite.via) expected.emplace_back("Via", "1.1 cutoff");
  if (!rewrite.interim && !rewrite.extra_headers.empty()) {
    expected.emplace_back("Server-Timing", "upstream;dur=1.5");
  }
  HeaderList actual;
  for (size_t i = 0; i < sent.header_count(); ++i) {
    MessageHead::Header h = sent.header(i);
    if (h.role == HeaderRole::content_length || h.role == HeaderRole::transfer_encoding ||
        iequals(h.name, "upgrade")) {
      continue;
    }
    actual.emplace_back(h.name, h.value);
  }
  FUZZ_CHECK(actual == expected);
}

void check_sent_head(const MessageHead& original, const HttpParser& client,
                     const ResponseRewrite& rewrite) {
  const MessageHead& sent = client.head();
  FUZZ_CHECK(sent.status() == original.status());
  FUZZ_CHECK(sent.reason() == original.reason());
  FUZZ_CHECK(sent.http_major() == 1 && sent.http_minor() == 1);
  FUZZ_CHECK(client.upgrade_requested() == rewrite.upgrade);
  check_framing_fields(sent, rewrite);
  check_connection(original, sent, rewrite);
  check_field_names(sent);
  check_end_to_end(original, sent, rewrite);
}

// The client reads from the head whether the connection goes on, as the
// plan decided. (Judged on the head alone: trailers travel raw, and llhttp
// lets a Connection or Transfer-Encoding trailer change its verdict.)
void check_client_keep_alive(std::string_view sent, const Request& request,
                             const ResponseRewrite& rewrite) {
  HttpParser client(HTTP_RESPONSE);
  client.set_skip_body(request.head);
  size_t used = 0;
  FUZZ_CHECK(client.feed(sent.data(), sent.size(), &used) == Event::head);
  FUZZ_CHECK(client.keep_alive() == rewrite.plan.client_keep_alive);
}

// An interim response (100, 103...) goes to HTTP/1.1 clients only, as a
// bodiless head that says nothing about the connection.
bool relay_interim(HttpParser& parser, Driver& upstream, const Request& request,
                   ResponseRewrite rewrite, Splits& splits) {
  if (!request.http10) {
    rewrite.interim = true;
    std::string sent;
    build_response_head(sent, parser.head(), rewrite);
    Context context("head sent to the client", sent);
    HttpParser client(HTTP_RESPONSE);
    client.set_skip_body(request.head);
    expect_one_message(client, sent, {}, splits, false, false);
    check_sent_head(parser.head(), client, rewrite);
  }
  std::string raw;
  Event e = upstream.next(&raw);
  FUZZ_CHECK(e == Event::message_complete && raw.empty());
  return true;
}

// Reads the body of a final response as the session relays it: raw bytes on
// every event, decoded ones into `sink`; a close-delimited body ends at the
// end of the stream. False when the response does not complete.
bool read_body(HttpParser& parser, Driver& upstream, CollectingSink& sink, std::string* raw) {
  parser.set_body_sink(&sink);
  Event e = upstream.next(raw);
  if (e == Event::need_more) {
    FUZZ_CHECK(upstream.at_end());
    e = parser.finish();
    // Only the close ends a close-delimited body; any other cut short is an error.
    bool close_delimited = parser.framing().kind == Framing::Kind::until_close;
    FUZZ_CHECK((e == Event::message_complete) == close_delimited);
  }
  parser.set_body_sink(nullptr);
  if (e == Event::error) return false;
  FUZZ_CHECK(e == Event::message_complete);
  const Framing& framing = parser.framing();
  if (framing.kind == Framing::Kind::length) {
    FUZZ_CHECK(raw->size() == framing.length && sink.body == *raw);
  }
  if (framing.kind == Framing::Kind::until_close) FUZZ_CHECK(sink.body == *raw);
  if (framing.kind == Framing::Kind::none) FUZZ_CHECK(raw->empty());
  return true;
}

// The final response: planned, rebuilt, and its body relayed.
void relay_final(HttpParser& parser, Driver& upstream, const Request& request,
                 ResponseRewrite rewrite, bool upgrading, Splits& splits) {
  ResponseFacts facts;
  facts.client_http10 = request.http10;
  facts.client_wants_keep_alive = request.keep_alive && !request.upgrade;
  facts.upstream = rewrite.upstream;
  rewrite.plan = plan_response(facts);
  rewrite.upgrade = upgrading;
  if (request.server_timing) rewrite.extra_headers = kServerTiming;
  std::string sent;
  build_response_head(sent, parser.head(), rewrite);
  Context context("head sent to the client", sent);
  HttpParser client(HTTP_RESPONSE);
  client.set_skip_body(request.head);
  if (upgrading) {
    expect_one_message(client, sent, {}, splits, true, false);
    return check_sent_head(parser.head(), client, rewrite);
  }
  CollectingSink sink;
  std::string raw;
  if (!read_body(parser, upstream, sink, &raw)) return;
  if (rewrite.plan.framing == BodyFraming::chunked) check_strict_chunked(raw, sink.body);
  bool dechunk = rewrite.plan.framing == BodyFraming::dechunk;
  bool close_delimited = dechunk || rewrite.plan.framing == BodyFraming::until_close;
  std::string decoded =
      expect_one_message(client, sent, dechunk ? sink.body : raw, splits, false, close_delimited);
  check_sent_head(parser.head(), client, rewrite);
  check_client_framing(client, rewrite);
  FUZZ_CHECK(decoded == sink.body);
  check_client_keep_alive(sent, request, rewrite);
}

// One response head and what follows it; true when it was interim and
// another response follows.
bool one_response(HttpParser& parser, Driver& upstream, const Request& request, Splits& splits) {
  size_t start = upstream.offset();
  Event e = upstream.next();
  if (e == Event::need_more || e == Event::error) return false;
  FUZZ_CHECK(e == Event::head || e == Event::upgrade);  // never a body before its head
  // The head ends at its empty line: no body (or tunnel) byte was taken for head.
  FUZZ_CHECK(upstream.offset() == head_end(upstream.stream(), start));
  // The client gets HTTP/1.1 whatever came; a version cutoff cannot speak
  // would have framing rules it does not know.
  FUZZ_CHECK(parser.head().http_major() == 1 && parser.head().http_minor() <= 1);
  int status = parser.head().status();
  if (e == Event::upgrade) FUZZ_CHECK(status == 101 && parser.upgrade_requested());
  bool upgrading = status == 101 && request.upgrade && parser.upgrade_requested();
  if (status == 101 && !upgrading) return false;  // the session refuses it
  ResponseRewrite rewrite;
  rewrite.via = request.via;
  rewrite.client_http10 = request.http10;
  rewrite.upstream = parser.framing();
  if (status < 200 && !upgrading) return relay_interim(parser, upstream, request, rewrite, splits);
  relay_final(parser, upstream, request, rewrite, upgrading, splits);
  return false;
}

}  // namespace
}  // namespace cutoff::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace cutoff::fuzz;
  if (size < 2) return 0;
  Request request(data[0]);
  Splits splits(data[1]);
  std::string_view stream(reinterpret_cast<const char*>(data) + 2, size - 2);
  Context context("upstream stream", stream);
  cutoff::HttpParser parser(HTTP_RESPONSE);
  parser.set_skip_body(request.head);
  Driver upstream(parser, stream, splits);
  int responses = 0;
  while (responses++ < kMaxResponses && one_response(parser, upstream, request, splits)) continue;
  return 0;
}
