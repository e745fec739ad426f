// Locks side by side: Quorate and etcd 3.4 in one run, on the same machine
// and loopback, 3 members each, heartbeat 50 ms, election timeout 500 ms,
// fsync on. Quorate through its library (quorate::Lock, which campaigns
// from the client: a transaction to enter, a watch to wait, a transaction
// to leave); etcd through its own lock service (v3lockpb.Lock, declared in
// proto/wire/etcd/lock.proto), one lease per contender. Measured:
//  - lock cycles per second (acquire, then release) with 1 contender, and
//    the acquire latency p50 and p99 (call to held, uncontended);
//  - lock cycles per second with 64 contenders on one lock, each with a
//    session (lease) of its own, in threads of this process;
//  - failover: a holder in a process of its own (`quoratectl lock NAME
//    --ttl=2s`, `etcdctl lock NAME --ttl=2`) is killed with SIGKILL while
//    a waiter queues; the time until the waiter holds the lock. Same TTL
//    on both: 2 s, and 1 s (the shortest either allows at this election
//    timeout). Then each at the shortest TTL it allows at all: etcd's
//    TTLs are whole seconds, so 1 s at any timing; Quorate's floor is
//    twice the election timeout, so a cluster of its own with an election
//    timeout of 250 ms (heartbeat 25 ms) takes 500 ms;
//  - elections: 4 candidates (a session each) campaign, lead and resign in
//    turn on one election while one observer watches it (Quorate:
//    quorate::Election and ObserveElection; etcd: v3electionpb.Election's
//    Campaign, Resign and Observe, declared in proto/wire/etcd/election.proto).
//    The changes of leader the observer was told of per second, and what share
//    of the leaderships it was told of (each leader proclaims a value of its
//    own, so a skipped leader shows).
// Each round runs both systems (alternating which goes first); the table
// shows medians over rounds.
//
//   lock_bench [--rounds=3] [--seconds=5] [--markdown=docs/benchmarks.md]
//              [--smoke]
// --markdown replaces the section between "<!-- lock_bench:begin -->" and
// "<!-- lock_bench:end -->". --smoke: Quorate only, briefly (the test
// suite runs this).
#include <grpcpp/grpcpp.h>

#include <atomic>
#include <cstdio>
#include <future>
#include <mutex>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "bench/clusters.h"
#include "quorate/client.h"
#include "quorate/election.h"
#include "wire/etcd/election.grpc.pb.h"
#include "wire/etcd/lock.grpc.pb.h"
#include "wire/etcd/rpc.grpc.pb.h"

namespace quorate {
namespace {

using bench::Await;
using bench::Cluster;
using bench::Machine;
using bench::Percentile;
using bench::Results;

constexpr int kContenders = 64;
constexpr int kCandidates = 4;
constexpr char kElectionChanges[] = "election changes observed/s, 4 candidates";
constexpr char kElectionShare[] = "leaderships observed, %";
constexpr char kShortestFailover[] =
    "failover ms, holder killed, TTL 1 s (shortest on both at this timing)";
constexpr char kSubSecondFailover[] =
    "failover ms, holder killed, shortest TTL each allows (Quorate 500 ms at "
    "election timeout 250 ms; etcd 1 s)";

// A session of 10 s for a contender or candidate; null on failure.
std::unique_ptr<Session> BenchSession(Client* client) {
  SessionOptions so;
  so.ttl = absl::Seconds(10);
  auto s = client->StartSession(so);
  return s.ok() ? *std::move(s) : nullptr;
}

// An etcd lease that outlives the measurement without renewals; 0 on
// failure.
int64_t EtcdLease(const std::shared_ptr<grpc::Channel>& ch) {
  auto leases = etcdserverpb::Lease::NewStub(ch);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  etcdserverpb::LeaseGrantRequest req;
  req.set_ttl(60);
  etcdserverpb::LeaseGrantResponse resp;
  if (!leases->LeaseGrant(&ctx, req, &resp).ok() || !resp.error().empty()) {
    return 0;
  }
  return resp.id();
}

// One contender's lock calls, on one system.
class Contender {
 public:
  virtual ~Contender() = default;
  virtual bool Acquire() = 0;
  virtual bool Release() = 0;
};

class QuorateContender final : public Contender {
 public:
  static std::unique_ptr<QuorateContender> Make(Client* client,
                                                const std::string& name) {
    auto c = std::make_unique<QuorateContender>();
    c->session_ = BenchSession(client);
    if (c->session_ == nullptr) return nullptr;
    auto l = Lock::Create(client, c->session_.get(), name);
    if (!l.ok()) return nullptr;
    c->lock_ = *std::move(l);
    return c;
  }
  bool Acquire() override { return lock_->Acquire(absl::Seconds(30)).ok(); }
  bool Release() override { return lock_->Release().ok(); }

 private:
  std::unique_ptr<Session> session_;
  std::unique_ptr<Lock> lock_;
};

class EtcdContender final : public Contender {
 public:
  static std::unique_ptr<EtcdContender> Make(
      const std::shared_ptr<grpc::Channel>& ch, const std::string& name) {
    auto c = std::make_unique<EtcdContender>();
    c->lock_ = v3lockpb::Lock::NewStub(ch);
    c->lease_ = EtcdLease(ch);
    if (c->lease_ == 0) return nullptr;
    c->name_ = name;
    return c;
  }
  bool Acquire() override {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() +
                     std::chrono::seconds(30));
    v3lockpb::LockRequest req;
    req.set_name(name_);
    req.set_lease(lease_);
    v3lockpb::LockResponse resp;
    if (!lock_->Lock(&ctx, req, &resp).ok()) return false;
    key_ = resp.key();
    return true;
  }
  bool Release() override {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() +
                     std::chrono::seconds(10));
    v3lockpb::UnlockRequest req;
    req.set_key(key_);
    v3lockpb::UnlockResponse resp;
    return lock_->Unlock(&ctx, req, &resp).ok();
  }

 private:
  std::unique_ptr<v3lockpb::Lock::Stub> lock_;
  int64_t lease_ = 0;
  std::string name_;
  std::string key_;
};

// Keys under `prefix` on etcd (linearizable count).
int64_t EtcdCount(const std::shared_ptr<grpc::Channel>& ch,
                  const std::string& prefix) {
  auto kv = etcdserverpb::KV::NewStub(ch);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
  etcdserverpb::RangeRequest req;
  req.set_key(prefix);
  req.set_range_end(PrefixEnd(prefix));
  req.set_count_only(true);
  etcdserverpb::RangeResponse resp;
  if (!kv->Range(&ctx, req, &resp).ok()) return -1;
  return resp.count();
}

struct Setup {
  bool quorate = true;
  std::vector<std::string> endpoints;      // every member's client address
  std::string leader;                      // the leader's
  std::unique_ptr<Client> client;          // Quorate's
  std::shared_ptr<grpc::Channel> channel;  // etcd's, to the leader
  std::string etcd_endpoints;              // for etcdctl
};

std::unique_ptr<Contender> NewContender(Setup& s, const std::string& name) {
  if (s.quorate) return QuorateContender::Make(s.client.get(), name);
  return EtcdContender::Make(s.channel, name);
}

// Acquire/release cycles of `n` contenders on one lock for `seconds`: the
// cycles per second, and (one contender) each acquire's latency.
bool Cycles(Setup& s, int n, double seconds, const std::string& name,
            double* per_second, std::vector<double>* acquire_ms) {
  std::vector<std::unique_ptr<Contender>> cs;
  for (int i = 0; i < n; ++i) {
    cs.push_back(NewContender(s, name));
    if (cs.back() == nullptr) return false;
  }
  std::atomic<uint64_t> cycles{0};
  std::atomic<bool> failed{false};
  std::mutex mu;
  const absl::Time until = absl::Now() + absl::Seconds(seconds);
  std::vector<std::thread> threads;
  const absl::Time start = absl::Now();
  for (auto& c : cs) {
    threads.emplace_back([&, c = c.get()] {
      while (absl::Now() < until && !failed.load()) {
        const absl::Time t0 = absl::Now();
        if (!c->Acquire()) {
          failed = true;
          return;
        }
        const double ms = absl::ToDoubleMilliseconds(absl::Now() - t0);
        if (!c->Release()) {
          failed = true;
          return;
        }
        cycles.fetch_add(1);
        if (acquire_ms != nullptr) {
          std::lock_guard<std::mutex> lock(mu);
          acquire_ms->push_back(ms);
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  *per_second = static_cast<double>(cycles.load()) /
                absl::ToDoubleSeconds(absl::Now() - start);
  return !failed.load();
}

// The holder's process, killed with SIGKILL while a waiter queues: the
// milliseconds until the waiter holds the lock; negative on failure.
double Failover(Setup& s, const std::string& dir, int64_t ttl_ms) {
  const std::string name = absl::StrCat("failover-", ttl_ms);
  const std::string log = absl::StrCat(dir, "/holder-", ttl_ms, ".out");
  std::unique_ptr<testing::Process> holder;
  if (s.quorate) {
    holder = std::make_unique<testing::Process>(
        std::vector<std::string>{
            QUORATECTL_BINARY, "--endpoints=" + absl::StrJoin(s.endpoints, ","),
            "lock", name, absl::StrCat("--ttl=", ttl_ms, "ms")},
        log);
  } else {
    // etcd's TTLs are whole seconds.
    holder = std::make_unique<testing::Process>(
        std::vector<std::string>{"/usr/bin/etcdctl",
                                 "--endpoints=" + s.etcd_endpoints, "lock",
                                 name, absl::StrCat("--ttl=", ttl_ms / 1000)},
        log);
  }
  // Held: quoratectl prints "LOCKED NAME TOKEN", etcdctl the key.
  if (!Await([&] { return testing::FileSize(log) > 0; })) return -1;
  std::unique_ptr<Contender> waiter = NewContender(s, name);
  if (waiter == nullptr) return -1;
  auto acquired =
      std::async(std::launch::async, [&] { return waiter->Acquire(); });
  // Queued: two keys under the lock's prefix.
  const bool queued = Await([&] {
    if (s.quorate) {
      RangeOptions o;
      o.range_end = PrefixEnd("quorate/lock/" + name + "/");
      o.count_only = true;
      auto r = s.client->Range("quorate/lock/" + name + "/", o);
      return r.ok() && r->count == 2;
    }
    return EtcdCount(s.channel, name + "/") == 2;
  });
  if (!queued) return -1;
  if (acquired.wait_for(std::chrono::seconds(0)) == std::future_status::ready) {
    const bool held = acquired.get();
    fprintf(stderr, "failover: the waiter's acquire %s before the kill:\n%s",
            held ? "succeeded" : "failed", testing::ReadAll(log).c_str());
    return -1;
  }
  const absl::Time killed = absl::Now();
  holder->Signal(SIGKILL);
  if (!acquired.get()) return -1;
  const double ms = absl::ToDoubleMilliseconds(absl::Now() - killed);
  (void)waiter->Release();
  return ms;
}

// One candidate in an election, on one system: campaigns with `value`
// until it leads, then resigns.
class Candidate {
 public:
  virtual ~Candidate() = default;
  virtual bool Campaign(const std::string& value) = 0;
  virtual bool Resign() = 0;
};

class QuorateCandidate final : public Candidate {
 public:
  static std::unique_ptr<QuorateCandidate> Make(Client* client,
                                                const std::string& name) {
    auto c = std::make_unique<QuorateCandidate>();
    c->session_ = BenchSession(client);
    if (c->session_ == nullptr) return nullptr;
    auto e = Election::Create(client, c->session_.get(), name);
    if (!e.ok()) return nullptr;
    c->election_ = *std::move(e);
    return c;
  }
  bool Campaign(const std::string& value) override {
    return election_->Campaign(value, absl::Seconds(30)).ok();
  }
  bool Resign() override { return election_->Resign().ok(); }

 private:
  std::unique_ptr<Session> session_;
  std::unique_ptr<Election> election_;
};

class EtcdCandidate final : public Candidate {
 public:
  static std::unique_ptr<EtcdCandidate> Make(
      const std::shared_ptr<grpc::Channel>& ch, const std::string& name) {
    auto c = std::make_unique<EtcdCandidate>();
    c->election_ = v3electionpb::Election::NewStub(ch);
    c->lease_ = EtcdLease(ch);
    if (c->lease_ == 0) return nullptr;
    c->name_ = name;
    return c;
  }
  bool Campaign(const std::string& value) override {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() +
                     std::chrono::seconds(30));
    v3electionpb::CampaignRequest req;
    req.set_name(name_);
    req.set_lease(lease_);
    req.set_value(value);
    v3electionpb::CampaignResponse resp;
    if (!election_->Campaign(&ctx, req, &resp).ok()) return false;
    leader_ = resp.leader();
    return true;
  }
  bool Resign() override {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() +
                     std::chrono::seconds(10));
    v3electionpb::ResignRequest req;
    *req.mutable_leader() = leader_;
    v3electionpb::ResignResponse resp;
    return election_->Resign(&ctx, req, &resp).ok();
  }

 private:
  std::unique_ptr<v3electionpb::Election::Stub> election_;
  int64_t lease_ = 0;
  std::string name_;
  v3electionpb::LeaderKey leader_;
};

// Counts the changes of leader an observer is told of: a value other than
// the last one it was told.
class ObserverCount {
 public:
  void Saw(const std::string& value) {
    std::lock_guard<std::mutex> lock(mu_);
    if (value == last_) return;
    last_ = value;
    ++changes_;
  }
  uint64_t changes() {
    std::lock_guard<std::mutex> lock(mu_);
    return changes_;
  }

 private:
  std::mutex mu_;
  std::string last_;
  uint64_t changes_ = 0;
};

// kCandidates candidates take turns leading election `name` for
// `seconds` while one observer watches it. The changes it was told of per
// second, and the share of leaderships it was told of.
bool ElectionChanges(Setup& s, double seconds, const std::string& name,
                     double* per_second, double* observed_share) {
  std::vector<std::unique_ptr<Candidate>> cs;
  for (int i = 0; i < kCandidates; ++i) {
    if (s.quorate) {
      cs.push_back(QuorateCandidate::Make(s.client.get(), name));
    } else {
      cs.push_back(EtcdCandidate::Make(s.channel, name));
    }
    if (cs.back() == nullptr) return false;
  }
  ObserverCount seen;
  std::unique_ptr<Watcher> quorate_observer;
  grpc::ClientContext etcd_ctx;
  std::thread etcd_observer;
  if (s.quorate) {
    ObserveOptions o;
    o.on_leader = [&seen](const std::optional<LeaderInfo>& l) {
      if (l.has_value()) seen.Saw(l->value);
    };
    auto w = ObserveElection(s.client.get(), name, std::move(o));
    if (!w.ok()) return false;
    quorate_observer = *std::move(w);
  } else {
    etcd_observer = std::thread([&] {
      auto stub = v3electionpb::Election::NewStub(s.channel);
      v3electionpb::LeaderRequest req;
      req.set_name(name);
      auto stream = stub->Observe(&etcd_ctx, req);
      v3electionpb::LeaderResponse resp;
      while (stream->Read(&resp)) seen.Saw(resp.kv().value());
      (void)stream->Finish();
    });
  }
  std::atomic<uint64_t> leaderships{0};
  std::atomic<bool> failed{false};
  const absl::Time start = absl::Now();
  const absl::Time until = start + absl::Seconds(seconds);
  std::vector<std::thread> threads;
  for (int i = 0; i < kCandidates; ++i) {
    threads.emplace_back([&, i, c = cs[static_cast<size_t>(i)].get()] {
      for (int n = 0; absl::Now() < until && !failed.load(); ++n) {
        if (!c->Campaign(absl::StrCat("candidate-", i, "-", n))) {
          failed = true;
          return;
        }
        leaderships.fetch_add(1);
        if (!c->Resign()) {
          failed = true;
          return;
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  const double elapsed = absl::ToDoubleSeconds(absl::Now() - start);
  // The observer may lag behind: let it catch up (or give up after 5 s).
  (void)Await([&] { return seen.changes() >= leaderships.load(); },
              absl::Seconds(5));
  const uint64_t observed = seen.changes();
  if (quorate_observer != nullptr) quorate_observer->Cancel();
  if (etcd_observer.joinable()) {
    etcd_ctx.TryCancel();
    etcd_observer.join();
  }
  if (failed.load() || leaderships.load() == 0) return false;
  *per_second = static_cast<double>(observed) / elapsed;
  *observed_share = 100.0 * static_cast<double>(observed) /
                    static_cast<double>(leaderships.load());
  return true;
}

// Starts `c` and connects to its leader; false if it has none in time.
bool Connect(Cluster& c, Setup* s) {
  for (int i = 0; i < bench::kMembers; ++i) c.Start(i);
  int leader = -1;
  if (!Await([&] { return (leader = c.Leader()) >= 0; })) return false;
  s->quorate = c.name() == "quorate";
  std::vector<std::string> etcd_urls;
  for (int i = 0; i < bench::kMembers; ++i) {
    s->endpoints.push_back(c.ClientAddress(i));
    etcd_urls.push_back("http://" + c.ClientAddress(i));
  }
  s->etcd_endpoints = absl::StrJoin(etcd_urls, ",");
  s->leader = c.ClientAddress(leader);
  if (!s->quorate) {
    s->channel =
        grpc::CreateChannel(s->leader, grpc::InsecureChannelCredentials());
    return true;
  }
  ClientOptions o;
  o.endpoints = {s->leader};
  for (const std::string& e : s->endpoints) {
    if (e != s->leader) o.endpoints.push_back(e);
  }
  o.timeout = absl::Seconds(10);
  auto client = Client::Create(o);
  if (!client.ok()) return false;
  s->client = *std::move(client);
  return true;
}

// Quorate's failover at a TTL etcd cannot be given (its TTLs are whole
// seconds): 500 ms, the floor at an election timeout of 250 ms (heartbeat
// 25 ms), on a cluster of its own in `dir`; negative on failure.
double SubSecondFailover(const std::string& dir) {
  bench::QuorateCluster c(QUORATE_NODE_BINARY, dir, absl::Milliseconds(25),
                          absl::Milliseconds(250));
  std::filesystem::create_directories(dir);
  Setup s;
  if (!Connect(c, &s)) return -1;
  return Failover(s, dir, 500);
}

bool Measure(Cluster& c, double seconds, bool smoke, Results* out) {
  Setup s;
  if (!Connect(c, &s)) return false;
  double one = 0, many = 0;
  std::vector<double> acquire;
  if (!Cycles(s, 1, seconds, "single", &one, &acquire)) return false;
  std::sort(acquire.begin(), acquire.end());
  (*out)["lock cycles/s, 1 contender"].push_back(one);
  (*out)["acquire p50 ms, uncontended"].push_back(Percentile(acquire, 0.5));
  (*out)["acquire p99 ms, uncontended"].push_back(Percentile(acquire, 0.99));
  const int n = smoke ? 4 : kContenders;
  if (!Cycles(s, n, seconds, "shared", &many, nullptr)) return false;
  (*out)[absl::StrCat("lock cycles/s, ", kContenders, " contenders")].push_back(
      many);
  char tmpl[] = "/tmp/quorate-lock-bench-XXXXXX";
  if (::mkdtemp(tmpl) == nullptr) return false;
  const double failover = Failover(s, tmpl, 2000);
  // The shortest TTL each allows at this election timeout (500 ms):
  // Quorate's floor is twice the election timeout, etcd's 1.5 times,
  // rounded up to whole seconds. 1 s on both.
  const double shortest = failover < 0 ? -1 : Failover(s, tmpl, 1000);
  // Each at the shortest TTL it can be given at all: etcd's stays 1 s.
  const double sub_second =
      shortest < 0 || smoke ? shortest
      : s.quorate           ? SubSecondFailover(absl::StrCat(tmpl, "/short"))
                            : shortest;
  std::filesystem::remove_all(tmpl);
  if (failover < 0 || shortest < 0 || sub_second < 0) return false;
  (*out)["failover ms, holder killed, TTL 2 s"].push_back(failover);
  (*out)[kShortestFailover].push_back(shortest);
  (*out)[kSubSecondFailover].push_back(sub_second);
  double changes = 0, share = 0;
  if (!ElectionChanges(s, seconds, "bench", &changes, &share)) return false;
  (*out)[kElectionChanges].push_back(changes);
  (*out)[kElectionShare].push_back(share);
  return true;
}

int Main(int argc, char** argv) {
  bench::BenchArgs args;
  if (!bench::ParseBenchArgs(
          argc, argv,
          "lock_bench [--rounds=3] [--seconds=5] [--markdown=FILE] [--smoke]",
          0.5, &args)) {
    return 2;
  }
  const bool with_etcd = !args.smoke;
  Results quorate, etcd;
  if (!bench::RunSideBySide(
          args.rounds, with_etcd, QUORATE_NODE_BINARY,
          [&](Cluster& c, Results* r) {
            const bool ok = Measure(c, args.seconds, args.smoke, r);
            if (!ok)
              fprintf(stderr, "%s: a measurement failed\n", c.name().c_str());
            return ok;
          },
          &quorate, &etcd)) {
    return 1;
  }
  const std::vector<std::string> metrics = {
      "lock cycles/s, 1 contender",
      "acquire p50 ms, uncontended",
      "acquire p99 ms, uncontended",
      absl::StrCat("lock cycles/s, ", kContenders, " contenders"),
      "failover ms, holder killed, TTL 2 s",
      kShortestFailover,
      kSubSecondFailover,
      kElectionChanges,
      kElectionShare};
  std::string table = absl::StrFormat(
      "Machine: %s. Command: `build/tests/bench/lock_bench --rounds=%d "
      "--seconds=%g`. Medians of %d rounds; 3 members on loopback, "
      "heartbeat 50 ms, election timeout 500 ms, fsync on.\n\n",
      Machine(), args.rounds, args.seconds, args.rounds);
  table += bench::TableRows(metrics, quorate, etcd, with_etcd);
  return bench::Report(table, args.markdown, "lock_bench");
}

}  // namespace
}  // namespace quorate

int main(int argc, char** argv) { return quorate::Main(argc, argv); }
