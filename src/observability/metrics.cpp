#include "respguard/observability/metrics.hpp"

#include <prometheus/metric_family.h>
#include <prometheus/text_serializer.h>

#include <algorithm>
#include <array>
#include <limits>
#include <sstream>

namespace respguard::observability {
namespace {

template <std::size_t N>
using Values = std::array<std::string_view, N>;

std::span<const std::string_view> command_values() {
  static const std::vector<std::string_view> values = [] {
    std::vector<std::string_view> v;
    for (const auto& info : resp::all_commands()) v.push_back(info.name);
    v.push_back("other");
    return v;
  }();
  return values;
}
std::span<const std::string_view> result_values() {
  static constexpr Values<2> v{"ok", "error"};
  return v;
}
std::span<const std::string_view> reject_values() {
  static constexpr Values<1> v{"maxclients"};
  return v;
}
std::span<const std::string_view> close_values() {
  static constexpr Values<9> v{"client",
                               "quit",
                               "protocol_error",
                               "idle_timeout",
                               "output_buffer_limit",
                               "query_buffer_limit",
                               "shutdown",
                               "upstream_lost",
                               "tls_handshake"};
  return v;
}
std::span<const std::string_view> tls_side_values() {
  static constexpr Values<2> v{"client", "upstream"};
  return v;
}
std::span<const std::string_view> tls_failure_values() {
  static constexpr Values<5> v{"timeout", "certificate", "protocol", "closed", "other"};
  return v;
}
std::span<const std::string_view> state_values() {
  static constexpr Values<3> v{"connecting", "ready", "backoff"};
  return v;
}
std::span<const std::string_view> upstream_error_values() {
  static constexpr Values<6> v{"connect", "read", "write", "protocol", "timeout", "handshake"};
  return v;
}
std::span<const std::string_view> reload_values() {
  static constexpr Values<2> v{"success", "failure"};
  return v;
}
std::span<const std::string_view> lease_outcome_values() {
  static constexpr Values<3> v{"value", "timeout", "promoted"};
  return v;
}
std::span<const std::string_view> rate_action_values() {
  static constexpr Values<2> v{"rejected", "delayed"};
  return v;
}
std::span<const std::string_view> breaker_state_values() {
  static constexpr Values<3> v{"closed", "open", "half_open"};
  return v;
}
std::span<const std::string_view> breaker_failure_values() {
  static constexpr Values<4> v{"connect", "timeout", "connection_lost", "unavailable_reply"};
  return v;
}
std::span<const std::string_view> health_result_values() {
  static constexpr Values<2> v{"ok", "failed"};
  return v;
}
std::span<const std::string_view> bloom_result_values() {
  static constexpr Values<3> v{"rejected", "passed", "untrusted"};
  return v;
}
std::span<const std::string_view> bloom_pass_values() {
  static constexpr Values<4> v{"warmup", "rebuild", "resize", "aborted"};
  return v;
}
std::span<const std::string_view> invalidation_values() {
  static constexpr Values<2> v{"key", "flush"};
  return v;
}
std::span<const std::string_view> guard_refusal_values() {
  static constexpr Values<4> v{"denied", "too_many_arguments", "request_too_big", "value_too_big"};
  return v;
}
std::span<const std::string_view> auth_failure_values() {
  static constexpr Values<2> v{"wrong_password", "rate_limited"};
  return v;
}
std::span<const std::string_view> collection_values() {
  static constexpr Values<5> v{"list", "set", "zset", "hash", "stream"};
  return v;
}
std::span<const std::string_view> rank_values() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> n;
    for (int i = 1; i <= 100; ++i) n.push_back(std::to_string(i));  // hot_keys.top_n <= 100
    return n;
  }();
  static const std::vector<std::string_view> v(names.begin(), names.end());
  return v;
}
std::span<const std::string_view> hot_key_values() {
  static constexpr Values<1> v{"<key>"};
  return v;
}
std::span<const std::string_view> version_values() {
  static constexpr Values<1> v{RESPGUARD_VERSION};
  return v;
}
std::span<const std::string_view> sha_values() {
  static constexpr Values<1> v{RESPGUARD_GIT_SHA};
  return v;
}

const std::vector<double> kLatencyBuckets = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005,
                                             0.01,   0.025,   0.05,   0.1,   0.25,   0.5,
                                             1,      2.5,     5,      10};

std::vector<MetricDef> make_defs() {
  using T = MetricType;
  using M = Metric;
  const LabelDef command{"command", command_values};
  std::vector<MetricDef> defs = {
      {M::BuildInfo,
       "respguard_build_info",
       T::Gauge,
       "Always 1; the labels say which build is running.",
       {{"version", version_values}, {"git_sha", sha_values}}},
      {M::ClientConnections, "respguard_client_connections", T::Gauge,
       "Client connections open now."},
      {M::ClientConnectionsAccepted, "respguard_client_connections_accepted_total", T::Counter,
       "Client connections accepted."},
      {M::ClientConnectionsRejected,
       "respguard_client_connections_rejected_total",
       T::Counter,
       "Client connections refused at accept, by reason.",
       {{"reason", reject_values}}},
      {M::ClientConnectionsClosed,
       "respguard_client_connections_closed_total",
       T::Counter,
       "Client connections closed, by reason.",
       {{"reason", close_values}}},
      {M::Commands,
       "respguard_commands_total",
       T::Counter,
       "Commands answered, by command and result (error: an error reply, from Redis or "
       "respguard).",
       {command, {"result", result_values}},
       {},
       true},
      {M::RequestDuration,
       "respguard_request_duration_seconds",
       T::Histogram,
       "Time from reading a command to its reply being ready for the client (proxy total).",
       {},
       kLatencyBuckets},
      {M::ClientBytesReceived, "respguard_client_received_bytes_total", T::Counter,
       "Bytes read from clients."},
      {M::ClientBytesSent, "respguard_client_sent_bytes_total", T::Counter,
       "Bytes written to clients."},
      {M::ProtocolErrors, "respguard_protocol_errors_total", T::Counter,
       "Malformed requests (the client got -ERR Protocol error and was disconnected)."},
      {M::TlsHandshakeFailures,
       "respguard_tls_handshake_failures_total",
       T::Counter,
       "TLS handshakes that failed, by side (client: on the listener, the connection is closed; "
       "upstream: the connection retries with backoff) and reason (timeout: not done within 10 "
       "s; certificate: missing, unknown or rejected; protocol: not TLS, or a version or cipher "
       "refused; closed: the peer hung up; other).",
       {{"side", tls_side_values}, {"reason", tls_failure_values}}},
      {M::UpstreamConnections,
       "respguard_upstream_connections",
       T::Gauge,
       "Upstream connections (shared and dedicated) by state.",
       {{"state", state_values}}},
      {M::UpstreamRequestDuration,
       "respguard_upstream_request_duration_seconds",
       T::Histogram,
       "Time from queueing a request for the upstream to its reply.",
       {},
       kLatencyBuckets},
      {M::UpstreamReconnects, "respguard_upstream_reconnects_total", T::Counter,
       "Reconnection attempts of shared upstream connections after a failure."},
      {M::UpstreamTimeouts, "respguard_upstream_timeouts_total", T::Counter,
       "Upstream requests that timed out (the connection is then reset)."},
      {M::UpstreamErrors,
       "respguard_upstream_errors_total",
       T::Counter,
       "Upstream connection failures by kind.",
       {{"kind", upstream_error_values}}},
      {M::PinnedConnections, "respguard_pinned_connections", T::Gauge,
       "Dedicated upstream connections held for MULTI, WATCH, SUBSCRIBE, blocking commands "
       "(including idle ones kept for reuse)."},
      {M::PinnedRejected, "respguard_pinned_rejected_total", T::Counter,
       "Commands refused because server.max_pinned_connections were in use."},
      {M::ConfigReloads,
       "respguard_config_reloads_total",
       T::Counter,
       "Configuration reloads by result.",
       {{"result", reload_values}}},
      // Policies (docs/policies.md).
      {M::TtlJitterApplied, "respguard_ttl_jitter_applied_total", T::Counter,
       "Writes whose TTL was jittered (or given the rule's default_ttl)."},
      {M::CoalescedRequests, "respguard_coalesced_requests_total", T::Counter,
       "GETs that joined another client's in-flight GET of the same key instead of going "
       "upstream."},
      {M::NegativeCacheHits, "respguard_negative_cache_hits_total", T::Counter,
       "GET/EXISTS answered from the negative cache (the key was recently absent)."},
      {M::NegativeCacheEntries, "respguard_negative_cache_entries", T::Gauge,
       "Keys remembered as absent now."},
      {M::NegativeCacheEvictions, "respguard_negative_cache_evictions_total", T::Counter,
       "Negative-cache entries evicted to stay within policy_limits.negative_cache_max_entries."},
      {M::LeasesGranted, "respguard_leases_granted_total", T::Counter,
       "Miss leases granted: a client that missed was told to load the key."},
      {M::LeaseWaits, "respguard_lease_waits_total", T::Counter,
       "GETs that waited for a lease holder's SET instead of missing."},
      {M::LeaseWaitOutcomes,
       "respguard_lease_wait_outcomes_total",
       T::Counter,
       "How lease waits ended: the holder's value, timeout (nil), or promoted to holder (nil).",
       {{"outcome", lease_outcome_values}}},
      // Protection (docs/operations.md).
      {M::RateLimited,
       "respguard_rate_limited_total",
       T::Counter,
       "Commands over their client's rate limit: rejected with an error, or delayed (up to "
       "rate_limit.max_delay).",
       {{"action", rate_action_values}}},
      {M::RateLimitIdentities, "respguard_rate_limit_identities", T::Gauge,
       "Client identities with a rate-limit bucket now."},
      {M::BreakerState, "respguard_breaker_state", T::Gauge,
       "The upstream circuit breaker's state: 0 closed, 1 open, 2 half-open."},
      {M::BreakerTransitions,
       "respguard_breaker_transitions_total",
       T::Counter,
       "Circuit breaker state changes, by the state entered.",
       {{"state", breaker_state_values}}},
      {M::BreakerFailures,
       "respguard_breaker_failures_total",
       T::Counter,
       "Upstream failures fed to the circuit breaker: connect errors, timeouts, lost "
       "connections, and LOADING/BUSY/MASTERDOWN/TRYAGAIN-style replies.",
       {{"kind", breaker_failure_values}}},
      {M::BreakerRejected, "respguard_breaker_rejected_total", T::Counter,
       "Commands answered at once with \"circuit open\" instead of going upstream."},
      {M::HealthChecks,
       "respguard_health_checks_total",
       T::Counter,
       "Active health checks (PING) of the upstream, by result.",
       {{"result", health_result_values}}},
      {M::UpstreamHealthy, "respguard_upstream_healthy", T::Gauge,
       "1 while the active health check counts the upstream up (rise/fall), else 0."},
      // Bloom pre-checks and the coherence channel (docs/policies.md).
      {M::BloomChecks,
       "respguard_bloom_checks_total",
       T::Counter,
       "GET/EXISTS/MGET keys checked by a Bloom filter: rejected (answered locally), passed "
       "(sent to Redis), or untrusted (no warm-up has made the filter authoritative since the "
       "coherence channel came up: sent to Redis).",
       {{"result", bloom_result_values}}},
      {M::BloomFalsePositives, "respguard_bloom_false_positives_total", T::Counter,
       "Keys a keyspace Bloom filter passed and Redis answered nil: the measured false "
       "positives (with deleted keys not yet shed by a rebuild). Divided by "
       "false_positives + checks{result=\"rejected\"}: the measured rate."},
      {M::BloomFillRatio, "respguard_bloom_fill_ratio", T::Gauge,
       "Set bits / all bits of the fullest Bloom filter (sampled every 5 s)."},
      {M::BloomFalsePositiveRate, "respguard_bloom_false_positive_rate_estimate", T::Gauge,
       "The false-positive rate a random absent key sees now, from the filter's fill: the "
       "highest of all filters (sampled every 5 s)."},
      {M::BloomMemory, "respguard_bloom_memory_bytes", T::Gauge,
       "Bytes of all Bloom filters' bit arrays (both filters while one is rebuilt)."},
      {M::BloomUntrusted, "respguard_bloom_filters_untrusted", T::Gauge,
       "Bloom filters that answer nothing locally now: warming up, reloading their set, or "
       "waiting for the coherence channel."},
      {M::BloomPasses,
       "respguard_bloom_passes_total",
       T::Counter,
       "Bloom filter scans (SCAN/SSCAN) finished: warm-up (after the channel came up, or a "
       "set's reload), rebuild (to shed deleted keys), resize (past capacity), or aborted.",
       {{"kind", bloom_pass_values}}},
      {M::CoherenceState, "respguard_coherence_channel_state", T::Gauge,
       "The coherence channel: 1 up, 0 down (connecting or lost: local state is not trusted), "
       "2 tracking refused by Redis (negative cache bounded by its ttl, Bloom filters answer "
       "nothing), 3 not used (no rule keeps local state, or coherence.enabled is false)."},
      {M::CoherenceLosses, "respguard_coherence_channel_losses_total", T::Counter,
       "Times the coherence channel went down after being up."},
      {M::CoherenceInvalidations,
       "respguard_coherence_invalidations_total",
       T::Counter,
       "Invalidations received: keys modified by any client, and flushes (FLUSHALL/FLUSHDB).",
       {{"kind", invalidation_values}}},
      // Command guard (docs/security.md).
      {M::GuardRefused,
       "respguard_guard_refused_total",
       T::Counter,
       "Commands the command guard refused, by reason: a denied command (guard.profile, "
       "guard.deny), too many arguments, a request or a value over its size limit.",
       {{"reason", guard_refusal_values}}},
      {M::GuardBigValues, "respguard_guard_big_values_total", T::Counter,
       "Writes let through with a value over guard.big_value_bytes (big keys in the making)."},
      // Client authentication (docs/security.md).
      {M::AuthFailures,
       "respguard_auth_failures_total",
       T::Counter,
       "Failed client AUTH (and HELLO ... AUTH) attempts against auth.users: a wrong user or "
       "password, or refused unchecked over auth.max_failures_per_second.",
       {{"reason", auth_failure_values}}},
      // Command guard: collections and hot keys made visible (docs/security.md).
      {M::GuardBigCollections,
       "respguard_guard_big_collections_total",
       T::Counter,
       "Writes after which a collection held more than guard.big_collection_elements elements "
       "(the list length in an LPUSH/RPUSH/LINSERT reply, or a sampled SCARD/ZCARD/HLEN/XLEN "
       "after SADD/ZADD/HSET/XADD), by type.",
       {{"type", collection_values}}},
      {M::GuardSizeProbes, "respguard_guard_size_probes_total", T::Counter,
       "SCARD/ZCARD/HLEN/XLEN the proxy sent itself after a sampled SADD/ZADD/HSET/XADD to read "
       "the collection's size (guard.big_collection_elements, 1 write in "
       "guard.collection_probe_every)."},
      {M::HotKeyRequests,
       "respguard_hot_key_requests_per_second",
       T::Gauge,
       "The hot keys: estimated requests per second of the hottest keys over the last "
       "hot_keys.report_interval (sampled, summed over workers), by rank. At most hot_keys.top_n "
       "series; a key leaving the top goes with it.",
       {{"rank", rank_values, "1 to hot_keys.top_n"},
        {"key", hot_key_values, "the key, its first 128 bytes"}},
       {},
       /*sparse=*/true,
       /*dynamic=*/true},
  };
  for (std::size_t i = 0; i < defs.size(); ++i) {
    if (static_cast<std::size_t>(defs[i].id) != i) std::abort();  // table out of enum order
  }
  if (defs.size() != static_cast<std::size_t>(Metric::kCount)) std::abort();
  return defs;
}

std::size_t series_count(const MetricDef& def) {
  if (def.dynamic) return 0;  // no cells: the series sampler produces them
  std::size_t n = 1;
  for (const LabelDef& l : def.labels) n *= l.values().size();
  return n;
}

std::size_t cells_per_series(const MetricDef& def) {
  // Histogram: one count per bucket, one for +Inf, one sum in nanoseconds.
  return def.type == MetricType::Histogram ? def.buckets.size() + 2 : 1;
}

std::string_view type_name(MetricType t) {
  switch (t) {
    case MetricType::Counter:
      return "counter";
    case MetricType::Gauge:
      return "gauge";
    case MetricType::Histogram:
      return "histogram";
  }
  return "untyped";
}

}  // namespace

const std::vector<MetricDef>& metric_defs() {
  static const std::vector<MetricDef> defs = make_defs();
  return defs;
}

std::string metrics_markdown() {
  std::string out = "| name | type | labels | description |\n|---|---|---|---|\n";
  for (const MetricDef& def : metric_defs()) {
    std::string labels;
    for (const LabelDef& l : def.labels) {
      if (!labels.empty()) labels += ", ";
      labels += "`" + std::string(l.name) + "`";
      auto values = l.values();
      if (!l.about.empty()) {
        labels += " (" + std::string(l.about) + ")";
      } else if (l.name == "command") {
        labels += " (Redis command name or `other`)";
      } else if (l.name != "version" && l.name != "git_sha") {
        labels += " (";
        for (std::size_t i = 0; i < values.size(); ++i) {
          labels += (i ? ", " : "") + std::string(values[i]);
        }
        labels += ")";
      }
    }
    out += "| `" + std::string(def.name) + "` | " + std::string(type_name(def.type)) + " | " +
           labels + " | " + std::string(def.help) + " |\n";
  }
  return out;
}

std::size_t series_index(Metric m, std::size_t first, std::size_t second) {
  const MetricDef& def = metric_defs()[static_cast<std::size_t>(m)];
  return first * def.labels[1].values().size() + second;
}

Shard::Shard() {
  std::size_t total = 0;
  for (const MetricDef& def : metric_defs()) {
    offsets_.push_back(total);
    total += series_count(def) * cells_per_series(def);
    // Bounds in integer nanoseconds: observe() then compares integers, no double conversion.
    std::vector<std::int64_t> bounds;
    for (double b : def.buckets) bounds.push_back(static_cast<std::int64_t>(b * 1e9));
    bucket_ns_.push_back(std::move(bounds));
  }
  cells_.reset(new std::atomic<std::uint64_t>[total]);
  for (std::size_t i = 0; i < total; ++i) cells_[i].store(0, std::memory_order_relaxed);
}

void Shard::observe(Metric m, std::chrono::nanoseconds d, std::size_t series) {
  const auto id = static_cast<std::size_t>(m);
  const std::vector<std::int64_t>& b = bucket_ns_[id];
  const std::size_t base = offsets_[id] + series * (b.size() + 2);
  const std::int64_t ns = std::max<std::int64_t>(0, d.count());
  // Most requests land in the first few buckets: a forward scan beats a binary search.
  std::size_t bucket = 0;
  while (bucket < b.size() && ns > b[bucket]) ++bucket;
  add(base + bucket, 1);
  add(base + b.size() + 1, static_cast<std::uint64_t>(ns));
}

Registry::Registry(std::size_t shards)
    : samplers_(static_cast<std::size_t>(Metric::kCount)),
      series_samplers_(static_cast<std::size_t>(Metric::kCount)) {
  for (std::size_t i = 0; i < shards; ++i) shards_.push_back(std::make_unique<Shard>());
  shards_[0]->gauge_add(Metric::BuildInfo, 1);
}

void Registry::set_sampler(Metric m, std::function<double()> fn) {
  samplers_[static_cast<std::size_t>(m)] = std::move(fn);
}

void Registry::set_series_sampler(Metric m, std::function<std::vector<DynamicSample>()> fn) {
  series_samplers_[static_cast<std::size_t>(m)] = std::move(fn);
}

namespace {
// Sum of one series over some shards. Gauges are kept as wrapping deltas per shard; their sum
// is the signed value.
double sum_series(std::span<const std::unique_ptr<Shard>> shards, Metric m, std::size_t series) {
  const MetricDef& def = metric_defs()[static_cast<std::size_t>(m)];
  const std::size_t per = cells_per_series(def);
  const std::size_t cells = def.type == MetricType::Histogram ? def.buckets.size() + 1 : 1;
  std::uint64_t sum = 0;
  for (const auto& shard : shards) {
    for (std::size_t c = 0; c < cells; ++c) sum += shard->read(shard->offset(m) + series * per + c);
  }
  if (def.type == MetricType::Gauge) return static_cast<double>(static_cast<std::int64_t>(sum));
  return static_cast<double>(sum);
}
}  // namespace

double Registry::value(Metric m, std::size_t series) const {
  const std::size_t id = static_cast<std::size_t>(m);
  if (samplers_[id]) return samplers_[id]();
  return sum_series(shards_, m, series);
}

double Registry::shard_value(std::size_t shard, Metric m, std::size_t series) const {
  return sum_series(std::span(shards_).subspan(shard, 1), m, series);
}

std::string Registry::render() const {
  std::vector<prometheus::MetricFamily> families;
  for (const MetricDef& def : metric_defs()) {
    prometheus::MetricFamily family;
    family.name = std::string(def.name);
    family.help = std::string(def.help);
    family.type = def.type == MetricType::Counter ? prometheus::MetricType::Counter
                  : def.type == MetricType::Gauge ? prometheus::MetricType::Gauge
                                                  : prometheus::MetricType::Histogram;
    if (const auto& sampler = series_samplers_[static_cast<std::size_t>(def.id)];
        def.dynamic && sampler) {
      for (DynamicSample& sample : sampler()) {
        prometheus::ClientMetric metric;
        for (std::size_t l = 0; l < def.labels.size() && l < sample.labels.size(); ++l) {
          metric.label.push_back({std::string(def.labels[l].name), std::move(sample.labels[l])});
        }
        (def.type == MetricType::Counter ? metric.counter.value : metric.gauge.value) =
            sample.value;
        family.metric.push_back(std::move(metric));
      }
    }
    const std::size_t series = series_count(def);
    const std::size_t per = cells_per_series(def);
    for (std::size_t s = 0; s < series; ++s) {
      prometheus::ClientMetric metric;
      // Labels: decompose the row-major series index.
      std::size_t rest = s;
      for (std::size_t l = def.labels.size(); l-- > 0;) {
        auto values = def.labels[l].values();
        metric.label.insert(metric.label.begin(), {std::string(def.labels[l].name),
                                                   std::string(values[rest % values.size()])});
        rest /= values.size();
      }
      if (def.type == MetricType::Histogram) {
        std::uint64_t cumulative = 0;
        std::uint64_t sum_ns = 0;
        std::vector<std::uint64_t> counts(def.buckets.size() + 1, 0);
        for (const auto& shard : shards_) {
          const std::size_t base = shard->offset(def.id) + s * per;
          for (std::size_t b = 0; b < counts.size(); ++b) counts[b] += shard->read(base + b);
          sum_ns += shard->read(base + counts.size());
        }
        for (std::size_t b = 0; b < counts.size(); ++b) {
          cumulative += counts[b];
          metric.histogram.bucket.push_back(
              {cumulative,
               b < def.buckets.size() ? def.buckets[b] : std::numeric_limits<double>::infinity()});
        }
        metric.histogram.sample_count = cumulative;
        metric.histogram.sample_sum = static_cast<double>(sum_ns) / 1e9;
      } else {
        const double v = value(def.id, s);
        if (def.sparse && v == 0) continue;
        (def.type == MetricType::Counter ? metric.counter.value : metric.gauge.value) = v;
      }
      family.metric.push_back(std::move(metric));
    }
    families.push_back(std::move(family));
  }
  std::ostringstream out;
  prometheus::TextSerializer().Serialize(out, families);
  return out.str();
}

}  // namespace respguard::observability
