#include "respguard/protection/health_state.hpp"

#include <gtest/gtest.h>

namespace respguard::protection {
namespace {

TEST(HealthState, StartsUpAndFallsAfterFallConsecutiveFailures) {
  HealthState h(2, 3);
  EXPECT_TRUE(h.up());
  EXPECT_EQ(h.record(false), std::nullopt);
  EXPECT_EQ(h.record(false), std::nullopt);
  EXPECT_EQ(h.record(true), std::nullopt) << "a good check resets the failure streak";
  EXPECT_EQ(h.record(false), std::nullopt);
  EXPECT_EQ(h.record(false), std::nullopt);
  EXPECT_TRUE(h.up());
  EXPECT_EQ(h.record(false), std::optional<bool>(false));
  EXPECT_FALSE(h.up());
  EXPECT_EQ(h.record(false), std::nullopt) << "the transition is reported once";
}

TEST(HealthState, RisesAfterRiseConsecutiveSuccesses) {
  HealthState h(2, 1);
  ASSERT_EQ(h.record(false), std::optional<bool>(false));
  EXPECT_EQ(h.record(true), std::nullopt);
  EXPECT_EQ(h.record(false), std::nullopt) << "a failed check resets the success streak";
  EXPECT_EQ(h.record(true), std::nullopt);
  EXPECT_FALSE(h.up());
  EXPECT_EQ(h.record(true), std::optional<bool>(true));
  EXPECT_TRUE(h.up());
  EXPECT_EQ(h.record(true), std::nullopt);
}

TEST(HealthState, ZeroCountsAsOneAndConfigIsHonoured) {
  HealthState zero(0, 0);
  EXPECT_EQ(zero.record(false), std::optional<bool>(false));
  EXPECT_EQ(zero.record(true), std::optional<bool>(true));

  config::HealthCheckConfig c;
  c.rise = 1;
  c.fall = 2;
  HealthState h(c);
  EXPECT_EQ(h.record(false), std::nullopt);
  EXPECT_EQ(h.record(false), std::optional<bool>(false));
  EXPECT_EQ(h.record(true), std::optional<bool>(true));
}

}  // namespace
}  // namespace respguard::protection
