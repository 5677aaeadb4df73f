#include "respguard/policy/lease_table.hpp"

#include <gtest/gtest.h>

namespace respguard::policy {
namespace {

struct W {
  std::uint64_t token;
  std::uint64_t client;
};
using Table = LeaseTable<W>;
using Miss = Table::Miss;
using Expired = Table::Expired;
using namespace std::chrono_literals;

const auto t0 = std::chrono::steady_clock::time_point{} + 1h;

TEST(LeaseTable, FirstMissHoldsTheLeaseOthersWaitAndGetTheValue) {
  Table t(1000);
  EXPECT_EQ(t.on_miss("k", t0, 1s, W{1, 100}), Miss::Granted);
  EXPECT_TRUE(t.leased("k"));
  EXPECT_TRUE(t.wait_if_leased("k", t0 + 10ms, W{2, 200}));
  EXPECT_EQ(t.on_miss("k", t0 + 20ms, 1s, W{3, 300}), Miss::Wait);
  // The holder itself is never made to wait on its own lease.
  EXPECT_FALSE(t.wait_if_leased("k", t0 + 30ms, W{4, 100}));
  std::vector<W> woken;
  t.fulfill("k", woken);
  ASSERT_EQ(woken.size(), 2u);
  EXPECT_EQ(woken[0].token, 2u);
  EXPECT_EQ(woken[1].token, 3u);
  EXPECT_FALSE(t.leased("k"));
  EXPECT_EQ(t.granted(), 1u);
}

TEST(LeaseTable, NoLeaseNoWait) {
  Table t(1000);
  EXPECT_FALSE(t.wait_if_leased("k", t0, W{1, 1}));
  std::vector<W> woken;
  t.fulfill("k", woken);
  EXPECT_TRUE(woken.empty());
}

TEST(LeaseTable, AWaiterTimingOutBeforeTheLeaseLapsesGetsNil) {
  Table t(1000);
  t.on_miss("k", t0, 1s, W{1, 100});
  ASSERT_TRUE(t.wait_if_leased("k", t0, W{2, 200}));
  EXPECT_EQ(t.expire("k", 2, t0 + 500ms, 1s), Expired::Nil);
  EXPECT_EQ(t.expire("k", 2, t0 + 600ms, 1s), Expired::NotWaiting);  // answered once only
}

TEST(LeaseTable, AWaiterTimingOutAfterTheLeaseLapsedTakesTheNextLease) {
  Table t(1000);
  t.on_miss("k", t0, 1s, W{1, 100});
  ASSERT_TRUE(t.wait_if_leased("k", t0 + 100ms, W{2, 200}));
  ASSERT_TRUE(t.wait_if_leased("k", t0 + 200ms, W{3, 300}));
  EXPECT_EQ(t.expire("k", 2, t0 + 1100ms, 1s), Expired::Granted);
  // Client 300 now waits for client 200's SET.
  std::vector<W> woken;
  t.fulfill("k", woken);
  ASSERT_EQ(woken.size(), 1u);
  EXPECT_EQ(woken[0].client, 300u);
}

TEST(LeaseTable, EndingALeasePromotesTheFirstWaiter) {
  Table t(1000);
  t.on_miss("k", t0, 1s, W{1, 100});
  t.wait_if_leased("k", t0, W{2, 200});
  t.wait_if_leased("k", t0, W{3, 300});
  std::vector<W> promoted;
  t.end("k", /*only_if_holder=*/999, t0, 1s, promoted);  // not the holder: nothing happens
  EXPECT_TRUE(promoted.empty());
  t.end("k", 100, t0 + 10ms, 1s, promoted);  // the holder disconnects
  ASSERT_EQ(promoted.size(), 1u);
  EXPECT_EQ(promoted[0].client, 200u);
  EXPECT_FALSE(t.wait_if_leased("k", t0 + 20ms, W{4, 200}));  // 200 holds it now
  EXPECT_TRUE(t.wait_if_leased("k", t0 + 20ms, W{5, 400}));
}

TEST(LeaseTable, ALapsedLeaseWithoutWaitersPassesToTheNextMiss) {
  Table t(1000);
  t.on_miss("k", t0, 1s, W{1, 100});
  EXPECT_FALSE(t.wait_if_leased("k", t0 + 2s, W{2, 200}));  // lapsed: read through
  EXPECT_EQ(t.on_miss("k", t0 + 2s, 1s, W{3, 200}), Miss::Granted);
  EXPECT_EQ(t.on_miss("k", t0 + 2100ms, 1s, W{4, 100}), Miss::Wait);
}

TEST(LeaseTable, BoundedByMaxKeys) {
  Table t(/*max_keys=*/1, /*stripes=*/1);
  EXPECT_EQ(t.on_miss("a", t0, 1s, W{1, 1}), Miss::Granted);
  EXPECT_EQ(t.on_miss("b", t0, 1s, W{2, 1}), Miss::NoLease);
  EXPECT_EQ(t.size(), 1u);
}

}  // namespace
}  // namespace respguard::policy
