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
#include <unordered_map>
#include <vector>

namespace respguard::policy {

// Hashing for maps keyed by "db\0key" strings, looked up by string_view without allocating.
struct KeyHash {
  using is_transparent = void;
  std::size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};

// "db\0key": one string for a (db, key) pair, built into a caller's reusable buffer.
inline std::string_view db_key(int db, std::string_view key, std::string& buf) {
  buf.assign(std::to_string(db));
  buf.push_back('\0');
  buf.append(key);
  return buf;
}

template <typename Waiter>
class FlightTable {
 public:
  enum class Role { Leader, Joined, Uncoalesced };

  explicit FlightTable(std::size_t stripes = 64) : stripes_(stripes) {}

  // A GET of `dk` (from db_key). Leader: send it, then call finish() with the reply. Joined:
  // `waiter` is stored and comes back from the leader's finish(). Uncoalesced: writes to the
  // key are in flight; send it on your own.
  Role begin(std::string_view dk, Waiter&& waiter, std::uint64_t& flight) {
    Stripe& s = stripe(dk);
    std::lock_guard lock(s.mu);
    if (global_writes_ != 0) return Role::Uncoalesced;
    auto it = s.entries.find(dk);
    if (it == s.entries.end()) it = s.entries.emplace(std::string(dk), Entry{}).first;
    Entry& e = it->second;
    if (e.pending_writes > 0) return Role::Uncoalesced;
    if (e.flight != 0) {
      s.waiters[e.flight].push_back(std::move(waiter));
      flight = e.flight;
      return Role::Joined;
    }
    e.flight = flight = next_id_.fetch_add(1, std::memory_order_relaxed);
    return Role::Leader;  // its waiter list is made by the first joiner, if any
  }

  // The leader's reply arrived: appends the flight's waiters to `out` and ends the flight.
  void finish(std::string_view dk, std::uint64_t flight, std::vector<Waiter>& out) {
    Stripe& s = stripe(dk);
    std::lock_guard lock(s.mu);
    if (auto w = s.waiters.find(flight); w != s.waiters.end()) {
      for (Waiter& waiter : w->second) out.push_back(std::move(waiter));
      s.waiters.erase(w);
    }
    if (auto it = s.entries.find(dk); it != s.entries.end()) {
      if (it->second.flight == flight) it->second.flight = 0;
      if (it->second.flight == 0 && it->second.pending_writes == 0) s.entries.erase(it);
    }
  }

  // A write to the key is being forwarded / has been answered.
  void write_begin(std::string_view dk) {
    Stripe& s = stripe(dk);
    std::lock_guard lock(s.mu);
    auto it = s.entries.find(dk);
    if (it == s.entries.end()) it = s.entries.emplace(std::string(dk), Entry{}).first;
    it->second.flight = 0;  // detached: its waiters keep their place in s.waiters
    ++it->second.pending_writes;
  }
  void write_end(std::string_view dk) {
    Stripe& s = stripe(dk);
    std::lock_guard lock(s.mu);
    auto it = s.entries.find(dk);
    if (it == s.entries.end()) return;
    if (it->second.pending_writes > 0) --it->second.pending_writes;
    if (it->second.flight == 0 && it->second.pending_writes == 0) s.entries.erase(it);
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

  std::size_t entries() const {
    std::size_t n = 0;
    for (const Stripe& s : stripes_) {
      std::lock_guard lock(s.mu);
      n += s.entries.size();
    }
    return n;
  }

 private:
  struct Entry {
    std::uint64_t flight = 0;  // the joinable flight, 0 = none
    int pending_writes = 0;
  };
  struct Stripe {
    mutable std::mutex mu;
    std::unordered_map<std::string, Entry, KeyHash, std::equal_to<>> entries;
    std::unordered_map<std::uint64_t, std::vector<Waiter>> waiters;  // by flight
  };

  Stripe& stripe(std::string_view dk) { return stripes_[KeyHash{}(dk) % stripes_.size()]; }

  std::vector<Stripe> stripes_;
  std::atomic<std::uint64_t> next_id_{1};
  std::atomic<int> global_writes_{0};
};

}  // namespace respguard::policy
