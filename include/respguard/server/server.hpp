// The listener and the workers: accepts connections, enforces maxclients, hands each
// connection to a worker round-robin, and drains on SIGTERM/SIGINT.
#pragma once

#include <memory>
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
  explicit Server(const config::Config& config);
  ~Server();

  // Binds the listener (throws std::system_error naming the address on failure).
  void bind();
  // Runs until SIGTERM/SIGINT and the drain that follows. Returns the process exit code.
  int run();
  // The bound port (useful with port 0).
  std::uint16_t port() const;
  // Why /readyz fails, or "" when ready.
  std::string not_ready_reason();

 private:
  void accept();
  void on_signal(int signo);
  void check_drained();
  void stop_workers();
  void sweep_rate_limits();

  observability::Shard& main_metrics() { return shared_.metrics.shard(workers_.size()); }

  const config::Config& config_;
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
