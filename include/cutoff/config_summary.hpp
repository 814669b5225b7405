#pragma once
// A Config flattened into ordered "key = value" entries, the one reading of
// a config that people see: start-up logs the bounds every route runs
// under from it, and a reload compares two of them to say which keys
// changed. The tables in config_summary.cpp list every key once, so a new
// config key is one line there.

#include <string>
#include <vector>

#include "cutoff/config.hpp"

namespace cutoff {

struct SummaryEntry {
  // "" for top-level keys, else "listen", "admin", "access_log", "dns",
  // "defaults" or `route "NAME"`.
  std::string section;
  std::string name;  // "idle_timeout"
  // As logged, without spaces: "60s", "[443,8443]", "{host=*.example.com}".
  std::string value;
  // Compared on reload but never logged (credentials); empty for most keys.
  std::string hidden;
  // Whether start-up lists it on its section's line: the bounds on waits,
  // and what a route matches and does.
  bool on_startup_line = false;

  // "defaults.idle_timeout", `route "api".match`, "workers".
  std::string key() const;
};

using ConfigSummary = std::vector<SummaryEntry>;

// Every key of the config in file order: top-level keys, [listen], [admin],
// [access_log], [dns], [defaults], then each [[route]] with its effective
// (inherited or own) settings.
ConfigSummary summarize(const Config& config);

// One line per section with bounds, "[defaults]: ...", then each route by
// name in file order, then "[listen]: ..." and "global: ...", each listing
// its entries as key=value.
std::vector<std::string> startup_lines(const ConfigSummary& summary);

// What differs from `before` to `after`, in order: "KEY OLD -> NEW",
// "KEY changed" (hidden values), `route "NAME" added`, `route "NAME"
// removed`, "route order [a,b] -> [b,a]". A route key that followed
// [defaults] before and after is left out: the [defaults] change says it.
// Empty when nothing changed.
std::vector<std::string> config_changes(const ConfigSummary& before, const ConfigSummary& after);

// "a, b, c"; "no change" for none.
std::string join_changes(const std::vector<std::string>& changes);

}  // namespace cutoff
