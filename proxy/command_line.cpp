#include "cutoff/command_line.hpp"

#include <string_view>
#include <utility>

#include "cutoff/address.hpp"

namespace cutoff {

const char* const kUsage =
    "usage: cutoff [--config FILE] [--check] [--listen HOST:PORT] [--admin HOST:PORT|off]\n"
    "              [--report FILE]\n"
    "       cutoff ca init DIR\n"
    "       cutoff --version | --help\n"
    "\n"
    "  --config FILE       TOML configuration (default: built-in defaults,\n"
    "                      listening on 127.0.0.1:3128)\n"
    "  --check             validate the configuration and the flags and exit:\n"
    "                      0 if valid, 1 with every error otherwise (the access\n"
    "                      log file must be writable; nothing is created)\n"
    "  --listen HOST:PORT  listen here instead of [listen] address\n"
    "                      (port 0 picks a free port, logged at start-up;\n"
    "                      \":PORT\" is every IPv4 and IPv6 address)\n"
    "  --admin HOST:PORT   serve /healthz, /readyz, /metrics, /connections and\n"
    "                      /tests here instead of [admin] address; \"off\" disables\n"
    "  --report FILE       at exit, after the drain, write a JUnit XML report to\n"
    "                      FILE: a testcase per test id (Cutoff-Test-Id, or the\n"
    "                      proxy URL's user name), a failure per timeout or\n"
    "                      upstream error it met\n"
    "  --version           print \"cutoff VERSION\" and exit\n"
    "  --help              this text\n"
    "\n"
    "  ca init DIR         write a new CA for TLS interception into DIR\n"
    "                      (ca.pem, and ca-key.pem readable by you only;\n"
    "                      DIR is created if missing, an existing CA is never\n"
    "                      overwritten) and print how to use it\n"
    "\n"
    "Every flag with a value also takes it as --flag=VALUE.\n";

namespace {

enum class Flag { config, listen, admin, report, check, help, version, unknown };

Flag flag_named(std::string_view name) {
  if (name == "--config") return Flag::config;
  if (name == "--listen") return Flag::listen;
  if (name == "--admin") return Flag::admin;
  if (name == "--report") return Flag::report;
  if (name == "--check") return Flag::check;
  if (name == "--help" || name == "-h") return Flag::help;
  if (name == "--version") return Flag::version;
  return Flag::unknown;
}

bool takes_value(Flag flag) {
  return flag == Flag::config || flag == Flag::listen || flag == Flag::admin ||
         flag == Flag::report;
}

// Checks an address flag's value; the flag stays unset when it is bad.
void set_address(std::string_view name, std::string value, bool may_be_off,
                 std::optional<std::string>* flag, CommandLine* out) {
  std::string error;
  if (!(may_be_off && value == "off") && !parse_host_port(value, nullptr, nullptr, &error)) {
    out->value_errors.push_back(std::string(name) + " " + value + ": " + error);
    return;
  }
  *flag = std::move(value);
}

void set(Flag flag, std::string_view name, std::string value, CommandLine* out) {
  Options& o = out->options;
  std::optional<std::string>* slot = flag == Flag::config   ? &o.config_path
                                     : flag == Flag::listen ? &o.listen
                                     : flag == Flag::admin  ? &o.admin
                                     : flag == Flag::report ? &o.report_path
                                                            : nullptr;
  // The last of two would win silently: the first may be the one meant.
  if (slot && slot->has_value()) {
    out->usage_errors.push_back(std::string(name) + " is given twice (" + **slot + ", " + value +
                                ")");
    return;
  }
  bool* on = flag == Flag::check ? &o.check : flag == Flag::version ? &o.version : nullptr;
  if (on && *on) {
    out->usage_errors.push_back(std::string(name) + " is given twice");
    return;
  }
  switch (flag) {
    case Flag::config:
      o.config_path = std::move(value);
      return;
    case Flag::listen:
      return set_address(name, std::move(value), false, &o.listen, out);
    case Flag::admin:
      return set_address(name, std::move(value), true, &o.admin, out);
    case Flag::report:
      o.report_path = std::move(value);
      return;
    case Flag::check:
      o.check = true;
      return;
    case Flag::help:
      o.help = true;
      return;
    case Flag::version:
      o.version = true;
      return;
    case Flag::unknown:
      return;
  }
}

// Reads the command words at the start of argv, if any; the index of the
// first argument after them.
int parse_command(int argc, const char* const* argv, CommandLine* out) {
  if (argc < 2 || std::string_view(argv[1]) != "ca") return 1;
  if (argc < 3 || std::string_view(argv[2]).starts_with("--")) {
    out->usage_errors.push_back("ca needs a command: ca init DIR");
    return 2;
  }
  if (std::string_view(argv[2]) != "init") {
    out->usage_errors.push_back("unknown command ca " + std::string(argv[2]) +
                                " (known: ca init DIR)");
    return 3;
  }
  std::string_view dir = argc > 3 ? argv[3] : "";
  if (dir.empty() || dir.starts_with("--")) {
    out->usage_errors.push_back("ca init needs a directory: ca init DIR");
    // A flag in its place is still read as one; an empty word is not.
    return dir.starts_with("--") || argc < 4 ? 3 : 4;
  }
  out->options.ca_init_dir = std::string(dir);
  return 4;
}

// A flag beside a command that ignores it would be believed to do something.
void refuse_flags_beside_command(CommandLine* out) {
  const Options& o = out->options;
  if (!o.ca_init_dir) return;
  for (const auto& [given, name] :
       {std::pair{o.config_path.has_value(), "--config"},
        std::pair{o.listen.has_value(), "--listen"}, std::pair{o.admin.has_value(), "--admin"},
        std::pair{o.report_path.has_value(), "--report"}, std::pair{o.check, "--check"},
        std::pair{o.version, "--version"}}) {
    if (given) out->usage_errors.push_back(std::string(name) + " does not apply to ca init");
  }
}

}  // namespace

CommandLine parse_command_line(int argc, const char* const* argv) {
  CommandLine out;
  for (int i = parse_command(argc, argv, &out); i < argc; ++i) {
    std::string_view arg = argv[i];
    std::string_view name = arg;
    std::optional<std::string> value;
    if (size_t equals = arg.find('='); arg.starts_with("--") && equals != std::string_view::npos) {
      name = arg.substr(0, equals);
      value = std::string(arg.substr(equals + 1));
    }
    Flag flag = flag_named(name);
    if (flag == Flag::unknown) {
      out.usage_errors.push_back("unknown argument " + std::string(arg));
      continue;
    }
    if (!takes_value(flag)) {
      if (value) out.usage_errors.push_back(std::string(name) + " takes no value");
      set(flag, name, "", &out);
      continue;
    }
    if (!value && i + 1 < argc && !std::string_view(argv[i + 1]).starts_with("--")) {
      value = argv[++i];
    }
    if (!value || value->empty()) {
      out.usage_errors.push_back(std::string(name) + " needs a value");
      continue;
    }
    set(flag, name, std::move(*value), &out);
  }
  refuse_flags_beside_command(&out);
  return out;
}

}  // namespace cutoff
