#include <algorithm>
#include <catch2/catch.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "cutoff/http_parser.hpp"
#include "cutoff/http_rewrite.hpp"

using namespace cutoff;

namespace {

// A parser that has read one whole head from real bytes.
struct Parsed {
  Parsed(llhttp_type_t type, std::string_view bytes, bool skip_body = false) : parser(type) {
    INFO(bytes);
    parser.set_skip_body(skip_body);
    size_t consumed = 0;
    HttpParser::Event e = parser.feed(bytes.data(), bytes.size(), &consumed);
    REQUIRE((e == HttpParser::Event::head || e == HttpParser::Event::upgrade));
    REQUIRE(consumed == bytes.size());
  }
  const MessageHead& head() const { return parser.head(); }
  HttpParser parser;
};

struct Request : Parsed {
  explicit Request(std::string_view bytes) : Parsed(HTTP_REQUEST, bytes) {}
};

struct Response : Parsed {
  explicit Response(std::string_view bytes, bool skip_body = false)
      : Parsed(HTTP_RESPONSE, bytes, skip_body) {}
};

std::string error_name(TargetError e) {
  switch (e) {
    case TargetError::none:
      return "none";
    case TargetError::origin_form:
      return "origin_form";
    case TargetError::unsupported_scheme:
      return "unsupported_scheme";
    case TargetError::userinfo:
      return "userinfo";
    case TargetError::malformed:
      return "malformed";
  }
  return "?";
}

std::string target_error(std::string_view target) {
  Target t;
  return error_name(parse_absolute_target(target, &t));
}

std::string authority_error(std::string_view authority) {
  Target t;
  return error_name(parse_authority(authority, &t));
}

// The upstream head for a client request with default rewrite options.
std::string upstream_head(std::string_view request_bytes, RequestRewrite rewrite = {}) {
  Request r(request_bytes);
  Target t;
  TargetError e = parse_absolute_target(r.head().target(), &t);
  REQUIRE(error_name(e) == "none");
  std::string out;
  build_request_head(out, r.head(), r.parser.framing(), t, rewrite);
  return out;
}

}  // namespace

// --- targets ------------------------------------------------------------------

TEST_CASE("absolute targets: host, port and origin-form path", "[http_rewrite]") {
  Target t;
  REQUIRE(error_name(parse_absolute_target("http://example.com/path/to?q=1&r=2", &t)) == "none");
  CHECK(t.host == "example.com");
  CHECK(t.port == 80);
  CHECK(t.path == "/path/to?q=1&r=2");

  REQUIRE(error_name(parse_absolute_target("http://example.com:8080/x", &t)) == "none");
  CHECK(t.host == "example.com");
  CHECK(t.port == 8080);
  CHECK(t.path == "/x");

  REQUIRE(error_name(parse_absolute_target("http://example.com", &t)) == "none");
  CHECK(t.host == "example.com");
  CHECK(t.port == 80);
  CHECK(t.path == "/");

  REQUIRE(error_name(parse_absolute_target("http://10.1.2.3:65535/", &t)) == "none");
  CHECK(t.host == "10.1.2.3");
  CHECK(t.port == 65535);
  CHECK(t.path == "/");

  REQUIRE(error_name(parse_absolute_target("http://a-b_c.example.:1/p", &t)) == "none");
  CHECK(t.host == "a-b_c.example");  // canonical: one trailing dot removed
  CHECK(t.port == 1);
}

TEST_CASE("absolute targets: the path views the target", "[http_rewrite]") {
  const std::string target = "http://h/abc?d";
  Target t;
  REQUIRE(error_name(parse_absolute_target(target, &t)) == "none");
  CHECK(t.path.data() == target.data() + 8);
  CHECK(t.path.size() == 6);
}

TEST_CASE("absolute targets: IPv6 literals", "[http_rewrite]") {
  Target t;
  REQUIRE(error_name(parse_absolute_target("http://[::1]:8080/x", &t)) == "none");
  CHECK(t.host == "::1");
  CHECK(t.port == 8080);
  CHECK(t.path == "/x");

  REQUIRE(error_name(parse_absolute_target("http://[2001:DB8::A]/", &t)) == "none");
  CHECK(t.host == "2001:db8::a");
  CHECK(t.port == 80);

  CHECK(target_error("http://[::1/") == "malformed");
  CHECK(target_error("http://[::1]x/") == "malformed");
  CHECK(target_error("http://[zz]/") == "malformed");
  CHECK(target_error("http://[]/") == "malformed");
  CHECK(target_error("http://[1.2.3.4]/") == "malformed");
  CHECK(target_error("http://::1/") == "malformed");
}

TEST_CASE("absolute targets: scheme and host are case-insensitive, host is lower-cased",
          "[http_rewrite]") {
  Target t;
  REQUIRE(error_name(parse_absolute_target("HTTP://WWW.Example.COM:81/Path", &t)) == "none");
  CHECK(t.host == "www.example.com");
  CHECK(t.port == 81);
  CHECK(t.path == "/Path");  // the path keeps its case
}

TEST_CASE("absolute targets: what is not an absolute http target", "[http_rewrite]") {
  CHECK(target_error("/just/a/path") == "origin_form");
  CHECK(target_error("/") == "origin_form");
  CHECK(target_error("https://example.com/") == "unsupported_scheme");
  CHECK(target_error("HTTPS://example.com/") == "unsupported_scheme");
  CHECK(target_error("ftp://example.com/f") == "unsupported_scheme");
  CHECK(target_error("ws://example.com/") == "unsupported_scheme");
  CHECK(target_error("") == "malformed");
  CHECK(target_error("*") == "malformed");
  CHECK(target_error("example.com/x") == "malformed");
  CHECK(target_error("example.com:80") == "malformed");
  CHECK(target_error("http:/example.com/") == "malformed");
  CHECK(target_error("http://") == "malformed");
  CHECK(target_error("http:///x") == "malformed");
  CHECK(target_error("http://:80/x") == "malformed");
  CHECK(target_error("http://exa mple.com/") == "malformed");
  CHECK(target_error("http://ex%41mple.com/") == "malformed");
  CHECK(target_error("http://ex$ample.com/") == "malformed");
  CHECK(target_error("http://" + std::string(254, 'a') + "/") == "malformed");
}

TEST_CASE("absolute targets: userinfo is refused", "[http_rewrite]") {
  CHECK(target_error("http://user@example.com/") == "userinfo");
  CHECK(target_error("http://user:pass@example.com:8080/") == "userinfo");
  CHECK(target_error("http://@example.com/") == "userinfo");
  // An @ in the path is not userinfo.
  Target t;
  REQUIRE(error_name(parse_absolute_target("http://example.com/a@b", &t)) == "none");
  CHECK(t.host == "example.com");
  CHECK(t.path == "/a@b");
}

TEST_CASE("absolute targets: bad ports", "[http_rewrite]") {
  CHECK(target_error("http://example.com:0/") == "malformed");
  CHECK(target_error("http://example.com:65536/") == "malformed");
  CHECK(target_error("http://example.com:99999999999/") == "malformed");
  CHECK(target_error("http://example.com:abc/") == "malformed");
  CHECK(target_error("http://example.com:80a/") == "malformed");
  CHECK(target_error("http://example.com:-1/") == "malformed");
  CHECK(target_error("http://example.com:+80/") == "malformed");
  CHECK(target_error("http://example.com: 80/") == "malformed");
  CHECK(target_error("http://example.com:80:80/") == "malformed");
  CHECK(target_error("http://[::1]:0/") == "malformed");
  CHECK(target_error("http://[::1]:65536/") == "malformed");
}

// RFC 3986 §3.3: "http://host?q" is a valid absolute URI with an empty path,
// and RFC 9112 §3.2.1 says the origin-form of an empty path is "/". Python's
// urllib sends such a target through a proxy exactly as written.
TEST_CASE("absolute targets: a query without a path is forwarded as /?query", "[http_rewrite]") {
  Target t;
  CHECK(error_name(parse_absolute_target("http://example.com?q=1", &t)) == "none");
  CHECK(t.host == "example.com");
  CHECK(t.port == 80);

  Request r("GET http://example.com:8080?q=1 HTTP/1.1\r\n\r\n");
  Target rt;
  REQUIRE(error_name(parse_absolute_target(r.head().target(), &rt)) == "none");
  std::string out;
  build_request_head(out, r.head(), r.parser.framing(), rt, RequestRewrite{});
  CHECK(out == "GET /?q=1 HTTP/1.1\r\nHost: example.com:8080\r\nVia: 1.1 cutoff\r\n\r\n");
}

// Every field of the result, for spellings where the end of the authority,
// the fragment, the userinfo and the port meet.
TEST_CASE("absolute targets: where the authority ends, every field", "[http_rewrite]") {
  struct Case {
    const char* target;
    const char* error;
    const char* host;
    uint16_t port;
    const char* path;
    bool no_path;
    bool empty_path;
  };
  const Case cases[] = {
      {"http://h#frag", "none", "h", 80, "/", true, false},
      {"http://h#f/x?y", "none", "h", 80, "/", true, false},
      {"http://h/p#f?x", "none", "h", 80, "/p", false, false},
      {"http://h/p?q#f", "none", "h", 80, "/p?q", false, false},
      {"http://h?q#f", "none", "h", 80, "?q", false, true},
      {"http://h?q/r", "none", "h", 80, "?q/r", false, true},
      {"http://h/?", "none", "h", 80, "/?", false, false},
      {"http://h?", "none", "h", 80, "?", false, true},
      {"http://h/", "none", "h", 80, "/", false, false},
      {"http://h:8080#f", "none", "h", 8080, "/", true, false},
      {"http://h:/", "none", "h", 80, "/", false, false},
      {"http://h:", "none", "h", 80, "/", true, false},
      {"http://h:0080/x", "none", "h", 80, "/x", false, false},
      {"http://h./x", "none", "h", 80, "/x", false, false},
      {"http://0x7f.1/", "none", "127.0.0.1", 80, "/", false, false},
      {"http://127.0.0.1:9/x", "none", "127.0.0.1", 9, "/x", false, false},
      {"http://[::1]#f", "none", "::1", 80, "/", true, false},
      {"http://[::FFFF:10.0.0.1]:81?q", "none", "10.0.0.1", 81, "?q", false, true},
      {"http://h#u@x", "none", "h", 80, "/", true, false},
      {"http://h?u@x", "none", "h", 80, "?u@x", false, true},
      {"http://u@h#x", "userinfo", "", 0, "", false, false},
      {"http://u@[zz]/", "userinfo", "", 0, "", false, false},
      {"http://h:80:/", "malformed", "", 0, "", false, false},
      {"http://h:80#/", "none", "h", 80, "/", true, false},
      {"http://#/", "malformed", "", 0, "", false, false},
      {"http://?q", "malformed", "", 0, "", false, false},
      {"http://h:65535", "none", "h", 65535, "/", true, false},
      {"http://h:065536/", "malformed", "", 0, "", false, false},
  };
  for (const Case& c : cases) {
    INFO(c.target);
    Target t;
    t.tls = true;
    REQUIRE(error_name(parse_absolute_target(c.target, &t)) == c.error);
    CHECK_FALSE(t.tls);
    if (std::string_view(c.error) != "none") continue;
    CHECK(t.host == c.host);
    CHECK(t.port == c.port);
    CHECK(t.path == c.path);
    CHECK(t.no_path == c.no_path);
    CHECK(t.empty_path == c.empty_path);
  }
}

TEST_CASE("CONNECT authorities", "[http_rewrite]") {
  Target t;
  t.path = "stale";
  REQUIRE(error_name(parse_authority("example.com:443", &t)) == "none");
  CHECK(t.host == "example.com");
  CHECK(t.port == 443);
  CHECK(t.path.empty());

  REQUIRE(error_name(parse_authority("Mixed.Case.EXAMPLE:8443", &t)) == "none");
  CHECK(t.host == "mixed.case.example");
  CHECK(t.port == 8443);

  REQUIRE(error_name(parse_authority("[2001:db8::1]:443", &t)) == "none");
  CHECK(t.host == "2001:db8::1");
  CHECK(t.port == 443);

  REQUIRE(error_name(parse_authority("127.0.0.1:1", &t)) == "none");
  CHECK(t.host == "127.0.0.1");
  CHECK(t.port == 1);

  CHECK(authority_error("example.com") == "malformed");  // the port is required
  CHECK(authority_error("example.com:") == "malformed");
  CHECK(authority_error("[::1]") == "malformed");
  CHECK(authority_error(":443") == "malformed");
  CHECK(authority_error("") == "malformed");
  CHECK(authority_error("example.com:0") == "malformed");
  CHECK(authority_error("example.com:65536") == "malformed");
  CHECK(authority_error("example.com:https") == "malformed");
  CHECK(authority_error("user@example.com:443") == "userinfo");
  CHECK(authority_error("user:pw@[::1]:443") == "userinfo");
  CHECK(authority_error("example.com:443/path") == "malformed");
  CHECK(authority_error("::1:443") == "malformed");
}

// --- hop-by-hop ---------------------------------------------------------------

TEST_CASE("build_request_head: headers named by Connection are dropped, in any case",
          "[http_rewrite]") {
  CHECK(upstream_head("GET http://h/ HTTP/1.1\r\nConnection:  X-Foo ,x-bar,, keep-alive ,\tX-Tab\t"
                      "\r\nX-FOO: 1\r\nx-Bar: 2\r\nX-Tab: 3\r\nX-Fo: 4\r\nX-Foo2: 5\r\n\r\n") ==
        "GET / HTTP/1.1\r\nHost: h\r\nX-Fo: 4\r\nX-Foo2: 5\r\nVia: 1.1 cutoff\r\n\r\n");
}

// RFC 9110 §7.6.1: every Connection field line names hop-by-hop fields;
// a message may carry several.
TEST_CASE("headers named by a second Connection header are hop-by-hop too", "[http_rewrite]") {
  CHECK(upstream_head("GET http://h/ HTTP/1.1\r\nConnection: keep-alive\r\nConnection: X-Secret\r\n"
                      "X-Secret: 1\r\nX-Kept: 2\r\n\r\n") ==
        "GET / HTTP/1.1\r\nHost: h\r\nX-Kept: 2\r\nVia: 1.1 cutoff\r\n\r\n");
}

// SPEC §2: the framing is never hop-by-hop, whatever Connection says; cutoff
// writes the Content-Length or Transfer-Encoding it parsed, in its place.
TEST_CASE("build_request_head: Connection cannot remove the framing", "[http_rewrite]") {
  CHECK(upstream_head("POST http://h/p HTTP/1.1\r\nConnection: Content-Length, Host\r\n"
                      "content-length:  47 \r\nX-A: 1\r\n\r\n") ==
        "POST /p HTTP/1.1\r\nHost: h\r\nContent-Length: 47\r\nX-A: 1\r\nVia: 1.1 cutoff\r\n\r\n");
  CHECK(upstream_head("POST http://h/p HTTP/1.1\r\nTransfer-Encoding: CHUNKED\r\n"
                      "Connection: transfer-encoding\r\n\r\n") ==
        "POST /p HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nVia: 1.1 cutoff\r\n\r\n");
}

TEST_CASE("build_response_head: Connection cannot remove the framing", "[http_rewrite]") {
  Response r("HTTP/1.1 200 OK\r\nConnection: Content-Length\r\nContent-Length: 5\r\n\r\n");
  ResponseRewrite rw;
  rw.upstream = r.parser.framing();
  rw.plan = plan_response(ResponseFacts{false, true, rw.upstream});
  std::string out;
  build_response_head(out, r.head(), rw);
  CHECK(out == "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nVia: 1.1 cutoff\r\n\r\n");
}

// --- request heads ------------------------------------------------------------

TEST_CASE("build_request_head: origin-form, HTTP/1.1, Host from the target, Via",
          "[http_rewrite]") {
  CHECK(upstream_head("GET http://example.com/ HTTP/1.1\r\nHost: example.com\r\n\r\n") ==
        "GET / HTTP/1.1\r\nHost: example.com\r\nVia: 1.1 cutoff\r\n\r\n");

  // An HTTP/1.0 client, a port, and a client Host that disagrees.
  CHECK(upstream_head("GET http://Example.com:8080/a/b?c=d HTTP/1.0\r\nHost: elsewhere\r\n"
                      "User-Agent: test/1\r\n\r\n") ==
        "GET /a/b?c=d HTTP/1.1\r\nHost: example.com:8080\r\nUser-Agent: test/1\r\n"
        "Via: 1.1 cutoff\r\n\r\n");

  // No Host from the client at all.
  CHECK(upstream_head("DELETE http://h:80/x HTTP/1.1\r\n\r\n") ==
        "DELETE /x HTTP/1.1\r\nHost: h\r\nVia: 1.1 cutoff\r\n\r\n");

  // An IPv6 literal is bracketed again in Host.
  CHECK(upstream_head("GET http://[::1]:8080/v6 HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n") ==
        "GET /v6 HTTP/1.1\r\nHost: [::1]:8080\r\nVia: 1.1 cutoff\r\n\r\n");
  CHECK(upstream_head("GET http://[::1]/v6 HTTP/1.1\r\n\r\n") ==
        "GET /v6 HTTP/1.1\r\nHost: [::1]\r\nVia: 1.1 cutoff\r\n\r\n");
}

TEST_CASE("build_request_head: Via can be off", "[http_rewrite]") {
  RequestRewrite rewrite;
  rewrite.via = false;
  CHECK(upstream_head("GET http://example.com/x HTTP/1.1\r\nAccept: */*\r\n\r\n", rewrite) ==
        "GET /x HTTP/1.1\r\nHost: example.com\r\nAccept: */*\r\n\r\n");
}

TEST_CASE("build_request_head: to a parent proxy, absolute form and cutoff's credentials",
          "[http_rewrite][parent_proxy]") {
  RequestRewrite rewrite;
  rewrite.absolute_form = true;
  rewrite.via = false;  // a parent gets Via whatever listen.via says: it shows loops
  rewrite.proxy_authorization = "Proxy-Authorization: Basic Y2k6cHc=\r\n";
  std::string via;
  append_parent_via(via);
  REQUIRE_THAT(via, Catch::Matches("Via: 1\\.1 cutoff \\([0-9a-f]{8}\\)\r\n"));
  // The client's own Proxy-Authorization was for cutoff: it stays behind.
  CHECK(upstream_head("GET http://Example.com:8080/a?b=1 HTTP/1.1\r\nHost: x\r\n"
                      "Proxy-Authorization: Basic Y2xpZW50OnB3\r\nAccept: */*\r\n\r\n",
                      rewrite) ==
        "GET http://example.com:8080/a?b=1 HTTP/1.1\r\nHost: example.com:8080\r\n"
        "Accept: */*\r\nProxy-Authorization: Basic Y2k6cHc=\r\n" +
            via + "\r\n");
  rewrite.proxy_authorization = {};
  CHECK(upstream_head("GET http://[::1]?q HTTP/1.1\r\n\r\n", rewrite) ==
        "GET http://[::1]/?q HTTP/1.1\r\nHost: [::1]\r\n" + via + "\r\n");
  CHECK(upstream_head("OPTIONS http://example.com HTTP/1.1\r\n\r\n", rewrite) ==
        "OPTIONS http://example.com HTTP/1.1\r\nHost: example.com\r\n" + via + "\r\n");
  CHECK(upstream_head("GET http://example.com HTTP/1.1\r\n\r\n", rewrite) ==
        "GET http://example.com/ HTTP/1.1\r\nHost: example.com\r\n" + via + "\r\n");
}

TEST_CASE("carries_own_via: a request that went round a loop of parents", "[http_rewrite]") {
  std::string via;
  append_parent_via(via);
  const std::string mark = via.substr(via.find('('));  // "(xxxxxxxx)\r\n"
  Request looped("GET http://a/ HTTP/1.1\r\nVia: 1.1 corp, 1.1 cutoff " + mark + "\r\n");
  CHECK(carries_own_via(looped.head()));
  Request chained("GET http://a/ HTTP/1.1\r\nVia: 1.1 cutoff (00000000), 1.1 cutoff\r\n\r\n");
  CHECK_FALSE(carries_own_via(chained.head()));
}

TEST_CASE("build_request_head: hop-by-hop headers are removed, the rest kept in order",
          "[http_rewrite]") {
  const std::string request =
      "GET http://example.com/p HTTP/1.1\r\n"
      "Host: example.com\r\n"
      "User-Agent: test/1\r\n"
      "Proxy-Connection: keep-alive\r\n"
      "Keep-Alive: timeout=5\r\n"
      "TE: trailers\r\n"
      "Trailer: X-Sum\r\n"
      "Proxy-Authorization: Basic Zm9vOmJhcg==\r\n"
      "Upgrade: h2c\r\n"
      "Connection: X-Hop, keep-alive, x-other\r\n"
      "X-Hop: secret\r\n"
      "Accept: */*\r\n"
      "X-Other: also secret\r\n"
      "Authorization: Bearer t\r\n"
      "Cookie: a=b\r\n"
      "\r\n";
  CHECK(upstream_head(request) ==
        "GET /p HTTP/1.1\r\n"
        "Host: example.com\r\n"
        "User-Agent: test/1\r\n"
        "Accept: */*\r\n"
        "Authorization: Bearer t\r\n"
        "Cookie: a=b\r\n"
        "Via: 1.1 cutoff\r\n"
        "\r\n");
}

TEST_CASE("build_request_head: the framing cutoff parsed takes the framing field's place",
          "[http_rewrite]") {
  CHECK(upstream_head("POST http://h/upload HTTP/1.1\r\nContent-Type: text/plain\r\n"
                      "Content-Length: 5\r\n\r\n") ==
        "POST /upload HTTP/1.1\r\nHost: h\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n"
        "Via: 1.1 cutoff\r\n\r\n");
  CHECK(upstream_head("PUT http://h/ HTTP/1.1\r\nTransfer-Encoding: chunked\r\n"
                      "Expect: 100-continue\r\n\r\n") ==
        "PUT / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nExpect: 100-continue\r\n"
        "Via: 1.1 cutoff\r\n\r\n");
}

TEST_CASE("build_request_head: an upgrade keeps Upgrade and asks with Connection: upgrade",
          "[http_rewrite]") {
  RequestRewrite rewrite;
  rewrite.upgrade = true;
  CHECK(upstream_head("GET http://h:81/chat HTTP/1.1\r\nHost: h:81\r\nUpgrade: websocket\r\n"
                      "Connection: keep-alive, Upgrade\r\nSec-WebSocket-Key: k\r\n"
                      "Sec-WebSocket-Version: 13\r\n\r\n",
                      rewrite) ==
        "GET /chat HTTP/1.1\r\nHost: h:81\r\nSec-WebSocket-Key: k\r\nSec-WebSocket-Version: 13\r\n"
        "Upgrade: websocket\r\nConnection: upgrade\r\nVia: 1.1 cutoff\r\n\r\n");

  rewrite.via = false;
  CHECK(upstream_head("GET http://h/ws HTTP/1.1\r\nUpgrade: websocket\r\nConnection: upgrade\r\n"
                      "\r\n",
                      rewrite) ==
        "GET /ws HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n");
}

TEST_CASE("build_request_head appends to what is already there", "[http_rewrite]") {
  Request r("GET http://h/ HTTP/1.1\r\n\r\n");
  Target t;
  REQUIRE(error_name(parse_absolute_target(r.head().target(), &t)) == "none");
  std::string out = "previous";
  build_request_head(out, r.head(), r.parser.framing(), t, RequestRewrite{});
  CHECK(out == "previousGET / HTTP/1.1\r\nHost: h\r\nVia: 1.1 cutoff\r\n\r\n");
}

// --- response heads -----------------------------------------------------------

namespace {

const char* const kPlainResponse =
    "HTTP/1.1 200 OK\r\n"
    "Content-Type: text/plain\r\n"
    "Content-Length: 5\r\n"
    "Keep-Alive: timeout=5\r\n"
    "Connection: keep-alive, X-Up\r\n"
    "X-Up: 1\r\n"
    "Proxy-Authenticate: Basic\r\n"
    "Trailer: X-Sum\r\n"
    "Set-Cookie: a=b\r\n"
    "\r\n";

std::string client_head(std::string_view response_bytes, ResponseRewrite rewrite) {
  Response r(response_bytes);
  rewrite.upstream = r.parser.framing();
  std::string out;
  build_response_head(out, r.head(), rewrite);
  return out;
}

ResponseRewrite with_plan(BodyFraming framing, bool keep_alive, bool http10 = false) {
  ResponseRewrite rw;
  rw.plan.framing = framing;
  rw.plan.client_keep_alive = keep_alive;
  rw.client_http10 = http10;
  return rw;
}

}  // namespace

TEST_CASE("build_response_head: Connection: close when the client connection ends",
          "[http_rewrite]") {
  CHECK(client_head(kPlainResponse, with_plan(BodyFraming::content_length, false)) ==
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\nSet-Cookie: a=b\r\n"
        "Connection: close\r\nVia: 1.1 cutoff\r\n\r\n");
  CHECK(client_head(kPlainResponse, with_plan(BodyFraming::content_length, false, true)) ==
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\nSet-Cookie: a=b\r\n"
        "Connection: close\r\nVia: 1.1 cutoff\r\n\r\n");
}

TEST_CASE("build_response_head: keep-alive", "[http_rewrite]") {
  // HTTP/1.1 clients keep the connection by default: nothing to say.
  CHECK(client_head(kPlainResponse, with_plan(BodyFraming::content_length, true)) ==
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\nSet-Cookie: a=b\r\n"
        "Via: 1.1 cutoff\r\n\r\n");
  // HTTP/1.0 clients must be told.
  CHECK(client_head(kPlainResponse, with_plan(BodyFraming::content_length, true, true)) ==
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\nSet-Cookie: a=b\r\n"
        "Connection: keep-alive\r\nVia: 1.1 cutoff\r\n\r\n");
}

TEST_CASE("build_response_head: Via can be off", "[http_rewrite]") {
  ResponseRewrite rw = with_plan(BodyFraming::content_length, true);
  rw.via = false;
  CHECK(client_head(kPlainResponse, rw) ==
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\nSet-Cookie: a=b\r\n"
        "\r\n");
}

TEST_CASE("build_response_head: chunked passes through, dechunk drops Transfer-Encoding",
          "[http_rewrite]") {
  const char* chunked = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-Y: z\r\n\r\n";
  CHECK(client_head(chunked, with_plan(BodyFraming::chunked, true)) ==
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-Y: z\r\nVia: 1.1 cutoff\r\n\r\n");
  CHECK(client_head(chunked, with_plan(BodyFraming::dechunk, false, true)) ==
        "HTTP/1.1 200 OK\r\nX-Y: z\r\nConnection: close\r\nVia: 1.1 cutoff\r\n\r\n");
  const char* mixed_case = "HTTP/1.1 200 OK\r\ntransfer-encoding: Chunked\r\n\r\n";
  CHECK(client_head(mixed_case, with_plan(BodyFraming::dechunk, false, true)) ==
        "HTTP/1.1 200 OK\r\nConnection: close\r\nVia: 1.1 cutoff\r\n\r\n");
}

TEST_CASE("build_response_head: a close-delimited body", "[http_rewrite]") {
  CHECK(client_head("HTTP/1.0 200 OK\r\nContent-Type: text/html\r\n\r\n",
                    with_plan(BodyFraming::until_close, false)) ==
        "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nConnection: close\r\nVia: 1.1 cutoff\r\n"
        "\r\n");
}

TEST_CASE("build_response_head: status line and reason", "[http_rewrite]") {
  CHECK(client_head("HTTP/1.0 404 Not Found\r\nContent-Length: 3\r\n\r\n",
                    with_plan(BodyFraming::content_length, true)) ==
        "HTTP/1.1 404 Not Found\r\nContent-Length: 3\r\nVia: 1.1 cutoff\r\n\r\n");
  CHECK(client_head("HTTP/1.1 599 Custom Reason Here\r\nContent-Length: 0\r\n\r\n",
                    with_plan(BodyFraming::none, true)) ==
        "HTTP/1.1 599 Custom Reason Here\r\nContent-Length: 0\r\nVia: 1.1 cutoff\r\n\r\n");
  CHECK(client_head("HTTP/1.1 304 Not Modified\r\nETag: \"e\"\r\n\r\n",
                    with_plan(BodyFraming::none, true)) ==
        "HTTP/1.1 304 Not Modified\r\nETag: \"e\"\r\nVia: 1.1 cutoff\r\n\r\n");
}

TEST_CASE("build_response_head: a 101 keeps Upgrade with Connection: upgrade", "[http_rewrite]") {
  ResponseRewrite rw = with_plan(BodyFraming::none, false);
  rw.upgrade = true;
  CHECK(client_head("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                    "Connection: Upgrade\r\nSec-WebSocket-Accept: abc\r\n\r\n",
                    rw) ==
        "HTTP/1.1 101 Switching Protocols\r\nSec-WebSocket-Accept: abc\r\n"
        "Upgrade: websocket\r\nConnection: upgrade\r\nVia: 1.1 cutoff\r\n\r\n");
}

// RFC 9110 §8.6 and RFC 9112 §6.1: no framing on 1xx and 204; a 304 or a
// HEAD response keeps the Content-Length of the representation, never a
// Transfer-Encoding.
TEST_CASE("build_response_head: bodiless responses carry no framing of their own",
          "[http_rewrite]") {
  CHECK(client_head("HTTP/1.1 204 No Content\r\nContent-Length: 5\r\nX-A: 1\r\n\r\n",
                    with_plan(BodyFraming::none, true)) ==
        "HTTP/1.1 204 No Content\r\nX-A: 1\r\nVia: 1.1 cutoff\r\n\r\n");
  CHECK(client_head("HTTP/1.1 304 Not Modified\r\nTransfer-Encoding: chunked\r\nETag: e\r\n\r\n",
                    with_plan(BodyFraming::none, true)) ==
        "HTTP/1.1 304 Not Modified\r\nETag: e\r\nVia: 1.1 cutoff\r\n\r\n");
  CHECK(client_head("HTTP/1.1 304 Not Modified\r\nContent-Length:  120 \r\n\r\n",
                    with_plan(BodyFraming::none, true)) ==
        "HTTP/1.1 304 Not Modified\r\nContent-Length: 120\r\nVia: 1.1 cutoff\r\n\r\n");
  Response head("HTTP/1.1 200 OK\r\nContent-Length: 1234\r\nX-B: 2\r\n\r\n", /*skip_body=*/true);
  ResponseRewrite rw = with_plan(BodyFraming::none, true);
  rw.upstream = head.parser.framing();
  std::string out;
  build_response_head(out, head.head(), rw);
  CHECK(out == "HTTP/1.1 200 OK\r\nContent-Length: 1234\r\nX-B: 2\r\nVia: 1.1 cutoff\r\n\r\n");
}

TEST_CASE("build_response_head: an interim response keeps its fields", "[http_rewrite]") {
  ResponseRewrite rw = with_plan(BodyFraming::none, false);
  rw.interim = true;
  rw.extra_headers = "Server-Timing: x\r\n";
  CHECK(client_head("HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n"
                    "Connection: close\r\n\r\n",
                    rw) ==
        "HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\nVia: 1.1 cutoff\r\n\r\n");
  CHECK(client_head("HTTP/1.1 100 Continue\r\n\r\n", rw) ==
        "HTTP/1.1 100 Continue\r\nVia: 1.1 cutoff\r\n\r\n");
}

// RFC 9112 §3.2.4: OPTIONS to a bare authority asks the server itself.
TEST_CASE("build_request_head: OPTIONS without a path becomes OPTIONS *", "[http_rewrite]") {
  CHECK(upstream_head("OPTIONS http://h:81 HTTP/1.1\r\n\r\n") ==
        "OPTIONS * HTTP/1.1\r\nHost: h:81\r\nVia: 1.1 cutoff\r\n\r\n");
  CHECK(upstream_head("OPTIONS http://h/ HTTP/1.1\r\n\r\n") ==
        "OPTIONS / HTTP/1.1\r\nHost: h\r\nVia: 1.1 cutoff\r\n\r\n");
  CHECK(upstream_head("OPTIONS http://h?q HTTP/1.1\r\n\r\n") ==
        "OPTIONS /?q HTTP/1.1\r\nHost: h\r\nVia: 1.1 cutoff\r\n\r\n");
  CHECK(upstream_head("GET http://h HTTP/1.1\r\n\r\n") ==
        "GET / HTTP/1.1\r\nHost: h\r\nVia: 1.1 cutoff\r\n\r\n");
}

TEST_CASE("absolute targets: a fragment never travels", "[http_rewrite]") {
  Target t;
  REQUIRE(error_name(parse_absolute_target("http://h/p?q=1#frag", &t)) == "none");
  CHECK(t.path == "/p?q=1");
  REQUIRE(error_name(parse_absolute_target("http://h#frag", &t)) == "none");
  CHECK(t.host == "h");
  CHECK(t.path == "/");
  REQUIRE(error_name(parse_absolute_target("http://h:81/#", &t)) == "none");
  CHECK(t.port == 81);
  CHECK(t.path == "/");
}

// A worker keeps the last authority it parsed: a hit must give what a
// fresh parse gives, and nothing else may hit.
TEST_CASE("absolute targets: the authority memo gives what a parse gives", "[http_rewrite]") {
  AuthorityMemo memo;
  auto parsed = [&](std::string_view target) {
    Target t;
    REQUIRE(error_name(parse_absolute_target(target, &t, &memo)) == "none");
    Target fresh;
    REQUIRE(error_name(parse_absolute_target(target, &fresh)) == "none");
    CHECK(t.host == fresh.host);
    CHECK(t.port == fresh.port);
    CHECK(t.authority == fresh.authority);
    CHECK(t.path == fresh.path);
    return t.authority;
  };
  CHECK(parsed("http://Example.TEST:8080/a") == "example.test:8080");
  CHECK(memo.spelled == "Example.TEST:8080");
  CHECK(parsed("http://Example.TEST:8080/b?q") == "example.test:8080");
  CHECK(parsed("http://example.test:80/") == "example.test");
  CHECK(parsed("http://[::1]:81/") == "[::1]:81");
  CHECK(parsed("http://0x7f000001/") == "127.0.0.1");
  // An empty authority is malformed, memo or not; so is one that failed
  // after a good one, which leaves the memo as it was.
  Target t;
  AuthorityMemo empty;
  CHECK(error_name(parse_absolute_target("http:///x", &t, &empty)) == "malformed");
  CHECK(error_name(parse_absolute_target("http:///x", &t, &memo)) == "malformed");
  CHECK(error_name(parse_absolute_target("http://a..b/", &t, &memo)) == "malformed");
  CHECK(memo.spelled == "0x7f000001");
}

// SPEC §9: the target's host is canonical, so routes see one spelling.
TEST_CASE("absolute targets and CONNECT: hosts are canonical", "[http_rewrite]") {
  for (const char* spelling :
       {"2130706433", "0x7f000001", "127.1", "0177.0.0.1", "[::ffff:127.0.0.1]", "127.0.0.1."}) {
    INFO(spelling);
    Target t;
    REQUIRE(error_name(parse_absolute_target(std::string("http://") + spelling + ":8080/", &t)) ==
            "none");
    CHECK(t.host == "127.0.0.1");
    REQUIRE(error_name(parse_authority(std::string(spelling) + ":443", &t)) == "none");
    CHECK(t.host == "127.0.0.1");
  }
  CHECK(target_error("http://1.2.3.256/") == "malformed");
  CHECK(target_error("http://exa%6dple.com/") == "malformed");
  CHECK(target_error("http://a..b/") == "malformed");
}

TEST_CASE("origin-form targets inside an intercepted connection", "[http_rewrite]") {
  Target t;
  t.host = "api.example.test";
  t.port = 443;
  REQUIRE(error_name(parse_origin_target("/v1/items?page=2#top", &t)) == "none");
  CHECK(t.tls);
  CHECK(t.path == "/v1/items?page=2");
  CHECK_FALSE(t.no_path);
  REQUIRE(error_name(parse_origin_target("*", &t)) == "none");
  CHECK(t.no_path);
  CHECK(error_name(parse_origin_target("http://api.example.test/", &t)) == "malformed");
  CHECK(error_name(parse_origin_target("", &t)) == "malformed");
  CHECK(error_name(parse_origin_target("api.example.test:443", &t)) == "malformed");

  // Host carries the port unless it is https's own.
  Request r("GET /v1 HTTP/1.1\r\nHost: api.example.test\r\n\r\n");
  for (auto [port, host] : {std::pair<uint16_t, std::string_view>{443, "api.example.test"},
                            {8443, "api.example.test:8443"}}) {
    Target rt;
    rt.host = "api.example.test";
    rt.port = port;
    REQUIRE(error_name(parse_origin_target(r.head().target(), &rt)) == "none");
    std::string out;
    build_request_head(out, r.head(), r.parser.framing(), rt, RequestRewrite{});
    CHECK(out == "GET /v1 HTTP/1.1\r\nHost: " + std::string(host) + "\r\nVia: 1.1 cutoff\r\n\r\n");
  }
  // A plain target parsed after an intercepted one is plain again.
  REQUIRE(error_name(parse_absolute_target("http://example.com/", &t)) == "none");
  CHECK_FALSE(t.tls);
  REQUIRE(error_name(parse_authority("example.com:443", &t)) == "none");
  CHECK_FALSE(t.tls);
}

// --- heads in pieces ------------------------------------------------------------

namespace {

// Feeds `bytes` to a fresh parser in reads that end at each of `cuts` (the
// last read ends with the bytes); the head must be whole after the last one.
// Returns what the rebuilt head would be, request or response.
std::string rebuilt_in_reads(llhttp_type_t type, std::string_view bytes,
                             const std::vector<size_t>& cuts) {
  HttpParser parser(type);
  size_t at = 0;
  HttpParser::Event event = HttpParser::Event::need_more;
  std::vector<size_t> ends = cuts;
  ends.push_back(bytes.size());
  for (size_t end : ends) {
    REQUIRE(event == HttpParser::Event::need_more);
    size_t consumed = 0;
    event = parser.feed(bytes.data() + at, end - at, &consumed);
    REQUIRE(consumed == end - at);
    at = end;
  }
  REQUIRE(event == HttpParser::Event::head);
  std::string out = "previous ";  // the builders append
  if (type == HTTP_REQUEST) {
    Target t;
    REQUIRE(error_name(parse_absolute_target(parser.head().target(), &t)) == "none");
    build_request_head(out, parser.head(), parser.framing(), t, RequestRewrite{});
  } else {
    ResponseRewrite rw = with_plan(BodyFraming::content_length, true);
    rw.upstream = parser.framing();
    build_response_head(out, parser.head(), rw);
  }
  return out;
}

// Every way to cut `bytes` into two reads, and one byte per read, rebuild
// the head the one read does.
void check_reads_agree(llhttp_type_t type, std::string_view bytes, std::string_view expected) {
  INFO(bytes);
  CHECK(rebuilt_in_reads(type, bytes, {}) == expected);
  for (size_t cut = 1; cut < bytes.size(); ++cut) {
    INFO("cut after " << cut);
    CHECK(rebuilt_in_reads(type, bytes, {cut}) == expected);
  }
  std::vector<size_t> every_byte;
  for (size_t cut = 1; cut < bytes.size(); ++cut) every_byte.push_back(cut);
  CHECK(rebuilt_in_reads(type, bytes, every_byte) == expected);
}

}  // namespace

// Field lines that arrived as cutoff writes them leave as they came, in
// runs; the others are written anew ("name: value"). Either way the bytes
// forwarded must not depend on how the head was cut into reads.
TEST_CASE("a head forwards the same bytes in one read, two, or one byte per read",
          "[http_rewrite]") {
  check_reads_agree(HTTP_RESPONSE,
                    "HTTP/1.1 200 OK\r\n"
                    "Server: s/1\r\n"
                    "Date: Wed, 03 Dec 2026 16:30:12 GMT\r\n"
                    "X-Tight:a\r\n"
                    "X-Wide:   b\r\n"
                    "X-Trailing: c \t\r\n"
                    "X-Empty:\r\n"
                    "X-Tab:\td\r\n"
                    "Keep-Alive: timeout=5\r\n"
                    "Content-Length: 0005\r\n"
                    "ETag: \"e\"\r\n"
                    "Connection: keep-alive\r\n"
                    "Accept-Ranges: bytes\r\n"
                    "\r\n",
                    "previous HTTP/1.1 200 OK\r\n"
                    "Server: s/1\r\n"
                    "Date: Wed, 03 Dec 2026 16:30:12 GMT\r\n"
                    "X-Tight: a\r\n"
                    "X-Wide: b\r\n"
                    "X-Trailing: c \t\r\n"
                    "X-Empty: \r\n"
                    "X-Tab: d\r\n"
                    "Content-Length: 5\r\n"
                    "ETag: \"e\"\r\n"
                    "Accept-Ranges: bytes\r\n"
                    "Via: 1.1 cutoff\r\n"
                    "\r\n");
  check_reads_agree(HTTP_REQUEST,
                    "GET http://example.com:8080/p?q=1 HTTP/1.1\r\n"
                    "Host: example.com:8080\r\n"
                    "User-Agent: t/1\r\n"
                    "Accept:*/*\r\n"
                    "Connection: x-hop\r\n"
                    "X-Hop: 1\r\n"
                    "Cookie: a=b\r\n"
                    "X-Last:  z  \r\n"
                    "\r\n",
                    "previous GET /p?q=1 HTTP/1.1\r\n"
                    "Host: example.com:8080\r\n"
                    "User-Agent: t/1\r\n"
                    "Accept: */*\r\n"
                    "Cookie: a=b\r\n"
                    "X-Last: z  \r\n"
                    "Via: 1.1 cutoff\r\n"
                    "\r\n");
}

// The offsets the parser records are in the head's own bytes: once a feed
// ends, the head no longer views the caller's buffer, which the caller
// reuses for the next read.
TEST_CASE("a parsed head does not view the bytes it was read from", "[http_rewrite]") {
  std::string bytes = "HTTP/1.1 200 OK\r\nX-A: 1\r\nX-B:2\r\nContent-Length: 0\r\n\r\n";
  HttpParser parser(HTTP_RESPONSE);
  size_t consumed = 0;
  REQUIRE(parser.feed(bytes.data(), 20, &consumed) == HttpParser::Event::need_more);
  std::string rest = bytes.substr(20);
  REQUIRE(parser.feed(rest.data(), rest.size(), &consumed) == HttpParser::Event::head);
  std::fill(bytes.begin(), bytes.end(), '#');
  std::fill(rest.begin(), rest.end(), '#');
  CHECK(parser.head().reason() == "OK");
  CHECK(parser.head().find("x-a") == "1");
  CHECK(parser.head().find("x-b") == "2");
  CHECK(parser.head().raw_line(0) == "X-A: 1\r\n");
  CHECK(parser.head().raw_line(1).empty());
  ResponseRewrite rw = with_plan(BodyFraming::content_length, true);
  rw.upstream = parser.framing();
  std::string out;
  build_response_head(out, parser.head(), rw);
  CHECK(out ==
        "HTTP/1.1 200 OK\r\nX-A: 1\r\nX-B: 2\r\nContent-Length: 0\r\nVia: 1.1 cutoff\r\n\r\n");
}
