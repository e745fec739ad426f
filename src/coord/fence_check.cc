#include "coord/fence_check.h"

#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "coord/campaign.h"
#include "coord/shard_group.h"

namespace quorate::coord {

absl::StatusOr<FenceTarget> ParseFenceName(absl::string_view name) {
  FenceTarget t;
  if (name == "cluster") return t;
  const std::vector<absl::string_view> parts = absl::StrSplit(name, '/');
  if (parts.size() == 2 && (parts[0] == "lock" || parts[0] == "election")) {
    t.kind = parts[0] == "lock" ? FenceTarget::Kind::kLock
                                : FenceTarget::Kind::kElection;
    t.name = std::string(parts[1]);
    if (absl::Status s = CheckName("an election or lock name", t.name);
        !s.ok()) {
      return s;
    }
    return t;
  }
  if (parts.size() == 2 && absl::SimpleAtoi(parts[1], &t.shard) &&
      ShardGroupPrefix(parts[0]).ok()) {
    t.kind = FenceTarget::Kind::kShard;
    t.name = std::string(parts[0]);
    return t;
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "fence name '", name,
      "' names no holder: it is GROUP/SHARD, lock/NAME, election/NAME or "
      "cluster"));
}

absl::StatusOr<FenceHolder> ReadFenceHolder(const KvStore& store,
                                            const FenceTarget& target) {
  client::RangeRequest q;
  FenceHolder h;
  if (target.kind == FenceTarget::Kind::kShard) {
    absl::StatusOr<std::string> prefix = ShardGroupPrefix(target.name);
    if (!prefix.ok()) return prefix.status();
    q.set_key(ShardStateKey(*prefix, target.shard));
    absl::StatusOr<client::RangeResponse> r = store.Range(q);
    if (!r.ok()) return r.status();
    if (r->kvs_size() == 0) {
      return absl::NotFoundError(absl::StrCat("shard group '", target.name,
                                              "' has no shard ", target.shard));
    }
    absl::StatusOr<ShardState> st = ParseShardState(r->kvs(0).value());
    if (!st.ok()) return st.status();
    h.epoch = st->epoch;
    h.held = st->phase != ShardPhase::kUnowned;
    return h;
  }
  if (target.kind == FenceTarget::Kind::kCluster) {
    return absl::InvalidArgumentError(
        "the cluster's holder is its leader: ask the leader for its term");
  }
  absl::StatusOr<std::string> prefix = CampaignPrefix(
      target.kind == FenceTarget::Kind::kLock ? CampaignKind::kLock
                                              : CampaignKind::kElection,
      target.name);
  if (!prefix.ok()) return prefix.status();
  // The holder is the candidate whose key came first.
  q.set_key(*prefix);
  q.set_range_end(PrefixEnd(*prefix));
  q.set_sort_target(client::RangeRequest::CREATE);
  q.set_sort_order(client::RangeRequest::ASCEND);
  q.set_limit(1);
  q.set_keys_only(true);
  absl::StatusOr<client::RangeResponse> r = store.Range(q);
  if (!r.ok()) return r.status();
  if (r->kvs_size() > 0) {
    h.epoch = r->kvs(0).create_revision();
    h.held = true;
  }
  return h;
}

absl::Status FenceVerdict(absl::string_view name, uint64_t epoch,
                          const FenceHolder& now) {
  if (now.held && epoch == now.epoch) return absl::OkStatus();
  if (!now.held && epoch >= now.epoch) {
    return absl::FailedPreconditionError(absl::StrCat(
        "fence '", name, "': epoch ", epoch,
        " is not held: no one holds it now",
        now.epoch > 0
            ? absl::StrCat(" (the last holder's epoch was ", now.epoch, ")")
            : ""));
  }
  if (epoch < now.epoch) {
    return absl::FailedPreconditionError(
        absl::StrCat("fence '", name, "': epoch ", epoch, " is below the ",
                     now.held ? "current" : "last", " holder's, ", now.epoch,
                     ": a newer holder has taken over; drop this work"));
  }
  return absl::FailedPreconditionError(absl::StrCat(
      "fence '", name, "': epoch ", epoch, " is not the current holder's, ",
      now.epoch, " (a waiter's token, or one never issued)"));
}

}  // namespace quorate::coord
