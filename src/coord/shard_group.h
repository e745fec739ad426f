// coord/shard_group.h: one shard group's replicated state (issue 19): its
// processors, and each shard's owner, epoch and phase. Pure and
// deterministic: every member applies the same commands in the same order
// and holds the same state; the key-value store keeps one per group.
//
//   ShardGroup g = *ShardGroup::Create({.shards = 64, .max_in_motion = 4});
//   g.Join({"lease-7", "az-a", 1});           // every shard to lease-7
//   g.Join({"lease-9", "az-b", 1});           // up to 4 shards revoking
//   g.AckRevoke(s, "lease-7", epoch);         // the owner saw on_revoke
//   g.Release(s, "lease-7", epoch);           // ... finished: s moves on
//
// MOVES. Whenever the processors change (Join, Leave, SessionEnded) the
// target owners are recomputed (coord/shard_assign.h).
//  - A shard without an owner gets its target at once, with a new epoch.
//  - A PLANNED move (the owner is still in the group, or left with Leave):
//    the shard is revoked (phase kRevoking) and keeps its owner until the
//    owner releases it (Release), or until the drain deadline passes
//    (DrainExpired, proposed by the leader's timer) after the owner
//    acknowledged the revocation (AckRevoke). Only then does the next owner
//    get it, with a new epoch. At most `max_in_motion` shards are revoking
//    at once; the others wait their turn.
//  - An UNPLANNED move (the owner's session ended: SessionEnded): its
//    shards move at once, with new epochs. Safe because the session's
//    holder stopped acting before the session's end was applied (the
//    session's window, docs/design.md).
// EPOCHS. A shard's epoch increases by one with each new owner (never
// otherwise) and is the owner's fencing token for that shard.
// WHY THE ACKNOWLEDGEMENT. A deadline counted from the revocation's apply
// could pass before a slow or cut-off owner even learned of it. Counted
// from the acknowledgement, the owner's own deadline starts when it sent
// it, which is no later than the apply: the owner stops first. An owner
// that never acknowledges keeps the shard until it releases it, leaves, or
// its session ends.
#ifndef QUORATE_COORD_SHARD_GROUP_H_
#define QUORATE_COORD_SHARD_GROUP_H_

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "coord/shard_assign.h"

namespace quorate::coord {

inline constexpr uint32_t kMaxShardsPerGroup = 16384;
inline constexpr uint32_t kMaxProcessorsPerGroup = 10000;

struct ShardGroupConfig {
  uint32_t shards = 0;             // 1 to kMaxShardsPerGroup
  uint32_t max_processors = 1000;  // 1 to kMaxProcessorsPerGroup
  uint32_t max_in_motion = 16;     // shards revoking at once; at least 1
  int64_t drain_ms = 30000;        // after AckRevoke; at least 1
};

// INVALID_ARGUMENT naming the rule, or OK.
absl::Status CheckShardGroupConfig(const ShardGroupConfig& config);

enum class ShardPhase {
  kUnowned,   // no processor in the group
  kOwned,     // owner may work on it
  kRevoking,  // owner is draining it; `next` gets it after
};

struct ShardState {
  std::string owner;  // "" when unowned
  uint64_t epoch = 0;
  ShardPhase phase = ShardPhase::kUnowned;
  std::string next;    // kRevoking: who gets it
  bool acked = false;  // kRevoking: the owner acknowledged (AckRevoke)
};

// Deliberately broken behaviour, so that tests can show their checks
// catch it. Never set outside tests.
struct ShardGroupUnsafe {
  bool skip_drain = false;  // planned moves hand over at once
  bool keep_epoch = false;  // a new owner keeps the old epoch (the first
                            // owner still gets epoch 1)
  bool ignore_session_end = false;  // a session's end moves nothing
};

class ShardGroup {
 public:
  using Unsafe = ShardGroupUnsafe;

  static absl::StatusOr<ShardGroup> Create(const ShardGroupConfig& config,
                                           Unsafe unsafe = {});
  struct Member;
  // A group as a snapshot held it. DATA_LOSS if the parts do not fit
  // together (a shard count other than the config's, an owner or a next
  // owner that is not a member, a phase out of range).
  static absl::StatusOr<ShardGroup> Restore(
      const ShardGroupConfig& config, std::map<std::string, Member> members,
      std::vector<ShardState> shards, Unsafe unsafe = {});

  // A processor (a session) joins, or changes its zone or weight.
  // RESOURCE_EXHAUSTED beyond max_processors; INVALID_ARGUMENT for an
  // empty id or a weight outside 1 to 1000.
  absl::Status Join(const ShardProcessor& processor);
  // A graceful leave: its shards are revoked (planned moves); it stays an
  // owner until each is released. NOT_FOUND if it is not in the group.
  absl::Status Leave(const std::string& id);
  // The processor's session ended: it is out, and its shards move at once.
  // Nothing happens for an id not in the group.
  void SessionEnded(const std::string& id);
  // FAILED_PRECONDITION unless `id` owns `shard` at `epoch`;
  // INVALID_ARGUMENT for a shard out of range.
  absl::Status AckRevoke(uint32_t shard, const std::string& id, uint64_t epoch);
  absl::Status Release(uint32_t shard, const std::string& id, uint64_t epoch);
  // The drain deadline of an acknowledged revocation passed: the shard is
  // handed over. FAILED_PRECONDITION unless it is revoking at `epoch` and
  // acknowledged.
  absl::Status DrainExpired(uint32_t shard, uint64_t epoch);

  const ShardGroupConfig& config() const { return config_; }
  const std::vector<ShardState>& shards() const { return shards_; }
  // Processors by id; `leaving` ones are no longer assigned shards.
  struct Member {
    ShardProcessor processor;
    bool leaving = false;
  };
  const std::map<std::string, Member>& members() const { return members_; }
  uint32_t in_motion() const;
  // Shards whose state the last call changed, in order.
  const std::vector<uint32_t>& changed() const { return changed_; }

 private:
  ShardGroup(const ShardGroupConfig& config, Unsafe unsafe);
  absl::Status CheckOwner(uint32_t shard, const std::string& id,
                          uint64_t epoch) const;
  // The shard goes to `to` ("": nobody) with a new epoch.
  void HandOver(uint32_t shard, const std::string& to);
  // Recomputes the targets and starts what may start now.
  void Rebalance();
  // Removes members that left and own nothing.
  void ForgetLeavers();
  void Changed(uint32_t shard) { changed_.push_back(shard); }

  ShardGroupConfig config_;
  Unsafe unsafe_;
  std::map<std::string, Member> members_;
  std::vector<ShardState> shards_;
  std::vector<uint32_t> changed_;
};

// An acknowledged revocation still draining (KvStore::DrainingShards).
struct DrainingShard {
  std::string group;
  uint32_t shard = 0;
  uint64_t epoch = 0;
  int64_t drain_ms = 0;
};

// The leader's drain clock: when each acknowledged revocation's drain
// deadline passes, counted on this leader's clock from when it first saw
// the acknowledgement applied (never earlier than the apply, so never
// before the owner's own deadline, which counts from when it sent it). A
// new leader starts counting again. Not thread-safe.
class DrainClock {
 public:
  // `draining`: every acknowledged revocation the store holds now. Returns
  // those whose drain_ms has passed since first seen; each is returned
  // again after another drain_ms if it is still draining (its proposal
  // was lost).
  std::vector<DrainingShard> Scan(const std::vector<DrainingShard>& draining,
                                  int64_t now_ns);
  void Reset() { first_seen_.clear(); }  // no longer the leader

 private:
  std::map<std::tuple<std::string, uint32_t, uint64_t>, int64_t> first_seen_;
};

// KEYS. A group's state is also kept as keys, written by the state machine
// in the same revision as the change (so that clients read and watch it
// like any key) and by nothing else:
//   quorate/shards/GROUP/config        "shards=N max_processors=M
//                                       max_in_motion=K drain_ms=D"
//   quorate/shards/GROUP/shard/NNNNN   "OWNER EPOCH PHASE NEXT ACKED"
//   quorate/shards/GROUP/member/ID     "ZONE WEIGHT active|leaving"
// OWNER and NEXT are processor ids, "-" for none; PHASE is unowned, owned
// or draining (kRevoking); ACKED is 0 or 1; NNNNN is the shard number in 5
// digits.
inline constexpr char kShardKeyPrefix[] = "quorate/shards/";
// "quorate/shards/GROUP/"; INVALID_ARGUMENT for a bad group name.
absl::StatusOr<std::string> ShardGroupPrefix(absl::string_view group);
// For a group being created: ShardGroupPrefix's rule, and not "lock" or
// "election" (its fence names would be a lock's or an election's). Checked
// where a create enters (the client, the member's service), never where
// entries are applied or snapshots loaded: a group that exists stays
// readable.
absl::Status CheckNewShardGroupName(absl::string_view group);
std::string ShardConfigKey(absl::string_view prefix);
std::string ShardStateKey(absl::string_view prefix, uint32_t shard);
std::string ShardMemberKey(absl::string_view prefix, absl::string_view id);
std::string FormatShardConfig(const ShardGroupConfig& config);
std::string FormatShardState(const ShardState& state);
std::string FormatShardMember(const ShardGroup::Member& member);
// INVALID_ARGUMENT if `value` is not what FormatShardState writes.
absl::StatusOr<ShardState> ParseShardState(absl::string_view value);
// The shard number of a ShardStateKey under `prefix`, if it is one.
std::optional<uint32_t> ShardOfKey(absl::string_view prefix,
                                   absl::string_view key);
const char* ShardPhaseName(ShardPhase phase);

}  // namespace quorate::coord

#endif  // QUORATE_COORD_SHARD_GROUP_H_
