#pragma once
// Chunk extensions as RFC 9112 §7.1.1 writes them, checked as llhttp reports
// them, a span at a time: a non-empty token name, and a value that is either
// a token or one quoted-string. llhttp accepts looser forms (an empty name,
// a token running into a quote, DEL inside quotes); cutoff forwards chunked
// bodies as they came, so it must not pass on what the next hop may read
// otherwise.

#include <cstdint>
#include <string_view>

namespace cutoff {

class ChunkExtensionCheck {
 public:
  // Each returns false as soon as the extension is malformed.
  bool name(std::string_view part);
  bool end_name();
  bool value(std::string_view part);
  bool end_value();

 private:
  enum class State : uint8_t { name, value_start, token, quoted, escaped, closed };
  State state_ = State::name;
  bool name_seen_ = false;
};

}  // namespace cutoff
