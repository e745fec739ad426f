// Storage: opening a data directory and recovering what it holds.
#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <random>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "raft/validate.h"
#include "storage/crc32c.h"
#include "storage/record.h"
#include "storage/segment_preparer.h"
#include "storage/storage.h"
#include "util/status_macros.h"
#include "wire/storage.pb.h"

namespace quorate::storage {

using internal::GetU32;
using internal::HasHole;
using internal::NextValidRecord;
using internal::Parse;
using internal::ParseName;
using internal::ParseRecord;
using internal::PutU32;
using internal::Record;

absl::StatusOr<std::unique_ptr<Storage>> Storage::Open(
    const StorageOptions& options, raft::RestoredState* restored,
    RecoveryInfo* info) {
  if (options.dir.empty()) {
    return absl::InvalidArgumentError("no data directory given");
  }
  if (options.keep_snapshots < 1) {
    return absl::InvalidArgumentError("keep_snapshots must be at least 1");
  }
  if (options.segment_bytes < 4096) {
    return absl::InvalidArgumentError("segment_bytes must be at least 4096");
  }
  std::unique_ptr<Storage> s(new Storage(options));
  QUORATE_RETURN_IF_ERROR(s->fs_->CreateDir(options.dir));
  QUORATE_ASSIGN_OR_RETURN(s->lock_,
                           s->fs_->Lock(JoinPath(options.dir, "LOCK")));
  // Leftovers of snapshot writes and segment preparation a crash
  // interrupted; removed before the preparer starts making new ones.
  QUORATE_ASSIGN_OR_RETURN(std::vector<std::string> names,
                           s->fs_->ListDir(options.dir));
  for (const std::string& name : names) {
    if (name.size() > 4 && name.substr(name.size() - 4) == ".tmp") {
      QUORATE_RETURN_IF_ERROR(s->fs_->Remove(JoinPath(options.dir, name)));
    }
  }
  if (options.prepare_segments_ahead) {
    s->preparer_ = std::make_unique<SegmentPreparer>(s->fs_, options.dir,
                                                     options.segment_bytes);
  }
  QUORATE_RETURN_IF_ERROR(s->LoadSecret());
  RecoveryInfo local;
  *restored = raft::RestoredState{};
  QUORATE_RETURN_IF_ERROR(s->Recover(restored, info ? info : &local));
  return s;
}

absl::Status Storage::LoadSecret() {
  const std::string path = JoinPath(options_.dir, "SALT");
  QUORATE_ASSIGN_OR_RETURN(std::vector<std::string> names,
                           fs_->ListDir(options_.dir));
  bool exists = false, segments = false;
  for (const std::string& name : names) {
    exists |= name == "SALT";
    segments |= name.size() > 4 && name.substr(name.size() - 4) == ".wal";
  }
  if (exists) {
    QUORATE_ASSIGN_OR_RETURN(std::string data, fs_->ReadFile(path));
    if (data.size() != 8 || GetU32(data.data() + 4) != Crc32c(data.data(), 4)) {
      return absl::DataLossError(absl::StrCat(
          path, " is damaged: the log segments cannot be checked without it"));
    }
    secret_ = GetU32(data.data());
    return absl::OkStatus();
  }
  if (segments) {
    return absl::DataLossError(absl::StrCat(
        path, " is missing: the log segments cannot be checked without it"));
  }
  // A new directory: a random secret, durable before any segment.
  std::random_device rd;
  secret_ = static_cast<uint32_t>(rd());
  std::string data;
  PutU32(&data, secret_);
  PutU32(&data, Crc32c(data.data(), 4));
  return WriteSmallFile("SALT", data);
}

absl::Status Storage::WriteSmallFile(const std::string& name,
                                     const std::string& data) {
  const std::string path = JoinPath(options_.dir, name);
  const std::string tmp = path + ".tmp";
  QUORATE_ASSIGN_OR_RETURN(auto file, fs_->OpenWritable(tmp, true, 0));
  QUORATE_RETURN_IF_ERROR(file->WriteAt(0, data));
  QUORATE_RETURN_IF_ERROR(file->Sync());
  QUORATE_RETURN_IF_ERROR(fs_->Rename(tmp, path));
  return fs_->SyncDir(options_.dir);
}

// TIMING and FORCED: a uint64 (8 bytes, little-endian as PutU32 writes
// them, low word first) and a CRC-32C of those 8 bytes. nullopt when the
// file does not exist; DATA_LOSS, saying `damaged`, when it does not check.
absl::StatusOr<std::optional<uint64_t>> Storage::ReadU64File(
    const std::string& name, absl::string_view damaged) {
  QUORATE_ASSIGN_OR_RETURN(std::vector<std::string> names,
                           fs_->ListDir(options_.dir));
  if (std::find(names.begin(), names.end(), name) == names.end()) {
    return std::nullopt;
  }
  const std::string path = JoinPath(options_.dir, name);
  QUORATE_ASSIGN_OR_RETURN(std::string data, fs_->ReadFile(path));
  if (data.size() != 12 || GetU32(data.data() + 8) != Crc32c(data.data(), 8)) {
    return absl::DataLossError(absl::StrCat(path, " is damaged: ", damaged));
  }
  return uint64_t{GetU32(data.data())} | uint64_t{GetU32(data.data() + 4)}
                                             << 32;
}

absl::Status Storage::WriteU64File(const std::string& name, uint64_t v) {
  std::string data;
  PutU32(&data, static_cast<uint32_t>(v));
  PutU32(&data, static_cast<uint32_t>(v >> 32));
  PutU32(&data, Crc32c(data.data(), 8));
  return WriteSmallFile(name, data);
}

absl::StatusOr<int64_t> Storage::RecordedElectionTimeout() {
  QUORATE_ASSIGN_OR_RETURN(
      std::optional<uint64_t> v,
      ReadU64File("TIMING",
                  "it records the election timeout this member last ran "
                  "under; if it ran under no longer one than now, remove the "
                  "file"));
  return static_cast<int64_t>(v.value_or(0));
}

absl::Status Storage::RecordElectionTimeout(int64_t ns) {
  return WriteU64File("TIMING", static_cast<uint64_t>(ns));
}

absl::StatusOr<uint64_t> Storage::ForcedTerm() {
  QUORATE_ASSIGN_OR_RETURN(
      std::optional<uint64_t> v,
      ReadU64File("FORCED",
                  "it records that --force_new_cluster made this member a "
                  "cluster of its own; remove it only to force again"));
  return v.value_or(0);
}

absl::Status Storage::RecordForcedTerm(uint64_t term) {
  return WriteU64File("FORCED", term);
}

absl::StatusOr<SnapshotFile> ReadSnapshotFile(absl::string_view contents) {
  std::string why;
  Record rec;
  SnapshotFile file;
  if (ParseRecord(contents, 0, /*salt=*/0, &rec, &why) != Parse::kRecord ||
      rec.type != RECORD_TYPE_SNAPSHOT_HEADER) {
    if (why.empty()) why = "no snapshot header";
  } else if (!file.header.ParseFromArray(
                 rec.payload.data(), static_cast<int>(rec.payload.size()))) {
    why = "unreadable snapshot header";
  } else if (contents.size() - rec.next != file.header.data_size()) {
    why = absl::StrCat("data is ", contents.size() - rec.next,
                       " bytes, header says ", file.header.data_size());
  } else if (Crc32c(contents.data() + rec.next, file.header.data_size()) !=
             file.header.data_crc32c()) {
    why = "data checksum mismatch";
  }
  if (!why.empty()) return absl::DataLossError(why);
  file.data_offset = rec.next;
  return file;
}

absl::Status Storage::LoadSnapshot(raft::RestoredState* restored) {
  QUORATE_ASSIGN_OR_RETURN(std::vector<std::string> names,
                           fs_->ListDir(options_.dir));
  std::vector<std::pair<uint64_t, std::string>> snaps;
  for (const std::string& name : names) {
    uint64_t index, term;
    if (ParseName(name, "snap-", ".snap", &index, &term)) {
      snaps.emplace_back(index, name);
    }
  }
  std::sort(snaps.rbegin(), snaps.rend());
  for (const auto& [index, name] : snaps) {
    const std::string path = JoinPath(options_.dir, name);
    auto contents = fs_->ReadFile(path);
    std::string why;
    absl::StatusOr<SnapshotFile> file = absl::UnknownError("unread");
    if (!contents.ok()) {
      why = std::string(contents.status().message());
    } else if (file = ReadSnapshotFile(*contents); !file.ok()) {
      why = std::string(file.status().message());
    } else if (file->header.metadata().index() != index) {
      why = "file name and header disagree on the index";
    } else if (index > raft::kMaxIndex ||
               file->header.metadata().term() > raft::kMaxTerm ||
               (index > 0 && file->header.metadata().term() == 0)) {
      // A valid checksum over an index or term no writer produces (a bug,
      // or a hand-edited file): the log would continue past it into
      // indices the core refuses. (The core checks the rest of the
      // metadata when it starts.)
      why = absl::StrCat("index ", index, " or term ",
                         file->header.metadata().term(), " is out of range");

    } else if (!options_.cluster_id.empty() &&
               !file->header.cluster_id().empty() &&
               file->header.cluster_id() != options_.cluster_id) {
      return absl::FailedPreconditionError(absl::StrCat(
          "snapshot ", path, " belongs to cluster '", file->header.cluster_id(),
          "', not '", options_.cluster_id, "'"));
    }
    if (!why.empty()) {
      if (options_.log) {
        options_.log(
            absl::StrCat("skipping invalid snapshot ", path, ": ", why));
      }
      continue;
    }
    restored->snapshot = file->header.metadata();
    restored->snapshot_data = std::make_shared<const std::string>(
        contents->substr(file->data_offset));
    restored->applied = file->header.metadata().index();
    snapshot_index_ = file->header.metadata().index();
    snapshot_path_ = path;
    return absl::OkStatus();
  }
  return absl::OkStatus();
}

absl::Status Storage::Recover(raft::RestoredState* restored,
                              RecoveryInfo* info) {
  QUORATE_ASSIGN_OR_RETURN(std::vector<std::string> names,
                           fs_->ListDir(options_.dir));
  for (const std::string& name : names) {
    uint64_t seq, first;
    if (ParseName(name, "", ".wal", &seq, &first)) {
      segments_.push_back(Segment{seq, first, JoinPath(options_.dir, name)});
    }
  }
  std::sort(segments_.begin(), segments_.end(),
            [](const Segment& a, const Segment& b) { return a.seq < b.seq; });
  for (size_t i = 1; i < segments_.size(); ++i) {
    if (segments_[i].seq != segments_[i - 1].seq + 1) {
      return absl::DataLossError(absl::StrCat(
          "log segment ", segments_[i - 1].seq + 1, " is missing between ",
          segments_[i - 1].path, " and ", segments_[i].path));
    }
  }
  QUORATE_RETURN_IF_ERROR(LoadSnapshot(restored));

  for (size_t i = 0; i < segments_.size(); ++i) {
    QUORATE_RETURN_IF_ERROR(RecoverSegment(
        segments_[i], i + 1 == segments_.size(), restored, info));
  }
  info->segments = segments_.size();

  // Keep what the snapshot does not cover; the rest must follow it without
  // a gap.
  const uint64_t snap = restored->snapshot.index();
  std::vector<raft::Entry>& entries = restored->entries;
  // A snapshot that does not match the log's entry at its index replaced
  // the log (Raft §7): a crash left the old suffix behind; drop it.
  for (const raft::Entry& e : entries) {
    if (e.index() == snap && e.term() != restored->snapshot.term()) {
      entries.clear();
      break;
    }
  }
  auto covered =
      std::find_if(entries.begin(), entries.end(),
                   [&](const raft::Entry& e) { return e.index() > snap; });
  entries.erase(entries.begin(), covered);
  if (!entries.empty() && entries.front().index() != snap + 1) {
    return absl::DataLossError(absl::StrCat(
        "the log in ", options_.dir, " starts at entry ",
        entries.front().index(), " but the newest valid snapshot ends at ",
        snap, ": entries are missing"));
  }
  // Terms never go back along the log, nor below the snapshot's; indices
  // stay far from wrapping. Records with valid checksums that break this
  // were written wrong (a bug, or a hand-edited file): refuse them rather
  // than hand the core a log it would have to trust.
  uint64_t term = restored->snapshot.term();
  for (const raft::Entry& e : entries) {
    if (e.term() < term || e.term() > raft::kMaxTerm ||
        e.index() > raft::kMaxIndex) {
      return absl::DataLossError(absl::StrCat(
          "the log in ", options_.dir, " has entry ", e.index(), " of term ",
          e.term(), " after term ", term,
          ": terms go back (or out of range); the log is damaged"));
    }
    term = e.term();
  }
  last_index_ = entries.empty() ? snap : entries.back().index();
  if (!segments_.empty() && segments_.back().first_index > last_index_ + 1) {
    return absl::DataLossError(absl::StrCat(
        "the log in ", options_.dir, " resumes at entry ",
        segments_.back().first_index, " but the newest valid snapshot ends at ",
        snap, ": entries are missing"));
  }
  restored->hard_state = hard_state_;
  if (hard_state_.commit() > last_index_) {
    return absl::DataLossError(absl::StrCat(
        "the hard state in ", options_.dir, " commits entry ",
        hard_state_.commit(), " but the log ends at ", last_index_));
  }
  // A previous process may have died with writes still only in the OS's
  // cache. The consensus core takes everything recovered as durable (its
  // votes and acknowledgements depend on it), so make it so.
  for (const Segment& seg : segments_) {
    QUORATE_ASSIGN_OR_RETURN(auto file,
                             fs_->OpenWritable(seg.path, /*create=*/false, 0));
    QUORATE_RETURN_IF_ERROR(file->Sync());
  }
  if (!snapshot_path_.empty()) {
    QUORATE_ASSIGN_OR_RETURN(
        auto file, fs_->OpenWritable(snapshot_path_, /*create=*/false, 0));
    QUORATE_RETURN_IF_ERROR(file->Sync());
  }
  QUORATE_RETURN_IF_ERROR(fs_->SyncDir(options_.dir));
  if (segments_.empty()) {
    return StartSegment(last_index_ + 1, /*follows_snapshot=*/snap > 0);
  }
  if (entries.empty() && snap > 0 && segments_.back().first_index <= snap) {
    // The snapshot covers the whole log and may reach past the last
    // segment's last entry (a crash after a leader's snapshot was saved
    // and before the segment after it was started): entry snap + 1 cannot
    // follow what that segment holds. Start the one after the snapshot,
    // as Write() does for a leader's snapshot.
    return StartSegment(snap + 1, /*follows_snapshot=*/true);
  }
  // Appends continue in the last segment, after its last valid record.
  active_offset_ = segments_end_[segments_.back().seq];
  flushed_offset_ = active_offset_;
  active_salt_ = SegmentSalt(segments_.back().seq);
  QUORATE_ASSIGN_OR_RETURN(
      active_, fs_->OpenWritable(segments_.back().path, /*create=*/false, 0));
  return absl::OkStatus();
}

absl::Status Storage::RecoverSegment(const Segment& seg, bool last,
                                     raft::RestoredState* restored,
                                     RecoveryInfo* info) {
  QUORATE_ASSIGN_OR_RETURN(std::string data, fs_->ReadFile(seg.path));
  info->bytes += data.size();
  std::vector<raft::Entry>& entries = restored->entries;
  size_t offset = 0;
  bool header_seen = false;
  bool recycled = false;
  const uint32_t salt = SegmentSalt(seg.seq);
  auto corrupt = [&](const std::string& why) {
    return absl::DataLossError(absl::StrCat("corrupt log record in ", seg.path,
                                            " at offset ", offset, ": ", why));
  };
  while (true) {
    Record rec;
    std::string why;
    const Parse p = ParseRecord(data, offset, salt, &rec, &why);
    if (p == Parse::kEnd && !header_seen) {
      // Created but never given its header (a crash, or a full disk while
      // preallocating): it never held anything acknowledged.
      if (!last) return corrupt("the segment has no header");
      if (options_.log) {
        options_.log(
            absl::StrCat("removing segment without header ", seg.path));
      }
      QUORATE_RETURN_IF_ERROR(fs_->Remove(seg.path));
      QUORATE_RETURN_IF_ERROR(fs_->SyncDir(options_.dir));
      segments_.pop_back();
      return absl::OkStatus();
    }
    if (p == Parse::kEnd) break;
    if (p == Parse::kBad) {
      const std::optional<size_t> next = NextValidRecord(data, offset, salt);
      if (recycled && !next.has_value()) {
        // What follows is the older segment's data (or a torn final
        // write over it; in a segment before the last, the next segment's
        // header checks where this one ends).
        if (last && options_.log) {
          options_.log(absl::StrCat("log ends at offset ", offset,
                                    " of recycled segment ", seg.path));
        }
        break;
      }
      // A torn final write: in the last segment, with nothing valid after
      // it, or only after a hole. (The header is synced before any record
      // is appended, so records after a bad header mean corruption.) A
      // recycled segment has no zeroed holes to tell a torn write from a
      // damaged record, so a bad record with valid ones after it is
      // corruption there.
      const bool torn =
          last && (!next.has_value() ||
                   (header_seen && !recycled && HasHole(data, offset, *next)));
      if (!torn) return corrupt(why);
      // A write torn by a crash: nothing after it was ever synced. Zero
      // it out so that new records start clean.
      if (options_.log) {
        options_.log(absl::StrCat("cutting off torn final record in ", seg.path,
                                  " at offset ", offset, " (", why, ")"));
      }
      size_t end = data.size();
      while (end > offset && data[end - 1] == 0) --end;
      QUORATE_ASSIGN_OR_RETURN(
          auto file, fs_->OpenWritable(seg.path, /*create=*/false, 0));
      QUORATE_RETURN_IF_ERROR(
          file->WriteAt(offset, std::string(end - offset, '\0')));
      QUORATE_RETURN_IF_ERROR(file->Sync());
      info->truncated_torn_tail = true;
      if (!header_seen) {
        // Torn while the segment was being created: it never held
        // anything acknowledged.
        QUORATE_RETURN_IF_ERROR(fs_->Remove(seg.path));
        QUORATE_RETURN_IF_ERROR(fs_->SyncDir(options_.dir));
        segments_.pop_back();
        return absl::OkStatus();
      }
      break;
    }
    ++info->records;
    const int payload_size = static_cast<int>(rec.payload.size());
    if (!header_seen) {
      SegmentHeader header;
      if (rec.type != RECORD_TYPE_SEGMENT_HEADER ||
          !header.ParseFromArray(rec.payload.data(), payload_size)) {
        return corrupt("the segment does not start with its header");
      }
      if (header.sequence() != seg.seq ||
          header.first_index() != seg.first_index) {
        return corrupt("the header does not match the file name");
      }
      if (!options_.cluster_id.empty() && !header.cluster_id().empty() &&
          header.cluster_id() != options_.cluster_id) {
        return absl::FailedPreconditionError(absl::StrCat(
            "data directory ", options_.dir, " belongs to cluster '",
            header.cluster_id(), "', not '", options_.cluster_id, "'"));
      }
      if (auto prev = segments_end_.find(seg.seq - 1);
          prev != segments_end_.end() && header.previous_end() != 0 &&
          prev->second != header.previous_end()) {
        return absl::DataLossError(absl::StrCat(
            "log segment ", seg.seq - 1, " ends at offset ", prev->second,
            " but ", seg.path, " says it ends at ", header.previous_end(),
            ": records are missing or damaged"));
      }
      recycled = header.recycled();
      // A segment replaces the log from its first index on; a later first
      // index than the log's end, or a segment started after a snapshot,
      // means a snapshot replaced everything before it (even where its
      // first index meets the old log: that entry may be of another term).
      while (!entries.empty() && entries.back().index() >= seg.first_index) {
        entries.pop_back();
      }
      if (header.follows_snapshot() ||
          (!entries.empty() && entries.back().index() + 1 < seg.first_index)) {
        entries.clear();
      }
      header_seen = true;
    } else if (rec.type == RECORD_TYPE_ENTRY) {
      raft::Entry e;
      if (!e.ParseFromArray(rec.payload.data(), payload_size)) {
        return corrupt("unreadable entry");
      }
      if (!entries.empty() && e.index() != entries.back().index() + 1) {
        return corrupt(absl::StrCat("entry ", e.index(), " follows entry ",
                                    entries.back().index()));
      }
      if (entries.empty() && e.index() < seg.first_index) {
        return corrupt(absl::StrCat("entry ", e.index(),
                                    " before the segment's first index ",
                                    seg.first_index));
      }
      entries.push_back(std::move(e));
    } else if (rec.type == RECORD_TYPE_HARD_STATE) {
      if (!hard_state_.ParseFromArray(rec.payload.data(), payload_size)) {
        return corrupt("unreadable hard state");
      }
    } else if (rec.type == RECORD_TYPE_TRUNCATE) {
      Truncate t;
      if (!t.ParseFromArray(rec.payload.data(), payload_size)) {
        return corrupt("unreadable truncation");
      }
      while (!entries.empty() && entries.back().index() >= t.first_index()) {
        entries.pop_back();
      }
    } else {
      return corrupt(absl::StrCat("unknown record type ", rec.type));
    }
    offset = rec.next;
  }
  segments_end_[seg.seq] = offset;
  return absl::OkStatus();
}

}  // namespace quorate::storage
