// Commands whose effect lasts beyond one request: transactions, WATCH, SELECT, pub/sub and
// blocking pops. Through a proxy that shares upstream connections these only work if the
// state stays with the client that created it; the tests use two clients to prove that.
#include <thread>

#include "../../include/respguard/common/errors.hpp"
#include "harness.hpp"

namespace {

using namespace rgtest;
namespace errors = respguard::errors;

class Stateful : public SharedProxyTest {};

std::string error_text(std::string_view message) {
  return "-" + std::string(message);
}

TEST_F(Stateful, MultiExecRunsQueuedCommandsInOrder) {
  Client a(port());
  Client b(port());
  std::string k = key("k");
  EXPECT_EQ(a.run({"MULTI"}), "+OK");
  EXPECT_EQ(a.run({"SET", k, "1"}), "+QUEUED");
  EXPECT_EQ(a.run({"INCR", k}), "+QUEUED");
  // Another client meanwhile is not inside a's transaction.
  EXPECT_EQ(b.run({"SET", key("other"), "x"}), "+OK");
  EXPECT_EQ(b.run({"GET", k}), "(nil)");
  EXPECT_EQ(a.run({"GET", k}), "+QUEUED");
  EXPECT_EQ(a.run({"EXEC"}), "[+OK, :2, $2]");
  EXPECT_EQ(b.run({"GET", k}), "$2");
}

TEST_F(Stateful, DiscardDropsQueuedCommands) {
  Client c(port());
  EXPECT_EQ(c.run({"MULTI"}), "+OK");
  EXPECT_EQ(c.run({"SET", key("k"), "x"}), "+QUEUED");
  EXPECT_EQ(c.run({"DISCARD"}), "+OK");
  EXPECT_EQ(c.run({"GET", key("k")}), "(nil)");
  EXPECT_EQ(c.run({"EXEC"}), "-ERR EXEC without MULTI");
}

TEST_F(Stateful, WatchedKeyChangedByAnotherClientMakesExecReturnNil) {
  Client a(port());
  Client b(port());
  std::string k = key("watched");
  EXPECT_EQ(a.run({"SET", k, "original"}), "+OK");
  EXPECT_EQ(a.run({"WATCH", k}), "+OK");
  EXPECT_EQ(b.run({"SET", k, "changed-by-b"}), "+OK");
  EXPECT_EQ(a.run({"MULTI"}), "+OK");
  EXPECT_EQ(a.run({"SET", k, "from-a"}), "+QUEUED");
  EXPECT_EQ(a.run({"EXEC"}), "(nil)");
  EXPECT_EQ(a.run({"GET", k}), "$changed-by-b");
}

TEST_F(Stateful, WatchedKeyUnchangedLetsExecRun) {
  Client a(port());
  Client b(port());
  std::string k = key("watched");
  EXPECT_EQ(a.run({"WATCH", k}), "+OK");
  EXPECT_EQ(b.run({"SET", key("unrelated"), "x"}), "+OK");
  EXPECT_EQ(a.run({"MULTI"}), "+OK");
  EXPECT_EQ(a.run({"SET", k, "from-a"}), "+QUEUED");
  EXPECT_EQ(a.run({"EXEC"}), "[+OK]");
  EXPECT_EQ(b.run({"GET", k}), "$from-a");
}

TEST_F(Stateful, SelectIsolatesDatabasesPerClient) {
  Client a(port());
  Client b(port());
  std::string k = key("shared");
  EXPECT_EQ(a.run({"SELECT", "1"}), "+OK");
  EXPECT_EQ(a.run({"SET", k, "in-db-1"}), "+OK");
  EXPECT_EQ(b.run({"SET", k, "in-db-0"}), "+OK");
  // Interleaved, so that a db selection leaking through a shared upstream connection shows.
  for (int i = 0; i < 20; ++i) {
    EXPECT_EQ(a.run({"GET", k}), "$in-db-1");
    EXPECT_EQ(b.run({"GET", k}), "$in-db-0");
  }
  Client fresh(port());
  EXPECT_EQ(fresh.run({"GET", k}), "$in-db-0") << "a new connection starts in db 0";

  // SELECT inside a pipeline applies to exactly the commands after it.
  a.append({"SELECT", "2"});
  a.append({"SET", k, "in-db-2"});
  a.append({"SELECT", "0"});
  a.append({"GET", k});
  ASSERT_TRUE(a.flush());
  EXPECT_EQ(text(a.get_reply()), "+OK");
  EXPECT_EQ(text(a.get_reply()), "+OK");
  EXPECT_EQ(text(a.get_reply()), "+OK");
  EXPECT_EQ(text(a.get_reply()), "$in-db-0");

  Client direct(redis().port());
  const std::vector<std::pair<std::string, std::string>> expected = {
      {"0", "$in-db-0"}, {"1", "$in-db-1"}, {"2", "$in-db-2"}};
  for (const auto& [db, value] : expected) {
    EXPECT_EQ(direct.run({"SELECT", db}), "+OK");
    EXPECT_EQ(direct.run({"GET", k}), value) << "db " << db;
  }
}

TEST_F(Stateful, SelectOutOfRangeIsRejectedAndKeepsTheDb) {
  Client c(port());
  EXPECT_EQ(c.run({"SET", key("k"), "in-db-0"}), "+OK");
  EXPECT_EQ(c.run({"SELECT", "16"}), error_text(errors::kDbIndexOutOfRange));
  EXPECT_EQ(c.run({"SELECT", "-1"}), error_text(errors::kDbIndexOutOfRange));
  EXPECT_EQ(c.run({"SELECT", "abc"}), error_text(errors::kNotInteger));
  EXPECT_EQ(c.run({"GET", key("k")}), "$in-db-0");
}

TEST_F(Stateful, PublishedMessageReachesSubscriber) {
  Client subscriber(port());
  Client publisher(port());
  std::string channel = key("news");
  EXPECT_EQ(subscriber.run({"SUBSCRIBE", channel}), "[$subscribe, $" + channel + ", :1]");
  // The subscription is registered before its confirmation is sent, so one receiver now.
  EXPECT_EQ(publisher.run({"PUBLISH", channel, "hello"}), ":1");
  EXPECT_EQ(text(subscriber.get_reply()), "[$message, $" + channel + ", $hello]");
  EXPECT_EQ(publisher.run({"PUBLISH", channel, "second\r\n"}), ":1");
  EXPECT_EQ(text(subscriber.get_reply()), "[$message, $" + channel + ", $second\r\n]");
}

TEST_F(Stateful, PatternSubscriberReceivesMatchingMessages) {
  Client subscriber(port());
  Client publisher(port());
  std::string pattern = key("events:*");
  std::string channel = key("events:login");
  EXPECT_EQ(subscriber.run({"PSUBSCRIBE", pattern}), "[$psubscribe, $" + pattern + ", :1]");
  EXPECT_EQ(publisher.run({"PUBLISH", key("unrelated"), "x"}), ":0");
  EXPECT_EQ(publisher.run({"PUBLISH", channel, "alice"}), ":1");
  EXPECT_EQ(text(subscriber.get_reply()),
            "[$pmessage, $" + pattern + ", $" + channel + ", $alice]");
}

TEST_F(Stateful, SubscribedClientIsLimitedToPubSubCommandsUntilUnsubscribed) {
  Client c(port());
  std::string channel = key("ch");
  EXPECT_EQ(c.run({"SUBSCRIBE", channel}), "[$subscribe, $" + channel + ", :1]");
  std::string refusal(errors::kSubscribeContext);
  refusal.replace(refusal.find("%s"), 2, "get");
  EXPECT_EQ(c.run({"GET", key("k")}), error_text(refusal));
  EXPECT_EQ(c.run({"PING"}), "[$pong, $]");  // RESP2 PING in subscribed mode
  EXPECT_EQ(c.run({"UNSUBSCRIBE", channel}), "[$unsubscribe, $" + channel + ", :0]");
  EXPECT_EQ(c.run({"SET", key("k"), "v"}), "+OK");
  EXPECT_EQ(c.run({"GET", key("k")}), "$v");
}

TEST_F(Stateful, BlpopIsWokenByAnotherClientsLpush) {
  std::string k = key("queue");
  std::string waiter_reply;
  std::jthread waiter([&] {
    Client a(port());
    waiter_reply = a.run({"BLPOP", k, "5"});
  });
  // Push only once the pop is really blocked in Redis; otherwise nothing is woken.
  auto blocked = [&] { return info_field(redis().port(), "clients", "blocked_clients") == 1; };
  EXPECT_TRUE(wait_until(blocked, 4000ms)) << "BLPOP never blocked in Redis";

  // Others are served while a is blocked.
  Client b(port());
  EXPECT_EQ(b.run({"PING"}), "+PONG");
  EXPECT_EQ(b.run({"SET", key("other"), "x"}), "+OK");
  EXPECT_EQ(b.run({"GET", key("other")}), "$x");
  EXPECT_TRUE(blocked()) << "a's BLPOP returned before anything was pushed";

  EXPECT_EQ(b.run({"LPUSH", k, "job-1"}), ":1");
  waiter.join();
  EXPECT_EQ(waiter_reply, "[$" + k + ", $job-1]");
  EXPECT_EQ(b.run({"LLEN", k}), ":0");
}

TEST_F(Stateful, BlpopWithTimeoutReturnsNilAfterTheTimeout) {
  Client c(port());
  auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(c.run({"BLPOP", key("empty"), "1"}), "(nil)");
  auto elapsed = std::chrono::steady_clock::now() - start;
  // Redis never answers before the timeout; the upper bound only catches a hang.
  EXPECT_GE(elapsed, 900ms);
  EXPECT_LT(elapsed, 5000ms);
  EXPECT_EQ(c.run({"PING"}), "+PONG");
}

}  // namespace
