#include "respguard/policy/bloom_filter.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <limits>
#include <random>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace respguard::policy {
namespace {

// The hash the request path computes once per key (HashedKey::hash).
std::uint64_t hash_of(std::string_view key) {
  return std::hash<std::string_view>{}(key);
}

// `count` hashes of generated keys "<prefix><random number>": fixed seed, so every run sees the
// same keys; distinct prefixes keep the present and absent sets disjoint.
std::vector<std::uint64_t> key_hashes(std::string_view prefix, std::size_t count,
                                      std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<std::uint64_t> out;
  out.reserve(count);
  std::string key;
  for (std::size_t i = 0; i < count; ++i) {
    key.assign(prefix);
    key += std::to_string(rng());
    out.push_back(hash_of(key));
  }
  return out;
}

double measured_false_positive_rate(const BloomFilter& filter,
                                    const std::vector<std::uint64_t>& absent) {
  std::size_t positives = 0;
  for (auto h : absent) positives += filter.may_contain(h) ? 1 : 0;
  return static_cast<double>(positives) / static_cast<double>(absent.size());
}

TEST(BloomFilter, NeverForgetsAnAddedKey) {
  BloomFilter filter(100'000, 0.01);
  const auto present = key_hashes("user:", 100'000, 1);
  for (auto h : present) filter.add(h);
  std::size_t missed = 0;
  for (auto h : present) missed += filter.may_contain(h) ? 0 : 1;
  EXPECT_EQ(missed, 0u);
}

void expect_false_positive_rate_near(double rate) {
  SCOPED_TRACE(rate);
  BloomFilter filter(100'000, rate);
  for (auto h : key_hashes("user:", 100'000, 2)) filter.add(h);
  const double measured = measured_false_positive_rate(filter, key_hashes("absent:", 1'000'000, 3));
  std::printf("[ info     ] p=%g: %llu bits (%.2f bits/key), k=%u, measured %.5f\n", rate,
              static_cast<unsigned long long>(filter.bit_count()),
              static_cast<double>(filter.bit_count()) / 100'000, filter.hash_count(), measured);
  EXPECT_GE(measured, 0.5 * rate);
  EXPECT_LE(measured, 1.5 * rate);
}

TEST(BloomFilter, FalsePositiveRateAtCapacityIsTheConfiguredOnePercent) {
  expect_false_positive_rate_near(0.01);
}

TEST(BloomFilter, FalsePositiveRateAtCapacityIsTheConfiguredTenthOfAPercent) {
  expect_false_positive_rate_near(0.001);
}

TEST(BloomFilter, WeakInputHashStillSpreads) {
  // An identity-like hash (consecutive integers) would crowd a few blocks without the mixing.
  BloomFilter filter(100'000, 0.01);
  for (std::uint64_t i = 0; i < 100'000; ++i) filter.add(i);
  std::size_t positives = 0;
  for (std::uint64_t i = 1'000'000; i < 2'000'000; ++i) positives += filter.may_contain(i) ? 1 : 0;
  const double measured = static_cast<double>(positives) / 1'000'000;
  EXPECT_GE(measured, 0.005);
  EXPECT_LE(measured, 0.015);
}

TEST(BloomFilter, TenMillionKeysAtOnePercentTakeWithinTenPercentOfTheTheoreticalSize) {
  // m = -n ln p / (ln 2)^2 = 95,850,584 bits = 11.98 MB.
  const double theoretical_bytes = -1e7 * std::log(0.01) / (std::log(2.0) * std::log(2.0)) / 8;
  EXPECT_NEAR(theoretical_bytes, 11.98e6, 0.01e6);
  EXPECT_EQ(BloomFilter::optimal_bit_count(10'000'000, 0.01),
            static_cast<std::uint64_t>(std::ceil(theoretical_bytes * 8)));

  BloomFilter filter(10'000'000, 0.01);
  std::printf("[ info     ] 10M keys at 1%%: %zu bytes (%.3f x theoretical), k=%u\n",
              filter.memory_bytes(), static_cast<double>(filter.memory_bytes()) / theoretical_bytes,
              filter.hash_count());
  EXPECT_GE(static_cast<double>(filter.memory_bytes()), theoretical_bytes);
  EXPECT_LE(static_cast<double>(filter.memory_bytes()), 1.10 * theoretical_bytes);
  EXPECT_EQ(filter.memory_bytes() * 8, filter.bit_count());
  EXPECT_EQ(filter.expected_keys(), 10'000'000u);
}

TEST(BloomFilter, SizingMeetsTheRateOfTheBlockedLayout) {
  for (double rate : {0.1, 0.01, 0.001, 0.0001}) {
    for (std::uint64_t n : {1ull, 1'000ull, 1'000'000ull}) {
      SCOPED_TRACE(testing::Message() << "n=" << n << " p=" << rate);
      BloomFilter filter(n, rate);
      EXPECT_EQ(filter.bit_count() % BloomFilter::kBlockBits, 0u);
      EXPECT_GE(filter.bit_count(), BloomFilter::kBlockBits);
      EXPECT_LE(
          BloomFilter::blocked_false_positive_rate(n, filter.bit_count(), filter.hash_count()),
          rate);
      if (n >= 1'000) {
        // The blocked layout's price: a few percent more bits than the classic optimum.
        EXPECT_GE(filter.bit_count(), BloomFilter::optimal_bit_count(n, rate));
        EXPECT_LE(filter.bit_count(), 1.2 * BloomFilter::optimal_bit_count(n, rate));
      }
    }
  }
}

TEST(BloomFilter, RejectsARateOutsideZeroToOne) {
  EXPECT_THROW(BloomFilter(1'000, 0.0), std::invalid_argument);
  EXPECT_THROW(BloomFilter(1'000, 1.0), std::invalid_argument);
  EXPECT_THROW(BloomFilter(1'000, -0.5), std::invalid_argument);
  EXPECT_THROW(BloomFilter(1'000, std::numeric_limits<double>::quiet_NaN()), std::invalid_argument);
  BloomFilter empty_config(0, 0.01);  // zero expected keys counts as one
  empty_config.add(42);
  EXPECT_TRUE(empty_config.may_contain(42));
}

TEST(BloomFilter, ClearEmptiesIt) {
  BloomFilter filter(10'000, 0.01);
  const auto present = key_hashes("user:", 10'000, 4);
  for (auto h : present) filter.add(h);
  EXPECT_GT(filter.approximate_fill_ratio(), 0.3);
  filter.clear();
  EXPECT_EQ(filter.approximate_fill_ratio(), 0.0);
  EXPECT_EQ(filter.estimated_false_positive_rate(), 0.0);
  std::size_t still_there = 0;
  for (auto h : present) still_there += filter.may_contain(h) ? 1 : 0;
  EXPECT_EQ(still_there, 0u);
  filter.add(present[0]);
  EXPECT_TRUE(filter.may_contain(present[0])) << "usable again after clear()";
}

TEST(BloomFilter, FillRatioAndEstimateTrackTheMeasuredValues) {
  const std::size_t n = 100'000;
  BloomFilter filter(n, 0.01);
  EXPECT_EQ(filter.approximate_fill_ratio(), 0.0);
  EXPECT_EQ(filter.estimated_false_positive_rate(), 0.0);
  const auto present = key_hashes("user:", n, 5);
  const auto absent = key_hashes("absent:", 1'000'000, 6);
  const double m = static_cast<double>(filter.bit_count());
  const double k = filter.hash_count();

  double previous_estimate = 0.0;
  for (std::size_t loaded : {n / 2, n, 2 * n}) {
    SCOPED_TRACE(loaded);
    std::vector<std::uint64_t> more = key_hashes("more:", loaded > n ? loaded - n : 0, 7);
    filter.clear();
    for (std::size_t i = 0; i < std::min(loaded, n); ++i) filter.add(present[i]);
    for (auto h : more) filter.add(h);
    const double expected_fill = 1.0 - std::exp(-k * static_cast<double>(loaded) / m);
    const double fill = filter.approximate_fill_ratio();
    const double estimate = filter.estimated_false_positive_rate();
    const double measured = measured_false_positive_rate(filter, absent);
    std::printf("[ info     ] %zu keys: fill %.4f (theory %.4f), FP estimate %.5f, measured %.5f\n",
                loaded, fill, expected_fill, estimate, measured);
    EXPECT_NEAR(fill, expected_fill, 0.01);
    EXPECT_GE(estimate, 0.8 * measured);
    EXPECT_LE(estimate, 1.25 * measured);
    EXPECT_GT(estimate, previous_estimate) << "more keys, higher rate";
    previous_estimate = estimate;
  }
}

TEST(BloomFilter, ConcurrentAddsAreNeverMissedOnceComplete) {
  constexpr std::size_t kWriters = 4;
  constexpr std::size_t kReaders = 2;
  constexpr std::size_t kPerWriter = 50'000;
  BloomFilter filter(kWriters * kPerWriter, 0.01);
  std::vector<std::vector<std::uint64_t>> keys;
  for (std::size_t w = 0; w < kWriters; ++w) {
    keys.push_back(key_hashes("w" + std::to_string(w) + ":", kPerWriter, 100 + w));
  }
  // published[w] = n: writer w's add() of its first n keys has returned. The release store
  // and the readers' acquire load make "add() completed before the check started" precise.
  std::vector<std::atomic<std::size_t>> published(kWriters);
  std::atomic<bool> writers_done{false};
  std::atomic<std::size_t> misses{0};
  std::atomic<std::size_t> checks{0};

  std::vector<std::thread> readers;
  for (std::size_t r = 0; r < kReaders; ++r) {
    readers.emplace_back([&, r] {
      std::mt19937_64 rng(200 + r);
      std::size_t local_misses = 0;
      std::size_t local_checks = 0;
      for (bool last_round = false; !last_round;) {
        last_round = writers_done.load(std::memory_order_acquire);
        for (std::size_t w = 0; w < kWriters; ++w) {
          const std::size_t n = published[w].load(std::memory_order_acquire);
          if (n == 0) continue;
          // The newest key (the one most likely to race) and a random older one.
          for (std::size_t i : {n - 1, static_cast<std::size_t>(rng() % n)}) {
            local_misses += filter.may_contain(keys[w][i]) ? 0 : 1;
            ++local_checks;
          }
        }
      }
      misses += local_misses;
      checks += local_checks;
    });
  }
  std::vector<std::thread> writers;
  for (std::size_t w = 0; w < kWriters; ++w) {
    writers.emplace_back([&, w] {
      for (std::size_t i = 0; i < kPerWriter; ++i) {
        filter.add(keys[w][i]);
        published[w].store(i + 1, std::memory_order_release);
      }
    });
  }
  for (auto& t : writers) t.join();
  writers_done.store(true, std::memory_order_release);
  for (auto& t : readers) t.join();

  EXPECT_EQ(misses.load(), 0u) << "of " << checks.load() << " checks";
  EXPECT_GT(checks.load(), 0u);
  std::size_t missed = 0;
  for (const auto& ks : keys) {
    for (auto h : ks) missed += filter.may_contain(h) ? 0 : 1;
  }
  EXPECT_EQ(missed, 0u) << "every key is there once all writers joined";
}

}  // namespace
}  // namespace respguard::policy
