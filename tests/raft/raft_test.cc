// Unit tests of the consensus core, named after the rule they check: Raft
// paper §5 and §8, dissertation §3.10 (transfer), §4 (membership), §4.2.3
// (disruptive servers), §6.4 (ReadIndex), §9.6 (PreVote).
#include "raft/raft.h"

#include <gtest/gtest.h>

#include <memory>
#include <set>
#include <string>

#include "absl/strings/str_cat.h"
#include "raft/cluster.h"

namespace quorate::raft {
namespace {

using testing::Cluster;
using testing::Msg;

constexpr int64_t kHeartbeat = 10;
constexpr int64_t kElection = 100;

class RaftTest : public ::testing::Test {
 protected:
  // Every test ends with the cluster's invariants intact: election safety,
  // log matching, state machine safety, monotonic term and commit.
  void TearDown() override {
    if (c_ != nullptr) {
      EXPECT_EQ(c_->CheckInvariants(), "");
    }
  }

  Cluster& Make(int voters, int learners = 0, uint64_t seed = 1,
                Config config = Cluster::DefaultConfig()) {
    c_ = std::make_unique<Cluster>(voters, learners, seed, config);
    return *c_;
  }

  // Proposes `n` entries at the leader and stabilizes.
  // Member 1's default configuration, drawing its randomness from `rng`.
  static Config MemberOneConfig(SeededRandom* rng) {
    Config c = Cluster::DefaultConfig();
    c.id = 1;
    c.random = rng;
    return c;
  }

  void ProposeN(uint64_t leader, int n, const std::string& prefix = "v") {
    for (int i = 0; i < n; ++i) {
      ASSERT_TRUE(
          c_->raft(leader).Propose(prefix + std::to_string(i), c_->now()).ok());
    }
    c_->Stabilize();
  }

  std::unique_ptr<Cluster> c_;
};

// --- Configuration and restart. --------------------------------------------

TEST_F(RaftTest, Config_RejectsInvalidSettings) {
  SeededRandom rng(1);
  Config c;
  c.random = &rng;
  EXPECT_EQ(Raft::Create(c, {}, 0).status().code(),
            absl::StatusCode::kInvalidArgument);  // id 0
  c.id = 1;
  c.election_timeout_ns = c.heartbeat_interval_ns;
  EXPECT_EQ(Raft::Create(c, {}, 0).status().code(),
            absl::StatusCode::kInvalidArgument);
  c.election_timeout_ns = 10 * c.heartbeat_interval_ns;
  c.commit_notify_delay_ns = c.heartbeat_interval_ns;
  EXPECT_EQ(Raft::Create(c, {}, 0).status().code(),
            absl::StatusCode::kInvalidArgument);
  c.commit_notify_delay_ns = -1;
  EXPECT_EQ(Raft::Create(c, {}, 0).status().code(),
            absl::StatusCode::kInvalidArgument);
  c.commit_notify_delay_ns = c.heartbeat_interval_ns - 1;
  EXPECT_TRUE(Raft::Create(c, {}, 0).ok());
  c.random = nullptr;
  EXPECT_EQ(Raft::Create(c, {}, 0).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(RaftTest, Create_RejectsGapInRestoredLog) {
  SeededRandom rng(1);
  Config c = MemberOneConfig(&rng);
  RestoredState r;
  r.snapshot.mutable_conf_state()->add_voters(1);
  Entry e;
  e.set_term(1);
  e.set_index(1);
  r.entries.push_back(e);
  e.set_index(3);
  r.entries.push_back(e);
  auto raft = Raft::Create(c, r, 0);
  EXPECT_EQ(raft.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_NE(raft.status().message().find("expected entry 2"),
            absl::string_view::npos);
}

// What storage hands the core is checked, not trusted: a damaged data
// directory is a clear error at start, never an abort or a wild read.
TEST_F(RaftTest, Create_RejectsImpossibleRestoredState) {
  SeededRandom rng(1);
  Config c = MemberOneConfig(&rng);
  auto refused = [&](const RestoredState& r, const std::string& why) {
    auto raft = Raft::Create(c, r, 0);
    EXPECT_EQ(raft.status().code(), absl::StatusCode::kDataLoss) << why;
    EXPECT_NE(raft.status().message().find(why), absl::string_view::npos)
        << raft.status();
  };
  RestoredState voter0;
  voter0.snapshot.set_index(5);
  voter0.snapshot.set_term(2);
  for (uint64_t id : {0, 2, 3})
    voter0.snapshot.mutable_conf_state()->add_voters(id);
  refused(voter0, "id 0");
  RestoredState huge;
  huge.snapshot.set_index(~uint64_t{0});
  huge.snapshot.set_term(1);
  huge.snapshot.mutable_conf_state()->add_voters(1);
  refused(huge, "out of range");
  RestoredState back;
  back.snapshot.set_index(40);
  back.snapshot.set_term(5);
  back.snapshot.mutable_conf_state()->add_voters(1);
  Entry e;
  e.set_index(41);
  e.set_term(3);
  back.entries.push_back(e);
  refused(back, "terms go back");
}

TEST_F(RaftTest, Create_RejectsCommitBeyondLog) {
  SeededRandom rng(1);
  Config c = MemberOneConfig(&rng);
  RestoredState r;
  r.hard_state.set_commit(5);
  EXPECT_EQ(Raft::Create(c, r, 0).status().code(), absl::StatusCode::kDataLoss);
}

TEST_F(RaftTest, Create_TakesTermOfEntriesNewerThanHardState) {
  SeededRandom rng(1);
  Config c = MemberOneConfig(&rng);
  RestoredState r;
  r.snapshot.mutable_conf_state()->add_voters(1);
  r.hard_state.set_term(2);
  r.hard_state.set_vote(1);
  Entry e;
  e.set_term(4);
  e.set_index(1);
  r.entries.push_back(e);
  auto raft = Raft::Create(c, r, 0);
  ASSERT_TRUE(raft.ok());
  EXPECT_EQ((*raft)->term(), 4u);
  EXPECT_EQ((*raft)->GetStatus().vote, 0u);
}

// --- §5.1 terms. ------------------------------------------------------------

TEST_F(RaftTest, FollowerUpdatesTermFromMessage_Sec5_1) {
  Cluster& c = Make(3);
  ASSERT_TRUE(c.Elect(1));
  const uint64_t term = c.raft(1).term();
  Message m = Msg(MESSAGE_TYPE_APPEND, 3, 2, term + 5);
  m.set_index(0);
  m.set_log_term(0);
  ASSERT_TRUE(c.raft(2).Step(m, c.now()).ok());
  EXPECT_EQ(c.raft(2).term(), term + 5);
  EXPECT_EQ(c.raft(2).leader(), 3u);
  EXPECT_EQ(c.raft(2).role(), Role::kFollower);
  c.DropAll();
}

TEST_F(RaftTest, LeaderStepsDownOnHigherTerm_Sec5_1) {
  Cluster& c = Make(3);
  ASSERT_TRUE(c.Elect(1));
  const uint64_t term = c.raft(1).term();
  Message m = Msg(MESSAGE_TYPE_APPEND_RESPONSE, 2, 1, term + 1);
  ASSERT_TRUE(c.raft(1).Step(m, c.now()).ok());
  EXPECT_EQ(c.raft(1).role(), Role::kFollower);
  EXPECT_EQ(c.raft(1).term(), term + 1);
  c.DropAll();
}

TEST_F(RaftTest, RejectsMessagesFromOlderTerms_Sec5_1) {
  Cluster& c = Make(3);
  ASSERT_TRUE(c.Elect(1));
  const uint64_t term = c.raft(2).term();
  const uint64_t last = c.raft(2).log().last_index();
  Message m = Msg(MESSAGE_TYPE_APPEND, 3, 2, term - 1);
  m.set_index(last);
  m.set_log_term(term - 1);  // a message is never newer than its own term
  Entry* e = m.add_entries();
  e->set_term(term - 1);
  e->set_index(last + 1);
  ASSERT_TRUE(c.raft(2).Step(m, c.now()).ok());
  EXPECT_EQ(c.raft(2).log().last_index(), last);
  EXPECT_EQ(c.raft(2).leader(), 1u);
  // The stale sender is told the current term.
  Ready rd = c.raft(2).GetReady();
  ASSERT_EQ(rd.messages_after_persist.size(), 1u);
  EXPECT_EQ(rd.messages_after_persist[0].to(), 3u);
  EXPECT_EQ(rd.messages_after_persist[0].term(), term);
  c.raft(2).Advance();
}

// --- §5.2 elections. --------------------------------------------------------

TEST_F(RaftTest, ElectionTimeoutIsRandomizedInTto2T_Sec5_2) {
  SeededRandom rng(7);
  Config c = MemberOneConfig(&rng);
  RestoredState r;
  r.snapshot.mutable_conf_state()->add_voters(1);
  r.snapshot.mutable_conf_state()->add_voters(2);
  int64_t min_seen = INT64_MAX;
  int64_t max_seen = 0;
  for (int i = 0; i < 500; ++i) {
    auto raft = Raft::Create(c, r, 1000);
    ASSERT_TRUE(raft.ok());
    const int64_t timeout = (*raft)->NextDeadline() - 1000;
    min_seen = std::min(min_seen, timeout);
    max_seen = std::max(max_seen, timeout);
  }
  EXPECT_GE(min_seen, kElection);
  EXPECT_LT(max_seen, 2 * kElection);
  // Spread over the range, not a constant.
  EXPECT_LT(min_seen, kElection + kElection / 10);
  EXPECT_GT(max_seen, 2 * kElection - kElection / 10);
}

// A follower told that its leader is unreachable campaigns in [T, 1.25 T)
// after it last heard from it, not [T, 2 T); never before T; and a
// heartbeat from the leader restores the usual deadline.
TEST_F(RaftTest, LeaderUnreachable_FollowerCampaignsSoonerButNotBeforeT) {
  int64_t latest = 0;
  for (uint64_t seed = 1; seed <= 40; ++seed) {
    Cluster c(3, 0, seed);
    c.AdvanceTime(3 * kElection);
    const uint64_t leader = c.Leader();
    ASSERT_NE(leader, 0u) << "seed " << seed;
    c.DropAll();
    const uint64_t follower = leader == 1 ? 2 : 1;
    const uint64_t other = 6 - leader - follower;
    Raft& f = c.raft(follower);
    ASSERT_EQ(f.leader(), leader);
    // A heartbeat now: the follower last heard from the leader at `heard`.
    Message hb;
    hb.set_type(MESSAGE_TYPE_HEARTBEAT);
    hb.set_from(leader);
    hb.set_to(follower);
    hb.set_term(f.term());
    hb.set_commit(f.commit());
    const int64_t heard = c.now();
    ASSERT_TRUE(f.Step(hb, heard).ok());
    f.ReportUnreachable(other);  // not the leader: nothing changes
    const int64_t usual = f.NextDeadline();
    f.ReportUnreachable(leader);
    const int64_t sooner = f.NextDeadline();
    f.ReportUnreachable(leader);  // again, in the same silence: no new draw
    EXPECT_EQ(f.NextDeadline(), sooner);
    EXPECT_GE(sooner, heard + kElection) << "seed " << seed;
    EXPECT_LT(sooner, heard + kElection + kElection / 4) << "seed " << seed;
    EXPECT_LE(sooner, usual);
    latest = std::max(latest, usual - heard);
    // The leader is heard again: the usual randomized deadline is back.
    ASSERT_TRUE(f.Step(hb, heard + 1).ok());
    EXPECT_GE(f.NextDeadline(), heard + 1 + kElection);
    // A leader told a follower is unreachable keeps its heartbeat deadline.
    Raft& l = c.raft(leader);
    const int64_t before = l.NextDeadline();
    l.ReportUnreachable(follower);
    EXPECT_EQ(l.NextDeadline(), before);
    c.DropAll();
  }
  // The usual deadlines reached past 1.25 T, which the sooner ones never do.
  EXPECT_GT(latest, kElection + kElection / 4);
}

TEST_F(RaftTest, LeaderElectedByMajority_Sec5_2) {
  Cluster& c = Make(5);
  c.AdvanceTime(3 * kElection);
  const uint64_t leader = c.Leader();
  ASSERT_NE(leader, 0u);
  int leaders = 0;
  for (uint64_t id : c.ids()) {
    if (c.raft(id).role() == Role::kLeader) ++leaders;
    EXPECT_EQ(c.raft(id).leader(), leader) << "member " << id;
  }
  EXPECT_EQ(leaders, 1);
}

TEST_F(RaftTest, ElectionFailsWithoutMajority_Sec5_2) {
  Cluster& c = Make(3);
  c.Isolate(1);
  c.Isolate(2);
  c.AdvanceTime(10 * kElection);
  EXPECT_EQ(c.Leader(), 0u);
}

TEST_F(RaftTest, VotesOncePerTermEvenAfterRestart_Sec5_2) {
  Cluster& c = Make(3);
  c.AdvanceTime(kElection);  // leases from start lapse
  // Member 3 votes for 1 in term 1.
  Message v1 = Msg(MESSAGE_TYPE_VOTE, 1, 3, 1);
  ASSERT_TRUE(c.raft(3).Step(v1, c.now()).ok());
  c.DropAll();
  c.ProcessReadies();
  c.DropAll();
  EXPECT_EQ(c.member(3).disk.hard_state.vote(), 1u);
  c.Crash(3);
  c.Restart(3);
  c.AdvanceTime(kElection);  // past the restart lease
  c.DropAll();
  Message v2 = Msg(MESSAGE_TYPE_VOTE, 2, 3, 1);
  ASSERT_TRUE(c.raft(3).Step(v2, c.now()).ok());
  Ready rd = c.raft(3).GetReady();
  ASSERT_EQ(rd.messages_after_persist.size(), 1u);
  EXPECT_TRUE(rd.messages_after_persist[0].reject());
  c.raft(3).Advance();
}

TEST_F(RaftTest, CandidateWithOutdatedLogLoses_Sec5_4_1) {
  Cluster& c = Make(3);
  ASSERT_TRUE(c.Elect(1));
  c.Isolate(3);
  ProposeN(1, 3);
  c.Heal();
  c.Isolate(1);
  c.SkipTime(kElection);  // leases lapse; nobody ticks
  c.raft(3).Campaign(c.now());
  c.Stabilize();
  // 2 has three entries 3 lacks: it refuses, and 3 cannot win.
  EXPECT_NE(c.raft(3).role(), Role::kLeader);
  c.raft(2).Campaign(c.now());
  c.Stabilize();
  EXPECT_EQ(c.raft(2).role(), Role::kLeader);
}

// --- §5.3 replication, §8 empty entry. --------------------------------------

TEST_F(RaftTest, NewLeaderAppendsEmptyEntry_Sec8) {
  Cluster& c = Make(3);
  ASSERT_TRUE(c.Elect(2));
  const RaftLog& log = c.raft(2).log();
  EXPECT_EQ(log.At(log.last_index()).type(), ENTRY_TYPE_EMPTY);
  EXPECT_EQ(log.At(log.last_index()).term(), c.raft(2).term());
  EXPECT_EQ(c.raft(2).commit(), log.last_index());
}

TEST_F(RaftTest, CommitsWhenMajorityAcknowledges_Sec5_3) {
  Cluster& c = Make(5);
  ASSERT_TRUE(c.Elect(1));
  c.Isolate(4);
  c.Isolate(5);
  auto index = c.raft(1).Propose("x", c.now());
  ASSERT_TRUE(index.ok());
  c.Stabilize();
  EXPECT_EQ(c.raft(1).commit(), *index);
  EXPECT_EQ(c.member(1).applied.back().data(), "x");
  // With only two of five, nothing commits.
  c.Isolate(3);
  auto second = c.raft(1).Propose("y", c.now());
  ASSERT_TRUE(second.ok());
  c.Stabilize();
  EXPECT_EQ(c.raft(1).commit(), *index);
}

TEST_F(RaftTest, CommitNotify_RidesOnTheNextAppendOrGoesAfterTheDelay) {
  constexpr int64_t kDelay = kHeartbeat / 2;
  Config config = Cluster::DefaultConfig();
  config.commit_notify_delay_ns = kDelay;
  Cluster& c = Make(3, 0, 1, config);
  ASSERT_TRUE(c.Elect(1));
  c.AdvanceTime(kHeartbeat);  // whatever the election left due is sent
  Raft& l = c.raft(1);
  auto first = l.Propose("a", c.now());
  ASSERT_TRUE(first.ok());
  c.Stabilize();  // no time passes
  ASSERT_EQ(l.commit(), *first);
  // The followers hold the entry but have not been told it committed, and
  // the leader means to tell them kDelay from now.
  EXPECT_LT(c.raft(2).commit(), *first);
  EXPECT_LT(c.raft(3).commit(), *first);
  EXPECT_EQ(l.NextDeadline(), c.now() + kDelay);
  // The next proposal's append carries it.
  auto second = l.Propose("b", c.now());
  ASSERT_TRUE(second.ok());
  c.Stabilize();
  ASSERT_EQ(l.commit(), *second);
  EXPECT_EQ(c.raft(2).commit(), *first);
  EXPECT_EQ(c.raft(3).commit(), *first);
  // Nothing follows: an append of its own goes out after the delay.
  EXPECT_EQ(l.NextDeadline(), c.now() + kDelay);
  c.AdvanceTime(kDelay);
  c.Stabilize();
  EXPECT_EQ(c.raft(2).commit(), *second);
  EXPECT_EQ(c.raft(3).commit(), *second);
}

TEST_F(RaftTest, CommitNotify_WithoutDelayFollowersLearnAtOnce) {
  Cluster& c = Make(3);
  ASSERT_TRUE(c.Elect(1));
  auto index = c.raft(1).Propose("a", c.now());
  ASSERT_TRUE(index.ok());
  c.Stabilize();
  EXPECT_EQ(c.raft(2).commit(), *index);
  EXPECT_EQ(c.raft(3).commit(), *index);
}

TEST_F(RaftTest, ConflictingFollowerSuffixIsRepaired_Sec5_3) {
  Cluster& c = Make(3);
  ASSERT_TRUE(c.Elect(1));
  // Leader 1 appends entries that only it has.
  c.Isolate(1);
  ProposeN(1, 20, "lost");
  c.Heal();
  c.Isolate(1);
  ASSERT_TRUE(c.Elect(2));
  ProposeN(2, 5, "kept");
  c.Heal();
  c.AdvanceTime(5 * kHeartbeat);
  EXPECT_EQ(c.raft(1).role(), Role::kFollower);
  EXPECT_EQ(c.raft(1).log().last_index(), c.raft(2).log().last_index());
  for (uint64_t i = 1; i <= c.raft(2).log().last_index(); ++i) {
    EXPECT_EQ(c.raft(1).log().At(i).term(), c.raft(2).log().At(i).term());
  }
}

TEST_F(RaftTest, FastBacktrackingSkipsWholeTerms_Sec5_3) {
  Cluster& c = Make(3);
  ASSERT_TRUE(c.Elect(1));
  c.Isolate(1);
  ProposeN(1, 200, "lost");
  c.Heal();
  c.Isolate(1);
  ASSERT_TRUE(c.Elect(2));
  ProposeN(2, 2, "kept");
  c.Heal();
  int rejects = 0;
  c.on_deliver = [&](const Message& m) {
    if (m.type() == MESSAGE_TYPE_APPEND_RESPONSE && m.reject()) ++rejects;
  };
  c.AdvanceTime(3 * kHeartbeat);
  EXPECT_EQ(c.raft(1).log().last_index(), c.raft(2).log().last_index());
  // One rejection per conflicting term, not one per entry.
  EXPECT_LE(rejects, 3);
}

TEST_F(RaftTest, OnlyCurrentTermEntriesCommitByCounting_Sec5_4_2) {
  Config cfg = Cluster::DefaultConfig();
  cfg.pre_vote = false;
  Cluster& c = Make(3, 0, 1, cfg);
  ASSERT_TRUE(c.Elect(1));
  const uint64_t old_term = c.raft(1).term();
  // An entry of the old term reaches member 2 only, unacknowledged.
  c.Cut(2, 1);
  c.Cut(1, 3);
  auto old = c.raft(1).Propose("old", c.now());
  ASSERT_TRUE(old.ok());
  c.Stabilize();
  ASSERT_EQ(c.raft(2).log().last_index(), *old);
  ASSERT_LT(c.raft(2).commit(), *old);
  // Member 2 is elected in a new term with 3's vote.
  c.Heal();
  c.Isolate(1);
  c.SkipTime(kElection);
  c.raft(2).Campaign(c.now());
  c.DeliverOnce();  // vote request to 3
  c.DeliverOnce();  // 3 grants
  ASSERT_EQ(c.raft(2).role(), Role::kLeader);
  ASSERT_GT(c.raft(2).term(), old_term);
  c.ProcessReadies();
  c.DropAll();  // 3 never sees the new leader's entries
  // 3 acknowledges the old entry only: it is on a majority (2 and 3) but
  // of an older term, so counting replicas must not commit it.
  Message ack;
  ack.set_type(MESSAGE_TYPE_APPEND_RESPONSE);
  ack.set_from(3);
  ack.set_to(2);
  ack.set_term(c.raft(2).term());
  ack.set_index(*old);
  ASSERT_TRUE(c.raft(2).Step(ack, c.now()).ok());
  EXPECT_LT(c.raft(2).commit(), *old);
  // Acknowledging the new term's entry commits both.
  ack.set_index(*old + 1);
  ASSERT_TRUE(c.raft(2).Step(ack, c.now()).ok());
  EXPECT_EQ(c.raft(2).commit(), *old + 1);
  c.DropAll();
}

TEST_F(RaftTest, EntriesBatchedUpToMessageLimit) {
  Config cfg = Cluster::DefaultConfig();
  cfg.max_message_bytes = 1000;
  Cluster& c = Make(3, 0, 1, cfg);
  ASSERT_TRUE(c.Elect(1));
  c.Isolate(2);
  for (int i = 0; i < 50; ++i) {
    ASSERT_TRUE(c.raft(1).Propose(std::string(100, 'x'), c.now()).ok());
  }
  c.Stabilize();
  c.Heal();
  size_t max_entries = 0;
  size_t appends = 0;
  c.on_deliver = [&](const Message& m) {
    if (m.type() == MESSAGE_TYPE_APPEND && m.to() == 2 &&
        m.entries_size() > 0) {
      ++appends;
      max_entries = std::max<size_t>(max_entries, m.entries_size());
    }
  };
  c.AdvanceTime(2 * kHeartbeat);
  EXPECT_EQ(c.raft(2).log().last_index(), c.raft(1).log().last_index());
  // 116 bytes per entry counted: at most 8 fit in 1000 bytes.
  EXPECT_LE(max_entries, 8u);
  EXPECT_GE(max_entries, 2u);
  EXPECT_GE(appends, 50u / 8);
}

TEST_F(RaftTest, InflightBoundedByCountAndBytes) {
  Config cfg = Cluster::DefaultConfig();
  cfg.max_inflight_messages = 4;
  cfg.max_message_bytes = 200;  // one 100-byte entry per message
  Cluster& c = Make(3, 0, 1, cfg);
  ASSERT_TRUE(c.Elect(1));
  // Follower 2 stops answering; the leader may have at most 4 appends in
  // flight to it however much is proposed.
  c.Cut(2, 1);
  c.AdvanceTime(kHeartbeat);
  for (int round = 0; round < 10; ++round) {
    ASSERT_TRUE(c.raft(1).Propose(std::string(100, 'a'), c.now()).ok());
    c.Stabilize();
  }
  const Progress* pr = c.raft(1).progress(2);
  ASSERT_NE(pr, nullptr);
  EXPECT_LE(pr->inflights.count(), 4u);
  EXPECT_TRUE(pr->inflights.Full());
  // Member 3 keeps up, so everything commits.
  EXPECT_EQ(c.raft(1).commit(), c.raft(1).log().last_index());
  c.Heal();
  c.AdvanceTime(5 * kHeartbeat);
  EXPECT_EQ(c.raft(2).log().last_index(), c.raft(1).log().last_index());
}

// --- Proposals. -------------------------------------------------------------

TEST_F(RaftTest, Propose_AtFollowerIsUnavailableWithLeaderHint) {
  Cluster& c = Make(3);
  ASSERT_TRUE(c.Elect(1));
  auto r = c.raft(2).Propose("x", c.now());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_NE(r.status().message().find("member 1"), absl::string_view::npos);
}

TEST_F(RaftTest, Propose_BeyondUncommittedLimitIsResourceExhausted) {
  Config cfg = Cluster::DefaultConfig();
  cfg.max_uncommitted_bytes = 1000;
  Cluster& c = Make(3, 0, 1, cfg);
  ASSERT_TRUE(c.Elect(1));
  c.Isolate(1);
  absl::Status last;
  int accepted = 0;
  for (int i = 0; i < 20; ++i) {
    last = c.raft(1).Propose(std::string(100, 'x'), c.now()).status();
    if (last.ok()) ++accepted;
  }
  EXPECT_EQ(last.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_LT(accepted, 10);
  EXPECT_GT(accepted, 5);
  c.Heal();
  c.AdvanceTime(3 * kHeartbeat);
  EXPECT_TRUE(c.raft(1).Propose(std::string(100, 'x'), c.now()).ok());
}

// --- Ready contract. --------------------------------------------------------

TEST_F(RaftTest, Ready_VoteRequestsWaitForPersistOfOwnVote) {
  Config cfg = Cluster::DefaultConfig();
  cfg.pre_vote = false;  // the candidate sends Vote directly
  Cluster& c = Make(3, 0, 1, cfg);
  c.SkipTime(kElection);  // past the lease every member takes at start
  Raft& r = c.raft(1);
  r.Campaign(c.now());
  ASSERT_TRUE(r.HasReady());
  Ready rd = r.GetReady();
  ASSERT_TRUE(rd.hard_state.has_value());
  EXPECT_EQ(rd.hard_state->vote(), 1u);
  EXPECT_TRUE(rd.must_sync);
  for (const Message& m : rd.messages) {
    EXPECT_NE(m.type(), MESSAGE_TYPE_VOTE) << testing::Describe(m);
  }
  int votes = 0;
  for (const Message& m : rd.messages_after_persist) {
    if (m.type() == MESSAGE_TYPE_VOTE) ++votes;
  }
  EXPECT_EQ(votes, 2);
  r.Advance();
  c.DropAll();
}

TEST_F(RaftTest, Ready_LeaderAppendsGoOutBeforeOwnPersist) {
  Cluster& c = Make(3);
  ASSERT_TRUE(c.Elect(1));
  Raft& r = c.raft(1);
  const uint64_t commit = r.commit();
  ASSERT_TRUE(r.Propose("x", c.now()).ok());
  Ready rd = r.GetReady();
  ASSERT_EQ(rd.entries.size(), 1u);
  EXPECT_TRUE(rd.must_sync);
  int appends = 0;
  for (const Message& m : rd.messages) {
    if (m.type() == MESSAGE_TYPE_APPEND) ++appends;
  }
  EXPECT_EQ(appends, 2);
  // Followers acknowledge before the leader's Advance: the entry still
  // commits only through them (2 of 3), never counting the leader's
  // unpersisted copy.
  for (const Message& m : rd.messages) {
    ASSERT_TRUE(c.raft(m.to()).Step(m, c.now()).ok());
  }
  c.ProcessReadies();
  std::deque<Message> net;
  net.swap(c.network());
  for (const Message& m : net) {
    if (m.to() == 1) {
      ASSERT_TRUE(r.Step(m, c.now()).ok());
    }
  }
  EXPECT_EQ(r.commit(), commit + 1);  // followers 2 and 3 form a quorum
  r.Advance();
  c.Stabilize();
}

// Member 1 of a 3-member cluster leads, with a Ready of one entry handed
// out and not yet durable (its fsync is slow).
void LeaderWithAWriteInFlight(Cluster& c) {
  ASSERT_TRUE(c.Elect(1));
  Raft& r = c.raft(1);
  ASSERT_TRUE(r.Propose("x", c.now()).ok());
  Ready rd = r.GetReady();
  ASSERT_EQ(rd.entries.size(), 1u);
}

TEST_F(RaftTest, Ready_TakeMessagesLetsHeartbeatsOutDuringASlowWrite) {
  Cluster& c = Make(3);
  ASSERT_NO_FATAL_FAILURE(LeaderWithAWriteInFlight(c));
  Raft& r = c.raft(1);
  EXPECT_TRUE(r.TakeMessages().empty());  // nothing new yet
  const int64_t later =
      c.now() + Cluster::DefaultConfig().heartbeat_interval_ns;
  r.Tick(later);
  EXPECT_FALSE(r.HasReady());  // one Ready at a time
  std::set<uint64_t> heartbeats;
  for (const Message& m : r.TakeMessages()) {
    if (m.type() == MESSAGE_TYPE_HEARTBEAT) heartbeats.insert(m.to());
  }
  EXPECT_EQ(heartbeats, (std::set<uint64_t>{2, 3}));
  r.Advance();
  c.DropAll();
}

// A leader whose disk is slow still answers reads: the confirmation of a
// quorum round needs nothing of its own disk.
TEST_F(RaftTest, Ready_TakeReadStatesAnswersReadsDuringASlowWrite) {
  Cluster& c = Make(3);
  ASSERT_NO_FATAL_FAILURE(LeaderWithAWriteInFlight(c));
  Raft& r = c.raft(1);
  ASSERT_TRUE(r.ReadIndex(42, c.now()).ok());
  EXPECT_TRUE(r.TakeReadStates().empty());  // the round is not confirmed
  // The round's heartbeats go out early; the followers acknowledge them.
  for (const Message& m : r.TakeMessages()) {
    if (m.type() != MESSAGE_TYPE_HEARTBEAT) continue;
    Message resp;
    resp.set_type(MESSAGE_TYPE_HEARTBEAT_RESPONSE);
    resp.set_from(m.to());
    resp.set_to(1);
    resp.set_term(r.term());
    resp.set_round(m.round());
    ASSERT_TRUE(r.Step(resp, c.now()).ok());
  }
  const std::vector<ReadState> states = r.TakeReadStates();
  ASSERT_EQ(states.size(), 1u);
  EXPECT_EQ(states[0].request_id, 42u);
  EXPECT_EQ(states[0].term, r.term());
  r.Advance();
  // Taken once: the next Ready does not carry it again.
  if (r.HasReady()) {
    EXPECT_TRUE(r.GetReady().read_states.empty());
    r.Advance();
  }
  c.DropAll();
}

// Under load a leader's disk is always busy with the next batch: entries
// committed meanwhile are applied at once, not after that write. Only
// entries durable on the leader itself count toward the commit.
TEST_F(RaftTest, Ready_TakeCommittedEntriesAppliesDuringASlowWrite) {
  Cluster& c = Make(3);
  ASSERT_TRUE(c.Elect(1));
  c.DropAll();
  Raft& r = c.raft(1);
  EXPECT_TRUE(r.TakeCommittedEntries().empty());  // no Ready outstanding
  ASSERT_TRUE(r.Propose("a", c.now()).ok());
  Ready first = r.GetReady();
  ASSERT_EQ(first.entries.size(), 1u);
  const uint64_t a = first.entries[0]->index();
  r.Advance();  // "a" is durable on the leader
  ASSERT_TRUE(r.Propose("b", c.now()).ok());
  Ready second = r.GetReady();  // "b" is being written
  ASSERT_EQ(second.entries.size(), 1u);
  const uint64_t b = second.entries[0]->index();
  EXPECT_TRUE(r.TakeCommittedEntries().empty());  // nothing acknowledged
  // A follower has both durable.
  Message ack;
  ack.set_type(MESSAGE_TYPE_APPEND_RESPONSE);
  ack.set_from(2);
  ack.set_to(1);
  ack.set_term(r.term());
  ack.set_index(b);
  ASSERT_TRUE(r.Step(ack, c.now()).ok());
  const std::vector<EntryPtr> now = r.TakeCommittedEntries();
  ASSERT_EQ(now.size(), 1u);  // not "b": the leader's own copy is in flight
  EXPECT_EQ(now[0]->index(), a);
  EXPECT_EQ(now[0]->data(), "a");
  EXPECT_TRUE(r.TakeCommittedEntries().empty());  // taken once
  r.Advance();  // "b" is durable on the leader too: committed
  ASSERT_TRUE(r.HasReady());
  Ready third = r.GetReady();
  ASSERT_EQ(third.committed_entries.size(), 1u);
  EXPECT_EQ(third.committed_entries[0]->index(), b);
  r.Advance();
  c.DropAll();
}

TEST_F(RaftTest, Ready_TakeMessagesHoldsEverythingWhileANewTermIsUnsynced) {
  Config cfg = Cluster::DefaultConfig();
  cfg.pre_vote = false;
  Cluster& c = Make(3, 0, 1, cfg);
  c.SkipTime(kElection);
  Raft& r = c.raft(1);
  r.Campaign(c.now());
  Ready rd = r.GetReady();  // term 2 and the vote, not yet durable
  ASSERT_TRUE(rd.hard_state.has_value());
  // A pre-vote request is answered with a message that depends on the
  // term: it must wait until the term is durable.
  Message pv;
  pv.set_type(MESSAGE_TYPE_PRE_VOTE);
  pv.set_from(2);
  pv.set_to(1);
  pv.set_term(r.term() + 1);
  pv.set_log_term(r.log().last_term());
  pv.set_index(r.log().last_index());
  ASSERT_TRUE(r.Step(pv, c.now()).ok());
  EXPECT_TRUE(r.TakeMessages().empty());
  r.Advance();
  ASSERT_TRUE(r.HasReady());
  Ready next = r.GetReady();
  bool answered = false;
  for (const Message& m : next.messages) {
    answered |= m.type() == MESSAGE_TYPE_PRE_VOTE_RESPONSE && m.to() == 2;
  }
  EXPECT_TRUE(answered);
  r.Advance();
  c.DropAll();
}

TEST_F(RaftTest, Ready_SingleMemberCommitsOnlyAfterAdvance) {
  Cluster& c = Make(1);
  c.AdvanceTime(2 * kElection);
  ASSERT_EQ(c.raft(1).role(), Role::kLeader);
  Raft& r = c.raft(1);
  const uint64_t commit = r.commit();
  ASSERT_TRUE(r.Propose("x", c.now()).ok());
  Ready rd = r.GetReady();
  EXPECT_EQ(r.commit(), commit);  // not durable yet
  r.Advance();
  EXPECT_EQ(r.commit(), commit + 1);
}

TEST_F(RaftTest, Ready_CommitOnlyChangeNeedsNoSync) {
  Cluster& c = Make(3);
  ASSERT_TRUE(c.Elect(1));
  ASSERT_TRUE(c.raft(1).Propose("x", c.now()).ok());
  c.ProcessReadies();
  // Deliver appends to 2, responses back to 1, and the commit to 2.
  c.DeliverOnce();
  c.DeliverOnce();
  Raft& r = c.raft(2);
  std::deque<Message> net;
  net.swap(c.network());
  for (const Message& m : net) {
    if (m.to() == 2 && m.type() == MESSAGE_TYPE_APPEND &&
        m.entries_size() == 0) {
      ASSERT_TRUE(r.Step(m, c.now()).ok());
    }
  }
  ASSERT_TRUE(r.HasReady());
  Ready rd = r.GetReady();
  ASSERT_TRUE(rd.hard_state.has_value());
  EXPECT_TRUE(rd.entries.empty());
  EXPECT_FALSE(rd.must_sync);
  r.Advance();
  c.Stabilize();
}

// --- §4.2.3 disruptive servers, CheckQuorum, §9.6 PreVote. ------------------

TEST_F(RaftTest, VoterWithRecentLeaderIgnoresVotes_Sec4_2_3) {
  Cluster& c = Make(3);
  ASSERT_TRUE(c.Elect(1));
  const uint64_t term = c.raft(2).term();
  Message v = Msg(MESSAGE_TYPE_VOTE, 3, 2, term + 1);
  v.set_index(c.raft(2).log().last_index());
  v.set_log_term(c.raft(2).log().last_term());
  ASSERT_TRUE(c.raft(2).Step(v, c.now()).ok());
  EXPECT_EQ(c.raft(2).term(), term);
  EXPECT_FALSE(c.raft(2).HasReady());
  // The leader itself ignores it too.
  v.set_to(1);
  ASSERT_TRUE(c.raft(1).Step(v, c.now()).ok());
  EXPECT_EQ(c.raft(1).role(), Role::kLeader);
}

TEST_F(RaftTest, TransferFlagLiftsLease_Sec4_2_3) {
  Cluster& c = Make(3);
  ASSERT_TRUE(c.Elect(1));
  const uint64_t term = c.raft(2).term();
  Message v = Msg(MESSAGE_TYPE_VOTE, 3, 2, term + 1);
  v.set_index(c.raft(2).log().last_index());
  v.set_log_term(c.raft(2).log().last_term());
  v.set_transfer(true);
  ASSERT_TRUE(c.raft(2).Step(v, c.now()).ok());
  EXPECT_EQ(c.raft(2).term(), term + 1);
  Ready rd = c.raft(2).GetReady();
  ASSERT_EQ(rd.messages_after_persist.size(), 1u);
  EXPECT_FALSE(rd.messages_after_persist[0].reject());
  c.raft(2).Advance();
  c.DropAll();
}

TEST_F(RaftTest, LeaseAlsoRefusesVotesAtCurrentTerm_Sec4_2_3) {
  Config cfg = Cluster::DefaultConfig();
  cfg.pre_vote = false;
  Cluster& c = Make(3, 0, 1, cfg);
  ASSERT_TRUE(c.Elect(1));
  const uint64_t term = c.raft(1).term();
  // A higher term reaches the leader through a non-vote message: it steps
  // down to term+1 with no vote and no leader, but its lease still runs.
  Message bump = Msg(MESSAGE_TYPE_APPEND_RESPONSE, 3, 1, term + 1);
  ASSERT_TRUE(c.raft(1).Step(bump, c.now()).ok());
  ASSERT_EQ(c.raft(1).term(), term + 1);
  c.DropAll();
  c.ProcessReadies();
  c.DropAll();
  Message vote = Msg(MESSAGE_TYPE_VOTE, 3, 1, term + 1);
  vote.set_index(c.raft(1).log().last_index());
  vote.set_log_term(c.raft(1).log().last_term());
  ASSERT_TRUE(c.raft(1).Step(vote, c.now()).ok());
  Ready rd = c.raft(1).GetReady();
  ASSERT_EQ(rd.messages_after_persist.size(), 1u);
  EXPECT_TRUE(rd.messages_after_persist[0].reject());
  EXPECT_FALSE(rd.hard_state.has_value() && rd.hard_state->vote() == 3);
  c.raft(1).Advance();
  c.DropAll();
}

// A member restarted with a shorter T than its last run keeps that run's
// promises: for the start-up lease (the longer T) it grants no vote and
// starts no election, then behaves as usual.
TEST_F(RaftTest, StartupLease_LongerPreviousTimeoutIsHonoured) {
  SeededRandom rng(3);
  Config c = MemberOneConfig(&rng);
  c.startup_lease_ns = 4 * kElection;  // the last run's T
  RestoredState r;
  for (uint64_t id : {1, 2, 3}) r.snapshot.mutable_conf_state()->add_voters(id);
  auto raft = Raft::Create(c, r, 0);
  ASSERT_TRUE(raft.ok());
  Raft& m = **raft;
  auto vote_from_2 = [&](int64_t now) {
    Message v = Msg(MESSAGE_TYPE_PRE_VOTE, 2, 1, 1);
    v.set_index(0);
    v.set_log_term(0);
    EXPECT_TRUE(m.Step(v, now).ok());
    Ready rd = m.GetReady();
    m.Advance();
    for (const auto* list : {&rd.messages, &rd.messages_after_persist}) {
      for (const Message& out : *list) {
        if (out.type() == MESSAGE_TYPE_PRE_VOTE_RESPONSE) return !out.reject();
      }
    }
    return false;  // ignored
  };
  // Past its own T (and 2T), still in the start-up lease.
  for (int64_t now = kElection; now < 4 * kElection; now += kElection / 2) {
    m.Tick(now);
    EXPECT_EQ(m.role(), Role::kFollower) << "campaigned at " << now;
    EXPECT_FALSE(vote_from_2(now)) << "granted a vote at " << now;
  }
  // Once it is over: votes are granted, and the member campaigns.
  EXPECT_TRUE(vote_from_2(4 * kElection));
  m.Tick(6 * kElection);
  EXPECT_EQ(m.role(), Role::kPreCandidate);
}

TEST_F(RaftTest, LeaseHoldsAfterCheckQuorumStepDown_Sec4_2_3) {
  Cluster& c = Make(3);
  ASSERT_TRUE(c.Elect(1));
  c.Isolate(1);
  c.AdvanceTime(kElection + kHeartbeat);
  ASSERT_EQ(c.raft(1).role(), Role::kFollower);
  // A deposed leader still refuses votes until T after its last round.
  const uint64_t term = c.raft(1).term();
  Message v = Msg(MESSAGE_TYPE_VOTE, 2, 1, term + 5);
  v.set_index(c.raft(1).log().last_index());
  v.set_log_term(c.raft(1).log().last_term());
  ASSERT_TRUE(c.raft(1).Step(v, c.now()).ok());
  EXPECT_EQ(c.raft(1).term(), term);
}

TEST_F(RaftTest, CheckQuorum_IsolatedLeaderStepsDownWithinT) {
  Cluster& c = Make(3);
  ASSERT_TRUE(c.Elect(1));
  const int64_t cut_at = c.now();
  c.Isolate(1);
  int64_t stepped_down_at = -1;
  for (int i = 0; i < 100 && stepped_down_at < 0; ++i) {
    c.AdvanceTime(1);
    if (c.raft(1).role() != Role::kLeader) stepped_down_at = c.now();
  }
  ASSERT_GE(stepped_down_at, 0);
  // Last contact was at most one heartbeat before the cut.
  EXPECT_LE(stepped_down_at - cut_at, kElection);
  EXPECT_GE(stepped_down_at - cut_at, kElection - kHeartbeat);
}

TEST_F(RaftTest, PreVote_PartitionedMemberKeepsItsTerm_Sec9_6) {
  Cluster& c = Make(3);
  ASSERT_TRUE(c.Elect(1));
  const uint64_t term = c.raft(3).term();
  c.Isolate(3);
  c.AdvanceTime(10 * kElection);
  EXPECT_EQ(c.raft(3).term(), term);
  EXPECT_EQ(c.raft(3).role(), Role::kPreCandidate);
  c.Heal();
  c.AdvanceTime(3 * kHeartbeat);
  EXPECT_EQ(c.raft(1).role(), Role::kLeader);
  EXPECT_EQ(c.raft(1).term(), term);
  EXPECT_EQ(c.raft(3).leader(), 1u);
}

TEST_F(RaftTest, WithoutPreVote_PartitionedMemberRaisesTermButCannotDisrupt) {
  Config cfg = Cluster::DefaultConfig();
  cfg.pre_vote = false;
  Cluster& c = Make(3, 0, 1, cfg);
  ASSERT_TRUE(c.Elect(1));
  const uint64_t term = c.raft(1).term();
  c.Isolate(3);
  c.AdvanceTime(10 * kElection);
  EXPECT_GT(c.raft(3).term(), term);
  c.Heal();
  c.AdvanceTime(5 * kElection);
  // The others' leases make them ignore 3's votes; 3 learns the leader
  // only after a new election at 3's higher term, but still exactly one
  // leader leads each term (checked in TearDown).
  EXPECT_NE(c.Leader(), 0u);
}

// --- §6.4 ReadIndex. --------------------------------------------------------

TEST_F(RaftTest, ReadIndex_LeaderAnswersAfterNewQuorumRound_Sec6_4) {
  Cluster& c = Make(3);
  ASSERT_TRUE(c.Elect(1));
  ProposeN(1, 3);
  Raft& r = c.raft(1);
  ASSERT_TRUE(r.ReadIndex(42, c.now()).ok());
  // Not answered before the heartbeat round is acknowledged.
  c.ProcessReadies();
  EXPECT_TRUE(c.member(1).reads.empty());
  c.Stabilize();
  ASSERT_EQ(c.member(1).reads.size(), 1u);
  EXPECT_EQ(c.member(1).reads[0].request_id, 42u);
  EXPECT_EQ(c.member(1).reads[0].index, r.commit());
}

TEST_F(RaftTest, ReadIndex_FollowerAndLearnerForwardToLeader_Sec6_4) {
  Cluster& c = Make(3, 1);
  ASSERT_TRUE(c.Elect(1));
  ProposeN(1, 2);
  ASSERT_TRUE(c.raft(2).ReadIndex(7, c.now()).ok());
  ASSERT_TRUE(c.raft(4).ReadIndex(8, c.now()).ok());
  c.Stabilize();
  ASSERT_EQ(c.member(2).reads.size(), 1u);
  EXPECT_EQ(c.member(2).reads[0].request_id, 7u);
  EXPECT_EQ(c.member(2).reads[0].index, c.raft(1).commit());
  ASSERT_EQ(c.member(4).reads.size(), 1u);
  EXPECT_EQ(c.member(4).reads[0].request_id, 8u);
}

TEST_F(RaftTest, ReadIndex_PartitionedLeaderNeverAnswers_Sec6_4) {
  Cluster& c = Make(3);
  ASSERT_TRUE(c.Elect(1));
  c.Isolate(1);
  ASSERT_TRUE(c.raft(1).ReadIndex(1, c.now()).ok());
  c.AdvanceTime(3 * kElection);
  EXPECT_TRUE(c.member(1).reads.empty());
  // It stepped down and failed the read rather than answering it.
  ASSERT_EQ(c.member(1).failed_reads.size(), 1u);
  EXPECT_EQ(c.member(1).failed_reads[0], 1u);
}

TEST_F(RaftTest, ReadIndex_WaitsForFirstCommitInTerm_Sec6_4) {
  Cluster& c = Make(3);
  ASSERT_TRUE(c.Elect(1));
  ProposeN(1, 2);
  // A new leader 2 whose empty entry cannot commit yet.
  c.Isolate(1);
  c.AdvanceTime(kElection);
  c.raft(2).Campaign(c.now());
  c.ProcessReadies();
  c.DeliverOnce();  // pre-vote to 3
  c.DeliverOnce();  // grant
  c.DeliverOnce();  // vote to 3
  c.DeliverOnce();  // grant: 2 leads
  ASSERT_EQ(c.raft(2).role(), Role::kLeader);
  c.Cut(2, 3);
  ASSERT_TRUE(c.raft(2).ReadIndex(9, c.now()).ok());
  c.Stabilize();
  EXPECT_TRUE(c.member(2).reads.empty());
  c.Heal();
  c.Isolate(1);
  c.AdvanceTime(2 * kHeartbeat);
  ASSERT_EQ(c.member(2).reads.size(), 1u);
  EXPECT_GE(c.member(2).reads[0].index,
            c.raft(2).log().At(c.raft(2).commit()).index());
}

TEST_F(RaftTest, ReadIndex_LostForwardedReadFailsAfter2T) {
  Cluster& c = Make(3);
  ASSERT_TRUE(c.Elect(1));
  c.Cut(2, 1);  // 2 still hears the leader, but its request is lost
  ASSERT_TRUE(c.raft(2).ReadIndex(5, c.now()).ok());
  c.AdvanceTime(2 * kElection - 1);
  EXPECT_TRUE(c.member(2).failed_reads.empty());
  c.AdvanceTime(1);
  ASSERT_EQ(c.member(2).failed_reads.size(), 1u);
  EXPECT_EQ(c.member(2).failed_reads[0], 5u);
  EXPECT_TRUE(c.member(2).reads.empty());
}

TEST_F(RaftTest, ReadIndex_NoLeaderIsUnavailable) {
  Cluster& c = Make(3);
  EXPECT_EQ(c.raft(2).ReadIndex(1, c.now()).code(),
            absl::StatusCode::kUnavailable);
}

// --- §3.10 leadership transfer. ---------------------------------------------

TEST_F(RaftTest, Transfer_TargetBecomesLeaderDespiteLeases_Sec3_10) {
  Cluster& c = Make(3);
  ASSERT_TRUE(c.Elect(1));
  ProposeN(1, 3);
  ASSERT_TRUE(c.raft(1).TransferLeadership(3, c.now()).ok());
  c.Stabilize();
  EXPECT_EQ(c.raft(3).role(), Role::kLeader);
  EXPECT_EQ(c.raft(1).role(), Role::kFollower);
  EXPECT_EQ(c.raft(1).leader(), 3u);
}

TEST_F(RaftTest, Transfer_CatchesUpLaggingTargetFirst_Sec3_10) {
  Cluster& c = Make(3);
  ASSERT_TRUE(c.Elect(1));
  c.Isolate(3);
  ProposeN(1, 10);
  c.Heal();
  ASSERT_TRUE(c.raft(1).TransferLeadership(3, c.now()).ok());
  // Proposals are refused while the transfer runs.
  EXPECT_EQ(c.raft(1).Propose("x", c.now()).status().code(),
            absl::StatusCode::kUnavailable);
  c.AdvanceTime(3 * kHeartbeat);
  EXPECT_EQ(c.raft(3).role(), Role::kLeader);
  EXPECT_EQ(c.raft(3).log().last_index(), c.raft(1).log().last_index());
}

// The partition guard's windows (docs/design.md): a follower's ReadIndex
// answer carries the leader's term and its first index, the fencing token.
TEST_F(RaftTest, ReadIndex_AnswerCarriesTheLeadersTermAndFirstIndex) {
  Cluster& c = Make(3);
  ASSERT_TRUE(c.Elect(1));
  const uint64_t first = c.raft(1).log().last_index();  // the term's entry
  ProposeN(1, 3);
  ASSERT_TRUE(c.raft(2).ReadIndex(7, c.now()).ok());
  ASSERT_TRUE(c.raft(1).ReadIndex(8, c.now()).ok());
  c.Stabilize();
  for (uint64_t id : {2, 1}) {
    ASSERT_EQ(c.member(id).reads.size(), 1u) << id;
    EXPECT_EQ(c.member(id).reads[0].term, c.raft(1).term()) << id;
    EXPECT_EQ(c.member(id).reads[0].term_start, first) << id;
  }
}

// A leader that answered ReadIndex requests (granting windows) confirms no
// more once it hands over, and sends TimeoutNow only T after the last
// round that answered: by then every window it granted has ended.
TEST_F(RaftTest, Transfer_WaitsUntilGrantedWindowsEnded) {
  Cluster& c = Make(3);
  ASSERT_TRUE(c.Elect(1));
  ASSERT_TRUE(c.raft(2).ReadIndex(1, c.now()).ok());
  c.Stabilize();
  ASSERT_EQ(c.member(2).reads.size(), 1u);
  const int64_t granted = c.now();
  ASSERT_TRUE(c.raft(1).TransferLeadership(3, c.now()).ok());
  ASSERT_TRUE(c.raft(2).ReadIndex(2, c.now()).ok());
  c.AdvanceTime(kElection - 2 * kHeartbeat);
  EXPECT_EQ(c.raft(1).role(), Role::kLeader) << "no TimeoutNow yet";
  EXPECT_EQ(c.raft(3).role(), Role::kFollower);
  EXPECT_EQ(c.member(2).reads.size(), 1u) << "nothing confirmed meanwhile";
  c.AdvanceTime(granted + kElection + 3 * kHeartbeat - c.now());
  EXPECT_EQ(c.raft(3).role(), Role::kLeader);
}

TEST_F(RaftTest, Transfer_AbortsIfTargetNeverCaughtUp_Sec3_10) {
  Cluster& c = Make(3);
  ASSERT_TRUE(c.Elect(1));
  c.Isolate(3);
  ProposeN(1, 3);  // 3 lags and cannot be caught up
  ASSERT_TRUE(c.raft(1).TransferLeadership(3, c.now()).ok());
  c.AdvanceTime(kElection + 1);
  EXPECT_EQ(c.raft(1).role(), Role::kLeader);
  EXPECT_TRUE(c.raft(1).Propose("x", c.now()).ok());
}

TEST_F(RaftTest, Transfer_StepsDownIfTimeoutNowSentButTargetLost_Sec3_10) {
  Cluster& c = Make(3);
  ASSERT_TRUE(c.Elect(1));
  // 3 is up to date and receives TimeoutNow, but nobody hears it: its
  // transfer-flagged campaign would lift leases whenever it arrived, so the
  // old leader must not lead on in this term.
  c.Cut(3, 1);
  c.Cut(3, 2);
  ASSERT_TRUE(c.raft(1).TransferLeadership(3, c.now()).ok());
  const uint64_t term = c.raft(1).term();
  c.AdvanceTime(kElection + 1);
  EXPECT_FALSE(c.raft(1).role() == Role::kLeader && c.raft(1).term() == term);
  c.Heal();
  c.AdvanceTime(4 * kElection);
  EXPECT_NE(c.Leader(), 0u);
}

TEST_F(RaftTest, Transfer_ZeroPicksMostUpToDateVoter) {
  Cluster& c = Make(3, 1);
  ASSERT_TRUE(c.Elect(1));
  c.Isolate(2);
  ProposeN(1, 3);
  c.Heal();
  ASSERT_TRUE(c.raft(1).TransferLeadership(0, c.now()).ok());
  c.Stabilize();
  EXPECT_EQ(c.Leader(), 3u);
  EXPECT_EQ(c.raft(2).TransferLeadership(0, c.now()).code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(c.raft(3).TransferLeadership(4, c.now()).code(),
            absl::StatusCode::kInvalidArgument);
}

// --- §4 membership. ---------------------------------------------------------

TEST_F(RaftTest, Membership_AddVoterReplicatesAndVotes_Sec4_1) {
  Cluster& c = Make(3);
  ASSERT_TRUE(c.Elect(1));
  ProposeN(1, 3);
  c.AddBlankMember(4);
  auto idx = c.raft(1).ProposeConfChange(
      testing::MakeConfChange(CONF_CHANGE_TYPE_ADD_VOTER, 4), c.now());
  ASSERT_TRUE(idx.ok()) << idx.status();
  c.AdvanceTime(3 * kHeartbeat);
  EXPECT_GE(c.raft(1).commit(), *idx);
  EXPECT_TRUE(c.raft(4).membership().IsVoter(4));
  EXPECT_EQ(c.raft(4).log().last_index(), c.raft(1).log().last_index());
  EXPECT_EQ(c.raft(1).membership().Quorum(), 3u);
  // The new member knows the whole configuration, the initial voters
  // (the snapshot at index 0) included, not only what the log added.
  EXPECT_EQ(c.raft(4).membership(), c.raft(1).membership());
  EXPECT_TRUE(c.raft(4).membership().IsVoter(2));
}

TEST_F(RaftTest, Membership_OneChangeAtATime_Sec4_1) {
  Cluster& c = Make(3);
  ASSERT_TRUE(c.Elect(1));
  c.Isolate(2);
  c.Isolate(3);
  ASSERT_TRUE(
      c.raft(1)
          .ProposeConfChange(
              testing::MakeConfChange(CONF_CHANGE_TYPE_ADD_LEARNER, 4), c.now())
          .ok());
  EXPECT_EQ(
      c.raft(1)
          .ProposeConfChange(
              testing::MakeConfChange(CONF_CHANGE_TYPE_ADD_LEARNER, 5), c.now())
          .status()
          .code(),
      absl::StatusCode::kUnavailable);
}

TEST_F(RaftTest, Membership_LeaderCommitsInTermBeforeChange_Errata) {
  Cluster& c = Make(3);
  ASSERT_TRUE(c.Elect(1));
  c.Isolate(1);
  c.AdvanceTime(kElection);
  c.raft(2).Campaign(c.now());
  c.ProcessReadies();
  c.Cut(2, 3);  // let the votes through but not the empty entry
  c.Heal();
  c.Isolate(1);
  c.raft(2).Campaign(c.now());
  c.Stabilize();
  if (c.raft(2).role() == Role::kLeader &&
      c.raft(2).commit() < c.raft(2).log().last_index()) {
    EXPECT_EQ(
        c.raft(2)
            .ProposeConfChange(
                testing::MakeConfChange(CONF_CHANGE_TYPE_REMOVE, 1), c.now())
            .status()
            .code(),
        absl::StatusCode::kUnavailable);
  }
  c.Heal();
  c.Isolate(1);
  c.AdvanceTime(3 * kElection);
  const uint64_t leader = c.Leader();
  ASSERT_NE(leader, 0u);
  EXPECT_TRUE(
      c.raft(leader)
          .ProposeConfChange(
              testing::MakeConfChange(CONF_CHANGE_TYPE_REMOVE, 1), c.now())
          .ok());
}

TEST_F(RaftTest, Membership_RemovedLeaderStepsDownAfterCommit_Sec4_2_2) {
  Cluster& c = Make(3);
  ASSERT_TRUE(c.Elect(1));
  auto idx = c.raft(1).ProposeConfChange(
      testing::MakeConfChange(CONF_CHANGE_TYPE_REMOVE, 1), c.now());
  ASSERT_TRUE(idx.ok());
  c.Stabilize();
  EXPECT_NE(c.raft(1).role(), Role::kLeader);
  EXPECT_FALSE(c.raft(2).membership().IsVoter(1));
  c.AdvanceTime(4 * kElection);
  const uint64_t leader = c.Leader();
  EXPECT_TRUE(leader == 2 || leader == 3);
  EXPECT_EQ(c.raft(leader).membership().voters().size(), 2u);
}

TEST_F(RaftTest, Membership_RemovedLeaderWithAppendsInFlight_Sec4_2_2) {
  Cluster& c = Make(3);
  ASSERT_TRUE(c.Elect(1));
  ASSERT_TRUE(
      c.raft(1)
          .ProposeConfChange(
              testing::MakeConfChange(CONF_CHANGE_TYPE_REMOVE, 1), c.now())
          .ok());
  // More entries right behind the removal: appends are in flight when the
  // acknowledgement that commits the removal arrives.
  for (int i = 0; i < 5; ++i) {
    ASSERT_TRUE(c.raft(1).Propose("after-" + std::to_string(i), c.now()).ok());
    c.ProcessReadies();
  }
  c.Stabilize();
  EXPECT_NE(c.raft(1).role(), Role::kLeader);
  c.AdvanceTime(4 * kElection);
  EXPECT_NE(c.Leader(), 0u);
}

TEST_F(RaftTest, Membership_NewMemberCatchesUpOnIdleCluster) {
  Cluster& c = Make(3);
  ASSERT_TRUE(c.Elect(1));
  ProposeN(1, 3);
  c.AddBlankMember(4);
  c.Cut(1, 4);  // the first probes are lost
  ASSERT_TRUE(
      c.raft(1)
          .ProposeConfChange(
              testing::MakeConfChange(CONF_CHANGE_TYPE_ADD_LEARNER, 4), c.now())
          .ok());
  c.AdvanceTime(3 * kHeartbeat);
  c.Heal();
  // No new proposals: heartbeats alone must restart the probe.
  c.AdvanceTime(5 * kHeartbeat);
  EXPECT_EQ(c.raft(4).log().last_index(), c.raft(1).log().last_index());
}

TEST_F(RaftTest, Membership_InvalidChangeIsRejected) {
  Cluster& c = Make(3);
  ASSERT_TRUE(c.Elect(1));
  EXPECT_EQ(
      c.raft(1)
          .ProposeConfChange(
              testing::MakeConfChange(CONF_CHANGE_TYPE_ADD_VOTER, 2), c.now())
          .status()
          .code(),
      absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(c.raft(1)
                .ProposeConfChange(testing::MakeConfChange(
                                       CONF_CHANGE_TYPE_PROMOTE_LEARNER, 9),
                                   c.now())
                .status()
                .code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(RaftTest, Learner_NeverCampaignsAndIsNotCounted) {
  Cluster& c = Make(1, 2);
  c.AdvanceTime(3 * kElection);
  ASSERT_EQ(c.Leader(), 1u);
  EXPECT_EQ(c.raft(2).role(), Role::kLearner);
  c.Isolate(1);
  c.AdvanceTime(10 * kElection);
  EXPECT_EQ(c.raft(2).role(), Role::kLearner);
  EXPECT_EQ(c.raft(3).role(), Role::kLearner);
  // A single voter commits alone: learners are not in the quorum.
  c.Heal();
  auto idx = c.raft(1).Propose("x", c.now());
  ASSERT_TRUE(idx.ok());
  c.Isolate(1);
  c.Stabilize();
  EXPECT_EQ(c.raft(1).commit(), *idx);
}

TEST_F(RaftTest, Learner_PromotedBecomesVoter) {
  Cluster& c = Make(3, 1);
  ASSERT_TRUE(c.Elect(1));
  ProposeN(1, 2);
  ASSERT_TRUE(c.raft(1)
                  .ProposeConfChange(testing::MakeConfChange(
                                         CONF_CHANGE_TYPE_PROMOTE_LEARNER, 4),
                                     c.now())
                  .ok());
  c.Stabilize();
  EXPECT_EQ(c.raft(4).role(), Role::kFollower);
  EXPECT_TRUE(c.raft(1).membership().IsVoter(4));
  EXPECT_EQ(c.raft(1).membership().Quorum(), 3u);
}

// --- Snapshots and compaction. ----------------------------------------------

TEST_F(RaftTest, Snapshot_LaggingFollowerCatchesUpInChunks) {
  Config cfg = Cluster::DefaultConfig();
  cfg.snapshot_chunk_bytes = 64;
  Cluster& c = Make(3, 0, 1, cfg);
  ASSERT_TRUE(c.Elect(1));
  c.Isolate(3);
  ProposeN(1, 40, "entry-");
  ASSERT_TRUE(c.Compact(1).ok());
  ASSERT_GT(c.raft(1).log().snapshot_index(), 40u);
  int chunks = 0;
  c.on_deliver = [&](const Message& m) {
    if (m.type() == MESSAGE_TYPE_SNAPSHOT) ++chunks;
  };
  c.Heal();
  c.AdvanceTime(5 * kHeartbeat);
  EXPECT_GT(chunks, 3);
  EXPECT_EQ(c.raft(3).log().last_index(), c.raft(1).log().last_index());
  EXPECT_EQ(c.raft(3).log().snapshot_index(), c.raft(1).log().snapshot_index());
  EXPECT_EQ(*c.member(3).disk.snapshot_data, *c.member(1).disk.snapshot_data);
  // Replication goes on normally afterwards.
  ProposeN(1, 2, "after-");
  EXPECT_EQ(c.member(3).applied.back().data(), "after-1");
}

TEST_F(RaftTest, Snapshot_LostChunkIsResentFromReceiverOffset) {
  Config cfg = Cluster::DefaultConfig();
  cfg.snapshot_chunk_bytes = 16;
  Cluster& c = Make(3, 0, 1, cfg);
  ASSERT_TRUE(c.Elect(1));
  c.Isolate(3);
  ProposeN(1, 10, "entry-");
  ASSERT_TRUE(c.Compact(1).ok());
  c.Heal();
  // Lose the second chunk, once.
  bool dropped = false;
  c.drop_if = [&](const Message& m) {
    if (dropped || m.type() != MESSAGE_TYPE_SNAPSHOT ||
        m.snapshot().offset() == 0) {
      return false;
    }
    dropped = true;
    return true;
  };
  c.Stabilize();
  c.AdvanceTime(kHeartbeat);
  ASSERT_TRUE(dropped);
  ASSERT_NE(c.raft(3).log().snapshot_index(), c.raft(1).log().snapshot_index());
  c.AdvanceTime(10 * kHeartbeat);
  EXPECT_EQ(c.raft(3).log().snapshot_index(), c.raft(1).log().snapshot_index());
  EXPECT_EQ(*c.member(3).disk.snapshot_data, *c.member(1).disk.snapshot_data);
  EXPECT_EQ(c.raft(3).commit(), c.raft(1).commit());
}

TEST_F(RaftTest, Snapshot_OversizedSnapshotIsRefused) {
  Cluster& c = Make(3);
  ASSERT_TRUE(c.Elect(1));
  Message m;
  m.set_type(MESSAGE_TYPE_SNAPSHOT);
  m.set_from(1);
  m.set_to(2);
  m.set_term(c.raft(2).term());
  SnapshotChunk* chunk = m.mutable_snapshot();
  chunk->mutable_metadata()->set_index(1000);
  chunk->mutable_metadata()->set_term(1);
  for (uint64_t id : {1, 2, 3}) {
    chunk->mutable_metadata()->mutable_conf_state()->add_voters(id);
  }
  chunk->set_total_size(Cluster::DefaultConfig().max_snapshot_bytes + 1);
  ASSERT_TRUE(c.raft(2).Step(m, c.now()).ok());
  Ready rd = c.raft(2).GetReady();
  ASSERT_EQ(rd.messages_after_persist.size(), 1u);
  EXPECT_TRUE(rd.messages_after_persist[0].reject());
  EXPECT_FALSE(rd.snapshot.has_value());
  c.raft(2).Advance();
  // A later chunk of a snapshot it is not receiving is refused too.
  chunk->set_total_size(100);
  chunk->set_offset(50);
  chunk->set_data("x");
  ASSERT_TRUE(c.raft(2).Step(m, c.now()).ok());
  rd = c.raft(2).GetReady();
  ASSERT_EQ(rd.messages_after_persist.size(), 1u);
  EXPECT_TRUE(rd.messages_after_persist[0].reject());
  c.raft(2).Advance();
  c.DropAll();
}

TEST_F(RaftTest, Status_ReportsRoleTermAndMembers) {
  Cluster& c = Make(3, 1);
  ASSERT_TRUE(c.Elect(2));
  ProposeN(2, 2);
  const Status s = c.raft(2).GetStatus();
  EXPECT_EQ(s.id, 2u);
  EXPECT_EQ(s.role, Role::kLeader);
  EXPECT_EQ(s.leader, 2u);
  EXPECT_EQ(s.vote, 2u);
  EXPECT_EQ(s.commit, s.last_index);
  EXPECT_EQ(s.applied, s.commit);
  EXPECT_EQ(s.voters, (std::vector<uint64_t>{1, 2, 3}));
  EXPECT_EQ(s.learners, (std::vector<uint64_t>{4}));
  EXPECT_STREQ(RoleName(c.raft(4).GetStatus().role), "learner");
}

TEST_F(RaftTest, ReportUnreachable_StopsPipelining) {
  Cluster& c = Make(3);
  ASSERT_TRUE(c.Elect(1));
  ProposeN(1, 2);
  ASSERT_EQ(c.raft(1).progress(2)->state, Progress::State::kReplicate);
  c.raft(1).ReportUnreachable(2);
  EXPECT_EQ(c.raft(1).progress(2)->state, Progress::State::kProbe);
  EXPECT_EQ(c.raft(2).progress(1), nullptr);  // not a leader
  ProposeN(1, 2);
  EXPECT_EQ(c.raft(2).log().last_index(), c.raft(1).log().last_index());
}

TEST_F(RaftTest, Compact_RefusesUnappliedOrMismatchedSnapshots) {
  Cluster& c = Make(3);
  ASSERT_TRUE(c.Elect(1));
  ProposeN(1, 3);
  Raft& r = c.raft(1);
  auto data = std::make_shared<const std::string>("x");
  SnapshotMetadata md = r.SnapshotMetadataAt(r.log().last_index());
  md.set_index(r.log().last_index() + 5);
  EXPECT_EQ(r.Compact(md, data).code(), absl::StatusCode::kFailedPrecondition);
  md = r.SnapshotMetadataAt(r.commit());
  md.set_term(md.term() + 1);
  EXPECT_EQ(r.Compact(md, data).code(), absl::StatusCode::kInvalidArgument);
  md = r.SnapshotMetadataAt(r.commit());
  md.mutable_conf_state()->add_voters(9);
  EXPECT_EQ(r.Compact(md, data).code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(RaftTest, Restart_FromSnapshotAndLogKeepsCommittedState) {
  Cluster& c = Make(3);
  ASSERT_TRUE(c.Elect(1));
  ProposeN(1, 5);
  ASSERT_TRUE(c.Compact(2).ok());
  ProposeN(1, 3, "w");
  const uint64_t last = c.raft(2).log().last_index();
  c.Crash(2);
  c.Restart(2);
  EXPECT_EQ(c.raft(2).log().last_index(), last);
  EXPECT_GT(c.raft(2).log().snapshot_index(), 0u);
  c.AdvanceTime(3 * kHeartbeat);
  EXPECT_EQ(c.raft(2).commit(), c.raft(1).commit());
}

// --- Determinism. -----------------------------------------------------------

std::string Transcript(uint64_t seed) {
  Cluster c(5, 0, seed);
  std::string out;
  c.on_deliver = [&](const Message& m) { out += testing::Describe(m) + "\n"; };
  c.AdvanceTime(3 * kElection);
  const uint64_t leader = c.Leader();
  for (int i = 0; i < 5 && leader != 0; ++i) {
    (void)c.raft(leader).Propose(absl::StrCat("x", i), c.now());
  }
  c.Partition({1, 2}, {3, 4, 5});
  c.AdvanceTime(5 * kElection);
  c.Heal();
  c.AdvanceTime(2 * kElection);
  return out;
}

TEST(RaftDeterminismTest, SameSeedGivesSameRun) {
  const std::string a = Transcript(11);
  EXPECT_EQ(a, Transcript(11));
  EXPECT_NE(a, Transcript(12));
  EXPECT_GT(a.size(), 1000u);
}

}  // namespace
}  // namespace quorate::raft
