// Per-client rate limits (ARCHITECTURE §3 "Rate limits"): a token bucket per client identity,
// shared by every worker, so a limit does not multiply by the number of workers or connections.
//
// Pure: no I/O, no logging, no timers; the caller passes `now` (steady_clock) to every call.
// The per-command path (RateLimiter::admit) is lock-free and allocation-free; the identity table
// is only touched when a session connects or changes its identity.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "respguard/config/config.hpp"

namespace respguard::protection {

using TimePoint = std::chrono::steady_clock::time_point;

// The outcome of asking a bucket (or a limiter) for one request.
struct Admission {
  enum class Verdict : std::uint8_t {
    Admitted,  // run it now
    Delayed,   // its slot is reserved: wait `delay`, then run it (no second call)
    Rejected,  // nothing was reserved; answer with rejection_message()
  };
  Verdict verdict = Verdict::Admitted;
  // Rejected: true when the write limit refused it (the general bucket was not touched).
  bool write_limited = false;
  std::chrono::nanoseconds delay{0};  // Delayed only; 0 < delay <= max_delay

  bool admitted() const { return verdict != Verdict::Rejected; }
};

// GCRA (the generic cell rate algorithm, the virtual-scheduling form of a token bucket) over a
// single atomic "theoretical arrival time" (TAT) in integer nanoseconds, updated by a CAS loop:
// lock-free and exact under any number of concurrent callers.
//
// Emission interval T = floor(1s / rate) (at least 1ns). A request at `now` is admitted at once
// when max(TAT, now) + T - now <= burst * T, i.e. at most `burst` requests ahead of schedule.
// Rounding T down means a client at exactly `rate`/s is never refused (it may get up to 1ns per
// request of slack; for rates that divide 1e9, none).
class TokenBucket {
 public:
  // rate 0: unlimited (take() always admits, after one branch). burst 0: same as rate.
  TokenBucket(unsigned rate, unsigned burst);
  explicit TokenBucket(const config::RateLimitRule& rule) : TokenBucket(rule.rate, rule.burst) {}

  TokenBucket(const TokenBucket&) = delete;
  TokenBucket& operator=(const TokenBucket&) = delete;

  // Admitted when a token is available now; Delayed{d} when the next one comes within
  // max_delay (the slot is reserved, so waiting d and then running is within the limit);
  // otherwise Rejected, and the bucket is unchanged.
  Admission take(TimePoint now, std::chrono::nanoseconds max_delay = {}) {
    if (interval_ == 0) return {};
    return take_limited(now, max_delay);
  }

  // Gives back the one token a successful take() consumed (used when a second bucket refused
  // the same request). Exact unless another caller's take() found the bucket idle in between;
  // then the bucket may end up at most one token fuller than exact.
  void refund() {
    if (interval_ != 0) tat_.fetch_sub(interval_, std::memory_order_relaxed);
  }

  bool unlimited() const { return interval_ == 0; }
  std::chrono::nanoseconds interval() const { return std::chrono::nanoseconds(interval_); }

 private:
  Admission take_limited(TimePoint now, std::chrono::nanoseconds max_delay);

  std::int64_t interval_;   // T in ns; 0 = unlimited
  std::int64_t tolerance_;  // (burst - 1) * T: how far TAT may run ahead of now
  std::atomic<std::int64_t> tat_;
};

class RateLimiter {
 public:
  // One client identity's shared state: every session with this identity value, on any worker,
  // holds the same object (from identity()) and passes it to admit().
  class Identity {
   public:
    Identity(std::string name, const config::RateLimitRule& limit,
             const config::RateLimitRule& write_limit, TimePoint now);

    const std::string& name() const { return name_; }
    const config::RateLimitRule& limit() const { return limit_; }  // override or default
    const config::RateLimitRule& write_limit() const { return write_limit_; }

   private:
    friend class RateLimiter;
    std::string name_;
    config::RateLimitRule limit_;
    config::RateLimitRule write_limit_;
    // Written by every admit(): the bucket and the last-use stamp share one cache line.
    mutable TokenBucket general_;
    mutable std::atomic<std::int64_t> last_used_;  // ns since the steady_clock epoch
    mutable TokenBucket write_;                    // rate 0 (unlimited) unless write_limit.rate > 0
  };

  // stripes: how many mutexes guard the identity table.
  explicit RateLimiter(const config::RateLimitConfig& config, std::size_t stripes = 16);
  ~RateLimiter();

  RateLimiter(const RateLimiter&) = delete;
  RateLimiter& operator=(const RateLimiter&) = delete;

  // False when no limit can ever apply (default, write limit and every override have rate 0):
  // the caller can skip the limiter entirely.
  bool enabled() const { return enabled_; }

  // The shared state of identity `value`, created on first use. Its limit is the override
  // whose identity equals `value` exactly (the first such override), else the default.
  // Takes one stripe mutex: call it on connect and when the identity changes, not per command.
  std::shared_ptr<const Identity> identity(std::string_view value, TimePoint now);

  // The per-command check: lock-free, no allocation. A write must pass the write limit and the
  // general limit. The write bucket is asked first, so a write it refuses costs no general
  // token; when the general bucket then refuses, the write token is refunded. When both
  // admit with delays, the delay is the longer one (both slots are reserved by then).
  Admission admit(const Identity& identity, bool is_write, TimePoint now) const;

  // Forgets identities no session holds (use_count 1) and unused for longer than idle_expiry,
  // so the table stays bounded by the live clients plus those seen within idle_expiry. Keeping
  // recently used ones means reconnecting does not refill a bucket. Returns how many it dropped.
  std::size_t sweep(TimePoint now);

  std::size_t size() const;  // identities held

  const config::RateLimitConfig& config() const { return config_; }

 private:
  struct Stripe;
  Stripe& stripe_for(std::string_view value) const;

  config::RateLimitConfig config_;
  std::chrono::nanoseconds max_delay_;
  std::chrono::nanoseconds idle_expiry_;
  bool enabled_;
  std::unique_ptr<Stripe[]> stripes_;
  std::size_t stripe_count_;
};

using Identity = RateLimiter::Identity;

// The rejection text, without the "-ERR " prefix: "rate limit exceeded (10.0.0.7, 1000/s)", or
// for the write limit (pass Admission::write_limited) "rate limit exceeded (10.0.0.7, 100
// writes/s)". Control characters in the identity are shown as '?', so the text is always a
// valid RESP simple error.
std::string rejection_message(const Identity& identity, bool write_limited);

}  // namespace respguard::protection
