#include <catch2/catch.hpp>
#include <string>
#include <string_view>

#include "cutoff/base64.hpp"
#include "cutoff/http_parser.hpp"
#include "cutoff/test_identity.hpp"

using namespace cutoff;

namespace {

// The request line and `fields` (each a whole line with its CRLF), parsed
// as the session parses a client's head.
struct Parsed {
  explicit Parsed(std::string_view fields) : parser(HTTP_REQUEST) {
    text = "GET http://example.test/ HTTP/1.1\r\nHost: example.test\r\n";
    text.append(fields).append("\r\n");
    size_t consumed = 0;
    REQUIRE(parser.feed(text.data(), text.size(), &consumed) == HttpParser::Event::head);
  }
  // Reads the id; returns the 400's sentence, or empty.
  std::string read(std::string* id) const { return std::string(read_test_id(parser.head(), id)); }

  std::string text;
  HttpParser parser;
};

std::string basic(std::string_view credentials) {
  return "Proxy-Authorization: Basic " + base64_encode(credentials) + "\r\n";
}

constexpr std::string_view kBadId = "Cutoff-Test-Id must be 1 to 256 characters of printable ASCII";

}  // namespace

TEST_CASE("test id: 1 to 256 bytes of printable ASCII, spaces included", "[test_identity]") {
  CHECK(valid_test_id("a"));
  CHECK(valid_test_id("tests/test_api.py::TestUsers::test_create[param 1]"));
  CHECK(valid_test_id(" "));
  CHECK(valid_test_id("~!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}"));
  CHECK(valid_test_id(std::string(kMaxTestIdLength, 'x')));
  CHECK_FALSE(valid_test_id(""));
  CHECK_FALSE(valid_test_id(std::string(kMaxTestIdLength + 1, 'x')));
  for (int c = 0; c < 0x20; ++c) {
    INFO("byte " << c);
    CHECK_FALSE(valid_test_id(std::string("id") + static_cast<char>(c)));
  }
  CHECK_FALSE(valid_test_id("id\x7f"));
  CHECK_FALSE(valid_test_id("id\x80"));
  CHECK_FALSE(valid_test_id("caf\xc3\xa9"));
  CHECK_FALSE(valid_test_id("\xff"));
}

TEST_CASE("test id: the user name of Basic credentials", "[test_identity]") {
  CHECK(basic_user_name("Basic dXNlcjpwdw==") == "user");
  CHECK(basic_user_name("basic dXNlcjpwdw==") == "user");
  CHECK(basic_user_name("BASIC dXNlcjpwdw==") == "user");
  CHECK(basic_user_name("Basic   dXNlcjpwdw==  ") == "user");
  // What clients send for http://TEST-ID@proxy: an empty password.
  CHECK(basic_user_name("Basic " + base64_encode("id:")) == "id");
  // No colon at all: the whole of it is the user name.
  CHECK(basic_user_name("Basic " + base64_encode("lonely")) == "lonely");
  // RFC 7617: the user name ends at the first colon; the password may hold
  // more.
  CHECK(basic_user_name("Basic " + base64_encode("user:pa:ss:")) == "user");
  CHECK(basic_user_name("Basic " + base64_encode(":pw")).empty());
}

TEST_CASE("test id: what is not Basic credentials has no user name", "[test_identity]") {
  CHECK(basic_user_name("").empty());
  CHECK(basic_user_name("Basic").empty());
  CHECK(basic_user_name("Basic ").empty());
  CHECK(basic_user_name("Basic !!!!").empty());
  CHECK(basic_user_name("Basic dXNlcjpwdw").empty());  // padding missing
  CHECK(basic_user_name("Basic dXNl cjpwdw==").empty());
  CHECK(basic_user_name("Bearer dXNlcjpwdw==").empty());
  CHECK(basic_user_name("Basicd XNlcjpwdw==").empty());
  CHECK(basic_user_name("Digest username=\"user\"").empty());
}

TEST_CASE("test id: from the Cutoff-Test-Id field", "[test_identity]") {
  std::string id = "stale";
  CHECK(Parsed("Cutoff-Test-Id: test_login[chrome]\r\n").read(&id).empty());
  CHECK(id == "test_login[chrome]");
  CHECK(Parsed("cutoff-test-id: a b\r\n").read(&id).empty());
  CHECK(id == "a b");
}

TEST_CASE("test id: from the proxy URL's user name", "[test_identity]") {
  std::string id;
  CHECK(Parsed(basic("test_upload:")).read(&id).empty());
  CHECK(id == "test_upload");
  CHECK(Parsed(basic("alice:s3cret:with:colons")).read(&id).empty());
  CHECK(id == "alice");
}

TEST_CASE("test id: the field wins over the credentials", "[test_identity]") {
  std::string id;
  CHECK(Parsed(basic("from-url:") + "Cutoff-Test-Id: from-field\r\n").read(&id).empty());
  CHECK(id == "from-field");
  CHECK(Parsed("Cutoff-Test-Id: from-field\r\n" + basic("from-url:")).read(&id).empty());
  CHECK(id == "from-field");
}

TEST_CASE("test id: two fields must agree", "[test_identity]") {
  std::string id;
  CHECK(Parsed("Cutoff-Test-Id: same\r\nCutoff-Test-Id: same\r\n").read(&id).empty());
  CHECK(id == "same");
  id = "stale";
  CHECK(Parsed("Cutoff-Test-Id: one\r\nX-Other: 1\r\nCutoff-Test-Id: two\r\n").read(&id) ==
        "the request carries two different Cutoff-Test-Id fields");
  CHECK(id.empty());
  // Three, the third the odd one out.
  CHECK(Parsed("Cutoff-Test-Id: a\r\nCutoff-Test-Id: a\r\nCutoff-Test-Id: b\r\n").read(&id) ==
        "the request carries two different Cutoff-Test-Id fields");
  CHECK(id.empty());
}

TEST_CASE("test id: an unusable field is a 400, whatever the credentials", "[test_identity]") {
  std::string id = "stale";
  CHECK(Parsed("Cutoff-Test-Id:\r\n").read(&id) == kBadId);
  CHECK(id.empty());
  CHECK(Parsed("Cutoff-Test-Id: " + std::string(kMaxTestIdLength + 1, 'x') + "\r\n").read(&id) ==
        kBadId);
  CHECK(Parsed("Cutoff-Test-Id: caf\xc3\xa9\r\n" + basic("good:")).read(&id) == kBadId);
  CHECK(id.empty());
  CHECK(Parsed("Cutoff-Test-Id: " + std::string(kMaxTestIdLength, 'x') + "\r\n").read(&id).empty());
  CHECK(id.size() == kMaxTestIdLength);
}

TEST_CASE("test id: credentials that are no valid id are no id, and no error", "[test_identity]") {
  std::string id = "stale";
  CHECK(Parsed(basic("caf\xc3\xa9:pw")).read(&id).empty());
  CHECK(id.empty());
  CHECK(Parsed(basic(":pw")).read(&id).empty());
  CHECK(id.empty());
  CHECK(Parsed(basic(std::string(kMaxTestIdLength + 1, 'u') + ":")).read(&id).empty());
  CHECK(id.empty());
  CHECK(Parsed("Proxy-Authorization: Basic !!!!\r\n").read(&id).empty());
  CHECK(id.empty());
  CHECK(Parsed("Proxy-Authorization: Bearer abc\r\n").read(&id).empty());
  CHECK(id.empty());
}

TEST_CASE("test id: a head with neither field has none", "[test_identity]") {
  std::string id = "stale";
  // No hop-by-hop field at all: the quick way out.
  CHECK(Parsed("Accept: */*\r\n").read(&id).empty());
  CHECK(id.empty());
  id = "stale";
  // Hop-by-hop fields, but neither of the two; an end-to-end field with a
  // look-alike name is not read.
  CHECK(Parsed("Connection: keep-alive\r\nTE: trailers\r\nX-Cutoff-Test-Id: x\r\n"
               "Authorization: Basic dXNlcjpwdw==\r\n")
            .read(&id)
            .empty());
  CHECK(id.empty());
}
