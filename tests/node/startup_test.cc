// The start-up lease across a change of the election timeout
// (node/startup.h), on the real storage over an in-memory file system.
#include "node/startup.h"

#include <gtest/gtest.h>

#include <memory>

#include "raft/raft.h"
#include "storage/mem_fs.h"
#include "storage/storage.h"

namespace quorate::node {
namespace {

constexpr int64_t kSecond = 1'000'000'000;

class StartupLeaseTest : public ::testing::Test {
 protected:
  // Opens the member's storage as a restart would.
  std::unique_ptr<storage::Storage> Open() {
    raft::RestoredState restored;
    auto s = storage::Storage::Open(
        storage::testing::MemStorageOptions(&fs_, 64 << 10), &restored);
    EXPECT_TRUE(s.ok()) << s.status();
    return s.ok() ? *std::move(s) : nullptr;
  }

  storage::testing::MemFileSystem fs_;
};

TEST_F(StartupLeaseTest, FirstStart_LeaseIsTAndTIsRecordedAtOnce) {
  auto s = Open();
  const absl::StatusOr<StartupLease> lease = PrepareStartupLease(*s, kSecond);
  ASSERT_TRUE(lease.ok()) << lease.status();
  EXPECT_EQ(lease->lease_ns, kSecond);
  EXPECT_EQ(lease->previous_ns, 0);
  EXPECT_EQ(lease->record_after_ns, 0);
  EXPECT_EQ(*s->RecordedElectionTimeout(), kSecond);
}

// A shorter T keeps the last run's longer lease, and is recorded only once
// that lease is over: a crash before then starts with the longer one again.
TEST_F(StartupLeaseTest, ShorterT_KeepsTheLongerLeaseAndRecordsLater) {
  ASSERT_TRUE(Open()->RecordElectionTimeout(2 * kSecond).ok());
  auto s = Open();
  const absl::StatusOr<StartupLease> lease =
      PrepareStartupLease(*s, kSecond / 2);
  ASSERT_TRUE(lease.ok()) << lease.status();
  EXPECT_EQ(lease->lease_ns, 2 * kSecond);
  EXPECT_EQ(lease->previous_ns, 2 * kSecond);
  EXPECT_EQ(lease->record_after_ns, 2 * kSecond);
  EXPECT_EQ(*s->RecordedElectionTimeout(), 2 * kSecond);
  s.reset();  // a crash before the lease ends
  s = Open();
  EXPECT_EQ(PrepareStartupLease(*s, kSecond / 2)->lease_ns, 2 * kSecond);
}

TEST_F(StartupLeaseTest, LongerT_IsRecordedAtOnce) {
  ASSERT_TRUE(Open()->RecordElectionTimeout(kSecond).ok());
  auto s = Open();
  const absl::StatusOr<StartupLease> lease =
      PrepareStartupLease(*s, 3 * kSecond);
  ASSERT_TRUE(lease.ok()) << lease.status();
  EXPECT_EQ(lease->lease_ns, 3 * kSecond);
  EXPECT_EQ(lease->record_after_ns, 0);
  EXPECT_EQ(*s->RecordedElectionTimeout(), 3 * kSecond);
}

// A damaged record stops the start: guessing a T could break a promise.
TEST_F(StartupLeaseTest, DamagedRecord_IsAnError) {
  ASSERT_TRUE(Open()->RecordElectionTimeout(kSecond).ok());
  fs_.File("/data/TIMING")->data[0] ^= 1;
  auto s = Open();
  EXPECT_EQ(PrepareStartupLease(*s, kSecond).status().code(),
            absl::StatusCode::kDataLoss);
}

}  // namespace
}  // namespace quorate::node
