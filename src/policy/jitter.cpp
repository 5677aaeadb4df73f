// TTL jitter. The option parsing below mirrors Redis 7.0's parseExtendedStringArgumentsOrReply
// (SET, GETEX) and parseExtendedExpireArgumentsOrReply (EXPIRE, PEXPIRE) rule for rule, so a
// command is rewritten only when Redis would have accepted it as written; anything Redis rejects
// is forwarded untouched and Redis answers its own error.
//
// What is not touched, and why:
//   - MSET/MSETNX: no TTL option exists; giving every key a TTL would mean splitting the command
//     into SETs plus PEXPIREs, which is no longer atomic (MSETNX's all-or-nothing, and other
//     clients seeing keys without their TTL). We do not split commands.
//   - Other writes (HSET, LPUSH, SADD, INCR, APPEND, ...): a TTL belongs to the key, and for a
//     collection a write adds to an existing key whose TTL the application manages (setting one
//     on every HSET would keep pushing the expiry of a hash that should expire on schedule).
//     default_ttl is therefore for plain SETs, which replace the whole value anyway.
//   - EXAT/PXAT, EXPIREAT/PEXPIREAT, KEEPTTL, PERSIST: absolute or retained expirations say
//     "exactly then"; they are the application's schedule, not a TTL to spread.
#include "respguard/policy/jitter.hpp"

#include <charconv>
#include <cmath>
#include <cstdint>
#include <initializer_list>
#include <limits>

#include "respguard/resp/command_table.hpp"

namespace respguard::policy {
namespace {

// Above this (about 35,000 years) jitter means nothing, and staying below it keeps
// ttl * (1 + percent) + Redis's clock far from overflowing a long long.
constexpr long long kMaxJitterableMs = 1LL << 50;

// Redis compares option names as C strings (strcasecmp, or byte tests up to the NUL): an
// argument "NX\0junk" is NX to Redis, so it is to us.
bool is_option(std::string_view arg, std::string_view name) {
  const std::size_t nul = arg.find('\0');
  if (nul != std::string_view::npos) arg = arg.substr(0, nul);
  return resp::iequals(arg, name);
}

// A TTL Redis accepts as a relative expiration (string2ll, then > 0), in its own unit; nullopt
// when Redis would reject it or when it is too large to jitter. Redis's string2ll takes no '+',
// no spaces and no leading zeros, so neither do we.
std::optional<long long> parse_ttl(std::string_view text, long long unit_ms) {
  if (text.empty() || text[0] < '1' || text[0] > '9') return std::nullopt;
  long long value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size()) return std::nullopt;
  if (value > kMaxJitterableMs / unit_ms) return std::nullopt;
  return value * unit_ms;
}

struct Replacement {
  std::size_t index;
  std::string_view text;
};

void append_bulk(std::string& out, std::string_view arg) {
  char digits[24];
  auto [end, ec] = std::to_chars(digits, digits + sizeof digits, arg.size());
  out += '$';
  out.append(digits, end);
  out += "\r\n";
  out += arg;
  out += "\r\n";
}

// Writes `args` as a RESP array into `out`, with some arguments replaced and some appended.
void write_command(std::span<const std::string_view> args,
                   std::initializer_list<Replacement> replacements,
                   std::initializer_list<std::string_view> appended, std::string& out) {
  out.clear();
  std::size_t size = 16;
  for (std::string_view arg : args) size += arg.size() + 16;
  for (std::string_view arg : appended) size += arg.size() + 16;
  out.reserve(size);  // a reused buffer already has the room: no allocation

  char digits[24];
  auto [end, ec] = std::to_chars(digits, digits + sizeof digits, args.size() + appended.size());
  out += '*';
  out.append(digits, end);
  out += "\r\n";
  for (std::size_t i = 0; i < args.size(); ++i) {
    std::string_view arg = args[i];
    for (const Replacement& r : replacements) {
      if (r.index == i) arg = r.text;
    }
    append_bulk(out, arg);
  }
  for (std::string_view arg : appended) append_bulk(out, arg);
}

// The decimal text of a jittered TTL, in a caller's buffer.
std::string_view format_ms(long long ms, char (&buffer)[24]) {
  auto [end, ec] = std::to_chars(buffer, buffer + sizeof buffer, ms);
  return std::string_view(buffer, static_cast<std::size_t>(end - buffer));
}

// Redis's OBJ_* flags of SET and GETEX options.
enum : unsigned {
  kNx = 1u << 0,
  kXx = 1u << 1,
  kGet = 1u << 2,
  kKeepTtl = 1u << 3,
  kPersist = 1u << 4,
  kEx = 1u << 5,
  kPx = 1u << 6,
  kExAt = 1u << 7,
  kPxAt = 1u << 8,
};

struct StringOptions {
  unsigned flags = 0;
  int expirations = 0;        // EX/PX/EXAT/PXAT options seen
  std::size_t expire_at = 0;  // index of the last one's name; its value follows
  unsigned expire_kind = 0;   // kEx, kPx, kExAt or kPxAt
};

// Parses SET's options (from args[3]) or GETEX's (from args[2]) the way Redis 7.0 does. Note what
// Redis allows: an option may repeat (SET k v EX 10 EX 20 sets 20 s: the last one counts, and
// only the last one's value is even checked), and NX may be combined with GET. What it refuses:
// NX with XX, and any two different expiration options (KEEPTTL and PERSIST included).
std::optional<StringOptions> parse_string_options(std::span<const std::string_view> args,
                                                  bool is_set) {
  StringOptions o;
  constexpr unsigned kAnyExpire = kKeepTtl | kPersist | kEx | kPx | kExAt | kPxAt;
  for (std::size_t j = is_set ? 3 : 2; j < args.size(); ++j) {
    const std::string_view opt = args[j];
    const bool has_next = j + 1 < args.size();
    unsigned expire = 0;
    if (is_set && is_option(opt, "NX") && !(o.flags & kXx)) {
      o.flags |= kNx;
    } else if (is_set && is_option(opt, "XX") && !(o.flags & kNx)) {
      o.flags |= kXx;
    } else if (is_set && is_option(opt, "GET")) {
      o.flags |= kGet;
    } else if (is_set && is_option(opt, "KEEPTTL") && !(o.flags & (kAnyExpire & ~kKeepTtl))) {
      o.flags |= kKeepTtl;
    } else if (!is_set && is_option(opt, "PERSIST") && !(o.flags & (kAnyExpire & ~kPersist))) {
      o.flags |= kPersist;
    } else if (is_option(opt, "EX") && has_next && !(o.flags & (kAnyExpire & ~kEx))) {
      expire = kEx;
    } else if (is_option(opt, "PX") && has_next && !(o.flags & (kAnyExpire & ~kPx))) {
      expire = kPx;
    } else if (is_option(opt, "EXAT") && has_next && !(o.flags & (kAnyExpire & ~kExAt))) {
      expire = kExAt;
    } else if (is_option(opt, "PXAT") && has_next && !(o.flags & (kAnyExpire & ~kPxAt))) {
      expire = kPxAt;
    } else {
      return std::nullopt;  // Redis: syntax error
    }
    if (expire != 0) {
      o.flags |= expire;
      o.expire_kind = expire;
      o.expire_at = j;
      ++o.expirations;
      ++j;  // the value
    }
  }
  return o;
}

// SET key value [options] and GETEX key [options].
bool jitter_string_command(std::span<const std::string_view> args, bool is_set,
                           const config::JitterConfig& jitter, Random& random, std::string& out) {
  std::optional<StringOptions> options = parse_string_options(args, is_set);
  if (!options) return false;
  char buffer[24];
  if (options->expirations == 0) {
    // default_ttl: only a SET that sets no expiration and does not keep the old one.
    if (!is_set || !jitter.default_ttl || (options->flags & kKeepTtl)) return false;
    const long long ttl = jitter.default_ttl->count();
    if (ttl <= 0 || ttl > kMaxJitterableMs) return false;
    write_command(args, {}, {"PX", format_ms(jittered_ttl_ms(ttl, jitter, random), buffer)}, out);
    return true;
  }
  // Repeated expiration options are legal but odd (only the last counts, and only its value is
  // checked): rewriting one EX into PX would even make Redis reject the command (EX with PX).
  if (options->expirations > 1) return false;
  if (options->expire_kind != kEx && options->expire_kind != kPx) return false;  // EXAT, PXAT
  const std::size_t at = options->expire_at;
  std::optional<long long> ttl = parse_ttl(args[at + 1], options->expire_kind == kEx ? 1000 : 1);
  if (!ttl) return false;
  write_command(args,
                {{at, "PX"}, {at + 1, format_ms(jittered_ttl_ms(*ttl, jitter, random), buffer)}},
                {}, out);
  return true;
}

// SETEX key seconds value -> PSETEX key ms value; PSETEX key ms value.
bool jitter_setex(std::span<const std::string_view> args, bool seconds,
                  const config::JitterConfig& jitter, Random& random, std::string& out) {
  if (args.size() != 4) return false;  // Redis: wrong number of arguments
  std::optional<long long> ttl = parse_ttl(args[2], seconds ? 1000 : 1);
  if (!ttl) return false;
  char buffer[24];
  write_command(args,
                {{0, "PSETEX"}, {2, format_ms(jittered_ttl_ms(*ttl, jitter, random), buffer)}}, {},
                out);
  return true;
}

// EXPIRE key seconds [NX|XX|GT|LT] -> PEXPIRE key ms [..]; PEXPIRE key ms [..].
bool jitter_expire(std::span<const std::string_view> args, bool seconds,
                   const config::JitterConfig& jitter, Random& random, std::string& out) {
  if (args.size() < 3) return false;
  // Redis 7.0 checks the flags before the number: any other word is "Unsupported option",
  // repeats are fine, NX excludes XX/GT/LT, and GT excludes LT.
  bool nx = false, xx = false, gt = false, lt = false;
  for (std::size_t j = 3; j < args.size(); ++j) {
    if (is_option(args[j], "NX")) {
      nx = true;
    } else if (is_option(args[j], "XX")) {
      xx = true;
    } else if (is_option(args[j], "GT")) {
      gt = true;
    } else if (is_option(args[j], "LT")) {
      lt = true;
    } else {
      return false;
    }
  }
  if ((nx && (xx || gt || lt)) || (gt && lt)) return false;
  // A TTL <= 0 deletes the key at once: nothing to spread, so it is left alone.
  std::optional<long long> ttl = parse_ttl(args[2], seconds ? 1000 : 1);
  if (!ttl) return false;
  char buffer[24];
  write_command(args,
                {{0, "PEXPIRE"}, {2, format_ms(jittered_ttl_ms(*ttl, jitter, random), buffer)}}, {},
                out);
  return true;
}

}  // namespace

long long jittered_ttl_ms(long long ttl_ms, const config::JitterConfig& jitter, Random& random) {
  const double r = random.uniform();  // [0, 1)
  const double u = jitter.positive_only ? jitter.percent * r : jitter.percent * (2.0 * r - 1.0);
  const double value = std::round(static_cast<double>(ttl_ms) * (1.0 + u));
  if (value < 1.0) return 1;  // never 0 (or negative): that would delete the key at once
  // Only a caller passing an absurd TTL gets here; apply_ttl_jitter stops at kMaxJitterableMs.
  if (value >= static_cast<double>(std::numeric_limits<long long>::max())) {
    return std::numeric_limits<long long>::max();
  }
  return static_cast<long long>(value);
}

bool apply_ttl_jitter(std::span<const std::string_view> args, const config::JitterConfig& jitter,
                      Random& random, std::string& out) {
  if (args.empty()) return false;
  const std::string_view name = args[0];
  if (resp::iequals(name, "set")) {
    if (args.size() < 3) return false;
    return jitter_string_command(args, true, jitter, random, out);
  }
  if (resp::iequals(name, "getex")) {
    if (args.size() < 2) return false;
    return jitter_string_command(args, false, jitter, random, out);
  }
  if (resp::iequals(name, "setex")) return jitter_setex(args, true, jitter, random, out);
  if (resp::iequals(name, "psetex")) return jitter_setex(args, false, jitter, random, out);
  if (!jitter.expire_commands) return false;
  if (resp::iequals(name, "expire")) return jitter_expire(args, true, jitter, random, out);
  if (resp::iequals(name, "pexpire")) return jitter_expire(args, false, jitter, random, out);
  return false;
}

}  // namespace respguard::policy
