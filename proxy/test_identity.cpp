#include "cutoff/test_identity.hpp"

#include "cutoff/ascii.hpp"
#include "cutoff/base64.hpp"

namespace cutoff {

bool valid_test_id(std::string_view id) {
  if (id.empty() || id.size() > kMaxTestIdLength) return false;
  for (char c : id) {
    if (c < 0x20 || c > 0x7E) return false;
  }
  return true;
}

std::string_view basic_token(std::string_view authorization) {
  constexpr std::string_view kBasic = "basic ";
  if (authorization.size() <= kBasic.size() ||
      !iequals(authorization.substr(0, kBasic.size()), kBasic)) {
    return {};
  }
  std::string_view token = authorization.substr(kBasic.size());
  while (!token.empty() && token.front() == ' ') token.remove_prefix(1);
  while (!token.empty() && token.back() == ' ') token.remove_suffix(1);
  return token;
}

std::string basic_user_name(std::string_view authorization) {
  std::string_view token = basic_token(authorization);
  if (token.empty()) return {};
  std::optional<std::string> credentials = base64_decode(token);
  if (!credentials) return {};
  // RFC 7617: the user name ends at the first colon; the password may hold
  // more.
  credentials->resize(std::min(credentials->find(':'), credentials->size()));
  return std::move(*credentials);
}

std::string_view read_test_id(const MessageHead& head, std::string* id) {
  id->clear();
  // Both fields are hop-by-hop to cutoff: a head without any such field
  // (most) has neither, and costs no look.
  if (head.count(HeaderRole::hop_by_hop) == 0) return {};
  std::string_view field;
  int fields = 0;
  std::string_view authorization;
  for (size_t i = 0; i < head.header_count(); ++i) {
    MessageHead::Header h = head.header(i);
    if (h.role != HeaderRole::hop_by_hop) continue;
    if (field_named(h.name, "cutoff-test-id")) {
      if (fields++ > 0 && h.value != field) {
        return "the request carries two different Cutoff-Test-Id fields";
      }
      field = h.value;
    } else if (iequals(h.name, "proxy-authorization")) {
      authorization = h.value;
    }
  }
  if (fields > 0) {
    static_assert(kMaxTestIdLength == 256, "the sentence below names the limit");
    if (!valid_test_id(field)) {
      return "Cutoff-Test-Id must be 1 to 256 characters of printable ASCII";
    }
    id->assign(field);
    return {};
  }
  if (!authorization.empty()) {
    *id = basic_user_name(authorization);
    if (!valid_test_id(*id)) id->clear();
  }
  return {};
}

}  // namespace cutoff
