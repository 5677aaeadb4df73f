// Appends RESP to an output buffer. Header-only; used by local replies and re-encoded commands.
#pragma once

#include <charconv>
#include <cstdint>
#include <initializer_list>
#include <span>
#include <string>
#include <string_view>

namespace respguard::resp {

inline void append_number(std::string& out, std::int64_t n) {
  char buf[24];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, n);
  out.append(buf, end);
}

inline void write_simple(std::string& out, std::string_view s) {
  out += '+';
  out += s;
  out += "\r\n";
}

// `message` is the full error text including its code, e.g. "ERR unknown command".
inline void write_error(std::string& out, std::string_view message) {
  out += '-';
  out += message;
  out += "\r\n";
}

inline void write_integer(std::string& out, std::int64_t n) {
  out += ':';
  append_number(out, n);
  out += "\r\n";
}

inline void write_bulk(std::string& out, std::string_view s) {
  out += '$';
  append_number(out, static_cast<std::int64_t>(s.size()));
  out += "\r\n";
  out += s;
  out += "\r\n";
}

// Null in the client's protocol: "$-1" in RESP2, "_" in RESP3.
inline void write_null(std::string& out, int proto) {
  out += proto >= 3 ? "_\r\n" : "$-1\r\n";
}

inline void write_array_header(std::string& out, std::size_t n) {
  out += '*';
  append_number(out, static_cast<std::int64_t>(n));
  out += "\r\n";
}

// A map of n pairs: "%n" in RESP3, an array of 2n elements in RESP2 (as Redis does).
inline void write_map_header(std::string& out, std::size_t pairs, int proto) {
  out += proto >= 3 ? '%' : '*';
  append_number(out, static_cast<std::int64_t>(proto >= 3 ? pairs : pairs * 2));
  out += "\r\n";
}

// Verbatim text ("=len\r\ntxt:...") in RESP3, a bulk string in RESP2 (as Redis does for INFO).
inline void write_verbatim(std::string& out, std::string_view text, int proto) {
  if (proto < 3) return write_bulk(out, text);
  out += '=';
  append_number(out, static_cast<std::int64_t>(text.size() + 4));
  out += "\r\ntxt:";
  out += text;
  out += "\r\n";
}

// A command as an array of bulk strings.
template <typename Range>
inline void write_command(std::string& out, const Range& args) {
  write_array_header(out, std::size(args));
  for (std::string_view a : args) write_bulk(out, a);
}

inline void write_command(std::string& out, std::initializer_list<std::string_view> args) {
  write_command<std::initializer_list<std::string_view>>(out, args);
}

}  // namespace respguard::resp
