// Shard groups at scale (issue 19): one group of 4,096 shards shared by
// 200 processors in 3 zones, all in this process (one Client; a Session
// and a quorate::ShardGroup each, TTL 2 s; each releases what it is asked
// to at once), against 3 quorate-node members on loopback (heartbeat
// 50 ms, election timeout 500 ms, fsync on). Quorate alone: etcd has no
// shard groups. Measured:
//  - settle: from the first join until every shard is owned and none is
//    draining (planned moves, 256 in motion at most);
//  - one join: the shards that changed owner when one more processor
//    joined the settled group;
//  - zone loss: one zone's sessions stop renewing (their objects are
//    destroyed without closing, as a cut-off process's would); the time
//    until every shard is owned by a processor of the other zones, and
//    that less the TTL;
//  - the leader's CPU at steady state (every session renewing), in % of
//    one core, over --seconds.
//
//   shard_bench [--rounds=3] [--seconds=5] [--markdown=docs/benchmarks.md]
//               [--smoke]
// --markdown replaces the section between "<!-- shard_bench:begin -->" and
// "<!-- shard_bench:end -->". --smoke: 256 shards, 12 processors, one
// short round (the test suite runs this).
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "bench/clusters.h"
#include "quorate/client.h"
#include "quorate/shards.h"

namespace quorate {
namespace {

using bench::Cluster;
using bench::Machine;
using bench::Results;

constexpr absl::Duration kTtl = absl::Seconds(2);

struct Processor {
  std::string zone;
  std::unique_ptr<Session> session;
  std::atomic<ShardGroup*> group{nullptr};
  std::unique_ptr<ShardGroup> owned;
};

// Every shard owned, none draining; and, when `lost` is set, none owned
// by those leases.
bool Settled(Client* c, const std::string& name,
             const std::set<uint64_t>& lost) {
  absl::StatusOr<std::vector<ShardInfo>> shards = ListShards(c, name);
  if (!shards.ok()) return false;
  for (const ShardInfo& s : *shards) {
    if (s.state != "owned" || lost.count(s.owner) > 0) return false;
  }
  return true;
}

// Polls until Settled, or `limit`; the time taken, or -1.
double AwaitSettled(Client* c, const std::string& name,
                    const std::set<uint64_t>& lost, absl::Time since,
                    absl::Duration limit) {
  while (absl::Now() - since < limit) {
    if (Settled(c, name, lost)) {
      return absl::ToDoubleMilliseconds(absl::Now() - since);
    }
    absl::SleepFor(absl::Milliseconds(20));
  }
  return -1;
}

std::map<uint32_t, uint64_t> Owners(Client* c, const std::string& name) {
  std::map<uint32_t, uint64_t> out;
  absl::StatusOr<std::vector<ShardInfo>> shards = ListShards(c, name);
  if (shards.ok()) {
    for (const ShardInfo& s : *shards) out[s.shard] = s.owner;
  }
  return out;
}

// utime + stime of `pid`, in seconds.
double CpuSeconds(pid_t pid) {
  std::ifstream in(absl::StrCat("/proc/", pid, "/stat"));
  std::string stat((std::istreambuf_iterator<char>(in)),
                   std::istreambuf_iterator<char>());
  const size_t close = stat.rfind(')');
  if (close == std::string::npos) return 0;
  std::istringstream rest(stat.substr(close + 2));
  std::string field;
  double ticks = 0;
  // Fields 3.. after the name: utime and stime are the 14th and 15th.
  for (int i = 3; i <= 15 && rest >> field; ++i) {
    if (i == 14 || i == 15) ticks += std::stod(field);
  }
  return ticks / static_cast<double>(sysconf(_SC_CLK_TCK));
}

std::unique_ptr<Processor> Join(Client* c, const std::string& name,
                                const std::string& zone) {
  auto p = std::make_unique<Processor>();
  p->zone = zone;
  SessionOptions so;
  so.ttl = kTtl;
  absl::StatusOr<std::unique_ptr<Session>> s = c->StartSession(so);
  if (!s.ok()) {
    fprintf(stderr, "session: %s\n", s.status().ToString().c_str());
    return nullptr;
  }
  p->session = *std::move(s);
  ShardGroupOptions o;
  o.zone = zone;
  Processor* raw = p.get();
  o.on_revoke = [raw](uint32_t shard) {
    if (ShardGroup* g = raw->group.load()) (void)g->Release(shard);
  };
  absl::StatusOr<std::unique_ptr<ShardGroup>> g =
      ShardGroup::Join(c, p->session.get(), name, std::move(o));
  if (!g.ok()) {
    fprintf(stderr, "join: %s\n", g.status().ToString().c_str());
    return nullptr;
  }
  p->owned = *std::move(g);
  p->group = p->owned.get();
  return p;
}

bool Measure(Cluster& cluster, double seconds, bool smoke, Results* out) {
  const uint32_t shards = smoke ? 256 : 4096;
  const int processors = smoke ? 12 : 200;
  for (int i = 0; i < bench::kMembers; ++i) cluster.Start(i);
  if (!bench::Await([&] { return cluster.Leader() >= 0; })) {
    fprintf(stderr, "no leader\n");
    return false;
  }
  ClientOptions co;
  for (int i = 0; i < bench::kMembers; ++i) {
    co.endpoints.push_back(cluster.ClientAddress(i));
  }
  co.timeout = absl::Seconds(10);
  absl::StatusOr<std::unique_ptr<Client>> client = Client::Create(co);
  if (!client.ok()) {
    fprintf(stderr, "client: %s\n", client.status().ToString().c_str());
    return false;
  }
  Client* c = client->get();
  const std::string name = "bench";
  ShardGroupLimits limits;
  limits.max_in_motion = 256;
  limits.max_processors = 1000;
  if (absl::Status s = CreateShardGroup(c, name, shards, limits); !s.ok()) {
    fprintf(stderr, "create: %s\n", s.ToString().c_str());
    return false;
  }

  std::vector<std::unique_ptr<Processor>> ps;
  const absl::Time start = absl::Now();
  for (int i = 0; i < processors; ++i) {
    ps.push_back(Join(c, name, absl::StrCat("z", i % 3)));
    if (ps.back() == nullptr) return false;
  }
  const double settle = AwaitSettled(c, name, {}, start, absl::Seconds(120));
  if (settle < 0) {
    fprintf(stderr, "the group did not settle after the joins\n");
    return false;
  }
  (*out)["settle ms, all processors joined"].push_back(settle);

  // The leader's CPU while every session renews and nothing moves.
  // (Leader() also wants every member caught up, which a write in flight
  // breaks for a moment: ask until it holds.)
  int leader = -1;
  if (!bench::Await([&] { return (leader = cluster.Leader()) >= 0; })) {
    fprintf(stderr, "no leader\n");
    return false;
  }
  const pid_t pid = cluster.Pid(leader);
  const double cpu_before = CpuSeconds(pid);
  absl::SleepFor(absl::Seconds(seconds));
  (*out)["leader CPU %, steady state"].push_back(
      100 * (CpuSeconds(pid) - cpu_before) / seconds);

  // One more processor.
  const std::map<uint32_t, uint64_t> before = Owners(c, name);
  ps.push_back(Join(c, name, "z1"));
  if (ps.back() == nullptr) return false;
  if (AwaitSettled(c, name, {}, absl::Now(), absl::Seconds(60)) < 0) {
    fprintf(stderr, "the group did not settle after one more join\n");
    return false;
  }
  const std::map<uint32_t, uint64_t> after = Owners(c, name);
  double moved = 0;
  for (const auto& [shard, owner] : after) moved += before.at(shard) != owner;
  (*out)["shards moved by one join"].push_back(moved);

  // Zone z0 is lost: its sessions stop renewing.
  std::set<uint64_t> lost;
  const absl::Time cut = absl::Now();
  for (auto& p : ps) {
    if (p->zone != "z0") continue;
    lost.insert(p->session->lease());
    p->group = nullptr;
    p->owned.reset();
    p->session.reset();
  }
  const double regained = AwaitSettled(c, name, lost, cut, absl::Seconds(60));
  if (regained < 0) {
    fprintf(stderr, "the lost zone's shards were not owned again\n");
    return false;
  }
  (*out)["zone lost -> every shard owned, ms (TTL 2 s)"].push_back(regained);
  (*out)["... less the TTL, ms"].push_back(regained -
                                           absl::ToDoubleMilliseconds(kTtl));
  return true;
}

int Main(int argc, char** argv) {
  bench::BenchArgs args;
  if (!bench::ParseBenchArgs(
          argc, argv,
          "shard_bench [--rounds=3] [--seconds=5] [--markdown=FILE] [--smoke]",
          1, &args)) {
    return 2;
  }
  Results quorate, none;
  if (!bench::RunSideBySide(
          args.rounds, /*with_etcd=*/false, QUORATE_NODE_BINARY,
          [&](Cluster& c, Results* r) {
            const bool ok = Measure(c, args.seconds, args.smoke, r);
            if (!ok) fprintf(stderr, "a measurement failed\n");
            return ok;
          },
          &quorate, &none)) {
    return 1;
  }
  const std::vector<std::string> metrics = {
      "settle ms, all processors joined", "leader CPU %, steady state",
      "shards moved by one join",
      "zone lost -> every shard owned, ms (TTL 2 s)", "... less the TTL, ms"};
  std::string table = absl::StrFormat(
      "Machine: %s. Command: `build/tests/bench/shard_bench --rounds=%d "
      "--seconds=%g`. Medians of %d rounds; 3 quorate-node members on "
      "loopback, heartbeat 50 ms, election timeout 500 ms, fsync on; one "
      "group of %d shards, %d processors in 3 zones (sessions of TTL 2 s, "
      "all in the benchmark's process), at most 256 shards in motion.\n\n",
      Machine(), args.rounds, args.seconds, args.rounds,
      args.smoke ? 256 : 4096, args.smoke ? 12 : 200);
  table += bench::TableRows(metrics, quorate, none, /*with_etcd=*/false);
  return bench::Report(table, args.markdown, "shard_bench");
}

}  // namespace
}  // namespace quorate

int main(int argc, char** argv) { return quorate::Main(argc, argv); }
