// util/clock.h: the monotonic clock every layer above the core uses.
#ifndef QUORATE_UTIL_CLOCK_H_
#define QUORATE_UTIL_CLOCK_H_

#include <time.h>

#include <cstdint>

namespace quorate {

// CLOCK_MONOTONIC in nanoseconds: comparable between processes on one
// machine (the event log relies on it), never decreasing.
inline int64_t MonotonicNowNs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}

}  // namespace quorate

#endif  // QUORATE_UTIL_CLOCK_H_
