#include "guard/guard.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace quorate::guard {

int64_t WindowLength(const GuardOptions& o) {
  const double t = static_cast<double>(o.election_timeout_ns);
  return static_cast<int64_t>(t * (1 - o.max_clock_drift) /
                              (1 + o.max_clock_drift)) -
         o.margin_ns;
}

absl::Status ValidateGuardOptions(const GuardOptions& o) {
  if (!(o.max_clock_drift >= 0 && o.max_clock_drift < 1)) {
    return absl::InvalidArgumentError(
        "the clock drift bound must be at least 0 and below 1");
  }
  if (o.margin_ns < 0 || o.dwell_ns < 0) {
    return absl::InvalidArgumentError(
        "the window margin and the resume dwell must not be negative");
  }
  if (WindowLength(o) <= 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "no active window is left: the election timeout (",
        o.election_timeout_ns / 1'000'000, " ms) shrunk by the drift bound (",
        o.max_clock_drift, ") is not longer than the margin (",
        o.margin_ns / 1'000'000, " ms)"));
  }
  return absl::OkStatus();
}

Guard::Guard(GuardOptions options, int64_t start_ns)
    : options_(options), window_(WindowLength(options)), start_ns_(start_ns) {}

uint64_t Guard::RenewalSent(int64_t sent_ns) {
  // A renewal sent a window ago can no longer extend anything.
  while (!pending_.empty() && pending_.begin()->second + window_ <= sent_ns) {
    pending_.erase(pending_.begin());
  }
  pending_[next_id_] = sent_ns;
  return next_id_++;
}

void Guard::Confirmed(uint64_t id, uint64_t term, Token token) {
  auto it = pending_.find(id);
  if (it == pending_.end()) return;
  const int64_t sent = it->second;
  // Renewals are confirmed in order; any sent before this one and still
  // waiting are now useless.
  pending_.erase(pending_.begin(), std::next(it));
  const int64_t until = sent + window_;
  if (term_ != 0 && term != term_) {
    // A window never spans two terms: the old one ends here (it must have
    // ended already, or this leader could not have been elected), and the
    // new term's windows start a new healthy run.
    if (active_) term_ended_until_ns_ = active_until_ns_;
    active_until_ns_ = 0;
    healthy_since_ns_ = 0;
  }
  // A gap (the window lapsed before this renewal was sent) starts a new
  // healthy run. So does a lapse the member noticed: a late confirmation of
  // a renewal sent before it does not count the time spent paused, or a
  // member on a lossy link would flap faster than the dwell allows.
  if (healthy_since_ns_ == 0 || sent >= active_until_ns_) {
    healthy_since_ns_ = std::max(sent, lapsed_at_ns_);
  }
  active_until_ns_ = std::max(active_until_ns_, until);
  term_ = term;
  token_ = token;
  last_confirmed_sent_ns_ = std::max(last_confirmed_sent_ns_, sent);
}

void Guard::Failed(uint64_t id) { pending_.erase(id); }

std::optional<Transition> Guard::Evaluate(int64_t now_ns) {
  if (active_ && term_ended_until_ns_ != 0) {
    // The last term's window, closed by a confirmation of a newer term.
    active_ = false;
    ++pauses_;
    paused_term_ = term_;  // the newer one: it has not dwelt yet
    Transition t;
    t.term = term_;
    t.token = token_;
    t.active_until_ns = std::min(term_ended_until_ns_, now_ns);
    t.reason = "a new leader term began";
    term_ended_until_ns_ = 0;
    return t;
  }
  term_ended_until_ns_ = 0;
  const bool held = now_ns < active_until_ns_;
  if (!held) {
    healthy_since_ns_ = 0;
    lapsed_at_ns_ = std::max(lapsed_at_ns_, active_until_ns_);
  }
  if (active_ && !held) {
    active_ = false;
    paused_term_ = term_;
    ++pauses_;
    Transition t;
    t.active = false;
    t.term = term_;
    t.token = token_;
    t.active_until_ns = active_until_ns_;
    const int64_t since =
        last_confirmed_sent_ns_ > 0 ? last_confirmed_sent_ns_ : start_ns_;
    t.reason = absl::StrCat("no quorum contact for ",
                            (now_ns - since) / 1'000'000, "ms");
    return t;
  }
  // The dwell damps a member's own flapping link: it applies to resuming
  // under the leader term it paused in. Under a newer leader the cluster
  // has moved on, and waiting would only delay the majority's recovery.
  if (!active_ && held &&
      (!ever_active_ || term_ > paused_term_ ||
       now_ns - healthy_since_ns_ >= options_.dwell_ns)) {
    active_ = true;
    ever_active_ = true;
    Transition t;
    t.active = true;
    t.term = term_;
    t.token = token_;
    t.active_until_ns = active_until_ns_;
    t.healthy_since_ns = healthy_since_ns_;
    return t;
  }
  return std::nullopt;
}

int64_t Guard::NextCheck() const {
  if (active_) return active_until_ns_;
  if (active_until_ns_ > 0 && healthy_since_ns_ > 0) {
    return std::min(active_until_ns_, healthy_since_ns_ + options_.dwell_ns);
  }
  return INT64_MAX;
}

}  // namespace quorate::guard
