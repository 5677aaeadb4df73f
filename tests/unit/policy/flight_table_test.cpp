#include "respguard/policy/flight_table.hpp"

#include <gtest/gtest.h>

#include <thread>

namespace respguard::policy {
namespace {

using Table = FlightTable<int>;
using Role = Table::Role;

TEST(FlightTable, FirstReaderLeadsOthersJoinAndGetWokenByFinish) {
  Table t;
  std::string buf;
  const std::string dk(db_key(0, "k", buf));
  std::uint64_t f1 = 0, f2 = 0, f3 = 0;
  EXPECT_EQ(t.begin(dk, 1, f1), Role::Leader);
  EXPECT_EQ(t.begin(dk, 2, f2), Role::Joined);
  EXPECT_EQ(t.begin(dk, 3, f3), Role::Joined);
  EXPECT_EQ(f1, f2);
  EXPECT_EQ(f1, f3);
  std::vector<int> woken;
  t.finish(dk, f1, woken);
  EXPECT_EQ(woken, (std::vector<int>{2, 3}));
  // The flight is over: the next reader leads a new one.
  std::uint64_t f4 = 0;
  EXPECT_EQ(t.begin(dk, 4, f4), Role::Leader);
  EXPECT_NE(f4, f1);
}

TEST(FlightTable, KeysInOtherDatabasesAreOtherFlights) {
  Table t;
  std::string b1, b2;
  std::uint64_t f = 0;
  EXPECT_EQ(t.begin(db_key(0, "k", b1), 1, f), Role::Leader);
  EXPECT_EQ(t.begin(db_key(1, "k", b2), 2, f), Role::Leader);
}

TEST(FlightTable, AWriteDetachesTheFlightAndStopsCoalescingUntilAnswered) {
  Table t;
  std::string buf;
  const std::string dk(db_key(0, "k", buf));
  std::uint64_t old_flight = 0, f = 0;
  ASSERT_EQ(t.begin(dk, 1, old_flight), Role::Leader);
  ASSERT_EQ(t.begin(dk, 2, f), Role::Joined);  // came before the write: may see the old value
  t.write_begin(dk);
  // Read-your-writes: nobody may join a flight that could run before the write.
  EXPECT_EQ(t.begin(dk, 3, f), Role::Uncoalesced);
  std::vector<int> woken;
  t.finish(dk, old_flight, woken);
  EXPECT_EQ(woken, (std::vector<int>{2}));  // the early joiner still gets the old flight's reply
  EXPECT_EQ(t.begin(dk, 4, f), Role::Uncoalesced);  // the write is still unanswered
  t.write_end(dk);
  EXPECT_EQ(t.begin(dk, 5, f), Role::Leader);
  EXPECT_NE(f, old_flight);
}

TEST(FlightTable, OverlappingWritesKeepCoalescingOffUntilTheLastIsAnswered) {
  Table t;
  std::string buf;
  const std::string dk(db_key(0, "k", buf));
  std::uint64_t f = 0;
  t.write_begin(dk);
  t.write_begin(dk);
  t.write_end(dk);
  EXPECT_EQ(t.begin(dk, 1, f), Role::Uncoalesced);
  t.write_end(dk);
  EXPECT_EQ(t.begin(dk, 1, f), Role::Leader);
}

TEST(FlightTable, DatabaseWideWritesDetachEveryFlight) {
  Table t;
  std::string b1, b2;
  const std::string a(db_key(0, "a", b1)), b(db_key(3, "b", b2));
  std::uint64_t fa = 0, fb = 0, f = 0;
  ASSERT_EQ(t.begin(a, 1, fa), Role::Leader);
  ASSERT_EQ(t.begin(b, 2, fb), Role::Leader);
  t.write_begin_all();
  EXPECT_EQ(t.begin(a, 3, f), Role::Uncoalesced);
  EXPECT_EQ(t.begin(b, 4, f), Role::Uncoalesced);
  t.write_end_all();
  std::vector<int> woken;
  t.finish(a, fa, woken);
  t.finish(b, fb, woken);
  EXPECT_TRUE(woken.empty());
  EXPECT_EQ(t.begin(a, 5, f), Role::Leader);
}

TEST(FlightTable, TableEmptiesWhenFlightsAndWritesEnd) {
  Table t;
  std::string buf;
  const std::string dk(db_key(0, "k", buf));
  std::uint64_t f = 0;
  t.begin(dk, 1, f);
  t.write_begin(dk);
  std::vector<int> woken;
  t.finish(dk, f, woken);
  EXPECT_EQ(t.entries(), 1u);
  t.write_end(dk);
  EXPECT_EQ(t.entries(), 0u);
}

TEST(FlightTable, ExactlyOneLeaderUnderConcurrency) {
  Table t;
  std::atomic<int> leaders{0}, joined{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < 8; ++i) {
    threads.emplace_back([&, i] {
      std::string buf;
      for (int j = 0; j < 1000; ++j) {
        std::uint64_t f = 0;
        auto role = t.begin(db_key(0, "hot", buf), i * 1000 + j, f);
        (role == Role::Leader ? leaders : joined)++;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(leaders.load(), 1);  // nobody finished: every later reader joined the one flight
  EXPECT_EQ(joined.load(), 7999);
}

}  // namespace
}  // namespace respguard::policy

namespace respguard::policy {
namespace {

// Keys sharing a slot (here: one stripe of one slot) never join each other's flights: the
// second key goes upstream on its own, and a write to either stops coalescing of both until
// it is answered. Coalescing is lost, never correctness.
TEST(FlightTable, KeysSharingASlotAreNotCoalescedWithEachOther) {
  FlightTable<int> t(1, 1);
  std::uint64_t fa = 0, fb = 0, f = 0;
  ASSERT_EQ(t.begin(std::string_view("0\0a", 3), 1, fa), FlightTable<int>::Role::Leader);
  EXPECT_EQ(t.begin(std::string_view("0\0b", 3), 2, fb), FlightTable<int>::Role::Uncoalesced);
  EXPECT_EQ(t.begin(std::string_view("0\0a", 3), 3, f), FlightTable<int>::Role::Joined);
  std::vector<int> woken;
  t.finish(std::string_view("0\0a", 3), fa, woken);
  EXPECT_EQ(woken, (std::vector<int>{3}));
  EXPECT_EQ(t.begin(std::string_view("0\0b", 3), 4, fb), FlightTable<int>::Role::Leader);
  t.write_begin(std::string_view("0\0a", 3));  // detaches b's flight too
  EXPECT_EQ(t.begin(std::string_view("0\0b", 3), 5, f), FlightTable<int>::Role::Uncoalesced);
  t.write_end(std::string_view("0\0a", 3));
  woken.clear();
  t.finish(std::string_view("0\0b", 3), fb, woken);
  EXPECT_TRUE(woken.empty());
  EXPECT_EQ(t.begin(std::string_view("0\0b", 3), 6, f), FlightTable<int>::Role::Leader);
  EXPECT_EQ(t.entries(), 1u);
}

}  // namespace
}  // namespace respguard::policy
