// chaos/check.h: the verdicts of a chaos run.
//
//  - linearizable: the register operations (and the final reads) have a
//    linearization (chaos/linearizability.h); a write whose outcome is
//    unknown may or may not have happened.
//  - no acknowledged write lost: every put-once key that was acknowledged
//    is read back, after the run, with the value written.
//  - event log (docs/contracts.md): at most one leader per
//    term; every active window of term t ended (its active_until_mono_ns)
//    before any member became leader in a later term. With no mode events
//    (no partition guard yet) the second check has nothing to check and
//    says so.
#ifndef QUORATE_CHAOS_CHECK_H_
#define QUORATE_CHAOS_CHECK_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "chaos/workload.h"

namespace quorate::chaos {

struct Verdict {
  std::string name;
  bool ok = true;
  std::string detail;  // what was checked, or the violation
};

// One line of a member's event log.
struct Event {
  int64_t t_ns = 0;
  std::string id;
  std::string event;  // "role" or "mode"
  std::string role;
  std::string mode;
  uint64_t term = 0;
  int64_t active_until_ns = 0;
  std::string reason;
};

// Parses an event log; a line that is not one of the contract's objects is
// an error naming the file and line.
absl::StatusOr<std::vector<Event>> ReadEventLog(const std::string& path);

Verdict CheckLinearizability(const std::vector<Op>& history);
Verdict CheckNoLostWrites(const std::vector<Op>& history);
// `deaths`: when each member's process was killed (SIGKILL), which ends a
// window that logged no pause; otherwise such a window lasts to `end_ns`.
std::vector<Verdict> CheckEvents(
    const std::vector<Event>& events, int64_t end_ns,
    const std::map<std::string, std::vector<int64_t>>& deaths = {});

// A heal: when the faults were undone, and until when nothing else was
// injected (the next step's start, or the end of the run).
struct Heal {
  int64_t at_ns = 0;
  int64_t quiet_until_ns = 0;
};

// After every heal with at least `bound_ns` of quiet after it, every member
// in `ids` is active within `bound_ns` (a member already active counts as
// resumed at once). The detail lists the slowest resume per heal.
// A member killed (see `deaths`) after its last mode event before the
// heal counts as paused at the heal.
Verdict CheckResume(
    const std::vector<Event>& events, const std::vector<Heal>& heals,
    const std::vector<std::string>& ids, int64_t bound_ns,
    const std::map<std::string, std::vector<int64_t>>& deaths = {});

}  // namespace quorate::chaos

#endif  // QUORATE_CHAOS_CHECK_H_
