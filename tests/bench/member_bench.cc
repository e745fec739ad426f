// Operating a cluster, Quorate beside etcd 3.4 in one run, on the same
// machine: a member's join, snapshot save and restore, at 100,000 and
// 1,000,000 keys (100-byte values).
//
// For each system, size and round, on a new 3-member cluster (heartbeat
// 50 ms, election timeout 500 ms, fsync on, snapshots every 100,000
// entries, as every side-by-side benchmark here):
//  1. load: the keys, 100 per transaction, 8 clients at once;
//  2. join under writes: 4 clients write one key at a time throughout. A
//     fourth member is added as a learner (quoratectl member add
//     --learner; etcdctl member add --learner) and started with an empty
//     data directory (quorate-node --join; etcd
//     --initial-cluster-state=existing). "join" is the time from its start
//     until it has applied the leader's commit index as of that start;
//     the write rate during the join (its start to caught up) is compared
//     with the 2 s before the member was added (the whole join, and its
//     slowest 250 ms);
//  3. snapshot save: quoratectl snapshot save / etcdctl snapshot save,
//     the command's wall time, and the file's size;
//  4. restore: quorate-node --restore / etcdctl snapshot restore then
//     etcd, a one-member cluster, from the command's start until a read of
//     the first key loaded answers.
//
//   member_bench [--rounds=3] [--sizes=100000,1000000] [--markdown=FILE]
//                [--smoke]
// --smoke: Quorate alone, 2,000 keys, one round (the test suite runs this).
#include <grpcpp/grpcpp.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "bench/clusters.h"
#include "wire/client.grpc.pb.h"
#include "wire/etcd/rpc.grpc.pb.h"

namespace quorate {
namespace {

using bench::Await;
using bench::Results;

constexpr int kLoadClients = 8;
constexpr int kPutsPerTxn = 100;
constexpr int kWriters = 4;
const std::string kValue(100, 'v');

std::string Key(uint64_t i) { return absl::StrFormat("k/%08d", i); }

// Runs a command to its end; its exit code, or -1 if it ran past `limit`.
int RunCommand(const std::vector<std::string>& args, const std::string& log,
               absl::Duration limit = absl::Minutes(10)) {
  testing::Process p(args, log);
  return p.Wait(limit).value_or(-1);
}

// One system: its members, its client calls, its commands.
class System {
 public:
  virtual ~System() = default;
  virtual std::string name() const = 0;
  virtual void Start(int i) = 0;       // members 0..2 (the initial ones)
  virtual bool AddLearner(int i) = 0;  // i == 3: the joiner, by command
  virtual void StartJoiner(int i) = 0;
  virtual int Leader() = 0;            // -1 until one is agreed
  virtual int64_t Commit(int i) = 0;   // the member's commit index
  virtual int64_t Applied(int i) = 0;  // the member's applied index
  // One transaction of puts of keys [from, to); one put.
  virtual bool PutRange(int member, uint64_t from, uint64_t to) = 0;
  virtual bool Put(int member, const std::string& key) = 0;
  virtual bool SaveSnapshot(const std::string& path) = 0;
  // Seeds a one-member cluster from `path` in `dir` and starts it.
  virtual void Restore(const std::string& path, const std::string& dir) = 0;
  // Whether the restored member answers a read of `key`.
  virtual bool RestoredReads(const std::string& key) = 0;

 protected:
  std::vector<std::unique_ptr<testing::Process>> procs_{5};
};

class QuorateSystem final : public System {
 public:
  explicit QuorateSystem(std::string dir) : dir_(std::move(dir)) {
    for (int i = 0; i < 5; ++i) {
      ports_.push_back(std::make_unique<testing::PortReservation>());
    }
    admin_.resize(5);
  }
  std::string name() const override { return "quorate"; }
  std::string Address(int i) const {
    return ports_[static_cast<size_t>(i)]->address();
  }
  std::vector<std::string> Common(int i) const {
    return {QUORATE_NODE_BINARY,
            absl::StrCat("--id=n", i),
            absl::StrCat("--zone=az-", i),
            "--listen=" + Address(i),
            "--admin=127.0.0.1:0",
            absl::StrCat("--data_dir=", dir_, "/n", i),
            "--heartbeat_interval=50ms",
            "--election_timeout=500ms",
            "--segment_bytes=67108864",
            absl::StrCat("--snapshot_entries=", bench::kSnapshotEntries)};
  }
  void Start(int i) override {
    std::vector<std::string> peers;
    for (int k = 0; k < 3; ++k) {
      peers.push_back(absl::StrCat("n", k, "@az-", k, "=", Address(k)));
    }
    std::vector<std::string> args = Common(i);
    args.push_back("--peers=" + absl::StrJoin(peers, ","));
    args.push_back("--cluster_id=bench");
    Launch(i, args);
  }
  bool AddLearner(int i) override {
    return RunCommand({QUORATECTL_BINARY, "--endpoints=" + Endpoints(),
                       "--timeout=30s", "member", "add", absl::StrCat("n", i),
                       absl::StrCat("az-", i), Address(i), "--learner"},
                      absl::StrCat(dir_, "/add.log")) == 0;
  }
  void StartJoiner(int i) override {
    std::vector<std::string> args = Common(i);
    args.push_back("--join=" + Endpoints());
    args.push_back("--cluster_id=bench");
    Launch(i, args);
  }
  int Leader() override {
    std::string leader;
    for (int i = 0; i < 3; ++i) {
      const std::string l = bench::JsonString(Status(i), "leader_id");
      if (l.empty() || (!leader.empty() && l != leader)) return -1;
      leader = l;
    }
    int idx = -1;
    return absl::SimpleAtoi(leader.substr(1), &idx) ? idx : -1;
  }
  int64_t Commit(int i) override {
    return bench::JsonInt(Status(i), "commit_index");
  }
  int64_t Applied(int i) override {
    return bench::JsonInt(Status(i), "applied_index");
  }
  bool PutRange(int member, uint64_t from, uint64_t to) override {
    client::TxnRequest req;
    for (uint64_t k = from; k < to; ++k) {
      client::PutRequest* put = req.add_success()->mutable_put();
      put->set_key(Key(k));
      put->set_value(kValue);
    }
    req.mutable_op()->set_client(ClientId());
    req.mutable_op()->set_seq(++seq_);
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() +
                     std::chrono::seconds(30));
    client::TxnResponse resp;
    return Stub(member)->Txn(&ctx, req, &resp).ok();
  }
  bool Put(int member, const std::string& key) override {
    client::PutRequest req;
    req.set_key(key);
    req.set_value(kValue);
    req.mutable_op()->set_client(ClientId());
    req.mutable_op()->set_seq(++seq_);
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() +
                     std::chrono::seconds(10));
    client::PutResponse resp;
    return Stub(member)->Put(&ctx, req, &resp).ok();
  }
  bool SaveSnapshot(const std::string& path) override {
    return RunCommand({QUORATECTL_BINARY, "--endpoints=" + Endpoints(),
                       "snapshot", "save", path},
                      absl::StrCat(dir_, "/save.log")) == 0;
  }
  void Restore(const std::string& path, const std::string& dir) override {
    std::vector<std::string> args = {QUORATE_NODE_BINARY,
                                     "--id=r0",
                                     "--zone=az-0",
                                     "--listen=" + Address(4),
                                     "--admin=127.0.0.1:0",
                                     "--data_dir=" + dir,
                                     "--peers=r0@az-0=" + Address(4),
                                     "--cluster_id=bench-restored",
                                     "--restore=" + path,
                                     "--heartbeat_interval=50ms",
                                     "--election_timeout=500ms",
                                     "--segment_bytes=67108864"};
    Launch(4, args);
  }
  bool RestoredReads(const std::string& key) override {
    client::RangeRequest req;
    req.set_key(key);
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() +
                     std::chrono::seconds(2));
    client::RangeResponse resp;
    // A new channel each time: one that failed while nothing listened
    // would wait out gRPC's reconnect backoff (seconds).
    auto stub = client::Kv::NewStub(
        grpc::CreateChannel(Address(4), grpc::InsecureChannelCredentials()));
    return stub->Range(&ctx, req, &resp).ok() && resp.kvs_size() == 1;
  }

 private:
  void Launch(int i, const std::vector<std::string>& args) {
    const auto u = static_cast<size_t>(i);
    const std::string log = absl::StrCat(dir_, "/n", i, ".log");
    log_from_[u] = testing::FileSize(log);
    admin_[u] = 0;
    procs_[u] = std::make_unique<testing::Process>(args, log);
  }
  std::string Status(int i) {
    const auto u = static_cast<size_t>(i);
    if (admin_[u] == 0) {
      admin_[u] = testing::AdminPortInLog(absl::StrCat(dir_, "/n", i, ".log"),
                                          log_from_[u]);
    }
    return testing::HttpGet(admin_[u], "/status");
  }
  std::string Endpoints() const {
    return absl::StrCat(Address(0), ",", Address(1), ",", Address(2));
  }
  client::Kv::Stub* Stub(int i) {
    std::lock_guard<std::mutex> lock(mu_);
    auto& s = stubs_[static_cast<size_t>(i)];
    if (s == nullptr) {
      s = client::Kv::NewStub(
          grpc::CreateChannel(Address(i), grpc::InsecureChannelCredentials()));
    }
    return s.get();
  }
  uint64_t ClientId() const {
    thread_local const uint64_t id =
        (static_cast<uint64_t>(getpid()) << 32) ^
        std::hash<std::thread::id>()(std::this_thread::get_id());
    return id;
  }

  const std::string dir_;
  std::vector<std::unique_ptr<testing::PortReservation>> ports_;
  std::vector<size_t> log_from_ = std::vector<size_t>(5);
  std::vector<int> admin_;
  std::mutex mu_;
  std::unique_ptr<client::Kv::Stub> stubs_[5];
  static inline std::atomic<uint64_t> seq_{0};
};

class EtcdSystem final : public System {
 public:
  explicit EtcdSystem(std::string dir) : dir_(std::move(dir)) {
    for (int i = 0; i < 5; ++i) {
      peer_.push_back(std::make_unique<testing::PortReservation>());
      client_.push_back(std::make_unique<testing::PortReservation>());
    }
  }
  std::string name() const override { return "etcd"; }
  std::string PeerUrl(int i) const {
    return "http://" + peer_[static_cast<size_t>(i)]->address();
  }
  std::string ClientUrl(int i) const {
    return "http://" + client_[static_cast<size_t>(i)]->address();
  }
  std::vector<std::string> Common(int i, const std::string& data) const {
    return {bench::kEtcdBinary,
            absl::StrCat("--name=e", i),
            "--data-dir=" + data,
            "--listen-peer-urls=" + PeerUrl(i),
            "--initial-advertise-peer-urls=" + PeerUrl(i),
            "--listen-client-urls=" + ClientUrl(i),
            "--advertise-client-urls=" + ClientUrl(i),
            "--heartbeat-interval=50",
            "--election-timeout=500",
            absl::StrCat("--snapshot-count=", bench::kSnapshotEntries),
            "--quota-backend-bytes=8589934592",
            "--log-level=error"};
  }
  std::string Initial(int members) const {
    std::vector<std::string> out;
    for (int k = 0; k < members; ++k) {
      out.push_back(absl::StrCat("e", k, "=", PeerUrl(k)));
    }
    return absl::StrJoin(out, ",");
  }
  void Start(int i) override {
    std::vector<std::string> args = Common(i, absl::StrCat(dir_, "/e", i));
    args.push_back("--initial-cluster=" + Initial(3));
    args.push_back("--initial-cluster-state=new");
    args.push_back("--initial-cluster-token=bench");
    Launch(i, args);
  }
  bool AddLearner(int i) override {
    // etcd refuses ("unhealthy cluster") until its leader has been
    // connected to a quorum for 5 s: retry until then.
    return Await(
        [&] {
          return RunCommand({"/usr/bin/etcdctl", "--endpoints=" + Endpoints(),
                             "--command-timeout=30s", "member", "add",
                             absl::StrCat("e", i), "--peer-urls=" + PeerUrl(i),
                             "--learner"},
                            absl::StrCat(dir_, "/add.log")) == 0;
        },
        absl::Seconds(30));
  }
  void StartJoiner(int i) override {
    std::vector<std::string> args = Common(i, absl::StrCat(dir_, "/e", i));
    args.push_back("--initial-cluster=" + Initial(4));
    args.push_back("--initial-cluster-state=existing");
    Launch(i, args);
  }
  int Leader() override {
    std::string leader;
    int idx = -1;
    for (int i = 0; i < 3; ++i) {
      const std::string s = Status(i);
      const std::string l = bench::JsonString(s, "leader");
      if (l.empty() || l == "0" || (!leader.empty() && l != leader)) return -1;
      leader = l;
      if (bench::JsonString(s, "member_id") == l) idx = i;
    }
    return idx;
  }
  int64_t Commit(int i) override {
    return bench::JsonInt(Status(i), "raftIndex");
  }
  int64_t Applied(int i) override {
    return bench::JsonInt(Status(i), "raftAppliedIndex");
  }
  bool PutRange(int member, uint64_t from, uint64_t to) override {
    etcdserverpb::TxnRequest req;
    for (uint64_t k = from; k < to; ++k) {
      etcdserverpb::PutRequest* put = req.add_success()->mutable_request_put();
      put->set_key(Key(k));
      put->set_value(kValue);
    }
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() +
                     std::chrono::seconds(30));
    etcdserverpb::TxnResponse resp;
    return Stub(member)->Txn(&ctx, req, &resp).ok();
  }
  bool Put(int member, const std::string& key) override {
    etcdserverpb::PutRequest req;
    req.set_key(key);
    req.set_value(kValue);
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() +
                     std::chrono::seconds(10));
    etcdserverpb::PutResponse resp;
    return Stub(member)->Put(&ctx, req, &resp).ok();
  }
  bool SaveSnapshot(const std::string& path) override {
    return RunCommand({"/usr/bin/etcdctl", "--endpoints=" + ClientUrl(0),
                       "snapshot", "save", path},
                      absl::StrCat(dir_, "/save.log")) == 0;
  }
  void Restore(const std::string& path, const std::string& dir) override {
    // etcdctl writes the data directory, then etcd starts from it: both
    // are part of the time.
    const int rc = RunCommand(
        {"/usr/bin/etcdctl", "snapshot", "restore", path, "--data-dir=" + dir,
         "--name=e4", "--initial-cluster=e4=" + PeerUrl(4),
         "--initial-advertise-peer-urls=" + PeerUrl(4),
         "--initial-cluster-token=bench-restored"},
        absl::StrCat(dir_, "/restore.log"));
    if (rc != 0) return;
    std::vector<std::string> args = Common(4, dir);
    args.push_back("--initial-cluster=e4=" + PeerUrl(4));
    Launch(4, args);
  }
  bool RestoredReads(const std::string& key) override {
    etcdserverpb::RangeRequest req;
    req.set_key(key);
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() +
                     std::chrono::seconds(2));
    etcdserverpb::RangeResponse resp;
    // A new channel each time, as for Quorate.
    auto stub = etcdserverpb::KV::NewStub(grpc::CreateChannel(
        client_[4]->address(), grpc::InsecureChannelCredentials()));
    return stub->Range(&ctx, req, &resp).ok() && resp.kvs_size() == 1;
  }

 private:
  void Launch(int i, const std::vector<std::string>& args) {
    procs_[static_cast<size_t>(i)] = std::make_unique<testing::Process>(
        args, absl::StrCat(dir_, "/e", i, ".log"));
  }
  std::string Status(int i) {
    return testing::HttpPost(client_[static_cast<size_t>(i)]->port(),
                             "/v3/maintenance/status", "{}");
  }
  std::string Endpoints() const {
    return absl::StrCat(ClientUrl(0), ",", ClientUrl(1), ",", ClientUrl(2));
  }
  etcdserverpb::KV::Stub* Stub(int i) {
    std::lock_guard<std::mutex> lock(mu_);
    auto& s = stubs_[static_cast<size_t>(i)];
    if (s == nullptr) {
      s = etcdserverpb::KV::NewStub(
          grpc::CreateChannel(client_[static_cast<size_t>(i)]->address(),
                              grpc::InsecureChannelCredentials()));
    }
    return s.get();
  }

  const std::string dir_;
  std::vector<std::unique_ptr<testing::PortReservation>> peer_, client_;
  std::mutex mu_;
  std::unique_ptr<etcdserverpb::KV::Stub> stubs_[5];
};

// Completion times of the writers' puts, for rates over intervals.
class WriteLog {
 public:
  void Add(absl::Time t) {
    std::lock_guard<std::mutex> lock(mu_);
    times_.push_back(t);
  }
  // Writes per second in [from, to).
  double Rate(absl::Time from, absl::Time to) {
    std::lock_guard<std::mutex> lock(mu_);
    const auto n =
        std::count_if(times_.begin(), times_.end(),
                      [&](absl::Time t) { return t >= from && t < to; });
    return static_cast<double>(n) / absl::ToDoubleSeconds(to - from);
  }
  // The lowest rate of any 250 ms in [from, to) (the whole interval when
  // shorter).
  double LowestQuarterSecond(absl::Time from, absl::Time to) {
    const absl::Duration q = absl::Milliseconds(250);
    if (to - from <= q) return Rate(from, to);
    double low = -1;
    for (absl::Time t = from; t + q <= to; t += q) {
      const double r = Rate(t, t + q);
      if (low < 0 || r < low) low = r;
    }
    return low;
  }

 private:
  std::mutex mu_;
  std::vector<absl::Time> times_;
};

// One round on `sys`: true and the measures in `out`, or false (saying
// why on stderr).
bool Measure(System& sys, uint64_t keys, const std::string& dir, Results* out) {
  auto fail = [&](const std::string& why) {
    fprintf(stderr, "%s, %llu keys: %s (logs in %s)\n", sys.name().c_str(),
            static_cast<unsigned long long>(keys), why.c_str(), dir.c_str());
    return false;
  };
  for (int i = 0; i < 3; ++i) sys.Start(i);
  int leader = -1;
  if (!Await([&] { return (leader = sys.Leader()) >= 0; }, absl::Seconds(30))) {
    return fail("no leader");
  }
  // 1. Load.
  const absl::Time load_start = absl::Now();
  std::atomic<uint64_t> next{0};
  std::atomic<bool> load_failed{false};
  {
    std::vector<std::thread> loaders;
    for (int c = 0; c < kLoadClients; ++c) {
      loaders.emplace_back([&] {
        while (!load_failed) {
          const uint64_t from = next.fetch_add(kPutsPerTxn);
          if (from >= keys) return;
          const uint64_t to = std::min(keys, from + kPutsPerTxn);
          bool ok = false;
          for (int attempt = 0; attempt < 5 && !ok; ++attempt) {
            ok = sys.PutRange(leader, from, to);
          }
          if (!ok) load_failed = true;
        }
      });
    }
    for (std::thread& t : loaders) t.join();
  }
  if (load_failed) return fail("loading failed");
  (*out)[absl::StrCat("load, keys/s")].push_back(
      static_cast<double>(keys) /
      absl::ToDoubleSeconds(absl::Now() - load_start));

  // 2. Join under writes.
  WriteLog writes;
  std::atomic<bool> stop{false};
  std::vector<std::thread> writers;
  for (int w = 0; w < kWriters; ++w) {
    writers.emplace_back([&, w] {
      for (uint64_t i = 0; !stop; ++i) {
        if (sys.Put(leader, absl::StrCat("w/", w, "/", i))) {
          writes.Add(absl::Now());
        }
      }
    });
  }
  auto stop_writers = [&] {
    stop = true;
    for (std::thread& t : writers) t.join();
    writers.clear();
  };
  absl::SleepFor(absl::Seconds(2));
  const absl::Time add_at = absl::Now();
  if (!sys.AddLearner(3)) {
    stop_writers();
    return fail("adding the learner failed");
  }
  const int64_t target = sys.Commit(leader);
  const absl::Time start_at = absl::Now();
  sys.StartJoiner(3);
  const bool caught_up =
      Await([&] { return sys.Applied(3) >= target; }, absl::Minutes(10));
  const absl::Time caught_at = absl::Now();
  stop_writers();
  if (!caught_up) return fail("the new member never caught up");
  const double before = writes.Rate(add_at - absl::Seconds(2), add_at);
  (*out)["join: until caught up, ms"].push_back(
      absl::ToDoubleMilliseconds(caught_at - start_at));
  (*out)["writes before the join, /s"].push_back(before);
  (*out)["writes during the join, % of before"].push_back(
      100 * writes.Rate(start_at, caught_at) / std::max(before, 1.0));
  (*out)["slowest 250 ms of the join, % of before"].push_back(
      100 * writes.LowestQuarterSecond(start_at, caught_at) /
      std::max(before, 1.0));

  // 3. Snapshot save.
  const std::string file = dir + "/backup.snap";
  const absl::Time save_at = absl::Now();
  if (!sys.SaveSnapshot(file)) return fail("snapshot save failed");
  (*out)["snapshot save, ms"].push_back(
      absl::ToDoubleMilliseconds(absl::Now() - save_at));
  std::error_code ec;
  (*out)["snapshot file, MB"].push_back(
      static_cast<double>(std::filesystem::file_size(file, ec)) / 1e6);

  // 4. Restore into a one-member cluster.
  const absl::Time restore_at = absl::Now();
  sys.Restore(file, dir + "/restored");
  if (!Await([&] { return sys.RestoredReads(Key(0)); }, absl::Minutes(10))) {
    return fail("the restored member never answered");
  }
  (*out)["restore until it serves, ms"].push_back(
      absl::ToDoubleMilliseconds(absl::Now() - restore_at));
  return true;
}

int Main(int argc, char** argv) {
  bench::BenchArgs args;
  std::vector<uint64_t> sizes = {100000, 1000000};
  if (!bench::ParseBenchArgs(
          argc, argv,
          "member_bench [--rounds=3] [--sizes=100000,1000000] "
          "[--markdown=FILE] [--smoke]",
          0, &args, [&] { sizes = {2000}; },
          [&](const std::string& a) {
            if (a.rfind("--sizes=", 0) != 0) return false;
            sizes.clear();
            for (absl::string_view s :
                 absl::StrSplit(a.substr(8), ',', absl::SkipEmpty())) {
              uint64_t n = 0;
              if (!absl::SimpleAtoi(s, &n) || n == 0) return false;
              sizes.push_back(n);
            }
            return !sizes.empty();
          })) {
    return 2;
  }
  const bool with_etcd = !args.smoke &&
                         ::access(bench::kEtcdBinary, X_OK) == 0 &&
                         ::access("/usr/bin/etcdctl", X_OK) == 0;
  const std::vector<std::string> metrics = {
      "load, keys/s",
      "join: until caught up, ms",
      "writes before the join, /s",
      "writes during the join, % of before",
      "slowest 250 ms of the join, % of before",
      "snapshot save, ms",
      "snapshot file, MB",
      "restore until it serves, ms"};
  std::string table = absl::StrFormat(
      "Machine: %s. `member_bench --rounds=%d`: medians of %d rounds, each on "
      "new clusters, Quorate and etcd alternating which goes first.\n\n",
      bench::Machine(), args.rounds, args.rounds);
  for (uint64_t keys : sizes) {
    Results quorate, etcd;
    char tmpl[] = "/tmp/quorate-member-bench-XXXXXX";
    if (::mkdtemp(tmpl) == nullptr) return 1;
    const std::string root = tmpl;
    for (int round = 0; round < args.rounds; ++round) {
      for (int k = 0; k < 2; ++k) {
        const bool quorate_now = (k == 0) == (round % 2 == 0);
        if (!quorate_now && !with_etcd) continue;
        const std::string dir =
            absl::StrCat(root, "/r", round, quorate_now ? "q" : "e");
        std::filesystem::create_directories(dir);
        bool ok;
        if (quorate_now) {
          QuorateSystem sys(dir);
          ok = Measure(sys, keys, dir, &quorate);
        } else {
          EtcdSystem sys(dir);
          ok = Measure(sys, keys, dir, &etcd);
        }
        if (!ok) return 1;
        std::filesystem::remove_all(dir);
        printf("%llu keys, round %d, %s: done\n",
               static_cast<unsigned long long>(keys), round + 1,
               quorate_now ? "quorate" : "etcd");
        fflush(stdout);
      }
    }
    std::filesystem::remove_all(root);
    absl::StrAppendFormat(&table, "**%s keys** (100-byte values):\n\n",
                          absl::StrFormat("%d", keys));
    table += bench::TableRows(metrics, quorate, etcd, with_etcd);
    table += "\n";
  }
  return bench::Report(table, args.markdown, "member_bench");
}

}  // namespace
}  // namespace quorate

int main(int argc, char** argv) { return quorate::Main(argc, argv); }
