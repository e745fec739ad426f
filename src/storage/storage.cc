// Storage: opening and writing (recovery is in recovery.cc, the framing in
// record.cc).
#include "storage/storage.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <random>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "storage/crc32c.h"
#include "storage/record.h"
#include "storage/segment_preparer.h"
#include "util/status_macros.h"
#include "wire/storage.pb.h"

namespace quorate::storage {

using internal::AppendFrame;
using internal::kFlushBytes;
using internal::kFormatVersion;
using internal::kFrameHeaderBytes;
using internal::kMaxRecordBytes;
using internal::ParseName;
using internal::SegmentName;
using internal::SnapshotName;

namespace {
// Compacted segments kept for reuse (at most this many).
constexpr size_t kKeepRecycled = 2;
}  // namespace

Storage::Storage(const StorageOptions& options)
    : options_(options),
      fs_(options.fs != nullptr ? options.fs : PosixFileSystem()) {}

Storage::~Storage() = default;

absl::Status Storage::Fail(absl::Status status) {
  if (error_.ok()) error_ = status;
  return status;
}

absl::Status Storage::CheckUsable() const {
  if (error_.ok()) return absl::OkStatus();
  return absl::FailedPreconditionError(
      absl::StrCat("storage in ", options_.dir,
                   " stopped after an earlier error: ", error_.message()));
}

uint32_t Storage::SegmentSalt(uint64_t seq) const {
  return static_cast<uint32_t>(seq) ^ secret_;
}

absl::Status Storage::StartSegment(uint64_t first_index,
                                   bool follows_snapshot) {
  // The previous segment's tail must be durable before a later segment can
  // be: recovery accepts a torn tail only in the last segment.
  if (active_ != nullptr) {
    QUORATE_RETURN_IF_ERROR(Flush());
    if (active_dirty_) {
      if (absl::Status s = active_->Sync(); !s.ok()) return Fail(s);
      active_dirty_ = false;
    }
  }
  const uint64_t previous_end = active_ != nullptr ? active_offset_ : 0;
  const uint64_t seq = segments_.empty() ? 1 : segments_.back().seq + 1;
  const std::string path =
      JoinPath(options_.dir, SegmentName(seq, first_index));
  absl::StatusOr<std::unique_ptr<WritableFile>> file;
  const bool recycle = !recycled_.empty();
  if (recycle) {
    // A compacted segment's file: its blocks are allocated and written, so
    // writing over them costs no allocation and no zero-filling. Its old
    // records stay behind ours but fail our salted checksums. A crash
    // before our header is durable leaves a segment without a valid
    // header, which recovery removes.
    if (absl::Status s = fs_->Rename(recycled_.back(), path); !s.ok()) {
      return Fail(s);
    }
    recycled_.pop_back();
    file = fs_->OpenWritable(path, /*create=*/false, 0);
  } else if (preparer_ != nullptr) {
    // A zero-filled, synced file is waiting under a temporary name.
    absl::StatusOr<SegmentPreparer::Prepared> prepared = preparer_->Take();
    if (!prepared.ok()) return Fail(prepared.status());
    if (absl::Status s = fs_->Rename(prepared->path, path); !s.ok()) {
      return Fail(s);
    }
    file = std::move(prepared->file);
  } else {
    file = fs_->OpenWritable(path, /*create=*/true, options_.segment_bytes);
  }
  if (!file.ok()) return Fail(file.status());
  SegmentHeader header;
  header.set_format_version(kFormatVersion);
  header.set_cluster_id(options_.cluster_id);
  header.set_sequence(seq);
  header.set_first_index(first_index);
  header.set_recycled(recycle);
  header.set_previous_end(previous_end);
  header.set_follows_snapshot(follows_snapshot);
  const uint32_t salt = SegmentSalt(seq);
  // Each segment carries the hard state, so older segments can go.
  std::string head;
  internal::AppendFrame(&head, RECORD_TYPE_SEGMENT_HEADER, header, salt);
  internal::AppendFrame(&head, RECORD_TYPE_HARD_STATE, hard_state_, salt);
  absl::Status s = (*file)->WriteAt(0, head);
  if (s.ok()) s = (*file)->Sync();
  if (s.ok()) s = fs_->SyncDir(options_.dir);
  if (!s.ok()) return Fail(s);
  segments_.push_back(Segment{seq, first_index, path});
  active_ = *std::move(file);
  active_salt_ = salt;
  active_offset_ = head.size();
  flushed_offset_ = active_offset_;
  active_dirty_ = false;
  return absl::OkStatus();
}

absl::Status Storage::AppendRecord(int type,
                                   const google::protobuf::MessageLite& msg) {
  const size_t size = msg.ByteSizeLong();
  if (size > internal::kMaxRecordBytes) {
    return Fail(absl::InvalidArgumentError(
        absl::StrCat("a record of ", size, " bytes exceeds the limit of ",
                     internal::kMaxRecordBytes)));
  }
  const uint64_t header_bytes = kFrameHeaderBytes * 2 + 64;
  if (active_offset_ + kFrameHeaderBytes + size > options_.segment_bytes &&
      active_offset_ > header_bytes) {
    QUORATE_RETURN_IF_ERROR(
        StartSegment(last_index_ + 1, /*follows_snapshot=*/false));
  }
  // Framed in place in the pending buffer: no intermediate copies, and one
  // write per batch rather than one per record.
  internal::AppendFrame(&pending_, type, msg, active_salt_);
  active_offset_ += kFrameHeaderBytes + size;
  if (pending_.size() >= internal::kFlushBytes) return Flush();
  return absl::OkStatus();
}

absl::Status Storage::Flush() {
  QUORATE_RETURN_IF_ERROR(CheckUsable());
  if (pending_.empty()) return absl::OkStatus();
  if (absl::Status s = active_->WriteAt(flushed_offset_, pending_); !s.ok()) {
    return Fail(s);
  }
  flushed_offset_ += pending_.size();
  pending_.clear();
  active_dirty_ = true;
  return absl::OkStatus();
}

absl::Status Storage::Write(const std::optional<raft::Snapshot>& snapshot,
                            const std::vector<raft::EntryPtr>& entries,
                            const std::optional<raft::HardState>& hard_state) {
  QUORATE_RETURN_IF_ERROR(CheckUsable());
  if (snapshot.has_value()) {
    // The leader's snapshot replaces the whole log: save it, start a
    // segment after it, then drop every older segment.
    const raft::SnapshotMetadata& md = snapshot->metadata;
    QUORATE_RETURN_IF_ERROR(SaveSnapshot(md, *snapshot->data));
    QUORATE_RETURN_IF_ERROR(
        StartSegment(md.index() + 1, /*follows_snapshot=*/true));
    last_index_ = md.index();
    QUORATE_RETURN_IF_ERROR(RemoveSegmentsBefore(segments_.size() - 1));
  }
  if (!entries.empty()) {
    const uint64_t first = entries.front()->index();
    if (first > last_index_ + 1 || first <= snapshot_index_) {
      // A caller bug: stop rather than write a log recovery cannot read.
      return Fail(absl::InvalidArgumentError(
          absl::StrCat("entry ", first, " does not follow the log (last entry ",
                       last_index_, ", snapshot ", snapshot_index_, ")")));
    }
    if (first <= last_index_) {
      // A conflict replaces the log from `first`. Below the active
      // segment's start, a new segment starting at `first` says so (so that
      // every segment holds only entries at or above its first index, as
      // Compact() assumes); inside it, a truncation record does.
      last_index_ = first - 1;
      if (first < segments_.back().first_index) {
        QUORATE_RETURN_IF_ERROR(
            StartSegment(first, /*follows_snapshot=*/false));
      } else {
        Truncate t;
        t.set_first_index(first);
        QUORATE_RETURN_IF_ERROR(AppendRecord(RECORD_TYPE_TRUNCATE, t));
      }
    }
    for (const raft::EntryPtr& e : entries) {
      QUORATE_RETURN_IF_ERROR(AppendRecord(RECORD_TYPE_ENTRY, *e));
      last_index_ = e->index();
    }
  }
  if (hard_state.has_value()) {
    QUORATE_RETURN_IF_ERROR(AppendRecord(RECORD_TYPE_HARD_STATE, *hard_state));
    hard_state_ = *hard_state;
  }
  return absl::OkStatus();
}

absl::Status Storage::Sync() {
  QUORATE_RETURN_IF_ERROR(CheckUsable());
  QUORATE_RETURN_IF_ERROR(Flush());
  if (!active_dirty_) return absl::OkStatus();
  if (absl::Status s = active_->Sync(); !s.ok()) return Fail(s);
  active_dirty_ = false;
  return absl::OkStatus();
}

std::string SnapshotFileHeader(absl::string_view cluster_id,
                               const raft::SnapshotMetadata& metadata,
                               absl::string_view data) {
  SnapshotHeader header;
  header.set_format_version(kFormatVersion);
  header.set_cluster_id(std::string(cluster_id));
  *header.mutable_metadata() = metadata;
  header.set_data_size(data.size());
  header.set_data_crc32c(Crc32c(data.data(), data.size()));
  std::string head;
  internal::AppendFrame(&head, RECORD_TYPE_SNAPSHOT_HEADER, header,
                        /*salt=*/0);
  return head;
}

absl::Status Storage::SaveSnapshotFile(const raft::SnapshotMetadata& metadata,
                                       const std::string& data) {
  const std::string name = SnapshotName(metadata.index(), metadata.term());
  const std::string path = JoinPath(options_.dir, name);
  const std::string tmp = path + ".tmp";
  QUORATE_RETURN_IF_ERROR(fs_->Remove(tmp));
  QUORATE_ASSIGN_OR_RETURN(auto file,
                           fs_->OpenWritable(tmp, /*create=*/true, 0));
  const std::string head =
      SnapshotFileHeader(options_.cluster_id, metadata, data);
  QUORATE_RETURN_IF_ERROR(file->WriteAt(0, head));
  QUORATE_RETURN_IF_ERROR(file->WriteAt(head.size(), data));
  QUORATE_RETURN_IF_ERROR(file->Sync());
  QUORATE_RETURN_IF_ERROR(fs_->Rename(tmp, path));
  return fs_->SyncDir(options_.dir);
}

absl::Status Storage::SaveSnapshot(const raft::SnapshotMetadata& metadata,
                                   const std::string& data) {
  QUORATE_RETURN_IF_ERROR(CheckUsable());
  if (absl::Status s = SaveSnapshotFile(metadata, data); !s.ok()) {
    return Fail(s);
  }
  snapshot_index_ = std::max(snapshot_index_, metadata.index());
  // Keep the newest `keep_snapshots`.
  auto names = fs_->ListDir(options_.dir);
  if (!names.ok()) return Fail(names.status());
  std::vector<std::pair<uint64_t, std::string>> snaps;
  for (const std::string& name : *names) {
    uint64_t index, term;
    if (ParseName(name, "snap-", ".snap", &index, &term)) {
      snaps.emplace_back(index, name);
    }
  }
  std::sort(snaps.rbegin(), snaps.rend());
  bool removed = false;
  for (size_t i = static_cast<size_t>(options_.keep_snapshots);
       i < snaps.size(); ++i) {
    if (absl::Status s = fs_->Remove(JoinPath(options_.dir, snaps[i].second));
        !s.ok()) {
      return Fail(s);
    }
    removed = true;
  }
  if (removed) {
    if (absl::Status s = fs_->SyncDir(options_.dir); !s.ok()) return Fail(s);
  }
  return absl::OkStatus();
}

absl::Status Storage::RemoveSegmentsBefore(size_t keep_from) {
  if (keep_from == 0) return absl::OkStatus();
  for (size_t i = 0; i < keep_from; ++i) {
    absl::Status s;
    if (options_.recycle_segments && recycled_.size() < kKeepRecycled) {
      // Kept for reuse under a temporary name (removed at the next start).
      const std::string to =
          JoinPath(options_.dir,
                   absl::StrFormat("recycled-%016x.wal.tmp", segments_[i].seq));
      s = fs_->Rename(segments_[i].path, to);
      if (s.ok()) recycled_.push_back(to);
    } else {
      s = fs_->Remove(segments_[i].path);
    }
    if (!s.ok()) return Fail(s);
  }
  segments_.erase(segments_.begin(),
                  segments_.begin() + static_cast<std::ptrdiff_t>(keep_from));
  if (absl::Status s = fs_->SyncDir(options_.dir); !s.ok()) return Fail(s);
  return absl::OkStatus();
}

absl::Status Storage::Compact(uint64_t index) {
  QUORATE_RETURN_IF_ERROR(CheckUsable());
  if (index > snapshot_index_) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot compact the log to ", index,
                     ": the newest snapshot ends at ", snapshot_index_));
  }
  // Segment i holds only entries below the next segment's first index.
  size_t keep_from = 0;
  while (keep_from + 1 < segments_.size() &&
         segments_[keep_from + 1].first_index <= index + 1) {
    ++keep_from;
  }
  return RemoveSegmentsBefore(keep_from);
}

}  // namespace quorate::storage
