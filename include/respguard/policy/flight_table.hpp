// Request coalescing (single flight): concurrent GETs of one key share one upstream GET,
// across all workers. Pure and thread-safe (striped mutexes); the caller does the I/O.
//
// Read-your-writes: once a write to K has been forwarded, no GET may join a flight that could
// have run before that write. So a write detaches K's current flight (its waiters, who came
// before the write, still get its reply), and until every forwarded write to K has been
// answered, GETs of K are not coalesced at all: each goes on its client's own connection,
// after that client's writes. A flight started later starts after those writes executed.
#pragma once

#include <atomic>
#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>
#include <type_traits>
#include <unordered_map>
#include <vector>

#include "respguard/policy/key.hpp"

namespace respguard::policy {

// Memory: a key's entry outlives its flight while its stripe holds at most kRetainPerStripe
// entries, so hot keys cost no allocation per GET; beyond that, idle entries are dropped.
template <typename Waiter>
class FlightTable {
 public:
  enum class Role { Leader, Joined, Uncoalesced };
  static constexpr std::size_t kRetainPerStripe = 256;

  explicit FlightTable(std::size_t stripes = 64) : stripes_(stripes) {}

  // A GET of `k` (a db_key). Leader: send it, then call finish() with the reply. Joined:
  // `waiter` is stored and comes back from the leader's finish(). Uncoalesced: writes to the
  // key are in flight; send it on your own. `waiter` may be a Waiter or a callable making one,
  // called only when the GET joins (a leader's waiter is never needed).
  template <typename W>
  Role begin(HashedKey k, W&& waiter, std::uint64_t& flight) {
    Stripe& s = stripe(k);
    std::lock_guard lock(s.mu);
    if (global_writes_.load(std::memory_order_relaxed) != 0) return Role::Uncoalesced;
    auto it = s.entries.find(k);
    if (it == s.entries.end()) it = s.entries.emplace(std::string(k.dk), Entry{}).first;
    Entry& e = it->second;
    if (e.pending_writes > 0) return Role::Uncoalesced;
    if (e.flight != 0) {
      if constexpr (std::is_invocable_r_v<Waiter, W>) {
        s.waiters[e.flight].push_back(waiter());
      } else {
        s.waiters[e.flight].push_back(std::forward<W>(waiter));
      }
      flight = e.flight;
      return Role::Joined;
    }
    e.flight = flight = next_id_.fetch_add(1, std::memory_order_relaxed);
    return Role::Leader;  // its waiter list is made by the first joiner, if any
  }

  // The leader's reply arrived: appends the flight's waiters to `out` and ends the flight.
  void finish(HashedKey k, std::uint64_t flight, std::vector<Waiter>& out) {
    Stripe& s = stripe(k);
    std::lock_guard lock(s.mu);
    if (!s.waiters.empty()) {
      if (auto w = s.waiters.find(flight); w != s.waiters.end()) {
        for (Waiter& waiter : w->second) out.push_back(std::move(waiter));
        s.waiters.erase(w);
      }
    }
    if (auto it = s.entries.find(k); it != s.entries.end()) {
      if (it->second.flight == flight) it->second.flight = 0;
      s.drop_if_idle(it);
    }
  }

  // A write to the key is being forwarded / has been answered.
  void write_begin(HashedKey k) {
    Stripe& s = stripe(k);
    std::lock_guard lock(s.mu);
    auto it = s.entries.find(k);
    if (it == s.entries.end()) it = s.entries.emplace(std::string(k.dk), Entry{}).first;
    it->second.flight = 0;  // detached: its waiters keep their place in s.waiters
    ++it->second.pending_writes;
  }
  void write_end(HashedKey k) {
    Stripe& s = stripe(k);
    std::lock_guard lock(s.mu);
    auto it = s.entries.find(k);
    if (it == s.entries.end()) return;
    if (it->second.pending_writes > 0) --it->second.pending_writes;
    s.drop_if_idle(it);
  }

  // Writes that may touch any key (FLUSHDB, FLUSHALL, SWAPDB, scripts with unknown keys).
  // The count rises before any stripe is visited: a begin() that read it as zero holds its
  // stripe's lock, so its flight is detached when the loop reaches that stripe.
  void write_begin_all() {
    global_writes_.fetch_add(1);
    for (Stripe& s : stripes_) {
      std::lock_guard lock(s.mu);
      for (auto& [dk, e] : s.entries) e.flight = 0;
    }
  }
  void write_end_all() { global_writes_.fetch_sub(1); }

  // Keys with a flight or unanswered writes (idle entries kept for reuse do not count).
  std::size_t entries() const {
    std::size_t n = 0;
    for (const Stripe& s : stripes_) {
      std::lock_guard lock(s.mu);
      for (const auto& [dk, e] : s.entries) n += e.idle() ? 0 : 1;
    }
    return n;
  }

 private:
  struct Entry {
    std::uint64_t flight = 0;  // the joinable flight, 0 = none
    int pending_writes = 0;
    bool idle() const { return flight == 0 && pending_writes == 0; }
  };
  using Map = std::unordered_map<std::string, Entry, KeyHash, KeyEq>;
  struct Stripe {
    mutable std::mutex mu;
    Map entries;
    std::unordered_map<std::uint64_t, std::vector<Waiter>> waiters;  // by flight
    void drop_if_idle(typename Map::iterator it) {
      if (it->second.idle() && entries.size() > kRetainPerStripe) entries.erase(it);
    }
  };

  Stripe& stripe(const HashedKey& k) {
    // High bits pick the stripe; the map's buckets use the low ones.
    return stripes_[((k.hash * 0x9e3779b97f4a7c15ull) >> 40) % stripes_.size()];
  }

  std::vector<Stripe> stripes_;
  std::atomic<std::uint64_t> next_id_{1};
  std::atomic<int> global_writes_{0};
};

}  // namespace respguard::policy
