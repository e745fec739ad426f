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

void Runner::NoteStep(const Step& step, int64_t start_ns) {
  absl::StrAppend(
      &steps_jsonl_, "{\"step\": \"",
      absl::StrReplaceAll(step.Describe(), {{"\\", "\\\\"}, {"\"", "\\\""}}),
      "\", \"start_mono_ns\": ", start_ns,
      ", \"end_mono_ns\": ", MonotonicNowNs(), "}\n");
}

void Runner::NoteExits() {
  for (ServiceProc& v : svc_) {
    int status = 0;
    if (v.pid > 0 && Exited(v.pid, &status)) {
      v.pid = -1;
      if (v.stopped_by_plan || (WIFEXITED(status) && WEXITSTATUS(status) == 0))
        continue;
      unexpected_exits_.push_back(absl::StrCat(
          "service ", v.name, " ended at ", At(MonotonicNowNs(), t0_), " (",
          WIFEXITED(status) ? absl::StrCat("exit ", WEXITSTATUS(status))
                            : absl::StrCat("signal ", WTERMSIG(status)),
          "; see ", v.log, ")"));
    }
  }
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
  int spaces = s.members;
  for (const Service& v : s.services) spaces += v.netns() ? 1 : 0;
  if (o_.loopback) {
    net_ = Network::Loopback(spaces);
  } else {
    absl::StatusOr<std::unique_ptr<Network>> net =
        Network::Create(absl::StrCat("qc", getpid()), spaces);
    if (!net.ok()) return net.status();
    net_ = *std::move(net);
  }
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
  int next = s.members;
  for (const Service& spec : s.services) {
    ServiceProc v;
    v.name = spec.name;
    v.zone = spec.zone;
    v.log = absl::StrCat(o_.out_dir, "/", spec.name, ".log");
    if (spec.netns()) {
      v.net_index = next++;
      v.address = net_->address(v.net_index);
    } else {
      v.address = net_->host_address();
    }
    svc_.push_back(std::move(v));
  }
  // Every command is checked before anything starts.
  for (size_t j = 0; j < svc_.size(); ++j) {
    for (const auto* words : {&s.services[j].command, &s.services[j].ready}) {
      if (absl::StatusOr<std::vector<std::string>> e = Expand(*words, &svc_[j]);
          !e.ok()) {
        return e.status();
      }
    }
  }
  for (const Step& step : s.steps) {
    if (!step.Action() || step.nemesis == "stop" || step.nemesis == "mark")
      continue;
    if (absl::StatusOr<std::vector<std::string>> e = Expand(step.args, nullptr);
        !e.ok()) {
      return e.status();
    }
  }
  for (const auto& c : s.checks) {
    if (absl::StatusOr<std::vector<std::string>> e = Expand(c, nullptr);
        !e.ok()) {
      return e.status();
    }
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
  return StartServices();
}

absl::StatusOr<std::vector<std::string>> Runner::Expand(
    const std::vector<std::string>& words, const ServiceProc* self,
    int depth) const {
  std::vector<std::string> endpoints, admins;
  for (const Member& mem : m_) {
    endpoints.push_back(mem.listen);
    admins.push_back(mem.admin);
  }
  auto lookup = [&](const std::string& key) -> absl::StatusOr<std::string> {
    if (self != nullptr && key == "name") return self->name;
    if (self != nullptr && key == "zone") return self->zone;
    if (self != nullptr && key == "address") return self->address;
    if (key == "out_dir") return o_.out_dir;
    if (key == "endpoints") return absl::StrJoin(endpoints, ",");
    if (key == "admins") return absl::StrJoin(admins, ",");
    if (key.rfind("address:", 0) == 0) {
      const std::string who = key.substr(8);
      for (const Member& mem : m_) {
        if (mem.id == who) return mem.address;
      }
      for (const ServiceProc& v : svc_) {
        if (v.name == who) return v.address;
      }
    }
    // A value may hold placeholders itself ({address:db} in a URL).
    auto expand = [&](const std::string& value) -> absl::StatusOr<std::string> {
      if (value.find('{') == std::string::npos) return value;
      if (depth >= 8) {
        return absl::InvalidArgumentError(
            absl::StrCat("placeholder {", key, "} refers to itself"));
      }
      absl::StatusOr<std::vector<std::string>> e =
          Expand({value}, self, depth + 1);
      if (!e.ok()) return e.status();
      return (*e)[0];
    };
    if (auto it = o_.vars.find(key); it != o_.vars.end()) {
      return expand(it->second);
    }
    for (const auto& [name, value] : o_.schedule.vars) {
      if (name == key) return expand(value);
    }
    return absl::InvalidArgumentError(absl::StrCat(
        "unknown placeholder {", key, "}",
        self != nullptr ? absl::StrCat(" in service ", self->name) : "",
        " (set it with `set ", key, " VALUE` or ", key, "=VALUE)"));
  };
  std::vector<std::string> out;
  for (const std::string& word : words) {
    std::string w;
    size_t at = 0;
    while (at < word.size()) {
      const size_t open = word.find('{', at);
      const size_t close =
          open == std::string::npos ? open : word.find('}', open);
      if (close == std::string::npos) {
        w += word.substr(at);
        break;
      }
      w += word.substr(at, open - at);
      absl::StatusOr<std::string> value =
          lookup(word.substr(open + 1, close - open - 1));
      if (!value.ok()) return value.status();
      w += *value;
      at = close + 1;
    }
    out.push_back(std::move(w));
  }
  return out;
}

namespace {

// `argv` under coreutils' timeout: SIGTERM after `limit`, SIGKILL 5 s
// later, so that a command that hangs cannot hold the run.
std::vector<std::string> Bounded(std::vector<std::string> argv,
                                 absl::Duration limit) {
  const int64_t seconds = std::max<int64_t>(
      1, absl::ToInt64Seconds(absl::Ceil(limit, absl::Seconds(1))));
  argv.insert(argv.begin(), {"timeout", "-k", "5", absl::StrCat(seconds)});
  return argv;
}

}  // namespace

absl::Status Runner::StartServices() {
  for (size_t j = 0; j < svc_.size(); ++j) {
    const Service& spec = o_.schedule.services[j];
    ServiceProc& v = svc_[j];
    absl::StatusOr<std::vector<std::string>> argv = Expand(spec.command, &v);
    if (!argv.ok()) return argv.status();
    SpawnOptions so;
    so.argv = *argv;
    so.netns = v.net_index >= 0 ? net_->netns(v.net_index) : "";
    so.log_path = v.log;
    absl::StatusOr<pid_t> pid = Spawn(so);
    if (!pid.ok()) {
      return absl::Status(
          pid.status().code(),
          absl::StrCat("service ", v.name, ": ", pid.status().message()));
    }
    v.pid = *pid;
    if (spec.ready.empty()) continue;
    absl::StatusOr<std::vector<std::string>> probe = Expand(spec.ready, &v);
    if (!probe.ok()) return probe.status();
    const absl::Time give_up = absl::Now() + spec.ready_within;
    absl::Status last;
    while (!(last = RunCommand(Bounded(*probe, give_up - absl::Now())).status())
                .ok()) {
      NoteExits();
      if (v.pid < 0) {
        return absl::FailedPreconditionError(
            absl::StrCat("service ", v.name, " ended before it was ready (",
                         absl::StrJoin(unexpected_exits_, "; "), ")"));
      }
      if (absl::Now() > give_up || g_interrupted.load()) {
        return absl::DeadlineExceededError(absl::StrCat(
            "service ", v.name, " was not ready within ",
            absl::FormatDuration(spec.ready_within),
            " (last probe: ", last.message(), "; its log: ", v.log, ")"));
      }
      absl::SleepFor(absl::Milliseconds(200));
    }
  }
  return absl::OkStatus();
}

absl::Status Runner::Act(const Step& step, std::string* what) {
  if (step.nemesis == "mark") {
    *what = "marked";
    return absl::OkStatus();
  }
  if (step.nemesis == "stop") {
    std::vector<std::string> names = absl::StrSplit(step.args[0], ',');
    for (ServiceProc& v : svc_) {
      if (std::find(names.begin(), names.end(), v.name) != names.end()) {
        StopService(v);
      }
    }
    *what = "stopped";
    return absl::OkStatus();
  }
  absl::StatusOr<std::vector<std::string>> argv = Expand(step.args, nullptr);
  if (!argv.ok()) return argv.status();
  if (step.nemesis == "run") {
    absl::StatusOr<std::string> out =
        RunCommand(Bounded(*argv, absl::Minutes(10)));
    if (!out.ok()) return out.status();
    *what = "done";
    return absl::OkStatus();
  }
  const absl::Time start = absl::Now();
  const absl::Time give_up = start + step.duration;
  absl::Status last;
  while (!(last = RunCommand(Bounded(*argv, give_up - absl::Now())).status())
              .ok()) {
    if (absl::Now() > give_up || g_interrupted.load()) {
      failed_awaits_.push_back(absl::StrCat(
          "'", step.Describe(), "' timed out; last: ", last.message()));
      *what = "timed out";
      return absl::OkStatus();
    }
    Sleep(absl::Milliseconds(500));
  }
  *what = absl::StrCat("held after ",
                       absl::FormatDuration(absl::Trunc(
                           absl::Now() - start, absl::Milliseconds(100))));
  return absl::OkStatus();
}

void Runner::StopService(ServiceProc& v) {
  if (v.pid <= 0) return;
  v.stopped_by_plan = true;
  // The whole process group (Spawn made one per service): a service that
  // is a wrapper (setpriv, a shell) passes nothing on by itself.
  kill(-v.pid, SIGTERM);
  const absl::Time until = absl::Now() + absl::Seconds(20);
  int status = 0;
  while (!Exited(v.pid, &status)) {
    if (absl::Now() >= until) {
      KillAndReap(v.pid);
      break;
    }
    absl::SleepFor(absl::Milliseconds(10));
  }
  kill(-v.pid, SIGKILL);  // whatever of the group is left
  v.pid = -1;
}

std::vector<Verdict> Runner::RunChecks() {
  std::vector<Verdict> out;
  for (const auto& c : o_.schedule.checks) {
    Verdict v{absl::StrCat("check ", absl::StrJoin(c, " ")), false, ""};
    absl::StatusOr<std::vector<std::string>> argv = Expand(c, nullptr);
    if (!argv.ok()) {
      v.detail = std::string(argv.status().message());
    } else {
      absl::StatusOr<std::string> r =
          RunCommand(Bounded(*argv, absl::Minutes(10)));
      v.ok = r.ok();
      v.detail = r.ok() ? *r : std::string(r.status().message());
    }
    out.push_back(std::move(v));
  }
  return out;
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
  if (r.status.ok() && !svc_.empty()) {
    say(absl::StrCat(At(MonotonicNowNs(), t0_), "  ", svc_.size(),
                     " services started"));
  }
  if (r.status.ok() && o_.schedule.clients > 0) {
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
      if (step.Action()) {
        const int64_t start = MonotonicNowNs();
        std::string what;
        if (absl::Status s = Act(step, &what); !s.ok()) {
          r.status = absl::Status(
              s.code(), absl::StrCat(step.Describe(), ": ", s.message()));
          break;
        }
        say(absl::StrCat(At(start, t0_), "  ", step.Describe(), ": ", what));
        NoteStep(step, start);
        continue;
      }
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
      NoteStep(step, start);
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
  std::ofstream(o_.out_dir + "/steps.jsonl") << steps_jsonl_;
  // The checks see the services as the steps left them (a database among
  // them still up); then the services stop, last started first.
  std::vector<Verdict> checks;
  if (r.status.ok()) checks = RunChecks();
  for (auto v = svc_.rbegin(); v != svc_.rend(); ++v) StopService(*v);
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
    if (o_.schedule.clients > 0) {
      r.verdicts.push_back(CheckLinearizability(history));
      absl::StrAppend(&r.verdicts.back().detail, " (checked in ",
                      (MonotonicNowNs() - check_start) / 1'000'000, " ms)");
      r.verdicts.push_back(CheckNoLostWrites(history));
    }
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
    Verdict up{
        svc_.empty() ? "members stayed up" : "members and services stayed up",
        unexpected_exits_.empty(), ""};
    up.detail = up.ok ? "no member exited by itself, no service failed"
                      : absl::StrCat("VIOLATION: ",
                                     absl::StrJoin(unexpected_exits_, "; "));
    r.verdicts.push_back(up);
    bool awaited = false;
    for (const Step& step : o_.schedule.steps) {
      awaited = awaited || step.nemesis == "await";
    }
    if (awaited) {
      Verdict aw{"awaits held in time", failed_awaits_.empty(),
                 failed_awaits_.empty()
                     ? "every await's command succeeded before its timeout"
                     : absl::StrCat("VIOLATION: ",
                                    absl::StrJoin(failed_awaits_, "; "))};
      r.verdicts.push_back(aw);
    }
    for (Verdict& v : checks) r.verdicts.push_back(std::move(v));
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
  if (!svc_.empty()) {
    absl::StrAppend(&out, "\nServices:\n");
    for (const ServiceProc& v : svc_) {
      absl::StrAppend(&out, "  ", v.name, "  ", v.zone, "  ", v.address,
                      "  log ", v.log, "\n");
    }
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

absl::Status CanRun(const Schedule* schedule) {
  if (geteuid() != 0 && schedule != nullptr && !schedule->CutsLinks()) {
    return absl::OkStatus();  // on loopback addresses
  }
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
