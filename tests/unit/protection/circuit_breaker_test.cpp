#include "respguard/protection/circuit_breaker.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <map>
#include <mutex>
#include <random>
#include <thread>
#include <vector>

namespace respguard::protection {
namespace {

using namespace std::chrono_literals;
using State = CircuitBreaker::State;
using Transition = CircuitBreaker::Transition;

const TimePoint kT0 = TimePoint(1000s);
TimePoint at(std::chrono::nanoseconds offset) {
  return kT0 + offset;
}

constexpr std::optional<Transition> kNone = std::nullopt;
constexpr Transition kOpened{State::Closed, State::Open};
constexpr Transition kHalfOpened{State::Open, State::HalfOpen};
constexpr Transition kClosed{State::HalfOpen, State::Closed};
constexpr Transition kReopened{State::HalfOpen, State::Open};

config::BreakerConfig consecutive(unsigned threshold) {
  config::BreakerConfig c;
  c.enabled = true;
  c.failure_threshold = threshold;
  c.failure_ratio_percent = 0;
  c.open_for = 5s;
  c.probes = 2;
  return c;
}

config::BreakerConfig ratio(unsigned percent, unsigned min_requests) {
  config::BreakerConfig c = consecutive(0);
  c.failure_ratio_percent = percent;
  c.min_requests = min_requests;
  c.window = 10s;
  return c;
}

// Opens a breaker with failure_threshold 1 at `when`.
void trip(CircuitBreaker& b, TimePoint when) {
  ASSERT_EQ(b.on_failure(0, when), kOpened);
}

TEST(CircuitBreaker, OpensOnConsecutiveFailures) {
  CircuitBreaker b(consecutive(3), 1);
  EXPECT_EQ(b.on_failure(0, at(0s)), kNone);
  EXPECT_EQ(b.on_failure(0, at(0s)), kNone);
  EXPECT_EQ(b.on_success(0, at(0s)), kNone) << "a success breaks the streak";
  EXPECT_EQ(b.on_failure(0, at(0s)), kNone);
  EXPECT_EQ(b.on_failure(0, at(0s)), kNone);
  EXPECT_EQ(b.state(), State::Closed);
  EXPECT_TRUE(b.allow(at(0s)));
  EXPECT_EQ(b.on_failure(0, at(0s)), kOpened);
  EXPECT_EQ(b.state(), State::Open);
  EXPECT_FALSE(b.allow(at(0s)));
  EXPECT_EQ(b.on_failure(0, at(0s)), kNone) << "the transition is reported once";
}

TEST(CircuitBreaker, ConsecutiveFailuresCountAcrossShards) {
  CircuitBreaker b(consecutive(3), 4);
  EXPECT_EQ(b.on_failure(0, at(0s)), kNone);
  EXPECT_EQ(b.on_failure(1, at(0s)), kNone);
  EXPECT_EQ(b.on_failure(3, at(0s)), kOpened);
}

TEST(CircuitBreaker, RatioNeedsMinRequests) {
  CircuitBreaker b(ratio(50, 10), 2);
  for (int i = 0; i < 4; ++i) EXPECT_EQ(b.on_success(0, at(1s)), kNone);
  for (int i = 0; i < 4; ++i) EXPECT_EQ(b.on_failure(1, at(1s)), kNone) << "only 8 requests";
  EXPECT_EQ(b.on_success(0, at(2s)), kNone);
  EXPECT_EQ(b.on_failure(1, at(2s)), kOpened) << "5 of 10 across both shards: 50%";
}

TEST(CircuitBreaker, RatioBelowThresholdStaysClosed) {
  CircuitBreaker b(ratio(50, 10), 1);
  for (int i = 0; i < 60; ++i) EXPECT_EQ(b.on_success(0, at(1s)), kNone);
  for (int i = 0; i < 59; ++i) ASSERT_EQ(b.on_failure(0, at(1s)), kNone) << i;
  EXPECT_EQ(b.on_failure(0, at(1s)), kOpened) << "60 of 120";
}

TEST(CircuitBreaker, RatioWindowForgetsOldRequests) {
  CircuitBreaker b(ratio(50, 10), 1);
  for (int i = 0; i < 9; ++i) EXPECT_EQ(b.on_failure(0, at(0s)), kNone);
  // 11s later the nine failures are out of the 10s window: ten more are needed.
  for (int i = 0; i < 9; ++i) EXPECT_EQ(b.on_failure(0, at(11s)), kNone) << i;
  EXPECT_EQ(b.on_failure(0, at(11s)), kOpened);

  // Old successes do not dilute new failures either.
  CircuitBreaker c(ratio(50, 10), 1);
  for (int i = 0; i < 1000; ++i) c.on_success(0, at(0s));
  for (int i = 0; i < 9; ++i) EXPECT_EQ(c.on_failure(0, at(20s)), kNone);
  EXPECT_EQ(c.on_failure(0, at(20s)), kOpened);
}

TEST(CircuitBreaker, OpenRefusesUntilOpenForThenHalfOpens) {
  CircuitBreaker b(consecutive(1), 1);
  trip(b, at(0s));
  EXPECT_FALSE(b.allow(at(1s)));
  EXPECT_FALSE(b.allow(at(5s) - 1ns));
  EXPECT_EQ(b.state(), State::Open);
  const CircuitBreaker::Permit p = b.allow(at(5s));
  EXPECT_TRUE(p.allowed);
  EXPECT_EQ(p.transition, kHalfOpened);
  EXPECT_EQ(b.state(), State::HalfOpen);
  EXPECT_EQ(b.allow(at(5s)).transition, kNone) << "reported once";
}

TEST(CircuitBreaker, HalfOpenAdmitsAtMostProbesOutstanding) {
  CircuitBreaker b(consecutive(1), 1);  // probes 2
  trip(b, at(0s));
  EXPECT_TRUE(b.allow(at(5s)));
  EXPECT_TRUE(b.allow(at(5s)));
  EXPECT_FALSE(b.allow(at(5s)));
  EXPECT_FALSE(b.allow(at(6s)));
  EXPECT_EQ(b.on_success(0, at(6s)), kNone);
  EXPECT_TRUE(b.allow(at(6s))) << "an answered probe frees its place";
  EXPECT_FALSE(b.allow(at(6s)));
}

TEST(CircuitBreaker, ProbeSuccessesClose) {
  config::BreakerConfig c = ratio(50, 4);
  c.failure_threshold = 1;
  c.probes = 3;
  CircuitBreaker b(c, 1);
  trip(b, at(0s));
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(b.allow(at(5s)));
  EXPECT_EQ(b.on_success(0, at(5s)), kNone);
  EXPECT_EQ(b.on_success(0, at(5s)), kNone);
  EXPECT_EQ(b.on_success(0, at(5s)), kClosed);
  EXPECT_EQ(b.state(), State::Closed);
  EXPECT_TRUE(b.allow(at(5s)));
  EXPECT_EQ(b.on_success(0, at(5s)), kNone);

  // The window is reset on close: the five failures that opened it no longer count, so four
  // successes and a failure are 20% (6 of 10 without the reset).
  config::BreakerConfig r = ratio(30, 5);
  r.probes = 1;
  CircuitBreaker w(r, 1);
  for (int i = 0; i < 5; ++i) w.on_failure(0, at(0s));
  ASSERT_EQ(w.state(), State::Open);
  ASSERT_TRUE(w.allow(at(5s)));
  ASSERT_EQ(w.on_success(0, at(5s)), kClosed);
  for (int i = 0; i < 4; ++i) w.on_success(0, at(5s));
  EXPECT_EQ(w.on_failure(0, at(5s)), kNone) << "1 of 5 since closing";
  EXPECT_EQ(w.on_failure(0, at(5s)), kOpened) << "2 of 6";
}

TEST(CircuitBreaker, ProbeFailureReopensForOpenFor) {
  CircuitBreaker b(consecutive(1), 1);
  trip(b, at(0s));
  ASSERT_TRUE(b.allow(at(5s)));
  ASSERT_TRUE(b.allow(at(5s)));
  EXPECT_EQ(b.on_success(0, at(6s)), kNone);
  EXPECT_EQ(b.on_failure(0, at(7s)), kReopened);
  EXPECT_EQ(b.state(), State::Open);
  EXPECT_FALSE(b.allow(at(12s) - 1ns)) << "open_for counts from the reopening";
  const CircuitBreaker::Permit p = b.allow(at(12s));
  EXPECT_TRUE(p.allowed);
  EXPECT_EQ(p.transition, kHalfOpened);
}

TEST(CircuitBreaker, HoldOpenKeepsItOpenUntilReleased) {
  CircuitBreaker b(consecutive(3), 1);
  EXPECT_EQ(b.hold_open(true, at(0s)), kOpened);
  EXPECT_EQ(b.hold_open(true, at(0s)), kNone) << "repeating the verdict changes nothing";
  EXPECT_FALSE(b.allow(at(1h)));
  EXPECT_EQ(b.poll(at(1h)), kNone);
  EXPECT_EQ(b.state(), State::Open);
  EXPECT_EQ(b.hold_open(false, at(1h)), kHalfOpened);
  EXPECT_EQ(b.hold_open(false, at(1h)), kNone);
  EXPECT_TRUE(b.allow(at(1h)));
  EXPECT_EQ(b.on_success(0, at(1h)), kNone);
  EXPECT_TRUE(b.allow(at(1h)));
  EXPECT_EQ(b.on_success(0, at(1h)), kClosed);
}

TEST(CircuitBreaker, HoldOpenExtendsABreakerAlreadyOpen) {
  CircuitBreaker b(consecutive(1), 1);
  trip(b, at(0s));
  EXPECT_EQ(b.hold_open(true, at(1s)), kNone) << "already open";
  EXPECT_FALSE(b.allow(at(10s))) << "held past open_for";
  EXPECT_EQ(b.hold_open(false, at(10s)), kHalfOpened);
  EXPECT_TRUE(b.allow(at(10s)));
}

TEST(CircuitBreaker, HoldOpenFromHalfOpen) {
  CircuitBreaker b(consecutive(1), 1);
  trip(b, at(0s));
  ASSERT_TRUE(b.allow(at(5s)));
  EXPECT_EQ(b.hold_open(true, at(5s)), kReopened);
  EXPECT_EQ(b.on_success(0, at(5s)), kNone) << "the probe's late answer changes nothing";
  EXPECT_FALSE(b.allow(at(1h)));
}

TEST(CircuitBreaker, PollHalfOpensWithoutTraffic) {
  CircuitBreaker b(consecutive(1), 1);
  trip(b, at(0s));
  EXPECT_EQ(b.poll(at(4s)), kNone);
  EXPECT_EQ(b.poll(at(5s)), kHalfOpened);
  EXPECT_EQ(b.state(), State::HalfOpen);
  EXPECT_EQ(b.poll(at(6s)), kNone);
  const CircuitBreaker::Permit p = b.allow(at(6s));
  EXPECT_TRUE(p.allowed);
  EXPECT_EQ(p.transition, kNone);
}

TEST(CircuitBreaker, DisabledAllowsEverythingAndRecordsNothing) {
  config::BreakerConfig c = consecutive(1);
  c.enabled = false;
  CircuitBreaker b(c, 1);
  EXPECT_FALSE(b.enabled());
  for (int i = 0; i < 100; ++i) EXPECT_EQ(b.on_failure(0, at(0s)), kNone);
  EXPECT_EQ(b.hold_open(true, at(0s)), kNone);
  EXPECT_EQ(b.poll(at(1h)), kNone);
  EXPECT_TRUE(b.allow(at(0s)));
  EXPECT_EQ(b.state(), State::Closed);
}

TEST(CircuitBreaker, StateNames) {
  EXPECT_EQ(to_string(State::Closed), "closed");
  EXPECT_EQ(to_string(State::Open), "open");
  EXPECT_EQ(to_string(State::HalfOpen), "half_open");
}

TEST(CircuitBreaker, ConcurrentWorkersSeeEachTransitionOnce) {
  // Four workers drive one breaker through many open/half-open/close cycles. Every transition
  // is returned to exactly one caller, so the counts must chain up to the final state. Outcomes
  // are random (60% success, seeded): thousands of opens and closes however the threads
  // interleave, even one after another.
  config::BreakerConfig c = consecutive(3);
  c.open_for = 0ms;
  c.probes = 2;
  CircuitBreaker b(c, 4);
  std::mutex mu;
  std::map<std::pair<State, State>, int> counts;
  auto note = [&](std::optional<Transition> t) {
    if (!t) return;
    std::lock_guard lock(mu);
    ++counts[{t->from, t->to}];
  };
  std::vector<std::thread> threads;
  for (unsigned shard = 0; shard < 4; ++shard) {
    threads.emplace_back([&, shard] {
      std::minstd_rand rng(shard + 1);
      for (int i = 0; i < 20'000; ++i) {
        const TimePoint now = at(std::chrono::microseconds(i));
        const CircuitBreaker::Permit p = b.allow(now);
        note(p.transition);
        if (!p.allowed) continue;
        note(rng() % 10 < 6 ? b.on_success(shard, now) : b.on_failure(shard, now));
      }
    });
  }
  for (auto& t : threads) t.join();
  auto n = [&](State from, State to) { return counts[{from, to}]; };
  const int into_open = n(State::Closed, State::Open) + n(State::HalfOpen, State::Open);
  const int out_of_open = n(State::Open, State::HalfOpen);
  const int into_half = out_of_open;
  const int out_of_half = n(State::HalfOpen, State::Closed) + n(State::HalfOpen, State::Open);
  const int into_closed = n(State::HalfOpen, State::Closed);
  const int out_of_closed = n(State::Closed, State::Open);
  EXPECT_GT(into_open, 0);
  EXPECT_GT(into_closed, 0);
  EXPECT_EQ(into_open - out_of_open, b.state() == State::Open ? 1 : 0);
  EXPECT_EQ(into_half - out_of_half, b.state() == State::HalfOpen ? 1 : 0);
  EXPECT_EQ(1 + into_closed - out_of_closed, b.state() == State::Closed ? 1 : 0);
}

}  // namespace
}  // namespace respguard::protection
