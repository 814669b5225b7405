#include <catch2/catch.hpp>
#include <string>

#include "cutoff/access_log.hpp"
#include "cutoff/exchange.hpp"

using namespace cutoff;

namespace {

ExchangeRecord full_record() {
  ExchangeRecord r;
  r.client = "127.0.0.1:51234";
  r.method = "GET";
  r.target.kept = "http://example.com/a?b=1";
  r.http_major = 1;
  r.http_minor = 1;
  r.route = "api";
  r.status = 200;
  r.up_bytes = 10;
  r.down_bytes = 2048;
  r.dns_ms = 3;
  r.connect_ms = 4;
  r.first_byte_ms = 50;
  r.total_ms = 61;
  r.reused = true;
  r.outcome = Outcome::ok();
  return r;
}

ExchangeRecord sparse_record() {
  ExchangeRecord r;
  r.client = "[::1]:40000";
  r.method = "CONNECT";
  r.target.kept = "example.com:443";
  r.http_major = 1;
  r.http_minor = 0;
  r.route = "default";
  r.status = 0;
  r.up_bytes = 0;
  r.down_bytes = 0;
  r.total_ms = 5000;
  r.reused = false;
  r.outcome = Outcome::timed_out(TimeoutName::connect_timeout);
  return r;
}

}  // namespace

TEST_CASE("access log text: a full record", "[access_log]") {
  std::string out;
  format_access_text(out, full_record());
  CHECK(out ==
        "127.0.0.1:51234 \"GET http://example.com/a?b=1 HTTP/1.1\" route=api status=200 "
        "up_bytes=10 down_bytes=2048 dns_ms=3 connect_ms=4 first_byte_ms=50 total_ms=61 "
        "reused=1 outcome=ok");
}

TEST_CASE("access log text: missing times and status are '-'", "[access_log]") {
  std::string out;
  format_access_text(out, sparse_record());
  CHECK(out ==
        "[::1]:40000 \"CONNECT example.com:443 HTTP/1.0\" route=default status=- "
        "up_bytes=0 down_bytes=0 dns_ms=- connect_ms=- first_byte_ms=- total_ms=5000 "
        "reused=0 outcome=timeout:connect_timeout");
}

TEST_CASE("access log: a tunnel's TLS server name, in both formats", "[access_log]") {
  ExchangeRecord r = sparse_record();
  r.status = 200;
  r.outcome = Outcome::timed_out(TimeoutName::tls_handshake_timeout);
  r.sni = "registry.example.test";
  std::string text;
  format_access_text(text, r);
  CHECK(text ==
        "[::1]:40000 \"CONNECT example.com:443 HTTP/1.0\" route=default status=200 "
        "up_bytes=0 down_bytes=0 dns_ms=- connect_ms=- first_byte_ms=- total_ms=5000 "
        "reused=0 outcome=timeout:tls_handshake_timeout sni=registry.example.test");
  std::string json;
  format_access_json(json, r);
  CHECK(json.ends_with(
      ",\"outcome\":\"timeout:tls_handshake_timeout\",\"sni\":\"registry.example.test\"}"));
}

TEST_CASE("access log text: zero times are times, not missing", "[access_log]") {
  ExchangeRecord r = full_record();
  r.dns_ms = 0;
  r.connect_ms = 0;
  r.first_byte_ms = 0;
  r.total_ms = 0;
  std::string out;
  format_access_text(out, r);
  CHECK(out.find(" dns_ms=0 connect_ms=0 first_byte_ms=0 total_ms=0 ") != std::string::npos);
}

// The target is the client's: it must not end its field or forge others.
TEST_CASE("access log text: quotes, backslashes, controls and non-ASCII are escaped",
          "[access_log]") {
  ExchangeRecord r = full_record();
  r.target.kept = "http://h/a\" route=forged status=200 \\\x01\xe9";
  std::string out;
  format_access_text(out, r);
  CHECK(out.find(
            "\"GET http://h/a%22%20route=forged%20status=200%20%5C%01%E9 HTTP/1.1\" route=api") !=
        std::string::npos);
}

TEST_CASE("access log text: output is appended", "[access_log]") {
  std::string out = "prefix|";
  format_access_text(out, full_record());
  CHECK(out.rfind("prefix|127.0.0.1:51234 \"GET ", 0) == 0);
}

TEST_CASE("access log JSON: a full record", "[access_log]") {
  std::string out;
  format_access_json(out, full_record());
  CHECK(out ==
        "{\"client\":\"127.0.0.1:51234\",\"method\":\"GET\","
        "\"target\":\"http://example.com/a?b=1\",\"version\":\"1.1\",\"route\":\"api\","
        "\"status\":200,\"up_bytes\":10,\"down_bytes\":2048,\"dns_ms\":3,\"connect_ms\":4,"
        "\"first_byte_ms\":50,\"total_ms\":61,\"reused\":true,\"outcome\":\"ok\",\"sni\":null}");
}

TEST_CASE("access log JSON: missing times and status are null", "[access_log]") {
  std::string out;
  format_access_json(out, sparse_record());
  CHECK(out ==
        "{\"client\":\"[::1]:40000\",\"method\":\"CONNECT\",\"target\":\"example.com:443\","
        "\"version\":\"1.0\",\"route\":\"default\",\"status\":null,\"up_bytes\":0,"
        "\"down_bytes\":0,\"dns_ms\":null,\"connect_ms\":null,\"first_byte_ms\":null,"
        "\"total_ms\":5000,\"reused\":false,\"outcome\":\"timeout:connect_timeout\","
        "\"sni\":null}");
}

TEST_CASE("access log JSON: strings are escaped", "[access_log]") {
  ExchangeRecord r = full_record();
  r.target.kept = "http://h/\"q\"\\x\x01\x1f";
  r.route = "r\"1";
  r.outcome = Outcome::failed(ProxyError::http_protocol_error);
  std::string out;
  format_access_json(out, r);
  CHECK(out.find(",\"target\":\"http://h/\\\"q\\\"\\\\x\\u0001\\u001f\",") != std::string::npos);
  CHECK(out.find(",\"route\":\"r\\\"1\",") != std::string::npos);
  CHECK(out.find(",\"outcome\":\"error:http_protocol_error\",") != std::string::npos);
}

TEST_CASE("outcome tokens", "[access_log]") {
  CHECK(outcome_token(Outcome::ok()) == "ok");
  CHECK(outcome_token(Outcome::client_aborted()) == "client_abort");
  CHECK(outcome_token(Outcome::failed(ProxyError::dns_error)) == "error:dns_error");
  CHECK(outcome_token(Outcome::failed(ProxyError::connection_refused)) ==
        "error:connection_refused");
  CHECK(outcome_token(Outcome::failed(ProxyError::http_request_denied)) ==
        "error:http_request_denied");
  CHECK(outcome_token(Outcome::failed(ProxyError::http_request_error)) ==
        "error:http_request_error");

  CHECK(outcome_token(Outcome::timed_out(TimeoutName::request_header_timeout)) ==
        "timeout:request_header_timeout");
  CHECK(outcome_token(Outcome::timed_out(TimeoutName::client_keepalive_timeout)) ==
        "timeout:client_keepalive_timeout");
  CHECK(outcome_token(Outcome::timed_out(TimeoutName::dns_timeout)) == "timeout:dns_timeout");
  CHECK(outcome_token(Outcome::timed_out(TimeoutName::connect_timeout)) ==
        "timeout:connect_timeout");
  CHECK(outcome_token(Outcome::timed_out(TimeoutName::response_header_timeout)) ==
        "timeout:response_header_timeout");
  CHECK(outcome_token(Outcome::timed_out(TimeoutName::idle_timeout)) == "timeout:idle_timeout");
  CHECK(outcome_token(Outcome::timed_out(TimeoutName::request_timeout)) ==
        "timeout:request_timeout");
  CHECK(outcome_token(Outcome::timed_out(TimeoutName::min_rate)) == "timeout:min_rate");
  CHECK(outcome_token(Outcome::timed_out(TimeoutName::upstream_keepalive_timeout)) ==
        "timeout:upstream_keepalive_timeout");
  CHECK(outcome_token(Outcome::timed_out(TimeoutName::tunnel_idle_timeout)) ==
        "timeout:tunnel_idle_timeout");
  CHECK(outcome_token(Outcome::timed_out(TimeoutName::tunnel_max_duration)) ==
        "timeout:tunnel_max_duration");
  CHECK(outcome_token(Outcome::timed_out(TimeoutName::linger_timeout)) == "timeout:linger_timeout");
  CHECK(outcome_token(Outcome::timed_out(TimeoutName::drain_timeout)) == "timeout:drain_timeout");
}

TEST_CASE("the outcome token appears in both formats", "[access_log]") {
  ExchangeRecord r = full_record();
  r.outcome = Outcome::client_aborted();
  std::string text;
  format_access_text(text, r);
  CHECK(text.size() >= 21);
  CHECK(text.substr(text.size() - 21) == " outcome=client_abort");
  std::string json;
  format_access_json(json, r);
  CHECK(json.substr(json.size() - 37) == ",\"outcome\":\"client_abort\",\"sni\":null}");
}

TEST_CASE("access log: a redacted target shows the marker in place of its query", "[access_log]") {
  ExchangeRecord r = full_record();
  r.target = redact_query("http://example.com/a?token=secret");
  std::string text;
  format_access_text(text, r);
  CHECK(text.find("\"GET http://example.com/a?<redacted> HTTP/1.1\"") != std::string::npos);
  CHECK(text.find("secret") == std::string::npos);
  std::string json;
  format_access_json(json, r);
  CHECK(json.find(",\"target\":\"http://example.com/a?<redacted>\",") != std::string::npos);
  CHECK(json.find("secret") == std::string::npos);
}

TEST_CASE("access log: the kept part of a redacted target is still escaped", "[access_log]") {
  ExchangeRecord r = full_record();
  r.target = redact_query("http://h/a\"b?\"q");
  std::string text;
  format_access_text(text, r);
  CHECK(text.find("\"GET http://h/a%22b?<redacted> HTTP/1.1\"") != std::string::npos);
  std::string json;
  format_access_json(json, r);
  CHECK(json.find(",\"target\":\"http://h/a\\\"b?<redacted>\",") != std::string::npos);
}
