// The listener and the workers: accepts connections, enforces maxclients, hands each
// connection to a worker round-robin, drains on SIGTERM/SIGINT and reloads the configuration on
// SIGHUP or POST /reload.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "respguard/common/asio.hpp"
#include "respguard/config/config.hpp"
#include "respguard/observability/admin_server.hpp"
#include "respguard/server/coherence.hpp"
#include "respguard/server/hot_keys_reporter.hpp"
#include "respguard/server/worker.hpp"
#include "respguard/upstream/health_checker.hpp"

namespace respguard::server {

class Server {
 public:
  // Reads the configuration again for a reload, as at start (file and command-line overrides);
  // throws config::ConfigError. Empty: reloads are refused.
  using ConfigSource = std::function<config::Config()>;

  explicit Server(const config::Config& config, ConfigSource reload_source = {});
  ~Server();

  // Binds the listener (throws std::system_error naming the address on failure).
  void bind();
  // Runs until SIGTERM/SIGINT and the drain that follows. Returns the process exit code.
  int run();
  // The bound port (useful with port 0).
  std::uint16_t port() const;
  // Why /readyz fails, or "" when ready.
  std::string not_ready_reason();

  struct ReloadOutcome {
    bool ok = false;
    std::string message;  // what changed, what needs a restart, or why nothing did
  };
  // Re-reads the configuration and applies what can change live (LiveConfig). An invalid
  // configuration changes nothing. Logged, and counted in respguard_config_reloads_total.
  // Main thread only. `trigger` names the cause in the log ("SIGHUP", "POST /reload").
  ReloadOutcome reload(std::string_view trigger);

 private:
  void accept();
  void on_signal(int signo);
  void check_drained();
  void stop_workers();
  void sweep_rate_limits();

  observability::Shard& main_metrics() { return shared_.metrics.shard(workers_.size()); }

  const config::Config& config_;
  ConfigSource reload_source_;
  SharedState shared_;
  asio::io_context io_;  // listener, signals, drain timer: the main thread
  tcp::acceptor acceptor_;
  std::unique_ptr<observability::AdminServer> admin_;
  asio::signal_set signals_;
  asio::steady_timer drain_timer_;
  asio::steady_timer rate_sweep_timer_;
  std::unique_ptr<upstream::HealthChecker> health_;
  std::unique_ptr<Coherence> coherence_;  // the coherence channel and Bloom filter scans
  std::unique_ptr<HotKeysReporter> hot_keys_;  // merges the workers' hot keys per interval
  SteadyClock::time_point drain_deadline_;
  std::vector<std::unique_ptr<Worker>> workers_;
  std::size_t next_worker_ = 0;
  bool draining_ = false;
};

}  // namespace respguard::server
