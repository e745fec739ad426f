#include "raft/progress.h"

#include <algorithm>

#include "util/check.h"

namespace quorate::raft {

Inflights::Inflights(size_t max_messages, uint64_t max_bytes)
    : slots_(std::max<size_t>(max_messages, 1)), max_bytes_(max_bytes) {}

void Inflights::Add(uint64_t index, uint64_t bytes) {
  QUORATE_CHECK(!Full()) << "inflight window overflow";
  slots_[(start_ + count_) % slots_.size()] = Slot{index, bytes};
  ++count_;
  bytes_ += bytes;
}

void Inflights::FreeUpTo(uint64_t index) {
  while (count_ > 0 && slots_[start_].index <= index) FreeFirst();
}

void Inflights::FreeFirst() {
  if (count_ == 0) return;
  bytes_ -= slots_[start_].bytes;
  start_ = (start_ + 1) % slots_.size();
  --count_;
}

void Inflights::Reset() {
  start_ = 0;
  count_ = 0;
  bytes_ = 0;
}

Progress::Progress(uint64_t member_id, bool is_learner,
                   size_t max_inflight_msgs, uint64_t max_inflight_bytes)
    : id(member_id),
      learner(is_learner),
      inflights(max_inflight_msgs, max_inflight_bytes) {}

bool Progress::MaybeUpdate(uint64_t index) {
  bool updated = false;
  if (index > match) {
    match = index;
    updated = true;
    probe_sent = false;
  }
  next = std::max(next, index + 1);
  return updated;
}

bool Progress::MaybeDecrTo(uint64_t rejected, uint64_t hint) {
  if (state == State::kReplicate) {
    // Already matched beyond the rejected probe: an old message.
    if (rejected <= match) return false;
    next = match + 1;
    return true;
  }
  // In probe state only the answer to the last probe counts.
  if (next - 1 != rejected) return false;
  next = std::max<uint64_t>(std::min(rejected, hint + 1), 1);
  probe_sent = false;
  return true;
}

void Progress::BecomeProbe() {
  if (state == State::kSnapshot) {
    next = std::max(match + 1, snapshot_index + 1);
  } else {
    next = match + 1;
  }
  state = State::kProbe;
  probe_sent = false;
  snapshot_index = 0;
  snapshot_offset = 0;
  inflights.Reset();
}

void Progress::BecomeReplicate() {
  state = State::kReplicate;
  next = match + 1;
  probe_sent = false;
  snapshot_index = 0;
  inflights.Reset();
}

void Progress::BecomeSnapshot(uint64_t index) {
  state = State::kSnapshot;
  snapshot_index = index;
  snapshot_offset = 0;
  probe_sent = false;
  inflights.Reset();
}

bool Progress::IsPaused() const {
  switch (state) {
    case State::kProbe:
      return probe_sent;
    case State::kReplicate:
      return inflights.Full();
    case State::kSnapshot:
      return true;
  }
  return true;
}

namespace {

bool SortedContains(const std::vector<uint64_t>& v, uint64_t id) {
  return std::binary_search(v.begin(), v.end(), id);
}

void SortedInsert(std::vector<uint64_t>* v, uint64_t id) {
  v->insert(std::lower_bound(v->begin(), v->end(), id), id);
}

void SortedErase(std::vector<uint64_t>* v, uint64_t id) {
  auto it = std::lower_bound(v->begin(), v->end(), id);
  if (it != v->end() && *it == id) v->erase(it);
}

}  // namespace

Membership::Membership(const ConfState& state)
    : voters_(state.voters().begin(), state.voters().end()),
      learners_(state.learners().begin(), state.learners().end()) {
  std::sort(voters_.begin(), voters_.end());
  std::sort(learners_.begin(), learners_.end());
  voters_.erase(std::unique(voters_.begin(), voters_.end()), voters_.end());
  learners_.erase(std::unique(learners_.begin(), learners_.end()),
                  learners_.end());
  for (uint64_t id : voters_) {
    QUORATE_CHECK(id != 0) << "member id 0 is reserved";
    QUORATE_CHECK(!SortedContains(learners_, id))
        << "member " << id << " is both voter and learner";
  }
}

bool Membership::IsVoter(uint64_t id) const {
  return SortedContains(voters_, id);
}

bool Membership::IsLearner(uint64_t id) const {
  return SortedContains(learners_, id);
}

ConfState Membership::ToConfState() const {
  ConfState state;
  for (uint64_t id : voters_) state.add_voters(id);
  for (uint64_t id : learners_) state.add_learners(id);
  return state;
}

bool Membership::Apply(const ConfChange& change) {
  const uint64_t id = change.member_id();
  if (id == 0) return false;
  switch (change.type()) {
    case CONF_CHANGE_TYPE_ADD_VOTER:
      if (Contains(id)) return false;
      SortedInsert(&voters_, id);
      return true;
    case CONF_CHANGE_TYPE_ADD_LEARNER:
      if (Contains(id)) return false;
      SortedInsert(&learners_, id);
      return true;
    case CONF_CHANGE_TYPE_REMOVE:
      if (!Contains(id)) return false;
      if (IsVoter(id) && voters_.size() == 1) return false;
      SortedErase(&voters_, id);
      SortedErase(&learners_, id);
      return true;
    case CONF_CHANGE_TYPE_PROMOTE_LEARNER:
      if (!IsLearner(id)) return false;
      SortedErase(&learners_, id);
      SortedInsert(&voters_, id);
      return true;
    default:
      return false;
  }
}

}  // namespace quorate::raft
