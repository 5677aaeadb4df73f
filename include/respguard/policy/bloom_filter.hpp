// Bloom filter: "key K may exist" with no false negatives, shared by all workers without a
// lock. The data structure only; what fills it (SCAN, writes, the coherence channel) and when
// its answers are trusted live in the Bloom pre-check policy.
//
// Blocked layout: a key's bits all lie in one 512-bit block (one 64-byte cache line), so a
// lookup costs one cache miss however many hashes it uses. The price is a slightly higher
// false-positive rate than a classic filter of the same size (the keys do not spread evenly
// over the blocks), so the constructor sizes the filter with the blocked filter's own rate:
// about 3.5 % more bits than the classic optimum at 1 %, 8 % at 0.1 %, 15 % at 0.01 % and
// fast-growing below (35 % at 1e-6): the layout suits the rates of a pre-check, not 1e-9.
//
// Hashing: the caller passes the one 64-bit hash the request path computed for the key
// (HashedKey::hash). It is mixed first (splitmix64 finalizer), so a weak input hash does no
// harm; the mixed value picks the block and seeds a splitmix64 stream whose 9-bit fields
// place the k bits inside it (one extra mix per 7 bits). Double hashing (Kirsch-Mitzenmacher)
// was measured and dropped: inside a 512-bit block its patterns are arithmetic progressions
// that overlap far more than random sets, about 1.5x the rate at 0.1 %.
//
// Thread safety: add() and may_contain() from any number of threads at once. A key whose
// add() returned before a may_contain() started (in the happens-before sense: e.g. published
// through a release store the checker acquires) is always found. clear() is not atomic as a
// whole: an add() racing with it may be partly wiped, so callers that need a clean slate while
// writers run should build a new filter and swap it in.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>

namespace respguard::policy {

class BloomFilter {
 public:
  static constexpr std::size_t kBlockBits = 512;  // one 64-byte cache line
  static constexpr std::size_t kWordsPerBlock = kBlockBits / 64;

  // Sized for `expected_keys` keys (0 counts as 1) at `false_positive_rate` (in (0, 1);
  // anything else throws std::invalid_argument): the smallest whole number of blocks, and the
  // number of hashes, for which the blocked filter's expected rate at that load is at most
  // the requested one. Past expected_keys the rate rises; the filter never fails an add().
  BloomFilter(std::uint64_t expected_keys, double false_positive_rate);
  ~BloomFilter();
  BloomFilter(const BloomFilter&) = delete;
  BloomFilter& operator=(const BloomFilter&) = delete;

  void add(std::uint64_t hash);
  // False: the key was certainly never added (since the last clear()). True: probably added.
  bool may_contain(std::uint64_t hash) const;
  void clear();

  std::uint64_t bit_count() const { return static_cast<std::uint64_t>(blocks_) * kBlockBits; }
  unsigned hash_count() const { return hashes_; }
  std::size_t memory_bytes() const { return blocks_ * sizeof(Block); }  // the bit array
  std::uint64_t expected_keys() const { return expected_keys_; }
  double configured_false_positive_rate() const { return false_positive_rate_; }

  // Set bits / all bits: a popcount over every word (relaxed loads: safe while others add, a
  // moment's snapshot). A few ms per 12 MB: for a metrics scrape, not the hot path.
  double approximate_fill_ratio() const;
  // The false-positive rate a random absent key sees now: fill^k per block, averaged over the
  // blocks (one pass, like approximate_fill_ratio). The global fill^k would understate a
  // blocked filter's rate: fuller blocks weigh more in the mean of powers than in the fill.
  double estimated_false_positive_rate() const;

  // The classic (unblocked) optimum: m = -n ln p / (ln 2)^2 bits, rounded up.
  static std::uint64_t optimal_bit_count(std::uint64_t expected_keys, double false_positive_rate);
  // The expected false-positive rate of a blocked filter of `bits` bits (a multiple of
  // kBlockBits) with `hashes` hashes holding `keys` keys: block loads are Poisson, a block
  // holding j keys answers a false positive with probability (1 - (1 - 1/512)^(k j))^k.
  static double blocked_false_positive_rate(std::uint64_t keys, std::uint64_t bits,
                                            unsigned hashes);

 private:
  struct alignas(64) Block {
    std::atomic<std::uint64_t> words[kWordsPerBlock];
  };
  static_assert(sizeof(Block) == 64);

  std::uint64_t expected_keys_;
  double false_positive_rate_;
  std::size_t blocks_ = 0;
  unsigned hashes_ = 0;
  std::unique_ptr<Block[]> bits_;  // aligned new: each block is exactly one cache line
};

}  // namespace respguard::policy
