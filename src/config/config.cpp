// The YAML loader. Every option is one row of kOptions (key path, type, field, help, range):
// the loader, set_option(), validate(), operator== and the reference page all walk that table,
// so adding an option is one row here plus its field (with its default) in config.hpp. Rules
// that relate two options live in kRules. Defaults are not repeated here: the reference page
// reads them from a default-constructed Config.
#include "respguard/config/config.hpp"

#include <arpa/inet.h>
#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <optional>
#include <span>
#include <sstream>
#include <variant>
#include <vector>

#include "respguard/resp/command_table.hpp"

namespace respguard::config {
namespace {

enum class Type { String, Bool, Uint, Size, Duration, Endpoint, Enum };

// Where an option lives in a Config. The pointer type says how the value is stored; Type says
// how its text is read (a std::size_t can be a byte size or a plain count).
using Ref = std::variant<std::string*, bool*, unsigned*, int*, std::size_t*, Millis*, Endpoint*>;

constexpr std::uint64_t kNoMax = std::numeric_limits<std::uint64_t>::max();

struct Option {
  std::string_view key;  // YAML path: "upstream.request_timeout"
  Type type;
  Ref (*field)(Config&);
  std::string_view help;       // one line; the range and choices are appended in the reference
  std::uint64_t min = 0;       // inclusive, for Uint/Size (bytes)/Duration (ms)
  std::uint64_t max = kNoMax;  // inclusive; the field's C++ type caps it as well
  std::span<const std::string_view> choices = {};  // Type::Enum
};

constexpr std::array<std::string_view, 7> kLogLevels = {"trace", "debug",    "info", "warn",
                                                        "error", "critical", "off"};
constexpr std::array<std::string_view, 3> kIdentities = {"source_ip", "client_name", "user"};
constexpr std::array<std::string_view, 2> kGuardProfiles = {"off", "production"};
constexpr std::array<std::string_view, 3> kClientCertModes = {"none", "optional", "required"};
constexpr std::array<std::string_view, 2> kTlsVersions = {"1.2", "1.3"};

constexpr Option kOptions[] = {
    {.key = "listen",
     .type = Type::Endpoint,
     .field = [](Config& c) -> Ref { return &c.server.listen; },
     .help =
         "Address clients connect to. Use 0.0.0.0:PORT or \"[::]:PORT\" to accept remote clients."},
    {.key = "workers",
     .type = Type::Uint,
     .field = [](Config& c) -> Ref { return &c.server.workers; },
     .help = "Worker threads, each with its own clients and upstream connections; 0 = one per CPU "
             "core.",
     .max = 256},
    {.key = "maxclients",
     .type = Type::Uint,
     .field = [](Config& c) -> Ref { return &c.server.maxclients; },
     .help = "Most client connections at once; a client beyond it gets Redis's \"max number of "
             "clients reached\" error.",
     .min = 1},
    {.key = "shutdown_grace",
     .type = Type::Duration,
     .field = [](Config& c) -> Ref { return &c.server.shutdown_grace; },
     .help = "On SIGTERM, how long in-flight requests may take to finish before connections are "
             "closed."},
    {.key = "log_level",
     .type = Type::Enum,
     .field = [](Config& c) -> Ref { return &c.log.level; },
     .help = "Log verbosity.",
     .choices = kLogLevels},

    {.key = "client.idle_timeout",
     .type = Type::Duration,
     .field = [](Config& c) -> Ref { return &c.server.idle_timeout; },
     .help = "Close a client connection idle for this long (Redis `timeout`); 0 = never."},
    {.key = "client.output_buffer_limit",
     .type = Type::Size,
     .field = [](Config& c) -> Ref { return &c.server.output_buffer_limit; },
     .help = "Disconnect a client whose unsent replies exceed this (a reader too slow for its "
             "requests); 0 = unlimited."},
    {.key = "client.pubsub_output_buffer_limit",
     .type = Type::Size,
     .field = [](Config& c) -> Ref { return &c.server.pubsub_output_buffer_limit; },
     .help = "The same limit for clients in subscribe mode, where messages arrive unasked; 0 = "
             "unlimited."},
    {.key = "client.query_buffer_limit",
     .type = Type::Size,
     .field = [](Config& c) -> Ref { return &c.server.query_buffer_limit; },
     .help = "Disconnect a client whose unparsed request bytes exceed this (Redis "
             "client-query-buffer-limit).",
     .min = 1},

    {.key = "server.tcp_backlog",
     .type = Type::Uint,
     .field = [](Config& c) -> Ref { return &c.server.tcp_backlog; },
     .help = "listen() backlog of the client socket; the kernel caps it at net.core.somaxconn.",
     .min = 1},
    {.key = "server.max_pinned_connections",
     .type = Type::Uint,
     .field = [](Config& c) -> Ref { return &c.server.max_pinned_connections; },
     .help = "Most dedicated upstream connections (MULTI, WATCH, SUBSCRIBE, blocking commands) in "
             "the whole process; beyond it such commands get an error."},

    // Client-side TLS (docs/security.md, "TLS"). The files are read when respguard starts and
    // again on SIGHUP; validate() checks only that they go together.
    {.key = "tls.cert_file",
     .type = Type::String,
     .field = [](Config& c) -> Ref { return &c.tls.cert_file; },
     .help = "PEM certificate (chain) the client listener presents. When set, `listen` speaks TLS "
             "only (a plaintext client is disconnected); empty = no TLS. Needs tls.key_file."},
    {.key = "tls.key_file",
     .type = Type::String,
     .field = [](Config& c) -> Ref { return &c.tls.key_file; },
     .help = "PEM private key of tls.cert_file."},
    {.key = "tls.ca_file",
     .type = Type::String,
     .field = [](Config& c) -> Ref { return &c.tls.ca_file; },
     .help = "PEM CA bundle that client certificates must be signed by (tls.client_certs)."},
    {.key = "tls.client_certs",
     .type = Type::Enum,
     .field = [](Config& c) -> Ref { return &c.tls.client_certs; },
     .help = "Client certificates, as Redis's tls-auth-clients: none (not asked for), optional "
             "(checked against tls.ca_file when sent), required (the handshake fails without a "
             "valid one). optional and required need tls.ca_file.",
     .choices = kClientCertModes},
    {.key = "tls.min_version",
     .type = Type::Enum,
     .field = [](Config& c) -> Ref { return &c.tls.min_version; },
     .help = "Oldest TLS version accepted from clients; nothing below TLS 1.2 ever is.",
     .choices = kTlsVersions},
    {.key = "tls.ciphers",
     .type = Type::String,
     .field = [](Config& c) -> Ref { return &c.tls.ciphers; },
     .help = "OpenSSL cipher list for TLS 1.2 (\"ECDHE+AESGCM\"); empty = OpenSSL's default. TLS "
             "1.3 suites are OpenSSL's."},

    {.key = "admin.enabled",
     .type = Type::Bool,
     .field = [](Config& c) -> Ref { return &c.admin.enabled; },
     .help = "Serve the admin HTTP endpoints (/metrics, /healthz, /readyz)."},
    {.key = "admin.listen",
     .type = Type::Endpoint,
     .field = [](Config& c) -> Ref { return &c.admin.listen; },
     .help = "Address of the admin HTTP listener (Prometheus scrapes /metrics here)."},
    {.key = "admin.metrics",
     .type = Type::Bool,
     .field = [](Config& c) -> Ref { return &c.admin.metrics; },
     .help = "Record request metrics (commands, latency, bytes); off leaves only connection and "
             "upstream state."},
    {.key = "admin.unready_when_breaker_open",
     .type = Type::Bool,
     .field = [](Config& c) -> Ref { return &c.admin.unready_when_breaker_open; },
     .help = "Fail /readyz while the upstream circuit breaker is open (takes the pod out of its "
             "Service). Needs breaker.enabled."},

    {.key = "upstream.address",
     .type = Type::Endpoint,
     .field = [](Config& c) -> Ref { return &c.upstream.address; },
     .help = "The Redis server to forward to."},
    {.key = "upstream.username",
     .type = Type::String,
     .field = [](Config& c) -> Ref { return &c.upstream.username; },
     .help = "ACL user for AUTH on upstream connections; empty = the default user. Needs "
             "upstream.password."},
    {.key = "upstream.password",
     .type = Type::String,
     .field = [](Config& c) -> Ref { return &c.upstream.password; },
     .help = "Password for AUTH on upstream connections; empty = no AUTH."},
    {.key = "upstream.connections_per_worker",
     .type = Type::Uint,
     .field = [](Config& c) -> Ref { return &c.upstream.connections_per_worker; },
     .help = "Shared, pipelined upstream connections per worker.",
     .min = 1,
     .max = 64},
    {.key = "upstream.connect_timeout",
     .type = Type::Duration,
     .field = [](Config& c) -> Ref { return &c.upstream.connect_timeout; },
     .help = "Give up connecting to the upstream after this long.",
     .min = 1},
    {.key = "upstream.request_timeout",
     .type = Type::Duration,
     .field = [](Config& c) -> Ref { return &c.upstream.request_timeout; },
     .help = "A request the upstream has not answered within this time gets an error reply.",
     .min = 1},
    {.key = "upstream.blocking_timeout_margin",
     .type = Type::Duration,
     .field = [](Config& c) -> Ref { return &c.upstream.blocking_timeout_margin; },
     .help = "Added to a blocking command's own timeout (BLPOP k 5) before the request times out."},
    // > 0: a zero delay would reconnect to a dead upstream in a busy loop.
    {.key = "upstream.reconnect_backoff_min",
     .type = Type::Duration,
     .field = [](Config& c) -> Ref { return &c.upstream.reconnect_backoff_min; },
     .help = "First delay before reconnecting to a failed upstream; the delay grows up to "
             "reconnect_backoff_max.",
     .min = 1},
    {.key = "upstream.reconnect_backoff_max",
     .type = Type::Duration,
     .field = [](Config& c) -> Ref { return &c.upstream.reconnect_backoff_max; },
     .help = "Longest delay between reconnect attempts; not less than reconnect_backoff_min."},
    {.key = "upstream.databases",
     .type = Type::Uint,
     .field = [](Config& c) -> Ref { return &c.upstream.databases; },
     .help = "Databases clients may SELECT when the upstream does not answer CONFIG GET databases.",
     .min = 1},
    // TLS to the upstream. Health checks and the coherence channel use it too.
    {.key = "upstream.tls.enabled",
     .type = Type::Bool,
     .field = [](Config& c) -> Ref { return &c.upstream.tls.enabled; },
     .help = "Connect to the upstream over TLS (Redis's tls-port), TLS 1.2 or later."},
    {.key = "upstream.tls.ca_file",
     .type = Type::String,
     .field = [](Config& c) -> Ref { return &c.upstream.tls.ca_file; },
     .help = "PEM CA bundle the upstream's certificate must be signed by; empty = the system's "
             "CAs."},
    {.key = "upstream.tls.cert_file",
     .type = Type::String,
     .field = [](Config& c) -> Ref { return &c.upstream.tls.cert_file; },
     .help = "PEM client certificate for mutual TLS (Redis's tls-auth-clients yes); empty = "
             "none. Needs upstream.tls.key_file."},
    {.key = "upstream.tls.key_file",
     .type = Type::String,
     .field = [](Config& c) -> Ref { return &c.upstream.tls.key_file; },
     .help = "PEM private key of upstream.tls.cert_file."},
    {.key = "upstream.tls.server_name",
     .type = Type::String,
     .field = [](Config& c) -> Ref { return &c.upstream.tls.server_name; },
     .help = "Name sent as SNI and checked against the upstream's certificate; empty = the host "
             "of upstream.address (an IP address is checked as one, without SNI)."},
    {.key = "upstream.tls.verify",
     .type = Type::Bool,
     .field = [](Config& c) -> Ref { return &c.upstream.tls.verify; },
     .help = "Verify the upstream's certificate chain and name. false encrypts without knowing "
             "who answers: for tests only."},

    {.key = "protocol.proto_max_bulk_len",
     .type = Type::Size,
     .field = [](Config& c) -> Ref { return &c.protocol.max_bulk_len; },
     .help = "Largest bulk string in a request (Redis proto-max-bulk-len).",
     .min = 1},
    {.key = "protocol.max_multibulk_len",
     .type = Type::Uint,
     .field = [](Config& c) -> Ref { return &c.protocol.max_multibulk_len; },
     .help = "Most arguments in one request.",
     .min = 1},
    {.key = "protocol.max_inline_len",
     .type = Type::Size,
     .field = [](Config& c) -> Ref { return &c.protocol.max_inline_len; },
     .help = "Longest inline (non-RESP, telnet-style) request line.",
     .min = 1},
    {.key = "protocol.max_reply_depth",
     .type = Type::Uint,
     .field = [](Config& c) -> Ref { return &c.protocol.max_reply_depth; },
     .help = "Deepest nesting of aggregate replies accepted from the upstream.",
     .min = 1},

    // Client authentication. auth.users is a list, read by its own loader like `rules`.
    {.key = "auth.max_failures_per_second",
     .type = Type::Uint,
     .field = [](Config& c) -> Ref { return &c.auth.max_failures_per_second; },
     .help = "With auth.users: failed AUTH attempts allowed per second, all clients together "
             "(bursts of as many); beyond it AUTH is answered WRONGPASS without checking the "
             "password, so passwords cannot be guessed faster. 0 = no limit."},

    // The key rules themselves (`rules:`) are a list, read by the loader below the table.
    {.key = "policy_limits.negative_cache_max_entries",
     .type = Type::Uint,
     .field = [](Config& c) -> Ref { return &c.policy_limits.negative_cache_max_entries; },
     .help = "Most \"key is absent\" entries the negative cache holds, all rules together; the "
             "least recently used make room for new ones.",
     .min = 1},
    {.key = "policy_limits.lease_max_keys",
     .type = Type::Uint,
     .field = [](Config& c) -> Ref { return &c.policy_limits.lease_max_keys; },
     .help = "Most keys under a miss lease at once, all rules together.",
     .min = 1},

    // The coherence channel. Its options matter only when a rule keeps local state (a negative
    // cache, a Bloom filter); without such a rule nothing is subscribed or scanned.
    {.key = "coherence.enabled",
     .type = Type::Bool,
     .field = [](Config& c) -> Ref { return &c.coherence.enabled; },
     .help = "Keep the policies' local state (negative cache, Bloom filters) true when other "
             "clients write to Redis directly: the proxy subscribes to Redis's invalidation "
             "messages (CLIENT TRACKING BCAST) for the prefixes of such rules. Rules with bloom "
             "need it; without it a negative cache sees only writes made through this proxy."},
    {.key = "coherence.scan_count",
     .type = Type::Uint,
     .field = [](Config& c) -> Ref { return &c.coherence.scan_count; },
     .help = "COUNT of each SCAN (keyspace Bloom filters) or SSCAN (source: set) call of a "
             "warm-up: larger means fewer round trips but a longer time Redis spends on each.",
     .min = 1,
     .max = 100000},
    // std::uint64_t is std::size_t on the platforms built for (LP64), so it fits the Ref variant.
    {.key = "coherence.warmup_keys_per_second",
     .type = Type::Uint,
     .field = [](Config& c) -> Ref { return &c.coherence.warmup_keys_per_second; },
     .help = "Pace of warm-up scans, in keys per second for the whole process, so filling the "
             "filters does not crowd out client traffic on Redis; 0 = as fast as Redis answers."},

    // Command guard. guard.deny and guard.allow are lists, read by their own loader.
    {.key = "guard.profile",
     .type = Type::Enum,
     .field = [](Config& c) -> Ref { return &c.guard.profile; },
     .help = "Commands refused before they reach Redis: off (none: a drop-in proxy changes "
             "nothing), or production (KEYS, FLUSHALL, FLUSHDB, SWAPDB, DEBUG, SHUTDOWN, CONFIG "
             "SET/REWRITE/RESETSTAT, MONITOR, SCRIPT FLUSH, FUNCTION FLUSH, SAVE, REPLICAOF, "
             "FAILOVER, MODULE, ACL SETUSER/DELUSER/LOAD/SAVE, CLIENT PAUSE), each refusal "
             "saying why and what to use instead. guard.deny adds commands, guard.allow removes "
             "them.",
     .choices = kGuardProfiles},
    {.key = "guard.max_arguments",
     .type = Type::Uint,
     .field = [](Config& c) -> Ref { return &c.guard.max_arguments; },
     .help = "Most arguments a command may have (after its name), e.g. keys of one MGET or DEL; "
             "0 = no limit."},
    {.key = "guard.max_request_bytes",
     .type = Type::Size,
     .field = [](Config& c) -> Ref { return &c.guard.max_request_bytes; },
     .help = "Largest request (all its arguments) let through to Redis; 0 = no limit. The "
             "protocol limits (protocol.*) still bound what the proxy reads."},
    {.key = "guard.max_value_bytes",
     .type = Type::Size,
     .field = [](Config& c) -> Ref { return &c.guard.max_value_bytes; },
     .help = "Largest value (any argument that is not a key) a write command may carry: big "
             "keys are refused before they reach Redis; 0 = no limit."},
    {.key = "guard.big_value_bytes",
     .type = Type::Size,
     .field = [](Config& c) -> Ref { return &c.guard.big_value_bytes; },
     .help = "Writes carrying a value over this size are let through but counted "
             "(respguard_guard_big_values_total) and logged with their key (at most one line a "
             "second): big keys made visible before they hurt; 0 = off."},
    {.key = "guard.big_collection_elements",
     .type = Type::Uint,
     .field = [](Config& c) -> Ref { return &c.guard.big_collection_elements; },
     .help = "Writes after which a list, set, sorted set, hash or stream holds more elements than "
             "this are counted (respguard_guard_big_collections_total) and logged with the key "
             "and size (at most one line a second); 0 = off. Lists: the length in the reply of "
             "LPUSH/RPUSH/LINSERT; others: a size probe after SADD/ZADD/HSET/XADD (see "
             "guard.collection_probe_every)."},
    {.key = "guard.collection_probe_every",
     .type = Type::Uint,
     .field = [](Config& c) -> Ref { return &c.guard.collection_probe_every; },
     .help = "With guard.big_collection_elements, one SADD/ZADD/HSET/XADD (and their variants) in "
             "this many, at random, is followed by SCARD/ZCARD/HLEN/XLEN of its key on the same "
             "upstream connection, its reply read by the proxy alone; 1 = after every one.",
     .min = 1},

    // Hot keys: a bounded top-k of key frequency (docs/security.md).
    {.key = "hot_keys.enabled",
     .type = Type::Bool,
     .field = [](Config& c) -> Ref { return &c.hot_keys.enabled; },
     .help = "Track the keys requested most (the first key of each sampled command) and export "
             "the top as respguard_hot_key_requests_per_second{rank,key}."},
    {.key = "hot_keys.top_n",
     .type = Type::Uint,
     .field = [](Config& c) -> Ref { return &c.hot_keys.top_n; },
     .help = "Hot keys exported and logged.",
     .min = 1,
     .max = 100},
    {.key = "hot_keys.capacity",
     .type = Type::Uint,
     .field = [](Config& c) -> Ref { return &c.hot_keys.capacity; },
     .help = "Counters per worker (Space-Saving): every key requested more often than 1 in this "
             "many sampled commands of an interval is found; memory is this many keys.",
     .min = 1,
     .max = 1000000},
    {.key = "hot_keys.sample_every",
     .type = Type::Uint,
     .field = [](Config& c) -> Ref { return &c.hot_keys.sample_every; },
     .help = "Count one command in this many, at random (1 = every one); the rates are scaled "
             "back up.",
     .min = 1,
     .max = 1000000},
    {.key = "hot_keys.report_interval",
     .type = Type::Duration,
     .field = [](Config& c) -> Ref { return &c.hot_keys.report_interval; },
     .help = "The window of the counts: the workers' tables are merged, exported and emptied this "
             "often.",
     .min = 100},
    {.key = "hot_keys.log_threshold_per_second",
     .type = Type::Uint,
     .field = [](Config& c) -> Ref { return &c.hot_keys.log_threshold_per_second; },
     .help = "Log the top keys and their rates (one info line per interval) when the hottest is "
             "requested more often than this; 0 = never."},

    // Protection. rate_limit.overrides is a list, read by its own loader like `rules`.
    {.key = "rate_limit.identity",
     .type = Type::Enum,
     .field = [](Config& c) -> Ref { return &c.rate_limit.identity; },
     .help = "What makes connections one client for the limits: the peer address (source_ip), "
             "the CLIENT SETNAME name (client_name) or the AUTH user (user). All connections with "
             "the same value, on every worker, share one bucket.",
     .choices = kIdentities},
    {.key = "rate_limit.rate",
     .type = Type::Uint,
     .field = [](Config& c) -> Ref { return &c.rate_limit.limit.rate; },
     .help = "Requests per second each client may send, unless rate_limit.overrides names it; "
             "beyond it requests get \"rate limit exceeded\" errors. 0 = no limit."},
    {.key = "rate_limit.burst",
     .type = Type::Uint,
     .field = [](Config& c) -> Ref { return &c.rate_limit.limit.burst; },
     .help = "Requests a client may send at once, ahead of its rate (the bucket depth); 0 = the "
             "same as rate_limit.rate."},
    {.key = "rate_limit.write_rate",
     .type = Type::Uint,
     .field = [](Config& c) -> Ref { return &c.rate_limit.write_limit.rate; },
     .help = "A second, usually lower, limit for write commands (SET, DEL, ...): a write needs "
             "room under both this and rate_limit.rate. Applies to every client, overridden or "
             "not. 0 = no write limit."},
    {.key = "rate_limit.write_burst",
     .type = Type::Uint,
     .field = [](Config& c) -> Ref { return &c.rate_limit.write_limit.burst; },
     .help = "Bucket depth of the write limit; 0 = the same as rate_limit.write_rate."},
    {.key = "rate_limit.max_delay",
     .type = Type::Duration,
     .field = [](Config& c) -> Ref { return &c.rate_limit.max_delay; },
     .help = "A request over the limit whose turn comes within this long waits for it; later "
             "than that (or with 0) it is rejected at once. A waiting request holds up the "
             "client's requests behind it."},
    // At least 1s: below that, a client pausing between requests would have its bucket dropped
    // and re-created (refilled) again and again, for no memory worth saving.
    {.key = "rate_limit.idle_expiry",
     .type = Type::Duration,
     .field = [](Config& c) -> Ref { return &c.rate_limit.idle_expiry; },
     .help = "Forget a client's bucket once it has no connection and has sent nothing for this "
             "long, so the table holds only recent clients; a client forgotten comes back with a "
             "full bucket.",
     .min = 1000},

    {.key = "breaker.enabled",
     .type = Type::Bool,
     .field = [](Config& c) -> Ref { return &c.breaker.enabled; },
     .help = "Circuit breaker: after repeated upstream failures, answer requests at once with an "
             "error instead of sending them to a failing Redis, then probe until it recovers."},
    {.key = "breaker.failure_threshold",
     .type = Type::Uint,
     .field = [](Config& c) -> Ref { return &c.breaker.failure_threshold; },
     .help = "Open after this many consecutive failures: connect errors, timeouts, "
             "LOADING/BUSY/MASTERDOWN replies (ordinary command errors are not failures). 0 = "
             "off."},
    {.key = "breaker.failure_ratio_percent",
     .type = Type::Uint,
     .field = [](Config& c) -> Ref { return &c.breaker.failure_ratio_percent; },
     .help = "Also open when at least this percentage of the requests in breaker.window failed; "
             "0 = off.",
     .max = 100},
    {.key = "breaker.window",
     .type = Type::Duration,
     .field = [](Config& c) -> Ref { return &c.breaker.window; },
     .help = "The sliding time window over which the failure ratio is computed.",
     .min = 1},
    {.key = "breaker.min_requests",
     .type = Type::Uint,
     .field = [](Config& c) -> Ref { return &c.breaker.min_requests; },
     .help = "The failure ratio opens the breaker only once the window holds at least this many "
             "requests, so a few failures in quiet traffic do not."},
    {.key = "breaker.open_for",
     .type = Type::Duration,
     .field = [](Config& c) -> Ref { return &c.breaker.open_for; },
     .help = "How long an open breaker refuses every request before it lets probes through "
             "(half-open).",
     .min = 1},
    {.key = "breaker.probes",
     .type = Type::Uint,
     .field = [](Config& c) -> Ref { return &c.breaker.probes; },
     .help = "Half-open, this many requests go through; when all of them succeed the breaker "
             "closes, and any failure opens it again.",
     .min = 1},

    // No rule between timeout and interval: a timeout longer than the interval is unusual but
    // well defined (a check fails when its PING is late, however the checks are spaced).
    {.key = "health_check.enabled",
     .type = Type::Bool,
     .field = [](Config& c) -> Ref { return &c.health_check.enabled; },
     .help = "PING the upstream on a connection of its own to tell when it is down, and when it "
             "is back, without waiting for client requests to fail. A down upstream holds the "
             "circuit breaker open (with breaker.enabled)."},
    {.key = "health_check.interval",
     .type = Type::Duration,
     .field = [](Config& c) -> Ref { return &c.health_check.interval; },
     .help = "Time between two health checks.",
     .min = 1},
    {.key = "health_check.timeout",
     .type = Type::Duration,
     .field = [](Config& c) -> Ref { return &c.health_check.timeout; },
     .help = "A PING not answered within this time is a failed check.",
     .min = 1},
    {.key = "health_check.rise",
     .type = Type::Uint,
     .field = [](Config& c) -> Ref { return &c.health_check.rise; },
     .help = "Consecutive good checks that mark a down upstream up again.",
     .min = 1},
    {.key = "health_check.fall",
     .type = Type::Uint,
     .field = [](Config& c) -> Ref { return &c.health_check.fall; },
     .help = "Consecutive failed checks that mark the upstream down.",
     .min = 1},
};

// Keys that are not table rows: lists with a loader of their own.
constexpr std::string_view kListKeys[] = {"rules", "rate_limit.overrides", "auth.users",
                                          "guard.deny", "guard.allow"};

// Text helpers -------------------------------------------------------------------------------

std::string in_quotes(std::string_view text) {
  return "'" + std::string(text) + "'";
}

std::string lower(std::string_view text) {
  std::string out(text);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

bool all_digits(std::string_view text) {
  return !text.empty() && std::all_of(text.begin(), text.end(), [](char c) {
    return std::isdigit(static_cast<unsigned char>(c)) != 0;
  });
}

// nullopt when `text` is not a plain decimal number or does not fit.
std::optional<std::uint64_t> to_u64(std::string_view text) {
  if (!all_digits(text)) return std::nullopt;
  std::uint64_t value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size()) return std::nullopt;
  return value;
}

// Splits "64kb" into "64" and "kb".
std::pair<std::string_view, std::string_view> split_number(std::string_view text) {
  std::size_t i = 0;
  while (i < text.size() && std::isdigit(static_cast<unsigned char>(text[i]))) ++i;
  return {text.substr(0, i), text.substr(i)};
}

struct Unit {
  std::string_view suffix;  // lowercase; matched in any case
  std::uint64_t factor;
};

constexpr Unit kDurationUnits[] = {{"ms", 1}, {"s", 1000}, {"m", 60'000}, {"h", 3'600'000}};
constexpr Unit kSizeUnits[] = {{"", 1},           {"k", 1ull << 10},  {"kb", 1ull << 10},
                               {"m", 1ull << 20}, {"mb", 1ull << 20}, {"g", 1ull << 30},
                               {"gb", 1ull << 30}};

std::optional<std::uint64_t> unit_factor(std::span<const Unit> units, std::string_view suffix) {
  for (const Unit& unit : units) {
    if (lower(suffix) == unit.suffix) return unit.factor;
  }
  return std::nullopt;
}

std::size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<std::size_t> prev(b.size() + 1), cur(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) prev[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      std::size_t replace = prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1);
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, replace});
    }
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

std::string format_size(std::uint64_t bytes) {
  constexpr std::uint64_t kK = 1024;
  if (bytes == 0) return "0";
  if (bytes % (kK * kK * kK) == 0) return std::to_string(bytes / (kK * kK * kK)) + "gb";
  if (bytes % (kK * kK) == 0) return std::to_string(bytes / (kK * kK)) + "mb";
  if (bytes % kK == 0) return std::to_string(bytes / kK) + "kb";
  return std::to_string(bytes);
}

std::string format_duration(Millis duration) {
  const std::int64_t ms = duration.count();
  if (ms == 0) return "0";
  if (ms > 0 && ms % 3'600'000 == 0) return std::to_string(ms / 3'600'000) + "h";
  if (ms > 0 && ms % 60'000 == 0) return std::to_string(ms / 60'000) + "m";
  if (ms > 0 && ms % 1000 == 0) return std::to_string(ms / 1000) + "s";
  return std::to_string(ms) + "ms";
}

// Schema helpers -----------------------------------------------------------------------------

// The accessor serves reads and writes; reads never write through it.
Ref field_of(const Option& opt, const Config& config) {
  return opt.field(const_cast<Config&>(config));
}

const Option* find_option(std::string_view key) {
  for (const Option& opt : kOptions) {
    if (opt.key == key) return &opt;
  }
  return nullptr;
}

// A section is a key with options below it: "upstream" for "upstream.address".
bool is_section(std::string_view key) {
  for (const Option& opt : kOptions) {
    if (opt.key.size() > key.size() && opt.key.starts_with(key) && opt.key[key.size()] == '.') {
      return true;
    }
  }
  return false;
}

std::string_view last_name(std::string_view key) {
  std::size_t dot = key.rfind('.');
  return dot == std::string_view::npos ? key : key.substr(dot + 1);
}

// The candidate nearest to `key` within edit distance 2, or "".
std::string_view closest(std::string_view key, std::span<const std::string_view> candidates) {
  std::string_view best;
  std::size_t best_distance = 3;  // suggest only within edit distance 2
  for (std::string_view candidate : candidates) {
    if (candidate == key) continue;  // set_option("upstream"): a section, not a typo of one
    std::size_t d = edit_distance(key, candidate);
    if (d < best_distance) {
      best = candidate;
      best_distance = d;
    }
  }
  return best;
}

// " (did you mean 'upstream.address'?)" or "".
std::string suggestion(std::string_view key) {
  std::vector<std::string_view> known(std::begin(kListKeys), std::end(kListKeys));
  for (const Option& opt : kOptions) {
    known.push_back(opt.key);
    for (std::size_t dot = opt.key.find('.'); dot != std::string_view::npos;
         dot = opt.key.find('.', dot + 1)) {
      known.push_back(opt.key.substr(0, dot));
    }
  }
  std::string_view best = closest(key, known);
  // The layout groups options by what they affect, not by struct, so an option is easily put
  // in the wrong section ("server.idle_timeout" is client.idle_timeout).
  if (best.empty()) {
    std::vector<std::string_view> full_keys(std::begin(kListKeys), std::end(kListKeys));
    for (const Option& opt : kOptions) full_keys.push_back(opt.key);
    for (std::string_view candidate : full_keys) {
      if (candidate != key && last_name(candidate) == last_name(key)) {
        best = candidate;
        break;
      }
    }
  }
  return best.empty() ? "" : " (did you mean " + in_quotes(best) + "?)";
}

std::string_view type_name(Type type) {
  switch (type) {
    case Type::String:
      return "string";
    case Type::Bool:
      return "bool";
    case Type::Uint:
      return "integer";
    case Type::Size:
      return "size";
    case Type::Duration:
      return "duration";
    case Type::Endpoint:
      return "endpoint";
    case Type::Enum:
      return "enum";
  }
  return "?";
}

std::string join(std::span<const std::string_view> words) {
  std::string out;
  for (std::string_view word : words) {
    if (!out.empty()) out += ", ";
    out += word;
  }
  return out;
}

// What a value of the option looks like, for "expected ..., got ..." messages.
std::string expected(const Option& opt) {
  switch (opt.type) {
    case Type::String:
      return "expected a string";
    case Type::Bool:
      return "expected true or false";
    case Type::Uint:
      return "expected a non-negative integer";
    case Type::Size:
      return "expected a size such as 1024, 64kb, 512mb or 1gb";
    case Type::Duration:
      return "expected a duration such as 500ms, 5s or 1m";
    case Type::Endpoint:
      return "expected HOST:PORT such as 127.0.0.1:6379 or [::1]:6379";
    case Type::Enum:
      return "expected one of " + join(opt.choices);
  }
  return "expected a value";
}

// The largest value the field's C++ type holds.
std::uint64_t type_max(Ref ref) {
  return std::visit(
      [](auto* p) -> std::uint64_t {
        using T = std::remove_pointer_t<decltype(p)>;
        if constexpr (std::is_same_v<T, Millis>) {
          return static_cast<std::uint64_t>(std::numeric_limits<Millis::rep>::max());
        } else if constexpr (std::is_integral_v<T> && !std::is_same_v<T, bool>) {
          return static_cast<std::uint64_t>(std::numeric_limits<T>::max());
        } else {
          return 0;
        }
      },
      ref);
}

std::uint64_t effective_max(const Option& opt, Ref ref) {
  return std::min(opt.max, type_max(ref));
}

std::string format_number(Type type, std::uint64_t value) {
  if (type == Type::Size) return format_size(value);
  if (type == Type::Duration) return format_duration(Millis(static_cast<Millis::rep>(value)));
  return std::to_string(value);
}

// "must be between 1 and 64", or "" when any value of the type is allowed.
std::string range_phrase(const Option& opt, Ref ref) {
  const std::uint64_t max = effective_max(opt, ref);
  const bool no_max = max == type_max(ref);
  if (opt.min == 0 && no_max) return "";
  if (no_max) {
    return opt.min == 1 ? "must be greater than 0"
                        : "must be at least " + format_number(opt.type, opt.min);
  }
  if (opt.min == 0) return "must be at most " + format_number(opt.type, max);
  return "must be between " + format_number(opt.type, opt.min) + " and " +
         format_number(opt.type, max);
}

// The value of a numeric field; nullopt when negative (possible only when set in code).
std::optional<std::uint64_t> numeric_value(Ref ref) {
  return std::visit(
      [](auto* p) -> std::optional<std::uint64_t> {
        using T = std::remove_pointer_t<decltype(p)>;
        if constexpr (std::is_same_v<T, Millis>) {
          if (p->count() < 0) return std::nullopt;
          return static_cast<std::uint64_t>(p->count());
        } else if constexpr (std::is_integral_v<T> && !std::is_same_v<T, bool>) {
          if (*p < 0) return std::nullopt;
          return static_cast<std::uint64_t>(*p);
        } else {
          return std::nullopt;
        }
      },
      ref);
}

std::string format_value(const Option& opt, const Config& config) {
  Ref ref = field_of(opt, config);
  switch (opt.type) {
    case Type::String:
    case Type::Enum:
      return *std::get<std::string*>(ref);
    case Type::Bool:
      return *std::get<bool*>(ref) ? "true" : "false";
    case Type::Endpoint:
      return std::get<Endpoint*>(ref)->to_string();
    case Type::Duration:
      return format_duration(*std::get<Millis*>(ref));
    case Type::Uint:
    case Type::Size:
      return std::visit(
          [&](auto* p) -> std::string {
            using T = std::remove_pointer_t<decltype(p)>;
            if constexpr (std::is_integral_v<T> && !std::is_same_v<T, bool>) {
              if (*p < 0) return std::to_string(*p);
              return format_number(opt.type, static_cast<std::uint64_t>(*p));
            } else {
              throw std::logic_error("config schema: " + std::string(opt.key) +
                                     " is numeric but its field is not");
            }
          },
          ref);
  }
  return "";
}

// Why `value` is out of range: the option's own range, or the field type's limit when the
// option sets no maximum (databases: 5000000000 does not fit an unsigned).
std::string out_of_range(const Option& opt, Ref ref, std::uint64_t value) {
  const std::uint64_t max = effective_max(opt, ref);
  if (value > max && max == type_max(ref)) return "must be at most " + format_number(opt.type, max);
  return range_phrase(opt, ref);
}

// Stores a parsed number after the range check; `text` is what the user wrote.
void store_number(const Option& opt, Ref ref, std::uint64_t value, std::string_view text) {
  if (value < opt.min || value > effective_max(opt, ref)) {
    throw std::invalid_argument(out_of_range(opt, ref, value) + ", got " + in_quotes(text));
  }
  std::visit(
      [&](auto* p) {
        using T = std::remove_pointer_t<decltype(p)>;
        if constexpr (std::is_same_v<T, Millis>) {
          *p = Millis(static_cast<Millis::rep>(value));
        } else if constexpr (std::is_integral_v<T> && !std::is_same_v<T, bool>) {
          *p = static_cast<T>(value);
        } else {
          throw std::logic_error("config schema: " + std::string(opt.key) +
                                 " is numeric but its field is not");
        }
      },
      ref);
}

// Parses `text` as the option's type and stores it; throws std::invalid_argument.
void apply(const Option& opt, Config& config, std::string_view text) {
  Ref ref = opt.field(config);
  switch (opt.type) {
    case Type::String:
      *std::get<std::string*>(ref) = std::string(text);
      return;
    case Type::Bool:
      // YAML 1.2 booleans only: "yes"/"on" are strings there, so accepting them would mean one
      // thing to us and another to other YAML tools.
      if (text == "true" || text == "false") {
        *std::get<bool*>(ref) = text == "true";
        return;
      }
      throw std::invalid_argument(expected(opt) + ", got " + in_quotes(text));
    case Type::Enum:
      for (std::string_view choice : opt.choices) {
        if (lower(text) == choice) {
          *std::get<std::string*>(ref) = std::string(choice);
          return;
        }
      }
      throw std::invalid_argument(expected(opt) + ", got " + in_quotes(text));
    case Type::Endpoint:
      *std::get<Endpoint*>(ref) = parse_endpoint(text);
      return;
    case Type::Uint: {
      if (!all_digits(text)) {
        throw std::invalid_argument(expected(opt) + ", got " + in_quotes(text));
      }
      std::optional<std::uint64_t> value = to_u64(text);
      if (!value) throw std::invalid_argument("number is too large, got " + in_quotes(text));
      store_number(opt, ref, *value, text);
      return;
    }
    case Type::Size:
      store_number(opt, ref, parse_size(text), text);
      return;
    case Type::Duration:
      store_number(opt, ref, static_cast<std::uint64_t>(parse_duration(text).count()), text);
      return;
  }
}

// Rules between options. A rule is reported against `key`, or against `other` when only that
// one was written in the file, so the line number points at something the user wrote.
struct Rule {
  std::string_view key;
  std::string_view other;
  std::optional<std::string> (*check)(const Config&);  // the reason when broken
};

// A certificate file without its key file, or the other way round: the reason, reported
// against the one that is set. `prefix` is "tls." or "upstream.tls.".
std::optional<std::string> cert_key_pair(const std::string& cert, const std::string& key,
                                         bool report_cert, std::string_view prefix) {
  if (cert.empty() == key.empty() || report_cert == cert.empty()) return std::nullopt;
  if (report_cert) {
    return "set but " + std::string(prefix) + "key_file is empty; the certificate needs its key";
  }
  return "set but " + std::string(prefix) + "cert_file is empty; a key needs its certificate";
}

template <std::string UpstreamTlsConfig::*Field>
std::optional<std::string> needs_upstream_tls(const Config& c) {
  if (c.upstream.tls.enabled || (c.upstream.tls.*Field).empty()) return std::nullopt;
  return std::string("set but upstream.tls.enabled is false: the upstream is reached without ") +
         "TLS (set enabled: true)";
}

constexpr Rule kRules[] = {
    {"upstream.reconnect_backoff_min", "upstream.reconnect_backoff_max",
     [](const Config& c) -> std::optional<std::string> {
       if (c.upstream.reconnect_backoff_min <= c.upstream.reconnect_backoff_max) {
         return std::nullopt;
       }
       return "upstream.reconnect_backoff_min (" +
              format_duration(c.upstream.reconnect_backoff_min) +
              ") must not be greater than upstream.reconnect_backoff_max (" +
              format_duration(c.upstream.reconnect_backoff_max) + ")";
     }},
    // Redis's AUTH <user> <password> always takes a password; a password alone authenticates
    // the default user, so that case is fine.
    {"upstream.username", "",
     [](const Config& c) -> std::optional<std::string> {
       if (c.upstream.username.empty() || !c.upstream.password.empty()) return std::nullopt;
       return std::string("set but upstream.password is empty; AUTH with a username needs ") +
              "that user's password";
     }},
    // TLS: a certificate needs its key, client-certificate checks need a CA, and TLS settings
    // that nothing uses are a mistake worth naming (someone believes TLS is on).
    {"tls.cert_file", "",
     [](const Config& c) { return cert_key_pair(c.tls.cert_file, c.tls.key_file, true, "tls."); }},
    {"tls.key_file", "",
     [](const Config& c) { return cert_key_pair(c.tls.cert_file, c.tls.key_file, false, "tls."); }},
    {"tls.client_certs", "tls.ca_file",
     [](const Config& c) -> std::optional<std::string> {
       if (c.tls.client_certs == "none" || !c.tls.ca_file.empty()) return std::nullopt;
       return in_quotes(c.tls.client_certs) +
              " needs tls.ca_file, the CA that signs client certificates";
     }},
    {"tls.ca_file", "",
     [](const Config& c) -> std::optional<std::string> {
       if (c.tls.ca_file.empty() || c.tls.enabled()) return std::nullopt;
       return std::string("set but tls.cert_file is empty: the listener does not use TLS");
     }},
    {"upstream.tls.cert_file", "",
     [](const Config& c) {
       return cert_key_pair(c.upstream.tls.cert_file, c.upstream.tls.key_file, true,
                            "upstream.tls.");
     }},
    {"upstream.tls.key_file", "",
     [](const Config& c) {
       return cert_key_pair(c.upstream.tls.cert_file, c.upstream.tls.key_file, false,
                            "upstream.tls.");
     }},
    {"upstream.tls.ca_file", "", &needs_upstream_tls<&UpstreamTlsConfig::ca_file>},
    {"upstream.tls.cert_file", "", &needs_upstream_tls<&UpstreamTlsConfig::cert_file>},
    {"upstream.tls.server_name", "", &needs_upstream_tls<&UpstreamTlsConfig::server_name>},
    // An enabled breaker with both triggers off could never open: surely not what was meant.
    {"breaker.enabled", "breaker.failure_threshold",
     [](const Config& c) -> std::optional<std::string> {
       const BreakerConfig& b = c.breaker;
       if (!b.enabled || b.failure_threshold > 0 || b.failure_ratio_percent > 0) {
         return std::nullopt;
       }
       return std::string("true, but breaker.failure_threshold and ") +
              "breaker.failure_ratio_percent are both 0, so the breaker could never open";
     }},
};

// The reason `opt`'s current value is invalid, if it is (values set in code skip the parser).
std::optional<std::string> check_value(const Option& opt, const Config& config) {
  Ref ref = field_of(opt, config);
  switch (opt.type) {
    case Type::String:
    case Type::Bool:
      return std::nullopt;
    case Type::Enum: {
      const std::string& value = *std::get<std::string*>(ref);
      if (std::find(opt.choices.begin(), opt.choices.end(), value) != opt.choices.end()) {
        return std::nullopt;
      }
      return expected(opt) + ", got " + in_quotes(value);
    }
    case Type::Endpoint: {
      const Endpoint& value = *std::get<Endpoint*>(ref);
      if (!value.host.empty() && value.port != 0) return std::nullopt;
      return expected(opt) + ", got " + in_quotes(value.to_string());
    }
    case Type::Uint:
    case Type::Size:
    case Type::Duration: {
      std::optional<std::uint64_t> value = numeric_value(ref);
      if (value && *value >= opt.min && *value <= effective_max(opt, ref)) return std::nullopt;
      std::string phrase = value ? out_of_range(opt, ref, *value) : range_phrase(opt, ref);
      if (phrase.empty()) phrase = "must not be negative";
      return phrase + ", got " + in_quotes(format_value(opt, config));
    }
  }
  return std::nullopt;
}

// Key rules ----------------------------------------------------------------------------------
//
// `rules` is a list of mappings, so it is not a table row: the loader reads it with the
// functions below, and validate() applies the same checks to rules built in code. A rule's keys
// and its sections' keys are listed here once, for reading and for did-you-mean suggestions.

constexpr std::string_view kRuleKeys[] = {
    "match",
    "db",
    "jitter",
    "jitter.percent",
    "jitter.positive_only",
    "jitter.expire_commands",
    "jitter.default_ttl",
    "coalesce",
    "negative_cache",
    "negative_cache.ttl",
    "lease",
    "lease.wait",
    "bloom",
    "bloom.source",
    "bloom.expected_keys",
    "bloom.false_positive_rate",
    "bloom.set",
    "bloom.id",
    "bloom.absent_reply",
    "bloom.rebuild_interval",
};

// "rules[2]" for the rule at index 2 (0-based, like the list it is in).
std::string rule_path(std::size_t index) {
  return "rules[" + std::to_string(index) + "]";
}

// Reasons, without the "got ..." that the caller adds from what it has (text or value).
constexpr std::string_view kPercentRange = "must be greater than 0 and at most 1 (0.1 = +-10%)";
constexpr std::string_view kPositiveDuration = "must be greater than 0";

bool percent_ok(double percent) {
  return percent > 0 && percent <= 1;  // false for NaN too
}

std::string format_double(double value) {
  char buffer[32];
  auto [end, ec] = std::to_chars(buffer, buffer + sizeof buffer, value);
  return std::string(buffer, end);
}

bool has_policy(const RuleConfig& rule) {
  return rule.jitter || rule.coalesce || rule.negative_cache || rule.lease || rule.bloom;
}

constexpr std::string_view kNoPolicy =
    "sets no policy (jitter, coalesce, negative_cache, lease or bloom), so it would change "
    "nothing";

// Bloom pre-checks. The ranges keep a filter's memory sane (1e9 keys at 1 % is about 1.2 GB)
// and its answers useful (a rate above 0.5 rejects little); a rebuild more often than every
// second would be scanning Redis all the time.
constexpr std::uint64_t kBloomMaxExpectedKeys = 1'000'000'000;
constexpr double kBloomMaxFalsePositiveRate = 0.5;
constexpr Millis kBloomMinRebuildInterval{1000};
constexpr std::string_view kBloomSourceChoices = "expected keyspace or set";
constexpr std::string_view kExpectedKeysRange = "must be between 1 and 1000000000";
constexpr std::string_view kFalsePositiveRange =
    "must be greater than 0 and at most 0.5 (0.01 = 1%)";
constexpr std::string_view kRebuildRange = "must be 0 (never rebuild) or at least 1s";
constexpr std::string_view kIdPlaceholder = "{id}";

bool expected_keys_ok(std::uint64_t keys) {
  return keys >= 1 && keys <= kBloomMaxExpectedKeys;
}

bool false_positive_rate_ok(double rate) {
  return rate > 0 && rate <= kBloomMaxFalsePositiveRate;  // false for NaN too
}

bool rebuild_interval_ok(Millis interval) {
  return interval.count() == 0 || interval >= kBloomMinRebuildInterval;
}

std::size_t count_of(std::string_view text, std::string_view part) {
  std::size_t count = 0;
  for (std::size_t at = text.find(part); at != std::string_view::npos;
       at = text.find(part, at + part.size())) {
    ++count;
  }
  return count;
}

// The first broken check of a rule's bloom section: ("rules[0].bloom.id", reason). `path` is
// "rules[0].bloom". The loader checks the ranges as it reads (quoting the text written) and the
// rest, which relates the keys to `source`, here.
std::optional<std::pair<std::string, std::string>> bloom_violation(const BloomConfig& bloom,
                                                                   const std::string& path) {
  using Source = BloomConfig::Source;
  if (bloom.source != Source::Keyspace && bloom.source != Source::Set) {
    return {{path + ".source", std::string(kBloomSourceChoices) + ", got " +
                                   in_quotes(std::to_string(static_cast<unsigned>(bloom.source)))}};
  }
  if (!expected_keys_ok(bloom.expected_keys)) {
    return {{path + ".expected_keys", std::string(kExpectedKeysRange) + ", got " +
                                          in_quotes(std::to_string(bloom.expected_keys))}};
  }
  if (!false_positive_rate_ok(bloom.false_positive_rate)) {
    return {
        {path + ".false_positive_rate", std::string(kFalsePositiveRange) + ", got " +
                                            in_quotes(format_double(bloom.false_positive_rate))}};
  }
  if (!rebuild_interval_ok(bloom.rebuild_interval)) {
    return {{path + ".rebuild_interval", std::string(kRebuildRange) + ", got " +
                                             in_quotes(format_duration(bloom.rebuild_interval))}};
  }
  if (bloom.source == Source::Set) {
    if (bloom.set.empty()) {
      return {{path + ".set",
               "missing: source: set needs the Redis SET that holds the valid ids, such as "
               "\"valid:product-ids\""}};
    }
    if (bloom.id.empty()) {
      return {{path + ".id",
               "missing: source: set needs where the id sits in a key, such as "
               "\"product:{id}\""}};
    }
    if (count_of(bloom.id, kIdPlaceholder) != 1) {
      return {{path + ".id",
               "must contain {id} exactly once, where the id sits in a key (such as "
               "\"product:{id}\"), got " +
                   in_quotes(bloom.id)}};
    }
    return std::nullopt;
  }
  if (!bloom.set.empty()) {
    return {{path + ".set",
             "allowed only with source: set; a keyspace filter learns its keys from Redis "
             "itself"}};
  }
  if (!bloom.id.empty()) {
    return {{path + ".id",
             "allowed only with source: set; a keyspace filter holds whole keys, not ids"}};
  }
  if (bloom.absent_reply) {
    return {{path + ".absent_reply",
             "allowed only with source: set: with source: keyspace a nil from Redis means "
             "\"not cached\", not \"does not exist\", so there is nothing to answer for the "
             "database"}};
  }
  return std::nullopt;
}

constexpr std::string_view kBloomNeedsCoherence =
    "needs coherence.enabled: true: without the channel a filter cannot learn of keys written "
    "directly to Redis";

// The first broken check of a rule set in code: ("rules[0].jitter.percent", reason).
std::optional<std::pair<std::string, std::string>> rule_violation(const RuleConfig& rule,
                                                                  std::size_t index,
                                                                  const Config& config) {
  const std::string path = rule_path(index);
  auto duration_ok = [](Millis d) { return d.count() > 0; };
  if (rule.match.empty()) return {{path + ".match", "must not be empty; \"*\" matches every key"}};
  if (rule.db && *rule.db < 0) {
    return {{path + ".db", "must not be negative, got " + in_quotes(std::to_string(*rule.db))}};
  }
  if (rule.jitter) {
    if (!percent_ok(rule.jitter->percent)) {
      return {{path + ".jitter.percent", std::string(kPercentRange) + ", got " +
                                             in_quotes(format_double(rule.jitter->percent))}};
    }
    if (rule.jitter->default_ttl && !duration_ok(*rule.jitter->default_ttl)) {
      return {{path + ".jitter.default_ttl",
               std::string(kPositiveDuration) + ", got " +
                   in_quotes(format_duration(*rule.jitter->default_ttl))}};
    }
  }
  if (rule.negative_cache && !duration_ok(rule.negative_cache->ttl)) {
    return {
        {path + ".negative_cache.ttl", std::string(kPositiveDuration) + ", got " +
                                           in_quotes(format_duration(rule.negative_cache->ttl))}};
  }
  if (rule.lease && !duration_ok(rule.lease->wait)) {
    return {{path + ".lease.wait", std::string(kPositiveDuration) + ", got " +
                                       in_quotes(format_duration(rule.lease->wait))}};
  }
  if (rule.bloom) {
    if (auto v = bloom_violation(*rule.bloom, path + ".bloom")) return v;
    if (!config.coherence.enabled) return {{path + ".bloom", std::string(kBloomNeedsCoherence)}};
  }
  if (!has_policy(rule)) return {{path, std::string(kNoPolicy)}};
  return std::nullopt;
}

// Rate limit overrides -----------------------------------------------------------------------
//
// rate_limit.overrides is a list of mappings like `rules`: the loader reads it with the
// functions below, and validate() applies the same checks to overrides built in code.

constexpr std::string_view kOverrideKeys[] = {"identity", "rate", "burst"};

// "rate_limit.overrides[2]" for the override at index 2 (0-based).
std::string override_path(std::size_t index) {
  return "rate_limit.overrides[" + std::to_string(index) + "]";
}

// The text of an IP address literal as inet_ntop (and so Asio) writes a peer's address:
// "2001:DB8:0::7" -> "2001:db8::7"; nullopt when `text` is not one. The rate limiter matches
// identities by exact text, so an override must be stored the way peers are printed.
std::optional<std::string> canonical_ip(std::string_view text) {
  const std::string input(text);
  char buffer[INET6_ADDRSTRLEN];
  in_addr v4{};
  if (inet_pton(AF_INET, input.c_str(), &v4) == 1 &&
      inet_ntop(AF_INET, &v4, buffer, sizeof buffer) != nullptr) {
    return std::string(buffer);
  }
  in6_addr v6{};
  if (inet_pton(AF_INET6, input.c_str(), &v6) == 1 &&
      inet_ntop(AF_INET6, &v6, buffer, sizeof buffer) != nullptr) {
    return std::string(buffer);
  }
  return std::nullopt;
}

// Why `identity` can never be the value of a client of this kind (rate_limit.identity), if so.
std::optional<std::string> identity_problem(std::string_view kind, std::string_view identity) {
  if (identity.empty()) {
    return "must not be empty; write the exact " + std::string(kind) + " value to limit";
  }
  if (kind == "source_ip") {
    if (canonical_ip(identity)) return std::nullopt;
    std::string reason =
        "expected an IP address such as 10.0.0.7 or 2001:db8::7, as "
        "rate_limit.identity is source_ip, got " +
        in_quotes(identity);
    if (identity.find('/') != std::string_view::npos) {
      reason += " (one address per override: ranges are not supported)";
    }
    return reason;
  }
  // Redis's own rules for the names (CLIENT SETNAME, ACL SETUSER): a name outside them is no
  // client's name, so the override would never apply.
  if (kind == "client_name") {
    if (std::all_of(identity.begin(), identity.end(),
                    [](char c) { return c >= '!' && c <= '~'; })) {
      return std::nullopt;
    }
    return "Redis allows only printable ASCII without spaces in client names, so no client can "
           "be named " +
           in_quotes(identity);
  }
  if (std::none_of(identity.begin(), identity.end(), [](char c) {
        return std::isspace(static_cast<unsigned char>(c)) != 0 || c == '\0';
      })) {
    return std::nullopt;
  }
  return "Redis allows no spaces in user names, so no user can be named " + in_quotes(identity);
}

// How two identities are compared: addresses by their canonical text.
std::string identity_key(std::string_view kind, std::string_view identity) {
  if (kind == "source_ip") {
    if (std::optional<std::string> ip = canonical_ip(identity)) return *ip;
  }
  return std::string(identity);
}

// The first broken check of the overrides: ("rate_limit.overrides[1].identity", reason).
std::optional<std::pair<std::string, std::string>> override_violation(
    const RateLimitConfig& rate_limit) {
  const std::vector<RateLimitOverride>& overrides = rate_limit.overrides;
  for (std::size_t i = 0; i < overrides.size(); ++i) {
    const std::string key = override_path(i) + ".identity";
    if (auto reason = identity_problem(rate_limit.identity, overrides[i].identity)) {
      return {{key, *reason}};
    }
    const std::string id = identity_key(rate_limit.identity, overrides[i].identity);
    for (std::size_t j = 0; j < i; ++j) {
      if (identity_key(rate_limit.identity, overrides[j].identity) == id) {
        return {{key, "duplicate identity " + in_quotes(overrides[i].identity) + ", already in " +
                          override_path(j) + "; one identity has one limit"}};
      }
    }
  }
  return std::nullopt;
}

// Users --------------------------------------------------------------------------------------
//
// auth.users is a list of mappings like `rules`. The loader checks each user as it reads it;
// validate() applies the same checks to users built in code. Their ACL rules are parsed by
// protection::Acl, which the server (and --check-config) builds from the loaded Config.

constexpr std::string_view kUserKeys[] = {"name", "password_sha256", "rules"};

std::string user_path(std::size_t index) {
  return "auth.users[" + std::to_string(index) + "]";
}

bool is_sha256_hex(std::string_view text) {
  return text.size() == 64 && std::all_of(text.begin(), text.end(), [](char c) {
           return std::isxdigit(static_cast<unsigned char>(c)) != 0;
         });
}

constexpr std::string_view kHashExpected =
    "expected the password's SHA-256 as 64 hex digits (respguard --hash-password prints it)";

// The first broken check of the users: ("auth.users[1].name", reason).
std::optional<std::pair<std::string, std::string>> user_violation(const AuthConfig& auth) {
  for (std::size_t i = 0; i < auth.users.size(); ++i) {
    const AuthUser& u = auth.users[i];
    if (u.name.empty()) return {{user_path(i) + ".name", "must not be empty"}};
    // Redis's rule for ACL user names.
    if (std::any_of(u.name.begin(), u.name.end(), [](char c) {
          return std::isspace(static_cast<unsigned char>(c)) != 0 || c == '\0';
        })) {
      return {{user_path(i) + ".name", "Redis allows no spaces in user names, got " +
                                           in_quotes(u.name)}};
    }
    for (std::size_t j = 0; j < i; ++j) {
      if (auth.users[j].name == u.name) {
        return {{user_path(i) + ".name", "duplicate user " + in_quotes(u.name) + ", already in " +
                                             user_path(j)}};
      }
    }
    if (!is_sha256_hex(u.password_sha256)) {
      return {{user_path(i) + ".password_sha256",
               std::string(kHashExpected) + ", got " + in_quotes(u.password_sha256)}};
    }
  }
  return std::nullopt;
}

struct Violation {
  std::string key;         // an option, or a path into a list ("rules[2].jitter.percent")
  std::string_view other;  // a second key the reason is also about, or ""
  std::string reason;
};

std::optional<Violation> first_violation(const Config& config) {
  for (const Option& opt : kOptions) {
    if (auto reason = check_value(opt, config)) {
      return Violation{std::string(opt.key), "", *reason};
    }
  }
  for (const Rule& rule : kRules) {
    if (auto reason = rule.check(config)) {
      return Violation{std::string(rule.key), rule.other, *reason};
    }
  }
  for (std::size_t i = 0; i < config.rules.size(); ++i) {
    if (auto v = rule_violation(config.rules[i], i, config)) {
      const bool coherence = v->second == kBloomNeedsCoherence;
      return Violation{v->first, coherence ? "coherence.enabled" : "", v->second};
    }
  }
  if (auto v = override_violation(config.rate_limit)) return Violation{v->first, "", v->second};
  if (auto v = user_violation(config.auth)) return Violation{v->first, "", v->second};
  for (const auto* list : {&config.guard.deny, &config.guard.allow}) {
    for (std::size_t i = 0; i < list->size(); ++i) {
      if (normalize_command_name((*list)[i]) != (*list)[i]) {
        return Violation{std::string(list == &config.guard.deny ? "guard.deny" : "guard.allow") +
                             "[" + std::to_string(i) + "]",
                         "", "not a Redis command: " + in_quotes((*list)[i])};
      }
    }
  }
  return std::nullopt;
}

// Loader -------------------------------------------------------------------------------------

std::string describe_node(const YAML::Node& node) {
  if (node.IsMap()) return "a mapping";
  if (node.IsSequence()) return "a list";
  if (node.IsNull()) return "nothing";
  return in_quotes(node.Scalar());
}

// Counts a stream's documents, for a stream that must hold one. YAML::LoadAll is not used: on some
// invalid input (a stray ',' at the top level, "- a-\n, j") yaml-cpp 0.7's parser keeps
// reporting empty documents and LoadAll loops forever, allocating (yaml-cpp #1040, fixed
// upstream by #1319 after 0.8); found by the config fuzz target. Asking the parser for at most
// two documents cannot loop, and a second document is an error anyway.
class DocumentCounter final : public YAML::EventHandler {
 public:
  // Where a second document starts (1-based line), or 0 when there is at most one; `empty`:
  // that document holds nothing (a stray ',' parses as endless empty documents).
  static int second_document_line(const std::string& yaml, bool& empty) {
    std::istringstream in(yaml);
    YAML::Parser parser(in);
    DocumentCounter counter;
    for (int i = 0; i < 2 && parser.HandleNextDocument(counter); ++i) {
    }
    empty = !counter.second_has_content_;
    return counter.documents_ > 1 ? counter.second_line_ : 0;
  }

  void OnDocumentStart(const YAML::Mark& mark) override {
    if (++documents_ == 2) second_line_ = mark.line + 1;
  }
  void OnScalar(const YAML::Mark&, const std::string&, YAML::anchor_t,
                const std::string&) override {
    content();
  }
  void OnSequenceStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                       YAML::EmitterStyle::value) override {
    content();
  }
  void OnMapStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                  YAML::EmitterStyle::value) override {
    content();
  }
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark&, YAML::anchor_t) override {}
  void OnAlias(const YAML::Mark&, YAML::anchor_t) override {}
  void OnSequenceEnd() override {}
  void OnMapEnd() override {}

 private:
  void content() {
    if (documents_ == 2) second_has_content_ = true;
  }
  int documents_ = 0;
  int second_line_ = 0;
  bool second_has_content_ = false;
};

class Loader {
 public:
  explicit Loader(std::string source) : source_(std::move(source)) {}

  Config load(const std::string& yaml) {
    YAML::Node root;
    int second_document = 0;
    bool second_empty = false;
    try {
      second_document = DocumentCounter::second_document_line(yaml, second_empty);
      if (second_document == 0) root = YAML::Load(yaml);
    } catch (const YAML::Exception& e) {  // ParserException, or DeepRecursion on absurd nesting
      if (e.mark.is_null()) throw ConfigError(source_ + ": invalid YAML: " + e.msg);
      throw ConfigError(source_ + ":" + std::to_string(e.mark.line + 1) +
                        ": invalid YAML (column " + std::to_string(e.mark.column + 1) +
                        "): " + e.msg);
    }
    if (second_document != 0) {
      throw ConfigError(source_ + ":" + std::to_string(second_document) +
                        (second_empty
                             ? ": expected one YAML document, found an empty second one (a "
                               "'---', or a ',' outside [ ] or { }?)"
                             : ": expected one YAML document, found a second one"));
    }
    // An empty file, or one with only comments, has no document or a null one: all defaults.
    if (!root.IsDefined() || root.IsNull()) return config_;
    if (!root.IsMap()) {
      fail(root.Mark().line + 1, "",
           "expected options (key: value lines) at the top level, got " + describe_node(root));
    }
    walk(root, "");
    // rate_limit.identity may come after the overrides in the file, so addresses are put in
    // canonical form once everything is read ("2001:DB8::7" must match a peer 2001:db8::7).
    if (config_.rate_limit.identity == "source_ip") {
      for (RateLimitOverride& o : config_.rate_limit.overrides) {
        if (std::optional<std::string> ip = canonical_ip(o.identity)) o.identity = *ip;
      }
    }
    if (std::optional<Violation> v = first_violation(config_)) {
      // Values from the file were range-checked as they were read; what is left are rules
      // between options. Point at whichever of the keys the file wrote.
      std::string key = v->key;
      if (!lines_.contains(key) && !v->other.empty() && lines_.contains(v->other)) {
        key = std::string(v->other);
      }
      auto line = lines_.find(key);
      fail(line == lines_.end() ? 0 : line->second, key, v->reason);
    }
    return config_;
  }

 private:
  void walk(const YAML::Node& map, const std::string& prefix) {
    // By value: yaml-cpp's iterators hand out temporaries, so a reference would dangle.
    for (const auto entry : map) {
      const YAML::Node key_node = entry.first;
      const YAML::Node value = entry.second;
      const int line = key_node.Mark().line + 1;
      if (!key_node.IsScalar()) {
        fail(line, prefix, "keys must be plain names, got " + describe_node(key_node));
      }
      const std::string& name = key_node.Scalar();
      const std::string key = prefix.empty() ? name : prefix + "." + name;
      // One way to write a key: "upstream.address:" at the top level would be a second one.
      if (name.find('.') != std::string::npos) {
        fail(line, key,
             "keys are nested, not dotted: write the section and indent the key below it");
      }
      // yaml-cpp keeps both copies of a repeated key; YAML says keys are unique, and silently
      // taking one of them would hide an editing mistake.
      if (auto [first, inserted] = lines_.emplace(key, line); !inserted) {
        fail(line, key, "duplicate key (first set on line " + std::to_string(first->second) + ")");
      }
      if (prefix.empty() && name == "rules") {
        read_rules(value, line);
      } else if (key == "auth.users") {
        read_users(value, line);
      } else if (key == "rate_limit.overrides") {
        read_overrides(value, line);
      } else if (key == "guard.deny" || key == "guard.allow") {
        read_command_list(value, line, key, key == "guard.deny" ? config_.guard.deny
                                                                : config_.guard.allow);
      } else if (const Option* opt = find_option(key)) {
        read_option(*opt, value, line);
      } else if (is_section(key)) {
        // A section whose options are all commented out is null: nothing to set.
        if (value.IsNull()) continue;
        if (!value.IsMap()) {
          fail(line, key,
               "expected a section of indented key: value lines, got " + describe_node(value));
        }
        walk(value, key);
      } else {
        fail(line, key, "unknown key" + suggestion(key));
      }
    }
  }

  void read_option(const Option& opt, const YAML::Node& value, int line) {
    if (value.IsNull()) {
      fail(line, opt.key,
           "no value; " + expected(opt) + " (or remove the line to use the default)");
    }
    if (!value.IsScalar()) {
      std::string reason = expected(opt) + ", got " + describe_node(value);
      // "[::1]:6380" unquoted starts a YAML list.
      if (opt.type == Type::Endpoint) reason += " (quote IPv6 addresses: \"[::1]:6379\")";
      fail(line, opt.key, reason);
    }
    try {
      apply(opt, config_, value.Scalar());
    } catch (const std::invalid_argument& e) {
      fail(line, opt.key, e.what());
    }
  }

  // rules: a list of mappings, one per rule, in match order.
  void read_rules(const YAML::Node& list, int line) {
    if (list.IsNull()) return;  // every rule commented out
    if (!list.IsSequence()) {
      fail(line, "rules",
           "expected a list of rules, each starting with \"- match: ...\", got " +
               describe_node(list));
    }
    for (std::size_t i = 0; i < list.size(); ++i) config_.rules.push_back(read_rule(list[i], i));
  }

  RuleConfig read_rule(const YAML::Node& node, std::size_t index) {
    const std::string path = rule_path(index);
    const int rule_line = node.Mark().line + 1;
    if (!node.IsMap()) {
      fail(rule_line, path,
           "expected a rule (match: and its policies, as indented key: value lines), got " +
               describe_node(node));
    }
    RuleConfig rule;
    bool has_match = false;
    for_each_entry(node, path, [&](const std::string& key, const YAML::Node& value, int line) {
      const std::string_view name = last_name(key);
      if (name == "match") {
        rule.match = scalar(value, line, key, "a key pattern such as \"user:*\"");
        if (rule.match.empty()) fail(line, key, "must not be empty; \"*\" matches every key");
        has_match = true;
      } else if (name == "db") {
        rule.db = read_db(value, line, key);
      } else if (name == "coalesce") {
        rule.coalesce = read_bool(value, line, key);
      } else if (name == "jitter") {
        rule.jitter = read_jitter(value, line, key, path);
      } else if (name == "negative_cache") {
        rule.negative_cache = read_negative_cache(value, line, key, path);
      } else if (name == "lease") {
        rule.lease = read_lease(value, line, key, path);
      } else if (name == "bloom") {
        rule.bloom = read_bloom(value, line, key, path);
        lines_.emplace(key, line);  // for the check against coherence.enabled, made at the end
      } else {
        fail(line, key, "unknown key" + rule_suggestion(path, key));
      }
    });
    if (!has_match) {
      fail(rule_line, path,
           "missing match: the keys the rule applies to, such as \"user:*\" (\"*\" for every "
           "key)");
    }
    if (!has_policy(rule)) fail(rule_line, path, std::string(kNoPolicy));
    return rule;
  }

  // guard.deny / guard.allow: a list of command names, "CONFIG SET" or "config|set" for a
  // subcommand; stored normalized ("config|set").
  void read_command_list(const YAML::Node& list, int line, const std::string& key,
                         std::vector<std::string>& out) {
    if (list.IsNull()) return;
    if (!list.IsSequence()) {
      fail(line, key, "expected a list of commands like [KEYS, CONFIG SET], got " +
                          describe_node(list));
    }
    for (std::size_t i = 0; i < list.size(); ++i) {
      const int item_line = list[i].Mark().line + 1;
      const std::string path = key + "[" + std::to_string(i) + "]";
      if (!list[i].IsScalar()) {
        fail(item_line, path, "expected a command name, got " + describe_node(list[i]));
      }
      std::string name = normalize_command_name(list[i].Scalar());
      if (name.empty()) {
        fail(item_line, path, "not a Redis command: " + in_quotes(list[i].Scalar()));
      }
      out.push_back(std::move(name));
    }
  }

  // rate_limit.overrides: a list of mappings, one per identity. Which identities are valid
  // depends on rate_limit.identity, which may come later in the file: first_violation() checks
  // them after the whole file is read, at the lines recorded here.
  void read_overrides(const YAML::Node& list, int line) {
    if (list.IsNull()) return;  // every override commented out
    if (!list.IsSequence()) {
      fail(line, "rate_limit.overrides",
           "expected a list of overrides, each starting with \"- identity: ...\", got " +
               describe_node(list));
    }
    for (std::size_t i = 0; i < list.size(); ++i) {
      config_.rate_limit.overrides.push_back(read_override(list[i], i));
    }
  }

  RateLimitOverride read_override(const YAML::Node& node, std::size_t index) {
    const std::string path = override_path(index);
    const int item_line = node.Mark().line + 1;
    if (!node.IsMap()) {
      fail(item_line, path,
           "expected an override (identity:, rate: and optionally burst:, as indented key: value "
           "lines), got " +
               describe_node(node));
    }
    RateLimitOverride entry;
    bool has_identity = false;
    bool has_rate = false;
    for_each_entry(node, path, [&](const std::string& key, const YAML::Node& value, int line) {
      const std::string_view name = last_name(key);
      if (name == "identity") {
        entry.identity = scalar(value, line, key, "a client identity such as \"10.0.0.7\"");
        lines_.emplace(key, line);
        has_identity = true;
      } else if (name == "rate") {
        entry.limit.rate = read_unsigned(value, line, key);
        has_rate = true;
      } else if (name == "burst") {
        entry.limit.burst = read_unsigned(value, line, key);
      } else {
        fail(line, key, "unknown key" + item_suggestion(path, key, kOverrideKeys));
      }
    });
    if (!has_identity) {
      fail(item_line, path,
           "missing identity: the exact source_ip, client_name or user value (as "
           "rate_limit.identity says) this limit is for");
    }
    if (!has_rate) {
      fail(item_line, path, "missing rate: this identity's requests per second (0 = no limit)");
    }
    lines_.emplace(path, item_line);
    return entry;
  }

  // auth.users: a list of mappings, one per user.
  void read_users(const YAML::Node& list, int line) {
    if (list.IsNull()) return;  // every user commented out
    if (!list.IsSequence()) {
      fail(line, "auth.users",
           "expected a list of users, each starting with \"- name: ...\", got " +
               describe_node(list));
    }
    for (std::size_t i = 0; i < list.size(); ++i) {
      const AuthUser user = read_user(list[i], i);
      config_.auth.users.push_back(user);
      if (auto v = user_violation(config_.auth)) {
        auto at = lines_.find(v->first);
        fail(at == lines_.end() ? line : at->second, v->first, v->second);
      }
    }
  }

  AuthUser read_user(const YAML::Node& node, std::size_t index) {
    const std::string path = user_path(index);
    const int item_line = node.Mark().line + 1;
    if (!node.IsMap()) {
      fail(item_line, path,
           "expected a user (name:, password_sha256: and rules:, as indented key: value lines), "
           "got " +
               describe_node(node));
    }
    AuthUser user;
    bool has_name = false;
    bool has_password = false;
    for_each_entry(node, path, [&](const std::string& key, const YAML::Node& value, int line) {
      const std::string_view name = last_name(key);
      lines_.emplace(key, line);
      if (name == "name") {
        user.name = scalar(value, line, key, "a user name such as \"app\"");
        has_name = true;
      } else if (name == "password_sha256") {
        user.password_sha256 = lower(scalar(value, line, key, std::string(kHashExpected)));
        has_password = true;
      } else if (name == "rules") {
        user.rules = scalar(value, line, key, "ACL rules such as \"+@read ~app:*\"");
      } else {
        fail(line, key, "unknown key" + item_suggestion(path, key, kUserKeys));
      }
    });
    if (!has_name) fail(item_line, path, "missing name: the user name clients AUTH with");
    if (!has_password) {
      fail(item_line, path,
           "missing password_sha256: the SHA-256 of the user's password, as 64 hex digits "
           "(respguard --hash-password prints it)");
    }
    lines_.emplace(path, item_line);
    return user;
  }

  JitterConfig read_jitter(const YAML::Node& value, int line, const std::string& key,
                           const std::string& path) {
    JitterConfig jitter;
    for_each_section_entry(value, line, key, [&](const std::string& k, const YAML::Node& v, int l) {
      const std::string_view name = last_name(k);
      if (name == "percent") {
        jitter.percent = read_percent(v, l, k);
      } else if (name == "positive_only") {
        jitter.positive_only = read_bool(v, l, k);
      } else if (name == "expire_commands") {
        jitter.expire_commands = read_bool(v, l, k);
      } else if (name == "default_ttl") {
        jitter.default_ttl = read_positive_duration(v, l, k);
      } else {
        fail(l, k, "unknown key" + rule_suggestion(path, k));
      }
    });
    return jitter;
  }

  NegativeCacheConfig read_negative_cache(const YAML::Node& value, int line, const std::string& key,
                                          const std::string& path) {
    NegativeCacheConfig negative;
    for_each_section_entry(value, line, key, [&](const std::string& k, const YAML::Node& v, int l) {
      if (last_name(k) != "ttl") fail(l, k, "unknown key" + rule_suggestion(path, k));
      negative.ttl = read_positive_duration(v, l, k);
    });
    return negative;
  }

  LeaseConfig read_lease(const YAML::Node& value, int line, const std::string& key,
                         const std::string& path) {
    LeaseConfig lease;
    for_each_section_entry(value, line, key, [&](const std::string& k, const YAML::Node& v, int l) {
      if (last_name(k) != "wait") fail(l, k, "unknown key" + rule_suggestion(path, k));
      lease.wait = read_positive_duration(v, l, k);
    });
    return lease;
  }

  BloomConfig read_bloom(const YAML::Node& value, int line, const std::string& key,
                         const std::string& path) {
    BloomConfig bloom;
    std::map<std::string, int, std::less<>> lines;  // the key of each entry -> its line
    for_each_section_entry(value, line, key, [&](const std::string& k, const YAML::Node& v, int l) {
      const std::string_view name = last_name(k);
      lines.emplace(k, l);
      if (name == "source") {
        const std::string text = lower(scalar(v, l, k, "keyspace or set"));
        if (text == "keyspace") {
          bloom.source = BloomConfig::Source::Keyspace;
        } else if (text == "set") {
          bloom.source = BloomConfig::Source::Set;
        } else {
          fail(l, k, std::string(kBloomSourceChoices) + ", got " + in_quotes(v.Scalar()));
        }
      } else if (name == "expected_keys") {
        bloom.expected_keys = read_expected_keys(v, l, k);
      } else if (name == "false_positive_rate") {
        bloom.false_positive_rate = read_false_positive_rate(v, l, k);
      } else if (name == "set") {
        bloom.set = scalar(v, l, k, "the name of a Redis SET such as \"valid:product-ids\"");
      } else if (name == "id") {
        bloom.id = scalar(v, l, k, "a key with {id} in it such as \"product:{id}\"");
      } else if (name == "absent_reply") {
        bloom.absent_reply = scalar(v, l, k, "a string such as \"__absent__\"");
      } else if (name == "rebuild_interval") {
        const std::string& text = scalar(v, l, k, "a duration such as 30m or 1h, or 0");
        Millis interval;
        try {
          interval = parse_duration(text);
        } catch (const std::invalid_argument& e) {
          fail(l, k, e.what());
        }
        if (!rebuild_interval_ok(interval)) {
          fail(l, k, std::string(kRebuildRange) + ", got " + in_quotes(text));
        }
        bloom.rebuild_interval = interval;
      } else {
        fail(l, k, "unknown key" + rule_suggestion(path, k));
      }
    });
    // What relates the keys to the source, at the line of the key at fault, or of `bloom:` when
    // the key is missing.
    if (auto v = bloom_violation(bloom, key)) {
      auto at = lines.find(v->first);
      fail(at == lines.end() ? line : at->second, v->first, v->second);
    }
    return bloom;
  }

  // Calls visit(full key, value, line) for each entry of a mapping below `path`, after the
  // checks walk() makes too: plain, undotted, unique keys.
  template <typename Visit>
  void for_each_entry(const YAML::Node& map, const std::string& path, Visit visit) {
    std::map<std::string, int, std::less<>> seen;
    for (const auto entry : map) {  // by value, as in walk()
      const YAML::Node key_node = entry.first;
      const int line = key_node.Mark().line + 1;
      if (!key_node.IsScalar()) {
        fail(line, path, "keys must be plain names, got " + describe_node(key_node));
      }
      const std::string& name = key_node.Scalar();
      const std::string key = path + "." + name;
      if (name.find('.') != std::string::npos) {
        fail(line, key,
             "keys are nested, not dotted: write the section and indent the key below it");
      }
      if (auto [first, inserted] = seen.emplace(name, line); !inserted) {
        fail(line, key, "duplicate key (first set on line " + std::to_string(first->second) + ")");
      }
      visit(key, entry.second, line);
    }
  }

  // A policy section (jitter, negative_cache, lease): its options, or {} for all defaults.
  template <typename Visit>
  void for_each_section_entry(const YAML::Node& value, int line, const std::string& key,
                              Visit visit) {
    if (value.IsNull()) {
      fail(line, key, "no value; write its options indented below it, or {} for the defaults");
    }
    if (!value.IsMap()) {
      fail(line, key,
           "expected a section of indented key: value lines (or {} for the defaults), got " +
               describe_node(value));
    }
    for_each_entry(value, key, visit);
  }

  // " (did you mean 'rules[2].jitter.percent'?)" among the keys a rule may have, or "".
  static std::string rule_suggestion(const std::string& path, std::string_view key) {
    return item_suggestion(path, key, kRuleKeys);
  }

  // The same among `keys`, the keys (relative to `path`) an item of a list may have.
  static std::string item_suggestion(const std::string& path, std::string_view key,
                                     std::span<const std::string_view> keys) {
    const std::string_view relative = key.substr(path.size() + 1);  // "jitter.percnt"
    std::string_view best = closest(relative, keys);
    // A key in the wrong place: "rules[0].ttl" is negative_cache.ttl.
    if (best.empty()) {
      for (std::string_view candidate : keys) {
        if (candidate != relative && last_name(candidate) == last_name(relative)) {
          best = candidate;
          break;
        }
      }
    }
    if (best.empty()) return "";
    return " (did you mean " + in_quotes(path + "." + std::string(best)) + "?)";
  }

  const std::string& scalar(const YAML::Node& value, int line, std::string_view key,
                            std::string_view what) const {
    if (value.IsNull()) {
      fail(line, key, "no value; expected " + std::string(what));
    }
    if (!value.IsScalar()) {
      fail(line, key, "expected " + std::string(what) + ", got " + describe_node(value));
    }
    return value.Scalar();
  }

  bool read_bool(const YAML::Node& value, int line, std::string_view key) const {
    const std::string& text = scalar(value, line, key, "true or false");
    if (text != "true" && text != "false") {
      fail(line, key, "expected true or false, got " + in_quotes(text));
    }
    return text == "true";
  }

  double read_percent(const YAML::Node& value, int line, std::string_view key) const {
    constexpr std::string_view kWhat = "a fraction such as 0.1 (+-10%)";
    const std::string& text = scalar(value, line, key, kWhat);
    double percent = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), percent);
    if (ec != std::errc() || end != text.data() + text.size()) {
      fail(line, key, "expected " + std::string(kWhat) + ", got " + in_quotes(text));
    }
    if (!percent_ok(percent))
      fail(line, key, std::string(kPercentRange) + ", got " + in_quotes(text));
    return percent;
  }

  Millis read_positive_duration(const YAML::Node& value, int line, std::string_view key) const {
    const std::string& text = scalar(value, line, key, "a duration such as 500ms, 5s or 1m");
    Millis duration;
    try {
      duration = parse_duration(text);
    } catch (const std::invalid_argument& e) {
      fail(line, key, e.what());
    }
    if (duration.count() <= 0) {
      fail(line, key, std::string(kPositiveDuration) + ", got " + in_quotes(text));
    }
    return duration;
  }

  // As a Type::Uint option reads its text, with the same messages.
  unsigned read_unsigned(const YAML::Node& value, int line, std::string_view key) const {
    constexpr std::string_view kWhat = "a non-negative integer";
    const std::string& text = scalar(value, line, key, kWhat);
    if (!all_digits(text)) {
      fail(line, key, "expected " + std::string(kWhat) + ", got " + in_quotes(text));
    }
    std::optional<std::uint64_t> number = to_u64(text);
    if (!number) fail(line, key, "number is too large, got " + in_quotes(text));
    constexpr std::uint64_t kMax = std::numeric_limits<unsigned>::max();
    if (*number > kMax) {
      fail(line, key, "must be at most " + std::to_string(kMax) + ", got " + in_quotes(text));
    }
    return static_cast<unsigned>(*number);
  }

  std::uint64_t read_expected_keys(const YAML::Node& value, int line, std::string_view key) const {
    constexpr std::string_view kWhat = "a number of keys such as 1000000";
    const std::string& text = scalar(value, line, key, kWhat);
    if (!all_digits(text)) {
      fail(line, key, "expected " + std::string(kWhat) + ", got " + in_quotes(text));
    }
    std::optional<std::uint64_t> number = to_u64(text);  // nullopt: too large
    if (!number || !expected_keys_ok(*number)) {
      fail(line, key, std::string(kExpectedKeysRange) + ", got " + in_quotes(text));
    }
    return *number;
  }

  double read_false_positive_rate(const YAML::Node& value, int line, std::string_view key) const {
    constexpr std::string_view kWhat = "a fraction such as 0.01 (1%)";
    const std::string& text = scalar(value, line, key, kWhat);
    double rate = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), rate);
    if (ec != std::errc() || end != text.data() + text.size()) {
      fail(line, key, "expected " + std::string(kWhat) + ", got " + in_quotes(text));
    }
    if (!false_positive_rate_ok(rate)) {
      fail(line, key, std::string(kFalsePositiveRange) + ", got " + in_quotes(text));
    }
    return rate;
  }

  int read_db(const YAML::Node& value, int line, std::string_view key) const {
    constexpr std::string_view kWhat = "a database index (0, 1, 2, ...)";
    const std::string& text = scalar(value, line, key, kWhat);
    std::optional<std::uint64_t> db = to_u64(text);
    if (!db || *db > static_cast<std::uint64_t>(std::numeric_limits<int>::max())) {
      fail(line, key, "expected " + std::string(kWhat) + ", got " + in_quotes(text));
    }
    return static_cast<int>(*db);
  }

  // "respguard.yaml:12: upstream.request_timeout: <reason>"; line 0 = unknown.
  [[noreturn]] void fail(int line, std::string_view key, const std::string& reason) const {
    std::string message = source_;
    if (line > 0) message += ":" + std::to_string(line);
    message += ": ";
    if (!key.empty()) message += std::string(key) + ": ";
    throw ConfigError(message + reason);
  }

  std::string source_;
  Config config_;
  std::map<std::string, int, std::less<>> lines_;  // key path -> line that set it
};

std::string escape_markdown_cell(std::string_view text) {
  std::string out;
  for (char c : text) {
    if (c == '|') out += '\\';
    out += c;
  }
  return out;
}

std::string capitalized(std::string text) {
  if (!text.empty()) text[0] = static_cast<char>(std::toupper(static_cast<unsigned char>(text[0])));
  return text;
}

}  // namespace

// Text forms ---------------------------------------------------------------------------------

std::string Endpoint::to_string() const {
  // An IPv6 literal needs brackets, or its colons run into the port's.
  if (host.find(':') != std::string::npos) return "[" + host + "]:" + std::to_string(port);
  return host + ":" + std::to_string(port);
}

Endpoint parse_endpoint(std::string_view text) {
  const std::string bad =
      "expected HOST:PORT such as 127.0.0.1:6379 or [::1]:6379, got " + in_quotes(text);
  std::string_view host;
  std::string_view port;
  if (text.starts_with('[')) {
    std::size_t close = text.find(']');
    if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':') {
      throw std::invalid_argument(bad);
    }
    host = text.substr(1, close - 1);
    port = text.substr(close + 2);
  } else {
    std::size_t colon = text.rfind(':');
    if (colon == std::string_view::npos) throw std::invalid_argument(bad);
    host = text.substr(0, colon);
    port = text.substr(colon + 1);
    if (host.find(':') != std::string_view::npos) {
      throw std::invalid_argument("IPv6 addresses need brackets, such as [::1]:6379, got " +
                                  in_quotes(text));
    }
  }
  const bool host_ok = !host.empty() && std::none_of(host.begin(), host.end(), [](char c) {
    return std::isspace(static_cast<unsigned char>(c)) || c == '[' || c == ']' || c == '/';
  });
  if (!host_ok || port.empty()) throw std::invalid_argument(bad);
  std::optional<std::uint64_t> number = to_u64(port);
  if (!number || *number < 1 || *number > 65535) {
    throw std::invalid_argument("port must be between 1 and 65535, got " + in_quotes(text));
  }
  return Endpoint{std::string(host), static_cast<std::uint16_t>(*number)};
}

Millis parse_duration(std::string_view text) {
  const std::string bad = "expected a duration such as 500ms, 5s or 1m, got " + in_quotes(text);
  auto [digits, unit] = split_number(text);
  if (digits.empty()) throw std::invalid_argument(bad);
  std::optional<std::uint64_t> value = to_u64(digits);  // nullopt: too large
  if (unit.empty()) {
    if (value == 0u) return Millis(0);
    // 5000 could mean ms (Redis's timeouts) or s (Redis's `timeout`): make the writer say.
    throw std::invalid_argument("expected a duration with a unit such as " + std::string(digits) +
                                "ms or " + std::string(digits) +
                                "s (a plain number is ambiguous), got " + in_quotes(text));
  }
  std::optional<std::uint64_t> factor = unit_factor(kDurationUnits, unit);
  if (!factor) throw std::invalid_argument(bad);
  constexpr auto kMax = static_cast<std::uint64_t>(std::numeric_limits<Millis::rep>::max());
  if (!value || *value > kMax / *factor) {
    throw std::invalid_argument("duration is too large, got " + in_quotes(text));
  }
  return Millis(static_cast<Millis::rep>(*value * *factor));
}

std::size_t parse_size(std::string_view text) {
  auto [digits, unit] = split_number(text);
  std::optional<std::uint64_t> factor = unit_factor(kSizeUnits, unit);
  if (digits.empty() || !factor) {
    throw std::invalid_argument("expected a size such as 1024, 64kb, 512mb or 1gb, got " +
                                in_quotes(text));
  }
  std::optional<std::uint64_t> value = to_u64(digits);  // nullopt: too large
  constexpr auto kMax = static_cast<std::uint64_t>(std::numeric_limits<std::size_t>::max());
  if (!value || *value > kMax / *factor) {
    throw std::invalid_argument("size is too large, got " + in_quotes(text));
  }
  return static_cast<std::size_t>(*value * *factor);
}

// Config -------------------------------------------------------------------------------------

std::vector<std::string> differing_options(const Config& a, const Config& b) {
  std::vector<std::string> keys;
  for (const Option& opt : kOptions) {
    bool same = std::visit(
        [](auto* x, auto* y) {
          if constexpr (std::is_same_v<decltype(x), decltype(y)>) {
            return *x == *y;
          } else {
            return false;
          }
        },
        field_of(opt, a), field_of(opt, b));
    if (!same) keys.emplace_back(opt.key);
  }
  // The sections that are lists rather than table rows.
  if (a.rules != b.rules) keys.emplace_back("rules");
  if (a.auth.users != b.auth.users) keys.emplace_back("auth.users");
  if (a.rate_limit.overrides != b.rate_limit.overrides) keys.emplace_back("rate_limit.overrides");
  if (a.guard.deny != b.guard.deny) keys.emplace_back("guard.deny");
  if (a.guard.allow != b.guard.allow) keys.emplace_back("guard.allow");
  return keys;
}

void copy_option(Config& to, const Config& from, std::string_view key) {
  if (key == "rules") {
    to.rules = from.rules;
  } else if (key == "auth.users") {
    to.auth.users = from.auth.users;
  } else if (key == "rate_limit.overrides") {
    to.rate_limit.overrides = from.rate_limit.overrides;
  } else if (key == "guard.deny") {
    to.guard.deny = from.guard.deny;
  } else if (key == "guard.allow") {
    to.guard.allow = from.guard.allow;
  } else if (const Option* opt = find_option(key)) {
    std::visit(
        [](auto* x, auto* y) {
          if constexpr (std::is_same_v<decltype(x), decltype(y)>) *x = *y;
        },
        opt->field(to), field_of(*opt, from));
  } else {
    throw std::invalid_argument("unknown option " + in_quotes(key));
  }
}

bool Config::operator==(const Config& other) const {
  return differing_options(*this, other).empty();
}

Config load_string(const std::string& yaml, const std::string& source_name) {
  return Loader(source_name).load(yaml);
}

Config load_file(const std::string& path) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) {
    throw ConfigError(path + ": cannot read: is a directory");
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) throw ConfigError(path + ": cannot open: " + std::strerror(errno));
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) throw ConfigError(path + ": cannot read: " + std::strerror(errno));
  return load_string(text.str(), path);
}

void set_option(Config& config, std::string_view key, std::string_view value) {
  const Option* opt = find_option(key);
  if (opt == nullptr) {
    throw std::invalid_argument("unknown option " + in_quotes(key) + suggestion(key));
  }
  apply(*opt, config, value);
}

void validate(const Config& config) {
  if (std::optional<Violation> v = first_violation(config)) {
    throw ConfigError(v->key + ": " + v->reason);
  }
}

std::string_view glob_literal_prefix(std::string_view glob) {
  return glob.substr(0, glob.find_first_of("*?[\\"));
}

std::string reference_markdown() {
  const Config defaults;
  std::string out =
      "| Key | Type | Default | Description |\n"
      "|-----|------|---------|-------------|\n";
  for (const Option& opt : kOptions) {
    std::string value = format_value(opt, defaults);
    std::string description(opt.help);
    std::string range = range_phrase(opt, field_of(opt, defaults));
    if (!range.empty()) description += " " + capitalized(range) + ".";
    if (!opt.choices.empty()) {
      description += " One of:";
      for (std::size_t i = 0; i < opt.choices.size(); ++i) {
        description += (i == 0 ? " `" : ", `") + std::string(opt.choices[i]) + "`";
      }
      description += ".";
    }
    out += "| `" + std::string(opt.key) + "` | " + std::string(type_name(opt.type)) + " | " +
           (value.empty() ? "`\"\"`" : "`" + value + "`") + " | " +
           escape_markdown_cell(description) + " |\n";
  }
  return out;
}

std::string normalize_command_name(std::string_view text) {
  std::string s(text);
  for (char& c : s) {
    c = c == ' ' ? '|' : static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  const auto first = s.find_first_not_of('|');
  if (first == std::string::npos) return {};
  s = s.substr(first, s.find_last_not_of('|') - first + 1);
  s.erase(std::unique(s.begin(), s.end(), [](char a, char b) { return a == '|' && b == '|'; }),
          s.end());
  const auto bar = s.find('|');
  if (bar != std::string::npos && s.find('|', bar + 1) != std::string::npos) return {};
  for (char c : s) {
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '|' || c == '-' || c == '_')) {
      return {};
    }
  }
  if (resp::lookup_command(s.substr(0, bar)) == nullptr) return {};
  return s;
}

}  // namespace respguard::config
