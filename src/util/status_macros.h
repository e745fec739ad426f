// util/status_macros.h: early return on error, for absl::Status code.
//
// Debian's abseil (20220623) has no status macros, so these are ours:
//
//   absl::Status Save(const Entry& e) {
//     QUORATE_RETURN_IF_ERROR(file_.Append(Frame(e)));
//     QUORATE_ASSIGN_OR_RETURN(uint64_t offset, file_.Sync());
//     ...
//   }
#ifndef QUORATE_UTIL_STATUS_MACROS_H_
#define QUORATE_UTIL_STATUS_MACROS_H_

#include <utility>

#include "absl/base/optimization.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define QUORATE_STATUS_CONCAT_INNER_(a, b) a##b
#define QUORATE_STATUS_CONCAT_(a, b) QUORATE_STATUS_CONCAT_INNER_(a, b)

// Evaluates `expr` (an absl::Status) once; returns it if it is not OK.
#define QUORATE_RETURN_IF_ERROR(expr)                                      \
  do {                                                                     \
    ::absl::Status quorate_status_ = (expr);                               \
    if (ABSL_PREDICT_FALSE(!quorate_status_.ok())) return quorate_status_; \
  } while (false)

// Evaluates `rexpr` (an absl::StatusOr<T>) once. On error returns its
// status; otherwise moves the value into `lhs`, which may be a declaration.
#define QUORATE_ASSIGN_OR_RETURN(lhs, rexpr) \
  QUORATE_ASSIGN_OR_RETURN_IMPL_(            \
      QUORATE_STATUS_CONCAT_(quorate_statusor_, __LINE__), lhs, rexpr)

#define QUORATE_ASSIGN_OR_RETURN_IMPL_(statusor, lhs, rexpr) \
  auto statusor = (rexpr);                                   \
  if (ABSL_PREDICT_FALSE(!statusor.ok())) {                  \
    return std::move(statusor).status();                     \
  }                                                          \
  lhs = *std::move(statusor)

#endif  // QUORATE_UTIL_STATUS_MACROS_H_
