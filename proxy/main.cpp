// cutoff: an HTTP forward proxy that never lets a client hang.

#include <signal.h>
#include <spdlog/spdlog.h>
#include <uv.h>

#include <cstdio>
#include <cstring>
#include <memory>
#include <optional>
#include <string>

#include "cutoff/access_log.hpp"
#include "cutoff/config.hpp"
#include "cutoff/descriptors.hpp"
#include "cutoff/diagnostics_log.hpp"
#include "cutoff/metrics.hpp"
#include "cutoff/server.hpp"

namespace {

constexpr const char* kUsage =
    "usage: cutoff [--config FILE] [--check] [--listen HOST:PORT] [--admin HOST:PORT|off]\n"
    "\n"
    "  --config FILE       TOML configuration (default: built-in defaults,\n"
    "                      listening on 127.0.0.1:3128)\n"
    "  --check             validate the configuration and exit: 0 if valid,\n"
    "                      1 with every error as file:line:column otherwise\n"
    "  --listen HOST:PORT  listen here instead of [listen] address\n"
    "                      (port 0 picks a free port, logged at start-up)\n"
    "  --admin HOST:PORT   serve /healthz, /readyz, /metrics and /connections\n"
    "                      here instead of [admin] address; \"off\" disables\n"
    "  --help              this text\n";

struct Options {
  std::optional<std::string> config_path;
  std::optional<std::string> listen;
  std::optional<std::string> admin;
  bool check = false;
};

// Returns nullopt (after printing why) when the command line is unusable.
std::optional<Options> parse_options(int argc, char** argv) {
  Options options;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    auto value = [&]() -> std::optional<std::string> {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "cutoff: %s needs a value\n%s", arg.c_str(), kUsage);
        return std::nullopt;
      }
      return std::string(argv[++i]);
    };
    if (arg == "--help" || arg == "-h") {
      std::fputs(kUsage, stdout);
      std::exit(0);
    } else if (arg == "--check") {
      options.check = true;
    } else if (arg == "--config") {
      if (!(options.config_path = value())) return std::nullopt;
    } else if (arg == "--listen") {
      if (!(options.listen = value())) return std::nullopt;
    } else if (arg == "--admin") {
      if (!(options.admin = value())) return std::nullopt;
    } else {
      std::fprintf(stderr, "cutoff: unknown argument %s\n%s", arg.c_str(), kUsage);
      return std::nullopt;
    }
  }
  return options;
}

// --listen and --admin win over the file, at start-up and on every reload.
bool apply_overrides(const Options& options, cutoff::Config* config) {
  std::string host, error;
  uint16_t port;
  if (options.listen) {
    if (!cutoff::parse_host_port(*options.listen, &host, &port, &error)) {
      std::fprintf(stderr, "cutoff: --listen %s: %s\n", options.listen->c_str(), error.c_str());
      return false;
    }
    config->listen.address = *options.listen;
  }
  if (options.admin) {
    if (*options.admin != "off" && !cutoff::parse_host_port(*options.admin, &host, &port, &error)) {
      std::fprintf(stderr, "cutoff: --admin %s: %s\n", options.admin->c_str(), error.c_str());
      return false;
    }
    config->admin.address = *options.admin;
  }
  return true;
}

// Loads the configuration, or reports every error (to the error log once it
// runs, to stderr before) and returns nullopt.
std::optional<cutoff::Config> load(const Options& options, bool running) {
  cutoff::Config config = cutoff::default_config();
  if (options.config_path) {
    cutoff::ConfigResult result = cutoff::load_config_file(*options.config_path);
    if (auto* errors = std::get_if<std::vector<cutoff::ConfigError>>(&result)) {
      for (const cutoff::ConfigError& e : *errors) {
        if (running) {
          spdlog::error("{}", e.to_string());
        } else {
          std::fprintf(stderr, "%s\n", e.to_string().c_str());
        }
      }
      return std::nullopt;
    }
    config = std::get<cutoff::Config>(std::move(result));
  }
  if (!apply_overrides(options, &config)) return std::nullopt;
  return config;
}

}  // namespace

int main(int argc, char** argv) {
  std::optional<Options> options = parse_options(argc, argv);
  if (!options) return 2;
  std::optional<cutoff::Config> config = load(*options, /*running=*/false);
  if (!config) return 1;
  if (options->check) {
    std::printf("%s: configuration is valid\n",
                options->config_path ? options->config_path->c_str() : "(defaults)");
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
  cutoff::DescriptorLimit limit = cutoff::raise_descriptor_limit();
  if (limit.error != 0) {
    spdlog::warn("descriptor limit (RLIMIT_NOFILE) {}: cannot raise it: {}", limit.now,
                 uv_strerror(limit.error));
  } else if (limit.now != limit.before) {
    spdlog::info("descriptor limit (RLIMIT_NOFILE) raised from {} to {}", limit.before, limit.now);
  } else {
    spdlog::info("descriptor limit (RLIMIT_NOFILE) {}", limit.now);
  }
  const std::string listen_address = config->listen.address;
  const std::string admin_address = config->admin.address;
  // SIGHUP reads the file again; errors are logged and the old config stays.
  auto reload = [options = *options]() { return load(options, /*running=*/true); };
  cutoff::DescriptorReserve reserve(2);
  cutoff::Server server(std::make_shared<const cutoff::Config>(std::move(*config)), *access_log,
                        reload);
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
  spdlog::info("stopped");
  return 0;
}
