// node/node.h: one member as a running process: the consensus core driven
// by an Asio loop, persisted by the storage writer, connected to its peers
// by the transport.
//
//   NodeOptions o;  o.name = "n1";  o.data_dir = "/var/lib/quorate/n1"; ...
//   QUORATE_ASSIGN_OR_RETURN(auto node, Node::Start(std::move(o)));
//   node->Propose("command", absl::Seconds(2), [](absl::StatusOr<Applied> a) {
//     ... applied at index a->index, or failed ...
//   });
//   node->Stop(/*graceful=*/true);   // a leader hands over first
//
// THREADS. One loop thread owns the driver (node/driver.h: the Ready loop,
// shared with the simulator) and through it the core. It never waits on
// the disk or the network:
//  - timers feed it the monotonic time (the core's next deadline);
//  - message batches from the transport's threads arrive by posting, and
//    at most `max_inbox` of them and `max_inbox_bytes` wait (more are
//    dropped, as a network would; Raft retries);
//  - each Ready's writes go to the GroupCommitWriter's thread (q-storage);
//    once they are durable that thread sends what waited for them, and
//    posts the rest of the Ready back to the loop (the order is the
//    driver's, documented in driver.h);
//  - a snapshot is captured on the loop (StateMachine::Snapshot, cheap),
//    serialized on a thread of its own (q-snapshot), then saved and the
//    log compacted on the writer thread.
// The state machine's methods and every callback run on the loop thread;
// the function a snapshot returns runs on q-snapshot.
#ifndef QUORATE_NODE_NODE_H_
#define QUORATE_NODE_NODE_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "node/driver.h"
#include "raft/raft.h"
#include "storage/file.h"
#include "transport/cq.h"
#include "transport/transport.h"

namespace quorate::node {

// The core's id for a member name: a 64-bit FNV-1a hash, never 0. Names
// are what operators see; ids are what the log stores.
uint64_t MemberId(absl::string_view name);

struct MemberSpec {
  std::string name;
  std::string zone;
  std::string address;  // HOST:PORT of its gRPC listener
  bool voter = true;    // false: a learner
};

struct NodeOptions {
  std::string name;
  std::string zone;
  std::string cluster_id;
  std::string listen;  // HOST:PORT
  // The initial voters and learners, this member among them. Used only
  // when the data directory is new; afterwards the directory remembers
  // them.
  std::vector<MemberSpec> initial_members;
  // A member added at runtime (quoratectl member add, then quorate-node
  // --join): the configuration and state come from the leader's snapshot.
  // These are the cluster's members as a member list named them: peers of
  // this member as long as it is not in the configuration it holds (before
  // the snapshot arrives, and while it catches up from one older than its
  // addition, a restart included).
  std::vector<MemberSpec> join_peers;
  // A new cluster seeded from a backup (quorate-node --restore): the state
  // machine's state from a snapshot file, for the snapshot at index 0
  // that also lists `initial_members`. Every initial member must be given
  // the same. Used only when the data directory is new.
  std::shared_ptr<const std::string> restore_state;
  // Disaster recovery (quorate-node --force_new_cluster): this member
  // becomes the only voter of the cluster its data directory holds
  // (node/startup.h, ForceNewCluster).
  bool force_new_cluster = false;
  std::string data_dir;
  // This member's release, sent to its peers in Hello.
  std::string version;
  absl::Duration heartbeat_interval = absl::Milliseconds(50);
  absl::Duration election_timeout = absl::Milliseconds(500);
  // ρ, the clock-drift bound of the partition guard. The node does not use
  // it, but peers must agree on it and on the election timeout: both go
  // into the transport's Hello, and a peer with other values is refused.
  double max_clock_drift = 0.01;
  // A leader tells the followers a new commit index with its next append
  // of entries, or after this long (raft::Config::commit_notify_delay_ns;
  // at most half a heartbeat interval). Zero: at once, in a message of its
  // own. Followers apply up to this much later; nothing else waits for it.
  absl::Duration commit_notify_delay = absl::Milliseconds(1);
  transport::TlsFiles tls;
  // Chaos tests only: transport::Transport::Options::faults_file.
  std::string faults_file;
  // More gRPC services on the listen address and the transport's
  // completion queue (the client API; transport/cq.h); not owned.
  std::vector<transport::AsyncService*> services;
  // A snapshot is taken (and the log compacted) every this many applied
  // entries.
  uint64_t snapshot_every = 10000;
  StateMachine* state_machine = nullptr;  // optional; not owned
  // Tests: the file system under the data directory, and segment size.
  storage::FileSystem* fs = nullptr;
  uint64_t segment_bytes = 64 << 20;
  // Message batches waiting for the loop, and their bytes.
  size_t max_inbox = 16384;
  size_t max_inbox_bytes = 256 << 20;
  // Proposals and reads waiting (posted to the loop, or for their entry or
  // read point): RESOURCE_EXHAUSTED beyond, each bound on its own.
  size_t max_proposals = 65536;
  // Notable events, one line each. Any thread.
  std::function<void(const std::string&)> log;
  // The role or term changed. Loop thread.
  std::function<void(raft::Role role, uint64_t term)> on_role;
  // Our stream to a peer opened (again), so messages to it can arrive.
  // A transport thread; must not block.
  std::function<void(uint64_t peer)> on_peer_connected;
  // The member stopped working by itself (its storage failed). Loop thread.
  std::function<void(const absl::Status&)> on_fatal;
};

struct PeerStatus {
  std::string name;
  std::string zone;
  std::string address;
  bool voter = false;
  bool reachable = false;
  int64_t last_contact_ms = -1;  // since a message from it; -1: never
  uint64_t messages_sent = 0;
  uint64_t messages_received = 0;
  uint64_t messages_dropped = 0;  // not sent: queue full or link down
  uint64_t messages_refused = 0;  // received, malformed or refused
  std::string version;            // from its Hello; empty: not heard yet
  uint32_t protocol = 0;          // newest peer protocol; 0: not heard yet
};

struct NodeStatus {
  std::string name;
  std::string zone;
  std::string cluster_id;
  std::string listen_address;
  raft::Role role = raft::Role::kFollower;
  uint64_t term = 0;
  std::string leader;  // name; empty when no leader is known
  std::string leader_address;
  uint64_t commit_index = 0;
  uint64_t applied_index = 0;
  uint64_t last_log_index = 0;
  uint64_t snapshot_index = 0;
  // Shedding by time (driver.h, Propose): proposals waiting (before the
  // log and in it), those refused or answered unproposed since the start,
  // and the moving average of an entry's time from the log to applied.
  uint64_t proposals_waiting = 0;
  uint64_t proposals_shed = 0;
  int64_t proposal_latency_us = 0;
  std::vector<PeerStatus> peers;
  absl::Status error;  // why the member stopped working, if it did
  bool voter = false;  // in the current configuration, as a voter
  // False while a member added at runtime waits for its first snapshot,
  // and after this member was removed from the configuration.
  bool in_configuration = false;
  std::string version;
};

// One member of the configuration, as ListMembers() reports it.
struct MemberView {
  std::string name;
  std::string zone;
  std::string address;
  std::string version;  // empty: not heard from (or this member's own)
  bool voter = false;
  // Answered by the leader only: how far the member's log matches the
  // leader's, and whether it is close enough to be promoted.
  uint64_t match_index = 0;
  bool caught_up = false;
};

struct MembersView {
  std::string leader;  // name; empty when no leader is known
  uint64_t commit_index = 0;
  std::vector<MemberView> members;  // by name
};

// A runtime membership change (ChangeMembership).
struct MembershipChange {
  enum class Kind { kAddVoter, kAddLearner, kRemove, kPromote };
  Kind kind = Kind::kAddLearner;
  std::string name;
  std::string zone;     // adds only
  std::string address;  // adds only
};

// A learner may be promoted once the leader replicates to it entry by
// entry, its log matches the leader's to within this many entries of the
// commit index, and it answered within T.
inline constexpr uint64_t kMaxPromoteLag = 1000;

// A snapshot file (storage/storage.h, ReadSnapshotFile), for a backup.
struct SnapshotFileBytes {
  std::string header;
  std::shared_ptr<const std::string> data;
  uint64_t index = 0;
};

class Node {
 public:
  // Validates the options, opens (and recovers) the data directory, binds
  // the listener and starts the loop. DATA_LOSS: the directory is corrupt
  // (the message names the file and offset); nothing was changed.
  static absl::StatusOr<std::unique_ptr<Node>> Start(NodeOptions options);
  ~Node();  // Stop(false)
  Node(const Node&) = delete;
  Node& operator=(const Node&) = delete;

  // Proposes `command`. `done` runs on the loop thread with the index it
  // was applied at and the state machine's result; or UNAVAILABLE (refused
  // before anything was proposed: not the leader, or stopped),
  // RESOURCE_EXHAUSTED (too many waiting), ABORTED (leadership changed and
  // another entry took its place: not applied), DEADLINE_EXCEEDED or
  // UNKNOWN (outcome unknown: it may still be applied).
  void Propose(std::string command, absl::Duration timeout,
               std::function<void(absl::StatusOr<Applied>)> done);

  // Asks the leader to confirm a quorum round that starts after it
  // receives the request (the partition guard's renewal; docs/design.md).
  // `done` runs on the loop thread as soon as the confirmation arrives,
  // without waiting for the state machine; or with UNAVAILABLE (no leader,
  // or leadership changed), RESOURCE_EXHAUSTED or DEADLINE_EXCEEDED.
  void Confirm(absl::Duration timeout,
               std::function<void(absl::StatusOr<Confirmation>)> done);

  // A linearizable read point: `done` runs on the loop thread once this
  // member's state machine has applied everything committed before the
  // call (the index is passed), so reading the state machine from `done`
  // sees every write acknowledged before Read() was called. Works on any
  // member (a follower asks its leader). UNAVAILABLE without a leader,
  // DEADLINE_EXCEEDED after `timeout`.
  void Read(absl::Duration timeout,
            std::function<void(absl::StatusOr<uint64_t>)> done);

  NodeStatus GetStatus() const;

  // The configuration as this member knows it. `done` runs on the loop
  // thread.
  void ListMembers(std::function<void(absl::StatusOr<MembersView>)> done);

  // Changes the membership: leader only, one change at a time. `done`
  // runs on the loop thread with the change's log index once it is
  // committed. Refused, with nothing changed:
  //  - UNAVAILABLE: not the leader (retry at the leader), or removing this
  //    member, the leader: it hands leadership to the most up-to-date
  //    reachable voter first and answers once another member leads, so
  //    that the caller retries there;
  //  - ALREADY_EXISTS: adding a member that exists, or an address in use;
  //  - NOT_FOUND: removing or promoting a member that does not exist;
  //  - FAILED_PRECONDITION: a change in flight (one at a time), removing
  //    the last voter, promoting a voter or a learner not caught up
  //    (kMaxPromoteLag), or a change after which the voters this leader
  //    heard from within T could not form a quorum of the new
  //    configuration;
  //  - INVALID_ARGUMENT: a bad name or address.
  void ChangeMembership(MembershipChange change, absl::Duration timeout,
                        std::function<void(absl::StatusOr<uint64_t>)> done);

  // Leader only: hands leadership to voter `to` (empty: the most
  // up-to-date reachable voter) and answers with the new leader's name
  // once it leads; DEADLINE_EXCEEDED if none does by then.
  void TransferLeadership(
      std::string to, absl::Duration timeout,
      std::function<void(absl::StatusOr<std::string>)> done);

  // A consistent snapshot of the state machine, with the configuration as
  // of its index, as a snapshot file's bytes: after a read point from the
  // leader is applied (every write acknowledged before the call is in it;
  // UNAVAILABLE or DEADLINE_EXCEEDED without a leader), captured on the
  // loop, serialized on a thread of its own; `done` runs there.
  void SaveSnapshot(
      std::function<void(absl::StatusOr<SnapshotFileBytes>)> done);

  // Stops the member. `graceful`: a leader first hands leadership to an
  // up-to-date reachable peer and waits, at most two election timeouts,
  // for another member to lead. Then every waiting caller is answered (at
  // most 5 s more for the loop to do so), and the threads are joined.
  // Idempotent.
  void Stop(bool graceful);

  std::string listen_address() const;

 private:
  class Impl;
  explicit Node(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace quorate::node

#endif  // QUORATE_NODE_NODE_H_
