// quorate/shards.h: shard groups. A named group has a fixed number of
// shards; processors join it with a session, and the cluster's state
// machine decides which processor owns which shard (balanced by weight,
// spread over zones, moving as few shards as it can). Each shard has an
// epoch that grows with every new owner: the owner's fencing token for it.
//
//   quorate::CreateShardGroup(client, "mailboxes", 4096);
//   quorate::ShardGroupOptions o;
//   o.zone = "az-a";
//   o.on_assigned = [](uint32_t shard, uint64_t epoch) { ... start ... };
//   o.on_revoke = [&](uint32_t shard) { ... finish, then ...
//                                       group->Release(shard); };
//   auto group = quorate::ShardGroup::Join(client, session, "mailboxes", o);
//   uint64_t epoch;
//   if ((*group)->Owns(shard, &epoch)) {      // before each unit of work
//     db.WriteFenced("mailboxes/" + std::to_string(shard), epoch, ...);
//   }
//
// MOVES. When a processor joins or leaves (Leave), shards move by plan:
// the owner gets on_revoke(shard), finishes what it is doing and calls
// Release(shard), and only then does the next owner get on_assigned with a
// new epoch. The library acknowledges each revocation as soon as it sees
// it; if the owner has not released the shard `drain` after that (the
// group's drain deadline, 30 s unless CreateShardGroup said otherwise),
// Owns() turns false here first and the cluster hands the shard over.
// When a processor's session ends, its shards move at once: its Owns()
// went false before the cluster could end the session.
//
// Owns(shard, &epoch) is the check at use: true only while the session is
// valid, the shard is this processor's, it was not released here, and its
// drain deadline (if revoking) has not passed. It costs a few atomic
// loads and at most two clock reads. No two processors' Owns() are true
// for one shard at the same moment (docs/design.md, "Shard groups").
//
// Callbacks run on one thread of the group's, in order, never under a
// lock of the library's; they may call Owns and Release.
//
// Errors: INVALID_ARGUMENT for a bad name or a group of 0 or more than
// 16,384 shards; NOT_FOUND for an unknown group; FAILED_PRECONDITION for
// an expired or revoked session, or releasing a shard not owned;
// RESOURCE_EXHAUSTED past the group's processor limit; ALREADY_EXISTS
// when creating a group that exists with other limits.
//
// Thread-safe. The Client and the Session must outlive the group.
#ifndef QUORATE_SHARDS_H_
#define QUORATE_SHARDS_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "quorate/client.h"

namespace quorate {

struct ShardGroupLimits {
  uint32_t max_processors = 0;  // 0: 1,000
  uint32_t max_in_motion = 0;   // shards revoking at once; 0: 16
  absl::Duration drain = absl::ZeroDuration();  // 0: 30 s
};

// Creates group `name` with `shards` shards. A group that exists with the
// same shape is not an error.
absl::Status CreateShardGroup(Client* client, absl::string_view name,
                              uint32_t shards,
                              const ShardGroupLimits& limits = {});

// One shard, as read.
struct ShardInfo {
  uint32_t shard = 0;
  uint64_t owner = 0;  // the owner's session lease; 0: none
  std::string zone;    // the owner's
  uint64_t epoch = 0;
  std::string state;  // "owned", "draining" or "unowned"
  uint64_t next = 0;  // draining: the lease it goes to
};
// Every shard of group `name` (linearizable); NOT_FOUND if there is none.
absl::StatusOr<std::vector<ShardInfo>> ListShards(Client* client,
                                                  absl::string_view name);

struct ShardGroupOptions {
  std::string zone;
  uint32_t weight = 1;  // 1 to 1000
  std::function<void(uint32_t shard, uint64_t epoch)> on_assigned;
  std::function<void(uint32_t shard)> on_revoke;
  // The session is over: nothing is owned any more.
  std::function<void()> on_lost;
};

class ShardGroup {
 public:
  static absl::StatusOr<std::unique_ptr<ShardGroup>> Join(
      Client* client, Session* session, absl::string_view name,
      ShardGroupOptions options);
  // Stops watching; owns nothing. Does not leave the group (Leave does;
  // otherwise the shards move when the session ends).
  virtual ~ShardGroup() = default;

  virtual bool Owns(uint32_t shard, uint64_t* epoch = nullptr) const = 0;
  // Owns(shard) is false before the call returns; the cluster then hands
  // the shard over. FAILED_PRECONDITION if it was not owned here.
  virtual absl::Status Release(uint32_t shard) = 0;
  // Leaves the group by plan: every owned shard is revoked (on_revoke),
  // and the processor is gone once it released them all.
  virtual absl::Status Leave() = 0;
  // The shards owned now (Owns() true), in order.
  virtual std::vector<uint32_t> Owned() const = 0;
  virtual uint32_t shard_count() const = 0;
};

}  // namespace quorate

#endif  // QUORATE_SHARDS_H_
