// coord/fence_check.h: Client::CheckFence's logic, on a member's state.
//
// A fence (quorate/fence.h) names a holder: "GROUP/SHARD", "lock/NAME",
// "election/NAME" or "cluster". The check says whether its epoch is the
// current holder's: the shard's epoch while someone owns the shard, the
// create revision of the first key under the lock's or election's prefix,
// or the leader's term. Pure: the member reads its store after a read
// point (or runs a confirmation round, for "cluster") and the client
// judges the answer.
#ifndef QUORATE_COORD_FENCE_CHECK_H_
#define QUORATE_COORD_FENCE_CHECK_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "coord/kv.h"

namespace quorate::coord {

struct FenceTarget {
  enum class Kind { kShard, kLock, kElection, kCluster };
  Kind kind = Kind::kCluster;
  std::string name;  // the group, lock or election
  uint32_t shard = 0;
};

// "lock/N" and "election/N" name a lock or an election (so a shard group
// cannot be called "lock" or "election" and be checked here); "cluster"
// the cluster; "G/S" with S a shard number shard S of group G.
// INVALID_ARGUMENT for anything else.
absl::StatusOr<FenceTarget> ParseFenceName(absl::string_view name);

// Who holds a target now.
struct FenceHolder {
  uint64_t epoch = 0;  // the current holder's, or the last one's
  bool held = false;   // someone holds it now
};

// Reads the holder of a shard, lock or election from `store` (not the
// cluster: its epoch is the leader's term). NOT_FOUND for a shard of no
// group, or past the group's shards.
absl::StatusOr<FenceHolder> ReadFenceHolder(const KvStore& store,
                                            const FenceTarget& target);

// The verdict: OK if `epoch` is the current holder's; FAILED_PRECONDITION
// naming both epochs if a newer holder took over, the holder is gone, or
// the epoch was never a holder's.
absl::Status FenceVerdict(absl::string_view name, uint64_t epoch,
                          const FenceHolder& now);

}  // namespace quorate::coord

#endif  // QUORATE_COORD_FENCE_CHECK_H_
