#include "respguard/protection/hot_keys.hpp"

#include <algorithm>
#include <stdexcept>

namespace respguard::protection {
namespace {

bool hotter(const HotKey& a, const HotKey& b) {
  return a.count != b.count ? a.count > b.count : a.key < b.key;
}

std::vector<HotKey> highest(std::vector<HotKey> keys, std::size_t n) {
  n = std::min(n, keys.size());
  std::partial_sort(keys.begin(), keys.begin() + static_cast<std::ptrdiff_t>(n), keys.end(),
                    hotter);
  keys.resize(n);
  return keys;
}

}  // namespace

HotKeys::HotKeys(std::size_t capacity, std::size_t sample_every, std::uint64_t seed,
                 std::size_t max_key_bytes)
    : capacity_(capacity),
      sample_every_(std::max<std::size_t>(1, sample_every)),
      max_key_bytes_(max_key_bytes),
      rng_(seed ? seed : 0x9e3779b97f4a7c15ull) {
  if (capacity == 0 || capacity > UINT32_MAX) {
    throw std::invalid_argument("hot keys: capacity must be 1 to 2^32-1");
  }
  entries_.reserve(capacity_);
  heap_.reserve(capacity_);
  index_.reserve(capacity_);
  countdown_ = next_gap();
}

std::uint32_t HotKeys::next_gap() {
  if (sample_every_ == 1) return 1;
  // xorshift64*: the gap only has to be unpredictable to a client's pattern, not secret.
  rng_ ^= rng_ >> 12;
  rng_ ^= rng_ << 25;
  rng_ ^= rng_ >> 27;
  const std::uint64_t r = (rng_ * 0x2545f4914f6cdd1dull) >> 32;
  return static_cast<std::uint32_t>(1 + r % (2 * sample_every_ - 1));
}

void HotKeys::add(std::string_view key, std::uint64_t weight) {
  if (key.size() > max_key_bytes_) key = key.substr(0, max_key_bytes_);
  total_ += weight;
  if (auto it = index_.find(key); it != index_.end()) {
    entries_[it->second].count += weight;
    sift_down(entries_[it->second].heap_pos);  // a min-heap: a larger count moves down
    return;
  }
  if (entries_.size() < capacity_) {
    const auto e = static_cast<std::uint32_t>(entries_.size());
    entries_.push_back(Entry{std::string(key), weight, 0, 0});
    heap_.push_back(e);
    place(heap_.size() - 1, e);
    index_.emplace(entries_[e].key, e);
    sift_up(heap_.size() - 1);
    return;
  }
  // Full: the key takes over the smallest counter, inheriting its count as its error bound.
  const std::uint32_t e = heap_[0];
  Entry& victim = entries_[e];
  index_.erase(victim.key);
  victim.key.assign(key);
  victim.error = victim.count;
  victim.count += weight;
  index_.emplace(victim.key, e);
  sift_down(0);
}

void HotKeys::sift_down(std::size_t pos) {
  const std::uint32_t e = heap_[pos];
  const std::size_t n = heap_.size();
  for (;;) {
    std::size_t child = 2 * pos + 1;
    if (child >= n) break;
    if (child + 1 < n && less(heap_[child + 1], heap_[child])) ++child;
    if (!less(heap_[child], e)) break;
    place(pos, heap_[child]);
    pos = child;
  }
  place(pos, e);
}

void HotKeys::sift_up(std::size_t pos) {
  const std::uint32_t e = heap_[pos];
  while (pos > 0) {
    const std::size_t parent = (pos - 1) / 2;
    if (!less(e, heap_[parent])) break;
    place(pos, heap_[parent]);
    pos = parent;
  }
  place(pos, e);
}

std::vector<HotKey> HotKeys::top(std::size_t n) const {
  std::vector<HotKey> all;
  all.reserve(entries_.size());
  for (const Entry& e : entries_) all.push_back(HotKey{e.key, e.count, e.error});
  return highest(std::move(all), n);
}

std::vector<HotKey> HotKeys::take() {
  std::vector<HotKey> all;
  all.reserve(entries_.size());
  for (Entry& e : entries_) all.push_back(HotKey{std::move(e.key), e.count, e.error});
  clear();
  std::sort(all.begin(), all.end(), hotter);
  return all;
}

void HotKeys::clear() {
  index_.clear();  // before the keys it views go
  entries_.clear();
  heap_.clear();
  total_ = 0;
}

std::size_t HotKeys::memory_bytes() const {
  std::size_t bytes =
      entries_.capacity() * sizeof(Entry) + heap_.capacity() * sizeof(std::uint32_t);
  for (const Entry& e : entries_) {
    if (e.key.capacity() > std::string().capacity()) bytes += e.key.capacity() + 1;
  }
  // Buckets and one node (a string_view and an index, plus the node's next pointer and hash)
  // per key.
  bytes += index_.bucket_count() * sizeof(void*) +
           index_.size() *
               (sizeof(std::pair<const std::string_view, std::uint32_t>) + 2 * sizeof(void*));
  return bytes;
}

std::vector<HotKey> HotKeys::merge(std::span<const std::vector<HotKey>> lists, std::size_t n) {
  std::unordered_map<std::string_view, HotKey> sums;
  for (const std::vector<HotKey>& list : lists) {
    for (const HotKey& k : list) {
      auto [it, fresh] = sums.try_emplace(k.key, HotKey{k.key, 0, 0});
      it->second.count += k.count;
      it->second.error += k.error;
    }
  }
  std::vector<HotKey> all;
  all.reserve(sums.size());
  for (auto& [key, k] : sums) all.push_back(std::move(k));
  return highest(std::move(all), n);
}

}  // namespace respguard::protection
