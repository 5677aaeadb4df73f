// The main thread's side of the hot keys (docs/security.md, "Command guard"): once per
// hot_keys.report_interval it takes each worker's table (posted to the worker's thread, so the
// request path never locks), merges them, keeps the top N with their rates for the metric
// respguard_hot_key_requests_per_second{rank,key} and logs them when the hottest is over
// hot_keys.log_threshold_per_second.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "respguard/common/asio.hpp"
#include "respguard/config/config.hpp"
#include "respguard/observability/metrics.hpp"
#include "respguard/protection/hot_keys.hpp"

namespace respguard::server {

class Worker;

// A key as the metric and the log show it: printable ASCII as is, other bytes as \xHH (label
// values must be UTF-8; a log line must stay one line).
std::string printable_key(std::string_view key);

class HotKeysReporter {
 public:
  struct Ranked {
    std::string key;  // printable_key()
    double per_second = 0;
  };

  // Main thread. Does nothing when config.enabled is false (the workers then keep no table).
  HotKeysReporter(asio::io_context& io, const config::HotKeysConfig& config,
                  observability::Registry& metrics, std::vector<Worker*> workers);
  HotKeysReporter(const HotKeysReporter&) = delete;
  HotKeysReporter& operator=(const HotKeysReporter&) = delete;

  const std::vector<Ranked>& top() const { return top_; }  // main thread

 private:
  void schedule();
  void gather();
  void publish();

  asio::io_context& io_;
  const config::HotKeysConfig config_;
  std::vector<Worker*> workers_;
  asio::steady_timer timer_;
  std::vector<std::vector<protection::HotKey>> lists_;  // by worker, this round
  std::size_t waiting_ = 0;                             // workers yet to answer this round
  SteadyClock::time_point window_start_;
  SteadyClock::time_point round_start_;
  std::vector<Ranked> top_;
};

}  // namespace respguard::server
