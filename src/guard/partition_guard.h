// guard/partition_guard.h: runs a member's Guard (guard.h) against its
// node: renews the window every heartbeat interval through Node::Confirm,
// publishes the deadline for lock-free checks (PermitCell), and reports
// every mode change, in order, to `on_transition`.
//
// Threads: one of its own (renewals, and noticing when a window lapses);
// confirmations arrive on the node's loop. `on_transition` runs on the
// guard's thread, outside its lock: it must not block (the member queues
// the application's callbacks to a thread of their own).
#ifndef QUORATE_GUARD_PARTITION_GUARD_H_
#define QUORATE_GUARD_PARTITION_GUARD_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "guard/guard.h"
#include "node/node.h"
#include "util/clock.h"
#include "util/mutex.h"

namespace quorate::guard {

// The published window: its deadline on the guard's clock (0 while
// paused) and its token. Written under the guard's lock, read without one
// (a sequence lock): Read() is a few atomic loads.
class PermitCell {
 public:
  explicit PermitCell(ClockFn clock = BootTimeNowNs) : clock_(clock) {}
  void Write(int64_t deadline_ns, Token token);
  void Read(int64_t* deadline_ns, Token* token) const;
  // Whether the window is open now, by the guard's clock; its token if so.
  bool Valid(Token* token) const {
    int64_t deadline = 0;
    Token t;
    Read(&deadline, &t);
    if (clock_() >= deadline) return false;
    if (token != nullptr) *token = t;
    return true;
  }

 private:
  const ClockFn clock_;
  std::atomic<uint64_t> seq_{0};
  std::atomic<int64_t> deadline_ns_{0};
  std::atomic<uint64_t> term_{0};
  std::atomic<uint64_t> index_{0};
};

struct GuardStatus {
  bool active = false;
  std::string pause_reason;     // while paused
  int64_t active_until_ns = 0;  // while active
  int64_t last_contact_ns = 0;  // send time of the last confirmed renewal
  uint64_t pauses = 0;
  uint64_t term = 0;
  Token token;
};

class PartitionGuard {
 public:
  struct Options {
    GuardOptions guard;
    int64_t renew_interval_ns = 50'000'000;
    node::Node* node = nullptr;  // not owned; outlives the guard
    // The clock of windows and permits: CLOCK_BOOTTIME, so that a suspend
    // (during which CLOCK_MONOTONIC stops) ends a window. Tests inject a
    // fake one.
    ClockFn clock = BootTimeNowNs;
    std::function<void(const Transition&)> on_transition;
  };

  static absl::StatusOr<std::unique_ptr<PartitionGuard>> Start(Options options);
  ~PartitionGuard();  // Stop()
  // Stops renewing and pausing; the permit reads paused from now on.
  void Stop();

  std::shared_ptr<const PermitCell> permit() const { return cell_; }
  // A leader may have become reachable: a role change (with the member's
  // new term), or a stream to a peer opened (term 0: unknown). Renews now
  // rather than at the next heartbeat, but only if the last renewal failed
  // or was sent in an older term: the leader of a term still gets at most
  // one renewal round per heartbeat interval from each member. Cheap and
  // non-blocking; any thread.
  void Nudge(uint64_t term = 0);
  GuardStatus Status() const;

 private:
  explicit PartitionGuard(Options options);
  void Run();
  void Confirmed(uint64_t id, absl::StatusOr<node::Confirmation> c);
  // Under mu_: the deadline readers see.
  void Publish() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const Options options_;
  const std::shared_ptr<PermitCell> cell_;
  mutable Mutex mu_;
  CondVar changed_;
  Guard guard_ ABSL_GUARDED_BY(mu_);
  std::string pause_reason_ ABSL_GUARDED_BY(mu_) = "starting";
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  bool nudged_ ABSL_GUARDED_BY(mu_) = false;
  // The newest term heard of (role changes, confirmations), and the last
  // renewal: its id, the term known when it was sent, whether it failed.
  uint64_t known_term_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t last_renewal_id_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t last_renewal_term_ ABSL_GUARDED_BY(mu_) = 0;
  bool last_renewal_failed_ ABSL_GUARDED_BY(mu_) = false;
  // Confirmations still to arrive (they reference this object).
  int outstanding_ ABSL_GUARDED_BY(mu_) = 0;
  std::thread thread_;
};

}  // namespace quorate::guard

#endif  // QUORATE_GUARD_PARTITION_GUARD_H_
