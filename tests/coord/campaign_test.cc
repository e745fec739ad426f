// Elections and locks on the real state machine: the campaign's
// transactions applied to a KvStore, and what ReadStanding makes of them.
#include "coord/campaign.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "coord/kv.h"
#include "coord/lessor.h"

namespace quorate::coord {
namespace {

class CampaignTest : public ::testing::Test {
 protected:
  void SetUp() override {
    prefix_ = *CampaignPrefix(CampaignKind::kLock, "billing");
  }
  client::KvResult Run(const client::KvCommand& cmd) {
    client::KvResult r;
    EXPECT_TRUE(
        r.ParseFromString(store_.Apply(++index_, cmd.SerializeAsString())));
    return r;
  }
  uint64_t Grant() {
    client::KvCommand c;
    c.mutable_lease_grant()->set_ttl_ms(5000);
    const client::KvResult r = Run(c);
    EXPECT_EQ(r.code(), 0) << r.message();
    return r.lease_id();
  }
  client::KvResult Txn(const client::TxnRequest& t) {
    client::KvCommand c;
    *c.mutable_txn() = t;
    return Run(c);
  }
  // Enters lease's campaign; its standing.
  Standing Enter(uint64_t lease, const std::string& value = "v") {
    const client::KvResult r =
        Txn(EnterTxn(prefix_, CampaignKey(prefix_, lease), value, lease));
    EXPECT_EQ(r.code(), 0) << r.message();
    absl::StatusOr<Standing> s = ReadStanding(r.txn());
    EXPECT_TRUE(s.ok()) << s.status();
    return *s;
  }
  Standing Look(uint64_t lease) {
    const client::TxnResponse r =
        store_.ReadTxn(StandingTxn(prefix_, CampaignKey(prefix_, lease)));
    absl::StatusOr<Standing> s = ReadStanding(r);
    EXPECT_TRUE(s.ok()) << s.status();
    return *s;
  }

  KvStore store_;
  uint64_t index_ = 0;
  std::string prefix_;
};

TEST_F(CampaignTest, Names) {
  EXPECT_EQ(*CampaignPrefix(CampaignKind::kElection, "leader"),
            "quorate/election/leader/");
  EXPECT_EQ(CampaignKey("quorate/lock/x/", 0xab),
            "quorate/lock/x/00000000000000ab");
  EXPECT_EQ(CampaignFenceName(CampaignKind::kLock, "billing"), "lock/billing");
  for (const char* bad : {"", "a/b", "/"}) {
    EXPECT_EQ(CampaignPrefix(CampaignKind::kLock, bad).status().code(),
              absl::StatusCode::kInvalidArgument)
        << bad;
  }
  EXPECT_EQ(CampaignPrefix(CampaignKind::kLock, std::string("a\0b", 3))
                .status()
                .code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(CampaignTest, FirstLeads_OthersWaitInOrder) {
  const uint64_t a = Grant(), b = Grant(), c = Grant();
  const Standing sa = Enter(a);
  EXPECT_TRUE(sa.present);
  EXPECT_TRUE(sa.leads);
  const Standing sb = Enter(b);
  EXPECT_FALSE(sb.leads);
  EXPECT_EQ(sb.predecessor, CampaignKey(prefix_, a));
  EXPECT_EQ(sb.predecessor_token, sa.token);
  const Standing sc = Enter(c);
  EXPECT_FALSE(sc.leads);
  EXPECT_EQ(sc.predecessor, CampaignKey(prefix_, b));  // not the leader
  EXPECT_LT(sa.token, sb.token);
  EXPECT_LT(sb.token, sc.token);

  // Entering again changes nothing: same key, same token.
  const Standing again = Enter(b, "other");
  EXPECT_EQ(again.token, sb.token);

  // a resigns: b leads, c now waits on b still.
  ASSERT_TRUE(
      Txn(ResignTxn(CampaignKey(prefix_, a), sa.token)).txn().succeeded());
  EXPECT_FALSE(Look(a).present);
  EXPECT_TRUE(Look(b).leads);
  EXPECT_EQ(Look(c).predecessor, CampaignKey(prefix_, b));
}

TEST_F(CampaignTest, AnEndedLeaseHandsOverWithAHigherToken) {
  const uint64_t a = Grant(), b = Grant();
  const Standing sa = Enter(a);
  const Standing sb = Enter(b);
  ASSERT_FALSE(sb.leads);
  EXPECT_EQ(Run(ExpiryCommand({a})).code(), 0);
  const Standing now = Look(b);
  EXPECT_TRUE(now.leads);
  EXPECT_GT(now.token, sa.token);
  // a comes back with a new lease: it queues behind b, with a new token.
  const uint64_t a2 = Grant();
  const Standing sa2 = Enter(a2);
  EXPECT_FALSE(sa2.leads);
  EXPECT_GT(sa2.token, now.token);
}

TEST_F(CampaignTest, AnEndedSessionCannotEnter) {
  const uint64_t a = Grant();
  client::KvCommand revoke;
  revoke.mutable_lease_revoke()->set_id(a);
  EXPECT_EQ(Run(revoke).code(), 0);
  const client::KvResult r =
      Txn(EnterTxn(prefix_, CampaignKey(prefix_, a), "v", a));
  EXPECT_EQ(r.code(), static_cast<int>(absl::StatusCode::kNotFound))
      << r.message();
  EXPECT_FALSE(Look(a).present);
}

TEST_F(CampaignTest, ProclaimAndResignNeedTheSameKey) {
  const uint64_t a = Grant();
  const Standing sa = Enter(a);
  const std::string key = CampaignKey(prefix_, a);
  // A stale token (the key of an earlier campaign) changes nothing.
  EXPECT_FALSE(Txn(ProclaimTxn(key, "x", a, sa.token + 1)).txn().succeeded());
  EXPECT_FALSE(Txn(ResignTxn(key, sa.token + 1)).txn().succeeded());
  EXPECT_TRUE(Look(a).present);
  EXPECT_TRUE(Txn(ProclaimTxn(key, "x", a, sa.token)).txn().succeeded());
  client::RangeRequest get;
  get.set_key(key);
  const client::RangeResponse got = *store_.Range(get);
  ASSERT_EQ(got.kvs_size(), 1);
  EXPECT_EQ(got.kvs(0).value(), "x");
  EXPECT_EQ(got.kvs(0).create_revision(), sa.token);  // still the token
  EXPECT_EQ(got.kvs(0).lease(), a);
}

TEST_F(CampaignTest, AnAnswerWithoutItsReadsIsAnError) {
  client::TxnResponse r;
  EXPECT_EQ(ReadStanding(r).status().code(), absl::StatusCode::kInternal);
}

client::KeyValue Kv(const std::string& key, uint64_t created,
                    const std::string& value = "") {
  client::KeyValue kv;
  kv.set_key(key);
  kv.set_create_revision(created);
  kv.set_mod_revision(created);
  kv.set_value(value);
  return kv;
}

TEST(CandidateSetTest, FollowsTheFirstCandidateThroughEvents) {
  CandidateSet c;
  EXPECT_FALSE(c.First().has_value());
  google::protobuf::RepeatedPtrField<client::KeyValue> read;
  *read.Add() = Kv("p/b", 7, "B");
  *read.Add() = Kv("p/a", 9, "A");  // by key first, by token second
  c.Reset(read);
  ASSERT_TRUE(c.First().has_value());
  EXPECT_EQ(c.First()->key, "p/b");
  EXPECT_EQ(c.First()->token, 7u);
  // A proclaim changes the value, not the token.
  client::KeyValue proclaimed = Kv("p/b", 7, "B2");
  proclaimed.set_mod_revision(10);
  c.Put(proclaimed);
  EXPECT_EQ(c.First()->value, "B2");
  EXPECT_EQ(c.size(), 2u);
  c.Delete("p/b");
  EXPECT_EQ(c.First()->key, "p/a");
  // Deleted and created again (between two reads): a new token.
  c.Put(Kv("p/a", 12, "A'"));
  EXPECT_EQ(c.size(), 1u);
  EXPECT_EQ(c.First()->token, 12u);
  c.Delete("p/a");
  c.Delete("p/unknown");
  EXPECT_FALSE(c.First().has_value());
}

}  // namespace
}  // namespace quorate::coord
