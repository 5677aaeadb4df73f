#include "respguard/config/config.hpp"

#include "respguard/common/sha256.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace respguard::config {
namespace {

const std::filesystem::path kRepoRoot =
    (std::filesystem::path(__FILE__).parent_path() / "../../..").lexically_normal();

// The message of the ConfigError that loading `yaml` raises, or "(no error)".
std::string load_error(const std::string& yaml) {
  try {
    load_string(yaml, "respguard.yaml");
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "(no error)";
}

template <typename Parse>
std::string parse_error(Parse parse, std::string_view text) {
  try {
    parse(text);
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  return "(no error)";
}

std::string validate_error(const Config& config) {
  try {
    validate(config);
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "(no error)";
}

// A rule matching `match`, with coalescing (or no policy at all).
RuleConfig make_rule(std::string match, bool coalesce = true) {
  RuleConfig rule;
  rule.match = std::move(match);
  rule.coalesce = coalesce;
  return rule;
}

JitterConfig make_jitter(double percent, std::optional<Millis> default_ttl = std::nullopt) {
  JitterConfig jitter;
  jitter.percent = percent;
  jitter.default_ttl = default_ttl;
  return jitter;
}

std::string read_text(const std::filesystem::path& path) {
  std::ifstream in(path);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

// Every option key, taken from the reference table ("| `upstream.address` | ...").
std::vector<std::string> reference_keys() {
  std::vector<std::string> keys;
  std::istringstream lines(reference_markdown());
  for (std::string line; std::getline(lines, line);) {
    if (!line.starts_with("| `")) continue;
    keys.push_back(line.substr(3, line.find('`', 3) - 3));
  }
  return keys;
}

// True when `yaml` sets `key` as an uncommented line in the expected section:
// "upstream.address" needs "upstream:" followed by an indented "address:" line, and
// "upstream.tls.enabled" an "enabled:" line indented below "  tls:" in that section.
bool yaml_sets(const std::string& yaml, const std::string& key) {
  std::vector<std::string> parts;
  for (std::size_t start = 0;;) {
    const std::size_t dot = key.find('.', start);
    parts.push_back(key.substr(start, dot - start));
    if (dot == std::string::npos) break;
    start = dot + 1;
  }
  std::istringstream lines(yaml);
  std::size_t open = 0;  // sections of `key` entered so far, each two spaces deeper
  for (std::string line; std::getline(lines, line);) {
    const std::size_t indent = line.find_first_not_of(' ');
    if (indent == std::string::npos || line[indent] == '#') continue;
    const std::size_t level = indent / 2;
    if (indent % 2 != 0 || level > open) continue;  // inside something else
    open = level;
    if (!line.compare(indent, parts[level].size() + 1, parts[level] + ":")) {
      if (level + 1 == parts.size()) return true;
      open = level + 1;
    }
  }
  return false;
}

// A YAML document that sets every option to a value other than its default.
const std::string kEveryOption = R"(listen: 0.0.0.0:7000
workers: 4
maxclients: 500
shutdown_grace: 30s
log_level: debug
client:
  idle_timeout: 5m
  output_buffer_limit: 64mb
  pubsub_output_buffer_limit: 8mb
  query_buffer_limit: 2mb
server:
  tcp_backlog: 1024
  max_pinned_connections: 10
tls:
  cert_file: /etc/respguard/tls/server.crt
  key_file: /etc/respguard/tls/server.key
  ca_file: /etc/respguard/tls/ca.crt
  client_certs: required
  min_version: "1.3"
  ciphers: "ECDHE+AESGCM"
admin:
  enabled: false
  listen: 0.0.0.0:9999
  metrics: false
  unready_when_breaker_open: true
upstream:
  address: "[::1]:7001"
  username: app
  password: s3cret
  connections_per_worker: 8
  connect_timeout: 250ms
  request_timeout: 2s
  blocking_timeout_margin: 500ms
  reconnect_backoff_min: 50ms
  reconnect_backoff_max: 1m
  databases: 4
  tls:
    enabled: true
    ca_file: /etc/respguard/tls/redis-ca.crt
    cert_file: /etc/respguard/tls/client.crt
    key_file: /etc/respguard/tls/client.key
    server_name: redis.internal
    verify: false
protocol:
  proto_max_bulk_len: 1gb
  max_multibulk_len: 4096
  max_inline_len: 4kb
  max_reply_depth: 16
auth:
  users:
    - name: app
      password_sha256: "BA7816BF8F01CFEA414140DE5DAE2223B00361A396177A9CB410FF61F20015AD"
      rules: "+@read +@write -@dangerous ~app:*"
    - name: admin
      password_sha256: e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855
  max_failures_per_second: 3
rules:
  - match: "user:*"
    db: 2
    jitter:
      percent: 0.25
      positive_only: true
      expire_commands: true
      default_ttl: 1h
    coalesce: true
    negative_cache:
      ttl: 3s
    lease:
      wait: 250ms
    bloom:
      source: set
      expected_keys: 5000
      false_positive_rate: 0.001
      set: "valid:user-ids"
      id: "user:{id}"
      absent_reply: "__absent__"
      rebuild_interval: 30m
  - match: "*"
    coalesce: true
policy_limits:
  negative_cache_max_entries: 5000
  lease_max_keys: 700
# enabled stays at its default, true: the bloom rule above needs it (false is tested apart).
coherence:
  enabled: true
  scan_count: 250
  warmup_keys_per_second: 0
rate_limit:
  identity: client_name
  rate: 500
  burst: 800
  write_rate: 50
  write_burst: 20
  max_delay: 25ms
  idle_expiry: 5m
  overrides:
    - identity: batch-job
      rate: 5000
      burst: 10000
    - identity: reports
      rate: 0
breaker:
  enabled: true
  failure_threshold: 0
  failure_ratio_percent: 40
  window: 30s
  min_requests: 50
  open_for: 2s
  probes: 1
guard:
  profile: production
  deny: [HGETALL, "client list", "CONFIG|GET"]
  allow: [flushdb]
  max_arguments: 1000
  max_request_bytes: 1mb
  max_value_bytes: 512kb
  big_value_bytes: 64kb
  big_collection_elements: 100000
  collection_probe_every: 4
hot_keys:
  enabled: false
  top_n: 20
  capacity: 4096
  sample_every: 8
  report_interval: 30s
  log_threshold_per_second: 500
health_check:
  enabled: false
  interval: 2s
  timeout: 250ms
  rise: 1
  fall: 5
)";

RateLimitOverride make_override(std::string identity, unsigned rate, unsigned burst = 0) {
  return RateLimitOverride{std::move(identity), RateLimitRule{rate, burst}};
}

// --- defaults ---------------------------------------------------------------------------

TEST(ConfigDefaults, MatchTheDocumentedValues) {
  const Config c;
  EXPECT_EQ(c.server.listen, (Endpoint{"127.0.0.1", 6380}));
  EXPECT_EQ(c.upstream.address, (Endpoint{"127.0.0.1", 6379}));
  EXPECT_EQ(c.server.workers, 0u);
  EXPECT_EQ(c.upstream.request_timeout, Millis(5000));
  EXPECT_EQ(c.log.level, "info");
  EXPECT_EQ(c.protocol.max_bulk_len, 512u * 1024 * 1024);
  EXPECT_EQ(c.rate_limit.identity, "source_ip");
  EXPECT_EQ(c.rate_limit.limit, (RateLimitRule{0, 0}));
  EXPECT_TRUE(c.rate_limit.overrides.empty());
  EXPECT_FALSE(c.breaker.enabled);
  EXPECT_TRUE(c.health_check.enabled);
  EXPECT_TRUE(c.coherence.enabled);
  EXPECT_EQ(c.coherence.scan_count, 1000u);
  EXPECT_EQ(c.coherence.warmup_keys_per_second, 200000u);
  EXPECT_NO_THROW(validate(c));
}

TEST(ConfigDefaults, EmptyFileYieldsDefaults) {
  EXPECT_TRUE(load_string("") == Config{});
  EXPECT_TRUE(load_string("\n   \n") == Config{});
}

TEST(ConfigDefaults, CommentsOnlyYieldDefaults) {
  EXPECT_TRUE(load_string("# respguard\n# workers: 4\n") == Config{});
  EXPECT_TRUE(load_string("---\n# nothing\n") == Config{});
}

TEST(ConfigDefaults, SectionWithEveryOptionCommentedOutYieldsDefaults) {
  EXPECT_TRUE(load_string("upstream:\n  # address: redis:6379\nclient:\n") == Config{});
}

TEST(ConfigDefaults, UnsetOptionsKeepTheirDefaults) {
  Config c = load_string("upstream:\n  request_timeout: 2s\n");
  EXPECT_EQ(c.upstream.request_timeout, Millis(2000));
  Config expected;
  expected.upstream.request_timeout = Millis(2000);
  EXPECT_TRUE(c == expected);
}

// --- every option -----------------------------------------------------------------------

TEST(ConfigLoad, EveryOptionIsRead) {
  const Config c = load_string(kEveryOption);
  EXPECT_EQ(c.server.listen, (Endpoint{"0.0.0.0", 7000}));
  EXPECT_EQ(c.server.workers, 4u);
  EXPECT_EQ(c.server.maxclients, 500u);
  EXPECT_EQ(c.server.shutdown_grace, Millis(30'000));
  EXPECT_EQ(c.log.level, "debug");
  // Hashes are stored in lower case; a user without rules may run nothing.
  EXPECT_EQ(c.auth.users,
            (std::vector<AuthUser>{
                {"app", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
                 "+@read +@write -@dangerous ~app:*"},
                {"admin", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
                 ""}}));
  EXPECT_EQ(c.auth.max_failures_per_second, 3u);
  EXPECT_EQ(c.server.idle_timeout, Millis(300'000));
  EXPECT_EQ(c.server.output_buffer_limit, 64u * 1024 * 1024);
  EXPECT_EQ(c.server.pubsub_output_buffer_limit, 8u * 1024 * 1024);
  EXPECT_EQ(c.server.query_buffer_limit, 2u * 1024 * 1024);
  EXPECT_EQ(c.server.tcp_backlog, 1024);
  EXPECT_EQ(c.server.max_pinned_connections, 10u);
  EXPECT_EQ(c.upstream.address, (Endpoint{"::1", 7001}));
  EXPECT_EQ(c.upstream.username, "app");
  EXPECT_EQ(c.upstream.password, "s3cret");
  EXPECT_EQ(c.upstream.connections_per_worker, 8u);
  EXPECT_EQ(c.upstream.connect_timeout, Millis(250));
  EXPECT_EQ(c.upstream.request_timeout, Millis(2000));
  EXPECT_EQ(c.upstream.blocking_timeout_margin, Millis(500));
  EXPECT_EQ(c.upstream.reconnect_backoff_min, Millis(50));
  EXPECT_EQ(c.upstream.reconnect_backoff_max, Millis(60'000));
  EXPECT_EQ(c.upstream.databases, 4u);
  EXPECT_EQ(c.tls.cert_file, "/etc/respguard/tls/server.crt");
  EXPECT_EQ(c.tls.key_file, "/etc/respguard/tls/server.key");
  EXPECT_EQ(c.tls.ca_file, "/etc/respguard/tls/ca.crt");
  EXPECT_EQ(c.tls.client_certs, "required");
  EXPECT_EQ(c.tls.min_version, "1.3");
  EXPECT_EQ(c.tls.ciphers, "ECDHE+AESGCM");
  EXPECT_TRUE(c.upstream.tls.enabled);
  EXPECT_EQ(c.upstream.tls.ca_file, "/etc/respguard/tls/redis-ca.crt");
  EXPECT_EQ(c.upstream.tls.cert_file, "/etc/respguard/tls/client.crt");
  EXPECT_EQ(c.upstream.tls.key_file, "/etc/respguard/tls/client.key");
  EXPECT_EQ(c.upstream.tls.server_name, "redis.internal");
  EXPECT_FALSE(c.upstream.tls.verify);
  EXPECT_EQ(c.protocol.max_bulk_len, 1024u * 1024 * 1024);
  EXPECT_EQ(c.protocol.max_multibulk_len, 4096u);
  EXPECT_EQ(c.protocol.max_inline_len, 4096u);
  EXPECT_EQ(c.protocol.max_reply_depth, 16u);
  EXPECT_FALSE(c.admin.enabled);
  EXPECT_EQ(c.admin.listen, (Endpoint{"0.0.0.0", 9999}));
  EXPECT_FALSE(c.admin.metrics);
  EXPECT_TRUE(c.admin.unready_when_breaker_open);
  EXPECT_EQ(c.policy_limits.negative_cache_max_entries, 5000u);
  EXPECT_EQ(c.policy_limits.lease_max_keys, 700u);
  ASSERT_EQ(c.rules.size(), 2u);
  const RuleConfig& r = c.rules[0];
  EXPECT_EQ(r.match, "user:*");
  EXPECT_EQ(r.db, 2);
  ASSERT_TRUE(r.jitter.has_value());
  EXPECT_EQ(r.jitter->percent, 0.25);
  EXPECT_TRUE(r.jitter->positive_only);
  EXPECT_TRUE(r.jitter->expire_commands);
  EXPECT_EQ(r.jitter->default_ttl, Millis(3'600'000));
  EXPECT_TRUE(r.coalesce);
  EXPECT_EQ(r.negative_cache, NegativeCacheConfig{Millis(3000)});
  EXPECT_EQ(r.lease, LeaseConfig{Millis(250)});
  ASSERT_TRUE(r.bloom.has_value());
  EXPECT_EQ(r.bloom->source, BloomConfig::Source::Set);
  EXPECT_EQ(r.bloom->expected_keys, 5000u);
  EXPECT_EQ(r.bloom->false_positive_rate, 0.001);
  EXPECT_EQ(r.bloom->set, "valid:user-ids");
  EXPECT_EQ(r.bloom->id, "user:{id}");
  EXPECT_EQ(r.bloom->absent_reply, "__absent__");
  EXPECT_EQ(r.bloom->rebuild_interval, Millis(1'800'000));
  EXPECT_EQ(c.rules[1].match, "*");
  EXPECT_EQ(c.rules[1].db, std::nullopt);
  EXPECT_TRUE(c.rules[1].coalesce);
  EXPECT_FALSE(c.rules[1].jitter || c.rules[1].negative_cache || c.rules[1].lease ||
               c.rules[1].bloom);
  EXPECT_TRUE(c.coherence.enabled);
  EXPECT_EQ(c.coherence.scan_count, 250u);
  EXPECT_EQ(c.coherence.warmup_keys_per_second, 0u);
  EXPECT_EQ(c.rate_limit.identity, "client_name");
  EXPECT_EQ(c.rate_limit.limit, (RateLimitRule{500, 800}));
  EXPECT_EQ(c.rate_limit.write_limit, (RateLimitRule{50, 20}));
  EXPECT_EQ(c.rate_limit.max_delay, Millis(25));
  EXPECT_EQ(c.rate_limit.idle_expiry, Millis(300'000));
  EXPECT_EQ(c.rate_limit.overrides,
            (std::vector{make_override("batch-job", 5000, 10000), make_override("reports", 0)}));
  EXPECT_TRUE(c.breaker.enabled);
  EXPECT_EQ(c.breaker.failure_threshold, 0u);
  EXPECT_EQ(c.breaker.failure_ratio_percent, 40u);
  EXPECT_EQ(c.breaker.window, Millis(30'000));
  EXPECT_EQ(c.breaker.min_requests, 50u);
  EXPECT_EQ(c.breaker.open_for, Millis(2000));
  EXPECT_EQ(c.breaker.probes, 1u);
  EXPECT_FALSE(c.health_check.enabled);
  EXPECT_EQ(c.health_check.interval, Millis(2000));
  EXPECT_EQ(c.health_check.timeout, Millis(250));
  EXPECT_EQ(c.health_check.rise, 1u);
  EXPECT_EQ(c.health_check.fall, 5u);
  EXPECT_EQ(c.guard.profile, "production");
  EXPECT_EQ(c.guard.deny, (std::vector<std::string>{"hgetall", "client|list", "config|get"}));
  EXPECT_EQ(c.guard.allow, (std::vector<std::string>{"flushdb"}));
  EXPECT_EQ(c.guard.max_arguments, 1000u);
  EXPECT_EQ(c.guard.max_request_bytes, 1024u * 1024);
  EXPECT_EQ(c.guard.max_value_bytes, 512u * 1024);
  EXPECT_EQ(c.guard.big_value_bytes, 64u * 1024);
  EXPECT_EQ(c.guard.big_collection_elements, 100'000u);
  EXPECT_EQ(c.guard.collection_probe_every, 4u);
  EXPECT_FALSE(c.hot_keys.enabled);
  EXPECT_EQ(c.hot_keys.top_n, 20u);
  EXPECT_EQ(c.hot_keys.capacity, 4096u);
  EXPECT_EQ(c.hot_keys.sample_every, 8u);
  EXPECT_EQ(c.hot_keys.report_interval, Millis(30'000));
  EXPECT_EQ(c.hot_keys.log_threshold_per_second, 500u);
}

TEST(ConfigLoad, GuardListsNameRealCommands) {
  EXPECT_EQ(load_error("guard:\n  deny: [KEYS, KEYZ]\n"),
            "respguard.yaml:2: guard.deny[1]: not a Redis command: 'KEYZ'");
  EXPECT_EQ(load_error("guard:\n  allow:\n    - config set maxmemory\n"),
            "respguard.yaml:3: guard.allow[0]: not a Redis command: 'config set maxmemory'");
  EXPECT_EQ(load_error("guard:\n  deny: KEYS\n"),
            "respguard.yaml:2: guard.deny: expected a list of commands like [KEYS, CONFIG SET], "
            "got 'KEYS'");
  EXPECT_EQ(load_error("guard:\n  profile: strict\n").substr(0, 40),
            "respguard.yaml:2: guard.profile: expecte");
  Config c;
  c.guard.deny = {"KEYS"};  // not normalized: built in code, validate() says so
  EXPECT_THROW(validate(c), ConfigError);
  c.guard.deny = {"keys"};
  EXPECT_NO_THROW(validate(c));
}

// Adding an option to the schema fails here until kEveryOption (and the checks above) cover it.
TEST(ConfigLoad, EveryOptionTestCoversEverySchemaKey) {
  const std::vector<std::string> keys = reference_keys();
  ASSERT_GE(keys.size(), 25u);
  for (const std::string& key : keys) EXPECT_TRUE(yaml_sets(kEveryOption, key)) << key;
}

TEST(ConfigLoad, ConfigEqualityComparesEveryOption) {
  const Config base;
  Config other;
  other.protocol.max_reply_depth = 7;
  EXPECT_FALSE(base == other);
  other = base;
  other.upstream.address.port = 1;
  EXPECT_FALSE(base == other);
  other = base;
  other.upstream.password = "x";
  EXPECT_FALSE(base == other);
  other = base;
  other.policy_limits.lease_max_keys = 1;
  EXPECT_FALSE(base == other);
  other = base;
  other.rules.push_back(make_rule("*"));
  EXPECT_FALSE(base == other);
  Config same_rules = other;
  EXPECT_TRUE(same_rules == other);
  same_rules.rules[0].jitter = JitterConfig{};
  EXPECT_FALSE(same_rules == other);
  same_rules = other;
  same_rules.rules[0].bloom = BloomConfig{};
  EXPECT_FALSE(same_rules == other);
  Config same_bloom = same_rules;
  EXPECT_TRUE(same_bloom == same_rules);
  same_bloom.rules[0].bloom->absent_reply = "";
  EXPECT_FALSE(same_bloom == same_rules);
  other = base;
  other.auth.users.push_back({"app", std::string(64, 'a'), ""});
  EXPECT_FALSE(base == other);
  other = base;
  other.coherence.warmup_keys_per_second = 1;
  EXPECT_FALSE(base == other);
  other = base;
  other.breaker.probes = 9;
  EXPECT_FALSE(base == other);
  other = base;
  other.rate_limit.write_limit.burst = 9;
  EXPECT_FALSE(base == other);
  other = base;
  other.rate_limit.overrides.push_back(make_override("10.0.0.7", 5));
  EXPECT_FALSE(base == other);
  Config same_overrides = other;
  EXPECT_TRUE(same_overrides == other);
  same_overrides.rate_limit.overrides[0].limit.burst = 1;
  EXPECT_FALSE(same_overrides == other);
  EXPECT_TRUE(load_string(kEveryOption) == load_string(kEveryOption));
}

TEST(ConfigLoad, StringsTakeTheTextAsWritten) {
  Config c = load_string("upstream:\n  password: 12345\n  username: \"null\"\n");
  EXPECT_EQ(c.upstream.password, "12345");
  EXPECT_EQ(c.upstream.username, "null");
  c = load_string("upstream:\n  password: \"\"\n");
  EXPECT_EQ(c.upstream.password, "");
}

TEST(ConfigLoad, PasswordWithoutUsernameIsFine) {
  EXPECT_EQ(load_string("upstream:\n  password: s3cret\n").upstream.password, "s3cret");
}

TEST(ConfigLoad, LogLevelIsCaseInsensitiveAndStoredLowercase) {
  EXPECT_EQ(load_string("log_level: WARN\n").log.level, "warn");
  EXPECT_EQ(load_string("log_level: off\n").log.level, "off");
}

TEST(ConfigLoad, QuotedNumbersAreAccepted) {
  EXPECT_EQ(load_string("workers: \"8\"\n").server.workers, 8u);
}

TEST(ConfigLoad, RangeBoundsAreInclusive) {
  EXPECT_EQ(load_string("workers: 256\n").server.workers, 256u);
  EXPECT_EQ(
      load_string("upstream:\n  connections_per_worker: 64\n").upstream.connections_per_worker,
      64u);
  EXPECT_EQ(load_string("upstream:\n  connections_per_worker: 1\n").upstream.connections_per_worker,
            1u);
  EXPECT_EQ(load_string("listen: 127.0.0.1:65535\n").server.listen.port, 65535);
  EXPECT_EQ(load_string("listen: 127.0.0.1:1\n").server.listen.port, 1);
  // Equal backoffs are allowed: a constant reconnect delay.
  Config c = load_string("upstream:\n  reconnect_backoff_min: 1s\n  reconnect_backoff_max: 1s\n");
  EXPECT_EQ(c.upstream.reconnect_backoff_min, c.upstream.reconnect_backoff_max);
}

TEST(ConfigLoad, ZeroMeansOffWhereDocumented) {
  Config c = load_string(
      "shutdown_grace: 0\nclient:\n  idle_timeout: 0s\n  output_buffer_limit: 0\n"
      "upstream:\n  blocking_timeout_margin: 0ms\n");
  EXPECT_EQ(c.server.shutdown_grace, Millis(0));
  EXPECT_EQ(c.server.idle_timeout, Millis(0));
  EXPECT_EQ(c.server.output_buffer_limit, 0u);
  EXPECT_EQ(c.upstream.blocking_timeout_margin, Millis(0));
}

// --- errors: file, line, key, reason ----------------------------------------------------

TEST(ConfigErrors, WrongDurationNamesFileLineAndKey) {
  // The example of the header comment: line 12.
  const std::string yaml =
      "# respguard\n"
      "listen: 127.0.0.1:6380\n"
      "workers: 2\n"
      "\n"
      "client:\n"
      "  idle_timeout: 0\n"
      "\n"
      "upstream:\n"
      "  address: 127.0.0.1:6379\n"
      "  connections_per_worker: 2\n"
      "  connect_timeout: 1s\n"
      "  request_timeout: soon\n";
  EXPECT_EQ(load_error(yaml),
            "respguard.yaml:12: upstream.request_timeout: expected a duration such as 500ms, 5s "
            "or 1m, got 'soon'");
}

TEST(ConfigErrors, PlainNumberDurationIsAmbiguous) {
  EXPECT_EQ(load_error("upstream:\n  request_timeout: 5000\n"),
            "respguard.yaml:2: upstream.request_timeout: expected a duration with a unit such as "
            "5000ms or 5000s (a plain number is ambiguous), got '5000'");
}

TEST(ConfigErrors, UnknownTopLevelKeySuggestsTheNearestKey) {
  EXPECT_EQ(load_error("workres: 4\n"),
            "respguard.yaml:1: workres: unknown key (did you mean 'workers'?)");
}

TEST(ConfigErrors, UnknownNestedKeyNamesTheFullPath) {
  EXPECT_EQ(load_error("workers: 1\nupstream:\n  adress: redis:6379\n"),
            "respguard.yaml:3: upstream.adress: unknown key (did you mean 'upstream.address'?)");
}

TEST(ConfigErrors, UnknownSectionSuggestsTheSection) {
  EXPECT_EQ(load_error("upstrem:\n  address: redis:6379\n"),
            "respguard.yaml:1: upstrem: unknown key (did you mean 'upstream'?)");
}

TEST(ConfigErrors, OptionInTheWrongSectionSuggestsItsSection) {
  EXPECT_EQ(load_error("server:\n  idle_timeout: 5s\n"),
            "respguard.yaml:2: server.idle_timeout: unknown key (did you mean "
            "'client.idle_timeout'?)");
}

TEST(ConfigErrors, UnknownKeyFarFromAnyKnownKeyHasNoSuggestion) {
  EXPECT_EQ(load_error("frobnicate: 1\n"), "respguard.yaml:1: frobnicate: unknown key");
  EXPECT_EQ(load_error("upstream:\n  cluster_mode: true\n"),
            "respguard.yaml:2: upstream.cluster_mode: unknown key");
}

TEST(ConfigErrors, UnknownKeyIsReportedEvenAfterValidOnes) {
  EXPECT_EQ(load_error("workers: 2\nlisten: 127.0.0.1:1\nprotocol:\n  max_depth: 3\n"),
            "respguard.yaml:4: protocol.max_depth: unknown key");
}

TEST(ConfigErrors, DottedKeysAreRejected) {
  EXPECT_EQ(load_error("upstream.address: redis:6379\n"),
            "respguard.yaml:1: upstream.address: keys are nested, not dotted: write the section "
            "and indent the key below it");
}

TEST(ConfigErrors, DuplicateKeyNamesBothLines) {
  EXPECT_EQ(load_error("workers: 1\nmaxclients: 5\nworkers: 2\n"),
            "respguard.yaml:3: workers: duplicate key (first set on line 1)");
}

TEST(ConfigErrors, WrongIntegerText) {
  EXPECT_EQ(load_error("workers: many\n"),
            "respguard.yaml:1: workers: expected a non-negative integer, got 'many'");
  EXPECT_EQ(load_error("workers: -1\n"),
            "respguard.yaml:1: workers: expected a non-negative integer, got '-1'");
  EXPECT_EQ(load_error("workers: 1.5\n"),
            "respguard.yaml:1: workers: expected a non-negative integer, got '1.5'");
  EXPECT_EQ(load_error("upstream:\n  databases: 99999999999999999999999\n"),
            "respguard.yaml:2: upstream.databases: number is too large, got "
            "'99999999999999999999999'");
}

TEST(ConfigErrors, IntegerOutOfRange) {
  EXPECT_EQ(load_error("upstream:\n  connections_per_worker: 100\n"),
            "respguard.yaml:2: upstream.connections_per_worker: must be between 1 and 64, got "
            "'100'");
  EXPECT_EQ(load_error("upstream:\n  connections_per_worker: 0\n"),
            "respguard.yaml:2: upstream.connections_per_worker: must be between 1 and 64, got '0'");
  EXPECT_EQ(load_error("workers: 257\n"),
            "respguard.yaml:1: workers: must be at most 256, got '257'");
  EXPECT_EQ(load_error("maxclients: 0\n"),
            "respguard.yaml:1: maxclients: must be greater than 0, got '0'");
  // No maximum of its own: the field's type sets it.
  EXPECT_EQ(load_error("upstream:\n  databases: 5000000000\n"),
            "respguard.yaml:2: upstream.databases: must be at most 4294967295, got '5000000000'");
  EXPECT_EQ(load_error("server:\n  tcp_backlog: 2147483648\n"),
            "respguard.yaml:2: server.tcp_backlog: must be at most 2147483647, got '2147483648'");
}

TEST(ConfigErrors, TimeoutsMustBePositive) {
  EXPECT_EQ(load_error("upstream:\n  request_timeout: 0\n"),
            "respguard.yaml:2: upstream.request_timeout: must be greater than 0, got '0'");
  EXPECT_EQ(load_error("upstream:\n  connect_timeout: 0ms\n"),
            "respguard.yaml:2: upstream.connect_timeout: must be greater than 0, got '0ms'");
}

TEST(ConfigErrors, ProtocolLimitsMustBePositive) {
  EXPECT_EQ(load_error("protocol:\n  proto_max_bulk_len: 0\n"),
            "respguard.yaml:2: protocol.proto_max_bulk_len: must be greater than 0, got '0'");
  EXPECT_EQ(load_error("protocol:\n  max_multibulk_len: 0\n"),
            "respguard.yaml:2: protocol.max_multibulk_len: must be greater than 0, got '0'");
  EXPECT_EQ(load_error("protocol:\n  max_inline_len: 0kb\n"),
            "respguard.yaml:2: protocol.max_inline_len: must be greater than 0, got '0kb'");
  EXPECT_EQ(load_error("protocol:\n  max_reply_depth: 0\n"),
            "respguard.yaml:2: protocol.max_reply_depth: must be greater than 0, got '0'");
}

TEST(ConfigErrors, WrongSize) {
  EXPECT_EQ(load_error("client:\n  output_buffer_limit: huge\n"),
            "respguard.yaml:2: client.output_buffer_limit: expected a size such as 1024, 64kb, "
            "512mb or 1gb, got 'huge'");
}

TEST(ConfigErrors, BadEndpoint) {
  EXPECT_EQ(load_error("listen: 127.0.0.1:0\n"),
            "respguard.yaml:1: listen: port must be between 1 and 65535, got '127.0.0.1:0'");
  EXPECT_EQ(load_error("upstream:\n  address: redis\n"),
            "respguard.yaml:2: upstream.address: expected HOST:PORT such as 127.0.0.1:6379 or "
            "[::1]:6379, got 'redis'");
}

TEST(ConfigErrors, UnquotedIpv6IsAYamlSyntaxError) {
  // "[" starts a YAML list; the reference tells users to quote IPv6 endpoints.
  EXPECT_EQ(load_error("listen: [::1]:6380\n"),
            "respguard.yaml:1: invalid YAML (column 14): end of map not found");
}

TEST(ConfigErrors, ListWhereAnEndpointBelongsHintsAtQuoting) {
  EXPECT_EQ(load_error("listen: [a, b]\n"),
            "respguard.yaml:1: listen: expected HOST:PORT such as 127.0.0.1:6379 or [::1]:6379, "
            "got a list (quote IPv6 addresses: \"[::1]:6379\")");
}

TEST(ConfigErrors, WrongEnum) {
  EXPECT_EQ(load_error("log_level: verbose\n"),
            "respguard.yaml:1: log_level: expected one of trace, debug, info, warn, error, "
            "critical, off, got 'verbose'");
}

TEST(ConfigErrors, MappingWhereAValueBelongs) {
  EXPECT_EQ(load_error("workers:\n  count: 4\n"),
            "respguard.yaml:1: workers: expected a non-negative integer, got a mapping");
}

TEST(ConfigErrors, ValueWhereASectionBelongs) {
  EXPECT_EQ(load_error("upstream: redis:6379\n"),
            "respguard.yaml:1: upstream: expected a section of indented key: value lines, got "
            "'redis:6379'");
}

TEST(ConfigErrors, MissingValue) {
  EXPECT_EQ(load_error("workers: 2\nlisten:\n"),
            "respguard.yaml:2: listen: no value; expected HOST:PORT such as 127.0.0.1:6379 or "
            "[::1]:6379 (or remove the line to use the default)");
}

TEST(ConfigErrors, TopLevelMustBeAMapping) {
  EXPECT_EQ(load_error("- workers\n"),
            "respguard.yaml:1: expected options (key: value lines) at the top level, got a list");
  EXPECT_EQ(load_error("workers\n"),
            "respguard.yaml:1: expected options (key: value lines) at the top level, got "
            "'workers'");
}

TEST(ConfigErrors, YamlSyntaxErrorNamesTheLine) {
  EXPECT_EQ(load_error("workers: 2\nupstream:\n  address: 127.0.0.1:6379\n password: x\n"),
            "respguard.yaml:4: invalid YAML (column 2): end of map not found");
  EXPECT_EQ(load_error("workers: 2\n\tmaxclients: 3\n"),
            "respguard.yaml:2: invalid YAML (column 1): illegal tab when looking for indentation");
}

TEST(ConfigErrors, SecondDocumentIsRejected) {
  EXPECT_EQ(load_error("workers: 2\n---\nworkers: 3\n"),
            "respguard.yaml:2: expected one YAML document, found a second one");
}

// yaml-cpp 0.7's LoadAll loops forever (allocating) on a stray ',' outside a flow collection;
// found by the config fuzz target (tests/fuzz/corpus/config/crash-stray-comma-endless-loop). The
// loader must refuse these files, not hang: a reload of one would stop the main thread.
TEST(ConfigErrors, StrayCommaIsRefusedNotAnEndlessLoop) {
  EXPECT_EQ(
      load_error("- a-\n, j\n"),
      "respguard.yaml:2: expected one YAML document, found an empty second one (a '---', or a "
      "',' outside [ ] or { }?)");
  for (const std::string yaml : {",\n", "workers: 2\n,\n", "workers: 2\n---\n,\n"}) {
    EXPECT_TRUE(load_error(yaml).starts_with("respguard.yaml:")) << yaml;
  }
}

TEST(ConfigErrors, BackoffMinAboveMaxNamesTheKeyInTheFile) {
  EXPECT_EQ(load_error("upstream:\n  reconnect_backoff_min: 10s\n"),
            "respguard.yaml:2: upstream.reconnect_backoff_min: upstream.reconnect_backoff_min "
            "(10s) must not be greater than upstream.reconnect_backoff_max (5s)");
  // Only the maximum is written: the line points at it.
  EXPECT_EQ(load_error("upstream:\n  connect_timeout: 1s\n  reconnect_backoff_max: 50ms\n"),
            "respguard.yaml:3: upstream.reconnect_backoff_max: upstream.reconnect_backoff_min "
            "(100ms) must not be greater than upstream.reconnect_backoff_max (50ms)");
}

TEST(ConfigErrors, UsernameWithoutPassword) {
  EXPECT_EQ(load_error("upstream:\n  username: app\n"),
            "respguard.yaml:2: upstream.username: set but upstream.password is empty; AUTH with a "
            "username needs that user's password");
}

TEST(ConfigErrors, TlsCertificateNeedsItsKey) {
  EXPECT_EQ(load_error("tls:\n  cert_file: server.crt\n"),
            "respguard.yaml:2: tls.cert_file: set but tls.key_file is empty; the certificate "
            "needs its key");
  EXPECT_EQ(load_error("tls:\n  key_file: server.key\n"),
            "respguard.yaml:2: tls.key_file: set but tls.cert_file is empty; a key needs its "
            "certificate");
  EXPECT_EQ(load_error("upstream:\n  tls:\n    enabled: true\n    cert_file: c.crt\n"),
            "respguard.yaml:4: upstream.tls.cert_file: set but upstream.tls.key_file is empty; "
            "the certificate needs its key");
}

TEST(ConfigErrors, TlsClientCertificatesNeedACa) {
  EXPECT_EQ(load_error("tls:\n  cert_file: s.crt\n  key_file: s.key\n  client_certs: required\n"),
            "respguard.yaml:4: tls.client_certs: 'required' needs tls.ca_file, the CA that signs "
            "client certificates");
  EXPECT_EQ(load_error("tls:\n  ca_file: ca.crt\n"),
            "respguard.yaml:2: tls.ca_file: set but tls.cert_file is empty: the listener does not "
            "use TLS");
  EXPECT_EQ(load_error("tls:\n  min_version: \"1.1\"\n"),
            "respguard.yaml:2: tls.min_version: expected one of 1.2, 1.3, got '1.1'");
}

TEST(ConfigErrors, UpstreamTlsSettingsNeedEnabled) {
  EXPECT_EQ(load_error("upstream:\n  tls:\n    ca_file: ca.crt\n"),
            "respguard.yaml:3: upstream.tls.ca_file: set but upstream.tls.enabled is false: the "
            "upstream is reached without TLS (set enabled: true)");
  Config c;
  c.upstream.tls.enabled = true;
  c.upstream.tls.ca_file = "ca.crt";
  EXPECT_EQ(validate_error(c), "(no error)");
}

TEST(ConfigErrors, SourceNameDefaultsToString) {
  try {
    load_string("workers: x\n");
    FAIL() << "no error";
  } catch (const ConfigError& e) {
    EXPECT_STREQ(e.what(), "<string>:1: workers: expected a non-negative integer, got 'x'");
  }
}

// --- files --------------------------------------------------------------------------------

// A file in the temp directory, removed at the end of the test. The name is unique per process,
// test and file, so parallel runs (ctest -j, two build trees) do not collide.
class TempFile {
 public:
  explicit TempFile(const std::string& text) {
    static int counter = 0;
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    path_ = std::filesystem::temp_directory_path() /
            ("respguard-config-test-" + std::string(info->test_suite_name()) + "." + info->name() +
             "-" + std::to_string(::getpid()) + "-" + std::to_string(++counter) + ".yaml");
    std::ofstream(path_) << text;
  }
  ~TempFile() { std::filesystem::remove(path_); }
  std::string path() const { return path_.string(); }

 private:
  std::filesystem::path path_;
};

TEST(ConfigFile, LoadsAFile) {
  TempFile file("workers: 3\n");
  EXPECT_EQ(load_file(file.path()).server.workers, 3u);
}

TEST(ConfigFile, ErrorsNameThePath) {
  TempFile file("workers: 3\nupstream:\n  request_timeout: soon\n");
  try {
    load_file(file.path());
    FAIL() << "no error";
  } catch (const ConfigError& e) {
    EXPECT_EQ(std::string(e.what()),
              file.path() +
                  ":3: upstream.request_timeout: expected a duration such as 500ms, 5s or 1m, got "
                  "'soon'");
  }
}

TEST(ConfigFile, MissingFile) {
  try {
    load_file("/nonexistent/respguard.yaml");
    FAIL() << "no error";
  } catch (const ConfigError& e) {
    EXPECT_STREQ(e.what(), "/nonexistent/respguard.yaml: cannot open: No such file or directory");
  }
}

TEST(ConfigFile, DirectoryIsNotAFile) {
  const std::string dir = std::filesystem::temp_directory_path().string();
  try {
    load_file(dir);
    FAIL() << "no error";
  } catch (const ConfigError& e) {
    EXPECT_EQ(std::string(e.what()), dir + ": cannot read: is a directory");
  }
}

// The shipped config/respguard.yaml states every default: loading it changes nothing, and it
// lists every option (so it stays a complete, commented reference).
TEST(ConfigFile, DefaultConfigFileEqualsTheDefaults) {
  const std::filesystem::path path = kRepoRoot / "config/respguard.yaml";
  ASSERT_TRUE(std::filesystem::exists(path)) << path;
  EXPECT_TRUE(load_file(path.string()) == Config{})
      << path << " must state exactly the defaults (see the table in docs/configuration.md)";
  const std::string text = read_text(path);
  EXPECT_NE(text.find("listen: 127.0.0.1:6380"), std::string::npos);
  EXPECT_NE(text.find("address: 127.0.0.1:6379"), std::string::npos);
  for (const std::string& key : reference_keys()) {
    EXPECT_TRUE(yaml_sets(text, key)) << "config/respguard.yaml does not set " << key;
  }
  // No rules by default, but a commented example of every rule key.
  for (const char* line : {"# rules:",
                           "#   - match:",
                           "#     db:",
                           "#       percent:",
                           "#       positive_only:",
                           "#       expire_commands:",
                           "#       default_ttl:",
                           "#     coalesce:",
                           "#     negative_cache:",
                           "#       ttl:",
                           "#     lease:",
                           "#       wait:",
                           "#     bloom:",
                           "#       source:",
                           "#       expected_keys:",
                           "#       false_positive_rate:",
                           "#       set:",
                           "#       id:",
                           "#       absent_reply:",
                           "#       rebuild_interval:"}) {
    EXPECT_NE(text.find(line), std::string::npos) << line;
  }
  // No rate limit overrides either, but a commented example.
  EXPECT_NE(text.find("  overrides: []\n"), std::string::npos);
  for (const char* line : {"#   - identity:", "#     rate:", "#     burst:"}) {
    EXPECT_NE(text.find(line), std::string::npos) << line;
  }
  // No users (client authentication as Redis's, with the upstream password), but an example.
  EXPECT_NE(text.find("  users: []\n"), std::string::npos);
  for (const char* line : {"#   - name:", "#     password_sha256:", "#     rules:"}) {
    EXPECT_NE(text.find(line), std::string::npos) << line;
  }
}

TEST(ConfigLoad, AuthUsersAreChecked) {
  const std::string hash(64, 'a');
  EXPECT_EQ(load_error("auth:\n  users:\n    - name: app\n      password_sha256: abc\n"),
            "respguard.yaml:4: auth.users[0].password_sha256: expected the password's SHA-256 as "
            "64 hex digits (respguard --hash-password prints it), got 'abc'");
  EXPECT_EQ(load_error("auth:\n  users:\n    - name: app\n"),
            "respguard.yaml:3: auth.users[0]: missing password_sha256: the SHA-256 of the user's "
            "password, as 64 hex digits (respguard --hash-password prints it)");
  EXPECT_EQ(load_error("auth:\n  users:\n    - name: a\n      password_sha256: " + hash +
                       "\n    - name: a\n      password_sha256: " + hash + "\n"),
            "respguard.yaml:5: auth.users[1].name: duplicate user 'a', already in auth.users[0]");
  EXPECT_EQ(load_error("auth:\n  users:\n    - name: a\n      pasword_sha256: x\n"),
            "respguard.yaml:4: auth.users[0].pasword_sha256: unknown key (did you mean "
            "'auth.users[0].password_sha256'?)");
  EXPECT_EQ(load_error("auth:\n  users:\n    - name: a b\n      password_sha256: " + hash + "\n"),
            "respguard.yaml:3: auth.users[0].name: Redis allows no spaces in user names, got 'a b'");
  EXPECT_EQ(load_error("auth:\n  users: app\n"),
            "respguard.yaml:2: auth.users: expected a list of users, each starting with \"- name: "
            "...\", got 'app'");
  // Users built in code get the same checks.
  Config c;
  c.auth.users.push_back({"app", "xyz", ""});
  EXPECT_THROW(validate(c), ConfigError);
  c.auth.users[0].password_sha256 = hash;
  EXPECT_NO_THROW(validate(c));
}

TEST(ConfigFile, AllPoliciesExampleTurnsOnEveryPolicyForEveryKey) {
  const std::filesystem::path path = kRepoRoot / "config/examples/all-policies.yaml";
  const Config c = load_file(path.string());
  ASSERT_EQ(c.rules.size(), 1u);
  const RuleConfig& r = c.rules[0];
  EXPECT_EQ(r.match, "*");
  EXPECT_EQ(r.db, std::nullopt);
  ASSERT_TRUE(r.jitter.has_value());
  EXPECT_EQ(r.jitter->percent, 0.1);
  EXPECT_FALSE(r.jitter->positive_only);
  EXPECT_FALSE(r.jitter->expire_commands);
  EXPECT_EQ(r.jitter->default_ttl, std::nullopt);
  EXPECT_TRUE(r.coalesce);
  EXPECT_EQ(r.negative_cache, NegativeCacheConfig{Millis(5000)});
  EXPECT_EQ(r.lease, LeaseConfig{Millis(1000)});
  // Everything else is the default.
  Config expected;
  expected.rules = c.rules;
  EXPECT_TRUE(c == expected);
}

// One "*" rule with a keyspace filter and a negative cache, the channel on; nothing else changed.
TEST(ConfigFile, BloomExampleFiltersEveryKey) {
  const std::filesystem::path path = kRepoRoot / "config/examples/bloom.yaml";
  const Config c = load_file(path.string());
  ASSERT_EQ(c.rules.size(), 1u);
  const RuleConfig& r = c.rules[0];
  EXPECT_EQ(r.match, "*");
  EXPECT_EQ(r.db, std::nullopt);
  EXPECT_EQ(r.bloom, BloomConfig{});
  EXPECT_EQ(r.negative_cache, NegativeCacheConfig{Millis(5000)});
  EXPECT_FALSE(r.jitter || r.coalesce || r.lease);
  EXPECT_TRUE(c.coherence.enabled);
  const std::string text = read_text(path);
  EXPECT_TRUE(yaml_sets(text, "coherence.enabled")) << "coherence is on explicitly";
  for (const char* line : {"#   - match: \"product:*\"", "#       source: set",
                           "#       set:", "#       id:", "#       absent_reply:"}) {
    EXPECT_NE(text.find(line), std::string::npos) << line;
  }
  Config expected;
  expected.rules = c.rules;
  EXPECT_TRUE(c == expected);
}

// The file users copy to turn the protection on: the limits, breaker and health checks the
// docs describe, and nothing else changed.
TEST(ConfigFile, ProtectionExampleSetsProductionStartingValues) {
  const std::filesystem::path path = kRepoRoot / "config/examples/protection.yaml";
  const Config c = load_file(path.string());
  EXPECT_EQ(c.rate_limit.identity, "source_ip");
  EXPECT_EQ(c.rate_limit.limit, (RateLimitRule{1000, 1000}));
  EXPECT_EQ(c.rate_limit.write_limit, (RateLimitRule{0, 0}));
  EXPECT_EQ(c.rate_limit.max_delay, Millis(0));
  EXPECT_EQ(c.rate_limit.overrides, (std::vector{make_override("192.0.2.10", 5000, 5000)}));
  EXPECT_TRUE(c.breaker.enabled);
  EXPECT_EQ(c.breaker.failure_threshold, 5u);
  EXPECT_EQ(c.breaker.failure_ratio_percent, 50u);
  EXPECT_EQ(c.breaker.window, Millis(10'000));
  EXPECT_EQ(c.breaker.min_requests, 20u);
  EXPECT_EQ(c.breaker.open_for, Millis(1000));
  EXPECT_EQ(c.breaker.probes, 3u);
  EXPECT_TRUE(c.health_check.enabled);
  EXPECT_EQ(c.health_check.interval, Millis(500));
  EXPECT_EQ(c.health_check.timeout, Millis(500));
  EXPECT_EQ(c.health_check.rise, 2u);
  EXPECT_EQ(c.health_check.fall, 3u);
  // Fail fast and notice recovery soon (docs/operations.md).
  EXPECT_EQ(c.upstream.request_timeout, Millis(1000));
  EXPECT_EQ(c.upstream.reconnect_backoff_max, Millis(1000));
  // Everything else is the default.
  Config expected;
  expected.upstream.request_timeout = c.upstream.request_timeout;
  expected.upstream.reconnect_backoff_max = c.upstream.reconnect_backoff_max;
  expected.rate_limit = c.rate_limit;
  expected.breaker = c.breaker;
  expected.health_check = c.health_check;
  EXPECT_TRUE(c == expected);
}

TEST(ConfigFile, EveryExampleLoads) {
  std::vector<std::string> examples;
  for (const auto& entry : std::filesystem::directory_iterator(kRepoRoot / "config/examples")) {
    if (entry.path().extension() != ".yaml") continue;
    examples.push_back(entry.path().filename().string());
    EXPECT_NO_THROW(load_file(entry.path().string())) << entry.path();
  }
  for (const char* name : {"all-policies.yaml", "protection.yaml", "bloom.yaml"}) {
    EXPECT_NE(std::find(examples.begin(), examples.end(), name), examples.end()) << name;
  }
}

// Client authentication on, one user: app / app-secret, reads and writes under app:*.
TEST(ConfigFile, SecureExampleHasTheAppUser) {
  const Config c = load_file((kRepoRoot / "config/examples/secure.yaml").string());
  ASSERT_EQ(c.auth.users.size(), 1u);
  EXPECT_EQ(c.auth.users[0].name, "app");
  EXPECT_EQ(c.auth.users[0].password_sha256, respguard::common::sha256_hex("app-secret"));
  EXPECT_EQ(c.auth.users[0].rules, "+@read +@write -@dangerous ~app:*");
  EXPECT_EQ(c.auth.max_failures_per_second, 10u);
}

// docs/configuration.md embeds reference_markdown() verbatim, so the docs never drift from the
// schema.
TEST(ConfigReference, DocsContainTheGeneratedTable) {
  const std::filesystem::path path = kRepoRoot / "docs/configuration.md";
  const std::string docs = read_text(path);
  const std::string table = reference_markdown();
  EXPECT_NE(docs.find(table), std::string::npos)
      << path << " is out of date. Regenerate its table with\n"
      << "  respguard --print-config-reference\n"
      << "and paste the output over the old table. Expected table:\n"
      << table;
}

TEST(ConfigReference, ListsKeyTypeDefaultAndDescription) {
  const std::string table = reference_markdown();
  EXPECT_TRUE(table.starts_with("| Key | Type | Default | Description |\n"));
  EXPECT_NE(table.find("| `upstream.connections_per_worker` | integer | `2` | Shared, pipelined "
                       "upstream connections per worker. Must be between 1 and 64. |\n"),
            std::string::npos);
  EXPECT_NE(table.find("| `client.output_buffer_limit` | size | `256mb` |"), std::string::npos);
  EXPECT_NE(table.find("| `shutdown_grace` | duration | `10s` |"), std::string::npos);
  EXPECT_NE(table.find("| `listen` | endpoint | `127.0.0.1:6380` |"), std::string::npos);
  EXPECT_NE(table.find("| `upstream.password` | string | `\"\"` |"), std::string::npos);
  EXPECT_NE(table.find("One of: `trace`, `debug`, `info`, `warn`, `error`, `critical`, `off`."),
            std::string::npos);
}

TEST(ConfigReference, EveryKeyHasOneRowInLayoutOrder) {
  const std::vector<std::string> keys = reference_keys();
  ASSERT_GE(keys.size(), 25u);
  EXPECT_EQ(keys.front(), "listen");
  EXPECT_EQ(keys.back(), "health_check.fall");
  for (std::size_t i = 0; i < keys.size(); ++i) {
    for (std::size_t j = i + 1; j < keys.size(); ++j) EXPECT_NE(keys[i], keys[j]);
  }
}

// --- key rules --------------------------------------------------------------------------

TEST(ConfigRules, NoRulesByDefault) {
  EXPECT_TRUE(Config{}.rules.empty());
  EXPECT_TRUE(load_string("rules:\n").rules.empty());
  EXPECT_TRUE(load_string("rules:\n#  - match: \"*\"\n#    coalesce: true\n").rules.empty());
  EXPECT_TRUE(load_string("rules: []\n").rules.empty());
}

TEST(ConfigRules, FlowStyleAsInTheDocs) {
  const Config c = load_string(
      "rules:\n"
      "  - match: \"user:*\"\n"
      "    db: 0\n"
      "    jitter: {percent: 0.1, positive_only: false, expire_commands: false, default_ttl: 1h}\n"
      "    coalesce: true\n"
      "    negative_cache: {ttl: 5s}\n"
      "    lease: {wait: 1s}\n"
      "policy_limits: {negative_cache_max_entries: 100000, lease_max_keys: 100000}\n");
  ASSERT_EQ(c.rules.size(), 1u);
  RuleConfig expected;
  expected.match = "user:*";
  expected.db = 0;
  expected.jitter = make_jitter(0.1, Millis(3'600'000));
  expected.coalesce = true;
  expected.negative_cache = NegativeCacheConfig{Millis(5000)};
  expected.lease = LeaseConfig{Millis(1000)};
  EXPECT_EQ(c.rules[0], expected);
}

TEST(ConfigRules, EmptySectionsTakeTheDefaults) {
  const Config c =
      load_string("rules:\n  - match: a*\n    jitter: {}\n    negative_cache: {}\n    lease: {}\n");
  ASSERT_EQ(c.rules.size(), 1u);
  EXPECT_EQ(c.rules[0].jitter, JitterConfig{});
  EXPECT_EQ(c.rules[0].jitter->percent, 0.10);
  EXPECT_EQ(c.rules[0].negative_cache, NegativeCacheConfig{});
  EXPECT_EQ(c.rules[0].negative_cache->ttl, Millis(5000));
  EXPECT_EQ(c.rules[0].lease, LeaseConfig{});
  EXPECT_EQ(c.rules[0].lease->wait, Millis(1000));
  EXPECT_FALSE(c.rules[0].coalesce);
}

TEST(ConfigRules, KeepTheirOrder) {
  const Config c = load_string(
      "rules:\n"
      "  - match: \"user:admin:*\"\n    coalesce: true\n"
      "  - match: \"user:*\"\n    lease: {wait: 2s}\n"
      "  - match: \"*\"\n    negative_cache: {ttl: 1m}\n");
  ASSERT_EQ(c.rules.size(), 3u);
  EXPECT_EQ(c.rules[0].match, "user:admin:*");
  EXPECT_EQ(c.rules[1].match, "user:*");
  EXPECT_EQ(c.rules[2].match, "*");
  EXPECT_EQ(c.rules[2].negative_cache->ttl, Millis(60'000));
}

TEST(ConfigRules, PercentBounds) {
  EXPECT_EQ(
      load_string("rules:\n  - match: a\n    jitter: {percent: 1}\n").rules[0].jitter->percent,
      1.0);
  EXPECT_EQ(
      load_string("rules:\n  - match: a\n    jitter: {percent: 0.001}\n").rules[0].jitter->percent,
      0.001);
  const std::string range = "must be greater than 0 and at most 1 (0.1 = +-10%), got ";
  for (std::string_view bad : {"0", "1.5", "10", "-0.1", "nan", "inf"}) {
    EXPECT_EQ(
        load_error("rules:\n  - match: a\n    jitter:\n      percent: " + std::string(bad) + "\n"),
        "respguard.yaml:4: rules[0].jitter.percent: " + range + "'" + std::string(bad) + "'")
        << bad;
  }
  for (std::string_view bad : {"10%", "abc", "0.1.2", " "}) {
    EXPECT_EQ(load_error("rules:\n  - match: a\n    jitter:\n      percent: \"" + std::string(bad) +
                         "\"\n"),
              "respguard.yaml:4: rules[0].jitter.percent: expected a fraction such as 0.1 "
              "(+-10%), got '" +
                  std::string(bad) + "'")
        << bad;
  }
}

TEST(ConfigRules, DurationsMustBePositive) {
  EXPECT_EQ(load_error("rules:\n  - match: a\n    negative_cache: {ttl: 0}\n"),
            "respguard.yaml:3: rules[0].negative_cache.ttl: must be greater than 0, got '0'");
  EXPECT_EQ(load_error("rules:\n  - match: a\n    lease:\n      wait: 0ms\n"),
            "respguard.yaml:4: rules[0].lease.wait: must be greater than 0, got '0ms'");
  EXPECT_EQ(load_error("rules:\n  - match: a\n    jitter: {default_ttl: 0s}\n"),
            "respguard.yaml:3: rules[0].jitter.default_ttl: must be greater than 0, got '0s'");
  EXPECT_EQ(load_error("rules:\n  - match: a\n    lease: {wait: soon}\n"),
            "respguard.yaml:3: rules[0].lease.wait: expected a duration such as 500ms, 5s or 1m, "
            "got 'soon'");
  EXPECT_EQ(load_error("rules:\n  - match: a\n    negative_cache: {ttl: 5000}\n"),
            "respguard.yaml:3: rules[0].negative_cache.ttl: expected a duration with a unit such "
            "as 5000ms or 5000s (a plain number is ambiguous), got '5000'");
}

TEST(ConfigRules, Db) {
  EXPECT_EQ(load_string("rules:\n  - match: a\n    db: 15\n    coalesce: true\n").rules[0].db, 15);
  for (std::string_view bad : {"-1", "x", "1.5", "99999999999"}) {
    EXPECT_EQ(
        load_error("rules:\n  - match: a\n    db: " + std::string(bad) + "\n    coalesce: true\n"),
        "respguard.yaml:3: rules[0].db: expected a database index (0, 1, 2, ...), got '" +
            std::string(bad) + "'")
        << bad;
  }
}

TEST(ConfigRules, MatchIsRequiredAndNotEmpty) {
  EXPECT_EQ(load_error("rules:\n  - coalesce: true\n"),
            "respguard.yaml:2: rules[0]: missing match: the keys the rule applies to, such as "
            "\"user:*\" (\"*\" for every key)");
  EXPECT_EQ(load_error("rules:\n  - match: \"\"\n    coalesce: true\n"),
            "respguard.yaml:2: rules[0].match: must not be empty; \"*\" matches every key");
  EXPECT_EQ(load_error("rules:\n  - match:\n    coalesce: true\n"),
            "respguard.yaml:2: rules[0].match: no value; expected a key pattern such as "
            "\"user:*\"");
}

TEST(ConfigRules, ARuleWithoutPolicyIsAnError) {
  const std::string reason =
      "sets no policy (jitter, coalesce, negative_cache, lease or bloom), so it would change "
      "nothing";
  EXPECT_EQ(load_error("rules:\n  - match: \"user:*\"\n"), "respguard.yaml:2: rules[0]: " + reason);
  EXPECT_EQ(load_error("rules:\n  - match: a\n    coalesce: true\n  - match: b\n    db: 1\n"
                       "    coalesce: false\n"),
            "respguard.yaml:4: rules[1]: " + reason);
}

TEST(ConfigRules, UnknownKeysNameTheirPathAndSuggest) {
  const std::string yaml =
      "workers: 1\n"
      "rules:\n"
      "  - match: a\n"
      "    coalesce: true\n"
      "  - match: b\n"
      "    coalesce: true\n"
      "  - match: c\n"
      "    jitter:\n"
      "      percnt: 0.2\n";
  EXPECT_EQ(load_error(yaml),
            "respguard.yaml:9: rules[2].jitter.percnt: unknown key (did you mean "
            "'rules[2].jitter.percent'?)");
  EXPECT_EQ(load_error("rules:\n  - mach: a\n"),
            "respguard.yaml:2: rules[0].mach: unknown key (did you mean 'rules[0].match'?)");
  EXPECT_EQ(load_error("rules:\n  - match: a\n    coalesc: true\n"),
            "respguard.yaml:3: rules[0].coalesc: unknown key (did you mean 'rules[0].coalesce'?)");
  EXPECT_EQ(load_error("rules:\n  - match: a\n    lease: {wiat: 1s}\n"),
            "respguard.yaml:3: rules[0].lease.wiat: unknown key (did you mean "
            "'rules[0].lease.wait'?)");
  // A key in the wrong place is found by its name.
  EXPECT_EQ(load_error("rules:\n  - match: a\n    ttl: 5s\n"),
            "respguard.yaml:3: rules[0].ttl: unknown key (did you mean "
            "'rules[0].negative_cache.ttl'?)");
  EXPECT_EQ(load_error("rules:\n  - match: a\n    negative_cache: {wait: 5s}\n"),
            "respguard.yaml:3: rules[0].negative_cache.wait: unknown key (did you mean "
            "'rules[0].lease.wait'?)");
  EXPECT_EQ(load_error("rules:\n  - match: a\n    bloom: {sorce: set}\n"),
            "respguard.yaml:3: rules[0].bloom.sorce: unknown key (did you mean "
            "'rules[0].bloom.source'?)");
  EXPECT_EQ(load_error("rules:\n  - match: a\n    bloom: {ttl: 5s}\n"),
            "respguard.yaml:3: rules[0].bloom.ttl: unknown key (did you mean "
            "'rules[0].negative_cache.ttl'?)");
  EXPECT_EQ(load_error("rules:\n  - match: a\n    blom: {}\n"),
            "respguard.yaml:3: rules[0].blom: unknown key (did you mean 'rules[0].bloom'?)");
  EXPECT_EQ(load_error("rule:\n  - match: a\n"),
            "respguard.yaml:1: rule: unknown key (did you mean 'rules'?)");
}

TEST(ConfigRules, ShapeErrors) {
  EXPECT_EQ(load_error("rules: \"user:*\"\n"),
            "respguard.yaml:1: rules: expected a list of rules, each starting with \"- match: "
            "...\", got 'user:*'");
  EXPECT_EQ(load_error("rules:\n  match: a\n"),
            "respguard.yaml:1: rules: expected a list of rules, each starting with \"- match: "
            "...\", got a mapping");
  EXPECT_EQ(load_error("rules:\n  - \"user:*\"\n"),
            "respguard.yaml:2: rules[0]: expected a rule (match: and its policies, as indented "
            "key: value lines), got 'user:*'");
  EXPECT_EQ(load_error("rules:\n  - match: a\n    jitter:\n"),
            "respguard.yaml:3: rules[0].jitter: no value; write its options indented below it, "
            "or {} for the defaults");
  EXPECT_EQ(load_error("rules:\n  - match: a\n    jitter: true\n"),
            "respguard.yaml:3: rules[0].jitter: expected a section of indented key: value lines "
            "(or {} for the defaults), got 'true'");
  EXPECT_EQ(load_error("rules:\n  - match: a\n    coalesce: yes\n"),
            "respguard.yaml:3: rules[0].coalesce: expected true or false, got 'yes'");
  EXPECT_EQ(load_error("rules:\n  - match: [a, b]\n    coalesce: true\n"),
            "respguard.yaml:2: rules[0].match: expected a key pattern such as \"user:*\", got a "
            "list");
  EXPECT_EQ(load_error("rules:\n  - match: a\n    coalesce: true\n    match: b\n"),
            "respguard.yaml:4: rules[0].match: duplicate key (first set on line 2)");
  EXPECT_EQ(load_error("rules:\n  - match: a\n    jitter.percent: 0.1\n"),
            "respguard.yaml:3: rules[0].jitter.percent: keys are nested, not dotted: write the "
            "section and indent the key below it");
  EXPECT_EQ(load_error("rules:\n  - match: a\n    coalesce: true\nrules: []\n"),
            "respguard.yaml:4: rules: duplicate key (first set on line 1)");
}

TEST(ConfigRules, PolicyLimitsAreOrdinaryOptions) {
  EXPECT_EQ(load_error("policy_limits:\n  negative_cache_max_entries: 0\n"),
            "respguard.yaml:2: policy_limits.negative_cache_max_entries: must be greater than 0, "
            "got '0'");
  EXPECT_EQ(load_error("policy_limits:\n  lease_max_key: 5\n"),
            "respguard.yaml:2: policy_limits.lease_max_key: unknown key (did you mean "
            "'policy_limits.lease_max_keys'?)");
  Config c;
  set_option(c, "policy_limits.lease_max_keys", "42");
  EXPECT_EQ(c.policy_limits.lease_max_keys, 42u);
}

TEST(Validate, ChecksRulesSetInCode) {
  Config c;
  c.rules.push_back(make_rule("a"));
  EXPECT_EQ(validate_error(c), "(no error)");
  RuleConfig jittered = make_rule("b", false);
  jittered.jitter = make_jitter(2);
  c.rules.push_back(jittered);
  EXPECT_EQ(validate_error(c),
            "rules[1].jitter.percent: must be greater than 0 and at most 1 (0.1 = +-10%), got '2'");
  c.rules[1].jitter->percent = 0.5;
  c.rules[1].jitter->default_ttl = Millis(0);
  EXPECT_EQ(validate_error(c), "rules[1].jitter.default_ttl: must be greater than 0, got '0'");
  c.rules[1].jitter->default_ttl.reset();
  EXPECT_EQ(validate_error(c), "(no error)");
  c.rules[0].match = "";
  EXPECT_EQ(validate_error(c), "rules[0].match: must not be empty; \"*\" matches every key");
  c.rules[0].match = "a";
  c.rules[0].db = -1;
  EXPECT_EQ(validate_error(c), "rules[0].db: must not be negative, got '-1'");
  c.rules[0].db = 0;
  c.rules[0].negative_cache = NegativeCacheConfig{Millis(-5)};
  EXPECT_EQ(validate_error(c), "rules[0].negative_cache.ttl: must be greater than 0, got '-5ms'");
  c.rules[0].negative_cache.reset();
  c.rules[0].lease = LeaseConfig{Millis(0)};
  EXPECT_EQ(validate_error(c), "rules[0].lease.wait: must be greater than 0, got '0'");
  c.rules[0] = make_rule("a", false);
  EXPECT_EQ(validate_error(c),
            "rules[0]: sets no policy (jitter, coalesce, negative_cache, lease or bloom), so it "
            "would change nothing");
}

// --- Bloom pre-checks and the coherence channel -----------------------------------------

// "rules:\n  - match: \"product:*\"\n    bloom:\n" followed by `lines`, each indented below bloom.
std::string bloom_yaml(const std::vector<std::string>& lines) {
  std::string yaml = "rules:\n  - match: \"product:*\"\n    bloom:\n";
  for (const std::string& line : lines) yaml += "      " + line + "\n";
  return yaml;
}

BloomConfig make_set_bloom() {
  BloomConfig bloom;
  bloom.source = BloomConfig::Source::Set;
  bloom.set = "valid:product-ids";
  bloom.id = "product:{id}";
  return bloom;
}

TEST(ConfigBloom, EmptySectionIsAKeyspaceFilterWithTheDefaults) {
  const Config c = load_string("rules:\n  - match: \"*\"\n    bloom: {}\n");
  ASSERT_EQ(c.rules.size(), 1u);
  ASSERT_TRUE(c.rules[0].bloom.has_value());
  const BloomConfig& b = *c.rules[0].bloom;
  EXPECT_EQ(b, BloomConfig{});
  EXPECT_EQ(b.source, BloomConfig::Source::Keyspace);
  EXPECT_EQ(b.expected_keys, 1'000'000u);
  EXPECT_EQ(b.false_positive_rate, 0.01);
  EXPECT_EQ(b.set, "");
  EXPECT_EQ(b.id, "");
  EXPECT_EQ(b.absent_reply, std::nullopt);
  EXPECT_EQ(b.rebuild_interval, Millis(3'600'000));
  EXPECT_FALSE(c.rules[0].coalesce || c.rules[0].jitter || c.rules[0].negative_cache ||
               c.rules[0].lease);
}

TEST(ConfigBloom, SetSourceAsInTheDocs) {
  const Config c = load_string(
      "rules:\n"
      "  - match: \"product:*\"\n"
      "    negative_cache: {ttl: 5s}\n"
      "    bloom:\n"
      "      source: set            # keyspace (default) | set\n"
      "      set: \"valid:product-ids\"\n"
      "      id: \"product:{id}\"\n"
      "      expected_keys: 1000000\n"
      "      false_positive_rate: 0.01\n"
      "      absent_reply: \"__absent__\"\n"
      "      rebuild_interval: 1h\n");
  ASSERT_EQ(c.rules.size(), 1u);
  BloomConfig expected = make_set_bloom();
  expected.absent_reply = "__absent__";
  EXPECT_EQ(c.rules[0].bloom, expected);
  EXPECT_EQ(c.rules[0].negative_cache, NegativeCacheConfig{Millis(5000)});
  // Any case, like the other choices; an empty absent_reply is an empty bulk string.
  const Config upper = load_string(bloom_yaml(
      {"source: SET", "set: s", "id: \"p:{id}\"", "absent_reply: \"\"", "rebuild_interval: 0"}));
  EXPECT_EQ(upper.rules[0].bloom->source, BloomConfig::Source::Set);
  EXPECT_EQ(upper.rules[0].bloom->absent_reply, "");
  EXPECT_EQ(upper.rules[0].bloom->rebuild_interval, Millis(0));
  EXPECT_EQ(load_string(bloom_yaml({"source: Keyspace"})).rules[0].bloom->source,
            BloomConfig::Source::Keyspace);
}

TEST(ConfigBloom, SourceMustBeKeyspaceOrSet) {
  EXPECT_EQ(load_error(bloom_yaml({"source: hash"})),
            "respguard.yaml:4: rules[0].bloom.source: expected keyspace or set, got 'hash'");
  EXPECT_EQ(load_error(bloom_yaml({"source:"})),
            "respguard.yaml:4: rules[0].bloom.source: no value; expected keyspace or set");
}

TEST(ConfigBloom, ExpectedKeysRange) {
  EXPECT_EQ(load_string(bloom_yaml({"expected_keys: 1"})).rules[0].bloom->expected_keys, 1u);
  EXPECT_EQ(load_string(bloom_yaml({"expected_keys: 1000000000"})).rules[0].bloom->expected_keys,
            1'000'000'000u);
  for (std::string_view bad : {"0", "1000000001", "99999999999999999999999"}) {
    EXPECT_EQ(load_error(bloom_yaml({"expected_keys: " + std::string(bad)})),
              "respguard.yaml:4: rules[0].bloom.expected_keys: must be between 1 and 1000000000, "
              "got '" +
                  std::string(bad) + "'")
        << bad;
  }
  for (std::string_view bad : {"-1", "1e6", "many"}) {
    EXPECT_EQ(load_error(bloom_yaml({"expected_keys: " + std::string(bad)})),
              "respguard.yaml:4: rules[0].bloom.expected_keys: expected a number of keys such as "
              "1000000, got '" +
                  std::string(bad) + "'")
        << bad;
  }
}

TEST(ConfigBloom, FalsePositiveRateRange) {
  EXPECT_EQ(
      load_string(bloom_yaml({"false_positive_rate: 0.5"})).rules[0].bloom->false_positive_rate,
      0.5);
  EXPECT_EQ(
      load_string(bloom_yaml({"false_positive_rate: 0.0001"})).rules[0].bloom->false_positive_rate,
      0.0001);
  for (std::string_view bad : {"0", "0.51", "1", "-0.01", "nan", "inf"}) {
    EXPECT_EQ(load_error(bloom_yaml({"false_positive_rate: " + std::string(bad)})),
              "respguard.yaml:4: rules[0].bloom.false_positive_rate: must be greater than 0 and at "
              "most 0.5 (0.01 = 1%), got '" +
                  std::string(bad) + "'")
        << bad;
  }
  EXPECT_EQ(load_error(bloom_yaml({"false_positive_rate: \"1%\""})),
            "respguard.yaml:4: rules[0].bloom.false_positive_rate: expected a fraction such as "
            "0.01 (1%), got '1%'");
}

TEST(ConfigBloom, RebuildIntervalIsZeroOrAtLeastOneSecond) {
  EXPECT_EQ(load_string(bloom_yaml({"rebuild_interval: 1s"})).rules[0].bloom->rebuild_interval,
            Millis(1000));
  EXPECT_EQ(load_string(bloom_yaml({"rebuild_interval: 0"})).rules[0].bloom->rebuild_interval,
            Millis(0));
  EXPECT_EQ(load_error(bloom_yaml({"rebuild_interval: 999ms"})),
            "respguard.yaml:4: rules[0].bloom.rebuild_interval: must be 0 (never rebuild) or at "
            "least 1s, got '999ms'");
  EXPECT_EQ(load_error(bloom_yaml({"rebuild_interval: 3600"})),
            "respguard.yaml:4: rules[0].bloom.rebuild_interval: expected a duration with a unit "
            "such as 3600ms or 3600s (a plain number is ambiguous), got '3600'");
}

TEST(ConfigBloom, SetSourceNeedsASetAndAnIdPattern) {
  EXPECT_EQ(load_error(bloom_yaml({"source: set", "id: \"product:{id}\""})),
            "respguard.yaml:3: rules[0].bloom.set: missing: source: set needs the Redis SET that "
            "holds the valid ids, such as \"valid:product-ids\"");
  EXPECT_EQ(load_error(bloom_yaml({"source: set", "set: \"\"", "id: \"product:{id}\""})),
            "respguard.yaml:5: rules[0].bloom.set: missing: source: set needs the Redis SET that "
            "holds the valid ids, such as \"valid:product-ids\"");
  EXPECT_EQ(load_error(bloom_yaml({"source: set", "set: ids"})),
            "respguard.yaml:3: rules[0].bloom.id: missing: source: set needs where the id sits in "
            "a key, such as \"product:{id}\"");
  for (std::string_view bad : {"product:", "product:{id}:{id}", "product:{ID}", "product:{}"}) {
    EXPECT_EQ(
        load_error(bloom_yaml({"source: set", "set: ids", "id: \"" + std::string(bad) + "\""})),
        "respguard.yaml:6: rules[0].bloom.id: must contain {id} exactly once, where the id "
        "sits in a key (such as \"product:{id}\"), got '" +
            std::string(bad) + "'")
        << bad;
  }
  // Other braces are the key's own (a hash tag): fine.
  EXPECT_EQ(load_string(bloom_yaml({"source: set", "set: ids", "id: \"{shop}:product:{id}\""}))
                .rules[0]
                .bloom->id,
            "{shop}:product:{id}");
  // The order of the keys does not matter: source may come last.
  EXPECT_NO_THROW(
      load_string(bloom_yaml({"set: ids", "id: \"p:{id}\"", "absent_reply: x", "source: set"})));
}

TEST(ConfigBloom, KeyspaceSourceRejectsTheKeysOfASetSource) {
  EXPECT_EQ(load_error(bloom_yaml({"set: ids"})),
            "respguard.yaml:4: rules[0].bloom.set: allowed only with source: set; a keyspace "
            "filter learns its keys from Redis itself");
  EXPECT_EQ(load_error(bloom_yaml({"source: keyspace", "id: \"p:{id}\""})),
            "respguard.yaml:5: rules[0].bloom.id: allowed only with source: set; a keyspace "
            "filter holds whole keys, not ids");
  EXPECT_EQ(load_error(bloom_yaml({"absent_reply: \"__absent__\""})),
            "respguard.yaml:4: rules[0].bloom.absent_reply: allowed only with source: set: with "
            "source: keyspace a nil from Redis means \"not cached\", not \"does not exist\", so "
            "there is nothing to answer for the database");
}

TEST(ConfigBloom, CountsAsAPolicy) {
  const Config c = load_string("rules:\n  - match: a\n    bloom: {expected_keys: 10}\n");
  EXPECT_FALSE(c.rules[0].coalesce);
  EXPECT_EQ(c.rules[0].bloom->expected_keys, 10u);
  Config code;
  code.rules.push_back(make_rule("a", false));
  code.rules[0].bloom = BloomConfig{};
  EXPECT_EQ(validate_error(code), "(no error)");
}

// Without the channel a filter would say "absent" for keys written straight to Redis.
TEST(ConfigBloom, NeedsTheCoherenceChannel) {
  const std::string reason =
      "needs coherence.enabled: true: without the channel a filter cannot learn of keys written "
      "directly to Redis";
  // The line of the rule's bloom, wherever coherence is written.
  EXPECT_EQ(load_error("coherence:\n  enabled: false\nrules:\n  - match: a\n    coalesce: true\n"
                       "  - match: b\n    bloom: {}\n"),
            "respguard.yaml:7: rules[1].bloom: " + reason);
  EXPECT_EQ(load_error("rules:\n  - match: a\n    bloom: {}\ncoherence: {enabled: false}\n"),
            "respguard.yaml:3: rules[0].bloom: " + reason);
  // A negative cache works without it (it then sees only writes through the proxy).
  EXPECT_NO_THROW(load_string(
      "coherence: {enabled: false}\nrules:\n  - match: a\n    negative_cache: {ttl: 5s}\n"));
  Config c;
  c.rules.push_back(make_rule("a", false));
  c.rules[0].bloom = make_set_bloom();
  c.coherence.enabled = false;
  EXPECT_EQ(validate_error(c), "rules[0].bloom: " + reason);
  c.coherence.enabled = true;
  EXPECT_EQ(validate_error(c), "(no error)");
}

TEST(Validate, ChecksBloomSetInCode) {
  Config c;
  c.rules.push_back(make_rule("a", false));
  c.rules[0].bloom = BloomConfig{};
  BloomConfig& b = *c.rules[0].bloom;
  b.source = static_cast<BloomConfig::Source>(7);
  EXPECT_EQ(validate_error(c), "rules[0].bloom.source: expected keyspace or set, got '7'");
  b.source = BloomConfig::Source::Keyspace;
  b.expected_keys = 0;
  EXPECT_EQ(validate_error(c),
            "rules[0].bloom.expected_keys: must be between 1 and 1000000000, got '0'");
  b.expected_keys = 2'000'000'000;
  EXPECT_EQ(validate_error(c),
            "rules[0].bloom.expected_keys: must be between 1 and 1000000000, got '2000000000'");
  b.expected_keys = 5;
  b.false_positive_rate = 0.75;
  EXPECT_EQ(validate_error(c),
            "rules[0].bloom.false_positive_rate: must be greater than 0 and at most 0.5 (0.01 = "
            "1%), got '0.75'");
  b.false_positive_rate = 0;
  EXPECT_EQ(validate_error(c),
            "rules[0].bloom.false_positive_rate: must be greater than 0 and at most 0.5 (0.01 = "
            "1%), got '0'");
  b.false_positive_rate = 0.02;
  b.rebuild_interval = Millis(10);
  EXPECT_EQ(validate_error(c),
            "rules[0].bloom.rebuild_interval: must be 0 (never rebuild) or at least 1s, got "
            "'10ms'");
  b.rebuild_interval = Millis(-1000);
  EXPECT_EQ(validate_error(c),
            "rules[0].bloom.rebuild_interval: must be 0 (never rebuild) or at least 1s, got "
            "'-1000ms'");
  b.rebuild_interval = Millis(0);
  EXPECT_EQ(validate_error(c), "(no error)");
  b.absent_reply = "";
  EXPECT_EQ(validate_error(c),
            "rules[0].bloom.absent_reply: allowed only with source: set: with source: keyspace a "
            "nil from Redis means \"not cached\", not \"does not exist\", so there is nothing to "
            "answer for the database");
  b.source = BloomConfig::Source::Set;
  EXPECT_EQ(validate_error(c),
            "rules[0].bloom.set: missing: source: set needs the Redis SET that holds the valid "
            "ids, such as \"valid:product-ids\"");
  b.set = "ids";
  b.id = "p:{id}{id}";
  EXPECT_EQ(validate_error(c),
            "rules[0].bloom.id: must contain {id} exactly once, where the id sits in a key (such "
            "as \"product:{id}\"), got 'p:{id}{id}'");
  b.id = "p:{id}";
  EXPECT_EQ(validate_error(c), "(no error)");
  b.source = BloomConfig::Source::Keyspace;
  b.absent_reply.reset();
  EXPECT_EQ(validate_error(c),
            "rules[0].bloom.set: allowed only with source: set; a keyspace filter learns its keys "
            "from Redis itself");
}

TEST(ConfigCoherence, RangesNameFileLineAndKey) {
  EXPECT_EQ(load_error("coherence:\n  scan_count: 0\n"),
            "respguard.yaml:2: coherence.scan_count: must be between 1 and 100000, got '0'");
  EXPECT_EQ(load_error("coherence:\n  scan_count: 100001\n"),
            "respguard.yaml:2: coherence.scan_count: must be between 1 and 100000, got '100001'");
  EXPECT_EQ(load_string("coherence:\n  scan_count: 100000\n").coherence.scan_count, 100000u);
  EXPECT_EQ(
      load_string("coherence:\n  warmup_keys_per_second: 0\n").coherence.warmup_keys_per_second,
      0u);
  EXPECT_EQ(load_error("coherence:\n  enabled: no\n"),
            "respguard.yaml:2: coherence.enabled: expected true or false, got 'no'");
  EXPECT_EQ(load_error("coherence:\n  scan_cont: 10\n"),
            "respguard.yaml:2: coherence.scan_cont: unknown key (did you mean "
            "'coherence.scan_count'?)");
  Config c;
  set_option(c, "coherence.warmup_keys_per_second", "5000");
  EXPECT_EQ(c.coherence.warmup_keys_per_second, 5000u);
  c.coherence.scan_count = 0;
  EXPECT_EQ(validate_error(c), "coherence.scan_count: must be between 1 and 100000, got '0'");
}

TEST(GlobLiteralPrefix, IsTheTextBeforeTheFirstSpecialCharacter) {
  EXPECT_EQ(glob_literal_prefix("user:*"), "user:");
  EXPECT_EQ(glob_literal_prefix("*"), "");
  EXPECT_EQ(glob_literal_prefix(""), "");
  EXPECT_EQ(glob_literal_prefix("a\\*b"), "a");
  EXPECT_EQ(glob_literal_prefix("user:?:x"), "user:");
  EXPECT_EQ(glob_literal_prefix("user:[ab]*"), "user:");
  EXPECT_EQ(glob_literal_prefix("exact:key"), "exact:key");
  EXPECT_EQ(glob_literal_prefix("*:suffix"), "");
}

// --- rate limits, breaker, health checks -----------------------------------------------

TEST(ConfigRateLimit, NoOverridesByDefault) {
  EXPECT_TRUE(load_string("rate_limit:\n  overrides:\n").rate_limit.overrides.empty());
  EXPECT_TRUE(load_string("rate_limit:\n  overrides: []\n").rate_limit.overrides.empty());
  EXPECT_TRUE(
      load_string("rate_limit:\n  overrides:\n  #  - identity: a\n").rate_limit.overrides.empty());
}

TEST(ConfigRateLimit, OverridesKeepTheirOrderAndBurstIsOptional) {
  const Config c = load_string(
      "rate_limit:\n"
      "  rate: 100\n"
      "  overrides:\n"
      "    - identity: \"10.0.0.7\"\n"
      "      rate: 5000\n"
      "      burst: 10000\n"
      "    - {identity: 10.0.0.8, rate: 0}\n"
      "    - identity: 10.0.0.9\n"
      "      burst: 3\n"
      "      rate: 7\n");
  EXPECT_EQ(c.rate_limit.limit, (RateLimitRule{100, 0}));
  EXPECT_EQ(c.rate_limit.overrides,
            (std::vector{make_override("10.0.0.7", 5000, 10000), make_override("10.0.0.8", 0),
                         make_override("10.0.0.9", 7, 3)}));
}

TEST(ConfigRateLimit, FlowStyleSection) {
  const Config c = load_string(
      "rate_limit: {identity: USER, rate: 10, overrides: [{identity: reports, rate: 1}]}\n");
  EXPECT_EQ(c.rate_limit.identity, "user");
  EXPECT_EQ(c.rate_limit.limit.rate, 10u);
  EXPECT_EQ(c.rate_limit.overrides, (std::vector{make_override("reports", 1)}));
}

// Peers are matched by the text of their address, so overrides are stored in that form,
// whatever order the file sets rate_limit.identity in.
TEST(ConfigRateLimit, AddressesAreStoredInCanonicalForm) {
  Config c = load_string(
      "rate_limit:\n"
      "  overrides:\n"
      "    - {identity: \"2001:DB8:0:0::7\", rate: 1}\n"
      "    - {identity: \"::1\", rate: 1}\n"
      "  identity: source_ip\n");
  EXPECT_EQ(c.rate_limit.overrides[0].identity, "2001:db8::7");
  EXPECT_EQ(c.rate_limit.overrides[1].identity, "::1");
  // Names are taken as written.
  c = load_string(
      "rate_limit:\n  overrides: [{identity: Batch-Job, rate: 1}]\n  identity: "
      "client_name\n");
  EXPECT_EQ(c.rate_limit.overrides[0].identity, "Batch-Job");
}

TEST(ConfigRateLimit, ZeroMeansNoLimit) {
  const Config c = load_string("rate_limit:\n  rate: 0\n  burst: 0\n  max_delay: 0\n");
  EXPECT_EQ(c.rate_limit.limit, (RateLimitRule{0, 0}));
  EXPECT_EQ(c.rate_limit.max_delay, Millis(0));
  EXPECT_EQ(load_string("rate_limit:\n  idle_expiry: 1s\n").rate_limit.idle_expiry, Millis(1000));
}

TEST(ConfigRateLimitErrors, OptionRanges) {
  EXPECT_EQ(load_error("rate_limit:\n  identity: ip\n"),
            "respguard.yaml:2: rate_limit.identity: expected one of source_ip, client_name, user, "
            "got 'ip'");
  EXPECT_EQ(load_error("rate_limit:\n  idle_expiry: 500ms\n"),
            "respguard.yaml:2: rate_limit.idle_expiry: must be at least 1s, got '500ms'");
  EXPECT_EQ(load_error("rate_limit:\n  rate: -5\n"),
            "respguard.yaml:2: rate_limit.rate: expected a non-negative integer, got '-5'");
  EXPECT_EQ(load_error("rate_limit:\n  burst: 4294967296\n"),
            "respguard.yaml:2: rate_limit.burst: must be at most 4294967295, got '4294967296'");
  EXPECT_EQ(load_error("rate_limit:\n  max_delay: 20\n"),
            "respguard.yaml:2: rate_limit.max_delay: expected a duration with a unit such as 20ms "
            "or 20s (a plain number is ambiguous), got '20'");
  EXPECT_EQ(load_error("rate_limit:\n  burts: 5\n"),
            "respguard.yaml:2: rate_limit.burts: unknown key (did you mean 'rate_limit.burst'?)");
  EXPECT_EQ(load_error("rate_limit:\n  overides: []\n"),
            "respguard.yaml:2: rate_limit.overides: unknown key (did you mean "
            "'rate_limit.overrides'?)");
  EXPECT_EQ(load_error("overrides: []\n"),
            "respguard.yaml:1: overrides: unknown key (did you mean 'rate_limit.overrides'?)");
}

TEST(ConfigRateLimitErrors, UnknownOverrideKeySuggests) {
  const std::string head = "rate_limit:\n  overrides:\n    - identity: \"10.0.0.7\"\n";
  EXPECT_EQ(load_error(head + "      rat: 5\n"),
            "respguard.yaml:4: rate_limit.overrides[0].rat: unknown key (did you mean "
            "'rate_limit.overrides[0].rate'?)");
  EXPECT_EQ(load_error(head + "      rate: 5\n    - identity: b\n      rate: 1\n      brust: 2\n"),
            "respguard.yaml:7: rate_limit.overrides[1].brust: unknown key (did you mean "
            "'rate_limit.overrides[1].burst'?)");
  EXPECT_EQ(load_error(head + "      rate: 5\n      write_rate: 1\n"),
            "respguard.yaml:5: rate_limit.overrides[0].write_rate: unknown key");
}

TEST(ConfigRateLimitErrors, DuplicateIdentityNamesTheFirst) {
  EXPECT_EQ(load_error("rate_limit:\n"
                       "  overrides:\n"
                       "    - identity: \"10.0.0.7\"\n"
                       "      rate: 5\n"
                       "    - identity: 10.0.0.7\n"
                       "      rate: 6\n"),
            "respguard.yaml:5: rate_limit.overrides[1].identity: duplicate identity '10.0.0.7', "
            "already in rate_limit.overrides[0]; one identity has one limit");
  // The same address written two ways is the same client.
  EXPECT_EQ(load_error("rate_limit:\n"
                       "  overrides:\n"
                       "    - {identity: \"::1\", rate: 1}\n"
                       "    - {identity: a, rate: 1}\n"
                       "    - {identity: \"0:0::1\", rate: 2}\n"
                       "  identity: source_ip\n"),
            "respguard.yaml:4: rate_limit.overrides[1].identity: expected an IP address such as "
            "10.0.0.7 or 2001:db8::7, as rate_limit.identity is source_ip, got 'a'");
  EXPECT_EQ(load_error("rate_limit:\n"
                       "  overrides:\n"
                       "    - {identity: \"::1\", rate: 1}\n"
                       "    - {identity: \"0:0::1\", rate: 2}\n"),
            "respguard.yaml:4: rate_limit.overrides[1].identity: duplicate identity '::1', "
            "already in rate_limit.overrides[0]; one identity has one limit");
  // Names are case-sensitive, like Redis's.
  EXPECT_NO_THROW(
      load_string("rate_limit:\n  identity: user\n  overrides:\n"
                  "    - {identity: app, rate: 1}\n    - {identity: App, rate: 1}\n"));
}

TEST(ConfigRateLimitErrors, IdentityMustFitTheKind) {
  EXPECT_EQ(load_error("rate_limit:\n  overrides:\n    - identity: batch-job\n      rate: 5\n"),
            "respguard.yaml:3: rate_limit.overrides[0].identity: expected an IP address such as "
            "10.0.0.7 or 2001:db8::7, as rate_limit.identity is source_ip, got 'batch-job'");
  EXPECT_EQ(load_error("rate_limit:\n  overrides:\n    - {identity: 10.0.0.0/8, rate: 5}\n"),
            "respguard.yaml:3: rate_limit.overrides[0].identity: expected an IP address such as "
            "10.0.0.7 or 2001:db8::7, as rate_limit.identity is source_ip, got '10.0.0.0/8' (one "
            "address per override: ranges are not supported)");
  for (std::string_view bad : {"10.0.0.7:6379", "[::1]", "010.0.0.7", "localhost"}) {
    EXPECT_NE(load_error("rate_limit:\n  overrides:\n    - {identity: \"" + std::string(bad) +
                         "\", rate: 5}\n")
                  .find("expected an IP address"),
              std::string::npos)
        << bad;
  }
  EXPECT_EQ(load_error("rate_limit:\n  identity: client_name\n  overrides:\n"
                       "    - {identity: \"batch job\", rate: 5}\n"),
            "respguard.yaml:4: rate_limit.overrides[0].identity: Redis allows only printable "
            "ASCII without spaces in client names, so no client can be named 'batch job'");
  EXPECT_EQ(load_error("rate_limit:\n  identity: user\n  overrides:\n"
                       "    - {identity: \"ops team\", rate: 5}\n"),
            "respguard.yaml:4: rate_limit.overrides[0].identity: Redis allows no spaces in user "
            "names, so no user can be named 'ops team'");
  EXPECT_EQ(load_error("rate_limit:\n  overrides:\n    - {identity: \"\", rate: 5}\n"),
            "respguard.yaml:3: rate_limit.overrides[0].identity: must not be empty; write the "
            "exact source_ip value to limit");
}

TEST(ConfigRateLimitErrors, OverrideShape) {
  EXPECT_EQ(load_error("rate_limit:\n  overrides:\n    - rate: 5\n"),
            "respguard.yaml:3: rate_limit.overrides[0]: missing identity: the exact source_ip, "
            "client_name or user value (as rate_limit.identity says) this limit is for");
  EXPECT_EQ(load_error("rate_limit:\n  overrides:\n    - identity: 10.0.0.7\n      burst: 5\n"),
            "respguard.yaml:3: rate_limit.overrides[0]: missing rate: this identity's requests "
            "per second (0 = no limit)");
  EXPECT_EQ(load_error("rate_limit:\n  overrides:\n    - {identity: 10.0.0.7, rate: fast}\n"),
            "respguard.yaml:3: rate_limit.overrides[0].rate: expected a non-negative integer, got "
            "'fast'");
  EXPECT_EQ(load_error("rate_limit:\n  overrides:\n    - identity: 10.0.0.7\n      rate: "
                       "99999999999\n"),
            "respguard.yaml:4: rate_limit.overrides[0].rate: must be at most 4294967295, got "
            "'99999999999'");
  EXPECT_EQ(load_error("rate_limit:\n  overrides:\n    - identity: 10.0.0.7\n      rate:\n"),
            "respguard.yaml:4: rate_limit.overrides[0].rate: no value; expected a non-negative "
            "integer");
  EXPECT_EQ(load_error("rate_limit:\n  overrides:\n    - identity: [a, b]\n      rate: 1\n"),
            "respguard.yaml:3: rate_limit.overrides[0].identity: expected a client identity such "
            "as \"10.0.0.7\", got a list");
  EXPECT_EQ(load_error("rate_limit:\n  overrides: 10.0.0.7\n"),
            "respguard.yaml:2: rate_limit.overrides: expected a list of overrides, each starting "
            "with \"- identity: ...\", got '10.0.0.7'");
  EXPECT_EQ(load_error("rate_limit:\n  overrides:\n    identity: 10.0.0.7\n"),
            "respguard.yaml:2: rate_limit.overrides: expected a list of overrides, each starting "
            "with \"- identity: ...\", got a mapping");
  EXPECT_EQ(load_error("rate_limit:\n  overrides:\n    - 10.0.0.7\n"),
            "respguard.yaml:3: rate_limit.overrides[0]: expected an override (identity:, rate: "
            "and optionally burst:, as indented key: value lines), got '10.0.0.7'");
  EXPECT_EQ(load_error("rate_limit:\n  overrides:\n    - identity: 10.0.0.7\n      rate: 1\n"
                       "      rate: 2\n"),
            "respguard.yaml:5: rate_limit.overrides[0].rate: duplicate key (first set on line 4)");
  EXPECT_EQ(load_error("rate_limit:\n  overrides: []\n  overrides: []\n"),
            "respguard.yaml:3: rate_limit.overrides: duplicate key (first set on line 2)");
}

TEST(ConfigBreaker, RangesNameFileLineAndKey) {
  EXPECT_EQ(load_error("breaker:\n  failure_ratio_percent: 150\n"),
            "respguard.yaml:2: breaker.failure_ratio_percent: must be at most 100, got '150'");
  EXPECT_EQ(load_string("breaker:\n  failure_ratio_percent: 100\n").breaker.failure_ratio_percent,
            100u);
  EXPECT_EQ(load_error("breaker:\n  window: 0\n"),
            "respguard.yaml:2: breaker.window: must be greater than 0, got '0'");
  EXPECT_EQ(load_error("breaker:\n  open_for: 0s\n"),
            "respguard.yaml:2: breaker.open_for: must be greater than 0, got '0s'");
  EXPECT_EQ(load_error("breaker:\n  probes: 0\n"),
            "respguard.yaml:2: breaker.probes: must be greater than 0, got '0'");
  EXPECT_EQ(load_error("breaker:\n  enabled: yes\n"),
            "respguard.yaml:2: breaker.enabled: expected true or false, got 'yes'");
}

// Both triggers off would leave an enabled breaker that can never open.
TEST(ConfigBreaker, EnabledNeedsATrigger) {
  const std::string reason =
      "true, but breaker.failure_threshold and breaker.failure_ratio_percent are both 0, so the "
      "breaker could never open";
  EXPECT_EQ(load_error("breaker:\n  enabled: true\n  failure_threshold: 0\n"),
            "respguard.yaml:2: breaker.enabled: " + reason);
  EXPECT_NO_THROW(load_string("breaker:\n  enabled: false\n  failure_threshold: 0\n"));
  EXPECT_NO_THROW(load_string(
      "breaker:\n  enabled: true\n  failure_threshold: 0\n  failure_ratio_percent: 50\n"));
  Config c;
  c.breaker.enabled = true;
  c.breaker.failure_threshold = 0;
  EXPECT_EQ(validate_error(c), "breaker.enabled: " + reason);
}

TEST(ConfigHealthCheck, RangesNameFileLineAndKey) {
  EXPECT_EQ(load_error("health_check:\n  interval: 0\n"),
            "respguard.yaml:2: health_check.interval: must be greater than 0, got '0'");
  EXPECT_EQ(load_error("health_check:\n  timeout: 0ms\n"),
            "respguard.yaml:2: health_check.timeout: must be greater than 0, got '0ms'");
  EXPECT_EQ(load_error("health_check:\n  rise: 0\n"),
            "respguard.yaml:2: health_check.rise: must be greater than 0, got '0'");
  EXPECT_EQ(load_error("health_check:\n  fall: 0\n"),
            "respguard.yaml:2: health_check.fall: must be greater than 0, got '0'");
  EXPECT_EQ(load_error("health_check:\n  interval: 1s\n  fal: 2\n"),
            "respguard.yaml:3: health_check.fal: unknown key (did you mean 'health_check.fall'?)");
  // Unusual but well defined, so allowed: a check fails when its PING is later than timeout.
  const Config c = load_string("health_check:\n  interval: 500ms\n  timeout: 2s\n");
  EXPECT_EQ(c.health_check.timeout, Millis(2000));
}

TEST(Validate, ChecksOverridesSetInCode) {
  Config c;
  c.rate_limit.overrides = {make_override("10.0.0.7", 5), make_override("10.0.0.8", 5)};
  EXPECT_EQ(validate_error(c), "(no error)");
  c.rate_limit.overrides[1].identity = "10.0.0.7";
  EXPECT_EQ(validate_error(c),
            "rate_limit.overrides[1].identity: duplicate identity '10.0.0.7', already in "
            "rate_limit.overrides[0]; one identity has one limit");
  c.rate_limit.overrides[1].identity = "batch-job";
  EXPECT_EQ(validate_error(c),
            "rate_limit.overrides[1].identity: expected an IP address such as 10.0.0.7 or "
            "2001:db8::7, as rate_limit.identity is source_ip, got 'batch-job'");
  c.rate_limit.identity = "client_name";
  c.rate_limit.overrides[0].identity = "";
  EXPECT_EQ(validate_error(c),
            "rate_limit.overrides[0].identity: must not be empty; write the exact client_name "
            "value to limit");
  c.rate_limit.overrides[0].identity = "reports";
  EXPECT_EQ(validate_error(c), "(no error)");
  c.rate_limit.identity = "ip";
  EXPECT_EQ(validate_error(c),
            "rate_limit.identity: expected one of source_ip, client_name, user, got 'ip'");
  c = Config{};
  c.rate_limit.idle_expiry = Millis(999);
  EXPECT_EQ(validate_error(c), "rate_limit.idle_expiry: must be at least 1s, got '999ms'");
  c = Config{};
  c.breaker.failure_ratio_percent = 101;
  EXPECT_EQ(validate_error(c), "breaker.failure_ratio_percent: must be at most 100, got '101'");
  c = Config{};
  c.health_check.interval = Millis(0);
  EXPECT_EQ(validate_error(c), "health_check.interval: must be greater than 0, got '0'");
}

// --- text forms -----------------------------------------------------------------------------

TEST(ParseSize, AcceptsBytesAndBinaryUnitsInAnyCase) {
  EXPECT_EQ(parse_size("0"), 0u);
  EXPECT_EQ(parse_size("1024"), 1024u);
  EXPECT_EQ(parse_size("1k"), 1024u);
  EXPECT_EQ(parse_size("64kb"), 64u * 1024);
  EXPECT_EQ(parse_size("64KB"), 64u * 1024);
  EXPECT_EQ(parse_size("64Kb"), 64u * 1024);
  EXPECT_EQ(parse_size("512mb"), 512u * 1024 * 1024);
  EXPECT_EQ(parse_size("3M"), 3u * 1024 * 1024);
  EXPECT_EQ(parse_size("1gb"), 1024u * 1024 * 1024);
  EXPECT_EQ(parse_size("2G"), 2ull * 1024 * 1024 * 1024);
  EXPECT_EQ(parse_size("0gb"), 0u);
  EXPECT_EQ(parse_size("18446744073709551615"), 18446744073709551615ull);
  EXPECT_EQ(parse_size("17179869183gb"), 17179869183ull << 30);
}

TEST(ParseSize, RejectsEverythingElse) {
  const std::string expected = "expected a size such as 1024, 64kb, 512mb or 1gb, got ";
  for (std::string_view bad :
       {"", "kb", "-1", "1.5mb", "1 kb", " 1", "1tb", "64kib", "0x10", "1e6", "1b", "mb1"}) {
    EXPECT_EQ(parse_error(parse_size, bad), expected + "'" + std::string(bad) + "'") << bad;
  }
}

TEST(ParseSize, RejectsOverflow) {
  EXPECT_EQ(parse_error(parse_size, "17179869184gb"), "size is too large, got '17179869184gb'");
  EXPECT_EQ(parse_error(parse_size, "18446744073709551616"),
            "size is too large, got '18446744073709551616'");
}

TEST(ParseDuration, AcceptsUnits) {
  EXPECT_EQ(parse_duration("0"), Millis(0));
  EXPECT_EQ(parse_duration("0s"), Millis(0));
  EXPECT_EQ(parse_duration("0ms"), Millis(0));
  EXPECT_EQ(parse_duration("500ms"), Millis(500));
  EXPECT_EQ(parse_duration("5s"), Millis(5000));
  EXPECT_EQ(parse_duration("1m"), Millis(60'000));
  EXPECT_EQ(parse_duration("2h"), Millis(7'200'000));
  EXPECT_EQ(parse_duration("5S"), Millis(5000));
  EXPECT_EQ(parse_duration("250MS"), Millis(250));
  EXPECT_EQ(parse_duration("9223372036854775807ms"), Millis(9223372036854775807LL));
}

TEST(ParseDuration, RejectsPlainNumbersOtherThanZero) {
  EXPECT_EQ(parse_error(parse_duration, "5000"),
            "expected a duration with a unit such as 5000ms or 5000s (a plain number is "
            "ambiguous), got '5000'");
  EXPECT_EQ(parse_error(parse_duration, "1"),
            "expected a duration with a unit such as 1ms or 1s (a plain number is ambiguous), got "
            "'1'");
}

TEST(ParseDuration, RejectsEverythingElse) {
  const std::string expected = "expected a duration such as 500ms, 5s or 1m, got ";
  for (std::string_view bad :
       {"", "s", "soon", "-1s", "1.5s", "5 s", " 5s", "10d", "1sec", "1min", "PT5S", "5s5"}) {
    EXPECT_EQ(parse_error(parse_duration, bad), expected + "'" + std::string(bad) + "'") << bad;
  }
}

TEST(ParseDuration, RejectsOverflow) {
  EXPECT_EQ(parse_error(parse_duration, "9223372036854775808ms"),
            "duration is too large, got '9223372036854775808ms'");
  EXPECT_EQ(parse_error(parse_duration, "9223372036854776s"),
            "duration is too large, got '9223372036854776s'");
  EXPECT_EQ(parse_error(parse_duration, "99999999999999999999s"),
            "duration is too large, got '99999999999999999999s'");
}

TEST(ParseEndpoint, AcceptsHostsAndBracketedIpv6) {
  EXPECT_EQ(parse_endpoint("127.0.0.1:6379"), (Endpoint{"127.0.0.1", 6379}));
  EXPECT_EQ(parse_endpoint("localhost:1"), (Endpoint{"localhost", 1}));
  EXPECT_EQ(parse_endpoint("redis.default.svc.cluster.local:65535"),
            (Endpoint{"redis.default.svc.cluster.local", 65535}));
  EXPECT_EQ(parse_endpoint("[::1]:6380"), (Endpoint{"::1", 6380}));
  EXPECT_EQ(parse_endpoint("[::]:6380"), (Endpoint{"::", 6380}));
  EXPECT_EQ(parse_endpoint("[2001:db8::1]:7000"), (Endpoint{"2001:db8::1", 7000}));
}

TEST(ParseEndpoint, RejectsMalformedText) {
  const std::string expected = "expected HOST:PORT such as 127.0.0.1:6379 or [::1]:6379, got ";
  for (std::string_view bad : {"", "localhost", ":6379", "host:", "[::1]", "[::1]:", "[::1]6379",
                               "[::1:6379", "[]:6379", "my host:6379"}) {
    EXPECT_EQ(parse_error(parse_endpoint, bad), expected + "'" + std::string(bad) + "'") << bad;
  }
}

TEST(ParseEndpoint, RejectsBadPorts) {
  for (std::string_view bad :
       {"host:0", "host:65536", "host:99999999999999999999", "host:-1", "host:http", "[::1]:0"}) {
    EXPECT_EQ(parse_error(parse_endpoint, bad),
              "port must be between 1 and 65535, got '" + std::string(bad) + "'")
        << bad;
  }
}

TEST(ParseEndpoint, UnbracketedIpv6IsExplained) {
  EXPECT_EQ(parse_error(parse_endpoint, "::1:6380"),
            "IPv6 addresses need brackets, such as [::1]:6379, got '::1:6380'");
}

TEST(ParseEndpoint, ToStringRoundTrips) {
  EXPECT_EQ((Endpoint{"127.0.0.1", 6379}).to_string(), "127.0.0.1:6379");
  EXPECT_EQ((Endpoint{"::1", 6380}).to_string(), "[::1]:6380");
  for (std::string_view text : {"redis:6379", "[2001:db8::1]:7000", "0.0.0.0:1"}) {
    EXPECT_EQ(parse_endpoint(text).to_string(), text);
  }
}

// --- set_option and validate ------------------------------------------------------------

TEST(SetOption, UsesTheFileSyntaxAndRange) {
  Config c;
  set_option(c, "upstream.address", "[::1]:7000");
  set_option(c, "client.output_buffer_limit", "1mb");
  set_option(c, "log_level", "ERROR");
  EXPECT_EQ(c.upstream.address, (Endpoint{"::1", 7000}));
  EXPECT_EQ(c.server.output_buffer_limit, 1024u * 1024);
  EXPECT_EQ(c.log.level, "error");
  Config before = c;
  EXPECT_EQ(parse_error([&](std::string_view v) { set_option(c, "workers", v); }, "300"),
            "must be at most 256, got '300'");
  EXPECT_TRUE(c == before) << "a rejected value must not be stored";
  set_option(c, "rate_limit.identity", "Client_Name");
  set_option(c, "rate_limit.burst", "200");
  set_option(c, "health_check.timeout", "250ms");
  EXPECT_EQ(c.rate_limit.identity, "client_name");
  EXPECT_EQ(c.rate_limit.limit.burst, 200u);
  EXPECT_EQ(c.health_check.timeout, Millis(250));
  EXPECT_EQ(
      parse_error([&](std::string_view v) { set_option(c, "breaker.failure_ratio_percent", v); },
                  "101"),
      "must be at most 100, got '101'");
}

TEST(SetOption, UnknownKeySuggests) {
  Config c;
  EXPECT_EQ(parse_error([&](std::string_view v) { set_option(c, "upstream.adress", v); }, "x:1"),
            "unknown option 'upstream.adress' (did you mean 'upstream.address'?)");
  EXPECT_EQ(parse_error([&](std::string_view v) { set_option(c, "upstream", v); }, "x:1"),
            "unknown option 'upstream'");
}

TEST(Validate, ChecksRangesOfValuesSetInCode) {
  Config c;
  c.server.workers = 300;
  EXPECT_EQ(validate_error(c), "workers: must be at most 256, got '300'");
  c = Config{};
  c.upstream.connections_per_worker = 0;
  EXPECT_EQ(validate_error(c),
            "upstream.connections_per_worker: must be between 1 and 64, got '0'");
  c = Config{};
  c.upstream.request_timeout = Millis(0);
  EXPECT_EQ(validate_error(c), "upstream.request_timeout: must be greater than 0, got '0'");
  c = Config{};
  c.server.shutdown_grace = Millis(-1);
  EXPECT_EQ(validate_error(c), "shutdown_grace: must not be negative, got '-1ms'");
  c = Config{};
  c.server.tcp_backlog = -5;
  EXPECT_EQ(validate_error(c), "server.tcp_backlog: must be greater than 0, got '-5'");
  c = Config{};
  c.protocol.max_inline_len = 0;
  EXPECT_EQ(validate_error(c), "protocol.max_inline_len: must be greater than 0, got '0'");
}

TEST(Validate, ChecksEnumsAndEndpointsSetInCode) {
  Config c;
  c.log.level = "verbose";
  EXPECT_EQ(validate_error(c),
            "log_level: expected one of trace, debug, info, warn, error, critical, off, got "
            "'verbose'");
  c = Config{};
  c.server.listen.port = 0;
  EXPECT_EQ(validate_error(c),
            "listen: expected HOST:PORT such as 127.0.0.1:6379 or [::1]:6379, got '127.0.0.1:0'");
}

TEST(Validate, ChecksRulesBetweenOptions) {
  Config c;
  c.upstream.reconnect_backoff_min = Millis(6000);
  EXPECT_EQ(validate_error(c),
            "upstream.reconnect_backoff_min: upstream.reconnect_backoff_min (6s) must not be "
            "greater than upstream.reconnect_backoff_max (5s)");
  c = Config{};
  c.upstream.username = "app";
  EXPECT_EQ(validate_error(c),
            "upstream.username: set but upstream.password is empty; AUTH with a username needs "
            "that user's password");
  c.upstream.password = "s3cret";
  EXPECT_EQ(validate_error(c), "(no error)");
}

}  // namespace
}  // namespace respguard::config
