// Quorate and etcd 3.4 side by side, in one run, on the same machine and
// loopback, with the same heartbeat (50 ms) and election timeout (500 ms),
// fsync on in both: writes of 128-byte values per second with their p50
// and p99 commit latency, with 1 and with 64 concurrent writers,
// transactions (a compare of the key's mod revision, then a put) per
// second with their p99, with 64 writers, linearizable reads per second
// with 64 readers, and the throughput each reaches under a flood of
// 10,000 reads (then writes) in flight.
//
// The same C++ load generator drives both, over gRPC, through one client
// code path: etcd's KV service (proto/wire/etcd/rpc.proto), which Quorate
// serves too (api/etcd_gateway.h). Quorate's own Kv service is measured
// beside it, in the same round, as a third column. Every request
// goes to the leader (etcd's followers would forward; Quorate's would
// answer with the leader's address), over one HTTP/2 connection per
// system shared by all workers. Each round runs both systems (alternating
// which goes first); the table shows medians over the rounds.
//
//   kv_bench [--rounds=3] [--seconds=5] [--markdown=docs/benchmarks.md]
//            [--smoke]
// --markdown replaces the section between "<!-- kv_bench:begin -->" and
// "<!-- kv_bench:end -->" in that file with the table. --smoke: Quorate
// only, briefly (the test suite runs this).
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

constexpr int kManyWorkers = 64;
const std::string kValue(128, 'v');

// One call in flight, as the load generator sees it.
struct Call {
  virtual ~Call() = default;
  grpc::ClientContext context;
  grpc::Status status;
};

// One system's calls: each starts an asynchronous call whose completion
// arrives on `cq` with `tag`.
class Driver {
 public:
  virtual ~Driver() = default;
  virtual std::unique_ptr<Call> Put(int worker, uint64_t i,
                                    grpc::CompletionQueue* cq, void* tag) = 0;
  virtual std::unique_ptr<Call> Get(grpc::CompletionQueue* cq, void* tag) = 0;
  // A transaction: if the key's mod revision is below 2^62 (always), put.
  virtual std::unique_ptr<Call> Txn(int worker, uint64_t i,
                                    grpc::CompletionQueue* cq, void* tag) = 0;

  // Failed calls by status code, with one message each, for the report.
  std::string Errors() {
    std::lock_guard<std::mutex> lock(mu_);
    std::string out;
    for (const auto& [code, e] : errors_) {
      absl::StrAppend(&out, e.first, " x code ", code, " (", e.second, "); ");
    }
    return out;
  }

  bool Check(const grpc::Status& s) {
    if (s.ok()) return true;
    std::lock_guard<std::mutex> lock(mu_);
    auto& e = errors_[s.error_code()];
    if (e.first++ == 0) e.second = s.error_message();
    return false;
  }

 private:
  std::mutex mu_;
  std::map<int, std::pair<int, std::string>> errors_;
};

std::chrono::system_clock::time_point Deadline() {
  return std::chrono::system_clock::now() + std::chrono::seconds(5);
}

std::string Key(int worker, uint64_t i) {
  return absl::StrCat("bench/", worker, "/", i % 1000);
}

// A unary call of `Stub` answered by a `Response`.
template <class Response>
struct UnaryCall final : Call {
  Response response;
  std::unique_ptr<grpc::ClientAsyncResponseReader<Response>> rpc;
};

template <class Response, class Start>
std::unique_ptr<Call> StartUnary(Start start, void* tag) {
  auto c = std::make_unique<UnaryCall<Response>>();
  c->context.set_deadline(Deadline());
  c->rpc = start(&c->context);
  c->rpc->Finish(&c->response, &c->status, tag);
  return c;
}

class QuorateDriver final : public Driver {
 public:
  explicit QuorateDriver(const std::string& address)
      : stub_(client::Kv::NewStub(
            grpc::CreateChannel(address, grpc::InsecureChannelCredentials()))),
        client_base_(static_cast<uint64_t>(getpid()) << 20) {}
  std::unique_ptr<Call> Put(int worker, uint64_t i, grpc::CompletionQueue* cq,
                            void* tag) override {
    client::PutRequest req;
    req.set_key(Key(worker, i));
    req.set_value(kValue);
    req.mutable_op()->set_client(client_base_ + static_cast<uint64_t>(worker) +
                                 1);
    req.mutable_op()->set_seq(i + 1);
    return StartUnary<client::PutResponse>(
        [&](grpc::ClientContext* ctx) { return stub_->AsyncPut(ctx, req, cq); },
        tag);
  }
  std::unique_ptr<Call> Get(grpc::CompletionQueue* cq, void* tag) override {
    client::GetRequest req;
    req.set_key("bench/0/0");
    return StartUnary<client::GetResponse>(
        [&](grpc::ClientContext* ctx) { return stub_->AsyncGet(ctx, req, cq); },
        tag);
  }
  std::unique_ptr<Call> Txn(int worker, uint64_t i, grpc::CompletionQueue* cq,
                            void* tag) override {
    client::TxnRequest req;
    client::Compare* c = req.add_compare();
    c->set_key(Key(worker, i));
    c->set_target(client::Compare::MOD);
    c->set_result(client::Compare::LESS);
    c->set_mod_revision(int64_t{1} << 62);
    client::PutRequest* put = req.add_success()->mutable_put();
    put->set_key(Key(worker, i));
    put->set_value(kValue);
    req.mutable_op()->set_client(client_base_ + static_cast<uint64_t>(worker) +
                                 1);
    req.mutable_op()->set_seq(i + 1);
    return StartUnary<client::TxnResponse>(
        [&](grpc::ClientContext* ctx) { return stub_->AsyncTxn(ctx, req, cq); },
        tag);
  }

 private:
  std::unique_ptr<client::Kv::Stub> stub_;
  const uint64_t client_base_;
};

class EtcdDriver final : public Driver {
 public:
  explicit EtcdDriver(const std::string& address)
      : stub_(etcdserverpb::KV::NewStub(grpc::CreateChannel(
            address, grpc::InsecureChannelCredentials()))) {}
  std::unique_ptr<Call> Put(int worker, uint64_t i, grpc::CompletionQueue* cq,
                            void* tag) override {
    etcdserverpb::PutRequest req;
    req.set_key(Key(worker, i));
    req.set_value(kValue);
    return StartUnary<etcdserverpb::PutResponse>(
        [&](grpc::ClientContext* ctx) { return stub_->AsyncPut(ctx, req, cq); },
        tag);
  }
  std::unique_ptr<Call> Get(grpc::CompletionQueue* cq, void* tag) override {
    etcdserverpb::RangeRequest req;
    req.set_key("bench/0/0");
    return StartUnary<etcdserverpb::RangeResponse>(
        [&](grpc::ClientContext* ctx) {
          return stub_->AsyncRange(ctx, req, cq);
        },
        tag);
  }
  std::unique_ptr<Call> Txn(int worker, uint64_t i, grpc::CompletionQueue* cq,
                            void* tag) override {
    etcdserverpb::TxnRequest req;
    etcdserverpb::Compare* c = req.add_compare();
    c->set_key(Key(worker, i));
    c->set_target(etcdserverpb::Compare::MOD);
    c->set_result(etcdserverpb::Compare::LESS);
    c->set_mod_revision(int64_t{1} << 62);
    etcdserverpb::PutRequest* put = req.add_success()->mutable_request_put();
    put->set_key(Key(worker, i));
    put->set_value(kValue);
    return StartUnary<etcdserverpb::TxnResponse>(
        [&](grpc::ClientContext* ctx) { return stub_->AsyncTxn(ctx, req, cq); },
        tag);
  }

 private:
  std::unique_ptr<etcdserverpb::KV::Stub> stub_;
};

struct Load {
  double ops_per_second = 0;
  double p50_ms = 0;
  double p99_ms = 0;
  uint64_t errors = 0;
};

// `workers` clients each keep one call in flight, back to back, for
// `seconds`. Their calls are asynchronous, completed on one queue drained
// by two threads: the generator costs each system the same, and far less
// CPU than a blocked thread per worker (the servers share these 2 cores).
enum class Kind { kRead, kWrite, kTxn };

Load Run(Driver& d, int workers, double seconds, Kind kind) {
  // Workers of each run are new clients: their operation ids start over.
  static std::atomic<int> runs{0};
  const int first_worker = 1000 * ++runs;
  struct Worker {
    // Held while a call starts: its completion may reach the other
    // draining thread before `call` is assigned.
    std::mutex mu;
    int id = 0;
    uint64_t i = 0;
    absl::Time t0;
    std::unique_ptr<Call> call;
    std::vector<double> latencies;
    uint64_t errors = 0;
  };
  std::vector<Worker> ws(static_cast<size_t>(workers));
  grpc::CompletionQueue cq;
  std::atomic<bool> stop{false};
  std::atomic<int> in_flight{workers};
  auto start_call = [&](Worker& w) {
    std::lock_guard<std::mutex> lock(w.mu);
    w.t0 = absl::Now();
    switch (kind) {
      case Kind::kRead:
        w.call = d.Get(&cq, &w);
        break;
      case Kind::kWrite:
        w.call = d.Put(w.id, w.i++, &cq, &w);
        break;
      case Kind::kTxn:
        w.call = d.Txn(w.id, w.i++, &cq, &w);
        break;
    }
  };
  const absl::Time start = absl::Now();
  for (int k = 0; k < workers; ++k) {
    Worker& w = ws[static_cast<size_t>(k)];
    w.id = first_worker + k;
    start_call(w);
  }
  auto drain = [&] {
    void* tag;
    bool ok;
    while (cq.Next(&tag, &ok)) {
      Worker& w = *static_cast<Worker*>(tag);
      { std::lock_guard<std::mutex> lock(w.mu); }
      if (ok && d.Check(w.call->status)) {
        w.latencies.push_back(absl::ToDoubleMilliseconds(absl::Now() - w.t0));
      } else {
        ++w.errors;
      }
      w.call.reset();
      if (!stop.load(std::memory_order_relaxed)) {
        start_call(w);
      } else if (in_flight.fetch_sub(1) == 1) {
        cq.Shutdown();
      }
    }
  };
  std::thread a(drain), b(drain);
  absl::SleepFor(absl::Seconds(seconds));  // the measured period itself
  stop = true;
  a.join();
  b.join();
  const double elapsed = absl::ToDoubleSeconds(absl::Now() - start);
  std::vector<double> all;
  Load l;
  for (const Worker& w : ws) {
    all.insert(all.end(), w.latencies.begin(), w.latencies.end());
    l.errors += w.errors;
  }
  std::sort(all.begin(), all.end());
  l.ops_per_second = static_cast<double>(all.size()) / elapsed;
  if (!all.empty()) {
    l.p50_ms = all[all.size() / 2];
    l.p99_ms = all[std::min(all.size() - 1, all.size() * 99 / 100)];
  }
  return l;
}

// The flood of the overload test (tests/cmd/overload_test.cc): this many
// calls in flight against the leader.
constexpr int kFloodWorkers = 10000;

const char* const kMetrics[] = {"writes/s, 1 writer",
                                "p50 ms, 1 writer",
                                "p99 ms, 1 writer",
                                "writes/s, 64 writers",
                                "p50 ms, 64 writers",
                                "p99 ms, 64 writers",
                                "txn/s (compare + put), 64 writers",
                                "txn p99 ms, 64 writers",
                                "linearizable reads/s, 64 readers",
                                "flood: reads/s, 10000 in flight",
                                "flood: writes/s, 10000 in flight"};

// Every load of kMetrics through `d`, into `out`.
bool MeasureLoads(const std::string& name, Driver* d, double seconds,
                  Results* out);

// etcd: its API. Quorate: etcd's API, and (into `native`) its own.
bool Measure(Cluster& c, double seconds, Results* out, Results* native) {
  for (int i = 0; i < bench::kMembers; ++i) c.Start(i);
  int leader = -1;
  if (!Await([&] { return (leader = c.Leader()) >= 0; })) {
    fprintf(stderr, "%s: no leader\n", c.name().c_str());
    return false;
  }
  EtcdDriver etcd_api(c.ClientAddress(leader));
  if (!MeasureLoads(c.name(), &etcd_api, seconds, out)) return false;
  if (c.name() == "etcd" || native == nullptr) return true;
  QuorateDriver own(c.ClientAddress(leader));
  return MeasureLoads("quorate (own API)", &own, seconds, native);
}

bool MeasureLoads(const std::string& name, Driver* driver, double seconds,
                  Results* out) {
  Driver* d = driver;
  Run(*d, 8, std::min(seconds, 1.0), Kind::kWrite);  // warm-up
  const Load one = Run(*d, 1, seconds, Kind::kWrite);
  const Load many = Run(*d, kManyWorkers, seconds, Kind::kWrite);
  const Load txns = Run(*d, kManyWorkers, seconds, Kind::kTxn);
  const Load reads = Run(*d, kManyWorkers, seconds, Kind::kRead);
  const Load flood_reads = Run(*d, kFloodWorkers, seconds, Kind::kRead);
  const Load flood_writes = Run(*d, kFloodWorkers, seconds, Kind::kWrite);
  // Refusals under the flood (RESOURCE_EXHAUSTED) are the point of it.
  const uint64_t errors = one.errors + many.errors + txns.errors + reads.errors;
  if (errors > 0) {
    fprintf(stderr, "%s: %llu calls failed: %s\n", name.c_str(),
            static_cast<unsigned long long>(errors), d->Errors().c_str());
  }
  const double v[] = {one.ops_per_second,
                      one.p50_ms,
                      one.p99_ms,
                      many.ops_per_second,
                      many.p50_ms,
                      many.p99_ms,
                      txns.ops_per_second,
                      txns.p99_ms,
                      reads.ops_per_second,
                      flood_reads.ops_per_second,
                      flood_writes.ops_per_second};
  for (size_t k = 0; k < std::size(kMetrics); ++k) {
    (*out)[kMetrics[k]].push_back(v[k]);
  }
  return true;
}

int Main(int argc, char** argv) {
  bench::BenchArgs args;
  if (!bench::ParseBenchArgs(argc, argv,
                             "kv_bench [--rounds=N] [--seconds=S] "
                             "[--markdown=FILE] [--smoke]",
                             0.3, &args)) {
    return 2;
  }
  const int rounds = args.rounds;
  const double seconds = args.seconds;
  const bool smoke = args.smoke;
  const std::string& markdown = args.markdown;
  const bool with_etcd = !smoke && ::access(bench::kEtcdBinary, X_OK) == 0;
  Results q, e, native;
  if (!bench::RunSideBySide(
          rounds, with_etcd, QUORATE_NODE_BINARY,
          [&](Cluster& c, Results* out) {
            return Measure(c, seconds, out, &native);
          },
          &q, &e)) {
    return 1;
  }
  std::string table = absl::StrFormat(
      "Machine: %s. Command: `%s --rounds=%d --seconds=%g`. Medians of %d "
      "rounds; 3 members on loopback, heartbeat "
      "50 ms, election timeout 500 ms, fsync on, 128-byte values, requests "
      "to the leader. Both systems through etcd's API (one client code "
      "path); the last column is Quorate through its own API.\n\n",
      Machine(), argv[0], rounds, seconds, rounds);
  table +=
      "| measure | Quorate (etcd API) | etcd 3.4 | Quorate / etcd | Quorate "
      "(own API) |\n|---|---|---|---|---|\n";
  for (const char* m : kMetrics) {
    const bool ms = std::string(m).find(" ms") != std::string::npos;
    auto num = [ms](double v) {
      return ms ? absl::StrFormat("%.2f", v) : absl::StrFormat("%.0f", v);
    };
    const double qv = bench::Median(q[m]), ev = bench::Median(e[m]);
    absl::StrAppendFormat(
        &table, "| %s | %s | %s | %s | %s |\n", m, num(qv),
        with_etcd ? num(ev) : "-",
        with_etcd && ev > 0 ? absl::StrFormat("%.2f", qv / ev) : "-",
        num(bench::Median(native[m])));
  }
  return bench::Report(table, markdown, "kv_bench");
}

}  // namespace
}  // namespace quorate

int main(int argc, char** argv) {
  // The load generator drives both systems: no lock-order graph (Debian's
  // abseil keeps one by default) in its gRPC calls.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  return quorate::Main(argc, argv);
}
