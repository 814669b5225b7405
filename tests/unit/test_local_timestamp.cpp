// LocalTimestamp writes what spdlog's pattern "%Y-%m-%dT%H:%M:%S.%e%z"
// writes in local time, byte for byte, though spdlog formats only the first
// line of each second. Each case is compared with a whole spdlog pattern,
// in several time zones.

#include <spdlog/pattern_formatter.h>
#include <stdlib.h>
#include <time.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <optional>
#include <string>

#include "cutoff/local_timestamp.hpp"

using namespace cutoff;
using std::chrono::microseconds;
using std::chrono::milliseconds;
using std::chrono::seconds;
using std::chrono::system_clock;

namespace {

// Sets TZ for the test's duration and puts the previous value back.
class TimeZone {
 public:
  explicit TimeZone(const char* tz) {
    if (const char* old = getenv("TZ")) old_ = old;
    setenv("TZ", tz, 1);
    tzset();
  }
  ~TimeZone() {
    if (old_) {
      setenv("TZ", old_->c_str(), 1);
    } else {
      unsetenv("TZ");
    }
    tzset();
  }
  TimeZone(const TimeZone&) = delete;
  TimeZone& operator=(const TimeZone&) = delete;

 private:
  std::optional<std::string> old_;
};

std::string spdlog_text(system_clock::time_point time) {
  spdlog::pattern_formatter formatter("%Y-%m-%dT%H:%M:%S.%e%z", spdlog::pattern_time_type::local,
                                      "");
  spdlog::details::log_msg msg("access", spdlog::level::info, "");
  msg.time = time;
  spdlog::memory_buf_t out;
  formatter.format(msg, out);
  return std::string(out.data(), out.size());
}

system_clock::time_point at(int64_t ms) {
  return system_clock::time_point(
      std::chrono::duration_cast<system_clock::duration>(milliseconds(ms)));
}

// Instants around a day, a year and a millisecond boundary. spdlog's caches
// start out holding the epoch's first ten seconds (a zeroed calendar, no
// offset), which it would show wrongly: no instant here is that early.
const int64_t kInstantsMs[] = {
    10000,         10001,         10999,         11000,         86399999,
    86400000,      951782399999,  951782400000,  1704067199999, 1704067200000,
    1715000000123, 1719792000500, 2147483647999, 4102444800001,
};

}  // namespace

TEST_CASE("local timestamp: spdlog's text, in zones east, west and at UTC", "[local_timestamp]") {
  // POSIX TZ strings need no tz database; the last two change to summer time.
  const char* zones[] = {"UTC0",
                         "IST-5:30",
                         "NST+3:30",
                         "<+0545>-5:45",
                         "<-01>1",
                         "CET-1CEST,M3.5.0,M10.5.0/3",
                         "PST8PDT,M3.2.0,M11.1.0"};
  for (const char* zone : zones) {
    TimeZone tz(zone);
    for (int64_t ms : kInstantsMs) {
      LocalTimestamp stamp;
      std::string out(stamp.text(at(ms)));
      INFO("TZ=" << zone << " ms=" << ms);
      CHECK(out == spdlog_text(at(ms)));
    }
    // Microseconds are cut, not rounded up.
    LocalTimestamp stamp;
    std::string out(stamp.text(at(1715000000999) + std::chrono::microseconds(999)));
    CHECK(out == spdlog_text(at(1715000000999) + std::chrono::microseconds(999)));
  }
}

// One writer and one spdlog formatter, each kept from line to line, through
// the start and the end of summer time, going forward by steps that are no
// divisor of a second: spdlog's new look at the offset, 10 s after the last
// one, falls on the first line of a second or in the middle of one, and with
// steps under a millisecond, in the middle of a millisecond that lines
// before it share.
TEST_CASE("local timestamp: line after line, as one spdlog formatter", "[local_timestamp]") {
  TimeZone tz("CET-1CEST,M3.5.0,M10.5.0/3");
  // 2024-03-31 02:00 and 2024-10-27 03:00 local time, 30 s before.
  for (int64_t start : {int64_t{1711846770000}, int64_t{1729990770000}}) {
    for (microseconds step : {microseconds(137000), microseconds(300000), microseconds(1300)}) {
      LocalTimestamp stamp;
      spdlog::pattern_formatter formatter("%Y-%m-%dT%H:%M:%S.%e%z",
                                          spdlog::pattern_time_type::local, "");
      // The first line 0.4 ms into its millisecond, and so every look at the
      // offset after it.
      for (auto time = at(start) + microseconds(400); time < at(start + 60000); time += step) {
        spdlog::details::log_msg msg("access", spdlog::level::info, "");
        msg.time = time;
        spdlog::memory_buf_t expected;
        formatter.format(msg, expected);
        INFO("time=" << time.time_since_epoch().count() << " step=" << step.count());
        REQUIRE(stamp.text(time) == std::string_view(expected.data(), expected.size()));
      }
    }
  }
}

// Lines in one millisecond share its text, up to the instant the offset is
// looked up again, 10 s after the last look, here 0.4 ms into a millisecond.
TEST_CASE("local timestamp: lines within one millisecond", "[local_timestamp]") {
  TimeZone tz("CET-1CEST,M3.5.0,M10.5.0/3");
  LocalTimestamp stamp;
  // 2024-03-31 01:59:55.5004 UTC+1; summer time starts 4.4996 s later.
  const auto first = at(1711846795500) + microseconds(400);
  CHECK(stamp.text(first) == "2024-03-31T01:59:55.500+01:00");
  CHECK(stamp.text(first + microseconds(599)) == "2024-03-31T01:59:55.500+01:00");
  CHECK(stamp.text(first + microseconds(600)) == "2024-03-31T01:59:55.501+01:00");
  CHECK(stamp.text(first - microseconds(1)) == "2024-03-31T01:59:55.500+01:00");
  CHECK(stamp.text(first - microseconds(401)) == "2024-03-31T01:59:55.499+01:00");
  CHECK(stamp.text(first + seconds(10) - microseconds(1)) == "2024-03-31T03:00:05.500+01:00");
  CHECK(stamp.text(first + seconds(10)) == "2024-03-31T03:00:05.500+02:00");
  CHECK(stamp.text(first + seconds(10) + microseconds(1)) == "2024-03-31T03:00:05.500+02:00");
}

// spdlog looks the offset up again once 10 s have passed since it last did:
// that stays as it was.
TEST_CASE("local timestamp: a new UTC offset shows within 10 s", "[local_timestamp]") {
  TimeZone tz("CET-1CEST,M3.5.0,M10.5.0/3");
  LocalTimestamp stamp;
  // 2024-03-31 01:59:55.500 UTC+1; summer time starts 4.5 s later.
  CHECK(stamp.text(at(1711846795500)) == "2024-03-31T01:59:55.500+01:00");
  CHECK(stamp.text(at(1711846800000)) == "2024-03-31T03:00:00.000+01:00");
  CHECK(stamp.text(at(1711846805499)) == "2024-03-31T03:00:05.499+01:00");
  CHECK(stamp.text(at(1711846805500)) == "2024-03-31T03:00:05.500+02:00");
}
