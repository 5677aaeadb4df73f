#include "respguard/policy/negative_cache.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <random>
#include <string>
#include <thread>
#include <vector>

namespace respguard::policy {
namespace {

using namespace std::chrono_literals;
using TimePoint = std::chrono::steady_clock::time_point;

// A clock the test moves by hand. Atomic, so the concurrent test can share it.
class ManualClock {
 public:
  NegativeCache::Clock fn() {
    return [this] { return TimePoint(std::chrono::milliseconds(now_ms_.load())); };
  }
  void advance(std::chrono::milliseconds d) { now_ms_ += d.count(); }

 private:
  std::atomic<long long> now_ms_{1'000'000};
};

TEST(NegativeCache, RemembersUntilTheTtlRunsOut) {
  ManualClock clock;
  NegativeCache cache(100, clock.fn());
  EXPECT_FALSE(cache.contains(0, "user:1"));
  cache.remember(0, "user:1", 5s);
  EXPECT_TRUE(cache.contains(0, "user:1"));
  clock.advance(4999ms);
  EXPECT_TRUE(cache.contains(0, "user:1"));
  clock.advance(1ms);
  EXPECT_FALSE(cache.contains(0, "user:1")) << "expires exactly at remember + ttl";
  EXPECT_EQ(cache.size(), 0u) << "the expired entry was dropped by the lookup";
}

// The lock-free pre-check never hides a remembered key, and forgets its bits once the cache
// is empty again (a cache that filled and drained costs lookups nothing afterwards).
TEST(NegativeCache, PresenceBitsCoverEveryEntryAndClearWhenEmpty) {
  ManualClock clock;
  NegativeCache cache(1000, clock.fn());
  std::string buf;
  for (int i = 0; i < 500; ++i) cache.remember(0, "k" + std::to_string(i), 5s);
  for (int i = 0; i < 500; ++i) {
    const HashedKey dk(db_key(0, "k" + std::to_string(i), buf));
    ASSERT_TRUE(cache.maybe_contains(dk)) << i;
    ASSERT_TRUE(cache.contains(dk)) << i;
  }
  int absent_maybe = 0;
  for (int i = 0; i < 1000; ++i) {
    absent_maybe += cache.maybe_contains(HashedKey(db_key(0, "x" + std::to_string(i), buf)));
  }
  EXPECT_LT(absent_maybe, 200) << "500 entries in 8192 bits: few false positives";
  for (int i = 0; i < 500; ++i) cache.forget(0, "k" + std::to_string(i));
  EXPECT_TRUE(cache.empty());
  for (int i = 0; i < 500; ++i) {
    EXPECT_FALSE(cache.maybe_contains(HashedKey(db_key(0, "k" + std::to_string(i), buf)))) << i;
  }
}

TEST(NegativeCache, RememberingAgainRenewsTheTtl) {
  ManualClock clock;
  NegativeCache cache(100, clock.fn());
  cache.remember(0, "k", 1s);
  clock.advance(900ms);
  cache.remember(0, "k", 1s);
  clock.advance(900ms);
  EXPECT_TRUE(cache.contains(0, "k"));
  EXPECT_EQ(cache.size(), 1u);
}

TEST(NegativeCache, NonPositiveTtlRemembersNothing) {
  ManualClock clock;
  NegativeCache cache(100, clock.fn());
  cache.remember(0, "k", 0ms);
  cache.remember(0, "j", -5ms);
  EXPECT_FALSE(cache.contains(0, "k"));
  EXPECT_EQ(cache.size(), 0u);
}

TEST(NegativeCache, KeysAreScopedByDb) {
  ManualClock clock;
  NegativeCache cache(100, clock.fn());
  cache.remember(0, "k", 5s);
  EXPECT_TRUE(cache.contains(0, "k"));
  EXPECT_FALSE(cache.contains(1, "k"));
  cache.remember(1, "k", 5s);
  cache.forget(0, "k");
  EXPECT_FALSE(cache.contains(0, "k"));
  EXPECT_TRUE(cache.contains(1, "k"));
}

TEST(NegativeCache, BinaryAndEmptyKeys) {
  ManualClock clock;
  NegativeCache cache(100, clock.fn());
  const std::string a("a\0b", 3);
  const std::string b("a\0c", 3);
  cache.remember(0, a, 5s);
  cache.remember(0, "", 5s);
  EXPECT_TRUE(cache.contains(0, a));
  EXPECT_FALSE(cache.contains(0, b));
  EXPECT_FALSE(cache.contains(0, "a"));
  EXPECT_TRUE(cache.contains(0, ""));
}

TEST(NegativeCache, LongKeysSurviveTheMapsRehashing) {
  // The index refers to the key bytes held by the LRU list: they must not move as the map
  // grows (long keys live on the heap, short ones inside the list node).
  ManualClock clock;
  NegativeCache cache(10'000, clock.fn(), 1);
  std::vector<std::string> keys;
  for (int i = 0; i < 5000; ++i) {
    keys.push_back((i % 2 ? std::string(100, 'x') : std::string()) + "key:" + std::to_string(i));
    cache.remember(0, keys.back(), 1h);
  }
  for (const std::string& k : keys) ASSERT_TRUE(cache.contains(0, k)) << k;
  EXPECT_FALSE(cache.contains(0, "key:5000"));
}

TEST(NegativeCache, ForgetRemovesOneKey) {
  ManualClock clock;
  NegativeCache cache(100, clock.fn());
  cache.remember(0, "a", 5s);
  cache.remember(0, "b", 5s);
  cache.forget(0, "a");
  cache.forget(0, "never-remembered");
  EXPECT_FALSE(cache.contains(0, "a"));
  EXPECT_TRUE(cache.contains(0, "b"));
  EXPECT_EQ(cache.size(), 1u);
}

TEST(NegativeCache, FullStripeEvictsTheLeastRecentlyUsed) {
  ManualClock clock;
  NegativeCache cache(3, clock.fn(), 1);  // one stripe: the LRU order is the whole cache's
  cache.remember(0, "a", 5s);
  cache.remember(0, "b", 5s);
  cache.remember(0, "c", 5s);
  EXPECT_TRUE(cache.contains(0, "a"));  // a is now the most recently used; b the least
  cache.remember(0, "d", 5s);
  EXPECT_EQ(cache.size(), 3u);
  EXPECT_EQ(cache.evictions(), 1u);
  EXPECT_FALSE(cache.contains(0, "b"));
  EXPECT_TRUE(cache.contains(0, "a"));
  EXPECT_TRUE(cache.contains(0, "c"));
  EXPECT_TRUE(cache.contains(0, "d"));
  // Order now (most recent first): d, c, a. Remembering a again refreshes it.
  cache.remember(0, "a", 5s);
  cache.remember(0, "e", 5s);
  EXPECT_FALSE(cache.contains(0, "c"));
  EXPECT_EQ(cache.evictions(), 2u);
}

TEST(NegativeCache, PushingOutAnExpiredEntryIsNotAnEviction) {
  ManualClock clock;
  NegativeCache cache(2, clock.fn(), 1);
  cache.remember(0, "a", 1s);
  cache.remember(0, "b", 10s);
  clock.advance(2s);
  cache.remember(0, "c", 10s);  // pushes out a, which had expired
  EXPECT_EQ(cache.evictions(), 0u);
  EXPECT_EQ(cache.size(), 2u);
  cache.remember(0, "d", 10s);  // pushes out b, still valid
  EXPECT_EQ(cache.evictions(), 1u);
}

TEST(NegativeCache, NeverHoldsMoreThanMaxEntries) {
  ManualClock clock;
  for (std::size_t max : {1u, 5u, 63u, 64u, 100u, 1000u}) {
    NegativeCache cache(max, clock.fn());  // 64 stripes by default
    for (int i = 0; i < 5000; ++i) {
      cache.remember(i % 3, "key:" + std::to_string(i), 1h);
      ASSERT_LE(cache.size(), max);
    }
    EXPECT_GT(cache.size(), 0u);
    EXPECT_GT(cache.evictions(), 0u);
  }
}

TEST(NegativeCache, ZeroCapacityRemembersNothing) {
  ManualClock clock;
  NegativeCache cache(0, clock.fn());
  cache.remember(0, "k", 5s);
  EXPECT_FALSE(cache.contains(0, "k"));
  EXPECT_EQ(cache.size(), 0u);
  cache.clear_db(0);
  cache.clear();
}

TEST(NegativeCache, ClearDbAffectsOnlyThatDb) {
  ManualClock clock;
  NegativeCache cache(1000, clock.fn());
  for (int db = 0; db < 3; ++db) {
    for (int i = 0; i < 100; ++i) cache.remember(db, "key:" + std::to_string(i), 1h);
  }
  EXPECT_EQ(cache.size(), 300u);
  cache.clear_db(1);
  EXPECT_EQ(cache.size(), 200u);
  for (int i = 0; i < 100; ++i) {
    const std::string key = "key:" + std::to_string(i);
    EXPECT_TRUE(cache.contains(0, key));
    EXPECT_FALSE(cache.contains(1, key));
    EXPECT_TRUE(cache.contains(2, key));
  }
  cache.clear_db(7);  // nothing there
  EXPECT_EQ(cache.size(), 200u);
}

TEST(NegativeCache, ClearRemovesEverything) {
  ManualClock clock;
  NegativeCache cache(1000, clock.fn());
  for (int i = 0; i < 100; ++i) cache.remember(i % 4, "key:" + std::to_string(i), 1h);
  cache.clear();
  EXPECT_EQ(cache.size(), 0u);
  EXPECT_FALSE(cache.contains(0, "key:0"));
  cache.remember(0, "key:0", 1h);  // still usable
  EXPECT_TRUE(cache.contains(0, "key:0"));
}

TEST(NegativeCache, WorksWithTheRealClock) {
  NegativeCache cache(10);
  cache.remember(0, "k", 1h);
  EXPECT_TRUE(cache.contains(0, "k"));
}

// Four threads remember, look up, forget and clear at random. The stripes' mutexes make this
// safe by construction (run under TSan to see it); here we check that nothing crashes and that
// the bounds hold throughout.
TEST(NegativeCache, ConcurrentUseKeepsItsInvariants) {
  ManualClock clock;
  constexpr std::size_t kMax = 500;
  NegativeCache cache(kMax, clock.fn(), 8);
  std::atomic<bool> bound_broken{false};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937 rng(static_cast<unsigned>(t));
      std::string key;
      for (int i = 0; i < 50'000; ++i) {
        key = "key:" + std::to_string(rng() % 2000);
        const int db = static_cast<int>(rng() % 3);
        switch (rng() % 16) {
          case 0:
            cache.forget(db, key);
            break;
          case 1:
            if (i % 1000 == 0) cache.clear_db(db);
            break;
          case 2:
            if (t == 0 && i % 500 == 0) clock.advance(100ms);
            break;
          case 3:
            if (cache.size() > kMax) bound_broken = true;
            break;
          default:
            if (rng() % 2) {
              cache.remember(db, key, std::chrono::milliseconds(rng() % 3000 + 1));
            } else {
              cache.contains(db, key);
            }
        }
      }
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_FALSE(bound_broken);
  EXPECT_LE(cache.size(), kMax);
  // Still consistent afterwards: what is remembered is found, what is forgotten is not.
  cache.clear();
  cache.remember(2, "after", 1h);
  EXPECT_TRUE(cache.contains(2, "after"));
  cache.forget(2, "after");
  EXPECT_FALSE(cache.contains(2, "after"));
  EXPECT_EQ(cache.size(), 0u);
}

}  // namespace
}  // namespace respguard::policy
