// Elections and locks through quoratectl, against quorate-node processes:
// what a script relies on (CONTRACTS.md's elect and lock lines, the fence
// variables, exit codes), and that holders never overlap, even when one is
// killed with SIGKILL.
#include <gtest/gtest.h>
#include <signal.h>

#include <algorithm>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "cmd/node_processes.h"
#include "quorate/client.h"
#include "quorate/election.h"
#include "quorate/shards.h"
#include "util/process.h"

namespace quorate {
namespace {

using testing::Process;
using testing::QuorateNodeTest;
using testing::ReadAll;

class RecipesTest : public QuorateNodeTest {
 protected:
  void SetUp() override {
    QuorateNodeTest::SetUp();
    Define(3);
    for (auto& [name, m] : members_) Start(name);
    ASSERT_FALSE(AwaitLeader().empty());
    e_ = "--endpoints=" + Endpoints();
  }
  std::string Path(const std::string& name) const {
    return absl::StrCat(root_, "/", name);
  }
  // The number in "PREFIX NUMBER" on the last line of `log` starting with
  // PREFIX; 0 if none.
  static uint64_t TokenAfter(const std::string& log,
                             const std::string& prefix) {
    uint64_t token = 0;
    for (absl::string_view line : absl::StrSplit(ReadAll(log), '\n')) {
      if (!absl::StartsWith(line, prefix)) continue;
      const std::vector<std::string> words = absl::StrSplit(line, ' ');
      if (!absl::SimpleAtoi(words.back(), &token)) token = 0;
    }
    return token;
  }
  std::string e_;
};

// Two scripts take one lock in turn, four times each. Each holder writes
// its token and the time when it starts and ends its work into one file:
// no two holders' spans overlap, and the tokens grow in the order of the
// spans.
TEST_F(RecipesTest, TwoLockHolders_NeverOverlap) {
  const std::string file = Path("spans");
  const std::string work = absl::StrCat(
      "echo \"$QUORATE_FENCE_NAME $QUORATE_FENCE_TOKEN start $(date +%s%N)\" "
      ">> ",
      file,
      "; sleep 0.1; echo \"$QUORATE_FENCE_NAME $QUORATE_FENCE_TOKEN end "
      "$(date +%s%N)\" >> ",
      file);
  const std::string loop = absl::StrCat("for i in 1 2 3 4; do \"$0\" ", e_,
                                        " lock shared --ttl=2s -- sh -c '",
                                        work, "' || exit $?; done");
  Process a({"/bin/sh", "-c", loop, QUORATECTL_BINARY}, Path("a.out"));
  Process b({"/bin/sh", "-c", loop, QUORATECTL_BINARY}, Path("b.out"));
  EXPECT_EQ(a.Wait(absl::Seconds(60)).value_or(-1), 0)
      << ReadAll(Path("a.out"));
  EXPECT_EQ(b.Wait(absl::Seconds(60)).value_or(-1), 0)
      << ReadAll(Path("b.out"));

  struct Span {
    uint64_t start = 0, end = 0;
  };
  std::map<uint64_t, Span> by_token;
  int lines = 0;
  for (absl::string_view line : absl::StrSplit(ReadAll(file), '\n')) {
    if (line.empty()) continue;
    ++lines;
    const std::vector<std::string> w = absl::StrSplit(line, ' ');
    ASSERT_EQ(w.size(), 4u) << line;
    EXPECT_EQ(w[0], "lock/shared");
    uint64_t token = 0, t = 0;
    ASSERT_TRUE(absl::SimpleAtoi(w[1], &token)) << line;
    ASSERT_TRUE(absl::SimpleAtoi(w[3], &t)) << line;
    (w[2] == "start" ? by_token[token].start : by_token[token].end) = t;
  }
  EXPECT_EQ(lines, 16) << ReadAll(file);
  ASSERT_EQ(by_token.size(), 8u) << ReadAll(file);
  // By token, the spans follow one another.
  const Span* last = nullptr;
  for (const auto& [token, span] : by_token) {
    EXPECT_LT(span.start, span.end) << token;
    if (last != nullptr) {
      EXPECT_LT(last->end, span.start)
          << "token " << token << " started before the holder before it "
          << "ended:\n"
          << ReadAll(file);
    }
    last = &span;
  }
}

// The holder is killed with SIGKILL: its session stops being renewed, and
// the waiter holds the lock once the lease has expired, with a higher
// token.
TEST_F(RecipesTest, KilledLockHolder_NextWaiterHoldsItAfterTheTtl) {
  Process holder({QUORATECTL_BINARY, e_, "lock", "job", "--ttl=1s"},
                 Path("holder.out"));
  ASSERT_TRUE(Await([&] {
    return TokenAfter(Path("holder.out"), "LOCKED job") > 0;
  })) << ReadAll(Path("holder.out"));
  const uint64_t first = TokenAfter(Path("holder.out"), "LOCKED job");
  Process waiter({QUORATECTL_BINARY, e_, "lock", "job", "--ttl=1s", "--", "sh",
                  "-c", "echo $QUORATE_FENCE_TOKEN > " + Path("token")},
                 Path("waiter.out"));
  const absl::Time killed = absl::Now();
  holder.Signal(SIGKILL);
  EXPECT_EQ(waiter.Wait(absl::Seconds(30)).value_or(-1), 0)
      << ReadAll(Path("waiter.out"));
  std::cout << "the waiter held the lock "
            << absl::ToDoubleMilliseconds(absl::Now() - killed)
            << " ms after the holder was killed (TTL 1 s)\n";
  uint64_t second = 0;
  ASSERT_TRUE(absl::SimpleAtoi(
      absl::StripAsciiWhitespace(ReadAll(Path("token"))), &second))
      << ReadAll(Path("token"));
  EXPECT_GT(second, first);
  EXPECT_EQ(TokenAfter(Path("waiter.out"), "LOCKED job"), second);
}

// Two campaigners and an observer: the observer prints each leader once,
// in order; a leader interrupted resigns, and the next one leads.
TEST_F(RecipesTest, ElectAndObserve) {
  Process observer({QUORATECTL_BINARY, e_, "elect", "--observe", "leader"},
                   Path("observer.out"));
  Process a({QUORATECTL_BINARY, e_, "elect", "leader", "alpha"}, Path("a.out"));
  ASSERT_TRUE(Await([&] {
    return TokenAfter(Path("a.out"), "LEADER leader alpha") > 0;
  })) << ReadAll(Path("a.out"));
  const uint64_t ta = TokenAfter(Path("a.out"), "LEADER leader alpha");
  Process b({QUORATECTL_BINARY, e_, "elect", "leader", "beta"}, Path("b.out"));
  // b waits behind a: its key is there, and it does not lead.
  ASSERT_TRUE(Await([&] {
    Ctl c = Quoratectl(
        {e_, "get", "quorate/election/leader/", "--prefix", "--keys_only"});
    return std::count(c.out.begin(), c.out.end(), '\n') == 2;
  }));
  EXPECT_EQ(TokenAfter(Path("b.out"), "LEADER"), 0u);
  // The observer has read the election (it started with a process of its
  // own): it shows alpha before alpha resigns.
  ASSERT_TRUE(Await([&] {
    return TokenAfter(Path("observer.out"), "LEADER leader alpha") == ta;
  })) << ReadAll(Path("observer.out"));
  a.Signal(SIGTERM);
  EXPECT_EQ(a.Wait(absl::Seconds(10)).value_or(-1), 0)
      << ReadAll(Path("a.out"));
  ASSERT_TRUE(Await([&] {
    return TokenAfter(Path("b.out"), "LEADER leader beta") > 0;
  })) << ReadAll(Path("b.out"));
  const uint64_t tb = TokenAfter(Path("b.out"), "LEADER leader beta");
  EXPECT_GT(tb, ta);
  const std::string want = absl::StrCat("LEADER leader alpha ", ta,
                                        "\nLEADER leader beta ", tb, "\n");
  EXPECT_TRUE(Await([&] { return ReadAll(Path("observer.out")) == want; }))
      << ReadAll(Path("observer.out"));
  b.Signal(SIGTERM);
  EXPECT_EQ(b.Wait(absl::Seconds(10)).value_or(-1), 0);
  observer.Signal(SIGTERM);
  EXPECT_EQ(observer.Wait(absl::Seconds(10)).value_or(-1), 0);
}

TEST_F(RecipesTest, Quoratectl_BadArgumentsAndTheCommandsStatus) {
  EXPECT_EQ(Quoratectl({e_, "lock"}).exit, 2);
  EXPECT_EQ(Quoratectl({e_, "lock", "a/b"}).exit, 2);
  EXPECT_EQ(Quoratectl({e_, "lock", "l", "extra"}).exit, 2);
  EXPECT_EQ(Quoratectl({e_, "lock", "l", "--"}).exit, 2);
  EXPECT_EQ(Quoratectl({e_, "lock", "l", "--ttl=soon"}).exit, 2);
  EXPECT_EQ(Quoratectl({e_, "elect", "x"}).exit, 2);
  EXPECT_EQ(Quoratectl({e_, "elect", "--observe", "x", "y"}).exit, 2);
  EXPECT_EQ(Quoratectl({e_, "get", "k", "--observe"}).exit, 2);
  EXPECT_EQ(Quoratectl({e_, "put", "k", "v", "--ttl=1s"}).exit, 2);
  // A TTL below the members' floor is refused by the cluster (1).
  EXPECT_EQ(Quoratectl({e_, "lock", "l", "--ttl=1ms", "--", "true"}).exit, 1);
  // The command's exit status is quoratectl's; the lock is released.
  Ctl c = Quoratectl({e_, "lock", "l", "--", "sh", "-c", "exit 7"});
  EXPECT_EQ(c.exit, 7) << c.out;
  EXPECT_NE(c.out.find("LOCKED l "), std::string::npos) << c.out;
  c = Quoratectl({e_, "get", "quorate/lock/l/", "--prefix", "--keys_only"});
  EXPECT_EQ(c.out, "");
}

// pause, resume and workloads, as an operator uses them; each pause is
// seen at once by a process watching the switch's key.
TEST_F(RecipesTest, Quoratectl_PauseResumeWorkloads) {
  EXPECT_EQ(Quoratectl({e_, "workloads"}).out, "");
  Ctl c = Quoratectl({e_, "pause", "outbound-email", "--reason=queue flood"});
  ASSERT_EQ(c.exit, 0) << c.out;
  // From revision 1 (the pause's): whenever it starts, it sees every turn.
  Process watch({QUORATECTL_BINARY, e_, "watch", "quorate/workload/",
                 "--prefix", "--rev=1"},
                Path("watch.out"));
  ASSERT_EQ(Quoratectl({e_, "pause", "inbound-email"}).exit, 0);
  ASSERT_EQ(Quoratectl({e_, "resume", "inbound-email"}).exit, 0);
  EXPECT_EQ(Quoratectl({e_, "workloads"}).out,
            "inbound-email running\n"
            "outbound-email paused queue flood\n");
  EXPECT_TRUE(Await([&] {
    // Three switches turned, three events (a value has two lines).
    const std::string out = ReadAll(Path("watch.out"));
    size_t puts = 0;
    for (size_t at = out.find("PUT quorate/workload/"); at != std::string::npos;
         at = out.find("PUT quorate/workload/", at + 1)) {
      ++puts;
    }
    return puts == 3;
  })) << ReadAll(Path("watch.out"));
  watch.Signal(SIGTERM);
  EXPECT_EQ(watch.Wait(absl::Seconds(10)).value_or(-1), 0);
  EXPECT_EQ(Quoratectl({e_, "pause"}).exit, 2);
  EXPECT_EQ(Quoratectl({e_, "pause", "a/b"}).exit, 2);
  EXPECT_EQ(Quoratectl({e_, "resume", "x", "--reason=no"}).exit, 2);
  EXPECT_EQ(Quoratectl({e_, "workloads", "x"}).exit, 2);
}

// shards create and shards GROUP, as CONTRACTS.md has them.
TEST_F(RecipesTest, Quoratectl_ShardsCreateAndList) {
  EXPECT_EQ(Quoratectl({e_, "shards", "mail"}).exit, 1) << "unknown group";
  ASSERT_EQ(Quoratectl({e_, "shards", "create", "mail", "3"}).exit, 0);
  EXPECT_EQ(Quoratectl({e_, "shards", "create", "mail", "3"}).exit, 0);
  EXPECT_EQ(Quoratectl({e_, "shards", "create", "mail", "4"}).exit, 1);
  EXPECT_EQ(Quoratectl({e_, "shards", "mail"}).out,
            "0 - - 0 unowned\n1 - - 0 unowned\n2 - - 0 unowned\n");
  EXPECT_EQ(Quoratectl({e_, "shards", "create", "a/b", "3"}).exit, 2);
  EXPECT_EQ(Quoratectl({e_, "shards", "create", "x", "0"}).exit, 2);
  EXPECT_EQ(Quoratectl({e_, "shards", "create", "x", "many"}).exit, 2);
  EXPECT_EQ(Quoratectl({e_, "shards"}).exit, 2);
  EXPECT_EQ(Quoratectl({e_, "shards", "mail", "--drain=1s"}).exit, 2);
  EXPECT_EQ(Quoratectl({e_, "shards", "create", "y", "2", "--zone=a"}).exit, 2);
  EXPECT_EQ(Quoratectl({e_, "put", "k", "v", "--weight=2"}).exit, 2);
  // The group's keys are the cluster's to write.
  EXPECT_EQ(Quoratectl({e_, "put", "quorate/shards/mail/config", "x"}).exit, 1);
}

// Two processors (`shards join`) share a group; one is killed with
// SIGKILL. Its shards stay its own until its session's TTL has passed,
// then all move to the other, each with a higher epoch.
TEST_F(RecipesTest, KilledShardOwner_ItsShardsMoveAfterItsTtl) {
  ASSERT_EQ(Quoratectl({e_, "shards", "create", "mail", "6"}).exit, 0);
  Process a({QUORATECTL_BINARY, e_, "shards", "join", "mail", "--zone=az-a",
             "--ttl=2s"},
            Path("a.out"));
  ASSERT_TRUE(Await([&] {
    return ReadAll(Path("a.out")).find("ASSIGNED 5 ") != std::string::npos;
  })) << ReadAll(Path("a.out"));
  Process b({QUORATECTL_BINARY, e_, "shards", "join", "mail", "--zone=az-b",
             "--ttl=2s"},
            Path("b.out"));
  // Three shards drain from a to b.
  auto owners = [&] {
    std::map<std::string, int> count;
    for (absl::string_view line : absl::StrSplit(
             Quoratectl({e_, "shards", "mail"}).out, '\n', absl::SkipEmpty())) {
      const std::vector<std::string> w = absl::StrSplit(line, ' ');
      if (w.size() == 5 && w[4] == "owned") ++count[w[2]];
    }
    return count;
  };
  ASSERT_TRUE(Await([&] {
    const std::map<std::string, int> c = owners();
    return c.size() == 2 && c.count("az-a") && c.at("az-a") == 3;
  })) << ReadAll(Path("a.out"))
      << ReadAll(Path("b.out"));
  EXPECT_NE(ReadAll(Path("a.out")).find("REVOKED "), std::string::npos);
  a.Signal(SIGKILL);
  ASSERT_TRUE(a.Wait(absl::Seconds(10)).has_value());
  const std::map<std::string, int> at_kill = owners();
  EXPECT_EQ(at_kill.count("az-a") ? at_kill.at("az-a") : 0, 3)
      << "a's shards moved at once, not after its session's TTL";
  ASSERT_TRUE(Await([&] {
    const std::map<std::string, int> c = owners();
    return c.size() == 1 && c.count("az-b") && c.at("az-b") == 6;
  })) << ReadAll(Path("b.out"));
  // b was assigned every shard, the three from a at a higher epoch.
  const std::string out = ReadAll(Path("b.out"));
  int assigned = 0;
  for (absl::string_view line : absl::StrSplit(out, '\n', absl::SkipEmpty())) {
    if (absl::StartsWith(line, "ASSIGNED ")) ++assigned;
  }
  EXPECT_EQ(assigned, 6) << out;
  b.Signal(SIGINT);
  EXPECT_EQ(b.Wait(absl::Seconds(20)).value_or(-1), 0)
      << ReadAll(Path("b.out"));
}

// A planned join: b joins while a owns every shard. The group's keys,
// replayed in order by `quoratectl watch --rev=1` in a third process,
// show each shard that moves pass through "draining" (a revoked, a
// releasing it) before b owns it at the next epoch; never straight from
// a to b. a prints REVOKED for exactly those shards, b ASSIGNED with the
// new epochs, and only as many move as b's share.
TEST_F(RecipesTest, PlannedJoin_ShardsDrainThenMove) {
  ASSERT_EQ(Quoratectl({e_, "shards", "create", "mail", "6"}).exit, 0);
  Process a({QUORATECTL_BINARY, e_, "shards", "join", "mail", "--zone=az-a"},
            Path("a.out"));
  ASSERT_TRUE(Await([&] {
    return ReadAll(Path("a.out")).find("ASSIGNED 5 ") != std::string::npos;
  })) << ReadAll(Path("a.out"));
  Process b({QUORATECTL_BINARY, e_, "shards", "join", "mail", "--zone=az-b"},
            Path("b.out"));
  auto owned_by_b = [&] {
    int n = 0;
    for (absl::string_view line : absl::StrSplit(
             Quoratectl({e_, "shards", "mail"}).out, '\n', absl::SkipEmpty())) {
      const std::vector<std::string> w = absl::StrSplit(line, ' ');
      n += w.size() == 5 && w[2] == "az-b" && w[4] == "owned";
    }
    return n;
  };
  ASSERT_TRUE(Await([&] { return owned_by_b() == 3; }))
      << ReadAll(Path("a.out")) << ReadAll(Path("b.out"));

  // Every change of every shard, in order, from the group's creation.
  Process w({QUORATECTL_BINARY, e_, "watch", "quorate/shards/mail/shard/",
             "--prefix", "--rev=1"},
            Path("w.out"));
  struct State {
    std::string owner, phase, next;
    uint64_t epoch = 0;
  };
  std::map<uint32_t, std::vector<State>> history;
  auto parse = [&] {
    history.clear();
    for (absl::string_view line :
         absl::StrSplit(ReadAll(Path("w.out")), '\n', absl::SkipEmpty())) {
      // PUT KEY MOD_REVISION OWNER EPOCH PHASE NEXT ACKED
      const std::vector<std::string> f = absl::StrSplit(line, ' ');
      uint32_t shard = 0;
      State st;
      if (f.size() != 8 || f[0] != "PUT" ||
          !absl::SimpleAtoi(f[1].substr(f[1].rfind('/') + 1), &shard) ||
          !absl::SimpleAtoi(f[4], &st.epoch)) {
        continue;
      }
      st.owner = f[3];
      st.phase = f[5];
      st.next = f[6];
      history[shard].push_back(st);
    }
    int final_owners = 0;
    for (const auto& [shard, states] : history) {
      final_owners += states.back().phase == "owned";
    }
    return history.size() == 6 && final_owners == 6;
  };
  ASSERT_TRUE(Await(parse)) << ReadAll(Path("w.out"));
  w.Signal(SIGINT);

  std::set<uint32_t> moved;
  for (const auto& [shard, states] : history) {
    const std::string first =
        states.front().owner == "-" ? states.at(1).owner : states.front().owner;
    for (size_t i = 1; i < states.size(); ++i) {
      const State& before = states[i - 1];
      const State& now = states[i];
      if (before.owner == "-" || now.owner == before.owner) continue;
      // An owner changed: only after a drain toward the new one.
      EXPECT_EQ(before.phase, "draining")
          << "shard " << shard << " went from " << before.owner << " to "
          << now.owner << " without draining";
      EXPECT_EQ(before.next, now.owner) << "shard " << shard;
      EXPECT_EQ(now.epoch, before.epoch + 1) << "shard " << shard;
      EXPECT_EQ(before.owner, first) << "shard " << shard << " moved twice";
      moved.insert(shard);
    }
  }
  EXPECT_EQ(moved.size(), 3u) << "b's share is 3 of 6";

  // a was asked to drain exactly those; b was assigned them.
  std::set<uint32_t> revoked, assigned;
  for (absl::string_view line :
       absl::StrSplit(ReadAll(Path("a.out")), '\n', absl::SkipEmpty())) {
    uint32_t shard = 0;
    if (absl::ConsumePrefix(&line, "REVOKED ") &&
        absl::SimpleAtoi(line, &shard)) {
      revoked.insert(shard);
    }
  }
  for (absl::string_view line :
       absl::StrSplit(ReadAll(Path("b.out")), '\n', absl::SkipEmpty())) {
    const std::vector<std::string> f = absl::StrSplit(line, ' ');
    uint32_t shard = 0;
    if (f.size() == 3 && f[0] == "ASSIGNED" && absl::SimpleAtoi(f[1], &shard)) {
      assigned.insert(shard);
    }
  }
  EXPECT_EQ(revoked, moved) << ReadAll(Path("a.out"));
  EXPECT_EQ(assigned, moved) << ReadAll(Path("b.out"));
  b.Signal(SIGINT);
  EXPECT_EQ(b.Wait(absl::Seconds(20)).value_or(-1), 0)
      << ReadAll(Path("b.out"));
  a.Signal(SIGINT);
  EXPECT_EQ(a.Wait(absl::Seconds(20)).value_or(-1), 0)
      << ReadAll(Path("a.out"));
}

// Client::CheckFence tells the current holder from a stale one, for each
// kind of fence: a lock (held, then taken over), a shard (owned, then
// released), and the cluster (the leader's term); a name that names no
// holder, and a shard of no group, are refused as such.
TEST_F(RecipesTest, CheckFence_TellsTheCurrentHolderFromAStaleOne) {
  ClientOptions co;
  co.endpoints = absl::StrSplit(Endpoints(), ',');
  co.timeout = absl::Seconds(10);
  auto client = Client::Create(co);
  ASSERT_TRUE(client.ok()) << client.status();
  Client& c = **client;
  SessionOptions so;
  so.ttl = absl::Seconds(5);
  auto a = c.StartSession(so);
  auto b = c.StartSession(so);
  ASSERT_TRUE(a.ok() && b.ok());

  // A lock: A holds it; then B, after A released it.
  auto lock_a = Lock::Create(&c, a->get(), "billing");
  auto lock_b = Lock::Create(&c, b->get(), "billing");
  ASSERT_TRUE(lock_a.ok() && lock_b.ok());
  ASSERT_TRUE((*lock_a)->Acquire(absl::Seconds(10)).ok());
  uint64_t ta = 0;
  ASSERT_TRUE((*lock_a)->Held(&ta));
  EXPECT_TRUE(c.CheckFence("lock/billing", ta).ok());
  ASSERT_TRUE((*lock_a)->Release().ok());
  const absl::Status none = c.CheckFence("lock/billing", ta);
  EXPECT_EQ(none.code(), absl::StatusCode::kFailedPrecondition) << none;
  ASSERT_TRUE((*lock_b)->Acquire(absl::Seconds(10)).ok());
  uint64_t tb = 0;
  ASSERT_TRUE((*lock_b)->Held(&tb));
  ASSERT_GT(tb, ta);
  const absl::Status stale = c.CheckFence("lock/billing", ta);
  EXPECT_EQ(stale.code(), absl::StatusCode::kFailedPrecondition) << stale;
  EXPECT_NE(stale.message().find(absl::StrCat(
                "epoch ", ta, " is below the current holder's, ", tb)),
            std::string::npos)
      << stale;
  EXPECT_TRUE(c.CheckFence("lock/billing", tb).ok());
  EXPECT_EQ(c.CheckFence("lock/billing", tb + 1).code(),
            absl::StatusCode::kFailedPrecondition);

  // A shard: owned by A's processor, then released.
  ASSERT_TRUE(CreateShardGroup(&c, "fenced", 2).ok());
  auto group = ShardGroup::Join(&c, a->get(), "fenced", {});
  ASSERT_TRUE(group.ok()) << group.status();
  uint64_t e = 0;
  ASSERT_TRUE(Await([&] { return (*group)->Owns(1, &e); }));
  EXPECT_TRUE(c.CheckFence("fenced/1", e).ok());
  EXPECT_EQ(c.CheckFence("fenced/1", e + 1).code(),
            absl::StatusCode::kFailedPrecondition);
  ASSERT_TRUE((*group)->Release(1).ok());
  // Released: e is no one's now (or, once it moved, below its new owner's).
  ASSERT_TRUE(Await([&] { return !c.CheckFence("fenced/1", e).ok(); }));
  EXPECT_EQ(c.CheckFence("fenced/1", e).code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(c.CheckFence("fenced/7", 1).code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(c.CheckFence("nogroup/1", 1).code(), absl::StatusCode::kNotFound);

  // The cluster: the leader's term (read again if an election came
  // between the read and the check).
  uint64_t term = 0;
  EXPECT_TRUE(Await([&] {
    term =
        static_cast<uint64_t>(testing::JsonInt(Status(AwaitLeader()), "term"));
    return term > 0 && c.CheckFence("cluster", term).ok();
  })) << "term "
      << term;
  EXPECT_EQ(c.CheckFence("cluster", term + 1000).code(),
            absl::StatusCode::kFailedPrecondition);

  // Names that name no holder, and epoch 0.
  EXPECT_EQ(c.CheckFence("no-such-kind", 1).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(c.CheckFence("fenced/x", 1).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(c.CheckFence("lock/billing", 0).code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace quorate
