// raft/log.h: the core's in-memory view of the replicated log.
//
// Holds every entry after the latest snapshot (index, term). Entries at or
// below the snapshot have been compacted away; only their last term and index
// are remembered. The log also tracks which entries the runtime has made
// durable (the stable prefix) and which still must be handed out in a Ready.
//
// Obligations:
//  - Entries are contiguous: entry i is at position i - first_index().
//  - Truncate() never removes a committed entry; the caller checks this,
//    because only it knows the commit index.
//  - stable_index() only moves forward through MarkStable(), which the core
//    calls from Advance() once the runtime reported the entries durable, and
//    back through Truncate(), because overwritten entries are no longer the
//    ones on disk. Reset() (a snapshot from the leader) sets it to the
//    snapshot index at once; the core itself tracks whether that snapshot
//    is durable yet.
#ifndef QUORATE_RAFT_LOG_H_
#define QUORATE_RAFT_LOG_H_

#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <vector>

#include "wire/raft.pb.h"

namespace quorate::raft {

// Entries are immutable once in the log and shared, not copied, with the
// Readies that hand them out for persisting and applying.
using EntryPtr = std::shared_ptr<const Entry>;

// Bytes an entry counts for in message, in-flight and uncommitted limits:
// its data plus a fixed overhead, so that empty entries count too.
inline uint64_t EntryBytes(const Entry& e) { return e.data().size() + 16; }

class RaftLog {
 public:
  // An empty log after a snapshot at (snapshot_index, snapshot_term);
  // (0, 0) for a new member.
  RaftLog(uint64_t snapshot_index, uint64_t snapshot_term);

  uint64_t snapshot_index() const { return snapshot_index_; }
  uint64_t snapshot_term() const { return snapshot_term_; }
  uint64_t first_index() const { return snapshot_index_ + 1; }
  uint64_t last_index() const { return snapshot_index_ + entries_.size(); }
  uint64_t last_term() const;

  // Term of the entry at `index`; the snapshot's term at its index; nullopt
  // when the index was compacted away or is past the end.
  std::optional<uint64_t> Term(uint64_t index) const;
  bool MatchTerm(uint64_t index, uint64_t term) const;
  // Requires first_index() <= index <= last_index().
  const Entry& At(uint64_t index) const { return *Ptr(index); }
  const EntryPtr& Ptr(uint64_t index) const;

  // Raft §5.4.1: is a log ending at (last_term, last_index) at least as
  // up-to-date as this one?
  bool IsUpToDate(uint64_t last_term, uint64_t last_index) const;

  // The largest index <= `index` whose term is <= `term`, for fast
  // backtracking after a rejected append. Returns the snapshot index when
  // nothing later qualifies.
  uint64_t FindConflictByTerm(uint64_t index, uint64_t term) const;

  // Appends one entry; its index must be last_index() + 1.
  void Append(Entry entry);
  void Append(EntryPtr entry);
  // Removes every entry from `index` on. Requires index > snapshot_index().
  void Truncate(uint64_t index);
  // Discards entries up to and including `index`, which becomes the
  // snapshot point. Requires index <= stable_index().
  void Compact(uint64_t index);
  // Replaces the whole log with a snapshot at (index, term).
  void Reset(uint64_t index, uint64_t term);

  // Calls emit(const EntryPtr&) for entries in [lo, hi]: at most `max_bytes` of
  // data, but at least one entry when lo <= hi. Returns the last index emitted
  // (lo - 1 if none).
  template <typename Emit>
  uint64_t Slice(uint64_t lo, uint64_t hi, uint64_t max_bytes,
                 Emit&& emit) const;

  // --- Durability tracking for the Ready/Advance contract. ---
  uint64_t stable_index() const { return stable_index_; }
  // First index not yet handed to the runtime for persisting.
  uint64_t unpersisted_from() const { return unpersisted_from_; }
  bool HasUnpersisted() const { return unpersisted_from_ <= last_index(); }
  // Everything up to last_index() has been handed out.
  void MarkHandedOut() { unpersisted_from_ = last_index() + 1; }
  // The runtime made everything it was handed durable. Entries truncated
  // since then are not counted.
  void MarkStable() { stable_index_ = unpersisted_from_ - 1; }
  // Restart: everything in the log came from disk.
  void MarkAllStable();

 private:
  uint64_t snapshot_index_;
  uint64_t snapshot_term_;
  std::deque<EntryPtr> entries_;
  uint64_t stable_index_;
  uint64_t unpersisted_from_;
};

template <typename Emit>
uint64_t RaftLog::Slice(uint64_t lo, uint64_t hi, uint64_t max_bytes,
                        Emit&& emit) const {
  uint64_t bytes = 0;
  uint64_t last = lo - 1;
  for (uint64_t i = lo; i <= hi; ++i) {
    const EntryPtr& e = Ptr(i);
    const uint64_t size = EntryBytes(*e);
    if (i > lo && bytes + size > max_bytes) break;
    bytes += size;
    emit(e);
    last = i;
  }
  return last;
}

}  // namespace quorate::raft

#endif  // QUORATE_RAFT_LOG_H_
