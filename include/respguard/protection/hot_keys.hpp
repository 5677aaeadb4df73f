// Hot keys (docs/security.md, "Command guard"): a bounded-memory top-k of key frequency. Pure:
// no Asio, no clock (the caller owns the window: it take()s the table once per report interval
// and divides by the interval), the random source of the sampling is a seed.
//
// Space-Saving (Metwally, Agrawal, El Abbadi 2005) with a fixed number of counters rather than
// a count-min sketch plus a heap: with `capacity` counters it finds every key whose frequency is
// above total/capacity, each count overestimates the truth by at most its `error` (and never
// underestimates), memory is exactly `capacity` keys, and there is one structure to merge and
// no second estimate to reconcile. A count-min sketch answers "how often is key K" for any K,
// which nothing here asks; it would still need the heap to know which keys to report.
//
// One tracker per worker, touched only by its thread: the request path pays one decrement
// (tick()) per command and a hash lookup for the one in `sample_every` that is counted.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace respguard::protection {

struct HotKey {
  std::string key;
  std::uint64_t count = 0;  // sampled occurrences (an overestimate by at most `error`)
  std::uint64_t error = 0;  // what the counter held when this key took it over
  bool operator==(const HotKey&) const = default;
};

class HotKeys {
 public:
  static constexpr std::size_t kDefaultMaxKeyBytes = 128;

  // capacity: counters kept (>= 1); sample_every: count one command in this many on average
  // (1: every one); keys longer than max_key_bytes are counted by their first max_key_bytes.
  HotKeys(std::size_t capacity, std::size_t sample_every, std::uint64_t seed,
          std::size_t max_key_bytes = kDefaultMaxKeyBytes);
  HotKeys(const HotKeys&) = delete;
  HotKeys& operator=(const HotKeys&) = delete;

  // The request path: true for the command to count. The gaps between counted commands are
  // random (uniform in [1, 2 * sample_every - 1]) so a client that repeats a pattern of
  // sample_every commands is not always sampled at the same place in it.
  bool tick() {
    if (--countdown_ != 0) return false;
    countdown_ = next_gap();
    return true;
  }
  void add(std::string_view key, std::uint64_t weight = 1);

  // The n keys with the highest counts, highest first (ties by key).
  std::vector<HotKey> top(std::size_t n) const;
  // top(capacity()) and an empty table: the caller's window ends here.
  std::vector<HotKey> take();
  void clear();

  std::size_t size() const { return entries_.size(); }
  std::size_t capacity() const { return capacity_; }
  std::size_t sample_every() const { return sample_every_; }
  std::uint64_t total() const { return total_; }  // weight added since the last clear()
  // Bytes held by the table (entries, key buffers, index), for tests of the bound.
  std::size_t memory_bytes() const;

  // Sums lists from several trackers (the workers') by key and returns the n highest. A key
  // missing from one list may have had up to that tracker's smallest count there: the sums are
  // estimates, exact for keys every tracker kept.
  static std::vector<HotKey> merge(std::span<const std::vector<HotKey>> lists, std::size_t n);

 private:
  struct Entry {
    std::string key;
    std::uint64_t count = 0;
    std::uint64_t error = 0;
    std::uint32_t heap_pos = 0;
  };
  std::uint32_t next_gap();
  bool less(std::uint32_t a, std::uint32_t b) const {
    return entries_[a].count < entries_[b].count;
  }
  void sift_down(std::size_t pos);
  void sift_up(std::size_t pos);
  void place(std::size_t pos, std::uint32_t entry) {
    heap_[pos] = entry;
    entries_[entry].heap_pos = static_cast<std::uint32_t>(pos);
  }

  const std::size_t capacity_;
  const std::size_t sample_every_;
  const std::size_t max_key_bytes_;
  std::uint64_t rng_;
  std::uint32_t countdown_ = 1;
  std::uint64_t total_ = 0;
  // entries_ is reserved to capacity_ at construction and never reallocates, so the index's
  // string_views into the entries' keys stay valid until the key itself is replaced.
  std::vector<Entry> entries_;
  std::vector<std::uint32_t> heap_;  // entry indices, a min-heap by count
  std::unordered_map<std::string_view, std::uint32_t> index_;
};

}  // namespace respguard::protection
