// guard/guard.h: the partition guard's state machine, pure: no clock, no
// thread, no I/O. Times are the member's monotonic clock in nanoseconds.
//
// A member is active only inside a window it earned (docs/design.md, the
// safety argument). It records its local time s and asks the leader to
// confirm a quorum round that starts after the request arrives; once
// confirmed, it may act until
//
//   s + W,   W = T (1 - rho) / (1 + rho) - margin
//
// where T is the minimum election timeout, rho the bound on clock-rate
// drift and margin the time an action may take after its check. Renewals
// go out every heartbeat interval, pipelined, so a healthy member's window
// never lapses.
//
// Modes. Paused at start. Active once a window is held; after a pause,
// under the same leader term, only once the member has held windows
// without a gap for the dwell time (hysteresis against its own flapping
// link); under a newer term at once (the cluster moved on). Paused the
// moment the window lapses: a pause is never delayed. A window never spans
// two terms: a confirmation from a newer term ends the old window (a
// pause), and the new term's windows must dwell before they count.
// Validity itself is the deadline, compared with the clock
// when it is used (see quorate::Permit); Evaluate() only reports the
// transitions, for callbacks and the event log.
#ifndef QUORATE_GUARD_GUARD_H_
#define QUORATE_GUARD_GUARD_H_

#include <compare>
#include <cstdint>
#include <map>
#include <optional>
#include <string>

#include "absl/status/status.h"

namespace quorate::guard {

// Increases across the cluster with every new leader term: the term, and
// the index of that leader's first entry. Compared as a pair.
struct Token {
  uint64_t term = 0;
  uint64_t index = 0;
  auto operator<=>(const Token&) const = default;
};

struct GuardOptions {
  int64_t election_timeout_ns = 500'000'000;  // T, the minimum
  double max_clock_drift = 0.01;              // rho
  int64_t margin_ns = 50'000'000;
  int64_t dwell_ns = 500'000'000;
  // Pipelined renewals older than a window are forgotten.
};

// INVALID_ARGUMENT unless the window W is positive.
absl::Status ValidateGuardOptions(const GuardOptions& o);

// W: how long one confirmed renewal lets a member act, from its send time.
int64_t WindowLength(const GuardOptions& o);

struct Transition {
  bool active = false;
  uint64_t term = 0;
  Token token;
  // Active: the window's deadline now. Paused: the deadline the window
  // really had (it may be earlier than the moment the pause was noticed).
  int64_t active_until_ns = 0;
  // Active: since when the member has held windows without a gap (the
  // send time of the first renewal of the run; the dwell counts from it).
  int64_t healthy_since_ns = 0;
  std::string reason;  // paused: why
};

class Guard {
 public:
  explicit Guard(GuardOptions options, int64_t start_ns);

  // A renewal is sent at `sent_ns`; its id is for Confirmed()/Failed().
  uint64_t RenewalSent(int64_t sent_ns);
  // The leader of `term` confirmed renewal `id`: the window extends to its
  // send time + W (never shrinks within a term).
  void Confirmed(uint64_t id, uint64_t term, Token token);
  // Renewal `id` will never be confirmed.
  void Failed(uint64_t id);

  // Mode change at `now_ns`, if any. Call after each event above, and at
  // the times NextCheck() names.
  std::optional<Transition> Evaluate(int64_t now_ns);
  // When Evaluate() may next report a change on its own: the window's end
  // while active, the end of the dwell while waiting to resume.
  int64_t NextCheck() const;

  bool active() const { return active_; }
  // Whether the active window may be published (not while a newer term's
  // confirmation is closing it; the next Evaluate() pauses).
  bool publishable() const { return active_ && term_ended_until_ns_ == 0; }
  int64_t active_until_ns() const { return active_until_ns_; }
  uint64_t term() const { return term_; }
  Token token() const { return token_; }
  // The send time of the latest confirmed renewal (0: none yet).
  int64_t last_confirmed_sent_ns() const { return last_confirmed_sent_ns_; }
  uint64_t pauses() const { return pauses_; }
  size_t pending() const { return pending_.size(); }

 private:
  const GuardOptions options_;
  const int64_t window_;
  const int64_t start_ns_;
  uint64_t next_id_ = 1;
  std::map<uint64_t, int64_t> pending_;  // id -> send time
  int64_t active_until_ns_ = 0;          // window held until (0: none yet)
  // Set when a newer term's confirmation closed an active window: its end.
  int64_t term_ended_until_ns_ = 0;
  uint64_t term_ = 0;
  Token token_;
  int64_t last_confirmed_sent_ns_ = 0;
  // Start of the current unbroken run of windows (0: none).
  int64_t healthy_since_ns_ = 0;
  // When the last window the member noticed lapsing ended; no healthy run
  // starts before it.
  int64_t lapsed_at_ns_ = 0;
  bool active_ = false;
  bool ever_active_ = false;
  uint64_t paused_term_ = 0;  // the term of the last pause
  uint64_t pauses_ = 0;
};

}  // namespace quorate::guard

#endif  // QUORATE_GUARD_GUARD_H_
