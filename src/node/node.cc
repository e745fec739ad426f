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

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "node/startup.h"
#include "storage/storage.h"
#include "storage/writer.h"
#include "util/check.h"
#include "util/clock.h"
#include "util/mutex.h"
#include "util/serial_executor.h"
#include "util/thread_name.h"
#include "wire/peer.pb.h"

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

// Whether the leader may promote a learner whose progress is `pr`: it
// answered within T, the leader is replicating to it entry by entry (it
// acknowledged what it has: not a member still being probed or sent a
// snapshot), and its log is within kMaxPromoteLag of the commit index.
bool CaughtUp(const raft::Progress& pr, uint64_t commit, int64_t now_ns,
              int64_t t_ns) {
  return pr.state == raft::Progress::State::kReplicate && pr.match > 0 &&
         pr.match + kMaxPromoteLag >= commit &&
         now_ns - pr.last_heard_ns <= t_ns;
}

// Member ids and zones: [a-z0-9-]{1,32}, as quorate-node takes them.
bool ValidName(absl::string_view s) {
  if (s.empty() || s.size() > 32) return false;
  for (char c : s) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-')) {
      return false;
    }
  }
  return true;
}

// HOST:PORT (a bracketed IPv6 host too), the port 1 to 65535.
bool ValidAddress(absl::string_view s) {
  const size_t colon = s.rfind(':');
  if (colon == absl::string_view::npos || colon == 0) return false;
  int port = 0;
  if (!absl::SimpleAtoi(s.substr(colon + 1), &port) || port < 1 ||
      port > 65535) {
    return false;
  }
  for (char c : s.substr(0, colon)) {
    if (c == ' ' || c == '/' || c == ',' || c == '@' || c == '=') return false;
  }
  return true;
}

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

class Node::Impl final : public DriverEnv, public DriverWriter {
 public:
  explicit Impl(NodeOptions options)
      : options_(std::move(options)),
        self_(MemberId(options_.name)),
        work_(asio::make_work_guard(io_)),
        raft_timer_(io_),
        sweep_timer_(io_),
        timing_timer_(io_) {}

  ~Impl() override { Stop(false); }

  absl::Status Init();
  void Propose(std::string command, absl::Duration timeout,
               std::function<void(absl::StatusOr<Applied>)> done);
  void Confirm(absl::Duration timeout,
               std::function<void(absl::StatusOr<Confirmation>)> done);
  void Read(absl::Duration timeout,
            std::function<void(absl::StatusOr<uint64_t>)> done);
  NodeStatus GetStatus() const;
  void Stop(bool graceful);
  std::string listen_address() const { return transport_->listen_address(); }
  void ListMembers(std::function<void(absl::StatusOr<MembersView>)> done);
  void ChangeMembership(MembershipChange change, absl::Duration timeout,
                        std::function<void(absl::StatusOr<uint64_t>)> done);
  void ChangeMembershipOnLoop(
      MembershipChange change, int64_t deadline,
      std::function<void(absl::StatusOr<uint64_t>)> answer);
  void TransferLeadership(
      std::string to, absl::Duration timeout,
      std::function<void(absl::StatusOr<std::string>)> done);
  void BackupSnapshot(
      std::function<void(absl::StatusOr<SnapshotFileBytes>)> done);

  // DriverEnv.
  int64_t Now() override { return MonotonicNowNs(); }
  void Send(std::vector<raft::Message> messages) override {
    transport_->Send(std::move(messages));
  }
  void Post(absl::AnyInvocable<void()> fn) override {
    PostUrgent([this, fn = std::move(fn)]() mutable {
      if (!closing_) fn();
    });
  }
  void RunInBackground(absl::AnyInvocable<void()> fn) override {
    snapshotter_->Post(std::move(fn));
  }
  void ScheduleTick(int64_t deadline_ns) override;

  // DriverWriter: the group-commit writer's thread.
  void Write(DriverWriter::Request write,
             absl::AnyInvocable<void(absl::Status)> done) override;
  void SaveSnapshot(raft::SnapshotMetadata metadata,
                    std::shared_ptr<const std::string> data,
                    absl::AnyInvocable<void(absl::Status)> done) override;

 private:
  // Whether a call may be posted to the loop; on OK it counts in `queued`
  // until its handler runs. Client calls (Propose, Read) count in queued_
  // against max_proposals; the partition guard's Confirm in
  // confirms_queued_ against a budget of its own, so that no flood of
  // client calls delays or refuses a renewal.
  absl::Status Admit(std::atomic<size_t>& queued, size_t max);
  // THE URGENT LANE. What keeps this member in its cluster (peer messages,
  // the second half of a Ready, the core's tick, renewals) must never wait
  // behind client calls, however many are queued on the loop (each is an
  // asio handler, served in order). Urgent work is queued here and run by
  // a handler of its own, and also before every client call's handler: it
  // waits for at most one client call. An overdue tick is run there too,
  // since the timer's completion queues behind client handlers as well.
  void PostUrgent(absl::AnyInvocable<void()> fn) {
    {
      MutexLock lock(&urgent_mu_);
      urgent_.push_back(std::move(fn));
      urgent_waiting_.store(true, std::memory_order_release);
    }
    asio::post(io_, [this] { RunUrgent(); });
  }
  void RunUrgent();

  // Runs fn(std::move(done)) on the loop once admitted; answers `done`
  // with the refusal otherwise, or if the member stopped meanwhile. One
  // posted handler per call, nothing shared: this is every call's way in
  // (renewals through the urgent lane).
  template <typename Done, typename Fn>
  void OnLoop(Done done, Fn fn, std::atomic<size_t>* queued = nullptr) {
    if (queued == nullptr) queued = &queued_;
    if (absl::Status s =
            Admit(*queued, queued == &queued_ ? options_.max_proposals
                                              : kMaxQueuedConfirms);
        !s.ok()) {
      done(s);
      return;
    }
    auto handler = [this, queued, done = std::move(done),
                    fn = std::move(fn)]() mutable {
      queued->fetch_sub(1);
      if (closing_) {
        done(absl::UnavailableError("the member is stopping"));
        return;
      }
      fn(std::move(done));
      PublishStatus();
    };
    if (queued == &confirms_queued_) {
      PostUrgent(std::move(handler));  // renewals
      return;
    }
    asio::post(io_, [this, handler = std::move(handler)]() mutable {
      RunUrgent();
      handler();
    });
  }
  void Submit(storage::GroupCommitWriter::Request request,
              absl::AnyInvocable<void(absl::Status)> done);
  // OK, or UNAVAILABLE when this follower's stream to its leader is down.
  absl::Status LeaderReachable() const;

  void Log(const std::string& line) const {
    if (options_.log) options_.log(line);
  }
  void ScheduleSweep();
  void OnFatal(const absl::Status& status);
  void PublishStatus();
  void BeginTransfer();
  // The most up-to-date voter other than this member whose stream is up;
  // 0 if none (loop thread, leader).
  uint64_t BestTransferTarget() const;
  // Loop thread: the name of member `id`, or its id in decimal.
  std::string NameOf(uint64_t id) const;
  // Checks a change against the configuration and this leader's view of
  // its members; OK if it may be proposed.
  absl::Status CheckChange(const MembershipChange& change,
                           raft::ConfChange* out) const;
  // Whether the voters of `next` that this leader heard from within T
  // (itself included) form a quorum of `next`.
  bool QuorumReachable(const raft::Membership& next) const;
  // Polls `ready` on the loop every few milliseconds until it returns
  // true or `deadline_ns` passes, then runs `then(ready_now)`.
  void WaitOnLoop(std::function<bool()> ready, int64_t deadline_ns,
                  std::function<void(bool)> then);
  // WaitOnLoop() until this member no longer leads and knows who does.
  void WaitForAnotherLeader(int64_t deadline_ns,
                            std::function<void(bool)> then);
  // The transport's peers: the configuration's members, and while this
  // member waits for its first snapshot, the ones it joined through.
  void SyncPeers();
  void AddJoinPeers(std::vector<transport::PeerAddress>* peers);

  const NodeOptions options_;
  const uint64_t self_;
  OsSeededRandom random_;
  asio::io_context io_;
  asio::executor_work_guard<asio::io_context::executor_type> work_;
  asio::steady_timer raft_timer_;
  asio::steady_timer sweep_timer_;
  // A rolling change to a shorter T: the new T is recorded once the
  // previous run's promises have expired (after this long; 0: no need).
  asio::steady_timer timing_timer_;
  int64_t record_timing_after_ns_ = 0;
  std::thread thread_;

  // Loop thread only (after Init()).
  std::unique_ptr<storage::Storage> storage_;
  std::unique_ptr<SerialExecutor> snapshotter_;  // q-snapshot
  std::unique_ptr<transport::Transport> transport_;
  std::unique_ptr<Driver> driver_;
  // Declared after the driver, so destroyed before it: the writer's
  // completions call into the driver until the writer's thread is joined.
  std::unique_ptr<storage::GroupCommitWriter> writer_;
  uint64_t published_members_ = ~uint64_t{0};  // generation in status_
  // Timers of WaitOnLoop() callers still waiting (loop thread).
  std::set<std::shared_ptr<asio::steady_timer>> waiters_;
  bool said_removed_ = false;  // logged that this member was removed
  bool was_member_ = false;    // in the configuration at some point
  bool closing_ = false;       // Stop() began: handlers answer and return

  Mutex urgent_mu_;
  std::vector<absl::AnyInvocable<void()>> urgent_ ABSL_GUARDED_BY(urgent_mu_);
  std::atomic<bool> urgent_waiting_{false};
  // The loop thread's: when the core wants its next tick (0: none asked).
  int64_t tick_due_ns_ = 0;

  std::atomic<size_t> inbox_{0};
  std::atomic<size_t> inbox_bytes_{0};
  std::atomic<size_t> queued_{0};  // Propose/Read calls posted, not yet run
  std::atomic<size_t> confirms_queued_{0};  // Confirm calls likewise
  static constexpr size_t kMaxQueuedConfirms = 1024;
  std::atomic<uint64_t> inbox_dropped_{0};
  std::atomic<bool> stopped_{false};

  mutable Mutex mu_;
  CondVar status_changed_;
  NodeStatus status_ ABSL_GUARDED_BY(mu_);
  bool transfer_abandoned_ ABSL_GUARDED_BY(mu_) = false;
  bool drained_ ABSL_GUARDED_BY(mu_) = false;
};

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

  const bool joining = restored.snapshot.index() == 0 &&
                       !restored.snapshot.has_conf_state() &&
                       !options_.join_peers.empty();
  if (joining) {
    Log(absl::StrCat("member '", options_.name,
                     "' joins a running cluster: waiting for the leader's "
                     "snapshot"));
  } else if (restored.snapshot.index() == 0 &&
             !restored.snapshot.has_conf_state()) {
    // A new member: the initial configuration is a snapshot at index 0.
    if (options_.initial_members.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "the data directory ", options_.data_dir,
          " holds no configuration yet: give the initial members (--peers), "
          "or, for a member added at runtime that has not received its "
          "first snapshot, --join again"));
    }
    std::vector<peer::MemberInfo> voters, learners;
    bool self_listed = false;
    for (const MemberSpec& m : options_.initial_members) {
      peer::MemberInfo info_m;
      info_m.set_id(MemberId(m.name));
      info_m.set_name(m.name);
      info_m.set_zone(m.zone);
      info_m.set_address(m.address);
      (m.voter ? voters : learners).push_back(std::move(info_m));
      self_listed |= m.name == options_.name;
    }
    if (!self_listed) {
      return absl::InvalidArgumentError(absl::StrCat(
          "member '", options_.name, "' is not among the initial members"));
    }
    Bootstrap b = MakeBootstrap(voters, learners);
    if (options_.restore_state != nullptr) {
      peer::NodeSnapshot snap;
      QUORATE_CHECK(snap.ParseFromString(*b.data));
      snap.set_state(*options_.restore_state);
      b.data = std::make_shared<const std::string>(snap.SerializeAsString());
      Log(absl::StrCat("seeding a new cluster from a restored snapshot (",
                       options_.restore_state->size(), " bytes of state)"));
    }
    if (absl::Status s = storage_->SaveSnapshot(b.metadata, *b.data); !s.ok()) {
      return s;
    }
    restored.snapshot = b.metadata;
    restored.snapshot_data = b.data;
  }

  if (options_.force_new_cluster) {
    absl::StatusOr<std::string> forced =
        ForceNewCluster(*storage_, &restored, self_);
    if (!forced.ok()) return forced.status();
    Log(*forced);
  }

  raft::Config c;
  c.id = self_;
  c.heartbeat_interval_ns =
      absl::ToInt64Nanoseconds(options_.heartbeat_interval);
  c.election_timeout_ns = absl::ToInt64Nanoseconds(options_.election_timeout);
  // The last run may have promised under a longer T (a rolling change of
  // --election_timeout): keep its promises for that long (node/startup.h).
  absl::StatusOr<StartupLease> lease =
      PrepareStartupLease(*storage_, c.election_timeout_ns);
  if (!lease.ok()) return lease.status();
  c.startup_lease_ns = lease->lease_ns;
  record_timing_after_ns_ = lease->record_after_ns;
  if (lease->record_after_ns > 0) {
    Log(absl::StrCat(
        "the last run had an election timeout of ",
        absl::FormatDuration(absl::Nanoseconds(lease->previous_ns)),
        "; this member casts no vote for that long"));
  }
  c.commit_notify_delay_ns = absl::ToInt64Nanoseconds(
      std::clamp(options_.commit_notify_delay, absl::ZeroDuration(),
                 options_.heartbeat_interval / 2));
  c.random = &random_;
  DriverOptions d;
  d.snapshot_every = options_.snapshot_every;
  d.max_waiting = options_.max_proposals;
  d.first_read_id = (uint64_t{std::random_device{}()} << 32) | 1;
  d.state_machine = options_.state_machine;
  d.on_role = options_.on_role;
  d.on_fatal = [this](const absl::Status& s) { OnFatal(s); };
  d.log = options_.log;
  writer_ = std::make_unique<storage::GroupCommitWriter>(storage_.get());
  snapshotter_ = std::make_unique<SerialExecutor>("q-snapshot");
  absl::StatusOr<std::unique_ptr<Driver>> driver =
      Driver::Create(c, std::move(d), std::move(restored), this, this);
  if (!driver.ok()) {
    return absl::Status(
        driver.status().code(),
        absl::StrCat(options_.data_dir, ": ", driver.status().message()));
  }
  driver_ = *std::move(driver);
  if (driver_->raft().Configured() &&
      !driver_->raft().membership().Contains(self_)) {
    if (driver_->removed_self()) {
      return absl::FailedPreconditionError(absl::StrCat(
          "the data directory ", options_.data_dir, " says member '",
          options_.name,
          "' was removed from the cluster; clear it, and add the member "
          "again (quoratectl member add) to rejoin"));
    }
    // A member added at runtime that restarted while it caught up: its
    // snapshot may predate its own addition. It goes on with the members
    // its --join endpoints name; without them, this may be another
    // member's directory.
    if (options_.join_peers.empty()) {
      return absl::FailedPreconditionError(absl::StrCat(
          "the data directory ", options_.data_dir, " does not list member '",
          options_.name,
          "' (a member added at runtime that restarted before it caught "
          "up: start it with --join again)"));
    }
  }

  transport::Transport::Options to;
  to.self = {self_, options_.name, options_.listen};
  to.cluster_id = options_.cluster_id;
  to.listen = options_.listen;
  to.tls = options_.tls;
  to.faults_file = options_.faults_file;
  to.services = options_.services;
  to.log = options_.log;
  to.timing = {absl::ToInt64Milliseconds(options_.election_timeout),
               static_cast<int64_t>(options_.max_clock_drift * 1e6 + 0.5)};
  to.on_messages = [this](std::vector<raft::Message> messages) {
    size_t bytes = 0;
    for (const raft::Message& m : messages) bytes += m.ByteSizeLong();
    // Bounded in batches and in bytes: a full inbox drops what arrives,
    // as a network would (Raft retries).
    if (inbox_.load() >= options_.max_inbox ||
        inbox_bytes_.load() + bytes > options_.max_inbox_bytes) {
      inbox_dropped_.fetch_add(messages.size());
      return;
    }
    ++inbox_;
    inbox_bytes_ += bytes;
    const uint64_t from = messages.front().from();
    PostUrgent([this, from, bytes, m = std::move(messages)]() mutable {
      --inbox_;
      inbox_bytes_ -= bytes;
      if (closing_) return;
      // A message the core refuses (raft/validate.h) is counted and logged,
      // and the stream it came on ends: the sender reconnects with a new
      // Hello. What the core accepted before it in the batch stands.
      absl::Status s = driver_->Step(std::move(m));
      if (s.code() == absl::StatusCode::kInvalidArgument) {
        transport_->Refuse(from, std::string(s.message()));
      }
      PublishStatus();
    });
  };
  to.on_connected = [this](uint64_t peer) {
    if (options_.on_peer_connected) options_.on_peer_connected(peer);
  };
  to.on_unreachable = [this](uint64_t peer) {
    asio::post(io_, [this, peer] {
      if (!closing_) driver_->ReportUnreachable(peer);
    });
  };
  to.version = options_.version;
  std::vector<transport::PeerAddress> peers;
  for (const auto& [id, m] : driver_->members()) {
    peers.push_back({id, m.name(), m.address()});
  }
  AddJoinPeers(&peers);
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
    status_.version = options_.version;
  }
  // The peers as the transport got them; PublishStatus() follows changes.
  published_members_ = driver_->members_generation();
  Log(absl::StrCat("member '", options_.name, "' of cluster '",
                   options_.cluster_id, "' serving on ",
                   transport_->listen_address(), "; recovered ", info.records,
                   " records from ", info.segments, " segments, log ends at ",
                   driver_->raft().log().last_index()));
  asio::post(io_, [this] {
    driver_->Drive();
    PublishStatus();
    ScheduleSweep();
    if (record_timing_after_ns_ > 0) {
      timing_timer_.expires_after(
          std::chrono::nanoseconds(record_timing_after_ns_));
      timing_timer_.async_wait([this](const boost::system::error_code& ec) {
        if (ec || closing_) return;
        const int64_t timeout =
            absl::ToInt64Nanoseconds(options_.election_timeout);
        storage::GroupCommitWriter::Request req;
        req.task = [timeout](storage::Storage* s) {
          return s->RecordElectionTimeout(timeout);
        };
        Submit(std::move(req), [this](absl::Status s) {
          if (!s.ok()) {
            Log(absl::StrCat("cannot record the election timeout: ",
                             s.message()));
          }
        });
      });
    }
  });
  thread_ = std::thread([this] {
    SetThreadName("q-loop");
    io_.run();
  });
  return absl::OkStatus();
}

void Node::Impl::ScheduleTick(int64_t deadline_ns) {
  tick_due_ns_ = deadline_ns;
  raft_timer_.expires_at(AtMonotonic(deadline_ns));
  raft_timer_.async_wait([this](const boost::system::error_code& ec) {
    if (ec || closing_) return;
    tick_due_ns_ = 0;
    driver_->Tick();
    PublishStatus();
  });
}

void Node::Impl::RunUrgent() {
  // Runs while closing too: each closure answers its caller (a renewal)
  // or does nothing once `closing_` is set.
  bool ran = false;
  if (!closing_ && tick_due_ns_ != 0 && MonotonicNowNs() >= tick_due_ns_) {
    tick_due_ns_ = 0;
    driver_->Tick();
    ran = true;
  }
  if (urgent_waiting_.load(std::memory_order_acquire)) {
    std::vector<absl::AnyInvocable<void()>> work;
    {
      MutexLock lock(&urgent_mu_);
      work.swap(urgent_);
      urgent_waiting_.store(false, std::memory_order_relaxed);
    }
    for (auto& fn : work) fn();
    ran = ran || !work.empty();
  }
  if (ran && !closing_) PublishStatus();
}

void Node::Impl::Write(DriverWriter::Request write,
                       absl::AnyInvocable<void(absl::Status)> done) {
  storage::GroupCommitWriter::Request req;
  req.snapshot = std::move(write.snapshot);
  req.entries = std::move(write.entries);
  req.hard_state = std::move(write.hard_state);
  Submit(std::move(req), std::move(done));
}

void Node::Impl::SaveSnapshot(raft::SnapshotMetadata metadata,
                              std::shared_ptr<const std::string> data,
                              absl::AnyInvocable<void(absl::Status)> done) {
  storage::GroupCommitWriter::Request req;
  req.task = [md = std::move(metadata), data](storage::Storage* s) {
    absl::Status st = s->SaveSnapshot(md, *data);
    if (st.ok()) st = s->Compact(md.index());
    return st;
  };
  Submit(std::move(req), std::move(done));
}

void Node::Impl::Submit(storage::GroupCommitWriter::Request request,
                        absl::AnyInvocable<void(absl::Status)> done) {
  // The writer wants a copyable callback.
  auto shared =
      std::make_shared<absl::AnyInvocable<void(absl::Status)>>(std::move(done));
  request.done = [shared](absl::Status s) { (*shared)(std::move(s)); };
  if (absl::Status s = writer_->Submit(std::move(request)); !s.ok()) {
    // The queue holds at most one Ready and a few snapshot tasks. Never
    // inside the call (DriverWriter's contract).
    asio::post(io_, [shared, s] { (*shared)(s); });
  }
}

void Node::Impl::ScheduleSweep() {
  // Proposals and reads past their deadline fail; a proposal's outcome is
  // unknown.
  sweep_timer_.expires_after(std::chrono::milliseconds(50));
  sweep_timer_.async_wait([this](const boost::system::error_code& ec) {
    if (ec || closing_) return;
    driver_->ExpireWaiting(MonotonicNowNs());
    PublishStatus();
    ScheduleSweep();
  });
}

void Node::Impl::OnFatal(const absl::Status& status) {
  // The driver answered every waiting caller already.
  Log(absl::StrCat("member '", options_.name,
                   "' stopped working: ", status.message()));
  raft_timer_.cancel();
  {
    MutexLock lock(&mu_);
    status_.error = status;
  }
  status_changed_.SignalAll();
  if (options_.on_fatal) options_.on_fatal(status);
}

void Node::Impl::PublishStatus() {
  const raft::Raft& raft = driver_->raft();
  const raft::SoftState& soft = driver_->soft_state();
  const std::map<uint64_t, peer::MemberInfo>& members = driver_->members();
  {
    MutexLock lock(&mu_);
    status_.role = soft.role;
    status_.term = raft.term();
    auto leader = members.find(soft.leader);
    status_.leader = leader != members.end() ? leader->second.name() : "";
    status_.leader_address =
        leader != members.end() ? leader->second.address() : "";
    status_.commit_index = raft.commit();
    status_.applied_index = driver_->applied();
    status_.last_log_index = raft.log().last_index();
    status_.snapshot_index = raft.log().snapshot_index();
    status_.proposals_waiting =
        driver_->proposals_queued() + driver_->proposals_in_log();
    status_.proposals_shed =
        driver_->overload().refused + driver_->overload().expired;
    status_.proposal_latency_us = driver_->overload().log_latency_ns / 1000;
    const raft::Membership& ms = raft.membership();
    status_.voter = ms.IsVoter(self_);
    status_.in_configuration = ms.Contains(self_);
    // The member list changes only with the configuration: rebuild it
    // then, not after every Ready.
    if (published_members_ != driver_->members_generation() ||
        status_.peers.empty()) {
      status_.peers.clear();
      for (const auto& [id, m] : members) {
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
  if (published_members_ != driver_->members_generation()) {
    published_members_ = driver_->members_generation();
    SyncPeers();
  }
  status_changed_.SignalAll();
}

void Node::Impl::AddJoinPeers(std::vector<transport::PeerAddress>* peers) {
  // Until this member is in the configuration it holds (a member added
  // at runtime: before its first snapshot, or while it catches up from a
  // snapshot older than its addition), the members its join endpoints
  // named are its peers too: the leader may be one it knows of no other
  // way yet.
  if (driver_->raft().membership().Contains(self_)) return;
  std::set<uint64_t> have;
  for (const transport::PeerAddress& p : *peers) have.insert(p.id);
  for (const MemberSpec& m : options_.join_peers) {
    const uint64_t id = MemberId(m.name);
    if (id != self_ && have.insert(id).second) {
      peers->push_back({id, m.name, m.address});
    }
  }
}

void Node::Impl::SyncPeers() {
  const raft::Raft& raft = driver_->raft();
  std::vector<transport::PeerAddress> peers;
  for (const auto& [id, m] : driver_->members()) {
    // Known by id only until a snapshot or entry names it.
    if (!m.address().empty()) peers.push_back({id, m.name(), m.address()});
  }
  AddJoinPeers(&peers);
  transport_->SetPeers(peers);
  const bool member = raft.membership().Contains(self_);
  was_member_ |= member;
  if (!member && (was_member_ || driver_->removed_self()) && !said_removed_) {
    said_removed_ = true;
    Log(absl::StrCat(
        "this member ('", options_.name,
        "') was removed from the cluster's configuration: it no longer "
        "votes, campaigns or serves, and the other members refuse it. Stop "
        "it, and clear its data directory before it joins again "
        "(docs/operations.md, \"Changing the membership\")"));
  } else if (member) {
    said_removed_ = false;
  }
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
    p.messages_refused = it->second.refused;
    p.version = it->second.version;
    p.protocol = it->second.protocol;
    if (it->second.last_received_ns != 0) {
      p.last_contact_ms = (now - it->second.last_received_ns) / 1'000'000;
    }
  }
  return s;
}

absl::Status Node::Impl::Admit(std::atomic<size_t>& queued, size_t max) {
  if (stopped_.load()) return absl::UnavailableError("the member is stopping");
  // Bounded before it is posted: a slow loop must not let calls pile up.
  if (queued.fetch_add(1) >= max) {
    queued.fetch_sub(1);
    return absl::ResourceExhaustedError(
        &queued == &queued_
            ? "too many proposals and reads are waiting on this member"
            : "too many confirmations are waiting on this member");
  }
  return absl::OkStatus();
}

void Node::Impl::Propose(std::string command, absl::Duration timeout,
                         std::function<void(absl::StatusOr<Applied>)> done) {
  const int64_t deadline = MonotonicNowNs() + absl::ToInt64Nanoseconds(timeout);
  OnLoop(std::move(done),
         [this, command = std::move(command), deadline](auto answer) mutable {
           driver_->Propose(std::move(command), deadline, std::move(answer));
         });
}

absl::Status Node::Impl::LeaderReachable() const {
  // A follower forwards reads and confirmations to the leader; while its
  // stream to the leader is down the request would be dropped, so say so
  // now rather than at the deadline.
  const raft::SoftState& soft = driver_->soft_state();
  if (soft.role == raft::Role::kLeader || soft.leader == 0 ||
      transport_->Connected(soft.leader)) {
    return absl::OkStatus();
  }
  auto leader = driver_->members().find(soft.leader);
  return absl::UnavailableError(absl::StrCat(
      "no connection to the leader '",
      leader != driver_->members().end() ? leader->second.name() : "?", "'"));
}

void Node::Impl::Read(absl::Duration timeout,
                      std::function<void(absl::StatusOr<uint64_t>)> done) {
  const int64_t deadline = MonotonicNowNs() + absl::ToInt64Nanoseconds(timeout);
  OnLoop(std::move(done), [this, deadline](auto answer) {
    if (absl::Status s = LeaderReachable(); !s.ok()) {
      answer(s);
      return;
    }
    driver_->Read(deadline, std::move(answer));
  });
}

void Node::Impl::Confirm(
    absl::Duration timeout,
    std::function<void(absl::StatusOr<Confirmation>)> done) {
  const int64_t deadline = MonotonicNowNs() + absl::ToInt64Nanoseconds(timeout);
  OnLoop(
      std::move(done),
      [this, deadline](auto answer) {
        if (absl::Status s = LeaderReachable(); !s.ok()) {
          answer(s);
          return;
        }
        driver_->Confirm(deadline, std::move(answer));
      },
      &confirms_queued_);
}

void Node::Impl::BeginTransfer() {
  // On the loop: hand leadership to the most up-to-date reachable voter.
  const raft::Raft& raft = driver_->raft();
  if (driver_->failed() || closing_ || raft.role() != raft::Role::kLeader) {
    {
      MutexLock lock(&mu_);
      transfer_abandoned_ = true;
    }
    status_changed_.SignalAll();
    return;
  }
  const uint64_t best = BestTransferTarget();
  if (best == 0) {
    Log("stopping as leader: no reachable peer to hand leadership to");
    {
      MutexLock lock(&mu_);
      transfer_abandoned_ = true;
    }
    status_changed_.SignalAll();
    return;
  }
  Log(absl::StrCat("stopping: handing leadership to '", NameOf(best), "'"));
  (void)driver_->TransferLeadership(best);
  PublishStatus();
}

uint64_t Node::Impl::BestTransferTarget() const {
  const raft::Raft& raft = driver_->raft();
  uint64_t best = 0;
  uint64_t best_match = 0;
  for (uint64_t id : raft.membership().voters()) {
    if (id == self_) continue;
    const raft::Progress* pr = raft.progress(id);
    if (pr == nullptr || !transport_->Connected(id)) continue;
    if (best == 0 || pr->match > best_match) {
      best = id;
      best_match = pr->match;
    }
  }
  return best;
}

std::string Node::Impl::NameOf(uint64_t id) const {
  auto it = driver_->members().find(id);
  return it != driver_->members().end() ? it->second.name() : absl::StrCat(id);
}

void Node::Impl::WaitOnLoop(std::function<bool()> ready, int64_t deadline_ns,
                            std::function<void(bool)> then) {
  if (closing_ || ready() || MonotonicNowNs() >= deadline_ns) {
    then(!closing_ && ready());
    return;
  }
  auto timer = std::make_shared<asio::steady_timer>(io_);
  waiters_.insert(timer);
  timer->expires_after(std::chrono::milliseconds(5));
  // Stop() cancels it: the handler then runs at once, sees closing_, and
  // answers.
  timer->async_wait(
      [this, timer, ready = std::move(ready), deadline_ns,
       then = std::move(then)](const boost::system::error_code&) mutable {
        waiters_.erase(timer);
        WaitOnLoop(std::move(ready), deadline_ns, std::move(then));
      });
}

void Node::Impl::WaitForAnotherLeader(int64_t deadline_ns,
                                      std::function<void(bool)> then) {
  WaitOnLoop(
      [this] {
        return driver_->raft().role() != raft::Role::kLeader &&
               driver_->raft().leader() != 0;
      },
      deadline_ns, std::move(then));
}

void Node::Impl::ListMembers(
    std::function<void(absl::StatusOr<MembersView>)> done) {
  OnLoop(std::move(done), [this](auto answer) {
    const raft::Raft& raft = driver_->raft();
    const std::map<uint64_t, transport::PeerState> states = transport_->Peers();
    const bool leader = raft.role() == raft::Role::kLeader;
    const int64_t now = MonotonicNowNs();
    const int64_t t = absl::ToInt64Nanoseconds(options_.election_timeout);
    MembersView view;
    view.commit_index = raft.commit();
    if (raft.leader() != 0) view.leader = NameOf(raft.leader());
    for (const auto& [id, m] : driver_->members()) {
      // Only the configuration (members() also holds the committed one,
      // and the leader).
      if (!raft.membership().Contains(id)) continue;
      MemberView v;
      v.name = m.name();
      v.zone = m.zone();
      v.address = m.address();
      v.voter = raft.membership().IsVoter(id);
      if (id == self_) {
        v.version = options_.version;
      } else if (auto st = states.find(id); st != states.end()) {
        v.version = st->second.version;
      }
      if (leader) {
        if (id == self_) {
          v.match_index = raft.log().last_index();
          v.caught_up = true;
        } else if (const raft::Progress* pr = raft.progress(id)) {
          v.match_index = pr->match;
          v.caught_up = CaughtUp(*pr, raft.commit(), now, t);
        }
      }
      view.members.push_back(std::move(v));
    }
    std::sort(view.members.begin(), view.members.end(),
              [](const MemberView& a, const MemberView& b) {
                return a.name < b.name;
              });
    answer(std::move(view));
  });
}

bool Node::Impl::QuorumReachable(const raft::Membership& next) const {
  const raft::Raft& raft = driver_->raft();
  const int64_t now = MonotonicNowNs();
  const int64_t t = absl::ToInt64Nanoseconds(options_.election_timeout);
  size_t heard = 0;
  for (uint64_t id : next.voters()) {
    if (id == self_) {
      ++heard;
      continue;
    }
    const raft::Progress* pr = raft.progress(id);
    if (pr != nullptr && now - pr->last_heard_ns <= t &&
        transport_->Connected(id)) {
      ++heard;
    }
  }
  return heard >= next.Quorum();
}

absl::Status Node::Impl::CheckChange(const MembershipChange& change,
                                     raft::ConfChange* out) const {
  using Kind = MembershipChange::Kind;
  const raft::Raft& raft = driver_->raft();
  const raft::Membership& ms = raft.membership();
  const uint64_t id = MemberId(change.name);
  const bool add =
      change.kind == Kind::kAddVoter || change.kind == Kind::kAddLearner;
  if (!ValidName(change.name)) {
    return absl::InvalidArgumentError(
        absl::StrCat("member id '", change.name,
                     "' must be 1 to 32 characters of a-z, 0-9 and '-'"));
  }
  if (add && !ValidName(change.zone)) {
    return absl::InvalidArgumentError(
        absl::StrCat("zone '", change.zone,
                     "' must be 1 to 32 characters of a-z, 0-9 and '-'"));
  }
  if (add && !ValidAddress(change.address)) {
    return absl::InvalidArgumentError(
        absl::StrCat("address '", change.address, "' is not HOST:PORT"));
  }
  if (add) {
    if (ms.Contains(id)) {
      return absl::AlreadyExistsError(absl::StrCat(
          "member '", change.name, "' is already a ",
          ms.IsVoter(id) ? "voter" : "learner",
          " of the cluster; choose another id, or remove it first"));
    }
    if (change.address.empty() || change.zone.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "adding member '", change.name, "' needs its zone and address"));
    }
    for (const auto& [other, m] : driver_->members()) {
      if (m.address() == change.address) {
        return absl::AlreadyExistsError(
            absl::StrCat("member '", m.name(), "' already uses the address ",
                         change.address, "; each member needs its own"));
      }
    }
  } else if (!ms.Contains(id)) {
    return absl::NotFoundError(absl::StrCat(
        "member '", change.name,
        "' is not in the cluster (quoratectl member list shows who is)"));
  }
  raft::ConfChange cc;
  cc.set_member_id(id);
  raft::Membership next = ms;
  switch (change.kind) {
    case Kind::kAddVoter:
      cc.set_type(raft::CONF_CHANGE_TYPE_ADD_VOTER);
      break;
    case Kind::kAddLearner:
      cc.set_type(raft::CONF_CHANGE_TYPE_ADD_LEARNER);
      break;
    case Kind::kRemove:
      cc.set_type(raft::CONF_CHANGE_TYPE_REMOVE);
      if (ms.IsVoter(id) && ms.voters().size() == 1) {
        return absl::FailedPreconditionError(absl::StrCat(
            "member '", change.name,
            "' is the last voter; a cluster needs one. Add and promote "
            "another member first"));
      }
      break;
    case Kind::kPromote: {
      cc.set_type(raft::CONF_CHANGE_TYPE_PROMOTE_LEARNER);
      if (!ms.IsLearner(id)) {
        return absl::FailedPreconditionError(
            absl::StrCat("member '", change.name, "' is a voter already"));
      }
      const raft::Progress* pr = raft.progress(id);
      const int64_t t = absl::ToInt64Nanoseconds(options_.election_timeout);
      if (pr == nullptr || !CaughtUp(*pr, raft.commit(), MonotonicNowNs(), t)) {
        return absl::FailedPreconditionError(absl::StrCat(
            "learner '", change.name,
            "' has not caught up: its log matches "
            "the leader's to index ",
            pr != nullptr ? pr->match : 0, " of ", raft.commit(),
            " committed. Start it (quorate-node --join) if it is not "
            "running, wait until `quoratectl member list --output=json` "
            "shows it caught up, then promote it"));
      }
      break;
    }
  }
  if (add) {
    raft::MemberInfo* m = cc.mutable_member();
    m->set_id(id);
    m->set_name(change.name);
    m->set_zone(change.zone);
    m->set_address(change.address);
  }
  if (!next.Apply(cc)) {
    return absl::FailedPreconditionError(
        absl::StrCat("the change does not apply to the current configuration"));
  }
  // A change that leaves the cluster without a quorum it can reach now
  // would stop every write until members come back: refuse it (etcd's
  // strict reconfiguration check).
  if (!QuorumReachable(next)) {
    return absl::FailedPreconditionError(absl::StrCat(
        "after this change the cluster would have ", next.voters().size(),
        " voters, and the leader has heard within the election timeout "
        "from fewer than the ",
        next.Quorum(), " a quorum needs; bring the missing members back first",
        change.kind == Kind::kAddVoter
            ? " (or add the member as a learner, and promote it once it "
              "has caught up)"
            : ""));
  }
  *out = std::move(cc);
  return absl::OkStatus();
}

void Node::Impl::ChangeMembership(
    MembershipChange change, absl::Duration timeout,
    std::function<void(absl::StatusOr<uint64_t>)> done) {
  const int64_t deadline = MonotonicNowNs() + absl::ToInt64Nanoseconds(timeout);
  OnLoop(std::move(done), [this, change = std::move(change),
                           deadline](auto answer) mutable {
    ChangeMembershipOnLoop(std::move(change), deadline, std::move(answer));
  });
}

void Node::Impl::ChangeMembershipOnLoop(
    MembershipChange change, int64_t deadline,
    std::function<void(absl::StatusOr<uint64_t>)> answer) {
  {
    const raft::Raft& raft = driver_->raft();
    if (raft.role() != raft::Role::kLeader) {
      answer(absl::UnavailableError("not the leader"));
      return;
    }
    if (!raft.committed_in_term() && !closing_) {
      // A leader just elected takes a change only once its first entry is
      // committed (the single-server errata): moments. Wait for it here
      // rather than send the caller round.
      WaitOnLoop(
          [this] {
            return driver_->raft().role() != raft::Role::kLeader ||
                   driver_->raft().committed_in_term();
          },
          deadline,
          [this, change = std::move(change), deadline,
           answer = std::move(answer)](bool) mutable {
            if (closing_) {
              answer(absl::UnavailableError("the member is stopping"));
              return;
            }
            if (driver_->raft().role() == raft::Role::kLeader &&
                !driver_->raft().committed_in_term()) {
              answer(absl::UnavailableError(
                  "the leader has not committed an entry in its term yet"));
              return;
            }
            ChangeMembershipOnLoop(std::move(change), deadline,
                                   std::move(answer));
          });
      return;
    }
    raft::ConfChange cc;
    if (absl::Status s = CheckChange(change, &cc); !s.ok()) {
      answer(s);
      return;
    }
    if (change.kind == MembershipChange::Kind::kRemove &&
        MemberId(change.name) == self_) {
      // Removing the leader: hand over first, then the caller retries at
      // the new leader. No window of this member outlives the handover
      // (the transfer waits for them to lapse: raft.h).
      const uint64_t target = BestTransferTarget();
      if (target == 0) {
        answer(absl::FailedPreconditionError(
            "this member leads, and no other voter is reachable to hand "
            "leadership to before its removal"));
        return;
      }
      Log(absl::StrCat("handing leadership to '", NameOf(target),
                       "' before this member is removed"));
      if (absl::Status s = driver_->TransferLeadership(target); !s.ok()) {
        answer(s);
        return;
      }
      WaitForAnotherLeader(
          deadline, [this, answer = std::move(answer)](bool moved) mutable {
            if (closing_) {
              answer(absl::UnavailableError("the member is stopping"));
              return;
            }
            answer(absl::UnavailableError(
                moved ? absl::StrCat("leadership moved to '",
                                     NameOf(driver_->raft().leader()),
                                     "' so that this member can be removed; "
                                     "ask it")
                      : std::string("leadership is moving so that this "
                                    "member can be removed; retry")));
          });
      return;
    }
    Log(absl::StrCat(
        "proposing a membership change: ", raft::ConfChangeType_Name(cc.type()),
        " of '", change.name, "'"));
    driver_->ProposeConfChange(
        cc, deadline,
        [this, name = change.name,
         answer = std::move(answer)](absl::StatusOr<Applied> a) mutable {
          if (!a.ok()) {
            absl::Status s = a.status();
            // The core's "one change at a time" is a refusal to report
            // (the operator waits for the change in flight). Its other
            // UNAVAILABLEs pass within moments and the client retries
            // them: a new leader's first entry not committed yet (a
            // removal retried at the leader that just took over), a
            // transfer in progress.
            if (s.code() == absl::StatusCode::kUnavailable &&
                driver_->raft().role() == raft::Role::kLeader &&
                absl::StrContains(s.message(), "one change at a time")) {
              s = absl::FailedPreconditionError(
                  absl::StrCat(s.message(), "; retry once it has committed"));
            }
            answer(s);
            return;
          }
          Log(absl::StrCat("membership change of '", name,
                           "' committed at index ", a->index));
          answer(a->index);
        });
  }
}

void Node::Impl::TransferLeadership(
    std::string to, absl::Duration timeout,
    std::function<void(absl::StatusOr<std::string>)> done) {
  const int64_t deadline = MonotonicNowNs() + absl::ToInt64Nanoseconds(timeout);
  OnLoop(std::move(done), [this, to = std::move(to),
                           deadline](auto answer) mutable {
    const raft::Raft& raft = driver_->raft();
    if (raft.role() != raft::Role::kLeader) {
      answer(absl::UnavailableError("not the leader"));
      return;
    }
    uint64_t target = 0;
    if (to.empty()) {
      target = BestTransferTarget();
      if (target == 0) {
        answer(absl::FailedPreconditionError(
            "no other voter is reachable to hand leadership to"));
        return;
      }
    } else {
      target = MemberId(to);
      if (target == self_) {
        answer(to);
        return;
      }
      if (!raft.membership().IsVoter(target)) {
        answer(absl::FailedPreconditionError(absl::StrCat(
            "member '", to, "' is not a voter; only a voter can lead")));
        return;
      }
    }
    if (absl::Status s = driver_->TransferLeadership(target); !s.ok()) {
      answer(s);
      return;
    }
    Log(absl::StrCat("handing leadership to '", NameOf(target), "'"));
    WaitForAnotherLeader(
        deadline, [this, answer = std::move(answer)](bool moved) mutable {
          if (closing_) {
            answer(absl::UnavailableError("the member is stopping"));
            return;
          }
          if (!moved) {
            answer(absl::DeadlineExceededError(
                "no other member leads yet; the transfer may still "
                "complete (it is abandoned after an election timeout)"));
            return;
          }
          answer(NameOf(driver_->raft().leader()));
        });
  });
}

void Node::Impl::BackupSnapshot(
    std::function<void(absl::StatusOr<SnapshotFileBytes>)> done) {
  const int64_t deadline =
      MonotonicNowNs() + absl::ToInt64Nanoseconds(absl::Seconds(10));
  OnLoop(std::move(done), [this, deadline](auto answer) mutable {
    // A read point first: a lagging member (or one removed and still
    // running) must not hand out a backup that misses acknowledged writes.
    driver_->Read(deadline, [this, answer](absl::StatusOr<uint64_t> r) {
      if (!r.ok()) {
        answer(absl::Status(
            r.status().code(),
            absl::StrCat("no consistent snapshot without a leader's read "
                         "point: ",
                         r.status().message())));
        return;
      }
      driver_->CaptureSnapshot(
          [this, answer](absl::StatusOr<Driver::CapturedSnapshot> c) {
            if (!c.ok()) {
              answer(c.status());
              return;
            }
            SnapshotFileBytes out;
            out.index = c->metadata.index();
            out.data = std::move(c->data);
            out.header = storage::SnapshotFileHeader(options_.cluster_id,
                                                     c->metadata, *out.data);
            answer(std::move(out));
          });
    });
  });
}

void Node::Impl::Stop(bool graceful) {
  if (stopped_.exchange(true)) return;
  if (graceful && thread_.joinable()) {
    asio::post(io_, [this] { BeginTransfer(); });
    // Waits at most two election timeouts for the handover.
    const absl::Time until = absl::Now() + 2 * options_.election_timeout;
    MutexLock lock(&mu_);
    // The loop publishes after every input. The handover is complete when
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
      timing_timer_.cancel();
      for (const auto& timer : waiters_) timer->cancel();
      driver_->Close("the member stopped");
      {
        MutexLock lock(&mu_);
        drained_ = true;
      }
      status_changed_.SignalAll();
    });
    // Waits at most 5 s for the loop to answer them.
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
  if (driver_ != nullptr) driver_->Close("the member stopped");
  io_.restart();
  io_.poll();
  // A snapshot being serialized is finished and submitted. Queued writes
  // finish; their completions are never run (the loop is gone), and what
  // they would send the stopped transport drops. The writer goes before
  // the driver its completions call.
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
void Node::ListMembers(std::function<void(absl::StatusOr<MembersView>)> done) {
  impl_->ListMembers(std::move(done));
}
void Node::ChangeMembership(
    MembershipChange change, absl::Duration timeout,
    std::function<void(absl::StatusOr<uint64_t>)> done) {
  impl_->ChangeMembership(std::move(change), timeout, std::move(done));
}
void Node::TransferLeadership(
    std::string to, absl::Duration timeout,
    std::function<void(absl::StatusOr<std::string>)> done) {
  impl_->TransferLeadership(std::move(to), timeout, std::move(done));
}
void Node::SaveSnapshot(
    std::function<void(absl::StatusOr<SnapshotFileBytes>)> done) {
  impl_->BackupSnapshot(std::move(done));
}
void Node::Stop(bool graceful) { impl_->Stop(graceful); }
std::string Node::listen_address() const { return impl_->listen_address(); }

}  // namespace quorate::node
