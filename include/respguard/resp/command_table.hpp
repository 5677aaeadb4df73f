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

struct CommandInfo {
  std::string_view name;  // lower case
  CommandId id;
  BlockingSpec blocking{0, BlockingSpec::Unit::Seconds};  // meaningful for Blocking only
};

// Looks a command name up, ignoring case. Returns nullptr for commands not in the table.
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
