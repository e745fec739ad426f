// util/serial_executor.h: runs tasks one at a time, in the order posted,
// on a thread of its own. For work that must not run on the caller's
// thread (file writes off the node loop, application callbacks outside
// every lock, snapshots serialized off the node loop).
#ifndef QUORATE_UTIL_SERIAL_EXECUTOR_H_
#define QUORATE_UTIL_SERIAL_EXECUTOR_H_

#include <deque>
#include <thread>
#include <utility>

#include "absl/functional/any_invocable.h"
#include "util/mutex.h"
#include "util/thread_name.h"

namespace quorate {

class SerialExecutor {
 public:
  // `name`: the thread's, as ps and perf show it (at most 15 characters).
  explicit SerialExecutor(const char* name = "q-callbacks")
      : thread_([this, name] {
          SetThreadName(name);
          Run();
        }) {}
  // Runs what is queued, then joins.
  ~SerialExecutor() {
    {
      MutexLock lock(&mu_);
      stopping_ = true;
    }
    queued_.SignalAll();
    thread_.join();
  }
  SerialExecutor(const SerialExecutor&) = delete;
  SerialExecutor& operator=(const SerialExecutor&) = delete;

  void Post(absl::AnyInvocable<void()> task) {
    {
      MutexLock lock(&mu_);
      tasks_.push_back(std::move(task));
    }
    queued_.Signal();
  }

 private:
  void Run() {
    while (true) {
      std::deque<absl::AnyInvocable<void()>> batch;
      {
        MutexLock lock(&mu_);
        while (!stopping_ && tasks_.empty()) queued_.Wait(&mu_);
        if (tasks_.empty()) return;  // stopping, and all done
        batch.swap(tasks_);
      }
      for (absl::AnyInvocable<void()>& task : batch) task();
    }
  }

  Mutex mu_;
  CondVar queued_;
  // Unbounded: callers post a handful of tasks per role or mode change.
  std::deque<absl::AnyInvocable<void()>> tasks_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace quorate

#endif  // QUORATE_UTIL_SERIAL_EXECUTOR_H_
