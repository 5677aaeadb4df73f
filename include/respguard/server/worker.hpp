// A worker: one io_context on its own thread, owning its client sessions and its upstream
// connections (shard-per-thread: nothing on the request path is shared between workers).
#pragma once

#include <atomic>
#include <memory>
#include <thread>
#include <unordered_set>
#include <vector>

#include "respguard/common/asio.hpp"
#include "respguard/common/tls.hpp"
#include "respguard/config/config.hpp"
#include "respguard/observability/metrics.hpp"
#include "respguard/policy/random.hpp"
#include "respguard/protection/hot_keys.hpp"
#include "respguard/server/client_registry.hpp"
#include "respguard/server/live_config.hpp"
#include "respguard/server/policy_state.hpp"
#include "respguard/upstream/pool.hpp"
#include "respguard/upstream/upstream_guard.hpp"

namespace respguard::server {

class ClientSession;

// Process-wide state the workers share. Everything here is either immutable after start,
// atomic, or locked off the hot path.
struct SharedState {
  SharedState(const config::Config& c, std::size_t workers)
      : config(c),
        metrics(workers + 1),
        policies(c),
        upstream_info(std::make_shared<upstream::UpstreamInfo>(c.upstream.databases)),
        guard(c, static_cast<unsigned>(workers), metrics),
        live(std::make_shared<const LiveConfig>(c, 1)) {}
  const config::Config& config;
  // Shard i belongs to worker i; the last one to the main thread (listener).
  observability::Registry metrics;
  PolicyState policies;
  std::shared_ptr<upstream::UpstreamInfo> upstream_info;
  upstream::UpstreamGuard guard;         // circuit breaker and health verdict of the upstream
  // What a reload can change (rules, rate limits, guard, users, client limits): the main
  // thread's current snapshot. Workers hold their own copy (Worker::live()), handed over by
  // Worker::set_live(); only the main thread touches this one.
  std::shared_ptr<const LiveConfig> live;
  ClientRegistry registry;
  tls::Contexts tls{config};  // TLS contexts (tls.*, upstream.tls.*); reload() on SIGHUP
  std::atomic<std::size_t> clients{0};
  std::atomic<std::size_t> dedicated_connections{0};
  std::atomic<std::uint64_t> next_client_id{1};
  std::atomic<bool> draining{false};
};

class Worker {
 public:
  Worker(unsigned index, SharedState& shared);
  ~Worker();
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  void start();  // runs the io_context on a new thread
  void join();
  asio::io_context& io() { return io_; }

  // Thread-safe entry points (they post to the worker's thread).
  void adopt(tcp::socket socket);
  void begin_drain();
  void stop();
  void set_live(std::shared_ptr<const LiveConfig> live);  // a reload's new snapshot

  // The current reloadable configuration. A session reads it per command and must not keep a
  // reference to it (or into it) across handlers: a reload may replace it in between.
  const LiveConfig& live() const { return *live_; }

  // Worker-thread only.
  unsigned index() const { return index_; }
  SharedState& shared() { return shared_; }
  const config::Config& config() const { return shared_.config; }
  observability::Shard& metrics() { return shared_.metrics.shard(index_); }
  policy::Random& random() { return random_; }
  // This worker's hot-key counts (null when hot_keys.enabled is false). Only this thread
  // touches it: the main thread's HotKeysReporter takes its table by posting here.
  protection::HotKeys* hot_keys() { return hot_keys_.get(); }
  upstream::Pool& pool() { return pool_; }
  bool draining() const { return draining_; }
  // Sessions with new output are written once per batch of upstream replies, so replies
  // that arrive together leave in one write.
  void mark_dirty(std::shared_ptr<ClientSession> session);
  void flush_dirty();
  void on_session_closed(ClientSession* session);

 private:
  void sweep();

  unsigned index_;
  SharedState& shared_;
  asio::io_context io_;
  asio::executor_work_guard<asio::io_context::executor_type> work_;
  upstream::Pool pool_;
  asio::steady_timer sweep_timer_;
  std::thread thread_;
  std::shared_ptr<const LiveConfig> live_;
  std::unordered_set<ClientSession*> sessions_;
  std::vector<std::shared_ptr<ClientSession>> dirty_;
  std::vector<std::shared_ptr<ClientSession>> flushing_;
  bool draining_ = false;
  policy::FastRandom random_;
  std::unique_ptr<protection::HotKeys> hot_keys_;
};

}  // namespace respguard::server
