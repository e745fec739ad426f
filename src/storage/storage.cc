#include "storage/storage.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <random>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "storage/crc32c.h"
#include "storage/segment_preparer.h"
#include "util/status_macros.h"
#include "wire/storage.pb.h"

namespace quorate::storage {

namespace {

void PutU32(std::string* out, uint32_t v) {
  for (int i = 0; i < 4; ++i) out->push_back(static_cast<char>(v >> (8 * i)));
}

uint32_t GetU32(const char* p) {
  uint32_t v = 0;
  for (int i = 3; i >= 0; --i) {
    v = (v << 8) | static_cast<uint8_t>(p[i]);
  }
  return v;
}

}  // namespace

namespace internal {

uint32_t FrameCrc(uint32_t salt, char type, const void* payload, size_t n) {
  char prefix[5];
  for (int i = 0; i < 4; ++i) prefix[i] = static_cast<char>(salt >> (8 * i));
  prefix[4] = type;
  return Crc32c(Crc32c(prefix, sizeof prefix), payload, n);
}

void AppendFrame(std::string* out, int type,
                 const google::protobuf::MessageLite& msg, uint32_t salt) {
  const size_t size = msg.ByteSizeLong();
  const size_t at = out->size();
  out->resize(at + kFrameHeaderBytes + size);
  char* frame = out->data() + at;
  auto* payload = reinterpret_cast<uint8_t*>(frame + kFrameHeaderBytes);
  msg.SerializeWithCachedSizesToArray(payload);
  const char t = static_cast<char>(type);
  std::string header;
  PutU32(&header, static_cast<uint32_t>(size));
  header.push_back(t);
  PutU32(&header, FrameCrc(salt, t, payload, size));
  std::copy(header.begin(), header.end(), frame);
}

}  // namespace internal

namespace {

using internal::kFrameHeaderBytes;
using internal::kMaxRecordBytes;

constexpr uint32_t kFormatVersion = 1;

enum class Parse { kRecord, kEnd, kBad };

struct Record {
  int type = 0;
  absl::string_view payload;
  size_t next = 0;
};

bool AllZero(absl::string_view data) {
  return std::all_of(data.begin(), data.end(), [](char c) { return c == 0; });
}

// Reads the record at `offset`. kEnd: only zeros (preallocated space) or
// nothing follows. kBad: a record that is cut short or fails its checksum.
Parse ParseRecord(absl::string_view data, size_t offset, uint32_t salt,
                  Record* rec, std::string* why) {
  const absl::string_view rest = data.substr(offset);
  if (rest.size() < kFrameHeaderBytes) {
    if (AllZero(rest)) return Parse::kEnd;
    *why = "record header cut short";
    return Parse::kBad;
  }
  const uint32_t len = GetU32(rest.data());
  const int type = static_cast<uint8_t>(rest[4]);
  const uint32_t crc = GetU32(rest.data() + 5);
  if (len == 0 && type == 0 && crc == 0 && AllZero(rest)) return Parse::kEnd;
  if (len > kMaxRecordBytes || len > rest.size() - kFrameHeaderBytes) {
    *why = absl::StrCat("record length ", len, " runs past the end");
    return Parse::kBad;
  }
  const uint32_t actual = internal::FrameCrc(
      salt, static_cast<char>(type), rest.data() + kFrameHeaderBytes, len);
  if (actual != crc) {
    *why = absl::StrFormat("checksum mismatch (stored %08x, computed %08x)",
                           crc, actual);
    return Parse::kBad;
  }
  rec->type = type;
  rec->payload = rest.substr(kFrameHeaderBytes, len);
  rec->next = offset + kFrameHeaderBytes + len;
  return Parse::kRecord;
}

// Where the next valid record after `offset` starts, if any: if there is
// one, a bad record at `offset` is corruption or a torn write, not the end.
std::optional<size_t> NextValidRecord(absl::string_view data, size_t offset,
                                      uint32_t salt) {
  for (size_t p = offset + 1; p + kFrameHeaderBytes <= data.size(); ++p) {
    const int type = static_cast<uint8_t>(data[p + 4]);
    if (type == 0 || type > storage::RecordType_MAX) continue;
    Record rec;
    std::string why;
    if (ParseRecord(data, p, salt, &rec, &why) == Parse::kRecord) return p;
  }
  return std::nullopt;
}

// Whether [from, to) shows the mark of a write that never finished: a zero
// record header at `from`, or a whole zero 512-byte sector. Pages of an
// unsynced write reach the disk in any order, so a torn write can leave
// valid records after a hole; a flipped bit in synced data leaves no hole.
bool HasHole(absl::string_view data, size_t from, size_t to) {
  if (AllZero(data.substr(from, std::min(kFrameHeaderBytes, to - from)))) {
    return true;
  }
  constexpr size_t kSector = 512;
  for (size_t c = (from + kSector - 1) / kSector * kSector; c + kSector <= to;
       c += kSector) {
    if (AllZero(data.substr(c, kSector))) return true;
  }
  return false;
}

// Compacted segments kept for reuse (at most this many).
constexpr size_t kKeepRecycled = 2;

std::string SegmentName(uint64_t seq, uint64_t first_index) {
  return absl::StrFormat("%016x-%016x.wal", seq, first_index);
}

std::string SnapshotName(uint64_t index, uint64_t term) {
  return absl::StrFormat("snap-%016x-%016x.snap", index, term);
}

bool ParseHex(absl::string_view s, uint64_t* out) {
  if (s.size() != 16) return false;
  uint64_t v = 0;
  for (char c : s) {
    int d;
    if (c >= '0' && c <= '9') {
      d = c - '0';
    } else if (c >= 'a' && c <= 'f') {
      d = c - 'a' + 10;
    } else {
      return false;
    }
    v = (v << 4) | static_cast<uint64_t>(d);
  }
  *out = v;
  return true;
}

// "<a>-<b><suffix>" with both numbers 16 hex digits.
bool ParseName(absl::string_view name, absl::string_view prefix,
               absl::string_view suffix, uint64_t* a, uint64_t* b) {
  if (name.size() != prefix.size() + 33 + suffix.size()) return false;
  if (name.substr(0, prefix.size()) != prefix) return false;
  if (name.substr(name.size() - suffix.size()) != suffix) return false;
  name.remove_prefix(prefix.size());
  return name[16] == '-' && ParseHex(name.substr(0, 16), a) &&
         ParseHex(name.substr(17, 16), b);
}

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

uint32_t Storage::SegmentSalt(uint64_t seq) const {
  return static_cast<uint32_t>(seq) ^ secret_;
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
  const std::string tmp = path + ".tmp";
  QUORATE_ASSIGN_OR_RETURN(auto file, fs_->OpenWritable(tmp, true, 0));
  QUORATE_RETURN_IF_ERROR(file->WriteAt(0, data));
  QUORATE_RETURN_IF_ERROR(file->Sync());
  QUORATE_RETURN_IF_ERROR(fs_->Rename(tmp, path));
  return fs_->SyncDir(options_.dir);
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
    Record rec;
    SnapshotHeader header;
    if (!contents.ok()) {
      why = std::string(contents.status().message());
    } else if (ParseRecord(*contents, 0, /*salt=*/0, &rec, &why) !=
                   Parse::kRecord ||
               rec.type != RECORD_TYPE_SNAPSHOT_HEADER) {
      if (why.empty()) why = "no snapshot header";
    } else if (!header.ParseFromArray(rec.payload.data(),
                                      static_cast<int>(rec.payload.size()))) {
      why = "unreadable snapshot header";
    } else if (contents->size() - rec.next != header.data_size()) {
      why = absl::StrCat("data is ", contents->size() - rec.next,
                         " bytes, header says ", header.data_size());
    } else if (Crc32c(contents->data() + rec.next, header.data_size()) !=
               header.data_crc32c()) {
      why = "data checksum mismatch";
    } else if (header.metadata().index() != index) {
      why = "file name and header disagree on the index";
    } else if (!options_.cluster_id.empty() && !header.cluster_id().empty() &&
               header.cluster_id() != options_.cluster_id) {
      return absl::FailedPreconditionError(absl::StrCat(
          "snapshot ", path, " belongs to cluster '", header.cluster_id(),
          "', not '", options_.cluster_id, "'"));
    }
    if (!why.empty()) {
      if (options_.log) {
        options_.log(
            absl::StrCat("skipping invalid snapshot ", path, ": ", why));
      }
      continue;
    }
    restored->snapshot = header.metadata();
    restored->snapshot_data =
        std::make_shared<const std::string>(contents->substr(rec.next));
    restored->applied = header.metadata().index();
    snapshot_index_ = header.metadata().index();
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
  if (segments_.empty()) return StartSegment(last_index_ + 1);
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
      // index than the log's end means a snapshot replaced everything
      // before it.
      while (!entries.empty() && entries.back().index() >= seg.first_index) {
        entries.pop_back();
      }
      if (!entries.empty() && entries.back().index() + 1 < seg.first_index) {
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

absl::Status Storage::StartSegment(uint64_t first_index) {
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
    QUORATE_RETURN_IF_ERROR(StartSegment(last_index_ + 1));
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
    QUORATE_RETURN_IF_ERROR(StartSegment(md.index() + 1));
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
        QUORATE_RETURN_IF_ERROR(StartSegment(first));
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

absl::Status Storage::SaveSnapshotFile(const raft::SnapshotMetadata& metadata,
                                       const std::string& data) {
  SnapshotHeader header;
  header.set_format_version(kFormatVersion);
  header.set_cluster_id(options_.cluster_id);
  *header.mutable_metadata() = metadata;
  header.set_data_size(data.size());
  header.set_data_crc32c(Crc32c(data.data(), data.size()));
  const std::string name = SnapshotName(metadata.index(), metadata.term());
  const std::string path = JoinPath(options_.dir, name);
  const std::string tmp = path + ".tmp";
  QUORATE_RETURN_IF_ERROR(fs_->Remove(tmp));
  QUORATE_ASSIGN_OR_RETURN(auto file,
                           fs_->OpenWritable(tmp, /*create=*/true, 0));
  std::string head;
  internal::AppendFrame(&head, RECORD_TYPE_SNAPSHOT_HEADER, header,
                        /*salt=*/0);
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
