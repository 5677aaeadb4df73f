#include "respguard/protection/circuit_breaker.hpp"

#include <algorithm>
#include <limits>

namespace respguard::protection {
namespace {

// The ratio window is kept as this many time buckets per shard: the ratio covers the last
// 9 to 10 tenths of `window` (the current bucket is partial).
constexpr std::int64_t kBuckets = 10;
constexpr std::int64_t kNever = std::numeric_limits<std::int64_t>::max();

std::int64_t floor_div(std::int64_t a, std::int64_t b) {
  const std::int64_t q = a / b;
  return (a % b != 0 && a < 0) ? q - 1 : q;
}

std::int64_t saturating_add(std::int64_t a, std::int64_t b) {
  return a > kNever - b ? kNever : a + b;
}

}  // namespace

// One worker's window counters. Only the owner thread writes them (plain load + store, no
// read-modify-write); failures read every shard under the mutex. A reader may see a bucket
// mid-update, which makes the ratio approximate under concurrency, never wildly wrong.
struct CircuitBreaker::Shard {
  struct Bucket {
    std::atomic<std::int64_t> index{std::numeric_limits<std::int64_t>::min()};  // now / width
    std::atomic<std::uint64_t> generation{0};
    std::atomic<std::uint32_t> requests{0};
    std::atomic<std::uint32_t> failures{0};
  };
  alignas(64) Bucket buckets[kBuckets];  // own cache lines: no false sharing between workers
};

CircuitBreaker::CircuitBreaker(const config::BreakerConfig& config, unsigned shards)
    : config_(config),
      enabled_(config.enabled),
      ratio_on_(config.enabled && config.failure_ratio_percent > 0 && config.window.count() > 0),
      probes_(std::max(config.probes, 1u)),
      bucket_ns_(std::max<std::int64_t>(
          std::chrono::duration_cast<std::chrono::nanoseconds>(config.window).count() / kBuckets,
          1)),
      open_for_ns_(std::max<std::int64_t>(
          std::chrono::duration_cast<std::chrono::nanoseconds>(config.open_for).count(), 0)),
      shard_count_(std::max(shards, 1u)) {
  shards_ = std::make_unique<Shard[]>(shard_count_);
}

CircuitBreaker::~CircuitBreaker() = default;

void CircuitBreaker::record(unsigned shard, std::int64_t now, bool failure) {
  const std::int64_t index = floor_div(now, bucket_ns_);
  Shard::Bucket& b =
      shards_[shard % shard_count_].buckets[index - floor_div(index, kBuckets) * kBuckets];
  const std::uint64_t gen = generation_.load(std::memory_order_relaxed);
  if (b.index.load(std::memory_order_relaxed) != index ||
      b.generation.load(std::memory_order_relaxed) != gen) {
    // Zero the counts before publishing the new index, so a reader that sees the new index
    // does not add the old counts to it.
    b.requests.store(0, std::memory_order_relaxed);
    b.failures.store(0, std::memory_order_relaxed);
    b.generation.store(gen, std::memory_order_relaxed);
    b.index.store(index, std::memory_order_release);
  }
  b.requests.store(b.requests.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  if (failure) {
    b.failures.store(b.failures.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  }
}

bool CircuitBreaker::ratio_reached(std::int64_t now) const {
  const std::int64_t index = floor_div(now, bucket_ns_);
  const std::uint64_t gen = generation_.load(std::memory_order_relaxed);
  std::uint64_t requests = 0;
  std::uint64_t failures = 0;
  for (unsigned s = 0; s < shard_count_; ++s) {
    for (const Shard::Bucket& b : shards_[s].buckets) {
      const std::int64_t i = b.index.load(std::memory_order_acquire);
      if (i <= index - kBuckets || i > index) continue;                   // outside the window
      if (b.generation.load(std::memory_order_relaxed) != gen) continue;  // before a reset
      requests += b.requests.load(std::memory_order_relaxed);
      failures += b.failures.load(std::memory_order_relaxed);
    }
  }
  return requests >= std::max(config_.min_requests, 1u) &&
         failures * 100 >= std::uint64_t{config_.failure_ratio_percent} * requests;
}

CircuitBreaker::Transition CircuitBreaker::open(std::int64_t now) {
  const State from = state_.load(std::memory_order_relaxed);
  // open_until_ before state_ (release): allow() reads them in the other order (acquire).
  open_until_.store(held_ ? kNever : saturating_add(now, open_for_ns_), std::memory_order_relaxed);
  consecutive_.store(0, std::memory_order_relaxed);
  probes_out_ = 0;
  probe_successes_ = 0;
  state_.store(State::Open, std::memory_order_release);
  return {from, State::Open};
}

CircuitBreaker::Transition CircuitBreaker::half_open() {
  const State from = state_.load(std::memory_order_relaxed);
  probes_out_ = 0;
  probe_successes_ = 0;
  state_.store(State::HalfOpen, std::memory_order_release);
  return {from, State::HalfOpen};
}

CircuitBreaker::Transition CircuitBreaker::close() {
  const State from = state_.load(std::memory_order_relaxed);
  // A fresh window: what happened before the breaker opened says nothing about now.
  generation_.fetch_add(1, std::memory_order_relaxed);
  consecutive_.store(0, std::memory_order_relaxed);
  state_.store(State::Closed, std::memory_order_release);
  return {from, State::Closed};
}

CircuitBreaker::Permit CircuitBreaker::allow_slow(TimePoint now) {
  std::lock_guard lock(mutex_);
  std::optional<Transition> t;
  switch (state_.load(std::memory_order_relaxed)) {
    case State::Closed:
      return {};
    case State::Open:
      if (held_ || to_ns(now) < open_until_.load(std::memory_order_relaxed)) {
        return {false, std::nullopt};
      }
      t = half_open();
      [[fallthrough]];
    case State::HalfOpen:
      if (probes_out_ < probes_) {
        ++probes_out_;
        return {true, t};
      }
      return {false, t};
  }
  return {};
}

std::optional<CircuitBreaker::Transition> CircuitBreaker::on_success(unsigned shard,
                                                                     TimePoint now) {
  if (!enabled_) return std::nullopt;
  if (state_.load(std::memory_order_acquire) == State::Closed) {
    if (ratio_on_) record(shard, to_ns(now), false);
    if (consecutive_.load(std::memory_order_relaxed) != 0) {
      consecutive_.store(0, std::memory_order_relaxed);
    }
    return std::nullopt;
  }
  std::lock_guard lock(mutex_);
  switch (state_.load(std::memory_order_relaxed)) {
    case State::Closed:  // closed meanwhile by another probe
    case State::Open:    // admitted before it opened: says little about the upstream now
      return std::nullopt;
    case State::HalfOpen:
      // A success of a request admitted before the breaker opened also lands here; it is
      // counted like a probe's (the upstream did answer), and probes_out_ never goes below 0.
      if (probes_out_ > 0) --probes_out_;
      if (++probe_successes_ >= probes_) return close();
      return std::nullopt;
  }
  return std::nullopt;
}

std::optional<CircuitBreaker::Transition> CircuitBreaker::on_failure(unsigned shard,
                                                                     TimePoint now) {
  if (!enabled_) return std::nullopt;
  const std::int64_t n = to_ns(now);
  if (ratio_on_ && state_.load(std::memory_order_acquire) == State::Closed) {
    record(shard, n, true);  // the owner thread's own counters, before the mutex
  }
  std::lock_guard lock(mutex_);
  switch (state_.load(std::memory_order_relaxed)) {
    case State::Open:
      return std::nullopt;
    case State::HalfOpen:
      return open(n);
    case State::Closed:
      break;
  }
  const unsigned consecutive = consecutive_.fetch_add(1, std::memory_order_relaxed) + 1;
  if (config_.failure_threshold != 0 && consecutive >= config_.failure_threshold) return open(n);
  if (ratio_on_ && ratio_reached(n)) return open(n);
  return std::nullopt;
}

std::optional<CircuitBreaker::Transition> CircuitBreaker::hold_open(bool down, TimePoint now) {
  if (!enabled_) return std::nullopt;
  std::lock_guard lock(mutex_);
  if (down == held_) return std::nullopt;
  held_ = down;
  const State s = state_.load(std::memory_order_relaxed);
  if (down) {
    if (s != State::Open) return open(to_ns(now));
    open_until_.store(kNever, std::memory_order_relaxed);
    return std::nullopt;
  }
  if (s == State::Open) return half_open();
  return std::nullopt;
}

std::optional<CircuitBreaker::Transition> CircuitBreaker::poll(TimePoint now) {
  if (!enabled_) return std::nullopt;
  std::lock_guard lock(mutex_);
  if (state_.load(std::memory_order_relaxed) == State::Open && !held_ &&
      to_ns(now) >= open_until_.load(std::memory_order_relaxed)) {
    return half_open();
  }
  return std::nullopt;
}

std::string_view to_string(CircuitBreaker::State state) {
  switch (state) {
    case CircuitBreaker::State::Closed:
      return "closed";
    case CircuitBreaker::State::Open:
      return "open";
    case CircuitBreaker::State::HalfOpen:
      return "half_open";
  }
  return "unknown";
}

}  // namespace respguard::protection
