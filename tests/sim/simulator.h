// Deterministic simulation of a Quorate cluster: N members running the real
// consensus core in one thread, on simulated time, a simulated network,
// simulated clocks and simulated disks, driven by one seeded generator.
//
// One run: a chaos phase in which a nemesis injects faults (partitions of
// every kind, crashes, disk stalls, message loss, delay, duplication and
// reordering, clock drift, suspended machines, rolling changes of the
// election timeout) while clients write, compare-and-set (transactions)
// and read a replicated key-value register; then a heal phase in which every
// fault is removed and a leader must be elected and a write committed within a
// bound (liveness); then the checks:
//  - the invariants of tests/raft/invariants.h, after every step;
//  - no acknowledged write lost, and no write applied that a member
//    refused before proposing it (not the leader; shed by time): the
//    client sends it again as a new operation, as the driver's answer
//    allows;
//  - the client history is linearizable;
//  - every member runs the partition guard (src/guard/): an active window
//    of term t ends before any member becomes leader in a later term;
//  - simulated processes hold sessions (leases, coord/lease_holder.h)
//    that the leaders keep (coord/lessor.h): no holder's lease is valid
//    by its own clock at a real time after the lease's end was applied,
//    and a dead holder's lease ends within the stated bound;
//  - simulated watchers (coord/watch.h) on every key, served by members'
//    hubs, reading slowly, cut off and resumed on another member when
//    theirs crashes: each gets every revision once, in order, the same
//    events on every member;
//  - the holders campaign for a lock (coord/campaign.h): no two count on
//    it at the same real time, and tokens grow with every new holder;
//  - the holders are processors of a shard group (coord/shard_view.h, the
//    view quorate::ShardGroup keeps): for each shard, no two processors'
//    Owns() are true at the same real time, epochs grow with every new
//    owner, and once the group is left alone every shard has an owner.
// The same options always give the same run: same events, same trace hash.
#ifndef QUORATE_TESTS_SIM_SIMULATOR_H_
#define QUORATE_TESTS_SIM_SIMULATOR_H_

#include <cstdint>
#include <set>
#include <string>
#include <vector>

namespace quorate::sim {

// The faults a nemesis can inject. A scenario is one of them, or "random"
// (any of them, chosen by the seed, several per run).
enum class Fault {
  kSymmetricPartition,  // two groups, cut both ways
  kOneWayPartition,     // a member's outgoing (or incoming) links cut
  kIsolateMember,       // one member cut off both ways
  kIsolateZone,         // every member of one zone cut off
  kRandomHalves,        // members shuffled into two halves
  kMajoritiesRing,      // each member reaches only its ring neighbours
  kBridge,              // two halves joined only through one member
  kSwizzleClog,         // links cut one at a time, healed in random order
  kCrash,               // kill members (losing what was not durable), restart
  kDiskStall,           // a member's writes take a long time
  kNetworkChaos,        // heavy loss, duplication, delay and reordering
  kClockDrift,          // clock rates drawn again within ±rho (or beyond)
  kTransfer,            // the leader hands over to another voter, repeatedly
  kSuspend,             // a member's machine sleeps: nothing runs, its
                        // monotonic clock stops, its boot-time clock runs on
  kTimeoutChange,       // a rolling restart to a new election timeout T
                        // (members on different T cannot talk)
  kLeaderChurn,         // leadership moves every few T for a long while
                        // (leases of dead holders must still expire)
  kMembership,          // a member added at runtime (a learner, joining
                        // from its leader's snapshot, then promoted), or
                        // a voter removed (the leader hands over first;
                        // the removed member runs on a while, then stops)
};
inline constexpr int kFaultCount = 17;
const char* FaultName(Fault fault);
// "random": every fault but kMembership (its seeds predate it, and
// regressions.txt replays them); "membership": every fault, kMembership
// the most often; otherwise one fault by name.
bool ParseScenario(const std::string& name, std::vector<Fault>* faults);

struct SimOptions {
  uint64_t seed = 1;
  int members = 3;
  // The last `learners` of the members are learners (non-voting).
  int learners = 0;
  std::string scenario = "random";
  // Record a readable event trace (the hash is always computed).
  bool trace = false;
  // ρ: bound on clock-rate drift. With drift_beyond_rho, clocks run up to
  // 10ρ off from the start and through every fault until the heal phase,
  // for negative tests (the partition guard's windows assume ρ).
  double rho = 0.01;
  bool drift_beyond_rho = false;
  // One-way message delay outside network-chaos faults: uniform in
  // [min, max], or with "tail", uniform in [min, min + (max - min) / 10]
  // except for tail_ppm of the messages, uniform in the whole range.
  int64_t delay_min_ns = 100'000;
  int64_t delay_max_ns = 2'000'000;
  bool delay_tail = false;
  uint64_t delay_tail_ppm = 10'000;
  // Each member snapshots (and compacts its log) every this many applied
  // entries. Large: logs are never compacted, and a member added at
  // runtime gets the initial configuration's snapshot (index 0) and then
  // the whole log.
  uint64_t snapshot_every = 64;
  // Deliberately broken variants, for showing that checkers can fail.
  bool unsafe_commit_previous_terms = false;   // the core counts old terms
  bool unsafe_forget_vote_on_restart = false;  // storage loses the vote
  bool unsafe_stale_reads = false;     // reads served locally, no ReadIndex
  bool unsafe_ack_on_propose = false;  // writes acknowledged before commit
  // Planted in the shipped driver (node::DriverOptions::Unsafe):
  bool unsafe_answer_before_commit = false;  // answered once durable here
  // Refuses a write as shed (RESOURCE_EXHAUSTED) and proposes it anyway.
  bool unsafe_propose_what_it_sheds = false;
  // The start-up lease (node/startup.h) forgets the last run's longer T.
  bool unsafe_no_startup_lease = false;
  // The state machine runs a transaction's success branch whatever its
  // compares say (coord::KvStore::Unsafe).
  bool unsafe_txn_ignores_compares = false;
  // The partition guard reads the monotonic clock, which stops while the
  // machine sleeps, instead of the boot-time clock.
  bool unsafe_guard_monotonic_clock = false;
  // Sessions (coord/lessor.h, coord/lease_holder.h): the holder counts
  // from the answer instead of the send; the leader answers renewals
  // whatever its quorum round says; no checkpoints (a new leader always
  // gives the full TTL).
  bool unsafe_lease_deadline_from_reply = false;
  bool unsafe_lease_renew_without_round = false;
  bool unsafe_lease_no_checkpoints = false;
  // Watches (coord/watch.h): a catching-up watcher whose buffer is full
  // skips ahead instead of waiting for its client.
  bool unsafe_watch_skip_when_full = false;
  // Locks (coord/campaign.h): a holder counts on the lock until it
  // resigns, whatever its session says.
  bool unsafe_lock_ignores_session = false;
  // A waiter told that it does not lead never asks again (a lost
  // wake-up): the lock liveness check's broken variant.
  bool unsafe_lock_lost_wakeup = false;
  // The election observers are fed a whole watch response at once, as
  // etcd's Observe reads the leader after each batch, instead of each
  // revision: a leader that came and went within one response is skipped.
  bool unsafe_observe_per_response = false;
  // Shard groups (coord/shard_group.h, ShardGroup::Unsafe): planned moves
  // hand a shard over without waiting for its drain; a new owner keeps
  // the old epoch.
  bool unsafe_shard_skip_drain = false;
  bool unsafe_shard_keep_epoch = false;
  // A processor's session end moves none of its shards: a dead holder's
  // shards have no live owner (the liveness check's broken variant).
  bool unsafe_shard_ignore_session_end = false;
  // A member added at runtime takes entries before it has a configuration
  // (raft::Config::Unsafe::join_without_snapshot): it replays the log onto
  // none, and believes itself alone once promoted.
  bool unsafe_join_without_snapshot = false;
  // Each new snapshot restarts the snapshot transfers under way
  // (raft::Config::Unsafe::restart_snapshot_transfers): a new member with
  // a state larger than a snapshot interval's worth never catches up.
  bool unsafe_restart_snapshot_transfers = false;
};

struct SimResult {
  bool safety_ok = true;
  std::string safety_violation;
  bool liveness_ok = true;
  std::string liveness_violation;
  uint64_t trace_hash = 0;
  std::string trace;  // when SimOptions::trace
  int64_t simulated_ns = 0;
  uint64_t events = 0;
  uint64_t operations = 0;         // client operations in the history
  uint64_t acknowledged = 0;       // writes acknowledged to clients
  uint64_t leaders = 0;            // distinct terms with a leader
  uint64_t learner_windows = 0;    // active windows learners held
  uint64_t storage_events = 0;     // torn tails cut off at recovery, etc.
  uint64_t suspends = 0;           // times a member's machine fell asleep
  uint64_t cas_succeeded = 0;      // compare-and-sets (transactions) known
  uint64_t cas_failed = 0;         // to have written, or not
  uint64_t timeout_restarts = 0;   // restarts with a new election timeout
  uint64_t leases_granted = 0;     // to the simulated holders
  uint64_t renewals_answered = 0;  // renewals answered OK to holders
  uint64_t leases_expired = 0;     // expiries applied (first member)
  uint64_t holders_died = 0;       // holders that stopped renewing for good
  uint64_t watch_revisions = 0;    // revisions delivered to watchers
  uint64_t watch_resumes = 0;      // watches resumed on a new stream
  uint64_t watch_cut_off = 0;      // of them, after a cut-off
  uint64_t lock_holds = 0;         // times a holder came to hold the lock
  uint64_t observer_leaders = 0;   // leaders the lock's observers reported
  uint64_t writes_refused = 0;     // attempts refused before the log
  uint64_t writes_shed = 0;        // of them, RESOURCE_EXHAUSTED (shedding)
  uint64_t shard_tenures = 0;      // times a processor came to own a shard
  uint64_t shard_releases = 0;     // releases applied
  uint64_t shard_leaves = 0;       // processors that left and came back
  uint64_t shard_liveness_checked = 0;  // runs quiet long enough to check
  uint64_t lock_liveness_checked = 0;   // the same, for the lock
  uint64_t members_added = 0;           // learners added at runtime
  uint64_t members_promoted = 0;        // of them, promoted to voters
  uint64_t members_removed = 0;         // removals committed
  std::set<std::string> faults;         // fault kinds injected
};

SimResult RunSimulation(const SimOptions& options);

}  // namespace quorate::sim

#endif  // QUORATE_TESTS_SIM_SIMULATOR_H_
