#include <algorithm>
#include <catch2/catch.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "cutoff/http_parser.hpp"

using namespace cutoff;
using Event = HttpParser::Event;

namespace {

struct Step {
  Event event;
  size_t consumed;
};

Step feed(HttpParser& parser, std::string_view bytes) {
  size_t consumed = 12345;
  // A zero-length feed still passes a valid pointer, as the session does.
  Event event = parser.feed(bytes.empty() ? "" : bytes.data(), bytes.size(), &consumed);
  return {event, consumed};
}

std::string event_name(Event e) {
  switch (e) {
    case Event::need_more:
      return "need_more";
    case Event::head:
      return "head";
    case Event::message_complete:
      return "message_complete";
    case Event::upgrade:
      return "upgrade";
    case Event::error:
      return "error";
  }
  return "?";
}

// Feeds the whole of `bytes` in one go and expects an error.
void expect_request_error(std::string_view bytes, int status = 400) {
  INFO(bytes);
  HttpParser parser(HTTP_REQUEST);
  Step s = feed(parser, bytes);
  if (s.event == Event::head) s = feed(parser, bytes.substr(s.consumed));
  CHECK(event_name(s.event) == "error");
  CHECK(parser.error_status() == status);
}

std::string framing_of(const HttpParser& parser) {
  const Framing& f = parser.framing();
  switch (f.kind) {
    case Framing::Kind::none:
      return "none";
    case Framing::Kind::length:
      return "length " + std::to_string(f.length);
    case Framing::Kind::chunked:
      return "chunked";
    case Framing::Kind::until_close:
      return "until_close";
  }
  return "?";
}

// SPEC §9: a head cutoff cannot forward unambiguously is an error before any
// event that would let a byte of it travel.
void expect_head_refused(llhttp_type_t type, std::string_view bytes, std::string_view reason) {
  INFO(bytes);
  HttpParser parser(type);
  Step s = feed(parser, bytes);
  CHECK(event_name(s.event) == "error");
  CHECK(std::string_view(parser.error_reason()).find(reason) != std::string_view::npos);
}

// Feeds a whole message in pieces of `step` bytes; the last event.
std::string feed_in_steps(HttpParser& parser, std::string_view bytes, size_t step) {
  Event last = Event::need_more;
  size_t at = 0;
  while (at < bytes.size()) {
    Step s = feed(parser, bytes.substr(at, std::min(step, bytes.size() - at)));
    last = s.event;
    if (last == Event::error || last == Event::message_complete) break;
    at += s.consumed;
  }
  return event_name(last);
}

struct CollectingSink final : BodySink {
  std::string body;
  void on_body(const char* data, size_t len) override { body.append(data, len); }
};

}  // namespace

TEST_CASE("a request head fed byte by byte", "[http_parser]") {
  const std::string head =
      "GET http://example.com/a?b=1 HTTP/1.1\r\n"
      "Host: example.com\r\n"
      "X-Long-Header-Name: some value, with commas\r\n"
      "accept: */*\r\n"
      "\r\n";
  HttpParser parser(HTTP_REQUEST);
  for (size_t i = 0; i + 1 < head.size(); ++i) {
    INFO("byte " << i);
    Step s = feed(parser, std::string_view(head).substr(i, 1));
    REQUIRE(event_name(s.event) == "need_more");
    REQUIRE(s.consumed == 1);
  }
  Step last = feed(parser, std::string_view(head).substr(head.size() - 1));
  CHECK(event_name(last.event) == "head");
  CHECK(last.consumed == 1);

  const MessageHead& h = parser.head();
  CHECK(h.method() == "GET");
  CHECK(h.target() == "http://example.com/a?b=1");
  CHECK(h.http_major() == 1);
  CHECK(h.http_minor() == 1);
  CHECK_FALSE(h.http10());
  REQUIRE(h.header_count() == 3);
  CHECK(h.header(0).name == "Host");
  CHECK(h.header(0).value == "example.com");
  CHECK(h.header(1).name == "X-Long-Header-Name");
  CHECK(h.header(1).value == "some value, with commas");
  CHECK(h.header(2).name == "accept");
  CHECK(h.header(2).value == "*/*");
  CHECK(h.find("host") == "example.com");
  CHECK(h.find("ACCEPT") == "*/*");
  CHECK(h.find("x-long-header-name") == "some value, with commas");
  CHECK(h.find("Content-Length").empty());
  CHECK(h.find("Hos").empty());
  CHECK(parser.keep_alive());
  CHECK_FALSE(parser.upgrade_requested());
  CHECK(parser.method() == HTTP_GET);

  // No body: a zero-byte feed completes the message.
  Step done = feed(parser, "");
  CHECK(event_name(done.event) == "message_complete");
  CHECK(done.consumed == 0);
  CHECK_FALSE(parser.in_body());
}

TEST_CASE("a GET in one piece: head, then message_complete", "[http_parser]") {
  const std::string head = "GET http://h/ HTTP/1.0\r\nHost: h\r\n\r\n";
  HttpParser parser(HTTP_REQUEST);
  Step s = feed(parser, head);
  CHECK(event_name(s.event) == "head");
  CHECK(s.consumed == head.size());
  CHECK(parser.head().http10());
  CHECK(parser.head().http_minor() == 0);
  CHECK_FALSE(parser.keep_alive());  // HTTP/1.0 without keep-alive
  CHECK(framing_of(parser) == "none");
  s = feed(parser, "");
  CHECK(event_name(s.event) == "message_complete");
  CHECK(s.consumed == 0);
}

TEST_CASE("HTTP/1.0 keep-alive and HTTP/1.1 close", "[http_parser]") {
  {
    HttpParser parser(HTTP_REQUEST);
    Step s = feed(parser, "GET http://h/ HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    REQUIRE(event_name(s.event) == "head");
    CHECK(parser.keep_alive());
  }
  {
    HttpParser parser(HTTP_REQUEST);
    Step s = feed(parser, "GET http://h/ HTTP/1.1\r\nConnection: close\r\n\r\n");
    REQUIRE(event_name(s.event) == "head");
    CHECK_FALSE(parser.keep_alive());
  }
}

TEST_CASE("a Content-Length body is consumed as raw bytes until message_complete",
          "[http_parser]") {
  const std::string head = "POST http://h/upload HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\n";
  const std::string next = "GET http://h/next HTTP/1.1\r\n\r\n";
  HttpParser parser(HTTP_REQUEST);

  std::string first = head + "0123";
  Step s = feed(parser, first);
  CHECK(event_name(s.event) == "head");
  CHECK(s.consumed == head.size());
  CHECK(parser.in_body());
  CHECK(framing_of(parser) == "length 10");
  CHECK(parser.head().method() == "POST");

  s = feed(parser, "0123");
  CHECK(event_name(s.event) == "need_more");
  CHECK(s.consumed == 4);
  CHECK(parser.in_body());

  s = feed(parser, "45");
  CHECK(event_name(s.event) == "need_more");
  CHECK(s.consumed == 2);

  // The last body bytes and the start of the next request.
  std::string tail = "6789" + next;
  s = feed(parser, tail);
  CHECK(event_name(s.event) == "message_complete");
  CHECK(s.consumed == 4);
  CHECK_FALSE(parser.in_body());

  // The next request starts where the body ended.
  s = feed(parser, std::string_view(tail).substr(4));
  CHECK(event_name(s.event) == "head");
  CHECK(s.consumed == next.size());
  CHECK(parser.head().target() == "http://h/next");
  CHECK(parser.head().method() == "GET");
}

TEST_CASE("a Content-Length body that ends exactly with the feed", "[http_parser]") {
  const std::string head = "PUT http://h/ HTTP/1.1\r\nContent-Length: 3\r\n\r\n";
  HttpParser parser(HTTP_REQUEST);
  Step s = feed(parser, head);
  REQUIRE(event_name(s.event) == "head");
  s = feed(parser, "abc");
  CHECK(event_name(s.event) == "message_complete");
  CHECK(s.consumed == 3);
}

TEST_CASE("a chunked request body with trailers", "[http_parser]") {
  const std::string head =
      "POST http://h/ HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nTrailer: X-Sum\r\n\r\n";
  const std::string body =
      "4\r\nWiki\r\n"
      "5;ext=1\r\npedia\r\n"
      "0\r\n"
      "X-Sum: 42\r\n"
      "X-Other: yes\r\n"
      "\r\n";
  HttpParser parser(HTTP_REQUEST);
  Step s = feed(parser, head);
  REQUIRE(event_name(s.event) == "head");
  CHECK(s.consumed == head.size());
  CHECK(framing_of(parser) == "chunked");
  CHECK(parser.in_body());

  // Three bytes at a time: every byte of framing is consumed raw.
  size_t total = 0;
  Event last = Event::need_more;
  for (size_t at = 0; at < body.size(); at += 3) {
    Step b = feed(parser, std::string_view(body).substr(at, 3));
    total += b.consumed;
    last = b.event;
    if (last != Event::need_more) break;
    REQUIRE(b.consumed == std::string_view(body).substr(at, 3).size());
  }
  CHECK(event_name(last) == "message_complete");
  CHECK(total == body.size());

  // Trailers are not headers of the message.
  const MessageHead& h = parser.head();
  REQUIRE(h.header_count() == 3);
  CHECK(h.find("X-Sum").empty());
  CHECK(h.find("X-Other").empty());
  CHECK(h.find("Trailer") == "X-Sum");
}

TEST_CASE("pipelined requests stop at the end of the first message", "[http_parser]") {
  const std::string one = "GET http://h/one HTTP/1.1\r\nHost: h\r\n\r\n";
  const std::string two = "GET http://h/two HTTP/1.1\r\nHost: h\r\nX-Two: 2\r\n\r\n";
  const std::string both = one + two;
  HttpParser parser(HTTP_REQUEST);

  Step s = feed(parser, both);
  CHECK(event_name(s.event) == "head");
  CHECK(s.consumed == one.size());
  CHECK(parser.head().target() == "http://h/one");

  std::string_view rest = std::string_view(both).substr(s.consumed);
  s = feed(parser, rest);
  CHECK(event_name(s.event) == "message_complete");
  CHECK(s.consumed == 0);

  s = feed(parser, rest);
  CHECK(event_name(s.event) == "head");
  CHECK(s.consumed == two.size());
  CHECK(parser.head().target() == "http://h/two");
  REQUIRE(parser.head().header_count() == 2);
  CHECK(parser.head().find("X-Two") == "2");

  s = feed(parser, "");
  CHECK(event_name(s.event) == "message_complete");
  CHECK(s.consumed == 0);
}

// The parser keeps its header slots from one head to the next and adds
// room when a head has more fields than any before it, also when those
// fields arrive a few bytes at a time.
TEST_CASE("heads with fewer, then more fields than before on one parser", "[http_parser]") {
  auto request_with = [](int fields) {
    std::string head = "GET http://h/ HTTP/1.1\r\n";
    for (int i = 0; i < fields; ++i) {
      head += "X-Field-" + std::to_string(i) + ": value " + std::to_string(i) + "\r\n";
    }
    return head + "\r\n";
  };
  HttpParser parser(HTTP_REQUEST);
  for (int fields : {3, 40, 1, 100, 0, 17}) {
    INFO(fields);
    REQUIRE(feed_in_steps(parser, request_with(fields), fields == 100 ? 5 : 4096) == "head");
    const MessageHead& head = parser.head();
    REQUIRE(head.header_count() == static_cast<size_t>(fields));
    for (int i = 0; i < fields; ++i) {
      std::string line = "X-Field-" + std::to_string(i) + ": value " + std::to_string(i);
      CHECK(head.header(i).name == line.substr(0, line.find(':')));
      CHECK(head.header(i).value == line.substr(line.find(':') + 2));
      CHECK(head.raw_line(i) == line + "\r\n");
    }
    CHECK(head.count(HeaderRole::end_to_end) == fields);
    CHECK(event_name(feed(parser, "").event) == "message_complete");
  }
}

// The head's bytes go with the first feed after its message was reported
// whole; so do its fields, rather than viewing bytes that are gone.
TEST_CASE("the first feed after a message clears its head, even of CRLFs only", "[http_parser]") {
  HttpParser parser(HTTP_REQUEST);
  REQUIRE(event_name(feed(parser, "GET http://h/ HTTP/1.1\r\nHost: h\r\n\r\n").event) == "head");
  REQUIRE(event_name(feed(parser, "").event) == "message_complete");
  CHECK(parser.head().header_count() == 1);
  CHECK(event_name(feed(parser, "\r\n").event) == "need_more");
  CHECK(parser.head().header_count() == 0);
  CHECK(parser.head().method().empty());
  CHECK(parser.head().target().empty());
  Step s = feed(parser, "GET http://h/two HTTP/1.1\r\nX-Two: 2\r\n\r\n");
  CHECK(event_name(s.event) == "head");
  CHECK(parser.head().target() == "http://h/two");
  REQUIRE(parser.head().header_count() == 1);
  CHECK(parser.head().header(0).name == "X-Two");
}

TEST_CASE("pipelined requests with a body in between", "[http_parser]") {
  const std::string one = "POST http://h/one HTTP/1.1\r\nContent-Length: 2\r\n\r\nhi";
  const std::string two = "GET http://h/two HTTP/1.1\r\n\r\n";
  const std::string both = one + two;
  HttpParser parser(HTTP_REQUEST);
  Step s = feed(parser, both);
  REQUIRE(event_name(s.event) == "head");
  size_t at = s.consumed;
  s = feed(parser, std::string_view(both).substr(at));
  CHECK(event_name(s.event) == "message_complete");
  CHECK(s.consumed == 2);
  at += s.consumed;
  CHECK(at == one.size());
  s = feed(parser, std::string_view(both).substr(at));
  CHECK(event_name(s.event) == "head");
  CHECK(parser.head().target() == "http://h/two");
}

TEST_CASE("CONNECT gives upgrade right after the head", "[http_parser]") {
  const std::string head = "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n";
  const std::string bytes = head + "\x16\x03\x01 tls bytes";
  HttpParser parser(HTTP_REQUEST);
  Step s = feed(parser, bytes);
  CHECK(event_name(s.event) == "upgrade");
  CHECK(s.consumed == head.size());
  CHECK(parser.method() == HTTP_CONNECT);
  CHECK(parser.head().method() == "CONNECT");
  CHECK(parser.head().target() == "example.com:443");
  CHECK(parser.upgrade_requested());
}

TEST_CASE("an Upgrade request gives upgrade right after the head", "[http_parser]") {
  const std::string head =
      "GET http://h/chat HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\n"
      "Connection: Upgrade\r\nSec-WebSocket-Key: abc\r\n\r\n";
  const std::string bytes = head + "frame";
  HttpParser parser(HTTP_REQUEST);
  Step s = feed(parser, bytes);
  CHECK(event_name(s.event) == "upgrade");
  CHECK(s.consumed == head.size());
  CHECK(parser.upgrade_requested());
  CHECK(parser.head().find("upgrade") == "websocket");
}

TEST_CASE("an Upgrade header without Connection: upgrade is an ordinary request", "[http_parser]") {
  HttpParser parser(HTTP_REQUEST);
  Step s = feed(parser, "GET http://h/ HTTP/1.1\r\nUpgrade: h2c\r\n\r\n");
  CHECK(event_name(s.event) == "head");
  CHECK_FALSE(parser.upgrade_requested());
}

TEST_CASE("an Upgrade request with a body is refused", "[http_parser]") {
  expect_request_error(
      "POST http://h/ HTTP/1.1\r\nUpgrade: websocket\r\nConnection: upgrade\r\n"
      "Content-Length: 3\r\n\r\nabc");
}

TEST_CASE("ambiguous or malformed requests are errors", "[http_parser]") {
  SECTION("both Content-Length and Transfer-Encoding") {
    expect_request_error(
        "POST http://h/ HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
        "0\r\n\r\n");
    expect_request_error(
        "POST http://h/ HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n"
        "0\r\n\r\n");
  }
  SECTION("differing duplicate Content-Length") {
    expect_request_error(
        "POST http://h/ HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nabcdef");
  }
  SECTION("bad chunk size") {
    expect_request_error(
        "POST http://h/ HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n");
    expect_request_error(
        "POST http://h/ HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n-1\r\nabc\r\n0\r\n\r\n");
  }
  SECTION("bare CR inside a header value") {
    expect_request_error("GET http://h/ HTTP/1.1\r\nX-A: a\rb\r\n\r\n");
  }
  SECTION("bare CR ending the request line") {
    expect_request_error("GET http://h/ HTTP/1.1\rHost: h\r\n\r\n");
  }
  SECTION("bare LF line endings") {
    expect_request_error("GET http://h/ HTTP/1.1\r\nHost: h\n\n");
  }
  SECTION("bad Content-Length") {
    expect_request_error("POST http://h/ HTTP/1.1\r\nContent-Length: 1x\r\n\r\n");
  }
  SECTION("garbage") {
    expect_request_error("HELLO\r\n\r\n");
    expect_request_error("GET http://h/ HTTP/9.9\r\n\r\n");
  }
}

TEST_CASE("header roles: framing, Host, the fixed hop-by-hop list, and what Connection names",
          "[http_parser]") {
  HttpParser parser(HTTP_REQUEST);
  Step s = feed(parser,
                "POST http://h/ HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nTE: trailers\r\n"
                "Connection: X-Gone, content-length, HOST\r\nX-Gone: 1\r\nX-Kept: 2\r\n"
                "Keep-Alive: 5\r\n\r\n");
  REQUIRE(event_name(s.event) == "head");
  const MessageHead& h = parser.head();
  std::vector<HeaderRole> roles;
  for (size_t i = 0; i < h.header_count(); ++i) roles.push_back(h.header(i).role);
  CHECK(roles == std::vector<HeaderRole>{HeaderRole::host, HeaderRole::content_length,
                                         HeaderRole::hop_by_hop, HeaderRole::connection,
                                         HeaderRole::hop_by_hop, HeaderRole::end_to_end,
                                         HeaderRole::hop_by_hop});
  CHECK(framing_of(parser) == "length 3");
}

TEST_CASE("Connection may name at most 32 options", "[http_parser]") {
  std::string options;
  for (int i = 0; i < 32; ++i) options += (i ? ", x-" : "x-") + std::to_string(i);
  HttpParser parser(HTTP_REQUEST);
  Step s = feed(parser, "GET http://h/ HTTP/1.1\r\nConnection: " + options + "\r\n\r\n");
  CHECK(event_name(s.event) == "head");
  expect_head_refused(
      HTTP_REQUEST,
      "GET http://h/ HTTP/1.1\r\nConnection: " + options + "\r\nConnection: one-more\r\n\r\n",
      "more than 32 options");
  expect_head_refused(HTTP_RESPONSE, "HTTP/1.1 200 OK\r\nConnection: " + options + ", x\r\n\r\n",
                      "more than 32 options");
}

namespace {

std::vector<HeaderRole> roles_of(const MessageHead& h) {
  std::vector<HeaderRole> roles;
  for (size_t i = 0; i < h.header_count(); ++i) roles.push_back(h.header(i).role);
  return roles;
}

}  // namespace

TEST_CASE("Connection: keep-alive and upgrade leave every other field end-to-end",
          "[http_parser]") {
  HttpParser parser(HTTP_RESPONSE);
  Step s = feed(parser,
                "HTTP/1.1 200 OK\r\nServer: x\r\nDate: now\r\nConnection: keep-alive, Upgrade\r\n"
                "Keep-Alive: timeout=5\r\nKeep_Alive: 1\r\nX-Keep-Alive: 2\r\nkeep-alivE: 3\r\n"
                "Upgrade: h2c\r\nContent-Length: 0\r\n\r\n");
  REQUIRE(event_name(s.event) == "head");
  CHECK(roles_of(parser.head()) ==
        std::vector<HeaderRole>{
            HeaderRole::end_to_end, HeaderRole::end_to_end, HeaderRole::connection,
            HeaderRole::hop_by_hop, HeaderRole::hop_by_hop, HeaderRole::end_to_end,
            HeaderRole::hop_by_hop, HeaderRole::hop_by_hop, HeaderRole::content_length});
  CHECK(parser.head().count(HeaderRole::end_to_end) == 3);
  CHECK(parser.head().count(HeaderRole::hop_by_hop) == 4);
}

TEST_CASE("Connection options match whole names of their length, in any case", "[http_parser]") {
  const std::string long_name = "X-" + std::string(70, 'a');
  const std::string longer_name = "X-" + std::string(80, 'a');
  HttpParser parser(HTTP_REQUEST);
  Step s = feed(parser, "GET http://h/ HTTP/1.1\r\nConnection: close, x-aaaa, " + long_name +
                            "\r\nX-AAAA: 1\r\nX-bbbb: 2\r\nX-aaa: 3\r\nClose: 4\r\n" + "x-" +
                            std::string(70, 'A') + ": 5\r\n" + longer_name + ": 6\r\n\r\n");
  REQUIRE(event_name(s.event) == "head");
  CHECK(roles_of(parser.head()) ==
        std::vector<HeaderRole>{HeaderRole::connection, HeaderRole::hop_by_hop,
                                HeaderRole::end_to_end, HeaderRole::end_to_end,
                                HeaderRole::hop_by_hop, HeaderRole::hop_by_hop,
                                HeaderRole::end_to_end});
}

// The cap counts every option, also those that name a field with a role of
// its own.
TEST_CASE("keep-alive counts towards the 32 options", "[http_parser]") {
  std::string options = "keep-alive, upgrade";
  for (int i = 0; i < 30; ++i) options += ", x-" + std::to_string(i);
  HttpParser parser(HTTP_REQUEST);
  Step s = feed(parser, "GET http://h/ HTTP/1.1\r\nConnection: " + options + "\r\n\r\n");
  CHECK(event_name(s.event) == "head");
  expect_head_refused(HTTP_REQUEST,
                      "GET http://h/ HTTP/1.1\r\nConnection: " + options + ", keep-alive\r\n\r\n",
                      "more than 32 options");
}

TEST_CASE("request framing is refused at the head, before any byte could travel", "[http_parser]") {
  const std::string post = "POST http://h/ HTTP/1.1\r\n";
  expect_head_refused(HTTP_REQUEST, post + "Transfer-Encoding: gzip\r\n\r\n", "other than chunked");
  expect_head_refused(HTTP_REQUEST, post + "Transfer-Encoding: xchunked\r\n\r\n",
                      "other than chunked");
  // llhttp refuses these two itself, with its own reasons.
  expect_head_refused(HTTP_REQUEST, post + "Transfer-Encoding: chunked, chunked\r\n\r\n", "");
  expect_head_refused(HTTP_REQUEST, post + "Transfer-Encoding: gzip, chunked\r\n\r\n",
                      "other than chunked");
  expect_head_refused(
      HTTP_REQUEST, post + "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", "");
  expect_head_refused(HTTP_REQUEST,
                      "POST http://h/ HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
                      "HTTP/1.0");
  expect_head_refused(HTTP_REQUEST, "CONNECT h:443 HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello",
                      "CONNECT request with a body");
  expect_head_refused(HTTP_REQUEST, "CONNECT h:443 HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
                      "CONNECT request with a body");
  HttpParser empty(HTTP_REQUEST);
  CHECK(event_name(feed(empty, "CONNECT h:443 HTTP/1.1\r\nContent-Length: 0\r\n\r\n").event) ==
        "upgrade");
}

TEST_CASE("response framing and status are checked at the head", "[http_parser]") {
  expect_head_refused(HTTP_RESPONSE, "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
                      "other than chunked");
  expect_head_refused(HTTP_RESPONSE, "HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
                      "HTTP/1.0");
  expect_head_refused(HTTP_RESPONSE, "HTTP/1.1 000 Zero\r\nContent-Length: 0\r\n\r\n",
                      "status code below 100");
  expect_head_refused(HTTP_RESPONSE, "HTTP/1.1 099 Low\r\n\r\n", "status code below 100");
  // Bodiless responses keep no framing, whatever they declare.
  HttpParser parser(HTTP_RESPONSE);
  CHECK(event_name(
            feed(parser, "HTTP/1.1 304 Not Modified\r\nTransfer-Encoding: gzip\r\n\r\n").event) ==
        "head");
  CHECK(framing_of(parser) == "none");
}

// RFC 9112 §7.1.1 (the llhttp fixes in CMakeLists.txt): extensions with
// values, several of them, and whitespace around ";".
TEST_CASE("chunk extensions as senders write them", "[http_parser]") {
  for (const char* size_line :
       {"5;a=b;c=d", "5 ;foo", "5;a=\"q;r\";c", "5; a", "5 ; a=b ; c", "5\t;a", "5;a=b ", "5"}) {
    INFO(size_line);
    const std::string bytes = std::string("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n") +
                              size_line + "\r\nhello\r\n0;last=1\r\n\r\n";
    for (size_t step : {bytes.size(), size_t{1}, size_t{7}}) {
      HttpParser parser(HTTP_RESPONSE);
      CHECK(feed_in_steps(parser, bytes, step) == "message_complete");
    }
  }
  for (const char* size_line : {"5;", "5; ", "5 x", "5;a =b", "5;a= b", "5;a=\"b\"x", "-5", "+5",
                                "0x5", "ffffffffffffffffff"}) {
    INFO(size_line);
    const std::string bytes = std::string("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n") +
                              size_line + "\r\nhello\r\n0\r\n\r\n";
    HttpParser parser(HTTP_RESPONSE);
    CHECK(feed_in_steps(parser, bytes, bytes.size()) == "error");
  }
}

TEST_CASE("obs-fold in a trailer section is an error, however the bytes arrive", "[http_parser]") {
  const std::string bytes =
      "POST http://h/ HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
      "3\r\na\n \r\n0\r\nX-T: 1\r\n 2\r\n\r\n";
  for (size_t step : {bytes.size(), size_t{1}, size_t{5}}) {
    INFO(step);
    HttpParser parser(HTTP_REQUEST);
    CHECK(feed_in_steps(parser, bytes, step) == "error");
    CHECK(std::string_view(parser.error_reason()).find("obs-fold") != std::string_view::npos);
  }
  // LF and a space inside chunk data are data, not folding.
  const std::string clean =
      "POST http://h/ HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
      "3\r\na\n \r\n0\r\nX-T: 1\r\n\r\n";
  for (size_t step : {clean.size(), size_t{1}, size_t{5}}) {
    INFO(step);
    HttpParser parser(HTTP_REQUEST);
    CHECK(feed_in_steps(parser, clean, step) == "message_complete");
  }
}

TEST_CASE("only HTTP/1.0 and HTTP/1.1 are taken", "[http_parser]") {
  expect_head_refused(HTTP_REQUEST, "GET http://h/ HTTP/2.0\r\nHost: h\r\n\r\n",
                      "other than 1.0 and 1.1");
  expect_head_refused(HTTP_REQUEST, "GET http://h/\r\nHost: h\r\n\r\n", "");  // HTTP/0.9
  expect_head_refused(HTTP_RESPONSE, "HTTP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n",
                      "other than 1.0 and 1.1");
}

TEST_CASE("a field needs a name, in a head and in a trailer section", "[http_parser]") {
  expect_head_refused(HTTP_REQUEST, "GET http://h/ HTTP/1.1\r\nA: b\r\n: x\r\n\r\n", "");
  expect_head_refused(HTTP_RESPONSE, "HTTP/1.1 200 OK\r\n: x\r\nContent-Length: 0\r\n\r\n", "");
  const std::string trailer =
      "POST http://h/ HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n: x\r\n\r\n";
  HttpParser parser(HTTP_REQUEST);
  CHECK(feed_in_steps(parser, trailer, trailer.size()) == "error");
}

// RFC 9110 §6.5.1: trailers may not frame, route or control the connection.
TEST_CASE("a trailer field that only a head may carry is an error", "[http_parser]") {
  for (const char* field : {"Content-Length: 5", "transfer-encoding: chunked", "Connection: close",
                            "Host: elsewhere", "Upgrade: h2c", "TE: trailers"}) {
    INFO(field);
    const std::string bytes = std::string(
                                  "POST http://h/ HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
                                  "1\r\na\r\n0\r\n") +
                              field + "\r\n\r\n";
    for (size_t step : {bytes.size(), size_t{1}}) {
      HttpParser parser(HTTP_REQUEST);
      CHECK(feed_in_steps(parser, bytes, step) == "error");
    }
  }
  for (const char* field : {"Authorization: Basic eA==", "Content-Type: text/html",
                            "Content-Encoding: gzip", "Set-Cookie: a=b", "Content_Type: x"}) {
    INFO(field);
    const std::string bytes =
        std::string("POST http://h/ HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n") + field +
        "\r\n\r\n";
    HttpParser parser(HTTP_REQUEST);
    CHECK(feed_in_steps(parser, bytes, bytes.size()) == "error");
  }
  const std::string fine =
      "POST http://h/ HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX-Checksum: 1\r\n"
      "Server-Timing: db;dur=5\r\nA-Very-Long-Trailer-Field-Name: 2\r\n\r\n";
  for (size_t step : {fine.size(), size_t{1}}) {
    HttpParser parser(HTTP_REQUEST);
    CHECK(feed_in_steps(parser, fine, step) == "message_complete");
  }
}

TEST_CASE("the line that ends a chunked message needs its CR", "[http_parser]") {
  for (const char* end : {"0\r\n\n", "0\r\nX-T: 1\r\n\n"}) {
    INFO(end);
    const std::string bytes =
        std::string("POST http://h/ HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n") + end;
    for (size_t step : {bytes.size(), size_t{1}, size_t{3}}) {
      HttpParser parser(HTTP_REQUEST);
      CHECK(feed_in_steps(parser, bytes, step) == "error");
    }
  }
}

TEST_CASE("chunk extensions llhttp takes loosely are errors", "[http_parser]") {
  for (const char* size_line : {"1;=v", "1;a=\"b\x7f\"", "3;c=x\"d\"", "1;a="}) {
    INFO(size_line);
    const std::string bytes = std::string("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n") +
                              size_line + "\r\nabc\r\n0\r\n\r\n";
    HttpParser parser(HTTP_RESPONSE);
    CHECK(feed_in_steps(parser, bytes, bytes.size()) == "error");
  }
}

// A 101's framing fields mean nothing: what follows is the new protocol.
TEST_CASE("a 101 with a Content-Length hands every following byte to the tunnel", "[http_parser]") {
  const std::string head =
      "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
      "Content-Length: 5\r\n\r\n";
  HttpParser parser(HTTP_RESPONSE);
  Step s = feed(parser, head +
                            "\x81\x03"
                            "abcdef");
  CHECK(event_name(s.event) == "upgrade");
  CHECK(s.consumed == head.size());
}

TEST_CASE("an Upgrade must name a protocol; every Upgrade field counts", "[http_parser]") {
  expect_head_refused(HTTP_REQUEST,
                      "GET http://h/ HTTP/1.1\r\nUpgrade: ,\r\nConnection: upgrade\r\n\r\n",
                      "names no protocol");
  HttpParser parser(HTTP_REQUEST);
  Step s = feed(parser,
                "GET http://h/ HTTP/1.1\r\nUpgrade: \r\nUpgrade: websocket\r\n"
                "Connection: upgrade\r\n\r\n");
  CHECK(event_name(s.event) == "upgrade");
  CHECK(parser.head().join("upgrade") == "websocket");
}

// CGI gateways read "_" as "-": an alias of a framing field is refused, an
// alias of a hop-by-hop one is dropped with it.
TEST_CASE("header names with '_' for '-' take the role of the name they alias", "[http_parser]") {
  expect_head_refused(HTTP_REQUEST,
                      "POST http://h/ HTTP/1.1\r\nTransfer_Encoding: chunked\r\nContent-Length: 3"
                      "\r\n\r\nabc",
                      "");
  expect_head_refused(HTTP_REQUEST, "POST http://h/ HTTP/1.1\r\nContent_Length: 3\r\n\r\nabc",
                      "did not read as one");
  HttpParser parser(HTTP_REQUEST);
  Step s = feed(parser,
                "GET http://h/ HTTP/1.1\r\nKeep_Alive: 1\r\nProxy_Authorization: Basic x\r\n"
                "X_Custom: kept\r\n\r\n");
  REQUIRE(event_name(s.event) == "head");
  const MessageHead& h = parser.head();
  CHECK(h.header(0).role == HeaderRole::hop_by_hop);
  CHECK(h.header(1).role == HeaderRole::hop_by_hop);
  CHECK(h.header(2).role == HeaderRole::end_to_end);
}

// llhttp reads Proxy-Connection as Connection; so do its options.
TEST_CASE("Proxy-Connection names hop-by-hop fields as Connection does", "[http_parser]") {
  HttpParser parser(HTTP_REQUEST);
  Step s = feed(parser,
                "GET http://h/ HTTP/1.1\r\nProxy-Connection: keep-alive, X-Gone\r\nX-Gone: 1\r\n"
                "X-Kept: 2\r\n\r\n");
  REQUIRE(event_name(s.event) == "head");
  const MessageHead& h = parser.head();
  CHECK(h.header(0).role == HeaderRole::connection);
  CHECK(h.header(1).role == HeaderRole::hop_by_hop);
  CHECK(h.header(2).role == HeaderRole::end_to_end);
}

TEST_CASE("a Content-Length alias is refused even without a body", "[http_parser]") {
  for (const char* head :
       {"HTTP/1.1 304 Not Modified\r\nContent_Length: 6\r\n\r\n",
        "HTTP/1.1 304 Not Modified\r\nContent-Length: 0\r\nContent_Length: 6\r\n\r\n",
        "HTTP/1.1 204 No Content\r\nContent_Length: abc\r\n\r\n"}) {
    expect_head_refused(HTTP_RESPONSE, head, "");
  }
  HttpParser parser(HTTP_RESPONSE);
  parser.set_skip_body(true);  // a response to HEAD
  Step s = feed(parser, "HTTP/1.1 200 OK\r\nContent_Length: 6\r\n\r\n");
  CHECK(event_name(s.event) == "error");
}

// RFC 9110 §7.8: a server ignores Upgrade in an HTTP/1.0 request; so does cutoff.
TEST_CASE("an Upgrade in an HTTP/1.0 request is an ordinary request", "[http_parser]") {
  HttpParser parser(HTTP_REQUEST);
  Step s =
      feed(parser, "GET http://h/ HTTP/1.0\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n");
  CHECK(event_name(s.event) == "head");
  CHECK_FALSE(parser.upgrade_requested());
}

TEST_CASE("a reason phrase with a control character is an error", "[http_parser]") {
  expect_head_refused(HTTP_RESPONSE, "HTTP/1.1 200 O\x01K\r\nContent-Length: 0\r\n\r\n", "");
  HttpParser parser(HTTP_RESPONSE);
  CHECK(event_name(
            feed(parser, "HTTP/1.1 200 Fine\tby \xe9t\xe9\r\nContent-Length: 0\r\n\r\n").event) ==
        "head");
}

TEST_CASE("a chunk over 2^31 - 1 bytes is an error", "[http_parser]") {
  for (const char* size : {"80000000", "100000003", "ffffffffffffffff"}) {
    INFO(size);
    const std::string bytes =
        std::string("POST http://h/ HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n") + size +
        "\r\nabc";
    HttpParser parser(HTTP_REQUEST);
    CHECK(feed_in_steps(parser, bytes, bytes.size()) == "error");
  }
  const std::string largest =
      "POST http://h/ HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n7fffffff\r\nabc";
  HttpParser parser(HTTP_REQUEST);
  CHECK(feed_in_steps(parser, largest, largest.size()) == "need_more");
}

TEST_CASE("a bodiless response that declares a body says so", "[http_parser]") {
  struct Case {
    const char* head;
    bool skip_body;
    bool declared;
  };
  for (const Case& c :
       {Case{"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\n", true, true},
        Case{"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", true, false},
        Case{"HTTP/1.1 304 Not Modified\r\nContent-Length: 9\r\n\r\n", false, true},
        Case{"HTTP/1.1 304 Not Modified\r\nETag: e\r\n\r\n", false, false},
        Case{"HTTP/1.1 204 No Content\r\nTransfer-Encoding: chunked\r\n\r\n", false, true},
        Case{"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\n", false, false}}) {
    INFO(c.head);
    HttpParser parser(HTTP_RESPONSE);
    parser.set_skip_body(c.skip_body);
    REQUIRE(event_name(feed(parser, c.head).event) == "head");
    CHECK(parser.body_declared_not_sent() == c.declared);
  }
}

// llhttp's strict mode still takes a bare LF after the request line.
TEST_CASE("a line ending in LF without CR is an error, in a head or a trailer section",
          "[http_parser]") {
  expect_head_refused(HTTP_REQUEST, "GET http://h/ HTTP/1.1\nHost: h\r\n\r\n", "without CR");
  expect_head_refused(HTTP_RESPONSE, "HTTP/1.1 200 OK\nContent-Length: 0\r\n\r\n", "");
  const std::string head = "GET http://h/ HTTP/1.1\nHost: h\r\n\r\n";
  HttpParser split(HTTP_REQUEST);
  CHECK(feed_in_steps(split, head, 1) == "error");
  const std::string trailer =
      "POST http://h/ HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX-T: 1\nX-U: 2\r\n\r\n";
  for (size_t step : {trailer.size(), size_t{1}}) {
    HttpParser parser(HTTP_REQUEST);
    CHECK(feed_in_steps(parser, trailer, step) == "error");
  }
}

// SPEC §2: obs-fold is ambiguous framing and is rejected with 400, not unfolded.
TEST_CASE("obs-fold in a request head is an error", "[http_parser]") {
  expect_request_error("GET http://h/ HTTP/1.1\r\nX-Folded: a\r\n b\r\n\r\n");
  expect_request_error("GET http://h/ HTTP/1.1\r\nX-Folded: a\r\n\tb\r\nHost: h\r\n\r\n");
}

// A bare LF or a fold is found wherever it falls in a head, whether the
// head comes in one read or in reads that cut it anywhere.
TEST_CASE("a bare LF or an obs-fold is found at every place of a long head", "[http_parser]") {
  for (size_t pad = 0; pad < 40; ++pad) {
    const std::string a(pad, 'a');
    const std::string bare_lf = "GET http://h/" + a + " HTTP/1.1\nHost: h\r\n\r\n";
    const std::string folded = "GET http://h/ HTTP/1.1\r\nX-A: " + a + "\r\n b\r\n\r\n";
    const std::string late_lf = "GET http://h/ HTTP/1.1\r\nX-A: " + a + "\r\nX-B: 1\n\r\n";
    const std::string clean = "GET http://h/ HTTP/1.1\r\nX-A: " + a + "\r\nX-B: 1\r\n\r\n";
    // llhttp takes the continuation of an empty value as its first piece.
    const std::string empty_folded =
        "GET http://h/ HTTP/1.1\r\nX-A: " + a + "\r\nX-B:\r\n b\r\n\r\n";
    expect_head_refused(HTTP_REQUEST, bare_lf, "without CR");
    expect_head_refused(HTTP_REQUEST, folded, "obs-fold");
    expect_head_refused(HTTP_REQUEST, empty_folded, "obs-fold");
    for (size_t step : {size_t{7}, size_t{16}, size_t{1000}}) {
      INFO("pad " << pad << ", reads of " << step);
      HttpParser p1(HTTP_REQUEST), p2(HTTP_REQUEST), p3(HTTP_REQUEST), p4(HTTP_REQUEST),
          p5(HTTP_REQUEST);
      CHECK(feed_in_steps(p1, bare_lf, step) == "error");
      CHECK(feed_in_steps(p2, folded, step) == "error");
      CHECK(feed_in_steps(p3, late_lf, step) == "error");
      CHECK(feed_in_steps(p4, clean, step) == "head");
      CHECK(feed_in_steps(p5, empty_folded, step) == "error");
    }
  }
}

// SPEC §2: a bare CR where the head's final CRLF belongs is rejected with 400.
TEST_CASE("a bare CR before the final CRLF is an error", "[http_parser]") {
  expect_request_error("GET http://h/ HTTP/1.1\r\nHost: h\r\n\r\r\n");
}

TEST_CASE("the request target is limited to 8 KiB", "[http_parser]") {
  const std::string prefix = "http://h/";
  SECTION("exactly 8 KiB passes") {
    std::string target = prefix + std::string(HttpParser::kMaxTarget - prefix.size(), 'a');
    HttpParser parser(HTTP_REQUEST);
    Step s = feed(parser, "GET " + target + " HTTP/1.1\r\n\r\n");
    CHECK(event_name(s.event) == "head");
    CHECK(parser.head().target().size() == 8192);
  }
  SECTION("one byte more is 414") {
    std::string target = prefix + std::string(HttpParser::kMaxTarget + 1 - prefix.size(), 'a');
    expect_request_error("GET " + target + " HTTP/1.1\r\n\r\n", 414);
  }
  SECTION("a long target arriving in pieces is 414") {
    HttpParser parser(HTTP_REQUEST);
    Step s = feed(parser, "GET http://h/");
    REQUIRE(event_name(s.event) == "need_more");
    const std::string piece(1000, 'b');
    for (int i = 0; i < 20 && s.event == Event::need_more; ++i) s = feed(parser, piece);
    CHECK(event_name(s.event) == "error");
    CHECK(parser.error_status() == 414);
  }
}

namespace {

// A request head of exactly `size` bytes.
std::string head_of_size(size_t size) {
  std::string head = "GET http://h/ HTTP/1.1\r\n";
  const std::string filler_start = "X-Filler: ";
  const size_t fixed = head.size() + filler_start.size() + 2 + 2;  // CRLF after it, final CRLF
  REQUIRE(size > fixed);
  head += filler_start + std::string(size - fixed, 'f') + "\r\n\r\n";
  REQUIRE(head.size() == size);
  return head;
}

// Many headers, `size` bytes of head in all (approximately a 64 KiB flood).
std::string many_headers(size_t count) {
  std::string head = "GET http://h/ HTTP/1.1\r\n";
  for (size_t i = 0; i < count; ++i) {
    head += "X-Header-" + std::to_string(i) + ": " + std::string(100, 'v') + "\r\n";
  }
  return head + "\r\n";
}

}  // namespace

TEST_CASE("the request head is limited to 64 KiB", "[http_parser]") {
  SECTION("exactly 64 KiB passes") {
    HttpParser parser(HTTP_REQUEST);
    std::string head = head_of_size(HttpParser::kMaxHead);
    Step s = feed(parser, head);
    CHECK(event_name(s.event) == "head");
    CHECK(s.consumed == head.size());
  }
  SECTION("one byte more is 431") {
    expect_request_error(head_of_size(HttpParser::kMaxHead + 1), 431);
  }
  SECTION("many headers in one feed are 431") {
    std::string head = many_headers(1000);
    REQUIRE(head.size() > 100 * 1024);
    expect_request_error(head, 431);
  }
  SECTION("many headers in small pieces are 431") {
    std::string head = many_headers(1000);
    HttpParser parser(HTTP_REQUEST);
    Step s{Event::need_more, 0};
    size_t fed = 0;
    for (size_t at = 0; at < head.size() && s.event == Event::need_more; at += 1000) {
      s = feed(parser, std::string_view(head).substr(at, 1000));
      fed += s.consumed;
    }
    CHECK(event_name(s.event) == "error");
    CHECK(parser.error_status() == 431);
    CHECK(fed <= HttpParser::kMaxHead);
  }
  SECTION("the limit holds for the second request fed in large pieces") {
    HttpParser parser(HTTP_REQUEST);
    Step s = feed(parser, "GET http://h/first HTTP/1.1\r\n\r\n");
    REQUIRE(event_name(s.event) == "head");
    s = feed(parser, "");
    REQUIRE(event_name(s.event) == "message_complete");
    std::string head = many_headers(2000);  // ~230 KiB
    Step t{Event::need_more, 0};
    for (size_t at = 0; at < head.size() && t.event == Event::need_more; at += 48 * 1024) {
      t = feed(parser, std::string_view(head).substr(at, 48 * 1024));
    }
    CHECK(event_name(t.event) == "error");
    CHECK(parser.error_status() == 431);
  }
}

TEST_CASE("the 64 KiB head limit holds for the second request on a connection", "[http_parser]") {
  HttpParser parser(HTTP_REQUEST);
  Step s = feed(parser, "GET http://h/first HTTP/1.1\r\n\r\n");
  REQUIRE(event_name(s.event) == "head");
  s = feed(parser, "");
  REQUIRE(event_name(s.event) == "message_complete");
  std::string head = many_headers(1000);
  s = feed(parser, head);
  CHECK(event_name(s.event) == "error");
  CHECK(parser.error_status() == 431);
}

TEST_CASE("reset starts afresh after an error", "[http_parser]") {
  HttpParser parser(HTTP_REQUEST);
  Step s = feed(parser, "GET http://h/ HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n");
  REQUIRE(event_name(s.event) == "error");
  parser.reset();
  s = feed(parser, "GET http://h/again HTTP/1.1\r\n\r\n");
  CHECK(event_name(s.event) == "head");
  CHECK(parser.head().target() == "http://h/again");
  CHECK(parser.error_status() == 400);
}

// --- responses --------------------------------------------------------------

TEST_CASE("a response to HEAD has no body whatever it declares", "[http_parser]") {
  const std::string head =
      "HTTP/1.1 200 OK\r\nContent-Length: 1234\r\nContent-Type: text/html\r\n\r\n";
  HttpParser parser(HTTP_RESPONSE);
  parser.set_skip_body(true);
  CollectingSink sink;
  parser.set_body_sink(&sink);
  Step s = feed(parser, head);
  CHECK(event_name(s.event) == "head");
  CHECK(s.consumed == head.size());
  CHECK(parser.head().status() == 200);
  CHECK(parser.head().reason() == "OK");
  CHECK(framing_of(parser) == "none");  // the length describes what a GET would get
  s = feed(parser, "");
  CHECK(event_name(s.event) == "message_complete");
  CHECK(s.consumed == 0);
  CHECK(sink.body.empty());
  CHECK_FALSE(parser.in_body());
}

namespace {

// A no-body response followed by a second response on the same connection.
void expect_bodiless_response(const std::string& head) {
  INFO(head);
  const std::string next = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
  const std::string bytes = head + next;
  HttpParser parser(HTTP_RESPONSE);
  Step s = feed(parser, bytes);
  CHECK(event_name(s.event) == "head");
  CHECK(s.consumed == head.size());
  s = feed(parser, std::string_view(bytes).substr(s.consumed));
  CHECK(event_name(s.event) == "message_complete");
  CHECK(s.consumed == 0);
  // The next response on the connection parses normally.
  s = feed(parser, std::string_view(bytes).substr(head.size()));
  CHECK(event_name(s.event) == "head");
  CHECK(s.consumed == next.size());
  CHECK(parser.head().status() == 200);
}

}  // namespace

TEST_CASE("204 and 304 responses have no body", "[http_parser]") {
  expect_bodiless_response("HTTP/1.1 204 No Content\r\nX-A: 1\r\n\r\n");
  expect_bodiless_response("HTTP/1.1 304 Not Modified\r\nETag: \"x\"\r\n\r\n");
}

// RFC 9112 §6.3 rule 1: a 1xx, 204 or 304 response ends with its head,
// whatever framing fields it carries (a 304 may well carry the
// Content-Length of the representation).
TEST_CASE("204 and 304 responses have no body even with framing headers", "[http_parser]") {
  expect_bodiless_response(
      "HTTP/1.1 304 Not Modified\r\nContent-Length: 500\r\nETag: \"x\"\r\n\r\n");
  expect_bodiless_response("HTTP/1.1 304 Not Modified\r\nTransfer-Encoding: chunked\r\n\r\n");
  expect_bodiless_response("HTTP/1.1 204 No Content\r\nContent-Length: 10\r\n\r\n");
}

TEST_CASE("100 Continue, then the real response on the same parser", "[http_parser]") {
  const std::string interim = "HTTP/1.1 100 Continue\r\n\r\n";
  const std::string final_head = "HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\n";
  const std::string bytes = interim + final_head + "ok";
  HttpParser parser(HTTP_RESPONSE);

  Step s = feed(parser, bytes);
  CHECK(event_name(s.event) == "head");
  CHECK(s.consumed == interim.size());
  CHECK(parser.head().status() == 100);
  CHECK(parser.head().reason() == "Continue");
  size_t at = s.consumed;

  s = feed(parser, std::string_view(bytes).substr(at));
  CHECK(event_name(s.event) == "message_complete");
  CHECK(s.consumed == 0);

  s = feed(parser, std::string_view(bytes).substr(at));
  CHECK(event_name(s.event) == "head");
  CHECK(s.consumed == final_head.size());
  CHECK(parser.head().status() == 201);
  CHECK(parser.head().reason() == "Created");
  REQUIRE(parser.head().header_count() == 1);
  at += s.consumed;

  s = feed(parser, std::string_view(bytes).substr(at));
  CHECK(event_name(s.event) == "message_complete");
  CHECK(s.consumed == 2);
}

TEST_CASE("a close-delimited body completes on finish()", "[http_parser]") {
  const std::string head = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n";
  HttpParser parser(HTTP_RESPONSE);
  Step s = feed(parser, head + "abc");
  CHECK(event_name(s.event) == "head");
  CHECK(s.consumed == head.size());
  CHECK(framing_of(parser) == "until_close");
  CHECK_FALSE(parser.keep_alive());
  s = feed(parser, "abc");
  CHECK(event_name(s.event) == "need_more");
  CHECK(s.consumed == 3);
  s = feed(parser, "defgh");
  CHECK(event_name(s.event) == "need_more");
  CHECK(s.consumed == 5);
  CHECK(parser.in_body());
  CHECK(event_name(parser.finish()) == "message_complete");
}

TEST_CASE("a close-delimited HTTP/1.0 body completes on finish()", "[http_parser]") {
  HttpParser parser(HTTP_RESPONSE);
  Step s = feed(parser, "HTTP/1.0 200 OK\r\n\r\n");
  REQUIRE(event_name(s.event) == "head");
  CHECK(parser.head().http10());
  s = feed(parser, "");
  CHECK(event_name(s.event) == "need_more");
  s = feed(parser, "body");
  CHECK(event_name(s.event) == "need_more");
  CHECK(s.consumed == 4);
  CHECK(event_name(parser.finish()) == "message_complete");
}

TEST_CASE("finish() in the middle of a Content-Length body is an error", "[http_parser]") {
  HttpParser parser(HTTP_RESPONSE);
  Step s = feed(parser, "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc");
  REQUIRE(event_name(s.event) == "head");
  s = feed(parser, "abc");
  REQUIRE(event_name(s.event) == "need_more");
  CHECK(event_name(parser.finish()) == "error");
}

TEST_CASE("a chunked response decoded through the body sink", "[http_parser]") {
  const std::string head = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
  const std::string body =
      "4\r\nWiki\r\n5\r\npedia\r\nE\r\n in\r\n\r\nchunks.\r\n0\r\nX-T: 1\r\n\r\n";
  HttpParser parser(HTTP_RESPONSE);
  CollectingSink sink;
  parser.set_body_sink(&sink);
  Step s = feed(parser, head);
  REQUIRE(event_name(s.event) == "head");
  CHECK(framing_of(parser) == "chunked");

  size_t total = 0;
  Event last = Event::need_more;
  for (size_t at = 0; at < body.size() && last == Event::need_more; at += 5) {
    Step b = feed(parser, std::string_view(body).substr(at, 5));
    total += b.consumed;
    last = b.event;
  }
  CHECK(event_name(last) == "message_complete");
  CHECK(total == body.size());
  CHECK(sink.body == "Wikipedia in\r\n\r\nchunks.");
}

TEST_CASE("without a sink, a chunked body is only consumed", "[http_parser]") {
  HttpParser parser(HTTP_RESPONSE);
  const std::string head = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
  const std::string body = "3\r\nabc\r\n0\r\n\r\n";
  Step s = feed(parser, head + body);
  REQUIRE(event_name(s.event) == "head");
  CHECK(s.consumed == head.size());
  s = feed(parser, body);
  CHECK(event_name(s.event) == "message_complete");
  CHECK(s.consumed == body.size());
}

TEST_CASE("101 with Upgrade and Connection: upgrade gives upgrade", "[http_parser]") {
  const std::string head =
      "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: upgrade\r\n"
      "Sec-WebSocket-Accept: xyz\r\n\r\n";
  const std::string bytes = head + "\x81\x05hello";
  HttpParser parser(HTTP_RESPONSE);
  Step s = feed(parser, bytes);
  CHECK(event_name(s.event) == "upgrade");
  CHECK(s.consumed == head.size());
  CHECK(parser.head().status() == 101);
  CHECK(parser.head().reason() == "Switching Protocols");
  CHECK(parser.head().find("Sec-WebSocket-Accept") == "xyz");
}

TEST_CASE("a response head over 64 KiB is an error", "[http_parser]") {
  std::string head = "HTTP/1.1 200 OK\r\n";
  for (int i = 0; i < 1000; ++i)
    head += "X-H" + std::to_string(i) + ": " + std::string(100, 'v') + "\r\n";
  head += "Content-Length: 0\r\n\r\n";
  HttpParser parser(HTTP_RESPONSE);
  Step s = feed(parser, head);
  CHECK(event_name(s.event) == "error");
}

TEST_CASE("a malformed response is an error", "[http_parser]") {
  HttpParser parser(HTTP_RESPONSE);
  Step s = feed(parser, "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd");
  CHECK(event_name(s.event) == "error");
  HttpParser other(HTTP_RESPONSE);
  s = feed(other, "SSH-2.0-OpenSSH\r\n");
  CHECK(event_name(s.event) == "error");
}

TEST_CASE("the 64 KiB head limit holds for a final response after 100 Continue", "[http_parser]") {
  HttpParser parser(HTTP_RESPONSE);
  Step s = feed(parser, "HTTP/1.1 100 Continue\r\n\r\n");
  REQUIRE(event_name(s.event) == "head");
  s = feed(parser, "");
  REQUIRE(event_name(s.event) == "message_complete");
  std::string head = "HTTP/1.1 200 OK\r\n";
  for (int i = 0; i < 1000; ++i) {
    head += "X-H" + std::to_string(i) + ": " + std::string(100, 'v') + "\r\n";
  }
  head += "Content-Length: 0\r\n\r\n";
  s = feed(parser, head);
  CHECK(event_name(s.event) == "error");
}
