// Reply trees for the control plane. ReplyParser finds and validates the frame first; the
// decoder below then walks bytes known to hold exactly one well-framed reply.
#include "respguard/resp/value.hpp"

#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstring>

namespace respguard::resp {
namespace {

constexpr std::string_view kInvalidInteger = "Protocol error: invalid integer reply";
constexpr std::string_view kInvalidDouble = "Protocol error: invalid double reply";
constexpr std::string_view kInvalidBoolean = "Protocol error: invalid boolean reply";
constexpr std::string_view kInvalidNull = "Protocol error: invalid null reply";
constexpr std::string_view kInvalidBigNumber = "Protocol error: invalid big number reply";
constexpr std::string_view kInvalidVerbatim = "Protocol error: invalid verbatim string reply";
constexpr std::string_view kMalformed = "Protocol error: malformed reply";

bool parse_int64(std::string_view text, std::int64_t& value) {
  if (text.empty()) return false;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  return ec == std::errc{} && end == text.data() + text.size();
}

// RESP3 doubles: "1.5", "-2e10", "inf", "-inf", "nan" (from_chars handles all of these but
// not a leading '+', which the RESP3 spec allows).
bool parse_double(std::string_view text, double& value) {
  if (!text.empty() && text[0] == '+') text.remove_prefix(1);
  if (text.empty() || text[0] == '+') return false;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  return ec == std::errc{} && end == text.data() + text.size();
}

bool is_big_number(std::string_view text) {
  if (!text.empty() && (text[0] == '-' || text[0] == '+')) text.remove_prefix(1);
  if (text.empty()) return false;
  for (char c : text) {
    if (c < '0' || c > '9') return false;
  }
  return true;
}

// Walks one reply that ReplyParser has already framed: type bytes, lengths, CRLFs and depth
// are known to be valid, so only the contents of scalars are checked here.
class Decoder {
 public:
  explicit Decoder(std::string_view input) : input_(input) {}

  std::string_view error() const { return error_; }

  bool decode(Value& v) {
    // Attributes (possibly several) annotate the value that follows them.
    std::vector<Value> attributes;
    while (pos_ < input_.size() && input_[pos_] == '|') {
      std::int64_t pairs = 0;
      if (!parse_int64(read_line(), pairs) || pairs < 0) return fail(kMalformed);
      for (std::int64_t i = 0; i < pairs * 2; ++i) {
        if (!decode(attributes.emplace_back())) return false;
      }
    }
    if (!decode_value(v)) return false;
    v.attributes = std::move(attributes);
    return true;
  }

 private:
  bool fail(std::string_view error) {
    error_ = error;
    return false;
  }

  // The line at pos_ without its type byte and CRLF; pos_ moves past it.
  std::string_view read_line() {
    const std::size_t start = pos_ + 1;
    const std::size_t cr = input_.find("\r\n", start);
    if (cr == std::string_view::npos) {
      pos_ = input_.size();
      return {};
    }
    pos_ = cr + 2;
    return input_.substr(start, cr - start);
  }

  // A blob payload of `len` bytes at pos_ (ReplyParser checked it and its CRLF).
  bool read_payload(std::int64_t len, std::string& out) {
    if (len < 0 || input_.size() - pos_ < static_cast<std::uint64_t>(len) + 2) {
      return fail(kMalformed);
    }
    out.assign(input_.data() + pos_, static_cast<std::size_t>(len));
    pos_ += static_cast<std::size_t>(len) + 2;
    return true;
  }

  bool decode_elements(Value& v, std::int64_t count) {
    // count is bounded by the input size: ReplyParser saw every element in it.
    v.elements.reserve(static_cast<std::size_t>(count));
    for (std::int64_t i = 0; i < count; ++i) {
      if (!decode(v.elements.emplace_back())) return false;
    }
    return true;
  }

  bool decode_value(Value& v) {
    if (pos_ >= input_.size()) return fail(kMalformed);
    v = Value{};
    const char type = input_[pos_];
    const std::string_view body = read_line();
    std::int64_t n = 0;
    switch (type) {
      case '+':
        v.type = Value::Type::Simple;
        v.str.assign(body);
        return true;
      case '-':
        v.type = Value::Type::Error;
        v.str.assign(body);
        return true;
      case ':':
        v.type = Value::Type::Integer;
        return parse_int64(body, v.integer) || fail(kInvalidInteger);
      case '_':
        v.type = Value::Type::Null;
        return body.empty() || fail(kInvalidNull);
      case '#':
        v.type = Value::Type::Boolean;
        if (body != "t" && body != "f") return fail(kInvalidBoolean);
        v.integer = body == "t" ? 1 : 0;
        return true;
      case ',':
        v.type = Value::Type::Double;
        v.str.assign(body);
        return parse_double(body, v.dbl) || fail(kInvalidDouble);
      case '(':
        v.type = Value::Type::BigNumber;
        v.str.assign(body);
        return is_big_number(body) || fail(kInvalidBigNumber);
      case '$':
        if (!parse_int64(body, n)) return fail(kMalformed);
        if (n == -1) {
          v.type = Value::Type::Null;
          return true;
        }
        v.type = Value::Type::Bulk;
        return read_payload(n, v.str);
      case '!':
        if (!parse_int64(body, n)) return fail(kMalformed);
        v.type = Value::Type::Error;
        return read_payload(n, v.str);
      case '=':
        // "=<len>\r\n<3-byte format>:<text>\r\n"
        if (!parse_int64(body, n)) return fail(kMalformed);
        v.type = Value::Type::Verbatim;
        if (!read_payload(n, v.str)) return false;
        if (v.str.size() < 4 || v.str[3] != ':') return fail(kInvalidVerbatim);
        v.format = v.str.substr(0, 3);
        v.str.erase(0, 4);
        return true;
      case '*':
        if (!parse_int64(body, n)) return fail(kMalformed);
        if (n == -1) {
          v.type = Value::Type::Null;
          return true;
        }
        v.type = Value::Type::Array;
        return decode_elements(v, n);
      case '~':
        if (!parse_int64(body, n)) return fail(kMalformed);
        v.type = Value::Type::Set;
        return decode_elements(v, n);
      case '>':
        if (!parse_int64(body, n)) return fail(kMalformed);
        v.type = Value::Type::Push;
        return decode_elements(v, n);
      case '%':
        if (!parse_int64(body, n)) return fail(kMalformed);
        v.type = Value::Type::Map;
        return decode_elements(v, n * 2);
      default:
        return fail(kMalformed);
    }
  }

  std::string_view input_;
  std::size_t pos_ = 0;
  std::string_view error_;
};

// Double-quoted with C escapes, like redis-cli (sdscatrepr).
void append_quoted(std::string& out, std::string_view s) {
  out += '"';
  for (unsigned char c : s) {
    switch (c) {
      case '\\':
        out += "\\\\";
        break;
      case '"':
        out += "\\\"";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      case '\a':
        out += "\\a";
        break;
      case '\b':
        out += "\\b";
        break;
      default:
        if (c >= 0x20 && c < 0x7f) {
          out += static_cast<char>(c);
        } else {
          char buf[5];
          std::snprintf(buf, sizeof buf, "\\x%02x", c);
          out += buf;
        }
    }
  }
  out += '"';
}

// redis-cli's TTY format (cliFormatReplyTTY): one line per scalar, aggregates as numbered
// entries indented under their parent. `indent` is the prefix of continuation lines.
void render(std::string& out, const Value& v, const std::string& indent);

void render_aggregate(std::string& out, const Value& v, const std::string& indent) {
  const bool map = v.type == Value::Type::Map;
  const std::size_t entries = map ? v.elements.size() / 2 : v.elements.size();
  if (entries == 0) {
    switch (v.type) {
      case Value::Type::Map:
        out += "(empty hash)\n";
        break;
      case Value::Type::Set:
        out += "(empty set)\n";
        break;
      case Value::Type::Push:
        out += "(empty push)\n";
        break;
      default:
        out += "(empty array)\n";
        break;
    }
    return;
  }
  const std::size_t width = std::to_string(entries).size();
  const std::string child_indent = indent + std::string(width + 2, ' ');
  const char separator = map ? '#' : v.type == Value::Type::Set ? '~' : ')';
  for (std::size_t i = 0; i < entries; ++i) {
    // The first entry continues the parent's line, which already holds its number.
    if (i > 0) out += indent;
    const std::string number = std::to_string(i + 1);
    out.append(width - number.size(), ' ');
    out += number;
    out += separator;
    out += ' ';
    if (map) {
      render(out, v.elements[2 * i], child_indent);
      out.pop_back();  // key and value share a line
      out += " => ";
      render(out, v.elements[2 * i + 1], child_indent);
    } else {
      render(out, v.elements[i], child_indent);
    }
  }
}

void render(std::string& out, const Value& v, const std::string& indent) {
  if (!v.attributes.empty()) {
    Value attributes;
    attributes.type = Value::Type::Map;
    attributes.elements = v.attributes;
    out += "(attributes) ";
    render_aggregate(out, attributes, indent + std::string(13, ' '));
    out += indent;
  }
  switch (v.type) {
    case Value::Type::Simple:
      out += v.str;
      break;
    case Value::Type::Error:
      out += "(error) " + v.str;
      break;
    case Value::Type::Integer:
      out += "(integer) " + std::to_string(v.integer);
      break;
    case Value::Type::Bulk:
      append_quoted(out, v.str);
      break;
    case Value::Type::Null:
      out += "(nil)";
      break;
    case Value::Type::Double:
      out += "(double) " + v.str;
      break;
    case Value::Type::Boolean:
      out += v.integer != 0 ? "(true)" : "(false)";
      break;
    case Value::Type::Verbatim:
      out += v.str;
      break;
    case Value::Type::BigNumber:
      out += "(big number) " + v.str;
      break;
    case Value::Type::Array:
    case Value::Type::Map:
    case Value::Type::Set:
    case Value::Type::Push:
      render_aggregate(out, v, indent);
      return;
  }
  out += '\n';
}

bool key_matches(const Value& key, std::string_view wanted) {
  return (key.type == Value::Type::Simple || key.type == Value::Type::Bulk) && key.str == wanted;
}

}  // namespace

// Also accepts an Array of alternating keys and values: RESP2 sends maps that way (HELLO,
// CONFIG GET), and the control plane reads them with the same call.
const Value* Value::find(std::string_view key) const {
  if (type != Type::Map && type != Type::Array) return nullptr;
  for (std::size_t i = 0; i + 1 < elements.size(); i += 2) {
    if (key_matches(elements[i], key)) return &elements[i + 1];
  }
  return nullptr;
}

ParseResult parse_value(std::string_view input, Value& out, const Limits& limits) {
  ReplyParser framer(limits);
  ReplyInfo info;
  ParseResult framed = framer.parse(input, info);
  if (framed.status != ParseStatus::Complete) return framed;
  Decoder decoder(input.substr(0, framed.consumed));
  if (!decoder.decode(out)) return {ParseStatus::Error, 0, decoder.error()};
  return framed;
}

std::string to_string(const Value& v) {
  std::string out;
  render(out, v, "");
  if (!out.empty() && out.back() == '\n') out.pop_back();
  return out;
}

}  // namespace respguard::resp
