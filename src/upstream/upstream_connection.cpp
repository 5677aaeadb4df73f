#include "respguard/upstream/upstream_connection.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <charconv>
#include <vector>

#include "respguard/common/errors.hpp"
#include "respguard/common/log_limiter.hpp"
#include "respguard/common/loop_clock.hpp"
#include "respguard/resp/value.hpp"
#include "respguard/resp/writer.hpp"
#include "respguard/upstream/upstream_guard.hpp"

namespace respguard::upstream {
namespace {

constexpr std::size_t kReadChunk = 16 * 1024;
// Past this, the read buffer is returned to its normal size once drained.
constexpr std::size_t kReadKeep = 64 * 1024;

std::string_view info_field(std::string_view info, std::string_view key) {
  std::size_t pos = 0;
  while (pos < info.size()) {
    std::size_t end = info.find('\n', pos);
    if (end == std::string_view::npos) end = info.size();
    std::string_view line = info.substr(pos, end - pos);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.size() > key.size() && line.substr(0, key.size()) == key && line[key.size()] == ':') {
      return line.substr(key.size() + 1);
    }
    pos = end + 1;
  }
  return {};
}

}  // namespace

UpstreamConnection::UpstreamConnection(asio::io_context& io, ConnectionOptions options,
                                       std::shared_ptr<UpstreamInfo> info)
    : io_(io),
      options_(std::move(options)),
      info_(std::move(info)),
      socket_(io),
      resolver_(io),
      timer_(io),
      backoff_timer_(io),
      reply_parser_(options_.limits),
      rng_(std::random_device{}()) {}

UpstreamConnection::~UpstreamConnection() {
  set_state(State::Closed);
}

void UpstreamConnection::set_state(State next) {
  using observability::Metric;
  using observability::UpstreamState;
  auto gauge = [](State s) -> int {
    switch (s) {
      case State::Connecting:
        return static_cast<int>(UpstreamState::Connecting);
      case State::Ready:
        return static_cast<int>(UpstreamState::Ready);
      case State::Backoff:
        return static_cast<int>(UpstreamState::Backoff);
      default:
        return -1;
    }
  };
  if (options_.metrics != nullptr && next != state_) {
    if (int g = gauge(state_); g >= 0)
      options_.metrics->gauge_add(Metric::UpstreamConnections, -1, g);
    if (int g = gauge(next); g >= 0) options_.metrics->gauge_add(Metric::UpstreamConnections, 1, g);
  }
  state_ = next;
}

void UpstreamConnection::count_error(observability::UpstreamError kind) {
  if (options_.metrics == nullptr) return;
  options_.metrics->inc(observability::Metric::UpstreamErrors, static_cast<std::size_t>(kind));
  if (kind == observability::UpstreamError::Timeout) {
    options_.metrics->inc(observability::Metric::UpstreamTimeouts);
  }
}

ConnectionOptions ConnectionOptions::from(const config::Config& config) {
  const config::UpstreamConfig& up = config.upstream;
  ConnectionOptions o;
  o.endpoint = up.address;
  o.username = up.username;
  o.password = up.password;
  o.connect_timeout = up.connect_timeout;
  o.request_timeout = up.request_timeout;
  o.reconnect_backoff_min = up.reconnect_backoff_min;
  o.reconnect_backoff_max = up.reconnect_backoff_max;
  o.limits = config.protocol;
  o.tls_server_name = up.tls.server_name.empty() ? up.address.host : up.tls.server_name;
  o.tls_verify = up.tls.verify;
  return o;
}

void UpstreamConnection::start() {
  if (state_ == State::Idle) connect();
}

void UpstreamConnection::connect() {
  if (state_ == State::Backoff && options_.metrics != nullptr) {
    options_.metrics->inc(observability::Metric::UpstreamReconnects);
  }
  set_state(State::Connecting);
  db_ = 0;
  const std::uint64_t gen = generation_;
  auto self = shared_from_this();
  backoff_timer_.expires_after(options_.connect_timeout);
  backoff_timer_.async_wait([this, self, gen](boost::system::error_code ec) {
    if (ec || gen != generation_ || state_ != State::Connecting) return;
    fail("connect timeout after " + std::to_string(options_.connect_timeout.count()) + "ms", true,
         observability::UpstreamError::Connect);
  });
  resolver_.async_resolve(
      options_.endpoint.host, std::to_string(options_.endpoint.port),
      [this, self, gen](boost::system::error_code ec, tcp::resolver::results_type results) {
        if (gen != generation_ || state_ != State::Connecting) return;
        if (ec) {
          return fail("resolve " + options_.endpoint.host + ": " + ec.message(), true,
                      observability::UpstreamError::Connect);
        }
        asio::async_connect(socket_.socket(), results,
                            [this, self, gen](boost::system::error_code ec, const tcp::endpoint&) {
                              if (gen != generation_ || state_ != State::Connecting) return;
                              if (ec) {
                                return fail("connect: " + ec.message(), true,
                                            observability::UpstreamError::Connect);
                              }
                              if (options_.tls != nullptr && options_.tls->enabled()) {
                                return start_tls_handshake();
                              }
                              on_connected();
                            });
      });
}

// Still Connecting: the connect timeout (backoff_timer_) bounds the handshake too. Each attempt
// gets a fresh TLS session with the context current now (a reload affects the next connect).
void UpstreamConnection::start_tls_handshake() {
  socket_.start_tls(options_.tls->current());
  tls::set_upstream_peer(socket_.ssl(), options_.tls_server_name, options_.tls_verify);
  const std::uint64_t gen = generation_;
  socket_.async_handshake(asio::ssl::stream_base::client, [this, self = shared_from_this(),
                                                           gen](boost::system::error_code ec) {
    if (gen != generation_ || state_ != State::Connecting) return;
    if (ec) {
      if (options_.metrics != nullptr) {
        options_.metrics->inc(
            observability::Metric::TlsHandshakeFailures,
            observability::series_index(observability::Metric::TlsHandshakeFailures,
                                        static_cast<std::size_t>(observability::TlsSide::Upstream),
                                        static_cast<std::size_t>(tls::classify(ec))));
      }
      return fail("TLS handshake with " + options_.tls_server_name + ": " +
                      tls::describe(ec, socket_.ssl()),
                  true, observability::UpstreamError::Connect);
    }
    on_connected();
  });
}

void UpstreamConnection::on_connected() {
  backoff_timer_.cancel();
  boost::system::error_code ignored;
  socket_.set_option(tcp::no_delay(true), ignored);
  set_state(State::Ready);
  queue_handshake();
  start_read();
  flush();
}

// The handshake is pipelined ahead of any requests queued while connecting; its replies come
// back first and are checked here.
void UpstreamConnection::queue_handshake() {
  std::string hs;
  std::vector<Pending> entries;
  // The handshake has a deadline too: a server that accepts connections but never answers
  // (stopped, hung) must time out the handshake and every request queued behind it.
  const auto now = SteadyClock::now();
  auto add = [&](std::initializer_list<std::string_view> args, InternalCookie cookie) {
    resp::write_command(hs, args);
    entries.push_back({this, cookie, now + options_.request_timeout, false, now});
  };
  if (options_.protocol >= 3) {
    if (!options_.password.empty()) {
      // Both sides string_view: with "default" : options_.username the common type would be a
      // temporary std::string, and `user` would dangle (the handshake sent garbage: WRONGPASS).
      std::string_view user = options_.username.empty() ? std::string_view("default")
                                                         : std::string_view(options_.username);
      add({"HELLO", "3", "AUTH", user, options_.password}, kHello);
    } else {
      add({"HELLO", "3"}, kHello);
    }
  } else if (!options_.password.empty()) {
    if (options_.username.empty()) {
      add({"AUTH", options_.password}, kAuth);
    } else {
      add({"AUTH", options_.username, options_.password}, kAuth);
    }
  }
  add({"CLIENT", "SETNAME", options_.name}, kSetName);
  if (options_.learn_server_info) {
    add({"INFO", "server"}, kInfo);
    add({"CONFIG", "GET", "databases"}, kConfigDatabases);
  }
  wbuf_.insert(0, hs);
  pending_.insert(pending_.begin(), entries.begin(), entries.end());
  if (timer_armed_) {
    timer_.cancel();  // it was armed for a later deadline than the handshake's
    timer_armed_ = false;
  }
  arm_timer();
}

void UpstreamConnection::send(std::string_view request, ReplySink* sink, std::uint64_t cookie,
                              Deadline deadline, bool blocking) {
  wbuf_.append(request);
  commit_request(sink, cookie, deadline, blocking);
}

void UpstreamConnection::commit_request(ReplySink* sink, std::uint64_t cookie, Deadline deadline,
                                        bool blocking) {
  pending_.push_back({sink, cookie, deadline, blocking, LoopClock::now()});
  if (!timer_armed_ && deadline != kNoDeadline) arm_timer();
}

void UpstreamConnection::select_db(int db, Deadline deadline) {
  if (db == db_) return;
  char num[16];
  auto [end, ec] = std::to_chars(num, num + sizeof num, db);
  resp::write_command(wbuf_, {"SELECT", std::string_view(num, end - num)});
  commit_request(this, kSelect, deadline);
  db_ = db;
}

void UpstreamConnection::flush() {
  if (state_ == State::Ready && !write_in_flight_ && !wbuf_.empty()) start_write();
}

void UpstreamConnection::start_write() {
  writing_.swap(wbuf_);
  write_in_flight_ = true;
  const std::uint64_t gen = generation_;
  asio::async_write(
      socket_, asio::buffer(writing_),
      [this, self = shared_from_this(), gen](boost::system::error_code ec, std::size_t) {
        if (gen != generation_) return;
        write_in_flight_ = false;
        if (ec) {
          return fail("write: " + ec.message(), true, observability::UpstreamError::Write);
        }
        writing_.clear();
        // A 64 MB request should not pin 64 MB per connection forever.
        if (writing_.capacity() > kReadKeep * 16) std::string().swap(writing_);
        flush();
      });
}

void UpstreamConnection::start_read() {
  char* dst = rbuf_.prepare(kReadChunk);
  const std::uint64_t gen = generation_;
  socket_.async_read_some(
      asio::buffer(dst, rbuf_.free_space()),
      [this, self = shared_from_this(), gen](boost::system::error_code ec, std::size_t n) {
        if (gen != generation_) return;
        if (ec) {
          return fail(
              ec == asio::error::eof ? std::string("closed by upstream") : "read: " + ec.message(),
              true);
        }
        on_read(n);
      });
}

void UpstreamConnection::on_read(std::size_t n) {
  rbuf_.commit(n);
  const auto now = LoopClock::tick();
  const std::uint64_t gen = generation_;
  resp::ReplyInfo info;
  for (;;) {
    std::string_view data = rbuf_.readable();
    if (data.empty()) break;
    resp::ParseResult r = reply_parser_.parse(data, info);
    if (r.status == resp::ParseStatus::NeedMore) break;
    if (r.status == resp::ParseStatus::Error) {
      return fail("bad reply from upstream: " + std::string(r.error), !options_.dedicated,
                  observability::UpstreamError::Protocol);
    }
    std::string_view reply = data.substr(0, r.consumed);
    if (info.is_push() && push_sink_ == nullptr) {
      // An out-of-band RESP3 push on a connection no client owns (a shared one) is never the
      // reply to a request: matching it would hand one client's reply to another.
      spdlog::debug("upstream {}: dropped an unexpected push message", options_.name);
    } else if (pending_.empty() || (info.is_push() && push_sink_ != nullptr)) {
      if (push_sink_ == nullptr) {
        return fail("unexpected reply from upstream (no request pending)", true,
                    observability::UpstreamError::Protocol);
      }
      push_sink_->on_reply(kPushCookie, reply, info);
    } else {
      Pending p = pending_.front();
      pending_.pop_front();
      // Requests pipelined behind a blocking call start their clock when it returns.
      if (p.blocking && !pending_.empty() && pending_.front().deadline != kNoDeadline) {
        pending_.front().deadline =
            std::max(pending_.front().deadline, now + options_.request_timeout);
      }
      if (options_.record_latency && p.sink != this) {  // not the handshake's own requests
        options_.metrics->observe(observability::Metric::UpstreamRequestDuration, now - p.queued);
      }
      if (options_.guard != nullptr && p.sink != this) {
        options_.guard->on_reply(options_.guard_shard, reply, info, now, *options_.metrics);
      }
      p.sink->on_reply(p.cookie, reply, info);
    }
    if (gen != generation_) {
      // A sink closed us (e.g. released a dedicated connection from its reply): the replies
      // dispatched so far must still be flushed to their clients.
      if (on_batch_end_) on_batch_end_();
      return;
    }
    rbuf_.consume(r.consumed);
  }
  if (rbuf_.empty()) rbuf_.shrink_if_idle(kReadKeep);
  if (!timer_armed_) arm_timer();  // the front may have changed to one with a deadline
  if (on_batch_end_) on_batch_end_();
  if (gen != generation_ || state_ != State::Ready) return;
  start_read();
}

void UpstreamConnection::arm_timer() {
  if (pending_.empty()) return;
  Deadline deadline = pending_.front().deadline;
  if (deadline == kNoDeadline) return;
  timer_armed_ = true;
  timer_.expires_at(deadline);
  timer_.async_wait([this, self = shared_from_this()](boost::system::error_code ec) {
    if (ec == asio::error::operation_aborted) return;  // whoever cancelled reset timer_armed_
    timer_armed_ = false;
    on_timer();
  });
}

void UpstreamConnection::on_timer() {
  if (pending_.empty()) return;
  if (SteadyClock::now() >= pending_.front().deadline) {
    return fail("request timed out (" + std::to_string(pending_.size()) + " pending)",
                !options_.dedicated, observability::UpstreamError::Timeout);
  }
  arm_timer();
}

void UpstreamConnection::fail_pending(std::string_view error_reply) {
  resp::ReplyInfo info;
  info.type = '-';
  // Sinks may send new requests from on_reply; those belong to the next connection attempt.
  std::deque<Pending> failed;
  failed.swap(pending_);
  for (const Pending& p : failed) p.sink->on_reply(p.cookie, error_reply, info);
}

void UpstreamConnection::fail(std::string_view why, bool reconnect,
                              std::optional<observability::UpstreamError> kind) {
  if (state_ == State::Closed) return;
  if (kind) count_error(*kind);
  last_error_ = std::string(why);
  const bool was_ready = state_ == State::Ready;
  ++generation_;
  boost::system::error_code ignored;
  socket_.close(ignored);
  timer_.cancel();
  backoff_timer_.cancel();
  timer_armed_ = false;
  write_in_flight_ = false;
  wbuf_.clear();
  writing_.clear();
  rbuf_.consume(rbuf_.size());
  reply_parser_.reset();
  db_ = 0;
  const bool dedicated = options_.dedicated;
  set_state((reconnect && !dedicated) ? State::Backoff : State::Closed);
  if (!dedicated && kind) {
    // Losing a working connection is always worth a line; failing to reconnect is repeated
    // by every connection every backoff period, so it is rate-limited.
    static LogLimiter reconnect_failures(std::chrono::seconds(10));
    std::uint64_t suppressed = 0;
    if (kind == observability::UpstreamError::Handshake) {
      // Logged (rate-limited) where the reply was read.
    } else if (options_.quiet) {
      spdlog::debug("upstream {}: {}", options_.name, why);
    } else if (was_ready) {
      spdlog::warn("upstream {}: {}; reconnecting", options_.name, why);
    } else if (reconnect_failures.allow(suppressed)) {
      spdlog::warn("upstream {} unreachable: {} ({} similar messages suppressed)", options_.name,
                   why, suppressed);
    }
  }
  std::string_view reply = kind == observability::UpstreamError::Timeout
                               ? errors::kUpstreamTimeout
                               : errors::kUpstreamConnectionLost;
  if (options_.guard != nullptr && kind) feed_breaker(*kind);
  error_reply_.assign("-").append(reply).append("\r\n");
  std::string error_reply = error_reply_;
  auto self = shared_from_this();  // sinks may drop their last reference to us
  fail_pending(error_reply);
  if (state_ == State::Backoff) schedule_reconnect();
  if (dedicated && on_closed_) {
    auto fn = std::move(on_closed_);
    on_closed_ = nullptr;
    fn();
  }
  if (on_batch_end_) on_batch_end_();
}

void UpstreamConnection::feed_breaker(observability::UpstreamError kind) {
  using observability::BreakerFailure;
  using observability::UpstreamError;
  // Read the clock: timeouts and connect errors arrive from timers and connect handlers, which
  // do not tick the loop clock, and a stale `now` would open the breaker into the past (open
  // for less than open_for, or not at all after an idle spell).
  const auto now = LoopClock::tick();
  if (kind == UpstreamError::Connect || kind == UpstreamError::Handshake) {
    options_.guard->on_failure(options_.guard_shard, BreakerFailure::Connect, now,
                               *options_.metrics);
    return;
  }
  // Each client request the failure answers counts: the breaker counts requests, and every
  // allowed request (a half-open probe too) gets exactly one verdict.
  const BreakerFailure f =
      kind == UpstreamError::Timeout ? BreakerFailure::Timeout : BreakerFailure::ConnectionLost;
  for (const Pending& p : pending_) {
    if (p.sink != this) options_.guard->on_failure(options_.guard_shard, f, now, *options_.metrics);
  }
}

void UpstreamConnection::close(std::string_view why) {
  if (state_ == State::Closed) return;
  fail(why, false, std::nullopt);
  set_state(State::Closed);
}

void UpstreamConnection::schedule_reconnect() {
  using std::chrono::milliseconds;
  backoff_ = backoff_.count() == 0 ? options_.reconnect_backoff_min
                                   : std::min(backoff_ * 2, options_.reconnect_backoff_max);
  // Full jitter on the upper half keeps many workers from reconnecting in lockstep.
  std::uniform_int_distribution<long> dist(backoff_.count() / 2, backoff_.count());
  milliseconds wait{dist(rng_)};
  const std::uint64_t gen = generation_;
  backoff_timer_.expires_after(wait);
  backoff_timer_.async_wait([this, self = shared_from_this(), gen](boost::system::error_code ec) {
    if (ec || gen != generation_ || state_ != State::Backoff) return;
    connect();
  });
}

void UpstreamConnection::on_reply(std::uint64_t cookie, std::string_view reply,
                                  const resp::ReplyInfo& info) {
  if (cookie == kSetName && state_ == State::Ready) {
    // The handshake's last step, answered by the server (a failed connection answers it too,
    // with an error, after leaving Ready): AUTH/HELLO passed. Only now is the upstream back,
    // and the backoff reset.
    if (backoff_.count() > 0) {
      if (options_.quiet) {
        spdlog::debug("upstream {}: connected to {}", options_.name, options_.endpoint.to_string());
      } else {
        spdlog::info("upstream {}: connected to {}", options_.name, options_.endpoint.to_string());
      }
    }
    backoff_ = std::chrono::milliseconds{0};
  }
  if (!info.is_error() && cookie != kInfo && cookie != kConfigDatabases) return;
  switch (cookie) {
    case kAuth:
    case kHello: {
      // Requests on an unauthenticated connection would all fail with NOAUTH: drop it and try
      // again after the backoff (the password may be fixed on the Redis side meanwhile). Every
      // connection repeats this, so the log line is rate-limited.
      static LogLimiter handshake_failures(std::chrono::seconds(10));
      std::uint64_t suppressed = 0;
      const std::string_view text = reply.substr(1, reply.size() - 3);
      if (handshake_failures.allow(suppressed)) {
        spdlog::error("upstream {}: handshake failed: {} ({} similar messages suppressed)",
                      options_.name, text, suppressed);
      }
      return fail("handshake failed: " + std::string(text), !options_.dedicated,
                  observability::UpstreamError::Handshake);
    }
    case kSelect:
      // The connection's db is now unknown; requests behind it would run in the wrong db.
      return fail("SELECT failed: " + std::string(reply.substr(1, reply.size() - 3)),
                  !options_.dedicated, observability::UpstreamError::Handshake);
    case kInfo: {
      resp::Value v;
      if (resp::parse_value(reply, v).status != resp::ParseStatus::Complete) return;
      if (v.type != resp::Value::Type::Bulk && v.type != resp::Value::Type::Verbatim) return;
      if (auto version = info_field(v.str, "redis_version"); !version.empty()) {
        info_->set_server(std::string(version), std::string(info_field(v.str, "redis_mode")));
      }
      return;
    }
    case kConfigDatabases: {
      resp::Value v;
      if (resp::parse_value(reply, v).status != resp::ParseStatus::Complete) return;
      if (v.elements.size() == 2) {
        unsigned n = 0;
        const std::string& s = v.elements[1].str;
        auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), n);
        if (ec == std::errc() && n > 0) info_->set_databases(n);
      }
      return;
    }
    default:
      return;  // CLIENT SETNAME may be renamed away; harmless
  }
}

}  // namespace respguard::upstream
