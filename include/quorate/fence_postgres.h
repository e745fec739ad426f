// quorate/fence_postgres.h: the fence rule (quorate/fence.h) inside a
// PostgreSQL transaction, through libpq. The installed package's component
// fence_postgres:
//
//   find_package(quorate CONFIG REQUIRED COMPONENTS fence_postgres)
//   target_link_libraries(my_service PRIVATE quorate::fence_postgres)
//
//   PQexec(conn, "BEGIN");
//   absl::Status s = quorate::FencePostgres(conn, fence);  // first
//   if (!s.ok()) { PQexec(conn, "ROLLBACK"); return s; }
//   ... the work's own writes ...
//   PQexec(conn, "COMMIT");
//
// The check and the raise of the fence's epoch are one statement in the
// caller's transaction (an INSERT ... ON CONFLICT DO UPDATE whose WHERE
// refuses a lower epoch), on table quorate_fence in the connection's
// search path, created on first use. They commit or roll back with the
// caller's writes. Two transactions fencing one name serialize on its row:
// the second waits for the first to end, then is judged against what the
// first committed, at PostgreSQL's default isolation (READ COMMITTED) and
// above. A holder stalled after its own check (a GC pause, SIGSTOP) that
// resumes after its successor's fenced write is refused.
//
// Cost: one round trip and one row written per fenced transaction
// (tests/bench/fence_bench). The table's presence is remembered per
// process, by host, port, database and user: a connection of those with
// another search_path may see one ABORTED the first time (run it again).
#ifndef QUORATE_FENCE_POSTGRES_H_
#define QUORATE_FENCE_POSTGRES_H_

#include "absl/status/status.h"
#include "quorate/fence.h"

typedef struct pg_conn PGconn;  // libpq's connection

namespace quorate {

// Accepts `fence` (OK: quorate_fence now holds its epoch for its name, in
// this transaction) or refuses it with CheckFence's FAILED_PRECONDITION:
// then roll back. Also:
// - FAILED_PRECONDITION when no transaction is open on `conn` (BEGIN
//   first), or the open one already failed (roll it back);
// - ABORTED when PostgreSQL ended the transaction to resolve a conflict
//   (a serialization failure at REPEATABLE READ or SERIALIZABLE, or a
//   deadlock): roll back and run the transaction again;
// - UNAVAILABLE when the connection is broken;
// - INVALID_ARGUMENT for a fence CheckFence refuses as invalid, or an
//   epoch above 2^63 - 1 (a bigint holds the epoch);
// - INTERNAL for any other error, with its SQLSTATE.
// Not thread-safe for one `conn` (nor is libpq).
absl::Status FencePostgres(PGconn* conn, const Fence& fence);

}  // namespace quorate

#endif  // QUORATE_FENCE_POSTGRES_H_
