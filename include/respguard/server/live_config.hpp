// What a configuration reload (SIGHUP, POST /reload on the admin port) can change while clients
// stay connected: rules, rate limits, the command guard, users, client limits and the log level
// (docs/operations.md, "Reloading the configuration").
//
// A reload builds a new immutable LiveConfig and hands it to every worker (posted to its
// thread); a session reads its worker's current one per command (a pointer, no lock, no atomic)
// and notices a new generation before its next command. The old snapshot is freed when the last
// worker lets go of it. Options that only a restart can change (listen address, workers,
// upstream, admin, protocol limits, coherence, rules that keep local state) keep their running
// values; the reload names them in a warning.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "respguard/config/config.hpp"
#include "respguard/policy/rules.hpp"
#include "respguard/protection/acl.hpp"
#include "respguard/protection/command_guard.hpp"
#include "respguard/protection/rate_limiter.hpp"

namespace respguard::server {

// Which of a new config's changes a running process applies, and which wait for a restart.
struct ReloadPlan {
  config::Config effective;               // the running config with the live changes applied
  std::vector<std::string> applied;       // keys that change now ("rate_limit.rate", "rules")
  std::vector<std::string> need_restart;  // keys that differ but keep their running value
};

// Pure: compares `running` with `next` option by option. Rules may change live as long as the
// rules that keep local state (a negative cache or a Bloom filter, which the coherence channel
// tracks by prefix and rule index) stay as they are, at the same places in the list.
ReloadPlan plan_reload(const config::Config& running, const config::Config& next);

struct LiveConfig {
  // Builds the snapshot of `config`. Parts whose options did not change are shared with
  // `previous`, so a reload that leaves rate limits alone keeps every client's bucket and one
  // that leaves the users alone keeps the failed-AUTH budget. Throws std::invalid_argument for
  // an ACL rule it cannot parse ("auth.users[0].rules: ...").
  LiveConfig(const config::Config& config, std::uint64_t generation,
             const LiveConfig* previous = nullptr);

  const config::Config config;
  const std::uint64_t generation;  // 1 at start, +1 per applied reload
  const policy::RuleSet rules;
  const std::shared_ptr<const protection::CommandGuard> command_guard;
  const std::shared_ptr<protection::Acl> acl;  // auth.users (its failed-AUTH budget mutates)
  const std::shared_ptr<protection::RateLimiter> rate_limiter;
};

}  // namespace respguard::server
