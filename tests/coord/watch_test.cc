// Watches: the store's watch history (events, compaction, reads at past
// revisions, snapshots) and the WatchHub that serves watchers from it,
// driven one pass at a time.
#include "coord/watch.h"

#include <gtest/gtest.h>

#include <map>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "coord/kv.h"

namespace quorate::coord {
namespace {

const std::string kAll(1, '\0');

class HistoryTest : public ::testing::Test {
 protected:
  client::KvResult Run(const client::KvCommand& cmd) {
    client::KvResult r;
    EXPECT_TRUE(
        r.ParseFromString(store_.Apply(++index_, cmd.SerializeAsString())));
    return r;
  }
  client::KvResult Put(const std::string& key, const std::string& value,
                       uint64_t lease = 0) {
    client::KvCommand c;
    c.mutable_put()->set_key(key);
    c.mutable_put()->set_value(value);
    c.mutable_put()->set_lease(lease);
    return Run(c);
  }
  client::KvResult Del(const std::string& key) {
    client::KvCommand c;
    c.mutable_del()->set_key(key);
    return Run(c);
  }
  // Every key now, in order.
  client::RangeResponse All(uint64_t revision = 0) {
    client::RangeRequest r;
    r.set_key(kAll);
    r.set_range_end(kAll);
    r.set_revision(revision);
    absl::StatusOr<client::RangeResponse> out = store_.Range(r);
    EXPECT_TRUE(out.ok()) << out.status();
    return out.ok() ? *out : client::RangeResponse();
  }

  KvStore store_;
  uint64_t index_ = 0;
};

TEST_F(HistoryTest, EveryRevisionKeepsItsEventsWithTheValuesBefore) {
  ASSERT_EQ(Put("a", "1").code(), 0);  // 1
  ASSERT_EQ(Put("a", "2").code(), 0);  // 2
  client::KvCommand t;                 // 3: two events at one revision
  auto* put = t.mutable_txn()->add_success()->mutable_put();
  put->set_key("b");
  put->set_value("3");
  auto* del = t.mutable_txn()->add_success()->mutable_delete_range();
  del->set_key("a");
  ASSERT_EQ(Run(t).code(), 0);
  client::KvCommand g;  // no revision: a grant writes no key
  g.mutable_lease_grant()->set_ttl_ms(5000);
  const uint64_t lease = Run(g).lease_id();
  ASSERT_EQ(Put("c", "4", lease).code(), 0);  // 4
  ASSERT_EQ(Del("nope").code(), 5);           // nothing, no revision
  client::KvCommand e;                        // 5: the lease's key goes
  e.mutable_lease_expire()->add_ids(lease);
  ASSERT_EQ(Run(e).code(), 0);
  ASSERT_EQ(store_.revision(), 5u);

  const KvStore::History h = store_.ChangesFrom(1, 100);
  EXPECT_EQ(h.compacted, 0u);
  EXPECT_EQ(h.revision, 5u);
  ASSERT_EQ(h.changes.size(), 5u);
  for (size_t i = 0; i < h.changes.size(); ++i) {
    EXPECT_EQ(h.changes[i]->revision(), i + 1);
  }
  const auto& r1 = h.changes[0]->events(0);
  EXPECT_EQ(r1.type(), client::WatchEvent::PUT);
  EXPECT_EQ(r1.kv().value(), "1");
  EXPECT_EQ(r1.kv().version(), 1u);
  EXPECT_FALSE(r1.has_prev_kv());
  const auto& r2 = h.changes[1]->events(0);
  EXPECT_EQ(r2.kv().value(), "2");
  EXPECT_EQ(r2.kv().create_revision(), 1u);
  EXPECT_EQ(r2.prev_kv().value(), "1");
  EXPECT_EQ(r2.prev_kv().mod_revision(), 1u);
  ASSERT_EQ(h.changes[2]->events_size(), 2);
  EXPECT_EQ(h.changes[2]->events(0).kv().key(), "b");
  EXPECT_EQ(h.changes[2]->events(1).type(), client::WatchEvent::DELETE);
  EXPECT_EQ(h.changes[2]->events(1).kv().mod_revision(), 3u);
  EXPECT_EQ(h.changes[2]->events(1).prev_kv().value(), "2");
  EXPECT_EQ(h.changes[3]->events(0).kv().lease(), lease);
  EXPECT_EQ(h.changes[4]->events(0).type(), client::WatchEvent::DELETE);
  EXPECT_EQ(h.changes[4]->events(0).kv().key(), "c");
  // From the middle, and capped.
  EXPECT_EQ(store_.ChangesFrom(4, 100).changes.size(), 2u);
  EXPECT_EQ(store_.ChangesFrom(2, 1).changes.size(), 1u);
  EXPECT_TRUE(store_.ChangesFrom(6, 100).changes.empty());
}

// Random writes; the state at every revision the history still holds is
// read back, and compared with what a read at that revision saw then.
TEST_F(HistoryTest, ReadsAtPastRevisionsSeeTheStateThen) {
  store_.SetHistoryWindow(50);
  std::mt19937 rng(7);
  std::map<uint64_t, client::RangeResponse> then;
  then[0] = All();
  while (store_.revision() < 200) {
    const std::string key = "k" + std::to_string(rng() % 12);
    switch (rng() % 4) {
      case 0:
        Del(key);
        break;
      case 1: {
        client::KvCommand c;
        auto* d = c.mutable_txn()->add_success()->mutable_delete_range();
        d->set_key("k1");
        d->set_range_end("k3");
        auto* p = c.mutable_txn()->add_success()->mutable_put();
        p->set_key("k9");
        p->set_value(std::to_string(rng()));
        Run(c);
        break;
      }
      default:
        Put(key, std::to_string(rng()));
    }
    then[store_.revision()] = All();
  }
  EXPECT_EQ(store_.compacted(), 150u);
  for (uint64_t r = 150; r <= 200; ++r) {
    const client::RangeResponse past = All(r);
    EXPECT_EQ(past.SerializeAsString(), then[r].SerializeAsString())
        << "at revision " << r;
  }
  // Options apply to the past state too.
  client::RangeRequest q;
  q.set_key("k");
  q.set_range_end(PrefixEnd("k"));
  q.set_revision(160);
  q.set_limit(2);
  q.set_sort_order(client::RangeRequest::DESCEND);
  absl::StatusOr<client::RangeResponse> limited = store_.Range(q);
  ASSERT_TRUE(limited.ok());
  ASSERT_EQ(limited->kvs_size(), std::min(2, then[160].kvs_size()));
  EXPECT_EQ(limited->count(), then[160].count());
  EXPECT_EQ(limited->kvs(0).key(),
            then[160].kvs(then[160].kvs_size() - 1).key());
  // Before the history, and after the store.
  q.set_revision(149);
  absl::StatusOr<client::RangeResponse> old = store_.Range(q);
  EXPECT_EQ(old.status().code(), absl::StatusCode::kOutOfRange);
  EXPECT_NE(old.status().message().find("oldest revision readable is 150"),
            std::string::npos)
      << old.status();
  q.set_revision(201);
  EXPECT_EQ(store_.Range(q).status().code(), absl::StatusCode::kOutOfRange);
  // A transaction reads the current state only.
  client::TxnRequest txn;
  txn.add_success()->mutable_range()->set_key("k1");
  txn.mutable_success(0)->mutable_range()->set_revision(160);
  EXPECT_EQ(CheckTxn(txn, TxnLimits{}).code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(HistoryTest, SnapshotsCarryTheHistory) {
  store_.SetHistoryWindow(20);
  for (int i = 0; i < 30; ++i) Put("k" + std::to_string(i % 4), "v");
  KvStore other;
  ASSERT_TRUE(other.Restore(store_.Snapshot()()).ok());
  EXPECT_EQ(other.compacted(), 10u);
  const KvStore::History a = store_.ChangesFrom(11, 100);
  const KvStore::History b = other.ChangesFrom(11, 100);
  ASSERT_EQ(a.changes.size(), 20u);
  ASSERT_EQ(b.changes.size(), 20u);
  for (size_t i = 0; i < a.changes.size(); ++i) {
    EXPECT_EQ(a.changes[i]->SerializeAsString(),
              b.changes[i]->SerializeAsString());
  }
  // A smaller window keeps the newest.
  KvStore small;
  small.SetHistoryWindow(5);
  ASSERT_TRUE(small.Restore(store_.Snapshot()()).ok());
  EXPECT_EQ(small.compacted(), 25u);
  // A history with a gap is refused, and changes nothing.
  client::KvSnapshot snap;
  ASSERT_TRUE(snap.ParseFromString(store_.Snapshot()()));
  snap.mutable_history()->erase(snap.mutable_history()->begin() + 3);
  const absl::Status s = small.Restore(snap.SerializeAsString());
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss);
  EXPECT_NE(s.message().find("watch history"), std::string::npos) << s;
  EXPECT_EQ(small.compacted(), 25u);
  // A snapshot from before histories: everything before it is compacted.
  client::KvSnapshot legacy;
  legacy.set_revision(7);
  KvStore fresh;
  ASSERT_TRUE(fresh.Restore(legacy.SerializeAsString()).ok());
  EXPECT_EQ(fresh.compacted(), 7u);
}

// --- The hub. ---

int64_t fake_now = 0;
int64_t FakeClock() { return fake_now; }

class WatchTest : public HistoryTest {
 protected:
  WatchTest() { fake_now = 1'000'000'000; }
  void MakeHub(WatchLimits limits = {}) {
    hub_ = std::make_unique<WatchHub>(&store_, limits, FakeClock);
  }
  std::shared_ptr<WatchStream> Open() {
    return hub_->Open([this] { ++wakes_; });
  }
  static client::WatchRequest Create(int64_t id, const std::string& key,
                                     const std::string& end = "",
                                     uint64_t start = 0, bool prev = false) {
    client::WatchRequest r;
    client::WatchCreate* c = r.mutable_create();
    c->set_watch_id(id);
    c->set_key(key);
    c->set_range_end(end);
    c->set_start_revision(start);
    c->set_prev_kv(prev);
    return r;
  }
  // Everything waiting on `s`.
  static std::vector<client::WatchResponse> Drain(WatchStream& s) {
    std::vector<client::WatchResponse> out;
    while (std::optional<client::WatchResponse> r = s.Next()) {
      out.push_back(*r);
    }
    return out;
  }
  // "KEY@REV" (PUT) or "-KEY@REV" (DELETE) for each event.
  static std::vector<std::string> Events(
      const std::vector<client::WatchResponse>& rs) {
    std::vector<std::string> out;
    for (const client::WatchResponse& r : rs) {
      for (const client::WatchEvent& e : r.events()) {
        out.push_back((e.type() == client::WatchEvent::DELETE ? "-" : "") +
                      e.kv().key() + "@" +
                      std::to_string(e.kv().mod_revision()));
      }
    }
    return out;
  }

  std::unique_ptr<WatchHub> hub_;
  int wakes_ = 0;
};

TEST_F(WatchTest, AWatcherGetsItsRangesEventsInOrder) {
  MakeHub();
  Put("x", "0");  // before the watch: not reported
  std::shared_ptr<WatchStream> s = Open();
  s->Handle(Create(1, "a/", PrefixEnd("a/"), 0, /*prev=*/true));
  client::WatchRequest filtered = Create(2, "a/1");
  filtered.mutable_create()->set_no_put(true);
  s->Handle(filtered);
  EXPECT_GE(wakes_, 1);
  std::vector<client::WatchResponse> rs = Drain(*s);
  ASSERT_EQ(rs.size(), 2u);
  EXPECT_TRUE(rs[0].created());
  EXPECT_FALSE(rs[0].canceled());
  EXPECT_EQ(rs[0].revision(), 1u);
  Put("a/1", "v1");
  Put("b", "no");
  Put("a/1", "v2");
  Del("a/1");
  hub_->RunOnce();
  rs = Drain(*s);
  std::vector<client::WatchResponse> one, two;
  for (const auto& r : rs) (r.watch_id() == 1 ? one : two).push_back(r);
  EXPECT_EQ(Events(one),
            (std::vector<std::string>{"a/1@2", "a/1@4", "-a/1@5"}));
  EXPECT_EQ(Events(two), std::vector<std::string>{"-a/1@5"});
  ASSERT_EQ(one.size(), 1u);  // one message for what one pass found
  EXPECT_EQ(one[0].revision(), 5u);
  EXPECT_EQ(one[0].events(1).prev_kv().value(), "v1");
  EXPECT_FALSE(two[0].events(0).has_prev_kv());  // not asked for
  // Canceled: nothing more comes.
  client::WatchRequest cancel;
  cancel.mutable_cancel()->set_watch_id(1);
  s->Handle(cancel);
  Put("a/2", "v");
  hub_->RunOnce();
  rs = Drain(*s);
  ASSERT_EQ(rs.size(), 1u);
  EXPECT_TRUE(rs[0].canceled());
  EXPECT_EQ(rs[0].code(), 0);
}

// A watch from a past revision, read in part, then resumed on a new stream
// from the last revision it got: every event once, in order.
TEST_F(WatchTest, ResumingFromTheLastRevisionSeenMissesAndRepeatsNothing) {
  WatchLimits limits;
  limits.buffer_bytes = 2000;
  MakeHub(limits);
  std::vector<std::string> want;
  for (int i = 0; i < 300; ++i) {
    const std::string key = "k" + std::to_string(i % 7);
    Put(key, std::string(100, 'v'));
    want.push_back(key + "@" + std::to_string(i + 1));
  }
  std::vector<std::string> got;
  uint64_t last = 0;
  for (int round = 0; got.size() < want.size(); ++round) {
    ASSERT_LT(round, 100);
    std::shared_ptr<WatchStream> s = Open();
    s->Handle(Create(0, "k", PrefixEnd("k"), last + 1));
    // Read a few messages, then "lose the connection".
    for (int i = 0; i < 3; ++i) {
      hub_->RunOnce();
      std::optional<client::WatchResponse> r = s->Next();
      if (!r.has_value()) break;
      ASSERT_FALSE(r->canceled()) << r->message();
      for (const std::string& e : Events({*r})) got.push_back(e);
      last = r->revision();
    }
    // Catching up, it was never cut off, and its outbox stayed bounded.
    EXPECT_EQ(hub_->stats().cut_off, 0u);
    s->Close();
  }
  EXPECT_EQ(got, want);
}

TEST_F(WatchTest, ACaughtUpWatcherThatFallsBehindIsCutOff) {
  WatchLimits limits;
  limits.buffer_bytes = 1000;
  MakeHub(limits);
  std::shared_ptr<WatchStream> slow = Open();
  std::shared_ptr<WatchStream> fast = Open();
  slow->Handle(Create(7, "k"));
  fast->Handle(Create(7, "k"));
  hub_->RunOnce();
  ASSERT_TRUE(slow->Next()->created());
  std::optional<client::WatchResponse> first;
  Put("k", std::string(300, 'a'));  // 1
  hub_->RunOnce();
  first = slow->Next();  // the slow one reads this, then stops
  ASSERT_TRUE(first.has_value());
  EXPECT_EQ(first->revision(), 1u);
  std::vector<std::string> fast_got;
  for (int i = 2; i <= 10; ++i) {
    Put("k", std::string(300, 'a'));
    hub_->RunOnce();
    for (const std::string& e : Events(Drain(*fast))) fast_got.push_back(e);
  }
  std::vector<client::WatchResponse> rs = Drain(*slow);
  ASSERT_FALSE(rs.empty());
  const client::WatchResponse& last = rs.back();
  EXPECT_TRUE(last.canceled());
  EXPECT_EQ(last.code(),
            static_cast<int>(absl::StatusCode::kResourceExhausted));
  EXPECT_EQ(last.revision(), 1u);  // the last one it was handed
  EXPECT_NE(last.message().find("--watch_buffer_bytes"), std::string::npos);
  EXPECT_EQ(rs.size(), 1u);  // its queued events were dropped
  EXPECT_EQ(hub_->stats().cut_off, 1u);
  // The fast one got everything.
  std::vector<std::string> all;
  for (int i = 1; i <= 10; ++i) all.push_back("k@" + std::to_string(i));
  EXPECT_EQ(fast_got, all);
  EXPECT_FALSE(fast->Next().has_value());
  // Resumed from there, it gets the rest.
  slow->Handle(Create(8, "k", "", last.revision() + 1));
  std::vector<std::string> slow_got = Events({*first});
  for (int i = 0; i < 20; ++i) {
    hub_->RunOnce();
    for (const auto& r : Drain(*slow)) {
      ASSERT_FALSE(r.canceled());
      for (const std::string& e : Events({r})) slow_got.push_back(e);
    }
  }
  EXPECT_EQ(slow_got, all);
}

// A revision whose events hold more than a message's worth comes in
// fragments, after the revisions before it and before those after it.
TEST_F(WatchTest, ALargeRevisionComesInFragments) {
  MakeHub();
  std::shared_ptr<WatchStream> s = Open();
  s->Handle(Create(1, "k", PrefixEnd("k")));
  Drain(*s);
  Put("k0", "small");     // 1
  client::KvCommand big;  // 2: two values of 700 KB
  for (const char* key : {"k1", "k2"}) {
    auto* p = big.mutable_txn()->add_success()->mutable_put();
    p->set_key(key);
    p->set_value(std::string(700 << 10, 'v'));
  }
  ASSERT_EQ(Run(big).code(), 0);
  Put("k3", "small");  // 3
  hub_->RunOnce();
  std::vector<client::WatchResponse> rs = Drain(*s);
  ASSERT_EQ(rs.size(), 4u);
  EXPECT_EQ(Events({rs[0]}), std::vector<std::string>{"k0@1"});
  EXPECT_FALSE(rs[0].fragment());
  EXPECT_EQ(Events({rs[1]}), std::vector<std::string>{"k1@2"});
  EXPECT_TRUE(rs[1].fragment());
  EXPECT_EQ(rs[1].revision(), 2u);
  EXPECT_EQ(Events({rs[2]}), std::vector<std::string>{"k2@2"});
  EXPECT_FALSE(rs[2].fragment());
  EXPECT_EQ(Events({rs[3]}), std::vector<std::string>{"k3@3"});
}

TEST_F(WatchTest, RefusesBadCreatesAndCompactedRevisions) {
  store_.SetHistoryWindow(10);
  WatchLimits limits;
  limits.max_watchers_per_stream = 2;
  MakeHub(limits);
  for (int i = 0; i < 15; ++i) Put("k", "v");
  std::shared_ptr<WatchStream> s = Open();
  auto answer = [&](const client::WatchRequest& r) {
    s->Handle(r);
    std::vector<client::WatchResponse> rs = Drain(*s);
    EXPECT_EQ(rs.size(), 1u);
    return rs.empty() ? client::WatchResponse() : rs[0];
  };
  client::WatchResponse r = answer(Create(1, "k", "", 5));
  EXPECT_TRUE(r.created() && r.canceled());
  EXPECT_EQ(r.code(), static_cast<int>(absl::StatusCode::kOutOfRange));
  EXPECT_EQ(r.compact_revision(), 5u);
  EXPECT_NE(r.message().find("oldest revision a watch can start at is 6"),
            std::string::npos)
      << r.message();
  EXPECT_FALSE(answer(Create(1, "k", "", 6)).canceled());
  r = answer(Create(1, "k"));
  EXPECT_EQ(r.code(), static_cast<int>(absl::StatusCode::kInvalidArgument));
  EXPECT_NE(r.message().find("in use"), std::string::npos);
  r = answer(Create(2, ""));
  EXPECT_EQ(r.code(), static_cast<int>(absl::StatusCode::kInvalidArgument));
  r = answer(Create(2, "b", "a"));
  EXPECT_EQ(r.code(), static_cast<int>(absl::StatusCode::kInvalidArgument));
  EXPECT_FALSE(answer(Create(2, "k")).canceled());
  r = answer(Create(3, "k"));
  EXPECT_EQ(r.code(), static_cast<int>(absl::StatusCode::kResourceExhausted));
  EXPECT_NE(r.message().find("--max_watchers_per_stream"), std::string::npos);
  EXPECT_EQ(s->watchers(), 2u);
}

TEST_F(WatchTest, AWatcherThatFallsOutOfTheHistoryIsToldSo) {
  store_.SetHistoryWindow(10);
  WatchLimits limits;
  limits.buffer_bytes = 500;
  MakeHub(limits);
  Put("k", std::string(400, 'v'));
  std::shared_ptr<WatchStream> s = Open();
  s->Handle(Create(1, "k", "", 1));  // catching up, never read
  hub_->RunOnce();
  for (int i = 0; i < 20; ++i) Put("k", std::string(400, 'v'));
  hub_->RunOnce();
  std::vector<client::WatchResponse> rs = Drain(*s);
  ASSERT_FALSE(rs.empty());
  EXPECT_EQ(rs.back().code(), static_cast<int>(absl::StatusCode::kOutOfRange));
  EXPECT_EQ(rs.back().compact_revision(), 11u);
}

TEST_F(WatchTest, ProgressNotificationsCarryTheRevisionWhileNothingChanges) {
  WatchLimits limits;
  limits.progress_interval_ns = 1'000'000'000;
  MakeHub(limits);
  Put("other", "v");
  std::shared_ptr<WatchStream> s = Open();
  client::WatchRequest c = Create(1, "quiet");
  c.mutable_create()->set_progress_notify(true);
  s->Handle(c);
  s->Handle(Create(2, "quiet"));  // did not ask
  Drain(*s);
  Put("other", "v");
  Put("other", "v");
  fake_now += 500'000'000;
  hub_->RunOnce();
  EXPECT_TRUE(Drain(*s).empty());  // not yet due
  fake_now += 600'000'000;
  hub_->RunOnce();
  std::vector<client::WatchResponse> rs = Drain(*s);
  ASSERT_EQ(rs.size(), 1u);
  EXPECT_EQ(rs[0].watch_id(), 1);
  EXPECT_TRUE(rs[0].events().empty());
  EXPECT_EQ(rs[0].revision(), 3u);
  // On request, every watcher says how far it got.
  client::WatchRequest progress;
  progress.mutable_progress();
  s->Handle(progress);
  EXPECT_EQ(Drain(*s).size(), 2u);
}

}  // namespace
}  // namespace quorate::coord
