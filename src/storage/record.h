// storage/record.h: the storage's on-disk framing and file names, shared by
// recovery (recovery.cc) and writing (storage.cc), and exposed for tests and
// tools. storage.h describes the format.
#ifndef QUORATE_STORAGE_RECORD_H_
#define QUORATE_STORAGE_RECORD_H_

#include <google/protobuf/message_lite.h>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

#include "absl/strings/string_view.h"

namespace quorate::storage::internal {

inline constexpr uint32_t kFormatVersion = 1;
inline constexpr size_t kFrameHeaderBytes = 9;
inline constexpr uint32_t kMaxRecordBytes = 256u << 20;
// Records are written in one pwrite per batch, or whenever this many bytes
// are pending.
inline constexpr size_t kFlushBytes = 4u << 20;

// Little-endian 32-bit integers.
void PutU32(std::string* out, uint32_t v);
uint32_t GetU32(const char* p);

// Appends `msg` framed as a record of `type` to `out`.
void AppendFrame(std::string* out, int type,
                 const google::protobuf::MessageLite& msg, uint32_t salt);
// The checksum of a record: CRC32C of the salt (4 bytes, little-endian),
// the type byte and the payload.
uint32_t FrameCrc(uint32_t salt, char type, const void* payload, size_t n);

enum class Parse { kRecord, kEnd, kBad };

struct Record {
  int type = 0;
  absl::string_view payload;
  size_t next = 0;  // where the record after it starts
};

// Reads the record at `offset`. kEnd: only zeros (preallocated space) or
// nothing follows. kBad: a record that is cut short or fails its checksum;
// `why` says which.
Parse ParseRecord(absl::string_view data, size_t offset, uint32_t salt,
                  Record* rec, std::string* why);

// Where the next valid record after `offset` starts, if any: if there is
// one, a bad record at `offset` is corruption or a torn write, not the end.
std::optional<size_t> NextValidRecord(absl::string_view data, size_t offset,
                                      uint32_t salt);

// Whether [from, to) shows the mark of a write that never finished: a zero
// record header at `from`, or a whole zero 512-byte sector. Pages of an
// unsynced write reach the disk in any order, so a torn write can leave
// valid records after a hole; a flipped bit in synced data leaves no hole.
bool HasHole(absl::string_view data, size_t from, size_t to);

// File names: "<seq:16 hex>-<first index:16 hex>.wal" and
// "snap-<index:16 hex>-<term:16 hex>.snap".
std::string SegmentName(uint64_t seq, uint64_t first_index);
std::string SnapshotName(uint64_t index, uint64_t term);
// "<prefix><a>-<b><suffix>" with both numbers 16 hex digits.
bool ParseName(absl::string_view name, absl::string_view prefix,
               absl::string_view suffix, uint64_t* a, uint64_t* b);

}  // namespace quorate::storage::internal

#endif  // QUORATE_STORAGE_RECORD_H_
