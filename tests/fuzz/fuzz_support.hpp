// Shared by the libFuzzer targets in tests/fuzz/. A failed check prints what broke and aborts,
// which libFuzzer reports as a crash (and saves the input); the corpus replay driver
// (replay_main.cpp) reports it as a failed test.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string_view>
#include <vector>

#define FUZZ_CHECK(cond)                                                                  \
  do {                                                                                    \
    if (!(cond)) {                                                                        \
      std::fprintf(stderr, "%s:%d: fuzz invariant violated: %s\n", __FILE__, __LINE__, #cond); \
      std::abort();                                                                       \
    }                                                                                     \
  } while (0)

namespace respguard::fuzz {

// A heap copy of exactly `bytes`, so that ASan flags any read past the end and any use of a
// view into a buffer that was replaced (parsers must keep offsets, never pointers).
class ExactBuffer {
 public:
  explicit ExactBuffer(std::string_view bytes)
      : size_(bytes.size()), data_(std::make_unique<char[]>(bytes.size())) {
    if (size_ != 0) std::memcpy(data_.get(), bytes.data(), size_);
  }
  std::string_view view() const { return {data_.get(), size_}; }

 private:
  std::size_t size_;
  std::unique_ptr<char[]> data_;
};

// Reads control bytes from the front of the input: how to split it, which limits to use.
class Control {
 public:
  Control(const std::uint8_t* data, std::size_t size) : data_(data), size_(size) {}
  std::uint8_t byte() {
    if (pos_ >= size_) return 0;
    return data_[pos_++];
  }
  // The input left after the control bytes taken so far.
  std::string_view rest() const {
    return {reinterpret_cast<const char*>(data_) + pos_, size_ - pos_};
  }

 private:
  const std::uint8_t* data_;
  std::size_t size_;
  std::size_t pos_ = 0;
};

// How a stream of `size` bytes arrives: the lengths of successive reads (all > 0, summing to
// `size`). One control byte picks the mode: 0-15 reads whose lengths come from the next
// control bytes (small and large ones), then the rest in one read; 16: byte by byte (the
// first 512 bytes, then the rest at once).
inline std::vector<std::size_t> read_plan(Control& control) {
  std::vector<std::size_t> lengths;
  const unsigned mode = control.byte() % 17;
  if (mode == 16) {
    lengths.assign(512, 1);
    return lengths;
  }
  for (unsigned i = 0; i < mode; ++i) {
    const std::uint8_t b = control.byte();
    lengths.push_back(b < 128 ? 1 + b % 8 : 1 + std::size_t{b - 128u} * 8);
  }
  return lengths;
}

// Applies a read plan to a stream: the end offsets of the reads, the last one = stream size.
inline std::vector<std::size_t> read_ends(const std::vector<std::size_t>& plan,
                                          std::size_t size) {
  std::vector<std::size_t> ends;
  std::size_t at = 0;
  for (std::size_t len : plan) {
    if (at >= size) break;
    at = std::min(size, at + len);
    ends.push_back(at);
  }
  if (at < size || ends.empty()) ends.push_back(size);
  return ends;
}

}  // namespace respguard::fuzz
