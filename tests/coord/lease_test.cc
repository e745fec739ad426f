// Leases: the state machine's lease commands, the leader's Lessor and the
// holder's LeaseHolder, each on its own (the simulator runs them together).
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "coord/kv.h"
#include "coord/lease_holder.h"
#include "coord/lessor.h"

namespace quorate::coord {
namespace {

constexpr int64_t kMs = 1'000'000;

class LeaseStoreTest : public ::testing::Test {
 protected:
  LeaseStoreTest() {
    store_.SetLeaseListener([this](const std::vector<LeaseEvent>& events) {
      events_.insert(events_.end(), events.begin(), events.end());
    });
  }
  client::KvResult Run(const client::KvCommand& cmd) {
    client::KvResult r;
    EXPECT_TRUE(
        r.ParseFromString(store_.Apply(++index_, cmd.SerializeAsString())));
    return r;
  }
  client::KvResult Grant(int64_t ttl_ms, uint64_t id = 0, uint64_t client = 0,
                         uint32_t max_per_client = 0) {
    client::KvCommand c;
    c.mutable_op()->set_client(client);
    c.mutable_op()->set_seq(++seq_);
    c.mutable_lease_grant()->set_ttl_ms(ttl_ms);
    c.mutable_lease_grant()->set_id(id);
    c.mutable_limits()->set_max_leases_per_client(max_per_client);
    return Run(c);
  }
  client::KvResult Put(const std::string& key, uint64_t lease,
                       uint32_t max_keys = 0) {
    client::KvCommand c;
    c.mutable_put()->set_key(key);
    c.mutable_put()->set_value("v-" + key);
    c.mutable_put()->set_lease(lease);
    c.mutable_limits()->set_max_keys_per_lease(max_keys);
    return Run(c);
  }
  client::KvResult Revoke(uint64_t id) {
    client::KvCommand c;
    c.mutable_lease_revoke()->set_id(id);
    return Run(c);
  }
  client::KvResult Expire(std::vector<uint64_t> ids) {
    client::KvCommand c;
    for (uint64_t id : ids) c.mutable_lease_expire()->add_ids(id);
    return Run(c);
  }

  KvStore store_;
  uint64_t index_ = 0;
  uint64_t seq_ = 0;
  std::vector<LeaseEvent> events_;
};

TEST_F(LeaseStoreTest, GrantAttachRevoke_DeletesTheKeysAtOneRevision) {
  const client::KvResult g = Grant(5000);
  ASSERT_EQ(g.code(), 0) << g.message();
  const uint64_t id = g.lease_id();
  EXPECT_NE(id, 0u);
  EXPECT_EQ(g.lease_ttl_ms(), 5000);
  ASSERT_EQ(Put("a", id).code(), 0);
  ASSERT_EQ(Put("b", id).code(), 0);
  ASSERT_EQ(Put("c", 0).code(), 0);
  EXPECT_EQ(store_.Get("a")->lease, id);
  std::optional<KvStore::LeaseInfo> info = store_.GetLease(id, true);
  ASSERT_TRUE(info.has_value());
  EXPECT_EQ(info->keys, (std::vector<std::string>{"a", "b"}));
  const uint64_t before = store_.revision();
  const client::KvResult r = Revoke(id);
  ASSERT_EQ(r.code(), 0);
  EXPECT_EQ(r.revision(), before + 1);
  EXPECT_EQ(store_.revision(), before + 1);
  EXPECT_FALSE(store_.Get("a").has_value());
  EXPECT_FALSE(store_.Get("b").has_value());
  EXPECT_TRUE(store_.Get("c").has_value());
  EXPECT_FALSE(store_.GetLease(id, false).has_value());
  EXPECT_EQ(Revoke(id).code(), static_cast<int>(absl::StatusCode::kNotFound));
  ASSERT_GE(events_.size(), 2u);
  EXPECT_EQ(events_.front().kind, LeaseEvent::Kind::kGranted);
  EXPECT_EQ(events_.back().kind, LeaseEvent::Kind::kRemoved);
  EXPECT_EQ(events_.back().id, id);
}

// One expiry entry ends several leases: their keys all go at one new
// revision, as every entry that writes takes exactly one (found by
// fuzz_kv_apply: the revision rose once per lease).
TEST_F(LeaseStoreTest, ExpiringSeveralLeases_TakesOneRevision) {
  const uint64_t a = Grant(5000).lease_id();
  const uint64_t b = Grant(5000).lease_id();
  const uint64_t empty = Grant(5000).lease_id();
  ASSERT_EQ(Put("a", a).code(), 0);
  ASSERT_EQ(Put("b", b).code(), 0);
  const uint64_t before = store_.revision();
  const client::KvResult r = Expire({a, empty, b, 424242});
  ASSERT_EQ(r.code(), 0) << r.message();
  EXPECT_EQ(r.revision(), before + 1);
  EXPECT_EQ(store_.revision(), before + 1);
  EXPECT_FALSE(store_.Get("a").has_value());
  EXPECT_FALSE(store_.Get("b").has_value());
  EXPECT_FALSE(store_.GetLease(empty, false).has_value());
  // Leases without keys end without a new revision.
  const uint64_t c = Grant(5000).lease_id();
  EXPECT_EQ(Expire({c}).revision(), before + 1);
  EXPECT_EQ(store_.revision(), before + 1);
}

TEST_F(LeaseStoreTest, PutOnAMissingLease_IsRefusedAndChangesNothing) {
  const uint64_t rev = store_.revision();
  const client::KvResult r = Put("a", 12345);
  EXPECT_EQ(r.code(), static_cast<int>(absl::StatusCode::kNotFound));
  EXPECT_NE(r.message().find("lease 12345"), std::string::npos);
  EXPECT_FALSE(store_.Get("a").has_value());
  EXPECT_EQ(store_.revision(), rev);
  // A transaction that would attach one key to a missing lease does
  // nothing at all.
  client::KvCommand c;
  auto* ok = c.mutable_txn()->add_success()->mutable_put();
  ok->set_key("x");
  auto* bad = c.mutable_txn()->add_success()->mutable_put();
  bad->set_key("y");
  bad->set_lease(999);
  EXPECT_EQ(Run(c).code(), static_cast<int>(absl::StatusCode::kNotFound));
  EXPECT_FALSE(store_.Get("x").has_value());
  EXPECT_EQ(store_.revision(), rev);
}

TEST_F(LeaseStoreTest, PutWithoutLeaseOrDelete_DetachesTheKey) {
  const uint64_t id = Grant(5000).lease_id();
  ASSERT_EQ(Put("a", id).code(), 0);
  ASSERT_EQ(Put("b", id).code(), 0);
  ASSERT_EQ(Put("a", 0).code(), 0);  // detached, kept
  client::KvCommand del;
  del.mutable_del()->set_key("b");
  ASSERT_EQ(Run(del).code(), 0);
  EXPECT_EQ(store_.GetLease(id, true)->key_count, 0u);
  ASSERT_EQ(Expire({id}).code(), 0);
  EXPECT_TRUE(store_.Get("a").has_value());
  EXPECT_EQ(store_.Get("a")->lease, 0u);
}

TEST_F(LeaseStoreTest, Limits_AtTheEdge) {
  // Keys per lease: the limit-th key is attached, the next is refused.
  const uint64_t id = Grant(5000).lease_id();
  ASSERT_EQ(Put("k1", id, 2).code(), 0);
  ASSERT_EQ(Put("k2", id, 2).code(), 0);
  ASSERT_EQ(Put("k2", id, 2).code(), 0);  // already attached: no new key
  const client::KvResult over = Put("k3", id, 2);
  EXPECT_EQ(over.code(),
            static_cast<int>(absl::StatusCode::kResourceExhausted));
  EXPECT_NE(over.message().find("max_keys_per_lease"), std::string::npos);
  EXPECT_FALSE(store_.Get("k3").has_value());
  // Leases per client.
  EXPECT_EQ(Grant(5000, 0, 7, 2).code(), 0);
  EXPECT_EQ(Grant(5000, 0, 7, 2).code(), 0);
  const client::KvResult third = Grant(5000, 0, 7, 2);
  EXPECT_EQ(third.code(),
            static_cast<int>(absl::StatusCode::kResourceExhausted));
  EXPECT_NE(third.message().find("max_leases_per_client"), std::string::npos);
  EXPECT_EQ(Grant(5000, 0, 8, 2).code(), 0);  // another client
  // TTL ceilings and an id in use.
  EXPECT_EQ(Grant(0).code(),
            static_cast<int>(absl::StatusCode::kInvalidArgument));
  EXPECT_EQ(Grant(kMaxLeaseTtlMs + 1).code(),
            static_cast<int>(absl::StatusCode::kInvalidArgument));
  EXPECT_EQ(Grant(kMaxLeaseTtlMs).code(), 0);
  EXPECT_EQ(Grant(5000, id).code(),
            static_cast<int>(absl::StatusCode::kAlreadyExists));
}

TEST_F(LeaseStoreTest, MemberTtlLimits_NameTheFloorAndTheCeiling) {
  LeaseLimits limits;
  limits.min_ttl_ms = 1000;
  limits.max_ttl_ms = 60000;
  EXPECT_TRUE(CheckLeaseTtl(1000, limits).ok());
  EXPECT_TRUE(CheckLeaseTtl(60000, limits).ok());
  const absl::Status low = CheckLeaseTtl(999, limits);
  EXPECT_EQ(low.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(low.message().find("floor is 1000"), std::string::npos);
  const absl::Status high = CheckLeaseTtl(60001, limits);
  EXPECT_NE(high.message().find("--max_lease_ttl"), std::string::npos);
}

TEST_F(LeaseStoreTest, GrantIds_AreTheSameOnEveryMember) {
  KvStore other;
  client::KvCommand c;
  c.mutable_lease_grant()->set_ttl_ms(3000);
  const std::string bytes = c.SerializeAsString();
  client::KvResult a, b;
  ASSERT_TRUE(a.ParseFromString(store_.Apply(42, bytes)));
  ASSERT_TRUE(b.ParseFromString(other.Apply(42, bytes)));
  EXPECT_EQ(a.lease_id(), 42u);
  EXPECT_EQ(a.lease_id(), b.lease_id());
  // A client took the next index's id: the grant moves on to a free one.
  c.mutable_lease_grant()->set_id(43);
  ASSERT_EQ(Run(c).code(), 0);  // index 1, id 43
  c.mutable_lease_grant()->set_id(0);
  client::KvResult d;
  ASSERT_TRUE(d.ParseFromString(store_.Apply(43, c.SerializeAsString())));
  EXPECT_EQ(d.lease_id(), 44u);
}

TEST_F(LeaseStoreTest, Checkpoints_AreRecordedClearedAndSnapshotted) {
  const uint64_t id = Grant(5000).lease_id();
  ASSERT_EQ(Put("a", id).code(), 0);
  client::KvCommand c;
  c.mutable_lease_checkpoint()->add_ids(id);
  c.mutable_lease_checkpoint()->add_remaining_ms(1200);
  ASSERT_EQ(Run(c).code(), 0);
  EXPECT_EQ(store_.GetLease(id, false)->checkpoint_ms, 1200);
  // Snapshot round trip: leases, their TTL, checkpoint and keys.
  KvStore restored;
  std::vector<LeaseEvent> seen;
  restored.SetLeaseListener([&seen](const std::vector<LeaseEvent>& e) {
    seen.insert(seen.end(), e.begin(), e.end());
  });
  ASSERT_TRUE(restored.Restore(store_.Snapshot()()).ok());
  std::optional<KvStore::LeaseInfo> info = restored.GetLease(id, true);
  ASSERT_TRUE(info.has_value());
  EXPECT_EQ(info->ttl_ms, 5000);
  EXPECT_EQ(info->checkpoint_ms, 1200);
  EXPECT_EQ(info->keys, std::vector<std::string>{"a"});
  ASSERT_EQ(seen.size(), 2u);
  EXPECT_EQ(seen[0].kind, LeaseEvent::Kind::kReset);
  EXPECT_EQ(seen[1].checkpoint_ms, 1200);
  // The restored store expires the lease with its key.
  client::KvCommand e;
  e.mutable_lease_expire()->add_ids(id);
  ASSERT_TRUE(client::KvResult().ParseFromString(
      restored.Apply(100, e.SerializeAsString())));
  EXPECT_FALSE(restored.Get("a").has_value());
  // Cleared.
  client::KvCommand clear;
  clear.mutable_lease_checkpoint()->add_clear(id);
  ASSERT_EQ(Run(clear).code(), 0);
  EXPECT_EQ(store_.GetLease(id, false)->checkpoint_ms, -1);
}

TEST_F(LeaseStoreTest, Restore_RefusesAKeyOnALeaseItDoesNotHold) {
  const uint64_t id = Grant(5000).lease_id();
  ASSERT_EQ(Put("a", id).code(), 0);
  client::KvSnapshot snap;
  ASSERT_TRUE(snap.ParseFromString(store_.Snapshot()()));
  snap.clear_leases();
  KvStore other;
  const absl::Status s = other.Restore(snap.SerializeAsString());
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss);
  EXPECT_NE(s.message().find("lease"), std::string::npos);
}

// --- The leader's Lessor. ---

// A new leader's probe round: its predecessors' entries are applied.
void CatchUp(Lessor& lessor, uint64_t term) {
  std::optional<Lessor::Round> probe = lessor.TakeRound();
  ASSERT_TRUE(probe.has_value());
  EXPECT_TRUE(
      lessor.RoundDone(probe->id, node::Confirmation{term, 1, 1}).empty());
  EXPECT_FALSE(lessor.TakeRound().has_value());
}

class LessorTest : public ::testing::Test {
 protected:
  void Grant(uint64_t id, int64_t ttl_ms, int64_t checkpoint_ms = -1) {
    lessor_.OnLeaseEvents(
        {LeaseEvent{LeaseEvent::Kind::kGranted, id, ttl_ms, checkpoint_ms}},
        now_);
  }
  node::Confirmation Confirmed(uint64_t term, uint64_t term_start = 1,
                               uint64_t applied = 5) {
    return node::Confirmation{term, term_start, applied};
  }
  LessorOptions options_;
  Lessor lessor_{options_};
  int64_t now_ = 1'000 * kMs;
};

TEST_F(LessorTest, RenewalIsAnsweredOnlyAfterARoundThatStartedAfterIt) {
  Grant(1, 3000);
  lessor_.BecomeLeader(2, now_);
  ASSERT_TRUE(lessor_.Renew(1, 11, now_).ok());
  std::optional<Lessor::Round> r1 = lessor_.TakeRound();
  ASSERT_TRUE(r1.has_value());
  EXPECT_TRUE(r1->clear.empty());
  // A renewal arriving while r1 is in flight waits for the next round.
  ASSERT_TRUE(lessor_.Renew(1, 12, now_ + kMs).ok());
  EXPECT_FALSE(lessor_.TakeRound().has_value());
  std::vector<Lessor::Answer> a = lessor_.RoundDone(r1->id, Confirmed(2));
  ASSERT_EQ(a.size(), 1u);
  EXPECT_EQ(a[0].cookie, 11u);
  EXPECT_TRUE(a[0].status.ok());
  EXPECT_EQ(a[0].ttl_ms, 3000);
  EXPECT_TRUE(lessor_.WantsRound());
  std::optional<Lessor::Round> r2 = lessor_.TakeRound();
  ASSERT_TRUE(r2.has_value());
  EXPECT_FALSE(lessor_.WantsRound());  // one round at a time
  a = lessor_.RoundDone(r2->id, Confirmed(2));
  ASSERT_EQ(a.size(), 1u);
  EXPECT_EQ(a[0].cookie, 12u);
  // Nothing pending, caught up: no round wanted (the keeper then sleeps;
  // it once spun here, found by the overload test under TSan).
  EXPECT_FALSE(lessor_.WantsRound());
  EXPECT_FALSE(lessor_.TakeRound().has_value());
}

TEST_F(LessorTest, DeposedLeader_RenewsNothing) {
  Grant(1, 3000);
  lessor_.BecomeLeader(2, now_);
  ASSERT_TRUE(lessor_.Renew(1, 1, now_).ok());
  std::optional<Lessor::Round> r = lessor_.TakeRound();
  // The round fails (no quorum), or comes back from a newer term.
  std::vector<Lessor::Answer> a = lessor_.RoundDone(
      r->id, absl::DeadlineExceededError("no quorum answered"));
  EXPECT_EQ(a[0].status.code(), absl::StatusCode::kDeadlineExceeded);
  ASSERT_TRUE(lessor_.Renew(1, 2, now_).ok());
  r = lessor_.TakeRound();
  a = lessor_.RoundDone(r->id, Confirmed(3));
  EXPECT_EQ(a[0].status.code(), absl::StatusCode::kUnavailable);
  // A leader whose predecessors' entries are not applied yet waits.
  ASSERT_TRUE(lessor_.Renew(1, 3, now_).ok());
  r = lessor_.TakeRound();
  a = lessor_.RoundDone(r->id, Confirmed(2, /*term_start=*/9, /*applied=*/8));
  EXPECT_EQ(a[0].status.code(), absl::StatusCode::kUnavailable);
  // Not the leader at all.
  lessor_.StepDown();
  EXPECT_EQ(lessor_.Renew(1, 4, now_).code(), absl::StatusCode::kUnavailable);
}

TEST_F(LessorTest, BrokenVariant_RenewsWithoutARound) {
  LessorOptions o;
  o.unsafe.renew_without_round = true;
  Lessor broken(o);
  broken.OnLeaseEvents({LeaseEvent{LeaseEvent::Kind::kGranted, 1, 3000, -1}},
                       now_);
  broken.BecomeLeader(2, now_);
  ASSERT_TRUE(broken.Renew(1, 1, now_).ok());
  std::optional<Lessor::Round> r = broken.TakeRound();
  std::vector<Lessor::Answer> a =
      broken.RoundDone(r->id, absl::DeadlineExceededError("no quorum"));
  EXPECT_TRUE(a[0].status.ok());  // what the simulator's checker catches
}

TEST_F(LessorTest, ExpiresOnlyAfterTtlSinceTheLastRenewalItReceived) {
  Grant(1, 3000);
  Grant(2, 3000);
  lessor_.BecomeLeader(2, now_);
  CatchUp(lessor_, 2);
  // A new leader gives the full TTL from its election.
  EXPECT_EQ(lessor_.NextDeadline(), now_ + 1000 * kMs);  // a checkpoint
  EXPECT_TRUE(lessor_.TakeExpired(now_ + 3000 * kMs - 1).empty());
  ASSERT_TRUE(lessor_.Renew(1, 1, now_ + 2000 * kMs).ok());
  EXPECT_EQ(lessor_.TakeExpired(now_ + 3000 * kMs), std::vector<uint64_t>{2});
  // Expiring: renewals refused, and it is not taken twice.
  EXPECT_EQ(lessor_.Renew(2, 2, now_ + 3000 * kMs).code(),
            absl::StatusCode::kNotFound);
  EXPECT_TRUE(lessor_.TakeExpired(now_ + 3000 * kMs).empty());
  // Not applied: taken again, and still refused meanwhile.
  lessor_.ExpiryDone({2}, false);
  EXPECT_EQ(lessor_.TakeExpired(now_ + 3000 * kMs), std::vector<uint64_t>{2});
  EXPECT_EQ(lessor_.TakeExpired(now_ + 5000 * kMs - 1),
            std::vector<uint64_t>{});
  EXPECT_EQ(lessor_.TakeExpired(now_ + 5000 * kMs), std::vector<uint64_t>{1});
  // A renewal in the round of a lease that ended is told so.
  lessor_.OnLeaseEvents({LeaseEvent{LeaseEvent::Kind::kRemoved, 2}}, now_);
  EXPECT_EQ(lessor_.Remaining(2, now_).status().code(),
            absl::StatusCode::kNotFound);
}

TEST_F(LessorTest, Checkpoints_BoundADeadHoldersLeaseAcrossElections) {
  options_.checkpoint_interval_ns = 500 * kMs;
  Lessor lessor(options_);
  lessor.OnLeaseEvents({LeaseEvent{LeaseEvent::Kind::kGranted, 1, 3000, -1}},
                       now_);
  lessor.BecomeLeader(2, now_);
  CatchUp(lessor, 2);
  EXPECT_TRUE(lessor.TakeCheckpoints(now_ + 499 * kMs).ids.empty());
  Lessor::Checkpoint c = lessor.TakeCheckpoints(now_ + 500 * kMs);
  ASSERT_EQ(c.ids, std::vector<uint64_t>{1});
  EXPECT_EQ(c.remaining_ms, std::vector<int64_t>{2500});
  lessor.CheckpointDone(c.ids);
  // Applied on every member; the next leader starts from it.
  lessor.OnLeaseEvents(
      {LeaseEvent{LeaseEvent::Kind::kCheckpoint, 1, 3000, 2500}}, now_);
  lessor.StepDown();
  const int64_t elected = now_ + 900 * kMs;
  lessor.BecomeLeader(3, elected);
  CatchUp(lessor, 3);
  EXPECT_TRUE(lessor.TakeExpired(elected + 2500 * kMs - 1).empty());
  EXPECT_EQ(lessor.TakeExpired(elected + 2500 * kMs), std::vector<uint64_t>{1});
}

// Found by the simulator: a new leader had not applied the clear its
// predecessor committed, took the stale checkpoint for the lease's rest,
// and expired it while its holder counted on a renewal.
TEST_F(LessorTest, NewLeader_WaitsForItsPredecessorsEntriesBeforeExpiring) {
  Grant(1, 3000, /*checkpoint_ms=*/100);  // stale: a clear follows in the log
  lessor_.BecomeLeader(2, now_);
  EXPECT_TRUE(lessor_.TakeExpired(now_ + 200 * kMs).empty());
  EXPECT_TRUE(lessor_.TakeCheckpoints(now_ + 2000 * kMs).ids.empty());
  EXPECT_EQ(lessor_.NextDeadline(), INT64_MAX);
  // The clear is applied, then the probe round says all is.
  lessor_.OnLeaseEvents(
      {LeaseEvent{LeaseEvent::Kind::kCheckpoint, 1, 3000, -1}}, now_);
  std::optional<Lessor::Round> probe = lessor_.TakeRound();
  ASSERT_TRUE(probe.has_value());
  // A round that is not caught up yet changes nothing.
  lessor_.RoundDone(probe->id, node::Confirmation{2, 10, 9});
  EXPECT_TRUE(lessor_.TakeExpired(now_ + 200 * kMs).empty());
  CatchUp(lessor_, 2);
  EXPECT_TRUE(lessor_.TakeExpired(now_ + 3000 * kMs - 1).empty());
  EXPECT_EQ(lessor_.TakeExpired(now_ + 3000 * kMs), std::vector<uint64_t>{1});
}

TEST_F(LessorTest, RenewalOfACheckpointedLease_WaitsForTheClear) {
  options_.checkpoint_interval_ns = 500 * kMs;
  Lessor lessor(options_);
  lessor.OnLeaseEvents({LeaseEvent{LeaseEvent::Kind::kGranted, 1, 3000, -1}},
                       now_);
  lessor.BecomeLeader(2, now_);
  CatchUp(lessor, 2);
  Lessor::Checkpoint c = lessor.TakeCheckpoints(now_ + 600 * kMs);
  ASSERT_EQ(c.ids.size(), 1u);
  // The holder comes back while the checkpoint is in flight.
  ASSERT_TRUE(lessor.Renew(1, 7, now_ + 601 * kMs).ok());
  std::optional<Lessor::Round> r = lessor.TakeRound();
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->clear, std::vector<uint64_t>{1});
  // The checkpoint applies, then the clear.
  lessor.CheckpointDone(c.ids);
  lessor.OnLeaseEvents(
      {LeaseEvent{LeaseEvent::Kind::kCheckpoint, 1, 3000, 2400}}, now_);
  lessor.OnLeaseEvents({LeaseEvent{LeaseEvent::Kind::kCheckpoint, 1, 3000, -1}},
                       now_);
  std::vector<Lessor::Answer> a =
      lessor.RoundDone(r->id, node::Confirmation{2, 0, 20});
  ASSERT_EQ(a.size(), 1u);
  EXPECT_TRUE(a[0].status.ok()) << a[0].status;
  // Had the clear not been applied, the renewal would not be answered OK.
  lessor.OnLeaseEvents(
      {LeaseEvent{LeaseEvent::Kind::kCheckpoint, 1, 3000, 2400}}, now_);
  ASSERT_TRUE(lessor.Renew(1, 8, now_ + 700 * kMs).ok());
  r = lessor.TakeRound();
  a = lessor.RoundDone(r->id, node::Confirmation{2, 0, 21});
  EXPECT_EQ(a[0].status.code(), absl::StatusCode::kUnavailable);
}

// --- The holder. ---

TEST(LeaseHolderTest, DeadlineCountsFromTheSendNotTheReply) {
  HolderOptions o;
  o.max_clock_drift = 0.01;
  o.margin_ns = 50 * kMs;
  const int64_t w = HolderWindow(3000, o);
  EXPECT_EQ(w, static_cast<int64_t>(3000e6 * 0.99 / 1.01) - 50 * kMs);
  LeaseHolder h(o, 3000, /*sent_ns=*/0);
  EXPECT_TRUE(h.Valid(w - 1));
  EXPECT_FALSE(h.Valid(w));
  const uint64_t cookie = h.RenewalSent(1000 * kMs);
  h.Answered(cookie, absl::OkStatus(), 3000, /*now_ns=*/1800 * kMs);
  EXPECT_EQ(h.deadline_ns(), 1000 * kMs + w);
  // The broken variant counts from the reply: 800 ms too long here.
  o.unsafe.deadline_from_reply = true;
  LeaseHolder broken(o, 3000, 0);
  const uint64_t c2 = broken.RenewalSent(1000 * kMs);
  broken.Answered(c2, absl::OkStatus(), 3000, 1800 * kMs);
  EXPECT_EQ(broken.deadline_ns(), 1800 * kMs + w);
}

TEST(LeaseHolderTest, FailingRenewalsBringJeopardyThenExpiry) {
  HolderOptions o;
  LeaseHolder h(o, 3000, 0);
  const int64_t w = h.window_ns();
  EXPECT_FALSE(h.InJeopardy(0));
  EXPECT_EQ(h.NextRenewalAt(), w / 3);
  const uint64_t c = h.RenewalSent(w / 3);
  h.Answered(c, absl::UnavailableError("no leader"), 0, w / 3 + kMs);
  EXPECT_EQ(h.deadline_ns(), w);          // unchanged
  EXPECT_FALSE(h.InJeopardy(w - w / 2));  // half a window left
  EXPECT_TRUE(h.InJeopardy(w - w / 2 + 1));
  EXPECT_TRUE(h.Valid(w - 1));
  EXPECT_FALSE(h.Valid(w));
  EXPECT_FALSE(h.InJeopardy(w));
}

TEST(LeaseHolderTest, NotFound_EndsTheLeaseForGood) {
  LeaseHolder h(HolderOptions{}, 3000, 0);
  const uint64_t a = h.RenewalSent(kMs);
  const uint64_t b = h.RenewalSent(2 * kMs);
  h.Answered(a, absl::NotFoundError("lease 1 does not exist"), 0, 3 * kMs);
  EXPECT_FALSE(h.Valid(4 * kMs));
  h.Answered(b, absl::OkStatus(), 3000, 5 * kMs);  // too late
  EXPECT_FALSE(h.Valid(6 * kMs));
  EXPECT_TRUE(h.ended());
}

}  // namespace
}  // namespace quorate::coord
