// coord/fence_check.h: what a fence name names, and the verdict.
#include "coord/fence_check.h"

#include <gtest/gtest.h>

#include "coord/shard_group.h"

namespace quorate::coord {
namespace {

TEST(FenceCheckTest, NamesAreReadAsTheHoldersTheyName) {
  absl::StatusOr<FenceTarget> t = ParseFenceName("mailboxes/17");
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ(t->kind, FenceTarget::Kind::kShard);
  EXPECT_EQ(t->name, "mailboxes");
  EXPECT_EQ(t->shard, 17u);
  t = ParseFenceName("lock/billing");
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(t->kind, FenceTarget::Kind::kLock);
  EXPECT_EQ(t->name, "billing");
  t = ParseFenceName("election/leader");
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(t->kind, FenceTarget::Kind::kElection);
  t = ParseFenceName("cluster");
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(t->kind, FenceTarget::Kind::kCluster);
  for (const char* bad : {"", "mailboxes", "mailboxes/x", "mailboxes/-1",
                          "a/b/c", "lock/", "/3", "clusters"}) {
    EXPECT_EQ(ParseFenceName(bad).status().code(),
              absl::StatusCode::kInvalidArgument)
        << bad;
  }
}

// A shard group may not take a name that would make its fences a lock's
// or an election's ("lock/3" is lock 3's).
TEST(FenceCheckTest, GroupsCannotShareFenceNamesWithLocksOrElections) {
  EXPECT_EQ(CheckNewShardGroupName("lock").code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(CheckNewShardGroupName("election").code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(CheckNewShardGroupName("locks").ok());
  // Where state is applied or loaded, an existing group stays readable.
  EXPECT_TRUE(ShardGroupPrefix("lock").ok());
  EXPECT_EQ(ParseFenceName("lock/3")->kind, FenceTarget::Kind::kLock);
}

TEST(FenceCheckTest, OnlyTheCurrentHoldersEpochPasses) {
  EXPECT_TRUE(FenceVerdict("g/1", 5, {5, true}).ok());
  const absl::Status stale = FenceVerdict("g/1", 4, {5, true});
  EXPECT_EQ(stale.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(stale.message().find("epoch 4 is below the current holder's, 5"),
            std::string::npos)
      << stale;
  // Released: the last holder's epoch is no one's now.
  const absl::Status gone = FenceVerdict("g/1", 5, {5, false});
  EXPECT_EQ(gone.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(gone.message().find("no one holds it now"), std::string::npos)
      << gone;
  EXPECT_NE(FenceVerdict("g/1", 4, {5, false}).message().find("last holder"),
            std::string::npos);
  // An epoch above the holder's: a waiter's, or never issued.
  EXPECT_EQ(FenceVerdict("lock/x", 6, {5, true}).code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(FenceVerdict("lock/x", 1, {0, false}).code(),
            absl::StatusCode::kFailedPrecondition);
}

}  // namespace
}  // namespace quorate::coord
