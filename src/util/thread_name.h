// util/thread_name.h: names the calling thread, as `top -H`, `perf` and
// debuggers show it ("q-loop", "q-io"...). Linux keeps 15 characters.
#ifndef QUORATE_UTIL_THREAD_NAME_H_
#define QUORATE_UTIL_THREAD_NAME_H_

#include <pthread.h>

namespace quorate {

inline void SetThreadName(const char* name) {
  pthread_setname_np(pthread_self(), name);
}

}  // namespace quorate

#endif  // QUORATE_UTIL_THREAD_NAME_H_
