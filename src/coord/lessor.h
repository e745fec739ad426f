// coord/lessor.h: the leader's side of leases, pure: no clock, no thread,
// no I/O. Times are the member's monotonic clock in nanoseconds. The node
// (coord/lease_service.h) and the simulator run it against the driver.
//
// The session argument (docs/design.md, "Sessions") is the partition
// guard's, applied to leases:
//  - A renewal is not a log entry. The leader notes its arrival time r and
//    answers it only after a quorum round that started after r (one round
//    serves every renewal that arrived before it: TakeRound), and only
//    while it still leads the term it noted the renewal in, with its
//    predecessors' entries applied (so an expiry they committed is known).
//  - Only the leader expires a lease, by proposing an expiry once TTL has
//    passed on its clock since the last renewal it received (TakeExpired).
//    From then on the lease's renewals are refused.
//  - A new leader gives every lease its full TTL from its own election, or
//    what the newest checkpoint left it, whichever is less. It knows the
//    newest checkpoint only once its predecessors' entries are applied, so
//    it expires nothing, and takes no checkpoint, until a round tells it
//    so (a probe round, if no renewal asks for one: TakeRound).
//  - Checkpoints bound how long a dead holder's lease lives across
//    elections (etcd#9888: repeated elections renewed leases forever).
//    Every checkpoint interval C the leader records, in the log, the time
//    left to each lease nobody renewed for max(C, TTL/2) (a healthy holder
//    renews every TTL/3, so its lease is not checkpointed), and after an
//    election to every lease not renewed within C of it (TakeCheckpoints;
//    so every tenure longer than C advances a dead holder's lease). A renewal
//    of a lease with a checkpoint (recorded or in flight) is answered only
//    once a command clearing it is applied: a new leader then never uses a
//    checkpoint older than a renewal some holder counts on.
//
// The holder (coord/lease_holder.h) counts from when it sent the renewal,
// s <= r, and stops at s + TTL (1 - rho) / (1 + rho) - margin on its own
// clock: before the real time any leader can expire the lease.
#ifndef QUORATE_COORD_LESSOR_H_
#define QUORATE_COORD_LESSOR_H_

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "coord/kv.h"
#include "node/driver.h"

namespace quorate::coord {

struct LessorOptions {
  // C: a lease nobody renewed for this long gets a checkpoint, and again
  // every C while it stays silent.
  int64_t checkpoint_interval_ns = 1'000'000'000;
  // Lease ids in one expiry or checkpoint command.
  size_t max_ids_per_command = 1000;
  // Renewals waiting for a round: RESOURCE_EXHAUSTED beyond.
  size_t max_pending = 1 << 20;

  // Deliberately broken variants, so that the simulator can show its
  // checkers catch them. Never set outside tests.
  struct Unsafe {
    // Answer renewals whatever the round's outcome (a deposed leader
    // renews).
    bool renew_without_round = false;
    // No checkpoints: a new leader always gives the full TTL.
    bool no_checkpoints = false;
  } unsafe;
};

class Lessor {
 public:
  explicit Lessor(LessorOptions options) : options_(options) {}

  // The answer to one renewal.
  struct Answer {
    uint64_t lease = 0;
    uint64_t cookie = 0;
    absl::Status status;
    int64_t ttl_ms = 0;  // when OK
  };

  // The store's lease events (every member, in apply order).
  void OnLeaseEvents(const std::vector<LeaseEvent>& events, int64_t now_ns);

  // This member leads `term` from `now_ns` on; or no longer leads.
  void BecomeLeader(uint64_t term, int64_t now_ns);
  // Renewals not yet in a round are answered UNAVAILABLE (returned); the
  // round in flight is answered by RoundDone.
  std::vector<Answer> StepDown();
  bool leader() const { return leader_; }
  uint64_t term() const { return term_; }

  // A renewal of lease `id` arrived. OK: it waits for a round (TakeRound);
  // UNAVAILABLE (not the leader), NOT_FOUND (no such lease, or it is
  // expiring) or RESOURCE_EXHAUSTED otherwise. `cookie` comes back with
  // its answer.
  absl::Status Renew(uint64_t id, uint64_t cookie, int64_t now_ns);

  // The renewals that arrived since the last round, if there are any (or
  // a new leader has not caught up yet) and no round is in flight. With `clear`
  // empty, the round is a quorum round (Driver::Confirm); otherwise it is a
  // checkpoint command clearing those leases (Driver::Propose), and applying it
  // is the round.
  struct Round {
    uint64_t id = 0;
    std::vector<uint64_t> clear;
  };
  std::optional<Round> TakeRound();
  // Whether TakeRound would return a round now.
  bool WantsRound() const {
    return round_ == 0 && (!pending_.empty() || (leader_ && !caught_up_));
  }
  // Round `round` ended: confirmed (for a checkpoint command: applied, with
  // `applied` its index) or failed.
  std::vector<Answer> RoundDone(uint64_t round,
                                const absl::StatusOr<node::Confirmation>& c);

  // Leases whose TTL passed on this leader's clock: propose their expiry.
  // From now on their renewals are refused. ExpiryDone(ids, false) if the
  // command was not applied (they are taken again).
  std::vector<uint64_t> TakeExpired(int64_t now_ns);
  void ExpiryDone(const std::vector<uint64_t>& ids, bool applied);

  // Silent leases to checkpoint: ids and the time left to each.
  struct Checkpoint {
    std::vector<uint64_t> ids;
    std::vector<int64_t> remaining_ms;
  };
  Checkpoint TakeCheckpoints(int64_t now_ns);
  void CheckpointDone(const std::vector<uint64_t>& ids);

  // The leader's view: time left before it expires lease `id`. NOT_FOUND
  // or UNAVAILABLE (not the leader).
  absl::StatusOr<int64_t> Remaining(uint64_t id, int64_t now_ns) const;

  // When TakeExpired or TakeCheckpoints next has something (leader only;
  // INT64_MAX otherwise).
  int64_t NextDeadline() const;
  size_t leases() const { return leases_.size(); }

 private:
  struct Lease {
    int64_t ttl_ns = 0;
    int64_t checkpoint_ns = -1;  // applied; -1: none
    // Leader only:
    int64_t expires_ns = 0;
    // What renewals (and a grant) seen while leading give it.
    int64_t renewed_until_ns = 0;
    int64_t last_renewal_ns = 0;
    int64_t last_checkpoint_ns = 0;
    bool expiring = false;  // renewals refused from now on
    bool expiry_in_flight = false;
    bool checkpoint_in_flight = false;
  };
  struct Pending {
    uint64_t lease = 0;
    uint64_t cookie = 0;
  };
  void StartLeading(Lease& lease, int64_t now_ns) const;
  // What the election gives `lease`: the TTL or its checkpoint's rest.
  int64_t FromElection(const Lease& lease) const;
  // How long nobody must renew `lease` before it is checkpointed.
  int64_t SilenceForCheckpoint(const Lease& lease) const;
  bool caught_up() const { return caught_up_; }
  // Whether a renewal of `lease` must wait for a checkpoint to be cleared.
  static bool NeedsClear(const Lease& lease) {
    return lease.checkpoint_ns >= 0 || lease.checkpoint_in_flight;
  }

  const LessorOptions options_;
  std::map<uint64_t, Lease> leases_;
  bool leader_ = false;
  uint64_t term_ = 0;
  int64_t elected_ns_ = 0;
  // The predecessors' entries are applied here (a round said so).
  bool caught_up_ = false;
  std::vector<Pending> pending_;
  uint64_t next_round_ = 1;
  // The round in flight (0: none), its term and renewals.
  uint64_t round_ = 0;
  uint64_t round_term_ = 0;
  std::vector<Pending> in_round_;
};

// The commands a Lessor's runner proposes (the node's LeaseKeeper and the
// simulator), and what a clear round's proposal says as a round.
client::KvCommand ExpiryCommand(const std::vector<uint64_t>& ids);
client::KvCommand CheckpointCommand(const Lessor::Checkpoint& checkpoint);
client::KvCommand ClearCommand(const std::vector<uint64_t>& ids);
// A clear proposed by the leader of `term` (Round::clear) was applied at
// `applied.index`, or failed: the round's outcome, for RoundDone.
absl::StatusOr<node::Confirmation> ClearRoundOutcome(
    uint64_t term, const absl::StatusOr<node::Applied>& applied);

}  // namespace quorate::coord

#endif  // QUORATE_COORD_LESSOR_H_
