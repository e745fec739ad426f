// util/serial_executor.h: runs tasks one at a time, in the order posted,
// on a thread of its own. For work that must not run on the caller's
// thread (file writes off the node loop, application callbacks outside
// every lock).
#ifndef QUORATE_UTIL_SERIAL_EXECUTOR_H_
#define QUORATE_UTIL_SERIAL_EXECUTOR_H_

#include <deque>
#include <functional>
#include <thread>
#include <utility>

#include "util/mutex.h"
#include "util/thread_name.h"

namespace quorate {

class SerialExecutor {
 public:
  SerialExecutor()
      : thread_([this] {
          SetThreadName("q-callbacks");
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

  void Post(std::function<void()> task) {
    {
      MutexLock lock(&mu_);
      tasks_.push_back(std::move(task));
    }
    queued_.Signal();
  }

 private:
  void Run() {
    while (true) {
      std::deque<std::function<void()>> batch;
      {
        MutexLock lock(&mu_);
        while (!stopping_ && tasks_.empty()) queued_.Wait(&mu_);
        if (tasks_.empty()) return;  // stopping, and all done
        batch.swap(tasks_);
      }
      for (std::function<void()>& task : batch) task();
    }
  }

  Mutex mu_;
  CondVar queued_;
  // Unbounded: callers post a handful of tasks per role or mode change.
  std::deque<std::function<void()>> tasks_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace quorate

#endif  // QUORATE_UTIL_SERIAL_EXECUTOR_H_
