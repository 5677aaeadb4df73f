// The command guard (docs/security.md, "Command guard") against a real redis-server: refused
// commands never reach Redis (INFO commandstats), each refusal says why, a refusal inside
// MULTI aborts the transaction as Redis itself would, size limits keep big values out, and
// with no guard configured nothing changes.
#include <cmath>
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

// ------------------------------------------------------------------------ big collections

// The replies of `commands` sent as one pipeline, then a PING: a stray reply (a size probe's)
// would show as an extra element before the PONG.
std::vector<std::string> pipeline(Client& c,
                                  const std::vector<std::vector<std::string>>& commands) {
  for (const auto& cmd : commands) c.append(cmd);
  c.append({"PING"});
  EXPECT_TRUE(c.flush());
  std::vector<std::string> replies;
  for (std::size_t i = 0; i <= commands.size(); ++i) replies.push_back(text(c.get_reply()));
  EXPECT_EQ(replies.back(), "+PONG");
  replies.pop_back();
  return replies;
}

std::vector<std::string> members(const std::string& prefix, int from, int to) {
  std::vector<std::string> out;
  for (int i = from; i < to; ++i) out.push_back(prefix + std::to_string(i));
  return out;
}

std::vector<std::string> cat(std::vector<std::string> a, const std::vector<std::string>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

// A list's length is in the reply of every push: a push past the limit is counted at once,
// and the client gets Redis's reply unchanged.
TEST_F(GuardTest, ListGrownPastTheLimitIsCountedFromThePushReply) {
  start(R"(
guard:
  big_collection_elements: 10
)");
  Client c(proxy_->port());
  Client direct(redis_->port());
  const std::vector<std::vector<std::string>> commands = {
      cat({"RPUSH", "KEY"}, members("a", 0, 6)),  // 6
      cat({"LPUSH", "KEY"}, members("b", 0, 4)),  // 10: at the limit, not over it
      {"RPUSHX", "KEY", "c"},                     // 11
      {"LINSERT", "KEY", "BEFORE", "c", "d"},     // 12
      {"LINSERT", "KEY", "BEFORE", "nope", "e"},  // -1: no pivot
      {"LPUSHX", "absent", "x"},                  // 0
      {"SET", "str", "v"},
      {"RPUSH", "str", "x"},  // WRONGTYPE
  };
  auto with_key = [&](const std::string& key) {
    auto out = commands;
    for (auto& cmd : out) {
      for (auto& arg : cmd) {
        if (arg == "KEY") arg = key;
      }
    }
    return out;
  };
  const auto through_proxy = pipeline(c, with_key("list:proxy"));
  const auto from_redis = pipeline(direct, with_key("list:direct"));
  EXPECT_EQ(through_proxy, from_redis);
  EXPECT_EQ(through_proxy[3], ":12");
  EXPECT_EQ(metric_becomes(*proxy_, "respguard_guard_big_collections_total{type=\"list\"}", 2), 2);
  EXPECT_EQ(metric(*proxy_, "respguard_guard_size_probes_total"), 0) << "lists need no probe";
  EXPECT_EQ(commandstat_calls(redis_->port(), "llen"), 0);
  EXPECT_TRUE(wait_until(
      [&] {
        return proxy_->log().find(
                   "big collection: list list:proxy holds 11 elements after "
                   "rpushx (guard.big_collection_elements 10)") != std::string::npos;
      },
      2000ms))
      << proxy_->log();
}

// SADD/ZADD/HSET/XADD answer with what they added, not the size: the proxy asks SCARD/ZCARD/
// HLEN/XLEN itself on the same connection, and the client still sees only Redis's replies.
TEST_F(GuardTest, SetsHashesSortedSetsAndStreamsAreSizedByAProbeTheClientNeverSees) {
  start(R"(
guard:
  big_collection_elements: 10
  collection_probe_every: 1
)");
  Client c(proxy_->port());
  Client direct(redis_->port());
  auto workload = [](const std::string& p) {
    std::vector<std::vector<std::string>> out = {
        cat({"SADD", p + "set"}, members("m", 0, 8)),  // 8
        {"GET", p + "nothing"},
        cat({"SADD", p + "set"}, members("m", 6, 12)),  // +4 -> 12
        {"ZADD", p + "zset", "1", "a", "2", "b"},
        {"HSET", p + "hash", "f", "v"},
        {"XADD", p + "stream", "1-1", "f", "v"},
        {"SADD", p + "set", "m0"},  // +0, still 12: counted again
    };
    std::vector<std::string> zadd = {"ZADD", p + "zset"};
    for (int i = 0; i < 11; ++i) {
      zadd.push_back(std::to_string(i));
      zadd.push_back("z" + std::to_string(i));
    }
    out.push_back(zadd);  // 11 (a, b, z0..z10 = 13)
    return out;
  };
  const auto through_proxy = pipeline(c, workload("p:"));
  const auto from_redis = pipeline(direct, workload("d:"));
  EXPECT_EQ(through_proxy, from_redis);
  EXPECT_EQ(through_proxy[2], ":4");
  // Upstream evidence: one probe per probed write, each answered to the proxy alone.
  EXPECT_EQ(commandstat_calls(redis_->port(), "scard"), 3);
  EXPECT_EQ(commandstat_calls(redis_->port(), "zcard"), 2);
  EXPECT_EQ(commandstat_calls(redis_->port(), "hlen"), 1);
  EXPECT_EQ(commandstat_calls(redis_->port(), "xlen"), 1);
  EXPECT_EQ(metric_becomes(*proxy_, "respguard_guard_size_probes_total", 7), 7);
  EXPECT_EQ(metric_becomes(*proxy_, "respguard_guard_big_collections_total{type=\"set\"}", 2), 2);
  EXPECT_EQ(metric(*proxy_, "respguard_guard_big_collections_total{type=\"zset\"}"), 1);
  EXPECT_EQ(metric(*proxy_, "respguard_guard_big_collections_total{type=\"hash\"}"), 0);
  // The probes are not the client's commands.
  EXPECT_TRUE(
      std::isnan(metric(*proxy_, "respguard_commands_total{command=\"scard\",result=\"ok\"}")));

  // CLIENT REPLY SKIP skips the write's reply; the probe's is never the client's either.
  c.append({"CLIENT", "REPLY", "SKIP"});
  c.append({"SADD", "p:set", "new"});
  c.append({"PING"});
  ASSERT_TRUE(c.flush());
  EXPECT_EQ(text(c.get_reply()), "+PONG");
  EXPECT_EQ(c.run({"SCARD", "p:set"}), ":13");
  EXPECT_EQ(commandstat_calls(redis_->port(), "scard"), 5);  // 4 probes and the client's
}

// No probe where an extra command would change what the client sees: inside MULTI (it would
// be queued into the transaction) or on a connection pinned by WATCH.
TEST_F(GuardTest, NoSizeProbeInsideTransactionsOrOnPinnedConnections) {
  start(R"(
guard:
  big_collection_elements: 1
  collection_probe_every: 1
)");
  Client c(proxy_->port());
  EXPECT_EQ(c.run({"MULTI"}), "+OK");
  EXPECT_EQ(c.run({"SADD", "tx", "a", "b", "c"}), "+QUEUED");
  EXPECT_EQ(c.run({"EXEC"}), "[:3]");
  EXPECT_EQ(c.run({"WATCH", "w"}), "+OK");
  EXPECT_EQ(c.run({"SADD", "w", "a", "b"}), ":2");
  EXPECT_EQ(c.run({"UNWATCH"}), "+OK");
  EXPECT_EQ(commandstat_calls(redis_->port(), "scard"), 0);
  // Outside them, the same write is probed.
  EXPECT_EQ(c.run({"SADD", "tx", "d"}), ":1");
  EXPECT_EQ(metric_becomes(*proxy_, "respguard_guard_big_collections_total{type=\"set\"}", 1), 1);
  EXPECT_EQ(commandstat_calls(redis_->port(), "scard"), 1);
}

}  // namespace
}  // namespace rgtest
