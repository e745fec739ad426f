// The partition guard's numbers (issue: partition guard, "done when"):
//  - the cost of Permit::Valid(), on one thread and on four at once;
//  - over --runs chaos runs (5 quorate-node processes in 3 zones, the
//    leader's zone cut off for 3 s), the time from the cut to the minority
//    paused (the moment its permits went invalid: the windows' deadlines),
//    from the cut to a majority active under a new leader, and from the
//    heal to every member resumed; then a follower cut off for 2 s, which
//    pauses and resumes under the same leader (after the resume dwell),
//    from the heal to it resumed; and the overlaps the window check found.
// Needs root for the runs (network namespaces); without it only the
// Permit cost is measured. Prints medians and maxima; never fails on time.
//   guard_bench [--runs=20] [--smoke]
#include <stdio.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <map>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "chaos/runner.h"
#include "quorate/member.h"
#include "util/clock.h"
#include "util/port.h"

namespace quorate {
namespace {

double Median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}
double Max(const std::vector<double>& v) {
  return v.empty() ? 0 : *std::max_element(v.begin(), v.end());
}

// ns per Permit::Valid() call on `threads` threads at once (each thread's
// own rate; the median of 5 repetitions).
double ValidCost(const Permit& permit, int threads, int64_t calls) {
  std::vector<double> reps;
  for (int rep = 0; rep < 5; ++rep) {
    std::atomic<int64_t> total_ns{0};
    std::atomic<int64_t> valid{0};
    std::vector<std::thread> ts;
    for (int t = 0; t < threads; ++t) {
      ts.emplace_back([&] {
        FencingToken token;
        int64_t n = 0;
        const int64_t start = MonotonicNowNs();
        for (int64_t i = 0; i < calls; ++i) n += permit.Valid(&token);
        total_ns += MonotonicNowNs() - start;
        valid += n;
      });
    }
    for (std::thread& t : ts) t.join();
    if (valid.load() == 0)
      fprintf(stderr, "warning: the permit was never valid\n");
    reps.push_back(static_cast<double>(total_ns.load()) / threads / calls);
  }
  return Median(reps);
}

int PermitCost(bool smoke) {
  char tmpl[] = "/tmp/quorate-guard-bench-XXXXXX";
  if (mkdtemp(tmpl) == nullptr) return 1;
  testing::PortReservation port;
  MemberOptions o;
  o.id = "n1";
  o.zone = "az-a";
  o.cluster_id = "bench";
  o.listen_address = port.address();
  o.peers = {{"n1", "az-a", port.address()}};
  o.data_dir = std::string(tmpl) + "/n1";
  o.log = [](absl::string_view) {};
  absl::StatusOr<std::unique_ptr<Member>> m = Member::Start(o);
  if (!m.ok()) {
    fprintf(stderr, "cannot start a member: %s\n",
            m.status().ToString().c_str());
    return 1;
  }
  const Permit permit = (*m)->GetPermit();
  const absl::Time until = absl::Now() + absl::Seconds(20);
  while (!permit.Valid() && absl::Now() < until)
    absl::SleepFor(absl::Milliseconds(10));
  if (!permit.Valid()) {
    fprintf(stderr, "the member never became active\n");
    return 1;
  }
  const int64_t calls = smoke ? 100'000 : 10'000'000;
  printf(
      "Permit::Valid(): %.1f ns per call on 1 thread, %.1f ns on 4 threads at "
      "once\n",
      ValidCost(permit, 1, calls), ValidCost(permit, 4, calls));
  (*m)->Stop();
  m->reset();
  std::filesystem::remove_all(tmpl);
  return 0;
}

struct RunTimes {
  double paused_ms = -1;         // cut -> every minority member's window ended
  double majority_ms = -1;       // cut -> a majority active in a later term
  double resumed_ms = -1;        // heal -> every member active
  double dwell_resumed_ms = -1;  // same leader: heal -> every member active
  bool overlap = false;
};

// Member `id`'s first `mode` event after `after_ns`; nullptr if none.
const chaos::Event* FirstMode(const chaos::RunResult& r, const std::string& id,
                              const std::string& mode, int64_t after_ns) {
  for (const chaos::Event& e : r.events) {
    if (e.id == id && e.event == "mode" && e.mode == mode &&
        e.t_ns > after_ns) {
      return &e;
    }
  }
  return nullptr;
}

// Heal of `cut` -> every member that was paused at the heal active again;
// -1 if one never was.
double ResumedMs(const chaos::RunResult& r, const chaos::Period& cut) {
  int64_t resumed = cut.end_ns;
  std::map<std::string, bool> active_at_heal;
  for (const chaos::Event& e : r.events) {
    if (e.event == "mode" && e.t_ns <= cut.end_ns)
      active_at_heal[e.id] = e.mode == "active";
  }
  for (const auto& [id, active] : active_at_heal) {
    if (active) continue;
    const chaos::Event* e = FirstMode(r, id, "active", cut.end_ns);
    if (e == nullptr) return -1;
    resumed = std::max(resumed, e->t_ns);
  }
  return static_cast<double>(resumed - cut.end_ns) / 1e6;
}

RunTimes Measure(const chaos::RunResult& r, int members) {
  RunTimes t;
  if (r.nemeses.size() < 2) return t;
  const chaos::Period& cut = r.nemeses[0];
  // "partition-zone leader 3s: n3,n4 | n1,n2,n5": the first group is the
  // leader's zone, the minority.
  const std::string groups = cut.label.substr(cut.label.rfind(": ") + 2);
  std::set<std::string> minority;
  for (absl::string_view id :
       absl::StrSplit(groups.substr(0, groups.find(" |")), ',')) {
    minority.insert(std::string(id));
  }
  uint64_t old_term = 0;
  for (const chaos::Event& e : r.events) {
    if (e.t_ns <= cut.start_ns && e.event == "role")
      old_term = std::max(old_term, e.term);
  }
  int64_t paused = 0;
  for (const std::string& id : minority) {
    const chaos::Event* e = FirstMode(r, id, "paused", cut.start_ns);
    if (e == nullptr) return t;
    paused = std::max(paused, e->active_until_ns);
  }
  t.paused_ms = static_cast<double>(paused - cut.start_ns) / 1e6;
  std::set<std::string> active_new;
  for (const chaos::Event& e : r.events) {
    if (e.t_ns > cut.start_ns && e.event == "mode" && e.mode == "active" &&
        e.term > old_term) {
      active_new.insert(e.id);
      if (static_cast<int>(active_new.size()) == members / 2 + 1) {
        t.majority_ms = static_cast<double>(e.t_ns - cut.start_ns) / 1e6;
        break;
      }
    }
  }
  t.resumed_ms = ResumedMs(r, cut);
  t.dwell_resumed_ms = ResumedMs(r, r.nemeses[1]);
  for (const chaos::Verdict& v : r.verdicts) {
    if (!v.ok && v.name.find("active windows") != std::string::npos)
      t.overlap = true;
  }
  return t;
}

int Main(int argc, char** argv) {
  int runs = 20;
  bool smoke = false;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--smoke") {
      smoke = true;
      runs = 1;
    } else if (a.rfind("--runs=", 0) == 0) {
      runs = std::max(1, std::atoi(a.c_str() + 7));
    } else if (a.rfind("--benchmark_", 0) != 0) {
      fprintf(stderr, "usage: guard_bench [--runs=N] [--smoke]\n");
      return 2;
    }
  }
  if (int rc = PermitCost(smoke); rc != 0) return rc;
  if (absl::Status s = chaos::CanRun(nullptr); !s.ok()) {
    printf("partition runs skipped: %s\n", std::string(s.message()).c_str());
    return 0;
  }
  absl::StatusOr<chaos::Schedule> schedule = chaos::ParseSchedule(
      "members 5\nzones az-a az-a az-b az-b az-c\nclients 2\nkeys 3\nrate 20\n"
      "settle 2s\nresume_within 0\npartition-zone leader 3s\nquiet 2s\n"
      "isolate follower 2s\nquiet 2s\n");
  if (!schedule.ok()) return 1;
  char tmpl[] = "/tmp/quorate-guard-bench-runs-XXXXXX";
  if (mkdtemp(tmpl) == nullptr) return 1;
  std::vector<double> paused, majority, resumed, dwell_resumed;
  int overlaps = 0, incomplete = 0;
  for (int i = 0; i < runs; ++i) {
    chaos::RunOptions o;
    o.schedule = *schedule;
    o.command = chaos::DefaultCommand(QUORATE_NODE_BINARY);
    o.out_dir = absl::StrCat(tmpl, "/run-", i + 1);
    o.seed = static_cast<uint64_t>(i + 1);
    o.quiet = true;
    const chaos::RunResult r = chaos::Run(o);
    const RunTimes t = Measure(r, o.schedule.members);
    if (!r.status.ok() || t.paused_ms < 0 || t.majority_ms < 0 ||
        t.resumed_ms < 0 || t.dwell_resumed_ms < 0) {
      ++incomplete;
      printf("run %d: incomplete (%s)\n", i + 1, r.status.ToString().c_str());
      continue;
    }
    overlaps += t.overlap;
    paused.push_back(t.paused_ms);
    majority.push_back(t.majority_ms);
    resumed.push_back(t.resumed_ms);
    dwell_resumed.push_back(t.dwell_resumed_ms);
    printf(
        "run %d: minority paused %.0f ms, majority active %.0f ms, resumed "
        "%.0f ms; follower resumed %.0f ms%s\n",
        i + 1, t.paused_ms, t.majority_ms, t.resumed_ms, t.dwell_resumed_ms,
        t.overlap ? ", OVERLAP" : "");
  }
  std::filesystem::remove_all(tmpl);
  printf(
      "\n%d runs (%d incomplete); T_min 500 ms, heartbeat 50 ms, dwell 500 "
      "ms\n",
      static_cast<int>(paused.size()), incomplete);
  printf("| measure | median | max | goal |\n|---|---|---|---|\n");
  printf(
      "| cut -> minority paused | %.0f ms | %.0f ms | within T_min (500 ms) "
      "|\n",
      Median(paused), Max(paused));
  printf(
      "| cut -> majority active, new leader | %.0f ms | %.0f ms | within 2.5 "
      "T_min (1250 ms) |\n",
      Median(majority), Max(majority));
  printf(
      "| heal -> all resumed (new leader) | %.0f ms | %.0f ms | dwell + 100 "
      "ms (600 ms) |\n",
      Median(resumed), Max(resumed));
  printf(
      "| heal -> follower resumed (same leader, after the dwell) | %.0f ms | "
      "%.0f ms | dwell + 100 ms (600 ms) |\n",
      Median(dwell_resumed), Max(dwell_resumed));
  printf("| overlapping windows | %d | | 0 |\n", overlaps);
  return 0;
}

}  // namespace
}  // namespace quorate

int main(int argc, char** argv) {
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  return quorate::Main(argc, argv);
}
