#include "respguard/upstream/pool.hpp"

#include <algorithm>

namespace respguard::upstream {
namespace {
// Idle dedicated connections kept per worker for the next MULTI or BLPOP; more are closed.
constexpr std::size_t kMaxIdleDedicated = 4;
}  // namespace

Pool::Pool(asio::io_context& io, const config::Config& config, unsigned worker_index,
           std::shared_ptr<UpstreamInfo> info, std::atomic<std::size_t>& dedicated_count,
           observability::Shard& metrics, UpstreamGuard* guard, std::function<void()> on_batch_end,
           const tls::ContextHolder* tls)
    : io_(io),
      config_(config),
      worker_index_(worker_index),
      info_(std::move(info)),
      dedicated_count_(dedicated_count),
      metrics_(metrics),
      guard_(guard),
      on_batch_end_(std::move(on_batch_end)),
      tls_(tls) {}

Pool::~Pool() {
  stop();
}

ConnectionOptions Pool::options(int protocol, bool dedicated, const std::string& name) const {
  ConnectionOptions o = ConnectionOptions::from(config_);
  o.protocol = protocol;
  o.dedicated = dedicated;
  o.name = name;
  o.metrics = &metrics_;
  o.record_latency = config_.admin.metrics;
  o.guard = guard_;
  o.guard_shard = worker_index_;
  o.tls = tls_;
  return o;
}

std::vector<std::shared_ptr<UpstreamConnection>>& Pool::shared_set(int protocol) {
  auto& set = protocol >= 3 ? shared_resp3_ : shared_resp2_;
  if (set.empty() && !stopped_) {
    for (unsigned i = 0; i < config_.upstream.connections_per_worker; ++i) {
      std::string name = "respguard-w" + std::to_string(worker_index_) + "-resp" +
                         std::to_string(protocol) + "-" + std::to_string(i);
      auto o = options(protocol, false, name);
      o.learn_server_info = (i == 0 && protocol == 2);
      auto conn = std::make_shared<UpstreamConnection>(io_, std::move(o), info_);
      conn->set_on_batch_end(on_batch_end_);
      conn->start();
      set.push_back(std::move(conn));
    }
  }
  return set;
}

void Pool::start() {
  shared_set(2);
}

void Pool::stop() {
  if (stopped_) return;
  stopped_ = true;
  for (auto* set : {&shared_resp2_, &shared_resp3_, &idle_dedicated_}) {
    auto conns = std::move(*set);
    set->clear();
    for (auto& conn : conns) {
      if (conn->dedicated()) {
        conn->set_on_closed(nullptr);
        dedicated_count_.fetch_sub(1, std::memory_order_relaxed);
      }
      conn->close("respguard shutting down");
    }
  }
}

UpstreamConnection& Pool::shared(int protocol, std::uint64_t client_id) {
  auto& set = shared_set(protocol);
  return *set[client_id % set.size()];
}

std::shared_ptr<UpstreamConnection> Pool::acquire_dedicated(int protocol) {
  for (auto it = idle_dedicated_.rbegin(); it != idle_dedicated_.rend(); ++it) {
    if ((*it)->protocol() == protocol && (*it)->accepting()) {
      auto conn = *it;
      idle_dedicated_.erase(std::next(it).base());
      conn->set_on_closed(nullptr);
      return conn;
    }
  }
  std::size_t count = dedicated_count_.load(std::memory_order_relaxed);
  do {
    if (count >= config_.server.max_pinned_connections) {
      metrics_.inc(observability::Metric::PinnedRejected);
      return nullptr;
    }
  } while (!dedicated_count_.compare_exchange_weak(count, count + 1));
  std::string name = "respguard-w" + std::to_string(worker_index_) + "-pinned-" +
                     std::to_string(++dedicated_serial_);
  auto conn = std::make_shared<UpstreamConnection>(io_, options(protocol, true, name), info_);
  conn->set_on_batch_end(on_batch_end_);
  conn->start();
  return conn;
}

void Pool::release_dedicated(std::shared_ptr<UpstreamConnection> conn, bool clean) {
  if (!conn) return;
  conn->set_push_sink(nullptr);
  if (clean && !stopped_ && conn->state() == UpstreamConnection::State::Ready &&
      conn->pending() == 0 && idle_dedicated_.size() < kMaxIdleDedicated) {
    UpstreamConnection* raw = conn.get();
    conn->set_on_closed([this, raw] {
      auto it = std::find_if(idle_dedicated_.begin(), idle_dedicated_.end(),
                             [raw](const auto& c) { return c.get() == raw; });
      if (it != idle_dedicated_.end()) {
        idle_dedicated_.erase(it);
        dedicated_count_.fetch_sub(1, std::memory_order_relaxed);
      }
    });
    idle_dedicated_.push_back(std::move(conn));
    return;
  }
  conn->set_on_closed(nullptr);
  conn->close("released");
  dedicated_count_.fetch_sub(1, std::memory_order_relaxed);
}

bool Pool::any_ready() const {
  return std::any_of(shared_resp2_.begin(), shared_resp2_.end(),
                     [](const auto& c) { return c->state() == UpstreamConnection::State::Ready; });
}

}  // namespace respguard::upstream
