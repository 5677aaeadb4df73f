// Bloom pre-check of one rule (docs/policies.md, "Bloom pre-check"): which keys may exist, and
// whether that answer may be trusted right now. Pure: the glue runs the scans, feeds writes and
// invalidations, and names the coherence channel's current session (its epoch).
//
// Two sources, two meanings of an item in the filter:
//   keyspace — the key itself: keys that exist in Redis under the rule;
//   set      — the id part of a key ("product:{id}" -> "{id}"): the members of the Redis SET of
//              valid ids that the application keeps.
//
// Trust. The filter answers "absent" only for the epoch in which a full pass (SCAN of the
// keyspace, SSCAN of the set) ended with nothing making it stale meanwhile: the channel was up
// throughout (same epoch) and, for a set, no change of the set was reported after the pass
// began. Epoch 0 means "the channel is down": nothing is trusted.
//
// Passes. A warm-up pass adds what it scans to the current filter (a superset stays a
// superset). A fresh pass (rebuild: shed deleted keys, resize past capacity) fills a new
// filter that every add() also reaches while it runs, and replaces the current one at its
// end; the old one is handed back to be freed once no reader can hold it (the glue waits for
// every worker to pass an idle point).
//
// Thread safety: check() and add() from any thread; passes, set_changed() and the statistics
// from one control thread.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "respguard/config/config.hpp"
#include "respguard/policy/bloom_filter.hpp"

namespace respguard::policy {

class BloomPrecheck {
 public:
  enum class Verdict : std::uint8_t {
    Absent,      // certainly not there: answer locally
    MayExist,    // ask Redis
    Untrusted,   // no pass has made the filter authoritative in this epoch: ask Redis
    NotChecked,  // the key does not fit the rule's id pattern (source: set): ask Redis
  };

  explicit BloomPrecheck(const config::BloomConfig& config);
  ~BloomPrecheck();
  BloomPrecheck(const BloomPrecheck&) = delete;
  BloomPrecheck& operator=(const BloomPrecheck&) = delete;

  const config::BloomConfig& config() const { return config_; }
  bool set_source() const { return config_.source == config::BloomConfig::Source::Set; }

  // What a key stands for in the filter: the key (keyspace) or its id (set); nothing when the
  // key does not fit the id pattern.
  std::optional<std::string_view> item_of(std::string_view key) const;
  static std::uint64_t hash(std::string_view item) { return std::hash<std::string_view>{}(item); }

  Verdict check(std::string_view key, std::uint64_t epoch) const;
  bool trusted(std::uint64_t epoch) const {
    return epoch != 0 && trusted_epoch_.load(std::memory_order_acquire) == epoch;
  }

  // An item now present: a key written through the proxy or reported by the channel
  // (keyspace), an id SADDed through the proxy (set). Reaches a fresh pass's filter too.
  void add(std::string_view item) { add_hash(hash(item)); }
  void add_hash(std::uint64_t h);

  // Source set: the set changed in a way the proxy did not see item by item (the channel
  // reported it): not trusted until a pass that begins after this ends.
  void set_changed();
  // The channel's session ended: forget which epoch was trusted (the epoch check already
  // refuses; this keeps a later epoch from inheriting anything).
  void distrust() { trusted_epoch_.store(0, std::memory_order_release); }

  struct Pass {
    bool fresh = false;
    std::uint64_t epoch = 0;    // the channel's session when the pass began
    std::uint64_t changes = 0;  // set_changed() count when the pass began
    std::uint64_t scanned = 0;  // items the pass added
  };
  // fresh: fill a new filter for max(expected_keys, capacity) items; else add to the current.
  Pass begin_pass(bool fresh, std::uint64_t epoch, std::uint64_t capacity = 0);
  void add_scanned(Pass& pass, std::string_view item);
  struct PassEnd {
    bool trusted = false;                  // the filter is authoritative for epoch_now
    std::unique_ptr<BloomFilter> retired;  // the replaced filter, to free once unreachable
  };
  // The pass read everything. Trust follows the rules above; a fresh filter replaces the
  // current one (even when not trusted: it is no less complete than the old one).
  PassEnd end_pass(const Pass& pass, std::uint64_t epoch_now);
  // The pass could not finish (lost connection): a fresh filter is dropped, handed back.
  std::unique_ptr<BloomFilter> abort_pass(const Pass& pass);
  // Set source: changes were reported since the last trusted pass began (another pass is due).
  bool stale() const { return trusted_epoch_.load(std::memory_order_acquire) == 0; }

  // For metrics and the resize decision (control thread; one pass over the bits each).
  std::uint64_t capacity() const { return current_.load()->expected_keys(); }
  std::size_t memory_bytes() const;
  double fill_ratio() const { return current_.load()->approximate_fill_ratio(); }
  double estimated_false_positive_rate() const {
    return current_.load()->estimated_false_positive_rate();
  }
  // Distinct items the current filter holds, estimated from its fill: n = -(m/k) ln(1 - fill).
  std::uint64_t estimated_items() const;

 private:
  config::BloomConfig config_;
  std::string id_prefix_;  // source: set — the id pattern around "{id}"
  std::string id_suffix_;
  std::unique_ptr<BloomFilter> owned_current_;
  std::unique_ptr<BloomFilter> owned_next_;
  std::atomic<BloomFilter*> current_{nullptr};
  std::atomic<BloomFilter*> next_{nullptr};  // a fresh pass's filter while it runs
  std::atomic<std::uint64_t> trusted_epoch_{0};
  std::atomic<std::uint64_t> changes_{0};
};

}  // namespace respguard::policy
