// What a write changes, from the command table's key positions plus the commands whose keys
// those positions do not describe. The rule throughout: when the arguments cannot be read the
// way Redis reads them, report the whole db (Redis will most likely reject the command, but
// forgetting too much only costs a few upstream requests, forgetting too little serves stale
// answers).
//
// Covered by the plain key positions, no special case needed: SET, DEL a b c, HSET, INCR,
// EXPIRE, RENAME/RENAMENX (both keys), MSET/MSETNX (every other argument), LMOVE, SMOVE, ...
#include "respguard/policy/write_effects.hpp"

#include <algorithm>
#include <charconv>
#include <limits>
#include <optional>
#include <utility>
#include <vector>

namespace respguard::policy {
namespace {

using resp::iequals;
using Kind = WriteEffect::Kind;

enum class Special : std::uint8_t {
  None,
  FlushDb,
  FlushAll,
  SwapDb,
  Move,
  Copy,
  Script,       // EVAL, EVALSHA, FCALL: numkeys at 2, keys from 3
  Sort,         // STORE destination
  DestAt1,      // SINTERSTORE dst .., ZUNIONSTORE dst .., PFMERGE dst src ..: sources are only read
  DestAt2,      // BITOP op dst src ..
  GeoRadius,    // GEORADIUS key lon lat radius unit [.. STORE|STOREDIST dst]
  GeoByMember,  // GEORADIUSBYMEMBER key member radius unit [.. STORE|STOREDIST dst]
  MPop,         // LMPOP/ZMPOP numkeys key ..
  BlockingMPop,  // BLMPOP/BZMPOP timeout numkeys key ..
  XReadGroup,    // .. STREAMS key .. id ..: the consumer group state of each stream
  XGroup,        // XGROUP CREATE|SETID|DESTROY|CREATECONSUMER|DELCONSUMER key ..
};

constexpr std::pair<std::string_view, Special> kSpecialCommands[] = {
    {"flushdb", Special::FlushDb},
    {"flushall", Special::FlushAll},
    {"swapdb", Special::SwapDb},
    {"move", Special::Move},
    {"copy", Special::Copy},
    // Not the _RO forms: Redis refuses any write from them, so they change nothing.
    {"eval", Special::Script},
    {"evalsha", Special::Script},
    {"fcall", Special::Script},
    {"sort", Special::Sort},
    {"sinterstore", Special::DestAt1},
    {"sunionstore", Special::DestAt1},
    {"sdiffstore", Special::DestAt1},
    {"zunionstore", Special::DestAt1},
    {"zinterstore", Special::DestAt1},
    {"zdiffstore", Special::DestAt1},
    {"zrangestore", Special::DestAt1},
    {"geosearchstore", Special::DestAt1},
    {"pfmerge", Special::DestAt1},
    {"bitop", Special::DestAt2},
    {"georadius", Special::GeoRadius},
    {"georadiusbymember", Special::GeoByMember},
    {"lmpop", Special::MPop},
    {"zmpop", Special::MPop},
    {"blmpop", Special::BlockingMPop},
    {"bzmpop", Special::BlockingMPop},
    {"xreadgroup", Special::XReadGroup},
    // A container command (no flags of its own in the table), but CREATE .. MKSTREAM creates
    // the key.
    {"xgroup", Special::XGroup},
};

// The special case of each command by its dense index, built once: one array read per command
// instead of comparing names.
Special special_of(const resp::CommandInfo& info) {
  static const std::vector<Special> by_index = [] {
    std::vector<Special> table(resp::all_commands().size(), Special::None);
    for (const auto& [name, special] : kSpecialCommands) {
      if (const resp::CommandInfo* found = resp::lookup_command(name)) {
        table[found->index] = special;
      }
    }
    return table;
  }();
  const auto all = resp::all_commands();
  if (info.index < all.size() && all[info.index].name == info.name) return by_index[info.index];
  // A CommandInfo that does not come from the table (built by hand): go by its name.
  for (const auto& [name, special] : kSpecialCommands) {
    if (iequals(name, info.name)) return special;
  }
  return Special::None;
}

// Redis's string2ll: optional '-', no '+', no spaces, no leading zeros.
std::optional<long long> parse_integer(std::string_view text) {
  std::string_view digits = text.starts_with('-') ? text.substr(1) : text;
  if (digits.empty() || (digits[0] == '0' && text.size() > 1)) return std::nullopt;
  long long value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size()) return std::nullopt;
  return value;
}

std::optional<int> parse_db(std::string_view text) {
  std::optional<long long> value = parse_integer(text);
  if (!value || *value < 0 || *value > std::numeric_limits<int>::max()) return std::nullopt;
  return static_cast<int>(*value);
}

class Collector {
 public:
  Collector(std::span<const std::string_view> args, int db, std::vector<WriteEffect>& out)
      : args_(args), db_(db), out_(out) {}

  void key(std::string_view k) { key_in(db_, k); }
  void key_in(int db, std::string_view k) { out_.push_back({Kind::Key, db, k}); }
  void db(int db) { out_.push_back({Kind::Db, db, {}}); }
  void whole_db() { db(db_); }
  void all() { out_.push_back({Kind::All, 0, {}}); }

  // Keys at the table's positions: first, last (negative counts from the end), step.
  void key_range(int first, int last, int step) {
    const int argc = static_cast<int>(args_.size());
    if (last < 0) last += argc;
    last = std::min(last, argc - 1);
    for (int i = first; i >= 1 && i <= last; i += std::max(step, 1)) key(args_[i]);
  }

  // `numkeys` at args[at], then that many keys. False when Redis would refuse the count.
  bool counted_keys(std::size_t at, long long min_keys) {
    if (at >= args_.size()) return false;
    std::optional<long long> n = parse_integer(args_[at]);
    const long long available = static_cast<long long>(args_.size() - at - 1);
    if (!n || *n < min_keys || *n > available) return false;
    for (long long i = 0; i < *n; ++i) key(args_[at + 1 + static_cast<std::size_t>(i)]);
    return true;
  }

  bool copy() {  // COPY src dst [DB n] [REPLACE]
    int target = db_;
    for (std::size_t j = 3; j < args_.size(); ++j) {
      if (iequals(args_[j], "replace")) continue;
      if (iequals(args_[j], "db") && j + 1 < args_.size()) {
        std::optional<int> n = parse_db(args_[++j]);
        if (!n) return false;
        target = *n;
        continue;
      }
      return false;
    }
    key_in(target, args_[2]);
    return true;
  }

  bool sort() {  // SORT key [BY p] [LIMIT o c] [GET p ..] [ASC|DESC] [ALPHA] [STORE dst]
    for (std::size_t j = 2; j < args_.size(); ++j) {
      const std::size_t left = args_.size() - j - 1;
      const std::string_view opt = args_[j];
      if (iequals(opt, "asc") || iequals(opt, "desc") || iequals(opt, "alpha")) continue;
      if (iequals(opt, "limit") && left >= 2) {
        j += 2;
      } else if ((iequals(opt, "by") || iequals(opt, "get")) && left >= 1) {
        ++j;
      } else if (iequals(opt, "store") && left >= 1) {
        key(args_[++j]);  // Redis keeps the last STORE; each one is reported
      } else {
        return false;
      }
    }
    return true;
  }

  bool georadius(std::size_t options_from) {
    for (std::size_t j = options_from; j < args_.size(); ++j) {
      const std::string_view opt = args_[j];
      const bool has_next = j + 1 < args_.size();
      if (iequals(opt, "withdist") || iequals(opt, "withhash") || iequals(opt, "withcoord") ||
          iequals(opt, "any") || iequals(opt, "asc") || iequals(opt, "desc")) {
        continue;
      }
      if (iequals(opt, "count") && has_next) {
        ++j;
      } else if ((iequals(opt, "store") || iequals(opt, "storedist")) && has_next) {
        key(args_[++j]);
      } else {
        return false;
      }
    }
    return true;  // without STORE it only reads
  }

  bool xreadgroup() {  // XREADGROUP GROUP g c [COUNT n] [BLOCK ms] [NOACK] STREAMS k .. id ..
    for (std::size_t i = 1; i < args_.size(); ++i) {
      const std::size_t more = args_.size() - i - 1;
      const std::string_view opt = args_[i];
      if ((iequals(opt, "block") || iequals(opt, "count")) && more >= 1) {
        ++i;
      } else if (iequals(opt, "group") && more >= 2) {
        i += 2;
      } else if (iequals(opt, "noack")) {
        continue;
      } else if (iequals(opt, "streams") && more >= 1) {
        if (more % 2 != 0) return false;
        for (std::size_t k = 0; k < more / 2; ++k) key(args_[i + 1 + k]);
        return true;
      } else {
        return false;
      }
    }
    return false;  // no STREAMS: Redis refuses it
  }

 private:
  std::span<const std::string_view> args_;
  int db_;
  std::vector<WriteEffect>& out_;
};

// True when handled (effects appended, possibly none); false: report the whole db.
bool collect_special(Special special, std::span<const std::string_view> args, Collector& c) {
  switch (special) {
    case Special::None:
      return false;
    case Special::FlushDb:
      c.whole_db();
      return true;
    case Special::FlushAll:
      c.all();
      return true;
    case Special::SwapDb: {
      std::optional<int> a = args.size() == 3 ? parse_db(args[1]) : std::nullopt;
      std::optional<int> b = args.size() == 3 ? parse_db(args[2]) : std::nullopt;
      if (!a || !b) {
        c.all();  // which two dbs is unknown
      } else {
        c.db(*a);
        c.db(*b);
      }
      return true;
    }
    case Special::Move: {
      if (args.size() < 2) return false;
      c.key(args[1]);
      if (std::optional<int> target = args.size() == 3 ? parse_db(args[2]) : std::nullopt) {
        c.key_in(*target, args[1]);
      }
      return true;  // no valid target: Redis refuses the MOVE, the source key is reported anyway
    }
    case Special::Copy:
      return args.size() >= 3 && c.copy();
    case Special::Script:
      // Only the declared keys: a script that writes keys it did not declare (legal on a
      // single Redis, refused by Cluster) escapes this; the coherence channel still sees it.
      return c.counted_keys(2, 0);
    case Special::Sort:
      return args.size() >= 2 && c.sort();
    case Special::DestAt1:
      if (args.size() < 2) return false;
      c.key(args[1]);
      return true;
    case Special::DestAt2:
      if (args.size() < 3) return false;
      c.key(args[2]);
      return true;
    case Special::GeoRadius:
      return args.size() >= 6 && c.georadius(6);
    case Special::GeoByMember:
      return args.size() >= 5 && c.georadius(5);
    case Special::MPop:
      return c.counted_keys(1, 1);
    case Special::BlockingMPop:
      return c.counted_keys(2, 1);
    case Special::XReadGroup:
      return c.xreadgroup();
    case Special::XGroup:
      if (args.size() >= 3 && !iequals(args[1], "help")) c.key(args[2]);
      return true;
  }
  return false;
}

}  // namespace

void collect_write_effects(const resp::CommandInfo& info, std::span<const std::string_view> args,
                           int db, std::vector<WriteEffect>& out) {
  out.clear();
  Collector c(args, db, out);
  const Special special = special_of(info);
  if (special != Special::None) {
    // Scripts and XGROUP are not flagged as writes, so they are looked at before the flags.
    if (!collect_special(special, args, c)) {
      out.clear();
      c.whole_db();
    }
    return;
  }
  if (!(info.flags & resp::kWrite)) return;
  // A write whose keys the table cannot place (movable keys such as MIGRATE .. KEYS, or no key
  // positions at all): the whole db, never nothing.
  if ((info.flags & resp::kMovablekeys) || info.first_key <= 0) {
    c.whole_db();
    return;
  }
  c.key_range(info.first_key, info.last_key, info.key_step);
}

}  // namespace respguard::policy
