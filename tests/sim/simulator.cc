#include "sim/simulator.h"

#include <algorithm>
#include <cmath>
#include <deque>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "chaos/linearizability.h"
#include "coord/campaign.h"
#include "coord/kv.h"
#include "coord/lease_holder.h"
#include "coord/lessor.h"
#include "coord/shard_group.h"
#include "coord/shard_view.h"
#include "coord/watch.h"
#include "guard/guard.h"
#include "node/driver.h"
#include "node/startup.h"
#include "raft/cluster.h"
#include "raft/invariants.h"
#include "raft/raft.h"
#include "raft/random.h"
#include "storage/mem_fs.h"
#include "storage/storage.h"
#include "util/check.h"
#include "wire/peer.pb.h"
#include "wire/raft.pb.h"

namespace quorate::sim {

const char* FaultName(Fault fault) {
  switch (fault) {
    case Fault::kSymmetricPartition:
      return "symmetric";
    case Fault::kOneWayPartition:
      return "one-way";
    case Fault::kIsolateMember:
      return "single";
    case Fault::kIsolateZone:
      return "zone";
    case Fault::kRandomHalves:
      return "halves";
    case Fault::kMajoritiesRing:
      return "ring";
    case Fault::kBridge:
      return "bridge";
    case Fault::kSwizzleClog:
      return "swizzle";
    case Fault::kCrash:
      return "crash";
    case Fault::kDiskStall:
      return "disk-stall";
    case Fault::kNetworkChaos:
      return "network";
    case Fault::kClockDrift:
      return "clock-drift";
    case Fault::kTransfer:
      return "transfer";
    case Fault::kSuspend:
      return "suspend";
    case Fault::kTimeoutChange:
      return "timeout-change";
    case Fault::kLeaderChurn:
      return "leader-churn";
    case Fault::kMembership:
      return "membership";
  }
  return "unknown";
}

bool ParseScenario(const std::string& name, std::vector<Fault>* faults) {
  faults->clear();
  for (int i = 0; i < kFaultCount; ++i) {
    const auto f = static_cast<Fault>(i);
    if ((name == "random" && f != Fault::kMembership) ||
        (name == "membership" && f != Fault::kMembership)) {
      faults->push_back(f);
    }
  }
  if (name == "membership") {
    // As often as all the others together.
    faults->insert(faults->end(), faults->size(), Fault::kMembership);
  }
  if (faults->empty()) {
    for (int i = 0; i < kFaultCount; ++i) {
      const auto f = static_cast<Fault>(i);
      if (name == FaultName(f)) faults->push_back(f);
    }
  }
  return !faults->empty();
}

namespace {

using chaos::CheckLinearizable;
using chaos::LinearizabilityResult;
using chaos::RegisterOp;
using raft::Entry;
using raft::EntryPtr;
using raft::Message;
using raft::ReadState;
using raft::Ready;
using raft::SeededRandom;

constexpr int64_t kMs = 1'000'000;
constexpr int64_t kHeartbeat = 20 * kMs;
constexpr int64_t kT = 100 * kMs;  // minimum election timeout
constexpr int64_t kChaosNs = 40 * kT;
constexpr int64_t kLivenessBoundNs = 10 * kT;
constexpr int64_t kTailNs = 3 * kT;
constexpr int kClients = 3;
constexpr int kWriteAttempts = 3;
constexpr int64_t kAttemptTimeout = 3 * kT;
// SimOptions::snapshot_every's default: snapshots (and their install on a
// lagging member) happen many times per run.
// Few, so that floods (below) are shed by time (node/driver.h, SHEDDING BY
// TIME); the node's default is 1,024.
constexpr size_t kMaxProposalsInLog = 8;
// Floods: now and then during the chaos, a burst of writes to keys of
// their own, with deadlines of a few ms, on one member.
constexpr int64_t kFloodEveryNs = 8 * kT;
constexpr uint64_t kFloodClient = 3000;
// Sessions: simulated processes holding leases.
constexpr int kHolders = 3;
// Members a membership fault may add over a run.
constexpr int kSpares = 3;
constexpr int64_t kLeaseTtlMs = 5 * kT / kMs;
constexpr int64_t kCheckpointNs = kT / 2;  // C
constexpr int64_t kLessorTickNs = 10 * kMs;
// The dead-holder bound: what each leader's tenure may lose besides C (its
// last checkpoint's commit, a tick, a stray renewal), and what the expiry
// itself may take to commit and apply.
constexpr int64_t kLeaseSlackNs = kT;
constexpr int64_t kHolderClientBase = 1000;  // their OpId clients
// The holders campaign for one lock (coord/campaign.h), hold it a while and
// give it up.
const char* const kLockName = "sim";
// The holders are also processors of one shard group (coord/shard_view.h,
// the view quorate::ShardGroup keeps): they join with their sessions, read
// the group's keys every kShardPollNs, drain and release what is revoked
// (or let its drain deadline pass), and some leave and join again.
const char* const kShardGroup = "sim";
constexpr uint32_t kShards = 8;
constexpr uint32_t kShardsInMotion = 2;
constexpr int64_t kShardDrainMs = kT / kMs;
constexpr int64_t kShardPollNs = kT / 2;
// Liveness: with no fault, death, pause, join or leave for this long (and
// a holder in the group), every shard is owned by some holder.
constexpr int64_t kShardSettleNs = 10 * kT;
// And after as long, with a holder whose session is valid (each one keeps
// campaigning), the lock was held at some time in the last kLockGapNs: a
// hand-off takes a waiter's next question (every T, 3 T after a lost
// answer), and a lone holder enters again within 3 T of resigning.
constexpr int64_t kLockGapNs = 5 * kT;
// Watches: watchers on every key, on members' hubs, with small buffers so
// that slow reading makes them wait and be cut off, and a history short
// enough to leave some behind.
constexpr int kWatchers = 2;
constexpr int64_t kWatchTickNs = 5 * kMs;
constexpr size_t kWatchBufferBytes = 2048;
constexpr size_t kWatchHistory = 2000;
const char* const kKeys[] = {"a", "b", "c"};

// The simulator's one generator, with its own distribution code.
class Rng {
 public:
  explicit Rng(uint64_t seed) : r_(seed) {}
  uint64_t Next() { return r_.Next(); }
  uint64_t Uniform(uint64_t n) { return r_.Uniform(n); }
  // Uniform in [lo, hi].
  int64_t Range(int64_t lo, int64_t hi) {
    return lo +
           static_cast<int64_t>(Uniform(static_cast<uint64_t>(hi - lo) + 1));
  }
  // True with probability ppm / 1e6.
  bool Chance(uint64_t ppm) { return Uniform(1'000'000) < ppm; }
  // Uniform in [-1, 1], from 53 random bits.
  double Signed() {
    const double unit = static_cast<double>(Next() >> 11) * 0x1.0p-53;
    return 2 * unit - 1;
  }
  template <typename T>
  void Shuffle(std::vector<T>* v) {
    for (size_t i = v->size(); i > 1; --i) {
      std::swap((*v)[i - 1], (*v)[Uniform(i)]);
    }
  }

 private:
  SeededRandom r_;
};

enum class EventKind {
  kDeliver,
  kTick,
  kDiskDone,
  kRestart,
  kClientNext,
  kClientRetry,
  kClientTimeout,
  kNemesisStart,
  kNemesisStep,
  kNemesisStop,
  kHeal,
  kEnd,
  kRenew,       // the partition guard's renewal, every heartbeat
  kGuardCheck,  // when the guard's window ends or its dwell does
  kTransferStep,
  kResume,        // a suspended member's machine wakes up
  kRecordTiming,  // the start-up lease ended: record the new T
  kLessorTick,    // a member's lessor: expiries, checkpoints
  kHolderWake,    // a holder grants or renews
  kHolderSend,    // a holder's request reaches a member (holder_msgs_)
  kHolderAnswer,  // a member's answer reaches a holder (holder_msgs_)
  kWatchTick,     // the watchers read what their members' hubs queued
  kFlood,         // a burst of writes with short deadlines on one member
  kCatchUpMark,   // membership runs: what every member must apply by the end
};

struct Event {
  EventKind kind;
  int member = -1;
  int client = -1;
  uint64_t gen = 0;
  Message message{};
};

class Simulator;

// What a member's disk has been asked to do, in order: a Ready's write
// (made durable at its completion) or a snapshot to save.
struct DiskOp {
  std::optional<raft::HardState> hard_state;  // a write's, if any
  bool snapshot = false;
  raft::SnapshotMetadata snapshot_metadata;
  std::shared_ptr<const std::string> snapshot_data;
  absl::AnyInvocable<void(absl::Status)> done;
};

// A member's I/O for the driver it runs (node/driver.h): its clock, the
// simulated network, its simulated disk, the invariant checkers.
class MemberIo final : public node::DriverEnv,
                       public node::DriverWriter,
                       public node::DriverObserver {
 public:
  MemberIo(Simulator* sim, uint64_t id) : sim_(sim), id_(id) {}
  int64_t Now() override;
  void Send(std::vector<Message> messages) override;
  // One thread: what the driver posts runs now (only completions post,
  // and they run from events, never inside a driver call).
  void Post(absl::AnyInvocable<void()> fn) override { fn(); }
  void RunInBackground(absl::AnyInvocable<void()> fn) override { fn(); }
  void ScheduleTick(int64_t deadline_ns) override;
  void Write(Request request,
             absl::AnyInvocable<void(absl::Status)> done) override;
  void SaveSnapshot(raft::SnapshotMetadata metadata,
                    std::shared_ptr<const std::string> data,
                    absl::AnyInvocable<void(absl::Status)> done) override;
  void OnStep(const raft::Raft& raft) override;
  void OnApplied(const Entry& entry) override;

 private:
  Simulator* const sim_;
  const uint64_t id_;
};

struct Member {
  uint64_t id = 0;
  int zone = 0;
  bool up = true;
  // In the cluster: false for a spare not added yet (kMembership), and
  // for a member removed and stopped (never started again).
  bool present = true;
  // Added at runtime: it starts with no configuration, and gets one from
  // its leader's snapshot. A spare until it is added.
  bool joiner = false;
  bool spare = false;
  // Its election timeout T (a rolling change moves it); the next boot
  // uses it.
  int64_t t_ns = 0;
  // While its machine sleeps (a suspend fault): until when, what its
  // boot-time clock read when it fell asleep, and the events that reach
  // it meanwhile, run in order when it wakes.
  bool suspended = false;
  uint64_t sleep_gen = 0;
  int64_t asleep_at_boot = 0;
  std::vector<Event> deferred;
  // Bumped at every crash: a boot's pending kRecordTiming is then stale.
  uint64_t boot_gen = 0;
  std::unique_ptr<SeededRandom> random;
  // The member's disk, and the real storage code on it.
  std::unique_ptr<storage::testing::MemFileSystem> fs;
  std::unique_ptr<storage::Storage> storage;
  raft::HardState persisted;  // hard state last made durable
  // Clocks. Boot time (CLOCK_BOOTTIME): local_base + rate * (real -
  // real_base). Monotonic (CLOCK_MONOTONIC, the core's): boot time less
  // mono_lag, the time the machine slept.
  double rate = 1.0;
  int64_t local_base = 0;
  int64_t real_base = 0;
  int64_t mono_lag = 0;
  uint64_t timer_gen = 0;
  int64_t timer_at = -1;
  // The disk's queue; the first is in progress until its kDiskDone.
  std::deque<DiskOp> disk;
  uint64_t disk_gen = 0;
  int64_t stall_until = 0;
  // The shipped driver and state machine, as the node runs them.
  std::unique_ptr<MemberIo> io;
  std::unique_ptr<coord::KvStore> kv;
  std::unique_ptr<node::Driver> driver;
  // The partition guard and the window being held (an index into
  // Simulator::windows_, or -1).
  std::unique_ptr<guard::Guard> guard;
  uint64_t guard_gen = 0;
  int64_t open_window = -1;
  // The pending guard check (like timer_at/timer_gen for the core's).
  int64_t guard_check_at = -1;
  uint64_t guard_check_gen = 0;
  // The leader's side of leases, fed by the store and the driver.
  std::unique_ptr<coord::Lessor> lessor;
  // Watches on its store, as the node serves them.
  std::unique_ptr<coord::WatchHub> hub;
  // The leader's clock for shard drains (coord/lease_keeper.cc's).
  coord::DrainClock drain_clock;
};

// A simulated watcher of every key: a client stream on one member's hub.
struct SimWatcher {
  uint64_t member = 0;  // 0: none (it resumes on its next tick)
  std::shared_ptr<coord::WatchStream> stream;
  int64_t next_id = 0;
  uint64_t last = 0;    // every revision up to here was delivered
  std::string partial;  // a fragmented revision's events so far
  // An election observer of the lock's candidates, as ObserveElection
  // runs it (coord::LeaderWatch), fed each revision's events on the
  // lock's prefix; it stops observing after a gap (its next revision
  // left the history).
  coord::LeaderWatch observer;
  bool observing = true;
  std::vector<client::WatchEvent> lock_events;  // not yet fed to it
  uint64_t last_leader = 0;                     // the last token it reported
  std::set<uint64_t> leaders;                   // every token it reported
};

// A simulated process holding a session: it lives beside member `home`
// (it reaches whom home reaches), on a clock of its own (boot time,
// drifting within rho), and may pause (a GC pause: nothing runs) or die.
struct Holder {
  uint64_t home = 1;
  double rate = 1.0;
  int64_t local_base = 0;
  int64_t real_base = 0;
  bool dead = false;
  int64_t died_at = -1;
  int64_t paused_until = 0;
  uint64_t lease = 0;  // 0: none
  std::optional<coord::LeaseHolder> lh;
  bool granting = false;
  uint64_t grant_seq = 0;
  int64_t grant_sent = 0;  // its clock
  uint64_t hint = 0;       // the member it last heard leads
  uint64_t wake_gen = 0;
  // What fate this lease meets: pause or die at this real time (-1: no).
  int64_t pause_at = -1;
  int64_t die_at = -1;
  uint64_t seq = 0;  // its last OpId.seq (grants and campaign requests)
  // Its campaign for the lock kLockName (coord/campaign.h): out, waiting
  // for an answer, queued behind another holder, or holding it.
  // Resigning: its resignation is not answered yet. It enters again only
  // once it is, or a late resignation could delete the key it entered
  // with again (the same key, the same token) after it read that it leads.
  enum class Lock {
    kOut,
    kAsking,
    kWaiting,
    kHolding,
    kResigning
  } lock = Lock::kOut;
  uint64_t lock_lease = 0;    // the lease it campaigns with
  uint64_t lock_seq = 0;      // the request an answer must match
  int64_t lock_next = 0;      // real time of its next campaign request
  int span = -1;              // lock_spans_ index while holding
  int64_t resign_at = -1;     // real time it gives the lock up, holding
  uint64_t resign_token = 0;  // what it resigns, resigning
  // Its processor in the shard group kShardGroup: out of it, asking to
  // create it (the first to join does), joining, in, leaving, left (and
  // still draining what it owned), with the lease `proc_lease`.
  enum class Proc {
    kOut,
    kCreating,
    kJoining,
    kIn,
    kLeaving,
    kLeft
  } proc = Proc::kOut;
  uint64_t proc_lease = 0;
  uint64_t proc_seq = 0;  // the create, join or leave an answer matches
  int64_t proc_next = 0;  // real time of its next such request
  std::unique_ptr<coord::ShardView> view;
  bool view_started = false;  // a read was applied to it
  uint64_t view_revision = 0;
  uint64_t read_seq = 0;        // the read in flight
  int64_t read_next = 0;        // real time of its next read
  std::vector<int> shard_span;  // per shard: its open ShardSpan, or -1
  // Work it finishes on a revoked shard before releasing it: real time,
  // and the epoch it was revoked at.
  std::map<uint32_t, std::pair<int64_t, uint64_t>> finish_at;
  std::map<uint32_t, int64_t> release_sent;  // real time, per shard
  int64_t leave_at = -1;   // leaves the group then (-1: never)
  int64_t rejoin_at = -1;  // and joins again then
};

// A time a holder held the lock, in real time: from when it learned it
// leads to when it stopped counting on it (it resigned, died, or its
// session's deadline passed).
struct LockSpan {
  int holder = 0;
  uint64_t token = 0;
  uint64_t revision = 0;  // of the read that said it leads
  int64_t start = 0;
  int64_t counted = 0;  // the latest real time it counted on, so far
  int64_t end = -1;     // -1 while open
};

// A time a processor's Owns(shard) was true, in real time: from when its
// view first said so to when it stopped (released, lost, or its session's
// or drain's deadline passed). An open span's `until` is when Owns turns
// false if nothing else happens: the sooner of the two deadlines.
struct ShardSpan {
  int holder = 0;
  uint64_t epoch = 0;
  int64_t start = 0;
  int64_t until = 0;
  int64_t end = -1;  // -1 while open
};

// A holder's request or a member's answer on the way.
struct HolderMsg {
  int holder = 0;
  uint64_t member = 0;
  bool grant = false;  // a grant (else a renewal)
  uint64_t seq = 0;    // grant: OpId.seq
  uint64_t lease = 0;
  uint64_t cookie = 0;
  absl::Status status;  // answers
  int64_t ttl_ms = 0;
  uint64_t leader = 0;  // answers: who the member thinks leads
  // A campaign's transaction (serialized TxnRequest; seq is its OpId.seq),
  // and its answer (a serialized KvResult).
  std::string txn;
  std::string result;
  // A shard group request (a serialized ShardRequest, or a read in `txn`):
  // what it is for, and for a release, which shard and epoch.
  enum class Shards { kNo, kRead, kProc, kAck, kRelease } shards = Shards::kNo;
  std::string shard_request;
  uint32_t shard = 0;
  uint64_t epoch = 0;
};

// What the checkers know of one lease.
struct LeaseRecord {
  int holder = -1;
  int64_t max_deadline = -1;  // the latest real time its holder counted on
  int64_t ended_at = -1;      // when its end was first applied
  int64_t holder_died = -1;   // when its holder stopped for good
};

// A window a member held, in real (simulated) time.
struct GuardWindow {
  uint64_t member = 0;
  uint64_t term = 0;
  int64_t start = 0;
  int64_t end = -1;  // -1 while open
};

struct Client {
  bool active = false;
  RegisterOp op;
  uint64_t op_id = 0;
  uint64_t seq = 0;   // the op's sequence number in the client's session
  uint64_t seqs = 0;  // the last one handed out
  int attempts = 0;   // write attempts that entered some log
  bool maybe_applied = false;
  uint64_t gen = 0;  // invalidates stale timeouts
  uint64_t leader_hint = 0;
  bool liveness = false;  // the heal-phase probe writer
};

class Simulator {
 public:
  explicit Simulator(const SimOptions& o)
      : opt_(o), rng_(o.seed * 0x9e3779b97f4a7c15ULL + 1) {
    ParseScenario(o.scenario, &scenario_);
    QUORATE_CHECK(!scenario_.empty()) << "unknown scenario " << o.scenario;
  }

  SimResult Run();

 private:
  friend class MemberIo;

  // Time and events.
  void Schedule(int64_t at, Event e) {
    queue_.emplace(std::make_pair(at, seq_++), std::move(e));
  }
  void Trace(const std::string& what);
  void Hash(uint64_t v) {
    hash_ ^= v;
    hash_ *= 1099511628211ULL;
  }
  // The member's monotonic clock, which the core and the driver read.
  int64_t LocalNow(const Member& m) const { return BootNow(m) - m.mono_lag; }
  // Its boot-time clock, which keeps counting while the machine sleeps.
  int64_t BootNow(const Member& m) const {
    return m.local_base + static_cast<int64_t>(
                              static_cast<double>(now_ - m.real_base) * m.rate);
  }
  // The clock the partition guard reads: boot time, as the node's does.
  int64_t GuardNow(const Member& m) const {
    return opt_.unsafe_guard_monotonic_clock ? LocalNow(m) : BootNow(m);
  }
  // When (real time, at the earliest now) the member's monotonic clock,
  // boot-time clock or guard's clock reads `local`.
  int64_t RealAt(const Member& m, int64_t local) const {
    return RealAtBoot(m, local + m.mono_lag);
  }
  int64_t RealAtBoot(const Member& m, int64_t local) const;
  int64_t RealAtGuard(const Member& m, int64_t local) const {
    return opt_.unsafe_guard_monotonic_clock ? RealAt(m, local)
                                             : RealAtBoot(m, local);
  }
  void SetRate(Member& m, double rate);

  // Members.
  void Boot(Member& m);
  // The member's disk: starts the first queued operation, completes it.
  void StartDiskOp(Member& m);
  void FinishDiskOp(Member& m);
  void Crash(Member& m);
  void Restart(Member& m);
  void Suspend(Member& m, int64_t duration);
  void Resume(Member& m);
  void Send(Message m);
  void Deliver(Member& m, Message msg);
  Member& member(uint64_t id) { return members_[id - 1]; }
  // The live member that has applied the most (nullptr: none is up).
  const Member* MostAdvanced() const {
    const Member* best = nullptr;
    for (const Member& m : members_) {
      if (m.up &&
          (best == nullptr || m.driver->applied() > best->driver->applied())) {
        best = &m;
      }
    }
    return best;
  }
  std::vector<std::pair<uint64_t, const raft::Raft*>> Live() const;
  void CheckSafety();

  // The partition guard.
  void StartGuard(Member& m);
  void Renew(Member& m);
  void GuardEvaluate(Member& m);
  void ScheduleGuardCheck(Member& m);
  void CloseWindow(Member& m, int64_t end);
  // The last opt_.learners members (ids from 1) are learners.
  bool IsLearner(uint64_t id) const {
    return id > static_cast<uint64_t>(opt_.members - opt_.learners) &&
           id <= static_cast<uint64_t>(opt_.members);
  }
  void CheckWindows();

  // Sessions.
  int64_t HolderNow(const Holder& h) const {
    return h.local_base + static_cast<int64_t>(
                              static_cast<double>(now_ - h.real_base) * h.rate);
  }
  int64_t HolderRealAt(const Holder& h, int64_t local) const {
    return h.real_base +
           static_cast<int64_t>(
               std::ceil(static_cast<double>(local - h.local_base) / h.rate));
  }
  coord::LessorOptions SimLessorOptions() const;
  void StartLessor(Member& m);
  void LessorTick(Member& m);
  void DriveLessor(Member& m);
  void LeaseEvents(Member& m, const std::vector<coord::LeaseEvent>& events);
  void RouteAnswers(Member& m, const std::vector<coord::Lessor::Answer>& a);
  void HolderWake(int h);
  void HolderSend(int h, HolderMsg msg);
  void HolderArrive(HolderMsg msg);
  void HolderAnswer(HolderMsg msg);
  void ToHolder(HolderMsg msg);
  bool Reaches(uint64_t from, uint64_t to) const {
    return from == to || cuts_.count({from, to}) == 0;
  }
  void CheckLease(uint64_t lease);
  void CheckDeadHolders();
  // The lock: a holder's next campaign step (returns when to wake for
  // it), an answer to its campaign, the end of a span, the check.
  int64_t LockStep(int h);
  void LockAnswer(int h, const HolderMsg& msg);
  void SendCampaign(int h, const client::TxnRequest& txn);
  void CloseSpan(Holder& x, int64_t end);
  void CheckLockSpans();
  // The shard group: a holder's next step as a processor (returns when to
  // wake for it), its requests and their answers, its spans, the checks.
  int64_t ShardStep(int h);
  void SendShards(int h, HolderMsg::Shards what, client::ShardRequest req);
  void SendShardRead(int h);
  void SendRelease(int h, uint32_t shard, uint64_t epoch);
  void ShardAnswer(int h, const HolderMsg& msg);
  void EndProcessor(Holder& x);
  void TrackShards(int h);
  void CheckShardSpan(uint32_t shard, size_t b);
  void CheckShardLiveness();
  void CheckLockLiveness();
  // Since when nothing disturbed the holders: no fault, no holder dying,
  // pausing, joining or leaving, no new leader.
  int64_t QuietSince() const;
  void ShardsDisturbed() { shards_disturbed_at_ = now_; }
  // A burst of writes (shedding): those refused must never be applied.
  void Flood();
  // Watches.
  void WatchTick();
  // A response on watcher `w`'s stream: false once the stream is done.
  bool WatchResponse(SimWatcher& w, const client::WatchResponse& r);
  // Feeds the observer what it has not seen yet, and checks its report.
  void Observe(SimWatcher& w);
  void CheckObservers();
  void WatchViolation(const std::string& what);

  // Clients.
  void ClientNext(int c);
  void Submit(int c);
  void ClientTimeout(int c);
  void Finish(int c, bool known, int64_t ret);
  void Retry(int c, int64_t delay);
  Member* PickTarget(Client& cl);

  // Nemesis.
  void StartFault();
  void StepFault();
  void StopFault();
  void HealAll();
  void Cut(uint64_t from, uint64_t to) { cuts_.insert({from, to}); }
  void CutBoth(uint64_t a, uint64_t b) {
    Cut(a, b);
    Cut(b, a);
  }
  void Split(const std::vector<uint64_t>& a, const std::vector<uint64_t>& b) {
    for (uint64_t x : a) {
      for (uint64_t y : b) CutBoth(x, y);
    }
  }
  // The members in the cluster (not spares, not removed ones).
  std::vector<uint64_t> Ids() const {
    std::vector<uint64_t> ids;
    for (const Member& m : members_) {
      if (m.present) ids.push_back(m.id);
    }
    return ids;
  }
  // Runtime membership (Fault::kMembership).
  void MembershipStep();
  // Proposes `type` of member `id` at `leader`; `done` runs if it is
  // applied there.
  void ProposeMembership(Member& leader, raft::ConfChangeType type, uint64_t id,
                         std::function<void()> done = nullptr);
  Member* Leader() {
    for (Member& m : members_) {
      if (m.up && !m.suspended &&
          m.driver->raft().role() == raft::Role::kLeader) {
        return &m;
      }
    }
    return nullptr;
  }

  const SimOptions opt_;
  std::vector<Fault> scenario_;
  Rng rng_;
  int64_t now_ = 0;
  uint64_t seq_ = 0;
  std::map<std::pair<int64_t, uint64_t>, Event> queue_;
  std::vector<Member> members_;
  std::vector<Client> clients_;
  std::set<std::pair<uint64_t, uint64_t>> cuts_;
  raft::testing::Invariants invariants_;
  // The members a new member's bootstrap snapshot lists.
  std::vector<peer::MemberInfo> initial_voters_;
  std::vector<peer::MemberInfo> initial_learners_;
  std::vector<RegisterOp> history_;
  // Acknowledged writes: op id -> the KV store's id for it.
  std::map<uint64_t, client::OpId> acknowledged_;
  // Write attempts refused before they were proposed (the KV store's ids).
  std::vector<client::OpId> refused_;
  Rng frng_{0};  // the floods' own generator
  uint64_t flood_seq_ = 0;
  uint64_t next_op_id_ = 1;
  uint64_t hash_ = 1469598103934665603ULL;
  SimResult result_;
  bool healed_ = false;
  int64_t heal_at_ = 0;
  int64_t liveness_acked_at_ = -1;
  uint64_t events_since_check_ = 0;
  // Network faults.
  bool net_chaos_ = false;
  uint64_t drop_ppm_ = 0;
  uint64_t dup_ppm_ = 0;
  uint64_t slow_ppm_ = 0;
  // The fault in progress.
  std::optional<Fault> fault_;
  std::vector<std::pair<uint64_t, uint64_t>> swizzle_todo_;
  std::vector<std::pair<uint64_t, uint64_t>> swizzle_cut_;
  bool swizzle_healing_ = false;
  // A rolling change of T: the cluster's T, and the members still to
  // restart with it.
  int64_t cluster_t_ = kT;
  std::vector<uint64_t> roll_todo_;
  // A membership change in progress: a spare being added (`grow`: added
  // as a learner, booted, promoted once caught up) or a voter removed
  // (phase 0: proposing, the leader handing over first if it is the
  // target; 1: committed; 2: it runs on until stop_at, then stops).
  struct MembershipPlan {
    bool grow = false;
    uint64_t target = 0;  // 0: nothing to do
    int phase = 0;
    int64_t deadline = 0;
    int64_t stop_at = 0;
  };
  MembershipPlan plan_;
  // Membership runs: the highest commit index at heal + the liveness
  // bound; every member of the configuration must have applied it by the
  // end (a member added at runtime included: it must not stay stuck).
  int64_t catchup_target_ = -1;
  // During a crash fault: crash the next member that makes a new vote
  // durable, right after the write (a targeted fault for vote durability).
  bool crash_after_vote_ = false;
  // The partition guard's windows, and when each term got its leader.
  std::vector<GuardWindow> windows_;
  std::map<uint64_t, int64_t> leader_at_;
  // The value each key was last seen to hold by a client (for the
  // compare-and-sets clients make).
  std::map<std::string, std::string> last_seen_;
  // Sessions: their own generator (so that adding them did not change the
  // other draws), the holders, messages in flight, what each lease did.
  Rng hrng_{0};
  std::vector<Holder> holders_;
  std::map<uint64_t, HolderMsg> holder_msgs_;
  std::vector<LockSpan> lock_spans_;
  const std::string lock_prefix_ =
      *coord::CampaignPrefix(coord::CampaignKind::kLock, kLockName);
  uint64_t next_holder_msg_ = 1;
  std::map<uint64_t, LeaseRecord> leases_;
  // The shard group: its own generator, every shard's spans, and the last
  // time anything disturbed the group (for the liveness check).
  Rng srng_{0};
  std::vector<std::vector<ShardSpan>> shard_spans_;
  const std::string shard_prefix_ = *coord::ShardGroupPrefix(kShardGroup);
  int64_t shards_disturbed_at_ = 0;
  // Watches: their own generator, the watchers, and each revision's events
  // (serialized) as first delivered, to compare every delivery with.
  Rng wrng_{0};
  std::vector<SimWatcher> watchers_;
  std::map<uint64_t, std::string> revision_events_;
  // Per term: its leader's election and last commit, on the leader's own
  // monotonic clock (the lessor's), and the election in real time.
  struct Tenure {
    uint64_t leader = 0;
    int64_t elected_real = 0;
    int64_t elected_local = 0;
    int64_t last_commit_local = -1;
    int64_t last_commit_real = -1;
  };
  std::map<uint64_t, Tenure> tenures_;
};

guard::GuardOptions SimGuardOptions(double rho, int64_t election_timeout_ns) {
  guard::GuardOptions g;
  g.election_timeout_ns = election_timeout_ns;
  g.max_clock_drift = rho;
  g.margin_ns = 0;  // nothing acts here: the bare bound is what is checked
  g.dwell_ns = 2 * kHeartbeat;
  return g;
}

void Simulator::Trace(const std::string& what) {
  if (opt_.trace) absl::StrAppend(&result_.trace, now_, " ", what, "\n");
}

int64_t Simulator::RealAtBoot(const Member& m, int64_t local) const {
  if (local <= BootNow(m)) return now_;
  int64_t t =
      m.real_base + static_cast<int64_t>(std::ceil(
                        static_cast<double>(local - m.local_base) / m.rate));
  t = std::max(t, now_);
  // Rounding may land one nanosecond early.
  while (m.local_base + static_cast<int64_t>(
                            static_cast<double>(t - m.real_base) * m.rate) <
         local) {
    ++t;
  }
  return t;
}

void Simulator::SetRate(Member& m, double rate) {
  m.local_base = BootNow(m);
  m.real_base = now_;
  m.rate = rate;
  Trace(absl::StrCat("clock ", m.id, " rate ", rate));
  if (m.up) {
    ++m.guard_gen;  // its timers were set on the old rate
    ++m.guard_check_gen;
    m.guard_check_at = -1;
    Schedule(now_,
             Event{EventKind::kRenew, static_cast<int>(m.id), -1, m.guard_gen});
  }
}

// ---------------------------------------------------------------------------
// The partition guard: each member renews a window every heartbeat through
// ReadIndex, as src/guard/partition_guard.cc does through the node, on its
// own (drifting) clock. Windows are recorded in real time and checked
// against the moments later terms got their leaders.

void Simulator::StartGuard(Member& m) {
  m.guard = std::make_unique<guard::Guard>(SimGuardOptions(opt_.rho, m.t_ns),
                                           GuardNow(m));
  m.open_window = -1;
  Schedule(now_,
           Event{EventKind::kRenew, static_cast<int>(m.id), -1, ++m.guard_gen});
}

void Simulator::Renew(Member& m) {
  // Callers that waited past their deadline are answered (as the node's
  // sweep does); the clients have given up on them already.
  m.driver->ExpireWaiting(LocalNow(m));
  const uint64_t gid = m.guard->RenewalSent(GuardNow(m));
  // The driver answers a confirmation without waiting for this member's
  // disk, as in the node; a crash drops the driver and the callback with it.
  m.driver->Confirm(LocalNow(m) + m.t_ns, [this, &m, gid](
                                              absl::StatusOr<node::Confirmation>
                                                  c) {
    if (c.ok()) {
      m.guard->Confirmed(gid, c->term, guard::Token{c->term, c->term_start});
    } else {
      m.guard->Failed(gid);
    }
    GuardEvaluate(m);
  });
  GuardEvaluate(m);
  Schedule(RealAt(m, LocalNow(m) + kHeartbeat),
           Event{EventKind::kRenew, static_cast<int>(m.id), -1, m.guard_gen});
}

void Simulator::GuardEvaluate(Member& m) {
  while (std::optional<guard::Transition> t = m.guard->Evaluate(GuardNow(m))) {
    if (t->active) {
      m.open_window = static_cast<int64_t>(windows_.size());
      windows_.push_back(GuardWindow{m.id, t->term, now_, -1});
      Trace(absl::StrCat("guard ", m.id, " active term ", t->term));
    } else {
      // Its real end: when the guard's clock read the deadline.
      const int64_t local = GuardNow(m);
      const int64_t end =
          t->active_until_ns > local
              ? RealAtGuard(m, t->active_until_ns)
              : now_ - static_cast<int64_t>(
                           static_cast<double>(local - t->active_until_ns) /
                           m.rate);
      CloseWindow(m, end);
      Trace(absl::StrCat("guard ", m.id, " paused: ", t->reason));
    }
  }
  ScheduleGuardCheck(m);
}

void Simulator::ScheduleGuardCheck(Member& m) {
  if (!m.up || m.guard == nullptr) return;
  const int64_t next = m.guard->NextCheck();
  if (next == INT64_MAX) return;
  const int64_t at = std::max(now_, RealAtGuard(m, next));
  if (at == m.guard_check_at) return;
  m.guard_check_at = at;
  Schedule(at, Event{EventKind::kGuardCheck, static_cast<int>(m.id), -1,
                     ++m.guard_check_gen});
}

void Simulator::CloseWindow(Member& m, int64_t end) {
  if (m.open_window < 0) return;
  windows_[static_cast<size_t>(m.open_window)].end = end;
  m.open_window = -1;
}

void Simulator::CheckWindows() {
  for (const GuardWindow& w : windows_) {
    for (auto it = leader_at_.upper_bound(w.term); it != leader_at_.end();
         ++it) {
      if (w.end > it->second && result_.safety_ok) {
        result_.safety_ok = false;
        result_.safety_violation = absl::StrCat(
            "partition guard: member ", w.member, "'s window of term ", w.term,
            " lasted until ", w.end, " ns, but term ", it->first,
            " had a leader at ", it->second, " ns");
      }
    }
  }
}

// ---------------------------------------------------------------------------
// Members.

void Simulator::Boot(Member& m) {
  m.random = std::make_unique<SeededRandom>(rng_.Next());
  raft::Config c;
  c.id = m.id;
  c.random = m.random.get();
  c.heartbeat_interval_ns = kHeartbeat;
  c.election_timeout_ns = m.t_ns;
  c.commit_notify_delay_ns = kMs;  // as the node runs it
  c.snapshot_chunk_bytes = 256;
  c.unsafe.commit_previous_terms = opt_.unsafe_commit_previous_terms;
  c.unsafe.join_without_snapshot = opt_.unsafe_join_without_snapshot;
  c.unsafe.restart_snapshot_transfers = opt_.unsafe_restart_snapshot_transfers;
  storage::StorageOptions so;
  so.dir = "/data";
  so.fs = m.fs.get();
  so.segment_bytes = 16 << 10;  // small: segments roll over often
  so.cluster_id = "sim";
  so.prepare_segments_ahead = false;  // one thread only
  so.log = [this, id = m.id](const std::string& what) {
    ++result_.storage_events;
    Trace(absl::StrCat("storage ", id, ": ", what));
  };
  raft::RestoredState restored;
  auto st = storage::Storage::Open(so, &restored);
  QUORATE_CHECK(st.ok()) << "member " << m.id << ": " << st.status();
  m.storage = *std::move(st);
  if (restored.snapshot.index() == 0 && !restored.snapshot.has_conf_state() &&
      !m.joiner) {
    // A new member: the initial configuration is a snapshot at index 0,
    // as the node writes it. (One added at runtime gets it from its
    // leader, as quorate-node --join does.)
    const node::Bootstrap b =
        node::MakeBootstrap(initial_voters_, initial_learners_);
    QUORATE_CHECK(m.storage->SaveSnapshot(b.metadata, *b.data).ok());
    restored.snapshot = b.metadata;
    restored.snapshot_data = b.data;
  }
  // The start-up lease, as the node keeps it (node/startup.h).
  absl::StatusOr<node::StartupLease> lease =
      node::PrepareStartupLease(*m.storage, m.t_ns);
  QUORATE_CHECK(lease.ok()) << lease.status();
  c.startup_lease_ns = opt_.unsafe_no_startup_lease ? 0 : lease->lease_ns;
  if (lease->record_after_ns > 0) {
    Schedule(RealAt(m, LocalNow(m) + lease->record_after_ns),
             Event{EventKind::kRecordTiming, static_cast<int>(m.id), -1,
                   m.boot_gen});
  }
  if (opt_.unsafe_forget_vote_on_restart) restored.hard_state.set_vote(0);
  m.persisted = restored.hard_state;
  m.io = std::make_unique<MemberIo>(this, m.id);
  m.kv = std::make_unique<coord::KvStore>(coord::KvStore::Unsafe{
      opt_.unsafe_txn_ignores_compares,
      coord::ShardGroup::Unsafe{opt_.unsafe_shard_skip_drain,
                                opt_.unsafe_shard_keep_epoch,
                                opt_.unsafe_shard_ignore_session_end}});
  m.kv->SetHistoryWindow(kWatchHistory);
  {
    coord::WatchLimits limits;
    limits.buffer_bytes = kWatchBufferBytes;
    limits.unsafe_skip_when_full = opt_.unsafe_watch_skip_when_full;
    m.hub = std::make_unique<coord::WatchHub>(m.kv.get(), limits);
  }
  StartLessor(m);
  node::DriverOptions d;
  d.snapshot_every = opt_.snapshot_every;
  d.state_machine = m.kv.get();
  // Fresh ids for each incarnation, as the node draws them.
  d.first_read_id = (rng_.Next() >> 2) | 1;
  d.on_role = [this, id = m.id](raft::Role role, uint64_t term) {
    Member& mm = member(id);
    Trace(
        absl::StrCat("role ", id, " ", static_cast<int>(role), " term ", term));
    if (role == raft::Role::kLeader) {
      leader_at_.emplace(term, now_);
      tenures_[term] = Tenure{id, now_, LocalNow(mm), -1, -1};
      mm.lessor->BecomeLeader(term, LocalNow(mm));
    } else if (mm.lessor->leader()) {
      RouteAnswers(mm, mm.lessor->StepDown());
    }
  };
  d.log = [this, id = m.id](const std::string& what) {
    Trace(absl::StrCat("driver ", id, ": ", what));
  };
  d.unsafe.answer_before_commit = opt_.unsafe_answer_before_commit;
  d.unsafe.propose_what_it_sheds = opt_.unsafe_propose_what_it_sheds;
  d.max_proposals_in_log = kMaxProposalsInLog;
  auto driver = node::Driver::Create(c, std::move(d), std::move(restored),
                                     m.io.get(), m.io.get(), m.io.get());
  QUORATE_CHECK(driver.ok()) << driver.status();
  m.driver = *std::move(driver);
  m.up = true;
  StartGuard(m);
}

// ---------------------------------------------------------------------------
// A member's I/O.

int64_t MemberIo::Now() { return sim_->LocalNow(sim_->member(id_)); }

void MemberIo::Send(std::vector<Message> messages) {
  for (Message& m : messages) sim_->Send(std::move(m));
}

void MemberIo::ScheduleTick(int64_t deadline_ns) {
  Member& m = sim_->member(id_);
  if (deadline_ns == std::numeric_limits<int64_t>::max()) return;
  const int64_t at = sim_->RealAt(m, deadline_ns);
  if (at == m.timer_at) return;
  m.timer_at = at;
  sim_->Schedule(
      at,
      Event{EventKind::kTick, static_cast<int>(id_), -1, ++m.timer_gen, {}});
}

void MemberIo::Write(Request request,
                     absl::AnyInvocable<void(absl::Status)> done) {
  Member& m = sim_->member(id_);
  // The writes reach the file system now; the sync completes later:
  // short, unless the disk is stalled. A crash in between may tear them.
  QUORATE_CHECK(
      m.storage->Write(request.snapshot, request.entries, request.hard_state)
          .ok());
  QUORATE_CHECK(m.storage->Flush().ok());
  DiskOp op;
  op.hard_state = std::move(request.hard_state);
  op.done = std::move(done);
  m.disk.push_back(std::move(op));
  if (m.disk.size() == 1) sim_->StartDiskOp(m);
}

void MemberIo::SaveSnapshot(raft::SnapshotMetadata metadata,
                            std::shared_ptr<const std::string> data,
                            absl::AnyInvocable<void(absl::Status)> done) {
  Member& m = sim_->member(id_);
  DiskOp op;
  op.snapshot = true;
  op.snapshot_metadata = std::move(metadata);
  op.snapshot_data = std::move(data);
  op.done = std::move(done);
  m.disk.push_back(std::move(op));
  if (m.disk.size() == 1) sim_->StartDiskOp(m);
}

void MemberIo::OnStep(const raft::Raft& raft) {
  sim_->invariants_.Observe(id_, raft);
}

void MemberIo::OnApplied(const Entry& entry) {
  Member& m = sim_->member(id_);
  sim_->invariants_.OnApplied(id_, entry, m.driver->raft().term());
  // The leader of the entry's term applies it when it commits: the end of
  // that leader's effective tenure so far, on its own clock.
  // (Not a restarted leader applying its old term's entries again.)
  auto t = sim_->tenures_.find(entry.term());
  if (t != sim_->tenures_.end() && t->second.leader == id_ &&
      m.driver->raft().role() == raft::Role::kLeader &&
      m.driver->raft().term() == entry.term()) {
    t->second.last_commit_local = sim_->LocalNow(m);
    t->second.last_commit_real = sim_->now_;
  }
}

void Simulator::StartDiskOp(Member& m) {
  int64_t done = now_ + rng_.Range(50'000, 500'000);
  done = std::max(done, m.stall_until);
  Schedule(
      done,
      Event{
          EventKind::kDiskDone, static_cast<int>(m.id), -1, ++m.disk_gen, {}});
}

void Simulator::FinishDiskOp(Member& m) {
  DiskOp op = std::move(m.disk.front());
  m.disk.pop_front();
  if (op.snapshot) {
    const raft::SnapshotMetadata& md = op.snapshot_metadata;
    QUORATE_CHECK(m.storage->SaveSnapshot(md, *op.snapshot_data).ok());
    QUORATE_CHECK(m.storage->Compact(md.index()).ok());
    Trace(absl::StrCat("compact ", m.id, " at ", md.index()));
  } else {
    QUORATE_CHECK(m.storage->Sync().ok()) << m.storage->error();
    if (op.hard_state.has_value()) {
      const raft::HardState before = m.persisted;
      m.persisted = *op.hard_state;
      invariants_.OnPersisted(m.id, m.persisted);
      if (crash_after_vote_ && m.persisted.vote() != 0 &&
          (before.vote() != m.persisted.vote() ||
           before.term() != m.persisted.term())) {
        // Right after the vote became durable, before anything else.
        crash_after_vote_ = false;
        Crash(m);
        Schedule(now_ + rng_.Range(kMs, kT),
                 Event{EventKind::kRestart, static_cast<int>(m.id)});
        return;
      }
    }
  }
  if (!m.disk.empty()) StartDiskOp(m);
  op.done(absl::OkStatus());
}

void Simulator::Send(Message msg) {
  const uint64_t from = msg.from();
  const uint64_t to = msg.to();
  Hash(static_cast<uint64_t>(now_));
  Hash(from << 8 | to);
  Hash(static_cast<uint64_t>(msg.type()) << 32 | msg.term());
  if (cuts_.count({from, to}) > 0) return;
  // Members on different election timeouts refuse each other's streams
  // (the transport's Hello check).
  if (member(from).t_ns != member(to).t_ns) return;
  if (net_chaos_ && rng_.Chance(drop_ppm_)) return;
  auto delay = [&] {
    if (net_chaos_ && rng_.Chance(slow_ppm_)) {
      return rng_.Range(5 * kMs, 60 * kMs);
    }
    const int64_t lo = opt_.delay_min_ns;
    const int64_t hi = opt_.delay_max_ns;
    if (opt_.delay_tail && !rng_.Chance(opt_.delay_tail_ppm)) {
      return rng_.Range(lo, lo + (hi - lo) / 10);
    }
    return rng_.Range(lo, hi);
  };
  if (net_chaos_ && rng_.Chance(dup_ppm_)) {
    Schedule(now_ + delay(),
             Event{EventKind::kDeliver, static_cast<int>(to), -1, 0, msg});
  }
  Schedule(now_ + delay(), Event{EventKind::kDeliver, static_cast<int>(to), -1,
                                 0, std::move(msg)});
}

void Simulator::Deliver(Member& m, Message msg) {
  if (!m.up) return;
  // The transport accepts streams only from the members its member must
  // talk to (node::Driver::members()): those of its configuration, of the
  // committed one, and its leader; and, until it is in its configuration
  // itself (a member added at runtime), those it joined through: here
  // anyone.
  const raft::Raft& r = m.driver->raft();
  if (r.Configured() && r.membership().Contains(m.id) &&
      !r.membership().Contains(msg.from()) &&
      !r.committed_membership().Contains(msg.from()) &&
      msg.from() != r.leader()) {
    return;
  }
  if (opt_.trace) {
    Trace(absl::StrCat("deliver ", raft::testing::Describe(msg)));
  }
  std::vector<Message> batch;
  batch.push_back(std::move(msg));
  const absl::Status s = m.driver->Step(std::move(batch));
  // The core refuses a message that contradicts its state (a second leader
  // in its term, an acknowledgement of entries it never sent): the sender
  // broke an invariant.
  if (!s.ok() && result_.safety_ok) {
    result_.safety_ok = false;
    result_.safety_violation =
        absl::StrCat("member ", m.id, " refused a message: ", s.message());
  }
}

void Simulator::Crash(Member& m) {
  if (!m.up) return;
  Trace(absl::StrCat("crash ", m.id));
  QUORATE_CHECK(!m.suspended) << "a sleeping machine's process cannot crash";
  ++m.boot_gen;
  // A dead process holds no window from now on.
  CloseWindow(m, now_);
  m.guard.reset();
  ++m.guard_gen;
  ++m.guard_check_gen;
  m.guard_check_at = -1;
  m.up = false;
  // Whatever waited on the driver dies with it, unanswered.
  m.driver.reset();
  m.lessor.reset();
  // Its watchers' streams break: they resume elsewhere.
  for (SimWatcher& w : watchers_) {
    if (w.member == m.id) {
      w.stream.reset();
      w.member = 0;
    }
  }
  m.hub.reset();
  m.kv.reset();
  m.io.reset();
  m.disk.clear();  // never made durable: lost, or torn
  m.storage.reset();
  m.fs->CrashTorn([this](uint64_t n) { return rng_.Uniform(n + 1); });
  ++m.timer_gen;
  ++m.disk_gen;
  m.timer_at = -1;
}

void Simulator::Restart(Member& m) {
  if (m.up || !m.present) return;
  Trace(absl::StrCat("restart ", m.id));
  Boot(m);
  invariants_.OnRestart(m.id, m.driver->raft());
  m.driver->Drive();
}

void Simulator::Suspend(Member& m, int64_t duration) {
  if (!m.up || m.suspended) return;
  Trace(absl::StrCat("suspend ", m.id, " for ", duration / kMs, "ms"));
  m.suspended = true;
  ++result_.suspends;
  m.asleep_at_boot = BootNow(m);
  Schedule(now_ + duration, Event{EventKind::kResume, static_cast<int>(m.id),
                                  -1, ++m.sleep_gen});
}

void Simulator::Resume(Member& m) {
  if (!m.suspended) return;
  m.suspended = false;
  // The monotonic clock stood still while the machine slept.
  m.mono_lag += BootNow(m) - m.asleep_at_boot;
  Trace(absl::StrCat("resume ", m.id, " (", m.deferred.size(),
                     " events waited)"));
  for (Event& e : m.deferred) Schedule(now_, std::move(e));
  m.deferred.clear();
}

std::vector<std::pair<uint64_t, const raft::Raft*>> Simulator::Live() const {
  std::vector<std::pair<uint64_t, const raft::Raft*>> live;
  for (const Member& m : members_) {
    if (m.up) live.emplace_back(m.id, &m.driver->raft());
  }
  return live;
}

void Simulator::CheckSafety() {
  invariants_.CheckLogs(Live());
  if (!invariants_.ok() && result_.safety_ok) {
    result_.safety_ok = false;
    result_.safety_violation = invariants_.violation();
  }
}

// ---------------------------------------------------------------------------
// Clients.

Member* Simulator::PickTarget(Client& cl) {
  // A sleeping member's machine does not answer: like a dead one, here.
  if (cl.leader_hint != 0 && member(cl.leader_hint).up &&
      !member(cl.leader_hint).suspended) {
    return &member(cl.leader_hint);
  }
  std::vector<Member*> up;
  for (Member& m : members_) {
    if (m.up && !m.suspended) up.push_back(&m);
  }
  if (up.empty()) return nullptr;
  return up[rng_.Uniform(up.size())];
}

// ---------------------------------------------------------------------------
// Sessions. Every member runs the shipped Lessor against its driver, as
// coord/lease_service.cc does against the node; holders run the shipped
// LeaseHolder on their own clocks. The checkers compare, in real time, the
// deadline each holder counted on with when its lease's end was applied.

coord::LessorOptions Simulator::SimLessorOptions() const {
  coord::LessorOptions o;
  o.checkpoint_interval_ns = kCheckpointNs;
  o.unsafe.renew_without_round = opt_.unsafe_lease_renew_without_round;
  o.unsafe.no_checkpoints = opt_.unsafe_lease_no_checkpoints;
  return o;
}

void Simulator::StartLessor(Member& m) {
  m.lessor = std::make_unique<coord::Lessor>(SimLessorOptions());
  m.drain_clock.Reset();
  m.kv->SetLeaseListener(
      [this, id = m.id](const std::vector<coord::LeaseEvent>& e) {
        LeaseEvents(member(id), e);
      });
  Schedule(now_ + kLessorTickNs, Event{EventKind::kLessorTick,
                                       static_cast<int>(m.id), -1, m.boot_gen});
}

void Simulator::LeaseEvents(Member& m,
                            const std::vector<coord::LeaseEvent>& events) {
  if (m.lessor == nullptr) return;
  m.lessor->OnLeaseEvents(events, LocalNow(m));
  for (const coord::LeaseEvent& e : events) {
    if (e.kind != coord::LeaseEvent::Kind::kRemoved) continue;
    LeaseRecord& r = leases_[e.id];
    if (r.ended_at < 0) {
      r.ended_at = now_;
      ++result_.leases_expired;
      Trace(absl::StrCat("lease ", e.id, " ended on ", m.id));
      CheckLease(e.id);
    }
  }
}

void Simulator::LessorTick(Member& m) {
  Schedule(
      RealAt(m, LocalNow(m) + kLessorTickNs),
      Event{EventKind::kLessorTick, static_cast<int>(m.id), -1, m.boot_gen});
  coord::Lessor& l = *m.lessor;
  if (!l.leader()) {
    m.drain_clock.Reset();
    return;
  }
  const int64_t deadline = LocalNow(m) + 3 * kT;
  const uint64_t boot = m.boot_gen;
  for (const coord::DrainingShard& d :
       m.drain_clock.Scan(m.kv->DrainingShards(), LocalNow(m))) {
    Trace(absl::StrCat("leader ", m.id, " drain of shard ", d.shard, " epoch ",
                       d.epoch, " expired"));
    m.driver->Propose(coord::DrainExpiredCommand(d).SerializeAsString(),
                      deadline, [](absl::StatusOr<node::Applied>) {});
  }
  std::vector<uint64_t> expired = l.TakeExpired(LocalNow(m));
  if (!expired.empty()) {
    Trace(absl::StrCat("lessor ", m.id, " term ", l.term(), " expires ",
                       absl::StrJoin(expired, ",")));
    m.driver->Propose(
        coord::ExpiryCommand(expired).SerializeAsString(), deadline,
        [this, id = m.id, boot, expired](absl::StatusOr<node::Applied> a) {
          Member& mm = member(id);
          if (mm.up && mm.boot_gen == boot) {
            mm.lessor->ExpiryDone(expired, a.ok());
          }
        });
  }
  coord::Lessor::Checkpoint cp = l.TakeCheckpoints(LocalNow(m));
  if (!cp.ids.empty()) {
    m.driver->Propose(
        coord::CheckpointCommand(cp).SerializeAsString(), deadline,
        [this, id = m.id, boot, ids = cp.ids](absl::StatusOr<node::Applied>) {
          Member& mm = member(id);
          if (mm.up && mm.boot_gen == boot) {
            mm.lessor->CheckpointDone(ids);
          }
        });
  }
  DriveLessor(m);
}

void Simulator::DriveLessor(Member& m) {
  std::optional<coord::Lessor::Round> round = m.lessor->TakeRound();
  if (!round.has_value()) return;
  const uint64_t boot = m.boot_gen;
  const uint64_t term = m.lessor->term();
  auto done = [this, id = m.id, boot,
               rid = round->id](absl::StatusOr<node::Confirmation> c) {
    Member& mm = member(id);
    if (!mm.up || mm.boot_gen != boot) return;
    RouteAnswers(mm, mm.lessor->RoundDone(rid, c));
    DriveLessor(mm);
  };
  const int64_t deadline = LocalNow(m) + m.t_ns;
  if (round->clear.empty()) {
    m.driver->Confirm(deadline, std::move(done));
    return;
  }
  m.driver->Propose(
      coord::ClearCommand(round->clear).SerializeAsString(), deadline,
      [done = std::move(done), term](absl::StatusOr<node::Applied> a) mutable {
        done(coord::ClearRoundOutcome(term, a));
      });
}

void Simulator::RouteAnswers(Member& m,
                             const std::vector<coord::Lessor::Answer>& a) {
  for (const coord::Lessor::Answer& x : a) {
    HolderMsg msg;
    msg.holder = static_cast<int>(x.cookie >> 48);
    msg.member = m.id;
    msg.lease = x.lease;
    msg.cookie = x.cookie & ((uint64_t{1} << 48) - 1);
    msg.status = x.status;
    msg.ttl_ms = x.ttl_ms;
    msg.leader = m.driver != nullptr ? m.driver->raft().leader() : 0;
    ToHolder(std::move(msg));
  }
}

void Simulator::HolderWake(int h) {
  Holder& x = holders_[static_cast<size_t>(h)];
  if (x.dead) return;
  if (x.die_at >= 0 && now_ >= x.die_at) {
    x.dead = true;
    x.died_at = now_;
    ++result_.holders_died;
    if (x.lease != 0) leases_[x.lease].holder_died = now_;
    CloseSpan(x, now_);  // a dead process acts no more
    EndProcessor(x);
    ShardsDisturbed();
    Trace(absl::StrCat("holder ", h, " dies holding lease ", x.lease));
    return;
  }
  if (x.pause_at >= 0 && now_ >= x.pause_at) {
    x.pause_at = -1;
    x.paused_until = now_ + hrng_.Range(kT, 12 * kT);
    Trace(absl::StrCat("holder ", h, " pauses until ", x.paused_until));
    shards_disturbed_at_ = std::max(shards_disturbed_at_, x.paused_until);
  }
  if (now_ < x.paused_until) {
    Schedule(x.paused_until,
             Event{EventKind::kHolderWake, -1, h, ++x.wake_gen});
    return;
  }
  int64_t next = now_ + kT;
  if (x.lease != 0 && x.lh->ended()) {
    Trace(absl::StrCat("holder ", h, " lost lease ", x.lease));
    x.lease = 0;
    x.lh.reset();
  }
  const int64_t lock_wake = LockStep(h);
  const int64_t shard_wake = ShardStep(h);
  if (x.lease == 0 && !x.granting) {
    x.granting = true;
    x.grant_seq = ++x.seq;
    x.grant_sent = HolderNow(x);
    HolderMsg msg;
    msg.grant = true;
    msg.seq = x.grant_seq;
    HolderSend(h, std::move(msg));
    next = now_ + 3 * kT;  // give up on it then
  } else if (x.granting) {
    x.granting = false;  // unanswered: try again (its lease, if any, is
    next = now_;         // nobody's and expires)
  } else {
    const int64_t at = x.lh->NextRenewalAt();
    if (HolderNow(x) >= at) {
      HolderMsg msg;
      msg.lease = x.lease;
      msg.cookie = x.lh->RenewalSent(HolderNow(x));
      HolderSend(h, std::move(msg));
      // Again after a heartbeat if this one goes unanswered.
      next = now_ + 2 * kHeartbeat;
    } else {
      next = std::max(now_, HolderRealAt(x, at));
    }
  }
  if (x.pause_at >= 0) next = std::min(next, std::max(now_, x.pause_at));
  if (x.die_at >= 0) next = std::min(next, std::max(now_, x.die_at));
  if (lock_wake >= 0) next = std::min(next, std::max(now_, lock_wake));
  if (shard_wake >= 0) next = std::min(next, std::max(now_, shard_wake));
  Schedule(next, Event{EventKind::kHolderWake, -1, h, ++x.wake_gen});
}

// The lock. A holder with a lease enters the campaign (EnterTxn), then
// asks where it stands (StandingTxn) every T until it leads. It counts on
// the lock only while its session is valid by its own clock (the span's
// `counted`), and gives the lock up after a while (ResignTxn). The
// broken variant (unsafe_lock_ignores_session) counts on it until it
// resigns or dies, whatever its session says.
int64_t Simulator::LockStep(int h) {
  Holder& x = holders_[static_cast<size_t>(h)];
  const bool valid = x.lh.has_value() && x.lh->Valid(HolderNow(x));
  switch (x.lock) {
    case Holder::Lock::kHolding: {
      LockSpan& span = lock_spans_[static_cast<size_t>(x.span)];
      if (!opt_.unsafe_lock_ignores_session) {
        if (!valid) {
          // Its deadline passed: it stopped counting on the lock then.
          Trace(absl::StrCat("holder ", h, " lets go of the lock (session)"));
          CloseSpan(x, span.counted);
          x.lock = Holder::Lock::kOut;
          x.lock_next = now_ + hrng_.Range(0, 2 * kT);
          return x.lock_next;
        }
        span.counted =
            std::max(span.counted, HolderRealAt(x, x.lh->deadline_ns()));
      }
      if (now_ < x.resign_at) return x.resign_at;
      Trace(absl::StrCat("holder ", h, " resigns token ", span.token));
      x.resign_token = span.token;
      CloseSpan(x, now_);  // before the request goes out
      x.lock = Holder::Lock::kResigning;
      x.lock_next = now_;
      [[fallthrough]];
    }
    case Holder::Lock::kResigning:
      if (x.lease != x.lock_lease || !x.lh.has_value() || x.lh->ended()) {
        x.lock = Holder::Lock::kOut;  // its key goes with its lease
        x.lock_next = now_;
        return -1;
      }
      if (now_ < x.lock_next) return x.lock_next;
      SendCampaign(
          h, coord::ResignTxn(coord::CampaignKey(lock_prefix_, x.lock_lease),
                              x.resign_token));
      x.lock_next = now_ + 3 * kT;  // sent again then if unanswered
      return x.lock_next;
    case Holder::Lock::kOut:
      if (!valid || x.lease == 0 || now_ < x.lock_next) {
        return valid ? x.lock_next : -1;
      }
      x.lock = Holder::Lock::kAsking;
      x.lock_lease = x.lease;
      SendCampaign(
          h, coord::EnterTxn(lock_prefix_,
                             coord::CampaignKey(lock_prefix_, x.lock_lease),
                             absl::StrCat("holder-", h), x.lock_lease));
      x.lock_next = now_ + 3 * kT;  // asked again then if unanswered
      return x.lock_next;
    case Holder::Lock::kAsking:
    case Holder::Lock::kWaiting:
      if (x.lease != x.lock_lease || !x.lh.has_value() || x.lh->ended()) {
        x.lock = Holder::Lock::kOut;  // its key goes with its lease
        x.lock_next = now_;
        return -1;
      }
      if (now_ < x.lock_next) return x.lock_next;
      x.lock = Holder::Lock::kAsking;
      SendCampaign(
          h, coord::StandingTxn(
                 lock_prefix_, coord::CampaignKey(lock_prefix_, x.lock_lease)));
      x.lock_next = now_ + 3 * kT;
      return x.lock_next;
  }
  return -1;
}

void Simulator::SendCampaign(int h, const client::TxnRequest& txn) {
  Holder& x = holders_[static_cast<size_t>(h)];
  HolderMsg msg;
  msg.seq = ++x.seq;
  x.lock_seq = msg.seq;
  msg.txn = txn.SerializeAsString();
  HolderSend(h, std::move(msg));
}

void Simulator::LockAnswer(int h, const HolderMsg& msg) {
  Holder& x = holders_[static_cast<size_t>(h)];
  if (msg.seq != x.lock_seq ||
      (x.lock != Holder::Lock::kAsking && x.lock != Holder::Lock::kResigning)) {
    return;
  }
  client::KvResult r;
  if (msg.status.ok() && !r.ParseFromString(msg.result)) return;
  const absl::Status s = msg.status.ok() ? coord::ResultStatus(r) : msg.status;
  if (absl::IsUnavailable(s) && msg.leader != 0 && msg.leader != msg.member) {
    // A member that is not the leader names it: the client library sends
    // the request there at once, with the same operation id (the hint is
    // already updated).
    HolderMsg again;
    again.seq = msg.seq;
    again.txn = msg.txn;
    HolderSend(h, std::move(again));
    return;
  }
  if (absl::IsNotFound(s)) {  // its lease is gone: the campaign with it
    x.lock = Holder::Lock::kOut;
    return;
  }
  if (!s.ok()) return;  // asked again at lock_next
  if (x.lock == Holder::Lock::kResigning) {
    // Applied (the key is gone, whether this or an earlier copy deleted
    // it): it may enter again.
    x.lock = Holder::Lock::kOut;
    x.lock_next = now_ + hrng_.Range(0, 3 * kT);
    return;
  }
  if (r.txn().replayed()) {
    x.lock_next = now_;  // a retried entry: ask where it stands
    return;
  }
  absl::StatusOr<coord::Standing> st = coord::ReadStanding(r.txn());
  // Only a broken driver (answer_before_commit) answers a campaign's
  // transaction without its reads: it asks again at lock_next.
  QUORATE_CHECK(st.ok() || opt_.unsafe_answer_before_commit) << st.status();
  if (!st.ok()) return;
  if (!st->present) {
    x.lock = Holder::Lock::kOut;
    x.lock_next = now_ + hrng_.Range(0, 2 * kT);
    return;
  }
  if (!st->leads) {
    x.lock = Holder::Lock::kWaiting;
    // The broken variant: a lost wake-up, as a client whose watch missed
    // its predecessor's delete.
    x.lock_next = opt_.unsafe_lock_lost_wakeup
                      ? std::numeric_limits<int64_t>::max()
                      : now_ + kT;
    return;
  }
  const bool valid = x.lh.has_value() && x.lh->Valid(HolderNow(x));
  if (!valid && !opt_.unsafe_lock_ignores_session) {
    x.lock = Holder::Lock::kOut;  // its key goes with its lease
    return;
  }
  x.lock = Holder::Lock::kHolding;
  x.span = static_cast<int>(lock_spans_.size());
  LockSpan span;
  span.holder = h;
  span.token = st->token;
  span.revision = st->revision;
  span.start = now_;
  span.counted = valid ? HolderRealAt(x, x.lh->deadline_ns()) : now_;
  lock_spans_.push_back(span);
  x.resign_at = now_ + hrng_.Range(kT, 8 * kT);
  ++result_.lock_holds;
  Trace(absl::StrCat("holder ", h, " holds the lock, token ", st->token));
  CheckLockSpans();
}

void Simulator::CloseSpan(Holder& x, int64_t end) {
  if (x.lock != Holder::Lock::kHolding || x.span < 0) return;
  LockSpan& span = lock_spans_[static_cast<size_t>(x.span)];
  span.end =
      opt_.unsafe_lock_ignores_session ? end : std::min(end, span.counted);
  x.span = -1;
  x.lock = Holder::Lock::kOut;
}

// No two holders count on the lock at one real time, and each new holder's
// token is higher than every earlier one's. (Spans are in the order they
// started; an open one ends, so far, where its holder counts on it.)
void Simulator::CheckLockSpans() {
  auto end_of = [this](const LockSpan& a) {
    if (a.end >= 0) return a.end;
    return opt_.unsafe_lock_ignores_session
               ? std::numeric_limits<int64_t>::max()
               : a.counted;
  };
  for (size_t j = 1; j < lock_spans_.size() && result_.safety_ok; ++j) {
    const LockSpan& b = lock_spans_[j];
    for (size_t i = 0; i < j; ++i) {
      const LockSpan& a = lock_spans_[i];
      if (b.start < end_of(a)) {
        result_.safety_ok = false;
        const int64_t until = end_of(a);
        result_.safety_violation = absl::StrCat(
            "lock: holder ", b.holder, " took token ", b.token, " at ", b.start,
            " ns while holder ", a.holder, " counted on token ", a.token,
            until == std::numeric_limits<int64_t>::max()
                ? std::string(" with no end")
                : absl::StrCat(" until ", until, " ns"));
        return;
      }
      // A holder may let go (its deadline passed) and, its lease still
      // alive, count on the same key again: the same token, nobody between.
      if (a.token > b.token || (a.token == b.token && a.holder != b.holder)) {
        result_.safety_ok = false;
        result_.safety_violation =
            absl::StrCat("lock: token ", b.token, " of holder ", b.holder,
                         " does not exceed an earlier holder's ", a.token);
        return;
      }
    }
  }
}

// ---------------------------------------------------------------------------
// The shard group. Each holder is also a processor: it runs the shipped
// view (coord/shard_view.h) that quorate::ShardGroup runs, fed by reads of
// the group's keys instead of a watch, and does what the library does with
// what the view asks: acknowledge a revocation, release what it finished
// or what its drain deadline ended, send a release again until it is
// confirmed. The members run the shipped state machine and the leader's
// drain clock. The checker: for each shard, no two processors' Owns() true
// at one real time, and epochs growing with each new owner.

void Simulator::SendShards(int h, HolderMsg::Shards what,
                           client::ShardRequest req) {
  Holder& x = holders_[static_cast<size_t>(h)];
  req.set_group(kShardGroup);
  HolderMsg msg;
  msg.seq = ++x.seq;
  msg.shards = what;
  msg.lease = x.proc_lease;
  if (what == HolderMsg::Shards::kProc) x.proc_seq = msg.seq;
  if (req.has_release()) {
    msg.shard = req.release().shard();
    msg.epoch = req.release().epoch();
  }
  msg.shard_request = req.SerializeAsString();
  HolderSend(h, std::move(msg));
}

void Simulator::SendShardRead(int h) {
  Holder& x = holders_[static_cast<size_t>(h)];
  const std::string shards = absl::StrCat(shard_prefix_, "shard/");
  client::TxnRequest t;
  client::RangeRequest* r = t.add_success()->mutable_range();
  r->set_key(shards);
  r->set_range_end(coord::PrefixEnd(shards));
  HolderMsg msg;
  msg.seq = ++x.seq;
  msg.shards = HolderMsg::Shards::kRead;
  msg.lease = x.proc_lease;
  msg.txn = t.SerializeAsString();
  x.read_seq = msg.seq;
  x.read_next = now_ + 3 * kT;  // asked again then if unanswered
  HolderSend(h, std::move(msg));
}

void Simulator::SendRelease(int h, uint32_t shard, uint64_t epoch) {
  Holder& x = holders_[static_cast<size_t>(h)];
  client::ShardRequest req;
  client::ShardRelease* r = req.mutable_release();
  r->set_lease(x.proc_lease);
  r->set_shard(shard);
  r->set_epoch(epoch);
  x.release_sent[shard] = now_;
  SendShards(h, HolderMsg::Shards::kRelease, std::move(req));
}

// The processor is gone with its session (or its process): nothing is
// owned any more.
void Simulator::EndProcessor(Holder& x) {
  if (x.view != nullptr) x.view->DropAll();
  for (uint32_t s = 0; s < x.shard_span.size(); ++s) {
    int& i = x.shard_span[s];
    if (i < 0) continue;
    ShardSpan& span = shard_spans_[s][static_cast<size_t>(i)];
    span.end = std::min(now_, span.until);
    i = -1;
  }
  x.view.reset();
  x.proc = Holder::Proc::kOut;
  x.proc_lease = 0;
  x.finish_at.clear();
  x.release_sent.clear();
}

int64_t Simulator::ShardStep(int h) {
  Holder& x = holders_[static_cast<size_t>(h)];
  if (x.proc != Holder::Proc::kOut && x.lease != x.proc_lease) {
    Trace(absl::StrCat("processor ", h, " ends with lease ", x.proc_lease));
    EndProcessor(x);
    ShardsDisturbed();
  }
  const bool valid = x.lh.has_value() && x.lh->Valid(HolderNow(x));
  int64_t next = -1;
  auto wake_at = [&next](int64_t t) {
    next = next < 0 ? t : std::min(next, t);
  };
  switch (x.proc) {
    case Holder::Proc::kOut:
      if (!valid) return -1;
      x.proc = Holder::Proc::kCreating;
      x.proc_lease = x.lease;
      x.proc_next = now_;
      x.view = std::make_unique<coord::ShardView>(
          coord::KvStore::ShardProcessorId(x.lease), kShards,
          coord::ShardDrainWindowNs(kShardDrainMs, opt_.rho, 0));
      x.view_started = false;
      x.view_revision = 0;
      x.shard_span.assign(kShards, -1);
      // Some processors leave the group for a while, during the chaos.
      x.leave_at = srng_.Chance(300'000) && now_ < kChaosNs
                       ? now_ + srng_.Range(2 * kT, 20 * kT)
                       : -1;
      x.rejoin_at = -1;
      ShardsDisturbed();
      [[fallthrough]];
    case Holder::Proc::kCreating:
    case Holder::Proc::kJoining:
      if (now_ >= x.proc_next) {
        client::ShardRequest req;
        if (x.proc == Holder::Proc::kCreating) {
          client::ShardGroupCreate* c = req.mutable_create();
          c->set_shards(kShards);
          c->set_max_in_motion(kShardsInMotion);
          c->set_drain_ms(kShardDrainMs);
        } else {
          client::ShardJoin* j = req.mutable_join();
          j->set_lease(x.proc_lease);
          j->set_zone(absl::StrCat("az-", member(x.home).zone));
        }
        SendShards(h, HolderMsg::Shards::kProc, std::move(req));
        x.proc_next = now_ + 3 * kT;  // sent again then if unanswered
      }
      wake_at(x.proc_next);
      break;
    case Holder::Proc::kIn:
      if (x.leave_at >= 0 && now_ >= x.leave_at) {
        x.leave_at = -1;
        x.proc = Holder::Proc::kLeaving;
        x.proc_next = now_;
      } else {
        if (x.leave_at >= 0) wake_at(x.leave_at);
        break;
      }
      [[fallthrough]];
    case Holder::Proc::kLeaving:
      if (now_ >= x.proc_next) {
        Trace(absl::StrCat("processor ", h, " leaves the group"));
        client::ShardRequest req;
        req.mutable_leave()->set_lease(x.proc_lease);
        SendShards(h, HolderMsg::Shards::kProc, std::move(req));
        x.proc_next = now_ + 3 * kT;
        ShardsDisturbed();
      }
      wake_at(x.proc_next);
      break;
    case Holder::Proc::kLeft:
      if (now_ >= x.rejoin_at) {
        x.proc = Holder::Proc::kJoining;
        x.proc_next = now_;
        return now_;
      }
      wake_at(x.rejoin_at);
      break;
  }
  if (x.view == nullptr) return next;
  // Joined (or leaving, or left and draining): read the group's keys.
  if (x.proc != Holder::Proc::kCreating && x.proc != Holder::Proc::kJoining) {
    if (now_ >= x.read_next) SendShardRead(h);
    wake_at(x.read_next);
  }
  // Finish revoked shards' work, and release them (or what the drain
  // deadline ended), as the library's monitor does.
  for (auto it = x.finish_at.begin(); it != x.finish_at.end();) {
    const auto [at, epoch] = it->second;
    if (x.view->Owns(it->first, HolderNow(x)) != epoch) {
      it = x.finish_at.erase(it);  // not ours at that epoch any more
    } else if (now_ >= at) {
      const uint32_t s = it->first;
      it = x.finish_at.erase(it);
      Trace(absl::StrCat("processor ", h, " releases shard ", s, " epoch ",
                         epoch, " (drained)"));
      SendRelease(h, s, x.view->TakeRelease(s));
    } else {
      wake_at(at);
      ++it;
    }
  }
  for (uint32_t s : x.view->Due(HolderNow(x))) {
    Trace(absl::StrCat("processor ", h, " releases shard ", s,
                       " (its drain deadline passed)"));
    SendRelease(h, s, x.view->TakeRelease(s));
  }
  for (const auto& [s, epoch] : x.view->PendingReleases()) {
    auto sent = x.release_sent.find(s);
    if (sent == x.release_sent.end() || now_ >= sent->second + 3 * kT) {
      SendRelease(h, s, epoch);
    }
    wake_at(x.release_sent[s] + 3 * kT);
  }
  for (uint32_t s = 0; s < kShards; ++s) {
    const int64_t until = x.view->Until(s);
    if (until != coord::ShardView::kNever && x.view->Owns(s, HolderNow(x))) {
      wake_at(std::max(now_, HolderRealAt(x, until)));
    }
  }
  TrackShards(h);
  return next;
}

void Simulator::ShardAnswer(int h, const HolderMsg& msg) {
  Holder& x = holders_[static_cast<size_t>(h)];
  if (x.view == nullptr || msg.lease != x.proc_lease) return;
  client::KvResult r;
  if (msg.status.ok() && !r.ParseFromString(msg.result)) return;
  const absl::Status s = msg.status.ok() ? coord::ResultStatus(r) : msg.status;
  // A member that is not the leader names it: the client library sends
  // the request there at once (its hint is already updated).
  const bool redirect =
      absl::IsUnavailable(s) && msg.leader != 0 && msg.leader != msg.member;
  switch (msg.shards) {
    case HolderMsg::Shards::kNo:
      return;
    case HolderMsg::Shards::kAck:
      if (redirect) {
        client::ShardRequest req;
        QUORATE_CHECK(req.ParseFromString(msg.shard_request));
        SendShards(h, HolderMsg::Shards::kAck, std::move(req));
      }
      return;
    case HolderMsg::Shards::kRelease:
      Trace(absl::StrCat("processor ", h, " release of shard ", msg.shard,
                         " epoch ", msg.epoch, ": ", s.ToString()));
      if (s.ok() || absl::IsFailedPrecondition(s)) {
        x.view->ReleaseDone(msg.shard, msg.epoch);
        if (s.ok()) ++result_.shard_releases;
      } else if (redirect) {
        SendRelease(h, msg.shard, msg.epoch);
      }
      return;
    case HolderMsg::Shards::kProc:
      if (msg.seq != x.proc_seq) return;
      if (redirect) x.proc_next = now_;
      if (x.proc == Holder::Proc::kCreating &&
          (s.ok() || absl::IsAlreadyExists(s))) {
        x.proc = Holder::Proc::kJoining;
        x.proc_next = now_;
      } else if (x.proc == Holder::Proc::kJoining) {
        if (s.ok()) {
          Trace(absl::StrCat("processor ", h, " joined with lease ",
                             x.proc_lease));
          x.proc = Holder::Proc::kIn;
          x.read_next = now_;
          ShardsDisturbed();
        } else if (absl::IsNotFound(s)) {
          x.proc = Holder::Proc::kCreating;
        }
        // FAILED_PRECONDITION: its lease is gone (ShardStep ends it).
      } else if (x.proc == Holder::Proc::kLeaving && s.ok()) {
        x.proc = Holder::Proc::kLeft;
        x.rejoin_at = now_ + srng_.Range(2 * kT, 8 * kT);
        ++result_.shard_leaves;
      }
      return;
    case HolderMsg::Shards::kRead:
      break;
  }
  if (opt_.trace) {
    Trace(absl::StrCat("processor ", h, " read: ", s.ToString(), " rev ",
                       r.revision()));
  }
  if (msg.seq != x.read_seq) return;
  if (redirect) x.read_next = now_;
  if (!s.ok()) return;
  x.read_next = now_ + kShardPollNs;
  if (r.txn().replayed() || r.txn().responses_size() != 1 ||
      r.revision() < x.view_revision) {
    return;
  }
  x.view_revision = r.revision();
  const bool at_start = !x.view_started;
  x.view_started = true;
  for (const client::KeyValue& kv : r.txn().responses(0).range().kvs()) {
    std::optional<uint32_t> shard = coord::ShardOfKey(shard_prefix_, kv.key());
    absl::StatusOr<coord::ShardState> st = coord::ParseShardState(kv.value());
    QUORATE_CHECK(shard.has_value() && st.ok()) << kv.key();
    const coord::ShardView::Change c =
        x.view->Update(*shard, *st, at_start, HolderNow(x));
    if (c.revoke_epoch == 0) continue;
    Trace(absl::StrCat("processor ", h, " drains shard ", *shard, " epoch ",
                       c.revoke_epoch));
    client::ShardRequest ack;
    client::ShardRelease* a = ack.mutable_release();
    a->set_lease(x.proc_lease);
    a->set_shard(*shard);
    a->set_epoch(c.revoke_epoch);
    a->set_ack(true);
    SendShards(h, HolderMsg::Shards::kAck, std::move(ack));
    // Most finish their work within the drain time; some never do, and
    // the deadline ends it.
    if (!srng_.Chance(250'000)) {
      const int64_t work = srng_.Range(0, kShardDrainMs * kMs * 3 / 2);
      x.finish_at[*shard] = {now_ + work, c.revoke_epoch};
    }
  }
  TrackShards(h);
}

// Opens, extends and closes the holder's spans from what its Owns() says
// now: the view's epoch while the session is valid and before the drain
// deadline.
void Simulator::TrackShards(int h) {
  Holder& x = holders_[static_cast<size_t>(h)];
  if (x.view == nullptr || x.dead) return;
  const int64_t local = HolderNow(x);
  const bool valid = x.lh.has_value() && x.lh->Valid(local);
  for (uint32_t s = 0; s < kShards; ++s) {
    const uint64_t epoch = valid ? x.view->Owns(s, local) : 0;
    int& i = x.shard_span[s];
    if (i >= 0) {
      ShardSpan& span = shard_spans_[s][static_cast<size_t>(i)];
      if (epoch == span.epoch && now_ < span.until) {
        span.until =
            HolderRealAt(x, std::min(x.lh->deadline_ns(), x.view->Until(s)));
        continue;
      }
      span.end = std::min(now_, span.until);
      i = -1;
    }
    if (epoch == 0) continue;
    ShardSpan span;
    span.holder = h;
    span.epoch = epoch;
    span.start = now_;
    span.until =
        HolderRealAt(x, std::min(x.lh->deadline_ns(), x.view->Until(s)));
    i = static_cast<int>(shard_spans_[s].size());
    shard_spans_[s].push_back(span);
    ++result_.shard_tenures;
    Trace(absl::StrCat("processor ", h, " owns shard ", s, " epoch ", epoch,
                       " until ", span.until));
    CheckShardSpan(s, static_cast<size_t>(i));
  }
}

// Span `b` of `shard` just opened: it must start after every other
// processor's span of the shard ended, at a higher epoch. (A processor
// whose session lapsed and came back owns the same epoch again.)
void Simulator::CheckShardSpan(uint32_t shard, size_t b_index) {
  if (!result_.safety_ok) return;
  const ShardSpan& b = shard_spans_[shard][b_index];
  for (size_t i = 0; i < b_index; ++i) {
    const ShardSpan& a = shard_spans_[shard][i];
    if (a.holder == b.holder && a.epoch == b.epoch) continue;
    const int64_t a_end = a.end >= 0 ? a.end : a.until;
    if (b.start < a_end) {
      result_.safety_ok = false;
      result_.safety_violation = absl::StrCat(
          "shard ", shard, ": processor ", b.holder, " owns it at epoch ",
          b.epoch, " from ", b.start, " ns while processor ", a.holder,
          " owns it at epoch ", a.epoch, " until ", a_end, " ns");
      return;
    }
    if (a.epoch >= b.epoch) {
      result_.safety_ok = false;
      result_.safety_violation =
          absl::StrCat("shard ", shard, ": processor ", b.holder,
                       " owns it at epoch ", b.epoch, ", not above processor ",
                       a.holder, "'s earlier epoch ", a.epoch);
      return;
    }
  }
}

// At the end of a run that left the group undisturbed for kShardSettleNs
// (no fault, no holder dying, pausing, joining or leaving, no new leader),
// with a live holder in the group: every shard is owned by some holder.
int64_t Simulator::QuietSince() const {
  int64_t quiet_since = std::max(heal_at_, shards_disturbed_at_);
  for (const Member& m : members_) {
    if (m.up && m.driver->raft().role() == raft::Role::kLeader) {
      auto it = leader_at_.find(m.driver->raft().term());
      if (it != leader_at_.end())
        quiet_since = std::max(quiet_since, it->second);
    }
  }
  return quiet_since;
}

// At the end of a run left quiet for kShardSettleNs, with a live holder
// whose session is valid: someone held the lock in the last kLockGapNs.
void Simulator::CheckLockLiveness() {
  const int64_t quiet_since = QuietSince();
  bool wanted = false;
  int64_t last_held = -1;
  for (Holder& x : holders_) {
    if (x.dead) continue;
    wanted |= x.lh.has_value() && x.lh->Valid(HolderNow(x));
    if (x.lock == Holder::Lock::kHolding) last_held = now_;
  }
  if (now_ - quiet_since < kShardSettleNs || !wanted) return;
  ++result_.lock_liveness_checked;
  for (const LockSpan& span : lock_spans_) {
    last_held = std::max(last_held, span.end);
  }
  if (now_ - last_held > kLockGapNs && result_.liveness_ok) {
    result_.liveness_ok = false;
    result_.liveness_violation = absl::StrCat(
        "the lock was held by no one for ", (now_ - last_held) / kMs, " ms, ",
        (now_ - quiet_since) / kMs,
        " ms after the holders were last disturbed");
  }
}

void Simulator::CheckShardLiveness() {
  const int64_t quiet_since = QuietSince();
  bool in_group = false;
  for (const Holder& x : holders_) {
    in_group |= !x.dead && x.proc == Holder::Proc::kIn;
  }
  if (now_ - quiet_since < kShardSettleNs || !in_group) return;
  ++result_.shard_liveness_checked;
  for (uint32_t s = 0; s < kShards; ++s) {
    bool owned = false;
    for (const Holder& x : holders_) {
      if (x.dead || x.view == nullptr || x.shard_span[s] < 0) continue;
      owned |=
          shard_spans_[s][static_cast<size_t>(x.shard_span[s])].until > now_;
    }
    if (!owned && result_.liveness_ok) {
      result_.liveness_ok = false;
      result_.liveness_violation = absl::StrCat(
          "shard ", s, " has no owner ", (now_ - quiet_since) / kMs,
          " ms after the group was last disturbed");
    }
  }
}

void Simulator::Flood() {
  if (now_ < kChaosNs) {
    Schedule(now_ + frng_.Range(kFloodEveryNs / 2, 2 * kFloodEveryNs),
             Event{EventKind::kFlood});
  }
  std::vector<Member*> up;
  for (Member& m : members_) {
    if (m.up && !m.suspended) up.push_back(&m);
  }
  if (up.empty()) return;
  // Mostly the leader, where shedding happens.
  Member* m = up[frng_.Uniform(up.size())];
  for (Member* x : up) {
    if (x->driver->raft().role() == raft::Role::kLeader &&
        frng_.Chance(800'000)) {
      m = x;
    }
  }
  const int n = static_cast<int>(frng_.Range(50, 300));
  const int64_t deadline = LocalNow(*m) + frng_.Range(3 * kMs, 40 * kMs);
  Trace(absl::StrCat("flood of ", n, " on ", m->id));
  for (int i = 0; i < n; ++i) {
    client::KvCommand cmd;
    cmd.mutable_op()->set_client(kFloodClient);
    cmd.mutable_op()->set_seq(++flood_seq_);
    cmd.mutable_put()->set_key(absl::StrCat("flood/", flood_seq_ % 16));
    cmd.mutable_put()->set_value("x");
    const client::OpId op = cmd.op();
    auto in_call = std::make_shared<bool>(true);
    m->driver->Propose(
        cmd.SerializeAsString(), deadline,
        [this, op, in_call](absl::StatusOr<node::Applied> a) {
          if (a.ok()) return;
          // Refused while Propose() ran, or answered later that it waited
          // before the log and was never proposed: never applied.
          const bool not_proposed =
              *in_call ||
              (absl::IsDeadlineExceeded(a.status()) &&
               absl::StrContains(a.status().message(), "it was not proposed"));
          if (!not_proposed) return;
          ++result_.writes_refused;
          if (absl::IsResourceExhausted(a.status())) ++result_.writes_shed;
          refused_.push_back(op);
        });
    *in_call = false;
  }
}

void Simulator::HolderSend(int h, HolderMsg msg) {
  Holder& x = holders_[static_cast<size_t>(h)];
  msg.holder = h;
  if (x.hint == 0 || hrng_.Chance(100'000)) {
    x.hint = 1 + hrng_.Uniform(static_cast<uint64_t>(opt_.members));
    // Members come and go (kMembership): any in the cluster, drawn from
    // the same generator as before when none did.
    if (!member(x.hint).present) {
      const std::vector<uint64_t> ids = Ids();
      if (!ids.empty()) x.hint = ids[hrng_.Uniform(ids.size())];
    }
  }
  msg.member = x.hint;
  if (!Reaches(x.home, msg.member)) return;
  if (net_chaos_ && hrng_.Chance(drop_ppm_)) return;
  int64_t delay = hrng_.Range(opt_.delay_min_ns, opt_.delay_max_ns);
  if (net_chaos_ && hrng_.Chance(slow_ppm_)) {
    delay = hrng_.Range(5 * kMs, 60 * kMs);
  }
  const uint64_t key = next_holder_msg_++;
  const uint64_t to = msg.member;
  holder_msgs_.emplace(key, std::move(msg));
  Schedule(now_ + delay,
           Event{EventKind::kHolderSend, static_cast<int>(to), -1, key});
}

void Simulator::HolderArrive(HolderMsg msg) {
  Member& m = member(msg.member);
  if (!m.up) return;
  if (!msg.txn.empty() || !msg.shard_request.empty()) {
    client::KvCommand cmd;
    cmd.mutable_op()->set_client(kHolderClientBase +
                                 static_cast<uint64_t>(msg.holder));
    cmd.mutable_op()->set_seq(msg.seq);
    if (!msg.txn.empty()) {
      QUORATE_CHECK(cmd.mutable_txn()->ParseFromString(msg.txn));
    } else {
      QUORATE_CHECK(cmd.mutable_shard()->ParseFromString(msg.shard_request));
    }
    auto answer = std::make_shared<HolderMsg>(std::move(msg));
    m.driver->Propose(
        cmd.SerializeAsString(), LocalNow(m) + 3 * kT,
        [this, answer, id = m.id](absl::StatusOr<node::Applied> a) {
          HolderMsg out = *answer;
          out.leader = member(id).driver->raft().leader();
          if (a.ok()) {
            out.result = a->result;
          } else {
            out.status = a.status();
          }
          ToHolder(std::move(out));
        });
    return;
  }
  if (msg.grant) {
    client::KvCommand cmd;
    cmd.mutable_op()->set_client(kHolderClientBase +
                                 static_cast<uint64_t>(msg.holder));
    cmd.mutable_op()->set_seq(msg.seq);
    cmd.mutable_lease_grant()->set_ttl_ms(kLeaseTtlMs);
    auto answer = std::make_shared<HolderMsg>(msg);
    // The answer travels back whenever it comes (ToHolder only schedules).
    m.driver->Propose(
        cmd.SerializeAsString(), LocalNow(m) + 3 * kT,
        [this, answer, id = m.id](absl::StatusOr<node::Applied> a) {
          HolderMsg out = *answer;
          out.leader = member(id).driver->raft().leader();
          if (!a.ok()) {
            out.status = a.status();
          } else {
            client::KvResult r;
            QUORATE_CHECK(r.ParseFromString(a->result));
            out.status = coord::ResultStatus(r);
            out.lease = r.lease_id();
            out.ttl_ms = r.lease_ttl_ms();
          }
          ToHolder(std::move(out));
        });
    return;
  }
  const uint64_t cookie = static_cast<uint64_t>(msg.holder) << 48 | msg.cookie;
  const absl::Status s = m.lessor->Renew(msg.lease, cookie, LocalNow(m));
  if (!s.ok()) {
    msg.status = s;
    msg.leader = m.driver->raft().leader();
    ToHolder(std::move(msg));
    return;
  }
  DriveLessor(m);
}

void Simulator::ToHolder(HolderMsg msg) {
  const Holder& x = holders_[static_cast<size_t>(msg.holder)];
  if (!Reaches(msg.member, x.home)) return;
  if (net_chaos_ && hrng_.Chance(drop_ppm_)) return;
  int64_t delay = hrng_.Range(opt_.delay_min_ns, opt_.delay_max_ns);
  if (net_chaos_ && hrng_.Chance(slow_ppm_)) {
    delay = hrng_.Range(5 * kMs, 60 * kMs);
  }
  const uint64_t key = next_holder_msg_++;
  holder_msgs_.emplace(key, std::move(msg));
  Schedule(now_ + delay, Event{EventKind::kHolderAnswer, -1, -1, key});
}

void Simulator::HolderAnswer(HolderMsg msg) {
  Holder& x = holders_[static_cast<size_t>(msg.holder)];
  if (x.dead) return;
  if (now_ < x.paused_until) {
    // Its threads are stopped: the answer is read when it wakes.
    const uint64_t key = next_holder_msg_++;
    holder_msgs_.emplace(key, std::move(msg));
    Schedule(x.paused_until, Event{EventKind::kHolderAnswer, -1, -1, key});
    return;
  }
  if (absl::IsUnavailable(msg.status) && msg.leader != 0) {
    x.hint = msg.leader;
  } else if (!msg.status.ok()) {
    x.hint = 0;
  }
  if (msg.shards != HolderMsg::Shards::kNo) {
    ShardAnswer(msg.holder, msg);
    Schedule(now_, Event{EventKind::kHolderWake, -1, msg.holder, ++x.wake_gen});
    return;
  }
  if (!msg.txn.empty()) {
    LockAnswer(msg.holder, msg);
    Schedule(now_, Event{EventKind::kHolderWake, -1, msg.holder, ++x.wake_gen});
    return;
  }
  if (msg.grant) {
    if (!x.granting || msg.seq != x.grant_seq) return;  // given up on
    x.granting = false;
    if (!msg.status.ok()) return;  // the next wake-up asks again
    coord::HolderOptions o;
    o.max_clock_drift = opt_.rho;
    o.margin_ns = 0;  // the bare bound is what is checked
    o.unsafe.deadline_from_reply = opt_.unsafe_lease_deadline_from_reply;
    x.lease = msg.lease;
    // The grant is the first renewal: counted from its send.
    x.lh.emplace(
        o, msg.ttl_ms,
        opt_.unsafe_lease_deadline_from_reply ? HolderNow(x) : x.grant_sent);
    ++result_.leases_granted;
    LeaseRecord& r = leases_[x.lease];
    r.holder = msg.holder;
    Trace(absl::StrCat("holder ", msg.holder, " holds lease ", x.lease));
    // Its fate: most holders live; some pause, some die.
    x.pause_at = hrng_.Chance(200'000) ? now_ + hrng_.Range(0, 20 * kT) : -1;
    x.die_at = hrng_.Chance(150'000) && now_ < kChaosNs
                   ? now_ + hrng_.Range(0, 20 * kT)
                   : -1;
  } else {
    if (x.lease != msg.lease || !x.lh.has_value()) return;
    x.lh->Answered(msg.cookie, msg.status, msg.ttl_ms, HolderNow(x));
    if (msg.status.ok()) ++result_.renewals_answered;
    if (opt_.trace) {
      Trace(absl::StrCat("holder ", msg.holder, " renewal ", msg.cookie,
                         " of lease ", msg.lease, " from ", msg.member, ": ",
                         msg.status.ToString(), "; valid until ",
                         HolderRealAt(x, x.lh->deadline_ns())));
    }
  }
  LeaseRecord& r = leases_[x.lease];
  if (x.lh->Valid(HolderNow(x))) {
    r.max_deadline =
        std::max(r.max_deadline, HolderRealAt(x, x.lh->deadline_ns()));
  }
  CheckLease(x.lease);
  TrackShards(msg.holder);  // its shards' spans last as long as its session
  Schedule(now_, Event{EventKind::kHolderWake, -1, msg.holder, ++x.wake_gen});
}

void Simulator::CheckLease(uint64_t lease) {
  const LeaseRecord& r = leases_[lease];
  if (r.ended_at < 0 || r.max_deadline <= r.ended_at || !result_.safety_ok) {
    return;
  }
  result_.safety_ok = false;
  result_.safety_violation = absl::StrCat(
      "session: holder ", r.holder, " counted on lease ", lease, " until ",
      r.max_deadline, " ns, but its end was applied at ", r.ended_at, " ns");
}

// The expiry bound (docs/design.md): every leader elected after the
// holder died (and its last renewals landed) advances the lease's expiry
// by what it led on its own clock, less one checkpoint interval and a
// slack; once those advances add up to the TTL, the expiry must be
// applied within the slack. A run's last tenure counts up to its last
// commit.
void Simulator::CheckDeadHolders() {
  if (!result_.safety_ok) return;
  for (const auto& [lease, r] : leases_) {
    if (r.holder_died < 0) continue;
    int64_t credit = 0;
    for (const auto& [term, t] : tenures_) {
      if (t.elected_real < r.holder_died + kLeaseSlackNs ||
          t.last_commit_local < 0) {
        continue;
      }
      const int64_t led = t.last_commit_local - t.elected_local;
      Trace(absl::StrCat("bound: lease ", lease, " term ", term, " led ", led,
                         " credit ", credit));
      const int64_t gain = led - kCheckpointNs - kLeaseSlackNs;
      if (gain <= 0) continue;
      if (credit + gain < kLeaseTtlMs * kMs) {
        credit += gain;
        continue;
      }
      // The TTL ran out in this tenure, at least a slack before its last
      // commit.
      if (r.ended_at < 0 || r.ended_at > t.last_commit_real) {
        result_.safety_ok = false;
        result_.safety_violation = absl::StrCat(
            "session: lease ", lease, " of holder ", r.holder, " (dead since ",
            r.holder_died, " ns) outlived its bound: term ", term,
            " led until ", t.last_commit_real, " ns with the TTL spent",
            r.ended_at < 0 ? ", and it never ended"
                           : absl::StrCat(", but it ended at ", r.ended_at));
        return;
      }
      break;
    }
  }
}

// Watches: each watcher reads at most two messages a tick from its
// member's hub (so that it falls behind, waits and is cut off), and starts
// over on a member chosen at random when its stream ends: after a cut-off,
// a crash, or now and then by itself.
void Simulator::WatchTick() {
  if (!result_.safety_ok) return;
  std::set<uint64_t> ran;  // hubs that ran this tick
  for (SimWatcher& w : watchers_) {
    if (w.member != 0 && wrng_.Uniform(200) == 0) {
      w.stream.reset();
      w.member = 0;
    }
    if (w.member == 0) {
      std::vector<uint64_t> live;
      for (const Member& m : members_) {
        if (m.up && !m.suspended) live.push_back(m.id);
      }
      if (live.empty()) continue;
      w.member = live[wrng_.Uniform(live.size())];
      w.stream = member(w.member).hub->Open([] {});
      w.partial.clear();
      w.lock_events.clear();
      client::WatchRequest req;
      client::WatchCreate* c = req.mutable_create();
      c->set_watch_id(++w.next_id);
      c->set_key(std::string(1, '\0'));  // every key
      c->set_range_end(std::string(1, '\0'));
      c->set_start_revision(w.last + 1);
      w.stream->Handle(req);
      if (w.next_id > 1) ++result_.watch_resumes;
      Trace(absl::StrCat("watch on ", w.member, " from ", w.last + 1));
    }
    Member& m = member(w.member);
    if (m.suspended) continue;
    if (ran.insert(w.member).second) m.hub->RunOnce();
    const uint64_t reads = wrng_.Uniform(3);
    for (uint64_t k = 0; k < reads && w.stream != nullptr; ++k) {
      std::optional<client::WatchResponse> r = w.stream->Next();
      if (!r.has_value()) break;
      if (!WatchResponse(w, *r)) {
        w.stream.reset();
        w.member = 0;
      }
    }
  }
}

bool Simulator::WatchResponse(SimWatcher& w, const client::WatchResponse& r) {
  if (r.canceled()) {
    switch (static_cast<absl::StatusCode>(r.code())) {
      case absl::StatusCode::kResourceExhausted:
        // It resumes from the revision after the last one delivered: the
        // member must say that one.
        if (r.revision() != w.last) {
          WatchViolation(absl::StrCat("cut off at revision ", r.revision(),
                                      " after delivering up to ", w.last));
        }
        ++result_.watch_cut_off;
        break;
      case absl::StatusCode::kOutOfRange:
        // The history no longer reaches it: a new start, past the gap
        // (where an observer would read the candidates again).
        w.observing = false;
        Trace(absl::StrCat("watch compacted: ", w.last, " -> ",
                           r.compact_revision()));
        w.last = std::max(w.last, r.compact_revision());
        break;
      default:
        WatchViolation(absl::StrCat("canceled: ", r.message()));
    }
    return false;
  }
  if (r.created()) {
    if (r.revision() != w.last) {
      WatchViolation(absl::StrCat("created at revision ", r.revision(),
                                  ", asked for ", w.last + 1));
    }
    return true;
  }
  if (r.fragment()) {
    for (const client::WatchEvent& e : r.events()) {
      w.partial += e.SerializeAsString();
      if (absl::StartsWith(e.kv().key(), lock_prefix_)) {
        w.lock_events.push_back(e);
      }
    }
    return true;
  }
  // Every revision has events on every key: they must come one revision
  // after another, each whole, the same on every member.
  size_t i = 0;
  while (i < static_cast<size_t>(r.events_size())) {
    const uint64_t rev = r.events(static_cast<int>(i)).kv().mod_revision();
    std::string events = std::move(w.partial);
    w.partial.clear();
    for (; i < static_cast<size_t>(r.events_size()) &&
           r.events(static_cast<int>(i)).kv().mod_revision() == rev;
         ++i) {
      const client::WatchEvent& e = r.events(static_cast<int>(i));
      events += e.SerializeAsString();
      if (absl::StartsWith(e.kv().key(), lock_prefix_)) {
        w.lock_events.push_back(e);
      }
    }
    if (rev != w.last + 1) {
      WatchViolation(absl::StrCat("revision ", rev, " delivered after ", w.last,
                                  rev <= w.last ? " (a repeat)" : " (a gap)"));
      return false;
    }
    auto [it, first] = revision_events_.emplace(rev, events);
    if (!first && it->second != events) {
      WatchViolation(absl::StrCat("revision ", rev,
                                  " has other events on member ", w.member));
      return false;
    }
    w.last = rev;
    ++result_.watch_revisions;
    // The broken variant feeds the observer once per response instead.
    if (!opt_.unsafe_observe_per_response) Observe(w);
  }
  Observe(w);
  if (r.revision() != w.last) {
    WatchViolation(absl::StrCat("a response says revision ", r.revision(),
                                " after delivering up to ", w.last));
    return false;
  }
  return true;
}

void Simulator::Observe(SimWatcher& w) {
  if (w.lock_events.empty()) return;
  std::optional<coord::Leader> now;
  const bool changed = w.observing && w.observer.Revision(w.lock_events, &now);
  w.lock_events.clear();
  if (!changed || !now.has_value()) return;
  // A new leader's key was created after the last one's.
  if (now->token <= w.last_leader) {
    WatchViolation(absl::StrCat("the observer reported leader token ",
                                now->token, " after ", w.last_leader));
  }
  w.last_leader = now->token;
  w.leaders.insert(now->token);
  ++result_.observer_leaders;
}

// Every holder of the lock was reported by every observer that has
// delivered the revision at which that holder read that it leads.
void Simulator::CheckObservers() {
  for (const SimWatcher& w : watchers_) {
    if (!w.observing) continue;
    for (const LockSpan& span : lock_spans_) {
      if (span.revision <= w.last && !w.leaders.contains(span.token)) {
        return WatchViolation(
            absl::StrCat("an observer on member ", w.member, ", at revision ",
                         w.last, ", never reported leader token ", span.token,
                         " (holder ", span.holder, ", who read at revision ",
                         span.revision, " that it leads)"));
      }
    }
  }
}

void Simulator::WatchViolation(const std::string& what) {
  if (!result_.safety_ok) return;
  result_.safety_ok = false;
  result_.safety_violation = absl::StrCat("watch: ", what);
}

void Simulator::ClientNext(int c) {
  Client& cl = clients_[c];
  if (now_ >= heal_at_ + kLivenessBoundNs && !cl.liveness) return;
  if (cl.liveness && liveness_acked_at_ >= 0) return;
  cl.active = true;
  cl.op = RegisterOp{};
  cl.op_id = next_op_id_++;
  cl.op.id = cl.op_id;
  cl.op.key = cl.liveness ? "live" : kKeys[rng_.Uniform(3)];
  cl.op.is_write = cl.liveness || rng_.Chance(600'000);
  if (cl.op.is_write) cl.op.value = absl::StrCat("v", cl.op_id);
  // A third of the writes are compare-and-sets, as transactions: write if
  // the key still holds the value last seen there (by any client, so it
  // may have changed since).
  if (cl.op.is_write && !cl.liveness && rng_.Chance(333'333)) {
    cl.op.is_cas = true;
    cl.op.expected = last_seen_[cl.op.key];
  }
  cl.op.call = now_;
  cl.seq = ++cl.seqs;
  cl.attempts = 0;
  cl.maybe_applied = false;
  Submit(c);
}

void Simulator::Submit(int c) {
  Client& cl = clients_[c];
  if (!cl.active) return;
  // Give up on an operation after 10 T in all.
  if (now_ - cl.op.call > 10 * kT) {
    Finish(c, /*known=*/false, now_);
    return;
  }
  Member* m = PickTarget(cl);
  if (m == nullptr) {
    Retry(c, rng_.Range(5 * kMs, 20 * kMs));
    return;
  }
  const uint64_t gen = ++cl.gen;
  const uint64_t op_id = cl.op_id;
  // Errors that come while Propose() or Read() runs are refusals: the
  // request never entered this member's log or read queue.
  auto refused = std::make_shared<absl::Status>();
  auto in_call = std::make_shared<bool>(true);
  const int64_t deadline = LocalNow(*m) + kAttemptTimeout;
  if (cl.op.is_write) {
    client::KvCommand cmd;
    cmd.mutable_op()->set_client(static_cast<uint64_t>(c) + 1);
    cmd.mutable_op()->set_seq(cl.seq);
    if (cl.op.is_cas) {
      // if value(key) = expected (version 0 for the absent ""), put. Every
      // other one is nested in a transaction of its own (etcd's API
      // allows that; the outcome is the inner one's).
      client::TxnRequest* txn = cmd.mutable_txn();
      if (cl.seq % 2 == 0) txn = txn->add_success()->mutable_txn();
      client::Compare* cmp = txn->add_compare();
      cmp->set_key(cl.op.key);
      if (cl.op.expected.empty()) {
        cmp->set_target(client::Compare::VERSION);
        cmp->set_version(0);
      } else {
        cmp->set_target(client::Compare::VALUE);
        cmp->set_value(cl.op.expected);
      }
      client::PutRequest* put = txn->add_success()->mutable_put();
      put->set_key(cl.op.key);
      put->set_value(cl.op.value);
    } else {
      cmd.mutable_put()->set_key(cl.op.key);
      cmd.mutable_put()->set_value(cl.op.value);
    }
    const client::OpId kv_op = cmd.op();
    m->driver->Propose(cmd.SerializeAsString(), deadline,
                       [this, c, gen, op_id, kv_op, refused,
                        in_call](absl::StatusOr<node::Applied> a) {
                         if (*in_call && !a.ok()) {
                           *refused = a.status();
                           return;
                         }
                         const Client& now_cl = clients_[c];
                         // Other errors leave the outcome open: the attempt's
                         // timeout retries with the same op id, which applies
                         // at most once.
                         if (!a.ok() || !now_cl.active || now_cl.gen != gen ||
                             now_cl.op_id != op_id) {
                           return;
                         }
                         acknowledged_.emplace(op_id, kv_op);
                         if (now_cl.op.is_cas) {
                           client::KvResult r;
                           QUORATE_CHECK(r.ParseFromString(a->result));
                           const client::TxnResponse& t =
                               r.txn().responses_size() == 1 &&
                                       r.txn().responses(0).has_txn()
                                   ? r.txn().responses(0).txn()
                                   : r.txn();
                           clients_[c].op.cas_succeeded = t.succeeded();
                         }
                         if (now_cl.liveness && liveness_acked_at_ < 0) {
                           liveness_acked_at_ = now_;
                         }
                         Finish(c, /*known=*/true, now_);
                       });
    *in_call = false;
    if (refused->ok()) {
      ++cl.attempts;
      cl.maybe_applied = true;
      if (opt_.unsafe_ack_on_propose) {
        // Broken on purpose: acknowledge before the write is committed.
        acknowledged_.emplace(op_id, kv_op);
        if (cl.liveness && liveness_acked_at_ < 0) liveness_acked_at_ = now_;
        Finish(c, /*known=*/true, now_);
        return;
      }
    }
  } else if (opt_.unsafe_stale_reads) {
    // Broken on purpose: answer from local state at once.
    const auto v = m->kv->Get(cl.op.key);
    cl.op.value = v.has_value() ? v->value : "";
    Finish(c, /*known=*/true, now_);
    return;
  } else {
    const uint64_t mid = m->id;
    m->driver->Read(deadline, [this, c, gen, op_id, mid, refused,
                               in_call](absl::StatusOr<uint64_t> r) {
      if (*in_call && !r.ok()) {
        *refused = r.status();
        return;
      }
      Client& now_cl = clients_[c];
      if (!now_cl.active || now_cl.gen != gen || now_cl.op_id != op_id) {
        return;
      }
      if (!r.ok()) {
        // The read point was lost with the leader: ask again soon.
        Retry(c, rng_.Range(kMs, 5 * kMs));
        return;
      }
      // The driver answers once the read point is applied here.
      const auto v = member(mid).kv->Get(now_cl.op.key);
      now_cl.op.value = v.has_value() ? v->value : "";
      Finish(c, /*known=*/true, now_);
    });
    *in_call = false;
  }
  if (!refused->ok() && cl.op.is_write && !cl.maybe_applied) {
    // Refused before it was proposed, and no earlier attempt entered a
    // log: it must never be applied, so the client may send it again as a
    // new operation (a new seq, not deduplicated with this one).
    ++result_.writes_refused;
    if (absl::IsResourceExhausted(*refused)) ++result_.writes_shed;
    client::OpId op;
    op.set_client(static_cast<uint64_t>(c) + 1);
    op.set_seq(cl.seq);
    refused_.push_back(op);
    cl.seq = ++cl.seqs;
  }
  if (!refused->ok()) {
    // Not accepted here: follow the leader hint, or try someone else.
    cl.leader_hint = m->driver->raft().leader();
    Retry(c, rng_.Range(kMs, 10 * kMs));
    return;
  }
  cl.leader_hint = m->id;
  Schedule(now_ + kAttemptTimeout,
           Event{EventKind::kClientTimeout, -1, c, gen, {}});
}

void Simulator::Retry(int c, int64_t delay) {
  Client& cl = clients_[c];
  Schedule(now_ + delay, Event{EventKind::kClientRetry, -1, c, ++cl.gen, {}});
}

void Simulator::ClientTimeout(int c) {
  Client& cl = clients_[c];
  if (!cl.active) return;
  cl.leader_hint = 0;
  if (cl.op.is_write && cl.attempts >= kWriteAttempts) {
    Finish(c, /*known=*/false, now_);
    return;
  }
  // Retry with the same operation id: applied at most once.
  Submit(c);
}

void Simulator::Finish(int c, bool known, int64_t ret) {
  Client& cl = clients_[c];
  cl.active = false;
  ++cl.gen;
  if (known) {
    cl.op.ret = ret;
    history_.push_back(cl.op);
    if (!cl.op.is_cas || cl.op.cas_succeeded) {
      last_seen_[cl.op.key] = cl.op.value;
    }
    if (cl.op.is_cas) {
      ++(cl.op.cas_succeeded ? result_.cas_succeeded : result_.cas_failed);
    }
  } else if (cl.op.is_write && cl.maybe_applied) {
    // The write may or may not have taken effect.
    cl.op.ret = RegisterOp::kNever;
    history_.push_back(cl.op);
  }
  // A read whose outcome is unknown observed nothing: left out.
  Trace(absl::StrCat("client ", c, cl.op.is_write ? " write " : " read ",
                     cl.op.key, "=", cl.op.value, known ? " ok" : " unknown"));
  Schedule(now_ + rng_.Range(0, 20 * kMs),
           Event{EventKind::kClientNext, -1, c, 0, {}});
}

// ---------------------------------------------------------------------------
// Nemesis.

void Simulator::StartFault() {
  if (healed_ || now_ >= kChaosNs) return;
  const Fault f = scenario_[rng_.Uniform(scenario_.size())];
  fault_ = f;
  result_.faults.insert(FaultName(f));
  Trace(absl::StrCat("fault ", FaultName(f)));
  Hash(0xfa17 + static_cast<uint64_t>(f));
  std::vector<uint64_t> ids = Ids();
  rng_.Shuffle(&ids);
  const size_t n = ids.size();
  switch (f) {
    case Fault::kSymmetricPartition: {
      const size_t k = 1 + rng_.Uniform(n - 1);
      Split({ids.begin(), ids.begin() + static_cast<std::ptrdiff_t>(k)},
            {ids.begin() + static_cast<std::ptrdiff_t>(k), ids.end()});
      break;
    }
    case Fault::kOneWayPartition: {
      const bool outgoing = rng_.Chance(500'000);
      for (size_t i = 1; i < n; ++i) {
        if (outgoing) {
          Cut(ids[0], ids[i]);
        } else {
          Cut(ids[i], ids[0]);
        }
      }
      break;
    }
    case Fault::kIsolateMember:
      Split({ids[0]}, {ids.begin() + 1, ids.end()});
      break;
    case Fault::kIsolateZone: {
      const int zone = static_cast<int>(rng_.Uniform(3));
      std::vector<uint64_t> in, out;
      for (const Member& m : members_) {
        if (m.present) (m.zone == zone ? in : out).push_back(m.id);
      }
      Split(in, out);
      break;
    }
    case Fault::kRandomHalves:
      Split({ids.begin(), ids.begin() + static_cast<std::ptrdiff_t>(n / 2)},
            {ids.begin() + static_cast<std::ptrdiff_t>(n / 2), ids.end()});
      break;
    case Fault::kMajoritiesRing:
      // Ring order is the shuffled order; each member keeps its neighbours
      // within distance n/2 (for 5: the two adjacent ones).
      for (size_t i = 0; i < n; ++i) {
        for (size_t j = i + 1; j < n; ++j) {
          const size_t d = std::min(j - i, n - (j - i));
          if (d > (n - 1) / 2 / 1 && n > 3) CutBoth(ids[i], ids[j]);
          if (n == 3 && d > 1) CutBoth(ids[i], ids[j]);
        }
      }
      break;
    case Fault::kBridge: {
      // ids[0] is the bridge; the others split into two halves that reach
      // each other only through it.
      std::vector<uint64_t> rest(ids.begin() + 1, ids.end());
      const size_t half = rest.size() / 2;
      Split({rest.begin(), rest.begin() + static_cast<std::ptrdiff_t>(half)},
            {rest.begin() + static_cast<std::ptrdiff_t>(half), rest.end()});
      break;
    }
    case Fault::kSwizzleClog: {
      swizzle_todo_.clear();
      swizzle_cut_.clear();
      swizzle_healing_ = false;
      for (size_t i = 0; i < n; ++i) {
        for (size_t j = i + 1; j < n; ++j) {
          swizzle_todo_.emplace_back(ids[i], ids[j]);
        }
      }
      rng_.Shuffle(&swizzle_todo_);
      swizzle_todo_.resize(1 + rng_.Uniform(swizzle_todo_.size()));
      Schedule(now_ + rng_.Range(kT / 4, kT), Event{EventKind::kNemesisStep});
      return;  // StepFault() ends it
    }
    case Fault::kCrash: {
      crash_after_vote_ = rng_.Chance(500'000);
      const size_t k = 1 + rng_.Uniform(n / 2 + 1);  // sometimes a majority
      for (size_t i = 0; i < k; ++i) {
        Member& m = member(ids[i]);
        Crash(m);
        Schedule(now_ + rng_.Range(kT / 2, 6 * kT),
                 Event{EventKind::kRestart, static_cast<int>(m.id)});
      }
      break;
    }
    case Fault::kDiskStall:
      member(ids[0]).stall_until = now_ + rng_.Range(kT, 8 * kT);
      break;
    case Fault::kNetworkChaos:
      net_chaos_ = true;
      drop_ppm_ = static_cast<uint64_t>(rng_.Range(20'000, 300'000));
      dup_ppm_ = static_cast<uint64_t>(rng_.Range(0, 100'000));
      slow_ppm_ = static_cast<uint64_t>(rng_.Range(50'000, 400'000));
      break;
    case Fault::kClockDrift: {
      const double bound = opt_.drift_beyond_rho ? 10 * opt_.rho : opt_.rho;
      for (Member& m : members_) SetRate(m, 1 + bound * rng_.Signed());
      break;
    }
    case Fault::kTransfer:
      Schedule(now_, Event{EventKind::kTransferStep});
      break;
    case Fault::kLeaderChurn:
      // Long enough for leases to need several tenures to expire.
      Schedule(now_, Event{EventKind::kTransferStep});
      Schedule(std::min(now_ + rng_.Range(20 * kT, 30 * kT), kChaosNs),
               Event{EventKind::kNemesisStop});
      return;
    case Fault::kSuspend: {
      // Half the time the leader's machine (whose window the others wait
      // out before electing another), otherwise any member's.
      Member* target = &member(ids[0]);
      if (rng_.Chance(500'000)) {
        for (Member& x : members_) {
          if (x.up && x.driver->raft().role() == raft::Role::kLeader) {
            target = &x;
            break;
          }
        }
      }
      Suspend(*target, rng_.Range(kT / 2, 6 * kT));
      break;
    }
    case Fault::kMembership: {
      plan_ = MembershipPlan{};
      plan_.deadline = now_ + 40 * kT;
      Member* leader = Leader();
      if (leader != nullptr) {
        const raft::Membership& ms = leader->driver->raft().membership();
        const size_t voters = ms.voters().size();
        uint64_t spare = 0;
        for (const Member& m : members_) {
          if (m.spare) {
            spare = m.id;
            break;
          }
        }
        if (spare != 0 && voters <= 4 &&
            (voters <= 3 || rng_.Chance(500'000))) {
          plan_.grow = true;
          plan_.target = spare;
        } else if (voters >= 3) {
          plan_.target = ms.voters()[rng_.Uniform(voters)];
        }
      }
      Trace(absl::StrCat("membership ", plan_.grow ? "add " : "remove ",
                         plan_.target));
      Schedule(now_ + rng_.Range(kMs, kT / 4), Event{EventKind::kNemesisStep});
      return;  // StepFault() ends it
    }
    case Fault::kTimeoutChange:
      // Between T and 2T: every other roll shortens it.
      cluster_t_ = cluster_t_ == kT ? 2 * kT : kT;
      roll_todo_ = ids;
      Schedule(now_ + rng_.Range(kT / 4, kT), Event{EventKind::kNemesisStep});
      return;  // StepFault() ends it
  }
  Schedule(std::min(now_ + rng_.Range(2 * kT, 12 * kT), kChaosNs),
           Event{EventKind::kNemesisStop});
}

void Simulator::ProposeMembership(Member& leader, raft::ConfChangeType type,
                                  uint64_t id, std::function<void()> done) {
  raft::ConfChange cc;
  cc.set_type(type);
  cc.set_member_id(id);
  if (type == raft::CONF_CHANGE_TYPE_ADD_LEARNER) {
    raft::MemberInfo* info = cc.mutable_member();
    info->set_id(id);
    info->set_name(absl::StrCat("m", id));
    info->set_zone(absl::StrCat("az-", member(id).zone));
  }
  Trace(absl::StrCat("propose ", raft::ConfChangeType_Name(type), " of ", id,
                     " at ", leader.id));
  leader.driver->ProposeConfChange(
      cc, LocalNow(leader) + 10 * kT,
      [done = std::move(done)](absl::StatusOr<node::Applied> a) {
        if (a.ok() && done) done();
      });
}

void Simulator::MembershipStep() {
  auto again = [this] {
    Schedule(now_ + rng_.Range(kT / 8, kT / 2), Event{EventKind::kNemesisStep});
  };
  if (plan_.target == 0 || now_ >= plan_.deadline || now_ >= kChaosNs) {
    StopFault();
    return;
  }
  Member& t = member(plan_.target);
  Member* leader = Leader();
  if (plan_.grow) {
    if (leader == nullptr) return again();
    const raft::Raft& r = leader->driver->raft();
    if (!r.membership().Contains(t.id)) {
      // (Again, if a new leader dropped the entry.)
      ProposeMembership(*leader, raft::CONF_CHANGE_TYPE_ADD_LEARNER, t.id);
      if (t.spare) {
        // Started by its operator right after the add, with an empty
        // directory: it has no configuration until the snapshot comes.
        t.spare = false;
        t.present = true;
        t.t_ns = cluster_t_;
        ++result_.members_added;
        Boot(t);
        invariants_.OnRestart(t.id, t.driver->raft());
        t.driver->Drive();
      }
      return again();
    }
    if (r.membership().IsLearner(t.id)) {
      // Promoted once caught up, as quoratectl member promote insists.
      const raft::Progress* pr = r.progress(t.id);
      if (pr != nullptr && pr->state == raft::Progress::State::kReplicate &&
          pr->match + 100 >= r.commit()) {
        ProposeMembership(*leader, raft::CONF_CHANGE_TYPE_PROMOTE_LEARNER,
                          t.id);
      }
      return again();
    }
    ++result_.members_promoted;
    StopFault();
    return;
  }
  switch (plan_.phase) {
    case 0:
      if (leader == nullptr) return again();
      if (leader->id == t.id) {
        // Removing the leader: it hands over first.
        (void)leader->driver->TransferLeadership(0);
        return again();
      }
      if (leader->driver->raft().membership().Contains(t.id)) {
        ProposeMembership(*leader, raft::CONF_CHANGE_TYPE_REMOVE, t.id,
                          [this, id = t.id] {
                            if (fault_ == Fault::kMembership &&
                                plan_.target == id && plan_.phase == 0) {
                              plan_.phase = 1;
                            }
                          });
      }
      return again();
    case 1:
      ++result_.members_removed;
      // The removed member runs on a while (no operator is that quick):
      // the others refuse it, and it must disturb nothing.
      plan_.stop_at = now_ + rng_.Range(0, 3 * kT);
      plan_.phase = 2;
      return again();
    default:
      if (now_ < plan_.stop_at || t.suspended) return again();
      Crash(t);
      t.present = false;
      StopFault();
      return;
  }
}

void Simulator::StepFault() {
  if (fault_ == Fault::kMembership) {
    MembershipStep();
    return;
  }
  if (fault_ == Fault::kTimeoutChange) {
    // One member at a time is stopped (killed: the worst case) and started
    // again soon with the new T, on the same disk.
    Member& m = member(roll_todo_.back());
    roll_todo_.pop_back();
    Trace(
        absl::StrCat("timeout change ", m.id, " to ", cluster_t_ / kMs, "ms"));
    m.t_ns = cluster_t_;
    ++result_.timeout_restarts;
    if (m.up) {
      Crash(m);
      Schedule(now_ + rng_.Range(kMs, kT),
               Event{EventKind::kRestart, static_cast<int>(m.id)});
    }  // a member down already starts with the new T when it restarts
    if (roll_todo_.empty()) {
      StopFault();
      return;
    }
    Schedule(now_ + rng_.Range(kT / 2, 4 * kT), Event{EventKind::kNemesisStep});
    return;
  }
  if (fault_ != Fault::kSwizzleClog) return;
  if (!swizzle_healing_) {
    const auto link = swizzle_todo_.back();
    swizzle_todo_.pop_back();
    CutBoth(link.first, link.second);
    swizzle_cut_.push_back(link);
    Trace(absl::StrCat("swizzle cut ", link.first, "-", link.second));
    if (swizzle_todo_.empty()) {
      swizzle_healing_ = true;
      rng_.Shuffle(&swizzle_cut_);
    }
  } else {
    const auto link = swizzle_cut_.back();
    swizzle_cut_.pop_back();
    cuts_.erase(link);
    cuts_.erase({link.second, link.first});
    Trace(absl::StrCat("swizzle heal ", link.first, "-", link.second));
    if (swizzle_cut_.empty()) {
      StopFault();
      return;
    }
  }
  Schedule(now_ + rng_.Range(kT / 4, kT), Event{EventKind::kNemesisStep});
}

void Simulator::StopFault() {
  if (!fault_.has_value()) return;
  Trace(absl::StrCat("fault ends ", FaultName(*fault_)));
  cuts_.clear();
  net_chaos_ = false;
  crash_after_vote_ = false;
  for (Member& m : members_) Resume(m);

  fault_.reset();
  // Crashed members restart on their own schedule; stalls end by
  // themselves.
  Schedule(now_ + rng_.Range(kT / 2, 3 * kT), Event{EventKind::kNemesisStart});
}

void Simulator::HealAll() {
  Trace("heal all");
  healed_ = true;
  heal_at_ = now_;
  fault_.reset();
  cuts_.clear();
  net_chaos_ = false;
  roll_todo_.clear();
  for (Member& m : members_) {
    Resume(m);
    if (m.t_ns != cluster_t_) {  // the rolling change is finished
      m.t_ns = cluster_t_;
      Crash(m);
    }
    if (std::abs(m.rate - 1) > opt_.rho)
      SetRate(m, 1 + opt_.rho * rng_.Signed());
    if (!m.up && m.present) Restart(m);
    if (m.stall_until > now_) {
      m.stall_until = 0;
      if (!m.disk.empty()) StartDiskOp(m);  // the stalled one, sooner
    }
  }
  // A membership change cut short: a member whose removal is committed is
  // stopped, as its operator would (it ran on, removed, until now).
  plan_ = MembershipPlan{};
  if (const Member* best = MostAdvanced();
      best != nullptr && Ids().size() < members_.size()) {
    const raft::Membership committed =
        best->driver->raft().committed_membership();
    for (Member& m : members_) {
      if (m.present && !committed.Contains(m.id)) {
        Crash(m);
        m.present = false;
      }
    }
  }
  // A dedicated client must get one write through within the bound.
  Client probe;
  probe.liveness = true;
  clients_.push_back(probe);
  ClientNext(static_cast<int>(clients_.size() - 1));
}

// ---------------------------------------------------------------------------

SimResult Simulator::Run() {
  QUORATE_CHECK(opt_.members >= 1) << "need members";
  QUORATE_CHECK(opt_.learners >= 0 && opt_.learners < opt_.members)
      << "need a voter";
  // Spares that a membership fault may add (fresh ids; a removed member
  // never comes back).
  const bool membership = std::find(scenario_.begin(), scenario_.end(),
                                    Fault::kMembership) != scenario_.end();
  const int spares = membership ? kSpares : 0;
  members_.resize(static_cast<size_t>(opt_.members + spares));
  for (int i = opt_.members; i < opt_.members + spares; ++i) {
    Member& m = members_[static_cast<size_t>(i)];
    m.id = static_cast<uint64_t>(i + 1);
    m.t_ns = kT;
    m.zone = i % 3;
    m.rate = 1 + opt_.rho * rng_.Signed();
    m.up = false;
    m.present = false;
    m.joiner = true;
    m.spare = true;
  }
  static const int kZones5[] = {0, 0, 1, 1, 2};
  for (int i = 0; i < opt_.members; ++i) {
    Member& m = members_[static_cast<size_t>(i)];
    m.id = static_cast<uint64_t>(i + 1);
    m.t_ns = kT;
    m.zone = opt_.members == 5 ? kZones5[i] : i % 3;
    // With drift_beyond_rho, clocks run up to 10 rho off from the start,
    // through every fault (until the heal phase): the guard's windows rely
    // on rho, and the checker must catch them failing.
    m.rate = 1 + (opt_.drift_beyond_rho ? 10 : 1) * opt_.rho * rng_.Signed();
    peer::MemberInfo info;
    info.set_id(m.id);
    info.set_name(absl::StrCat("m", m.id));
    info.set_zone(absl::StrCat("az-", m.zone));
    (IsLearner(m.id) ? initial_learners_ : initial_voters_).push_back(info);
  }
  for (Member& m : members_) {
    m.fs = std::make_unique<storage::testing::MemFileSystem>();
    if (!m.present) continue;
    Boot(m);
    invariants_.OnRestart(m.id, m.driver->raft());
  }
  for (Member& m : members_) {
    if (m.up) m.driver->Drive();
  }
  hrng_ = Rng(opt_.seed * 0xbf58476d1ce4e5b9ULL + 7);
  holders_.resize(kHolders);
  for (int h = 0; h < kHolders; ++h) {
    Holder& x = holders_[static_cast<size_t>(h)];
    x.home = 1 + hrng_.Uniform(static_cast<uint64_t>(opt_.members));
    x.rate = 1 + opt_.rho * hrng_.Signed();
    x.local_base = static_cast<int64_t>(hrng_.Uniform(1'000'000'000));
    Schedule(hrng_.Range(0, kT), Event{EventKind::kHolderWake, -1, h, 0});
  }
  srng_ = Rng(opt_.seed * 0xd6e8feb86659fd93ULL + 13);
  frng_ = Rng(opt_.seed * 0x2545f4914f6cdd1dULL + 17);
  Schedule(frng_.Range(kT, kFloodEveryNs), Event{EventKind::kFlood});
  shard_spans_.resize(kShards);
  wrng_ = Rng(opt_.seed * 0x94d049bb133111ebULL + 11);
  watchers_.resize(kWatchers);
  Schedule(kWatchTickNs, Event{EventKind::kWatchTick});
  clients_.resize(kClients);
  heal_at_ = kChaosNs;
  for (int c = 0; c < kClients; ++c) {
    Schedule(rng_.Range(0, kT), Event{EventKind::kClientNext, -1, c});
  }
  Schedule(rng_.Range(kT, 3 * kT), Event{EventKind::kNemesisStart});
  Schedule(kChaosNs, Event{EventKind::kHeal});
  if (spares > 0) {
    Schedule(kChaosNs + kLivenessBoundNs / 2, Event{EventKind::kCatchUpMark});
  }
  Schedule(kChaosNs + kLivenessBoundNs + kTailNs, Event{EventKind::kEnd});

  bool done = false;
  while (!done && !queue_.empty()) {
    auto node = queue_.extract(queue_.begin());
    now_ = node.key().first;
    Event& e = node.mapped();
    ++result_.events;
    Hash(static_cast<uint64_t>(e.kind) << 48 | static_cast<uint64_t>(now_));
    Member* m =
        e.member > 0 ? &member(static_cast<uint64_t>(e.member)) : nullptr;
    if (m != nullptr && m->suspended && e.kind != EventKind::kResume) {
      m->deferred.push_back(std::move(e));  // its machine is asleep
      continue;
    }
    switch (e.kind) {
      case EventKind::kDeliver:
        Deliver(*m, std::move(e.message));
        break;
      case EventKind::kTick:
        if (m->up && e.gen == m->timer_gen) {
          m->timer_at = -1;
          m->driver->Tick();
        }
        break;
      case EventKind::kDiskDone:
        if (m->up && e.gen == m->disk_gen && !m->disk.empty()) {
          FinishDiskOp(*m);
        }
        break;
      case EventKind::kRestart:
        Restart(*m);
        break;
      case EventKind::kClientNext:
        ClientNext(e.client);
        break;
      case EventKind::kClientRetry:
        if (e.gen == clients_[e.client].gen) Submit(e.client);
        break;
      case EventKind::kClientTimeout:
        if (e.gen == clients_[e.client].gen) ClientTimeout(e.client);
        break;
      case EventKind::kNemesisStart:
        StartFault();
        break;
      case EventKind::kNemesisStep:
        StepFault();
        break;
      case EventKind::kNemesisStop:
        // Swizzles and rolling changes end by themselves.
        if (fault_.has_value() && *fault_ != Fault::kSwizzleClog &&
            *fault_ != Fault::kTimeoutChange && *fault_ != Fault::kMembership) {
          StopFault();
        }
        break;
      case EventKind::kHeal:
        HealAll();
        break;
      case EventKind::kEnd:
        done = true;
        break;
      case EventKind::kCatchUpMark:
        catchup_target_ = 0;
        for (const Member& mm : members_) {
          if (mm.up) {
            catchup_target_ =
                std::max(catchup_target_,
                         static_cast<int64_t>(mm.driver->raft().commit()));
          }
        }
        break;
      case EventKind::kRenew:
        if (m->up && e.gen == m->guard_gen) Renew(*m);
        break;
      case EventKind::kGuardCheck:
        if (m->up && e.gen == m->guard_check_gen) {
          m->guard_check_at = -1;
          GuardEvaluate(*m);
        }
        break;
      case EventKind::kResume:
        if (e.gen == m->sleep_gen) Resume(*m);
        break;
      case EventKind::kRecordTiming:
        if (m->up && e.gen == m->boot_gen) {
          Trace(absl::StrCat("record T ", m->id));
          QUORATE_CHECK(m->storage->RecordElectionTimeout(m->t_ns).ok());
        }
        break;
      case EventKind::kLessorTick:
        if (m->up && e.gen == m->boot_gen) LessorTick(*m);
        break;
      case EventKind::kHolderWake:
        if (e.gen == holders_[static_cast<size_t>(e.client)].wake_gen) {
          HolderWake(e.client);
        }
        break;
      case EventKind::kHolderSend: {
        auto it = holder_msgs_.find(e.gen);
        HolderMsg msg = std::move(it->second);
        holder_msgs_.erase(it);
        HolderArrive(std::move(msg));
        break;
      }
      case EventKind::kHolderAnswer: {
        auto it = holder_msgs_.find(e.gen);
        HolderMsg msg = std::move(it->second);
        holder_msgs_.erase(it);
        HolderAnswer(std::move(msg));
        break;
      }
      case EventKind::kWatchTick:
        WatchTick();
        Schedule(now_ + kWatchTickNs, Event{EventKind::kWatchTick});
        break;
      case EventKind::kFlood:
        Flood();
        break;
      case EventKind::kTransferStep:
        if (fault_ == Fault::kTransfer || fault_ == Fault::kLeaderChurn) {
          // The current leader hands over to the most up-to-date voter.
          for (Member& x : members_) {
            if (x.up && x.driver->raft().role() == raft::Role::kLeader) {
              Trace(absl::StrCat("transfer from ", x.id));
              (void)x.driver->TransferLeadership(0);
              break;
            }
          }
          Schedule(now_ + (fault_ == Fault::kLeaderChurn
                               ? rng_.Range(35 * kT / 10, 48 * kT / 10)
                               : rng_.Range(kT, 3 * kT)),
                   Event{EventKind::kTransferStep});
        }
        break;
    }
    if (++events_since_check_ >= 256) {
      events_since_check_ = 0;
      CheckSafety();
    }
    if (!result_.safety_ok) break;
  }
  CheckSafety();
  // Windows still open end at their deadlines (no renewal extends them
  // any more).
  for (Member& m : members_) {
    if (m.up && m.guard != nullptr && m.open_window >= 0) {
      CloseWindow(m, RealAtGuard(m, m.guard->active_until_ns()));
    }
  }
  CheckWindows();
  CheckDeadHolders();
  CheckLockSpans();
  for (int h = 0; h < kHolders; ++h) {
    if (now_ >= holders_[static_cast<size_t>(h)].paused_until) TrackShards(h);
  }
  CheckShardLiveness();
  CheckLockLiveness();
  CheckObservers();
  result_.simulated_ns = now_;
  result_.operations = history_.size();
  result_.acknowledged = acknowledged_.size();
  result_.leaders = invariants_.leaders_seen();
  for (const GuardWindow& w : windows_) {
    if (IsLearner(w.member)) ++result_.learner_windows;
  }

  if (result_.safety_ok) {
    // No acknowledged write lost: the most advanced live member has applied
    // every write a client was told succeeded.
    const Member* best = MostAdvanced();
    for (const auto& [op, kv_op] : acknowledged_) {
      const std::optional<bool> applied =
          best == nullptr ? std::nullopt : best->kv->WasApplied(kv_op);
      // The store remembers every client's recent ops; the simulator's
      // clients stay far within that window.
      QUORATE_CHECK(best == nullptr || applied.has_value())
          << "the store cannot tell whether op " << op << " was applied";
      if (!applied.value_or(false)) {
        result_.safety_ok = false;
        result_.safety_violation =
            absl::StrCat("acknowledged write ", op, " lost");
        break;
      }
    }
  }
  if (result_.safety_ok) {
    // No refused attempt applied: a refusal means "not proposed".
    const Member* best = MostAdvanced();
    for (const client::OpId& op : refused_) {
      if (best != nullptr && best->kv->WasApplied(op).value_or(false)) {
        result_.safety_ok = false;
        result_.safety_violation =
            absl::StrCat("client ", op.client(), "'s write seq ", op.seq(),
                         " was refused before it was proposed, and applied");
        break;
      }
    }
  }
  if (result_.safety_ok) {
    const LinearizabilityResult lin = CheckLinearizable(history_);
    if (!lin.ok) {
      result_.safety_ok = false;
      result_.safety_violation =
          absl::StrCat("history of key '", lin.key, "' (", lin.ops,
                       " operations) is not linearizable");
    }
  }
  if (liveness_acked_at_ < 0 ||
      liveness_acked_at_ > heal_at_ + kLivenessBoundNs) {
    result_.liveness_ok = false;
    result_.liveness_violation = absl::StrCat(
        "no write committed within ", kLivenessBoundNs / kMs,
        "ms of healing (leader: ",
        [&] {
          for (const Member& mm : members_) {
            if (mm.up && mm.driver->raft().role() == raft::Role::kLeader) {
              return absl::StrCat(mm.id);
            }
          }
          return std::string("none");
        }(),
        ")");
  }
  if (result_.liveness_ok && catchup_target_ >= 0) {
    const Member* best = MostAdvanced();
    for (const Member& mm : members_) {
      if (best == nullptr || !mm.present || !mm.up ||
          !best->driver->raft().membership().Contains(mm.id)) {
        continue;
      }
      if (static_cast<int64_t>(mm.driver->applied()) < catchup_target_) {
        result_.liveness_ok = false;
        result_.liveness_violation = absl::StrCat(
            "member ", mm.id, " applied only ", mm.driver->applied(),
            " by the end, short of ", catchup_target_,
            ", the commit index at heal + ", kLivenessBoundNs / 2 / kMs, "ms",
            mm.joiner ? " (a member added at runtime)" : "");
        break;
      }
    }
  }
  Hash(result_.events);
  result_.trace_hash = hash_;
  return result_;
}

}  // namespace

SimResult RunSimulation(const SimOptions& options) {
  Simulator sim(options);
  return sim.Run();
}

}  // namespace quorate::sim
