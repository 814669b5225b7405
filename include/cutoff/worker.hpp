#pragma once
// One event loop with its own listener, upstream pool, resolver and client
// sessions. Nothing here is shared with another worker, so several workers
// can each run a loop on their own thread with SO_REUSEPORT listeners.

#include <uv.h>

#include <atomic>
#include <functional>
#include <list>
#include <memory>
#include <string>

#include "cutoff/access_log.hpp"
#include "cutoff/closing.hpp"
#include "cutoff/config.hpp"
#include "cutoff/exchange_state.hpp"
#include "cutoff/http_rewrite.hpp"
#include "cutoff/keep_alive_queue.hpp"
#include "cutoff/listener.hpp"
#include "cutoff/metrics.hpp"
#include "cutoff/resolver.hpp"
#include "cutoff/task_queue.hpp"
#include "cutoff/tcp_socket.hpp"
#include "cutoff/test_registry.hpp"
#include "cutoff/tls_contexts.hpp"
#include "cutoff/upstream_pool.hpp"
#include "cutoff/uv_handle.hpp"

namespace cutoff {

class Session;

class Worker {
 public:
  // Resolves with c-ares on this worker's loop, using the [dns] servers of
  // `config`, unless set_resolver() puts another resolver in place before
  // run().
  Worker(std::shared_ptr<const Config> config, AccessLog& access_log);
  ~Worker();
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;
  // 0, or the libuv error that kept the event loop from starting (UV_EMFILE
  // when the process is out of descriptors); such a worker can only be
  // destroyed.
  int init_error() const { return init_error_; }

  // Binds and listens; returns 0 or a libuv error. With `reuse_port`
  // several workers listen on the same address (SO_REUSEPORT) and the
  // kernel spreads connections across them. *bound receives the address as
  // bound (the real port when the port was 0).
  int listen(const sockaddr_storage& address, bool reuse_port, sockaddr_storage* bound);
  // Listens on the configured [listen] address, alone.
  int listen(std::string* bound);
  // Runs the loop until stop() has closed everything; tasks posted after
  // that run on the poster's thread.
  void run();
  // Stops accepting and closes every connection; run() then returns.
  void stop();
  // Stops accepting; idle connections close now, the others after their
  // exchange. Whatever is left when `timeout` expires is torn down.
  void drain(Duration timeout);
  bool draining() const { return draining_; }
  // New exchanges use `config` and its TLS contexts (null when it needs
  // none); running ones keep theirs.
  void reload(std::shared_ptr<const Config> config, std::shared_ptr<const TlsContexts> tls);
  // Any thread: runs `task` on this worker's loop.
  void post(std::function<void()> task) { tasks_->post(std::move(task)); }
  // Appends one JSON object per open client connection, comma-separated,
  // for the admin's /connections (loop thread only). With `only_test`, only
  // the exchanges of that test (/tests/ID).
  void describe_connections(std::string& out, int worker_index, std::string_view only_test = {});
  // Where exchanges that name a test are kept (SPEC §12); none by default.
  void set_test_registry(TestRegistry* tests) { tests_ = tests; }
  TestRegistry* tests() { return tests_; }

  // Several workers count their clients together against
  // max_client_connections; by default a worker counts alone.
  void share_client_count(std::atomic<int64_t>* count) { client_count_ = count; }
  Metrics& metrics() { return metrics_; }
  const Metrics& metrics() const { return metrics_; }
  uint64_t next_session_id() { return ++last_session_id_; }

  uv_loop_t* loop() { return &loop_; }
  const std::shared_ptr<const Config>& config() const { return config_; }
  UpstreamPool& pool() { return pool_; }
  const std::shared_ptr<const TlsContexts>& tls() const { return tls_; }
  // The certificates this worker has minted for intercepted hosts, from the
  // current CA.
  std::shared_ptr<LeafCache> leaf_cache();
  // Connections on their way out (closing.hpp); a drain waits for them too.
  ClosingSet& closings() { return closings_; }
  ReadBuffer* read_buffer() { return &read_buffer_; }
  Resolver& resolver() { return *resolver_; }
  void set_resolver(std::unique_ptr<Resolver> resolver) { resolver_ = std::move(resolver); }
  // This worker's own access log writer (loop thread only; SIGUSR1's
  // reopen reaches it through post()).
  AccessLogWriter& access_log() { return access_log_; }
  // A buffer for composing heads and answers; send() copies what it keeps,
  // so it is free again as soon as the send returns.
  std::string& scratch() { return scratch_; }
  // The last authority of an absolute target parsed here (http_rewrite.hpp).
  AuthorityMemo& authority_memo() { return authority_memo_; }

  // Lends the state of an exchange (recycled: no allocation once warm) to
  // `session`, which its deadline and other parts report to.
  std::unique_ptr<ExchangeState> borrow_exchange(Session& session);
  // Takes it back, its deadline disarmed.
  void return_exchange(std::unique_ptr<ExchangeState> exchange);

  // A session going idle waits in the keep-alive queue, under
  // client_keepalive_timeout (keep_alive_queue.hpp), until it leaves the
  // idle phase.
  void keep_alive(std::list<Session>::iterator session);
  void end_keep_alive(std::list<Session>::iterator session);
  // When an idle session's keep-alive expires.
  uint64_t keep_alive_expiry(const Session& session) const;
  bool keep_alive_armed() const;

  // Frees a session on the next loop turn, never inside its own callback.
  // `client_closed`: its client connection is closed, rather than handed to
  // closings() (which then tells when it is gone).
  void retire(Session* session, bool client_closed);

 private:
  static void on_check(uv_check_t* check);
  static void on_prepare(uv_prepare_t* prepare);
  static void on_flush_timer(uv_timer_t* timer);
  static void on_drain_timeout(uv_timer_t* timer);
  void accept_one(uv_stream_t* server);
  // Calls `action` on every session, idle or not; it may end them.
  template <class Action>
  void for_each_session(Action action);
  size_t session_count() const { return sessions_.size() + keep_alive_.items().size(); }
  void stop_if_drained();
  void release_client();  // one client connection fewer

  uv_loop_t loop_;
  int init_error_ = 0;
  std::shared_ptr<const Config> config_;
  std::shared_ptr<const TlsContexts> tls_;
  std::shared_ptr<LeafCache> leaves_;  // made at the first interception
  TestRegistry* tests_ = nullptr;
  std::unique_ptr<Resolver> resolver_;
  ReadBuffer read_buffer_;
  Metrics metrics_;  // before the members that count into it
  UpstreamPool pool_;
  ClosingSet closings_;
  Listener listener_;
  UvPtr<uv_check_t> reaper_;  // frees retired sessions after each loop turn
  // Debug and test builds: before the loop blocks, every live session must
  // be waiting under an armed deadline, or the process aborts naming the
  // phase that waits without one.
  UvPtr<uv_prepare_t> invariant_;
  UvPtr<uv_timer_t> flush_timer_;  // flushes the access log a few times a second
  // Armed by drain() with drain_timeout; stopped when the last connection
  // is gone; its expiry tears down whatever is still running.
  UvPtr<uv_timer_t> drain_timer_;
  AccessLogWriter access_log_;  // counts its dropped lines in metrics_
  std::unique_ptr<TaskQueue> tasks_;
  std::atomic<int64_t> own_client_count_{0};
  std::atomic<int64_t>* client_count_ = &own_client_count_;
  uint64_t last_session_id_ = 0;
  std::vector<std::unique_ptr<ExchangeState>> spare_exchanges_;
  // The client sessions that are not idle; the idle ones wait in
  // keep_alive_. A session moves between the two as its phase changes.
  std::list<Session> sessions_;
  KeepAliveQueue<Session> keep_alive_;
  std::list<Session> retired_;
  std::string scratch_;
  AuthorityMemo authority_memo_;
  bool stopping_ = false;
  bool draining_ = false;
  Duration drain_timeout_;
};

}  // namespace cutoff
