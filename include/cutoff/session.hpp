#pragma once
// One client connection and the exchanges it carries: the proxy's state
// machine. Every phase (listed with its deadline in session_phase.hpp), the
// one deadline that guards it, and what happens when that deadline fires are
// in this class (see Session::enter() and on_deadline() in session.cpp).
//
// An idle keep-alive connection is most of the connections a busy proxy
// holds, so it holds little: its socket, its peer's address, and its place
// in the worker's keep-alive queue (keep_alive_queue.hpp), whose one timer
// guards every idle connection of the worker. What an exchange needs, its
// deadline included, is borrowed from the worker for as long as the
// exchange runs (exchange_state.hpp). The work of the phases is
// split by concern: session_request.cpp (the client's side of an exchange), session_upstream.cpp
// (reaching the upstream, the one safe retry), session_response.cpp, session_tunnel.cpp,
// session_interception.cpp (an intercepting CONNECT: the client's TLS handshake),
// session_parent.cpp (a parent proxy: which one, its CONNECT, its refusals),
// session_ending.cpp (failures, and handing the connection to the worker's ClosingSet) and
// session_report.cpp (access log, metrics, /connections).

#include <uv.h>

#include <list>
#include <memory>
#include <string>

#include "cutoff/config.hpp"
#include "cutoff/connect_race.hpp"
#include "cutoff/deadline.hpp"
#include "cutoff/exchange.hpp"
#include "cutoff/exchange_state.hpp"
#include "cutoff/http_parser.hpp"
#include "cutoff/http_rewrite.hpp"
#include "cutoff/resolver.hpp"
#include "cutoff/route.hpp"
#include "cutoff/session_phase.hpp"
#include "cutoff/tcp_socket.hpp"
#include "cutoff/tls_contexts.hpp"
#include "cutoff/upstream_pool.hpp"

namespace cutoff {

class Worker;

// Only SocketEvents is an interface of the session itself: the events of an
// exchange's parts reach it through the exchange state it borrows
// (exchange_listener.hpp).
class Session final : SocketEvents {
 public:
  explicit Session(Worker& worker);
  ~Session();
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  // Takes the connection waiting on `server`. False: nothing was accepted
  // (the session is then retired).
  bool accept(uv_stream_t* server, std::list<Session>::iterator self);
  std::list<Session>::iterator self() const { return self_; }
  // Worker drain: close if idle, else after the current exchange.
  void drain();
  // A deadline kept outside the session fired: the worker's drain_timeout,
  // or the keep-alive queue's client_keepalive_timeout. Ends the phase as
  // its own deadline would.
  void expire(const Expiry& expiry);
  // Worker shutdown: end everything now.
  void terminate();

  // Each phase names the deadline that guards it (session_phase.hpp);
  // enter() arms it. A connection that cutoff is done with leaves the
  // session for the worker's ClosingSet (closing.hpp), which flushes, FINs
  // and lingers under its own deadlines; the session then ends.
  using Phase = SessionPhase;
  // request_timeout caps every phase of an exchange from its request head
  // on, and tunnel_max_duration caps a tunnel; whichever of phase and cap
  // comes first fires.
  static std::string_view phase_name(Phase phase) { return cutoff::phase_name(phase); }
  Phase phase() const { return phase_; }
  // The invariant of SPEC §4: a live session always waits under a deadline,
  // its exchange's or, idle, the keep-alive queue's.
  bool deadline_armed() const;
  // Loop time the connection went idle (while idle): when the keep-alive
  // queue counts its client_keepalive_timeout from.
  uint64_t idle_since() const { return phase_started_at_; }
  // Appends this connection as a JSON object, for /connections.
  void describe(std::string& out, int worker_index, uint64_t now) const;
  // The test of the exchange under way (SPEC §12); empty when none.
  std::string_view test_id() const {
    return ex_ && phase_ != Phase::idle ? std::string_view(ex_->test_id) : std::string_view();
  }

 private:
  // --- SocketEvents ---
  void on_data(TcpSocket& socket, const char* data, size_t len) override;
  void on_read_end(TcpSocket& socket, int status) override;
  void on_connect(TcpSocket& socket, int status) override;
  void on_drained(TcpSocket& socket, int status) override;
  void on_shutdown(TcpSocket& socket, int status) override;
  void on_handshake(TcpSocket& socket, int status) override;
  // --- the exchange's parts, through its ExchangeListener ---
  friend class ExchangeListener;
  void on_deadline(const Expiry& expiry);
  void mark_deliveries();
  uint64_t deliveries_since_mark();
  void on_resolved(int status, const AddressList& addresses);
  void on_body(const char* data, size_t len);
  void on_race_won(TcpSocket winner, const sockaddr_in6& peer);
  void on_race_lost(int last_error);

  // --- phases ---
  void enter(Phase phase);
  void set_phase(Phase phase);
  void begin_exchange();
  void on_client_bytes(const char* data, size_t len);
  void parse_request_head(const char* data, size_t len);
  void refuse_tls_handshake();
  void on_request_head();
  TargetError parse_target(const MessageHead& head);
  bool client_allowed() const;  // listen.allow_clients, under the current config
  bool choose_route();
  bool read_cutoff_fields(const MessageHead& head);
  void choose_parent();
  RouteQuery route_query() const;
  bool take_pooled_upstream();
  bool route_by_address();
  RouteChoice route_for_address(const sockaddr* address) const;
  void open_upstream();
  void connect_upstream();
  void on_upstream_connected();
  void ask_parent_to_connect();
  void on_parent_answer(const char* data, size_t len);
  void fail_parent_refusal(const MessageHead& answer, std::string_view request);
  void use_upstream(const char* read_ahead, size_t len);
  void on_upstream_handshake(int status);
  UpstreamTransport upstream_transport() const;
  // Where the upstream connection goes: the parent proxy if there is one,
  // else the target.
  const std::string& hop_host() const;
  uint16_t hop_port() const;
  // The name resolved for the next hop, as sentences say it.
  std::string hop_name() const;
  // Whom a pooled connection serves: the target, or (plain HTTP through a
  // parent) the parent, whose connections carry requests for any target.
  const std::string& pool_host() const;
  uint16_t pool_port() const;
  void send_request_head();
  bool take_request_body_so_far();
  void forward_request_body(const char* data, size_t len);
  // The request head has gone to the upstream: body bytes follow it there.
  bool head_sent() const {
    return phase_ == Phase::sending_request || phase_ == Phase::awaiting_response ||
           phase_ == Phase::streaming;
  }
  void on_request_complete();
  void on_upstream_bytes(const char* data, size_t len);
  void relay_response(const char* data, size_t len);
  bool on_response_head();
  void on_response_complete(size_t trailing_bytes);
  void start_tunnel(const char* upstream_bytes, size_t len);
  void intercept();
  void on_client_handshake(int status);
  void end_client_handshake(Outcome outcome);
  void watch_client_hello(const char* data, size_t len);
  void end_hello_watch();
  void tunnel_half_close(TcpSocket& from);
  void next_request();
  void on_client_end(int status);
  void on_upstream_end(int status);

  // --- endings ---
  // Every failure ends here: logs, answers (or resets the client if the
  // response had started), tears the upstream down as the route says.
  void fail(Outcome outcome, ProxyError error, int status, std::string_view sentence,
            std::string_view extra_headers = {});
  void fail_timeout(const Expiry& expiry);
  void fail_request_head_timeout(const Expiry& expiry);
  void fail_upstream(ProxyError error, std::string_view sentence);
  void reject(int status, ProxyError error, std::string_view sentence);
  void client_gone();
  bool retry_on_fresh_connection();
  void teardown_upstream();
  // Hands the client connection to the worker's ClosingSet and ends.
  void begin_closing();
  void hand_over_client(Duration flush_idle);
  void end_tunnel(Outcome outcome);
  // The terminal step: nothing is left to wait for; the worker frees us.
  // `client_handed_over`: the client connection went to the ClosingSet,
  // which counts it until it is closed.
  void end(bool client_handed_over = false);
  void log_exchange();
  void record_request_line();
  void count_exchange();

  // --- helpers ---
  void keep_reading_client();
  void pause_if_backlogged(TcpSocket& writer, TcpSocket& reader);
  void pause_rate_if_download();
  void stash(const char* data, size_t len);
  void reclaim_stash(std::string& spent);
  // Sends to the client, after whatever is staged.
  void send_to_client(const char* data, size_t len);
  void flush_to_client();
  // "host:port" ("[v6]:port") of the target.
  std::string target_authority() const;
  // The target as sentences name it: its authority, and the parent proxy
  // it is reached through.
  std::string describe_target() const;
  // The deadline of the running exchange, which every phase but idle has
  // (see enter()).
  Deadline& deadline() { return ex_->deadline; }
  const Deadline& deadline() const { return ex_->deadline; }
  // The client's "ip:port", for logs: formatted into the exchange's state
  // when the exchange begins (an idle connection keeps only peer_).
  std::string_view client_name() const { return ex_->record.client; }
  std::string_view name_client() {
    if (ex_->client_name_of != id_) format_client_name();
    return ex_->client_name;
  }
  void format_client_name();
  std::string_view server_timing(char* buf, size_t size) const;
  int64_t since(uint64_t start) const;
  const RouteSettings& route() const { return *ex_->route.settings; }
  Duration limit(TimeoutName name, Duration configured) const;
  void arm(TimeoutName name, Duration configured);
  // The config of the running exchange; between exchanges, the worker's
  // current one (an idle connection pins no config across reloads).
  const Config& config() const;

  // Above this many bytes queued towards one side, cutoff stops reading the
  // other side until the queue drains: memory per connection stays bounded.
  static constexpr size_t kHighWater = 64 * 1024;

  Worker& worker_;
  std::list<Session>::iterator self_;
  uint64_t id_ = 0;
  uint64_t accepted_at_ = 0;
  TcpSocket client_;
  TcpSocket upstream_;
  Phase phase_ = Phase::ended;  // until accept() makes the connection ours
  // The peer's FIN (or reset) is in: a client that half-closed after its
  // request still gets its response (SPEC §7b); a tunnel ends when both are.
  bool client_eof_ = false;
  bool upstream_eof_ = false;
  sockaddr_in6 peer_{};  // holds a sockaddr_in or a sockaddr_in6: the client ACL's input

  // --- the current exchange, borrowed from the worker while one runs ---
  std::unique_ptr<ExchangeState> ex_;
  uint64_t phase_started_at_ = 0;

  // An intercepting CONNECT's destination, from its client's TLS handshake
  // on: every request read inside that TLS goes there (SPEC §10).
  struct Interception {
    std::string host;  // canonical (address.hpp)
    uint16_t port = 0;
    std::string origin;  // "https://host[:port]": what logs show before the path
    // The contexts it began with: a reload that drops [tls] leaves the
    // connections already intercepted working.
    std::shared_ptr<const TlsContexts> tls;
    std::string sni;  // the client's server name, as logs may show it (plausible_host_name)
    // The CONNECT's test id: the requests inside inherit it (SPEC §12).
    std::string test_id;
  };
  std::unique_ptr<Interception> interception_;
};

}  // namespace cutoff
