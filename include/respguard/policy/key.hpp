// How the policy tables name a key: "db\0key" (one string for a (db, key) pair) and its hash,
// computed once per request and handed to every table the request visits.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace respguard::policy {

// "db\0key", built into a caller's reusable buffer.
inline std::string_view db_key(int db, std::string_view key, std::string& buf) {
  char digits[12];
  char* end = digits + sizeof digits;
  char* p = end;
  unsigned v = static_cast<unsigned>(db < 0 ? -db : db);
  do {
    *--p = static_cast<char>('0' + v % 10);
    v /= 10;
  } while (v != 0);
  if (db < 0) *--p = '-';
  buf.assign(p, end);
  buf.push_back('\0');
  buf.append(key);
  return buf;
}

// A db_key with its hash. Converts implicitly from the bare string (hashing it), so callers
// that do not keep the hash need not care; the request path hashes once and passes this.
struct HashedKey {
  std::string_view dk;
  std::size_t hash;
  HashedKey(std::string_view d) : dk(d), hash(std::hash<std::string_view>{}(d)) {}  // NOLINT
  HashedKey(const std::string& d) : HashedKey(std::string_view(d)) {}               // NOLINT
  HashedKey(const char* d) : HashedKey(std::string_view(d)) {}                      // NOLINT
  HashedKey(std::string_view d, std::size_t h) : dk(d), hash(h) {}
};

// For maps keyed by db_key strings: lookups by string_view or by HashedKey (no rehash, no
// allocation). Stored keys are hashed the same way, so both agree.
struct KeyHash {
  using is_transparent = void;
  std::size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  std::size_t operator()(const std::string& s) const { return (*this)(std::string_view(s)); }
  std::size_t operator()(const HashedKey& k) const { return k.hash; }
};

struct KeyEq {
  using is_transparent = void;
  bool operator()(std::string_view a, std::string_view b) const { return a == b; }
  bool operator()(const std::string& a, const std::string& b) const { return a == b; }
  bool operator()(const HashedKey& a, std::string_view b) const { return a.dk == b; }
  bool operator()(std::string_view a, const HashedKey& b) const { return a == b.dk; }
};

// The (db, key) parts of a db_key.
inline int db_of(std::string_view dk) {
  int db = 0;
  bool negative = !dk.empty() && dk[0] == '-';
  for (std::size_t i = negative ? 1 : 0; i < dk.size() && dk[i] != '\0'; ++i) {
    db = db * 10 + (dk[i] - '0');
  }
  return negative ? -db : db;
}
inline std::string_view key_of(std::string_view dk) {
  return dk.substr(dk.find('\0') + 1);
}

}  // namespace respguard::policy
