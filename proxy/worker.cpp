#include "cutoff/worker.hpp"

#include <spdlog/spdlog.h>
#include <sys/socket.h>

#include <cassert>
#include <cstdlib>
#include <cstring>

#include "cutoff/cares_resolver.hpp"
#include "cutoff/leaf_cache.hpp"
#include "cutoff/session.hpp"
#include "cutoff/socket_address.hpp"

namespace cutoff {
namespace {

constexpr int kBacklog = 1024;
constexpr uint64_t kAccessLogFlushMs = 100;

}  // namespace

Worker::Worker(std::shared_ptr<const Config> config, AccessLog& access_log)
    : config_(std::move(config)),
      pool_(&loop_, &metrics_),
      closings_(&loop_, &metrics_.closes_reset),
      listener_(&loop_, "proxy", [this](uv_stream_t* server) { accept_one(server); }),
      access_log_(access_log, &metrics_.log_lines_dropped),
      keep_alive_(&loop_, config_->listen.client_keepalive_timeout) {
  // The loop needs descriptors of its own (epoll, an eventfd, a signal
  // pipe): with too many workers for the descriptor limit this is where it
  // shows. Nothing else is set up then; the owner reads init_error().
  init_error_ = uv_loop_init(&loop_);
  if (init_error_ != 0) return;
  tasks_ = std::make_unique<TaskQueue>(&loop_);
  listener_.count_pauses(&metrics_.accept_pauses);
  resolver_ = std::make_unique<CaresResolver>(&loop_, config_->dns.servers);
  closings_.on_empty([this] { stop_if_drained(); });
  closings_.on_client_closed([this] { release_client(); });
  reaper_ = make_uv<uv_check_t>();
  uv_check_init(&loop_, reaper_.get());
  reaper_->data = this;
  uv_check_start(reaper_.get(), on_check);
  uv_unref(uv_handle_of(reaper_.get()));
#ifdef CUTOFF_DEADLINE_CHECKS
  invariant_ = make_uv<uv_prepare_t>();
  uv_prepare_init(&loop_, invariant_.get());
  invariant_->data = this;
  uv_prepare_start(invariant_.get(), on_prepare);
  uv_unref(uv_handle_of(invariant_.get()));
#endif
  flush_timer_ = make_uv<uv_timer_t>();
  uv_timer_init(&loop_, flush_timer_.get());
  flush_timer_->data = this;
  uv_timer_start(flush_timer_.get(), on_flush_timer, kAccessLogFlushMs, kAccessLogFlushMs);
  uv_unref(uv_handle_of(flush_timer_.get()));
}

Worker::~Worker() {
  if (init_error_ != 0) return;  // nothing was opened
  stop();
  retired_.clear();
  spare_exchanges_.clear();  // their deadlines' timers
  keep_alive_.close();
  resolver_.reset();  // a resolver may own handles of this loop
  tasks_.reset();
  reaper_.reset();
  invariant_.reset();
  flush_timer_.reset();
  closings_.reap();  // stop() reset them all
  // Let every close callback run, then the loop must be empty.
  uv_run(&loop_, UV_RUN_DEFAULT);
  int rc = uv_loop_close(&loop_);
  if (rc != 0) spdlog::error("event loop closed with handles still open: {}", uv_strerror(rc));
  access_log_.flush();
}

int Worker::listen(std::string* bound) {
  sockaddr_storage address{}, actual{};
  int rc = resolve_listen_address(config_->listen.address, &address);
  if (rc == 0) rc = listen(address, /*reuse_port=*/false, &actual);
  if (rc == 0) *bound = format_address(actual);
  return rc;
}

int Worker::listen(const sockaddr_storage& address, bool reuse_port, sockaddr_storage* bound) {
  return listener_.listen(address, reuse_port, kBacklog, bound);
}

void Worker::run() {
  uv_run(&loop_, UV_RUN_DEFAULT);
  tasks_->close();
}

void Worker::stop() {
  if (stopping_) return;
  stopping_ = true;
  listener_.close();
  drain_timer_.reset();
  uv_timer_stop(flush_timer_.get());
  // terminate() retires each session, moving it out of sessions_ (an idle
  // one out of keep_alive_ first).
  while (!sessions_.empty()) sessions_.front().terminate();
  while (!keep_alive_.items().empty()) keep_alive_.items().front().terminate();
  keep_alive_.close();
  // The exchanges of the sessions retired just now come back while the
  // loop winds down; return_exchange() lets them go.
  spare_exchanges_.clear();
  closings_.abort_all();
  pool_.clear();
  access_log_.flush();
}

// The action may end the session it is given, which moves it out of its
// list (into retired_, an idle one through sessions_): each step is taken
// before the action runs.
template <class Action>
void Worker::for_each_session(Action action) {
  for (auto it = sessions_.begin(); it != sessions_.end();) action(*it++);
  std::list<Session>& idle = keep_alive_.items();
  for (auto it = idle.begin(); it != idle.end();) action(*it++);
}

void Worker::drain(Duration timeout) {
  if (draining_ || stopping_) return;
  draining_ = true;
  listener_.close();
  pool_.clear();
  for_each_session([](Session& session) { session.drain(); });
  if (session_count() == 0 && closings_.size() == 0) return stop();
  drain_timeout_ = timeout;
  drain_timer_ = make_uv<uv_timer_t>();
  uv_timer_init(&loop_, drain_timer_.get());
  drain_timer_->data = this;
  uv_timer_start(drain_timer_.get(), on_drain_timeout, timeout.ms(), 0);
}

// What is still running when drain_timeout expires ends as if its own
// deadline had fired (SPEC §5): a stuck upstream is torn down, a client
// gets its 504 or, with a response under way, a reset; a connection still
// flushing to a client that stopped reading is reset. The worker stops once
// the last connection has closed (linger_timeout bounds that).
void Worker::on_drain_timeout(uv_timer_t* timer) {
  auto* self = static_cast<Worker*>(timer->data);
  spdlog::warn("drain_timeout: tearing down {} connection(s)", self->session_count());
  Expiry expiry{TimeoutName::drain_timeout, self->drain_timeout_};
  // First the connections that were already closing, then the exchanges:
  // the answers these produce (504s) get their own flush and linger.
  self->closings_.abort_flushing();
  self->for_each_session([&expiry](Session& session) { session.expire(expiry); });
  self->stop_if_drained();
}

std::unique_ptr<ExchangeState> Worker::borrow_exchange(Session& session) {
  if (spare_exchanges_.empty()) spare_exchanges_.push_back(std::make_unique<ExchangeState>(&loop_));
  std::unique_ptr<ExchangeState> exchange = std::move(spare_exchanges_.back());
  spare_exchanges_.pop_back();
  exchange->listener.lend_to(&session);
  exchange->deadline.listen(&exchange->listener);
  return exchange;
}

void Worker::return_exchange(std::unique_ptr<ExchangeState> exchange) {
  // Its timer may still be running: it wakes, finds nothing armed and calls
  // no one.
  exchange->deadline.disarm();
  exchange->deadline.listen(nullptr);
  exchange->listener.lend_to(nullptr);
  // Once stopping, the loop is winding down: the state goes, and its timer
  // with it.
  if (stopping_) return;
  // The parsers keep their buffers' capacity, which is the point; the rest
  // is reset when the state is lent again.
  exchange->stash.clear();
  exchange->body_ahead.clear();
  exchange->staged = 0;      // the scratch buffer is someone else's by now
  exchange->config.reset();  // a spare exchange pins no config
  spare_exchanges_.push_back(std::move(exchange));
}

void Worker::keep_alive(std::list<Session>::iterator session) {
  keep_alive_.push(sessions_, session);
}

void Worker::end_keep_alive(std::list<Session>::iterator session) {
  keep_alive_.take(sessions_, session);
}

uint64_t Worker::keep_alive_expiry(const Session& session) const {
  return keep_alive_.expires_at(session);
}

bool Worker::keep_alive_armed() const {
  return keep_alive_.armed();
}

void Worker::retire(Session* session, bool client_closed) {
  assert(session->phase() != Session::Phase::idle && "an idle session is in keep_alive_");
  retired_.splice(retired_.end(), sessions_, session->self());
  if (client_closed) release_client();
  stop_if_drained();
}

void Worker::release_client() {
  client_count_->fetch_sub(1, std::memory_order_relaxed);
  metrics_.client_connections.add(-1);
}

void Worker::stop_if_drained() {
  if (draining_ && !stopping_ && session_count() == 0 && closings_.size() == 0) stop();
}

void Worker::accept_one(uv_stream_t* server) {
  if (client_count_->load(std::memory_order_relaxed) >=
      static_cast<int64_t>(config_->listen.max_client_connections)) {
    // Over the cap: accept and close at once, so the client learns it now
    // and the listen queue never backs up.
    TcpSocket refused;
    if (refused.init(&loop_, &read_buffer_, nullptr) == 0) uv_accept(server, refused.stream());
    metrics_.client_connections_refused.add();
    return;
  }
  client_count_->fetch_add(1, std::memory_order_relaxed);
  metrics_.client_connections.add();
  sessions_.emplace_back(*this);
  auto it = std::prev(sessions_.end());
  if (!it->accept(server, it)) retire(&*it, /*client_closed=*/true);
}

void Worker::describe_connections(std::string& out, int worker_index, std::string_view only_test) {
  uint64_t now = uv_now(&loop_);
  if (!only_test.empty()) {
    // Only exchanges name a test: idle and closing connections have none.
    for (const Session& session : sessions_) {
      if (session.test_id() != only_test) continue;
      if (!out.empty()) out.push_back(',');
      session.describe(out, worker_index, now);
    }
    return;
  }
  for (const std::list<Session>* sessions : {&sessions_, &keep_alive_.items()}) {
    for (const Session& session : *sessions) {
      if (!out.empty()) out.push_back(',');
      session.describe(out, worker_index, now);
    }
  }
  closings_.describe(out, worker_index, now);
}

void Worker::on_check(uv_check_t* check) {
  auto* self = static_cast<Worker*>(check->data);
  self->retired_.clear();
  self->closings_.reap();
}

void Worker::on_prepare(uv_prepare_t* prepare) {
  auto* self = static_cast<Worker*>(prepare->data);
  for (const Session& session : self->sessions_) {
    if (session.phase() == Session::Phase::idle || !session.deadline_armed()) {
      spdlog::critical("invariant broken: a connection waits in phase {} with no deadline",
                       Session::phase_name(session.phase()));
      std::abort();
    }
  }
  for (const Session& session : self->keep_alive_.items()) {
    if (session.phase() != Session::Phase::idle || !session.deadline_armed()) {
      spdlog::critical("invariant broken: an idle connection waits in phase {} with no deadline",
                       Session::phase_name(session.phase()));
      std::abort();
    }
  }
  if (!self->closings_.all_armed()) {
    spdlog::critical("invariant broken: a closing connection waits with no deadline");
    std::abort();
  }
  if (!self->pool_.all_parked_armed()) {
    spdlog::critical("invariant broken: a pooled upstream connection waits with no deadline");
    std::abort();
  }
}

void Worker::on_flush_timer(uv_timer_t* timer) {
  static_cast<Worker*>(timer->data)->access_log_.flush();
}

void Worker::reload(std::shared_ptr<const Config> config, std::shared_ptr<const TlsContexts> tls) {
  config_ = std::move(config);
  // Idle connections follow the current config: each now expires the new
  // client_keepalive_timeout after it went idle.
  keep_alive_.set_timeout(config_->listen.client_keepalive_timeout);
  // Leaves minted by another CA would not verify against the new one.
  if (!tls || !tls_ || tls->authority() != tls_->authority()) leaves_.reset();
  tls_ = std::move(tls);
}

std::shared_ptr<LeafCache> Worker::leaf_cache() {
  // Enough for every host a test suite intercepts; a leaf is under 1 KiB.
  constexpr size_t kLeaves = 1024;
  if (!leaves_) leaves_ = std::make_shared<LeafCache>(tls_->authority(), kLeaves);
  return leaves_;
}

}  // namespace cutoff
