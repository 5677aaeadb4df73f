// The random source policies draw from: injected, so tests can fix it.
#pragma once

#include <cstdint>

namespace respguard::policy {

class Random {
 public:
  virtual ~Random() = default;
  virtual double uniform() = 0;  // [0, 1)
};

// xorshift64*: fast, per worker, not for secrets.
class FastRandom final : public Random {
 public:
  explicit FastRandom(std::uint64_t seed) : state_(seed ? seed : 0x9e3779b97f4a7c15ull) {}
  double uniform() override {
    state_ ^= state_ >> 12;
    state_ ^= state_ << 25;
    state_ ^= state_ >> 27;
    const std::uint64_t r = state_ * 0x2545f4914f6cdd1dull;
    return static_cast<double>(r >> 11) * (1.0 / 9007199254740992.0);  // 53 bits
  }

 private:
  std::uint64_t state_;
};

}  // namespace respguard::policy
