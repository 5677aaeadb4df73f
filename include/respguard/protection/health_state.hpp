// Up/down verdict of the active health check, counted as HAProxy does: starting up, down after
// `fall` consecutive failed checks, up again after `rise` consecutive good ones. Results that
// agree with the current verdict reset the opposite streak. One health-check loop owns it: not
// thread-safe.
#pragma once

#include <algorithm>
#include <optional>

#include "respguard/config/config.hpp"

namespace respguard::protection {

class HealthState {
 public:
  // 0 counts as 1: a single check decides.
  HealthState(unsigned rise, unsigned fall)
      : rise_(std::max(rise, 1u)), fall_(std::max(fall, 1u)) {}
  explicit HealthState(const config::HealthCheckConfig& config)
      : HealthState(config.rise, config.fall) {}

  // One check's result. Returns the new verdict (true = up) when this check changed it.
  std::optional<bool> record(bool ok) {
    if (ok == up_) {
      streak_ = 0;
      return std::nullopt;
    }
    if (++streak_ < (up_ ? fall_ : rise_)) return std::nullopt;
    streak_ = 0;
    up_ = ok;
    return up_;
  }

  bool up() const { return up_; }

 private:
  unsigned rise_;
  unsigned fall_;
  unsigned streak_ = 0;  // consecutive results disagreeing with up_
  bool up_ = true;
};

}  // namespace respguard::protection
