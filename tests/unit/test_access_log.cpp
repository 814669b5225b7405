#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <limits>
#include <regex>
#include <sstream>
#include <string>

#include "cutoff/access_log.hpp"
#include "cutoff/exchange.hpp"
#include "temp_dir.hpp"

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
  CHECK(
      json.ends_with(",\"outcome\":\"timeout:tls_handshake_timeout\",\"sni\":\"registry.example."
                     "test\",\"test\":null}"));
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
        "\"first_byte_ms\":50,\"total_ms\":61,\"reused\":true,\"outcome\":\"ok\",\"sni\":null,"
        "\"test\":null}");
}

TEST_CASE("access log JSON: missing times and status are null", "[access_log]") {
  std::string out;
  format_access_json(out, sparse_record());
  CHECK(out ==
        "{\"client\":\"[::1]:40000\",\"method\":\"CONNECT\",\"target\":\"example.com:443\","
        "\"version\":\"1.0\",\"route\":\"default\",\"status\":null,\"up_bytes\":0,"
        "\"down_bytes\":0,\"dns_ms\":null,\"connect_ms\":null,\"first_byte_ms\":null,"
        "\"total_ms\":5000,\"reused\":false,\"outcome\":\"timeout:connect_timeout\","
        "\"sni\":null,\"test\":null}");
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
  CHECK(json.ends_with(",\"outcome\":\"client_abort\",\"sni\":null,\"test\":null}"));
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

// The bytes of both formats for values a real exchange rarely has: empty
// fields, the extremes of every number, a negative time that is not the
// "missing" one. Text and JSON differ on purpose: total_ms is always a
// number in text, while JSON writes kNoTime as null in every time field.
namespace {

ExchangeRecord extreme_record() {
  ExchangeRecord r;
  r.client = "";
  r.method = "";
  r.http_major = 1;
  r.http_minor = 0;
  r.route = "";
  r.status = 0;
  r.up_bytes = std::numeric_limits<uint64_t>::max();
  r.down_bytes = 0;
  r.dns_ms = -2;
  r.connect_ms = std::numeric_limits<int64_t>::max();
  r.first_byte_ms = std::numeric_limits<int64_t>::min();
  r.total_ms = kNoTime;
  r.reused = false;
  r.outcome = Outcome::stopped();
  return r;
}

}  // namespace

TEST_CASE("access log text: empty fields and extreme numbers, byte for byte", "[access_log]") {
  std::string out;
  format_access_text(out, extreme_record());
  CHECK(out ==
        " \"- - HTTP/1.0\" route= status=- up_bytes=18446744073709551615 down_bytes=0 "
        "dns_ms=-2 connect_ms=9223372036854775807 first_byte_ms=-9223372036854775808 "
        "total_ms=-1 reused=0 outcome=stopped");
}

TEST_CASE("access log JSON: empty fields and extreme numbers, byte for byte", "[access_log]") {
  std::string out;
  format_access_json(out, extreme_record());
  CHECK(out ==
        "{\"client\":\"\",\"method\":\"\",\"target\":\"\",\"version\":\"1.0\",\"route\":\"\","
        "\"status\":null,\"up_bytes\":18446744073709551615,\"down_bytes\":0,\"dns_ms\":-2,"
        "\"connect_ms\":9223372036854775807,\"first_byte_ms\":-9223372036854775808,"
        "\"total_ms\":null,\"reused\":false,\"outcome\":\"stopped\",\"sni\":null,\"test\":null}");
}

TEST_CASE("access log: three-digit statuses and other versions, byte for byte", "[access_log]") {
  ExchangeRecord r = full_record();
  r.status = 101;
  r.http_major = 0;
  r.http_minor = 9;
  r.total_ms = 1234567;
  std::string text;
  format_access_text(text, r);
  CHECK(text ==
        "127.0.0.1:51234 \"GET http://example.com/a?b=1 HTTP/0.9\" route=api status=101 "
        "up_bytes=10 down_bytes=2048 dns_ms=3 connect_ms=4 first_byte_ms=50 total_ms=1234567 "
        "reused=1 outcome=ok");
  r.status = 999;
  std::string json;
  format_access_json(json, r);
  CHECK(json ==
        "{\"client\":\"127.0.0.1:51234\",\"method\":\"GET\","
        "\"target\":\"http://example.com/a?b=1\",\"version\":\"0.9\",\"route\":\"api\","
        "\"status\":999,\"up_bytes\":10,\"down_bytes\":2048,\"dns_ms\":3,\"connect_ms\":4,"
        "\"first_byte_ms\":50,\"total_ms\":1234567,\"reused\":true,\"outcome\":\"ok\","
        "\"sni\":null,\"test\":null}");
}

// Only the target is the client's in text: the other fields are written as
// they are (the route comes from the config, the client from the socket).
TEST_CASE("access log text: fields other than the target are not escaped", "[access_log]") {
  ExchangeRecord r = full_record();
  r.route = "a b\"c";
  r.outcome = Outcome::failed(ProxyError::destination_unavailable);
  r.sni = "h.example";
  std::string out;
  format_access_text(out, r);
  CHECK(out ==
        "127.0.0.1:51234 \"GET http://example.com/a?b=1 HTTP/1.1\" route=a b\"c status=200 "
        "up_bytes=10 down_bytes=2048 dns_ms=3 connect_ms=4 first_byte_ms=50 total_ms=61 "
        "reused=1 outcome=error:destination_unavailable sni=h.example");
}

// Targets are tested many bytes at a time: each byte that needs escaping is
// found wherever it stands, at the edges of such a group, in a short or a
// long target, alone or next to another.
TEST_CASE("access log text: an odd byte is escaped at any place in a target", "[access_log]") {
  const unsigned char odd[] = {0x00, 0x1f, ' ', '"', '\\', 0x7f, 0x80, 0xff};
  auto escape = [](const std::string& s) {
    std::string out;
    for (unsigned char c : s) {
      if (c > ' ' && c < 0x7f && c != '"' && c != '\\') {
        out += static_cast<char>(c);
      } else {
        char hex[4];
        std::snprintf(hex, sizeof hex, "%%%02X", c);
        out += hex;
      }
    }
    return out;
  };
  for (size_t size = 1; size <= 50; ++size) {
    for (size_t at = 0; at < size; ++at) {
      for (unsigned char c : odd) {
        // Plain bytes either side of the odd one: the first and last plain.
        std::string target(size, 'a');
        target.front() = '!';
        target.back() = '~';
        target[at] = static_cast<char>(c);
        if (at + 1 < size) target[at + 1] = static_cast<char>(odd[(at + size) % sizeof odd]);
        ExchangeRecord r = full_record();
        r.target.kept = target;
        std::string out;
        format_access_text(out, r);
        INFO("size=" << size << " at=" << at << " byte=" << int{c});
        REQUIRE(out.find("\"GET " + escape(target) + " HTTP/1.1\"") != std::string::npos);
      }
    }
  }
}

// Numbers are written two ways, by size: the edges of each way.
TEST_CASE("access log: numbers around every change of width", "[access_log]") {
  for (int64_t n : {int64_t{0}, int64_t{9}, int64_t{10}, int64_t{99}, int64_t{100}, int64_t{101},
                    int64_t{999}, int64_t{1000}, int64_t{1001}, int64_t{65535}}) {
    ExchangeRecord r = full_record();
    r.up_bytes = static_cast<uint64_t>(n);
    r.down_bytes = static_cast<uint64_t>(n);
    r.dns_ms = n;
    r.connect_ms = n;
    r.first_byte_ms = n;
    r.total_ms = n;
    r.status = static_cast<int>(n == 0 ? 1 : n);
    r.http_major = static_cast<int>(n);
    r.http_minor = static_cast<int>(n);
    const std::string v = std::to_string(n);
    const std::string status = std::to_string(r.status);
    std::string text;
    format_access_text(text, r);
    INFO("n=" << n);
    CHECK(text == "127.0.0.1:51234 \"GET http://example.com/a?b=1 HTTP/" + v + "." + v +
                      "\" route=api status=" + status + " up_bytes=" + v + " down_bytes=" + v +
                      " dns_ms=" + v + " connect_ms=" + v + " first_byte_ms=" + v +
                      " total_ms=" + v + " reused=1 outcome=ok");
    std::string json;
    format_access_json(json, r);
    CHECK(json.find("\"version\":\"" + v + "." + v + "\",\"route\":\"api\",\"status\":" + status +
                    ",\"up_bytes\":" + v + ",\"down_bytes\":" + v + ",\"dns_ms\":" + v +
                    ",\"connect_ms\":" + v + ",\"first_byte_ms\":" + v + ",\"total_ms\":" + v +
                    ",") != std::string::npos);
  }
}

// The bound on a line's length counts every outcome token in its fixed part.
TEST_CASE("access log: every outcome fits the line's bound", "[access_log]") {
  for (size_t slot = 0; slot < kOutcomeSlots; ++slot) {
    ExchangeRecord r = extreme_record();
    r.outcome = outcome_in_slot(slot);
    const std::string token = outcome_token(r.outcome);
    std::string text;
    format_access_text(text, r);
    CHECK(text.ends_with(" outcome=" + token));
    std::string json;
    format_access_json(json, r);
    CHECK(json.ends_with(",\"outcome\":\"" + token + "\",\"sni\":null,\"test\":null}"));
  }
}

TEST_CASE("access log JSON: every control byte is \\u00xx, DEL and non-ASCII pass",
          "[access_log]") {
  const std::string odd("\x00\x01\n\x1f\x7f\xc3\xa9\"\\/", 10);
  ExchangeRecord r = full_record();
  r.client = odd;
  r.method = odd;
  r.route = odd;
  r.sni = odd;
  r.target.kept = odd;
  const std::string escaped = "\"\\u0000\\u0001\\u000a\\u001f\x7f\xc3\xa9\\\"\\\\/\"";
  std::string out;
  format_access_json(out, r);
  CHECK(out == "{\"client\":" + escaped + ",\"method\":" + escaped + ",\"target\":" + escaped +
                   ",\"version\":\"1.1\",\"route\":" + escaped +
                   ",\"status\":200,\"up_bytes\":10,\"down_bytes\":2048,\"dns_ms\":3,"
                   "\"connect_ms\":4,\"first_byte_ms\":50,\"total_ms\":61,\"reused\":true,"
                   "\"outcome\":\"ok\",\"sni\":" +
                   escaped + ",\"test\":null}");
}

TEST_CASE("access log: a hidden userinfo and query, in both formats", "[access_log]") {
  ExchangeRecord r = full_record();
  r.target.scheme = "http://";
  r.target.userinfo_hidden = true;
  r.target.kept = "h\"/p q";
  r.target.redacted = true;
  std::string text;
  format_access_text(text, r);
  CHECK(text.find(" \"GET http://<redacted>@h%22/p%20q<redacted> HTTP/1.1\" ") !=
        std::string::npos);
  std::string json;
  format_access_json(json, r);
  CHECK(json.find(",\"target\":\"http://<redacted>@h\\\"/p q<redacted>\",") != std::string::npos);
}

// The writer puts the local time in front of each line, as
// "2024-05-06T07:08:09.123+02:00": a space before the text line, a "time"
// field opening the JSON object.
namespace {

// The local time of `t` as the line shows it, from the C library alone.
std::string local_time_text(std::chrono::system_clock::time_point t) {
  using namespace std::chrono;
  std::time_t secs = system_clock::to_time_t(t);
  std::tm tm{};
  localtime_r(&secs, &tm);
  char date[32];
  std::strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%S", &tm);
  auto ms = duration_cast<milliseconds>(t.time_since_epoch()).count() % 1000;
  long offset = tm.tm_gmtoff / 60;
  char zone[32];
  std::snprintf(zone, sizeof zone, "%c%02ld:%02ld", offset < 0 ? '-' : '+',
                (offset < 0 ? -offset : offset) / 60, (offset < 0 ? -offset : offset) % 60);
  char text[128];
  std::snprintf(text, sizeof text, "%s.%03lld%s", date, static_cast<long long>(ms), zone);
  return text;
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream all;
  all << in.rdbuf();
  return all.str();
}

// Writes `record` through a writer of `format` into a fresh file; returns
// the file's bytes and sets the wall-clock times around the write.
std::string written_line(LogFormat format, const ExchangeRecord& record, std::string* before,
                         std::string* after) {
  testing::TempDir dir;
  AccessLogConfig config;
  config.format = format;
  config.path = dir.file("access.log");
  AccessLog log(config);
  Counter dropped;
  {
    AccessLogWriter writer(log, &dropped);
    *before = local_time_text(std::chrono::system_clock::now());
    writer.write(record);
    *after = local_time_text(std::chrono::system_clock::now());
  }
  CHECK(dropped.get() == 0);
  return read_file(config.path);
}

const std::regex kTimestamp(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d\d:\d\d)");

}  // namespace

TEST_CASE("access log writer: a text line is the local time, a space, the text", "[access_log]") {
  ExchangeRecord r = full_record();
  std::string before, after;
  std::string file = written_line(LogFormat::text, r, &before, &after);
  std::string text;
  format_access_text(text, r);
  REQUIRE(file.size() > text.size() + 1);
  size_t stamp = file.size() - text.size() - 2;
  std::string time = file.substr(0, stamp);
  CHECK(std::regex_match(time, kTimestamp));
  CHECK(before <= time);
  CHECK(time <= after);
  CHECK(file.substr(stamp) == " " + text + "\n");
}

TEST_CASE("access log writer: a JSON line opens with its time", "[access_log]") {
  ExchangeRecord r = extreme_record();
  std::string before, after;
  std::string file = written_line(LogFormat::json, r, &before, &after);
  std::string json;
  format_access_json(json, r);
  const std::string open = "{\"time\":\"";
  REQUIRE(file.rfind(open, 0) == 0);
  size_t end = file.find('"', open.size());
  REQUIRE(end != std::string::npos);
  std::string time = file.substr(open.size(), end - open.size());
  CHECK(std::regex_match(time, kTimestamp));
  CHECK(before <= time);
  CHECK(time <= after);
  CHECK(file.substr(end) == "\"," + json.substr(1) + "\n");
}

TEST_CASE("access log writer: lines follow one another whole", "[access_log]") {
  testing::TempDir dir;
  AccessLogConfig config;
  config.path = dir.file("access.log");
  AccessLog log(config);
  Counter dropped;
  std::string expected;
  {
    AccessLogWriter writer(log, &dropped);
    for (int i = 0; i < 50; ++i) {
      ExchangeRecord r = i % 2 ? full_record() : sparse_record();
      r.total_ms = i;
      writer.write(r);
      std::string text;
      format_access_text(text, r);
      expected += text + "\n";
    }
  }
  std::istringstream lines(read_file(config.path));
  std::string got;
  for (std::string line; std::getline(lines, line);) {
    REQUIRE(line.size() > 29);
    CHECK(std::regex_match(line.substr(0, 29), kTimestamp));
    CHECK(line[29] == ' ');
    got += line.substr(30) + "\n";
  }
  CHECK(got == expected);
}

// A destination that takes nothing for a while (a FIFO nobody reads yet):
// lines wait in the pipe and the buffer, the last few that fit written there
// from a line of their own (the buffer has less room than a record could
// take), then new ones are dropped whole and counted. When the reader comes,
// it gets whole lines in order.
TEST_CASE("access log writer: a stalled FIFO gets whole lines, the others are counted",
          "[access_log]") {
  testing::TempDir dir;
  AccessLogConfig config;
  config.path = dir.file("access.fifo");
  REQUIRE(mkfifo(config.path.c_str(), 0600) == 0);
  AccessLog log(config);
  Counter dropped;
  // Each line is over 200 bytes: more than the pipe and the buffer hold.
  constexpr int kLines = 2000;
  AccessLogWriter writer(log, &dropped);
  for (int i = 0; i < kLines; ++i) {
    ExchangeRecord r = full_record();
    r.total_ms = i;
    writer.write(r);
  }
  CHECK(dropped.get() > 0);

  int reader = ::open(config.path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  REQUIRE(reader >= 0);
  std::string got;
  bool flushed = false;
  for (;;) {
    char chunk[65536];
    ssize_t n = ::read(reader, chunk, sizeof chunk);
    if (n > 0) {
      got.append(chunk, static_cast<size_t>(n));
      flushed = false;
      continue;
    }
    REQUIRE((n < 0 && errno == EAGAIN));
    // The pipe is empty: once a flush adds nothing, every line is out.
    if (flushed) break;
    writer.flush();
    flushed = true;
  }
  ::close(reader);

  std::istringstream lines(got);
  int count = 0;
  int64_t last = -1;
  for (std::string line; std::getline(lines, line);) {
    REQUIRE(line.size() > 30);
    ExchangeRecord r = full_record();
    size_t at = line.find(" total_ms=");
    REQUIRE(at != std::string::npos);
    r.total_ms = std::stoll(line.substr(at + 10));
    CHECK(r.total_ms > last);
    last = r.total_ms;
    std::string text;
    format_access_text(text, r);
    CHECK(line.substr(30) == text);
    ++count;
  }
  CHECK(got.ends_with("\n"));
  CHECK(count + dropped.get() == kLines);
}

TEST_CASE("access log: the test id, in both formats", "[access_log]") {
  ExchangeRecord r = full_record();
  r.test_id = "tests/test_api.py::test_login";
  std::string text;
  format_access_text(text, r);
  CHECK(text ==
        "127.0.0.1:51234 \"GET http://example.com/a?b=1 HTTP/1.1\" route=api status=200 "
        "up_bytes=10 down_bytes=2048 dns_ms=3 connect_ms=4 first_byte_ms=50 total_ms=61 "
        "reused=1 outcome=ok test=tests/test_api.py::test_login");
  std::string json;
  format_access_json(json, r);
  CHECK(json.ends_with(
      ",\"outcome\":\"ok\",\"sni\":null,\"test\":\"tests/test_api.py::test_login\"}"));

  // After the server name of a tunnel.
  r.sni = "h.example";
  text.clear();
  format_access_text(text, r);
  CHECK(text.ends_with(" outcome=ok sni=h.example test=tests/test_api.py::test_login"));
  json.clear();
  format_access_json(json, r);
  CHECK(json.ends_with(",\"sni\":\"h.example\",\"test\":\"tests/test_api.py::test_login\"}"));
}

// An id is any printable ASCII, spaces included: in text, a space or a
// quote would end the field or forge another.
TEST_CASE("access log: a test id's spaces, quotes and backslashes are escaped", "[access_log]") {
  ExchangeRecord r = full_record();
  r.test_id = "test a\" outcome=ok \\ 100%";
  std::string text;
  format_access_text(text, r);
  CHECK(text.ends_with(" outcome=ok test=test%20a%22%20outcome=ok%20%5C%20100%"));
  std::string json;
  format_access_json(json, r);
  CHECK(json.ends_with(",\"test\":\"test a\\\" outcome=ok \\\\ 100%\"}"));
}

TEST_CASE("access log: no test id, no test field in text and null in JSON", "[access_log]") {
  std::string text;
  format_access_text(text, full_record());
  CHECK(text.find("test=") == std::string::npos);
  std::string json;
  format_access_json(json, full_record());
  CHECK(json.ends_with(",\"sni\":null,\"test\":null}"));
}

TEST_CASE("access log: the longest test id fits the line's bound", "[access_log]") {
  // Every byte escaped: three times the id.
  const std::string id(256, '"');
  ExchangeRecord r = full_record();
  r.test_id = id;
  std::string text;
  format_access_text(text, r);
  CHECK(text.ends_with(" test=" + [] {
    std::string escaped;
    for (int i = 0; i < 256; ++i) escaped += "%22";
    return escaped;
  }()));
  std::string json;
  format_access_json(json, r);
  std::string escaped_json;
  for (int i = 0; i < 256; ++i) escaped_json += "\\\"";
  CHECK(json.ends_with(",\"test\":\"" + escaped_json + "\"}"));
}
