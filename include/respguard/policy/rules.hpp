// Key rules: an ordered list; the first rule whose pattern (and db, if given) matches a key
// decides which policies apply to it. Keys under no rule pass untouched.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "respguard/config/config.hpp"

namespace respguard::policy {

// A Redis-style glob (`*`, `?`, `[abc]`, `[^a-z]`, `\` escapes, as KEYS and PSUBSCRIBE use).
// Patterns that are a literal prefix followed by one `*` ("user:*") match by prefix compare.
class KeyPattern {
 public:
  explicit KeyPattern(std::string glob);
  bool matches(std::string_view key) const;
  // The literal part before the first special character ("user:" for "user:*").
  std::string_view literal_prefix() const { return prefix_; }
  const std::string& glob() const { return glob_; }

 private:
  std::string glob_;
  std::string prefix_;
  bool prefix_only_ = false;  // glob is prefix_ + "*"
  bool match_all_ = false;    // glob is "*"
};

// Redis's stringmatchlen semantics (case-sensitive).
bool glob_match(std::string_view pattern, std::string_view text);

struct Rule {
  std::size_t index;  // position in the config list (for logs and metrics)
  config::RuleConfig config;
  KeyPattern pattern;
};

class RuleSet {
 public:
  RuleSet() = default;
  explicit RuleSet(const std::vector<config::RuleConfig>& rules);

  // The first rule matching (db, key), or nullptr. With no rules: nullptr at once.
  const Rule* match(int db, std::string_view key) const;
  bool empty() const { return rules_.empty(); }
  const std::vector<Rule>& rules() const { return rules_; }

 private:
  std::vector<Rule> rules_;
};

}  // namespace respguard::policy
