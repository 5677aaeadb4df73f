#include "respguard/protection/rate_limiter.hpp"

#include <algorithm>
#include <functional>
#include <limits>
#include <mutex>
#include <unordered_map>

namespace respguard::protection {
namespace {

constexpr std::int64_t kSecond = 1'000'000'000;

std::int64_t to_ns(TimePoint t) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
}

}  // namespace

TokenBucket::TokenBucket(unsigned rate, unsigned burst)
    // Above 1e9/s the interval would round to 0 (unlimited); 1ns caps it at 1e9/s instead.
    : interval_(rate == 0 ? 0 : std::max<std::int64_t>(kSecond / rate, 1)),
      // burst <= 2^32 and T <= 1e9: the product fits in int64.
      tolerance_((static_cast<std::int64_t>(burst == 0 ? rate : burst) - 1) * interval_),
      // Any past instant: max(TAT, now) is then now, a full bucket.
      tat_(std::numeric_limits<std::int64_t>::min()) {}

Admission TokenBucket::take_limited(TimePoint now, std::chrono::nanoseconds max_delay) {
  const std::int64_t n = to_ns(now);
  const std::int64_t limit = std::max<std::int64_t>(max_delay.count(), 0);
  std::int64_t tat = tat_.load(std::memory_order_relaxed);
  for (;;) {
    const std::int64_t base = std::max(tat, n);
    // How long before this request conforms: > 0 means too early by that much.
    const std::int64_t early = base - n - tolerance_;
    if (early > limit) return {Admission::Verdict::Rejected, false, {}};
    // Relaxed is enough: TAT is the only shared state, and a CAS on one atomic is linearizable.
    if (tat_.compare_exchange_weak(tat, base + interval_, std::memory_order_relaxed,
                                   std::memory_order_relaxed)) {
      if (early <= 0) return {};
      return {Admission::Verdict::Delayed, false, std::chrono::nanoseconds(early)};
    }
  }
}

RateLimiter::Identity::Identity(std::string name, const config::RateLimitRule& limit,
                                const config::RateLimitRule& write_limit, TimePoint now)
    : name_(std::move(name)),
      limit_(limit),
      write_limit_(write_limit),
      general_(limit),
      last_used_(to_ns(now)),
      write_(write_limit) {}

struct RateLimiter::Stripe {
  mutable std::mutex mutex;
  // Keyed by a view of the Identity's own name: the entry holds the Identity, so the view lives
  // exactly as long as the entry, and lookups by string_view need no allocation.
  std::unordered_map<std::string_view, std::shared_ptr<Identity>> map;
};

RateLimiter::RateLimiter(const config::RateLimitConfig& config, std::size_t stripes)
    : config_(config),
      max_delay_(config.max_delay),
      idle_expiry_(config.idle_expiry),
      stripe_count_(std::clamp<std::size_t>(stripes, 1, 1024)) {
  enabled_ = config.limit.rate > 0 || config.write_limit.rate > 0 ||
             std::any_of(config.overrides.begin(), config.overrides.end(),
                         [](const config::RateLimitOverride& o) { return o.limit.rate > 0; });
  stripes_ = std::make_unique<Stripe[]>(stripe_count_);
}

RateLimiter::~RateLimiter() = default;

RateLimiter::Stripe& RateLimiter::stripe_for(std::string_view value) const {
  const std::size_t hash = std::hash<std::string_view>{}(value);
  // Mixed high bits pick the stripe; the map's buckets use the low ones.
  return stripes_[((hash * 0xff51afd7ed558ccdull) >> 32) % stripe_count_];
}

std::shared_ptr<const RateLimiter::Identity> RateLimiter::identity(std::string_view value,
                                                                   TimePoint now) {
  Stripe& s = stripe_for(value);
  std::lock_guard lock(s.mutex);
  if (auto it = s.map.find(value); it != s.map.end()) {
    it->second->last_used_.store(to_ns(now), std::memory_order_relaxed);
    return it->second;
  }
  // Overrides are few and this runs once per connect; a linear scan keeps "first wins" obvious.
  const config::RateLimitRule* limit = &config_.limit;
  for (const config::RateLimitOverride& o : config_.overrides) {
    if (o.identity == value) {
      limit = &o.limit;
      break;
    }
  }
  auto id = std::make_shared<Identity>(std::string(value), *limit, config_.write_limit, now);
  s.map.emplace(id->name(), id);
  return id;
}

Admission RateLimiter::admit(const Identity& id, bool is_write, TimePoint now) const {
  id.last_used_.store(to_ns(now), std::memory_order_relaxed);
  if (!is_write || id.write_.unlimited()) return id.general_.take(now, max_delay_);

  const Admission w = id.write_.take(now, max_delay_);
  if (!w.admitted()) return {Admission::Verdict::Rejected, true, {}};
  const Admission g = id.general_.take(now, max_delay_);
  if (!g.admitted()) {
    id.write_.refund();  // the write never runs: its write slot goes back
    return g;
  }
  return g.delay >= w.delay ? g : w;
}

std::size_t RateLimiter::sweep(TimePoint now) {
  const std::int64_t n = to_ns(now);
  const std::int64_t idle = idle_expiry_.count();
  std::size_t dropped = 0;
  for (std::size_t i = 0; i < stripe_count_; ++i) {
    Stripe& s = stripes_[i];
    std::lock_guard lock(s.mutex);
    // use_count is stable here: new references come only from identity() (this mutex) or by
    // copying one a session holds, which already makes it > 1.
    dropped += std::erase_if(s.map, [&](const auto& entry) {
      const Identity& id = *entry.second;
      return entry.second.use_count() == 1 &&
             n - id.last_used_.load(std::memory_order_relaxed) > idle;
    });
  }
  return dropped;
}

std::size_t RateLimiter::size() const {
  std::size_t total = 0;
  for (std::size_t i = 0; i < stripe_count_; ++i) {
    std::lock_guard lock(stripes_[i].mutex);
    total += stripes_[i].map.size();
  }
  return total;
}

std::string rejection_message(const Identity& id, bool write_limited) {
  std::string text = "rate limit exceeded (";
  for (char c : id.name()) {
    const auto u = static_cast<unsigned char>(c);
    text.push_back(u < 0x20 || u == 0x7f ? '?' : c);
  }
  text += ", ";
  if (write_limited) {
    text += std::to_string(id.write_limit().rate);
    text += " writes/s)";
  } else {
    text += std::to_string(id.limit().rate);
    text += "/s)";
  }
  return text;
}

}  // namespace respguard::protection
