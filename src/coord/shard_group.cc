#include "coord/shard_group.h"

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "coord/campaign.h"

namespace quorate::coord {

absl::Status CheckShardGroupConfig(const ShardGroupConfig& c) {
  if (c.shards == 0 || c.shards > kMaxShardsPerGroup) {
    return absl::InvalidArgumentError(absl::StrCat("a shard group has 1 to ",
                                                   kMaxShardsPerGroup,
                                                   " shards, not ", c.shards));
  }
  if (c.max_processors == 0 || c.max_processors > kMaxProcessorsPerGroup) {
    return absl::InvalidArgumentError(
        absl::StrCat("a shard group allows 1 to ", kMaxProcessorsPerGroup,
                     " processors, not ", c.max_processors));
  }
  if (c.max_in_motion == 0) {
    return absl::InvalidArgumentError(
        "at least one shard must be allowed in motion");
  }
  if (c.drain_ms <= 0) {
    return absl::InvalidArgumentError("the drain deadline must be positive");
  }
  return absl::OkStatus();
}

absl::StatusOr<ShardGroup> ShardGroup::Create(const ShardGroupConfig& config,
                                              Unsafe unsafe) {
  if (absl::Status s = CheckShardGroupConfig(config); !s.ok()) return s;
  return ShardGroup(config, unsafe);
}

absl::StatusOr<ShardGroup> ShardGroup::Restore(
    const ShardGroupConfig& config, std::map<std::string, Member> members,
    std::vector<ShardState> shards, Unsafe unsafe) {
  if (absl::Status s = CheckShardGroupConfig(config); !s.ok()) {
    return absl::DataLossError(s.message());
  }
  if (shards.size() != config.shards) {
    return absl::DataLossError(absl::StrCat("a shard group of ", config.shards,
                                            " shards holds ", shards.size()));
  }
  for (const ShardState& st : shards) {
    const bool owned = st.phase != ShardPhase::kUnowned;
    if (owned != !st.owner.empty() ||
        (!st.owner.empty() && members.count(st.owner) == 0) ||
        (!st.next.empty() && members.count(st.next) == 0) ||
        (st.phase != ShardPhase::kRevoking && (!st.next.empty() || st.acked))) {
      return absl::DataLossError(
          "a shard group's shard names an owner that is not a member, or "
          "is in no phase it could be in");
    }
  }
  ShardGroup g(config, unsafe);
  g.members_ = std::move(members);
  g.shards_ = std::move(shards);
  return g;
}

ShardGroup::ShardGroup(const ShardGroupConfig& config, Unsafe unsafe)
    : config_(config), unsafe_(unsafe), shards_(config.shards) {}

uint32_t ShardGroup::in_motion() const {
  uint32_t n = 0;
  for (const ShardState& s : shards_) n += s.phase == ShardPhase::kRevoking;
  return n;
}

absl::Status ShardGroup::Join(const ShardProcessor& p) {
  changed_.clear();
  if (p.id.empty()) {
    return absl::InvalidArgumentError("a processor needs an id");
  }
  if (p.weight < 1 || p.weight > 1000) {
    return absl::InvalidArgumentError(
        absl::StrCat("a processor's weight is 1 to 1000, not ", p.weight));
  }
  auto it = members_.find(p.id);
  if (it == members_.end() && members_.size() >= config_.max_processors) {
    return absl::ResourceExhaustedError(
        absl::StrCat("the group has its ", config_.max_processors,
                     " processors already (its limit)"));
  }
  members_[p.id] = Member{p, false};
  Rebalance();
  return absl::OkStatus();
}

absl::Status ShardGroup::Leave(const std::string& id) {
  changed_.clear();
  auto it = members_.find(id);
  if (it == members_.end()) {
    return absl::NotFoundError(
        absl::StrCat("processor '", id, "' is not in the group"));
  }
  it->second.leaving = true;
  Rebalance();
  ForgetLeavers();
  return absl::OkStatus();
}

void ShardGroup::SessionEnded(const std::string& id) {
  changed_.clear();
  if (unsafe_.ignore_session_end || members_.erase(id) == 0) return;
  for (uint32_t s = 0; s < shards_.size(); ++s) {
    if (shards_[s].owner == id) HandOver(s, "");
  }
  Rebalance();
}

absl::Status ShardGroup::CheckOwner(uint32_t shard, const std::string& id,
                                    uint64_t epoch) const {
  if (shard >= shards_.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("shard ", shard, " is out of range (the group has ",
                     shards_.size(), ")"));
  }
  const ShardState& st = shards_[shard];
  if (st.phase == ShardPhase::kUnowned || st.owner != id || st.epoch != epoch) {
    return absl::FailedPreconditionError(absl::StrCat(
        "processor '", id, "' does not own shard ", shard, " at epoch ", epoch,
        st.phase == ShardPhase::kUnowned
            ? std::string(" (nobody owns it)")
            : absl::StrCat(" (its owner is '", st.owner, "' at epoch ",
                           st.epoch, ")")));
  }
  return absl::OkStatus();
}

absl::Status ShardGroup::AckRevoke(uint32_t shard, const std::string& id,
                                   uint64_t epoch) {
  changed_.clear();
  if (absl::Status s = CheckOwner(shard, id, epoch); !s.ok()) return s;
  ShardState& st = shards_[shard];
  if (st.phase != ShardPhase::kRevoking) {
    return absl::FailedPreconditionError(
        absl::StrCat("shard ", shard, " is not being revoked"));
  }
  if (!st.acked) {
    st.acked = true;
    Changed(shard);
  }
  return absl::OkStatus();
}

absl::Status ShardGroup::Release(uint32_t shard, const std::string& id,
                                 uint64_t epoch) {
  changed_.clear();
  if (absl::Status s = CheckOwner(shard, id, epoch); !s.ok()) return s;
  const ShardState& st = shards_[shard];
  HandOver(shard, st.phase == ShardPhase::kRevoking ? st.next : "");
  ForgetLeavers();
  Rebalance();
  return absl::OkStatus();
}

absl::Status ShardGroup::DrainExpired(uint32_t shard, uint64_t epoch) {
  changed_.clear();
  if (shard >= shards_.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("shard ", shard, " is out of range"));
  }
  const ShardState& st = shards_[shard];
  if (st.phase != ShardPhase::kRevoking || st.epoch != epoch || !st.acked) {
    return absl::FailedPreconditionError(absl::StrCat(
        "shard ", shard, " has no acknowledged revocation at epoch ", epoch));
  }
  HandOver(shard, st.next);
  ForgetLeavers();
  Rebalance();
  return absl::OkStatus();
}

void ShardGroup::HandOver(uint32_t shard, const std::string& to) {
  ShardState& st = shards_[shard];
  // Copied first: `to` may be this shard's own `next`.
  const std::string owner = to;
  st.owner = owner;
  st.next.clear();
  st.acked = false;
  st.phase = owner.empty() ? ShardPhase::kUnowned : ShardPhase::kOwned;
  if (!owner.empty() && (!unsafe_.keep_epoch || st.epoch == 0)) ++st.epoch;
  Changed(shard);
}

void ShardGroup::ForgetLeavers() {
  for (auto it = members_.begin(); it != members_.end();) {
    bool owns = false;
    if (it->second.leaving) {
      for (const ShardState& st : shards_) owns = owns || st.owner == it->first;
    }
    if (it->second.leaving && !owns) {
      it = members_.erase(it);
    } else {
      ++it;
    }
  }
}

void ShardGroup::Rebalance() {
  std::vector<ShardProcessor> active;
  for (const auto& [id, m] : members_) {
    if (!m.leaving) active.push_back(m.processor);
  }
  // Where each shard is, or is going: what the assignment should keep.
  std::vector<std::string> current(shards_.size());
  for (size_t s = 0; s < shards_.size(); ++s) {
    const ShardState& st = shards_[s];
    if (st.phase == ShardPhase::kRevoking) {
      current[s] = st.next;
    } else if (st.phase == ShardPhase::kOwned) {
      auto m = members_.find(st.owner);
      if (m != members_.end() && !m->second.leaving) current[s] = st.owner;
    }
  }
  const ShardAssignment target =
      AssignShards(static_cast<uint32_t>(shards_.size()), active, current);
  // First what frees or needs no room: orphans get their owner, and
  // revocations are retargeted or called off. Then new revocations, up to
  // K, lower shards first (one pass would skip a shard while a later
  // cancellation was still to free room).
  for (uint32_t s = 0; s < shards_.size(); ++s) {
    ShardState& st = shards_[s];
    const std::string& to = target.owner[s];
    if (st.phase == ShardPhase::kUnowned) {
      if (!to.empty()) HandOver(s, to);
    } else if (st.phase == ShardPhase::kRevoking) {
      if (to == st.owner) {  // it stays after all
        st.phase = ShardPhase::kOwned;
        st.next.clear();
        st.acked = false;
        Changed(s);
      } else if (to != st.next) {
        st.next = to;
        Changed(s);
      }
    }
  }
  uint32_t moving = in_motion();
  for (uint32_t s = 0; s < shards_.size(); ++s) {
    ShardState& st = shards_[s];
    const std::string& to = target.owner[s];
    if (st.phase != ShardPhase::kOwned || to == st.owner) continue;
    if (unsafe_.skip_drain) {
      HandOver(s, to);
      continue;
    }
    if (moving >= config_.max_in_motion) break;  // the rest wait their turn
    st.phase = ShardPhase::kRevoking;
    st.next = to;
    st.acked = false;
    ++moving;
    Changed(s);
  }
}

std::vector<DrainingShard> DrainClock::Scan(
    const std::vector<DrainingShard>& draining, int64_t now_ns) {
  std::vector<DrainingShard> due;
  std::map<std::tuple<std::string, uint32_t, uint64_t>, int64_t> seen;
  for (const DrainingShard& d : draining) {
    const auto key = std::make_tuple(d.group, d.shard, d.epoch);
    auto it = first_seen_.find(key);
    int64_t first = it == first_seen_.end() ? now_ns : it->second;
    if (now_ns - first >= d.drain_ms * 1'000'000) {
      due.push_back(d);
      first = now_ns;
    }
    seen.emplace(key, first);
  }
  first_seen_ = std::move(seen);  // what no longer drains is forgotten
  return due;
}

const char* ShardPhaseName(ShardPhase phase) {
  switch (phase) {
    case ShardPhase::kUnowned:
      return "unowned";
    case ShardPhase::kOwned:
      return "owned";
    case ShardPhase::kRevoking:
      return "draining";
  }
  return "?";
}

absl::StatusOr<std::string> ShardGroupPrefix(absl::string_view group) {
  if (absl::Status s = CheckName("a shard group's name", group); !s.ok()) {
    return s;
  }
  return absl::StrCat(kShardKeyPrefix, group, "/");
}

absl::Status CheckNewShardGroupName(absl::string_view group) {
  if (absl::Status s = ShardGroupPrefix(group).status(); !s.ok()) return s;
  // A shard's fence name is "GROUP/SHARD" (quorate/fence.h): a group
  // called "lock" or "election" would share its fences with the locks or
  // elections named by a number.
  if (group == "lock" || group == "election") {
    return absl::InvalidArgumentError(
        absl::StrCat("a shard group cannot be called '", group,
                     "': its fence names would be those of the ", group,
                     "s named by a number"));
  }
  return absl::OkStatus();
}

std::string ShardConfigKey(absl::string_view prefix) {
  return absl::StrCat(prefix, "config");
}

std::string ShardStateKey(absl::string_view prefix, uint32_t shard) {
  return absl::StrFormat("%sshard/%05u", prefix, shard);
}

std::string ShardMemberKey(absl::string_view prefix, absl::string_view id) {
  return absl::StrCat(prefix, "member/", id);
}

std::string FormatShardConfig(const ShardGroupConfig& c) {
  return absl::StrCat("shards=", c.shards, " max_processors=", c.max_processors,
                      " max_in_motion=", c.max_in_motion,
                      " drain_ms=", c.drain_ms);
}

std::string FormatShardState(const ShardState& st) {
  return absl::StrCat(st.owner.empty() ? "-" : st.owner, " ", st.epoch, " ",
                      ShardPhaseName(st.phase), " ",
                      st.next.empty() ? "-" : st.next, " ", st.acked ? 1 : 0);
}

std::string FormatShardMember(const ShardGroup::Member& m) {
  return absl::StrCat(m.processor.zone.empty() ? "-" : m.processor.zone, " ",
                      m.processor.weight, " ",
                      m.leaving ? "leaving" : "active");
}

absl::StatusOr<ShardState> ParseShardState(absl::string_view value) {
  const std::vector<absl::string_view> f =
      absl::StrSplit(value, ' ', absl::SkipEmpty());
  ShardState st;
  bool ok = f.size() == 5 && absl::SimpleAtoi(f[1], &st.epoch) &&
            (f[4] == "0" || f[4] == "1");
  if (ok) {
    if (f[2] == "unowned") {
      st.phase = ShardPhase::kUnowned;
    } else if (f[2] == "owned") {
      st.phase = ShardPhase::kOwned;
    } else if (f[2] == "draining") {
      st.phase = ShardPhase::kRevoking;
    } else {
      ok = false;
    }
  }
  if (!ok) {
    return absl::InvalidArgumentError(
        absl::StrCat("not a shard's state: '", value, "'"));
  }
  st.owner = f[0] == "-" ? "" : std::string(f[0]);
  st.next = f[3] == "-" ? "" : std::string(f[3]);
  st.acked = f[4] == "1";
  return st;
}

std::optional<uint32_t> ShardOfKey(absl::string_view prefix,
                                   absl::string_view key) {
  const std::string head = absl::StrCat(prefix, "shard/");
  if (!absl::StartsWith(key, head)) return std::nullopt;
  uint32_t shard = 0;
  if (!absl::SimpleAtoi(key.substr(head.size()), &shard)) return std::nullopt;
  return shard;
}

}  // namespace quorate::coord
