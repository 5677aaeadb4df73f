#include "respguard/server/policy_state.hpp"

#include <bit>

namespace respguard::server {

PolicyState::PolicyState(const config::Config& config)
    : rules(config.rules),
      // The loop's clock: TTLs of seconds need no clock_gettime of their own.
      negative(config.policy_limits.negative_cache_max_entries, &LoopClock::now),
      leases(config.policy_limits.lease_max_keys) {
  bloom.resize(config.rules.size());
  for (std::size_t i = 0; i < config.rules.size(); ++i) {
    const config::RuleConfig& rule = config.rules[i];
    if (rule.bloom) {
      bloom[i] = std::make_unique<policy::BloomPrecheck>(*rule.bloom);
      has_bloom = true;
    }
    if (rule.bloom || rule.negative_cache) keeps_local_state = true;
  }
  channel_configured = keeps_local_state && config.coherence.enabled;
  // Until the channel is up, nothing is learned or believed; without one, ttl bounds it.
  if (channel_configured) negative_epoch_.store(0);
}

void PolicyState::channel_up(std::uint64_t epoch) {
  // Entries learned before this session could be stale: start from nothing.
  negative.clear();
  channel_epoch_.store(epoch, std::memory_order_release);
  negative_epoch_.store(epoch, std::memory_order_release);
}

void PolicyState::channel_down(bool ttl_bounded) {
  channel_epoch_.store(0, std::memory_order_release);
  negative_epoch_.store(ttl_bounded ? kTtlBounded : 0, std::memory_order_release);
  for (auto& b : bloom) {
    if (b) b->distrust();
  }
  // After the epoch changed: a nil that checked the old epoch and is being remembered now is
  // either cleared here or dropped by its own re-check of the epoch.
  negative.clear();
}

bool PolicyState::invalidate(std::string_view key, unsigned databases) {
  // Any db may hold the key: tick and forget it in each db that local state has used.
  const std::uint64_t dbs = active_dbs_.load(std::memory_order_relaxed);
  auto in_db = [&](unsigned db) {
    const policy::HashedKey dk(policy::db_key(static_cast<int>(db), key, dk_buf_));
    writes.tick(dk);  // a nil of a GET racing this write proves nothing
    if (!negative.empty()) negative.forget(dk);
  };
  for (std::uint64_t m = dbs & ~(std::uint64_t{1} << 63); m != 0; m &= m - 1) {
    in_db(static_cast<unsigned>(std::countr_zero(m)));
  }
  if (dbs & (std::uint64_t{1} << 63)) {
    for (unsigned db = 63; db < databases; ++db) in_db(db);
  }
  bool set_changed = false;
  for (std::size_t i = 0; i < bloom.size(); ++i) {
    policy::BloomPrecheck* b = bloom[i].get();
    if (b == nullptr) continue;
    if (b->set_source()) {
      if (key == b->config().set) {
        b->set_changed();
        set_changed = true;
      }
    } else if (key.starts_with(rules.rules()[i].pattern.literal_prefix())) {
      b->add(key);  // a superset is harmless: keys of other rules under the same prefix too
    }
  }
  return set_changed;
}

void PolicyState::flush_all() {
  writes.tick_all();
  negative.clear();
  for (auto& b : bloom) {
    // Keyspace filters stay supersets; an emptied set must be read again.
    if (b && b->set_source()) b->set_changed();
  }
}

}  // namespace respguard::server
