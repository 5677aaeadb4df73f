// Circuit breaker for one upstream endpoint (ARCHITECTURE §3 "Circuit breaker").
//
// Closed -> Open after `failure_threshold` consecutive failures, or when failures reach
// `failure_ratio_percent` of at least `min_requests` requests in the last `window`.
// Open refuses everything for `open_for`; then HalfOpen lets up to `probes` requests through at
// a time, closing after `probes` successes and reopening on any failure.
//
// Pure and thread-safe; the caller passes `now` and reports which worker (shard) it is. The
// common case is cheap: allow() while Closed is one atomic load, and on_success() while Closed
// writes only its own shard's counters (no read-modify-write shared between workers). Failures
// and everything outside Closed take a mutex. Mutating calls return the state change they
// caused, if any, exactly once, so the caller can log and count it; this class never logs.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string_view>

#include "respguard/config/config.hpp"

namespace respguard::protection {

using TimePoint = std::chrono::steady_clock::time_point;

class CircuitBreaker {
 public:
  enum class State : std::uint8_t { Closed, Open, HalfOpen };

  struct Transition {
    State from;
    State to;
    bool operator==(const Transition&) const = default;
  };

  struct Permit {
    bool allowed = true;
    std::optional<Transition> transition;  // Open -> HalfOpen, found by this call
    explicit operator bool() const { return allowed; }
  };

  // shards: one per worker thread. probes 0 counts as 1 (HalfOpen must let something through).
  CircuitBreaker(const config::BreakerConfig& config, unsigned shards);
  ~CircuitBreaker();

  CircuitBreaker(const CircuitBreaker&) = delete;
  CircuitBreaker& operator=(const CircuitBreaker&) = delete;

  // May this request go upstream? Every allowed request must later be answered with exactly
  // one on_success or on_failure. HalfOpen counts an allowed request as a probe until answered.
  Permit allow(TimePoint now) {
    // A disabled breaker never leaves Closed.
    const State s = state_.load(std::memory_order_acquire);
    if (s == State::Closed) return {};
    if (s == State::Open && to_ns(now) < open_until_.load(std::memory_order_relaxed)) {
      return {false, std::nullopt};
    }
    return allow_slow(now);
  }

  // The upstream answered (any reply that is not a breaker failure). `shard` is the caller's
  // worker index (< shards; larger ones wrap); calls for one shard must come from one thread
  // at a time.
  std::optional<Transition> on_success(unsigned shard, TimePoint now);
  // Connect error, timeout, LOADING/BUSY/MASTERDOWN: same threading rule as on_success.
  std::optional<Transition> on_failure(unsigned shard, TimePoint now);

  // The active health check's verdict. down: Open now (if not already) and held Open,
  // regardless of open_for, until released. Released (down false): HalfOpen at once, since
  // the health check has just seen `rise` good PINGs. Idempotent: repeating a verdict changes
  // nothing and returns nothing.
  std::optional<Transition> hold_open(bool down, TimePoint now);

  // Open -> HalfOpen when open_for has passed; allow() does this on its own, so call it only
  // to have state() current without traffic (for /readyz or a gauge).
  std::optional<Transition> poll(TimePoint now);

  State state() const { return state_.load(std::memory_order_acquire); }
  bool enabled() const { return enabled_; }
  const config::BreakerConfig& config() const { return config_; }

 private:
  struct Shard;

  static std::int64_t to_ns(TimePoint t) {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
  }

  Permit allow_slow(TimePoint now);
  void record(unsigned shard, std::int64_t now, bool failure);
  bool ratio_reached(std::int64_t now) const;
  // These three need mutex_ held.
  Transition open(std::int64_t now);
  Transition half_open();
  Transition close();

  config::BreakerConfig config_;
  bool enabled_;
  bool ratio_on_;
  unsigned probes_;
  std::int64_t bucket_ns_;  // window / kBuckets
  std::int64_t open_for_ns_;

  std::atomic<State> state_{State::Closed};
  // While Open: allow() refuses without the mutex before this instant. Max while held.
  std::atomic<std::int64_t> open_until_{0};
  // Failures since the last success, across all shards. Successes write it only when it is
  // non-zero, so while all goes well its cache line stays shared, never bouncing.
  std::atomic<unsigned> consecutive_{0};
  // Bumped on close: window counts of older generations are ignored, which resets the window
  // without writing other threads' shard counters.
  std::atomic<std::uint64_t> generation_{0};

  std::unique_ptr<Shard[]> shards_;
  unsigned shard_count_;

  std::mutex mutex_;
  bool held_ = false;             // hold_open(true) in force
  unsigned probes_out_ = 0;       // HalfOpen: admitted, not yet answered
  unsigned probe_successes_ = 0;  // HalfOpen
};

std::string_view to_string(CircuitBreaker::State state);  // "closed", "open", "half_open"

}  // namespace respguard::protection
