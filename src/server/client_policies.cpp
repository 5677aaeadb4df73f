// The async glue of the key-rule policies (docs/policies.md): the pure tables decide, this
// file sends, waits and wakes. Nothing here runs unless rules are configured.
#include <spdlog/spdlog.h>

#include <charconv>
#include <cstdlib>
#include <span>

#include "respguard/common/log_limiter.hpp"
#include "respguard/common/loop_clock.hpp"
#include "respguard/policy/jitter.hpp"
#include "respguard/resp/writer.hpp"
#include "respguard/server/client_session.hpp"
#include "respguard/server/worker.hpp"

namespace respguard::server {
namespace {

using observability::Metric;
using resp::iequals;

// Commands that write a value the proxy can hand to lease waiters, and where it is.
int value_arg(const resp::CommandInfo& info) {
  const std::string_view n = info.name;
  if (n == "set" || n == "getset" || n == "setnx") return 2;
  if (n == "setex" || n == "psetex") return 3;
  return -1;
}

bool has_option(std::span<const std::string_view> args, std::string_view option) {
  for (std::size_t i = 3; i < args.size(); ++i) {
    if (iequals(args[i], option)) return true;
  }
  return false;
}

bool ttl_command(std::string_view name) {
  return name == "set" || name == "setex" || name == "psetex" || name == "getex" ||
         name == "expire" || name == "pexpire";
}

constexpr std::size_t kMaxHeldLeases = 64;  // per client; older ones simply lapse

// guard.big_collection_elements: what a collection write's reply says. Lists answer with their
// length; SADD/ZADD/HSET/XADD with the number added, so their size takes a probe.
enum class Growth : std::uint8_t { None, LengthInReply, Probe };
struct CollectionWrite {
  Growth growth = Growth::None;
  std::string_view probe;  // the size command for Growth::Probe
};
CollectionWrite collection_write(std::string_view n) {
  if (n == "lpush" || n == "rpush" || n == "lpushx" || n == "rpushx" || n == "linsert") {
    return {Growth::LengthInReply, {}};
  }
  if (n == "sadd") return {Growth::Probe, "SCARD"};
  if (n == "zadd" || n == "zincrby") return {Growth::Probe, "ZCARD"};
  if (n == "hset" || n == "hsetnx" || n == "hmset" || n == "hincrby" || n == "hincrbyfloat") {
    return {Growth::Probe, "HLEN"};
  }
  if (n == "xadd") return {Growth::Probe, "XLEN"};
  return {};
}

observability::CollectionType collection_type(std::string_view command) {
  using observability::CollectionType;
  switch (command.empty() ? 'l' : command[0]) {
    case 's':
      return CollectionType::Set;
    case 'z':
      return CollectionType::Zset;
    case 'h':
      return CollectionType::Hash;
    case 'x':
      return CollectionType::Stream;
    default:
      return CollectionType::List;
  }
}

}  // namespace

bool ClientSession::apply_policies(const resp::Command& cmd, const resp::CommandInfo& info,
                                   Dispatch& out) {
  // Anything that is not read-only may write (scripts are not flagged "write"):
  // collect_write_effects decides exactly what.
  if (!(info.flags & resp::kReadonly)) {
    // Side effects below must happen once: let forward() stall first if it is going to.
    if (would_stall()) return false;
    policy_write(cmd, info);
    return false;  // forward() sends it (rewritten) with the hooks
  }
  if (cmd.argc() == 2 && (info.name == "get" || info.name == "exists")) {
    const policy::Rule* rule = worker_.live().rules.match(db_, cmd.args[1]);
    if (rule != nullptr) return policy_read(cmd, info, *rule, out);
  }
  if (policies_.has_bloom && info.name == "mget") return bloom_mget(cmd, out);
  return false;
}

bool ClientSession::bloom_mget(const resp::Command& cmd, Dispatch& out) {
  // Answered here only when every key is ruled out; otherwise Redis answers the whole MGET. The
  // reply is written as the keys are checked and dropped at the first key that may exist.
  const std::uint64_t epoch = policies_.channel_epoch();
  if (epoch == 0) return false;
  scratch_.clear();
  resp::write_array_header(scratch_, cmd.argc() - 1);
  for (std::size_t i = 1; i < cmd.argc(); ++i) {
    const std::string_view key = cmd.args[i];
    const policy::Rule* rule = worker_.live().rules.match(db_, key);
    if (rule == nullptr || !rule->config.bloom ||
        policies_.bloom[rule->index]->check(key, epoch) != policy::BloomPrecheck::Verdict::Absent) {
      return false;
    }
    if (const std::optional<std::string>& sentinel = rule->config.bloom->absent_reply) {
      resp::write_bulk(scratch_, *sentinel);
    } else {
      resp::write_null(scratch_, proto_);
    }
  }
  if (metrics_) {
    metrics_->inc(Metric::BloomChecks,
                  static_cast<std::size_t>(observability::BloomResult::Rejected), cmd.argc() - 1);
  }
  reply_local(scratch_);
  out = Dispatch::Done;
  return true;
}

bool ClientSession::policy_read(const resp::Command& cmd, const resp::CommandInfo& info,
                                const policy::Rule& rule, Dispatch& out) {
  const bool exists = info.name == "exists";
  const config::RuleConfig& rc = rule.config;
  const std::string_view key = cmd.args[1];
  const auto now = LoopClock::now();
  // Built where the reply's hooks keep it, and hashed once: every table below gets this hash.
  next_hooks_.reset();
  const policy::HashedKey dk(policy::db_key(db_, key, next_hooks_.dk));
  next_hooks_.hash = dk.hash;
  const bool lease = !exists && rc.lease.has_value();
  const config::Millis wait = lease ? rc.lease->wait : config::Millis{0};
  out = Dispatch::Done;

  auto wait_for_holder = [&](std::uint64_t token) {
    const std::uint64_t seq = waiting_slot();
    SlotHooks& h = slots_[seq % slots_.size()].hooks;
    h.flags = SlotHooks::kLeaseWaiting;
    h.dk.assign(dk.dk);
    h.hash = dk.hash;
    h.token = token;
    h.lease_wait = wait;
    start_lease_wait(seq, wait);
    if (metrics_) metrics_->inc(Metric::LeaseWaits);
  };

  // Someone else holds the lease: wait for their SET instead of reading.
  if (lease && !policies_.leases.empty()) {
    std::uint64_t token = 0;
    auto make_waiter = [&] {  // only when it has to wait: a token and a session reference
      token = policies_.next_token.fetch_add(1);
      return slot_ref(tail_seq_, token);
    };
    if (policies_.leases.wait_if_leased(dk, now, make_waiter)) {
      wait_for_holder(token);
      return true;
    }
  }

  // Known absent: answered here, and still a miss for the lease (one client loads, the others
  // wait for it).
  auto answer_miss = [&] {
    if (exists) {
      reply_local(":0\r\n");
      return;
    }
    if (lease) {
      const std::uint64_t token = policies_.next_token.fetch_add(1);
      switch (policies_.leases.on_miss(dk, now, wait, slot_ref(tail_seq_, token))) {
        case policy::LeaseTable<SlotRef>::Miss::Wait:
          wait_for_holder(token);
          return;
        case policy::LeaseTable<SlotRef>::Miss::Granted:
          grant_lease(dk.dk, wait);
          break;
        case policy::LeaseTable<SlotRef>::Miss::NoLease:
          break;
      }
    }
    scratch_.clear();
    resp::write_null(scratch_, proto_);
    reply_local(scratch_);
  };

  const std::uint64_t negative_epoch = rc.negative_cache ? policies_.negative_epoch() : 0;
  if (negative_epoch != 0) {
    policies_.note_db(db_);  // invalidations (which name no db) must reach this db's entries
    if (policies_.negative.contains(dk)) {
      if (metrics_) metrics_->inc(Metric::NegativeCacheHits);
      answer_miss();
      return true;
    }
  }

  bool bloom_passed = false;
  if (rc.bloom) {
    const policy::BloomPrecheck& bloom = *policies_.bloom[rule.index];
    using Verdict = policy::BloomPrecheck::Verdict;
    const Verdict verdict = bloom.check(key, policies_.channel_epoch());
    if (metrics_ && verdict != Verdict::NotChecked) {
      using observability::BloomResult;
      metrics_->inc(
          Metric::BloomChecks,
          static_cast<std::size_t>(verdict == Verdict::Absent     ? BloomResult::Rejected
                                   : verdict == Verdict::MayExist ? BloomResult::Passed
                                                                  : BloomResult::Untrusted));
    }
    if (verdict == Verdict::Absent) {
      if (!exists && rc.bloom->absent_reply) {
        // The id is not in the application's set: the key exists nowhere, and the sentinel
        // tells a cache-aside application to skip the database.
        scratch_.clear();
        resp::write_bulk(scratch_, *rc.bloom->absent_reply);
        reply_local(scratch_);
      } else {
        answer_miss();
      }
      return true;
    }
    bloom_passed = verdict == Verdict::MayExist && !bloom.set_source();
  }

  // To Redis, with follow-ups for the reply (next_hooks_ holds the key since the start).
  next_hooks_.write_gen = policies_.writes.now(dk);
  next_hooks_.write_gen_all = policies_.writes.all();
  if (negative_epoch != 0) {
    next_hooks_.flags |= SlotHooks::kLearnNegative;
    next_hooks_.negative_ttl = rc.negative_cache->ttl;
    next_hooks_.negative_epoch = negative_epoch;
  }
  if (bloom_passed) next_hooks_.flags |= SlotHooks::kBloomPassed;
  if (lease) {
    next_hooks_.flags |= SlotHooks::kLeaseGet;
    next_hooks_.lease_wait = wait;
  }
  if (!exists && rc.coalesce) {
    if (would_stall()) {
      next_hooks_.reset();
      return false;  // forward() stalls; we come back here afterwards
    }
    std::uint64_t flight = 0;
    const std::uint64_t seq = tail_seq_;
    auto make_waiter = [this, seq] { return slot_ref(seq); };  // only if it joins
    switch (policies_.flights.begin(dk, make_waiter, flight)) {
      case policy::FlightTable<SlotRef>::Role::Joined: {
        SlotHooks& h = slots_[waiting_slot() % slots_.size()].hooks;
        h.swap(next_hooks_);
        h.flags &= SlotHooks::kLeaseGet;  // the leader learns and shares; a nil is our miss too
        next_hooks_.reset();
        if (metrics_) metrics_->inc(Metric::CoalescedRequests);
        return true;
      }
      case policy::FlightTable<SlotRef>::Role::Leader:
        next_hooks_.flags |= SlotHooks::kFlightLeader;
        next_hooks_.flight = flight;
        break;
      case policy::FlightTable<SlotRef>::Role::Uncoalesced:
        break;
    }
  }
  out = forward(cmd, &info, false);
  return true;
}

void ClientSession::policy_write(const resp::Command& cmd, const resp::CommandInfo& info) {
  policy::collect_write_effects(info, cmd.args, db_, effects_);
  SlotHooks& h = in_multi_ ? multi_hooks_ : next_hooks_;
  if (policies_.has_bloom && info.name == "sadd" && cmd.argc() >= 3) note_set_members(cmd, h);
  bool all_done = false;
  for (const policy::WriteEffect& e : effects_) {
    if (e.kind != policy::WriteEffect::Kind::Key) {
      if (e.kind == policy::WriteEffect::Kind::All) {
        policies_.negative.clear();
      } else {
        policies_.negative.clear_db(e.db);
      }
      if (!all_done) {
        policies_.flights.write_begin_all();
        policies_.writes.tick_all();
        h.flags |= SlotHooks::kWriteEndAll;
        all_done = true;
      }
      continue;
    }
    const policy::Rule* rule = worker_.live().rules.match(e.db, e.key);
    if (rule == nullptr) continue;
    const config::RuleConfig& rc = rule->config;
    if (!rc.coalesce && !rc.lease && !rc.negative_cache && !rc.bloom) continue;
    const policy::HashedKey dk(policy::db_key(e.db, e.key, dk_buf_));
    if (rc.negative_cache) policies_.negative.forget(dk);
    // Forgotten now and again when Redis answers: a GET racing the write proves nothing.
    policies_.writes.tick(dk);
    if (rc.coalesce) policies_.flights.write_begin(dk);
    // The key exists from now on, for a keyspace filter: added before Redis runs the write, so
    // no reader sees it in Redis but absent here (a superset is harmless if the write fails).
    // (A rule a reload added past the filters has none: plan_reload keeps filters in place.)
    policy::BloomPrecheck* bloom =
        rule->index < policies_.bloom.size() ? policies_.bloom[rule->index].get() : nullptr;
    if (bloom != nullptr && bloom->set_source()) bloom = nullptr;
    if (bloom != nullptr) bloom->add(e.key);
    h.add_written(dk, rc.coalesce, bloom);
    h.flags |= SlotHooks::kWriteEnd;
    if (rc.lease && !(h.flags & (SlotHooks::kLeaseFulfill | SlotHooks::kLeaseEnd)) &&
        policies_.leases.leased(dk)) {
      // One leased key per command: the common SET; a multi-key DEL ends the first one's lease
      // and the others lapse after lease.wait.
      const int arg = value_arg(info);
      h.dk.assign(dk.dk);
      h.hash = dk.hash;
      h.lease_wait = rc.lease->wait;
      // Whether a conditional write wrote shows only in its own reply, which EXEC buries in
      // an array, and SET .. GET answers the old value instead: those end the lease.
      const bool set_get = info.name == "set" && has_option(cmd.args, "get");
      const bool set_if =
          info.name == "set" && (has_option(cmd.args, "nx") || has_option(cmd.args, "xx"));
      const bool conditional =
          (set_get && set_if) || (in_multi_ && (set_if || info.name == "setnx"));
      if (arg > 0 && static_cast<std::size_t>(arg) < cmd.argc() && e.key == cmd.args[1] &&
          !conditional) {
        h.flags |= SlotHooks::kLeaseFulfill;
        h.value = std::make_shared<const std::string>(cmd.args[static_cast<std::size_t>(arg)]);
        h.success = in_multi_                          ? SlotHooks::Success::Exec
                    : info.name == "setnx"             ? SlotHooks::Success::One
                    : info.name == "getset" || set_get ? SlotHooks::Success::NotError
                                                       : SlotHooks::Success::Ok;
      } else {
        h.flags |= SlotHooks::kLeaseEnd;  // DEL, INCR, a conditional SET .. GET: no value
      }
    }
  }
  // TTL jitter, by the rule of the written key.
  if (cmd.argc() >= 3 && ttl_command(info.name)) {
    const policy::Rule* rule = worker_.live().rules.match(db_, cmd.args[1]);
    if (rule != nullptr && rule->config.jitter &&
        policy::apply_ttl_jitter(cmd.args, *rule->config.jitter, worker_.random(), rewrite_buf_)) {
      rewrite_ = rewrite_buf_;
      if (metrics_) metrics_->inc(Metric::TtlJitterApplied);
    }
  }
}

void ClientSession::note_set_members(const resp::Command& cmd, SlotHooks& h) {
  // A reload keeps rules with Bloom filters at their index (plan_reload), and may only add
  // rules without one past the filters' end.
  const std::vector<policy::Rule>& rules = worker_.live().rules.rules();
  for (std::size_t i = 0; i < rules.size() && i < policies_.bloom.size(); ++i) {
    policy::BloomPrecheck* bloom = policies_.bloom[i].get();
    if (bloom == nullptr || !bloom->set_source() || bloom->config().set != cmd.args[1] ||
        rules[i].config.db.value_or(0) != db_) {
      continue;
    }
    // Valid ids from now on: no GET after this SADD gets the sentinel for them, even before the
    // channel reports the set changed (which then has it reloaded).
    for (std::size_t a = 2; a < cmd.argc(); ++a) {
      bloom->add(cmd.args[a]);
      h.add_bloom_item(cmd.args[a], bloom);
    }
    h.flags |= SlotHooks::kWriteEnd;
  }
}

bool ClientSession::run_hooks(Slot& slot, std::uint64_t cookie, std::string_view reply,
                              const resp::ReplyInfo& info) {
  SlotHooks& h = slot.hooks;
  const std::uint16_t flags = h.flags;
  const auto now = LoopClock::now();
  if (flags & SlotHooks::kWriteEnd) end_writes(h);
  if (flags & SlotHooks::kWriteEndAll) {
    policies_.flights.write_end_all();
    policies_.writes.tick_all();
  }
  if (flags & (SlotHooks::kLeaseFulfill | SlotHooks::kLeaseEnd)) {
    wake_.clear();
    bool written = false;
    switch (h.success) {
      case SlotHooks::Success::Ok:
        written = reply.starts_with("+OK");
        break;
      case SlotHooks::Success::One:
        written = reply == ":1\r\n";
        break;
      case SlotHooks::Success::NotError:
        written = !info.is_error();
        break;
      case SlotHooks::Success::Exec:
        written = info.type == '*' && !info.is_null;
        break;
    }
    if ((flags & SlotHooks::kLeaseFulfill) && written) {
      policies_.leases.fulfill(h.key(), wake_);
      if (!wake_.empty()) {
        auto bulk = std::make_shared<std::string>();
        resp::write_bulk(*bulk, *h.value);
        if (metrics_) {
          metrics_->inc(Metric::LeaseWaitOutcomes,
                        static_cast<std::size_t>(observability::LeaseOutcome::Value), wake_.size());
        }
        resp::ReplyInfo bulk_info;
        bulk_info.type = '$';
        wake(wake_, bulk, bulk_info);
      }
      std::erase_if(held_leases_, [&](const auto& held) { return held.first == h.dk; });
    } else if (!info.is_error()) {
      // The key changed in a way that gives waiters no value: the next in line loads it.
      policies_.leases.end(h.key(), 0, now, h.lease_wait, wake_);
      resp::ReplyInfo nil;
      nil.type = '_';
      nil.is_null = true;
      wake(wake_, nullptr, nil);
    }
  }
  // A nil means "absent" only if no write of the key overtook the GET.
  const bool fresh = info.is_null && policies_.writes.now(h.key()) == h.write_gen &&
                     policies_.writes.all() == h.write_gen_all;
  bool done = true;
  if ((flags & SlotHooks::kLeaseGet) && fresh) {
    // A miss: this client loads the key from the database, or waits for whoever does.
    const std::uint64_t token = policies_.next_token.fetch_add(1);
    switch (policies_.leases.on_miss(h.key(), now, h.lease_wait, slot_ref(cookie, token))) {
      case policy::LeaseTable<SlotRef>::Miss::Granted:
        grant_lease(h.dk, h.lease_wait);
        break;
      case policy::LeaseTable<SlotRef>::Miss::NoLease:
        break;
      case policy::LeaseTable<SlotRef>::Miss::Wait:
        h.flags = SlotHooks::kLeaseWaiting;
        h.token = token;
        start_lease_wait(cookie, h.lease_wait);
        if (metrics_) metrics_->inc(Metric::LeaseWaits);
        done = false;
        break;
    }
  }
  // After our own lease decision: clients that joined this flight and also miss then wait for
  // us rather than taking the lease.
  if (flags & SlotHooks::kFlightLeader) {
    wake_.clear();
    policies_.flights.finish(h.key(), h.flight, wake_);
    if (!wake_.empty()) wake(wake_, std::make_shared<const std::string>(reply), info);
  }
  if ((flags & SlotHooks::kLearnNegative) && fresh &&
      h.negative_epoch == policies_.negative_epoch()) {
    policies_.negative.remember(h.key(), h.negative_ttl);
    // The channel may have gone down (and cleared the cache) since the check: then the entry
    // must not outlive it.
    if (h.negative_epoch != policies_.negative_epoch()) policies_.negative.forget(h.key());
  }
  if ((flags & SlotHooks::kBloomPassed) && fresh && metrics_) {
    metrics_->inc(Metric::BloomFalsePositives);
  }
  if (flags & SlotHooks::kCollectionSize) report_collection_size(h, reply, info);
  return done;
}

std::uint64_t ClientSession::waiting_slot() {
  const std::uint64_t seq = push_slot(SlotKind::Normal);
  slots_[seq % slots_.size()].hooks.reset();
  if (inflight_++ == 0) keepalive_ = shared_from_this();
  return seq;
}

SlotRef ClientSession::slot_ref(std::uint64_t cookie, std::uint64_t token) {
  return SlotRef{weak_from_this(), socket_.get_executor(), cookie, token, id_};
}

void ClientSession::wake(std::vector<SlotRef>& refs, const SharedBytes& reply,
                         const resp::ReplyInfo& info) {
  for (SlotRef& ref : refs) {
    auto executor = ref.executor;  // not from `ref` in the same call: it is moved from there
    asio::post(executor, [ref = std::move(ref), reply, info] {
      if (auto session = ref.session.lock()) session->deliver(ref.cookie, reply, info);
    });
  }
  refs.clear();
}

void ClientSession::grant_lease(std::string_view dk, config::Millis wait) {
  if (held_leases_.size() >= kMaxHeldLeases) held_leases_.erase(held_leases_.begin());
  held_leases_.emplace_back(dk, wait);
  if (metrics_) metrics_->inc(Metric::LeasesGranted);
}

void ClientSession::start_lease_wait(std::uint64_t cookie, config::Millis wait) {
  const std::uint64_t token = slots_[cookie % slots_.size()].hooks.token;
  auto timer = std::make_shared<asio::steady_timer>(socket_.get_executor(), wait);
  timer->async_wait([weak = weak_from_this(), timer, cookie, token](boost::system::error_code) {
    if (auto session = weak.lock()) session->lease_wait_expired(cookie, token);
  });
}

void ClientSession::lease_wait_expired(std::uint64_t cookie, std::uint64_t token) {
  if (cookie < head_seq_ || cookie >= tail_seq_) return;
  Slot& slot = slots_[cookie % slots_.size()];
  if (slot.done || !(slot.hooks.flags & SlotHooks::kLeaseWaiting) || slot.hooks.token != token) {
    return;
  }
  const auto now = LoopClock::tick();
  using Expired = policy::LeaseTable<SlotRef>::Expired;
  const Expired e = policies_.leases.expire(slot.hooks.key(), token, now, slot.hooks.lease_wait);
  if (e == Expired::NotWaiting) return;  // its answer is already on the way
  if (e == Expired::Granted) grant_lease(slot.hooks.dk, slot.hooks.lease_wait);
  if (metrics_) {
    metrics_->inc(
        Metric::LeaseWaitOutcomes,
        static_cast<std::size_t>(e == Expired::Granted ? observability::LeaseOutcome::Promoted
                                                       : observability::LeaseOutcome::Timeout));
  }
  scratch_.clear();
  resp::write_null(scratch_, proto_);
  record_command(slot.command, false, now - slot.start);
  auto self = shared_from_this();
  complete_slot(cookie, scratch_, nullptr);
  worker_.flush_dirty();
}

void ClientSession::cancel_lease_waits() {
  for (std::uint64_t seq = head_seq_; seq != tail_seq_; ++seq) {
    const SlotHooks& h = slots_[seq % slots_.size()].hooks;
    if (h.flags & SlotHooks::kLeaseWaiting) policies_.leases.cancel(h.key(), h.token);
  }
}

void ClientSession::release_leases() {
  // The holder is gone: the next waiter in line loads the key instead.
  const auto now = LoopClock::now();
  for (const auto& [dk, wait] : held_leases_) {
    wake_.clear();
    policies_.leases.end(std::string_view(dk), id_, now, wait, wake_);
    resp::ReplyInfo nil;
    nil.type = '_';
    nil.is_null = true;
    wake(wake_, nullptr, nil);
  }
  held_leases_.clear();
}

void ClientSession::end_writes(SlotHooks& h) {
  for (std::size_t i = 0; i < h.written_count; ++i) {
    const SlotHooks::WrittenKey& w = h.written[i];
    if (w.bloom != nullptr) w.bloom->add(w.item_only ? w.dk : policy::key_of(w.dk));
    if (w.item_only) continue;
    const policy::HashedKey dk(h.written[i].dk, h.written[i].hash);
    if (h.written[i].flight) policies_.flights.write_end(dk);
    policies_.writes.tick(dk);
    policies_.negative.forget(dk);
  }
}

void ClientSession::abandon_multi_hooks() {
  if (multi_hooks_.flags & SlotHooks::kWriteEnd) end_writes(multi_hooks_);
  if (multi_hooks_.flags & SlotHooks::kWriteEndAll) {
    policies_.flights.write_end_all();
    policies_.writes.tick_all();
  }
  multi_hooks_.reset();
}

// ---------------------------------------------------------------------------- big collections

std::string_view ClientSession::note_collection_write(const resp::Command& cmd,
                                                      const resp::CommandInfo& info) {
  if (cmd.argc() < 3) return {};
  const CollectionWrite w = collection_write(info.name);
  if (w.growth == Growth::LengthInReply) {
    next_hooks_.flags |= SlotHooks::kCollectionSize;
    next_hooks_.collection_key.assign(cmd.args[1]);
    next_hooks_.collection_cmd = &info;
    return {};
  }
  // The probe rides on the shared connection only: a dedicated one holds WATCH state or a
  // transaction, where an extra command is the client's business.
  if (w.growth != Growth::Probe || dedicated_ != nullptr) return {};
  const unsigned every = worker_.live().config.guard.collection_probe_every;
  if (every > 1 && worker_.random().uniform() * every >= 1.0) return {};
  return w.probe;
}

void ClientSession::send_size_probe(std::string_view probe, std::string_view key,
                                    const resp::CommandInfo& write) {
  upstream::UpstreamConnection* target = last_target_;  // where the write just went
  if (target == nullptr || dedicated_ != nullptr) return;
  // Its own slot right behind the write's: in order with the client's replies, discarded when
  // it reaches the head, so the client sees exactly one reply per request. It takes nothing of
  // the client's CLIENT REPLY state (SKIP applied to the write).
  const bool skip = skip_next_reply_;
  const std::uint64_t seq = push_slot(SlotKind::Normal);
  skip_next_reply_ = skip;
  Slot& slot = slots_[seq % slots_.size()];
  slot.discard = true;
  slot.hooks.reset();
  slot.hooks.flags = SlotHooks::kCollectionSize | SlotHooks::kSizeProbe;
  slot.hooks.collection_key.assign(key);
  slot.hooks.collection_cmd = &write;
  resp::write_command(target->write_buffer(), {probe, key});
  target->commit_request(this, seq, now_ + config_.upstream.request_timeout);
  if (inflight_++ == 0) keepalive_ = shared_from_this();
  if (metrics_) metrics_->inc(Metric::GuardSizeProbes);
}

void ClientSession::report_collection_size(const SlotHooks& h, std::string_view reply,
                                           const resp::ReplyInfo& info) {
  // ":<n>\r\n"; an error (WRONGTYPE, a lost connection) or LINSERT's -1 says nothing.
  if (info.type != ':' || h.collection_cmd == nullptr || reply.size() < 4) return;
  const std::size_t limit = big_collection_elements_;
  long long size = 0;
  const char* end = reply.data() + reply.size() - 2;
  if (std::from_chars(reply.data() + 1, end, size).ec != std::errc() || size <= 0 || limit == 0 ||
      static_cast<unsigned long long>(size) <= limit) {
    return;
  }
  const observability::CollectionType type = collection_type(h.collection_cmd->name);
  if (metrics_) metrics_->inc(Metric::GuardBigCollections, static_cast<std::size_t>(type));
  static LogLimiter limiter(std::chrono::seconds(1));
  std::uint64_t suppressed = 0;
  if (limiter.allow(suppressed)) {
    static constexpr std::string_view kTypes[] = {"list", "set", "sorted set", "hash", "stream"};
    spdlog::warn(
        "big collection: {} {} holds {} elements after {} (guard.big_collection_elements {}), "
        "client {} ({} similar suppressed)",
        kTypes[static_cast<std::size_t>(type)], std::string_view(h.collection_key).substr(0, 128),
        size, h.collection_cmd->name, limit, info_->addr, suppressed);
  }
}

}  // namespace respguard::server
