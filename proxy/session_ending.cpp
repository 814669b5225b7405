// How exchanges and connections end: failures answered or reset (SPEC §5,
// §6), a client that left, and the hand-over of the client connection to the
// worker's ClosingSet, which closes it without losing a byte (SPEC §7b).

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "cutoff/session.hpp"
#include "cutoff/socket_address.hpp"
#include "cutoff/worker.hpp"

namespace cutoff {

void Session::fail_timeout(const Expiry& expiry) {
  std::string value = expiry.value.to_string();
  std::string name(timeout_token(expiry.name));
  // A test that shortened it reads that it did.
  if (ex_->asked.any() && ex_->asked.asked(expiry.name) == expiry.value) {
    name += " from Cutoff-Timeout";
  }
  if (expiry.name == TimeoutName::drain_timeout) {
    // The shutdown ended it, not the phase's own deadline: say how long the
    // exchange really ran, which may be far more or less than drain_timeout.
    return fail(Outcome::timed_out(expiry.name), ProxyError::http_response_timeout, 504,
                fmt::format("cutoff is shutting down: the exchange with {} had run for {} ms "
                            "({}) when drain_timeout ({}) ended it (route {})",
                            describe_target(), since(ex_->started_at), phase_name(phase_), value,
                            ex_->route.name));
  }
  if (expiry.name == TimeoutName::min_rate) {
    // Too slow rather than too late: the sentence says how slow, so that
    // whoever reads it knows which min_rate to set on which route.
    return fail(
        Outcome::timed_out(expiry.name), ProxyError::http_response_timeout, 504,
        fmt::format("the {} {} moved fewer than {} in {} (min_rate {}, route {})",
                    phase_ == Phase::sending_request ? "request to" : "response from",
                    describe_target(), bytes_in_words(expiry.min_bytes), value,
                    MinRate::of(expiry.min_bytes, expiry.value).to_string(), ex_->route.name));
  }
  switch (phase_) {
    case Phase::resolving:
      return fail(Outcome::timed_out(expiry.name), ProxyError::dns_timeout, 504,
                  fmt::format("resolving {} timed out after {} ({}, route {})", hop_name(), value,
                              name, ex_->route.name));
    case Phase::upstream_handshake:
      return fail(Outcome::timed_out(expiry.name), ProxyError::connection_timeout, 504,
                  fmt::format("the TLS handshake with {} did not complete within {} ({}, route {})",
                              describe_target(), value, name, ex_->route.name));
    case Phase::connecting:
      if (ex_->awaiting_parent) {
        return fail(
            Outcome::timed_out(expiry.name), ProxyError::connection_timeout, 504,
            fmt::format("parent proxy {} did not answer CONNECT {} within {} ({}, route {})",
                        ex_->parent->url, target_authority(), value, name, ex_->route.name));
      }
      return fail(Outcome::timed_out(expiry.name), ProxyError::connection_timeout, 504,
                  fmt::format("connect to {} timed out after {} ({}, route {})", describe_target(),
                              value, name, ex_->route.name));
    case Phase::sending_request:
      return fail(Outcome::timed_out(expiry.name), ProxyError::http_response_timeout, 504,
                  fmt::format("the request to {} did not complete within {} ({}, route {})",
                              describe_target(), value, name, ex_->route.name));
    default:
      return fail(Outcome::timed_out(expiry.name), ProxyError::http_response_timeout, 504,
                  fmt::format("{} did not answer within {} ({}, route {})", describe_target(),
                              value, name, ex_->route.name));
  }
}

// request_header_timeout (or the drain) ended a head still on its way (the
// access log names it when its start line had arrived: record_request_line).
void Session::fail_request_head_timeout(const Expiry& expiry) {
  std::string sentence =
      expiry.name == TimeoutName::drain_timeout
          ? fmt::format(
                "cutoff is shutting down: the request head was still incomplete after {} ms "
                "when drain_timeout ({}) ended it",
                since(ex_->started_at), expiry.value.to_string())
          : fmt::format("the request head did not arrive within {}", expiry.value.to_string());
  fail(Outcome::timed_out(expiry.name), ProxyError::http_request_error, 408, sentence);
}

void Session::fail_upstream(ProxyError error, std::string_view sentence) {
  fail(Outcome::failed(error), error, error_status(error), sentence);
}

void Session::reject(int status, ProxyError error, std::string_view sentence) {
  fail(Outcome::failed(error), error, status, sentence);
}

void Session::fail(Outcome outcome, ProxyError error, int status, std::string_view sentence,
                   std::string_view extra_headers) {
  flush_to_client();
  ex_->record.outcome = outcome;
  // A test's report says why (SPEC §12); others have the access log.
  if (!ex_->test_id.empty()) ex_->failure.assign(sentence);
  teardown_upstream();
  if (ex_->response_started) {
    // The client already has part of a response: reset it, so that a
    // truncated body is never mistaken for a complete one.
    client_.abort();
    spdlog::debug("{}: response aborted: {}", client_name(), sentence);
  } else {
    std::string& out = worker_.scratch();
    out.clear();
    build_error_response(out, status, error, sentence, /*close=*/true, extra_headers,
                         ex_->request_parser.method() == HTTP_HEAD, ex_->parent_proxy_status);
    send_to_client(out.data(), out.size());
    ex_->record.status = status;
    spdlog::debug("{}: {} {}: {}", client_name(), status, error_token(error), sentence);
  }
  log_exchange();
  begin_closing();
}

// The client left (a reset, or a FIN before its request was whole) before
// its exchange ended; or, idle between exchanges, it reset the connection
// while the last response was still on its way to it.
void Session::client_gone() {
  if (!ex_) {
    client_.close();
    return end();
  }
  ex_->record.outcome = Outcome::client_aborted();
  teardown_upstream();
  client_.close();
  log_exchange();
  end();
}

// The client connection goes to the worker's ClosingSet: what is queued for
// the client is flushed under idle_timeout, then our FIN, then the client's
// FIN is awaited under linger_timeout, so that it reads its response rather
// than a reset caused by unread data.
void Session::begin_closing() {
  Duration flush_idle = ex_ ? route().idle_timeout : config().defaults.idle_timeout;
  hand_over_client(flush_idle);
  if (upstream_) upstream_.close();
  end(/*client_handed_over=*/true);
}

void Session::hand_over_client(Duration flush_idle) {
  // An idle connection has no exchange to take the client's name from.
  char name[kAddressTextSize];
  if (!ex_) format_address(reinterpret_cast<const sockaddr*>(&peer_), name, sizeof name);
  worker_.closings().close(std::move(client_), flush_idle, config().linger_timeout, client_eof_,
                           ClientTag{id_, std::string(ex_ ? client_name() : name), accepted_at_});
}

// Whatever the exchange still waits for (a lookup, a connect race) is
// dropped.
void Session::end(bool client_handed_over) {
  if (ex_ && ex_->lookup != nullptr) {
    worker_.resolver().cancel(ex_->lookup);
    ex_->lookup = nullptr;
  }
  if (ex_) ex_->race.cancel();
  enter(Phase::ended);
  worker_.retire(this, /*client_closed=*/!client_handed_over);
}

// Between exchanges a connection can go now; one in the middle of an
// exchange closes when its response is done (its head says so).
void Session::drain() {
  if (phase_ == Phase::idle) begin_closing();
}

void Session::expire(const Expiry& expiry) {
  on_deadline(expiry);
}

// Shutdown: everything ends now. A response cut short must not look
// complete to the client, so it gets a reset.
void Session::terminate() {
  bool responding = false;
  if (ex_ && phase_ != Phase::idle && phase_ != Phase::ended) {
    responding = ex_->response_started;
    if (!ex_->logged) {
      ex_->record.outcome = Outcome::stopped();
      if (!ex_->test_id.empty()) {
        ex_->failure = fmt::format(
            "cutoff was stopped at once (a second SIGTERM) while the exchange waited in phase "
            "{}, {} ms after it began",
            phase_name(phase_), since(ex_->started_at));
      }
      log_exchange();
    }
  }
  upstream_.abort();
  if (responding) {
    client_.abort();
  } else {
    client_.close();
  }
  end();
}

}  // namespace cutoff
