// Crash, bit-flip and model tests of the write-ahead log. Recovery must
// give exactly a prefix of what was written that holds every batch whose
// sync returned, and must never accept altered data.
#include <gtest/gtest.h>

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "raft/random.h"
#include "storage/mem_fs.h"
#include "storage/storage.h"
#include "util/sanitizers.h"

namespace quorate::storage {
namespace {

using testing::MemFileSystem;

// Every byte in the plain build; every 7th under the (slow) sanitizers.
#ifdef QUORATE_SANITIZER_BUILD
constexpr uint64_t kStride = 7;
#else
constexpr uint64_t kStride = 1;
#endif
// The crash at every offset opens the storage (and its threads) twice per
// offset: every 29th under TSan, which has only those threads to watch
// (50 s at 7, the longest test of the TSan suite).
constexpr uint64_t kCrashStride =
    quorate::testing::kThreadSanitizer ? 29 : kStride;
const char kSegment[] = "/data/0000000000000001-0000000000000001.wal";

StorageOptions Options(MemFileSystem* fs, uint64_t segment_bytes = 1 << 20) {
  return testing::MemStorageOptions(fs, segment_bytes);
}

raft::EntryPtr Entry(uint64_t index, uint64_t term, raft::SeededRandom* rng) {
  return testing::RandomEntry(index, term, rng, 1, 40);
}

// A known sequence of batches, each synced; remembers where each sync
// left the end of the log.
struct Written {
  std::vector<raft::Entry> entries;
  std::vector<size_t> entries_after_batch;   // entries durable after batch i
  std::vector<uint64_t> offset_after_batch;  // tail offset after batch i
  uint64_t header_end = 0;
};

Written WriteBatches(MemFileSystem* fs, int batches, uint64_t seed) {
  raft::SeededRandom rng(seed);
  Written w;
  raft::RestoredState r;
  auto s = Storage::Open(Options(fs), &r);
  EXPECT_TRUE(s.ok()) << s.status();
  w.header_end = (*s)->tail_offset();
  uint64_t next = 1;
  for (int b = 0; b < batches; ++b) {
    std::vector<raft::EntryPtr> batch;
    const uint64_t n = 1 + rng.Uniform(3);
    for (uint64_t i = 0; i < n; ++i) batch.push_back(Entry(next++, 1, &rng));
    raft::HardState hs;
    hs.set_term(1);
    hs.set_commit(next - 1);
    EXPECT_TRUE((*s)->Write(std::nullopt, batch, hs).ok());
    EXPECT_TRUE((*s)->Sync().ok());
    for (const auto& e : batch) w.entries.push_back(*e);
    w.entries_after_batch.push_back(w.entries.size());
    w.offset_after_batch.push_back((*s)->tail_offset());
  }
  return w;
}

// Checks that `r` is a prefix of `w.entries` with at least `min` entries.
void ExpectPrefix(const Written& w, const raft::RestoredState& r, size_t min,
                  const std::string& where) {
  ASSERT_LE(r.entries.size(), w.entries.size()) << where;
  ASSERT_GE(r.entries.size(), min) << where;
  for (size_t i = 0; i < r.entries.size(); ++i) {
    ASSERT_EQ(r.entries[i].SerializeAsString(),
              w.entries[i].SerializeAsString())
        << where << ": entry " << i + 1 << " differs";
  }
  // The hard state never commits past what was recovered.
  EXPECT_LE(r.hard_state.commit(), r.entries.size()) << where;
}

TEST(CrashTest, CrashAtEveryByteOffsetOfTheLastSegment) {
  MemFileSystem fs;
  const Written w = WriteBatches(&fs, 40, 1);
  const std::string full = fs.File(kSegment)->data;
  const uint64_t end = w.offset_after_batch.back();
  for (uint64_t k = w.header_end; k <= end; k += kCrashStride) {
    // A copy of the directory with the segment cut at byte k: the write
    // stopped there. Both a short file and a preallocated one (zeros after
    // k) must recover.
    for (bool zero_filled : {false, true}) {
      auto copy = fs.Clone();
      std::string& data = copy->File(kSegment)->data;
      data = full.substr(0, k);
      if (zero_filled) data.resize(full.size(), '\0');
      size_t synced = 0;
      for (size_t b = 0; b < w.offset_after_batch.size(); ++b) {
        if (w.offset_after_batch[b] <= k) synced = w.entries_after_batch[b];
      }
      raft::RestoredState r;
      auto s = Storage::Open(Options(copy.get()), &r);
      ASSERT_TRUE(s.ok()) << "offset " << k << ": " << s.status();
      ExpectPrefix(w, r, synced, "offset " + std::to_string(k));
      // And it keeps working after the cut.
      std::vector<raft::EntryPtr> more;
      raft::SeededRandom rng(k);
      more.push_back(Entry(r.entries.size() + 1, 2, &rng));
      ASSERT_TRUE((*s)->Write(std::nullopt, more, std::nullopt).ok());
      ASSERT_TRUE((*s)->Sync().ok());
    }
  }
}

TEST(CrashTest, CrashAtEverySyncBoundary) {
  // Crash (lose everything not synced) just before and just after each
  // batch's sync.
  for (int crash_at = 0; crash_at < 20; ++crash_at) {
    for (bool before_sync : {true, false}) {
      MemFileSystem fs;
      raft::SeededRandom rng(crash_at);
      std::vector<raft::Entry> synced;
      {
        raft::RestoredState r;
        auto s = Storage::Open(Options(&fs, 4096), &r);
        ASSERT_TRUE(s.ok());
        uint64_t next = 1;
        for (int b = 0; b <= crash_at; ++b) {
          std::vector<raft::EntryPtr> batch;
          for (int i = 0; i < 5; ++i) batch.push_back(Entry(next++, 1, &rng));
          ASSERT_TRUE((*s)->Write(std::nullopt, batch, std::nullopt).ok());
          if (b == crash_at && before_sync) break;
          ASSERT_TRUE((*s)->Sync().ok());
          for (const auto& e : batch) synced.push_back(*e);
        }
      }
      fs.Crash();
      raft::RestoredState r;
      auto s = Storage::Open(Options(&fs, 4096), &r);
      ASSERT_TRUE(s.ok()) << s.status();
      ASSERT_EQ(r.entries.size(), synced.size())
          << "crash at batch " << crash_at
          << (before_sync ? " before" : " after") << " sync";
      for (size_t i = 0; i < synced.size(); ++i) {
        EXPECT_EQ(r.entries[i].data(), synced[i].data());
      }
    }
  }
}

TEST(CrashTest, EveryFlippedByteInAnyRecordIsDetected) {
  MemFileSystem fs;
  const Written w = WriteBatches(&fs, 12, 2);
  const std::string full = fs.File(kSegment)->data;
  const uint64_t end = w.offset_after_batch.back();
  const uint64_t last_record_start =
      w.offset_after_batch.size() >= 2
          ? w.offset_after_batch[w.offset_after_batch.size() - 2]
          : w.header_end;
  int errors = 0;
  int cut = 0;
  for (uint64_t k = 0; k < end; k += kStride) {
    auto copy = fs.Clone();
    copy->File(kSegment)->data[k] ^= 0x10;
    raft::RestoredState r;
    RecoveryInfo info;
    auto s = Storage::Open(Options(copy.get()), &r, &info);
    if (!s.ok()) {
      EXPECT_EQ(s.status().code(), absl::StatusCode::kDataLoss) << s.status();
      ++errors;
      continue;
    }
    // Accepted only as a torn final write: the flip is in the last batch's
    // records, which are cut off; nothing altered comes back.
    ASSERT_TRUE(info.truncated_torn_tail) << "flip at " << k << " unnoticed";
    ASSERT_GE(k, last_record_start) << "flip at " << k << " went unnoticed";
    ExpectPrefix(w, r, 0, "flip at " + std::to_string(k));
    ++cut;
  }
  EXPECT_GT(errors, 0);
  EXPECT_GT(cut, 0);
}

// Random appends, conflicts, snapshots, compactions, crashes and restarts
// against a model. After a crash the log must be one of the states the
// writes since the last sync passed through, record by record (the storage
// may have made more durable than asked, never less).
TEST(StoragePropertyTest, MatchesModelAcrossRestarts) {
  using Log = std::map<uint64_t, raft::Entry>;
  for (uint64_t seed = 1; seed <= 20; ++seed) {
    raft::SeededRandom rng(seed);
    MemFileSystem fs;
    Log written;
    std::vector<Log> candidates = {written};  // states since the last sync
    uint64_t snap = 0;
    uint64_t term = 1;
    raft::RestoredState r;
    auto s = *Storage::Open(Options(&fs, 4096), &r);
    auto synced = [&] { candidates = {written}; };
    // What happened, for the failure message.
    std::string history;
    auto note = [&](const std::string& what) { history += what + "\n"; };
    for (int step = 0; step < 200; ++step) {
      const std::string where =
          "seed " + std::to_string(seed) + " step " + std::to_string(step);
      const uint64_t last = written.empty() ? snap : written.rbegin()->first;
      const uint64_t op = rng.Uniform(100);
      if (op < 60) {
        // Append, sometimes replacing a suffix (a conflict).
        uint64_t from = last + 1;
        if (op < 15 && last > snap + 1) {
          from = last - rng.Uniform(last - snap - 1);
        }
        ++term;
        std::vector<raft::EntryPtr> batch;
        for (uint64_t i = 0; i < 1 + rng.Uniform(6); ++i) {
          batch.push_back(Entry(from + i, term, &rng));
        }
        if (from <= last) {
          written.erase(written.lower_bound(from), written.end());
          candidates.push_back(written);
        }
        for (const auto& e : batch) {
          written[e->index()] = *e;
          candidates.push_back(written);
        }
        ASSERT_TRUE(s->Write(std::nullopt, batch, std::nullopt).ok()) << where;
        note("append " + std::to_string(from) + ".." +
             std::to_string(from + batch.size() - 1));
        if (rng.Uniform(3) != 0) {
          ASSERT_TRUE(s->Sync().ok());
          synced();
          note("sync");
        }
      } else if (op < 70 && last > snap) {
        // A snapshot of the state machine, then compaction.
        ASSERT_TRUE(s->Sync().ok());
        synced();
        const uint64_t at = snap + 1 + rng.Uniform(last - snap);
        raft::SnapshotMetadata md;
        md.set_index(at);
        md.set_term(written[at].term());
        ASSERT_TRUE(s->SaveSnapshot(md, "s" + std::to_string(at)).ok());
        ASSERT_TRUE(s->Compact(at).ok());
        snap = at;
        note("snapshot+compact at " + std::to_string(at));
      } else if (op < 75) {
        // A snapshot from the leader replaces the log.
        ASSERT_TRUE(s->Sync().ok());
        raft::Snapshot leader;
        leader.metadata.set_index(last + rng.Uniform(5));
        leader.metadata.set_term(++term);
        leader.data = std::make_shared<const std::string>("leader");
        ASSERT_TRUE(s->Write(leader, {}, std::nullopt).ok());
        ASSERT_TRUE(s->Sync().ok());
        snap = leader.metadata.index();
        written.clear();
        synced();
        note("leader snapshot at " + std::to_string(snap));
      } else {
        // Restart, after a crash or a clean stop.
        const bool crash = rng.Uniform(2) == 0;
        note(crash ? "crash" : "restart");
        s.reset();
        if (crash) fs.Crash();
        auto reopened = Storage::Open(Options(&fs, 4096), &r);
        ASSERT_TRUE(reopened.ok()) << where << ": " << reopened.status();
        s = *std::move(reopened);
        EXPECT_EQ(r.snapshot.index(), snap) << where;
        Log got;
        for (const raft::Entry& e : r.entries) got[e.index()] = e;
        auto above_snapshot = [&](const Log& log) {
          Log out;
          for (const auto& [i, e] : log) {
            if (i > snap) out[i] = e;
          }
          return out;
        };
        auto same = [](const Log& a, const Log& b) {
          if (a.size() != b.size()) return false;
          for (const auto& [i, e] : a) {
            auto it = b.find(i);
            if (it == b.end() ||
                it->second.SerializeAsString() != e.SerializeAsString()) {
              return false;
            }
          }
          return true;
        };
        bool found = false;
        // Without a crash too: writes not synced may not even have reached
        // the files (they are buffered until Sync()).
        for (const Log& c : candidates) {
          if (same(above_snapshot(c), got)) found = true;
        }
        ASSERT_TRUE(found) << where << ": recovered " << got.size()
                           << " entries ("
                           << (got.empty() ? 0 : got.begin()->first) << ".."
                           << (got.empty() ? 0 : got.rbegin()->first)
                           << "), not a state the writes passed through; "
                           << "written " << written.size() << "\n"
                           << history;
        // After a crash what was recovered is what is on disk. After a
        // clean stop, unsynced writes are still in the files but not yet
        // durable: a later crash may still lose them.
        written = got;
        if (crash) synced();
      }
    }
  }
}

}  // namespace
}  // namespace quorate::storage
