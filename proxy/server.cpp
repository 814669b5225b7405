#include "cutoff/server.hpp"

#include <signal.h>
#include <spdlog/spdlog.h>

#include "cutoff/config_summary.hpp"
#include "cutoff/listener.hpp"
#include "cutoff/socket_address.hpp"

namespace cutoff {
namespace {

constexpr uint64_t kLogFlushMs = 100;

// The signals cutoff handles, by the names people send them with (strsignal
// would say "Terminated").
const char* signal_name(int signum) {
  switch (signum) {
    case SIGTERM:
      return "SIGTERM";
    case SIGINT:
      return "SIGINT";
    case SIGHUP:
      return "SIGHUP";
    case SIGUSR1:
      return "SIGUSR1";
    default:
      return "a signal";
  }
}

// What is set up once, at start-up: the listeners and the workers, the
// access log file, and each worker's c-ares channel (changing its servers
// would need every query in flight to end first). A reloaded config keeps
// the running values of these.
void keep_what_needs_a_restart(const Config& running, Config* loaded) {
  loaded->workers = running.workers;
  loaded->listen.address = running.listen.address;
  loaded->admin.address = running.admin.address;
  loaded->access_log = running.access_log;
  loaded->dns = running.dns;
}

}  // namespace

Server::Server(std::shared_ptr<const Config> config, std::shared_ptr<const TlsContexts> tls,
               std::string config_source, AccessLog& access_log, Reloader reloader)
    : config_(std::move(config)),
      tls_(std::move(tls)),
      config_source_(std::move(config_source)),
      access_log_(access_log),
      reloader_(std::move(reloader)),
      tests_(config_->tests) {
  init_error_ = uv_loop_init(&control_loop_);
  if (init_error_ != 0) return;
  control_loop_open_ = true;
  control_tasks_ = std::make_unique<TaskQueue>(&control_loop_);
  catch_signals();
  unsigned count = cutoff::worker_count(*config_).count;
  for (unsigned i = 0; i < count; ++i) {
    auto worker = std::make_unique<Worker>(config_, access_log_);
    if (worker->init_error() != 0) {
      // Most likely the descriptor limit; the workers made so far go too.
      init_error_ = worker->init_error();
      workers_.clear();
      return;
    }
    worker->reload(config_, tls_);
    worker->set_test_registry(&tests_);
    workers_.push_back(std::move(worker));
    workers_.back()->share_client_count(&client_count_);
  }
}

Server::~Server() {
  // run() returns once every worker has stopped; the threads only need
  // joining. Workers are then destroyed here, their loops idle.
  for (std::thread& thread : threads_) thread.join();
  workers_.clear();
  admin_.reset();
  signals_.clear();
  log_flush_timer_.reset();
  keepalive_.reset();
  control_tasks_.reset();
  if (!control_loop_open_) return;
  uv_run(&control_loop_, UV_RUN_DEFAULT);
  int rc = uv_loop_close(&control_loop_);
  if (rc != 0) spdlog::error("control loop closed with handles still open: {}", uv_strerror(rc));
}

// From construction on, not from run(): a SIGTERM sent as soon as the
// "listening" line appears must drain, not kill the process with the
// default action. Signals that arrive before run() wait in libuv's queue.
void Server::catch_signals() {
  for (int signum : {SIGTERM, SIGINT, SIGHUP, SIGUSR1}) {
    signals_.push_back(make_uv<uv_signal_t>());
    uv_signal_t* handle = signals_.back().get();
    uv_signal_init(&control_loop_, handle);
    handle->data = this;
    uv_signal_start(handle, on_signal, signum);
    uv_unref(uv_handle_of(handle));  // signals alone do not keep cutoff running
  }
}

int Server::listen(std::string* bound) {
  sockaddr_storage address{};
  int rc = resolve_listen_address(config_->listen.address, &address);
  if (rc != 0) return rc;
  // The workers' SO_REUSEPORT listeners would join those of another cutoff
  // on the same address (of the same user) without a word, and the kernel
  // would split the traffic between the two. A bind without SO_REUSEPORT
  // fails where anyone listens already; this catches that before the
  // workers bind, for one worker as for many.
  rc = probe_bind(address);
  if (rc != 0) return rc;
  bool shared = workers_.size() > 1;
  for (auto& worker : workers_) {
    sockaddr_storage actual{};
    rc = worker->listen(address, shared, &actual);
    if (rc != 0) return rc;
    // Port 0: the first worker's ephemeral port is the one all share.
    address = actual;
  }
  *bound = format_address(address);
  return 0;
}

int Server::listen_admin(std::string* bound) {
  bound->clear();
  if (config_->admin.address == "off") return 0;
  admin_ = std::make_unique<AdminServer>(&control_loop_, *this);
  int rc = admin_->listen(config_->admin.address, bound);
  if (rc != 0) admin_.reset();
  return rc;
}

void Server::run() {
  keepalive_ = make_uv<uv_async_t>();
  uv_async_init(&control_loop_, keepalive_.get(), nullptr);
  log_flush_timer_ = make_uv<uv_timer_t>();
  uv_timer_init(&control_loop_, log_flush_timer_.get());
  uv_timer_start(log_flush_timer_.get(), on_log_flush_timer, kLogFlushMs, kLogFlushMs);
  uv_unref(uv_handle_of(log_flush_timer_.get()));
  workers_running_ = workers_.size();
  for (auto& worker : workers_) {
    Worker* w = worker.get();
    threads_.emplace_back([this, w] {
      w->run();
      control_tasks_->post([this] { on_worker_finished(); });
    });
  }
  uv_run(&control_loop_, UV_RUN_DEFAULT);
}

void Server::on_worker_finished() {
  if (--workers_running_ > 0) return;
  // The last worker is done: let the control loop end too.
  if (admin_) admin_->close();
  keepalive_.reset();
  signals_.clear();
}

void Server::on_signal(uv_signal_t* handle, int signum) {
  auto* self = static_cast<Server*>(handle->data);
  switch (signum) {
    case SIGHUP:
      return self->reload();
    case SIGUSR1:
      spdlog::info("received SIGUSR1, reopening the access log");
      return self->reopen_access_log();
    default:
      if (self->draining_) {
        spdlog::info("received {} again, stopping now", signal_name(signum));
        return self->stop();
      }
      spdlog::info("received {}, draining for up to {}", signal_name(signum),
                   self->config_->drain_timeout.to_string());
      return self->drain();
  }
}

void Server::on_log_flush_timer(uv_timer_t*) {
  spdlog::default_logger_raw()->flush();
}

void Server::for_each_worker(std::function<void(Worker&)> action) {
  for (auto& worker : workers_) {
    Worker* w = worker.get();
    w->post([w, action] { action(*w); });
  }
}

void Server::drain() {
  draining_ = true;
  Duration timeout = config_->drain_timeout;
  for_each_worker([timeout](Worker& w) { w.drain(timeout); });
}

void Server::stop() {
  for_each_worker([](Worker& w) { w.stop(); });
}

void Server::reload() {
  std::optional<Config> loaded = reloader_();
  if (!loaded) {
    spdlog::error("reload refused ({} has errors); the running configuration stays",
                  config_source_);
    return;
  }
  // The CA and trust files are read again as well: a bad one refuses the
  // reload like a bad key would.
  std::string error;
  std::shared_ptr<const TlsContexts> tls = TlsContexts::for_config(*loaded, &error);
  if (!error.empty()) {
    spdlog::error("{}", error);
    spdlog::error("reload refused ({} has errors); the running configuration stays",
                  config_source_);
    return;
  }
  const ConfigSummary in_file = summarize(*loaded);
  keep_what_needs_a_restart(*config_, &*loaded);
  const ConfigSummary applied = summarize(*loaded);
  for (const std::string& change : config_changes(applied, in_file)) {
    spdlog::warn("reload {}: {} takes effect at the next start", config_source_, change);
  }
  std::vector<std::string> changes = config_changes(summarize(*config_), applied);
  spdlog::set_level(spdlog::level::from_str(loaded->log_level));
  config_ = std::make_shared<const Config>(std::move(*loaded));
  tls_ = std::move(tls);
  std::shared_ptr<const Config> config = config_;
  for_each_worker([config, tls = tls_](Worker& w) { w.reload(config, tls); });
  tests_.set_limits(config_->tests);
  spdlog::info("configuration reloaded from {}: {}", config_source_, join_changes(changes));
}

void Server::reopen_access_log() {
  std::shared_ptr<LineOutput> output = access_log_.reopen();
  if (!output) return;
  // Each worker writes what it holds to the old file, then moves on its
  // own thread; the old file is closed when the last one has moved, and
  // that is logged, so that rotation scripts (and tests) know when
  // nothing more goes to the old file.
  auto remaining = std::make_shared<size_t>(workers_.size());
  for_each_worker([this, output, remaining](Worker& w) {
    w.access_log().set_output(output);
    control_tasks_->post([remaining] {
      if (--*remaining == 0) spdlog::info("access log reopened by every worker");
    });
  });
}

std::vector<const Metrics*> Server::worker_metrics() const {
  std::vector<const Metrics*> all;
  for (const auto& worker : workers_) all.push_back(&worker->metrics());
  if (process_metrics_) all.push_back(process_metrics_.get());
  return all;
}

void Server::snapshot_connections(std::string only_test, std::function<void(std::string)> done) {
  // Each worker describes its own connections on its own thread; the parts
  // come back here and are joined once all have arrived.
  struct Gather {
    std::vector<std::string> parts;
    size_t remaining;
    std::function<void(std::string)> done;
  };
  auto gather = std::make_shared<Gather>();
  gather->parts.resize(workers_.size());
  gather->remaining = workers_.size();
  gather->done = std::move(done);
  for (size_t i = 0; i < workers_.size(); ++i) {
    Worker* w = workers_[i].get();
    w->post([this, w, i, gather, only_test] {
      std::string part;
      w->describe_connections(part, static_cast<int>(i), only_test);
      control_tasks_->post([i, gather, part = std::move(part)]() mutable {
        gather->parts[i] = std::move(part);
        if (--gather->remaining > 0) return;
        std::string all;
        for (const std::string& p : gather->parts) {
          if (p.empty()) continue;
          if (!all.empty()) all.push_back(',');
          all += p;
        }
        gather->done(std::move(all));
      });
    });
  }
}

}  // namespace cutoff
