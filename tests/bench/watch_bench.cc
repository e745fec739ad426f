// Watches side by side: Quorate and etcd 3.4 in one run, on the same
// machine and loopback, 3 members each, heartbeat 50 ms, election timeout
// 500 ms, fsync on. W watchers (1, then 1,000) watch one key on the
// leader, on 1 stream per 100 watchers, through each system's own gRPC API
// (Quorate's Kv.Watch; etcd's Watch.Watch, declared in
// proto/wire/etcd/rpc.proto). A writer puts that key every 10 ms, one put
// at a time (its value is the put's number); each watcher's notification
// of a put is timed from when the put was sent: p50 and p99 over every
// (put, watcher) pair, and the notifications per second all watchers got
// together. Each round runs both systems (alternating which goes first);
// the table shows medians over rounds.
//
//   watch_bench [--rounds=3] [--seconds=5] [--markdown=docs/benchmarks.md]
//               [--smoke]
// --markdown replaces the section between "<!-- watch_bench:begin -->"
// and "<!-- watch_bench:end -->". --smoke: Quorate only, briefly (the test
// suite runs this).
#include <grpcpp/grpcpp.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <mutex>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
#include "bench/clusters.h"
#include "wire/client.grpc.pb.h"
#include "wire/etcd/rpc.grpc.pb.h"

namespace quorate {
namespace {

using bench::Await;
using bench::Cluster;
using bench::Machine;
using bench::Results;

constexpr char kKey[] = "bench/watched";
constexpr int kWatchersPerStream = 100;
constexpr int64_t kPutEveryMs = 10;

// One system's calls: a put of the watched key, and a watch stream that
// creates `n` watchers on it and then reports each event's value.
class WatchDriver {
 public:
  virtual ~WatchDriver() = default;
  virtual bool Put(const std::string& value) = 0;
  // Opens the stream and creates `n` watchers; false if one was refused.
  virtual bool Open(int n) = 0;
  // The values of the next response's events; false once the stream ended.
  virtual bool Receive(std::vector<std::string>* values) = 0;
  virtual void Close() = 0;
};

class QuorateWatches final : public WatchDriver {
 public:
  explicit QuorateWatches(const std::string& address)
      : stub_(client::Kv::NewStub(grpc::CreateChannel(
            address, grpc::InsecureChannelCredentials()))) {}
  bool Put(const std::string& value) override {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() +
                     std::chrono::seconds(10));
    client::PutRequest req;
    req.set_key(kKey);
    req.set_value(value);
    client::PutResponse resp;
    return stub_->Put(&ctx, req, &resp).ok();
  }
  bool Open(int n) override {
    stream_ = stub_->Watch(&ctx_);
    for (int i = 0; i < n; ++i) {
      client::WatchRequest req;
      req.mutable_create()->set_key(kKey);
      req.mutable_create()->set_watch_id(i);
      if (!stream_->Write(req)) return false;
    }
    for (int created = 0; created < n;) {
      client::WatchResponses rs;
      if (!stream_->Read(&rs)) return false;
      for (const client::WatchResponse& r : rs.responses()) {
        if (r.canceled()) return false;
        created += r.created() ? 1 : 0;
      }
    }
    return true;
  }
  // A message holds the responses of many watchers.
  bool Receive(std::vector<std::string>* values) override {
    client::WatchResponses rs;
    if (!stream_->Read(&rs)) return false;
    values->clear();
    for (const client::WatchResponse& r : rs.responses()) {
      for (const client::WatchEvent& e : r.events()) {
        values->push_back(e.kv().value());
      }
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
  std::unique_ptr<
      grpc::ClientReaderWriter<client::WatchRequest, client::WatchResponses>>
      stream_;
};

class EtcdWatches final : public WatchDriver {
 public:
  explicit EtcdWatches(const std::string& address)
      : channel_(
            grpc::CreateChannel(address, grpc::InsecureChannelCredentials())),
        kv_(etcdserverpb::KV::NewStub(channel_)),
        watch_(etcdserverpb::Watch::NewStub(channel_)) {}
  bool Put(const std::string& value) override {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() +
                     std::chrono::seconds(10));
    etcdserverpb::PutRequest req;
    req.set_key(kKey);
    req.set_value(value);
    etcdserverpb::PutResponse resp;
    return kv_->Put(&ctx, req, &resp).ok();
  }
  bool Open(int n) override {
    stream_ = watch_->Watch(&ctx_);
    for (int i = 0; i < n; ++i) {
      etcdserverpb::WatchRequest req;
      req.mutable_create_request()->set_key(kKey);
      if (!stream_->Write(req)) return false;
    }
    for (int created = 0; created < n;) {
      etcdserverpb::WatchResponse r;
      if (!stream_->Read(&r) || r.canceled()) return false;
      created += r.created() ? 1 : 0;
    }
    return true;
  }
  bool Receive(std::vector<std::string>* values) override {
    etcdserverpb::WatchResponse r;
    if (!stream_->Read(&r)) return false;
    values->clear();
    for (const mvccpb::Event& e : r.events()) {
      values->push_back(e.kv().value());
    }
    return true;
  }
  void Close() override {
    ctx_.TryCancel();
    stream_->Finish().IgnoreError();
  }

 private:
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<etcdserverpb::KV::Stub> kv_;
  std::unique_ptr<etcdserverpb::Watch::Stub> watch_;
  grpc::ClientContext ctx_;
  std::unique_ptr<grpc::ClientReaderWriter<etcdserverpb::WatchRequest,
                                           etcdserverpb::WatchResponse>>
      stream_;
};

const int kWatcherCounts[] = {1, 1000};

// --etcd_api: Quorate is driven through etcd's API too (its gateway,
// api/etcd_gateway.h), with etcd's client code.
bool etcd_api = false;

std::string Metric(int watchers, const char* what) {
  return absl::StrFormat("%d watcher%s: %s", watchers, watchers == 1 ? "" : "s",
                         what);
}

// One measure with `watchers` watchers on a running cluster.
bool MeasureWatchers(Cluster& c, int leader, int watchers, double seconds,
                     Results* out) {
  auto make = [&]() -> std::unique_ptr<WatchDriver> {
    if (c.name() == "etcd" || etcd_api) {
      return std::make_unique<EtcdWatches>(c.ClientAddress(leader));
    }
    return std::make_unique<QuorateWatches>(c.ClientAddress(leader));
  };
  const int streams =
      std::max(1, (watchers + kWatchersPerStream - 1) / kWatchersPerStream);
  std::vector<std::unique_ptr<WatchDriver>> ds;
  for (int s = 0; s < streams; ++s) {
    ds.push_back(make());
    const int n =
        std::min(kWatchersPerStream, watchers - s * kWatchersPerStream);
    if (!ds.back()->Open(n)) {
      fprintf(stderr, "%s: a watch was refused\n", c.name().c_str());
      return false;
    }
  }
  std::mutex mu;
  std::vector<absl::Time> sent;  // by put number
  std::vector<double> latencies_ms;
  std::atomic<bool> measuring{false};
  std::atomic<uint64_t> notified{0};
  std::vector<std::thread> readers;
  for (auto& d : ds) {
    readers.emplace_back([&, d = d.get()] {
      std::vector<std::string> values;
      while (d->Receive(&values)) {
        const absl::Time now = absl::Now();
        if (!measuring.load()) continue;
        std::lock_guard<std::mutex> lock(mu);
        for (const std::string& v : values) {
          size_t n = 0;
          if (!absl::SimpleAtoi(v, &n) || n >= sent.size()) continue;
          latencies_ms.push_back(absl::ToDoubleMilliseconds(now - sent[n]));
          notified.fetch_add(1);
        }
      }
    });
  }
  std::unique_ptr<WatchDriver> writer = make();
  const absl::Time start = absl::Now();
  measuring.store(true);
  const absl::Time end = start + absl::Seconds(seconds);
  bool ok = true;
  for (size_t n = 0; ok && absl::Now() < end; ++n) {
    {
      std::lock_guard<std::mutex> lock(mu);
      sent.push_back(absl::Now());
    }
    ok = writer->Put(absl::StrCat(n));
    const absl::Time next =
        start + absl::Milliseconds(kPutEveryMs * static_cast<int64_t>(n + 1));
    if (next > absl::Now()) absl::SleepFor(next - absl::Now());
  }
  const size_t puts = sent.size();
  // Every watcher is told of every put, soon after the last one.
  const bool all = Await(
      [&] { return notified.load() >= puts * static_cast<size_t>(watchers); },
      absl::Seconds(10));
  const double window = absl::ToDoubleSeconds(absl::Now() - start);
  measuring.store(false);
  for (auto& d : ds) d->Close();
  for (std::thread& t : readers) t.join();
  if (!ok || !all) {
    fprintf(stderr, "%s: %s (%llu of %zu notifications)\n", c.name().c_str(),
            ok ? "notifications missing" : "a put failed",
            static_cast<unsigned long long>(notified.load()),
            puts * static_cast<size_t>(watchers));
    return false;
  }
  std::sort(latencies_ms.begin(), latencies_ms.end());
  (*out)[Metric(watchers, "put to notified p50 ms")].push_back(
      bench::Percentile(latencies_ms, 0.5));
  (*out)[Metric(watchers, "put to notified p99 ms")].push_back(
      bench::Percentile(latencies_ms, 0.99));
  (*out)[Metric(watchers, "notifications/s")].push_back(
      static_cast<double>(notified.load()) / window);
  return true;
}

bool Measure(Cluster& c, double seconds, Results* out) {
  for (int i = 0; i < bench::kMembers; ++i) c.Start(i);
  int leader = -1;
  if (!Await([&] { return (leader = c.Leader()) >= 0; })) {
    fprintf(stderr, "%s: no leader\n", c.name().c_str());
    return false;
  }
  for (int w : kWatcherCounts) {
    if (!MeasureWatchers(c, leader, w, seconds, out)) return false;
  }
  return true;
}

int Main(int argc, char** argv) {
  bench::BenchArgs args;
  if (!bench::ParseBenchArgs(argc, argv,
                             "watch_bench [--rounds=N] [--seconds=S] "
                             "[--markdown=FILE] [--smoke] [--etcd_api]",
                             0.5, &args, {}, [](const std::string& a) {
                               etcd_api = a == "--etcd_api";
                               return etcd_api;
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
          [&](Cluster& c, Results* out) { return Measure(c, seconds, out); },
          &q, &e)) {
    return 1;
  }
  std::vector<std::string> metrics;
  for (int w : kWatcherCounts) {
    for (const char* m : {"put to notified p50 ms", "put to notified p99 ms",
                          "notifications/s"}) {
      metrics.push_back(Metric(w, m));
    }
  }
  std::string table = absl::StrFormat(
      "Machine: %s. Command: `%s --rounds=%d --seconds=%g%s`. Medians of %d "
      "rounds; 3 members on loopback, heartbeat 50 ms, election timeout "
      "500 ms, fsync on; watchers on the leader, %d per stream, one key put "
      "every %d ms%s.\n\n",
      Machine(), argv[0], rounds, seconds, etcd_api ? " --etcd_api" : "",
      rounds, kWatchersPerStream, kPutEveryMs,
      etcd_api ? "; both systems through etcd's API" : "");
  table += bench::TableRows(metrics, q, e, with_etcd);
  return bench::Report(table, markdown,
                       etcd_api ? "watch_bench_etcd_api" : "watch_bench");
}

}  // namespace
}  // namespace quorate

int main(int argc, char** argv) {
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  return quorate::Main(argc, argv);
}
