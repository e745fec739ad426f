// quorate/fence_postgres.h: the fence rule in one PostgreSQL statement.
#include "quorate/fence_postgres.h"

#include <libpq-fe.h>

#include <cstdint>
#include <limits>
#include <memory>
#include <mutex>
#include <set>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace quorate {
namespace {

// Serializes the table's creation between transactions that meet it
// missing (two CREATE TABLE IF NOT EXISTS at once can both try to create
// it). Held until the creating transaction ends. The number is "quorate"
// in ASCII.
constexpr char kCreate[] =
    "SELECT pg_advisory_xact_lock(8243102639211226469); "
    "CREATE TABLE IF NOT EXISTS quorate_fence ("
    "name text PRIMARY KEY, epoch bigint NOT NULL CHECK (epoch > 0))";
constexpr char kExists[] = "SELECT to_regclass('quorate_fence') IS NOT NULL";
// The check and the raise at once: a new name is inserted, a known one
// raised only if the epoch is not below the one it holds (judged against
// the latest committed row: ON CONFLICT locks it, waiting for a
// transaction that holds it). A row back means accepted.
constexpr char kRaise[] =
    "INSERT INTO quorate_fence AS f (name, epoch) VALUES ($1, $2) "
    "ON CONFLICT (name) DO UPDATE SET epoch = EXCLUDED.epoch "
    "WHERE f.epoch <= EXCLUDED.epoch RETURNING 1";
constexpr char kHighest[] = "SELECT epoch FROM quorate_fence WHERE name = $1";

struct Clear {
  void operator()(PGresult* r) const { PQclear(r); }
};
using Result = std::unique_ptr<PGresult, Clear>;

// The databases where the table was seen committed (so it need not be
// looked for again), by where the connection goes.
std::mutex known_mu;
std::set<std::string>& Known() {
  static auto* known = new std::set<std::string>;
  return *known;
}
std::string Where(PGconn* conn) {
  auto str = [](const char* s) { return s == nullptr ? "" : s; };
  return absl::StrCat(str(PQhost(conn)), ":", str(PQport(conn)), "/",
                      str(PQdb(conn)), "/", str(PQuser(conn)));
}

absl::Status Error(PGconn* conn, const PGresult* r, absl::string_view what) {
  if (PQstatus(conn) == CONNECTION_BAD) {
    return absl::UnavailableError(absl::StrCat(
        what,
        ": the connection to PostgreSQL is broken: ", PQerrorMessage(conn)));
  }
  const char* state =
      r == nullptr ? nullptr : PQresultErrorField(r, PG_DIAG_SQLSTATE);
  const std::string code = state == nullptr ? "" : state;
  const std::string message =
      r == nullptr ? PQerrorMessage(conn) : PQresultErrorMessage(r);
  if (code == "40001" || code == "40P01") {
    return absl::AbortedError(absl::StrCat(
        what, ": PostgreSQL ended the transaction to resolve a conflict (",
        code, ": ", message, "); roll back and run the transaction again"));
  }
  if (code == "25P02") {
    return absl::FailedPreconditionError(
        absl::StrCat(what, ": the transaction already failed; roll it back"));
  }
  return absl::InternalError(
      absl::StrCat(what, ": ", message, " (SQLSTATE ", code, ")"));
}

// Runs `sql` with text parameters; the result if it has the status wanted.
absl::StatusOr<Result> Run(PGconn* conn, const char* sql,
                           std::initializer_list<const char*> params,
                           ExecStatusType wanted, absl::string_view what) {
  const char* values[2] = {nullptr, nullptr};
  int n = 0;
  for (const char* p : params) values[n++] = p;
  Result r(params.size() == 0 ? PQexec(conn, sql)
                              : PQexecParams(conn, sql, n, nullptr, values,
                                             nullptr, nullptr, 0));
  if (r == nullptr || PQresultStatus(r.get()) != wanted) {
    return Error(conn, r.get(), what);
  }
  return r;
}

// Makes sure quorate_fence exists for this transaction.
absl::Status EnsureTable(PGconn* conn) {
  const std::string where = Where(conn);
  {
    std::lock_guard<std::mutex> lock(known_mu);
    if (Known().count(where) > 0) return absl::OkStatus();
  }
  absl::StatusOr<Result> exists = Run(conn, kExists, {}, PGRES_TUPLES_OK,
                                      "fence: looking for quorate_fence");
  if (!exists.ok()) return exists.status();
  if (PQgetvalue(exists->get(), 0, 0)[0] == 't') {
    // Committed by someone: it stays (until dropped by hand).
    std::lock_guard<std::mutex> lock(known_mu);
    Known().insert(where);
    return absl::OkStatus();
  }
  // Created in this transaction, so not remembered: the caller may roll
  // it back.
  return Run(conn, kCreate, {}, PGRES_COMMAND_OK,
             "fence: creating table quorate_fence")
      .status();
}

}  // namespace

absl::Status FencePostgres(PGconn* conn, const Fence& fence) {
  if (conn == nullptr) return absl::InvalidArgumentError("fence: no database");
  if (absl::Status s = CheckFence(fence, 0); !s.ok()) return s;
  if (fence.epoch >
      static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
    return absl::InvalidArgumentError(
        absl::StrCat("fence '", fence.name, "': epoch ", fence.epoch,
                     " is above what a bigint holds (2^63 - 1)"));
  }
  switch (PQtransactionStatus(conn)) {
    case PQTRANS_INTRANS:
      break;
    case PQTRANS_IDLE:
      return absl::FailedPreconditionError(
          "fence: no transaction is open on this connection; BEGIN first, "
          "so that the fence commits or rolls back with the work it guards");
    case PQTRANS_INERROR:
      return absl::FailedPreconditionError(
          "fence: the transaction on this connection already failed; roll "
          "it back");
    case PQTRANS_ACTIVE:
      return absl::FailedPreconditionError(
          "fence: a command is in progress on this connection");
    case PQTRANS_UNKNOWN:
      return absl::UnavailableError(
          absl::StrCat("fence: the connection to PostgreSQL is broken: ",
                       PQerrorMessage(conn)));
  }
  if (absl::Status s = EnsureTable(conn); !s.ok()) return s;
  const std::string epoch = absl::StrCat(fence.epoch);
  const std::string what = absl::StrCat("fence '", fence.name, "'");
  absl::StatusOr<Result> raised = Run(
      conn, kRaise, {fence.name.c_str(), epoch.c_str()}, PGRES_TUPLES_OK, what);
  if (!raised.ok()) {
    if (absl::IsInternal(raised.status()) &&
        absl::StrContains(raised.status().message(), "SQLSTATE 42P01")) {
      // The table this process saw was dropped, or its creation rolled
      // back: look for it again next time.
      std::lock_guard<std::mutex> lock(known_mu);
      Known().erase(Where(conn));
      return absl::AbortedError(absl::StrCat(
          what,
          ": table quorate_fence is gone (dropped, or its creation "
          "was rolled back); roll back and run the transaction again"));
    }
    return raised.status();
  }
  if (PQntuples(raised->get()) == 1) return absl::OkStatus();
  // Refused: the epoch it holds, for the message (a new statement, so that
  // under READ COMMITTED it sees the holder that won).
  uint64_t held = 0;
  absl::StatusOr<Result> highest =
      Run(conn, kHighest, {fence.name.c_str()}, PGRES_TUPLES_OK, what);
  if (!highest.ok()) return highest.status();
  if (PQntuples(highest->get()) != 1 ||
      !absl::SimpleAtoi(PQgetvalue(highest->get(), 0, 0), &held)) {
    held = 0;
  }
  absl::Status refused = CheckFence(fence, held);
  if (refused.ok()) {
    return absl::InternalError(
        absl::StrCat(what, ": epoch ", fence.epoch,
                     " was not written though the table holds ", held));
  }
  return refused;
}

}  // namespace quorate
