// The partition guard through the public API: members started in this
// process with quorate::Member, their Permits and on_pause/on_resume.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <atomic>
#include <filesystem>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "quorate/member.h"
#include "util/mutex.h"
#include "util/port.h"

namespace quorate {
namespace {

using testing::PortReservation;

// What one member's callbacks said, in order.
struct Calls {
  Mutex mu;
  CondVar changed;
  std::vector<std::string> said ABSL_GUARDED_BY(mu);  // "resume t.i", "pause"
  std::vector<std::string> reasons ABSL_GUARDED_BY(mu);

  // Waits (at most 20 s) until `pred` holds for what was said.
  bool Await(const std::function<bool(const std::vector<std::string>&)>& pred) {
    MutexLock lock(&mu);
    const absl::Time until = absl::Now() + absl::Seconds(20);
    while (!pred(said)) {
      if (absl::Now() >= until) return false;
      changed.WaitWithTimeout(&mu, until - absl::Now());
    }
    return true;
  }
};

bool EndsWith(const std::vector<std::string>& said, absl::string_view prefix) {
  return !said.empty() && absl::StartsWith(said.back(), prefix);
}

class PermitTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/quorate-permit-test-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    root_ = tmpl;
    for (int i = 0; i < 3; ++i) {
      ports_.push_back(std::make_unique<PortReservation>());
      calls_.push_back(std::make_unique<Calls>());
    }
    std::vector<PeerSpec> peers;
    for (int i = 0; i < 3; ++i) {
      peers.push_back({absl::StrCat("n", i + 1), "az-a", ports_[i]->address()});
    }
    for (int i = 0; i < 3; ++i) {
      MemberOptions o = Options(i);
      o.peers = peers;
      Calls* c = calls_[i].get();
      o.on_resume = [c](FencingToken t) {
        MutexLock lock(&c->mu);
        c->said.push_back(absl::StrCat("resume ", t.term, ".", t.index));
        c->changed.SignalAll();
      };
      o.on_pause = [c](const std::string& reason) {
        MutexLock lock(&c->mu);
        c->said.push_back("pause");
        c->reasons.push_back(reason);
        c->changed.SignalAll();
      };
      auto m = Member::Start(o);
      ASSERT_TRUE(m.ok()) << m.status();
      members_.push_back(*std::move(m));
    }
  }
  void TearDown() override {
    members_.clear();
    std::filesystem::remove_all(root_);
  }

  // Member i's options, without peers or callbacks.
  MemberOptions Options(int i) const {
    MemberOptions o;
    o.id = absl::StrCat("n", i + 1);
    o.zone = "az-a";
    o.cluster_id = "permit-test";
    o.listen_address = ports_[i]->address();
    o.data_dir = absl::StrCat(root_, "/n", i + 1);
    o.heartbeat_interval = absl::Milliseconds(20);
    o.election_timeout = absl::Milliseconds(200);
    o.window_margin = absl::Milliseconds(20);
    o.resume_dwell = absl::Milliseconds(100);
    o.wal_segment_bytes = 1 << 20;
    o.log = [](absl::string_view) {};
    return o;
  }

  std::string root_;
  std::vector<std::unique_ptr<PortReservation>> ports_;
  std::vector<std::unique_ptr<Calls>> calls_;
  std::vector<std::unique_ptr<Member>> members_;
};

TEST_F(PermitTest, EveryMemberBecomesActiveWithTheLeadersToken) {
  for (auto& c : calls_) {
    ASSERT_TRUE(c->Await([](const auto& s) { return EndsWith(s, "resume"); }));
  }
  FencingToken first;
  for (size_t i = 0; i < members_.size(); ++i) {
    FencingToken t;
    // Renewals keep the window open: valid now, and still valid later.
    ASSERT_TRUE(members_[i]->GetPermit().Valid(&t)) << i;
    if (i == 0) first = t;
    EXPECT_EQ(t, first) << "one leader, one term, one token";
    EXPECT_GT(t.term, 0u);
    EXPECT_GT(t.index, 0u);
    const MemberStatus s = members_[i]->GetStatus();
    EXPECT_TRUE(s.active);
    EXPECT_GT(s.active_for_ms, 0);
    EXPECT_EQ(s.token, t);
    MutexLock lock(&calls_[i]->mu);
    EXPECT_EQ(calls_[i]->said.size(), 1u) << "no flapping on a healthy cluster";
  }
}

TEST_F(PermitTest, AMemberCutOffFromItsQuorumPausesAndItsPermitLapses) {
  for (auto& c : calls_) {
    ASSERT_TRUE(c->Await([](const auto& s) { return EndsWith(s, "resume"); }));
  }
  // Readers on many threads (TSan sees them race with the guard's writes).
  std::atomic<bool> stop{false};
  std::atomic<int> regressions{0};
  std::vector<std::thread> readers;
  const Permit permit = members_[0]->GetPermit();
  for (int i = 0; i < 4; ++i) {
    readers.emplace_back([&] {
      FencingToken last;
      while (!stop.load()) {
        FencingToken t;
        if (permit.Valid(&t)) {
          if (t < last) ++regressions;
          last = t;
        }
      }
    });
  }
  // n1 alone: the others stop (a leader among them hands over first).
  members_[1]->Stop();
  members_[2]->Stop();
  ASSERT_TRUE(
      calls_[0]->Await([](const auto& s) { return EndsWith(s, "pause"); }));
  // The callback came once the window had ended: from then on, no.
  EXPECT_FALSE(permit.Valid());
  EXPECT_FALSE(members_[0]->GetStatus().active);
  EXPECT_EQ(members_[0]->GetStatus().active_for_ms, 0);
  {
    MutexLock lock(&calls_[0]->mu);
    EXPECT_NE(calls_[0]->reasons.back().find("no quorum contact for"),
              std::string::npos)
        << calls_[0]->reasons.back();
  }
  EXPECT_NE(members_[0]->GetStatus().pause_reason.find("no quorum contact"),
            std::string::npos);
  stop = true;
  for (std::thread& r : readers) r.join();
  EXPECT_EQ(regressions.load(), 0) << "tokens never go back";
  // Stopped members' permits are never valid.
  EXPECT_FALSE(members_[1]->GetPermit().Valid());
}

TEST_F(PermitTest, APausedMemberResumesOnceItsQuorumIsBack) {
  for (auto& c : calls_) {
    ASSERT_TRUE(c->Await([](const auto& s) { return EndsWith(s, "resume"); }));
  }
  // n2 and n3 stop: n1 pauses. n3 comes back from its data directory, on
  // its port: n1 resumes (at once under a newer leader term, after the
  // dwell under the same one).
  members_[2]->Stop();
  members_[1]->Stop();
  ASSERT_TRUE(
      calls_[0]->Await([](const auto& s) { return EndsWith(s, "pause"); }));
  members_[2].reset();
  auto m = Member::Start(Options(2));
  ASSERT_TRUE(m.ok()) << m.status();
  members_[2] = *std::move(m);
  ASSERT_TRUE(calls_[0]->Await(
      [](const auto& s) { return s.size() >= 3 && EndsWith(s, "resume"); }));
  size_t seen = 0;
  {
    MutexLock lock(&calls_[0]->mu);
    seen = calls_[0]->said.size();
  }
  // Valid now, unless it paused again since: n3's return may take more than
  // one election on a slow (sanitizer) build, and every new term closes
  // the last window. Then that pause is told too.
  if (!members_[0]->GetPermit().Valid()) {
    EXPECT_TRUE(calls_[0]->Await([seen](const auto& s) {
      return s.size() > seen && EndsWith(s, "pause");
    }));
  }
  MutexLock lock(&calls_[0]->mu);
  // In order, from a resume: never two of a kind in a row.
  const std::vector<std::string> said = calls_[0]->said;
  ASSERT_GE(said.size(), 3u);
  for (size_t i = 0; i < said.size(); ++i) {
    EXPECT_EQ(absl::StartsWith(said[i], "resume"), i % 2 == 0)
        << i << ": " << said[i];
  }
}

}  // namespace
}  // namespace quorate
