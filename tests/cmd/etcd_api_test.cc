// etcd's v3 API on Quorate (api/etcd_gateway.h) through gRPC stubs of our
// own etcd .proto files, for what etcdctl 3.4 does not send: the
// Election and Lock services, nested transactions, watch filters,
// progress requests and watcher ids, and the Cluster and Maintenance
// calls. Where the answer is etcd's to define, the same calls go to a
// real etcd 3.4 cluster in the same test and the answers are compared.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "api/etcd_gateway.h"
#include "bench/clusters.h"
#include "wire/etcd/election.grpc.pb.h"
#include "wire/etcd/lock.grpc.pb.h"
#include "wire/etcd/rpc.grpc.pb.h"

namespace quorate {
namespace {

namespace epb = ::etcdserverpb;

// Stubs of every etcd service on one member.
struct Stubs {
  explicit Stubs(const std::string& address)
      : channel(
            grpc::CreateChannel(address, grpc::InsecureChannelCredentials())),
        kv(epb::KV::NewStub(channel)),
        watch(epb::Watch::NewStub(channel)),
        lease(epb::Lease::NewStub(channel)),
        cluster(epb::Cluster::NewStub(channel)),
        maintenance(epb::Maintenance::NewStub(channel)),
        election(v3electionpb::Election::NewStub(channel)),
        lock(v3lockpb::Lock::NewStub(channel)) {}
  std::shared_ptr<grpc::Channel> channel;
  std::unique_ptr<epb::KV::Stub> kv;
  std::unique_ptr<epb::Watch::Stub> watch;
  std::unique_ptr<epb::Lease::Stub> lease;
  std::unique_ptr<epb::Cluster::Stub> cluster;
  std::unique_ptr<epb::Maintenance::Stub> maintenance;
  std::unique_ptr<v3electionpb::Election::Stub> election;
  std::unique_ptr<v3lockpb::Lock::Stub> lock;
};

std::unique_ptr<grpc::ClientContext> Ctx(absl::Duration d = absl::Seconds(10)) {
  auto c = std::make_unique<grpc::ClientContext>();
  c->set_deadline(absl::ToChronoTime(absl::Now() + d));
  return c;
}

class EtcdApiTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/quorate-etcdapi-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    root_ = tmpl;
    for (const char* d : {"/q", "/e"}) {
      std::filesystem::create_directories(root_ + d);
    }
    quorate_ = std::make_unique<bench::QuorateCluster>(QUORATE_NODE_BINARY,
                                                       root_ + "/q");
    etcd_ =
        std::make_unique<bench::EtcdCluster>(bench::kEtcdBinary, root_ + "/e");
    for (bench::Cluster* c : {static_cast<bench::Cluster*>(quorate_.get()),
                              static_cast<bench::Cluster*>(etcd_.get())}) {
      for (int i = 0; i < bench::kMembers; ++i) c->Start(i);
    }
    ASSERT_TRUE(bench::Await([&] { return quorate_->Leader() >= 0; }));
    ASSERT_TRUE(bench::Await([&] { return etcd_->Leader() >= 0; }));
    q_ = std::make_unique<Stubs>(quorate_->ClientAddress(quorate_->Leader()));
    // A follower, to see that it forwards.
    q_follower_ = std::make_unique<Stubs>(
        quorate_->ClientAddress((quorate_->Leader() + 1) % bench::kMembers));
    e_ = std::make_unique<Stubs>(etcd_->ClientAddress(etcd_->Leader()));
  }
  void TearDown() override {
    quorate_.reset();
    etcd_.reset();
    if (!HasFailure()) std::filesystem::remove_all(root_);
  }

  static void Put(Stubs& s, const std::string& k, const std::string& v,
                  int64_t lease = 0) {
    epb::PutRequest req;
    req.set_key(k);
    req.set_value(v);
    req.set_lease(lease);
    epb::PutResponse resp;
    ASSERT_TRUE(s.kv->Put(Ctx().get(), req, &resp).ok());
  }
  static int64_t Grant(Stubs& s, int64_t ttl) {
    epb::LeaseGrantRequest req;
    req.set_ttl(ttl);
    epb::LeaseGrantResponse resp;
    EXPECT_TRUE(s.lease->LeaseGrant(Ctx().get(), req, &resp).ok());
    return resp.id();
  }

  std::string root_;
  std::unique_ptr<bench::QuorateCluster> quorate_;
  std::unique_ptr<bench::EtcdCluster> etcd_;
  std::unique_ptr<Stubs> q_, q_follower_, e_;
};

// A transaction inside a transaction, prev_kv, and revisions as etcd
// numbers them: the same answers from both.
TEST_F(EtcdApiTest, NestedTransactionsAnswerAsEtcdDoes) {
  for (Stubs* s : {q_.get(), e_.get()}) {
    Put(*s, "a", "1");
    Put(*s, "b", "2");
  }
  epb::TxnRequest t;
  epb::Compare* c = t.add_compare();
  c->set_key("a");
  c->set_target(epb::Compare::VALUE);
  c->set_result(epb::Compare::EQUAL);
  c->set_value("1");
  epb::PutRequest* put = t.add_success()->mutable_request_put();
  put->set_key("a");
  put->set_value("10");
  put->set_prev_kv(true);
  epb::TxnRequest* inner = t.add_success()->mutable_request_txn();
  epb::Compare* ic = inner->add_compare();
  ic->set_key("b");
  ic->set_target(epb::Compare::MOD);
  ic->set_result(epb::Compare::LESS);
  ic->set_mod_revision(4);  // b's is 3
  inner->add_success()->mutable_request_delete_range()->set_key("b");
  inner->mutable_success(0)->mutable_request_delete_range()->set_prev_kv(true);
  inner->add_failure()->mutable_request_range()->set_key("b");
  t.add_success()->mutable_request_range()->set_key("a");
  epb::TxnResponse qr, er;
  ASSERT_TRUE(q_follower_->kv->Txn(Ctx().get(), t, &qr).ok());
  ASSERT_TRUE(e_->kv->Txn(Ctx().get(), t, &er).ok());
  EXPECT_TRUE(qr.succeeded());
  ASSERT_EQ(qr.responses_size(), 3);
  EXPECT_EQ(qr.responses(0).response_put().prev_kv().value(), "1");
  EXPECT_EQ(qr.responses(1)
                .response_txn()
                .responses(0)
                .response_delete_range()
                .deleted(),
            1);
  // Equal apart from the outer header's ids and term.
  for (epb::TxnResponse* r : {&qr, &er}) {
    r->mutable_header()->clear_cluster_id();
    r->mutable_header()->clear_member_id();
    r->mutable_header()->clear_raft_term();
  }
  EXPECT_EQ(qr.ShortDebugString(), er.ShortDebugString());
  // Filters on a range: the same keys and count.
  epb::RangeRequest r;
  r.set_key(std::string(1, '\0'));  // every key
  r.set_range_end(std::string(1, '\0'));
  r.set_min_mod_revision(4);
  epb::RangeResponse qg, eg;
  ASSERT_TRUE(q_->kv->Range(Ctx().get(), r, &qg).ok());
  ASSERT_TRUE(e_->kv->Range(Ctx().get(), r, &eg).ok());
  qg.clear_header();
  eg.clear_header();
  EXPECT_EQ(qg.ShortDebugString(), eg.ShortDebugString());
}

// The Lock service: a second Lock waits until the first is unlocked; the
// keys are etcd's ("NAME/" and the lease in hex).
TEST_F(EtcdApiTest, LockWaitsForTheHolderAndUnlockHandsItOver) {
  const int64_t l1 = Grant(*q_, 30), l2 = Grant(*q_, 30);
  v3lockpb::LockRequest req;
  req.set_name("res");
  // Without a lease the key would outlive its holder: refused.
  v3lockpb::LockResponse none;
  EXPECT_EQ(q_->lock->Lock(Ctx().get(), req, &none).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  req.set_lease(l1);
  v3lockpb::LockResponse first;
  ASSERT_TRUE(q_->lock->Lock(Ctx().get(), req, &first).ok());
  EXPECT_EQ(first.key(), absl::StrCat("res/", absl::Hex(l1)));
  req.set_lease(l2);
  v3lockpb::LockResponse second;
  grpc::Status second_status;
  std::atomic<bool> second_done{false};
  std::thread waiter([&] {
    second_status =
        q_follower_->lock->Lock(Ctx(absl::Seconds(30)).get(), req, &second);
    second_done = true;
  });
  // The second has entered (two keys) and waits.
  ASSERT_TRUE(bench::Await([&] {
    epb::RangeRequest r;
    r.set_key("res/");
    r.set_range_end("res0");
    r.set_count_only(true);
    epb::RangeResponse resp;
    return q_->kv->Range(Ctx().get(), r, &resp).ok() && resp.count() == 2;
  }));
  EXPECT_FALSE(second_done.load());
  v3lockpb::UnlockRequest un;
  un.set_key(first.key());
  v3lockpb::UnlockResponse unlocked;
  ASSERT_TRUE(q_->lock->Unlock(Ctx().get(), un, &unlocked).ok());
  waiter.join();
  ASSERT_TRUE(second_status.ok()) << second_status.error_message();
  EXPECT_EQ(second.key(), absl::StrCat("res/", absl::Hex(l2)));
}

// The Election service: campaign, leader, proclaim, observe, resign.
TEST_F(EtcdApiTest, ElectionCampaignProclaimObserveAndResign) {
  for (Stubs* s : {q_.get(), e_.get()}) {
    const bool quorate = s == q_.get();
    const int64_t l1 = Grant(*s, 30), l2 = Grant(*s, 30);
    v3electionpb::LeaderRequest who;
    who.set_name("el");
    v3electionpb::LeaderResponse none;
    const grpc::Status no_leader = s->election->Leader(Ctx().get(), who, &none);
    EXPECT_FALSE(no_leader.ok());
    EXPECT_EQ(no_leader.error_message(), "election: no leader");

    // An observer from the start.
    auto observe_ctx = Ctx(absl::Seconds(30));
    auto observer = s->election->Observe(observe_ctx.get(), who);

    v3electionpb::CampaignRequest c1;
    c1.set_name("el");
    c1.set_lease(l1);
    c1.set_value("one");
    v3electionpb::CampaignResponse won;
    ASSERT_TRUE(s->election->Campaign(Ctx().get(), c1, &won).ok());
    EXPECT_EQ(won.leader().key(), absl::StrCat("el/", absl::Hex(l1)));
    v3electionpb::LeaderResponse leader;
    ASSERT_TRUE(s->election->Leader(Ctx().get(), who, &leader).ok());
    EXPECT_EQ(leader.kv().value(), "one");
    EXPECT_EQ(leader.kv().create_revision(), won.leader().rev());

    v3electionpb::CampaignRequest c2 = c1;
    c2.set_lease(l2);
    c2.set_value("two");
    v3electionpb::CampaignResponse won2;
    grpc::Status s2;
    std::thread second([&] {
      s2 = s->election->Campaign(Ctx(absl::Seconds(30)).get(), c2, &won2);
    });
    v3electionpb::ProclaimRequest p;
    *p.mutable_leader() = won.leader();
    p.set_value("one-b");
    v3electionpb::ProclaimResponse proclaimed;
    ASSERT_TRUE(s->election->Proclaim(Ctx().get(), p, &proclaimed).ok());
    v3electionpb::ResignRequest resign;
    *resign.mutable_leader() = won.leader();
    v3electionpb::ResignResponse resigned;
    ASSERT_TRUE(s->election->Resign(Ctx().get(), resign, &resigned).ok());
    second.join();
    ASSERT_TRUE(s2.ok()) << s2.error_message();
    EXPECT_EQ(won2.leader().key(), absl::StrCat("el/", absl::Hex(l2)));
    // A proclaim by the one who resigned: not the leader.
    p.set_value("late");
    EXPECT_FALSE(s->election->Proclaim(Ctx().get(), p, &proclaimed).ok());

    std::vector<std::string> seen;
    v3electionpb::LeaderResponse o;
    while (seen.size() < 3 && observer->Read(&o))
      seen.push_back(o.kv().value());
    observe_ctx->TryCancel();
    (void)observer->Finish();
    EXPECT_EQ(seen, (std::vector<std::string>{"one", "one-b", "two"}))
        << (quorate ? "quorate" : "etcd");
  }
}

// Watch: server-chosen ids from 0, filters, a progress request, a cancel,
// and a watch from a compacted revision.
TEST_F(EtcdApiTest, WatchIdsFiltersProgressCancelAndCompaction) {
  for (Stubs* s : {q_.get(), e_.get()}) {
    const std::string who = s == q_.get() ? "quorate" : "etcd";
    for (int i = 0; i < 4; ++i) Put(*s, "w", absl::StrCat(i));  // 2..5
    auto ctx = Ctx(absl::Seconds(30));
    auto stream = s->watch->Watch(ctx.get());
    epb::WatchRequest create;
    create.mutable_create_request()->set_key("w");
    create.mutable_create_request()->set_start_revision(3);
    create.mutable_create_request()->add_filters(
        epb::WatchCreateRequest::NODELETE);
    ASSERT_TRUE(stream->Write(create));
    epb::WatchResponse r;
    ASSERT_TRUE(stream->Read(&r));
    EXPECT_TRUE(r.created()) << who;
    EXPECT_EQ(r.watch_id(), 0) << who;
    std::vector<int64_t> revisions;
    while (revisions.size() < 3 && stream->Read(&r)) {
      for (const mvccpb::Event& e : r.events()) {
        revisions.push_back(e.kv().mod_revision());
      }
    }
    EXPECT_EQ(revisions, (std::vector<int64_t>{3, 4, 5})) << who;
    // A second watcher gets the next id.
    create.mutable_create_request()->set_start_revision(0);
    ASSERT_TRUE(stream->Write(create));
    ASSERT_TRUE(stream->Read(&r));
    EXPECT_TRUE(r.created()) << who;
    EXPECT_EQ(r.watch_id(), 1) << who;
    // The delete is filtered out; the next put arrives.
    epb::DeleteRangeRequest del;
    del.set_key("w");
    epb::DeleteRangeResponse deleted;
    ASSERT_TRUE(s->kv->DeleteRange(Ctx().get(), del, &deleted).ok());
    Put(*s, "w", "after");
    std::vector<std::string> values;
    while (values.size() < 2 && stream->Read(&r)) {
      for (const mvccpb::Event& e : r.events()) {
        EXPECT_EQ(e.type(), mvccpb::Event::PUT) << who;
        values.push_back(absl::StrCat(r.watch_id(), ":", e.kv().value()));
      }
    }
    std::sort(values.begin(), values.end());
    EXPECT_EQ(values, (std::vector<std::string>{"0:after", "1:after"})) << who;
    // Cancel one.
    epb::WatchRequest cancel;
    cancel.mutable_cancel_request()->set_watch_id(1);
    ASSERT_TRUE(stream->Write(cancel));
    ASSERT_TRUE(stream->Read(&r));
    EXPECT_TRUE(r.canceled()) << who;
    EXPECT_EQ(r.watch_id(), 1) << who;
    ctx->TryCancel();
    (void)stream->Finish();

    // Compacted: created, then canceled with the compact revision.
    epb::CompactionRequest compact;
    compact.set_revision(5);
    epb::CompactionResponse compacted;
    ASSERT_TRUE(s->kv->Compact(Ctx().get(), compact, &compacted).ok()) << who;
    auto ctx2 = Ctx(absl::Seconds(30));
    auto stream2 = s->watch->Watch(ctx2.get());
    create.mutable_create_request()->set_start_revision(2);
    create.mutable_create_request()->clear_filters();
    ASSERT_TRUE(stream2->Write(create));
    bool canceled = false;
    int64_t restart = 0;
    while (!canceled && stream2->Read(&r)) {
      if (r.canceled()) {
        canceled = true;
        restart = r.compact_revision();
        EXPECT_EQ(restart, 5) << who;
      }
    }
    EXPECT_TRUE(canceled) << who;
    // etcd's clients restart a compacted watch from compact_revision: it
    // must be accepted, and deliver that revision's events.
    create.mutable_create_request()->set_start_revision(restart);
    ASSERT_TRUE(stream2->Write(create));
    std::vector<int64_t> again;
    while (again.size() < 1 && stream2->Read(&r)) {
      EXPECT_FALSE(r.canceled()) << who << ": " << r.ShortDebugString();
      if (r.canceled()) break;
      for (const mvccpb::Event& e : r.events()) {
        again.push_back(e.kv().mod_revision());
      }
    }
    ASSERT_FALSE(again.empty()) << who;
    EXPECT_EQ(again.front(), 5) << who;  // then 6 and 7, maybe at once
    ctx2->TryCancel();
    (void)stream2->Finish();
  }
}

// Cluster and Maintenance: the members with etcd-style ids, a learner
// added and promoted... refused while it has not caught up (it never
// started), removed; status, alarms, defragment, snapshot, hash.
TEST_F(EtcdApiTest, ClusterAndMaintenanceCalls) {
  epb::MemberListResponse list;
  ASSERT_TRUE(q_follower_->cluster->MemberList(Ctx().get(), {}, &list).ok());
  ASSERT_EQ(list.members_size(), 3);
  epb::StatusResponse status;
  ASSERT_TRUE(q_->maintenance->Status(Ctx().get(), {}, &status).ok());
  EXPECT_EQ(status.leader(), status.header().member_id());
  bool found_self = false;
  for (const epb::Member& m : list.members()) {
    found_self = found_self || m.id() == status.header().member_id();
    EXPECT_EQ(m.id(), api::EtcdId(m.name()));
  }
  EXPECT_TRUE(found_self);

  bench::PortReservation spare;
  epb::MemberAddRequest add;
  add.add_peerurls("http://" + spare.address());
  add.set_islearner(true);
  epb::MemberAddResponse added;
  ASSERT_TRUE(q_->cluster->MemberAdd(Ctx().get(), add, &added).ok());
  EXPECT_TRUE(added.member().islearner());
  EXPECT_EQ(added.members_size(), 4);
  epb::MemberPromoteRequest promote;
  promote.set_id(added.member().id());
  epb::MemberPromoteResponse promoted;
  const grpc::Status not_ready =
      q_->cluster->MemberPromote(Ctx().get(), promote, &promoted);
  EXPECT_EQ(not_ready.error_code(), grpc::StatusCode::FAILED_PRECONDITION)
      << not_ready.error_message();
  epb::MemberRemoveRequest remove;
  remove.set_id(added.member().id());
  epb::MemberRemoveResponse removed;
  ASSERT_TRUE(q_->cluster->MemberRemove(Ctx().get(), remove, &removed).ok());
  EXPECT_EQ(removed.members_size(), 3);
  remove.set_id(12345);
  EXPECT_EQ(
      q_->cluster->MemberRemove(Ctx().get(), remove, &removed).error_code(),
      grpc::StatusCode::NOT_FOUND);

  epb::AlarmResponse alarms;
  EXPECT_TRUE(q_->maintenance->Alarm(Ctx().get(), {}, &alarms).ok());
  EXPECT_EQ(alarms.alarms_size(), 0);
  epb::DefragmentResponse defrag;
  EXPECT_TRUE(q_->maintenance->Defragment(Ctx().get(), {}, &defrag).ok());
  epb::HashKVResponse hash;
  EXPECT_EQ(q_->maintenance->HashKV(Ctx().get(), {}, &hash).error_code(),
            grpc::StatusCode::UNIMPLEMENTED);

  // A snapshot: Quorate's own snapshot file, whole.
  auto ctx = Ctx(absl::Seconds(30));
  auto snap = q_->maintenance->Snapshot(ctx.get(), {});
  epb::SnapshotResponse chunk;
  uint64_t bytes = 0;
  uint64_t last_remaining = 1;
  while (snap->Read(&chunk)) {
    bytes += chunk.blob().size();
    last_remaining = chunk.remaining_bytes();
  }
  ASSERT_TRUE(snap->Finish().ok());
  EXPECT_GT(bytes, 0u);
  EXPECT_EQ(last_remaining, 0u);

  // Leadership moves where MoveLeader says.
  const int leader = quorate_->Leader();
  const int next = (leader + 1) % bench::kMembers;
  epb::MoveLeaderRequest move;
  move.set_targetid(api::EtcdId(absl::StrCat("n", next)));
  epb::MoveLeaderResponse moved;
  ASSERT_TRUE(q_->maintenance->MoveLeader(Ctx().get(), move, &moved).ok());
  // The target leads once MoveLeader answers (it may lose the lead again
  // later, on a slow machine): its own status says it was elected.
  Stubs target(quorate_->ClientAddress(next));
  epb::StatusResponse after;
  ASSERT_TRUE(target.maintenance->Status(Ctx().get(), {}, &after).ok());
  EXPECT_GT(after.raftterm(), status.raftterm());
  EXPECT_TRUE(after.leader() == move.targetid() ||
              after.raftterm() > status.raftterm() + 1)
      << after.ShortDebugString();
}

}  // namespace
}  // namespace quorate
