// chaos/workload.h: clients that write and read through quorate::Client,
// and the history they record.
//
// Each client thread, at `rate` operations per second, either writes a
// unique value to one of `keys` registers (r/0 ... r/K-1), reads one
// (linearizably, through a client bound to one member, so that every
// member answers reads), or puts a key of its own that is written once
// (u/<client>/<n>) and read back at the end. Every operation records its
// CLOCK_MONOTONIC invoke and complete times.
#ifndef QUORATE_CHAOS_WORKLOAD_H_
#define QUORATE_CHAOS_WORKLOAD_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "quorate/client.h"
#include "util/mutex.h"

namespace quorate::chaos {

struct Op {
  enum class Type { kWrite, kRead, kPutOnce };
  // kOk: acknowledged. kFailed: refused for sure, not applied.
  // kUnknown: a write that may or may not have been applied, or a read that
  // observed nothing.
  enum class Outcome { kOk, kFailed, kUnknown };

  int client = 0;
  Type type = Type::kWrite;
  std::string key;
  std::string value;  // written, or read ("" when the key was absent)
  int64_t call_ns = 0;
  int64_t return_ns = 0;
  Outcome outcome = Outcome::kUnknown;
  std::string error;
  int member = -1;  // for reads: the member asked first
};

struct WorkloadOptions {
  std::vector<std::string> endpoints;  // one per member
  int clients = 4;
  int keys = 5;
  double rate = 40;  // per client
  absl::Duration timeout = absl::Seconds(1);
  // A deliberately broken workload, to show the checkers fail: reads are
  // stale, served by whichever member the reader is bound to.
  bool stale_reads = false;
};

class Workload {
 public:
  static absl::StatusOr<std::unique_ptr<Workload>> Start(
      WorkloadOptions options);
  ~Workload();

  // Stops the threads and waits for their calls to finish.
  void Stop();

  // After Stop(): linearizable reads of every register and of every
  // acknowledged put-once key, through any member, retried for up to
  // `patience`. The reads join the history.
  absl::Status FinalReads(absl::Duration patience);

  std::vector<Op> History() const;

 private:
  explicit Workload(WorkloadOptions options) : options_(std::move(options)) {}
  void Run(int client);
  void Record(Op op);

  const WorkloadOptions options_;
  std::vector<std::unique_ptr<Client>> writers_;  // one per thread
  std::vector<std::unique_ptr<Client>> readers_;  // one per member
  std::atomic<bool> stop_{false};
  std::vector<std::thread> threads_;
  mutable Mutex mu_;
  std::vector<Op> history_ ABSL_GUARDED_BY(mu_);
};

}  // namespace quorate::chaos

#endif  // QUORATE_CHAOS_WORKLOAD_H_
