#include "node/driver.h"

#include <algorithm>
#include <iterator>
#include <memory>
#include <set>
#include <utility>

#include "absl/strings/str_cat.h"
#include "util/check.h"

namespace quorate::node {

void SetMetadataMembers(const peer::NodeSnapshot& snap,
                        raft::SnapshotMetadata* md) {
  md->clear_members();
  for (const peer::MemberInfo& m : snap.members()) {
    raft::MemberInfo* r = md->add_members();
    r->set_id(m.id());
    r->set_name(m.name());
    r->set_zone(m.zone());
    r->set_address(m.address());
  }
}

Bootstrap MakeBootstrap(const std::vector<peer::MemberInfo>& voters,
                        const std::vector<peer::MemberInfo>& learners) {
  peer::NodeSnapshot snap;
  Bootstrap b;
  for (const peer::MemberInfo& m : voters) {
    *snap.add_members() = m;
    b.metadata.mutable_conf_state()->add_voters(m.id());
  }
  for (const peer::MemberInfo& m : learners) {
    *snap.add_members() = m;
    b.metadata.mutable_conf_state()->add_learners(m.id());
  }
  SetMetadataMembers(snap, &b.metadata);
  b.data = std::make_shared<const std::string>(snap.SerializeAsString());
  return b;
}

Driver::Driver(DriverOptions options, DriverEnv* env, DriverWriter* writer,
               DriverObserver* observer)
    : options_(std::move(options)),
      env_(env),
      writer_(writer),
      observer_(observer),
      next_read_id_(options_.first_read_id) {}

Driver::~Driver() = default;

absl::StatusOr<std::unique_ptr<Driver>> Driver::Create(
    const raft::Config& config, DriverOptions options,
    raft::RestoredState restored, DriverEnv* env, DriverWriter* writer,
    DriverObserver* observer) {
  QUORATE_CHECK(env != nullptr && writer != nullptr);
  std::unique_ptr<Driver> d(
      new Driver(std::move(options), env, writer, observer));
  if (absl::Status s = d->LoadSnapshot(restored.snapshot_data != nullptr
                                           ? *restored.snapshot_data
                                           : std::string());
      !s.ok()) {
    return s;
  }
  d->applied_ = restored.snapshot.index();
  absl::StatusOr<std::unique_ptr<raft::Raft>> r =
      raft::Raft::Create(config, std::move(restored), env->Now());
  if (!r.ok()) return r.status();
  d->raft_ = *std::move(r);
  // Configuration entries after the snapshot name members it may not.
  const raft::RaftLog& log = d->raft_->log();
  std::vector<raft::EntryPtr> conf;
  for (uint64_t i = log.first_index(); i <= log.last_index(); ++i) {
    if (log.At(i).type() == raft::ENTRY_TYPE_CONF_CHANGE) {
      conf.push_back(std::make_shared<const raft::Entry>(log.At(i)));
    }
  }
  d->NoteConfEntries(conf);
  d->SyncMembers(/*names_changed=*/true);
  return d;
}

bool Driver::NoteConfEntries(const std::vector<raft::EntryPtr>& entries) {
  bool noted = false;
  for (const raft::EntryPtr& e : entries) {
    if (e->type() != raft::ENTRY_TYPE_CONF_CHANGE) continue;
    raft::ConfChange change;
    if (!change.ParseFromString(e->data()) ||
        (change.has_member() && change.member().id() != change.member_id())) {
      continue;
    }
    if (change.member_id() == raft_->id()) {
      removed_self_ = change.type() == raft::CONF_CHANGE_TYPE_REMOVE;
    }
    if (!change.has_member()) continue;
    peer::MemberInfo& m = known_[change.member_id()];
    m.set_id(change.member_id());
    m.set_name(change.member().name());
    m.set_zone(change.member().zone());
    m.set_address(change.member().address());
    noted = true;
  }
  return noted;
}

void Driver::SyncMembers(bool names_changed) {
  const raft::Membership& now = raft_->membership();
  // Built only while a change is not committed: this runs after every
  // Ready.
  std::optional<raft::Membership> pending;
  if (!raft_->membership_committed()) pending = raft_->committed_membership();
  const raft::Membership& committed = pending.has_value() ? *pending : now;
  const uint64_t leader = raft_->leader();
  if (!names_changed && now == synced_membership_ &&
      committed == synced_committed_ && leader == synced_leader_) {
    return;
  }
  // A member this one must keep talking to: one of the configuration, or
  // of the committed one (a removal not committed yet may still be
  // replaced by a leader it names), or the leader (a new member's first
  // snapshot may predate the leader's own addition).
  std::set<uint64_t> wanted;
  for (const raft::Membership* m : {&now, &committed}) {
    wanted.insert(m->voters().begin(), m->voters().end());
    wanted.insert(m->learners().begin(), m->learners().end());
  }
  if (leader != 0) wanted.insert(leader);
  std::map<uint64_t, peer::MemberInfo> next;
  {
    for (uint64_t id : wanted) {
      auto it = known_.find(id);
      if (it != known_.end()) {
        next[id] = it->second;
      } else {
        // Named by no snapshot or entry this member holds (a change
        // proposed without its member's address): known by id only.
        next[id].set_id(id);
        next[id].set_name(absl::StrCat(id));
      }
    }
  }
  bool same = now == synced_membership_ && next.size() == members_.size();
  for (auto a = next.begin(), b = members_.begin(); same && a != next.end();
       ++a, ++b) {
    same = a->first == b->first &&
           a->second.SerializeAsString() == b->second.SerializeAsString();
  }
  synced_committed_ = committed;
  synced_leader_ = leader;
  if (same) return;
  synced_membership_ = now;
  members_ = std::move(next);
  ++members_generation_;
}

absl::Status Driver::LoadSnapshot(const std::string& data) {
  peer::NodeSnapshot snap;
  if (!snap.ParseFromString(data)) {
    return absl::FailedPreconditionError(
        "the newest snapshot was not written by a quorate member");
  }
  for (const peer::MemberInfo& m : snap.members()) known_[m.id()] = m;
  if (options_.state_machine != nullptr) {
    return options_.state_machine->Restore(snap.state());
  }
  return absl::OkStatus();
}

// ---------------------------------------------------------------------------
// The Ready loop.

void Driver::Drive() {
  if (closed_) return;
  // A callback run from inside the loop (a proposal's answer, say) may
  // call back in; the outer call picks up what it changed.
  if (driving_) {
    drive_again_ = true;
    return;
  }
  driving_ = true;
  do {
    drive_again_ = false;
    while (!failed_ && !closed_ && !write_in_flight_ && raft_->HasReady()) {
      if (observer_ != nullptr) observer_->OnStep(*raft_);
      raft::Ready rd = raft_->GetReady();
      // The core applies a configuration when its entry is appended (or a
      // snapshot brings one): the transport must know a new member now.
      bool named = NoteConfEntries(rd.entries);
      if (rd.snapshot.has_value()) {
        // Before it is applied: the transport must know its members now.
        for (const raft::MemberInfo& m : rd.snapshot->metadata.members()) {
          peer::MemberInfo& k = known_[m.id()];
          k.set_id(m.id());
          k.set_name(m.name());
          k.set_zone(m.zone());
          k.set_address(m.address());
        }
        named = true;
      }
      SyncMembers(named);
      if (rd.soft_state.has_value()) {
        soft_ = *rd.soft_state;
        // No longer the leader: what waits before the log is refused now
        // (by the core), not at its deadline.
        if (soft_.role != raft::Role::kLeader) ProposeQueued();
      }
      ReportRole();
      // (1) Confirmations need nothing of this member's disk.
      ConfirmRounds(rd.read_states);
      const bool writes = rd.snapshot.has_value() || !rd.entries.empty() ||
                          rd.hard_state.has_value();
      if (!writes) {
        CompleteThenSend(std::move(rd));  // (2)
        continue;
      }
      if (!rd.must_sync && !rd.snapshot.has_value() && rd.entries.empty()) {
        // (3) Only the commit index changed: nothing here must be durable
        // before anything is sent or applied. It goes to disk with the next
        // write of entries. Writing it by itself would wake the writer once
        // more per commit on every member.
        unwritten_hard_state_ = rd.hard_state;
        CompleteThenSend(std::move(rd));
        continue;
      }
      SubmitWrite(std::move(rd));  // (4), (5), (6)
    }
    if (write_in_flight_ && !failed_ && !closed_) {
      // (7) The disk is busy with the last Ready: heartbeats go out,
      // confirmations are answered and committed entries applied anyway.
      // Members often share a disk, and one slow fsync must not lapse
      // every member's window at once.
      std::vector<raft::Message> early = raft_->TakeMessages();
      if (!early.empty()) env_->Send(std::move(early));
      const std::vector<raft::ReadState> confirmed = raft_->TakeReadStates();
      ConfirmRounds(confirmed);
      NoteReadPoints(confirmed);
      ApplyCommitted(raft_->TakeCommittedEntries());
      ServeReads();
    }
  } while (drive_again_ && !closed_);
  driving_ = false;
  if (observer_ != nullptr) observer_->OnStep(*raft_);
  if (!failed_ && !closed_) {
    const int64_t deadline = raft_->NextDeadline();
    if (deadline != scheduled_tick_) {
      scheduled_tick_ = deadline;
      env_->ScheduleTick(deadline);
    }
  }
}

void Driver::ReportRole() {
  if (!options_.on_role) return;
  if (role_reported_ && soft_.role == reported_role_ &&
      raft_->term() == reported_term_) {
    return;
  }
  role_reported_ = true;
  reported_role_ = soft_.role;
  reported_term_ = raft_->term();
  options_.on_role(soft_.role, reported_term_);
}

void Driver::SubmitWrite(raft::Ready rd) {
  // New entries: the followers start on them before this member's disk
  // does (a leader counts its own log toward the quorum only as far as it
  // is durable: Raft::MaybeCommit).
  if (!rd.messages.empty()) env_->Send(std::move(rd.messages));
  rd.messages.clear();
  // Committed entries are durable on a quorum already, whatever this
  // member's disk is doing: they are applied while this Ready is written.
  // Entries after a snapshot wait for it.
  std::vector<raft::EntryPtr> committed;
  if (!rd.snapshot.has_value()) committed.swap(rd.committed_entries);
  DriverWriter::Request write;
  write.snapshot = rd.snapshot;  // rare; Complete() restores it afterwards
  write.entries = std::move(rd.entries);
  // Only the planted bug reads the written entries back (WriteDone).
  if (options_.unsafe.answer_before_commit) rd.entries = write.entries;
  // A hard state of this Ready's own is the newer one.
  write.hard_state =
      rd.hard_state.has_value() ? rd.hard_state : unwritten_hard_state_;
  unwritten_hard_state_.reset();
  write_in_flight_ = true;
  auto shared = std::make_shared<raft::Ready>(std::move(rd));
  writer_->Write(std::move(write), [this, shared](absl::Status s) {
    // Any thread. (5) What waited for this write goes out now: a
    // follower's acknowledgement does not wait for the driver's thread.
    if (s.ok() && !shared->messages_after_persist.empty()) {
      env_->Send(std::move(shared->messages_after_persist));
      shared->messages_after_persist.clear();
    }
    env_->Post([this, shared, s] { WriteDone(std::move(*shared), s); });
  });
  ApplyCommitted(committed);
  ServeReads();
}

void Driver::WriteDone(raft::Ready rd, const absl::Status& status) {
  if (closed_) return;
  write_in_flight_ = false;
  if (!status.ok()) {
    Fail(status);
    return;
  }
  if (options_.unsafe.answer_before_commit) {
    // Broken on purpose: durable here is not committed.
    for (const raft::EntryPtr& e : rd.entries) {
      auto it = proposals_.find(e->index());
      if (it == proposals_.end() || it->second.term != e->term()) continue;
      auto done = std::move(it->second.done);
      proposals_.erase(it);
      done(Applied{e->index(), std::string()});
    }
  }
  Complete(std::move(rd));
  Drive();
}

void Driver::CompleteThenSend(raft::Ready rd) {
  // A follower sends first: its responses are what the leader waits for.
  // A leader applies what was committed, and answers its proposers, first:
  // every answer and every message costs a write to a socket on this
  // thread, and a leader's messages here carry only a new commit index or
  // a heartbeat.
  const bool answer_first = soft_.role == raft::Role::kLeader;
  std::vector<raft::Message> messages = std::move(rd.messages);
  rd.messages.clear();
  if (!answer_first && !messages.empty()) env_->Send(std::move(messages));
  Complete(std::move(rd));
  if (answer_first && !messages.empty()) env_->Send(std::move(messages));
}

void Driver::Complete(raft::Ready rd) {
  if (!rd.messages_after_persist.empty()) {
    env_->Send(std::move(rd.messages_after_persist));
  }
  if (rd.snapshot.has_value()) {
    ApplySnapshot(*rd.snapshot);
    if (failed_) return;
  }
  ApplyCommitted(rd.committed_entries);
  NoteReadPoints(rd.read_states);
  FailReads(rd.failed_reads);
  ServeReads();
  raft_->Advance();
  MaybeSnapshot();
}

void Driver::ApplyCommitted(const std::vector<raft::EntryPtr>& entries) {
  to_apply_.insert(to_apply_.end(), entries.begin(), entries.end());
  ApplySome();
}

void Driver::ApplySome() {
  size_t applied = 0;
  int64_t now = 0;  // read once, when a proposal of this member's applies
  const size_t in_log = proposals_.size();
  // A snapshot is taken at its member's own index when the batch passes
  // it, not at the batch's end: members applying in large batches would
  // otherwise meet at the same index (NextSnapshotAt).
  const uint64_t snapshot_at =
      options_.snapshot_every == 0 ? 0 : NextSnapshotAt();
  while (!to_apply_.empty()) {
    if (failed_ || closed_) return;
    if (options_.max_apply_per_turn > 0 &&
        applied == options_.max_apply_per_turn) {
      PostContinuation();
      return;
    }
    const raft::EntryPtr e = std::move(to_apply_.front());
    to_apply_.pop_front();
    ++applied;
    QUORATE_CHECK_EQ(e->index(), applied_ + 1) << "apply out of order";
    applied_ = e->index();
    std::string result;
    if (e->type() == raft::ENTRY_TYPE_NORMAL && !e->data().empty() &&
        options_.state_machine != nullptr) {
      result = options_.state_machine->Apply(e->index(), e->data());
    }
    if (observer_ != nullptr) observer_->OnApplied(*e);
    if (applied_ == snapshot_at) MaybeSnapshot();
    auto it = proposals_.find(e->index());
    if (it == proposals_.end()) continue;
    Proposal p = std::move(it->second);
    proposals_.erase(it);
    if (e->term() == p.term) {
      if (now == 0) now = env_->Now();
      const int64_t took = std::max<int64_t>(now - p.proposed_ns, 1);
      int64_t& avg = overload_.log_latency_ns;
      avg = avg == 0 ? took : avg + (took - avg) / 16;
      p.done(Applied{e->index(), std::move(result)});
    } else {
      p.done(absl::AbortedError(
          "leadership changed and the proposal was replaced; it was not "
          "applied"));
    }
  }
  // Room in the log: whoever called this drives the core afterwards (the
  // core takes proposals while a Ready is outstanding, raft.h).
  if (proposals_.size() < in_log && !to_propose_.empty()) ProposeQueued();
}

void Driver::ApplySnapshot(const raft::Snapshot& snapshot) {
  // Entries still waiting to be applied are all covered by the snapshot
  // (the core takes no snapshot at or below its commit index).
  to_apply_.clear();
  if (absl::Status s = LoadSnapshot(*snapshot.data); !s.ok()) {
    Fail(s);
    return;
  }
  applied_ = snapshot.metadata.index();
  SyncMembers(/*names_changed=*/true);
  // Proposals at or below it were replaced or applied elsewhere: the
  // outcome is not known here.
  for (auto it = proposals_.begin();
       it != proposals_.end() && it->first <= applied_;) {
    auto done = std::move(it->second.done);
    it = proposals_.erase(it);
    done(absl::UnknownError(
        "a snapshot from the leader replaced the log; the proposal's "
        "outcome is unknown"));
  }
}

// ---------------------------------------------------------------------------
// Reads and confirmations.

void Driver::ConfirmRounds(const std::vector<raft::ReadState>& states) {
  for (const raft::ReadState& rs : states) {
    auto it = reads_.find(rs.request_id);
    if (it == reads_.end() || it->second.lane != kConfirms) continue;
    ReadBatch batch = std::move(it->second);
    reads_.erase(it);
    lanes_[kConfirms].waiting -= batch.waiters.size();
    FinishBatch(rs.request_id, batch);
    for (ReadWaiter& w : batch.waiters) w.confirmed(rs);
  }
}

void Driver::NoteReadPoints(const std::vector<raft::ReadState>& states) {
  for (const raft::ReadState& rs : states) {
    if (rs.request_id < options_.first_read_id ||
        rs.request_id >= next_read_id_) {
      if (observer_ != nullptr) observer_->OnOtherReadState(rs);
      continue;
    }
    auto it = reads_.find(rs.request_id);
    if (it == reads_.end() || it->second.index != 0) continue;
    it->second.index = rs.index;
    // Reads arriving from now on need a read point asked after them.
    FinishBatch(rs.request_id, it->second);
  }
}

void Driver::FailReads(const std::vector<uint64_t>& ids) {
  for (uint64_t id : ids) {
    if (id < options_.first_read_id || id >= next_read_id_) {
      if (observer_ != nullptr) observer_->OnOtherFailedRead(id);
      continue;
    }
    auto it = reads_.find(id);
    if (it == reads_.end()) continue;
    ReadBatch batch = std::move(it->second);
    reads_.erase(it);
    lanes_[batch.lane].waiting -= batch.waiters.size();
    FinishBatch(id, batch);
    for (ReadWaiter& w : batch.waiters) {
      w.done(absl::UnavailableError(
          "leadership changed before the read was confirmed; retry"));
    }
  }
}

void Driver::ServeReads() {
  for (auto it = reads_.begin(); it != reads_.end();) {
    if (it->second.index == 0 || it->second.index > applied_) {
      ++it;
      continue;
    }
    ReadBatch batch = std::move(it->second);
    it = reads_.erase(it);
    lanes_[batch.lane].waiting -= batch.waiters.size();
    for (ReadWaiter& w : batch.waiters) {
      to_answer_.emplace_back(std::move(w), batch.index);
    }
  }
  size_t answered = 0;
  while (!to_answer_.empty() && !failed_ && !closed_) {
    if (options_.max_apply_per_turn > 0 &&
        answered == options_.max_apply_per_turn) {
      PostContinuation();
      return;
    }
    auto [waiter, index] = std::move(to_answer_.front());
    to_answer_.pop_front();
    ++answered;
    waiter.done(index);
  }
}

void Driver::PostContinuation() {
  if (continuation_posted_) return;
  continuation_posted_ = true;
  env_->Post([this] {
    continuation_posted_ = false;
    if (failed_ || closed_) return;
    ApplySome();
    ServeReads();
    MaybeSnapshot();
    Drive();
  });
}

void Driver::FinishBatch(uint64_t id, const ReadBatch& batch) {
  ReadLane& lane = lanes_[batch.lane];
  if (lane.in_flight == id) {
    lane.in_flight = 0;
    LaunchBatch(batch.lane);
  }
}

// ---------------------------------------------------------------------------
// Snapshots.

void Driver::CaptureSnapshot(
    std::function<void(absl::StatusOr<CapturedSnapshot>)> done) {
  if (failed_ || closed_) {
    done(absl::UnavailableError("the member stopped"));
    return;
  }
  if (!raft_->Configured()) {
    done(absl::UnavailableError(
        "this member has not received its first snapshot yet"));
    return;
  }
  raft::SnapshotMetadata md = raft_->SnapshotMetadataAt(applied_);
  auto snap = std::make_shared<peer::NodeSnapshot>(MembersAt(md));
  SetMetadataMembers(*snap, &md);
  absl::AnyInvocable<std::string()> state;
  if (options_.state_machine != nullptr) {
    state = options_.state_machine->Snapshot();
  }
  env_->RunInBackground([md, snap, state = std::move(state),
                         done = std::move(done)]() mutable {
    if (state) snap->set_state(state());
    done(CapturedSnapshot{
        md, std::make_shared<const std::string>(snap->SerializeAsString())});
  });
}

peer::NodeSnapshot Driver::MembersAt(const raft::SnapshotMetadata& md) const {
  peer::NodeSnapshot snap;
  for (const auto* ids :
       {&md.conf_state().voters(), &md.conf_state().learners()}) {
    for (uint64_t id : *ids) {
      auto it = known_.find(id);
      peer::MemberInfo& m = *snap.add_members();
      if (it != known_.end()) {
        m = it->second;
      } else {
        m.set_id(id);
        m.set_name(absl::StrCat(id));
      }
    }
  }
  return snap;
}

uint64_t Driver::NextSnapshotAt() const {
  // Each member takes its snapshots at its own phase of the interval:
  // member i of n at the indexes k * E + i * E / n. Members that snapshot
  // at the same index all serialize, write and sync a large state at once;
  // on a shared disk or CPU that can stall a quorum's writes together (the
  // overload test saw commits stop for seconds). Staggered, at most one
  // member at a time does it, and the others carry the quorum. A snapshot
  // still comes at least E / 2 and at most 3E / 2 entries after the last.
  const uint64_t e = options_.snapshot_every;
  uint64_t rank = 0;
  for (const auto& [id, m] : members_) {
    if (id < raft_->id()) ++rank;
  }
  const uint64_t n = std::max<uint64_t>(members_.size(), 1);
  const uint64_t phase = std::min(rank, n - 1) * (e / n);
  // The newest snapshot taken, whether or not the core compacted its log
  // to it yet (it keeps the log while a member receives an older one).
  const uint64_t after =
      std::max(raft_->log().snapshot_index(), last_snapshot_) + e / 2;
  if (after < phase) return phase;
  return ((after - phase) / e + 1) * e + phase;
}

void Driver::MaybeSnapshot() {
  if (failed_ || closed_ || snapshot_in_flight_ ||
      options_.snapshot_every == 0) {
    return;
  }
  if (applied_ < NextSnapshotAt()) return;
  const uint64_t index = applied_;
  if (index > raft_->log().stable_index()) return;  // not yet durable here
  // Captured here, cheaply; serialized in the background, where a large
  // state may take a while without delaying the loop (heartbeats, the
  // partition guard's renewals) or the writer (fsyncs).
  raft::SnapshotMetadata md = raft_->SnapshotMetadataAt(index);
  auto snap = std::make_shared<peer::NodeSnapshot>(MembersAt(md));
  SetMetadataMembers(*snap, &md);
  absl::AnyInvocable<std::string()> state;
  if (options_.state_machine != nullptr) {
    state = options_.state_machine->Snapshot();
  }
  snapshot_in_flight_ = true;
  env_->RunInBackground([this, md, snap, state = std::move(state)]() mutable {
    if (state) snap->set_state(state());
    auto data = std::make_shared<const std::string>(snap->SerializeAsString());
    writer_->SaveSnapshot(md, data, [this, md, data](absl::Status s) {
      env_->Post([this, md, data, s] {
        if (closed_) return;
        snapshot_in_flight_ = false;
        if (!s.ok()) {
          Fail(s);
          return;
        }
        last_snapshot_ = std::max(last_snapshot_, md.index());
        // The log is compacted only now that the snapshot is durable.
        if (md.index() > raft_->log().snapshot_index()) {
          const absl::Status c = raft_->Compact(md, data);
          QUORATE_CHECK(c.ok()) << c;
        }
        Log(absl::StrCat("snapshot at entry ", md.index(),
                         " saved; log compacted"));
      });
    });
  });
}

// ---------------------------------------------------------------------------
// Inputs.

void Driver::Tick() {
  if (failed_ || closed_) return;
  scheduled_tick_ = 0;
  raft_->Tick(env_->Now());
  Drive();
}

absl::Status Driver::Step(std::vector<raft::Message> messages) {
  if (failed_ || closed_) return absl::UnavailableError("the member stopped");
  const int64_t now = env_->Now();
  absl::Status first;
  for (raft::Message& m : messages) {
    absl::Status s = raft_->Step(std::move(m), now);
    if (first.ok()) first = std::move(s);
  }
  Drive();
  return first;
}

void Driver::ReportUnreachable(uint64_t peer) {
  if (failed_ || closed_) return;
  raft_->ReportUnreachable(peer);
  Drive();
}

absl::Status Driver::TransferLeadership(uint64_t target) {
  if (failed_ || closed_) {
    return absl::UnavailableError("the member stopped");
  }
  absl::Status s = raft_->TransferLeadership(target, env_->Now());
  Drive();
  return s;
}

absl::Status Driver::Admit(size_t waiting, absl::string_view what) const {
  if (failed_ || closed_) {
    return absl::UnavailableError(failed_ ? "the member stopped after an error"
                                          : "the member is stopping");
  }
  if (waiting >= options_.max_waiting) {
    return absl::ResourceExhaustedError(absl::StrCat(
        waiting, " ", what, " are already waiting on this member"));
  }
  return absl::OkStatus();
}

void Driver::Propose(std::string command, int64_t deadline_ns,
                     std::function<void(absl::StatusOr<Applied>)> done) {
  if (absl::Status s =
          Admit(proposals_.size() + to_propose_.size(), "proposals");
      !s.ok()) {
    done(s);
    return;
  }
  // It waited past its deadline to get here (an overloaded member): its
  // caller has gone, and proposing it would only delay those still waiting.
  const int64_t now = env_->Now();
  if (now >= deadline_ns) {
    done(absl::DeadlineExceededError(
        "the proposal's deadline passed before it was proposed; it was not "
        "applied"));
    return;
  }
  const bool log_full = options_.max_proposals_in_log > 0 &&
                        proposals_.size() >= options_.max_proposals_in_log;
  if (!log_full && to_propose_.empty()) {
    // Room now: straight into the log, whatever the estimate says. The
    // estimate only decides for proposals that would wait; it learns only
    // from what is applied, so a stale one (entries that waited out a
    // stall) that refused proposals with room would never be corrected:
    // the simulator found a leader that proposed nothing for good after a
    // zone cut.
    ProposeNow(Queued{std::move(command), deadline_ns, std::move(done)});
    Drive();
    return;
  }
  const int64_t wait = ExpectedWaitNs(to_propose_.size());
  if (now + wait >= deadline_ns) {
    ++overload_.refused;
    done(absl::ResourceExhaustedError(absl::StrCat(
        "this member is overloaded: ", proposals_.size() + to_propose_.size(),
        " proposals are waiting, and this one would be applied in about ",
        wait / 1'000'000, " ms, after its deadline (",
        (deadline_ns - now) / 1'000'000, " ms away); it was not proposed")));
    if (!options_.unsafe.propose_what_it_sheds) return;
    done = [](absl::StatusOr<Applied>) {};  // broken on purpose
  }
  to_propose_.push_back(
      Queued{std::move(command), deadline_ns, std::move(done)});
  ProposeQueued();
  Drive();
}

int64_t Driver::ExpectedWaitNs(size_t ahead) const {
  if (overload_.log_latency_ns == 0) return 0;
  // Little's law: the log serves about in_log entries per latency.
  const double in_log =
      static_cast<double>(std::max<size_t>(proposals_.size(), 1));
  return static_cast<int64_t>(static_cast<double>(overload_.log_latency_ns) *
                              (1.0 + static_cast<double>(ahead) / in_log));
}

void Driver::ProposeQueued() {
  // Room in the log, or a core that will refuse them all (not leading).
  while (!to_propose_.empty() && !failed_ && !closed_ &&
         (options_.max_proposals_in_log == 0 ||
          proposals_.size() < options_.max_proposals_in_log ||
          raft_->role() != raft::Role::kLeader)) {
    Queued q = std::move(to_propose_.front());
    to_propose_.pop_front();
    if (env_->Now() + overload_.log_latency_ns >= q.deadline_ns) {
      ++overload_.expired;
      q.done(absl::DeadlineExceededError(
          "the proposal waited for room in the log until too little of its "
          "time was left to apply it; it was not proposed"));
      continue;
    }
    ProposeNow(std::move(q));
  }
}

void Driver::ProposeNow(Queued q) {
  const int64_t now = env_->Now();
  absl::StatusOr<uint64_t> index = raft_->Propose(std::move(q.command), now);
  if (!index.ok()) {
    q.done(index.status());
    return;
  }
  TrackProposal(*index, q.deadline_ns, now, std::move(q.done));
}

void Driver::TrackProposal(uint64_t index, int64_t deadline_ns, int64_t now,
                           std::function<void(absl::StatusOr<Applied>)> done) {
  // A proposal of an earlier term may still wait at this index: a new
  // leader overwrote its entry, and this member leads again. It was not
  // applied.
  if (auto old = proposals_.find(index); old != proposals_.end()) {
    auto old_done = std::move(old->second.done);
    proposals_.erase(old);
    old_done(absl::AbortedError(
        "leadership changed and another entry took the proposal's place; "
        "it was not applied"));
  }
  proposals_[index] =
      Proposal{raft_->term(), deadline_ns, std::move(done), now};
}

void Driver::ProposeConfChange(
    const raft::ConfChange& change, int64_t deadline_ns,
    std::function<void(absl::StatusOr<Applied>)> done) {
  if (failed_ || closed_) {
    done(absl::UnavailableError("the member stopped"));
    return;
  }
  const int64_t now = env_->Now();
  absl::StatusOr<uint64_t> index = raft_->ProposeConfChange(change, now);
  if (!index.ok()) {
    done(index.status());
    return;
  }
  TrackProposal(*index, deadline_ns, now, std::move(done));
  Drive();
}

void Driver::Read(int64_t deadline_ns,
                  std::function<void(absl::StatusOr<uint64_t>)> done) {
  StartRead(kReads, ReadWaiter{deadline_ns, std::move(done), nullptr});
}

void Driver::Confirm(int64_t deadline_ns,
                     std::function<void(absl::StatusOr<Confirmation>)> done) {
  auto shared = std::make_shared<decltype(done)>(std::move(done));
  StartRead(kConfirms,
            ReadWaiter{
                deadline_ns,
                [shared](absl::StatusOr<uint64_t> s) { (*shared)(s.status()); },
                [this, shared](const raft::ReadState& rs) {
                  (*shared)(Confirmation{rs.term, rs.term_start, applied_});
                }});
}

void Driver::StartRead(Lane lane, ReadWaiter waiter) {
  ReadLane& l = lanes_[lane];
  const size_t limit =
      lane == kReads ? options_.max_waiting : options_.max_waiting_confirms;
  absl::Status s = Admit(0, "reads");  // stopped?
  if (s.ok() && env_->Now() >= waiter.deadline_ns) {
    s = absl::DeadlineExceededError(
        "the read's deadline passed before this member could start it");
  }
  if (s.ok() && l.waiting >= limit) {
    s = absl::ResourceExhaustedError(
        absl::StrCat(l.waiting, lane == kReads ? " reads" : " confirmations",
                     " are already waiting on this member"));
  }
  if (!s.ok()) {
    waiter.done(s);
    return;
  }
  ++l.waiting;
  l.forming.push_back(std::move(waiter));
  LaunchBatch(lane);
  Drive();
}

void Driver::LaunchBatch(Lane lane) {
  ReadLane& l = lanes_[lane];
  // Reads share one read point in flight at a time. Confirmations are few
  // (one per member per heartbeat) and each must be answered within its
  // window: each gets a read point of its own at once, so that a slow or
  // lost one holds up no other.
  if (lane == kReads && l.in_flight != 0) return;
  if (l.forming.empty() || failed_ || closed_) return;
  const uint64_t id = next_read_id_++;
  std::vector<ReadWaiter> waiters;
  waiters.swap(l.forming);
  if (absl::Status s = raft_->ReadIndex(id, env_->Now()); !s.ok()) {
    l.waiting -= waiters.size();
    for (ReadWaiter& w : waiters) w.done(s);
    return;
  }
  if (lane == kReads) l.in_flight = id;
  reads_[id] = ReadBatch{lane, 0, std::move(waiters)};
}

void Driver::ExpireWaiting(int64_t now_ns) {
  // The callbacks run after both sweeps: one may propose again, which
  // changes proposals_ and to_propose_ under the sweeps' iterators (the
  // simulator's lessor did; ASan caught the use after free).
  std::vector<std::function<void(absl::StatusOr<Applied>)>> in_log, queued;
  for (auto it = proposals_.begin(); it != proposals_.end();) {
    if (it->second.deadline_ns > now_ns) {
      ++it;
      continue;
    }
    in_log.push_back(std::move(it->second.done));
    it = proposals_.erase(it);
  }
  for (auto it = to_propose_.begin(); it != to_propose_.end();) {
    if (it->deadline_ns > now_ns) {
      ++it;
      continue;
    }
    queued.push_back(std::move(it->done));
    it = to_propose_.erase(it);
    ++overload_.expired;
  }
  for (auto& done : in_log) {
    done(absl::DeadlineExceededError(
        "the proposal was not applied before its deadline; it may still be"));
  }
  for (auto& done : queued) {
    done(absl::DeadlineExceededError(
        "the proposal waited for room in the log past its deadline; it was "
        "not proposed"));
  }
  if (!to_propose_.empty()) {
    ProposeQueued();
    Drive();
  }
  // A batch whose callers all expired stays until the core answers it:
  // its lane asks for no other read point meanwhile.
  std::vector<ReadWaiter> expired;
  auto take_expired = [&](std::vector<ReadWaiter>& waiters, ReadLane& lane) {
    auto keep = std::stable_partition(
        waiters.begin(), waiters.end(),
        [&](const ReadWaiter& w) { return w.deadline_ns > now_ns; });
    lane.waiting -= static_cast<size_t>(waiters.end() - keep);
    std::move(keep, waiters.end(), std::back_inserter(expired));
    waiters.erase(keep, waiters.end());
  };
  for (auto& [id, batch] : reads_) {
    take_expired(batch.waiters, lanes_[batch.lane]);
  }
  for (ReadLane& lane : lanes_) take_expired(lane.forming, lane);
  for (ReadWaiter& w : expired) {
    w.done(absl::DeadlineExceededError(
        "no read point was confirmed before the deadline"));
  }
}

// ---------------------------------------------------------------------------
// Stopping.

void Driver::AnswerAll(const absl::Status& proposals,
                       const absl::Status& reads) {
  // Callbacks may call back in; take the maps first.
  std::map<uint64_t, Proposal> p;
  p.swap(proposals_);
  std::deque<Queued> queued;
  queued.swap(to_propose_);
  std::vector<ReadWaiter> r;
  for (auto& [id, batch] : reads_) {
    std::move(batch.waiters.begin(), batch.waiters.end(),
              std::back_inserter(r));
  }
  reads_.clear();
  for (auto& [waiter, index] : to_answer_) r.push_back(std::move(waiter));
  to_answer_.clear();
  for (ReadLane& lane : lanes_) {
    std::move(lane.forming.begin(), lane.forming.end(), std::back_inserter(r));
    lane = ReadLane();
  }
  // A proposal is in the log already: another member may still commit it.
  for (auto& [index, proposal] : p) proposal.done(proposals);
  // Never proposed: not applied, whatever became of the others.
  for (Queued& q : queued) {
    q.done(absl::UnavailableError(absl::StrCat(
        reads.message(), "; the proposal was not proposed or applied")));
  }
  for (ReadWaiter& w : r) w.done(reads);
}

void Driver::Fail(const absl::Status& status) {
  if (failed_) return;
  failed_ = true;
  Log(absl::StrCat("the member stopped working: ", status.message()));
  AnswerAll(
      absl::UnknownError(absl::StrCat("the member stopped (", status.message(),
                                      "); the proposal's outcome is unknown")),
      absl::UnavailableError(
          absl::StrCat("the member stopped: ", status.message())));
  if (options_.on_fatal) options_.on_fatal(status);
}

void Driver::Close(absl::string_view why) {
  if (closed_) return;
  closed_ = true;
  AnswerAll(absl::UnknownError(
                absl::StrCat(why, "; the proposal's outcome is unknown")),
            absl::UnavailableError(why));
}

}  // namespace quorate::node
