#include "coord/lease_keeper.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "wire/client.pb.h"

namespace quorate::coord {

LeaseKeeper::LeaseKeeper(KvStore* store, LeaseKeeperOptions options)
    : options_(std::move(options)), store_(store), lessor_(options_.lessor) {
  store->SetLeaseListener(
      [this](const std::vector<LeaseEvent>& events) { OnLeaseEvents(events); });
}

LeaseKeeper::~LeaseKeeper() { Stop(); }

void LeaseKeeper::Start(node::Node* node) {
  MutexLock lock(&mu_);
  node_ = node;
  thread_ = std::thread([this] { Run(); });
}

void LeaseKeeper::Stop() {
  std::vector<Lessor::Answer> answers;
  {
    MutexLock lock(&mu_);
    if (stopping_) return;
    stopping_ = true;
    answers = lessor_.StepDown();
    wake_.SignalAll();
  }
  if (thread_.joinable()) thread_.join();
  Deliver(answers);
  // Renewals in a round still in flight: their rounds' callbacks find
  // the keeper stopped and answer nothing; answer them now.
  std::map<uint64_t, AnswerFn> left;
  {
    MutexLock lock(&mu_);
    left.swap(waiters_);
  }
  for (auto& [cookie, done] : left) {
    done(Lessor::Answer{0, cookie,
                        absl::UnavailableError("the member is stopping"), 0});
  }
}

void LeaseKeeper::OnLeaseEvents(const std::vector<LeaseEvent>& events) {
  if (events.empty()) return;
  {
    MutexLock lock(&mu_);
    lessor_.OnLeaseEvents(events, options_.clock());
  }
  if (!options_.on_lease_ended) return;
  for (const LeaseEvent& e : events) {
    if (e.kind == LeaseEvent::Kind::kRemoved) options_.on_lease_ended(e.id);
  }
}

void LeaseKeeper::OnRole(raft::Role role, uint64_t term) {
  std::vector<Lessor::Answer> answers;
  {
    MutexLock lock(&mu_);
    if (role == raft::Role::kLeader) {
      lessor_.BecomeLeader(term, options_.clock());
      Log(absl::StrCat("leading term ", term, ": ", lessor_.leases(),
                       " leases get their TTL (or their checkpoint's rest) "
                       "from now"));
      next_scan_at_ = 0;  // the probe round, at once
      wake_.SignalAll();
    } else if (lessor_.leader()) {
      answers = lessor_.StepDown();
    }
  }
  Deliver(answers);
}

void LeaseKeeper::Renew(uint64_t id, AnswerFn done) {
  absl::Status s;
  {
    MutexLock lock(&mu_);
    if (stopping_) {
      s = absl::UnavailableError("the member is stopping");
    } else {
      const uint64_t cookie = next_cookie_++;
      s = lessor_.Renew(id, cookie, options_.clock());
      if (s.ok()) waiters_.emplace(cookie, std::move(done));
    }
  }
  if (!s.ok()) {
    done(Lessor::Answer{id, 0, s, 0});
    return;
  }
  DriveRounds();
}

absl::StatusOr<int64_t> LeaseKeeper::Remaining(uint64_t id) {
  MutexLock lock(&mu_);
  return lessor_.Remaining(id, options_.clock());
}

void LeaseKeeper::Deliver(const std::vector<Lessor::Answer>& answers) {
  for (const Lessor::Answer& a : answers) {
    AnswerFn done;
    {
      MutexLock lock(&mu_);
      auto it = waiters_.find(a.cookie);
      if (it == waiters_.end()) continue;
      done = std::move(it->second);
      waiters_.erase(it);
    }
    done(a);
  }
}

void LeaseKeeper::DriveRounds() {
  std::optional<Lessor::Round> round;
  node::Node* node;
  uint64_t term;
  {
    MutexLock lock(&mu_);
    if (stopping_ || node_ == nullptr) return;
    const int64_t now = options_.clock();
    if (!lessor_.WantsRound()) {
      round_wanted_ = false;
      return;
    }
    if (now < next_round_at_) {
      // Too soon after the last round: the keeper's thread starts it.
      if (!round_wanted_) {
        round_wanted_ = true;
        wake_.SignalAll();
      }
      return;
    }
    round = lessor_.TakeRound();
    round_wanted_ = false;
    next_round_at_ = now + options_.min_round_spacing_ns;
    node = node_;
    term = lessor_.term();
  }
  auto done = [this, id = round->id](absl::StatusOr<node::Confirmation> c) {
    std::vector<Lessor::Answer> answers;
    {
      MutexLock lock(&mu_);
      answers = lessor_.RoundDone(id, c);
    }
    Deliver(answers);
    DriveRounds();
  };
  const absl::Duration timeout = absl::Nanoseconds(options_.round_timeout_ns);
  if (round->clear.empty()) {
    node->Confirm(timeout, std::move(done));
    return;
  }
  node->Propose(
      ClearCommand(round->clear).SerializeAsString(), timeout,
      [done = std::move(done), term](absl::StatusOr<node::Applied> a) mutable {
        done(ClearRoundOutcome(term, a));
      });
}

void LeaseKeeper::Tick() {
  std::vector<uint64_t> expired;
  Lessor::Checkpoint checkpoint;
  std::vector<DrainingShard> drained;
  node::Node* node;
  bool leads;
  {
    MutexLock lock(&mu_);
    leads = lessor_.leader() && node_ != nullptr;
  }
  // Read before the keeper's lock (the store has a lock of its own), and
  // only on the leader: followers have no drain deadlines to call.
  const std::vector<DrainingShard> draining =
      leads ? store_->DrainingShards() : std::vector<DrainingShard>{};
  {
    MutexLock lock(&mu_);
    const int64_t now = options_.clock();
    if (!lessor_.leader() || node_ == nullptr) {
      drain_clock_.Reset();
      next_scan_at_ = now + options_.max_scan_gap_ns;
      return;
    }
    drained = drain_clock_.Scan(draining, now);
    expired = lessor_.TakeExpired(now);
    checkpoint = lessor_.TakeCheckpoints(now);
    node = node_;
    next_scan_at_ = std::clamp(lessor_.NextDeadline(), now + options_.tick_ns,
                               now + options_.max_scan_gap_ns);
  }
  const absl::Duration timeout = absl::Nanoseconds(options_.round_timeout_ns);
  if (!expired.empty()) {
    Log(absl::StrCat("expiring ", expired.size(),
                     " leases (first: ", expired.front(), ")"));
    node->Propose(ExpiryCommand(expired).SerializeAsString(), timeout,
                  [this, expired](absl::StatusOr<node::Applied> a) {
                    MutexLock lock(&mu_);
                    lessor_.ExpiryDone(expired, a.ok());
                  });
  }
  for (const DrainingShard& d : drained) {
    Log(absl::StrCat("shard ", d.shard, " of group '", d.group,
                     "': its drain deadline passed (", d.drain_ms,
                     " ms after its owner acknowledged); handing it over"));
    node->Propose(DrainExpiredCommand(d).SerializeAsString(), timeout,
                  [](absl::StatusOr<node::Applied>) {});
  }
  if (!checkpoint.ids.empty()) {
    node->Propose(CheckpointCommand(checkpoint).SerializeAsString(), timeout,
                  [this, ids = checkpoint.ids](absl::StatusOr<node::Applied>) {
                    MutexLock lock(&mu_);
                    lessor_.CheckpointDone(ids);
                  });
  }
  DriveRounds();
}

void LeaseKeeper::Run() {
  while (true) {
    bool scan;
    {
      MutexLock lock(&mu_);
      if (stopping_) return;
      const int64_t now = options_.clock();
      int64_t until = next_scan_at_;
      if (round_wanted_) until = std::min(until, next_round_at_);
      if (until > now) {
        wake_.WaitWithTimeout(&mu_, absl::Nanoseconds(until - now));
      }
      if (stopping_) return;
      scan = options_.clock() >= next_scan_at_;
    }
    if (scan)
      Tick();  // its expiries, checkpoints, and a round if due
    else
      DriveRounds();
  }
}

}  // namespace quorate::coord
