// Hot reload (docs/operations.md, "Reloading the configuration") against a real redis-server:
// SIGHUP and POST /reload change rate limits, the guard and users for clients that stay
// connected; an invalid file changes nothing and is counted; options that need a restart keep
// their running values and are named.
#include <csignal>
#include <fstream>
#include <string>

#include "harness.hpp"

namespace rgtest {
namespace {

using namespace std::chrono_literals;

const std::string kSuccess = "respguard_config_reloads_total{result=\"success\"}";
const std::string kFailure = "respguard_config_reloads_total{result=\"failure\"}";
// echo -n app-secret | sha256sum (as in auth_test.cpp)
const std::string kAppHash = "6c904c5190e8b45c2f0af062eefdb2f5b41ce3809b0e6b5bc50aafdd60b290d8";

class ReloadTest : public ::testing::Test {
 protected:
  void SetUp() override { SKIP_IN_DIRECT_MODE("reloading is the proxy's"); }
  void start(const std::string& yaml) {
    redis_ = std::make_unique<RedisServer>();
    proxy_ = std::make_unique<ProxyServer>(redis_->port(), ProxyOptions{yaml, {}});
  }
  void rewrite(const std::string& yaml) { std::ofstream(proxy_->config_path()) << yaml; }
  // SIGHUP, then wait for the reload to be counted (`result` success or failure).
  void sighup(const std::string& series, double expected) {
    proxy_->signal(SIGHUP);
    ASSERT_EQ(metric_becomes(*proxy_, series, expected), expected);
  }
  int post_reload(std::string* body) {
    int status = 0;
    *body = http_request(proxy_->admin_port(), "POST", "/reload", &status);
    return status;
  }
  // `n` pipelined GETs; how many were refused by the rate limit.
  static int rate_limited(Client& c, int n) {
    for (int i = 0; i < n; ++i) c.append({"GET", "k"});
    EXPECT_TRUE(c.flush());
    int refused = 0;
    for (int i = 0; i < n; ++i) {
      const std::string r = text(c.get_reply().get());
      if (r.starts_with("-ERR rate limit exceeded")) {
        ++refused;
      } else {
        EXPECT_EQ(r, "$v");
      }
    }
    return refused;
  }

  std::unique_ptr<RedisServer> redis_;  // destroyed after the proxy
  std::unique_ptr<ProxyServer> proxy_;
};

const std::string kGenerous = "rate_limit:\n  rate: 100000\n  burst: 100000\n";
// Every client here is 127.0.0.1 (one bucket, shared with the harness's start-up PINGs).
const std::string kTight = "rate_limit:\n  rate: 1\n  burst: 5\n";

TEST_F(ReloadTest, SighupChangesTheRateLimitOfAConnectedClient) {
  start(kGenerous);
  Client c(proxy_->port());
  ASSERT_EQ(c.run({"SET", "k", "v"}), "+OK");
  ASSERT_EQ(c.run({"CLIENT", "SETNAME", "kept"}), "+OK");
  EXPECT_EQ(rate_limited(c, 50), 0);

  rewrite(kTight);
  sighup(kSuccess, 1);
  // The same connection: at most the new burst (5) of 50 gets through.
  EXPECT_GE(rate_limited(c, 50), 45);

  // And back: the limit is lifted for the same client, on the same connection.
  rewrite(kGenerous);
  sighup(kSuccess, 2);
  EXPECT_EQ(rate_limited(c, 50), 0);
  EXPECT_EQ(c.run({"CLIENT", "GETNAME"}), "$kept") << "the connection was not replaced";
  EXPECT_EQ(metric(*proxy_, kFailure), 0);
}

TEST_F(ReloadTest, InvalidConfigKeepsTheRunningOneAndIsCounted) {
  start(kTight);
  ASSERT_EQ(Client(redis_->port()).run({"SET", "k", "v"}), "+OK");
  Client c(proxy_->port());

  rewrite("rate_limit:\n  rate: lots\n");  // not a number
  sighup(kFailure, 1);
  EXPECT_NE(proxy_->log().find("configuration reload (SIGHUP) failed; the running configuration "
                               "stays: "),
            std::string::npos)
      << proxy_->log();
  EXPECT_NE(proxy_->log().find("rate_limit.rate"), std::string::npos) << proxy_->log();
  EXPECT_GE(rate_limited(c, 20), 14) << "the old limit still holds";

  // Broken YAML, an unknown key, a bad ACL rule: each refused the same way, over HTTP too.
  std::string body;
  rewrite("rate_limit: [\n");
  EXPECT_EQ(post_reload(&body), 400);
  EXPECT_TRUE(body.starts_with("reload failed, the running configuration stays: ")) << body;
  rewrite("rate_limit:\n  rte: 5\n");
  EXPECT_EQ(post_reload(&body), 400);
  EXPECT_NE(body.find("did you mean"), std::string::npos) << body;
  rewrite("auth:\n  users:\n    - name: app\n      password_sha256: " + kAppHash +
          "\n      rules: \"+@raed\"\n");
  EXPECT_EQ(post_reload(&body), 400);
  EXPECT_NE(body.find("@raed"), std::string::npos) << body;
  EXPECT_EQ(metric(*proxy_, kFailure), 4);
  EXPECT_EQ(metric(*proxy_, kSuccess), 0);
  EXPECT_GE(rate_limited(c, 20), 18);
  EXPECT_TRUE(c.connected()) << "no client was dropped";
}

TEST_F(ReloadTest, PostReloadChangesTheGuardAndReportsRestartOnlyKeys) {
  start("log_level: warn\n");
  Client c(proxy_->port());
  ASSERT_EQ(c.run({"SET", "k", "v"}), "+OK");
  EXPECT_EQ(c.run({"KEYS", "*"}), "[$k]");

  // GET on the admin port is not a reload.
  int status = 0;
  http_get(proxy_->admin_port(), "/reload", &status);
  EXPECT_EQ(status, 405);

  rewrite(
      "log_level: warn\nguard:\n  profile: production\nupstream:\n  connections_per_worker: 3\n");
  std::string body;
  ASSERT_EQ(post_reload(&body), 200) << body;
  EXPECT_EQ(body,
            "configuration reloaded: applied guard.profile; these keep their running values "
            "until a restart: upstream.connections_per_worker\n");
  EXPECT_EQ(c.run({"KEYS", "*"}).substr(0, 37), "-ERR KEYS is denied by respguard (gua");
  EXPECT_EQ(c.run({"GET", "k"}), "$v");
  EXPECT_EQ(commandstat_calls(redis_->port(), "keys"), 1);

  // Reloading the same file again changes nothing.
  ASSERT_EQ(post_reload(&body), 200) << body;
  EXPECT_EQ(body.substr(0, 54), "configuration reloaded: nothing changed; these keep th");
}

std::string users_yaml(const std::string& app_rules, bool with_app = true) {
  std::string yaml = "auth:\n  users:\n";
  if (with_app) {
    yaml += "    - name: app\n      password_sha256: " + kAppHash + "\n      rules: \"" +
            app_rules + "\"\n";
  }
  // ops: same password, every command and key.
  yaml += "    - name: ops\n      password_sha256: " + kAppHash + "\n      rules: \"+@all ~*\"\n";
  return yaml;
}

// As ACL SETUSER in Redis: new rules apply to clients already logged in as the user; as ACL
// DELUSER: a removed user's clients are disconnected.
TEST_F(ReloadTest, UsersChangeForLoggedInClients) {
  start(users_yaml("+@read +@write ~app:*"));
  Client app(proxy_->port());
  ASSERT_EQ(app.run({"AUTH", "app", "app-secret"}), "+OK");
  Client ops(proxy_->port());
  ASSERT_EQ(ops.run({"AUTH", "ops", "app-secret"}), "+OK");
  ASSERT_EQ(app.run({"SET", "app:1", "v"}), "+OK");

  rewrite(users_yaml("+@read +@transaction ~app:*"));
  sighup(kSuccess, 1);
  EXPECT_EQ(app.run({"SET", "app:1", "w"}),
            "-NOPERM this user has no permissions to run the 'set' command");
  EXPECT_EQ(app.run({"GET", "app:1"}), "$v");

  // Refused inside MULTI, as in Redis: EXEC aborts.
  EXPECT_EQ(app.run({"MULTI"}), "+OK");
  EXPECT_EQ(app.run({"SET", "app:1", "w"}),
            "-NOPERM this user has no permissions to run the 'set' command");
  EXPECT_EQ(app.run({"EXEC"}), "-EXECABORT Transaction discarded because of previous errors.");

  rewrite(users_yaml("", /*with_app=*/false));
  sighup(kSuccess, 2);
  EXPECT_TRUE(app.run({"GET", "app:1"}).starts_with("(no reply")) << "app was disconnected";
  EXPECT_EQ(ops.run({"GET", "app:1"}), "$v") << "ops stays";
  Client again(proxy_->port());
  EXPECT_EQ(again.run({"AUTH", "app", "app-secret"}),
            "-WRONGPASS invalid username-password pair or user is disabled.");
}

}  // namespace
}  // namespace rgtest
