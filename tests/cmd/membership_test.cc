// Operating a cluster of quorate-node processes (docs/operations.md): runtime
// membership (quoratectl member ..., quorate-node --join), leadership
// transfer, backup and restore, and forcing a new cluster from a survivor.
#include <gtest/gtest.h>
#include <signal.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "chaos/check.h"
#include "cmd/node_processes.h"
#include "quorate/client.h"
#include "quorate/version.h"
#include "util/clock.h"
#include "util/mutex.h"

namespace quorate {
namespace {

using testing::JsonString;
using testing::QuorateNodeTest;
using testing::ReadAll;

class MembershipTest : public QuorateNodeTest {
 protected:
  void SetUp() override {
    QuorateNodeTest::SetUp();
    // Windows that outlast a sanitizer build's stalls.
    election_timeout_ = "1s";
  }

  // quoratectl against the members named (all running, not removed, when
  // none are).
  Ctl Run(std::vector<std::string> args,
          const std::vector<std::string>& names = {}) {
    std::vector<std::string> use = names;
    if (use.empty()) {
      for (const auto& [name, m] : members_) {
        if (m.process != nullptr && !m.removed) use.push_back(name);
      }
    }
    args.insert(args.begin(), "--endpoints=" + Endpoints(use));
    return Quoratectl(args);
  }

  // `member list` as lines "ID ZONE ADDRESS voter|learner VERSION".
  std::vector<std::string> MemberList() {
    const struct Ctl c = Run({"member", "list"});
    EXPECT_EQ(c.exit, 0) << c.out;
    return absl::StrSplit(c.out, '\n', absl::SkipEmpty());
  }

  // Adds `name` (defined with DefineJoiner) as a learner, starts it with
  // --join, and promotes it once it has caught up.
  void Join(const std::string& name) {
    Member& m = members_[name];
    const struct Ctl add =
        Run({"member", "add", name, m.zone, m.port->address(), "--learner"});
    ASSERT_EQ(add.exit, 0) << add.out;
    EXPECT_TRUE(absl::StartsWith(add.out, "added " + name + " ")) << add.out;
    Start(name);
    // Refused (exit 1, "not caught up") until it has.
    struct Ctl promote;
    ASSERT_TRUE(Await(
        [&] {
          promote = Run({"member", "promote", name});
          return promote.exit == 0;
        },
        absl::Seconds(60)))
        << promote.out;
  }

  // Every active window of a term ended before a later term's leader was
  // elected, and one leader per term, over every member's event log.
  void CheckEventLogs() {
    std::vector<chaos::Event> all;
    for (const auto& [name, m] : members_) {
      const std::string path = root_ + "/" + name + ".events";
      if (!std::filesystem::exists(path)) continue;
      absl::StatusOr<std::vector<chaos::Event>> events =
          chaos::ReadEventLog(path);
      ASSERT_TRUE(events.ok()) << events.status();
      all.insert(all.end(), events->begin(), events->end());
    }
    for (const chaos::Verdict& v : chaos::CheckEvents(all, MonotonicNowNs())) {
      EXPECT_TRUE(v.ok) << v.name << ": " << v.detail;
    }
  }
};

// Writes keys w/0, w/1, ... one at a time until stopped, and remembers
// which were acknowledged.
class Writer {
 public:
  explicit Writer(const std::string& endpoints) {
    ClientOptions o;
    o.endpoints = absl::StrSplit(endpoints, ',');
    o.timeout = absl::Seconds(5);
    auto c = Client::Create(o);
    QUORATE_CHECK(c.ok()) << c.status();
    client_ = *std::move(c);
    thread_ = std::thread([this] {
      for (int i = 0; !stop_.load(); ++i) {
        const std::string key = absl::StrCat("w/", i);
        if (client_->Put(key, absl::StrCat(i)).ok()) {
          MutexLock lock(&mu_);
          acked_.insert(key);
        } else {
          ++failed_;
        }
      }
    });
  }
  ~Writer() { Stop(); }
  void Stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }
  size_t acked() {
    MutexLock lock(&mu_);
    return acked_.size();
  }
  // Waits until `n` more writes than now were acknowledged.
  bool AwaitMore(size_t n, absl::Duration limit = absl::Seconds(30)) {
    const size_t want = acked() + n;
    const absl::Time until = absl::Now() + limit;
    while (acked() < want) {
      if (absl::Now() >= until) return false;
      absl::SleepFor(absl::Milliseconds(10));
    }
    return true;
  }
  std::set<std::string> acked_keys() {
    MutexLock lock(&mu_);
    return acked_;
  }
  int failed() const { return failed_.load(); }

 private:
  std::unique_ptr<Client> client_;
  std::atomic<bool> stop_{false};
  std::atomic<int> failed_{0};
  Mutex mu_;
  std::set<std::string> acked_ ABSL_GUARDED_BY(mu_);
  std::thread thread_;
};

// The keys under w/, read at `endpoint` (linearizable), page by page.
absl::StatusOr<std::set<std::string>> ReadKeys(const std::string& endpoint) {
  ClientOptions o;
  o.endpoints = {endpoint};
  o.timeout = absl::Seconds(10);
  auto c = Client::Create(o);
  if (!c.ok()) return c.status();
  RangeOptions range;
  range.range_end = PrefixEnd("w/");
  range.keys_only = true;
  std::set<std::string> read;
  std::string from = "w/";
  while (true) {
    absl::StatusOr<RangeResult> r = (*c)->Range(from, range);
    if (!r.ok()) return r.status();
    for (const KeyRecord& kv : r->kvs) read.insert(kv.key);
    if (!r->more || r->kvs.empty()) return read;
    from = r->kvs.back().key + std::string(1, '\0');
  }
}

// Every key in `keys` read back with a linearizable read at `endpoint`.
void ExpectAllRead(const std::string& endpoint,
                   const std::set<std::string>& keys) {
  absl::StatusOr<std::set<std::string>> r = ReadKeys(endpoint);
  ASSERT_TRUE(r.ok()) << r.status();
  const std::set<std::string>& read = *r;
  size_t missing = 0;
  for (const std::string& k : keys) missing += read.count(k) == 0;
  EXPECT_EQ(missing, 0u) << "of " << keys.size() << " acknowledged writes, "
                         << missing << " are not read back at " << endpoint;
}

TEST_F(MembershipTest, GrowThreeToFive_UnderWriteLoad_LosesNothing) {
  Define(3);
  for (auto& [name, m] : members_) Start(name);
  ASSERT_FALSE(AwaitLeader().empty());
  Writer writer(Endpoints({"n1", "n2", "n3"}));
  ASSERT_TRUE(writer.AwaitMore(50));
  DefineJoiner("n4", "az-d");
  DefineJoiner("n5", "az-e");
  for (const std::string name : {"n4", "n5"}) {
    Join(name);
    if (HasFatalFailure()) return;
    // Writes go on after each change.
    ASSERT_TRUE(writer.AwaitMore(50))
        << "no writes after " << name << " joined";
  }
  writer.Stop();
  const std::vector<std::string> list = MemberList();
  ASSERT_EQ(list.size(), 5u);
  for (const std::string& line : list) {
    // "ID ZONE ADDRESS voter VERSION": each member's version, from its
    // Hello (the leader's own for itself).
    EXPECT_TRUE(absl::StrContains(line, absl::StrCat(" voter ", Version())))
        << line;
  }
  const std::set<std::string> acked = writer.acked_keys();
  ExpectAllRead(members_["n1"].port->address(), acked);
  // The new members hold the whole state, including what came before they
  // joined (the leader's snapshot) and after.
  ExpectAllRead(members_["n5"].port->address(), acked);
  CheckEventLogs();
  // A member that joined restarts like any other (its directory knows
  // the cluster now).
  members_["n4"].process.reset();
  Start("n4");
  ASSERT_TRUE(Await([&] {
    return JsonString(Status("n4"), "role") == "follower" &&
           testing::JsonInt(Status("n4"), "applied_index") > 0;
  }));
  ExpectAllRead(members_["n4"].port->address(), acked);
  // /status names each peer's version.
  const std::string s = Status("n4");
  EXPECT_EQ(JsonString(s, "version"), Version());
  EXPECT_TRUE(
      absl::StrContains(s, absl::StrCat("\"version\": \"", Version(), "\"}")))
      << s;
}

TEST_F(MembershipTest, ReplaceDeadMember_ClusterKeepsCommitting) {
  Define(3);
  for (auto& [name, m] : members_) Start(name);
  std::string leader = AwaitLeader();
  ASSERT_FALSE(leader.empty());
  const std::string dead = leader == "n3" ? "n2" : "n3";
  members_[dead].process->Signal(SIGKILL);
  members_[dead].process.reset();
  std::vector<std::string> live;
  for (const auto& [name, m] : members_) {
    if (name != dead) live.push_back(name);
  }
  Writer writer(Endpoints(live));
  ASSERT_TRUE(writer.AwaitMore(20));
  DefineJoiner("n4", "az-d");
  // A fourth voter while one of three is dead: 2 of 4 reachable is no
  // quorum, so it is refused, and nothing changes.
  const struct Ctl voter = Run(
      {"member", "add", "n4", "az-d", members_["n4"].port->address()}, live);
  EXPECT_EQ(voter.exit, 1) << voter.out;
  EXPECT_TRUE(absl::StrContains(voter.out, "quorum")) << voter.out;
  EXPECT_EQ(MemberList().size(), 3u);
  // Remove the dead one, then add the replacement with an empty directory.
  const struct Ctl removed = Run({"member", "remove", dead}, live);
  ASSERT_EQ(removed.exit, 0) << removed.out;
  members_[dead].removed = true;
  ASSERT_TRUE(writer.AwaitMore(20)) << "no writes after the removal";
  Join("n4");
  if (HasFatalFailure()) return;
  ASSERT_TRUE(writer.AwaitMore(20)) << "no writes after the replacement";
  writer.Stop();
  const std::vector<std::string> list = MemberList();
  EXPECT_EQ(list.size(), 3u);
  for (const std::string& line : list) {
    EXPECT_FALSE(absl::StartsWith(line, dead + " ")) << line;
  }
  ExpectAllRead(members_["n4"].port->address(), writer.acked_keys());
  CheckEventLogs();
}

TEST_F(MembershipTest, RemovedMemberKeepsRunning_DisturbsNothing) {
  Define(3);
  for (auto& [name, m] : members_) Start(name);
  const std::string leader = AwaitLeader();
  ASSERT_FALSE(leader.empty());
  const std::string gone = leader == "n3" ? "n2" : "n3";
  const struct Ctl removed = Run({"member", "remove", gone});
  ASSERT_EQ(removed.exit, 0) << removed.out;
  members_[gone].removed = true;
  const int64_t term = testing::JsonInt(Status(leader), "term");
  // It keeps running, cut off: its election timer fires and it campaigns
  // (pre-vote) again and again, for several election timeouts.
  std::vector<std::string> rest;
  for (const auto& [name, m] : members_) {
    if (name != gone) rest.push_back(name);
  }
  Writer writer(Endpoints(rest));
  ASSERT_TRUE(writer.AwaitMore(20));
  ASSERT_TRUE(Await(
      [&] {
        return absl::StrContains(ReadAll(Log(gone)),
                                 "refused this member: its log says why");
      },
      absl::Seconds(20)))
      << "the removed member never said it was refused";
  const absl::Time until = absl::Now() + absl::Seconds(4);
  ASSERT_TRUE(writer.AwaitMore(20));
  while (absl::Now() < until) absl::SleepFor(absl::Milliseconds(50));
  ASSERT_TRUE(writer.AwaitMore(20));
  writer.Stop();
  // The same leader in the same term throughout: nothing it did reached
  // the others' elections.
  EXPECT_EQ(AgreedLeader(), leader);
  EXPECT_EQ(testing::JsonInt(Status(leader), "term"), term);
  // The others refuse its streams, saying why.
  EXPECT_TRUE(absl::StrContains(ReadAll(Log(leader)),
                                "it is not a member of this cluster"));
  EXPECT_EQ(MemberList().size(), 2u);
}

TEST_F(MembershipTest, RemovingTheLeader_HandsOverFirst) {
  Define(3);
  for (auto& [name, m] : members_) Start(name);
  const std::string leader = AwaitLeader();
  ASSERT_FALSE(leader.empty());
  const struct Ctl removed = Run({"member", "remove", leader});
  ASSERT_EQ(removed.exit, 0) << removed.out;
  members_[leader].removed = true;
  EXPECT_TRUE(absl::StrContains(ReadAll(Log(leader)), "handing leadership to"));
  const std::string next = AwaitLeader();
  EXPECT_NE(next, leader);
  EXPECT_FALSE(next.empty());
  EXPECT_EQ(MemberList().size(), 2u);
  EXPECT_EQ(Run({"put", "after", "1"}).exit, 0);
  CheckEventLogs();
}

TEST_F(MembershipTest, Transfer_ToAGivenMemberAndToTheBest) {
  Define(3);
  for (auto& [name, m] : members_) Start(name);
  const std::string leader = AwaitLeader();
  ASSERT_FALSE(leader.empty());
  const std::string to = leader == "n1" ? "n2" : "n1";
  struct Ctl c = Run({"transfer", to});
  ASSERT_EQ(c.exit, 0) << c.out;
  EXPECT_EQ(c.out, "LEADER " + to + "\n");
  EXPECT_EQ(AwaitLeader(), to);
  c = Run({"transfer"});
  ASSERT_EQ(c.exit, 0) << c.out;
  const std::string best = AwaitLeader();
  EXPECT_NE(best, to);
  EXPECT_EQ(c.out, "LEADER " + best + "\n");
  // Not a member: refused.
  c = Run({"transfer", "n9"});
  EXPECT_EQ(c.exit, 1) << c.out;
  EXPECT_TRUE(absl::StrContains(c.out, "not a voter")) << c.out;
  CheckEventLogs();
}

TEST_F(MembershipTest, BadRequestsAreRefused_AndChangeNothing) {
  Define(3);
  for (auto& [name, m] : members_) Start(name);
  ASSERT_FALSE(AwaitLeader().empty());
  const std::vector<std::string> before = MemberList();
  auto refused = [&](std::vector<std::string> args, const std::string& why) {
    const struct Ctl c = Run(std::move(args));
    EXPECT_EQ(c.exit, 1) << c.out;
    EXPECT_TRUE(absl::StrContains(c.out, why)) << c.out;
    EXPECT_EQ(MemberList(), before);
  };
  refused({"member", "add", "n2", "az-b", "127.0.0.1:1"}, "already a voter");
  refused({"member", "add", "n9", "az-b", members_["n1"].port->address()},
          "already uses the address");
  refused({"member", "remove", "n9"}, "not in the cluster");
  refused({"member", "add", "N_9", "az-b", "127.0.0.1:1"},
          "must be 1 to 32 characters");
  refused({"member", "add", "n9", "az-b", "nowhere"}, "is not HOST:PORT");
  refused({"member", "promote", "n2"}, "a voter already");
  DefineJoiner("n4", "az-d");
  const struct Ctl add = Run({"member", "add", "n4", "az-d",
                              members_["n4"].port->address(), "--learner"},
                             {"n1", "n2", "n3"});
  ASSERT_EQ(add.exit, 0) << add.out;
  const std::vector<std::string> with_learner = MemberList();
  ASSERT_EQ(with_learner.size(), 4u);
  // Not started: not caught up.
  const struct Ctl promote =
      Run({"member", "promote", "n4"}, {"n1", "n2", "n3"});
  EXPECT_EQ(promote.exit, 1) << promote.out;
  EXPECT_TRUE(absl::StrContains(promote.out, "has not caught up"))
      << promote.out;
  EXPECT_EQ(MemberList(), with_learner);
  // Joining with another cluster id: the member refuses to start.
  members_["n4"].cluster_id = "other";
  Start("n4");
  EXPECT_EQ(members_["n4"].process->Wait(absl::Seconds(20)), 2);
  EXPECT_TRUE(absl::StrContains(ReadAll(Log("n4")), "belongs to cluster"))
      << ReadAll(Log("n4"));
  // A member never added: likewise.
  DefineJoiner("n5", "az-e");
  Start("n5");
  EXPECT_EQ(members_["n5"].process->Wait(absl::Seconds(20)), 2);
  EXPECT_TRUE(absl::StrContains(ReadAll(Log("n5")), "Add it first"))
      << ReadAll(Log("n5"));
  members_["n5"].process.reset();
  EXPECT_EQ(MemberList(), with_learner);
}

// --output=json: one object per line, for every command (CONTRACTS.md).
TEST_F(MembershipTest, OutputJson_OneObjectPerLine) {
  Define(3);
  for (auto& [name, m] : members_) Start(name);
  ASSERT_FALSE(AwaitLeader().empty());
  struct Ctl c = Run({"--output=json", "put", "k", "v"});
  ASSERT_EQ(c.exit, 0) << c.out;
  EXPECT_TRUE(absl::StartsWith(c.out, "{\"revision\": ")) << c.out;
  c = Run({"--output=json", "get", "k"});
  ASSERT_EQ(c.exit, 0) << c.out;
  EXPECT_TRUE(absl::StartsWith(c.out, R"({"key": "k", "value": "v", )"))
      << c.out;
  c = Run({"--output=json", "member", "list"});
  ASSERT_EQ(c.exit, 0) << c.out;
  const std::vector<std::string> lines =
      absl::StrSplit(c.out, '\n', absl::SkipEmpty());
  ASSERT_EQ(lines.size(), 3u) << c.out;
  for (const std::string& line : lines) {
    EXPECT_TRUE(absl::StartsWith(line, "{\"id\": \"n")) << line;
    EXPECT_TRUE(absl::StrContains(line, "\"role\": \"voter\"")) << line;
    // The leader answers: it knows who is caught up.
    EXPECT_TRUE(absl::StrContains(line, "\"caught_up\": true")) << line;
  }
  c = Run({"--output=json", "status"});
  ASSERT_EQ(c.exit, 0) << c.out;
  EXPECT_TRUE(absl::StrContains(
      c.out, absl::StrCat("\"version\": \"", Version(), "\"")))
      << c.out;
  // Errors too, on standard output, with the exit code unchanged.
  c = Run({"--output=json", "member", "remove", "n9"});
  EXPECT_EQ(c.exit, 1);
  EXPECT_TRUE(absl::StrContains(c.out, R"({"error": {"code": "NOT_FOUND", )"))
      << c.out;
  c = Quoratectl({"--output=json", "snapshot", "status", root_ + "/none"});
  EXPECT_EQ(c.exit, 2) << c.out;
  c = Run({"--output=yaml", "status"});
  EXPECT_EQ(c.exit, 2) << c.out;
}

TEST_F(MembershipTest, TheLastVoterIsNeverRemoved) {
  Define(1);
  Start("n1");
  ASSERT_FALSE(AwaitLeader().empty());
  const struct Ctl c = Run({"member", "remove", "n1"});
  EXPECT_EQ(c.exit, 1) << c.out;
  EXPECT_TRUE(absl::StrContains(c.out, "last voter")) << c.out;
  EXPECT_EQ(MemberList().size(), 1u);
}

TEST_F(MembershipTest, BackupWipeRestore_KeepsEveryKeyBeforeTheBackup) {
  Define(3);
  for (auto& [name, m] : members_) Start(name);
  ASSERT_FALSE(AwaitLeader().empty());
  Writer writer(Endpoints());
  ASSERT_TRUE(writer.AwaitMore(200));
  const std::string backup = root_ + "/backup.snap";
  // Taken while writes go on: it holds every write acknowledged before it
  // started.
  const std::set<std::string> before = writer.acked_keys();
  struct Ctl c = Run({"snapshot", "save", backup});
  ASSERT_EQ(c.exit, 0) << c.out;
  EXPECT_TRUE(absl::StartsWith(c.out, "saved " + backup + " index=")) << c.out;
  ASSERT_TRUE(writer.AwaitMore(20));
  writer.Stop();
  c = Quoratectl({"snapshot", "status", backup});
  ASSERT_EQ(c.exit, 0) << c.out;
  EXPECT_TRUE(absl::StrContains(c.out, "checksum=ok")) << c.out;
  EXPECT_TRUE(absl::StrContains(c.out, "cluster_id=proc members=3")) << c.out;

  // Wipe: every member gone with its directory.
  for (auto& [name, m] : members_) {
    m.process.reset();
    std::filesystem::remove_all(root_ + "/" + name);
  }
  // A damaged copy is refused, and nothing is written.
  const std::string damaged = root_ + "/damaged.snap";
  std::filesystem::copy_file(backup, damaged);
  {
    std::fstream f(damaged, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(
        static_cast<std::streamoff>(std::filesystem::file_size(damaged) - 3));
    f.put('\x5a');
  }
  members_["n1"].cluster_id = "proc2";
  members_["n1"].extra_flags = {"--restore=" + damaged};
  Start("n1");
  EXPECT_EQ(members_["n1"].process->Wait(absl::Seconds(20)), 3);
  EXPECT_TRUE(absl::StrContains(ReadAll(Log("n1")), "is damaged"));
  EXPECT_FALSE(std::filesystem::exists(root_ + "/n1/SALT"));
  // The same cluster id is refused too (members of the old one could
  // still reach it).
  members_["n1"].cluster_id = "proc";
  members_["n1"].extra_flags = {"--restore=" + backup};
  Start("n1");
  EXPECT_EQ(members_["n1"].process->Wait(absl::Seconds(20)), 2);
  EXPECT_TRUE(absl::StrContains(ReadAll(Log("n1")), "Give a new --cluster_id"));
  std::filesystem::remove_all(root_ + "/n1");

  // Restore: a new cluster, every member from the same file.
  for (auto& [name, m] : members_) {
    m.cluster_id = "proc2";
    m.extra_flags = {"--restore=" + backup};
    Start(name);
  }
  ASSERT_FALSE(AwaitLeader().empty());
  absl::StatusOr<std::set<std::string>> read =
      ReadKeys(members_["n2"].port->address());
  ASSERT_TRUE(read.ok()) << read.status();
  const std::set<std::string>& restored_keys = *read;
  // The restored cluster takes writes.
  EXPECT_EQ(Run({"put", "after-restore", "1"}).exit, 0);
  size_t missing = 0;
  for (const std::string& k : before) missing += restored_keys.count(k) == 0;
  EXPECT_EQ(missing, 0u) << "of " << before.size()
                         << " writes acknowledged before the backup";
  EXPECT_GE(restored_keys.size(), before.size());
}

TEST_F(MembershipTest, ForceNewCluster_FromOneSurvivor_ThenGrow) {
  Define(3);
  for (auto& [name, m] : members_) Start(name);
  ASSERT_FALSE(AwaitLeader().empty());
  Writer writer(Endpoints());
  ASSERT_TRUE(writer.AwaitMore(100));
  writer.Stop();
  const std::set<std::string> acked = writer.acked_keys();
  // n1 survives. So that it holds every acknowledged write (a quorum had
  // each, not necessarily n1), wait until it applied the leader's commit
  // index; what a survivor lacks is lost, as the warning says.
  const std::string leader = AwaitLeader();
  ASSERT_FALSE(leader.empty());
  const int64_t commit = testing::JsonInt(Status(leader), "commit_index");
  ASSERT_TRUE(Await([&] {
    return testing::JsonInt(Status("n1"), "applied_index") >= commit;
  }));
  // The quorum is gone for good: n2 and n3 with their disks.
  for (auto& [name, m] : members_) m.process.reset();
  members_["n2"].removed = members_["n3"].removed = true;
  std::filesystem::remove_all(root_ + "/n2");
  std::filesystem::remove_all(root_ + "/n3");
  members_["n1"].extra_flags = {"--force_new_cluster"};
  Start("n1");
  ASSERT_TRUE(
      Await([&] { return JsonString(Status("n1"), "role") == "leader"; }));
  const std::string log = ReadAll(Log("n1"));
  EXPECT_TRUE(absl::StrContains(log, "forced a new cluster")) << log;
  EXPECT_TRUE(absl::StrContains(log, "are lost")) << log;
  ASSERT_EQ(MemberList().size(), 1u);
  ExpectAllRead(members_["n1"].port->address(), acked);
  EXPECT_EQ(Run({"put", "after-force", "1"}).exit, 0);
  // And grows again from there.
  members_["n1"].extra_flags.clear();
  DefineJoiner("n4", "az-d");
  Join("n4");
  if (HasFatalFailure()) return;
  EXPECT_EQ(MemberList().size(), 2u);
  ExpectAllRead(members_["n4"].port->address(), acked);
  // The flag runs once: left in n1's flags, a restart must not remove n4
  // again (they would be two clusters); it refuses to start.
  members_["n1"].extra_flags = {"--force_new_cluster"};
  members_["n1"].process.reset();
  Start("n1");
  EXPECT_EQ(members_["n1"].process->Wait(absl::Seconds(20)), 2);
  EXPECT_TRUE(absl::StrContains(ReadAll(Log("n1")),
                                "already made a cluster of its own"));
  members_["n1"].extra_flags.clear();
  Start("n1");
  ASSERT_FALSE(AwaitLeader().empty());
  EXPECT_EQ(MemberList().size(), 2u);
}

}  // namespace
}  // namespace quorate
