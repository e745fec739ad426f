// The stalled holder, on real processes and real databases: processor A
// owns shard 7 at epoch e, checks Owns(), opens its transaction and is
// stopped (SIGSTOP) before it writes. Its session lapses; processor B
// takes shard 7 at a higher epoch and commits its row. A is continued
// (SIGCONT) and tries to commit. The fence must refuse A, so that the table
// holds only B's write after B's takeover. The broken variant leaves the
// fence out, and A's late write lands: the lost update the fence prevents,
// shown so that the test is seen to fail without it.
#include <libpq-fe.h>
#include <signal.h>
#include <sqlite3.h>

#include <fstream>
#include <memory>
#include <regex>
#include <string>
#include <tuple>

#include "absl/strings/str_cat.h"
#include "cmd/node_processes.h"
#include "util/pg_server.h"

namespace quorate::testing {
namespace {

// The single-character state of process `pid` ('T' when stopped).
char ProcessState(pid_t pid) {
  std::ifstream in(absl::StrCat("/proc/", pid, "/stat"));
  std::string stat((std::istreambuf_iterator<char>(in)),
                   std::istreambuf_iterator<char>());
  const size_t paren = stat.rfind(')');
  return paren == std::string::npos || paren + 2 >= stat.size()
             ? '?'
             : stat[paren + 2];
}

// The epoch a holder printed after "what=" in its log; 0 if none yet.
uint64_t Printed(const std::string& log, const std::string& what) {
  std::smatch m;
  const std::string text = ReadAll(log);
  if (!std::regex_search(text, m, std::regex(what + "=([0-9]+)"))) return 0;
  return std::stoull(m[1]);
}

// (database, fenced): the broken variant is fenced = false.
class StalledHolderTest
    : public QuorateNodeTest,
      public ::testing::WithParamInterface<std::tuple<std::string, bool>> {
 protected:
  static void SetUpTestSuite() {
    if (PgServer::BinDir().empty()) return;
    absl::StatusOr<std::unique_ptr<PgServer>> s = PgServer::Start();
    ASSERT_TRUE(s.ok()) << s.status();
    pg_ = s->release();
  }
  static void TearDownTestSuite() {
    delete pg_;
    pg_ = nullptr;
  }

  // The --db flag of the holders, with table work made.
  std::string Database() {
    const std::string& kind = std::get<0>(GetParam());
    if (kind == "sqlite") {
      const std::string path = root_ + "/work.sqlite";
      sqlite3* db = nullptr;
      EXPECT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
      EXPECT_EQ(sqlite3_exec(db,
                             "CREATE TABLE work (id INTEGER PRIMARY KEY, "
                             "writer TEXT, epoch INTEGER)",
                             nullptr, nullptr, nullptr),
                SQLITE_OK);
      sqlite3_close(db);
      return "sqlite:" + path;
    }
    static int next = 0;
    const std::string name = absl::StrCat("stalled", next++);
    EXPECT_TRUE(pg_->CreateDatabase(name).ok());
    PGconn* c = PQconnectdb(pg_->Conninfo(name).c_str());
    PGresult* r = PQexec(c,
                         "CREATE TABLE work (id bigserial PRIMARY KEY, "
                         "writer text, epoch bigint)");
    EXPECT_EQ(PQresultStatus(r), PGRES_COMMAND_OK) << PQresultErrorMessage(r);
    PQclear(r);
    PQfinish(c);
    return "postgres:" + pg_->Conninfo(name);
  }

  // The rows of table work, in commit order: "writer@epoch ...".
  std::string Rows(const std::string& db) {
    std::string out;
    if (db.rfind("sqlite:", 0) == 0) {
      sqlite3* s = nullptr;
      sqlite3_open(db.substr(7).c_str(), &s);
      sqlite3_stmt* st = nullptr;
      sqlite3_prepare_v2(s, "SELECT writer, epoch FROM work ORDER BY id", -1,
                         &st, nullptr);
      while (sqlite3_step(st) == SQLITE_ROW) {
        absl::StrAppend(
            &out, out.empty() ? "" : " ",
            reinterpret_cast<const char*>(sqlite3_column_text(st, 0)), "@",
            sqlite3_column_int64(st, 1));
      }
      sqlite3_finalize(st);
      sqlite3_close(s);
      return out;
    }
    PGconn* c = PQconnectdb(db.substr(9).c_str());
    // A row's transaction id orders commits here: A's insert comes after
    // B's commit in every run that writes it.
    PGresult* r =
        PQexec(c, "SELECT writer, epoch FROM work ORDER BY xmin::text::bigint");
    for (int i = 0; i < PQntuples(r); ++i) {
      absl::StrAppend(&out, out.empty() ? "" : " ", PQgetvalue(r, i, 0), "@",
                      PQgetvalue(r, i, 1));
    }
    PQclear(r);
    PQfinish(c);
    return out;
  }

  std::unique_ptr<Process> Holder(const std::string& id, const std::string& db,
                                  std::vector<std::string> extra) {
    std::vector<std::string> args = {
        FENCE_HOLDER_BINARY, "--endpoints=" + Endpoints(),
        "--db=" + db,        "--id=" + id,
        "--shard=7",         "--ttl_ms=1000"};
    args.insert(args.end(), extra.begin(), extra.end());
    return std::make_unique<Process>(args, root_ + "/" + id + ".log");
  }

  static PgServer* pg_;
};
PgServer* StalledHolderTest::pg_ = nullptr;

TEST_P(StalledHolderTest, TheStalledHoldersLateWrite) {
  const auto& [kind, fenced] = GetParam();
  if (kind == "postgres" && PgServer::BinDir().empty()) {
    GTEST_SKIP() << "PostgreSQL server binaries not found under "
                    "/usr/lib/postgresql (apt-get install postgresql)";
  }
  Define(3);
  for (auto& [name, m] : members_) Start(name);
  ASSERT_FALSE(AwaitLeader().empty());
  const std::string db = Database();
  std::vector<std::string> a_flags = {"--stop"};
  if (!fenced) a_flags.push_back("--skip_fence");
  std::unique_ptr<Process> a = Holder("A", db, a_flags);
  // A owns shard 7, checked it in its open transaction, and stopped.
  ASSERT_TRUE(
      Await([&] { return ProcessState(a->pid()) == 'T'; }, absl::Seconds(30)))
      << ReadAll(root_ + "/A.log");
  const uint64_t e = Printed(root_ + "/A.log", "checked epoch");
  ASSERT_GT(e, 0u) << ReadAll(root_ + "/A.log");
  // B takes shard 7 once A's session lapsed, and commits its row.
  std::unique_ptr<Process> b = Holder("B", db, {});
  ASSERT_EQ(b->Wait(absl::Seconds(60)), 0) << ReadAll(root_ + "/B.log");
  const uint64_t b_epoch = Printed(root_ + "/B.log", "committed epoch");
  ASSERT_GT(b_epoch, e) << ReadAll(root_ + "/B.log");
  // A wakes and tries to commit what it checked before the takeover.
  a->Signal(SIGCONT);
  const std::optional<int> a_exit = a->Wait(absl::Seconds(60));
  const std::string a_log = ReadAll(root_ + "/A.log");
  const std::string rows = Rows(db);
  const std::string b_row = absl::StrCat("B@", b_epoch);
  const std::string a_row = absl::StrCat("A@", e);
  if (fenced) {
    EXPECT_EQ(a_exit, 3) << a_log;
    EXPECT_NE(a_log.find(absl::StrCat("epoch ", e,
                                      " is below the highest "
                                      "accepted, ",
                                      b_epoch)),
              std::string::npos)
        << a_log;
    EXPECT_EQ(rows, b_row) << "only B's write after B's takeover";
  } else {
    // Without the fence A's write lands after B's: the lost update.
    EXPECT_EQ(a_exit, 0) << a_log;
    EXPECT_EQ(rows, absl::StrCat(b_row, " ", a_row))
        << "the broken variant did not show the late write";
  }
}

INSTANTIATE_TEST_SUITE_P(Databases, StalledHolderTest,
                         ::testing::Combine(::testing::Values("sqlite",
                                                              "postgres"),
                                            ::testing::Bool()),
                         [](const auto& param_info) {
                           return absl::StrCat(std::get<0>(param_info.param),
                                               std::get<1>(param_info.param)
                                                   ? "_Fenced"
                                                   : "_BrokenNoFence");
                         });

}  // namespace
}  // namespace quorate::testing
