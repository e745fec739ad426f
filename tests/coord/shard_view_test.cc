// A processor's view of a shard group (coord/shard_view.h), rule by rule,
// on made-up times: when a shard is owned, at which epoch, until when, and
// what the caller is asked to send.
#include "coord/shard_view.h"

#include <gtest/gtest.h>

namespace quorate::coord {
namespace {

constexpr int64_t kDrainNs = 1'000;

ShardState Owned(const std::string& owner, uint64_t epoch) {
  ShardState st;
  st.owner = owner;
  st.epoch = epoch;
  st.phase = ShardPhase::kOwned;
  return st;
}

ShardState Revoking(const std::string& owner, uint64_t epoch, bool acked) {
  ShardState st = Owned(owner, epoch);
  st.phase = ShardPhase::kRevoking;
  st.next = "other";
  st.acked = acked;
  return st;
}

TEST(ShardDrainWindowTest, ShrinksByTheDriftBoundAndTheMargin) {
  // 1 s as a clock 1% fast may count it, less 50 ms.
  EXPECT_EQ(ShardDrainWindowNs(1000, 0.01, 50'000'000),
            static_cast<int64_t>(1e9 * 0.99 / 1.01) - 50'000'000);
  EXPECT_EQ(ShardDrainWindowNs(10, 0.01, 50'000'000), 0);  // never negative
}

TEST(ShardViewTest, OwnsOnlyWhatTheViewAssignsHere) {
  ShardView v("me", 4, kDrainNs);
  EXPECT_EQ(v.Owns(0, 0), 0u);
  ShardView::Change c = v.Update(0, Owned("me", 3), false, 10);
  EXPECT_EQ(c.assigned, 3u);
  EXPECT_EQ(c.revoke_epoch, 0u);
  EXPECT_EQ(v.Owns(0, 1'000'000), 3u);  // no deadline while owned
  EXPECT_EQ(v.Owns(1, 10), 0u);
  EXPECT_EQ(v.Owns(99, 10), 0u);  // out of range
  // The same state again is no new tenure.
  EXPECT_EQ(v.Update(0, Owned("me", 3), false, 20).assigned, 0u);
  // Someone else's now: not owned here any more.
  v.Update(0, Owned("other", 4), false, 30);
  EXPECT_EQ(v.Owns(0, 30), 0u);
}

TEST(ShardViewTest, ARevocationSetsTheDeadlineFromWhenItIsSeen) {
  ShardView v("me", 2, kDrainNs);
  v.Update(1, Owned("me", 5), false, 0);
  ShardView::Change c = v.Update(1, Revoking("me", 5, false), false, 100);
  EXPECT_EQ(c.revoke_epoch, 5u);  // acknowledge epoch 5
  EXPECT_EQ(v.Until(1), 100 + kDrainNs);
  EXPECT_EQ(v.Owns(1, 100 + kDrainNs - 1), 5u);
  EXPECT_EQ(v.Owns(1, 100 + kDrainNs), 0u);
  EXPECT_EQ(v.Due(100 + kDrainNs - 1), std::vector<uint32_t>{});
  EXPECT_EQ(v.Due(100 + kDrainNs), std::vector<uint32_t>{1});
  // Seen again (acknowledged now): the deadline does not move.
  c = v.Update(1, Revoking("me", 5, true), false, 500);
  EXPECT_EQ(c.revoke_epoch, 0u);
  EXPECT_EQ(v.Until(1), 100 + kDrainNs);
}

TEST(ShardViewTest, ACalledOffRevocationClearsTheDeadline) {
  ShardView v("me", 1, kDrainNs);
  v.Update(0, Owned("me", 2), false, 0);
  v.Update(0, Revoking("me", 2, false), false, 10);
  v.Update(0, Owned("me", 2), false, 20);
  EXPECT_EQ(v.Until(0), ShardView::kNever);
  EXPECT_EQ(v.Owns(0, 10 + kDrainNs), 2u);
  // Revoked again later: a new deadline, a new acknowledgement.
  EXPECT_EQ(v.Update(0, Revoking("me", 2, false), false, 50).revoke_epoch, 2u);
  EXPECT_EQ(v.Until(0), 50 + kDrainNs);
}

TEST(ShardViewTest, AnAcknowledgementBeforeTheViewBeganMeansDrained) {
  ShardView v("me", 1, kDrainNs);
  ShardView::Change c = v.Update(0, Revoking("me", 7, true), true, 10);
  EXPECT_EQ(c.assigned, 7u);
  EXPECT_EQ(c.revoke_epoch, 0u);
  EXPECT_EQ(v.Owns(0, 10), 0u);
  EXPECT_EQ(v.Due(10), std::vector<uint32_t>{0});  // release it
}

TEST(ShardViewTest, AReleasedEpochIsNotOwnedAgainWhileTheViewLags) {
  ShardView v("me", 1, kDrainNs);
  v.Update(0, Owned("me", 4), false, 0);
  EXPECT_EQ(v.TakeRelease(0), 4u);
  EXPECT_EQ(v.Owns(0, 1), 0u);
  // The view still shows epoch 4 (the release is not applied yet).
  EXPECT_EQ(v.Update(0, Owned("me", 4), false, 2).assigned, 0u);
  EXPECT_EQ(v.Owns(0, 2), 0u);
  // Unconfirmed: asked again, the same epoch is sent again.
  EXPECT_EQ(v.TakeRelease(0), 4u);
  EXPECT_EQ(v.PendingReleases(),
            (std::vector<std::pair<uint32_t, uint64_t>>{{0, 4}}));
  v.ReleaseDone(0, 4);
  EXPECT_TRUE(v.PendingReleases().empty());
  EXPECT_EQ(v.TakeRelease(0), 0u);  // nothing to release
  // Given back here later, at a new epoch: owned again.
  v.Update(0, Owned("other", 5), false, 3);
  EXPECT_EQ(v.Update(0, Owned("me", 6), false, 4).assigned, 6u);
  EXPECT_EQ(v.Owns(0, 4), 6u);
}

TEST(ShardViewTest, DropAllEndsEveryTenure) {
  ShardView v("me", 3, kDrainNs);
  for (uint32_t s = 0; s < 3; ++s) v.Update(s, Owned("me", 1), false, 0);
  v.DropAll();
  for (uint32_t s = 0; s < 3; ++s) EXPECT_EQ(v.Owns(s, 1), 0u);
}

}  // namespace
}  // namespace quorate::coord
