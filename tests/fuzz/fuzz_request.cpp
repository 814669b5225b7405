// Client requests, as cutoff reads and forwards them (SPEC §2, §9).
//
// Input: one option byte, one byte choosing how the stream is cut into reads
// (Splits), then the bytes a client sends on one connection. Each request
// is parsed as the session does; for each head cutoff accepts, the target,
// the canonical host and the normalised path are checked, the upstream head
// is built, and what the upstream would read (that head, then the body bytes
// cutoff passes through raw) must parse as the same single message.

#include <string>
#include <string_view>

#include "cutoff/address.hpp"
#include "cutoff/http_parser.hpp"
#include "cutoff/http_rewrite.hpp"
#include "cutoff/uri_path.hpp"
#include "fuzz_support.hpp"

namespace cutoff::fuzz {
namespace {

// Pipelined requests checked per input; more add little but time.
constexpr int kMaxRequests = 4;
constexpr std::string_view kParentCredentials = "Basic Y2k6c2VjcmV0";
constexpr std::string_view kParentAuthorization = "Proxy-Authorization: Basic Y2k6c2VjcmV0\r\n";

// The canonical spelling of a host is a fixed point (SPEC §9): routes compare
// it byte for byte, so canonicalising twice must not change it.
void check_canonical_host(const std::string& host) {
  Context context("canonical host", host);
  std::string again;
  FUZZ_CHECK(canonical_host(host, host.find(':') != std::string::npos, &again));
  FUZZ_CHECK(again == host);
}

bool is_upper_hex(char c) {
  return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'F');
}

int hex_value(char c) {
  return c <= '9' ? c - '0' : c - 'A' + 10;
}

bool is_unreserved(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '.' || c == '_' || c == '~';
}

// What path_prefix routes compare against must leave no other spelling of the
// same path: one slash between segments, no dot segments, escapes only where
// needed and in upper case, and in the slashes reading no escaped slashes.
void check_normal_form(const std::string& path, PathReading reading) {
  Context context("normalised path", path);
  FUZZ_CHECK(!path.empty() && path.front() == '/');
  FUZZ_CHECK(path.find("//") == std::string::npos);
  FUZZ_CHECK(path.find('?') == std::string::npos);
  size_t start = 1;
  while (start <= path.size()) {
    size_t end = std::min(path.find('/', start), path.size());
    std::string_view segment = std::string_view(path).substr(start, end - start);
    FUZZ_CHECK(segment != "." && segment != "..");
    start = end + 1;
  }
  for (size_t i = 0; i < path.size(); ++i) {
    if (reading == PathReading::lenient) FUZZ_CHECK(path[i] != ';');
    if (path[i] != '%') {
      // Raw: only what a path may carry raw; the rest is escaped.
      FUZZ_CHECK(is_unreserved(path[i]) ||
                 std::string_view("!$&'()*+,;=:@/").find(path[i]) != std::string_view::npos);
      continue;
    }
    FUZZ_CHECK(i + 2 < path.size() && is_upper_hex(path[i + 1]) && is_upper_hex(path[i + 2]));
    char decoded = static_cast<char>(hex_value(path[i + 1]) * 16 + hex_value(path[i + 2]));
    FUZZ_CHECK(!is_unreserved(decoded));
    if (reading == PathReading::lenient) FUZZ_CHECK(decoded != '/' && decoded != '\\');
  }
  std::string again;
  FUZZ_CHECK(normalize_path(path, reading, &again) == PathError::none);
  FUZZ_CHECK(again == path);
}

void check_path(std::string_view path) {
  Context context("request path", path);
  std::string strict, lenient;
  PathError strict_error = normalize_path(path, PathReading::strict, &strict);
  PathError lenient_error = normalize_path(path, PathReading::lenient, &lenient);
  FUZZ_CHECK(strict_error == lenient_error);  // a path fails the same way in either reading
  if (strict_error != PathError::none) return;
  check_normal_form(strict, PathReading::strict);
  check_normal_form(lenient, PathReading::lenient);
  // The router skips the second reading when this says it cannot differ.
  if (!readings_may_differ(path)) FUZZ_CHECK(strict == lenient);
}

// A worker's memo of the last authority it parsed gives what a parse gives,
// whether it holds this authority (the second parse) or another.
void check_authority_memo(std::string_view target_text, const Target& parsed) {
  static AuthorityMemo memo;  // kept across inputs, as a worker keeps it across requests
  for (int i = 0; i < 2; ++i) {
    Target again;
    FUZZ_CHECK(parse_absolute_target(target_text, &again, &memo) == TargetError::none);
    FUZZ_CHECK(again.host == parsed.host && again.port == parsed.port &&
               again.authority == parsed.authority && again.path == parsed.path);
  }
}

// The Host cutoff writes names the target it routed, and nothing else.
void check_host_field(const MessageHead& forwarded, const Target& target) {
  FUZZ_CHECK(count_role(forwarded, HeaderRole::host) == 1);
  std::string url = "http://" + std::string(forwarded.find("host")) + "/";
  Target again;
  FUZZ_CHECK(parse_absolute_target(url, &again) == TargetError::none);
  FUZZ_CHECK(again.host == target.host && again.port == target.port);
}

// One framing field, written by cutoff from the framing it validated.
void check_framing_fields(const MessageHead& forwarded, const Framing& framing) {
  size_t lengths = count_role(forwarded, HeaderRole::content_length);
  size_t codings = count_role(forwarded, HeaderRole::transfer_encoding);
  switch (framing.kind) {
    case Framing::Kind::length:
      FUZZ_CHECK(lengths == 1 && codings == 0);
      break;
    case Framing::Kind::chunked:
      FUZZ_CHECK(lengths == 0 && codings == 1);
      FUZZ_CHECK(forwarded.find("transfer-encoding") == "chunked");
      break;
    case Framing::Kind::none:
    case Framing::Kind::until_close:
      FUZZ_CHECK(lengths == 0 && codings == 0);
      break;
  }
}

// Hop-by-hop fields stay behind (SPEC §2): the fixed list and whatever the
// client's Connection named, except what cutoff itself adds: Via, and for an
// upgrade its own Upgrade and Connection: upgrade.
void check_hop_by_hop(const MessageHead& original, const MessageHead& forwarded,
                      const RequestRewrite& rewrite) {
  for (size_t i = 0; i < forwarded.header_count(); ++i) {
    std::string_view name = forwarded.header(i).name;
    if (rewrite.upgrade && (iequals(name, "upgrade") || iequals(name, "connection"))) continue;
    // cutoff's own credentials for a parent proxy, never the client's.
    if (!rewrite.proxy_authorization.empty() && iequals(name, "proxy-authorization")) continue;
    FUZZ_CHECK(!fixed_hop_by_hop(name));
  }
  if (rewrite.upgrade) {
    check_upgrade_field(original, forwarded);
    FUZZ_CHECK(count_named(forwarded, "connection") == 1);
    FUZZ_CHECK(forwarded.find("connection") == "upgrade");
  }
  for (std::string_view option : connection_options(original)) {
    Context context("option of the client's Connection", option);
    // To a parent, Via and Proxy-Authorization are always cutoff's own.
    bool to_parent = rewrite.absolute_form;
    bool cutoffs_own = iequals(option, "content-length") || iequals(option, "transfer-encoding") ||
                       iequals(option, "host") ||
                       ((rewrite.via || to_parent) && iequals(option, "via")) ||
                       (to_parent && iequals(option, "proxy-authorization")) ||
                       (rewrite.upgrade && iequals(option, "upgrade"));
    if (!cutoffs_own) FUZZ_CHECK(count_named(forwarded, option) == 0);
  }
}

// Nothing end-to-end is lost, reordered or invented: the client's fields in
// order, then cutoff's own (Upgrade is checked on its own).
void check_end_to_end(const MessageHead& original, const MessageHead& forwarded,
                      const RequestRewrite& rewrite) {
  HeaderList expected = end_to_end_headers(original);
  if (rewrite.upgrade) expected.emplace_back("Connection", "upgrade");
  if (!rewrite.proxy_authorization.empty()) {
    expected.emplace_back("Proxy-Authorization", kParentCredentials);
  }
  // To a parent, Via is always sent, with this process's mark.
  if (rewrite.absolute_form) {
    FUZZ_CHECK(carries_own_via(forwarded));
    FUZZ_CHECK(!carries_own_via(original));
    MessageHead::Header last = forwarded.header(forwarded.header_count() - 1);
    FUZZ_CHECK(iequals(last.name, "via") && last.value.substr(0, 12) == "1.1 cutoff (");
    expected.emplace_back("Via", last.value);
  }
  if (rewrite.via && !rewrite.absolute_form) expected.emplace_back("Via", "1.1 cutoff");
  HeaderList actual;
  for (size_t i = 0; i < forwarded.header_count(); ++i) {
    MessageHead::Header h = forwarded.header(i);
    if (h.role == HeaderRole::host || h.role == HeaderRole::content_length ||
        h.role == HeaderRole::transfer_encoding || iequals(h.name, "upgrade")) {
      continue;
    }
    actual.emplace_back(h.name, h.value);
  }
  FUZZ_CHECK(actual == expected);
}

// The head cutoff sends upstream, as the upstream parses it.
void check_forwarded_head(const HttpParser& original, const Target& target,
                          const RequestRewrite& rewrite, const HttpParser& upstream) {
  const MessageHead& forwarded = upstream.head();
  FUZZ_CHECK(forwarded.method() == original.head().method());
  FUZZ_CHECK(forwarded.http_major() == 1 && forwarded.http_minor() == 1);
  std::string origin_form = target.empty_path ? "/" : "";
  origin_form.append(target.path);
  // RFC 9112 §3.2.4: OPTIONS for a bare authority asks the server itself.
  bool asks_server = target.no_path && forwarded.method() == "OPTIONS";
  if (asks_server) origin_form = "*";
  if (rewrite.absolute_form) {
    // To a parent proxy: the same URL, with the authority the Host field has.
    std::string url = "http://" + std::string(forwarded.find("host"));
    if (!asks_server) url.append(origin_form);
    FUZZ_CHECK(forwarded.target() == url);
  } else {
    FUZZ_CHECK(forwarded.target() == origin_form);
  }
  FUZZ_CHECK(same_framing(upstream.framing(), original.framing()));
  FUZZ_CHECK(upstream.upgrade_requested() == rewrite.upgrade);
  check_host_field(forwarded, target);
  check_framing_fields(forwarded, original.framing());
  check_hop_by_hop(original.head(), forwarded, rewrite);
  check_field_names(forwarded);
  check_end_to_end(original.head(), forwarded, rewrite);
}

struct Exchange {
  Target target;
  RequestRewrite rewrite;
  std::string upstream_head;
};

// The session's on_request_head: parse the target, route on its canonical
// host and normalised path, build the upstream head. False where the session
// answers the client itself (a bad target, or CONNECT).
bool accept_head(const HttpParser& parser, const RequestRewrite& rewrite, Exchange* ex) {
  const MessageHead& head = parser.head();
  Context context("request target", head.target());
  if (parser.method() == HTTP_CONNECT) {
    if (parse_authority(head.target(), &ex->target) != TargetError::none) return false;
    FUZZ_CHECK(ex->target.port != 0);
    check_canonical_host(ex->target.host);
    return false;  // a tunnel: nothing more is parsed
  }
  if (parse_absolute_target(head.target(), &ex->target) != TargetError::none) return false;
  check_canonical_host(ex->target.host);
  check_authority_memo(head.target(), ex->target);
  FUZZ_CHECK(!ex->target.path.empty());
  FUZZ_CHECK(ex->target.path.find('#') == std::string_view::npos);
  check_path(ex->target.path);
  ex->rewrite = rewrite;
  ex->rewrite.upgrade = parser.upgrade_requested();
  build_request_head(ex->upstream_head, head, parser.framing(), ex->target, ex->rewrite);
  return true;
}

// Reads the next head as the session does; false when none comes. The head
// ends at its empty line (no body byte taken for head) and is HTTP/1.0 or
// 1.1: cutoff answers by the client's version (SPEC §1, never chunked to
// HTTP/1.0), so it must know which one it is.
bool read_head(HttpParser& parser, Driver& client, Event* e) {
  size_t start = client.offset();
  *e = client.next();
  if (*e == Event::need_more || *e == Event::error) return false;
  FUZZ_CHECK(*e == Event::head || *e == Event::upgrade);  // never a body before its head
  FUZZ_CHECK(client.offset() == head_end(client.stream(), start));
  FUZZ_CHECK(*e == Event::head || parser.upgrade_requested());
  FUZZ_CHECK(parser.head().http_major() == 1 && parser.head().http_minor() <= 1);
  return true;
}

// Reads the body as the session forwards it: *raw gets the bytes the parser
// used, as they came, and `sink` what they decode to. False when the request
// does not complete.
bool read_body(HttpParser& parser, Driver& client, CollectingSink& sink, std::string* raw) {
  parser.set_body_sink(&sink);
  Event e = client.next(raw);
  parser.set_body_sink(nullptr);
  if (e != Event::message_complete) return false;  // cut short or refused mid-body
  const Framing& framing = parser.framing();
  if (framing.kind == Framing::Kind::length) {
    FUZZ_CHECK(raw->size() == framing.length && sink.body == *raw);
  }
  if (framing.kind == Framing::Kind::none) FUZZ_CHECK(raw->empty());
  if (framing.kind == Framing::Kind::chunked) check_strict_chunked(*raw, sink.body);
  return true;
}

// One request from the client stream; false when the connection cannot
// carry another one.
bool one_request(HttpParser& parser, Driver& client, const RequestRewrite& rewrite,
                 Splits& splits) {
  Event e;
  if (!read_head(parser, client, &e)) return false;
  Exchange ex;
  if (!accept_head(parser, rewrite, &ex)) return false;
  Context head_context("upstream head", ex.upstream_head);
  HttpParser upstream(HTTP_REQUEST);
  // An upgrade request has no body: after its head come the tunnel's bytes.
  if (e == Event::upgrade) {
    FUZZ_CHECK(ex.rewrite.upgrade);
    expect_one_message(upstream, ex.upstream_head, {}, splits, true, false);
    check_forwarded_head(parser, ex.target, ex.rewrite, upstream);
    return false;
  }
  FUZZ_CHECK(!ex.rewrite.upgrade);  // llhttp reports every upgrade as such
  CollectingSink sink;
  std::string raw;
  if (!read_body(parser, client, sink, &raw)) return false;
  std::string decoded = expect_one_message(upstream, ex.upstream_head, raw, splits, false, false);
  check_forwarded_head(parser, ex.target, ex.rewrite, upstream);
  FUZZ_CHECK(decoded == sink.body);
  return true;
}

}  // namespace
}  // namespace cutoff::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace cutoff::fuzz;
  if (size < 2) return 0;
  cutoff::RequestRewrite rewrite;
  rewrite.via = (data[0] & 1u) == 0;
  // Through a parent proxy: absolute form, and cutoff's credentials.
  rewrite.absolute_form = (data[0] & 2u) != 0;
  if (rewrite.absolute_form) rewrite.proxy_authorization = kParentAuthorization;
  Splits splits(data[1]);
  std::string_view stream(reinterpret_cast<const char*>(data) + 2, size - 2);
  Context context("client stream", stream);
  cutoff::HttpParser parser(HTTP_REQUEST);
  Driver client(parser, stream, splits);
  int requests = 0;
  while (requests++ < kMaxRequests && one_request(parser, client, rewrite, splits)) continue;
  return 0;
}
