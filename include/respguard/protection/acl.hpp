// Client authentication and ACL (docs/security.md, "Client authentication and ACL"): the users
// of the `auth:` section, each with a password (stored as its SHA-256) and a subset of Redis's
// ACL rules, checked against every command the way Redis 7 checks them. Pure: no I/O, no
// logging; time injected.
//
// Rules (applied left to right, as ACL SETUSER applies them):
//   +@cat / -@cat        allow / deny every command (and subcommand) in an ACL category
//   +@all / allcommands  every command, also those the command table does not know (modules)
//   -@all / nocommands   none
//   +cmd / -cmd          one command; for a container (CONFIG, CLIENT, ...) all its subcommands
//   +cmd|sub / -cmd|sub  one subcommand of a container
//   +cmd|arg             a plain command with this first argument only (+select|0)
//   ~pattern             keys matching a Redis glob; allkeys / ~* every key; resetkeys none
//   &pattern             pub/sub channels; allchannels / &* every channel; resetchannels none
//   on                   accepted (a configured user is enabled)
// A user starts with no commands, no keys and no channels (Redis 7's acl-pubsub-default).
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "respguard/common/sha256.hpp"
#include "respguard/config/config.hpp"
#include "respguard/protection/rate_limiter.hpp"
#include "respguard/resp/command_table.hpp"

namespace respguard::protection {

// Why a command is refused, mapped to Redis's own replies by acl_error().
enum class AclDenial : std::uint8_t { None, Command, Key, Channel, SortBy, SortGet };

struct AclVerdict {
  AclDenial denial = AclDenial::None;
  // The command as Redis names it in the NOPERM text: "get", "config|get" (lower case, from the
  // command table), or `unknown`: the name as sent, lower-cased, of a command the table lacks.
  std::string_view command;
  std::string unknown;
  bool allowed() const { return denial == AclDenial::None; }
  std::string_view command_name() const { return command.empty() ? unknown : command; }
};

// The reply text without '-' or CRLF: Redis 7's "NOPERM this user has no permissions to run the
// 'get' command", "... to access one of the keys used as arguments", ...
std::string acl_error(const AclVerdict& verdict);

// One user's permissions: what ACL SETUSER would build from the same rules.
class AclRules {
 public:
  AclRules();  // no commands, no keys, no channels

  // Applies space-separated rules left to right; throws std::invalid_argument naming the rule
  // ("unknown ACL category '@raed' in '+@raed'").
  static AclRules parse(std::string_view rules);
  void apply(std::string_view rule);

  // The command (args[0] is its name, as sent), its table entry (nullptr: unknown to the
  // table). Keys are those Redis would extract: legacy key positions, subcommand positions,
  // and for movable-key commands (EVAL, ZUNION, XREAD, SORT ... STORE, MIGRATE ... KEYS, ...)
  // their numkeys / STREAMS / STORE arguments.
  AclVerdict check(const resp::CommandInfo* info, std::span<const std::string_view> args) const;

  bool all_commands() const { return all_commands_; }
  bool all_keys() const { return all_keys_; }
  const std::vector<std::string>& key_patterns() const { return key_patterns_; }

 private:
  bool command_bit(std::size_t id) const { return (bits_[id / 64] >> (id % 64)) & 1u; }
  void set_command_bit(std::size_t id, bool on);
  void set_category(std::uint32_t category, bool on);
  void set_command(const resp::CommandInfo& info, bool on);  // a container: all subcommands
  bool key_allowed(std::string_view key) const;
  bool channel_allowed(std::string_view channel, bool is_pattern) const;

  std::vector<std::uint64_t> bits_;  // commands (table index) then subcommands
  // +cmd|arg for commands without subcommands: (command index, allowed first arguments).
  std::vector<std::pair<std::uint16_t, std::vector<std::string>>> first_args_;
  std::vector<std::string> key_patterns_;
  std::vector<std::string> channel_patterns_;
  bool all_commands_ = false;
  bool all_keys_ = false;
  bool all_channels_ = false;
};

// The users of the `auth:` section. Empty: client authentication is the upstream's (as before).
class Acl {
 public:
  struct User {
    std::string name;
    common::Sha256Digest password{};
    AclRules rules;
  };

  // Throws std::invalid_argument "auth.users[1].rules: ..." for a rule it cannot parse.
  explicit Acl(const config::AuthConfig& config);

  bool enabled() const { return !users_.empty(); }
  const User* find(std::string_view name) const;
  // The user when `password` is theirs, nullptr otherwise (unknown users take as long).
  const User* authenticate(std::string_view name, std::string_view password) const;

  // Per process: AUTH attempts over auth.max_failures_per_second failures are answered
  // WRONGPASS without being checked. admit_attempt() takes a token (false: over the limit);
  // a successful attempt gives it back with attempt_succeeded().
  bool admit_attempt(TimePoint now) {
    return failures_.take(now).verdict == Admission::Verdict::Admitted;
  }
  void attempt_succeeded() { failures_.refund(); }

 private:
  std::vector<User> users_;
  TokenBucket failures_;
};

}  // namespace respguard::protection
