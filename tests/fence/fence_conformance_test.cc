// quorate/fence_sqlite.h against SQLite files: the rule, the caller's
// rollback, and two transactions fencing one name at once on separate
// connections.
#include "quorate/fence_sqlite.h"

#include <gtest/gtest.h>
#include <sqlite3.h>
#include <stdlib.h>

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"

namespace quorate {
namespace {

// One connection, closed when destroyed.
class Connection {
 public:
  explicit Connection(const std::string& path) {
    EXPECT_EQ(sqlite3_open(path.c_str(), &db_), SQLITE_OK);
    // A writer waits for another rather than failing at once, where
    // SQLite can wait (it cannot when that would deadlock: ABORTED then).
    sqlite3_busy_timeout(db_, 10'000);
  }
  ~Connection() { sqlite3_close(db_); }
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  sqlite3* db() { return db_; }
  int Exec(const std::string& sql) {
    return sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, nullptr);
  }
  // The first column of the first row of `sql` (-1: no row).
  int64_t Int(const std::string& sql) {
    sqlite3_stmt* s = nullptr;
    EXPECT_EQ(sqlite3_prepare_v2(db_, sql.c_str(), -1, &s, nullptr), SQLITE_OK)
        << sqlite3_errmsg(db_);
    int64_t v = -1;
    if (sqlite3_step(s) == SQLITE_ROW) v = sqlite3_column_int64(s, 0);
    sqlite3_finalize(s);
    return v;
  }
  // The epoch quorate_fence holds for `name` (-1: none, or no table).
  int64_t Highest(const std::string& name) {
    if (Int("SELECT count(*) FROM sqlite_master WHERE name = "
            "'quorate_fence'") != 1) {
      return -1;
    }
    return Int(absl::StrCat("SELECT epoch FROM quorate_fence WHERE name = '",
                            name, "'"));
  }
  // One fenced transaction: BEGIN, fence, the work's row, COMMIT.
  absl::Status Fenced(const Fence& f) {
    if (Exec("BEGIN") != SQLITE_OK) return absl::InternalError("BEGIN");
    absl::Status s = FenceSqlite(db_, f);
    if (s.ok() &&
        Exec(absl::StrCat("INSERT INTO work (name, epoch) VALUES ('", f.name,
                          "', ", f.epoch, ")")) != SQLITE_OK) {
      s = absl::AbortedError(sqlite3_errmsg(db_));
    }
    if (s.ok() && Exec("COMMIT") != SQLITE_OK) {
      s = absl::AbortedError(sqlite3_errmsg(db_));
    }
    if (!s.ok()) Exec("ROLLBACK");
    return s;
  }

 private:
  sqlite3* db_ = nullptr;
};

class FenceSqliteTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/quorate-fence-sqlite-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    path_ = dir_ + "/db.sqlite";
    Connection c(path_);
    ASSERT_EQ(c.Exec("CREATE TABLE work (id INTEGER PRIMARY KEY, name TEXT, "
                     "epoch INTEGER)"),
              SQLITE_OK);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::string dir_;
  std::string path_;
};

TEST_F(FenceSqliteTest, TheRule_LowerRefusedEqualAndHigherAccepted) {
  Connection c(path_);
  ASSERT_TRUE(c.Fenced({"mailboxes/7", 5}).ok());
  EXPECT_EQ(c.Highest("mailboxes/7"), 5);
  EXPECT_TRUE(c.Fenced({"mailboxes/7", 5}).ok());  // the same holder
  const absl::Status lower = c.Fenced({"mailboxes/7", 4});
  EXPECT_EQ(lower.code(), absl::StatusCode::kFailedPrecondition) << lower;
  EXPECT_NE(lower.message().find("epoch 4 is below the highest accepted, 5"),
            std::string::npos)
      << lower;
  EXPECT_EQ(c.Highest("mailboxes/7"), 5);
  ASSERT_TRUE(c.Fenced({"mailboxes/7", 9}).ok());  // a newer holder
  EXPECT_EQ(c.Highest("mailboxes/7"), 9);
  // Names are independent.
  EXPECT_TRUE(c.Fenced({"mailboxes/8", 1}).ok());
  EXPECT_EQ(c.Highest("mailboxes/8"), 1);
  EXPECT_EQ(c.Highest("mailboxes/7"), 9);
  // Only the accepted transactions' work is there: 5, 5, 9 and 1.
  EXPECT_EQ(c.Int("SELECT count(*) FROM work"), 4);
  EXPECT_EQ(c.Int("SELECT count(*) FROM work WHERE epoch = 4"), 0);
}

TEST_F(FenceSqliteTest, OutsideATransactionNothingIsWritten) {
  Connection c(path_);
  const absl::Status s = FenceSqlite(c.db(), {"lock/billing", 3});
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << s;
  EXPECT_NE(s.message().find("BEGIN first"), std::string::npos) << s;
  EXPECT_EQ(c.Highest("lock/billing"), -1);  // not even the table
  ASSERT_EQ(c.Exec("BEGIN"), SQLITE_OK);
  EXPECT_EQ(FenceSqlite(c.db(), {"lock/billing", 0}).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(FenceSqlite(c.db(), {"", 1}).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(FenceSqlite(c.db(), {"lock/billing", uint64_t{1} << 63}).code(),
            absl::StatusCode::kInvalidArgument);
  ASSERT_EQ(c.Exec("ROLLBACK"), SQLITE_OK);
  EXPECT_EQ(FenceSqlite(nullptr, {"lock/billing", 1}).code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(FenceSqliteTest, TheCallersRollbackAlsoRollsBackTheRaise) {
  Connection c(path_);
  // The first use creates the table; rolled back, it is gone again.
  ASSERT_EQ(c.Exec("BEGIN"), SQLITE_OK);
  ASSERT_TRUE(FenceSqlite(c.db(), {"election/leader", 3}).ok());
  ASSERT_EQ(c.Exec("ROLLBACK"), SQLITE_OK);
  EXPECT_EQ(c.Highest("election/leader"), -1);
  ASSERT_TRUE(c.Fenced({"election/leader", 3}).ok());
  // A raise to 8 and its work, rolled back by the caller: 3 stays.
  ASSERT_EQ(c.Exec("BEGIN"), SQLITE_OK);
  ASSERT_TRUE(FenceSqlite(c.db(), {"election/leader", 8}).ok());
  ASSERT_EQ(c.Exec("INSERT INTO work (name, epoch) VALUES ('x', 8)"),
            SQLITE_OK);
  EXPECT_EQ(c.Highest("election/leader"), 8);  // inside the transaction
  ASSERT_EQ(c.Exec("ROLLBACK"), SQLITE_OK);
  EXPECT_EQ(c.Highest("election/leader"), 3);
  EXPECT_EQ(c.Int("SELECT count(*) FROM work WHERE epoch = 8"), 0);
  // So the old holder's epoch is still good.
  EXPECT_TRUE(c.Fenced({"election/leader", 3}).ok());
}

// Two transactions on separate connections, started together, present
// epochs e and e + 1 for one name, round after round. Whatever the
// interleaving, the outcome is that of one running after the other: e + 1
// is accepted and is what the table holds; e's work is there only if it
// committed before e + 1's (its row comes first), never after.
TEST_F(FenceSqliteTest, ConcurrentTransactionsActAsOneAfterTheOther) {
  constexpr int kRounds = 200;
  int older_first = 0, older_refused = 0, retries = 0;
  for (int round = 0; round < kRounds; ++round) {
    const std::string name = absl::StrCat("mailboxes/", round);
    const uint64_t e = 10;
    std::atomic<int> ready{0};
    absl::Status result[2];
    std::vector<std::thread> threads;
    std::atomic<int> tries{0};
    for (int k = 0; k < 2; ++k) {
      threads.emplace_back([&, k] {
        Connection c(path_);
        ready.fetch_add(1);
        while (ready.load() < 2) {
        }
        // ABORTED (SQLite refused to wait, as that would deadlock): run
        // the transaction again, as the header says to.
        do {
          result[k] = c.Fenced({name, e + static_cast<uint64_t>(k)});
          tries.fetch_add(1);
        } while (absl::IsAborted(result[k]));
      });
    }
    for (auto& t : threads) t.join();
    retries += tries.load() - 2;
    Connection c(path_);
    ASSERT_TRUE(result[1].ok()) << "round " << round << ": " << result[1];
    ASSERT_EQ(c.Highest(name), static_cast<int64_t>(e + 1)) << round;
    const int64_t newer_row = c.Int(absl::StrCat(
        "SELECT id FROM work WHERE name = '", name, "' AND epoch = ", e + 1));
    const int64_t older_row = c.Int(absl::StrCat(
        "SELECT id FROM work WHERE name = '", name, "' AND epoch = ", e));
    if (result[0].ok()) {
      ASSERT_NE(older_row, -1) << round;
      ASSERT_LT(older_row, newer_row)
          << "round " << round << ": epoch " << e
          << "'s work committed after epoch " << e + 1 << "'s";
      ++older_first;
    } else {
      ASSERT_EQ(result[0].code(), absl::StatusCode::kFailedPrecondition)
          << round << ": " << result[0];
      ASSERT_EQ(older_row, -1) << round;
      ++older_refused;
    }
  }
  // Both orders are possible; what matters is that each round was one.
  std::printf(
      "rounds: %d; epoch e first %d, refused after e + 1 %d; %d "
      "transactions run again after ABORTED\n",
      kRounds, older_first, older_refused, retries);
}

}  // namespace
}  // namespace quorate
