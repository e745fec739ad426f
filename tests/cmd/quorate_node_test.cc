// quorate-node as separate processes on loopback: the contract of
// CONTRACTS.md (flags, /status, signals, exit codes) and what a cluster of
// processes does when one is killed with SIGKILL.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <signal.h>

#include <atomic>
#include <cinttypes>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <future>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "cmd/node_processes.h"
#include "quorate/client.h"
#include "util/clock.h"
#include "util/mutex.h"
#include "util/port.h"
#include "util/process.h"
#include "util/tcp_proxy.h"
#include "wire/client.grpc.pb.h"

namespace quorate {
namespace {

using testing::AdminPortInLog;
using testing::FileSize;
using testing::HttpGet;
using testing::JsonInt;
using testing::JsonString;
using testing::PortReservation;
using testing::Process;
using testing::QuorateNodeTest;
using testing::ReadAll;
using testing::TcpProxy;

TEST_F(QuorateNodeTest, ThreeProcesses_ElectALeaderAndReportIt) {
  Define(3);
  for (auto& [name, m] : members_) Start(name);
  const std::string leader = AwaitLeader();
  ASSERT_FALSE(leader.empty());
  const std::string s = Status(leader);
  EXPECT_EQ(JsonString(s, "id"), leader);
  EXPECT_EQ(JsonString(s, "cluster_id"), "proc");
  EXPECT_GE(JsonInt(s, "term"), 1);
  EXPECT_GE(JsonInt(s, "commit_index"), 1);  // the leader's first entry
  EXPECT_NE(s.find("\"peers\": [{"), std::string::npos) << s;
  EXPECT_EQ(HttpGet(AdminPort(leader), "/healthz"), "ok\n");
  // The event log recorded the leader's election.
  EXPECT_NE(ReadAll(root_ + "/" + leader + ".events")
                .find("\"event\": \"role\", \"role\": \"leader\""),
            std::string::npos);
}

// The partition guard as outside programs see it (CONTRACTS.md): /readyz,
// the mode fields of /status, /metrics and the event log's mode events.
TEST_F(QuorateNodeTest, PartitionGuard_ActiveThenPausedWhenItsQuorumIsGone) {
  // Windows that outlast a sanitizer build's stalls: with 200 ms, a
  // follower whose process stalled for 150 ms under TSan rightly paused
  // for a dwell, and the "all active" checks below saw it.
  election_timeout_ = "1s";
  Define(3);
  for (auto& [name, m] : members_) Start(name);
  const std::string leader = AwaitLeader();
  ASSERT_FALSE(leader.empty());
  auto readyz = [this](const std::string& name) {
    return HttpGet(AdminPort(name), "/readyz");
  };
  auto metrics = [this](const std::string& name) {
    return HttpGet(AdminPort(name), "/metrics");
  };
  for (const auto& entry : members_) {
    const std::string& name = entry.first;
    ASSERT_TRUE(Await([&] { return readyz(name) == "active\n"; }))
        << name << ": " << readyz(name);
    const std::string s = Status(name);
    EXPECT_EQ(JsonString(s, "mode"), "active") << s;
    EXPECT_EQ(JsonString(s, "pause_reason"), "") << s;
    EXPECT_GT(JsonInt(s, "active_for_ms"), 0) << s;
    const std::string mt = metrics(name);
    EXPECT_NE(mt.find("\nquorate_active 1\n"), std::string::npos) << mt;
    EXPECT_NE(mt.find("quorate_peer_messages_received_total{peer="),
              std::string::npos);
  }
  EXPECT_NE(metrics(leader).find("quorate_role{role=\"leader\"} 1"),
            std::string::npos);
  // quoratectl's mode column (CONTRACTS.md).
  const Ctl ctl = Quoratectl({"--endpoints=" + Endpoints(), "status"});
  EXPECT_EQ(ctl.exit, 0) << ctl.out;
  int active_lines = 0;
  for (absl::string_view line :
       absl::StrSplit(ctl.out, '\n', absl::SkipEmpty())) {
    if (line.find(" active ") != absl::string_view::npos) ++active_lines;
  }
  EXPECT_EQ(active_lines, 3) << ctl.out;
  // The leader alone: its window lapses and it pauses.
  for (auto& [name, m] : members_) {
    if (name != leader) m.process.reset();
  }
  ASSERT_TRUE(Await([&] {
    return readyz(leader).rfind("paused: no quorum contact for", 0) == 0;
  })) << readyz(leader);
  const std::string s = Status(leader);
  EXPECT_EQ(JsonString(s, "mode"), "paused") << s;
  EXPECT_EQ(JsonInt(s, "active_for_ms"), 0) << s;
  const std::string mt = metrics(leader);
  EXPECT_NE(mt.find("\nquorate_active 0\n"), std::string::npos) << mt;
  EXPECT_NE(mt.find("\nquorate_pauses_total 1\n"), std::string::npos) << mt;
  const std::string events = ReadAll(root_ + "/" + leader + ".events");
  EXPECT_NE(events.find("\"event\": \"mode\", \"mode\": \"active\""),
            std::string::npos)
      << events;
  EXPECT_NE(events.find("\"event\": \"mode\", \"mode\": \"paused\""),
            std::string::npos)
      << events;
  EXPECT_NE(events.find("\"active_until_mono_ns\": "), std::string::npos);
}

// The fault file's drop= cuts a member off without root (make demo cuts a
// zone so): each side drops its frames to the other. The cut member pauses
// by itself; the others keep (or elect) a leader; removing the lines heals.
TEST_F(QuorateNodeTest, FaultFileDrop_CutsAMemberOffAndHeals) {
  election_timeout_ = "500ms";
  Define(3);
  for (auto& [name, m] : members_) {
    m.extra_flags.push_back("--faults_file=" + root_ + "/" + name + ".faults");
  }
  for (auto& [name, m] : members_) Start(name);
  ASSERT_FALSE(AwaitLeader().empty());
  auto mode = [this](const std::string& name) {
    return JsonString(Status(name), "mode");
  };
  for (const auto& entry : members_) {
    ASSERT_TRUE(Await([&] { return mode(entry.first) == "active"; }));
  }
  auto write = [this](const std::string& name, const std::string& text) {
    std::ofstream(root_ + "/" + name + ".faults") << text;
  };
  write("n3", "drop=n1,n2\n");
  write("n1", "drop=n3\n");
  write("n2", "drop=n3\n");
  ASSERT_TRUE(Await([&] { return mode("n3") == "paused"; })) << Status("n3");
  // The majority side has a leader and stays active.
  std::string leader;
  ASSERT_TRUE(Await([&] {
    leader = JsonString(Status("n1"), "leader_id");
    return (leader == "n1" || leader == "n2") && mode("n1") == "active" &&
           mode("n2") == "active";
  })) << Status("n1");
  const Ctl put = Quoratectl(
      {"--endpoints=" + Endpoints({"n1", "n2"}), "put", "cut", "yes"});
  EXPECT_EQ(put.exit, 0) << put.out;
  for (const char* name : {"n1", "n2", "n3"}) write(name, "");
  ASSERT_TRUE(Await([&] { return mode("n3") == "active"; })) << Status("n3");
  EXPECT_EQ(JsonString(Status("n3"), "leader_id"),
            JsonString(Status("n1"), "leader_id"));
}

// A learner (--learners, --learner) replicates, serves linearizable reads
// and holds active windows like a voter, and never campaigns: with two of
// the three voters gone no leader is left, and it pauses.
TEST_F(QuorateNodeTest, Learner_ReplicatesHoldsAWindowAndNeverCampaigns) {
  election_timeout_ = "1s";
  Define(3);
  DefineLearner("n4", "az-d");
  for (auto& [name, m] : members_) Start(name);
  const std::string leader = AwaitLeader();
  ASSERT_FALSE(leader.empty());
  EXPECT_NE(leader, "n4");
  std::string s = Status("n4");
  EXPECT_EQ(JsonString(s, "role"), "learner") << s;
  ASSERT_TRUE(Await([&] {
    return HttpGet(AdminPort("n4"), "/readyz") == "active\n";
  })) << HttpGet(AdminPort("n4"), "/readyz");
  ASSERT_EQ(Quoratectl({"--endpoints=" + Endpoints(), "put", "k", "v"}).exit,
            0);
  const Ctl c = Quoratectl({"--endpoints=" + Endpoints({"n4"}), "get", "k"});
  EXPECT_EQ(c.exit, 0) << c.out;
  EXPECT_EQ(c.out, "v\n");
  // The voters list it as a non-voter.
  s = Status(leader);
  const size_t at = s.find("{\"id\": \"n4\"");
  ASSERT_NE(at, std::string::npos) << s;
  EXPECT_NE(s.find("\"voter\": false", at), std::string::npos) << s;
  // Two voters gone: nobody can lead, and the learner pauses.
  int stopped = 0;
  for (auto& [name, m] : members_) {
    if (name != "n4" && stopped < 2) {
      m.process.reset();
      ++stopped;
    }
  }
  ASSERT_TRUE(Await([&] {
    return HttpGet(AdminPort("n4"), "/readyz").rfind("paused: ", 0) == 0;
  }));
  EXPECT_EQ(JsonString(Status("n4"), "role"), "learner");
  const std::string events = ReadAll(root_ + "/n4.events");
  EXPECT_EQ(events.find("candidate"), std::string::npos) << events;
  EXPECT_NE(events.find("\"role\": \"learner\""), std::string::npos) << events;
}

// A member that is listed as a learner must say so (and --learner needs
// the member in --learners): a typo cannot turn one into the other.
TEST_F(QuorateNodeTest, Learner_FlagAndListMustAgree) {
  Define(1);
  DefineLearner("n2", "az-b");
  std::vector<std::string> args = FullArgs("n2");
  args.erase(std::find(args.begin(), args.end(), "--learner"));
  Process p(args, root_ + "/n2.log");
  EXPECT_EQ(p.Wait(absl::Seconds(10)), 2);
  EXPECT_NE(ReadAll(root_ + "/n2.log").find("start it with --learner"),
            std::string::npos);
  // The other way round is among BadFlags_ExitTwoWithOneClearLine's cases.
}

TEST_F(QuorateNodeTest, LeaderKilled_OthersElectAndCommit_ThenItCatchesUp) {
  Define(3);
  for (auto& [name, m] : members_) Start(name);
  const std::string old = AwaitLeader();
  ASSERT_FALSE(old.empty());
  const int64_t old_term = JsonInt(Status(old), "term");
  members_[old].process->Signal(SIGKILL);
  EXPECT_EQ(members_[old].process->Wait(absl::Seconds(10)), 128 + SIGKILL);
  members_[old].process.reset();
  const std::string leader = AwaitLeader();
  ASSERT_FALSE(leader.empty());
  EXPECT_NE(leader, old);
  const std::string s = Status(leader);
  EXPECT_GT(JsonInt(s, "term"), old_term);
  // The new leader's first entry commits on the two that remain.
  const int64_t last = JsonInt(s, "last_log_index");
  EXPECT_TRUE(
      Await([&] { return JsonInt(Status(leader), "commit_index") >= last; }));
  // Restarted from its data directory, the killed member catches up from
  // the log.
  Start(old);
  EXPECT_TRUE(Await([&] {
    const std::string o = Status(old);
    return JsonString(o, "leader_id") == leader &&
           JsonInt(o, "commit_index") >= last;
  }));
}

TEST_F(QuorateNodeTest, Sigterm_LeaderHandsOverAndExitsZero) {
  Define(3);
  for (auto& [name, m] : members_) Start(name);
  const std::string old = AwaitLeader();
  ASSERT_FALSE(old.empty());
  members_[old].process->Signal(SIGTERM);
  EXPECT_EQ(members_[old].process->Wait(absl::Seconds(10)), 0);
  EXPECT_NE(ReadAll(root_ + "/" + old + ".log").find("handing leadership to"),
            std::string::npos);
  members_[old].process.reset();
  EXPECT_FALSE(AwaitLeader().empty());
}

TEST_F(QuorateNodeTest, MemberOfAnotherCluster_IsRefusedInBothLogs) {
  Define(3);
  members_["n3"].cluster_id = "other";
  for (auto& [name, m] : members_) Start(name);
  EXPECT_TRUE(Await([&] {
    const std::string n1 = ReadAll(root_ + "/n1.log");
    const std::string n3 = ReadAll(root_ + "/n3.log");
    return n1.find("claiming to be member 'n3'") != std::string::npos &&
           n1.find("cluster 'other'") != std::string::npos &&
           n3.find("refused this member") != std::string::npos;
  }));
}

TEST_F(QuorateNodeTest, BadFlags_ExitTwoWithOneClearLine) {
  Define(1);
  struct Case {
    std::vector<std::string> extra;
    std::string says;
  };
  const std::vector<Case> cases = {
      {{"--bogus=1"}, "unknown flag --bogus"},
      {{"--id=N_1"}, "member id 'N_1'"},
      {{"--election_timeout=fast"}, "not a positive duration"},
      {{"--election_timeout=30ms"}, "at least three heartbeat intervals"},
      {{"--listen=nowhere"}, "is not HOST:PORT"},
      {{"--peers=n9@az-a=127.0.0.1:1"}, "must include this member"},
      {{"--tls_ca=/x"}, "all three"},
      {{"--learner"}, "is not listed in --learners"},
  };
  int i = 0;
  for (const Case& c : cases) {
    std::vector<std::string> args = Args("n1");
    for (const std::string& e : c.extra) args.push_back(e);
    const std::string log = absl::StrCat(root_, "/bad", i++, ".log");
    Process p(args, log);
    EXPECT_EQ(p.Wait(absl::Seconds(10)), 2) << c.says;
    EXPECT_NE(ReadAll(log).find(c.says), std::string::npos) << ReadAll(log);
  }
}

TEST_F(QuorateNodeTest, DataDirectoryInUse_ExitsTwo) {
  Define(1);
  Start("n1");
  ASSERT_TRUE(Await([&] { return !Status("n1").empty(); }));
  // A second process on the same directory (other ports).
  PortReservation port;
  std::vector<std::string> args = Args("n1");
  args[3] = "--listen=" + port.address();
  Process second(args, root_ + "/second.log");
  EXPECT_EQ(second.Wait(absl::Seconds(10)), 2);
  EXPECT_NE(ReadAll(root_ + "/second.log").find("in use"), std::string::npos)
      << ReadAll(root_ + "/second.log");
}

TEST_F(QuorateNodeTest, CorruptLog_ExitsThreeNamingFileAndOffset) {
  Define(1);
  Start("n1");
  // A single member elects itself; each restart adds an entry.
  for (int round = 0; round < 3; ++round) {
    ASSERT_TRUE(Await([&] { return AgreedLeader() == "n1"; }));
    members_["n1"].process->Signal(SIGTERM);
    ASSERT_EQ(members_["n1"].process->Wait(absl::Seconds(10)), 0);
    if (round < 2) Start("n1");
  }
  std::string segment;
  for (const auto& e : std::filesystem::directory_iterator(root_ + "/n1")) {
    if (e.path().extension() == ".wal") segment = e.path();
  }
  ASSERT_FALSE(segment.empty());
  // Damage a byte inside the first record after the segment's header and
  // hard state: valid records follow it, so it is not a torn tail.
  std::fstream f(segment, std::ios::in | std::ios::out | std::ios::binary);
  std::string head(256, '\0');
  f.read(head.data(), static_cast<std::streamsize>(head.size()));
  auto u32 = [&](size_t at) {
    uint32_t v = 0;
    for (int k = 3; k >= 0; --k)
      v = (v << 8) | static_cast<uint8_t>(head[at + k]);
    return v;
  };
  size_t at = 0;
  for (int record = 0; record < 2; ++record) at += 9 + u32(at);
  const size_t damaged = at + 9 + 1;  // inside the third record's payload
  f.seekp(static_cast<std::streamoff>(damaged));
  const char flipped = static_cast<char>(head[damaged] ^ 0x40);
  f.write(&flipped, 1);
  f.close();
  Start("n1");
  EXPECT_EQ(members_["n1"].process->Wait(absl::Seconds(10)), 3);
  const std::string log = ReadAll(root_ + "/n1.log");
  EXPECT_NE(log.find(segment), std::string::npos) << log;
  EXPECT_NE(log.find(absl::StrCat("offset ", at)), std::string::npos) << log;
  // Nothing was truncated: the damaged file is still whole.
  EXPECT_GT(std::filesystem::file_size(segment), at + 64);
}

TEST_F(QuorateNodeTest, Quoratectl_EveryCommandAndExitCode) {
  Define(3);
  for (auto& [name, m] : members_) Start(name);
  ASSERT_FALSE(AwaitLeader().empty());
  const std::string e = "--endpoints=" + Endpoints();
  // A leader elected at start-up may still lose its quorum (slow stream
  // set-up under the sanitizers) and be replaced: ask until the cluster has
  // settled on one, then check what status printed then.
  Ctl c;
  int lines = 0, leaders = 0;
  Await([&] {
    c = Quoratectl({e, "status"});
    lines = leaders = 0;
    for (absl::string_view line :
         absl::StrSplit(c.out, '\n', absl::SkipEmpty())) {
      ++lines;
      if (line.find(" leader ") != absl::string_view::npos) ++leaders;
    }
    return c.exit == 0 && leaders == 1;
  });
  EXPECT_EQ(c.exit, 0) << c.out;
  EXPECT_EQ(lines, 3) << c.out;
  EXPECT_EQ(leaders, 1) << c.out;

  c = Quoratectl({e, "put", "k", "v1"});
  EXPECT_EQ(c.exit, 0) << c.out;
  EXPECT_EQ(c.out, "1\n");
  c = Quoratectl({e, "get", "k"});
  EXPECT_EQ(c.exit, 0) << c.out;
  EXPECT_EQ(c.out, "v1\n");
  c = Quoratectl({e, "get", "missing"});
  EXPECT_EQ(c.exit, 1) << c.out;
  EXPECT_NE(c.out.find("not found"), std::string::npos) << c.out;
  c = Quoratectl({e, "cas", "k", "7", "v2"});
  EXPECT_EQ(c.exit, 1) << c.out;
  EXPECT_NE(c.out.find("revision is 1"), std::string::npos) << c.out;
  c = Quoratectl({e, "cas", "k", "1", "v2"});
  EXPECT_EQ(c.exit, 0) << c.out;
  EXPECT_EQ(c.out, "2\n");
  c = Quoratectl({e, "cas", "new", "0", "x"});
  EXPECT_EQ(c.exit, 0) << c.out;
  EXPECT_EQ(c.out, "3\n");
  c = Quoratectl({e, "del", "k"});
  EXPECT_EQ(c.exit, 0) << c.out;
  EXPECT_EQ(c.out, "4\n");
  c = Quoratectl({e, "del", "k"});
  EXPECT_EQ(c.exit, 1) << c.out;
  // Over the key limit (a value over its 1 MiB limit would not fit in one
  // command-line argument).
  c = Quoratectl({e, "put", std::string(5000, 'k'), "v"});
  EXPECT_EQ(c.exit, 1) << c.out.substr(0, 200);
  EXPECT_NE(c.out.find("limit"), std::string::npos) << c.out.substr(0, 200);
  // Prefixes, paged by a limit, with keys only.
  for (const char* k : {"p/a", "p/b", "p/c", "q"}) {
    ASSERT_EQ(Quoratectl({e, "put", k, absl::StrCat("v-", k)}).exit, 0);
  }
  c = Quoratectl({e, "get", "p/", "--prefix"});
  EXPECT_EQ(c.exit, 0) << c.out;
  EXPECT_EQ(c.out, "p/a\nv-p/a\np/b\nv-p/b\np/c\nv-p/c\n");
  c = Quoratectl({e, "get", "p/", "--prefix", "--limit=2", "--keys_only"});
  EXPECT_EQ(c.exit, 0) << c.out;
  EXPECT_EQ(c.out, "p/a\np/b\n");
  // A transaction from standard input: the compare holds once.
  const std::string txn =
      "# move the owner if nobody else did\n"
      "if value p/a = \"v-p/a\"\n"
      "then put p/a \"two words\"\n"
      "then del p/b\n"
      "then get p/ --prefix\n"
      "else get p/a\n";
  c = Quoratectl({e, "txn"}, txn);
  EXPECT_EQ(c.exit, 0) << c.out;
  EXPECT_EQ(c.out, "SUCCESS\n9\ndeleted 1\np/a\ntwo words\np/c\nv-p/c\n");
  c = Quoratectl({e, "txn"}, txn);
  EXPECT_EQ(c.exit, 0) << c.out;
  EXPECT_EQ(c.out, "FAILURE\np/a\ntwo words\n");
  c = Quoratectl({e, "txn"}, "if value k\n");
  EXPECT_EQ(c.exit, 2) << c.out;
  EXPECT_NE(c.out.find("line 1"), std::string::npos) << c.out;
  // Over a member's limit (--max_txn_ops, 128 by default): refused, and
  // nothing applied.
  std::string many;
  for (int i = 0; i < 129; ++i)
    absl::StrAppend(&many, "then put m/", i, " x\n");
  c = Quoratectl({e, "txn"}, many);
  EXPECT_EQ(c.exit, 1) << c.out;
  EXPECT_NE(c.out.find("the limit is 128"), std::string::npos) << c.out;
  EXPECT_EQ(Quoratectl({e, "get", "m/", "--prefix"}).out, "");
  // Usage errors.
  EXPECT_EQ(Quoratectl({e, "frobnicate"}).exit, 2);
  EXPECT_EQ(Quoratectl({e, "put", "k", "v", "--limit=2"}).exit, 2);
  EXPECT_EQ(Quoratectl({e, "put", "only-key"}).exit, 2);
  EXPECT_EQ(Quoratectl({e, "cas", "k", "notanumber", "v"}).exit, 2);
  EXPECT_EQ(Quoratectl({"get", "k"}).exit, 2);
  EXPECT_EQ(Quoratectl({e, "--bogus", "get", "k"}).exit, 2);
  // Nobody there: unavailable.
  PortReservation nobody;
  c = Quoratectl(
      {"--endpoints=" + nobody.address(), "--timeout=300ms", "get", "k"});
  EXPECT_EQ(c.exit, 3) << c.out;
  c = Quoratectl(
      {"--endpoints=" + nobody.address(), "--timeout=300ms", "put", "k", "v"});
  EXPECT_EQ(c.exit, 3) << c.out;
}

// The lease commands of docs/contracts.md, against three processes.
TEST_F(QuorateNodeTest, Quoratectl_LeaseCommands) {
  Define(3);
  for (auto& [name, m] : members_) Start(name);
  ASSERT_FALSE(AwaitLeader().empty());
  const std::string e = "--endpoints=" + Endpoints();
  // The floor is twice the election timeout (200 ms here).
  Ctl c = Quoratectl({e, "lease", "grant", "399ms"});
  EXPECT_EQ(c.exit, 1) << c.out;
  EXPECT_NE(c.out.find("floor is 400 ms"), std::string::npos) << c.out;
  EXPECT_EQ(Quoratectl({e, "lease", "grant", "soon"}).exit, 2);
  c = Quoratectl({e, "lease", "grant", "3s"});
  ASSERT_EQ(c.exit, 0) << c.out;
  const std::string id = c.out.substr(0, c.out.find('\n'));
  ASSERT_FALSE(id.empty());
  EXPECT_EQ(id.find_first_not_of("0123456789abcdef"), std::string::npos) << id;
  ASSERT_EQ(Quoratectl({e, "put", "svc/a", "1", "--lease=" + id}).exit, 0);
  EXPECT_EQ(Quoratectl({e, "put", "svc/b", "1", "--lease=zz"}).exit, 2);
  c = Quoratectl({e, "lease", "ttl", id, "--keys"});
  ASSERT_EQ(c.exit, 0) << c.out;
  EXPECT_EQ(c.out.find("remaining_ms="), 0u) << c.out;
  EXPECT_NE(c.out.find(" granted_ms=3000\nsvc/a\n"), std::string::npos)
      << c.out;
  // keepalive renews until the lease is gone, then exits 1.
  const std::string log = absl::StrCat(root_, "/keepalive.out");
  Process keepalive({QUORATECTL_BINARY, e, "lease", "keepalive", id}, log);
  ASSERT_TRUE(Await([&] {
    const std::string out = ReadAll(log);
    return out.find(id + " remaining_ms=") != std::string::npos &&
           out.find(id + " remaining_ms=", out.find(id) + 1) !=
               std::string::npos;
  })) << ReadAll(log);
  // Kept alive past its TTL: the key is still there.
  absl::SleepFor(absl::Milliseconds(3500));
  EXPECT_EQ(Quoratectl({e, "get", "svc/a"}).exit, 0);
  ASSERT_EQ(Quoratectl({e, "lease", "revoke", id}).exit, 0);
  EXPECT_EQ(keepalive.Wait(absl::Seconds(10)).value_or(-1), 1) << ReadAll(log);
  EXPECT_NE(ReadAll(log).find("is gone"), std::string::npos) << ReadAll(log);
  c = Quoratectl({e, "get", "svc/a"});
  EXPECT_EQ(c.exit, 1) << c.out;
  EXPECT_EQ(Quoratectl({e, "lease", "revoke", id}).exit, 1);
  EXPECT_EQ(Quoratectl({e, "lease", "ttl", id}).exit, 1);
  EXPECT_EQ(Quoratectl({e, "lease", "ttl", "0"}).exit, 2);
  EXPECT_EQ(Quoratectl({e, "lease", "frob", id}).exit, 2);
}

TEST_F(QuorateNodeTest, Quoratectl_WatchAndGetAtARevision) {
  Define(3);
  for (auto& [name, m] : members_) Start(name);
  ASSERT_FALSE(AwaitLeader().empty());
  const std::string e = "--endpoints=" + Endpoints();
  ASSERT_EQ(Quoratectl({e, "put", "cfg/a", "one"}).out, "1\n");
  ASSERT_EQ(Quoratectl({e, "put", "cfg/a", "two words"}).out, "2\n");
  const std::string log = absl::StrCat(root_, "/watch.out");
  Process watch(
      {QUORATECTL_BINARY, e, "watch", "cfg/", "--prefix", "--rev=1", "--prev"},
      log);
  ASSERT_EQ(Quoratectl({e, "put", "other", "x"}).exit, 0);
  ASSERT_EQ(Quoratectl({e, "del", "cfg/a"}).exit, 0);
  const std::string want =
      "PUT cfg/a 1 one\n"
      "PUT cfg/a 2 two words\n"
      "PREV cfg/a 1 one\n"
      "DELETE cfg/a 4\n"
      "PREV cfg/a 2 two words\n";
  EXPECT_TRUE(Await([&] { return ReadAll(log) == want; })) << ReadAll(log);
  watch.Signal(SIGTERM);
  EXPECT_EQ(watch.Wait(absl::Seconds(10)).value_or(-1), 0) << ReadAll(log);
  // Reads at past revisions.
  Ctl c = Quoratectl({e, "get", "cfg/a", "--rev=1"});
  EXPECT_EQ(c.out, "one\n");
  c = Quoratectl({e, "get", "cfg/", "--prefix", "--rev=2"});
  EXPECT_EQ(c.out, "cfg/a\ntwo words\n");
  c = Quoratectl({e, "get", "cfg/a", "--rev=4"});
  EXPECT_EQ(c.exit, 1) << c.out;
  EXPECT_NE(c.out.find("did not exist at revision 4"), std::string::npos);
  c = Quoratectl({e, "get", "cfg/a", "--rev=99"});
  EXPECT_EQ(c.exit, 1) << c.out;
  EXPECT_NE(c.out.find("OUT_OF_RANGE"), std::string::npos) << c.out;
  EXPECT_EQ(Quoratectl({e, "get", "cfg/a", "--rev=x"}).exit, 2);
  EXPECT_EQ(Quoratectl({e, "put", "k", "v", "--rev=1"}).exit, 2);
  EXPECT_EQ(Quoratectl({e, "get", "k", "--prev"}).exit, 2);
  EXPECT_EQ(Quoratectl({e, "watch"}).exit, 2);
  EXPECT_EQ(Quoratectl({e, "watch", "k", "--rev=0"}).exit, 2);
}

// A client cut off from the cluster (its only route, a proxy to the
// leader, is cut) sees its session's Valid() go false before its lease
// ends on the cluster: its own record (the monotonic time it saw Valid()
// false) against the members' event logs (the first "lease_ended").
// A client that reaches the cluster only through `proxy`, which the test
// cuts.
absl::StatusOr<std::unique_ptr<Client>> ClientThrough(const TcpProxy& proxy) {
  ClientOptions co;
  co.endpoints = {proxy.address()};
  co.timeout = absl::Seconds(5);
  return Client::Create(co);
}

// A holder in jeopardy keeps renewing at its resend pace, and waits in
// between: it once woke for the jeopardy it was already in, over and over,
// and spun a core until its session ended (in the email example's zone-cut
// replay, the cut-off processors starved the majority's on a 2-core
// machine for 1.5 s). The process's CPU time over the jeopardy must be a
// small part of it: spinning takes all of it.
TEST_F(QuorateNodeTest, Session_InJeopardyWaitsBetweenRenewals) {
  Define(3);
  for (auto& [name, m] : members_) Start(name);
  const std::string leader = AwaitLeader();
  ASSERT_FALSE(leader.empty());
  TcpProxy proxy(members_[leader].port->address());
  ASSERT_TRUE(proxy.ok());
  auto client = ClientThrough(proxy);
  ASSERT_TRUE(client.ok()) << client.status();
  std::atomic<bool> jeopardy{false};
  SessionOptions so;
  so.ttl = absl::Seconds(4);
  so.on_jeopardy = [&jeopardy] { jeopardy = true; };
  auto session = (*client)->StartSession(so);
  ASSERT_TRUE(session.ok()) << session.status();
  proxy.Blackhole();
  ASSERT_TRUE(Await([&] { return jeopardy.load(); }, absl::Seconds(10)));
  auto cpu_ns = [] {
    timespec ts{};
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
  };
  const int64_t cpu0 = cpu_ns();
  const int64_t wall0 = KernelMonotonicNowNs();
  // Most of the jeopardy (about half the 4 s window) is still ahead.
  absl::SleepFor(absl::Milliseconds(800));
  const int64_t cpu = cpu_ns() - cpu0;
  const int64_t wall = KernelMonotonicNowNs() - wall0;
  EXPECT_TRUE((*session)->InJeopardy() || !(*session)->Valid());
  EXPECT_LT(cpu, wall / 4) << "the process used " << cpu / 1'000'000
                           << " ms of CPU in " << wall / 1'000'000
                           << " ms of its session's jeopardy";
}

TEST_F(QuorateNodeTest, Session_CutOffClientGoesInvalidBeforeItsLeaseEnds) {
  Define(3);
  for (auto& [name, m] : members_) Start(name);
  const std::string leader = AwaitLeader();
  ASSERT_FALSE(leader.empty());
  TcpProxy proxy(members_[leader].port->address());
  ASSERT_TRUE(proxy.ok());
  auto client = ClientThrough(proxy);
  ASSERT_TRUE(client.ok()) << client.status();
  std::atomic<bool> jeopardy{false};
  std::atomic<bool> expired{false};
  std::atomic<int> renewed{0};
  SessionOptions so;
  so.ttl = absl::Seconds(2);
  so.margin = absl::Milliseconds(100);
  so.on_jeopardy = [&jeopardy] { jeopardy = true; };
  so.on_expired = [&expired] { expired = true; };
  so.on_renewed = [&renewed](absl::Duration) { renewed.fetch_add(1); };
  auto session = (*client)->StartSession(so);
  ASSERT_TRUE(session.ok()) << session.status();
  const uint64_t lease = (*session)->lease();
  ASSERT_TRUE((*client)->Put("held", "x", lease).ok());
  // Renewed twice through the proxy, and just renewed when cut.
  const int before = renewed.load();
  ASSERT_TRUE(Await([&] { return renewed.load() >= before + 2; }));
  ASSERT_TRUE((*session)->Valid());
  proxy.Cut();
  const int64_t cut_at = KernelMonotonicNowNs();
  while ((*session)->Valid()) absl::SleepFor(absl::Milliseconds(1));
  const int64_t invalid_at = KernelMonotonicNowNs();
  EXPECT_TRUE(jeopardy.load());
  // At most its window after the cut (it was renewed just before).
  EXPECT_LT(invalid_at - cut_at, absl::ToInt64Nanoseconds(so.ttl));
  // The cluster ends the lease (its leader, by its clock): the earliest
  // lease_ended event of any member.
  const std::string hex = absl::StrCat(absl::Hex(lease));
  int64_t ended_at = -1;
  ASSERT_TRUE(Await(
      [&] {
        for (auto& [name, m] : members_) {
          std::istringstream lines(ReadAll(root_ + "/" + name + ".events"));
          for (std::string line; std::getline(lines, line);) {
            if (JsonString(line, "event") != "lease_ended" ||
                JsonString(line, "lease") != hex) {
              continue;
            }
            const int64_t t = JsonInt(line, "t_mono_ns");
            if (ended_at < 0 || t < ended_at) ended_at = t;
          }
        }
        return ended_at > 0;
      },
      absl::Seconds(20)));
  EXPECT_LT(invalid_at, ended_at)
      << "the client counted on lease " << hex << " until "
      << (invalid_at - cut_at) / 1'000'000 << " ms after the cut; it ended "
      << (ended_at - cut_at) / 1'000'000 << " ms after the cut";
  EXPECT_TRUE(Await([&] { return expired.load(); }));
  Ctl c = Quoratectl({"--endpoints=" + Endpoints(), "get", "held"});
  EXPECT_EQ(c.exit, 1) << c.out;
}

// A session whose renewals fail goes into jeopardy, and out of it by
// itself once they succeed again: on_jeopardy, then on_safe, and the
// session stays valid throughout (the cut ends before the window does)
// and after. The lease never ends on the cluster.
TEST_F(QuorateNodeTest, Session_JeopardyEndsWhenRenewalsSucceedAgain) {
  Define(3);
  for (auto& [name, m] : members_) Start(name);
  const std::string leader = AwaitLeader();
  ASSERT_FALSE(leader.empty());
  TcpProxy proxy(members_[leader].port->address());
  ASSERT_TRUE(proxy.ok());
  auto client = ClientThrough(proxy);
  ASSERT_TRUE(client.ok()) << client.status();
  std::atomic<int> jeopardy{0};
  std::atomic<int> safe{0};
  std::atomic<bool> valid_when_safe{false};
  std::atomic<bool> expired{false};
  std::atomic<int> renewed{0};
  std::atomic<Session*> holder{nullptr};
  SessionOptions so;
  so.ttl = absl::Seconds(8);
  so.on_jeopardy = [&jeopardy] { jeopardy.fetch_add(1); };
  so.on_safe = [&] {
    Session* s = holder.load();
    valid_when_safe = s != nullptr && s->Valid();
    safe.fetch_add(1);
  };
  so.on_expired = [&expired] { expired = true; };
  so.on_renewed = [&renewed](absl::Duration) { renewed.fetch_add(1); };
  auto session = (*client)->StartSession(so);
  ASSERT_TRUE(session.ok()) << session.status();
  holder = session->get();
  const int before = renewed.load();
  ASSERT_TRUE(Await([&] { return renewed.load() >= before + 1; }));
  EXPECT_FALSE((*session)->InJeopardy());
  proxy.Cut();
  ASSERT_TRUE(Await([&] { return jeopardy.load() == 1; }, absl::Seconds(10)));
  EXPECT_TRUE((*session)->InJeopardy());
  EXPECT_TRUE((*session)->Valid());
  EXPECT_EQ(safe.load(), 0);
  proxy.Heal();
  ASSERT_TRUE(Await([&] { return safe.load() == 1; }, absl::Seconds(10)))
      << "jeopardy " << jeopardy.load() << ", expired " << expired.load();
  EXPECT_TRUE(valid_when_safe.load());
  EXPECT_FALSE((*session)->InJeopardy());
  EXPECT_TRUE((*session)->Valid());
  EXPECT_FALSE(expired.load());
  // Still renewed, and the lease is alive on the cluster.
  const int after = renewed.load();
  ASSERT_TRUE(Await([&] { return renewed.load() >= after + 1; }));
  ClientOptions direct;
  direct.endpoints = absl::StrSplit(Endpoints(), ',');
  auto other = Client::Create(direct);
  ASSERT_TRUE(other.ok());
  absl::StatusOr<LeaseStatus> ttl =
      (*other)->LeaseTimeToLive((*session)->lease());
  EXPECT_TRUE(ttl.ok()) << ttl.status();
  holder = nullptr;
}

TEST_F(QuorateNodeTest, Writes_ReplicateToEveryProcess) {
  Define(3);
  for (auto& [name, m] : members_) Start(name);
  ASSERT_FALSE(AwaitLeader().empty());
  for (int i = 0; i < 10; ++i) {
    ASSERT_EQ(Quoratectl({"--endpoints=" + Endpoints(), "put", "key",
                          absl::StrCat("value-", i)})
                  .exit,
              0);
  }
  // Each member's own state (a stale read asks only it) has the last one.
  for (const auto& entry : members_) {
    const std::string name = entry.first;  // clang 14: no lambda capture of
                                           // structured bindings
    EXPECT_TRUE(Await([&] {
      return Quoratectl(
                 {"--endpoints=" + Endpoints({name}), "--stale", "get", "key"})
                 .out == "value-9\n";
    })) << name;
  }
}

TEST_F(QuorateNodeTest, AcknowledgedWrite_SurvivesKillOfTheLeader) {
  Define(3);
  for (auto& [name, m] : members_) Start(name);
  const std::string leader = AwaitLeader();
  ASSERT_FALSE(leader.empty());
  ASSERT_EQ(
      Quoratectl({"--endpoints=" + Endpoints(), "put", "mail-42", "processed"})
          .exit,
      0);
  members_[leader].process->Signal(SIGKILL);
  members_[leader].process->Wait(absl::Seconds(10));
  members_[leader].process.reset();
  std::vector<std::string> rest;
  for (auto& [name, m] : members_) {
    if (name != leader) rest.push_back(name);
  }
  const Ctl c = Quoratectl(
      {"--endpoints=" + Endpoints(rest), "--timeout=10s", "get", "mail-42"});
  EXPECT_EQ(c.exit, 0) << c.out;
  EXPECT_EQ(c.out, "processed\n");
}

TEST_F(QuorateNodeTest, RetriedWrite_IsAppliedOnce) {
  Define(3);
  for (auto& [name, m] : members_) Start(name);
  const std::string leader = AwaitLeader();
  ASSERT_FALSE(leader.empty());
  auto stub = client::Kv::NewStub(grpc::CreateChannel(
      members_[leader].port->address(), grpc::InsecureChannelCredentials()));
  client::PutRequest req;
  req.set_key("counter");
  req.set_value("once");
  req.mutable_op()->set_client(77);
  req.mutable_op()->set_seq(1);
  std::vector<uint64_t> revisions;
  for (int attempt = 0; attempt < 3; ++attempt) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() +
                     std::chrono::seconds(5));
    client::PutResponse resp;
    ASSERT_TRUE(stub->Put(&ctx, req, &resp).ok());
    revisions.push_back(resp.revision());
  }
  EXPECT_EQ(revisions, std::vector<uint64_t>(3, revisions[0]));
  // The cluster revision did not move past the one write.
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
  client::GetRequest get;
  get.set_key("counter");
  client::GetResponse got;
  ASSERT_TRUE(stub->Get(&ctx, get, &got).ok());
  EXPECT_EQ(got.read_revision(), revisions[0]);
  EXPECT_EQ(got.revision(), revisions[0]);
}

TEST_F(QuorateNodeTest, CutOffFollower_ServesNoLinearizableRead) {
  Define(3);
  for (auto& [name, m] : members_) Start(name);
  const std::string leader = AwaitLeader();
  ASSERT_FALSE(leader.empty());
  ASSERT_EQ(Quoratectl({"--endpoints=" + Endpoints(), "put", "k", "v"}).exit,
            0);
  const std::string follower = leader == "n1" ? "n2" : "n1";
  // Its local state has the write before we cut it off.
  ASSERT_TRUE(Await([&] {
    return Quoratectl(
               {"--endpoints=" + Endpoints({follower}), "--stale", "get", "k"})
               .out == "v\n";
  }));
  for (auto& [name, m] : members_) {
    if (name != follower) m.process->Signal(SIGSTOP);
  }
  Ctl c = Quoratectl(
      {"--endpoints=" + Endpoints({follower}), "--timeout=1s", "get", "k"});
  EXPECT_EQ(c.exit, 3) << c.out;
  c = Quoratectl(
      {"--endpoints=" + Endpoints({follower}), "--stale", "get", "k"});
  EXPECT_EQ(c.exit, 0) << c.out;
  EXPECT_EQ(c.out, "v\n");
  // A range read likewise: serializable on request, else linearizable.
  c = Quoratectl({"--endpoints=" + Endpoints({follower}), "--timeout=1s", "get",
                  "--prefix", "k"});
  EXPECT_EQ(c.exit, 3) << c.out;
  c = Quoratectl({"--endpoints=" + Endpoints({follower}), "--stale", "get",
                  "--prefix", "k"});
  EXPECT_EQ(c.exit, 0) << c.out;
  EXPECT_NE(c.out.find("v"), std::string::npos) << c.out;
  for (auto& [name, m] : members_) {
    if (name != follower) m.process->Signal(SIGCONT);
  }
  c = Quoratectl(
      {"--endpoints=" + Endpoints({follower}), "--timeout=10s", "get", "k"});
  EXPECT_EQ(c.exit, 0) << c.out;
}

TEST_F(QuorateNodeTest, RestartedProcess_CatchesUpFromASnapshot) {
  Define(3);
  for (auto& [name, m] : members_) {
    m.extra_flags = {"--snapshot_entries=5"};
    Start(name);
  }
  const std::string leader = AwaitLeader();
  ASSERT_FALSE(leader.empty());
  const std::string follower = leader == "n1" ? "n2" : "n1";
  const int64_t before = JsonInt(Status(follower), "last_log_index");
  members_[follower].process->Signal(SIGKILL);
  members_[follower].process->Wait(absl::Seconds(10));
  members_[follower].process.reset();
  for (int i = 0; i < 30; ++i) {
    ASSERT_EQ(Quoratectl({"--endpoints=" + Endpoints(), "put", "key",
                          absl::StrCat("v", i)})
                  .exit,
              0);
  }
  // The leader compacted past everything the follower has.
  ASSERT_TRUE(Await(
      [&] { return JsonInt(Status(leader), "snapshot_index") > before + 1; }));
  Start(follower);
  EXPECT_TRUE(Await([&] {
    return Quoratectl({"--endpoints=" + Endpoints({follower}), "--stale", "get",
                       "key"})
               .out == "v29\n";
  }));
  EXPECT_GT(JsonInt(Status(follower), "snapshot_index"), before);
}

// `quoratectl snapshot status` reads a member's snapshot file on its own:
// the revision it holds and the number of keys at that revision, which
// the puts' own revisions tell; a damaged copy is "checksum=bad" (exit 1),
// a missing file a usage error (exit 2).
TEST_F(QuorateNodeTest, Quoratectl_SnapshotStatusReadsAMembersSnapshot) {
  Define(1);
  members_["n1"].extra_flags = {"--snapshot_entries=5"};
  Start("n1");
  ASSERT_FALSE(AwaitLeader().empty());
  std::vector<uint64_t> put_revisions;  // key k<i> was created at [i]
  for (int i = 0; i < 12; ++i) {
    const Ctl c = Quoratectl(
        {"--endpoints=" + Endpoints(), "put", absl::StrCat("k", i), "v"});
    ASSERT_EQ(c.exit, 0) << c.out;
    uint64_t rev = 0;
    ASSERT_TRUE(absl::SimpleAtoi(absl::StripAsciiWhitespace(c.out), &rev))
        << c.out;
    put_revisions.push_back(rev);
  }
  ASSERT_TRUE(
      Await([&] { return JsonInt(Status("n1"), "snapshot_index") > 0; }));
  // The newest snapshot, copied: the member may replace its snapshots as
  // it goes (it keeps two), so a listed one may be gone: list again.
  const std::string copy = root_ + "/copy.snap";
  bool copied = false;
  for (int attempt = 0; attempt < 10 && !copied; ++attempt) {
    std::string newest;
    for (const auto& e : std::filesystem::directory_iterator(root_ + "/n1")) {
      const std::string name = e.path().filename().string();
      if (name.starts_with("snap-") && name.ends_with(".snap") &&
          name > std::filesystem::path(newest).filename().string()) {
        newest = e.path().string();
      }
    }
    ASSERT_FALSE(newest.empty());
    std::error_code ec;
    copied = std::filesystem::copy_file(
        newest, copy, std::filesystem::copy_options::overwrite_existing, ec);
  }
  ASSERT_TRUE(copied);
  const uint64_t bytes = std::filesystem::file_size(copy);
  Ctl c = Quoratectl({"snapshot", "status", copy});
  ASSERT_EQ(c.exit, 0) << c.out;
  uint64_t revision = 0;
  int keys = -1;
  ASSERT_EQ(
      sscanf(c.out.c_str(), "revision=%" SCNu64 " keys=%d", &revision, &keys),
      2)
      << c.out;
  int created = 0;
  for (uint64_t r : put_revisions) created += r <= revision ? 1 : 0;
  EXPECT_GT(revision, 0u) << c.out;
  EXPECT_EQ(keys, created) << c.out;
  EXPECT_NE(c.out.find(absl::StrCat(" bytes=", bytes, " checksum=ok\n")),
            std::string::npos)
      << c.out;
  EXPECT_NE(c.out.find(" cluster_id=proc members=1\n"), std::string::npos)
      << c.out;

  {
    std::fstream f(copy, std::ios::in | std::ios::out | std::ios::binary);
    f.seekg(-1, std::ios::end);
    const char last = static_cast<char>(f.get());
    f.seekp(-1, std::ios::end);
    f.put(static_cast<char>(last ^ 1));
  }
  c = Quoratectl({"snapshot", "status", copy});
  EXPECT_EQ(c.exit, 1) << c.out;
  EXPECT_TRUE(c.out.starts_with(
      absl::StrCat("revision=- keys=- bytes=", bytes, " checksum=bad\n")))
      << c.out;
  EXPECT_NE(c.out.find("data checksum mismatch"), std::string::npos) << c.out;
  EXPECT_EQ(Quoratectl({"snapshot", "status", root_ + "/none.snap"}).exit, 2);
  EXPECT_EQ(Quoratectl({"snapshot", "status", root_ + "/n1"}).exit, 2);
  EXPECT_EQ(Quoratectl({"snapshot", "status"}).exit, 2);
}

// What a watcher delivered: each event's key and revision, in order.
struct Delivered {
  Mutex mu;
  std::vector<std::pair<std::string, uint64_t>> events ABSL_GUARDED_BY(mu);
  std::vector<uint64_t> batch_revisions ABSL_GUARDED_BY(mu);
};

// Checks `got` against the keys under "w/" now (each written once): every
// write's event came once, in revision order.
void ExpectEveryWriteOnceInOrder(Client& c, Delivered& got) {
  RangeOptions all;
  all.range_end = PrefixEnd("w/");
  all.keys_only = true;  // one answer (values may be large)
  absl::StatusOr<RangeResult> now = c.Range("w/", all);
  ASSERT_TRUE(now.ok()) << now.status();
  ASSERT_FALSE(now->more);
  std::map<uint64_t, std::string> want;  // by revision
  for (const KeyRecord& kv : now->kvs) want[kv.mod_revision] = kv.key;
  MutexLock lock(&got.mu);
  std::map<uint64_t, std::string> seen;
  uint64_t previous = 0;
  for (const auto& [key, revision] : got.events) {
    EXPECT_GT(revision, previous) << key << " came out of order, or twice";
    previous = revision;
    seen[revision] = key;
  }
  EXPECT_EQ(seen.size(), got.events.size());
  EXPECT_EQ(seen, want);
}

// A watcher on the leader, while the leader is killed with SIGKILL and
// writes go on: it resumes on another member from the revision after the
// last one it delivered, and every write comes once.
TEST_F(QuorateNodeTest, Watch_ResumesAcrossLeaderKillWithoutGapOrDuplicate) {
  Define(3);
  for (auto& [name, m] : members_) Start(name);
  const std::string leader = AwaitLeader();
  ASSERT_FALSE(leader.empty());
  ClientOptions wo;  // the leader first: Watch tries it first
  wo.endpoints = {members_[leader].port->address()};
  for (auto& [name, m] : members_) {
    if (name != leader) wo.endpoints.push_back(m.port->address());
  }
  wo.timeout = absl::Seconds(5);
  auto watch_client = Client::Create(wo);
  ASSERT_TRUE(watch_client.ok());
  ClientOptions co;
  co.endpoints = wo.endpoints;
  co.timeout = absl::Seconds(10);
  auto writer = Client::Create(co);
  ASSERT_TRUE(writer.ok());
  Delivered got;
  WatchOptions w;
  w.range_end = PrefixEnd("w/");
  w.on_events = [&got](const std::vector<WatchEvent>& events, uint64_t) {
    MutexLock lock(&got.mu);
    for (const WatchEvent& e : events) {
      got.events.emplace_back(e.kv.key, e.kv.mod_revision);
    }
  };
  auto watcher = (*watch_client)->Watch("w/", std::move(w));
  ASSERT_TRUE(watcher.ok()) << watcher.status();
  uint64_t last = 0;
  for (int i = 0; i < 150; ++i) {
    if (i == 60) {
      // Delivered up to here on the leader; then it dies.
      ASSERT_TRUE(Await([&] { return (*watcher)->revision() >= last; }));
      members_[leader].process->Signal(SIGKILL);
      members_[leader].process->Wait(absl::Seconds(10));
      members_[leader].process.reset();
    }
    // A write whose outcome is unknown may or may not have happened; the
    // final read below says which.
    absl::StatusOr<uint64_t> r =
        (*writer)->Put(absl::StrCat("w/", i), absl::StrCat("v", i));
    if (r.ok()) last = std::max(last, *r);
  }
  ASSERT_GT(last, 0u);
  ASSERT_TRUE(Await([&] { return (*watcher)->revision() >= last; }))
      << "delivered up to " << (*watcher)->revision() << " of " << last;
  EXPECT_GE((*watcher)->resumes(), 1u);
  ExpectEveryWriteOnceInOrder(**writer, got);
}

// A watcher whose callback stops returning stops reading: its member cuts
// it off once it is --watch_buffer_bytes behind (/status counts it), and
// when the callback returns the client resumes it without a gap.
TEST_F(QuorateNodeTest, Watch_SlowWatcherIsCutOffAndResumes) {
  Define(3);
  for (auto& [name, m] : members_) {
    m.extra_flags = {"--watch_buffer_bytes=65536"};
    Start(name);
  }
  const std::string leader = AwaitLeader();
  ASSERT_FALSE(leader.empty());
  std::string follower;
  for (auto& [name, m] : members_) {
    if (name != leader) follower = name;
  }
  // Served by a follower, from its applied state.
  ClientOptions wo;
  wo.endpoints = {members_[follower].port->address()};
  auto watch_client = Client::Create(wo);
  ASSERT_TRUE(watch_client.ok());
  ClientOptions co;
  co.endpoints = absl::StrSplit(Endpoints(), ',');
  co.timeout = absl::Seconds(10);
  auto writer = Client::Create(co);
  ASSERT_TRUE(writer.ok());
  Delivered got;
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  std::atomic<bool> holding{false};
  WatchOptions w;
  w.range_end = PrefixEnd("w/");
  w.on_events = [&](const std::vector<WatchEvent>& events, uint64_t) {
    {
      MutexLock lock(&got.mu);
      for (const WatchEvent& e : events) {
        got.events.emplace_back(e.kv.key, e.kv.mod_revision);
      }
    }
    if (!events.empty()) {
      holding = true;
      released.wait();  // a consumer that stops
    }
  };
  auto watcher = (*watch_client)->Watch("w/", std::move(w));
  ASSERT_TRUE(watcher.ok()) << watcher.status();
  auto cut_off = [&] { return JsonInt(Status(follower), "cut_off"); };
  const std::string value(16 << 10, 'x');
  uint64_t last = 0;
  int written = 0;
  // Writes until the member has cut the watcher off (the client's and
  // the transport's buffers hold some MiB first), 64 MiB at most.
  while (cut_off() == 0 && written < 4096) {
    for (int i = 0; i < 64; ++i, ++written) {
      absl::StatusOr<uint64_t> r =
          (*writer)->Put(absl::StrCat("w/", written), value);
      ASSERT_TRUE(r.ok()) << r.status();
      last = *r;
    }
  }
  EXPECT_TRUE(holding.load());
  ASSERT_EQ(cut_off(), 1) << "never cut off after " << written << " writes";
  release.set_value();
  ASSERT_TRUE(
      Await([&] { return (*watcher)->revision() >= last; }, absl::Seconds(30)))
      << "delivered up to " << (*watcher)->revision() << " of " << last;
  EXPECT_GE((*watcher)->resumes(), 1u);
  ExpectEveryWriteOnceInOrder(**writer, got);
  // A range answer as large as members make them (3 MiB) is sent whole:
  // the listener's send limit is not its receive limit.
  for (; written < 256; ++written) {
    ASSERT_TRUE((*writer)->Put(absl::StrCat("w/", written), value).ok());
  }
  RangeOptions full;
  full.range_end = PrefixEnd("w/");
  absl::StatusOr<RangeResult> page = (*writer)->Range("w/", full);
  ASSERT_TRUE(page.ok()) << page.status();
  EXPECT_TRUE(page->more);
  EXPECT_GT(page->kvs.size(), 128u);
}

// The watches of one client share its streams: 40 watches are one stream
// and 40 watchers on their member (/status). A member that takes fewer
// watchers per stream (--max_watchers_per_stream=4) makes the client open
// more streams: no watch is refused. Every watch gets its own key's
// writes, and one canceled from its own callback gets no more.
TEST_F(QuorateNodeTest, Watch_OneClientsWatchesShareItsStreams) {
  Define(3);
  for (auto& [name, m] : members_) {
    if (name == "n3") m.extra_flags = {"--max_watchers_per_stream=4"};
    Start(name);
  }
  ASSERT_FALSE(AwaitLeader().empty());
  ClientOptions co;
  co.endpoints = absl::StrSplit(Endpoints(), ',');
  co.timeout = absl::Seconds(10);
  auto writer = Client::Create(co);
  ASSERT_TRUE(writer.ok());
  struct Case {
    std::string member;
    int watches;
    int64_t streams;  // on the member, once all are started
  };
  for (const Case& c : {Case{"n1", 40, 1}, Case{"n3", 10, 3}}) {
    SCOPED_TRACE(c.member);
    ClientOptions wo;
    wo.endpoints = {members_[c.member].port->address()};
    wo.timeout = absl::Seconds(10);
    auto watch_client = Client::Create(wo);
    ASSERT_TRUE(watch_client.ok());
    const std::string prefix = absl::StrCat("share-", c.member, "/");
    std::vector<std::atomic<int>> seen(c.watches);
    std::vector<std::unique_ptr<Watcher>> watchers(c.watches);
    // Watch 0 cancels itself in its first callback with an event, and
    // starts another watch from there.
    std::atomic<bool> self_canceled{false};
    std::promise<absl::StatusOr<std::unique_ptr<Watcher>>> started_late;
    std::atomic<int> seen_late{0};
    for (int i = 0; i < c.watches; ++i) {
      WatchOptions w;
      w.on_events = [&, i](const std::vector<WatchEvent>& events, uint64_t) {
        seen[i].fetch_add(static_cast<int>(events.size()));
        if (i == 0 && !events.empty()) {
          watchers[0]->Cancel();
          self_canceled = true;
          WatchOptions late;
          late.on_events = [&](const std::vector<WatchEvent>& e, uint64_t) {
            seen_late.fetch_add(static_cast<int>(e.size()));
          };
          started_late.set_value(
              (*watch_client)->Watch(prefix + "late", std::move(late)));
        }
      };
      auto watcher =
          (*watch_client)->Watch(absl::StrCat(prefix, i), std::move(w));
      ASSERT_TRUE(watcher.ok()) << i << ": " << watcher.status();
      watchers[i] = *std::move(watcher);
    }
    const std::string status = Status(c.member);
    EXPECT_EQ(JsonInt(status, "streams"), c.streams) << status;
    EXPECT_EQ(JsonInt(status, "watchers"), c.watches) << status;
    for (int round = 0; round < 2; ++round) {
      for (int i = 0; i < c.watches; ++i) {
        ASSERT_TRUE((*writer)->Put(absl::StrCat(prefix, i), "v").ok());
      }
    }
    for (int i = 1; i < c.watches; ++i) {
      EXPECT_TRUE(Await([&] { return seen[i].load() == 2; }))
          << "watch " << i << " saw " << seen[i].load() << " of 2 writes";
    }
    EXPECT_TRUE(self_canceled.load());
    EXPECT_EQ(seen[0].load(), 1);
    EXPECT_EQ(watchers[0]->Done().get(), absl::OkStatus());
    absl::StatusOr<std::unique_ptr<Watcher>> late =
        started_late.get_future().get();
    ASSERT_TRUE(late.ok()) << late.status();
    ASSERT_TRUE((*writer)->Put(prefix + "late", "v").ok());
    EXPECT_TRUE(Await([&] { return seen_late.load() == 1; }));
    // Watch 0 gone, the late one in.
    EXPECT_EQ(JsonInt(Status(c.member), "watchers"), c.watches);
  }
}

// Callbacks on two streams may each start a watch. A callback that waited
// for its new watch's acceptance could wait on the other stream while that
// stream's callback waited on this one: both stalled until the client's
// timeout, and failed. Here two watches sit on two streams (the member
// takes 2 per stream; one watch each is canceled to leave room on both),
// both callbacks are held until both run, then each starts a watch: both
// return at once, and both new watches get their writes.
TEST_F(QuorateNodeTest, Watch_CallbacksOnTwoStreamsMayStartWatches) {
  Define(3);
  for (auto& [name, m] : members_) {
    m.extra_flags = {"--max_watchers_per_stream=2"};
    Start(name);
  }
  ASSERT_FALSE(AwaitLeader().empty());
  ClientOptions co;
  co.endpoints = absl::StrSplit(Endpoints(), ',');
  co.timeout = absl::Seconds(10);
  auto writer = Client::Create(co);
  ASSERT_TRUE(writer.ok());
  ClientOptions wo;
  wo.endpoints = {members_["n1"].port->address()};
  wo.timeout = absl::Seconds(10);
  auto watch_client = Client::Create(wo);
  ASSERT_TRUE(watch_client.ok());

  std::atomic<int> arrived{0};
  std::promise<absl::StatusOr<std::unique_ptr<Watcher>>> started[2];
  std::atomic<int> seen_late[2] = {0, 0};
  auto starter = [&](int i) {
    WatchOptions w;
    w.on_events = [&, i](const std::vector<WatchEvent>& events, uint64_t) {
      if (events.empty()) return;
      // Both callbacks run before either starts its watch.
      arrived.fetch_add(1);
      EXPECT_TRUE(Await([&] { return arrived.load() >= 2; }));
      WatchOptions late;
      late.on_events = [&, i](const std::vector<WatchEvent>& e, uint64_t) {
        seen_late[i].fetch_add(static_cast<int>(e.size()));
      };
      started[i].set_value(
          (*watch_client)->Watch(absl::StrCat("late/", i), std::move(late)));
    };
    return w;
  };
  auto idle = [] { return WatchOptions{}; };
  // a and b fill the first stream; c is refused there and goes to a
  // second, with d; b and d leave.
  std::unique_ptr<Watcher> a, b, c, d;
  for (auto [key, slot, options] :
       {std::tuple{"a", &a, starter(0)}, std::tuple{"b", &b, idle()},
        std::tuple{"c", &c, starter(1)}, std::tuple{"d", &d, idle()}}) {
    auto w = (*watch_client)->Watch(key, std::move(options));
    ASSERT_TRUE(w.ok()) << key << ": " << w.status();
    *slot = *std::move(w);
  }
  EXPECT_EQ(JsonInt(Status("n1"), "streams"), 2);
  b->Cancel();
  d->Cancel();
  ASSERT_TRUE((*writer)->Put("a", "v").ok());
  ASSERT_TRUE((*writer)->Put("c", "v").ok());
  for (int i = 0; i < 2; ++i) {
    absl::StatusOr<std::unique_ptr<Watcher>> late =
        started[i].get_future().get();
    ASSERT_TRUE(late.ok()) << i << ": " << late.status();
    ASSERT_TRUE((*writer)->Put(absl::StrCat("late/", i), "v").ok());
    EXPECT_TRUE(Await([&] { return seen_late[i].load() == 1; })) << i;
  }
}

}  // namespace
}  // namespace quorate
