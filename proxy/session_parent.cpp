// A parent proxy (SPEC §11): which one a request goes through, the CONNECT
// that opens a tunnel (or cutoff's own TLS) through it, and the answer when
// it refuses.

#include <fmt/format.h>

#include <algorithm>

#include "cutoff/session.hpp"
#include "cutoff/worker.hpp"

namespace cutoff {
namespace {

// The most of a parent's Proxy-Status that cutoff repeats in its own answer.
constexpr size_t kMaxParentProxyStatus = 1024;

// A status line's reason, as a sentence for logs may quote it.
std::string printable_reason(std::string_view reason) {
  std::string out;
  for (char c : reason.substr(0, 64)) out.push_back(c >= 0x20 && c < 0x7f ? c : '?');
  return out;
}

}  // namespace

// SPEC §11: the route's parent proxy, unless NO_PROXY exempts the target.
// HTTPS (a tunnel, or an intercepted request) takes the parent for https.
void Session::choose_parent() {
  ex_->parent = route().parent_proxy.for_target(ex_->target.host, ex_->target.port,
                                                ex_->is_connect || ex_->target.tls);
  // cutoff's TLS connections to an origin are pooled by the way they go:
  // one through a parent never serves a route that goes direct, or the
  // other way round.
  if (ex_->target.tls) {
    ex_->tls_pool_host = ex_->target.host;
    if (ex_->parent) ex_->tls_pool_host.append(" via ").append(ex_->parent->url);
  }
}

// SPEC §11: the parent opens the tunnel; connect_timeout, which has run
// since the connect began, covers its answer too.
void Session::ask_parent_to_connect() {
  std::string& request = worker_.scratch();
  request.clear();
  std::string authority = target_authority();
  request.append("CONNECT ").append(authority).append(" HTTP/1.1\r\nHost: ").append(authority);
  request.append("\r\n").append(ex_->parent->authorization);
  append_parent_via(request);
  request.append("\r\n");
  upstream_.send(request.data(), request.size());
  ex_->awaiting_parent = true;
  ex_->response_parser.reset();
  ex_->response_parser.set_skip_body(true);
  upstream_.start_reading();
}

void Session::on_parent_answer(const char* data, size_t len) {
  for (;;) {
    size_t used = 0;
    switch (ex_->response_parser.feed(data, len, &used)) {
      case HttpParser::Event::need_more:
        return;
      case HttpParser::Event::head:
      case HttpParser::Event::message_complete:
        break;
      default:
        return fail_upstream(
            ProxyError::http_protocol_error,
            fmt::format(
                "parent proxy {} answered CONNECT {} with a malformed response: {} (route {})",
                ex_->parent->url, target_authority(), ex_->response_parser.error_reason(),
                ex_->route.name));
    }
    data += used;
    len -= used;
    int status = ex_->response_parser.head().status();
    // Interim answers come before the real one (RFC 9110 §15.2).
    if (status >= 100 && status < 200 && status != 101) {
      ex_->response_parser.reset();
      ex_->response_parser.set_skip_body(true);
      continue;
    }
    ex_->awaiting_parent = false;
    if (status < 200 || status > 299) {
      return fail_parent_refusal(ex_->response_parser.head(), "CONNECT " + target_authority());
    }
    // What follows the answer is the target's: a server that speaks first.
    return use_upstream(data, len);
  }
}

// A parent that refused (or wants credentials cutoff did not give): the
// client gets a 502 naming the parent and its status, with the parent's own
// Proxy-Status entry before cutoff's (RFC 9209 lists every intermediary).
void Session::fail_parent_refusal(const MessageHead& answer, std::string_view request) {
  ex_->parent_proxy_status = answer.join("proxy-status");
  // Kept only when it can do no harm: cutoff's own member must stay
  // readable, and a head within what clients read.
  if (ex_->parent_proxy_status.size() > kMaxParentProxyStatus ||
      !std::all_of(ex_->parent_proxy_status.begin(), ex_->parent_proxy_status.end(),
                   [](char c) { return c >= 0x20 && c < 0x7f; })) {
    ex_->parent_proxy_status.clear();
  }
  std::string hint;
  if (answer.status() == 407) {
    hint = ex_->parent->authorization.empty()
               ? "; give parent_proxy its credentials as http://user:password@host:port"
               : "; the credentials in parent_proxy were refused";
  }
  fail_upstream(
      ProxyError::destination_unavailable,
      fmt::format("parent proxy {} refused {} with {} {}{} (route {})", ex_->parent->url, request,
                  answer.status(), printable_reason(answer.reason()), hint, ex_->route.name));
}

}  // namespace cutoff
