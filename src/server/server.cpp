#include "respguard/server/server.hpp"

#include <spdlog/spdlog.h>

#include <csignal>
#include <thread>

#include "respguard/common/errors.hpp"
#include "respguard/common/log_limiter.hpp"

namespace respguard::server {
namespace {
constexpr std::chrono::milliseconds kDrainPoll{20};

unsigned worker_count(const config::Config& config) {
  return config.server.workers ? config.server.workers
                               : std::max(1u, std::thread::hardware_concurrency());
}
}  // namespace

Server::Server(const config::Config& config, ConfigSource reload_source)
    : config_(config),
      reload_source_(std::move(reload_source)),
      shared_(config, worker_count(config)),
      acceptor_(io_),
      signals_(io_, SIGINT, SIGTERM, SIGHUP),
      drain_timer_(io_),
      rate_sweep_timer_(io_) {
  for (unsigned i = 0, n = worker_count(config); i < n; ++i) {
    workers_.push_back(std::make_unique<Worker>(i, shared_));
  }
  using observability::Metric;
  shared_.metrics.set_sampler(Metric::ClientConnections, [this] {
    return static_cast<double>(shared_.clients.load(std::memory_order_relaxed));
  });
  shared_.metrics.set_sampler(Metric::NegativeCacheEntries, [this] {
    return static_cast<double>(shared_.policies.negative.size());
  });
  shared_.metrics.set_sampler(Metric::NegativeCacheEvictions, [this] {
    return static_cast<double>(shared_.policies.negative.evictions());
  });
  shared_.metrics.set_sampler(Metric::RateLimitIdentities, [this] {
    return static_cast<double>(shared_.live->rate_limiter->size());
  });
  health_ = std::make_unique<upstream::HealthChecker>(
      io_, config, shared_.guard, shared_.upstream_info, main_metrics(), &shared_.tls.upstream);
  shared_.metrics.set_sampler(Metric::PinnedConnections, [this] {
    return static_cast<double>(shared_.dedicated_connections.load(std::memory_order_relaxed));
  });
  std::vector<asio::any_io_executor> executors;
  for (auto& w : workers_) executors.push_back(w->io().get_executor());
  coherence_ = std::make_unique<Coherence>(io_, shared_, main_metrics(), std::move(executors));
  std::vector<Worker*> workers;
  for (auto& w : workers_) workers.push_back(w.get());
  hot_keys_ =
      std::make_unique<HotKeysReporter>(io_, config.hot_keys, shared_.metrics, std::move(workers));
}

std::string Server::not_ready_reason() {
  if (shared_.draining.load()) return "shutting down";
  const std::string& upstream = config_.upstream.address.to_string();
  if (shared_.guard.health_checks_enabled() && !shared_.guard.healthy()) {
    return "upstream " + upstream + " is failing its health checks";
  }
  if (config_.admin.unready_when_breaker_open &&
      shared_.guard.breaker_state(SteadyClock::now()) == upstream::UpstreamGuard::State::Open) {
    return "the circuit breaker for upstream " + upstream + " is open";
  }
  if (!coherence_->settled()) {
    return "the coherence channel to " + upstream + " is not up yet (rules keep local state)";
  }
  // Every worker must have a ready connection: clients land on any of them.
  const auto ready = static_cast<std::size_t>(observability::UpstreamState::Ready);
  for (std::size_t w = 0; w < workers_.size(); ++w) {
    if (shared_.metrics.shard_value(w, observability::Metric::UpstreamConnections, ready) < 1) {
      return "worker " + std::to_string(w) + " has no ready upstream connection to " +
             config_.upstream.address.to_string();
    }
  }
  return {};
}

Server::~Server() {
  for (auto& w : workers_) w->join();
}

void Server::bind() {
  const auto& listen = config_.server.listen;
  tcp::resolver resolver(io_);
  boost::system::error_code ec;
  auto results =
      resolver.resolve(listen.host, std::to_string(listen.port), tcp::resolver::passive, ec);
  if (ec || results.empty()) {
    throw std::system_error(ec, "cannot resolve listen address " + listen.to_string());
  }
  tcp::endpoint ep = results.begin()->endpoint();
  acceptor_.open(ep.protocol());
  acceptor_.set_option(tcp::acceptor::reuse_address(true));
  acceptor_.bind(ep, ec);
  if (ec) throw std::system_error(ec, "cannot listen on " + listen.to_string());
  acceptor_.listen(config_.server.tcp_backlog);
  if (config_.admin.enabled) {
    observability::AdminHandlers handlers;
    handlers.metrics = [this] { return shared_.metrics.render(); };
    handlers.not_ready_reason = [this] { return not_ready_reason(); };
    handlers.reload = [this] {
      ReloadOutcome r = reload("POST /reload");
      return observability::HttpResponse{r.ok ? 200 : 400, "text/plain", r.message + "\n"};
    };
    admin_ = std::make_unique<observability::AdminServer>(io_, std::move(handlers));
    admin_->listen(config_.admin.listen);
  }
}

std::uint16_t Server::port() const {
  return acceptor_.local_endpoint().port();
}

int Server::run() {
  for (auto& w : workers_) w->start();
  spdlog::info("respguard listening on {} with {} workers, upstream {}, admin {}",
               config_.server.listen.to_string(), workers_.size(),
               config_.upstream.address.to_string(),
               admin_ ? config_.admin.listen.to_string() : std::string("off"));
  signals_.async_wait([this](boost::system::error_code ec, int signo) {
    if (!ec) on_signal(signo);
  });
  accept();
  health_->start();
  coherence_->start();
  sweep_rate_limits();
  io_.run();
  health_->stop();
  coherence_->stop();
  if (admin_) admin_->close();
  stop_workers();
  spdlog::info("respguard stopped");
  return 0;
}

void Server::accept() {
  Worker& worker = *workers_[next_worker_];
  next_worker_ = (next_worker_ + 1) % workers_.size();
  acceptor_.async_accept(
      worker.io(), [this, &worker](boost::system::error_code ec, tcp::socket socket) {
        if (ec == asio::error::operation_aborted || !acceptor_.is_open()) return;
        if (ec) {
          // EMFILE and friends: keep accepting; the listener must not die with one bad accept.
          spdlog::warn("accept: {}", ec.message());
        } else if (shared_.clients.load(std::memory_order_relaxed) >=
                   shared_.live->config.server.maxclients) {
          // As Redis: tell the client why, then close.
          static LogLimiter limiter(std::chrono::seconds(1));
          if (std::uint64_t suppressed = 0; limiter.allow(suppressed)) {
            boost::system::error_code peer_ec;
            const auto peer = socket.remote_endpoint(peer_ec);
            spdlog::warn(
                "maxclients ({}) reached: refusing a client from {} ({} similar suppressed)",
                shared_.live->config.server.maxclients,
                peer_ec ? std::string("?") : peer.address().to_string(), suppressed);
          }
          std::string reply = "-" + std::string(errors::kMaxClients) + "\r\n";
          boost::system::error_code ignored;
          socket.non_blocking(true, ignored);
          socket.write_some(asio::buffer(reply), ignored);
          socket.close(ignored);
          main_metrics().inc(observability::Metric::ClientConnectionsRejected,
                             static_cast<std::size_t>(observability::RejectReason::MaxClients));
        } else {
          shared_.clients.fetch_add(1, std::memory_order_relaxed);
          main_metrics().inc(observability::Metric::ClientConnectionsAccepted);
          worker.adopt(std::move(socket));
        }
        accept();
      });
}

void Server::on_signal(int signo) {
  if (signo == SIGHUP) {
    if (!draining_) reload("SIGHUP");
    signals_.async_wait([this](boost::system::error_code ec, int next) {
      if (!ec) on_signal(next);
    });
    return;
  }
  if (draining_) {
    spdlog::warn("second signal {}: stopping now", signo);
    io_.stop();
    return;
  }
  draining_ = true;
  shared_.draining = true;
  spdlog::info("signal {}: draining (grace {} ms)", signo, config_.server.shutdown_grace.count());
  boost::system::error_code ignored;
  acceptor_.close(ignored);
  for (auto& w : workers_) w->begin_drain();
  drain_deadline_ = SteadyClock::now() + config_.server.shutdown_grace;
  signals_.async_wait([this](boost::system::error_code ec, int signo) {
    if (!ec) on_signal(signo);
  });
  check_drained();
}

void Server::check_drained() {
  const std::size_t left = shared_.clients.load(std::memory_order_relaxed);
  if (left == 0) {
    io_.stop();
    return;
  }
  if (SteadyClock::now() >= drain_deadline_) {
    spdlog::warn("shutdown grace over with {} clients still busy; closing them", left);
    io_.stop();
    return;
  }
  drain_timer_.expires_after(kDrainPoll);
  drain_timer_.async_wait([this](boost::system::error_code ec) {
    if (!ec) check_drained();
  });
}

void Server::sweep_rate_limits() {
  // Identities nobody has used for rate_limit.idle_expiry are forgotten: memory stays bounded
  // by the clients seen recently, however many come and go.
  shared_.live->rate_limiter->sweep(SteadyClock::now());
  rate_sweep_timer_.expires_after(std::chrono::seconds(5));
  rate_sweep_timer_.async_wait([this](boost::system::error_code ec) {
    if (!ec) sweep_rate_limits();
  });
}

Server::ReloadOutcome Server::reload(std::string_view trigger) {
  using observability::Metric;
  using observability::ReloadResult;
  auto fail = [&](std::string why) {
    spdlog::error("configuration reload ({}) failed; the running configuration stays: {}", trigger,
                  why);
    main_metrics().inc(Metric::ConfigReloads, static_cast<std::size_t>(ReloadResult::Failure));
    return ReloadOutcome{false, "reload failed, the running configuration stays: " + why};
  };
  if (!reload_source_) return fail("this process was started without a configuration to re-read");
  config::Config next;
  try {
    next = reload_source_();
  } catch (const std::exception& e) {
    return fail(e.what());
  }
  const std::shared_ptr<const LiveConfig>& running = shared_.live;
  ReloadPlan plan = plan_reload(running->config, next);
  std::shared_ptr<const LiveConfig> live;
  try {
    live =
        std::make_shared<const LiveConfig>(plan.effective, running->generation + 1, running.get());
  } catch (const std::invalid_argument& e) {
    return fail(e.what());  // an ACL rule
  }
  // Certificates are read again even when their paths did not change: renewing one means
  // replacing its files in place. Both contexts or neither; new connections take them.
  if (std::string why = shared_.tls.reload(plan.effective); !why.empty()) return fail(why);
  if (plan.effective.log.level != running->config.log.level) {
    spdlog::set_level(spdlog::level::from_str(plan.effective.log.level));
  }
  shared_.live = live;
  for (auto& w : workers_) w->set_live(live);
  main_metrics().inc(Metric::ConfigReloads, static_cast<std::size_t>(ReloadResult::Success));

  auto joined = [](const std::vector<std::string>& keys) {
    std::string out;
    for (const std::string& k : keys) out += (out.empty() ? "" : ", ") + k;
    return out;
  };
  std::string message = plan.applied.empty()
                            ? "configuration reloaded: nothing changed"
                            : "configuration reloaded: applied " + joined(plan.applied);
  if (!plan.need_restart.empty()) {
    message += "; these keep their running values until a restart: " + joined(plan.need_restart);
    spdlog::warn("{} ({})", message, trigger);
  } else {
    spdlog::info("{} ({})", message, trigger);
  }
  return {true, std::move(message)};
}

void Server::stop_workers() {
  for (auto& w : workers_) w->stop();
  for (auto& w : workers_) w->join();
}

}  // namespace respguard::server
