// Recycled segments: a compacted segment's file is reused for a new one, so
// the older segment's records stay behind the new ones. They must never be
// read as the new segment's, a crash at any byte must still recover a
// prefix with every synced batch, and damage must still be detected.
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <string>
#include <vector>

#include "raft/random.h"
#include "storage/mem_fs.h"
#include "storage/storage.h"

namespace quorate::storage {
namespace {

using testing::MemFileSystem;

#ifdef QUORATE_SANITIZER_BUILD
constexpr uint64_t kStride = 7;
#else
constexpr uint64_t kStride = 1;
#endif

constexpr uint64_t kSegmentBytes = 4096;

StorageOptions Options(MemFileSystem* fs, std::vector<std::string>* logs) {
  StorageOptions o = testing::MemStorageOptions(fs, kSegmentBytes);
  if (logs != nullptr) {
    o.log = [logs](const std::string& s) { logs->push_back(s); };
  }
  return o;
}

raft::EntryPtr Entry(uint64_t index, uint64_t term, raft::SeededRandom* rng) {
  return testing::RandomEntry(index, term, rng, 20, 200);
}

std::vector<std::string> PathsWith(const MemFileSystem& fs,
                                   const std::string& part) {
  std::vector<std::string> out;
  for (const std::string& p : fs.Paths()) {
    if (p.find(part) != std::string::npos) out.push_back(p);
  }
  return out;
}

// Fills several segments, snapshots and compacts them (leaving recycled
// files), then writes batches that roll into a recycled file. Remembers
// that file's old contents and where each synced batch ended.
struct Scenario {
  MemFileSystem fs;
  std::vector<raft::Entry> entries;  // all written, in order
  std::string segment;               // the recycled last segment
  std::string old_contents;          // its bytes before reuse
  std::vector<uint64_t> offset_after_batch;
  std::vector<size_t> entries_after_batch;
  uint64_t snapshot = 0;

  void Run(int batches_in_recycled) {
    raft::SeededRandom rng(7);
    raft::RestoredState r;
    auto s = *Storage::Open(Options(&fs, nullptr), &r);
    uint64_t next = 1;
    auto put = [&] {
      std::vector<raft::EntryPtr> batch;
      const uint64_t n = 1 + rng.Uniform(3);
      for (uint64_t i = 0; i < n; ++i) batch.push_back(Entry(next++, 1, &rng));
      raft::HardState hs;
      hs.set_term(1);
      hs.set_commit(next - 1);
      ASSERT_TRUE(s->Write(std::nullopt, batch, hs).ok());
      ASSERT_TRUE(s->Sync().ok());
      for (const auto& e : batch) entries.push_back(*e);
    };
    while (s->segment_count() < 5) put();
    snapshot = s->last_index();
    raft::SnapshotMetadata md;
    md.set_index(snapshot);
    md.set_term(1);
    ASSERT_TRUE(s->SaveSnapshot(md, "state").ok());
    ASSERT_TRUE(s->Compact(snapshot).ok());
    std::map<std::string, std::string> recycled;
    for (const std::string& p : PathsWith(fs, "recycled-")) {
      recycled[p] = fs.File(p)->data;
    }
    ASSERT_EQ(recycled.size(), 2u);
    // Roll into the next segment, which reuses a recycled file.
    const uint64_t segments = s->segment_count();
    while (s->segment_count() == segments) put();
    for (const auto& [path, data] : recycled) {
      if (fs.File(path) == nullptr) old_contents = data;
    }
    ASSERT_FALSE(old_contents.empty()) << "no recycled file was reused";
    ASSERT_EQ(PathsWith(fs, "recycled-").size(), 1u);
    for (const std::string& p : fs.Paths()) {
      if (p.size() > 4 && p.substr(p.size() - 4) == ".wal") {
        segment = std::max(segment, p);  // the newest: names sort by number
      }
    }
    for (int b = 0; b < batches_in_recycled; ++b) {
      put();
      offset_after_batch.push_back(s->tail_offset());
      entries_after_batch.push_back(entries.size());
    }
    ASSERT_EQ(fs.File(segment)->data.size(), kSegmentBytes);
  }

  // Entries the storage must hold after the snapshot, given what synced.
  size_t SyncedAt(uint64_t cut) const {
    size_t synced = 0;
    for (size_t b = 0; b < offset_after_batch.size(); ++b) {
      if (offset_after_batch[b] <= cut) synced = entries_after_batch[b];
    }
    return synced;
  }
};

void ExpectPrefix(const Scenario& sc, const raft::RestoredState& r, size_t min,
                  const std::string& where) {
  ASSERT_EQ(r.snapshot.index(), sc.snapshot) << where;
  ASSERT_LE(r.entries.size() + sc.snapshot, sc.entries.size()) << where;
  ASSERT_GE(r.entries.size() + sc.snapshot, min) << where;
  for (size_t i = 0; i < r.entries.size(); ++i) {
    ASSERT_EQ(r.entries[i].SerializeAsString(),
              sc.entries[sc.snapshot + i].SerializeAsString())
        << where << ": entry " << sc.snapshot + i + 1 << " differs";
  }
}

TEST(RecycleTest, CompactedFilesAreReusedAndOldRecordsNeverRead) {
  Scenario sc;
  sc.Run(3);
  // The old segment's bytes are still there behind the new records.
  const std::string& data = sc.fs.File(sc.segment)->data;
  const uint64_t end = sc.offset_after_batch.back();
  EXPECT_EQ(data.substr(end), sc.old_contents.substr(end));
  EXPECT_NE(sc.old_contents.find_first_not_of('\0', end), std::string::npos)
      << "the reused file should hold older records after the new ones";
  for (bool crash : {false, true}) {
    auto copy = sc.fs.Clone();
    if (crash) copy->Crash();
    std::vector<std::string> logs;
    raft::RestoredState r;
    RecoveryInfo info;
    auto s = Storage::Open(Options(copy.get(), &logs), &r, &info);
    ASSERT_TRUE(s.ok()) << s.status();
    EXPECT_FALSE(info.truncated_torn_tail);
    ExpectPrefix(sc, r, sc.entries.size(), crash ? "crash" : "restart");
    EXPECT_EQ(r.entries.size() + sc.snapshot, sc.entries.size());
    ASSERT_FALSE(logs.empty());
    EXPECT_NE(logs.back().find("log ends at offset"), std::string::npos)
        << logs.back();
  }
}

TEST(RecycleTest, CrashAtEveryByteOffsetOfARecycledSegment) {
  Scenario sc;
  sc.Run(6);
  const std::string full = sc.fs.File(sc.segment)->data;
  const uint64_t end = sc.offset_after_batch.back();
  for (uint64_t k = 0; k <= end; k += kStride) {
    // The write stopped at byte k: the older segment's bytes follow.
    auto copy = sc.fs.Clone();
    copy->File(sc.segment)->data =
        full.substr(0, k) + sc.old_contents.substr(k);
    raft::RestoredState r;
    auto s = Storage::Open(Options(copy.get(), nullptr), &r);
    ASSERT_TRUE(s.ok()) << "offset " << k << ": " << s.status();
    const std::string where = "offset " + std::to_string(k);
    ExpectPrefix(sc, r, sc.SyncedAt(k), where);
    // It keeps working: a new entry after what was recovered survives a
    // crash.
    raft::SeededRandom rng(k);
    const uint64_t next = sc.snapshot + r.entries.size() + 1;
    ASSERT_TRUE(
        (*s)->Write(std::nullopt, {Entry(next, 2, &rng)}, std::nullopt).ok());
    ASSERT_TRUE((*s)->Sync().ok());
    s->reset();
    copy->Crash();
    raft::RestoredState again;
    ASSERT_TRUE(Storage::Open(Options(copy.get(), nullptr), &again).ok())
        << where;
    ASSERT_EQ(again.entries.size(), r.entries.size() + 1) << where;
    EXPECT_EQ(again.entries.back().term(), 2u) << where;
  }
}

TEST(RecycleTest, EveryFlippedByteOfARecycledSegmentIsDetected) {
  Scenario sc;
  sc.Run(6);
  const uint64_t end = sc.offset_after_batch.back();
  const uint64_t last_batch_start =
      sc.offset_after_batch[sc.offset_after_batch.size() - 2];
  int errors = 0;
  int cut = 0;
  for (uint64_t k = 0; k < end; k += kStride) {
    auto copy = sc.fs.Clone();
    copy->File(sc.segment)->data[k] ^= 0x10;
    raft::RestoredState r;
    auto s = Storage::Open(Options(copy.get(), nullptr), &r);
    if (!s.ok()) {
      EXPECT_EQ(s.status().code(), absl::StatusCode::kDataLoss) << s.status();
      ++errors;
      continue;
    }
    // Accepted only when the log then ends before the flipped byte: a
    // damaged final batch looks like a torn write. Nothing altered returns.
    const std::string where = "flip at " + std::to_string(k);
    ASSERT_GE(k, last_batch_start) << where << " went unnoticed";
    ExpectPrefix(sc, r, 0, where);
    // The damaged record is gone: entries of the last batch, or its hard
    // state (which commits all of them).
    EXPECT_TRUE(r.entries.size() + sc.snapshot < sc.entries.size() ||
                r.hard_state.commit() < sc.entries.size())
        << where;
    ++cut;
  }
  EXPECT_GT(errors, 0);
  EXPECT_GT(cut, 0);
}

TEST(RecycleTest, DamagedEndOfAnEarlierRecycledSegmentIsDataLoss) {
  // Two segments in recycled files: the first's last record is damaged.
  // Its older bytes would otherwise end it quietly; the second segment's
  // header says where it must end.
  Scenario sc;
  sc.Run(1);
  raft::RestoredState r;
  uint64_t first_end = 0;
  std::string first;
  {
    auto s = *Storage::Open(Options(&sc.fs, nullptr), &r);
    raft::SeededRandom rng(3);
    uint64_t next = sc.entries.size() + 1;
    const uint64_t segments = s->segment_count();
    while (s->segment_count() == segments) {
      first_end = s->tail_offset();
      ASSERT_TRUE(
          s->Write(std::nullopt, {Entry(next++, 1, &rng)}, std::nullopt).ok());
      ASSERT_TRUE(s->Sync().ok());
    }
    first = sc.segment;
  }
  ASSERT_EQ(PathsWith(sc.fs, "recycled-").size(), 0u);
  std::string& data = sc.fs.File(first)->data;
  data[first_end - 3] ^= 0x01;
  auto s = Storage::Open(Options(&sc.fs, nullptr), &r);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_NE(s.status().message().find("ends at offset"), std::string::npos)
      << s.status();
}

}  // namespace
}  // namespace quorate::storage
