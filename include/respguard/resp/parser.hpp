// Streaming RESP2/RESP3 parsers over a contiguous buffer. Sans-I/O: no sockets, no Asio.
//
// Both parsers are incremental: after NeedMore the caller appends bytes and calls parse()
// again with the buffer starting at the same message (the buffer may have moved; the parser
// keeps offsets, never pointers). Work already done is not repeated, so a 64 MB value or a
// million-element reply arriving in small reads costs O(bytes), not O(bytes^2).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace respguard::resp {

enum class ParseStatus : std::uint8_t { NeedMore, Complete, Error };

struct ParseResult {
  ParseStatus status = ParseStatus::NeedMore;
  // Complete: size of the message in bytes (the caller drops that many from its buffer).
  std::size_t consumed = 0;
  // Error: Redis's own text without the "-ERR " prefix, e.g. "Protocol error: invalid bulk
  // length". Points to static storage.
  std::string_view error;
};

// Redis 7 defaults (redis.conf / server.h).
struct Limits {
  std::size_t max_bulk_len = 512ull * 1024 * 1024;        // proto-max-bulk-len
  std::size_t max_multibulk_len = 1024ull * 1024 * 1024;  // Redis: INT_MAX elements
  std::size_t max_inline_len = 64 * 1024;                 // PROTO_INLINE_MAX_SIZE
  std::size_t max_reply_depth = 128;  // nesting of aggregate replies (hiredis: 7, we allow more)
  // A client that has not authenticated yet: as Redis 7 (processMultibulkBuffer), a request
  // with more than 10 arguments or an argument over 16384 bytes is a protocol error
  // ("unauthenticated multibulk length" / "unauthenticated bulk length"), so an unknown peer
  // cannot make the proxy allocate. Not a configuration option.
  bool unauthenticated = false;
};

inline constexpr std::size_t kUnauthenticatedMaxArgs = 10;
inline constexpr std::size_t kUnauthenticatedMaxBulk = 16384;

// A parsed request. Views point into the caller's input buffer (RESP arrays) or into the
// parser's scratch (inline requests); valid until the next parse() or until the buffer changes.
struct Command {
  std::vector<std::string_view> args;  // reused across commands: capacity is kept
  bool inline_form = false;  // true: sent as an inline line; forward it re-encoded as an array
  std::string_view raw;      // the request's bytes as received (the whole array or inline line)

  std::size_t argc() const { return args.size(); }
  bool empty() const { return args.empty(); }  // "*0\r\n" or a blank inline line: no reply
};

// Parses client requests: arrays of bulk strings ("*2\r\n$3\r\nGET\r\n$1\r\nk\r\n") and
// inline commands ("PING\r\n", "set k \"a b\"\r\n") with Redis's quoting rules.
class RequestParser {
 public:
  explicit RequestParser(const Limits& limits = {}) : limits_(limits) {}

  // Parses one request from the front of `input`. On Complete fills `out` and resets for the
  // next request. On Error the connection must be closed after replying "-ERR <error>".
  ParseResult parse(std::string_view input, Command& out);

  // While NeedMore: the minimum total size of the current request known so far (lets the
  // caller size its buffer once for a large bulk instead of growing it read by read).
  std::size_t bytes_hint() const { return hint_; }

  void reset();
  void set_limits(const Limits& limits) { limits_ = limits; }

 private:
  ParseResult parse_inline(std::string_view input, Command& out);
  // Splits an inline line like Redis's sdssplitargs into inline_scratch_ / out.args.
  bool split_inline(std::string_view line, Command& out);
  // Offset of the first `byte` at or after `from`, or npos. Resumes at scan_pos_ so a line
  // arriving in small pieces is scanned once, not once per call.
  std::size_t find_byte(std::string_view input, std::size_t from, char byte);
  ParseResult need_more(std::size_t hint);

  Limits limits_;
  // Resumable state for a multibulk request (offsets are relative to the request start).
  std::size_t pos_ = 0;              // next byte to parse
  std::int64_t expected_args_ = -1;  // -1: header not parsed yet
  std::int64_t bulk_len_ = -1;       // length of the bulk whose header was parsed; -1: none
  std::size_t scan_pos_ = 0;         // the current line has no terminator before this offset
  std::vector<std::pair<std::size_t, std::size_t>> arg_spans_;  // (offset, length)
  std::size_t hint_ = 0;
  // Unescaped inline arguments; out.args views point here until the next inline request.
  std::string inline_scratch_;
};

// What a complete reply was, for routing and policies (no tree is built).
struct ReplyInfo {
  char type = 0;  // type byte of the top-level reply ('+','-',':','$','*','_','#',',','(',
                  // '=','%','~','>','!'); an attribute ('|') is skipped, the type is the one after
  bool is_error() const { return type == '-' || type == '!'; }
  bool is_push() const { return type == '>'; }
  bool is_null = false;  // "$-1", "*-1" or RESP3 "_"
};

// Finds the boundary of one complete reply (any RESP3 type, nested to max_reply_depth), so
// reply bytes can be forwarded verbatim. An attribute ('|') and the reply it annotates count
// as one reply.
class ReplyParser {
 public:
  explicit ReplyParser(const Limits& limits = {}) : limits_(limits) {}

  ParseResult parse(std::string_view input, ReplyInfo& info);
  void reset();

 private:
  struct Level {
    std::int64_t remaining;  // elements still expected at this aggregate level
    bool attribute;          // an attribute map: finishing it does not count as an element
  };
  // Offset of the '\r' of the CRLF ending the line that starts at pos_, or npos.
  std::size_t find_line_end(std::string_view input);
  // One element finished at the current level; true when the whole reply is complete.
  bool finish_element();

  Limits limits_;
  std::size_t pos_ = 0;       // next byte to parse, relative to the reply start
  std::size_t scan_pos_ = 0;  // the current line has no CRLF starting before this offset
  std::size_t blob_end_ = 0;  // while a blob payload is awaited: offset just past its CRLF
  // Elements still expected at each open aggregate level.
  std::vector<Level> pending_;
  ReplyInfo info_;
};

}  // namespace respguard::resp
