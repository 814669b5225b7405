// A head parses the same however reads cut it: at one or two places
// anywhere, with the faults the parser looks for (a bare LF, an obs-fold)
// at every line, alone or after a pipelined request.

#include <catch2/catch.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "cutoff/http_parser.hpp"

using namespace cutoff;
using Event = HttpParser::Event;

namespace {

// What a head came to: its fields with their roles, or the error.
std::string describe_head(const MessageHead& head) {
  std::string out = std::string(head.method()) + " " + std::string(head.target()) + "\n";
  for (size_t i = 0; i < head.header_count(); ++i) {
    MessageHead::Header h = head.header(i);
    out.append(h.name).append("=").append(h.value);
    out.append(h.role == HeaderRole::hop_by_hop ? " (hop)\n" : "\n");
  }
  return out;
}

// Feeds `bytes` cut at `cuts` (ascending), through as many messages as they
// hold; each head is described, an error ends the story.
std::string parse_in_pieces(std::string_view bytes, const std::vector<size_t>& cuts) {
  HttpParser parser(HTTP_REQUEST);
  std::string story;
  size_t from = 0;
  std::vector<size_t> ends = cuts;
  ends.push_back(bytes.size());
  for (size_t end : ends) {
    std::string piece(bytes.substr(from, end - from));  // its own buffer, as a read is
    from = end;
    std::string_view rest = piece;
    for (;;) {
      size_t used = 0;
      Event e = parser.feed(rest.empty() ? "" : rest.data(), rest.size(), &used);
      rest.remove_prefix(used);
      if (e == Event::error) return story + "error: " + parser.error_reason();
      if (e == Event::head) story += describe_head(parser.head());
      if (e == Event::need_more) break;
    }
  }
  return story;
}

const std::vector<std::string> kLines = {"GET http://h/abcdefghijklmnop HTTP/1.1",
                                         "Host: h",
                                         "Connection: x-a, keep-alive",
                                         "X-A: 0123456789abcdef0123",
                                         "X-B: v",
                                         ""};

std::string join_lines(const std::vector<std::string>& lines) {
  std::string out;
  for (const std::string& line : lines) out += line + "\r\n";
  return out;
}

// Every way of cutting `bytes` once or twice gives what one read gives.
void check_every_cut(const std::string& bytes, bool expect_error) {
  const std::string whole = parse_in_pieces(bytes, {});
  INFO(bytes);
  REQUIRE((whole.find("error:") != std::string::npos) == expect_error);
  for (size_t i = 1; i < bytes.size(); ++i) {
    for (size_t j = i; j < bytes.size(); ++j) {
      INFO("cut at " << i << " and " << j);
      std::string split = parse_in_pieces(bytes, {i, j});
      // The reason an error names may depend on what llhttp saw first; that
      // there is one does not.
      if (expect_error) {
        REQUIRE(split.find("error:") != std::string::npos);
      } else {
        REQUIRE(split == whole);
      }
    }
  }
}

}  // namespace

TEST_CASE("a clean head parses the same however two cuts split it", "[http_parser][splits]") {
  check_every_cut(join_lines(kLines), false);
}

TEST_CASE("a bare LF at the end of any line is found however two cuts split the head",
          "[http_parser][splits]") {
  for (size_t line = 0; line < kLines.size(); ++line) {
    std::string bytes;
    for (size_t i = 0; i < kLines.size(); ++i) bytes += kLines[i] + (i == line ? "\n" : "\r\n");
    check_every_cut(bytes, true);
  }
}

TEST_CASE("an obs-fold after any field line is found however two cuts split the head",
          "[http_parser][splits]") {
  for (size_t line = 1; line + 1 < kLines.size(); ++line) {
    for (std::string_view fold : {" x", "\tx"}) {
      std::vector<std::string> lines = kLines;
      lines.insert(lines.begin() + static_cast<long>(line) + 1, std::string(fold));
      check_every_cut(join_lines(lines), true);
    }
  }
}

// The second head reuses the first one's field slots: none of the first
// one's fields, nor the roles its Connection gave them, may show through.
TEST_CASE("pipelined heads parse the same however two cuts split them", "[http_parser][splits]") {
  const std::string second = "GET http://g/ HTTP/1.1\r\nX-A: 2\r\n\r\n";
  const std::string bytes = join_lines(kLines) + second;
  const std::string whole = parse_in_pieces(bytes, {});
  CHECK(
      whole ==
      "GET http://h/abcdefghijklmnop\nHost=h\nConnection=x-a, keep-alive\nX-A=0123456789abcdef0123 "
      "(hop)\nX-B=v\nGET http://g/\nX-A=2\n");
  check_every_cut(bytes, false);
}

TEST_CASE("a fault in a pipelined head is found however two cuts split the bytes",
          "[http_parser][splits]") {
  const std::string first = "GET http://g/ HTTP/1.1\r\nX-A: 2\r\n\r\n";
  for (size_t line = 0; line < kLines.size(); ++line) {
    std::string bytes = first;
    for (size_t i = 0; i < kLines.size(); ++i) bytes += kLines[i] + (i == line ? "\n" : "\r\n");
    check_every_cut(bytes, true);
  }
}
