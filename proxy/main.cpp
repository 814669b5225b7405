// cutoff: an HTTP forward proxy that never lets a client hang.

#include <signal.h>
#include <spdlog/spdlog.h>
#include <unistd.h>
#include <uv.h>

#include <cstdio>
#include <cstring>
#include <list>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "cutoff/access_log.hpp"
#include "cutoff/ca_init.hpp"
#include "cutoff/command_line.hpp"
#include "cutoff/config.hpp"
#include "cutoff/config_summary.hpp"
#include "cutoff/descriptors.hpp"
#include "cutoff/diagnostics_log.hpp"
#include "cutoff/metrics.hpp"
#include "cutoff/report_file.hpp"
#include "cutoff/server.hpp"
#include "cutoff/test_report.hpp"
#include "cutoff/tls_contexts.hpp"
#include "cutoff/version.hpp"
#include "cutoff/worker_count.hpp"
#include "cutoff/writable_file.hpp"

namespace {

// --listen and --admin win over the file, at start-up and on every reload.
// Their values were checked when the command line was read.
void apply_overrides(const cutoff::Options& options, cutoff::Config* config) {
  if (options.listen) config->listen.address = *options.listen;
  if (options.admin) config->admin.address = *options.admin;
}

// Loads the configuration, or appends every error to *errors and returns
// nullopt.
std::optional<cutoff::Config> load(const cutoff::Options& options,
                                   std::vector<std::string>* errors) {
  cutoff::Config config = cutoff::default_config();
  if (options.config_path) {
    cutoff::ConfigResult result = cutoff::load_config_file(*options.config_path);
    if (auto* found = std::get_if<std::vector<cutoff::ConfigError>>(&result)) {
      for (const cutoff::ConfigError& e : *found) errors->push_back(e.to_string());
      return std::nullopt;
    }
    config = std::get<cutoff::Config>(std::move(result));
  }
  apply_overrides(options, &config);
  return config;
}

// Where the configuration comes from, as start-up and reload lines say it.
std::string config_source(const cutoff::Options& options) {
  return options.config_path ? *options.config_path : "built-in defaults";
}

// --check opens nothing, so that it cannot create or truncate the access
// log; it only asks whether cutoff could open it.
void check_access_log(const cutoff::Config& config, const cutoff::Options& options,
                      std::vector<std::string>* errors) {
  const std::string& path = config.access_log.path;
  std::string why;
  if (path == "-" || cutoff::could_append_to(path, &why)) return;
  errors->push_back(
      cutoff::ConfigError{config_source(options), 0, 0,
                          "access_log.path \"" + path + "\" cannot be opened for appending: " + why}
          .to_string());
}

// --report must be writable before cutoff serves, not found unwritable at
// exit, when the suite's results are in it.
void check_report(const cutoff::Options& options, std::vector<std::string>* errors) {
  std::string why;
  if (!options.report_path || cutoff::could_write_report(*options.report_path, &why)) return;
  errors->push_back("cutoff: --report " + *options.report_path + " cannot be written: " + why);
}

// The JUnit report (SPEC §12), replaced whole (report_file.hpp).
bool write_report(const std::string& path, cutoff::TestRegistry& tests) {
  std::string xml;
  size_t count = 0;
  tests.with_all([&](const std::list<cutoff::TestRecord>& all, uint64_t forgotten) {
    xml = cutoff::junit_report(all, forgotten);
    count = all.size();
  });
  std::string why;
  if (cutoff::write_report_file(path, xml, &why)) {
    spdlog::info("report: {} test(s) written to {}", count, path);
    return true;
  }
  spdlog::error("report: cannot write {}: {}", path, why);
  return false;
}

// The first lines of the diagnostics log: the version, the configuration,
// the workers and why that many, and every bound that applies.
void log_startup(const cutoff::Config& config, const cutoff::Options& options) {
  spdlog::info("cutoff {} starting (pid {})", cutoff::kVersion, getpid());
  std::string flags;
  if (options.listen) flags += " --listen " + *options.listen;
  if (options.admin) flags += " --admin " + *options.admin;
  spdlog::info("configuration: {}{}", config_source(options),
               flags.empty() ? "" : ", overridden by" + flags);
  cutoff::WorkerCount workers = cutoff::worker_count(config);
  spdlog::info("workers: {} ({})", workers.count, workers.reason);
  for (const std::string& line : cutoff::startup_lines(cutoff::summarize(config))) {
    spdlog::info("deadlines {}", line);
  }
}

void log_descriptor_limit() {
  cutoff::DescriptorLimit limit = cutoff::raise_descriptor_limit();
  if (limit.error != 0) {
    spdlog::warn("descriptor limit (RLIMIT_NOFILE) {}: cannot raise it: {}", limit.now,
                 uv_strerror(limit.error));
  } else if (limit.now != limit.before) {
    spdlog::info("descriptor limit (RLIMIT_NOFILE) raised from {} to {}", limit.before, limit.now);
  } else {
    spdlog::info("descriptor limit (RLIMIT_NOFILE) {}", limit.now);
  }
}

}  // namespace

int main(int argc, char** argv) {
  const cutoff::CommandLine command_line = cutoff::parse_command_line(argc, argv);
  const cutoff::Options& options = command_line.options;
  // A flag that cannot be read is reported even beside --help or --version:
  // a script that passes it believes it does something.
  if (!command_line.usage_errors.empty()) {
    for (const std::string& e : command_line.usage_errors)
      std::fprintf(stderr, "cutoff: %s\n", e.c_str());
    std::fputs(cutoff::kUsage, stderr);
    return 2;
  }
  if (options.help) {
    std::fputs(cutoff::kUsage, stdout);
    return 0;
  }
  if (options.version) {
    std::printf("cutoff %s\n", cutoff::kVersion);
    return 0;
  }
  if (options.ca_init_dir) return cutoff::run_ca_init(*options.ca_init_dir, stdout, stderr);
  // Every error at once: the flags', the file's, and (for --check) whether
  // the access log could be opened.
  std::vector<std::string> errors;
  for (const std::string& e : command_line.value_errors) errors.push_back("cutoff: " + e);
  std::optional<cutoff::Config> config = load(options, &errors);
  if (config && options.check) check_access_log(*config, options, &errors);
  check_report(options, &errors);
  std::shared_ptr<const cutoff::TlsContexts> tls;
  if (config) {
    std::string error;
    tls = cutoff::TlsContexts::for_config(*config, &error);
    if (!error.empty()) errors.push_back(error);
  }
  if (!errors.empty()) {
    for (const std::string& e : errors) std::fprintf(stderr, "%s\n", e.c_str());
    return 1;
  }
  if (options.check) {
    std::printf("%s: configuration is valid\n",
                options.config_path ? options.config_path->c_str() : "(defaults)");
    return 0;
  }

  // What no worker counts: the diagnostics log's dropped lines. Shared with
  // the logger, which may outlive the server.
  auto process_metrics = std::make_shared<cutoff::Metrics>();
  std::string note;
  auto logger = cutoff::make_diagnostics_logger(process_metrics, &note);
  logger->set_pattern("%Y-%m-%dT%H:%M:%S.%e%z %l %v");
  spdlog::set_default_logger(logger);
  spdlog::set_level(spdlog::level::from_str(config->log_level));
  log_startup(*config, options);
  if (!note.empty()) spdlog::warn("diagnostics: {}", note);
  // Writes to a vanished peer must fail with EPIPE, not kill the process.
  signal(SIGPIPE, SIG_IGN);

  std::unique_ptr<cutoff::AccessLog> access_log;
  try {
    access_log = std::make_unique<cutoff::AccessLog>(config->access_log);
  } catch (const std::exception& e) {
    spdlog::critical("{}", e.what());
    return 1;
  }
  log_descriptor_limit();
  const std::string listen_address = config->listen.address;
  const std::string admin_address = config->admin.address;
  // SIGHUP reads the file again; errors are logged and the old config stays.
  auto reload = [options]() {
    std::vector<std::string> reload_errors;
    std::optional<cutoff::Config> loaded = load(options, &reload_errors);
    for (const std::string& e : reload_errors) spdlog::error("{}", e);
    return loaded;
  };
  cutoff::DescriptorReserve reserve(2);
  cutoff::Server server(std::make_shared<const cutoff::Config>(std::move(*config)), tls,
                        config_source(options), *access_log, reload);
  auto cannot_start = [&server, &reserve](int error) {
    reserve.release();
    unsigned n = server.workers_wanted();
    spdlog::critical("cannot start {} worker{}: {}", n, n == 1 ? "" : "s",
                     cutoff::describe_error(error));
    return 1;
  };
  if (server.init_error() != 0) return cannot_start(server.init_error());
  server.add_process_metrics(process_metrics);
  std::string bound;
  int rc = server.listen(&bound);
  // Each worker's listener takes descriptors too: when they run out here,
  // the number of workers is what does not fit.
  if (cutoff::out_of_descriptors(rc)) return cannot_start(rc);
  if (rc != 0) {
    spdlog::critical("cannot listen on {}: {}", listen_address, uv_strerror(rc));
    return 1;
  }
  spdlog::info("listening on {} with {} worker(s)", bound, server.worker_count());
  std::string admin_bound;
  rc = server.listen_admin(&admin_bound);
  if (rc != 0) {
    spdlog::critical("cannot listen on {} (admin): {}", admin_address, cutoff::describe_error(rc));
    return 1;
  }
  if (!admin_bound.empty()) spdlog::info("admin listening on {}", admin_bound);
  server.run();
  bool reported = !options.report_path || write_report(*options.report_path, server.tests());
  spdlog::info("stopped");
  return reported ? 0 : 1;
}
