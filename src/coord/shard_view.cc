#include "coord/shard_view.h"

#include <algorithm>

namespace quorate::coord {

int64_t ShardDrainWindowNs(int64_t drain_ms, double max_clock_drift,
                           int64_t margin_ns) {
  const double shrunk = static_cast<double>(drain_ms) * 1e6 *
                        (1 - max_clock_drift) / (1 + max_clock_drift);
  return std::max<int64_t>(0, static_cast<int64_t>(shrunk) - margin_ns);
}

ShardView::ShardView(std::string me, uint32_t shards, int64_t drain_ns)
    : me_(std::move(me)),
      count_(shards),
      drain_ns_(drain_ns),
      epoch_(new std::atomic<uint64_t>[shards]),
      until_(new std::atomic<int64_t>[shards]),
      view_(shards),
      seen_revoke_(shards, 0),
      releasing_(shards, 0) {
  for (uint32_t s = 0; s < count_; ++s) {
    epoch_[s].store(0);
    until_[s].store(kNever);
  }
}

uint64_t ShardView::Owns(uint32_t shard, int64_t now_ns) const {
  if (shard >= count_) return 0;
  const uint64_t e = epoch_[shard].load(std::memory_order_acquire);
  if (e == 0) return 0;
  const int64_t until = until_[shard].load(std::memory_order_acquire);
  if (until != kNever && now_ns >= until) return 0;
  return e;
}

int64_t ShardView::Until(uint32_t shard) const {
  return shard < count_ ? until_[shard].load(std::memory_order_acquire)
                        : kNever;
}

ShardView::Change ShardView::Update(uint32_t s, const ShardState& st,
                                    bool at_start, int64_t now_ns) {
  Change out;
  if (s >= count_) return out;
  const bool mine = st.owner == me_ && st.phase != ShardPhase::kUnowned;
  const ShardState old = view_[s];
  view_[s] = st;
  if (!mine) {
    epoch_[s].store(0, std::memory_order_release);
    return out;
  }
  const bool new_tenure = old.owner != me_ || old.epoch != st.epoch ||
                          old.phase == ShardPhase::kUnowned;
  if (new_tenure && releasing_[s] != st.epoch) {
    until_[s].store(kNever, std::memory_order_release);
    epoch_[s].store(st.epoch, std::memory_order_release);
    out.assigned = st.epoch;
  }
  const bool held = epoch_[s].load(std::memory_order_acquire) == st.epoch;
  if (!held) {
    // Released here already (the view lags): nothing to drain.
  } else if (st.phase == ShardPhase::kRevoking) {
    if (at_start && st.acked) {
      // Acknowledged before this view began, at a time not known here:
      // its drain is over already.
      until_[s].store(0, std::memory_order_release);
    } else if (seen_revoke_[s] != st.epoch) {
      seen_revoke_[s] = st.epoch;
      // Counted from now, before the acknowledgement is sent: never later
      // than the leader's deadline, which counts from its apply.
      until_[s].store(now_ns + drain_ns_, std::memory_order_release);
      out.revoke_epoch = st.epoch;
    }
  } else if (!new_tenure) {
    until_[s].store(kNever, std::memory_order_release);  // called off
    seen_revoke_[s] = 0;
  }
  return out;
}

uint64_t ShardView::TakeRelease(uint32_t shard) {
  if (shard >= count_) return 0;
  const uint64_t epoch = epoch_[shard].exchange(0);  // Owns() is false now
  if (epoch != 0) releasing_[shard] = epoch;
  return releasing_[shard];  // a release that failed is sent again
}

void ShardView::ReleaseDone(uint32_t shard, uint64_t epoch) {
  if (shard < count_ && releasing_[shard] == epoch) releasing_[shard] = 0;
}

std::vector<std::pair<uint32_t, uint64_t>> ShardView::PendingReleases() const {
  std::vector<std::pair<uint32_t, uint64_t>> out;
  for (uint32_t s = 0; s < count_; ++s) {
    if (releasing_[s] != 0) out.emplace_back(s, releasing_[s]);
  }
  return out;
}

std::vector<uint32_t> ShardView::Due(int64_t now_ns) const {
  std::vector<uint32_t> out;
  for (uint32_t s = 0; s < count_; ++s) {
    const int64_t until = until_[s].load(std::memory_order_acquire);
    if (until != kNever && now_ns >= until &&
        epoch_[s].load(std::memory_order_acquire) != 0) {
      out.push_back(s);
    }
  }
  return out;
}

void ShardView::DropAll() {
  for (uint32_t s = 0; s < count_; ++s) {
    epoch_[s].store(0, std::memory_order_release);
  }
}

}  // namespace quorate::coord
