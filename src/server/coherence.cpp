#include "respguard/server/coherence.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <charconv>

#include "respguard/common/log_limiter.hpp"
#include "respguard/common/loop_clock.hpp"
#include "respguard/resp/value.hpp"
#include "respguard/resp/writer.hpp"

namespace respguard::server {
namespace {

using observability::Metric;
using std::chrono::milliseconds;

constexpr std::string_view kChannel = "__redis__:invalidate";
constexpr milliseconds kKeepalive{1000};
constexpr milliseconds kMaintain{5000};

// The tracked prefixes: each rule's literal prefix and each set filter's SET, minus those that
// another one covers (Redis refuses overlapping BCAST prefixes). Empty: every key.
std::vector<std::string> tracking_prefixes(const PolicyState& policies) {
  std::vector<std::string> all;
  for (const policy::Rule& rule : policies.rules.rules()) {
    const config::RuleConfig& rc = rule.config;
    if (!rc.negative_cache && !rc.bloom) continue;
    if (rc.bloom && rc.bloom->source == config::BloomConfig::Source::Set) {
      all.push_back(rc.bloom->set);
    }
    all.emplace_back(rule.pattern.literal_prefix());
  }
  std::sort(all.begin(), all.end());  // a prefix sorts before the strings it covers
  std::vector<std::string> kept;
  for (std::string& p : all) {
    if (kept.empty() || !p.starts_with(kept.back())) kept.push_back(std::move(p));
  }
  if (!kept.empty() && kept.front().empty()) kept.clear();
  return kept;
}

std::string_view bulk_text(const resp::Value& v) {
  return (v.type == resp::Value::Type::Bulk || v.type == resp::Value::Type::Simple)
             ? std::string_view(v.str)
             : std::string_view();
}

}  // namespace

Coherence::Coherence(asio::io_context& io, SharedState& shared, observability::Shard& metrics,
                     std::vector<asio::any_io_executor> workers)
    : io_(io),
      shared_(shared),
      policies_(shared.policies),
      config_(shared.config),
      metrics_(metrics),
      workers_(std::move(workers)),
      prefixes_(tracking_prefixes(shared.policies)),
      reconnect_timer_(io),
      keepalive_timer_(io),
      pace_timer_(io),
      maintain_timer_(io) {
  queued_.assign(policies_.bloom.size(), false);
  last_fresh_.assign(policies_.bloom.size(), SteadyClock::now());
  auto& registry = shared_.metrics;
  registry.set_sampler(Metric::CoherenceState,
                       [this] { return static_cast<double>(state_.load()); });
  registry.set_sampler(Metric::BloomFillRatio, [this] { return fill_.load(); });
  registry.set_sampler(Metric::BloomFalsePositiveRate, [this] { return fp_estimate_.load(); });
  registry.set_sampler(Metric::BloomMemory, [this] {
    std::size_t bytes = 0;
    for (const auto& b : policies_.bloom) bytes += b ? b->memory_bytes() : 0;
    return static_cast<double>(bytes);
  });
  registry.set_sampler(Metric::BloomUntrusted, [this] {
    const std::uint64_t epoch = policies_.channel_epoch();
    double n = 0;
    for (const auto& b : policies_.bloom) n += (b && !b->trusted(epoch)) ? 1 : 0;
    return n;
  });
}

Coherence::~Coherence() {
  stop();
}

void Coherence::start() {
  if (!policies_.channel_configured) {
    state_ = State::Off;
    settled_ = true;
    if (policies_.keeps_local_state) {
      spdlog::warn(
          "coherence.enabled is false: negative-cache entries may be stale for up to their ttl "
          "when other clients write to Redis directly");
    }
    return;
  }
  std::string tracked;
  for (const std::string& p : prefixes_) tracked += (tracked.empty() ? "'" : ", '") + p + "'";
  spdlog::info("coherence channel: tracking {}", tracked.empty() ? "every key" : tracked);
  update_stats();
  connect();
  maintain();
}

void Coherence::stop() {
  if (stopped_) return;
  stopped_ = true;
  ++session_;
  ++scan_session_;
  reconnect_timer_.cancel();
  keepalive_timer_.cancel();
  pace_timer_.cancel();
  maintain_timer_.cancel();
  if (sub_) sub_->close("respguard shutting down");
  if (track_) track_->close("respguard shutting down");
  if (scan_) scan_->close("respguard shutting down");
}

std::shared_ptr<upstream::UpstreamConnection> Coherence::open(const std::string& name) {
  upstream::ConnectionOptions o = upstream::ConnectionOptions::from(config_);
  o.name = name;
  o.dedicated = true;  // we reconnect it ourselves: a lost channel must be noticed, not hidden
  o.tls = &shared_.tls.upstream;
  o.metrics = &metrics_;
  o.quiet = true;
  auto conn =
      std::make_shared<upstream::UpstreamConnection>(io_, std::move(o), shared_.upstream_info);
  conn->start();
  return conn;
}

// ---- the channel ----

void Coherence::connect() {
  if (stopped_) return;
  const std::uint64_t session = ++session_;
  subscribed_ = false;
  tracking_ = false;
  pongs_.clear();
  sub_ = open("respguard-invalidations");
  sub_->set_push_sink(this);
  sub_->set_on_closed([this, session] {
    if (session == session_) lost("the invalidation connection closed: " + sub_->last_error());
  });
  std::string request;
  resp::write_command(request, {"CLIENT", "ID"});
  sub_->send(request, this, cookie(kClientId),
             SteadyClock::now() + config_.upstream.request_timeout);
  request.clear();
  resp::write_command(request, {"SUBSCRIBE", kChannel});
  sub_->send_unmatched(request);
  sub_->flush();
  oldest_ping_ = LoopClock::tick();  // the subscription must be confirmed like a PING
  keepalive();
}

void Coherence::on_reply(std::uint64_t cookie_value, std::string_view reply,
                         const resp::ReplyInfo& info) {
  if (cookie_value == upstream::UpstreamConnection::kPushCookie) return on_push(reply);
  const auto kind = static_cast<Kind>(cookie_value & 0xff);
  if (kind == kScan) {
    if ((cookie_value >> 8) == scan_session_) on_scan_reply(reply, info);
    return;
  }
  if ((cookie_value >> 8) != session_) return;  // an old channel's
  upstream::UpstreamConnection* conn = kind == kClientId ? sub_.get() : track_.get();
  // A failed connection answers its requests with errors and then closes: lost() follows.
  if (conn == nullptr || conn->state() == upstream::UpstreamConnection::State::Closed) return;
  resp::Value v;
  if (resp::parse_value(reply, v).status != resp::ParseStatus::Complete) return;
  switch (kind) {
    case kClientId: {
      if (v.type != resp::Value::Type::Integer) return refused("CLIENT ID: " + resp::to_string(v));
      const std::uint64_t session = session_;
      track_ = open("respguard-tracking");
      track_->set_on_closed([this, session] {
        if (session == session_) lost("the tracking connection closed: " + track_->last_error());
      });
      std::vector<std::string_view> args = {"CLIENT", "TRACKING", "on", "REDIRECT"};
      const std::string id = std::to_string(v.integer);
      args.push_back(id);
      args.push_back("BCAST");
      for (const std::string& p : prefixes_) {
        args.push_back("PREFIX");
        args.push_back(p);
      }
      std::string request;
      resp::write_command(request, args);
      track_->send(request, this, cookie(kTracking),
                   SteadyClock::now() + config_.upstream.request_timeout);
      track_->flush();
      return;
    }
    case kTracking:
      if (v.is_error()) return refused("CLIENT TRACKING: " + v.str);
      tracking_ = true;
      return maybe_up();
    case kTrackingPing:
    case kScan:
      return;  // a timeout closes the connection; lost() follows
  }
}

void Coherence::on_push(std::string_view reply) {
  resp::Value v;
  if (resp::parse_value(reply, v).status != resp::ParseStatus::Complete) return;
  if (v.type == resp::Value::Type::Simple && v.str == "PONG") {
    v.type = resp::Value::Type::Array;  // a PING answered before the subscription took
    v.elements.resize(1);
    v.elements[0].type = resp::Value::Type::Bulk;
    v.elements[0].str = "pong";
  }
  // An error here answers SUBSCRIBE (or PING): e.g. NOPERM, a user without the channel.
  if (v.is_error()) return refused("SUBSCRIBE " + std::string(kChannel) + ": " + v.str);
  if ((v.type != resp::Value::Type::Array && v.type != resp::Value::Type::Push) ||
      v.elements.empty()) {
    return;
  }
  const std::string_view what = bulk_text(v.elements[0]);
  if (what == "message" && v.elements.size() == 3 && bulk_text(v.elements[1]) == kChannel) {
    on_invalidation(v.elements[2]);
  } else if (what == "subscribe") {
    subscribed_ = true;
    oldest_ping_ = {};
    maybe_up();
  } else if (what == "pong") {
    if (pongs_.empty()) return;
    auto then = std::move(pongs_.front());
    pongs_.pop_front();
    oldest_ping_ = pongs_.empty() ? SteadyClock::time_point{} : LoopClock::now();
    if (then) then();
  }
}

void Coherence::on_invalidation(const resp::Value& payload) {
  if (payload.is_null()) {
    metrics_.inc(Metric::CoherenceInvalidations,
                 static_cast<std::size_t>(observability::Invalidation::Flush));
    policies_.flush_all();
    for (std::size_t i = 0; i < policies_.bloom.size(); ++i) {
      if (policies_.bloom[i] && policies_.bloom[i]->set_source()) queue({.rule = i});
    }
    return;
  }
  const unsigned databases = shared_.upstream_info->databases();
  for (const resp::Value& key : payload.elements) {
    metrics_.inc(Metric::CoherenceInvalidations,
                 static_cast<std::size_t>(observability::Invalidation::Key));
    if (!policies_.invalidate(key.str, databases)) continue;
    for (std::size_t i = 0; i < policies_.bloom.size(); ++i) {
      const auto& b = policies_.bloom[i];
      if (b && b->set_source() && b->config().set == key.str) queue({.rule = i});
    }
  }
}

void Coherence::maybe_up() {
  if (!subscribed_ || !tracking_ || state_ == State::Up) return;
  const std::uint64_t epoch = ++epochs_;
  policies_.channel_up(epoch);
  const bool restored = settled_.load();
  state_ = State::Up;
  settled_ = true;
  backoff_ = milliseconds{0};
  if (restored) {
    spdlog::warn(
        "coherence channel restored after {} ms; Bloom filters warm up again",
        std::chrono::duration_cast<milliseconds>(SteadyClock::now() - down_since_).count());
  } else {
    spdlog::info("coherence channel up");
  }
  queue_warmups();
}

void Coherence::close_channel() {
  ++session_;  // their on_closed callbacks and late replies are now stale
  pongs_.clear();
  oldest_ping_ = {};
  if (sub_) sub_->close("coherence channel reset");
  if (track_) track_->close("coherence channel reset");
  sub_.reset();
  track_.reset();
}

void Coherence::stand_down(bool ttl_bounded, const std::string& why) {
  // Local state stops being believed before anything else happens.
  policies_.channel_down(ttl_bounded);
  close_channel();
  abort_pass(why, false);
  jobs_.clear();
  std::fill(queued_.begin(), queued_.end(), false);
}

void Coherence::lost(const std::string& why) {
  if (stopped_) return;
  const State was = state_;
  state_ = State::Down;
  stand_down(false, "the coherence channel is down");
  if (was == State::Up) {
    metrics_.inc(Metric::CoherenceLosses);
    down_since_ = SteadyClock::now();
    spdlog::warn(
        "coherence channel lost ({}): negative cache cleared, Bloom filters answer nothing "
        "locally until it is back and warmed up",
        why);
  } else {
    static LogLimiter limiter(std::chrono::seconds(10));
    std::uint64_t suppressed = 0;
    if (limiter.allow(suppressed)) {
      spdlog::warn("coherence channel not up: {} ({} similar messages suppressed)", why,
                   suppressed);
    }
  }
  backoff_ = backoff_.count() == 0 ? config_.upstream.reconnect_backoff_min
                                   : std::min(backoff_ * 2, config_.upstream.reconnect_backoff_max);
  schedule_reconnect(backoff_);
}

void Coherence::refused(const std::string& why) {
  if (state_ != State::Refused) {
    spdlog::error(
        "Redis refused client tracking ({}): local state cannot follow writes made directly to "
        "Redis. Negative-cache entries may be stale for up to their ttl; Bloom filters answer "
        "nothing locally. Needs Redis 6 or later and a user allowed CLIENT and SUBSCRIBE. "
        "Retrying every {} ms.",
        why, config_.upstream.reconnect_backoff_max.count());
  }
  state_ = State::Refused;
  settled_ = true;
  stand_down(true, "client tracking refused");
  schedule_reconnect(config_.upstream.reconnect_backoff_max);
}

void Coherence::schedule_reconnect(milliseconds wait) {
  reconnect_timer_.expires_after(wait);
  reconnect_timer_.async_wait([this](boost::system::error_code ec) {
    if (!ec) connect();
  });
}

void Coherence::keepalive() {
  keepalive_timer_.expires_after(kKeepalive);
  keepalive_timer_.async_wait([this](boost::system::error_code ec) {
    if (ec || stopped_ || !sub_) return;
    const auto now = LoopClock::tick();
    if (oldest_ping_ != SteadyClock::time_point{} &&
        now - oldest_ping_ > config_.upstream.request_timeout) {
      return lost("no answer on the invalidation connection");
    }
    if (subscribed_) barrier(nullptr);
    if (track_ && tracking_) {
      std::string ping;
      resp::write_command(ping, {"PING"});
      track_->send(ping, this, cookie(kTrackingPing), now + config_.upstream.request_timeout);
      track_->flush();
    }
    keepalive();
  });
}

void Coherence::barrier(std::function<void()> then) {
  if (pongs_.empty()) oldest_ping_ = LoopClock::now();
  pongs_.push_back(std::move(then));
  std::string ping;
  resp::write_command(ping, {"PING"});
  sub_->send_unmatched(ping);
  sub_->flush();
}

// ---- Bloom filter passes ----

void Coherence::queue(Job job) {
  if (state_ != State::Up) return;  // the warm-up after it comes up covers everything
  if (running_ && running_->job.rule == job.rule && !job.fresh) {
    return;  // its end checks whether it is still valid and queues another if not
  }
  if (queued_[job.rule]) {
    for (Job& j : jobs_) {
      if (j.rule == job.rule && job.fresh && !j.fresh) j = job;  // a rebuild reads everything
    }
    return;
  }
  queued_[job.rule] = true;
  jobs_.push_back(job);
  run_next();
}

void Coherence::queue_warmups() {
  for (std::size_t i = 0; i < policies_.bloom.size(); ++i) {
    if (policies_.bloom[i]) queue({.rule = i});
  }
}

void Coherence::run_next() {
  if (running_ || jobs_.empty() || state_ != State::Up || stopped_) return;
  Job job = jobs_.front();
  jobs_.pop_front();
  queued_[job.rule] = false;
  policy::BloomPrecheck& pre = *policies_.bloom[job.rule];
  const config::RuleConfig& rc = policies_.rules.rules()[job.rule].config;
  running_.emplace();
  running_->job = job;
  running_->pass = pre.begin_pass(job.fresh, policies_.channel_epoch(), job.capacity);
  running_->started = LoopClock::now();
  if (pre.set_source() || rc.db) {
    running_->dbs.push_back(rc.db.value_or(0));
  } else {
    for (unsigned db = 0; db < shared_.upstream_info->databases(); ++db) {
      running_->dbs.push_back(static_cast<int>(db));
    }
  }
  if (!scan_ || scan_->state() == upstream::UpstreamConnection::State::Closed) {
    const std::uint64_t session = ++scan_session_;
    scan_ = open("respguard-warmup");
    scan_->set_on_closed([this, session] {
      if (session == scan_session_) abort_pass("scan connection: " + scan_->last_error(), true);
    });
  }
  send_scan();
}

void Coherence::send_scan() {
  Running& r = *running_;
  const policy::BloomPrecheck& pre = *policies_.bloom[r.job.rule];
  const auto deadline = LoopClock::tick() + config_.upstream.request_timeout;
  scan_->select_db(r.dbs.front(), deadline);
  const std::string count = std::to_string(config_.coherence.scan_count);
  std::string& out = scan_->write_buffer();
  if (pre.set_source()) {
    resp::write_command(out, {"SSCAN", pre.config().set, r.cursor, "COUNT", count});
  } else {
    resp::write_command(out, {"SCAN", r.cursor, "MATCH",
                              policies_.rules.rules()[r.job.rule].pattern.glob(), "COUNT", count});
  }
  scan_->commit_request(this, (scan_session_ << 8) | kScan, deadline);
  scan_->flush();
}

void Coherence::on_scan_reply(std::string_view reply, const resp::ReplyInfo& info) {
  if (!running_) return;
  resp::Value v;
  if (info.is_error() || resp::parse_value(reply, v).status != resp::ParseStatus::Complete ||
      v.elements.size() != 2 || v.elements[1].type != resp::Value::Type::Array) {
    // A connection failure closes the connection next (its on_closed retries); a refused
    // SCAN (an ACL) is retried after the reconnect backoff too, loudly.
    if (scan_->state() == upstream::UpstreamConnection::State::Closed) return;
    return abort_pass("unexpected reply " + std::string(reply.substr(0, 200)), true);
  }
  Running& r = *running_;
  policy::BloomPrecheck& pre = *policies_.bloom[r.job.rule];
  for (const resp::Value& item : v.elements[1].elements) pre.add_scanned(r.pass, item.str);
  // A db read whole in one call was small (empty dbs, most of the 16): no pause after it.
  const bool small = r.cursor == "0" && v.elements[0].str == "0";
  r.cursor = v.elements[0].str;
  if (r.cursor == "0") {
    r.dbs.erase(r.dbs.begin());
    if (r.dbs.empty()) {
      // Every invalidation of a write Redis ran before the last SCAN precedes this pong.
      const std::uint64_t session = scan_session_;
      return barrier([this, session] {
        if (session == scan_session_ && running_) finish_pass();
      });
    }
  }
  // Paced: each call makes Redis look at about `scan_count` keys.
  const std::uint64_t rate = config_.coherence.warmup_keys_per_second;
  const auto pause = rate == 0
                         ? std::chrono::microseconds{0}
                         : std::chrono::microseconds(config_.coherence.scan_count * 1000000 / rate);
  if (pause.count() == 0 || small) return send_scan();
  pace_timer_.expires_after(pause);
  pace_timer_.async_wait([this, session = scan_session_](boost::system::error_code ec) {
    if (!ec && session == scan_session_ && running_) send_scan();
  });
}

void Coherence::finish_pass() {
  Running r = std::move(*running_);
  running_.reset();
  policy::BloomPrecheck& pre = *policies_.bloom[r.job.rule];
  const bool was_trusted = pre.trusted(policies_.channel_epoch());
  policy::BloomPrecheck::PassEnd end = pre.end_pass(r.pass, policies_.channel_epoch());
  retire(std::move(end.retired));
  using observability::BloomPass;
  const BloomPass kind = r.job.resize  ? BloomPass::Resize
                         : r.job.fresh ? BloomPass::Rebuild
                                       : BloomPass::Warmup;
  metrics_.inc(Metric::BloomPasses, static_cast<std::size_t>(kind));
  if (r.job.fresh) last_fresh_[r.job.rule] = LoopClock::now();
  const auto took = std::chrono::duration_cast<milliseconds>(LoopClock::now() - r.started).count();
  const std::string& match = policies_.rules.rules()[r.job.rule].config.match;
  if (end.trusted && !was_trusted) {
    spdlog::info("Bloom filter of rule {} ('{}'): {} {} read in {} ms; answering locally",
                 r.job.rule, match, r.pass.scanned, pre.set_source() ? "ids" : "keys", took);
  } else if (r.job.fresh) {
    spdlog::info("Bloom filter of rule {} ('{}') rebuilt{}: {} items in {} ms", r.job.rule, match,
                 r.job.resize ? " larger" : "", r.pass.scanned, took);
  }
  if (!end.trusted && state_ == State::Up) queue({.rule = r.job.rule});  // changed meanwhile
  update_stats();
  run_next();
}

void Coherence::abort_pass(const std::string& why, bool retry) {
  ++scan_session_;  // the pass's late replies, timers and barrier are now stale
  pace_timer_.cancel();
  if (scan_) {
    scan_->close("pass aborted");
    scan_.reset();
  }
  if (!running_) return;
  Running r = std::move(*running_);
  running_.reset();
  retire(policies_.bloom[r.job.rule]->abort_pass(r.pass));
  metrics_.inc(Metric::BloomPasses, static_cast<std::size_t>(observability::BloomPass::Aborted));
  if (!retry) return;
  static LogLimiter limiter(std::chrono::seconds(10));
  std::uint64_t suppressed = 0;
  if (limiter.allow(suppressed)) {
    spdlog::warn("Bloom filter scan of rule {} failed ({}); retrying ({} similar suppressed)",
                 r.job.rule, why, suppressed);
  }
  jobs_.push_front(r.job);
  queued_[r.job.rule] = true;
  pace_timer_.expires_after(config_.upstream.reconnect_backoff_max);
  pace_timer_.async_wait([this, session = scan_session_](boost::system::error_code ec) {
    if (!ec && session == scan_session_) run_next();
  });
}

void Coherence::retire(std::unique_ptr<policy::BloomFilter> filter) {
  if (!filter) return;
  std::shared_ptr<policy::BloomFilter> held(std::move(filter));
  // Freed by whichever worker drops the last copy, after every worker ran one handler since.
  for (const auto& executor : workers_) asio::post(executor, [held] {});
}

void Coherence::maintain() {
  maintain_timer_.expires_after(kMaintain);
  maintain_timer_.async_wait([this](boost::system::error_code ec) {
    if (ec || stopped_) return;
    update_stats();
    const auto now = LoopClock::tick();
    const std::uint64_t epoch = policies_.channel_epoch();
    for (std::size_t i = 0; i < policies_.bloom.size(); ++i) {
      const policy::BloomPrecheck* pre = policies_.bloom[i].get();
      if (pre == nullptr || !pre->trusted(epoch)) continue;
      const config::Millis every = pre->config().rebuild_interval;
      if (!pre->set_source()) {
        const std::uint64_t items = pre->estimated_items();
        if (items > pre->capacity()) {
          spdlog::info(
              "Bloom filter of rule {} holds about {} keys, over its {}: rebuilding larger", i,
              items, pre->capacity());
          queue({.rule = i, .fresh = true, .resize = true, .capacity = 2 * items});
          continue;
        }
      }
      if (every.count() > 0 && now - last_fresh_[i] >= every) {
        queue({.rule = i, .fresh = true, .capacity = pre->capacity()});
      }
    }
    maintain();
  });
}

void Coherence::update_stats() {
  double fill = 0;
  double fp = 0;
  for (const auto& b : policies_.bloom) {
    if (!b) continue;
    fill = std::max(fill, b->fill_ratio());
    fp = std::max(fp, b->estimated_false_positive_rate());
  }
  fill_ = fill;
  fp_estimate_ = fp;
}

}  // namespace respguard::server
