#include "respguard/server/worker.hpp"

#include <spdlog/spdlog.h>

#include <random>

#include "respguard/server/client_session.hpp"

namespace respguard::server {
namespace {
constexpr std::chrono::seconds kSweepInterval{1};
}

Worker::Worker(unsigned index, SharedState& shared)
    : index_(index),
      shared_(shared),
      io_(1),  // one thread per io_context: Asio can skip its internal locking
      work_(asio::make_work_guard(io_)),
      pool_(
          io_, shared.config, index, shared.upstream_info, shared.dedicated_connections,
          shared.metrics.shard(index), &shared.guard, [this] { flush_dirty(); },
          &shared.tls.upstream),
      sweep_timer_(io_),
      live_(shared.live),
      random_(std::random_device{}() ^ (static_cast<std::uint64_t>(index) << 32)) {
  if (const config::HotKeysConfig& hk = shared.config.hot_keys; hk.enabled) {
    hot_keys_ = std::make_unique<protection::HotKeys>(
        hk.capacity, hk.sample_every, std::random_device{}() ^ (std::uint64_t{index} << 40));
  }
}

Worker::~Worker() {
  join();
}

void Worker::start() {
  asio::post(io_, [this] {
    pool_.start();
    sweep();
  });
  thread_ = std::thread([this] {
    try {
      io_.run();
    } catch (const std::exception& e) {
      spdlog::critical("worker {}: {}", index_, e.what());
      std::abort();  // a half-dead worker would hang its clients; let the supervisor restart us
    }
  });
}

void Worker::join() {
  if (thread_.joinable()) thread_.join();
}

void Worker::adopt(tcp::socket socket) {
  asio::post(io_, [this, s = std::move(socket)]() mutable {
    const std::uint64_t id = shared_.next_client_id.fetch_add(1, std::memory_order_relaxed);
    auto session = std::make_shared<ClientSession>(*this, std::move(s), id);
    sessions_.insert(session.get());
    session->start();
    if (draining_) session->begin_drain();
  });
}

void Worker::begin_drain() {
  asio::post(io_, [this] {
    draining_ = true;
    std::vector<std::shared_ptr<ClientSession>> sessions;
    for (ClientSession* s : sessions_) sessions.push_back(s->shared_from_this());
    for (auto& s : sessions) s->begin_drain();
  });
}

void Worker::stop() {
  asio::post(io_, [this] {
    std::vector<std::shared_ptr<ClientSession>> sessions;
    for (ClientSession* s : sessions_) sessions.push_back(s->shared_from_this());
    for (auto& s : sessions) s->close(ClientSession::CloseReason::Shutdown);
    sessions.clear();
    dirty_.clear();
    pool_.stop();
    sweep_timer_.cancel();
    work_.reset();
    io_.stop();
  });
}

void Worker::set_live(std::shared_ptr<const LiveConfig> live) {
  asio::post(io_, [this, live = std::move(live)]() mutable { live_ = std::move(live); });
}

void Worker::mark_dirty(std::shared_ptr<ClientSession> session) {
  dirty_.push_back(std::move(session));
}

void Worker::flush_dirty() {
  // Swap first: flushing may mark sessions dirty again.
  flushing_.swap(dirty_);
  for (auto& s : flushing_) s->flush_output();
  flushing_.clear();
}

void Worker::on_session_closed(ClientSession* session) {
  sessions_.erase(session);
}

void Worker::sweep() {
  const auto timeout = live_->config.server.idle_timeout;
  if (timeout.count() > 0) {
    const auto now = SteadyClock::now();
    std::vector<std::shared_ptr<ClientSession>> sessions;
    for (ClientSession* s : sessions_) sessions.push_back(s->shared_from_this());
    for (auto& s : sessions) s->check_idle(now, timeout);
  }
  sweep_timer_.expires_after(kSweepInterval);
  sweep_timer_.async_wait([this](boost::system::error_code ec) {
    if (!ec) sweep();
  });
}

}  // namespace respguard::server
