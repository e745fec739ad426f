// email_bench: the email example end to end on this machine. Per database
// (SQLite, then a private PostgreSQL) and round: 3 quorate-node members,
// one front, two processors, the sink; four generators send --messages
// messages over SMTP as fast as the front takes them; once everything is
// processed and every reply delivered, email-audit --latency reports
// messages per second (first accept to last conversation row) and the
// latency from the front's commit to the conversation row, p50 and p99.
// Prints each round and the medians.
//
//   email_bench [--rounds=3] [--messages=2000] [--db=sqlite,postgres]
//               [--smoke: 200 messages]
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <map>
#include <memory>
#include <regex>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "util/pg_server.h"
#include "util/port.h"
#include "util/process.h"

namespace quorate::testing {
namespace {

const std::string kEmail = EMAIL_BIN_DIR;

bool Await(const std::function<bool()>& pred, absl::Duration limit) {
  const absl::Time until = absl::Now() + limit;
  while (!pred()) {
    if (absl::Now() > until) return false;
    absl::SleepFor(absl::Milliseconds(50));
  }
  return true;
}

std::string AddressIn(const std::string& log) {
  static const std::regex kAddress("^127\\.0\\.0\\.1:[0-9]+$");
  for (absl::string_view line : absl::StrSplit(ReadAll(log), '\n')) {
    if (std::regex_match(std::string(line), kAddress)) return std::string(line);
  }
  return "";
}

std::map<std::string, double> Audit(const std::string& db,
                                    const std::string& sink,
                                    const std::string& out) {
  Process p(
      {kEmail + "/email-audit", "--db=" + db, "--sink=" + sink, "--latency"},
      out);
  p.Wait(absl::Seconds(120));
  std::map<std::string, double> values;
  for (absl::string_view line : absl::StrSplit(ReadAll(out), '\n')) {
    std::vector<std::string> kv = absl::StrSplit(line, '=');
    double v = 0;
    if (kv.size() == 2 && absl::SimpleAtod(kv[1], &v)) values[kv[0]] = v;
  }
  std::filesystem::remove(out);
  return values;
}

struct Round {
  double per_second = 0, p50 = 0, p99 = 0;
  bool ok = false;
};

Round RunRound(const std::string& db, int messages, const std::string& dir) {
  Round r;
  std::vector<std::unique_ptr<PortReservation>> ports;
  std::string peers, endpoints;
  for (int i = 0; i < 3; ++i) {
    ports.push_back(std::make_unique<PortReservation>());
    absl::StrAppend(&peers, i ? "," : "", "n", i + 1, "@az-", i, "=",
                    ports[i]->address());
    absl::StrAppend(&endpoints, i ? "," : "", ports[i]->address());
  }
  std::vector<std::unique_ptr<Process>> procs;
  for (int i = 0; i < 3; ++i) {
    const std::string name = absl::StrCat("n", i + 1);
    procs.push_back(std::make_unique<Process>(
        std::vector<std::string>{
            QUORATE_NODE_BINARY, "--id=" + name, absl::StrCat("--zone=az-", i),
            "--listen=" + ports[i]->address(), "--admin=127.0.0.1:0",
            "--peers=" + peers, "--data_dir=" + dir + "/" + name,
            "--cluster_id=bench"},
        dir + "/" + name + ".log"));
  }
  const std::string sink_file = dir + "/sink.jsonl";
  procs.push_back(std::make_unique<Process>(
      std::vector<std::string>{kEmail + "/email-sink", "--listen=127.0.0.1:0",
                               "--out=" + sink_file},
      dir + "/sink.log"));
  procs.push_back(std::make_unique<Process>(
      std::vector<std::string>{kEmail + "/email-front", "--listen=127.0.0.1:0",
                               "--db=" + db, "--zone=az-0"},
      dir + "/front.log"));
  std::string sink, front;
  if (!Await(
          [&] {
            sink = AddressIn(dir + "/sink.log");
            front = AddressIn(dir + "/front.log");
            return !sink.empty() && !front.empty();
          },
          absl::Seconds(30))) {
    std::fprintf(stderr, "email_bench: the sink or the front did not start\n");
    return r;
  }
  for (const char* id : {"p1", "p2"}) {
    procs.push_back(std::make_unique<Process>(
        std::vector<std::string>{
            kEmail + "/email-processor", std::string("--id=") + id,
            "--zone=az-0", "--endpoints=" + endpoints, "--db=" + db,
            "--smarthost=" + sink, "--status_interval=200ms"},
        dir + "/" + id + ".log"));
  }
  // Both processors own shards before the mail starts.
  auto owns = [&](const char* id) {
    const std::string log = ReadAll(dir + "/" + id + ".log");
    const size_t at = log.rfind("status ");
    return at != std::string::npos &&
           log.compare(log.find("owned=", at) + 6, 1, " ") != 0;
  };
  if (!Await([&] { return owns("p1") && owns("p2"); }, absl::Seconds(60))) {
    std::fprintf(stderr, "email_bench: the processors own no shards\n");
    return r;
  }
  std::vector<std::unique_ptr<Process>> gens;
  for (int g = 0; g < 4; ++g) {
    gens.push_back(std::make_unique<Process>(
        std::vector<std::string>{kEmail + "/email-loadgen", "--smtp=" + front,
                                 absl::StrCat("--count=", messages / 4),
                                 absl::StrCat("--tag=g", g),
                                 absl::StrCat("--seed=", g + 1)},
        absl::StrCat(dir, "/gen", g, ".log")));
  }
  for (auto& g : gens) {
    if (g->Wait(absl::Seconds(600)).value_or(-1) != 0) {
      std::fprintf(stderr, "email_bench: a generator failed\n");
      return r;
    }
  }
  std::map<std::string, double> a;
  const int expected = messages / 4 * 4;
  if (!Await(
          [&] {
            a = Audit(db, sink_file, dir + "/audit.out");
            return a["accepted"] == expected && a["backlog"] == 0 &&
                   a["replies_delivered"] == a["replies_queued"];
          },
          absl::Seconds(300))) {
    std::fprintf(stderr, "email_bench: the mail did not drain\n");
    return r;
  }
  r.ok = a["missing"] == 0 && a["processed_twice"] == 0;
  r.per_second = a["messages_per_second"];
  r.p50 = a["latency_p50_ms"];
  r.p99 = a["latency_p99_ms"];
  return r;
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

int Main(int argc, char** argv) {
  int rounds = 3, messages = 2000;
  std::vector<std::string> dbs = {"sqlite", "postgres"};
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a.rfind("--rounds=", 0) == 0) rounds = std::stoi(a.substr(9));
    if (a.rfind("--messages=", 0) == 0) messages = std::stoi(a.substr(11));
    if (a.rfind("--db=", 0) == 0) dbs = absl::StrSplit(a.substr(5), ',');
    // As scripts/run-benchmarks.sh and the smoke test call every benchmark.
    if (a.rfind("--benchmark_repetitions=", 0) == 0) {
      rounds = std::stoi(a.substr(24));
    }
    if (a == "--smoke") messages = 200;
  }
  std::unique_ptr<PgServer> pg;
  int failures = 0;
  for (const std::string& kind : dbs) {
    std::vector<double> rate, p50, p99;
    for (int round = 1; round <= rounds; ++round) {
      char tmpl[] = "/tmp/email-bench-XXXXXX";
      if (::mkdtemp(tmpl) == nullptr) return 1;
      const std::string dir = tmpl;
      std::string db = dir + "/mail.db";
      if (kind == "postgres") {
        if (pg == nullptr) {
          absl::StatusOr<std::unique_ptr<PgServer>> s = PgServer::Start();
          if (!s.ok()) {
            std::fprintf(stderr, "email_bench: %s\n",
                         s.status().ToString().c_str());
            return 1;
          }
          pg = *std::move(s);
        }
        const std::string name = absl::StrCat("bench", round);
        if (!pg->CreateDatabase(name).ok()) return 1;
        db = pg->Url(name);
      }
      Round r = RunRound(db, messages, dir);
      std::filesystem::remove_all(dir);
      if (!r.ok) {
        ++failures;
        std::printf("%s round %d: FAILED (see stderr)\n", kind.c_str(), round);
        continue;
      }
      std::printf(
          "%-8s round %d: %7.1f messages/s  latency p50 %6.1f ms  "
          "p99 %7.1f ms\n",
          kind.c_str(), round, r.per_second, r.p50, r.p99);
      std::fflush(stdout);
      rate.push_back(r.per_second);
      p50.push_back(r.p50);
      p99.push_back(r.p99);
    }
    std::printf(
        "%-8s median of %zu: %7.1f messages/s  latency p50 %6.1f ms  "
        "p99 %7.1f ms  (%d messages, 4 SMTP senders, 2 processors)\n",
        kind.c_str(), rate.size(), Median(rate), Median(p50), Median(p99),
        messages);
  }
  return failures == 0 ? 0 : 1;
}

}  // namespace
}  // namespace quorate::testing

int main(int argc, char** argv) { return quorate::testing::Main(argc, argv); }
