// One client connection: reads requests, answers connection-scoped commands itself, forwards
// the rest upstream and writes every reply in request order.
//
// Ordering is a data structure: each request takes a slot in a ring at arrival. Local answers
// and upstream replies fill slots; the head is flushed as far as it is complete. A client
// sends to one upstream connection at a time; before it switches (to a dedicated connection
// for MULTI, a blocking call or SUBSCRIBE, or back) its in-flight requests must finish, so
// Redis executes its commands in the order they were sent.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "respguard/common/asio.hpp"
#include "respguard/common/io_buffer.hpp"
#include "respguard/common/stream.hpp"
#include "respguard/observability/metrics.hpp"
#include "respguard/policy/write_effects.hpp"
#include "respguard/protection/acl.hpp"
#include "respguard/protection/rate_limiter.hpp"
#include "respguard/resp/command_table.hpp"
#include "respguard/resp/parser.hpp"
#include "respguard/server/client_registry.hpp"
#include "respguard/server/output_queue.hpp"
#include "respguard/server/policy_state.hpp"
#include "respguard/upstream/upstream_connection.hpp"

namespace respguard::server {

class Worker;

class ClientSession : public std::enable_shared_from_this<ClientSession>,
                      private upstream::ReplySink {
 public:
  ClientSession(Worker& worker, tcp::socket socket, std::uint64_t id);
  ~ClientSession();
  ClientSession(const ClientSession&) = delete;
  ClientSession& operator=(const ClientSession&) = delete;

  void start();
  using CloseReason = observability::CloseReason;
  void close(CloseReason reason = CloseReason::Client);  // at once; replies in flight are dropped
  void begin_drain();  // close once nothing is in flight and nothing is buffered
  void flush_output();
  // Closes the session when it has been idle past `timeout` (not while blocked or subscribed,
  // as Redis does).
  void check_idle(SteadyClock::time_point now, std::chrono::milliseconds timeout);
  std::uint64_t id() const { return id_; }
  // A reply produced elsewhere for a waiting slot (a coalesced GET, a lease): runs on this
  // session's worker.
  void deliver(std::uint64_t cookie, SharedBytes reply, resp::ReplyInfo info);
  // A lease wait ran out (posted by its timer).
  void lease_wait_expired(std::uint64_t cookie, std::uint64_t token);

 private:
  enum class Dispatch { Done, Stall };
  enum class SlotKind : std::uint8_t { Normal, Exec };
  // Policy follow-ups of a request, run when its reply arrives (docs/policies.md).
  struct SlotHooks {
    enum : std::uint16_t {
      kLearnNegative = 1,   // GET/EXISTS under a negative-cache rule: remember a nil
      kLeaseGet = 2,        // GET under a lease rule: a nil is a miss (grant or wait)
      kFlightLeader = 4,    // this GET is the flight others joined: share its reply
      kWriteEnd = 8,        // writes to write_dks were forwarded: they are answered now
      kWriteEndAll = 16,    // a db-wide write was forwarded
      kLeaseFulfill = 32,   // SET of a leased key: waiters get `value` once Redis says OK
      kLeaseEnd = 64,       // another write of a leased key: the lease ends
      kLeaseWaiting = 128,  // this slot waits for a lease holder (token, lease_wait)
      kBloomPassed = 256,   // a keyspace Bloom filter passed this GET: a nil is a false positive
      // The integer reply is the size of collection_key (LPUSH/RPUSH/LINSERT, or a size probe):
      // over guard.big_collection_elements it is counted and logged.
      kCollectionSize = 512,
      kSizeProbe = 1024,  // the proxy's own SCARD/ZCARD/HLEN/XLEN: no client sees its reply
    };
    std::uint16_t flags = 0;
    std::string dk;        // the GET's (or leased write's) db_key
    std::size_t hash = 0;  // of dk
    // Keys of a forwarded write: their write generation ticks, their negative-cache entry is
    // dropped and (`flight`) their coalescing resumes when Redis answers. The strings are kept
    // across uses (`written_count` says how many are live), so writes do not allocate.
    // A written key's keyspace Bloom filter (`bloom`) gets it again when Redis answers, so the
    // writer's next GET finds it even if a rebuild replaced the filter meanwhile. An id SADDed
    // to a set filter's SET is kept the same way, `item_only` (dk is the id, not a db_key).
    struct WrittenKey {
      std::string dk;
      std::size_t hash = 0;
      bool flight = false;
      bool item_only = false;
      policy::BloomPrecheck* bloom = nullptr;
    };
    std::vector<WrittenKey> written;
    std::size_t written_count = 0;
    std::uint64_t write_gen = 0;  // GET: the key's write generation when sent
    std::uint64_t write_gen_all = 0;
    std::uint64_t negative_epoch = 0;  // LearnNegative: PolicyState::negative_epoch() when sent
    enum class Success : std::uint8_t { Ok, One, NotError, Exec };
    Success success = Success::Ok;  // LeaseFulfill: which reply means "written"
    std::uint64_t flight = 0;
    std::uint64_t token = 0;
    config::Millis negative_ttl{0};
    config::Millis lease_wait{0};
    SharedBytes value;
    std::string collection_key;                         // kCollectionSize: the written key
    const resp::CommandInfo* collection_cmd = nullptr;  // ... and the write that grew it
    policy::HashedKey key() const { return {dk, hash}; }
    // Member-wise: cheaper than std::swap's three moves, and the strings and the vector keep
    // their capacity in whichever side is reused.
    void swap(SlotHooks& o) noexcept {
      std::swap(flags, o.flags);
      dk.swap(o.dk);
      std::swap(hash, o.hash);
      written.swap(o.written);
      std::swap(written_count, o.written_count);
      std::swap(write_gen, o.write_gen);
      std::swap(write_gen_all, o.write_gen_all);
      std::swap(negative_epoch, o.negative_epoch);
      std::swap(success, o.success);
      std::swap(flight, o.flight);
      std::swap(token, o.token);
      std::swap(negative_ttl, o.negative_ttl);
      std::swap(lease_wait, o.lease_wait);
      value.swap(o.value);
      collection_key.swap(o.collection_key);
      std::swap(collection_cmd, o.collection_cmd);
    }
    void add_written(policy::HashedKey k, bool in_flight_table,
                     policy::BloomPrecheck* bloom = nullptr) {
      if (written_count == written.size()) written.emplace_back();
      WrittenKey& w = written[written_count++];
      w.dk.assign(k.dk);
      w.hash = k.hash;
      w.flight = in_flight_table;
      w.item_only = false;
      w.bloom = bloom;
    }
    void add_bloom_item(std::string_view item, policy::BloomPrecheck* bloom) {
      if (written_count == written.size()) written.emplace_back();
      WrittenKey& w = written[written_count++];
      w.dk.assign(item);
      w.flight = false;
      w.item_only = true;
      w.bloom = bloom;
    }
    void reset() {
      flags = 0;
      dk.clear();
      written_count = 0;
      value.reset();
      collection_key.clear();
      collection_cmd = nullptr;
    }
  };
  struct Slot {
    bool done = false;
    bool discard = false;  // CLIENT REPLY OFF / SKIP
    SlotKind kind = SlotKind::Normal;
    std::uint16_t command = 0;      // metric label index
    SteadyClock::time_point start;  // when the request was read
    std::string data;               // a reply that completed before the slots ahead of it
    SharedBytes shared;             // ... or a shared one
    SlotHooks hooks;
  };

  void start_tls_handshake();  // tls.cert_file set: before the first read
  void start_read();
  void on_read(std::size_t n);
  void process_input();
  Dispatch dispatch(const resp::Command& cmd);
  // Rate limit (docs/operations.md): false when the command was answered (rejected) or must
  // wait (Stall; a timer resumes the input).
  bool admit_rate(const resp::CommandInfo* info, Dispatch& out);
  void update_rate_identity();
  // A reload replaced the worker's LiveConfig: take the new rules, limits, guard and users.
  // False when the session was closed (its user is gone).
  bool adopt_live_config();
  void take_live_settings();  // the per-command switches above, from the worker's LiveConfig
  Dispatch forward(const resp::Command& cmd, const resp::CommandInfo* info, bool need_dedicated,
                   SlotKind kind = SlotKind::Normal);
  // SUBSCRIBE, MONITOR, CLIENT TRACKING: a dedicated connection whose replies pass through.
  Dispatch enter_push_mode(const resp::Command& cmd);
  void forward_push_mode(const resp::Command& cmd);
  // forward(..., need_dedicated=false) would stall (its target differs from the in-flight one).
  bool would_stall();
  // Policies (client_policies.cpp). apply_policies: true when it handled the command.
  bool apply_policies(const resp::Command& cmd, const resp::CommandInfo& info, Dispatch& out);
  // GET or EXISTS of a key under `rule` (info: the command, looked up once by dispatch).
  bool policy_read(const resp::Command& cmd, const resp::CommandInfo& info,
                   const policy::Rule& rule, Dispatch& out);
  void policy_write(const resp::Command& cmd, const resp::CommandInfo& info);
  // The command guard: false when the command was refused (answered). Also reports big values.
  bool admit_guard(const resp::Command& cmd, const resp::CommandInfo* info);
  void note_set_members(const resp::Command& cmd, SlotHooks& hooks);  // SADD to a set filter's SET
  // guard.big_collection_elements: a list write reads the length from its reply (hooks); a
  // SADD/ZADD/HSET/XADD returns the probe to send after it (SCARD/...), or "" for none.
  std::string_view note_collection_write(const resp::Command& cmd, const resp::CommandInfo& info);
  // The size probe after a forwarded write: its own slot, on the same connection, never shown.
  void send_size_probe(std::string_view probe, std::string_view key,
                       const resp::CommandInfo& write);
  void report_collection_size(const SlotHooks& hooks, std::string_view reply,
                              const resp::ReplyInfo& info);
  bool bloom_mget(const resp::Command& cmd, Dispatch& out);  // every key ruled out: answered here
  // Runs a reply's hooks; false when the slot must keep waiting (a lease).
  bool run_hooks(Slot& slot, std::uint64_t cookie, std::string_view reply,
                 const resp::ReplyInfo& info);
  std::uint64_t waiting_slot();  // a slot answered later by someone else
  SlotRef slot_ref(std::uint64_t cookie, std::uint64_t token = 0);
  void wake(std::vector<SlotRef>& refs, const SharedBytes& reply, const resp::ReplyInfo& info);
  void grant_lease(std::string_view dk, config::Millis wait);
  void start_lease_wait(std::uint64_t cookie, config::Millis wait);
  void release_leases();
  void cancel_lease_waits();  // on close: this client's waits must not be handed a lease
  void abandon_multi_hooks();
  void end_writes(SlotHooks& hooks);  // a write was answered (or will never run)  // a
                                      // transaction's writes will not run: end their bookkeeping
  void complete_slot(std::uint64_t cookie, std::string_view reply, const SharedBytes& shared);
  upstream::UpstreamConnection* acquire_dedicated();
  void maybe_release_dedicated();
  void drop_dedicated(bool clean);

  // Local commands.
  void cmd_select(const resp::Command& cmd);
  void cmd_hello(const resp::Command& cmd);
  void cmd_auth(const resp::Command& cmd);
  Dispatch cmd_client(const resp::Command& cmd);
  void cmd_reset();
  bool credentials_ok(std::string_view user, std::string_view password) const;
  // Client authentication and ACL (auth.users; docs/security.md). admit_acl: false when the
  // command was answered (NOPERM, or ACL WHOAMI answered here). acl_login: false when it replied
  // WRONGPASS (a wrong password, or over auth.max_failures_per_second).
  bool admit_acl(const resp::Command& cmd, const resp::CommandInfo* info);
  bool acl_login(std::string_view user, std::string_view password);
  // Until authenticated the parser holds requests to Redis's pre-auth sizes.
  void set_authenticated(bool authenticated);

  // Replies.
  std::uint64_t push_slot(SlotKind kind);
  void reply_local(std::string_view bytes, bool count = true);  // count: in commands_total
  void reply_error(std::string_view message);
  void reply_wrong_args(std::string_view command);
  void on_reply(std::uint64_t cookie, std::string_view reply, const resp::ReplyInfo& info) override;
  void append_output(std::string_view bytes);
  void append_output(SharedBytes bytes);
  void check_output_limit();
  void pop_completed_slots();
  void schedule_flush();
  void start_write();
  void close_after_flush(CloseReason reason);
  void record_command(std::size_t command, bool error, std::chrono::nanoseconds latency);
  void maybe_finish();
  std::size_t unread_bytes();

  Worker& worker_;
  Stream socket_;  // TLS when tls.cert_file is set
  const std::uint64_t id_;
  std::shared_ptr<ClientInfo> info_;
  const config::Config& config_;
  observability::Shard* metrics_;        // null when admin.metrics is off (request metrics only)
  observability::Shard& state_metrics_;  // connection events: always recorded
  std::size_t current_command_ = 0;      // label of the command being dispatched
  PolicyState& policies_;
  // From the worker's LiveConfig of generation live_generation_ (take_live_settings()).
  std::uint64_t live_generation_ = 0;
  bool policies_on_ = false;         // any rules configured: otherwise no policy code runs at all
  bool guard_on_ = false;            // a deny list or size limit is configured
  std::size_t big_value_bytes_ = 0;  // guard.big_value_bytes: report bigger values
  std::size_t big_collection_elements_ = 0;  // guard.big_collection_elements: 0 = off
  SlotHooks next_hooks_;      // hooks for the request forward() is about to send
  SlotHooks multi_hooks_;     // writes queued in MULTI: they run (and end) with EXEC
  std::string_view rewrite_;  // bytes forward() sends instead of the request (jitter)
  std::string rewrite_buf_;
  std::string error_reply_;
  std::string guard_reply_;  // the command guard's refusal text (reused)
  std::string dk_buf_;
  std::vector<policy::WriteEffect> effects_;
  std::vector<SlotRef> wake_;
  std::vector<std::pair<std::string, config::Millis>> held_leases_;  // (dk, wait)
  CloseReason close_reason_ = CloseReason::Client;

  IoBuffer rbuf_;
  resp::RequestParser parser_;
  resp::Command cmd_;
  std::string scratch_;  // local replies and re-encoded requests

  // Request slots: a ring indexed by sequence number.
  std::vector<Slot> slots_;
  std::uint64_t head_seq_ = 0;                // oldest slot not yet written out
  std::uint64_t tail_seq_ = 0;                // next sequence number
  std::size_t inflight_ = 0;                  // requests awaiting an upstream reply
  std::shared_ptr<ClientSession> keepalive_;  // held while inflight_ > 0

  OutputQueue out_;

  // Connection state, as Redis keeps it per client.
  int db_ = 0;
  int proto_ = 2;
  std::string name_;
  bool authenticated_ = false;  // false until AUTH when the upstream has a password (as Redis)
  bool reply_off_ = false;
  bool skip_next_reply_ = false;
  bool in_multi_ = false;
  bool multi_refused_ = false;  // the guard refused a queued command: EXEC answers EXECABORT
  bool watching_ = false;
  int multi_select_db_ = -1;      // a SELECT queued inside MULTI takes effect at EXEC
  bool push_mode_ = false;        // SUBSCRIBE, MONITOR, CLIENT TRACKING: replies pass through
  bool dedicated_dirty_ = false;  // the dedicated connection's state differs from a fresh one

  std::shared_ptr<upstream::UpstreamConnection> dedicated_;
  upstream::UpstreamConnection* last_target_ = nullptr;
  SteadyClock::time_point now_;

  // Rate limit: the identity's shared buckets (null: no limit applies).
  std::shared_ptr<const protection::RateLimiter::Identity> rate_identity_;
  std::shared_ptr<protection::RateLimiter> rate_limiter_;  // the one rate_identity_ is from
  std::string peer_ip_;           // the source_ip identity
  std::string user_ = "default";  // the user identity (AUTH)
  std::shared_ptr<protection::Acl> acl_;             // auth.users configured: the users, else null
  const protection::Acl::User* acl_user_ = nullptr;  // with acl_: who the client is
  bool rate_admitted_ = false;    // the command being dispatched already has its token
  bool rate_paused_ = false;      // input paused until rate_timer_ fires
  std::unique_ptr<asio::steady_timer> rate_timer_;

  bool stalled_ = false;  // waiting for in-flight requests before switching connection
  bool resume_posted_ = false;
  bool processing_ = false;
  bool closing_ = false;  // no more requests are read or dispatched
  bool closed_ = false;
  bool draining_ = false;
  bool dirty_ = false;  // on the worker's flush list
  friend class Worker;
};

}  // namespace respguard::server
