// coord/shard_view.h: one processor's view of a shard group, pure: which
// shards it owns, at which epoch, and until when. quorate::ShardGroup
// feeds it the group's keys (coord/shard_group.h, KEYS) from a read and a
// watch, on its threads; the simulator feeds it reads, on simulated time.
// No clock, no thread, no I/O: every time is passed in (CLOCK_BOOTTIME in
// the library, a simulated clock in the simulator).
//
// Owns(shard, now) is the check at use. It reads two atomics and is safe
// from any thread while one caller at a time makes the other calls. It
// says nothing of the session: the caller also checks the session's
// validity (Session::Valid()).
//
// The rules (docs/design.md, "Shard groups"):
//  - A shard is owned from when the view shows it assigned to this
//    processor at a new epoch, until the view shows it someone else's, it
//    is released here (TakeRelease), or its drain deadline passes.
//  - The drain deadline is set when the view first shows the shard
//    revoking, to now + drain_ns (ShardDrainWindowNs: the group's drain_ms
//    shrunk by the clock drift bound, less a margin). The acknowledgement
//    is sent after that (Change::revoke_epoch), and the leader counts its
//    drain_ms from the acknowledgement's apply on its own clock, so this
//    processor stops first.
//  - A released epoch is not owned again, even while the view lags.
#ifndef QUORATE_COORD_SHARD_VIEW_H_
#define QUORATE_COORD_SHARD_VIEW_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "coord/shard_group.h"

namespace quorate::coord {

// The owner's own drain deadline after it learns of a revocation: the
// group's drain_ms as a clock drifting by up to `max_clock_drift` may
// count it, less `margin_ns`. At least 0.
int64_t ShardDrainWindowNs(int64_t drain_ms, double max_clock_drift,
                           int64_t margin_ns);

class ShardView {
 public:
  static constexpr int64_t kNever = INT64_MAX;

  // `me`: this processor's id (KvStore::ShardProcessorId of its lease).
  ShardView(std::string me, uint32_t shards, int64_t drain_ns);
  ShardView(const ShardView&) = delete;
  ShardView& operator=(const ShardView&) = delete;

  uint32_t shard_count() const { return count_; }

  // The epoch this processor owns `shard` at, at `now_ns`, or 0. Any
  // thread.
  uint64_t Owns(uint32_t shard, int64_t now_ns) const;
  // Its drain deadline (kNever if none). Any thread.
  int64_t Until(uint32_t shard) const;

  // What an Update asks of its caller.
  struct Change {
    uint64_t assigned = 0;      // a new tenure at this epoch: on_assigned
    uint64_t revoke_epoch = 0;  // newly revoking: on_revoke, then send the
                                // acknowledgement for this epoch
  };
  // The shard's state as of a read or a watch event, in revision order.
  // `at_start`: from the read a view begins with, so a revocation already
  // acknowledged was acknowledged before it (its drain is over).
  Change Update(uint32_t shard, const ShardState& state, bool at_start,
                int64_t now_ns);
  // Stops owning `shard` at once. Returns the epoch to send the release
  // for (the one given up now, or one whose release is still to be
  // confirmed), or 0 if there is none.
  uint64_t TakeRelease(uint32_t shard);
  // The release of `epoch` was applied, or refused for good.
  void ReleaseDone(uint32_t shard, uint64_t epoch);
  // Releases given up here and not yet confirmed, as (shard, epoch): the
  // caller sends them again. Until one is applied the cluster still
  // counts the shard as this processor's, and hands it on only at the
  // drain deadline (if acknowledged) or the session's end.
  std::vector<std::pair<uint32_t, uint64_t>> PendingReleases() const;
  // Shards still held whose drain deadline is at or before `now_ns`: the
  // caller releases them.
  std::vector<uint32_t> Due(int64_t now_ns) const;
  // The session is over: nothing is owned any more.
  void DropAll();

 private:
  const std::string me_;
  const uint32_t count_;
  const int64_t drain_ns_;
  // Per shard: the epoch owned here (0: none) and until when.
  std::unique_ptr<std::atomic<uint64_t>[]> epoch_;
  std::unique_ptr<std::atomic<int64_t>[]> until_;
  // One caller at a time:
  std::vector<ShardState> view_;
  std::vector<uint64_t> seen_revoke_;  // the epoch whose revocation was seen
  std::vector<uint64_t> releasing_;    // the epoch whose release is pending
};

}  // namespace quorate::coord

#endif  // QUORATE_COORD_SHARD_VIEW_H_
