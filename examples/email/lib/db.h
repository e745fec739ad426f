// db.h: the email example's database, SQLite or PostgreSQL, behind one
// small interface, and the schema of ../shared/design/CONTRACTS.md.
//
//   DB spec: "postgresql://..." (or "postgres://...") for PostgreSQL,
//   anything else is a SQLite file path (WAL mode, synchronous=FULL, so a
//   commit is on disk when it returns).
//
// SQL is written once, with $1, $2, ... placeholders, in the subset both
// databases share (INSERT ... ON CONFLICT, RETURNING, partial indexes).
#ifndef QUORATE_EMAIL_DB_H_
#define QUORATE_EMAIL_DB_H_

#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "quorate/fence.h"

namespace quorate_email {

using Param = std::variant<std::nullptr_t, int64_t, std::string>;
// Every column as text; NULL as nullopt.
using Row = std::vector<std::optional<std::string>>;

// Errors every operation may return:
// - UNAVAILABLE: the database cannot be reached, or the connection broke
//   (drop the connection; a commit's outcome may be unknown);
// - ABORTED: a conflict with another transaction (SQLITE_BUSY after the
//   busy timeout, a PostgreSQL serialization failure or deadlock): roll
//   back and run the transaction again;
// - ALREADY_EXISTS: a unique constraint refused a row;
// - FAILED_PRECONDITION: the fence refused a stale epoch (Fence only);
// - INTERNAL: anything else, with the database's message.
class Db {
 public:
  // Opens a connection. INVALID_ARGUMENT for an empty spec.
  static absl::StatusOr<std::unique_ptr<Db>> Open(const std::string& spec);
  virtual ~Db() = default;

  virtual bool is_postgres() const = 0;
  // Opens a transaction. SQLite takes the write lock here (BEGIN
  // IMMEDIATE), so a transaction that writes never fails half way on a
  // lock it could not upgrade.
  virtual absl::Status Begin() = 0;
  virtual absl::Status Commit() = 0;
  // Rolls back an open transaction; harmless without one.
  virtual void Rollback() = 0;
  virtual absl::StatusOr<std::vector<Row>> Query(
      absl::string_view sql, const std::vector<Param>& params = {}) = 0;
  absl::Status Exec(absl::string_view sql,
                    const std::vector<Param>& params = {}) {
    return Query(sql, params).status();
  }
  // The fence adapter of this database (quorate/fence_sqlite.h,
  // quorate/fence_postgres.h), first in an open transaction.
  virtual absl::Status Fence(const quorate::Fence& fence) = 0;
};

// Creates the tables and indexes if they are missing. Safe to run from
// several processes at once.
absl::Status EnsureSchema(Db& db);

// A column as a number (0 for NULL or text that is not one).
int64_t AsInt(const std::optional<std::string>& column);

// CLOCK_MONOTONIC in nanoseconds: comparable between processes on one
// machine (the contract's *_mono_ns columns).
int64_t MonoNowNs();

// Connections to one database for threads that each need one for a
// while. A connection is taken for one piece of work and given back at
// once: nobody holds one while waiting on something else (SMTP).
class DbPool {
 public:
  DbPool(std::string spec, size_t max_connections);
  ~DbPool();

  class Lease {
   public:
    Lease(Lease&& other) noexcept;
    Lease& operator=(Lease&&) = delete;
    ~Lease();
    Db* operator->() const { return db_.get(); }
    Db& operator*() const { return *db_; }
    // The connection is broken (UNAVAILABLE): close it instead of keeping
    // it.
    void Discard() { discard_ = true; }

   private:
    friend class DbPool;
    Lease(DbPool* pool, std::unique_ptr<Db> db)
        : pool_(pool), db_(std::move(db)) {}
    DbPool* pool_;
    std::unique_ptr<Db> db_;
    bool discard_ = false;
  };

  // A connection, opened if none is idle. UNAVAILABLE if all are in use
  // for `wait`, or one cannot be opened.
  absl::StatusOr<Lease> Acquire(absl::Duration wait);
  const std::string& spec() const { return spec_; }
  // Connections the calling thread holds now, from any pool (the
  // processor logs it with every SMTP send: it must be 0).
  static int HeldByThisThread();

 private:
  void Return(std::unique_ptr<Db> db, bool discard);

  const std::string spec_;
  const size_t max_;
  std::mutex mu_;
  std::condition_variable returned_;
  std::vector<std::unique_ptr<Db>> idle_;
  size_t in_use_ = 0;
};

}  // namespace quorate_email

#endif  // QUORATE_EMAIL_DB_H_
