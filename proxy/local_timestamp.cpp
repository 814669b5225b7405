#include "cutoff/local_timestamp.hpp"

#include <algorithm>

namespace cutoff {
namespace {

// spdlog's %z looks the UTC offset up again when this long has passed since
// it last did, at whatever line comes first.
constexpr std::chrono::seconds kZoneLookup(10);

}  // namespace

LocalTimestamp::LocalTimestamp()
    : date_("%Y-%m-%dT%H:%M:%S.", spdlog::pattern_time_type::local, ""),
      zone_("%z", spdlog::pattern_time_type::local, "") {}

std::string_view LocalTimestamp::text(std::chrono::system_clock::time_point time) {
  // Under load most lines fall in the millisecond of the line before.
  if (time >= shown_from_ && time < shown_until_) return {text_.data(), text_.size()};
  using std::chrono::duration_cast;
  using std::chrono::milliseconds;
  auto since_epoch = time.time_since_epoch();
  auto seconds = duration_cast<std::chrono::seconds>(since_epoch);
  if (seconds.count() != second_ || time - zone_looked_up_ >= kZoneLookup) {
    second_ = seconds.count();
    set_second(time);
  }
  // What spdlog's %e writes: the milliseconds into the second, three digits.
  auto ms = duration_cast<milliseconds>(since_epoch) - duration_cast<milliseconds>(seconds);
  unsigned millis = static_cast<unsigned>(ms.count());
  text_[ms_at_] = static_cast<char>('0' + millis / 100 % 10);
  text_[ms_at_ + 1] = static_cast<char>('0' + millis / 10 % 10);
  text_[ms_at_ + 2] = static_cast<char>('0' + millis % 10);
  // The same text stands until the next millisecond or the next look at the
  // offset. Before 1970 the casts above round towards the epoch, not down:
  // no time there shares a text this way.
  if (since_epoch.count() >= 0) {
    shown_from_ = std::chrono::system_clock::time_point(seconds + ms);
    shown_until_ = std::min(shown_from_ + milliseconds(1), zone_looked_up_ + kZoneLookup);
  }
  return {text_.data(), text_.size()};
}

// The first line of a second, or the line at which spdlog would look the
// offset up again: spdlog writes the date, time and offset of `time` around
// room for the milliseconds.
void LocalTimestamp::set_second(std::chrono::system_clock::time_point time) {
  if (time - zone_looked_up_ >= kZoneLookup) zone_looked_up_ = time;
  spdlog::details::log_msg msg("access", spdlog::level::info, "");
  msg.time = time;
  text_.clear();
  date_.format(msg, text_);
  ms_at_ = text_.size();
  text_.append(std::string_view("000"));
  zone_.format(msg, text_);
}

}  // namespace cutoff
