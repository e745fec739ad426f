#include "guard/partition_guard.h"

#include <algorithm>
#include <utility>
#include <vector>

#include "util/thread_name.h"

namespace quorate::guard {

void PermitCell::Write(int64_t deadline_ns, Token token) {
  // Odd while writing; writers are serialized by the guard's lock.
  seq_.fetch_add(1, std::memory_order_acq_rel);
  deadline_ns_.store(deadline_ns, std::memory_order_relaxed);
  term_.store(token.term, std::memory_order_relaxed);
  index_.store(token.index, std::memory_order_relaxed);
  seq_.fetch_add(1, std::memory_order_release);
}

void PermitCell::Read(int64_t* deadline_ns, Token* token) const {
  while (true) {
    const uint64_t before = seq_.load(std::memory_order_acquire);
    if (before % 2 == 1) continue;
    *deadline_ns = deadline_ns_.load(std::memory_order_relaxed);
    token->term = term_.load(std::memory_order_relaxed);
    token->index = index_.load(std::memory_order_relaxed);
    std::atomic_thread_fence(std::memory_order_acquire);
    if (seq_.load(std::memory_order_relaxed) == before) return;
  }
}

absl::StatusOr<std::unique_ptr<PartitionGuard>> PartitionGuard::Start(
    Options options) {
  if (absl::Status s = ValidateGuardOptions(options.guard); !s.ok()) return s;
  if (options.node == nullptr || options.renew_interval_ns <= 0) {
    return absl::InvalidArgumentError("the guard needs a node and an interval");
  }
  std::unique_ptr<PartitionGuard> g(new PartitionGuard(std::move(options)));
  g->thread_ = std::thread([p = g.get()] {
    SetThreadName("q-guard");
    p->Run();
  });
  return g;
}

PartitionGuard::PartitionGuard(Options options)
    : options_(std::move(options)),
      cell_(std::make_shared<PermitCell>(options_.clock)),
      guard_(options_.guard, options_.clock()) {}

PartitionGuard::~PartitionGuard() { Stop(); }

void PartitionGuard::Stop() {
  int64_t stop_ns = 0;
  {
    MutexLock lock(&mu_);
    if (stopping_ && !thread_.joinable()) return;
    stopping_ = true;
    cell_->Write(0, guard_.token());
    stop_ns = options_.clock();
  }
  changed_.SignalAll();
  if (thread_.joinable()) thread_.join();
  // Only now, with the thread gone: a pause it reported just before is
  // not reported twice.
  std::optional<Transition> last;
  {
    MutexLock lock(&mu_);
    if (guard_.active()) {
      // The window ended when Stop() began, and the event log says so: a
      // stopped member must not look active to whoever checks the log.
      last = Transition{};
      last->term = guard_.term();
      last->token = guard_.token();
      last->active_until_ns = std::min(stop_ns, guard_.active_until_ns());
      last->reason = "the member is stopping";
    }
  }
  if (last.has_value() && options_.on_transition) options_.on_transition(*last);
  // Confirmations in flight call back into this object: wait for them
  // (each ends by its deadline, or when the node stops).
  MutexLock lock(&mu_);
  while (outstanding_ > 0) changed_.Wait(&mu_);
}

void PartitionGuard::Publish() {
  if (stopping_) return;
  cell_->Write(guard_.publishable() ? guard_.active_until_ns() : 0,
               guard_.token());
}

void PartitionGuard::Confirmed(uint64_t id,
                               absl::StatusOr<node::Confirmation> c) {
  {
    MutexLock lock(&mu_);
    --outstanding_;
    if (c.ok()) {
      known_term_ = std::max(known_term_, c->term);
      guard_.Confirmed(id, c->term, Token{c->term, c->term_start});
      // An active member's window grows at once, before the guard's
      // thread wakes.
      Publish();
    } else {
      guard_.Failed(id);
      if (id == last_renewal_id_) last_renewal_failed_ = true;
    }
  }
  changed_.SignalAll();
}

void PartitionGuard::Run() {
  int64_t next_renewal = 0;
  std::vector<Transition> report;
  // Locked by hand: it is let go around calls out of the guard.
  mu_.Lock();
  while (!stopping_) {
    int64_t now = options_.clock();
    if (nudged_) {
      nudged_ = false;
      if (last_renewal_failed_ || known_term_ > last_renewal_term_) {
        next_renewal = now;
      }
    }
    if (now >= next_renewal) {
      const uint64_t id = guard_.RenewalSent(now);
      last_renewal_id_ = id;
      last_renewal_term_ = known_term_;
      last_renewal_failed_ = false;
      next_renewal = now + options_.renew_interval_ns;
      ++outstanding_;
      mu_.Unlock();
      options_.node->Confirm(
          absl::Nanoseconds(options_.guard.election_timeout_ns),
          [this, id](absl::StatusOr<node::Confirmation> c) {
            Confirmed(id, std::move(c));
          });
      mu_.Lock();
      now = options_.clock();
    }
    while (std::optional<Transition> t = guard_.Evaluate(now)) {
      pause_reason_ = t->active ? "" : t->reason;
      report.push_back(*std::move(t));
    }
    Publish();
    if (!report.empty()) {
      mu_.Unlock();
      for (const Transition& t : report) {
        if (options_.on_transition) options_.on_transition(t);
      }
      report.clear();
      mu_.Lock();
      continue;
    }
    const int64_t wake = std::min(next_renewal, guard_.NextCheck());
    if (wake > now) {
      changed_.WaitWithTimeout(&mu_, absl::Nanoseconds(wake - now));
    }
  }
  mu_.Unlock();
}

void PartitionGuard::Nudge(uint64_t term) {
  {
    MutexLock lock(&mu_);
    known_term_ = std::max(known_term_, term);
    nudged_ = true;
  }
  changed_.SignalAll();
}

GuardStatus PartitionGuard::Status() const {
  MutexLock lock(&mu_);
  GuardStatus s;
  s.active = guard_.active() && options_.clock() < guard_.active_until_ns();
  s.pause_reason = s.active ? "" : pause_reason_;
  if (!s.active && pause_reason_.empty()) {
    s.pause_reason = "the active window lapsed";
  }
  s.active_until_ns = s.active ? guard_.active_until_ns() : 0;
  s.last_contact_ns = guard_.last_confirmed_sent_ns();
  s.pauses = guard_.pauses();
  s.term = guard_.term();
  s.token = guard_.token();
  return s;
}

}  // namespace quorate::guard
