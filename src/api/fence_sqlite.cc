// quorate/fence_sqlite.h: the fence rule in one SQLite statement.
#include "quorate/fence_sqlite.h"

#include <sqlite3.h>

#include <cstdint>
#include <limits>
#include <memory>

#include "absl/strings/str_cat.h"

namespace quorate {
namespace {

constexpr char kCreate[] =
    "CREATE TABLE IF NOT EXISTS quorate_fence ("
    "name TEXT PRIMARY KEY NOT NULL, epoch INTEGER NOT NULL) WITHOUT ROWID";
// The check and the raise at once: a new name is inserted, a known one
// raised only if the epoch is not below the one it holds.
constexpr char kRaise[] =
    "INSERT INTO quorate_fence (name, epoch) VALUES (?1, ?2) "
    "ON CONFLICT (name) DO UPDATE SET epoch = excluded.epoch "
    "WHERE excluded.epoch >= quorate_fence.epoch";
constexpr char kHighest[] = "SELECT epoch FROM quorate_fence WHERE name = ?1";

struct Finalize {
  void operator()(sqlite3_stmt* s) const { sqlite3_finalize(s); }
};
using Statement = std::unique_ptr<sqlite3_stmt, Finalize>;

absl::Status Error(sqlite3* db, int rc, absl::string_view what) {
  const int primary = rc & 0xff;
  if (primary == SQLITE_BUSY || primary == SQLITE_LOCKED) {
    return absl::AbortedError(absl::StrCat(
        what, ": another connection's write transaction is in the way (",
        sqlite3_errmsg(db), "); roll back and run the transaction again"));
  }
  return absl::InternalError(
      absl::StrCat(what, ": ", sqlite3_errmsg(db), " (SQLite code ", rc, ")"));
}

absl::Status Prepare(sqlite3* db, const char* sql, Statement* out) {
  sqlite3_stmt* s = nullptr;
  const int rc = sqlite3_prepare_v2(db, sql, -1, &s, nullptr);
  out->reset(s);
  if (rc != SQLITE_OK) return Error(db, rc, "fence: preparing a statement");
  return absl::OkStatus();
}

}  // namespace

absl::Status FenceSqlite(sqlite3* db, const Fence& fence) {
  if (db == nullptr) return absl::InvalidArgumentError("fence: no database");
  if (absl::Status s = CheckFence(fence, 0); !s.ok()) return s;
  if (fence.epoch >
      static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
    return absl::InvalidArgumentError(
        absl::StrCat("fence '", fence.name, "': epoch ", fence.epoch,
                     " is above what SQLite stores (2^63 - 1)"));
  }
  if (sqlite3_get_autocommit(db) != 0) {
    return absl::FailedPreconditionError(
        "fence: no transaction is open on this connection; BEGIN first, so "
        "that the fence commits or rolls back with the work it guards");
  }
  if (int rc = sqlite3_exec(db, kCreate, nullptr, nullptr, nullptr);
      rc != SQLITE_OK) {
    return Error(db, rc, "fence: creating table quorate_fence");
  }
  const auto epoch = static_cast<sqlite3_int64>(fence.epoch);
  Statement raise;
  if (absl::Status s = Prepare(db, kRaise, &raise); !s.ok()) return s;
  sqlite3_bind_text(raise.get(), 1, fence.name.data(),
                    static_cast<int>(fence.name.size()), SQLITE_TRANSIENT);
  sqlite3_bind_int64(raise.get(), 2, epoch);
  if (int rc = sqlite3_step(raise.get()); rc != SQLITE_DONE) {
    return Error(db, rc, absl::StrCat("fence '", fence.name, "'"));
  }
  if (sqlite3_changes(db) == 1) return absl::OkStatus();
  // Refused: the epoch it holds, for the message.
  Statement highest;
  if (absl::Status s = Prepare(db, kHighest, &highest); !s.ok()) return s;
  sqlite3_bind_text(highest.get(), 1, fence.name.data(),
                    static_cast<int>(fence.name.size()), SQLITE_TRANSIENT);
  const int rc = sqlite3_step(highest.get());
  if (rc != SQLITE_ROW) {
    return Error(db, rc, absl::StrCat("fence '", fence.name, "': reading"));
  }
  const auto held =
      static_cast<uint64_t>(sqlite3_column_int64(highest.get(), 0));
  absl::Status refused = CheckFence(fence, held);
  if (refused.ok()) {
    return absl::InternalError(
        absl::StrCat("fence '", fence.name, "': epoch ", fence.epoch,
                     " was not written though the table holds ", held));
  }
  return refused;
}

}  // namespace quorate
