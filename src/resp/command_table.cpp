#include "respguard/resp/command_table.hpp"

#include <array>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <string>

namespace respguard::resp {
namespace {

using Unit = BlockingSpec::Unit;

constexpr CommandInfo kCommands[] = {
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

constexpr std::size_t kMaxNameLen = 16;

char lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

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

const CommandInfo* lookup_command(std::string_view name) {
  if (name.size() > kMaxNameLen || name.size() < 4) return nullptr;
  char buf[kMaxNameLen];
  for (std::size_t i = 0; i < name.size(); ++i) buf[i] = lower(name[i]);
  std::string_view key(buf, name.size());
  // A linear scan over ~30 short names, rejected mostly by length and first byte, beats a
  // hash map here and needs no initialisation.
  for (const CommandInfo& info : kCommands) {
    if (info.name.size() == key.size() && info.name[0] == key[0] && info.name == key) {
      return &info;
    }
  }
  return nullptr;
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
