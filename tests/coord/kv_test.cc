// The replicated key-value state machine on its own: commands in, results
// and state out.
#include "coord/kv.h"

#include <gtest/gtest.h>

#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"

namespace quorate::coord {
namespace {

class KvStoreTest : public ::testing::Test {
 protected:
  client::KvResult Run(const client::KvCommand& cmd) {
    client::KvResult r;
    EXPECT_TRUE(
        r.ParseFromString(store_.Apply(++index_, cmd.SerializeAsString())));
    return r;
  }
  client::KvCommand Put(const std::string& key, const std::string& value,
                        uint64_t client = 0, uint64_t seq = 0) {
    client::KvCommand c;
    c.mutable_op()->set_client(client);
    c.mutable_op()->set_seq(seq);
    c.mutable_put()->set_key(key);
    c.mutable_put()->set_value(value);
    return c;
  }
  client::KvCommand Del(const std::string& key) {
    client::KvCommand c;
    c.mutable_del()->set_key(key);
    return c;
  }
  client::KvCommand TxnCmd(const client::TxnRequest& txn, uint64_t client = 0,
                           uint64_t seq = 0) {
    client::KvCommand c;
    c.mutable_op()->set_client(client);
    c.mutable_op()->set_seq(seq);
    *c.mutable_txn() = txn;
    return c;
  }
  // Runs a transaction; its response (the result must be OK).
  client::TxnResponse RunTxn(const client::TxnRequest& txn) {
    const client::KvResult r = Run(TxnCmd(txn));
    EXPECT_EQ(r.code(), 0) << r.message();
    return r.txn();
  }
  client::RangeResponse Range(const std::string& key,
                              const std::string& end = "", uint64_t limit = 0) {
    client::RangeRequest r;
    r.set_key(key);
    r.set_range_end(end);
    r.set_limit(limit);
    EXPECT_TRUE(CheckRange(key, end).ok());
    return *store_.Range(r);
  }
  static std::vector<std::string> Keys(const client::RangeResponse& r) {
    std::vector<std::string> keys;
    for (const client::KeyValue& kv : r.kvs()) keys.push_back(kv.key());
    return keys;
  }
  client::KvCommand Cas(const std::string& key, uint64_t expected,
                        const std::string& value) {
    client::KvCommand c;
    c.mutable_cas()->set_key(key);
    c.mutable_cas()->set_expected_revision(expected);
    c.mutable_cas()->set_value(value);
    return c;
  }

  KvStore store_;
  uint64_t index_ = 0;
};

TEST_F(KvStoreTest, Put_EachWriteTakesTheNextClusterRevision) {
  EXPECT_EQ(Run(Put("a", "1")).revision(), 1u);
  EXPECT_EQ(Run(Put("b", "2")).revision(), 2u);
  EXPECT_EQ(Run(Put("a", "3")).revision(), 3u);
  EXPECT_EQ(store_.revision(), 3u);
  EXPECT_EQ(store_.Get("a")->value, "3");
  EXPECT_EQ(store_.Get("a")->revision, 3u);
  EXPECT_EQ(store_.Get("b")->revision, 2u);
  EXPECT_FALSE(store_.Get("c").has_value());
}

TEST_F(KvStoreTest, Delete_MissingKeyIsNotFoundAndTakesNoRevision) {
  Run(Put("a", "1"));
  const client::KvResult missing = Run(Del("zz"));
  EXPECT_EQ(missing.code(), static_cast<int>(absl::StatusCode::kNotFound));
  EXPECT_EQ(store_.revision(), 1u);
  EXPECT_EQ(Run(Del("a")).revision(), 2u);
  EXPECT_FALSE(store_.Get("a").has_value());
}

TEST_F(KvStoreTest, Cas_WritesOnlyAtTheExpectedRevision) {
  // 0 means "absent".
  EXPECT_EQ(Run(Cas("k", 0, "first")).revision(), 1u);
  const client::KvResult again = Run(Cas("k", 0, "second"));
  EXPECT_EQ(ResultStatus(again).code(), absl::StatusCode::kAborted);
  EXPECT_EQ(again.revision(), 1u);  // the key's current revision
  EXPECT_EQ(store_.Get("k")->value, "first");
  const client::KvResult stale = Run(Cas("k", 7, "x"));
  EXPECT_EQ(ResultStatus(stale).code(), absl::StatusCode::kAborted);
  EXPECT_EQ(Run(Cas("k", 1, "third")).revision(), 2u);
  EXPECT_EQ(store_.Get("k")->value, "third");
  EXPECT_EQ(store_.revision(), 2u);  // refused CAS take no revision
}

TEST_F(KvStoreTest, Limits_OversizedKeysAndValuesAreInvalidArgument) {
  EXPECT_EQ(CheckKeyValue("", "v").code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(CheckKeyValue(std::string(kMaxKeyBytes + 1, 'k'), "v").code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(CheckKeyValue("k", std::string(kMaxValueBytes + 1, 'v')).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(CheckKeyValue(std::string(kMaxKeyBytes, 'k'),
                            std::string(kMaxValueBytes, 'v'))
                  .ok());
  // Even if one slipped into the log, applying it changes nothing.
  const client::KvResult r =
      Run(Put("k", std::string(kMaxValueBytes + 1, 'v')));
  EXPECT_EQ(ResultStatus(r).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(store_.revision(), 0u);
}

// A snapshot no store could have taken is refused whole, and the store
// keeps what it had.
TEST_F(KvStoreTest, Restore_RefusesImpossibleSnapshotsAndChangesNothing) {
  KvStore store;
  client::KvCommand put;
  put.mutable_put()->set_key("kept");
  put.mutable_put()->set_value("v");
  store.Apply(1, put.SerializeAsString());
  for (uint64_t key_revision : {uint64_t{0}, uint64_t{35}}) {
    client::KvSnapshot snap;
    snap.set_revision(5);
    client::KvEntry* e = snap.add_entries();
    e->set_key("k");
    e->set_value("x");
    e->set_revision(key_revision);
    const absl::Status s = store.Restore(snap.SerializeAsString());
    EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss) << key_revision;
    EXPECT_EQ(store.revision(), 1u);
    EXPECT_TRUE(store.Get("kept").has_value());
    EXPECT_FALSE(store.Get("k").has_value());
  }
  client::KvSnapshot twice;
  twice.set_revision(5);
  for (int i = 0; i < 2; ++i) {
    client::KvEntry* e = twice.add_entries();
    e->set_key("k");
    e->set_revision(3);
  }
  EXPECT_EQ(store.Restore(twice.SerializeAsString()).code(),
            absl::StatusCode::kDataLoss);
}

TEST_F(KvStoreTest, Duplicates_ARetriedOperationIsAppliedOnce) {
  const client::KvResult first = Run(Put("a", "1", /*client=*/42, /*seq=*/1));
  Run(Put("a", "2", 7, 1));  // another client's write in between
  const client::KvResult retry = Run(Put("a", "1", 42, 1));
  EXPECT_EQ(retry.revision(), first.revision());
  EXPECT_EQ(store_.revision(), 2u);
  EXPECT_EQ(store_.Get("a")->value, "2");  // the retry did not write again
  // Operations without a client id are not deduplicated.
  Run(Put("a", "3"));
  Run(Put("a", "3"));
  EXPECT_EQ(store_.revision(), 4u);
}

TEST_F(KvStoreTest, Duplicates_TooOldToTellIsRefused) {
  for (uint64_t seq = 1; seq <= kSessionWindow + 5; ++seq) {
    Run(Put("k", "v", 9, seq));
  }
  const uint64_t revision = store_.revision();
  const client::KvResult old = Run(Put("k", "v", 9, 2));
  EXPECT_EQ(ResultStatus(old).code(), absl::StatusCode::kUnknown);
  EXPECT_EQ(store_.revision(), revision);
  // A recent one is still recognized.
  EXPECT_EQ(Run(Put("k", "v", 9, kSessionWindow + 5)).revision(), revision);
}

TEST_F(KvStoreTest, Duplicates_TheWholeWindowSurvivesSweepsAndSnapshots) {
  // Past twice the window, so the session's map has been swept.
  const uint64_t last = 2 * kSessionWindow + 7;
  for (uint64_t seq = 1; seq <= last; ++seq) Run(Put("k", "v", 9, seq));
  const uint64_t revision = store_.revision();
  KvStore copy;
  ASSERT_TRUE(copy.Restore(store_.Snapshot()()).ok());
  EXPECT_EQ(copy.Snapshot()(), store_.Snapshot()());
  for (KvStore* s : {&store_, &copy}) {
    auto run = [s](const client::KvCommand& c) {
      client::KvResult r;
      EXPECT_TRUE(r.ParseFromString(s->Apply(1, c.SerializeAsString())));
      return r;
    };
    // The oldest op within the window and the newest are recognized...
    EXPECT_EQ(run(Put("k", "v", 9, last - kSessionWindow + 1)).revision(),
              revision - kSessionWindow + 1);
    EXPECT_EQ(run(Put("k", "v", 9, last)).revision(), revision);
    // ...the one just before it is too old, on both.
    EXPECT_EQ(ResultStatus(run(Put("k", "v", 9, last - kSessionWindow))).code(),
              absl::StatusCode::kUnknown);
    EXPECT_EQ(s->revision(), revision);
  }
}

TEST_F(KvStoreTest, Sessions_TheLeastRecentlyUsedClientIsForgotten) {
  for (uint64_t client = 1; client <= kMaxSessions; ++client) {
    Run(Put("k", "v", client, 1));
  }
  Run(Put("k", "v", 1, 2));  // client 1 is now the most recent
  Run(Put("k", "v", kMaxSessions + 1, 1));
  EXPECT_EQ(store_.sessions(), kMaxSessions);
  const uint64_t revision = store_.revision();
  // Client 2 was forgotten: its retry is applied again; client 1's is not.
  Run(Put("k", "v", 1, 2));
  EXPECT_EQ(store_.revision(), revision);
  Run(Put("k", "v", 2, 1));
  EXPECT_EQ(store_.revision(), revision + 1);
}

TEST_F(KvStoreTest, Snapshot_RoundTripKeepsDataRevisionsAndSessions) {
  Run(Put("a", "1", 5, 1));
  Run(Put("b", std::string("\0binary\xff", 8), 5, 2));
  Run(Del("a"));
  const std::string snap = store_.Snapshot()();
  KvStore copy;
  ASSERT_TRUE(copy.Restore(snap).ok());
  EXPECT_EQ(copy.revision(), store_.revision());
  EXPECT_FALSE(copy.Get("a").has_value());
  EXPECT_EQ(copy.Get("b")->value, std::string("\0binary\xff", 8));
  EXPECT_EQ(copy.Get("b")->revision, 2u);
  EXPECT_EQ(copy.Snapshot()(), snap);
  // The sessions came along: a retry is still recognized.
  client::KvResult r;
  ASSERT_TRUE(r.ParseFromString(
      copy.Apply(100, Put("b", "other", 5, 2).SerializeAsString())));
  EXPECT_EQ(r.revision(), 2u);
  EXPECT_EQ(copy.Get("b")->revision, 2u);
  // A damaged snapshot is refused.
  EXPECT_FALSE(copy.Restore("\xff\xff\xff").ok());
}

// The commands of a small history: puts over many shards, a delete, a CAS,
// and one client's session.
std::vector<client::KvCommand> History(uint64_t from, uint64_t to) {
  std::vector<client::KvCommand> out;
  for (uint64_t i = from; i < to; ++i) {
    client::KvCommand c;
    c.mutable_op()->set_client(1 + i % 3);
    c.mutable_op()->set_seq(1 + i / 3);
    const std::string key = absl::StrCat("key-", i % 500);
    switch (i % 7) {
      case 3:
        c.mutable_del()->set_key(key);
        break;
      case 5:
        c.mutable_cas()->set_key(key);
        c.mutable_cas()->set_expected_revision(i / 2);
        c.mutable_cas()->set_value(absl::StrCat("cas-", i));
        break;
      default:
        c.mutable_put()->set_key(key);
        c.mutable_put()->set_value(absl::StrCat("value-", i));
    }
    out.push_back(std::move(c));
  }
  return out;
}

void ApplyAll(KvStore& store, const std::vector<client::KvCommand>& cmds,
              uint64_t& index) {
  for (const client::KvCommand& c : cmds) {
    store.Apply(++index, c.SerializeAsString());
  }
}

TEST(KvSnapshotTest, CapturesTheStateWhenTakenNotWhenSerialized) {
  KvStore store;
  KvStore reference;  // only ever sees the first part
  uint64_t index = 0;
  uint64_t reference_index = 0;
  ApplyAll(store, History(0, 2000), index);
  ApplyAll(reference, History(0, 2000), reference_index);
  const uint64_t revision = store.revision();

  absl::AnyInvocable<std::string()> serialize = store.Snapshot();
  // Every shard and session changes after the capture, and a session is
  // retried (which changes only its last use).
  ApplyAll(store, History(2000, 6000), index);
  store.Apply(++index, History(5999, 6000)[0].SerializeAsString());
  ASSERT_GT(store.revision(), revision);

  const std::string bytes = serialize();
  EXPECT_EQ(bytes, reference.Snapshot()());
  KvStore restored;
  ASSERT_TRUE(restored.Restore(bytes).ok());
  EXPECT_EQ(restored.revision(), revision);
  EXPECT_EQ(restored.Get("key-7")->value, reference.Get("key-7")->value);
  // The store itself kept every change made after the capture.
  EXPECT_EQ(store.Get("key-499")->value, "value-5999");
}

TEST(KvSnapshotTest, SerializesOnAnotherThreadWhileApplyGoesOn) {
  KvStore store;
  KvStore reference;
  uint64_t index = 0;
  uint64_t reference_index = 0;
  const std::vector<client::KvCommand> first = History(0, 3000);
  const std::vector<client::KvCommand> later = History(3000, 9000);
  ApplyAll(store, first, index);
  ApplyAll(reference, first, reference_index);
  std::string bytes;
  std::thread serializer(
      [&bytes, s = store.Snapshot()]() mutable { bytes = s(); });
  ApplyAll(store, later, index);  // concurrently, on this thread
  serializer.join();
  EXPECT_EQ(bytes, reference.Snapshot()());
  // Later snapshots see the later writes.
  ApplyAll(reference, later, reference_index);
  EXPECT_EQ(store.Snapshot()(), reference.Snapshot()());
}

TEST(KvSnapshotTest, RestoreWhilePinnedLeavesThePinnedStateAlone) {
  KvStore store;
  uint64_t index = 0;
  ApplyAll(store, History(0, 1000), index);
  const std::string before = store.Snapshot()();
  absl::AnyInvocable<std::string()> serialize = store.Snapshot();
  KvStore other;
  uint64_t other_index = 0;
  ApplyAll(other, History(5000, 5100), other_index);
  ASSERT_TRUE(store.Restore(other.Snapshot()()).ok());
  EXPECT_EQ(serialize(), before);
  EXPECT_EQ(store.Snapshot()(), other.Snapshot()());
}

// etcd's data model: a key's create revision, mod revision and version,
// through creation, change, deletion and re-creation.
TEST_F(KvStoreTest, DataModel_CreateModAndVersionFollowTheKeysLife) {
  Run(Put("k", "a"));  // rev 1: created
  Run(Put("x", "-"));  // rev 2
  Run(Put("k", "b"));  // rev 3
  std::optional<KvStore::Value> v = store_.Get("k");
  EXPECT_EQ(v->create_revision, 1u);
  EXPECT_EQ(v->revision, 3u);
  EXPECT_EQ(v->version, 2u);
  Run(Del("k"));       // rev 4
  Run(Put("k", "c"));  // rev 5: created anew, version from 1
  v = store_.Get("k");
  EXPECT_EQ(v->create_revision, 5u);
  EXPECT_EQ(v->revision, 5u);
  EXPECT_EQ(v->version, 1u);
}

// Each compare target with each operator, on a key that exists and on one
// that does not.
TEST_F(KvStoreTest, Txn_EveryCompareTargetAndOperator) {
  Run(Put("k", "m"));  // create 1
  Run(Put("k", "m"));  // mod 2, version 2
  struct Case {
    client::Compare::Target target;
    int64_t number;  // or the value's first letter, below
    client::Compare::Result result;
    bool want;
  };
  using C = client::Compare;
  const Case cases[] = {
      {C::VERSION, 2, C::EQUAL, true},     {C::VERSION, 1, C::EQUAL, false},
      {C::VERSION, 1, C::GREATER, true},   {C::VERSION, 2, C::GREATER, false},
      {C::VERSION, 3, C::LESS, true},      {C::VERSION, 2, C::LESS, false},
      {C::VERSION, 1, C::NOT_EQUAL, true}, {C::VERSION, 2, C::NOT_EQUAL, false},
      {C::CREATE, 1, C::EQUAL, true},      {C::CREATE, 0, C::GREATER, true},
      {C::CREATE, 1, C::LESS, false},      {C::CREATE, 1, C::NOT_EQUAL, false},
      {C::MOD, 2, C::EQUAL, true},         {C::MOD, 3, C::LESS, true},
      {C::MOD, 2, C::GREATER, false},      {C::MOD, 1, C::NOT_EQUAL, true},
      {C::LEASE, 0, C::EQUAL, true},       {C::LEASE, 0, C::GREATER, false},
      {C::LEASE, 1, C::LESS, true},        {C::LEASE, 0, C::NOT_EQUAL, false},
      {C::VALUE, 'm', C::EQUAL, true},     {C::VALUE, 'a', C::EQUAL, false},
      {C::VALUE, 'a', C::GREATER, true},   {C::VALUE, 'z', C::GREATER, false},
      {C::VALUE, 'z', C::LESS, true},      {C::VALUE, 'm', C::LESS, false},
      {C::VALUE, 'a', C::NOT_EQUAL, true}, {C::VALUE, 'm', C::NOT_EQUAL, false},
  };
  for (const Case& c : cases) {
    client::TxnRequest txn;
    client::Compare* cmp = txn.add_compare();
    cmp->set_key("k");
    cmp->set_target(c.target);
    cmp->set_result(c.result);
    switch (c.target) {
      case C::VERSION:
        cmp->set_version(c.number);
        break;
      case C::CREATE:
        cmp->set_create_revision(c.number);
        break;
      case C::MOD:
        cmp->set_mod_revision(c.number);
        break;
      case C::LEASE:
        cmp->set_lease(c.number);
        break;
      default:
        cmp->set_value(std::string(1, static_cast<char>(c.number)));
    }
    EXPECT_EQ(store_.ReadTxn(txn).succeeded(), c.want)
        << C::Target_Name(c.target) << " " << C::Result_Name(c.result) << " "
        << c.number;
  }
  // A key that does not exist: numbers are 0; its value fails every test.
  client::TxnRequest absent;
  client::Compare* cmp = absent.add_compare();
  cmp->set_key("missing");
  cmp->set_target(C::CREATE);
  cmp->set_result(C::EQUAL);
  cmp->set_create_revision(0);
  EXPECT_TRUE(store_.ReadTxn(absent).succeeded());
  cmp->set_target(C::VALUE);
  cmp->set_result(C::NOT_EQUAL);
  cmp->set_value("anything");
  EXPECT_FALSE(store_.ReadTxn(absent).succeeded());
}

// The branch the compares choose runs, in order, at one new revision; a
// range in it sees the writes before it.
TEST_F(KvStoreTest, Txn_RunsOneBranchAtomicallyAtOneRevision) {
  Run(Put("a", "1"));  // rev 1
  client::TxnRequest txn;
  client::Compare* cmp = txn.add_compare();
  cmp->set_key("a");
  cmp->set_target(client::Compare::VALUE);
  cmp->set_result(client::Compare::EQUAL);
  cmp->set_value("1");
  client::PutRequest* put = txn.add_success()->mutable_put();
  put->set_key("b");
  put->set_value("2");
  txn.add_success()->mutable_delete_range()->set_key("a");
  txn.add_success()->mutable_range()->set_key("b");
  txn.add_failure()->mutable_range()->set_key("a");
  client::TxnResponse r = RunTxn(txn);
  EXPECT_TRUE(r.succeeded());
  EXPECT_EQ(r.revision(), 2u);
  ASSERT_EQ(r.responses_size(), 3);
  EXPECT_EQ(r.responses(0).put().revision(), 2u);
  EXPECT_EQ(r.responses(1).delete_range().deleted(), 1u);
  ASSERT_EQ(r.responses(2).range().kvs_size(), 1);
  EXPECT_EQ(r.responses(2).range().kvs(0).mod_revision(), 2u);
  EXPECT_EQ(store_.revision(), 2u);
  EXPECT_FALSE(store_.Get("a").has_value());
  // Again: "a" is gone, so the failure branch runs, and reads only.
  r = RunTxn(txn);
  EXPECT_FALSE(r.succeeded());
  EXPECT_EQ(r.responses_size(), 1);
  EXPECT_EQ(r.responses(0).range().count(), 0u);
  EXPECT_EQ(store_.revision(), 2u);  // nothing changed: no revision
  // A delete that deletes nothing takes no revision either.
  client::TxnRequest nothing;
  nothing.add_success()->mutable_delete_range()->set_key("zzz");
  EXPECT_EQ(RunTxn(nothing).revision(), 2u);
  EXPECT_EQ(store_.revision(), 2u);
}

TEST_F(KvStoreTest, Txn_BadTransactionsAreRefusedAndChangeNothing) {
  Run(Put("a", "1"));
  const TxnLimits limits;
  client::TxnRequest twice;
  for (int i = 0; i < 2; ++i) {
    client::PutRequest* p = twice.add_success()->mutable_put();
    p->set_key("k");
    p->set_value("v");
  }
  client::TxnRequest put_and_delete;
  client::PutRequest* p = put_and_delete.add_failure()->mutable_put();
  p->set_key("k/1");
  p->set_value("v");
  put_and_delete.add_failure()->mutable_delete_range()->set_key("k/");
  put_and_delete.mutable_failure(1)->mutable_delete_range()->set_range_end(
      PrefixEnd("k/"));
  client::TxnRequest inverted;
  inverted.add_success()->mutable_range()->set_key("b");
  inverted.mutable_success(0)->mutable_range()->set_range_end("a");
  client::TxnRequest empty_key;
  empty_key.add_success()->mutable_delete_range()->set_key("");
  client::TxnRequest no_target_value;
  no_target_value.add_compare()->set_key("a");  // VERSION without a number
  client::TxnRequest empty_op;
  empty_op.add_success();
  for (const client::TxnRequest* bad :
       {&twice, &put_and_delete, &inverted, &empty_key, &no_target_value,
        &empty_op}) {
    const absl::Status s = CheckTxn(*bad, limits);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
    // Even committed, it is refused whole by the state machine.
    const client::KvResult r = Run(TxnCmd(*bad));
    EXPECT_EQ(ResultStatus(r).code(), absl::StatusCode::kInvalidArgument)
        << bad->ShortDebugString();
  }
  EXPECT_EQ(store_.revision(), 1u);
  EXPECT_FALSE(store_.Get("k").has_value());
}

// The limits, at their edge: a transaction at the limit passes, one over
// it is refused naming it.
TEST_F(KvStoreTest, Txn_LimitsAtTheirEdge) {
  TxnLimits limits;
  limits.max_ops = 4;
  limits.max_bytes = 200;
  client::TxnRequest txn;
  for (int i = 0; i < 4; ++i) {
    client::PutRequest* p = txn.add_success()->mutable_put();
    p->set_key(absl::StrCat("k", i));
    p->set_value("v");
  }
  EXPECT_TRUE(CheckTxn(txn, limits).ok());
  txn.add_compare()->set_key("k0");
  txn.mutable_compare(0)->set_version(0);
  absl::Status s = CheckTxn(txn, limits);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("the limit is 4"), std::string::npos) << s;
  client::TxnRequest big;
  client::PutRequest* p = big.add_success()->mutable_put();
  p->set_key("k");
  while (big.ByteSizeLong() < 200) p->mutable_value()->push_back('v');
  ASSERT_EQ(big.ByteSizeLong(), 200u);
  EXPECT_TRUE(CheckTxn(big, limits).ok());
  p->mutable_value()->push_back('v');
  s = CheckTxn(big, limits);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("the limit is 200"), std::string::npos) << s;
}

TEST_F(KvStoreTest, Range_KeysPrefixesAndRanges) {
  for (const char* k : {"a", "b/1", "b/2", "b/3", "c", "d"}) Run(Put(k, k));
  EXPECT_EQ(Keys(Range("b/2")), std::vector<std::string>{"b/2"});
  EXPECT_TRUE(Range("b/9").kvs().empty());
  EXPECT_EQ(Keys(Range("b/", PrefixEnd("b/"))),
            (std::vector<std::string>{"b/1", "b/2", "b/3"}));
  EXPECT_EQ(Keys(Range("b/2", "d")),
            (std::vector<std::string>{"b/2", "b/3", "c"}));
  EXPECT_EQ(Keys(Range("c", std::string(1, '\0'))),
            (std::vector<std::string>{"c", "d"}));
  EXPECT_EQ(Range(std::string(1, '\0'), std::string(1, '\0')).count(), 6u);
  EXPECT_EQ(PrefixEnd("a\xff"), "b");
  EXPECT_EQ(PrefixEnd("\xff\xff"), std::string(1, '\0'));
  EXPECT_EQ(CheckRange("b", "a").code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(CheckRange("b", "b").code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(CheckRange("", "").code(), absl::StatusCode::kInvalidArgument);
  // Deleting a range removes exactly it.
  client::TxnRequest del;
  del.add_success()->mutable_delete_range()->set_key("b/");
  del.mutable_success(0)->mutable_delete_range()->set_range_end(
      PrefixEnd("b/"));
  EXPECT_EQ(RunTxn(del).responses(0).delete_range().deleted(), 3u);
  EXPECT_EQ(Keys(Range("a", std::string(1, '\0'))),
            (std::vector<std::string>{"a", "c", "d"}));
}

TEST_F(KvStoreTest, Range_LimitSortKeysOnlyAndCountOnly) {
  // Versions: a 3, b 1, c 2; mod revisions: a 6, b 2, c 5.
  Run(Put("a", "z"));  // 1
  Run(Put("b", "y"));  // 2
  Run(Put("c", "x"));  // 3
  Run(Put("a", "z"));  // 4
  Run(Put("c", "x"));  // 5
  Run(Put("a", "w"));  // 6
  const std::string all(1, '\0');
  client::RangeResponse r = Range("a", all, 2);
  EXPECT_EQ(Keys(r), (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(r.count(), 3u);
  EXPECT_TRUE(r.more());
  EXPECT_EQ(r.revision(), 6u);
  auto sorted = [&](client::RangeRequest::SortTarget t,
                    client::RangeRequest::SortOrder o, uint64_t limit = 0) {
    client::RangeRequest q;
    q.set_key("a");
    q.set_range_end(all);
    q.set_sort_target(t);
    q.set_sort_order(o);
    q.set_limit(limit);
    return Keys(*store_.Range(q));
  };
  using R = client::RangeRequest;
  EXPECT_EQ(sorted(R::KEY, R::DESCEND),
            (std::vector<std::string>{"c", "b", "a"}));
  EXPECT_EQ(sorted(R::KEY, R::DESCEND, 1), std::vector<std::string>{"c"});
  EXPECT_EQ(sorted(R::VERSION, R::ASCEND),
            (std::vector<std::string>{"b", "c", "a"}));
  EXPECT_EQ(sorted(R::VERSION, R::DESCEND),
            (std::vector<std::string>{"a", "c", "b"}));
  EXPECT_EQ(sorted(R::CREATE, R::DESCEND),
            (std::vector<std::string>{"c", "b", "a"}));
  EXPECT_EQ(sorted(R::MOD, R::ASCEND),
            (std::vector<std::string>{"b", "c", "a"}));
  EXPECT_EQ(sorted(R::MOD, R::DESCEND, 2),
            (std::vector<std::string>{"a", "c"}));
  EXPECT_EQ(sorted(R::VALUE, R::ASCEND),
            (std::vector<std::string>{"a", "c", "b"}));
  client::RangeRequest q;
  q.set_key("a");
  q.set_range_end(all);
  q.set_keys_only(true);
  r = *store_.Range(q);
  ASSERT_EQ(r.kvs_size(), 3);
  EXPECT_TRUE(r.kvs(0).value().empty());
  EXPECT_EQ(r.kvs(0).version(), 3u);
  q.set_count_only(true);
  r = *store_.Range(q);
  EXPECT_EQ(r.kvs_size(), 0);
  EXPECT_EQ(r.count(), 3u);
  EXPECT_FALSE(r.more());
}

// An answer holds at most kMaxRangeBytes of keys and values: the rest is
// `more`, and the caller continues after the last key it got.
TEST_F(KvStoreTest, Range_AnAnswerIsBoundedInBytes) {
  const std::string value(512 << 10, 'v');
  for (int i = 0; i < 10; ++i) Run(Put(absl::StrCat("big/", i), value));
  client::RangeResponse r = Range("big/", PrefixEnd("big/"));
  EXPECT_EQ(r.count(), 10u);
  EXPECT_TRUE(r.more());
  EXPECT_GT(r.kvs_size(), 0);
  EXPECT_LE(static_cast<size_t>(r.kvs_size()) * value.size(), kMaxRangeBytes);
  size_t total = static_cast<size_t>(r.kvs_size());
  while (r.more()) {
    r = Range(r.kvs(r.kvs_size() - 1).key() + std::string(1, '\0'),
              PrefixEnd("big/"));
    total += static_cast<size_t>(r.kvs_size());
  }
  EXPECT_EQ(total, 10u);
}

// A retried transaction is applied once; the retry learns its outcome.
TEST_F(KvStoreTest, Txn_RetryIsAppliedOnceAndSaysSo) {
  client::TxnRequest txn;
  client::PutRequest* p = txn.add_success()->mutable_put();
  p->set_key("k");
  p->set_value("v");
  txn.add_success()->mutable_range()->set_key("k");
  const client::KvResult first = Run(TxnCmd(txn, 9, 1));
  EXPECT_FALSE(first.txn().replayed());
  EXPECT_EQ(first.txn().responses(1).range().kvs_size(), 1);
  const client::KvResult retry = Run(TxnCmd(txn, 9, 1));
  EXPECT_TRUE(retry.txn().replayed());
  EXPECT_TRUE(retry.txn().succeeded());
  EXPECT_EQ(retry.txn().revision(), first.txn().revision());
  EXPECT_EQ(store_.Get("k")->version, 1u);
}

// Snapshots keep the data model; one taken before it existed (no create
// revision or version) restores with create = mod and version 1; one that
// no store could have taken is refused.
TEST_F(KvStoreTest, Snapshot_DataModelRoundTripsAndOldSnapshotsRestore) {
  Run(Put("a", "1"));
  Run(Put("a", "2"));
  Run(Put("b/x", "3"));
  KvStore other;
  ASSERT_TRUE(other.Restore(store_.Snapshot()()).ok());
  EXPECT_EQ(other.Get("a")->version, 2u);
  EXPECT_EQ(other.Get("a")->create_revision, 1u);
  client::RangeRequest r;
  r.set_key("b/");
  r.set_range_end(PrefixEnd("b/"));
  EXPECT_EQ(other.Range(r)->count(), 1u);  // the order index is rebuilt
  client::KvSnapshot old;
  old.set_revision(4);
  client::KvEntry* e = old.add_entries();
  e->set_key("k");
  e->set_value("v");
  e->set_revision(4);
  ASSERT_TRUE(other.Restore(old.SerializeAsString()).ok());
  EXPECT_EQ(other.Get("k")->create_revision, 4u);
  EXPECT_EQ(other.Get("k")->version, 1u);
  EXPECT_FALSE(other.Get("a").has_value());
  e->set_create_revision(2);
  e->set_version(4);  // four changes in revisions 2..4: impossible
  EXPECT_EQ(other.Restore(old.SerializeAsString()).code(),
            absl::StatusCode::kDataLoss);
  EXPECT_EQ(other.Get("k")->version, 1u);
}

// --- What etcd's API needs of the store (api/etcd_gateway.h). ---

client::RequestOp PutOp(const std::string& key, const std::string& value) {
  client::RequestOp op;
  op.mutable_put()->set_key(key);
  op.mutable_put()->set_value(value);
  return op;
}

client::Compare ValueIs(const std::string& key, const std::string& value) {
  client::Compare c;
  c.set_key(key);
  c.set_target(client::Compare::VALUE);
  c.set_result(client::Compare::EQUAL);
  c.set_value(value);
  return c;
}

TEST_F(KvStoreTest, Txn_NestedCompareAgainstTheStateBeforeTheOuterOne) {
  Run(Put("a", "1"));
  client::TxnRequest t;
  *t.add_success() = PutOp("a", "2");
  // Evaluated before the outer put: "a" is still 1 for the nested compare.
  client::TxnRequest& inner = *t.add_success()->mutable_txn();
  *inner.add_compare() = ValueIs("a", "1");
  *inner.add_success() = PutOp("b", "inner-success");
  *inner.add_failure() = PutOp("b", "inner-failure");
  inner.add_success()->mutable_range()->set_key("a");
  ASSERT_TRUE(CheckTxn(t, TxnLimits{}).ok());
  const client::TxnResponse r = RunTxn(t);
  EXPECT_TRUE(r.succeeded());
  ASSERT_EQ(r.responses_size(), 2);
  const client::TxnResponse& nested = r.responses(1).txn();
  EXPECT_TRUE(nested.succeeded());
  EXPECT_EQ(nested.revision(), 2u);
  ASSERT_EQ(nested.responses_size(), 2);
  // The nested range sees the outer put, at the transaction's revision.
  EXPECT_EQ(nested.responses(1).range().kvs(0).value(), "2");
  EXPECT_EQ(store_.Get("b")->value, "inner-success");
  EXPECT_EQ(store_.revision(), 2u);  // one revision for all of it
}

TEST_F(KvStoreTest, Txn_NestedWritesCountAsTheirBranchs) {
  client::TxnRequest t;
  *t.add_success() = PutOp("k", "outer");
  client::TxnRequest& inner = *t.add_success()->mutable_txn();
  *inner.add_failure() = PutOp("k", "inner");
  const absl::Status s = CheckTxn(t, TxnLimits{});
  EXPECT_TRUE(absl::IsInvalidArgument(s)) << s;
  // The same key in both branches of one nested transaction is fine, and
  // so is a delete in one and a put in the other: only one branch runs.
  client::TxnRequest ok;
  client::TxnRequest& both = *ok.add_success()->mutable_txn();
  *both.add_success() = PutOp("k", "1");
  *both.add_failure() = PutOp("k", "2");
  EXPECT_TRUE(CheckTxn(ok, TxnLimits{}).ok());
  client::TxnRequest exclusive;
  client::TxnRequest& either = *exclusive.add_success()->mutable_txn();
  either.add_success()->mutable_delete_range()->set_key("k");
  *either.add_failure() = PutOp("k", "2");
  EXPECT_TRUE(CheckTxn(exclusive, TxnLimits{}).ok());
  // But not beside a write of that key in the enclosing branch.
  *exclusive.add_success() = PutOp("k", "3");
  EXPECT_TRUE(absl::IsInvalidArgument(CheckTxn(exclusive, TxnLimits{})));
  EXPECT_EQ(ProtocolOf(ok), 2u);
  client::TxnRequest plain;
  *plain.add_success() = PutOp("k", "1");
  EXPECT_EQ(ProtocolOf(plain), 1u);
  plain.mutable_success(0)->mutable_put()->set_ignore_lease(true);
  EXPECT_EQ(ProtocolOf(plain), 2u);
  // Too deep.
  client::TxnRequest deep;
  client::TxnRequest* at = &deep;
  for (int i = 0; i < 20; ++i) at = at->add_success()->mutable_txn();
  EXPECT_TRUE(absl::IsInvalidArgument(CheckTxn(deep, TxnLimits{})));
  EXPECT_FALSE(IsReadOnly(ok));
  client::TxnRequest reads;
  reads.add_success()->mutable_txn()->add_success()->mutable_range()->set_key(
      "k");
  EXPECT_TRUE(IsReadOnly(reads));
  Run(Put("k", "v"));
  const client::TxnResponse r = store_.ReadTxn(reads);
  EXPECT_EQ(r.responses(0).txn().responses(0).range().kvs(0).value(), "v");
}

TEST_F(KvStoreTest, Txn_PrevKvIgnoreValueAndIgnoreLease) {
  client::KvCommand grant;
  grant.mutable_lease_grant()->set_ttl_ms(60000);
  const uint64_t lease = Run(grant).lease_id();
  ASSERT_NE(lease, 0u);
  client::TxnRequest first;
  *first.add_success() = PutOp("k", "v1");
  first.mutable_success(0)->mutable_put()->set_lease(lease);
  first.mutable_success(0)->mutable_put()->set_prev_kv(true);
  const client::TxnResponse r1 = RunTxn(first);
  EXPECT_FALSE(r1.responses(0).put().has_prev_kv());  // it did not exist

  // Keep the value, drop the lease, and say what was there.
  client::TxnRequest keep;
  client::PutRequest* p = keep.add_success()->mutable_put();
  p->set_key("k");
  p->set_ignore_value(true);
  p->set_prev_kv(true);
  const client::TxnResponse r2 = RunTxn(keep);
  EXPECT_EQ(r2.responses(0).put().prev_kv().value(), "v1");
  EXPECT_EQ(r2.responses(0).put().prev_kv().lease(), lease);
  EXPECT_EQ(store_.Get("k")->value, "v1");
  EXPECT_EQ(store_.Get("k")->lease, 0u);
  EXPECT_EQ(store_.Get("k")->version, 2u);

  // Keep the lease, change the value.
  client::TxnRequest attach;
  *attach.add_success() = PutOp("k", "v2");
  attach.mutable_success(0)->mutable_put()->set_lease(lease);
  RunTxn(attach);
  client::TxnRequest keep_lease;
  *keep_lease.add_success() = PutOp("k", "v3");
  keep_lease.mutable_success(0)->mutable_put()->set_ignore_lease(true);
  RunTxn(keep_lease);
  EXPECT_EQ(store_.Get("k")->value, "v3");
  EXPECT_EQ(store_.Get("k")->lease, lease);

  // A key to keep from must exist: refused, nothing applied.
  const uint64_t before = store_.revision();
  client::TxnRequest missing;
  *missing.add_success() = PutOp("other", "x");
  client::PutRequest* m = missing.add_success()->mutable_put();
  m->set_key("none");
  m->set_ignore_value(true);
  const client::KvResult refused = Run(TxnCmd(missing));
  EXPECT_EQ(refused.code(), static_cast<int>(absl::StatusCode::kNotFound));
  EXPECT_FALSE(store_.Get("other").has_value());
  EXPECT_EQ(store_.revision(), before);
  // Both a value and ignore_value: refused before it is proposed.
  client::TxnRequest both;
  client::PutRequest* b = both.add_success()->mutable_put();
  b->set_key("k");
  b->set_value("x");
  b->set_ignore_value(true);
  EXPECT_TRUE(absl::IsInvalidArgument(CheckTxn(both, TxnLimits{})));
  // The plain Put command does not take them.
  client::KvCommand put = Put("k", "");
  put.mutable_put()->set_ignore_value(true);
  EXPECT_EQ(Run(put).code(),
            static_cast<int>(absl::StatusCode::kInvalidArgument));
}

TEST_F(KvStoreTest, Txn_DeleteRangeAnswersWithTheKeysItDeleted) {
  Run(Put("a1", "x"));
  Run(Put("a2", "y"));
  Run(Put("b", "z"));
  client::TxnRequest t;
  client::DeleteRangeRequest* d = t.add_success()->mutable_delete_range();
  d->set_key("a");
  d->set_range_end(PrefixEnd("a"));
  d->set_prev_kv(true);
  const client::TxnResponse r = RunTxn(t);
  const client::DeleteRangeResponse& del = r.responses(0).delete_range();
  EXPECT_EQ(del.deleted(), 2u);
  ASSERT_EQ(del.prev_kvs_size(), 2);
  EXPECT_EQ(del.prev_kvs(0).key(), "a1");
  EXPECT_EQ(del.prev_kvs(0).value(), "x");
  EXPECT_EQ(del.prev_kvs(1).mod_revision(), 2u);
  EXPECT_TRUE(store_.Get("b").has_value());
}

TEST_F(KvStoreTest, Range_RevisionFiltersKeepTheCountAndTheLimitsMore) {
  for (const char* k : {"p1", "p2", "p3", "p4"}) Run(Put(k, "v"));  // 1..4
  Run(Put("p1", "again"));                                          // 5
  client::RangeRequest r;
  r.set_key("p");
  r.set_range_end(PrefixEnd("p"));
  r.set_min_create_revision(2);
  r.set_max_create_revision(3);
  client::RangeResponse got = *store_.Range(r);
  EXPECT_EQ(Keys(got), (std::vector<std::string>{"p2", "p3"}));
  EXPECT_EQ(got.count(), 4u);  // every key in the range
  EXPECT_FALSE(got.more());
  r.set_limit(1);
  got = *store_.Range(r);
  EXPECT_EQ(Keys(got), (std::vector<std::string>{"p2"}));
  EXPECT_TRUE(got.more());  // p3 passed too
  // Mod revisions; newest first, as etcd's locks ask for the one just
  // before their own.
  client::RangeRequest m;
  m.set_key("p");
  m.set_range_end(PrefixEnd("p"));
  m.set_min_mod_revision(4);
  EXPECT_EQ(Keys(*store_.Range(m)), (std::vector<std::string>{"p1", "p4"}));
  client::RangeRequest last;
  last.set_key("p");
  last.set_range_end(PrefixEnd("p"));
  last.set_max_create_revision(3);
  last.set_sort_target(client::RangeRequest::CREATE);
  last.set_sort_order(client::RangeRequest::DESCEND);
  last.set_limit(1);
  EXPECT_EQ(Keys(*store_.Range(last)), (std::vector<std::string>{"p3"}));
  // At a past revision too.
  last.set_revision(2);
  EXPECT_EQ(Keys(*store_.Range(last)), (std::vector<std::string>{"p2"}));
}

TEST_F(KvStoreTest, Compact_DropsTheHistoryBeforeARevision) {
  for (int i = 1; i <= 5; ++i) Run(Put("c", absl::StrCat(i)));
  client::KvCommand compact;
  compact.mutable_compact()->set_revision(3);
  const client::KvResult r = Run(compact);
  EXPECT_EQ(r.code(), 0) << r.message();
  EXPECT_EQ(r.revision(), 5u);
  EXPECT_EQ(store_.revision(), 5u);  // no new revision
  client::RangeRequest at;
  at.set_key("c");
  at.set_revision(3);
  EXPECT_EQ(store_.Range(at)->kvs(0).value(), "3");  // still readable
  at.set_revision(2);
  EXPECT_TRUE(absl::IsOutOfRange(store_.Range(at).status()));
  // A watch may start at the compaction's revision (its change stays), as
  // in etcd, not before.
  EXPECT_EQ(store_.compacted(), 2u);
  EXPECT_EQ(store_.ChangesFrom(3, 10).changes.size(), 3u);
  EXPECT_TRUE(store_.ChangesFrom(2, 10).changes.empty());
  // Not after the last compaction, or in the future: refused, whatever
  // the history window (every member answers the same).
  EXPECT_EQ(Run(compact).code(),
            static_cast<int>(absl::StatusCode::kOutOfRange));
  compact.mutable_compact()->set_revision(2);
  EXPECT_EQ(Run(compact).code(),
            static_cast<int>(absl::StatusCode::kOutOfRange));
  compact.mutable_compact()->set_revision(6);
  EXPECT_EQ(Run(compact).code(),
            static_cast<int>(absl::StatusCode::kOutOfRange));
  // A snapshot keeps the compaction.
  KvStore copy;
  ASSERT_TRUE(copy.Restore(store_.Snapshot()()).ok());
  EXPECT_EQ(copy.compacted(), 2u);
  EXPECT_TRUE(absl::IsOutOfRange(copy.Range(at).status()));
  at.set_revision(3);
  EXPECT_TRUE(copy.Range(at).ok());
}

// A member with a shorter history (--watch_history) answers a Compact the
// same as one with a longer one.
TEST(KvCompactTest, TheAnswerDoesNotDependOnTheHistoryWindow) {
  KvStore small, large;
  small.SetHistoryWindow(2);
  large.SetHistoryWindow(100);
  uint64_t index = 0;
  auto both = [&](const client::KvCommand& c) {
    ++index;
    const std::string a = small.Apply(index, c.SerializeAsString());
    const std::string b = large.Apply(index, c.SerializeAsString());
    EXPECT_EQ(a, b);
    return a;
  };
  for (int i = 0; i < 10; ++i) {
    client::KvCommand put;
    put.mutable_put()->set_key("k");
    put.mutable_put()->set_value(absl::StrCat(i));
    both(put);
  }
  client::KvCommand compact;
  compact.mutable_compact()->set_revision(4);
  client::KvResult r;
  ASSERT_TRUE(r.ParseFromString(both(compact)));
  EXPECT_EQ(r.code(), 0);
  EXPECT_EQ(small.compacted(), 8u);  // its window, not the compaction
  EXPECT_EQ(large.compacted(), 3u);
}

}  // namespace
}  // namespace quorate::coord
