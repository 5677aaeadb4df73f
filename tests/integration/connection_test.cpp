// Per-connection behaviour a client relies on: handshake commands, connection-scoped state,
// RESP3, inline commands, protocol errors, the client limit. Replies use Redis's own wording.
#include "../../include/respguard/common/errors.hpp"
#include "harness.hpp"

namespace {

using namespace rgtest;
namespace errors = respguard::errors;

class Connection : public SharedProxyTest {};

std::string error_text(std::string_view message) {
  return "-" + std::string(message);
}

// RESP array of bulk strings, as a client library would send it.
std::string resp_command(const std::vector<std::string>& args) {
  std::string out = "*" + std::to_string(args.size()) + "\r\n";
  for (const std::string& arg : args) {
    out += "$" + std::to_string(arg.size()) + "\r\n" + arg + "\r\n";
  }
  return out;
}

TEST_F(Connection, PingWithAndWithoutArgument) {
  Client c(port());
  ASSERT_TRUE(c.connected()) << c.error();
  EXPECT_EQ(c.run({"PING"}), "+PONG");
  EXPECT_EQ(c.run({"PING", "hello there"}), "$hello there");
}

TEST_F(Connection, EchoReturnsItsArgument) {
  Client c(port());
  EXPECT_EQ(c.run({"ECHO", "a b\r\nc"}), "$a b\r\nc");
  EXPECT_EQ(c.run({"ECHO", ""}), "$");
}

TEST_F(Connection, ClientSetnameGetnameAreScopedToTheConnection) {
  Client a(port());
  Client b(port());
  EXPECT_EQ(a.run({"CLIENT", "GETNAME"}), "(nil)");
  EXPECT_EQ(a.run({"CLIENT", "SETNAME", "app-a"}), "+OK");
  EXPECT_EQ(b.run({"CLIENT", "GETNAME"}), "(nil)");
  EXPECT_EQ(b.run({"CLIENT", "SETNAME", "app-b"}), "+OK");
  // Repeated, so that a name kept on a shared upstream connection would show up.
  for (int i = 0; i < 10; ++i) {
    EXPECT_EQ(a.run({"CLIENT", "GETNAME"}), "$app-a");
    EXPECT_EQ(b.run({"CLIENT", "GETNAME"}), "$app-b");
  }
  EXPECT_EQ(a.run({"CLIENT", "SETNAME", "has space"}), error_text(errors::kClientNameInvalid));
  EXPECT_EQ(a.run({"CLIENT", "GETNAME"}), "$app-a");
}

TEST_F(Connection, ClientIdIsAStableIntegerPerConnection) {
  Client a(port());
  Client b(port());
  Reply id_a = a.command({"CLIENT", "ID"});
  Reply id_b = b.command({"CLIENT", "ID"});
  ASSERT_TRUE(id_a && id_b);
  ASSERT_EQ(id_a->type, REDIS_REPLY_INTEGER) << text(id_a);
  ASSERT_EQ(id_b->type, REDIS_REPLY_INTEGER) << text(id_b);
  EXPECT_GT(id_a->integer, 0);
  EXPECT_NE(id_a->integer, id_b->integer);
  for (int i = 0; i < 10; ++i) EXPECT_EQ(a.run({"CLIENT", "ID"}), text(id_a));
}

TEST_F(Connection, QuitRepliesOkAndCloses) {
  RawSocket s(port());
  ASSERT_TRUE(s.connected());
  ASSERT_TRUE(s.send(resp_command({"QUIT"})));
  EXPECT_EQ(s.read_message(), "+OK\r\n");
  EXPECT_TRUE(s.wait_closed()) << "the connection stayed open after QUIT";
}

TEST_F(Connection, ResetRepliesResetAndReturnsToDbZero) {
  Client c(port());
  std::string k = key("k");
  EXPECT_EQ(c.run({"SELECT", "3"}), "+OK");
  EXPECT_EQ(c.run({"SET", k, "in-db-3"}), "+OK");
  EXPECT_EQ(c.run({"CLIENT", "SETNAME", "before-reset"}), "+OK");
  EXPECT_EQ(c.run({"MULTI"}), "+OK");
  EXPECT_EQ(c.run({"RESET"}), "+RESET");
  // No transaction any more (GET is not QUEUED), back in db 0, and the name is gone.
  EXPECT_EQ(c.run({"GET", k}), "(nil)");
  EXPECT_EQ(c.run({"CLIENT", "GETNAME"}), "(nil)");
  EXPECT_EQ(c.run({"SELECT", "3"}), "+OK");
  EXPECT_EQ(c.run({"GET", k}), "$in-db-3");
}

TEST_F(Connection, InlineCommandsWork) {
  RawSocket s(port());
  ASSERT_TRUE(s.connected());
  std::string k = key("inline");
  ASSERT_TRUE(s.send("PING\r\n"));
  EXPECT_EQ(s.read_message(), "+PONG\r\n");
  ASSERT_TRUE(s.send("SET " + k + " b\r\n"));
  EXPECT_EQ(s.read_message(), "+OK\r\n");
  ASSERT_TRUE(s.send("GET " + k + "\r\n"));
  EXPECT_EQ(s.read_message(), "$1\r\nb\r\n");
  // Redis's quoting rules: a quoted argument may hold spaces.
  ASSERT_TRUE(s.send("SET \"" + k + " spaced\" \"hello world\"\r\n"));
  EXPECT_EQ(s.read_message(), "+OK\r\n");

  Client c(port());
  EXPECT_EQ(c.run({"GET", k + " spaced"}), "$hello world");
}

TEST_F(Connection, MalformedBulkLengthGetsProtocolErrorAndClosesOnlyThatConnection) {
  Client bystander(port());
  ASSERT_EQ(bystander.run({"PING"}), "+PONG");

  RawSocket bad(port());
  ASSERT_TRUE(bad.connected());
  ASSERT_TRUE(bad.send("*1\r\n$abc\r\n"));
  EXPECT_EQ(bad.read_message(), "-ERR Protocol error: invalid bulk length\r\n");
  EXPECT_TRUE(bad.wait_closed()) << "Redis closes the connection after a protocol error";

  EXPECT_EQ(bystander.run({"SET", key("k"), "still-here"}), "+OK");
  EXPECT_EQ(bystander.run({"GET", key("k")}), "$still-here");
  Client newcomer(port());
  EXPECT_EQ(newcomer.run({"PING"}), "+PONG");
}

TEST_F(Connection, Hello3SwitchesTheConnectionToResp3) {
  RawSocket s(port());
  ASSERT_TRUE(s.connected());
  ASSERT_TRUE(s.send(resp_command({"HELLO", "3"})));
  std::string hello = s.read_message();
  ASSERT_FALSE(hello.empty()) << "no reply to HELLO 3";
  EXPECT_EQ(hello[0], '%') << hello;  // a RESP3 map
  EXPECT_NE(hello.find("proto"), std::string::npos) << hello;
  EXPECT_NE(hello.find(":3\r\n"), std::string::npos) << hello;

  ASSERT_TRUE(s.send(resp_command({"GET", key("missing")})));
  EXPECT_EQ(s.read_message(), "_\r\n");  // RESP3 null

  // And back: HELLO 2 answers with an array, nil is RESP2's again.
  ASSERT_TRUE(s.send(resp_command({"HELLO", "2"})));
  std::string hello2 = s.read_message();
  ASSERT_FALSE(hello2.empty());
  EXPECT_EQ(hello2[0], '*') << hello2;
  ASSERT_TRUE(s.send(resp_command({"GET", key("missing")})));
  EXPECT_EQ(s.read_message(), "$-1\r\n");
}

TEST_F(Connection, Resp3ClientGetsMapFromHgetall) {
  Client writer(port());
  ASSERT_EQ(writer.run({"HSET", key("h"), "f", "v"}), ":1");
  RawSocket s(port());
  ASSERT_TRUE(s.send(resp_command({"HELLO", "3"})));
  ASSERT_FALSE(s.read_message().empty());
  ASSERT_TRUE(s.send(resp_command({"HGETALL", key("h")})));
  EXPECT_EQ(s.read_message(), "%1\r\n$1\r\nf\r\n$1\r\nv\r\n");
}

TEST_F(Connection, HelloWithUnsupportedVersionGetsNoproto) {
  Client c(port());
  EXPECT_EQ(c.run({"HELLO", "4"}), error_text(errors::kNoProto));
  EXPECT_EQ(c.run({"PING"}), "+PONG");  // still RESP2, still usable
}

TEST_F(Connection, AuthWithoutConfiguredPasswordGetsRedisError) {
  Client c(port());
  EXPECT_EQ(c.run({"AUTH", "secret"}), error_text(errors::kNoPasswordConfigured));
  EXPECT_EQ(c.run({"PING"}), "+PONG");
}

// Connects and waits until the server answers PING on the new connection: a slot is free and
// the connection counts against the limit from now on.
std::unique_ptr<Client> connect_accepted(int port) {
  std::unique_ptr<Client> client;
  wait_until(
      [&] {
        client = std::make_unique<Client>(port);
        return client->run({"PING"}) == "+PONG";
      },
      5000ms);
  return client;
}

TEST_F(Connection, MaxclientsRejectsTheClientOverTheLimitUntilASlotFrees) {
  // Direct mode checks the test against Redis's own maxclients, which replies the same way.
  std::unique_ptr<RedisServer> limited_redis;
  std::unique_ptr<ProxyServer> limited_proxy;
  int limited_port = 0;
  if (direct_mode()) {
    limited_redis = std::make_unique<RedisServer>(std::vector<std::string>{"--maxclients", "2"});
    limited_port = limited_redis->port();
  } else {
    limited_proxy =
        std::make_unique<ProxyServer>(redis().port(), ProxyOptions{"maxclients: 2\n", {}});
    limited_port = limited_proxy->port();
  }

  // Polled: the start-up readiness probe may not have been released yet.
  std::unique_ptr<Client> first = connect_accepted(limited_port);
  ASSERT_EQ(first->run({"PING"}), "+PONG");
  std::unique_ptr<Client> second = connect_accepted(limited_port);
  ASSERT_EQ(second->run({"PING"}), "+PONG");

  // Like Redis, the error comes at once on accept, before the client sends anything.
  RawSocket third(limited_port);
  ASSERT_TRUE(third.connected());
  EXPECT_EQ(third.read_message(5000ms), error_text(errors::kMaxClients) + "\r\n");
  EXPECT_TRUE(third.wait_closed());

  EXPECT_EQ(first->run({"PING"}), "+PONG");  // the admitted clients are unaffected
  first.reset();
  std::unique_ptr<Client> replacement = connect_accepted(limited_port);
  EXPECT_EQ(replacement->run({"PING"}), "+PONG") << "no slot freed after a client left";
}

}  // namespace
