// quorate/member.h: run one member of a Quorate cluster inside your
// process.
//
//   quorate::MemberOptions o;
//   o.id = "n1";  o.zone = "az-a";  o.cluster_id = "mail";
//   o.listen_address = "10.0.0.1:7000";
//   o.admin_address = "127.0.0.1:7100";          // /healthz and /status
//   o.data_dir = "/var/lib/myservice/quorate";
//   o.peers = {{"n1", "az-a", "10.0.0.1:7000"},
//              {"n2", "az-b", "10.0.0.2:7000"},
//              {"n3", "az-c", "10.0.0.3:7000"}};
//   absl::StatusOr<std::unique_ptr<quorate::Member>> m =
//       quorate::Member::Start(std::move(o));
//   if (!m.ok()) { ... m.status().message() says what is wrong ... }
//   ... (*m)->GetStatus().role ...
//   (*m)->Stop();   // a leader hands over to an up-to-date peer first
//
// Every member of a cluster lists the same `peers` when it first starts;
// afterwards its data directory remembers them, and `peers` is ignored.
// All methods are thread-safe and never block without a deadline.
#ifndef QUORATE_MEMBER_H_
#define QUORATE_MEMBER_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "quorate/tls.h"

namespace quorate {

enum class Role { kFollower, kPreCandidate, kCandidate, kLeader, kLearner };
// "follower", "pre_candidate", "candidate", "leader", "learner".
absl::string_view RoleName(Role role);

// Increases across the cluster with every new leader: the leader's term,
// and the index of its first entry in that term. Give it to the resources
// you act on; they refuse work carrying a token lower than one they have
// already seen, which stops a member that paused beyond every bound.
struct FencingToken {
  uint64_t term = 0;
  uint64_t index = 0;
};
// Ordered by term, then index. (Written out: the public headers are C++17.)
inline bool operator==(const FencingToken& a, const FencingToken& b) {
  return a.term == b.term && a.index == b.index;
}
inline bool operator!=(const FencingToken& a, const FencingToken& b) {
  return !(a == b);
}
inline bool operator<(const FencingToken& a, const FencingToken& b) {
  return a.term != b.term ? a.term < b.term : a.index < b.index;
}
inline bool operator>(const FencingToken& a, const FencingToken& b) {
  return b < a;
}
inline bool operator<=(const FencingToken& a, const FencingToken& b) {
  return !(b < a);
}
inline bool operator>=(const FencingToken& a, const FencingToken& b) {
  return !(a < b);
}

// May this member act now? A handle to its active window; copy it freely.
//
//   quorate::Permit p = member->GetPermit();
//   quorate::FencingToken token;
//   if (p.Valid(&token)) { ... act, presenting `token` to the resource ... }
//
// Valid() compares the window's deadline with the monotonic clock at the
// moment of the call: no timer has to clear a flag, so a member whose
// process stalled cannot act on a stale answer. Safe from any thread; a
// few atomic loads and one clock read. The window already ends
// `window_margin` early: finish each action within that margin of the
// check, or check again.
class Permit {
 public:
  bool Valid() const;
  bool Valid(FencingToken* token) const;

 private:
  friend class MemberAccess;
  std::shared_ptr<const void> cell_;
};

struct PeerSpec {
  std::string id;       // [a-z0-9-]{1,32}
  std::string zone;     // availability zone label
  std::string address;  // HOST:PORT of that member's listen_address
};

struct MemberOptions {
  std::string id;              // [a-z0-9-]{1,32}, unique in the cluster
  std::string zone;            // [a-z0-9-]{1,32}
  std::string cluster_id;      // members of other clusters are refused
  std::string listen_address;  // HOST:PORT for peers and clients
  // HOST:PORT for the admin HTTP server (/healthz, /status); empty: none.
  std::string admin_address;
  // The initial voters; only for a new data_dir. This member is one of
  // them or one of the learners.
  std::vector<PeerSpec> peers;
  // The initial learners (non-voting members); only for a new data_dir.
  // A learner replicates the log, serves reads and holds active windows
  // like a voter, but never votes, campaigns or counts towards a quorum.
  // Every member must be given the same peers and learners.
  std::vector<PeerSpec> learners;
  // Instead of peers: join a running cluster as a member already added
  // with `quoratectl member add` (docs/operations.md, "Changing the
  // membership"). Client addresses (HOST:PORT) of any of its members: the
  // member list is read from them, this member must be on it with this
  // listen address and cluster id, and the state comes from the leader's
  // snapshot. Used only when data_dir is new.
  std::vector<std::string> join;
  // Seed a new cluster (peers and learners as usual) from a file written
  // by `quoratectl snapshot save`; every initial member is started with
  // the same file. The file's checksums must hold. The cluster id must
  // differ from the one the file was saved in, unless
  // restore_keeps_cluster_id is set: members of the old cluster are then
  // not refused. Used only when data_dir is new.
  std::string restore_file;
  bool restore_keeps_cluster_id = false;
  // Disaster recovery: start a one-member cluster from this member's
  // data_dir, the other members removed from its configuration, its whole
  // log committed. What only the others held is lost (docs/operations.md,
  // "Disaster recovery").
  bool force_new_cluster = false;
  std::string data_dir;
  absl::Duration heartbeat_interval = absl::Milliseconds(50);
  // T, the minimum election timeout; the actual one is in [T, 2T).
  absl::Duration election_timeout = absl::Milliseconds(500);
  // ρ: the bound on clock-rate drift between members the safety argument
  // assumes (0.01 = 1 %).
  double max_clock_drift = 0.01;
  TlsOptions tls;  // mutual TLS between members (quorate/tls.h)
  // Size of each write-ahead log segment (preallocated).
  uint64_t wal_segment_bytes = 64 << 20;
  // A snapshot is taken, and the log compacted, every this many entries.
  uint64_t snapshot_every_entries = 10000;
  // Transactions this member accepts from clients: at most this many
  // compares and operations (1 to 1024), and this many bytes serialized
  // (1 KiB to 2 MiB). Beyond them a call is refused with INVALID_ARGUMENT
  // naming the limit, before anything is proposed.
  size_t max_txn_ops = 128;
  size_t max_txn_bytes = size_t{3} << 19;  // 1.5 MiB
  // Leases (sessions). A lease's TTL is at least twice the election
  // timeout (a lease must outlive an election) and at most max_lease_ttl
  // (up to 30 days). Each client holds at most max_leases_per_client
  // leases (up to 2^20), each lease at most max_keys_per_lease keys.
  // Beyond them: INVALID_ARGUMENT or RESOURCE_EXHAUSTED naming the limit.
  absl::Duration max_lease_ttl = absl::Hours(24);
  uint32_t max_leases_per_client = 16384;
  uint32_t max_keys_per_lease = 10000;
  // A silent lease's remaining time is recorded in the log this often, so
  // that elections cannot keep a dead holder's lease alive (docs/design.md,
  // the expiry bound).
  absl::Duration lease_checkpoint_interval = absl::Seconds(1);
  // Watches (docs/operations.md). The history keeps the events of the last
  // watch_history revisions (at least 10,000): watches can start, and
  // reads can look back, that far. A watcher that has caught up and then
  // falls behind by more than watch_buffer_bytes of queued events is cut
  // off with RESOURCE_EXHAUSTED (the client resumes it). A stream holds at
  // most max_watchers_per_stream watchers. Watchers that ask get a
  // progress notification after watch_progress_interval without events.
  size_t watch_history = 10000;
  size_t watch_buffer_bytes = size_t{4} << 20;
  size_t max_watchers_per_stream = 10000;
  absl::Duration watch_progress_interval = absl::Seconds(1);
  // Serve etcd's v3 gRPC API (KV, Watch, Lease, Cluster, Maintenance,
  // Election, Lock) on listen_address beside Quorate's own, so that
  // etcdctl and etcd's client libraries work unchanged
  // (docs/etcd-compatibility.md).
  bool etcd_api = true;
  // If set, one JSON object per line for every role change (see
  // docs/contracts.md), appended and flushed as it happens.
  std::string event_log_path;
  // Notable events, one line each. Default: standard error.
  std::function<void(absl::string_view line)> log;
  // Chaos tests only (quorate-node --faults_file): a file the transport
  // rereads every 100 ms, with `delay_ms=N` (each outgoing peer frame waits
  // N ms, ±50 %) and `duplicate_percent=P` (P % of them are sent twice).
  // Empty: no faults. docs/operations.md has the details.
  std::string faults_file;
  // The member stopped working by itself (its disk failed). Runs once, on
  // an internal thread; do not call Stop() from it.
  std::function<void(const absl::Status&)> on_fatal;
  // This member's role or term changed. Runs on the member's loop thread:
  // keep it short, and do not call Stop() from it.
  std::function<void(Role role, uint64_t term)> on_role_change;

  // The partition guard (docs/design.md, the safety argument). A member
  // is active inside windows it renews through the leader every heartbeat;
  // cut off from a quorum, its window lapses and it pauses before any other
  // member can lead. The mode changes are told, in order, on a thread of
  // the library's (never under a lock; do not block it for long):
  std::function<void(const std::string& reason)> on_pause;
  std::function<void(FencingToken token)> on_resume;
  // After a pause, resume under the same leader only once windows were
  // held without a gap for this long (a flapping link does not flap the
  // application); under a new leader, at once. A pause is never delayed.
  absl::Duration resume_dwell = absl::Milliseconds(500);
  // Every window ends this much early: the longest an action may take
  // after Permit::Valid() said yes.
  absl::Duration window_margin = absl::Milliseconds(50);
};

// Checks options without starting anything. The message says in plain
// English what is wrong and how to fix it.
absl::Status ValidateMemberOptions(const MemberOptions& options);

struct PeerStatus {
  std::string id;
  std::string zone;
  std::string address;
  bool voter = false;
  bool reachable = false;        // this member's stream to it is up
  int64_t last_contact_ms = -1;  // since a message from it; -1: never
  std::string version;           // its release; empty: not heard from yet
};

struct MemberStatus {
  std::string id;
  std::string zone;
  std::string cluster_id;
  std::string listen_address;
  std::string admin_address;
  Role role = Role::kFollower;
  uint64_t term = 0;
  std::string leader_id;  // empty when no leader is known
  uint64_t commit_index = 0;
  uint64_t applied_index = 0;
  uint64_t last_log_index = 0;
  std::vector<PeerStatus> peers;
  absl::Status error;  // why the member stopped working, if it did
  // The partition guard.
  bool active = false;
  std::string pause_reason;   // while paused
  int64_t active_for_ms = 0;  // what is left of the window; 0 when paused
  FencingToken token;         // of the latest window
  uint64_t pauses = 0;        // since start
};

class Member {
 public:
  // Validates the options, recovers the data directory, binds the
  // addresses and starts. Errors: INVALID_ARGUMENT (options),
  // DATA_LOSS (the data directory is corrupt: the message names the file
  // and offset; nothing was changed), FAILED_PRECONDITION (the directory
  // is in use by another process, or belongs to another cluster),
  // UNAVAILABLE (an address cannot be bound).
  static absl::StatusOr<std::unique_ptr<Member>> Start(MemberOptions options);

  virtual ~Member() = default;  // Stop()s first

  // A leader hands leadership to an up-to-date peer (waiting at most two
  // election timeouts), then the member stops. Idempotent.
  virtual void Stop() = 0;

  virtual MemberStatus GetStatus() const = 0;
  // This member's permit to act (see Permit). After Stop(), never valid.
  virtual Permit GetPermit() const = 0;
};

}  // namespace quorate

#endif  // QUORATE_MEMBER_H_
