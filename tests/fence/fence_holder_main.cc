// fence_holder: one processor of shard group "mailboxes" that writes one
// fenced row for a shard, the way a service built on Quorate would. The
// stalled-holder test (tests/cmd/stalled_holder_test.cc) runs two.
//
//   fence_holder --endpoints=H:P,... --db=sqlite:PATH|postgres:CONNINFO
//                --id=NAME --shard=N [--ttl_ms=T] [--stop] [--skip_fence]
//
// It joins the group with a session, waits until it owns the shard, opens
// a transaction, checks Owns() (printing "checked epoch=E"), and then:
// with --stop, stops itself (SIGSTOP) right there, as a GC pause or a
// frozen VM would; when continued, it fences the transaction with the
// shard's epoch, writes its row into table work (writer, epoch), and
// commits. --skip_fence leaves the fence out (the broken variant).
//
// Exit codes: 0 committed, 3 the fence was refused (rolled back), 1 any
// other failure, 2 bad flags.
#include <libpq-fe.h>
#include <signal.h>
#include <sqlite3.h>

#include <cstdio>
#include <iostream>
#include <map>
#include <memory>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "quorate/client.h"
#include "quorate/fence_postgres.h"
#include "quorate/fence_sqlite.h"
#include "quorate/shards.h"

namespace {

// A database connection: SQLite or PostgreSQL, by the --db prefix.
class Db {
 public:
  virtual ~Db() = default;
  virtual bool Exec(const std::string& sql) = 0;
  virtual std::string error() = 0;
  virtual absl::Status Fence(const quorate::Fence& f) = 0;
};

class Sqlite final : public Db {
 public:
  explicit Sqlite(const std::string& path) {
    sqlite3_open(path.c_str(), &db_);
    sqlite3_busy_timeout(db_, 10'000);
  }
  ~Sqlite() override { sqlite3_close(db_); }
  bool Exec(const std::string& sql) override {
    return sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, nullptr) ==
           SQLITE_OK;
  }
  std::string error() override { return sqlite3_errmsg(db_); }
  absl::Status Fence(const quorate::Fence& f) override {
    return quorate::FenceSqlite(db_, f);
  }

 private:
  sqlite3* db_ = nullptr;
};

class Postgres final : public Db {
 public:
  explicit Postgres(const std::string& conninfo)
      : conn_(PQconnectdb(conninfo.c_str())) {}
  ~Postgres() override { PQfinish(conn_); }
  bool Exec(const std::string& sql) override {
    PGresult* r = PQexec(conn_, sql.c_str());
    const ExecStatusType st = PQresultStatus(r);
    error_ = PQresultErrorMessage(r);
    PQclear(r);
    return st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK;
  }
  std::string error() override {
    return error_.empty() ? PQerrorMessage(conn_) : error_;
  }
  absl::Status Fence(const quorate::Fence& f) override {
    return quorate::FencePostgres(conn_, f);
  }

 private:
  PGconn* const conn_;
  std::string error_;
};

[[noreturn]] void Usage(const std::string& why) {
  std::cerr << "fence_holder: " << why << "\n";
  std::exit(2);
}

int Fail(const std::string& why) {
  std::cout << "failed: " << why << std::endl;
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  std::map<std::string, std::string> flags;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (!absl::StartsWith(arg, "--")) Usage("unexpected argument " + arg);
    const size_t eq = arg.find('=');
    flags[arg.substr(2, eq == std::string::npos ? eq : eq - 2)] =
        eq == std::string::npos ? "" : arg.substr(eq + 1);
  }
  uint32_t shard = 0;
  int64_t ttl_ms = 1000;
  if (!flags.count("endpoints") || !flags.count("db") || !flags.count("id") ||
      !absl::SimpleAtoi(flags["shard"], &shard) ||
      (flags.count("ttl_ms") && !absl::SimpleAtoi(flags["ttl_ms"], &ttl_ms))) {
    Usage("--endpoints, --db, --id and --shard are required");
  }
  const std::string id = flags["id"];
  const std::string db_flag = flags["db"];
  std::unique_ptr<Db> db;
  if (absl::StartsWith(db_flag, "sqlite:")) {
    db = std::make_unique<Sqlite>(db_flag.substr(7));
  } else if (absl::StartsWith(db_flag, "postgres:")) {
    db = std::make_unique<Postgres>(db_flag.substr(9));
  } else {
    Usage("--db is sqlite:PATH or postgres:CONNINFO");
  }

  quorate::ClientOptions co;
  co.endpoints = absl::StrSplit(flags["endpoints"], ',');
  co.timeout = absl::Seconds(10);
  absl::StatusOr<std::unique_ptr<quorate::Client>> client =
      quorate::Client::Create(co);
  if (!client.ok()) return Fail(client.status().ToString());
  quorate::ShardGroupLimits limits;
  limits.drain = absl::Milliseconds(200);
  if (absl::Status s =
          quorate::CreateShardGroup(client->get(), "mailboxes", 8, limits);
      !s.ok()) {
    return Fail(s.ToString());
  }
  quorate::SessionOptions so;
  so.ttl = absl::Milliseconds(ttl_ms);
  absl::StatusOr<std::unique_ptr<quorate::Session>> session =
      (*client)->StartSession(so);
  if (!session.ok()) return Fail(session.status().ToString());
  quorate::ShardGroupOptions go;
  go.zone = "az-a";
  absl::StatusOr<std::unique_ptr<quorate::ShardGroup>> group =
      quorate::ShardGroup::Join(client->get(), session->get(), "mailboxes", go);
  if (!group.ok()) return Fail(group.status().ToString());

  // Until the shard is ours (a predecessor's session must lapse first).
  uint64_t epoch = 0;
  const absl::Time give_up = absl::Now() + absl::Seconds(30);
  while (!(*group)->Owns(shard, &epoch)) {
    if (absl::Now() > give_up) return Fail("never owned the shard");
    absl::SleepFor(absl::Milliseconds(10));
  }
  if (!db->Exec("BEGIN")) return Fail("BEGIN: " + db->error());
  // The check at use.
  if (!(*group)->Owns(shard, &epoch)) return Fail("lost the shard");
  std::cout << "checked epoch=" << epoch << std::endl;
  if (flags.count("stop")) ::raise(SIGSTOP);  // stalls here

  const quorate::Fence fence = quorate::ShardFence("mailboxes", shard, epoch);
  if (!flags.count("skip_fence")) {
    if (absl::Status s = db->Fence(fence); !s.ok()) {
      db->Exec("ROLLBACK");
      std::cout << "refused: " << s << std::endl;
      return absl::IsFailedPrecondition(s) ? 3 : 1;
    }
  }
  if (!db->Exec(absl::StrCat("INSERT INTO work (writer, epoch) VALUES ('", id,
                             "', ", epoch, ")")) ||
      !db->Exec("COMMIT")) {
    const std::string why = db->error();
    db->Exec("ROLLBACK");
    return Fail("writing: " + why);
  }
  std::cout << "committed epoch=" << epoch << std::endl;
  return 0;
}
