// The upstream endpoint's protection state, shared by all workers: its circuit breaker and the
// verdict of the active health check. The breaker and the rise/fall counting are pure classes
// (src/protection); this is their glue: what counts as a failure, logs and metrics.
#pragma once

#include <atomic>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

#include "respguard/common/asio.hpp"
#include "respguard/config/config.hpp"
#include "respguard/observability/metrics.hpp"
#include "respguard/protection/circuit_breaker.hpp"
#include "respguard/protection/health_state.hpp"
#include "respguard/resp/parser.hpp"

namespace respguard::upstream {

class UpstreamGuard {
 public:
  using State = protection::CircuitBreaker::State;

  // Shard `workers` of `metrics` is the main thread's (health checks, scrapes).
  UpstreamGuard(const config::Config& config, unsigned workers, observability::Registry& metrics);

  // Before a request goes upstream: false while the circuit is open (answer kCircuitOpen).
  // `metrics` is the calling worker's shard.
  bool allow(SteadyClock::time_point now, observability::Shard& metrics) {
    if (!breaker_.enabled()) return true;
    const auto permit = breaker_.allow(now);
    if (permit.transition) report(*permit.transition, metrics);
    if (!permit.allowed) metrics.inc(observability::Metric::BreakerRejected);
    return permit.allowed;
  }

  // The upstream's reply to a client's request. Replies saying the server cannot serve now
  // (LOADING, BUSY, MASTERDOWN, TRYAGAIN, CLUSTERDOWN) are failures; everything else,
  // including ordinary command errors, is a success.
  void on_reply(unsigned shard, std::string_view reply, const resp::ReplyInfo& info,
                SteadyClock::time_point now, observability::Shard& metrics) {
    if (!breaker_.enabled()) return;
    if (info.is_error() && is_unavailable_reply(reply)) {
      return on_failure(shard, observability::BreakerFailure::UnavailableReply, now, metrics);
    }
    if (auto t = breaker_.on_success(shard, now)) report(*t, metrics);
  }
  void on_failure(unsigned shard, observability::BreakerFailure kind, SteadyClock::time_point now,
                  observability::Shard& metrics);

  // One active health check's result (main thread only).
  void on_health_check(bool ok, SteadyClock::time_point now, observability::Shard& metrics);

  static bool is_unavailable_reply(std::string_view reply);

  bool health_checks_enabled() const { return config_.health_check.enabled; }
  bool healthy() const { return healthy_.load(std::memory_order_acquire); }
  bool breaker_enabled() const { return breaker_.enabled(); }
  // Main thread: the state now (Open turns HalfOpen once open_for has passed, traffic or not).
  State breaker_state(SteadyClock::time_point now);
  const std::string& endpoint() const { return endpoint_; }

 private:
  void report(const protection::CircuitBreaker::Transition& t, observability::Shard& metrics);

  const config::Config& config_;
  std::string endpoint_;
  protection::CircuitBreaker breaker_;
  observability::Shard& main_metrics_;
  protection::HealthState health_;  // main thread only
  std::atomic<bool> healthy_{true};
};

}  // namespace respguard::upstream
