// A client's pending output: its own bytes in one growing buffer plus reply buffers shared
// with other clients (a coalesced GET's reply goes to every waiter without a copy each).
// Written with one gather write; while a write is in flight, new output collects in the
// other half (double buffering), so replies that arrive meanwhile leave in the next write.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "respguard/common/asio.hpp"

namespace respguard::server {

using SharedBytes = std::shared_ptr<const std::string>;

class OutputQueue {
 public:
  void append(std::string_view bytes) {
    pending_.own.append(bytes);
    pending_bytes_ += bytes.size();
  }
  void append_shared(SharedBytes bytes) {
    pending_bytes_ += bytes->size();
    pending_.shared.emplace_back(pending_.own.size(), std::move(bytes));
  }

  bool empty() const { return pending_bytes_ == 0; }
  bool writing() const { return writing_bytes_ != 0; }
  std::size_t bytes() const { return pending_bytes_ + writing_bytes_; }

  // Moves the pending output into the write half; returns its buffers (valid until done()).
  const std::vector<asio::const_buffer>& begin_write() {
    std::swap(pending_, writing_);
    writing_bytes_ = pending_bytes_;
    pending_bytes_ = 0;
    buffers_.clear();
    std::size_t pos = 0;
    for (const auto& [offset, bytes] : writing_.shared) {
      if (offset > pos) buffers_.emplace_back(writing_.own.data() + pos, offset - pos);
      buffers_.emplace_back(bytes->data(), bytes->size());
      pos = offset;
    }
    if (writing_.own.size() > pos) {
      buffers_.emplace_back(writing_.own.data() + pos, writing_.own.size() - pos);
    }
    return buffers_;
  }
  void done() {
    writing_.own.clear();
    writing_.shared.clear();
    writing_bytes_ = 0;
    // A 64 MB reply should not pin 64 MB per connection forever.
    if (writing_.own.capacity() > kKeep) std::string().swap(writing_.own);
  }
  void clear() {
    pending_.own.clear();
    pending_.shared.clear();
    pending_bytes_ = 0;
  }

 private:
  static constexpr std::size_t kKeep = 1024 * 1024;
  struct Half {
    std::string own;
    std::vector<std::pair<std::size_t, SharedBytes>> shared;  // inserted before own[offset]
  };
  Half pending_;
  Half writing_;
  std::size_t pending_bytes_ = 0;
  std::size_t writing_bytes_ = 0;
  std::vector<asio::const_buffer> buffers_;
};

}  // namespace respguard::server
