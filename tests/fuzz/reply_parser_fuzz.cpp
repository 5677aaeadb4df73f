// libFuzzer target: resp::ReplyParser (frames every upstream reply on the data path) and
// resp::parse_value (decodes replies on the control plane).
//
// Input: [limits byte][read plan bytes...][upstream stream]. As in request_parser_fuzz.cpp the
// stream is framed whole (replies taken off the front one by one) and in reads (a fresh,
// exactly sized buffer for every call), and both must find the same replies, types and errors:
// a reply parser has no limit that depends on how the bytes arrived. Then for every position
// where the whole run parsed, parse_value must agree with the framer: the same boundary (or an
// Error for contents the framer does not check), the same null-ness and error-ness, NeedMore and
// framing errors alike. A decoded value, written back as RESP3, must decode to the same value,
// and must render (to_string) without trouble.
#include <charconv>
#include <string>
#include <vector>

#include "fuzz_support.hpp"
#include "respguard/resp/parser.hpp"
#include "respguard/resp/value.hpp"

namespace {

using respguard::fuzz::Control;
using respguard::fuzz::ExactBuffer;
using namespace respguard::resp;

struct Outcome {
  ParseStatus status = ParseStatus::NeedMore;
  std::size_t consumed = 0;
  char type = 0;
  bool is_null = false;
  std::string error;
  bool operator==(const Outcome&) const = default;
};

bool starts_with(std::string_view s, std::string_view prefix) {
  return s.substr(0, prefix.size()) == prefix;
}

Outcome checked_parse(ReplyParser& parser, std::string_view input) {
  ReplyInfo info;
  const ParseResult r = parser.parse(input, info);
  Outcome o;
  o.status = r.status;
  switch (r.status) {
    case ParseStatus::NeedMore:
      FUZZ_CHECK(r.consumed == 0);
      break;
    case ParseStatus::Error:
      FUZZ_CHECK(r.consumed == 0);
      FUZZ_CHECK(starts_with(r.error, "Protocol error: "));
      o.error = std::string(r.error);
      break;
    case ParseStatus::Complete:
      FUZZ_CHECK(r.consumed >= 3);  // the shortest reply is a type byte and CRLF: "_\r\n"
      FUZZ_CHECK(r.consumed <= input.size());
      FUZZ_CHECK(input[r.consumed - 2] == '\r' && input[r.consumed - 1] == '\n');
      FUZZ_CHECK(info.type != '|' && info.type != 0);
      o.consumed = r.consumed;
      o.type = info.type;
      o.is_null = info.is_null;
      break;
  }
  return o;
}

std::vector<Outcome> parse_whole(std::string_view stream, const Limits& limits,
                                 std::vector<std::size_t>& starts) {
  std::vector<Outcome> outcomes;
  const ExactBuffer buffer(stream);
  std::string_view rest = buffer.view();
  ReplyParser parser(limits);
  while (true) {
    starts.push_back(stream.size() - rest.size());
    Outcome o = checked_parse(parser, rest);
    const ParseStatus status = o.status;
    if (status == ParseStatus::Complete) rest.remove_prefix(o.consumed);
    outcomes.push_back(std::move(o));
    if (status != ParseStatus::Complete) return outcomes;
  }
}

std::vector<Outcome> parse_in_reads(std::string_view stream, const std::vector<std::size_t>& ends,
                                    const Limits& limits) {
  std::vector<Outcome> outcomes;
  ReplyParser parser(limits);
  std::size_t start = 0;
  for (std::size_t end : ends) {
    while (true) {
      const ExactBuffer buffer(stream.substr(start, end - start));
      Outcome o = checked_parse(parser, buffer.view());
      if (o.status == ParseStatus::NeedMore) break;
      const ParseStatus status = o.status;
      if (status == ParseStatus::Complete) start += o.consumed;
      outcomes.push_back(std::move(o));
      if (status == ParseStatus::Error) return outcomes;
    }
  }
  outcomes.push_back(Outcome{});
  return outcomes;
}

// RESP3 for a decoded value (the encoding parse_value must read back to the same value).
void encode(std::string& out, const Value& v) {
  auto header = [&](char type, std::size_t n) {
    out += type;
    char buf[24];
    out.append(buf, std::to_chars(buf, buf + sizeof buf, n).ptr);
    out += "\r\n";
  };
  auto blob = [&](char type, std::string_view s) {
    header(type, s.size());
    out += s;
    out += "\r\n";
  };
  if (!v.attributes.empty()) {
    header('|', v.attributes.size() / 2);
    for (const Value& a : v.attributes) encode(out, a);
  }
  switch (v.type) {
    case Value::Type::Simple:
      out += '+' + v.str + "\r\n";
      break;
    case Value::Type::Error:
      blob('!', v.str);
      break;
    case Value::Type::Integer:
      out += ':' + std::to_string(v.integer) + "\r\n";
      break;
    case Value::Type::Bulk:
      blob('$', v.str);
      break;
    case Value::Type::Null:
      out += "_\r\n";
      break;
    case Value::Type::Double:
      out += ',' + v.str + "\r\n";
      break;
    case Value::Type::Boolean:
      out += v.integer != 0 ? "#t\r\n" : "#f\r\n";
      break;
    case Value::Type::Verbatim:
      blob('=', v.format + ':' + v.str);
      break;
    case Value::Type::BigNumber:
      out += '(' + v.str + "\r\n";
      break;
    case Value::Type::Array:
    case Value::Type::Set:
    case Value::Type::Push:
    case Value::Type::Map: {
      const char type = v.type == Value::Type::Array ? '*'
                        : v.type == Value::Type::Set ? '~'
                        : v.type == Value::Type::Push ? '>'
                                                      : '%';
      header(type, type == '%' ? v.elements.size() / 2 : v.elements.size());
      for (const Value& e : v.elements) encode(out, e);
      break;
    }
  }
}

bool same(const Value& a, const Value& b) {
  if (a.type != b.type || a.str != b.str || a.format != b.format || a.integer != b.integer ||
      a.elements.size() != b.elements.size() || a.attributes.size() != b.attributes.size()) {
    return false;
  }
  // Doubles: str holds the text as sent, dbl is derived from it (and NaN != NaN).
  for (std::size_t i = 0; i < a.elements.size(); ++i) {
    if (!same(a.elements[i], b.elements[i])) return false;
  }
  for (std::size_t i = 0; i < a.attributes.size(); ++i) {
    if (!same(a.attributes[i], b.attributes[i])) return false;
  }
  return true;
}

// parse_value at one position of the stream agrees with the framer's verdict there.
void check_decoder(std::string_view input, const Outcome& framed, const Limits& limits) {
  const ExactBuffer buffer(input);
  Value v;
  const ParseResult r = parse_value(buffer.view(), v, limits);
  switch (framed.status) {
    case ParseStatus::NeedMore:
      FUZZ_CHECK(r.status == ParseStatus::NeedMore);
      return;
    case ParseStatus::Error:
      FUZZ_CHECK(r.status == ParseStatus::Error);
      FUZZ_CHECK(r.error == framed.error);
      return;
    case ParseStatus::Complete:
      break;
  }
  if (r.status == ParseStatus::Error) {
    FUZZ_CHECK(starts_with(r.error, "Protocol error: "));
    return;  // contents the framer does not validate (":abc", "#x", ...)
  }
  FUZZ_CHECK(r.status == ParseStatus::Complete);
  FUZZ_CHECK(r.consumed == framed.consumed);
  FUZZ_CHECK(v.is_null() == framed.is_null);
  FUZZ_CHECK(v.is_error() == (framed.type == '-' || framed.type == '!'));
  (void)to_string(v);

  std::string encoded;
  encode(encoded, v);
  const ExactBuffer again(encoded);
  Value w;
  // Default limits: a '-' error comes back as a '!' blob, which may exceed a small bulk limit.
  const ParseResult r2 = parse_value(again.view(), w);
  FUZZ_CHECK(r2.status == ParseStatus::Complete);
  FUZZ_CHECK(r2.consumed == encoded.size());
  FUZZ_CHECK(same(v, w));
}

Limits limits_from(std::uint8_t b) {
  Limits limits;
  if ((b & 1) == 0) return limits;
  limits.max_bulk_len = (b >> 1) % 32;
  limits.max_multibulk_len = (b >> 3) % 8;
  limits.max_reply_depth = 1 + (b >> 5);
  return limits;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  Control control(data, size);
  const Limits limits = limits_from(control.byte());
  const std::vector<std::size_t> plan = respguard::fuzz::read_plan(control);
  const std::string_view stream = control.rest();

  std::vector<std::size_t> starts;
  const std::vector<Outcome> whole = parse_whole(stream, limits, starts);
  const std::vector<Outcome> reads =
      parse_in_reads(stream, respguard::fuzz::read_ends(plan, stream.size()), limits);
  FUZZ_CHECK(reads == whole);

  for (std::size_t i = 0; i < whole.size(); ++i) {
    check_decoder(stream.substr(starts[i]), whole[i], limits);
  }
  return 0;
}
