// Fuzzes the key-value state machine with committed commands:
// quorate.client.KvCommands (raw bytes, or built from a few keys, values,
// clients and op sequence numbers) applied to coord::KvStore at increasing
// log indexes, as the driver applies committed entries, interleaved with
// snapshots restored into a new store, snapshots captured and serialized
// later, and bursts that fill a client's duplicate window or the session
// table (format: fuzz_input.h, KvOp).
//
// Lease commands (grant, revoke, expire, checkpoint) and puts attached to
// leases are among them. Checked too: a granted lease exists; a revoked or
// expired one does not, and neither do its keys, all gone at one revision
// (none if it had no keys); every key attached to a lease is listed by it,
// and every key a lease lists is attached to it.
//
// Checked after every command: the result parses; the revision never
// decreases and rises by at most one; it rises exactly when a write
// happened (the result is OK and names the new revision, and the keys then
// read back the written values or are gone); a result that is OK without a
// write is the remembered result of the same op, or a transaction that
// changed nothing (its branch put nothing and deleted nothing); a repeated
// op within its client's window returns the first result again (a
// transaction's without what its ranges read, marked replayed) and changes
// nothing; an op older than the window is UNKNOWN. A restored store answers
// like the original (revision, sessions, every key, its own snapshot bytes; see
// kv_check.h), and both then answer every later command with the same
// bytes. A snapshot captured earlier and serialized later holds the state
// as of its capture. Never a crash, an abort or undefined behaviour.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "coord/kv.h"
#include "fuzz_input.h"
#include "kv_check.h"
#include "util/check.h"
#include "wire/client.pb.h"

namespace quorate::fuzz {
namespace {

// Bounds the work per input: bursts apply thousands of commands, and a
// restore copies the whole state.
constexpr uint64_t kMaxCommands = 20'000;
constexpr int kMaxHeavyOps = 12;  // bursts, restores and captures

std::string KeyFor(int k) {
  if (k < 6) return "k" + std::to_string(k);
  if (k == 6) return "";                             // refused: empty
  return std::string(coord::kMaxKeyBytes + 1, 'x');  // refused: too long
}

class Harness {
 public:
  void Run(Reader& in) {
    while (!in.empty() && index_ <= kMaxCommands) {
      const uint8_t byte = in.U8();
      uint8_t op = byte & kKvOpMask;
      // Bursts are costly: only the byte kKvBurst itself starts one.
      if (op == kKvBurst && byte != kKvBurst) op = kKvCommand;
      if (op == kKvRaw) {
        Apply(in.Bytes(in.U16()));
      } else if (op <= kKvCommandLast) {
        Apply(Command(in).SerializeAsString());
      } else if (op == kKvRestore) {
        const uint8_t how = in.U8();
        if (++heavy_ops_ <= kMaxHeavyOps) Restore(how);
      } else if (op == kKvBurst) {
        const uint8_t n = in.U8();
        const uint8_t mode = in.U8();
        if (++heavy_ops_ <= kMaxHeavyOps) Burst(n, mode);
      } else if (op == kKvCapture) {
        if (captured_ || ++heavy_ops_ <= kMaxHeavyOps) Capture();
      } else {
        Query(in.U8() % 5, in.U8());
      }
    }
    if (captured_) Capture();
  }

 private:
  struct OpKey {
    uint64_t client, seq;
    bool operator<(const OpKey& o) const {
      return client != o.client ? client < o.client : seq < o.seq;
    }
  };

  client::KvCommand Command(Reader& in) {
    const uint8_t sel = in.U8();
    const std::string key = KeyFor(sel >> 2 & 7);
    const std::string value = in.Bytes(in.U8());
    const uint64_t client = in.U8() % 5;
    const uint64_t seq = in.U8();
    const uint64_t expected = in.U8();
    client::KvCommand cmd;
    if (client != 0) {
      cmd.mutable_op()->set_client(client);
      cmd.mutable_op()->set_seq(seq);
    }
    if ((sel & 0x83) == 0x80) {
      Lease(expected, value.size(), cmd);
      return cmd;
    }
    switch (sel & 3) {
      case 1:
        cmd.mutable_put()->set_key(key);
        cmd.mutable_put()->set_value(value);
        // Attached to a lease granted earlier, or (sometimes) to none
        // that exists.
        if (sel & 0x80) cmd.mutable_put()->set_lease(PickLease(expected));
        if (sel & 0x80) cmd.mutable_limits()->set_max_keys_per_lease(3);
        break;
      case 2:
        cmd.mutable_del()->set_key(key);
        break;
      case 3: {
        client::CasRequest* cas = cmd.mutable_cas();
        cas->set_key(key);
        cas->set_value(value);
        const auto current = store_->Get(key);
        cas->set_expected_revision(
            (sel & 0x20) ? (current ? current->revision : 0) : expected);
        break;
      }
      default:
        if (sel & 0x40) Txn(key, value, expected, cmd.mutable_txn());
        break;
    }
    return cmd;
  }

  // A lease granted earlier (it may have ended since), or, for some picks,
  // an id that was never granted.
  uint64_t PickLease(uint64_t pick) const {
    if (granted_.empty() || pick % 8 == 7) return 1'000'000 + pick;
    return granted_[pick % granted_.size()];
  }

  // A lease command: grant (a TTL from `n`, sometimes out of range, and
  // sometimes an id of its own), revoke, expire or checkpoint.
  void Lease(uint64_t pick, size_t n, client::KvCommand& cmd) const {
    switch (pick % 4) {
      case 0: {
        client::LeaseGrantRequest* g = cmd.mutable_lease_grant();
        g->set_ttl_ms(n == 0 ? 0 : static_cast<int64_t>(n) * 1000);
        if (pick & 0x10) g->set_id(PickLease(pick / 4));
        cmd.mutable_limits()->set_max_leases_per_client(4);
        break;
      }
      case 1:
        cmd.mutable_lease_revoke()->set_id(PickLease(pick / 4));
        break;
      case 2:
        cmd.mutable_lease_expire()->add_ids(PickLease(pick / 4));
        if (pick & 0x40) cmd.mutable_lease_expire()->add_ids(PickLease(n));
        break;
      default: {
        client::LeaseCheckpointCommand* c = cmd.mutable_lease_checkpoint();
        if (pick & 0x40) {
          c->add_clear(PickLease(pick / 4));
        } else {
          c->add_ids(PickLease(pick / 4));
          c->add_remaining_ms(static_cast<int64_t>(n) * 100 - 50);
          if (pick & 0x80) c->add_ids(PickLease(n));  // torn: refused
        }
        break;
      }
    }
  }

  // Every key attached to a lease is in that lease's list, and the other
  // way round.
  void CheckLeaseLinks() const {
    for (int k = 0; k < 6; ++k) {
      const std::string key = KeyFor(k);
      const auto v = store_->Get(key);
      if (!v.has_value() || v->lease == 0) continue;
      const auto lease = store_->GetLease(v->lease, true);
      QUORATE_CHECK(lease.has_value())
          << "key " << key << " is attached to lease " << v->lease
          << ", which does not exist";
      QUORATE_CHECK(std::find(lease->keys.begin(), lease->keys.end(), key) !=
                    lease->keys.end())
          << "lease " << v->lease << " does not list its key " << key;
    }
    for (uint64_t id : granted_) {
      const auto lease = store_->GetLease(id, true);
      if (!lease.has_value()) continue;
      QUORATE_CHECK_EQ(lease->keys.size(), lease->key_count);
      for (const std::string& key : lease->keys) {
        const auto v = store_->Get(key);
        QUORATE_CHECK(v.has_value() && v->lease == id)
            << "lease " << id << " lists key " << key << ", not attached";
      }
    }
  }

  // A transaction: one compare of `key` (target and operator from
  // `pick`), then a put of it, a range over every "k" key, or on failure
  // a delete of part of them and a read of the key.
  static void Txn(const std::string& key, const std::string& value,
                  uint64_t pick, client::TxnRequest* t) {
    client::Compare* c = t->add_compare();
    c->set_key(key);
    c->set_target(static_cast<client::Compare::Target>(pick % 5));
    c->set_result(static_cast<client::Compare::Result>(pick / 5 % 4));
    const int64_t n = static_cast<int64_t>(pick / 20 % 4);
    switch (c->target()) {
      case client::Compare::VERSION:
        c->set_version(n);
        break;
      case client::Compare::CREATE:
        c->set_create_revision(n);
        break;
      case client::Compare::MOD:
        c->set_mod_revision(n);
        break;
      case client::Compare::VALUE:
        c->set_value(value);
        break;
      default:
        c->set_lease(n);
        break;
    }
    client::PutRequest* put = t->add_success()->mutable_put();
    put->set_key(key);
    put->set_value(value);
    client::RangeRequest* all = t->add_success()->mutable_range();
    all->set_key("k");
    all->set_range_end(coord::PrefixEnd("k"));
    client::DeleteRangeRequest* del = t->add_failure()->mutable_delete_range();
    del->set_key("k0");
    del->set_range_end("k" + std::to_string(n + 1));
    t->add_failure()->mutable_range()->set_key(key.empty() ? "k0" : key);
  }

  void Apply(const std::string& bytes) {
    const uint64_t index = index_++;
    const uint64_t before = store_->revision();
    // The keys of the leases a revoke or expiry names, to check they go.
    ending_keys_.clear();
    {
      client::KvCommand peek;
      if (peek.ParseFromString(bytes)) {
        std::vector<uint64_t> ids(peek.lease_expire().ids().begin(),
                                  peek.lease_expire().ids().end());
        if (peek.has_lease_revoke()) ids.push_back(peek.lease_revoke().id());
        for (uint64_t id : ids) {
          if (auto l = store_->GetLease(id, true)) {
            ending_keys_.insert(ending_keys_.end(), l->keys.begin(),
                                l->keys.end());
          }
        }
      }
    }
    const std::string out = store_->Apply(index, bytes);
    const uint64_t after = store_->revision();
    if (shadow_ != nullptr) {
      QUORATE_CHECK(shadow_->Apply(index, bytes) == out)
          << "a restored store answers command " << index << " differently";
      QUORATE_CHECK_EQ(shadow_->revision(), after);
    }
    client::KvResult result;
    QUORATE_CHECK(result.ParseFromString(out)) << "unreadable result";
    last_result_ = result;
    QUORATE_CHECK(after == before || after == before + 1)
        << "revision went from " << before << " to " << after;
    // The watch history holds the new revision's events, all at it, and
    // nothing for a command that wrote nothing.
    {
      const coord::KvStore::History h = store_->ChangesFrom(before + 1, 2);
      QUORATE_CHECK_EQ(h.changes.size(), after - before);
      if (after != before) {
        QUORATE_CHECK_EQ(h.changes[0]->revision(), after);
        QUORATE_CHECK(h.changes[0]->events_size() > 0)
            << "revision " << after << " has no events";
        for (const client::WatchEvent& e : h.changes[0]->events()) {
          QUORATE_CHECK_EQ(e.kv().mod_revision(), after);
        }
      }
    }
    if (store_->sessions() >= coord::kMaxSessions) may_forget_ = true;

    client::KvCommand cmd;
    const bool parsed = cmd.ParseFromString(bytes);
    const bool lease_cmd =
        parsed && (cmd.has_lease_grant() || cmd.has_lease_revoke() ||
                   cmd.has_lease_expire() || cmd.has_lease_checkpoint());
    // (A repeated op id answers with its first result and changes nothing;
    // checked below.)
    const bool repeated =
        parsed && cmd.op().client() != 0 &&
        results_.count(OpKey{cmd.op().client(), cmd.op().seq()}) > 0;
    if (result.code() == 0 && result.lease_id() != 0 && !repeated) {
      QUORATE_CHECK(store_->GetLease(result.lease_id(), false).has_value())
          << "a granted lease does not exist";
      if (std::find(granted_.begin(), granted_.end(), result.lease_id()) ==
          granted_.end()) {
        granted_.push_back(result.lease_id());
      }
    }
    if (parsed && result.code() == 0 && !repeated &&
        (cmd.has_lease_revoke() || cmd.has_lease_expire())) {
      // The leases are gone, their keys with them, at one revision.
      for (uint64_t id : cmd.lease_expire().ids()) {
        QUORATE_CHECK(!store_->GetLease(id, false).has_value())
            << "an expired lease still exists";
      }
      QUORATE_CHECK(!store_->GetLease(cmd.lease_revoke().id(), false))
          << "a revoked lease still exists";
      for (const std::string& key : ending_keys_) {
        QUORATE_CHECK(!store_->Get(key).has_value())
            << "key " << key << " outlived its lease";
      }
      QUORATE_CHECK_EQ(after, before + (ending_keys_.empty() ? 0 : 1))
          << "ending leases took the wrong number of revisions";
    }
    if (lease_cmd || after != before) CheckLeaseLinks();
    if (after == before + 1) {
      QUORATE_CHECK(parsed);
      QUORATE_CHECK_EQ(result.code(), 0) << "a failed command wrote";
      QUORATE_CHECK_EQ(result.revision(), after);
      CheckWritten(cmd, after);
    }
    const uint64_t client = parsed ? cmd.op().client() : 0;
    const bool unchanged_txn =
        after == before && result.code() == 0 && result.has_txn();
    if (client == 0) {
      if (unchanged_txn) CheckChangedNothing(result.txn());
      QUORATE_CHECK(after == before + 1 || result.code() != 0 ||
                    result.has_txn() || lease_cmd)
          << "OK without a write for an op without an id";
      return;
    }
    const OpKey op{client, cmd.op().seq()};
    auto newest = newest_.find(client);
    const bool too_old = newest != newest_.end() &&
                         op.seq + coord::kSessionWindow <= newest->second;
    auto done = results_.find(op);
    const bool known = done != results_.end();
    if (after == before) {
      QUORATE_CHECK(result.code() != 0 || known || result.has_txn() ||
                    lease_cmd)
          << "OK without a write, and not a repeated op";
      if (unchanged_txn && !known) CheckChangedNothing(result.txn());
    }
    if (!may_forget_ && too_old) {
      QUORATE_CHECK_EQ(result.code(),
                       static_cast<int>(absl::StatusCode::kUnknown))
          << "an op older than the window was not refused";
      QUORATE_CHECK_EQ(after, before);
    } else if (!may_forget_ && known) {
      QUORATE_CHECK(out == Replayed(done->second))
          << "a repeated op answered differently";
      QUORATE_CHECK_EQ(after, before) << "a repeated op wrote again";
    } else if (!too_old) {
      // Applied now, and remembered from now on.
      results_[op] = out;
      uint64_t& n = newest_[client];
      n = std::max(n, op.seq);
    }
  }

  // A repeated op's answer, given the first: the same bytes, except that a
  // transaction's says it is a replay and leaves out what its ranges read.
  static std::string Replayed(const std::string& first) {
    client::KvResult r;
    QUORATE_CHECK(r.ParseFromString(first));
    if (!r.has_txn()) return first;
    r.mutable_txn()->set_replayed(true);
    for (client::ResponseOp& op : *r.mutable_txn()->mutable_responses()) {
      if (op.has_range()) op.mutable_range()->Clear();
    }
    return r.SerializeAsString();
  }

  static void CheckChangedNothing(const client::TxnResponse& txn) {
    for (const client::ResponseOp& op : txn.responses()) {
      QUORATE_CHECK(!op.has_put()) << "a transaction put without a revision";
      QUORATE_CHECK(!op.has_delete_range() || op.delete_range().deleted() == 0)
          << "a transaction deleted without a revision";
    }
  }

  // Every write of the branch the transaction ran: a put's key reads back
  // its value at the new revision, a deleted range is empty.
  void CheckTxnWritten(const client::TxnRequest& txn,
                       const client::TxnResponse& response, uint64_t revision) {
    const auto& ops = response.succeeded() ? txn.success() : txn.failure();
    QUORATE_CHECK_EQ(response.responses_size(), ops.size());
    bool wrote = false;
    for (const client::RequestOp& op : ops) {
      if (op.has_put()) {
        wrote = true;
        touched_.insert(op.put().key());
        const auto got = store_->Get(op.put().key());
        QUORATE_CHECK(got.has_value() && got->value == op.put().value() &&
                      got->revision == revision)
            << "a key a transaction put reads back differently";
      } else if (op.has_delete_range()) {
        client::RangeRequest r;
        r.set_key(op.delete_range().key());
        r.set_range_end(op.delete_range().range_end());
        r.set_count_only(true);
        QUORATE_CHECK_EQ(store_->Range(r)->count(), 0u)
            << "a range a transaction deleted still has keys";
      }
    }
    for (const client::ResponseOp& r : response.responses()) {
      wrote = wrote || (r.has_delete_range() && r.delete_range().deleted() > 0);
    }
    QUORATE_CHECK(wrote) << "a transaction that wrote nothing took a revision";
  }

  void CheckWritten(const client::KvCommand& cmd, uint64_t revision) {
    if (cmd.has_txn()) {
      CheckTxnWritten(cmd.txn(), last_result_.txn(), revision);
      return;
    }
    if (cmd.has_lease_revoke() || cmd.has_lease_expire()) {
      QUORATE_CHECK(!ending_keys_.empty())
          << "ending leases without keys took a revision";
      return;  // checked in Apply
    }
    if (cmd.has_put()) {
      const auto got = store_->Get(cmd.put().key());
      QUORATE_CHECK(got.has_value() && got->lease == cmd.put().lease())
          << "a put's key is not attached to the put's lease";
    }
    std::string key;
    std::optional<std::string> value;
    if (cmd.has_put()) {
      key = cmd.put().key();
      value = cmd.put().value();
    } else if (cmd.has_cas()) {
      key = cmd.cas().key();
      value = cmd.cas().value();
    } else {
      QUORATE_CHECK(cmd.has_del()) << "a command without an operation wrote";
      key = cmd.del().key();
    }
    touched_.insert(key);
    const std::optional<coord::KvStore::Value> got = store_->Get(key);
    if (!value.has_value()) {
      QUORATE_CHECK(!got.has_value()) << "a deleted key is still there";
      return;
    }
    QUORATE_CHECK(got.has_value()) << "a written key is missing";
    QUORATE_CHECK(got->value == *value && got->revision == revision)
        << "a written key reads back differently";
  }

  void Restore(uint8_t how) {
    auto copy = CheckRoundTrip(*store_, SnapshotNow(*store_));
    for (const std::string& key : touched_) {
      const auto a = store_->Get(key);
      const auto b = copy->Get(key);
      QUORATE_CHECK_EQ(a.has_value(), b.has_value());
      if (a.has_value()) {
        QUORATE_CHECK(a->value == b->value && a->revision == b->revision);
      }
    }
    for (const auto& [op, result] : results_) {
      client::OpId id;
      id.set_client(op.client);
      id.set_seq(op.seq);
      QUORATE_CHECK(store_->WasApplied(id) == copy->WasApplied(id));
    }
    if (how & 1) {
      // Go on with the restored store alone; keep the old one alive for a
      // capture that may still pin it.
      retired_.push_back(std::move(store_));
      store_ = std::move(copy);
      shadow_.reset();
    } else {
      shadow_ = std::move(copy);
    }
  }

  void Burst(uint8_t n, uint8_t mode) {
    const int count = n * 8;
    for (int i = 0; i < count && index_ <= kMaxCommands; ++i) {
      client::KvCommand cmd;
      if (mode & 1) {
        // Distinct clients: fills the session table. Past it, each new
        // client costs a scan of the whole table: a few are enough.
        if (burst_clients_ > coord::kMaxSessions + 64) break;
        cmd.mutable_op()->set_client(1000 + burst_clients_++);
        cmd.mutable_op()->set_seq(1);
      } else {
        // One client's ops in order: slides its window. Client 4, which
        // the other commands use too.
        cmd.mutable_op()->set_client(4);
        cmd.mutable_op()->set_seq(++burst_seq_);
      }
      cmd.mutable_put()->set_key("b" + std::to_string(i % 16));
      cmd.mutable_put()->set_value(std::to_string(i));
      Apply(cmd.SerializeAsString());
    }
  }

  void Capture() {
    if (!captured_) {
      captured_ = store_->Snapshot();
      captured_bytes_ = SnapshotNow(*store_);
      return;
    }
    QUORATE_CHECK(captured_() == captured_bytes_)
        << "a captured snapshot changed before it was serialized";
    captured_ = nullptr;
  }

  void Query(uint64_t client, uint64_t seq) {
    client::OpId id;
    id.set_client(client);
    id.set_seq(seq);
    const std::optional<bool> applied = store_->WasApplied(id);
    if (applied.value_or(false)) {
      QUORATE_CHECK(results_.count(OpKey{client, seq}) > 0)
          << "WasApplied for an op never applied";
    }
  }

  std::unique_ptr<coord::KvStore> store_ = std::make_unique<coord::KvStore>();
  std::unique_ptr<coord::KvStore> shadow_;  // restored copy, fed the same
  std::vector<std::unique_ptr<coord::KvStore>> retired_;
  uint64_t index_ = 1;
  std::set<std::string> touched_;
  std::vector<uint64_t> granted_;         // lease ids granted so far
  std::vector<std::string> ending_keys_;  // of the leases being ended
  // Ops applied (not answered from memory) and their results, and each
  // client's highest seq applied.
  std::map<OpKey, std::string> results_;
  client::KvResult last_result_;  // of the command applied last
  std::map<uint64_t, uint64_t> newest_;
  // Once the session table is full, the store may forget any client.
  bool may_forget_ = false;
  int heavy_ops_ = 0;
  uint64_t burst_clients_ = 0;
  uint64_t burst_seq_ = 0;
  absl::AnyInvocable<std::string()> captured_;
  std::string captured_bytes_;
};

}  // namespace
}  // namespace quorate::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  quorate::fuzz::Reader in(data, size);
  quorate::fuzz::Harness harness;
  harness.Run(in);
  return 0;
}
