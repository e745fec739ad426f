// quorate/fence.h: fence names and the rule a resource applies.
#include "quorate/fence.h"

#include "absl/strings/str_cat.h"
#include "coord/campaign.h"

namespace quorate {

namespace {
constexpr size_t kMaxFenceName = 512;
}  // namespace

Fence ShardFence(absl::string_view group, uint32_t shard, uint64_t epoch) {
  return Fence{absl::StrCat(group, "/", shard), epoch};
}

Fence LockFence(absl::string_view lock, uint64_t token) {
  return Fence{coord::CampaignFenceName(coord::CampaignKind::kLock, lock),
               token};
}

Fence ElectionFence(absl::string_view election, uint64_t token) {
  return Fence{
      coord::CampaignFenceName(coord::CampaignKind::kElection, election),
      token};
}

Fence ClusterFence(const FencingToken& token) {
  // One leader per term, and every active member acts under it: the term
  // alone orders the windows.
  return Fence{"cluster", token.term};
}

absl::Status CheckFence(const Fence& fence, uint64_t highest) {
  if (fence.name.empty() || fence.name.size() > kMaxFenceName) {
    return absl::InvalidArgumentError(
        absl::StrCat("a fence name has 1 to ", kMaxFenceName, " bytes; got ",
                     fence.name.size()));
  }
  if (fence.epoch == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("fence '", fence.name,
                     "': epoch 0 is no holder's (take the epoch from Owns, "
                     "Held or IsLeader)"));
  }
  if (fence.epoch < highest) {
    return absl::FailedPreconditionError(
        absl::StrCat("fence '", fence.name, "': epoch ", fence.epoch,
                     " is below the highest accepted, ", highest,
                     ": a newer holder has taken over; drop this work"));
  }
  return absl::OkStatus();
}

}  // namespace quorate
