// The data path: every data type, binary and large values, pipelining, many clients. Results
// are checked through the proxy and, where it proves the command really reached Redis, directly
// on the redis-server.
#include <algorithm>
#include <cstring>
#include <latch>
#include <thread>

#include "harness.hpp"

namespace {

using namespace rgtest;
using namespace std::string_literals;

class Proxy : public SharedProxyTest {};

// Bytes that differ at every offset for a long stretch, so a truncated, shifted or partly
// overwritten value never compares equal by accident.
std::string pattern(std::size_t size) {
  std::string out(size, '\0');
  for (std::size_t i = 0; i < size; ++i) out[i] = static_cast<char>((i * 131 + i / 251) & 0xff);
  return out;
}

void expect_big_value_round_trip(Client& client, int redis_port, const std::string& key,
                                 std::size_t size) {
  std::string value = pattern(size);
  ASSERT_EQ(client.run({"SET", key, value}), "+OK");
  Reply reply = client.command({"GET", key});
  ASSERT_TRUE(reply) << client.error();
  ASSERT_EQ(reply->type, REDIS_REPLY_STRING);
  ASSERT_EQ(reply->len, size);
  EXPECT_EQ(std::memcmp(reply->str, value.data(), size), 0) << "value bytes differ";
  Client direct(redis_port);
  EXPECT_EQ(direct.run({"STRLEN", key}), ":" + std::to_string(size));
}

TEST_F(Proxy, StringCommandsRoundTrip) {
  Client c(port());
  ASSERT_TRUE(c.connected()) << c.error();
  std::string k = key("s");
  EXPECT_EQ(c.run({"SET", k, "hello"}), "+OK");
  EXPECT_EQ(c.run({"GET", k}), "$hello");
  EXPECT_EQ(c.run({"APPEND", k, " world"}), ":11");
  EXPECT_EQ(c.run({"GETRANGE", k, "0", "4"}), "$hello");
  EXPECT_EQ(c.run({"STRLEN", k}), ":11");
  EXPECT_EQ(c.run({"SET", k, "other", "NX"}), "(nil)");
  EXPECT_EQ(c.run({"GETSET", k, "new"}), "$hello world");

  std::string n = key("n");
  EXPECT_EQ(c.run({"INCRBY", n, "41"}), ":41");
  EXPECT_EQ(c.run({"INCR", n}), ":42");
  EXPECT_EQ(c.run({"INCRBYFLOAT", n, "0.5"}), "$42.5");
  EXPECT_EQ(c.run({"INCR", k}), "-ERR value is not an integer or out of range");

  EXPECT_EQ(c.run({"MSET", key("a"), "1", key("b"), "2"}), "+OK");
  EXPECT_EQ(c.run({"MGET", key("a"), key("missing"), key("b")}), "[$1, (nil), $2]");

  EXPECT_EQ(c.run({"SET", k, "x", "PX", "100000"}), "+OK");
  Reply pttl = c.command({"PTTL", k});
  ASSERT_TRUE(pttl);
  ASSERT_EQ(pttl->type, REDIS_REPLY_INTEGER);
  EXPECT_GT(pttl->integer, 0);
  EXPECT_LE(pttl->integer, 100000);

  EXPECT_EQ(c.run({"DEL", k, n}), ":2");
  EXPECT_EQ(c.run({"EXISTS", k}), ":0");

  // The writes landed in Redis, not in some proxy-side cache.
  Client direct(redis().port());
  EXPECT_EQ(direct.run({"GET", key("a")}), "$1");
}

TEST_F(Proxy, ListCommandsRoundTrip) {
  Client c(port());
  std::string k = key("l");
  EXPECT_EQ(c.run({"RPUSH", k, "a", "b", "c"}), ":3");
  EXPECT_EQ(c.run({"LPUSH", k, "z"}), ":4");
  EXPECT_EQ(c.run({"LRANGE", k, "0", "-1"}), "[$z, $a, $b, $c]");
  EXPECT_EQ(c.run({"LINDEX", k, "1"}), "$a");
  EXPECT_EQ(c.run({"LPOP", k}), "$z");
  EXPECT_EQ(c.run({"RPOP", k}), "$c");
  EXPECT_EQ(c.run({"LLEN", k}), ":2");
  EXPECT_EQ(c.run({"LPOP", key("missing")}), "(nil)");
}

TEST_F(Proxy, HashCommandsRoundTrip) {
  Client c(port());
  std::string k = key("h");
  EXPECT_EQ(c.run({"HSET", k, "f1", "v1", "f2", "v2"}), ":2");
  EXPECT_EQ(c.run({"HGET", k, "f1"}), "$v1");
  EXPECT_EQ(c.run({"HMGET", k, "f1", "nope", "f2"}), "[$v1, (nil), $v2]");
  EXPECT_EQ(c.run({"HINCRBY", k, "n", "5"}), ":5");
  EXPECT_EQ(c.run({"HLEN", k}), ":3");
  EXPECT_EQ(c.run({"HDEL", k, "f2"}), ":1");
  // A small hash keeps insertion order in Redis 7 (listpack encoding).
  EXPECT_EQ(c.run({"HGETALL", k}), "[$f1, $v1, $n, $5]");
  EXPECT_EQ(c.run({"HEXISTS", k, "f2"}), ":0");
}

TEST_F(Proxy, SetCommandsRoundTrip) {
  Client c(port());
  std::string k = key("s");
  EXPECT_EQ(c.run({"SADD", k, "a", "b", "c", "a"}), ":3");
  EXPECT_EQ(c.run({"SISMEMBER", k, "b"}), ":1");
  EXPECT_EQ(c.run({"SISMEMBER", k, "z"}), ":0");
  EXPECT_EQ(c.run({"SCARD", k}), ":3");
  EXPECT_EQ(c.run({"SREM", k, "a"}), ":1");
  Reply members = c.command({"SMEMBERS", k});
  std::vector<std::string> texts = element_texts(members.get());
  std::sort(texts.begin(), texts.end());  // set order is unspecified
  EXPECT_EQ(texts, (std::vector<std::string>{"$b", "$c"}));
  EXPECT_EQ(c.run({"SADD", key("t"), "c", "d"}), ":2");
  EXPECT_EQ(c.run({"SINTER", k, key("t")}), "[$c]");
}

TEST_F(Proxy, SortedSetCommandsRoundTrip) {
  Client c(port());
  std::string k = key("z");
  EXPECT_EQ(c.run({"ZADD", k, "1", "a", "2", "b", "3", "c"}), ":3");
  EXPECT_EQ(c.run({"ZRANGE", k, "0", "-1", "WITHSCORES"}), "[$a, $1, $b, $2, $c, $3]");
  EXPECT_EQ(c.run({"ZSCORE", k, "b"}), "$2");
  EXPECT_EQ(c.run({"ZINCRBY", k, "10", "a"}), "$11");
  EXPECT_EQ(c.run({"ZRANGE", k, "0", "-1"}), "[$b, $c, $a]");
  EXPECT_EQ(c.run({"ZRANK", k, "a"}), ":2");
  EXPECT_EQ(c.run({"ZRANGEBYSCORE", k, "2", "3"}), "[$b, $c]");
  EXPECT_EQ(c.run({"ZREM", k, "b"}), ":1");
  EXPECT_EQ(c.run({"ZCARD", k}), ":2");
}

TEST_F(Proxy, StreamXaddXrangeRoundTrip) {
  Client c(port());
  std::string k = key("st");
  EXPECT_EQ(c.run({"XADD", k, "1-1", "f", "v"}), "$1-1");
  EXPECT_EQ(c.run({"XADD", k, "2-1", "g", "w", "h", "x"}), "$2-1");
  EXPECT_EQ(c.run({"XLEN", k}), ":2");
  EXPECT_EQ(c.run({"XRANGE", k, "-", "+"}), "[[$1-1, [$f, $v]], [$2-1, [$g, $w, $h, $x]]]");
  EXPECT_EQ(c.run({"XRANGE", k, "2-0", "+", "COUNT", "1"}), "[[$2-1, [$g, $w, $h, $x]]]");
  Reply auto_id = c.command({"XADD", k, "*", "f", "v"});
  ASSERT_TRUE(auto_id);
  ASSERT_EQ(auto_id->type, REDIS_REPLY_STRING);
  EXPECT_NE(std::string(auto_id->str, auto_id->len).find('-'), std::string::npos);
  EXPECT_EQ(c.run({"XLEN", k}), ":3");
}

TEST_F(Proxy, BitmapCommandsRoundTrip) {
  Client c(port());
  std::string k = key("b");
  EXPECT_EQ(c.run({"SETBIT", k, "7", "1"}), ":0");
  EXPECT_EQ(c.run({"SETBIT", k, "0", "1"}), ":0");
  EXPECT_EQ(c.run({"SETBIT", k, "7", "1"}), ":1");
  EXPECT_EQ(c.run({"GETBIT", k, "7"}), ":1");
  EXPECT_EQ(c.run({"GETBIT", k, "1"}), ":0");
  EXPECT_EQ(c.run({"BITCOUNT", k}), ":2");
  EXPECT_EQ(c.run({"BITPOS", k, "0"}), ":1");
  EXPECT_EQ(c.run({"GET", k}), "$\x81");
}

TEST_F(Proxy, HyperLogLogCommandsRoundTrip) {
  Client c(port());
  EXPECT_EQ(c.run({"PFADD", key("h1"), "a", "b", "c"}), ":1");
  EXPECT_EQ(c.run({"PFADD", key("h1"), "a"}), ":0");
  EXPECT_EQ(c.run({"PFCOUNT", key("h1")}), ":3");
  EXPECT_EQ(c.run({"PFADD", key("h2"), "c", "d"}), ":1");
  EXPECT_EQ(c.run({"PFMERGE", key("h3"), key("h1"), key("h2")}), "+OK");
  EXPECT_EQ(c.run({"PFCOUNT", key("h3")}), ":4");
}

TEST_F(Proxy, GeoCommandsRoundTrip) {
  Client c(port());
  std::string k = key("g");
  EXPECT_EQ(c.run({"GEOADD", k, "13.361389", "38.115556", "Palermo", "15.087269", "37.502669",
                   "Catania"}),
            ":2");
  EXPECT_EQ(c.run({"GEODIST", k, "Palermo", "Catania", "km"}), "$166.2742");
  EXPECT_EQ(c.run({"GEOSEARCH", k, "FROMLONLAT", "15", "37", "BYRADIUS", "200", "km", "ASC"}),
            "[$Catania, $Palermo]");
  EXPECT_EQ(c.run({"GEOSEARCH", k, "FROMLONLAT", "15", "37", "BYRADIUS", "100", "km", "ASC"}),
            "[$Catania]");
}

TEST_F(Proxy, ValuesWithCrLfAndNulBytesRoundTrip) {
  Client c(port());
  // Bytes that look like RESP framing must stay data.
  std::string k = key("bin\r\n\0key"s);
  std::string value = "line1\r\nline2\0mid\r\n$5\r\n*1\r\n\0"s;
  EXPECT_EQ(c.run({"SET", k, value}), "+OK");
  EXPECT_EQ(c.run({"GET", k}), "$" + value);
  EXPECT_EQ(c.run({"STRLEN", k}), ":" + std::to_string(value.size()));

  std::string all_bytes;
  for (int b = 0; b < 256; ++b) all_bytes += static_cast<char>(b);
  EXPECT_EQ(c.run({"HSET", key("h"), "field\0\r\n"s, all_bytes}), ":1");
  EXPECT_EQ(c.run({"HGET", key("h"), "field\0\r\n"s}), "$" + all_bytes);
  EXPECT_EQ(c.run({"RPUSH", key("l"), "\r\n", ""s, "\0"s}), ":3");
  EXPECT_EQ(c.run({"LRANGE", key("l"), "0", "-1"}), "[$\r\n, $, $\0]"s);

  Client direct(redis().port());
  EXPECT_EQ(direct.run({"GET", k}), "$" + value);
}

TEST_F(Proxy, OneMegabyteValueRoundTrips) {
  Client c(port());
  expect_big_value_round_trip(c, redis().port(), key("1mb"), 1024 * 1024);
}

TEST_F(Proxy, SixtyFourMegabyteValueRoundTrips) {
  Client c(port());
  expect_big_value_round_trip(c, redis().port(), key("64mb"), 64 * 1024 * 1024);
  EXPECT_EQ(c.run({"DEL", key("64mb")}), ":1");  // keep the shared Redis small
}

TEST_F(Proxy, PipelineOf10000CommandsRepliesInOrder) {
  Client c(port());
  ASSERT_TRUE(c.connected()) << c.error();
  constexpr int kPairs = 5000;  // SET + GET each: 10,000 commands in one write
  for (int i = 0; i < kPairs; ++i) {
    c.append({"SET", key("k" + std::to_string(i)), "v" + std::to_string(i)});
    c.append({"GET", key("k" + std::to_string(i))});
  }
  ASSERT_TRUE(c.flush()) << c.error();
  for (int i = 0; i < kPairs; ++i) {
    std::string set_reply = text(c.get_reply());
    std::string get_reply = text(c.get_reply());
    // Stop at the first mismatch: the rest would only repeat it.
    ASSERT_EQ(set_reply, "+OK") << "reply to command " << 2 * i;
    ASSERT_EQ(get_reply, "$v" + std::to_string(i)) << "reply to command " << 2 * i + 1;
  }
}

TEST_F(Proxy, EachCommandReachesUpstreamExactlyOnce) {
  Client c(port());
  long long before = commandstat_calls(redis().port(), "incr");
  for (int i = 1; i <= 100; ++i) ASSERT_EQ(c.run({"INCR", key("n")}), ":" + std::to_string(i));
  EXPECT_EQ(commandstat_calls(redis().port(), "incr") - before, 100);
}

TEST_F(Proxy, HundredConcurrentClientsEachSeeTheirOwnValues) {
  constexpr int kClients = 100;
  constexpr int kRounds = 50;
  std::string prefix = key("c");
  std::vector<std::string> failures(kClients);
  std::latch all_connected(kClients);
  {
    std::vector<std::jthread> threads;
    for (int t = 0; t < kClients; ++t) {
      threads.emplace_back([&, t] {
        Client c(port());
        if (!c.connected()) failures[t] = "connect: " + c.error();
        // All connections are open before anyone sends: the proxy serves 100 at once.
        all_connected.arrive_and_wait();
        for (int r = 0; r < kRounds && failures[t].empty(); ++r) {
          std::string k = prefix + std::to_string(t) + ":" + std::to_string(r % 5);
          std::string value = "client" + std::to_string(t) + "-round" + std::to_string(r);
          std::string set = c.run({"SET", k, value});
          std::string get = c.run({"GET", k});
          if (set != "+OK" || get != "$" + value) {
            failures[t] = "round " + std::to_string(r) + ": SET -> " + set + ", GET -> " + get;
          }
        }
      });
    }
  }  // jthreads join here
  for (int t = 0; t < kClients; ++t) EXPECT_EQ(failures[t], "") << "client " << t;

  Client direct(redis().port());
  for (int t = 0; t < kClients; ++t) {
    EXPECT_EQ(direct.run({"GET", prefix + std::to_string(t) + ":" + std::to_string(4)}),
              "$client" + std::to_string(t) + "-round" + std::to_string(kRounds - 1));
  }
}

TEST_F(Proxy, RedisCliPingSetGetWork) {
  EXPECT_EQ(redis_cli(port(), {"ping"}), "PONG");
  EXPECT_EQ(redis_cli(port(), {"set", key("cli"), "v"}), "OK");
  EXPECT_EQ(redis_cli(port(), {"get", key("cli")}), "v");
}

}  // namespace
