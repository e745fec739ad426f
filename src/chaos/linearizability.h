// A linearizability checker for histories of single-key registers (read,
// write, and compare-and-set: write only if the register holds an expected
// value), in the manner of Porcupine: Wing & Gong's search with Lowe's
// just-in-time linearization and memoization of (linearized set, state), run
// separately for each key (P-compositionality).
//
// An operation whose outcome is unknown (a write whose client gave up) has
// return time kNever: it may take effect at any point after its call, or
// never. A read whose outcome is unknown is left out of the history: it had
// no effect and observed nothing.
#ifndef QUORATE_CHAOS_LINEARIZABILITY_H_
#define QUORATE_CHAOS_LINEARIZABILITY_H_

#include <cstdint>
#include <limits>
#include <string>
#include <vector>

namespace quorate::chaos {

struct RegisterOp {
  static constexpr int64_t kNever = std::numeric_limits<int64_t>::max();

  std::string key;
  bool is_write = false;
  // Written value, or value the read returned; "" is the initial (absent)
  // value.
  std::string value;
  // A compare-and-set: the write takes effect only if the register holds
  // `expected`. Its outcome, when known: whether it did.
  bool is_cas = false;
  std::string expected;
  bool cas_succeeded = false;
  int64_t call = 0;
  int64_t ret = kNever;
  uint64_t id = 0;  // for reports
};

struct LinearizabilityResult {
  bool ok = true;
  // When not ok: the key whose history has no linearization, and the
  // number of operations on it.
  std::string key;
  size_t ops = 0;
};

LinearizabilityResult CheckLinearizable(const std::vector<RegisterOp>& history);

}  // namespace quorate::chaos

#endif  // QUORATE_CHAOS_LINEARIZABILITY_H_
