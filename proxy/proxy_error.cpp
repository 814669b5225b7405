#include "cutoff/proxy_error.hpp"

#include <charconv>

namespace cutoff {

std::string_view error_token(ProxyError error) {
  switch (error) {
    case ProxyError::dns_error:
      return "dns_error";
    case ProxyError::dns_timeout:
      return "dns_timeout";
    case ProxyError::connection_refused:
      return "connection_refused";
    case ProxyError::connection_timeout:
      return "connection_timeout";
    case ProxyError::connection_terminated:
      return "connection_terminated";
    case ProxyError::destination_unavailable:
      return "destination_unavailable";
    case ProxyError::http_response_timeout:
      return "http_response_timeout";
    case ProxyError::http_protocol_error:
      return "http_protocol_error";
    case ProxyError::tls_protocol_error:
      return "tls_protocol_error";
    case ProxyError::tls_certificate_error:
      return "tls_certificate_error";
    case ProxyError::tls_alert_received:
      return "tls_alert_received";
    case ProxyError::proxy_loop_detected:
      return "proxy_loop_detected";
    case ProxyError::http_request_denied:
      return "http_request_denied";
    case ProxyError::http_request_error:
      return "http_request_error";
  }
  return "proxy_internal_error";
}

int error_status(ProxyError error) {
  switch (error) {
    case ProxyError::dns_timeout:
    case ProxyError::connection_timeout:
    case ProxyError::http_response_timeout:
      return 504;
    case ProxyError::http_request_denied:
      return 403;
    case ProxyError::http_request_error:
      return 400;
    default:
      return 502;
  }
}

std::string_view status_reason(int status) {
  switch (status) {
    case 200:
      return "OK";
    case 400:
      return "Bad Request";
    case 403:
      return "Forbidden";
    case 407:
      return "Proxy Authentication Required";
    case 408:
      return "Request Timeout";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 414:
      return "URI Too Long";
    case 431:
      return "Request Header Fields Too Large";
    case 502:
      return "Bad Gateway";
    case 503:
      return "Service Unavailable";
    case 504:
      return "Gateway Timeout";
    default:
      return "Error";
  }
}

void build_error_response(std::string& out, int status, ProxyError error, std::string_view sentence,
                          bool close, std::string_view extra_headers, bool to_head,
                          std::string_view proxy_status_before) {
  char number[24];
  auto [status_end, ec1] = std::to_chars(number, number + sizeof number, status);
  out.append("HTTP/1.1 ").append(number, status_end).append(" ").append(status_reason(status));
  out.append("\r\nProxy-Status: ");
  if (!proxy_status_before.empty()) out.append(proxy_status_before).append(", ");
  out.append("cutoff");
  if (error != ProxyError::http_request_error) out.append("; error=").append(error_token(error));
  out.append("; details=\"");
  for (char c : sentence) {
    if (c == '"' || c == '\\') out.push_back('\\');
    out.push_back(c);
  }
  out.append("\"\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: ");
  auto [len_end, ec2] = std::to_chars(number, number + sizeof number, sentence.size() + 1);
  out.append(number, len_end).append("\r\n");
  if (close) out.append("Connection: close\r\n");
  out.append(extra_headers);
  out.append("\r\n");
  if (!to_head) out.append(sentence).append("\n");
}

}  // namespace cutoff
