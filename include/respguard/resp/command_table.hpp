// What the proxy needs to know about each command: how it is handled (forwarded, answered
// locally, pinning a dedicated upstream connection) and, for blocking commands, where their
// timeout is. Pure data; lookups are case-insensitive and allocation-free.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string_view>

namespace respguard::resp {

// Commands the proxy treats specially. Everything else is CommandId::Other and is forwarded
// unchanged (Redis itself answers unknown commands).
enum class CommandId : std::uint8_t {
  Other,
  // Connection scope: answered by the proxy.
  Ping,
  Echo,
  Quit,
  Reset,
  Select,
  Hello,
  Auth,
  Client,
  // Transactions: pin a dedicated upstream connection while the state lasts.
  Multi,
  Exec,
  Discard,
  Watch,
  Unwatch,
  // Pub/sub and other push-style modes: a dedicated connection, replies passed through.
  Subscribe,
  PSubscribe,
  SSubscribe,
  Monitor,
  // Blocking commands: a dedicated connection for the duration of the call.
  Blocking,
  // Stream reads: blocking only with a BLOCK option.
  XRead,
  XReadGroup,
  // Replication handshakes make no sense through a proxy.
  Unsupported,
};

// Where a blocking command carries its timeout, and in which unit.
struct BlockingSpec {
  enum class Unit : std::uint8_t { Seconds, Milliseconds };
  int timeout_arg;  // index into args; negative counts from the end (-1 = last)
  Unit unit;
};

// Command flags as Redis 7 reports them in COMMAND INFO.
enum CommandFlag : std::uint32_t {
  kWrite = 1u << 0,
  kReadonly = 1u << 1,
  kDenyoom = 1u << 2,
  kAdmin = 1u << 3,
  kPubsub = 1u << 4,
  kNoscript = 1u << 5,
  kBlocking = 1u << 6,
  kLoading = 1u << 7,
  kStale = 1u << 8,
  kSkipMonitor = 1u << 9,
  kFast = 1u << 10,
  kNoAuth = 1u << 11,
  kMayReplicate = 1u << 12,
  kMovablekeys = 1u << 13,
  kAllowBusy = 1u << 14,
  kNoMulti = 1u << 15,
};

// ACL categories (@read, @write, @dangerous, ...).
namespace cat {
enum : std::uint32_t {
  kKeyspace = 1u << 0,
  kRead = 1u << 1,
  kWrite = 1u << 2,
  kSet = 1u << 3,
  kSortedset = 1u << 4,
  kList = 1u << 5,
  kHash = 1u << 6,
  kString = 1u << 7,
  kBitmap = 1u << 8,
  kHyperloglog = 1u << 9,
  kGeo = 1u << 10,
  kStream = 1u << 11,
  kPubsub = 1u << 12,
  kAdmin = 1u << 13,
  kFast = 1u << 14,
  kSlow = 1u << 15,
  kBlocking = 1u << 16,
  kDangerous = 1u << 17,
  kConnection = 1u << 18,
  kTransaction = 1u << 19,
  kScripting = 1u << 20,
};
}  // namespace cat

struct CommandInfo {
  std::string_view name;    // lower case
  int arity = 0;            // Redis arity: N exact, -N at least N (the name counts)
  std::uint32_t flags = 0;  // CommandFlag bits
  int first_key = 0;        // key positions (first, last, step); last < 0 counts from the end
  int last_key = 0;
  int key_step = 0;
  std::uint32_t categories = 0;                           // cat:: bits
  CommandId id = CommandId::Other;                        // how the proxy handles it
  BlockingSpec blocking{0, BlockingSpec::Unit::Seconds};  // meaningful for Blocking only
  std::uint16_t index = 0;  // position in all_commands(): a dense id for metric labels
};

// Every command of Redis 7 (generated from COMMAND INFO), sorted by name.
std::span<const CommandInfo> all_commands();

// Looks a command name up, ignoring case. Returns nullptr for names Redis does not know
// (they are forwarded anyway: the upstream may be newer, or have modules).
const CommandInfo* lookup_command(std::string_view name);

// The id for a name (Other when unknown).
inline CommandId command_id(std::string_view name) {
  const CommandInfo* info = lookup_command(name);
  return info ? info->id : CommandId::Other;
}

// For a blocking command (id Blocking, or XREAD/XREADGROUP with BLOCK), how long the upstream
// may legitimately take to answer, in milliseconds: 0 = forever, nullopt = not blocking (or a
// timeout argument Redis would reject; the upstream then answers at once with its error).
std::optional<std::int64_t> blocking_timeout_ms(const CommandInfo& info,
                                                std::span<const std::string_view> args);

// ASCII case-insensitive equality, for subcommands and options.
bool iequals(std::string_view a, std::string_view b);

}  // namespace respguard::resp
