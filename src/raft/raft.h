// raft/raft.h: Raft as a pure, deterministic state machine.
//
// The core never reads a clock, touches a socket, a file or a thread, or
// sleeps. Every call that depends on time takes the current monotonic time
// (`now_ns`, nanoseconds, never decreasing between calls). Its randomness
// comes from the injected Config::random. Given the same calls with the same
// arguments it produces the same Readys, bit for bit.
//
// THE READY/ADVANCE CONTRACT. A driver loops as below. The project has
// one, node/driver.h, which the node, the simulator and the test cluster
// all run; it documents the order it chose within these rules.
//
//   raft->Tick(now);                     // and Step()/Propose()/ReadIndex()
//   if (raft->HasReady()) {
//     Ready rd = raft->GetReady();
//     Send(rd.messages);                           // (1) may go right away
//     Persist(rd.snapshot, rd.entries, rd.hard_state);  // (2) fsync if
//                                                        //     rd.must_sync
//     if (!rd.snapshot) Apply(rd.committed_entries);     // may overlap (2)
//     // ... once (2) is durable:
//     Send(rd.messages_after_persist);             // (3)
//     ApplySnapshot(rd.snapshot);                  // (4) then the entries
//     Apply(rd.committed_entries);                 //     not applied yet
//     Serve(rd.read_states);                       // (5) once applied >= index
//     raft->Advance();                             // (6)
//   }
//
// Obligations of the driver:
//  - Persist before (3), (4) and (6). Nothing in messages_after_persist may
//    leave this member before this Ready's snapshot, entries and hard state
//    are durable: a vote or an append acknowledgement promises durability.
//  - `entries` may start at or below the last index already on disk: the
//    log from entries[0].index() on is replaced (a conflict).
//  - Apply committed_entries in order, exactly once, after the snapshot of
//    the same Ready (if any). They are committed, so durable on a quorum:
//    without a snapshot in the Ready they may be applied before (2)
//    completes, and TakeCommittedEntries() hands out the ones committed
//    while a Ready is outstanding.
//  - At most one Ready is outstanding: call Advance() before the next
//    GetReady(). Calls to Step()/Propose()/Tick() may continue in between;
//    their effects go into the next Ready. This is what batches a burst of
//    proposals into one fsync (group commit).
//  - A leader counts its own log in the commit quorum only up to what
//    Advance() reported durable, so its appends to followers (in
//    `messages`) may safely be sent before its own fsync (Raft thesis
//    §10.2.1).
//
// Compaction: after the state machine wrote a snapshot covering applied
// index i, the driver calls Compact(metadata of i, data). The core then
// forgets entries <= i and sends that snapshot to followers that need it.
// A leader sending a member an older snapshot (a transfer under way, heard
// from within 2T) keeps its log until a later Compact(): that member goes
// on from the log after the snapshot it receives.
//
// Time rules (the partition guard builds on these; see docs/design.md):
//  - A voter that heard from a leader within the minimum election timeout T,
//    on its own clock, ignores Vote and PreVote requests, unless they carry
//    the leadership-transfer flag (Raft thesis §4.2.3). A leader "hears from
//    itself" whenever it starts a heartbeat round, and a member that just
//    started counts its start as such contact (it may have forgotten one).
//  - A leader answers a ReadIndex only after a heartbeat round that started
//    after it received the request was acknowledged by a quorum.
#ifndef QUORATE_RAFT_RAFT_H_
#define QUORATE_RAFT_RAFT_H_

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "raft/log.h"
#include "raft/progress.h"
#include "raft/random.h"
#include "wire/raft.pb.h"

namespace quorate::raft {

enum class Role { kFollower, kPreCandidate, kCandidate, kLeader, kLearner };
const char* RoleName(Role role);

struct Config {
  uint64_t id = 0;  // this member; never 0
  int64_t heartbeat_interval_ns = 50'000'000;
  // T: the minimum election timeout. The actual timeout is uniform in
  // [T, 2T). Also the CheckQuorum period and the disruptive-server lease.
  int64_t election_timeout_ns = 500'000'000;
  bool pre_vote = true;
  bool check_quorum = true;
  // Entries per append message are batched up to this many bytes (at
  // least one entry is always sent).
  uint64_t max_message_bytes = 1 << 20;
  // Per follower, at most this many appends and bytes unacknowledged.
  size_t max_inflight_messages = 256;
  uint64_t max_inflight_bytes = 64 << 20;
  // Proposals beyond this many uncommitted bytes get RESOURCE_EXHAUSTED.
  uint64_t max_uncommitted_bytes = 256 << 20;
  // Snapshot chunk size for InstallSnapshot.
  uint64_t snapshot_chunk_bytes = 1 << 20;
  // Largest snapshot a follower accepts (bounds its receive buffer).
  uint64_t max_snapshot_bytes = 4ULL << 30;
  // Reads waiting for a quorum round, per member; RESOURCE_EXHAUSTED (or,
  // for forwarded reads, no answer) beyond it.
  size_t max_pending_reads = 4096;
  // Committed entries handed out per Ready are bounded by this many bytes.
  uint64_t max_committed_bytes_per_ready = 16 << 20;
  // When a leader's commit index advances, the followers learn it from
  // the next append of new entries, or from an append of its own after
  // this long at the latest. With a steady stream of proposals the commit
  // index then costs no message of its own. 0: an append of its own at
  // once. Less than the heartbeat interval.
  int64_t commit_notify_delay_ns = 0;
  // After Create(), this member refuses votes (the disruptive-server rule
  // below) and starts no election for at least this long; T if shorter. A
  // member restarted with a shorter T than its previous run must keep the
  // promises that run made: the driver passes the longest T it may have
  // promised under (docs/design.md, "Members agree on T and ρ").
  int64_t startup_lease_ns = 0;
  // Not owned; must outlive the core. Required.
  Random* random = nullptr;

  // Deliberately broken behaviour, so that the simulator can show its
  // checkers catch it. Never set outside tests: each one breaks safety.
  struct Unsafe {
    // Commit entries of earlier terms by counting replicas (the bug that
    // Raft §5.4.2 and Figure 8 rule out).
    bool commit_previous_terms = false;
    // A member added at runtime takes entries before it has a
    // configuration (the bug Configured() rules out).
    bool join_without_snapshot = false;
    // Each new snapshot restarts the transfers under way, and compaction
    // does not wait for them (the bug sending_ rules out: a state that
    // takes longer to send than the snapshot interval never arrives).
    bool restart_snapshot_transfers = false;
  } unsafe;

  absl::Status Validate() const;
};

// What a member recovered from its storage at start. Empty for a member
// that joins a new cluster: then `snapshot.conf_state` lists the initial
// members, at index 0.
struct RestoredState {
  HardState hard_state;
  SnapshotMetadata snapshot;
  std::shared_ptr<const std::string> snapshot_data;
  std::vector<Entry> entries;  // contiguous, starting at snapshot.index + 1
  // Highest index the state machine has applied (>= snapshot.index).
  uint64_t applied = 0;
};

struct SoftState {
  Role role = Role::kFollower;
  uint64_t leader = 0;
  bool operator==(const SoftState&) const = default;
};

// A linearizable read may be served once the state machine has applied
// `index`. `request_id` is the caller's id from ReadIndex().
struct ReadState {
  uint64_t request_id = 0;
  uint64_t index = 0;
  // The leader's term that confirmed it, and the index of that leader's
  // first entry in the term.
  uint64_t term = 0;
  uint64_t term_start = 0;
};

struct Snapshot {
  SnapshotMetadata metadata;
  std::shared_ptr<const std::string> data;
};

struct Ready {
  // Role or leader changed.
  std::optional<SoftState> soft_state;
  // Term, vote or commit changed: persist.
  std::optional<HardState> hard_state;
  // A snapshot received from the leader: persist, then apply first.
  std::optional<Snapshot> snapshot;
  // Entries to persist; may overwrite the log's suffix from entries[0].
  // Shared with the core's log, immutable.
  std::vector<EntryPtr> entries;
  // Safe to send before anything is durable.
  std::vector<Message> messages;
  // Send only after snapshot, entries and hard_state are durable.
  std::vector<Message> messages_after_persist;
  // Apply in order, after the writes above are durable.
  std::vector<EntryPtr> committed_entries;
  // Reads confirmed by a quorum round.
  std::vector<ReadState> read_states;
  // Local ReadIndex requests that will never be answered (this member lost
  // leadership or its leader); fail them now rather than at their deadline.
  std::vector<uint64_t> failed_reads;
  // Whether persisting needs an fsync: a new term, vote or entries. A
  // change of commit index alone does not.
  bool must_sync = false;
};

// Statistics for /status and tests. Cheap to read.
struct Status {
  uint64_t id = 0;
  Role role = Role::kFollower;
  uint64_t term = 0;
  uint64_t vote = 0;
  uint64_t leader = 0;
  uint64_t commit = 0;
  uint64_t applied = 0;
  uint64_t last_index = 0;
  uint64_t snapshot_index = 0;
  std::vector<uint64_t> voters;
  std::vector<uint64_t> learners;
};

class Raft {
 public:
  // Rebuilds a member from its restored state; `now_ns` is the current
  // monotonic time.
  static absl::StatusOr<std::unique_ptr<Raft>> Create(const Config& config,
                                                      RestoredState restored,
                                                      int64_t now_ns);

  Raft(const Raft&) = delete;
  Raft& operator=(const Raft&) = delete;

  // Advances timers: election timeout, heartbeats, CheckQuorum, transfer
  // timeout. Call it at least by NextDeadline().
  void Tick(int64_t now_ns);
  // The earliest time at which Tick() has something to do.
  int64_t NextDeadline() const;

  // Handles a message from a peer. Messages for another member, or from
  // members of older terms, are ignored as Raft says. A malformed message,
  // or one that contradicts this member's state (raft/validate.h), is
  // refused with INVALID_ARGUMENT and changes nothing.
  // Taken by value: entries are moved, not copied, into the log.
  absl::Status Step(Message message, int64_t now_ns);

  // Appends a command to the log. Leader only: UNAVAILABLE elsewhere (the
  // caller may retry at the leader; leader() names it when known), and
  // while a leadership transfer is in progress. RESOURCE_EXHAUSTED when too
  // many bytes are uncommitted. Returns the entry's index.
  absl::StatusOr<uint64_t> Propose(std::string data, int64_t now_ns);

  // Proposes one membership change. Leader only, after it committed an
  // entry of its term (the single-server errata fix), and one change at a
  // time: UNAVAILABLE otherwise. INVALID_ARGUMENT if the change does not
  // apply to the current configuration.
  absl::StatusOr<uint64_t> ProposeConfChange(const ConfChange& change,
                                             int64_t now_ns);

  // Asks for a linearizable read point. The answer arrives as a ReadState
  // with the same `request_id` in a later Ready, or as a failed_reads entry.
  // Followers and learners forward the request to the leader. UNAVAILABLE
  // when no leader is known.
  absl::Status ReadIndex(uint64_t request_id, int64_t now_ns);

  // Leader only: hands leadership to `target` (0: the most up-to-date
  // voter). Proposals are refused until the transfer ends or times out
  // after T.
  absl::Status TransferLeadership(uint64_t target, int64_t now_ns);

  // Starts an election now (tests, and a single-member bootstrap).
  void Campaign(int64_t now_ns);

  // The transport could not deliver to `peer` (its connection broke or was
  // refused). A leader stops pipelining to it. A follower whose leader it
  // is campaigns sooner if the leader stays silent: once T has passed
  // since it last heard from the leader, plus a random part of up to T/4
  // instead of up to T. Leaders that die (their process is gone, and the
  // connection is reset at once) are so replaced in about T instead of
  // 1.5 T on average. Every leader's heartbeat sets the usual deadline
  // again, and the rule that voters ignore requests within T of hearing
  // from a leader is untouched, so no leader is replaced any sooner than
  // before (the partition guard's windows rest on that rule).
  void ReportUnreachable(uint64_t peer);

  // The metadata a snapshot at applied index `index` must carry: term and
  // configuration as of that index. The driver adds MemberInfo.
  SnapshotMetadata SnapshotMetadataAt(uint64_t index) const;
  // See "Compaction" above. `metadata.index` must be applied and durable.
  absl::Status Compact(const SnapshotMetadata& metadata,
                       std::shared_ptr<const std::string> data);

  bool HasReady() const;
  Ready GetReady();
  void Advance();
  // While a Ready is outstanding (its writes not yet durable), the
  // messages that may leave anyway: those that would go into the next
  // Ready's `messages`, provided this member's current term is already
  // durable. A leader's heartbeats so keep flowing while its disk is slow,
  // and its followers do not start elections. Empty otherwise; what is
  // not taken goes into the next Ready as usual.
  std::vector<Message> TakeMessages();
  // Likewise the read points confirmed since (what would go into the next
  // Ready's `read_states`): a confirmation needs nothing of this member's
  // disk, and a slow fsync must not hold up every read and every
  // partition-guard renewal it answers.
  std::vector<ReadState> TakeReadStates();
  // Likewise the entries committed since, to apply now: what would go into
  // the next Ready's `committed_entries`, unless the outstanding Ready
  // holds a snapshot (entries after it wait for it). A committed entry is
  // durable on a quorum, whatever this member's disk is doing (a leader
  // counts its own log toward the quorum only as far as it is durable), so
  // the driver may apply these and answer their proposals before the
  // outstanding Ready's writes complete. Under load, a commit then waits
  // for no fsync but those that made it.
  std::vector<EntryPtr> TakeCommittedEntries();

  // Accessors.
  uint64_t id() const { return config_.id; }
  Role role() const;
  uint64_t term() const { return term_; }
  uint64_t leader() const { return leader_; }
  uint64_t commit() const { return commit_; }
  const RaftLog& log() const { return log_; }
  const Membership& membership() const { return membership_; }
  // Leader: whether an entry of its term is committed (it takes no
  // membership change before).
  bool committed_in_term() const { return committed_in_term_; }
  // The configuration as of the commit index: membership() without the
  // change (if any) not committed yet.
  Membership committed_membership() const { return MembershipAt(commit_); }
  // Whether membership() is committed: then committed_membership() is
  // the same, and the caller need not build it (a copy).
  bool membership_committed() const {
    return membership_history_.empty() ||
           membership_history_.back().first <= commit_;
  }
  // False only for a member added at runtime that has not yet received
  // its leader's snapshot: it has no configuration, and takes no entries
  // until it has one (a configuration always has a voter).
  bool Configured() const { return !snapshot_membership_.voters().empty(); }
  Status GetStatus() const;
  // The leader's progress for `peer`; nullptr if not leader or no such peer.
  const Progress* progress(uint64_t peer) const;

 private:
  struct PendingRead {
    uint64_t from;
    uint64_t request_id;
    uint64_t index;
    // The read is safe once this round is confirmed by a quorum.
    uint64_t round;
  };
  // No default member initializers: clang 14 cannot default-construct a
  // nested class that has them inside std::optional in its own enclosing
  // class.
  struct IncomingSnapshot {
    uint64_t from;
    SnapshotMetadata metadata;
    std::string data;
  };

  Raft(const Config& config, uint64_t snapshot_index, uint64_t snapshot_term);

  // Role transitions.
  void BecomeFollower(uint64_t term, uint64_t leader);
  void BecomePreCandidate();
  void BecomeCandidate();
  void BecomeLeader();
  void StartElection(bool pre_vote, bool transfer);
  void ResetElectionDeadline();
  void Reset(uint64_t term);

  // Message handling.
  // INVALID_ARGUMENT if `m` (well formed, ValidateMessage) contradicts this
  // member's state: a second leader in the term, an acknowledgement of
  // entries or rounds this leader never sent.
  absl::Status CheckAgainstState(const Message& m) const;
  void StepLeader(const Message& m);
  void StepCandidate(Message& m);
  void StepFollower(Message& m);
  void HandleVoteRequest(const Message& m);
  void HandleAppend(Message& m);
  void HandleHeartbeat(const Message& m);
  void HandleSnapshot(const Message& m);
  void HandleAppendResponse(const Message& m, Progress& pr);
  void HandleHeartbeatResponse(const Message& m, Progress& pr);
  void HandleSnapshotResponse(const Message& m, Progress& pr);
  void HandleReadRequest(uint64_t from, uint64_t request_id);
  bool InLease() const;
  // The quorum-th largest of a per-voter value: `self` for this member,
  // value_of(progress) for the others. nullopt without enough voters.
  template <typename T, typename ValueOf>
  std::optional<T> QuorumValue(T self, ValueOf value_of) const;
  // The time by which a quorum of voters (self included) was last heard.
  int64_t QuorumContactNs() const;
  // The highest heartbeat round acknowledged by a quorum of voters.
  uint64_t ConfirmedRound() const;
  Membership MembershipAt(uint64_t index) const;

  // Leader replication.
  void SendAppend(Progress& pr, bool allow_empty);
  void SendSnapshotChunk(Progress& pr);
  // The commit index advanced: tell the followers (commit_notify_delay_ns).
  void CommitAdvanced();
  void BroadcastAppend();
  void StartRound();
  // The committed entries not handed out yet (at most
  // max_committed_bytes_per_ready of them), now marked handed out.
  std::vector<EntryPtr> HandOutCommitted();
  void ReleaseReads();
  bool MaybeCommit();
  void SendTimeoutNow(uint64_t to);
  void AbortTransfer();
  void AppendLeaderEntry(Entry entry);

  // Membership.
  void ApplyConfEntry(const Entry& entry);
  void RebuildMembership();
  void SyncProgressWithMembership();
  Progress* FindProgress(uint64_t id);
  const Progress* FindProgress(uint64_t id) const;

  // Appends entries from a leader after (index, log_term); returns false on
  // a log mismatch.
  bool MaybeAppend(Message& m, uint64_t* last_new);
  void CommitTo(uint64_t index);
  void Send(Message m);
  void FailPendingReads();
  HardState CurrentHardState() const;

  Config config_;
  int64_t now_ns_ = 0;

  // Persistent state (Figure 2).
  uint64_t term_ = 0;
  uint64_t vote_ = 0;
  RaftLog log_;

  // Volatile state.
  Role role_ = Role::kFollower;
  uint64_t leader_ = 0;
  uint64_t commit_ = 0;
  uint64_t next_apply_ = 1;

  // Membership as of the last entry in the log: the snapshot's
  // configuration plus every configuration entry after it, in order.
  Membership snapshot_membership_;
  std::vector<std::pair<uint64_t, Membership>> membership_history_;
  Membership membership_;
  std::shared_ptr<const Snapshot> latest_snapshot_;
  // Leader: the snapshot each member in the kSnapshot state is being sent
  // (it may be older than latest_snapshot_), by member id.
  std::map<uint64_t, std::shared_ptr<const Snapshot>> sending_;

  // Timers, in now_ns units.
  int64_t election_deadline_ns_ = 0;
  int64_t heartbeat_due_ns_ = 0;
  // Last time this member heard from a current leader (or, as leader,
  // started a round): the disruptive-server lease.
  int64_t last_leader_contact_ns_ = 0;
  // Until when the start-up lease lasts (Config::startup_lease_ns).
  int64_t startup_lease_until_ns_ = 0;
  // The last_leader_contact_ns_ after which ReportUnreachable() shortened
  // the election deadline (-1: never).
  int64_t shortened_after_contact_ns_ = -1;

  // Candidate state.
  std::map<uint64_t, bool> votes_;

  // Leader state.
  std::vector<Progress> progress_;  // every member but self, sorted by id
  uint64_t term_start_index_ = 0;   // index of this term's empty entry
  bool committed_in_term_ = false;
  uint64_t pending_conf_index_ = 0;
  uint64_t uncommitted_bytes_ = 0;
  uint64_t round_ = 0;            // last heartbeat round started
  uint64_t confirmed_round_ = 0;  // last round acknowledged by a quorum
  bool round_wanted_ = false;     // reads wait for a round not yet started
  std::deque<PendingRead> pending_reads_;
  // Follower: ids of local reads forwarded to the leader, unanswered, and
  // when each expires (in request order, so expiry times increase).
  std::set<uint64_t> forwarded_reads_;
  std::deque<std::pair<int64_t, uint64_t>> forwarded_expiry_;
  uint64_t transfer_target_ = 0;
  bool timeout_now_sent_ = false;
  int64_t transfer_deadline_ns_ = 0;
  // When the newest heartbeat round started, and when the newest round
  // that answered ReadIndex requests did (granting partition-guard
  // windows). A transfer's TimeoutNow waits until T after the latter.
  int64_t round_start_ns_ = 0;
  int64_t grant_round_start_ns_ = 0;
  // Whether the windows this leader granted have all ended (see above).
  bool GrantsLapsed() const;
  bool replication_pending_ = false;  // appends to broadcast at GetReady
  // A leader's commit index advanced and no append has carried it yet:
  // broadcast then (commit_notify_delay_ns). 0: nothing is due.
  int64_t commit_notify_due_ns_ = 0;

  // Follower state.
  std::optional<IncomingSnapshot> incoming_snapshot_;
  // A snapshot from the leader replaced the log and is not durable yet:
  // the log's stable index does not count until Advance() says so.
  bool snapshot_unstable_ = false;
  bool snapshot_handed_out_ = false;

  // Ready under construction.
  HardState persisted_hard_state_;
  // Term of the hard state known durable (at Create(), and at each
  // Advance() the one handed out before it).
  uint64_t durable_term_ = 0;
  uint64_t handed_out_term_ = 0;
  SoftState reported_soft_state_;
  std::optional<Snapshot> ready_snapshot_;
  std::vector<Message> messages_;
  std::vector<Message> messages_after_persist_;
  std::vector<ReadState> read_states_;
  std::vector<uint64_t> failed_reads_;
  bool ready_outstanding_ = false;
};

}  // namespace quorate::raft

#endif  // QUORATE_RAFT_RAFT_H_
