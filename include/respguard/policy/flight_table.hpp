// Request coalescing (single flight): concurrent GETs of one key share one upstream GET,
// across all workers. Pure and thread-safe (striped mutexes); the caller does the I/O.
//
// Read-your-writes: once a write to K has been forwarded, no GET may join a flight that could
// have run before that write. So a write detaches K's current flight (its waiters, who came
// before the write, still get its reply), and until every forwarded write to K has been
// answered, GETs of K are not coalesced at all: each goes on its client's own connection,
// after that client's writes. A flight started later starts after those writes executed.
#pragma once

#include <algorithm>
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

// Layout: stripes (a mutex each) of direct-mapped slots. A key's hash picks its stripe and its
// slot; a slot holds at most one flight, for the key written in it. Another key landing on a
// slot that is busy is simply not coalesced (it goes upstream on its own), and write counts are
// per slot (a write to one key stops coalescing of the keys sharing its slot until answered):
// collisions cost a little coalescing, never correctness. No allocation per GET once a slot's
// key buffer has grown to the keys' size, no node chasing: one lock, one slot.
template <typename Waiter>
class FlightTable {
 public:
  enum class Role { Leader, Joined, Uncoalesced };

  explicit FlightTable(std::size_t stripes = 64, std::size_t slots_per_stripe = 1024)
      : slots_per_stripe_(std::min<std::size_t>(slots_per_stripe, 1u << 20)), stripes_(stripes) {
    for (Stripe& s : stripes_) s.slots.resize(slots_per_stripe_);
  }

  // A GET of `k` (a db_key). Leader: send it, then call finish() with the reply. Joined:
  // `waiter` is stored and comes back from the leader's finish(). Uncoalesced: writes to the
  // key are in flight, or its slot is busy with another key; send it on your own. `waiter`
  // may be a Waiter or a callable making one, called only when the GET joins.
  template <typename W>
  Role begin(HashedKey k, W&& waiter, std::uint64_t& flight) {
    Stripe& s = stripe(k);
    std::lock_guard lock(s.mu);
    if (global_writes_.load(std::memory_order_relaxed) != 0) return Role::Uncoalesced;
    Slot& slot = s.slot(k, slots_per_stripe_);
    if (slot.pending_writes > 0) return Role::Uncoalesced;
    if (slot.flight != 0) {
      if (slot.key != k.dk) return Role::Uncoalesced;  // another key's flight
      if constexpr (std::is_invocable_r_v<Waiter, W>) {
        s.waiters[slot.flight].push_back(waiter());
      } else {
        s.waiters[slot.flight].push_back(std::forward<W>(waiter));
      }
      flight = slot.flight;
      return Role::Joined;
    }
    slot.key.assign(k.dk);
    // Unique within the stripe without a counter shared by all workers: the slot's own serial
    // and the slot's place.
    slot.flight = flight = (++slot.serial << 20) | s.index_of(slot);
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
    Slot& slot = s.slot(k, slots_per_stripe_);
    if (slot.flight == flight) slot.flight = 0;
  }

  // A write to the key is being forwarded / has been answered.
  void write_begin(HashedKey k) {
    Stripe& s = stripe(k);
    std::lock_guard lock(s.mu);
    Slot& slot = s.slot(k, slots_per_stripe_);
    slot.flight = 0;  // detached: its waiters keep their place in s.waiters
    ++slot.pending_writes;
  }
  void write_end(HashedKey k) {
    Stripe& s = stripe(k);
    std::lock_guard lock(s.mu);
    Slot& slot = s.slot(k, slots_per_stripe_);
    if (slot.pending_writes > 0) --slot.pending_writes;
  }

  // Writes that may touch any key (FLUSHDB, FLUSHALL, SWAPDB, scripts with unknown keys).
  // The count rises before any stripe is visited: a begin() that read it as zero holds its
  // stripe's lock, so its flight is detached when the loop reaches that stripe.
  void write_begin_all() {
    global_writes_.fetch_add(1);
    for (Stripe& s : stripes_) {
      std::lock_guard lock(s.mu);
      for (Slot& slot : s.slots) slot.flight = 0;
    }
  }
  void write_end_all() { global_writes_.fetch_sub(1); }

  // Slots with a flight or unanswered writes.
  std::size_t entries() const {
    std::size_t n = 0;
    for (const Stripe& s : stripes_) {
      std::lock_guard lock(s.mu);
      for (const Slot& slot : s.slots) n += (slot.flight != 0 || slot.pending_writes > 0);
    }
    return n;
  }

 private:
  struct Slot {
    std::uint64_t flight = 0;  // the joinable flight, 0 = none
    std::uint64_t serial = 0;  // flights started here
    int pending_writes = 0;    // unanswered writes to keys of this slot
    std::string key;           // the key of `flight` (its buffer is reused)
  };
  // A cache line each: workers lock different stripes without sharing lines.
  struct alignas(64) Stripe {
    mutable std::mutex mu;
    std::vector<Slot> slots;
    std::unordered_map<std::uint64_t, std::vector<Waiter>> waiters;  // by flight
    Slot& slot(const HashedKey& k, std::size_t n) { return slots[(k.hash >> 8) % n]; }
    std::uint64_t index_of(const Slot& slot) const {
      return static_cast<std::uint64_t>(&slot - slots.data());
    }
  };

  Stripe& stripe(const HashedKey& k) {
    // High bits pick the stripe; the slot comes from the low ones.
    return stripes_[((k.hash * 0x9e3779b97f4a7c15ull) >> 40) % stripes_.size()];
  }

  std::size_t slots_per_stripe_;  // at most 2^20: flight ids keep the slot in 20 bits
  std::vector<Stripe> stripes_;
  std::atomic<int> global_writes_{0};
};

}  // namespace respguard::policy
