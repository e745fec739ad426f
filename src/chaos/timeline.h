// chaos/timeline.h: a self-contained HTML page with an SVG picture of a
// chaos run: each member's role (and mode, once the partition guard logs
// it) over time, when it was killed, stopped or skewed, the nemesis
// periods across all members, and the operations that succeeded.
#ifndef QUORATE_CHAOS_TIMELINE_H_
#define QUORATE_CHAOS_TIMELINE_H_

#include <cstdint>
#include <string>
#include <vector>

#include "chaos/check.h"
#include "chaos/workload.h"

namespace quorate::chaos {

struct Period {
  int64_t start_ns = 0;
  int64_t end_ns = 0;  // 0: still going at the end
  std::string label;
  int member = -1;  // -1: every member
};

struct TimelineInput {
  std::string title;
  int64_t t0_ns = 0;
  int64_t end_ns = 0;
  std::vector<std::string> members;  // "n1 az-a", in order n1..nN
  std::vector<Event> events;
  std::vector<Period> nemeses;
  std::vector<Period> outages;  // label: kill, pause or skew
  std::vector<Op> history;
};

std::string TimelineHtml(const TimelineInput& in);

}  // namespace quorate::chaos

#endif  // QUORATE_CHAOS_TIMELINE_H_
