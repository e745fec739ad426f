// quorate-node as separate processes on loopback: the contract of
// CONTRACTS.md (flags, /status, signals, exit codes) and what a cluster of
// processes does when one is killed with SIGKILL.
#include <gtest/gtest.h>
#include <signal.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "util/port.h"
#include "util/process.h"

namespace quorate {
namespace {

using testing::HttpGet;
using testing::JsonInt;
using testing::JsonString;
using testing::PortReservation;
using testing::Process;
using testing::ReadAll;

class QuorateNodeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/quorate-node-proc-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    root_ = tmpl;
  }
  void TearDown() override {
    members_.clear();  // kills what still runs
    if (HasFailure()) {
      for (const auto& e : std::filesystem::directory_iterator(root_)) {
        if (e.path().extension() == ".log") {
          std::cerr << "---- " << e.path() << "\n" << ReadAll(e.path());
        }
      }
    }
    std::filesystem::remove_all(root_);
  }

  struct Member {
    std::unique_ptr<PortReservation> port;
    std::unique_ptr<PortReservation> admin;
    std::string zone;
    std::string cluster_id = "proc";
    std::unique_ptr<Process> process;
  };

  void Define(int n) {
    for (int i = 1; i <= n; ++i) {
      Member& m = members_[absl::StrCat("n", i)];
      m.port = std::make_unique<PortReservation>();
      m.admin = std::make_unique<PortReservation>();
      m.zone = std::string("az-") + static_cast<char>('a' + i % 3);
    }
  }

  std::string Peers() const {
    std::vector<std::string> out;
    for (const auto& [name, m] : members_) {
      out.push_back(absl::StrCat(name, "@", m.zone, "=", m.port->address()));
    }
    return absl::StrJoin(out, ",");
  }

  std::vector<std::string> Args(const std::string& name) {
    Member& m = members_[name];
    return {QUORATE_NODE_BINARY,
            "--id=" + name,
            "--zone=" + m.zone,
            "--listen=" + m.port->address(),
            "--admin=" + m.admin->address(),
            "--peers=" + Peers(),
            "--data_dir=" + root_ + "/" + name,
            "--cluster_id=" + m.cluster_id,
            "--heartbeat_interval=20ms",
            "--election_timeout=200ms",
            "--segment_bytes=1048576",
            "--event_log=" + root_ + "/" + name + ".events"};
  }

  void Start(const std::string& name) {
    members_[name].process =
        std::make_unique<Process>(Args(name), root_ + "/" + name + ".log");
    ASSERT_TRUE(members_[name].process->started());
  }

  std::string Status(const std::string& name) {
    return HttpGet(members_[name].admin->port(), "/status");
  }

  // Polls until `pred` holds: a process outside can only be asked.
  bool Await(const std::function<bool()>& pred,
             absl::Duration limit = absl::Seconds(20)) {
    const absl::Time until = absl::Now() + limit;
    while (!pred()) {
      if (absl::Now() >= until) return false;
      absl::SleepFor(absl::Milliseconds(20));
    }
    return true;
  }

  // The leader every running member names, with the leader saying so.
  std::string AgreedLeader() {
    std::string leader;
    for (auto& [name, m] : members_) {
      if (m.process == nullptr) continue;
      const std::string s = Status(name);
      const std::string l = JsonString(s, "leader_id");
      if (l.empty() || (!leader.empty() && l != leader)) return "";
      leader = l;
    }
    if (leader.empty() || members_[leader].process == nullptr ||
        JsonString(Status(leader), "role") != "leader") {
      return "";
    }
    return leader;
  }

  std::string AwaitLeader() {
    std::string leader;
    EXPECT_TRUE(Await([&] { return !(leader = AgreedLeader()).empty(); }));
    return leader;
  }

  std::string root_;
  std::map<std::string, Member> members_;
};

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
  EXPECT_EQ(HttpGet(members_[leader].admin->port(), "/healthz"), "ok\n");
  // The event log recorded the leader's election.
  EXPECT_NE(ReadAll(root_ + "/" + leader + ".events")
                .find("\"event\": \"role\", \"role\": \"leader\""),
            std::string::npos);
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
    return n1.find("refused member 'n3'") != std::string::npos &&
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
      {{"--learner"}, "--learner is not supported yet"},
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
  PortReservation port, admin;
  std::vector<std::string> args = Args("n1");
  args[3] = "--listen=" + port.address();
  args[4] = "--admin=" + admin.address();
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

}  // namespace
}  // namespace quorate
