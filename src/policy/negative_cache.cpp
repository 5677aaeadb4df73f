#include "respguard/policy/negative_cache.hpp"

#include <algorithm>
#include <list>
#include <mutex>
#include <string>
#include <unordered_map>

namespace respguard::policy {
namespace {

using TimePoint = std::chrono::steady_clock::time_point;

// One remembered absence. The list node owns the key bytes; the index refers to them.
struct Node {
  int db;
  std::string key;
  TimePoint expires;
};

using Lru = std::list<Node>;  // front: most recently used

// The index key: views into a Node's key. std::list nodes never move, and neither does the
// character buffer of a std::string that is not modified (for short keys it lives inside the
// node itself), so the view stays valid as long as the node. Looking up by a KeyRef built from
// the caller's string_view needs no copy and no allocation.
struct KeyRef {
  int db;
  std::string_view key;
  bool operator==(const KeyRef&) const = default;
};

std::size_t hash_key(int db, std::string_view key) {
  const std::size_t h = std::hash<std::string_view>{}(key);
  return h ^ (static_cast<std::size_t>(static_cast<unsigned>(db)) * 0x9e3779b97f4a7c15ull);
}

struct KeyRefHash {
  std::size_t operator()(const KeyRef& k) const { return hash_key(k.db, k.key); }
};

}  // namespace

struct NegativeCache::Stripe {
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

NegativeCache::Stripe& NegativeCache::stripe_for(int db, std::string_view key) {
  // The stripe comes from the high bits (mixed again), the map's buckets from the low ones, so
  // keys of one stripe still spread over that stripe's buckets.
  const std::size_t h = hash_key(db, key) * 0xff51afd7ed558ccdull;
  return stripes_[(h >> 32) % stripe_count_];
}

void NegativeCache::remember(int db, std::string_view key, std::chrono::milliseconds ttl) {
  if (per_stripe_ == 0 || ttl.count() <= 0) return;  // disabled, or nothing to remember
  const TimePoint now = clock_();  // outside the lock: the clock may be slow, the lock is shared
  const TimePoint expires = now + ttl;
  Stripe& s = stripe_for(db, key);
  std::lock_guard lock(s.mutex);
  if (auto it = s.index.find(KeyRef{db, key}); it != s.index.end()) {
    it->second->expires = expires;
    s.lru.splice(s.lru.begin(), s.lru, it->second);
    return;
  }
  if (s.index.size() >= s.capacity) {
    const Node& oldest = s.lru.back();
    // An entry that had expired anyway is not an eviction: nothing useful was lost.
    if (oldest.expires > now) ++s.evictions;
    s.erase(s.index.find(KeyRef{oldest.db, oldest.key}));
  }
  s.lru.push_front(Node{db, std::string(key), expires});
  s.index.emplace(KeyRef{db, s.lru.front().key}, s.lru.begin());
}

bool NegativeCache::contains(int db, std::string_view key) {
  if (per_stripe_ == 0) return false;
  const TimePoint now = clock_();
  Stripe& s = stripe_for(db, key);
  std::lock_guard lock(s.mutex);
  auto it = s.index.find(KeyRef{db, key});
  if (it == s.index.end()) return false;
  // Expiry is checked here rather than by a sweeper: an expired entry costs memory only until it
  // is looked up again or pushed out of its stripe by newer ones.
  if (it->second->expires <= now) {
    s.erase(it);
    return false;
  }
  s.lru.splice(s.lru.begin(), s.lru, it->second);
  return true;
}

void NegativeCache::forget(int db, std::string_view key) {
  if (per_stripe_ == 0) return;
  Stripe& s = stripe_for(db, key);
  std::lock_guard lock(s.mutex);
  if (auto it = s.index.find(KeyRef{db, key}); it != s.index.end()) s.erase(it);
}

void NegativeCache::clear_db(int db) {
  for (std::size_t i = 0; i < stripe_count_; ++i) {
    Stripe& s = stripes_[i];
    std::lock_guard lock(s.mutex);
    for (auto node = s.lru.begin(); node != s.lru.end();) {
      auto next = std::next(node);
      if (node->db == db) s.erase(s.index.find(KeyRef{node->db, node->key}));
      node = next;
    }
  }
}

void NegativeCache::clear() {
  for (std::size_t i = 0; i < stripe_count_; ++i) {
    Stripe& s = stripes_[i];
    std::lock_guard lock(s.mutex);
    s.index.clear();
    s.lru.clear();
  }
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
