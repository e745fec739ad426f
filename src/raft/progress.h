// raft/progress.h: the leader's view of one follower, and membership.
#ifndef QUORATE_RAFT_PROGRESS_H_
#define QUORATE_RAFT_PROGRESS_H_

#include <cstdint>
#include <vector>

#include "wire/raft.pb.h"

namespace quorate::raft {

// Append messages sent to one follower and not yet acknowledged, as a ring
// of (last index in the message, bytes). Bounds both the count and the
// bytes in flight, so a slow follower cannot make the leader queue without
// limit.
class Inflights {
 public:
  Inflights(size_t max_messages, uint64_t max_bytes);

  bool Full() const { return count_ == slots_.size() || bytes_ >= max_bytes_; }
  size_t count() const { return count_; }
  uint64_t bytes() const { return bytes_; }
  // Records a message whose last entry is `index`. Requires !Full() and
  // indexes increasing.
  void Add(uint64_t index, uint64_t bytes);
  // Frees every message whose last index is <= `index` (acknowledged).
  void FreeUpTo(uint64_t index);
  void FreeFirst();
  void Reset();

 private:
  struct Slot {
    uint64_t index = 0;
    uint64_t bytes = 0;
  };
  std::vector<Slot> slots_;
  size_t start_ = 0;
  size_t count_ = 0;
  uint64_t bytes_ = 0;
  uint64_t max_bytes_;
};

struct Progress {
  // How the leader replicates to this member:
  //  kProbe:     one append at a time until the follower's log position is
  //              found; then kReplicate.
  //  kReplicate: appends are pipelined, bounded by `inflights`.
  //  kSnapshot:  the follower needs a snapshot; chunks are sent one at a
  //              time, appends wait.
  enum class State { kProbe, kReplicate, kSnapshot };

  Progress(uint64_t id, bool learner, size_t max_inflight_msgs,
           uint64_t max_inflight_bytes);

  uint64_t id;
  bool learner;
  State state = State::kProbe;
  uint64_t match = 0;  // highest index known to be replicated
  uint64_t next = 1;   // next index to send
  // kProbe: an append is outstanding; wait for its answer or a heartbeat
  // response before probing again.
  bool probe_sent = false;
  // kSnapshot: index of the snapshot being sent, and bytes acknowledged.
  uint64_t snapshot_index = 0;
  uint64_t snapshot_offset = 0;
  int64_t snapshot_sent_ns = 0;  // when the last chunk was sent
  Inflights inflights;
  // Monotonic time the leader last heard from this member (CheckQuorum).
  int64_t last_heard_ns = 0;
  // Highest heartbeat round this member acknowledged in the current term.
  uint64_t acked_round = 0;

  // Accepts an acknowledgement of `index`; returns whether match moved.
  bool MaybeUpdate(uint64_t index);
  // A rejected append for `rejected` with the follower's hint; returns
  // false if the rejection is stale (answers an older message).
  bool MaybeDecrTo(uint64_t rejected, uint64_t hint);
  void BecomeProbe();
  void BecomeReplicate();
  void BecomeSnapshot(uint64_t index);
  bool IsPaused() const;
};

// A configuration: voters and learners, sorted, disjoint.
class Membership {
 public:
  Membership() = default;
  explicit Membership(const ConfState& state);

  const std::vector<uint64_t>& voters() const { return voters_; }
  const std::vector<uint64_t>& learners() const { return learners_; }
  bool IsVoter(uint64_t id) const;
  bool IsLearner(uint64_t id) const;
  bool Contains(uint64_t id) const { return IsVoter(id) || IsLearner(id); }
  size_t Quorum() const { return voters_.size() / 2 + 1; }
  ConfState ToConfState() const;

  // Applies one single-server change; returns false (and changes nothing)
  // if it does not apply to this configuration.
  bool Apply(const ConfChange& change);

  bool operator==(const Membership& other) const = default;

 private:
  std::vector<uint64_t> voters_;
  std::vector<uint64_t> learners_;
};

}  // namespace quorate::raft

#endif  // QUORATE_RAFT_PROGRESS_H_
