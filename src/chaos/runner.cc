#include "chaos/runner.h"

#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <set>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "chaos/network.h"
#include "chaos/runner_internal.h"
#include "chaos/sys.h"
#include "chaos/timeline.h"
#include "chaos/workload.h"
#include "quorate/client.h"
#include "util/clock.h"
#include "util/log_time.h"

namespace quorate::chaos {
namespace internal {

std::atomic<bool> g_interrupted{false};

namespace {

// An empty or new directory; or one an earlier run wrote (it holds the
// marker .quorate-chaos), whose files go: logs are appended to, and an
// event log left from another run would be checked as this one's.
absl::Status PrepareOutDir(const std::string& dir) {
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot create '", dir, "': ", ec.message()));
  }
  const fs::path marker = fs::path(dir) / ".quorate-chaos";
  const bool earlier_run = fs::exists(marker, ec);
  for (const fs::directory_entry& e : fs::directory_iterator(dir, ec)) {
    if (!earlier_run) {
      return absl::InvalidArgumentError(absl::StrCat(
          "'", dir,
          "' holds files that are not a chaos run's: give an empty "
          "or new directory"));
    }
    fs::remove_all(e.path(), ec);
  }
  std::ofstream(marker) << "a quorate-chaos run's directory\n";
  return absl::OkStatus();
}

// One JSON object per operation, in the order they completed; times in
// nanoseconds since the members started.
void WriteHistory(const std::string& path, const std::vector<Op>& history,
                  int64_t t0) {
  std::ofstream out(path);
  for (const Op& op : history) {
    const char* type = op.type == Op::Type::kWrite  ? "write"
                       : op.type == Op::Type::kRead ? "read"
                                                    : "put_once";
    const char* outcome = op.outcome == Op::Outcome::kOk       ? "ok"
                          : op.outcome == Op::Outcome::kFailed ? "failed"
                                                               : "unknown";
    out << "{\"client\": " << op.client << ", \"type\": \"" << type
        << "\", \"key\": \"" << op.key << "\", \"value\": \"" << op.value
        << "\", \"call_ns\": " << op.call_ns - t0
        << ", \"return_ns\": " << op.return_ns - t0 << ", \"outcome\": \""
        << outcome << "\"}\n";
  }
}

}  // namespace

void Runner::Sleep(absl::Duration d) {
  const absl::Time until = absl::Now() + d;
  while (!g_interrupted.load() && absl::Now() < until) {
    absl::SleepFor(std::min(until - absl::Now(), absl::Milliseconds(50)));
    NoteExits();
  }
}

void Runner::NoteExits() {
  for (Member& mem : m_) {
    int status = 0;
    if (mem.pid > 0 && Exited(mem.pid, &status)) {
      mem.pid = -1;
      unexpected_exits_.push_back(absl::StrCat(
          mem.id, " exited by itself at ", At(MonotonicNowNs(), t0_), " (",
          WIFEXITED(status) ? absl::StrCat("exit ", WEXITSTATUS(status))
                            : absl::StrCat("signal ", WTERMSIG(status)),
          "; see ", mem.log, ")"));
    }
  }
}

absl::Status Runner::Setup() {
  const Schedule& s = o_.schedule;
  for (const std::string& stale : Network::RemoveStale()) {
    if (!o_.quiet)
      printf("removed %s, left by an earlier run\n", stale.c_str());
  }
  absl::StatusOr<std::unique_ptr<Network>> net =
      Network::Create(absl::StrCat("qc", getpid()), s.members);
  if (!net.ok()) return net.status();
  net_ = *std::move(net);
  for (int i = 0; i < s.members; ++i) {
    Member mem;
    mem.id = s.Id(i);
    mem.zone = s.zones[i];
    mem.address = net_->address(i);
    mem.listen = mem.address + ":7000";
    mem.admin = mem.address + ":7100";
    mem.dir = absl::StrCat(o_.out_dir, "/", mem.id);
    mem.log = absl::StrCat(o_.out_dir, "/", mem.id, ".log");
    mem.events = absl::StrCat(o_.out_dir, "/", mem.id, ".events.jsonl");
    m_.push_back(std::move(mem));
  }
  t0_ = MonotonicNowNs();
  for (int i = 0; i < s.members; ++i) {
    if (absl::Status st = StartMember(i, 1.0); !st.ok()) return st;
  }
  ClientOptions co;
  for (const Member& mem : m_) co.endpoints.push_back(mem.listen);
  co.timeout = absl::Seconds(1);
  absl::StatusOr<std::unique_ptr<Client>> c = Client::Create(co);
  if (!c.ok()) return c.status();
  admin_client_ = *std::move(c);
  // A cluster that elects no leader in 20 s is a harness failure, not a
  // verdict: nothing was injected yet.
  const absl::Time give_up = absl::Now() + absl::Seconds(20);
  while (Leader() < 0) {
    NoteExits();
    if (!unexpected_exits_.empty()) {
      return absl::InternalError(
          absl::StrCat("a member failed to start: ", unexpected_exits_[0]));
    }
    if (absl::Now() > give_up || g_interrupted.load()) {
      return absl::DeadlineExceededError(
          "the members elected no leader within 20 s of starting");
    }
    absl::SleepFor(absl::Milliseconds(100));
  }
  return absl::OkStatus();
}

absl::Status Runner::StartMember(int i, double rate) {
  Member& mem = m_[i];
  std::error_code ec;
  std::filesystem::create_directories(mem.dir, ec);
  std::string peers;
  for (const Member& p : m_) {
    absl::StrAppend(&peers, peers.empty() ? "" : ",", p.id, "@", p.zone, "=",
                    p.listen);
  }
  SpawnOptions so;
  for (const std::string& word : o_.command) {
    so.argv.push_back(
        absl::StrReplaceAll(word, {{"{id}", mem.id},
                                   {"{zone}", mem.zone},
                                   {"{address}", mem.address},
                                   {"{listen}", mem.listen},
                                   {"{admin}", mem.admin},
                                   {"{peers}", peers},
                                   {"{cluster}", o_.cluster_id},
                                   {"{data_dir}", mem.dir + "/data"},
                                   {"{event_log}", mem.events},
                                   {"{faults_file}", o_.out_dir + "/faults"},
                                   {"{max_clock_drift}", DriftBound()}}));
  }
  so.netns = net_->netns(i);
  so.log_path = mem.log;
  if (rate != 1.0) {
    so.env["LD_PRELOAD"] = kFaketime;
    so.env["FAKETIME"] = absl::StrCat("+0 x", rate);
  }
  absl::StatusOr<pid_t> pid = Spawn(so);
  if (!pid.ok()) return pid.status();
  mem.pid = *pid;
  mem.rate = rate;
  return absl::OkStatus();
}

void Runner::KillMember(int i) {
  KillAndReap(m_[i].pid);
  m_[i].pid = -1;
  m_[i].stopped = false;
}

absl::Status Runner::RestartGracefully(int i, double rate) {
  Member& mem = m_[i];
  if (mem.pid > 0) {
    kill(mem.pid, SIGTERM);
    const absl::Time until = absl::Now() + absl::Seconds(10);
    int status = 0;
    while (!Exited(mem.pid, &status) && absl::Now() < until) {
      absl::SleepFor(absl::Milliseconds(10));
    }
    if (absl::Now() >= until) KillAndReap(mem.pid);
    mem.pid = -1;
  }
  return StartMember(i, rate);
}

int Runner::Leader() {
  absl::StatusOr<std::vector<ClusterMember>> ms = admin_client_->Members();
  if (!ms.ok()) return -1;
  for (const ClusterMember& cm : *ms) {
    if (cm.role != "leader") continue;
    for (size_t i = 0; i < m_.size(); ++i) {
      if (m_[i].id == cm.id) return static_cast<int>(i);
    }
  }
  return -1;
}

std::string Runner::DriftBound() const {
  return absl::StrCat(std::min(0.49, std::max(0.01, o_.schedule.MaxSkew())));
}

RunResult Runner::Go() {
  RunResult r;
  if (absl::Status s = PrepareOutDir(o_.out_dir); !s.ok()) {
    r.status = s;
    return r;
  }
  if (absl::Status s = WriteFaults(""); !s.ok()) {
    r.status = s;
    return r;
  }
  auto say = [this](const std::string& line) {
    // The report adds the wall time, to line up with the members' logs.
    log_.push_back(absl::StrCat(line, "  (", LogTime(), ")"));
    if (!o_.quiet) {
      printf("%s\n", line.c_str());
      fflush(stdout);
    }
  };
  r.status = Setup();
  std::unique_ptr<Workload> workload;
  if (r.status.ok()) {
    say(absl::StrCat(At(MonotonicNowNs(), t0_), "  ", m_.size(),
                     " members up, leader ",
                     m_[Leader() < 0 ? 0 : Leader()].id));
    WorkloadOptions wo;
    for (const Member& mem : m_) wo.endpoints.push_back(mem.listen);
    wo.clients = o_.schedule.clients;
    wo.keys = o_.schedule.keys;
    wo.rate = o_.schedule.rate;
    wo.stale_reads = o_.stale_reads;
    absl::StatusOr<std::unique_ptr<Workload>> w = Workload::Start(wo);
    if (w.ok()) {
      workload = *std::move(w);
    } else {
      r.status = w.status();
    }
  }
  if (r.status.ok()) {
    Sleep(o_.schedule.settle);
    for (const Step& step : o_.schedule.steps) {
      if (g_interrupted.load()) break;
      absl::StatusOr<std::string> what = Inject(step);
      // The fault is in effect once Inject() returns (nftables rules go in
      // member by member, tens of milliseconds in all); periods start here.
      const int64_t start = MonotonicNowNs();
      if (!what.ok()) {
        r.status = absl::Status(
            what.status().code(),
            absl::StrCat(step.Describe(), ": ", what.status().message()));
        break;
      }
      say(absl::StrCat(At(start, t0_), "  ", step.Describe(), ": ", *what));
      Sleep(step.duration);
      if (absl::Status s = Heal(step); !s.ok()) {
        r.status = s;
        break;
      }
      if (step.nemesis != "quiet") {
        periods_.push_back(Period{start, MonotonicNowNs(),
                                  absl::StrCat(step.Describe(), ": ", *what),
                                  -1});
        say(absl::StrCat(At(MonotonicNowNs(), t0_), "  healed"));
      }
    }
  }
  if (g_interrupted.load() && r.status.ok()) {
    r.status = absl::CancelledError("interrupted");
  }
  std::vector<Op> history;
  if (workload != nullptr) {
    workload->Stop();
    if (r.status.ok()) {
      // Every fault is healed: the cluster must serve again.
      r.status = workload->FinalReads(absl::Seconds(30));
    }
    history = workload->History();
  }
  NoteExits();
  const int64_t end_ns = MonotonicNowNs();
  for (int i = 0; i < static_cast<int>(m_.size()); ++i) KillMember(i);
  if (net_ != nullptr) net_->Destroy();
  // The members' data goes; their logs and event logs stay with the report.
  for (const Member& mem : m_) {
    std::error_code ignored;
    std::filesystem::remove_all(mem.dir, ignored);
  }
  std::vector<Event> events;
  for (const Member& mem : m_) {
    absl::StatusOr<std::vector<Event>> e = ReadEventLog(mem.events);
    if (!e.ok()) {
      if (r.status.ok()) r.status = e.status();
      continue;
    }
    events.insert(events.end(), e->begin(), e->end());
  }
  WriteHistory(o_.out_dir + "/history.jsonl", history, t0_);
  if (r.status.ok()) {
    const int64_t check_start = MonotonicNowNs();
    std::map<std::string, std::vector<int64_t>> deaths;
    for (const Period& p : down_) {
      if (p.label == "kill") deaths[m_[p.member].id].push_back(p.start_ns);
    }
    r.verdicts.push_back(CheckLinearizability(history));
    absl::StrAppend(&r.verdicts.back().detail, " (checked in ",
                    (MonotonicNowNs() - check_start) / 1'000'000, " ms)");
    r.verdicts.push_back(CheckNoLostWrites(history));
    for (Verdict& v : CheckEvents(events, end_ns, deaths)) {
      r.verdicts.push_back(v);
    }
    if (o_.schedule.resume_within > absl::ZeroDuration()) {
      std::sort(events.begin(), events.end(),
                [](const Event& a, const Event& b) { return a.t_ns < b.t_ns; });
      std::vector<chaos::Heal> heals;
      for (size_t i = 0; i < periods_.size(); ++i) {
        const int64_t next =
            i + 1 < periods_.size() ? periods_[i + 1].start_ns : end_ns;
        heals.push_back(chaos::Heal{periods_[i].end_ns, next});
      }
      std::vector<std::string> ids;
      for (const Member& mem : m_) ids.push_back(mem.id);
      r.verdicts.push_back(CheckResume(
          events, heals, ids,
          absl::ToInt64Nanoseconds(o_.schedule.resume_within), deaths));
    }
    Verdict up{"members stayed up", unexpected_exits_.empty(), ""};
    up.detail = up.ok ? "no member exited by itself"
                      : absl::StrCat("VIOLATION: ",
                                     absl::StrJoin(unexpected_exits_, "; "));
    r.verdicts.push_back(up);
  }
  std::sort(events.begin(), events.end(),
            [](const Event& a, const Event& b) { return a.t_ns < b.t_ns; });
  r.events = events;
  r.nemeses = periods_;
  r.report = Report(history, events, r.verdicts, end_ns);
  if (!r.status.ok()) {
    absl::StrAppend(&r.report,
                    "\nThe run did not complete: ", r.status.ToString(), "\n");
  }
  std::ofstream(o_.out_dir + "/report.txt") << r.report;
  TimelineInput ti;
  ti.t0_ns = t0_;
  ti.end_ns = end_ns;
  for (const Member& mem : m_) ti.members.push_back(mem.id + " " + mem.zone);
  ti.events = events;
  ti.nemeses = periods_;
  ti.outages = down_;
  ti.history = history;
  ti.title = absl::StrCat("Quorate chaos run: ", o_.out_dir);
  std::ofstream(o_.out_dir + "/timeline.html") << TimelineHtml(ti);
  return r;
}

std::string Runner::Report(const std::vector<Op>& history,
                           const std::vector<Event>& events,
                           const std::vector<Verdict>& verdicts,
                           int64_t end_ns) {
  std::string out = absl::StrCat("Quorate chaos run in ", o_.out_dir, "\n\n");
  absl::StrAppend(&out, "Schedule:\n");
  for (absl::string_view line :
       absl::StrSplit(o_.schedule.Describe(), '\n', absl::SkipEmpty())) {
    absl::StrAppend(&out, "  ", line, "\n");
  }
  absl::StrAppend(&out, "\nMembers:\n");
  for (const Member& mem : m_) {
    absl::StrAppend(&out, "  ", mem.id, "  ", mem.zone, "  ", mem.listen,
                    "  log ", mem.log, "\n");
  }
  if (o_.schedule.MaxSkew() > 0.49) {
    absl::StrAppend(&out,
                    "\nNote: a clock is skewed by more than any drift bound a "
                    "member accepts (0.49): the partition guard's assumption "
                    "is broken on purpose, and the window check may fail.\n");
  }
  absl::StrAppend(&out, "\nInjected (time since the members started):\n");
  for (const std::string& line : log_) absl::StrAppend(&out, "  ", line, "\n");

  absl::StrAppend(&out, "\nObserved:\n");
  std::map<std::string, std::array<int, 3>>
      counts;  // type -> ok/failed/unknown
  for (const Op& op : history) {
    if (op.client < 0) continue;
    const char* type = op.type == Op::Type::kWrite  ? "register writes"
                       : op.type == Op::Type::kRead ? "register reads"
                                                    : "put-once writes";
    counts[type][static_cast<int>(op.outcome)]++;
  }
  for (const auto& [type, c] : counts) {
    absl::StrAppend(&out, "  ", type, ": ", c[0], " ok, ", c[1],
                    " refused or failed, ", c[2], " outcome unknown\n");
  }
  for (const Period& p : periods_) {
    int ok = 0, total = 0;
    for (const Op& op : history) {
      if (op.client < 0 || op.call_ns < p.start_ns || op.call_ns >= p.end_ns)
        continue;
      ++total;
      if (op.outcome == Op::Outcome::kOk) ++ok;
    }
    absl::StrAppend(&out, "  during '", p.label, "': ", ok, " of ", total,
                    " operations succeeded\n");
  }
  std::map<uint64_t, std::pair<std::string, int64_t>> leaders;
  std::map<std::string, int> changes;
  for (const Event& e : events) {
    if (e.event == "role") ++changes[e.id];
    if (e.event == "role" && e.role == "leader" && !leaders.count(e.term)) {
      leaders[e.term] = {e.id, e.t_ns};
    }
  }
  std::vector<std::string> ls;
  for (const auto& [term, who] : leaders) {
    ls.push_back(absl::StrCat("term ", term, ": ", who.first, " at ",
                              At(who.second, t0_)));
  }
  absl::StrAppend(&out, "  leaders: ",
                  ls.empty() ? "none logged" : absl::StrJoin(ls, "; "), "\n");
  std::vector<std::string> cs;
  for (const auto& [id, c] : changes) cs.push_back(absl::StrCat(id, " ", c));
  absl::StrAppend(&out, "  role changes logged: ", absl::StrJoin(cs, ", "),
                  "\n");
  absl::StrAppend(&out, "  run length: ", At(end_ns, t0_), "\n");

  absl::StrAppend(&out, "\nVerdicts:\n");
  bool all = true;
  for (const Verdict& v : verdicts) {
    all = all && v.ok;
    absl::StrAppend(&out, "  [", v.ok ? "ok" : "FAIL", "] ", v.name, ": ",
                    v.detail, "\n");
  }
  absl::StrAppend(&out, "\nResult: ",
                  verdicts.empty() ? "NO VERDICT"
                  : all            ? "PASS"
                                   : "FAIL",
                  "\n");
  return out;
}

}  // namespace internal

bool RunResult::ok() const {
  if (!status.ok()) return false;
  for (const Verdict& v : verdicts) {
    if (!v.ok) return false;
  }
  return true;
}

std::vector<std::string> DefaultCommand(const std::string& node_binary) {
  return {node_binary,
          "--id={id}",
          "--zone={zone}",
          "--listen={listen}",
          "--admin={admin}",
          "--peers={peers}",
          "--cluster_id={cluster}",
          "--data_dir={data_dir}",
          "--event_log={event_log}",
          "--faults_file={faults_file}",
          "--heartbeat_interval=50ms",
          "--election_timeout=500ms",
          "--max_clock_drift={max_clock_drift}",
          "--segment_bytes=4194304"};
}

absl::Status CanRun() {
  if (geteuid() != 0) {
    return absl::FailedPreconditionError(
        "quorate-chaos needs root (network namespaces and nftables)");
  }
  for (const char* tool : {"ip", "nft"}) {
    if (!RunCommand({"sh", "-c", absl::StrCat("command -v ", tool)}).ok()) {
      return absl::FailedPreconditionError(
          absl::StrCat("quorate-chaos needs '", tool,
                       "' (Debian packages iproute2 and nftables)"));
    }
  }
  return absl::OkStatus();
}

RunResult Run(const RunOptions& options) {
  internal::Runner runner(options);
  return runner.Go();
}

void Interrupt() { internal::g_interrupted.store(true); }

}  // namespace quorate::chaos
