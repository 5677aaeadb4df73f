#include "respguard/server/live_config.hpp"

#include <algorithm>
#include <array>
#include <string_view>

namespace respguard::server {
namespace {

// Options a running process applies at once. Everything else (listen, workers, upstream,
// admin, protocol, coherence, breaker, health checks, policy limits, ...) is read once at start
// by objects that outlive connections, so it waits for a restart.
constexpr std::array<std::string_view, 7> kLiveKeys = {
    "log_level",
    "maxclients",
    "client.idle_timeout",
    "client.output_buffer_limit",
    "client.pubsub_output_buffer_limit",
    "client.query_buffer_limit",
    "rules",
};
constexpr std::array<std::string_view, 3> kLiveSections = {"auth.", "guard.", "rate_limit."};
// TLS settings that live in the SSL contexts, which a reload rebuilds (new connections take the
// new one). Turning TLS on or off, and the upstream's expected name, need a restart.
constexpr std::array<std::string_view, 9> kLiveTlsKeys = {
    "tls.cert_file",        "tls.key_file",           "tls.ca_file",
    "tls.client_certs",     "tls.min_version",        "tls.ciphers",
    "upstream.tls.ca_file", "upstream.tls.cert_file", "upstream.tls.key_file",
};

bool live_key(std::string_view key, const config::Config& running, const config::Config& next) {
  if (key.starts_with("tls.") && running.tls.cert_file.empty() != next.tls.cert_file.empty()) {
    return false;  // the listener would change protocol under its clients
  }
  auto in = [key](const auto& keys) {
    return std::find(keys.begin(), keys.end(), key) != keys.end();
  };
  return in(kLiveKeys) || in(kLiveTlsKeys) ||
         std::any_of(kLiveSections.begin(), kLiveSections.end(),
                     [key](std::string_view s) { return key.starts_with(s); });
}

bool keeps_local_state(const config::RuleConfig& r) {
  return r.negative_cache.has_value() || r.bloom.has_value();
}

// Rules with a negative cache or a Bloom filter: the coherence channel tracks their prefixes
// and keeps filters by rule index. They must stay where they are, as they are (their other
// policies may change); rules without local state may come, go and change freely.
bool same_local_state(const std::vector<config::RuleConfig>& a,
                      const std::vector<config::RuleConfig>& b) {
  const std::size_t n = std::max(a.size(), b.size());
  for (std::size_t i = 0; i < n; ++i) {
    const bool la = i < a.size() && keeps_local_state(a[i]);
    const bool lb = i < b.size() && keeps_local_state(b[i]);
    if (la != lb) return false;
    if (!la) continue;
    if (a[i].match != b[i].match || a[i].db != b[i].db || a[i].bloom != b[i].bloom ||
        a[i].negative_cache.has_value() != b[i].negative_cache.has_value()) {
      return false;
    }
  }
  return true;
}

}  // namespace

ReloadPlan plan_reload(const config::Config& running, const config::Config& next) {
  ReloadPlan plan{.effective = next};
  for (std::string& key : config::differing_options(running, next)) {
    const bool live = live_key(key, running, next) &&
                      (key != "rules" || same_local_state(running.rules, next.rules));
    if (!live) config::copy_option(plan.effective, running, key);
    (live ? plan.applied : plan.need_restart).push_back(std::move(key));
  }
  return plan;
}

LiveConfig::LiveConfig(const config::Config& c, std::uint64_t gen, const LiveConfig* previous)
    : config(c),
      generation(gen),
      rules(c.rules),
      command_guard(previous && previous->config.guard == c.guard
                        ? previous->command_guard
                        : std::make_shared<const protection::CommandGuard>(c.guard)),
      acl(previous && previous->config.auth == c.auth ? previous->acl
                                                      : std::make_shared<protection::Acl>(c.auth)),
      rate_limiter(previous && previous->config.rate_limit == c.rate_limit
                       ? previous->rate_limiter
                       : std::make_shared<protection::RateLimiter>(c.rate_limit)) {}

}  // namespace respguard::server
