#include "storage_input.h"

#include <algorithm>
#include <memory>
#include <utility>

#include "absl/strings/str_format.h"
#include "storage/crc32c.h"
#include "storage/record.h"
#include "util/check.h"
#include "wire/storage.pb.h"

namespace quorate::fuzz {

using storage::internal::FrameCrc;
using storage::internal::Parse;
using storage::internal::ParseRecord;
using storage::internal::PutU32;
using storage::internal::Record;

namespace {

void AppendFramed(std::string* out, uint8_t type, absl::string_view payload,
                  uint32_t salt) {
  PutU32(out, static_cast<uint32_t>(payload.size()));
  out->push_back(static_cast<char>(type));
  PutU32(out, FrameCrc(salt, static_cast<char>(type), payload.data(),
                       payload.size()));
  out->append(payload.data(), payload.size());
}

}  // namespace

std::string SaltFile(uint32_t secret) {
  std::string data;
  PutU32(&data, secret);
  PutU32(&data, storage::Crc32c(data.data(), 4));
  return data;
}

uint32_t FuzzSegmentSalt(uint64_t seq) {
  return static_cast<uint32_t>(seq) ^ kFuzzSecret;
}

std::string FrameRecords(absl::string_view body, uint32_t salt) {
  std::string out;
  Reader in(reinterpret_cast<const uint8_t*>(body.data()), body.size());
  while (!in.empty()) {
    const size_t start = body.size() - in.remaining();
    const uint8_t type = in.U8();
    const uint16_t len = in.U16();
    if (len > in.remaining()) {
      out.append(body.data() + start, body.size() - start);
      break;
    }
    AppendFramed(&out, type, in.Bytes(len), salt);
  }
  return out;
}

std::string UnframeRecords(absl::string_view file, uint32_t salt) {
  Writer out;
  size_t offset = 0;
  Record rec;
  std::string why;
  while (ParseRecord(file, offset, salt, &rec, &why) == Parse::kRecord &&
         rec.payload.size() <= 0xffff) {
    out.U8(static_cast<uint8_t>(rec.type))
        .U16(static_cast<uint16_t>(rec.payload.size()))
        .Bytes(rec.payload);
    offset = rec.next;
  }
  return out.str();
}

std::string FrameSnapshot(absl::string_view body, bool fix_data,
                          uint64_t* index, uint64_t* term) {
  Reader in(reinterpret_cast<const uint8_t*>(body.data()), body.size());
  std::string header_bytes = in.Bytes(in.U16());
  const std::string data = in.Rest();
  *index = 1;
  *term = 1;
  storage::SnapshotHeader header;
  if (header.ParseFromString(header_bytes)) {
    *index = header.metadata().index();
    *term = header.metadata().term();
    if (fix_data) {
      header.set_data_size(data.size());
      header.set_data_crc32c(storage::Crc32c(data.data(), data.size()));
      header_bytes = header.SerializeAsString();
    }
  }
  std::string out;
  AppendFramed(&out, storage::RECORD_TYPE_SNAPSHOT_HEADER, header_bytes,
               /*salt=*/0);
  return out + data;
}

bool SnapshotFileName(absl::string_view file, uint64_t* index, uint64_t* term) {
  Record rec;
  std::string why;
  storage::SnapshotHeader header;
  if (ParseRecord(file, 0, /*salt=*/0, &rec, &why) != Parse::kRecord ||
      !header.ParseFromArray(rec.payload.data(),
                             static_cast<int>(rec.payload.size()))) {
    return false;
  }
  *index = header.metadata().index();
  *term = header.metadata().term();
  return true;
}

void PutFile(storage::testing::MemFileSystem* fs, const std::string& name,
             absl::string_view data) {
  const std::string path = storage::JoinPath(kDataDir, name);
  QUORATE_CHECK(fs->CreateDir(kDataDir).ok());
  QUORATE_CHECK(fs->Remove(path).ok());
  auto file = fs->OpenWritable(path, /*create=*/true, 0);
  QUORATE_CHECK(file.ok()) << file.status();
  QUORATE_CHECK((*file)->WriteAt(0, data).ok());
  QUORATE_CHECK((*file)->Sync().ok());
  QUORATE_CHECK(fs->SyncDir(kDataDir).ok());
}

void PutFiles(Reader& in, storage::testing::MemFileSystem* fs) {
  PutFile(fs, "SALT", SaltFile(kFuzzSecret));
  for (int files = 0; files < 16 && !in.empty(); ++files) {
    const uint8_t kind = in.U8();
    uint64_t a = in.U64();
    uint64_t b = in.U64();
    std::string data = in.Bytes(in.U32());
    const bool framed = (kind & kFileFramed) != 0;
    switch (kind & kFileKindMask) {
      case kFileSegment:
        if (framed) data = FrameRecords(data, FuzzSegmentSalt(a));
        PutFile(fs, storage::internal::SegmentName(a, b), data);
        break;
      case kFileSnapshot:
        if (framed) {
          // The header names the file, so that name and header agree.
          data = FrameSnapshot(data, /*fix_data=*/true, &a, &b);
        }
        PutFile(fs, storage::internal::SnapshotName(a, b), data);
        break;
      case kFileSalt:
        PutFile(fs, "SALT", data);
        break;
      default:
        PutFile(fs, absl::StrFormat("%016x.tmp", a), data);
        break;
    }
  }
}

void CheckRestored(const raft::RestoredState& restored) {
  const uint64_t snap = restored.snapshot.index();
  uint64_t expected = snap + 1;
  uint64_t term = restored.snapshot.term();
  for (const raft::Entry& e : restored.entries) {
    QUORATE_CHECK_EQ(e.index(), expected) << "recovered log not contiguous";
    QUORATE_CHECK_GE(e.term(), term)
        << "recovered log's term goes back at entry " << e.index();
    ++expected;
    term = e.term();
  }
  const uint64_t last = expected - 1;
  QUORATE_CHECK_LE(restored.hard_state.commit(), last)
      << "recovered commit beyond the log";
  QUORATE_CHECK_LE(restored.applied, last)
      << "recovered applied beyond the log";
  if (snap > 0) QUORATE_CHECK(restored.snapshot_data != nullptr);
}

void StartCore(const raft::RestoredState& restored) {
  raft::SeededRandom random(1);
  raft::Config config;
  config.id = 1;
  config.random = &random;
  auto r = raft::Raft::Create(config, restored, /*now_ns=*/0);
  if (!r.ok()) return;
  // Far enough for an election (a non-voter's deadline is "never").
  (*r)->Tick(std::min<int64_t>((*r)->NextDeadline(), 10'000'000'000));
  for (int i = 0; i < 16 && (*r)->HasReady(); ++i) {
    (void)(*r)->GetReady();
    (*r)->Advance();
  }
}

}  // namespace quorate::fuzz
