// Failures around the proxy: the upstream dies, hangs or is not there yet; the proxy is told
// to stop. Each test has its own redis-server and proxy, since it breaks them.
#include <csignal>

#include "../../include/respguard/common/errors.hpp"
#include "harness.hpp"

namespace {

using namespace rgtest;
namespace errors = respguard::errors;
using Clock = std::chrono::steady_clock;

// Short timeouts, so a failure shows up in a second rather than in the 5 s default, and a short
// reconnect backoff, so recovery is noticed well within the tests' 5 s.
constexpr const char* kFastTimeouts =
    "upstream:\n"
    "  request_timeout: 1s\n"
    "  connect_timeout: 500ms\n"
    "  reconnect_backoff_max: 500ms\n";
// request_timeout plus room for a loaded CI machine; far below the clients' 10 s I/O timeout.
constexpr Millis kErrorWithin = 3000ms;

class Faults : public ::testing::Test {
 protected:
  void SetUp() override { SKIP_IN_DIRECT_MODE("failure handling is the proxy's own"); }

  void start() {
    redis_ = std::make_unique<RedisServer>();
    proxy_ = std::make_unique<ProxyServer>(redis_->port(), ProxyOptions{kFastTimeouts, {}});
  }

  // Sends one command; expects an error reply (not a hang, not a closed connection) in time.
  static void expect_prompt_error(Client& client, const std::vector<std::string>& args) {
    auto start = Clock::now();
    Reply reply = client.command(args);
    auto elapsed = Clock::now() - start;
    ASSERT_TRUE(reply) << "no reply; the client connection must survive: " << client.error();
    EXPECT_EQ(reply->type, REDIS_REPLY_ERROR) << text(reply);
    EXPECT_LT(elapsed, kErrorWithin);
  }

  std::unique_ptr<RedisServer> redis_;
  std::unique_ptr<ProxyServer> proxy_;
};

TEST_F(Faults, UpstreamKilledGivesErrorRepliesThenRecoversAfterRestart) {
  start();
  Client c(proxy_->port());
  ASSERT_EQ(c.run({"SET", "k", "before"}), "+OK");

  redis_->kill();
  for (int i = 0; i < 3; ++i) expect_prompt_error(c, {"GET", "k"});

  redis_->restart();  // same port, empty data set
  // The same client connection works again once the proxy has reconnected (with backoff).
  bool recovered = wait_until([&] { return c.run({"SET", "k", "after"}) == "+OK"; }, 5000ms);
  EXPECT_TRUE(recovered) << "last reply: " << c.run({"SET", "k", "after"});
  Client direct(redis_->port());
  EXPECT_EQ(direct.run({"GET", "k"}), "$after");
}

TEST_F(Faults, UpstreamHangingGivesTimeoutErrorAndNoStaleReplyAfterwards) {
  start();
  // Key i holds value-i, so every reply says which request it answers.
  std::vector<std::string> mset = {"MSET"};
  constexpr int kKeys = 1000;
  for (int i = 0; i < kKeys; ++i) {
    mset.push_back("key:" + std::to_string(i));
    mset.push_back("value-" + std::to_string(i));
  }
  Client direct(redis_->port());
  ASSERT_EQ(direct.run(mset), "+OK");
  Client c(proxy_->port());
  ASSERT_EQ(c.run({"GET", "key:0"}), "$value-0");

  redis_->pause();
  auto start = Clock::now();
  EXPECT_EQ(c.run({"GET", "key:1"}), "-" + std::string(errors::kUpstreamTimeout));
  EXPECT_LT(Clock::now() - start, kErrorWithin);
  redis_->resume();  // Redis now answers the GET that timed out: nobody may receive that reply

  int next = 2;
  std::string misordered;
  auto probe = [&] {
    std::string key = std::to_string(next);
    std::string reply = c.run({"GET", "key:" + key});
    ++next;
    if (reply == "$value-" + key) return true;
    if (reply[0] != '-') misordered = "GET key:" + key + " -> " + reply;
    return !misordered.empty() || next >= kKeys;
  };
  EXPECT_TRUE(wait_until(probe, 5000ms)) << "no successful GET within 5 s after resume";
  ASSERT_EQ(misordered, "") << "neither the value nor an error: a reply that belongs to another "
                               "request, or a lost connection";
  for (int i = 0; i < 20 && next < kKeys; ++i, ++next) {
    EXPECT_EQ(c.run({"GET", "key:" + std::to_string(next)}), "$value-" + std::to_string(next));
  }
}

TEST_F(Faults, UpstreamDownAtStartGivesErrorsUntilItAppears) {
  int upstream_port = free_port();
  proxy_ = std::make_unique<ProxyServer>(upstream_port, ProxyOptions{kFastTimeouts, {}});
  Client c(proxy_->port());
  expect_prompt_error(c, {"GET", "k"});

  redis_ = std::make_unique<RedisServer>(std::vector<std::string>{}, upstream_port);
  bool recovered = wait_until([&] { return c.run({"SET", "k", "v"}) == "+OK"; }, 5000ms);
  EXPECT_TRUE(recovered) << "last reply: " << c.run({"SET", "k", "v"});
}

TEST_F(Faults, SigtermWithIdleClientsExitsZeroQuickly) {
  start();
  std::vector<std::unique_ptr<Client>> idle;
  for (int i = 0; i < 3; ++i) {
    idle.push_back(std::make_unique<Client>(proxy_->port()));
    ASSERT_EQ(idle.back()->run({"PING"}), "+PONG");
  }
  // Idle clients have nothing in flight, so they must not hold the shutdown for its grace
  // period (10 s by default).
  EXPECT_EQ(proxy_->stop(5000ms), 0)
      << "-1: still running 5 s after SIGTERM; 128+N: ended by signal N";
  for (auto& client : idle) {
    EXPECT_EQ(client->command({"PING"}), nullptr) << "connection still open after exit";
  }
}

TEST_F(Faults, SigtermMidPipelineDeliversEveryReplyBeforeExit) {
  start();
  auto c = std::make_unique<Client>(proxy_->port());
  ASSERT_EQ(c->run({"PING"}), "+PONG");
  constexpr int kCommands = 1000;
  for (int i = 0; i < kCommands; ++i) c->append({"INCR", "counter"});
  // All 1000 requests (~30 KB) are in the proxy's socket before the signal is sent.
  ASSERT_TRUE(c->flush()) << c->error();
  proxy_->signal(SIGTERM);

  for (int i = 1; i <= kCommands; ++i) {
    ASSERT_EQ(text(c->get_reply()), ":" + std::to_string(i))
        << "reply " << i << " of " << kCommands << "; " << c->error();
  }
  Client direct(redis_->port());
  EXPECT_EQ(direct.run({"GET", "counter"}), "$" + std::to_string(kCommands));

  c.reset();
  EXPECT_EQ(proxy_->wait_exit(15000ms), std::optional<int>(0));
}

}  // namespace
