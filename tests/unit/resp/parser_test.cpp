// RequestParser and ReplyParser: a corpus fed whole, split at every byte, one byte at a time
// and pipelined must give identical results; every limit and error text is pinned.
#include "respguard/resp/parser.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <new>
#include <ostream>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "respguard/resp/writer.hpp"

// Counts heap allocations so the steady-state "no allocation per request" promise is tested.
namespace {
std::atomic<std::size_t> g_allocations{0};
}  // namespace

void* operator new(std::size_t size) {
  g_allocations.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(size == 0 ? 1 : size)) return p;
  throw std::bad_alloc();
}
void* operator new[](std::size_t size) {
  return ::operator new(size);
}
void operator delete(void* p) noexcept {
  std::free(p);
}
void operator delete[](void* p) noexcept {
  std::free(p);
}
void operator delete(void* p, std::size_t) noexcept {
  std::free(p);
}
void operator delete[](void* p, std::size_t) noexcept {
  std::free(p);
}

namespace respguard::resp {
namespace {

using namespace std::string_literals;

std::string_view status_name(ParseStatus s) {
  switch (s) {
    case ParseStatus::NeedMore:
      return "NeedMore";
    case ParseStatus::Complete:
      return "Complete";
    case ParseStatus::Error:
      return "Error";
  }
  return "?";
}

std::string printable(std::string_view s) {
  std::string out;
  for (unsigned char c : s) {
    if (c >= 0x20 && c < 0x7f && c != '\\') {
      out += static_cast<char>(c);
    } else {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------
// Requests

// A parse result with owned copies, comparable across calls and buffers.
struct RequestOutcome {
  ParseStatus status = ParseStatus::NeedMore;
  std::size_t consumed = 0;
  std::string error;
  std::vector<std::string> args;
  bool inline_form = false;
  std::string raw;

  bool operator==(const RequestOutcome&) const = default;
};

std::ostream& operator<<(std::ostream& os, const RequestOutcome& o) {
  os << status_name(o.status);
  if (o.status == ParseStatus::Error) return os << " \"" << o.error << "\"";
  if (o.status == ParseStatus::NeedMore) return os;
  os << " consumed=" << o.consumed << (o.inline_form ? " inline" : "") << " args=[";
  for (std::size_t i = 0; i < o.args.size(); ++i)
    os << (i ? ", " : "") << '"' << printable(o.args[i]) << '"';
  return os << "] raw=\"" << printable(o.raw) << '"';
}

RequestOutcome parse_request(RequestParser& parser, std::string_view input, Command& cmd) {
  const ParseResult r = parser.parse(input, cmd);
  RequestOutcome o;
  o.status = r.status;
  if (r.status == ParseStatus::Error) o.error = r.error;
  if (r.status != ParseStatus::Complete) return o;
  o.consumed = r.consumed;
  for (std::string_view a : cmd.args) o.args.emplace_back(a);
  o.inline_form = cmd.inline_form;
  o.raw = cmd.raw;
  return o;
}

RequestOutcome parse_request_whole(std::string_view input, const Limits& limits = {}) {
  RequestParser parser(limits);
  Command cmd;
  return parse_request(parser, std::string(input), cmd);
}

struct RequestCase {
  std::string name;
  std::string bytes;
  RequestOutcome expected;
};

RequestOutcome complete_request(std::string_view bytes, std::vector<std::string> args,
                                bool inline_form) {
  return {ParseStatus::Complete, bytes.size(), "",
          std::move(args),       inline_form,  std::string(bytes)};
}

RequestOutcome error_request(std::string_view error) {
  return {ParseStatus::Error, 0, std::string(error), {}, false, ""};
}

std::vector<std::string> many_args(int n) {
  std::vector<std::string> args{"MSET"};
  for (int i = 1; i < n; ++i) args.push_back("k" + std::to_string(i));
  return args;
}

std::vector<RequestCase> request_corpus() {
  std::vector<RequestCase> corpus;
  auto multibulk = [&](std::string name, std::vector<std::string> args) {
    std::string bytes;
    write_command(bytes, args);
    corpus.push_back({std::move(name), bytes, complete_request(bytes, args, false)});
  };
  auto literal = [&](std::string name, std::string bytes, std::vector<std::string> args,
                     bool inline_form) {
    RequestOutcome expected = complete_request(bytes, std::move(args), inline_form);
    corpus.push_back({std::move(name), std::move(bytes), std::move(expected)});
  };
  auto error = [&](std::string name, std::string bytes, std::string_view message) {
    corpus.push_back({std::move(name), std::move(bytes), error_request(message)});
  };

  multibulk("ping", {"PING"});
  multibulk("set", {"SET", "key", "value"});
  multibulk("binary value", {"SET", "k", "a\r\nb\0c\r\n\0"s, "\r\n"});
  multibulk("crlf only values", {"\r\n", "\r", "\n", "$", "*"});
  multibulk("empty bulk", {"ECHO", ""});
  multibulk("all empty", {"", "", ""});
  multibulk("many args", many_args(300));
  multibulk("long value", {"SET", "k", std::string(3000, 'v')});
  multibulk("all byte values", [] {
    std::string all;
    for (int c = 0; c < 256; ++c) all += static_cast<char>(c);
    return std::vector<std::string>{"SET", "k", all};
  }());
  literal("zero count", "*0\r\n", {}, false);
  literal("null count", "*-1\r\n", {}, false);
  literal("negative count", "*-10\r\n", {}, false);
  // Redis trusts the byte after '\r' to be '\n', and the 2 bytes after a payload to be CRLF.
  literal("count line lone CR", "*1\rX$3\r\nfoo\r\n", {"foo"}, false);
  literal("payload trailer unchecked", "*2\r\n$3\r\nfooXY$3\r\nbar\r\n", {"foo", "bar"}, false);
  literal("bulk line lone CR", "*1\r\n$3\r?foo\r\n", {"foo"}, false);

  literal("inline ping crlf", "PING\r\n", {"PING"}, true);
  literal("inline ping lf", "PING\n", {"PING"}, true);
  literal("inline args", "set key value\r\n", {"set", "key", "value"}, true);
  literal("inline blanks", "  \t get   k \t\r\n", {"get", "k"}, true);
  literal("inline double quotes", "set k \"a b\"\r\n", {"set", "k", "a b"}, true);
  literal("inline escapes", "echo \"\\x41\\x7a\\n\\r\\t\\b\\a\\\\\\\"\\q\\xZZ\"\r\n",
          {"echo", "Az\n\r\t\b\a\\\"qxZZ"}, true);
  literal("inline hex nul", "echo \"a\\x00b\"\n", {"echo", "a\0b"s}, true);
  literal("inline single quotes", "echo 'it\\'s' 'a\\nb' '\"'\r\n", {"echo", "it's", "a\\nb", "\""},
          true);
  literal("inline empty quotes", "echo \"\" ''\r\n", {"echo", "", ""}, true);
  literal("inline quote mid token", "echo foo\"bar baz\"\r\n", {"echo", "foobar baz"}, true);
  literal("inline vertical tab", "\va\vb\fc d\n", {"a\vb\fc", "d"}, true);
  literal("inline cr inside", "a\rb\r\n", {"a", "b"}, true);
  literal("inline nul ends line", "GET a\0b \"c\r\n"s, {"GET", "a"}, true);
  literal("inline high bytes", "echo \xff\xfe\r\n", {"echo", "\xff\xfe"}, true);
  literal("blank crlf", "\r\n", {}, true);
  literal("blank lf", "\n", {}, true);
  literal("blank spaces", "   \t \r\n", {}, true);
  literal("blank double cr", "\r\r\n", {}, true);

  error("count not a number", "*abc\r\n", "Protocol error: invalid multibulk length");
  error("count empty", "*\r\n", "Protocol error: invalid multibulk length");
  error("count leading zero", "*01\r\n", "Protocol error: invalid multibulk length");
  error("count plus sign", "*+1\r\n", "Protocol error: invalid multibulk length");
  error("count minus zero", "*-0\r\n", "Protocol error: invalid multibulk length");
  error("count space", "*1 \r\n", "Protocol error: invalid multibulk length");
  error("count over INT_MAX", "*2147483648\r\n", "Protocol error: invalid multibulk length");
  error("count overflow", "*99999999999999999999\r\n", "Protocol error: invalid multibulk length");
  error("expected dollar", "*3\r\n$3\r\nSET\r\n$1\r\nx\r\nfooz\r\n",
        "Protocol error: expected '$', got 'f'");
  error("expected dollar colon", "*1\r\n:1\r\n", "Protocol error: expected '$', got ':'");
  error("expected dollar got CR", "*1\r\n\r\n", "Protocol error: expected '$', got ' '");
  error("expected dollar got LF", "*1\r\n\n\r\n", "Protocol error: expected '$', got ' '");
  error("expected dollar got NUL", "*1\r\n\0\r\n"s, "Protocol error: expected '$', got '");
  error("bulk negative", "*1\r\n$-1\r\n", "Protocol error: invalid bulk length");
  error("bulk not a number", "*1\r\n$x\r\n", "Protocol error: invalid bulk length");
  error("bulk empty length", "*1\r\n$\r\n", "Protocol error: invalid bulk length");
  error("bulk leading zero", "*1\r\n$03\r\nfoo\r\n", "Protocol error: invalid bulk length");
  error("bulk over proto-max-bulk-len", "*1\r\n$536870913\r\n",
        "Protocol error: invalid bulk length");
  error("inline unbalanced double", "SET a \"foo\r\n",
        "Protocol error: unbalanced quotes in request");
  error("inline unbalanced single", "SET a 'foo\n", "Protocol error: unbalanced quotes in request");
  error("inline text after quote", "SET a \"foo\"bar\r\n",
        "Protocol error: unbalanced quotes in request");
  error("inline text after single quote", "SET a 'foo'bar\r\n",
        "Protocol error: unbalanced quotes in request");
  error("inline escaped close quote", "echo \"abc\\\"\r\n",
        "Protocol error: unbalanced quotes in request");
  error("inline backslash at end", "echo \"abc\\\r\n",
        "Protocol error: unbalanced quotes in request");
  error("inline nul in quotes", "echo \"a\0b\"\r\n"s,
        "Protocol error: unbalanced quotes in request");
  return corpus;
}

// Parses every strict prefix (each a fresh copy, then the whole message again with the same
// parser, as a caller would after a short read) and checks the result never differs from
// parsing the message whole.
void check_request_splits(const RequestCase& c) {
  SCOPED_TRACE(c.name + ": " + printable(c.bytes));
  const RequestOutcome whole = parse_request_whole(c.bytes);
  ASSERT_EQ(whole, c.expected);

  for (std::size_t k = 0; k < c.bytes.size(); ++k) {
    SCOPED_TRACE("split at " + std::to_string(k));
    RequestParser parser;
    Command cmd;
    const RequestOutcome first = parse_request(parser, std::string(c.bytes, 0, k), cmd);
    if (first.status == ParseStatus::Error) {
      ASSERT_EQ(first, whole) << "a prefix may only fail the way the whole message does";
      continue;
    }
    ASSERT_EQ(first.status, ParseStatus::NeedMore);
    if (whole.status == ParseStatus::Complete) {
      EXPECT_GT(parser.bytes_hint(), k);
      EXPECT_LE(parser.bytes_hint(), whole.consumed);
    }
    EXPECT_EQ(parse_request(parser, std::string(c.bytes), cmd), whole);
  }
}

void check_request_bytewise(const RequestCase& c) {
  SCOPED_TRACE(c.name + " byte by byte");
  const RequestOutcome whole = parse_request_whole(c.bytes);
  RequestParser parser;
  Command cmd;
  RequestOutcome last;
  std::size_t k = 1;
  for (; k <= c.bytes.size(); ++k) {
    last = parse_request(parser, std::string(c.bytes, 0, k), cmd);  // a fresh buffer each time
    if (last.status != ParseStatus::NeedMore) break;
  }
  EXPECT_EQ(last, whole);
  if (whole.status == ParseStatus::Complete) {
    EXPECT_EQ(k, c.bytes.size());
  }
}

TEST(RequestParser, CorpusWhole) {
  for (const auto& c : request_corpus()) {
    EXPECT_EQ(parse_request_whole(c.bytes), c.expected) << c.name << ": " << printable(c.bytes);
  }
}

TEST(RequestParser, CorpusSplitAtEveryByte) {
  for (const auto& c : request_corpus()) check_request_splits(c);
}

TEST(RequestParser, CorpusOneByteAtATime) {
  for (const auto& c : request_corpus()) check_request_bytewise(c);
}

TEST(RequestParser, PipelineBackToBack) {
  std::string pipeline;
  std::vector<RequestOutcome> expected;
  for (const auto& c : request_corpus()) {
    if (c.expected.status != ParseStatus::Complete) continue;
    pipeline += c.bytes;
    expected.push_back(c.expected);
  }
  ASSERT_GT(expected.size(), 30u);

  // All at once, one parser, views into one buffer.
  {
    RequestParser parser;
    Command cmd;
    std::size_t offset = 0;
    for (const auto& e : expected) {
      EXPECT_EQ(parse_request(parser, std::string_view(pipeline).substr(offset), cmd), e);
      offset += e.consumed;
    }
    EXPECT_EQ(offset, pipeline.size());
    EXPECT_EQ(parse_request(parser, std::string_view(pipeline).substr(offset), cmd).status,
              ParseStatus::NeedMore);
  }

  // Arriving in random reads; the buffer is compacted and moved after every read.
  std::mt19937 rng(7);
  for (int round = 0; round < 20; ++round) {
    RequestParser parser;
    Command cmd;
    std::string buffer;
    std::size_t fed = 0;
    std::vector<RequestOutcome> got;
    while (fed < pipeline.size()) {
      const std::size_t n = std::min<std::size_t>(1 + rng() % 64, pipeline.size() - fed);
      buffer = buffer + pipeline.substr(fed, n);  // a new allocation: the old one is gone
      fed += n;
      while (true) {
        RequestOutcome o = parse_request(parser, buffer, cmd);
        if (o.status != ParseStatus::Complete) {
          ASSERT_EQ(o.status, ParseStatus::NeedMore);
          break;
        }
        buffer.erase(0, o.consumed);
        got.push_back(std::move(o));
      }
    }
    EXPECT_EQ(got, expected);
    EXPECT_TRUE(buffer.empty());
  }
}

TEST(RequestParser, ArgsAreViewsIntoTheInput) {
  const std::string input = "*2\r\n$3\r\nGET\r\n$3\r\nkey\r\n";
  RequestParser parser;
  Command cmd;
  ASSERT_EQ(parser.parse(input, cmd).status, ParseStatus::Complete);
  ASSERT_EQ(cmd.argc(), 2u);
  EXPECT_EQ(cmd.args[0].data(), input.data() + 8);
  EXPECT_EQ(cmd.args[1].data(), input.data() + 17);
  EXPECT_EQ(cmd.raw.data(), input.data());
  EXPECT_FALSE(cmd.empty());
}

TEST(RequestParser, NoAllocationInSteadyState) {
  std::string pipeline;
  write_command(pipeline, {"SET", "key", "value"});
  write_command(pipeline, {"GET", "key"});
  pipeline += "PING\r\n";
  pipeline += "set k \"a b\" 'c'\r\n";
  write_command(pipeline, {"MSET", "a", "1", "b", "2", "c", "3"});
  pipeline += "*0\r\n";

  RequestParser parser;
  Command cmd;
  auto run_all = [&] {
    std::size_t offset = 0;
    int complete = 0;
    while (offset < pipeline.size()) {
      const ParseResult r = parser.parse(std::string_view(pipeline).substr(offset), cmd);
      if (r.status != ParseStatus::Complete) return -1;
      offset += r.consumed;
      ++complete;
    }
    return complete;
  };
  ASSERT_EQ(run_all(), 6);  // warms up capacities
  const std::size_t before = g_allocations.load();
  bool all_complete = true;
  for (int i = 0; i < 100; ++i) all_complete = all_complete && run_all() == 6;
  const std::size_t after = g_allocations.load();
  EXPECT_TRUE(all_complete);
  EXPECT_EQ(after, before);
}

TEST(RequestParser, BytesHintCoversTheWholeBulk) {
  const std::string value(1 << 20, 'x');
  std::string request;
  write_command(request, {"SET", "k", value});
  RequestParser parser;
  Command cmd;
  const std::size_t header_end = request.find("x");  // the payload starts after "$1048576\r\n"
  ASSERT_EQ(parser.parse(std::string_view(request).substr(0, header_end + 10), cmd).status,
            ParseStatus::NeedMore);
  EXPECT_EQ(parser.bytes_hint(), request.size());
  // Fed in 64 KB reads, the result is the same.
  std::string buffer;
  ParseResult r;
  for (std::size_t fed = 0; fed < request.size();) {
    const std::size_t n = std::min<std::size_t>(65536, request.size() - fed);
    buffer.append(request, fed, n);
    fed += n;
    r = parser.parse(buffer, cmd);
    if (fed < request.size()) {
      ASSERT_EQ(r.status, ParseStatus::NeedMore);
      EXPECT_EQ(parser.bytes_hint(), request.size());
    }
  }
  ASSERT_EQ(r.status, ParseStatus::Complete);
  EXPECT_EQ(r.consumed, request.size());
  ASSERT_EQ(cmd.argc(), 3u);
  EXPECT_EQ(cmd.args[2], value);
}

TEST(RequestParser, InlineArgsSurviveUntilNextParse) {
  RequestParser parser;
  Command cmd;
  std::string input = "set \"k k\" v\r\n";
  ASSERT_EQ(parser.parse(input, cmd).status, ParseStatus::Complete);
  input.assign(input.size(), '#');  // the caller reuses its buffer: args live in the parser
  ASSERT_EQ(cmd.argc(), 3u);
  EXPECT_EQ(cmd.args[0], "set");
  EXPECT_EQ(cmd.args[1], "k k");
  EXPECT_EQ(cmd.args[2], "v");
  EXPECT_TRUE(cmd.inline_form);
}

TEST(RequestParser, EmptyInputNeedsMore) {
  RequestParser parser;
  Command cmd;
  EXPECT_EQ(parser.parse("", cmd).status, ParseStatus::NeedMore);
}

TEST(RequestParser, ResetDropsAPartialRequest) {
  RequestParser parser;
  Command cmd;
  ASSERT_EQ(parser.parse("*2\r\n$3\r\nGET\r\n$3\r\nke", cmd).status, ParseStatus::NeedMore);
  parser.reset();
  ASSERT_EQ(parser.parse("*1\r\n$4\r\nPING\r\n", cmd).status, ParseStatus::Complete);
  ASSERT_EQ(cmd.argc(), 1u);
  EXPECT_EQ(cmd.args[0], "PING");
}

// --- limits --------------------------------------------------------------------------------

TEST(RequestParserLimits, CountLineTooLong) {
  // Redis: no '\r' and more than PROTO_INLINE_MAX_SIZE (64 KB) bytes buffered.
  const std::string at_limit = "*" + std::string(64 * 1024 - 1, '1');
  EXPECT_EQ(parse_request_whole(at_limit).status, ParseStatus::NeedMore);
  EXPECT_EQ(parse_request_whole(at_limit + "1"),
            error_request("Protocol error: too big mbulk count string"));
  // Once the '\r' is there, a long line is judged on its value.
  EXPECT_EQ(parse_request_whole(at_limit + "1\r\n"),
            error_request("Protocol error: invalid multibulk length"));

  Limits small;
  small.max_inline_len = 8;
  EXPECT_EQ(parse_request_whole("*1111111", small).status, ParseStatus::NeedMore);  // 8 bytes
  EXPECT_EQ(parse_request_whole("*11111111", small),
            error_request("Protocol error: too big mbulk count string"));
}

TEST(RequestParserLimits, BulkLineTooLong) {
  const std::string prefix = "*2\r\n$4\r\nECHO\r\n";
  const std::string at_limit = prefix + "$" + std::string(64 * 1024 - 1, '1');
  EXPECT_EQ(parse_request_whole(at_limit).status, ParseStatus::NeedMore);
  EXPECT_EQ(parse_request_whole(at_limit + "1"),
            error_request("Protocol error: too big bulk count string"));
  // The size check comes before the '$' check, as in Redis.
  EXPECT_EQ(parse_request_whole("*1\r\n" + std::string(70000, 'X')),
            error_request("Protocol error: too big bulk count string"));

  Limits small;
  small.max_inline_len = 8;
  EXPECT_EQ(parse_request_whole("*1\r\n$1234567", small).status, ParseStatus::NeedMore);
  EXPECT_EQ(parse_request_whole("*1\r\n$12345678", small),
            error_request("Protocol error: too big bulk count string"));
}

TEST(RequestParserLimits, InlineTooLong) {
  const std::string at_limit(64 * 1024, 'a');
  EXPECT_EQ(parse_request_whole(at_limit).status, ParseStatus::NeedMore);
  EXPECT_EQ(parse_request_whole(at_limit + "a"),
            error_request("Protocol error: too big inline request"));
  // A complete line longer than the limit is still accepted (Redis only checks when the
  // buffer holds no newline).
  const RequestOutcome long_line = parse_request_whole("echo " + at_limit + "\r\n");
  ASSERT_EQ(long_line.status, ParseStatus::Complete);
  EXPECT_EQ(long_line.args.at(1), at_limit);

  Limits small;
  small.max_inline_len = 4;
  EXPECT_EQ(parse_request_whole("PING", small).status, ParseStatus::NeedMore);
  EXPECT_EQ(parse_request_whole("PINGX", small),
            error_request("Protocol error: too big inline request"));
  EXPECT_EQ(parse_request_whole("PINGX\r\n", small).status, ParseStatus::Complete);
}

TEST(RequestParserLimits, MaxBulkLen) {
  Limits small;
  small.max_bulk_len = 10;
  EXPECT_EQ(parse_request_whole("*1\r\n$10\r\n0123456789\r\n", small).status,
            ParseStatus::Complete);
  EXPECT_EQ(parse_request_whole("*1\r\n$11\r\n", small),
            error_request("Protocol error: invalid bulk length"));
  // Default: proto-max-bulk-len 512 MB.
  EXPECT_EQ(parse_request_whole("*1\r\n$536870912\r\n").status, ParseStatus::NeedMore);
  EXPECT_EQ(parse_request_whole("*1\r\n$536870913\r\n"),
            error_request("Protocol error: invalid bulk length"));
}

TEST(RequestParserLimits, MaxMultibulkLen) {
  Limits small;
  small.max_multibulk_len = 3;
  EXPECT_EQ(parse_request_whole("*3\r\n", small).status, ParseStatus::NeedMore);
  EXPECT_EQ(parse_request_whole("*4\r\n", small),
            error_request("Protocol error: invalid multibulk length"));
  // INT_MAX is the hard cap whatever the limit says.
  Limits huge;
  huge.max_multibulk_len = SIZE_MAX;
  EXPECT_EQ(parse_request_whole("*2147483647\r\n", huge).status, ParseStatus::NeedMore);
  EXPECT_EQ(parse_request_whole("*2147483648\r\n", huge),
            error_request("Protocol error: invalid multibulk length"));
  // Negative counts are not limited: they are empty commands.
  EXPECT_EQ(parse_request_whole("*-9223372036854775808\r\n", small).status, ParseStatus::Complete);
}

TEST(RequestParserLimits, SetLimitsAppliesToTheNextHeader) {
  RequestParser parser;
  Command cmd;
  Limits small;
  small.max_bulk_len = 2;
  parser.set_limits(small);
  EXPECT_EQ(parser.parse("*1\r\n$3\r\nfoo\r\n", cmd).error, "Protocol error: invalid bulk length");
}

// Before AUTH, as Redis 7: at most 10 arguments of at most 16384 bytes; the texts are Redis's
// (checked against redis-server 7.0.15), and a malformed length is still "invalid".
TEST(RequestParserLimits, Unauthenticated) {
  Limits unauth;
  unauth.unauthenticated = true;
  EXPECT_EQ(parse_request_whole("*10\r\n", unauth).status, ParseStatus::NeedMore);
  EXPECT_EQ(parse_request_whole("*11\r\n", unauth),
            error_request("Protocol error: unauthenticated multibulk length"));
  EXPECT_EQ(parse_request_whole("*x\r\n", unauth),
            error_request("Protocol error: invalid multibulk length"));
  EXPECT_EQ(parse_request_whole("*1\r\n$16384\r\n", unauth).status, ParseStatus::NeedMore);
  EXPECT_EQ(parse_request_whole("*1\r\n$16385\r\n", unauth),
            error_request("Protocol error: unauthenticated bulk length"));
  EXPECT_EQ(parse_request_whole("*1\r\n$1073741824\r\n", unauth),
            error_request("Protocol error: invalid bulk length"));
  EXPECT_EQ(parse_request_whole("*1\r\n$-2\r\n", unauth),
            error_request("Protocol error: invalid bulk length"));
}

TEST(RequestParser, ExpectedDollarMessageForEveryByte) {
  for (int c = 0; c < 256; ++c) {
    if (c == '$') continue;
    std::string input = "*1\r\n";
    input += static_cast<char>(c);
    input += "3\r\nfoo\r\n";
    std::string expected = "Protocol error: expected '$', got '";
    if (c != 0) {
      expected += (c == '\r' || c == '\n') ? ' ' : static_cast<char>(c);
      expected += '\'';
    }
    EXPECT_EQ(parse_request_whole(input), error_request(expected)) << "byte " << c;
  }
}

// ---------------------------------------------------------------------------------------
// Replies

struct ReplyOutcome {
  ParseStatus status = ParseStatus::NeedMore;
  std::size_t consumed = 0;
  std::string error;
  char type = 0;
  bool is_null = false;

  bool operator==(const ReplyOutcome&) const = default;
};

std::ostream& operator<<(std::ostream& os, const ReplyOutcome& o) {
  os << status_name(o.status);
  if (o.status == ParseStatus::Error) return os << " \"" << o.error << "\"";
  if (o.status == ParseStatus::NeedMore) return os;
  return os << " consumed=" << o.consumed << " type='" << o.type << "'"
            << (o.is_null ? " null" : "");
}

ReplyOutcome parse_reply(ReplyParser& parser, std::string_view input) {
  ReplyInfo info;
  const ParseResult r = parser.parse(input, info);
  ReplyOutcome o;
  o.status = r.status;
  if (r.status == ParseStatus::Error) o.error = r.error;
  if (r.status != ParseStatus::Complete) return o;
  o.consumed = r.consumed;
  o.type = info.type;
  o.is_null = info.is_null;
  return o;
}

ReplyOutcome parse_reply_whole(std::string_view input, const Limits& limits = {}) {
  ReplyParser parser(limits);
  return parse_reply(parser, std::string(input));
}

ReplyOutcome reply_ok(std::size_t size, char type, bool is_null = false) {
  return {ParseStatus::Complete, size, "", type, is_null};
}

ReplyOutcome reply_error(std::string_view error) {
  return {ParseStatus::Error, 0, std::string(error), 0, false};
}

struct ReplyCase {
  std::string bytes;
  ReplyOutcome expected;
};

std::vector<ReplyCase> reply_corpus() {
  std::vector<ReplyCase> corpus;
  auto ok = [&](std::string bytes, char type, bool is_null = false) {
    const std::size_t size = bytes.size();
    corpus.push_back({std::move(bytes), reply_ok(size, type, is_null)});
  };
  auto bad = [&](std::string bytes, std::string_view error) {
    corpus.push_back({std::move(bytes), reply_error(error)});
  };
  ok("+OK\r\n", '+');
  ok("+\r\n", '+');
  ok("+a\rb\r\n", '+');  // a lone CR inside a line does not end it
  ok("-ERR unknown command 'foo'\r\n", '-');
  ok(":0\r\n", ':');
  ok(":-9223372036854775808\r\n", ':');
  ok("$5\r\nhello\r\n", '$');
  ok("$0\r\n\r\n", '$');
  ok("$10\r\na\r\nb\0c\r\n\0\r\r\n"s, '$');
  ok("$-1\r\n", '$', true);
  ok("*-1\r\n", '*', true);
  ok("*0\r\n", '*');
  ok("*2\r\n$3\r\nfoo\r\n:1\r\n", '*');
  ok("*3\r\n*1\r\n+a\r\n*0\r\n*2\r\n$-1\r\n*-1\r\n", '*');
  ok("*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n:8\r\n", '*');
  ok("_\r\n", '_', true);
  ok("#t\r\n", '#');
  ok("#f\r\n", '#');
  ok(",1.5\r\n", ',');
  ok(",inf\r\n", ',');
  ok(",-inf\r\n", ',');
  ok(",nan\r\n", ',');
  ok("(3492890328409238509324850943850943825024385\r\n", '(');
  ok("=15\r\ntxt:Some string\r\n", '=');
  ok("!21\r\nSYNTAX invalid syntax\r\n", '!');
  ok("%2\r\n+first\r\n:1\r\n+second\r\n:2\r\n", '%');
  ok("%0\r\n", '%');
  ok("~3\r\n:1\r\n:2\r\n:3\r\n", '~');
  ok("~0\r\n", '~');
  ok(">3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$3\r\nhi!\r\n", '>');
  ok("|1\r\n+key-popularity\r\n%2\r\n$1\r\na\r\n,0.1923\r\n$1\r\nb\r\n,0.0012\r\n"
     "*2\r\n:2039123\r\n:9543892\r\n",
     '*');
  ok("*2\r\n|1\r\n+ttl\r\n:3600\r\n:1\r\n:2\r\n", '*');
  ok("|0\r\n+OK\r\n", '+');
  ok("|1\r\n+a\r\n+b\r\n_\r\n", '_', true);
  ok("|1\r\n+a\r\n|1\r\n+x\r\n+y\r\n+b\r\n|1\r\n+c\r\n+d\r\n:7\r\n", ':');
  ok("%1\r\n|1\r\n+a\r\n+b\r\n+k\r\n*2\r\n%1\r\n+x\r\n~1\r\n_\r\n>0\r\n", '%');
  bad("?\r\n", "Protocol error: invalid reply type byte '?'");
  bad("*1\r\n\x01\r\n", "Protocol error: invalid reply type byte '\\x01'");
  bad("*1\r\n\r\n", "Protocol error: invalid reply type byte '\\x0d'");
  bad("$-2\r\n", "Protocol error: invalid bulk length");
  bad("$abc\r\n", "Protocol error: invalid bulk length");
  bad("$\r\n", "Protocol error: invalid bulk length");
  bad("=-1\r\n", "Protocol error: invalid bulk length");
  bad("!-1\r\n", "Protocol error: invalid bulk length");
  bad("*-2\r\n", "Protocol error: invalid multibulk length");
  bad("%-1\r\n", "Protocol error: invalid multibulk length");
  bad("~x\r\n", "Protocol error: invalid multibulk length");
  bad("$?\r\n", "Protocol error: streamed RESP3 replies ('?' length) are not supported");
  bad("*?\r\n", "Protocol error: streamed RESP3 replies ('?' length) are not supported");
  bad("$3\r\nfooXY", "Protocol error: bulk payload not followed by CRLF");
  bad("*2\r\n$1\r\na\n\r:1\r\n", "Protocol error: bulk payload not followed by CRLF");
  return corpus;
}

TEST(ReplyParser, CorpusWhole) {
  for (const auto& c : reply_corpus()) {
    EXPECT_EQ(parse_reply_whole(c.bytes), c.expected) << printable(c.bytes);
  }
}

TEST(ReplyParser, CorpusSplitAtEveryByte) {
  for (const auto& c : reply_corpus()) {
    SCOPED_TRACE(printable(c.bytes));
    const ReplyOutcome whole = parse_reply_whole(c.bytes);
    for (std::size_t k = 0; k < c.bytes.size(); ++k) {
      SCOPED_TRACE("split at " + std::to_string(k));
      ReplyParser parser;
      const ReplyOutcome first = parse_reply(parser, std::string(c.bytes, 0, k));
      if (first.status == ParseStatus::Error) {
        ASSERT_EQ(first, whole);
        continue;
      }
      ASSERT_EQ(first.status, ParseStatus::NeedMore);
      EXPECT_EQ(parse_reply(parser, std::string(c.bytes)), whole);
    }
  }
}

TEST(ReplyParser, CorpusOneByteAtATime) {
  for (const auto& c : reply_corpus()) {
    SCOPED_TRACE(printable(c.bytes));
    const ReplyOutcome whole = parse_reply_whole(c.bytes);
    ReplyParser parser;
    ReplyOutcome last;
    std::size_t k = 1;
    for (; k <= c.bytes.size(); ++k) {
      last = parse_reply(parser, std::string(c.bytes, 0, k));
      if (last.status != ParseStatus::NeedMore) break;
    }
    EXPECT_EQ(last, whole);
    if (whole.status == ParseStatus::Complete) {
      EXPECT_EQ(k, c.bytes.size());
    }
  }
}

TEST(ReplyParser, PipelineBackToBack) {
  std::string pipeline;
  std::vector<ReplyOutcome> expected;
  for (const auto& c : reply_corpus()) {
    if (c.expected.status != ParseStatus::Complete) continue;
    pipeline += c.bytes;
    expected.push_back(c.expected);
  }
  ReplyParser parser;
  std::size_t offset = 0;
  for (const auto& e : expected) {
    EXPECT_EQ(parse_reply(parser, std::string_view(pipeline).substr(offset)), e);
    offset += e.consumed;
  }
  EXPECT_EQ(offset, pipeline.size());

  std::mt19937 rng(11);
  for (int round = 0; round < 20; ++round) {
    ReplyParser chunked;
    std::string buffer;
    std::vector<ReplyOutcome> got;
    for (std::size_t fed = 0; fed < pipeline.size();) {
      const std::size_t n = std::min<std::size_t>(1 + rng() % 32, pipeline.size() - fed);
      buffer = buffer + pipeline.substr(fed, n);
      fed += n;
      while (true) {
        ReplyOutcome o = parse_reply(chunked, buffer);
        if (o.status != ParseStatus::Complete) {
          ASSERT_EQ(o.status, ParseStatus::NeedMore);
          break;
        }
        buffer.erase(0, o.consumed);
        got.push_back(o);
      }
    }
    EXPECT_EQ(got, expected);
  }
}

TEST(ReplyParser, LargeBulkInChunks) {
  std::string reply;
  write_bulk(reply, std::string(3 << 20, 'z'));
  reply += ":1\r\n";  // the next reply
  ReplyParser parser;
  ReplyInfo info;
  ParseResult r;
  for (std::size_t fed = 4096; fed < reply.size(); fed += 4096) {
    r = parser.parse(std::string_view(reply).substr(0, fed), info);
    if (fed < reply.size() - 4) {
      ASSERT_EQ(r.status, ParseStatus::NeedMore) << fed;
    }
  }
  r = parser.parse(reply, info);
  ASSERT_EQ(r.status, ParseStatus::Complete);
  EXPECT_EQ(r.consumed, reply.size() - 4);
  EXPECT_EQ(info.type, '$');
}

TEST(ReplyParser, NoAllocationInSteadyState) {
  const std::string pipeline =
      "+OK\r\n*3\r\n$3\r\nfoo\r\n*2\r\n:1\r\n:2\r\n_\r\n%1\r\n+a\r\n~1\r\n#t\r\n"
      "|1\r\n+x\r\n+y\r\n$-1\r\n";
  ReplyParser parser;
  ReplyInfo info;
  auto run_all = [&] {
    std::size_t offset = 0;
    int complete = 0;
    while (offset < pipeline.size()) {
      const ParseResult r = parser.parse(std::string_view(pipeline).substr(offset), info);
      if (r.status != ParseStatus::Complete) return -1;
      offset += r.consumed;
      ++complete;
    }
    return complete;
  };
  ASSERT_EQ(run_all(), 4);
  const std::size_t before = g_allocations.load();
  bool all_complete = true;
  for (int i = 0; i < 100; ++i) all_complete = all_complete && run_all() == 4;
  const std::size_t after = g_allocations.load();
  EXPECT_TRUE(all_complete);
  EXPECT_EQ(after, before);
}

TEST(ReplyParser, InfoHelpers) {
  ReplyInfo info;
  ReplyParser parser;
  ASSERT_EQ(parser.parse("!3\r\nERR\r\n", info).status, ParseStatus::Complete);
  EXPECT_TRUE(info.is_error());
  ASSERT_EQ(parser.parse("-ERR x\r\n", info).status, ParseStatus::Complete);
  EXPECT_TRUE(info.is_error());
  EXPECT_FALSE(info.is_push());
  ASSERT_EQ(parser.parse(">1\r\n+x\r\n", info).status, ParseStatus::Complete);
  EXPECT_TRUE(info.is_push());
  EXPECT_FALSE(info.is_null);
  // Null only at the top level.
  ASSERT_EQ(parser.parse("*1\r\n$-1\r\n", info).status, ParseStatus::Complete);
  EXPECT_FALSE(info.is_null);
}

TEST(ReplyParserLimits, Depth) {
  Limits limits;
  limits.max_reply_depth = 3;
  EXPECT_EQ(parse_reply_whole("*1\r\n*1\r\n*1\r\n:1\r\n", limits), reply_ok(16, '*'));
  EXPECT_EQ(parse_reply_whole("*1\r\n*1\r\n*1\r\n*1\r\n:1\r\n", limits),
            reply_error("Protocol error: reply nesting too deep"));
  // Attributes and maps are levels too.
  EXPECT_EQ(parse_reply_whole("*1\r\n%1\r\n|1\r\n+a\r\n+b\r\n+k\r\n+v\r\n", limits).status,
            ParseStatus::Complete);
  EXPECT_EQ(parse_reply_whole("*1\r\n%1\r\n+k\r\n|1\r\n*1\r\n+a\r\n+b\r\n+v\r\n", limits),
            reply_error("Protocol error: reply nesting too deep"));
  // Empty aggregates do not open a level.
  EXPECT_EQ(parse_reply_whole("*1\r\n*1\r\n*1\r\n*0\r\n", limits).status, ParseStatus::Complete);

  // Default: 128 levels.
  std::string deep;
  for (int i = 0; i < 128; ++i) deep += "*1\r\n";
  EXPECT_EQ(parse_reply_whole(deep + ":1\r\n").status, ParseStatus::Complete);
  EXPECT_EQ(parse_reply_whole("*1\r\n" + deep + ":1\r\n"),
            reply_error("Protocol error: reply nesting too deep"));
}

TEST(ReplyParserLimits, BulkAndAggregateLengths) {
  Limits limits;
  limits.max_bulk_len = 3;
  limits.max_multibulk_len = 2;
  EXPECT_EQ(parse_reply_whole("$3\r\nabc\r\n", limits), reply_ok(9, '$'));
  EXPECT_EQ(parse_reply_whole("$4\r\n", limits),
            reply_error("Protocol error: invalid bulk length"));
  EXPECT_EQ(parse_reply_whole("=8\r\n", limits),
            reply_error("Protocol error: invalid bulk length"));
  EXPECT_EQ(parse_reply_whole("!4\r\n", limits),
            reply_error("Protocol error: invalid bulk length"));
  EXPECT_EQ(parse_reply_whole("*2\r\n:1\r\n:2\r\n", limits).status, ParseStatus::Complete);
  EXPECT_EQ(parse_reply_whole("*3\r\n", limits),
            reply_error("Protocol error: invalid multibulk length"));
  EXPECT_EQ(parse_reply_whole("%3\r\n", limits),
            reply_error("Protocol error: invalid multibulk length"));
  EXPECT_EQ(parse_reply_whole("*-1\r\n", limits), reply_ok(5, '*', true));
}

TEST(ReplyParser, InvalidTypeByteIsReportedAtOnce) {
  // No need to wait for a line ending to reject a garbage first byte.
  EXPECT_EQ(parse_reply_whole("x"), reply_error("Protocol error: invalid reply type byte 'x'"));
  EXPECT_EQ(parse_reply_whole("\xff"),
            reply_error("Protocol error: invalid reply type byte '\\xff'"));
}

}  // namespace
}  // namespace respguard::resp
