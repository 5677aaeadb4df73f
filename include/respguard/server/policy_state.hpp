// The policies' process-wide state, shared by all workers: rules, negative cache, in-flight
// GETs (coalescing) and miss leases. The tables are pure and striped; this header adds what
// the async glue needs to wake a waiting request on its own worker.
#pragma once

#include <memory>

#include "respguard/common/asio.hpp"
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
  std::uint64_t cookie = 0;  // the slot's sequence number
  std::uint64_t token = 0;  // unique per wait
  std::uint64_t client = 0;  // the session's id
};

struct PolicyState {
  explicit PolicyState(const config::Config& config)
      : rules(config.rules),
        negative(config.policy_limits.negative_cache_max_entries),
        leases(config.policy_limits.lease_max_keys) {}

  policy::RuleSet rules;
  policy::NegativeCache negative;
  policy::FlightTable<SlotRef> flights;
  policy::LeaseTable<SlotRef> leases;
  std::atomic<std::uint64_t> next_token{1};
};

}  // namespace respguard::server
