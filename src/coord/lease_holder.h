// coord/lease_holder.h: the holder's side of a lease, pure: no clock, no
// thread, no I/O. Times are the holder's suspend-safe clock
// (CLOCK_BOOTTIME) in nanoseconds. quorate::Session runs it on the
// client's threads; the simulator runs it for its simulated processors.
//
// The holder records the time s at which it *sends* a renewal. When the
// leader answers it (after a quorum round that started after the renewal
// arrived: coord/lessor.h), the holder may count on the lease until
//
//   s + W,   W = TTL (1 - rho) / (1 + rho) - margin
//
// and no leader can have expired it before then (docs/design.md,
// "Sessions"). Counting from the answer's arrival instead, as etcd's
// client does, overstates the lease by the round trip: the simulator
// shows that broken variant caught (Unsafe::deadline_from_reply).
//
// Jeopardy (Chubby's word): the deadline has not passed, but less than
// half a window is left, so renewals have been failing for a while. A
// holder should start no new work then, and finish what it holds.
#ifndef QUORATE_COORD_LEASE_HOLDER_H_
#define QUORATE_COORD_LEASE_HOLDER_H_

#include <cstdint>
#include <map>

#include "absl/status/status.h"

namespace quorate::coord {

struct HolderOptions {
  double max_clock_drift = 0.01;  // rho, as the members'
  int64_t margin_ns = 50'000'000;
  // Deliberately broken, for the simulator's checker test: count the
  // window from the answer's arrival instead of the send.
  struct Unsafe {
    bool deadline_from_reply = false;
  } unsafe;
};

// W for a lease of `ttl_ms`: how long one answered renewal lets the holder
// act, from its send time. At most 0 when the margin eats the window.
int64_t HolderWindow(int64_t ttl_ms, const HolderOptions& options);

class LeaseHolder {
 public:
  // The lease was granted with `ttl_ms` by a request sent at `sent_ns`
  // (the grant is the first renewal).
  LeaseHolder(HolderOptions options, int64_t ttl_ms, int64_t sent_ns);

  // A renewal goes out at `now_ns`; its cookie matches the answer.
  uint64_t RenewalSent(int64_t now_ns);
  // The leader answered renewal `cookie`: renewed for `ttl_ms`, or failed.
  // NOT_FOUND ends the lease for good; other errors change nothing (the
  // deadline stands, and the next renewal may succeed).
  void Answered(uint64_t cookie, const absl::Status& status, int64_t ttl_ms,
                int64_t now_ns);
  // The holder gave the lease up (revoked it), or learned it ended.
  void End() { ended_ = true; }

  bool Valid(int64_t now_ns) const { return !ended_ && now_ns < deadline_ns_; }
  bool InJeopardy(int64_t now_ns) const {
    return Valid(now_ns) && deadline_ns_ - now_ns < window_ns_ / 2;
  }
  bool ended() const { return ended_; }
  int64_t deadline_ns() const { return ended_ ? 0 : deadline_ns_; }
  int64_t window_ns() const { return window_ns_; }
  // When the next renewal should go out: a third of a window after the
  // last answered one was sent, and at once once in jeopardy.
  int64_t NextRenewalAt() const;
  size_t outstanding() const { return sent_.size(); }

 private:
  const HolderOptions options_;
  int64_t window_ns_;
  int64_t deadline_ns_;
  int64_t last_sent_answered_ns_;
  bool ended_ = false;
  uint64_t next_cookie_ = 1;
  std::map<uint64_t, int64_t> sent_;  // cookie -> send time
};

}  // namespace quorate::coord

#endif  // QUORATE_COORD_LEASE_HOLDER_H_
