// An intercepting CONNECT (a route with tls = "intercept", SPEC §10): cutoff
// answers it at once, then meets the client's TLS handshake itself with a
// certificate minted for the CONNECT host. From the end of that handshake
// on, the connection is a keep-alive connection like any other, whose
// requests name their path only: each goes through every phase of a plain
// request, to the CONNECT's host and port, over cutoff's own TLS connection
// to it (session_upstream.cpp).

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "cutoff/session.hpp"
#include "cutoff/tls_contexts.hpp"
#include "cutoff/warning_tally.hpp"
#include "cutoff/worker.hpp"

namespace cutoff {
namespace {

constexpr std::string_view kConnectEstablished = "HTTP/1.1 200 Connection Established\r\n\r\n";

std::string origin_of(const Target& target) {
  bool v6 = target.host.find(':') != std::string::npos;
  std::string origin = v6 ? fmt::format("https://[{}]", target.host) : "https://" + target.host;
  if (target.port != 443) origin += fmt::format(":{}", target.port);
  return origin;
}

}  // namespace

void Session::intercept() {
  std::shared_ptr<const TlsContexts> tls = worker_.tls();
  if (tls == nullptr || tls->server() == nullptr) {
    // A config that intercepts always brings its CA (config.cpp); this is
    // the worker not having it, which must not pass silently.
    return reject(502, ProxyError::destination_unavailable,
                  fmt::format("route {} intercepts TLS but cutoff has no CA loaded ([tls] ca_cert)",
                              ex_->route.name));
  }
  interception_ = std::make_unique<Interception>(Interception{
      ex_->target.host, ex_->target.port, origin_of(ex_->target), tls, {}, ex_->test_id});
  send_to_client(kConnectEstablished.data(), kConnectEstablished.size());
  ex_->record.status = 200;
  ex_->response_started = true;
  enter(Phase::client_handshake);
  // The client may have sent its ClientHello right behind the CONNECT.
  std::string hello;
  hello.swap(ex_->stash);
  client_.start_tls(TlsLayer::accept(tls->server(), worker_.leaf_cache(), ex_->target.host), hello);
}

// The CONNECT's exchange ends with the client's handshake: logged with its
// SNI, and the connection waits for the first request inside.
void Session::on_client_handshake(int status) {
  const TlsLayer& tls = *client_.tls();
  if (status == 0) {
    interception_->sni = plausible_host_name(tls.server_name());
    ex_->record.sni = interception_->sni;
    ex_->record.outcome = Outcome::ok();
    log_exchange();
    if (worker_.draining()) return begin_closing();
    return next_request();
  }
  const TlsFailure& failure = tls.failure();
  if (failure.kind == TlsFailure::Kind::alert) {
    // Almost always a client that does not trust the CA yet. One tally for
    // the process: such a client fails at every connection.
    static WarningTally tally(60 * 1000);
    tally.add(1);
    int64_t seen = tally.take_due(static_cast<int64_t>(uv_now(worker_.loop())));
    if (seen > 0) {
      spdlog::warn(
          "{}: the client refused cutoff's certificate for {} ({}){}: it must trust the CA of "
          "[tls] ca_cert (cutoff ca init prints how)",
          client_name(), interception_->host, failure.reason,
          seen == 1 ? std::string() : fmt::format(", {} times since the last such warning", seen));
    }
  }
  end_client_handshake(Outcome::failed(failure.kind == TlsFailure::Kind::alert
                                           ? ProxyError::tls_alert_received
                                           : ProxyError::tls_protocol_error));
}

// No TLS came to speak HTTP in: the connection closes with whatever the
// handshake left to send (an alert), and a FIN.
void Session::end_client_handshake(Outcome outcome) {
  ex_->record.outcome = outcome;
  interception_->sni = plausible_host_name(client_.tls()->server_name());
  ex_->record.sni = interception_->sni;
  log_exchange();
  begin_closing();
}

}  // namespace cutoff
