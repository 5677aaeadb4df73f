// Integration-test harness: real redis-server and respguard processes on free loopback ports,
// a hiredis client, a raw socket for protocol-level checks, and helpers that read Redis's own
// view (INFO) to prove what reached the upstream.
//
// RESPGUARD_TEST_DIRECT=1 makes every "proxy" the redis-server itself, so the tests can be
// validated against real Redis. It is a development aid only; CI never sets it.
#pragma once

#include <hiredis/hiredis.h>
#include <sys/types.h>

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <gtest/gtest.h>

namespace rgtest {

using Millis = std::chrono::milliseconds;
using namespace std::chrono_literals;

bool direct_mode();

// A port nothing listens on right now (bind 127.0.0.1:0, read it, close). Another process may
// take it before we use it; starting a server retries with a new port when that happens.
int free_port();

// Polls `condition` every 10 ms until it holds or `timeout` passes; returns the last result.
bool wait_until(const std::function<bool()>& condition, Millis timeout);

std::string make_temp_dir();  // /tmp/respguard-it-XXXXXX

// A child process started with fork/exec, its stdout and stderr appended to a log file. The
// destructor SIGKILLs it by PID if it still runs, so no test leaves processes behind, even when
// an assertion fails halfway. PR_SET_PDEATHSIG covers the test binary itself being killed.
class ChildProcess {
 public:
  ChildProcess() = default;
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;
  ~ChildProcess() { kill(); }

  void start(const std::vector<std::string>& argv, const std::string& log_path);
  bool running();  // false once it exited (then exit_status() says how)
  void signal(int sig);
  // Waits for the exit; nullopt if it still runs at the deadline.
  std::optional<int> wait_exit(Millis timeout);
  // SIGTERM, then waits; SIGKILL after `timeout`. Returns the exit status (see exit_status()).
  int terminate(Millis timeout);
  void kill();  // SIGKILL and reap
  pid_t pid() const { return pid_; }
  // Exit code when it exited normally, 128 + signal number when a signal ended it, -1 while it
  // runs or was never started.
  int exit_status() const { return status_; }

 private:
  void reap(int wait_status);

  pid_t pid_ = -1;
  int status_ = -1;
};

// redis-server on 127.0.0.1:<port> without persistence, its files in a temp dir.
class RedisServer {
 public:
  // Starts on a free port (port 0) or the given one, and waits until it answers PING.
  explicit RedisServer(std::vector<std::string> extra_args = {}, int port = 0);
  ~RedisServer();

  int port() const { return port_; }
  const std::string& log_path() const { return log_path_; }

  void stop();     // SIGTERM, bounded wait, SIGKILL fallback
  void kill();     // SIGKILL: the upstream vanishes without closing anything gracefully
  void pause();    // SIGSTOP: connections stay open, nothing is answered
  void resume();   // SIGCONT
  void restart();  // stops it if needed and starts it again on the same port

 private:
  bool start_once();

  std::vector<std::string> extra_args_;
  int port_ = 0;
  std::string dir_;
  std::string log_path_;
  ChildProcess process_;
};

struct ProxyOptions {
  std::string config_yaml;  // non-empty: written to <tmp>/respguard.yaml, passed as --config
  std::vector<std::string> extra_args;
  // The config turns TLS on for the listener: startup is awaited on /readyz, not with a
  // plaintext PING (which would count as a failed handshake).
  bool tls_listener = false;
};

// respguard --listen 127.0.0.1:<port> --upstream 127.0.0.1:<upstream> --workers 2 ...
// In direct mode no process runs and port() is the upstream's port.
class ProxyServer {
 public:
  explicit ProxyServer(int upstream_port, ProxyOptions options = {});
  ~ProxyServer();  // kills the process; prints its log when the current test failed

  int port() const { return port_; }
  int admin_port() const { return admin_port_; }  // /metrics, /healthz, /readyz
  const std::string& log_path() const { return log_path_; }
  // Where ProxyOptions::config_yaml was written (rewrite it to test a reload).
  std::string config_path() const { return dir_ + "/respguard.yaml"; }
  std::string log() const;
  void print_log() const;

  void signal(int sig) { process_.signal(sig); }
  std::optional<int> wait_exit(Millis timeout) { return process_.wait_exit(timeout); }
  // SIGTERM and wait (SIGKILL after `timeout`): the exit status, 0 for a clean shutdown.
  int stop(Millis timeout = 15s) { return process_.terminate(timeout); }

 private:
  bool start_once(int upstream_port, const ProxyOptions& options);

  int port_ = 0;
  int admin_port_ = 0;
  std::string dir_;
  std::string log_path_;
  ChildProcess process_;
};

struct ReplyDeleter {
  void operator()(redisReply* reply) const { freeReplyObject(reply); }
};
using Reply = std::unique_ptr<redisReply, ReplyDeleter>;

// A compact, unambiguous text for a reply, to compare whole replies in one EXPECT_EQ:
// "+OK" status, "-ERR ..." error, ":3" integer, "$abc" bulk string, "(nil)", arrays as
// "[$a, :1, (nil)]". A missing reply (I/O error or timeout) is "(no reply)".
std::string text(const redisReply* reply);
inline std::string text(const Reply& reply) {
  return text(reply.get());
}

// hiredis connection. Every read and write has a 10 s socket timeout, so no test hangs.
class Client {
 public:
  explicit Client(int port, Millis timeout = 10s);
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;
  ~Client();

  bool connected() const { return ctx_ != nullptr && ctx_->err == 0; }
  std::string error() const;  // hiredis's error text, empty when none
  redisContext* context() { return ctx_; }

  // One command (binary-safe: arguments are sent with their lengths) and its reply.
  Reply command(const std::vector<std::string>& args);
  // text(command(args)), with the hiredis error appended when there was no reply.
  std::string run(const std::vector<std::string>& args);

  // Pipelining: append many commands, flush() writes them all, then get_reply() once each.
  void append(const std::vector<std::string>& args);
  bool flush();
  Reply get_reply();

 private:
  redisContext* ctx_ = nullptr;
};

// Splits a reply of many commands' worth of elements into texts, e.g. for EXEC results.
std::vector<std::string> element_texts(const redisReply* reply);

// A plain TCP connection for what hiredis 0.14 cannot do: RESP3 replies, inline commands,
// malformed input, watching the server close the connection.
class RawSocket {
 public:
  explicit RawSocket(int port);
  RawSocket(const RawSocket&) = delete;
  RawSocket& operator=(const RawSocket&) = delete;
  ~RawSocket();

  bool connected() const { return fd_ >= 0; }
  bool send(std::string_view bytes);
  // One complete RESP2/RESP3 message, raw bytes included ("+PONG\r\n"); empty on EOF or timeout.
  std::string read_message(Millis timeout = 10s);
  // True when the peer closed the connection (EOF or reset) before the deadline. Data that
  // arrives meanwhile is discarded.
  bool wait_closed(Millis timeout = 5s);

 private:
  int fd_ = -1;
  std::string buffer_;
};

// Size of the first complete RESP message in `bytes`, or 0 while it is incomplete.
std::size_t resp_message_size(std::string_view bytes);

// Redis's own view, read directly from the redis-server (never through the proxy).
std::optional<long long> info_field(int redis_port, const std::string& section,
                                    const std::string& field);
long long commandstat_calls(int redis_port, const std::string& command);  // 0 if never called

// Runs redis-cli -h 127.0.0.1 -p <port> <args...> (bounded by timeout(1)); trimmed stdout.
std::string redis_cli(int port, const std::vector<std::string>& args);

// A blocking HTTP/1.1 GET of http://127.0.0.1:<port><path> (the admin endpoints), bounded by
// `timeout` for connecting, sending and reading. Returns the body; *status is the HTTP status
// code, or -1 when there was no complete response (connection refused, timeout, a body shorter
// than its Content-Length).
std::string http_get(int port, std::string path, int* status, Millis timeout = 5s);
// Any method without a body ("POST /reload").
std::string http_request(int port, std::string_view method, std::string path, int* status,
                         Millis timeout = 5s);
// The status of GET `path` (2 s timeout); the body goes to *body when asked for.
int http_status(int port, const std::string& path, std::string* body = nullptr);

// The shared setup of most suites: one redis-server and one proxy for all tests of the suite
// (started in SetUpTestSuite), keys namespaced by test name so tests do not see each other.
class SharedProxyTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite();
  static void TearDownTestSuite();
  void SetUp() override;
  void TearDown() override;

  static int port() { return proxy_->port(); }  // where clients connect
  static RedisServer& redis() { return *redis_; }
  static ProxyServer& proxy() { return *proxy_; }
  // "<TestName>:<suffix>": a key no other test of the suite uses.
  static std::string key(std::string_view suffix);

 private:
  static inline std::unique_ptr<RedisServer> redis_;
  static inline std::unique_ptr<ProxyServer> proxy_;
  static inline std::string setup_error_;
};

// Skips a test that checks proxy-only behaviour when the tests run directly against Redis.
#define SKIP_IN_DIRECT_MODE(why)                        \
  do {                                                  \
    if (::rgtest::direct_mode()) GTEST_SKIP() << (why); \
  } while (0)

// Prometheus text exposition -> {"name{labels}": value} (comments and blank lines skipped).
using Samples = std::map<std::string, double>;
Samples parse_samples(const std::string& text);
// The value of one series ("name{labels}" as exposed); NaN when absent, so any comparison
// with it fails.
double sample(const Samples& s, const std::string& series);
// GET /metrics of the proxy's admin port, parsed; empty unless the answer was a 200.
Samples scrape(const ProxyServer& proxy);
double metric(const ProxyServer& proxy,
              const std::string& series);  // sample(scrape(proxy), series)
// Polls /metrics until `condition` holds on a scrape (bounded); returns the last scrape.
Samples scrape_until(const ProxyServer& proxy, const std::function<bool(const Samples&)>& condition,
                     Millis timeout = 5s);
// Polls until `series` equals `expected` / is at least `minimum` (bounded); returns the last
// value seen, so a failing EXPECT shows what the proxy said.
double metric_becomes(const ProxyServer& proxy, const std::string& series, double expected,
                      Millis timeout = 5s);
double metric_reaches(const ProxyServer& proxy, const std::string& series, double minimum,
                      Millis timeout = 5s);

}  // namespace rgtest
