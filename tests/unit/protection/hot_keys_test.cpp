#include "respguard/protection/hot_keys.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <random>
#include <string>
#include <vector>

namespace respguard::protection {
namespace {

std::string key(std::size_t i) {
  return "user:" + std::to_string(i);
}

// A Zipf(s) stream over `keys` keys: key 0 the hottest. Deterministic (fixed seed).
std::vector<std::size_t> zipf_stream(std::size_t keys, double s, std::size_t length,
                                     std::uint32_t seed) {
  std::vector<double> weights(keys);
  for (std::size_t i = 0; i < keys; ++i) weights[i] = 1.0 / std::pow(static_cast<double>(i + 1), s);
  std::discrete_distribution<std::size_t> dist(weights.begin(), weights.end());
  std::mt19937 rng(seed);
  std::vector<std::size_t> out(length);
  for (auto& k : out) k = dist(rng);
  return out;
}

TEST(HotKeys, SkewedStreamFindsTheTrueTopKeysInOrder) {
  // 100,000 requests over 50,000 keys, Zipf 1.1; 256 counters: the ten hottest keys come out
  // first, in their true order, with counts within the error bound.
  const auto stream = zipf_stream(50'000, 1.1, 100'000, 7);
  std::map<std::size_t, std::uint64_t> truth;
  HotKeys hk(256, 1, 1);
  for (std::size_t k : stream) {
    hk.add(key(k));
    ++truth[k];
  }
  const auto top = hk.top(10);
  ASSERT_EQ(top.size(), 10u);
  for (std::size_t i = 0; i < 10; ++i) {
    EXPECT_EQ(top[i].key, key(i)) << "rank " << i + 1;
    const std::uint64_t real = truth[i];
    EXPECT_GE(top[i].count, real) << top[i].key;  // never an underestimate
    EXPECT_LE(top[i].count - top[i].error, real) << top[i].key;
  }
  EXPECT_EQ(hk.total(), stream.size());
}

TEST(HotKeys, EveryKeyAboveTotalOverCapacityIsKept) {
  // Space-Saving's guarantee, on a stream built to push them out: every key more frequent than
  // total/capacity is in the table, however many cold keys come between.
  HotKeys hk(50, 1, 1);
  std::map<std::string, std::uint64_t> truth;
  std::mt19937 rng(3);
  std::uint64_t cold = 0;
  for (int round = 0; round < 2'000; ++round) {
    for (int h = 0; h < 5; ++h) {
      hk.add("hot:" + std::to_string(h));
      ++truth["hot:" + std::to_string(h)];
    }
    for (int c = 0; c < 20; ++c) hk.add("cold:" + std::to_string(cold++));
  }
  const std::uint64_t bound = hk.total() / hk.capacity();
  const auto all = hk.top(hk.capacity());
  for (const auto& [k, n] : truth) {
    ASSERT_GT(n, bound);
    const auto it =
        std::find_if(all.begin(), all.end(), [&](const HotKey& h) { return h.key == k; });
    ASSERT_NE(it, all.end()) << k;
    EXPECT_GE(it->count, n);
    EXPECT_LE(it->count - it->error, n);
  }
  EXPECT_EQ(hk.size(), 50u);
}

TEST(HotKeys, MemoryStaysBoundedWithAMillionDistinctKeys) {
  HotKeys hk(1'000, 1, 1);
  hk.add("warm-up");
  std::size_t bytes_at_capacity = 0;
  for (std::size_t i = 0; i < 1'000'000; ++i) {
    hk.add("session:0123456789abcdef:" + std::to_string(i));
    if (i % 10 == 0) hk.add("hot");  // 10 %: far above total/capacity
    if (i == 2'000) bytes_at_capacity = hk.memory_bytes();
  }
  EXPECT_EQ(hk.size(), 1'000u);
  // The table holds 1,000 keys of ~32 bytes: a few hundred KB, and no more than once it first
  // filled up (key buffers are reused).
  EXPECT_LT(hk.memory_bytes(), 256u * 1024) << hk.memory_bytes();
  EXPECT_LE(hk.memory_bytes(), bytes_at_capacity + 1'000u * 64);
  const auto top = hk.top(1);
  ASSERT_EQ(top.size(), 1u);
  EXPECT_EQ(top[0].key, "hot");
  EXPECT_GE(top[0].count, 100'000u);
}

TEST(HotKeys, LongKeysAreCountedByTheirPrefix) {
  HotKeys hk(8, 1, 1, 16);
  const std::string a = std::string(16, 'a') + "-one";
  const std::string b = std::string(16, 'a') + "-two";
  hk.add(a);
  hk.add(b);
  const auto top = hk.top(8);
  ASSERT_EQ(top.size(), 1u);
  EXPECT_EQ(top[0].key, std::string(16, 'a'));
  EXPECT_EQ(top[0].count, 2u);
}

TEST(HotKeys, TakeReturnsEverythingHottestFirstAndEmptiesTheTable) {
  HotKeys hk(4, 1, 1);
  for (int i = 0; i < 3; ++i) hk.add("b");
  for (int i = 0; i < 5; ++i) hk.add("a");
  hk.add("c");
  const auto taken = hk.take();
  ASSERT_EQ(taken.size(), 3u);
  EXPECT_EQ(taken[0], (HotKey{"a", 5, 0}));
  EXPECT_EQ(taken[1], (HotKey{"b", 3, 0}));
  EXPECT_EQ(taken[2], (HotKey{"c", 1, 0}));
  EXPECT_EQ(hk.size(), 0u);
  EXPECT_EQ(hk.total(), 0u);
  EXPECT_TRUE(hk.top(10).empty());
  hk.add("d");  // usable again, from empty
  EXPECT_EQ(hk.top(10), (std::vector<HotKey>{{"d", 1, 0}}));
}

TEST(HotKeys, MergeSumsTheWorkersListsByKey) {
  const std::vector<std::vector<HotKey>> lists = {
      {{"a", 10, 1}, {"b", 4, 0}, {"c", 3, 0}},
      {{"b", 9, 2}, {"d", 5, 0}},
      {},
      {{"a", 1, 0}, {"e", 1, 0}},
  };
  const auto merged = HotKeys::merge(lists, 3);
  EXPECT_EQ(merged, (std::vector<HotKey>{{"b", 13, 2}, {"a", 11, 1}, {"d", 5, 0}}));
  EXPECT_EQ(HotKeys::merge(lists, 100).size(), 5u);
  EXPECT_TRUE(HotKeys::merge({}, 10).empty());
}

TEST(HotKeys, MergeOfSplitStreamsFindsTheTopOfTheWhole) {
  // Two workers each see part of the traffic; neither alone ranks the keys as the whole does.
  const auto stream = zipf_stream(20'000, 1.0, 60'000, 11);
  HotKeys w0(128, 1, 1), w1(128, 1, 2);
  std::mt19937 rng(5);
  for (std::size_t k : stream) (rng() % 2 ? w0 : w1).add(key(k));
  const std::vector<std::vector<HotKey>> lists = {w0.take(), w1.take()};
  const auto merged = HotKeys::merge(lists, 5);
  ASSERT_EQ(merged.size(), 5u);
  for (std::size_t i = 0; i < 5; ++i) EXPECT_EQ(merged[i].key, key(i));
}

TEST(HotKeys, TickSamplesOneCommandInNOnAverage) {
  for (std::size_t n : {1u, 2u, 16u, 100u}) {
    HotKeys hk(8, n, 42);
    std::size_t sampled = 0;
    constexpr std::size_t kCommands = 1'000'000;
    for (std::size_t i = 0; i < kCommands; ++i) sampled += hk.tick() ? 1 : 0;
    const double expected = static_cast<double>(kCommands) / static_cast<double>(n);
    EXPECT_NEAR(static_cast<double>(sampled), expected, expected * 0.03) << "1 in " << n;
  }
}

TEST(HotKeys, SamplingDoesNotLockOntoARepeatingPattern) {
  // A client cycling through 16 keys, sampled 1 in 16: every key is seen, about equally.
  HotKeys hk(32, 16, 9);
  for (int i = 0; i < 320'000; ++i) {
    if (hk.tick()) hk.add(key(static_cast<std::size_t>(i % 16)));
  }
  const auto all = hk.top(32);
  ASSERT_EQ(all.size(), 16u);
  for (const HotKey& k : all) EXPECT_NEAR(static_cast<double>(k.count), 1'250.0, 200.0) << k.key;
}

TEST(HotKeys, CapacityZeroIsRefused) {
  EXPECT_THROW(HotKeys(0, 1, 1), std::invalid_argument);
}

}  // namespace
}  // namespace respguard::protection
