// quorate::Client against members started through the public API, and
// against a scripted fake member for the cases a real cluster cannot be
// made to show on cue.
#include "quorate/client.h"

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <stdlib.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <functional>
#include <future>
#include <map>
#include <mutex>
#include <optional>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "quorate/election.h"
#include "quorate/member.h"
#include "quorate/shards.h"
#include "quorate/workload.h"
#include "util/port.h"
#include "util/tcp_proxy.h"
#include "wire/client.grpc.pb.h"

namespace quorate {
namespace {

using testing::PortReservation;

class ClientClusterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/quorate-client-test-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    root_ = tmpl;
    for (int i = 1; i <= 3; ++i)
      ports_.push_back(std::make_unique<PortReservation>());
    std::vector<PeerSpec> peers;
    for (int i = 1; i <= 3; ++i) {
      peers.push_back({absl::StrCat("n", i), "az-a", ports_[i - 1]->address()});
    }
    for (int i = 1; i <= 3; ++i) {
      MemberOptions o;
      o.id = absl::StrCat("n", i);
      o.zone = "az-a";
      o.cluster_id = "client-test";
      o.listen_address = ports_[i - 1]->address();
      o.peers = peers;
      o.data_dir = absl::StrCat(root_, "/n", i);
      o.heartbeat_interval = absl::Milliseconds(20);
      o.election_timeout = absl::Milliseconds(200);
      o.wal_segment_bytes = 1 << 20;
      o.log = [](absl::string_view) {};
      auto m = Member::Start(o);
      ASSERT_TRUE(m.ok()) << m.status();
      members_.push_back(*std::move(m));
    }
  }
  void TearDown() override {
    members_.clear();
    std::filesystem::remove_all(root_);
  }
  // A follower's address, once there is a leader (polled: the members run
  // on their own).
  std::string FollowerAddress() {
    const absl::Time until = absl::Now() + absl::Seconds(20);
    while (absl::Now() < until) {
      for (size_t i = 0; i < members_.size(); ++i) {
        MemberStatus s = members_[i]->GetStatus();
        if (!s.leader_id.empty() && s.role == Role::kFollower) {
          return ports_[i]->address();
        }
      }
      absl::SleepFor(absl::Milliseconds(10));
    }
    return "";
  }

  // A client whose only endpoint is a follower.
  absl::StatusOr<std::unique_ptr<Client>> FollowerClient() {
    const std::string follower = FollowerAddress();
    if (follower.empty()) return absl::UnavailableError("no leader elected");
    ClientOptions o;
    o.endpoints = {follower};
    o.timeout = absl::Seconds(10);
    return Client::Create(o);
  }

  std::string root_;
  std::vector<std::unique_ptr<PortReservation>> ports_;
  std::vector<std::unique_ptr<Member>> members_;
};

TEST_F(ClientClusterTest, FromAFollower_FollowsTheLeaderAndReportsErrors) {
  auto c = FollowerClient();
  ASSERT_TRUE(c.ok()) << c.status();
  absl::StatusOr<uint64_t> rev = (*c)->Put("owner", "n2");
  ASSERT_TRUE(rev.ok()) << rev.status();
  absl::StatusOr<KeyValue> kv = (*c)->Get("owner");
  ASSERT_TRUE(kv.ok()) << kv.status();
  EXPECT_EQ(kv->value, "n2");
  EXPECT_EQ(kv->revision, *rev);
  EXPECT_GE(kv->read_revision, *rev);
  // A conflict is ABORTED (restart the read-modify-write), and the client
  // does not retry it as it retries a leader change.
  EXPECT_EQ((*c)->CompareAndSet("owner", *rev + 5, "x").status().code(),
            absl::StatusCode::kAborted);
  absl::StatusOr<uint64_t> cas = (*c)->CompareAndSet("owner", *rev, "n3");
  ASSERT_TRUE(cas.ok()) << cas.status();
  EXPECT_GT(*cas, *rev);
  EXPECT_EQ((*c)->Get("nothing").status().code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE((*c)->Delete("owner").ok());
  EXPECT_EQ((*c)->Delete("owner").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ((*c)->Put("", "v").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ((*c)->Put("k", std::string((1 << 20) + 1, 'v')).status().code(),
            absl::StatusCode::kInvalidArgument);
  absl::StatusOr<std::vector<ClusterMember>> ms = (*c)->Members();
  ASSERT_TRUE(ms.ok()) << ms.status();
  EXPECT_EQ(ms->size(), 3u);
  int leaders = 0;
  for (const ClusterMember& m : *ms) leaders += m.role == "leader";
  EXPECT_EQ(leaders, 1);
}

// Range reads and transactions through the public API, from a follower:
// the write branch is proposed at the leader, a read-only one is read at a
// read point, and a limit over the members' refuses the whole transaction.
TEST_F(ClientClusterTest, RangeAndTxn_FromAFollower) {
  auto c = FollowerClient();
  ASSERT_TRUE(c.ok()) << c.status();
  for (const char* k : {"jobs/1", "jobs/2", "jobs/3", "other"}) {
    ASSERT_TRUE((*c)->Put(k, "queued").ok());
  }
  RangeOptions prefix;
  prefix.range_end = PrefixEnd("jobs/");
  prefix.limit = 2;
  absl::StatusOr<RangeResult> r = (*c)->Range("jobs/", prefix);
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_EQ(r->kvs.size(), 2u);
  EXPECT_EQ(r->kvs[0].key, "jobs/1");
  EXPECT_EQ(r->kvs[1].value, "queued");
  EXPECT_EQ(r->count, 3u);
  EXPECT_TRUE(r->more);
  const uint64_t mod = r->kvs[0].mod_revision;
  EXPECT_EQ(r->kvs[0].version, 1u);

  // Take job 1 if it is still as read: once.
  Transaction take;
  take.compare = {Compare::ModRevision("jobs/1", Compare::Op::kEqual,
                                       static_cast<int64_t>(mod))};
  take.success = {TxnOp::Put("jobs/1", "taken"),
                  TxnOp::Range("jobs/", {.range_end = PrefixEnd("jobs/"),
                                         .count_only = true})};
  take.failure = {TxnOp::Range("jobs/1")};
  absl::StatusOr<TxnResult> t = (*c)->Txn(take);
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_TRUE(t->succeeded);
  ASSERT_EQ(t->results.size(), 2u);
  EXPECT_EQ(t->results[0].revision, t->revision);
  EXPECT_EQ(t->results[1].range.count, 3u);
  t = (*c)->Txn(take);
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_FALSE(t->succeeded);
  ASSERT_EQ(t->results.size(), 1u);
  ASSERT_EQ(t->results[0].range.kvs.size(), 1u);
  EXPECT_EQ(t->results[0].range.kvs[0].value, "taken");
  EXPECT_EQ(t->results[0].range.kvs[0].version, 2u);

  // A transaction over the members' limit is refused whole.
  Transaction many;
  for (int i = 0; i < 129; ++i) {
    many.success.push_back(TxnOp::Put(absl::StrCat("m/", i), "x"));
  }
  absl::StatusOr<TxnResult> refused = (*c)->Txn(many);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(refused.status().message().find("the limit is 128"),
            std::string::npos)
      << refused.status();
  absl::StatusOr<RangeResult> none =
      (*c)->Range("m/", {.range_end = PrefixEnd("m/"), .count_only = true});
  ASSERT_TRUE(none.ok()) << none.status();
  EXPECT_EQ(none->count, 0u);
  // So is a range whose end is before its start.
  EXPECT_EQ((*c)->Range("b", {.range_end = "a"}).status().code(),
            absl::StatusCode::kInvalidArgument);
}

// Leases through the public API: grant, keys attached, time to live,
// revoke deleting the keys, and the limits at their edges.
TEST_F(ClientClusterTest, Leases_GrantAttachRevoke) {
  auto c = FollowerClient();
  ASSERT_TRUE(c.ok()) << c.status();
  // The floor is twice the election timeout (200 ms here).
  EXPECT_EQ((*c)->GrantLease(absl::Milliseconds(399)).status().code(),
            absl::StatusCode::kInvalidArgument);
  absl::StatusOr<LeaseGrant> g = (*c)->GrantLease(absl::Milliseconds(400));
  ASSERT_TRUE(g.ok()) << g.status();
  (*c)->RevokeLease(g->id).IgnoreError();
  g = (*c)->GrantLease(absl::Seconds(30));
  ASSERT_TRUE(g.ok()) << g.status();
  EXPECT_EQ(g->ttl, absl::Seconds(30));
  ASSERT_TRUE((*c)->Put("svc/a", "1", g->id).ok());
  ASSERT_TRUE((*c)->Put("svc/b", "2", g->id).ok());
  EXPECT_EQ((*c)->Put("svc/c", "3", g->id + 1000).status().code(),
            absl::StatusCode::kNotFound);
  absl::StatusOr<LeaseStatus> ttl = (*c)->LeaseTimeToLive(g->id, true);
  ASSERT_TRUE(ttl.ok()) << ttl.status();
  EXPECT_EQ(ttl->granted_ttl, absl::Seconds(30));
  EXPECT_GT(ttl->remaining, absl::Seconds(20));
  EXPECT_LE(ttl->remaining, absl::Seconds(30));
  EXPECT_EQ(ttl->keys, (std::vector<std::string>{"svc/a", "svc/b"}));
  absl::StatusOr<std::vector<uint64_t>> ids = (*c)->Leases();
  ASSERT_TRUE(ids.ok()) << ids.status();
  EXPECT_NE(std::find(ids->begin(), ids->end(), g->id), ids->end());
  ASSERT_TRUE((*c)->RevokeLease(g->id).ok());
  EXPECT_EQ((*c)->Get("svc/a").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ((*c)->Get("svc/b").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ((*c)->RevokeLease(g->id).code(), absl::StatusCode::kNotFound);
  EXPECT_EQ((*c)->LeaseTimeToLive(g->id).status().code(),
            absl::StatusCode::kNotFound);
}

// A session keeps its lease alive past its TTL; once it stops renewing
// (destroyed), the leader expires the lease and deletes its keys.
TEST_F(ClientClusterTest, Session_StaysValidThenItsLeaseExpires) {
  auto c = FollowerClient();
  ASSERT_TRUE(c.ok()) << c.status();
  SessionOptions so;
  so.ttl = absl::Milliseconds(600);
  so.margin = absl::Milliseconds(20);
  absl::StatusOr<std::unique_ptr<Session>> session = (*c)->StartSession(so);
  ASSERT_TRUE(session.ok()) << session.status();
  const uint64_t lease = (*session)->lease();
  ASSERT_TRUE((*c)->Put("owner", "me", lease).ok());
  EXPECT_TRUE((*session)->Valid());
  // Three TTLs later it is still valid: the renewals are answered.
  absl::Notification later;
  std::thread timer([&later] {
    absl::SleepFor(absl::Milliseconds(1800));
    later.Notify();
  });
  while (!later.HasBeenNotified()) {
    ASSERT_TRUE((*session)->Valid());
    absl::SleepFor(absl::Milliseconds(20));
  }
  timer.join();
  EXPECT_FALSE((*session)->InJeopardy());
  EXPECT_TRUE((*c)->Get("owner").ok());
  // Stop renewing: the key goes with the lease, within its TTL and a bit.
  session->reset();
  const absl::Time until = absl::Now() + absl::Seconds(10);
  absl::StatusCode code = absl::StatusCode::kOk;
  while (absl::Now() < until) {
    code = (*c)->Get("owner").status().code();
    if (code == absl::StatusCode::kNotFound) break;
    absl::SleepFor(absl::Milliseconds(20));
  }
  EXPECT_EQ(code, absl::StatusCode::kNotFound);
}

TEST_F(ClientClusterTest, Session_CloseRevokesAndDoneIsReady) {
  auto c = FollowerClient();
  ASSERT_TRUE(c.ok()) << c.status();
  std::atomic<int> expired{0};
  SessionOptions so;
  so.ttl = absl::Seconds(5);
  so.on_expired = [&expired] { expired.fetch_add(1); };
  absl::StatusOr<std::unique_ptr<Session>> session = (*c)->StartSession(so);
  ASSERT_TRUE(session.ok()) << session.status();
  ASSERT_TRUE((*c)->Put("held", "x", (*session)->lease()).ok());
  ASSERT_TRUE((*session)->Close().ok());
  EXPECT_FALSE((*session)->Valid());
  EXPECT_EQ((*session)->Done().wait_for(std::chrono::seconds(5)),
            std::future_status::ready);
  EXPECT_EQ(expired.load(), 1);
  EXPECT_EQ((*c)->Get("held").status().code(), absl::StatusCode::kNotFound);
}

// Polls `done` (the members run on their own) for up to 20 s.
bool AwaitTrue(const std::function<bool()>& done) {
  const absl::Time until = absl::Now() + absl::Seconds(20);
  while (absl::Now() < until) {
    if (done()) return true;
    absl::SleepFor(absl::Milliseconds(10));
  }
  return done();
}

class RecipeTest : public ClientClusterTest {
 protected:
  void SetUp() override {
    ClientClusterTest::SetUp();
    auto c = FollowerClient();
    ASSERT_TRUE(c.ok()) << c.status();
    client_ = *std::move(c);
  }
  std::unique_ptr<Session> NewSession() {
    SessionOptions so;
    so.ttl = absl::Seconds(5);
    auto s = client_->StartSession(so);
    EXPECT_TRUE(s.ok()) << s.status();
    return s.ok() ? *std::move(s) : nullptr;
  }
  // Keys under a campaign's prefix.
  size_t Candidates(const std::string& prefix) {
    RangeOptions o;
    o.range_end = PrefixEnd(prefix);
    o.count_only = true;
    auto r = client_->Range(prefix, o);
    return r.ok() ? r->count : 0;
  }
  std::unique_ptr<Client> client_;
};

TEST_F(RecipeTest, Lock_WaitersServedInOrder_TokensGrow) {
  auto sa = NewSession(), sb = NewSession(), sc = NewSession();
  auto a = Lock::Create(client_.get(), sa.get(), "billing");
  auto b = Lock::Create(client_.get(), sb.get(), "billing");
  auto c = Lock::Create(client_.get(), sc.get(), "billing");
  ASSERT_TRUE(a.ok() && b.ok() && c.ok());
  EXPECT_EQ((*a)->fence_name(), "lock/billing");
  ASSERT_TRUE((*a)->Acquire().ok());
  uint64_t ta = 0;
  ASSERT_TRUE((*a)->Held(&ta));
  EXPECT_GT(ta, 0u);
  // b queues first, then c.
  auto fb = std::async(std::launch::async, [&] { return (*b)->Acquire(); });
  ASSERT_TRUE(
      AwaitTrue([&] { return Candidates("quorate/lock/billing/") == 2; }));
  auto fc = std::async(std::launch::async, [&] { return (*c)->Acquire(); });
  ASSERT_TRUE(
      AwaitTrue([&] { return Candidates("quorate/lock/billing/") == 3; }));
  EXPECT_FALSE((*b)->Held());
  EXPECT_FALSE((*c)->Held());
  ASSERT_TRUE((*a)->Release().ok());
  EXPECT_FALSE((*a)->Held());
  ASSERT_TRUE(fb.get().ok());
  uint64_t tb = 0;
  EXPECT_TRUE((*b)->Held(&tb));
  EXPECT_GT(tb, ta);
  EXPECT_FALSE((*c)->Held());  // still waiting: in order, not a stampede
  ASSERT_TRUE((*b)->Release().ok());
  ASSERT_TRUE(fc.get().ok());
  uint64_t tc = 0;
  EXPECT_TRUE((*c)->Held(&tc));
  EXPECT_GT(tc, tb);
  // a takes it again later: a new key, a higher token.
  auto fa = std::async(std::launch::async, [&] { return (*a)->Acquire(); });
  ASSERT_TRUE((*c)->Release().ok());
  ASSERT_TRUE(fa.get().ok());
  uint64_t ta2 = 0;
  EXPECT_TRUE((*a)->Held(&ta2));
  EXPECT_GT(ta2, tc);
}

TEST_F(RecipeTest, Lock_TimeoutWithdrawsTheWaiter) {
  auto sa = NewSession(), sb = NewSession();
  auto a = Lock::Create(client_.get(), sa.get(), "l");
  auto b = Lock::Create(client_.get(), sb.get(), "l");
  ASSERT_TRUE((*a)->Acquire().ok());
  const absl::Status s = (*b)->Acquire(absl::Milliseconds(200));
  EXPECT_EQ(s.code(), absl::StatusCode::kDeadlineExceeded) << s;
  EXPECT_FALSE((*b)->Held());
  EXPECT_EQ(Candidates("quorate/lock/l/"), 1u);  // b's key is gone
  EXPECT_TRUE((*a)->Held());
}

TEST_F(RecipeTest, EndedSession_CannotCampaignOrLock) {
  auto sa = NewSession();
  ASSERT_TRUE(sa->Close().ok());
  auto l = Lock::Create(client_.get(), sa.get(), "l");
  auto e = Election::Create(client_.get(), sa.get(), "e");
  EXPECT_EQ((*l)->Acquire().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ((*e)->Campaign("v").code(), absl::StatusCode::kFailedPrecondition);
  // Revoked behind the session's back: the cluster refuses the entry.
  auto sb = NewSession();
  ASSERT_TRUE(client_->RevokeLease(sb->lease()).ok());
  auto lb = Lock::Create(client_.get(), sb.get(), "l");
  const absl::Status s = (*lb)->Acquire();
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << s;
  EXPECT_EQ(Candidates("quorate/lock/l/"), 0u);
  EXPECT_FALSE((*lb)->Held());
}

TEST_F(RecipeTest, BadNamesAndProclaimWithoutLeading_AreRefused) {
  auto sa = NewSession();
  for (const char* bad : {"", "a/b"}) {
    EXPECT_EQ(Lock::Create(client_.get(), sa.get(), bad).status().code(),
              absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(Election::Create(client_.get(), sa.get(), bad).status().code(),
              absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(ElectionLeader(client_.get(), bad).status().code(),
              absl::StatusCode::kInvalidArgument);
  }
  auto e = Election::Create(client_.get(), sa.get(), "e");
  EXPECT_EQ((*e)->Proclaim("x").code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(ElectionLeader(client_.get(), "e").status().code(),
            absl::StatusCode::kNotFound);
}

TEST_F(RecipeTest, Election_ObserveSeesEveryLeaderInOrder) {
  std::mutex mu;
  std::vector<std::string> seen;
  ObserveOptions o;
  o.on_leader = [&](const std::optional<LeaderInfo>& l) {
    std::lock_guard<std::mutex> lock(mu);
    seen.push_back(l.has_value() ? absl::StrCat(l->value, "@", l->token)
                                 : std::string("none"));
  };
  auto observer = ObserveElection(client_.get(), "leader", std::move(o));
  ASSERT_TRUE(observer.ok()) << observer.status();
  auto sa = NewSession(), sb = NewSession();
  auto a = Election::Create(client_.get(), sa.get(), "leader");
  auto b = Election::Create(client_.get(), sb.get(), "leader");
  ASSERT_TRUE((*a)->Campaign("a").ok());
  uint64_t ta = 0;
  ASSERT_TRUE((*a)->IsLeader(&ta));
  EXPECT_EQ((*a)->fence_name(), "election/leader");
  ASSERT_TRUE((*a)->Proclaim("a2").ok());
  auto fb = std::async(std::launch::async, [&] { return (*b)->Campaign("b"); });
  ASSERT_TRUE(
      AwaitTrue([&] { return Candidates("quorate/election/leader/") == 2; }));
  auto now = ElectionLeader(client_.get(), "leader");
  ASSERT_TRUE(now.ok());
  EXPECT_EQ(now->value, "a2");
  EXPECT_EQ(now->token, ta);
  ASSERT_TRUE((*a)->Resign().ok());
  EXPECT_FALSE((*a)->IsLeader());
  ASSERT_TRUE(fb.get().ok());
  uint64_t tb = 0;
  ASSERT_TRUE((*b)->IsLeader(&tb));
  ASSERT_TRUE((*b)->Resign().ok());
  const std::vector<std::string> want = {"none", absl::StrCat("a@", ta),
                                         absl::StrCat("a2@", ta),
                                         absl::StrCat("b@", tb), "none"};
  EXPECT_TRUE(AwaitTrue([&] {
    std::lock_guard<std::mutex> lock(mu);
    return seen.size() >= want.size();
  }));
  (*observer)->Cancel();
  std::lock_guard<std::mutex> lock(mu);
  EXPECT_EQ(seen, want);
}

TEST_F(RecipeTest, Election_LeaderWhoseKeyIsDeletedStopsLeading) {
  auto sa = NewSession(), sb = NewSession();
  auto a = Election::Create(client_.get(), sa.get(), "e");
  auto b = Election::Create(client_.get(), sb.get(), "e");
  ASSERT_TRUE((*a)->Campaign("a").ok());
  auto fb = std::async(std::launch::async, [&] { return (*b)->Campaign("b"); });
  ASSERT_TRUE(
      AwaitTrue([&] { return Candidates("quorate/election/e/") == 2; }));
  // An operator deletes the leader's key by hand: a learns it from its
  // watch; b leads.
  auto leader = ElectionLeader(client_.get(), "e");
  ASSERT_TRUE(leader.ok());
  ASSERT_TRUE(client_->Delete(leader->key).ok());
  EXPECT_TRUE(AwaitTrue([&] { return !(*a)->IsLeader(); }));
  ASSERT_TRUE(fb.get().ok());
  EXPECT_TRUE((*b)->IsLeader());
  EXPECT_EQ((*a)->Proclaim("again").code(),
            absl::StatusCode::kFailedPrecondition);
}

// The session ends (here: closed) while leading: IsLeader() is false at
// once, before the next candidate can lead.
TEST_F(RecipeTest, Lock_HolderSessionEnds_NextWaiterHoldsIt) {
  auto sa = NewSession(), sb = NewSession();
  auto a = Lock::Create(client_.get(), sa.get(), "l");
  auto b = Lock::Create(client_.get(), sb.get(), "l");
  ASSERT_TRUE((*a)->Acquire().ok());
  auto fb = std::async(std::launch::async, [&] { return (*b)->Acquire(); });
  ASSERT_TRUE(AwaitTrue([&] { return Candidates("quorate/lock/l/") == 2; }));
  ASSERT_TRUE(sa->Close().ok());
  EXPECT_FALSE((*a)->Held());
  ASSERT_TRUE(fb.get().ok());
  EXPECT_TRUE((*b)->Held());
  EXPECT_FALSE((*a)->Held());
}

// A pause reaches every switch of the workload; a resume turns them back
// on; a switch whose session ended is never Running (it fails closed).
TEST_F(RecipeTest, WorkloadSwitch_PauseReachesEverySwitch) {
  ASSERT_TRUE(PauseWorkload(client_.get(), "outbound", "flood").ok());
  std::vector<std::unique_ptr<Session>> sessions;
  std::vector<std::unique_ptr<WorkloadSwitch>> switches;
  std::atomic<int> changes{0};
  for (int i = 0; i < 3; ++i) {
    sessions.push_back(NewSession());
    WorkloadSwitchOptions o;
    o.on_change = [&changes](const WorkloadState&) { changes.fetch_add(1); };
    auto sw = WorkloadSwitch::Create(client_.get(), sessions.back().get(),
                                     "outbound", std::move(o));
    ASSERT_TRUE(sw.ok()) << sw.status();
    EXPECT_FALSE((*sw)->Running());  // paused before it started
    EXPECT_EQ((*sw)->state().reason, "flood");
    switches.push_back(*std::move(sw));
  }
  ASSERT_TRUE(ResumeWorkload(client_.get(), "outbound").ok());
  for (auto& sw : switches) {
    EXPECT_TRUE(AwaitTrue([&] { return sw->Running(); }));
  }
  ASSERT_TRUE(PauseWorkload(client_.get(), "outbound", "again").ok());
  for (auto& sw : switches) {
    EXPECT_TRUE(AwaitTrue([&] { return !sw->Running(); }));
    EXPECT_EQ(sw->state().reason, "again");
  }
  EXPECT_TRUE(AwaitTrue([&] { return changes.load() == 6; })) << changes;
  // Another workload's switch is not touched, and one never set runs.
  auto inbound =
      WorkloadSwitch::Create(client_.get(), sessions[0].get(), "inbound", {});
  ASSERT_TRUE(inbound.ok());
  EXPECT_TRUE((*inbound)->Running());
  ASSERT_TRUE(sessions[0]->Close().ok());
  EXPECT_FALSE((*inbound)->Running());  // the session is over: fail closed
  auto all = ListWorkloads(client_.get());
  ASSERT_TRUE(all.ok());
  ASSERT_EQ(all->size(), 1u);
  EXPECT_EQ((*all)[0].name, "outbound");
  EXPECT_FALSE((*all)[0].running);
  EXPECT_EQ((*all)[0].reason, "again");
}

TEST_F(RecipeTest, WorkloadSwitch_BadInputIsRefused) {
  auto s = NewSession();
  for (const char* bad : {"", "a/b"}) {
    EXPECT_EQ(PauseWorkload(client_.get(), bad, "").code(),
              absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(ResumeWorkload(client_.get(), bad).code(),
              absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(
        WorkloadSwitch::Create(client_.get(), s.get(), bad, {}).status().code(),
        absl::StatusCode::kInvalidArgument);
  }
  EXPECT_EQ(PauseWorkload(client_.get(), "w", "two\nlines").code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(PauseWorkload(client_.get(), "w", std::string(1025, 'r')).code(),
            absl::StatusCode::kInvalidArgument);
  auto all = ListWorkloads(client_.get());
  ASSERT_TRUE(all.ok());
  EXPECT_TRUE(all->empty());  // nothing was written
}

// Shard groups (quorate/shards.h): a join takes all; a second join drains
// half over (the first owner releases in on_revoke); the new owner never
// sees the old one still owning; a session's end moves its shards at once.
TEST_F(RecipeTest, ShardGroup_PlannedMovesDrainAndSessionEndsMoveAtOnce) {
  ASSERT_TRUE(CreateShardGroup(client_.get(), "mail", 8).ok());
  EXPECT_TRUE(CreateShardGroup(client_.get(), "mail", 8).ok()) << "a retry";
  EXPECT_EQ(CreateShardGroup(client_.get(), "mail", 9).code(),
            absl::StatusCode::kAlreadyExists);
  auto sa = NewSession(), sb = NewSession();
  std::atomic<ShardGroup*> a_group{nullptr}, b_group{nullptr};
  std::atomic<int> overlaps{0}, revokes{0}, lost{0};
  ShardGroupOptions oa;
  oa.zone = "az-a";
  oa.on_revoke = [&](uint32_t shard) {
    ++revokes;
    ShardGroup* b = b_group.load();
    if (b != nullptr && b->Owns(shard)) ++overlaps;
    EXPECT_TRUE(a_group.load()->Release(shard).ok());
  };
  oa.on_lost = [&] { ++lost; };
  auto a = ShardGroup::Join(client_.get(), sa.get(), "mail", oa);
  ASSERT_TRUE(a.ok()) << a.status();
  a_group = a->get();
  ASSERT_TRUE(AwaitTrue([&] { return (*a)->Owned().size() == 8; }));
  uint64_t epoch = 0;
  ASSERT_TRUE((*a)->Owns(3, &epoch));
  EXPECT_EQ(epoch, 1u);

  ShardGroupOptions ob;
  ob.zone = "az-b";
  ob.on_assigned = [&](uint32_t shard, uint64_t) {
    ShardGroup* owner = a_group.load();
    if (owner != nullptr && owner->Owns(shard)) ++overlaps;
  };
  auto b = ShardGroup::Join(client_.get(), sb.get(), "mail", ob);
  ASSERT_TRUE(b.ok()) << b.status();
  b_group = b->get();
  ASSERT_TRUE(AwaitTrue(
      [&] { return (*a)->Owned().size() == 4 && (*b)->Owned().size() == 4; }));
  EXPECT_EQ(revokes.load(), 4);
  EXPECT_EQ(overlaps.load(), 0);
  for (uint32_t s = 0; s < 8; ++s) {
    EXPECT_NE((*a)->Owns(s), (*b)->Owns(s)) << "shard " << s;
    if ((*b)->Owns(s, &epoch)) {
      EXPECT_EQ(epoch, 2u) << "shard " << s;
    } else {
      EXPECT_EQ((*b)->Release(s).code(), absl::StatusCode::kFailedPrecondition);
    }
  }
  auto listed = ListShards(client_.get(), "mail");
  ASSERT_TRUE(listed.ok()) << listed.status();
  ASSERT_EQ(listed->size(), 8u);
  for (const ShardInfo& info : *listed) {
    EXPECT_EQ(info.state, "owned");
    EXPECT_EQ(info.zone, info.owner == sa->lease() ? "az-a" : "az-b");
  }

  // An unplanned move: a's session ends; b owns everything, new epochs.
  a_group = nullptr;
  ASSERT_TRUE(sa->Close().ok());
  EXPECT_TRUE((*a)->Owned().empty());
  ASSERT_TRUE(AwaitTrue([&] { return (*b)->Owned().size() == 8; }));
  for (uint32_t s = 0; s < 8; ++s) {
    ASSERT_TRUE((*b)->Owns(s, &epoch));
    EXPECT_EQ(epoch, 2u) << "shard " << s;
  }
  EXPECT_TRUE(AwaitTrue([&] { return lost.load() == 1; }));
}

// An owner that never releases stops owning at its drain deadline, and
// only then does the cluster hand the shard over.
TEST_F(RecipeTest, ShardGroup_AnOwnerThatKeepsAShardStopsAtTheDrainDeadline) {
  ShardGroupLimits limits;
  limits.drain = absl::Milliseconds(300);
  ASSERT_TRUE(CreateShardGroup(client_.get(), "slow", 2, limits).ok());
  auto sa = NewSession(), sb = NewSession();
  std::atomic<int> revokes{0}, overlaps{0};
  ShardGroupOptions oa;
  oa.on_revoke = [&](uint32_t) { ++revokes; };  // and never releases
  auto a = ShardGroup::Join(client_.get(), sa.get(), "slow", oa);
  ASSERT_TRUE(a.ok()) << a.status();
  ASSERT_TRUE(AwaitTrue([&] { return (*a)->Owned().size() == 2; }));
  ShardGroupOptions ob;
  ob.on_assigned = [&](uint32_t shard, uint64_t) {
    if ((*a)->Owns(shard)) ++overlaps;
  };
  auto b = ShardGroup::Join(client_.get(), sb.get(), "slow", ob);
  ASSERT_TRUE(b.ok()) << b.status();
  ASSERT_TRUE(AwaitTrue(
      [&] { return (*a)->Owned().size() == 1 && (*b)->Owned().size() == 1; }));
  EXPECT_EQ(revokes.load(), 1);
  EXPECT_EQ(overlaps.load(), 0);
}

TEST_F(RecipeTest, ShardGroup_BadInputAndLimitsAreRefused) {
  auto s = NewSession();
  EXPECT_EQ(CreateShardGroup(client_.get(), "a/b", 4).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(CreateShardGroup(client_.get(), "none", 0).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(CreateShardGroup(client_.get(), "big", 16385).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(
      ShardGroup::Join(client_.get(), s.get(), "nope", {}).status().code(),
      absl::StatusCode::kNotFound);
  EXPECT_EQ(ListShards(client_.get(), "nope").status().code(),
            absl::StatusCode::kNotFound);
  ShardGroupLimits one;
  one.max_processors = 1;
  ASSERT_TRUE(CreateShardGroup(client_.get(), "solo", 2, one).ok());
  auto first = ShardGroup::Join(client_.get(), s.get(), "solo", {});
  ASSERT_TRUE(first.ok()) << first.status();
  auto other = NewSession();
  EXPECT_EQ(
      ShardGroup::Join(client_.get(), other.get(), "solo", {}).status().code(),
      absl::StatusCode::kResourceExhausted);
  ASSERT_TRUE(AwaitTrue([&] { return (*first)->Owned().size() == 2; }));
  EXPECT_EQ((*first)->Release(7).code(), absl::StatusCode::kInvalidArgument);
  ASSERT_TRUE(other->Close().ok());
  EXPECT_EQ(
      ShardGroup::Join(client_.get(), other.get(), "solo", {}).status().code(),
      absl::StatusCode::kFailedPrecondition);
}

// A processor's watch of its group that fell out of the members' watch
// history (cut off from the cluster, by a proxy, while more than
// --watch_history revisions passed) ends; the group reads itself again
// and watches on, so a later join still drains shards from it. Without
// that, the processor would never see the revocations, and the joiner
// would get nothing until the processor's session ended.
TEST_F(RecipeTest, ShardGroup_AWatchThatLeftTheHistoryResumes) {
  ShardGroupLimits limits;
  limits.drain = absl::Seconds(1);  // a's own deadline releases them
  ASSERT_TRUE(CreateShardGroup(client_.get(), "mail", 4, limits).ok());
  ClientOptions all;
  for (auto& p : ports_) all.endpoints.push_back(p->address());
  all.timeout = absl::Seconds(10);
  auto full = Client::Create(all);
  ASSERT_TRUE(full.ok()) << full.status();
  SessionOptions so;
  so.ttl = absl::Seconds(10);
  auto sa = (*full)->StartSession(so);
  ASSERT_TRUE(sa.ok()) << sa.status();
  // The group's calls and watch reach the leader only through the proxy
  // (the leader answers them, so the client follows no hint elsewhere);
  // the session's renewals go straight to the cluster.
  std::string leader;
  ASSERT_TRUE(AwaitTrue([&] {
    for (size_t i = 0; i < members_.size(); ++i) {
      if (members_[i]->GetStatus().role == Role::kLeader) {
        leader = ports_[i]->address();
      }
    }
    return !leader.empty();
  }));
  testing::TcpProxy proxy(leader);
  ASSERT_TRUE(proxy.ok());
  ClientOptions through;
  through.endpoints = {proxy.address()};
  through.timeout = absl::Seconds(10);
  auto cut_client = Client::Create(through);
  ASSERT_TRUE(cut_client.ok());
  auto a = ShardGroup::Join(cut_client->get(), sa->get(), "mail", {});
  ASSERT_TRUE(a.ok()) << a.status();
  ASSERT_TRUE(AwaitTrue([&] { return (*a)->Owned().size() == 4; }));

  proxy.Cut();
  // More revisions than the members keep for watches (10,000).
  std::atomic<int> failed{0};
  std::vector<std::thread> writers;
  for (int t = 0; t < 16; ++t) {
    writers.emplace_back([&, t] {
      for (int i = 0; i < 660; ++i) {
        if (!(*full)->Put(absl::StrCat("w", t), "v").ok()) ++failed;
      }
    });
  }
  for (auto& w : writers) w.join();
  ASSERT_EQ(failed.load(), 0);
  proxy.Heal();

  auto sb = (*full)->StartSession(so);
  ASSERT_TRUE(sb.ok()) << sb.status();
  auto b = ShardGroup::Join(full->get(), sb->get(), "mail", {});
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_TRUE(AwaitTrue([&] {
    return (*b)->Owned().size() == 2 && (*a)->Owned().size() == 2;
  })) << "a owns "
      << (*a)->Owned().size() << ", b " << (*b)->Owned().size();
}

TEST_F(ClientClusterTest, ManyThreads_ShareOneClient) {
  ClientOptions o;
  for (auto& p : ports_) o.endpoints.push_back(p->address());
  o.timeout = absl::Seconds(10);
  auto c = Client::Create(o);
  ASSERT_TRUE(c.ok());
  std::vector<std::thread> threads;
  std::atomic<int> ok{0};
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 10; ++i) {
        if ((*c)->Put(absl::StrCat("t", t, "/", i), "v").ok()) ++ok;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(ok.load(), 80);
  absl::StatusOr<KeyValue> kv = (*c)->Get("t7/9");
  ASSERT_TRUE(kv.ok());
  EXPECT_GE(kv->read_revision, 80u);
}

// A member that answers as the test scripts it.
class FakeMember final : public client::Kv::Service {
 public:
  grpc::Status Put(grpc::ServerContext* ctx, const client::PutRequest*,
                   client::PutResponse*) override {
    // The client retries until its deadline: only the first call tells.
    if (!entered_.HasBeenNotified()) entered_.Notify();
    release_.WaitForNotification();
    if (refuse_) ctx->AddTrailingMetadata("quorate-refused", "1");
    return grpc::Status(grpc::StatusCode::UNAVAILABLE, "scripted");
  }
  absl::Notification entered_;
  absl::Notification release_;
  bool refuse_ = false;
};

struct FakeServer {
  explicit FakeServer(FakeMember* service) {
    grpc::ServerBuilder b;
    b.AddListeningPort(port.address(), grpc::InsecureServerCredentials());
    b.RegisterService(service);
    server = b.BuildAndStart();
  }
  ~FakeServer() { server->Shutdown(); }
  PortReservation port;
  std::unique_ptr<grpc::Server> server;
};

TEST(ClientTest, InFlightBeyondTheBound_IsResourceExhausted) {
  FakeMember fake;
  FakeServer server(&fake);
  ClientOptions o;
  o.endpoints = {server.port.address()};
  o.max_in_flight = 1;
  o.timeout = absl::Milliseconds(500);
  auto c = Client::Create(o);
  ASSERT_TRUE(c.ok());
  std::thread first([&] { (void)(*c)->Put("k", "v"); });
  fake.entered_.WaitForNotification();  // the first call is in flight
  EXPECT_EQ((*c)->Get("k").status().code(),
            absl::StatusCode::kResourceExhausted);
  fake.release_.Notify();
  first.join();
}

TEST(ClientTest, WriteWithoutAnAnswer_SaysItsOutcomeIsUnknown) {
  for (bool refused : {false, true}) {
    FakeMember fake;
    fake.refuse_ = refused;
    fake.release_.Notify();
    FakeServer server(&fake);
    ClientOptions o;
    o.endpoints = {server.port.address()};
    o.timeout = absl::Milliseconds(300);
    auto c = Client::Create(o);
    ASSERT_TRUE(c.ok());
    const absl::Status s = (*c)->Put("k", "v").status();
    // Only a member that refused before proposing proves nothing happened;
    // otherwise the outcome is unknown, and the code says so (UNKNOWN), not
    // only the text.
    EXPECT_EQ(s.code(), refused ? absl::StatusCode::kUnavailable
                                : absl::StatusCode::kUnknown)
        << s;
    EXPECT_EQ(s.message().find("outcome is unknown") != absl::string_view::npos,
              !refused)
        << s;
  }
}

// The transaction limits a member may be given: each edge accepted, one
// beyond refused with a message naming the range.
TEST(MemberOptionsTest, TxnLimits_AreCheckedAtTheirEdges) {
  MemberOptions o;
  o.id = "n1";
  o.zone = "az-a";
  o.cluster_id = "limits";
  o.listen_address = "127.0.0.1:1";
  o.peers = {{"n1", "az-a", "127.0.0.1:1"}};
  o.data_dir = "/tmp/unused";
  ASSERT_TRUE(ValidateMemberOptions(o).ok()) << ValidateMemberOptions(o);
  for (size_t ops : {size_t{1}, size_t{1024}}) {
    o.max_txn_ops = ops;
    EXPECT_TRUE(ValidateMemberOptions(o).ok()) << ops;
  }
  for (size_t ops : {size_t{0}, size_t{1025}}) {
    o.max_txn_ops = ops;
    const absl::Status s = ValidateMemberOptions(o);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << ops;
    EXPECT_NE(s.message().find("1 to 1024"), std::string::npos) << s;
  }
  o.max_txn_ops = 128;
  for (size_t bytes : {size_t{1024}, size_t{2} << 20}) {
    o.max_txn_bytes = bytes;
    EXPECT_TRUE(ValidateMemberOptions(o).ok()) << bytes;
  }
  for (size_t bytes : {size_t{1023}, (size_t{2} << 20) + 1}) {
    o.max_txn_bytes = bytes;
    EXPECT_EQ(ValidateMemberOptions(o).code(),
              absl::StatusCode::kInvalidArgument)
        << bytes;
  }
}

// The watch limits a member may be given: each edge accepted, one beyond
// refused with a message naming the range.
TEST(MemberOptionsTest, WatchLimits_AreCheckedAtTheirEdges) {
  MemberOptions o;
  o.id = "n1";
  o.zone = "az-a";
  o.cluster_id = "limits";
  o.listen_address = "127.0.0.1:1";
  o.peers = {{"n1", "az-a", "127.0.0.1:1"}};
  o.data_dir = "/tmp/unused";
  ASSERT_TRUE(ValidateMemberOptions(o).ok()) << ValidateMemberOptions(o);
  auto refused = [&](const std::string& names) {
    const absl::Status s = ValidateMemberOptions(o);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << names;
    EXPECT_NE(s.message().find(names), std::string::npos) << s;
  };
  for (size_t n : {size_t{10000}, size_t{10'000'000}}) {
    o.watch_history = n;
    EXPECT_TRUE(ValidateMemberOptions(o).ok()) << n;
  }
  for (size_t n : {size_t{9999}, size_t{10'000'001}}) {
    o.watch_history = n;
    refused("10000 to 10000000");
  }
  o.watch_history = 10000;
  for (size_t n : {size_t{64} << 10, size_t{1} << 30}) {
    o.watch_buffer_bytes = n;
    EXPECT_TRUE(ValidateMemberOptions(o).ok()) << n;
  }
  for (size_t n : {(size_t{64} << 10) - 1, (size_t{1} << 30) + 1}) {
    o.watch_buffer_bytes = n;
    refused("64 KiB to 1 GiB");
  }
  o.watch_buffer_bytes = size_t{4} << 20;
  for (size_t n : {size_t{1}, size_t{1'000'000}}) {
    o.max_watchers_per_stream = n;
    EXPECT_TRUE(ValidateMemberOptions(o).ok()) << n;
  }
  for (size_t n : {size_t{0}, size_t{1'000'001}}) {
    o.max_watchers_per_stream = n;
    refused("1 to 1000000");
  }
  o.max_watchers_per_stream = 10000;
  o.watch_progress_interval = absl::Milliseconds(10);
  EXPECT_TRUE(ValidateMemberOptions(o).ok());
  o.watch_progress_interval = absl::Milliseconds(9);
  refused("at least 10ms");
}

TEST(ClientTest, Create_RefusesBadOptions) {
  EXPECT_EQ(Client::Create({}).status().code(),
            absl::StatusCode::kInvalidArgument);
  ClientOptions o;
  o.endpoints = {"127.0.0.1:1"};
  o.tls.ca_file = "/nonexistent";
  EXPECT_EQ(Client::Create(o).status().code(),
            absl::StatusCode::kInvalidArgument);
  // All three, through the one PEM loader the members use: the message
  // names the file it could not read.
  o.tls = {"/nonexistent-ca", "/nonexistent-cert", "/nonexistent-key"};
  const absl::Status s = Client::Create(o).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("/nonexistent-ca"), absl::string_view::npos) << s;
}

}  // namespace
}  // namespace quorate
