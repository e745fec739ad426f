// The fence adapters (quorate/fence_sqlite.h, quorate/fence_postgres.h)
// against real databases, by the same test code: the rule, the caller's
// rollback, and two transactions fencing one name at once on separate
// connections. PostgreSQL runs as a private server (tests/util/pg_server.h);
// its tests skip, in one line, only when the server binaries are missing.
#include <gtest/gtest.h>
#include <libpq-fe.h>
#include <sqlite3.h>
#include <stdlib.h>

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "quorate/fence_postgres.h"
#include "quorate/fence_sqlite.h"
#include "util/pg_server.h"

namespace quorate {
namespace {

// One connection to the database under test.
class Conn {
 public:
  virtual ~Conn() = default;
  // Runs `sql`; false (see error()) if it failed.
  virtual bool Exec(const std::string& sql) = 0;
  virtual std::string error() = 0;
  // The first column of the first row of `sql`, as an integer; -1 if there
  // is no row (or it is NULL).
  virtual int64_t Int(const std::string& sql) = 0;
  // The adapter.
  virtual absl::Status Fence(const quorate::Fence& f) = 0;
  // A broken fence, for showing that the concurrent test can fail: it
  // reads the epoch, then writes the new one whatever is there by then.
  virtual absl::Status ReadThenWrite(const quorate::Fence& f) = 0;
};

// A database under test.
class Db {
 public:
  virtual ~Db() = default;
  virtual std::unique_ptr<Conn> Connect() = 0;
  // A query that gives 1 when table quorate_fence exists.
  virtual std::string FenceTableExists() const = 0;
  // An expression, on a row of `work`, that orders rows by when their
  // transactions committed.
  virtual std::string CommitOrder() const = 0;
  virtual std::string WorkTable() const = 0;
};

// The epoch quorate_fence holds for `name`: -1 if none (or no table).
int64_t Highest(Db& db, Conn& c, const std::string& name) {
  if (c.Int(db.FenceTableExists()) != 1) return -1;
  return c.Int(absl::StrCat("SELECT epoch FROM quorate_fence WHERE name = '",
                            name, "'"));
}

using FenceFn = std::function<absl::Status(Conn&, const quorate::Fence&)>;
absl::Status Adapter(Conn& c, const quorate::Fence& f) { return c.Fence(f); }

// One fenced transaction: BEGIN, fence, the work's row, COMMIT.
absl::Status Fenced(Conn& c, const quorate::Fence& f,
                    const FenceFn& fence = Adapter) {
  if (!c.Exec("BEGIN")) return absl::InternalError("BEGIN: " + c.error());
  absl::Status s = fence(c, f);
  if (s.ok() && !c.Exec(absl::StrCat("INSERT INTO work (name, epoch) VALUES ('",
                                     f.name, "', ", f.epoch, ")"))) {
    s = absl::AbortedError(c.error());
  }
  if (s.ok() && !c.Exec("COMMIT")) s = absl::AbortedError(c.error());
  if (!s.ok()) c.Exec("ROLLBACK");
  return s;
}

// --- SQLite ---------------------------------------------------------------

class SqliteConn final : public Conn {
 public:
  explicit SqliteConn(const std::string& path) {
    EXPECT_EQ(sqlite3_open(path.c_str(), &db_), SQLITE_OK);
    // A writer waits for another rather than failing at once, where
    // SQLite can wait (it cannot when that would deadlock: ABORTED then).
    sqlite3_busy_timeout(db_, 10'000);
  }
  ~SqliteConn() override { sqlite3_close(db_); }
  bool Exec(const std::string& sql) override {
    return sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, nullptr) ==
           SQLITE_OK;
  }
  std::string error() override { return sqlite3_errmsg(db_); }
  int64_t Int(const std::string& sql) override {
    sqlite3_stmt* s = nullptr;
    if (sqlite3_prepare_v2(db_, sql.c_str(), -1, &s, nullptr) != SQLITE_OK) {
      ADD_FAILURE() << sql << ": " << sqlite3_errmsg(db_);
      return -1;
    }
    int64_t v = -1;
    if (sqlite3_step(s) == SQLITE_ROW &&
        sqlite3_column_type(s, 0) != SQLITE_NULL) {
      v = sqlite3_column_int64(s, 0);
    }
    sqlite3_finalize(s);
    return v;
  }
  absl::Status Fence(const quorate::Fence& f) override {
    return FenceSqlite(db_, f);
  }
  absl::Status ReadThenWrite(const quorate::Fence& f) override {
    Exec(
        "CREATE TABLE IF NOT EXISTS quorate_fence (name TEXT PRIMARY KEY, "
        "epoch INTEGER NOT NULL)");
    const int64_t held = Int(absl::StrCat(
        "SELECT epoch FROM quorate_fence WHERE name = '", f.name, "'"));
    if (absl::Status s = CheckFence(f, held < 0 ? 0 : held); !s.ok()) {
      return s;
    }
    if (!Exec(absl::StrCat("INSERT OR REPLACE INTO quorate_fence VALUES ('",
                           f.name, "', ", f.epoch, ")"))) {
      return absl::AbortedError(error());
    }
    return absl::OkStatus();
  }
  sqlite3* db() { return db_; }

 private:
  sqlite3* db_ = nullptr;
};

class SqliteDb final : public Db {
 public:
  explicit SqliteDb(std::string path) : path_(std::move(path)) {}
  std::unique_ptr<Conn> Connect() override {
    return std::make_unique<SqliteConn>(path_);
  }
  std::string FenceTableExists() const override {
    return "SELECT count(*) FROM sqlite_master WHERE name = 'quorate_fence'";
  }
  // One writer at a time: rows are inserted in commit order.
  std::string CommitOrder() const override { return "id"; }
  std::string WorkTable() const override {
    return "CREATE TABLE work (id INTEGER PRIMARY KEY, name TEXT, "
           "epoch INTEGER)";
  }

 private:
  const std::string path_;
};

// --- PostgreSQL -----------------------------------------------------------

class PostgresConn final : public Conn {
 public:
  explicit PostgresConn(const std::string& conninfo)
      : conn_(PQconnectdb(conninfo.c_str())) {
    EXPECT_EQ(PQstatus(conn_), CONNECTION_OK) << PQerrorMessage(conn_);
    // The table's creation says "already exists, skipping" when another
    // transaction made it first: not on the test's output.
    PQsetNoticeProcessor(
        conn_, [](void*, const char*) {}, nullptr);
  }
  ~PostgresConn() override { PQfinish(conn_); }
  bool Exec(const std::string& sql) override {
    PGresult* r = PQexec(conn_, sql.c_str());
    const ExecStatusType st = PQresultStatus(r);
    error_ = PQresultErrorMessage(r);
    PQclear(r);
    return st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK;
  }
  std::string error() override { return error_; }
  int64_t Int(const std::string& sql) override {
    PGresult* r = PQexec(conn_, sql.c_str());
    int64_t v = -1;
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
      ADD_FAILURE() << sql << ": " << PQresultErrorMessage(r);
    } else if (PQntuples(r) > 0 && !PQgetisnull(r, 0, 0)) {
      v = std::strtoll(PQgetvalue(r, 0, 0), nullptr, 10);
    }
    PQclear(r);
    return v;
  }
  absl::Status Fence(const quorate::Fence& f) override {
    return FencePostgres(conn_, f);
  }
  absl::Status ReadThenWrite(const quorate::Fence& f) override {
    if (!Exec("CREATE TABLE IF NOT EXISTS quorate_fence (name text PRIMARY "
              "KEY, epoch bigint NOT NULL)")) {
      return absl::AbortedError(error());
    }
    const int64_t held = Int(absl::StrCat(
        "SELECT epoch FROM quorate_fence WHERE name = '", f.name, "'"));
    if (absl::Status s = CheckFence(f, held < 0 ? 0 : held); !s.ok()) {
      return s;
    }
    // The gap between the read and the write, made wide enough for the
    // other transaction to pass through it now and then.
    absl::SleepFor(absl::Milliseconds(2));
    if (!Exec(absl::StrCat("INSERT INTO quorate_fence VALUES ('", f.name, "', ",
                           f.epoch,
                           ") ON CONFLICT (name) DO UPDATE SET epoch = "
                           "EXCLUDED.epoch"))) {
      return absl::AbortedError(error());
    }
    return absl::OkStatus();
  }
  PGconn* conn() { return conn_; }

 private:
  PGconn* const conn_;
  std::string error_;
};

class PostgresDb final : public Db {
 public:
  explicit PostgresDb(std::string conninfo) : conninfo_(std::move(conninfo)) {}
  std::unique_ptr<Conn> Connect() override {
    return std::make_unique<PostgresConn>(conninfo_);
  }
  std::string FenceTableExists() const override {
    return "SELECT count(*) FROM pg_tables WHERE tablename = 'quorate_fence'";
  }
  // Row ids are taken at insert, not at commit: the commit timestamps
  // (the private server runs with track_commit_timestamp on).
  std::string CommitOrder() const override {
    return "(extract(epoch FROM pg_xact_commit_timestamp(xmin)) * "
           "1000000)::bigint";
  }
  std::string WorkTable() const override {
    return "CREATE TABLE work (id bigserial PRIMARY KEY, name text, "
           "epoch bigint)";
  }

 private:
  const std::string conninfo_;
};

// --- The tests, once per database ----------------------------------------

class FenceAdapterTest : public ::testing::TestWithParam<std::string> {
 protected:
  static void SetUpTestSuite() {
    if (testing::PgServer::BinDir().empty()) return;
    absl::StatusOr<std::unique_ptr<testing::PgServer>> s =
        testing::PgServer::Start({"track_commit_timestamp=on"});
    ASSERT_TRUE(s.ok()) << s.status();
    pg_ = s->release();
  }
  static void TearDownTestSuite() {
    delete pg_;
    pg_ = nullptr;
  }

  void SetUp() override {
    if (GetParam() == "sqlite") {
      char tmpl[] = "/tmp/quorate-fence-sqlite-XXXXXX";
      ASSERT_NE(::mkdtemp(tmpl), nullptr);
      dir_ = tmpl;
      db_ = std::make_unique<SqliteDb>(dir_ + "/db.sqlite");
    } else {
      if (testing::PgServer::BinDir().empty()) {
        GTEST_SKIP() << "PostgreSQL server binaries not found under "
                        "/usr/lib/postgresql (apt-get install postgresql)";
      }
      ASSERT_NE(pg_, nullptr);
      // A database of its own per test.
      static std::atomic<int> next{0};
      const std::string name = absl::StrCat("t", next.fetch_add(1));
      ASSERT_TRUE(pg_->CreateDatabase(name).ok());
      db_ = std::make_unique<PostgresDb>(pg_->Conninfo(name));
    }
    std::unique_ptr<Conn> c = db_->Connect();
    ASSERT_TRUE(c->Exec(db_->WorkTable())) << c->error();
  }
  void TearDown() override {
    db_.reset();
    if (!dir_.empty()) std::filesystem::remove_all(dir_);
  }

  // What concurrent rounds came to.
  struct Rounds {
    int older_first = 0;    // e committed, then e + 1
    int older_refused = 0;  // e + 1 committed; e refused
    int retries = 0;        // transactions run again after ABORTED
    std::vector<std::string> violations;  // no serial order gives these
  };
  // Two transactions on separate connections, started together, present
  // epochs e and e + 1 for one name, round after round. The outcome must
  // be that of one running after the other: e + 1 accepted and what the
  // table holds; e's work there only if it committed before e + 1's.
  Rounds Race(int rounds, const FenceFn& fence) {
    Rounds out;
    for (int round = 0; round < rounds; ++round) {
      const std::string name = absl::StrCat("mailboxes/", round);
      const uint64_t e = 10;
      std::atomic<int> ready{0};
      absl::Status result[2];
      std::atomic<int> tries{0};
      std::vector<std::thread> threads;
      for (int k = 0; k < 2; ++k) {
        threads.emplace_back([&, k] {
          std::unique_ptr<Conn> c = db_->Connect();
          ready.fetch_add(1);
          while (ready.load() < 2) {
          }
          // ABORTED: run the transaction again, as the headers say to.
          do {
            result[k] = Fenced(*c, {name, e + static_cast<uint64_t>(k)}, fence);
            tries.fetch_add(1);
          } while (absl::IsAborted(result[k]));
        });
      }
      for (auto& t : threads) t.join();
      out.retries += tries.load() - 2;
      std::unique_ptr<Conn> c = db_->Connect();
      auto order = [&](uint64_t epoch) {
        return c->Int(absl::StrCat("SELECT ", db_->CommitOrder(),
                                   " FROM work WHERE name = '", name,
                                   "' AND epoch = ", epoch));
      };
      const int64_t newer = order(e + 1);
      const int64_t older = order(e);
      const int64_t highest = Highest(*db_, *c, name);
      std::string wrong;
      if (!result[1].ok()) {
        wrong = absl::StrCat("epoch e + 1 was refused: ", result[1].ToString());
      } else if (highest != static_cast<int64_t>(e + 1)) {
        wrong = absl::StrCat("the table holds epoch ", highest,
                             ", not e + 1 = ", e + 1);
      } else if (result[0].ok() && (older < 0 || older >= newer)) {
        wrong = absl::StrCat("epoch e's work committed after epoch e + 1's (",
                             older, " vs ", newer, ")");
      } else if (!result[0].ok() &&
                 (result[0].code() != absl::StatusCode::kFailedPrecondition ||
                  older != -1)) {
        wrong = absl::StrCat("epoch e refused with ", result[0].ToString(),
                             ", its work there: ", older != -1);
      }
      if (!wrong.empty()) {
        out.violations.push_back(absl::StrCat("round ", round, ": ", wrong));
      } else if (result[0].ok()) {
        ++out.older_first;
      } else {
        ++out.older_refused;
      }
    }
    return out;
  }

  static testing::PgServer* pg_;
  std::string dir_;
  std::unique_ptr<Db> db_;
};
testing::PgServer* FenceAdapterTest::pg_ = nullptr;

TEST_P(FenceAdapterTest, TheRule_LowerRefusedEqualAndHigherAccepted) {
  std::unique_ptr<Conn> c = db_->Connect();
  ASSERT_TRUE(Fenced(*c, {"mailboxes/7", 5}).ok());
  EXPECT_EQ(Highest(*db_, *c, "mailboxes/7"), 5);
  EXPECT_TRUE(Fenced(*c, {"mailboxes/7", 5}).ok());  // the same holder
  const absl::Status lower = Fenced(*c, {"mailboxes/7", 4});
  EXPECT_EQ(lower.code(), absl::StatusCode::kFailedPrecondition) << lower;
  EXPECT_NE(lower.message().find("epoch 4 is below the highest accepted, 5"),
            std::string::npos)
      << lower;
  EXPECT_EQ(Highest(*db_, *c, "mailboxes/7"), 5);
  ASSERT_TRUE(Fenced(*c, {"mailboxes/7", 9}).ok());  // a newer holder
  EXPECT_EQ(Highest(*db_, *c, "mailboxes/7"), 9);
  // Names are independent.
  EXPECT_TRUE(Fenced(*c, {"mailboxes/8", 1}).ok());
  EXPECT_EQ(Highest(*db_, *c, "mailboxes/8"), 1);
  EXPECT_EQ(Highest(*db_, *c, "mailboxes/7"), 9);
  // Only the accepted transactions' work is there: 5, 5, 9 and 1.
  EXPECT_EQ(c->Int("SELECT count(*) FROM work"), 4);
  EXPECT_EQ(c->Int("SELECT count(*) FROM work WHERE epoch = 4"), 0);
}

TEST_P(FenceAdapterTest, OutsideATransactionNothingIsWritten) {
  std::unique_ptr<Conn> c = db_->Connect();
  const absl::Status s = c->Fence({"lock/billing", 3});
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << s;
  EXPECT_NE(s.message().find("BEGIN first"), std::string::npos) << s;
  EXPECT_EQ(Highest(*db_, *c, "lock/billing"), -1);  // not even the table
  ASSERT_TRUE(c->Exec("BEGIN"));
  EXPECT_EQ(c->Fence({"lock/billing", 0}).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(c->Fence({"", 1}).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(c->Fence({"lock/billing", uint64_t{1} << 63}).code(),
            absl::StatusCode::kInvalidArgument);
  ASSERT_TRUE(c->Exec("ROLLBACK"));
  EXPECT_EQ(FenceSqlite(nullptr, {"lock/billing", 1}).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(FencePostgres(nullptr, {"lock/billing", 1}).code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_P(FenceAdapterTest, TheCallersRollbackAlsoRollsBackTheRaise) {
  std::unique_ptr<Conn> c = db_->Connect();
  // The first use creates the table; rolled back, it is gone again.
  ASSERT_TRUE(c->Exec("BEGIN"));
  ASSERT_TRUE(c->Fence({"election/leader", 3}).ok());
  ASSERT_TRUE(c->Exec("ROLLBACK"));
  EXPECT_EQ(Highest(*db_, *c, "election/leader"), -1);
  ASSERT_TRUE(Fenced(*c, {"election/leader", 3}).ok());
  // A raise to 8 and its work, rolled back by the caller: 3 stays.
  ASSERT_TRUE(c->Exec("BEGIN"));
  ASSERT_TRUE(c->Fence({"election/leader", 8}).ok());
  ASSERT_TRUE(c->Exec("INSERT INTO work (name, epoch) VALUES ('x', 8)"));
  EXPECT_EQ(Highest(*db_, *c, "election/leader"), 8);  // inside it
  ASSERT_TRUE(c->Exec("ROLLBACK"));
  EXPECT_EQ(Highest(*db_, *c, "election/leader"), 3);
  EXPECT_EQ(c->Int("SELECT count(*) FROM work WHERE epoch = 8"), 0);
  // So the old holder's epoch is still good.
  EXPECT_TRUE(Fenced(*c, {"election/leader", 3}).ok());
}

// A fence table dropped by hand is made again: at most one transaction
// is refused with ABORTED (PostgreSQL's adapter remembers the table it saw;
// the statement that finds it gone ends the transaction), and run again it
// succeeds.
TEST_P(FenceAdapterTest, ADroppedFenceTableIsMadeAgain) {
  std::unique_ptr<Conn> c = db_->Connect();
  ASSERT_TRUE(Fenced(*c, {"mailboxes/1", 4}).ok());
  ASSERT_TRUE(Fenced(*c, {"mailboxes/1", 4}).ok());  // seen committed
  ASSERT_TRUE(c->Exec("DROP TABLE quorate_fence")) << c->error();
  absl::Status s = Fenced(*c, {"mailboxes/1", 2});
  if (absl::IsAborted(s)) {
    EXPECT_NE(s.message().find("run the transaction again"), std::string::npos)
        << s;
    s = Fenced(*c, {"mailboxes/1", 2});
  }
  EXPECT_TRUE(s.ok()) << s;
  EXPECT_EQ(Highest(*db_, *c, "mailboxes/1"), 2);
}

TEST_P(FenceAdapterTest, ConcurrentTransactionsActAsOneAfterTheOther) {
  // The table exists before the rounds (its first creation is tested
  // above), so that every round races on the row.
  {
    std::unique_ptr<Conn> c = db_->Connect();
    ASSERT_TRUE(Fenced(*c, {"warm-up", 1}).ok());
  }
  const Rounds r = Race(200, Adapter);
  for (const std::string& v : r.violations) ADD_FAILURE() << v;
  // Both orders are possible; what matters is that each round was one.
  std::printf(
      "%s: 200 rounds; epoch e first %d, refused after e + 1 %d; %d "
      "transactions run again after ABORTED\n",
      GetParam().c_str(), r.older_first, r.older_refused, r.retries);
}

// The check above can fail: a fence that reads the epoch and then writes
// (two statements, with a gap) loses updates under PostgreSQL's READ
// COMMITTED, and the rounds see it. SQLite runs one writer at a time and
// refuses to upgrade a stale read, so even that fence is serial there.
TEST_P(FenceAdapterTest, ConcurrentCheck_CatchesAReadThenWriteFence) {
  if (GetParam() == "sqlite") {
    GTEST_SKIP() << "SQLite serializes writers: a read-then-write fence "
                    "loses nothing there";
  }
  {
    std::unique_ptr<Conn> c = db_->Connect();
    ASSERT_TRUE(Fenced(*c, {"warm-up", 1}).ok());
  }
  const Rounds r = Race(
      100, [](Conn& c, const quorate::Fence& f) { return c.ReadThenWrite(f); });
  EXPECT_FALSE(r.violations.empty())
      << "100 rounds of a read-then-write fence, and no lost update";
  if (!r.violations.empty()) {
    std::printf("read-then-write: %zu of 100 rounds wrong; first: %s\n",
                r.violations.size(), r.violations.front().c_str());
  }
}

INSTANTIATE_TEST_SUITE_P(Databases, FenceAdapterTest,
                         ::testing::Values("sqlite", "postgres"),
                         [](const auto& param_info) {
                           return param_info.param;
                         });

}  // namespace
}  // namespace quorate
