#include "raft/cluster.h"

#include <algorithm>
#include <limits>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "util/check.h"

namespace quorate::raft::testing {

int64_t MemberIo::Now() { return cluster_->now_ns_; }

void MemberIo::Send(std::vector<Message> messages) {
  for (Message& m : messages) cluster_->network_.push_back(std::move(m));
}

void MemberIo::Write(Request request,
                     absl::AnyInvocable<void(absl::Status)> done) {
  member_->writes.emplace_back(std::move(request), std::move(done));
}

void MemberIo::SaveSnapshot(SnapshotMetadata /*metadata*/,
                            std::shared_ptr<const std::string> /*data*/,
                            absl::AnyInvocable<void(absl::Status)> /*done*/) {
  // snapshot_every is 0 here: tests compact with Cluster::Compact.
  QUORATE_CHECK(false) << "the test cluster takes no snapshots by itself";
}

Message Msg(MessageType type, uint64_t from, uint64_t to, uint64_t term) {
  Message m;
  m.set_type(type);
  m.set_from(from);
  m.set_to(to);
  m.set_term(term);
  return m;
}

void MemberIo::OnStep(const Raft& raft) {
  cluster_->invariants_.Observe(member_->id, raft);
}

void MemberIo::OnApplied(const Entry& e) {
  member_->applied.push_back(e);
  cluster_->invariants_.OnApplied(member_->id, e,
                                  member_->driver->raft().term());
}

void MemberIo::OnOtherReadState(const ReadState& rs) {
  member_->reads.push_back(rs);
}

void MemberIo::OnOtherFailedRead(uint64_t id) {
  member_->failed_reads.push_back(id);
}

namespace {

// Tests hand the cores read ids of their own; the driver's start far above.
constexpr uint64_t kDriverReadIds = uint64_t{1} << 62;

// Snapshot bytes as the driver writes them: the state machine's (here, the
// applied entries' data) inside a peer::NodeSnapshot.
std::shared_ptr<const std::string> SnapshotBytes(std::string state) {
  peer::NodeSnapshot snap;
  snap.set_state(std::move(state));
  return std::make_shared<const std::string>(snap.SerializeAsString());
}

}  // namespace

Config Cluster::DefaultConfig() {
  Config c;
  c.heartbeat_interval_ns = 10;
  c.election_timeout_ns = 100;
  return c;
}

Cluster::Cluster(int voters, int learners, uint64_t seed, Config base)
    : base_(base), seed_(seed) {
  ConfState conf;
  for (int i = 1; i <= voters; ++i) conf.add_voters(static_cast<uint64_t>(i));
  for (int i = voters + 1; i <= voters + learners; ++i) {
    conf.add_learners(static_cast<uint64_t>(i));
  }
  for (int i = 1; i <= voters + learners; ++i) {
    const auto id = static_cast<uint64_t>(i);
    Member& m = members_[id];
    m.id = id;
    *m.disk.snapshot.mutable_conf_state() = conf;
    Boot(m);
  }
}

void Cluster::AddBlankMember(uint64_t id) {
  QUORATE_CHECK(members_.count(id) == 0) << "member " << id << " exists";
  Member& m = members_[id];
  m.id = id;
  Boot(m);
}

void Cluster::Boot(Member& m) {
  // Each member has its own generator, seeded from the cluster seed and
  // the member id, so runs replay exactly.
  m.random = std::make_unique<SeededRandom>(seed_ * 1000003 + m.id);
  Config c = base_;
  c.id = m.id;
  c.random = m.random.get();
  m.io = std::make_unique<MemberIo>(this, &m);
  m.writes.clear();
  node::DriverOptions d;
  d.snapshot_every = 0;
  d.first_read_id = kDriverReadIds;
  auto driver = node::Driver::Create(c, std::move(d), m.disk.Restore(),
                                     m.io.get(), m.io.get(), m.io.get());
  QUORATE_CHECK(driver.ok()) << driver.status();
  m.driver = *std::move(driver);
}

Raft& Cluster::raft(uint64_t id) {
  Member& m = member(id);
  QUORATE_CHECK(m.driver != nullptr) << "member " << id << " is down";
  return m.driver->mutable_raft();
}

Member& Cluster::member(uint64_t id) {
  auto it = members_.find(id);
  QUORATE_CHECK(it != members_.end()) << "no member " << id;
  return it->second;
}

const Member& Cluster::member(uint64_t id) const {
  auto it = members_.find(id);
  QUORATE_CHECK(it != members_.end()) << "no member " << id;
  return it->second;
}

std::vector<uint64_t> Cluster::ids() const {
  std::vector<uint64_t> out;
  for (const auto& [id, m] : members_) out.push_back(id);
  return out;
}

void Disk::Persist(const node::DriverWriter::Request& rd) {
  if (rd.snapshot.has_value()) {
    snapshot = rd.snapshot->metadata;
    snapshot_data = rd.snapshot->data;
    entries.clear();
  }
  if (!rd.entries.empty()) {
    const uint64_t first = rd.entries.front()->index();
    const uint64_t base = snapshot.index();
    QUORATE_CHECK_GT(first, base) << "entries overwrite the snapshot";
    QUORATE_CHECK_LE(first, base + entries.size() + 1) << "gap on disk";
    entries.resize(first - base - 1);
    for (const EntryPtr& e : rd.entries) entries.push_back(*e);
  }
  if (rd.hard_state.has_value()) hard_state = *rd.hard_state;
}

void Disk::Compact(const SnapshotMetadata& md,
                   std::shared_ptr<const std::string> data) {
  const uint64_t drop = md.index() - snapshot.index();
  QUORATE_CHECK_LE(drop, entries.size()) << "compacting beyond the log";
  entries.erase(entries.begin(),
                entries.begin() + static_cast<std::ptrdiff_t>(drop));
  snapshot = md;
  snapshot_data = std::move(data);
}

RestoredState Disk::Restore() const {
  RestoredState restored;
  restored.hard_state = hard_state;
  restored.snapshot = snapshot;
  restored.snapshot_data = snapshot_data;
  restored.entries = entries;
  restored.applied = snapshot.index();
  return restored;
}

void Cluster::Track(Member& m) { invariants_.Observe(m.id, m.driver->raft()); }

bool Cluster::ProcessReadies() {
  bool any = false;
  for (auto& [id, m] : members_) {
    if (m.driver == nullptr) continue;
    any |= m.driver->raft().HasReady();
    m.driver->Drive();
    // Every write becomes durable before the next member's turn (so a
    // crash loses nothing durable). Completing one may submit the next.
    while (m.driver != nullptr && !m.writes.empty()) {
      auto [write, done] = std::move(m.writes.front());
      m.writes.pop_front();
      m.disk.Persist(write);
      if (write.hard_state.has_value()) {
        invariants_.OnPersisted(m.id, m.disk.hard_state);
      }
      done(absl::OkStatus());
    }
  }
  return any;
}

std::vector<Message> Cluster::DeliverOnce() {
  ProcessReadies();
  std::deque<Message> batch;
  batch.swap(network_);
  std::vector<Message> delivered;
  for (Message& msg : batch) {
    if (IsCut(msg.from(), msg.to())) continue;
    if (drop_if && drop_if(msg)) continue;
    auto it = members_.find(msg.to());
    if (it == members_.end() || it->second.driver == nullptr) continue;
    if (on_deliver) on_deliver(msg);
    // Stepped by hand, all of this batch: ProcessReadies() below hands the
    // cores' Readies to the drivers.
    QUORATE_CHECK(it->second.driver->mutable_raft().Step(msg, now_ns_).ok());
    delivered.push_back(std::move(msg));
  }
  ProcessReadies();
  return delivered;
}

std::vector<Message> Cluster::Stabilize() {
  std::vector<Message> all;
  ProcessReadies();
  while (!network_.empty()) {
    std::vector<Message> step = DeliverOnce();
    for (Message& m : step) all.push_back(std::move(m));
  }
  return all;
}

void Cluster::AdvanceTime(int64_t ns) {
  const int64_t end = now_ns_ + ns;
  for (int guard = 0;; ++guard) {
    QUORATE_CHECK_LT(guard, 10'000'000) << "time does not advance";
    int64_t next = end;
    for (auto& [id, m] : members_) {
      if (m.driver != nullptr) {
        next = std::min(next, m.driver->raft().NextDeadline());
      }
    }
    next = std::max(next, now_ns_);
    now_ns_ = next;
    for (auto& [id, m] : members_) {
      // By hand, every due core first; Stabilize() drives them.
      if (m.driver != nullptr && m.driver->raft().NextDeadline() <= now_ns_) {
        m.driver->mutable_raft().Tick(now_ns_);
      }
    }
    Stabilize();
    if (now_ns_ >= end) break;
  }
}

void Cluster::Partition(const std::vector<uint64_t>& a,
                        const std::vector<uint64_t>& b) {
  for (uint64_t x : a) {
    for (uint64_t y : b) CutBoth(x, y);
  }
}

void Cluster::Isolate(uint64_t id) {
  for (const auto& [other, m] : members_) {
    if (other != id) CutBoth(id, other);
  }
}

void Cluster::Crash(uint64_t id) {
  Member& m = member(id);
  m.driver.reset();
  m.writes.clear();  // never made durable
  // Messages from and to a crashed member are lost.
  std::erase_if(network_, [&](const Message& msg) {
    return msg.from() == id || msg.to() == id;
  });
}

void Cluster::Restart(uint64_t id) {
  Member& m = member(id);
  QUORATE_CHECK(m.driver == nullptr) << "member " << id << " is up";
  // The applied state machine is rebuilt from the snapshot and the log.
  m.applied.clear();
  Boot(m);
  invariants_.OnRestart(id, m.driver->raft());
}

absl::Status Cluster::Compact(uint64_t id) {
  Member& m = member(id);
  Raft& r = raft(id);
  const uint64_t index = m.driver->applied();
  SnapshotMetadata md = r.SnapshotMetadataAt(index);
  // The "state machine" is the list of applied entries' data.
  std::string data;
  for (const Entry& e : m.applied) {
    if (e.index() <= index) absl::StrAppend(&data, e.data(), ";");
  }
  auto bytes = SnapshotBytes(std::move(data));
  absl::Status s = r.Compact(md, bytes);
  if (!s.ok()) return s;
  m.disk.Compact(md, bytes);
  return absl::OkStatus();
}

uint64_t Cluster::Leader() const {
  uint64_t leader = 0;
  uint64_t term = 0;
  for (const auto& [id, m] : members_) {
    if (m.driver == nullptr || m.driver->raft().role() != Role::kLeader) {
      continue;
    }
    if (m.driver->raft().term() > term) {
      term = m.driver->raft().term();
      leader = id;
    }
  }
  return leader;
}

bool Cluster::Elect(uint64_t id) {
  // Let every lease lapse first, so that votes are granted.
  AdvanceTime(base_.election_timeout_ns);
  if (raft(id).role() == Role::kLeader) return true;
  raft(id).Campaign(now_ns_);
  Stabilize();
  return raft(id).role() == Role::kLeader;
}

std::string Cluster::CheckInvariants() {
  std::vector<std::pair<uint64_t, const Raft*>> live;
  for (auto& [id, m] : members_) {
    if (m.driver == nullptr) continue;
    Track(m);
    live.emplace_back(id, &m.driver->raft());
  }
  invariants_.CheckLogs(live);
  return invariants_.violation();
}

ConfChange MakeConfChange(ConfChangeType type, uint64_t id) {
  ConfChange cc;
  cc.set_type(type);
  cc.set_member_id(id);
  return cc;
}

std::string Describe(const Message& m) {
  std::string type = MessageType_Name(m.type());
  type = type.substr(std::string("MESSAGE_TYPE_").size());
  std::string out =
      absl::StrCat(m.from(), "->", m.to(), " ", type, " term=", m.term());
  switch (m.type()) {
    case MESSAGE_TYPE_APPEND: {
      absl::StrAppend(&out, " prev=", m.index(), "/", m.log_term(),
                      " commit=", m.commit());
      if (m.entries_size() > 0) {
        std::vector<std::string> es;
        for (const Entry& e : m.entries()) {
          es.push_back(absl::StrCat(e.index(), "/", e.term(),
                                    e.data().empty() ? "" : ":", e.data()));
        }
        absl::StrAppend(&out, " entries=[", absl::StrJoin(es, " "), "]");
      }
      break;
    }
    case MESSAGE_TYPE_APPEND_RESPONSE:
      absl::StrAppend(&out, " index=", m.index());
      if (m.reject()) {
        absl::StrAppend(&out, " reject hint=", m.reject_hint_index(), "/",
                        m.reject_hint_term());
      }
      break;
    case MESSAGE_TYPE_PRE_VOTE:
    case MESSAGE_TYPE_VOTE:
      absl::StrAppend(&out, " last=", m.index(), "/", m.log_term(),
                      m.transfer() ? " transfer" : "");
      break;
    case MESSAGE_TYPE_PRE_VOTE_RESPONSE:
    case MESSAGE_TYPE_VOTE_RESPONSE:
      absl::StrAppend(&out, m.reject() ? " reject" : " grant");
      break;
    case MESSAGE_TYPE_HEARTBEAT:
      absl::StrAppend(&out, " commit=", m.commit(), " round=", m.round());
      break;
    case MESSAGE_TYPE_HEARTBEAT_RESPONSE:
      absl::StrAppend(&out, " round=", m.round());
      break;
    case MESSAGE_TYPE_SNAPSHOT:
      absl::StrAppend(&out, " snap=", m.snapshot().metadata().index(), "/",
                      m.snapshot().metadata().term(),
                      " offset=", m.snapshot().offset(),
                      " bytes=", m.snapshot().data().size(),
                      m.snapshot().last() ? " last" : "");
      break;
    case MESSAGE_TYPE_SNAPSHOT_RESPONSE:
      absl::StrAppend(
          &out, " snap=", m.index(), " offset=", m.snapshot().offset(),
          m.snapshot().last() ? " done" : "", m.reject() ? " reject" : "");
      break;
    case MESSAGE_TYPE_READ_INDEX:
      absl::StrAppend(&out, " id=", m.request_id());
      break;
    case MESSAGE_TYPE_READ_INDEX_RESPONSE:
      absl::StrAppend(&out, " id=", m.request_id(), " index=", m.index());
      break;
    default:
      break;
  }
  return out;
}

}  // namespace quorate::raft::testing
