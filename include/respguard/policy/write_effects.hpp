// What a command may change: keys (in which db) or whole databases. Local state that mirrors
// Redis (negative cache, leases, coalesced reads, Bloom filters) forgets exactly that.
#pragma once

#include <span>
#include <string_view>
#include <vector>

#include "respguard/resp/command_table.hpp"

namespace respguard::policy {

struct WriteEffect {
  enum class Kind { Key, Db, All };
  Kind kind;
  int db;                // Key, Db
  std::string_view key;  // Key: a view into the command's arguments
  // Db and All carry an empty key, All db 0, so the default comparison is the natural one.
  bool operator==(const WriteEffect&) const = default;
};

// Appends the effects of one command run in `db` to `out` (cleared first). Non-write commands
// (by the command table's flags) have none. Handled beyond plain key specs: FLUSHDB (Db),
// FLUSHALL (All), SWAPDB a b (Db a, Db b), MOVE key db (the key in both dbs), COPY src dst
// [DB n] (dst in db n), RENAME/RENAMENX (both keys), EVAL/EVALSHA/FCALL (numkeys keys; their
// _RO forms are reads, Redis refuses writes from them), MSET/MSETNX (every key), SORT .. STORE
// dst, *STORE commands, PFMERGE and BITOP (destination only), GEORADIUS[BYMEMBER] .. STORE dst,
// LMPOP/ZMPOP/BLMPOP/BZMPOP (numkeys keys), XREADGROUP (the streams), XGROUP (its key), and any
// other movable-keys write: conservatively Db (the whole db), never nothing. Arguments that
// cannot be read as Redis reads them also give Db (SWAPDB: All).
//
// Commands queued in MULTI take effect at EXEC: the caller reports them then. Commands unknown
// to the table (modules) have no CommandInfo; the caller should treat them as Db.
void collect_write_effects(const resp::CommandInfo& info, std::span<const std::string_view> args,
                           int db, std::vector<WriteEffect>& out);

}  // namespace respguard::policy
