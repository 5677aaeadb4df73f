#include "respguard/upstream/upstream_guard.hpp"

#include <spdlog/spdlog.h>

namespace respguard::upstream {

using observability::Metric;
using protection::to_string;

UpstreamGuard::UpstreamGuard(const config::Config& config, unsigned workers,
                             observability::Registry& metrics)
    : config_(config),
      endpoint_(config.upstream.address.to_string()),
      breaker_(config.breaker, workers),
      main_metrics_(metrics.shard(workers)),
      health_(config.health_check) {
  metrics.set_sampler(Metric::UpstreamHealthy, [this] { return healthy() ? 1.0 : 0.0; });
  metrics.set_sampler(Metric::BreakerState, [this] {
    return static_cast<double>(breaker_state(SteadyClock::now()));  // Closed 0, Open 1, HalfOpen 2
  });
}

bool UpstreamGuard::is_unavailable_reply(std::string_view reply) {
  // The error code is the first word of the reply ("-LOADING Redis is loading ...").
  for (std::string_view code : {"-LOADING", "-BUSY", "-MASTERDOWN", "-TRYAGAIN", "-CLUSTERDOWN"}) {
    if (reply.starts_with(code) && reply.size() > code.size() &&
        (reply[code.size()] == ' ' || reply[code.size()] == '\r')) {
      return true;
    }
  }
  return false;
}

void UpstreamGuard::on_failure(unsigned shard, observability::BreakerFailure kind,
                               SteadyClock::time_point now, observability::Shard& metrics) {
  if (!breaker_.enabled()) return;
  metrics.inc(Metric::BreakerFailures, static_cast<std::size_t>(kind));
  if (auto t = breaker_.on_failure(shard, now)) report(*t, metrics);
}

void UpstreamGuard::on_health_check(bool ok, SteadyClock::time_point now,
                                    observability::Shard& metrics) {
  metrics.inc(Metric::HealthChecks,
              static_cast<std::size_t>(ok ? observability::HealthResult::Ok
                                          : observability::HealthResult::Failed));
  const std::optional<bool> up = health_.record(ok);
  if (!up) return;
  healthy_.store(*up, std::memory_order_release);
  if (*up) {
    spdlog::info("upstream {} is up again (health check: {} good PINGs in a row)", endpoint_,
                 config_.health_check.rise);
  } else {
    spdlog::warn("upstream {} is down (health check: {} failed PINGs in a row)", endpoint_,
                 config_.health_check.fall);
  }
  if (auto t = breaker_.hold_open(!*up, now)) report(*t, metrics);
}

UpstreamGuard::State UpstreamGuard::breaker_state(SteadyClock::time_point now) {
  // Without traffic nothing else would notice open_for passing (an unready pod gets none).
  if (auto t = breaker_.poll(now)) report(*t, main_metrics_);
  return breaker_.state();
}

void UpstreamGuard::report(const protection::CircuitBreaker::Transition& t,
                           observability::Shard& metrics) {
  metrics.inc(Metric::BreakerTransitions, static_cast<std::size_t>(t.to));
  if (t.to == State::Open) {
    spdlog::warn("upstream {}: circuit breaker {} -> open: failing requests at once for {} ms",
                 endpoint_, to_string(t.from), config_.breaker.open_for.count());
  } else {
    spdlog::info("upstream {}: circuit breaker {} -> {}", endpoint_, to_string(t.from),
                 to_string(t.to));
  }
}

}  // namespace respguard::upstream
