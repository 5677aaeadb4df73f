// The key-rule policies on a real redis-server (docs/policies.md): TTL jitter, request
// coalescing, the negative cache and miss leases, and their metrics.
//
// The evidence is read from Redis itself on a direct connection, never through the proxy:
// PTTL says what TTL the proxy really wrote, INFO commandstats call counts say how many
// requests reached Redis. Each test starts its own redis-server and proxy with the rules it
// needs, so counters start at zero and tests cannot see each other's keys.
//
// "Upstream paused" means CLIENT PAUSE <ms> ALL sent on a direct connection: Redis keeps
// reading but executes nothing until the pause ends, so a GET the proxy forwards stays in
// flight for a known time and concurrent GETs must join it.
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <ctime>
#include <functional>
#include <iostream>
#include <latch>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "harness.hpp"

namespace rgtest {
namespace {

using SteadyClock = std::chrono::steady_clock;

long long ms_since(SteadyClock::time_point start) {
  return std::chrono::duration_cast<Millis>(SteadyClock::now() - start).count();
}

long long epoch_seconds() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// 1,000 client connections need 1,000 descriptors here and as many in the proxy, which
// inherits this process's limits when the harness forks it.
void raise_fd_limit() {
  rlimit rl{};
  if (::getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &rl);
  }
}

rlim_t fd_limit() {
  rlimit rl{};
  ::getrlimit(RLIMIT_NOFILE, &rl);
  return rl.rlim_cur;
}

// ---- metrics (parse_samples is the harness's) ----

constexpr const char* kJitterApplied = "respguard_ttl_jitter_applied_total";
constexpr const char* kCoalesced = "respguard_coalesced_requests_total";
constexpr const char* kNegativeHits = "respguard_negative_cache_hits_total";
constexpr const char* kNegativeEntries = "respguard_negative_cache_entries";
constexpr const char* kNegativeEvictions = "respguard_negative_cache_evictions_total";
constexpr const char* kLeasesGranted = "respguard_leases_granted_total";
constexpr const char* kLeaseWaits = "respguard_lease_waits_total";
constexpr const char* kReceivedBytes = "respguard_client_received_bytes_total";

std::string lease_outcome(const std::string& outcome) {
  return "respguard_lease_wait_outcomes_total{outcome=\"" + outcome + "\"}";
}

// The lease series of a scrape, for failure messages.
std::string lease_metrics(const ProxyServer& proxy) {
  std::string out;
  for (const auto& [series, v] : scrape(proxy)) {
    if (series.find("lease") != std::string::npos) {
      out += series + "=" + std::to_string(static_cast<long long>(v)) + " ";
    }
  }
  return out;
}

// ---- helpers ----

// A command as the RESP array a client library sends.
std::string resp_command(const std::vector<std::string>& args) {
  std::string out = "*" + std::to_string(args.size()) + "\r\n";
  for (const std::string& a : args) out += "$" + std::to_string(a.size()) + "\r\n" + a + "\r\n";
  return out;
}

// Sends all commands on one connection at once and returns their replies' texts.
std::vector<std::string> pipeline(Client& client,
                                  const std::vector<std::vector<std::string>>& cmds) {
  for (const auto& cmd : cmds) client.append(cmd);
  std::vector<std::string> out;
  if (!client.flush()) return out;
  for (std::size_t i = 0; i < cmds.size(); ++i) out.push_back(text(client.get_reply()));
  return out;
}

// PTTL of each key, read from Redis directly in one pipeline.
std::vector<long long> pttls(int redis_port, const std::vector<std::string>& keys) {
  Client direct(redis_port);
  for (const std::string& k : keys) direct.append({"PTTL", k});
  std::vector<long long> out;
  if (!direct.flush()) return out;
  for (std::size_t i = 0; i < keys.size(); ++i) {
    Reply r = direct.get_reply();
    out.push_back(r && r->type == REDIS_REPLY_INTEGER ? r->integer : -100);
  }
  return out;
}

long long pttl(int redis_port, const std::string& key) {
  return pttls(redis_port, {key}).at(0);
}

// CLIENT PAUSE <ms> ALL on a connection of its own (that connection is paused too).
void pause_upstream(int redis_port, Millis duration) {
  Client direct(redis_port);
  ASSERT_EQ(direct.run({"CLIENT", "PAUSE", std::to_string(duration.count()), "ALL"}), "+OK");
}

// Whether a reply (or EOF) is waiting on the connection within `timeout`.
bool readable(Client& client, Millis timeout) {
  if (!client.connected()) return false;
  pollfd pfd{client.context()->fd, POLLIN, 0};
  return ::poll(&pfd, 1, static_cast<int>(timeout.count())) > 0;
}

std::vector<std::string> numbered(const std::string& prefix, int count) {
  std::vector<std::string> keys;
  for (int i = 0; i < count; ++i) keys.push_back(prefix + std::to_string(i));
  return keys;
}

// Runs the same command on `keys` through the proxy (pipelined); each reply must be `expect`.
void write_all(int port, const std::vector<std::string>& keys,
               const std::function<std::vector<std::string>(const std::string&)>& command,
               const std::string& expect) {
  Client c(port);
  std::vector<std::vector<std::string>> cmds;
  for (const std::string& k : keys) cmds.push_back(command(k));
  std::vector<std::string> replies = pipeline(c, cmds);
  ASSERT_EQ(replies.size(), keys.size()) << c.error();
  for (std::size_t i = 0; i < replies.size(); ++i) {
    ASSERT_EQ(replies[i], expect) << "reply " << i << " to " << cmds[i][0] << " " << keys[i];
  }
}

struct Spread {
  long long min = 0, max = 0;
};
Spread spread(const std::vector<long long>& v) {
  return {*std::min_element(v.begin(), v.end()), *std::max_element(v.begin(), v.end())};
}

// Every value in [lo, hi]; otherwise a message naming the first few outside.
::testing::AssertionResult all_within(const std::vector<long long>& values, long long lo,
                                      long long hi) {
  std::ostringstream bad;
  int n = 0;
  for (std::size_t i = 0; i < values.size(); ++i) {
    if (values[i] < lo || values[i] > hi) {
      if (n < 10) bad << " [" << i << "]=" << values[i];
      ++n;
    }
  }
  if (n == 0) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure()
         << n << " of " << values.size() << " outside [" << lo << ", " << hi << "]:" << bad.str();
}

// One starting redis-server and proxy per test, with the rules the test needs.
class PoliciesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    SKIP_IN_DIRECT_MODE("key-rule policies are proxy behaviour");
    raise_fd_limit();
  }

  void start(const std::string& yaml) {
    redis_ = std::make_unique<RedisServer>();
    proxy_ = std::make_unique<ProxyServer>(redis_->port(), ProxyOptions{yaml, {}});
    // With a negative cache the proxy learns nothing until its coherence channel is up, which
    // /readyz waits for.
    ASSERT_TRUE(
        wait_until([&] { return http_status(proxy_->admin_port(), "/readyz") == 200; }, 5000ms))
        << "respguard never became ready";
  }

  int port() const { return proxy_->port(); }
  int redis_port() const { return redis_->port(); }
  long long calls(const std::string& command) const {
    return commandstat_calls(redis_->port(), command);
  }
  double received_bytes() const { return sample(scrape(*proxy_), kReceivedBytes); }
  // Waits until the proxy has closed every client connection but `open` (a client that
  // disconnected is gone from the proxy, its leases released).
  void wait_for_close(double open = 0) {
    auto now_open = [&] {
      const Samples s = scrape(*proxy_);
      return sample(s, "respguard_client_connections");
    };
    EXPECT_TRUE(wait_until([&] { return now_open() == open; }, 5s))
        << "client connections still open: " << now_open();
  }

  // Sends `bytes` on `socket` and returns once the proxy has read them (its received-bytes
  // counter grew by their size). The proxy dispatches a request in the same step as it reads
  // it, so a request sent after this returns is dispatched after this one.
  void send_and_see_read(RawSocket& socket, const std::string& bytes) {
    const double before = received_bytes();
    ASSERT_TRUE(socket.send(bytes));
    EXPECT_GE(metric_reaches(*proxy_, kReceivedBytes, before + static_cast<double>(bytes.size())),
              before + static_cast<double>(bytes.size()));
  }
  void send_and_see_read(Client& client, const std::vector<std::string>& cmd) {
    const double before = received_bytes();
    client.append(cmd);
    ASSERT_TRUE(client.flush());
    const double size = static_cast<double>(resp_command(cmd).size());
    EXPECT_GE(metric_reaches(*proxy_, kReceivedBytes, before + size), before + size);
  }

  std::unique_ptr<RedisServer> redis_;  // destroyed after the proxy
  std::unique_ptr<ProxyServer> proxy_;
};

// ===================================================================================== jitter

constexpr const char* kJitterRules = R"(
rules:
  - match: "jit:*"
    jitter: {percent: 0.1}
  - match: "def:*"
    jitter: {percent: 0.1, default_ttl: 100s}
  - match: "pos:*"
    jitter: {percent: 0.1, positive_only: true}
  - match: "exp:*"
    jitter: {percent: 0.1, expire_commands: true}
)";

TEST_F(PoliciesTest, JitterSpreadsRelativeTtlsUniformlyAtMillisecondResolution) {
  start(kJitterRules);
  constexpr int kKeys = 10000;
  const std::vector<std::string> keys = numbered("jit:k", kKeys);
  const auto t0 = SteadyClock::now();
  write_all(
      port(), keys,
      [](const std::string& k) -> std::vector<std::string> {
        return {"SET", k, "v", "EX", "100"};
      },
      "+OK");
  const std::vector<long long> ttl = pttls(redis_port(), keys);
  const long long elapsed = ms_since(t0) + 1;  // between the first SET and the last PTTL
  ASSERT_EQ(ttl.size(), keys.size());

  // 100 s +- 10 %: what Redis got, less the time that passed since.
  EXPECT_TRUE(all_within(ttl, 90000 - elapsed, 110000)) << "elapsed " << elapsed << " ms";

  // Uniform: ten 2 s buckets of [90 s, 110 s] hold about 1,000 keys each. A key's TTL as
  // written is its PTTL plus up to `elapsed`; the midpoint errs by at most elapsed / 2.
  std::vector<int> buckets(10, 0);
  for (long long t : ttl) {
    const long long written = t + elapsed / 2;
    buckets[std::clamp<long long>((written - 90000) / 2000, 0, 9)]++;
  }
  for (std::size_t b = 0; b < buckets.size(); ++b) {
    EXPECT_GE(buckets[b], 750) << "bucket " << b << " (" << 90 + 2 * b << " s)";
    EXPECT_LE(buckets[b], 1250) << "bucket " << b << " (" << 90 + 2 * b << " s)";
  }
  // EX became PX: at second resolution there would be 21 TTLs (90..110 s), and the decay
  // during the test adds at most `elapsed` ms to each; at ms resolution ~7,800 are distinct.
  const std::set<long long> distinct(ttl.begin(), ttl.end());
  EXPECT_GT(distinct.size(), 5000u) << "elapsed " << elapsed << " ms";

  EXPECT_EQ(calls("set"), kKeys);
  EXPECT_EQ(metric_becomes(*proxy_, kJitterApplied, kKeys), kKeys);
}

TEST_F(PoliciesTest, JitterLeavesAbsoluteAndKeptExpirationsAlone) {
  start(kJitterRules);
  Client c(port());
  Client direct(redis_port());
  const std::string at_s = std::to_string(epoch_seconds() + 100);
  const std::string at_ms = std::to_string((epoch_seconds() + 100) * 1000 + 123);

  // EXAT / PXAT through the proxy, and the same written directly to Redis: equal PTTLs.
  for (const std::string rule : {"jit", "def", "pos"}) {
    SCOPED_TRACE(rule);
    ASSERT_EQ(c.run({"SET", rule + ":exat", "v", "EXAT", at_s}), "+OK");
    ASSERT_EQ(direct.run({"SET", "twin:exat", "v", "EXAT", at_s}), "+OK");
    ASSERT_EQ(c.run({"SET", rule + ":pxat", "v", "PXAT", at_ms}), "+OK");
    ASSERT_EQ(direct.run({"SET", "twin:pxat", "v", "PXAT", at_ms}), "+OK");
    std::vector<long long> t =
        pttls(redis_port(), {rule + ":exat", "twin:exat", rule + ":pxat", "twin:pxat"});
    EXPECT_GT(t[0], 90000);
    EXPECT_LE(std::llabs(t[0] - t[1]), 50) << t[0] << " vs Redis alone " << t[1];
    EXPECT_LE(std::llabs(t[2] - t[3]), 50) << t[2] << " vs Redis alone " << t[3];

    // KEEPTTL keeps what the key had (50 s, written directly), jitter and default_ttl aside.
    const std::string keep = rule + ":keep";
    ASSERT_EQ(direct.run({"SET", keep, "v", "PX", "50000"}), "+OK");
    const auto t0 = SteadyClock::now();
    ASSERT_EQ(c.run({"SET", keep, "v2", "KEEPTTL"}), "+OK");
    const long long kept = pttl(redis_port(), keep);
    EXPECT_LE(kept, 50000);
    EXPECT_GE(kept, 50000 - ms_since(t0) - 1000);  // the direct SET came a little earlier
    EXPECT_EQ(direct.run({"GET", keep}), "$v2");
  }
  EXPECT_EQ(metric_becomes(*proxy_, kJitterApplied, 0), 0);
}

TEST_F(PoliciesTest, DefaultTtlGoesOnPlainSetsOnly) {
  start(kJitterRules);
  constexpr int kKeys = 1000;
  const std::vector<std::string> keys = numbered("def:k", kKeys);
  const auto t0 = SteadyClock::now();
  write_all(
      port(), keys,
      [](const std::string& k) -> std::vector<std::string> {
        return {"SET", k, "v"};
      },
      "+OK");
  std::vector<long long> ttl = pttls(redis_port(), keys);
  const long long elapsed = ms_since(t0) + 1;
  EXPECT_TRUE(all_within(ttl, 90000 - elapsed, 110000));
  const Spread s = spread(ttl);
  EXPECT_LT(s.min, 92000) << "the default TTL is jittered too";
  EXPECT_GT(s.max, 108000 - elapsed);

  Client c(port());
  Client direct(redis_port());
  // A SET with its own TTL is jittered around that one, not given the default.
  ASSERT_EQ(c.run({"SET", "def:ex", "v", "EX", "10"}), "+OK");
  EXPECT_TRUE(all_within({pttl(redis_port(), "def:ex")}, 9000 - 1000, 11000));
  // SET NX / XX / GET without a TTL are plain SETs.
  ASSERT_EQ(c.run({"SET", "def:nx", "v", "NX"}), "+OK");
  ASSERT_EQ(c.run({"SET", "def:nx", "v2", "XX", "GET"}), "$v");
  EXPECT_TRUE(all_within({pttl(redis_port(), "def:nx")}, 90000 - 1000, 110000));
  // MSET, APPEND, HSET, INCR: no TTL (docs/policies.md says why).
  ASSERT_EQ(c.run({"MSET", "def:m1", "x", "def:m2", "y"}), "+OK");
  ASSERT_EQ(c.run({"APPEND", "def:append", "x"}), ":1");
  ASSERT_EQ(c.run({"HSET", "def:hash", "f", "x"}), ":1");
  ASSERT_EQ(c.run({"INCR", "def:counter"}), ":1");
  EXPECT_EQ(pttls(redis_port(), {"def:m1", "def:m2", "def:append", "def:hash", "def:counter"}),
            (std::vector<long long>{-1, -1, -1, -1, -1}));
  // Outside the rule: no default.
  ASSERT_EQ(c.run({"SET", "plain:k", "v"}), "+OK");
  EXPECT_EQ(pttl(redis_port(), "plain:k"), -1);

  // 1,000 plain SETs + SET NX + SET XX GET + SET EX.
  EXPECT_EQ(metric_becomes(*proxy_, kJitterApplied, kKeys + 3), kKeys + 3);
}

TEST_F(PoliciesTest, KeysOutsideEveryRuleAreUntouched) {
  start(kJitterRules);
  Client c(port());
  Client direct(redis_port());
  ASSERT_EQ(direct.run({"SET", "plain:getex", "v"}), "+OK");
  ASSERT_EQ(direct.run({"SET", "plain:expire", "v"}), "+OK");
  ASSERT_EQ(direct.run({"SET", "plain:pexpire", "v"}), "+OK");
  const auto t0 = SteadyClock::now();
  ASSERT_EQ(c.run({"SET", "plain:ex", "v", "EX", "100"}), "+OK");
  ASSERT_EQ(c.run({"SET", "plain:px", "v", "PX", "100000"}), "+OK");
  ASSERT_EQ(c.run({"SETEX", "plain:setex", "100", "v"}), "+OK");
  ASSERT_EQ(c.run({"PSETEX", "plain:psetex", "100000", "v"}), "+OK");
  ASSERT_EQ(c.run({"GETEX", "plain:getex", "EX", "100"}), "$v");
  ASSERT_EQ(c.run({"EXPIRE", "plain:expire", "100"}), ":1");
  ASSERT_EQ(c.run({"PEXPIRE", "plain:pexpire", "100000"}), ":1");
  ASSERT_EQ(c.run({"SET", "jit", "v", "EX", "100"}), "+OK");  // "jit" is not "jit:*"
  std::vector<long long> ttl =
      pttls(redis_port(), {"plain:ex", "plain:px", "plain:setex", "plain:psetex", "plain:getex",
                           "plain:expire", "plain:pexpire", "jit"});
  const long long elapsed = ms_since(t0) + 1;
  EXPECT_TRUE(all_within(ttl, std::max(99000LL, 100000 - elapsed), 100000));
  EXPECT_EQ(metric_becomes(*proxy_, kJitterApplied, 0), 0);
}

TEST_F(PoliciesTest, JitterPositiveOnlyNeverShortensATtl) {
  start(kJitterRules);
  constexpr int kKeys = 2000;
  const std::vector<std::string> keys = numbered("pos:k", kKeys);
  const auto t0 = SteadyClock::now();
  write_all(
      port(), keys,
      [](const std::string& k) -> std::vector<std::string> {
        return {"SET", k, "v", "EX", "100"};
      },
      "+OK");
  std::vector<long long> ttl = pttls(redis_port(), keys);
  const long long elapsed = ms_since(t0) + 1;
  // As written (PTTL + time passed): never below 100 s, never above 110 s.
  EXPECT_TRUE(all_within(ttl, 100000 - elapsed, 110000));
  const Spread s = spread(ttl);
  EXPECT_LT(s.min, 101000);
  EXPECT_GT(s.max, 109000 - elapsed);
  EXPECT_EQ(metric_becomes(*proxy_, kJitterApplied, kKeys), kKeys);
}

TEST_F(PoliciesTest, JitterCoversSetexPsetexGetexAndExpireWhenEnabled) {
  start(kJitterRules);
  constexpr int kKeys = 200;
  Client direct(redis_port());
  for (const std::string& k : numbered("jit:getex", kKeys)) direct.append({"SET", k, "v"});
  for (const std::string& k : numbered("jit:expire", kKeys)) direct.append({"SET", k, "v"});
  for (const std::string& k : numbered("exp:expire", kKeys)) direct.append({"SET", k, "v"});
  for (const std::string& k : numbered("exp:pexpire", kKeys)) direct.append({"SET", k, "v"});
  ASSERT_TRUE(direct.flush());
  for (int i = 0; i < 4 * kKeys; ++i) ASSERT_EQ(text(direct.get_reply()), "+OK");

  struct Case {
    std::string prefix;
    std::function<std::vector<std::string>(const std::string&)> command;
    std::string reply;
    bool jittered;
  };
  const std::vector<Case> cases = {
      {"jit:setex",
       [](auto& k) -> std::vector<std::string> {
         return {"SETEX", k, "100", "v"};
       },
       "+OK", true},
      {"jit:psetex",
       [](auto& k) -> std::vector<std::string> {
         return {"PSETEX", k, "100000", "v"};
       },
       "+OK", true},
      {"jit:px",
       [](auto& k) -> std::vector<std::string> {
         return {"SET", k, "v", "PX", "100000"};
       },
       "+OK", true},
      {"jit:getex",
       [](auto& k) -> std::vector<std::string> {
         return {"GETEX", k, "EX", "100"};
       },
       "$v", true},
      // expire_commands is off on jit:*, on on exp:*.
      {"jit:expire",
       [](auto& k) -> std::vector<std::string> {
         return {"EXPIRE", k, "100"};
       },
       ":1", false},
      {"exp:expire",
       [](auto& k) -> std::vector<std::string> {
         return {"EXPIRE", k, "100"};
       },
       ":1", true},
      {"exp:pexpire",
       [](auto& k) -> std::vector<std::string> {
         return {"PEXPIRE", k, "100000"};
       },
       ":1", true},
  };
  int jittered = 0;
  for (const Case& cs : cases) {
    SCOPED_TRACE(cs.prefix);
    const std::vector<std::string> keys = numbered(cs.prefix, kKeys);
    const auto t0 = SteadyClock::now();
    write_all(port(), keys, cs.command, cs.reply);
    std::vector<long long> ttl = pttls(redis_port(), keys);
    const long long elapsed = ms_since(t0) + 1;
    if (cs.jittered) {
      jittered += kKeys;
      EXPECT_TRUE(all_within(ttl, 90000 - elapsed, 110000));
      const Spread s = spread(ttl);
      EXPECT_GT(s.max - s.min, 10000) << "min " << s.min << " max " << s.max;
    } else {
      EXPECT_TRUE(all_within(ttl, 100000 - elapsed, 100000));
    }
  }
  // Inside a transaction too.
  {
    SCOPED_TRACE("MULTI");
    const std::vector<std::string> keys = numbered("jit:multi", kKeys);
    Client c(port());
    std::vector<std::vector<std::string>> cmds = {{"MULTI"}};
    for (const std::string& k : keys) cmds.push_back({"SET", k, "v", "EX", "100"});
    cmds.push_back({"EXEC"});
    const auto t0 = SteadyClock::now();
    std::vector<std::string> replies = pipeline(c, cmds);
    ASSERT_EQ(replies.size(), cmds.size());
    ASSERT_EQ(replies.back().substr(0, 4), "[+OK");
    std::vector<long long> ttl = pttls(redis_port(), keys);
    const long long elapsed = ms_since(t0) + 1;
    EXPECT_TRUE(all_within(ttl, 90000 - elapsed, 110000));
    const Spread s = spread(ttl);
    EXPECT_GT(s.max - s.min, 10000) << "min " << s.min << " max " << s.max;
    jittered += kKeys;
  }
  EXPECT_EQ(metric_becomes(*proxy_, kJitterApplied, jittered), jittered);
}

// ================================================================================= coalescing

constexpr const char* kCoalesceRules = R"(
rules:
  - match: "hot:*"
    coalesce: true
)";

TEST_F(PoliciesTest, ThousandConcurrentGetsOfOneKeyCostRedisOneGet) {
  constexpr std::size_t kClients = 1000;
  ASSERT_GE(fd_limit(), 2 * kClients + 200) << "RLIMIT_NOFILE hard limit too low for this test";
  start(kCoalesceRules);
  Client direct(redis_port());
  ASSERT_EQ(direct.run({"SET", "hot:k", "the-value"}), "+OK");

  std::vector<std::unique_ptr<Client>> clients;
  for (std::size_t i = 0; i < kClients; ++i) {
    clients.push_back(std::make_unique<Client>(port()));
    ASSERT_TRUE(clients.back()->connected()) << "client " << i << ": " << clients.back()->error();
  }
  // Every connection accepted and served by its worker before the test starts.
  for (auto& c : clients) c->append({"PING"});
  for (auto& c : clients) ASSERT_TRUE(c->flush());
  for (auto& c : clients) ASSERT_EQ(text(c->get_reply()), "+PONG");

  const long long before = calls("get");
  // Long enough that sending 1,000 GETs fits in it on a loaded CI machine (it takes ~20 ms).
  constexpr Millis kPause = 1000ms;
  pause_upstream(redis_port(), kPause);
  const auto paused = SteadyClock::now();
  for (auto& c : clients) {
    c->append({"GET", "hot:k"});
    ASSERT_TRUE(c->flush());
  }
  const long long send_ms = ms_since(paused);
  ASSERT_LT(send_ms, kPause.count()) << "test premise: all GETs sent while Redis is paused";
  int wrong = 0;
  for (std::size_t i = 0; i < kClients; ++i) {
    const std::string reply = text(clients[i]->get_reply());
    if (reply != "$the-value" && wrong++ < 5) ADD_FAILURE() << "client " << i << ": " << reply;
  }
  EXPECT_EQ(wrong, 0);
  EXPECT_EQ(calls("get") - before, 1) << "sent in " << send_ms << " ms";
  EXPECT_EQ(metric_becomes(*proxy_, kCoalesced, kClients - 1), kClients - 1);
}

TEST_F(PoliciesTest, AWriteDuringAFlightIsReadBackByItsWriter) {
  start(kCoalesceRules);
  Client direct(redis_port());
  ASSERT_EQ(direct.run({"SET", "hot:k", "old"}), "+OK");
  std::vector<std::unique_ptr<Client>> readers;
  for (int i = 0; i < 10; ++i) readers.push_back(std::make_unique<Client>(port()));
  Client writer(port());
  ASSERT_EQ(writer.run({"PING"}), "+PONG");

  const long long before = calls("get");
  constexpr Millis kPause = 2000ms;
  pause_upstream(redis_port(), kPause);
  const auto paused = SteadyClock::now();
  for (auto& r : readers) {
    r->append({"GET", "hot:k"});
    ASSERT_TRUE(r->flush());
  }
  // The flight is in progress: nine GETs joined the first one.
  ASSERT_EQ(metric_becomes(*proxy_, kCoalesced, 9, kPause / 2), 9);
  // Now SET and GET in one pipeline, still while the flight's GET waits in Redis.
  writer.append({"SET", "hot:k", "new"});
  writer.append({"GET", "hot:k"});
  ASSERT_TRUE(writer.flush());
  ASSERT_LT(ms_since(paused), kPause.count()) << "test premise: sent while Redis is paused";

  EXPECT_EQ(text(writer.get_reply()), "+OK");
  EXPECT_EQ(text(writer.get_reply()), "$new") << "the writer's GET joined an older flight";
  std::set<std::string> seen;
  for (auto& r : readers) seen.insert(text(r->get_reply()));
  EXPECT_EQ(seen.size(), 1u) << "the readers shared one reply";
  EXPECT_TRUE(seen.count("$old") || seen.count("$new"));
  // The flight's GET and the writer's own.
  EXPECT_EQ(calls("get") - before, 2);
}

// The same with the write done by a script: EVAL is not flagged "write" in Redis's command
// table, yet it writes the keys it is given.
TEST_F(PoliciesTest, AScriptWriteDuringAFlightIsReadBackByItsWriter) {
  start(kCoalesceRules);
  Client direct(redis_port());
  ASSERT_EQ(direct.run({"SET", "hot:k", "old"}), "+OK");
  std::vector<std::unique_ptr<Client>> readers;
  for (int i = 0; i < 3; ++i) readers.push_back(std::make_unique<Client>(port()));
  Client writer(port());
  ASSERT_EQ(writer.run({"PING"}), "+PONG");
  constexpr Millis kPause = 2000ms;
  pause_upstream(redis_port(), kPause);
  const auto paused = SteadyClock::now();
  for (auto& r : readers) {
    r->append({"GET", "hot:k"});
    ASSERT_TRUE(r->flush());
  }
  ASSERT_EQ(metric_becomes(*proxy_, kCoalesced, 2, kPause / 2), 2);
  writer.append({"EVAL", "return redis.call('SET', KEYS[1], ARGV[1])", "1", "hot:k", "new"});
  writer.append({"GET", "hot:k"});
  ASSERT_TRUE(writer.flush());
  ASSERT_LT(ms_since(paused), kPause.count()) << "test premise: sent while Redis is paused";
  EXPECT_EQ(text(writer.get_reply()), "+OK");
  EXPECT_EQ(text(writer.get_reply()), "$new") << "the writer's GET joined an older flight";
  for (auto& r : readers) EXPECT_NE(text(r->get_reply()), "(no reply)");
}

// A large reply shared by many clients arrives intact at each, also at the ones that read
// slowly (their sockets fill up and the proxy writes the shared buffer in pieces).
TEST_F(PoliciesTest, ALargeCoalescedReplyReachesEveryClientIntact) {
  start(kCoalesceRules);
  std::string value(3 * 1024 * 1024 + 17, '\0');
  std::uint64_t x = 0x9e3779b97f4a7c15ull;
  for (char& ch : value) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    ch = static_cast<char>(x);
  }
  Client direct(redis_port());
  ASSERT_EQ(direct.run({"SET", "hot:big", value}), "+OK");
  std::vector<std::unique_ptr<Client>> clients;
  for (int i = 0; i < 30; ++i) clients.push_back(std::make_unique<Client>(port()));
  for (auto& c : clients) ASSERT_EQ(c->run({"PING"}), "+PONG");
  const long long before = calls("get");
  pause_upstream(redis_port(), 1000ms);
  for (auto& c : clients) {
    c->append({"GET", "hot:big"});
    ASSERT_TRUE(c->flush());
  }
  for (std::size_t i = 0; i < clients.size(); ++i) {
    Reply r = clients[i]->get_reply();
    ASSERT_TRUE(r && r->type == REDIS_REPLY_STRING) << "client " << i << ": " << text(r);
    EXPECT_TRUE(std::string_view(r->str, r->len) == value)
        << "client " << i << " got " << r->len << " bytes";
  }
  EXPECT_EQ(calls("get") - before, 1);
}

TEST_F(PoliciesTest, CoalescedReadsKeepReadYourWritesUnderLoad) {
  start(kCoalesceRules);
  Client direct(redis_port());
  ASSERT_EQ(direct.run({"SET", "hot:rw", "0"}), "+OK");
  constexpr int kReaders = 6;
  constexpr int kWrites = 1500;
  std::atomic<bool> stop{false};
  std::atomic<long long> reads{0};
  std::vector<std::string> reader_errors(kReaders);
  std::vector<std::thread> threads;
  for (int r = 0; r < kReaders; ++r) {
    threads.emplace_back([&, r] {
      Client c(port());
      long long last = -1;
      while (!stop.load()) {
        Reply reply = c.command({"GET", "hot:rw"});
        if (!reply || reply->type != REDIS_REPLY_STRING) {
          reader_errors[r] = "reply " + text(reply);
          return;
        }
        const long long v = std::atoll(reply->str);
        if (v < last) {  // Redis never goes back in time for one client
          reader_errors[r] = "read " + std::to_string(v) + " after " + std::to_string(last);
          return;
        }
        last = v;
        reads++;
      }
    });
  }
  Client writer(port());
  int stale = 0;
  std::string first_stale;
  for (int i = 1; i <= kWrites; ++i) {
    const std::string v = std::to_string(i);
    std::string got;
    if (i % 2 == 0) {  // pipelined
      std::vector<std::string> r = pipeline(writer, {{"SET", "hot:rw", v}, {"GET", "hot:rw"}});
      ASSERT_EQ(r.size(), 2u);
      ASSERT_EQ(r[0], "+OK");
      got = r[1];
    } else {
      ASSERT_EQ(writer.run({"SET", "hot:rw", v}), "+OK");
      got = writer.run({"GET", "hot:rw"});
    }
    if (got != "$" + v && stale++ == 0) first_stale = "wrote " + v + ", read " + got;
  }
  stop = true;
  for (auto& t : threads) t.join();
  EXPECT_EQ(stale, 0) << first_stale;
  for (int r = 0; r < kReaders; ++r) EXPECT_EQ(reader_errors[r], "") << "reader " << r;
  EXPECT_GT(reads.load(), 1000);
  // Load enough that GETs really were coalesced.
  EXPECT_GT(sample(scrape(*proxy_), kCoalesced), 0);
}

TEST_F(PoliciesTest, FlightsAreScopedByDatabase) {
  start(kCoalesceRules);
  Client direct(redis_port());
  ASSERT_EQ(direct.run({"SET", "hot:k", "in-db0"}), "+OK");
  ASSERT_EQ(direct.run({"SELECT", "1"}), "+OK");
  ASSERT_EQ(direct.run({"SET", "hot:k", "in-db1"}), "+OK");
  Client a(port()), b(port());
  ASSERT_EQ(b.run({"SELECT", "1"}), "+OK");
  ASSERT_EQ(a.run({"PING"}), "+PONG");
  const long long before = calls("get");
  pause_upstream(redis_port(), 500ms);
  a.append({"GET", "hot:k"});
  ASSERT_TRUE(a.flush());
  b.append({"GET", "hot:k"});
  ASSERT_TRUE(b.flush());
  EXPECT_EQ(text(a.get_reply()), "$in-db0");
  EXPECT_EQ(text(b.get_reply()), "$in-db1");
  EXPECT_EQ(calls("get") - before, 2);
}

TEST_F(PoliciesTest, Resp2AndResp3ClientsShareFlightsEachInItsOwnProtocol) {
  start(kCoalesceRules);
  Client direct(redis_port());
  ASSERT_EQ(direct.run({"SET", "hot:val", "value"}), "+OK");
  RawSocket r2a(port()), r2b(port()), r2c(port()), r3a(port()), r3b(port()), r3c(port());
  for (RawSocket* s : {&r3a, &r3b, &r3c}) {
    ASSERT_TRUE(s->send(resp_command({"HELLO", "3"})));
    ASSERT_EQ(s->read_message().substr(0, 1), "%");
  }
  for (RawSocket* s : {&r2a, &r2b, &r2c}) {
    ASSERT_TRUE(s->send(resp_command({"PING"})));
    ASSERT_EQ(s->read_message(), "+PONG\r\n");
  }
  const long long before = calls("get");
  pause_upstream(redis_port(), 1500ms);
  // A missing key: the RESP2 client leads, the RESP3 one joins; then the other way round;
  // then a value both ways.
  send_and_see_read(r2a, resp_command({"GET", "hot:nil1"}));
  send_and_see_read(r3a, resp_command({"GET", "hot:nil1"}));
  send_and_see_read(r3b, resp_command({"GET", "hot:nil2"}));
  send_and_see_read(r2b, resp_command({"GET", "hot:nil2"}));
  send_and_see_read(r2c, resp_command({"GET", "hot:val"}));
  send_and_see_read(r3c, resp_command({"GET", "hot:val"}));
  EXPECT_EQ(r2a.read_message(), "$-1\r\n");
  EXPECT_EQ(r3a.read_message(), "_\r\n");
  EXPECT_EQ(r3b.read_message(), "_\r\n");
  EXPECT_EQ(r2b.read_message(), "$-1\r\n");
  EXPECT_EQ(r2c.read_message(), "$5\r\nvalue\r\n");
  EXPECT_EQ(r3c.read_message(), "$5\r\nvalue\r\n");
  EXPECT_EQ(calls("get") - before, 3);
  EXPECT_EQ(metric_becomes(*proxy_, kCoalesced, 3), 3);
}

TEST_F(PoliciesTest, JoinedClientsGetTheReplyWhenTheLeaderDisconnects) {
  start(kCoalesceRules);
  Client direct(redis_port());
  ASSERT_EQ(direct.run({"SET", "hot:k", "v"}), "+OK");
  auto leader = std::make_unique<Client>(port());
  std::vector<std::unique_ptr<Client>> joiners;
  for (int i = 0; i < 5; ++i) joiners.push_back(std::make_unique<Client>(port()));
  ASSERT_EQ(leader->run({"PING"}), "+PONG");
  pause_upstream(redis_port(), 1000ms);
  send_and_see_read(*leader, {"GET", "hot:k"});
  for (auto& j : joiners) {
    j->append({"GET", "hot:k"});
    ASSERT_TRUE(j->flush());
  }
  ASSERT_EQ(metric_becomes(*proxy_, kCoalesced, 5, 800ms), 5);
  leader.reset();  // gone before Redis answers its GET
  for (auto& j : joiners) EXPECT_EQ(text(j->get_reply()), "$v");
}

TEST_F(PoliciesTest, OnlyGetIsCoalesced) {
  start(kCoalesceRules);
  Client direct(redis_port());
  ASSERT_EQ(direct.run({"SET", "hot:k", "v"}), "+OK");
  std::vector<std::unique_ptr<Client>> clients;
  for (int i = 0; i < 10; ++i) clients.push_back(std::make_unique<Client>(port()));
  const long long exists = calls("exists"), mget = calls("mget"), strlen = calls("strlen");
  pause_upstream(redis_port(), 500ms);
  for (auto& c : clients) {
    c->append({"EXISTS", "hot:k"});
    c->append({"MGET", "hot:k"});
    c->append({"STRLEN", "hot:k"});
    ASSERT_TRUE(c->flush());
  }
  for (auto& c : clients) {
    EXPECT_EQ(text(c->get_reply()), ":1");
    EXPECT_EQ(text(c->get_reply()), "[$v]");
    EXPECT_EQ(text(c->get_reply()), ":1");
  }
  EXPECT_EQ(calls("exists") - exists, 10);
  EXPECT_EQ(calls("mget") - mget, 10);
  EXPECT_EQ(calls("strlen") - strlen, 10);
  EXPECT_EQ(metric_becomes(*proxy_, kCoalesced, 0), 0);
}

// ============================================================================= negative cache

constexpr const char* kNegativeRules = R"(
rules:
  - match: "neg:*"
    negative_cache: {ttl: 60s}
  - match: "short:*"
    negative_cache: {ttl: 300ms}
  - match: "db0:*"
    db: 0
    negative_cache: {ttl: 60s}
)";

TEST_F(PoliciesTest, NegativeCacheAnswersRepeatedMissesLocally) {
  start(kNegativeRules);
  const long long before = calls("get");
  std::vector<std::unique_ptr<Client>> clients;
  for (int i = 0; i < 10; ++i) clients.push_back(std::make_unique<Client>(port()));
  // The first miss goes to Redis and is remembered...
  ASSERT_EQ(clients[0]->run({"GET", "neg:absent"}), "(nil)");
  // ...then 9,999 more on ten connections (both workers) are answered by the proxy.
  int total = 1;
  for (std::size_t i = 0; i < clients.size(); ++i) {
    const int n = i == 0 ? 999 : 1000;
    for (int j = 0; j < n; ++j) clients[i]->append({"GET", "neg:absent"});
    ASSERT_TRUE(clients[i]->flush());
    total += n;
  }
  int wrong = 0;
  for (std::size_t i = 0; i < clients.size(); ++i) {
    for (int j = 0; j < (i == 0 ? 999 : 1000); ++j) {
      if (text(clients[i]->get_reply()) != "(nil)") ++wrong;
    }
  }
  ASSERT_EQ(total, 10000);
  EXPECT_EQ(wrong, 0);
  EXPECT_EQ(calls("get") - before, 1);

  // EXISTS too, answered :0 locally.
  const long long exists = calls("exists");
  for (int j = 0; j < 100; ++j) clients[1]->append({"EXISTS", "neg:absent"});
  ASSERT_TRUE(clients[1]->flush());
  for (int j = 0; j < 100; ++j) EXPECT_EQ(text(clients[1]->get_reply()), ":0");
  EXPECT_EQ(calls("exists") - exists, 0);

  // A RESP3 client gets RESP3's null.
  RawSocket r3(port());
  ASSERT_TRUE(r3.send(resp_command({"HELLO", "3"})));
  ASSERT_EQ(r3.read_message().substr(0, 1), "%");
  ASSERT_TRUE(r3.send(resp_command({"GET", "neg:absent"})));
  EXPECT_EQ(r3.read_message(), "_\r\n");
  EXPECT_EQ(calls("get") - before, 1);

  // A SET through the proxy: the very next GET sees it.
  ASSERT_EQ(clients[2]->run({"SET", "neg:absent", "now-here"}), "+OK");
  EXPECT_EQ(clients[3]->run({"GET", "neg:absent"}), "$now-here");
  EXPECT_EQ(clients[3]->run({"EXISTS", "neg:absent"}), ":1");
  EXPECT_EQ(calls("get") - before, 2);

  EXPECT_EQ(metric_becomes(*proxy_, kNegativeHits, 9999 + 100 + 1), 9999 + 100 + 1);
}

TEST_F(PoliciesTest, EveryWriteThroughTheProxyForgetsTheAbsence) {
  start(kNegativeRules);
  Client c(port());
  Client direct(redis_port());
  struct Case {
    std::string name;
    std::vector<std::vector<std::string>> writes;  // through the proxy; key is "neg:<name>"
    std::string expect;                            // GET afterwards
  };
  const std::vector<Case> cases = {
      {"set", {{"SET", "neg:set", "1"}}, "$1"},
      {"mset", {{"MSET", "neg:other", "x", "neg:mset", "2"}}, "$2"},
      {"incr", {{"INCR", "neg:incr"}}, "$1"},
      {"append", {{"APPEND", "neg:append", "abc"}}, "$abc"},
      {"setex", {{"SETEX", "neg:setex", "100", "3"}}, "$3"},
      {"rename", {{"SET", "neg:src", "4"}, {"RENAME", "neg:src", "neg:rename"}}, "$4"},
      {"copy", {{"SET", "neg:src2", "5"}, {"COPY", "neg:src2", "neg:copy"}}, "$5"},
      {"eval",
       {{"EVAL", "return redis.call('SET', KEYS[1], ARGV[1])", "1", "neg:eval", "6"}},
       "$6"},
      {"multi", {{"MULTI"}, {"SET", "neg:multi", "7"}, {"EXEC"}}, "$7"},
      {"lpush",
       {{"LPUSH", "neg:lpush", "x"}},
       "-WRONGTYPE Operation against a key holding the wrong kind of value"},
  };
  for (const Case& cs : cases) {
    SCOPED_TRACE(cs.name);
    const std::string key = "neg:" + cs.name;
    ASSERT_EQ(c.run({"GET", key}), "(nil)");
    const long long before = calls("get");
    ASSERT_EQ(c.run({"GET", key}), "(nil)");
    ASSERT_EQ(calls("get"), before) << "the absence is cached";
    for (const auto& w : cs.writes) ASSERT_NE(c.run(w).substr(0, 1), "-") << w[0];
    EXPECT_EQ(c.run({"GET", key}), cs.expect);
  }
}

// Without the coherence channel (coherence.enabled: false) nothing tells the proxy about direct
// writes: staleness is bounded by the entries' ttl. With it, see coherence_test.cpp.
const std::string kNegativeRulesNoChannel =
    std::string(kNegativeRules) + "coherence:\n  enabled: false\n";

TEST_F(PoliciesTest, FlushdbAndFlushallThroughTheProxyClearTheCache) {
  start(kNegativeRulesNoChannel);
  Client c(port());
  Client direct(redis_port());
  // Without the coherence channel, a key written directly to Redis stays "absent" for the
  // entry's ttl (documented in docs/policies.md).
  ASSERT_EQ(c.run({"GET", "neg:a"}), "(nil)");
  ASSERT_EQ(direct.run({"SET", "neg:a", "direct"}), "+OK");
  EXPECT_EQ(c.run({"GET", "neg:a"}), "(nil)");

  ASSERT_EQ(c.run({"FLUSHDB"}), "+OK");
  ASSERT_EQ(direct.run({"SET", "neg:a", "after-flushdb"}), "+OK");
  EXPECT_EQ(c.run({"GET", "neg:a"}), "$after-flushdb");

  // FLUSHDB ASYNC from another database clears that database's entries.
  Client c1(port());
  ASSERT_EQ(c1.run({"SELECT", "3"}), "+OK");
  ASSERT_EQ(c1.run({"GET", "neg:b"}), "(nil)");
  ASSERT_EQ(c1.run({"FLUSHDB", "ASYNC"}), "+OK");
  Client direct3(redis_port());
  ASSERT_EQ(direct3.run({"SELECT", "3"}), "+OK");
  ASSERT_EQ(direct3.run({"SET", "neg:b", "db3"}), "+OK");
  EXPECT_EQ(c1.run({"GET", "neg:b"}), "$db3");

  // FLUSHALL: entries of every database.
  ASSERT_EQ(c.run({"GET", "neg:c"}), "(nil)");
  ASSERT_EQ(c1.run({"GET", "neg:c"}), "(nil)");
  ASSERT_EQ(c.run({"FLUSHALL"}), "+OK");
  ASSERT_EQ(direct.run({"SET", "neg:c", "db0"}), "+OK");
  ASSERT_EQ(direct3.run({"SET", "neg:c", "db3"}), "+OK");
  EXPECT_EQ(c.run({"GET", "neg:c"}), "$db0");
  EXPECT_EQ(c1.run({"GET", "neg:c"}), "$db3");

  // Writes that reach another database: SWAPDB, MOVE, COPY .. DB.
  ASSERT_EQ(c.run({"GET", "neg:swap"}), "(nil)");
  ASSERT_EQ(direct3.run({"SET", "neg:swap", "from-db3"}), "+OK");
  ASSERT_EQ(c.run({"SWAPDB", "0", "3"}), "+OK");
  EXPECT_EQ(c.run({"GET", "neg:swap"}), "$from-db3");
  ASSERT_EQ(c1.run({"GET", "neg:move"}), "(nil)");
  ASSERT_EQ(c.run({"SET", "neg:move", "moved"}), "+OK");
  ASSERT_EQ(c.run({"MOVE", "neg:move", "3"}), ":1");
  EXPECT_EQ(c1.run({"GET", "neg:move"}), "$moved");
  ASSERT_EQ(c1.run({"GET", "neg:copy"}), "(nil)");
  ASSERT_EQ(c.run({"SET", "neg:src", "copied"}), "+OK");
  ASSERT_EQ(c.run({"COPY", "neg:src", "neg:copy", "DB", "3"}), ":1");
  EXPECT_EQ(c1.run({"GET", "neg:copy"}), "$copied");
}

// Local answers (negative cache), joined flights and upstream replies, mixed in one pipeline,
// come back in the order sent.
TEST_F(PoliciesTest, LocalAnswersKeepPipelineOrder) {
  start(std::string(kNegativeRules) + R"(  - match: "hot:*"
    coalesce: true
)");
  Client c(port());
  ASSERT_EQ(c.run({"GET", "neg:a"}), "(nil)");  // now cached
  EXPECT_EQ(pipeline(c, {{"SET", "plain:x", "1"},
                         {"GET", "neg:a"},
                         {"GET", "plain:x"},
                         {"EXISTS", "neg:a"},
                         {"GET", "hot:k"},
                         {"GET", "hot:k"},
                         {"INCR", "plain:x"},
                         {"GET", "neg:a"},
                         {"PING"},
                         {"SET", "neg:a", "here"},
                         {"GET", "neg:a"}}),
            (std::vector<std::string>{"+OK", "(nil)", "$1", ":0", "(nil)", "(nil)", ":2", "(nil)",
                                      "+PONG", "+OK", "$here"}));
}

TEST_F(PoliciesTest, NegativeEntriesExpireAfterTheirTtl) {
  start(kNegativeRulesNoChannel);
  Client c(port());
  Client direct(redis_port());
  const auto t0 = SteadyClock::now();
  ASSERT_EQ(c.run({"GET", "short:k"}), "(nil)");
  ASSERT_EQ(direct.run({"SET", "short:k", "v"}), "+OK");
  std::string reply = c.run({"GET", "short:k"});
  const long long checked = ms_since(t0);
  if (checked < 250) {
    EXPECT_EQ(reply, "(nil)") << "still within the 300 ms ttl";
  }
  long long seen_at = -1;
  wait_until(
      [&] {
        reply = c.run({"GET", "short:k"});
        if (reply == "$v") seen_at = ms_since(t0);
        return seen_at >= 0;
      },
      3000ms);
  ASSERT_GE(seen_at, 0) << "the entry never expired; last reply " << reply;
  EXPECT_GE(seen_at, 295) << "the entry expired before its ttl";
  EXPECT_LE(seen_at, 300 + 1000);
}

TEST_F(PoliciesTest, NegativeCacheRespectsTheRulesDatabase) {
  start(kNegativeRules);
  Client c0(port()), c1(port());
  ASSERT_EQ(c1.run({"SELECT", "1"}), "+OK");
  long long before = calls("get");
  for (int i = 0; i < 3; ++i) ASSERT_EQ(c0.run({"GET", "db0:k"}), "(nil)");
  EXPECT_EQ(calls("get") - before, 1) << "db 0 is under the rule";
  before = calls("get");
  for (int i = 0; i < 3; ++i) ASSERT_EQ(c1.run({"GET", "db0:k"}), "(nil)");
  EXPECT_EQ(calls("get") - before, 3) << "db 1 is not";
  // neg:* applies in every database, each with its own entries.
  ASSERT_EQ(c0.run({"GET", "neg:k"}), "(nil)");
  Client direct(redis_port());
  ASSERT_EQ(direct.run({"SELECT", "1"}), "+OK");
  ASSERT_EQ(direct.run({"SET", "neg:k", "db1"}), "+OK");
  EXPECT_EQ(c1.run({"GET", "neg:k"}), "$db1");
}

TEST_F(PoliciesTest, NegativeCacheStaysWithinItsEntryLimit) {
  start(std::string(kNegativeRules) + "policy_limits: {negative_cache_max_entries: 64}\n");
  constexpr int kKeys = 1000;
  const std::vector<std::string> keys = numbered("neg:bound", kKeys);
  Client c(port());
  auto get_all = [&] {
    for (const std::string& k : keys) c.append({"GET", k});
    ASSERT_TRUE(c.flush());
    for (int i = 0; i < kKeys; ++i) ASSERT_EQ(text(c.get_reply()), "(nil)");
  };
  get_all();
  const long long before = calls("get");
  get_all();
  EXPECT_GE(calls("get") - before, kKeys - 64) << "at most 64 absences are remembered";
  const Samples s = scrape(*proxy_);
  EXPECT_GT(sample(s, kNegativeEntries), 0);
  EXPECT_LE(sample(s, kNegativeEntries), 64);
  EXPECT_GE(sample(s, kNegativeEvictions), kKeys - 64);
}

// The absence Redis reported for a GET sent before a write must not outlive that write.
TEST_F(PoliciesTest, AMissAnsweredAfterAWriteIsNotRemembered) {
  start(kNegativeRules);
  Client c(port());
  // One pipeline: GET (nil) then SET. The GET's reply arrives after the SET was forwarded.
  EXPECT_EQ(pipeline(c, {{"GET", "neg:k"}, {"SET", "neg:k", "v"}}),
            (std::vector<std::string>{"(nil)", "+OK"}));
  EXPECT_EQ(c.run({"GET", "neg:k"}), "$v") << "the client does not read its own write";
}

TEST_F(PoliciesTest, AWriteInATransactionForgetsTheAbsenceWhenItRuns) {
  start(kNegativeRules);
  Client t(port()), r(port());
  ASSERT_EQ(t.run({"MULTI"}), "+OK");
  ASSERT_EQ(t.run({"SET", "neg:k", "v"}), "+QUEUED");
  ASSERT_EQ(r.run({"GET", "neg:k"}), "(nil)");  // true: EXEC has not run yet
  ASSERT_EQ(t.run({"EXEC"}), "[+OK]");
  EXPECT_EQ(r.run({"GET", "neg:k"}), "$v");
  EXPECT_EQ(t.run({"GET", "neg:k"}), "$v") << "the client does not read its own write";
}

// ===================================================================================== leases

struct CacheAside {
  std::atomic<long long> loads{0};
  std::vector<std::string> finals;  // what each client ends up holding
  std::vector<long long> get_ms;    // each client's GET latency
  std::vector<std::string> errors;
};

// `clients` threads, one connection each, all released at once: GET key; on nil, count a
// database load, take 50 ms over it, SET key value. Bounded: every read has a 10 s timeout.
// `load`: how long the "database load" takes. The comparison without a lease uses a long one,
// so that on a busy machine every GET is answered before the first client's SET lands.
void run_cache_aside(int port, const std::string& key, int clients, const std::string& value,
                     CacheAside& out, Millis load = 50ms) {
  out.finals.assign(clients, "");
  out.get_ms.assign(clients, -1);
  out.errors.assign(clients, "");
  std::latch ready(clients);
  std::vector<std::thread> threads;
  threads.reserve(clients);
  for (int i = 0; i < clients; ++i) {
    threads.emplace_back([&, i] {
      Client c(port);
      ready.arrive_and_wait();
      if (!c.connected()) {
        out.errors[i] = "connect: " + c.error();
        return;
      }
      const auto t = SteadyClock::now();
      const std::string got = c.run({"GET", key});
      out.get_ms[i] = ms_since(t);
      if (got == "(nil)") {
        out.loads++;
        std::this_thread::sleep_for(load);  // the database load
        const std::string set = c.run({"SET", key, value});
        if (set != "+OK") out.errors[i] = "SET: " + set;
        out.finals[i] = "$" + value;
      } else {
        out.finals[i] = got;
      }
    });
  }
  for (auto& t : threads) t.join();
}

::testing::AssertionResult everyone_has(const CacheAside& r, const std::string& value) {
  int bad = 0;
  std::ostringstream first;
  for (std::size_t i = 0; i < r.finals.size(); ++i) {
    if (r.finals[i] != "$" + value || !r.errors[i].empty()) {
      if (bad++ < 5) first << " [" << i << "] " << r.finals[i] << " " << r.errors[i];
    }
  }
  if (bad == 0) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << bad << " clients without the value:" << first.str();
}

constexpr const char* kLeaseRules = R"(
rules:
  - match: "lease:*"
    coalesce: true
    lease: {wait: 2s}
  - match: "nolease:*"
    coalesce: true
  - match: "solo:*"
    lease: {wait: 3s}
  - match: "short:*"
    lease: {wait: 1s}
  - match: "negl:*"
    coalesce: true
    negative_cache: {ttl: 60s}
    lease: {wait: 2s}
)";

TEST_F(PoliciesTest, LeaseTurnsAThousandClientStampedeIntoOneDatabaseLoad) {
  constexpr int kClients = 1000;
  ASSERT_GE(fd_limit(), 2u * kClients + 200) << "RLIMIT_NOFILE hard limit too low for this test";
  start(kLeaseRules);
  CacheAside r;
  run_cache_aside(port(), "lease:k", kClients, "from-db", r);
  EXPECT_EQ(r.loads.load(), 1);
  EXPECT_TRUE(everyone_has(r, "from-db"));
  const long long worst = *std::max_element(r.get_ms.begin(), r.get_ms.end());
  EXPECT_LT(worst, 2000 + 500) << "a GET waited past lease.wait";
  EXPECT_EQ(metric_becomes(*proxy_, kLeasesGranted, 1), 1);
  Client direct(redis_port());
  EXPECT_EQ(direct.run({"GET", "lease:k"}), "$from-db");
}

TEST_F(PoliciesTest, WithoutALeaseEveryClientLoads) {
  constexpr int kClients = 1000;
  ASSERT_GE(fd_limit(), 2u * kClients + 200) << "RLIMIT_NOFILE hard limit too low for this test";
  start(kLeaseRules);
  CacheAside r;
  run_cache_aside(port(), "nolease:k", kClients, "from-db", r, 1500ms);
  EXPECT_GT(r.loads.load(), 500) << "coalescing alone shares the nil: each client then loads";
  std::cout << "[policies] without a lease: " << r.loads.load() << " loads by " << kClients
            << " clients\n";
  EXPECT_TRUE(everyone_has(r, "from-db"));
  EXPECT_EQ(metric_becomes(*proxy_, kLeasesGranted, 0), 0);
}

TEST_F(PoliciesTest, AHolderThatLeavesPassesTheLeaseToTheNextWaiter) {
  start(kLeaseRules);
  constexpr long long kWait = 3000;  // solo:*
  auto holder = std::make_unique<Client>(port());
  ASSERT_EQ(holder->run({"GET", "solo:k"}), "(nil)");
  ASSERT_EQ(metric_becomes(*proxy_, kLeasesGranted, 1), 1);

  constexpr int kWaiters = 10;
  std::vector<std::unique_ptr<Client>> waiters;
  std::vector<SteadyClock::time_point> sent;
  for (int i = 0; i < kWaiters; ++i) {
    waiters.push_back(std::make_unique<Client>(port()));
    waiters.back()->append({"GET", "solo:k"});
    ASSERT_TRUE(waiters.back()->flush());
    sent.push_back(SteadyClock::now());
  }
  ASSERT_EQ(metric_becomes(*proxy_, kLeaseWaits, kWaiters), kWaiters);
  for (auto& w : waiters) ASSERT_FALSE(readable(*w, 0ms)) << "a waiter was answered early";

  const auto gone = SteadyClock::now();
  holder.reset();  // disconnects without SET
  int promoted = -1;
  wait_until(
      [&] {
        for (int i = 0; i < kWaiters && promoted < 0; ++i) {
          if (readable(*waiters[i], 0ms)) promoted = i;
        }
        return promoted >= 0;
      },
      Millis(kWait + 500));
  ASSERT_GE(promoted, 0) << "no waiter was answered by lease.wait + 500 ms";
  const long long promoted_after = ms_since(gone);
  EXPECT_EQ(text(waiters[promoted]->get_reply()), "(nil)");
  EXPECT_LT(promoted_after, 1000) << "the next waiter should load at once, not at lease.wait";
  // The others keep waiting for the new holder.
  for (int i = 0; i < kWaiters; ++i) {
    if (i != promoted) {
      EXPECT_FALSE(readable(*waiters[i], 0ms)) << "waiter " << i;
    }
  }
  const std::string value = "loaded-by-" + std::to_string(promoted);
  ASSERT_EQ(waiters[promoted]->run({"SET", "solo:k", value}), "+OK");
  for (int i = 0; i < kWaiters; ++i) {
    if (i == promoted) continue;
    EXPECT_EQ(text(waiters[i]->get_reply()), "$" + value) << "waiter " << i;
    EXPECT_LT(ms_since(sent[i]), kWait + 500) << "waiter " << i;
  }
  EXPECT_EQ(metric_becomes(*proxy_, kLeasesGranted, 2), 2);
  EXPECT_EQ(metric_becomes(*proxy_, lease_outcome("promoted"), 1), 1);
  EXPECT_EQ(metric_becomes(*proxy_, lease_outcome("value"), kWaiters - 1), kWaiters - 1);
}

TEST_F(PoliciesTest, LeaseWaitersGetNilWhenTheWaitRunsOut) {
  start(kLeaseRules);
  constexpr long long kWait = 1000;  // short:*
  Client holder(port());
  ASSERT_EQ(holder.run({"GET", "short:k"}), "(nil)");  // holds the lease, never SETs
  constexpr int kWaiters = 5;
  std::vector<std::unique_ptr<Client>> waiters;
  std::vector<SteadyClock::time_point> sent;
  for (int i = 0; i < kWaiters; ++i) {
    waiters.push_back(std::make_unique<Client>(port()));
    waiters.back()->append({"GET", "short:k"});
    ASSERT_TRUE(waiters.back()->flush());
    sent.push_back(SteadyClock::now());
  }
  for (int i = 0; i < kWaiters; ++i) {
    EXPECT_EQ(text(waiters[i]->get_reply()), "(nil)");
    const long long waited = ms_since(sent[i]);
    EXPECT_GE(waited, kWait - 50) << "waiter " << i;
    EXPECT_LT(waited, kWait + 500) << "waiter " << i;
  }
  const Samples s = scrape(*proxy_);
  EXPECT_EQ(sample(s, lease_outcome("timeout")) + sample(s, lease_outcome("promoted")), kWaiters);
}

// Holder and waiter for the value-carrying writes.
struct ValueWrite {
  std::string name;
  std::vector<std::string> command;  // key "solo:<name>", value "v"
  std::string reply;
};

void PrintTo(const ValueWrite& w, std::ostream* os) {
  *os << w.name;
}

class LeaseValueTest : public PoliciesTest, public ::testing::WithParamInterface<ValueWrite> {};

TEST_P(LeaseValueTest, WaitersReceiveTheHoldersValue) {
  start(kLeaseRules);
  const ValueWrite& p = GetParam();
  const std::string key = "solo:" + p.name;
  Client holder(port()), waiter(port());
  ASSERT_EQ(holder.run({"GET", key}), "(nil)");
  waiter.append({"GET", key});
  ASSERT_TRUE(waiter.flush());
  const auto sent = SteadyClock::now();
  ASSERT_EQ(metric_becomes(*proxy_, kLeaseWaits, 1), 1);
  const long long before = calls("get");
  ASSERT_EQ(holder.run(p.command), p.reply);
  ASSERT_TRUE(readable(waiter, 3500ms));
  EXPECT_EQ(text(waiter.get_reply()), "$v");
  EXPECT_LT(ms_since(sent), 1000) << "answered by the write, not by lease.wait (3 s)";
  EXPECT_EQ(calls("get"), before) << "the value came from the write, not from Redis";
  EXPECT_EQ(metric_becomes(*proxy_, lease_outcome("value"), 1), 1);
}

INSTANTIATE_TEST_SUITE_P(
    Commands, LeaseValueTest,
    ::testing::Values(ValueWrite{"set", {"SET", "solo:set", "v"}, "+OK"},
                      ValueWrite{
                          "setex_option", {"SET", "solo:setex_option", "v", "EX", "100"}, "+OK"},
                      ValueWrite{"setex", {"SETEX", "solo:setex", "100", "v"}, "+OK"},
                      ValueWrite{"psetex", {"PSETEX", "solo:psetex", "100000", "v"}, "+OK"},
                      ValueWrite{"getset", {"GETSET", "solo:getset", "v"}, "(nil)"},
                      ValueWrite{"setnx", {"SETNX", "solo:setnx", "v"}, ":1"}),
    [](const ::testing::TestParamInfo<ValueWrite>& info) { return info.param.name; });

// SET .. GET answers the old value. Without NX/XX the SET always writes, so its value is
// handed out; with NX or XX the reply cannot say whether it wrote, so the lease just ends and
// the next waiter loads. Either way the waiter is answered at once, never with the old value.
TEST_F(PoliciesTest, ASetWithGetServesTheWaitersUnlessConditional) {
  start(kLeaseRules);
  Client direct(redis_port());
  for (const bool conditional : {false, true}) {
    SCOPED_TRACE(conditional ? "SET k v NX GET" : "SET k v GET");
    const std::string key = conditional ? "solo:nx" : "solo:plain";
    Client holder(port()), waiter(port());
    ASSERT_EQ(holder.run({"GET", key}), "(nil)");
    const double waits = sample(scrape(*proxy_), kLeaseWaits);
    waiter.append({"GET", key});
    ASSERT_TRUE(waiter.flush());
    const auto sent = SteadyClock::now();
    ASSERT_EQ(metric_becomes(*proxy_, kLeaseWaits, waits + 1), waits + 1);
    std::vector<std::string> set = {"SET", key, "v"};
    if (conditional) set.push_back("NX");
    set.push_back("GET");
    ASSERT_EQ(holder.run(set), "(nil)");
    ASSERT_TRUE(readable(waiter, 3500ms));
    const std::string got = text(waiter.get_reply());
    if (conditional) {
      EXPECT_TRUE(got == "(nil)" || got == "$v") << got;
    } else {
      EXPECT_EQ(got, "$v");
    }
    EXPECT_LT(ms_since(sent), 1000) << "answered by the write, not by lease.wait (3 s)";
    EXPECT_EQ(direct.run({"GET", key}), "$v");
  }
}

TEST_F(PoliciesTest, AnotherWriteEndsTheLeaseAndTheNextWaiterLoads) {
  start(kLeaseRules);
  Client holder(port()), w1(port()), w2(port()), other(port());
  ASSERT_EQ(holder.run({"GET", "solo:k"}), "(nil)");
  w1.append({"GET", "solo:k"});
  ASSERT_TRUE(w1.flush());
  ASSERT_EQ(metric_becomes(*proxy_, kLeaseWaits, 1), 1);  // w1 is first in line
  w2.append({"GET", "solo:k"});
  ASSERT_TRUE(w2.flush());
  ASSERT_EQ(metric_becomes(*proxy_, kLeaseWaits, 2), 2);
  const auto t0 = SteadyClock::now();
  ASSERT_EQ(other.run({"DEL", "solo:k"}), ":0");
  ASSERT_TRUE(readable(w1, 3500ms));
  EXPECT_EQ(text(w1.get_reply()), "(nil)") << "w1 now holds the lease";
  EXPECT_LT(ms_since(t0), 1000);
  EXPECT_FALSE(readable(w2, 100ms)) << "w2 waits for w1";
  ASSERT_EQ(w1.run({"SET", "solo:k", "from-w1"}), "+OK");
  ASSERT_TRUE(readable(w2, 3500ms));
  EXPECT_EQ(text(w2.get_reply()), "$from-w1");
  EXPECT_LT(ms_since(t0), 1000);
}

// Half-closes a client's connection and waits until the proxy closed its side: then the
// proxy has handled the disconnect (a session answers EOF by closing its socket at once).
::testing::AssertionResult disconnect_and_see_closed(Client& client) {
  const int fd = client.context()->fd;
  if (::shutdown(fd, SHUT_WR) != 0) return ::testing::AssertionFailure() << "shutdown failed";
  const auto deadline = SteadyClock::now() + 5s;
  while (SteadyClock::now() < deadline) {
    pollfd pfd{fd, POLLIN, 0};
    if (::poll(&pfd, 1, 100) <= 0) continue;
    char buf[256];
    const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN)) {
      return ::testing::AssertionSuccess();
    }
    if (n > 0) return ::testing::AssertionFailure() << "got a reply: " << std::string(buf, n);
  }
  return ::testing::AssertionFailure() << "the proxy did not close the connection within 5 s";
}

// A waiter that leaves does not disturb the others, nor the proxy.
TEST_F(PoliciesTest, AWaiterThatLeavesIsSimplyForgotten) {
  start(kLeaseRules);
  Client holder(port()), leaves(port()), stays(port());
  ASSERT_EQ(holder.run({"GET", "solo:k"}), "(nil)");
  leaves.append({"GET", "solo:k"});
  ASSERT_TRUE(leaves.flush());
  ASSERT_EQ(metric_becomes(*proxy_, kLeaseWaits, 1), 1);
  stays.append({"GET", "solo:k"});
  ASSERT_TRUE(stays.flush());
  ASSERT_EQ(metric_becomes(*proxy_, kLeaseWaits, 2), 2);
  ASSERT_TRUE(disconnect_and_see_closed(leaves));
  ASSERT_EQ(holder.run({"SET", "solo:k", "v"}), "+OK");
  ASSERT_TRUE(readable(stays, 1000ms));
  EXPECT_EQ(text(stays.get_reply()), "$v");
  EXPECT_EQ(holder.run({"PING"}), "+PONG");
}

// The lease passes to the next waiter that is still there: one that left cannot load the key.
TEST_F(PoliciesTest, ALeaseNeverPassesToAWaiterThatLeft) {
  start(kLeaseRules);
  auto holder = std::make_unique<Client>(port());
  Client left(port()), next(port());
  ASSERT_EQ(holder->run({"GET", "solo:k"}), "(nil)");
  left.append({"GET", "solo:k"});
  ASSERT_TRUE(left.flush());
  ASSERT_EQ(metric_becomes(*proxy_, kLeaseWaits, 1), 1);  // `left` is first in line
  next.append({"GET", "solo:k"});
  ASSERT_TRUE(next.flush());
  const auto sent = SteadyClock::now();
  ASSERT_EQ(metric_becomes(*proxy_, kLeaseWaits, 2), 2);
  ASSERT_TRUE(disconnect_and_see_closed(left));
  holder.reset();  // the holder leaves too, without SET
  ASSERT_TRUE(readable(next, 3500ms));
  EXPECT_EQ(text(next.get_reply()), "(nil)");
  EXPECT_LT(ms_since(sent), 1000) << "`next` sat out lease.wait (3 s): the lease went to the "
                                     "client that had left; "
                                  << lease_metrics(*proxy_);
  // `next` holds the lease now: its SET serves the next reader at once.
  ASSERT_EQ(next.run({"SET", "solo:k", "v"}), "+OK");
  Client reader(port());
  EXPECT_EQ(reader.run({"GET", "solo:k"}), "$v");
}

// A waiting GET holds up what its client pipelined after it; all replies come in order.
TEST_F(PoliciesTest, AWaitersPipelinedRequestsFollowItsGet) {
  start(kLeaseRules);
  Client holder(port()), waiter(port());
  ASSERT_EQ(holder.run({"GET", "solo:k"}), "(nil)");
  waiter.append({"GET", "solo:k"});
  waiter.append({"SET", "plain:x", "1"});
  waiter.append({"PING"});
  waiter.append({"GET", "plain:x"});
  ASSERT_TRUE(waiter.flush());
  ASSERT_EQ(metric_becomes(*proxy_, kLeaseWaits, 1), 1);
  EXPECT_FALSE(readable(waiter, 100ms)) << "nothing may overtake the waiting GET";
  ASSERT_EQ(holder.run({"SET", "solo:k", "v"}), "+OK");
  EXPECT_EQ(text(waiter.get_reply()), "$v");
  EXPECT_EQ(text(waiter.get_reply()), "+OK");
  EXPECT_EQ(text(waiter.get_reply()), "+PONG");
  EXPECT_EQ(text(waiter.get_reply()), "$1");
}

TEST_F(PoliciesTest, Resp3WaitersGetValuesAndNilsInTheirProtocol) {
  start(kLeaseRules);
  Client holder(port()), other(port());
  RawSocket first(port()), second(port());
  for (RawSocket* s : {&first, &second}) {
    ASSERT_TRUE(s->send(resp_command({"HELLO", "3"})));
    ASSERT_EQ(s->read_message().substr(0, 1), "%");
  }
  ASSERT_EQ(holder.run({"GET", "solo:k"}), "(nil)");
  ASSERT_TRUE(first.send(resp_command({"GET", "solo:k"})));
  ASSERT_EQ(metric_becomes(*proxy_, kLeaseWaits, 1), 1);
  ASSERT_TRUE(second.send(resp_command({"GET", "solo:k"})));
  ASSERT_EQ(metric_becomes(*proxy_, kLeaseWaits, 2), 2);
  ASSERT_EQ(other.run({"DEL", "solo:k"}), ":0");  // ends the lease: `first` is promoted
  EXPECT_EQ(first.read_message(2000ms), "_\r\n");
  ASSERT_EQ(holder.run({"SET", "solo:k", "value"}), "+OK");  // any client's SET serves
  EXPECT_EQ(second.read_message(2000ms), "$5\r\nvalue\r\n");
}

// SETNX that finds the key already there (written behind the proxy's back) did not write its
// argument: waiters must not be handed a value Redis does not hold.
TEST_F(PoliciesTest, AFailedSetnxDoesNotHandItsArgumentToWaiters) {
  start(kLeaseRules);
  Client holder(port()), waiter(port());
  Client direct(redis_port());
  ASSERT_EQ(holder.run({"GET", "solo:k"}), "(nil)");
  waiter.append({"GET", "solo:k"});
  ASSERT_TRUE(waiter.flush());
  ASSERT_EQ(metric_becomes(*proxy_, kLeaseWaits, 1), 1);
  ASSERT_EQ(direct.run({"SET", "solo:k", "in-redis"}), "+OK");
  ASSERT_EQ(holder.run({"SETNX", "solo:k", "not-written"}), ":0");
  ASSERT_TRUE(readable(waiter, 3500ms));
  const std::string got = text(waiter.get_reply());
  EXPECT_NE(got, "$not-written") << "Redis holds \"in-redis\"";
  EXPECT_TRUE(got == "$in-redis" || got == "(nil)") << got;
}

// The same inside a transaction: EXEC answers an array whatever its SETNX did.
TEST_F(PoliciesTest, AFailedSetnxInATransactionDoesNotHandItsArgumentToWaiters) {
  start(kLeaseRules);
  Client holder(port()), waiter(port());
  Client direct(redis_port());
  ASSERT_EQ(holder.run({"GET", "solo:k"}), "(nil)");
  waiter.append({"GET", "solo:k"});
  ASSERT_TRUE(waiter.flush());
  ASSERT_EQ(metric_becomes(*proxy_, kLeaseWaits, 1), 1);
  ASSERT_EQ(direct.run({"SET", "solo:k", "in-redis"}), "+OK");
  EXPECT_EQ(pipeline(holder, {{"MULTI"},
                              {"SETNX", "solo:k", "not-written"},
                              {"SET", "solo:k", "not-written-either", "NX"},
                              {"EXEC"}}),
            (std::vector<std::string>{"+OK", "+QUEUED", "+QUEUED", "[:0, (nil)]"}));
  ASSERT_TRUE(readable(waiter, 3500ms));
  const std::string got = text(waiter.get_reply());
  EXPECT_TRUE(got == "$in-redis" || got == "(nil)") << got << ", but Redis holds \"in-redis\"";
}

// The holder's SET inside MULTI/EXEC is a write of the key through the proxy.
TEST_F(PoliciesTest, AHoldersTransactionalSetReleasesTheWaiters) {
  start(kLeaseRules);
  Client holder(port()), waiter(port());
  ASSERT_EQ(holder.run({"GET", "solo:k"}), "(nil)");
  waiter.append({"GET", "solo:k"});
  ASSERT_TRUE(waiter.flush());
  const auto sent = SteadyClock::now();
  ASSERT_EQ(metric_becomes(*proxy_, kLeaseWaits, 1), 1);
  EXPECT_EQ(
      pipeline(holder, {{"MULTI"}, {"SET", "solo:k", "v"}, {"EXPIRE", "solo:k", "100"}, {"EXEC"}}),
      (std::vector<std::string>{"+OK", "+QUEUED", "+QUEUED", "[+OK, :1]"}));
  ASSERT_TRUE(readable(waiter, 3500ms));
  const std::string got = text(waiter.get_reply());
  EXPECT_LT(ms_since(sent), 1000) << "the waiter sat out lease.wait (3 s) although the key was "
                                     "written through the proxy; it got "
                                  << got;
  EXPECT_TRUE(got == "$v" || got == "(nil)") << got;
}

// A nil that Redis produced before a write of the key (the reply arrives after the write was
// forwarded) must not leave a lease on a key that exists: readers would wait for a SET that
// already happened.
TEST_F(PoliciesTest, AMissAnsweredAfterAWriteLeavesNoLease) {
  start(kLeaseRules);
  Client a(port()), b(port());
  EXPECT_EQ(pipeline(a, {{"GET", "solo:k"}, {"SET", "solo:k", "v"}}),
            (std::vector<std::string>{"(nil)", "+OK"}));
  const auto t0 = SteadyClock::now();
  EXPECT_EQ(b.run({"GET", "solo:k"}), "$v");
  EXPECT_LT(ms_since(t0), 1000) << "b waited for a lease on a key that exists";
}

// A miss answered by the negative cache is still a miss for the lease (composition).
TEST_F(PoliciesTest, ALocalMissFromTheNegativeCacheTakesTheLease) {
  start(kLeaseRules);
  // Prime the negative cache: a GET misses (and its client takes the lease); the client
  // leaves without loading, which ends its lease.
  {
    Client p(port());
    ASSERT_EQ(p.run({"GET", "negl:k"}), "(nil)");
  }
  wait_for_close();
  const long long before = calls("get");
  Client holder(port()), waiter(port());
  ASSERT_EQ(holder.run({"GET", "negl:k"}), "(nil)");  // from the negative cache
  EXPECT_EQ(metric_becomes(*proxy_, kNegativeHits, 1), 1);
  EXPECT_EQ(metric_becomes(*proxy_, kLeasesGranted, 2), 2);
  waiter.append({"GET", "negl:k"});
  ASSERT_TRUE(waiter.flush());
  ASSERT_EQ(metric_becomes(*proxy_, kLeaseWaits, 1), 1);
  ASSERT_EQ(holder.run({"SET", "negl:k", "v"}), "+OK");
  ASSERT_TRUE(readable(waiter, 3000ms));
  EXPECT_EQ(text(waiter.get_reply()), "$v");
  EXPECT_EQ(calls("get"), before) << "both answers came from the proxy";

  // And a stampede on a key known absent: one load, no GET reaches Redis before it.
  {
    Client p(port());
    ASSERT_EQ(p.run({"GET", "negl:s"}), "(nil)");
  }
  wait_for_close(2);  // holder and waiter remain
  CacheAside r;
  run_cache_aside(port(), "negl:s", 200, "from-db", r);
  EXPECT_EQ(r.loads.load(), 1);
  EXPECT_TRUE(everyone_has(r, "from-db"));
  EXPECT_LT(*std::max_element(r.get_ms.begin(), r.get_ms.end()), 2000 + 500);
}

// ==================================================================================== metrics

TEST_F(PoliciesTest, MetricsCountWhatEachPolicyDid) {
  start(R"(
rules:
  - match: "jit:*"
    jitter: {percent: 0.1}
  - match: "hot:*"
    coalesce: true
  - match: "neg:*"
    negative_cache: {ttl: 60s}
  - match: "solo:*"
    lease: {wait: 3s}
)");
  // 100 jittered writes, and 10 that no rule jitters.
  write_all(
      port(), numbered("jit:", 100),
      [](const std::string& k) -> std::vector<std::string> {
        return {"SET", k, "v", "EX", "100"};
      },
      "+OK");
  write_all(
      port(), numbered("other:", 10),
      [](const std::string& k) -> std::vector<std::string> {
        return {"SET", k, "v", "EX", "100"};
      },
      "+OK");
  // 20 GETs during one flight: 19 coalesced.
  std::vector<std::unique_ptr<Client>> clients;
  for (int i = 0; i < 20; ++i) clients.push_back(std::make_unique<Client>(port()));
  for (auto& c : clients) ASSERT_EQ(c->run({"PING"}), "+PONG");
  pause_upstream(redis_port(), 800ms);
  for (auto& c : clients) {
    c->append({"GET", "hot:k"});
    ASSERT_TRUE(c->flush());
  }
  for (auto& c : clients) ASSERT_EQ(text(c->get_reply()), "(nil)");
  // One miss learned, then 50 answered locally.
  Client c(port());
  ASSERT_EQ(c.run({"GET", "neg:k"}), "(nil)");
  for (int i = 0; i < 50; ++i) ASSERT_EQ(c.run({"GET", "neg:k"}), "(nil)");
  // One lease, one waiter served by the holder's SET.
  Client holder(port()), waiter(port());
  ASSERT_EQ(holder.run({"GET", "solo:k"}), "(nil)");
  waiter.append({"GET", "solo:k"});
  ASSERT_TRUE(waiter.flush());
  ASSERT_EQ(metric_becomes(*proxy_, kLeaseWaits, 1), 1);
  ASSERT_EQ(holder.run({"SET", "solo:k", "v"}), "+OK");
  ASSERT_EQ(text(waiter.get_reply()), "$v");

  EXPECT_EQ(metric_becomes(*proxy_, kJitterApplied, 100), 100);
  EXPECT_EQ(metric_becomes(*proxy_, kCoalesced, 19), 19);
  EXPECT_EQ(metric_becomes(*proxy_, kNegativeHits, 50), 50);
  EXPECT_EQ(metric_becomes(*proxy_, kLeasesGranted, 1), 1);
  EXPECT_EQ(metric_becomes(*proxy_, kLeaseWaits, 1), 1);
  EXPECT_EQ(metric_becomes(*proxy_, lease_outcome("value"), 1), 1);
  EXPECT_EQ(metric_becomes(*proxy_, lease_outcome("timeout"), 0), 0);
  EXPECT_EQ(metric_becomes(*proxy_, lease_outcome("promoted"), 0), 0);
}

}  // namespace
}  // namespace rgtest
