#include <catch2/catch.hpp>
#include <string>
#include <string_view>

#include "cutoff/proxy_error.hpp"

using namespace cutoff;

TEST_CASE("every ProxyError has its RFC 9209 token", "[proxy_error]") {
  CHECK(error_token(ProxyError::dns_error) == "dns_error");
  CHECK(error_token(ProxyError::dns_timeout) == "dns_timeout");
  CHECK(error_token(ProxyError::connection_refused) == "connection_refused");
  CHECK(error_token(ProxyError::connection_timeout) == "connection_timeout");
  CHECK(error_token(ProxyError::connection_terminated) == "connection_terminated");
  CHECK(error_token(ProxyError::destination_unavailable) == "destination_unavailable");
  CHECK(error_token(ProxyError::http_response_timeout) == "http_response_timeout");
  CHECK(error_token(ProxyError::http_protocol_error) == "http_protocol_error");
  CHECK(error_token(ProxyError::tls_protocol_error) == "tls_protocol_error");
  CHECK(error_token(ProxyError::tls_certificate_error) == "tls_certificate_error");
  CHECK(error_token(ProxyError::tls_alert_received) == "tls_alert_received");
  CHECK(error_token(ProxyError::proxy_loop_detected) == "proxy_loop_detected");
  CHECK(error_token(ProxyError::http_request_denied) == "http_request_denied");
  CHECK(error_token(ProxyError::http_request_error) == "http_request_error");
}

TEST_CASE("every ProxyError answers with the status of SPEC §6", "[proxy_error]") {
  CHECK(error_status(ProxyError::dns_error) == 502);
  CHECK(error_status(ProxyError::dns_timeout) == 504);
  CHECK(error_status(ProxyError::connection_refused) == 502);
  CHECK(error_status(ProxyError::connection_timeout) == 504);
  CHECK(error_status(ProxyError::connection_terminated) == 502);
  CHECK(error_status(ProxyError::destination_unavailable) == 502);
  CHECK(error_status(ProxyError::http_response_timeout) == 504);
  CHECK(error_status(ProxyError::http_protocol_error) == 502);
  CHECK(error_status(ProxyError::tls_certificate_error) == 502);
  CHECK(error_status(ProxyError::tls_alert_received) == 502);
  CHECK(error_status(ProxyError::proxy_loop_detected) == 502);
  CHECK(error_status(ProxyError::http_request_denied) == 403);
  CHECK(error_status(ProxyError::http_request_error) == 400);
}

TEST_CASE("status reasons", "[proxy_error]") {
  CHECK(status_reason(200) == "OK");
  CHECK(status_reason(400) == "Bad Request");
  CHECK(status_reason(403) == "Forbidden");
  CHECK(status_reason(408) == "Request Timeout");
  CHECK(status_reason(414) == "URI Too Long");
  CHECK(status_reason(431) == "Request Header Fields Too Large");
  CHECK(status_reason(502) == "Bad Gateway");
  CHECK(status_reason(504) == "Gateway Timeout");
}

TEST_CASE("build_error_response: the whole layout", "[proxy_error]") {
  const std::string_view sentence = "connect to example.com:443 timed out after 5s (route api)";
  std::string out;
  build_error_response(out, 504, ProxyError::connection_timeout, sentence, /*close=*/true);
  CHECK(out ==
        "HTTP/1.1 504 Gateway Timeout\r\n"
        "Proxy-Status: cutoff; error=connection_timeout; "
        "details=\"connect to example.com:443 timed out after 5s (route api)\"\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n"
        "Content-Length: 58\r\n"
        "Connection: close\r\n"
        "\r\n"
        "connect to example.com:443 timed out after 5s (route api)\n");
  CHECK(sentence.size() + 1 == 58);
}

TEST_CASE("build_error_response: a parent's Proxy-Status comes before cutoff's",
          "[proxy_error][parent_proxy]") {
  std::string out;
  build_error_response(out, 502, ProxyError::destination_unavailable, "refused", true, {}, false,
                       "corp-proxy; error=http_request_denied");
  CHECK(out.find("\r\nProxy-Status: corp-proxy; error=http_request_denied, cutoff; "
                 "error=destination_unavailable; details=\"refused\"\r\n") != std::string::npos);
}

TEST_CASE("build_error_response: Content-Length matches the body", "[proxy_error]") {
  for (std::string_view sentence : {std::string_view(""), std::string_view("x"),
                                    std::string_view("a \"quoted\" and \\ backslashed sentence")}) {
    INFO(sentence);
    std::string out;
    build_error_response(out, 502, ProxyError::dns_error, sentence, true);
    size_t blank = out.find("\r\n\r\n");
    REQUIRE(blank != std::string::npos);
    std::string body = out.substr(blank + 4);
    CHECK(body == std::string(sentence) + "\n");
    std::string cl = "\r\nContent-Length: " + std::to_string(body.size()) + "\r\n";
    CHECK(out.find(cl) != std::string::npos);
  }
}

// RFC 9110 §9.3.2: a response to HEAD has the length of its body, not the body.
TEST_CASE("build_error_response: an answer to HEAD has no body", "[proxy_error]") {
  std::string get;
  std::string head;
  build_error_response(get, 502, ProxyError::dns_error, "the name does not resolve", true);
  build_error_response(head, 502, ProxyError::dns_error, "the name does not resolve", true, {},
                       /*to_head=*/true);
  CHECK(head == get.substr(0, get.find("\r\n\r\n") + 4));
  CHECK(head.find("Content-Length: 26\r\n") != std::string::npos);
}

TEST_CASE("build_error_response: details are quoted and escaped, the body is not",
          "[proxy_error]") {
  std::string out;
  build_error_response(out, 502, ProxyError::http_protocol_error, "bad \"thing\" at C:\\x", false);
  CHECK(out ==
        "HTTP/1.1 502 Bad Gateway\r\n"
        "Proxy-Status: cutoff; error=http_protocol_error; details=\"bad \\\"thing\\\" at "
        "C:\\\\x\"\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n"
        "Content-Length: 20\r\n"
        "\r\n"
        "bad \"thing\" at C:\\x\n");
}

TEST_CASE("build_error_response: a client's own error carries no error= parameter",
          "[proxy_error]") {
  std::string out;
  build_error_response(out, 431, ProxyError::http_request_error,
                       "the request head is larger than 65536 bytes", true);
  CHECK(out ==
        "HTTP/1.1 431 Request Header Fields Too Large\r\n"
        "Proxy-Status: cutoff; details=\"the request head is larger than 65536 bytes\"\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n"
        "Content-Length: 44\r\n"
        "Connection: close\r\n"
        "\r\n"
        "the request head is larger than 65536 bytes\n");

  std::string timeout;
  build_error_response(timeout, 408, ProxyError::http_request_error, "too slow", true);
  CHECK(timeout.rfind(
            "HTTP/1.1 408 Request Timeout\r\nProxy-Status: cutoff; details=\"too slow\"\r\n", 0) ==
        0);
  CHECK(timeout.find("error=") == std::string::npos);
}

TEST_CASE("build_error_response: every upstream error names itself", "[proxy_error]") {
  for (ProxyError e :
       {ProxyError::dns_error, ProxyError::dns_timeout, ProxyError::connection_refused,
        ProxyError::connection_timeout, ProxyError::connection_terminated,
        ProxyError::destination_unavailable, ProxyError::http_response_timeout,
        ProxyError::http_protocol_error, ProxyError::http_request_denied}) {
    INFO(error_token(e));
    std::string out;
    build_error_response(out, error_status(e), e, "s", true);
    const std::string status_line = "HTTP/1.1 " + std::to_string(error_status(e)) + " " +
                                    std::string(status_reason(error_status(e))) + "\r\n";
    CHECK(out.rfind(status_line, 0) == 0);
    CHECK(out.find("\r\nProxy-Status: cutoff; error=" + std::string(error_token(e)) +
                   "; details=\"s\"\r\n") != std::string::npos);
  }
}

TEST_CASE("build_error_response: without close, no Connection header; output is appended",
          "[proxy_error]") {
  std::string out = "HTTP/1.1 100 Continue\r\n\r\n";
  build_error_response(out, 403, ProxyError::http_request_denied, "denied by route deny-all",
                       false);
  CHECK(out ==
        "HTTP/1.1 100 Continue\r\n\r\n"
        "HTTP/1.1 403 Forbidden\r\n"
        "Proxy-Status: cutoff; error=http_request_denied; details=\"denied by route deny-all\"\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n"
        "Content-Length: 25\r\n"
        "\r\n"
        "denied by route deny-all\n");
}
