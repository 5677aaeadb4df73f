#include "respguard/policy/write_effects.hpp"

#include <gtest/gtest.h>

#include <ostream>
#include <string>
#include <vector>

namespace respguard::policy {

// Readable failures: "Key(3, k1)", "Db(2)", "All".
void PrintTo(const WriteEffect& e, std::ostream* os) {
  switch (e.kind) {
    case WriteEffect::Kind::Key:
      *os << "Key(" << e.db << ", " << e.key << ")";
      return;
    case WriteEffect::Kind::Db:
      *os << "Db(" << e.db << ")";
      return;
    case WriteEffect::Kind::All:
      *os << "All";
      return;
  }
}

namespace {

WriteEffect key(std::string_view k, int db = 3) {
  return {WriteEffect::Kind::Key, db, k};
}
WriteEffect whole_db(int db = 3) {
  return {WriteEffect::Kind::Db, db, {}};
}
WriteEffect all() {
  return {WriteEffect::Kind::All, 0, {}};
}

// The effects of `args` run in db 3 (so that "the current db" is visibly not db 0).
std::vector<WriteEffect> effects(std::vector<std::string_view> args) {
  const resp::CommandInfo* info = resp::lookup_command(args.at(0));
  EXPECT_NE(info, nullptr) << args[0];
  if (info == nullptr) return {};
  std::vector<WriteEffect> out = {all()};  // stale content: must be cleared
  collect_write_effects(*info, args, 3, out);
  return out;
}

using Effects = std::vector<WriteEffect>;

TEST(WriteEffects, ReadsHaveNone) {
  EXPECT_EQ(effects({"GET", "k"}), Effects{});
  EXPECT_EQ(effects({"MGET", "a", "b"}), Effects{});
  EXPECT_EQ(effects({"EXISTS", "a", "b"}), Effects{});
  EXPECT_EQ(effects({"HGETALL", "h"}), Effects{});
  EXPECT_EQ(effects({"SORT_RO", "l", "BY", "x"}), Effects{});
  EXPECT_EQ(effects({"PING"}), Effects{});
  EXPECT_EQ(effects({"SCAN", "0"}), Effects{});
  EXPECT_EQ(effects({"GEORADIUS_RO", "g", "0", "0", "1", "km"}), Effects{});
}

TEST(WriteEffects, ReadOnlyScriptsHaveNone) {
  // Redis refuses any write from EVAL_RO / EVALSHA_RO / FCALL_RO.
  EXPECT_EQ(effects({"EVAL_RO", "return 1", "1", "k"}), Effects{});
  EXPECT_EQ(effects({"EVALSHA_RO", "abc", "1", "k"}), Effects{});
  EXPECT_EQ(effects({"FCALL_RO", "f", "1", "k"}), Effects{});
}

TEST(WriteEffects, OrdinaryWritesByKeyPositions) {
  EXPECT_EQ(effects({"SET", "k", "v"}), Effects{key("k")});
  EXPECT_EQ(effects({"set", "k", "v", "EX", "10"}), Effects{key("k")});
  EXPECT_EQ(effects({"DEL", "a", "b", "c"}), (Effects{key("a"), key("b"), key("c")}));
  EXPECT_EQ(effects({"UNLINK", "a"}), Effects{key("a")});
  EXPECT_EQ(effects({"HSET", "h", "f", "v", "g", "w"}), Effects{key("h")});
  EXPECT_EQ(effects({"INCR", "n"}), Effects{key("n")});
  EXPECT_EQ(effects({"EXPIRE", "k", "10"}), Effects{key("k")});
  EXPECT_EQ(effects({"GETEX", "k", "PERSIST"}), Effects{key("k")});
  EXPECT_EQ(effects({"GETDEL", "k"}), Effects{key("k")});
  EXPECT_EQ(effects({"LPUSH", "l", "x", "y"}), Effects{key("l")});
  EXPECT_EQ(effects({"LMOVE", "src", "dst", "LEFT", "RIGHT"}), (Effects{key("src"), key("dst")}));
  EXPECT_EQ(effects({"SMOVE", "src", "dst", "m"}), (Effects{key("src"), key("dst")}));
  EXPECT_EQ(effects({"RESTORE", "k", "0", "payload"}), Effects{key("k")});
}

TEST(WriteEffects, MsetReportsEveryKeyAndNoValue) {
  EXPECT_EQ(effects({"MSET", "k1", "v1", "k2", "v2"}), (Effects{key("k1"), key("k2")}));
  EXPECT_EQ(effects({"MSETNX", "k1", "v1", "k2", "v2", "k3", "v3"}),
            (Effects{key("k1"), key("k2"), key("k3")}));
}

TEST(WriteEffects, BlockingPopsExcludeTheTimeout) {
  EXPECT_EQ(effects({"BLPOP", "a", "b", "0"}), (Effects{key("a"), key("b")}));
  EXPECT_EQ(effects({"BRPOPLPUSH", "a", "b", "5"}), (Effects{key("a"), key("b")}));
}

TEST(WriteEffects, RenameReportsBothKeys) {
  EXPECT_EQ(effects({"RENAME", "old", "new"}), (Effects{key("old"), key("new")}));
  EXPECT_EQ(effects({"RENAMENX", "old", "new"}), (Effects{key("old"), key("new")}));
}

TEST(WriteEffects, FlushAndSwapdb) {
  EXPECT_EQ(effects({"FLUSHDB"}), Effects{whole_db()});
  EXPECT_EQ(effects({"FLUSHDB", "ASYNC"}), Effects{whole_db()});
  EXPECT_EQ(effects({"FLUSHALL"}), Effects{all()});
  EXPECT_EQ(effects({"FLUSHALL", "SYNC"}), Effects{all()});
  EXPECT_EQ(effects({"SWAPDB", "0", "5"}), (Effects{whole_db(0), whole_db(5)}));
  // Which dbs is unknown when the indexes do not parse: everything.
  EXPECT_EQ(effects({"SWAPDB", "0", "x"}), Effects{all()});
  EXPECT_EQ(effects({"SWAPDB", "0"}), Effects{all()});
}

TEST(WriteEffects, MoveReportsTheKeyInBothDbs) {
  EXPECT_EQ(effects({"MOVE", "k", "7"}), (Effects{key("k", 3), key("k", 7)}));
  EXPECT_EQ(effects({"MOVE", "k", "seven"}), Effects{key("k", 3)});
}

TEST(WriteEffects, CopyReportsTheDestinationInItsDb) {
  EXPECT_EQ(effects({"COPY", "src", "dst"}), Effects{key("dst", 3)});
  EXPECT_EQ(effects({"COPY", "src", "dst", "DB", "9"}), Effects{key("dst", 9)});
  EXPECT_EQ(effects({"COPY", "src", "dst", "replace", "db", "0"}), Effects{key("dst", 0)});
  EXPECT_EQ(effects({"COPY", "src", "dst", "DB", "x"}), Effects{whole_db()});
  EXPECT_EQ(effects({"COPY", "src", "dst", "BOGUS"}), Effects{whole_db()});
}

TEST(WriteEffects, ScriptsReportTheirDeclaredKeys) {
  EXPECT_EQ(effects({"EVAL", "return 1", "2", "a", "b", "arg"}), (Effects{key("a"), key("b")}));
  EXPECT_EQ(effects({"EVALSHA", "abc", "1", "a", "arg"}), Effects{key("a")});
  EXPECT_EQ(effects({"FCALL", "f", "1", "a"}), Effects{key("a")});
  EXPECT_EQ(effects({"EVAL", "return 1", "0", "arg"}), Effects{});
  // numkeys Redis would refuse: the whole db.
  EXPECT_EQ(effects({"EVAL", "return 1", "3", "a"}), Effects{whole_db()});
  EXPECT_EQ(effects({"EVAL", "return 1", "-1"}), Effects{whole_db()});
  EXPECT_EQ(effects({"EVAL", "return 1", "x"}), Effects{whole_db()});
  EXPECT_EQ(effects({"EVAL", "return 1"}), Effects{whole_db()});
}

TEST(WriteEffects, SortOnlyWritesItsStoreDestination) {
  EXPECT_EQ(effects({"SORT", "l"}), Effects{});
  EXPECT_EQ(effects({"SORT", "l", "BY", "w_*", "LIMIT", "0", "10", "GET", "#", "DESC", "ALPHA",
                     "STORE", "dst"}),
            Effects{key("dst")});
  // A pattern that reads "store" is a BY/GET argument, not the option.
  EXPECT_EQ(effects({"SORT", "l", "GET", "store", "ASC"}), Effects{});
  EXPECT_EQ(effects({"SORT", "l", "store", "d1", "STORE", "d2"}), (Effects{key("d1"), key("d2")}));
  EXPECT_EQ(effects({"SORT", "l", "STORE"}), Effects{whole_db()}) << "syntax error";
  EXPECT_EQ(effects({"SORT", "l", "LIMIT", "0"}), Effects{whole_db()}) << "syntax error";
}

TEST(WriteEffects, StoreCommandsReportOnlyTheDestination) {
  EXPECT_EQ(effects({"SINTERSTORE", "dst", "a", "b"}), Effects{key("dst")});
  EXPECT_EQ(effects({"SUNIONSTORE", "dst", "a"}), Effects{key("dst")});
  EXPECT_EQ(effects({"SDIFFSTORE", "dst", "a", "b"}), Effects{key("dst")});
  EXPECT_EQ(effects({"ZUNIONSTORE", "dst", "2", "a", "b", "WEIGHTS", "1", "2"}),
            Effects{key("dst")});
  EXPECT_EQ(effects({"ZINTERSTORE", "dst", "2", "a", "b"}), Effects{key("dst")});
  EXPECT_EQ(effects({"ZDIFFSTORE", "dst", "2", "a", "b"}), Effects{key("dst")});
  EXPECT_EQ(effects({"ZRANGESTORE", "dst", "src", "0", "-1"}), Effects{key("dst")});
  EXPECT_EQ(effects({"GEOSEARCHSTORE", "dst", "src", "FROMMEMBER", "m", "BYRADIUS", "1", "km"}),
            Effects{key("dst")});
  EXPECT_EQ(effects({"PFMERGE", "dst", "a", "b"}), Effects{key("dst")});
  EXPECT_EQ(effects({"BITOP", "AND", "dst", "a", "b"}), Effects{key("dst")});
}

TEST(WriteEffects, GeoradiusWritesOnlyWithStore) {
  EXPECT_EQ(effects({"GEORADIUS", "g", "15", "37", "200", "km", "WITHDIST"}), Effects{});
  EXPECT_EQ(
      effects({"GEORADIUS", "g", "15", "37", "200", "km", "COUNT", "5", "ASC", "STORE", "dst"}),
      Effects{key("dst")});
  EXPECT_EQ(effects({"GEORADIUSBYMEMBER", "g", "m", "200", "km", "STOREDIST", "dst"}),
            Effects{key("dst")});
  EXPECT_EQ(effects({"GEORADIUS", "g", "15", "37", "200", "km", "FOO"}), Effects{whole_db()});
}

TEST(WriteEffects, MultiPopsReportTheirCountedKeys) {
  EXPECT_EQ(effects({"LMPOP", "2", "a", "b", "LEFT"}), (Effects{key("a"), key("b")}));
  EXPECT_EQ(effects({"ZMPOP", "1", "z", "MIN", "COUNT", "3"}), Effects{key("z")});
  EXPECT_EQ(effects({"BLMPOP", "0", "2", "a", "b", "RIGHT"}), (Effects{key("a"), key("b")}));
  EXPECT_EQ(effects({"BZMPOP", "1.5", "1", "z", "MAX"}), Effects{key("z")});
  EXPECT_EQ(effects({"LMPOP", "0", "a", "LEFT"}), Effects{whole_db()}) << "numkeys must be > 0";
  EXPECT_EQ(effects({"LMPOP", "5", "a"}), Effects{whole_db()});
}

TEST(WriteEffects, XreadgroupReportsItsStreams) {
  EXPECT_EQ(effects({"XREADGROUP", "GROUP", "g", "c", "COUNT", "10", "BLOCK", "0", "NOACK",
                     "STREAMS", "s1", "s2", ">", ">"}),
            (Effects{key("s1"), key("s2")}));
  EXPECT_EQ(effects({"XREADGROUP", "GROUP", "g", "c", "STREAMS", "s1", "s2", ">"}),
            Effects{whole_db()})
      << "odd number of streams and ids";
}

TEST(WriteEffects, XgroupReportsItsKey) {
  EXPECT_EQ(effects({"XGROUP", "CREATE", "s", "g", "$", "MKSTREAM"}), Effects{key("s")});
  EXPECT_EQ(effects({"XGROUP", "DESTROY", "s", "g"}), Effects{key("s")});
  EXPECT_EQ(effects({"XGROUP", "HELP"}), Effects{});
}

TEST(WriteEffects, OtherMovableKeyWritesAreTheWholeDb) {
  EXPECT_EQ(effects({"MIGRATE", "host", "6379", "", "0", "1000", "KEYS", "a", "b"}),
            Effects{whole_db()});
  EXPECT_EQ(effects({"MIGRATE", "host", "6379", "k", "0", "1000"}), Effects{whole_db()});
}

TEST(WriteEffects, KeyPositionsBeyondTheArgumentsAreIgnored) {
  EXPECT_EQ(effects({"SET"}), Effects{});
  EXPECT_EQ(effects({"RENAME", "a"}), Effects{key("a")});
}

TEST(WriteEffects, ReusesTheCallersVector) {
  const resp::CommandInfo* info = resp::lookup_command("DEL");
  std::vector<WriteEffect> out;
  out.reserve(8);
  const auto* storage = out.data();
  std::vector<std::string_view> args = {"DEL", "a", "b", "c"};
  collect_write_effects(*info, args, 0, out);
  EXPECT_EQ(out.size(), 3u);
  EXPECT_EQ(out.data(), storage) << "no reallocation when the capacity suffices";
  EXPECT_EQ(out[0].key.data(), args[1].data()) << "keys are views into the arguments";
}

TEST(WriteEffects, HandMadeCommandInfoIsRecognisedByName) {
  resp::CommandInfo info;
  info.name = "flushall";
  info.flags = resp::kWrite;
  std::vector<WriteEffect> out;
  std::vector<std::string_view> args = {"FLUSHALL"};
  collect_write_effects(info, args, 0, out);
  EXPECT_EQ(out, Effects{all()});
}

TEST(WriteEffects, EveryWriteInTheTableReportsSomething) {
  // "Never nothing" for a write that changes a key: with plausible arguments, every command
  // flagged as a write reports at least one effect unless it is a read in disguise.
  for (const resp::CommandInfo& info : resp::all_commands()) {
    if (!(info.flags & resp::kWrite)) continue;
    std::vector<std::string_view> args = {info.name, "k1", "k2", "k3", "k4", "k5", "k6"};
    std::vector<WriteEffect> out;
    collect_write_effects(info, args, 0, out);
    const bool may_be_read =
        info.name == "sort" || info.name == "georadius" || info.name == "georadiusbymember";
    if (!may_be_read) {
      EXPECT_FALSE(out.empty()) << info.name;
    }
  }
}

}  // namespace
}  // namespace respguard::policy
