// libFuzzer target: resp::RequestParser, the parser every client byte goes through.
//
// Input: [limits byte][read plan bytes...][client stream]. The stream is parsed twice, as a
// connection would see it:
//   - whole: all bytes in one buffer, requests taken off the front one by one (pipelining);
//   - in reads: the bytes arrive in the pieces the read plan says, each call gets a fresh,
//     exactly sized heap buffer holding the current request's bytes so far (the buffer moves
//     between calls, as an IoBuffer that grows does).
// Checked on every call: consumed <= input size and > 0 on Complete (progress); an Error has
// Redis's "Protocol error: ..." text; NeedMore's bytes_hint() is more than the input and no more
// than the request turns out to be; the args of an array request are views inside its bytes and
// raw is exactly its bytes. Across the two runs: the same requests, args and errors — except that
// a "too big" error may come earlier in reads (Redis too decides on the bytes it has read).
// Every complete request, re-encoded as an array of bulk strings, must parse back to the same
// arguments.
#include <string>
#include <vector>

#include "fuzz_support.hpp"
#include "respguard/resp/parser.hpp"
#include "respguard/resp/writer.hpp"

namespace {

using respguard::fuzz::Control;
using respguard::fuzz::ExactBuffer;
using namespace respguard::resp;

struct Outcome {
  ParseStatus status = ParseStatus::NeedMore;
  std::size_t consumed = 0;
  std::vector<std::string> args;
  bool inline_form = false;
  std::string error;
  bool operator==(const Outcome&) const = default;
};

bool starts_with(std::string_view s, std::string_view prefix) {
  return s.substr(0, prefix.size()) == prefix;
}

// Checks one parse() call on `input` (the bytes of the current request so far and maybe more)
// and returns what it said. `hint` is the bytes_hint() of the previous NeedMore for this
// request (0: none).
Outcome checked_parse(RequestParser& parser, std::string_view input, Command& cmd,
                      std::size_t hint) {
  const ParseResult r = parser.parse(input, cmd);
  Outcome o;
  o.status = r.status;
  switch (r.status) {
    case ParseStatus::NeedMore:
      FUZZ_CHECK(r.consumed == 0);
      FUZZ_CHECK(parser.bytes_hint() > input.size());
      break;
    case ParseStatus::Error:
      FUZZ_CHECK(r.consumed == 0);
      FUZZ_CHECK(starts_with(r.error, "Protocol error: "));
      o.error = std::string(r.error);
      break;
    case ParseStatus::Complete: {
      FUZZ_CHECK(r.consumed > 0);
      FUZZ_CHECK(r.consumed <= input.size());
      FUZZ_CHECK(r.consumed >= hint);  // the hint was a lower bound of the request's size
      FUZZ_CHECK(cmd.raw.data() == input.data() && cmd.raw.size() == r.consumed);
      o.consumed = r.consumed;
      o.inline_form = cmd.inline_form;
      if (cmd.inline_form) {
        FUZZ_CHECK(cmd.raw.back() == '\n');
        FUZZ_CHECK(input[0] != '*');
      } else {
        FUZZ_CHECK(input[0] == '*');
      }
      for (std::string_view a : cmd.args) {
        if (!cmd.inline_form) {
          // Zero-copy: each argument is a view into the request's own bytes.
          FUZZ_CHECK(a.data() >= input.data() + 1);
          FUZZ_CHECK(a.data() + a.size() <= input.data() + r.consumed);
        } else {
          FUZZ_CHECK(a.size() < r.consumed);  // unescaping never makes an argument longer
        }
        o.args.emplace_back(a);  // reads every byte: ASan checks the view
      }
      break;
    }
  }
  return o;
}

// All of the stream in one buffer.
std::vector<Outcome> parse_whole(std::string_view stream, const Limits& limits) {
  std::vector<Outcome> outcomes;
  const ExactBuffer buffer(stream);
  std::string_view rest = buffer.view();
  RequestParser parser(limits);
  Command cmd;
  while (true) {
    Outcome o = checked_parse(parser, rest, cmd, 0);
    const ParseStatus status = o.status;
    if (status == ParseStatus::Complete) rest.remove_prefix(o.consumed);
    outcomes.push_back(std::move(o));
    if (status != ParseStatus::Complete) return outcomes;
  }
}

// The stream arriving in reads that end at `ends`.
std::vector<Outcome> parse_in_reads(std::string_view stream, const std::vector<std::size_t>& ends,
                                    const Limits& limits) {
  std::vector<Outcome> outcomes;
  RequestParser parser(limits);
  Command cmd;
  std::size_t start = 0;  // first byte of the current request
  std::size_t hint = 0;
  for (std::size_t end : ends) {
    while (true) {
      // A fresh buffer for every call: the parser must not keep pointers into the last one.
      const ExactBuffer buffer(stream.substr(start, end - start));
      Outcome o = checked_parse(parser, buffer.view(), cmd, hint);
      if (o.status == ParseStatus::NeedMore) {
        hint = parser.bytes_hint();
        break;  // wait for the next read
      }
      const ParseStatus status = o.status;
      if (status == ParseStatus::Complete) start += o.consumed;
      hint = 0;
      outcomes.push_back(std::move(o));
      if (status == ParseStatus::Error) return outcomes;
    }
  }
  outcomes.push_back(Outcome{});  // NeedMore at the end of the stream
  return outcomes;
}

// A complete request re-encoded as an array of bulk strings parses back to the same args.
void check_reencoding(const Outcome& o) {
  if (o.status != ParseStatus::Complete || o.args.empty()) return;
  std::string encoded;
  write_command(encoded, o.args);
  const ExactBuffer buffer(encoded);
  RequestParser parser;
  Command cmd;
  const ParseResult r = parser.parse(buffer.view(), cmd);
  FUZZ_CHECK(r.status == ParseStatus::Complete);
  FUZZ_CHECK(r.consumed == encoded.size());
  FUZZ_CHECK(!cmd.inline_form);
  FUZZ_CHECK(cmd.args.size() == o.args.size());
  for (std::size_t i = 0; i < o.args.size(); ++i) FUZZ_CHECK(cmd.args[i] == o.args[i]);
}

Limits limits_from(std::uint8_t b) {
  Limits limits;
  if ((b & 1) == 0) return limits;  // Redis's defaults
  // Small limits, so that the limit checks are reached with small inputs.
  limits.max_inline_len = 1 + (b >> 1) % 64;
  limits.max_bulk_len = (b >> 3) % 32;
  limits.max_multibulk_len = 1 + (b >> 5);
  return limits;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  Control control(data, size);
  const Limits limits = limits_from(control.byte());
  const std::vector<std::size_t> plan = respguard::fuzz::read_plan(control);
  const std::string_view stream = control.rest();

  const std::vector<Outcome> whole = parse_whole(stream, limits);
  const std::vector<Outcome> reads =
      parse_in_reads(stream, respguard::fuzz::read_ends(plan, stream.size()), limits);

  // The same outcomes, except that an over-long line may fail earlier when it arrives in
  // pieces (no terminator yet); then that error is the last outcome of the run in reads.
  std::size_t i = 0;
  while (i < reads.size() && i < whole.size() && reads[i] == whole[i]) ++i;
  if (i < reads.size()) {
    FUZZ_CHECK(i + 1 == reads.size());
    FUZZ_CHECK(reads[i].status == ParseStatus::Error);
    FUZZ_CHECK(starts_with(reads[i].error, "Protocol error: too big"));
  } else {
    FUZZ_CHECK(i == whole.size());
  }

  for (const Outcome& o : whole) check_reencoding(o);
  return 0;
}
