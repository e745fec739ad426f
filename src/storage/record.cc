#include "storage/record.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "storage/crc32c.h"
#include "wire/storage.pb.h"

namespace quorate::storage::internal {
namespace {

bool AllZero(absl::string_view data) {
  return std::all_of(data.begin(), data.end(), [](char c) { return c == 0; });
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

}  // namespace

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

std::string SegmentName(uint64_t seq, uint64_t first_index) {
  return absl::StrFormat("%016x-%016x.wal", seq, first_index);
}

std::string SnapshotName(uint64_t index, uint64_t term) {
  return absl::StrFormat("snap-%016x-%016x.snap", index, term);
}

bool ParseName(absl::string_view name, absl::string_view prefix,
               absl::string_view suffix, uint64_t* a, uint64_t* b) {
  if (name.size() != prefix.size() + 33 + suffix.size()) return false;
  if (name.substr(0, prefix.size()) != prefix) return false;
  if (name.substr(name.size() - suffix.size()) != suffix) return false;
  name.remove_prefix(prefix.size());
  return name[16] == '-' && ParseHex(name.substr(0, 16), a) &&
         ParseHex(name.substr(17, 16), b);
}

}  // namespace quorate::storage::internal
