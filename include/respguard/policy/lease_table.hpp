// Miss leases: after a GET of K misses, the first client holds a lease and is expected to
// load from the database and SET K; other readers of K wait for that SET instead of all
// loading from the database (memcache-style leases). Pure and thread-safe (striped); the
// caller does the I/O and the timers.
//
// Waiter must have `std::uint64_t token` (unique per waiting request) and
// `std::uint64_t client` (the waiting client's id).
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>
#include <type_traits>
#include <unordered_map>
#include <vector>

#include "respguard/policy/key.hpp"

namespace respguard::policy {

template <typename Waiter>
class LeaseTable {
 public:
  using time_point = std::chrono::steady_clock::time_point;

  LeaseTable(std::size_t max_keys, std::size_t stripes = 64)
      : max_per_stripe_(std::max<std::size_t>(1, max_keys / stripes)), stripes_(stripes) {}

  // Before a GET of K is sent: true = another client holds a live lease; `waiter` was queued
  // and comes back through fulfill() (the value), end() (promoted) or expire(). `waiter` may
  // be a Waiter or a callable making one, called only when it has to wait.
  template <typename W>
  bool wait_if_leased(HashedKey dk, time_point now, W&& waiter) {
    if (count_.load(std::memory_order_acquire) == 0) return false;  // the common case: no lock
    Stripe& s = stripe(dk);
    std::lock_guard lock(s.mu);
    auto it = s.leases.find(dk);
    if (it == s.leases.end()) return false;
    Lease& l = it->second;
    if (l.expires <= now && l.waiters.empty()) {
      s.leases.erase(it);
      count_.fetch_sub(1, std::memory_order_release);
      return false;
    }
    if constexpr (std::is_invocable_r_v<Waiter, W>) {
      Waiter w = waiter();
      if (l.holder == w.client) return false;
      l.waiters.push_back(std::move(w));
    } else {
      if (l.holder == waiter.client) return false;
      l.waiters.push_back(std::forward<W>(waiter));
    }
    return true;
  }

  // Whether K has a lease now (live or lapsed with waiters): writes of K then matter to it.
  bool leased(HashedKey dk) {
    if (count_.load(std::memory_order_acquire) == 0) return false;
    Stripe& s = stripe(dk);
    std::lock_guard lock(s.mu);
    return s.leases.find(dk) != s.leases.end();
  }

  enum class Miss { Granted, Wait, NoLease };
  // A GET of K by `waiter.client` missed (nil from Redis or the negative cache). Granted: the
  // client now holds the lease (answer nil). Wait: someone else holds it; queued as above.
  // NoLease: the table is full; answer nil without a lease.
  Miss on_miss(HashedKey dk, time_point now, std::chrono::milliseconds wait, Waiter&& waiter) {
    Stripe& s = stripe(dk);
    std::lock_guard lock(s.mu);
    auto it = s.leases.find(dk);
    if (it != s.leases.end()) {
      Lease& l = it->second;
      if (l.holder == waiter.client || l.expires <= now) {
        if (l.holder != waiter.client) granted_.fetch_add(1, std::memory_order_relaxed);
        l.holder = waiter.client;  // a lapsed lease passes to this client
        l.expires = now + wait;
        return Miss::Granted;
      }
      l.waiters.push_back(std::move(waiter));
      return Miss::Wait;
    }
    if (s.leases.size() >= max_per_stripe_) return Miss::NoLease;
    s.leases.emplace(std::string(dk.dk), Lease{waiter.client, now + wait, {}});
    count_.fetch_add(1, std::memory_order_release);
    granted_.fetch_add(1, std::memory_order_relaxed);
    return Miss::Granted;
  }

  // K was written with a value through the proxy and Redis acknowledged it: the lease ends and
  // every waiter gets that value.
  void fulfill(HashedKey dk, std::vector<Waiter>& out) {
    Stripe& s = stripe(dk);
    std::lock_guard lock(s.mu);
    auto it = s.leases.find(dk);
    if (it == s.leases.end()) return;
    for (Waiter& w : it->second.waiters) out.push_back(std::move(w));
    s.leases.erase(it);
    count_.fetch_sub(1, std::memory_order_release);
  }

  // The lease ends without a value (DEL, a write whose value the proxy cannot see, the
  // holder's disconnect). The first waiter, if any, becomes the holder (it is appended to
  // `promoted` and must be answered nil); the others keep waiting for it.
  void end(HashedKey dk, std::uint64_t only_if_holder, time_point now,
           std::chrono::milliseconds wait, std::vector<Waiter>& promoted) {
    Stripe& s = stripe(dk);
    std::lock_guard lock(s.mu);
    auto it = s.leases.find(dk);
    if (it == s.leases.end()) return;
    Lease& l = it->second;
    if (only_if_holder != 0 && l.holder != only_if_holder) return;
    if (l.waiters.empty()) {
      s.leases.erase(it);
      count_.fetch_sub(1, std::memory_order_release);
      return;
    }
    promoted.push_back(std::move(l.waiters.front()));
    l.waiters.erase(l.waiters.begin());
    l.holder = promoted.back().client;
    l.expires = now + wait;
    granted_.fetch_add(1, std::memory_order_relaxed);
  }

  enum class Expired { NotWaiting, Nil, Granted };
  // A waiter's own deadline passed. NotWaiting: it was answered already. Nil: answer nil.
  // Granted: the lease had lapsed too; the waiter holds it now (answer nil).
  Expired expire(HashedKey dk, std::uint64_t token, time_point now,
                 std::chrono::milliseconds wait) {
    Stripe& s = stripe(dk);
    std::lock_guard lock(s.mu);
    auto it = s.leases.find(dk);
    if (it == s.leases.end()) return Expired::NotWaiting;
    Lease& l = it->second;
    for (auto w = l.waiters.begin(); w != l.waiters.end(); ++w) {
      if (w->token != token) continue;
      const std::uint64_t client = w->client;
      l.waiters.erase(w);
      if (l.expires <= now) {
        l.holder = client;
        l.expires = now + wait;
        granted_.fetch_add(1, std::memory_order_relaxed);
        return Expired::Granted;
      }
      return Expired::Nil;
    }
    return Expired::NotWaiting;
  }

  // A waiter left (its client disconnected): forget it, so the lease never passes to it.
  void cancel(HashedKey dk, std::uint64_t token) {
    Stripe& s = stripe(dk);
    std::lock_guard lock(s.mu);
    auto it = s.leases.find(dk);
    if (it == s.leases.end()) return;
    std::erase_if(it->second.waiters, [token](const Waiter& w) { return w.token == token; });
  }

  // No lease anywhere: callers skip building a waiter (and every lookup skips its lock).
  bool empty() const { return count_.load(std::memory_order_acquire) == 0; }

  std::uint64_t granted() const { return granted_.load(std::memory_order_relaxed); }
  std::size_t size() const {
    std::size_t n = 0;
    for (const Stripe& s : stripes_) {
      std::lock_guard lock(s.mu);
      n += s.leases.size();
    }
    return n;
  }

 private:
  struct Lease {
    std::uint64_t holder;
    time_point expires;
    std::vector<Waiter> waiters;  // in arrival order
  };
  struct alignas(64) Stripe {  // a cache line each: no false sharing between workers
    mutable std::mutex mu;
    std::unordered_map<std::string, Lease, KeyHash, KeyEq> leases;
  };
  Stripe& stripe(const HashedKey& k) {
    return stripes_[((k.hash * 0x9e3779b97f4a7c15ull) >> 40) % stripes_.size()];
  }

  std::size_t max_per_stripe_;
  std::vector<Stripe> stripes_;
  std::atomic<std::uint64_t> granted_{0};
  std::atomic<std::size_t> count_{0};  // leases in all stripes: lets lookups skip the locks
};

}  // namespace respguard::policy
