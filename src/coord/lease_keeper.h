// coord/lease_keeper.h: runs a member's Lessor (coord/lessor.h) against
// its node, as the simulator runs it against the driver: the store's
// lease events and the node's role changes feed it; renewals from the
// client API go through it; a thread of its own ticks it (expiries and
// checkpoints, proposed through the node) and starts its rounds
// (Node::Confirm, or a proposal that clears checkpoints). The same tick
// proposes shard groups' drain deadlines (coord/shard_group.h,
// DrainClock): the leader's other timer of the same kind.
//
//   LeaseKeeper keeper(&store, options);        // before the node starts
//   node options: on_role -> keeper.OnRole(role, term)
//   keeper.Start(node);                          // once the node runs
//   keeper.Renew(id, [](const Lessor::Answer& a) { ... });  // any thread
//   keeper.Stop();                               // before the node stops
//
// Threads: Renew and Remaining from any thread; OnRole and the store's
// events on the node's loop; answers are delivered on the loop, the
// keeper's thread or the caller's, never under the keeper's lock.
#ifndef QUORATE_COORD_LEASE_KEEPER_H_
#define QUORATE_COORD_LEASE_KEEPER_H_

#include <cstdint>
#include <functional>
#include <map>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "coord/kv.h"
#include "coord/lessor.h"
#include "node/node.h"
#include "raft/raft.h"
#include "util/clock.h"
#include "util/mutex.h"

namespace quorate::coord {

struct LeaseKeeperOptions {
  LessorOptions lessor;
  // Expiries and checkpoints are looked for when the lessor says one is
  // due, at most this often, and at least every max_scan_gap_ns.
  int64_t tick_ns = 10'000'000;
  int64_t max_scan_gap_ns = 100'000'000;
  // Rounds start at most this often: the renewals that arrive meanwhile
  // share the next one. Fewer rounds cost the leader less CPU; each waits
  // at most this much longer.
  int64_t min_round_spacing_ns = 5'000'000;
  // Deadlines of the keeper's proposals and rounds.
  int64_t round_timeout_ns = 1'000'000'000;
  ClockFn clock = MonotonicNowNs;  // the leader's clock
  std::function<void(const std::string&)> log;
  // A lease ended here (its expiry or revoke applied). Node loop; must
  // not block.
  std::function<void(uint64_t lease)> on_lease_ended;
};

class LeaseKeeper {
 public:
  using AnswerFn = std::function<void(const Lessor::Answer&)>;

  // Subscribes to the store's lease events (before the node applies
  // anything).
  LeaseKeeper(KvStore* store, LeaseKeeperOptions options);
  ~LeaseKeeper();  // Stop()
  LeaseKeeper(const LeaseKeeper&) = delete;
  LeaseKeeper& operator=(const LeaseKeeper&) = delete;

  // The node runs: start ticking. Not owned; outlives Stop().
  void Start(node::Node* node);
  // Answers every waiting renewal UNAVAILABLE and stops ticking.
  // Idempotent.
  void Stop();

  // From the node's on_role (its loop).
  void OnRole(raft::Role role, uint64_t term);

  // A renewal of lease `id`: `done` gets its answer (lease and status;
  // ttl_ms when OK), once.
  void Renew(uint64_t id, AnswerFn done);
  // The leader's view of what is left of lease `id`.
  absl::StatusOr<int64_t> Remaining(uint64_t id);

 private:
  void OnLeaseEvents(const std::vector<LeaseEvent>& events);
  void Run();
  void Tick();
  // Starts the next round, if the lessor has one.
  void DriveRounds();
  // Hands answers to their waiters, outside the lock.
  void Deliver(const std::vector<Lessor::Answer>& answers);
  void Log(const std::string& line) const {
    if (options_.log) options_.log(line);
  }

  const LeaseKeeperOptions options_;
  KvStore* const store_;
  Mutex mu_;
  CondVar wake_;
  Lessor lessor_ ABSL_GUARDED_BY(mu_);
  std::map<uint64_t, AnswerFn> waiters_ ABSL_GUARDED_BY(mu_);  // by cookie
  uint64_t next_cookie_ ABSL_GUARDED_BY(mu_) = 1;
  node::Node* node_ ABSL_GUARDED_BY(mu_) = nullptr;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  int64_t next_round_at_ ABSL_GUARDED_BY(mu_) = 0;
  bool round_wanted_ ABSL_GUARDED_BY(mu_) = false;
  int64_t next_scan_at_ ABSL_GUARDED_BY(mu_) = 0;
  // Shard groups' drain deadlines, proposed from Tick (DrainClock).
  DrainClock drain_clock_ ABSL_GUARDED_BY(mu_);
  std::thread thread_;
};

}  // namespace quorate::coord

#endif  // QUORATE_COORD_LEASE_KEEPER_H_
