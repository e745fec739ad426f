#include "node/node.h"

// Asio with GCC 12 in C++20 mode needs <utility> first.
#include <utility>
//
#include <algorithm>
#include <atomic>
#include <boost/asio.hpp>
#include <chrono>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <thread>

#include "absl/strings/str_cat.h"
#include "quorate/peer.pb.h"
#include "storage/storage.h"
#include "storage/writer.h"
#include "util/check.h"
#include "util/clock.h"
#include "util/mutex.h"
#include "util/serial_executor.h"
#include "util/thread_name.h"

namespace quorate::node {

uint64_t MemberId(absl::string_view name) {
  uint64_t h = 0xcbf29ce484222325ULL;
  for (char c : name) {
    h ^= static_cast<uint8_t>(c);
    h *= 0x100000001b3ULL;
  }
  return h == 0 ? 1 : h;
}

namespace {

namespace asio = boost::asio;

// The core's randomness (election timeouts), from the OS once.
class OsSeededRandom final : public raft::Random {
 public:
  OsSeededRandom()
      : inner_(std::random_device{}() * 0x9e3779b97f4a7c15ULL ^
               static_cast<uint64_t>(MonotonicNowNs())) {}
  uint64_t Next() override { return inner_.Next(); }

 private:
  raft::SeededRandom inner_;
};

std::chrono::steady_clock::time_point AtMonotonic(int64_t ns) {
  // steady_clock is CLOCK_MONOTONIC on Linux, as MonotonicNowNs() is.
  return std::chrono::steady_clock::time_point(std::chrono::nanoseconds(ns));
}

absl::Status ValidateOptions(const NodeOptions& o) {
  if (o.name.empty()) return absl::InvalidArgumentError("no member name");
  if (o.data_dir.empty()) {
    return absl::InvalidArgumentError("no data directory given");
  }
  if (o.listen.empty()) {
    return absl::InvalidArgumentError("no listen address given");
  }
  if (o.heartbeat_interval <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("the heartbeat interval must be > 0");
  }
  if (o.election_timeout < 3 * o.heartbeat_interval) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the election timeout (", absl::FormatDuration(o.election_timeout),
        ") must be at least three heartbeat intervals (",
        absl::FormatDuration(o.heartbeat_interval), ")"));
  }
  std::set<uint64_t> ids;
  for (const MemberSpec& m : o.initial_members) {
    if (!ids.insert(MemberId(m.name)).second) {
      return absl::InvalidArgumentError(
          absl::StrCat("member '", m.name, "' is listed twice"));
    }
  }
  return absl::OkStatus();
}

}  // namespace

class Node::Impl {
 public:
  explicit Impl(NodeOptions options)
      : options_(std::move(options)),
        self_(MemberId(options_.name)),
        work_(asio::make_work_guard(io_)),
        raft_timer_(io_),
        sweep_timer_(io_),
        transfer_timer_(io_) {}

  ~Impl() { Stop(false); }

  absl::Status Init();
  void Propose(std::string command, absl::Duration timeout,
               std::function<void(absl::StatusOr<Applied>)> done);
  void Confirm(absl::Duration timeout,
               std::function<void(absl::StatusOr<Confirmation>)> done);
  void StartRead(absl::Duration timeout,
                 std::function<void(absl::StatusOr<uint64_t>)> done,
                 std::function<void(const raft::ReadState&)> confirmed);
  void Read(absl::Duration timeout,
            std::function<void(absl::StatusOr<uint64_t>)> done);
  NodeStatus GetStatus() const;
  void Stop(bool graceful);
  std::string listen_address() const { return transport_->listen_address(); }
  void Campaign() {
    asio::post(io_, [this] {
      if (failed_ || closing_) return;
      raft_->Campaign(MonotonicNowNs());
      Drive();
    });
  }

 private:
  struct Proposal {
    uint64_t term = 0;
    int64_t deadline_ns = 0;
    std::function<void(absl::StatusOr<Applied>)> done;
  };
  struct PendingRead {
    int64_t deadline_ns = 0;
    uint64_t index = 0;  // 0 until the leader confirmed a read point
    // Errors, and (reads) the applied read point.
    std::function<void(absl::StatusOr<uint64_t>)> done;
    // Confirm(): answered when the leader confirms, without waiting for
    // the state machine.
    std::function<void(const raft::ReadState&)> confirmed;
  };
  // Answers the confirmed reads whose index is applied.
  void ServeReads();
  // Answers Confirm() calls whose round the leader confirmed.
  void ConfirmRounds(const std::vector<raft::ReadState>& states);
  // Reads: each one's confirmed read point, served once applied.
  void NoteReadPoints(const std::vector<raft::ReadState>& states);
  // Whether a Propose() or Read() may be posted to the loop; on OK it
  // counts in queued_ until its handler runs.
  absl::Status Admit();
  // Fails every waiting proposal and read whose deadline passed.
  void ExpireWaiting(int64_t now);

  void Log(const std::string& line) const {
    if (options_.log) options_.log(line);
  }
  absl::Status LoadMembers(const std::string& snapshot_data);
  // Runs the Ready loop as far as it can go without waiting.
  void Drive();
  // The second half of a Ready, once its writes are durable.
  void Complete(raft::Ready rd, const absl::Status& persisted);
  // Complete() for a Ready with nothing to write, then its messages.
  void CompleteThenSend(raft::Ready rd);
  void ApplySnapshot(const raft::Snapshot& snapshot);
  void MaybeSnapshot();
  // Applies committed entries, in order, and answers their proposals.
  void ApplyCommitted(const std::vector<raft::EntryPtr>& entries);
  void ScheduleTick();
  void ScheduleSweep();
  void Fail(const absl::Status& status);
  void PublishStatus();
  void BeginTransfer();

  const NodeOptions options_;
  const uint64_t self_;
  OsSeededRandom random_;
  asio::io_context io_;
  asio::executor_work_guard<asio::io_context::executor_type> work_;
  asio::steady_timer raft_timer_;
  asio::steady_timer sweep_timer_;
  asio::steady_timer transfer_timer_;
  std::thread thread_;

  // Loop thread only (after Init()).
  std::unique_ptr<storage::Storage> storage_;
  std::unique_ptr<storage::GroupCommitWriter> writer_;
  std::unique_ptr<SerialExecutor> snapshotter_;  // q-snapshot
  std::unique_ptr<raft::Raft> raft_;
  std::unique_ptr<transport::Transport> transport_;
  std::map<uint64_t, peer::MemberInfo> members_;  // by raft id
  uint64_t members_generation_ = 0;               // bumped when it changes
  uint64_t published_members_ = ~uint64_t{0};     // generation in status_
  bool ready_in_flight_ = false;
  // A commit index the core handed out without entries: it is written with
  // the next Ready that has some.
  std::optional<raft::HardState> unwritten_hard_state_;
  bool closing_ = false;  // Stop() began: handlers answer and return
  bool snapshot_in_flight_ = false;
  bool failed_ = false;
  uint64_t applied_ = 0;
  int64_t scheduled_tick_ = 0;
  raft::SoftState soft_;
  bool role_reported_ = false;
  raft::Role reported_role_ = raft::Role::kFollower;
  uint64_t reported_term_ = 0;
  std::map<uint64_t, Proposal> proposals_;  // by index
  std::map<uint64_t, PendingRead> reads_;   // by request id
  // Random start: a leader may still answer reads this member forwarded
  // before it restarted, and must not match them with new ones.
  uint64_t next_read_id_ = (uint64_t{std::random_device{}()} << 32) | 1;

  std::atomic<size_t> inbox_{0};
  std::atomic<size_t> queued_{0};  // Propose/Read calls posted, not yet run
  std::atomic<uint64_t> inbox_dropped_{0};
  std::atomic<bool> stopped_{false};

  mutable Mutex mu_;
  CondVar status_changed_;
  NodeStatus status_ ABSL_GUARDED_BY(mu_);
  bool transfer_abandoned_ ABSL_GUARDED_BY(mu_) = false;
  bool drained_ ABSL_GUARDED_BY(mu_) = false;
};

absl::Status Node::Impl::LoadMembers(const std::string& snapshot_data) {
  peer::NodeSnapshot snap;
  if (!snap.ParseFromString(snapshot_data)) {
    return absl::FailedPreconditionError(
        absl::StrCat("the newest snapshot in ", options_.data_dir,
                     " was not written by a quorate member"));
  }
  members_.clear();
  for (const peer::MemberInfo& m : snap.members()) members_[m.id()] = m;
  ++members_generation_;
  if (options_.state_machine != nullptr) {
    return options_.state_machine->Restore(snap.state());
  }
  return absl::OkStatus();
}

absl::Status Node::Impl::Init() {
  storage::StorageOptions so;
  so.dir = options_.data_dir;
  so.fs = options_.fs;
  so.cluster_id = options_.cluster_id;
  so.segment_bytes = options_.segment_bytes;
  so.log = options_.log;
  raft::RestoredState restored;
  storage::RecoveryInfo info;
  absl::StatusOr<std::unique_ptr<storage::Storage>> st =
      storage::Storage::Open(so, &restored, &info);
  if (!st.ok()) return st.status();
  storage_ = *std::move(st);

  if (restored.snapshot.index() == 0 && !restored.snapshot.has_conf_state()) {
    // A new member: the initial configuration is a snapshot at index 0.
    if (options_.initial_members.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("the data directory ", options_.data_dir,
                       " is new, and no initial members (--peers) were given"));
    }
    peer::NodeSnapshot snap;
    raft::SnapshotMetadata md;
    bool self_listed = false;
    for (const MemberSpec& m : options_.initial_members) {
      peer::MemberInfo* info_m = snap.add_members();
      info_m->set_id(MemberId(m.name));
      info_m->set_name(m.name);
      info_m->set_zone(m.zone);
      info_m->set_address(m.address);
      if (m.voter) {
        md.mutable_conf_state()->add_voters(info_m->id());
      } else {
        md.mutable_conf_state()->add_learners(info_m->id());
      }
      self_listed |= m.name == options_.name;
    }
    if (!self_listed) {
      return absl::InvalidArgumentError(absl::StrCat(
          "member '", options_.name, "' is not among the initial members"));
    }
    auto data = std::make_shared<const std::string>(snap.SerializeAsString());
    if (absl::Status s = storage_->SaveSnapshot(md, *data); !s.ok()) return s;
    restored.snapshot = md;
    restored.snapshot_data = data;
  }
  if (absl::Status s = LoadMembers(restored.snapshot_data != nullptr
                                       ? *restored.snapshot_data
                                       : std::string());
      !s.ok()) {
    return s;
  }
  if (members_.count(self_) == 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("the data directory ", options_.data_dir,
                     " does not list member '", options_.name, "'"));
  }
  applied_ = restored.snapshot.index();

  raft::Config c;
  c.id = self_;
  c.heartbeat_interval_ns =
      absl::ToInt64Nanoseconds(options_.heartbeat_interval);
  c.election_timeout_ns = absl::ToInt64Nanoseconds(options_.election_timeout);
  c.commit_notify_delay_ns = absl::ToInt64Nanoseconds(
      std::clamp(options_.commit_notify_delay, absl::ZeroDuration(),
                 options_.heartbeat_interval / 2));
  c.random = &random_;
  absl::StatusOr<std::unique_ptr<raft::Raft>> r =
      raft::Raft::Create(c, std::move(restored), MonotonicNowNs());
  if (!r.ok()) return r.status();
  raft_ = *std::move(r);
  writer_ = std::make_unique<storage::GroupCommitWriter>(storage_.get());
  snapshotter_ = std::make_unique<SerialExecutor>("q-snapshot");

  transport::Transport::Options to;
  to.self = {self_, options_.name, options_.listen};
  to.cluster_id = options_.cluster_id;
  to.listen = options_.listen;
  to.tls = options_.tls;
  to.services = options_.services;
  to.log = options_.log;
  to.on_messages = [this](std::vector<raft::Message> messages) {
    if (inbox_.load() >= options_.max_inbox) {
      inbox_dropped_.fetch_add(messages.size());
      return;
    }
    ++inbox_;
    asio::post(io_, [this, m = std::move(messages)]() mutable {
      --inbox_;
      if (failed_ || closing_) return;
      const int64_t now = MonotonicNowNs();
      for (raft::Message& msg : m) (void)raft_->Step(std::move(msg), now);
      Drive();
    });
  };
  to.on_connected = [this](uint64_t peer) {
    if (options_.on_peer_connected) options_.on_peer_connected(peer);
  };
  to.on_unreachable = [this](uint64_t peer) {
    asio::post(io_, [this, peer] {
      if (!failed_ && !closing_) raft_->ReportUnreachable(peer);
    });
  };
  std::vector<transport::PeerAddress> peers;
  for (const auto& [id, m] : members_) {
    peers.push_back({id, m.name(), m.address()});
  }
  absl::StatusOr<std::unique_ptr<transport::Transport>> t =
      transport::Transport::Start(to, peers);
  if (!t.ok()) return t.status();
  transport_ = *std::move(t);

  {
    MutexLock lock(&mu_);
    status_.name = options_.name;
    status_.zone = options_.zone;
    status_.cluster_id = options_.cluster_id;
    status_.listen_address = transport_->listen_address();
  }
  Log(absl::StrCat("member '", options_.name, "' of cluster '",
                   options_.cluster_id, "' serving on ",
                   transport_->listen_address(), "; recovered ", info.records,
                   " records from ", info.segments, " segments, log ends at ",
                   raft_->log().last_index()));
  asio::post(io_, [this] {
    Drive();
    ScheduleSweep();
  });
  thread_ = std::thread([this] {
    SetThreadName("q-loop");
    io_.run();
  });
  return absl::OkStatus();
}

void Node::Impl::Drive() {
  if (closing_) return;
  while (!failed_ && !ready_in_flight_ && raft_->HasReady()) {
    raft::Ready rd = raft_->GetReady();
    if (rd.soft_state.has_value()) soft_ = *rd.soft_state;
    if (options_.on_role && (!role_reported_ || soft_.role != reported_role_ ||
                             raft_->term() != reported_term_)) {
      role_reported_ = true;
      reported_role_ = soft_.role;
      reported_term_ = raft_->term();
      options_.on_role(soft_.role, reported_term_);
    }
    // Confirmations (Confirm()) need nothing of this member's disk: they
    // are answered now, not after this Ready's fsync, so that a slow disk
    // does not lapse the partition guard's windows.
    ConfirmRounds(rd.read_states);
    const bool writes = rd.snapshot.has_value() || !rd.entries.empty() ||
                        rd.hard_state.has_value();
    if (!writes) {
      CompleteThenSend(std::move(rd));
      continue;
    }
    if (!rd.must_sync && !rd.snapshot.has_value() && rd.entries.empty()) {
      // Only the commit index changed: nothing here must be durable before
      // anything is sent or applied (a restarted member learns the commit
      // index again, and starts from at least its snapshot's). It goes to
      // disk with the next write of entries, and the Ready completes now.
      // Writing it by itself woke the storage thread once more per commit
      // on every member: with one writer, a third of that thread's work.
      unwritten_hard_state_ = rd.hard_state;
      CompleteThenSend(std::move(rd));
      continue;
    }
    // New entries: the followers start on them before this member's disk
    // does.
    transport_->Send(std::move(rd.messages));
    // Committed entries are durable on a quorum already, whatever this
    // member's disk is doing: they are applied (and their proposals
    // answered) while this Ready's new entries are written, not after that
    // fsync; the write is submitted first. (A leader counts its own log
    // toward the quorum only as far as it is durable: Raft::MaybeCommit.)
    // Entries after a snapshot wait for it.
    std::vector<raft::EntryPtr> committed;
    if (!rd.snapshot.has_value()) committed.swap(rd.committed_entries);
    ready_in_flight_ = true;
    auto shared = std::make_shared<raft::Ready>(std::move(rd));
    storage::GroupCommitWriter::Request req;
    req.snapshot = shared->snapshot;
    req.entries = shared->entries;
    // A hard state of this Ready's own is the newer one.
    req.hard_state = shared->hard_state.has_value() ? shared->hard_state
                                                    : unwritten_hard_state_;
    unwritten_hard_state_.reset();
    req.done = [this, shared](absl::Status s) {
      // What waited for these writes goes out now, from the writer's
      // thread: a follower's acknowledgement does not wait for the loop.
      if (s.ok()) {
        transport_->Send(std::move(shared->messages_after_persist));
        shared->messages_after_persist.clear();
      }
      asio::post(io_, [this, shared, s] {
        if (closing_) return;
        ready_in_flight_ = false;
        Complete(std::move(*shared), s);
        Drive();
      });
    };
    if (absl::Status s = writer_->Submit(std::move(req)); !s.ok()) {
      // The queue holds at most one Ready and a few snapshot tasks.
      Fail(s);
    }
    if (!failed_) {
      ApplyCommitted(committed);
      ServeReads();
    }
  }
  if (ready_in_flight_ && !failed_) {
    // The disk is busy with the last Ready: heartbeats and the like go
    // out anyway (raft.h says which may), committed entries are applied,
    // and confirmed read points are answered: every member shares a disk in
    // tests and often in a rack, and one slow fsync used to lapse every
    // member's window at once.
    std::vector<raft::Message> early = raft_->TakeMessages();
    if (!early.empty()) transport_->Send(std::move(early));
    const std::vector<raft::ReadState> confirmed = raft_->TakeReadStates();
    ConfirmRounds(confirmed);
    NoteReadPoints(confirmed);
    // Under load the disk is always busy with the next batch: what was
    // committed meanwhile is applied and answered now, not after it.
    ApplyCommitted(raft_->TakeCommittedEntries());
    ServeReads();
  }
  PublishStatus();
  ScheduleTick();
}

void Node::Impl::CompleteThenSend(raft::Ready rd) {
  // Nothing to write. A follower sends first: its responses are what the
  // leader waits for. A leader applies what was committed, and answers its
  // proposers, first: every answer and every message costs a gRPC write
  // (a sendmsg) on this thread, and a leader's messages here only carry a
  // new commit index or a heartbeat. With one writer this took 40 µs off
  // the time from the quorum's acknowledgement to the answer.
  const bool answer_first = soft_.role == raft::Role::kLeader;
  std::vector<raft::Message> messages = std::move(rd.messages);
  if (!answer_first) transport_->Send(std::move(messages));
  Complete(std::move(rd), absl::OkStatus());
  if (answer_first) transport_->Send(std::move(messages));
}

void Node::Impl::Complete(raft::Ready rd, const absl::Status& persisted) {
  if (!persisted.ok()) {
    Fail(persisted);
    return;
  }
  transport_->Send(std::move(rd.messages_after_persist));
  if (rd.snapshot.has_value()) {
    ApplySnapshot(*rd.snapshot);
    if (failed_) return;
  }
  ApplyCommitted(rd.committed_entries);
  NoteReadPoints(rd.read_states);
  for (uint64_t id : rd.failed_reads) {
    auto it = reads_.find(id);
    if (it == reads_.end()) continue;
    auto done = std::move(it->second.done);
    reads_.erase(it);
    done(absl::UnavailableError(
        "leadership changed before the read was confirmed; retry"));
  }
  ServeReads();
  raft_->Advance();
  MaybeSnapshot();
}

void Node::Impl::ApplyCommitted(const std::vector<raft::EntryPtr>& entries) {
  for (const raft::EntryPtr& e : entries) {
    QUORATE_CHECK_EQ(e->index(), applied_ + 1) << "apply out of order";
    applied_ = e->index();
    std::string result;
    if (e->type() == raft::ENTRY_TYPE_NORMAL && !e->data().empty() &&
        options_.state_machine != nullptr) {
      result = options_.state_machine->Apply(e->index(), e->data());
    }
    auto it = proposals_.find(e->index());
    if (it == proposals_.end()) continue;
    Proposal p = std::move(it->second);
    proposals_.erase(it);
    if (e->term() == p.term) {
      p.done(Applied{e->index(), std::move(result)});
    } else {
      p.done(absl::AbortedError(
          "leadership changed and the proposal was replaced; it was not "
          "applied"));
    }
  }
}

void Node::Impl::ConfirmRounds(const std::vector<raft::ReadState>& states) {
  for (const raft::ReadState& rs : states) {
    auto it = reads_.find(rs.request_id);
    if (it == reads_.end() || !it->second.confirmed) continue;
    auto confirmed = std::move(it->second.confirmed);
    reads_.erase(it);
    confirmed(rs);
  }
}

void Node::Impl::NoteReadPoints(const std::vector<raft::ReadState>& states) {
  for (const raft::ReadState& rs : states) {
    auto it = reads_.find(rs.request_id);
    if (it != reads_.end()) it->second.index = rs.index;
  }
}

void Node::Impl::ServeReads() {
  for (auto it = reads_.begin(); it != reads_.end();) {
    if (it->second.index == 0 || it->second.index > applied_) {
      ++it;
      continue;
    }
    auto done = std::move(it->second.done);
    const uint64_t index = it->second.index;
    it = reads_.erase(it);
    done(index);
  }
}

void Node::Impl::ApplySnapshot(const raft::Snapshot& snapshot) {
  if (absl::Status s = LoadMembers(*snapshot.data); !s.ok()) {
    Fail(s);
    return;
  }
  applied_ = snapshot.metadata.index();
  // Proposals at or below it were replaced or applied elsewhere: the
  // outcome is not known here.
  for (auto it = proposals_.begin();
       it != proposals_.end() && it->first <= applied_;) {
    it->second.done(absl::UnknownError(
        "a snapshot from the leader replaced the log; the proposal's "
        "outcome is unknown"));
    it = proposals_.erase(it);
  }
}

void Node::Impl::MaybeSnapshot() {
  if (failed_ || snapshot_in_flight_) return;
  if (applied_ < raft_->log().snapshot_index() + options_.snapshot_every) {
    return;
  }
  const uint64_t index = applied_;
  if (index > raft_->log().stable_index()) return;  // not yet durable here
  // Captured here, cheaply; serialized on q-snapshot, where it may take a
  // while for a large state without delaying the loop (heartbeats, the
  // partition guard's renewals) or the writer (fsyncs).
  auto snap = std::make_shared<peer::NodeSnapshot>();
  for (const auto& [id, m] : members_) *snap->add_members() = m;
  absl::AnyInvocable<std::string()> state;
  if (options_.state_machine != nullptr) {
    state = options_.state_machine->Snapshot();
  }
  const raft::SnapshotMetadata md = raft_->SnapshotMetadataAt(index);
  snapshot_in_flight_ = true;
  storage::GroupCommitWriter* writer = writer_.get();
  snapshotter_->Post([this, writer, md, snap,
                      state = std::move(state)]() mutable {
    if (state) snap->set_state(state());
    auto data = std::make_shared<const std::string>(snap->SerializeAsString());
    storage::GroupCommitWriter::Request req;
    req.task = [md, data](storage::Storage* s) {
      absl::Status st = s->SaveSnapshot(md, *data);
      if (st.ok()) st = s->Compact(md.index());
      return st;
    };
    req.done = [this, md, data](absl::Status s) {
      asio::post(io_, [this, md, data, s] {
        if (closing_) return;
        snapshot_in_flight_ = false;
        if (!s.ok()) {
          Fail(s);
          return;
        }
        if (md.index() > raft_->log().snapshot_index()) {
          const absl::Status c = raft_->Compact(md, data);
          QUORATE_CHECK(c.ok()) << c;
        }
        Log(absl::StrCat("snapshot at entry ", md.index(),
                         " saved; log compacted"));
      });
    };
    if (absl::Status s = writer->Submit(std::move(req)); !s.ok()) {
      asio::post(io_, [this, s] {
        if (!closing_) Fail(s);
      });
    }
  });
}

void Node::Impl::ScheduleTick() {
  if (failed_) return;
  const int64_t deadline = raft_->NextDeadline();
  if (deadline == scheduled_tick_) return;
  scheduled_tick_ = deadline;
  raft_timer_.expires_at(AtMonotonic(deadline));
  raft_timer_.async_wait([this](const boost::system::error_code& ec) {
    if (ec || failed_ || closing_) return;
    scheduled_tick_ = 0;
    raft_->Tick(MonotonicNowNs());
    Drive();
  });
}

void Node::Impl::ScheduleSweep() {
  // Proposals past their deadline fail; the outcome is unknown.
  sweep_timer_.expires_after(std::chrono::milliseconds(50));
  sweep_timer_.async_wait([this](const boost::system::error_code& ec) {
    if (ec || closing_) return;
    ExpireWaiting(MonotonicNowNs());
    PublishStatus();
    ScheduleSweep();
  });
}

void Node::Impl::ExpireWaiting(int64_t now) {
  for (auto it = proposals_.begin(); it != proposals_.end();) {
    if (it->second.deadline_ns > now) {
      ++it;
      continue;
    }
    auto done = std::move(it->second.done);
    it = proposals_.erase(it);
    done(absl::DeadlineExceededError(
        "the proposal was not applied before its deadline; it may still be"));
  }
  for (auto it = reads_.begin(); it != reads_.end();) {
    if (it->second.deadline_ns > now) {
      ++it;
      continue;
    }
    auto done = std::move(it->second.done);
    it = reads_.erase(it);
    done(absl::DeadlineExceededError(
        "no read point was confirmed before the deadline"));
  }
}

void Node::Impl::Fail(const absl::Status& status) {
  if (failed_) return;
  failed_ = true;
  Log(absl::StrCat("member '", options_.name,
                   "' stopped working: ", status.message()));
  raft_timer_.cancel();
  for (auto& [index, p] : proposals_) {
    // Already in the log: another member may still commit it.
    p.done(absl::UnknownError(
        absl::StrCat("the member stopped (", status.message(),
                     "); the proposal's outcome is unknown")));
  }
  proposals_.clear();
  for (auto& [id, r] : reads_) {
    r.done(absl::UnavailableError(
        absl::StrCat("the member stopped: ", status.message())));
  }
  reads_.clear();
  {
    MutexLock lock(&mu_);
    status_.error = status;
  }
  status_changed_.SignalAll();
  if (options_.on_fatal) options_.on_fatal(status);
}

void Node::Impl::PublishStatus() {
  {
    MutexLock lock(&mu_);
    status_.role = soft_.role;
    status_.term = raft_->term();
    auto leader = members_.find(soft_.leader);
    status_.leader = leader != members_.end() ? leader->second.name() : "";
    status_.leader_address =
        leader != members_.end() ? leader->second.address() : "";
    status_.commit_index = raft_->commit();
    status_.applied_index = applied_;
    status_.last_log_index = raft_->log().last_index();
    status_.snapshot_index = raft_->log().snapshot_index();
    // The member list changes only with a snapshot: rebuild it then, not
    // after every Ready.
    if (published_members_ != members_generation_) {
      published_members_ = members_generation_;
      status_.peers.clear();
      const raft::Membership& ms = raft_->membership();
      for (const auto& [id, m] : members_) {
        if (id == self_) continue;
        PeerStatus p;
        p.name = m.name();
        p.zone = m.zone();
        p.address = m.address();
        p.voter = ms.IsVoter(id);
        status_.peers.push_back(std::move(p));
      }
    }
  }
  status_changed_.SignalAll();
}

NodeStatus Node::Impl::GetStatus() const {
  NodeStatus s;
  {
    MutexLock lock(&mu_);
    s = status_;
  }
  const std::map<uint64_t, transport::PeerState> states = transport_->Peers();
  const int64_t now = MonotonicNowNs();
  for (PeerStatus& p : s.peers) {
    auto it = states.find(MemberId(p.name));
    if (it == states.end()) continue;
    p.reachable = it->second.connected;
    p.messages_sent = it->second.sent;
    p.messages_received = it->second.received;
    p.messages_dropped = it->second.dropped;
    if (it->second.last_received_ns != 0) {
      p.last_contact_ms = (now - it->second.last_received_ns) / 1'000'000;
    }
  }
  return s;
}

absl::Status Node::Impl::Admit() {
  if (stopped_.load()) return absl::UnavailableError("the member is stopping");
  // Bounded before it is posted: a slow loop must not let calls pile up.
  if (queued_.fetch_add(1) >= options_.max_proposals) {
    queued_.fetch_sub(1);
    return absl::ResourceExhaustedError(
        "too many proposals and reads are waiting on this member");
  }
  return absl::OkStatus();
}

void Node::Impl::Propose(std::string command, absl::Duration timeout,
                         std::function<void(absl::StatusOr<Applied>)> done) {
  if (absl::Status s = Admit(); !s.ok()) {
    done(s);
    return;
  }
  const int64_t deadline = MonotonicNowNs() + absl::ToInt64Nanoseconds(timeout);
  asio::post(io_, [this, command = std::move(command), deadline,
                   done = std::move(done)]() mutable {
    queued_.fetch_sub(1);
    if (failed_ || closing_) {
      done(absl::UnavailableError(failed_ ? "the member stopped after an error"
                                          : "the member is stopping"));
      return;
    }
    if (proposals_.size() >= options_.max_proposals) {
      done(absl::ResourceExhaustedError(absl::StrCat(
          proposals_.size(), " proposals are already waiting on this member")));
      return;
    }
    absl::StatusOr<uint64_t> index =
        raft_->Propose(std::move(command), MonotonicNowNs());
    if (!index.ok()) {
      done(index.status());
      return;
    }
    // A proposal of an earlier term may still wait at this index: a new
    // leader overwrote its entry, and this member leads again. It was not
    // applied.
    if (auto old = proposals_.find(*index); old != proposals_.end()) {
      auto old_done = std::move(old->second.done);
      proposals_.erase(old);
      old_done(absl::AbortedError(
          "leadership changed and another entry took the proposal's place; "
          "it was not applied"));
    }
    proposals_[*index] = Proposal{raft_->term(), deadline, std::move(done)};
    Drive();
  });
}

void Node::Impl::Read(absl::Duration timeout,
                      std::function<void(absl::StatusOr<uint64_t>)> done) {
  StartRead(timeout, std::move(done), nullptr);
}

void Node::Impl::Confirm(
    absl::Duration timeout,
    std::function<void(absl::StatusOr<Confirmation>)> done) {
  auto shared = std::make_shared<decltype(done)>(std::move(done));
  StartRead(
      timeout, [shared](absl::StatusOr<uint64_t> s) { (*shared)(s.status()); },
      [shared](const raft::ReadState& rs) {
        (*shared)(Confirmation{rs.term, rs.term_start});
      });
}

void Node::Impl::StartRead(
    absl::Duration timeout, std::function<void(absl::StatusOr<uint64_t>)> done,
    std::function<void(const raft::ReadState&)> confirmed) {
  if (absl::Status s = Admit(); !s.ok()) {
    done(s);
    return;
  }
  const int64_t deadline = MonotonicNowNs() + absl::ToInt64Nanoseconds(timeout);
  asio::post(io_, [this, deadline, done = std::move(done),
                   confirmed = std::move(confirmed)]() mutable {
    queued_.fetch_sub(1);
    if (failed_ || closing_) {
      done(absl::UnavailableError(failed_ ? "the member stopped after an error"
                                          : "the member is stopping"));
      return;
    }
    // A follower forwards the request to the leader; while its stream to
    // the leader is down the request would be dropped, so say so now
    // rather than at the deadline.
    if (soft_.role != raft::Role::kLeader && soft_.leader != 0 &&
        !transport_->Connected(soft_.leader)) {
      auto leader = members_.find(soft_.leader);
      done(absl::UnavailableError(absl::StrCat(
          "no connection to the leader '",
          leader != members_.end() ? leader->second.name() : "?", "'")));
      return;
    }
    const uint64_t id = next_read_id_++;
    if (absl::Status s = raft_->ReadIndex(id, MonotonicNowNs()); !s.ok()) {
      done(s);
      return;
    }
    reads_[id] =
        PendingRead{deadline, 0, std::move(done), std::move(confirmed)};
    Drive();
  });
}

void Node::Impl::BeginTransfer() {
  // On the loop: hand leadership to the most up-to-date reachable voter.
  if (failed_ || closing_ || soft_.role != raft::Role::kLeader) {
    {
      MutexLock lock(&mu_);
      transfer_abandoned_ = true;
    }
    status_changed_.SignalAll();
    return;
  }
  const std::map<uint64_t, transport::PeerState> states = transport_->Peers();
  uint64_t best = 0;
  uint64_t best_match = 0;
  for (uint64_t id : raft_->membership().voters()) {
    if (id == self_) continue;
    const raft::Progress* pr = raft_->progress(id);
    auto st = states.find(id);
    if (pr == nullptr || st == states.end() || !st->second.connected) continue;
    if (best == 0 || pr->match > best_match) {
      best = id;
      best_match = pr->match;
    }
  }
  if (best == 0) {
    Log("stopping as leader: no reachable peer to hand leadership to");
    {
      MutexLock lock(&mu_);
      transfer_abandoned_ = true;
    }
    status_changed_.SignalAll();
    return;
  }
  Log(absl::StrCat("stopping: handing leadership to '", members_[best].name(),
                   "'"));
  (void)raft_->TransferLeadership(best, MonotonicNowNs());
  Drive();
}

void Node::Impl::Stop(bool graceful) {
  if (stopped_.exchange(true)) return;
  if (graceful && thread_.joinable()) {
    asio::post(io_, [this] { BeginTransfer(); });
    const absl::Time until = absl::Now() + 2 * options_.election_timeout;
    MutexLock lock(&mu_);
    // The loop publishes after every Ready. The handover is complete when
    // this member hears from another leader (stepping down alone happens as
    // soon as the target asks for votes, before it has won).
    auto handed_over = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return status_.role != raft::Role::kLeader && !status_.leader.empty() &&
             status_.leader != options_.name;
    };
    while (!handed_over() && !transfer_abandoned_ && status_.error.ok() &&
           absl::Now() < until) {
      status_changed_.WaitWithTimeout(&mu_, until - absl::Now());
    }
  }
  if (thread_.joinable()) {
    // Answer everything still waiting, so that no caller (and no gRPC call
    // of the client API, which the server's shutdown waits for) is left
    // hanging: what was proposed may still commit elsewhere.
    asio::post(io_, [this] {
      closing_ = true;
      raft_timer_.cancel();
      for (auto& [index, p] : proposals_) {
        p.done(absl::UnknownError(
            "the member stopped; the proposal's outcome is unknown"));
      }
      proposals_.clear();
      for (auto& [id, r] : reads_) {
        r.done(absl::UnavailableError("the member stopped"));
      }
      reads_.clear();
      {
        MutexLock lock(&mu_);
        drained_ = true;
      }
      status_changed_.SignalAll();
    });
    MutexLock lock(&mu_);
    const absl::Time until = absl::Now() + absl::Seconds(5);
    while (!drained_ && absl::Now() < until) {
      status_changed_.WaitWithTimeout(&mu_, until - absl::Now());
    }
  }
  if (transport_ != nullptr) transport_->Stop();
  work_.reset();
  io_.stop();
  if (thread_.joinable()) thread_.join();
  // Handlers posted after the loop stopped see `closing_` and answer their
  // callers; run them here, on this thread, now that the loop's is gone.
  closing_ = true;
  io_.restart();
  io_.poll();
  // A snapshot being serialized is finished and submitted. Queued writes
  // finish; their completions are never run (the loop is gone), and what
  // they would send the stopped transport drops.
  snapshotter_.reset();
  writer_.reset();
  storage_.reset();
}

Node::Node(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Node::~Node() = default;

absl::StatusOr<std::unique_ptr<Node>> Node::Start(NodeOptions options) {
  if (absl::Status s = ValidateOptions(options); !s.ok()) return s;
  auto impl = std::make_unique<Impl>(std::move(options));
  if (absl::Status s = impl->Init(); !s.ok()) return s;
  return std::unique_ptr<Node>(new Node(std::move(impl)));
}

void Node::Propose(std::string command, absl::Duration timeout,
                   std::function<void(absl::StatusOr<Applied>)> done) {
  impl_->Propose(std::move(command), timeout, std::move(done));
}
void Node::Confirm(absl::Duration timeout,
                   std::function<void(absl::StatusOr<Confirmation>)> done) {
  impl_->Confirm(timeout, std::move(done));
}
void Node::Read(absl::Duration timeout,
                std::function<void(absl::StatusOr<uint64_t>)> done) {
  impl_->Read(timeout, std::move(done));
}
NodeStatus Node::GetStatus() const { return impl_->GetStatus(); }
void Node::Stop(bool graceful) { impl_->Stop(graceful); }
std::string Node::listen_address() const { return impl_->listen_address(); }
void Node::Campaign() { impl_->Campaign(); }

}  // namespace quorate::node
