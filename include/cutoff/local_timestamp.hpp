#pragma once
// The time at the start of each access-log line: local time with
// milliseconds and the UTC offset, "2024-05-06T07:08:09.123+02:00", as
// spdlog's pattern "%Y-%m-%dT%H:%M:%S.%e%z" writes it.
//
// Every line needs one, and all but the milliseconds change once a second:
// spdlog writes the rest once per second, and each line only puts its
// milliseconds in (or nothing, in the millisecond of the line before). The
// formatters live as long as the writer, so that the
// text is spdlog's to the byte, its habits included: the UTC offset is
// looked up again every 10 s, not at every line.

#include <spdlog/pattern_formatter.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <string_view>

namespace cutoff {

class LocalTimestamp {
 public:
  LocalTimestamp();
  LocalTimestamp(const LocalTimestamp&) = delete;
  LocalTimestamp& operator=(const LocalTimestamp&) = delete;

  // `time` as local time, "YYYY-MM-DDTHH:MM:SS.mmm+HH:MM"; valid until the
  // next call.
  std::string_view text(std::chrono::system_clock::time_point time);

 private:
  void set_second(std::chrono::system_clock::time_point time);

  spdlog::pattern_formatter date_;                        // "YYYY-MM-DDTHH:MM:SS."
  spdlog::pattern_formatter zone_;                        // "+HH:MM"
  int64_t second_ = std::numeric_limits<int64_t>::min();  // the second text_ shows
  // When zone_ last looked the offset up; it does again 10 s later.
  std::chrono::system_clock::time_point zone_looked_up_{std::chrono::seconds(0)};
  spdlog::memory_buf_t text_;  // date, three digits of milliseconds, zone
  size_t ms_at_ = 0;           // where the milliseconds go
  // The times text_ shows as it is: its millisecond, cut short by the next
  // look at the offset (empty at first).
  std::chrono::system_clock::time_point shown_from_{};
  std::chrono::system_clock::time_point shown_until_{};
};

}  // namespace cutoff
