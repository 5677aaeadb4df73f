// Protection (issue 6, ARCHITECTURE §3 "Rate limits", "Circuit breaker"), proven against a real
// redis-server with faults the tests make themselves: per-client rate limits (reject and delay
// modes, overrides, the write limit, pipelines), the circuit breaker on a hung (SIGSTOP), killed
// and restarted, or LOADING upstream, and the active health checks behind /readyz.
//
// Each test starts its own redis-server and proxy: they break them, and the counters they check
// must start from zero. Timings are measured, and each bound says what it allows for.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <map>
#include <mutex>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "../../include/respguard/common/errors.hpp"
#include "harness.hpp"

namespace rgtest {
namespace {

namespace errors = respguard::errors;
using Clock = std::chrono::steady_clock;

const std::string kCircuitOpen = "-" + std::string(errors::kCircuitOpen);
const std::string kLoading = "-LOADING Redis is loading the dataset in memory";

double ms_between(Clock::time_point from, Clock::time_point to) {
  return std::chrono::duration<double, std::milli>(to - from).count();
}

// "-ERR rate limit exceeded (hog, 200/s)", as a client sees it (text()).
std::string rate_error(const std::string& identity, int rate, bool writes = false) {
  return "-ERR rate limit exceeded (" + identity + ", " + std::to_string(rate) +
         (writes ? " writes/s)" : "/s)");
}

// ---- metrics ----

// A counter series; absent series (the exposition leaves out zero counters) read as 0.
double count(const Samples& s, const std::string& series) {
  auto it = s.find(series);
  return it == s.end() ? 0 : it->second;
}

// A gauge, NaN when absent (so any comparison with it fails).
double gauge(const Samples& s, const std::string& series) {
  auto it = s.find(series);
  return it == s.end() ? std::nan("") : it->second;
}

double family_sum(const Samples& s, const std::string& name) {
  double sum = 0;
  for (const auto& [series, v] : s) {
    if (series == name || series.starts_with(name + "{")) sum += v;
  }
  return sum;
}

std::string label(const std::string& name, const std::string& key, const std::string& value) {
  return name + "{" + key + "=\"" + value + "\"}";
}
std::string rate_limited(const std::string& action) {
  return label("respguard_rate_limited_total", "action", action);
}
std::string transitions(const std::string& state) {
  return label("respguard_breaker_transitions_total", "state", state);
}
std::string failures(const std::string& kind) {
  return label("respguard_breaker_failures_total", "kind", kind);
}
std::string health_checks(const std::string& result) {
  return label("respguard_health_checks_total", "result", result);
}
const std::string kBreakerState = "respguard_breaker_state";  // 0 closed, 1 open, 2 half-open
const std::string kBreakerRejected = "respguard_breaker_rejected_total";
const std::string kUpstreamHealthy = "respguard_upstream_healthy";

// ---- timing summaries ----

struct Stats {
  std::size_t n = 0;
  double p50 = 0, p99 = 0, max = 0;
};

Stats stats(std::vector<double> ms) {
  Stats s;
  s.n = ms.size();
  if (ms.empty()) return s;
  std::sort(ms.begin(), ms.end());
  s.p50 = ms[ms.size() / 2];
  s.p99 = ms[std::min(ms.size() - 1, ms.size() * 99 / 100)];
  s.max = ms.back();
  return s;
}

std::ostream& operator<<(std::ostream& out, const Stats& s) {
  char buf[128];
  std::snprintf(buf, sizeof buf, "n=%zu p50=%.2fms p99=%.2fms max=%.2fms", s.n, s.p50, s.p99,
                s.max);
  return out << buf;
}

// Prints a measured figure in the test output.
void figure(const std::string& key, const std::string& value) {
  std::cout << "[figure] " << key << ": " << value << "\n";
}
void figure(const std::string& key, double value) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.2f", value);
  figure(key, std::string(buf));
}

// SIGCONT on every way out of a test that stopped Redis: a stopped server cannot even be killed
// cleanly, and later tests must not find one.
struct ResumeOnExit {
  RedisServer& redis;
  ~ResumeOnExit() { redis.resume(); }
};

// Stops and joins a test's client threads on every way out, a failed ASSERT included.
struct JoinOnExit {
  std::atomic<bool>& stop;
  std::vector<std::thread>& threads;
  void join() {
    stop = true;
    for (auto& t : threads) t.join();
    threads.clear();
  }
  ~JoinOnExit() { join(); }
};

// ---- a Redis that is loading its dataset ----

// A stand-in for a redis-server that is still loading its RDB: a thread with a listening socket
// on 127.0.0.1:0 that answers every command, handshakes and PING included, with
// "-LOADING Redis is loading the dataset in memory", as Redis does for most commands while it
// loads. set_loading(false) makes it a (very small) working server: PING -> +PONG,
// GET -> "ready", anything else -> +OK. It counts the commands it received, by name.
class LoadingStub {
 public:
  LoadingStub() {
    listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(addr);
    if (listen_fd_ < 0 || ::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), len) != 0 ||
        ::listen(listen_fd_, 64) != 0 ||
        ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len) != 0 ||
        ::pipe2(wake_, O_CLOEXEC) != 0) {
      throw std::runtime_error("LoadingStub: cannot listen on 127.0.0.1:0");
    }
    port_ = ntohs(addr.sin_port);
    thread_ = std::thread([this] { run(); });
  }

  ~LoadingStub() {
    stop_ = true;
    [[maybe_unused]] ssize_t ignored = ::write(wake_[1], "x", 1);
    thread_.join();
    ::close(listen_fd_);
    ::close(wake_[0]);
    ::close(wake_[1]);
  }

  int port() const { return port_; }
  void set_loading(bool loading) { loading_ = loading; }
  long long received(const std::string& command) const {
    std::lock_guard lock(mutex_);
    auto it = received_.find(command);
    return it == received_.end() ? 0 : it->second;
  }

 private:
  struct Conn {
    int fd;
    std::string in;
  };

  void run() {
    std::vector<Conn> conns;
    while (!stop_) {
      std::vector<pollfd> fds = {{listen_fd_, POLLIN, 0}, {wake_[0], POLLIN, 0}};
      for (const Conn& c : conns) fds.push_back({c.fd, POLLIN, 0});
      if (::poll(fds.data(), fds.size(), -1) < 0) continue;  // EINTR
      if (fds[0].revents & POLLIN) {
        int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
        if (fd >= 0) conns.push_back({fd, {}});
      }
      // Only the connections polled this round (accept may have added one at the end).
      for (std::size_t i = fds.size() - 2; i-- > 0;) {
        if (fds[i + 2].revents == 0) continue;
        Conn& c = conns[i];
        char chunk[16384];
        ssize_t n = ::recv(c.fd, chunk, sizeof chunk, 0);
        if (n <= 0) {
          ::close(c.fd);
          conns.erase(conns.begin() + static_cast<std::ptrdiff_t>(i));
          continue;
        }
        c.in.append(chunk, static_cast<std::size_t>(n));
        serve(c);
      }
    }
    for (const Conn& c : conns) ::close(c.fd);
  }

  void serve(Conn& c) {
    std::string out;
    while (std::size_t size = resp_message_size(c.in)) {
      const std::string name = command_name(std::string_view(c.in).substr(0, size));
      c.in.erase(0, size);
      {
        std::lock_guard lock(mutex_);
        ++received_[name];
      }
      if (loading_) {
        out += kLoading + "\r\n";
      } else if (name == "PING") {
        out += "+PONG\r\n";
      } else if (name == "GET") {
        out += "$5\r\nready\r\n";
      } else {
        out += "+OK\r\n";
      }
    }
    std::string_view rest = out;
    while (!rest.empty()) {
      ssize_t n = ::send(c.fd, rest.data(), rest.size(), MSG_NOSIGNAL);
      if (n <= 0) break;  // the proxy closed it; recv will tell
      rest.remove_prefix(static_cast<std::size_t>(n));
    }
  }

  // "*2\r\n$3\r\nget\r\n$1\r\nk\r\n" -> "GET" (the proxy sends RESP arrays of bulk strings).
  static std::string command_name(std::string_view message) {
    std::size_t eol = message.find("\r\n");
    if (message.empty() || message[0] != '*' || eol == std::string_view::npos) return "?";
    std::size_t head = eol + 2;
    std::size_t eol2 = message.find("\r\n", head);
    if (head >= message.size() || message[head] != '$' || eol2 == std::string_view::npos)
      return "?";
    const std::size_t len =
        std::strtoul(std::string(message.substr(head + 1)).c_str(), nullptr, 10);
    std::string name(message.substr(eol2 + 2, len));
    for (char& ch : name) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
    return name;
  }

  int listen_fd_ = -1;
  int wake_[2] = {-1, -1};
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<bool> loading_{true};
  mutable std::mutex mutex_;
  std::map<std::string, long long> received_;
  std::thread thread_;
};

// =============================================================================== rate limits

// Limit 200/s, burst 10: over 2 s the burst is 10 of ~410 admitted requests, so the measured rate
// is the limit's, not the burst's.
TEST(Protection, RateLimitCapsARunawayClientAtItsRateWhileAnotherAtItsLimitSeesNoErrors) {
  SKIP_IN_DIRECT_MODE("rate limits are the proxy's");
  RedisServer redis;
  ProxyServer proxy(redis.port(), {.config_yaml = "rate_limit:\n"
                                                  "  identity: client_name\n"
                                                  "  rate: 200\n"
                                                  "  burst: 10\n",
                                   .extra_args = {}});
  constexpr int kRate = 200;
  constexpr int kBurst = 10;
  constexpr int kHogRequests = 1000;  // per connection, every 2 ms: 1000/s together, 5x the limit
  constexpr auto kHogPeriod = 2ms;
  constexpr int kPoliteRequests = 400;  // 2 s at the limit
  constexpr auto kPolitePeriod = 5ms;   // 1 s / 200

  // Accepted round-robin: the two hog connections land on different workers, which must share
  // one bucket for "hog" (a limit must not multiply by the number of workers).
  Client hog_a(proxy.port()), hog_b(proxy.port()), polite(proxy.port());
  ASSERT_EQ(hog_a.run({"CLIENT", "SETNAME", "hog"}), "+OK");
  ASSERT_EQ(hog_b.run({"CLIENT", "SETNAME", "hog"}), "+OK");
  ASSERT_EQ(polite.run({"CLIENT", "SETNAME", "polite"}), "+OK");

  struct Tally {
    long ok = 0, limited = 0;
    std::vector<std::string> other;
    Clock::time_point first_sent{}, last_sent{};
  };
  auto classify = [](Tally& t, const std::string& reply, const std::string& limited_text) {
    if (reply.starts_with(":")) {
      ++t.ok;
    } else if (reply == limited_text) {
      ++t.limited;
    } else if (t.other.size() < 5) {
      t.other.push_back(reply);
    }
  };
  const auto start = Clock::now() + 50ms;
  Tally a, b, p;
  // The hog keeps an absolute schedule (it catches up when late): it offers 1000/s overall.
  auto hog = [&](Client& c, Tally& t) {
    t.first_sent = start;
    for (int i = 0; i < kHogRequests; ++i) {
      std::this_thread::sleep_until(start + i * kHogPeriod);
      t.last_sent = Clock::now();
      classify(t, c.run({"INCR", "hog"}), rate_error("hog", kRate));
    }
  };
  // The polite client keeps a schedule of one request every 5 ms: the limit, never ahead of it.
  // When it falls more than 20 ms behind (a busy machine), it starts a new schedule from now
  // rather than catch up with a burst: 20 ms is well within the bucket's 10 - 1 = 9 intervals
  // (45 ms) of tolerance, so a client on schedule can never be refused.
  int reanchored = 0;
  auto well_behaved = [&](Client& c, Tally& t) {
    auto anchor = start;
    int k = 0;  // requests since the anchor
    for (int i = 0; i < kPoliteRequests; ++i, ++k) {
      if (Clock::now() > anchor + k * kPolitePeriod + 20ms) {
        anchor = Clock::now();
        k = 0;
        ++reanchored;
      }
      std::this_thread::sleep_until(anchor + k * kPolitePeriod);
      const auto sent = Clock::now();
      if (i == 0) t.first_sent = sent;
      t.last_sent = sent;
      classify(t, c.run({"INCR", "polite"}), rate_error("polite", kRate));
    }
  };
  std::thread ta(hog, std::ref(hog_a), std::ref(a));
  std::thread tb(hog, std::ref(hog_b), std::ref(b));
  std::thread tp(well_behaved, std::ref(polite), std::ref(p));
  ta.join();
  tb.join();
  tp.join();

  EXPECT_EQ(a.other, std::vector<std::string>{}) << "hog A: neither a count nor the rate error";
  EXPECT_EQ(b.other, std::vector<std::string>{}) << "hog B: neither a count nor the rate error";
  EXPECT_EQ(p.other, std::vector<std::string>{});

  const double hog_seconds = ms_between(start, std::max(a.last_sent, b.last_sent)) / 1000;
  const long hog_sent = a.ok + a.limited + b.ok + b.limited;
  const long hog_ok = a.ok + b.ok;
  const double offered = hog_sent / hog_seconds;
  const double admitted_rate = hog_ok / hog_seconds;
  const double polite_seconds = ms_between(p.first_sent, p.last_sent) / 1000;
  const double polite_rate = (kPoliteRequests - 1) / polite_seconds;
  figure("hog_offered_per_s", offered);
  figure("hog_admitted", static_cast<double>(hog_ok));
  figure("hog_admitted_per_s", admitted_rate);
  figure("hog_admitted_split", std::to_string(a.ok) + "+" + std::to_string(b.ok));
  figure("polite_sent_per_s", polite_rate);
  figure("polite_schedule_restarts", reanchored);

  EXPECT_EQ(hog_sent, 2 * kHogRequests);
  // The hog really was far over its limit (5x offered; 4.5x allows for a slow machine).
  EXPECT_GE(offered, 4.5 * kRate);
  // The admitted rate over ~2 s: within +-10 % of the limit (the burst adds 10/2 s = 2.5 %).
  EXPECT_NEAR(admitted_rate, kRate, kRate * 0.10)
      << hog_ok << " admitted in " << hog_seconds << " s (both connections share one bucket)";
  EXPECT_GE(hog_ok, kBurst);
  EXPECT_GT(a.limited + b.limited, 0);
  // The polite client, at its limit the whole time, was never refused.
  EXPECT_EQ(p.limited, 0);
  EXPECT_EQ(p.ok, kPoliteRequests);
  EXPECT_NEAR(polite_rate, kRate, kRate * 0.10) << "the polite client was not at its limit";

  // Redis's view: exactly the admitted INCRs ran, none of the refused ones.
  Client direct(redis.port());
  EXPECT_EQ(direct.run({"GET", "hog"}), "$" + std::to_string(hog_ok));
  EXPECT_EQ(direct.run({"GET", "polite"}), "$" + std::to_string(kPoliteRequests));
  EXPECT_EQ(commandstat_calls(redis.port(), "incr"), hog_ok + kPoliteRequests);

  // One rejection counted per refused request.
  Samples s = scrape(proxy);
  EXPECT_EQ(count(s, rate_limited("rejected")), a.limited + b.limited);
  EXPECT_EQ(count(s, rate_limited("delayed")), 0);
}

// Pipelines under the limit: each request gets exactly one reply, in order, admitted or refused;
// overrides replace the default limit; the write limit refuses writes only, for every client.
TEST(Protection, RateLimitOverridesWriteLimitAndPipelinesInOrder) {
  SKIP_IN_DIRECT_MODE("rate limits are the proxy's");
  RedisServer redis;
  ProxyServer proxy(redis.port(), {.config_yaml = "rate_limit:\n"
                                                  "  identity: client_name\n"
                                                  "  rate: 100\n"
                                                  "  burst: 20\n"
                                                  "  write_rate: 10\n"
                                                  "  write_burst: 5\n"
                                                  "  overrides:\n"
                                                  "    - identity: vip\n"
                                                  "      rate: 0\n"
                                                  "    - identity: tight\n"
                                                  "      rate: 5\n"
                                                  "      burst: 2\n",
                                   .extra_args = {}});
  Client direct(redis.port());
  constexpr int kKeys = 100;
  std::vector<std::string> mset = {"MSET"};
  for (int i = 0; i < kKeys; ++i) {
    mset.push_back("key:" + std::to_string(i));
    mset.push_back("v" + std::to_string(i));
  }
  ASSERT_EQ(direct.run(mset), "+OK");
  long refused_total = 0;  // every rate-limit error any client of this test saw

  // A pipeline of GET key:0..n-1: each reply must be its own key's value or the rate error.
  // Returns how many were admitted; *seconds is the time from the write to the last reply.
  auto pipeline_gets = [&](Client& c, const std::string& identity, int rate, int n,
                           double* seconds) {
    const auto t0 = Clock::now();
    for (int i = 0; i < n; ++i) c.append({"GET", "key:" + std::to_string(i)});
    EXPECT_TRUE(c.flush()) << c.error();
    int ok = 0;
    for (int i = 0; i < n; ++i) {
      const std::string reply = text(c.get_reply());
      if (reply == "$v" + std::to_string(i)) {
        ++ok;
      } else if (reply == rate_error(identity, rate)) {
        ++refused_total;
      } else {
        ADD_FAILURE() << identity << ": reply " << i << " is " << reply << "; " << c.error();
        break;
      }
    }
    *seconds = ms_between(t0, Clock::now()) / 1000;
    return ok;
  };
  // Exactly one reply per request: after a pipeline, the next request's reply is its own (a
  // marker), once the bucket has a token again; meanwhile only rate errors may come back.
  auto expect_in_step = [&](Client& c, const std::string& identity, int rate) {
    std::string reply;
    const std::string marker = "marker-" + identity;
    bool ok = wait_until(
        [&] {
          reply = c.run({"ECHO", marker});
          if (reply == rate_error(identity, rate)) ++refused_total;
          return reply != rate_error(identity, rate);
        },
        3s);
    EXPECT_TRUE(ok) << identity << " stayed limited";
    EXPECT_EQ(reply, "$" + marker) << identity << ": a reply left over from the pipeline";
  };

  // The default limit: 100 GETs at once, a burst of 20 admitted (plus what refills meanwhile).
  Client plain(proxy.port());
  ASSERT_EQ(plain.run({"CLIENT", "SETNAME", "plain"}), "+OK");
  double seconds = 0;
  const int plain_ok = pipeline_gets(plain, "plain", 100, kKeys, &seconds);
  figure("plain_pipeline_admitted", plain_ok);
  EXPECT_GE(plain_ok, 20);
  EXPECT_LE(plain_ok, 20 + static_cast<int>(seconds * 100) + 1) << "in " << seconds << " s";
  expect_in_step(plain, "plain", 100);

  // Override rate 0: no general limit at all.
  Client vip(proxy.port());
  ASSERT_EQ(vip.run({"CLIENT", "SETNAME", "vip"}), "+OK");
  EXPECT_EQ(pipeline_gets(vip, "vip", 0, kKeys, &seconds), kKeys);
  expect_in_step(vip, "vip", 0);

  // Override rate 5, burst 2: its own, stricter limit and its own rate in the error.
  Client tight(proxy.port());
  ASSERT_EQ(tight.run({"CLIENT", "SETNAME", "tight"}), "+OK");
  const int tight_ok = pipeline_gets(tight, "tight", 5, 10, &seconds);
  EXPECT_GE(tight_ok, 2);
  EXPECT_LE(tight_ok, 2 + static_cast<int>(seconds * 5)) << "in " << seconds << " s";
  expect_in_step(tight, "tight", 5);

  // The write limit (10/s, burst 5): 10 SETs then 10 GETs of the same keys in one pipeline. The
  // SETs beyond the write burst are refused; the GETs are not (refused writes took no general
  // token: 5 + 10 <= 20), and each GET shows exactly whether its SET ran.
  auto writes_then_reads = [&](Client& c, const std::string& identity) {
    const auto t0 = Clock::now();
    for (int i = 0; i < 10; ++i) c.append({"SET", identity + ":w" + std::to_string(i), "x"});
    for (int i = 0; i < 10; ++i) c.append({"GET", identity + ":w" + std::to_string(i)});
    EXPECT_TRUE(c.flush());
    std::vector<bool> written;
    for (int i = 0; i < 10; ++i) {
      const std::string reply = text(c.get_reply());
      written.push_back(reply == "+OK");
      if (reply != "+OK") {
        EXPECT_EQ(reply, rate_error(identity, 10, /*writes=*/true)) << "SET " << i;
        ++refused_total;
      }
    }
    for (int i = 0; i < 10; ++i) {
      EXPECT_EQ(text(c.get_reply()), written[i] ? "$x" : "(nil)")
          << "GET " << i << " of " << identity;
    }
    const double s = ms_between(t0, Clock::now()) / 1000;
    const auto admitted = std::count(written.begin(), written.end(), true);
    EXPECT_GE(admitted, 5) << identity;
    EXPECT_LE(admitted, 5 + static_cast<int>(s * 10)) << identity << " in " << s << " s";
    // Redis's view: the refused SETs never reached it.
    for (int i = 0; i < 10; ++i) {
      EXPECT_EQ(direct.run({"EXISTS", identity + ":w" + std::to_string(i)}),
                written[i] ? ":1" : ":0");
    }
    return admitted;
  };
  Client writer(proxy.port());
  ASSERT_EQ(writer.run({"CLIENT", "SETNAME", "writer"}), "+OK");
  const long sets_before = commandstat_calls(redis.port(), "set");
  long sets = writes_then_reads(writer, "writer");
  expect_in_step(writer, "writer", 100);
  // The write limit holds for overridden clients too (vip has no general limit).
  sets += writes_then_reads(vip, "vip");
  EXPECT_EQ(commandstat_calls(redis.port(), "set"), sets_before + sets);

  // Every refusal counted once; no delays in this mode.
  Samples s = scrape_until(
      proxy, [&](const Samples& s) { return count(s, rate_limited("rejected")) >= refused_total; });
  figure("refused_total", static_cast<double>(refused_total));
  EXPECT_EQ(count(s, rate_limited("rejected")), refused_total);
  EXPECT_EQ(count(s, rate_limited("delayed")), 0);
}

// rate_limit.max_delay: requests over the limit wait for their turn (the client's input pauses)
// instead of being refused; replies keep their order, local ones (ECHO) included. A wait longer
// than max_delay is refused at once.
TEST(Protection, RateLimitDelayModeDelaysInOrderInsteadOfRejecting) {
  SKIP_IN_DIRECT_MODE("rate limits are the proxy's");
  RedisServer redis;
  ProxyServer proxy(redis.port(), {.config_yaml = "rate_limit:\n"
                                                  "  identity: client_name\n"
                                                  "  rate: 100\n"
                                                  "  burst: 5\n"
                                                  "  max_delay: 200ms\n"
                                                  "  overrides:\n"
                                                  "    - identity: slow\n"
                                                  "      rate: 2\n"
                                                  "      burst: 1\n",
                                   .extra_args = {}});
  Client patient(proxy.port(), 3s);
  ASSERT_EQ(patient.run({"CLIENT", "SETNAME", "patient"}), "+OK");
  const Samples base = scrape(proxy);

  // 24 INCRs with an ECHO after every 4th: 30 requests, 5 of them within the burst; each of the
  // other 25 waits one 10 ms interval for its token, so the last reply comes >= 250 ms after
  // the first request.
  std::vector<std::string> expected;
  for (int i = 1; i <= 24; ++i) {
    patient.append({"INCR", "delayed"});
    expected.push_back(":" + std::to_string(i));
    if (i % 4 == 0) {
      patient.append({"ECHO", "e" + std::to_string(i)});
      expected.push_back("$e" + std::to_string(i));
    }
  }
  const auto t0 = Clock::now();
  ASSERT_TRUE(patient.flush());
  std::vector<std::string> replies;
  for (std::size_t i = 0; i < expected.size(); ++i) replies.push_back(text(patient.get_reply()));
  const double elapsed = ms_between(t0, Clock::now());
  figure("delayed_pipeline_ms", elapsed);
  EXPECT_EQ(replies, expected) << "delayed, not refused, and in order";
  EXPECT_GE(elapsed, 249) << "25 requests beyond the burst at 100/s take 250 ms";
  // The end: 250 ms plus one timer's lateness and the round trip; 250 ms of room for a slow
  // machine (lateness does not add up: each wait is measured against the bucket's schedule).
  EXPECT_LE(elapsed, 500);
  // Each of the 25 counted once as delayed (a delay is counted when it is decided, before its
  // reply is sent), none refused.
  Samples s = scrape_until(proxy, [&](const Samples& s) {
    return count(s, rate_limited("delayed")) >= count(base, rate_limited("delayed")) + 25;
  });
  EXPECT_EQ(count(s, rate_limited("delayed")) - count(base, rate_limited("delayed")), 25);
  EXPECT_EQ(count(s, rate_limited("rejected")) - count(base, rate_limited("rejected")), 0);
  // One reply each: nothing left over. (This one may wait up to one interval itself.)
  EXPECT_EQ(patient.run({"ECHO", "after"}), "$after");

  Client direct(redis.port());
  EXPECT_EQ(direct.run({"GET", "delayed"}), "$24");
  EXPECT_EQ(commandstat_calls(redis.port(), "incr"), 24);

  // slow: 2/s, so a second request would wait 500 ms > max_delay: refused, and at once.
  Client slow(proxy.port());
  ASSERT_EQ(slow.run({"CLIENT", "SETNAME", "slow"}), "+OK");
  const Samples before_slow = scrape(proxy);
  const auto t1 = Clock::now();
  for (int i = 0; i < 3; ++i) slow.append({"INCR", "slow"});
  ASSERT_TRUE(slow.flush());
  EXPECT_EQ(text(slow.get_reply()), ":1");
  EXPECT_EQ(text(slow.get_reply()), rate_error("slow", 2));
  EXPECT_EQ(text(slow.get_reply()), rate_error("slow", 2));
  const double refuse_ms = ms_between(t1, Clock::now());
  figure("refusal_beyond_max_delay_ms", refuse_ms);
  EXPECT_LT(refuse_ms, 200) << "a request that cannot be admitted within max_delay is refused "
                               "without waiting";
  EXPECT_EQ(direct.run({"GET", "slow"}), "$1");

  s = scrape_until(proxy, [&](const Samples& s) {
    return count(s, rate_limited("rejected")) >= count(before_slow, rate_limited("rejected")) + 2;
  });
  EXPECT_EQ(count(s, rate_limited("rejected")) - count(before_slow, rate_limited("rejected")), 2);
  EXPECT_EQ(count(s, rate_limited("delayed")), count(before_slow, rate_limited("delayed")));
}

// The resume that delay mode relies on (input paused, then process_input from a timer while a
// socket read is pending) is also how a session resumes after waiting for its in-flight replies
// to switch to a dedicated connection (MULTI after a GET). Emptying the buffer then must not
// make the next read land out of place: once it did, and the proxy re-ran old bytes ("ECHO"
// answered by a second INCR).
TEST(Protection, InputReadWhileAStalledSessionResumedIsParsedIntact) {
  RedisServer redis;
  ProxyServer proxy(redis.port());
  Client c(proxy.port());
  for (int round = 0; round < 20; ++round) {
    c.append({"INCR", "stall"});
    c.append({"MULTI"});  // needs a dedicated connection: waits for the INCR's reply
    c.append({"INCR", "stall"});
    c.append({"EXEC"});
    ASSERT_TRUE(c.flush());
    EXPECT_EQ(text(c.get_reply()), ":" + std::to_string(2 * round + 1));
    EXPECT_EQ(text(c.get_reply()), "+OK");
    EXPECT_EQ(text(c.get_reply()), "+QUEUED");
    EXPECT_EQ(text(c.get_reply()), "[:" + std::to_string(2 * round + 2) + "]");
    ASSERT_EQ(c.run({"ECHO", "after-" + std::to_string(round)}), "$after-" + std::to_string(round))
        << "round " << round;
  }
  Client direct(redis.port());
  EXPECT_EQ(direct.run({"GET", "stall"}), "$40");
}

// A transaction is all or nothing: over the limit, MULTI itself is refused (so nothing is
// queued), but the commands queued after an admitted MULTI, and its EXEC, are never refused one
// by one (Redis would abort a transaction with a refused command; a refused EXEC would leave it
// open). QUIT always gets through.
TEST(Protection, RateLimitNeverSplitsATransaction) {
  SKIP_IN_DIRECT_MODE("rate limits are the proxy's");
  RedisServer redis;
  ProxyServer proxy(redis.port(), {.config_yaml = "rate_limit:\n"
                                                  "  identity: client_name\n"
                                                  "  rate: 1000\n"
                                                  "  overrides:\n"
                                                  "    - identity: tx\n"
                                                  "      rate: 1\n"
                                                  "      burst: 2\n",
                                   .extra_args = {}});
  Client c(proxy.port());
  ASSERT_EQ(c.run({"CLIENT", "SETNAME", "tx"}), "+OK");  // as 127.0.0.1; now "tx"
  ASSERT_EQ(c.run({"PING"}), "+PONG");                   // token 1 of 2
  c.append({"MULTI"});                                   // token 2 of 2
  for (int i = 0; i < 10; ++i) c.append({"INCR", "tx:counter"});
  c.append({"EXEC"});
  c.append({"GET", "tx:counter"});  // over the limit again, outside the transaction
  ASSERT_TRUE(c.flush());
  EXPECT_EQ(text(c.get_reply()), "+OK");
  for (int i = 0; i < 10; ++i) EXPECT_EQ(text(c.get_reply()), "+QUEUED") << i;
  EXPECT_EQ(text(c.get_reply()), "[:1, :2, :3, :4, :5, :6, :7, :8, :9, :10]");
  EXPECT_EQ(text(c.get_reply()), rate_error("tx", 1));
  // A refused MULTI queues nothing: the INCR runs at once (and is itself refused or not).
  EXPECT_EQ(c.run({"MULTI"}), rate_error("tx", 1));
  EXPECT_EQ(c.run({"QUIT"}), "+OK");
  Client direct(redis.port());
  EXPECT_EQ(direct.run({"GET", "tx:counter"}), "$10");
}

// ============================================================================ circuit breaker

// "Answered at once": an open breaker's reply comes back in under 5 ms. Single replies on a busy
// 2-core test machine are sometimes preempted for a few ms, so the bound is on 95 % of them;
// every one must still be under 250 ms, half the shortest request_timeout used here, so none
// of them can have waited for the upstream (while the suite runs on 2 cores, one in thousands
// was seen preempted for ~80 ms).
constexpr double kFastMs = 5.0;
constexpr double kNeverWaitedMs = 250.0;
void expect_answered_at_once(std::vector<double> ms, const std::string& what) {
  ASSERT_FALSE(ms.empty()) << what;
  const auto fast = std::count_if(ms.begin(), ms.end(), [](double x) { return x < kFastMs; });
  const Stats s = stats(ms);
  figure(what, (std::ostringstream() << s).str());
  EXPECT_GE(static_cast<double>(fast), 0.95 * static_cast<double>(ms.size()))
      << what << ": " << s << "; " << ms.size() - fast << " took 5 ms or more";
  EXPECT_LT(s.max, kNeverWaitedMs) << what << ": " << s;
}

// n GETs of `key` that an open breaker must refuse at once.
void expect_circuit_open_at_once(Client& c, const std::string& key, int n,
                                 const std::string& what) {
  std::vector<double> ms;
  for (int i = 0; i < n; ++i) {
    const auto t = Clock::now();
    const std::string reply = c.run({"GET", key});
    ms.push_back(ms_between(t, Clock::now()));
    EXPECT_EQ(reply, kCircuitOpen) << what << " request " << i;
  }
  expect_answered_at_once(ms, what);
}

// One request's outcome, as a client saw it.
struct Sample {
  std::string reply;
  double ms;
};

// Redis stops answering (SIGSTOP): requests time out after request_timeout (500 ms), the
// breaker opens after 3 of them and answers at once; half-open probes while Redis is still
// stopped open it again; after SIGCONT the probes close it and traffic flows.
TEST(Protection, HungUpstreamGetsTimelyErrorsThenFastCircuitOpenAndRecoversAfterSigcont) {
  SKIP_IN_DIRECT_MODE("the circuit breaker is the proxy's");
  RedisServer redis;
  ProxyServer proxy(redis.port(), {.config_yaml = "upstream:\n"
                                                  "  request_timeout: 500ms\n"
                                                  "  connect_timeout: 500ms\n"
                                                  "  reconnect_backoff_min: 50ms\n"
                                                  "  reconnect_backoff_max: 200ms\n"
                                                  "breaker:\n"
                                                  "  enabled: true\n"
                                                  "  failure_threshold: 3\n"
                                                  "  open_for: 1s\n"
                                                  "  probes: 2\n"
                                                  "health_check:\n"
                                                  "  enabled: false\n",
                                   .extra_args = {}});
  constexpr double kRequestTimeoutMs = 500;
  // Room for the timer firing late and the reply's way back on a loaded machine.
  constexpr double kMarginMs = 300;
  Client direct(redis.port());
  ASSERT_EQ(direct.run({"SET", "hang:k", "v"}), "+OK");
  {
    Client c(proxy.port());
    ASSERT_EQ(c.run({"GET", "hang:k"}), "$v");
  }

  redis.pause();
  ResumeOnExit resume{redis};
  const auto paused_at = Clock::now();

  constexpr int kClients = 4;
  std::atomic<bool> stop{false};
  std::vector<std::vector<Sample>> samples(kClients);
  std::vector<std::thread> threads;
  std::atomic<long> ok_replies{0};  // "$v" replies, all clients
  for (int i = 0; i < kClients; ++i) {
    threads.emplace_back([&, i] {
      Client c(proxy.port());
      while (!stop) {
        const auto t = Clock::now();
        std::string reply = c.run({"GET", "hang:k"});
        samples[i].push_back({reply, ms_between(t, Clock::now())});
        if (reply == "$v") ++ok_replies;
        if (reply.starts_with("(no reply")) break;
        std::this_thread::sleep_for(1ms);  // a steady stream, not a spin
      }
    });
  }
  JoinOnExit joiner{stop, threads};

  // Opens after 3 timeouts (~request_timeout after the pause)...
  Samples s = scrape_until(
      proxy, [](const Samples& s) { return count(s, transitions("open")) >= 1; }, 5s);
  const auto opened_at = Clock::now();
  EXPECT_GE(count(s, transitions("open")), 1);
  EXPECT_GE(count(s, failures("timeout")), 3);
  figure("opened_after_sigstop_ms", ms_between(paused_at, opened_at));
  // ...stays open for open_for (1 s), then a half-open probe fails and opens it again: at least
  // 1 s apart (less 50 ms for the 10 ms polling of the scrapes). The probe's failure may come
  // before its own request_timeout: queued behind the handshake of a connection to the stopped
  // server, it fails when that handshake times out.
  s = scrape_until(
      proxy, [](const Samples& s) { return count(s, transitions("open")) >= 2; }, 5s);
  const double reopen_ms = ms_between(opened_at, Clock::now());
  figure("reopened_after_ms", reopen_ms);
  EXPECT_GE(count(s, transitions("open")), 2) << "not reopened by a failed probe";
  EXPECT_GE(count(s, transitions("half_open")), 1);
  EXPECT_EQ(count(s, transitions("closed")), 0) << "closed while Redis was stopped";
  EXPECT_GE(reopen_ms, 1000 - 50) << "open for less than open_for";
  EXPECT_LE(reopen_ms, 1000 + kRequestTimeoutMs + kMarginMs);

  redis.resume();
  const auto resumed_at = Clock::now();
  // The probes close it (traffic drives them), then the clients' GETs succeed again.
  s = scrape_until(
      proxy, [&](const Samples& s) { return gauge(s, kBreakerState) == 0 && ok_replies > 0; }, 8s);
  const double recovered_ms = ms_between(resumed_at, Clock::now());
  figure("recovered_after_sigcont_ms", recovered_ms);
  EXPECT_EQ(gauge(s, kBreakerState), 0);
  EXPECT_GE(count(s, transitions("closed")), 1);
  // open_for (1 s) + a reconnect backoff (<= 200 ms) + the probes, with room to spare.
  EXPECT_LT(recovered_ms, 4000);
  // Traffic flows for everyone after recovery: a few more rounds, all good.
  const long mark = ok_replies;
  wait_until([&] { return ok_replies >= mark + 5 * kClients; }, 5s);
  joiner.join();

  std::vector<double> all_ms, open_ms;
  std::map<std::string, long> kinds;
  long circuit_open = 0;
  for (int i = 0; i < kClients; ++i) {
    for (const Sample& x : samples[i]) {
      all_ms.push_back(x.ms);
      ++kinds[x.reply.size() > 60 ? x.reply.substr(0, 60) : x.reply];
      if (x.reply == kCircuitOpen) {
        open_ms.push_back(x.ms);
        ++circuit_open;
      }
    }
    ASSERT_FALSE(samples[i].empty());
    // After recovery the last replies are all good.
    for (std::size_t k = samples[i].size() - std::min<std::size_t>(3, samples[i].size());
         k < samples[i].size(); ++k) {
      EXPECT_EQ(samples[i][k].reply, "$v") << "client " << i << " reply " << k;
    }
  }
  for (const auto& [reply, n] : kinds) figure("reply " + reply, static_cast<double>(n));
  // Every reply is the value or one of the proxy's own errors: never a hang (10 s client
  // timeout), a lost connection, or a reply meant for another request.
  for (const auto& [reply, n] : kinds) {
    EXPECT_TRUE(reply == "$v" || reply == kCircuitOpen ||
                reply == "-" + std::string(errors::kUpstreamTimeout) ||
                reply == "-" + std::string(errors::kUpstreamUnavailable))
        << n << " x " << reply;
  }
  EXPECT_GE(kinds["-" + std::string(errors::kUpstreamTimeout)], 3);
  const Stats all = stats(all_ms), open = stats(open_ms);
  figure("all_replies", (std::ostringstream() << all).str());
  EXPECT_LE(all.max, kRequestTimeoutMs + kMarginMs) << "a request waited past request_timeout";
  ASSERT_GT(open.n, 20u) << "few requests met the open breaker";
  expect_answered_at_once(open_ms, "circuit_open_replies");
  // Every refusal by the breaker is counted.
  s = scrape(proxy);
  EXPECT_EQ(count(s, kBreakerRejected), circuit_open);

  // And the data path is whole again.
  Client c(proxy.port());
  EXPECT_EQ(c.run({"SET", "hang:after", "1"}), "+OK");
  EXPECT_EQ(direct.run({"GET", "hang:after"}), "$1");
}

// config/examples/protection.yaml as shipped (ports aside), 50 clients writing: Redis is killed,
// stays down until the breaker and the health check have seen it, and comes back on the same
// port. Redis runs with appendfsync always, so what it acknowledged before the kill survives it.
TEST(Protection, UpstreamKilledAndRestartedUnderLoadLosesNoAcknowledgedWrite) {
  SKIP_IN_DIRECT_MODE("the circuit breaker is the proxy's");
  std::ifstream file(std::string(RESPGUARD_SOURCE_DIR) + "/config/examples/protection.yaml");
  std::stringstream yaml;
  yaml << file.rdbuf();
  ASSERT_NE(yaml.str().find("rate: 1000"), std::string::npos) << "protection.yaml not found";
  RedisServer redis({"--appendonly", "yes", "--appendfsync", "always"});
  // --listen, --upstream and --admin (given after --config) override the file's addresses.
  ProxyServer proxy(redis.port(), {.config_yaml = yaml.str(), .extra_args = {}});

  // 50 clients, each a SET of a key of its own and an ECHO every 125 ms: 400 SETs/s, 800
  // requests/s from 127.0.0.1, under the file's 1,000/s per source address. The ECHO, answered
  // by the proxy in order with the SET, proves each SET got exactly one reply.
  constexpr int kClients = 50;
  constexpr auto kPeriod = 125ms;
  struct Load {
    std::vector<std::pair<std::string, Clock::time_point>> acked;  // key (value = key)
    std::map<std::string, long> errors;
    long sent = 0;
    std::string broken;  // the first reply out of step, if any
  };
  std::vector<Load> load(kClients);
  std::atomic<bool> stop{false};
  std::vector<std::thread> threads;
  JoinOnExit joiner{stop, threads};
  for (int c = 0; c < kClients; ++c) {
    threads.emplace_back([&, c] {
      Load& l = load[c];
      Client client(proxy.port(), 5s);
      // Spread over the period, so requests are in flight whenever Redis is killed.
      std::this_thread::sleep_for(c * kPeriod / kClients);
      for (long i = 0; !stop; ++i) {
        const auto next = Clock::now() + kPeriod;
        const std::string key = "load:" + std::to_string(c) + ":" + std::to_string(i);
        client.append({"SET", key, key});
        client.append({"ECHO", key});
        if (!client.flush()) {
          l.broken = "write failed: " + client.error();
          return;
        }
        ++l.sent;
        const std::string set = text(client.get_reply());
        const std::string echo = text(client.get_reply());
        if (echo != "$" + key) {
          l.broken = "SET " + key + " -> " + set + ", ECHO -> " + echo + " " + client.error();
          return;
        }
        if (set == "+OK") {
          l.acked.emplace_back(key, Clock::now());
        } else if (set.starts_with("-")) {
          ++l.errors[set];
        } else {
          l.broken = "SET " + key + " -> " + set;
          return;
        }
        std::this_thread::sleep_until(next);
      }
      // The last word: still in step.
      const std::string echo = client.run({"ECHO", "end"});
      if (echo != "$end" && l.broken.empty()) l.broken = "final ECHO -> " + echo;
    });
  }
  // Progress is read through Redis (keys present), not through the clients' vectors.
  auto keys_in_redis = [&] {
    Client direct(redis.port(), 2s);
    Reply r = direct.command({"DBSIZE"});
    return r && r->type == REDIS_REPLY_INTEGER ? r->integer : -1;
  };
  ASSERT_TRUE(wait_until([&] { return keys_in_redis() >= 3 * kClients; }, 5s))
      << "the load did not get going";

  redis.kill();
  const auto killed_at = Clock::now();
  // Down until the breaker opened and the health check marked Redis down (fall 3 x 500 ms).
  Samples s = scrape_until(
      proxy,
      [](const Samples& s) {
        return count(s, transitions("open")) >= 1 && gauge(s, kUpstreamHealthy) == 0;
      },
      6s);
  EXPECT_GE(count(s, transitions("open")), 1);
  EXPECT_EQ(gauge(s, kUpstreamHealthy), 0);
  figure("down_seen_after_ms", ms_between(killed_at, Clock::now()));

  const auto restart_at = Clock::now();
  redis.restart();  // same port, same dir: the AOF brings back what was acknowledged
  const auto restarted_at = Clock::now();
  figure("redis_restart_took_ms", ms_between(restart_at, restarted_at));
  // Recovery: the breaker closes (health rise 2 x 500 ms, then 3 probes) and SETs succeed.
  s = scrape_until(
      proxy, [](const Samples& s) { return gauge(s, kBreakerState) == 0; }, 10s);
  figure("breaker_closed_after_restart_ms", ms_between(restart_at, Clock::now()));
  EXPECT_EQ(gauge(s, kBreakerState), 0);
  // Let every client write a few times more after recovery.
  const long keys_then = keys_in_redis();
  wait_until([&] { return keys_in_redis() >= keys_then + 3 * kClients; }, 5s);
  joiner.join();

  // Now the clients' records are final.
  long sent = 0, acked = 0, acked_before_kill = 0, acked_after_restart = 0;
  std::map<std::string, long> errors;
  std::optional<Clock::time_point> first_after, all_after;
  for (int c = 0; c < kClients; ++c) {
    const Load& l = load[c];
    EXPECT_EQ(l.broken, "") << "client " << c << ": a request without exactly one reply";
    sent += l.sent;
    acked += static_cast<long>(l.acked.size());
    for (const auto& [text, n] : l.errors) errors[text] += n;
    std::optional<Clock::time_point> mine;
    for (const auto& [key, at] : l.acked) {
      if (at < killed_at) ++acked_before_kill;
      if (at > restart_at) {
        ++acked_after_restart;
        if (!mine) mine = at;
      }
    }
    EXPECT_TRUE(mine.has_value()) << "client " << c << " never got +OK after the restart";
    if (mine) {
      if (!first_after || *mine < *first_after) first_after = mine;
      if (!all_after || *mine > *all_after) all_after = mine;
    }
  }
  figure("sets_sent", static_cast<double>(sent));
  figure("sets_acked", static_cast<double>(acked));
  figure("acked_before_kill", static_cast<double>(acked_before_kill));
  figure("acked_after_restart", static_cast<double>(acked_after_restart));
  for (const auto& [text, n] : errors) figure("error " + text, static_cast<double>(n));
  ASSERT_TRUE(first_after.has_value());
  const double first_ok_ms = ms_between(restart_at, *first_after);
  const double all_ok_ms = ms_between(restart_at, *all_after);
  figure("first_ok_after_restart_ms", first_ok_ms);
  figure("all_clients_ok_after_restart_ms", all_ok_ms);
  EXPECT_LE(first_ok_ms, 2000) << "traffic must recover within 2 s of the restart";
  EXPECT_GT(acked_before_kill, 0);
  EXPECT_GT(acked_after_restart, 0);
  EXPECT_LT(acked, sent) << "no SET failed while Redis was down?";
  EXPECT_EQ(errors.count(rate_error("127.0.0.1", 1000)), 0u) << "the load stays under the limit";

  // Zero acknowledged writes lost: every +OK'd key is in Redis, with its value.
  Client direct(redis.port());
  long missing = 0;
  std::string first_missing;
  for (const Load& l : load) {
    for (std::size_t i = 0; i < l.acked.size(); i += 500) {
      std::vector<std::string> mget = {"MGET"};
      for (std::size_t k = i; k < std::min(l.acked.size(), i + 500); ++k) {
        mget.push_back(l.acked[k].first);
      }
      Reply r = direct.command(mget);
      ASSERT_TRUE(r && r->type == REDIS_REPLY_ARRAY) << text(r);
      for (std::size_t k = 0; k < r->elements; ++k) {
        if (text(r->element[k]) != "$" + mget[k + 1]) {
          if (missing++ == 0) first_missing = mget[k + 1];
        }
      }
    }
  }
  EXPECT_EQ(missing, 0) << "acknowledged writes lost, the first: " << first_missing;

  s = scrape(proxy);
  EXPECT_GE(count(s, transitions("closed")), 1);
  EXPECT_EQ(gauge(s, kUpstreamHealthy), 1);
  figure("breaker_failures",
         (std::ostringstream() << "connect=" << count(s, failures("connect"))
                               << " timeout=" << count(s, failures("timeout"))
                               << " connection_lost=" << count(s, failures("connection_lost")))
             .str());
}

// A Redis loading its dataset answers -LOADING: a breaker failure (unavailable_reply), unlike an
// ordinary error. The stub stands in for a redis-server with a large RDB.
TEST(Protection, LoadingRepliesAreBreakerFailures) {
  SKIP_IN_DIRECT_MODE("the circuit breaker is the proxy's");
  LoadingStub stub;
  ProxyServer proxy(stub.port(), {.config_yaml = "upstream:\n"
                                                 "  request_timeout: 1s\n"
                                                 "  reconnect_backoff_max: 200ms\n"
                                                 "breaker:\n"
                                                 "  enabled: true\n"
                                                 "  failure_threshold: 3\n"
                                                 "  open_for: 1s\n"
                                                 "  probes: 1\n"
                                                 "health_check:\n"
                                                 "  enabled: false\n",
                                  .extra_args = {}});
  Client c(proxy.port());
  for (int i = 0; i < 3; ++i) EXPECT_EQ(c.run({"GET", "k"}), kLoading) << "request " << i;
  EXPECT_EQ(stub.received("GET"), 3);
  Samples s = scrape_until(proxy, [](const Samples& s) { return gauge(s, kBreakerState) == 1; });
  EXPECT_EQ(count(s, failures("unavailable_reply")), 3);
  EXPECT_EQ(family_sum(s, "respguard_breaker_failures_total"), 3);
  EXPECT_EQ(gauge(s, kBreakerState), 1);
  EXPECT_EQ(count(s, transitions("open")), 1);

  // Open: answered at once, and nothing reaches the upstream.
  expect_circuit_open_at_once(c, "k", 20, "circuit_open_replies");
  EXPECT_EQ(stub.received("GET"), 3);

  // Loading done: after open_for, a probe succeeds and closes it.
  stub.set_loading(false);
  std::string reply;
  EXPECT_TRUE(wait_until(
      [&] {
        reply = c.run({"GET", "k"});
        EXPECT_TRUE(reply == kCircuitOpen || reply == "$ready") << reply;
        return reply == "$ready";
      },
      5s))
      << reply;
  s = scrape_until(proxy, [](const Samples& s) { return gauge(s, kBreakerState) == 0; });
  EXPECT_EQ(gauge(s, kBreakerState), 0);
  EXPECT_EQ(count(s, transitions("half_open")), 1);
  EXPECT_EQ(count(s, transitions("closed")), 1);
  EXPECT_EQ(count(s, failures("unavailable_reply")), 3);
}

// The active health check sees LOADING too (a PING answered -LOADING fails): Redis is down for
// /readyz, and the breaker is held open; when loading ends both recover.
TEST(Protection, LoadingUpstreamFailsHealthChecksAndReadyzUntilLoaded) {
  SKIP_IN_DIRECT_MODE("health checks are the proxy's");
  LoadingStub stub;
  ProxyServer proxy(stub.port(), {.config_yaml = "breaker:\n"
                                                 "  enabled: true\n"
                                                 "  open_for: 1s\n"
                                                 "  probes: 1\n"
                                                 "health_check:\n"
                                                 "  interval: 100ms\n"
                                                 "  timeout: 100ms\n"
                                                 "  fall: 2\n"
                                                 "  rise: 2\n",
                                  .extra_args = {}});
  const int admin = proxy.admin_port();
  const std::string unhealthy = "not ready: upstream 127.0.0.1:" + std::to_string(stub.port()) +
                                " is failing its health checks\n";
  std::string body;
  // Not ready from the start (connections are still being made), then for the health check's
  // reason: 2 PINGs answered -LOADING in a row.
  EXPECT_TRUE(wait_until(
      [&] { return http_status(admin, "/readyz", &body) == 503 && body == unhealthy; }, 5s))
      << body;
  EXPECT_EQ(http_status(admin, "/healthz"), 200);
  Samples s = scrape(proxy);
  EXPECT_EQ(gauge(s, kUpstreamHealthy), 0);
  EXPECT_GE(count(s, health_checks("failed")), 2);
  EXPECT_EQ(count(s, health_checks("ok")), 0);
  EXPECT_EQ(gauge(s, kBreakerState), 1) << "a down upstream holds the breaker open";
  EXPECT_GE(stub.received("PING"), 2);
  Client c(proxy.port());
  const long long gets = stub.received("GET");
  EXPECT_EQ(c.run({"GET", "k"}), kCircuitOpen);
  EXPECT_EQ(stub.received("GET"), gets);

  stub.set_loading(false);
  const auto loaded_at = Clock::now();
  EXPECT_TRUE(wait_until([&] { return http_status(admin, "/readyz", &body) == 200; }, 5s)) << body;
  figure("ready_after_loaded_ms", ms_between(loaded_at, Clock::now()));
  s = scrape(proxy);
  EXPECT_EQ(gauge(s, kUpstreamHealthy), 1);
  EXPECT_GE(count(s, health_checks("ok")), 2);
  EXPECT_EQ(c.run({"GET", "k"}), "$ready");  // the probe
  s = scrape_until(proxy, [](const Samples& s) { return gauge(s, kBreakerState) == 0; });
  EXPECT_EQ(gauge(s, kBreakerState), 0);
}

// Ordinary command errors are the client's problem, not the upstream's: many in a row, far more
// than failure_threshold and a 100 % error ratio, leave the breaker closed.
TEST(Protection, CommandErrorsAreNotBreakerFailures) {
  SKIP_IN_DIRECT_MODE("the circuit breaker is the proxy's");
  RedisServer redis;
  ProxyServer proxy(redis.port(), {.config_yaml = "breaker:\n"
                                                  "  enabled: true\n"
                                                  "  failure_threshold: 3\n"
                                                  "  failure_ratio_percent: 50\n"
                                                  "  min_requests: 4\n"
                                                  "  window: 10s\n"
                                                  "  open_for: 5s\n",
                                   .extra_args = {}});
  Client direct(redis.port());
  ASSERT_EQ(direct.run({"SET", "str", "abc"}), "+OK");
  Client c(proxy.port());
  for (int i = 0; i < 10; ++i) {
    EXPECT_EQ(c.run({"INCR", "str"}), "-" + std::string(errors::kNotInteger));
  }
  for (int i = 0; i < 5; ++i) {
    EXPECT_EQ(c.run({"LPUSH", "str", "x"}),
              "-WRONGTYPE Operation against a key holding the wrong kind of value");
  }
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(c.run({"SET", "k", "v", "EX", "0"}), "-ERR invalid expire time in 'set' command");
  }
  EXPECT_EQ(c.run({"NOSUCHCOMMAND"}),
            "-ERR unknown command 'NOSUCHCOMMAND', with args beginning with: ");
  // They reached Redis and failed there.
  EXPECT_EQ(commandstat_calls(redis.port(), "incr"), 10);
  EXPECT_EQ(commandstat_calls(redis.port(), "lpush"), 5);

  // Still closed: the next request goes through.
  EXPECT_EQ(c.run({"GET", "str"}), "$abc");
  Samples s = scrape(proxy);
  EXPECT_EQ(gauge(s, kBreakerState), 0);
  EXPECT_EQ(family_sum(s, "respguard_breaker_failures_total"), 0);
  EXPECT_EQ(family_sum(s, "respguard_breaker_transitions_total"), 0);
  EXPECT_EQ(count(s, kBreakerRejected), 0);
}

// /readyz follows the health check: a stopped Redis keeps its TCP connections (so the proxy's
// connections all look ready) but fails its PINGs; /readyz fails, the breaker is held open so
// clients get a fast error instead of waiting for request_timeout (5 s), and all recovers after
// SIGCONT.
TEST(Protection, ReadyzFailsWhileHealthChecksSeeTheUpstreamDownAndRecoversAfter) {
  SKIP_IN_DIRECT_MODE("health checks are the proxy's");
  RedisServer redis;
  ProxyServer proxy(redis.port(), {.config_yaml = "breaker:\n"
                                                  "  enabled: true\n"
                                                  "  open_for: 1s\n"
                                                  "  probes: 1\n"
                                                  "health_check:\n"
                                                  "  interval: 100ms\n"
                                                  "  timeout: 100ms\n"
                                                  "  fall: 3\n"
                                                  "  rise: 2\n",
                                   .extra_args = {}});
  const int admin = proxy.admin_port();
  std::string body;
  ASSERT_TRUE(wait_until([&] { return http_status(admin, "/readyz", &body) == 200; }, 5s)) << body;
  Client direct(redis.port());
  ASSERT_EQ(direct.run({"SET", "ready:k", "v"}), "+OK");
  Client c(proxy.port());
  ASSERT_EQ(c.run({"GET", "ready:k"}), "$v");
  const long long gets = commandstat_calls(redis.port(), "get");

  redis.pause();
  ResumeOnExit resume{redis};
  const auto paused_at = Clock::now();
  EXPECT_TRUE(wait_until([&] { return http_status(admin, "/readyz", &body) == 503; }, 5s)) << body;
  const double unready_ms = ms_between(paused_at, Clock::now());
  figure("unready_after_sigstop_ms", unready_ms);
  EXPECT_EQ(body, "not ready: upstream 127.0.0.1:" + std::to_string(redis.port()) +
                      " is failing its health checks\n");
  EXPECT_EQ(http_status(admin, "/healthz"), 200) << "liveness does not follow Redis";
  Samples s = scrape(proxy);
  EXPECT_EQ(gauge(s, kUpstreamHealthy), 0);
  EXPECT_GE(count(s, health_checks("failed")), 3);
  EXPECT_EQ(gauge(s, kBreakerState), 1);
  // The shared connections are still "ready" (nothing failed on them): only the health check
  // tells that Redis is gone.
  EXPECT_GE(gauge(s, "respguard_upstream_connections{state=\"ready\"}"), 1);
  expect_circuit_open_at_once(c, "ready:k", 20, "circuit_open_replies");
  // Still down a few checks later.
  EXPECT_TRUE(wait_until(
      [&] {
        return count(scrape(proxy), health_checks("failed")) >=
               count(s, health_checks("failed")) + 3;
      },
      5s));
  EXPECT_EQ(http_status(admin, "/readyz"), 503);

  redis.resume();
  const auto resumed_at = Clock::now();
  EXPECT_TRUE(wait_until([&] { return http_status(admin, "/readyz", &body) == 200; }, 5s)) << body;
  figure("ready_after_sigcont_ms", ms_between(resumed_at, Clock::now()));
  EXPECT_EQ(body, "ready\n");
  s = scrape(proxy);
  EXPECT_EQ(gauge(s, kUpstreamHealthy), 1);
  EXPECT_EQ(c.run({"GET", "ready:k"}), "$v");  // the half-open probe
  s = scrape_until(proxy, [](const Samples& s) { return gauge(s, kBreakerState) == 0; });
  EXPECT_EQ(gauge(s, kBreakerState), 0);
  // The GET refused while Redis was stopped never reached it.
  EXPECT_EQ(commandstat_calls(redis.port(), "get"), gets + 1);
}

}  // namespace
}  // namespace rgtest
