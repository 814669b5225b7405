#include "cutoff/leaf_cache.hpp"

#include <chrono>
#include <utility>

namespace cutoff {

LeafCache::LeafCache(std::shared_ptr<const CertificateAuthority> ca, size_t capacity, Clock clock)
    // A cache of none could not keep the leaf it returns alive.
    : ca_(std::move(ca)), capacity_(capacity > 0 ? capacity : 1), clock_(std::move(clock)) {}

int64_t LeafCache::steady_now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

X509* LeafCache::get(std::string_view host) {
  std::string name = leaf_name(host);
  const int64_t now_ms = clock_();
  auto found = by_host_.find(name);
  if (found == by_host_.end()) {
    X509Ptr minted = ca_->mint(name);
    return minted ? insert(std::move(name), std::move(minted), now_ms) : nullptr;
  }
  Leaves::iterator leaf = found->second;
  leaves_.splice(leaves_.begin(), leaves_, leaf);
  if (now_ms - leaf->minted_ms >= kRemintAfterMs) {
    // A failed re-mint keeps the old leaf: it is valid for weeks yet.
    if (X509Ptr fresh = ca_->mint(name)) {
      leaf->certificate = std::move(fresh);
      leaf->minted_ms = now_ms;
    }
  }
  return leaf->certificate.get();
}

X509* LeafCache::insert(std::string host, X509Ptr certificate, int64_t now_ms) {
  if (leaves_.size() >= capacity_) {
    by_host_.erase(leaves_.back().host);
    leaves_.pop_back();
  }
  leaves_.push_front(Leaf{std::move(host), std::move(certificate), now_ms});
  by_host_.emplace(leaves_.front().host, leaves_.begin());
  return leaves_.front().certificate.get();
}

}  // namespace cutoff
