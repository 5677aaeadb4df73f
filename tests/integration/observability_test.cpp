// The admin endpoints of a running proxy: exact metric values after known traffic, the
// exposition accepted by promtool, /readyz following the upstream, admin.metrics: false.
// Each test starts its own redis-server and proxy, so counters start from a known state.
#include <sys/wait.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <sstream>

#include "harness.hpp"

namespace rgtest {
namespace {

// The sample lines of an exposition: "name{labels}" -> value.

// One series' value, NaN when the series is absent (so any comparison with it fails).
double value(const Samples& s, const std::string& series) {
  auto it = s.find(series);
  return it == s.end() ? std::nan("") : it->second;
}

std::string commands(const std::string& command, const std::string& result) {
  return "respguard_commands_total{command=\"" + command + "\",result=\"" + result + "\"}";
}

// Sum of every series of a family ("respguard_commands_total").
double family_sum(const Samples& s, const std::string& name) {
  double sum = 0;
  for (const auto& [series, v] : s) {
    if (series == name || series.starts_with(name + "{")) sum += v;
  }
  return sum;
}

// GET /metrics; fails the test unless it is a 200.
std::string scrape_text(const ProxyServer& proxy) {
  int status = 0;
  std::string body = http_get(proxy.admin_port(), "/metrics", &status);
  EXPECT_EQ(status, 200) << body;
  return body;
}

// The RESP encoding hiredis sends for a command, to know the exact request bytes.
std::size_t encoded_size(const std::vector<std::string>& args) {
  std::size_t n = ("*" + std::to_string(args.size()) + "\r\n").size();
  for (const std::string& a : args)
    n += ("$" + std::to_string(a.size()) + "\r\n").size() + a.size() + 2;
  return n;
}

// `promtool check metrics` on the text: its exit status and everything it printed.
std::pair<int, std::string> promtool_check(const std::string& text) {
  const std::string dir = make_temp_dir();
  const std::string path = dir + "/metrics.txt";
  std::ofstream(path, std::ios::binary) << text;
  const std::string command =
      "timeout 20 " + std::string(PROMTOOL_BINARY) + " check metrics < " + path + " 2>&1";
  std::string output;
  int status = -1;
  if (FILE* pipe = ::popen(command.c_str(), "r")) {
    char chunk[4096];
    while (std::size_t n = std::fread(chunk, 1, sizeof(chunk), pipe)) output.append(chunk, n);
    const int raw = ::pclose(pipe);
    status = WIFEXITED(raw) ? WEXITSTATUS(raw) : -1;
  }
  std::error_code ignored;
  std::filesystem::remove_all(dir, ignored);
  return {status, output};
}

// The harness checks the proxy is up with PINGs on short connections: wait until they are gone
// and the upstream connections are ready, so a test starts from a quiet proxy.
Samples settle(const ProxyServer& proxy) {
  Samples s = scrape_until(proxy, [](const Samples& s) {
    return value(s, "respguard_client_connections") == 0 &&
           value(s, "respguard_upstream_connections{state=\"ready\"}") >= 1;
  });
  EXPECT_EQ(value(s, "respguard_client_connections"), 0);
  EXPECT_GE(value(s, "respguard_upstream_connections{state=\"ready\"}"), 1);
  return s;
}

TEST(Observability, ExactCountersAfterKnownTraffic) {
  SKIP_IN_DIRECT_MODE("metrics are the proxy's");
  RedisServer redis;
  ProxyServer proxy(redis.port());
  const Samples base = settle(proxy);
  EXPECT_EQ(value(base, "respguard_protocol_errors_total"), 0);
  EXPECT_TRUE(std::isnan(value(base, commands("set", "ok")))) << "the harness sent no SET";

  // 7 SETs, 5 GETs, 2 unknown commands, 1 PING on two connections.
  Client a(proxy.port()), b(proxy.port());
  ASSERT_TRUE(a.connected() && b.connected());
  std::vector<std::vector<std::string>> sent;
  auto run = [&](Client& c, const std::vector<std::string>& args, const std::string& expected) {
    EXPECT_EQ(c.run(args), expected) << args[0];
    sent.push_back(args);
  };
  for (int i = 0; i < 7; ++i) {
    run(i % 2 ? a : b, {"SET", "obs:k" + std::to_string(i), "v" + std::to_string(i)}, "+OK");
  }
  for (int i = 0; i < 4; ++i)
    run(a, {"GET", "obs:k" + std::to_string(i)}, "$v" + std::to_string(i));
  run(b, {"GET", "obs:missing"}, "(nil)");
  run(a, {"NOSUCHCOMMAND", "x"},
      "-ERR unknown command 'NOSUCHCOMMAND', with args beginning with: 'x' ");
  run(b, {"ALSONOTACOMMAND"}, "-ERR unknown command 'ALSONOTACOMMAND', with args beginning with: ");
  run(a, {"PING"}, "+PONG");
  ASSERT_EQ(sent.size(), 15u);
  std::size_t request_bytes = 0;
  for (const auto& args : sent) request_bytes += encoded_size(args);

  // Recorded before each reply is written; poll anyway, a scrape is not ordered with them.
  Samples s = scrape_until(proxy, [&](const Samples& s) {
    return value(s, "respguard_request_duration_seconds_count") >=
           value(base, "respguard_request_duration_seconds_count") + 15;
  });
  EXPECT_EQ(value(s, commands("set", "ok")), 7);
  EXPECT_EQ(value(s, commands("get", "ok")), 5);
  EXPECT_EQ(value(s, commands("other", "error")), 2);
  EXPECT_EQ(value(s, commands("ping", "ok")), value(base, commands("ping", "ok")) + 1);
  EXPECT_TRUE(std::isnan(value(s, commands("set", "error")))) << "sparse: zero series are absent";
  EXPECT_TRUE(std::isnan(value(s, commands("nosuchcommand", "error")))) << "never a raw name";
  EXPECT_EQ(family_sum(s, "respguard_commands_total"),
            family_sum(base, "respguard_commands_total") + 15);
  // One latency observation per command answered.
  EXPECT_EQ(value(s, "respguard_request_duration_seconds_count"),
            family_sum(s, "respguard_commands_total"));
  EXPECT_EQ(value(s, "respguard_request_duration_seconds_bucket{le=\"+Inf\"}"),
            value(s, "respguard_request_duration_seconds_count"));
  EXPECT_GT(value(s, "respguard_request_duration_seconds_sum"), 0);
  // 14 went to Redis (PING is answered by the proxy).
  EXPECT_GE(value(s, "respguard_upstream_request_duration_seconds_count"),
            value(base, "respguard_upstream_request_duration_seconds_count") + 14);
  EXPECT_EQ(value(s, "respguard_client_received_bytes_total"),
            value(base, "respguard_client_received_bytes_total") + request_bytes);
  EXPECT_GT(value(s, "respguard_client_sent_bytes_total"),
            value(base, "respguard_client_sent_bytes_total") + 15 * 4);
  EXPECT_EQ(value(s, "respguard_client_connections"), 2);
  EXPECT_EQ(value(s, "respguard_client_connections_accepted_total"),
            value(base, "respguard_client_connections_accepted_total") + 2);
  EXPECT_GE(value(s, "respguard_upstream_connections{state=\"ready\"}"), 1);
  EXPECT_EQ(value(s, "respguard_upstream_connections{state=\"backoff\"}"), 0);
  EXPECT_EQ(value(s, "respguard_protocol_errors_total"), 0);

  // A protocol error on a connection of its own.
  {
    RawSocket bad(proxy.port());
    ASSERT_TRUE(bad.connected());
    ASSERT_TRUE(bad.send("*1\r\n$abc\r\n"));
    EXPECT_EQ(bad.read_message(), "-ERR Protocol error: invalid bulk length\r\n");
    EXPECT_TRUE(bad.wait_closed());
  }
  // The close is counted when the session ends on its worker: poll.
  s = scrape_until(proxy, [](const Samples& s) {
    return value(s, "respguard_client_connections_closed_total{reason=\"protocol_error\"}") >= 1 &&
           value(s, "respguard_client_connections") == 2;
  });
  EXPECT_EQ(value(s, "respguard_protocol_errors_total"), 1);
  EXPECT_EQ(value(s, "respguard_client_connections_closed_total{reason=\"protocol_error\"}"), 1);
  EXPECT_EQ(value(s, "respguard_client_connections_accepted_total"),
            value(base, "respguard_client_connections_accepted_total") + 3);
  EXPECT_EQ(value(s, "respguard_client_connections"), 2);
  // A protocol error is not a command: only the 2 unknown commands are other/error.
  EXPECT_EQ(value(s, commands("other", "error")), 2);
  EXPECT_EQ(value(s, "respguard_request_duration_seconds_count"),
            family_sum(s, "respguard_commands_total"));

  // A client that leaves is counted by reason, and no longer open.
  const double closed_before =
      value(s, "respguard_client_connections_closed_total{reason=\"client\"}");
  {
    Client gone(proxy.port());
    EXPECT_EQ(gone.run({"PING"}), "+PONG");
  }
  s = scrape_until(proxy, [&](const Samples& s) {
    return value(s, "respguard_client_connections_closed_total{reason=\"client\"}") >=
               closed_before + 1 &&
           value(s, "respguard_client_connections") == 2;
  });
  EXPECT_EQ(value(s, "respguard_client_connections_closed_total{reason=\"client\"}"),
            closed_before + 1);
  EXPECT_EQ(value(s, "respguard_client_connections"), 2);
  EXPECT_EQ(value(s, "respguard_client_connections_accepted_total"),
            value(base, "respguard_client_connections_accepted_total") + 4);
  EXPECT_EQ(value(s, commands("ping", "ok")), value(base, commands("ping", "ok")) + 2);

  const std::string text = scrape_text(proxy);
  EXPECT_NE(text.find("\nrespguard_build_info{version=\""), std::string::npos) << text;
  EXPECT_NE(text.find("# TYPE respguard_build_info gauge\n"), std::string::npos);
  EXPECT_EQ(family_sum(parse_samples(text), "respguard_build_info"), 1);
  const auto [status, output] = promtool_check(text);
  EXPECT_EQ(status, 0) << output;
  EXPECT_EQ(output, "") << "promtool check metrics complained about:\n" << text;
}

TEST(Observability, PromtoolAcceptsAnIdleProxysExposition) {
  SKIP_IN_DIRECT_MODE("metrics are the proxy's");
  RedisServer redis;
  ProxyServer proxy(redis.port());
  settle(proxy);
  // With no traffic the sparse commands family has no series at all.
  const std::string text = scrape_text(proxy);
  EXPECT_NE(text.find("# TYPE respguard_commands_total counter\n"), std::string::npos);
  const auto [status, output] = promtool_check(text);
  EXPECT_EQ(status, 0) << output;
  EXPECT_EQ(output, "") << "promtool check metrics complained about:\n" << text;
  // And promtool does fail on a bad exposition (the check can fail).
  const auto [bad_status, bad_output] =
      promtool_check("# TYPE respguard_x counter\nrespguard_x{a=\"1\" 3\n");
  EXPECT_NE(bad_status, 0) << bad_output;
}

TEST(Observability, ReadyzFollowsTheUpstreamWhileHealthzStaysUp) {
  SKIP_IN_DIRECT_MODE("the probes are the proxy's");
  RedisServer redis;
  // A short backoff cap so the proxy finds Redis again soon after its restart.
  ProxyServer proxy(redis.port(), {.config_yaml = "upstream:\n  reconnect_backoff_max: 200ms\n",
                                   .extra_args = {}});
  const int admin = proxy.admin_port();
  std::string body;
  ASSERT_TRUE(wait_until([&] { return http_status(admin, "/readyz", &body) == 200; }, 5s)) << body;
  EXPECT_EQ(body, "ready\n");
  EXPECT_EQ(http_status(admin, "/healthz", &body), 200);
  EXPECT_EQ(body, "ok\n");

  redis.kill();
  EXPECT_TRUE(wait_until([&] { return http_status(admin, "/readyz", &body) == 503; }, 5s))
      << "/readyz still says: " << body;
  EXPECT_TRUE(body.starts_with("not ready: worker ")) << body;
  EXPECT_TRUE(body.ends_with(
      " has no ready upstream connection to 127.0.0.1:" + std::to_string(redis.port()) + "\n"))
      << body;
  EXPECT_EQ(http_status(admin, "/healthz", &body), 200) << "liveness must not follow Redis";
  EXPECT_EQ(body, "ok\n");
  Samples s = scrape_until(
      proxy, [](const Samples& s) { return value(s, "respguard_upstream_reconnects_total") >= 1; });
  EXPECT_EQ(value(s, "respguard_upstream_connections{state=\"ready\"}"), 0);
  EXPECT_GE(value(s, "respguard_upstream_reconnects_total"), 1);
  EXPECT_GE(family_sum(s, "respguard_upstream_errors_total"), 1);
  // Still not ready a while later (a few backoff rounds), still alive.
  EXPECT_EQ(http_status(admin, "/readyz"), 503);
  EXPECT_EQ(http_status(admin, "/healthz"), 200);

  redis.restart();
  EXPECT_TRUE(wait_until([&] { return http_status(admin, "/readyz", &body) == 200; }, 10s))
      << "/readyz after the restart: " << body;
  EXPECT_EQ(http_status(admin, "/healthz"), 200);
  // Ready means one upstream connection is; the worker serving this client may take another
  // backoff round to reconnect.
  Client c(proxy.port());
  std::string reply;
  EXPECT_TRUE(wait_until(
      [&] {
        return (reply = c.run({"SET", "obs:after", "1"})) == "+OK";
      },
      5s))
      << reply;
}

TEST(Observability, MetricsOffForwardsButRecordsOnlyConnections) {
  SKIP_IN_DIRECT_MODE("metrics are the proxy's");
  RedisServer redis;
  ProxyServer proxy(redis.port(), {.config_yaml = "admin:\n  metrics: false\n", .extra_args = {}});
  const Samples base = settle(proxy);

  Client c(proxy.port());
  EXPECT_EQ(c.run({"SET", "obs:off", "v"}), "+OK");
  EXPECT_EQ(c.run({"GET", "obs:off"}), "$v");
  EXPECT_EQ(c.run({"PING"}), "+PONG");
  EXPECT_EQ(c.run({"NOSUCHCOMMAND"}),
            "-ERR unknown command 'NOSUCHCOMMAND', with args beginning with: ");
  EXPECT_EQ(commandstat_calls(redis.port(), "set"), 1) << "forwarded as usual";
  {
    RawSocket bad(proxy.port());
    ASSERT_TRUE(bad.send("*1\r\n$abc\r\n"));
    EXPECT_EQ(bad.read_message(), "-ERR Protocol error: invalid bulk length\r\n");
    EXPECT_TRUE(bad.wait_closed());
  }
  const Samples s = scrape_until(proxy, [](const Samples& s) {
    return value(s, "respguard_client_connections_closed_total{reason=\"protocol_error\"}") >= 1 &&
           value(s, "respguard_client_connections") == 1;
  });
  // Request metrics: nothing recorded.
  EXPECT_EQ(family_sum(s, "respguard_commands_total"), 0);
  const std::string text = scrape_text(proxy);
  EXPECT_EQ(text.find("\nrespguard_commands_total{"), std::string::npos) << text;
  EXPECT_EQ(value(s, "respguard_request_duration_seconds_count"), 0);
  EXPECT_EQ(value(s, "respguard_upstream_request_duration_seconds_count"), 0);
  EXPECT_EQ(value(s, "respguard_client_received_bytes_total"), 0);
  EXPECT_EQ(value(s, "respguard_client_sent_bytes_total"), 0);
  // Connection and upstream state: still counted.
  EXPECT_EQ(value(s, "respguard_client_connections"), 1);
  EXPECT_EQ(value(s, "respguard_client_connections_accepted_total"),
            value(base, "respguard_client_connections_accepted_total") + 2);
  EXPECT_EQ(value(s, "respguard_client_connections_closed_total{reason=\"protocol_error\"}"), 1);
  EXPECT_EQ(value(s, "respguard_protocol_errors_total"), 1);
  EXPECT_GE(value(s, "respguard_upstream_connections{state=\"ready\"}"), 1);
  EXPECT_EQ(family_sum(s, "respguard_build_info"), 1);
  const auto [status, output] = promtool_check(text);
  EXPECT_EQ(status, 0) << output;
  EXPECT_EQ(output, "");
}

}  // namespace
}  // namespace rgtest
