// The policies' process-wide state, shared by all workers: rules, negative cache, in-flight
// GETs (coalescing) and miss leases. The tables are pure and striped; this header adds what
// the async glue needs to wake a waiting request on its own worker.
#pragma once

#include <array>
#include <atomic>
#include <memory>

#include "respguard/common/asio.hpp"
#include "respguard/common/loop_clock.hpp"
#include "respguard/config/config.hpp"
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
  explicit PolicyState(const config::Config& config)
      : rules(config.rules),
        // The loop's clock: TTLs of seconds need no clock_gettime of their own.
        negative(config.policy_limits.negative_cache_max_entries, &LoopClock::now),
        leases(config.policy_limits.lease_max_keys) {}

  policy::RuleSet rules;
  policy::NegativeCache negative;
  policy::FlightTable<SlotRef> flights;
  policy::LeaseTable<SlotRef> leases;
  WriteClock writes;
  std::atomic<std::uint64_t> next_token{1};
};

}  // namespace respguard::server
