// tests/bench/clusters.h: 3-member clusters of real processes on loopback
// for the benchmarks: Quorate (quorate-node) and etcd, with the same
// heartbeat (50 ms) and election timeout (500 ms), fsync on in both.
#ifndef QUORATE_TESTS_BENCH_CLUSTERS_H_
#define QUORATE_TESTS_BENCH_CLUSTERS_H_

#include <signal.h>
#include <sys/types.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "util/port.h"
#include "util/process.h"

namespace quorate::bench {

using ::quorate::testing::AdminPortInLog;
using ::quorate::testing::FileSize;
using ::quorate::testing::HttpGet;
using ::quorate::testing::HttpPost;
using ::quorate::testing::JsonInt;
using ::quorate::testing::JsonString;
using ::quorate::testing::PortReservation;
using ::quorate::testing::Process;

constexpr int kMembers = 3;
// Debian's etcd 3.4.
inline constexpr char kEtcdBinary[] = "/usr/bin/etcd";
// Both systems snapshot (and compact their logs) every this many entries:
// etcd 3.4's default --snapshot-count.
inline constexpr int kSnapshotEntries = 100000;

// Polls `pred` every 2 ms (a process outside can only be asked) until it
// holds or `limit` passes.
inline bool Await(const std::function<bool()>& pred,
                  absl::Duration limit = absl::Seconds(30)) {
  const absl::Time until = absl::Now() + limit;
  while (!pred()) {
    if (absl::Now() >= until) return false;
    absl::SleepFor(absl::Milliseconds(2));
  }
  return true;
}

inline double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

// The p-quantile (0 to 1) of `sorted`; 0 if it is empty.
inline double Percentile(const std::vector<double>& sorted, double p) {
  if (sorted.empty()) return 0;
  return sorted[std::min(
      sorted.size() - 1,
      static_cast<size_t>(p * static_cast<double>(sorted.size())))];
}

// The flags every side-by-side benchmark takes, in order: --rounds=N,
// --seconds=S, --markdown=FILE (the section to replace), --smoke (one
// short round of Quorate alone: the test suite's run, which also calls
// `on_smoke`), and those `extra` accepts. Google Benchmark's own flags
// (the suite passes them to every benchmark) are ignored. False, after
// printing `usage`, for any other.
struct BenchArgs {
  int rounds = 3;
  double seconds = 5;
  bool smoke = false;
  std::string markdown;
};
inline bool ParseBenchArgs(
    int argc, char** argv, const char* usage, double smoke_seconds,
    BenchArgs* args, const std::function<void()>& on_smoke = {},
    const std::function<bool(const std::string&)>& extra = {}) {
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--smoke") {
      args->smoke = true;
      args->rounds = 1;
      args->seconds = smoke_seconds;
      if (on_smoke) on_smoke();
    } else if (a.rfind("--rounds=", 0) == 0) {
      args->rounds = std::max(1, std::atoi(a.substr(9).c_str()));
    } else if (a.rfind("--seconds=", 0) == 0) {
      args->seconds = std::max(0.1, std::atof(a.substr(10).c_str()));
    } else if (a.rfind("--markdown=", 0) == 0) {
      args->markdown = a.substr(11);
    } else if (a.rfind("--benchmark_", 0) != 0 && !(extra && extra(a))) {
      fprintf(stderr, "usage: %s\n", usage);
      return false;
    }
  }
  return true;
}

// "N cores, M GiB", for the tables.
inline std::string Machine() {
  const long pages = sysconf(_SC_PHYS_PAGES);
  const long page = sysconf(_SC_PAGE_SIZE);
  return absl::StrFormat("%d cores, %.0f GiB",
                         std::thread::hardware_concurrency(),
                         static_cast<double>(pages) * page / (1 << 30));
}

// Replaces what lies between "<!-- NAME:begin -->" and "<!-- NAME:end -->"
// in `file` with `text`; false (saying why) if the markers are missing.
inline bool WriteSection(const std::string& file, const std::string& name,
                         const std::string& text) {
  std::ifstream in(file);
  std::stringstream ss;
  ss << in.rdbuf();
  std::string doc = ss.str();
  const std::string begin = absl::StrCat("<!-- ", name, ":begin -->\n");
  const std::string end = absl::StrCat("<!-- ", name, ":end -->");
  const size_t b = doc.find(begin);
  const size_t x = doc.find(end);
  if (b == std::string::npos || x == std::string::npos || x < b) {
    fprintf(stderr, "%s has no %s markers\n", file.c_str(), name.c_str());
    return false;
  }
  doc = doc.substr(0, b + begin.size()) + text + doc.substr(x);
  std::ofstream(file) << doc;
  printf("(table written into %s)\n", file.c_str());
  return true;
}

// Prints `table`, and writes it into `markdown`'s section `section` when
// `markdown` is set; the exit code.
inline int Report(const std::string& table, const std::string& markdown,
                  const std::string& section) {
  fputs(table.c_str(), stdout);
  if (!markdown.empty() && !WriteSection(markdown, section, table)) return 1;
  return 0;
}

// Metric name -> one value per round.
using Results = std::map<std::string, std::vector<double>>;

// Runs `measure` on a new Quorate cluster and (when `with_etcd`) a new
// etcd cluster in each of `rounds` rounds, alternating which goes first,
// each in a directory of its own under a temporary one. False if a
// measure failed.
class Cluster;
inline bool RunSideBySide(
    int rounds, bool with_etcd, const std::string& quorate_binary,
    const std::function<bool(Cluster&, Results*)>& measure, Results* quorate,
    Results* etcd);

// The table's rows: one per metric, medians, and the ratio Quorate / etcd.
// Rates print as whole numbers, latencies (" ms" in the name) to a
// hundredth.
inline std::string TableRows(const std::vector<std::string>& metrics,
                             Results& quorate, Results& etcd, bool with_etcd);

// One kind of cluster: how to start a member and read its state.
class Cluster {
 public:
  virtual ~Cluster() = default;
  virtual std::string name() const = 0;
  virtual void Start(int i) = 0;
  // SIGKILL, and waits for it to die.
  void Kill(int i) {
    procs_[static_cast<size_t>(i)]->Signal(SIGKILL);
    procs_[static_cast<size_t>(i)]->Wait(absl::Seconds(10));
    procs_[static_cast<size_t>(i)].reset();
  }
  pid_t Pid(int i) const { return procs_[static_cast<size_t>(i)]->pid(); }
  // HOST:PORT of member i's gRPC client API.
  virtual std::string ClientAddress(int i) const = 0;
  // Index of the member every running one agrees leads, or -1.
  virtual int Leader() = 0;
  virtual int64_t Term(int i) = 0;
  // Whether survivor `i` now has a leader in a term above `old_term` and
  // that leader's first entry (or a write) is committed.
  virtual bool FailedOver(int i, int64_t old_term) = 0;

 protected:
  Cluster() : procs_(kMembers) {}
  std::vector<std::unique_ptr<Process>> procs_;
};

class QuorateCluster final : public Cluster {
 public:
  // `heartbeat` and `election_timeout`: the members' (the defaults are
  // the ones every bench compares with etcd at).
  QuorateCluster(std::string binary, std::string dir,
                 absl::Duration heartbeat = absl::Milliseconds(50),
                 absl::Duration election_timeout = absl::Milliseconds(500))
      : binary_(std::move(binary)),
        dir_(std::move(dir)),
        heartbeat_(heartbeat),
        election_timeout_(election_timeout) {
    for (int i = 0; i < kMembers; ++i) {
      ports_.push_back(std::make_unique<PortReservation>());
    }
    log_from_.resize(kMembers);
    admin_ports_.resize(kMembers);
  }
  std::string name() const override { return "quorate"; }
  std::string ClientAddress(int i) const override {
    return ports_[static_cast<size_t>(i)]->address();
  }
  void Start(int i) override {
    std::vector<std::string> peers;
    for (int k = 0; k < kMembers; ++k) {
      peers.push_back(absl::StrCat("n", k, "@az-", k, "=",
                                   ports_[static_cast<size_t>(k)]->address()));
    }
    const auto u = static_cast<size_t>(i);
    log_from_[u] = FileSize(Log(i));
    admin_ports_[u] = 0;
    procs_[u] = std::make_unique<Process>(
        std::vector<std::string>{
            binary_, absl::StrCat("--id=n", i), absl::StrCat("--zone=az-", i),
            "--listen=" + ports_[u]->address(), "--admin=127.0.0.1:0",
            "--peers=" + absl::StrJoin(peers, ","),
            absl::StrCat("--data_dir=", dir_, "/n", i), "--cluster_id=bench",
            absl::StrCat("--heartbeat_interval=",
                         absl::ToInt64Milliseconds(heartbeat_), "ms"),
            absl::StrCat("--election_timeout=",
                         absl::ToInt64Milliseconds(election_timeout_), "ms"),
            "--segment_bytes=4194304",
            absl::StrCat("--snapshot_entries=", kSnapshotEntries)},
        Log(i));
  }
  int Leader() override {
    std::string leader;
    for (int i = 0; i < kMembers; ++i) {
      if (procs_[static_cast<size_t>(i)] == nullptr) continue;
      const std::string s = Status(i);
      const std::string l = JsonString(s, "leader_id");
      if (l.empty() || (!leader.empty() && l != leader)) return -1;
      if (JsonInt(s, "commit_index") < JsonInt(s, "last_log_index")) return -1;
      leader = l;
    }
    int idx = -1;
    if (leader.size() < 2 || !absl::SimpleAtoi(leader.substr(1), &idx)) {
      return -1;
    }
    return idx;
  }
  int64_t Term(int i) override { return JsonInt(Status(i), "term"); }
  bool FailedOver(int i, int64_t old_term) override {
    const std::string s = Status(i);
    return JsonString(s, "role") == "leader" && JsonInt(s, "term") > old_term &&
           JsonInt(s, "commit_index") >= JsonInt(s, "last_log_index");
  }

 private:
  std::string Log(int i) const { return absl::StrCat(dir_, "/n", i, ".log"); }
  // The admin port this run of member i printed; 0 (nothing answers)
  // until it has.
  std::string Status(int i) {
    const auto u = static_cast<size_t>(i);
    if (admin_ports_[u] == 0) {
      admin_ports_[u] = AdminPortInLog(Log(i), log_from_[u]);
    }
    return HttpGet(admin_ports_[u], "/status");
  }
  const std::string binary_;
  const std::string dir_;
  const absl::Duration heartbeat_;
  const absl::Duration election_timeout_;
  std::vector<std::unique_ptr<PortReservation>> ports_;
  std::vector<size_t> log_from_;
  std::vector<int> admin_ports_;
};

class EtcdCluster final : public Cluster {
 public:
  EtcdCluster(std::string binary, std::string dir)
      : binary_(std::move(binary)), dir_(std::move(dir)) {
    for (int i = 0; i < kMembers; ++i) {
      peer_.push_back(std::make_unique<PortReservation>());
      client_.push_back(std::make_unique<PortReservation>());
    }
  }
  std::string name() const override { return "etcd"; }
  std::string ClientAddress(int i) const override {
    return client_[static_cast<size_t>(i)]->address();
  }
  void Start(int i) override {
    std::vector<std::string> initial;
    for (int k = 0; k < kMembers; ++k) {
      initial.push_back(absl::StrCat("e", k, "=http://",
                                     peer_[static_cast<size_t>(k)]->address()));
    }
    const auto u = static_cast<size_t>(i);
    const std::string peer_url = "http://" + peer_[u]->address();
    const std::string client_url = "http://" + client_[u]->address();
    procs_[u] = std::make_unique<Process>(
        std::vector<std::string>{
            binary_, absl::StrCat("--name=e", i),
            absl::StrCat("--data-dir=", dir_, "/e", i),
            "--listen-peer-urls=" + peer_url,
            "--initial-advertise-peer-urls=" + peer_url,
            "--listen-client-urls=" + client_url,
            "--advertise-client-urls=" + client_url,
            "--initial-cluster=" + absl::StrJoin(initial, ","),
            "--initial-cluster-state=new", "--initial-cluster-token=bench",
            "--heartbeat-interval=50", "--election-timeout=500",
            absl::StrCat("--snapshot-count=", kSnapshotEntries),
            "--log-level=error"},
        absl::StrCat(dir_, "/e", i, ".log"));
  }
  int Leader() override {
    std::string leader;
    int idx = -1;
    for (int i = 0; i < kMembers; ++i) {
      if (procs_[static_cast<size_t>(i)] == nullptr) continue;
      const std::string s = Status(i);
      const std::string l = JsonString(s, "leader");
      if (l.empty() || l == "0" || (!leader.empty() && l != leader)) return -1;
      leader = l;
      if (JsonString(s, "member_id") == l) idx = i;
    }
    return idx;
  }
  int64_t Term(int i) override { return JsonInt(Status(i), "raftTerm"); }
  bool FailedOver(int i, int64_t old_term) override {
    const std::string s = Status(i);
    const std::string l = JsonString(s, "leader");
    if (l.empty() || l == "0" || JsonInt(s, "raftTerm") <= old_term) {
      return false;
    }
    // "foo" = "bar", base64.
    const std::string put =
        HttpPost(client_[static_cast<size_t>(i)]->port(), "/v3/kv/put",
                 R"({"key": "Zm9v", "value": "YmFy"})");
    return put.find("\"revision\"") != std::string::npos;
  }

 private:
  std::string Status(int i) {
    return HttpPost(client_[static_cast<size_t>(i)]->port(),
                    "/v3/maintenance/status", "{}");
  }
  const std::string binary_;
  const std::string dir_;
  std::vector<std::unique_ptr<PortReservation>> peer_, client_;
};

inline bool RunSideBySide(
    int rounds, bool with_etcd, const std::string& quorate_binary,
    const std::function<bool(Cluster&, Results*)>& measure, Results* quorate,
    Results* etcd) {
  char tmpl[] = "/tmp/quorate-bench-XXXXXX";
  if (::mkdtemp(tmpl) == nullptr) return false;
  const std::string dir = tmpl;
  bool ok = true;
  for (int round = 0; round < rounds && ok; ++round) {
    for (int k = 0; k < 2 && ok; ++k) {
      const bool quorate_now = (k == 0) == (round % 2 == 0);
      const std::string sub =
          absl::StrCat(dir, "/r", round, quorate_now ? "q" : "e");
      std::filesystem::create_directories(sub);
      if (quorate_now) {
        QuorateCluster c(quorate_binary, sub);
        ok = measure(c, quorate);
      } else if (with_etcd) {
        EtcdCluster c(kEtcdBinary, sub);
        ok = measure(c, etcd);
      }
      std::filesystem::remove_all(sub);
    }
  }
  std::filesystem::remove_all(dir);
  return ok;
}

inline std::string TableRows(const std::vector<std::string>& metrics,
                             Results& quorate, Results& etcd, bool with_etcd) {
  std::string table =
      "| measure | Quorate | etcd 3.4 | Quorate / etcd |\n|---|---|---|---|\n";
  for (const std::string& m : metrics) {
    const double qv = Median(quorate[m]);
    const double ev = Median(etcd[m]);
    const bool ms = m.find(" ms") != std::string::npos;
    auto num = [ms](double v) {
      return ms ? absl::StrFormat("%.2f", v) : absl::StrFormat("%.0f", v);
    };
    absl::StrAppendFormat(
        &table, "| %s | %s | %s | %s |\n", m, num(qv),
        with_etcd ? num(ev) : "-",
        with_etcd && ev > 0 ? absl::StrFormat("%.2f", qv / ev) : "-");
  }
  return table;
}

}  // namespace quorate::bench

#endif  // QUORATE_TESTS_BENCH_CLUSTERS_H_
