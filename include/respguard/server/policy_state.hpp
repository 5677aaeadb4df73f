// The policies' process-wide state, shared by all workers: rules, negative cache, in-flight
// GETs (coalescing), miss leases, Bloom pre-checks and how far the coherence channel lets
// local state be trusted. The tables are pure and striped; this header adds what the async
// glue needs to wake a waiting request on its own worker.
#pragma once

#include <algorithm>
#include <array>
#include <atomic>
#include <memory>
#include <string_view>
#include <vector>

#include "respguard/common/asio.hpp"
#include "respguard/common/loop_clock.hpp"
#include "respguard/config/config.hpp"
#include "respguard/policy/bloom_precheck.hpp"
#include "respguard/policy/flight_table.hpp"
#include "respguard/policy/lease_table.hpp"
#include "respguard/policy/negative_cache.hpp"
#include "respguard/policy/rules.hpp"

namespace respguard::server {

class ClientSession;

// A request slot waiting on another client's work, and how to reach it.
struct SlotRef {
  std::weak_ptr<ClientSession> session;
  asio::any_io_executor executor;  // the session's worker
  std::uint64_t cookie = 0;        // the slot's sequence number
  std::uint64_t token = 0;         // unique per wait
  std::uint64_t client = 0;        // the session's id
};

// Write generations of keys under rules, striped: a write bumps its key's stripe when it is
// forwarded and again when Redis answers it. A GET records the generation when it is sent; if
// it changed by the time a nil comes back, a write may have overtaken the GET (possibly on
// another connection), so the nil proves nothing: it is neither remembered as absent nor a
// miss for a lease. Collisions only make the proxy more cautious.
class WriteClock {
 public:
  std::uint64_t now(const policy::HashedKey& k) const {
    return stripes_[k.hash % kStripes].load(std::memory_order_acquire);
  }
  void tick(const policy::HashedKey& k) {
    stripes_[k.hash % kStripes].fetch_add(1, std::memory_order_acq_rel);
  }
  void tick_all() { all_.fetch_add(1, std::memory_order_acq_rel); }
  std::uint64_t all() const { return all_.load(std::memory_order_acquire); }

 private:
  static constexpr std::size_t kStripes = 1024;
  std::array<std::atomic<std::uint64_t>, kStripes> stripes_{};
  std::atomic<std::uint64_t> all_{0};
};

struct PolicyState {
  explicit PolicyState(const config::Config& config);

  policy::RuleSet rules;
  policy::NegativeCache negative;
  policy::FlightTable<SlotRef> flights;
  policy::LeaseTable<SlotRef> leases;
  WriteClock writes;
  std::atomic<std::uint64_t> next_token{1};

  // Bloom pre-checks by rule index (null: the rule has none).
  std::vector<std::unique_ptr<policy::BloomPrecheck>> bloom;
  bool has_bloom = false;
  // Rules keep local state that a direct write to Redis can make wrong (negative cache, Bloom):
  // the coherence channel runs when this is set and coherence.enabled.
  bool keeps_local_state = false;
  bool channel_configured = false;

  // The coherence channel's session: 0 while it is down (or not up yet), then a new number
  // each time it comes up. Bloom filters are trusted only for the epoch their pass ended in.
  std::uint64_t channel_epoch() const { return channel_epoch_.load(std::memory_order_acquire); }
  // Whether negative-cache entries may be used and learned, as an epoch (0: no): the channel's
  // epoch, or kTtlBounded when there is no channel (disabled, or tracking refused) and the
  // entries' ttl bounds their staleness. A GET records it when sent and learns its nil only if
  // it is still the same when the nil comes back.
  static constexpr std::uint64_t kTtlBounded = ~std::uint64_t{0};
  std::uint64_t negative_epoch() const { return negative_epoch_.load(std::memory_order_acquire); }

  // The dbs GETs under negative-cache rules have used (bit d for db d; 63 for 63 and up): an
  // invalidation names a key but not its db, and is applied in each of these.
  void note_db(int db) {
    const std::uint64_t bit = std::uint64_t{1} << std::min(db < 0 ? 0 : db, 63);
    if (!(active_dbs_.load(std::memory_order_relaxed) & bit)) active_dbs_.fetch_or(bit);
  }

  // The coherence channel's events (control thread). `databases`: the upstream's db count.
  void channel_up(std::uint64_t epoch);
  void channel_down(bool ttl_bounded);  // ttl_bounded: tracking is refused, not merely lost
  // Another client modified `key` (in some db). Returns true when it is the SET of a
  // `source: set` filter, which now needs a reload.
  bool invalidate(std::string_view key, unsigned databases);
  void flush_all();  // FLUSHALL/FLUSHDB seen by the channel (a null key list)

 private:
  std::atomic<std::uint64_t> channel_epoch_{0};
  std::atomic<std::uint64_t> negative_epoch_{kTtlBounded};
  std::atomic<std::uint64_t> active_dbs_{1};
  std::string dk_buf_;  // control thread's scratch
};

}  // namespace respguard::server
