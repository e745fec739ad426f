// An in-memory cluster of consensus cores for tests and benchmarks.
//
// Each core is driven by the shipped driver (node/driver.h), the same code
// the node runs: it persists into a per-member in-memory "disk", sends
// messages into a network queue, applies committed entries to a per-member
// list, records read states. Tests may also step and tick the cores by hand
// (raft(id)); the next ProcessReadies() hands what that produced to the
// driver. Time is a plain number that only the test moves. Nothing here
// sleeps, reads a clock or draws unseeded randomness.
//
// The invariants of raft/invariants.h are checked after every step, and
// CheckInvariants() (called by the fixtures' TearDown()) reports the first
// violation.
#ifndef QUORATE_TESTS_RAFT_CLUSTER_H_
#define QUORATE_TESTS_RAFT_CLUSTER_H_

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "node/driver.h"
#include "raft/invariants.h"
#include "raft/raft.h"
#include "raft/random.h"
#include "wire/raft.pb.h"

namespace quorate::raft::testing {

// What a member has made durable: an in-memory stand-in for storage that
// follows the Ready contract exactly.
struct Disk {
  HardState hard_state;
  SnapshotMetadata snapshot;
  std::shared_ptr<const std::string> snapshot_data;
  std::vector<Entry> entries;  // after snapshot.index

  // Makes a write's snapshot, entries and hard state durable.
  void Persist(const node::DriverWriter::Request& write);
  // Replaces the log prefix up to `md.index()` with a snapshot.
  void Compact(const SnapshotMetadata& md,
               std::shared_ptr<const std::string> data);
  // What a restarting member reads back.
  RestoredState Restore() const;
};

// A message of `type` from `from` to `to` in `term`, the rest unset.
Message Msg(MessageType type, uint64_t from, uint64_t to, uint64_t term);

class Cluster;
struct Member;

// A member's I/O for its driver: the cluster's clock and network, the
// member's in-memory disk, the invariant checkers.
class MemberIo final : public node::DriverEnv,
                       public node::DriverWriter,
                       public node::DriverObserver {
 public:
  MemberIo(Cluster* cluster, Member* member)
      : cluster_(cluster), member_(member) {}
  int64_t Now() override;
  void Send(std::vector<Message> messages) override;
  // One thread: what the driver posts runs now (only completions post, and
  // ProcessReadies runs them outside any driver call).
  void Post(absl::AnyInvocable<void()> fn) override { fn(); }
  void RunInBackground(absl::AnyInvocable<void()> fn) override { fn(); }
  // AdvanceTime() ticks every core at its deadline itself.
  void ScheduleTick(int64_t /*deadline_ns*/) override {}
  // Queued in Member::writes; ProcessReadies() makes them durable.
  void Write(Request request,
             absl::AnyInvocable<void(absl::Status)> done) override;
  void SaveSnapshot(SnapshotMetadata metadata,
                    std::shared_ptr<const std::string> data,
                    absl::AnyInvocable<void(absl::Status)> done) override;
  void OnStep(const Raft& raft) override;
  void OnApplied(const Entry& e) override;
  void OnOtherReadState(const ReadState& rs) override;
  void OnOtherFailedRead(uint64_t id) override;

 private:
  Cluster* const cluster_;
  Member* const member_;
};

struct Member {
  uint64_t id = 0;
  std::unique_ptr<Random> random;
  std::unique_ptr<MemberIo> io;
  std::unique_ptr<node::Driver> driver;  // null while crashed
  Disk disk;
  // Writes the driver submitted, not yet durable (ProcessReadies completes
  // them): each with its completion.
  std::deque<std::pair<node::DriverWriter::Request,
                       absl::AnyInvocable<void(absl::Status)>>>
      writes;
  // Applied state machine: (index, term, data) of every applied entry.
  std::vector<Entry> applied;
  std::vector<ReadState> reads;
  std::vector<uint64_t> failed_reads;
};

class Cluster {
 public:
  // Members 1..voters are voters; voters+1..voters+learners are learners.
  Cluster(int voters, int learners, uint64_t seed,
          Config base = DefaultConfig());

  static Config DefaultConfig();

  int64_t now() const { return now_ns_; }
  Raft& raft(uint64_t id);
  Member& member(uint64_t id);
  std::vector<uint64_t> ids() const;
  bool IsUp(uint64_t id) const { return member(id).driver != nullptr; }
  const Member& member(uint64_t id) const;

  // Adds a member that knows no configuration yet (it joins through a
  // configuration change and learns the rest from the leader).
  void AddBlankMember(uint64_t id);

  // Moves time forward by `ns`, ticking every member at each deadline that
  // falls in between (in time order), and processing Readies.
  void AdvanceTime(int64_t ns);

  // Moves time forward without ticking anyone: for tests that drive the
  // cores by hand.
  void SkipTime(int64_t ns) { now_ns_ += ns; }

  // Runs every member's driver until it waits on nothing: persists, queues
  // messages, applies. Returns whether any core had a Ready.
  bool ProcessReadies();
  // Delivers queued messages (and the messages they cause) until nothing
  // is left, without moving time. Returns the messages delivered, in order.
  std::vector<Message> Stabilize();
  // Delivers only the messages queued now; returns them.
  std::vector<Message> DeliverOnce();
  // Drops every queued message.
  void DropAll() { network_.clear(); }
  std::deque<Message>& network() { return network_; }

  // Links: a cut link drops every message from `from` to `to`.
  void Cut(uint64_t from, uint64_t to) { cut_.insert({from, to}); }
  void CutBoth(uint64_t a, uint64_t b) {
    Cut(a, b);
    Cut(b, a);
  }
  // Cuts every link between the two groups, both ways.
  void Partition(const std::vector<uint64_t>& a,
                 const std::vector<uint64_t>& b);
  void Isolate(uint64_t id);
  void Heal() { cut_.clear(); }
  bool IsCut(uint64_t from, uint64_t to) const {
    return cut_.count({from, to}) > 0;
  }

  // Crash loses nothing durable (every Ready is persisted before the next
  // step here); restart rebuilds the core from the member's disk.
  void Crash(uint64_t id);
  void Restart(uint64_t id);

  // Takes a snapshot of member `id` at its applied index and compacts.
  absl::Status Compact(uint64_t id);

  // The unique leader among live members in the highest term, or 0.
  uint64_t Leader() const;
  // Elects `id` (campaign + stabilize); returns whether it became leader.
  bool Elect(uint64_t id);

  // Checks the invariants above; returns a description of the first
  // violation, or "" if none.
  std::string CheckInvariants();

  // Optional filter: a message for which it returns true is lost.
  std::function<bool(const Message&)> drop_if;
  // Optional observer of every delivered message (transcripts).
  std::function<void(const Message&)> on_deliver;

 private:
  friend class MemberIo;
  void Track(Member& m);
  void Boot(Member& m);

  Config base_;
  uint64_t seed_;
  int64_t now_ns_ = 0;
  std::map<uint64_t, Member> members_;
  std::deque<Message> network_;
  std::set<std::pair<uint64_t, uint64_t>> cut_;
  Invariants invariants_;
};

// A single-server membership change of `id`.
ConfChange MakeConfChange(ConfChangeType type, uint64_t id);

// One-line, stable rendering of a message for transcripts.
std::string Describe(const Message& m);

}  // namespace quorate::raft::testing

#endif  // QUORATE_TESTS_RAFT_CLUSTER_H_
