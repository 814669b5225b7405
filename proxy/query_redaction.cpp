#include "cutoff/query_redaction.hpp"

namespace cutoff {

std::string ShownTarget::to_string() const {
  std::string text(kept);
  if (redacted) text.append(kRedactionMarker);
  return text;
}

ShownTarget redact_query(std::string_view target) {
  // The query starts at the first '?' and the fragment at the first '#';
  // whichever comes first, nothing after it is shown.
  size_t delimiter = target.find_first_of("?#");
  if (delimiter == std::string_view::npos || delimiter + 1 == target.size()) {
    return ShownTarget{target, false};
  }
  return ShownTarget{target.substr(0, delimiter + 1), true};
}

}  // namespace cutoff
