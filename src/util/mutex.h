// util/mutex.h: a mutex and a condition variable with abseil's lock
// annotations, on top of std::mutex.
//
// Why not absl::Mutex: Debian's abseil is a shared library built without
// ThreadSanitizer, so TSan cannot see absl::Mutex's happens-before edges
// and reports races that are not there. std::mutex goes through pthreads,
// which TSan intercepts. The annotations keep clang's -Wthread-safety
// checks (ABSL_GUARDED_BY and friends) working.
//
//   Mutex mu;
//   CondVar cv;
//   int n ABSL_GUARDED_BY(mu) = 0;
//   { MutexLock lock(&mu); while (n == 0) cv.Wait(&mu); }
#ifndef QUORATE_UTIL_MUTEX_H_
#define QUORATE_UTIL_MUTEX_H_

#include <condition_variable>
#include <mutex>

#include "absl/base/thread_annotations.h"
#include "absl/time/time.h"

namespace quorate {

class ABSL_LOCKABLE Mutex {
 public:
  void Lock() ABSL_EXCLUSIVE_LOCK_FUNCTION() { m_.lock(); }
  void Unlock() ABSL_UNLOCK_FUNCTION() { m_.unlock(); }

 private:
  friend class CondVar;
  std::mutex m_;
};

class ABSL_SCOPED_LOCKABLE MutexLock {
 public:
  explicit MutexLock(Mutex* mu) ABSL_EXCLUSIVE_LOCK_FUNCTION(mu) : mu_(mu) {
    mu_->Lock();
  }
  ~MutexLock() ABSL_UNLOCK_FUNCTION() { mu_->Unlock(); }
  MutexLock(const MutexLock&) = delete;
  MutexLock& operator=(const MutexLock&) = delete;

 private:
  Mutex* const mu_;
};

class CondVar {
 public:
  // Atomically releases `mu`, waits for a Signal/SignalAll (or a spurious
  // wake-up: callers loop on their condition), and takes `mu` again.
  void Wait(Mutex* mu) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    std::unique_lock<std::mutex> lock(mu->m_, std::adopt_lock);
    cv_.wait(lock);
    lock.release();
  }
  // As Wait(), but returns after `timeout` at the latest.
  void WaitWithTimeout(Mutex* mu, absl::Duration timeout)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    std::unique_lock<std::mutex> lock(mu->m_, std::adopt_lock);
    if (timeout > absl::ZeroDuration()) {
      cv_.wait_for(lock, absl::ToChronoNanoseconds(timeout));
    }
    lock.release();
  }
  void Signal() { cv_.notify_one(); }
  void SignalAll() { cv_.notify_all(); }

 private:
  std::condition_variable cv_;
};

}  // namespace quorate

#endif  // QUORATE_UTIL_MUTEX_H_
