#include "respguard/protection/acl.hpp"

#include <algorithm>
#include <array>
#include <charconv>
#include <stdexcept>

#include "respguard/common/errors.hpp"
#include "respguard/policy/rules.hpp"

namespace respguard::protection {
namespace {

using resp::CommandInfo;
using resp::iequals;
using namespace resp;  // CommandFlag and cat:: names for the generated table

// Subcommands of the container commands (CONFIG GET, CLIENT LIST, OBJECT ENCODING, ...), sorted
// by name: Redis 7 checks ACLs per subcommand, with the subcommand's categories and keys.
constexpr CommandInfo kSubcommands[] = {
#include "acl_subcommands.inc"
};

struct Category {
  std::string_view name;
  std::uint32_t bit;
};

constexpr Category kCategories[] = {
    {"keyspace", cat::kKeyspace},   {"read", cat::kRead},
    {"write", cat::kWrite},         {"set", cat::kSet},
    {"sortedset", cat::kSortedset}, {"list", cat::kList},
    {"hash", cat::kHash},           {"string", cat::kString},
    {"bitmap", cat::kBitmap},       {"hyperloglog", cat::kHyperloglog},
    {"geo", cat::kGeo},             {"stream", cat::kStream},
    {"pubsub", cat::kPubsub},       {"admin", cat::kAdmin},
    {"fast", cat::kFast},           {"slow", cat::kSlow},
    {"blocking", cat::kBlocking},   {"dangerous", cat::kDangerous},
    {"connection", cat::kConnection}, {"transaction", cat::kTransaction},
    {"scripting", cat::kScripting},
};

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

std::string quoted(std::string_view s) {
  return "'" + std::string(s) + "'";
}

std::size_t command_count() {
  return resp::all_commands().size();
}

std::size_t subcommand_id(const CommandInfo& sub) {
  return command_count() + static_cast<std::size_t>(&sub - kSubcommands);
}

// The subcommands of `container` ("config"): a contiguous run of the sorted table.
std::span<const CommandInfo> subcommands_of(std::string_view container) {
  auto first = std::find_if(std::begin(kSubcommands), std::end(kSubcommands),
                            [&](const CommandInfo& s) {
                              return s.name.size() > container.size() &&
                                     s.name.starts_with(container) &&
                                     s.name[container.size()] == '|';
                            });
  auto last = first;
  while (last != std::end(kSubcommands) && last->name.size() > container.size() &&
         last->name.starts_with(container) && last->name[container.size()] == '|') {
    ++last;
  }
  return {first, last};
}

// The subcommands of each command of the table, by its index (empty for most): built once.
std::span<const CommandInfo> subcommands_of(const CommandInfo& info) {
  static const std::vector<std::span<const CommandInfo>> ranges = [] {
    std::vector<std::span<const CommandInfo>> out;
    for (const CommandInfo& c : resp::all_commands()) out.push_back(subcommands_of(c.name));
    return out;
  }();
  return ranges[info.index];
}

const CommandInfo* find_subcommand(const CommandInfo& container, std::string_view sub) {
  for (const CommandInfo& s : subcommands_of(container)) {
    if (iequals(s.name.substr(container.name.size() + 1), sub)) return &s;
  }
  return nullptr;
}

bool parse_count(std::string_view s, long long& out) {
  if (s.empty()) return false;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc() && end == s.data() + s.size();
}

// args[numkeys_at] keys starting at args[numkeys_at + 1].
void numkeys_keys(std::span<const std::string_view> args, std::size_t numkeys_at,
                  std::vector<std::string_view>& out) {
  if (args.size() <= numkeys_at) return;
  long long n = 0;
  if (!parse_count(args[numkeys_at], n) || n <= 0) return;  // Redis refuses the command itself
  for (std::size_t i = numkeys_at + 1; i < args.size() && i <= numkeys_at + n; ++i) {
    out.push_back(args[i]);
  }
}

// Keys as Redis 7 extracts them for ACL checks. false: a movable-keys command this function does
// not know (the caller then needs full key access).
bool collect_keys(const CommandInfo& info, std::span<const std::string_view> args,
                  std::vector<std::string_view>& out) {
  const std::string_view name = info.name;
  if (info.flags & kMovablekeys) {
    if (name == "eval" || name == "evalsha" || name == "eval_ro" || name == "evalsha_ro" ||
        name == "fcall" || name == "fcall_ro" || name == "blmpop" || name == "bzmpop") {
      numkeys_keys(args, 2, out);
    } else if (name == "zunion" || name == "zinter" || name == "zdiff" || name == "sintercard" ||
               name == "zintercard" || name == "lmpop" || name == "zmpop") {
      numkeys_keys(args, 1, out);
    } else if (name == "zunionstore" || name == "zinterstore" || name == "zdiffstore") {
      if (args.size() > 1) out.push_back(args[1]);
      numkeys_keys(args, 2, out);
    } else if (name == "sort" || name == "sort_ro") {
      if (args.size() > 1) out.push_back(args[1]);
      for (std::size_t i = 2; i < args.size(); ++i) {
        if (iequals(args[i], "limit")) {
          i += 2;
        } else if (iequals(args[i], "get") || iequals(args[i], "by")) {
          i += 1;
        } else if (iequals(args[i], "store") && i + 1 < args.size()) {
          out.push_back(args[++i]);
        }
      }
    } else if (name == "migrate") {
      // MIGRATE host port key|"" db timeout [COPY] [REPLACE] [AUTH pw] [AUTH2 u pw] [KEYS k..]
      if (args.size() > 3 && !args[3].empty()) out.push_back(args[3]);
      for (std::size_t i = 6; i < args.size(); ++i) {
        if (iequals(args[i], "auth")) {
          i += 1;
        } else if (iequals(args[i], "auth2")) {
          i += 2;
        } else if (iequals(args[i], "keys") && args.size() > 3 && args[3].empty()) {
          for (std::size_t k = i + 1; k < args.size(); ++k) out.push_back(args[k]);
          break;
        }
      }
    } else if (name == "xread" || name == "xreadgroup") {
      for (std::size_t i = 1; i < args.size(); ++i) {
        if (iequals(args[i], "streams")) {
          const std::size_t rest = args.size() - i - 1;
          if (rest % 2 != 0) break;  // Redis refuses an unbalanced STREAMS list
          for (std::size_t k = 0; k < rest / 2; ++k) out.push_back(args[i + 1 + k]);
          break;
        }
      }
    } else if (name == "georadius" || name == "georadiusbymember") {
      if (args.size() > 1) out.push_back(args[1]);
      for (std::size_t i = 2; i + 1 < args.size(); ++i) {
        if (iequals(args[i], "store") || iequals(args[i], "storedist")) out.push_back(args[++i]);
      }
    } else {
      return false;
    }
    return true;
  }
  if (info.first_key <= 0 || info.key_step <= 0) return true;
  const long long argc = static_cast<long long>(args.size());
  long long last = info.last_key < 0 ? argc + info.last_key : info.last_key;
  last = std::min(last, argc - 1);
  for (long long i = info.first_key; i <= last; i += info.key_step) {
    out.push_back(args[static_cast<std::size_t>(i)]);
  }
  return true;
}

}  // namespace

std::string acl_error(const AclVerdict& verdict) {
  switch (verdict.denial) {
    case AclDenial::None:
      return "";
    case AclDenial::Command:
      return std::string(errors::kNoPermCommand) + "'" + std::string(verdict.command_name()) + "'" +
             std::string(errors::kNoPermCommandEnd);
    case AclDenial::Key:
      return std::string(errors::kNoPermKey);
    case AclDenial::Channel:
      return std::string(errors::kNoPermChannel);
    case AclDenial::SortBy:
      return std::string(errors::kSortByDenied);
    case AclDenial::SortGet:
      return std::string(errors::kSortGetDenied);
  }
  return "";
}

AclRules::AclRules() : bits_((command_count() + std::size(kSubcommands) + 63) / 64, 0) {}

AclRules AclRules::parse(std::string_view rules) {
  AclRules out;
  std::size_t i = 0;
  while (i < rules.size()) {
    while (i < rules.size() && (rules[i] == ' ' || rules[i] == '\t')) ++i;
    std::size_t j = i;
    while (j < rules.size() && rules[j] != ' ' && rules[j] != '\t') ++j;
    if (j > i) out.apply(rules.substr(i, j - i));
    i = j;
  }
  return out;
}

void AclRules::set_command_bit(std::size_t id, bool on) {
  if (on) {
    bits_[id / 64] |= std::uint64_t{1} << (id % 64);
  } else {
    bits_[id / 64] &= ~(std::uint64_t{1} << (id % 64));
  }
}

void AclRules::set_command(const CommandInfo& info, bool on) {
  set_command_bit(info.index, on);
  std::erase_if(first_args_, [&](const auto& e) { return e.first == info.index; });
  for (const CommandInfo& sub : subcommands_of(info)) set_command_bit(subcommand_id(sub), on);
}

void AclRules::set_category(std::uint32_t category, bool on) {
  for (const CommandInfo& info : resp::all_commands()) {
    if (info.categories & category) set_command(info, on);
  }
  for (const CommandInfo& sub : kSubcommands) {
    if (sub.categories & category) set_command_bit(subcommand_id(sub), on);
  }
}

void AclRules::apply(std::string_view rule) {
  const std::string text = lower(rule);
  if (text == "on") return;
  if (text == "allcommands" || text == "+@all") {
    std::fill(bits_.begin(), bits_.end(), ~std::uint64_t{0});
    first_args_.clear();
    all_commands_ = true;
    return;
  }
  if (text == "nocommands" || text == "-@all") {
    std::fill(bits_.begin(), bits_.end(), 0);
    first_args_.clear();
    all_commands_ = false;
    return;
  }
  if (text == "allkeys" || rule == "~*") {
    all_keys_ = true;
    key_patterns_.clear();
    return;
  }
  if (text == "resetkeys") {
    all_keys_ = false;
    key_patterns_.clear();
    return;
  }
  if (text == "allchannels" || rule == "&*") {
    all_channels_ = true;
    channel_patterns_.clear();
    return;
  }
  if (text == "resetchannels") {
    all_channels_ = false;
    channel_patterns_.clear();
    return;
  }
  if (rule.starts_with('~')) {
    if (rule.starts_with("~%") || rule.size() == 1) {
      throw std::invalid_argument("unsupported key pattern " + quoted(rule) +
                                  " (write ~pattern; %R~ and %W~ are not supported)");
    }
    if (!all_keys_) key_patterns_.emplace_back(rule.substr(1));
    return;
  }
  if (rule.starts_with('%')) {
    throw std::invalid_argument("unsupported rule " + quoted(rule) +
                                " (read/write key permissions %R~ %W~ are not supported)");
  }
  if (rule.starts_with('&')) {
    if (!all_channels_) channel_patterns_.emplace_back(rule.substr(1));
    return;
  }
  if (rule.size() > 1 && (rule[0] == '+' || rule[0] == '-')) {
    const bool on = rule[0] == '+';
    if (!on) all_commands_ = false;  // as Redis: any removal ends "every command"
    if (rule[1] == '@') {
      const std::string_view name = std::string_view(text).substr(2);
      for (const Category& c : kCategories) {
        if (c.name == name) return set_category(c.bit, on);
      }
      throw std::invalid_argument("unknown ACL category " + quoted(rule.substr(1)) + " in " +
                                  quoted(rule));
    }
    const std::string_view body = std::string_view(text).substr(1);
    const std::size_t bar = body.find('|');
    const std::string_view command = body.substr(0, bar);
    const CommandInfo* info = resp::lookup_command(command);
    if (info == nullptr) {
      throw std::invalid_argument("unknown command " + quoted(command) + " in " + quoted(rule));
    }
    if (bar == std::string_view::npos) return set_command(*info, on);
    const std::string_view arg = body.substr(bar + 1);
    if (arg.empty() || arg.find('|') != std::string_view::npos) {
      throw std::invalid_argument("expected +command|subcommand, got " + quoted(rule));
    }
    if (!subcommands_of(*info).empty()) {
      const CommandInfo* sub = find_subcommand(*info, arg);
      if (sub == nullptr) {
        throw std::invalid_argument("unknown subcommand " + quoted(arg) + " of " +
                                    quoted(info->name) + " in " + quoted(rule));
      }
      set_command_bit(subcommand_id(*sub), on);
      return;
    }
    // A plain command with one allowed first argument (+select|0), as Redis 7.0 allows.
    if (!on) {
      throw std::invalid_argument("denying a first argument is not supported (" + quoted(rule) +
                                  "): deny the command and allow the arguments wanted");
    }
    if (command_bit(info->index)) return;
    for (auto& [index, args] : first_args_) {
      if (index == info->index) {
        args.emplace_back(rule.substr(bar + 2));
        return;
      }
    }
    first_args_.push_back({info->index, {std::string(rule.substr(bar + 2))}});
    return;
  }
  throw std::invalid_argument(
      "unsupported ACL rule " + quoted(rule) +
      " (supported: +@category -@category +command -command +command|subcommand allcommands "
      "nocommands ~pattern allkeys resetkeys &pattern allchannels resetchannels on)");
}

bool AclRules::key_allowed(std::string_view key) const {
  if (all_keys_) return true;
  for (const std::string& p : key_patterns_) {
    if (policy::glob_match(p, key)) return true;
  }
  return false;
}

bool AclRules::channel_allowed(std::string_view channel, bool is_pattern) const {
  if (all_channels_) return true;
  for (const std::string& p : channel_patterns_) {
    // PSUBSCRIBE: Redis allows a pattern only when the user has that very pattern.
    if (is_pattern ? p == channel : policy::glob_match(p, channel)) return true;
  }
  return false;
}

AclVerdict AclRules::check(const CommandInfo* info, std::span<const std::string_view> args) const {
  AclVerdict v;
  if (info == nullptr) {
    // A command the table does not know (a module's, or a newer Redis's): only "every command"
    // covers it, as Redis's allcommands covers commands loaded later.
    if (all_commands_) return v;
    v.denial = AclDenial::Command;
    v.unknown = args.empty() ? std::string() : lower(args[0]);
    return v;
  }
  const CommandInfo* cmd = info;
  std::size_t id = info->index;
  if (args.size() >= 2) {
    if (const CommandInfo* sub = find_subcommand(*info, args[1])) {
      cmd = sub;
      id = subcommand_id(*sub);
    }
  }
  if (!all_commands_ && !(cmd->flags & kNoAuth) && !command_bit(id)) {
    bool first_arg_ok = false;
    if (cmd == info && args.size() >= 2) {
      for (const auto& [index, allowed] : first_args_) {
        if (index != info->index) continue;
        for (const std::string& a : allowed) {
          if (iequals(a, args[1])) first_arg_ok = true;
        }
      }
    }
    if (!first_arg_ok) {
      v.denial = AclDenial::Command;
      v.command = cmd->name;
      return v;
    }
  }
  if (!all_keys_) {
    thread_local std::vector<std::string_view> keys;
    keys.clear();
    if (!collect_keys(*cmd, args, keys)) {
      v.denial = AclDenial::Key;  // keys we cannot find: only full key access is safe
      return v;
    }
    for (std::string_view k : keys) {
      if (!key_allowed(k)) {
        v.denial = AclDenial::Key;
        return v;
      }
    }
  }
  if (!all_channels_ && (cmd->categories & cat::kPubsub)) {
    const std::string_view n = cmd->name;
    const bool publish = n == "publish" || n == "spublish";
    const bool subscribe = n == "subscribe" || n == "ssubscribe";
    const bool psubscribe = n == "psubscribe";
    for (std::size_t i = 1; i < args.size() && (publish || subscribe || psubscribe); ++i) {
      if (!channel_allowed(args[i], psubscribe)) {
        v.denial = AclDenial::Channel;
        return v;
      }
      if (publish) break;
    }
  }
  // SORT BY <pattern with *> and GET read other keys: Redis allows them only with full key
  // access, checked when SORT runs (after the key check above).
  if (!all_keys_ && (cmd->name == "sort" || cmd->name == "sort_ro")) {
    for (std::size_t i = 2; i + 1 < args.size(); ++i) {
      if (iequals(args[i], "limit")) {
        i += 2;
      } else if (iequals(args[i], "by")) {
        if (args[i + 1].find('*') != std::string_view::npos) {
          v.denial = AclDenial::SortBy;
          return v;
        }
        ++i;
      } else if (iequals(args[i], "get")) {
        v.denial = AclDenial::SortGet;
        return v;
      } else if (iequals(args[i], "store")) {
        ++i;
      }
    }
  }
  return v;
}

Acl::Acl(const config::AuthConfig& config)
    : failures_(config.max_failures_per_second, config.max_failures_per_second) {
  for (std::size_t i = 0; i < config.users.size(); ++i) {
    const config::AuthUser& u = config.users[i];
    User user;
    user.name = u.name;
    const std::string path = "auth.users[" + std::to_string(i) + "]";
    if (!common::parse_sha256_hex(u.password_sha256, user.password)) {
      throw std::invalid_argument(path + ".password_sha256: expected 64 hex digits");
    }
    try {
      user.rules = AclRules::parse(u.rules);
    } catch (const std::invalid_argument& e) {
      throw std::invalid_argument(path + ".rules: " + e.what());
    }
    users_.push_back(std::move(user));
  }
}

const Acl::User* Acl::find(std::string_view name) const {
  for (const User& u : users_) {
    if (u.name == name) return &u;
  }
  return nullptr;
}

const Acl::User* Acl::authenticate(std::string_view name, std::string_view password) const {
  const common::Sha256Digest digest = common::sha256(password);
  const User* user = find(name);
  if (user == nullptr) return nullptr;
  return common::digest_equal(digest, user->password) ? user : nullptr;
}

}  // namespace respguard::protection
