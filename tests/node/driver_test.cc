// The driver's own order (node/driver.h), checked message by message on
// three members whose I/O the test holds in its hands: it decides when a
// write becomes durable and when a message is delivered. The simulator
// checks the same driver against random faults; these pin down each rule.
#include "node/driver.h"

#include <gtest/gtest.h>

#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "raft/random.h"
#include "util/check.h"
#include "wire/peer.pb.h"

namespace quorate::node {
namespace {

using raft::Message;

constexpr int64_t kHeartbeat = 10;
constexpr int64_t kElection = 100;

// Three members on a network that delivers only when told to.
class Harness {
 public:
  // One member's clock, network and disk.
  class Io final : public DriverEnv, public DriverWriter {
   public:
    explicit Io(Harness* h) : h_(h) {}
    int64_t Now() override { return h_->now_; }
    void Send(std::vector<Message> messages) override {
      for (Message& m : messages) h_->network_.push_back(std::move(m));
    }
    void Post(absl::AnyInvocable<void()> fn) override { fn(); }
    void RunInBackground(absl::AnyInvocable<void()> fn) override { fn(); }
    void ScheduleTick(int64_t deadline_ns) override { tick = deadline_ns; }
    void Write(Request request,
               absl::AnyInvocable<void(absl::Status)> done) override {
      writes.emplace_back(std::move(request), std::move(done));
    }
    void SaveSnapshot(raft::SnapshotMetadata /*metadata*/,
                      std::shared_ptr<const std::string> /*data*/,
                      absl::AnyInvocable<void(absl::Status)> done) override {
      writes.emplace_back(Request{}, std::move(done));
    }

    // The deadline the driver last asked to be ticked at.
    int64_t tick = -1;
    // Submitted, not yet durable: the test completes them.
    std::deque<std::pair<Request, absl::AnyInvocable<void(absl::Status)>>>
        writes;

   private:
    Harness* const h_;
  };

  explicit Harness(uint64_t seed, size_t max_proposals_in_log = 1024) {
    std::vector<peer::MemberInfo> voters(3);
    for (uint64_t id = 1; id <= 3; ++id) voters[id - 1].set_id(id);
    const Bootstrap boot = MakeBootstrap(voters, {});
    for (uint64_t id = 1; id <= 3; ++id) {
      randoms_.push_back(std::make_unique<raft::SeededRandom>(seed * 7 + id));
      ios_.push_back(std::make_unique<Io>(this));
      raft::Config c;
      c.id = id;
      c.random = randoms_.back().get();
      c.heartbeat_interval_ns = kHeartbeat;
      c.election_timeout_ns = kElection;
      raft::RestoredState r;
      r.snapshot = boot.metadata;
      r.snapshot_data = boot.data;
      DriverOptions o;
      o.snapshot_every = 0;
      o.max_proposals_in_log = max_proposals_in_log;
      auto d = Driver::Create(c, std::move(o), std::move(r), ios_.back().get(),
                              ios_.back().get());
      QUORATE_CHECK(d.ok()) << d.status();
      drivers_.push_back(*std::move(d));
    }
  }

  Driver& d(uint64_t id) { return *drivers_[id - 1]; }
  Io& io(uint64_t id) { return *ios_[id - 1]; }
  std::deque<Message>& network() { return network_; }
  int64_t now() const { return now_; }
  void Skip(int64_t ns) { now_ += ns; }

  // Makes member `id`'s submitted writes durable, in order.
  void CompleteWrites(uint64_t id) {
    while (!io(id).writes.empty()) {
      auto done = std::move(io(id).writes.front().second);
      io(id).writes.pop_front();
      done(absl::OkStatus());
    }
  }
  // Delivers what is queued now, each message to its member's driver.
  void DeliverAll() {
    std::deque<Message> batch;
    batch.swap(network_);
    for (Message& m : batch) {
      const uint64_t to = m.to();
      std::vector<Message> one;
      one.push_back(std::move(m));
      (void)d(to).Step(std::move(one));
    }
  }
  // Completes every write and delivers every message until nothing moves.
  void Stabilize() {
    for (int i = 0; i < 1000; ++i) {
      for (uint64_t id = 1; id <= 3; ++id) CompleteWrites(id);
      if (network_.empty()) return;
      DeliverAll();
    }
    QUORATE_CHECK(false) << "the cluster does not settle";
  }
  // Member 1 wins an election.
  void ElectOne() {
    Skip(2 * kElection);  // every member's start-up lease is over
    d(1).mutable_raft().Campaign(now_);
    d(1).Drive();
    Stabilize();
    QUORATE_CHECK(d(1).raft().role() == raft::Role::kLeader);
  }
  // How many queued messages are of `type` from `from`.
  int Queued(raft::MessageType type, uint64_t from) const {
    int n = 0;
    for (const Message& m : network_) n += m.type() == type && m.from() == from;
    return n;
  }

 private:
  int64_t now_ = 1;
  std::vector<std::unique_ptr<raft::SeededRandom>> randoms_;
  std::vector<std::unique_ptr<Io>> ios_;
  std::vector<std::unique_ptr<Driver>> drivers_;
  std::deque<Message> network_;
};

// Raft §5.2 with §5.4's durability: a vote promises that the voter
// remembers it, so it leaves only once the write holding it is durable.
TEST(DriverTest, Vote_LeavesOnlyAfterItsWriteIsDurable) {
  Harness h(1);
  h.Skip(2 * kElection);
  h.d(1).mutable_raft().Campaign(h.now());
  h.d(1).Drive();
  // Pre-votes promise nothing; deliver them and their answers.
  for (int round = 0; round < 2; ++round) h.DeliverAll();
  h.CompleteWrites(1);  // the candidate's own term and vote
  ASSERT_EQ(h.Queued(raft::MESSAGE_TYPE_VOTE, 1), 2);
  h.DeliverAll();  // the vote requests reach 2 and 3
  ASSERT_FALSE(h.io(2).writes.empty());
  const auto& write = h.io(2).writes.front().first;
  ASSERT_TRUE(write.hard_state.has_value());
  EXPECT_EQ(write.hard_state->vote(), 1u);
  EXPECT_EQ(h.Queued(raft::MESSAGE_TYPE_VOTE_RESPONSE, 2), 0)
      << "member 2 voted before its vote was durable";
  h.CompleteWrites(2);
  EXPECT_EQ(h.Queued(raft::MESSAGE_TYPE_VOTE_RESPONSE, 2), 1);
}

// An append acknowledgement promises the entries are durable on the
// follower: it too waits for the write.
TEST(DriverTest, AppendAcknowledgement_LeavesOnlyAfterItsWriteIsDurable) {
  Harness h(2);
  h.ElectOne();
  bool applied = false;
  h.d(1).Propose("x", h.now() + kElection,
                 [&](absl::StatusOr<Applied> a) { applied = a.ok(); });
  h.DeliverAll();  // the append reaches 2 and 3
  ASSERT_FALSE(h.io(2).writes.empty());
  EXPECT_FALSE(h.io(2).writes.front().first.entries.empty());
  EXPECT_EQ(h.Queued(raft::MESSAGE_TYPE_APPEND_RESPONSE, 2), 0);
  h.CompleteWrites(2);
  EXPECT_EQ(h.Queued(raft::MESSAGE_TYPE_APPEND_RESPONSE, 2), 1);
  EXPECT_FALSE(applied);  // not committed yet: nobody answered
  h.Stabilize();
  EXPECT_TRUE(applied);
}

// A new commit index alone needs no fsync: it is held back and written
// with the next entries, and what it commits is applied at once.
TEST(DriverTest, CommitIndexAlone_IsHeldBackAndWrittenWithTheNextEntries) {
  Harness h(3);
  h.ElectOne();
  h.d(1).Propose("x", h.now() + kElection, [](absl::StatusOr<Applied>) {});
  h.DeliverAll();
  h.CompleteWrites(1);
  h.CompleteWrites(2);
  h.CompleteWrites(3);
  h.DeliverAll();  // the acknowledgements: the leader commits "x"
  const uint64_t x = h.d(1).raft().commit();
  ASSERT_EQ(h.d(1).raft().log().At(x).data(), "x");
  h.DeliverAll();  // the new commit index reaches the followers
  EXPECT_EQ(h.d(2).raft().commit(), x);
  EXPECT_TRUE(h.io(2).writes.empty()) << "a commit index alone was written";
  EXPECT_EQ(h.d(2).applied(), x);
  // The next entries carry it.
  h.d(1).Propose("y", h.now() + kElection, [](absl::StatusOr<Applied>) {});
  h.DeliverAll();
  ASSERT_FALSE(h.io(2).writes.empty());
  const auto& write = h.io(2).writes.front().first;
  ASSERT_TRUE(write.hard_state.has_value());
  EXPECT_GE(write.hard_state->commit(), x);
}

// A call whose deadline passed before it reached the driver (it waited in
// an overloaded member's queues) is refused without work: nothing enters
// the log, and no read point is asked of the leader.
TEST(DriverTest, CallsPastTheirDeadline_AreRefusedWithoutWork) {
  Harness h(5);
  h.ElectOne();
  h.Stabilize();
  const uint64_t last = h.d(1).raft().log().last_index();
  std::optional<absl::Status> proposed;
  h.d(1).Propose("late", h.now(),
                 [&](absl::StatusOr<Applied> a) { proposed = a.status(); });
  ASSERT_TRUE(proposed.has_value());
  EXPECT_TRUE(absl::IsDeadlineExceeded(*proposed)) << *proposed;
  EXPECT_NE(proposed->message().find("not applied"), std::string::npos)
      << *proposed;
  EXPECT_EQ(h.d(1).raft().log().last_index(), last);
  std::optional<absl::Status> read;
  h.d(2).Read(h.now() - 1,
              [&](absl::StatusOr<uint64_t> r) { read = r.status(); });
  ASSERT_TRUE(read.has_value());
  EXPECT_TRUE(absl::IsDeadlineExceeded(*read)) << *read;
  EXPECT_EQ(h.Queued(raft::MESSAGE_TYPE_READ_INDEX, 2), 0)
      << "an expired read asked the leader for a read point";
  // One with time left is proposed as before.
  std::optional<absl::Status> in_time;
  h.d(1).Propose("in time", h.now() + kElection,
                 [&](absl::StatusOr<Applied> a) { in_time = a.status(); });
  EXPECT_EQ(h.d(1).raft().log().last_index(), last + 1);
  h.Stabilize();
  ASSERT_TRUE(in_time.has_value());
  EXPECT_TRUE(in_time->ok()) << *in_time;
}

// The partition guard's renewals must not wait for a slow disk: a leader
// confirms a quorum round while its own write is still in flight.
TEST(DriverTest, Confirm_IsAnsweredWhileTheLeadersWriteIsInFlight) {
  Harness h(4);
  h.ElectOne();
  h.d(1).Propose("slow", h.now() + kElection, [](absl::StatusOr<Applied>) {});
  ASSERT_FALSE(h.io(1).writes.empty());
  std::optional<absl::StatusOr<Confirmation>> answer;
  h.d(1).Confirm(h.now() + kElection,
                 [&](absl::StatusOr<Confirmation> c) { answer = c; });
  // Followers answer (their own writes complete); the leader's never does.
  for (int i = 0; i < 10 && !answer.has_value(); ++i) {
    h.DeliverAll();
    h.CompleteWrites(2);
    h.CompleteWrites(3);
  }
  ASSERT_TRUE(answer.has_value());
  ASSERT_TRUE(answer->ok()) << answer->status();
  EXPECT_EQ((*answer)->term, h.d(1).raft().term());
  EXPECT_FALSE(h.io(1).writes.empty());  // still in flight
}

// A follower told that its leader's connection broke campaigns sooner
// (Raft::ReportUnreachable). The driver must move its tick to the new
// deadline, or the shorter timeout never takes effect.
TEST(DriverTest, ReportUnreachable_MovesTheTickToTheSoonerDeadline) {
  int sooner = 0;
  for (uint64_t seed = 1; seed <= 20; ++seed) {
    Harness h(seed);
    h.ElectOne();
    const int64_t before = h.io(2).tick;
    ASSERT_EQ(before, h.d(2).raft().NextDeadline());
    h.d(2).ReportUnreachable(1);
    EXPECT_EQ(h.io(2).tick, h.d(2).raft().NextDeadline()) << "seed " << seed;
    EXPECT_LE(h.io(2).tick, before) << "seed " << seed;
    sooner += h.io(2).tick < before;
  }
  EXPECT_GT(sooner, 0);
}

// Shedding by time (Driver::Propose): beyond the log's room proposals wait
// in order; one that the measured pace would not apply before its
// deadline is refused at once, one that waited until too little time was
// left is answered without being proposed, and nothing refused enters the
// log.
TEST(DriverTest, ProposalsBeyondTheLogsRoom_WaitInOrderAndAreShedByTime) {
  Harness h(6, /*max_proposals_in_log=*/2);
  h.ElectOne();
  // One proposal that takes 10 ns from the log to applied: the pace.
  std::optional<absl::Status> first;
  h.d(1).Propose("first", h.now() + 1000,
                 [&](absl::StatusOr<Applied> a) { first = a.status(); });
  h.Skip(10);
  h.Stabilize();
  ASSERT_TRUE(first.has_value() && first->ok());
  ASSERT_EQ(h.d(1).overload().log_latency_ns, 10);

  const uint64_t last = h.d(1).raft().log().last_index();
  std::vector<uint64_t> applied_at(4, 0);
  std::vector<absl::Status> status(4, absl::OkStatus());
  for (int i = 0; i < 4; ++i) {
    h.d(1).Propose(absl::StrCat("p", i), h.now() + 1000,
                   [&, i](absl::StatusOr<Applied> a) {
                     status[i] = a.status();
                     if (a.ok()) applied_at[i] = a->index;
                   });
  }
  EXPECT_EQ(h.d(1).proposals_in_log(), 2u);
  EXPECT_EQ(h.d(1).proposals_queued(), 2u);
  EXPECT_EQ(h.d(1).raft().log().last_index(), last + 2);

  // Two ahead before the log, two in it: about 10 * (1 + 2/2) = 20 ns.
  std::optional<absl::Status> hopeless;
  h.d(1).Propose("hopeless", h.now() + 15,
                 [&](absl::StatusOr<Applied> a) { hopeless = a.status(); });
  ASSERT_TRUE(hopeless.has_value());
  EXPECT_TRUE(absl::IsResourceExhausted(*hopeless)) << *hopeless;
  EXPECT_NE(hopeless->message().find("not proposed"), std::string::npos);
  EXPECT_EQ(h.d(1).overload().refused, 1u);

  // Admitted (20 ns < 40 ns), but the log has no room until too late.
  std::optional<absl::Status> late;
  h.d(1).Propose("late", h.now() + 40,
                 [&](absl::StatusOr<Applied> a) { late = a.status(); });
  EXPECT_FALSE(late.has_value());
  EXPECT_EQ(h.d(1).proposals_queued(), 3u);
  h.Skip(35);
  h.Stabilize();
  ASSERT_TRUE(late.has_value());
  EXPECT_TRUE(absl::IsDeadlineExceeded(*late)) << *late;
  EXPECT_NE(late->message().find("not proposed"), std::string::npos);
  EXPECT_EQ(h.d(1).overload().expired, 1u);
  // The others were applied, in the order they came.
  for (int i = 0; i < 4; ++i) {
    EXPECT_TRUE(status[i].ok()) << i << ": " << status[i];
    if (i > 0) {
      EXPECT_GT(applied_at[i], applied_at[i - 1]);
    }
  }
  EXPECT_EQ(h.d(1).raft().log().last_index(), last + 4)
      << "a refused proposal entered the log";

  // One still waiting before the log at its deadline is answered then.
  for (int i = 0; i < 3; ++i) {
    h.d(1).Propose(absl::StrCat("q", i), h.now() + 1000,
                   [&, i](absl::StatusOr<Applied> a) {
                     if (i == 2) late = a.status();
                   });
  }
  late.reset();
  ASSERT_EQ(h.d(1).proposals_queued(), 1u);
  h.d(1).ExpireWaiting(h.now() + 1000);
  ASSERT_TRUE(late.has_value());
  EXPECT_TRUE(absl::IsDeadlineExceeded(*late)) << *late;
  EXPECT_NE(late->message().find("not proposed"), std::string::npos);
  EXPECT_EQ(h.d(1).proposals_queued(), 0u);
}

// A proposal's callback may propose again when its deadline ends it, as
// the lessor does. ExpireWaiting must not be walking its queues then (the
// simulator's ASan build caught it reading a freed queue entry): every
// expired proposal is answered once, and every one proposed again from a
// callback is applied.
TEST(DriverTest, ACallbackOfAnExpiredProposalMayProposeAgain) {
  Harness h(8, /*max_proposals_in_log=*/8);
  h.ElectOne();
  int expired = 0;
  std::vector<absl::Status> again;
  // 8 in the log, then 30 waiting before it (several blocks of the queue).
  // All expire; those waiting propose again from their callbacks, and the
  // log has room again by then.
  for (int i = 0; i < 38; ++i) {
    h.d(1).Propose(
        absl::StrCat("p", i), h.now() + 100, [&, i](absl::StatusOr<Applied> a) {
          if (!absl::IsDeadlineExceeded(a.status())) return;
          ++expired;
          if (i < 8) return;
          h.d(1).Propose(
              absl::StrCat("again", i), h.now() + 1'000'000,
              [&](absl::StatusOr<Applied> b) { again.push_back(b.status()); });
        });
  }
  ASSERT_EQ(h.d(1).proposals_in_log(), 8u);
  ASSERT_EQ(h.d(1).proposals_queued(), 30u);
  h.d(1).ExpireWaiting(h.now() + 200);  // nothing was delivered: all expire
  EXPECT_EQ(expired, 38);
  h.Stabilize();
  ASSERT_EQ(again.size(), 30u);
  for (const absl::Status& s : again) EXPECT_TRUE(s.ok()) << s;
}

// The estimate decides only for proposals that would wait. One inflated by
// entries that waited out a stall (here one took 1 ms from the log to
// applied) must not turn away a proposal the log has room for: it learns
// only from what is applied, so it would never come down again. (The
// simulator found a leader that proposed nothing more after a zone cut.)
TEST(DriverTest, AStaleEstimateDoesNotRefuseWhatTheLogHasRoomFor) {
  Harness h(7, /*max_proposals_in_log=*/2);
  h.ElectOne();
  std::optional<absl::Status> slow;
  h.d(1).Propose("slow", h.now() + 10'000'000,
                 [&](absl::StatusOr<Applied> a) { slow = a.status(); });
  h.Skip(1'000'000);
  h.Stabilize();
  ASSERT_TRUE(slow.has_value() && slow->ok());
  ASSERT_EQ(h.d(1).overload().log_latency_ns, 1'000'000);

  // Due in 1 us, against an estimate of 1 ms: proposed all the same.
  const uint64_t last = h.d(1).raft().log().last_index();
  std::optional<absl::Status> quick;
  h.d(1).Propose("quick", h.now() + 1000,
                 [&](absl::StatusOr<Applied> a) { quick = a.status(); });
  EXPECT_EQ(h.d(1).raft().log().last_index(), last + 1);
  h.Stabilize();
  ASSERT_TRUE(quick.has_value());
  EXPECT_TRUE(quick->ok()) << *quick;
  EXPECT_EQ(h.d(1).overload().expired, 0u);
  EXPECT_EQ(h.d(1).overload().refused, 0u);
  // And the estimate came down with it.
  EXPECT_LT(h.d(1).overload().log_latency_ns, 1'000'000);
}

// Callers are answered once, with what happened: stopping answers every
// waiting one.
TEST(DriverTest, Close_AnswersEveryWaitingCaller) {
  Harness h(5);
  h.ElectOne();
  absl::Status proposal = absl::OkStatus();
  absl::Status read = absl::OkStatus();
  h.d(1).Propose("x", h.now() + kElection,
                 [&](absl::StatusOr<Applied> a) { proposal = a.status(); });
  h.d(2).Read(h.now() + kElection,
              [&](absl::StatusOr<uint64_t> r) { read = r.status(); });
  h.d(1).Close("the member stopped");
  h.d(2).Close("the member stopped");
  EXPECT_TRUE(absl::IsUnknown(proposal)) << proposal;  // may still commit
  EXPECT_TRUE(absl::IsUnavailable(read)) << read;
}

}  // namespace
}  // namespace quorate::node
