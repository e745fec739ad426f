#include "coord/kv.h"

#include <algorithm>
#include <memory>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/container/btree_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace quorate::coord {

namespace {

void Fill(client::KeyValue& kv, const KvStore::Value& v) {
  kv.set_create_revision(v.create_revision);
  kv.set_mod_revision(v.revision);
  kv.set_version(v.version);
  kv.set_lease(v.lease);
}

}  // namespace

client::KvResult KvStore::Result(absl::StatusCode code, uint64_t revision,
                                 std::string message) {
  client::KvResult r;
  r.set_code(static_cast<int32_t>(code));
  r.set_revision(revision);
  r.set_message(std::move(message));
  return r;
}

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

absl::Status CheckWritable(absl::string_view key, absl::string_view range_end) {
  const absl::string_view reserved = kShardKeyPrefix;
  const std::string reserved_end = PrefixEnd(reserved);
  bool touches;
  if (range_end.empty()) {
    touches = absl::StartsWith(key, reserved);
  } else {
    // [key, range_end) meets [reserved, reserved_end); "\0" ends nowhere.
    const bool to_the_end = range_end == absl::string_view("\0", 1);
    touches = key < reserved_end && (to_the_end || range_end > reserved);
  }
  if (touches) {
    return absl::InvalidArgumentError(absl::StrCat(
        "keys under '", reserved,
        "' hold shard groups' state and are written by shard group calls "
        "only"));
  }
  return absl::OkStatus();
}

absl::Status CheckRange(absl::string_view key, absl::string_view range_end) {
  if (key.empty()) return absl::InvalidArgumentError("the key is empty");
  if (key.size() > kMaxKeyBytes || range_end.size() > kMaxKeyBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("a range's key or end is over ", kMaxKeyBytes, " bytes"));
  }
  if (!range_end.empty() && range_end != absl::string_view("\0", 1) &&
      range_end <= key) {
    return absl::InvalidArgumentError(
        "the range's end is not after its start (an empty end is the key "
        "alone; a single zero byte, every key from the start on)");
  }
  return absl::OkStatus();
}

absl::Status CheckLeaseTtl(int64_t ttl_ms, const LeaseLimits& limits) {
  if (ttl_ms < limits.min_ttl_ms) {
    return absl::InvalidArgumentError(absl::StrCat(
        "a lease's TTL is ", ttl_ms, " ms; the floor is ", limits.min_ttl_ms,
        " ms (twice the election timeout: a lease must outlive an election)"));
  }
  if (ttl_ms > limits.max_ttl_ms) {
    return absl::InvalidArgumentError(
        absl::StrCat("a lease's TTL is ", ttl_ms, " ms; the limit is ",
                     limits.max_ttl_ms, " ms (--max_lease_ttl)"));
  }
  return absl::OkStatus();
}

bool KeyInRange(absl::string_view key, absl::string_view start,
                absl::string_view end) {
  if (end.empty()) return key == start;
  if (key < start) return false;
  return end == absl::string_view("\0", 1) || key < end;
}

namespace {

// How deep transactions may nest (etcd sets no bound of its own; the
// operation and byte limits bound it too).
constexpr int kMaxTxnDepth = 16;

// The writes of one branch, for the one-write-per-key rule.
struct BranchWrites {
  std::vector<absl::string_view> puts;
  std::vector<std::pair<absl::string_view, absl::string_view>> deletes;
};

size_t CountOps(const client::TxnRequest& txn) {
  size_t n = static_cast<size_t>(txn.compare_size());
  for (const auto* branch : {&txn.success(), &txn.failure()}) {
    for (const client::RequestOp& op : *branch) {
      n += 1 + (op.has_txn() ? CountOps(op.txn()) : 0);
    }
  }
  return n;
}

absl::Status CheckCompares(const client::TxnRequest& txn) {
  for (const client::Compare& c : txn.compare()) {
    if (absl::Status s = CheckRange(c.key(), c.range_end()); !s.ok()) {
      return s;
    }
    const bool matches = [&] {
      switch (c.target()) {
        case client::Compare::VERSION:
          return c.target_union_case() == client::Compare::kVersion;
        case client::Compare::CREATE:
          return c.target_union_case() == client::Compare::kCreateRevision;
        case client::Compare::MOD:
          return c.target_union_case() == client::Compare::kModRevision;
        case client::Compare::VALUE:
          return c.target_union_case() == client::Compare::kValue;
        case client::Compare::LEASE:
          return c.target_union_case() == client::Compare::kLease;
        default:
          return false;
      }
    }();
    if (!matches) {
      return absl::InvalidArgumentError(absl::StrCat(
          "a compare of key '", c.key(),
          "' has no value of its target's kind (or an unknown target)"));
    }
    if (c.result() < client::Compare::EQUAL ||
        c.result() > client::Compare::NOT_EQUAL) {
      return absl::InvalidArgumentError("a compare has an unknown operator");
    }
  }
  return absl::OkStatus();
}

absl::Status CheckNested(const client::TxnRequest& txn, int depth,
                         BranchWrites* writes);

// Checks one branch's operations, and adds the keys it writes to `out`.
absl::Status CheckOps(
    const google::protobuf::RepeatedPtrField<client::RequestOp>& ops,
    const char* branch, int depth, BranchWrites* out) {
  // Each write with the operation it belongs to: a nested transaction's
  // writes (either of its branches) are one operation's, and may overlap
  // each other (only one branch runs).
  std::vector<std::pair<absl::string_view, int>> puts;
  std::vector<std::tuple<absl::string_view, absl::string_view, int>> deletes;
  int index = 0;
  for (const client::RequestOp& op : ops) {
    ++index;
    switch (op.request_case()) {
      case client::RequestOp::kRange:
        if (absl::Status s =
                CheckRange(op.range().key(), op.range().range_end());
            !s.ok()) {
          return s;
        }
        if (op.range().revision() != 0) {
          return absl::InvalidArgumentError(absl::StrCat(
              "a range of the ", branch,
              " branch names a revision; a transaction reads the current "
              "state (read past revisions with Range)"));
        }
        break;
      case client::RequestOp::kPut: {
        const client::PutRequest& p = op.put();
        if (absl::Status s = CheckKeyValue(p.key(), p.value()); !s.ok()) {
          return s;
        }
        if (absl::Status s = CheckWritable(p.key(), ""); !s.ok()) return s;
        if (p.ignore_value() && !p.value().empty()) {
          return absl::InvalidArgumentError(absl::StrCat(
              "the put of key '", p.key(),
              "' keeps the key's value (ignore_value) and gives one too"));
        }
        if (p.ignore_lease() && p.lease() != 0) {
          return absl::InvalidArgumentError(absl::StrCat(
              "the put of key '", p.key(),
              "' keeps the key's lease (ignore_lease) and names one too"));
        }
        puts.emplace_back(p.key(), index);
        break;
      }
      case client::RequestOp::kDeleteRange:
        if (absl::Status s = CheckRange(op.delete_range().key(),
                                        op.delete_range().range_end());
            !s.ok()) {
          return s;
        }
        if (absl::Status s = CheckWritable(op.delete_range().key(),
                                           op.delete_range().range_end());
            !s.ok()) {
          return s;
        }
        deletes.emplace_back(op.delete_range().key(),
                             op.delete_range().range_end(), index);
        break;
      case client::RequestOp::kTxn: {
        if (depth >= kMaxTxnDepth) {
          return absl::InvalidArgumentError(
              absl::StrCat("transactions nest more than ", kMaxTxnDepth,
                           " deep in the ", branch, " branch"));
        }
        BranchWrites nested;
        if (absl::Status s = CheckNested(op.txn(), depth + 1, &nested);
            !s.ok()) {
          return s;
        }
        for (absl::string_view k : nested.puts) puts.emplace_back(k, index);
        for (const auto& [k, e] : nested.deletes) {
          deletes.emplace_back(k, e, index);
        }
        break;
      }
      case client::RequestOp::REQUEST_NOT_SET:
        return absl::InvalidArgumentError(absl::StrCat(
            "an operation of the ", branch,
            " branch is neither a put, a delete, a range nor a transaction"));
    }
  }
  // One write per key and branch (as etcd): otherwise the order of two
  // writes to one key would be the only thing deciding the outcome.
  std::sort(puts.begin(), puts.end());
  for (size_t i = 1; i < puts.size(); ++i) {
    if (puts[i].first == puts[i - 1].first &&
        puts[i].second != puts[i - 1].second) {
      return absl::InvalidArgumentError(absl::StrCat(
          "the ", branch, " branch puts key '", puts[i].first, "' twice"));
    }
  }
  for (const auto& [key, from] : puts) {
    for (const auto& [start, end, by] : deletes) {
      if (from != by && KeyInRange(key, start, end)) {
        return absl::InvalidArgumentError(absl::StrCat(
            "the ", branch, " branch puts key '", key, "' and deletes it"));
      }
    }
  }
  for (const auto& [key, from] : puts) out->puts.push_back(key);
  for (const auto& [start, end, by] : deletes) {
    out->deletes.emplace_back(start, end);
  }
  return absl::OkStatus();
}

// A nested transaction: its branches are checked alone, and its writes
// (both branches') are reported as the enclosing operation's.
absl::Status CheckNested(const client::TxnRequest& txn, int depth,
                         BranchWrites* writes) {
  if (absl::Status s = CheckCompares(txn); !s.ok()) return s;
  if (absl::Status s = CheckOps(txn.success(), "success", depth, writes);
      !s.ok()) {
    return s;
  }
  return CheckOps(txn.failure(), "failure", depth, writes);
}

}  // namespace

absl::Status CheckTxn(const client::TxnRequest& txn, const TxnLimits& limits) {
  const size_t ops = CountOps(txn);
  if (ops > limits.max_ops) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the transaction has ", ops, " compares and operations; the limit is ",
        limits.max_ops));
  }
  const size_t bytes = txn.ByteSizeLong();
  if (bytes > limits.max_bytes) {
    return absl::InvalidArgumentError(absl::StrCat("the transaction is ", bytes,
                                                   " bytes; the limit is ",
                                                   limits.max_bytes));
  }
  BranchWrites ignored;
  return CheckNested(txn, 0, &ignored);
}

bool IsReadOnly(const client::TxnRequest& txn) {
  for (const auto* branch : {&txn.success(), &txn.failure()}) {
    for (const client::RequestOp& op : *branch) {
      if (op.has_txn() ? !IsReadOnly(op.txn())
                       : op.request_case() != client::RequestOp::kRange) {
        return false;
      }
    }
  }
  return true;
}

uint32_t ProtocolOf(const client::TxnRequest& txn) {
  for (const auto* branch : {&txn.success(), &txn.failure()}) {
    for (const client::RequestOp& op : *branch) {
      if (op.has_txn() || (op.has_put() && (op.put().ignore_value() ||
                                            op.put().ignore_lease()))) {
        return 2;
      }
    }
  }
  return 1;
}

std::string PrefixEnd(absl::string_view prefix) {
  std::string end(prefix);
  while (!end.empty()) {
    if (static_cast<unsigned char>(end.back()) < 0xff) {
      end.back() =
          static_cast<char>(static_cast<unsigned char>(end.back()) + 1);
      return end;
    }
    end.pop_back();
  }
  return std::string("\0", 1);  // every key starts with the empty prefix
}

absl::Status ResultStatus(const client::KvResult& result) {
  return absl::Status(static_cast<absl::StatusCode>(result.code()),
                      result.message());
}

KvStore::KvStore() : KvStore(Unsafe{}) {}
KvStore::KvStore(Unsafe unsafe) : unsafe_(unsafe), shards_(kShards) {}

std::string KvStore::Apply(uint64_t index, const std::string& command) {
  client::KvCommand cmd;
  std::string out;
  std::vector<LeaseEvent> events;
  uint64_t created = 0;  // the revision the command created, if any
  {
    MutexLock lock(&mu_);
    const uint64_t before = revision_;
    // Every member sees the same bytes and fails the same way.
    out = cmd.ParseFromString(command)
              ? ApplyLocked(index, cmd)
              : Result(absl::StatusCode::kInvalidArgument, 0,
                       "an unreadable command was committed")
                    .SerializeAsString();
    events.swap(lease_events_);
    if (revision_ != before) {
      CommitChange();
      created = revision_;
    } else {
      pending_.Clear();  // nothing was recorded: nothing changed
    }
  }
  if (lease_listener_ && !events.empty()) lease_listener_(events);
  if (change_listener_ && created != 0) change_listener_(created);
  return out;
}

client::WatchEvent* KvStore::AddEvent(client::WatchEvent::Type type,
                                      absl::string_view key,
                                      uint64_t revision) {
  client::WatchEvent* e = pending_.add_events();
  e->set_type(type);
  e->mutable_kv()->set_key(std::string(key));
  e->mutable_kv()->set_mod_revision(revision);
  return e;
}

void KvStore::CommitChange() {
  pending_.set_revision(revision_);
  history_.push_back(
      std::make_shared<const client::KvChange>(std::move(pending_)));
  pending_.Clear();
  TrimHistory();
}

void KvStore::TrimHistory() {
  while (history_.size() > history_window_) {
    compacted_ = history_.front()->revision();
    history_.pop_front();
  }
}

namespace {

// What a retry of a transaction learns: `t`'s outcome without what its
// ranges read (previous values of puts and deletes are kept).
void KeepOutcome(const client::TxnResponse& t, client::TxnResponse* kept) {
  kept->set_succeeded(t.succeeded());
  kept->set_revision(t.revision());
  kept->set_replayed(true);
  for (const client::ResponseOp& r : t.responses()) {
    client::ResponseOp* o = kept->add_responses();
    if (r.has_range()) {
      o->mutable_range();  // present, empty
    } else if (r.has_txn()) {
      KeepOutcome(r.txn(), o->mutable_txn());
    } else {
      *o = r;
    }
  }
}

}  // namespace

std::string KvStore::ApplyLocked(uint64_t index, const client::KvCommand& cmd) {
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
  const client::KvResult result = Execute(index, cmd);
  if (op.client() != 0) {
    if (result.has_txn()) {
      // What a transaction's ranges read is not kept (nor copied): a
      // retry learns the outcome, not the reads (TxnResponse.replayed).
      client::KvResult kept =
          Result(static_cast<absl::StatusCode>(result.code()),
                 result.revision(), result.message());
      KeepOutcome(result.txn(), kept.mutable_txn());
      Remember(index, op, kept);
    } else {
      Remember(index, op, result);
    }
  }
  return result.SerializeAsString();
}

client::KvResult KvStore::Execute(uint64_t index,
                                  const client::KvCommand& cmd) {
  // Put, delete and compare-and-set are the transactions of one operation
  // (a put; a delete if the key's version is above 0; a put if its mod
  // revision is the expected one), run here on the same primitives
  // without building one: a put's value is not copied again.
  switch (cmd.kind_case()) {
    case client::KvCommand::kPut: {
      const client::PutRequest& p = cmd.put();
      absl::Status s = CheckKeyValue(p.key(), p.value());
      if (s.ok() && (p.prev_kv() || p.ignore_value() || p.ignore_lease())) {
        s = absl::InvalidArgumentError(
            "prev_kv, ignore_value and ignore_lease are served in "
            "transactions only");
      }
      if (s.ok()) s = CheckWritable(p.key(), "");
      if (s.ok()) s = CheckLeasedPut(p.key(), p.lease(), 1, cmd.limits());
      if (!s.ok()) {
        return Result(s.code(), revision_, std::string(s.message()));
      }
      PutLocked(p.key(), p.value(), revision_ + 1, p.lease());
      ++revision_;
      return Result(absl::StatusCode::kOk, revision_);
    }
    case client::KvCommand::kDel: {
      const std::string& key = cmd.del().key();
      absl::Status s = CheckKeyValue(key, "");
      if (s.ok()) s = CheckWritable(key, "");
      if (!s.ok()) {
        return Result(s.code(), revision_, std::string(s.message()));
      }
      if (DeleteLocked(key, "") == 0) {
        return Result(absl::StatusCode::kNotFound, revision_,
                      "the key does not exist");
      }
      ++revision_;
      return Result(absl::StatusCode::kOk, revision_);
    }
    case client::KvCommand::kCas: {
      const client::CasRequest& c = cmd.cas();
      absl::Status s = CheckKeyValue(c.key(), c.value());
      if (s.ok()) s = CheckWritable(c.key(), "");
      if (!s.ok()) {
        return Result(s.code(), revision_, std::string(s.message()));
      }
      const Value* v = Find(c.key());
      const uint64_t current = v == nullptr ? 0 : v->revision;
      if (current != c.expected_revision()) {
        // ABORTED (abseil's rule): the caller restarts its
        // read-modify-write from a new read.
        return Result(absl::StatusCode::kAborted, current,
                      absl::StrCat("the key's revision is ", current, ", not ",
                                   c.expected_revision()));
      }
      PutLocked(c.key(), c.value(), revision_ + 1, /*lease=*/0);
      ++revision_;
      return Result(absl::StatusCode::kOk, revision_);
    }
    case client::KvCommand::kTxn: {
      // Members refuse what is over their own limits before proposing it;
      // these ceilings hold whatever a member's configuration, so that
      // every member applies the same commands the same way.
      if (absl::Status s =
              CheckTxn(cmd.txn(), TxnLimits{kMaxTxnOps, kMaxTxnBytes});
          !s.ok()) {
        return Result(s.code(), revision_, std::string(s.message()));
      }
      const client::TxnRequest& txn = cmd.txn();
      // Every compare, nested ones too, is evaluated against the state
      // before the transaction: the path it takes is known before it
      // changes anything, and so are the puts it will run.
      std::vector<bool> path;
      DecidePath(txn, &path);
      std::vector<const client::PutRequest*> puts;
      size_t pos = 0;
      CollectPuts(txn, path, &pos, &puts);
      absl::Status s = CheckLeasedPuts(puts, cmd.limits());
      for (size_t i = 0; s.ok() && i < puts.size(); ++i) {
        const client::PutRequest& p = *puts[i];
        if ((p.ignore_value() || p.ignore_lease()) &&
            Find(p.key()) == nullptr) {
          s = absl::NotFoundError(
              absl::StrCat("key '", p.key(),
                           "' does not exist: ignore_value and ignore_lease "
                           "keep what an existing key has"));
        }
      }
      if (!s.ok()) {
        return Result(s.code(), revision_, std::string(s.message()));
      }
      client::TxnResponse response = ExecuteTxn(txn, path);
      client::KvResult r = Result(absl::StatusCode::kOk, revision_);
      *r.mutable_txn() = std::move(response);
      return r;
    }
    case client::KvCommand::kLeaseGrant:
    case client::KvCommand::kLeaseRevoke:
    case client::KvCommand::kLeaseExpire:
    case client::KvCommand::kLeaseCheckpoint:
      return ExecuteLease(index, cmd);
    case client::KvCommand::kShard:
      return ExecuteShard(cmd.shard());
    case client::KvCommand::kCompact: {
      const uint64_t at = cmd.compact().revision();
      if (at > revision_) {
        return Result(
            absl::StatusCode::kOutOfRange, revision_,
            absl::StrCat("revision ", at,
                         " is in the future: the current one is ", revision_));
      }
      // Decided on replicated state only (not on compacted_, which
      // depends on this member's --watch_history): every member answers
      // the same.
      if (at <= compact_floor_) {
        return Result(absl::StatusCode::kOutOfRange, revision_,
                      absl::StrCat("revision ", at,
                                   " is compacted already: the last "
                                   "compaction was at ",
                                   compact_floor_));
      }
      compact_floor_ = at;
      // The change at `at` stays: a watch may start there, as in etcd.
      while (!history_.empty() && history_.front()->revision() < at) {
        history_.pop_front();
      }
      compacted_ = std::max(compacted_, at - 1);
      return Result(absl::StatusCode::kOk, revision_);
    }
    case client::KvCommand::KIND_NOT_SET:
      break;
  }
  return Result(absl::StatusCode::kInvalidArgument, revision_,
                "a command without an operation was committed");
}

namespace {

uint32_t Limit(uint32_t configured, uint32_t ceiling) {
  return configured == 0 ? ceiling : std::min(configured, ceiling);
}

}  // namespace

absl::Status KvStore::CheckLeasedPut(
    absl::string_view key, uint64_t lease, size_t adding,
    const client::CommandLimits& limits) const {
  if (lease == 0) return absl::OkStatus();
  auto it = leases_.find(lease);
  if (it == leases_.end()) {
    return absl::NotFoundError(absl::StrCat(
        "lease ", lease, " does not exist (it expired or was revoked)"));
  }
  const uint32_t max = Limit(limits.max_keys_per_lease(), kMaxKeysPerLease);
  const Lease& l = it->second;
  if (l.keys.size() + adding > max && !l.keys.contains(key)) {
    return absl::ResourceExhaustedError(
        absl::StrCat("lease ", lease, " has ", l.keys.size(),
                     " keys; the limit is ", max, " (--max_keys_per_lease)"));
  }
  return absl::OkStatus();
}

absl::Status KvStore::CheckLeasedPuts(
    const std::vector<const client::PutRequest*>& puts,
    const client::CommandLimits& limits) const {
  // Keys a transaction attaches, per lease: each lease's limit counts them
  // all.
  absl::flat_hash_map<uint64_t, size_t> adding;
  for (const client::PutRequest* p : puts) {
    if (p->lease() != 0) ++adding[p->lease()];
  }
  for (const client::PutRequest* put : puts) {
    const client::PutRequest& p = *put;
    if (absl::Status s = CheckLeasedPut(
            p.key(), p.lease(), p.lease() == 0 ? 0 : adding[p.lease()], limits);
        !s.ok()) {
      return s;
    }
  }
  return absl::OkStatus();
}

bool KvStore::EndLease(uint64_t id) {
  auto it = leases_.find(id);
  if (it == leases_.end()) return false;
  const absl::btree_set<std::string> keys = std::move(it->second.keys);
  leases_.erase(it);
  for (const std::string& key : keys) {
    Shard& shard = shards_[ShardOf(key)].mutate();
    auto v = shard.find(key);
    RecordDelete(key, v->second);
    shard.erase(v);
    index_.erase(key);
  }
  lease_events_.push_back(LeaseEvent{LeaseEvent::Kind::kRemoved, id, 0, -1});
  return !keys.empty();
}

client::KvResult KvStore::ExecuteLease(uint64_t index,
                                       const client::KvCommand& cmd) {
  switch (cmd.kind_case()) {
    case client::KvCommand::kLeaseGrant: {
      const client::LeaseGrantRequest& g = cmd.lease_grant();
      if (g.ttl_ms() <= 0 || g.ttl_ms() > kMaxLeaseTtlMs) {
        return Result(
            absl::StatusCode::kInvalidArgument, revision_,
            absl::StrCat("a lease's TTL is ", g.ttl_ms(),
                         " ms; it must be in [1, ", kMaxLeaseTtlMs, "]"));
      }
      const uint64_t client = cmd.op().client();
      if (client != 0) {
        const uint32_t max =
            Limit(cmd.limits().max_leases_per_client(), kMaxLeasesPerClient);
        size_t held = 0;
        for (const auto& [id, l] : leases_) held += l.client == client;
        if (held >= max) {
          return Result(
              absl::StatusCode::kResourceExhausted, revision_,
              absl::StrCat("this client holds ", held, " leases; the limit is ",
                           max, " (--max_leases_per_client)"));
        }
      }
      uint64_t id = g.id();
      if (id != 0 && leases_.contains(id)) {
        return Result(absl::StatusCode::kAlreadyExists, revision_,
                      absl::StrCat("lease ", id, " exists already"));
      }
      if (id == 0) {
        // The entry's index: the same on every member, and new unless a
        // client chose it; then the next free one.
        id = index;
        while (id == 0 || leases_.contains(id)) ++id;
      }
      Lease& l = leases_[id];
      l.ttl_ms = g.ttl_ms();
      l.client = client;
      lease_events_.push_back(
          LeaseEvent{LeaseEvent::Kind::kGranted, id, g.ttl_ms(), -1});
      client::KvResult r = Result(absl::StatusCode::kOk, revision_);
      r.set_lease_id(id);
      r.set_lease_ttl_ms(g.ttl_ms());
      return r;
    }
    case client::KvCommand::kLeaseRevoke: {
      const uint64_t id = cmd.lease_revoke().id();
      if (!leases_.contains(id)) {
        return Result(absl::StatusCode::kNotFound, revision_,
                      absl::StrCat("lease ", id,
                                   " does not exist (it expired or was "
                                   "revoked)"));
      }
      // Its keys go at one new revision, as a transaction's deletes would,
      // and so do the moves of the shards it owned.
      const bool deleted = EndLease(id);
      if (EndShardSessions({id}) || deleted) ++revision_;
      return Result(absl::StatusCode::kOk, revision_);
    }
    case client::KvCommand::kLeaseExpire: {
      // Leases revoked meanwhile are simply gone. The keys of all the
      // leases the entry ends go at one new revision: one entry, one
      // revision, as for a transaction.
      bool deleted = false;
      for (uint64_t id : cmd.lease_expire().ids()) deleted |= EndLease(id);
      // Every group once, whatever number of its processors ended: a key
      // is written at most once in a revision.
      deleted |= EndShardSessions(std::vector<uint64_t>(
          cmd.lease_expire().ids().begin(), cmd.lease_expire().ids().end()));
      if (deleted) ++revision_;
      return Result(absl::StatusCode::kOk, revision_);
    }
    case client::KvCommand::kLeaseCheckpoint: {
      const client::LeaseCheckpointCommand& c = cmd.lease_checkpoint();
      if (c.ids_size() != c.remaining_ms_size()) {
        return Result(absl::StatusCode::kInvalidArgument, revision_,
                      "a lease checkpoint is torn");
      }
      for (int i = 0; i < c.ids_size(); ++i) {
        auto it = leases_.find(c.ids(i));
        if (it == leases_.end()) continue;
        it->second.checkpoint_ms =
            std::clamp<int64_t>(c.remaining_ms(i), 0, it->second.ttl_ms);
        lease_events_.push_back(LeaseEvent{LeaseEvent::Kind::kCheckpoint,
                                           c.ids(i), it->second.ttl_ms,
                                           it->second.checkpoint_ms});
      }
      for (uint64_t id : c.clear()) {
        auto it = leases_.find(id);
        if (it == leases_.end()) continue;
        it->second.checkpoint_ms = -1;
        lease_events_.push_back(LeaseEvent{LeaseEvent::Kind::kCheckpoint, id,
                                           it->second.ttl_ms, -1});
      }
      return Result(absl::StatusCode::kOk, revision_);
    }
    default:
      break;
  }
  return Result(absl::StatusCode::kInvalidArgument, revision_,
                "not a lease command");
}

void KvStore::DecidePath(const client::TxnRequest& txn,
                         std::vector<bool>* path) const {
  const bool holds = unsafe_.txn_ignores_compares || AllHold(txn);
  path->push_back(holds);
  for (const client::RequestOp& op : holds ? txn.success() : txn.failure()) {
    if (op.has_txn()) DecidePath(op.txn(), path);
  }
}

void KvStore::CollectPuts(const client::TxnRequest& txn,
                          const std::vector<bool>& path, size_t* pos,
                          std::vector<const client::PutRequest*>* puts) {
  for (const client::RequestOp& op :
       path[(*pos)++] ? txn.success() : txn.failure()) {
    if (op.has_put()) puts->push_back(&op.put());
    if (op.has_txn()) CollectPuts(op.txn(), path, pos, puts);
  }
}

namespace {

void SetRevision(client::TxnResponse& t, uint64_t revision) {
  t.set_revision(revision);
  for (client::ResponseOp& r : *t.mutable_responses()) {
    if (r.has_txn()) SetRevision(*r.mutable_txn(), revision);
  }
}

}  // namespace

client::TxnResponse KvStore::ExecuteTxn(const client::TxnRequest& txn,
                                        const std::vector<bool>& path) {
  // Every write of the transaction takes the next revision, which becomes
  // the cluster's if anything changed.
  size_t pos = 0;
  bool changed = false;
  client::TxnResponse response = RunTxn(txn, path, &pos, &changed);
  if (changed) ++revision_;
  SetRevision(response, revision_);
  return response;
}

client::TxnResponse KvStore::RunTxn(const client::TxnRequest& txn,
                                    const std::vector<bool>& path, size_t* pos,
                                    bool* changed) {
  const uint64_t next = revision_ + 1;
  client::TxnResponse response;
  const bool holds = path[(*pos)++];
  response.set_succeeded(holds);
  for (const client::RequestOp& op : holds ? txn.success() : txn.failure()) {
    client::ResponseOp* out = response.add_responses();
    switch (op.request_case()) {
      case client::RequestOp::kRange: {
        // It sees the writes before it, at the revision they make.
        *out->mutable_range() =
            RangeLocked(op.range(), *changed ? next : revision_);
        break;
      }
      case client::RequestOp::kPut: {
        const client::PutRequest& p = op.put();
        const Value* before = Find(p.key());
        client::PutResponse* put = out->mutable_put();
        if (p.prev_kv() && before != nullptr) {
          client::KeyValue& prev = *put->mutable_prev_kv();
          prev.set_key(p.key());
          Fill(prev, *before);
          prev.set_value(before->value);
        }
        // (The caller checked that a key kept from exists.)
        const uint64_t lease = p.ignore_lease() ? before->lease : p.lease();
        if (p.ignore_value()) {
          const std::string kept = before->value;  // PutLocked moves it
          PutLocked(p.key(), kept, next, lease);
        } else {
          PutLocked(p.key(), p.value(), next, lease);
        }
        *changed = true;
        put->set_revision(next);
        break;
      }
      case client::RequestOp::kDeleteRange: {
        const client::DeleteRangeRequest& d = op.delete_range();
        client::DeleteRangeResponse* del = out->mutable_delete_range();
        if (d.prev_kv()) {
          ForEachIn(d.key(), d.range_end(),
                    [&](const std::string& key, const Value& v) {
                      client::KeyValue* prev = del->add_prev_kvs();
                      prev->set_key(key);
                      Fill(*prev, v);
                      prev->set_value(v.value);
                      return true;
                    });
        }
        const uint64_t n = DeleteLocked(d.key(), d.range_end());
        *changed = *changed || n > 0;
        del->set_deleted(n);
        break;
      }
      case client::RequestOp::kTxn:
        *out->mutable_txn() = RunTxn(op.txn(), path, pos, changed);
        break;
      case client::RequestOp::REQUEST_NOT_SET:
        break;  // refused by CheckTxn
    }
  }
  return response;
}

client::TxnResponse KvStore::ReadTxn(const client::TxnRequest& txn) const {
  MutexLock lock(&mu_);
  std::vector<bool> path;
  DecidePath(txn, &path);
  size_t pos = 0;
  client::TxnResponse response = ReadBranch(txn, path, &pos);
  SetRevision(response, revision_);
  return response;
}

client::TxnResponse KvStore::ReadBranch(const client::TxnRequest& txn,
                                        const std::vector<bool>& path,
                                        size_t* pos) const {
  client::TxnResponse response;
  const bool holds = path[(*pos)++];
  response.set_succeeded(holds);
  for (const client::RequestOp& op : holds ? txn.success() : txn.failure()) {
    if (op.has_range()) {
      *response.add_responses()->mutable_range() =
          RangeLocked(op.range(), revision_);
    } else if (op.has_txn()) {
      *response.add_responses()->mutable_txn() =
          ReadBranch(op.txn(), path, pos);
    }
  }
  return response;
}

namespace {

template <typename T>
bool CompareWith(client::Compare::Result result, const T& have, const T& want) {
  switch (result) {
    case client::Compare::EQUAL:
      return have == want;
    case client::Compare::GREATER:
      return have > want;
    case client::Compare::LESS:
      return have < want;
    case client::Compare::NOT_EQUAL:
      return have != want;
    default:
      return false;
  }
}

}  // namespace

bool KvStore::Holds(const client::Compare& c) const {
  auto one = [&c](const Value& v) {
    switch (c.target()) {
      case client::Compare::VERSION:
        return CompareWith<int64_t>(c.result(), static_cast<int64_t>(v.version),
                                    c.version());
      case client::Compare::CREATE:
        return CompareWith<int64_t>(c.result(),
                                    static_cast<int64_t>(v.create_revision),
                                    c.create_revision());
      case client::Compare::MOD:
        return CompareWith<int64_t>(
            c.result(), static_cast<int64_t>(v.revision), c.mod_revision());
      case client::Compare::VALUE:
        return CompareWith<absl::string_view>(c.result(), v.value, c.value());
      case client::Compare::LEASE:
        return CompareWith<int64_t>(c.result(), static_cast<int64_t>(v.lease),
                                    c.lease());
      default:
        return false;
    }
  };
  bool any = false;
  bool all = true;
  ForEachIn(c.key(), c.range_end(), [&](const std::string&, const Value& v) {
    any = true;
    all = one(v);
    return all;
  });
  if (any) return all;
  // No key: its numbers are 0, and it has no value to compare.
  return c.target() != client::Compare::VALUE && one(Value{});
}

bool KvStore::AllHold(const client::TxnRequest& txn) const {
  for (const client::Compare& c : txn.compare()) {
    if (!Holds(c)) return false;
  }
  return true;
}

const KvStore::Value* KvStore::Find(absl::string_view key) const {
  const Shard& shard = shards_[ShardOf(key)].get();
  auto it = shard.find(key);
  return it == shard.end() ? nullptr : &it->second;
}

template <typename Fn>
void KvStore::ForEachIn(absl::string_view key, absl::string_view range_end,
                        Fn fn) const {
  if (range_end.empty()) {
    auto it = index_.find(key);
    if (it != index_.end()) fn(*it, *Find(*it));
    return;
  }
  const bool to_the_end = range_end == absl::string_view("\0", 1);
  for (auto it = index_.lower_bound(key); it != index_.end(); ++it) {
    if (!to_the_end && absl::string_view(*it) >= range_end) break;
    if (!fn(*it, *Find(*it))) break;
  }
}

namespace {

using RangeItem = std::pair<const std::string*, const KvStore::Value*>;

bool KeyOrder(const client::RangeRequest& r) {
  return r.sort_target() == client::RangeRequest::KEY &&
         r.sort_order() != client::RangeRequest::DESCEND;
}

bool HasFilters(const client::RangeRequest& r) {
  return r.min_mod_revision() != 0 || r.max_mod_revision() != 0 ||
         r.min_create_revision() != 0 || r.max_create_revision() != 0;
}

// Whether `v` passes the request's revision filters.
bool Passes(const client::RangeRequest& r, const KvStore::Value& v) {
  auto within = [](uint64_t x, uint64_t min, uint64_t max) {
    return x >= min && (max == 0 || x <= max);
  };
  return within(v.revision, r.min_mod_revision(), r.max_mod_revision()) &&
         within(v.create_revision, r.min_create_revision(),
                r.max_create_revision());
}

// The answer to `r` from the keys in its range (`count` of them; `items`
// in key order, all of them or, in key order, the first `limit`).
client::RangeResponse Answer(const client::RangeRequest& r,
                             std::vector<RangeItem> items, uint64_t count,
                             uint64_t revision) {
  client::RangeResponse response;
  response.set_revision(revision);
  response.set_count(count);
  if (r.count_only()) {
    response.set_more(false);
    return response;
  }
  // The keys that may be returned: every key in the range, or those that
  // pass the filters (then `items` holds every key in the range).
  uint64_t eligible = count;
  if (HasFilters(r)) {
    std::erase_if(items,
                  [&r](const RangeItem& i) { return !Passes(r, *i.second); });
    eligible = items.size();
  }
  using Item = RangeItem;
  if (!KeyOrder(r)) {
    auto field =
        [&r](const Item& i) -> std::tuple<uint64_t, absl::string_view> {
      switch (r.sort_target()) {
        case client::RangeRequest::VERSION:
          return {i.second->version, *i.first};
        case client::RangeRequest::CREATE:
          return {i.second->create_revision, *i.first};
        case client::RangeRequest::MOD:
          return {i.second->revision, *i.first};
        default:
          return {0, *i.first};
      }
    };
    const bool descend = r.sort_order() == client::RangeRequest::DESCEND;
    std::stable_sort(
        items.begin(), items.end(), [&](const Item& a, const Item& b) {
          if (r.sort_target() == client::RangeRequest::VALUE) {
            return descend ? a.second->value > b.second->value
                           : a.second->value < b.second->value;
          }
          return descend ? field(a) > field(b) : field(a) < field(b);
        });
  }
  if (r.limit() > 0 && items.size() > r.limit()) items.resize(r.limit());
  size_t bytes = 0;
  for (const Item& i : items) {
    // The key and value, and about what their numbers and framing take.
    const size_t size =
        i.first->size() + (r.keys_only() ? 0 : i.second->value.size()) + 48;
    if (bytes + size > kMaxRangeBytes && response.kvs_size() > 0) break;
    bytes += size;
    client::KeyValue* kv = response.add_kvs();
    kv->set_key(*i.first);
    kv->set_create_revision(i.second->create_revision);
    kv->set_mod_revision(i.second->revision);
    kv->set_version(i.second->version);
    kv->set_lease(i.second->lease);
    if (!r.keys_only()) kv->set_value(i.second->value);
  }
  response.set_more(static_cast<uint64_t>(response.kvs_size()) < eligible);
  return response;
}

}  // namespace

client::RangeResponse KvStore::RangeLocked(const client::RangeRequest& r,
                                           uint64_t revision) const {
  std::vector<RangeItem> items;
  uint64_t count = 0;
  // In key order, ascending, and without filters, a limit stops the walk
  // early: it only counts the rest.
  const bool key_order = KeyOrder(r) && !HasFilters(r);
  ForEachIn(r.key(), r.range_end(),
            [&](const std::string& key, const Value& v) {
              ++count;
              if (r.count_only()) return true;
              if (key_order && r.limit() > 0 && items.size() >= r.limit()) {
                return true;
              }
              items.emplace_back(&key, &v);  // the index's own string
              return true;
            });
  return Answer(r, std::move(items), count, revision);
}

client::RangeResponse KvStore::RangeInHistory(
    const client::RangeRequest& r) const {
  // The keys in range that changed after the revision, as they were then
  // (nullopt: absent): undo the changes, newest first, so that the
  // oldest change after the revision has the last word.
  absl::btree_map<std::string, std::optional<Value>> then;
  for (auto c = history_.rbegin();
       c != history_.rend() && (*c)->revision() > r.revision(); ++c) {
    const auto& events = (*c)->events();
    for (auto e = events.rbegin(); e != events.rend(); ++e) {
      if (!KeyInRange(e->kv().key(), r.key(), r.range_end())) continue;
      std::optional<Value>& v = then[e->kv().key()];
      if (e->has_prev_kv()) {
        const client::KeyValue& p = e->prev_kv();
        v = Value{p.value(), p.mod_revision(), p.create_revision(), p.version(),
                  p.lease()};
      } else {
        v.reset();
      }
    }
  }
  // Merged in key order with the keys that did not change.
  std::vector<RangeItem> items;
  auto changed = then.begin();
  auto take_changed_before = [&](absl::string_view limit, bool all) {
    for (; changed != then.end() && (all || changed->first < limit);
         ++changed) {
      if (changed->second.has_value()) {
        items.emplace_back(&changed->first, &*changed->second);
      }
    }
  };
  ForEachIn(r.key(), r.range_end(),
            [&](const std::string& key, const Value& v) {
              take_changed_before(key, false);
              if (changed != then.end() && changed->first == key) {
                return true;  // its past state is in `then`
              }
              items.emplace_back(&key, &v);
              return true;
            });
  take_changed_before("", true);
  const uint64_t count = items.size();
  return Answer(r, std::move(items), count, r.revision());
}

void KvStore::PutLocked(absl::string_view key, absl::string_view value,
                        uint64_t revision, uint64_t lease) {
  Value& v = shards_[ShardOf(key)].mutate()[key];
  client::WatchEvent* e = AddEvent(client::WatchEvent::PUT, key, revision);
  if (v.version == 0) {
    v.create_revision = revision;
    index_.insert(std::string(key));
  } else {
    // The value it replaces moves into the history: no copy.
    client::KeyValue& prev = *e->mutable_prev_kv();
    prev.set_key(std::string(key));
    Fill(prev, v);
    prev.set_value(std::move(v.value));
  }
  v.value = std::string(value);
  v.revision = revision;
  ++v.version;
  if (v.lease != lease) {
    // The caller checked that `lease` exists (CheckLeasedPut).
    if (auto old = leases_.find(v.lease); old != leases_.end()) {
      old->second.keys.erase(std::string(key));
    }
    if (lease != 0) leases_[lease].keys.insert(std::string(key));
    v.lease = lease;
  }
  client::KeyValue& kv = *e->mutable_kv();
  Fill(kv, v);
  kv.set_value(v.value);
}

uint64_t KvStore::DeleteLocked(absl::string_view key,
                               absl::string_view range_end) {
  std::vector<std::string> doomed;
  ForEachIn(key, range_end, [&](const std::string& k, const Value&) {
    doomed.push_back(k);
    return true;
  });
  for (const std::string& k : doomed) {
    Shard& shard = shards_[ShardOf(k)].mutate();
    auto it = shard.find(k);
    if (it->second.lease != 0) {
      auto l = leases_.find(it->second.lease);
      if (l != leases_.end()) l->second.keys.erase(k);
    }
    RecordDelete(k, it->second);
    shard.erase(it);
    index_.erase(k);
  }
  return doomed.size();
}

void KvStore::RecordDelete(absl::string_view key, Value& v) {
  client::WatchEvent* e =
      AddEvent(client::WatchEvent::DELETE, key, revision_ + 1);
  client::KeyValue& prev = *e->mutable_prev_kv();
  prev.set_key(std::string(key));
  Fill(prev, v);
  prev.set_value(std::move(v.value));
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
  uint64_t compact_floor = 0;
  std::vector<Change> history;
  std::vector<client::KvLease> leases;  // by id
  std::vector<Cow<Shard>::Pin> shards;
  std::vector<std::pair<uint64_t, Cow<Session>::Pin>> sessions;  // by id
  std::vector<std::pair<std::string, Cow<ShardGroup>::Pin>>
      shard_groups;  // by name

  std::string Serialize() const {
    client::KvSnapshot snap;
    snap.set_revision(revision);
    snap.set_compact_revision(compact_floor);
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
      e->set_create_revision(kv->second.create_revision);
      e->set_version(kv->second.version);
      e->set_lease(kv->second.lease);
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
    for (const client::KvLease& l : leases) *snap.add_leases() = l;
    for (const auto& [name, group] : shard_groups) {
      *snap.add_shard_groups() = ShardGroupToProto(name, *group);
    }
    std::string out = snap.SerializeAsString();
    // The history's changes are appended as they are, serialized, not
    // copied into the message first: protobuf reads a repeated field's
    // occurrences wherever they are in the bytes.
    for (const Change& c : history) AppendHistoryField(*c, &out);
    return out;
  }

  static void AppendHistoryField(const client::KvChange& change,
                                 std::string* out) {
    constexpr uint32_t kHistoryTag = (5 << 3) | 2;  // field 5, length-delimited
    static_assert(client::KvSnapshot::kHistoryFieldNumber == 5);
    out->push_back(static_cast<char>(kHistoryTag));
    for (size_t n = change.ByteSizeLong();; n >>= 7) {
      if (n < 0x80) {
        out->push_back(static_cast<char>(n));
        break;
      }
      out->push_back(static_cast<char>((n & 0x7f) | 0x80));
    }
    change.AppendToString(out);
  }
};

absl::AnyInvocable<std::string()> KvStore::Snapshot() {
  auto frozen = std::make_unique<Frozen>();
  MutexLock lock(&mu_);
  frozen->revision = revision_;
  frozen->compact_floor = compact_floor_;
  frozen->shards.reserve(shards_.size());
  for (const Cow<Shard>& shard : shards_) frozen->shards.push_back(shard.pin());
  frozen->sessions.reserve(sessions_.size());
  for (const auto& [id, s] : sessions_) {
    frozen->sessions.emplace_back(id, s.pin());
  }
  frozen->history.assign(history_.begin(), history_.end());
  frozen->leases.reserve(leases_.size());
  for (const auto& [id, l] : leases_) {
    client::KvLease& out = frozen->leases.emplace_back();
    out.set_id(id);
    out.set_ttl_ms(l.ttl_ms);
    out.set_client(l.client);
    out.set_checkpoint_ms(l.checkpoint_ms);
  }
  frozen->shard_groups.reserve(groups_.size());
  for (const auto& [name, g] : groups_) {
    frozen->shard_groups.emplace_back(name, g.pin());
  }
  return [frozen = std::move(frozen)] { return frozen->Serialize(); };
}

absl::Status KvStore::Restore(const std::string& snapshot) {
  client::KvSnapshot snap;
  if (!snap.ParseFromString(snapshot)) {
    return absl::DataLossError("the key-value snapshot is unreadable");
  }
  if (snap.compact_revision() > snap.revision()) {
    return absl::DataLossError(absl::StrCat(
        "the key-value snapshot was compacted at revision ",
        snap.compact_revision(), ", after its own ", snap.revision()));
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
    // A key created at c and changed v times since has v writes at
    // distinct revisions in [c, mod]. (Snapshots older than these fields
    // have neither: see KvEntry.)
    const bool legacy = e.create_revision() == 0 && e.version() == 0;
    if (!legacy && (e.create_revision() == 0 ||
                    e.create_revision() > e.revision() || e.version() == 0 ||
                    e.version() > e.revision() - e.create_revision() + 1)) {
      return absl::DataLossError(absl::StrCat(
          "the key-value snapshot holds a key created at revision ",
          e.create_revision(), ", changed at ", e.revision(), ", at version ",
          e.version()));
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
  absl::flat_hash_set<uint64_t> lease_ids;
  for (const client::KvLease& l : snap.leases()) {
    if (l.id() == 0 || l.ttl_ms() <= 0 || l.ttl_ms() > kMaxLeaseTtlMs ||
        l.checkpoint_ms() < -1 || l.checkpoint_ms() > l.ttl_ms() ||
        !lease_ids.insert(l.id()).second) {
      return absl::DataLossError(absl::StrCat(
          "the key-value snapshot holds a damaged lease (id ", l.id(), ", TTL ",
          l.ttl_ms(), " ms, checkpoint ", l.checkpoint_ms(), ")"));
    }
  }
  for (const client::KvEntry& e : snap.entries()) {
    if (e.lease() != 0 && !lease_ids.contains(e.lease())) {
      return absl::DataLossError(
          absl::StrCat("the key-value snapshot attaches a key to lease ",
                       e.lease(), ", which it does not hold"));
    }
  }
  // The history: consecutive revisions up to the snapshot's, each with the
  // events of its writes.
  if (static_cast<uint64_t>(snap.history_size()) > snap.revision()) {
    return absl::DataLossError(absl::StrCat(
        "the key-value snapshot at revision ", snap.revision(), " holds ",
        snap.history_size(), " revisions of watch history"));
  }
  for (int i = 0; i < snap.history_size(); ++i) {
    const client::KvChange& c = snap.history(i);
    const uint64_t want =
        snap.revision() - static_cast<uint64_t>(snap.history_size() - 1 - i);
    bool sound =
        c.revision() == want && c.revision() != 0 && c.events_size() > 0;
    for (const client::WatchEvent& e : c.events()) {
      sound = sound && !e.kv().key().empty() &&
              e.kv().mod_revision() == c.revision() &&
              (!e.has_prev_kv() || e.prev_kv().mod_revision() < c.revision());
    }
    if (!sound) {
      return absl::DataLossError(
          absl::StrCat("the key-value snapshot at revision ", snap.revision(),
                       " holds a damaged watch history (revision ",
                       c.revision(), " where ", want, " belongs)"));
    }
  }
  std::map<std::string, Cow<ShardGroup>> groups;
  for (const client::ShardGroupState& in : snap.shard_groups()) {
    absl::StatusOr<ShardGroup> g = ShardGroupFromProto(in, unsafe_.shards);
    if (!g.ok()) return g.status();
    for (const auto& [id, m] : g->members()) {
      uint64_t lease = 0;
      // (The broken variant that ignores session ends makes such groups.)
      if (!absl::SimpleHexAtoi(id, &lease) ||
          (!lease_ids.contains(lease) && !unsafe_.shards.ignore_session_end)) {
        return absl::DataLossError(
            absl::StrCat("the key-value snapshot's shard group '", in.name(),
                         "' has a processor without a session (", id, ")"));
      }
    }
    if (!groups.emplace(in.name(), Cow<ShardGroup>(*std::move(g))).second) {
      return absl::DataLossError(absl::StrCat(
          "the key-value snapshot holds shard group '", in.name(), "' twice"));
    }
  }
  std::vector<LeaseEvent> events = {LeaseEvent{LeaseEvent::Kind::kReset}};
  {
    MutexLock lock(&mu_);
    groups_ = std::move(groups);
    revision_ = snap.revision();
    history_.clear();
    for (const client::KvChange& c : snap.history()) {
      history_.push_back(std::make_shared<const client::KvChange>(c));
    }
    compacted_ = snap.revision() - history_.size();
    compact_floor_ = snap.compact_revision();
    TrimHistory();
    pending_.Clear();
    // New shards: a pinned one keeps its old contents for its reader.
    for (Cow<Shard>& shard : shards_) shard = Cow<Shard>();
    index_.clear();
    for (const client::KvEntry& e : snap.entries()) {
      const bool legacy = e.create_revision() == 0 && e.version() == 0;
      shards_[ShardOf(e.key())].mutate()[e.key()] = Value{
          e.value(), e.revision(), legacy ? e.revision() : e.create_revision(),
          legacy ? 1 : e.version(), e.lease()};
      index_.insert(index_.end(), e.key());  // sorted already
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
    leases_.clear();
    for (const client::KvLease& in : snap.leases()) {
      Lease& l = leases_[in.id()];
      l.ttl_ms = in.ttl_ms();
      l.client = in.client();
      l.checkpoint_ms = in.checkpoint_ms();
      events.push_back(LeaseEvent{LeaseEvent::Kind::kGranted, in.id(),
                                  in.ttl_ms(), in.checkpoint_ms()});
    }
    for (const client::KvEntry& e : snap.entries()) {
      if (e.lease() != 0) leases_[e.lease()].keys.insert(e.key());
    }
  }
  if (lease_listener_) lease_listener_(events);
  if (change_listener_) change_listener_(snap.revision());
  return absl::OkStatus();
}

std::optional<KvStore::LeaseInfo> KvStore::GetLease(uint64_t id,
                                                    bool keys) const {
  MutexLock lock(&mu_);
  auto it = leases_.find(id);
  if (it == leases_.end()) return std::nullopt;
  LeaseInfo info;
  info.id = id;
  info.ttl_ms = it->second.ttl_ms;
  info.checkpoint_ms = it->second.checkpoint_ms;
  info.key_count = it->second.keys.size();
  if (keys) info.keys.assign(it->second.keys.begin(), it->second.keys.end());
  return info;
}

std::vector<uint64_t> KvStore::LeaseIds() const {
  MutexLock lock(&mu_);
  std::vector<uint64_t> ids;
  ids.reserve(leases_.size());
  for (const auto& [id, l] : leases_) ids.push_back(id);
  return ids;
}

void KvStore::SetLeaseListener(LeaseListener listener) {
  lease_listener_ = std::move(listener);
}

std::optional<KvStore::Value> KvStore::Get(absl::string_view key) const {
  MutexLock lock(&mu_);
  const Value* v = Find(key);
  if (v == nullptr) return std::nullopt;
  return *v;
}

absl::StatusOr<client::RangeResponse> KvStore::Range(
    const client::RangeRequest& r) const {
  MutexLock lock(&mu_);
  const uint64_t at = r.revision();
  if (at == 0 || at == revision_) return RangeLocked(r, revision_);
  if (at > revision_) {
    return absl::OutOfRangeError(absl::StrCat(
        "revision ", at, " is in the future: this member's is ", revision_));
  }
  if (at < compact_floor_) {
    return absl::OutOfRangeError(
        absl::StrCat("revision ", at,
                     " is compacted: the oldest revision "
                     "readable is ",
                     compact_floor_, " (Compact)"));
  }
  if (at < compacted_) {
    return absl::OutOfRangeError(absl::StrCat(
        "revision ", at, " is compacted: the oldest revision readable is ",
        compacted_, " (the watch history keeps ", history_window_,
        " revisions: --watch_history)"));
  }
  return RangeInHistory(r);
}

void KvStore::SetHistoryWindow(size_t revisions) {
  MutexLock lock(&mu_);
  history_window_ = std::max<size_t>(revisions, 1);
  TrimHistory();
}

void KvStore::SetChangeListener(ChangeListener listener) {
  change_listener_ = std::move(listener);
}

KvStore::History KvStore::ChangesFrom(uint64_t from, size_t max) const {
  MutexLock lock(&mu_);
  History h;
  h.compacted = compacted_;
  h.revision = revision_;
  if (from <= compacted_ || from > revision_) return h;
  // history_[i] is revision compacted_ + 1 + i.
  const size_t first = static_cast<size_t>(from - compacted_ - 1);
  const size_t n = std::min(max, history_.size() - first);
  h.changes.assign(history_.begin() + static_cast<ptrdiff_t>(first),
                   history_.begin() + static_cast<ptrdiff_t>(first + n));
  return h;
}

uint64_t KvStore::compacted() const {
  MutexLock lock(&mu_);
  return compacted_;
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
