// tests/fuzz/storage_input.h: data directories from fuzz input, and the
// checks on what storage recovers from them, for fuzz_wal_recovery and
// fuzz_snapshot_restore (formats: fuzz_input.h).
//
// Records are checksummed with a salt (storage.h), so almost every
// mutation of a valid file fails its checksum at once. The "framed" forms
// below let the fuzzer reach what lies behind the checksums: it mutates
// record types, lengths and payloads, and the harness computes the
// checksums a writer would have.
#ifndef QUORATE_TESTS_FUZZ_STORAGE_INPUT_H_
#define QUORATE_TESTS_FUZZ_STORAGE_INPUT_H_

#include <cstdint>
#include <string>

#include "absl/strings/string_view.h"
#include "fuzz_input.h"
#include "raft/raft.h"
#include "storage/mem_fs.h"
#include "storage/storage.h"

namespace quorate::fuzz {

// The directory every harness uses (MemStorageOptions).
inline constexpr char kDataDir[] = "/data";

// A SALT file holding `secret`.
std::string SaltFile(uint32_t secret);
// The salt of segment `seq`'s records in a directory whose secret is
// kFuzzSecret.
uint32_t FuzzSegmentSalt(uint64_t seq);

// Records given as [type u8][len u16][payload], framed with `salt`. A
// record whose length runs past the end is copied as it is, unframed (a
// torn tail).
std::string FrameRecords(absl::string_view body, uint32_t salt);
// The inverse, for seeds: a file's valid records in FrameRecords' form,
// up to the first record that does not parse.
std::string UnframeRecords(absl::string_view file, uint32_t salt);

// A snapshot file from [header len u16][SnapshotHeader][data]: the header
// framed (salt 0); with `fix_data`, data_size and data_crc32c are set to
// match the data. Sets *index and *term from the header (1 and 1 if it
// does not parse), for the file name.
std::string FrameSnapshot(absl::string_view body, bool fix_data,
                          uint64_t* index, uint64_t* term);
// The index and term a raw snapshot file's header names, for its file name;
// false if the file does not start with a readable header.
bool SnapshotFileName(absl::string_view file, uint64_t* index, uint64_t* term);

// Writes `data` as `name` in kDataDir, replacing any file of that name.
void PutFile(storage::testing::MemFileSystem* fs, const std::string& name,
             absl::string_view data);
// Decodes a fuzz_wal_recovery input into kDataDir (at most 16 files).
void PutFiles(Reader& in, storage::testing::MemFileSystem* fs);

// What every successful recovery must return: entries contiguous from the
// snapshot index + 1, terms never decreasing (from the snapshot's term),
// the commit and applied indexes within the log.
void CheckRestored(const raft::RestoredState& restored);

// Starts a consensus core on `restored`, as a member does after recovery.
// An error status is fine; a crash is not.
void StartCore(const raft::RestoredState& restored);

}  // namespace quorate::fuzz

#endif  // QUORATE_TESTS_FUZZ_STORAGE_INPUT_H_
