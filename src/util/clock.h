// util/clock.h: the clocks every layer above the core uses.
#ifndef QUORATE_UTIL_CLOCK_H_
#define QUORATE_UTIL_CLOCK_H_

#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <cstdint>

namespace quorate {

// CLOCK_MONOTONIC in nanoseconds, never decreasing.
inline int64_t MonotonicNowNs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}

// CLOCK_BOOTTIME in nanoseconds: CLOCK_MONOTONIC plus the time the machine
// spent suspended. The partition guard's windows run on it (window start,
// deadline, Permit::Valid()): a member suspended with a window open wakes
// with the window over, however long it slept. It runs at the same rate as
// CLOCK_MONOTONIC otherwise (both follow NTP's slewing), and libfaketime
// skews it the same way.
inline int64_t BootTimeNowNs() {
  timespec ts;
  clock_gettime(CLOCK_BOOTTIME, &ts);
  return int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}

// A clock to read, injectable for tests: MonotonicNowNs, BootTimeNowNs or
// a fake.
using ClockFn = int64_t (*)();

// CLOCK_MONOTONIC straight from the kernel, past any library that
// interposes clock_gettime (libfaketime, which chaos runs use to make a
// member's clock run fast or slow). For timestamps that other processes
// compare, such as the event log's; the member's own timers keep
// MonotonicNowNs(), so that a skewed clock really skews them.
inline int64_t KernelMonotonicNowNs() {
  timespec ts;
  syscall(SYS_clock_gettime, CLOCK_MONOTONIC, &ts);
  return int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}

}  // namespace quorate

#endif  // QUORATE_UTIL_CLOCK_H_
