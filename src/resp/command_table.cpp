#include "respguard/resp/command_table.hpp"

#include <array>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <string>
#include <vector>

namespace respguard::resp {
namespace {

using Unit = BlockingSpec::Unit;

struct RedisCommand {
  std::string_view name;
  int arity;
  std::uint32_t flags;
  int first_key, last_key, key_step;
  std::uint32_t categories;
};

constexpr RedisCommand kRedisCommands[] = {
#include "command_table_data.inc"
};

// How the proxy treats the commands it does not simply forward.
struct Special {
  std::string_view name;
  CommandId id;
  BlockingSpec blocking{0, Unit::Seconds};
};

constexpr Special kSpecial[] = {
    {"ping", CommandId::Ping},
    {"echo", CommandId::Echo},
    {"quit", CommandId::Quit},
    {"reset", CommandId::Reset},
    {"select", CommandId::Select},
    {"hello", CommandId::Hello},
    {"auth", CommandId::Auth},
    {"client", CommandId::Client},
    {"multi", CommandId::Multi},
    {"exec", CommandId::Exec},
    {"discard", CommandId::Discard},
    {"watch", CommandId::Watch},
    {"unwatch", CommandId::Unwatch},
    {"subscribe", CommandId::Subscribe},
    {"psubscribe", CommandId::PSubscribe},
    {"ssubscribe", CommandId::SSubscribe},
    {"monitor", CommandId::Monitor},
    {"blpop", CommandId::Blocking, {-1, Unit::Seconds}},
    {"brpop", CommandId::Blocking, {-1, Unit::Seconds}},
    {"brpoplpush", CommandId::Blocking, {-1, Unit::Seconds}},
    {"blmove", CommandId::Blocking, {-1, Unit::Seconds}},
    {"blmpop", CommandId::Blocking, {1, Unit::Seconds}},
    {"bzpopmin", CommandId::Blocking, {-1, Unit::Seconds}},
    {"bzpopmax", CommandId::Blocking, {-1, Unit::Seconds}},
    {"bzmpop", CommandId::Blocking, {1, Unit::Seconds}},
    {"wait", CommandId::Blocking, {2, Unit::Milliseconds}},
    {"waitaof", CommandId::Blocking, {3, Unit::Milliseconds}},
    {"xread", CommandId::XRead},
    {"xreadgroup", CommandId::XReadGroup},
    {"sync", CommandId::Unsupported},
    {"psync", CommandId::Unsupported},
    {"replconf", CommandId::Unsupported},
};

char lower(char c) {
  return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
}

std::uint32_t hash_lower(std::string_view s) {
  std::uint32_t h = 2166136261u;  // FNV-1a over the lower-cased bytes
  for (char c : s) h = (h ^ static_cast<unsigned char>(lower(c))) * 16777619u;
  return h;
}

// All commands plus an open-addressing index over their names, built once. Lookups hash the
// name case-insensitively in place: no copy, no allocation.
class Table {
 public:
  Table() {
    for (const RedisCommand& rc : kRedisCommands) add(rc);
    // WAITAOF (Redis 7.2) and anything special that an older generator run lacks.
    for (const Special& sp : kSpecial) {
      if (find(sp.name) == nullptr) add({sp.name, -1, 0, 0, 0, 0, 0});
    }
    for (const Special& sp : kSpecial) {
      CommandInfo& info = commands_[find(sp.name)->index];
      info.id = sp.id;
      info.blocking = sp.blocking;
    }
  }

  const CommandInfo* find(std::string_view name) const {
    if (slots_.empty()) return nullptr;
    const std::size_t mask = slots_.size() - 1;
    for (std::size_t i = hash_lower(name) & mask;; i = (i + 1) & mask) {
      const int slot = slots_[i];
      if (slot < 0) return nullptr;
      const CommandInfo& info = commands_[static_cast<std::size_t>(slot)];
      if (iequals(info.name, name)) return &info;
    }
  }

  std::span<const CommandInfo> all() const { return commands_; }

 private:
  void add(const RedisCommand& rc) {
    CommandInfo info;
    info.name = rc.name;
    info.arity = rc.arity;
    info.flags = rc.flags;
    info.first_key = rc.first_key;
    info.last_key = rc.last_key;
    info.key_step = rc.key_step;
    info.categories = rc.categories;
    info.index = static_cast<std::uint16_t>(commands_.size());
    commands_.push_back(info);
    rebuild();
  }

  void rebuild() {
    std::size_t size = 16;
    while (size < commands_.size() * 4) size *= 2;  // load factor <= 1/4: short probes
    slots_.assign(size, -1);
    for (const CommandInfo& info : commands_) {
      std::size_t i = hash_lower(info.name) & (size - 1);
      while (slots_[i] >= 0) i = (i + 1) & (size - 1);
      slots_[i] = info.index;
    }
  }

  std::vector<CommandInfo> commands_;
  std::vector<int> slots_;
};

const Table& table() {
  static const Table t;
  return t;
}

// Parses a Redis timeout argument the way Redis does for its unit: seconds may be fractional.
std::optional<std::int64_t> parse_timeout_ms(std::string_view arg, Unit unit) {
  if (arg.empty()) return std::nullopt;
  if (unit == Unit::Milliseconds) {
    std::int64_t ms = 0;
    auto [end, ec] = std::from_chars(arg.data(), arg.data() + arg.size(), ms);
    if (ec != std::errc() || end != arg.data() + arg.size() || ms < 0) return std::nullopt;
    return ms;
  }
  std::string text(arg);  // control path: only for blocking commands
  char* end = nullptr;
  double seconds = std::strtod(text.c_str(), &end);
  if (end != text.c_str() + text.size() || !std::isfinite(seconds) || seconds < 0) {
    return std::nullopt;
  }
  return static_cast<std::int64_t>(std::ceil(seconds * 1000.0));
}

}  // namespace

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (lower(a[i]) != lower(b[i])) return false;
  }
  return true;
}

std::span<const CommandInfo> all_commands() {
  return table().all();
}

const CommandInfo* lookup_command(std::string_view name) {
  return table().find(name);
}

std::optional<std::int64_t> blocking_timeout_ms(const CommandInfo& info,
                                                std::span<const std::string_view> args) {
  if (info.id == CommandId::Blocking) {
    int index = info.blocking.timeout_arg;
    if (index < 0) index += static_cast<int>(args.size());
    if (index <= 0 || index >= static_cast<int>(args.size())) return std::nullopt;
    return parse_timeout_ms(args[static_cast<std::size_t>(index)], info.blocking.unit);
  }
  if (info.id == CommandId::XRead || info.id == CommandId::XReadGroup) {
    // XREAD [COUNT n] [BLOCK ms] STREAMS ...; options end at STREAMS.
    for (std::size_t i = 1; i + 1 < args.size(); ++i) {
      if (iequals(args[i], "streams")) break;
      if (iequals(args[i], "block")) return parse_timeout_ms(args[i + 1], Unit::Milliseconds);
    }
  }
  return std::nullopt;
}

}  // namespace respguard::resp
