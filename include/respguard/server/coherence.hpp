// The coherence channel and the Bloom filters' scans: the async glue that keeps local state
// (negative cache, Bloom filters) true when other clients write to Redis directly
// (docs/policies.md, "Coherence channel"). Runs on the main thread's io_context.
//
// Channel: one connection subscribes to __redis__:invalidate (and tells its CLIENT ID); a
// second turns on CLIENT TRACKING on REDIRECT <id> BCAST PREFIX ... for the literal prefixes
// of the rules that keep local state (none: every key). When both have answered, the channel
// is up and gets a new epoch; invalidations then drop negative-cache entries and add keys to
// keyspace filters, and a change of a `source: set` filter's SET has it reloaded. Losing
// either connection (or a keepalive PING going unanswered) ends the epoch at once: nothing
// local is trusted until the channel is back and the filters' warm-up scans have run. If Redis
// refuses tracking (before 6.0, or an ACL), it says so loudly and falls back to ttl bounds.
//
// Scans: one more connection runs the Bloom filters' passes one at a time, paced (warm-up
// after the channel comes up, a set's reload, periodic rebuilds and resizes). A pass ends
// with a PING on the invalidation connection: its pong comes after every invalidation for
// writes Redis ran before the last SCAN, so nothing the scan missed is still on its way.
#pragma once

#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "respguard/common/asio.hpp"
#include "respguard/resp/value.hpp"
#include "respguard/server/worker.hpp"
#include "respguard/upstream/upstream_connection.hpp"

namespace respguard::server {

class Coherence : private upstream::ReplySink {
 public:
  enum class State : std::uint8_t { Down = 0, Up = 1, Refused = 2, Off = 3 };

  // `workers`: the workers' executors. A replaced filter is freed once each of them has run a
  // handler posted after the swap: no lookup spans handlers, so none can still hold it.
  Coherence(asio::io_context& io, SharedState& shared, observability::Shard& metrics,
            std::vector<asio::any_io_executor> workers);
  ~Coherence();
  Coherence(const Coherence&) = delete;
  Coherence& operator=(const Coherence&) = delete;

  void start();
  void stop();
  State state() const { return state_.load(std::memory_order_relaxed); }
  // Has been up once (or found tracking refused, or is not used): /readyz waits for this, so a
  // sidecar takes traffic only once its local state can be kept coherent.
  bool settled() const { return settled_.load(std::memory_order_relaxed); }

 private:
  enum Kind : std::uint64_t { kClientId = 1, kTracking, kTrackingPing, kScan };
  struct Job {
    std::size_t rule = 0;
    bool fresh = false;  // rebuild into a new filter
    bool resize = false;
    std::uint64_t capacity = 0;
  };
  struct Running {
    Job job;
    policy::BloomPrecheck::Pass pass;
    std::vector<int> dbs;  // left to scan, front first
    std::string cursor = "0";
    SteadyClock::time_point started;
  };

  void connect();
  void maybe_up();
  void lost(const std::string& why);
  void refused(const std::string& why);
  void close_channel();
  // The channel's session ended (lost or refused): distrust, close, drop queued scans.
  void stand_down(bool ttl_bounded, const std::string& why);
  void schedule_reconnect(std::chrono::milliseconds wait);
  void keepalive();
  void barrier(std::function<void()> then);
  void on_push(std::string_view reply);
  void on_invalidation(const resp::Value& payload);

  void queue(Job job);
  void queue_warmups();
  void run_next();
  void send_scan();
  void on_scan_reply(std::string_view reply, const resp::ReplyInfo& info);
  void finish_pass();
  void abort_pass(const std::string& why, bool retry);
  void retire(std::unique_ptr<policy::BloomFilter> filter);
  void maintain();
  void update_stats();

  std::shared_ptr<upstream::UpstreamConnection> open(const std::string& name);
  std::uint64_t cookie(Kind kind) const { return (session_ << 8) | kind; }
  void on_reply(std::uint64_t cookie, std::string_view reply, const resp::ReplyInfo& info) override;

  asio::io_context& io_;
  SharedState& shared_;
  PolicyState& policies_;
  const config::Config& config_;
  observability::Shard& metrics_;
  std::vector<asio::any_io_executor> workers_;
  std::vector<std::string> prefixes_;  // tracked; empty: every key

  std::atomic<State> state_{State::Down};
  std::atomic<bool> settled_{false};
  bool stopped_ = false;
  std::uint64_t session_ = 0;  // bumps on every (re)connect: stale callbacks ignore themselves
  std::uint64_t epochs_ = 0;
  std::shared_ptr<upstream::UpstreamConnection> sub_;    // SUBSCRIBE __redis__:invalidate
  std::shared_ptr<upstream::UpstreamConnection> track_;  // CLIENT TRACKING ... REDIRECT
  bool subscribed_ = false;
  bool tracking_ = false;
  std::deque<std::function<void()>> pongs_;  // what to run as each PING on sub_ is answered
  SteadyClock::time_point oldest_ping_{};    // sent time of the oldest unanswered PING
  std::chrono::milliseconds backoff_{0};
  SteadyClock::time_point down_since_{};
  asio::steady_timer reconnect_timer_;
  asio::steady_timer keepalive_timer_;

  std::shared_ptr<upstream::UpstreamConnection> scan_;
  std::uint64_t scan_session_ = 0;
  std::deque<Job> jobs_;
  std::vector<bool> queued_;  // by rule: a job waits (one at a time per rule and kind)
  std::optional<Running> running_;
  asio::steady_timer pace_timer_;
  asio::steady_timer maintain_timer_;
  std::vector<SteadyClock::time_point> last_fresh_;  // by rule: the last rebuild's end

  // Sampled every 5 s for the metrics (a pass over each filter's bits).
  std::atomic<double> fill_{0};
  std::atomic<double> fp_estimate_{0};
};

}  // namespace respguard::server
