// node/driver.h: the Ready loop, written once. It turns the consensus
// core's Readies into writes, messages, applied commands and answered
// callers, in the order the core's contract (raft.h) demands, and it is
// the only code that calls GetReady(), Advance() and the core's Take*()
// exits (the core's own unit tests aside).
//
// The node runtime (node.cc), the deterministic simulator (tests/sim/), the
// core's multi-member test cluster (tests/raft/cluster.cc) and raft_bench
// all run this code; each plugs in its own I/O through the interfaces
// below:
//
//   class MyIo : public DriverEnv, public DriverWriter { ... };
//   MyIo io;  // clock, send, post, tick; durable writes
//   auto driver = Driver::Create(config, options, std::move(restored), &io,
//                                &io);
//   (*driver)->Propose("command", deadline_ns,
//                      [](absl::StatusOr<Applied> a) { ... });
//   ... on each message:  (*driver)->Step(std::move(messages));
//   ... at each deadline: (*driver)->Tick();  (io.ScheduleTick said when)
//
// ORDER OF A READY (the obligations of raft.h, and where each is met):
//  1. Confirmed read points (rd.read_states) answer Confirm() at once: a
//     confirmation needs nothing of this member's disk.
//  2. A Ready with nothing to write completes at once. A leader applies
//     and answers first, then sends (its messages here carry only a commit
//     index or a heartbeat); anyone else sends first (its answers are what
//     the leader waits for).
//  3. A Ready whose only write is a new commit index (no fsync needed) is
//     not written: its hard state is held back and written with the next
//     Ready that has entries, and the Ready completes at once. A member
//     that restarts learns the commit index again.
//  4. Otherwise: rd.messages go out first (the followers start on new
//     entries before this member's disk does); then the write is submitted;
//     then the committed entries are applied and their proposals answered,
//     while the write is in flight (they are durable on a quorum already),
//     unless the Ready carries a snapshot (entries after it wait for it).
//  5. When the write is durable, and not before, rd.messages_after_persist
//     are sent (votes and append acknowledgements promise durability).
//     This happens in the writer's completion, on whatever thread the
//     writer completes on, so a follower's acknowledgement does not wait
//     for the driver's thread.
//  6. Back on the driver's thread: the snapshot is restored, committed
//     entries applied, read points noted and served once applied, failed
//     reads answered, Advance() called, and a snapshot taken if due.
//  7. While a write is in flight, what needs nothing of the disk goes on:
//     TakeMessages() (heartbeats), TakeReadStates() (confirmations and read
//     points) and TakeCommittedEntries() (applied and answered).
//
// SNAPSHOTS. Every `snapshot_every` applied entries (each member at its own
// phase of that interval: NextSnapshotAt; once the applied index is durable
// here) the state machine's state is captured on the driver's
// thread (StateMachine::Snapshot, cheap), serialized by
// DriverEnv::RunInBackground, saved by DriverWriter::SaveSnapshot after
// every write submitted before it, and only then is the core's log
// compacted. A snapshot's bytes are a peer::NodeSnapshot: the members'
// names and addresses, and the state machine's bytes.
//
// THREADS. Every method runs on one thread, the driver's (the node's loop).
// The only exception is the completion a DriverWriter is handed, which may
// run on any thread: it calls DriverEnv::Send (which must then be
// thread-safe) and DriverEnv::Post. The driver must outlive its writer's
// completions and whatever it posted: stop the writer (and drop what was
// posted) before destroying it. Callbacks (Propose, Read, Confirm, the
// observer) run on the driver's thread, never under a lock of the driver's.
#ifndef QUORATE_NODE_DRIVER_H_
#define QUORATE_NODE_DRIVER_H_

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "raft/raft.h"
#include "wire/peer.pb.h"

namespace quorate::node {

// What the members agree on. Called on the driver's thread only.
class StateMachine {
 public:
  virtual ~StateMachine() = default;
  // Committed commands, in index order, each exactly once since the last
  // Restore(). The result goes to the proposer (Applied::result); it must
  // be a function of the state and the command only.
  virtual std::string Apply(uint64_t index, const std::string& command) = 0;
  // The whole state as of the last Apply(), captured on the driver's
  // thread, so it must be cheap (pin or copy what later changes would
  // disturb). The returned function is called once, possibly on another
  // thread while Apply() goes on, and returns the snapshot's bytes.
  virtual absl::AnyInvocable<std::string()> Snapshot() = 0;
  // Replaces the whole state (from a snapshot of this member's or the
  // leader's).
  virtual absl::Status Restore(const std::string& snapshot) = 0;
};

// A proposal that was applied.
struct Applied {
  uint64_t index = 0;
  std::string result;  // what StateMachine::Apply returned
};

// A quorum round confirmed by the leader of `term`; `term_start` is the
// index of that leader's first entry (see Driver::Confirm).
struct Confirmation {
  uint64_t term = 0;
  uint64_t term_start = 0;
  // This member's applied index when the confirmation arrived: at or past
  // term_start, everything earlier leaders committed is applied here.
  uint64_t applied = 0;
};

// Time, messages and threads, as the driver sees them.
class DriverEnv {
 public:
  virtual ~DriverEnv() = default;
  // This member's monotonic clock, in nanoseconds.
  virtual int64_t Now() = 0;
  // Sends messages to their members; best effort, never blocks. Called
  // from the driver's thread, and from a DriverWriter's completion.
  virtual void Send(std::vector<raft::Message> messages) = 0;
  // Runs `fn` on the driver's thread, after the current call returns.
  // Called from a DriverWriter's completion and from RunInBackground's
  // function.
  virtual void Post(absl::AnyInvocable<void()> fn) = 0;
  // Runs `fn` off the driver's thread (a snapshot's serialization), or
  // right away where there is only one thread.
  virtual void RunInBackground(absl::AnyInvocable<void()> fn) = 0;
  // The core wants Driver::Tick() at `deadline_ns` (Now()'s clock); this
  // replaces any earlier request.
  virtual void ScheduleTick(int64_t deadline_ns) = 0;
};

// Durable storage, as the driver sees it. Requests complete in the order
// they were submitted. `done` is called exactly once per request, on any
// thread but never inside the call that submitted it; an error stops the
// driver (Driver::failed()).
class DriverWriter {
 public:
  struct Request {
    std::optional<raft::Snapshot> snapshot;
    // May start at or below the last index written: the log from
    // entries[0] on is replaced.
    std::vector<raft::EntryPtr> entries;
    std::optional<raft::HardState> hard_state;
  };
  virtual ~DriverWriter() = default;
  // Makes `request` durable (fsync), then calls `done`.
  virtual void Write(Request request,
                     absl::AnyInvocable<void(absl::Status)> done) = 0;
  // After every write submitted before it is durable: saves the snapshot
  // and removes the log up to metadata.index(), then calls `done`.
  virtual void SaveSnapshot(raft::SnapshotMetadata metadata,
                            std::shared_ptr<const std::string> data,
                            absl::AnyInvocable<void(absl::Status)> done) = 0;
};

// Optional hooks for tests and invariant checkers. Driver's thread.
class DriverObserver {
 public:
  virtual ~DriverObserver() = default;
  // Before each Ready is taken, and when the driver has nothing left to do.
  virtual void OnStep(const raft::Raft& /*raft*/) {}
  // This entry was just applied (a no-op entry or configuration change
  // too).
  virtual void OnApplied(const raft::Entry& /*entry*/) {}
  // A read point, or a failed read, whose request id did not come from
  // Driver::Read() or Confirm() (a test that called Raft::ReadIndex itself).
  virtual void OnOtherReadState(const raft::ReadState& /*read_state*/) {}
  virtual void OnOtherFailedRead(uint64_t /*request_id*/) {}
};

struct DriverOptions {
  // A snapshot is taken (and the log compacted) every this many applied
  // entries; 0: never.
  uint64_t snapshot_every = 10000;
  // Proposals, and reads, waiting for their entry or read point: each
  // RESOURCE_EXHAUSTED beyond this many.
  size_t max_waiting = 65536;
  // Proposals in the log and not yet applied, at most; the others wait in
  // order before the log (see Propose). An entry in the log cannot be
  // withdrawn, so this bounds how long a proposal waits after the point
  // where its caller could still be told "not applied". 0: no limit.
  size_t max_proposals_in_log = 1024;
  // Confirm() calls waiting, counted apart from everything else.
  size_t max_waiting_confirms = 1024;
  // Committed entries applied (and their proposals answered), and reads
  // answered, in one go before the driver lets other work in through
  // DriverEnv::Post: under a flood one commit or one read point may serve
  // thousands of callers, and peer messages and renewals must not wait for
  // all of them. 0: no limit.
  size_t max_apply_per_turn = 256;
  // The first id Read() and Confirm() hand the core. A leader may still
  // answer reads this member forwarded before it restarted, and must not
  // match them with new ones: start somewhere random.
  uint64_t first_read_id = 1;
  StateMachine* state_machine = nullptr;  // optional; not owned
  // The role or term changed. Driver's thread.
  std::function<void(raft::Role role, uint64_t term)> on_role;
  // The driver stopped working by itself (its storage failed); every
  // waiting caller was answered. Driver's thread.
  std::function<void(const absl::Status&)> on_fatal;
  // Notable events, one line each.
  std::function<void(const std::string&)> log;

  // Deliberately broken ordering, so that the simulator can show its
  // seeds catch it. Never set outside tests: each one breaks safety.
  struct Unsafe {
    // Answer a proposal as soon as its entry is durable on this member,
    // before it is committed.
    bool answer_before_commit = false;
    // Refuse a proposal as shed (RESOURCE_EXHAUSTED, "not proposed") and
    // propose it all the same.
    bool propose_what_it_sheds = false;
  } unsafe;
};

// What shedding by time refused (Driver::Propose), since the start.
struct OverloadCounters {
  uint64_t refused = 0;        // at once: it would not be applied in time
  uint64_t expired = 0;        // waited before the log until too late
  int64_t log_latency_ns = 0;  // the current moving average
};

// The member list a new cluster starts from: a snapshot at index 0 whose
// configuration lists the voters and learners, and whose data names them.
struct Bootstrap {
  raft::SnapshotMetadata metadata;
  std::shared_ptr<const std::string> data;
};
// Copies the members `snap` names into the metadata (SnapshotMetadata's
// members), so that a member installing the snapshot knows them before it
// parses the data.
void SetMetadataMembers(const peer::NodeSnapshot& snap,
                        raft::SnapshotMetadata* md);
Bootstrap MakeBootstrap(const std::vector<peer::MemberInfo>& voters,
                        const std::vector<peer::MemberInfo>& learners);

class Driver {
 public:
  // Restores the state machine and the member list from `restored`'s
  // snapshot and creates the core. FAILED_PRECONDITION if the snapshot was
  // not written by a driver (or the state machine refuses it).
  static absl::StatusOr<std::unique_ptr<Driver>> Create(
      const raft::Config& config, DriverOptions options,
      raft::RestoredState restored, DriverEnv* env, DriverWriter* writer,
      DriverObserver* observer = nullptr);
  ~Driver();
  Driver(const Driver&) = delete;
  Driver& operator=(const Driver&) = delete;

  // Runs the Ready loop as far as it can go without waiting. Every method
  // below that changes the core calls it; a caller that changed the core
  // through raft() (tests) calls it itself.
  void Drive();

  // Inputs. Each runs the loop afterwards.
  void Tick();
  // Every message is stepped; the first one the core refused (a message
  // it cannot use) names the status, and the others still count.
  absl::Status Step(std::vector<raft::Message> messages);
  void ReportUnreachable(uint64_t peer);
  absl::Status TransferLeadership(uint64_t target);

  // Proposes `command`. `done` runs with the index it was applied at and
  // the state machine's result; or UNAVAILABLE (refused before anything
  // was proposed: not the leader, or stopped), RESOURCE_EXHAUSTED (too
  // many waiting), ABORTED (leadership changed and another entry took its
  // place: not applied), DEADLINE_EXCEEDED or UNKNOWN (outcome unknown: it
  // may still be applied). A proposal whose deadline has passed when it
  // gets here is not proposed (DEADLINE_EXCEEDED, saying so). `done` may
  // run before Propose returns.
  //
  // SHEDDING BY TIME. At most max_proposals_in_log proposals are in the
  // log unapplied; the rest wait in order before it. The driver measures
  // how long an entry takes from the log to applied (a moving average).
  // A proposal that would, by that measure, not be applied before its
  // deadline is refused at once (RESOURCE_EXHAUSTED: never proposed), and
  // one that waited before the log until too little of its time is left
  // is answered DEADLINE_EXCEEDED without being proposed. Under a flood
  // the log therefore holds only entries that can still be answered in
  // time, and writes keep completing, instead of every caller waiting out
  // its deadline in a queue longer than the member can serve.
  // Callers and tests read the counters in overload().
  void Propose(std::string command, int64_t deadline_ns,
               std::function<void(absl::StatusOr<Applied>)> done);

  // Proposes one membership change (the core's ProposeConfChange: leader
  // only, one at a time). `change.member()` names, zones and addresses a
  // member being added. `done` as for Propose, once the change is
  // committed; the core's refusals (UNAVAILABLE, INVALID_ARGUMENT) at once.
  void ProposeConfChange(const raft::ConfChange& change, int64_t deadline_ns,
                         std::function<void(absl::StatusOr<Applied>)> done);

  // A linearizable read point: `done` runs once the state machine has
  // applied everything committed before the call (the index is passed).
  // UNAVAILABLE without a leader, DEADLINE_EXCEEDED at the deadline,
  // RESOURCE_EXHAUSTED when max_waiting reads wait already.
  //
  // Reads are batched: at most one read point is asked of the core (and
  // so of the leader) at a time; the reads that arrive meanwhile share
  // the next one, asked as soon as the current one is answered. Each read
  // so still gets a read point asked after it arrived (linearizable), and
  // a flood of reads costs the leader one pending request per member.
  void Read(int64_t deadline_ns,
            std::function<void(absl::StatusOr<uint64_t>)> done);

  // Asks the leader to confirm a quorum round that starts after it
  // receives the request (the partition guard's renewal). `done` runs as
  // soon as the confirmation arrives, without waiting for the state
  // machine or this member's disk. Each gets a read point of its own (no
  // batching: one slow answer must not hold up the next renewal), with a
  // budget of its own (max_waiting_confirms): however many reads wait, a
  // renewal never waits behind them or is refused because of them.
  void Confirm(int64_t deadline_ns,
               std::function<void(absl::StatusOr<Confirmation>)> done);

  // A snapshot of the state at the applied index (a backup: nothing is
  // saved or compacted). Captured now, serialized by RunInBackground();
  // `done` runs there.
  struct CapturedSnapshot {
    raft::SnapshotMetadata metadata;
    std::shared_ptr<const std::string> data;  // a peer::NodeSnapshot
  };
  void CaptureSnapshot(
      std::function<void(absl::StatusOr<CapturedSnapshot>)> done);

  // Fails every waiting proposal and read whose deadline is at or before
  // `now_ns`.
  void ExpireWaiting(int64_t now_ns);

  // Stops: answers every waiting caller (proposals: UNKNOWN; reads:
  // UNAVAILABLE) and ignores whatever completes later. Idempotent.
  void Close(absl::string_view why);

  // The state, for status pages and tests.
  const raft::Raft& raft() const { return *raft_; }
  raft::Raft& mutable_raft() { return *raft_; }
  const raft::SoftState& soft_state() const { return soft_; }
  uint64_t applied() const { return applied_; }
  const OverloadCounters& overload() const { return overload_; }
  // Proposals waiting before the log, and in it unapplied.
  size_t proposals_queued() const { return to_propose_.size(); }
  size_t proposals_in_log() const { return proposals_.size(); }
  bool failed() const { return failed_; }
  // The name, zone and address, by id, of every member this one must talk
  // to: those of the core's current configuration (raft().membership(): as
  // of the newest entry in the log, committed or not), of the committed
  // one, and the leader. `members_generation()` changes whenever the set
  // or what is known of them does.
  const std::map<uint64_t, peer::MemberInfo>& members() const {
    return members_;
  }
  uint64_t members_generation() const { return members_generation_; }
  // A configuration entry this member holds removes it (and none after it
  // adds it back).
  bool removed_self() const { return removed_self_; }

 private:
  struct Proposal {
    uint64_t term = 0;
    int64_t deadline_ns = 0;
    std::function<void(absl::StatusOr<Applied>)> done;
    int64_t proposed_ns = 0;  // when it entered the log
  };
  // A proposal waiting before the log.
  struct Queued {
    std::string command;
    int64_t deadline_ns = 0;
    std::function<void(absl::StatusOr<Applied>)> done;
  };
  // One caller of Read() or Confirm().
  struct ReadWaiter {
    int64_t deadline_ns = 0;
    // Errors, and (reads) the applied read point.
    std::function<void(absl::StatusOr<uint64_t>)> done;
    // Confirm(): answered when the leader confirms, without waiting for
    // the state machine.
    std::function<void(const raft::ReadState&)> confirmed;
  };
  enum Lane { kReads = 0, kConfirms = 1 };
  // The callers that share one read point asked of the core.
  struct ReadBatch {
    Lane lane = kReads;
    uint64_t index = 0;  // 0 until the leader confirmed a read point
    std::vector<ReadWaiter> waiters;
  };
  struct ReadLane {
    uint64_t in_flight = 0;           // request id asked of the core; 0: none
    std::vector<ReadWaiter> forming;  // arrived since: the next batch
    size_t waiting = 0;               // callers in this lane, all told
  };

  Driver(DriverOptions options, DriverEnv* env, DriverWriter* writer,
         DriverObserver* observer);

  absl::Status LoadSnapshot(const std::string& data);
  // Learns the members that configuration entries name (`entries`, new in
  // the log); true if there were any.
  bool NoteConfEntries(const std::vector<raft::EntryPtr>& entries);
  // Rebuilds members() if the configuration changed, or (`names_changed`)
  // what is known of its members may have.
  void SyncMembers(bool names_changed);
  // Tracks a proposal the core took at `index`.
  void TrackProposal(uint64_t index, int64_t deadline_ns, int64_t now,
                     std::function<void(absl::StatusOr<Applied>)> done);
  // UNAVAILABLE once stopped; RESOURCE_EXHAUSTED when `waiting` of `what`
  // (proposals, reads) are waiting already.
  absl::Status Admit(size_t waiting, absl::string_view what) const;
  void StartRead(Lane lane, ReadWaiter waiter);
  // Asks the core for a read point for `lane`'s forming batch, unless one
  // is in flight already.
  void LaunchBatch(Lane lane);
  // The batch `id` was answered or failed: its lane may ask again.
  void FinishBatch(uint64_t id, const ReadBatch& batch);
  void ReportRole();
  // Submits a Ready's write; its completion finishes the Ready.
  void SubmitWrite(raft::Ready rd);
  // The second half of a Ready, once its writes are durable.
  void Complete(raft::Ready rd);
  // Complete() for a Ready with nothing to write, then its messages.
  void CompleteThenSend(raft::Ready rd);
  void WriteDone(raft::Ready rd, const absl::Status& status);
  void ApplySnapshot(const raft::Snapshot& snapshot);
  // Queues committed entries and applies them in order, at most
  // max_apply_per_turn at a time (the rest in a posted continuation).
  void ApplyCommitted(const std::vector<raft::EntryPtr>& entries);
  void ApplySome();
  // Moves proposals from before the log into it while there is room,
  // answering those with too little time left (shedding by time).
  void ProposeQueued();
  void ProposeNow(Queued q);
  // How long a proposal with `ahead` others before it would wait until
  // applied, by the moving average (0 before anything was measured).
  int64_t ExpectedWaitNs(size_t ahead) const;
  // Posts (once) the rest of what ApplySome() and ServeReads() left for
  // the next turn.
  void PostContinuation();
  // Answers Confirm() calls whose round the leader confirmed.
  void ConfirmRounds(const std::vector<raft::ReadState>& states);
  // Reads: each one's confirmed read point, served once applied.
  void NoteReadPoints(const std::vector<raft::ReadState>& states);
  void FailReads(const std::vector<uint64_t>& ids);
  void ServeReads();
  void MaybeSnapshot();
  // The member list a snapshot with metadata `md` carries: its
  // configuration's members.
  peer::NodeSnapshot MembersAt(const raft::SnapshotMetadata& md) const;
  // The applied index at which the next snapshot is taken.
  uint64_t NextSnapshotAt() const;
  void Fail(const absl::Status& status);
  void AnswerAll(const absl::Status& proposals, const absl::Status& reads);
  void Log(const std::string& line) const {
    if (options_.log) options_.log(line);
  }

  const DriverOptions options_;
  DriverEnv* const env_;
  DriverWriter* const writer_;
  DriverObserver* const observer_;
  std::unique_ptr<raft::Raft> raft_;

  std::map<uint64_t, peer::MemberInfo> members_;  // by raft id
  uint64_t members_generation_ = 0;
  // Every member any snapshot or configuration entry this member has seen
  // named (a configuration entry may be truncated, and a removed member
  // may come back): members_ is the current configuration's part of it.
  std::map<uint64_t, peer::MemberInfo> known_;
  raft::Membership synced_membership_;
  raft::Membership synced_committed_;
  uint64_t synced_leader_ = 0;
  bool removed_self_ = false;
  raft::SoftState soft_;
  bool role_reported_ = false;
  raft::Role reported_role_ = raft::Role::kFollower;
  uint64_t reported_term_ = 0;

  bool driving_ = false;  // inside Drive(): a nested call only notes it
  bool drive_again_ = false;
  bool write_in_flight_ = false;
  // A commit index the core handed out without entries: it is written with
  // the next Ready that has some (step 3 above).
  std::optional<raft::HardState> unwritten_hard_state_;
  bool snapshot_in_flight_ = false;
  uint64_t last_snapshot_ = 0;  // index of the newest snapshot saved
  bool failed_ = false;
  bool closed_ = false;
  uint64_t applied_ = 0;
  int64_t scheduled_tick_ = 0;

  std::map<uint64_t, Proposal> proposals_;  // by index
  // Before the log, in arrival order (max_proposals_in_log).
  std::deque<Queued> to_propose_;
  // Its log_latency_ns: the moving average of an entry's time from the log
  // to applied, over this member's own proposals; 0 until one was applied.
  OverloadCounters overload_;
  // Committed, not yet applied (ApplySome).
  std::deque<raft::EntryPtr> to_apply_;
  // Reads whose read point is applied, not yet answered.
  std::deque<std::pair<ReadWaiter, uint64_t>> to_answer_;
  bool continuation_posted_ = false;
  std::map<uint64_t, ReadBatch> reads_;  // by request id
  ReadLane lanes_[2];
  uint64_t next_read_id_;
};

}  // namespace quorate::node

#endif  // QUORATE_NODE_DRIVER_H_
