// KvStore's shard groups: the commands of client.proto ShardRequest
// applied to coord/shard_group.h's state, and that state written as keys
// (shard_group.h, KEYS) in the same revision.
#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "coord/kv.h"

namespace quorate::coord {
namespace {

ShardGroupConfig ConfigOf(const client::ShardGroupCreate& c) {
  ShardGroupConfig out;
  out.shards = c.shards();
  if (c.max_processors() != 0) out.max_processors = c.max_processors();
  if (c.max_in_motion() != 0) out.max_in_motion = c.max_in_motion();
  if (c.drain_ms() != 0) out.drain_ms = c.drain_ms();
  return out;
}

bool SameConfig(const ShardGroupConfig& a, const ShardGroupConfig& b) {
  return a.shards == b.shards && a.max_processors == b.max_processors &&
         a.max_in_motion == b.max_in_motion && a.drain_ms == b.drain_ms;
}

}  // namespace

std::string KvStore::ShardProcessorId(uint64_t lease) {
  return absl::StrFormat("%016x", lease);
}

client::KvResult KvStore::ExecuteShard(const client::ShardRequest& request) {
  const std::string& name = request.group();
  absl::StatusOr<std::string> prefix = ShardGroupPrefix(name);
  if (!prefix.ok()) {
    return Result(prefix.status().code(), revision_,
                  std::string(prefix.status().message()));
  }
  if (request.kind_case() == client::ShardRequest::kCreate) {
    const ShardGroupConfig config = ConfigOf(request.create());
    if (auto it = groups_.find(name); it != groups_.end()) {
      if (SameConfig(it->second.get().config(), config)) {
        return Result(absl::StatusCode::kOk, revision_);  // a retry
      }
      return Result(
          absl::StatusCode::kAlreadyExists, revision_,
          absl::StrCat("shard group '", name, "' exists already, with ",
                       FormatShardConfig(it->second.get().config())));
    }
    absl::StatusOr<ShardGroup> g = ShardGroup::Create(config, unsafe_.shards);
    if (!g.ok()) {
      return Result(g.status().code(), revision_,
                    std::string(g.status().message()));
    }
    PutLocked(ShardConfigKey(*prefix), FormatShardConfig(config), revision_ + 1,
              0);
    for (uint32_t s = 0; s < config.shards; ++s) {
      PutLocked(ShardStateKey(*prefix, s), FormatShardState(ShardState{}),
                revision_ + 1, 0);
    }
    groups_.emplace(name, Cow<ShardGroup>(*std::move(g)));
    ++revision_;
    return Result(absl::StatusCode::kOk, revision_);
  }
  auto it = groups_.find(name);
  if (it == groups_.end()) {
    return Result(absl::StatusCode::kNotFound, revision_,
                  absl::StrCat("there is no shard group '", name, "'"));
  }
  ShardGroup& g = it->second.mutate();
  const std::map<std::string, ShardGroup::Member> before = g.members();
  absl::Status s;
  switch (request.kind_case()) {
    case client::ShardRequest::kJoin: {
      const client::ShardJoin& j = request.join();
      if (!leases_.contains(j.lease())) {
        s = absl::FailedPreconditionError(absl::StrCat(
            "session lease ", j.lease(),
            " has expired or was revoked; a processor joins with a live "
            "session"));
        break;
      }
      s = g.Join({ShardProcessorId(j.lease()), j.zone(),
                  j.weight() == 0 ? 1 : j.weight()});
      break;
    }
    case client::ShardRequest::kLeave:
      s = g.Leave(ShardProcessorId(request.leave().lease()));
      break;
    case client::ShardRequest::kRelease: {
      const client::ShardRelease& r = request.release();
      const std::string id = ShardProcessorId(r.lease());
      s = r.ack() ? g.AckRevoke(r.shard(), id, r.epoch())
                  : g.Release(r.shard(), id, r.epoch());
      break;
    }
    case client::ShardRequest::kDrainExpired:
      s = g.DrainExpired(request.drain_expired().shard(),
                         request.drain_expired().epoch());
      break;
    case client::ShardRequest::kCreate:
    case client::ShardRequest::KIND_NOT_SET:
      s = absl::InvalidArgumentError(
          "a shard group request without an operation");
      break;
  }
  if (!s.ok()) {
    return Result(s.code(), revision_, std::string(s.message()));
  }
  if (WriteShardKeys(name, g, before, g.changed())) ++revision_;
  return Result(absl::StatusCode::kOk, revision_);
}

bool KvStore::WriteShardKeys(
    const std::string& name, const ShardGroup& group,
    const std::map<std::string, ShardGroup::Member>& before,
    std::vector<uint32_t> changed) {
  const std::string prefix = absl::StrCat(kShardKeyPrefix, name, "/");
  std::sort(changed.begin(), changed.end());
  changed.erase(std::unique(changed.begin(), changed.end()), changed.end());
  bool wrote = false;
  for (uint32_t s : changed) {
    const std::string key = ShardStateKey(prefix, s);
    const std::string value = FormatShardState(group.shards()[s]);
    const Value* old = Find(key);
    if (old != nullptr && old->value == value) continue;
    PutLocked(key, value, revision_ + 1, 0);
    wrote = true;
  }
  for (const auto& [id, m] : group.members()) {
    const std::string value = FormatShardMember(m);
    auto b = before.find(id);
    if (b != before.end() && FormatShardMember(b->second) == value) continue;
    PutLocked(ShardMemberKey(prefix, id), value, revision_ + 1, 0);
    wrote = true;
  }
  for (const auto& [id, m] : before) {
    if (group.members().count(id) == 0) {
      DeleteLocked(ShardMemberKey(prefix, id), "");
      wrote = true;
    }
  }
  return wrote;
}

bool KvStore::EndShardSessions(const std::vector<uint64_t>& leases) {
  bool wrote = false;
  for (auto& [name, group] : groups_) {
    bool member = false;
    for (uint64_t lease : leases) {
      member |= group.get().members().count(ShardProcessorId(lease)) != 0;
    }
    if (!member) continue;  // nothing to change (nor to copy)
    ShardGroup& g = group.mutate();
    const std::map<std::string, ShardGroup::Member> before = g.members();
    std::vector<uint32_t> changed;
    for (uint64_t lease : leases) {
      const std::string id = ShardProcessorId(lease);
      if (g.members().count(id) == 0) continue;
      g.SessionEnded(id);
      changed.insert(changed.end(), g.changed().begin(), g.changed().end());
    }
    if (g.members().size() != before.size() || !changed.empty()) {
      wrote |= WriteShardKeys(name, g, before, std::move(changed));
    }
  }
  return wrote;
}

std::vector<DrainingShard> KvStore::DrainingShards() const {
  MutexLock lock(&mu_);
  std::vector<DrainingShard> out;
  for (const auto& [name, group] : groups_) {
    const ShardGroup& g = group.get();
    const std::vector<ShardState>& shards = g.shards();
    for (uint32_t s = 0; s < shards.size(); ++s) {
      if (shards[s].phase == ShardPhase::kRevoking && shards[s].acked) {
        out.push_back(
            DrainingShard{name, s, shards[s].epoch, g.config().drain_ms});
      }
    }
  }
  return out;
}

client::ShardGroupState ShardGroupToProto(const std::string& name,
                                          const ShardGroup& g) {
  client::ShardGroupState out;
  out.set_name(name);
  client::ShardGroupCreate* c = out.mutable_config();
  c->set_shards(g.config().shards);
  c->set_max_processors(g.config().max_processors);
  c->set_max_in_motion(g.config().max_in_motion);
  c->set_drain_ms(g.config().drain_ms);
  for (const auto& [id, m] : g.members()) {
    client::ShardGroupState::Member* o = out.add_members();
    o->set_id(id);
    o->set_zone(m.processor.zone);
    o->set_weight(m.processor.weight);
    o->set_leaving(m.leaving);
  }
  for (const ShardState& st : g.shards()) {
    client::ShardGroupState::Shard* o = out.add_shards();
    o->set_owner(st.owner);
    o->set_epoch(st.epoch);
    o->set_phase(static_cast<uint32_t>(st.phase));
    o->set_next(st.next);
    o->set_acked(st.acked);
  }
  return out;
}

client::KvCommand DrainExpiredCommand(const DrainingShard& shard) {
  client::KvCommand cmd;
  cmd.mutable_shard()->set_group(shard.group);
  cmd.mutable_shard()->mutable_drain_expired()->set_shard(shard.shard);
  cmd.mutable_shard()->mutable_drain_expired()->set_epoch(shard.epoch);
  return cmd;
}

absl::StatusOr<ShardGroup> ShardGroupFromProto(
    const client::ShardGroupState& in, ShardGroup::Unsafe unsafe) {
  if (!ShardGroupPrefix(in.name()).ok()) {
    return absl::DataLossError(
        absl::StrCat("a snapshot names a shard group '", in.name(), "'"));
  }
  std::map<std::string, ShardGroup::Member> members;
  for (const client::ShardGroupState::Member& m : in.members()) {
    members[m.id()] = ShardGroup::Member{
        ShardProcessor{m.id(), m.zone(), m.weight()}, m.leaving()};
  }
  std::vector<ShardState> shards;
  for (const client::ShardGroupState::Shard& s : in.shards()) {
    if (s.phase() > static_cast<uint32_t>(ShardPhase::kRevoking)) {
      return absl::DataLossError("a snapshot's shard is in no known phase");
    }
    shards.push_back(ShardState{s.owner(), s.epoch(),
                                static_cast<ShardPhase>(s.phase()), s.next(),
                                s.acked()});
  }
  ShardGroupConfig config;
  config.shards = in.config().shards();
  config.max_processors = in.config().max_processors();
  config.max_in_motion = in.config().max_in_motion();
  config.drain_ms = in.config().drain_ms();
  return ShardGroup::Restore(config, std::move(members), std::move(shards),
                             unsafe);
}

}  // namespace quorate::coord
