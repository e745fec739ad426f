#include "node/startup.h"

#include <algorithm>

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

}  // namespace quorate::node
