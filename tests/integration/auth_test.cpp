// Client authentication and ACL (issue 9, docs/security.md): the proxy's own users (auth.users),
// proven against a real redis-server 7 that has the same ACL users: every reply a client gets
// from the proxy (NOAUTH, WRONGPASS, NOPERM, the pre-auth protocol errors) is compared with what
// Redis itself answers for the same user and command. The upstream has a password of its own,
// which clients never learn: the proxy's connections use it.
#include <dirent.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "../../include/respguard/common/errors.hpp"
#include "harness.hpp"

namespace rgtest {
namespace {

namespace errors = respguard::errors;

// The passwords' SHA-256 (echo -n app-secret | sha256sum), as auth.users holds them.
const std::map<std::string, std::string> kHashes = {
    {"app-secret", "6c904c5190e8b45c2f0af062eefdb2f5b41ce3809b0e6b5bc50aafdd60b290d8"},
    {"ops-secret", "32323cfa9ec9d62750daad0836a4cf3d7b60d23723b7852a529667deed01669f"},
    {"default-secret", "0a9f34c448a4bb29e6f296695654e31d047d2e886791dfd83c120f848b518065"}};
std::string sha256_hex(const std::string& password) {
  return kHashes.at(password);
}

const std::string kUpstreamPassword = "up-secret";
const std::string kAppRules = "+@read +@write -@dangerous ~app:*";
const std::string kOpsRules = "+@all -flushall -config|set ~* &news.*";
const std::string kNoAuth = "-" + std::string(errors::kNoAuth);
const std::string kWrongPass = "-" + std::string(errors::kWrongPass);

std::string proxy_config(unsigned max_failures) {
  std::ostringstream out;
  out << "upstream:\n  password: " << kUpstreamPassword << "\n"
      << "auth:\n  users:\n"
      << "    - name: app\n      password_sha256: " << sha256_hex("app-secret") << "\n"
      << "      rules: \"" << kAppRules << "\"\n"
      << "    - name: ops\n      password_sha256: " << sha256_hex("ops-secret") << "\n"
      << "      rules: \"" << kOpsRules << "\"\n"
      << "    - name: default\n      password_sha256: " << sha256_hex("default-secret") << "\n"
      << "      rules: \"+@all ~* &*\"\n"
      << "  max_failures_per_second: " << max_failures << "\n";
  return out.str();
}

// The resident set of the respguard process listening on `port`, in kB (0 when not found).
long proxy_rss_kb(int port) {
  const std::string listen = "127.0.0.1:" + std::to_string(port);
  DIR* proc = opendir("/proc");
  if (proc == nullptr) return 0;
  long rss = 0;
  while (dirent* e = readdir(proc)) {
    const std::string pid = e->d_name;
    if (pid.empty() || pid.find_first_not_of("0123456789") != std::string::npos) continue;
    std::ifstream cmdline("/proc/" + pid + "/cmdline");
    std::string args((std::istreambuf_iterator<char>(cmdline)), std::istreambuf_iterator<char>());
    if (args.find("respguard") == std::string::npos ||
        args.find(std::string("--listen") + '\0' + listen + '\0') == std::string::npos) {
      continue;
    }
    std::ifstream status("/proc/" + pid + "/status");
    for (std::string line; std::getline(status, line);) {
      if (line.starts_with("VmRSS:")) rss = std::stol(line.substr(6));
    }
  }
  closedir(proc);
  return rss;
}

class AuthTest : public ::testing::Test {
 protected:
  void SetUp() override { start(1000); }

  void start(unsigned max_failures) {
    SKIP_IN_DIRECT_MODE("the proxy's own users");
    proxy_.reset();
    redis_ = std::make_unique<RedisServer>();
    // Set after start: the harness waits for a PONG, which a password would turn into NOAUTH.
    ASSERT_EQ(redis_cli(redis_->port(), {"CONFIG", "SET", "requirepass", kUpstreamPassword}), "OK");
    // The same users in Redis itself, to compare the replies with.
    for (const auto& [name, password, rules] :
         {std::tuple{"app", "app-secret", kAppRules}, std::tuple{"ops", "ops-secret", kOpsRules}}) {
      std::vector<std::string> args = {"-a", kUpstreamPassword, "--no-auth-warning",
                                       "ACL",  "SETUSER",         name,
                                       "on",   std::string(">") + password};
      std::istringstream words(rules);
      for (std::string w; words >> w;) args.push_back(w);
      ASSERT_EQ(redis_cli(redis_->port(), args), "OK");
    }
    ProxyOptions options;
    options.config_yaml = proxy_config(max_failures);
    proxy_ = std::make_unique<ProxyServer>(redis_->port(), options);
  }

  // The same command as `user` on Redis and through the proxy: the replies must be equal.
  void expect_same(Client& direct, Client& via, const std::vector<std::string>& command) {
    const std::string from_redis = direct.run(command);
    const std::string from_proxy = via.run(command);
    std::string joined;
    for (const std::string& a : command) joined += a + " ";
    EXPECT_EQ(from_proxy, from_redis) << joined;
  }

  std::unique_ptr<RedisServer> redis_;  // destroyed after the proxy
  std::unique_ptr<ProxyServer> proxy_;
};

TEST_F(AuthTest, NothingButTheNoAuthCommandsBeforeAuth) {
  Client via(proxy_->port());
  Client direct(redis_->port());
  for (const std::vector<std::string>& command :
       {std::vector<std::string>{"GET", "app:1"}, {"PING"}, {"SET", "app:1", "v"}, {"ACL", "WHOAMI"},
        {"CONFIG", "GET", "maxmemory"}}) {
    expect_same(direct, via, command);
  }
  EXPECT_EQ(via.run({"GET", "app:1"}), kNoAuth);
  // The upstream's password is not a client password here.
  EXPECT_EQ(via.run({"AUTH", kUpstreamPassword}), kWrongPass);
  EXPECT_EQ(via.run({"GET", "app:1"}), kNoAuth);
}

TEST_F(AuthTest, AuthUserPasswordAndPasswordAlone) {
  Client via(proxy_->port());
  EXPECT_EQ(via.run({"AUTH", "app", "app-secret"}), "+OK");
  EXPECT_EQ(via.run({"SET", "app:1", "v"}), "+OK");
  EXPECT_EQ(via.run({"GET", "app:1"}), "$v");
  EXPECT_EQ(via.run({"GET", "other"}),
            "-NOPERM this user has no permissions to access one of the keys used as arguments");
  // AUTH <password> is the user "default".
  EXPECT_EQ(via.run({"AUTH", "default-secret"}), "+OK");
  EXPECT_EQ(via.run({"ACL", "WHOAMI"}), "$default");
  EXPECT_EQ(via.run({"GET", "other"}), "(nil)");
  // A failed AUTH leaves the client as it was; RESET logs it out.
  EXPECT_EQ(via.run({"AUTH", "app", "wrong"}), kWrongPass);
  EXPECT_EQ(via.run({"ACL", "WHOAMI"}), "$default");
  EXPECT_EQ(via.run({"RESET"}), "+RESET");
  EXPECT_EQ(via.run({"GET", "other"}), kNoAuth);
}

TEST_F(AuthTest, Hello3Auth) {
  RawSocket raw(proxy_->port());
  ASSERT_TRUE(raw.send("*5\r\n$5\r\nHELLO\r\n$1\r\n3\r\n$4\r\nAUTH\r\n$3\r\nops\r\n$5\r\nwrong\r\n"));
  EXPECT_EQ(raw.read_message(), kWrongPass + "\r\n");
  ASSERT_TRUE(
      raw.send("*5\r\n$5\r\nHELLO\r\n$1\r\n3\r\n$4\r\nAUTH\r\n$3\r\nops\r\n$10\r\nops-secret\r\n"));
  const std::string hello = raw.read_message();
  EXPECT_TRUE(hello.starts_with("%7\r\n")) << hello;
  ASSERT_TRUE(raw.send("*2\r\n$3\r\nGET\r\n$7\r\nnothing\r\n"));
  EXPECT_EQ(raw.read_message(), "_\r\n");  // RESP3 null: authenticated, RESP3
  ASSERT_TRUE(raw.send("*2\r\n$3\r\nACL\r\n$6\r\nWHOAMI\r\n"));
  EXPECT_EQ(raw.read_message(), "$3\r\nops\r\n");
}

TEST_F(AuthTest, WrongPassIsRedisText) {
  Client via(proxy_->port());
  Client direct(redis_->port());
  expect_same(direct, via, {"AUTH", "app", "nope"});
  expect_same(direct, via, {"AUTH", "nobody", "app-secret"});
  expect_same(direct, via, {"HELLO", "2", "AUTH", "app", "nope"});
  EXPECT_EQ(via.run({"AUTH", "app", "nope"}), kWrongPass);
  EXPECT_EQ(metric_becomes(*proxy_, "respguard_auth_failures_total{reason=\"wrong_password\"}", 4),
            4);
}

// Before AUTH a request may have at most 10 arguments of at most 16384 bytes (Redis 7's rule):
// a header announcing a 512 MB bulk (the most proto_max_bulk_len allows) is refused at once,
// nothing of it is allocated, the connection closes. 1 GB is over proto_max_bulk_len: "invalid
// bulk length" for everyone, authenticated or not, as in Redis.
TEST_F(AuthTest, BigRequestBeforeAuthClosesAtOnce) {
  const long rss_before = proxy_rss_kb(proxy_->port());
  ASSERT_GT(rss_before, 0);
  for (int port : {redis_->port(), proxy_->port()}) {
    RawSocket raw(port);
    ASSERT_TRUE(raw.send("*2\r\n$4\r\nAUTH\r\n$536870912\r\n"));
    EXPECT_EQ(raw.read_message(2s), "-ERR Protocol error: unauthenticated bulk length\r\n")
        << port;
    EXPECT_TRUE(raw.wait_closed(2s)) << port;
    RawSocket many(port);
    ASSERT_TRUE(many.send("*11\r\n"));
    EXPECT_EQ(many.read_message(2s), "-ERR Protocol error: unauthenticated multibulk length\r\n")
        << port;
    EXPECT_TRUE(many.wait_closed(2s)) << port;
    RawSocket huge(port);
    ASSERT_TRUE(huge.send("*2\r\n$4\r\nAUTH\r\n$1073741824\r\n"));
    EXPECT_EQ(huge.read_message(2s), "-ERR Protocol error: invalid bulk length\r\n") << port;
    EXPECT_TRUE(huge.wait_closed(2s)) << port;
  }
  // Many such headers at once, each followed by as much data as the socket takes.
  std::vector<std::unique_ptr<RawSocket>> peers;
  for (int i = 0; i < 50; ++i) {
    peers.push_back(std::make_unique<RawSocket>(proxy_->port()));
    peers.back()->send("*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$536870912\r\n" + std::string(60000, 'x'));
  }
  for (auto& p : peers) EXPECT_TRUE(p->wait_closed(5s));
  const long rss_after = proxy_rss_kb(proxy_->port());
  std::cout << "[ measured ] proxy VmRSS before " << rss_before << " kB, after 51 pre-auth "
            << "512 MB bulk headers " << rss_after << " kB\n";
  EXPECT_LT(rss_after - rss_before, 16 * 1024);
  // Authenticated, the ordinary limits apply again.
  Client via(proxy_->port());
  ASSERT_EQ(via.run({"AUTH", "app", "app-secret"}), "+OK");
  EXPECT_EQ(via.run({"SET", "app:big", std::string(100000, 'v')}), "+OK");
  EXPECT_EQ(via.run({"STRLEN", "app:big"}), ":100000");
}

// The NOPERM replies are those of Redis 7 for the same user and rules, command by command
// (each command runs on Redis first, then through the proxy: only commands whose second run
// answers as the first).
TEST_F(AuthTest, AclRepliesMatchRedis) {
  for (const auto& [user, password] :
       {std::pair<std::string, std::string>{"app", "app-secret"}, {"ops", "ops-secret"}}) {
    Client via(proxy_->port());
    Client direct(redis_->port());
    ASSERT_EQ(via.run({"AUTH", user, password}), "+OK");
    ASSERT_EQ(direct.run({"AUTH", user, password}), "+OK");
    for (const std::vector<std::string>& command : std::vector<std::vector<std::string>>{
             {"SET", "app:1", "v"},
             {"GET", "app:1"},
             {"GET", "other"},
             {"SET", "other", "v"},
             {"MGET", "app:1", "other"},
             {"MSET", "app:1", "x", "app:2", "y"},
             {"MSET", "app:1", "x", "other", "y"},
             {"DEL", "missing"},
             {"FLUSHALL"},
             {"KEYS", "*"},
             {"CONFIG", "SET", "maxmemory-policy", "noeviction"},
             {"CLIENT", "NO-EVICT", "on"},
             {"ACL", "WHOAMI"},
             {"EVAL", "return 1", "1", "other"},
             {"PUBLISH", "news.a", "m"},
             {"PUBLISH", "other", "m"},
             {"OBJECT", "ENCODING", "app:1"},
             {"OBJECT", "ENCODING", "other"},
             {"SORT_RO", "app:l", "BY", "w_*"},
             {"SORT_RO", "app:l", "GET", "#"},
             {"ZUNION", "2", "app:z", "other"},
             {"XREAD", "STREAMS", "app:s", "other", "0", "0"},
             {"DBSIZE"},
         }) {
      expect_same(direct, via, command);
    }
  }
}

TEST_F(AuthTest, FailedAuthsAreCountedAndLimited) {
  start(2);  // two failures a second, all clients together
  Client a(proxy_->port());
  Client b(proxy_->port());
  EXPECT_EQ(a.run({"AUTH", "app", "x"}), kWrongPass);
  EXPECT_EQ(b.run({"AUTH", "app", "y"}), kWrongPass);
  // Over the limit even the right password is refused, unchecked, on any connection.
  EXPECT_EQ(a.run({"AUTH", "app", "app-secret"}), kWrongPass);
  EXPECT_EQ(a.run({"GET", "app:1"}), kNoAuth);
  EXPECT_EQ(metric_becomes(*proxy_, "respguard_auth_failures_total{reason=\"wrong_password\"}", 2),
            2);
  EXPECT_EQ(metric_becomes(*proxy_, "respguard_auth_failures_total{reason=\"rate_limited\"}", 1),
            1);
  // One failure's worth of time later (500 ms), a right password works; successes cost nothing.
  std::this_thread::sleep_for(600ms);
  EXPECT_EQ(a.run({"AUTH", "app", "app-secret"}), "+OK");
  for (int i = 0; i < 20; ++i) ASSERT_EQ(b.run({"AUTH", "app", "app-secret"}), "+OK") << i;
}

}  // namespace
}  // namespace rgtest
