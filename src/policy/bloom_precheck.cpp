#include "respguard/policy/bloom_precheck.hpp"

#include <algorithm>
#include <cmath>

namespace respguard::policy {

BloomPrecheck::BloomPrecheck(const config::BloomConfig& config) : config_(config) {
  if (set_source()) {
    const std::size_t at = config_.id.find("{id}");
    if (at != std::string::npos) {
      id_prefix_ = config_.id.substr(0, at);
      id_suffix_ = config_.id.substr(at + 4);
    }
  }
  owned_current_ =
      std::make_unique<BloomFilter>(config_.expected_keys, config_.false_positive_rate);
  current_.store(owned_current_.get());
}

BloomPrecheck::~BloomPrecheck() = default;

std::optional<std::string_view> BloomPrecheck::item_of(std::string_view key) const {
  if (!set_source()) return key;
  if (key.size() < id_prefix_.size() + id_suffix_.size() || !key.starts_with(id_prefix_) ||
      !key.ends_with(id_suffix_)) {
    return std::nullopt;
  }
  return key.substr(id_prefix_.size(), key.size() - id_prefix_.size() - id_suffix_.size());
}

BloomPrecheck::Verdict BloomPrecheck::check(std::string_view key, std::uint64_t epoch) const {
  const std::optional<std::string_view> item = item_of(key);
  if (!item) return Verdict::NotChecked;
  if (!trusted(epoch)) return Verdict::Untrusted;
  return current_.load(std::memory_order_acquire)->may_contain(hash(*item)) ? Verdict::MayExist
                                                                            : Verdict::Absent;
}

void BloomPrecheck::add_hash(std::uint64_t h) {
  // The fresh filter first, then the current one: an add that finds no fresh filter either
  // ran before the pass began (the pass's scan or the channel brings the item) or after the
  // fresh filter became the current one (it reaches it here).
  if (BloomFilter* next = next_.load()) next->add(h);
  current_.load()->add(h);
}

void BloomPrecheck::set_changed() {
  changes_.fetch_add(1);
  trusted_epoch_.store(0);
}

BloomPrecheck::Pass BloomPrecheck::begin_pass(bool fresh, std::uint64_t epoch,
                                              std::uint64_t capacity) {
  Pass pass;
  pass.fresh = fresh;
  pass.epoch = epoch;
  pass.changes = changes_.load();
  if (fresh) {
    owned_next_ = std::make_unique<BloomFilter>(std::max(config_.expected_keys, capacity),
                                                config_.false_positive_rate);
    next_.store(owned_next_.get());
  }
  return pass;
}

void BloomPrecheck::add_scanned(Pass& pass, std::string_view item) {
  ++pass.scanned;
  const std::uint64_t h = hash(item);
  if (pass.fresh) {
    owned_next_->add(h);
  } else {
    current_.load()->add(h);
  }
}

BloomPrecheck::PassEnd BloomPrecheck::end_pass(const Pass& pass, std::uint64_t epoch_now) {
  PassEnd end;
  if (pass.fresh && owned_next_) {
    current_.store(owned_next_.get());
    next_.store(nullptr);
    end.retired = std::move(owned_current_);
    owned_current_ = std::move(owned_next_);
  }
  end.trusted = epoch_now != 0 && pass.epoch == epoch_now && changes_.load() == pass.changes;
  if (end.trusted) trusted_epoch_.store(epoch_now);
  return end;
}

std::unique_ptr<BloomFilter> BloomPrecheck::abort_pass(const Pass& pass) {
  if (!pass.fresh) return nullptr;
  next_.store(nullptr);
  return std::move(owned_next_);
}

std::size_t BloomPrecheck::memory_bytes() const {
  return owned_current_->memory_bytes() + (owned_next_ ? owned_next_->memory_bytes() : 0);
}

std::uint64_t BloomPrecheck::estimated_items() const {
  const BloomFilter& f = *current_.load();
  const double fill = std::min(f.approximate_fill_ratio(), 0.999999);
  const double m = static_cast<double>(f.bit_count());
  return static_cast<std::uint64_t>(-(m / f.hash_count()) * std::log1p(-fill));
}

}  // namespace respguard::policy
