// A contiguous byte buffer for socket reads: read into the free tail, parse from the head.
// Memory is kept between messages; compaction moves only the unparsed remainder.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <memory>
#include <string_view>

namespace respguard {

class IoBuffer {
 public:
  explicit IoBuffer(std::size_t initial = 16 * 1024) : data_(new char[initial]), cap_(initial) {}

  std::string_view readable() const { return {data_.get() + head_, tail_ - head_}; }
  std::size_t size() const { return tail_ - head_; }
  bool empty() const { return head_ == tail_; }
  std::size_t capacity() const { return cap_; }

  void consume(std::size_t n) {
    head_ += n;
    if (head_ == tail_) head_ = tail_ = 0;
  }

  // Free space at the tail of at least `min_free` bytes, and room for the whole message when
  // the parser knows its size (`want_total`, counted from the head). Moves data only when
  // needed, so views into readable() are invalidated only by this call.
  char* prepare(std::size_t min_free, std::size_t want_total = 0) {
    std::size_t need = std::max(size() + min_free, want_total);
    if (cap_ - tail_ >= min_free && cap_ - head_ >= want_total) return data_.get() + tail_;
    if (need <= cap_ && head_ > 0) {
      std::memmove(data_.get(), data_.get() + head_, size());
    } else {
      std::size_t new_cap = cap_;
      while (new_cap < need) new_cap *= 2;
      std::unique_ptr<char[]> bigger(new char[new_cap]);
      std::memcpy(bigger.get(), data_.get() + head_, size());
      data_ = std::move(bigger);
      cap_ = new_cap;
    }
    tail_ -= head_;
    head_ = 0;
    return data_.get() + tail_;
  }
  std::size_t free_space() const { return cap_ - tail_; }
  void commit(std::size_t n) { tail_ += n; }

  // Returns memory after a burst (a 64 MB value) so idle connections stay small.
  void shrink_if_idle(std::size_t keep) {
    if (empty() && cap_ > keep) {
      data_.reset(new char[keep]);
      cap_ = keep;
      head_ = tail_ = 0;
    }
  }

 private:
  std::unique_ptr<char[]> data_;
  std::size_t cap_;
  std::size_t head_ = 0;
  std::size_t tail_ = 0;
};

}  // namespace respguard
