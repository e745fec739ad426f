// Failover time of a 3-member cluster on loopback, Quorate beside etcd in
// the same run, and the idle memory and CPU use of one member.
//
// Failover is measured from `kill -9` of the leader until a surviving
// member leads in a higher term and has committed its first entry (for
// Quorate: the new leader's own entry; for etcd: a put sent to a survivor
// once it names the new leader). Both run with heartbeat 50 ms and election
// timeout 500 ms. After each failover the killed member is restarted from
// its data directory and the cluster settles before the next one.
//
//   failover_bench [--failovers=20] [--smoke]
// --smoke: 2 failovers of Quorate only (the test suite runs this). Flags of
// Google Benchmark (--benchmark_*) are accepted and ignored, so that
// scripts/run-benchmarks.sh can run every *_bench alike.
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "bench/clusters.h"

namespace quorate {
namespace {

using bench::Await;
using bench::Cluster;
using bench::EtcdCluster;
using bench::kMembers;
using bench::QuorateCluster;

struct Summary {
  std::vector<double> ms;
  double Median() const {
    std::vector<double> v = ms;
    std::sort(v.begin(), v.end());
    return v.empty() ? 0 : v[v.size() / 2];
  }
  double Max() const {
    return ms.empty() ? 0 : *std::max_element(ms.begin(), ms.end());
  }
  double Min() const {
    return ms.empty() ? 0 : *std::min_element(ms.begin(), ms.end());
  }
};

// Failovers, one after another; false if the cluster did not settle.
bool MeasureFailovers(Cluster& c, int runs, Summary* out) {
  for (int i = 0; i < kMembers; ++i) c.Start(i);
  for (int run = 0; run < runs; ++run) {
    int leader = -1;
    if (!Await([&] { return (leader = c.Leader()) >= 0; })) {
      fprintf(stderr, "%s: no settled leader before run %d\n", c.name().c_str(),
              run);
      return false;
    }
    const int64_t term = c.Term(leader);
    const absl::Time t0 = absl::Now();
    c.Kill(leader);
    int survivor = -1;
    const bool ok = Await([&] {
      for (int i = 0; i < kMembers; ++i) {
        if (i != leader && c.FailedOver(i, term)) {
          survivor = i;
          return true;
        }
      }
      return false;
    });
    if (!ok) {
      fprintf(stderr, "%s: no failover in run %d\n", c.name().c_str(), run);
      return false;
    }
    out->ms.push_back(absl::ToDoubleMilliseconds(absl::Now() - t0));
    c.Start(leader);  // restarts from its data directory and catches up
  }
  return true;
}

struct Usage {
  double rss_mib = 0;
  double cpu_percent = 0;
};

// Resident memory now, and CPU use over `period`, of process `pid`.
Usage MeasureIdle(pid_t pid, absl::Duration period) {
  auto ticks = [&] {
    const std::string stat =
        testing::ReadAll(absl::StrCat("/proc/", pid, "/stat"));
    // Fields after the command name (which may hold spaces).
    const size_t close = stat.rfind(')');
    std::vector<std::string> f;
    std::string cur;
    for (size_t k = close + 2; k < stat.size(); ++k) {
      if (stat[k] == ' ') {
        f.push_back(cur);
        cur.clear();
      } else {
        cur += stat[k];
      }
    }
    int64_t utime = 0, stime = 0;
    if (f.size() > 12) {
      (void)absl::SimpleAtoi(f[11], &utime);
      (void)absl::SimpleAtoi(f[12], &stime);
    }
    return utime + stime;
  };
  const int64_t before = ticks();
  absl::SleepFor(period);  // the measured idle period itself
  const int64_t after = ticks();
  Usage u;
  u.cpu_percent = 100.0 * static_cast<double>(after - before) /
                  static_cast<double>(sysconf(_SC_CLK_TCK)) /
                  absl::ToDoubleSeconds(period);
  const std::string status =
      testing::ReadAll(absl::StrCat("/proc/", pid, "/status"));
  const size_t at = status.find("VmRSS:");
  int64_t kb = 0;
  if (at != std::string::npos) {
    size_t from = at + 6;
    while (from < status.size() &&
           (status[from] == ' ' || status[from] == '\t')) {
      ++from;
    }
    size_t end = from;
    while (end < status.size() && isdigit(status[end])) ++end;
    (void)absl::SimpleAtoi(status.substr(from, end - from), &kb);
  }
  u.rss_mib = static_cast<double>(kb) / 1024.0;
  return u;
}

int Main(int argc, char** argv) {
  int runs = 20;
  bool smoke = false;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--smoke") {
      smoke = true;
      runs = 2;
    } else if (a.rfind("--failovers=", 0) == 0) {
      if (!absl::SimpleAtoi(a.substr(12), &runs) || runs < 1) {
        fprintf(stderr, "bad %s\n", a.c_str());
        return 2;
      }
    } else if (a.rfind("--benchmark_", 0) != 0) {
      fprintf(stderr, "usage: failover_bench [--failovers=N] [--smoke]\n");
      return 2;
    }
  }
  char tmpl[] = "/tmp/quorate-failover-XXXXXX";
  if (::mkdtemp(tmpl) == nullptr) return 1;
  const std::string dir = tmpl;
  std::filesystem::create_directories(dir + "/quorate");
  std::filesystem::create_directories(dir + "/etcd");

  printf(
      "Failover: kill -9 of the leader of 3 members on loopback until a "
      "new leader's first entry is committed; heartbeat 50 ms, election "
      "timeout 500 ms; %d runs each.\n",
      runs);
  Summary q;
  Usage q_leader, q_follower;
  bool ok;
  {
    QuorateCluster c(QUORATE_NODE_BINARY, dir + "/quorate");
    ok = MeasureFailovers(c, runs, &q);
    int leader = -1;
    if (ok && !smoke && Await([&] { return (leader = c.Leader()) >= 0; })) {
      q_leader = MeasureIdle(c.Pid(leader), absl::Seconds(10));
      q_follower =
          MeasureIdle(c.Pid((leader + 1) % kMembers), absl::Seconds(10));
    }
  }
  if (!ok) {
    fprintf(stderr, "logs kept in %s\n", dir.c_str());
    return 1;
  }
  printf("  quorate: median %.0f ms, max %.0f ms, min %.0f ms\n", q.Median(),
         q.Max(), q.Min());
  if (!smoke) {
    printf(
        "  quorate idle (10 s): leader RSS %.1f MiB, CPU %.2f %%; follower "
        "RSS %.1f MiB, CPU %.2f %%\n",
        q_leader.rss_mib, q_leader.cpu_percent, q_follower.rss_mib,
        q_follower.cpu_percent);
  }
  const char* etcd = "/usr/bin/etcd";
  if (!smoke && ::access(etcd, X_OK) == 0) {
    Summary e;
    Usage e_leader, e_follower;
    {
      EtcdCluster c(etcd, dir + "/etcd");
      ok = MeasureFailovers(c, runs, &e);
      int leader = -1;
      if (ok && Await([&] { return (leader = c.Leader()) >= 0; })) {
        e_leader = MeasureIdle(c.Pid(leader), absl::Seconds(10));
        e_follower =
            MeasureIdle(c.Pid((leader + 1) % kMembers), absl::Seconds(10));
      }
    }
    if (ok) {
      printf(
          "  etcd:    median %.0f ms, max %.0f ms, min %.0f ms (until a "
          "put through a survivor commits)\n",
          e.Median(), e.Max(), e.Min());
      printf(
          "  etcd idle (10 s): leader RSS %.1f MiB, CPU %.2f %%; follower "
          "RSS %.1f MiB, CPU %.2f %%\n",
          e_leader.rss_mib, e_leader.cpu_percent, e_follower.rss_mib,
          e_follower.cpu_percent);
      printf("  ratio quorate / etcd: median %.2f, max %.2f\n",
             q.Median() / e.Median(), q.Max() / e.Max());
    } else {
      printf("  etcd: did not settle (logs in %s)\n", dir.c_str());
    }
  } else if (!smoke) {
    printf("  etcd: %s not installed; no comparison\n", etcd);
  }
  std::filesystem::remove_all(dir);
  return 0;
}

}  // namespace
}  // namespace quorate

int main(int argc, char** argv) {
  // The load generator drives both systems: no lock-order graph (Debian's
  // abseil keeps one by default) in its gRPC calls.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  return quorate::Main(argc, argv);
}
