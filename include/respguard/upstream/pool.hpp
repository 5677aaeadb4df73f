// A worker's upstream connections: a few shared, pipelined connections per protocol (RESP2
// always, RESP3 once a RESP3 client appears), and dedicated connections that a client holds
// while it is in a stateful mode (MULTI, WATCH, SUBSCRIBE, a blocking call, MONITOR).
#pragma once

#include <atomic>
#include <memory>
#include <vector>

#include "respguard/config/config.hpp"
#include "respguard/upstream/upstream_connection.hpp"

namespace respguard::upstream {

class Pool {
 public:
  Pool(asio::io_context& io, const config::Config& config, unsigned worker_index,
       std::shared_ptr<UpstreamInfo> info, std::atomic<std::size_t>& dedicated_count,
       observability::Shard& metrics, UpstreamGuard* guard, std::function<void()> on_batch_end,
       const tls::ContextHolder* tls = nullptr);
  ~Pool();

  void start();
  void stop();

  // The shared connection for a client. A client always uses the same one, so its commands
  // reach Redis in the order it sent them (stronger than per-key order).
  UpstreamConnection& shared(int protocol, std::uint64_t client_id);

  // A connection for one client alone, or nullptr when server.max_pinned_connections are in
  // use. Reused from the idle list when one is ready.
  std::shared_ptr<UpstreamConnection> acquire_dedicated(int protocol);
  // `clean`: no transaction, subscription or request left on it, so another client may use it.
  void release_dedicated(std::shared_ptr<UpstreamConnection> conn, bool clean);

  // True when at least one shared connection is connected (for readiness).
  bool any_ready() const;

 private:
  ConnectionOptions options(int protocol, bool dedicated, const std::string& name) const;
  std::vector<std::shared_ptr<UpstreamConnection>>& shared_set(int protocol);

  asio::io_context& io_;
  const config::Config& config_;
  unsigned worker_index_;
  std::shared_ptr<UpstreamInfo> info_;
  std::atomic<std::size_t>& dedicated_count_;
  observability::Shard& metrics_;
  UpstreamGuard* guard_;
  std::function<void()> on_batch_end_;
  const tls::ContextHolder* tls_;  // upstream.tls contexts (null: plaintext)
  std::vector<std::shared_ptr<UpstreamConnection>> shared_resp2_;
  std::vector<std::shared_ptr<UpstreamConnection>> shared_resp3_;
  std::vector<std::shared_ptr<UpstreamConnection>> idle_dedicated_;
  std::uint64_t dedicated_serial_ = 0;
  bool stopped_ = false;
};

}  // namespace respguard::upstream
