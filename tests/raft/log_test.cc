#include "raft/log.h"

#include <gtest/gtest.h>

#include <vector>

namespace quorate::raft {
namespace {

Entry E(uint64_t index, uint64_t term) {
  Entry e;
  e.set_index(index);
  e.set_term(term);
  return e;
}

RaftLog Make(const std::vector<uint64_t>& terms, uint64_t snap_index = 0,
             uint64_t snap_term = 0) {
  RaftLog log(snap_index, snap_term);
  uint64_t i = snap_index;
  for (uint64_t t : terms) log.Append(E(++i, t));
  return log;
}

TEST(RaftLogTest, TermAndBounds) {
  RaftLog log = Make({1, 1, 2}, 5, 1);
  EXPECT_EQ(log.first_index(), 6u);
  EXPECT_EQ(log.last_index(), 8u);
  EXPECT_EQ(log.last_term(), 2u);
  EXPECT_EQ(log.Term(5), 1u);  // the snapshot point
  EXPECT_EQ(log.Term(4), std::nullopt);
  EXPECT_EQ(log.Term(9), std::nullopt);
  EXPECT_TRUE(log.MatchTerm(8, 2));
  EXPECT_FALSE(log.MatchTerm(8, 1));
}

TEST(RaftLogTest, IsUpToDate_Sec5_4_1) {
  RaftLog log = Make({1, 2, 2});
  EXPECT_TRUE(log.IsUpToDate(3, 1));   // higher last term wins
  EXPECT_TRUE(log.IsUpToDate(2, 3));   // same term, as long
  EXPECT_FALSE(log.IsUpToDate(2, 2));  // same term, shorter
  EXPECT_FALSE(log.IsUpToDate(1, 10));
}

TEST(RaftLogTest, FindConflictByTerm) {
  RaftLog log = Make({1, 1, 2, 2, 4, 4});
  EXPECT_EQ(log.FindConflictByTerm(6, 3), 4u);
  EXPECT_EQ(log.FindConflictByTerm(6, 1), 2u);
  EXPECT_EQ(log.FindConflictByTerm(6, 4), 6u);
  EXPECT_EQ(log.FindConflictByTerm(100, 4), 6u);
  EXPECT_EQ(log.FindConflictByTerm(6, 0), 0u);
}

TEST(RaftLogTest, TruncateMovesStableAndUnpersistedBack) {
  RaftLog log = Make({1, 1, 1, 1});
  log.MarkHandedOut();
  log.MarkStable();
  EXPECT_EQ(log.stable_index(), 4u);
  EXPECT_FALSE(log.HasUnpersisted());
  log.Truncate(3);
  EXPECT_EQ(log.last_index(), 2u);
  EXPECT_EQ(log.stable_index(), 2u);
  log.Append(E(3, 2));
  EXPECT_TRUE(log.HasUnpersisted());
  EXPECT_EQ(log.unpersisted_from(), 3u);
}

TEST(RaftLogTest, TruncationWhileHandedOutIsNotMarkedStable) {
  RaftLog log = Make({1, 1, 1, 1});
  log.MarkHandedOut();  // entries 1..4 are being persisted
  log.Truncate(3);      // meanwhile 3.. is replaced
  log.Append(E(3, 2));
  log.MarkStable();  // the runtime finished writing 1..4
  EXPECT_EQ(log.stable_index(), 2u);
  EXPECT_EQ(log.unpersisted_from(), 3u);
}

TEST(RaftLogTest, CompactKeepsLaterEntries) {
  RaftLog log = Make({1, 1, 2, 3});
  log.MarkAllStable();
  log.Compact(2);
  EXPECT_EQ(log.snapshot_index(), 2u);
  EXPECT_EQ(log.snapshot_term(), 1u);
  EXPECT_EQ(log.first_index(), 3u);
  EXPECT_EQ(log.At(4).term(), 3u);
}

TEST(RaftLogTest, SliceRespectsByteLimitButSendsOne) {
  RaftLog log(0, 0);
  for (uint64_t i = 1; i <= 10; ++i) {
    Entry e = E(i, 1);
    e.set_data(std::string(84, 'x'));  // 100 bytes counted
    log.Append(e);
  }
  int n = 0;
  EXPECT_EQ(log.Slice(1, 10, 350, [&](const EntryPtr&) { ++n; }), 3u);
  EXPECT_EQ(n, 3);
  n = 0;
  EXPECT_EQ(log.Slice(4, 10, 1, [&](const EntryPtr&) { ++n; }), 4u);
  EXPECT_EQ(n, 1);
}

TEST(RaftLogDeathTest, AppendWithGapCrashes) {
  RaftLog log = Make({1});
  EXPECT_DEATH(log.Append(E(3, 1)), "non-contiguous append");
}

}  // namespace
}  // namespace quorate::raft
