// raft/validate.h: what a message from a peer must look like before the
// core acts on it.
//
// Peers are members, but their messages cross a network, and a process that
// is not a member may reach the port (in plaintext nothing stops it). So
// every message is checked before Raft::Step changes anything: the checks
// here need only the message itself; Raft::Step adds those that need the
// core's state (an acknowledgement beyond the leader's log, a second leader
// in a term, an append that would overwrite committed entries). A message
// that fails either is refused with INVALID_ARGUMENT naming what is wrong,
// and the core is left exactly as it was. The core's always-on checks
// (QUORATE_CHECK) guard its own invariants only; no input reaches them.
//
//   if (absl::Status s = ValidateMessage(m); !s.ok()) return s;
#ifndef QUORATE_RAFT_VALIDATE_H_
#define QUORATE_RAFT_VALIDATE_H_

#include <cstdint>

#include "absl/status/status.h"
#include "wire/raft.pb.h"

namespace quorate::raft {

// Terms and indices are refused above this: far beyond anything a cluster
// reaches (a term per microsecond lasts 146,000 years), and far enough below
// 2^64 that `term + 1` and `index + entries` never wrap.
inline constexpr uint64_t kMaxTerm = uint64_t{1} << 62;
inline constexpr uint64_t kMaxIndex = uint64_t{1} << 62;

// OK if `m` is well formed for its type: a known type, sender and recipient
// set, terms and indices in range, entries only on appends and contiguous
// after `index` with terms between `log_term` and `term`, configuration
// entries readable and well formed, snapshot chunks with a valid
// configuration and a consistent offset. INVALID_ARGUMENT otherwise.
absl::Status ValidateMessage(const Message& m);

// OK if `state` is a configuration a cluster can have: at least one voter,
// no member id 0, no member both voter and learner, none listed twice.
absl::Status ValidateConfState(const ConfState& state);

// OK if `md` describes a snapshot a cluster can have: index and term in
// range (a term of at least 1 past index 0) and a valid configuration, or
// none at all at index 0 (a member added at runtime, before it hears from
// its leader). Raft::Create checks what storage restored with it; a
// received chunk gets the same checks.
absl::Status ValidateSnapshotMetadata(const SnapshotMetadata& md);

// OK if `change` is a well-formed single-server change (a known type and a
// member id); whether it applies to a configuration is Membership::Apply's.
absl::Status ValidateConfChange(const ConfChange& change);

}  // namespace quorate::raft

#endif  // QUORATE_RAFT_VALIDATE_H_
