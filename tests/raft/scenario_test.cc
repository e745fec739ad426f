// Scenario scripts with golden transcripts: tests/raft/testdata/*.txt.
//
// A script is a list of commands, one per line, each starting with "> ".
// After each command the driver writes what happened: the messages it
// delivered (for stabilize/deliver) and every member whose role, term,
// leader or commit changed. Lines starting with '#' are comments. Every
// other line is expected output; the test regenerates the file's output and
// compares. To accept new output after a deliberate change, run the test
// with QUORATE_REWRITE_GOLDEN=1 and review the diff.
//
// Commands:
// A script containing the line "# expect-violation" runs a deliberately
// broken core (cluster ... unsafe=commit-previous-terms) and passes only if
// the invariant checker reports a violation.
//
//   cluster voters=N [learners=M] [seed=S] [prevote=false]
//           [checkquorum=false] [chunk=BYTES]
//           [maxmsg=BYTES] [unsafe=commit-previous-terms]
//   campaign ID | elect ID | tick NS | skip NS (no ticks) | stabilize
//   deliver (one wave of messages) | drop
//   partition A B / C D | isolate ID | cut FROM TO | heal
//   propose ID DATA | read ID REQUEST | reads ID | transfer ID TARGET
//   add-voter LEADER ID | add-learner LEADER ID | remove LEADER ID
//   promote LEADER ID | compact ID | crash ID | restart ID
//   status | log ID | members ID
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <tuple>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "raft/cluster.h"

namespace quorate::raft::testing {
namespace {

class ScenarioDriver {
 public:
  // Runs one command; returns its output lines.
  std::vector<std::string> Run(const std::string& line) {
    out_.clear();
    std::vector<std::string> args =
        absl::StrSplit(line, ' ', absl::SkipEmpty());
    if (args.empty()) return out_;
    const std::string cmd = args[0];
    args.erase(args.begin());
    if (cmd == "cluster") {
      NewCluster(args);
    } else if (c_ == nullptr) {
      Say("error: no cluster; start with 'cluster voters=N'");
      return out_;
    } else {
      Snapshot before = Capture();
      Dispatch(cmd, args);
      ReportChanges(before);
      const std::string violation = c_->CheckInvariants();
      if (!violation.empty()) Say("!! violation: " + violation);
    }
    return out_;
  }

 private:
  using Snapshot =
      std::map<uint64_t, std::tuple<Role, uint64_t, uint64_t, uint64_t, bool>>;

  void Say(std::string s) { out_.push_back(std::move(s)); }

  static uint64_t Id(const std::string& s) {
    uint64_t v = 0;
    if (!absl::SimpleAtoi(s, &v)) v = 0;
    return v;
  }

  void NewCluster(const std::vector<std::string>& args) {
    int voters = 3;
    int learners = 0;
    uint64_t seed = 1;
    Config cfg = Cluster::DefaultConfig();
    for (const std::string& a : args) {
      std::pair<std::string, std::string> kv = absl::StrSplit(a, '=');
      if (kv.first == "voters") voters = static_cast<int>(Id(kv.second));
      if (kv.first == "learners") learners = static_cast<int>(Id(kv.second));
      if (kv.first == "seed") seed = Id(kv.second);
      if (kv.first == "prevote") cfg.pre_vote = kv.second != "false";
      if (kv.first == "checkquorum") cfg.check_quorum = kv.second != "false";
      if (kv.first == "chunk") cfg.snapshot_chunk_bytes = Id(kv.second);
      if (kv.first == "maxmsg") cfg.max_message_bytes = Id(kv.second);
      if (kv.first == "unsafe" && kv.second == "commit-previous-terms") {
        cfg.unsafe.commit_previous_terms = true;
      }
    }
    c_ = std::make_unique<Cluster>(voters, learners, seed, cfg);
    Say(absl::StrCat("heartbeat=", cfg.heartbeat_interval_ns,
                     " election=", cfg.election_timeout_ns));
  }

  Snapshot Capture() {
    Snapshot s;
    for (uint64_t id : c_->ids()) {
      if (!c_->IsUp(id)) {
        s[id] = {Role::kFollower, 0, 0, 0, false};
        continue;
      }
      Raft& r = c_->raft(id);
      s[id] = {r.role(), r.term(), r.leader(), r.commit(), true};
    }
    return s;
  }

  std::string StatusLine(uint64_t id) {
    if (!c_->IsUp(id)) return absl::StrCat(id, ": down");
    Raft& r = c_->raft(id);
    return absl::StrCat(id, ": ", RoleName(r.role()), " term=", r.term(),
                        " leader=", r.leader(), " commit=", r.commit(),
                        " last=", r.log().last_index());
  }

  void ReportChanges(const Snapshot& before) {
    Snapshot after = Capture();
    for (const auto& [id, state] : after) {
      auto it = before.find(id);
      if (it == before.end() || it->second != state) {
        Say("~ " + StatusLine(id));
      }
    }
  }

  void PrintMessages(const std::vector<Message>& msgs) {
    for (const Message& m : msgs) Say(Describe(m));
  }

  void Dispatch(const std::string& cmd, const std::vector<std::string>& a) {
    const int64_t now = c_->now();
    auto arg = [&](size_t i) { return i < a.size() ? Id(a[i]) : 0; };
    auto report = [&](const absl::Status& s) {
      if (!s.ok()) Say(absl::StrCat("error: ", s.ToString()));
    };
    static const std::set<std::string> kNeedsLiveMember = {
        "campaign",    "elect",   "propose", "read",      "transfer",
        "log",         "compact", "members", "add-voter", "remove",
        "add-learner", "promote", "crash"};
    if (kNeedsLiveMember.count(cmd) > 0) {
      const auto ids = c_->ids();
      if (std::find(ids.begin(), ids.end(), arg(0)) == ids.end() ||
          !c_->IsUp(arg(0))) {
        Say(absl::StrCat("error: member ", arg(0), " is not running"));
        return;
      }
    }
    if (cmd == "campaign") {
      c_->raft(arg(0)).Campaign(now);
      c_->ProcessReadies();
    } else if (cmd == "elect") {
      Say(c_->Elect(arg(0)) ? "elected" : "not elected");
    } else if (cmd == "tick") {
      c_->AdvanceTime(static_cast<int64_t>(arg(0)));
      Say(absl::StrCat("now=", c_->now()));
    } else if (cmd == "skip") {
      c_->SkipTime(static_cast<int64_t>(arg(0)));
      Say(absl::StrCat("now=", c_->now()));
    } else if (cmd == "stabilize") {
      PrintMessages(c_->Stabilize());
    } else if (cmd == "deliver") {
      PrintMessages(c_->DeliverOnce());
    } else if (cmd == "drop") {
      c_->ProcessReadies();
      Say(absl::StrCat("dropped ", c_->network().size()));
      c_->DropAll();
    } else if (cmd == "partition") {
      std::vector<uint64_t> left, right;
      bool second = false;
      for (const std::string& s : a) {
        if (s == "/") {
          second = true;
        } else {
          (second ? right : left).push_back(Id(s));
        }
      }
      c_->Partition(left, right);
    } else if (cmd == "isolate") {
      c_->Isolate(arg(0));
    } else if (cmd == "cut") {
      c_->Cut(arg(0), arg(1));
    } else if (cmd == "heal") {
      c_->Heal();
    } else if (cmd == "propose") {
      auto idx = c_->raft(arg(0)).Propose(a.size() > 1 ? a[1] : "", now);
      if (idx.ok()) {
        Say(absl::StrCat("index ", *idx));
      } else {
        report(idx.status());
      }
      c_->ProcessReadies();
    } else if (cmd == "read") {
      report(c_->raft(arg(0)).ReadIndex(arg(1), now));
      c_->ProcessReadies();
    } else if (cmd == "reads") {
      const Member& m = c_->member(arg(0));
      for (const ReadState& r : m.reads) {
        Say(absl::StrCat("read ", r.request_id, " index=", r.index));
      }
      for (uint64_t id : m.failed_reads) Say(absl::StrCat("failed ", id));
    } else if (cmd == "transfer") {
      report(c_->raft(arg(0)).TransferLeadership(arg(1), now));
      c_->ProcessReadies();
    } else if (cmd == "add-voter" || cmd == "add-learner" || cmd == "remove" ||
               cmd == "promote") {
      ConfChange cc;
      cc.set_member_id(arg(1));
      cc.set_type(cmd == "add-voter"     ? CONF_CHANGE_TYPE_ADD_VOTER
                  : cmd == "add-learner" ? CONF_CHANGE_TYPE_ADD_LEARNER
                  : cmd == "remove"      ? CONF_CHANGE_TYPE_REMOVE
                                         : CONF_CHANGE_TYPE_PROMOTE_LEARNER);
      const auto ids = c_->ids();
      if ((cmd == "add-voter" || cmd == "add-learner") &&
          std::find(ids.begin(), ids.end(), arg(1)) == ids.end()) {
        c_->AddBlankMember(arg(1));
      }
      auto idx = c_->raft(arg(0)).ProposeConfChange(cc, now);
      if (idx.ok()) {
        Say(absl::StrCat("index ", *idx));
      } else {
        report(idx.status());
      }
      c_->ProcessReadies();
    } else if (cmd == "compact") {
      report(c_->Compact(arg(0)));
      Say(absl::StrCat("snapshot at ",
                       c_->raft(arg(0)).log().snapshot_index()));
    } else if (cmd == "crash") {
      c_->Crash(arg(0));
    } else if (cmd == "restart") {
      c_->Restart(arg(0));
    } else if (cmd == "members") {
      const Membership& m = c_->raft(arg(0)).membership();
      Say(absl::StrCat("voters=", absl::StrJoin(m.voters(), ","),
                       " learners=", absl::StrJoin(m.learners(), ",")));
    } else if (cmd == "status") {
      for (uint64_t id : c_->ids()) Say(StatusLine(id));
    } else if (cmd == "log") {
      const RaftLog& log = c_->raft(arg(0)).log();
      std::string line = absl::StrCat("snapshot=", log.snapshot_index(), "/",
                                      log.snapshot_term());
      for (uint64_t i = log.first_index(); i <= log.last_index(); ++i) {
        const Entry& e = log.At(i);
        absl::StrAppend(&line, " ", i, "/", e.term(),
                        e.data().empty() ? "" : ":", e.data());
      }
      Say(line);
    } else {
      Say("error: unknown command '" + cmd + "'");
    }
  }

  std::unique_ptr<Cluster> c_;
  std::vector<std::string> out_;
};

// Runs the script at `path`; returns the file as it should read.
std::string Regenerate(const std::string& text) {
  ScenarioDriver driver;
  std::string out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("> ", 0) == 0) {
      out += line + "\n";
      for (const std::string& o : driver.Run(line.substr(2))) out += o + "\n";
    } else if (line.empty() || line[0] == '#') {
      out += line + "\n";
    }
    // Anything else is old output, replaced by the regenerated lines.
  }
  return out;
}

// The first line where two transcripts differ, with some context.
std::string FirstDifference(const std::string& want, const std::string& got) {
  std::vector<std::string> a = absl::StrSplit(want, '\n');
  std::vector<std::string> b = absl::StrSplit(got, '\n');
  size_t i = 0;
  while (i < a.size() && i < b.size() && a[i] == b[i]) ++i;
  std::string out;
  for (size_t j = (i >= 3 ? i - 3 : 0); j < i; ++j) {
    absl::StrAppend(&out, "    ", a[j], "\n");
  }
  absl::StrAppend(&out, "line ", i + 1,
                  ":\n  want: ", i < a.size() ? a[i] : "<end>",
                  "\n  got:  ", i < b.size() ? b[i] : "<end>", "\n");
  return out;
}

std::vector<std::string> Scripts() {
  std::vector<std::string> files;
  for (const auto& e :
       std::filesystem::directory_iterator(QUORATE_RAFT_TESTDATA)) {
    if (e.path().extension() == ".txt") files.push_back(e.path().string());
  }
  std::sort(files.begin(), files.end());
  return files;
}

class ScenarioTest : public ::testing::TestWithParam<std::string> {};

TEST_P(ScenarioTest, MatchesGoldenTranscript) {
  const std::string path = GetParam();
  std::ifstream f(path);
  ASSERT_TRUE(f.good()) << path;
  std::stringstream buf;
  buf << f.rdbuf();
  const std::string want = buf.str();
  const std::string got = Regenerate(want);
  if (std::getenv("QUORATE_REWRITE_GOLDEN") != nullptr) {
    std::ofstream(path) << got;
    return;
  }
  EXPECT_TRUE(got == want) << "golden transcript differs: " << path << "\n"
                           << FirstDifference(want, got)
                           << "(rerun with QUORATE_REWRITE_GOLDEN=1 to accept)";
  // A script that runs a deliberately broken core says so on a line
  // "# expect-violation": then the checker must report one.
  const bool expect_violation =
      want.find("\n# expect-violation\n") != std::string::npos;
  EXPECT_EQ(got.find("!! violation") != std::string::npos, expect_violation)
      << got;
}

std::string Name(const ::testing::TestParamInfo<std::string>& info) {
  std::string stem = std::filesystem::path(info.param).stem().string();
  for (char& ch : stem) {
    if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
  }
  return stem;
}

INSTANTIATE_TEST_SUITE_P(Scripts, ScenarioTest, ::testing::ValuesIn(Scripts()),
                         Name);

}  // namespace
}  // namespace quorate::raft::testing
