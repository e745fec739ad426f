// fence_bench: what the fence adds to a one-row write transaction, on
// SQLite (a file, the default journal and synchronous=FULL) and on
// PostgreSQL (a private server, tests/util/pg_server.h, default settings:
// fsync and synchronous_commit on, reached through its Unix socket).
//
// One connection runs transactions back to back for --seconds: BEGIN, one
// INSERT of a 200-byte row, COMMIT; the fenced ones call the adapter
// (FenceSqlite / FencePostgres, a shard fence over 64 names) first. A third
// kind runs "SELECT 1" in the fence's place: what one more statement's
// round trip costs, to say where the fence's time goes. The kinds rotate
// which goes first in each round. Prints the medians over --rounds of each
// run's mean and p99 per transaction.
//
//   fence_bench [--rounds=N] [--seconds=S] [--markdown=docs/benchmarks.md]
#include <libpq-fe.h>
#include <sqlite3.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "bench/clusters.h"
#include "quorate/fence_postgres.h"
#include "quorate/fence_sqlite.h"
#include "util/pg_server.h"

namespace {

using quorate::bench::Percentile;

// One database: how to run a statement and to fence.
struct Target {
  std::string name;
  std::function<bool(const std::string&)> exec;
  std::function<absl::Status(const quorate::Fence&)> fence;
};

// Mean and p99 of one run, in microseconds per transaction.
struct Run {
  double mean_us = 0;
  double p99_us = 0;
};

enum class Kind { kPlain, kFenced, kRoundTrip };

bool Measure(const Target& t, Kind kind, double seconds, Run* out) {
  const std::string row(200, 'x');
  std::vector<double> us;
  const absl::Time end = absl::Now() + absl::Seconds(seconds);
  for (uint64_t i = 0; absl::Now() < end; ++i) {
    const absl::Time start = absl::Now();
    if (!t.exec("BEGIN")) return false;
    if (kind == Kind::kRoundTrip && !t.exec("SELECT 1")) return false;
    if (kind == Kind::kFenced) {
      const absl::Status s = t.fence(
          quorate::ShardFence("mailboxes", static_cast<uint32_t>(i % 64), 1));
      if (!s.ok()) {
        fprintf(stderr, "%s: %s\n", t.name.c_str(), s.ToString().c_str());
        return false;
      }
    }
    if (!t.exec(absl::StrCat("INSERT INTO work (shard, body) VALUES (", i % 64,
                             ", '", row, "')")) ||
        !t.exec("COMMIT")) {
      return false;
    }
    us.push_back(absl::ToDoubleMicroseconds(absl::Now() - start));
  }
  if (us.empty()) return false;
  double sum = 0;
  for (double u : us) sum += u;
  out->mean_us = sum / static_cast<double>(us.size());
  std::sort(us.begin(), us.end());
  out->p99_us = Percentile(us, 0.99);
  return true;
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  quorate::bench::BenchArgs args;
  args.seconds = 5;
  if (!quorate::bench::ParseBenchArgs(
          argc, argv,
          "fence_bench [--rounds=N] [--seconds=S] [--markdown=FILE] "
          "[--smoke]",
          0.3, &args)) {
    return 2;
  }
  std::vector<Target> targets;

  // SQLite, in a file of its own.
  char tmpl[] = "/tmp/quorate-fence-bench-XXXXXX";
  if (::mkdtemp(tmpl) == nullptr) return 1;
  const std::string dir = tmpl;
  sqlite3* lite = nullptr;
  if (sqlite3_open((dir + "/bench.sqlite").c_str(), &lite) != SQLITE_OK) {
    return 1;
  }
  auto lite_exec = [lite](const std::string& sql) {
    return sqlite3_exec(lite, sql.c_str(), nullptr, nullptr, nullptr) ==
           SQLITE_OK;
  };
  lite_exec(
      "CREATE TABLE work (id INTEGER PRIMARY KEY, shard INTEGER, body TEXT)");
  targets.push_back(
      {"SQLite " SQLITE_VERSION, lite_exec, [lite](const quorate::Fence& f) {
         return quorate::FenceSqlite(lite, f);
       }});

  // PostgreSQL, if its server is installed.
  std::unique_ptr<quorate::testing::PgServer> pg;
  PGconn* conn = nullptr;
  if (quorate::testing::PgServer::BinDir().empty()) {
    printf("PostgreSQL server binaries not found: its rows are left out\n");
  } else {
    absl::StatusOr<std::unique_ptr<quorate::testing::PgServer>> started =
        quorate::testing::PgServer::Start();
    if (!started.ok()) {
      fprintf(stderr, "%s\n", started.status().ToString().c_str());
      return 1;
    }
    pg = *std::move(started);
    conn = PQconnectdb(pg->Conninfo().c_str());
    if (PQstatus(conn) != CONNECTION_OK) return 1;
    auto pg_exec = [conn](const std::string& sql) {
      PGresult* r = PQexec(conn, sql.c_str());
      const ExecStatusType st = PQresultStatus(r);
      if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
        fprintf(stderr, "%s: %s", sql.substr(0, 40).c_str(),
                PQresultErrorMessage(r));
      }
      PQclear(r);
      return st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK;
    };
    pg_exec(
        "CREATE TABLE work (id bigserial PRIMARY KEY, shard int, body text)");
    targets.push_back(
        {absl::StrCat("PostgreSQL ", PQserverVersion(conn) / 10000), pg_exec,
         [conn](const quorate::Fence& f) {
           return quorate::FencePostgres(conn, f);
         }});
  }

  std::string table = absl::StrFormat(
      "Machine: %s. Command: `build/tests/bench/fence_bench --rounds=%d "
      "--seconds=%g`. Medians of %d rounds; one connection, one-row write "
      "transactions back to back; plain, fenced and SELECT 1 rotating "
      "first.\n\n"
      "| database | plain txn mean us | fenced txn mean us | fence adds | "
      "a SELECT 1 adds | plain p99 us | fenced p99 us |\n"
      "|---|---|---|---|---|---|---|\n",
      quorate::bench::Machine(), args.rounds, args.seconds, args.rounds);
  for (const Target& t : targets) {
    // Per kind: each round's mean and p99.
    std::vector<double> mean[3], p99[3];
    // The fence table exists before timing (its creation is a first use's).
    Run warm;
    if (!Measure(t, Kind::kFenced, 0.1, &warm)) return 1;
    for (int round = 0; round < args.rounds; ++round) {
      for (int k = 0; k < 3; ++k) {
        const int kind = (round + k) % 3;
        Run r;
        if (!Measure(t, static_cast<Kind>(kind), args.seconds, &r)) return 1;
        mean[kind].push_back(r.mean_us);
        p99[kind].push_back(r.p99_us);
      }
    }
    const double p = Median(mean[0]), f = Median(mean[1]), rt = Median(mean[2]);
    absl::StrAppendFormat(
        &table, "| %s | %.0f | %.0f | %+.1f %% | %+.1f %% | %.0f | %.0f |\n",
        t.name, p, f, (f / p - 1) * 100, (rt / p - 1) * 100, Median(p99[0]),
        Median(p99[1]));
  }
  if (conn != nullptr) PQfinish(conn);
  sqlite3_close(lite);
  std::filesystem::remove_all(dir);
  return quorate::bench::Report(table, args.markdown, "fence_bench");
}
