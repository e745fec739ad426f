// Shard groups in the key-value state machine (coord/kv_shards.cc): the
// commands, the keys they write, sessions ending, the reserved prefix,
// and snapshots.
#include <gtest/gtest.h>

#include <set>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "coord/kv.h"

namespace quorate::coord {
namespace {

class KvShardsTest : public ::testing::Test {
 protected:
  client::KvResult Run(KvStore& store, const client::KvCommand& cmd) {
    client::KvResult r;
    EXPECT_TRUE(
        r.ParseFromString(store.Apply(++index_, cmd.SerializeAsString())));
    return r;
  }
  client::KvResult Run(const client::KvCommand& cmd) {
    return Run(store_, cmd);
  }
  absl::Status Status(const client::KvCommand& cmd) {
    return ResultStatus(Run(cmd));
  }
  uint64_t Grant() {
    client::KvCommand c;
    c.mutable_lease_grant()->set_ttl_ms(10000);
    const client::KvResult r = Run(c);
    EXPECT_EQ(r.code(), 0) << r.message();
    return r.lease_id();
  }
  client::KvCommand Shard(const std::string& group) {
    client::KvCommand c;
    c.mutable_shard()->set_group(group);
    return c;
  }
  client::KvCommand Create(const std::string& group, uint32_t shards,
                           uint32_t k = 16) {
    client::KvCommand c = Shard(group);
    c.mutable_shard()->mutable_create()->set_shards(shards);
    c.mutable_shard()->mutable_create()->set_max_in_motion(k);
    return c;
  }
  client::KvCommand Join(const std::string& group, uint64_t lease,
                         const std::string& zone = "a") {
    client::KvCommand c = Shard(group);
    c.mutable_shard()->mutable_join()->set_lease(lease);
    c.mutable_shard()->mutable_join()->set_zone(zone);
    return c;
  }
  client::KvCommand Release(const std::string& group, uint64_t lease,
                            uint32_t shard, uint64_t epoch, bool ack = false) {
    client::KvCommand c = Shard(group);
    client::ShardRelease* r = c.mutable_shard()->mutable_release();
    r->set_lease(lease);
    r->set_shard(shard);
    r->set_epoch(epoch);
    r->set_ack(ack);
    return c;
  }
  ShardState StateOf(const KvStore& store, const std::string& group,
                     uint32_t shard) {
    const std::optional<KvStore::Value> v = store.Get(
        ShardStateKey(absl::StrCat(kShardKeyPrefix, group, "/"), shard));
    EXPECT_TRUE(v.has_value()) << "shard " << shard;
    if (!v.has_value()) return ShardState{};
    absl::StatusOr<ShardState> st = ParseShardState(v->value);
    EXPECT_TRUE(st.ok()) << st.status();
    return st.ok() ? *st : ShardState{};
  }
  ShardState StateOf(const std::string& group, uint32_t shard) {
    return StateOf(store_, group, shard);
  }
  // A group of `shards` (K `k`) joined by two processors, a then b; the
  // first shard draining from a to b.
  uint32_t TwoJoinedOneDraining(const std::string& group, uint32_t shards,
                                uint32_t k, uint64_t* a, uint64_t* b) {
    EXPECT_EQ(Run(Create(group, shards, k)).code(), 0);
    *a = Grant();
    *b = Grant();
    EXPECT_TRUE(Status(Join(group, *a)).ok());
    EXPECT_TRUE(Status(Join(group, *b)).ok());
    uint32_t s = 0;
    while (s + 1 < shards && StateOf(group, s).phase != ShardPhase::kRevoking) {
      ++s;
    }
    EXPECT_EQ(StateOf(group, s).phase, ShardPhase::kRevoking);
    return s;
  }
  static std::string Id(uint64_t lease) {
    return KvStore::ShardProcessorId(lease);
  }
  static uint64_t LeaseOf(const std::string& id) {
    uint64_t lease = 0;
    EXPECT_TRUE(absl::SimpleHexAtoi(id, &lease)) << id;
    return lease;
  }

  KvStore store_;
  uint64_t index_ = 0;
};

TEST_F(KvShardsTest, Create_WritesTheConfigAndEveryShardAtOneRevision) {
  const client::KvResult r = Run(Create("mail", 4));
  ASSERT_EQ(r.code(), 0) << r.message();
  const uint64_t rev = r.revision();
  const std::optional<KvStore::Value> config =
      store_.Get("quorate/shards/mail/config");
  ASSERT_TRUE(config.has_value());
  EXPECT_EQ(config->value,
            "shards=4 max_processors=1000 max_in_motion=16 drain_ms=30000");
  for (uint32_t s = 0; s < 4; ++s) {
    EXPECT_EQ(store_.Get(absl::StrFormat("quorate/shards/mail/shard/%05u", s))
                  ->revision,
              rev);
    EXPECT_EQ(StateOf("mail", s).phase, ShardPhase::kUnowned);
  }
  // The same again is a retry; another shape is refused.
  EXPECT_EQ(Run(Create("mail", 4)).revision(), rev);
  EXPECT_TRUE(absl::IsAlreadyExists(Status(Create("mail", 8))));
  EXPECT_TRUE(absl::IsInvalidArgument(Status(Create("m/x", 4))));
  EXPECT_TRUE(absl::IsInvalidArgument(Status(Create("zero", 0))));
  EXPECT_TRUE(
      absl::IsInvalidArgument(Status(Create("huge", kMaxShardsPerGroup + 1))));
  EXPECT_EQ(store_.revision(), rev) << "a refusal changed something";
}

TEST_F(KvShardsTest, Join_NeedsALiveSessionAndAKnownGroup) {
  ASSERT_EQ(Run(Create("mail", 4)).code(), 0);
  const uint64_t rev = store_.revision();
  EXPECT_TRUE(absl::IsFailedPrecondition(Status(Join("mail", 424242))));
  const uint64_t lease = Grant();
  EXPECT_TRUE(absl::IsNotFound(Status(Join("nope", lease))));
  EXPECT_EQ(store_.revision(), rev);
  ASSERT_TRUE(Status(Join("mail", lease)).ok());
  for (uint32_t s = 0; s < 4; ++s) {
    EXPECT_EQ(StateOf("mail", s).owner, Id(lease));
    EXPECT_EQ(StateOf("mail", s).epoch, 1u);
  }
  EXPECT_EQ(store_.Get("quorate/shards/mail/member/" + Id(lease))->value,
            "a 1 active");
}

TEST_F(KvShardsTest, PlannedMove_WaitsForTheOwnersRelease) {
  ASSERT_EQ(Run(Create("mail", 4)).code(), 0);
  const uint64_t a = Grant();
  const uint64_t b = Grant();
  ASSERT_TRUE(Status(Join("mail", a)).ok());
  ASSERT_TRUE(Status(Join("mail", b, "b")).ok());
  std::vector<uint32_t> revoking;
  for (uint32_t s = 0; s < 4; ++s) {
    const ShardState st = StateOf("mail", s);
    EXPECT_EQ(st.owner, Id(a));
    if (st.phase == ShardPhase::kRevoking) {
      EXPECT_EQ(st.next, Id(b));
      revoking.push_back(s);
    }
  }
  ASSERT_EQ(revoking.size(), 2u);
  const uint32_t s = revoking[0];
  EXPECT_TRUE(absl::IsFailedPrecondition(Status(Release("mail", b, s, 1))));
  // Acknowledged: the leader's drain clock now counts.
  ASSERT_TRUE(Status(Release("mail", a, s, 1, /*ack=*/true)).ok());
  const std::vector<DrainingShard> draining = store_.DrainingShards();
  ASSERT_EQ(draining.size(), 1u);
  EXPECT_EQ(draining[0].shard, s);
  ASSERT_TRUE(Status(Release("mail", a, s, 1)).ok());
  EXPECT_EQ(StateOf("mail", s).owner, Id(b));
  EXPECT_EQ(StateOf("mail", s).epoch, 2u);
  EXPECT_TRUE(store_.DrainingShards().empty());
}

TEST_F(KvShardsTest, DrainExpired_HandsOverAnAcknowledgedShard) {
  uint64_t a = 0, b = 0;
  const uint32_t s = TwoJoinedOneDraining("mail", 2, 1, &a, &b);
  client::KvCommand expired = Shard("mail");
  expired.mutable_shard()->mutable_drain_expired()->set_shard(s);
  expired.mutable_shard()->mutable_drain_expired()->set_epoch(1);
  EXPECT_TRUE(absl::IsFailedPrecondition(Status(expired)));
  ASSERT_TRUE(Status(Release("mail", a, s, 1, /*ack=*/true)).ok());
  ASSERT_TRUE(Status(expired).ok());
  EXPECT_EQ(StateOf("mail", s).owner, Id(b));
}

TEST_F(KvShardsTest, SessionEnd_MovesItsShardsAtOnceAndRemovesTheMember) {
  ASSERT_EQ(Run(Create("mail", 4)).code(), 0);
  const uint64_t a = Grant();
  const uint64_t b = Grant();
  ASSERT_TRUE(Status(Join("mail", a)).ok());
  ASSERT_TRUE(Status(Join("mail", b)).ok());
  client::KvCommand revoke;
  revoke.mutable_lease_revoke()->set_id(a);
  const uint64_t before = store_.revision();
  ASSERT_EQ(Run(revoke).code(), 0);
  EXPECT_EQ(store_.revision(), before + 1) << "one revision for it all";
  for (uint32_t s = 0; s < 4; ++s) {
    EXPECT_EQ(StateOf("mail", s).owner, Id(b));
    EXPECT_EQ(StateOf("mail", s).phase, ShardPhase::kOwned);
  }
  EXPECT_FALSE(store_.Get("quorate/shards/mail/member/" + Id(a)).has_value());
}

// Two processors' sessions end in one command: each shard's key is
// written once in that revision (a watch history with a key twice in a
// revision would not restore).
TEST_F(KvShardsTest, SessionsEndingTogether_WriteEachKeyOnce) {
  ASSERT_EQ(Run(Create("mail", 6)).code(), 0);
  const uint64_t a = Grant(), b = Grant(), c = Grant();
  for (uint64_t lease : {a, b, c})
    ASSERT_TRUE(Status(Join("mail", lease)).ok());
  // Let every planned move finish.
  for (int round = 0; round < 10; ++round) {
    for (uint32_t s = 0; s < 6; ++s) {
      const ShardState st = StateOf("mail", s);
      if (st.phase == ShardPhase::kRevoking) {
        ASSERT_TRUE(
            Status(Release("mail", LeaseOf(st.owner), s, st.epoch)).ok());
      }
    }
  }
  client::KvCommand expire;
  expire.mutable_lease_expire()->add_ids(a);
  expire.mutable_lease_expire()->add_ids(b);
  ASSERT_EQ(Run(expire).code(), 0);
  const KvStore::History h = store_.ChangesFrom(store_.revision(), 1);
  ASSERT_EQ(h.changes.size(), 1u);
  std::set<std::string> keys;
  for (const client::WatchEvent& e : h.changes[0]->events()) {
    EXPECT_TRUE(keys.insert(e.kv().key()).second) << e.kv().key();
  }
  for (uint32_t s = 0; s < 6; ++s) EXPECT_EQ(StateOf("mail", s).owner, Id(c));
  KvStore copy;
  EXPECT_TRUE(copy.Restore(store_.Snapshot()()).ok());
}

TEST_F(KvShardsTest, ClientWrites_UnderTheShardPrefixAreRefused) {
  ASSERT_EQ(Run(Create("mail", 1)).code(), 0);
  const uint64_t rev = store_.revision();
  client::KvCommand put;
  put.mutable_put()->set_key("quorate/shards/mail/shard/00000");
  put.mutable_put()->set_value("forged 99 owned - 0");
  EXPECT_TRUE(absl::IsInvalidArgument(Status(put)));
  client::KvCommand del;
  del.mutable_del()->set_key("quorate/shards/mail/config");
  EXPECT_TRUE(absl::IsInvalidArgument(Status(del)));
  client::KvCommand txn;
  client::DeleteRangeRequest* everything =
      txn.mutable_txn()->add_success()->mutable_delete_range();
  everything->set_key("a");
  everything->set_range_end(std::string("\0", 1));
  EXPECT_TRUE(absl::IsInvalidArgument(Status(txn)));
  EXPECT_EQ(store_.revision(), rev);
  // Beside it, and reading it, is fine.
  put.mutable_put()->set_key("quorate/shardsX");
  EXPECT_TRUE(Status(put).ok());
  EXPECT_TRUE(CheckWritable("quorate/sharde", "quorate/shards/").ok());
  EXPECT_FALSE(CheckWritable("quorate/sharde", "quorate/shards/0").ok());
  EXPECT_FALSE(CheckWritable("quorate/shards/x", "").ok());
}

TEST_F(KvShardsTest, Snapshot_CarriesGroupsAndTheRestoredStoreGoesOnAlike) {
  uint64_t a = 0, b = 0;
  const uint32_t s = TwoJoinedOneDraining("mail", 8, 2, &a, &b);
  ASSERT_TRUE(Status(Release("mail", a, s, 1, /*ack=*/true)).ok());
  const std::string bytes = store_.Snapshot()();
  KvStore copy;
  ASSERT_TRUE(copy.Restore(bytes).ok());
  ASSERT_EQ(copy.DrainingShards().size(), 1u);
  // The same command on both: the same result and the same keys.
  const client::KvCommand release = Release("mail", a, s, 1);
  EXPECT_EQ(Run(store_, release).code(), 0);
  EXPECT_EQ(Run(copy, release).code(), 0);
  for (uint32_t i = 0; i < 8; ++i) {
    const ShardState x = StateOf(store_, "mail", i);
    const ShardState y = StateOf(copy, "mail", i);
    EXPECT_EQ(FormatShardState(x), FormatShardState(y)) << "shard " << i;
  }
  // A group whose processor has no session is refused as damaged.
  client::KvSnapshot snap;
  ASSERT_TRUE(snap.ParseFromString(bytes));
  snap.mutable_shard_groups(0)->mutable_members(0)->set_id("00000000deadbeef");
  KvStore damaged;
  EXPECT_TRUE(absl::IsDataLoss(damaged.Restore(snap.SerializeAsString())));
}

}  // namespace
}  // namespace quorate::coord
