// What a reload applies at once and what waits for a restart (plan_reload), and which parts of
// a LiveConfig survive a reload that leaves them alone.
#include "respguard/server/live_config.hpp"

#include <gtest/gtest.h>

namespace respguard::server {
namespace {

using Strings = std::vector<std::string>;

config::RuleConfig rule(std::string match) {
  config::RuleConfig r;
  r.match = std::move(match);
  return r;
}

TEST(PlanReload, NothingChanged) {
  const config::Config running;
  const ReloadPlan plan = plan_reload(running, running);
  EXPECT_TRUE(plan.applied.empty());
  EXPECT_TRUE(plan.need_restart.empty());
  EXPECT_EQ(plan.effective, running);
}

TEST(PlanReload, LiveOptionsApplyAndTheRestKeepRunningValues) {
  config::Config running;
  config::Config next;
  next.rate_limit.limit.rate = 50;
  next.guard.profile = "production";
  next.guard.deny = {"hgetall"};
  next.log.level = "debug";
  next.server.maxclients = 7;
  next.server.idle_timeout = config::Millis(30000);
  next.upstream.address = {"10.0.0.9", 6379};
  next.server.workers = 3;
  next.coherence.scan_count = 10;

  const ReloadPlan plan = plan_reload(running, next);
  EXPECT_EQ(plan.applied, (Strings{"maxclients", "log_level", "client.idle_timeout",
                                   "guard.profile", "rate_limit.rate", "guard.deny"}));
  EXPECT_EQ(plan.need_restart, (Strings{"workers", "upstream.address", "coherence.scan_count"}));
  EXPECT_EQ(plan.effective.rate_limit.limit.rate, 50u);
  EXPECT_EQ(plan.effective.guard.deny, Strings{"hgetall"});
  EXPECT_EQ(plan.effective.log.level, "debug");
  EXPECT_EQ(plan.effective.upstream.address, running.upstream.address);
  EXPECT_EQ(plan.effective.server.workers, running.server.workers);
  EXPECT_EQ(plan.effective.coherence.scan_count, running.coherence.scan_count);
}

TEST(PlanReload, UsersApplyLive) {
  config::Config running;
  config::Config next;
  next.auth.users = {{"app", std::string(64, 'a'), "+@read ~app:*"}};
  next.auth.max_failures_per_second = 3;
  const ReloadPlan plan = plan_reload(running, next);
  EXPECT_EQ(plan.applied, (Strings{"auth.max_failures_per_second", "auth.users"}));
  EXPECT_TRUE(plan.need_restart.empty());
}

TEST(PlanReload, CertificatesChangeLiveButTurningTlsOnOrOffNeedsARestart) {
  config::Config running;
  running.tls.cert_file = "/etc/tls/a.crt";
  running.tls.key_file = "/etc/tls/a.key";
  config::Config next = running;
  next.tls.cert_file = "/etc/tls/b.crt";
  next.tls.key_file = "/etc/tls/b.key";
  next.upstream.tls.server_name = "redis.internal";
  ReloadPlan plan = plan_reload(running, next);
  EXPECT_EQ(plan.applied, (Strings{"tls.cert_file", "tls.key_file"}));
  EXPECT_EQ(plan.need_restart, Strings{"upstream.tls.server_name"});

  config::Config off = running;
  off.tls.cert_file.clear();
  off.tls.key_file.clear();
  plan = plan_reload(running, off);
  EXPECT_TRUE(plan.applied.empty());
  EXPECT_EQ(plan.need_restart, (Strings{"tls.cert_file", "tls.key_file"}));
  EXPECT_EQ(plan.effective.tls.cert_file, running.tls.cert_file);
  EXPECT_EQ(plan.effective.tls.key_file, running.tls.key_file);
}

TEST(PlanReload, RulesWithoutLocalStateChangeFreely) {
  config::Config running;
  running.rules = {rule("user:*"), rule("neg:*")};
  running.rules[0].coalesce = true;
  running.rules[1].negative_cache = config::NegativeCacheConfig{};
  config::Config next = running;
  next.rules[0].match = "account:*";                        // no local state
  next.rules[1].negative_cache->ttl = config::Millis(100);  // same rule, new ttl
  next.rules[1].jitter = config::JitterConfig{};            // another policy
  next.rules.push_back(rule("session:*"));                  // added past the end
  const ReloadPlan plan = plan_reload(running, next);
  EXPECT_EQ(plan.applied, Strings{"rules"});
  EXPECT_EQ(plan.effective.rules, next.rules);
}

TEST(PlanReload, RulesThatMoveLocalStateNeedARestart) {
  config::Config running;
  running.rules = {rule("neg:*")};
  running.rules[0].negative_cache = config::NegativeCacheConfig{};

  config::Config renamed = running;
  renamed.rules[0].match = "absent:*";  // the channel tracks the old prefix
  config::Config inserted = running;
  inserted.rules.insert(inserted.rules.begin(), rule("first:*"));  // moves it to index 1
  config::Config added = running;
  added.rules.push_back(rule("bloom:*"));
  added.rules.back().bloom = config::BloomConfig{};
  config::Config dropped = running;
  dropped.rules[0].negative_cache.reset();

  for (const config::Config* next : {&renamed, &inserted, &added, &dropped}) {
    const ReloadPlan plan = plan_reload(running, *next);
    EXPECT_TRUE(plan.applied.empty());
    EXPECT_EQ(plan.need_restart, Strings{"rules"});
    EXPECT_EQ(plan.effective.rules, running.rules);
  }
}

TEST(LiveConfig, UnchangedPartsAreShared) {
  config::Config c;
  c.rate_limit.limit.rate = 10;
  const LiveConfig first(c, 1);
  EXPECT_EQ(first.generation, 1u);

  config::Config same_limits = c;
  same_limits.guard.profile = "production";
  const LiveConfig second(same_limits, 2, &first);
  EXPECT_EQ(second.rate_limiter, first.rate_limiter) << "buckets survive";
  EXPECT_EQ(second.acl, first.acl);
  EXPECT_NE(second.command_guard, first.command_guard);
  EXPECT_TRUE(second.command_guard->enabled());

  config::Config new_limits = same_limits;
  new_limits.rate_limit.limit.rate = 20;
  const LiveConfig third(new_limits, 3, &second);
  EXPECT_NE(third.rate_limiter, second.rate_limiter);
  EXPECT_EQ(third.command_guard, second.command_guard);
}

TEST(LiveConfig, BadAclRuleThrows) {
  config::Config c;
  c.auth.users = {{"app", std::string(64, 'a'), "+@raed"}};
  EXPECT_THROW(LiveConfig(c, 1), std::invalid_argument);
}

}  // namespace
}  // namespace respguard::server
