// Safety invariants of Raft, checked from the outside on any set of
// consensus cores: the in-memory test cluster and the simulator use the same
// checker, so a rule is written once.
//
//  - election safety: at most one leader per term;
//  - leader completeness: an entry committed in term t is in the log of
//    every leader of a later term (unless compacted into its snapshot);
//  - log matching: two logs that hold an entry with the same index and term
//    agree on every entry up to it;
//  - state machine safety: members apply the same entry at each index;
//  - a member's term and commit index never decrease while it runs, and
//    its durable term and commit never decrease, even across restarts;
//  - at most one vote per term per member, even across restarts.
//
// The first violation is kept; later ones are ignored.
#ifndef QUORATE_TESTS_RAFT_INVARIANTS_H_
#define QUORATE_TESTS_RAFT_INVARIANTS_H_

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "raft/raft.h"
#include "wire/raft.pb.h"

namespace quorate::raft::testing {

class Invariants {
 public:
  // After any step of a running member.
  void Observe(uint64_t id, const Raft& raft);
  // A member restarted: its in-memory term and commit start again from what
  // was durable, which must not be behind anything it made durable before.
  void OnRestart(uint64_t id, const Raft& raft);
  // A member applied `entry` while in term `term_now`.
  void OnApplied(uint64_t id, const Entry& entry, uint64_t term_now);
  // A member made `hs` durable.
  void OnPersisted(uint64_t id, const HardState& hs);
  // Leader completeness and log matching over the running members.
  void CheckLogs(const std::vector<std::pair<uint64_t, const Raft*>>& live);

  bool ok() const { return violation_.empty(); }
  const std::string& violation() const { return violation_; }
  uint64_t leaders_seen() const { return leaders_.size(); }

 private:
  void Fail(std::string what);

  struct Applied {
    uint64_t term;
    std::string data;
    // Lowest term any applying member was in: an upper bound of the term
    // in which the entry was committed.
    uint64_t committed_by_term;
  };
  struct MemberState {
    uint64_t max_term = 0;
    uint64_t max_durable_term = 0;
    uint64_t max_commit = 0;
    uint64_t max_durable_commit = 0;
    std::map<uint64_t, uint64_t> votes;  // term -> vote, as persisted
  };
  std::map<uint64_t, MemberState> members_;
  std::map<uint64_t, uint64_t> leaders_;  // term -> leader
  std::map<uint64_t, Applied> applied_;   // index -> first applied entry
  std::string violation_;
};

}  // namespace quorate::raft::testing

#endif  // QUORATE_TESTS_RAFT_INVARIANTS_H_
