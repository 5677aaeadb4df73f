#include "respguard/policy/jitter.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <optional>
#include <string>
#include <vector>

namespace respguard::policy {
namespace {

using config::JitterConfig;
using config::Millis;

// A Random that returns the given values in turn (and then the last one again).
class FixedRandom final : public Random {
 public:
  explicit FixedRandom(std::vector<double> values) : values_(std::move(values)) {}
  double uniform() override {
    const double v = values_[std::min(next_, values_.size() - 1)];
    ++next_;
    return v;
  }
  std::size_t draws() const { return next_; }

 private:
  std::vector<double> values_;
  std::size_t next_ = 0;
};

JitterConfig jitter(double percent = 0.10) {
  JitterConfig j;
  j.percent = percent;
  return j;
}

// The RESP array a client would send for `args`.
std::string resp(std::vector<std::string_view> args) {
  std::string out = "*" + std::to_string(args.size()) + "\r\n";
  for (std::string_view a : args) {
    out += "$" + std::to_string(a.size()) + "\r\n";
    out += a;
    out += "\r\n";
  }
  return out;
}

// The rewritten command, or nullopt when apply_ttl_jitter leaves it alone. `u` is the value the
// random source returns: 0.75 with percent 0.1 makes every TTL 5% longer.
std::optional<std::string> rewrite(std::vector<std::string_view> args,
                                   const JitterConfig& config = jitter(), double u = 0.75) {
  FixedRandom random({u});
  std::string out = "untouched";
  if (!apply_ttl_jitter(args, config, random, out)) {
    EXPECT_EQ(out, "untouched") << "out must not change when the command is left alone";
    EXPECT_EQ(random.draws(), 0u) << "no draw for a command left alone";
    return std::nullopt;
  }
  return out;
}

// --- rewritten commands -------------------------------------------------------------------

TEST(Jitter, SetExBecomesPxInMilliseconds) {
  EXPECT_EQ(rewrite({"SET", "k", "v", "EX", "100"}), resp({"SET", "k", "v", "PX", "105000"}));
  EXPECT_EQ(rewrite({"SET", "k", "v", "EX", "100"}, jitter(), 0.5),
            resp({"SET", "k", "v", "PX", "100000"}))
      << "u = 0.5 is no change, but still EX -> PX";
  EXPECT_EQ(rewrite({"SET", "k", "v", "EX", "100"}, jitter(), 0.0),
            resp({"SET", "k", "v", "PX", "90000"}));
}

TEST(Jitter, SetPxStaysPx) {
  EXPECT_EQ(rewrite({"SET", "k", "v", "PX", "1000"}), resp({"SET", "k", "v", "PX", "1050"}));
}

TEST(Jitter, OptionNamesAnyCaseAndOtherOptionsKeptInPlace) {
  EXPECT_EQ(rewrite({"set", "k", "v", "ex", "10"}), resp({"set", "k", "v", "PX", "10500"}));
  EXPECT_EQ(rewrite({"SET", "k", "v", "NX", "Ex", "10", "GET"}),
            resp({"SET", "k", "v", "NX", "PX", "10500", "GET"}));
  EXPECT_EQ(rewrite({"SET", "k", "v", "xx", "get", "px", "2000"}),
            resp({"SET", "k", "v", "xx", "get", "PX", "2100"}));
  // NX with GET is allowed since Redis 7.0.
  EXPECT_EQ(rewrite({"SET", "k", "v", "NX", "GET", "EX", "1"}),
            resp({"SET", "k", "v", "NX", "GET", "PX", "1050"}));
  // Repeats of NX, XX and GET are accepted by Redis, so they do not stop the rewrite.
  EXPECT_EQ(rewrite({"SET", "k", "v", "NX", "NX", "EX", "1"}),
            resp({"SET", "k", "v", "NX", "NX", "PX", "1050"}));
}

TEST(Jitter, BinaryKeysAndValuesAreCopiedExactly) {
  const std::string key("k\0\r\n", 4);
  const std::string value(300, '\xff');
  EXPECT_EQ(rewrite({"SET", key, value, "EX", "1"}), resp({"SET", key, value, "PX", "1050"}));
}

TEST(Jitter, OptionNamesAreComparedAsCStringsLikeRedis) {
  // Redis reads "EX\0zz" as EX (it compares up to the NUL), so the command does set a TTL.
  const std::string ex("EX\0zz", 5);
  EXPECT_EQ(rewrite({"SET", "k", "v", ex, "100"}), resp({"SET", "k", "v", "PX", "105000"}));
  const std::string gt("GT\0x", 4);
  JitterConfig j = jitter();
  j.expire_commands = true;
  EXPECT_EQ(rewrite({"EXPIRE", "k", "10", gt}, j), resp({"PEXPIRE", "k", "10500", gt}));
}

TEST(Jitter, SetexBecomesPsetex) {
  EXPECT_EQ(rewrite({"SETEX", "k", "10", "v"}), resp({"PSETEX", "k", "10500", "v"}));
  EXPECT_EQ(rewrite({"setex", "k", "10", "v"}), resp({"PSETEX", "k", "10500", "v"}));
  EXPECT_EQ(rewrite({"PSETEX", "k", "1000", "v"}), resp({"PSETEX", "k", "1050", "v"}));
}

TEST(Jitter, GetexExAndPx) {
  EXPECT_EQ(rewrite({"GETEX", "k", "EX", "10"}), resp({"GETEX", "k", "PX", "10500"}));
  EXPECT_EQ(rewrite({"getex", "k", "px", "1000"}), resp({"getex", "k", "PX", "1050"}));
}

TEST(Jitter, ExpireOnlyWhenEnabled) {
  EXPECT_EQ(rewrite({"EXPIRE", "k", "10"}), std::nullopt);
  EXPECT_EQ(rewrite({"PEXPIRE", "k", "1000"}), std::nullopt);
  JitterConfig j = jitter();
  j.expire_commands = true;
  EXPECT_EQ(rewrite({"EXPIRE", "k", "10"}, j), resp({"PEXPIRE", "k", "10500"}));
  EXPECT_EQ(rewrite({"expire", "k", "10", "gt"}, j), resp({"PEXPIRE", "k", "10500", "gt"}));
  EXPECT_EQ(rewrite({"PEXPIRE", "k", "1000", "NX"}, j), resp({"PEXPIRE", "k", "1050", "NX"}));
  EXPECT_EQ(rewrite({"PEXPIRE", "k", "1000", "XX", "LT", "XX"}, j),
            resp({"PEXPIRE", "k", "1050", "XX", "LT", "XX"}));
}

TEST(Jitter, DefaultTtlIsAddedToASetWithoutExpiration) {
  JitterConfig j = jitter();
  j.default_ttl = Millis(3'600'000);
  EXPECT_EQ(rewrite({"SET", "k", "v"}, j), resp({"SET", "k", "v", "PX", "3780000"}));
  EXPECT_EQ(rewrite({"SET", "k", "v", "NX", "GET"}, j),
            resp({"SET", "k", "v", "NX", "GET", "PX", "3780000"}));
  // A SET with its own relative TTL is jittered as usual; the default does not apply.
  EXPECT_EQ(rewrite({"SET", "k", "v", "EX", "10"}, j), resp({"SET", "k", "v", "PX", "10500"}));
  // Absolute or kept expirations stay exactly as written.
  EXPECT_EQ(rewrite({"SET", "k", "v", "KEEPTTL"}, j), std::nullopt);
  EXPECT_EQ(rewrite({"SET", "k", "v", "EXAT", "1999999999"}, j), std::nullopt);
  EXPECT_EQ(rewrite({"SET", "k", "v", "PXAT", "1999999999000"}, j), std::nullopt);
  // Only SET: other writes are not given a TTL.
  EXPECT_EQ(rewrite({"GETEX", "k"}, j), std::nullopt);
  EXPECT_EQ(rewrite({"MSET", "a", "1", "b", "2"}, j), std::nullopt);
  EXPECT_EQ(rewrite({"HSET", "h", "f", "v"}, j), std::nullopt);
  EXPECT_EQ(rewrite({"SET", "k"}, j), std::nullopt) << "Redis: wrong number of arguments";
  EXPECT_EQ(rewrite({"SET", "k", "v", "BOGUS"}, j), std::nullopt) << "Redis: syntax error";
}

TEST(Jitter, WithoutDefaultTtlASetWithoutExpirationIsLeftAlone) {
  EXPECT_EQ(rewrite({"SET", "k", "v"}), std::nullopt);
  EXPECT_EQ(rewrite({"SET", "k", "v", "NX"}), std::nullopt);
}

// --- left alone ---------------------------------------------------------------------------

TEST(Jitter, AbsoluteAndRetainedExpirationsAreLeftAlone) {
  EXPECT_EQ(rewrite({"SET", "k", "v", "EXAT", "1999999999"}), std::nullopt);
  EXPECT_EQ(rewrite({"SET", "k", "v", "PXAT", "1999999999000"}), std::nullopt);
  EXPECT_EQ(rewrite({"SET", "k", "v", "KEEPTTL"}), std::nullopt);
  EXPECT_EQ(rewrite({"GETEX", "k", "EXAT", "1999999999"}), std::nullopt);
  EXPECT_EQ(rewrite({"GETEX", "k", "PXAT", "1999999999000"}), std::nullopt);
  EXPECT_EQ(rewrite({"GETEX", "k", "PERSIST"}), std::nullopt);
  EXPECT_EQ(rewrite({"GETEX", "k"}), std::nullopt);
}

TEST(Jitter, TtlsRedisRejectsAreLeftForRedisToReject) {
  for (std::string_view bad :
       {"0", "-5", "abc", "01", "+1", "1.5", "", " 1", "1 ", "1e3", "99999999999999999999"}) {
    EXPECT_EQ(rewrite({"SET", "k", "v", "EX", bad}), std::nullopt) << bad;
    EXPECT_EQ(rewrite({"SET", "k", "v", "PX", bad}), std::nullopt) << bad;
    EXPECT_EQ(rewrite({"SETEX", "k", bad, "v"}), std::nullopt) << bad;
    EXPECT_EQ(rewrite({"GETEX", "k", "EX", bad}), std::nullopt) << bad;
  }
}

TEST(Jitter, AbsurdlyLargeTtlsAreLeftAlone) {
  // Redis refuses EX beyond LLONG_MAX / 1000; far below that, jitter is meaningless and could
  // overflow Redis's now + ttl.
  EXPECT_EQ(rewrite({"SET", "k", "v", "EX", "9223372036854775"}), std::nullopt);
  EXPECT_EQ(rewrite({"SET", "k", "v", "PX", "9000000000000000000"}), std::nullopt);
  // A century is fine.
  EXPECT_EQ(rewrite({"SET", "k", "v", "EX", "3153600000"}, jitter(), 0.5),
            resp({"SET", "k", "v", "PX", "3153600000000"}));
}

TEST(Jitter, SyntaxErrorsAreLeftForRedisToReport) {
  EXPECT_EQ(rewrite({"SET", "k", "v", "NX", "XX", "EX", "10"}), std::nullopt);
  EXPECT_EQ(rewrite({"SET", "k", "v", "EX", "10", "PX", "10"}), std::nullopt);
  EXPECT_EQ(rewrite({"SET", "k", "v", "EX", "10", "KEEPTTL"}), std::nullopt);
  EXPECT_EQ(rewrite({"SET", "k", "v", "KEEPTTL", "EX", "10"}), std::nullopt);
  EXPECT_EQ(rewrite({"SET", "k", "v", "EXAT", "1", "EX", "10"}), std::nullopt);
  EXPECT_EQ(rewrite({"SET", "k", "v", "EX"}), std::nullopt) << "EX without a value";
  EXPECT_EQ(rewrite({"SET", "k", "v", "FOO", "EX", "10"}), std::nullopt);
  EXPECT_EQ(rewrite({"SET", "k", "v", "PERSIST"}), std::nullopt) << "PERSIST is GETEX's";
  EXPECT_EQ(rewrite({"GETEX", "k", "NX"}), std::nullopt) << "NX is SET's";
  EXPECT_EQ(rewrite({"GETEX", "k", "EX", "10", "PERSIST"}), std::nullopt);
  EXPECT_EQ(rewrite({"SETEX", "k", "10"}), std::nullopt);
  EXPECT_EQ(rewrite({"SETEX", "k", "10", "v", "extra"}), std::nullopt);
  EXPECT_EQ(rewrite({"PSETEX", "k", "10"}), std::nullopt);
  EXPECT_EQ(rewrite({"SET", "k"}), std::nullopt);
  EXPECT_EQ(rewrite({"GETEX"}), std::nullopt);
  EXPECT_EQ(rewrite({}), std::nullopt);
}

TEST(Jitter, RepeatedExpirationOptionsAreLeftAlone) {
  // Redis accepts these (the last one counts, and only its value is checked: "EX abc EX 10" is
  // fine), but rewriting one EX into PX would turn them into a syntax error.
  EXPECT_EQ(rewrite({"SET", "k", "v", "EX", "10", "EX", "20"}), std::nullopt);
  EXPECT_EQ(rewrite({"SET", "k", "v", "EX", "abc", "EX", "20"}), std::nullopt);
  EXPECT_EQ(rewrite({"SET", "k", "v", "PX", "10", "PX", "20"}), std::nullopt);
  EXPECT_EQ(rewrite({"GETEX", "k", "EX", "10", "EX", "20"}), std::nullopt);
}

TEST(Jitter, ExpireOptionsRedisRejectsAreLeftAlone) {
  JitterConfig j = jitter();
  j.expire_commands = true;
  EXPECT_EQ(rewrite({"EXPIRE", "k", "10", "NX", "XX"}, j), std::nullopt);
  EXPECT_EQ(rewrite({"EXPIRE", "k", "10", "NX", "GT"}, j), std::nullopt);
  EXPECT_EQ(rewrite({"EXPIRE", "k", "10", "GT", "LT"}, j), std::nullopt);
  EXPECT_EQ(rewrite({"EXPIRE", "k", "10", "FOO"}, j), std::nullopt);
  EXPECT_EQ(rewrite({"EXPIRE", "k"}, j), std::nullopt);
  // A TTL <= 0 deletes the key: nothing to spread.
  EXPECT_EQ(rewrite({"EXPIRE", "k", "0"}, j), std::nullopt);
  EXPECT_EQ(rewrite({"EXPIRE", "k", "-1"}, j), std::nullopt);
  EXPECT_EQ(rewrite({"EXPIREAT", "k", "1999999999"}, j), std::nullopt);
  EXPECT_EQ(rewrite({"PEXPIREAT", "k", "1999999999000"}, j), std::nullopt);
}

TEST(Jitter, OtherCommandsAreLeftAlone) {
  JitterConfig j = jitter();
  j.expire_commands = true;
  j.default_ttl = Millis(1000);
  for (std::vector<std::string_view> args : std::vector<std::vector<std::string_view>>{
           {"GET", "k"},
           {"SETNX", "k", "v"},
           {"GETSET", "k", "v"},
           {"MSET", "a", "1"},
           {"INCR", "k"},
           {"PERSIST", "k"},
           {"SETRANGE", "k", "0", "v"},
       }) {
    EXPECT_EQ(rewrite(args, j), std::nullopt) << args[0];
  }
}

// --- jittered_ttl_ms ----------------------------------------------------------------------

TEST(JitteredTtl, ExactValuesAtTheEnds) {
  FixedRandom r({0.0, 0.5, 0.999999999});
  const JitterConfig j = jitter(0.2);
  EXPECT_EQ(jittered_ttl_ms(10'000, j, r), 8'000);
  EXPECT_EQ(jittered_ttl_ms(10'000, j, r), 10'000);
  EXPECT_EQ(jittered_ttl_ms(10'000, j, r), 12'000);
}

TEST(JitteredTtl, PositiveOnlyNeverShortens) {
  JitterConfig j = jitter(0.2);
  j.positive_only = true;
  FixedRandom r({0.0, 0.5, 0.999999999});
  EXPECT_EQ(jittered_ttl_ms(10'000, j, r), 10'000);
  EXPECT_EQ(jittered_ttl_ms(10'000, j, r), 11'000);
  EXPECT_EQ(jittered_ttl_ms(10'000, j, r), 12'000);
}

TEST(JitteredTtl, NeverBelowOneMillisecond) {
  FixedRandom r({0.0});
  EXPECT_EQ(jittered_ttl_ms(1, jitter(1.0), r), 1);
  EXPECT_EQ(jittered_ttl_ms(1000, jitter(1.0), r), 1) << "-100% would delete the key";
  EXPECT_EQ(jittered_ttl_ms(1, jitter(0.5), r), 1);
  // Through the command, too: SET .. PX 1 with u = -100%.
  std::string out;
  FixedRandom zero({0.0});
  std::vector<std::string_view> args = {"SET", "k", "v", "PX", "1"};
  ASSERT_TRUE(apply_ttl_jitter(args, jitter(1.0), zero, out));
  EXPECT_EQ(out, resp({"SET", "k", "v", "PX", "1"}));
}

TEST(JitteredTtl, StaysWithinTheBounds) {
  FastRandom random(12345);
  for (double percent : {0.01, 0.1, 0.5, 1.0}) {
    for (bool positive_only : {false, true}) {
      JitterConfig j = jitter(percent);
      j.positive_only = positive_only;
      for (long long ttl : {1LL, 7LL, 1000LL, 60'000LL, 86'400'000LL}) {
        const double lo = positive_only ? ttl : ttl * (1 - percent);
        const double hi = ttl * (1 + percent);
        for (int i = 0; i < 2000; ++i) {
          const long long v = jittered_ttl_ms(ttl, j, random);
          ASSERT_GE(v, std::max(1.0, std::floor(lo))) << percent << " " << ttl;
          ASSERT_LE(v, std::ceil(hi)) << percent << " " << ttl;
        }
      }
    }
  }
}

// 100k draws over [ttl*(1-p), ttl*(1+p)] in 20 equal buckets: each bucket within 5% of its
// expected count, and a chi-square statistic below the 0.1% critical value for 19 degrees of
// freedom (43.82). The seed is fixed, so this is deterministic, not flaky.
void expect_uniform(bool positive_only) {
  constexpr int kDraws = 100'000;
  constexpr int kBuckets = 20;
  constexpr long long kTtl = 1'000'000;
  JitterConfig j = jitter(0.1);
  j.positive_only = positive_only;
  const double lo = positive_only ? kTtl : kTtl * 0.9;
  const double hi = kTtl * 1.1;
  FastRandom random(2024);
  std::vector<int> counts(kBuckets, 0);
  double sum = 0;
  for (int i = 0; i < kDraws; ++i) {
    const long long v = jittered_ttl_ms(kTtl, j, random);
    ASSERT_GE(v, lo);
    ASSERT_LE(v, hi);
    sum += static_cast<double>(v);
    int bucket = static_cast<int>((static_cast<double>(v) - lo) / (hi - lo) * kBuckets);
    counts[std::min(bucket, kBuckets - 1)]++;
  }
  const double expected = static_cast<double>(kDraws) / kBuckets;
  double chi2 = 0;
  for (int c : counts) {
    EXPECT_NEAR(c, expected, expected * 0.05);
    chi2 += (c - expected) * (c - expected) / expected;
  }
  EXPECT_LT(chi2, 43.82);
  EXPECT_NEAR(sum / kDraws, (lo + hi) / 2, (hi - lo) * 0.01);
}

TEST(JitteredTtl, UniformOverTheSymmetricRange) {
  expect_uniform(false);
}

TEST(JitteredTtl, UniformOverThePositiveRange) {
  expect_uniform(true);
}

TEST(JitteredTtl, TheRewrittenCommandsSpreadToo) {
  // 1000 SETs with the same EX 60: the expirations land all over [54 s, 66 s].
  FastRandom random(99);
  std::string out;
  long long min = 1LL << 62, max = 0;
  std::vector<std::string_view> args = {"SET", "k", "v", "EX", "60"};
  for (int i = 0; i < 1000; ++i) {
    ASSERT_TRUE(apply_ttl_jitter(args, jitter(), random, out));
    ASSERT_TRUE(out.starts_with("*5\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n$2\r\nPX\r\n"));
    // The last bulk string is the TTL.
    const std::size_t end = out.rfind("\r\n");
    const std::size_t start = out.rfind("\r\n", end - 1) + 2;
    const long long ms = std::stoll(out.substr(start, end - start));
    min = std::min(min, ms);
    max = std::max(max, ms);
  }
  EXPECT_GE(min, 54'000);
  EXPECT_LE(max, 66'000);
  EXPECT_LT(min, 54'500);
  EXPECT_GT(max, 65'500);
}

}  // namespace
}  // namespace respguard::policy
