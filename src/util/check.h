// util/check.h: crash with a clear message when an invariant breaks.
//
// An expected failure is an absl::Status. A broken invariant (a bug in
// Quorate, or memory corruption) must stop the process before it can do
// damage, such as acknowledging a write it lost or voting twice in a term:
//
//   QUORATE_CHECK(index > committed_) << "commit went back from "
//                                     << committed_ << " to " << index;
//
// The message goes to stderr with file and line, then the process aborts.
// Checks stay on in release builds: they guard safety, not performance.
#ifndef QUORATE_UTIL_CHECK_H_
#define QUORATE_UTIL_CHECK_H_

#include <sstream>

#include "absl/base/optimization.h"

namespace quorate::internal {

// Collects the message of a failed check and aborts when destroyed.
class CheckFailure {
 public:
  CheckFailure(const char* file, int line, const char* condition);
  CheckFailure(const CheckFailure&) = delete;
  CheckFailure& operator=(const CheckFailure&) = delete;
  [[noreturn]] ~CheckFailure();

  std::ostream& stream() { return stream_; }

 private:
  std::ostringstream stream_;
};

}  // namespace quorate::internal

#define QUORATE_CHECK(condition)           \
  while (ABSL_PREDICT_FALSE(!(condition))) \
  ::quorate::internal::CheckFailure(__FILE__, __LINE__, #condition).stream()

#define QUORATE_CHECK_OP_(a, op, b) \
  QUORATE_CHECK((a)op(b)) << "(" << (a) << " vs " << (b) << ") "
#define QUORATE_CHECK_EQ(a, b) QUORATE_CHECK_OP_(a, ==, b)
#define QUORATE_CHECK_NE(a, b) QUORATE_CHECK_OP_(a, !=, b)
#define QUORATE_CHECK_LE(a, b) QUORATE_CHECK_OP_(a, <=, b)
#define QUORATE_CHECK_LT(a, b) QUORATE_CHECK_OP_(a, <, b)
#define QUORATE_CHECK_GE(a, b) QUORATE_CHECK_OP_(a, >=, b)
#define QUORATE_CHECK_GT(a, b) QUORATE_CHECK_OP_(a, >, b)

#endif  // QUORATE_UTIL_CHECK_H_
