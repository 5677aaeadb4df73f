// Command guard (docs/security.md, "Command guard"): commands an operator does not want run
// through the proxy, and size limits that keep big keys out of Redis. Pure: the session asks
// check() before anything else happens to a command, and replies with the text it returns.
//
// With no guard configured everything passes and check() is one branch: a drop-in proxy
// changes nothing but the port. `profile: production` denies the commands that hurt a shared
// production Redis (KEYS, FLUSHALL, CONFIG SET, MONITOR, ...), each refusal saying why and what
// to use instead; `deny` adds commands, `allow` takes them off the profile's list.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "respguard/config/config.hpp"
#include "respguard/resp/command_table.hpp"

namespace respguard::protection {

// One denied command ("keys") or subcommand ("config|set"), and why.
struct DeniedCommand {
  std::string_view name;
  std::string_view why;      // what it does to Redis
  std::string_view instead;  // what to use instead ("" when nothing)
};

// The production profile's list.
std::span<const DeniedCommand> production_deny_list();

class CommandGuard {
 public:
  explicit CommandGuard(const config::GuardConfig& config);
  ~CommandGuard();

  bool enabled() const { return enabled_; }

  enum class Refusal : std::uint8_t { None, Denied, TooManyArguments, RequestTooBig, ValueTooBig };
  // Whether `args` (args[0] the command, `info` its table entry or nullptr when unknown) may
  // run. When not, `reply` holds the error text (no '-' or CRLF).
  Refusal check(std::span<const std::string_view> args, const resp::CommandInfo* info,
                std::string& reply) const;

  // The biggest value argument of a write command, for the big-value report (0 when `info` is
  // not a write).
  static std::size_t largest_value(std::span<const std::string_view> args,
                                   const resp::CommandInfo& info);

 private:
  struct Rule;
  bool enabled_ = false;
  config::GuardConfig config_;
  std::vector<std::unique_ptr<Rule>> by_command_;  // by CommandInfo::index; null: allowed
};

}  // namespace respguard::protection
