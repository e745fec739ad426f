// tests/fuzz/fuzz_input.h: the byte formats the fuzz targets decode, shared
// with the seed-corpus generator (make_corpus.cc) so that both sides agree.
//
// Every format is a sequence of little-endian fields read by Reader. A
// Reader never fails: past the end it yields zeros and empty strings, so
// any input decodes to something and the fuzzer wastes no runs on inputs
// a strict parser would refuse. Writer builds the same formats for seeds.
//
//  fuzz_raft_step      [setup u8] then ops: [op u8][operands]; see
//                      RaftSetup and RaftOp below.
//  fuzz_wal_recovery   files: [kind u8][a u64][b u64][len u32][len bytes];
//                      see FileKind.
//  fuzz_snapshot_restore
//                      [flags u8][body]; see SnapshotFlags.
//  fuzz_kv_apply       ops: [op u8][operands]; see KvOp.
#ifndef QUORATE_TESTS_FUZZ_FUZZ_INPUT_H_
#define QUORATE_TESTS_FUZZ_FUZZ_INPUT_H_

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/strings/string_view.h"

namespace quorate::fuzz {

class Reader {
 public:
  Reader(const uint8_t* data, size_t size) : data_(data), size_(size) {}

  bool empty() const { return pos_ >= size_; }
  size_t remaining() const { return size_ - pos_; }

  uint8_t U8() { return empty() ? 0 : data_[pos_++]; }
  uint16_t U16() { return static_cast<uint16_t>(Le(2)); }
  uint32_t U32() { return static_cast<uint32_t>(Le(4)); }
  uint64_t U64() { return Le(8); }
  // Up to `n` bytes: fewer at the end of the input.
  std::string Bytes(size_t n) {
    n = std::min(n, remaining());
    std::string out(reinterpret_cast<const char*>(data_ + pos_), n);
    pos_ += n;
    return out;
  }
  std::string Rest() { return Bytes(remaining()); }

 private:
  uint64_t Le(int bytes) {
    uint64_t v = 0;
    for (int i = 0; i < bytes; ++i) v |= uint64_t{U8()} << (8 * i);
    return v;
  }

  const uint8_t* data_;
  size_t size_;
  size_t pos_ = 0;
};

class Writer {
 public:
  Writer& U8(uint8_t v) {
    out_.push_back(static_cast<char>(v));
    return *this;
  }
  Writer& U16(uint16_t v) { return Le(v, 2); }
  Writer& U32(uint32_t v) { return Le(v, 4); }
  Writer& U64(uint64_t v) { return Le(v, 8); }
  Writer& Bytes(absl::string_view s) {
    out_.append(s.data(), s.size());
    return *this;
  }
  const std::string& str() const { return out_; }

 private:
  Writer& Le(uint64_t v, int bytes) {
    for (int i = 0; i < bytes; ++i) U8(static_cast<uint8_t>(v >> (8 * i)));
    return *this;
  }

  std::string out_;
};

// --- fuzz_raft_step ---------------------------------------------------------

// The first byte: how the member under test starts. It is member 1 of the
// voters {1, 2, 3}.
enum RaftSetup : uint8_t {
  kSetupLeader = 1 << 0,  // campaign and win before the ops
  // Bits 1-2: entries already in the log, 0 to 3, all of term 1.
  kSetupEntriesShift = 1,
  kSetupEntriesMask = 3 << 1,
  kSetupSnapshot = 1 << 3,       // the log starts after a snapshot at 2
  kSetupNoPreVote = 1 << 4,      // Config::pre_vote = false
  kSetupNoCheckQuorum = 1 << 5,  // Config::check_quorum = false
  kSetupCommitDelay = 1 << 6,    // Config::commit_notify_delay_ns = 10 ms
  kSetupSmallLimits = 1 << 7,    // tiny message, inflight and read limits
};

// An op byte: the low 4 bits select the op; kOpThenDrain runs the whole
// Ready loop (GetReady, persist, Advance until nothing is left) after it.
enum RaftOp : uint8_t {
  // 0-5: Step(). Operands: [len u16][len bytes of a quorate.raft.Message].
  // `to` is forced to 1, `from` taken mod 4 (0 and 1 are refused senders).
  kOpStep = 0,
  kOpStepLast = 5,
  kOpTick = 6,        // [ms u8]: time moves on by ms * 10 ms, then Tick()
  kOpGetReady = 7,    // GetReady() if none is outstanding and HasReady()
  kOpAdvance = 8,     // Advance() if a Ready is outstanding
  kOpDrain = 9,       // the Ready loop until nothing is left
  kOpPropose = 10,    // [len u8][data]
  kOpReadIndex = 11,  // [request id u8]
  kOpTake = 12,       // TakeMessages/TakeReadStates/TakeCommittedEntries
  kOpCompact = 13,    // Compact() at the applied index
  kOpTransfer = 14,   // [target u8]: TransferLeadership(target mod 4)
  // [what u8][arg u8]: what mod 3: ReportUnreachable(arg mod 4),
  // Campaign(), ProposeConfChange(type = arg mod 5, member = arg / 5 mod 6)
  kOpMisc = 15,
  kOpMask = 15,
  kOpThenDrain = 1 << 4,
};

// --- fuzz_wal_recovery ------------------------------------------------------

// The kind byte of one file of the data directory: the low 2 bits say what
// it is, kFileFramed how its bytes are given.
enum FileKind : uint8_t {
  kFileSegment = 0,   // "<a:16 hex>-<b:16 hex>.wal": sequence, first index
  kFileSnapshot = 1,  // "snap-<a>-<b>.snap": index, term
  kFileSalt = 2,      // "SALT" (the input replaces the harness's own)
  kFileOther = 3,     // "<a>.tmp": a leftover recovery must remove
  kFileKindMask = 3,
  // The bytes are records [type u8][len u16][len bytes], framed by the
  // harness with valid checksums (a record whose length runs past the end
  // is copied unframed: a torn tail). A framed snapshot is
  // [header len u16][header][data]: the header is framed, its data size
  // and checksum are filled in.
  kFileFramed = 1 << 7,
};

// The directory secret the harness writes to SALT (and the generator
// used), so that seeds from real storage keep valid checksums.
inline constexpr uint32_t kFuzzSecret = 0x5eed5a17;

// --- fuzz_snapshot_restore --------------------------------------------------

enum SnapshotFlags : uint8_t {
  // The body is a KvSnapshot given straight to KvStore::Restore.
  kSnapStoreOnly = 1 << 0,
  // The body is [header len u16][SnapshotHeader][data]: the harness frames
  // the header with a valid checksum. Otherwise the body is the raw file.
  kSnapFrame = 1 << 1,
  // With kSnapFrame: data_size and data_crc32c are set to match the data.
  kSnapFixData = 1 << 2,
};

// --- fuzz_kv_apply ----------------------------------------------------------

// An op byte: the low 3 bits select the op.
enum KvOp : uint8_t {
  kKvRaw = 0,  // [len u16][len bytes]: a command as committed bytes
  // 1-3: a command built from [sel u8][value len u8][value][client u8]
  // [seq u8][expected u8]: sel & 3 = none/put/del/cas, sel >> 2 & 7 the
  // key ("k0".."k5", an empty key, a key over the limit), sel & 0x20: the
  // CAS expects the key's current revision instead of `expected`.
  kKvCommand = 1,
  kKvCommandLast = 3,
  kKvRestore = 4,  // [how u8]: snapshot, restore into a new store, compare
  // [n u8][mode u8]: n * 8 puts, by client 4 in seq order (mode even),
  // or by new clients (odd) up to 64 past the session table's capacity.
  // Only the byte 5 itself: other bytes whose low bits are 5 are commands.
  kKvBurst = 5,
  kKvCapture = 6,  // Snapshot() now; serialized at the next kKvCapture
  kKvQuery = 7,    // [client u8][seq u8]: WasApplied
  kKvOpMask = 7,
};

}  // namespace quorate::fuzz

#endif  // QUORATE_TESTS_FUZZ_FUZZ_INPUT_H_
