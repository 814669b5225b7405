#pragma once
// A worker's leaf certificates for intercepted hosts (SPEC §10): minting
// costs a signature, so each host's leaf is minted on first use and reused
// until it is old.

#include <cstddef>
#include <cstdint>
#include <functional>
#include <list>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>

#include "cutoff/certificate_authority.hpp"
#include "cutoff/openssl_handles.hpp"

namespace cutoff {

// One per worker thread, used by that thread only (no locking). At most
// `capacity` leaves are kept; the least recently used goes first.
class LeafCache {
 public:
  // Milliseconds on a monotonic clock; a test passes its own.
  using Clock = std::function<int64_t()>;

  // A leaf is re-minted once it is this old, far from the end of its
  // validity, so that one handed out never expires during a handshake.
  static constexpr int64_t kRemintAfterMs = 24 * 3600 * 1000;

  LeafCache(std::shared_ptr<const CertificateAuthority> ca, size_t capacity,
            Clock clock = steady_now_ms);

  // The leaf for `host` (see CertificateAuthority::mint), or nullptr if none
  // can be minted. The cache owns it; it stays valid until the next get(),
  // which is why SSL_use_certificate (which takes its own reference) should
  // be the caller's next step.
  X509* get(std::string_view host);

  size_t size() const { return leaves_.size(); }

  static int64_t steady_now_ms();

 private:
  struct Leaf {
    std::string host;  // as leaf_name() spells it
    X509Ptr certificate;
    int64_t minted_ms;
  };
  using Leaves = std::list<Leaf>;

  X509* insert(std::string host, X509Ptr certificate, int64_t now_ms);

  std::shared_ptr<const CertificateAuthority> ca_;
  size_t capacity_;
  Clock clock_;
  Leaves leaves_;  // most recently used first
  // Keys view Leaf::host inside leaves_, whose nodes never move.
  std::unordered_map<std::string_view, Leaves::iterator> by_host_;
};

}  // namespace cutoff
