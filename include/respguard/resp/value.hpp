// A decoded reply tree, for the control plane (handshakes, health checks, tests). The data
// path never builds one: it forwards reply bytes found by ReplyParser.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "respguard/resp/parser.hpp"

namespace respguard::resp {

struct Value {
  enum class Type : std::uint8_t {
    Simple,     // +
    Error,      // - and RESP3 blob error !
    Integer,    // :
    Bulk,       // $
    Array,      // *
    Null,       // $-1, *-1, _
    Double,     // ,
    Boolean,    // #
    Verbatim,   // =  (str holds the payload without the "txt:" prefix; format holds "txt")
    BigNumber,  // (
    Map,        // %  (elements: k1, v1, k2, v2, ...)
    Set,        // ~
    Push,       // >
  };
  Type type = Type::Null;
  std::string str;                // Simple, Error, Bulk, Verbatim, BigNumber, Double (as sent)
  std::string format;             // Verbatim only
  std::int64_t integer = 0;       // Integer; Boolean (0/1)
  double dbl = 0;                 // Double
  std::vector<Value> elements;    // Array, Map, Set, Push
  std::vector<Value> attributes;  // RESP3 attribute map preceding this value (k1, v1, ...)

  bool is_error() const { return type == Type::Error; }
  bool is_null() const { return type == Type::Null; }
  // For a Map: the value for a key (Simple or Bulk key), or nullptr.
  const Value* find(std::string_view key) const;
};

// Decodes one complete reply from the front of `input`.
ParseResult parse_value(std::string_view input, Value& out, const Limits& limits = {});

// Renders a value as redis-cli would (for logs and test failure messages).
std::string to_string(const Value& v);

}  // namespace respguard::resp
