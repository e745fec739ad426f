#include "raft/raft.h"

#include <algorithm>
#include <limits>
#include <utility>

#include "absl/container/inlined_vector.h"
#include "absl/strings/str_cat.h"
#include "raft/validate.h"
#include "util/check.h"

namespace quorate::raft {
namespace {

constexpr int64_t kNever = std::numeric_limits<int64_t>::max();

bool IsLeaderMessage(MessageType type) {
  return type == MESSAGE_TYPE_APPEND || type == MESSAGE_TYPE_HEARTBEAT ||
         type == MESSAGE_TYPE_SNAPSHOT;
}

// Messages that promise durable state: they may leave only after the Ready
// that produced them is persisted. A vote request carries the candidate's
// own vote; a vote grant, an append or snapshot acknowledgement promise the
// voter's vote or log.
bool MustWaitForPersist(MessageType type) {
  return type == MESSAGE_TYPE_VOTE || type == MESSAGE_TYPE_VOTE_RESPONSE ||
         type == MESSAGE_TYPE_APPEND_RESPONSE ||
         type == MESSAGE_TYPE_SNAPSHOT_RESPONSE;
}

}  // namespace

const char* RoleName(Role role) {
  switch (role) {
    case Role::kFollower:
      return "follower";
    case Role::kPreCandidate:
      return "pre_candidate";
    case Role::kCandidate:
      return "candidate";
    case Role::kLeader:
      return "leader";
    case Role::kLearner:
      return "learner";
  }
  return "unknown";
}

absl::Status Config::Validate() const {
  if (id == 0) return absl::InvalidArgumentError("member id must not be 0");
  if (random == nullptr) {
    return absl::InvalidArgumentError("a random generator is required");
  }
  if (heartbeat_interval_ns <= 0) {
    return absl::InvalidArgumentError("heartbeat interval must be positive");
  }
  if (election_timeout_ns <= heartbeat_interval_ns) {
    return absl::InvalidArgumentError(
        absl::StrCat("election timeout (", election_timeout_ns,
                     "ns) must be longer than the heartbeat interval (",
                     heartbeat_interval_ns, "ns)"));
  }
  if (commit_notify_delay_ns < 0 ||
      commit_notify_delay_ns >= heartbeat_interval_ns) {
    return absl::InvalidArgumentError(
        absl::StrCat("the commit notification delay (", commit_notify_delay_ns,
                     "ns) must be at least 0 and less than the heartbeat "
                     "interval (",
                     heartbeat_interval_ns, "ns)"));
  }
  if (max_message_bytes == 0 || max_inflight_messages == 0 ||
      max_inflight_bytes == 0 || snapshot_chunk_bytes == 0 ||
      max_committed_bytes_per_ready == 0 || max_uncommitted_bytes == 0) {
    return absl::InvalidArgumentError("size limits must be positive");
  }
  return absl::OkStatus();
}

Raft::Raft(const Config& config, uint64_t snapshot_index,
           uint64_t snapshot_term)
    : config_(config), log_(snapshot_index, snapshot_term) {}

absl::StatusOr<std::unique_ptr<Raft>> Raft::Create(const Config& config,
                                                   RestoredState restored,
                                                   int64_t now_ns) {
  if (absl::Status s = config.Validate(); !s.ok()) return s;
  const SnapshotMetadata& snap = restored.snapshot;
  if (absl::Status s = ValidateSnapshotMetadata(snap); !s.ok()) {
    return absl::DataLossError(
        absl::StrCat("restored snapshot: ", s.message()));
  }
  uint64_t expected = snap.index() + 1;
  uint64_t term = snap.term();
  for (const Entry& e : restored.entries) {
    if (e.index() != expected) {
      return absl::DataLossError(
          absl::StrCat("restored log is not contiguous: expected entry ",
                       expected, ", found ", e.index()));
    }
    if (e.term() < term || e.term() > kMaxTerm) {
      return absl::DataLossError(
          absl::StrCat("restored entry ", e.index(), " has term ", e.term(),
                       ", after term ", term, ": terms go back in the log"));
    }
    if (e.type() == ENTRY_TYPE_CONF_CHANGE) {
      ConfChange change;
      absl::Status s = change.ParseFromString(e.data())
                           ? ValidateConfChange(change)
                           : absl::InvalidArgumentError("unreadable");
      if (!s.ok()) {
        return absl::DataLossError(absl::StrCat("restored configuration entry ",
                                                e.index(), ": ", s.message()));
      }
    } else if (!EntryType_IsValid(e.type())) {
      return absl::DataLossError(absl::StrCat("restored entry ", e.index(),
                                              " has unknown type ",
                                              static_cast<int>(e.type())));
    }
    term = e.term();
    ++expected;
  }
  if (restored.hard_state.term() > kMaxTerm) {
    return absl::DataLossError(absl::StrCat(
        "restored term ", restored.hard_state.term(), " is out of range"));
  }
  const uint64_t last = expected - 1;
  if (restored.hard_state.commit() > last) {
    return absl::DataLossError(
        absl::StrCat("hard state commit ", restored.hard_state.commit(),
                     " is beyond the last log entry ", last));
  }
  if (restored.applied > last) {
    return absl::DataLossError(absl::StrCat("applied index ", restored.applied,
                                            " is beyond the last log entry ",
                                            last));
  }

  std::unique_ptr<Raft> r(new Raft(config, snap.index(), snap.term()));
  for (Entry& e : restored.entries) r->log_.Append(std::move(e));
  r->log_.MarkAllStable();
  r->term_ = restored.hard_state.term();
  r->vote_ = restored.hard_state.vote();
  // A crash can keep a Ready's entries but not its hard state (storage
  // makes a prefix of the records durable). Entries of a later term mean
  // that term was reached: take it, with no vote in it.
  if (r->log_.last_term() > r->term_) {
    r->term_ = r->log_.last_term();
    r->vote_ = 0;
  }
  r->commit_ =
      std::max({restored.hard_state.commit(), snap.index(), restored.applied});
  r->next_apply_ = std::max(restored.applied, snap.index()) + 1;
  r->snapshot_membership_ = Membership(snap.conf_state());
  if (snap.index() > 0 && restored.snapshot_data != nullptr) {
    r->latest_snapshot_ = std::make_shared<const Snapshot>(
        Snapshot{snap, std::move(restored.snapshot_data)});
  } else if (snap.index() == 0 && snap.has_conf_state()) {
    // The initial configuration: a member added at runtime gets it from
    // this (HandleAppendResponse).
    r->latest_snapshot_ = std::make_shared<const Snapshot>(
        Snapshot{snap, restored.snapshot_data != nullptr
                           ? std::move(restored.snapshot_data)
                           : std::make_shared<const std::string>()});
  }
  r->RebuildMembership();
  r->persisted_hard_state_ = r->CurrentHardState();
  r->durable_term_ = r->persisted_hard_state_.term();
  r->handed_out_term_ = r->durable_term_;
  r->now_ns_ = now_ns;
  // A restarted member may have forgotten that it recently heard from a
  // leader; it keeps the disruptive-server promise by treating its start as
  // such contact.
  r->last_leader_contact_ns_ = now_ns;
  r->startup_lease_until_ns_ =
      now_ns + std::max(config.election_timeout_ns, config.startup_lease_ns);
  r->ResetElectionDeadline();
  r->reported_soft_state_ = SoftState{r->role(), 0};
  return r;
}

Role Raft::role() const {
  if (role_ == Role::kFollower && membership_.IsLearner(config_.id)) {
    return Role::kLearner;
  }
  return role_;
}

HardState Raft::CurrentHardState() const {
  HardState hs;
  hs.set_term(term_);
  hs.set_vote(vote_);
  hs.set_commit(commit_);
  return hs;
}

// ---------------------------------------------------------------------------
// Time.

void Raft::ResetElectionDeadline() {
  const auto t = static_cast<uint64_t>(config_.election_timeout_ns);
  election_deadline_ns_ =
      now_ns_ + static_cast<int64_t>(t + config_.random->Uniform(t));
}

bool Raft::InLease() const {
  return now_ns_ < last_leader_contact_ns_ + config_.election_timeout_ns ||
         now_ns_ < startup_lease_until_ns_;
}

template <typename T, typename ValueOf>
std::optional<T> Raft::QuorumValue(T self, ValueOf value_of) const {
  absl::InlinedVector<T, 8> values;
  for (uint64_t v : membership_.voters()) {
    if (v == config_.id) {
      values.push_back(self);
    } else if (const Progress* pr = FindProgress(v)) {
      values.push_back(value_of(*pr));
    }
  }
  const size_t quorum = membership_.Quorum();
  if (values.size() < quorum) return std::nullopt;
  std::nth_element(values.begin(), values.begin() + (quorum - 1), values.end(),
                   std::greater<>());
  return values[quorum - 1];
}

int64_t Raft::QuorumContactNs() const {
  return QuorumValue<int64_t>(
             now_ns_, [](const Progress& pr) { return pr.last_heard_ns; })
      .value_or(std::numeric_limits<int64_t>::min());
}

void Raft::Tick(int64_t now_ns) {
  QUORATE_CHECK_GE(now_ns, now_ns_) << "monotonic time went back";
  now_ns_ = now_ns;
  // A forwarded read whose request or answer was lost fails after 2T, so
  // that the set of waiting reads cannot fill up for good.
  while (!forwarded_expiry_.empty() &&
         forwarded_expiry_.front().first <= now_ns_) {
    const uint64_t id = forwarded_expiry_.front().second;
    forwarded_expiry_.pop_front();
    if (forwarded_reads_.erase(id) > 0) failed_reads_.push_back(id);
  }
  if (role_ == Role::kLeader) {
    if (config_.check_quorum &&
        now_ns_ - QuorumContactNs() >= config_.election_timeout_ns) {
      // CheckQuorum: no quorum heard from within T.
      BecomeFollower(term_, 0);
      return;
    }
    if (transfer_target_ != 0 && now_ns_ >= transfer_deadline_ns_) {
      if (timeout_now_sent_) {
        // The target may still campaign with the transfer flag, which lifts
        // every lease: never lead on in this term.
        BecomeFollower(term_, 0);
        return;
      }
      AbortTransfer();
    }
    if (transfer_target_ != 0 && !timeout_now_sent_ && GrantsLapsed()) {
      const Progress* pr = FindProgress(transfer_target_);
      if (pr != nullptr && pr->match == log_.last_index()) {
        SendTimeoutNow(transfer_target_);
      }
    }
    if (commit_notify_due_ns_ != 0 && now_ns_ >= commit_notify_due_ns_) {
      commit_notify_due_ns_ = 0;
      replication_pending_ = true;
    }
    if (now_ns_ >= heartbeat_due_ns_) StartRound();
    return;
  }
  if (now_ns_ >= election_deadline_ns_) {
    if (now_ns_ < startup_lease_until_ns_) {
      // Our own vote would break a promise of our previous run.
      election_deadline_ns_ = startup_lease_until_ns_;
    } else if (membership_.IsVoter(config_.id)) {
      StartElection(config_.pre_vote, /*transfer=*/false);
    } else {
      ResetElectionDeadline();
    }
  }
}

int64_t Raft::NextDeadline() const {
  if (role_ != Role::kLeader) {
    int64_t deadline =
        membership_.IsVoter(config_.id) ? election_deadline_ns_ : kNever;
    if (!forwarded_expiry_.empty()) {
      deadline = std::min(deadline, forwarded_expiry_.front().first);
    }
    return deadline;
  }
  int64_t deadline = heartbeat_due_ns_;
  if (commit_notify_due_ns_ != 0) {
    deadline = std::min(deadline, commit_notify_due_ns_);
  }
  if (config_.check_quorum) {
    const int64_t lapse = QuorumContactNs();
    if (lapse > std::numeric_limits<int64_t>::min()) {
      deadline = std::min(deadline, lapse + config_.election_timeout_ns);
    }
  }
  if (transfer_target_ != 0) {
    deadline = std::min(deadline, transfer_deadline_ns_);
    const int64_t lapse = grant_round_start_ns_ + config_.election_timeout_ns;
    if (!timeout_now_sent_ && lapse > now_ns_) {
      deadline = std::min(deadline, lapse);
    }
  }
  return deadline;
}

// ---------------------------------------------------------------------------
// Role transitions.

void Raft::Reset(uint64_t term) {
  if (term != term_) {
    term_ = term;
    vote_ = 0;
  }
  leader_ = 0;
  votes_.clear();
  progress_.clear();
  sending_.clear();
  transfer_target_ = 0;
  timeout_now_sent_ = false;
  FailPendingReads();
  round_ = 0;
  confirmed_round_ = 0;
  round_wanted_ = false;
  replication_pending_ = false;
  commit_notify_due_ns_ = 0;
  uncommitted_bytes_ = 0;
  committed_in_term_ = false;
  ResetElectionDeadline();
}

void Raft::BecomeFollower(uint64_t term, uint64_t leader) {
  Reset(term);
  role_ = Role::kFollower;
  leader_ = leader;
}

void Raft::BecomePreCandidate() {
  // PreVote does not change the term or the vote (thesis §9.6).
  const uint64_t term = term_;
  Reset(term);
  role_ = Role::kPreCandidate;
}

void Raft::BecomeCandidate() {
  Reset(term_ + 1);
  vote_ = config_.id;
  role_ = Role::kCandidate;
}

void Raft::BecomeLeader() {
  QUORATE_CHECK(role_ == Role::kCandidate) << "only a candidate can lead";
  const uint64_t term = term_;
  Reset(term);
  role_ = Role::kLeader;
  leader_ = config_.id;
  SyncProgressWithMembership();
  for (Progress& pr : progress_) pr.last_heard_ns = now_ns_;
  // A configuration entry from an earlier term may still be uncommitted;
  // no new change until this term's first entry commits (errata fix).
  pending_conf_index_ = log_.last_index();
  Entry empty;
  empty.set_type(ENTRY_TYPE_EMPTY);
  AppendLeaderEntry(std::move(empty));
  term_start_index_ = log_.last_index();
  StartRound();
  MaybeCommit();
}

void Raft::StartElection(bool pre_vote, bool transfer) {
  if (!membership_.IsVoter(config_.id)) return;
  if (pre_vote) {
    BecomePreCandidate();
  } else {
    BecomeCandidate();
  }
  votes_[config_.id] = true;
  if (membership_.Quorum() <= 1) {
    if (pre_vote) {
      StartElection(/*pre_vote=*/false, transfer);
    } else {
      BecomeLeader();
    }
    return;
  }
  for (uint64_t v : membership_.voters()) {
    if (v == config_.id) continue;
    Message m;
    m.set_type(pre_vote ? MESSAGE_TYPE_PRE_VOTE : MESSAGE_TYPE_VOTE);
    m.set_to(v);
    // A pre-candidate asks about the term it would campaign in.
    m.set_term(pre_vote ? term_ + 1 : term_);
    m.set_log_term(log_.last_term());
    m.set_index(log_.last_index());
    m.set_transfer(transfer);
    Send(std::move(m));
  }
}

void Raft::Campaign(int64_t now_ns) {
  QUORATE_CHECK_GE(now_ns, now_ns_) << "monotonic time went back";
  now_ns_ = now_ns;
  // Our own vote would break the promise of a round we acknowledged.
  if (role_ == Role::kLeader || InLease()) return;
  StartElection(config_.pre_vote, /*transfer=*/false);
}

// ---------------------------------------------------------------------------
// Messages.

void Raft::Send(Message m) {
  m.set_from(config_.id);
  if (m.term() == 0) m.set_term(term_);
  // Raft Figure 2: a member answers only after its current term is on
  // disk. While a new term is not yet handed out for persisting, every
  // message waits; once handed out, the next Ready comes only after
  // Advance(), that is after the term is durable.
  if (MustWaitForPersist(m.type()) || term_ != persisted_hard_state_.term()) {
    messages_after_persist_.push_back(std::move(m));
  } else {
    messages_.push_back(std::move(m));
  }
}

absl::Status Raft::Step(Message m, int64_t now_ns) {
  QUORATE_CHECK_GE(now_ns, now_ns_) << "monotonic time went back";
  now_ns_ = now_ns;
  if (m.to() != config_.id) {
    return absl::InvalidArgumentError(absl::StrCat(
        "message for member ", m.to(), " delivered to member ", config_.id));
  }
  if (m.from() == 0 || m.from() == config_.id) {
    return absl::InvalidArgumentError(
        absl::StrCat("message with bad sender ", m.from()));
  }
  if (absl::Status s = ValidateMessage(m); !s.ok()) return s;
  const MessageType type = m.type();
  const bool vote_request =
      type == MESSAGE_TYPE_VOTE || type == MESSAGE_TYPE_PRE_VOTE;
  // Lifting the disruptive-server rule is a leader's hand-off to a voter
  // it knows; a candidate this member does not know as a voter gets no
  // such privilege (its request is judged as any other).
  if (vote_request && m.transfer() && !membership_.IsVoter(m.from())) {
    m.set_transfer(false);
  }
  // Checks that need this member's state come before anything changes,
  // so that a refused message leaves no trace.
  if (absl::Status s = CheckAgainstState(m); !s.ok()) return s;

  if (m.term() > term_) {
    if (vote_request && !m.transfer() && InLease()) {
      // Thesis §4.2.3: a member that recently heard from a leader ignores
      // elections, so a partitioned member cannot depose a working leader
      // and no new leader can exist while an acknowledged round's promise
      // lasts.
      return absl::OkStatus();
    }
    const bool keep_term =
        type == MESSAGE_TYPE_PRE_VOTE ||
        (type == MESSAGE_TYPE_PRE_VOTE_RESPONSE && !m.reject());
    if (!keep_term) {
      BecomeFollower(m.term(), IsLeaderMessage(type) ? m.from() : 0);
    }
  } else if (m.term() < term_) {
    if (type == MESSAGE_TYPE_APPEND || type == MESSAGE_TYPE_HEARTBEAT) {
      // A stale leader: tell it the current term so that it steps down.
      Message resp;
      resp.set_type(MESSAGE_TYPE_APPEND_RESPONSE);
      resp.set_to(m.from());
      Send(std::move(resp));
    } else if (type == MESSAGE_TYPE_PRE_VOTE) {
      Message resp;
      resp.set_type(MESSAGE_TYPE_PRE_VOTE_RESPONSE);
      resp.set_to(m.from());
      resp.set_reject(true);
      Send(std::move(resp));
    }
    return absl::OkStatus();
  }

  if (vote_request) {
    HandleVoteRequest(m);
    return absl::OkStatus();
  }
  switch (role_) {
    case Role::kLeader:
      StepLeader(m);
      break;
    case Role::kPreCandidate:
    case Role::kCandidate:
      StepCandidate(m);
      break;
    case Role::kFollower:
    case Role::kLearner:
      StepFollower(m);
      break;
  }
  return absl::OkStatus();
}

void Raft::HandleVoteRequest(const Message& m) {
  const bool pre = m.type() == MESSAGE_TYPE_PRE_VOTE;
  // We may grant a repeat of our vote, a vote in a term where we have
  // neither voted nor seen a leader, or a PreVote for a later term; but
  // never, without the transfer flag, while the lease of a leader we heard
  // from lasts (whatever the request's term: a member can reach a new term
  // with no vote and no leader while still in lease).
  const bool in_lease = !m.transfer() && InLease() && vote_ != m.from();
  const bool can_vote =
      !in_lease && (vote_ == m.from() || (vote_ == 0 && leader_ == 0) ||
                    (pre && m.term() > term_));
  Message resp;
  resp.set_type(pre ? MESSAGE_TYPE_PRE_VOTE_RESPONSE
                    : MESSAGE_TYPE_VOTE_RESPONSE);
  resp.set_to(m.from());
  if (can_vote && log_.IsUpToDate(m.log_term(), m.index())) {
    // A grant carries the term asked about, so a pre-candidate can tell it
    // from a rejection for its current term.
    resp.set_term(m.term());
    if (!pre) {
      vote_ = m.from();
      ResetElectionDeadline();
    }
  } else {
    resp.set_reject(true);
  }
  Send(std::move(resp));
}

void Raft::StepFollower(Message& m) {
  switch (m.type()) {
    case MESSAGE_TYPE_APPEND:
    case MESSAGE_TYPE_HEARTBEAT:
    case MESSAGE_TYPE_SNAPSHOT:
      if (leader_ != m.from()) {
        FailPendingReads();
        leader_ = m.from();
      }
      last_leader_contact_ns_ = now_ns_;
      ResetElectionDeadline();
      if (m.type() == MESSAGE_TYPE_APPEND) {
        HandleAppend(m);
      } else if (m.type() == MESSAGE_TYPE_HEARTBEAT) {
        HandleHeartbeat(m);
      } else {
        HandleSnapshot(m);
      }
      break;
    case MESSAGE_TYPE_TIMEOUT_NOW:
      // Leadership transfer: campaign at once, skipping PreVote, and ask
      // voters to lift their lease.
      if (m.from() == leader_ && membership_.IsVoter(config_.id)) {
        StartElection(/*pre_vote=*/false, /*transfer=*/true);
      }
      break;
    case MESSAGE_TYPE_READ_INDEX_RESPONSE:
      if (forwarded_reads_.erase(m.request_id()) > 0) {
        read_states_.push_back(
            ReadState{m.request_id(), m.index(), term_, m.term_start()});
      }
      break;
    default:
      break;
  }
}

void Raft::StepCandidate(Message& m) {
  switch (m.type()) {
    case MESSAGE_TYPE_APPEND:
    case MESSAGE_TYPE_HEARTBEAT:
    case MESSAGE_TYPE_SNAPSHOT:
      // A leader exists in this term (or, for a pre-candidate, in our
      // current term): follow it.
      BecomeFollower(m.term(), m.from());
      StepFollower(m);
      return;
    case MESSAGE_TYPE_PRE_VOTE_RESPONSE:
    case MESSAGE_TYPE_VOTE_RESPONSE: {
      const bool pre = m.type() == MESSAGE_TYPE_PRE_VOTE_RESPONSE;
      if (pre != (role_ == Role::kPreCandidate)) return;
      if (!membership_.IsVoter(m.from())) return;
      votes_[m.from()] = !m.reject();
      size_t granted = 0;
      size_t rejected = 0;
      for (const auto& [id, yes] : votes_) {
        if (!membership_.IsVoter(id)) continue;
        (yes ? granted : rejected)++;
      }
      const size_t quorum = membership_.Quorum();
      if (granted >= quorum) {
        if (pre) {
          StartElection(/*pre_vote=*/false, /*transfer=*/false);
        } else {
          BecomeLeader();
        }
      } else if (rejected >= quorum) {
        BecomeFollower(term_, 0);
      }
      return;
    }
    default:
      return;
  }
}

absl::Status Raft::CheckAgainstState(const Message& m) const {
  if (m.term() != term_) return absl::OkStatus();  // handled by term alone
  const MessageType type = m.type();
  if (IsLeaderMessage(type)) {
    // Election Safety (Figure 3): one leader per term.
    const uint64_t known = role_ == Role::kLeader ? config_.id : leader_;
    if (known != 0 && known != m.from()) {
      return absl::InvalidArgumentError(
          absl::StrCat(MessageType_Name(type), " from member ", m.from(),
                       " in term ", term_, ", which member ", known, " leads"));
    }
    return absl::OkStatus();
  }
  if (role_ != Role::kLeader) return absl::OkStatus();
  if (type == MESSAGE_TYPE_APPEND_RESPONSE && !m.reject() &&
      m.index() > log_.last_index()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "APPEND_RESPONSE from member ", m.from(), " acknowledges index ",
        m.index(), ", beyond this leader's last index ", log_.last_index()));
  }
  if (type == MESSAGE_TYPE_HEARTBEAT_RESPONSE && m.round() > round_) {
    return absl::InvalidArgumentError(absl::StrCat(
        "HEARTBEAT_RESPONSE from member ", m.from(), " acknowledges round ",
        m.round(), ", which this leader has not started (last ", round_, ")"));
  }
  return absl::OkStatus();
}

void Raft::StepLeader(const Message& m) {
  Progress* pr = FindProgress(m.from());
  if (pr == nullptr) return;  // not a member (any more)
  switch (m.type()) {
    case MESSAGE_TYPE_APPEND_RESPONSE:
      pr->last_heard_ns = now_ns_;
      HandleAppendResponse(m, *pr);
      break;
    case MESSAGE_TYPE_HEARTBEAT_RESPONSE:
      pr->last_heard_ns = now_ns_;
      HandleHeartbeatResponse(m, *pr);
      break;
    case MESSAGE_TYPE_SNAPSHOT_RESPONSE:
      pr->last_heard_ns = now_ns_;
      HandleSnapshotResponse(m, *pr);
      break;
    case MESSAGE_TYPE_READ_INDEX:
      if (pending_reads_.size() < config_.max_pending_reads) {
        HandleReadRequest(m.from(), m.request_id());
      }
      break;
    default:
      break;
  }
}

// ---------------------------------------------------------------------------
// Follower side of replication.

void Raft::HandleAppend(Message& m) {
  Message resp;
  resp.set_type(MESSAGE_TYPE_APPEND_RESPONSE);
  resp.set_to(m.from());
  if (!Configured() && !config_.unsafe.join_without_snapshot) {
    // A member added at runtime, with no configuration yet: entries from
    // the leader's log would be applied to none. A rejection at index 0,
    // which every configured log matches, asks for the leader's snapshot.
    resp.set_index(0);
    resp.set_reject(true);
    resp.set_reject_hint_index(0);
    resp.set_reject_hint_term(0);
    Send(std::move(resp));
    return;
  }
  if (m.index() < commit_) {
    // Everything up to our commit index matches the leader already.
    resp.set_index(commit_);
    Send(std::move(resp));
    return;
  }
  uint64_t last_new = 0;
  if (MaybeAppend(m, &last_new)) {
    resp.set_index(last_new);
  } else {
    // Fast backtracking: point the leader at the last entry that could
    // match, and its term, so it skips a whole term per round trip.
    uint64_t hint = std::min(m.index(), log_.last_index());
    hint = log_.FindConflictByTerm(hint, m.log_term());
    resp.set_index(m.index());
    resp.set_reject(true);
    resp.set_reject_hint_index(hint);
    resp.set_reject_hint_term(log_.Term(hint).value_or(0));
  }
  Send(std::move(resp));
}

bool Raft::MaybeAppend(Message& m, uint64_t* last_new) {
  if (!log_.MatchTerm(m.index(), m.log_term())) return false;
  *last_new = m.index() + static_cast<uint64_t>(m.entries_size());
  int first_new = m.entries_size();
  for (int i = 0; i < m.entries_size(); ++i) {
    const Entry& e = m.entries(i);
    if (!log_.MatchTerm(e.index(), e.term())) {
      first_new = i;
      break;
    }
  }
  if (first_new < m.entries_size()) {
    const uint64_t conflict = m.entries(first_new).index();
    QUORATE_CHECK_GT(conflict, commit_)
        << "leader " << m.from() << " would overwrite committed entry";
    if (conflict <= log_.last_index()) {
      log_.Truncate(conflict);
      RebuildMembership();
    }
    for (int i = first_new; i < m.entries_size(); ++i) {
      const bool conf = m.entries(i).type() == ENTRY_TYPE_CONF_CHANGE;
      log_.Append(std::move(*m.mutable_entries(i)));
      if (conf) ApplyConfEntry(log_.At(log_.last_index()));
    }
  }
  CommitTo(std::min(m.commit(), *last_new));
  return true;
}

void Raft::HandleHeartbeat(const Message& m) {
  // The leader sends min(our match, its commit), so this never commits an
  // entry we might not share with it.
  CommitTo(std::min(m.commit(), log_.last_index()));
  Message resp;
  resp.set_type(MESSAGE_TYPE_HEARTBEAT_RESPONSE);
  resp.set_to(m.from());
  resp.set_round(m.round());
  Send(std::move(resp));
}

void Raft::HandleSnapshot(const Message& m) {
  const SnapshotChunk& chunk = m.snapshot();
  const SnapshotMetadata& md = chunk.metadata();
  Message resp;
  resp.set_type(MESSAGE_TYPE_SNAPSHOT_RESPONSE);
  resp.set_to(m.from());
  resp.set_index(md.index());
  auto ack = [&](uint64_t offset, bool done) {
    resp.mutable_snapshot()->set_offset(offset);
    resp.mutable_snapshot()->set_last(done);
    Send(std::move(resp));
  };
  if (md.index() <= commit_ && Configured()) {
    // We already have everything it covers.
    incoming_snapshot_.reset();
    ack(chunk.total_size(), true);
    return;
  }
  const bool receiving_this =
      incoming_snapshot_.has_value() &&
      incoming_snapshot_->metadata.index() == md.index() &&
      incoming_snapshot_->metadata.term() == md.term();
  if (chunk.offset() == 0 &&
      !(receiving_this && !incoming_snapshot_->data.empty())) {
    if (chunk.total_size() > config_.max_snapshot_bytes) {
      resp.set_reject(true);
      ack(0, false);
      return;
    }
    incoming_snapshot_.emplace();
    incoming_snapshot_->from = m.from();
    incoming_snapshot_->metadata = md;
  } else if (!receiving_this) {
    // A chunk of a snapshot we are not receiving: start over.
    resp.set_reject(true);
    ack(0, false);
    return;
  }
  std::string& data = incoming_snapshot_->data;
  if (chunk.offset() != data.size()) {
    // Duplicate or out of order: tell the leader where we are.
    ack(data.size(), false);
    return;
  }
  data.append(chunk.data());
  if (data.size() > chunk.total_size()) {
    incoming_snapshot_.reset();
    resp.set_reject(true);
    ack(0, false);
    return;
  }
  if (!chunk.last()) {
    ack(data.size(), false);
    return;
  }
  if (data.size() != chunk.total_size()) {
    incoming_snapshot_.reset();
    resp.set_reject(true);
    ack(0, false);
    return;
  }
  IncomingSnapshot snap = std::move(*incoming_snapshot_);
  incoming_snapshot_.reset();
  if (log_.MatchTerm(md.index(), md.term()) && Configured()) {
    // Our log already holds the snapshot's last entry: keep the log.
    CommitTo(md.index());
  } else {
    log_.Reset(md.index(), md.term());
    commit_ = md.index();
    next_apply_ = md.index() + 1;
    snapshot_membership_ = Membership(md.conf_state());
    membership_history_.clear();
    membership_ = snapshot_membership_;
    auto restored = std::make_shared<const Snapshot>(Snapshot{
        md, std::make_shared<const std::string>(std::move(snap.data))});
    ready_snapshot_ = *restored;
    latest_snapshot_ = std::move(restored);
    snapshot_unstable_ = true;
  }
  ack(chunk.total_size(), true);
}

void Raft::CommitTo(uint64_t index) {
  if (index <= commit_) return;
  QUORATE_CHECK_LE(index, log_.last_index()) << "commit beyond the log";
  commit_ = index;
}

// ---------------------------------------------------------------------------
// Leader side of replication.

Progress* Raft::FindProgress(uint64_t id) {
  auto it = std::lower_bound(
      progress_.begin(), progress_.end(), id,
      [](const Progress& p, uint64_t key) { return p.id < key; });
  return it != progress_.end() && it->id == id ? &*it : nullptr;
}

const Progress* Raft::FindProgress(uint64_t id) const {
  return const_cast<Raft*>(this)->FindProgress(id);
}

const Progress* Raft::progress(uint64_t peer) const {
  return role_ == Role::kLeader ? FindProgress(peer) : nullptr;
}

void Raft::AppendLeaderEntry(Entry entry) {
  entry.set_term(term_);
  entry.set_index(log_.last_index() + 1);
  uncommitted_bytes_ += EntryBytes(entry);
  const bool conf = entry.type() == ENTRY_TYPE_CONF_CHANGE;
  log_.Append(std::move(entry));
  if (conf) ApplyConfEntry(log_.At(log_.last_index()));
  replication_pending_ = true;
}

absl::StatusOr<uint64_t> Raft::Propose(std::string data, int64_t now_ns) {
  QUORATE_CHECK_GE(now_ns, now_ns_) << "monotonic time went back";
  now_ns_ = now_ns;
  if (role_ != Role::kLeader) {
    return absl::UnavailableError(
        leader_ == 0
            ? std::string("not the leader; no leader is known")
            : absl::StrCat("not the leader; the leader is member ", leader_));
  }
  if (transfer_target_ != 0) {
    return absl::UnavailableError(absl::StrCat(
        "leadership is being transferred to member ", transfer_target_));
  }
  Entry e;
  e.set_type(ENTRY_TYPE_NORMAL);
  e.set_data(std::move(data));
  if (uncommitted_bytes_ + EntryBytes(e) > config_.max_uncommitted_bytes) {
    return absl::ResourceExhaustedError(
        absl::StrCat(uncommitted_bytes_, " bytes are waiting to commit (limit ",
                     config_.max_uncommitted_bytes, ")"));
  }
  AppendLeaderEntry(std::move(e));
  return log_.last_index();
}

absl::StatusOr<uint64_t> Raft::ProposeConfChange(const ConfChange& change,
                                                 int64_t now_ns) {
  QUORATE_CHECK_GE(now_ns, now_ns_) << "monotonic time went back";
  now_ns_ = now_ns;
  if (role_ != Role::kLeader) {
    return absl::UnavailableError("not the leader");
  }
  if (transfer_target_ != 0) {
    return absl::UnavailableError("leadership is being transferred");
  }
  if (!committed_in_term_) {
    return absl::UnavailableError(
        "the leader has not yet committed an entry in its term");
  }
  if (pending_conf_index_ > commit_) {
    return absl::UnavailableError(
        absl::StrCat("configuration change at index ", pending_conf_index_,
                     " is not committed yet; one change at a time"));
  }
  Membership next = membership_;
  if (!next.Apply(change)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "configuration change ", ConfChangeType_Name(change.type()),
        " of member ", change.member_id(),
        " does not apply to the current configuration"));
  }
  Entry e;
  e.set_type(ENTRY_TYPE_CONF_CHANGE);
  e.set_data(change.SerializeAsString());
  AppendLeaderEntry(std::move(e));
  return log_.last_index();
}

void Raft::SendAppend(Progress& pr, bool allow_empty) {
  if (pr.IsPaused()) return;
  const std::optional<uint64_t> prev_term = log_.Term(pr.next - 1);
  if (!prev_term.has_value()) {
    // The entries this member needs were compacted away.
    QUORATE_CHECK_LT(pr.next - 1, log_.first_index())
        << "member " << pr.id
        << " acknowledged entries beyond the leader's log";
    QUORATE_CHECK(latest_snapshot_ != nullptr)
        << "log compacted to " << log_.snapshot_index() << " without snapshot";
    pr.BecomeSnapshot(latest_snapshot_->metadata.index());
    SendSnapshotChunk(pr);
    return;
  }
  const bool have_entries = pr.next <= log_.last_index();
  if (!have_entries && !allow_empty) return;
  Message m;
  m.set_type(MESSAGE_TYPE_APPEND);
  m.set_to(pr.id);
  m.set_commit(commit_);
  if (!have_entries && pr.state == Progress::State::kReplicate) {
    // Only a commit update. Anchor it on the known match, not on entries
    // still in flight, so that reordering cannot make it fail.
    m.set_index(pr.match);
    m.set_log_term(log_.Term(pr.match).value_or(0));
    if (!log_.Term(pr.match).has_value()) return;
    Send(std::move(m));
    return;
  }
  m.set_index(pr.next - 1);
  m.set_log_term(*prev_term);
  uint64_t bytes = 0;
  const uint64_t last = have_entries ? log_.Slice(pr.next, log_.last_index(),
                                                  config_.max_message_bytes,
                                                  [&](const EntryPtr& e) {
                                                    bytes += EntryBytes(*e);
                                                    *m.add_entries() = *e;
                                                  })
                                     : pr.next - 1;
  switch (pr.state) {
    case Progress::State::kReplicate:
      pr.next = last + 1;
      pr.inflights.Add(last, bytes);
      break;
    case Progress::State::kProbe:
      pr.probe_sent = true;
      break;
    case Progress::State::kSnapshot:
      QUORATE_CHECK(false) << "append while sending a snapshot";
  }
  Send(std::move(m));
}

void Raft::SendSnapshotChunk(Progress& pr) {
  QUORATE_CHECK(latest_snapshot_ != nullptr) << "no snapshot to send";
  // A transfer under way goes on with its snapshot, even once a newer one
  // exists: restarting it with each new snapshot, a large state under
  // writes would never arrive (the simulator's membership runs found new
  // members stuck so).
  std::shared_ptr<const Snapshot>& snap = sending_[pr.id];
  if (config_.unsafe.restart_snapshot_transfers) snap = nullptr;
  if (snap == nullptr || snap->metadata.index() != pr.snapshot_index) {
    snap = latest_snapshot_;
    if (snap->metadata.index() != pr.snapshot_index) {
      pr.BecomeSnapshot(snap->metadata.index());
    }
  }
  const std::string& data = *snap->data;
  const uint64_t offset = std::min<uint64_t>(pr.snapshot_offset, data.size());
  const uint64_t n =
      std::min<uint64_t>(config_.snapshot_chunk_bytes, data.size() - offset);
  Message m;
  m.set_type(MESSAGE_TYPE_SNAPSHOT);
  m.set_to(pr.id);
  SnapshotChunk* chunk = m.mutable_snapshot();
  *chunk->mutable_metadata() = snap->metadata;
  chunk->set_offset(offset);
  chunk->set_data(data.substr(offset, n));
  chunk->set_last(offset + n == data.size());
  chunk->set_total_size(data.size());
  pr.snapshot_sent_ns = now_ns_;
  Send(std::move(m));
}

void Raft::CommitAdvanced() {
  if (config_.commit_notify_delay_ns == 0) {
    replication_pending_ = true;
  } else if (commit_notify_due_ns_ == 0) {
    commit_notify_due_ns_ = now_ns_ + config_.commit_notify_delay_ns;
  }
}

void Raft::BroadcastAppend() {
  for (Progress& pr : progress_) SendAppend(pr, /*allow_empty=*/true);
}

void Raft::HandleAppendResponse(const Message& m, Progress& pr) {
  if (m.reject() && m.index() == 0 && latest_snapshot_ != nullptr &&
      pr.state != Progress::State::kSnapshot) {
    // Index 0 matches every configured log: the member has no
    // configuration yet (added at runtime) and needs the snapshot, even
    // one at index 0 (the initial configuration).
    pr.BecomeSnapshot(latest_snapshot_->metadata.index());
    SendSnapshotChunk(pr);
    return;
  }
  if (m.reject()) {
    uint64_t hint = m.reject_hint_index();
    if (m.reject_hint_term() > 0) {
      // Skip every entry of terms the follower does not share with us.
      hint = log_.FindConflictByTerm(hint, m.reject_hint_term());
    }
    if (pr.MaybeDecrTo(m.index(), hint)) {
      if (pr.state == Progress::State::kReplicate) pr.BecomeProbe();
      SendAppend(pr, /*allow_empty=*/false);
      if (pr.state == Progress::State::kProbe && !pr.probe_sent) {
        SendAppend(pr, /*allow_empty=*/true);
      }
    }
    return;
  }
  const bool updated = pr.MaybeUpdate(m.index());
  if (updated) {
    if (pr.state == Progress::State::kProbe) {
      pr.BecomeReplicate();
    } else if (pr.state == Progress::State::kSnapshot &&
               pr.match >= pr.snapshot_index) {
      pr.BecomeProbe();
      pr.BecomeReplicate();
    }
    pr.inflights.FreeUpTo(m.index());
    if (MaybeCommit()) CommitAdvanced();
    // Committing this member's removal made us step down: `pr` is gone.
    if (role_ != Role::kLeader) return;
  } else if (pr.state == Progress::State::kProbe) {
    pr.probe_sent = false;
  }
  if (pr.state == Progress::State::kReplicate) pr.inflights.FreeUpTo(m.index());
  // Keep the pipeline full.
  while (pr.next <= log_.last_index() && !pr.IsPaused()) {
    const uint64_t before = pr.next;
    SendAppend(pr, /*allow_empty=*/false);
    if (pr.next == before) break;
  }
  if (transfer_target_ == pr.id && !timeout_now_sent_ &&
      pr.match == log_.last_index() && GrantsLapsed()) {
    SendTimeoutNow(pr.id);
  }
}

void Raft::HandleHeartbeatResponse(const Message& m, Progress& pr) {
  if (transfer_target_ == pr.id && pr.match == log_.last_index() &&
      GrantsLapsed()) {
    // Again, in case the first TimeoutNow was lost. Repeats are harmless:
    // once one is sent this leader never leads on in this term.
    SendTimeoutNow(pr.id);
  }
  if (m.round() > pr.acked_round && !pr.learner) {
    pr.acked_round = m.round();
    const uint64_t confirmed = ConfirmedRound();
    if (confirmed > confirmed_round_) {
      confirmed_round_ = confirmed;
      ReleaseReads();
      if (round_wanted_ && confirmed_round_ == round_) StartRound();
    }
  }
  switch (pr.state) {
    case Progress::State::kProbe:
      pr.probe_sent = false;
      if (pr.match < log_.last_index()) SendAppend(pr, /*allow_empty=*/true);
      break;
    case Progress::State::kReplicate:
      // Appends may have been lost. A lost append can leave the window full
      // forever: free a slot. And if everything was sent but the member
      // still lags, an empty append at the end of what we sent exposes the
      // gap: the member rejects it and is probed again.
      if (pr.inflights.Full()) pr.inflights.FreeFirst();
      if (pr.match < log_.last_index() && pr.next > log_.last_index()) {
        Message probe;
        probe.set_type(MESSAGE_TYPE_APPEND);
        probe.set_to(pr.id);
        probe.set_index(pr.next - 1);
        probe.set_log_term(*log_.Term(pr.next - 1));
        probe.set_commit(commit_);
        Send(std::move(probe));
        return;
      }
      break;
    case Progress::State::kSnapshot:
      if (now_ns_ - pr.snapshot_sent_ns >= 2 * config_.heartbeat_interval_ns) {
        SendSnapshotChunk(pr);
      }
      return;
  }
  if (pr.match < log_.last_index()) SendAppend(pr, /*allow_empty=*/false);
}

void Raft::HandleSnapshotResponse(const Message& m, Progress& pr) {
  if (pr.state != Progress::State::kSnapshot ||
      m.index() != pr.snapshot_index) {
    return;  // answers an older snapshot
  }
  if (m.reject()) {
    // Start over, at the heartbeat cadence rather than in a tight loop.
    pr.snapshot_offset = 0;
    return;
  }
  if (m.snapshot().last()) {
    pr.match = std::max(pr.match, pr.snapshot_index);
    sending_.erase(pr.id);
    pr.BecomeProbe();
    SendAppend(pr, /*allow_empty=*/true);
    return;
  }
  // Only progress moves the stream on: duplicate and stale acks would
  // otherwise start parallel streams.
  if (m.snapshot().offset() <= pr.snapshot_offset) return;
  pr.snapshot_offset = m.snapshot().offset();
  SendSnapshotChunk(pr);
}

bool Raft::MaybeCommit() {
  if (role_ != Role::kLeader) return false;
  // A snapshot received from the old leader may not be durable yet.
  const std::optional<uint64_t> quorum_match =
      QuorumValue<uint64_t>(snapshot_unstable_ ? 0 : log_.stable_index(),
                            [](const Progress& pr) { return pr.match; });
  if (!quorum_match.has_value()) return false;
  const uint64_t index = *quorum_match;
  // Raft §5.4.2: only entries of the current term are committed by
  // counting replicas.
  if (index <= commit_) return false;
  if (log_.Term(index) != term_ && !config_.unsafe.commit_previous_terms) {
    return false;
  }
  for (uint64_t i = commit_ + 1; i <= index; ++i) {
    const Entry& e = log_.At(i);
    if (e.term() == term_) {
      uncommitted_bytes_ -= std::min(uncommitted_bytes_, EntryBytes(e));
    }
  }
  CommitTo(index);
  if (!committed_in_term_ && commit_ >= term_start_index_) {
    committed_in_term_ = true;
    ReleaseReads();
  }
  if (!membership_.IsVoter(config_.id) && pending_conf_index_ <= commit_) {
    // This leader's removal is committed: step down (thesis §4.2.2).
    BecomeFollower(term_, 0);
    return false;
  }
  return true;
}

uint64_t Raft::ConfirmedRound() const {
  return QuorumValue<uint64_t>(
             round_, [](const Progress& pr) { return pr.acked_round; })
      .value_or(0);
}

void Raft::StartRound() {
  ++round_;
  round_start_ns_ = now_ns_;
  round_wanted_ = false;
  heartbeat_due_ns_ = now_ns_ + config_.heartbeat_interval_ns;
  // The leader acknowledges its own round as it starts it; it keeps the
  // disruptive-server promise from this moment, even if it steps down.
  last_leader_contact_ns_ = now_ns_;
  for (Progress& pr : progress_) {
    Message m;
    m.set_type(MESSAGE_TYPE_HEARTBEAT);
    m.set_to(pr.id);
    m.set_commit(std::min(pr.match, commit_));
    m.set_round(round_);
    Send(std::move(m));
  }
  const uint64_t confirmed = ConfirmedRound();
  if (confirmed > confirmed_round_) {
    confirmed_round_ = confirmed;
    ReleaseReads();
  }
}

absl::Status Raft::ReadIndex(uint64_t request_id, int64_t now_ns) {
  QUORATE_CHECK_GE(now_ns, now_ns_) << "monotonic time went back";
  now_ns_ = now_ns;
  if (role_ == Role::kLeader) {
    if (pending_reads_.size() >= config_.max_pending_reads) {
      return absl::ResourceExhaustedError(
          absl::StrCat(pending_reads_.size(), " reads are already waiting"));
    }
    HandleReadRequest(config_.id, request_id);
    return absl::OkStatus();
  }
  if (leader_ == 0 || role_ == Role::kCandidate ||
      role_ == Role::kPreCandidate) {
    return absl::UnavailableError("no leader is known");
  }
  if (forwarded_reads_.size() >= config_.max_pending_reads) {
    return absl::ResourceExhaustedError(
        absl::StrCat(forwarded_reads_.size(), " reads are already waiting"));
  }
  forwarded_reads_.insert(request_id);
  forwarded_expiry_.emplace_back(now_ns_ + 2 * config_.election_timeout_ns,
                                 request_id);
  Message m;
  m.set_type(MESSAGE_TYPE_READ_INDEX);
  m.set_to(leader_);
  m.set_request_id(request_id);
  Send(std::move(m));
  return absl::OkStatus();
}

void Raft::HandleReadRequest(uint64_t from, uint64_t request_id) {
  // The read is safe after a quorum acknowledges a round that starts after
  // now: the next one.
  pending_reads_.push_back(PendingRead{from, request_id, commit_, round_ + 1});
  if (confirmed_round_ == round_) {
    StartRound();  // no round in flight: start one now
  } else {
    round_wanted_ = true;  // start one as soon as the current one confirms
  }
}

void Raft::ReleaseReads() {
  // Thesis §6.4: the leader must know the commit index of its term first.
  if (!committed_in_term_) return;
  // A leader handing over confirms nothing more: every window it granted
  // must end before its TimeoutNow lets another member lead
  // (docs/design.md). Held reads go out if the transfer is abandoned, or
  // fail when leadership moves.
  if (transfer_target_ != 0) return;
  if (!pending_reads_.empty() &&
      pending_reads_.front().round <= confirmed_round_) {
    // The confirmed round started no later than the newest one.
    grant_round_start_ns_ = round_start_ns_;
  }
  while (!pending_reads_.empty() &&
         pending_reads_.front().round <= confirmed_round_) {
    const PendingRead read = pending_reads_.front();
    pending_reads_.pop_front();
    const uint64_t index = std::max(read.index, term_start_index_);
    if (read.from == config_.id) {
      read_states_.push_back(
          ReadState{read.request_id, index, term_, term_start_index_});
    } else {
      Message m;
      m.set_type(MESSAGE_TYPE_READ_INDEX_RESPONSE);
      m.set_to(read.from);
      m.set_request_id(read.request_id);
      m.set_index(index);
      m.set_term_start(term_start_index_);
      Send(std::move(m));
    }
  }
}

void Raft::FailPendingReads() {
  for (const PendingRead& read : pending_reads_) {
    if (read.from == config_.id) failed_reads_.push_back(read.request_id);
  }
  pending_reads_.clear();
  for (uint64_t id : forwarded_reads_) failed_reads_.push_back(id);
  forwarded_reads_.clear();
  forwarded_expiry_.clear();
}

absl::Status Raft::TransferLeadership(uint64_t target, int64_t now_ns) {
  QUORATE_CHECK_GE(now_ns, now_ns_) << "monotonic time went back";
  now_ns_ = now_ns;
  if (role_ != Role::kLeader) {
    return absl::FailedPreconditionError("not the leader");
  }
  if (target == 0) {
    const Progress* best = nullptr;
    for (const Progress& pr : progress_) {
      if (pr.learner) continue;
      if (best == nullptr || pr.match > best->match) best = &pr;
    }
    if (best == nullptr) {
      return absl::FailedPreconditionError("no other voter to transfer to");
    }
    target = best->id;
  }
  if (target == config_.id) return absl::OkStatus();
  Progress* pr = FindProgress(target);
  if (pr == nullptr || pr->learner) {
    return absl::InvalidArgumentError(
        absl::StrCat("member ", target, " is not a voter"));
  }
  transfer_target_ = target;
  // The granted windows lapse first (at most T), then the target has T to
  // catch up and campaign.
  transfer_deadline_ns_ =
      std::max(now_ns_, grant_round_start_ns_ + config_.election_timeout_ns) +
      config_.election_timeout_ns;
  if (pr->match == log_.last_index() && GrantsLapsed()) {
    SendTimeoutNow(target);
  } else if (pr->match != log_.last_index()) {
    SendAppend(*pr, /*allow_empty=*/false);
  }
  return absl::OkStatus();
}

bool Raft::GrantsLapsed() const {
  // A window runs from before its request reached us (so before the round
  // that confirmed it started) for at most T(1-rho)/(1+rho) of its
  // holder's clock, which is less real time than T of ours.
  return now_ns_ >= grant_round_start_ns_ + config_.election_timeout_ns;
}

void Raft::SendTimeoutNow(uint64_t to) {
  timeout_now_sent_ = true;
  Message m;
  m.set_type(MESSAGE_TYPE_TIMEOUT_NOW);
  m.set_to(to);
  Send(std::move(m));
}

void Raft::AbortTransfer() {
  transfer_target_ = 0;
  timeout_now_sent_ = false;
}

void Raft::ReportUnreachable(uint64_t peer) {
  if (role_ == Role::kFollower && peer == leader_ &&
      membership_.IsVoter(config_.id)) {
    // Once per silence: the transport reports a dead peer on every failed
    // attempt, and drawing again each time would push every follower's
    // deadline toward T together (and their campaigns into each other).
    if (shortened_after_contact_ns_ == last_leader_contact_ns_) return;
    shortened_after_contact_ns_ = last_leader_contact_ns_;
    const int64_t t = config_.election_timeout_ns;
    const int64_t soon = last_leader_contact_ns_ + t +
                         static_cast<int64_t>(config_.random->Uniform(
                             static_cast<uint64_t>(t / 4)));
    election_deadline_ns_ = std::min(election_deadline_ns_, soon);
    return;
  }
  if (role_ != Role::kLeader) return;
  Progress* pr = FindProgress(peer);
  if (pr != nullptr && pr->state == Progress::State::kReplicate) {
    pr->BecomeProbe();
  }
}

// ---------------------------------------------------------------------------
// Membership.

void Raft::ApplyConfEntry(const Entry& entry) {
  ConfChange change;
  QUORATE_CHECK(change.ParseFromString(entry.data()))
      << "unreadable configuration entry " << entry.index();
  Membership next = membership_;
  if (!next.Apply(change)) return;  // a no-op, as the leader proposed it
  membership_ = next;
  membership_history_.emplace_back(entry.index(), std::move(next));
  if (role_ == Role::kLeader) {
    pending_conf_index_ = entry.index();
    SyncProgressWithMembership();
  }
}

void Raft::RebuildMembership() {
  // Membership history after a truncation or at restart.
  while (!membership_history_.empty() &&
         membership_history_.back().first > log_.last_index()) {
    membership_history_.pop_back();
  }
  if (membership_history_.empty()) {
    membership_ = snapshot_membership_;
    // At restart, replay configuration entries from the log.
    for (uint64_t i = log_.first_index(); i <= log_.last_index(); ++i) {
      if (log_.At(i).type() == ENTRY_TYPE_CONF_CHANGE) {
        ApplyConfEntry(log_.At(i));
      }
    }
    return;
  }
  membership_ = membership_history_.back().second;
}

void Raft::SyncProgressWithMembership() {
  std::vector<Progress> next;
  auto add = [&](uint64_t id, bool learner) {
    if (id == config_.id) return;
    if (Progress* old = FindProgress(id)) {
      next.push_back(std::move(*old));
      next.back().learner = learner;
      return;
    }
    Progress pr(id, learner, config_.max_inflight_messages,
                config_.max_inflight_bytes);
    pr.next = log_.last_index() + 1;
    pr.last_heard_ns = now_ns_;
    next.push_back(std::move(pr));
  };
  for (uint64_t id : membership_.voters()) add(id, false);
  for (uint64_t id : membership_.learners()) add(id, true);
  std::sort(next.begin(), next.end(),
            [](const Progress& a, const Progress& b) { return a.id < b.id; });
  progress_ = std::move(next);
}

absl::Status Raft::Compact(const SnapshotMetadata& metadata,
                           std::shared_ptr<const std::string> data) {
  const uint64_t index = metadata.index();
  if (index <= log_.snapshot_index()) return absl::OkStatus();
  if (index >= next_apply_) {
    return absl::FailedPreconditionError(
        absl::StrCat("snapshot index ", index, " is not applied yet"));
  }
  if (index > log_.stable_index()) {
    return absl::FailedPreconditionError(
        absl::StrCat("snapshot index ", index, " is not durable yet"));
  }
  if (log_.Term(index) != metadata.term()) {
    return absl::InvalidArgumentError(
        absl::StrCat("snapshot term ", metadata.term(), " at index ", index,
                     " does not match the log"));
  }
  const Membership at_index = MembershipAt(index);
  if (!(Membership(metadata.conf_state()) == at_index)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "snapshot configuration does not match the log at index ", index));
  }
  if (data == nullptr) return absl::InvalidArgumentError("no snapshot data");
  latest_snapshot_ =
      std::make_shared<const Snapshot>(Snapshot{metadata, std::move(data)});
  // A member receiving an older snapshot continues from the log after
  // it: the log is kept while a transfer is under way (one heard from
  // within 2T; a member gone silent does not hold it), and compacted at
  // the next snapshot after it.
  for (const Progress& pr : progress_) {
    if (role_ == Role::kLeader && pr.state == Progress::State::kSnapshot &&
        pr.snapshot_index < index &&
        !config_.unsafe.restart_snapshot_transfers &&
        now_ns_ - pr.last_heard_ns <= 2 * config_.election_timeout_ns) {
      return absl::OkStatus();
    }
  }
  log_.Compact(index);
  snapshot_membership_ = at_index;
  std::erase_if(membership_history_,
                [&](const auto& h) { return h.first <= index; });
  return absl::OkStatus();
}

Membership Raft::MembershipAt(uint64_t index) const {
  Membership m = snapshot_membership_;
  for (const auto& [at, conf] : membership_history_) {
    if (at > index) break;
    m = conf;
  }
  return m;
}

SnapshotMetadata Raft::SnapshotMetadataAt(uint64_t index) const {
  SnapshotMetadata md;
  md.set_index(index);
  md.set_term(log_.Term(index).value_or(0));
  *md.mutable_conf_state() = MembershipAt(index).ToConfState();
  return md;
}

// ---------------------------------------------------------------------------
// Ready / Advance.

bool Raft::HasReady() const {
  if (ready_outstanding_) return false;
  const HardState hs = CurrentHardState();
  return replication_pending_ || !messages_.empty() ||
         !messages_after_persist_.empty() || !read_states_.empty() ||
         !failed_reads_.empty() || ready_snapshot_.has_value() ||
         log_.HasUnpersisted() ||
         next_apply_ <= std::min(commit_, log_.last_index()) ||
         SoftState{role(), leader_} != reported_soft_state_ ||
         hs.term() != persisted_hard_state_.term() ||
         hs.vote() != persisted_hard_state_.vote() ||
         hs.commit() != persisted_hard_state_.commit();
}

Ready Raft::GetReady() {
  QUORATE_CHECK(!ready_outstanding_) << "GetReady() before Advance()";
  if (replication_pending_ && role_ == Role::kLeader) {
    BroadcastAppend();  // with the commit index as of now
    commit_notify_due_ns_ = 0;
  }
  replication_pending_ = false;

  Ready rd;
  const SoftState soft{role(), leader_};
  if (soft != reported_soft_state_) {
    rd.soft_state = soft;
    reported_soft_state_ = soft;
  }
  const HardState hs = CurrentHardState();
  if (hs.term() != persisted_hard_state_.term() ||
      hs.vote() != persisted_hard_state_.vote() ||
      hs.commit() != persisted_hard_state_.commit()) {
    rd.must_sync = hs.term() != persisted_hard_state_.term() ||
                   hs.vote() != persisted_hard_state_.vote();
    rd.hard_state = hs;
    persisted_hard_state_ = hs;
  }
  if (ready_snapshot_.has_value()) {
    rd.snapshot = std::move(ready_snapshot_);
    ready_snapshot_.reset();
    rd.must_sync = true;
    snapshot_handed_out_ = true;
  }
  if (log_.HasUnpersisted()) {
    const uint64_t from = std::max(log_.unpersisted_from(), log_.first_index());
    rd.entries.reserve(log_.last_index() - from + 1);
    for (uint64_t i = from; i <= log_.last_index(); ++i) {
      rd.entries.push_back(log_.Ptr(i));
    }
    log_.MarkHandedOut();
    rd.must_sync = true;
  }
  rd.committed_entries = HandOutCommitted();
  rd.messages = std::move(messages_);
  messages_.clear();
  rd.messages_after_persist = std::move(messages_after_persist_);
  messages_after_persist_.clear();
  rd.read_states = std::move(read_states_);
  read_states_.clear();
  rd.failed_reads = std::move(failed_reads_);
  failed_reads_.clear();
  handed_out_term_ = persisted_hard_state_.term();
  ready_outstanding_ = true;
  return rd;
}

std::vector<Message> Raft::TakeMessages() {
  // Messages in messages_ were classified as safe once the term they carry
  // is durable; before the outstanding Ready completes that holds only if
  // the term did not change in it.
  if (!ready_outstanding_ || term_ != durable_term_) return {};
  std::vector<Message> out = std::move(messages_);
  messages_.clear();
  return out;
}

std::vector<ReadState> Raft::TakeReadStates() {
  // The same rule as TakeMessages(): a read state carries the term.
  if (!ready_outstanding_ || term_ != durable_term_) return {};
  std::vector<ReadState> out = std::move(read_states_);
  read_states_.clear();
  return out;
}

std::vector<EntryPtr> Raft::TakeCommittedEntries() {
  if (!ready_outstanding_ || snapshot_handed_out_) return {};
  return HandOutCommitted();
}

std::vector<EntryPtr> Raft::HandOutCommitted() {
  std::vector<EntryPtr> out;
  const uint64_t apply_to = std::min(commit_, log_.last_index());
  if (next_apply_ > apply_to) return out;
  const uint64_t last =
      log_.Slice(next_apply_, apply_to, config_.max_committed_bytes_per_ready,
                 [&](const EntryPtr& e) { out.push_back(e); });
  next_apply_ = last + 1;
  return out;
}

void Raft::Advance() {
  QUORATE_CHECK(ready_outstanding_) << "Advance() without GetReady()";
  ready_outstanding_ = false;
  durable_term_ = handed_out_term_;
  log_.MarkStable();
  if (snapshot_handed_out_ && !ready_snapshot_.has_value()) {
    snapshot_unstable_ = false;
  }
  snapshot_handed_out_ = false;
  // The leader's own entries now count toward the commit quorum.
  if (MaybeCommit()) CommitAdvanced();
}

Status Raft::GetStatus() const {
  Status s;
  s.id = config_.id;
  s.role = role();
  s.term = term_;
  s.vote = vote_;
  s.leader = leader_;
  s.commit = commit_;
  s.applied = next_apply_ - 1;
  s.last_index = log_.last_index();
  s.snapshot_index = log_.snapshot_index();
  s.voters = membership_.voters();
  s.learners = membership_.learners();
  return s;
}

}  // namespace quorate::raft
