#include "respguard/protection/command_guard.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace respguard::protection {
namespace {

using Refusal = CommandGuard::Refusal;

struct Checked {
  Refusal refusal;
  std::string reply;
};

Checked check(const CommandGuard& guard, std::vector<std::string_view> args) {
  std::string reply;
  const Refusal r = guard.check(args, resp::lookup_command(args[0]), reply);
  return {r, reply};
}

config::GuardConfig production() {
  config::GuardConfig c;
  c.profile = "production";
  return c;
}

TEST(CommandGuard, OffByDefaultLetsEverythingThrough) {
  CommandGuard guard{config::GuardConfig{}};
  EXPECT_FALSE(guard.enabled());
  EXPECT_EQ(check(guard, {"KEYS", "*"}).refusal, Refusal::None);
  EXPECT_EQ(check(guard, {"FLUSHALL"}).refusal, Refusal::None);
}

TEST(CommandGuard, ProductionDeniesWithWhyAndWhatInstead) {
  CommandGuard guard{production()};
  EXPECT_TRUE(guard.enabled());
  const Checked keys = check(guard, {"keys", "*"});
  EXPECT_EQ(keys.refusal, Refusal::Denied);
  EXPECT_EQ(keys.reply,
            "ERR KEYS is denied by respguard (guard profile production): it blocks Redis while it "
            "walks every key; use SCAN");
  EXPECT_EQ(check(guard, {"FLUSHALL", "ASYNC"}).refusal, Refusal::Denied);
  EXPECT_EQ(check(guard, {"MONITOR"}).refusal, Refusal::Denied);
  EXPECT_EQ(check(guard, {"DEBUG", "SLEEP", "0"}).refusal, Refusal::Denied);
  EXPECT_EQ(check(guard, {"GET", "k"}).refusal, Refusal::None);
  EXPECT_EQ(check(guard, {"SCAN", "0"}).refusal, Refusal::None);
}

TEST(CommandGuard, SubcommandsAreDeniedOneByOne) {
  CommandGuard guard{production()};
  const Checked set = check(guard, {"CONFIG", "set", "maxmemory", "1"});
  EXPECT_EQ(set.refusal, Refusal::Denied);
  EXPECT_NE(set.reply.find("CONFIG SET is denied"), std::string::npos) << set.reply;
  EXPECT_EQ(check(guard, {"config", "GET", "maxmemory"}).refusal, Refusal::None);
  EXPECT_EQ(check(guard, {"SCRIPT", "FLUSH"}).refusal, Refusal::Denied);
  EXPECT_EQ(check(guard, {"SCRIPT", "EXISTS", "abc"}).refusal, Refusal::None);
  EXPECT_EQ(check(guard, {"CONFIG"}).refusal, Refusal::None);  // Redis answers the arity error
}

TEST(CommandGuard, DenyAddsAndAllowRemoves) {
  config::GuardConfig c = production();
  c.deny = {"hgetall", "client|list"};
  c.allow = {"flushdb", "config|set"};
  CommandGuard guard{c};
  const Checked hgetall = check(guard, {"HGETALL", "h"});
  EXPECT_EQ(hgetall.refusal, Refusal::Denied);
  EXPECT_EQ(hgetall.reply, "ERR HGETALL is denied by respguard (guard.deny)");
  EXPECT_EQ(check(guard, {"CLIENT", "LIST"}).reply,
            "ERR CLIENT LIST is denied by respguard (guard.deny)");
  EXPECT_EQ(check(guard, {"CLIENT", "SETNAME", "x"}).refusal, Refusal::None);
  EXPECT_EQ(check(guard, {"FLUSHDB"}).refusal, Refusal::None);
  EXPECT_EQ(check(guard, {"CONFIG", "SET", "a", "b"}).refusal, Refusal::None);
  EXPECT_EQ(check(guard, {"FLUSHALL"}).refusal, Refusal::Denied);
}

TEST(CommandGuard, DenyListWithoutAProfile) {
  config::GuardConfig c;
  c.deny = {"keys"};
  CommandGuard guard{c};
  EXPECT_TRUE(guard.enabled());
  EXPECT_EQ(check(guard, {"KEYS", "*"}).refusal, Refusal::Denied);
  EXPECT_EQ(check(guard, {"FLUSHALL"}).refusal, Refusal::None);
}

TEST(CommandGuard, UnknownCommandsAreNotTheGuardsBusiness) {
  CommandGuard guard{production()};
  std::string reply;
  const std::vector<std::string_view> args = {"NOSUCHCOMMAND", "x"};
  EXPECT_EQ(guard.check(args, nullptr, reply), Refusal::None);  // Redis answers them
}

TEST(CommandGuard, ArgumentAndRequestSizeLimits) {
  config::GuardConfig c;
  c.max_arguments = 3;
  c.max_request_bytes = 20;
  CommandGuard guard{c};
  EXPECT_EQ(check(guard, {"MGET", "a", "b", "c"}).refusal, Refusal::None);
  const Checked many = check(guard, {"MGET", "a", "b", "c", "d"});
  EXPECT_EQ(many.refusal, Refusal::TooManyArguments);
  EXPECT_EQ(many.reply, "ERR respguard guard: 4 arguments, over guard.max_arguments (3)");
  EXPECT_EQ(check(guard, {"SET", "k", "0123456789"}).refusal, Refusal::None);  // 14 bytes
  const Checked big = check(guard, {"SET", "k", "0123456789abcdefghij"});
  EXPECT_EQ(big.refusal, Refusal::RequestTooBig);
  EXPECT_EQ(big.reply,
            "ERR respguard guard: a request of 24 bytes, over guard.max_request_bytes (20)");
}

TEST(CommandGuard, ValueLimitAppliesToWritesAndNotToKeys) {
  config::GuardConfig c;
  c.max_value_bytes = 8;
  CommandGuard guard{c};
  const std::string long_key(100, 'k');
  EXPECT_EQ(check(guard, {"SET", long_key, "small"}).refusal, Refusal::None);
  const Checked big = check(guard, {"SET", "k", "0123456789"});
  EXPECT_EQ(big.refusal, Refusal::ValueTooBig);
  EXPECT_EQ(big.reply,
            "ERR respguard guard: a value of 10 bytes, over guard.max_value_bytes (8): keep big "
            "values out of Redis");
  EXPECT_EQ(check(guard, {"HSET", "h", "f", "0123456789"}).refusal, Refusal::ValueTooBig);
  EXPECT_EQ(check(guard, {"MSET", long_key, "v", "k2", "0123456789"}).refusal,
            Refusal::ValueTooBig);
  EXPECT_EQ(check(guard, {"MSET", long_key, "v", long_key, "w"}).refusal, Refusal::None);
  // Reads carry no values: a long argument to GET is a key.
  EXPECT_EQ(check(guard, {"GET", long_key}).refusal, Refusal::None);
}

TEST(CommandGuard, LargestValueSkipsKeyPositions) {
  const resp::CommandInfo& set = *resp::lookup_command("set");
  const std::vector<std::string_view> args = {"SET", "a-long-key-name", "v", "EX", "10"};
  EXPECT_EQ(CommandGuard::largest_value(args, set), 2u);  // "EX", "10"
  const resp::CommandInfo& get = *resp::lookup_command("get");
  EXPECT_EQ(CommandGuard::largest_value(args, get), 0u);  // not a write
}

TEST(CommandGuard, EveryProductionEntryNamesARealCommand) {
  for (const DeniedCommand& d : production_deny_list()) {
    EXPECT_EQ(config::normalize_command_name(d.name), d.name);
    EXPECT_FALSE(d.why.empty()) << d.name;
  }
}

TEST(CommandGuard, NormalizeCommandName) {
  EXPECT_EQ(config::normalize_command_name("KEYS"), "keys");
  EXPECT_EQ(config::normalize_command_name(" config  set "), "config|set");
  EXPECT_EQ(config::normalize_command_name("CONFIG|SET"), "config|set");
  EXPECT_EQ(config::normalize_command_name("nosuchcommand"), "");
  EXPECT_EQ(config::normalize_command_name("config set maxmemory"), "");
  EXPECT_EQ(config::normalize_command_name(""), "");
  EXPECT_EQ(config::normalize_command_name("ke*s"), "");
}

}  // namespace
}  // namespace respguard::protection
