// The typed, validated configuration. One YAML file (yaml-cpp) -> Config; every option is
// declared once in the schema table in src/config/config.cpp, which also produces the
// configuration reference (docs/configuration.md) and `respguard --print-config-reference`.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "respguard/resp/parser.hpp"

namespace respguard::config {

using Millis = std::chrono::milliseconds;

struct Endpoint {
  std::string host;  // IPv4/IPv6 literal or a name; IPv6 written "[::1]:6380" in text form
  std::uint16_t port = 0;
  std::string to_string() const;  // "host:port" or "[v6]:port"
  bool operator==(const Endpoint&) const = default;
};

// The text forms of the option types, shared by the loader, the CLI and later sections that are
// not plain table rows (lists of rules). Each throws std::invalid_argument with a message that
// quotes the text ("expected a duration such as 500ms, 5s or 1m, got 'soon'"); the caller adds
// where the text came from.
//
// "HOST:PORT", or "[V6]:PORT" for an IPv6 literal; the port is 1..65535.
Endpoint parse_endpoint(std::string_view text);
// "500ms", "5s", "1m", "1h", "0". A plain number other than 0 is rejected: ms or s?
Millis parse_duration(std::string_view text);
// Bytes: "1024", "64kb", "512mb", "1gb"; k/kb/m/mb/g/gb are powers of 1024, any case.
std::size_t parse_size(std::string_view text);

// TLS on the client listener ("tls" in docs/configuration.md, docs/security.md). With
// cert_file set, server.listen speaks TLS only.
struct TlsConfig {
  std::string cert_file;              // PEM certificate (chain); empty: TLS off
  std::string key_file;               // PEM private key of cert_file
  std::string ca_file;                // CA bundle client certificates must chain to
  std::string client_certs = "none";  // none | optional | required (Redis tls-auth-clients)
  std::string min_version = "1.2";    // 1.2 | 1.3
  std::string ciphers;                // OpenSSL cipher list for TLS 1.2; empty: OpenSSL's
  bool enabled() const { return !cert_file.empty(); }
};

struct ServerConfig {
  Endpoint listen{"127.0.0.1", 6380};
  unsigned workers = 0;  // 0 = number of cores
  std::size_t maxclients = 10000;
  Millis idle_timeout{0};                                        // 0 = off
  std::size_t output_buffer_limit = 256ull * 1024 * 1024;        // per client, bytes; 0 = unlimited
  std::size_t pubsub_output_buffer_limit = 32ull * 1024 * 1024;  // subscribed clients
  std::size_t query_buffer_limit = 1024ull * 1024 * 1024;        // client-query-buffer-limit
  std::size_t max_pinned_connections = 1024;  // dedicated upstream connections, whole process
  Millis shutdown_grace{10000};
  int tcp_backlog = 511;
};

// TLS to the upstream Redis ("upstream.tls" in docs/configuration.md, docs/security.md).
struct UpstreamTlsConfig {
  bool enabled = false;
  std::string ca_file;    // CA bundle the upstream's certificate must chain to; empty: system
  std::string cert_file;  // client certificate for mutual TLS (with key_file); empty: none
  std::string key_file;
  std::string server_name;  // SNI and the name checked in the certificate; empty: address host
  bool verify = true;       // verify the upstream's certificate chain and name
};

struct UpstreamConfig {
  Endpoint address{"127.0.0.1", 6379};
  std::string username;  // empty: AUTH <password> (the default user)
  std::string password;  // empty: no AUTH
  unsigned connections_per_worker = 2;
  Millis connect_timeout{1000};
  Millis request_timeout{5000};
  Millis blocking_timeout_margin{1000};  // added to a blocking command's own timeout
  Millis reconnect_backoff_min{100};
  Millis reconnect_backoff_max{5000};
  unsigned databases = 16;  // SELECT range when the upstream does not answer CONFIG GET
  UpstreamTlsConfig tls;
};

struct LogConfig {
  std::string level = "info";  // trace, debug, info, warn, error, critical, off
};

// Policies of one key rule (see "Key rules" in docs/configuration.md). Absent sections are off.
struct JitterConfig {
  double percent = 0.10;              // u in [-percent, +percent]
  bool positive_only = false;         // u in [0, +percent]: never shorten a TTL
  bool expire_commands = false;       // also EXPIRE / PEXPIRE
  std::optional<Millis> default_ttl;  // SETs without an expiration get this (jittered)
  bool operator==(const JitterConfig&) const = default;
};

struct NegativeCacheConfig {
  Millis ttl{5000};  // how long "absent" is believed
  bool operator==(const NegativeCacheConfig&) const = default;
};

struct LeaseConfig {
  Millis wait{1000};  // how long other readers wait for the lease holder's SET
  bool operator==(const LeaseConfig&) const = default;
};

// Bloom pre-check of a rule ("Bloom filters" in docs/configuration.md).
struct BloomConfig {
  enum class Source : std::uint8_t { Keyspace, Set };
  Source source = Source::Keyspace;  // keyspace: keys that exist in Redis; set: ids in a Redis SET
  std::uint64_t expected_keys = 1000000;
  double false_positive_rate = 0.01;
  std::string set;  // source: set — the Redis SET holding the valid ids
  std::string id;   // source: set — where the id sits in a key: "product:{id}"
  std::optional<std::string> absent_reply;  // source: set only — bulk reply for ids not in the set
  Millis rebuild_interval{3600000};  // rebuild (keyspace) / reload (set) from scratch; 0 = never
  bool operator==(const BloomConfig&) const = default;
};

struct RuleConfig {
  std::string match;      // glob: "user:*"
  std::optional<int> db;  // only this db; absent: every db
  std::optional<JitterConfig> jitter;
  bool coalesce = false;
  std::optional<NegativeCacheConfig> negative_cache;
  std::optional<LeaseConfig> lease;
  std::optional<BloomConfig> bloom;
  bool operator==(const RuleConfig&) const = default;
};

// The literal prefix of a glob (the characters before the first *, ?, [ or \\): what the
// coherence channel tracks for a rule. "user:*" -> "user:", "*" -> "", "a\\*b" -> "a".
std::string_view glob_literal_prefix(std::string_view glob);

// Process-wide bounds of the policies' state.
struct PolicyLimits {
  std::size_t negative_cache_max_entries = 100000;
  std::size_t lease_max_keys = 100000;
  bool operator==(const PolicyLimits&) const = default;
};

// The coherence channel (CLIENT TRACKING BCAST + __redis__:invalidate) that keeps local state
// (negative cache, Bloom filters) true when others write to Redis directly.
struct CoherenceConfig {
  bool enabled = true;                            // used only when a rule keeps local state
  std::size_t scan_count = 1000;                  // COUNT of each warm-up SCAN / SSCAN call
  std::uint64_t warmup_keys_per_second = 200000;  // pacing of warm-up scans; 0 = unpaced
  bool operator==(const CoherenceConfig&) const = default;
};

// Command guard (docs/security.md, "Command guard"): with nothing set, everything passes.
struct GuardConfig {
  std::string profile = "off";     // off | production (the production deny list)
  std::vector<std::string> deny;   // more commands to deny: "keys", "config|set" (normalized)
  std::vector<std::string> allow;  // taken off the profile's list
  std::size_t max_arguments = 0;   // arguments after the command name; 0 = no limit
  std::size_t max_request_bytes = 0;  // all arguments together; 0 = no limit
  std::size_t max_value_bytes = 0;    // any value (non-key argument) of a write; 0 = no limit
  std::size_t big_value_bytes = 0;    // report writes with a value over this; 0 = off
  std::size_t big_collection_elements = 0;  // report collections grown past this; 0 = off
  unsigned collection_probe_every = 16;     // SADD/ZADD/HSET/XADD followed by a size probe: 1 in N
  bool operator==(const GuardConfig&) const = default;
};

// "KEYS", "config set", "CONFIG|SET" -> "keys", "config|set": the form guard lists hold. Empty
// when the text names no command of the command table.
std::string normalize_command_name(std::string_view text);

// Per-client rate limits ("Rate limits" in docs/configuration.md). A token bucket per client
// identity, shared by all workers; rate 0 = unlimited.
struct RateLimitRule {
  unsigned rate = 0;   // requests per second
  unsigned burst = 0;  // bucket depth; 0 = same as rate
  bool operator==(const RateLimitRule&) const = default;
};

struct RateLimitOverride {
  // An exact identity value: "10.0.0.7", "batch-job", "reports". The loader stores addresses in
  // inet_ntop's form ("2001:db8::7"), the form peers are matched in.
  std::string identity;
  RateLimitRule limit;
  bool operator==(const RateLimitOverride&) const = default;
};

struct RateLimitConfig {
  std::string identity = "source_ip";  // source_ip, client_name or user
  RateLimitRule limit;                 // every identity's default; rate 0 = no limit
  RateLimitRule write_limit;           // commands flagged write, on top of `limit`; 0 = none
  Millis max_delay{0};        // over the limit: wait up to this long for a token, then reject
  Millis idle_expiry{60000};  // forget an identity's bucket after this long unused
  std::vector<RateLimitOverride> overrides;  // exact identities with their own limit
  bool operator==(const RateLimitConfig&) const = default;
};

// Circuit breaker per upstream endpoint (ARCHITECTURE §3).
struct BreakerConfig {
  bool enabled = false;
  unsigned failure_threshold = 5;      // consecutive failures that open it; 0 = off
  unsigned failure_ratio_percent = 0;  // open when failures/requests in `window` reach it; 0 = off
  Millis window{10000};
  unsigned min_requests = 20;  // the ratio needs at least this many requests in the window
  Millis open_for{5000};       // answer at once with an error this long, then half-open
  unsigned probes = 3;         // requests let through half-open; all must succeed to close
  bool operator==(const BreakerConfig&) const = default;
};

// Active health checks: PING on a control connection, rise/fall as HAProxy counts them.
struct HealthCheckConfig {
  bool enabled = true;
  Millis interval{1000};
  Millis timeout{1000};
  unsigned rise = 2;  // consecutive good checks that mark the upstream up
  unsigned fall = 3;  // consecutive failed checks that mark it down
  bool operator==(const HealthCheckConfig&) const = default;
};

// The admin HTTP listener: /metrics (Prometheus), /healthz, /readyz.
struct AdminConfig {
  bool enabled = true;
  Endpoint listen{"127.0.0.1", 9380};
  bool metrics = true;  // record metrics on the request path (off: /metrics shows zeros)
  bool unready_when_breaker_open = false;  // an open circuit breaker fails /readyz
};

// Client authentication ("auth" in docs/configuration.md, docs/security.md): users the proxy
// itself authenticates, each with a subset of Redis's ACL rules. No users: clients authenticate
// with the upstream's credentials, as before.
struct AuthUser {
  std::string name;
  std::string password_sha256;  // hex SHA-256 of the password (`respguard --hash-password`)
  std::string rules;            // Redis ACL rules: "+@read +@write -@dangerous ~app:*"
  bool operator==(const AuthUser&) const = default;
};

struct AuthConfig {
  std::vector<AuthUser> users;
  unsigned max_failures_per_second = 10;  // failed AUTHs, whole process; 0 = no limit
  bool operator==(const AuthConfig&) const = default;
};

// Hot keys (docs/security.md, "Command guard"): a bounded top-k of the keys requested most,
// counted per worker on a sample of the commands, merged and reported once per interval.
struct HotKeysConfig {
  bool enabled = true;
  unsigned top_n = 10;         // keys exported and logged, 1..100
  unsigned capacity = 1024;    // counters per worker (Space-Saving)
  unsigned sample_every = 16;  // count one command in this many (on average)
  Millis report_interval{10000};
  unsigned log_threshold_per_second = 1000;  // log the top when a key is over this; 0 = never
  bool operator==(const HotKeysConfig&) const = default;
};

struct Config {
  ServerConfig server;
  UpstreamConfig upstream;
  TlsConfig tls;  // client-side TLS
  resp::Limits protocol;
  AuthConfig auth;  // client authentication and ACL
  LogConfig log;
  AdminConfig admin;
  std::vector<RuleConfig> rules;  // first match wins
  PolicyLimits policy_limits;
  CoherenceConfig coherence;
  RateLimitConfig rate_limit;
  BreakerConfig breaker;
  HealthCheckConfig health_check;
  GuardConfig guard;
  HotKeysConfig hot_keys;

  // Equal when every option in the schema, the rules and the rate limit overrides are equal
  // (resp::Limits has no operator==, and the schema is the list of what a Config holds anyway).
  bool operator==(const Config& other) const;
};

// The keys whose values differ between `a` and `b`, in schema order ("rate_limit.rate"), then
// the list sections: "rules", "auth.users", "rate_limit.overrides", "guard.deny", "guard.allow".
// A hot reload uses it to tell what it can apply from what needs a restart.
std::vector<std::string> differing_options(const Config& a, const Config& b);
// Sets `key` (a schema key or one of the list sections above) in `to` to its value in `from`.
// Throws std::invalid_argument for an unknown key.
void copy_option(Config& to, const Config& from, std::string_view key);

// Names the source, line and key: "respguard.yaml:12: upstream.request_timeout: expected a
// duration such as 500ms, 5s or 1m, got 'soon'".
class ConfigError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

Config load_file(const std::string& path);  // throws ConfigError
Config load_string(const std::string& yaml, const std::string& source_name = "<string>");

// Sets one option by its key ("upstream.address") from its text form, exactly as the file
// would (same parsing and range check). Throws std::invalid_argument with the bare reason,
// e.g. "must be at most 256, got '300'", for the caller to prefix (the CLI: "--workers: ").
void set_option(Config& config, std::string_view key, std::string_view value);

// Checks every option's range and the rules between options (reconnect_backoff_min <=
// reconnect_backoff_max, username needs password), the key rules and the rate limit overrides.
// The loaders already do this; call it after changing a Config in code. Throws ConfigError
// "key: reason".
void validate(const Config& config);

// Markdown table of every option: key, type, default, description.
std::string reference_markdown();

}  // namespace respguard::config
