// A per-thread clock read once per I/O event: everything handled in one read batch shares
// that reading. Latency metrics and deadlines need milliseconds, not a clock_gettime per
// command.
#pragma once

#include <chrono>

namespace respguard {

class LoopClock {
 public:
  using time_point = std::chrono::steady_clock::time_point;
  static time_point tick() { return now_ = std::chrono::steady_clock::now(); }
  static time_point now() { return now_; }

 private:
  static inline thread_local time_point now_ = std::chrono::steady_clock::now();
};

}  // namespace respguard
