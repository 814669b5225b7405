#pragma once
// The answers cutoff generates itself (SPEC §6): a status, a Proxy-Status
// header (RFC 9209) whose error token says what went wrong, and a one-sentence
// text/plain body saying the same.

#include <optional>
#include <string>
#include <string_view>

namespace cutoff {

// RFC 9209 error types, by their stable tokens.
enum class ProxyError {
  dns_error,
  dns_timeout,
  connection_refused,
  connection_timeout,
  connection_terminated,
  destination_unavailable,
  http_response_timeout,
  http_protocol_error,
  tls_protocol_error,     // an upstream's TLS broke the protocol
  tls_certificate_error,  // an upstream's certificate did not verify
  tls_alert_received,     // an upstream ended its TLS handshake with an alert
  proxy_loop_detected,    // a request came back: a parent proxy leads to cutoff itself
  http_request_denied,
  http_request_error,  // a bad request from the client: 400/414/431/408
};

std::string_view error_token(ProxyError error);

// The status a ProxyError answers with (502, 504, 403, ...).
int error_status(ProxyError error);

std::string_view status_reason(int status);

// Appends a whole response: status line, Proxy-Status (with `error=` unless
// the error is the client's own), Content-Type, Content-Length,
// Connection: close when `close`, and `sentence` as the body.
// `extra_headers` are whole header lines (with CRLF), e.g. Proxy-Authenticate.
// `to_head`: the answer to a HEAD request, which has the length of the
// sentence but not the sentence (RFC 9110 §9.3.2).
// `proxy_status_before`: the Proxy-Status members of the proxies between
// cutoff and the origin (a parent's), which come first (RFC 9209 §2).
void build_error_response(std::string& out, int status, ProxyError error, std::string_view sentence,
                          bool close, std::string_view extra_headers = {}, bool to_head = false,
                          std::string_view proxy_status_before = {});

}  // namespace cutoff
