// Messages a hostile or broken peer could send (raft/validate.h): each is
// refused with INVALID_ARGUMENT, changes nothing in the core, and reaches
// none of its always-on checks. The first cases are those a review
// reproduced against quorate-node before validation existed.
#include "raft/validate.h"

#include <gtest/gtest.h>

#include <limits>
#include <memory>
#include <string>

#include "raft/cluster.h"
#include "raft/raft.h"

namespace quorate::raft {
namespace {

using testing::Cluster;
using testing::Msg;

// What a refused message must leave as it was.
std::string Fingerprint(const Raft& r) {
  const Status s = r.GetStatus();
  std::string out = absl::StrCat(
      RoleName(s.role), " term=", s.term, " vote=", s.vote,
      " leader=", s.leader, " commit=", s.commit, " last=", s.last_index,
      " voters=", s.voters.size(), " learners=", s.learners.size(), " log=");
  for (uint64_t i = r.log().first_index(); i <= r.log().last_index(); ++i) {
    absl::StrAppend(&out, r.log().At(i).term(), ",");
  }
  return out;
}

class ValidateTest : public ::testing::Test {
 protected:
  void SetUp() override {
    c_ = std::make_unique<Cluster>(3, 0, /*seed=*/1);
    ASSERT_TRUE(c_->Elect(1));
    for (int i = 0; i < 3; ++i) {
      ASSERT_TRUE(c_->raft(1).Propose("v" + std::to_string(i), c_->now()).ok());
    }
    c_->Stabilize();
    term_ = c_->raft(1).term();
  }
  void TearDown() override { EXPECT_EQ(c_->CheckInvariants(), ""); }

  // An append from the leader (1) to member 2, well formed, after 2's log.
  Message Append(int entries) {
    const Raft& r = c_->raft(2);
    Message m = Msg(MESSAGE_TYPE_APPEND, 1, 2, term_);
    m.set_index(r.log().last_index());
    m.set_log_term(r.log().last_term());
    m.set_commit(r.commit());
    for (int i = 0; i < entries; ++i) {
      Entry* e = m.add_entries();
      e->set_term(term_);
      e->set_index(r.log().last_index() + 1 + static_cast<uint64_t>(i));
      e->set_data("x");
    }
    return m;
  }

  // Steps `m` into member `to` and expects a refusal that changes nothing.
  void ExpectRefused(const Message& m, const std::string& why_contains) {
    Raft& r = c_->raft(m.to());
    const std::string before = Fingerprint(r);
    const bool had_ready = r.HasReady();
    const absl::Status s = r.Step(m, c_->now());
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
    EXPECT_NE(s.message().find(why_contains), absl::string_view::npos) << s;
    EXPECT_EQ(Fingerprint(r), before);
    EXPECT_EQ(r.HasReady(), had_ready);
  }

  std::unique_ptr<Cluster> c_;
  uint64_t term_ = 0;
};

TEST_F(ValidateTest, WellFormedAppendIsAccepted) {
  // The control: the same builder with nothing wrong is accepted.
  const uint64_t last = c_->raft(2).log().last_index();
  ASSERT_TRUE(c_->raft(2).Step(Append(2), c_->now()).ok());
  EXPECT_EQ(c_->raft(2).log().last_index(), last + 2);
  c_->DropAll();
}

TEST_F(ValidateTest, NonContiguousAppendIsRefused) {
  Message m = Append(2);
  m.mutable_entries(1)->set_index(m.entries(1).index() + 5);
  ExpectRefused(m, "not");
  m = Append(1);
  m.mutable_entries(0)->set_index(m.index());  // repeats the previous index
  ExpectRefused(m, "index");
}

TEST_F(ValidateTest, TermsNearTheMaximumAreRefused) {
  for (uint64_t term : {std::numeric_limits<uint64_t>::max(), kMaxTerm + 1}) {
    Message m = Append(0);
    m.set_term(term);
    ExpectRefused(m, "beyond");
    Message v = Msg(MESSAGE_TYPE_PRE_VOTE, 3, 2, term);
    ExpectRefused(v, "beyond");
  }
  Message m = Append(0);
  m.set_index(std::numeric_limits<uint64_t>::max());
  ExpectRefused(m, "beyond");
}

TEST_F(ValidateTest, EntryTermsMustLieBetweenLogTermAndTerm) {
  Message m = Append(1);
  m.mutable_entries(0)->set_term(term_ + 1);  // from the future
  ExpectRefused(m, "outside");
  m = Append(2);
  m.mutable_entries(1)->set_term(0);  // goes back
  ExpectRefused(m, "outside");
}

TEST_F(ValidateTest, AppendResponseBeyondTheLeadersLogIsRefused) {
  Message m = Msg(MESSAGE_TYPE_APPEND_RESPONSE, 2, 1, term_);
  m.set_index(c_->raft(1).log().last_index() + 1000);
  ExpectRefused(m, "beyond this leader's last index");
}

TEST_F(ValidateTest, HeartbeatResponseForARoundNotStartedIsRefused) {
  Message m = Msg(MESSAGE_TYPE_HEARTBEAT_RESPONSE, 2, 1, term_);
  m.set_round(1'000'000);
  ExpectRefused(m, "has not started");
}

TEST_F(ValidateTest, SecondLeaderInATermIsRefused) {
  // At the leader itself: an append of its own term from another member.
  Message m = Msg(MESSAGE_TYPE_APPEND, 3, 1, term_);
  m.set_index(c_->raft(1).log().last_index());
  m.set_log_term(c_->raft(1).log().last_term());
  ExpectRefused(m, "which member 1 leads");
  // At a follower that knows member 1 leads the term.
  m.set_to(2);
  ExpectRefused(m, "which member 1 leads");
  Message hb = Msg(MESSAGE_TYPE_HEARTBEAT, 3, 2, term_);
  ExpectRefused(hb, "which member 1 leads");
}

TEST_F(ValidateTest, BadSnapshotConfigurationsAreRefused) {
  auto snapshot = [&](auto&& edit) {
    Message m = Msg(MESSAGE_TYPE_SNAPSHOT, 1, 2, term_);
    SnapshotChunk* chunk = m.mutable_snapshot();
    chunk->mutable_metadata()->set_index(c_->raft(2).log().last_index() + 10);
    chunk->mutable_metadata()->set_term(term_);
    for (uint64_t id : {1, 2, 3}) {
      chunk->mutable_metadata()->mutable_conf_state()->add_voters(id);
    }
    chunk->set_data("snapshot");
    chunk->set_total_size(8);
    chunk->set_last(true);
    edit(*chunk);
    return m;
  };
  ExpectRefused(snapshot([](SnapshotChunk& c) {
                  c.mutable_metadata()->mutable_conf_state()->clear_voters();
                }),
                "no voters");
  ExpectRefused(snapshot([](SnapshotChunk& c) {
                  c.mutable_metadata()->mutable_conf_state()->add_learners(2);
                }),
                "listed twice");
  ExpectRefused(snapshot([](SnapshotChunk& c) {
                  c.mutable_metadata()->mutable_conf_state()->add_voters(0);
                }),
                "id 0");
  ExpectRefused(snapshot([](SnapshotChunk& c) { c.set_total_size(3); }),
                "overruns");
  ExpectRefused(snapshot([&](SnapshotChunk& c) {
                  c.mutable_metadata()->set_term(term_ + 1);
                }),
                "snapshot term");
  ExpectRefused(snapshot([](SnapshotChunk& c) {
                  c.mutable_metadata()->set_index(0);
                  c.mutable_metadata()->set_term(0);
                  c.mutable_metadata()->clear_conf_state();
                }),
                "index 0 without a configuration");
  Message none = Msg(MESSAGE_TYPE_SNAPSHOT, 1, 2, term_);
  ExpectRefused(none, "no snapshot chunk");
}

TEST_F(ValidateTest, BadConfigurationEntriesAreRefused) {
  Message m = Append(1);
  m.mutable_entries(0)->set_type(ENTRY_TYPE_CONF_CHANGE);
  m.mutable_entries(0)->set_data("\xff\xff\xff");
  ExpectRefused(m, "unreadable");
  ConfChange change;
  change.set_type(CONF_CHANGE_TYPE_ADD_VOTER);
  change.set_member_id(0);
  m.mutable_entries(0)->set_data(change.SerializeAsString());
  ExpectRefused(m, "id 0");
  change.set_member_id(7);
  change.set_type(static_cast<ConfChangeType>(99));
  m.mutable_entries(0)->set_data(change.SerializeAsString());
  ExpectRefused(m, "unknown change type");
  m = Append(1);
  m.mutable_entries(0)->set_type(static_cast<EntryType>(42));
  ExpectRefused(m, "unknown type");
}

TEST_F(ValidateTest, UnknownTypesAndMisplacedFieldsAreRefused) {
  ExpectRefused(Msg(MESSAGE_TYPE_UNSPECIFIED, 3, 2, term_), "unknown type");
  ExpectRefused(Msg(MESSAGE_TYPE_TRANSFER_LEADER, 3, 2, term_), "unknown");
  ExpectRefused(Msg(static_cast<MessageType>(1234), 3, 2, term_), "unknown");
  Message hb = Msg(MESSAGE_TYPE_HEARTBEAT, 1, 2, term_);
  hb.set_transfer(true);
  ExpectRefused(hb, "transfer flag");
  Message resp = Msg(MESSAGE_TYPE_VOTE_RESPONSE, 3, 2, term_);
  *resp.add_entries() = Entry();
  ExpectRefused(resp, "carries entries");
  Message vote = Msg(MESSAGE_TYPE_VOTE, 3, 2, term_ + 1);
  vote.set_log_term(term_ + 2);
  ExpectRefused(vote, "log term");
}

TEST_F(ValidateTest, TransferVoteFromAStrangerDoesNotLiftTheLease) {
  // Member 9 is in no configuration: its transfer flag is ignored, so the
  // voter, in lease, ignores the request as any other (§4.2.3).
  const uint64_t term = c_->raft(2).term();
  Message v = Msg(MESSAGE_TYPE_VOTE, 9, 2, term + 1);
  v.set_index(c_->raft(2).log().last_index());
  v.set_log_term(c_->raft(2).log().last_term());
  v.set_transfer(true);
  ASSERT_TRUE(c_->raft(2).Step(v, c_->now()).ok());
  EXPECT_EQ(c_->raft(2).term(), term);
  EXPECT_FALSE(c_->raft(2).HasReady());
  // From a voter of the configuration it lifts the lease (the control).
  v.set_from(3);
  ASSERT_TRUE(c_->raft(2).Step(v, c_->now()).ok());
  EXPECT_EQ(c_->raft(2).term(), term + 1);
  c_->DropAll();
  c_->ProcessReadies();
  c_->DropAll();
}

TEST(ValidateConfStateTest, AcceptsOnlyWellFormedConfigurations) {
  ConfState ok;
  ok.add_voters(1);
  ok.add_learners(2);
  EXPECT_TRUE(ValidateConfState(ok).ok());
  ConfState dup = ok;
  dup.add_voters(1);
  EXPECT_FALSE(ValidateConfState(dup).ok());
  EXPECT_FALSE(ValidateConfState(ConfState()).ok());
}

}  // namespace
}  // namespace quorate::raft
