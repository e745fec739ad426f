// quorate/fence_sqlite.h: the fence rule (quorate/fence.h) inside a
// SQLite transaction. The installed package's component fence_sqlite:
//
//   find_package(quorate CONFIG REQUIRED COMPONENTS fence_sqlite)
//   target_link_libraries(my_service PRIVATE quorate::fence_sqlite)
//
//   sqlite3_exec(db, "BEGIN", ...);
//   absl::Status s = quorate::FenceSqlite(db, fence);   // first
//   if (!s.ok()) { sqlite3_exec(db, "ROLLBACK", ...); return s; }
//   ... the work's own writes ...
//   sqlite3_exec(db, "COMMIT", ...);
//
// The check and the raise of the fence's epoch are one statement in the
// caller's transaction, on table quorate_fence (created on first use): they
// commit or roll back with the caller's writes, and SQLite runs one writer
// at a time, so two transactions fencing one name act as if one ran after
// the other. A holder stalled after its own check (a GC pause, SIGSTOP)
// that commits after its successor's fenced write is refused.
#ifndef QUORATE_FENCE_SQLITE_H_
#define QUORATE_FENCE_SQLITE_H_

#include "absl/status/status.h"
#include "quorate/fence.h"

struct sqlite3;

namespace quorate {

// Accepts `fence` (OK: quorate_fence now holds its epoch for its name) or
// refuses it with CheckFence's FAILED_PRECONDITION: then roll back. Also:
// FAILED_PRECONDITION when no transaction is open on `db` (BEGIN first);
// ABORTED when another connection's write transaction is in the way
// (SQLITE_BUSY: after the connection's busy timeout, or at once where
// waiting could not help, as when this transaction read a snapshot that
// another's commit made stale in WAL mode): roll back and run the
// transaction again; INVALID_ARGUMENT for a fence CheckFence refuses as
// invalid, or an epoch above 2^63 - 1; INTERNAL for any other SQLite error.
absl::Status FenceSqlite(sqlite3* db, const Fence& fence);

}  // namespace quorate

#endif  // QUORATE_FENCE_SQLITE_H_
