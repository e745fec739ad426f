// quorate/fence.h: the names every holder files its token under, and the
// rule a resource applies.
#include "quorate/fence.h"

#include <gtest/gtest.h>

#include <string>

namespace quorate {
namespace {

TEST(FenceTest, EveryHolderGivesItsTokenInOneForm) {
  const Fence shard = ShardFence("mailboxes", 17, 4);
  EXPECT_EQ(shard.name, "mailboxes/17");
  EXPECT_EQ(shard.epoch, 4u);
  const Fence lock = LockFence("billing", 812);
  EXPECT_EQ(lock.name, "lock/billing");
  EXPECT_EQ(lock.epoch, 812u);
  const Fence election = ElectionFence("leader", 90);
  EXPECT_EQ(election.name, "election/leader");
  EXPECT_EQ(election.epoch, 90u);
  // Every member active under one leader presents the same epoch; a later
  // leader's is higher, whatever the indexes.
  const Fence old_window = ClusterFence(FencingToken{3, 4000});
  const Fence new_window = ClusterFence(FencingToken{4, 4001});
  EXPECT_EQ(old_window.name, "cluster");
  EXPECT_LT(old_window.epoch, new_window.epoch);
  EXPECT_EQ(ClusterFence(FencingToken{3, 4000}).epoch, old_window.epoch);
}

TEST(FenceTest, TheRule_LowerRefusedEqualAndHigherAccepted) {
  const Fence f = ShardFence("mailboxes", 7, 5);
  EXPECT_TRUE(CheckFence(f, 0).ok());  // nothing accepted yet
  EXPECT_TRUE(CheckFence(f, 4).ok());  // a newer holder
  EXPECT_TRUE(CheckFence(f, 5).ok());  // the same holder again
  const absl::Status lower = CheckFence(f, 6);
  EXPECT_EQ(lower.code(), absl::StatusCode::kFailedPrecondition);
  // The message names the fence and both epochs.
  EXPECT_NE(lower.message().find("'mailboxes/7'"), std::string::npos) << lower;
  EXPECT_NE(lower.message().find("epoch 5"), std::string::npos) << lower;
  EXPECT_NE(lower.message().find("highest accepted, 6"), std::string::npos)
      << lower;
}

TEST(FenceTest, BadFencesAreRefusedAsInvalid) {
  EXPECT_EQ(CheckFence(Fence{"", 1}, 0).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(CheckFence(Fence{std::string(513, 'x'), 1}, 0).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(CheckFence(Fence{std::string(512, 'x'), 1}, 0).ok());
  EXPECT_EQ(CheckFence(Fence{"lock/a", 0}, 0).code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace quorate
