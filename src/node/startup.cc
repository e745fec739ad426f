#include "node/startup.h"

#include <algorithm>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "raft/progress.h"

namespace quorate::node {

absl::StatusOr<StartupLease> PrepareStartupLease(storage::Storage& storage,
                                                 int64_t election_timeout_ns) {
  absl::StatusOr<int64_t> previous = storage.RecordedElectionTimeout();
  if (!previous.ok()) return previous.status();
  StartupLease lease;
  lease.previous_ns = *previous;
  lease.lease_ns = std::max(*previous, election_timeout_ns);
  if (*previous > election_timeout_ns) {
    lease.record_after_ns = lease.lease_ns;
  } else if (*previous < election_timeout_ns) {
    if (absl::Status s = storage.RecordElectionTimeout(election_timeout_ns);
        !s.ok()) {
      return s;
    }
  }
  return lease;
}

absl::StatusOr<std::string> ForceNewCluster(storage::Storage& storage,
                                            raft::RestoredState* restored,
                                            uint64_t self) {
  if (!restored->snapshot.has_conf_state()) {
    return absl::FailedPreconditionError(
        "--force_new_cluster: the data directory holds no configuration "
        "(a new directory, or a member that never received one)");
  }
  // Once only: a flag left in a service's configuration must not remove,
  // at its next restart, the members added back since (they would go on
  // as a quorum of their own).
  absl::StatusOr<uint64_t> forced = storage.ForcedTerm();
  if (!forced.ok()) return forced.status();
  if (*forced != 0) {
    return absl::FailedPreconditionError(absl::StrCat(
        "--force_new_cluster: this data directory was already made a "
        "cluster of its own (in term ",
        *forced,
        "); start it without the flag. To force it again (a second "
        "disaster), remove the FORCED file from the data directory first"));
  }
  raft::Membership ms(restored->snapshot.conf_state());
  uint64_t last_index = restored->snapshot.index();
  uint64_t last_term = restored->snapshot.term();
  for (const raft::Entry& e : restored->entries) {
    last_index = e.index();
    last_term = e.term();
    if (e.type() != raft::ENTRY_TYPE_CONF_CHANGE) continue;
    raft::ConfChange cc;
    if (cc.ParseFromString(e.data())) ms.Apply(cc);
  }
  if (!ms.Contains(self)) {
    return absl::FailedPreconditionError(
        "--force_new_cluster: this member is not in the configuration its "
        "data directory holds (it was removed)");
  }
  const uint64_t term = std::max(restored->hard_state.term(), last_term) + 1;
  std::vector<raft::ConfChange> changes;
  if (ms.IsLearner(self)) {
    raft::ConfChange cc;
    cc.set_type(raft::CONF_CHANGE_TYPE_PROMOTE_LEARNER);
    cc.set_member_id(self);
    changes.push_back(cc);
  }
  size_t removed = 0;
  for (const std::vector<uint64_t>* ids : {&ms.voters(), &ms.learners()}) {
    for (uint64_t id : *ids) {
      if (id == self) continue;
      raft::ConfChange cc;
      cc.set_type(raft::CONF_CHANGE_TYPE_REMOVE);
      cc.set_member_id(id);
      changes.push_back(cc);
      ++removed;
    }
  }
  std::vector<raft::EntryPtr> entries;
  for (const raft::ConfChange& cc : changes) {
    raft::Entry e;
    e.set_index(++last_index);
    e.set_term(term);
    e.set_type(raft::ENTRY_TYPE_CONF_CHANGE);
    e.set_data(cc.SerializeAsString());
    entries.push_back(std::make_shared<const raft::Entry>(e));
  }
  raft::HardState hs;
  hs.set_term(term);
  hs.set_vote(self);
  hs.set_commit(last_index);
  if (absl::Status s = storage.Write(std::nullopt, entries, hs); !s.ok()) {
    return s;
  }
  if (absl::Status s = storage.Sync(); !s.ok()) return s;
  if (absl::Status s = storage.RecordForcedTerm(term); !s.ok()) return s;
  for (const raft::EntryPtr& e : entries) restored->entries.push_back(*e);
  restored->hard_state = hs;
  return absl::StrCat(
      "forced a new cluster: removed ", removed,
      " other members from the configuration in term ", term,
      " and committed the whole log (to index ", last_index,
      "). Writes acknowledged by the lost members that this member never "
      "received are gone; entries this member held uncommitted are now "
      "committed");
}

}  // namespace quorate::node
