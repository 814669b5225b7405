#include "cutoff/address_order.hpp"

#include <cstddef>

namespace cutoff {

void interleave_families(std::span<const sockaddr* const> in, AddressList* out) {
  if (in.empty()) return;
  const sa_family_t first_family = in.front()->sa_family;
  // One cursor per family: the next address of that family not taken yet.
  size_t first = 0;
  size_t other = 0;
  auto advance = [&](size_t& cursor, bool want_first) {
    while (cursor < in.size() && (in[cursor]->sa_family == first_family) != want_first) ++cursor;
  };
  advance(first, true);
  advance(other, false);
  bool first_turn = true;
  while (out->count < AddressList::kMax && (first < in.size() || other < in.size())) {
    // Alternate while both families have addresses left; then drain the one left.
    const bool take_first = other >= in.size() || (first < in.size() && first_turn);
    size_t& cursor = take_first ? first : other;
    out->add(in[cursor++]);
    advance(cursor, take_first);
    first_turn = !take_first;
  }
}

AddressList interleave_families(const AddressList& in) {
  const sockaddr* addresses[AddressList::kMax];
  for (int i = 0; i < in.count; ++i) addresses[i] = in.at(i);
  AddressList out;
  interleave_families(std::span(addresses, static_cast<size_t>(in.count)), &out);
  return out;
}

}  // namespace cutoff
