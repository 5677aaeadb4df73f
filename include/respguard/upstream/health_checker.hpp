// Active health checks: a PING every health_check.interval on a control connection of its own
// (not a shared one, so a check never queues behind client traffic it is meant to judge).
// Each result goes to the UpstreamGuard, which counts rise/fall, holds the breaker open while
// the upstream is down and answers /readyz. Runs on the main thread's io_context.
#pragma once

#include <memory>

#include "respguard/common/asio.hpp"
#include "respguard/config/config.hpp"
#include "respguard/observability/metrics.hpp"
#include "respguard/upstream/upstream_connection.hpp"
#include "respguard/upstream/upstream_guard.hpp"

namespace respguard::upstream {

class HealthChecker final : private ReplySink {
 public:
  HealthChecker(asio::io_context& io, const config::Config& config, UpstreamGuard& guard,
                std::shared_ptr<UpstreamInfo> info, observability::Shard& metrics,
                const tls::ContextHolder* tls = nullptr);
  ~HealthChecker();

  void start();
  void stop();

 private:
  void tick();
  void on_reply(std::uint64_t cookie, std::string_view reply, const resp::ReplyInfo& info) override;

  asio::io_context& io_;
  const config::Config& config_;
  UpstreamGuard& guard_;
  observability::Shard& metrics_;
  std::shared_ptr<UpstreamConnection> conn_;
  asio::steady_timer timer_;
  std::uint64_t sent_ = 0;    // PINGs sent (cookie = their number)
  bool outstanding_ = false;  // a PING is unanswered
  bool stopped_ = false;
};

}  // namespace respguard::upstream
