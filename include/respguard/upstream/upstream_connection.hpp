// One pipelined connection to the upstream Redis. Many clients' commands share it: requests
// are appended to one write buffer (batched into as few writes as possible) and each reply is
// matched to its request in FIFO order, as Redis answers in order.
//
// Failure model: any error, a protocol violation or a request older than its deadline closes
// the socket and answers every pending request with an error reply at once (FIFO matching
// cannot survive a lost reply). Shared connections then reconnect with exponential backoff;
// dedicated (pinned) connections do not, since their state (MULTI, SUBSCRIBE) is gone.
#pragma once

#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <string_view>

#include "respguard/common/asio.hpp"
#include "respguard/common/io_buffer.hpp"
#include "respguard/common/stream.hpp"
#include "respguard/common/tls.hpp"
#include "respguard/config/config.hpp"
#include "respguard/observability/metrics.hpp"
#include "respguard/resp/parser.hpp"

namespace respguard::upstream {

class UpstreamGuard;

// Receives replies. Every request sent gets exactly one on_reply call: the upstream's reply,
// or a generated error reply when the connection fails.
class ReplySink {
 public:
  virtual void on_reply(std::uint64_t cookie, std::string_view reply,
                        const resp::ReplyInfo& info) = 0;

 protected:
  ~ReplySink() = default;
};

// What the upstream told us about itself (INFO, CONFIG GET databases), for HELLO replies and
// SELECT range checks. Shared by all workers; written at connect time only.
class UpstreamInfo {
 public:
  explicit UpstreamInfo(unsigned databases) : databases_(databases) {}
  std::string version() const {
    std::lock_guard lock(mu_);
    return version_;
  }
  std::string mode() const {
    std::lock_guard lock(mu_);
    return mode_;
  }
  void set_server(std::string version, std::string mode) {
    std::lock_guard lock(mu_);
    version_ = std::move(version);
    if (!mode.empty()) mode_ = std::move(mode);
  }
  unsigned databases() const { return databases_.load(std::memory_order_relaxed); }
  void set_databases(unsigned n) { databases_.store(n, std::memory_order_relaxed); }

 private:
  mutable std::mutex mu_;
  std::string version_ = "7.0.0";  // until INFO answers
  std::string mode_ = "standalone";
  std::atomic<unsigned> databases_;
};

struct ConnectionOptions {
  config::Endpoint endpoint;
  std::string username;
  std::string password;
  int protocol = 2;                // 3: HELLO 3 on connect, replies in RESP3
  bool dedicated = false;          // pinned to one client: no reconnect, replies may be pushed
  bool learn_server_info = false;  // ask INFO server / CONFIG GET databases on connect
  config::Millis connect_timeout{1000};
  config::Millis request_timeout{5000};
  config::Millis reconnect_backoff_min{100};
  config::Millis reconnect_backoff_max{5000};
  resp::Limits limits;
  std::string name;                         // for logs and CLIENT SETNAME
  observability::Shard* metrics = nullptr;  // the worker's shard: connection state, errors
  bool record_latency = false;              // also the upstream latency histogram (admin.metrics)
  UpstreamGuard* guard = nullptr;           // the circuit breaker hears every reply and failure
  bool quiet = false;  // failures logged at debug (the health checker reports them itself)
  // upstream.tls: with `tls` set and enabled, every connect does a TLS handshake (within
  // connect_timeout) with the holder's current context before HELLO/AUTH.
  const tls::ContextHolder* tls = nullptr;
  std::string tls_server_name;  // SNI and the certificate name: server_name or the address host
  bool tls_verify = true;

  // The upstream section of `config`: address, credentials, timeouts, backoff, limits. The
  // caller adds what differs per connection (name, protocol, metrics, guard).
  static ConnectionOptions from(const config::Config& config);
  unsigned guard_shard = 0;  // the worker's index
};

class UpstreamConnection : public std::enable_shared_from_this<UpstreamConnection>,
                           private ReplySink {
 public:
  enum class State : std::uint8_t { Idle, Connecting, Ready, Backoff, Closed };
  using Deadline = SteadyClock::time_point;
  static constexpr Deadline kNoDeadline = Deadline::max();

  UpstreamConnection(asio::io_context& io, ConnectionOptions options,
                     std::shared_ptr<UpstreamInfo> info);
  ~UpstreamConnection();
  UpstreamConnection(const UpstreamConnection&) = delete;
  UpstreamConnection& operator=(const UpstreamConnection&) = delete;

  void start();
  // Closes for good; pending requests are answered with `why`.
  void close(std::string_view why);

  State state() const { return state_; }
  // Accepts requests now (they are queued while connecting, refused while backing off).
  bool accepting() const { return state_ == State::Connecting || state_ == State::Ready; }
  std::size_t pending() const { return pending_.size(); }
  int protocol() const { return options_.protocol; }
  bool dedicated() const { return options_.dedicated; }

  // Appends a request (complete RESP bytes). Its reply goes to sink->on_reply(cookie, ...).
  // The caller checks accepting() first. `blocking` marks a command that may legitimately
  // wait until its deadline (requests pipelined behind it get a fresh request timeout).
  void send(std::string_view request, ReplySink* sink, std::uint64_t cookie, Deadline deadline,
            bool blocking = false);
  // Direct access to the write buffer to encode a request in place; then call commit_request.
  std::string& write_buffer() { return wbuf_; }
  void commit_request(ReplySink* sink, std::uint64_t cookie, Deadline deadline,
                      bool blocking = false);

  // Appends bytes whose replies are not matched to requests (a dedicated connection in push
  // mode: SUBSCRIBE and friends answer with any number of messages).
  void send_unmatched(std::string_view request) { wbuf_.append(request); }

  // Makes sure requests run in `db`: sends SELECT first when the connection is elsewhere.
  void select_db(int db, Deadline deadline);
  // The db is unknown (a forwarded SELECT, e.g. inside MULTI): the next select_db sends one.
  void forget_db() { db_ = -1; }
  int db() const { return db_; }

  // Starts a write if none is in flight. Call once after a batch of send()s.
  void flush();

  // Dedicated connections in push mode (SUBSCRIBE, MONITOR, CLIENT TRACKING): replies that
  // match no request go to this sink with cookie kPushCookie.
  static constexpr std::uint64_t kPushCookie = ~std::uint64_t{0};
  void set_push_sink(ReplySink* sink) { push_sink_ = sink; }
  // Called once when a dedicated connection closes (its owner must drop it).
  void set_on_closed(std::function<void()> fn) { on_closed_ = std::move(fn); }
  // Called after each batch of replies has been dispatched (the worker flushes clients then).
  void set_on_batch_end(std::function<void()> fn) { on_batch_end_ = std::move(fn); }

  const std::string& name() const { return options_.name; }
  const std::string& last_error() const { return last_error_; }

 private:
  struct Pending {
    ReplySink* sink;
    std::uint64_t cookie;
    Deadline deadline;
    bool blocking;
    SteadyClock::time_point queued;
  };
  enum InternalCookie : std::uint64_t { kAuth, kHello, kSetName, kSelect, kInfo, kConfigDatabases };

  void connect();
  void on_connected();
  void start_tls_handshake();
  void queue_handshake();
  void start_read();
  void on_read(std::size_t n);
  void start_write();
  void arm_timer();
  void on_timer();
  void set_state(State next);
  void count_error(observability::UpstreamError kind);
  // `kind`: what to count; nullopt when the owner closes the connection on purpose.
  void fail(std::string_view why, bool reconnect,
            std::optional<observability::UpstreamError> kind = observability::UpstreamError::Read);
  void fail_pending(std::string_view error_reply);
  void feed_breaker(observability::UpstreamError kind);
  void schedule_reconnect();
  // Handshake and SELECT replies.
  void on_reply(std::uint64_t cookie, std::string_view reply, const resp::ReplyInfo& info) override;

  asio::io_context& io_;
  ConnectionOptions options_;
  std::shared_ptr<UpstreamInfo> info_;
  Stream socket_;  // plaintext, or TLS with upstream.tls
  tcp::resolver resolver_;
  asio::steady_timer timer_;  // request deadlines and connect timeout
  asio::steady_timer backoff_timer_;
  State state_ = State::Idle;
  std::uint64_t generation_ = 0;  // bumps on every close: stale handlers ignore themselves

  std::string wbuf_;     // requests not yet handed to the socket
  std::string writing_;  // the buffer of the write in flight
  bool write_in_flight_ = false;
  bool timer_armed_ = false;
  std::size_t handshake_bytes_ = 0;  // leading wbuf_ bytes that are the handshake

  IoBuffer rbuf_;
  resp::ReplyParser reply_parser_;
  std::deque<Pending> pending_;
  ReplySink* push_sink_ = nullptr;
  std::function<void()> on_closed_;
  std::function<void()> on_batch_end_;

  int db_ = 0;
  std::chrono::milliseconds backoff_{0};
  std::minstd_rand rng_;
  std::string last_error_;
  std::string error_reply_;  // scratch for generated error replies
};

}  // namespace respguard::upstream
