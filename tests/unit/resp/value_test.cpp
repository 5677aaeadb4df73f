// parse_value / Value: every RESP3 type decoded, errors, find, to_string; and a differential
// test against hiredis's reader (RESP2) on a corpus plus thousands of random nested replies.
#include "respguard/resp/value.hpp"

#include <gtest/gtest.h>
#include <hiredis/hiredis.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <memory>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "respguard/resp/parser.hpp"

namespace respguard::resp {
namespace {

using namespace std::string_literals;

std::string escaped(std::string_view s) {
  std::string out;
  for (unsigned char c : s) {
    if (c >= 0x20 && c < 0x7f && c != '\\' && c != '"') {
      out += static_cast<char>(c);
    } else {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    }
  }
  return out;
}

// A canonical, type-exact rendering used to compare trees (ours with each other and with
// hiredis's) and to show them in failure messages.
std::string describe(const Value& v) {
  std::string out;
  if (!v.attributes.empty()) {
    out += "|{";
    for (std::size_t i = 0; i < v.attributes.size(); ++i) {
      out += (i ? ", " : "") + describe(v.attributes[i]);
    }
    out += "} ";
  }
  auto list = [&](char open, char close) {
    out += open;
    for (std::size_t i = 0; i < v.elements.size(); ++i) {
      out += (i ? ", " : "") + describe(v.elements[i]);
    }
    out += close;
  };
  switch (v.type) {
    case Value::Type::Simple:
      out += "+\"" + escaped(v.str) + '"';
      break;
    case Value::Type::Error:
      out += "-\"" + escaped(v.str) + '"';
      break;
    case Value::Type::Integer:
      out += ":" + std::to_string(v.integer);
      break;
    case Value::Type::Bulk:
      out += "$\"" + escaped(v.str) + '"';
      break;
    case Value::Type::Null:
      out += "nil";
      break;
    case Value::Type::Double:
      out += "," + v.str;
      break;
    case Value::Type::Boolean:
      out += v.integer ? "#t" : "#f";
      break;
    case Value::Type::Verbatim:
      out += "=" + v.format + ":\"" + escaped(v.str) + '"';
      break;
    case Value::Type::BigNumber:
      out += "(" + v.str;
      break;
    case Value::Type::Array:
      list('[', ']');
      break;
    case Value::Type::Map:
      out += '%';
      list('{', '}');
      break;
    case Value::Type::Set:
      out += '~';
      list('[', ']');
      break;
    case Value::Type::Push:
      out += '>';
      list('[', ']');
      break;
  }
  return out;
}

// The same rendering for a hiredis (RESP2) reply.
std::string describe(const redisReply* r) {
  switch (r->type) {
    case REDIS_REPLY_STATUS:
      return "+\"" + escaped({r->str, r->len}) + '"';
    case REDIS_REPLY_ERROR:
      return "-\"" + escaped({r->str, r->len}) + '"';
    case REDIS_REPLY_INTEGER:
      return ":" + std::to_string(r->integer);
    case REDIS_REPLY_STRING:
      return "$\"" + escaped({r->str, r->len}) + '"';
    case REDIS_REPLY_NIL:
      return "nil";
    case REDIS_REPLY_ARRAY: {
      std::string out = "[";
      for (std::size_t i = 0; i < r->elements; ++i)
        out += (i ? ", " : "") + describe(r->element[i]);
      return out + "]";
    }
  }
  return "?hiredis type " + std::to_string(r->type);
}

Value decode(std::string_view bytes) {
  Value v;
  const ParseResult r = parse_value(std::string(bytes), v);
  EXPECT_EQ(r.status, ParseStatus::Complete) << escaped(bytes) << " " << r.error;
  EXPECT_EQ(r.consumed, bytes.size()) << escaped(bytes);
  return v;
}

std::string decode_error(std::string_view bytes, const Limits& limits = {}) {
  Value v;
  const ParseResult r = parse_value(std::string(bytes), v, limits);
  EXPECT_EQ(r.status, ParseStatus::Error) << escaped(bytes);
  return std::string(r.error);
}

// ---------------------------------------------------------------------------------------
// Decoding

TEST(Value, Resp2Types) {
  EXPECT_EQ(describe(decode("+OK\r\n")), "+\"OK\"");
  EXPECT_EQ(describe(decode("-ERR unknown\r\n")), "-\"ERR unknown\"");
  EXPECT_EQ(decode(":-9223372036854775808\r\n").integer, std::numeric_limits<std::int64_t>::min());
  EXPECT_EQ(decode(":9223372036854775807\r\n").integer, std::numeric_limits<std::int64_t>::max());
  EXPECT_EQ(decode("$10\r\na\r\nb\0c\r\n\0\r\r\n"s).str, "a\r\nb\0c\r\n\0\r"s);
  EXPECT_EQ(describe(decode("$0\r\n\r\n")), "$\"\"");
  EXPECT_TRUE(decode("$-1\r\n").is_null());
  EXPECT_TRUE(decode("*-1\r\n").is_null());
  EXPECT_EQ(describe(decode("*0\r\n")), "[]");
  EXPECT_EQ(describe(decode("*3\r\n$3\r\nfoo\r\n*2\r\n:1\r\n$-1\r\n*0\r\n")),
            "[$\"foo\", [:1, nil], []]");
}

TEST(Value, Resp3Types) {
  EXPECT_TRUE(decode("_\r\n").is_null());
  const Value t = decode("#t\r\n");
  EXPECT_EQ(t.type, Value::Type::Boolean);
  EXPECT_EQ(t.integer, 1);
  EXPECT_EQ(decode("#f\r\n").integer, 0);

  const Value d = decode(",1.5\r\n");
  EXPECT_EQ(d.type, Value::Type::Double);
  EXPECT_EQ(d.dbl, 1.5);
  EXPECT_EQ(d.str, "1.5");
  EXPECT_EQ(decode(",-2.5e-3\r\n").dbl, -2.5e-3);
  EXPECT_EQ(decode(",1e+300\r\n").dbl, 1e300);
  EXPECT_EQ(decode(",+3\r\n").dbl, 3.0);
  EXPECT_EQ(decode(",10\r\n").dbl, 10.0);
  EXPECT_TRUE(std::isinf(decode(",inf\r\n").dbl));
  EXPECT_GT(decode(",inf\r\n").dbl, 0);
  EXPECT_LT(decode(",-inf\r\n").dbl, 0);
  EXPECT_TRUE(std::isnan(decode(",nan\r\n").dbl));

  const Value big = decode("(3492890328409238509324850943850943825024385\r\n");
  EXPECT_EQ(big.type, Value::Type::BigNumber);
  EXPECT_EQ(big.str, "3492890328409238509324850943850943825024385");
  EXPECT_EQ(decode("(-12\r\n").str, "-12");

  const Value verbatim = decode("=15\r\ntxt:Some string\r\n");
  EXPECT_EQ(verbatim.type, Value::Type::Verbatim);
  EXPECT_EQ(verbatim.format, "txt");
  EXPECT_EQ(verbatim.str, "Some string");
  EXPECT_EQ(decode("=4\r\nmkd:\r\n").str, "");

  const Value blob_error = decode("!21\r\nSYNTAX invalid syntax\r\n");
  EXPECT_TRUE(blob_error.is_error());
  EXPECT_EQ(blob_error.str, "SYNTAX invalid syntax");
  EXPECT_EQ(decode("!4\r\na\r\nb\r\n").str, "a\r\nb");

  EXPECT_EQ(describe(decode("%2\r\n+first\r\n:1\r\n$6\r\nsecond\r\n:2\r\n")),
            "%{+\"first\", :1, $\"second\", :2}");
  EXPECT_EQ(describe(decode("%0\r\n")), "%{}");
  EXPECT_EQ(describe(decode("~3\r\n:1\r\n+a\r\n_\r\n")), "~[:1, +\"a\", nil]");
  EXPECT_EQ(describe(decode(">3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$3\r\nhi!\r\n")),
            ">[$\"message\", $\"ch\", $\"hi!\"]");
}

TEST(Value, AttributesAttachToTheFollowingValue) {
  EXPECT_EQ(describe(decode("|1\r\n+ttl\r\n:3600\r\n:1\r\n")), "|{+\"ttl\", :3600} :1");
  EXPECT_EQ(
      describe(decode("|1\r\n+key-popularity\r\n%2\r\n$1\r\na\r\n,0.1923\r\n$1\r\nb\r\n,0.0012\r\n"
                      "*2\r\n:2039123\r\n:9543892\r\n")),
      "|{+\"key-popularity\", %{$\"a\", ,0.1923, $\"b\", ,0.0012}} [:2039123, :9543892]");
  EXPECT_EQ(describe(decode("*2\r\n|1\r\n+ttl\r\n:3600\r\n:1\r\n:2\r\n")),
            "[|{+\"ttl\", :3600} :1, :2]");
  EXPECT_EQ(describe(decode("|0\r\n+OK\r\n")), "+\"OK\"");
  // Two attribute maps in a row both annotate the value; an attribute inside an attribute
  // annotates its element there.
  EXPECT_EQ(describe(decode("|1\r\n+a\r\n|1\r\n+x\r\n+y\r\n+b\r\n|1\r\n+c\r\n+d\r\n:7\r\n")),
            "|{+\"a\", |{+\"x\", +\"y\"} +\"b\", +\"c\", +\"d\"} :7");
  const Value v = decode("|1\r\n+a\r\n+b\r\n_\r\n");
  EXPECT_TRUE(v.is_null());
  EXPECT_EQ(v.attributes.size(), 2u);
}

TEST(Value, DecodesOnlyTheFirstReply) {
  Value v;
  const ParseResult r = parse_value("+OK\r\n:1\r\n", v);
  ASSERT_EQ(r.status, ParseStatus::Complete);
  EXPECT_EQ(r.consumed, 5u);
  EXPECT_EQ(v.str, "OK");
}

TEST(Value, ReusedValueIsReplacedNotMerged) {
  Value v;
  ASSERT_EQ(parse_value("|1\r\n+a\r\n+b\r\n*2\r\n:1\r\n:2\r\n", v).status, ParseStatus::Complete);
  ASSERT_EQ(parse_value("+OK\r\n", v).status, ParseStatus::Complete);
  EXPECT_EQ(describe(v), "+\"OK\"");
}

TEST(Value, ContentErrors) {
  EXPECT_EQ(decode_error(":abc\r\n"), "Protocol error: invalid integer reply");
  EXPECT_EQ(decode_error(":\r\n"), "Protocol error: invalid integer reply");
  EXPECT_EQ(decode_error(":9223372036854775808\r\n"), "Protocol error: invalid integer reply");
  EXPECT_EQ(decode_error(":+1\r\n"), "Protocol error: invalid integer reply");
  EXPECT_EQ(decode_error("#x\r\n"), "Protocol error: invalid boolean reply");
  EXPECT_EQ(decode_error("#\r\n"), "Protocol error: invalid boolean reply");
  EXPECT_EQ(decode_error(",abc\r\n"), "Protocol error: invalid double reply");
  EXPECT_EQ(decode_error(",\r\n"), "Protocol error: invalid double reply");
  EXPECT_EQ(decode_error(",++1\r\n"), "Protocol error: invalid double reply");
  EXPECT_EQ(decode_error(",1.5x\r\n"), "Protocol error: invalid double reply");
  EXPECT_EQ(decode_error("_x\r\n"), "Protocol error: invalid null reply");
  EXPECT_EQ(decode_error("(12a\r\n"), "Protocol error: invalid big number reply");
  EXPECT_EQ(decode_error("(\r\n"), "Protocol error: invalid big number reply");
  EXPECT_EQ(decode_error("=3\r\nabc\r\n"), "Protocol error: invalid verbatim string reply");
  EXPECT_EQ(decode_error("=4\r\ntxt;\r\n"), "Protocol error: invalid verbatim string reply");
  // Inside aggregates and attributes too.
  EXPECT_EQ(decode_error("*2\r\n:1\r\n#x\r\n"), "Protocol error: invalid boolean reply");
  EXPECT_EQ(decode_error("|1\r\n:x\r\n+v\r\n+OK\r\n"), "Protocol error: invalid integer reply");
}

TEST(Value, FramingErrorsAndLimitsComeFromReplyParser) {
  EXPECT_EQ(decode_error("?\r\n"), "Protocol error: invalid reply type byte '?'");
  EXPECT_EQ(decode_error("$-5\r\n"), "Protocol error: invalid bulk length");
  EXPECT_EQ(decode_error("*-5\r\n"), "Protocol error: invalid multibulk length");
  EXPECT_EQ(decode_error("$3\r\nabcde"), "Protocol error: bulk payload not followed by CRLF");
  Limits limits;
  limits.max_reply_depth = 2;
  EXPECT_EQ(decode_error("*1\r\n*1\r\n*1\r\n:1\r\n", limits),
            "Protocol error: reply nesting too deep");
  limits.max_bulk_len = 2;
  EXPECT_EQ(decode_error("$3\r\nabc\r\n", limits), "Protocol error: invalid bulk length");
}

// Every reply of the corpus: each strict prefix is NeedMore (or the same error), the whole
// decodes to the same tree as when parsed alone.
std::vector<std::string> reply_corpus() {
  return {
      "+OK\r\n",
      "-ERR unknown command\r\n",
      ":42\r\n",
      "$5\r\nhello\r\n",
      "$5\r\n\r\n\0\r\n\r\n"s,
      "$-1\r\n",
      "*-1\r\n",
      "*0\r\n",
      "*4\r\n*2\r\n+a\r\n-b\r\n$0\r\n\r\n*1\r\n*0\r\n:-1\r\n",
      "_\r\n",
      "#t\r\n",
      ",3.25\r\n",
      ",-inf\r\n",
      ",nan\r\n",
      "(12345678901234567890123\r\n",
      "=10\r\ntxt:a\r\nb\r\n\r\n",
      "!9\r\nERR\r\nboom\r\n",
      "%2\r\n+a\r\n*1\r\n:1\r\n$1\r\nb\r\n%1\r\n+c\r\n~0\r\n",
      "~2\r\n#f\r\n_\r\n",
      ">2\r\n+pubsub\r\n*1\r\n$1\r\nx\r\n",
      "|2\r\n+a\r\n:1\r\n+b\r\n|1\r\n+c\r\n+d\r\n:2\r\n*2\r\n|1\r\n+e\r\n+f\r\n+x\r\n_\r\n",
  };
}

TEST(Value, CorpusSplitAtEveryByte) {
  for (const std::string& bytes : reply_corpus()) {
    SCOPED_TRACE(escaped(bytes));
    const std::string whole = describe(decode(bytes));
    for (std::size_t k = 0; k < bytes.size(); ++k) {
      Value v;
      EXPECT_EQ(parse_value(std::string(bytes, 0, k), v).status, ParseStatus::NeedMore) << k;
    }
    Value again;
    ASSERT_EQ(parse_value(bytes + "+next\r\n", again).consumed, bytes.size());
    EXPECT_EQ(describe(again), whole);
  }
}

// ---------------------------------------------------------------------------------------
// find and to_string

TEST(Value, FindInMapAndFlatArray) {
  const Value map = decode("%3\r\n+server\r\n+redis\r\n$5\r\nproto\r\n:3\r\n:7\r\n+int key\r\n");
  ASSERT_NE(map.find("server"), nullptr);
  EXPECT_EQ(map.find("server")->str, "redis");
  ASSERT_NE(map.find("proto"), nullptr);
  EXPECT_EQ(map.find("proto")->integer, 3);
  EXPECT_EQ(map.find("7"), nullptr);      // integer keys are not string keys
  EXPECT_EQ(map.find("redis"), nullptr);  // values are not keys
  EXPECT_EQ(map.find("missing"), nullptr);

  // RESP2 HELLO: the same pairs as a flat array.
  const Value array = decode("*4\r\n$6\r\nserver\r\n$5\r\nredis\r\n$5\r\nproto\r\n:2\r\n");
  ASSERT_NE(array.find("proto"), nullptr);
  EXPECT_EQ(array.find("proto")->integer, 2);
  EXPECT_EQ(decode("*1\r\n+lonely\r\n").find("lonely"), nullptr);

  EXPECT_EQ(decode("+server\r\n").find("server"), nullptr);
  EXPECT_EQ(decode("~2\r\n+a\r\n+b\r\n").find("a"), nullptr);
}

TEST(Value, ToStringLikeRedisCli) {
  EXPECT_EQ(to_string(decode("+OK\r\n")), "OK");
  EXPECT_EQ(to_string(decode("-ERR no\r\n")), "(error) ERR no");
  EXPECT_EQ(to_string(decode("!3\r\nERR\r\n")), "(error) ERR");
  EXPECT_EQ(to_string(decode(":-5\r\n")), "(integer) -5");
  EXPECT_EQ(to_string(decode("$5\r\nhello\r\n")), "\"hello\"");
  EXPECT_EQ(to_string(decode("$6\r\na\"\\\r\n\0\r\n"s)), "\"a\\\"\\\\\\r\\n\\x00\"");
  EXPECT_EQ(to_string(decode("$-1\r\n")), "(nil)");
  EXPECT_EQ(to_string(decode("_\r\n")), "(nil)");
  EXPECT_EQ(to_string(decode(",1.5\r\n")), "(double) 1.5");
  EXPECT_EQ(to_string(decode("#t\r\n")), "(true)");
  EXPECT_EQ(to_string(decode("#f\r\n")), "(false)");
  EXPECT_EQ(to_string(decode("(123\r\n")), "(big number) 123");
  EXPECT_EQ(to_string(decode("=9\r\ntxt:hello\r\n")), "hello");
  EXPECT_EQ(to_string(decode("*0\r\n")), "(empty array)");
  EXPECT_EQ(to_string(decode("%0\r\n")), "(empty hash)");
  EXPECT_EQ(to_string(decode("~0\r\n")), "(empty set)");
  EXPECT_EQ(to_string(decode(">0\r\n")), "(empty push)");
  EXPECT_EQ(to_string(decode("*2\r\n$1\r\na\r\n:1\r\n")), "1) \"a\"\n2) (integer) 1");
  EXPECT_EQ(to_string(decode("*2\r\n*2\r\n+a\r\n+b\r\n+c\r\n")), "1) 1) a\n   2) b\n2) c");
  EXPECT_EQ(to_string(decode("%2\r\n+k1\r\n:1\r\n+k2\r\n*2\r\n+a\r\n+b\r\n")),
            "1# k1 => (integer) 1\n2# k2 => 1) a\n   2) b");
  EXPECT_EQ(to_string(decode("~2\r\n+a\r\n+b\r\n")), "1~ a\n2~ b");
  EXPECT_EQ(to_string(decode(">2\r\n+message\r\n+x\r\n")), "1) message\n2) x");
  std::string ten = "*10\r\n";
  for (int i = 0; i < 10; ++i) ten += ":" + std::to_string(i) + "\r\n";
  const std::string rendered = to_string(decode(ten));
  EXPECT_EQ(rendered.substr(0, 15), " 1) (integer) 0");
  EXPECT_EQ(rendered.substr(rendered.size() - 15), "10) (integer) 9");
  EXPECT_EQ(to_string(decode("|1\r\n+ttl\r\n:3600\r\n:1\r\n")),
            "(attributes) 1# ttl => (integer) 3600\n(integer) 1");
}

// ---------------------------------------------------------------------------------------
// Differential against hiredis (RESP2 only in hiredis 0.14)

struct ReaderDeleter {
  void operator()(redisReader* r) const { redisReaderFree(r); }
};
struct ReplyDeleter {
  void operator()(redisReply* r) const { freeReplyObject(r); }
};
using ReaderPtr = std::unique_ptr<redisReader, ReaderDeleter>;
using ReplyPtr = std::unique_ptr<redisReply, ReplyDeleter>;

// What hiredis makes of `bytes`: the first reply (null if incomplete) and the bytes it used.
struct HiredisResult {
  ReplyPtr reply;
  std::size_t consumed = 0;
};

HiredisResult hiredis_parse(std::string_view bytes) {
  ReaderPtr reader(redisReaderCreate());
  HiredisResult result;
  if (!bytes.empty()) {
    EXPECT_EQ(redisReaderFeed(reader.get(), bytes.data(), bytes.size()), REDIS_OK);
  }
  void* reply = nullptr;
  EXPECT_EQ(redisReaderGetReply(reader.get(), &reply), REDIS_OK) << reader->errstr;
  result.reply.reset(static_cast<redisReply*>(reply));
  // hiredis may compact its buffer after a reply, so count what is left rather than pos.
  if (reply != nullptr) result.consumed = bytes.size() - (reader->len - reader->pos);
  return result;
}

// Checks that hiredis and we agree on `reply` followed by `next`: the boundary, the tree,
// and that strict prefixes at `cuts` are incomplete for both.
void check_against_hiredis(const std::string& reply, const std::string& next,
                           const std::vector<std::size_t>& cuts) {
  SCOPED_TRACE(escaped(reply));
  const std::string both = reply + next;

  const HiredisResult theirs = hiredis_parse(both);
  ASSERT_NE(theirs.reply, nullptr);
  EXPECT_EQ(theirs.consumed, reply.size());

  ReplyParser parser;
  ReplyInfo info;
  const ParseResult framed = parser.parse(both, info);
  ASSERT_EQ(framed.status, ParseStatus::Complete) << framed.error;
  EXPECT_EQ(framed.consumed, theirs.consumed);
  EXPECT_EQ(info.type, reply[0]);
  EXPECT_EQ(info.is_null, theirs.reply->type == REDIS_REPLY_NIL);

  Value ours;
  const ParseResult decoded = parse_value(both, ours);
  ASSERT_EQ(decoded.status, ParseStatus::Complete) << decoded.error;
  EXPECT_EQ(decoded.consumed, theirs.consumed);
  EXPECT_EQ(describe(ours), describe(theirs.reply.get()));

  for (std::size_t k : cuts) {
    const std::string prefix = reply.substr(0, k);
    EXPECT_EQ(hiredis_parse(prefix).reply, nullptr) << "hiredis, cut at " << k;
    ReplyParser fresh;
    EXPECT_EQ(fresh.parse(prefix, info).status, ParseStatus::NeedMore) << "cut at " << k;
  }
}

std::vector<std::size_t> all_cuts(std::size_t size) {
  std::vector<std::size_t> cuts;
  for (std::size_t k = 0; k < size; ++k) cuts.push_back(k);
  return cuts;
}

TEST(HiredisDifferential, Resp2Corpus) {
  const std::vector<std::string> corpus = {
      "+OK\r\n",
      "+\r\n",
      "-ERR wrong number of arguments for 'get' command\r\n",
      "-\r\n",
      ":0\r\n",
      ":-1\r\n",
      ":9223372036854775807\r\n",
      ":-9223372036854775808\r\n",
      "$0\r\n\r\n",
      "$5\r\nhello\r\n",
      "$11\r\n\r\n\0\r\n\r\n\xff\x01\r\n\r\n"s,
      "$-1\r\n",
      "*-1\r\n",
      "*0\r\n",
      "*1\r\n*0\r\n",
      "*3\r\n:1\r\n:2\r\n:3\r\n",
      "*2\r\n$3\r\nfoo\r\n$-1\r\n",
      "*5\r\n+a\r\n-b\r\n:3\r\n$1\r\nd\r\n*-1\r\n",
      "*2\r\n*2\r\n*2\r\n*1\r\n*1\r\n*1\r\n:7\r\n*0\r\n*0\r\n*0\r\n",
      "*3\r\n*2\r\n$3\r\nkey\r\n$5\r\nvalue\r\n*0\r\n*1\r\n-ERR inner\r\n",
  };
  for (const std::string& reply : corpus) {
    check_against_hiredis(reply, "+next\r\n", all_cuts(reply.size()));
  }
}

// Random RESP2 replies: nested arrays (hiredis 0.14 supports 7 levels; we stay within 5),
// binary bulks, extreme integers, nulls and empty aggregates.
class Resp2Generator {
 public:
  explicit Resp2Generator(std::uint32_t seed) : rng_(seed) {}

  std::string reply() {
    std::string out;
    append_reply(out, 0);
    return out;
  }

  std::mt19937& rng() { return rng_; }

 private:
  std::size_t below(std::size_t n) { return rng_() % n; }

  std::string line_text(std::size_t max_len) {
    std::string s;
    const std::size_t len = below(max_len + 1);
    for (std::size_t i = 0; i < len; ++i) s += static_cast<char>(0x20 + below(0x5f));
    return s;
  }

  std::string binary(std::size_t max_len) {
    static constexpr char kTricky[] = {'\r', '\n', '\0', '$', '*', ':', '\xff'};
    std::string s;
    const std::size_t len = below(max_len + 1);
    for (std::size_t i = 0; i < len; ++i) {
      s += below(3) == 0 ? kTricky[below(sizeof kTricky)] : static_cast<char>(rng_());
    }
    return s;
  }

  std::int64_t integer() {
    switch (below(5)) {
      case 0:
        return std::numeric_limits<std::int64_t>::min();
      case 1:
        return std::numeric_limits<std::int64_t>::max();
      case 2:
        return static_cast<std::int64_t>(below(21)) - 10;
      default:
        return static_cast<std::int64_t>((std::uint64_t{rng_()} << 32) | rng_());
    }
  }

  void append_reply(std::string& out, int depth) {
    const std::size_t kinds = depth < 5 ? 9 : 6;
    switch (below(kinds)) {
      case 0:
        out += "+" + line_text(12) + "\r\n";
        break;
      case 1:
        out += "-ERR " + line_text(20) + "\r\n";
        break;
      case 2:
        out += ":" + std::to_string(integer()) + "\r\n";
        break;
      case 3:
      case 4: {
        const std::string payload = binary(24);
        out += "$" + std::to_string(payload.size()) + "\r\n" + payload + "\r\n";
        break;
      }
      case 5:
        out += below(2) ? "$-1\r\n" : "*-1\r\n";
        break;
      default: {
        const std::size_t n = below(5);
        out += "*" + std::to_string(n) + "\r\n";
        for (std::size_t i = 0; i < n; ++i) append_reply(out, depth + 1);
      }
    }
  }

  std::mt19937 rng_;
};

TEST(HiredisDifferential, RandomNestedResp2Replies) {
  Resp2Generator gen(20240601);
  int arrays = 0;
  for (int i = 0; i < 3000; ++i) {
    const std::string reply = gen.reply();
    const std::string next = gen.reply();
    if (reply[0] == '*' && reply != "*-1\r\n") ++arrays;
    std::vector<std::size_t> cuts;
    if (reply.size() <= 48) {
      cuts = all_cuts(reply.size());
    } else {
      for (int c = 0; c < 12; ++c) cuts.push_back(gen.rng()() % reply.size());
    }
    check_against_hiredis(reply, next, cuts);
    if (::testing::Test::HasFailure()) break;  // one clear failure beats thousands
  }
  EXPECT_GT(arrays, 500);  // the generator really produced nested replies
}

TEST(HiredisDifferential, RandomPipelineBoundaries) {
  // Many replies back to back: hiredis and ReplyParser cut the stream at the same places.
  Resp2Generator gen(99);
  std::string stream;
  for (int i = 0; i < 500; ++i) stream += gen.reply();

  ReaderPtr reader(redisReaderCreate());
  ASSERT_EQ(redisReaderFeed(reader.get(), stream.data(), stream.size()), REDIS_OK);
  ReplyParser parser;
  ReplyInfo info;
  std::size_t offset = 0;
  for (int i = 0; i < 500; ++i) {
    void* raw = nullptr;
    ASSERT_EQ(redisReaderGetReply(reader.get(), &raw), REDIS_OK);
    ReplyPtr theirs(static_cast<redisReply*>(raw));
    ASSERT_NE(theirs, nullptr);
    const std::size_t theirs_end = stream.size() - (reader->len - reader->pos);

    const ParseResult r = parser.parse(std::string_view(stream).substr(offset), info);
    ASSERT_EQ(r.status, ParseStatus::Complete);
    Value ours;
    ASSERT_EQ(parse_value(std::string_view(stream).substr(offset), ours).consumed, r.consumed);
    offset += r.consumed;
    ASSERT_EQ(offset, theirs_end) << "reply " << i;
    ASSERT_EQ(describe(ours), describe(theirs.get())) << "reply " << i;
  }
  EXPECT_EQ(offset, stream.size());
}

}  // namespace
}  // namespace respguard::resp
