#include "respguard/upstream/health_checker.hpp"

#include "respguard/common/loop_clock.hpp"

namespace respguard::upstream {

HealthChecker::HealthChecker(asio::io_context& io, const config::Config& config,
                             UpstreamGuard& guard, std::shared_ptr<UpstreamInfo> info,
                             observability::Shard& metrics, const tls::ContextHolder* tls)
    : io_(io), config_(config), guard_(guard), metrics_(metrics), timer_(io) {
  const config::UpstreamConfig& up = config.upstream;
  ConnectionOptions o = ConnectionOptions::from(config);
  o.connect_timeout = std::min(up.connect_timeout, config.health_check.timeout);
  // The PING's own deadline: a timeout resets the connection and answers the PING with an
  // error, which is exactly one failed check.
  o.request_timeout = config.health_check.timeout;
  // Reconnect at the check's pace: a check finding no connection is a failed check anyway.
  o.reconnect_backoff_min = std::min(up.reconnect_backoff_min, config.health_check.interval);
  o.reconnect_backoff_max = std::min(up.reconnect_backoff_max, config.health_check.interval);
  o.name = "respguard-health";
  o.quiet = true;
  o.metrics = &metrics;  // the main thread's shard; the guard is not told: checks speak for it
  o.tls = tls;           // checks take the same path as client traffic: TLS when it is on
  conn_ = std::make_shared<UpstreamConnection>(io, std::move(o), std::move(info));
}

HealthChecker::~HealthChecker() {
  stop();
}

void HealthChecker::start() {
  if (!config_.health_check.enabled) return;
  conn_->start();
  timer_.expires_after(config_.health_check.interval);
  timer_.async_wait([this](boost::system::error_code ec) {
    if (!ec) tick();
  });
}

void HealthChecker::stop() {
  if (stopped_) return;
  stopped_ = true;
  timer_.cancel();
  conn_->close("respguard shutting down");
}

void HealthChecker::tick() {
  if (stopped_) return;
  const auto now = LoopClock::tick();
  if (!outstanding_) {
    if (conn_->accepting()) {
      outstanding_ = true;
      conn_->send("*1\r\n$4\r\nPING\r\n", this, ++sent_, now + config_.health_check.timeout);
      conn_->flush();
    } else {
      guard_.on_health_check(false, now, metrics_);  // not even connected
    }
  }
  // An unanswered PING is judged by its own deadline (the connection times it out).
  timer_.expires_after(config_.health_check.interval);
  timer_.async_wait([this](boost::system::error_code ec) {
    if (!ec) tick();
  });
}

void HealthChecker::on_reply(std::uint64_t cookie, std::string_view reply,
                             const resp::ReplyInfo& info) {
  if (cookie != sent_) return;
  outstanding_ = false;
  if (stopped_) return;
  // +PONG is healthy; LOADING, BUSY, a timeout or a lost connection are not. Other errors
  // (NOAUTH, NOPERM: a misconfiguration) also fail: the proxy cannot serve through them.
  const bool ok = !info.is_error() && reply.starts_with("+PONG");
  guard_.on_health_check(ok, LoopClock::now(), metrics_);
}

}  // namespace respguard::upstream
