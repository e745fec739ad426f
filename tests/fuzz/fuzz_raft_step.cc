// Fuzzes the consensus core's message handling: raft::Raft::Step with
// arbitrary quorate.raft.Messages, interleaved with Tick, the Ready loop
// (GetReady, instant "persist", Advance), proposals, reads, compaction and
// leadership transfer (input format: fuzz_input.h, RaftOp).
//
// The member under test is 1 of the voters {1, 2, 3}, restored with a few
// entries and maybe a snapshot, and maybe made leader first by stepping the
// vote responses that elect it. Step() may refuse a message with an error
// status; crashing, aborting (a QUORATE_CHECK in the core) or undefined
// behaviour is a finding. After every op the checker below asserts what
// must hold whatever the peers send:
//  - no log index wraps past 2^64 - 1;
//  - commit <= last log index, and commit >= the snapshot index;
//  - term and commit never decrease;
//  - the log's indices are contiguous from first_index to last_index, its
//    terms never decrease (from the snapshot's term on), and none is
//    beyond the current term;
//  - at most one vote per term: once set, the vote does not change within
//    the term;
//  - a leader's log never shrinks and never changes within its term
//    (Leader Append-Only);
// and on every Ready: entries to persist are contiguous, committed entries
// are handed out once each, in order, after any snapshot, and only up to
// the commit index.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "fuzz_input.h"
#include "raft/raft.h"
#include "util/check.h"
#include "wire/raft.pb.h"

namespace quorate::fuzz {
namespace {

using raft::Role;

constexpr uint64_t kSelf = 1;
constexpr int64_t kMs = 1'000'000;

class Checker {
 public:
  void Observe(const raft::Raft& r) {
    const raft::RaftLog& log = r.log();
    const raft::Status st = r.GetStatus();
    // Before anything reads the log: an index that wrapped makes every
    // position in it wrong.
    QUORATE_CHECK(log.first_index() > log.snapshot_index() &&
                  log.last_index() >= log.snapshot_index())
        << "log index wrapped: snapshot at " << log.snapshot_index();
    QUORATE_CHECK_LE(r.commit(), log.last_index()) << "commit beyond the log";
    QUORATE_CHECK_GE(r.commit(), log.snapshot_index())
        << "commit below the snapshot";
    QUORATE_CHECK_GE(r.term(), term_) << "term went back";
    QUORATE_CHECK_GE(r.commit(), commit_) << "commit went back";
    uint64_t prev_term = log.snapshot_term();
    for (uint64_t i = log.first_index(); i <= log.last_index(); ++i) {
      const raft::Entry& e = log.At(i);
      QUORATE_CHECK_EQ(e.index(), i) << "log not contiguous";
      QUORATE_CHECK_GE(e.term(), prev_term) << "log term went back at " << i;
      prev_term = e.term();
    }
    QUORATE_CHECK_LE(log.last_term(), r.term())
        << "log holds a term beyond the current term";
    if (r.term() == term_ && vote_ != 0) {
      QUORATE_CHECK_EQ(st.vote, vote_) << "second vote in term " << term_;
    }
    if (r.role() == Role::kLeader) {
      if (leader_term_ == r.term()) {
        QUORATE_CHECK_GE(log.last_index(), leader_last_index_)
            << "leader's log shrank in term " << r.term();
        const std::optional<uint64_t> t = log.Term(leader_last_index_);
        if (t.has_value()) {
          QUORATE_CHECK_EQ(*t, leader_last_term_)
              << "leader's entry " << leader_last_index_ << " changed";
        }
      }
      leader_term_ = r.term();
      leader_last_index_ = log.last_index();
      leader_last_term_ = log.last_term();
    }
    term_ = r.term();
    vote_ = st.vote;
    commit_ = r.commit();
  }

 private:
  uint64_t term_ = 0;
  uint64_t vote_ = 0;
  uint64_t commit_ = 0;
  uint64_t leader_term_ = 0;
  uint64_t leader_last_index_ = 0;
  uint64_t leader_last_term_ = 0;
};

class Harness {
 public:
  explicit Harness(uint8_t setup) : random_(setup) {
    raft::Config config;
    config.id = kSelf;
    config.random = &random_;
    config.pre_vote = (setup & kSetupNoPreVote) == 0;
    config.check_quorum = (setup & kSetupNoCheckQuorum) == 0;
    if (setup & kSetupCommitDelay) config.commit_notify_delay_ns = 10 * kMs;
    if (setup & kSetupSmallLimits) {
      config.max_message_bytes = 64;
      config.max_inflight_messages = 2;
      config.max_inflight_bytes = 256;
      config.max_uncommitted_bytes = 256;
      config.snapshot_chunk_bytes = 3;
      config.max_snapshot_bytes = 1024;
      config.max_pending_reads = 2;
      config.max_committed_bytes_per_ready = 32;
    }

    raft::RestoredState restored;
    raft::ConfState* conf = restored.snapshot.mutable_conf_state();
    for (uint64_t id : {1, 2, 3}) conf->add_voters(id);
    if (setup & kSetupSnapshot) {
      restored.snapshot.set_index(2);
      restored.snapshot.set_term(1);
      restored.snapshot_data =
          std::make_shared<const std::string>("snapshot at 2");
    }
    const uint64_t n = (setup & kSetupEntriesMask) >> kSetupEntriesShift;
    const uint64_t first = restored.snapshot.index() + 1;
    for (uint64_t i = first; i < first + n; ++i) {
      raft::Entry e;
      e.set_index(i);
      e.set_term(1);
      e.set_data("entry " + std::to_string(i));
      restored.entries.push_back(std::move(e));
    }
    const uint64_t last = first + n - 1;
    restored.hard_state.set_term(1);
    // Everything but the last entry is committed.
    restored.hard_state.set_commit(n > 0 ? last - 1 : first - 1);
    restored.applied = restored.snapshot.index();
    applied_ = restored.applied;

    auto r = raft::Raft::Create(config, std::move(restored), now_);
    QUORATE_CHECK(r.ok()) << r.status();
    raft_ = *std::move(r);
    snapshot_data_ = std::make_shared<const std::string>("compacted state");
    checker_.Observe(*raft_);
    if (setup & kSetupLeader) BecomeLeader();
  }

  void Run(Reader& in) {
    while (!in.empty()) {
      const uint8_t op = in.U8();
      DoOp(op & kOpMask, in);
      checker_.Observe(*raft_);
      if (op & kOpThenDrain) Drain();
    }
    Drain();
  }

 private:
  // Campaigns, then steps the responses of member 2 that elect it.
  void BecomeLeader() {
    while (raft_->role() == Role::kFollower) {
      now_ = raft_->NextDeadline();
      raft_->Tick(now_);
    }
    if (raft_->role() == Role::kPreCandidate) {
      StepOk(Response(raft::MESSAGE_TYPE_PRE_VOTE_RESPONSE, raft_->term() + 1));
    }
    QUORATE_CHECK(raft_->role() == Role::kCandidate)
        << raft::RoleName(raft_->role());
    StepOk(Response(raft::MESSAGE_TYPE_VOTE_RESPONSE, raft_->term()));
    QUORATE_CHECK(raft_->role() == Role::kLeader)
        << raft::RoleName(raft_->role());
    Drain();
    checker_.Observe(*raft_);
  }

  static raft::Message Response(raft::MessageType type, uint64_t term) {
    raft::Message m;
    m.set_type(type);
    m.set_from(2);
    m.set_to(kSelf);
    m.set_term(term);
    return m;
  }

  void StepOk(raft::Message m) {
    const absl::Status s = raft_->Step(std::move(m), now_);
    QUORATE_CHECK(s.ok()) << s;
  }

  void DoOp(uint8_t op, Reader& in) {
    if (op <= kOpStepLast) {
      const std::string bytes = in.Bytes(in.U16());
      raft::Message m;
      if (!m.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
        return;
      }
      m.set_to(kSelf);
      m.set_from(m.from() % 4);
      // An error status is an allowed answer to a malformed message.
      (void)raft_->Step(std::move(m), now_);
      return;
    }
    switch (op) {
      case kOpTick:
        now_ += int64_t{in.U8()} * 10 * kMs;
        raft_->Tick(now_);
        break;
      case kOpGetReady:
        if (!outstanding_ && raft_->HasReady()) TakeReady();
        break;
      case kOpAdvance:
        if (outstanding_) AdvanceReady();
        break;
      case kOpDrain:
        Drain();
        break;
      case kOpPropose:
        (void)raft_->Propose(in.Bytes(in.U8()), now_);
        break;
      case kOpReadIndex:
        (void)raft_->ReadIndex(in.U8(), now_);
        break;
      case kOpTake:
        (void)raft_->TakeMessages();
        (void)raft_->TakeReadStates();
        Apply(raft_->TakeCommittedEntries());
        break;
      case kOpCompact:
        if (applied_ > raft_->log().snapshot_index()) {
          (void)raft_->Compact(raft_->SnapshotMetadataAt(applied_),
                               snapshot_data_);
        }
        break;
      case kOpTransfer:
        (void)raft_->TransferLeadership(in.U8() % 4, now_);
        break;
      case kOpMisc: {
        const uint8_t what = in.U8() % 3;
        const uint8_t arg = in.U8();
        if (what == 0) {
          raft_->ReportUnreachable(arg % 4);
        } else if (what == 1) {
          raft_->Campaign(now_);
        } else {
          raft::ConfChange cc;
          cc.set_type(static_cast<raft::ConfChangeType>(arg % 5));
          cc.set_member_id(arg / 5 % 6);
          (void)raft_->ProposeConfChange(cc, now_);
        }
        break;
      }
      default:
        break;
    }
  }

  void Drain() {
    if (outstanding_) AdvanceReady();
    for (int i = 0; i < 64 && raft_->HasReady(); ++i) {
      TakeReady();
      AdvanceReady();
    }
  }

  void TakeReady() {
    raft::Ready rd = raft_->GetReady();
    outstanding_ = true;
    if (rd.snapshot.has_value()) {
      // Applied first, before the entries of the same Ready.
      QUORATE_CHECK_GT(rd.snapshot->metadata.index(), applied_)
          << "a snapshot the state machine already covers";
      QUORATE_CHECK(rd.snapshot->data != nullptr);
      applied_ = rd.snapshot->metadata.index();
    }
    for (size_t i = 1; i < rd.entries.size(); ++i) {
      QUORATE_CHECK_EQ(rd.entries[i]->index(), rd.entries[i - 1]->index() + 1)
          << "entries to persist are not contiguous";
      QUORATE_CHECK_GE(rd.entries[i]->term(), rd.entries[i - 1]->term());
    }
    if (rd.hard_state.has_value()) {
      QUORATE_CHECK_LE(rd.hard_state->commit(), raft_->log().last_index());
    }
    Apply(rd.committed_entries);
  }

  void AdvanceReady() {
    raft_->Advance();
    outstanding_ = false;
  }

  void Apply(const std::vector<raft::EntryPtr>& entries) {
    for (const raft::EntryPtr& e : entries) {
      QUORATE_CHECK_EQ(e->index(), applied_ + 1)
          << "committed entries out of order";
      QUORATE_CHECK_LE(e->index(), raft_->commit()) << "applied uncommitted";
      applied_ = e->index();
    }
  }

  raft::SeededRandom random_;
  std::unique_ptr<raft::Raft> raft_;
  std::shared_ptr<const std::string> snapshot_data_;
  Checker checker_;
  int64_t now_ = 1'000 * kMs;
  bool outstanding_ = false;
  uint64_t applied_ = 0;
};

}  // namespace
}  // namespace quorate::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  quorate::fuzz::Reader in(data, size);
  quorate::fuzz::Harness harness(in.U8());
  harness.Run(in);
  return 0;
}
