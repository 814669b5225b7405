#include <catch2/catch.hpp>
#include <string>

#include "cutoff/uri_path.hpp"

using namespace cutoff;

namespace {

std::string normal(std::string_view path, PathReading reading = PathReading::strict) {
  std::string out;
  switch (normalize_path(path, reading, &out)) {
    case PathError::none:
      return out;
    case PathError::bad_escape:
      return "refused";
    case PathError::hidden_separator:
      return "hidden separator";
  }
  return "?";
}

}  // namespace

// SPEC §9: the spellings a hostile client tries all normalise to /admin/x.
TEST_CASE("normalize_path: other spellings of one path", "[uri_path]") {
  for (const char* path :
       {"/admin/x", "/%61dmin/x", "/%61%64%6D%69%6e/x", "//admin/x", "/./admin/x", "/x/../admin/x",
        "/%2e/admin/x", "/%2E%2E/admin/x", "/a/b/../../admin/x", "/admin//x", "/admin/./x",
        "///admin/x?q=1", "/admin/x/y/..", "/../../admin/x"}) {
    INFO(path);
    CHECK(normal(path) ==
          "/admin/x" + std::string(std::string_view(path).ends_with("..") ? "/" : ""));
  }
}

TEST_CASE("normalize_path: what stays as it was", "[uri_path]") {
  CHECK(normal("/") == "/");
  CHECK(normal("") == "/");
  CHECK(normal("?q") == "/");
  CHECK(normal("/ADMIN/x") == "/ADMIN/x");  // prefixes are case-sensitive
  CHECK(normal("/a%2fb") == "/a%2Fb");      // a reserved escape stays one, hex upper-cased
  CHECK(normal("/a%20b") == "/a%20b");
  CHECK(normal("/a%7Eb") == "/a~b");
  CHECK(normal("/admin/") == "/admin/");
  CHECK(normal("/admin/.") == "/admin/");
  CHECK(normal("/admin/..") == "/");
  CHECK(normal("/..") == "/");
  CHECK(normal("/.../x") == "/.../x");
  // What a path may not carry raw is escaped, as a client escaping it would.
  CHECK(normal("/a\\b") == "/a%5Cb");
  CHECK(normal("/a%5cb") == "/a%5Cb");
  CHECK(normal("/caf\xc3\xa9/a\"b") == "/caf%C3%A9/a%22b");
  CHECK(normal("/a!$&'()*+,;=:@b") == "/a!$&'()*+,;=:@b");
}

TEST_CASE("normalize_path: a % without two hex digits cannot be normalised", "[uri_path]") {
  for (const char* path : {"/%", "/%2", "/%zz", "/a%g0", "/%%41"}) {
    INFO(path);
    CHECK(normal(path) == "refused");
  }
  CHECK(normal("/ok?%zz") == "/ok");  // the query is not the path
}

// Lenient servers see another path; routes weigh both readings (route.hpp).
TEST_CASE("normalize_path: the lenient reading", "[uri_path]") {
  const auto lenient = PathReading::lenient;
  CHECK(normal("/%2Fadmin/x", lenient) == "/admin/x");
  CHECK(normal("/x%2F..%2Fadmin", lenient) == "/admin");
  CHECK(normal("/x%5c..%5cadmin", lenient) == "/admin");
  CHECK(normal("/x\\..\\admin", lenient) == "/admin");
  CHECK(normal("/public/..\\admin", lenient) == "/admin");
  // ;parameters dropped from each segment, as Tomcat, Jetty and Spring do.
  CHECK(normal("/..;/admin", lenient) == "/admin");
  CHECK(normal("/;x/admin", lenient) == "/admin");
  CHECK(normal("/x/..;/admin", lenient) == "/admin");
  CHECK(normal("/.;/admin", lenient) == "/admin");
  CHECK(normal("/secret;jsessionid=1/x", lenient) == "/secret/x");
  CHECK(normal("/a%3Bb", lenient) == "/a%3Bb");  // an escaped ";" is data
  // The strict reading keeps all of them as they are.
  CHECK(normal("/%2Fadmin/x") == "/%2Fadmin/x");
  CHECK(normal("/..;/admin") == "/..;/admin");
  CHECK(normal("/public/..\\admin") == "/public/..%5Cadmin");
  CHECK(readings_may_differ("/%2Fadmin"));
  CHECK(readings_may_differ("/a%5Cb"));
  CHECK(readings_may_differ("/a\\b"));
  CHECK(readings_may_differ("/a;b"));
  CHECK_FALSE(readings_may_differ("/admin/x"));
  CHECK_FALSE(readings_may_differ("/a%2"));
  CHECK_FALSE(readings_may_differ("/a?%2F;"));
}

// Tomcat cuts a parameter at the next raw "/" before decoding; a reading
// that decodes first sees more segments. Such paths cannot be vouched for.
TEST_CASE("normalize_path: a parameter that hides a separator cannot be normalised", "[uri_path]") {
  for (const char* path : {"/public/..;%2F..%2Fpublic/admin/x", "/admin;%2F../x", "/admin;x%2F../x",
                           "/admin;%5C../x", "/admin;x\\y", "/a;b%2f"}) {
    INFO(path);
    CHECK(normal(path) == "hidden separator");
    CHECK(normal(path, PathReading::lenient) == "hidden separator");
  }
  CHECK(normal("/a;b/c%2Fd") == "/a;b/c%2Fd");  // the parameter ends at the raw "/"
  CHECK(normal("/a%3Bb%2Fc") == "/a%3Bb%2Fc");  // an escaped ";" starts no parameter
}
