#include <catch2/catch.hpp>
#include <string>
#include <string_view>
#include <utility>

#include "cutoff/duration.hpp"
#include "cutoff/http_parser.hpp"
#include "cutoff/requested_timeouts.hpp"

using namespace cutoff;

namespace {

constexpr std::pair<std::string_view, TimeoutName> kKnown[] = {
    {"dns", TimeoutName::dns_timeout},
    {"connect", TimeoutName::connect_timeout},
    {"tls_handshake", TimeoutName::tls_handshake_timeout},
    {"response_header", TimeoutName::response_header_timeout},
    {"idle", TimeoutName::idle_timeout},
    {"request", TimeoutName::request_timeout},
    {"tunnel_idle", TimeoutName::tunnel_idle_timeout},
    {"tunnel_max_duration", TimeoutName::tunnel_max_duration},
};

constexpr TimeoutName kAll[] = {
    TimeoutName::request_header_timeout,
    TimeoutName::client_keepalive_timeout,
    TimeoutName::dns_timeout,
    TimeoutName::connect_timeout,
    TimeoutName::response_header_timeout,
    TimeoutName::idle_timeout,
    TimeoutName::request_timeout,
    TimeoutName::min_rate,
    TimeoutName::upstream_keepalive_timeout,
    TimeoutName::tunnel_idle_timeout,
    TimeoutName::tunnel_max_duration,
    TimeoutName::tls_handshake_timeout,
    TimeoutName::linger_timeout,
    TimeoutName::drain_timeout,
};

// A request head with `fields` (whole lines with CRLF), as the session
// parses it.
struct Parsed {
  explicit Parsed(std::string_view fields) : parser(HTTP_REQUEST) {
    text = "GET http://example.test/ HTTP/1.1\r\nHost: example.test\r\n";
    text.append(fields).append("\r\n");
    size_t consumed = 0;
    REQUIRE(parser.feed(text.data(), text.size(), &consumed) == HttpParser::Event::head);
  }
  std::string text;
  HttpParser parser;
};

// The sentence of a 400 for `value`, or empty.
std::string error_of(std::string_view value) {
  RequestedTimeouts asked;
  return asked.add(value);
}

}  // namespace

TEST_CASE("Cutoff-Timeout: every known name sets its own deadline only", "[requested_timeouts]") {
  for (const auto& [name, timeout] : kKnown) {
    INFO(name);
    RequestedTimeouts asked;
    REQUIRE(asked.add(std::string(name) + "=250ms").empty());
    CHECK(asked.any());
    for (TimeoutName other : kAll) {
      INFO(static_cast<int>(other));
      CHECK(asked.asked(other) == (other == timeout ? Duration::millis(250) : Duration::off()));
    }
  }
}

TEST_CASE("Cutoff-Timeout: names of §4 that no exchange runs under are unknown",
          "[requested_timeouts]") {
  for (const char* name : {"request_header", "client_keepalive", "upstream_keepalive", "linger",
                           "drain", "min_rate", "idle_timeout", "IDLE", "Idle", ""}) {
    INFO(name);
    const std::string why = error_of(std::string(name) + "=1s");
    CHECK(why == "Cutoff-Timeout: unknown name \"" + std::string(name) +
                     "\"; known: dns, connect, tls_handshake, response_header, idle, request, "
                     "tunnel_idle, tunnel_max_duration");
  }
}

TEST_CASE("Cutoff-Timeout: whitespace and empty list elements", "[requested_timeouts]") {
  RequestedTimeouts asked;
  REQUIRE(asked.add(" \tresponse_header = 2s ,idle=1s,, ,\trequest=10s, ").empty());
  CHECK(asked.asked(TimeoutName::response_header_timeout) == Duration::seconds(2));
  CHECK(asked.asked(TimeoutName::idle_timeout) == Duration::seconds(1));
  CHECK(asked.asked(TimeoutName::request_timeout) == Duration::seconds(10));
  CHECK(asked.asked(TimeoutName::connect_timeout).is_off());
}

TEST_CASE("Cutoff-Timeout: a value that asks nothing is refused", "[requested_timeouts]") {
  const std::string kEmpty = "Cutoff-Timeout is empty: give name=duration pairs";
  for (const char* value : {"", " ", " \t ", ",", " , ,\t,"}) {
    INFO('"' << value << '"');
    RequestedTimeouts asked;
    CHECK(asked.add(value) == kEmpty);
    CHECK_FALSE(asked.any());
  }
}

TEST_CASE("Cutoff-Timeout: bad pairs say why", "[requested_timeouts]") {
  CHECK(error_of("idle") == "Cutoff-Timeout: \"idle\" is not name=duration");
  CHECK(error_of("idle=1s, connect 2s") == "Cutoff-Timeout: \"connect 2s\" is not name=duration");
  CHECK(error_of("idle=off") ==
        "Cutoff-Timeout: idle=off would lengthen the deadline; a request can only shorten its "
        "deadlines");
  CHECK(error_of("idle=0s") ==
        "Cutoff-Timeout: idle: \"0s\": a duration must be greater than zero");
  CHECK_THAT(error_of("idle=1.5s"), Catch::StartsWith("Cutoff-Timeout: idle: \"1.5s\": fractions "
                                                      "are not allowed"));
  CHECK_THAT(error_of("connect=5"),
             Catch::StartsWith("Cutoff-Timeout: connect: \"5\" has no unit"));
  CHECK_THAT(error_of("dns="), Catch::StartsWith("Cutoff-Timeout: dns: empty duration"));
  CHECK_THAT(error_of("request=1d"), Catch::StartsWith("Cutoff-Timeout: request: "));
  CHECK_THAT(error_of("request=-1s"), Catch::StartsWith("Cutoff-Timeout: request: "));
  CHECK_THAT(error_of("request=31d"), Catch::StartsWith("Cutoff-Timeout: request: "));
  CHECK(error_of("request=1000h") ==
        "Cutoff-Timeout: request: \"1000h\" is too long; the maximum is 30 days (\"720h\")");
}

TEST_CASE("Cutoff-Timeout: a name given twice is refused", "[requested_timeouts]") {
  CHECK(error_of("idle=1s, idle=2s") == "Cutoff-Timeout names idle twice");
  CHECK(error_of("idle=1s, idle=1s") == "Cutoff-Timeout names idle twice");
  // Across two fields of one request too.
  RequestedTimeouts asked;
  REQUIRE(asked.add("dns=1s").empty());
  CHECK(asked.add("connect=1s, dns=2s") == "Cutoff-Timeout names dns twice");
  // What the first field asked stays asked.
  CHECK(asked.asked(TimeoutName::dns_timeout) == Duration::seconds(1));
}

TEST_CASE("Cutoff-Timeout: only ever shortens a deadline", "[requested_timeouts]") {
  RequestedTimeouts asked;
  // Nothing asked: the configured deadline, off included.
  CHECK(asked.apply(TimeoutName::idle_timeout, Duration::seconds(1)) == Duration::seconds(1));
  CHECK(asked.apply(TimeoutName::idle_timeout, Duration::off()).is_off());

  REQUIRE(asked.add("idle=2s, request=500ms, connect=1s").empty());
  // Configured 1s, asked 2s: 1s.
  CHECK(asked.apply(TimeoutName::idle_timeout, Duration::seconds(1)) == Duration::seconds(1));
  // Configured 3s, asked 2s: 2s.
  CHECK(asked.apply(TimeoutName::idle_timeout, Duration::seconds(3)) == Duration::seconds(2));
  // Configured off, asked 2s: 2s.
  CHECK(asked.apply(TimeoutName::idle_timeout, Duration::off()) == Duration::seconds(2));
  // Equal: either.
  CHECK(asked.apply(TimeoutName::connect_timeout, Duration::seconds(1)) == Duration::seconds(1));
  CHECK(asked.apply(TimeoutName::request_timeout, Duration::off()) == Duration::millis(500));
  // A deadline not asked for keeps its configured value.
  CHECK(asked.apply(TimeoutName::dns_timeout, Duration::seconds(5)) == Duration::seconds(5));
  CHECK(asked.apply(TimeoutName::tunnel_max_duration, Duration::off()).is_off());
}

TEST_CASE("Cutoff-Timeout: clear forgets what was asked", "[requested_timeouts]") {
  RequestedTimeouts asked;
  asked.clear();  // nothing to clear
  CHECK_FALSE(asked.any());
  REQUIRE(asked.add("idle=1s, tunnel_idle=2s").empty());
  CHECK(asked.any());
  asked.clear();
  CHECK_FALSE(asked.any());
  CHECK(asked.asked(TimeoutName::idle_timeout).is_off());
  CHECK(asked.asked(TimeoutName::tunnel_idle_timeout).is_off());
  CHECK(asked.apply(TimeoutName::idle_timeout, Duration::seconds(60)) == Duration::seconds(60));
  // The same names may be asked again: no "twice" from the last exchange.
  CHECK(asked.add("idle=3s").empty());
  CHECK(asked.asked(TimeoutName::idle_timeout) == Duration::seconds(3));
}

TEST_CASE("Cutoff-Timeout: read from a head, every field combined", "[requested_timeouts]") {
  RequestedTimeouts asked;
  CHECK(read_requested_timeouts(
            Parsed("Cutoff-Timeout: response_header=2s\r\nAccept: */*\r\n"
                   "cutoff-timeout: idle=1s, request=10s\r\nCUTOFF-TIMEOUT: connect=500ms\r\n")
                .parser.head(),
            &asked)
            .empty());
  CHECK(asked.asked(TimeoutName::response_header_timeout) == Duration::seconds(2));
  CHECK(asked.asked(TimeoutName::idle_timeout) == Duration::seconds(1));
  CHECK(asked.asked(TimeoutName::request_timeout) == Duration::seconds(10));
  CHECK(asked.asked(TimeoutName::connect_timeout) == Duration::millis(500));
}

TEST_CASE("Cutoff-Timeout: a head's bad field is the 400's sentence", "[requested_timeouts]") {
  RequestedTimeouts asked;
  CHECK(read_requested_timeouts(
            Parsed("Cutoff-Timeout: idle=1s\r\nCutoff-Timeout: idle=2s\r\n").parser.head(),
            &asked) == "Cutoff-Timeout names idle twice");
  asked.clear();
  CHECK(read_requested_timeouts(Parsed("Cutoff-Timeout: bogus=1s\r\n").parser.head(), &asked) ==
        "Cutoff-Timeout: unknown name \"bogus\"; known: dns, connect, tls_handshake, "
        "response_header, idle, request, tunnel_idle, tunnel_max_duration");
  asked.clear();
  CHECK(read_requested_timeouts(Parsed("Cutoff-Timeout:\r\n").parser.head(), &asked) ==
        "Cutoff-Timeout is empty: give name=duration pairs");
}

TEST_CASE("Cutoff-Timeout: a head without it asks nothing", "[requested_timeouts]") {
  RequestedTimeouts asked;
  CHECK(read_requested_timeouts(Parsed("Accept: */*\r\n").parser.head(), &asked).empty());
  CHECK_FALSE(asked.any());
  // Other hop-by-hop fields, and an end-to-end look-alike, are not read.
  CHECK(read_requested_timeouts(
            Parsed("Connection: keep-alive\r\nCutoff-Test-Id: t\r\nX-Cutoff-Timeout: idle=1s\r\n")
                .parser.head(),
            &asked)
            .empty());
  CHECK_FALSE(asked.any());
}
