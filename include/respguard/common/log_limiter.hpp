// Rate-limits a repeated log line process-wide: while the upstream is down, every connection
// of every worker fails every backoff period; the operator needs one line with a count, not
// a flood.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>

namespace respguard {

class LogLimiter {
 public:
  explicit LogLimiter(std::chrono::milliseconds interval) : interval_ms_(interval.count()) {}

  // True when this occurrence should be logged; `suppressed` then says how many were not
  // since the last logged one.
  bool allow(std::uint64_t& suppressed) {
    const std::int64_t now = std::chrono::duration_cast<std::chrono::milliseconds>(
                                 std::chrono::steady_clock::now().time_since_epoch())
                                 .count();
    std::int64_t next = next_ms_.load(std::memory_order_relaxed);
    if (now >= next && next_ms_.compare_exchange_strong(next, now + interval_ms_)) {
      suppressed = suppressed_.exchange(0, std::memory_order_relaxed);
      return true;
    }
    suppressed_.fetch_add(1, std::memory_order_relaxed);
    return false;
  }

 private:
  const std::int64_t interval_ms_;
  std::atomic<std::int64_t> next_ms_{0};
  std::atomic<std::uint64_t> suppressed_{0};
};

}  // namespace respguard
