// What logs and /connections show of a request target: the query (and a
// fragment) replaced by a marker unless log_query, a userinfo always, in
// every target form and in the odd spellings clients send.

#include <catch2/catch.hpp>
#include <string>

#include "cutoff/query_redaction.hpp"

using namespace cutoff;

namespace {

std::string shown(std::string_view target) {
  return redact_query(target).to_string();
}

}  // namespace

TEST_CASE("redaction: the query of an absolute-form target is replaced by the marker",
          "[query_redaction]") {
  CHECK(shown("http://example.com/a/b?token=secret&x=1") == "http://example.com/a/b?<redacted>");
  CHECK(shown("http://example.com:8080/?q") == "http://example.com:8080/?<redacted>");
  // No path at all: the query follows the authority.
  CHECK(shown("http://example.com?q=1") == "http://example.com?<redacted>");
}

TEST_CASE("redaction: the query of an origin-form target is replaced by the marker",
          "[query_redaction]") {
  CHECK(shown("/search?q=cutoff") == "/search?<redacted>");
  CHECK(shown("/a?b?c") == "/a?<redacted>");
}

TEST_CASE("redaction: a userinfo is hidden, whatever log_query says", "[query_redaction]") {
  for (bool log_query : {false, true}) {
    CAPTURE(log_query);
    auto shown_as = [&](std::string_view target) {
      return show_target(target, log_query).to_string();
    };
    CHECK(shown_as("http://user:secret@example.com/a") == "http://<redacted>@example.com/a");
    CHECK(shown_as("http://token@example.com:8080/") == "http://<redacted>@example.com:8080/");
    CHECK(shown_as("HTTP://u:p@[::1]/") == "HTTP://<redacted>@[::1]/");
    // The last '@' of the authority ends the userinfo: no part of it shows.
    CHECK(shown_as("http://u:p@ss@example.com/") == "http://<redacted>@example.com/");
    // Authority form, as CONNECT sends it.
    CHECK(shown_as("user:secret@example.com:443") == "<redacted>@example.com:443");
    // A network-path reference, which a confused client may send.
    CHECK(shown_as("//user:secret@example.com/a") == "//<redacted>@example.com/a");
    // An '@' after the authority belongs to the path or the query.
    CHECK(shown_as("http://example.com/a@b") == "http://example.com/a@b");
    CHECK(shown_as("/a@b") == "/a@b");
    CHECK(shown_as("http://registry.test/@scope%2fpkg") == "http://registry.test/@scope%2fpkg");
  }
  CHECK(shown("http://u:p@h/p?token=1") == "http://<redacted>@h/p?<redacted>");
  CHECK(show_target("http://u:p@h/p?q=1", /*log_query=*/true).to_string() ==
        "http://<redacted>@h/p?q=1");
  CHECK(shown("http://h?x=@y") == "http://h?<redacted>");
}

TEST_CASE("redaction: a target without a query is shown whole and not copied",
          "[query_redaction]") {
  for (std::string_view target :
       {"http://example.com/a/b", "/", "example.com:443", "[::1]:443", "*", ""}) {
    ShownTarget t = redact_query(target);
    CHECK_FALSE(t.redacted);
    CHECK(t.kept.data() == target.data());
    CHECK(t.kept.size() == target.size());
  }
}

TEST_CASE("redaction: the shown part is a prefix of the target itself", "[query_redaction]") {
  std::string_view target = "http://h/p?secret";
  ShownTarget t = redact_query(target);
  CHECK(t.redacted);
  CHECK(t.kept.data() == target.data());
  CHECK(t.kept == "http://h/p?");
}

TEST_CASE("redaction: a '?' in the first position hides everything after it", "[query_redaction]") {
  CHECK(shown("?token=secret") == "?<redacted>");
}

TEST_CASE("redaction: an empty query has nothing to hide", "[query_redaction]") {
  CHECK(shown("/p?") == "/p?");
  CHECK(shown("http://h/p?") == "http://h/p?");
  CHECK(shown("?") == "?");
  CHECK_FALSE(redact_query("/p?").redacted);
}

TEST_CASE("redaction: a fragment is hidden with the query", "[query_redaction]") {
  CHECK(shown("/p#access_token=secret") == "/p#<redacted>");
  CHECK(shown("/p?q=1#frag") == "/p?<redacted>");
  // An empty query followed by a fragment: the fragment still goes.
  CHECK(shown("/p?#frag") == "/p?<redacted>");
  // A '?' inside a fragment: the fragment starts first.
  CHECK(shown("/p#frag?q=1") == "/p#<redacted>");
  CHECK(shown("/p#") == "/p#");
}

TEST_CASE("redaction: an escaped question mark belongs to the path", "[query_redaction]") {
  CHECK(shown("/a%3Fb") == "/a%3Fb");
  CHECK(shown("/a%3fb") == "/a%3fb");
  CHECK(shown("http://h/a%3Fb?c=%3F") == "http://h/a%3Fb?<redacted>");
}

TEST_CASE("redaction: log_query shows the target whole", "[query_redaction]") {
  std::string_view target = "http://h/p?q=1#f";
  ShownTarget kept = show_target(target, /*log_query=*/true);
  CHECK_FALSE(kept.redacted);
  CHECK(kept.kept == target);
  CHECK(show_target(target, /*log_query=*/false).to_string() == "http://h/p?<redacted>");
}

// Targets are read many bytes at a time: a '?', a '#' or an '@' is found
// wherever it stands, at the edges of such a group, in a short or a long
// target, alone or after another.
TEST_CASE("redaction: a delimiter at any place of a target", "[query_redaction]") {
  // What the marker stands for, from the first '?' or '#' of what
  // redact_userinfo() leaves.
  auto expected = [](std::string_view target) {
    ShownTarget t = redact_userinfo(target);
    size_t at = t.kept.find_first_of("?#");
    if (at != std::string_view::npos && at + 1 < t.kept.size()) {
      t.kept = t.kept.substr(0, at + 1);
      t.redacted = true;
    }
    return t.to_string();
  };
  const char delimiters[] = {'?', '#', '@'};
  for (size_t size = 1; size <= 50; ++size) {
    for (size_t at = 0; at < size; ++at) {
      for (char first : delimiters) {
        for (char second : delimiters) {
          std::string target = "http://" + std::string(size, 'a');
          target[7 + at] = first;
          if (7 + at + 3 < target.size()) target[7 + at + 3] = second;
          INFO(target);
          REQUIRE(redact_query(target).to_string() == expected(target));
        }
      }
    }
  }
}
