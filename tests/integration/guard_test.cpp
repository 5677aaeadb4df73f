// The command guard (docs/security.md, "Command guard") against a real redis-server: refused
// commands never reach Redis (INFO commandstats), each refusal says why, a refusal inside
// MULTI aborts the transaction as Redis itself would, size limits keep big values out, and
// with no guard configured nothing changes.
#include <string>
#include <vector>

#include "harness.hpp"

namespace rgtest {
namespace {

using namespace std::chrono_literals;

class GuardTest : public ::testing::Test {
 protected:
  void SetUp() override { SKIP_IN_DIRECT_MODE("the command guard is the proxy's"); }
  void start(const std::string& yaml) {
    redis_ = std::make_unique<RedisServer>();
    proxy_ = std::make_unique<ProxyServer>(redis_->port(), ProxyOptions{yaml, {}});
  }
  long long calls(const std::string& command) const {
    return commandstat_calls(redis_->port(), command);
  }

  std::unique_ptr<RedisServer> redis_;  // destroyed after the proxy
  std::unique_ptr<ProxyServer> proxy_;
};

TEST_F(GuardTest, NoGuardChangesNothing) {
  start("");
  Client c(proxy_->port());
  ASSERT_EQ(c.run({"SET", "k", "v"}), "+OK");
  EXPECT_EQ(c.run({"KEYS", "*"}), "[$k]");
  EXPECT_EQ(c.run({"FLUSHALL"}), "+OK");
  EXPECT_EQ(calls("keys"), 1);
}

TEST_F(GuardTest, ProductionProfileRefusesWithWhyAndNeverReachesRedis) {
  start(R"(
guard:
  profile: production
)");
  Client c(proxy_->port());
  ASSERT_EQ(c.run({"SET", "k", "v"}), "+OK");
  EXPECT_EQ(c.run({"KEYS", "*"}),
            "-ERR KEYS is denied by respguard (guard profile production): it blocks Redis while "
            "it walks every key; use SCAN");
  EXPECT_EQ(c.run({"flushall"}).substr(0, 40), "-ERR FLUSHALL is denied by respguard (gu");
  EXPECT_EQ(c.run({"CONFIG", "SET", "maxmemory", "1"}).substr(0, 30),
            "-ERR CONFIG SET is denied by r");
  EXPECT_EQ(c.run({"CONFIG", "GET", "maxmemory"}), "[$maxmemory, $0]");  // reads stay allowed
  EXPECT_EQ(c.run({"MONITOR"}).substr(0, 35), "-ERR MONITOR is denied by respguard");
  EXPECT_EQ(c.run({"SCAN", "0"}), "[$0, [$k]]");
  EXPECT_EQ(c.run({"GET", "k"}), "$v");  // the connection is fine after refusals
  EXPECT_EQ(calls("keys"), 0);
  EXPECT_EQ(calls("flushall"), 0);
  EXPECT_EQ(calls("config|set"), 0);
  EXPECT_EQ(calls("monitor"), 0);
  Client direct(redis_->port());
  EXPECT_EQ(direct.run({"GET", "k"}), "$v") << "nothing was flushed";
  EXPECT_EQ(metric_becomes(*proxy_, "respguard_guard_refused_total{reason=\"denied\"}", 4), 4);
}

TEST_F(GuardTest, DenyAndAllowLists) {
  start(R"(
guard:
  profile: production
  deny: [HGETALL, "client list"]
  allow: [FLUSHDB]
)");
  Client c(proxy_->port());
  EXPECT_EQ(c.run({"HGETALL", "h"}), "-ERR HGETALL is denied by respguard (guard.deny)");
  EXPECT_EQ(c.run({"CLIENT", "LIST"}), "-ERR CLIENT LIST is denied by respguard (guard.deny)");
  EXPECT_EQ(c.run({"FLUSHDB"}), "+OK");
  EXPECT_EQ(calls("flushdb"), 1);
  EXPECT_EQ(calls("hgetall"), 0);
}

// Redis aborts a transaction whose queued command was refused (EXECABORT); so does the proxy,
// although the refusal happened before Redis saw the command.
TEST_F(GuardTest, ARefusalInsideMultiAbortsTheTransaction) {
  start(R"(
guard:
  profile: production
)");
  Client c(proxy_->port());
  EXPECT_EQ(c.run({"MULTI"}), "+OK");
  EXPECT_EQ(c.run({"SET", "tx:a", "1"}), "+QUEUED");
  EXPECT_EQ(c.run({"KEYS", "*"}).substr(0, 32), "-ERR KEYS is denied by respguard");
  EXPECT_EQ(c.run({"SET", "tx:b", "2"}), "+QUEUED");
  EXPECT_EQ(c.run({"EXEC"}), "-EXECABORT Transaction discarded because of previous errors.");
  EXPECT_EQ(calls("exec"), 0);
  Client direct(redis_->port());
  EXPECT_EQ(direct.run({"EXISTS", "tx:a", "tx:b"}), ":0") << "nothing of the transaction ran";
  // The connection is usable, and the next transaction runs.
  EXPECT_EQ(c.run({"MULTI"}), "+OK");
  EXPECT_EQ(c.run({"SET", "tx:a", "1"}), "+QUEUED");
  EXPECT_EQ(c.run({"EXEC"}), "[+OK]");
  EXPECT_EQ(direct.run({"GET", "tx:a"}), "$1");
  // DISCARD after a refusal is a plain DISCARD.
  EXPECT_EQ(c.run({"MULTI"}), "+OK");
  EXPECT_EQ(c.run({"FLUSHALL"}).substr(0, 4), "-ERR");
  EXPECT_EQ(c.run({"DISCARD"}), "+OK");
  EXPECT_EQ(c.run({"GET", "tx:a"}), "$1");
}

TEST_F(GuardTest, SizeLimitsKeepBigValuesOutOfRedis) {
  start(R"(
guard:
  max_arguments: 4
  max_request_bytes: 64kb
  max_value_bytes: 1kb
  big_value_bytes: 100
)");
  Client c(proxy_->port());
  const std::string key(200, 'k');  // long keys are not values
  EXPECT_EQ(c.run({"SET", key, "small"}), "+OK");
  EXPECT_EQ(c.run({"SET", "big", std::string(2000, 'x')}),
            "-ERR respguard guard: a value of 2000 bytes, over guard.max_value_bytes (1024): keep "
            "big values out of Redis");
  EXPECT_EQ(c.run({"MGET", "a", "b", "c", "d", "e"}),
            "-ERR respguard guard: 5 arguments, over guard.max_arguments (4)");
  EXPECT_EQ(c.run({"GET", std::string(70000, 'k')}),
            "-ERR respguard guard: a request of 70003 bytes, over guard.max_request_bytes (65536)");
  Client direct(redis_->port());
  EXPECT_EQ(direct.run({"EXISTS", "big"}), ":0");
  EXPECT_EQ(calls("mget"), 0);
  // Over big_value_bytes but within the limit: let through, counted and logged.
  EXPECT_EQ(c.run({"SET", "medium", std::string(500, 'x')}), "+OK");
  EXPECT_EQ(metric_becomes(*proxy_, "respguard_guard_big_values_total", 1), 1);
  EXPECT_TRUE(wait_until(
      [&] {
        return proxy_->log().find("big value: set medium carries 500 bytes") != std::string::npos;
      },
      2000ms))
      << proxy_->log();
  EXPECT_EQ(metric(*proxy_, "respguard_guard_refused_total{reason=\"value_too_big\"}"), 1);
  EXPECT_EQ(metric(*proxy_, "respguard_guard_refused_total{reason=\"too_many_arguments\"}"), 1);
  EXPECT_EQ(metric(*proxy_, "respguard_guard_refused_total{reason=\"request_too_big\"}"), 1);
}

// Pipelined refusals keep their place among forwarded replies.
TEST_F(GuardTest, RefusalsKeepPipelineOrder) {
  start(R"(
guard:
  profile: production
)");
  Client c(proxy_->port());
  for (const auto& cmd : std::vector<std::vector<std::string>>{
           {"SET", "p", "1"}, {"KEYS", "*"}, {"INCR", "p"}, {"FLUSHDB"}, {"GET", "p"}}) {
    c.append(cmd);
  }
  ASSERT_TRUE(c.flush());
  std::vector<std::string> replies;
  for (int i = 0; i < 5; ++i) replies.push_back(text(c.get_reply()).substr(0, 9));
  EXPECT_EQ(replies, (std::vector<std::string>{"+OK", "-ERR KEYS", ":2", "-ERR FLUS", "$2"}));
}

}  // namespace
}  // namespace rgtest
