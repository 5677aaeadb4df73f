#include "respguard/observability/metrics.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

namespace respguard::observability {
namespace {

using namespace std::chrono_literals;

// The repository root, as tests/unit/config/config_test.cpp finds it.
const std::filesystem::path kRepoRoot =
    (std::filesystem::path(__FILE__).parent_path() / "../../..").lexically_normal();

std::string read_text(const std::filesystem::path& path) {
  std::ifstream in(path);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

const MetricDef& def_of(Metric m) {
  return metric_defs()[static_cast<std::size_t>(m)];
}

std::size_t series_count(const MetricDef& def) {
  std::size_t n = 1;
  for (const LabelDef& l : def.labels) n *= l.values().size();
  return n;
}

bool ends_with(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

// The sample lines of an exposition: "name{labels}" -> value text.
std::map<std::string, std::string> samples(const std::string& exposition) {
  std::map<std::string, std::string> out;
  std::istringstream lines(exposition);
  for (std::string line; std::getline(lines, line);) {
    if (line.empty() || line[0] == '#') continue;
    const std::size_t sp = line.rfind(' ');
    if (sp == std::string::npos) {
      ADD_FAILURE() << "not a sample line: " << line;
      continue;
    }
    EXPECT_TRUE(out.emplace(line.substr(0, sp), line.substr(sp + 1)).second)
        << "duplicate series: " << line;
  }
  return out;
}

// Every line of the exposition, to test for exact lines.
std::set<std::string> lines_of(const std::string& exposition) {
  std::set<std::string> out;
  std::istringstream lines(exposition);
  for (std::string line; std::getline(lines, line);) out.insert(line);
  return out;
}

// Sample lines whose series name starts with `prefix` (e.g. "respguard_commands_total{").
std::vector<std::string> sample_lines(const std::string& exposition, std::string_view prefix) {
  std::vector<std::string> out;
  std::istringstream lines(exposition);
  for (std::string line; std::getline(lines, line);) {
    if (line.starts_with(prefix)) out.push_back(line);
  }
  return out;
}

// ------------------------------------------------------------------------------ the docs

// docs/metrics.md embeds metrics_markdown() verbatim, so the docs never drift from the table.
TEST(MetricsReference, DocsContainTheGeneratedTable) {
  const std::filesystem::path path = kRepoRoot / "docs/metrics.md";
  const std::string docs = read_text(path);
  const std::string table = metrics_markdown();
  EXPECT_NE(docs.find(table), std::string::npos)
      << path << " is out of date. Regenerate its table with\n"
      << "  respguard --print-metrics\n"
      << "and paste the output over the old table. Expected table:\n"
      << table;
}

TEST(MetricsReference, OneRowPerMetricInTableOrder) {
  const std::string table = metrics_markdown();
  EXPECT_TRUE(table.starts_with("| name | type | labels | description |\n|---|---|---|---|\n"));
  std::istringstream lines(table);
  std::vector<std::string> names;
  for (std::string line; std::getline(lines, line);) {
    if (!line.starts_with("| `")) continue;
    names.push_back(line.substr(3, line.find('`', 3) - 3));
  }
  ASSERT_EQ(names.size(), metric_defs().size());
  for (std::size_t i = 0; i < names.size(); ++i) EXPECT_EQ(names[i], metric_defs()[i].name);
  EXPECT_NE(table.find("| `respguard_commands_total` | counter | `command` (Redis command name or "
                       "`other`), `result` (ok, error) |"),
            std::string::npos);
  EXPECT_NE(table.find("| `respguard_upstream_connections` | gauge | `state` (connecting, ready, "
                       "backoff) |"),
            std::string::npos);
  EXPECT_NE(table.find("| `respguard_client_connections` | gauge |  | Client connections open "
                       "now. |\n"),
            std::string::npos);
}

// ------------------------------------------------------------------------------ naming rules

TEST(MetricNaming, TableOrderMatchesTheEnum) {
  const auto& defs = metric_defs();
  ASSERT_EQ(defs.size(), static_cast<std::size_t>(Metric::kCount));
  for (std::size_t i = 0; i < defs.size(); ++i) {
    EXPECT_EQ(static_cast<std::size_t>(defs[i].id), i) << defs[i].name;
  }
}

TEST(MetricNaming, NamesArePrefixedValidAndUnique) {
  const std::regex valid("[a-z_][a-z0-9_]*");
  std::set<std::string_view> seen;
  for (const MetricDef& def : metric_defs()) {
    const std::string name(def.name);
    EXPECT_TRUE(name.starts_with("respguard_")) << name;
    EXPECT_TRUE(std::regex_match(name, valid)) << name;
    EXPECT_TRUE(seen.insert(def.name).second) << "duplicate " << name;
    // Base units only.
    for (std::string_view unit : {"_ms", "_us", "_ns", "millisecond", "microsecond", "nanosecond",
                                  "_kb", "_mb", "kilobyte", "megabyte", "minute", "hour"}) {
      EXPECT_EQ(name.find(unit), std::string::npos) << name << " uses a non-base unit";
    }
    // Suffixes Prometheus derives itself, or reserves for histograms.
    for (std::string_view reserved : {"_bucket", "_count", "_sum", "_created"}) {
      EXPECT_FALSE(ends_with(name, reserved)) << name;
    }
    EXPECT_FALSE(def.help.empty()) << name;
    EXPECT_EQ(def.help.find('\n'), std::string_view::npos) << name;
    EXPECT_EQ(def.help.find('|'), std::string_view::npos) << name << ": breaks the Markdown table";
  }
}

TEST(MetricNaming, CountersAndOnlyCountersEndInTotal) {
  for (const MetricDef& def : metric_defs()) {
    EXPECT_EQ(def.type == MetricType::Counter, ends_with(def.name, "_total")) << def.name;
  }
}

TEST(MetricNaming, HistogramsAreInSecondsOrBytesWithIncreasingBuckets) {
  std::size_t histograms = 0;
  for (const MetricDef& def : metric_defs()) {
    if (def.type != MetricType::Histogram) {
      EXPECT_TRUE(def.buckets.empty()) << def.name;
      continue;
    }
    ++histograms;
    EXPECT_TRUE(ends_with(def.name, "_seconds") || ends_with(def.name, "_bytes")) << def.name;
    ASSERT_FALSE(def.buckets.empty()) << def.name;
    EXPECT_GT(def.buckets.front(), 0) << def.name;
    EXPECT_TRUE(std::isfinite(def.buckets.back())) << def.name << ": +Inf is implicit";
    for (std::size_t i = 1; i < def.buckets.size(); ++i) {
      EXPECT_LT(def.buckets[i - 1], def.buckets[i]) << def.name << " bucket " << i;
    }
  }
  EXPECT_GE(histograms, 2u);
}

TEST(MetricNaming, LabelsAreBoundedAndNeverIdentifyKeysOrClients) {
  const std::regex valid("[a-z_][a-z0-9_]*");
  const std::set<std::string_view> forbidden = {"key",  "keys", "addr", "address", "client",
                                                "ip",   "host", "port", "user",    "username",
                                                "name", "id",   "le",   "quantile"};
  for (const MetricDef& def : metric_defs()) {
    std::set<std::string_view> names;
    for (const LabelDef& label : def.labels) {
      const std::string name(label.name);
      EXPECT_TRUE(std::regex_match(name, valid)) << def.name << ": label " << name;
      EXPECT_FALSE(name.starts_with("__")) << def.name << ": label " << name;
      // The one exception: the hot-keys gauge names its keys, bounded by rank (at most
      // hot_keys.top_n series at a time, the table of ranks 100 long).
      const bool hot_key = def.id == Metric::HotKeyRequests && name == "key";
      EXPECT_EQ(forbidden.count(label.name), hot_key ? 1u : 0u) << def.name << ": label " << name;
      EXPECT_TRUE(names.insert(label.name).second) << def.name << ": label " << name << " twice";
      ASSERT_NE(label.values, nullptr) << def.name << ": label " << name;
      const auto values = label.values();
      EXPECT_FALSE(values.empty()) << def.name << ": label " << name << " has no values";
      EXPECT_LE(values.size(), 512u) << def.name << ": label " << name << " is not bounded";
      std::set<std::string_view> distinct;
      for (std::string_view v : values) {
        EXPECT_FALSE(v.empty()) << def.name << ": label " << name << " has an empty value";
        EXPECT_TRUE(distinct.insert(v).second) << def.name << ": label " << name << " value " << v;
      }
    }
    EXPECT_LE(series_count(def), 1024u) << def.name << " has too many series";
    // A dynamic metric (series made at scrape time) is bounded by a rank label instead.
    if (def.dynamic) {
      EXPECT_TRUE(def.sparse) << def.name;
      ASSERT_FALSE(def.labels.empty()) << def.name;
      EXPECT_EQ(def.labels[0].name, "rank") << def.name;
      EXPECT_LE(def.labels[0].values().size(), 100u) << def.name;
    }
  }
}

TEST(MetricRegistry, DynamicSeriesComeFromTheSeriesSamplerAtScrapeTime) {
  Registry registry(2);
  EXPECT_TRUE(sample_lines(registry.render(), "respguard_hot_key_requests_per_second{").empty());
  std::vector<Registry::DynamicSample> now = {{{"1", "user:\"7\""}, 250.5}, {{"2", "b"}, 3}};
  registry.set_series_sampler(Metric::HotKeyRequests, [&] { return now; });
  EXPECT_EQ(sample_lines(registry.render(), "respguard_hot_key_requests_per_second{"),
            (std::vector<std::string>{
                "respguard_hot_key_requests_per_second{rank=\"1\",key=\"user:\\\"7\\\"\"} 250.5",
                "respguard_hot_key_requests_per_second{rank=\"2\",key=\"b\"} 3"}));
  now.pop_back();  // a key that left the top leaves the exposition
  EXPECT_EQ(sample_lines(registry.render(), "respguard_hot_key_requests_per_second{").size(), 1u);
}

TEST(MetricNaming, CommandLabelIsTheCommandTablePlusOther) {
  const MetricDef& def = def_of(Metric::Commands);
  ASSERT_EQ(def.labels.size(), 2u);
  EXPECT_EQ(def.labels[0].name, "command");
  EXPECT_EQ(def.labels[1].name, "result");
  const auto commands = def.labels[0].values();
  const auto table = resp::all_commands();
  ASSERT_EQ(commands.size(), table.size() + 1);
  for (std::size_t i = 0; i < table.size(); ++i) {
    EXPECT_EQ(commands[i], table[i].name);
    EXPECT_EQ(table[i].index, i) << table[i].name;
  }
  EXPECT_EQ(commands.back(), "other");
  EXPECT_TRUE(def.sparse);
}

// ------------------------------------------------------------------------------ series index

TEST(MetricSeries, CommandLabelRoundTrip) {
  const resp::CommandInfo* get = resp::lookup_command("GET");
  ASSERT_NE(get, nullptr);
  EXPECT_EQ(def_of(Metric::Commands).labels[0].values()[command_label(get)], "get");
  EXPECT_EQ(command_label(nullptr), resp::all_commands().size());
  EXPECT_EQ(def_of(Metric::Commands).labels[0].values()[command_label(nullptr)], "other");

  const std::size_t get_error = series_index(Metric::Commands, command_label(get), 1);
  EXPECT_EQ(get_error, command_label(get) * 2 + 1);
  // The last series is other/error.
  EXPECT_EQ(series_index(Metric::Commands, command_label(nullptr), 1),
            series_count(def_of(Metric::Commands)) - 1);

  Registry registry(1);
  registry.shard(0).inc(Metric::Commands, get_error);
  registry.shard(0).inc(Metric::Commands, series_index(Metric::Commands, command_label(nullptr), 0),
                        2);
  registry.shard(0).inc(
      Metric::Commands,
      series_index(Metric::Commands, command_label(resp::lookup_command("set")), 0), 7);
  const auto lines = sample_lines(registry.render(), "respguard_commands_total{");
  EXPECT_EQ(lines, (std::vector<std::string>{
                       "respguard_commands_total{command=\"get\",result=\"error\"} 1",
                       "respguard_commands_total{command=\"set\",result=\"ok\"} 7",
                       "respguard_commands_total{command=\"other\",result=\"ok\"} 2",
                   }));
  EXPECT_EQ(registry.value(Metric::Commands, get_error), 1);
}

// ------------------------------------------------------------------------------ registry

TEST(MetricRegistry, CountersAreSummedAcrossShards) {
  Registry registry(3);
  ASSERT_EQ(registry.shard_count(), 3u);
  registry.shard(0).inc(Metric::ClientConnectionsAccepted);
  registry.shard(1).inc(Metric::ClientConnectionsAccepted, 0, 5);
  registry.shard(2).inc(Metric::ClientConnectionsAccepted, 0, 10);
  registry.shard(2).inc(Metric::ClientConnectionsAccepted);
  EXPECT_EQ(registry.value(Metric::ClientConnectionsAccepted), 17);

  const auto quit = static_cast<std::size_t>(CloseReason::Quit);
  const auto shutdown = static_cast<std::size_t>(CloseReason::Shutdown);
  registry.shard(0).inc(Metric::ClientConnectionsClosed, quit, 2);
  registry.shard(1).inc(Metric::ClientConnectionsClosed, quit, 3);
  registry.shard(1).inc(Metric::ClientConnectionsClosed, shutdown);
  EXPECT_EQ(registry.value(Metric::ClientConnectionsClosed, quit), 5);
  EXPECT_EQ(registry.value(Metric::ClientConnectionsClosed, shutdown), 1);
  EXPECT_EQ(registry.value(Metric::ClientConnectionsClosed,
                           static_cast<std::size_t>(CloseReason::Client)),
            0);

  const auto lines = lines_of(registry.render());
  EXPECT_TRUE(lines.count("respguard_client_connections_accepted_total 17"));
  EXPECT_TRUE(lines.count("respguard_client_connections_closed_total{reason=\"quit\"} 5"));
  EXPECT_TRUE(lines.count("respguard_client_connections_closed_total{reason=\"shutdown\"} 1"));
}

TEST(MetricRegistry, GaugesTakeNegativeDeltasAcrossShards) {
  Registry registry(2);
  const auto ready = static_cast<std::size_t>(UpstreamState::Ready);
  const auto backoff = static_cast<std::size_t>(UpstreamState::Backoff);
  // A connection counted up on one shard may be counted down on another's sum; the per-shard
  // cells wrap, their sum is the signed value.
  registry.shard(0).gauge_add(Metric::UpstreamConnections, 3, ready);
  registry.shard(1).gauge_add(Metric::UpstreamConnections, -1, ready);
  registry.shard(1).gauge_add(Metric::UpstreamConnections, 1, backoff);
  EXPECT_EQ(registry.value(Metric::UpstreamConnections, ready), 2);
  EXPECT_EQ(registry.value(Metric::UpstreamConnections, backoff), 1);

  registry.shard(1).gauge_add(Metric::UpstreamConnections, -4, ready);
  EXPECT_EQ(registry.value(Metric::UpstreamConnections, ready), -2);
  registry.shard(0).gauge_add(Metric::UpstreamConnections, 2, ready);
  EXPECT_EQ(registry.value(Metric::UpstreamConnections, ready), 0);
  registry.shard(1).gauge_add(Metric::UpstreamConnections, -1, backoff);
  registry.shard(0).gauge_add(Metric::UpstreamConnections, 1, ready);

  const auto lines = lines_of(registry.render());
  EXPECT_TRUE(lines.count("respguard_upstream_connections{state=\"ready\"} 1"));
  EXPECT_TRUE(lines.count("respguard_upstream_connections{state=\"backoff\"} 0"));
  EXPECT_TRUE(lines.count("respguard_upstream_connections{state=\"connecting\"} 0"));
}

TEST(MetricRegistry, SamplersAreReadAtScrapeTime) {
  Registry registry(1);
  int clients = 3;
  registry.set_sampler(Metric::ClientConnections, [&] { return static_cast<double>(clients); });
  EXPECT_EQ(registry.value(Metric::ClientConnections), 3);
  EXPECT_TRUE(lines_of(registry.render()).count("respguard_client_connections 3"));
  clients = 0;
  EXPECT_TRUE(lines_of(registry.render()).count("respguard_client_connections 0"));
}

TEST(MetricRegistry, HistogramBucketsAreCumulativeWithCountAndSum) {
  Registry registry(2);
  // 50 µs and exactly 100 µs fall in le="0.0001" (upper bounds are inclusive), 3 ms in
  // le="0.005", 20 s only in +Inf; spread over two shards.
  registry.shard(0).observe(Metric::RequestDuration, 50us);
  registry.shard(1).observe(Metric::RequestDuration, 100us);
  registry.shard(1).observe(Metric::RequestDuration, 3ms);
  registry.shard(0).observe(Metric::RequestDuration, 20s);

  EXPECT_EQ(registry.value(Metric::RequestDuration), 4);  // a histogram's value is its count

  const std::string text = registry.render();
  const auto s = samples(text);
  const std::map<std::string, std::string> expected_buckets = {
      {"0.0001", "2"}, {"0.00025", "2"}, {"0.0005", "2"}, {"0.001", "2"}, {"0.0025", "2"},
      {"0.005", "3"},  {"0.01", "3"},    {"0.025", "3"},  {"0.05", "3"},  {"0.1", "3"},
      {"0.25", "3"},   {"0.5", "3"},     {"1", "3"},      {"2.5", "3"},   {"5", "3"},
      {"10", "3"},     {"+Inf", "4"},
  };
  const auto& buckets = def_of(Metric::RequestDuration).buckets;
  ASSERT_EQ(buckets.size() + 1, expected_buckets.size());
  for (const auto& [le, count] : expected_buckets) {
    const std::string series = "respguard_request_duration_seconds_bucket{le=\"" + le + "\"}";
    ASSERT_TRUE(s.count(series)) << series << " missing in\n" << text;
    EXPECT_EQ(s.at(series), count) << series;
  }
  // The buckets appear in increasing order, counts never decreasing.
  const auto bucket_lines = sample_lines(text, "respguard_request_duration_seconds_bucket{");
  ASSERT_EQ(bucket_lines.size(), expected_buckets.size());
  double last = -1;
  for (const std::string& line : bucket_lines) {
    const double v = std::stod(line.substr(line.rfind(' ') + 1));
    EXPECT_GE(v, last) << line;
    last = v;
  }
  EXPECT_TRUE(
      bucket_lines.back().starts_with("respguard_request_duration_seconds_bucket{le=\"+Inf\"}"));
  EXPECT_EQ(s.at("respguard_request_duration_seconds_count"), "4");
  EXPECT_DOUBLE_EQ(std::stod(s.at("respguard_request_duration_seconds_sum")), 20.00315);

  // The other histogram saw nothing: all zeros, still exposed.
  EXPECT_EQ(s.at("respguard_upstream_request_duration_seconds_count"), "0");
  EXPECT_EQ(s.at("respguard_upstream_request_duration_seconds_sum"), "0");
  EXPECT_EQ(s.at("respguard_upstream_request_duration_seconds_bucket{le=\"+Inf\"}"), "0");
}

TEST(MetricRegistry, NegativeDurationsCountAsZero) {
  Registry registry(1);
  registry.shard(0).observe(Metric::UpstreamRequestDuration, -5ms);
  const auto s = samples(registry.render());
  EXPECT_EQ(s.at("respguard_upstream_request_duration_seconds_bucket{le=\"0.0001\"}"), "1");
  EXPECT_EQ(s.at("respguard_upstream_request_duration_seconds_count"), "1");
  EXPECT_EQ(s.at("respguard_upstream_request_duration_seconds_sum"), "0");
}

TEST(MetricRegistry, SparseMetricsOmitZeroSeriesOthersShowZeros) {
  Registry registry(2);
  const std::string text = registry.render();
  // Sparse: the family is declared, no series.
  EXPECT_TRUE(sample_lines(text, "respguard_commands_total").empty()) << text;
  EXPECT_TRUE(lines_of(text).count("# TYPE respguard_commands_total counter"));
  // Not sparse: every series of every label set, at zero.
  for (const MetricDef& def : metric_defs()) {
    if (def.sparse) continue;
    const std::string name(def.name);
    const std::size_t expected = def.type == MetricType::Histogram
                                     ? series_count(def) * (def.buckets.size() + 3)
                                     : series_count(def);
    const auto lines = sample_lines(text, name + (def.type == MetricType::Histogram ? "_" : ""));
    std::size_t exact = 0;
    for (const std::string& line : lines) {
      const std::string series = line.substr(0, line.rfind(' '));
      if (def.type == MetricType::Histogram || series == name || series.starts_with(name + "{")) {
        ++exact;
        if (def.id != Metric::BuildInfo) {
          EXPECT_TRUE(line.ends_with(" 0")) << line;
        }
      }
    }
    EXPECT_EQ(exact, expected) << name;
  }
  const auto lines = lines_of(text);
  EXPECT_TRUE(lines.count("respguard_client_connections_rejected_total{reason=\"maxclients\"} 0"));
  EXPECT_TRUE(lines.count("respguard_upstream_errors_total{kind=\"handshake\"} 0"));
  EXPECT_TRUE(lines.count("respguard_protocol_errors_total 0"));
  EXPECT_TRUE(lines.count("respguard_config_reloads_total{result=\"failure\"} 0"));

  // One non-zero series of a sparse metric appears alone.
  registry.shard(1).inc(
      Metric::Commands,
      series_index(Metric::Commands, command_label(resp::lookup_command("ping")), 0));
  EXPECT_EQ(
      sample_lines(registry.render(), "respguard_commands_total"),
      (std::vector<std::string>{"respguard_commands_total{command=\"ping\",result=\"ok\"} 1"}));
}

TEST(MetricRegistry, RenderHasHelpTypeAndBuildInfo) {
  Registry registry(2);
  registry.shard(0).inc(Metric::ProtocolErrors);
  registry.shard(1).inc(Metric::ClientBytesReceived, 0, 1234567);
  const std::string text = registry.render();
  const auto lines = lines_of(text);
  for (const MetricDef& def : metric_defs()) {
    const std::string name(def.name);
    const std::string type = def.type == MetricType::Counter ? "counter"
                             : def.type == MetricType::Gauge ? "gauge"
                                                             : "histogram";
    EXPECT_TRUE(lines.count("# HELP " + name + " " + std::string(def.help))) << name;
    EXPECT_TRUE(lines.count("# TYPE " + name + " " + type)) << name;
  }
  const MetricDef& build = def_of(Metric::BuildInfo);
  EXPECT_TRUE(lines.count("respguard_build_info{version=\"" +
                          std::string(build.labels[0].values()[0]) + "\",git_sha=\"" +
                          std::string(build.labels[1].values()[0]) + "\"} 1"))
      << text;
  EXPECT_TRUE(lines.count("respguard_protocol_errors_total 1"));
  EXPECT_TRUE(lines.count("respguard_client_received_bytes_total 1234567"));
  // Families come in table order.
  std::size_t last = 0;
  for (const MetricDef& def : metric_defs()) {
    const std::size_t pos = text.find("# TYPE " + std::string(def.name) + " ");
    ASSERT_NE(pos, std::string::npos) << def.name;
    EXPECT_GT(pos + 1, last) << def.name;
    last = pos + 1;
  }
}

}  // namespace
}  // namespace respguard::observability

namespace respguard::observability {
namespace {
// ClientSession::record_command inlines the Commands series index as command * 2 + result.
TEST(MetricsTable, CommandsSeriesIndexIsCommandTimesTwoPlusResult) {
  for (std::size_t c : {std::size_t{0}, std::size_t{7}, command_label(nullptr)}) {
    EXPECT_EQ(series_index(Metric::Commands, c, 0), c * 2);
    EXPECT_EQ(series_index(Metric::Commands, c, 1), c * 2 + 1);
  }
}
}  // namespace
}  // namespace respguard::observability
