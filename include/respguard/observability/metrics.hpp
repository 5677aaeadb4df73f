// Metrics: declared once in a table (name, type, help, labels), from which the registry, the
// /metrics exposition, `respguard --print-metrics` and docs/metrics.md all come.
//
// Recording never takes a lock: every thread that records (each worker, and the main thread
// for the listener) owns a shard of plain cells that only it writes (relaxed load + store, no
// read-modify-write). A scrape sums the shards. Labels have bounded, declared value sets
// (a command name comes from the command table, anything else is "other"); never a key or
// a client address.
//
// To add a metric: one enum entry in Metric and one row in the table in metrics.cpp, in the
// same order. A policy records through the same WorkerMetrics its worker hands it.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "respguard/common/asio.hpp"
#include "respguard/resp/command_table.hpp"

namespace respguard::observability {

enum class MetricType : std::uint8_t { Counter, Gauge, Histogram };

enum class Metric : std::uint16_t {
  BuildInfo,
  ClientConnections,
  ClientConnectionsAccepted,
  ClientConnectionsRejected,
  ClientConnectionsClosed,
  Commands,
  RequestDuration,
  ClientBytesReceived,
  ClientBytesSent,
  ProtocolErrors,
  TlsHandshakeFailures,
  UpstreamConnections,
  UpstreamRequestDuration,
  UpstreamReconnects,
  UpstreamTimeouts,
  UpstreamErrors,
  PinnedConnections,
  PinnedRejected,
  ConfigReloads,
  TtlJitterApplied,
  CoalescedRequests,
  NegativeCacheHits,
  NegativeCacheEntries,
  NegativeCacheEvictions,
  LeasesGranted,
  LeaseWaits,
  LeaseWaitOutcomes,
  RateLimited,
  RateLimitIdentities,
  BreakerState,
  BreakerTransitions,
  BreakerFailures,
  BreakerRejected,
  HealthChecks,
  UpstreamHealthy,
  BloomChecks,
  BloomFalsePositives,
  BloomFillRatio,
  BloomFalsePositiveRate,
  BloomMemory,
  BloomUntrusted,
  BloomPasses,
  CoherenceState,
  CoherenceLosses,
  CoherenceInvalidations,
  GuardRefused,
  GuardBigValues,
  AuthFailures,
  GuardBigCollections,
  GuardSizeProbes,
  HotKeyRequests,
  kCount,
};

// Label value sets. Series of a metric are numbered by the row-major index over its labels.
enum class CommandResult : std::uint8_t { Ok, Error };
enum class RejectReason : std::uint8_t { MaxClients };
enum class CloseReason : std::uint8_t {
  Client,
  Quit,
  ProtocolError,
  IdleTimeout,
  OutputBufferLimit,
  QueryBufferLimit,
  Shutdown,
  UpstreamLost,
  TlsHandshake
};
// TLS handshakes that failed: on which side, and why (tls::FailureKind, in the same order).
enum class TlsSide : std::uint8_t { Client, Upstream };
enum class TlsFailure : std::uint8_t { Timeout, Certificate, Protocol, Closed, Other };
enum class UpstreamState : std::uint8_t { Connecting, Ready, Backoff };
enum class UpstreamError : std::uint8_t { Connect, Read, Write, Protocol, Timeout, Handshake };
enum class ReloadResult : std::uint8_t { Success, Failure };
enum class LeaseOutcome : std::uint8_t { Value, Timeout, Promoted };
enum class RateAction : std::uint8_t { Rejected, Delayed };
enum class BreakerFailure : std::uint8_t { Connect, Timeout, ConnectionLost, UnavailableReply };
enum class HealthResult : std::uint8_t { Ok, Failed };
enum class BloomResult : std::uint8_t { Rejected, Passed, Untrusted };
enum class BloomPass : std::uint8_t { Warmup, Rebuild, Resize, Aborted };
enum class Invalidation : std::uint8_t { Key, Flush };
enum class AuthFailure : std::uint8_t { WrongPassword, RateLimited };
enum class GuardRefusal : std::uint8_t { Denied, TooManyArguments, RequestTooBig, ValueTooBig };
enum class CollectionType : std::uint8_t { List, Set, Zset, Hash, Stream };

struct LabelDef {
  std::string_view name;
  std::span<const std::string_view> (*values)();  // the bounded set of values
  // For a label of a dynamic metric whose values are not known in advance (a hot key): what
  // they are, for the reference. values() then holds one placeholder.
  std::string_view about = {};
};

struct MetricDef {
  Metric id;
  std::string_view name;
  MetricType type;
  std::string_view help;
  std::vector<LabelDef> labels;
  std::vector<double> buckets;  // histograms: upper bounds in seconds
  bool sparse = false;          // expose only series that are non-zero (large label sets)
  // Series produced at scrape time by a series sampler (Registry::set_series_sampler), not
  // recorded in shards: the hot keys, at most hot_keys.top_n series at a time.
  bool dynamic = false;
};

// The table, indexed by Metric.
const std::vector<MetricDef>& metric_defs();

// Markdown reference of every metric (docs/metrics.md, --print-metrics).
std::string metrics_markdown();

// One thread's cells. Only the owning thread writes; scrapes read concurrently.
class Shard {
 public:
  Shard();
  void inc(Metric m, std::size_t series = 0, std::uint64_t n = 1) {
    add(offsets_[static_cast<std::size_t>(m)] + series, n);
  }
  void gauge_add(Metric m, std::int64_t delta, std::size_t series = 0) {
    add(offsets_[static_cast<std::size_t>(m)] + series, static_cast<std::uint64_t>(delta));
  }
  // Histogram: seconds as a duration.
  void observe(Metric m, std::chrono::nanoseconds d, std::size_t series = 0);

  std::uint64_t read(std::size_t cell) const {
    return cells_[cell].load(std::memory_order_relaxed);
  }
  std::size_t offset(Metric m) const { return offsets_[static_cast<std::size_t>(m)]; }

 private:
  void add(std::size_t cell, std::uint64_t n) {
    cells_[cell].store(cells_[cell].load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
  }
  std::unique_ptr<std::atomic<std::uint64_t>[]> cells_;
  std::vector<std::size_t> offsets_;
  std::vector<std::vector<std::int64_t>> bucket_ns_;  // histogram bounds by metric
};

// Series index for a metric with two labels: first * size(second) + second.
std::size_t series_index(Metric m, std::size_t first, std::size_t second);
// Index of a command for the "command" label ("other" when not in the table).
inline std::size_t command_label(const resp::CommandInfo* info) {
  return info ? info->index : resp::all_commands().size();
}

// All shards plus gauges sampled at scrape time.
class Registry {
 public:
  explicit Registry(std::size_t shards);
  Shard& shard(std::size_t i) { return *shards_[i]; }
  std::size_t shard_count() const { return shards_.size(); }
  // A gauge whose value is read at scrape time (e.g. current clients).
  void set_sampler(Metric m, std::function<double()> fn);
  // A dynamic metric's series, read at scrape time: label values in the table's label order.
  struct DynamicSample {
    std::vector<std::string> labels;
    double value = 0;
  };
  void set_series_sampler(Metric m, std::function<std::vector<DynamicSample>()> fn);
  // Sum over shards of one series (counters, gauges; histogram: its count).
  double value(Metric m, std::size_t series = 0) const;
  // One shard's part of that sum (e.g. a worker's ready upstream connections).
  double shard_value(std::size_t shard, Metric m, std::size_t series = 0) const;
  // The Prometheus text exposition (via prometheus-cpp's serializer).
  std::string render() const;

 private:
  std::vector<std::unique_ptr<Shard>> shards_;
  std::vector<std::function<double()>> samplers_;
  std::vector<std::function<std::vector<DynamicSample>()>> series_samplers_;
};

}  // namespace respguard::observability
