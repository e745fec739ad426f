// Links the installed component fence_sqlite the way a service would:
// fences a transaction on an in-memory SQLite database, then is refused a
// lower epoch for the same shard.
#include <sqlite3.h>

#include <iostream>

#include "quorate/fence_sqlite.h"

int main() {
  sqlite3* db = nullptr;
  if (sqlite3_open(":memory:", &db) != SQLITE_OK) return 1;
  sqlite3_exec(db, "BEGIN", nullptr, nullptr, nullptr);
  const absl::Status accepted =
      quorate::FenceSqlite(db, quorate::ShardFence("mailboxes", 7, 2));
  sqlite3_exec(db, "COMMIT", nullptr, nullptr, nullptr);
  sqlite3_exec(db, "BEGIN", nullptr, nullptr, nullptr);
  const absl::Status refused =
      quorate::FenceSqlite(db, quorate::ShardFence("mailboxes", 7, 1));
  sqlite3_exec(db, "ROLLBACK", nullptr, nullptr, nullptr);
  sqlite3_close(db);
  std::cout << "fence_sqlite: " << refused << "\n";
  return accepted.ok() && absl::IsFailedPrecondition(refused) ? 0 : 1;
}
