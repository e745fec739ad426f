#include "coord/kv.h"

#include <algorithm>
#include <memory>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"

namespace quorate::coord {
namespace {

client::KvResult Result(absl::StatusCode code, uint64_t revision,
                        std::string message = "") {
  client::KvResult r;
  r.set_code(static_cast<int32_t>(code));
  r.set_revision(revision);
  r.set_message(std::move(message));
  return r;
}

}  // namespace

absl::Status CheckKeyValue(absl::string_view key, absl::string_view value) {
  if (key.empty()) return absl::InvalidArgumentError("the key is empty");
  if (key.size() > kMaxKeyBytes) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the key is ", key.size(), " bytes; the limit is ", kMaxKeyBytes));
  }
  if (value.size() > kMaxValueBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("the value is ", value.size(), " bytes; the limit is ",
                     kMaxValueBytes));
  }
  return absl::OkStatus();
}

absl::Status ResultStatus(const client::KvResult& result) {
  return absl::Status(static_cast<absl::StatusCode>(result.code()),
                      result.message());
}

KvStore::KvStore() : shards_(kShards) {}

std::string KvStore::Apply(uint64_t index, const std::string& command) {
  client::KvCommand cmd;
  if (!cmd.ParseFromString(command)) {
    // Every member sees the same bytes and fails the same way.
    return Result(absl::StatusCode::kInvalidArgument, 0,
                  "an unreadable command was committed")
        .SerializeAsString();
  }
  MutexLock lock(&mu_);
  const client::OpId& op = cmd.op();
  if (op.client() != 0) {
    auto s = sessions_.find(op.client());
    if (s != sessions_.end()) {
      if (s->second.get().TooOld(op.seq())) {
        // Not a refusal of the write itself (ABORTED means a CAS
        // conflict): its outcome is simply not known any more.
        return Result(absl::StatusCode::kUnknown, revision_,
                      absl::StrCat("operation ", op.seq(),
                                   " is too old to tell whether it was "
                                   "applied earlier; it was not applied now"))
            .SerializeAsString();
      }
      const Session& session = s->second.get();
      auto done = session.results.find(op.seq());
      if (done != session.results.end()) {
        std::string result = done->second.SerializeAsString();
        s->second.mutate().last_used = index;  // may copy: `done` is stale
        return result;                         // a retry: applied once
      }
    }
  }
  const client::KvResult result = Execute(cmd);
  if (op.client() != 0) Remember(index, op, result);
  return result.SerializeAsString();
}

client::KvResult KvStore::Execute(const client::KvCommand& cmd) {
  switch (cmd.kind_case()) {
    case client::KvCommand::kPut: {
      const client::PutRequest& p = cmd.put();
      if (absl::Status s = CheckKeyValue(p.key(), p.value()); !s.ok()) {
        return Result(s.code(), revision_, std::string(s.message()));
      }
      ++revision_;
      shards_[ShardOf(p.key())].mutate()[p.key()] = Value{p.value(), revision_};
      return Result(absl::StatusCode::kOk, revision_);
    }
    case client::KvCommand::kDel: {
      const std::string& key = cmd.del().key();
      Cow<Shard>& shard = shards_[ShardOf(key)];
      if (!shard.get().contains(key)) {
        return Result(absl::StatusCode::kNotFound, revision_,
                      "the key does not exist");
      }
      shard.mutate().erase(key);
      ++revision_;
      return Result(absl::StatusCode::kOk, revision_);
    }
    case client::KvCommand::kCas: {
      const client::CasRequest& c = cmd.cas();
      if (absl::Status s = CheckKeyValue(c.key(), c.value()); !s.ok()) {
        return Result(s.code(), revision_, std::string(s.message()));
      }
      Cow<Shard>& shard = shards_[ShardOf(c.key())];
      auto it = shard.get().find(c.key());
      const uint64_t current =
          it == shard.get().end() ? 0 : it->second.revision;
      if (current != c.expected_revision()) {
        // ABORTED (abseil's rule): the caller restarts its
        // read-modify-write from a new read.
        return Result(absl::StatusCode::kAborted, current,
                      absl::StrCat("the key's revision is ", current, ", not ",
                                   c.expected_revision()));
      }
      ++revision_;
      shard.mutate()[c.key()] = Value{c.value(), revision_};
      return Result(absl::StatusCode::kOk, revision_);
    }
    case client::KvCommand::KIND_NOT_SET:
      break;
  }
  return Result(absl::StatusCode::kInvalidArgument, revision_,
                "a command without an operation was committed");
}

void KvStore::Remember(uint64_t index, const client::OpId& op,
                       const client::KvResult& result) {
  Session& s = sessions_[op.client()].mutate();
  s.last_used = index;
  s.newest = std::max(s.newest, op.seq());
  s.results[op.seq()] = result;
  if (s.results.size() > 2 * kSessionWindow) {
    // At most kSessionWindow seqs are within the window: this halves the
    // map at least, so each op pays O(1) for it.
    absl::erase_if(s.results,
                   [&s](const auto& kv) { return s.TooOld(kv.first); });
  }
  if (sessions_.size() <= kMaxSessions) return;
  auto oldest = sessions_.begin();
  for (auto it = sessions_.begin(); it != sessions_.end(); ++it) {
    if (it->second.get().last_used < oldest->second.get().last_used) {
      oldest = it;
    }
  }
  sessions_.erase(oldest);
}

struct KvStore::Frozen {
  uint64_t revision = 0;
  std::vector<Cow<Shard>::Pin> shards;
  std::vector<std::pair<uint64_t, Cow<Session>::Pin>> sessions;  // by id

  std::string Serialize() const {
    client::KvSnapshot snap;
    snap.set_revision(revision);
    std::vector<const std::pair<const std::string, Value>*> sorted;
    size_t keys = 0;
    for (const Cow<Shard>::Pin& shard : shards) keys += shard->size();
    sorted.reserve(keys);
    for (const Cow<Shard>::Pin& shard : shards) {
      for (const auto& kv : *shard) sorted.push_back(&kv);
    }
    std::sort(sorted.begin(), sorted.end(),
              [](const auto* a, const auto* b) { return a->first < b->first; });
    for (const auto* kv : sorted) {
      client::KvEntry* e = snap.add_entries();
      e->set_key(kv->first);
      e->set_value(kv->second.value);
      e->set_revision(kv->second.revision);
    }
    for (const auto& [id, s] : sessions) {
      client::KvSession* out = snap.add_sessions();
      out->set_client(id);
      out->set_last_used(s->last_used);
      // The ops within the window, by seq: the same bytes on every member,
      // however its map was swept.
      std::vector<uint64_t> seqs;
      seqs.reserve(s->results.size());
      for (const auto& kv : s->results) {
        if (!s->TooOld(kv.first)) seqs.push_back(kv.first);
      }
      std::sort(seqs.begin(), seqs.end());
      for (uint64_t seq : seqs) {
        out->add_seqs(seq);
        *out->add_results() = s->results.at(seq);
      }
    }
    return snap.SerializeAsString();
  }
};

absl::AnyInvocable<std::string()> KvStore::Snapshot() {
  auto frozen = std::make_unique<Frozen>();
  MutexLock lock(&mu_);
  frozen->revision = revision_;
  frozen->shards.reserve(shards_.size());
  for (const Cow<Shard>& shard : shards_) frozen->shards.push_back(shard.pin());
  frozen->sessions.reserve(sessions_.size());
  for (const auto& [id, s] : sessions_) {
    frozen->sessions.emplace_back(id, s.pin());
  }
  return [frozen = std::move(frozen)] { return frozen->Serialize(); };
}

absl::Status KvStore::Restore(const std::string& snapshot) {
  client::KvSnapshot snap;
  if (!snap.ParseFromString(snapshot)) {
    return absl::DataLossError("the key-value snapshot is unreadable");
  }
  // Checked whole before anything changes: a refused snapshot leaves the
  // store as it was. Every key was written at a revision the store has
  // reached (a compare-and-set reads revision 0 as "absent"), once.
  absl::flat_hash_set<absl::string_view> keys;
  for (const client::KvEntry& e : snap.entries()) {
    if (e.revision() == 0 || e.revision() > snap.revision()) {
      return absl::DataLossError(
          absl::StrCat("the key-value snapshot at revision ", snap.revision(),
                       " holds a key written at revision ", e.revision()));
    }
    if (absl::Status s = CheckKeyValue(e.key(), e.value()); !s.ok()) {
      return absl::DataLossError(
          absl::StrCat("the key-value snapshot holds ", s.message()));
    }
    if (!keys.insert(e.key()).second) {
      return absl::DataLossError("the key-value snapshot holds a key twice");
    }
  }
  for (const client::KvSession& in : snap.sessions()) {
    if (in.seqs_size() != in.results_size()) {
      return absl::DataLossError("a client session in the snapshot is torn");
    }
  }
  MutexLock lock(&mu_);
  revision_ = snap.revision();
  // New shards: a pinned one keeps its old contents for its reader.
  for (Cow<Shard>& shard : shards_) shard = Cow<Shard>();
  for (const client::KvEntry& e : snap.entries()) {
    shards_[ShardOf(e.key())].mutate()[e.key()] =
        Value{e.value(), e.revision()};
  }
  sessions_.clear();
  for (const client::KvSession& in : snap.sessions()) {
    Session& s = sessions_[in.client()].mutate();
    s.last_used = in.last_used();
    for (int i = 0; i < in.seqs_size(); ++i) {
      s.newest = std::max(s.newest, in.seqs(i));
      s.results[in.seqs(i)] = in.results(i);
    }
  }
  return absl::OkStatus();
}

std::optional<KvStore::Value> KvStore::Get(absl::string_view key) const {
  MutexLock lock(&mu_);
  const Shard& shard = shards_[ShardOf(key)].get();
  auto it = shard.find(key);
  if (it == shard.end()) return std::nullopt;
  return it->second;
}

uint64_t KvStore::revision() const {
  MutexLock lock(&mu_);
  return revision_;
}

size_t KvStore::sessions() const {
  MutexLock lock(&mu_);
  return sessions_.size();
}

std::optional<bool> KvStore::WasApplied(const client::OpId& op) const {
  MutexLock lock(&mu_);
  auto s = sessions_.find(op.client());
  if (s == sessions_.end()) return std::nullopt;
  const Session& session = s->second.get();
  if (session.TooOld(op.seq())) return std::nullopt;
  if (session.results.count(op.seq()) > 0) return true;
  // Within the window and not remembered: not applied (by this session of
  // the client's; one forgotten earlier left no trace).
  return false;
}

}  // namespace quorate::coord
