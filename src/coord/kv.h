// coord/kv.h: the replicated key-value store, a node::StateMachine.
//
// Every member applies the same committed commands (client.proto KvCommand)
// in the same order and so holds the same map. The data model is etcd's:
// each key has a value, a create revision, a mod revision, a version and a
// lease. Every command is a transaction (compares, then the operations of
// one branch: put, delete range, range); put, delete and compare-and-set
// are the special cases with one operation. A transaction that changes
// something increases the cluster revision by one, and every key it
// writes takes that revision.
//
// Keys are also kept in order (an index beside the hashed shards), for
// range reads: a key, a prefix, or [key, range_end), with a limit, sorted,
// keys or count only. A range answer holds at most kMaxRangeBytes of keys
// and values; `more` says there are others, and the caller continues from
// the last key it got.
//
// Duplicate operations: a command carries OpId{client, seq}. The store
// keeps, per client, the results of its last kSessionWindow operations; a
// command whose op was already applied returns the stored result and
// changes nothing, so a client may retry a write whose outcome it does not
// know. An op older than the window is refused with UNKNOWN: the store can
// no longer tell whether it was applied before. At most kMaxSessions clients
// are remembered; the one used longest ago is forgotten first (by log index, so
// every member forgets the same one).
//
// Watch history: every revision's events (client.proto KvChange: each
// key written or deleted, with its value before) are kept for the last
// `history window` revisions (SetHistoryWindow; at least
// kMinWatchHistory on a member). Watchers (coord/watch.h) read them from
// here, and so do range reads at a past revision; they go in snapshots
// too. The revisions before the history are "compacted".
//
// Apply() and Snapshot() run on the node loop; Get() and revision() may be
// called from any thread, and so may the function Snapshot() returns.
//
// Snapshots: the keys live in kShards shards, each copied on write
// (util/cow.h), and so do the clients' sessions. Snapshot() only pins them
// (a few thousand reference counts, whatever the store's size); the
// function it returns sorts and serializes the pinned state on another
// thread while Apply() goes on. The first write to a shard or a session
// while it is pinned copies that shard or session: at most 1/kShards of the
// keys, or one client's remembered results, per write.
#ifndef QUORATE_COORD_KV_H_
#define QUORATE_COORD_KV_H_

#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/btree_set.h"
#include "absl/container/flat_hash_map.h"
#include "absl/functional/any_invocable.h"
#include "absl/hash/hash.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "coord/shard_group.h"
#include "node/node.h"
#include "util/cow.h"
#include "util/mutex.h"
#include "wire/client.pb.h"

namespace quorate::coord {

inline constexpr size_t kMaxKeyBytes = 4096;
inline constexpr size_t kMaxValueBytes = 1 << 20;
inline constexpr size_t kSessionWindow = 4096;
inline constexpr size_t kMaxSessions = 10000;
// Ceilings the state machine itself enforces, the same on every member.
// Members refuse requests beyond their own (configurable, lower) limits
// before proposing them: TxnLimits.
inline constexpr size_t kMaxTxnOps = 1024;         // compares + operations
inline constexpr size_t kMaxTxnBytes = 2 << 20;    // the serialized request
inline constexpr size_t kMaxRangeBytes = 3 << 20;  // of keys and values

// INVALID_ARGUMENT naming the limit, or OK.
absl::Status CheckKeyValue(absl::string_view key, absl::string_view value);
// INVALID_ARGUMENT if a client's write of `key` (or of [key, range_end),
// RangeRequest's rules) would touch the keys the state machine keeps for
// shard groups (kShardKeyPrefix), or OK.
absl::Status CheckWritable(absl::string_view key, absl::string_view range_end);

// Leases: the state machine's ceilings (members refuse lower limits of
// their own before proposing: LeaseLimits).
inline constexpr int64_t kMaxLeaseTtlMs = int64_t{30} * 24 * 3600 * 1000;
inline constexpr uint32_t kMaxLeasesPerClient = 1 << 20;
inline constexpr uint32_t kMaxKeysPerLease = 1 << 20;

// A member's limits on leases (docs/operations.md).
struct LeaseLimits {
  int64_t min_ttl_ms = 1000;  // set from the election timeout: 2 T
  int64_t max_ttl_ms = int64_t{24} * 3600 * 1000;
  uint32_t max_leases_per_client = 16384;
  uint32_t max_keys_per_lease = 10000;
};

// INVALID_ARGUMENT naming the limit, or OK.
absl::Status CheckLeaseTtl(int64_t ttl_ms, const LeaseLimits& limits);

// What applying a command did to the leases, for the leader's lessor
// (coord/lessor.h). kReset: the store was restored from a snapshot; the
// events after it list every lease (kGranted, with its checkpoint).
struct LeaseEvent {
  enum class Kind { kGranted, kRemoved, kCheckpoint, kReset };
  Kind kind = Kind::kGranted;
  uint64_t id = 0;
  int64_t ttl_ms = 0;
  int64_t checkpoint_ms = -1;  // -1: none
};
// Called on the applying thread, outside the store's lock, after an Apply()
// that changed leases and after every Restore().
using LeaseListener = std::function<void(const std::vector<LeaseEvent>&)>;

// A member's limits on the transactions it accepts from clients.
struct TxnLimits {
  size_t max_ops = 128;                // compares + operations
  size_t max_bytes = size_t{3} << 19;  // 1.5 MiB, serialized
};

// INVALID_ARGUMENT naming what is wrong (a limit, an empty key, a range
// whose end is before its start, two writes of one key in a branch), or
// OK.
absl::Status CheckRange(absl::string_view key, absl::string_view range_end);
absl::Status CheckTxn(const client::TxnRequest& txn, const TxnLimits& limits);
// Whether neither branch writes: such a transaction is served at a read
// point instead of being proposed.
bool IsReadOnly(const client::TxnRequest& txn);
// The oldest peer protocol (transport/transport.h, kPeerProtocol) whose
// members apply `txn` as this release does: 2 if it nests a transaction
// or keeps a key's value or lease, 1 otherwise.
uint32_t ProtocolOf(const client::TxnRequest& txn);
// The range_end that makes [prefix, range_end) every key starting with
// `prefix`.
std::string PrefixEnd(absl::string_view prefix);
// Whether `key` is in [start, end) by RangeRequest's rules.
bool KeyInRange(absl::string_view key, absl::string_view start,
                absl::string_view end);

// The revisions a member's watch history holds at least (the default, and
// the floor of --watch_history).
inline constexpr size_t kMinWatchHistory = 10000;

// One revision's events, shared by the history, snapshots and watchers.
using Change = std::shared_ptr<const client::KvChange>;
// Called on the applying thread, outside the store's lock, with the new
// revision: after an Apply() that created one, and after every Restore().
using ChangeListener = std::function<void(uint64_t revision)>;

// The status a KvResult stands for.
absl::Status ResultStatus(const client::KvResult& result);

// A shard group as snapshots hold it, and back (DATA_LOSS if damaged).
client::ShardGroupState ShardGroupToProto(const std::string& name,
                                          const ShardGroup& group);
absl::StatusOr<ShardGroup> ShardGroupFromProto(
    const client::ShardGroupState& state, ShardGroup::Unsafe unsafe = {});
// The leader's proposal that a shard's drain deadline passed (DrainClock).
client::KvCommand DrainExpiredCommand(const DrainingShard& shard);

class KvStore final : public node::StateMachine {
 public:
  // Deliberately broken behaviour, so that the simulator can show its
  // checkers catch it. Never set outside tests.
  struct Unsafe {
    // Run a transaction's success branch whatever its compares say.
    bool txn_ignores_compares = false;
    // Shard groups' broken variants (coord/shard_group.h).
    ShardGroup::Unsafe shards;
  };
  KvStore();
  explicit KvStore(Unsafe unsafe);

  struct Value {
    std::string value;
    uint64_t revision = 0;  // the mod revision: its last change
    uint64_t create_revision = 0;
    uint64_t version = 0;  // changes since created: 1, 2, ...
    uint64_t lease = 0;
  };

  // node::StateMachine. Apply returns a serialized client::KvResult.
  std::string Apply(uint64_t index, const std::string& command) override;
  absl::AnyInvocable<std::string()> Snapshot() override;
  absl::Status Restore(const std::string& snapshot) override;

  std::optional<Value> Get(absl::string_view key) const;
  // A range read (RangeRequest's rules; the request must pass CheckRange)
  // of the current state, or of a past revision from the history:
  // OUT_OF_RANGE for one before it or after the current one. Any thread.
  absl::StatusOr<client::RangeResponse> Range(
      const client::RangeRequest& request) const;
  // A transaction without writes (IsReadOnly), evaluated against the
  // current state. Any thread.
  client::TxnResponse ReadTxn(const client::TxnRequest& txn) const;
  uint64_t revision() const;
  size_t sessions() const;
  // Leases.
  struct LeaseInfo {
    uint64_t id = 0;
    int64_t ttl_ms = 0;
    int64_t checkpoint_ms = -1;
    std::vector<std::string> keys;  // when asked for
    size_t key_count = 0;
  };
  std::optional<LeaseInfo> GetLease(uint64_t id, bool keys) const;
  std::vector<uint64_t> LeaseIds() const;
  // Set before the first Apply(); applying thread.
  void SetLeaseListener(LeaseListener listener);

  // The watch history. How many revisions it keeps (default
  // kMinWatchHistory; at least 1): set before the first Apply().
  void SetHistoryWindow(size_t revisions);
  void SetChangeListener(ChangeListener listener);
  struct History {
    // Consecutive revisions from the one asked for (none if it is
    // compacted, or after `revision`).
    std::vector<Change> changes;
    uint64_t compacted = 0;  // the history starts after this revision
    uint64_t revision = 0;   // the current revision
  };
  // At most `max` changes from revision `from` on. Any thread; cheap (it
  // copies pointers).
  History ChangesFrom(uint64_t from, size_t max) const;
  uint64_t compacted() const;

  // Whether operation `op` was applied (its result is remembered), or
  // nullopt when the store can no longer tell: the op is older than its
  // client's window, or the client was forgotten. A client whose write's
  // outcome is unknown can ask this at a linearizable read point.
  std::optional<bool> WasApplied(const client::OpId& op) const;

  // Shard groups (coord/shard_group.h): the revocations acknowledged and
  // still draining, for the leader's DrainClock. Any thread.
  std::vector<DrainingShard> DrainingShards() const;
  // A processor's id in a shard group: its session's lease, in hex.
  static std::string ShardProcessorId(uint64_t lease);

 private:
  struct Session {
    uint64_t last_used = 0;  // log index of its last operation
    uint64_t newest = 0;     // the highest seq applied
    // By seq. Holds every op within the window (seq + kSessionWindow >
    // newest); older ones linger until the map doubles, but are never
    // looked up.
    absl::flat_hash_map<uint64_t, client::KvResult> results;

    bool TooOld(uint64_t seq) const { return seq + kSessionWindow <= newest; }
  };

  struct Lease {
    int64_t ttl_ms = 0;
    uint64_t client = 0;
    int64_t checkpoint_ms = -1;
    absl::btree_set<std::string> keys;
  };

  using Shard = absl::flat_hash_map<std::string, Value>;
  struct Frozen;  // a pinned state, serialized off the loop

  static constexpr int kShardBits = 10;
  static constexpr size_t kShards = size_t{1} << kShardBits;
  static_assert(sizeof(size_t) == 8);
  // The hash's top bits: the shard's own table indexes by the low ones.
  static size_t ShardOf(absl::string_view key) {
    return absl::Hash<absl::string_view>{}(key) >> (64 - kShardBits);
  }

  static client::KvResult Result(absl::StatusCode code, uint64_t revision,
                                 std::string message = "");
  std::string ApplyLocked(uint64_t index, const client::KvCommand& cmd)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  client::KvResult Execute(uint64_t index, const client::KvCommand& cmd)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  client::KvResult ExecuteLease(uint64_t index, const client::KvCommand& cmd)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  client::KvResult ExecuteShard(const client::ShardRequest& request)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Writes the keys of group `name` that changed (the shards in `changed`,
  // and its members against `before`) at revision_ + 1, each once; true
  // if it wrote any. The caller takes the new revision.
  bool WriteShardKeys(const std::string& name, const ShardGroup& group,
                      const std::map<std::string, ShardGroup::Member>& before,
                      std::vector<uint32_t> changed)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The leases' holders are out of every group they were in (ended
  // sessions: their shards move at once); true if a key changed. The
  // caller takes the new revision.
  bool EndShardSessions(const std::vector<uint64_t>& leases)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // NOT_FOUND or RESOURCE_EXHAUSTED if `puts` (those that name a lease)
  // cannot all be attached; OK otherwise.
  absl::Status CheckLeasedPuts(
      const std::vector<const client::PutRequest*>& puts,
      const client::CommandLimits& limits) const
      ABSL_SHARED_LOCKS_REQUIRED(mu_);
  absl::Status CheckLeasedPut(absl::string_view key, uint64_t lease,
                              size_t adding,
                              const client::CommandLimits& limits) const
      ABSL_SHARED_LOCKS_REQUIRED(mu_);
  // Ends a lease and deletes its keys; true if it had any. The caller
  // takes the new revision (and calls EndShardSessions).
  bool EndLease(uint64_t id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The branch each transaction takes (`txn`, then its nested ones along
  // the branches taken, in order), decided against the current state.
  void DecidePath(const client::TxnRequest& txn, std::vector<bool>* path) const
      ABSL_SHARED_LOCKS_REQUIRED(mu_);
  // The puts `txn` runs along `path`, from path[*pos] on.
  static void CollectPuts(const client::TxnRequest& txn,
                          const std::vector<bool>& path, size_t* pos,
                          std::vector<const client::PutRequest*>* puts);
  // Runs a transaction that passed CheckTxn against the kMax ceilings,
  // along `path` (DecidePath).
  client::TxnResponse ExecuteTxn(const client::TxnRequest& txn,
                                 const std::vector<bool>& path)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // One (nested) transaction of ExecuteTxn: its branch is path[*pos].
  // `changed`: whether a write ran before, and after.
  client::TxnResponse RunTxn(const client::TxnRequest& txn,
                             const std::vector<bool>& path, size_t* pos,
                             bool* changed) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // RunTxn's reading half, for transactions without writes.
  client::TxnResponse ReadBranch(const client::TxnRequest& txn,
                                 const std::vector<bool>& path,
                                 size_t* pos) const
      ABSL_SHARED_LOCKS_REQUIRED(mu_);
  bool Holds(const client::Compare& compare) const
      ABSL_SHARED_LOCKS_REQUIRED(mu_);
  bool AllHold(const client::TxnRequest& txn) const
      ABSL_SHARED_LOCKS_REQUIRED(mu_);
  const Value* Find(absl::string_view key) const
      ABSL_SHARED_LOCKS_REQUIRED(mu_);
  // Calls fn(key, value) for each key in [key, range_end) in key order
  // (RangeRequest's rules) until it returns false. `key` is the index's
  // own string: it lives as long as the key does.
  template <typename Fn>
  void ForEachIn(absl::string_view key, absl::string_view range_end,
                 Fn fn) const ABSL_SHARED_LOCKS_REQUIRED(mu_);
  // The answer says it saw `revision` (inside a transaction: the one its
  // writes before the range make). The current state only.
  client::RangeResponse RangeLocked(const client::RangeRequest& request,
                                    uint64_t revision) const
      ABSL_SHARED_LOCKS_REQUIRED(mu_);
  // The state at a past revision the history holds.
  client::RangeResponse RangeInHistory(const client::RangeRequest& request)
      const ABSL_SHARED_LOCKS_REQUIRED(mu_);
  // Records an event of the revision being applied.
  client::WatchEvent* AddEvent(client::WatchEvent::Type type,
                               absl::string_view key, uint64_t revision)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The events recorded become revision_'s change; the oldest ones beyond
  // the window go.
  void CommitChange() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void TrimHistory() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void PutLocked(absl::string_view key, absl::string_view value,
                 uint64_t revision, uint64_t lease)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  uint64_t DeleteLocked(absl::string_view key, absl::string_view range_end)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Records the delete of `key` (at the next revision); its value moves
  // into the event.
  void RecordDelete(absl::string_view key, Value& v)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Remember(uint64_t index, const client::OpId& op,
                const client::KvResult& result)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const Unsafe unsafe_;
  mutable Mutex mu_;
  uint64_t revision_ ABSL_GUARDED_BY(mu_) = 0;
  // Hashed for speed; a snapshot sorts, so its bytes are the same on every
  // member. kShards of them, by ShardOf(key).
  std::vector<Cow<Shard>> shards_ ABSL_GUARDED_BY(mu_);
  // Every key, in order, for range reads. Live state only: a snapshot
  // sorts the shards it pinned, and Restore rebuilds it.
  absl::btree_set<std::string> index_ ABSL_GUARDED_BY(mu_);
  std::map<uint64_t, Cow<Session>> sessions_ ABSL_GUARDED_BY(mu_);
  // By id. A snapshot copies ids, TTLs and checkpoints (not the keys: the
  // entries name their lease).
  std::map<uint64_t, Lease> leases_ ABSL_GUARDED_BY(mu_);
  // Pinned by snapshots, as the key shards are.
  std::map<std::string, Cow<ShardGroup>> groups_ ABSL_GUARDED_BY(mu_);
  // What the command being applied did to leases (handed to the listener
  // after Apply, outside the lock).
  std::vector<LeaseEvent> lease_events_ ABSL_GUARDED_BY(mu_);
  LeaseListener lease_listener_;  // applying thread only
  // The watch history: the changes of revisions compacted_ + 1 ..
  // revision_, in order.
  size_t history_window_ = kMinWatchHistory;
  std::deque<Change> history_ ABSL_GUARDED_BY(mu_);
  uint64_t compacted_ ABSL_GUARDED_BY(mu_) = 0;
  // The last Compact's revision (0: none): reads before it are refused.
  // Replicated, unlike compacted_, which also follows this member's
  // history window.
  uint64_t compact_floor_ ABSL_GUARDED_BY(mu_) = 0;
  client::KvChange pending_ ABSL_GUARDED_BY(mu_);  // the command's events
  ChangeListener change_listener_;                 // applying thread only
};

}  // namespace quorate::coord

#endif  // QUORATE_COORD_KV_H_
