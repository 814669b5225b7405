#pragma once
// The command line: what cutoff is asked to do, and every mistake in the
// asking, not only the first.

#include <optional>
#include <string>
#include <vector>

namespace cutoff {

// The --help text.
extern const char* const kUsage;

struct Options {
  std::optional<std::string> config_path;
  std::optional<std::string> listen;  // valid as parse_host_port reads it
  std::optional<std::string> admin;   // the same, or "off"
  // --report: the JUnit XML file written at exit (SPEC §12).
  std::optional<std::string> report_path;
  // `cutoff ca init DIR`: write a CA into DIR instead of serving.
  std::optional<std::string> ca_init_dir;
  bool check = false;
  bool help = false;
  bool version = false;
};

struct CommandLine {
  Options options;
  // Flags that cannot be read at all: unknown, missing their value, or a
  // flag with a value given twice.
  // cutoff prints these with the usage and exits 2.
  std::vector<std::string> usage_errors;
  // Flags read but with a bad value (`--listen nope`); reported with the
  // configuration's errors, exit 1. The flag is left unset.
  std::vector<std::string> value_errors;
};

// Reads `--flag VALUE` and `--flag=VALUE` alike. A value that starts with
// "--" is taken as the next flag, so that a forgotten value is reported
// instead of swallowing the flag after it. A command (`ca init DIR`) comes
// first, before any flag.
CommandLine parse_command_line(int argc, const char* const* argv);

}  // namespace cutoff
