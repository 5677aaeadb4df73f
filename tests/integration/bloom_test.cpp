// Bloom pre-checks on a real redis-server (docs/configuration.md, "Bloom filters" and "The
// coherence channel"): keys a filter has never seen are answered by the proxy, never a key that
// exists, whoever wrote it.
//
// The evidence is read from Redis itself on a direct connection, never through the proxy: INFO
// commandstats call counts say how many GET/EXISTS/MGET reached Redis. Each test starts its own
// redis-server (preloaded directly where the warm-up SCAN must find keys) and proxy, and waits
// until every filter is trusted (respguard_bloom_filters_untrusted == 0) before it counts on
// local answers.
//
// The maintenance tick (resize, rebuild) runs every 5 s: the two tests that wait for it take
// about that long, each other test a second or two.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <functional>
#include <iostream>
#include <memory>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "harness.hpp"

namespace rgtest {
namespace {

using SteadyClock = std::chrono::steady_clock;

long long ms_since(SteadyClock::time_point start) {
  return std::chrono::duration_cast<Millis>(SteadyClock::now() - start).count();
}

// ---- metrics (parse_samples is the harness's) ----

constexpr const char* kUntrusted = "respguard_bloom_filters_untrusted";
constexpr const char* kRejected = "respguard_bloom_checks_total{result=\"rejected\"}";
constexpr const char* kFalsePositives = "respguard_bloom_false_positives_total";
constexpr const char* kMemory = "respguard_bloom_memory_bytes";
constexpr const char* kChannelState = "respguard_coherence_channel_state";

std::string passes(const std::string& kind) {
  return "respguard_bloom_passes_total{kind=\"" + kind + "\"}";
}

// ---- helpers ----

// Sends the commands on one connection in pipelines of `batch` and returns every reply's text
// (fewer replies than commands when the connection failed).
std::vector<std::string> pipelined(Client& client,
                                   const std::vector<std::vector<std::string>>& cmds,
                                   std::size_t batch = 1000) {
  std::vector<std::string> out;
  out.reserve(cmds.size());
  for (std::size_t from = 0; from < cmds.size(); from += batch) {
    const std::size_t to = std::min(cmds.size(), from + batch);
    for (std::size_t i = from; i < to; ++i) client.append(cmds[i]);
    if (!client.flush()) return out;
    for (std::size_t i = from; i < to; ++i) out.push_back(text(client.get_reply()));
  }
  return out;
}

std::vector<std::vector<std::string>> each(
    const std::vector<std::string>& keys,
    const std::function<std::vector<std::string>(const std::string&)>& command) {
  std::vector<std::vector<std::string>> cmds;
  cmds.reserve(keys.size());
  for (const std::string& k : keys) cmds.push_back(command(k));
  return cmds;
}

std::vector<std::string> gets(Client& client, const std::vector<std::string>& keys) {
  return pipelined(client, each(keys, [](const std::string& k) {
                     return std::vector<std::string>{"GET", k};
                   }));
}

std::vector<std::string> numbered(const std::string& prefix, int from, int to) {
  std::vector<std::string> keys;
  for (int i = from; i < to; ++i) keys.push_back(prefix + std::to_string(i));
  return keys;
}

// SET <key> v:<key> for every key on `client`; every reply must be +OK.
void set_all(Client& client, const std::vector<std::string>& keys) {
  const std::vector<std::string> replies =
      pipelined(client, each(keys, [](const std::string& k) {
                  return std::vector<std::string>{"SET", k, "v:" + k};
                }));
  ASSERT_EQ(replies.size(), keys.size()) << client.error();
  for (std::size_t i = 0; i < replies.size(); ++i) {
    ASSERT_EQ(replies[i], "+OK") << "SET " << keys[i];
  }
}

// Every reply i is "$v:<keys[i]>"; otherwise a message naming the first few that are not.
::testing::AssertionResult all_values(const std::vector<std::string>& keys,
                                      const std::vector<std::string>& replies) {
  if (replies.size() != keys.size()) {
    return ::testing::AssertionFailure()
           << replies.size() << " replies to " << keys.size() << " GETs";
  }
  std::ostringstream bad;
  int n = 0;
  for (std::size_t i = 0; i < keys.size(); ++i) {
    if (replies[i] != "$v:" + keys[i]) {
      if (n < 10) bad << " " << keys[i] << "=" << replies[i];
      ++n;
    }
  }
  if (n == 0) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << n << " of " << keys.size() << " wrong:" << bad.str();
}

// How many replies are not `expected`, naming the first few in *first.
long long count_not(const std::vector<std::string>& replies, const std::string& expected,
                    std::string* first = nullptr) {
  long long n = 0;
  for (const std::string& r : replies) {
    if (r == expected) continue;
    if (first != nullptr && n < 5) *first += " " + r;
    ++n;
  }
  return n;
}

// One redis-server per test (started first, so a test can preload it directly) and one proxy
// with the rules the test needs.
class BloomTest : public ::testing::Test {
 protected:
  void SetUp() override {
    SKIP_IN_DIRECT_MODE("Bloom pre-checks are proxy behaviour");
    redis_ = std::make_unique<RedisServer>();
  }

  // Starts the proxy, waits for /readyz (the coherence channel is up) and then until every
  // filter finished its warm-up and is trusted. Returns the milliseconds that took.
  long long start(const std::string& yaml) {
    const auto t0 = SteadyClock::now();
    proxy_ = std::make_unique<ProxyServer>(redis_->port(), ProxyOptions{yaml, {}});
    EXPECT_TRUE(
        wait_until([&] { return http_status(proxy_->admin_port(), "/readyz") == 200; }, 5000ms))
        << "respguard never became ready";
    EXPECT_EQ(metric(*proxy_, kChannelState), 1) << "the coherence channel is not up";
    wait_trusted();
    return ms_since(t0);
  }

  void wait_trusted(Millis timeout = 10s) {
    EXPECT_EQ(metric_becomes(*proxy_, kUntrusted, 0, timeout), 0)
        << "a Bloom filter never finished its warm-up";
  }

  int port() const { return proxy_->port(); }
  int redis_port() const { return redis_->port(); }
  long long calls(const std::string& command) const {
    return commandstat_calls(redis_->port(), command);
  }

  std::unique_ptr<RedisServer> redis_;  // destroyed after the proxy
  std::unique_ptr<ProxyServer> proxy_;
};

// ============================================================================== penetration

TEST_F(BloomTest, AbsentKeysAreAnsweredLocallyAtTheConfiguredFalsePositiveRate) {
  // The filter filled to 95 % of expected_keys by the warm-up SCAN alone (written directly,
  // before the proxy starts), so the rate measured is close to the one configured; not 100 %,
  // which would make the 5 s maintenance tick resize it halfway through the test.
  constexpr int kPresent = 95000;
  constexpr int kAbsent = 100000;
  const std::vector<std::string> present = numbered("item:", 0, kPresent);
  {
    Client direct(redis_port());
    set_all(direct, present);
  }
  const long long warmup_ms = start(R"(
rules:
  - match: "*"
    bloom: {expected_keys: 100000, false_positive_rate: 0.01}
)");
  EXPECT_EQ(metric(*proxy_, passes("warmup")), 1);

  // No false negatives: every key the SCAN found is let through and Redis answers it.
  Client c(port());
  const long long gets_before_present = calls("get");
  EXPECT_TRUE(all_values(present, gets(c, present)));
  EXPECT_EQ(calls("get") - gets_before_present, kPresent);

  // 100,000 random keys that exist nowhere: all nil, and only false positives reach Redis.
  const std::uint64_t seed = std::random_device{}();
  std::mt19937_64 random(seed);
  std::vector<std::string> absent;
  absent.reserve(kAbsent);
  for (int i = 0; i < kAbsent; ++i) absent.push_back("absent:" + std::to_string(random()));
  const long long before = calls("get");
  const auto t0 = SteadyClock::now();
  const std::vector<std::string> replies = gets(c, absent);
  const long long absent_ms = ms_since(t0);
  const long long upstream = calls("get") - before;
  ASSERT_EQ(replies.size(), absent.size()) << c.error();
  std::string wrong;
  EXPECT_EQ(count_not(replies, "(nil)", &wrong), 0) << wrong;
  EXPECT_LE(upstream, static_cast<long long>(0.01 * kAbsent * 1.5)) << "seed " << seed;

  // The proxy's own count agrees with Redis's: each absent key was either rejected here or
  // passed, reached Redis and came back nil (a false positive).
  EXPECT_EQ(metric_becomes(*proxy_, kFalsePositives, static_cast<double>(upstream)),
            static_cast<double>(upstream));
  EXPECT_EQ(metric_becomes(*proxy_, kRejected, static_cast<double>(kAbsent - upstream)),
            static_cast<double>(kAbsent - upstream));
  const Samples s = scrape(*proxy_);
  std::cout << "[ measured ] warm-up of " << kPresent << " keys: " << warmup_ms << " ms; "
            << upstream << " of " << kAbsent << " absent GETs reached Redis ("
            << 100.0 * static_cast<double>(upstream) / kAbsent << " %, " << absent_ms
            << " ms, seed " << seed << "); false_positives_total=" << sample(s, kFalsePositives)
            << " rejected=" << sample(s, kRejected)
            << " fp_estimate=" << sample(s, "respguard_bloom_false_positive_rate_estimate")
            << " resizes=" << sample(s, passes("resize")) << "\n";
}

// ================================================================================== writes

TEST_F(BloomTest, WritesThroughTheProxyOrDirectlyAreNeverRuledOut) {
  start(R"(
rules:
  - match: "*"
    bloom: {expected_keys: 100000}
)");
  // Four connections: the two workers both serve some of them.
  std::vector<std::unique_ptr<Client>> clients;
  for (int i = 0; i < 4; ++i) clients.push_back(std::make_unique<Client>(port()));

  // Each key is first ruled out locally, so the GETs after the write prove the filter learned.
  const std::vector<std::string> keys = numbered("written:", 0, 50);
  long long before = calls("get");
  for (const std::string& k : keys) ASSERT_EQ(clients[0]->run({"GET", k}), "(nil)");
  ASSERT_EQ(calls("get") - before, 0) << "absent keys were not ruled out locally";

  before = calls("get");
  for (std::size_t i = 0; i < keys.size(); ++i) {
    Client& writer = *clients[i % clients.size()];
    Client& other = *clients[(i + 1) % clients.size()];
    ASSERT_EQ(writer.run({"SET", keys[i], "v:" + keys[i]}), "+OK");
    EXPECT_EQ(writer.run({"GET", keys[i]}), "$v:" + keys[i]);  // the writer's connection
    EXPECT_EQ(other.run({"GET", keys[i]}), "$v:" + keys[i]);   // another one, at once
  }
  EXPECT_EQ(calls("get") - before, 2 * static_cast<long long>(keys.size()));

  // A SET and a GET of a new key in one pipeline: the GET follows the SET.
  clients[1]->append({"SET", "piped", "p"});
  clients[1]->append({"GET", "piped"});
  ASSERT_TRUE(clients[1]->flush());
  EXPECT_EQ(text(clients[1]->get_reply()), "+OK");
  EXPECT_EQ(text(clients[1]->get_reply()), "$p");

  // Written directly to Redis by another client: the coherence channel tells the proxy.
  const std::vector<std::string> direct_keys = numbered("direct:", 0, 20);
  before = calls("get");
  for (const std::string& k : direct_keys) ASSERT_EQ(clients[2]->run({"GET", k}), "(nil)");
  ASSERT_EQ(calls("get") - before, 0) << "absent keys were not ruled out locally";
  Client direct(redis_port());
  long long slowest = 0;
  for (const std::string& k : direct_keys) {
    ASSERT_EQ(direct.run({"SET", k, "d"}), "+OK");
    const auto t0 = SteadyClock::now();
    std::string last;
    EXPECT_TRUE(wait_until(
        [&] {
          last = clients[3]->run({"GET", k});
          return last == "$d";
        },
        1000ms))
        << k << " still " << last << " through the proxy 1 s after it was written directly";
    slowest = std::max(slowest, ms_since(t0));
  }
  std::cout << "[ measured ] a direct write was seen through the proxy within " << slowest
            << " ms (slowest of " << direct_keys.size() << ")\n";
}

// ============================================================================ EXISTS, MGET

TEST_F(BloomTest, ExistsAndMgetOfAbsentKeysAreAnsweredLocally) {
  {
    Client direct(redis_port());
    ASSERT_EQ(direct.run({"SET", "m:present", "here"}), "+OK");
  }
  start(R"(
rules:
  - match: "*"
    bloom: {expected_keys: 100000}
)");
  Client c(port());
  const std::vector<std::string> absent = numbered("m:absent:", 0, 100);

  const long long exists = calls("exists");
  const std::vector<std::string> replies = pipelined(c, each(absent, [](const std::string& k) {
                                                       return std::vector<std::string>{"EXISTS", k};
                                                     }));
  std::string wrong;
  EXPECT_EQ(count_not(replies, ":0", &wrong), 0) << wrong;
  EXPECT_EQ(calls("exists") - exists, 0);
  EXPECT_EQ(c.run({"EXISTS", "m:present"}), ":1");
  EXPECT_EQ(calls("exists") - exists, 1);

  const long long mget = calls("mget");
  EXPECT_EQ(c.run({"MGET", absent[0], absent[1], absent[2]}), "[(nil), (nil), (nil)]");
  EXPECT_EQ(calls("mget") - mget, 0);
  // One key that may exist: Redis answers the whole MGET, each value in its place.
  EXPECT_EQ(c.run({"MGET", absent[3], "m:present", absent[4]}), "[(nil), $here, (nil)]");
  EXPECT_EQ(c.run({"MGET", "m:present", absent[5]}), "[$here, (nil)]");
  EXPECT_EQ(calls("mget") - mget, 2);
  // 100 EXISTS and 3 MGET keys rejected; nothing else was.
  EXPECT_EQ(metric_becomes(*proxy_, kRejected, 103), 103);
}

// ============================================================================== source: set

TEST_F(BloomTest, SetSourceAnswersTheSentinelForIdsOutsideTheSet) {
  constexpr const char* kSentinel = "$__absent__";
  {
    Client direct(redis_port());
    std::vector<std::string> sadd = {"SADD", "valid:product-ids"};
    for (int id = 1; id <= 1000; ++id) sadd.push_back(std::to_string(id));
    ASSERT_EQ(direct.run(sadd), ":1000");
    for (int id = 1; id <= 10; ++id) {
      ASSERT_EQ(direct.run({"SET", "product:" + std::to_string(id), "p" + std::to_string(id)}),
                "+OK");
    }
    // Under the rule's match, but not fitting its id pattern "product:{id}".
    ASSERT_EQ(direct.run({"SET", "products:list", "all"}), "+OK");
  }
  // The match is broader than the id pattern, so some keys under the rule have no id.
  start(R"(
rules:
  - match: "product*"
    bloom:
      source: set
      set: "valid:product-ids"
      id: "product:{id}"
      expected_keys: 10000
      false_positive_rate: 0.01
      absent_reply: "__absent__"
)");
  Client c(port());

  // Ids outside the set: the sentinel, but for false positives, which Redis answers nil.
  const std::vector<std::string> outside = numbered("product:", 5000, 6000);
  long long before = calls("get");
  const std::vector<std::string> out_replies = gets(c, outside);
  const long long passed = calls("get") - before;
  ASSERT_EQ(out_replies.size(), outside.size()) << c.error();
  long long sentinels = 0;
  std::string wrong;
  std::vector<std::string> rejected_keys;
  for (std::size_t i = 0; i < outside.size(); ++i) {
    if (out_replies[i] == kSentinel) {
      ++sentinels;
      rejected_keys.push_back(outside[i]);
    } else if (out_replies[i] != "(nil)") {
      wrong += " " + outside[i] + "=" + out_replies[i];
    }
  }
  EXPECT_EQ(wrong, "");
  EXPECT_EQ(passed, static_cast<long long>(outside.size()) - sentinels);
  EXPECT_LE(passed, static_cast<long long>(0.01 * 1000 * 1.5));
  std::cout << "[ measured ] source: set: " << passed << " of " << outside.size()
            << " GETs of ids outside the set passed through to Redis\n";

  // Ids in the set: never the sentinel; Redis answers (a value when cached, else nil).
  const std::vector<std::string> inside = numbered("product:", 1, 1001);
  before = calls("get");
  const std::vector<std::string> in_replies = gets(c, inside);
  ASSERT_EQ(in_replies.size(), inside.size()) << c.error();
  EXPECT_EQ(calls("get") - before, static_cast<long long>(inside.size()));
  for (int id = 1; id <= 1000; ++id) {
    const std::string& r = in_replies[static_cast<std::size_t>(id - 1)];
    EXPECT_EQ(r, id <= 10 ? "$p" + std::to_string(id) : "(nil)") << "product:" << id;
  }

  // MGET of ids outside the set only: each gets the sentinel, without Redis.
  ASSERT_GE(rejected_keys.size(), 2U);
  const long long mget = calls("mget");
  EXPECT_EQ(c.run({"MGET", rejected_keys[0], rejected_keys[1]}),
            std::string("[") + kSentinel + ", " + kSentinel + "]");
  EXPECT_EQ(calls("mget") - mget, 0);

  // Keys under the rule without an id pass through.
  before = calls("get");
  EXPECT_EQ(c.run({"GET", "products:list"}), "$all");
  EXPECT_EQ(c.run({"GET", "productX"}), "(nil)");
  EXPECT_EQ(calls("get") - before, 2);

  // An id SADDed through the proxy is valid at once, on this connection and any other.
  ASSERT_EQ(c.run({"GET", "product:7777"}), kSentinel);
  Client other(port());
  ASSERT_EQ(c.run({"SADD", "valid:product-ids", "7777"}), ":1");
  EXPECT_EQ(c.run({"GET", "product:7777"}), "(nil)");
  EXPECT_EQ(other.run({"GET", "product:7777"}), "(nil)");
  // The channel reported the set changed: the filter reloads it.
  wait_trusted(5s);
  EXPECT_EQ(c.run({"GET", "product:7777"}), "(nil)");

  // An id SADDed directly to Redis: valid through the proxy once the channel told it.
  ASSERT_EQ(c.run({"GET", "product:8888"}), kSentinel);
  Client direct(redis_port());
  ASSERT_EQ(direct.run({"SADD", "valid:product-ids", "8888"}), ":1");
  const auto t0 = SteadyClock::now();
  std::string last;
  EXPECT_TRUE(wait_until(
      [&] {
        last = c.run({"GET", "product:8888"});
        return last != kSentinel;
      },
      1000ms))
      << "product:8888 still " << last << " 1 s after its id was added directly";
  const long long seen_ms = ms_since(t0);
  EXPECT_EQ(last, "(nil)");
  // And for good: the reload that follows read it from the set.
  wait_trusted(5s);
  for (int i = 0; i < 10; ++i) EXPECT_EQ(c.run({"GET", "product:8888"}), "(nil)");
  EXPECT_EQ(c.run({"GET", "product:5000"}), out_replies[0]);  // the others still ruled out
  std::cout << "[ measured ] source: set: an id added directly was valid through the proxy "
               "after "
            << seen_ms << " ms\n";
}

// ================================================================================== memory

TEST_F(BloomTest, MemoryIsCloseToTheTheoreticalOptimum) {
  start(R"(
rules:
  - match: "*"
    bloom: {expected_keys: 10000000, false_positive_rate: 0.01}
)");
  // m = -n ln p / (ln 2)^2 bits for n = 10M, p = 1 %.
  const double n = 10000000;
  const double optimum = std::ceil(-n * std::log(0.01) / (std::log(2.0) * std::log(2.0))) / 8;
  ASSERT_NEAR(optimum, 11981323, 1);
  const double bytes = metric(*proxy_, kMemory);
  EXPECT_GE(bytes, optimum * 0.9);
  EXPECT_LE(bytes, optimum * 1.1);
  std::cout << "[ measured ] 10,000,000 keys at 1 %: " << static_cast<long long>(bytes)
            << " bytes, " << 100.0 * (bytes / optimum - 1) << " % over the optimum of "
            << static_cast<long long>(optimum) << "\n";
}

// ================================================================================== resize

TEST_F(BloomTest, AFilterPastItsCapacityIsRebuiltLarger) {
  start(R"(
rules:
  - match: "*"
    bloom: {expected_keys: 1000}
)");
  const double small = metric(*proxy_, kMemory);
  const std::vector<std::string> keys = numbered("grow:", 0, 5000);
  const auto t0 = SteadyClock::now();
  {
    Client c(port());
    set_all(c, keys);
  }
  // The maintenance tick (every 5 s) sees about 5,000 keys in a filter for 1,000.
  EXPECT_GE(metric_reaches(*proxy_, passes("resize"), 1, 15s), 1);
  const long long resized_ms = ms_since(t0);
  const double large = metric(*proxy_, kMemory);
  // Sized for twice the estimate (about 10,000 keys): about ten times the memory.
  EXPECT_GE(large, 8 * small);

  Client c(port());
  EXPECT_TRUE(all_values(keys, gets(c, keys)));
  const std::vector<std::string> absent = numbered("grow:absent:", 0, 1000);
  const long long before = calls("get");
  const std::vector<std::string> replies = gets(c, absent);
  const long long upstream = calls("get") - before;
  std::string wrong;
  EXPECT_EQ(count_not(replies, "(nil)", &wrong), 0) << wrong;
  EXPECT_LE(upstream, 15 + 10);
  std::cout << "[ measured ] resize " << resized_ms << " ms after the writes; memory "
            << static_cast<long long>(small) << " -> " << static_cast<long long>(large)
            << " bytes; " << upstream << " of 1000 absent GETs reached Redis after it\n";
}

// ================================================================================= rebuild

TEST_F(BloomTest, ARebuildShedsKeysDeletedDirectly) {
  start(R"(
rules:
  - match: "*"
    bloom: {rebuild_interval: 1s}
coherence: {warmup_keys_per_second: 0}
)");
  const std::vector<std::string> keys = numbered("gone:", 0, 1000);
  Client c(port());
  set_all(c, keys);
  EXPECT_TRUE(all_values(keys, gets(c, keys)));

  const double rebuilds_before_del = metric(*proxy_, passes("rebuild"));
  {
    Client direct(redis_port());
    std::vector<std::string> del = {"DEL"};
    del.insert(del.end(), keys.begin(), keys.end());
    ASSERT_EQ(direct.run(del), ":1000");
  }
  // Read after the DEL: the first rebuild to end after this may have begun before the DEL,
  // the second began after it (and after the DEL's invalidations, which add the keys again).
  const double rebuilds = metric(*proxy_, passes("rebuild"));

  // Until then the filter still holds the keys: their GETs reach Redis.
  long long before = calls("get");
  std::vector<std::string> replies = gets(c, keys);
  long long upstream = calls("get") - before;
  std::string wrong;
  EXPECT_EQ(count_not(replies, "(nil)", &wrong), 0) << wrong;
  if (metric(*proxy_, passes("rebuild")) == rebuilds_before_del) {
    EXPECT_EQ(upstream, 1000) << "no rebuild ended, yet the filter forgot keys";
  }
  const long long upstream_before_rebuild = upstream;

  const auto t0 = SteadyClock::now();
  EXPECT_GE(metric_reaches(*proxy_, passes("rebuild"), rebuilds + 2, 15s), rebuilds + 2);
  const long long rebuilt_ms = ms_since(t0);

  before = calls("get");
  replies = gets(c, keys);
  upstream = calls("get") - before;
  EXPECT_EQ(count_not(replies, "(nil)", &wrong), 0) << wrong;
  EXPECT_LE(upstream, 15);
  std::cout << "[ measured ] GETs of the 1000 deleted keys reaching Redis: "
            << upstream_before_rebuild << " before the rebuilds, " << upstream
            << " after; two rebuilds after the DEL took " << rebuilt_ms << " ms\n";
}

}  // namespace
}  // namespace rgtest
