#include "raft/progress.h"

#include <gtest/gtest.h>

#include "raft/cluster.h"

namespace quorate::raft {
namespace {

TEST(InflightsTest, BoundsCountAndBytes) {
  Inflights in(3, 1000);
  in.Add(1, 100);
  in.Add(2, 100);
  EXPECT_FALSE(in.Full());
  in.Add(3, 100);
  EXPECT_TRUE(in.Full());  // count
  in.FreeUpTo(2);
  EXPECT_EQ(in.count(), 1u);
  EXPECT_EQ(in.bytes(), 100u);
  in.Add(4, 950);
  EXPECT_TRUE(in.Full());  // bytes
  in.FreeFirst();
  in.FreeFirst();
  EXPECT_EQ(in.count(), 0u);
  EXPECT_EQ(in.bytes(), 0u);
}

TEST(ProgressTest, ProbeIgnoresStaleRejections) {
  Progress pr(2, false, 8, 1 << 20);
  pr.next = 10;
  EXPECT_FALSE(pr.MaybeDecrTo(5, 3));  // not the last probe (9)
  EXPECT_TRUE(pr.MaybeDecrTo(9, 3));
  EXPECT_EQ(pr.next, 4u);
}

TEST(ProgressTest, ReplicateFallsBackToMatch) {
  Progress pr(2, false, 8, 1 << 20);
  pr.match = 5;
  pr.BecomeReplicate();
  pr.next = 20;
  EXPECT_FALSE(pr.MaybeDecrTo(4, 0));  // older than match: stale
  EXPECT_TRUE(pr.MaybeDecrTo(12, 0));
  EXPECT_EQ(pr.next, 6u);
}

TEST(MembershipTest, SingleServerChanges) {
  ConfState cs;
  cs.add_voters(3);
  cs.add_voters(1);
  Membership m(cs);
  EXPECT_EQ(m.Quorum(), 2u);
  EXPECT_TRUE(
      m.Apply(testing::MakeConfChange(CONF_CHANGE_TYPE_ADD_LEARNER, 4)));
  EXPECT_FALSE(m.Apply(testing::MakeConfChange(CONF_CHANGE_TYPE_ADD_VOTER, 4)));
  EXPECT_TRUE(
      m.Apply(testing::MakeConfChange(CONF_CHANGE_TYPE_PROMOTE_LEARNER, 4)));
  EXPECT_EQ(m.voters(), (std::vector<uint64_t>{1, 3, 4}));
  EXPECT_EQ(m.Quorum(), 2u);
  EXPECT_TRUE(m.Apply(testing::MakeConfChange(CONF_CHANGE_TYPE_REMOVE, 1)));
  EXPECT_TRUE(m.Apply(testing::MakeConfChange(CONF_CHANGE_TYPE_REMOVE, 3)));
  EXPECT_FALSE(m.Apply(
      testing::MakeConfChange(CONF_CHANGE_TYPE_REMOVE, 4)));  // last voter
  EXPECT_FALSE(m.Apply(testing::MakeConfChange(CONF_CHANGE_TYPE_ADD_VOTER, 0)));
}

}  // namespace
}  // namespace quorate::raft
