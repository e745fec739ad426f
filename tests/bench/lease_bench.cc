// Sessions side by side: Quorate and etcd 3.4 in one run, on the same
// machine and loopback, 3 members each, heartbeat 50 ms, election timeout
// 500 ms, fsync on. One client process (this one) holds 10,000 leases of
// TTL 6 s and renews each every TTL/3 (5,000 renewals a second), all on
// one KeepAlive stream to the leader, through each system's own gRPC API
// (Quorate's Kv.LeaseKeepAlive, whose messages carry the renewals due in
// each millisecond together, as its API allows; etcd's
// Lease.LeaseKeepAlive, declared in proto/wire/etcd/rpc.proto, one
// renewal per message). Measured over the window: renewals answered
// per second, their latency (send to answer) p50 and p99, and the
// leader's CPU (user + system time from /proc): the capacity at equal CPU
// is renewals per leader CPU-second. Each round runs both systems
// (alternating which goes first); the table shows medians over rounds.
//
//   lease_bench [--rounds=3] [--seconds=10] [--leases=10000]
//               [--markdown=docs/benchmarks.md] [--smoke]
// --markdown replaces the section between "<!-- lease_bench:begin -->"
// and "<!-- lease_bench:end -->". --smoke: Quorate only, 200 leases,
// briefly (the test suite runs this).
#include <grpcpp/grpcpp.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <sstream>
#include <thread>

#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "bench/clusters.h"
#include "wire/client.grpc.pb.h"
#include "wire/etcd/rpc.grpc.pb.h"

namespace quorate {
namespace {

using bench::Await;
using bench::Cluster;
using bench::EtcdCluster;
using bench::Machine;
using bench::Median;
using bench::QuorateCluster;
using bench::Results;

constexpr int64_t kTtlSeconds = 6;

// One system's lease calls: grant, and a KeepAlive stream whose requests
// name a lease and whose answers name it back.
class LeaseDriver {
 public:
  virtual ~LeaseDriver() = default;
  virtual bool Grant(uint64_t* id) = 0;
  virtual void Open() = 0;
  // Renewals of `ids`, in one message where the API allows it.
  virtual bool Send(const std::vector<uint64_t>& ids) = 0;
  // The next answers' lease ids and whether each was renewed; false once
  // the stream ended.
  virtual bool Receive(std::vector<std::pair<uint64_t, bool>>* answers) = 0;
  virtual void Close() = 0;
};

class QuorateLeases final : public LeaseDriver {
 public:
  explicit QuorateLeases(const std::string& address)
      : stub_(client::Kv::NewStub(grpc::CreateChannel(
            address, grpc::InsecureChannelCredentials()))) {}
  bool Grant(uint64_t* id) override {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() +
                     std::chrono::seconds(10));
    client::LeaseGrantRequest req;
    req.set_ttl_ms(kTtlSeconds * 1000);
    client::LeaseGrantResponse resp;
    if (!stub_->LeaseGrant(&ctx, req, &resp).ok()) return false;
    *id = resp.id();
    return true;
  }
  void Open() override { stream_ = stub_->LeaseKeepAlive(&ctx_); }
  bool Send(const std::vector<uint64_t>& ids) override {
    client::LeaseKeepAliveRequest req;
    for (uint64_t id : ids) {
      client::LeaseRenewal* r = req.add_renewals();
      r->set_id(id);
      r->set_cookie(id);
    }
    return stream_->Write(req);
  }
  bool Receive(std::vector<std::pair<uint64_t, bool>>* answers) override {
    client::LeaseKeepAliveResponse r;
    if (!stream_->Read(&r)) return false;
    answers->clear();
    for (const client::LeaseRenewalAnswer& a : r.answers()) {
      answers->emplace_back(a.id(), a.code() == 0);
    }
    return true;
  }
  void Close() override {
    ctx_.TryCancel();
    stream_->Finish().IgnoreError();
  }

 private:
  std::unique_ptr<client::Kv::Stub> stub_;
  grpc::ClientContext ctx_;
  std::unique_ptr<grpc::ClientReaderWriter<client::LeaseKeepAliveRequest,
                                           client::LeaseKeepAliveResponse>>
      stream_;
};

class EtcdLeases final : public LeaseDriver {
 public:
  explicit EtcdLeases(const std::string& address)
      : stub_(etcdserverpb::Lease::NewStub(grpc::CreateChannel(
            address, grpc::InsecureChannelCredentials()))) {}
  bool Grant(uint64_t* id) override {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() +
                     std::chrono::seconds(10));
    etcdserverpb::LeaseGrantRequest req;
    req.set_ttl(kTtlSeconds);
    etcdserverpb::LeaseGrantResponse resp;
    if (!stub_->LeaseGrant(&ctx, req, &resp).ok() || !resp.error().empty()) {
      return false;
    }
    *id = static_cast<uint64_t>(resp.id());
    return true;
  }
  void Open() override { stream_ = stub_->LeaseKeepAlive(&ctx_); }
  // etcd's stream takes one renewal per message.
  bool Send(const std::vector<uint64_t>& ids) override {
    for (uint64_t id : ids) {
      etcdserverpb::LeaseKeepAliveRequest req;
      req.set_id(static_cast<int64_t>(id));
      if (!stream_->Write(req)) return false;
    }
    return true;
  }
  bool Receive(std::vector<std::pair<uint64_t, bool>>* answers) override {
    etcdserverpb::LeaseKeepAliveResponse r;
    if (!stream_->Read(&r)) return false;
    answers->assign(1, {static_cast<uint64_t>(r.id()), r.ttl() > 0});
    return true;
  }
  void Close() override {
    ctx_.TryCancel();
    stream_->Finish().IgnoreError();
  }

 private:
  std::unique_ptr<etcdserverpb::Lease::Stub> stub_;
  grpc::ClientContext ctx_;
  std::unique_ptr<
      grpc::ClientReaderWriter<etcdserverpb::LeaseKeepAliveRequest,
                               etcdserverpb::LeaseKeepAliveResponse>>
      stream_;
};

// user + system CPU seconds of process `pid` so far.
double CpuSeconds(pid_t pid) {
  std::ifstream f(absl::StrCat("/proc/", pid, "/stat"));
  std::string line;
  std::getline(f, line);
  // Fields after the command name (which may hold spaces): state is the
  // 3rd field; utime and stime are the 14th and 15th.
  const size_t close = line.rfind(')');
  if (close == std::string::npos) return 0;
  std::vector<std::string> fields = absl::StrSplit(line.substr(close + 2), ' ');
  if (fields.size() < 13) return 0;
  double utime = 0, stime = 0;
  if (!absl::SimpleAtod(fields[11], &utime) ||
      !absl::SimpleAtod(fields[12], &stime)) {
    return 0;
  }
  return (utime + stime) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

const char* const kMetrics[] = {"renewals/s answered",
                                "renewal p50 ms",
                                "renewal p99 ms",
                                "leader CPU, % of one core",
                                "renewals per leader CPU-second",
                                "leases granted/s (one at a time, 16 callers)"};

// --etcd_api: Quorate is driven through etcd's API too (its gateway,
// api/etcd_gateway.h), with etcd's client code.
bool etcd_api = false;

bool Measure(Cluster& c, int leases, double seconds, Results* out) {
  for (int i = 0; i < bench::kMembers; ++i) c.Start(i);
  int leader = -1;
  if (!Await([&] { return (leader = c.Leader()) >= 0; })) {
    fprintf(stderr, "%s: no leader\n", c.name().c_str());
    return false;
  }
  auto make = [&]() -> std::unique_ptr<LeaseDriver> {
    if (c.name() == "etcd" || etcd_api) {
      return std::make_unique<EtcdLeases>(c.ClientAddress(leader));
    }
    return std::make_unique<QuorateLeases>(c.ClientAddress(leader));
  };
  // Grants, from 16 threads.
  std::vector<uint64_t> ids(static_cast<size_t>(leases));
  std::atomic<int> next{0};
  std::atomic<int> failed{0};
  const absl::Time grant_start = absl::Now();
  {
    std::vector<std::thread> threads;
    for (int t = 0; t < 16; ++t) {
      threads.emplace_back([&] {
        std::unique_ptr<LeaseDriver> d = make();
        for (int i; (i = next.fetch_add(1)) < leases;) {
          if (!d->Grant(&ids[static_cast<size_t>(i)])) failed.fetch_add(1);
        }
      });
    }
    for (std::thread& t : threads) t.join();
  }
  const double grant_s = absl::ToDoubleSeconds(absl::Now() - grant_start);
  if (failed.load() > 0) {
    fprintf(stderr, "%s: %d grants failed\n", c.name().c_str(), failed.load());
    return false;
  }

  // Renewals: every lease every TTL/3, spread evenly, on one stream.
  std::unique_ptr<LeaseDriver> d = make();
  d->Open();
  std::mutex mu;
  std::map<uint64_t, absl::Time> sent;  // lease -> its renewal's send time
  std::vector<double> latencies_ms;
  uint64_t refused = 0;
  std::atomic<bool> measuring{false};
  std::atomic<uint64_t> answered{0};
  std::thread reader([&] {
    std::vector<std::pair<uint64_t, bool>> answers;
    while (d->Receive(&answers)) {
      const absl::Time now = absl::Now();
      std::lock_guard<std::mutex> lock(mu);
      for (const auto& [id, ok] : answers) {
        auto it = sent.find(id);
        if (it == sent.end()) continue;
        if (measuring.load()) {
          if (ok) {
            latencies_ms.push_back(
                absl::ToDoubleMilliseconds(now - it->second));
            answered.fetch_add(1);
          } else {
            ++refused;
          }
        }
        sent.erase(it);
      }
    }
  });
  const double period_s = static_cast<double>(kTtlSeconds) / 3;
  const double warmup_s = std::min(period_s, seconds);
  const absl::Time start = absl::Now();
  const absl::Time measure_from = start + absl::Seconds(warmup_s);
  const absl::Time end = measure_from + absl::Seconds(seconds);
  const pid_t pid = c.Pid(leader);
  double cpu_from = 0;
  size_t k = 0;
  bool stream_ok = true;
  while (stream_ok) {
    const absl::Time now = absl::Now();
    if (now >= end) break;
    if (!measuring.load() && now >= measure_from) {
      cpu_from = CpuSeconds(pid);
      measuring.store(true);
    }
    // Renewals due by now: lease k is due at (k / leases) * period into
    // each period.
    const double elapsed = absl::ToDoubleSeconds(now - start);
    const auto due =
        static_cast<size_t>(elapsed / period_s * static_cast<double>(leases));
    std::vector<uint64_t> batch;
    {
      std::lock_guard<std::mutex> lock(mu);
      const absl::Time sent_at = absl::Now();
      for (; k < due; ++k) {
        const uint64_t id = ids[k % ids.size()];
        sent[id] = sent_at;
        batch.push_back(id);
      }
    }
    if (!batch.empty()) stream_ok = d->Send(batch);
    absl::SleepFor(absl::Milliseconds(1));
  }
  const double cpu = CpuSeconds(pid) - cpu_from;
  const double window =
      absl::ToDoubleSeconds(absl::Now() - std::max(measure_from, start));
  measuring.store(false);
  d->Close();
  reader.join();
  if (!stream_ok) {
    fprintf(stderr, "%s: the KeepAlive stream broke\n", c.name().c_str());
    return false;
  }
  if (refused > 0) {
    fprintf(stderr, "%s: %llu renewals refused\n", c.name().c_str(),
            static_cast<unsigned long long>(refused));
  }
  std::sort(latencies_ms.begin(), latencies_ms.end());
  auto pct = [&](double p) { return bench::Percentile(latencies_ms, p); };
  const double rate = static_cast<double>(answered.load()) / window;
  const double v[] = {rate,
                      pct(0.5),
                      pct(0.99),
                      100 * cpu / window,
                      cpu > 0 ? static_cast<double>(answered.load()) / cpu : 0,
                      static_cast<double>(leases) / grant_s};
  for (size_t m = 0; m < std::size(kMetrics); ++m) {
    (*out)[kMetrics[m]].push_back(v[m]);
  }
  return true;
}

int Main(int argc, char** argv) {
  bench::BenchArgs args;
  args.seconds = 10;
  int leases = 10000;
  if (!bench::ParseBenchArgs(
          argc, argv,
          "lease_bench [--rounds=N] [--seconds=S] [--leases=N] "
          "[--markdown=FILE] [--smoke] [--etcd_api]",
          0.5, &args, [&leases] { leases = 200; },
          [&leases](const std::string& a) {
            if (a == "--etcd_api") return etcd_api = true;
            if (a.rfind("--leases=", 0) != 0) return false;
            leases = std::max(1, std::atoi(a.substr(9).c_str()));
            return true;
          })) {
    return 2;
  }
  const int rounds = args.rounds;
  const double seconds = args.seconds;
  const bool smoke = args.smoke;
  const std::string& markdown = args.markdown;
  const bool with_etcd = !smoke && ::access(bench::kEtcdBinary, X_OK) == 0;
  Results q, e;
  if (!bench::RunSideBySide(
          rounds, with_etcd, QUORATE_NODE_BINARY,
          [&](Cluster& c, Results* out) {
            return Measure(c, leases, seconds, out);
          },
          &q, &e)) {
    return 1;
  }
  std::string table = absl::StrFormat(
      "Machine: %s. Command: `%s --rounds=%d --seconds=%g --leases=%d%s`. "
      "Medians of %d rounds; 3 members on loopback, heartbeat 50 ms, "
      "election timeout 500 ms, fsync on; %d leases of TTL %d s, each "
      "renewed every TTL/3 on one KeepAlive stream to the leader%s.\n\n",
      Machine(), argv[0], rounds, seconds, leases,
      etcd_api ? " --etcd_api" : "", rounds, leases, kTtlSeconds,
      etcd_api ? "; both systems through etcd's API" : "");
  table += bench::TableRows({std::begin(kMetrics), std::end(kMetrics)}, q, e,
                            with_etcd);
  return bench::Report(table, markdown,
                       etcd_api ? "lease_bench_etcd_api" : "lease_bench");
}

}  // namespace
}  // namespace quorate

int main(int argc, char** argv) {
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  return quorate::Main(argc, argv);
}
