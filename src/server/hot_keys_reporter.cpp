#include "respguard/server/hot_keys_reporter.hpp"

#include <spdlog/spdlog.h>

#include <cstdio>

#include "respguard/server/worker.hpp"

namespace respguard::server {

std::string printable_key(std::string_view key) {
  std::string out;
  out.reserve(key.size());
  for (const char c : key) {
    const auto u = static_cast<unsigned char>(c);
    if (u >= 0x20 && u < 0x7f && c != '\\') {
      out.push_back(c);
    } else {
      char hex[5];
      std::snprintf(hex, sizeof hex, "\\x%02x", u);
      out.append(hex);
    }
  }
  return out;
}

HotKeysReporter::HotKeysReporter(asio::io_context& io, const config::HotKeysConfig& config,
                                 observability::Registry& metrics, std::vector<Worker*> workers)
    : io_(io), config_(config), workers_(std::move(workers)), timer_(io) {
  if (!config_.enabled) return;
  lists_.resize(workers_.size());
  metrics.set_series_sampler(observability::Metric::HotKeyRequests, [this] {
    std::vector<observability::Registry::DynamicSample> out;
    out.reserve(top_.size());
    for (std::size_t i = 0; i < top_.size(); ++i) {
      out.push_back({{std::to_string(i + 1), top_[i].key}, top_[i].per_second});
    }
    return out;
  });
  window_start_ = round_start_ = SteadyClock::now();
  schedule();
}

void HotKeysReporter::schedule() {
  timer_.expires_after(config_.report_interval);
  timer_.async_wait([this](boost::system::error_code ec) {
    if (ec) return;
    gather();
    schedule();
  });
}

void HotKeysReporter::gather() {
  if (waiting_ != 0) return;  // the last round is still out (a worker is busy): skip this one
  waiting_ = workers_.size();
  round_start_ = SteadyClock::now();
  for (std::size_t i = 0; i < workers_.size(); ++i) {
    Worker* w = workers_[i];
    asio::post(w->io(), [this, w, i] {
      std::vector<protection::HotKey> list = w->hot_keys()->take();
      asio::post(io_, [this, i, list = std::move(list)]() mutable {
        lists_[i] = std::move(list);
        if (--waiting_ == 0) publish();
      });
    });
  }
}

void HotKeysReporter::publish() {
  const double seconds = std::chrono::duration<double>(round_start_ - window_start_).count();
  window_start_ = round_start_;
  const auto merged = protection::HotKeys::merge(lists_, config_.top_n);
  for (auto& list : lists_) list.clear();
  top_.clear();
  if (seconds <= 0) return;
  const double scale = static_cast<double>(config_.sample_every) / seconds;
  for (const protection::HotKey& k : merged) {
    top_.push_back({printable_key(k.key), static_cast<double>(k.count) * scale});
  }
  if (config_.log_threshold_per_second == 0 || top_.empty() ||
      top_[0].per_second <= config_.log_threshold_per_second) {
    return;
  }
  std::string keys;
  for (const Ranked& r : top_) {
    if (!keys.empty()) keys += ", ";
    keys += r.key.substr(0, 128);
    keys += ' ';
    keys += std::to_string(static_cast<long long>(r.per_second + 0.5));
    keys += "/s";
  }
  spdlog::info(
      "hot keys over the last {:.1f}s (estimated from 1 in {} commands; over "
      "hot_keys.log_threshold_per_second {}): {}",
      seconds, config_.sample_every, config_.log_threshold_per_second, keys);
}

}  // namespace respguard::server
