// util/thread_name.h: names the calling thread, as `top -H`, `perf` and
// debuggers show it ("q-loop", "q-io"...). Linux keeps 15 characters.
// LowerThreadPriority: for a background thread whose work may wait.
#ifndef QUORATE_UTIL_THREAD_NAME_H_
#define QUORATE_UTIL_THREAD_NAME_H_

#include <pthread.h>
#include <sys/resource.h>
#include <unistd.h>

namespace quorate {

inline void SetThreadName(const char* name) {
  pthread_setname_np(pthread_self(), name);
}

// Gives the calling thread (only: Linux nices threads one by one) the
// lowest CPU priority, nice 19. Where the CPU is scarce it then gets about
// 1/70 of a core that nice-0 threads want, and all that they leave. Best
// effort: an error leaves the priority as it was.
inline void LowerThreadPriority() {
  setpriority(PRIO_PROCESS, static_cast<id_t>(gettid()), 19);
}

}  // namespace quorate

#endif  // QUORATE_UTIL_THREAD_NAME_H_
