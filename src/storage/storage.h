// storage/storage.h: a member's durable state: the write-ahead log, the hard
// state and snapshots, in one data directory.
//
//   raft::RestoredState restored;
//   QUORATE_ASSIGN_OR_RETURN(auto storage,
//                            Storage::Open(options, &restored));
//   ... raft::Raft::Create(config, std::move(restored), now) ...
//   // For each Ready, off the node loop (GroupCommitWriter does this):
//   QUORATE_RETURN_IF_ERROR(storage->Write(rd.snapshot, rd.entries,
//                                          rd.hard_state));
//   QUORATE_RETURN_IF_ERROR(storage->Sync());   // one fdatasync per batch
//
// On disk (`dir`):
//   LOCK                              flock()ed while a process has it open
//   SALT                              the directory's secret (4 bytes + CRC)
//   <seq:16 hex>-<first index:16 hex>.wal   log segments, preallocated
//   snap-<index:16 hex>-<term:16 hex>.snap  snapshots
//   recycled-<seq:16 hex>.wal.tmp     compacted segments kept for reuse
// Every record is framed as [u32 length][u8 type][u32 CRC32C of salt, type
// and payload][payload], little-endian; the payload is a storage.proto or
// raft.proto message. A segment's salt is its sequence number XOR the
// directory's random secret (the file SALT, written once when the
// directory is created); snapshots use 0. Distinct sequence numbers give
// distinct salts, and the same bytes under distinct salts always give
// distinct checksums (CRCs are linear): a recycled segment's older records
// never parse as its own. Clients never learn the secret, so data they
// write cannot be crafted to look like a record of a future segment. A
// segment starts with a SegmentHeader and the hard state current when it was
// created, so whole segments can be removed; the header also says where the
// previous segment ends, which recovery checks. Entries, hard state and
// truncations are records of the log, so one fdatasync makes a whole Ready
// durable atomically.
//
// Recovery validates every record, and fsyncs every file it read and the
// directory: a previous process may have died with writes only in the OS's
// cache, and the consensus core treats what it recovers as durable. A bad
// record at the end of the last
// segment (a write torn by a crash) is cut off and reported through
// Options::log; a bad record anywhere else, or a missing segment, fails
// Open() with DATA_LOSS naming the file and offset. Nothing is ever dropped
// silently. In a recycled segment the older segment's bytes follow the last
// record: a bad record with nothing valid after it ends the log there; one
// with valid records after it is DATA_LOSS, since without zeroed holes a
// torn write cannot be told from damage (only a power loss during an
// unsynced write can leave that; a killed process cannot).
//
// After any write or sync error (disk full: RESOURCE_EXHAUSTED; I/O error:
// INTERNAL), the Storage refuses every further write with
// FAILED_PRECONDITION: what reached the disk after the last successful
// Sync() may be partial, and only reopening (recovery) sorts it out.
//
// Not thread-safe: one thread (the writer) uses it at a time.
#ifndef QUORATE_STORAGE_STORAGE_H_
#define QUORATE_STORAGE_STORAGE_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "raft/raft.h"
#include "storage/file.h"
#include "wire/raft.pb.h"
#include "wire/storage.pb.h"

namespace quorate::storage {

struct StorageOptions {
  std::string dir;
  // Not owned. PosixFileSystem() unless a test injects another.
  FileSystem* fs = nullptr;
  // Size of each log segment, preallocated when it is created.
  uint64_t segment_bytes = 64 << 20;
  // How many snapshots to keep (the newest ones); at least 1.
  int keep_snapshots = 2;
  // Written into every segment and snapshot; a directory of another
  // cluster is refused.
  std::string cluster_id;
  // Receives notable events (a torn tail cut off, a bad snapshot skipped).
  std::function<void(const std::string&)> log;
  // Prepare the next segment (create, zero-fill, sync) on a background
  // thread, so that starting a segment costs the writer only a rename.
  // Needs a thread-safe FileSystem; tests with an in-memory one turn it
  // off.
  bool prepare_segments_ahead = true;
  // Reuse the files of compacted segments for new ones: writing over
  // allocated blocks is cheaper than allocating and zero-filling new ones.
  bool recycle_segments = true;
};

class SegmentPreparer;

// Numbers about what recovery found, for logs and tests.
struct RecoveryInfo {
  uint64_t segments = 0;
  uint64_t records = 0;
  uint64_t bytes = 0;
  bool truncated_torn_tail = false;
};

// A snapshot file read on its own, as `quoratectl snapshot status` reads
// one: its header and where its data starts, once the header's frame
// checksum, the data's size and the data's CRC32C hold. DATA_LOSS says
// which did not.
struct SnapshotFile {
  SnapshotHeader header;
  size_t data_offset = 0;
};
absl::StatusOr<SnapshotFile> ReadSnapshotFile(absl::string_view contents);
// The header a snapshot file starts with, `data` following it: what a
// member saves, and what `quoratectl snapshot save` writes.
std::string SnapshotFileHeader(absl::string_view cluster_id,
                               const raft::SnapshotMetadata& metadata,
                               absl::string_view data);

class Storage {
 public:
  // Opens (creating if needed) and recovers the data directory. Fills
  // `restored` with what the consensus core needs at start.
  static absl::StatusOr<std::unique_ptr<Storage>> Open(
      const StorageOptions& options, raft::RestoredState* restored,
      RecoveryInfo* info = nullptr);

  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;

  // Writes what a Ready asks to persist, in order: a snapshot received from
  // the leader (which replaces the whole log), entries (which replace the
  // log from their first index), the hard state. Durable only after Sync().
  absl::Status Write(const std::optional<raft::Snapshot>& snapshot,
                     const std::vector<raft::EntryPtr>& entries,
                     const std::optional<raft::HardState>& hard_state);
  // One fdatasync for everything written since the last Sync().
  absl::Status Sync();
  // Hands buffered records to the file system without waiting for them to
  // be durable (Sync() does this first anyway).
  absl::Status Flush();

  // Saves a snapshot the state machine took (temporary file, fsync,
  // rename, fsync of the directory) and removes snapshots beyond
  // keep_snapshots. Then Compact(metadata.index()) may drop the log below.
  absl::Status SaveSnapshot(const raft::SnapshotMetadata& metadata,
                            const std::string& data);
  // Removes whole segments whose entries are all at or below `index`,
  // which must be covered by a saved snapshot.
  absl::Status Compact(uint64_t index);

  // The election timeout the member last ran under (the TIMING file), in
  // nanoseconds; 0 if none was recorded. The node keeps its start-up lease
  // at least this long (raft::Config::startup_lease_ns).
  absl::StatusOr<int64_t> RecordedElectionTimeout();
  // Records it durably (temporary file, fsync, rename, fsync of the
  // directory).
  absl::Status RecordElectionTimeout(int64_t ns);
  // The term in which --force_new_cluster made this member a cluster of its
  // own (the FORCED file), 0 if it never did; and recording it, durably.
  absl::StatusOr<uint64_t> ForcedTerm();
  absl::Status RecordForcedTerm(uint64_t term);

  // The first error that stopped this storage; OK while it works.
  const absl::Status& error() const { return error_; }
  uint64_t last_index() const { return last_index_; }
  uint64_t segment_count() const { return segments_.size(); }
  // Bytes of records in the last segment (where the next record goes).
  uint64_t tail_offset() const { return active_offset_; }

 private:
  struct Segment {
    uint64_t seq;
    uint64_t first_index;
    std::string path;
  };

  explicit Storage(const StorageOptions& options);
  absl::Status Recover(raft::RestoredState* restored, RecoveryInfo* info);
  absl::Status RecoverSegment(const Segment& seg, bool last,
                              raft::RestoredState* restored,
                              RecoveryInfo* info);
  absl::Status LoadSnapshot(raft::RestoredState* restored);
  // Reads the directory's secret (SALT), creating it in a new directory.
  absl::Status LoadSecret();
  // Replaces the small file `name` in the directory with `data`, durably.
  absl::Status WriteSmallFile(const std::string& name, const std::string& data);
  // A small file holding one uint64 and its checksum (TIMING, FORCED).
  absl::StatusOr<std::optional<uint64_t>> ReadU64File(
      const std::string& name, absl::string_view damaged);
  absl::Status WriteU64File(const std::string& name, uint64_t v);
  // The checksum salt of segment `seq`'s records.
  uint32_t SegmentSalt(uint64_t seq) const;
  // Starts a new segment whose next entry is `first_index`.
  // `follows_snapshot`: the segment is started after a snapshot that
  // replaced the log (SegmentHeader.follows_snapshot).
  absl::Status StartSegment(uint64_t first_index, bool follows_snapshot);
  // Frames `msg` into the pending buffer (written by Flush()).
  absl::Status AppendRecord(int type, const google::protobuf::MessageLite& msg);
  absl::Status SaveSnapshotFile(const raft::SnapshotMetadata& metadata,
                                const std::string& data);
  absl::Status RemoveSegmentsBefore(size_t keep_from);
  // Records the first error and returns it.
  absl::Status Fail(absl::Status status);
  absl::Status CheckUsable() const;

  StorageOptions options_;
  FileSystem* fs_;
  std::unique_ptr<DirLock> lock_;
  std::unique_ptr<SegmentPreparer> preparer_;
  std::vector<Segment> segments_;
  std::map<uint64_t, uint64_t> segments_end_;  // recovery: seq -> end offset
  std::unique_ptr<WritableFile> active_;       // the last segment
  uint64_t active_offset_ = 0;                 // where its next record goes
  uint64_t flushed_offset_ = 0;                // end of what was written to it
  uint32_t active_salt_ = 0;                   // its records' checksum salt
  uint32_t secret_ = 0;                        // this directory's (SALT)
  std::vector<std::string> recycled_;          // compacted files to reuse
  std::string pending_;                        // framed records not yet written
  bool active_dirty_ = false;                  // written but not synced
  uint64_t last_index_ = 0;
  uint64_t snapshot_index_ = 0;
  std::string snapshot_path_;  // the snapshot recovery loaded, if any
  raft::HardState hard_state_;
  absl::Status error_;
};

}  // namespace quorate::storage

#endif  // QUORATE_STORAGE_STORAGE_H_
