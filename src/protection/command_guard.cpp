#include "respguard/protection/command_guard.hpp"

#include <algorithm>
#include <cctype>

namespace respguard::protection {
namespace {

constexpr DeniedCommand kProduction[] = {
    {"keys", "it blocks Redis while it walks every key", "use SCAN"},
    {"flushall", "it deletes every key of every database", "delete keys with UNLINK, by SCAN"},
    {"flushdb", "it deletes every key of the database", "delete keys with UNLINK, by SCAN"},
    {"swapdb", "it swaps whole databases under every client", ""},
    {"debug", "it can stall or crash Redis", ""},
    {"shutdown", "it stops Redis for every client", "stop Redis with your orchestration"},
    {"config|set", "it changes the server's configuration for every client",
     "change the configuration where Redis is deployed (CONFIG GET stays allowed)"},
    {"config|rewrite", "it rewrites the server's configuration file", ""},
    {"config|resetstat", "it resets the statistics operators alert on", ""},
    {"monitor", "it streams every command of every client and slows Redis down",
     "use SLOWLOG or respguard's metrics"},
    {"script|flush", "it drops every cached script: other clients' EVALSHA then fail", ""},
    {"function|flush", "it deletes every function library", ""},
    {"save", "it blocks Redis while it writes the whole dataset", "use BGSAVE"},
    {"replicaof", "it changes the replication topology", ""},
    {"slaveof", "it changes the replication topology", ""},
    {"failover", "it changes the replication topology", ""},
    {"module", "it loads code into Redis", ""},
    {"acl|setuser", "users and permissions are the administrator's", ""},
    {"acl|deluser", "users and permissions are the administrator's", ""},
    {"acl|load", "users and permissions are the administrator's", ""},
    {"acl|save", "users and permissions are the administrator's", ""},
    {"client|pause", "it stops every client", ""},
};

std::string upper(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return out;
}

}  // namespace

std::span<const DeniedCommand> production_deny_list() {
  return kProduction;
}

// What is denied of one command: all of it, or some subcommands; with the reply for each.
struct CommandGuard::Rule {
  std::string whole;  // the reply when the whole command is denied; empty when not
  std::vector<std::pair<std::string, std::string>> subcommands;  // (lower-case name, reply)
};

CommandGuard::CommandGuard(const config::GuardConfig& config) : config_(config) {
  by_command_.resize(resp::all_commands().size());
  auto deny = [&](const std::string& name, std::string reply) {
    const auto bar = name.find('|');
    const resp::CommandInfo* info = resp::lookup_command(name.substr(0, bar));
    if (info == nullptr) return;  // config validation names it; nothing to deny here
    auto& rule = by_command_[info->index];
    if (!rule) rule = std::make_unique<Rule>();
    if (bar == std::string::npos) {
      rule->whole = std::move(reply);
    } else {
      rule->subcommands.emplace_back(name.substr(bar + 1), std::move(reply));
    }
  };
  auto allowed = [&](std::string_view name) {
    return std::find(config.allow.begin(), config.allow.end(), name) != config.allow.end();
  };
  auto display = [](std::string_view name) {
    std::string s = upper(name);
    std::replace(s.begin(), s.end(), '|', ' ');
    return s;
  };
  if (config.profile == "production") {
    for (const DeniedCommand& d : kProduction) {
      if (allowed(d.name)) continue;
      std::string reply =
          "ERR " + display(d.name) +
          " is denied by respguard (guard profile production): " + std::string(d.why);
      if (!d.instead.empty()) reply += "; " + std::string(d.instead);
      deny(std::string(d.name), std::move(reply));
    }
  }
  for (const std::string& name : config.deny) {
    deny(name, "ERR " + display(name) + " is denied by respguard (guard.deny)");
  }
  enabled_ = config.max_arguments != 0 || config.max_request_bytes != 0 ||
             config.max_value_bytes != 0 ||
             std::any_of(by_command_.begin(), by_command_.end(), [](const auto& r) { return !!r; });
}

CommandGuard::~CommandGuard() = default;

std::size_t CommandGuard::largest_value(std::span<const std::string_view> args,
                                        const resp::CommandInfo& info) {
  if (!(info.flags & resp::kWrite)) return 0;
  // Keys are not values: skip the positions the command table names as keys.
  const auto n = static_cast<int>(args.size());
  const int first = info.first_key;
  const int last = info.last_key < 0 ? n + info.last_key : info.last_key;
  const int step = std::max(info.key_step, 1);
  std::size_t largest = 0;
  for (int i = 1; i < n; ++i) {
    if (first > 0 && i >= first && i <= last && (i - first) % step == 0) continue;
    largest = std::max(largest, args[static_cast<std::size_t>(i)].size());
  }
  return largest;
}

CommandGuard::Refusal CommandGuard::check(std::span<const std::string_view> args,
                                          const resp::CommandInfo* info, std::string& reply) const {
  if (!enabled_) return Refusal::None;
  if (info != nullptr) {
    if (const Rule* rule = by_command_[info->index].get()) {
      if (!rule->whole.empty()) {
        reply = rule->whole;
        return Refusal::Denied;
      }
      if (args.size() > 1) {
        for (const auto& [sub, text] : rule->subcommands) {
          if (resp::iequals(args[1], sub)) {
            reply = text;
            return Refusal::Denied;
          }
        }
      }
    }
  }
  if (config_.max_arguments != 0 && args.size() - 1 > config_.max_arguments) {
    reply = "ERR respguard guard: " + std::to_string(args.size() - 1) +
            " arguments, over guard.max_arguments (" + std::to_string(config_.max_arguments) + ")";
    return Refusal::TooManyArguments;
  }
  if (config_.max_request_bytes != 0) {
    std::size_t bytes = 0;
    for (std::string_view a : args) bytes += a.size();
    if (bytes > config_.max_request_bytes) {
      reply = "ERR respguard guard: a request of " + std::to_string(bytes) +
              " bytes, over guard.max_request_bytes (" + std::to_string(config_.max_request_bytes) +
              ")";
      return Refusal::RequestTooBig;
    }
  }
  if (config_.max_value_bytes != 0 && info != nullptr) {
    const std::size_t largest = largest_value(args, *info);
    if (largest > config_.max_value_bytes) {
      reply = "ERR respguard guard: a value of " + std::to_string(largest) +
              " bytes, over guard.max_value_bytes (" + std::to_string(config_.max_value_bytes) +
              "): keep big values out of Redis";
      return Refusal::ValueTooBig;
    }
  }
  return Refusal::None;
}

}  // namespace respguard::protection
