// RequestParser and ReplyParser: incremental, offset-based RESP scanners.
//
// Request parsing follows Redis 7.0 networking.c (processMultibulkBuffer,
// processInlineBuffer, sdssplitargs) check for check, so a client sees the same error text
// for the same bytes as it would talking to Redis directly. Including its leniency: the byte
// after a header's '\r' and the 2 bytes after a bulk payload are skipped unchecked.
//
// One deliberate difference: Redis finds header line ends with strchr(), which stops at a NUL
// byte, so "*1\0\r\n" leaves a Redis connection waiting (then failing at 64 KB). We use
// memchr() and reject such a line at once with the error its value deserves.
#include "respguard/resp/parser.hpp"

#include <algorithm>
#include <array>
#include <climits>
#include <cstring>

namespace respguard::resp {
namespace {

constexpr std::size_t npos = std::string_view::npos;

constexpr std::string_view kTooBigMbulkCount = "Protocol error: too big mbulk count string";
constexpr std::string_view kInvalidMultibulkLength = "Protocol error: invalid multibulk length";
constexpr std::string_view kTooBigBulkCount = "Protocol error: too big bulk count string";
constexpr std::string_view kInvalidBulkLength = "Protocol error: invalid bulk length";
constexpr std::string_view kUnauthMultibulkLength =
    "Protocol error: unauthenticated multibulk length";
constexpr std::string_view kUnauthBulkLength = "Protocol error: unauthenticated bulk length";
constexpr std::string_view kTooBigInline = "Protocol error: too big inline request";
constexpr std::string_view kUnbalancedQuotes = "Protocol error: unbalanced quotes in request";
constexpr std::string_view kReplyTooDeep = "Protocol error: reply nesting too deep";
constexpr std::string_view kStreamedReply =
    "Protocol error: streamed RESP3 replies ('?' length) are not supported";
constexpr std::string_view kBlobNotTerminated = "Protocol error: bulk payload not followed by CRLF";

// Error texts that name one byte, precomputed for all 256 values at compile time so that
// ParseResult::error can point to static storage without a per-parser buffer.
struct ByteMessages {
  std::array<std::array<char, 64>, 256> text{};
  std::array<std::uint8_t, 256> size{};

  std::string_view operator[](unsigned char c) const { return {text[c].data(), size[c]}; }
};

constexpr void append(std::array<char, 64>& buf, std::uint8_t& size, std::string_view s) {
  for (char c : s) buf[size++] = c;
}

// Redis formats "expected '$', got '%c'" with addReplyErrorFormat: vsnprintf + sdscat stops
// at a NUL byte, and sdsmapchars turns '\r' and '\n' into spaces.
constexpr ByteMessages make_expected_dollar_messages() {
  ByteMessages m;
  for (int c = 0; c < 256; ++c) {
    auto& buf = m.text[c];
    std::uint8_t size = 0;
    append(buf, size, "Protocol error: expected '$', got '");
    if (c != 0) {
      buf[size++] = (c == '\r' || c == '\n') ? ' ' : static_cast<char>(c);
      buf[size++] = '\'';
    }
    m.size[c] = size;
  }
  return m;
}

// Not a Redis text (Redis never parses replies); non-printable bytes are shown as \xHH.
constexpr ByteMessages make_reply_type_messages() {
  ByteMessages m;
  constexpr char kHex[] = "0123456789abcdef";
  for (int c = 0; c < 256; ++c) {
    auto& buf = m.text[c];
    std::uint8_t size = 0;
    append(buf, size, "Protocol error: invalid reply type byte '");
    if (c >= 0x20 && c < 0x7f) {
      buf[size++] = static_cast<char>(c);
    } else {
      append(buf, size, "\\x");
      buf[size++] = kHex[c >> 4];
      buf[size++] = kHex[c & 15];
    }
    buf[size++] = '\'';
    m.size[c] = size;
  }
  return m;
}

constexpr std::array<bool, 256> make_reply_type_bytes() {
  std::array<bool, 256> valid{};
  for (unsigned char c : std::string_view("+-:_#,($=!*%~>|")) valid[c] = true;
  return valid;
}

// The RESP2 and RESP3 type bytes a reply (or an element of one) may start with.
constexpr std::array<bool, 256> kReplyTypeBytes = make_reply_type_bytes();

constexpr ByteMessages kExpectedDollar = make_expected_dollar_messages();
constexpr ByteMessages kInvalidReplyType = make_reply_type_messages();

// Redis's string2ll (util.c), exactly: an optional '-', no '+', no leading zeros (except "0"
// itself), no spaces, fewer than 21 characters, no overflow. Which length lines Redis rejects
// depends on these details ("*01", "*-0", "$ 3" are all errors).
bool parse_redis_integer(const char* p, std::size_t len, std::int64_t& value) {
  if (len == 0 || len >= 21) return false;
  if (len == 1 && p[0] == '0') {
    value = 0;
    return true;
  }
  std::size_t i = 0;
  const bool negative = p[0] == '-';
  if (negative && ++i == len) return false;
  if (p[i] < '1' || p[i] > '9') return false;
  std::uint64_t v = static_cast<std::uint64_t>(p[i++] - '0');
  for (; i < len; ++i) {
    const unsigned digit = static_cast<unsigned char>(p[i]) - unsigned{'0'};
    if (digit > 9) return false;
    if (v > UINT64_MAX / 10) return false;
    v *= 10;
    if (v > UINT64_MAX - digit) return false;
    v += digit;
  }
  if (negative) {
    if (v > static_cast<std::uint64_t>(INT64_MAX) + 1) return false;
    value = static_cast<std::int64_t>(0 - v);  // modular conversion (C++20), covers INT64_MIN
  } else {
    if (v > static_cast<std::uint64_t>(INT64_MAX)) return false;
    value = static_cast<std::int64_t>(v);
  }
  return true;
}

ParseResult failure(std::string_view error) {
  return {ParseStatus::Error, 0, error};
}
ParseResult complete(std::size_t consumed) {
  return {ParseStatus::Complete, consumed, {}};
}

// isspace() in the C locale, which is what sdssplitargs sees (Redis sets only LC_COLLATE).
bool is_c_space(unsigned char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
}

bool is_hex_digit(unsigned char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

int hex_value(unsigned char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return c - 'A' + 10;
}

// The byte a backslash escape in double quotes stands for ("\\q" is just 'q').
char unescape(unsigned char c) {
  switch (c) {
    case 'n':
      return '\n';
    case 'r':
      return '\r';
    case 't':
      return '\t';
    case 'b':
      return '\b';
    case 'a':
      return '\a';
    default:
      return static_cast<char>(c);
  }
}

}  // namespace

// ---------------------------------------------------------------------------------------
// RequestParser

void RequestParser::reset() {
  pos_ = 0;
  expected_args_ = -1;
  bulk_len_ = -1;
  scan_pos_ = 0;
  arg_spans_.clear();  // keeps capacity
  hint_ = 0;
  // inline_scratch_ is left alone: the last Command's views may still point into it.
}

std::size_t RequestParser::find_byte(std::string_view input, std::size_t from, char byte) {
  from = std::max(from, scan_pos_);
  if (from < input.size()) {
    const void* hit = std::memchr(input.data() + from, byte, input.size() - from);
    if (hit != nullptr)
      return static_cast<std::size_t>(static_cast<const char*>(hit) - input.data());
  }
  // No terminator yet: remember how far we looked. Lines only start after a terminator, so
  // scan_pos_ never skips into a later line.
  scan_pos_ = std::max(scan_pos_, input.size());
  return npos;
}

ParseResult RequestParser::need_more(std::size_t hint) {
  hint_ = hint;
  return {};
}

ParseResult RequestParser::parse(std::string_view input, Command& out) {
  if (input.empty()) return need_more(1);
  // Redis picks the request type from the first byte only.
  if (input[0] != '*') return parse_inline(input, out);

  if (expected_args_ < 0) {
    // Redis looks for '\r' and then trusts the byte after it to be '\n' without checking.
    const std::size_t cr = find_byte(input, 0, '\r');
    if (cr == npos) {
      if (input.size() > limits_.max_inline_len) return failure(kTooBigMbulkCount);
      return need_more(input.size() + 1);
    }
    if (cr + 1 >= input.size()) return need_more(cr + 2);
    std::int64_t count = 0;
    if (!parse_redis_integer(input.data() + 1, cr - 1, count) || count > INT_MAX ||
        (count > 0 && static_cast<std::uint64_t>(count) > limits_.max_multibulk_len)) {
      return failure(kInvalidMultibulkLength);
    }
    if (limits_.unauthenticated && count > static_cast<std::int64_t>(kUnauthenticatedMaxArgs)) {
      return failure(kUnauthMultibulkLength);
    }
    pos_ = cr + 2;
    if (count <= 0) {
      // "*0" and "*-1": an empty command, no reply (Redis resets the client silently).
      const std::size_t consumed = pos_;
      out.args.clear();
      out.inline_form = false;
      out.raw = input.substr(0, consumed);
      reset();
      return complete(consumed);
    }
    expected_args_ = count;
  }

  while (arg_spans_.size() < static_cast<std::uint64_t>(expected_args_)) {
    if (bulk_len_ < 0) {
      const std::size_t cr = find_byte(input, pos_, '\r');
      if (cr == npos) {
        // Checked before the '$' (as Redis does): a huge header line fails on its size.
        if (input.size() > pos_ && input.size() - pos_ > limits_.max_inline_len) {
          return failure(kTooBigBulkCount);
        }
        return need_more(std::max(input.size(), pos_) + 1);
      }
      if (cr + 1 >= input.size()) return need_more(cr + 2);
      if (input[pos_] != '$')
        return failure(kExpectedDollar[static_cast<unsigned char>(input[pos_])]);
      std::int64_t len = 0;
      if (!parse_redis_integer(input.data() + pos_ + 1, cr - pos_ - 1, len) || len < 0 ||
          static_cast<std::uint64_t>(len) > limits_.max_bulk_len) {
        return failure(kInvalidBulkLength);
      }
      if (limits_.unauthenticated && len > static_cast<std::int64_t>(kUnauthenticatedMaxBulk)) {
        return failure(kUnauthBulkLength);
      }
      pos_ = cr + 2;
      bulk_len_ = len;
    }
    // The payload and the 2 bytes after it. Like Redis 7 (qb_pos += bulklen+2) those 2 bytes
    // are skipped without checking that they are CRLF.
    const std::size_t bulk_end = pos_ + static_cast<std::size_t>(bulk_len_) + 2;
    if (input.size() < bulk_end) return need_more(bulk_end);
    arg_spans_.emplace_back(pos_, static_cast<std::size_t>(bulk_len_));
    pos_ = bulk_end;
    bulk_len_ = -1;
  }

  const std::size_t consumed = pos_;
  out.args.clear();
  for (const auto& [offset, length] : arg_spans_)
    out.args.emplace_back(input.data() + offset, length);
  out.inline_form = false;
  out.raw = input.substr(0, consumed);
  reset();
  return complete(consumed);
}

ParseResult RequestParser::parse_inline(std::string_view input, Command& out) {
  const std::size_t newline = find_byte(input, 0, '\n');
  if (newline == npos) {
    if (input.size() > limits_.max_inline_len) return failure(kTooBigInline);
    return need_more(input.size() + 1);
  }
  std::size_t line_end = newline;
  if (line_end > 0 && input[line_end - 1] == '\r') --line_end;
  std::string_view line = input.substr(0, line_end);
  // Redis splits a C string: everything from the first NUL on is ignored.
  if (const void* nul = std::memchr(line.data(), '\0', line.size()); nul != nullptr) {
    line = line.substr(0, static_cast<std::size_t>(static_cast<const char*>(nul) - line.data()));
  }
  if (!split_inline(line, out)) return failure(kUnbalancedQuotes);

  const std::size_t consumed = newline + 1;
  out.inline_form = true;
  out.raw = input.substr(0, consumed);
  reset();
  return complete(consumed);
}

// sdssplitargs (sds.c) over `line`, which holds no NUL, so "end of line" plays the part of
// the C string terminator. Unescaped bytes never outnumber the line's bytes, so after the
// reserve below inline_scratch_ does not reallocate and the views stay valid.
bool RequestParser::split_inline(std::string_view line, Command& out) {
  out.args.clear();
  inline_scratch_.clear();
  inline_scratch_.reserve(line.size());
  const std::size_t n = line.size();
  // The byte at i, or 0 past the end (the C string terminator in Redis's code).
  auto at = [&](std::size_t i) -> unsigned char {
    return i < n ? static_cast<unsigned char>(line[i]) : 0;
  };

  std::size_t i = 0;
  while (true) {
    while (i < n && is_c_space(at(i))) ++i;
    if (i >= n) return true;

    const std::size_t start = inline_scratch_.size();
    bool in_double_quotes = false;
    bool in_single_quotes = false;
    bool done = false;
    while (!done) {
      const unsigned char c = at(i);
      if (in_double_quotes) {
        if (c == '\\' && at(i + 1) == 'x' && is_hex_digit(at(i + 2)) && is_hex_digit(at(i + 3))) {
          inline_scratch_ += static_cast<char>(hex_value(at(i + 2)) * 16 + hex_value(at(i + 3)));
          i += 3;
        } else if (c == '\\' && at(i + 1) != 0) {
          ++i;
          inline_scratch_ += unescape(at(i));
        } else if (c == '"') {
          // A closing quote must be followed by a space or the end of the line.
          if (at(i + 1) != 0 && !is_c_space(at(i + 1))) return false;
          done = true;
        } else if (c == 0) {
          return false;  // unterminated quotes
        } else {
          inline_scratch_ += static_cast<char>(c);
        }
      } else if (in_single_quotes) {
        if (c == '\\' && at(i + 1) == '\'') {
          ++i;
          inline_scratch_ += '\'';
        } else if (c == '\'') {
          if (at(i + 1) != 0 && !is_c_space(at(i + 1))) return false;
          done = true;
        } else if (c == 0) {
          return false;
        } else {
          inline_scratch_ += static_cast<char>(c);
        }
      } else {
        switch (c) {
          // Only these end an unquoted token ('\v' and '\f' do not, though they are skipped
          // as blanks between tokens): Redis's exact behaviour.
          case ' ':
          case '\n':
          case '\r':
          case '\t':
          case 0:
            done = true;
            break;
          case '"':
            in_double_quotes = true;
            break;
          case '\'':
            in_single_quotes = true;
            break;
          default:
            inline_scratch_ += static_cast<char>(c);
            break;
        }
      }
      if (i < n) ++i;
    }
    out.args.emplace_back(inline_scratch_.data() + start, inline_scratch_.size() - start);
  }
}

// ---------------------------------------------------------------------------------------
// ReplyParser

void ReplyParser::reset() {
  pos_ = 0;
  scan_pos_ = 0;
  blob_end_ = 0;
  pending_.clear();  // keeps capacity
  info_ = {};
}

std::size_t ReplyParser::find_line_end(std::string_view input) {
  std::size_t from = std::max(pos_ + 1, scan_pos_);  // pos_ holds the type byte
  while (from < input.size()) {
    const void* hit = std::memchr(input.data() + from, '\r', input.size() - from);
    if (hit == nullptr) break;
    const auto cr = static_cast<std::size_t>(static_cast<const char*>(hit) - input.data());
    if (cr + 1 >= input.size()) {
      scan_pos_ = cr;  // the '\n' may come with the next read
      return npos;
    }
    if (input[cr + 1] == '\n') {
      scan_pos_ = 0;
      return cr;
    }
    from = cr + 1;  // a lone '\r' inside a line (hiredis skips it the same way)
  }
  scan_pos_ = std::max(from, input.size());
  return npos;
}

bool ReplyParser::finish_element() {
  while (!pending_.empty()) {
    Level& level = pending_.back();
    if (--level.remaining > 0) return false;
    // The aggregate is complete and is itself one element of its parent, unless it was an
    // attribute, which annotates the element that follows it instead.
    const bool attribute = level.attribute;
    pending_.pop_back();
    if (attribute) return false;
  }
  return true;
}

ParseResult ReplyParser::parse(std::string_view input, ReplyInfo& info) {
  bool reply_complete = false;
  while (!reply_complete) {
    if (blob_end_ != 0) {
      if (input.size() < blob_end_) return {};
      if (input[blob_end_ - 2] != '\r' || input[blob_end_ - 1] != '\n') {
        return failure(kBlobNotTerminated);
      }
      pos_ = blob_end_;
      blob_end_ = 0;
      reply_complete = finish_element();
      continue;
    }
    if (pos_ >= input.size()) return {};

    // The type byte is checked at once: no need to wait for the line of a garbage reply.
    const char type = input[pos_];
    if (!kReplyTypeBytes[static_cast<unsigned char>(type)]) {
      return failure(kInvalidReplyType[static_cast<unsigned char>(type)]);
    }
    const std::size_t cr = find_line_end(input);
    if (cr == npos) return {};
    const char* body = input.data() + pos_ + 1;
    const std::size_t body_len = cr - pos_ - 1;
    const bool top_level = pending_.empty();
    pos_ = cr + 2;

    switch (type) {
      case '$':
      case '=':
      case '!': {
        if (body_len == 1 && body[0] == '?') return failure(kStreamedReply);
        std::int64_t len = 0;
        if (!parse_redis_integer(body, body_len, len)) return failure(kInvalidBulkLength);
        if (len == -1 && type == '$') {  // RESP2 null bulk
          if (top_level) info_ = ReplyInfo{type, true};
          reply_complete = finish_element();
          break;
        }
        if (len < 0 || static_cast<std::uint64_t>(len) > limits_.max_bulk_len) {
          return failure(kInvalidBulkLength);
        }
        if (top_level) info_ = ReplyInfo{type, false};
        blob_end_ = pos_ + static_cast<std::size_t>(len) + 2;
        break;
      }
      case '*':
      case '%':
      case '~':
      case '>':
      case '|': {
        if (body_len == 1 && body[0] == '?') return failure(kStreamedReply);
        std::int64_t count = 0;
        if (!parse_redis_integer(body, body_len, count)) return failure(kInvalidMultibulkLength);
        if (count == -1 && type == '*') {  // RESP2 null array
          if (top_level) info_ = ReplyInfo{type, true};
          reply_complete = finish_element();
          break;
        }
        if (count < 0 || static_cast<std::uint64_t>(count) > limits_.max_multibulk_len ||
            count > INT64_MAX / 2) {
          return failure(kInvalidMultibulkLength);
        }
        const bool attribute = type == '|';
        // Maps and attributes hold key and value elements.
        const std::int64_t elements = (type == '%' || attribute) ? count * 2 : count;
        if (top_level && !attribute) info_ = ReplyInfo{type, false};
        if (elements == 0) {
          // An empty attribute still annotates the next value; an empty aggregate is done.
          if (!attribute) reply_complete = finish_element();
          break;
        }
        if (pending_.size() >= limits_.max_reply_depth) return failure(kReplyTooDeep);
        pending_.push_back(Level{elements, attribute});
        break;
      }
      default:
        // One-line types. Their contents are not validated here (parse_value does that):
        // this parser only frames replies for forwarding.
        if (top_level) info_ = ReplyInfo{type, type == '_'};
        reply_complete = finish_element();
        break;
    }
  }
  info = info_;
  const std::size_t consumed = pos_;
  reset();
  return complete(consumed);
}

}  // namespace respguard::resp
