#pragma once
// The whole proxy process: N workers, each an event loop on its own thread
// with its own SO_REUSEPORT listener, and a control loop on the main thread
// that takes signals and serves the admin endpoint. Commands reach the
// workers only through their task queues.

#include <uv.h>

#include <atomic>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "cutoff/access_log.hpp"
#include "cutoff/admin_server.hpp"
#include "cutoff/admin_source.hpp"
#include "cutoff/config.hpp"
#include "cutoff/task_queue.hpp"
#include "cutoff/tls_contexts.hpp"
#include "cutoff/uv_handle.hpp"
#include "cutoff/worker.hpp"
#include "cutoff/worker_count.hpp"

namespace cutoff {

class Server final : public AdminSource {
 public:
  // `reload` loads the config again (SIGHUP); nullopt keeps the running one.
  using Reloader = std::function<std::optional<Config>()>;

  // `config_source` names where the config came from in reload lines: the
  // file as given, or "built-in defaults". `tls`: the config's TLS contexts
  // (TlsContexts::for_config), null when it needs none.
  Server(std::shared_ptr<const Config> config, std::shared_ptr<const TlsContexts> tls,
         std::string config_source, AccessLog& access_log, Reloader reload);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // 0, or the libuv error that kept the control loop or a worker's loop
  // from starting (UV_EMFILE: not enough descriptors for that many
  // workers). Nothing else may be called then.
  int init_error() const { return init_error_; }
  // The workers asked for, whether or not they could start.
  unsigned workers_wanted() const { return cutoff::worker_count(*config_).count; }
  // Binds every worker's listener; *bound is the address clients use.
  // UV_EADDRINUSE when anything else listens on the address already.
  int listen(std::string* bound);
  // Starts the admin endpoint on [admin] address unless it is "off"; *bound
  // is left empty then. Returns 0 or a libuv error.
  int listen_admin(std::string* bound);
  // Metrics counted outside the workers, shown in /metrics with theirs.
  void add_process_metrics(std::shared_ptr<const Metrics> metrics) {
    process_metrics_ = std::move(metrics);
  }
  uv_loop_t* control_loop() { return &control_loop_; }
  size_t worker_count() const { return workers_.size(); }
  // Runs the workers and the control loop until every worker has stopped
  // (after SIGTERM/SIGINT and draining).
  void run();

  // Control thread: the operations behind the signals.
  void drain();
  void stop();
  void reload();
  // SIGUSR1: every worker moves to the access log file opened again.
  void reopen_access_log();

  // AdminSource, on the control thread.
  bool ready() const override { return !draining_; }
  const std::vector<Cidr>& admin_allow_clients() const override {
    return config_->admin.allow_clients;
  }
  std::vector<const Metrics*> worker_metrics() const override;
  void snapshot_connections(std::string only_test, std::function<void(std::string)> done) override;
  TestRegistry& tests() override { return tests_; }

 private:
  void catch_signals();
  static void on_signal(uv_signal_t* handle, int signum);
  static void on_log_flush_timer(uv_timer_t* timer);
  void on_worker_finished();
  void for_each_worker(std::function<void(Worker&)> action);

  std::shared_ptr<const Config> config_;
  std::shared_ptr<const TlsContexts> tls_;
  std::string config_source_;
  AccessLog& access_log_;
  Reloader reloader_;
  uv_loop_t control_loop_;
  // Shared by the workers, who outlive none of it.
  TestRegistry tests_;
  std::vector<std::unique_ptr<Worker>> workers_;
  std::shared_ptr<const Metrics> process_metrics_;
  std::vector<std::thread> threads_;
  std::atomic<int64_t> client_count_{0};
  std::unique_ptr<TaskQueue> control_tasks_;
  // Keeps the control loop running while any worker runs; closed when the
  // last one finishes.
  UvPtr<uv_async_t> keepalive_;
  // Caught from construction on (see catch_signals()).
  std::vector<UvPtr<uv_signal_t>> signals_;
  // Armed by run(), repeating, closed with the server; it does not keep the
  // loop alive. Each expiry writes what the diagnostics log holds because
  // stderr was full at its last try.
  UvPtr<uv_timer_t> log_flush_timer_;
  std::unique_ptr<AdminServer> admin_;
  size_t workers_running_ = 0;
  int init_error_ = 0;
  bool control_loop_open_ = false;
  bool draining_ = false;
};

}  // namespace cutoff
