// quorate/client.h: read and write a Quorate cluster's key-value store.
//
//   quorate::ClientOptions o;
//   o.endpoints = {"10.0.0.1:7000", "10.0.0.2:7000", "10.0.0.3:7000"};
//   absl::StatusOr<std::unique_ptr<quorate::Client>> c =
//       quorate::Client::Create(o);
//   absl::StatusOr<uint64_t> rev = (*c)->Put("config/owner", "n2");
//   absl::StatusOr<quorate::KeyValue> kv = (*c)->Get("config/owner");
//   // Write only if nobody changed it since we read it:
//   rev = (*c)->CompareAndSet("config/owner", kv->revision, "n3");
//   // Every key under "config/", in key order:
//   absl::StatusOr<quorate::RangeResult> r =
//       (*c)->Range("config/", {.range_end = quorate::PrefixEnd("config/")});
//   // Compare, then act, atomically:
//   quorate::Transaction t;
//   t.compare = {quorate::Compare::ModRevision("config/owner",
//                    quorate::Compare::Op::kEqual, 7)};
//   t.success = {quorate::TxnOp::Put("config/owner", "n3"),
//                quorate::TxnOp::Delete("config/candidates/n3")};
//   t.failure = {quorate::TxnOp::Range("config/owner")};
//   absl::StatusOr<quorate::TxnResult> done = (*c)->Txn(t);
//
// Any endpoint will do: the client follows the leader (members name it
// when they are not). Every call has a deadline (`timeout`).
//
// Errors:
//  - NOT_FOUND: Get/Delete of a key that does not exist.
//  - ABORTED: a compare-and-set whose expected revision did not match (the
//    message gives the current one): read again and start over.
//  - INVALID_ARGUMENT: an empty key, or a key or value over the limits
//    (4 KiB, 1 MiB); a range whose end is not after its start; a
//    transaction over the members' limits (--max_txn_ops, default 128
//    compares and operations; --max_txn_bytes, default 1.5 MiB) or that
//    writes one key twice in a branch. Nothing was applied.
//  - UNKNOWN: a write whose outcome is unknown. No leader confirmed it
//    before the deadline, and it may have been applied. Each write carries
//    an operation id and the cluster applies an id once, so calling again
//    is safe only through the same call's retries; a new call is a new
//    write. No other error is UNKNOWN.
//  - UNAVAILABLE: no leader answered before the deadline, and nothing was
//    applied (a read, or a write every member refused).
//  - RESOURCE_EXHAUSTED: more than `max_in_flight` calls at once.
//
// Thread-safe: share one Client between threads.
#ifndef QUORATE_CLIENT_H_
#define QUORATE_CLIENT_H_

#include <cstdint>
#include <functional>
#include <future>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "quorate/tls.h"

namespace quorate {

struct ClientOptions {
  std::vector<std::string> endpoints;         // HOST:PORT of any members
  absl::Duration timeout = absl::Seconds(2);  // per call, retries included
  size_t max_in_flight = 1024;
  // Mutual TLS, as the members' (quorate/tls.h; all empty: plaintext).
  TlsOptions tls;
};

struct KeyValue {
  std::string value;
  uint64_t revision = 0;       // the key's last write
  uint64_t read_revision = 0;  // the cluster revision the read saw
};

// A key as the store holds it (etcd's data model). Revisions are cluster
// revisions: every transaction that changes something creates one.
struct KeyRecord {
  std::string key;
  std::string value;             // empty with RangeOptions::keys_only
  uint64_t create_revision = 0;  // when it was created
  uint64_t mod_revision = 0;     // its last change
  uint64_t version = 0;          // changes since it was created: 1, 2, ...
  uint64_t lease = 0;            // the lease it is attached to; 0: none
};

// range_end for every key from the start key on.
inline const std::string kRangeToTheEnd(1, '\0');
// range_end for every key that starts with `prefix`.
std::string PrefixEnd(absl::string_view prefix);

struct RangeOptions {
  // Read the keys as they were at this revision (0: now). OUT_OF_RANGE if
  // the members' watch history no longer reaches it. Not in a Transaction.
  uint64_t revision = 0;
  // The keys in [key, range_end); empty: the key alone. PrefixEnd() and
  // kRangeToTheEnd make the common ranges.
  std::string range_end;
  uint64_t limit = 0;  // 0: no limit
  enum class SortBy { kKey, kVersion, kCreateRevision, kModRevision, kValue };
  SortBy sort_by = SortBy::kKey;
  bool descending = false;
  bool keys_only = false;   // no values
  bool count_only = false;  // no keys either: only RangeResult::count
  bool stale = false;       // as Get's: this member's state, at once
};

struct RangeResult {
  std::vector<KeyRecord> kvs;
  uint64_t count = 0;  // keys in the range, whatever the limit
  // Keys in the range beyond those returned: the limit, or an answer's
  // size (3 MiB of keys and values at most; continue after the last key).
  bool more = false;
  uint64_t revision = 0;  // the cluster revision the read saw
};

// A transaction's test of a key, or of every key in [key, range_end). A
// key that does not exist has version, revisions and lease 0, and fails
// every test of its value.
struct Compare {
  enum class Target { kValue, kVersion, kCreateRevision, kModRevision, kLease };
  enum class Op { kEqual, kNotEqual, kLess, kGreater };
  std::string key;
  std::string range_end;
  Target target = Target::kVersion;
  Op op = Op::kEqual;
  std::string value;   // with kValue
  int64_t number = 0;  // with the others

  static Compare Value(std::string key, Op op, std::string value);
  static Compare Version(std::string key, Op op, int64_t version);
  static Compare CreateRevision(std::string key, Op op, int64_t revision);
  static Compare ModRevision(std::string key, Op op, int64_t revision);
  static Compare Lease(std::string key, Op op, int64_t lease);
};

// One operation of a transaction's branch.
struct TxnOp {
  enum class Kind { kPut, kDelete, kRange };
  Kind kind = Kind::kRange;
  std::string key;
  std::string value;   // kPut
  uint64_t lease = 0;  // kPut: attach the key to this lease
  RangeOptions range;  // kRange; kDelete uses its range_end only

  static TxnOp Put(std::string key, std::string value, uint64_t lease = 0);
  static TxnOp Delete(std::string key, std::string range_end = "");
  static TxnOp Range(std::string key, RangeOptions options = {});
};

// If every compare holds, the success operations run, otherwise the
// failure ones: in order, each seeing the writes before it, atomically, at
// one revision. A branch may write a key once.
struct Transaction {
  std::vector<Compare> compare;
  std::vector<TxnOp> success;
  std::vector<TxnOp> failure;
};

struct TxnOpResult {
  uint64_t revision = 0;  // a put's
  uint64_t deleted = 0;   // a delete's: keys deleted
  RangeResult range;      // a range's
};

struct TxnResult {
  bool succeeded = false;  // whether the compares held
  // The cluster revision after it: the one it created if it changed
  // anything.
  uint64_t revision = 0;
  std::vector<TxnOpResult> results;  // one per operation of the branch run
  // The call was retried after the transaction was applied: this is its
  // outcome as first applied, without what its ranges read.
  bool replayed = false;
};

struct ClusterMember {
  std::string id;
  std::string zone;
  std::string address;
  std::string role;  // "" when the member did not answer
  uint64_t term = 0;
  std::string leader_id;
  uint64_t commit_index = 0;
  std::string mode;     // "active" or "paused" (the partition guard)
  std::string version;  // the release it runs
  bool voter = false;   // false: a learner
  absl::Status error;   // why it did not answer
  // Its links to the other members, as it sees them.
  struct Link {
    std::string id;
    std::string zone;
    bool reachable = false;        // the link is up
    int64_t last_contact_ms = -1;  // since it heard from it; -1: never
  };
  std::vector<Link> links;
};

// The cluster's configuration (Client::MemberList).
struct ConfigMember {
  std::string id;
  std::string zone;
  std::string address;
  bool voter = false;   // false: a learner
  std::string version;  // its release; empty when not known
  // As the leader sees it (zero and false when no leader answered): how
  // far its log matches the leader's, and whether it is close enough to
  // be promoted.
  uint64_t match_index = 0;
  bool caught_up = false;
};
struct Configuration {
  std::string cluster_id;
  std::string leader;         // empty when no leader is known
  bool from_leader = false;   // the leader answered (match_index is set)
  uint64_t commit_index = 0;  // the answering member's
  std::vector<ConfigMember> members;  // by id
};
enum class MemberChange { kAdd, kAddLearner, kRemove, kPromote };

// A backup written by Client::SaveSnapshot.
struct SavedSnapshot {
  uint64_t index = 0;  // the log index it was taken at
  uint64_t bytes = 0;
};

// A lease the cluster granted.
struct LeaseGrant {
  uint64_t id = 0;
  absl::Duration ttl;
};

// What the leader knows of a lease.
struct LeaseStatus {
  uint64_t id = 0;
  // Before the leader expires it, by the leader's clock. The holder's own
  // deadline (Session) is earlier.
  absl::Duration remaining;
  absl::Duration granted_ttl;
  uint64_t key_count = 0;
  std::vector<std::string> keys;  // when asked for
};

struct SessionOptions {
  // At least twice the members' election timeout, at most their
  // --max_lease_ttl.
  absl::Duration ttl = absl::Seconds(10);
  // The members' rho, and how long before the deadline that is safe to
  // count on the session stops being valid (time an action may take
  // after its check).
  double max_clock_drift = 0.01;
  absl::Duration margin = absl::Milliseconds(50);
  // Called on the session's own thread, in order, never under a lock:
  // renewals have been failing and less than half the window is left (stop
  // starting new work); renewals succeed again; the session is over (its
  // deadline passed, or the cluster says the lease is gone). Each may be
  // empty.
  std::function<void()> on_jeopardy;
  std::function<void()> on_safe;
  std::function<void()> on_expired;
  // After each renewal the leader answered OK, with what is left of the
  // session then (its own deadline, not the leader's). Same thread.
  std::function<void(absl::Duration remaining)> on_renewed;
};

// A lease this process keeps alive (docs/design.md, "Sessions"). Renewals
// go to the leader on the KeepAlive stream, a third of the window after
// the last one answered. The holder counts each renewal from when it *sent*
// it, on CLOCK_BOOTTIME (which keeps counting while the machine sleeps):
// the session is valid until s + TTL (1 - rho) / (1 + rho) - margin, and
// no leader can have ended the lease before then. A session whose renewals
// keep failing reports itself expired at that deadline, before the
// cluster can have expired it. Once over, a session stays over: start a
// new one.
//
// Thread-safe. The Client that started it must outlive it.
class Session {
 public:
  virtual ~Session() = default;  // stops renewing (the lease then expires)
  virtual uint64_t lease() const = 0;
  // Whether the session may be counted on now: its deadline, compared with
  // the clock at this call (a few atomic loads and one clock read).
  virtual bool Valid() const = 0;
  // Valid, with renewals failing for a while: finish what is in hand, start
  // nothing new.
  virtual bool InJeopardy() const = 0;
  // What is left before the deadline (zero once over).
  virtual absl::Duration Remaining() const = 0;
  // Ready once the session is over, for whatever reason.
  virtual std::shared_future<void> Done() const = 0;
  // The clock drift bound and the margin it counts with (SessionOptions).
  // Other deadlines counted for the same holder, such as a shard's drain
  // (quorate/shards.h), use them too.
  virtual double max_clock_drift() const = 0;
  virtual absl::Duration margin() const = 0;
  // Ends the session now: revokes the lease (deleting its keys).
  virtual absl::Status Close() = 0;
};

// One change the cluster applied to a watched key.
struct WatchEvent {
  enum class Type { kPut, kDelete };
  Type type = Type::kPut;
  // A put's key as written; a delete's key and revision (mod_revision).
  KeyRecord kv;
  // The key before the change, with WatchOptions::prev_kv, if it existed.
  std::optional<KeyRecord> prev;
};

struct WatchOptions {
  // The keys in [key, range_end), as RangeOptions::range_end.
  std::string range_end;
  // The first revision to report; 0: the next one. A watch can start as
  // far back as the members' watch history reaches (--watch_history,
  // 10,000 revisions at least).
  uint64_t start_revision = 0;
  bool prev_kv = false;    // fill WatchEvent::prev
  bool no_put = false;     // leave out puts,
  bool no_delete = false;  // or deletes
  // Called in order: every event from the start revision on, each once, a
  // revision's events in one call. `revision`: every event up to it has
  // been delivered. Also called without events, when the members report
  // progress. A client's watches share its watch streams (up to 1,000 on
  // one), and each stream has one thread that runs its watches' callbacks
  // one at a time: a callback that does not return holds up the others
  // on its stream. A watch that falls too far behind is cut off by the
  // member and resumed, without a gap.
  std::function<void(const std::vector<WatchEvent>& events, uint64_t revision)>
      on_events;
  // The watch is over for good, with why: OUT_OF_RANGE when its next
  // revision left the history (start again from a fresh read), OK after
  // Cancel() (then on Cancel's caller). May be empty.
  std::function<void(const absl::Status& why)> on_end;
};

// A running watch: one watch id on a stream the client shares among its
// watches. It reconnects by itself, to any member (every member serves
// watches), and resumes from the revision after the last one it
// delivered: after a member's crash, a cut-off, or a broken stream,
// nothing is missed and nothing repeated.
//
// Thread-safe. The Client that started it must outlive it.
class Watcher {
 public:
  virtual ~Watcher() = default;  // Cancel()
  // Every event up to this revision has been delivered.
  virtual uint64_t revision() const = 0;
  // How many times the watch was resumed on a new stream.
  virtual uint64_t resumes() const = 0;
  // Stops the watch; on_end gets OK unless it ended already. Waits for a
  // callback of this watch in progress, unless called from one of them.
  virtual void Cancel() = 0;
  // Ready, with why, once the watch is over.
  virtual std::shared_future<absl::Status> Done() const = 0;
};

class Client {
 public:
  static absl::StatusOr<std::unique_ptr<Client>> Create(ClientOptions options);
  virtual ~Client() = default;

  // Each returns the cluster revision its write created.
  virtual absl::StatusOr<uint64_t> Put(absl::string_view key,
                                       absl::string_view value) = 0;
  // A put that attaches the key to `lease` (0: none; a put without a lease
  // detaches it): it is deleted when the lease ends. NOT_FOUND if the
  // lease does not exist; RESOURCE_EXHAUSTED past --max_keys_per_lease.
  virtual absl::StatusOr<uint64_t> Put(absl::string_view key,
                                       absl::string_view value,
                                       uint64_t lease) = 0;
  virtual absl::StatusOr<uint64_t> Delete(absl::string_view key) = 0;
  // `expected_revision` 0: the key must not exist.
  virtual absl::StatusOr<uint64_t> CompareAndSet(absl::string_view key,
                                                 uint64_t expected_revision,
                                                 absl::string_view value) = 0;
  // Linearizable: sees every write acknowledged before the call. `stale`:
  // whatever the member answering has applied (faster; may be behind).
  virtual absl::StatusOr<KeyValue> Get(absl::string_view key,
                                       bool stale = false) = 0;
  // The keys in [key, options.range_end), by key unless sorted otherwise.
  // Linearizable unless options.stale.
  virtual absl::StatusOr<RangeResult> Range(
      absl::string_view key, const RangeOptions& options = {}) = 0;
  // Applies `txn` as one write (retried with one operation id, like Put),
  // or, when neither branch writes, reads it at a linearizable read
  // point. A compare that fails is not an error: succeeded is false.
  virtual absl::StatusOr<TxnResult> Txn(const Transaction& txn) = 0;
  // Every member the cluster lists, each asked for its own view.
  virtual absl::StatusOr<std::vector<ClusterMember>> Members() = 0;

  // Runtime membership (docs/operations.md, "Changing the membership").
  // MemberList asks the leader when one is known (any member otherwise).
  // ChangeMember is served by the leader, one change at a time; it
  // returns the change's log index once committed. Refusals change
  // nothing: ALREADY_EXISTS, NOT_FOUND, FAILED_PRECONDITION (the last
  // voter, a learner not caught up, a change in flight, or a change after
  // which the members the leader hears from could not form a quorum),
  // INVALID_ARGUMENT; the message says what to do instead. Removing the
  // leader moves leadership first (the call then completes at the new
  // leader). A call whose first attempt may have been applied is not
  // retried (a retry would be refused if it was): the configuration is
  // read instead, and if the change is in place the call succeeds with
  // index 0; otherwise UNKNOWN (it may still be applied).
  virtual absl::StatusOr<Configuration> MemberList() = 0;
  virtual absl::StatusOr<uint64_t> ChangeMember(
      MemberChange change, absl::string_view id, absl::string_view zone = "",
      absl::string_view address = "") = 0;
  // Hands leadership to voter `to` (empty: the most up-to-date one) and
  // returns the new leader once it leads.
  virtual absl::StatusOr<std::string> TransferLeadership(
      absl::string_view to = "") = 0;
  // Streams a consistent snapshot from a member into the file `path`
  // (written to PATH.tmp, synced, checked, then renamed): a backup that
  // quorate-node --restore seeds a new cluster from.
  virtual absl::StatusOr<SavedSnapshot> SaveSnapshot(
      const std::string& path) = 0;

  // Leases. Grant: `id` 0 lets the cluster choose (ALREADY_EXISTS if a
  // chosen one is in use); INVALID_ARGUMENT for a TTL outside the members'
  // limits, RESOURCE_EXHAUSTED past --max_leases_per_client. Revoke ends
  // the lease and deletes its keys (NOT_FOUND if it is gone already).
  // A granted lease must be renewed to live: StartSession does that.
  virtual absl::StatusOr<LeaseGrant> GrantLease(absl::Duration ttl,
                                                uint64_t id = 0) = 0;
  virtual absl::Status RevokeLease(uint64_t id) = 0;
  virtual absl::StatusOr<LeaseStatus> LeaseTimeToLive(uint64_t id,
                                                      bool keys = false) = 0;
  virtual absl::StatusOr<std::vector<uint64_t>> Leases() = 0;
  // Grants a lease and keeps it alive on threads of the session's own.
  virtual absl::StatusOr<std::unique_ptr<Session>> StartSession(
      SessionOptions options) = 0;
  // Keeps an existing lease alive (its TTL is the one it was granted;
  // options.ttl is not used). Not valid until its first renewal is
  // answered. NOT_FOUND if the lease is gone.
  virtual absl::StatusOr<std::unique_ptr<Session>> AdoptSession(
      uint64_t lease, SessionOptions options) = 0;

  // Watches `key` (or a range: options.range_end). Returns once a member
  // has accepted the watch: INVALID_ARGUMENT for a bad range, OUT_OF_RANGE
  // for a start revision the history no longer holds (the message names
  // the oldest it does), UNAVAILABLE if no member answered in `timeout`.
  // From a watch's callback it returns at once, before a member accepted
  // the watch (waiting there could wait on a stream whose own callback
  // waits on this one): a refusal then comes to the new watch's on_end,
  // and its Done() is ready with it; until a member accepts it, it keeps
  // trying (no timeout). Without a start revision it starts after the
  // revision the calling callback delivered, so that it misses nothing
  // written after that.
  virtual absl::StatusOr<std::unique_ptr<Watcher>> Watch(
      absl::string_view key, WatchOptions options) = 0;

  // Chubby's CheckSequencer: whether `epoch` is the current holder's for
  // fence `name` (quorate/fence.h: "GROUP/SHARD", "lock/NAME",
  // "election/NAME" or "cluster"), for a resource that cannot store an
  // epoch itself. Linearizable: OK means that at some instant during the
  // call the holder with that epoch held it. FAILED_PRECONDITION, naming
  // both epochs, if a newer holder took over or no one holds it; NOT_FOUND
  // for a shard of no group; INVALID_ARGUMENT for a name that names no
  // holder, or epoch 0.
  //
  // Time of check to time of use: the answer is about the past. The holder
  // may lose its hold the moment after (its session lapses, a newer holder
  // takes over), so a request a resource serves after an OK may still come
  // from a deposed holder, for up to the time between the check and the
  // use. Check right before each use, and only where one late request per
  // takeover is tolerable; where it is not, have the resource keep the
  // epoch itself (quorate/fence_sqlite.h, quorate/fence_postgres.h), which
  // has no such window.
  virtual absl::Status CheckFence(absl::string_view name, uint64_t epoch) = 0;
};

}  // namespace quorate

#endif  // QUORATE_CLIENT_H_
