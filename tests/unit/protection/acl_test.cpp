#include "respguard/protection/acl.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace respguard::protection {
namespace {

// Checks a command written as words, the way a client sends it.
AclVerdict check(const AclRules& rules, std::vector<std::string_view> args) {
  return rules.check(resp::lookup_command(args[0]), args);
}

std::string error(const AclRules& rules, std::vector<std::string_view> args) {
  return acl_error(check(rules, std::move(args)));
}

constexpr std::string_view kNoKey =
    "NOPERM this user has no permissions to access one of the keys used as arguments";

TEST(AclRules, NewUserMayRunNothing) {
  AclRules r;
  EXPECT_EQ(error(r, {"get", "k"}), "NOPERM this user has no permissions to run the 'get' command");
  EXPECT_EQ(error(r, {"PING"}), "NOPERM this user has no permissions to run the 'ping' command");
  // AUTH, HELLO, QUIT and RESET are Redis's no-auth commands: every user may run them.
  EXPECT_TRUE(check(r, {"auth", "a", "b"}).allowed());
  EXPECT_TRUE(check(r, {"quit"}).allowed());
}

TEST(AclRules, CategoriesLeftToRight) {
  AclRules r = AclRules::parse("+@read +@write -@dangerous ~app:*");
  EXPECT_TRUE(check(r, {"GET", "app:1"}).allowed());
  EXPECT_TRUE(check(r, {"set", "app:1", "v"}).allowed());
  EXPECT_EQ(error(r, {"get", "other"}), kNoKey);
  EXPECT_EQ(error(r, {"flushall"}),
            "NOPERM this user has no permissions to run the 'flushall' command");
  EXPECT_EQ(error(r, {"keys", "*"}), "NOPERM this user has no permissions to run the 'keys' command");
  // Containers are checked per subcommand, named "container|sub" as Redis names them.
  EXPECT_EQ(error(r, {"config", "get", "maxmemory"}),
            "NOPERM this user has no permissions to run the 'config|get' command");
  EXPECT_EQ(error(r, {"CLIENT", "LIST"}),
            "NOPERM this user has no permissions to run the 'client|list' command");
  EXPECT_TRUE(check(r, {"object", "encoding", "app:1"}).allowed());  // @keyspace @read
  EXPECT_EQ(error(r, {"object", "encoding", "x"}), kNoKey);  // its key, at position 2
  // Every key of a multi-key command must match.
  EXPECT_TRUE(check(r, {"mget", "app:1", "app:2"}).allowed());
  EXPECT_EQ(error(r, {"mget", "app:1", "b"}), kNoKey);
  EXPECT_EQ(error(r, {"mset", "app:1", "v", "b", "v"}), kNoKey);
  EXPECT_TRUE(check(r, {"mset", "app:1", "b", "app:2", "c"}).allowed()) << "values are not keys";
  // Order matters: a later + undoes an earlier -.
  AclRules again = AclRules::parse("+@read -@dangerous +keys allkeys");
  EXPECT_TRUE(check(again, {"keys", "*"}).allowed());
}

TEST(AclRules, CommandsAndSubcommands) {
  AclRules r = AclRules::parse("+get +config|get -get allkeys");
  EXPECT_FALSE(check(r, {"get", "k"}).allowed());
  EXPECT_TRUE(check(r, {"config", "get", "x"}).allowed());
  EXPECT_FALSE(check(r, {"config", "set", "x", "y"}).allowed());
  AclRules container = AclRules::parse("+config -config|set allkeys");
  EXPECT_TRUE(check(container, {"config", "get", "x"}).allowed());
  EXPECT_TRUE(check(container, {"config", "resetstat"}).allowed());
  EXPECT_EQ(error(container, {"config", "set", "a", "b"}),
            "NOPERM this user has no permissions to run the 'config|set' command");
  // A first argument of a plain command, as Redis 7.0 allows.
  AclRules select = AclRules::parse("+select|0");
  EXPECT_TRUE(check(select, {"select", "0"}).allowed());
  EXPECT_FALSE(check(select, {"select", "1"}).allowed());
}

TEST(AclRules, AllCommandsCoversUnknownCommands) {
  AclRules all = AclRules::parse("+@all ~*");
  EXPECT_TRUE(all.all_commands());
  EXPECT_TRUE(check(all, {"module.cmd", "x"}).allowed());
  AclRules minus = AclRules::parse("allcommands -flushall allkeys");
  EXPECT_FALSE(minus.all_commands()) << "any removal ends 'every command', as in Redis";
  EXPECT_TRUE(check(minus, {"get", "k"}).allowed());
  EXPECT_EQ(error(minus, {"MODULE.CMD"}),
            "NOPERM this user has no permissions to run the 'module.cmd' command");
  AclRules none = AclRules::parse("+@all nocommands");
  EXPECT_FALSE(check(none, {"get", "k"}).allowed());
}

TEST(AclRules, KeyPatternsAreRedisGlobs) {
  AclRules r = AclRules::parse("+@all ~app:* ~user:[0-9]?");
  EXPECT_TRUE(check(r, {"get", "user:1a"}).allowed());
  EXPECT_FALSE(check(r, {"get", "user:x1"}).allowed());
  EXPECT_FALSE(check(r, {"get", "App:1"}).allowed()) << "case-sensitive";
  EXPECT_TRUE(check(r, {"dbsize"}).allowed()) << "no keys: the command permission is enough";
  AclRules reset = AclRules::parse("+@all ~app:* resetkeys ~b");
  EXPECT_FALSE(check(reset, {"get", "app:1"}).allowed());
  EXPECT_TRUE(check(reset, {"get", "b"}).allowed());
  EXPECT_TRUE(AclRules::parse("~*").all_keys());
  EXPECT_TRUE(AclRules::parse("allkeys").all_keys());
  EXPECT_FALSE(AclRules::parse("allkeys resetkeys").all_keys());
}

TEST(AclRules, MovableKeys) {
  AclRules r = AclRules::parse("+@all ~app:*");
  EXPECT_TRUE(check(r, {"eval", "return 1", "1", "app:1", "notakey"}).allowed());
  EXPECT_FALSE(check(r, {"eval", "return 1", "2", "app:1", "b"}).allowed());
  EXPECT_TRUE(check(r, {"eval", "return 1", "0", "anything"}).allowed());
  EXPECT_FALSE(check(r, {"zunion", "2", "app:1", "b"}).allowed());
  EXPECT_TRUE(check(r, {"zunion", "2", "app:1", "app:2", "WEIGHTS", "1", "2"}).allowed());
  EXPECT_FALSE(check(r, {"zunionstore", "b", "1", "app:1"}).allowed());
  EXPECT_FALSE(check(r, {"sort", "app:l", "STORE", "b"}).allowed());
  EXPECT_TRUE(check(r, {"sort", "app:l", "LIMIT", "0", "1", "STORE", "app:d"}).allowed());
  EXPECT_FALSE(check(r, {"xread", "COUNT", "1", "STREAMS", "app:s", "b", "0", "0"}).allowed());
  EXPECT_TRUE(check(r, {"xread", "STREAMS", "app:s", "0"}).allowed());
  EXPECT_FALSE(check(r, {"blmpop", "0", "2", "app:1", "b", "LEFT"}).allowed());
  EXPECT_FALSE(check(r, {"migrate", "h", "1", "", "0", "5", "KEYS", "app:1", "b"}).allowed());
  EXPECT_FALSE(check(r, {"georadius", "app:g", "0", "0", "1", "km", "STORE", "b"}).allowed());
  // SORT BY a pattern and GET read other keys: Redis wants full key access for them.
  EXPECT_EQ(error(r, {"sort", "app:l", "BY", "w_*"}),
            "ERR BY option of SORT denied due to insufficient ACL permissions.");
  EXPECT_TRUE(check(r, {"sort", "app:l", "BY", "nosort"}).allowed());
  EXPECT_EQ(error(r, {"sort", "app:l", "GET", "#"}),
            "ERR GET option of SORT denied due to insufficient ACL permissions.");
}

TEST(AclRules, Channels) {
  AclRules none = AclRules::parse("+@all ~*");
  EXPECT_EQ(error(none, {"publish", "ch", "m"}),
            "NOPERM this user has no permissions to access one of the channels used as arguments");
  AclRules news = AclRules::parse("+@all ~* &news.*");
  EXPECT_TRUE(check(news, {"publish", "news.a", "m"}).allowed());
  EXPECT_FALSE(check(news, {"subscribe", "news.a", "other"}).allowed());
  EXPECT_TRUE(check(news, {"psubscribe", "news.*"}).allowed());
  EXPECT_FALSE(check(news, {"psubscribe", "news.a"}).allowed()) << "patterns match literally";
  EXPECT_TRUE(check(AclRules::parse("+@all allchannels"), {"publish", "x", "m"}).allowed());
}

TEST(AclRules, BadRulesAreNamed) {
  auto message = [](std::string_view rules) {
    try {
      AclRules::parse(rules);
    } catch (const std::invalid_argument& e) {
      return std::string(e.what());
    }
    return std::string("accepted");
  };
  EXPECT_EQ(message("+@raed"), "unknown ACL category '@raed' in '+@raed'");
  EXPECT_EQ(message("+gett"), "unknown command 'gett' in '+gett'");
  EXPECT_EQ(message("+config|gett"), "unknown subcommand 'gett' of 'config' in '+config|gett'");
  EXPECT_NE(message(">password").find("unsupported ACL rule '>password'"), std::string::npos);
  EXPECT_NE(message("%R~app:*").find("not supported"), std::string::npos);
  EXPECT_EQ(message("  +@read   ~a  on "), "accepted");
}

TEST(Acl, AuthenticatesBySha256) {
  config::AuthConfig cfg;
  cfg.users.push_back({"app", common::sha256_hex("app-secret"), "+@read ~app:*"});
  cfg.users.push_back({"default", common::sha256_hex("pw"), "+@all ~*"});
  Acl acl(cfg);
  ASSERT_TRUE(acl.enabled());
  const Acl::User* app = acl.authenticate("app", "app-secret");
  ASSERT_NE(app, nullptr);
  EXPECT_EQ(app->name, "app");
  EXPECT_EQ(acl.authenticate("app", "app-secreT"), nullptr);
  EXPECT_EQ(acl.authenticate("nobody", "app-secret"), nullptr);
  EXPECT_NE(acl.authenticate("default", "pw"), nullptr);
  EXPECT_FALSE(Acl(config::AuthConfig{}).enabled());
}

TEST(Acl, BadRulesNameTheUser) {
  config::AuthConfig cfg;
  cfg.users.push_back({"app", common::sha256_hex("x"), "+@read"});
  cfg.users.push_back({"b", common::sha256_hex("x"), "+@nope"});
  try {
    Acl acl(cfg);
    FAIL() << "accepted";
  } catch (const std::invalid_argument& e) {
    EXPECT_EQ(std::string(e.what()), "auth.users[1].rules: unknown ACL category '@nope' in '+@nope'");
  }
}

TEST(Acl, FailedAttemptsAreLimitedPerProcess) {
  config::AuthConfig cfg;
  cfg.users.push_back({"app", common::sha256_hex("x"), ""});
  cfg.max_failures_per_second = 3;
  Acl acl(cfg);
  const TimePoint t0 = TimePoint(std::chrono::seconds(1000));
  // Successful attempts give their token back: any number of them.
  for (int i = 0; i < 10; ++i) {
    ASSERT_TRUE(acl.admit_attempt(t0));
    acl.attempt_succeeded();
  }
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(acl.admit_attempt(t0)) << i;  // three failures
  EXPECT_FALSE(acl.admit_attempt(t0));
  EXPECT_FALSE(acl.admit_attempt(t0 + std::chrono::milliseconds(300)));
  EXPECT_TRUE(acl.admit_attempt(t0 + std::chrono::milliseconds(334))) << "one more per 1/3 s";
  cfg.max_failures_per_second = 0;
  Acl unlimited(cfg);
  for (int i = 0; i < 1000; ++i) ASSERT_TRUE(unlimited.admit_attempt(t0));
}

}  // namespace
}  // namespace respguard::protection
