#include "respguard/policy/rules.hpp"

#include <utility>

namespace respguard::policy {
namespace {

// Redis 7's stringmatchlen_impl (src/util.c), transcribed with the same control flow so that a
// pattern means here exactly what it means to KEYS, SCAN MATCH and PSUBSCRIBE, quirks included:
//   - "*" does not match the empty string (the loop runs only while both sides have bytes; KEYS *
//     lists an empty key only through its own match-all shortcut);
//   - an unterminated class "[abc" acts as if closed at the end of the pattern; a lone "[" at the
//     end matches nothing and "[^" at the end matches any one byte;
//   - inside a class, "\x" is a literal x and "a-z" a range whose ends may come in either order
//     ("[z-a]" is "[a-z]"); "-" right before the closing "]" makes "]" a range end ("[a-]" is
//     the range "]".."a");
//   - a trailing "\" matches a literal backslash;
//   - more than 1000 nested "*" never match (Redis's guard against abusive patterns).
// Redis reads the NUL terminator of its sds strings when it looks one byte past the pattern;
// `at()` returns '\0' there so the same comparisons come out the same.
class GlobMatcher {
 public:
  GlobMatcher(std::string_view pattern, std::string_view text)
      : pattern_(pattern),
        pattern_end_(pattern.data() + pattern.size()),
        text_(text),
        text_end_(text.data() + text.size()) {}

  bool run() { return match(pattern_.data(), text_.data(), 0); }

 private:
  char at(const char* p) const { return p < pattern_end_ ? *p : '\0'; }

  bool match(const char* p, const char* s, int nesting) {
    if (nesting > 1000) return false;
    while (p < pattern_end_ && s < text_end_) {
      switch (*p) {
        case '*':
          while (p < pattern_end_ && at(p + 1) == '*') ++p;
          if (pattern_end_ - p == 1) return true;
          while (s < text_end_) {
            if (match(p + 1, s, nesting + 1)) return true;
            if (skip_longer_matches_) return false;
            ++s;
          }
          // The rest of the pattern matches nowhere in the rest of the text: an earlier '*'
          // taking more of the text cannot help either (Redis's skipLongerMatches).
          skip_longer_matches_ = true;
          return false;
        case '?':
          ++s;
          break;
        case '[': {
          ++p;
          const bool negate = at(p) == '^';
          if (negate) ++p;
          bool matched = false;
          while (true) {
            if (at(p) == '\\' && pattern_end_ - p >= 2) {
              ++p;
              if (*p == *s) matched = true;
            } else if (at(p) == ']') {
              break;
            } else if (p >= pattern_end_) {
              --p;  // unterminated class: stop at its last byte
              break;
            } else if (pattern_end_ - p >= 3 && p[1] == '-') {
              // Redis compares plain chars, signed on x86: bytes >= 0x80 sort below ASCII.
              int lo = static_cast<signed char>(p[0]);
              int hi = static_cast<signed char>(p[2]);
              if (lo > hi) std::swap(lo, hi);
              const int c = static_cast<signed char>(*s);
              p += 2;
              if (c >= lo && c <= hi) matched = true;
            } else if (*p == *s) {
              matched = true;
            }
            ++p;
          }
          if (negate) matched = !matched;
          if (!matched) return false;
          ++s;
          break;
        }
        case '\\':
          if (pattern_end_ - p >= 2) ++p;
          [[fallthrough]];
        default:
          if (*p != *s) return false;
          ++s;
          break;
      }
      ++p;
      if (s == text_end_) {
        while (at(p) == '*') ++p;
        break;
      }
    }
    return p == pattern_end_ && s == text_end_;
  }

  std::string_view pattern_;
  const char* pattern_end_;
  std::string_view text_;
  const char* text_end_;
  bool skip_longer_matches_ = false;
};

bool is_glob_special(char c) {
  return c == '*' || c == '?' || c == '[' || c == '\\';
}

}  // namespace

bool glob_match(std::string_view pattern, std::string_view text) {
  return GlobMatcher(pattern, text).run();
}

KeyPattern::KeyPattern(std::string glob) : glob_(std::move(glob)) {
  std::size_t literal = 0;
  while (literal < glob_.size() && !is_glob_special(glob_[literal])) ++literal;
  prefix_ = glob_.substr(0, literal);
  // "*" is every key, the empty key included (as KEYS * lists it), which the general matcher
  // would refuse: Redis's own match-all shortcut behaves the same way.
  match_all_ = glob_ == "*";
  prefix_only_ = !match_all_ && literal + 1 == glob_.size() && glob_[literal] == '*';
}

bool KeyPattern::matches(std::string_view key) const {
  if (match_all_) return true;
  if (prefix_only_) return key.starts_with(prefix_);
  return glob_match(glob_, key);
}

RuleSet::RuleSet(const std::vector<config::RuleConfig>& rules) {
  rules_.reserve(rules.size());
  for (std::size_t i = 0; i < rules.size(); ++i) {
    rules_.push_back(Rule{i, rules[i], KeyPattern(rules[i].match)});
  }
}

const Rule* RuleSet::match(int db, std::string_view key) const {
  for (const Rule& rule : rules_) {
    if (rule.config.db && *rule.config.db != db) continue;
    if (rule.pattern.matches(key)) return &rule;
  }
  return nullptr;
}

}  // namespace respguard::policy
