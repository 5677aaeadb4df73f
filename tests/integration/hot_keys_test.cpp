// Hot keys (docs/security.md, "Command guard") against a real redis-server: a skewed workload
// through the proxy's two workers shows its hottest keys, in order, in
// respguard_hot_key_requests_per_second{rank,key} and in the log; never more than top_n series.
#include <algorithm>
#include <cmath>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "harness.hpp"

namespace rgtest {
namespace {

using namespace std::chrono_literals;

class HotKeysTest : public ::testing::Test {
 protected:
  void SetUp() override { SKIP_IN_DIRECT_MODE("hot keys are the proxy's"); }
  void start(const std::string& yaml) {
    redis_ = std::make_unique<RedisServer>();
    // The hot-keys line is logged at info (the harness's default level is warn).
    proxy_ =
        std::make_unique<ProxyServer>(redis_->port(), ProxyOptions{yaml, {"--log-level", "info"}});
  }
  std::unique_ptr<RedisServer> redis_;  // destroyed after the proxy
  std::unique_ptr<ProxyServer> proxy_;
};

std::string series(int rank, const std::string& key) {
  return "respguard_hot_key_requests_per_second{rank=\"" + std::to_string(rank) + "\",key=\"" +
         key + "\"}";
}

// Rank -> key (as exposed, escapes included) of the hot-key series in a scrape.
std::map<int, std::string> ranks(const Samples& s) {
  std::map<int, std::string> out;
  const std::string prefix = "respguard_hot_key_requests_per_second{rank=\"";
  for (const auto& [name, value] : s) {
    if (!name.starts_with(prefix) || !name.ends_with("\"}")) continue;
    const std::size_t rank_end = name.find("\",key=\"");
    if (rank_end == std::string::npos) continue;
    const std::size_t key_start = rank_end + 7;
    out[std::stoi(name.substr(prefix.size(), rank_end - prefix.size()))] =
        name.substr(key_start, name.size() - 2 - key_start);
  }
  return out;
}

// A Zipf(1.2)-like round over 40 keys: key i is requested about 400 / (i+1)^1.2 times, mixed
// GETs and SETs in a shuffled order (so any part of a round, as a report interval may cut it,
// has about the same proportions), pipelined on two connections (one per worker).
void zipf_round(Client& a, Client& b) {
  std::vector<std::string> keys;
  for (int i = 0; i < 40; ++i) {
    const int n = static_cast<int>(400.0 / std::pow(i + 1, 1.2));
    for (int j = 0; j < n; ++j) keys.push_back("hk:" + std::to_string(i));
  }
  static std::mt19937 rng(12345);
  std::shuffle(keys.begin(), keys.end(), rng);
  for (std::size_t j = 0; j < keys.size(); ++j) {
    Client& c = j % 2 ? a : b;
    if (j % 5 == 0) {
      c.append({"SET", keys[j], "v"});
    } else {
      c.append({"GET", keys[j]});
    }
  }
  ASSERT_TRUE(a.flush());
  ASSERT_TRUE(b.flush());
  for (std::size_t j = 0; j < keys.size(); ++j) ASSERT_TRUE((j % 2 ? a : b).get_reply());
}

TEST_F(HotKeysTest, ZipfWorkloadShowsTheHottestKeysInOrder) {
  start(R"(
hot_keys:
  top_n: 3
  sample_every: 1
  report_interval: 200ms
  log_threshold_per_second: 10
)");
  Client a(proxy_->port()), b(proxy_->port());
  // Traffic keeps flowing until a report shows it: each interval's counts start from zero.
  Samples s;
  const bool shown = wait_until(
      [&] {
        zipf_round(a, b);
        s = scrape(*proxy_);
        const auto r = ranks(s);
        return r.size() == 3 && r.at(1) == "hk:0" && r.at(2) == "hk:1" && r.at(3) == "hk:2";
      },
      15s);
  EXPECT_TRUE(shown) << "ranks seen: " << ::testing::PrintToString(ranks(s));
  EXPECT_GT(sample(s, series(1, "hk:0")), sample(s, series(2, "hk:1")));
  EXPECT_GT(sample(s, series(2, "hk:1")), 0);
  EXPECT_TRUE(wait_until(
      [&] { return proxy_->log().find("hot keys over the last") != std::string::npos; }, 5s));
  const std::string log = proxy_->log();
  const std::size_t line = log.find("hot keys over the last");
  ASSERT_NE(line, std::string::npos) << log;
  EXPECT_NE(log.substr(line, log.find('\n', line) - line).find(": hk:0 "), std::string::npos)
      << log.substr(line, 300);
}

TEST_F(HotKeysTest, SampledCountsStillFindTheHottestKey) {
  // The default sampling (1 command in 16): the rates are estimates, the ranking of a clearly
  // hot key is not.
  start(R"(
hot_keys:
  report_interval: 300ms
)");
  Client a(proxy_->port()), b(proxy_->port());
  Samples s;
  const bool shown = wait_until(
      [&] {
        zipf_round(a, b);
        s = scrape(*proxy_);
        const auto r = ranks(s);
        return !r.empty() && r.at(1) == "hk:0";
      },
      15s);
  EXPECT_TRUE(shown) << "ranks seen: " << ::testing::PrintToString(ranks(s));
  EXPECT_LE(ranks(s).size(), 10u);  // top_n's default
}

TEST_F(HotKeysTest, KeysAreShownPrintableAndTheSeriesGoWhenTrafficStops) {
  start(R"(
hot_keys:
  sample_every: 1
  report_interval: 200ms
)");
  Client c(proxy_->port());
  const std::string binary_key = std::string("bin\n\"k\xff", 7);
  Samples s;
  EXPECT_TRUE(wait_until(
      [&] {
        for (int i = 0; i < 200; ++i) c.append({"GET", binary_key});
        EXPECT_TRUE(c.flush());
        for (int i = 0; i < 200; ++i) EXPECT_TRUE(c.get_reply());
        s = scrape(*proxy_);
        return ranks(s).size() == 1;
      },
      10s));
  EXPECT_EQ(ranks(s)[1], "bin\\\\x0a\\\"k\\\\xff") << "escaped as \\x0a, \\xff in the label";
  // No traffic: the next interval has no hot keys, and the series leave the exposition.
  EXPECT_TRUE(wait_until([&] { return ranks(scrape(*proxy_)).empty(); }, 5s));
}

TEST_F(HotKeysTest, DisabledShowsNoSeries) {
  start(R"(
hot_keys:
  enabled: false
  report_interval: 100ms
)");
  Client c(proxy_->port());
  for (int i = 0; i < 500; ++i) ASSERT_EQ(c.run({"GET", "k"}), "(nil)");
  // Several intervals pass; a scrape still shows the family and no series.
  const auto started = std::chrono::steady_clock::now();
  Samples s = scrape_until(
      *proxy_, [&](const Samples&) { return std::chrono::steady_clock::now() - started > 500ms; });
  EXPECT_TRUE(ranks(s).empty());
  EXPECT_FALSE(s.empty()) << "the scrape itself worked";
}

}  // namespace
}  // namespace rgtest
