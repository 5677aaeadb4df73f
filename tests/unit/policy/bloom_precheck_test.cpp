#include "respguard/policy/bloom_precheck.hpp"

#include <gtest/gtest.h>

#include <string>

namespace respguard::policy {
namespace {

using Verdict = BloomPrecheck::Verdict;

config::BloomConfig keyspace(std::uint64_t expected = 10000) {
  config::BloomConfig c;
  c.expected_keys = expected;
  c.false_positive_rate = 0.01;
  return c;
}

config::BloomConfig id_set(std::string pattern = "product:{id}") {
  config::BloomConfig c = keyspace();
  c.source = config::BloomConfig::Source::Set;
  c.set = "valid:product-ids";
  c.id = std::move(pattern);
  return c;
}

// A warm-up pass over `items` that ends in `epoch`.
void warm(BloomPrecheck& b, std::uint64_t epoch, std::initializer_list<std::string_view> items) {
  BloomPrecheck::Pass pass = b.begin_pass(false, epoch);
  for (std::string_view item : items) b.add_scanned(pass, item);
  EXPECT_TRUE(b.end_pass(pass, epoch).trusted);
}

TEST(BloomPrecheck, ItemOfKeyspaceIsTheKey) {
  BloomPrecheck b(keyspace());
  EXPECT_EQ(b.item_of("user:1"), "user:1");
  EXPECT_EQ(b.item_of(""), "");
}

TEST(BloomPrecheck, ItemOfSetIsTheIdBetweenPrefixAndSuffix) {
  BloomPrecheck b(id_set("product:{id}:v1"));
  EXPECT_EQ(b.item_of("product:42:v1"), "42");
  EXPECT_EQ(b.item_of("product::v1"), "");
  EXPECT_EQ(b.item_of("product:42"), std::nullopt);
  EXPECT_EQ(b.item_of("user:42:v1"), std::nullopt);
  EXPECT_EQ(b.item_of("product:v1"), std::nullopt);  // prefix and suffix would overlap
  EXPECT_EQ(b.check("user:1", 1), Verdict::NotChecked);
}

TEST(BloomPrecheck, RejectsNothingUntilAPassEnds) {
  BloomPrecheck b(keyspace());
  EXPECT_EQ(b.check("absent", 1), Verdict::Untrusted);
  BloomPrecheck::Pass pass = b.begin_pass(false, 1);
  b.add_scanned(pass, "user:1");
  EXPECT_EQ(b.check("absent", 1), Verdict::Untrusted);  // mid-scan: not yet authoritative
  EXPECT_TRUE(b.end_pass(pass, 1).trusted);
  EXPECT_EQ(pass.scanned, 1u);
  EXPECT_EQ(b.check("absent", 1), Verdict::Absent);
  EXPECT_EQ(b.check("user:1", 1), Verdict::MayExist);
}

TEST(BloomPrecheck, TrustIsPerEpoch) {
  BloomPrecheck b(keyspace());
  warm(b, 3, {"a"});
  EXPECT_TRUE(b.trusted(3));
  EXPECT_EQ(b.check("absent", 0), Verdict::Untrusted);  // the channel is down
  EXPECT_EQ(b.check("absent", 4), Verdict::Untrusted);  // a new session needs a new warm-up
  b.distrust();
  EXPECT_FALSE(b.trusted(3));
}

TEST(BloomPrecheck, APassAcrossAChannelLossIsNotTrusted) {
  BloomPrecheck b(keyspace());
  BloomPrecheck::Pass pass = b.begin_pass(false, 1);
  EXPECT_FALSE(b.end_pass(pass, 2).trusted);
  EXPECT_FALSE(b.end_pass(pass, 0).trusted);
  EXPECT_EQ(b.check("absent", 2), Verdict::Untrusted);
}

TEST(BloomPrecheck, AddsReachTheFilterAtOnce) {
  BloomPrecheck b(keyspace());
  warm(b, 1, {});
  EXPECT_EQ(b.check("new", 1), Verdict::Absent);
  b.add("new");
  EXPECT_EQ(b.check("new", 1), Verdict::MayExist);
}

TEST(BloomPrecheck, ASetChangeDistrustsUntilAPassBegunAfterItEnds) {
  BloomPrecheck b(id_set());
  warm(b, 1, {"1", "2"});
  EXPECT_EQ(b.check("product:1", 1), Verdict::MayExist);
  EXPECT_EQ(b.check("product:3", 1), Verdict::Absent);

  b.set_changed();  // e.g. SADD valid:product-ids 3 written directly to Redis
  EXPECT_EQ(b.check("product:3", 1), Verdict::Untrusted);
  EXPECT_TRUE(b.stale());

  // A change during the reload: that reload proves nothing, the next one does.
  BloomPrecheck::Pass reload = b.begin_pass(false, 1);
  b.add_scanned(reload, "3");
  b.set_changed();
  EXPECT_FALSE(b.end_pass(reload, 1).trusted);
  EXPECT_EQ(b.check("product:4", 1), Verdict::Untrusted);

  BloomPrecheck::Pass again = b.begin_pass(false, 1);
  b.add_scanned(again, "3");
  b.add_scanned(again, "4");
  EXPECT_TRUE(b.end_pass(again, 1).trusted);
  EXPECT_EQ(b.check("product:4", 1), Verdict::MayExist);
  EXPECT_EQ(b.check("product:5", 1), Verdict::Absent);
}

TEST(BloomPrecheck, AFreshPassShedsDeletedItemsAndKeepsAddsMadeWhileItRan) {
  BloomPrecheck b(keyspace(1000));
  BloomPrecheck::Pass warmup = b.begin_pass(false, 1);
  for (int i = 0; i < 1000; ++i) b.add_scanned(warmup, "old:" + std::to_string(i));
  b.add_scanned(warmup, "kept");
  ASSERT_TRUE(b.end_pass(warmup, 1).trusted);

  BloomPrecheck::Pass rebuild = b.begin_pass(true, 1, 4000);
  b.add_scanned(rebuild, "kept");
  b.add("written-during-rebuild");  // a write through the proxy, or an invalidation
  // Until it ends, the old filter answers (and stays trusted).
  EXPECT_EQ(b.check("old:1", 1), Verdict::MayExist);
  EXPECT_EQ(b.check("written-during-rebuild", 1), Verdict::MayExist);
  BloomPrecheck::PassEnd end = b.end_pass(rebuild, 1);
  EXPECT_TRUE(end.trusted);
  ASSERT_NE(end.retired, nullptr);
  EXPECT_EQ(b.capacity(), 4000u);

  EXPECT_EQ(b.check("kept", 1), Verdict::MayExist);
  EXPECT_EQ(b.check("written-during-rebuild", 1), Verdict::MayExist);
  int shed = 0;
  for (int i = 0; i < 1000; ++i) {
    shed += b.check("old:" + std::to_string(i), 1) == Verdict::Absent;
  }
  EXPECT_GE(shed, 980);  // all but the new filter's false positives (1 % configured)
}

TEST(BloomPrecheck, AnAbortedFreshPassLeavesTheCurrentFilter) {
  BloomPrecheck b(keyspace());
  warm(b, 1, {"a"});
  BloomPrecheck::Pass rebuild = b.begin_pass(true, 1, 0);
  b.add("b");
  EXPECT_NE(b.abort_pass(rebuild), nullptr);
  EXPECT_EQ(b.check("a", 1), Verdict::MayExist);
  EXPECT_EQ(b.check("b", 1), Verdict::MayExist);
  EXPECT_TRUE(b.trusted(1));
  BloomPrecheck::Pass warmup = b.begin_pass(false, 1);
  EXPECT_EQ(b.abort_pass(warmup), nullptr);  // nothing of its own to drop
}

TEST(BloomPrecheck, EstimatesItsItemsFromTheFill) {
  BloomPrecheck b(keyspace(100000));
  BloomPrecheck::Pass pass = b.begin_pass(false, 1);
  for (int i = 0; i < 50000; ++i) b.add_scanned(pass, "k" + std::to_string(i));
  b.end_pass(pass, 1);
  EXPECT_NEAR(static_cast<double>(b.estimated_items()), 50000.0, 50000.0 * 0.05);
  EXPECT_GT(b.memory_bytes(), 100000u);  // about 1.2 bytes per expected key at 1 %
  EXPECT_LT(b.memory_bytes(), 140000u);
}

}  // namespace
}  // namespace respguard::policy
