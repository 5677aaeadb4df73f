#include "respguard/policy/negative_cache.hpp"

#include <algorithm>
#include <list>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

namespace respguard::policy {
namespace {

using TimePoint = std::chrono::steady_clock::time_point;

// One remembered absence. The list node owns the key bytes; the index refers to them.
struct Node {
  std::string dk;  // "db\0key"
  std::size_t hash;
  int db;
  TimePoint expires;
};

using Lru = std::list<Node>;  // front: most recently used

// The index key: a view of a Node's key and its hash. std::list nodes never move, and neither
// does the character buffer of a std::string that is not modified (for short keys it lives
// inside the node itself), so the view stays valid as long as the node. Lookups build a KeyRef
// from the caller's HashedKey: no copy, no allocation, no second hash.
struct KeyRef {
  std::string_view dk;
  std::size_t hash;
  bool operator==(const KeyRef& o) const { return dk == o.dk; }
};

struct KeyRefHash {
  std::size_t operator()(const KeyRef& k) const { return k.hash; }
};

}  // namespace

struct alignas(64) NegativeCache::Stripe {  // a cache line each
  mutable std::mutex mutex;
  Lru lru;
  std::unordered_map<KeyRef, Lru::iterator, KeyRefHash> index;
  std::size_t capacity = 0;
  std::uint64_t evictions = 0;

  void erase(std::unordered_map<KeyRef, Lru::iterator, KeyRefHash>::iterator it) {
    Lru::iterator node = it->second;
    index.erase(it);  // before the node: the map's key views its bytes
    lru.erase(node);
  }
};

NegativeCache::NegativeCache(std::size_t max_entries, Clock clock, std::size_t stripes)
    : clock_(std::move(clock)) {
  // Never more stripes than entries, so that every stripe holds at least one. The remainder of
  // the division goes to the first stripes: together they hold exactly max_entries.
  stripe_count_ = std::clamp<std::size_t>(std::min(stripes, max_entries), 1, 1u << 16);
  per_stripe_ = max_entries / stripe_count_;
  stripes_ = std::make_unique<Stripe[]>(stripe_count_);
  for (std::size_t i = 0; i < stripe_count_; ++i) {
    stripes_[i].capacity = per_stripe_ + (i < max_entries % stripe_count_ ? 1 : 0);
  }
}

NegativeCache::~NegativeCache() = default;

NegativeCache::Stripe& NegativeCache::stripe_for(const HashedKey& dk) {
  // The stripe comes from the high bits (mixed again), the map's buckets from the low ones, so
  // keys of one stripe still spread over that stripe's buckets.
  const std::size_t h = dk.hash * 0xff51afd7ed558ccdull;
  return stripes_[(h >> 32) % stripe_count_];
}

void NegativeCache::remember(HashedKey dk, std::chrono::milliseconds ttl) {
  if (per_stripe_ == 0 || ttl.count() <= 0) return;  // disabled, or nothing to remember
  const TimePoint now = clock_();  // outside the lock: the clock may be slow, the lock is shared
  const TimePoint expires = now + ttl;
  Stripe& s = stripe_for(dk);
  std::lock_guard lock(s.mutex);
  if (auto it = s.index.find(KeyRef{dk.dk, dk.hash}); it != s.index.end()) {
    it->second->expires = expires;
    s.lru.splice(s.lru.begin(), s.lru, it->second);
    return;
  }
  if (s.index.size() >= s.capacity) {
    const Node& oldest = s.lru.back();
    // An entry that had expired anyway is not an eviction: nothing useful was lost.
    if (oldest.expires > now) ++s.evictions;
    s.erase(s.index.find(KeyRef{oldest.dk, oldest.hash}));
    erased(1);  // the insert below refills it: its bits stay
  }
  s.lru.push_front(Node{std::string(dk.dk), dk.hash, db_of(dk.dk), expires});
  s.index.emplace(KeyRef{s.lru.front().dk, dk.hash}, s.lru.begin());
  count_.fetch_add(1, std::memory_order_release);
  mark_present(dk);
}

bool NegativeCache::contains(HashedKey dk) {
  if (!maybe_contains(dk)) return false;
  const TimePoint now = clock_();
  Stripe& s = stripe_for(dk);
  bool emptied = false;
  {
    std::lock_guard lock(s.mutex);
    auto it = s.index.find(KeyRef{dk.dk, dk.hash});
    if (it == s.index.end()) return false;
    // Expiry is checked here rather than by a sweeper: an expired entry costs memory only
    // until it is looked up again or pushed out of its stripe by newer ones.
    if (it->second->expires > now) {
      s.lru.splice(s.lru.begin(), s.lru, it->second);
      return true;
    }
    s.erase(it);
    emptied = erased(1);
  }
  if (emptied) clear_presence_if_empty();
  return false;
}

void NegativeCache::forget(HashedKey dk) {
  if (!maybe_contains(dk)) return;
  Stripe& s = stripe_for(dk);
  bool emptied = false;
  {
    std::lock_guard lock(s.mutex);
    if (auto it = s.index.find(KeyRef{dk.dk, dk.hash}); it != s.index.end()) {
      s.erase(it);
      emptied = erased(1);
    }
  }
  if (emptied) clear_presence_if_empty();
}

void NegativeCache::clear_db(int db) {
  bool emptied = false;
  for (std::size_t i = 0; i < stripe_count_; ++i) {
    Stripe& s = stripes_[i];
    std::lock_guard lock(s.mutex);
    for (auto node = s.lru.begin(); node != s.lru.end();) {
      auto next = std::next(node);
      if (node->db == db) {
        s.erase(s.index.find(KeyRef{node->dk, node->hash}));
        emptied |= erased(1);
      }
      node = next;
    }
  }
  if (emptied) clear_presence_if_empty();
}

void NegativeCache::clear() {
  bool emptied = false;
  for (std::size_t i = 0; i < stripe_count_; ++i) {
    Stripe& s = stripes_[i];
    std::lock_guard lock(s.mutex);
    emptied |= erased(s.index.size());
    s.index.clear();
    s.lru.clear();
  }
  if (emptied) clear_presence_if_empty();
}

bool NegativeCache::erased(std::size_t n) {
  return n != 0 && count_.fetch_sub(n, std::memory_order_acq_rel) == n;
}

void NegativeCache::clear_presence_if_empty() {
  // With every stripe locked no remember() is half done, so "empty" is the whole truth; a
  // remember() that came in between already refilled the cache and keeps the bits.
  std::vector<std::unique_lock<std::mutex>> locks;
  locks.reserve(stripe_count_);
  for (std::size_t i = 0; i < stripe_count_; ++i) locks.emplace_back(stripes_[i].mutex);
  if (count_.load(std::memory_order_acquire) != 0) return;
  for (auto& word : presence_) word.store(0, std::memory_order_relaxed);
}

std::size_t NegativeCache::size() const {
  std::size_t total = 0;
  for (std::size_t i = 0; i < stripe_count_; ++i) {
    std::lock_guard lock(stripes_[i].mutex);
    total += stripes_[i].index.size();
  }
  return total;
}

std::uint64_t NegativeCache::evictions() const {
  std::uint64_t total = 0;
  for (std::size_t i = 0; i < stripe_count_; ++i) {
    std::lock_guard lock(stripes_[i].mutex);
    total += stripes_[i].evictions;
  }
  return total;
}

}  // namespace respguard::policy
