#include "respguard/server/client_session.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <charconv>
#include <cstring>

#include "respguard/common/errors.hpp"
#include "respguard/common/log_limiter.hpp"
#include "respguard/common/loop_clock.hpp"
#include "respguard/resp/writer.hpp"
#include "respguard/server/worker.hpp"

using respguard::observability::Metric;

namespace respguard::server {
namespace {

using resp::CommandId;
using resp::iequals;
using upstream::UpstreamConnection;

constexpr std::size_t kReadChunk = 16 * 1024;
constexpr std::size_t kKeepBuffer = 64 * 1024;  // larger buffers are released once drained
constexpr std::size_t kInitialSlots = 16;
// A client must finish its TLS handshake within this; nothing else bounds it when
// client.idle_timeout is 0, and a peer that never finishes would hold a connection slot.
constexpr std::chrono::seconds kTlsHandshakeTimeout{10};

std::string endpoint_text(const tcp::endpoint& ep) {
  if (ep.address().is_v6())
    return "[" + ep.address().to_string() + "]:" + std::to_string(ep.port());
  return ep.address().to_string() + ":" + std::to_string(ep.port());
}

// As Redis's string2ll: no leading zeros, no '+', no spaces.
bool parse_int(std::string_view s, long long& out) {
  if (s.empty()) return false;
  if (s.size() > 1 && (s[0] == '0' || (s[0] == '-' && s[1] == '0'))) return false;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc() && end == s.data() + s.size();
}

// Redis accepts printable ASCII without spaces in client names (clientSetName).
bool valid_client_name(std::string_view name) {
  for (char c : name) {
    if (c < '!' || c > '~') return false;
  }
  return true;
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

CommandId id_of(const resp::CommandInfo* info) {
  return info ? info->id : CommandId::Other;
}

}  // namespace

ClientSession::ClientSession(Worker& worker, tcp::socket socket, std::uint64_t id)
    : worker_(worker),
      socket_(std::move(socket)),
      id_(id),
      config_(worker.config()),
      metrics_(worker.config().admin.metrics ? &worker.metrics() : nullptr),
      state_metrics_(worker.metrics()),
      policies_(worker.shared().policies),
      parser_(worker.config().protocol),
      slots_(kInitialSlots) {
  boost::system::error_code ec;
  std::string addr = "?", laddr = "?";
  if (auto ep = socket_.remote_endpoint(ec); !ec) {
    addr = endpoint_text(ep);
    auto ip = ep.address();
    // A dual-stack listener sees IPv4 clients as ::ffff:a.b.c.d; limits name them a.b.c.d.
    if (ip.is_v6() && ip.to_v6().is_v4_mapped()) {
      ip = asio::ip::make_address_v4(asio::ip::v4_mapped, ip.to_v6());
    }
    peer_ip_ = ip.to_string();
  }
  if (auto ep = socket_.local_endpoint(ec); !ec) laddr = endpoint_text(ep);
  socket_.set_option(tcp::no_delay(true), ec);
  info_ = worker_.shared().registry.add(id_, std::move(addr), std::move(laddr));
  take_live_settings();
  if (worker_.live().acl->enabled()) acl_ = worker_.live().acl;
  set_authenticated(acl_ == nullptr && config_.upstream.password.empty());
  update_rate_identity();
  // The context current at accept: this connection keeps it, whatever a reload installs later.
  if (auto context = worker_.shared().tls.listener.current()) socket_.start_tls(std::move(context));
}

void ClientSession::take_live_settings() {
  const LiveConfig& live = worker_.live();
  live_generation_ = live.generation;
  policies_on_ = !live.rules.empty();
  guard_on_ = live.command_guard->enabled();
  big_value_bytes_ = live.config.guard.big_value_bytes;
  big_collection_elements_ = live.config.guard.big_collection_elements;
}

bool ClientSession::adopt_live_config() {
  take_live_settings();
  const LiveConfig& live = worker_.live();
  // Changed users apply to clients already logged in as them, as ACL SETUSER does in Redis; a
  // client whose user is gone is disconnected, as ACL DELUSER does. Turning client
  // authentication on or off applies to new connections: existing ones stay as they were (as
  // with Redis's requirepass).
  if (acl_ != nullptr && live.acl->enabled() && acl_ != live.acl) {
    acl_ = live.acl;
    if (acl_user_ != nullptr) {
      acl_user_ = acl_->find(user_);
      if (acl_user_ == nullptr) {
        spdlog::info("client {} ({}): user '{}' was removed by a reload; disconnecting", id_,
                     info_->addr, user_);
        close(CloseReason::Client);
        return false;
      }
    }
  }
  if (rate_limiter_ != live.rate_limiter) {
    rate_identity_.reset();
    update_rate_identity();
  }
  return true;
}

void ClientSession::update_rate_identity() {
  rate_limiter_ = worker_.live().rate_limiter;
  protection::RateLimiter& limiter = *rate_limiter_;
  if (!limiter.enabled()) return;
  const std::string& kind = limiter.config().identity;
  // A client without a name is limited by its address, not lumped with every unnamed client.
  const std::string& value = kind == "user"                            ? user_
                             : kind == "client_name" && !name_.empty() ? name_
                                                                       : peer_ip_;
  if (rate_identity_ && rate_identity_->name() == value) return;
  rate_identity_ = limiter.identity(value, LoopClock::now());
}

bool ClientSession::admit_rate(const resp::CommandInfo* info, Dispatch& out) {
  using Verdict = protection::Admission::Verdict;
  const bool is_write = info != nullptr && (info->flags & resp::kWrite);
  const protection::Admission a = rate_limiter_->admit(*rate_identity_, is_write, now_);
  if (a.verdict == Verdict::Admitted) return true;
  if (a.verdict == Verdict::Rejected) {
    state_metrics_.inc(observability::Metric::RateLimited,
                       static_cast<std::size_t>(observability::RateAction::Rejected));
    reply_error("ERR " + protection::rejection_message(*rate_identity_, a.write_limited));
    out = Dispatch::Done;
    return false;
  }
  // Delayed: its token is reserved; stop reading commands (later ones must not overtake it)
  // and dispatch it again when the delay is over.
  state_metrics_.inc(observability::Metric::RateLimited,
                     static_cast<std::size_t>(observability::RateAction::Delayed));
  rate_admitted_ = true;
  rate_paused_ = true;
  if (!rate_timer_) rate_timer_ = std::make_unique<asio::steady_timer>(socket_.get_executor());
  rate_timer_->expires_after(a.delay);
  rate_timer_->async_wait([weak = weak_from_this()](boost::system::error_code ec) {
    auto self = weak.lock();
    if (ec || !self || self->closed_) return;
    self->rate_paused_ = false;
    self->stalled_ = false;
    self->now_ = LoopClock::tick();
    self->process_input();  // the socket is still being read: nothing else to restart
  });
  out = Dispatch::Stall;
  return false;
}

ClientSession::~ClientSession() {
  state_metrics_.inc(observability::Metric::ClientConnectionsClosed,
                     static_cast<std::size_t>(close_reason_));
  worker_.shared().registry.remove(id_);
  worker_.shared().clients.fetch_sub(1, std::memory_order_relaxed);
  worker_.on_session_closed(this);
}

void ClientSession::start() {
  if (socket_.tls()) return start_tls_handshake();
  start_read();
}

void ClientSession::start_tls_handshake() {
  auto timer = std::make_shared<asio::steady_timer>(socket_.get_executor(), kTlsHandshakeTimeout);
  timer->async_wait([weak = weak_from_this()](boost::system::error_code ec) {
    auto self = weak.lock();
    if (ec || !self || self->closed_) return;
    boost::system::error_code ignored;
    self->socket_.close(ignored);  // the handshake's handler sees it fail, and counts a timeout
  });
  socket_.async_handshake(asio::ssl::stream_base::server, [this, self = shared_from_this(),
                                                           timer](boost::system::error_code ec) {
    timer->cancel();
    if (closed_) return;
    if (!ec) return start_read();
    const bool timed_out = SteadyClock::now() >= timer->expiry();
    const tls::FailureKind kind = timed_out ? tls::FailureKind::Timeout : tls::classify(ec);
    state_metrics_.inc(
        Metric::TlsHandshakeFailures,
        observability::series_index(Metric::TlsHandshakeFailures,
                                    static_cast<std::size_t>(observability::TlsSide::Client),
                                    static_cast<std::size_t>(kind)));
    // A scanner or a misconfigured fleet can fail thousands of handshakes: one line a second.
    static LogLimiter limiter(std::chrono::seconds(1));
    std::uint64_t suppressed = 0;
    if (limiter.allow(suppressed)) {
      spdlog::warn("client {} {}: TLS handshake failed: {}; closing ({} similar suppressed)", id_,
                   info_->addr,
                   timed_out
                       ? "not done within " + std::to_string(kTlsHandshakeTimeout.count()) + " s"
                       : tls::describe(ec, socket_.ssl()),
                   suppressed);
    }
    close(CloseReason::TlsHandshake);
  });
}

// ---------------------------------------------------------------------------- reading

void ClientSession::start_read() {
  if (closing_) return;
  // Size the buffer for a large bulk once the parser knows it, but never more than twice what
  // the client has sent: a 20-byte header claiming 512 MB must not make us allocate 512 MB.
  const std::size_t want = std::min(parser_.bytes_hint(), 2 * rbuf_.size() + kKeepBuffer);
  char* dst = rbuf_.prepare(kReadChunk, want);
  socket_.async_read_some(
      asio::buffer(dst, rbuf_.free_space()),
      [this, self = shared_from_this(), dst](boost::system::error_code ec, std::size_t n) {
        if (closed_) return;
        if (ec) {
          // Closing after a QUIT: the owed replies are still written.
          if (closing_) return maybe_finish();
          // The peer is gone; what is in flight is discarded on arrival.
          return close();
        }
        // A stalled session resumed meanwhile (a rate-limit delay ended, or the replies it
        // waited for came) ran process_input while this read was pending; emptying the buffer
        // rewinds it, so the bytes just read may lie past its end. prepare(0) moves nothing: it
        // is where the data ends now.
        if (char* tail = rbuf_.prepare(0); tail != dst) std::memmove(tail, dst, n);
        on_read(n);
      });
}

void ClientSession::on_read(std::size_t n) {
  rbuf_.commit(n);
  now_ = LoopClock::tick();
  if (metrics_) metrics_->inc(observability::Metric::ClientBytesReceived, 0, n);
  info_->last_active_ms.store(steady_ms(now_), std::memory_order_relaxed);
  const std::size_t query_limit = worker_.live().config.server.query_buffer_limit;
  if (query_limit > 0 && rbuf_.size() > query_limit) {
    spdlog::warn("client {} {}: query buffer limit ({} bytes) reached; closing", id_, info_->addr,
                 query_limit);
    reply_error(errors::kQueryBufferLimit);
    close_after_flush(CloseReason::QueryBufferLimit);
    flush_output();
    return;
  }
  process_input();
  // Here, not in process_input: no read is pending now, so nothing is reading into the memory.
  if (rbuf_.empty()) rbuf_.shrink_if_idle(kKeepBuffer);
  if (!closing_) start_read();
}

void ClientSession::process_input() {
  if (processing_ || closing_) return;
  processing_ = true;
  now_ = LoopClock::now();
  while (!closing_ && !stalled_ && !rbuf_.empty()) {
    resp::ParseResult r = parser_.parse(rbuf_.readable(), cmd_);
    if (r.status == resp::ParseStatus::NeedMore) break;
    if (r.status == resp::ParseStatus::Error) {
      // Redis answers a protocol error and closes the connection; so do we.
      // Not a command: counted as a protocol error only.
      scratch_.assign("-ERR ").append(r.error).append("\r\n");
      reply_local(scratch_, /*count=*/false);
      spdlog::debug("client {} {}: {}", id_, info_->addr, r.error);
      state_metrics_.inc(observability::Metric::ProtocolErrors);
      close_after_flush(CloseReason::ProtocolError);
      break;
    }
    if (!cmd_.empty()) {
      if (dispatch(cmd_) == Dispatch::Stall) {
        stalled_ = true;
        parser_.reset();  // the request is parsed again once the switch can happen
        break;
      }
      rate_admitted_ = false;
    }
    rbuf_.consume(r.consumed);
  }
  processing_ = false;
  if (last_target_ != nullptr) last_target_->flush();
  flush_output();
  maybe_finish();
}

// ---------------------------------------------------------------------------- dispatch

bool ClientSession::admit_guard(const resp::Command& cmd, const resp::CommandInfo* info) {
  using observability::GuardRefusal;
  using Refusal = protection::CommandGuard::Refusal;
  const Refusal r = worker_.live().command_guard->check(cmd.args, info, guard_reply_);
  if (r != Refusal::None) {
    if (metrics_) {
      metrics_->inc(observability::Metric::GuardRefused,
                    static_cast<std::size_t>(r == Refusal::Denied ? GuardRefusal::Denied
                                             : r == Refusal::TooManyArguments
                                                 ? GuardRefusal::TooManyArguments
                                             : r == Refusal::RequestTooBig ? GuardRefusal::RequestTooBig
                                                                           : GuardRefusal::ValueTooBig));
    }
    // Queued in a transaction, a refusal makes EXEC fail as a refused command does in Redis.
    if (in_multi_) multi_refused_ = true;
    reply_error(guard_reply_);
    return false;
  }
  if (big_value_bytes_ != 0 && info != nullptr && (info->flags & resp::kWrite)) {
    const std::size_t largest = protection::CommandGuard::largest_value(cmd.args, *info);
    if (largest > big_value_bytes_) {
      if (metrics_) metrics_->inc(observability::Metric::GuardBigValues);
      static LogLimiter limiter(std::chrono::seconds(1));
      std::uint64_t suppressed = 0;
      if (limiter.allow(suppressed)) {
        const std::string_view key = cmd.argc() > 1 ? cmd.args[1].substr(0, 128) : "";
        spdlog::warn(
            "big value: {} {} carries {} bytes (guard.big_value_bytes {}), client {} ({} similar "
            "suppressed)",
            info->name, key, largest, big_value_bytes_, info_->addr, suppressed);
      }
    }
  }
  return true;
}

ClientSession::Dispatch ClientSession::dispatch(const resp::Command& cmd) {
  if (worker_.live().generation != live_generation_ && !adopt_live_config()) {
    return Dispatch::Done;
  }
  const resp::CommandInfo* info = resp::lookup_command(cmd.args[0]);
  const CommandId id = info ? info->id : CommandId::Other;
  current_command_ = observability::command_label(info);
  // Inside MULTI nothing is refused: a refused queued command would make EXEC run the rest
  // (Redis aborts a transaction with a bad command), a refused EXEC would leave it open. MULTI
  // itself is counted. QUIT always gets through.
  if (rate_identity_ && !rate_admitted_ && !in_multi_ && id != CommandId::Quit) {
    Dispatch out;
    if (!admit_rate(info, out)) return out;
    rate_admitted_ = true;  // a Stall below (connection switch) must not take a second token
  }

  // With auth.users every command of an authenticated client is checked against its user's
  // ACL rules, as Redis checks them (a client without a user has not authenticated: NOAUTH).
  if (acl_user_ != nullptr && !admit_acl(cmd, info)) return Dispatch::Done;

  // The upstream's password guards the proxy too: an application that had to AUTH with Redis
  // must AUTH here, and nothing else gets through first (Redis's no-auth commands excepted).
  if (!authenticated_ && !(info != nullptr && (info->flags & resp::kNoAuth))) {
    reply_error(errors::kNoAuth);
    return Dispatch::Done;
  }

  if ((guard_on_ || big_value_bytes_ != 0) && !admit_guard(cmd, info)) return Dispatch::Done;

  // Hot keys: all but one command in hot_keys.sample_every pay only tick()'s decrement.
  if (protection::HotKeys* hot = worker_.hot_keys();
      hot != nullptr && hot->tick() && info != nullptr && info->first_key > 0 &&
      static_cast<std::size_t>(info->first_key) < cmd.argc()) {
    hot->add(cmd.args[static_cast<std::size_t>(info->first_key)]);
  }

  if (push_mode_) {
    // The dedicated connection speaks for the client now: (P|S)SUBSCRIBE replies, PING in
    // subscribed context, QUIT and RESET all come from Redis, in order with the messages.
    forward_push_mode(cmd);
    record_command(current_command_, false, std::chrono::nanoseconds{0});
    if (id == CommandId::Reset) {
      db_ = 0;
      proto_ = 2;
    }
    return Dispatch::Done;
  }
  if (in_multi_) {
    // Redis queues everything between MULTI and EXEC; even PING must come back inside EXEC.
    switch (id) {
      case CommandId::Exec:
        if (multi_refused_) {
          // As Redis after a refused queued command: nothing of the transaction runs. The
          // upstream gets DISCARD, whose +OK the client does not see; it sees EXECABORT.
          const bool client_skips = skip_next_reply_;  // CLIENT REPLY SKIP before EXEC
          rewrite_ = "*1\r\n$7\r\nDISCARD\r\n";
          skip_next_reply_ = true;
          if (forward(cmd, info, true, SlotKind::Normal) == Dispatch::Stall) {
            rewrite_ = {};
            skip_next_reply_ = client_skips;
            return Dispatch::Stall;
          }
          skip_next_reply_ = client_skips;
          in_multi_ = false;
          watching_ = false;
          multi_refused_ = false;
          abandon_multi_hooks();
          reply_error(errors::kExecAbort);
          return Dispatch::Done;
        }
        [[fallthrough]];
      case CommandId::Discard:
        in_multi_ = false;
        watching_ = false;
        multi_refused_ = false;
        if (id == CommandId::Exec) {
          next_hooks_.swap(multi_hooks_);  // the queued writes run with EXEC
          multi_hooks_.reset();
        } else {
          abandon_multi_hooks();  // DISCARD: they never run
        }
        return forward(cmd, info, true, id == CommandId::Exec ? SlotKind::Exec : SlotKind::Normal);
      case CommandId::Quit:
      case CommandId::Reset:
        break;  // handled below
      case CommandId::Select:
        if (cmd.argc() == 2) {
          long long db;
          if (parse_int(cmd.args[1], db)) multi_select_db_ = static_cast<int>(db);
        }
        if (dedicated_) dedicated_->forget_db();
        return forward(cmd, info, true);
      default:
        if (policies_on_ && info != nullptr && !(info->flags & resp::kReadonly)) {
          policy_write(cmd, *info);
        }
        // HELLO, CLIENT ..., SUBSCRIBE, MONITOR queued in a transaction change the connection
        // when EXEC runs: it must not go back to the pool for another client afterwards.
        if (id != CommandId::Other && id != CommandId::Blocking && id != CommandId::XRead &&
            id != CommandId::XReadGroup) {
          dedicated_dirty_ = true;
        }
        return forward(cmd, info, true);
    }
  }

  switch (id) {
    case CommandId::Other: {
      if (policies_on_ && info != nullptr) {
        Dispatch d;
        if (apply_policies(cmd, *info, d)) return d;
      }
      if (big_collection_elements_ == 0 || info == nullptr || !(info->flags & resp::kWrite)) {
        return forward(cmd, info, false);
      }
      // A collection write: its reply's hooks read a list's length, or a size probe follows it
      // on the same connection (only once it was sent: not after a stall or a local error).
      const std::string_view probe = note_collection_write(cmd, *info);
      const std::size_t inflight = inflight_;
      const Dispatch d = forward(cmd, info, false);
      if (!probe.empty() && d == Dispatch::Done && inflight_ > inflight) {
        send_size_probe(probe, cmd.args[1], *info);
      }
      return d;
    }
    case CommandId::Ping:
      if (cmd.argc() > 2) {
        reply_wrong_args("ping");
      } else if (cmd.argc() == 2) {
        scratch_.clear();
        resp::write_bulk(scratch_, cmd.args[1]);
        reply_local(scratch_);
      } else {
        reply_local("+PONG\r\n");
      }
      return Dispatch::Done;
    case CommandId::Echo:
      if (cmd.argc() != 2) {
        reply_wrong_args("echo");
      } else {
        scratch_.clear();
        resp::write_bulk(scratch_, cmd.args[1]);
        reply_local(scratch_);
      }
      return Dispatch::Done;
    case CommandId::Quit:
      reply_local("+OK\r\n");
      close_after_flush(CloseReason::Quit);
      return Dispatch::Done;
    case CommandId::Reset:
      cmd_reset();
      return Dispatch::Done;
    case CommandId::Select:
      cmd_select(cmd);
      return Dispatch::Done;
    case CommandId::Hello:
      if (dedicated_) {
        dedicated_dirty_ = true;  // the connection's protocol changes with the client's
        return forward(cmd, info, true);
      }
      cmd_hello(cmd);
      return Dispatch::Done;
    case CommandId::Auth:
      cmd_auth(cmd);
      return Dispatch::Done;
    case CommandId::Client:
      return cmd_client(cmd);
    case CommandId::Multi: {
      Dispatch d = forward(cmd, info, true);
      if (d == Dispatch::Done && dedicated_) {
        in_multi_ = true;
        multi_select_db_ = -1;
      }
      return d;
    }
    case CommandId::Watch: {
      Dispatch d = forward(cmd, info, true);
      if (d == Dispatch::Done && dedicated_) watching_ = true;
      return d;
    }
    case CommandId::Exec:
    case CommandId::Discard:
    case CommandId::Unwatch:
      // Outside MULTI: with WATCH state they belong on its connection; otherwise Redis gives
      // its usual answer ("ERR EXEC without MULTI", +OK) from any connection.
      if (id != CommandId::Unwatch || watching_) watching_ = false;
      return forward(cmd, info, dedicated_ != nullptr);
    case CommandId::Subscribe:
    case CommandId::PSubscribe:
    case CommandId::SSubscribe:
    case CommandId::Monitor:
      return enter_push_mode(cmd);
    case CommandId::Blocking:
    case CommandId::XRead:
    case CommandId::XReadGroup: {
      auto timeout = resp::blocking_timeout_ms(*info, cmd.args);
      if (!timeout && id != CommandId::Blocking) return forward(cmd, info, false);
      return forward(cmd, info, true);
    }
    case CommandId::Unsupported:
      reply_error(errors::kUnsupportedCommand);
      return Dispatch::Done;
  }
  return forward(cmd, info, false);
}

UpstreamConnection* ClientSession::acquire_dedicated() {
  if (dedicated_) return dedicated_.get();
  dedicated_ = worker_.pool().acquire_dedicated(proto_);
  if (!dedicated_) {
    spdlog::warn("client {}: {}", id_, errors::kTooManyPinned);
    reply_error(errors::kTooManyPinned);
    return nullptr;
  }
  dedicated_dirty_ = false;
  std::weak_ptr<ClientSession> weak = shared_from_this();
  dedicated_->set_on_closed([weak] {
    auto self = weak.lock();
    if (!self || self->closed_) return;
    // Its pending requests were answered with errors already. A client that was in a
    // transaction or subscribed must learn its state is gone: close it, as Redis would.
    const bool stateful = self->in_multi_ || self->watching_ || self->push_mode_;
    self->drop_dedicated(false);
    if (stateful) {
      self->close_after_flush(CloseReason::UpstreamLost);
      self->flush_output();
      self->maybe_finish();
    }
  });
  return dedicated_.get();
}

void ClientSession::drop_dedicated(bool clean) {
  if (!dedicated_) return;
  auto conn = std::move(dedicated_);
  dedicated_.reset();
  if (last_target_ == conn.get()) last_target_ = nullptr;
  conn->set_on_closed(nullptr);
  if (in_multi_) abandon_multi_hooks();
  in_multi_ = watching_ = push_mode_ = false;
  worker_.pool().release_dedicated(std::move(conn), clean && !dedicated_dirty_);
}

void ClientSession::maybe_release_dedicated() {
  if (dedicated_ && inflight_ == 0 && !in_multi_ && !watching_ && !push_mode_) {
    drop_dedicated(true);
  }
}

bool ClientSession::would_stall() {
  if (inflight_ == 0) return false;  // nothing to wait for: no need to find the target
  UpstreamConnection* target = dedicated_ ? dedicated_.get() : &worker_.pool().shared(proto_, id_);
  return target != last_target_;
}

ClientSession::Dispatch ClientSession::forward(const resp::Command& cmd,
                                               const resp::CommandInfo* info, bool need_dedicated,
                                               SlotKind kind) {
  UpstreamConnection* target = dedicated_.get();
  if (need_dedicated && target == nullptr) {
    if (inflight_ > 0) return Dispatch::Stall;
    target = acquire_dedicated();
    if (target == nullptr) return Dispatch::Done;
  }
  if (target == nullptr) target = &worker_.pool().shared(proto_, id_);
  if (inflight_ > 0 && target != last_target_) return Dispatch::Stall;
  // Asked only for a request that can be sent: an allowed half-open probe must get a verdict.
  const bool accepting = target->accepting();
  const bool open_circuit = accepting && !worker_.shared().guard.allow(now_, state_metrics_);
  if (!accepting || open_circuit) {
    const std::string_view why = open_circuit ? errors::kCircuitOpen : errors::kUpstreamUnavailable;
    if (next_hooks_.flags != 0) {
      // Policy bookkeeping was started for this request: end it the way a reply would.
      const std::uint64_t seq = waiting_slot();
      slots_[seq % slots_.size()].hooks.swap(next_hooks_);
      next_hooks_.reset();
      rewrite_ = {};
      error_reply_.assign("-").append(why).append("\r\n");
      resp::ReplyInfo info_error;
      info_error.type = '-';
      auto self = shared_from_this();
      on_reply(seq, error_reply_, info_error);
      return Dispatch::Done;
    }
    rewrite_ = {};
    reply_error(why);
    return Dispatch::Done;
  }

  auto deadline = now_ + config_.upstream.request_timeout;
  bool blocking = false;
  if (info != nullptr && !in_multi_ && kind == SlotKind::Normal &&
      (info->id == CommandId::Blocking || info->id == CommandId::XRead ||
       info->id == CommandId::XReadGroup)) {
    if (auto timeout = resp::blocking_timeout_ms(*info, cmd.args)) {
      blocking = true;
      deadline = *timeout == 0 ? UpstreamConnection::kNoDeadline
                               : now_ + std::chrono::milliseconds(*timeout) +
                                     config_.upstream.blocking_timeout_margin;
    }
  }
  // Inside MULTI the connection is where MULTI found it: a SELECT of ours would be queued
  // into the transaction (and add an element to EXEC's reply).
  const CommandId id = id_of(info);
  if (!in_multi_ && id != CommandId::Exec && id != CommandId::Discard) {
    target->select_db(db_, now_ + config_.upstream.request_timeout);
  }
  const std::uint64_t seq = push_slot(kind);
  if (!rewrite_.empty()) {
    target->write_buffer().append(rewrite_);
    rewrite_ = {};
  } else if (cmd.inline_form) {
    resp::write_command(target->write_buffer(), cmd.args);
  } else {
    target->write_buffer().append(cmd.raw);
  }
  if (next_hooks_.flags != 0) {
    slots_[seq % slots_.size()].hooks.swap(next_hooks_);
    next_hooks_.reset();
  }
  target->commit_request(this, seq, deadline, blocking);
  if (inflight_++ == 0) keepalive_ = shared_from_this();
  last_target_ = target;
  return Dispatch::Done;
}

ClientSession::Dispatch ClientSession::enter_push_mode(const resp::Command& cmd) {
  // Every reply owed must be matched before replies start to pass through unmatched.
  if (inflight_ > 0) return Dispatch::Stall;
  if (acquire_dedicated() == nullptr) return Dispatch::Done;
  push_mode_ = true;
  dedicated_->set_push_sink(this);
  forward_push_mode(cmd);
  record_command(current_command_, false, std::chrono::nanoseconds{0});
  return Dispatch::Done;
}

void ClientSession::forward_push_mode(const resp::Command& cmd) {
  UpstreamConnection* conn = dedicated_.get();
  conn->select_db(db_, now_ + config_.upstream.request_timeout);
  if (cmd.inline_form) {
    scratch_.clear();
    resp::write_command(scratch_, cmd.args);
    conn->send_unmatched(scratch_);
  } else {
    conn->send_unmatched(cmd.raw);
  }
  last_target_ = conn;
}

// ---------------------------------------------------------------------------- local commands

void ClientSession::cmd_select(const resp::Command& cmd) {
  if (cmd.argc() != 2) return reply_wrong_args("select");
  long long db;
  if (!parse_int(cmd.args[1], db)) return reply_error(errors::kNotInteger);
  if (db < 0 || db >= static_cast<long long>(worker_.shared().upstream_info->databases())) {
    return reply_error(errors::kDbIndexOutOfRange);
  }
  db_ = static_cast<int>(db);
  worker_.shared().registry.update(*info_, [&](ClientInfo& i) { i.db = db_; });
  reply_local("+OK\r\n");
}

bool ClientSession::credentials_ok(std::string_view user, std::string_view password) const {
  const auto& up = config_.upstream;
  if (up.password.empty()) return user == "default";  // Redis's nopass default user
  std::string_view expected_user =
      up.username.empty() ? std::string_view("default") : std::string_view(up.username);
  return user == expected_user && password == up.password;
}

void ClientSession::set_authenticated(bool authenticated) {
  authenticated_ = authenticated;
  resp::Limits limits = config_.protocol;
  limits.unauthenticated = !authenticated;
  parser_.set_limits(limits);
}

bool ClientSession::acl_login(std::string_view user, std::string_view password) {
  using observability::AuthFailure;
  // Over the limit nothing is checked: guessing gets no faster with more connections.
  if (!acl_->admit_attempt(now_)) {
    state_metrics_.inc(Metric::AuthFailures,
                       static_cast<std::size_t>(AuthFailure::RateLimited));
    reply_error(errors::kWrongPass);
    return false;
  }
  const protection::Acl::User* u = acl_->authenticate(user, password);
  if (u == nullptr) {
    state_metrics_.inc(Metric::AuthFailures,
                       static_cast<std::size_t>(AuthFailure::WrongPassword));
    spdlog::debug("client {} {}: AUTH failed for user '{}'", id_, info_->addr,
                  user.substr(0, 64));
    reply_error(errors::kWrongPass);
    return false;  // as Redis: a failed AUTH leaves an authenticated client as it was
  }
  acl_->attempt_succeeded();
  acl_user_ = u;
  user_ = u->name;
  set_authenticated(true);
  update_rate_identity();
  return true;
}

bool ClientSession::admit_acl(const resp::Command& cmd, const resp::CommandInfo* info) {
  const protection::AclVerdict verdict = acl_user_->rules.check(info, cmd.args);
  if (!verdict.allowed()) {
    // As Redis: a refused command queued in a transaction makes EXEC fail with EXECABORT.
    if (in_multi_) multi_refused_ = true;
    reply_error(protection::acl_error(verdict));
    return false;
  }
  // ACL WHOAMI names the proxy's user, not the upstream connection's (queued in MULTI or in
  // push mode it goes to Redis like everything else there).
  if (info != nullptr && info->name == "acl" && cmd.argc() == 2 &&
      iequals(cmd.args[1], "whoami") && !in_multi_ && !push_mode_) {
    scratch_.clear();
    resp::write_bulk(scratch_, acl_user_->name);
    reply_local(scratch_);
    return false;
  }
  return true;
}

void ClientSession::cmd_auth(const resp::Command& cmd) {
  // Clients authenticate with the upstream's credentials (the proxy holds them), so an app
  // moved from Redis to the sidecar keeps working unchanged.
  if (cmd.argc() < 2 || cmd.argc() > 3) return reply_wrong_args("auth");
  if (acl_ != nullptr) {
    // The proxy's own users: AUTH pass is the user "default" (when configured), as in Redis.
    const std::string_view user = cmd.argc() == 3 ? cmd.args[1] : std::string_view("default");
    if (acl_login(user, cmd.args.back())) reply_local("+OK\r\n");
    return;
  }
  if (cmd.argc() == 2 && config_.upstream.password.empty()) {
    return reply_error(errors::kNoPasswordConfigured);
  }
  const std::string_view user = cmd.argc() == 3 ? cmd.args[1] : std::string_view("default");
  const std::string_view default_user =
      config_.upstream.username.empty() ? std::string_view("default") : config_.upstream.username;
  if (!credentials_ok(cmd.argc() == 3 ? user : default_user, cmd.args.back())) {
    return reply_error(errors::kWrongPass);
  }
  set_authenticated(true);
  user_ = cmd.argc() == 3 ? user : default_user;
  update_rate_identity();
  reply_local("+OK\r\n");
}

void ClientSession::cmd_hello(const resp::Command& cmd) {
  int proto = proto_;
  if (cmd.argc() >= 2) {
    long long v;
    if (!parse_int(cmd.args[1], v)) {
      return reply_error("ERR Protocol version is not an integer or out of range");
    }
    if (v < 2 || v > 3) return reply_error(errors::kNoProto);
    proto = static_cast<int>(v);
  }
  std::string_view new_name;
  std::string_view auth_user;
  std::string_view auth_password;
  bool set_name = false;
  bool authenticates = false;
  for (std::size_t i = 2; i < cmd.argc(); ++i) {
    if (iequals(cmd.args[i], "auth") && i + 2 < cmd.argc()) {
      // Checked after the options, as Redis does (a bad SETNAME is reported first).
      authenticates = true;
      auth_user = cmd.args[i + 1];
      auth_password = cmd.args[i + 2];
      i += 2;
    } else if (iequals(cmd.args[i], "setname") && i + 1 < cmd.argc()) {
      new_name = cmd.args[++i];
      if (!valid_client_name(new_name)) return reply_error(errors::kClientNameInvalid);
      set_name = true;
    } else {
      return reply_error("ERR Syntax error in HELLO option '" + std::string(cmd.args[i]) + "'");
    }
  }
  if (authenticates) {
    if (acl_ != nullptr) {
      if (!acl_login(auth_user, auth_password)) return;  // replied WRONGPASS
    } else if (!credentials_ok(auth_user, auth_password)) {
      return reply_error(errors::kWrongPass);
    }
  }
  if (!authenticated_ && !authenticates) return reply_error(errors::kHelloNoAuth);
  set_authenticated(true);
  proto_ = proto;
  if (set_name) name_ = std::string(new_name);
  if (!auth_user.empty()) user_ = auth_user;
  update_rate_identity();
  worker_.shared().registry.update(*info_, [&](ClientInfo& i) {
    i.resp = proto_;
    i.name = name_;
  });
  const auto& up = *worker_.shared().upstream_info;
  scratch_.clear();
  resp::write_map_header(scratch_, 7, proto_);
  resp::write_bulk(scratch_, "server");
  resp::write_bulk(scratch_, "redis");
  resp::write_bulk(scratch_, "version");
  resp::write_bulk(scratch_, up.version());
  resp::write_bulk(scratch_, "proto");
  resp::write_integer(scratch_, proto_);
  resp::write_bulk(scratch_, "id");
  resp::write_integer(scratch_, static_cast<std::int64_t>(id_));
  resp::write_bulk(scratch_, "mode");
  resp::write_bulk(scratch_, up.mode());
  resp::write_bulk(scratch_, "role");
  resp::write_bulk(scratch_, "master");
  resp::write_bulk(scratch_, "modules");
  resp::write_array_header(scratch_, 0);
  reply_local(scratch_);
}

ClientSession::Dispatch ClientSession::cmd_client(const resp::Command& cmd) {
  if (cmd.argc() < 2) {
    reply_wrong_args("client");
    return Dispatch::Done;
  }
  const std::string_view sub = cmd.args[1];
  if (iequals(sub, "setname")) {
    if (cmd.argc() != 3) {
      reply_wrong_args("client|setname");
    } else if (!valid_client_name(cmd.args[2])) {
      reply_error(errors::kClientNameInvalid);
    } else {
      name_ = std::string(cmd.args[2]);
      worker_.shared().registry.update(*info_, [&](ClientInfo& i) { i.name = name_; });
      update_rate_identity();
      reply_local("+OK\r\n");
    }
  } else if (iequals(sub, "getname")) {
    scratch_.clear();
    if (name_.empty()) {
      resp::write_null(scratch_, proto_);
    } else {
      resp::write_bulk(scratch_, name_);
    }
    reply_local(scratch_);
  } else if (iequals(sub, "id")) {
    scratch_.clear();
    resp::write_integer(scratch_, static_cast<std::int64_t>(id_));
    reply_local(scratch_);
  } else if (iequals(sub, "setinfo")) {
    if (cmd.argc() != 4) {
      reply_wrong_args("client|setinfo");
    } else if (!valid_client_name(cmd.args[3])) {
      reply_error("ERR " + std::string(cmd.args[2]) +
                  " cannot contain spaces, newlines or special characters.");
    } else if (iequals(cmd.args[2], "lib-name") || iequals(cmd.args[2], "lib-ver")) {
      const bool is_name = iequals(cmd.args[2], "lib-name");
      std::string value(cmd.args[3]);
      worker_.shared().registry.update(
          *info_, [&](ClientInfo& i) { (is_name ? i.lib_name : i.lib_ver) = value; });
      reply_local("+OK\r\n");
    } else {
      reply_error("ERR Unrecognized option '" + std::string(cmd.args[2]) + "'");
    }
  } else if (iequals(sub, "info")) {
    scratch_.clear();
    resp::write_verbatim(scratch_, worker_.shared().registry.info_line(*info_), proto_);
    reply_local(scratch_);
  } else if (iequals(sub, "list")) {
    scratch_.clear();
    resp::write_verbatim(scratch_, worker_.shared().registry.list(), proto_);
    reply_local(scratch_);
  } else if (iequals(sub, "reply")) {
    if (cmd.argc() != 3) {
      reply_wrong_args("client|reply");
    } else if (iequals(cmd.args[2], "on")) {
      reply_off_ = skip_next_reply_ = false;
      reply_local("+OK\r\n");
    } else if (iequals(cmd.args[2], "off")) {
      reply_off_ = true;  // no reply, not even to this command
    } else if (iequals(cmd.args[2], "skip")) {
      skip_next_reply_ = !reply_off_;
    } else {
      reply_error(errors::kSyntax);
    }
  } else if (iequals(sub, "tracking")) {
    // Invalidation pushes arrive on the tracking connection: give the client its own.
    return enter_push_mode(cmd);
  } else if (iequals(sub, "kill") || iequals(sub, "unblock")) {
    reply_error(errors::kClientIdsAreLocal);
  } else if (iequals(sub, "no-evict") || iequals(sub, "no-touch")) {
    // Per-connection modes of Redis: on a shared connection they would apply to every client.
    if (cmd.argc() != 3 || !(iequals(cmd.args[2], "on") || iequals(cmd.args[2], "off"))) {
      reply_error(errors::kSyntax);
    } else {
      reply_local("+OK\r\n");  // accepted, no effect behind a proxy (docs/architecture.md)
    }
  } else if (iequals(sub, "maint_notifications")) {
    reply_error(errors::kPerConnectionOption);
  } else {
    // PAUSE, UNPAUSE, CACHING, GETREDIR, TRACKINGINFO, ...: Redis answers.
    return forward(cmd, resp::lookup_command(cmd.args[0]), false);
  }
  return Dispatch::Done;
}

void ClientSession::cmd_reset() {
  // RESET: leave MULTI/WATCH/subscriptions, db 0, RESP2, no name, replies on.
  if (dedicated_) {
    if (inflight_ > 0) {
      // Answered in order once the dedicated connection's replies are in: close it now and
      // let those requests fail fast rather than wait for a blocked call.
      drop_dedicated(false);
    } else {
      drop_dedicated(!in_multi_ && !watching_ && !push_mode_);
    }
  }
  in_multi_ = watching_ = push_mode_ = false;
  db_ = 0;
  proto_ = 2;
  name_.clear();
  // Back to the default user: with auth.users, unauthenticated (AUTH again).
  set_authenticated(acl_ == nullptr && config_.upstream.password.empty());
  acl_user_ = nullptr;
  user_ = "default";
  update_rate_identity();
  reply_off_ = skip_next_reply_ = false;
  worker_.shared().registry.update(*info_, [&](ClientInfo& i) {
    i.db = 0;
    i.resp = 2;
    i.name.clear();
  });
  reply_local("+RESET\r\n");
}

// ---------------------------------------------------------------------------- replies

std::uint64_t ClientSession::push_slot(SlotKind kind) {
  if (tail_seq_ - head_seq_ == slots_.size()) {
    // Grow the ring, keeping sequence -> index = seq % size.
    std::vector<Slot> bigger(slots_.size() * 2);
    for (std::uint64_t s = head_seq_; s != tail_seq_; ++s) {
      bigger[s % bigger.size()] = std::move(slots_[s % slots_.size()]);
    }
    slots_.swap(bigger);
  }
  Slot& slot = slots_[tail_seq_ % slots_.size()];
  slot.done = false;
  slot.kind = kind;
  slot.discard = reply_off_ || skip_next_reply_;
  slot.command = static_cast<std::uint16_t>(current_command_);
  slot.start = now_;
  slot.data.clear();
  skip_next_reply_ = false;
  return tail_seq_++;
}

void ClientSession::record_command(std::size_t command, bool error,
                                   std::chrono::nanoseconds latency) {
  if (metrics_ == nullptr) return;
  using observability::Metric;
  // series_index(Commands, command, result), inlined: the result label has two values.
  metrics_->inc(Metric::Commands, command * 2 + (error ? 1 : 0));
  metrics_->observe(Metric::RequestDuration, latency);
}

void ClientSession::reply_local(std::string_view bytes, bool count) {
  if (count) record_command(current_command_, bytes[0] == '-', std::chrono::nanoseconds{0});
  if (reply_off_ || skip_next_reply_) {
    skip_next_reply_ = false;
    return;
  }
  if (head_seq_ == tail_seq_) {
    append_output(bytes);
    return;
  }
  // Requests ahead of this one are still in flight: wait in a slot.
  const std::uint64_t seq = push_slot(SlotKind::Normal);
  Slot& slot = slots_[seq % slots_.size()];
  slot.data.assign(bytes);
  slot.done = true;
}

void ClientSession::reply_error(std::string_view message) {
  std::string bytes;
  bytes.reserve(message.size() + 3);
  bytes.append("-").append(message).append("\r\n");
  reply_local(bytes);
}

void ClientSession::reply_wrong_args(std::string_view command) {
  reply_error("ERR wrong number of arguments for '" + lower(command) + "' command");
}

void ClientSession::on_reply(std::uint64_t cookie, std::string_view reply,
                             const resp::ReplyInfo& info) {
  if (cookie == UpstreamConnection::kPushCookie) {
    append_output(reply);
    schedule_flush();
    return;
  }
  Slot& slot = slots_[cookie % slots_.size()];
  if (slot.kind == SlotKind::Exec && multi_select_db_ >= 0) {
    // A SELECT queued in the transaction ran if EXEC ran.
    if (info.type == '*' && !info.is_null) db_ = multi_select_db_;
    multi_select_db_ = -1;
  }
  const bool probe = slot.hooks.flags & SlotHooks::kSizeProbe;  // not a client's command
  if (slot.hooks.flags != 0 && !run_hooks(slot, cookie, reply, info)) return;
  if (!probe) record_command(slot.command, info.is_error(), LoopClock::now() - slot.start);
  complete_slot(cookie, reply, nullptr);  // may drop the last reference to this session
}

void ClientSession::deliver(std::uint64_t cookie, SharedBytes reply, resp::ReplyInfo info) {
  if (cookie < head_seq_ || cookie >= tail_seq_) return;  // answered already
  Slot& slot = slots_[cookie % slots_.size()];
  if (slot.done) return;
  const auto now = LoopClock::tick();
  if (!reply && (slot.hooks.flags & SlotHooks::kLeaseWaiting)) {
    // The lease passed to us (its holder left or the key changed): we load the key, unless we
    // are gone too, in which case it passes on at once.
    grant_lease(slot.hooks.dk, slot.hooks.lease_wait);
    if (closed_) release_leases();
    if (metrics_) {
      metrics_->inc(Metric::LeaseWaitOutcomes,
                    static_cast<std::size_t>(observability::LeaseOutcome::Promoted));
    }
  } else if (reply && slot.hooks.flags != 0 && !run_hooks(slot, cookie, *reply, info)) {
    return;
  }
  record_command(slot.command, info.is_error(), now - slot.start);
  if (!reply || info.is_null) {
    // A nil in this client's own protocol ("$-1" or "_"); a bulk or an error reads the same
    // in RESP2 and RESP3, so other replies are shared as they are.
    scratch_.clear();
    resp::write_null(scratch_, proto_);
    complete_slot(cookie, scratch_, nullptr);
  } else {
    complete_slot(cookie, {}, reply);
  }
  worker_.flush_dirty();
}

// The reply of slot `cookie` (bytes, or a buffer shared with other clients) is ready.
void ClientSession::complete_slot(std::uint64_t cookie, std::string_view reply,
                                  const SharedBytes& shared) {
  Slot& slot = slots_[cookie % slots_.size()];
  slot.hooks.reset();
  if (cookie == head_seq_) {
    if (!slot.discard && !closed_) {
      if (shared) {
        append_output(shared);
      } else {
        append_output(reply);
      }
    }
    ++head_seq_;
    pop_completed_slots();
  } else if (shared) {
    slot.shared = shared;
    slot.done = true;
  } else {
    slot.data.assign(reply);
    slot.done = true;
  }
  if (--inflight_ == 0) {
    auto self = std::move(keepalive_);  // may be the last reference: keep us alive to the end
    if (closed_) return;
    maybe_release_dedicated();
    if (stalled_ && !resume_posted_ && !rate_paused_) {
      resume_posted_ = true;
      asio::post(socket_.get_executor(), [this, self] {
        resume_posted_ = false;
        stalled_ = false;
        process_input();
      });
    }
    schedule_flush();
    return;
  }
  schedule_flush();
}

void ClientSession::schedule_flush() {
  if (dirty_ || closed_) return;
  dirty_ = true;
  worker_.mark_dirty(shared_from_this());
}

void ClientSession::pop_completed_slots() {
  while (head_seq_ != tail_seq_) {
    Slot& slot = slots_[head_seq_ % slots_.size()];
    if (!slot.done) break;
    if (!slot.discard && !closed_) {
      if (slot.shared) {
        append_output(std::move(slot.shared));
      } else {
        append_output(slot.data);
      }
    }
    slot.shared.reset();
    slot.done = false;
    ++head_seq_;
  }
}

void ClientSession::append_output(std::string_view bytes) {
  if (closed_) return;
  out_.append(bytes);
  check_output_limit();
}

void ClientSession::append_output(SharedBytes bytes) {
  if (closed_) return;
  out_.append_shared(std::move(bytes));
  check_output_limit();
}

void ClientSession::check_output_limit() {
  const std::size_t limit = push_mode_ ? worker_.live().config.server.pubsub_output_buffer_limit
                                       : worker_.live().config.server.output_buffer_limit;
  if (limit > 0 && out_.bytes() > limit) {
    // A client that does not read its replies must not make us hold unbounded memory.
    static LogLimiter limiter(std::chrono::seconds(1));
    if (std::uint64_t suppressed = 0; limiter.allow(suppressed)) {
      spdlog::warn(
          "client {} {}: output buffer limit ({} bytes) reached; closing ({} similar "
          "suppressed)",
          id_, info_->addr, limit, suppressed);
    }
    close(CloseReason::OutputBufferLimit);
  }
}

void ClientSession::flush_output() {
  dirty_ = false;
  if (!closed_ && !out_.writing() && !out_.empty()) start_write();
}

void ClientSession::start_write() {
  asio::async_write(socket_, out_.begin_write(),
                    [this, self = shared_from_this()](boost::system::error_code ec, std::size_t n) {
                      out_.done();
                      if (closed_) return;
                      if (ec) return close();
                      if (metrics_) metrics_->inc(observability::Metric::ClientBytesSent, 0, n);
                      flush_output();
                      maybe_finish();
                    });
}

void ClientSession::close_after_flush(CloseReason reason) {
  close_reason_ = reason;
  closing_ = true;  // no more requests are dispatched; replies already owed are still written
}

void ClientSession::begin_drain() {
  draining_ = true;
  maybe_finish();
}

void ClientSession::maybe_finish() {
  if (closed_) return;
  const bool nothing_owed =
      inflight_ == 0 && head_seq_ == tail_seq_ && !out_.writing() && out_.empty();
  if (!nothing_owed) return;
  if (closing_) {
    close(close_reason_);
  } else if (draining_ && (push_mode_ || (rbuf_.empty() && unread_bytes() == 0))) {
    // Subscribers resubscribe elsewhere; nothing of theirs is in flight.
    close(CloseReason::Shutdown);
  }
}

std::size_t ClientSession::unread_bytes() {
  // Requests still in the kernel's buffer are owed replies too; closing with unread data
  // would also make the kernel send a reset instead of our last replies.
  boost::system::error_code ec;
  const std::size_t n = socket_.available(ec);
  return ec ? 0 : n;
}

void ClientSession::check_idle(SteadyClock::time_point now, std::chrono::milliseconds timeout) {
  if (closed_ || push_mode_ || inflight_ > 0) return;
  const std::int64_t idle = steady_ms(now) - info_->last_active_ms.load(std::memory_order_relaxed);
  if (idle > timeout.count()) {
    // Routine for pooled clients that went quiet, but a burst of these means clients that hold
    // connections they do not use: one line a second with a count.
    static LogLimiter limiter(std::chrono::seconds(1));
    if (std::uint64_t suppressed = 0; limiter.allow(suppressed)) {
      spdlog::info(
          "client {} {}: idle for {} ms (client.idle_timeout {} ms); closing ({} similar "
          "suppressed)",
          id_, info_->addr, idle, timeout.count(), suppressed);
    }
    close(CloseReason::IdleTimeout);
  }
}

void ClientSession::close(CloseReason reason) {
  if (closed_) return;
  if (close_reason_ == CloseReason::Client) close_reason_ = reason;
  auto self = shared_from_this();          // dropping the dedicated connection may answer our slots
  if (policies_on_) cancel_lease_waits();  // before anything else can hand us a lease
  closed_ = true;
  closing_ = true;
  boost::system::error_code ignored;
  socket_.close(ignored);
  out_.clear();
  // A dedicated connection with a request in flight (a BLPOP) must not outlive its client,
  // or Redis would hand it the next element.
  if (dedicated_) drop_dedicated(inflight_ == 0 && !in_multi_ && !watching_ && !push_mode_);
  if (!held_leases_.empty()) release_leases();
}

}  // namespace respguard::server
