// coord/shard_assign.h: which processor of a shard group owns which shard.
// A pure function of the group's processors and its current owners, so
// that every member applying the same membership change computes the same
// assignment (docs/design.md, "Shard groups").
//
//   std::vector<ShardProcessor> ps = {{"p1", "az-a", 1}, {"p2", "az-b", 2}};
//   ShardAssignment a = AssignShards(/*shards=*/64, ps, current_owners);
//   a.owner[s]   // "p2", or "" when the group has no processor
//
// The rules, in order:
//  1. QUOTAS. Each zone gets its share of the shards in proportion to the
//     weight of its processors, and each processor its share of its
//     zone's, both rounded by largest remainder: a zone's count is within
//     one of its exact share, and so is a processor's within its zone.
//     Among equal remainders, one that owns more than the whole part of
//     its share now rounds up first (it would otherwise give one up), then
//     the smaller zone name or processor id.
//  2. STAY. A shard stays with its current owner while the owner is in the
//     group and under its quota (lower shard numbers first).
//  3. MOVE. Every other shard (orphaned, or beyond its owner's quota) goes,
//     in shard order, to the processors still under quota, in id order.
// So the number of shards that change owner is the least any assignment
// meeting the quotas needs: each processor keeps min(owned, quota).
// Processors are identified by id; the order they are passed in does not
// matter.
#ifndef QUORATE_COORD_SHARD_ASSIGN_H_
#define QUORATE_COORD_SHARD_ASSIGN_H_

#include <cstdint>
#include <string>
#include <vector>

namespace quorate::coord {

struct ShardProcessor {
  std::string id;  // unique within the group
  std::string zone;
  uint32_t weight = 1;  // at least 1
};

struct ShardAssignment {
  std::vector<std::string> owner;  // by shard; "" without processors
  std::vector<uint32_t> quota;     // by processor, in the order passed
  // Shards whose owner differs from the current one (a shard without an
  // owner before counts when it gets one).
  uint32_t moved = 0;
};

// `current` holds the current owner of each shard ("" for none; an id not
// among `processors` is an owner that left). Shorter than `shards`: the
// rest have none. Weights of 0 count as 1.
ShardAssignment AssignShards(uint32_t shards,
                             const std::vector<ShardProcessor>& processors,
                             const std::vector<std::string>& current);

}  // namespace quorate::coord

#endif  // QUORATE_COORD_SHARD_ASSIGN_H_
