#include "respguard/protection/rate_limiter.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <barrier>
#include <cstdint>
#include <mutex>
#include <thread>
#include <vector>

namespace respguard::protection {
namespace {

using namespace std::chrono_literals;
using Verdict = Admission::Verdict;

// Injected time: a fixed origin well away from the clock's epoch, plus an offset.
const TimePoint kT0 = TimePoint(1000s);
TimePoint at(std::chrono::nanoseconds offset) {
  return kT0 + offset;
}

config::RateLimitRule rule(unsigned rate, unsigned burst = 0) {
  return {rate, burst};
}

TEST(TokenBucket, ExactRateSustainedIsNeverRejected) {
  // The strictest bucket (burst 1) and rates whose interval is and is not a whole number of
  // nanoseconds; the client sends its k-th request at k/rate seconds, rounded either way.
  for (unsigned rate : {1u, 3u, 7u, 1000u, 999'983u, 1'000'000u}) {
    for (bool round_up : {false, true}) {
      TokenBucket bucket(rate, 1);
      for (std::int64_t k = 0; k < 20'000; ++k) {
        const std::int64_t exact_num = k * 1'000'000'000;
        const std::int64_t t = exact_num / rate + (round_up && exact_num % rate != 0 ? 1 : 0);
        const Admission a = bucket.take(at(std::chrono::nanoseconds(t)));
        ASSERT_EQ(a.verdict, Verdict::Admitted) << "rate " << rate << " request " << k;
      }
    }
  }
}

TEST(TokenBucket, FasterThanTheRateIsRejected) {
  TokenBucket bucket(10, 1);  // one per 100ms
  EXPECT_EQ(bucket.take(at(0ms)).verdict, Verdict::Admitted);
  EXPECT_EQ(bucket.take(at(99ms)).verdict, Verdict::Rejected);
  EXPECT_EQ(bucket.take(at(100ms)).verdict, Verdict::Admitted);
}

TEST(TokenBucket, BurstAtOneInstantThenRejected) {
  TokenBucket bucket(100, 20);  // 10ms per token, 20 deep
  for (int i = 0; i < 20; ++i) {
    ASSERT_EQ(bucket.take(at(0ms)).verdict, Verdict::Admitted) << i;
  }
  EXPECT_EQ(bucket.take(at(0ms)).verdict, Verdict::Rejected);
  EXPECT_EQ(bucket.take(at(9ms)).verdict, Verdict::Rejected);
  EXPECT_EQ(bucket.take(at(10ms)).verdict, Verdict::Admitted) << "one token per interval";
  EXPECT_EQ(bucket.take(at(10ms)).verdict, Verdict::Rejected);
}

TEST(TokenBucket, BurstZeroMeansSameAsRate) {
  TokenBucket bucket(50, 0);
  int admitted = 0;
  for (int i = 0; i < 100; ++i) admitted += bucket.take(at(0ms)).admitted();
  EXPECT_EQ(admitted, 50);
}

TEST(TokenBucket, IdleTimeRefillsUpToTheBurstOnly) {
  TokenBucket bucket(100, 5);
  for (int i = 0; i < 5; ++i) bucket.take(at(0ms));
  int admitted = 0;
  for (int i = 0; i < 100; ++i) admitted += bucket.take(at(1h)).admitted();
  EXPECT_EQ(admitted, 5);
}

TEST(TokenBucket, DelayModeReservesSlotsAndBoundsTheDelay) {
  TokenBucket bucket(10, 1);  // 100ms per token
  const auto max_delay = 250ms;
  EXPECT_EQ(bucket.take(at(0ms), max_delay).verdict, Verdict::Admitted);
  Admission a = bucket.take(at(0ms), max_delay);
  EXPECT_EQ(a.verdict, Verdict::Delayed);
  EXPECT_EQ(a.delay, 100ms);
  a = bucket.take(at(0ms), max_delay);
  EXPECT_EQ(a.verdict, Verdict::Delayed);
  EXPECT_EQ(a.delay, 200ms) << "the previous delayed request holds the 100ms slot";
  EXPECT_EQ(bucket.take(at(0ms), max_delay).verdict, Verdict::Rejected) << "300ms > max_delay";

  // The rejection reserved nothing: 100ms later the next free slot is still at 300ms.
  a = bucket.take(at(100ms), max_delay);
  EXPECT_EQ(a.verdict, Verdict::Delayed);
  EXPECT_EQ(a.delay, 200ms);
}

TEST(TokenBucket, DelayedRequestsStayWithinTheRate) {
  // Every request waits its delay and so runs at its reserved instant; those instants are
  // exactly one interval apart.
  TokenBucket bucket(1000, 1);
  std::vector<std::chrono::nanoseconds> runs;
  for (int i = 0; i < 50; ++i) {
    const Admission a = bucket.take(at(0ms), 1s);
    ASSERT_TRUE(a.admitted());
    runs.push_back(a.delay);
  }
  for (std::size_t i = 0; i < runs.size(); ++i) EXPECT_EQ(runs[i], 1ms * i);
}

TEST(TokenBucket, RateZeroAlwaysAdmits) {
  TokenBucket bucket(0, 0);
  EXPECT_TRUE(bucket.unlimited());
  for (int i = 0; i < 100'000; ++i) {
    const Admission a = bucket.take(at(0ms));
    ASSERT_EQ(a.verdict, Verdict::Admitted);
    ASSERT_EQ(a.delay, 0ns);
  }
}

TEST(TokenBucket, ConcurrentTakersGetExactlyTheTokens) {
  // Four threads hammer one bucket in lockstep over simulated time: at every tick each makes
  // 40k attempts, together more than there are tokens. Ticks are long enough that the threads
  // overlap despite the barrier's wake-up skew. With a correct CAS loop the total is exact (a
  // plain load + store version of take() loses thousands of updates here).
  constexpr unsigned kRate = 100'000'000;  // 10ns per token
  constexpr unsigned kBurst = 150'000;     // deeper than one tick's refill, so none is capped
  constexpr int kThreads = 4;
  constexpr int kTicks = 50;
  constexpr auto kTick = 1ms;               // 100k tokens per tick
  constexpr int kAttemptsPerTick = 40'000;  // per thread: 160k attempts per tick, > kBurst
  TokenBucket bucket(kRate, kBurst);
  std::atomic<std::int64_t> admitted{0};
  std::barrier sync(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      std::int64_t mine = 0;
      for (int tick = 0; tick < kTicks; ++tick) {
        const TimePoint now = at(kTick * tick);
        for (int i = 0; i < kAttemptsPerTick; ++i) mine += bucket.take(now).admitted();
        sync.arrive_and_wait();
      }
      admitted += mine;
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(admitted.load(), kBurst + std::int64_t{kTicks - 1} * 100'000);
}

TEST(TokenBucket, ConcurrentDelayedReservationsAreDistinctSlots) {
  constexpr int kThreads = 4;
  TokenBucket bucket(1000, 10);  // 1ms per token
  std::mutex mu;
  std::vector<std::chrono::nanoseconds> delays;
  std::atomic<int> rejected{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 1000; ++i) {
        const Admission a = bucket.take(at(0ms), 500ms);
        if (!a.admitted()) {
          ++rejected;
          continue;
        }
        std::lock_guard lock(mu);
        delays.push_back(a.delay);
      }
    });
  }
  for (auto& th : threads) th.join();
  // 10 at once, then one slot per ms up to 500ms.
  ASSERT_EQ(delays.size(), 510u);
  EXPECT_EQ(rejected.load(), 4000 - 510);
  std::sort(delays.begin(), delays.end());
  for (std::size_t i = 0; i < 10; ++i) EXPECT_EQ(delays[i], 0ns);
  for (std::size_t i = 10; i < delays.size(); ++i) EXPECT_EQ(delays[i], 1ms * (i - 9)) << i;
}

config::RateLimitConfig limits(config::RateLimitRule limit, config::RateLimitRule write = {}) {
  config::RateLimitConfig c;
  c.limit = limit;
  c.write_limit = write;
  return c;
}

TEST(RateLimiter, SameIdentitySharesOneBucket) {
  RateLimiter limiter(limits(rule(10)));
  auto a = limiter.identity("10.0.0.7", at(0ms));
  auto b = limiter.identity("10.0.0.7", at(0ms));
  ASSERT_EQ(a.get(), b.get()) << "two connections of one client, any worker";
  EXPECT_EQ(limiter.size(), 1u);
  int admitted = 0;
  for (int i = 0; i < 10; ++i) {
    admitted += limiter.admit(*a, false, at(0ms)).admitted();
    admitted += limiter.admit(*b, false, at(0ms)).admitted();
  }
  EXPECT_EQ(admitted, 10) << "the limit does not multiply by connections";

  auto other = limiter.identity("10.0.0.8", at(0ms));
  EXPECT_NE(other.get(), a.get());
  EXPECT_TRUE(limiter.admit(*other, false, at(0ms)).admitted());
}

TEST(RateLimiter, ConcurrentLookupsYieldOneIdentity) {
  RateLimiter limiter(limits(rule(10)));
  std::vector<const RateLimiter::Identity*> seen(8);
  std::vector<std::shared_ptr<const RateLimiter::Identity>> keep(8);
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      keep[t] = limiter.identity("shared", at(0ms));
      seen[t] = keep[t].get();
    });
  }
  for (auto& th : threads) th.join();
  for (auto* p : seen) EXPECT_EQ(p, seen[0]);
  EXPECT_EQ(limiter.size(), 1u);
}

TEST(RateLimiter, OverrideAppliesToTheExactIdentityOnly) {
  config::RateLimitConfig c = limits(rule(1000));
  c.overrides = {{"batch-job", rule(5)}, {"reports", rule(0)}, {"batch-job", rule(7)}};
  RateLimiter limiter(c);
  auto batch = limiter.identity("batch-job", at(0ms));
  EXPECT_EQ(batch->limit().rate, 5u) << "the first matching override wins";
  EXPECT_EQ(limiter.identity("batch-job-2", at(0ms))->limit().rate, 1000u);
  EXPECT_EQ(limiter.identity("batch", at(0ms))->limit().rate, 1000u);

  int admitted = 0;
  for (int i = 0; i < 10; ++i) admitted += limiter.admit(*batch, false, at(0ms)).admitted();
  EXPECT_EQ(admitted, 5);

  auto reports = limiter.identity("reports", at(0ms));
  for (int i = 0; i < 10'000; ++i) {
    ASSERT_TRUE(limiter.admit(*reports, false, at(0ms)).admitted()) << "rate 0: unlimited";
  }
}

TEST(RateLimiter, WritesPassBothLimitsAndARefusedWriteCostsNoGeneralToken) {
  RateLimiter limiter(limits(rule(100), rule(2)));
  auto id = limiter.identity("app", at(0ms));
  EXPECT_TRUE(limiter.admit(*id, true, at(0ms)).admitted());
  EXPECT_TRUE(limiter.admit(*id, true, at(0ms)).admitted());
  for (int i = 0; i < 5; ++i) {
    const Admission a = limiter.admit(*id, true, at(0ms));
    EXPECT_EQ(a.verdict, Verdict::Rejected);
    EXPECT_TRUE(a.write_limited);
  }
  // The two writes took two general tokens; the five refused ones took none.
  int reads = 0;
  for (int i = 0; i < 200; ++i) reads += limiter.admit(*id, false, at(0ms)).admitted();
  EXPECT_EQ(reads, 98);
  const Admission a = limiter.admit(*id, false, at(0ms));
  EXPECT_EQ(a.verdict, Verdict::Rejected);
  EXPECT_FALSE(a.write_limited);
}

TEST(RateLimiter, AWriteTheGeneralLimitRefusesGivesItsWriteTokenBack) {
  RateLimiter limiter(limits(rule(1000, 1), rule(1, 2)));  // general 1ms/token; writes 2 deep
  auto id = limiter.identity("app", at(0ms));
  ASSERT_TRUE(limiter.admit(*id, false, at(0ms)).admitted());  // drains the general bucket
  const Admission refused = limiter.admit(*id, true, at(0ms));
  EXPECT_EQ(refused.verdict, Verdict::Rejected);
  EXPECT_FALSE(refused.write_limited) << "the general limit refused it";
  // Both write tokens are still there (the write bucket refills one per second only).
  EXPECT_TRUE(limiter.admit(*id, true, at(1ms)).admitted());
  EXPECT_TRUE(limiter.admit(*id, true, at(2ms)).admitted());
  const Admission third = limiter.admit(*id, true, at(3ms));
  EXPECT_EQ(third.verdict, Verdict::Rejected);
  EXPECT_TRUE(third.write_limited);
}

TEST(RateLimiter, DelayIsTheLongerOfBothBuckets) {
  config::RateLimitConfig c = limits(rule(1000, 1), rule(10, 1));  // 1ms and 100ms per token
  c.max_delay = 500ms;
  RateLimiter limiter(c);
  auto id = limiter.identity("app", at(0ms));
  EXPECT_EQ(limiter.admit(*id, true, at(0ms)).verdict, Verdict::Admitted);
  const Admission a = limiter.admit(*id, true, at(0ms));
  EXPECT_EQ(a.verdict, Verdict::Delayed);
  EXPECT_EQ(a.delay, 100ms);
  const Admission r = limiter.admit(*id, false, at(0ms));
  EXPECT_EQ(r.verdict, Verdict::Delayed);
  EXPECT_EQ(r.delay, 2ms) << "two general slots are taken";
}

TEST(RateLimiter, EnabledOnlyWhenSomeLimitApplies) {
  EXPECT_FALSE(RateLimiter(limits(rule(0))).enabled());
  EXPECT_TRUE(RateLimiter(limits(rule(10))).enabled());
  EXPECT_TRUE(RateLimiter(limits(rule(0), rule(10))).enabled()) << "writes are limited";
  config::RateLimitConfig c = limits(rule(0));
  c.overrides = {{"a", rule(0)}};
  EXPECT_FALSE(RateLimiter(c).enabled());
  c.overrides.push_back({"b", rule(3)});
  EXPECT_TRUE(RateLimiter(c).enabled());
}

TEST(RateLimiter, SweepKeepsReferencedAndRecentIdentitiesAndDropsIdleOnes) {
  config::RateLimitConfig c = limits(rule(10));
  c.idle_expiry = 60s;
  RateLimiter limiter(c);
  auto held = limiter.identity("held", at(0s));  // a connected session keeps it
  limiter.identity("idle", at(0s));              // the client disconnected
  auto recent = limiter.identity("recent", at(0s));
  limiter.admit(*recent, false, at(50s));
  recent.reset();  // disconnected at 50s
  EXPECT_EQ(limiter.size(), 3u);

  EXPECT_EQ(limiter.sweep(at(60s)), 0u) << "not idle for longer than 60s yet";
  EXPECT_EQ(limiter.sweep(at(60s) + 1ns), 1u);
  EXPECT_EQ(limiter.size(), 2u);
  EXPECT_EQ(limiter.sweep(at(200s)), 1u) << "recent goes; held stays however old";
  EXPECT_EQ(limiter.size(), 1u);
  EXPECT_EQ(limiter.identity("held", at(200s)).get(), held.get());
}

TEST(RateLimiter, ReconnectingWithinIdleExpiryKeepsTheDrainedBucket) {
  config::RateLimitConfig c = limits(rule(10));
  c.idle_expiry = 60s;
  RateLimiter limiter(c);
  {
    auto id = limiter.identity("c", at(0s));
    for (int i = 0; i < 10; ++i) limiter.admit(*id, false, at(0s));
  }
  limiter.sweep(at(10ms));
  auto again = limiter.identity("c", at(10ms));
  EXPECT_FALSE(limiter.admit(*again, false, at(10ms)).admitted());
}

TEST(RateLimiter, RejectionMessageQuotesIdentityAndLimit) {
  config::RateLimitConfig c = limits(rule(1000), rule(100));
  c.overrides = {{"batch-job", rule(5)}};
  RateLimiter limiter(c);
  auto ip = limiter.identity("10.0.0.7", at(0s));
  EXPECT_EQ(rejection_message(*ip, false), "rate limit exceeded (10.0.0.7, 1000/s)");
  EXPECT_EQ(rejection_message(*ip, true), "rate limit exceeded (10.0.0.7, 100 writes/s)");
  EXPECT_EQ(rejection_message(*limiter.identity("batch-job", at(0s)), false),
            "rate limit exceeded (batch-job, 5/s)");
  EXPECT_EQ(rejection_message(*limiter.identity("a\r\nb", at(0s)), false),
            "rate limit exceeded (a??b, 1000/s)");
}

}  // namespace
}  // namespace respguard::protection
