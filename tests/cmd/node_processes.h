// tests/cmd/node_processes.h: the fixture of the process tests: quorate-node
// members as child processes on loopback ports, their logs, /status and
// quoratectl.
#ifndef QUORATE_TESTS_CMD_NODE_PROCESSES_H_
#define QUORATE_TESTS_CMD_NODE_PROCESSES_H_

#include <gtest/gtest.h>
#include <stdlib.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "util/port.h"
#include "util/process.h"

namespace quorate::testing {

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
        if (e.path().extension() == ".log" ||
            e.path().extension() == ".events") {
          std::cerr << "---- " << e.path() << "\n" << ReadAll(e.path());
        }
      }
    }
    std::filesystem::remove_all(root_);
  }

  struct Member {
    std::unique_ptr<PortReservation> port;
    // The admin listener takes port 0; the port is read back from the log,
    // from `log_from` on (the log's size when this run started).
    size_t log_from = 0;
    int admin_port = 0;
    std::string zone;
    std::string cluster_id = "proc";
    bool learner = false;
    // Started with --join (a member added at runtime) instead of --peers.
    bool join = false;
    // Removed from the configuration: not counted by AgreedLeader().
    bool removed = false;
    std::vector<std::string> extra_flags;
    std::unique_ptr<Process> process;
  };

  // The partition guard's window is about this long, less its margin.
  std::string election_timeout_ = "200ms";

  void Define(int n) {
    for (int i = 1; i <= n; ++i) {
      Member& m = members_[absl::StrCat("n", i)];
      m.port = std::make_unique<PortReservation>();
      m.zone = std::string("az-") + static_cast<char>('a' + i % 3);
    }
  }

  // The voters (or the learners) as --peers (--learners) lists them.
  // Adds learner `name` (after Define()).
  void DefineLearner(const std::string& name, const std::string& zone) {
    Member& m = members_[name];
    m.port = std::make_unique<PortReservation>();
    m.zone = zone;
    m.learner = true;
  }

  std::string Peers(bool learners = false) const {
    std::vector<std::string> out;
    for (const auto& [name, m] : members_) {
      if (m.learner != learners || m.join) continue;
      out.push_back(absl::StrCat(name, "@", m.zone, "=", m.port->address()));
    }
    return absl::StrJoin(out, ",");
  }

  // Adds a member to be added at runtime and started with --join (after
  // Define()).
  void DefineJoiner(const std::string& name, const std::string& zone) {
    Member& m = members_[name];
    m.port = std::make_unique<PortReservation>();
    m.zone = zone;
    m.join = true;
  }

  std::vector<std::string> Args(const std::string& name) {
    Member& m = members_[name];
    std::vector<std::string> others;
    for (const auto& [other, o] : members_) {
      if (other != name && !o.removed) others.push_back(o.port->address());
    }
    return {
        QUORATE_NODE_BINARY,
        "--id=" + name,
        "--zone=" + m.zone,
        "--listen=" + m.port->address(),
        "--admin=127.0.0.1:0",
        m.join ? "--join=" + absl::StrJoin(others, ",") : "--peers=" + Peers(),
        "--data_dir=" + root_ + "/" + name,
        "--cluster_id=" + m.cluster_id,
        "--heartbeat_interval=20ms",
        "--election_timeout=" + election_timeout_,
        "--segment_bytes=1048576",
        "--event_log=" + root_ + "/" + name + ".events"};
  }

  std::vector<std::string> FullArgs(const std::string& name) {
    std::vector<std::string> args = Args(name);
    if (!Peers(/*learners=*/true).empty() && !members_[name].join) {
      args.push_back("--learners=" + Peers(/*learners=*/true));
    }
    if (members_[name].learner && !members_[name].join) {
      args.push_back("--learner");
    }
    for (const std::string& f : members_[name].extra_flags) args.push_back(f);
    return args;
  }

  std::string Endpoints(const std::vector<std::string>& names = {}) {
    std::vector<std::string> out;
    for (const auto& [name, m] : members_) {
      if (names.empty() ||
          std::find(names.begin(), names.end(), name) != names.end()) {
        out.push_back(m.port->address());
      }
    }
    return absl::StrJoin(out, ",");
  }

  struct Ctl {
    int exit = -1;
    std::string out;  // standard output and error
  };
  // Runs quoratectl with `args` (and `input` on its standard input) and
  // waits for it.
  Ctl Quoratectl(const std::vector<std::string>& args,
                 const std::string& input = "") {
    const std::string in = absl::StrCat(root_, "/ctl", ++ctl_runs_, ".in");
    {
      std::ofstream f(in, std::ios::binary);
      f << input;
    }
    std::vector<std::string> argv = {"/bin/sh", "-c",
                                     "f=$1; shift; exec \"$0\" \"$@\" < \"$f\"",
                                     QUORATECTL_BINARY, in};
    argv.insert(argv.end(), args.begin(), args.end());
    const std::string log = absl::StrCat(root_, "/ctl", ctl_runs_, ".out");
    Process p(argv, log);
    Ctl c;
    c.exit = p.Wait(absl::Seconds(30)).value_or(-1);
    c.out = ReadAll(log);
    return c;
  }
  int ctl_runs_ = 0;

  std::string Log(const std::string& name) const {
    return root_ + "/" + name + ".log";
  }

  void Start(const std::string& name) {
    Member& m = members_[name];
    m.log_from = FileSize(Log(name));
    m.admin_port = 0;
    m.process = std::make_unique<Process>(FullArgs(name), Log(name));
    ASSERT_TRUE(m.process->started());
  }

  // This run's admin port; 0 until the member printed it (HttpGet on port
  // 0 answers "", as for a member that does not serve yet).
  int AdminPort(const std::string& name) {
    Member& m = members_[name];
    if (m.admin_port == 0) m.admin_port = AdminPortInLog(Log(name), m.log_from);
    return m.admin_port;
  }

  std::string Status(const std::string& name) {
    return HttpGet(AdminPort(name), "/status");
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
      if (m.process == nullptr || m.removed) continue;
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

}  // namespace quorate::testing

#endif  // QUORATE_TESTS_CMD_NODE_PROCESSES_H_
