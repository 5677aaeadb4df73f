// The coherence channel (docs/policies.md, "Coherence channel"): local state (negative cache,
// Bloom filters) stays true while other clients write to Redis directly, is distrusted the
// moment the channel is lost, and comes back only after the channel and a warm-up scan do.
//
// Evidence is Redis's own: values written on direct connections, INFO commandstats for what
// reached Redis, CLIENT KILL for the faults.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "harness.hpp"

namespace rgtest {
namespace {

using namespace std::chrono_literals;
using SteadyClock = std::chrono::steady_clock;

// Polls until `series` equals `value` (bounded); true when it did.
bool metric_is(const ProxyServer& proxy, const std::string& series, double value,
               Millis timeout = 5s) {
  return metric_becomes(proxy, series, value, timeout) == value;
}

constexpr const char* kChannelState = "respguard_coherence_channel_state";
constexpr const char* kLosses = "respguard_coherence_channel_losses_total";
constexpr const char* kUntrusted = "respguard_bloom_filters_untrusted";

// Every key under one rule with both kinds of local state.
constexpr const char* kLocalState = R"(
rules:
  - match: "*"
    negative_cache: {ttl: 60s}
    bloom: {expected_keys: 100000, false_positive_rate: 0.01}
)";

class CoherenceTest : public ::testing::Test {
 protected:
  void SetUp() override { SKIP_IN_DIRECT_MODE("the coherence channel is the proxy's"); }

  void start(const std::string& yaml, std::vector<std::string> redis_args = {}) {
    redis_ = std::make_unique<RedisServer>(std::move(redis_args));
    proxy_ = std::make_unique<ProxyServer>(redis_->port(), ProxyOptions{yaml, {}});
  }
  // /readyz waits for the channel's first session; the filters then warm up.
  void wait_coherent() {
    ASSERT_TRUE(
        wait_until([&] { return http_status(proxy_->admin_port(), "/readyz") == 200; }, 5000ms))
        << "never ready";
    ASSERT_TRUE(metric_is(*proxy_, kChannelState, 1)) << "the channel never came up";
    ASSERT_TRUE(metric_is(*proxy_, kUntrusted, 0)) << "the Bloom filter never warmed up";
  }
  long long calls(const std::string& command) const {
    return commandstat_calls(redis_->port(), command);
  }
  // The proxy connects as ACL user "proxy" (password "secret") with `rules`, which refuse it
  // part of the channel: it must report tracking refused (state 2) and still become ready.
  void start_as_user(const std::vector<std::string>& rules) {
    redis_ = std::make_unique<RedisServer>();
    {
      Client admin(redis_->port());
      std::vector<std::string> setuser = {"ACL", "SETUSER", "proxy", "on", ">secret"};
      setuser.insert(setuser.end(), rules.begin(), rules.end());
      ASSERT_EQ(admin.run(setuser), "+OK");
    }
    proxy_ = std::make_unique<ProxyServer>(
        redis_->port(),
        ProxyOptions{
            std::string(kLocalState) + "upstream:\n  username: proxy\n  password: secret\n", {}});
    ASSERT_TRUE(metric_is(*proxy_, kChannelState, 2)) << "the refusal was not reported";
    EXPECT_TRUE(
        wait_until([&] { return http_status(proxy_->admin_port(), "/readyz") == 200; }, 5000ms));
  }

  std::unique_ptr<RedisServer> redis_;  // destroyed after the proxy
  std::unique_ptr<ProxyServer> proxy_;
};

// The invariant: a key written directly to Redis is never answered absent (by the negative
// cache or the Bloom filter) once its invalidation could arrive. Each key is first read through
// the proxy (so both kinds of local state say "absent"), then written on a direct connection,
// then read through the proxy until its value shows: that wait is the propagation delay.
TEST_F(CoherenceTest, KeysWrittenDirectlyAreNeverAnsweredAbsentOnceTheInvalidationArrives) {
  start(kLocalState);
  wait_coherent();
  constexpr int kThreads = 4;
  constexpr int kKeysPerThread = 2500;  // 10,000 keys
  std::vector<std::vector<long long>> delays_us(kThreads);
  std::atomic<long long> polls{0};  // GETs after the write, until the value showed
  const long long gets_before = calls("get");
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      Client proxy(proxy_->port());
      Client direct(redis_->port());
      std::mt19937_64 rng(1000 + t);
      for (int i = 0; i < kKeysPerThread; ++i) {
        const std::string key = "inv:" + std::to_string(t) + ":" + std::to_string(rng());
        if (proxy.run({"GET", key}) != "(nil)") {
          ++failures;
          continue;
        }
        // Twice: local state (Bloom, negative cache) answers both.
        if (proxy.run({"GET", key}) != "(nil)") ++failures;
        if (direct.run({"SET", key, "v"}) != "+OK") {
          ++failures;
          continue;
        }
        const auto written = SteadyClock::now();
        long long waited = -1;
        while (SteadyClock::now() - written < 2s) {
          ++polls;
          if (proxy.run({"GET", key}) == "$v") {
            waited =
                std::chrono::duration_cast<std::chrono::microseconds>(SteadyClock::now() - written)
                    .count();
            break;
          }
        }
        if (waited < 0) {
          ++failures;  // still absent 2 s after the write: the invalidation never applied
        } else {
          delays_us[t].push_back(waited);
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(failures.load(), 0);
  // The pre-write GETs were answered locally: Redis saw the polls after each write, plus the
  // filter's false positives (1 % configured; 2 % allowed) among the 20,000 pre-write GETs.
  const long long upstream = calls("get") - gets_before;
  EXPECT_LE(upstream, polls.load() + 2 * kThreads * kKeysPerThread / 50)
      << "absent keys were not answered from local state";

  std::vector<long long> all;
  for (const auto& d : delays_us) all.insert(all.end(), d.begin(), d.end());
  ASSERT_EQ(all.size(), static_cast<std::size_t>(kThreads * kKeysPerThread));
  std::sort(all.begin(), all.end());
  const long long p50 = all[all.size() / 2];
  const long long p99 = all[all.size() * 99 / 100];
  const long long max = all.back();
  std::printf(
      "[coherence] propagation of 10,000 direct writes: p50 %lld us, p99 %lld us, max %lld us\n",
      p50, p99, max);
  EXPECT_LT(p99, 50000) << "p99 propagation delay over 50 ms";

  // Afterwards: every key is in Redis, and the channel never dropped meanwhile.
  Client direct(redis_->port());
  EXPECT_EQ(direct.run({"DBSIZE"}), ":" + std::to_string(kThreads * kKeysPerThread));
  EXPECT_EQ(metric(*proxy_, kLosses), 0);
}

// A negative-cache entry in another db than 0 is dropped too (an invalidation names no db).
TEST_F(CoherenceTest, InvalidationsReachNegativeEntriesInEveryDb) {
  start(R"(
rules:
  - match: "neg:*"
    negative_cache: {ttl: 60s}
)");
  wait_coherent();
  Client c(proxy_->port());
  Client direct(redis_->port());
  ASSERT_EQ(c.run({"SELECT", "5"}), "+OK");
  ASSERT_EQ(direct.run({"SELECT", "5"}), "+OK");
  ASSERT_EQ(c.run({"GET", "neg:k"}), "(nil)");
  const long long before = calls("get");
  ASSERT_EQ(c.run({"GET", "neg:k"}), "(nil)");
  ASSERT_EQ(calls("get"), before) << "the absence was not learned";
  ASSERT_EQ(direct.run({"SET", "neg:k", "db5"}), "+OK");
  EXPECT_TRUE(wait_until([&] { return c.run({"GET", "neg:k"}) == "$db5"; }, 1000ms));
  // Keys outside the rule's prefix are not tracked: the channel carries only what it needs.
  const double keys_before =
      metric(*proxy_, "respguard_coherence_invalidations_total{kind=\"key\"}");
  ASSERT_EQ(direct.run({"SET", "other:k", "x"}), "+OK");
  ASSERT_EQ(direct.run({"SET", "neg:z", "x"}), "+OK");
  EXPECT_TRUE(
      metric_is(*proxy_, "respguard_coherence_invalidations_total{kind=\"key\"}", keys_before + 1));
}

// FLUSHALL (on a direct connection) reaches the proxy as a flush: every entry goes.
TEST_F(CoherenceTest, ADirectFlushallClearsTheNegativeCache) {
  // No Bloom filter: it would answer these absent keys before the negative cache learns them.
  start(R"(
rules:
  - match: "f:*"
    negative_cache: {ttl: 60s}
)");
  wait_coherent();
  Client c(proxy_->port());
  Client direct(redis_->port());
  for (const char* key : {"f:1", "f:2"}) ASSERT_EQ(c.run({"GET", key}), "(nil)");
  EXPECT_GT(metric(*proxy_, "respguard_negative_cache_entries"), 0);
  ASSERT_EQ(direct.run({"FLUSHALL"}), "+OK");
  EXPECT_TRUE(metric_is(*proxy_, "respguard_coherence_invalidations_total{kind=\"flush\"}", 1));
  EXPECT_TRUE(metric_is(*proxy_, "respguard_negative_cache_entries", 0));
}

// Channel loss: CLIENT KILL TYPE pubsub drops the invalidation connection. The proxy stops
// trusting local state at once (absent keys go to Redis again), and trusts it again only after
// the channel is back and a warm-up scan ran — which also finds keys created while it was down.
TEST_F(CoherenceTest, ChannelLossDistrustsLocalStateUntilItIsBackAndWarmedUp) {
  // A slow reconnect keeps the outage long enough to look at.
  start(std::string(kLocalState) + R"(
upstream:
  reconnect_backoff_min: 1500ms
  reconnect_backoff_max: 3s
)");
  wait_coherent();
  Client c(proxy_->port());
  Client direct(redis_->port());
  ASSERT_EQ(c.run({"GET", "loss:absent"}), "(nil)");
  long long before = calls("get");
  ASSERT_EQ(c.run({"GET", "loss:absent"}), "(nil)");
  ASSERT_EQ(c.run({"GET", "loss:never"}), "(nil)");
  ASSERT_EQ(calls("get"), before) << "absent keys should be answered locally while coherent";

  const auto killed = SteadyClock::now();
  ASSERT_EQ(direct.run({"CLIENT", "KILL", "TYPE", "pubsub"}), ":1");
  ASSERT_TRUE(metric_is(*proxy_, kLosses, 1, 2s)) << "the loss was not noticed";
  const long long noticed_ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(SteadyClock::now() - killed).count();
  EXPECT_EQ(metric(*proxy_, kChannelState), 0);
  EXPECT_EQ(metric(*proxy_, kUntrusted), 1);
  std::printf("[coherence] channel loss noticed within %lld ms (scrape included)\n", noticed_ms);

  // Down: nothing local is believed. A write now sends no invalidation anywhere.
  ASSERT_EQ(direct.run({"SET", "loss:absent", "written-while-down"}), "+OK");
  ASSERT_EQ(direct.run({"SET", "loss:created", "while-down"}), "+OK");
  before = calls("get");
  EXPECT_EQ(c.run({"GET", "loss:absent"}), "$written-while-down");
  EXPECT_EQ(c.run({"GET", "loss:never"}), "(nil)");
  EXPECT_EQ(c.run({"GET", "loss:never"}), "(nil)");
  EXPECT_EQ(calls("get"), before + 3) << "while down, every GET must reach Redis";
  EXPECT_EQ(metric(*proxy_, kChannelState), 0) << "the outage ended too soon to observe";

  // Back (after the 1.5 s backoff) and warmed up: the key created while down is found by the
  // warm-up scan (no invalidation for it ever arrives), absent keys are local again.
  ASSERT_TRUE(metric_is(*proxy_, kChannelState, 1, 10s)) << "the channel did not come back";
  ASSERT_TRUE(metric_is(*proxy_, kUntrusted, 0, 10s)) << "no warm-up after the channel came back";
  EXPECT_EQ(c.run({"GET", "loss:created"}), "$while-down");
  ASSERT_EQ(c.run({"GET", "loss:never"}), "(nil)");
  before = calls("get");
  EXPECT_EQ(c.run({"GET", "loss:never"}), "(nil)");
  EXPECT_EQ(c.run({"GET", "loss:other-never"}), "(nil)");
  EXPECT_EQ(calls("get"), before) << "coherent again: absent keys answered locally";
  EXPECT_EQ(metric(*proxy_, kLosses), 1);
  EXPECT_GE(metric(*proxy_, "respguard_bloom_passes_total{kind=\"warmup\"}"), 2);
  EXPECT_NE(proxy_->log().find("coherence channel lost"), std::string::npos);
  EXPECT_NE(proxy_->log().find("coherence channel restored"), std::string::npos);
  EXPECT_EQ(http_status(proxy_->admin_port(), "/readyz"), 200);
}

// Killing the tracking connection (not the subscriber) is a loss too: Redis stops tracking
// for a client that is gone, so no invalidation would come.
TEST_F(CoherenceTest, LosingTheTrackingConnectionIsALossToo) {
  start(kLocalState);
  wait_coherent();
  Client direct(redis_->port());
  const std::string killed =
      direct.run({"CLIENT", "KILL", "SKIPME", "yes", "ID", [&] {
                    // The tracking connection names itself.
                    Reply list = direct.command({"CLIENT", "LIST"});
                    const std::string all(list->str, list->len);
                    const auto at = all.find("name=respguard-tracking");
                    const auto line = all.rfind("id=", at);
                    return all.substr(line + 3, all.find(' ', line) - line - 3);
                  }()});
  ASSERT_EQ(killed, ":1");
  EXPECT_TRUE(metric_is(*proxy_, kLosses, 1, 2s));
  EXPECT_TRUE(metric_is(*proxy_, kChannelState, 1, 10s)) << "the channel did not come back";
  EXPECT_TRUE(metric_is(*proxy_, kUntrusted, 0, 10s));
}

// Redis refuses CLIENT TRACKING (here an ACL; Redis < 6 has no tracking at all): the proxy
// says so loudly, stays ready, keeps the negative cache bounded by its ttl and never answers
// from the Bloom filter.
TEST_F(CoherenceTest, RefusedTrackingFallsBackToTtlBounds) {
  start_as_user({"~*", "&*", "+@all", "-client|tracking"});
  EXPECT_NE(proxy_->log().find("Redis refused client tracking (CLIENT TRACKING"),
            std::string::npos);
  Client c(proxy_->port());
  ASSERT_EQ(c.run({"AUTH", "proxy", "secret"}), "+OK");
  ASSERT_EQ(c.run({"GET", "ttl:absent"}), "(nil)");
  long long before = calls("get");
  EXPECT_EQ(c.run({"GET", "ttl:absent"}), "(nil)");
  EXPECT_EQ(calls("get"), before) << "the negative cache still works, bounded by its ttl";
  before = calls("get");
  EXPECT_EQ(c.run({"GET", "ttl:never-seen"}), "(nil)");
  EXPECT_EQ(calls("get"), before + 1) << "an untrusted Bloom filter rules nothing out";
  EXPECT_EQ(metric(*proxy_, kUntrusted), 1);
}

// A user without the invalidation channel (Redis 7's default for new users: no channels) is
// refused SUBSCRIBE: the same fallback, said just as loudly.
TEST_F(CoherenceTest, ARefusedSubscriptionFallsBackToTtlBounds) {
  start_as_user({"~*", "resetchannels", "+@all"});
  EXPECT_NE(proxy_->log().find("Redis refused client tracking (SUBSCRIBE"), std::string::npos);
}

// With no rule keeping local state, no channel is opened at all.
TEST_F(CoherenceTest, NoLocalStateNoChannel) {
  start(R"(
rules:
  - match: "*"
    coalesce: true
)");
  ASSERT_TRUE(metric_is(*proxy_, kChannelState, 3));
  Client direct(redis_->port());
  Reply list = direct.command({"CLIENT", "LIST"});
  const std::string all(list->str, list->len);
  EXPECT_EQ(all.find("respguard-invalidations"), std::string::npos);
  EXPECT_EQ(all.find("respguard-tracking"), std::string::npos);
}

}  // namespace
}  // namespace rgtest
