#include "storage/storage.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "storage/mem_fs.h"
#include "storage/record.h"
#include "storage/writer.h"

namespace quorate::storage {
namespace {

using testing::MemFileSystem;

raft::EntryPtr E(uint64_t index, uint64_t term, const std::string& data = "") {
  raft::Entry e;
  e.set_index(index);
  e.set_term(term);
  e.set_data(data.empty() ? "entry-" + std::to_string(index) : data);
  return std::make_shared<const raft::Entry>(std::move(e));
}

std::vector<raft::EntryPtr> Range(uint64_t from, uint64_t to, uint64_t term,
                                  size_t bytes = 0) {
  std::vector<raft::EntryPtr> out;
  for (uint64_t i = from; i <= to; ++i) {
    out.push_back(E(i, term, bytes == 0 ? "" : std::string(bytes, 'x')));
  }
  return out;
}

raft::HardState HS(uint64_t term, uint64_t vote, uint64_t commit) {
  raft::HardState hs;
  hs.set_term(term);
  hs.set_vote(vote);
  hs.set_commit(commit);
  return hs;
}

std::vector<uint64_t> Indexes(const raft::RestoredState& r) {
  std::vector<uint64_t> out;
  for (const raft::Entry& e : r.entries) out.push_back(e.index());
  return out;
}

std::vector<uint64_t> Seq(uint64_t from, uint64_t to) {
  std::vector<uint64_t> out;
  for (uint64_t i = from; i <= to; ++i) out.push_back(i);
  return out;
}

class StorageTest : public ::testing::Test {
 protected:
  StorageOptions Options() {
    StorageOptions o = testing::MemStorageOptions(&fs_, segment_bytes_);
    o.log = [this](const std::string& s) { logs_.push_back(s); };
    return o;
  }

  std::unique_ptr<Storage> OpenOk(raft::RestoredState* r) {
    auto s = Storage::Open(Options(), r);
    EXPECT_TRUE(s.ok()) << s.status();
    return s.ok() ? *std::move(s) : nullptr;
  }

  // Writes and syncs.
  void Put(Storage* s, std::vector<raft::EntryPtr> entries,
           std::optional<raft::HardState> hs = std::nullopt) {
    ASSERT_TRUE(s->Write(std::nullopt, entries, hs).ok());
    ASSERT_TRUE(s->Sync().ok());
  }

  MemFileSystem fs_;
  uint64_t segment_bytes_ = 64 << 10;
  std::vector<std::string> logs_;
};

TEST_F(StorageTest, Open_EmptyDirectoryStartsEmptyLog) {
  raft::RestoredState r;
  auto s = OpenOk(&r);
  EXPECT_TRUE(r.entries.empty());
  EXPECT_EQ(r.hard_state.term(), 0u);
  EXPECT_EQ(s->segment_count(), 1u);
  // The first segment is preallocated.
  ASSERT_NE(fs_.File("/data/0000000000000001-0000000000000001.wal"), nullptr);
  EXPECT_EQ(
      fs_.File("/data/0000000000000001-0000000000000001.wal")->data.size(),
      segment_bytes_);
}

TEST_F(StorageTest, Open_SecondOpenOfSameDirectoryIsRefused) {
  raft::RestoredState r;
  auto first = OpenOk(&r);
  auto second = Storage::Open(Options(), &r);
  EXPECT_EQ(second.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(second.status().message().find("in use"), absl::string_view::npos);
  first.reset();
  EXPECT_TRUE(Storage::Open(Options(), &r).ok());
}

TEST_F(StorageTest, ElectionTimeout_RecordedDurablyAndChecked) {
  raft::RestoredState r;
  auto s = OpenOk(&r);
  EXPECT_EQ(*s->RecordedElectionTimeout(), 0);  // never recorded
  const int64_t two_s = 2'000'000'000;
  ASSERT_TRUE(s->RecordElectionTimeout(two_s).ok());
  s.reset();
  s = OpenOk(&r);
  EXPECT_EQ(*s->RecordedElectionTimeout(), two_s);
  ASSERT_TRUE(s->RecordElectionTimeout(500'000'000).ok());
  EXPECT_EQ(*s->RecordedElectionTimeout(), 500'000'000);
  // A damaged record is an error naming the file, never a guess.
  fs_.File("/data/TIMING")->data[0] ^= 1;
  const absl::StatusOr<int64_t> bad = s->RecordedElectionTimeout();
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_NE(bad.status().message().find("TIMING"), absl::string_view::npos);
}

// Records with valid checksums whose terms go back: recovery refuses the
// directory instead of handing the core a log it would abort on.
TEST_F(StorageTest, Recovery_RefusesTermsGoingBack) {
  raft::RestoredState r;
  {
    auto s = OpenOk(&r);
    std::vector<raft::EntryPtr> entries;
    for (uint64_t i = 1; i <= 3; ++i) {
      raft::Entry e;
      e.set_index(i);
      e.set_term(i == 3 ? 1 : 2);  // 2, 2, then back to 1
      entries.push_back(std::make_shared<const raft::Entry>(e));
    }
    Put(s.get(), entries);
  }
  auto reopened = Storage::Open(Options(), &r);
  EXPECT_EQ(reopened.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_NE(reopened.status().message().find("terms go back"),
            absl::string_view::npos)
      << reopened.status();
}

// A crash after a leader's snapshot was saved and before the segment after
// it was started leaves a snapshot beyond the log's last entry. Recovery
// must continue the log after the snapshot, in a way the next recovery
// reads (found by fuzz_wal_recovery).
TEST_F(StorageTest, SnapshotPastTheLastEntry_LogContinuesAfterIt) {
  raft::RestoredState r;
  {
    auto s = OpenOk(&r);
    Put(s.get(), Range(1, 3, 1, 10));
    raft::SnapshotMetadata md;
    md.set_index(10);
    md.set_term(2);
    md.mutable_conf_state()->add_voters(1);
    ASSERT_TRUE(s->SaveSnapshot(md, "at 10").ok());  // then the crash
  }
  {
    auto s = OpenOk(&r);
    EXPECT_EQ(r.snapshot.index(), 10u);
    EXPECT_TRUE(r.entries.empty());
    Put(s.get(), Range(11, 12, 2, 10));
  }
  OpenOk(&r);
  EXPECT_EQ(r.snapshot.index(), 10u);
  EXPECT_EQ(Indexes(r), Seq(11, 12));
}

TEST_F(StorageTest, WriteSyncReopen_RoundTrips) {
  raft::RestoredState r;
  {
    auto s = OpenOk(&r);
    Put(s.get(), Range(1, 10, 1), HS(1, 2, 7));
  }
  auto s = OpenOk(&r);
  EXPECT_EQ(Indexes(r), Seq(1, 10));
  EXPECT_EQ(r.entries[4].data(), "entry-5");
  EXPECT_EQ(r.hard_state.term(), 1u);
  EXPECT_EQ(r.hard_state.vote(), 2u);
  EXPECT_EQ(r.hard_state.commit(), 7u);
  EXPECT_EQ(s->last_index(), 10u);
}

TEST_F(StorageTest, Crash_LosesOnlyWhatWasNotSynced) {
  raft::RestoredState r;
  {
    auto s = OpenOk(&r);
    Put(s.get(), Range(1, 5, 1), HS(1, 1, 3));
    ASSERT_TRUE(s->Write(std::nullopt, Range(6, 8, 1), HS(2, 2, 5)).ok());
  }
  fs_.Crash();
  OpenOk(&r);
  EXPECT_EQ(Indexes(r), Seq(1, 5));
  EXPECT_EQ(r.hard_state.term(), 1u);
  EXPECT_EQ(r.hard_state.commit(), 3u);
}

TEST_F(StorageTest, Conflict_TruncatesSuffix) {
  raft::RestoredState r;
  {
    auto s = OpenOk(&r);
    Put(s.get(), Range(1, 10, 1));
    Put(s.get(), Range(6, 7, 2));
    EXPECT_EQ(s->last_index(), 7u);
  }
  OpenOk(&r);
  EXPECT_EQ(Indexes(r), Seq(1, 7));
  EXPECT_EQ(r.entries[5].term(), 2u);
  EXPECT_EQ(r.entries[4].term(), 1u);
}

TEST_F(StorageTest, Segments_RollOverAndCompactWholeSegments) {
  segment_bytes_ = 4096;
  raft::RestoredState r;
  {
    auto s = OpenOk(&r);
    for (uint64_t i = 1; i <= 100; ++i) Put(s.get(), Range(i, i, 1, 200));
    const uint64_t segments = s->segment_count();
    EXPECT_GT(segments, 4u);
    raft::SnapshotMetadata md;
    md.set_index(60);
    md.set_term(1);
    md.mutable_conf_state()->add_voters(1);
    EXPECT_EQ(s->Compact(60).code(), absl::StatusCode::kFailedPrecondition);
    ASSERT_TRUE(s->SaveSnapshot(md, "state at 60").ok());
    ASSERT_TRUE(s->Compact(60).ok());
    EXPECT_LT(s->segment_count(), segments);
    EXPECT_GE(s->segment_count(), 2u);
  }
  OpenOk(&r);
  EXPECT_EQ(r.snapshot.index(), 60u);
  EXPECT_EQ(*r.snapshot_data, "state at 60");
  EXPECT_EQ(r.applied, 60u);
  EXPECT_EQ(Indexes(r), Seq(61, 100));
}

TEST_F(StorageTest, HardStateSurvivesCompactionOfOldSegments) {
  segment_bytes_ = 4096;
  raft::RestoredState r;
  {
    auto s = OpenOk(&r);
    Put(s.get(), Range(1, 1, 3), HS(3, 2, 1));
    for (uint64_t i = 2; i <= 80; ++i) Put(s.get(), Range(i, i, 3, 200));
    raft::SnapshotMetadata md;
    md.set_index(70);
    md.set_term(3);
    ASSERT_TRUE(s->SaveSnapshot(md, "s").ok());
    ASSERT_TRUE(s->Compact(70).ok());
  }
  OpenOk(&r);
  EXPECT_EQ(r.hard_state.term(), 3u);
  EXPECT_EQ(r.hard_state.vote(), 2u);
}

TEST_F(StorageTest, LeaderSnapshot_ReplacesTheWholeLog) {
  raft::RestoredState r;
  {
    auto s = OpenOk(&r);
    Put(s.get(), Range(1, 20, 1));
    raft::Snapshot snap;
    snap.metadata.set_index(100);
    snap.metadata.set_term(4);
    snap.data = std::make_shared<const std::string>("leader state");
    ASSERT_TRUE(s->Write(snap, {}, HS(4, 0, 100)).ok());
    ASSERT_TRUE(s->Sync().ok());
    EXPECT_EQ(s->segment_count(), 1u);
    Put(s.get(), Range(101, 103, 4));
  }
  OpenOk(&r);
  EXPECT_EQ(r.snapshot.index(), 100u);
  EXPECT_EQ(*r.snapshot_data, "leader state");
  EXPECT_EQ(Indexes(r), Seq(101, 103));
  EXPECT_EQ(r.hard_state.commit(), 100u);
}

TEST_F(StorageTest, Snapshots_KeepOnlyTheNewest) {
  raft::RestoredState r;
  auto s = OpenOk(&r);
  Put(s.get(), Range(1, 40, 1));
  for (uint64_t i : {10, 20, 30, 40}) {
    raft::SnapshotMetadata md;
    md.set_index(i);
    md.set_term(1);
    ASSERT_TRUE(s->SaveSnapshot(md, "at " + std::to_string(i)).ok());
  }
  int snaps = 0;
  for (const std::string& p : fs_.Paths()) {
    if (p.find(".snap") != std::string::npos) ++snaps;
  }
  EXPECT_EQ(snaps, 2);
  EXPECT_NE(fs_.File("/data/snap-0000000000000028-0000000000000001.snap"),
            nullptr);
}

TEST_F(StorageTest, Snapshot_NewestCorruptFallsBackToOlder) {
  raft::RestoredState r;
  {
    auto s = OpenOk(&r);
    Put(s.get(), Range(1, 40, 1));
    for (uint64_t i : {10, 20}) {
      raft::SnapshotMetadata md;
      md.set_index(i);
      md.set_term(1);
      ASSERT_TRUE(s->SaveSnapshot(md, "at " + std::to_string(i)).ok());
    }
  }
  fs_.File("/data/snap-0000000000000014-0000000000000001.snap")->data.back() ^=
      1;
  OpenOk(&r);
  EXPECT_EQ(r.snapshot.index(), 10u);
  ASSERT_FALSE(logs_.empty());
  EXPECT_NE(logs_.back().find("skipping invalid snapshot"), std::string::npos);
  EXPECT_EQ(Indexes(r), Seq(11, 40));
}

// A snapshot file read on its own (quoratectl snapshot status): the
// header and the data back, and every kind of damage named.
TEST_F(StorageTest, Snapshot_ReadOnItsOwnChecksBothChecksums) {
  raft::RestoredState r;
  {
    auto s = OpenOk(&r);
    Put(s.get(), Range(1, 10, 1));
    raft::SnapshotMetadata md;
    md.set_index(10);
    md.set_term(1);
    ASSERT_TRUE(s->SaveSnapshot(md, "the state at 10").ok());
  }
  const std::string good =
      fs_.File("/data/snap-000000000000000a-0000000000000001.snap")->data;
  absl::StatusOr<SnapshotFile> f = ReadSnapshotFile(good);
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ(f->header.metadata().index(), 10u);
  EXPECT_EQ(good.substr(f->data_offset), "the state at 10");

  std::string data_flipped = good;
  data_flipped.back() ^= 1;
  f = ReadSnapshotFile(data_flipped);
  EXPECT_TRUE(absl::IsDataLoss(f.status()));
  EXPECT_NE(f.status().message().find("data checksum"), std::string::npos);

  std::string header_flipped = good;
  header_flipped[internal::kFrameHeaderBytes + 2] ^= 1;
  EXPECT_TRUE(absl::IsDataLoss(ReadSnapshotFile(header_flipped).status()));

  f = ReadSnapshotFile(good.substr(0, good.size() - 1));
  EXPECT_TRUE(absl::IsDataLoss(f.status()));
  EXPECT_NE(f.status().message().find("header says"), std::string::npos);
  EXPECT_TRUE(absl::IsDataLoss(ReadSnapshotFile("").status()));
}

TEST_F(StorageTest, Recovery_MissingSegmentIsDataLossNamingFiles) {
  segment_bytes_ = 4096;
  raft::RestoredState r;
  {
    auto s = OpenOk(&r);
    for (uint64_t i = 1; i <= 60; ++i) Put(s.get(), Range(i, i, 1, 200));
    ASSERT_GE(s->segment_count(), 3u);
  }
  std::string second;
  for (const std::string& p : fs_.Paths()) {
    if (p.find("/0000000000000002-") != std::string::npos) second = p;
  }
  ASSERT_FALSE(second.empty());
  ASSERT_TRUE(fs_.Remove(second).ok());
  auto s = Storage::Open(Options(), &r);
  EXPECT_EQ(s.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_NE(s.status().message().find("segment 2 is missing"),
            absl::string_view::npos)
      << s.status();
}

TEST_F(StorageTest, Recovery_CorruptRecordBeforeTailIsDataLossWithOffset) {
  raft::RestoredState r;
  {
    auto s = OpenOk(&r);
    Put(s.get(), Range(1, 10, 1));
  }
  const std::string path = "/data/0000000000000001-0000000000000001.wal";
  std::string& data = fs_.File(path)->data;
  const size_t pos = data.find("entry-3");
  ASSERT_NE(pos, std::string::npos);
  data[pos] ^= 0x20;
  auto s = Storage::Open(Options(), &r);
  EXPECT_EQ(s.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_NE(s.status().message().find(path), absl::string_view::npos);
  EXPECT_NE(s.status().message().find("at offset"), absl::string_view::npos);
  EXPECT_NE(s.status().message().find("checksum"), absl::string_view::npos);
}

TEST_F(StorageTest, Recovery_TornTailIsCutOffAndLogged) {
  raft::RestoredState r;
  uint64_t before = 0;
  {
    auto s = OpenOk(&r);
    Put(s.get(), Range(1, 5, 1));
    before = s->tail_offset();
    Put(s.get(), Range(6, 6, 1));
  }
  // The last record was half written when the machine died.
  std::string& data =
      fs_.File("/data/0000000000000001-0000000000000001.wal")->data;
  for (size_t i = before + 12; i < before + 40; ++i) data[i] = 0;
  RecoveryInfo info;
  auto s = Storage::Open(Options(), &r, &info);
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_TRUE(info.truncated_torn_tail);
  EXPECT_EQ(Indexes(r), Seq(1, 5));
  ASSERT_FALSE(logs_.empty());
  EXPECT_NE(logs_.back().find("torn final record"), std::string::npos);
  // Appends continue cleanly after the cut.
  Put(s->get(), Range(6, 7, 2));
  s->reset();
  OpenOk(&r);
  EXPECT_EQ(Indexes(r), Seq(1, 7));
}

TEST_F(StorageTest, Recovery_RemovesLeftoverTemporaryFiles) {
  raft::RestoredState r;
  OpenOk(&r).reset();
  // A crash in the middle of a snapshot write and of segment preparation.
  for (const char* name :
       {"/data/snap-0000000000000005-0000000000000001.snap.tmp",
        "/data/prepared-3.wal.tmp"}) {
    ASSERT_TRUE(fs_.OpenWritable(name, /*create=*/true, 0).ok());
  }
  OpenOk(&r);
  for (const std::string& p : fs_.Paths()) {
    EXPECT_EQ(p.find(".tmp"), std::string::npos) << p;
  }
}

TEST_F(StorageTest, Recovery_SegmentWithoutHeaderIsRemoved) {
  raft::RestoredState r;
  {
    auto s = OpenOk(&r);
    Put(s.get(), Range(1, 5, 1));
  }
  // The next segment was created (and preallocated) but never got its
  // header: a crash, or a full disk during preallocation.
  ASSERT_TRUE(fs_.OpenWritable("/data/0000000000000002-0000000000000006.wal",
                               /*create=*/true, segment_bytes_)
                  .ok());
  ASSERT_TRUE(fs_.SyncDir("/data").ok());
  {
    auto s = OpenOk(&r);
    EXPECT_EQ(Indexes(r), Seq(1, 5));
    EXPECT_EQ(s->segment_count(), 1u);
    // Appends continue after entry 5 in the first segment.
    Put(s.get(), Range(6, 8, 1));
  }
  OpenOk(&r);
  EXPECT_EQ(Indexes(r), Seq(1, 8));
}

TEST_F(StorageTest, Recovery_TornSegmentHeaderIsRemovedAndOlderDataKept) {
  raft::RestoredState r;
  {
    auto s = OpenOk(&r);
    Put(s.get(), Range(1, 5, 1));
  }
  auto f = fs_.OpenWritable("/data/0000000000000002-0000000000000006.wal",
                            /*create=*/true, segment_bytes_);
  ASSERT_TRUE(f.ok());
  ASSERT_TRUE(
      (*f)->WriteAt(0, std::string("\x20\x00\x00\x00\x01\x99", 6)).ok());
  ASSERT_TRUE(fs_.SyncDir("/data").ok());
  {
    auto s = OpenOk(&r);
    EXPECT_EQ(Indexes(r), Seq(1, 5));
    Put(s.get(), Range(6, 6, 1));
  }
  OpenOk(&r);
  EXPECT_EQ(Indexes(r), Seq(1, 6));
}

TEST_F(StorageTest, Conflict_BelowSegmentStartThenCompactionStillRecovers) {
  segment_bytes_ = 4096;
  raft::RestoredState r;
  {
    auto s = OpenOk(&r);
    for (uint64_t i = 1; i <= 40; ++i) Put(s.get(), Range(i, i, 1, 200));
    ASSERT_GE(s->segment_count(), 3u);
    // A conflict far back: older than the active segment's first entry.
    Put(s.get(), Range(12, 30, 2, 200));
    raft::SnapshotMetadata md;
    md.set_index(25);
    md.set_term(2);
    ASSERT_TRUE(s->SaveSnapshot(md, "at 25").ok());
    ASSERT_TRUE(s->Compact(25).ok());
  }
  OpenOk(&r);
  EXPECT_EQ(r.snapshot.index(), 25u);
  EXPECT_EQ(Indexes(r), Seq(26, 30));
  for (const raft::Entry& e : r.entries) EXPECT_EQ(e.term(), 2u);
}

TEST_F(StorageTest, Recovery_WriteTornOutOfOrderIsCutNotRefused) {
  raft::RestoredState r;
  uint64_t synced_end = 0;
  {
    auto s = OpenOk(&r);
    Put(s.get(), Range(1, 5, 1));
    synced_end = s->tail_offset();
    // An unsynced batch of several sectors reaches the disk with a hole:
    // a later page made it, an earlier one did not.
    ASSERT_TRUE(
        s->Write(std::nullopt, Range(6, 12, 1, 300), std::nullopt).ok());
    ASSERT_TRUE(s->Flush().ok());
  }
  std::string& data =
      fs_.File("/data/0000000000000001-0000000000000001.wal")->data;
  const size_t hole = (synced_end + 600) / 512 * 512;
  std::fill(data.begin() + static_cast<std::ptrdiff_t>(hole),
            data.begin() + static_cast<std::ptrdiff_t>(hole + 512), '\0');
  RecoveryInfo info;
  auto s = Storage::Open(Options(), &r, &info);
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_TRUE(info.truncated_torn_tail);
  ASSERT_GE(r.entries.size(), 5u);
  EXPECT_LT(r.entries.size(), 12u);
  EXPECT_EQ(r.entries[4].index(), 5u);
}

TEST_F(StorageTest, Recovery_LeaderSnapshotInterruptedDropsDivergentLog) {
  raft::RestoredState r;
  {
    auto s = OpenOk(&r);
    Put(s.get(), Range(1, 20, 1));
    // The first step of installing a leader's snapshot whose entry 10 has
    // another term than ours; the crash comes before the new segment.
    raft::SnapshotMetadata md;
    md.set_index(10);
    md.set_term(5);
    ASSERT_TRUE(s->SaveSnapshot(md, "leader").ok());
  }
  fs_.Crash();
  OpenOk(&r);
  EXPECT_EQ(r.snapshot.index(), 10u);
  EXPECT_TRUE(r.entries.empty());  // 11..20 belong to another history
}

// Found by fuzz_wal_recovery: the segment started after such a snapshot
// meets the old log's end, and the old entry at the snapshot's index (of
// another term) made recovery drop the whole log, new entries included.
TEST_F(StorageTest, Recovery_EntriesAfterAnInterruptedLeaderSnapshotSurvive) {
  raft::RestoredState r;
  {
    auto s = OpenOk(&r);
    Put(s.get(), Range(1, 10, 1));
    raft::SnapshotMetadata md;
    md.set_index(10);
    md.set_term(5);
    ASSERT_TRUE(s->SaveSnapshot(md, "leader").ok());
  }
  fs_.Crash();
  {
    auto s = OpenOk(&r);
    ASSERT_TRUE(r.entries.empty());
    Put(s.get(), Range(11, 12, 5));
  }
  fs_.Crash();
  OpenOk(&r);
  EXPECT_EQ(r.snapshot.index(), 10u);
  EXPECT_EQ(Indexes(r), Seq(11, 12));
}

// The same when a leader's snapshot was written but a crash kept the
// segments it replaced (their removal never reached the disk).
TEST_F(StorageTest, Recovery_LeaderSnapshotWithOldSegmentsLeftKeepsNewEntries) {
  segment_bytes_ = 4096;
  raft::RestoredState r;
  std::vector<std::pair<std::string, std::string>> old_segments;
  {
    auto s = OpenOk(&r);
    Put(s.get(), Range(1, 20, 1, 300));
    absl::StatusOr<std::vector<std::string>> names = fs_.ListDir("/data");
    ASSERT_TRUE(names.ok());
    for (const std::string& name : *names) {
      if (name.size() > 4 && name.substr(name.size() - 4) == ".wal") {
        old_segments.emplace_back(name, fs_.File("/data/" + name)->data);
      }
    }
    ASSERT_GT(old_segments.size(), 1u);
    raft::Snapshot leader;
    leader.metadata.set_index(10);
    leader.metadata.set_term(5);
    leader.data = std::make_shared<const std::string>("leader");
    ASSERT_TRUE(s->Write(leader, Range(11, 12, 5), std::nullopt).ok());
    ASSERT_TRUE(s->Sync().ok());
  }
  for (const auto& [name, data] : old_segments) {
    auto file = fs_.OpenWritable("/data/" + name, /*create=*/true, 0);
    ASSERT_TRUE(file.ok());
    ASSERT_TRUE((*file)->WriteAt(0, data).ok());
    ASSERT_TRUE((*file)->Sync().ok());
  }
  OpenOk(&r);
  EXPECT_EQ(r.snapshot.index(), 10u);
  EXPECT_EQ(Indexes(r), Seq(11, 12));
  for (const raft::Entry& e : r.entries) EXPECT_EQ(e.term(), 5u);
}

TEST_F(StorageTest, Recovery_FallbackSnapshotThatTheLogDoesNotMeetIsDataLoss) {
  raft::RestoredState r;
  {
    auto s = OpenOk(&r);
    Put(s.get(), Range(1, 50, 1));
    raft::SnapshotMetadata md;
    md.set_index(50);
    md.set_term(1);
    ASSERT_TRUE(s->SaveSnapshot(md, "at 50").ok());
    raft::Snapshot leader;
    leader.metadata.set_index(100);
    leader.metadata.set_term(3);
    leader.data = std::make_shared<const std::string>("at 100");
    ASSERT_TRUE(s->Write(leader, {}, std::nullopt).ok());
    ASSERT_TRUE(s->Sync().ok());
  }
  fs_.File("/data/snap-0000000000000064-0000000000000003.snap")->data.back() ^=
      1;
  auto s = Storage::Open(Options(), &r);
  EXPECT_EQ(s.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_NE(s.status().message().find("resumes at entry 101"),
            absl::string_view::npos)
      << s.status();
}

TEST_F(StorageTest, Write_GapStopsTheStorage) {
  raft::RestoredState r;
  auto s = OpenOk(&r);
  Put(s.get(), Range(1, 3, 1));
  EXPECT_EQ(s->Write(std::nullopt, Range(6, 6, 1), std::nullopt).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(s->Write(std::nullopt, Range(4, 4, 1), std::nullopt).code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST_F(StorageTest, Recovery_OtherClusterIsRefused) {
  raft::RestoredState r;
  OpenOk(&r).reset();
  StorageOptions o = Options();
  o.cluster_id = "other";
  auto s = Storage::Open(o, &r);
  EXPECT_EQ(s.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(s.status().message().find("belongs to cluster 'c1'"),
            absl::string_view::npos);
}

TEST_F(StorageTest, Salt_MissingOrDamagedIsDataLoss) {
  raft::RestoredState r;
  {
    auto s = OpenOk(&r);
    Put(s.get(), Range(1, 3, 1));
  }
  ASSERT_NE(fs_.File("/data/SALT"), nullptr);
  const std::string salt = fs_.File("/data/SALT")->data;
  fs_.File("/data/SALT")->data[1] ^= 0x01;
  auto damaged = Storage::Open(Options(), &r);
  EXPECT_EQ(damaged.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_NE(damaged.status().message().find("SALT is damaged"),
            absl::string_view::npos)
      << damaged.status();
  ASSERT_TRUE(fs_.Remove("/data/SALT").ok());
  auto missing = Storage::Open(Options(), &r);
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_NE(missing.status().message().find("SALT is missing"),
            absl::string_view::npos)
      << missing.status();
  // Put back, everything reads again.
  {
    auto f = fs_.OpenWritable("/data/SALT", true, 0);
    ASSERT_TRUE(f.ok());
    ASSERT_TRUE((*f)->WriteAt(0, salt).ok());
  }
  OpenOk(&r);
  EXPECT_EQ(Indexes(r), Seq(1, 3));
}

TEST_F(StorageTest, DiskFull_StopsWritesAndRestartShowsNoPartialState) {
  raft::RestoredState r;
  {
    auto s = OpenOk(&r);
    Put(s.get(), Range(1, 5, 1), HS(1, 1, 5));
    fs_.SetWriteBudget(100);
    // Writes are buffered: the error may come from Write() or Sync().
    absl::Status st = s->Write(std::nullopt, Range(6, 20, 1, 50), HS(1, 1, 9));
    if (st.ok()) st = s->Sync();
    EXPECT_EQ(st.code(), absl::StatusCode::kResourceExhausted);
    EXPECT_NE(st.message().find("No space left"), absl::string_view::npos);
    // Stopped: no further writes or syncs, even with space again.
    fs_.SetWriteBudget(-1);
    EXPECT_EQ(s->Write(std::nullopt, Range(6, 6, 1), std::nullopt).code(),
              absl::StatusCode::kFailedPrecondition);
    EXPECT_EQ(s->Sync().code(), absl::StatusCode::kFailedPrecondition);
  }
  fs_.Crash();
  OpenOk(&r);
  EXPECT_EQ(Indexes(r), Seq(1, 5));
  EXPECT_EQ(r.hard_state.commit(), 5u);
}

TEST_F(StorageTest, DiskFull_EvenPartialWriteThatReachesDiskIsCutAtRestart) {
  raft::RestoredState r;
  {
    auto s = OpenOk(&r);
    Put(s.get(), Range(1, 5, 1));
    fs_.SetWriteBudget(30);
    absl::Status st = s->Write(std::nullopt, Range(6, 6, 1, 100), std::nullopt);
    if (st.ok()) st = s->Sync();
    EXPECT_EQ(st.code(), absl::StatusCode::kResourceExhausted);
  }
  // No crash: the partial record is still in the file.
  fs_.SetWriteBudget(-1);
  OpenOk(&r);
  EXPECT_EQ(Indexes(r), Seq(1, 5));
}

TEST_F(StorageTest, IoErrorOnSync_StopsWrites) {
  raft::RestoredState r;
  {
    auto s = OpenOk(&r);
    Put(s.get(), Range(1, 3, 1));
    fs_.FailSyncs(true);
    ASSERT_TRUE(s->Write(std::nullopt, Range(4, 4, 1), std::nullopt).ok());
    absl::Status st = s->Sync();
    EXPECT_EQ(st.code(), absl::StatusCode::kInternal);
    EXPECT_NE(st.message().find("Input/output error"), absl::string_view::npos);
    fs_.FailSyncs(false);
    EXPECT_EQ(s->Write(std::nullopt, Range(5, 5, 1), std::nullopt).code(),
              absl::StatusCode::kFailedPrecondition);
  }
  fs_.Crash();
  OpenOk(&r);
  EXPECT_EQ(Indexes(r), Seq(1, 3));
}

TEST_F(StorageTest, IoErrorOnWrite_StopsWrites) {
  raft::RestoredState r;
  auto s = OpenOk(&r);
  fs_.FailWrites(true);
  absl::Status st = s->Write(std::nullopt, Range(1, 1, 1), std::nullopt);
  if (st.ok()) st = s->Sync();
  EXPECT_EQ(st.code(), absl::StatusCode::kInternal);
  fs_.FailWrites(false);
  EXPECT_EQ(s->Write(std::nullopt, Range(1, 1, 1), std::nullopt).code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_FALSE(s->error().ok());
}

TEST_F(StorageTest, GroupCommitWriter_PersistsInOrderOffTheCaller) {
  raft::RestoredState r;
  auto s = OpenOk(&r);
  std::vector<uint64_t> done;
  absl::Mutex mu;
  {
    GroupCommitWriter writer(s.get());
    for (uint64_t i = 1; i <= 200; ++i) {
      GroupCommitWriter::Request req;
      req.entries = Range(i, i, 1);
      req.hard_state = HS(1, 1, i);
      req.done = [&, i](absl::Status st) {
        EXPECT_TRUE(st.ok()) << st;
        absl::MutexLock lock(&mu);
        done.push_back(i);
      };
      ASSERT_TRUE(writer.Submit(std::move(req)).ok());
    }
    // The destructor finishes what is queued.
    EXPECT_LE(writer.syncs(), 200u);
  }
  ASSERT_EQ(done.size(), 200u);
  EXPECT_TRUE(std::is_sorted(done.begin(), done.end()));
  s.reset();
  fs_.Crash();
  OpenOk(&r);
  EXPECT_EQ(Indexes(r), Seq(1, 200));
  EXPECT_EQ(r.hard_state.commit(), 200u);
}

TEST_F(StorageTest, GroupCommitWriter_TaskRunsAfterEarlierWritesAreDurable) {
  raft::RestoredState r;
  auto s = OpenOk(&r);
  std::vector<std::string> order;
  uint64_t seen_last = 0;
  absl::Mutex mu;
  {
    GroupCommitWriter writer(s.get());
    auto write = [&](uint64_t i) {
      GroupCommitWriter::Request req;
      req.entries = Range(i, i, 1);
      req.done = [&, i](absl::Status st) {
        EXPECT_TRUE(st.ok()) << st;
        absl::MutexLock lock(&mu);
        order.push_back(absl::StrCat("w", i));
      };
      ASSERT_TRUE(writer.Submit(std::move(req)).ok());
    };
    for (uint64_t i = 1; i <= 10; ++i) write(i);
    GroupCommitWriter::Request task;
    task.task = [&](Storage* st) {
      seen_last = st->last_index();
      return absl::InternalError("task failed");
    };
    task.done = [&](absl::Status st) {
      EXPECT_EQ(st.code(), absl::StatusCode::kInternal);
      absl::MutexLock lock(&mu);
      order.push_back("task");
    };
    ASSERT_TRUE(writer.Submit(std::move(task)).ok());
    for (uint64_t i = 11; i <= 20; ++i) write(i);
  }
  // Everything before the task was written and synced (its callbacks ran,
  // which happens after the sync) before it ran, and nothing after it; its
  // failure is its own.
  EXPECT_EQ(seen_last, 10u);
  ASSERT_EQ(order.size(), 21u);
  EXPECT_EQ(order[10], "task");
  EXPECT_EQ(order[9], "w10");
  EXPECT_EQ(order[11], "w11");
  s.reset();
  fs_.Crash();
  OpenOk(&r);
  EXPECT_EQ(Indexes(r), Seq(1, 20));
}

TEST_F(StorageTest, GroupCommitWriter_FullQueueIsResourceExhausted) {
  raft::RestoredState r;
  auto s = OpenOk(&r);
  absl::Notification in_callback;
  absl::Notification release;
  GroupCommitWriter writer(s.get(), /*max_queued=*/1);
  auto request = [](uint64_t i, std::function<void(absl::Status)> done) {
    GroupCommitWriter::Request req;
    req.entries = Range(i, i, 1);
    req.done = std::move(done);
    return req;
  };
  // The first request's callback holds the writer thread.
  ASSERT_TRUE(writer
                  .Submit(request(1,
                                  [&](absl::Status) {
                                    in_callback.Notify();
                                    release.WaitForNotification();
                                  }))
                  .ok());
  in_callback.WaitForNotification();
  EXPECT_TRUE(writer.Submit(request(2, nullptr)).ok());
  EXPECT_EQ(writer.Submit(request(3, nullptr)).code(),
            absl::StatusCode::kResourceExhausted);
  release.Notify();
}

// The real file system, in a temporary directory.
class PosixStorageTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/quorate-storage-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string dir_;
};

TEST_F(PosixStorageTest, RoundTripLockAndPreallocation) {
  StorageOptions o;
  o.dir = dir_ + "/data";
  o.segment_bytes = 1 << 20;
  raft::RestoredState r;
  {
    auto s = Storage::Open(o, &r);
    ASSERT_TRUE(s.ok()) << s.status();
    auto again = Storage::Open(o, &r);
    EXPECT_EQ(again.status().code(), absl::StatusCode::kFailedPrecondition);
    ASSERT_TRUE(
        (*s)->Write(std::nullopt, Range(1, 50, 1, 100), HS(1, 1, 40)).ok());
    ASSERT_TRUE((*s)->Sync().ok());
    raft::SnapshotMetadata md;
    md.set_index(30);
    md.set_term(1);
    ASSERT_TRUE((*s)->SaveSnapshot(md, "snap").ok());
  }
  EXPECT_EQ(std::filesystem::file_size(
                o.dir + "/0000000000000001-0000000000000001.wal"),
            1u << 20);
  auto s = Storage::Open(o, &r);
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(r.snapshot.index(), 30u);
  EXPECT_EQ(Indexes(r), Seq(31, 50));
  EXPECT_EQ(r.hard_state.commit(), 40u);
}

TEST_F(PosixStorageTest, UnusableDirectoryIsAClearError) {
  StorageOptions o;
  o.dir = dir_ + "/no/such/parent";
  raft::RestoredState r;
  auto s = Storage::Open(o, &r);
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.status().message().find(o.dir), absl::string_view::npos)
      << s.status();
}

}  // namespace
}  // namespace quorate::storage
