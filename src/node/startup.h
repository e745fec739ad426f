// node/startup.h: the start-up lease a member keeps across a change of its
// election timeout T. The node and the simulator both start members
// through it.
//
// A member promises, with each append it acknowledges, to vote for no new
// leader for T (its own clock) after it heard from the leader; the
// partition guard's windows rely on that promise (docs/design.md, "The
// partition guard"). A member restarted with a *shorter* T must still keep
// the promises its last run made under the longer one: it casts no vote
// for the old T after it starts, and records the new T only once they
// have all expired. Storage's TIMING file holds the T of the last run.
//
//   absl::StatusOr<StartupLease> lease = PrepareStartupLease(storage, t_ns);
//   config.startup_lease_ns = lease->lease_ns;
//   ... lease->record_after_ns later: storage.RecordElectionTimeout(t_ns).
#ifndef QUORATE_NODE_STARTUP_H_
#define QUORATE_NODE_STARTUP_H_

#include <cstdint>

#include "absl/status/statusor.h"
#include "raft/raft.h"
#include "storage/storage.h"

namespace quorate::node {

struct StartupLease {
  // For raft::Config::startup_lease_ns: the longer of T and the last run's.
  int64_t lease_ns = 0;
  // The T the last run recorded; 0 if none.
  int64_t previous_ns = 0;
  // If above 0, record the new T (Storage::RecordElectionTimeout) this long
  // after starting: the last run's T was longer, and its promises last
  // until then. A crash before that leaves the longer T recorded, which is
  // safe: the next start keeps the longer lease again.
  int64_t record_after_ns = 0;
};

// Reads the last run's T and, when the new `election_timeout_ns` is at
// least as long, records the new one at once (durably) before returning.
absl::StatusOr<StartupLease> PrepareStartupLease(storage::Storage& storage,
                                                 int64_t election_timeout_ns);

// Disaster recovery (quorate-node --force_new_cluster): makes `self` the
// only voter of the configuration `storage` holds, so that it can lead
// alone. Appends, in a new term, one configuration entry per other member
// (a promotion first, if `self` is a learner), and a hard state that
// commits the whole log: entries this member holds that were never
// committed are kept, and whatever only the lost members held is gone.
// Written and synced before the core starts; `restored` gets them too.
// Records the term in the directory (Storage::RecordForcedTerm): it runs
// once. Returns what it did, in a sentence for the log.
// FAILED_PRECONDITION if the directory holds no configuration, does not
// list `self`, or was forced already.
absl::StatusOr<std::string> ForceNewCluster(storage::Storage& storage,
                                            raft::RestoredState* restored,
                                            uint64_t self);

}  // namespace quorate::node

#endif  // QUORATE_NODE_STARTUP_H_
