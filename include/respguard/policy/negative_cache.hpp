// Negative cache: "key K in db D is absent" remembered for a while after Redis answered nil,
// so repeated GETs of absent keys (cache penetration) are answered by the proxy.
//
// Shared by all workers (a write on any worker must drop an entry at once), so it is striped:
// a key hashes to one of N stripes, each a mutex over a map and an LRU list. Lookups of keys
// under no negative-cache rule never reach it.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string_view>

#include "respguard/policy/key.hpp"

namespace respguard::policy {

class NegativeCache {
 public:
  using Clock = std::function<std::chrono::steady_clock::time_point()>;

  // max_entries bounds the whole cache (split evenly over the stripes); the least recently
  // used entry of a full stripe is evicted. 0 remembers nothing.
  explicit NegativeCache(std::size_t max_entries, Clock clock = std::chrono::steady_clock::now,
                         std::size_t stripes = 64);
  ~NegativeCache();

  // Keys are db_keys ("db\0key"); the request path passes the hash it computed once.
  // Renews the entry when the key is already remembered; a ttl <= 0 remembers nothing.
  void remember(HashedKey dk, std::chrono::milliseconds ttl);
  // True while an unexpired entry says the key is absent (and marks it recently used).
  // An empty cache answers without a lock.
  bool contains(HashedKey dk);
  void forget(HashedKey dk);
  bool empty() const { return count_.load(std::memory_order_acquire) == 0; }
  // Lock-free pre-check: false means certainly not remembered. A bit per hash bucket, set by
  // remember() under its stripe's lock and cleared only when the whole cache is empty, with
  // every stripe locked: a remembered key's bit is always set. A stale bit merely sends the
  // lookup to the lock.
  bool maybe_contains(const HashedKey& dk) const {
    const std::size_t bit = (dk.hash >> 13) % kPresenceBits;
    return (presence_[bit / 64].load(std::memory_order_acquire) >> (bit % 64)) & 1u;
  }

  // The same by (db, key), for callers without a db_key at hand.
  void remember(int db, std::string_view key, std::chrono::milliseconds ttl) {
    std::string buf;
    remember(db_key(db, key, buf), ttl);
  }
  bool contains(int db, std::string_view key) {
    std::string buf;
    return contains(db_key(db, key, buf));
  }
  void forget(int db, std::string_view key) {
    std::string buf;
    forget(db_key(db, key, buf));
  }
  void clear_db(int db);  // FLUSHDB, SWAPDB
  void clear();           // FLUSHALL, coherence loss

  // Entries held, including expired ones not yet dropped (expiry is lazy: on lookup, or when
  // a full stripe makes room).
  std::size_t size() const;
  // Valid entries pushed out to make room (not expired ones).
  std::uint64_t evictions() const;

 private:
  struct Stripe;
  Stripe& stripe_for(const HashedKey& dk);
  Clock clock_;
  std::size_t per_stripe_;
  std::unique_ptr<Stripe[]> stripes_;
  std::size_t stripe_count_;
  std::atomic<std::size_t> count_{0};  // entries in all stripes
  static constexpr std::size_t kPresenceBits = 8192;
  std::array<std::atomic<std::uint64_t>, kPresenceBits / 64> presence_{};
  void mark_present(const HashedKey& dk) {
    const std::size_t bit = (dk.hash >> 13) % kPresenceBits;
    presence_[bit / 64].fetch_or(std::uint64_t{1} << (bit % 64), std::memory_order_release);
  }
  bool erased(std::size_t n);      // count_ -= n; true when that emptied the cache
  void clear_presence_if_empty();  // takes every stripe lock: call with none held
};

}  // namespace respguard::policy
