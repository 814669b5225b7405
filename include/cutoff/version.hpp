#pragma once
// The version cutoff reports (`--version`, the first log line,
// cutoff_build_info): the project version in CMakeLists.txt.

namespace cutoff {

inline constexpr const char* kVersion = CUTOFF_VERSION;

}  // namespace cutoff
