#include "raft/log.h"

#include <algorithm>
#include <utility>

#include "util/check.h"

namespace quorate::raft {

RaftLog::RaftLog(uint64_t snapshot_index, uint64_t snapshot_term)
    : snapshot_index_(snapshot_index),
      snapshot_term_(snapshot_term),
      stable_index_(snapshot_index),
      unpersisted_from_(snapshot_index + 1) {}

uint64_t RaftLog::last_term() const {
  return entries_.empty() ? snapshot_term_ : entries_.back()->term();
}

std::optional<uint64_t> RaftLog::Term(uint64_t index) const {
  if (index == snapshot_index_) return snapshot_term_;
  if (index < snapshot_index_ || index > last_index()) return std::nullopt;
  return entries_[index - first_index()]->term();
}

bool RaftLog::MatchTerm(uint64_t index, uint64_t term) const {
  const std::optional<uint64_t> t = Term(index);
  return t.has_value() && *t == term;
}

const EntryPtr& RaftLog::Ptr(uint64_t index) const {
  QUORATE_CHECK(index >= first_index() && index <= last_index())
      << "entry " << index << " outside [" << first_index() << ", "
      << last_index() << "]";
  return entries_[index - first_index()];
}

bool RaftLog::IsUpToDate(uint64_t last_term, uint64_t last_index) const {
  const uint64_t my_term = this->last_term();
  return last_term > my_term ||
         (last_term == my_term && last_index >= this->last_index());
}

uint64_t RaftLog::FindConflictByTerm(uint64_t index, uint64_t term) const {
  index = std::min(index, last_index());
  while (index > snapshot_index_) {
    if (entries_[index - first_index()]->term() <= term) return index;
    --index;
  }
  return snapshot_index_;
}

void RaftLog::Append(Entry entry) {
  Append(std::make_shared<const Entry>(std::move(entry)));
}

void RaftLog::Append(EntryPtr entry) {
  QUORATE_CHECK_EQ(entry->index(), last_index() + 1) << "non-contiguous append";
  QUORATE_CHECK_GE(entry->term(), last_term()) << "term went back in the log";
  entries_.push_back(std::move(entry));
}

void RaftLog::Truncate(uint64_t index) {
  QUORATE_CHECK_GT(index, snapshot_index_) << "truncating into the snapshot";
  if (index > last_index()) return;
  entries_.erase(
      entries_.begin() + static_cast<std::ptrdiff_t>(index - first_index()),
      entries_.end());
  stable_index_ = std::min(stable_index_, index - 1);
  unpersisted_from_ = std::min(unpersisted_from_, index);
}

void RaftLog::Compact(uint64_t index) {
  if (index <= snapshot_index_) return;
  QUORATE_CHECK_LE(index, stable_index_)
      << "compacting entries not yet durable";
  const uint64_t term = *Term(index);
  entries_.erase(
      entries_.begin(),
      entries_.begin() + static_cast<std::ptrdiff_t>(index - snapshot_index_));
  snapshot_index_ = index;
  snapshot_term_ = term;
}

void RaftLog::Reset(uint64_t index, uint64_t term) {
  entries_.clear();
  snapshot_index_ = index;
  snapshot_term_ = term;
  stable_index_ = index;
  unpersisted_from_ = index + 1;
}

void RaftLog::MarkAllStable() {
  stable_index_ = last_index();
  unpersisted_from_ = last_index() + 1;
}

}  // namespace quorate::raft
