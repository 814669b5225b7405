#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "cutoff/command_line.hpp"

using namespace cutoff;

namespace {

CommandLine parse(std::vector<const char*> args) {
  args.insert(args.begin(), "cutoff");
  return parse_command_line(static_cast<int>(args.size()), args.data());
}

}  // namespace

TEST_CASE("flags take their value after a space or after =") {
  for (const auto& args : {std::vector<const char*>{"--config", "a.toml", "--listen", ":0"},
                           std::vector<const char*>{"--config=a.toml", "--listen=:0"}}) {
    const CommandLine cl = parse(args);
    CHECK(cl.usage_errors.empty());
    CHECK(cl.value_errors.empty());
    CHECK(cl.options.config_path == "a.toml");
    CHECK(cl.options.listen == ":0");
  }
  const CommandLine cl = parse({"--check", "--admin=off", "--version", "--help"});
  CHECK(cl.options.check);
  CHECK(cl.options.admin == "off");
  CHECK(cl.options.version);
  CHECK(cl.options.help);
}

TEST_CASE("every flag error is reported, not only the first") {
  const CommandLine cl = parse({"--bogus", "--config", "--check=yes", "--listen", "nope",
                                "--admin=127.0.0.1:x", "--config="});
  CHECK(cl.usage_errors ==
        std::vector<std::string>{"unknown argument --bogus", "--config needs a value",
                                 "--check takes no value", "--config needs a value"});
  REQUIRE(cl.value_errors.size() == 2);
  CHECK(cl.value_errors[0].rfind("--listen nope: ", 0) == 0);
  CHECK(cl.value_errors[1].rfind("--admin 127.0.0.1:x: ", 0) == 0);
  CHECK_FALSE(cl.options.listen);
  CHECK_FALSE(cl.options.admin);
}

TEST_CASE("a missing value does not swallow the next flag") {
  const CommandLine cl = parse({"--listen", "--check"});
  CHECK(cl.usage_errors == std::vector<std::string>{"--listen needs a value"});
  CHECK(cl.options.check);
}

TEST_CASE("a flag with a value given twice is an error, not the last one winning") {
  const CommandLine cl = parse({"--config", "a.toml", "--config=b.toml", "--listen", ":1",
                                "--listen", ":2", "--admin=off", "--admin", "off"});
  CHECK(cl.usage_errors == std::vector<std::string>{"--config is given twice (a.toml, b.toml)",
                                                    "--listen is given twice (:1, :2)",
                                                    "--admin is given twice (off, off)"});
  CHECK(cl.options.config_path == "a.toml");
  CHECK(parse({"--check", "--check"}).usage_errors ==
        std::vector<std::string>{"--check is given twice"});
}

TEST_CASE("ca init DIR is a command, read before any flag") {
  const CommandLine cl = parse({"ca", "init", "some/dir"});
  CHECK(cl.usage_errors.empty());
  CHECK(cl.value_errors.empty());
  CHECK(cl.options.ca_init_dir == "some/dir");
  CHECK_FALSE(parse({"--check"}).options.ca_init_dir);
  // --help still explains instead of acting.
  const CommandLine help = parse({"ca", "init", "d", "--help"});
  CHECK(help.usage_errors.empty());
  CHECK(help.options.help);
}

TEST_CASE("ca without a known command or a directory is a usage error") {
  CHECK(parse({"ca"}).usage_errors == std::vector<std::string>{"ca needs a command: ca init DIR"});
  CHECK(parse({"ca", "--check"}).usage_errors ==
        std::vector<std::string>{"ca needs a command: ca init DIR"});
  CHECK(parse({"ca", "create", "d"}).usage_errors ==
        std::vector<std::string>{"unknown command ca create (known: ca init DIR)",
                                 "unknown argument d"});
  for (const auto& args :
       {std::vector<const char*>{"ca", "init"}, std::vector<const char*>{"ca", "init", ""},
        std::vector<const char*>{"ca", "init", "--help"}}) {
    const CommandLine cl = parse(args);
    CHECK(cl.usage_errors == std::vector<std::string>{"ca init needs a directory: ca init DIR"});
    CHECK_FALSE(cl.options.ca_init_dir);
  }
  // The words are a command only in front.
  CHECK(parse({"--check", "ca", "init", "d"}).usage_errors ==
        std::vector<std::string>{"unknown argument ca", "unknown argument init",
                                 "unknown argument d"});
}

TEST_CASE("ca init refuses flags it would ignore") {
  const CommandLine cl =
      parse({"ca", "init", "d", "--config", "a.toml", "--listen=:0", "--check", "--version"});
  CHECK(cl.usage_errors == std::vector<std::string>{"--config does not apply to ca init",
                                                    "--listen does not apply to ca init",
                                                    "--check does not apply to ca init",
                                                    "--version does not apply to ca init"});
  CHECK(parse({"ca", "init", "d", "extra"}).usage_errors ==
        std::vector<std::string>{"unknown argument extra"});
}

TEST_CASE("--report names the JUnit file written at exit") {
  for (const auto& args : {std::vector<const char*>{"--report", "out/cutoff.xml"},
                           std::vector<const char*>{"--report=out/cutoff.xml"}}) {
    const CommandLine cl = parse(args);
    CHECK(cl.usage_errors.empty());
    CHECK(cl.value_errors.empty());
    CHECK(cl.options.report_path == "out/cutoff.xml");
  }
  CHECK_FALSE(parse({"--check"}).options.report_path);
  // Beside the other flags, in any order.
  const CommandLine cl = parse({"--listen", ":0", "--report", "r.xml", "--config=a.toml"});
  CHECK(cl.usage_errors.empty());
  CHECK(cl.options.report_path == "r.xml");
  CHECK(cl.options.listen == ":0");
  CHECK(cl.options.config_path == "a.toml");
}

TEST_CASE("--report needs a value, once") {
  CHECK(parse({"--report"}).usage_errors == std::vector<std::string>{"--report needs a value"});
  CHECK(parse({"--report="}).usage_errors == std::vector<std::string>{"--report needs a value"});
  const CommandLine missing = parse({"--report", "--check"});
  CHECK(missing.usage_errors == std::vector<std::string>{"--report needs a value"});
  CHECK_FALSE(missing.options.report_path);
  CHECK(missing.options.check);
  const CommandLine twice = parse({"--report", "a.xml", "--report=b.xml"});
  CHECK(twice.usage_errors == std::vector<std::string>{"--report is given twice (a.xml, b.xml)"});
  CHECK(twice.options.report_path == "a.xml");
}

TEST_CASE("ca init refuses --report") {
  CHECK(parse({"ca", "init", "d", "--report", "r.xml"}).usage_errors ==
        std::vector<std::string>{"--report does not apply to ca init"});
  CHECK(parse({"ca", "init", "d", "--admin=off", "--report=r.xml", "--check"}).usage_errors ==
        std::vector<std::string>{"--admin does not apply to ca init",
                                 "--report does not apply to ca init",
                                 "--check does not apply to ca init"});
}
