// Relaying the response: its head (rewritten for the client), its body as
// it comes, and what becomes of both connections when it is complete.

#include <fmt/format.h>

#include "cutoff/session.hpp"
#include "cutoff/worker.hpp"

namespace cutoff {

void Session::on_upstream_bytes(const char* data, size_t len) {
  if (ex_->awaiting_parent) return on_parent_answer(data, len);
  relay_response(data, len);
  // The response head and the body bytes that came with it leave in one write.
  flush_to_client();
}

void Session::relay_response(const char* data, size_t len) {
  switch (phase_) {
    case Phase::tls_handshake:
    case Phase::tunnelling:
      if (ex_->watching_hello || phase_ == Phase::tls_handshake) end_hello_watch();
      deadline().arrived(0);  // tunnels have no min_rate
      send_to_client(data, len);
      return pause_if_backlogged(client_, upstream_);
    case Phase::sending_request:
    case Phase::awaiting_response:
    case Phase::streaming:
      break;
    default:
      return;  // a graceful teardown discards what the upstream still sends
  }
  if (ex_->record.first_byte_ms == kNoTime) ex_->record.first_byte_ms = since(ex_->started_at);
  for (;;) {
    size_t used = 0;
    uint64_t body_before = ex_->response_parser.body_bytes();
    HttpParser::Event event = ex_->response_parser.feed(data, len, &used);
    // Body bytes pass through as they came, framing and all, unless the
    // parser decodes them for an HTTP/1.0 client (on_body).
    bool body_bytes =
        event == HttpParser::Event::need_more || event == HttpParser::Event::message_complete;
    if (body_bytes && ex_->response_started && used > 0 &&
        ex_->plan.framing != BodyFraming::dechunk) {
      send_to_client(data, used);
    }
    // min_rate counts the payload: a drip of chunk framing is no progress.
    // (A feed of nothing, after a head that ended the read, moved nothing.)
    if (used > 0) deadline().arrived(ex_->response_parser.body_bytes() - body_before);
    switch (event) {
      case HttpParser::Event::need_more:
        return pause_if_backlogged(client_, upstream_);
      case HttpParser::Event::head:
        if (!on_response_head()) return;
        break;
      case HttpParser::Event::message_complete:
        if (ex_->response_started) return on_response_complete(len - used);
        break;  // an interim 1xx ended; the real response follows
      case HttpParser::Event::upgrade:
        if (!on_response_head()) return;
        return start_tunnel(data + used, len - used);
      case HttpParser::Event::error:
        return fail_upstream(
            ProxyError::http_protocol_error,
            fmt::format("{} sent an invalid response: {} (route {})", describe_target(),
                        ex_->response_parser.error_reason(), ex_->route.name));
    }
    data += used;
    len -= used;
  }
}

// Sends the response head on to the client. False if the exchange failed.
bool Session::on_response_head() {
  const MessageHead& response = ex_->response_parser.head();
  const MessageHead& request = ex_->request_parser.head();
  int status = response.status();
  bool upgrading = status == 101 && ex_->is_upgrade && ex_->response_parser.upgrade_requested();
  // The parent wants credentials from cutoff, not from the client, which
  // would take a 407 as cutoff's own. (Inside TLS through a parent, the
  // answer is the origin's.)
  if (status == 407 && ex_->parent && !ex_->target.tls) {
    fail_parent_refusal(response, fmt::format("{} to {}", request.method(), target_authority()));
    return false;
  }
  if (status == 101 && !upgrading) {
    fail_upstream(ProxyError::http_protocol_error,
                  fmt::format("{} switched protocols without being asked to (route {})",
                              describe_target(), ex_->route.name));
    return false;
  }
  // The head is staged, not sent: it leaves with the first body bytes.
  std::string& out = worker_.scratch();
  if (ex_->staged == 0) out.clear();
  ResponseRewrite rewrite;
  rewrite.via = config().listen.via;
  rewrite.client_http10 = request.http10();
  rewrite.upstream = ex_->response_parser.framing();
  if (status < 200 && !upgrading) {
    // Interim responses (100 Continue, 103 Early Hints with its Link
    // fields) reach HTTP/1.1 clients only.
    if (!request.http10()) {
      rewrite.interim = true;
      build_response_head(out, response, rewrite);
      ex_->staged = out.size();
    }
    return true;
  }
  ResponseFacts facts;
  facts.client_http10 = request.http10();
  // The head says Connection: close whenever the connection will end after
  // this response: a client that half-closed, or a worker that drains.
  facts.client_wants_keep_alive = ex_->request_keep_alive && ex_->request_done &&
                                  !ex_->is_upgrade && !client_eof_ && !worker_.draining();
  facts.upstream = rewrite.upstream;
  ex_->plan = plan_response(facts);
  ex_->response_parser.set_body_sink(ex_->plan.framing == BodyFraming::dechunk ? &ex_->listener
                                                                               : nullptr);
  char timing[160];
  rewrite.extra_headers =
      config().listen.server_timing ? server_timing(timing, sizeof timing) : std::string_view();
  rewrite.upgrade = upgrading;
  rewrite.plan = ex_->plan;
  build_response_head(out, response, rewrite);
  ex_->staged = out.size();
  ex_->record.status = status;
  ex_->response_started = true;
  if (!upgrading) enter(Phase::streaming);
  return true;
}

void Session::on_body(const char* data, size_t len) {
  send_to_client(data, len);
}

void Session::on_response_complete(size_t trailing_bytes) {
  flush_to_client();
  // Bytes after a whole response mean the upstream and cutoff disagree on
  // framing: that connection cannot be trusted with another request.
  if (trailing_bytes > 0) ex_->upstream_dirty = true;
  ex_->record.outcome = Outcome::ok();
  log_exchange();
  bool reusable = !ex_->upstream_dirty && !upstream_eof_ && ex_->request_done &&
                  !worker_.draining() && ex_->response_parser.keep_alive() &&
                  ex_->plan.framing != BodyFraming::until_close &&
                  !ex_->response_parser.body_declared_not_sent();
  if (reusable) {
    worker_.pool().park(pool_host(), pool_port(), upstream_transport(), std::move(upstream_),
                        ex_->upstream_peer, route().upstream_keepalive_timeout,
                        route().max_idle_per_upstream);
  } else {
    upstream_.close();
  }
  if (ex_->plan.client_keep_alive && ex_->request_done && !client_eof_ && !worker_.draining()) {
    return next_request();
  }
  begin_closing();
}

}  // namespace cutoff
