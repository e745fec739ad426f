// quorate/fence.h: fencing tokens in the one form a resource checks.
//
// No clock protects a holder that stalls after its check (a GC pause,
// SIGSTOP, a frozen VM): it may act after its successor took over. The
// resource it writes to stops it, by remembering the highest epoch it
// accepted under each fence name and refusing a lower one. Every holder
// Quorate hands out gives its token as a Fence:
//
//   uint64_t epoch;
//   if (group->Owns(shard, &epoch)) {                 // the check at use
//     quorate::Fence f = quorate::ShardFence("mailboxes", shard, epoch);
//     ... in the resource's transaction: CheckFence(f, highest) ...
//   }
//
//   holder              fence name          epoch
//   shard S of group G  "G/S"               the shard's epoch (Owns)
//   lock N              "lock/N"            the holder's token (Held)
//   election N          "election/N"        the leader's token (IsLeader)
//   the cluster         "cluster"           the leader's term (Permit)
//
// Each epoch grows with every new holder of its name: a shard's with every
// new owner, a lock's or election's with every new holder (its key's
// create revision), the cluster's with every new leader (one leader per
// term, and all active members act under it). (So no shard group may be
// called "lock" or "election".)
//
// A resource that keeps the highest epoch per name applies CheckFence below
// (quorate/fence_sqlite.h and quorate/fence_postgres.h do it inside a
// transaction). One that cannot ask the cluster instead:
// Client::CheckFence(name, epoch), with its time-of-check limit.
#ifndef QUORATE_FENCE_H_
#define QUORATE_FENCE_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "quorate/member.h"

namespace quorate {

struct Fence {
  std::string name;
  uint64_t epoch = 0;
};

Fence ShardFence(absl::string_view group, uint32_t shard, uint64_t epoch);
Fence LockFence(absl::string_view lock, uint64_t token);
Fence ElectionFence(absl::string_view election, uint64_t token);
Fence ClusterFence(const FencingToken& token);

// The rule, written once. A resource remembers `highest`, the highest
// epoch it has accepted under `fence.name` (0 if none). It accepts an
// equal or higher epoch (OK; it then remembers `fence.epoch`) and refuses
// a lower one: FAILED_PRECONDITION, with a message that names both epochs.
// INVALID_ARGUMENT for an empty name, a name over 512 bytes, or epoch 0
// (no holder has it).
absl::Status CheckFence(const Fence& fence, uint64_t highest);

}  // namespace quorate

#endif  // QUORATE_FENCE_H_
