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

}  // namespace
}  // namespace quorate::coord
