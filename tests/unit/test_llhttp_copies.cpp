// On x86-64 llhttp's parser is built twice, with SSE4.2 and without
// (CMakeLists.txt), and the CPU decides which one runs. Both must read every
// message alike: the same verdict, at the same byte, with the same fields.

#include <llhttp.h>

#include <catch2/catch.hpp>
#include <string>
#include <vector>

#if defined(__x86_64__)

extern "C" {
int llhttp__plain_execute(llhttp__internal_t* state, const char* p, const char* endp);
int llhttp__sse42_execute(llhttp__internal_t* state, const char* p, const char* endp);
}

namespace {

using Execute = int (*)(llhttp__internal_t*, const char*, const char*);

// Everything the parser reports, spans as they came.
struct Seen {
  std::string events;
  int result = 0;
  long stopped_at = -1;
};

int on_span(llhttp_t* p, const char* at, size_t len) {
  auto* seen = static_cast<Seen*>(p->data);
  seen->events += "[" + std::string(at, len) + "]";
  return 0;
}

int on_headers_complete(llhttp_t* p) {
  auto* seen = static_cast<Seen*>(p->data);
  seen->events += "{" + std::to_string(p->status_code) + " " + std::to_string(p->method) + " " +
                  std::to_string(p->content_length) + " " + std::to_string(p->flags) + "}";
  return 0;
}

Seen parse(Execute execute, llhttp_type_t type, const std::string& bytes) {
  llhttp_settings_t settings;
  llhttp_settings_init(&settings);
  settings.on_url = on_span;
  settings.on_status = on_span;
  settings.on_header_field = on_span;
  settings.on_header_value = on_span;
  settings.on_headers_complete = on_headers_complete;
  settings.on_body = on_span;
  llhttp_t parser;
  llhttp_init(&parser, type, &settings);
  Seen seen;
  parser.data = &seen;
  seen.result = execute(&parser, bytes.data(), bytes.data() + bytes.size());
  if (seen.result != 0) seen.stopped_at = llhttp_get_error_pos(&parser) - bytes.data();
  return seen;
}

}  // namespace

TEST_CASE("llhttp with and without SSE4.2 read messages alike", "[llhttp]") {
  if (!__builtin_cpu_supports("sse4.2")) {
    WARN("this CPU has no SSE4.2: only the plain copy runs here");
    return;
  }
  const std::string long_value(40, 'v');
  std::vector<std::string> responses = {
      "HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nDate: Wed, 03 Dec 2026 16:30:12 GMT\r\n"
      "Content-Type: application/octet-stream\r\nContent-Length: 5\r\n\r\nhello",
      "HTTP/1.1 200 OK\r\nX-Long: " + long_value + "\r\nX-Long-Name-" + long_value + ": 1\r\n\r\n",
  };
  // A byte no field may hold, at each place of a long value and a long name:
  // the 16-byte scan must stop exactly where the byte-wise one does.
  for (char bad : {'\x01', '\x7f', '\r', '\n', ' ', ':', '"'}) {
    for (size_t at = 0; at < 34; ++at) {
      std::string value = long_value;
      value[at] = bad;
      responses.push_back("HTTP/1.1 200 OK\r\nX-Value: " + value + "\r\nContent-Length: 0\r\n\r\n");
      responses.push_back("HTTP/1.1 200 OK\r\nX-" + value + ": 1\r\nContent-Length: 0\r\n\r\n");
    }
  }
  for (const std::string& bytes : responses) {
    INFO(bytes);
    Seen plain = parse(llhttp__plain_execute, HTTP_RESPONSE, bytes);
    Seen sse42 = parse(llhttp__sse42_execute, HTTP_RESPONSE, bytes);
    CHECK(plain.events == sse42.events);
    CHECK(plain.result == sse42.result);
    CHECK(plain.stopped_at == sse42.stopped_at);
  }
  const std::string request = "GET http://h/" + long_value + "?q=" + long_value +
                              " HTTP/1.1\r\nHost: h\r\nUser-Agent: " + long_value + "\r\n\r\n";
  CHECK(parse(llhttp__plain_execute, HTTP_REQUEST, request).events ==
        parse(llhttp__sse42_execute, HTTP_REQUEST, request).events);
}

#endif
