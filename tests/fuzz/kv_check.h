// tests/fuzz/kv_check.h: checks on the key-value state machine shared by
// fuzz_snapshot_restore and fuzz_kv_apply.
#ifndef QUORATE_TESTS_FUZZ_KV_CHECK_H_
#define QUORATE_TESTS_FUZZ_KV_CHECK_H_

#include <memory>
#include <string>

#include "coord/kv.h"

namespace quorate::fuzz {

// Snapshots `store` and restores the bytes into a new store, which must
// accept them and answer the same: the same revision, sessions and values
// (every key of the snapshot), and a snapshot of the same bytes. Checks
// that the state is one writes could have produced: every key's revision is
// at least 1 (0 means "absent" to a compare-and-set) and at most the
// store's revision (revisions are never reused). Returns the new store.
std::unique_ptr<coord::KvStore> CheckRoundTrip(const coord::KvStore& store,
                                               const std::string& snapshot);

// Takes and serializes a snapshot of `store` now.
std::string SnapshotNow(coord::KvStore& store);

}  // namespace quorate::fuzz

#endif  // QUORATE_TESTS_FUZZ_KV_CHECK_H_
