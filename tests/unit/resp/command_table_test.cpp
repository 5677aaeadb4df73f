#include "respguard/resp/command_table.hpp"

#include <gtest/gtest.h>

#include <string_view>
#include <vector>

namespace respguard::resp {
namespace {

std::optional<std::int64_t> timeout_of(std::vector<std::string_view> args) {
  const CommandInfo* info = lookup_command(args[0]);
  if (info == nullptr) return std::nullopt;
  return blocking_timeout_ms(*info, args);
}

TEST(CommandTable, LookupIgnoresCase) {
  EXPECT_EQ(command_id("MULTI"), CommandId::Multi);
  EXPECT_EQ(command_id("multi"), CommandId::Multi);
  EXPECT_EQ(command_id("SuBsCrIbE"), CommandId::Subscribe);
  EXPECT_EQ(command_id("blpop"), CommandId::Blocking);
}

TEST(CommandTable, UnknownCommandsAreForwardedAsOther) {
  EXPECT_EQ(lookup_command("NOSUCHCOMMAND"), nullptr);
  EXPECT_EQ(command_id("get"), CommandId::Other);
  EXPECT_EQ(command_id("multix"), CommandId::Other);
  EXPECT_EQ(command_id(""), CommandId::Other);
  EXPECT_EQ(command_id(std::string_view("averyveryverylongcommandname")), CommandId::Other);
}

TEST(CommandTable, BlockingTimeoutsInSecondsFromTheLastArgument) {
  EXPECT_EQ(timeout_of({"BLPOP", "a", "b", "1.5"}), 1500);
  EXPECT_EQ(timeout_of({"BRPOP", "a", "0"}), 0);
  EXPECT_EQ(timeout_of({"BLMOVE", "a", "b", "LEFT", "RIGHT", "2"}), 2000);
  EXPECT_EQ(timeout_of({"BZPOPMIN", "z", "0.001"}), 1);
}

TEST(CommandTable, BlockingTimeoutsAtFixedPositions) {
  EXPECT_EQ(timeout_of({"BLMPOP", "3", "1", "list", "LEFT"}), 3000);
  EXPECT_EQ(timeout_of({"BZMPOP", "0", "1", "z", "MIN"}), 0);
  EXPECT_EQ(timeout_of({"WAIT", "1", "250"}), 250);
}

TEST(CommandTable, InvalidTimeoutIsNotBlocking) {
  EXPECT_EQ(timeout_of({"BLPOP", "a", "soon"}), std::nullopt);
  EXPECT_EQ(timeout_of({"BLPOP", "a", "-1"}), std::nullopt);
  EXPECT_EQ(timeout_of({"BLPOP"}), std::nullopt);
  EXPECT_EQ(timeout_of({"WAIT", "1", "1.5"}), std::nullopt);
}

TEST(CommandTable, XreadBlocksOnlyWithBlockOption) {
  EXPECT_EQ(timeout_of({"XREAD", "COUNT", "2", "STREAMS", "s", "0"}), std::nullopt);
  EXPECT_EQ(timeout_of({"XREAD", "BLOCK", "100", "STREAMS", "s", "$"}), 100);
  EXPECT_EQ(timeout_of({"xreadgroup", "GROUP", "g", "c", "block", "0", "STREAMS", "s", ">"}), 0);
  // A key named "block" after STREAMS is not the option.
  EXPECT_EQ(timeout_of({"XREAD", "STREAMS", "block", "5"}), std::nullopt);
}

TEST(CommandTable, KnowsEveryRedisCommandWithKeySpecsAndFlags) {
  EXPECT_GE(all_commands().size(), 240u);
  const CommandInfo* get = lookup_command("GeT");
  ASSERT_NE(get, nullptr);
  EXPECT_EQ(get->name, "get");
  EXPECT_EQ(get->arity, 2);
  EXPECT_EQ(get->first_key, 1);
  EXPECT_EQ(get->last_key, 1);
  EXPECT_TRUE(get->flags & kReadonly);
  EXPECT_TRUE(get->categories & cat::kString);
  const CommandInfo* mset = lookup_command("mset");
  ASSERT_NE(mset, nullptr);
  EXPECT_EQ(mset->last_key, -1);
  EXPECT_EQ(mset->key_step, 2);
  EXPECT_TRUE(mset->flags & kWrite);
  EXPECT_TRUE(lookup_command("flushall")->categories & cat::kDangerous);
}

TEST(CommandTable, IndexIsDenseAndNamesAreUnique) {
  auto all = all_commands();
  for (std::size_t i = 0; i < all.size(); ++i) {
    EXPECT_EQ(all[i].index, i);
    EXPECT_EQ(lookup_command(all[i].name), &all[i]) << all[i].name;
  }
}

TEST(CommandTable, IequalsComparesAsciiCaseInsensitively) {
  EXPECT_TRUE(iequals("SetName", "setname"));
  EXPECT_FALSE(iequals("setname", "setnam"));
  EXPECT_FALSE(iequals("a", "b"));
}

}  // namespace
}  // namespace respguard::resp
