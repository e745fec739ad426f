// The partition guard's state machine, driven by hand: times are plain
// numbers (milliseconds here, for reading).
#include "guard/guard.h"

#include <atomic>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "guard/partition_guard.h"
#include "util/clock.h"

namespace quorate::guard {
namespace {

constexpr int64_t kMs = 1'000'000;

GuardOptions Options() {
  GuardOptions o;
  o.election_timeout_ns = 500 * kMs;
  o.max_clock_drift = 0.01;
  o.margin_ns = 50 * kMs;
  o.dwell_ns = 300 * kMs;
  return o;
}

TEST(GuardTest, TheWindowAllowsForDriftBothWaysAndTheMargin) {
  // T (1 - rho) / (1 + rho) - margin = 500 * 0.99 / 1.01 - 50.
  EXPECT_EQ(WindowLength(Options()), 490'099'009 - 50 * kMs);
  GuardOptions o = Options();
  o.margin_ns = 600 * kMs;
  EXPECT_FALSE(ValidateGuardOptions(o).ok());
  o = Options();
  o.max_clock_drift = 1.0;
  EXPECT_FALSE(ValidateGuardOptions(o).ok());
  EXPECT_TRUE(ValidateGuardOptions(Options()).ok());
}

TEST(GuardTest, PausedAtStart_ActiveOnceConfirmed_PausedWhenTheWindowEnds) {
  Guard g(Options(), 0);
  EXPECT_FALSE(g.Evaluate(10 * kMs).has_value());
  EXPECT_FALSE(g.active());
  const uint64_t id = g.RenewalSent(100 * kMs);
  EXPECT_FALSE(g.Evaluate(105 * kMs).has_value());  // not confirmed yet
  g.Confirmed(id, 3, Token{3, 17});
  std::optional<Transition> t = g.Evaluate(110 * kMs);
  ASSERT_TRUE(t.has_value());
  EXPECT_TRUE(t->active);  // the first time: no dwell
  EXPECT_EQ(t->term, 3u);
  EXPECT_EQ(t->token, (Token{3, 17}));
  const int64_t until = 100 * kMs + WindowLength(Options());
  EXPECT_EQ(t->active_until_ns, until);
  EXPECT_EQ(g.NextCheck(), until);
  EXPECT_FALSE(g.Evaluate(until - 1).has_value());
  // Noticed late, the pause still carries the deadline the window had.
  t = g.Evaluate(until + 70 * kMs);
  ASSERT_TRUE(t.has_value());
  EXPECT_FALSE(t->active);
  EXPECT_EQ(t->active_until_ns, until);
  EXPECT_EQ(t->reason, "no quorum contact for 510ms");
  EXPECT_EQ(g.pauses(), 1u);
}

TEST(GuardTest, PipelinedRenewalsExtendTheWindowAndNeverShrinkIt) {
  Guard g(Options(), 0);
  const uint64_t a = g.RenewalSent(0);
  const uint64_t b = g.RenewalSent(50 * kMs);
  const uint64_t c = g.RenewalSent(100 * kMs);
  g.Confirmed(b, 1, Token{1, 1});
  EXPECT_EQ(g.active_until_ns(), 50 * kMs + WindowLength(Options()));
  // `a` was sent before `b`: it was dropped when `b` confirmed.
  g.Confirmed(a, 1, Token{1, 1});
  EXPECT_EQ(g.active_until_ns(), 50 * kMs + WindowLength(Options()));
  EXPECT_EQ(g.pending(), 1u);
  g.Confirmed(c, 1, Token{1, 1});
  EXPECT_EQ(g.active_until_ns(), 100 * kMs + WindowLength(Options()));
  g.Failed(g.RenewalSent(150 * kMs));
  EXPECT_EQ(g.pending(), 0u);
}

TEST(GuardTest, AfterAPauseItResumesOnlyAfterTheDwell) {
  Guard g(Options(), 0);
  const int64_t w = WindowLength(Options());
  g.Confirmed(g.RenewalSent(0), 1, Token{1, 1});
  ASSERT_TRUE(g.Evaluate(1 * kMs)->active);
  ASSERT_FALSE(g.Evaluate(w)->active);  // lapsed
  // Healthy again, same leader term, from 1000 ms: not active before
  // 1300 ms.
  int64_t now = 1000 * kMs;
  g.Confirmed(g.RenewalSent(now), 1, Token{1, 1});
  EXPECT_FALSE(g.Evaluate(now + 10 * kMs).has_value());
  EXPECT_EQ(g.NextCheck(), now + 300 * kMs);
  for (int64_t t = now + 50 * kMs; t < now + 300 * kMs; t += 50 * kMs) {
    g.Confirmed(g.RenewalSent(t), 1, Token{1, 1});
    EXPECT_FALSE(g.Evaluate(t + kMs).has_value()) << t / kMs;
  }
  std::optional<Transition> t = g.Evaluate(now + 300 * kMs);
  ASSERT_TRUE(t.has_value());
  EXPECT_TRUE(t->active);
  EXPECT_EQ(t->token, (Token{1, 1}));
}

// On a lossy link renewals are confirmed late. One sent before the window
// lapsed but confirmed after the pause must not start the healthy run
// before the pause, or the member would resume at once and flap.
TEST(GuardTest, ALateConfirmationDoesNotCountTimeSpentPaused) {
  Guard g(Options(), 0);
  const int64_t w = WindowLength(Options());
  g.Confirmed(g.RenewalSent(0), 1, Token{1, 1});
  ASSERT_TRUE(g.Evaluate(1 * kMs)->active);
  const uint64_t late = g.RenewalSent(300 * kMs);
  ASSERT_FALSE(g.Evaluate(w)->active);  // lapsed at w (440 ms)
  g.Confirmed(late, 1, Token{1, 1});    // arrives at 460 ms
  EXPECT_FALSE(g.Evaluate(w + 20 * kMs).has_value());
  // Held since the lapse, not since 300 ms: the dwell ends at w + 300 ms.
  EXPECT_EQ(g.NextCheck(), w + 300 * kMs);
  g.Confirmed(g.RenewalSent(w + 100 * kMs), 1, Token{1, 1});
  g.Confirmed(g.RenewalSent(w + 200 * kMs), 1, Token{1, 1});
  EXPECT_FALSE(g.Evaluate(600 * kMs).has_value());
  EXPECT_FALSE(g.Evaluate(w + 300 * kMs - 1).has_value());
  std::optional<Transition> t = g.Evaluate(w + 300 * kMs);
  ASSERT_TRUE(t.has_value());
  EXPECT_TRUE(t->active);
}

TEST(GuardTest, UnderANewerLeaderItResumesAtOnce) {
  Guard g(Options(), 0);
  const int64_t w = WindowLength(Options());
  g.Confirmed(g.RenewalSent(0), 1, Token{1, 1});
  ASSERT_TRUE(g.Evaluate(1 * kMs)->active);
  ASSERT_FALSE(g.Evaluate(w)->active);  // its leader is gone
  // Another member leads in term 2: the cluster moved on; no dwell.
  g.Confirmed(g.RenewalSent(900 * kMs), 2, Token{2, 40});
  std::optional<Transition> t = g.Evaluate(905 * kMs);
  ASSERT_TRUE(t.has_value());
  EXPECT_TRUE(t->active);
  EXPECT_EQ(t->token, (Token{2, 40}));
  // A flap after that, in term 2, dwells again.
  ASSERT_FALSE(g.Evaluate(900 * kMs + w)->active);
  g.Confirmed(g.RenewalSent(2000 * kMs), 2, Token{2, 40});
  EXPECT_FALSE(g.Evaluate(2010 * kMs).has_value());
  EXPECT_TRUE(g.Evaluate(2300 * kMs)->active);
}

TEST(GuardTest, AGapRestartsTheDwell_AndAPauseIsNeverDelayed) {
  Guard g(Options(), 0);
  const int64_t w = WindowLength(Options());
  g.Confirmed(g.RenewalSent(0), 1, Token{1, 1});
  g.Evaluate(kMs);
  g.Evaluate(w);  // paused
  g.Confirmed(g.RenewalSent(1000 * kMs), 1, Token{1, 1});
  EXPECT_FALSE(g.Evaluate(1100 * kMs).has_value());
  // That window lapses before the dwell is over: a gap.
  EXPECT_FALSE(g.Evaluate(1000 * kMs + w).has_value());
  g.Confirmed(g.RenewalSent(2000 * kMs), 1, Token{1, 1});
  // 300 ms after the first healthy renewal, but not after this one.
  EXPECT_FALSE(g.Evaluate(2000 * kMs + 10 * kMs).has_value());
  EXPECT_TRUE(g.Evaluate(2300 * kMs)->active);
  // Active: the moment the window ends, it is paused.
  EXPECT_FALSE(g.Evaluate(2000 * kMs + w)->active);
}

TEST(GuardTest, AWindowNeverSpansTwoTerms) {
  Guard g(Options(), 0);
  g.Confirmed(g.RenewalSent(0), 1, Token{1, 5});
  ASSERT_TRUE(g.Evaluate(kMs)->active);
  // A newer term's confirmation (possible only if the old window somehow
  // outlived the election): the old window ends now, with a pause event,
  // and the new term's window must dwell before it counts.
  g.Confirmed(g.RenewalSent(100 * kMs), 2, Token{2, 9});
  std::optional<Transition> t = g.Evaluate(110 * kMs);
  ASSERT_TRUE(t.has_value());
  EXPECT_FALSE(t->active);
  EXPECT_EQ(t->active_until_ns, 110 * kMs);
  EXPECT_EQ(t->reason, "a new leader term began");
  EXPECT_FALSE(g.Evaluate(120 * kMs).has_value());
  for (int64_t at = 150; at <= 400; at += 50) {
    g.Confirmed(g.RenewalSent(at * kMs), 2, Token{2, 9});
  }
  t = g.Evaluate(400 * kMs);
  ASSERT_TRUE(t.has_value());
  EXPECT_TRUE(t->active);
  EXPECT_EQ(t->term, 2u);
  EXPECT_EQ(t->token, (Token{2, 9}));
}

// A machine suspended with a window open. CLOCK_MONOTONIC stops while Linux
// is suspended; CLOCK_BOOTTIME does not. The fake machine below moves its
// boot-time clock by a minute and leaves its monotonic clock where it was:
// the permit, which reads the guard's clock, must say no at once. Had the
// permit or the guard read the monotonic clock, the window would still
// have 400 ms to run.
struct FakeMachine {
  static inline int64_t monotonic_ns = 0;
  static inline int64_t boot_ns = 0;
  static int64_t Monotonic() { return monotonic_ns; }
  static int64_t Boot() { return boot_ns; }
  static void Suspend(int64_t ns) { boot_ns += ns; }
  static void Run(int64_t ns) {
    monotonic_ns += ns;
    boot_ns += ns;
  }
};

TEST(SuspendTest, ASuspendEndsTheWindow) {
  FakeMachine::monotonic_ns = 1'000 * kMs;
  FakeMachine::boot_ns = 5'000 * kMs;  // booted, then suspended before
  Guard g(Options(), FakeMachine::Boot());
  PermitCell cell(&FakeMachine::Boot);
  const uint64_t id = g.RenewalSent(FakeMachine::Boot());
  FakeMachine::Run(10 * kMs);
  g.Confirmed(id, 4, Token{4, 9});
  ASSERT_TRUE(g.Evaluate(FakeMachine::Boot()).has_value());
  cell.Write(g.active_until_ns(), g.token());
  Token t;
  ASSERT_TRUE(cell.Valid(&t));
  EXPECT_EQ(t, (Token{4, 9}));
  FakeMachine::Run(30 * kMs);
  EXPECT_TRUE(cell.Valid(nullptr));  // about 400 ms of window left

  const int64_t mono_before = FakeMachine::Monotonic();
  FakeMachine::Suspend(60'000 * kMs);
  EXPECT_EQ(FakeMachine::Monotonic(), mono_before);  // stood still
  EXPECT_FALSE(cell.Valid(nullptr));
  // The guard, on the same clock, pauses at its next look and says the
  // window really ended long ago.
  std::optional<Transition> pause = g.Evaluate(FakeMachine::Boot());
  ASSERT_TRUE(pause.has_value());
  EXPECT_FALSE(pause->active);
  EXPECT_LT(pause->active_until_ns, FakeMachine::Boot() - 59'000 * kMs);
}

TEST(SuspendTest, GuardAndPermitRunOnTheBootTimeClock) {
  // What the member uses when nothing is injected.
  EXPECT_EQ(PartitionGuard::Options().clock, &BootTimeNowNs);
  // And CLOCK_BOOTTIME is what BootTimeNowNs reads: never behind the
  // monotonic clock (it adds the time spent suspended).
  const int64_t monotonic = MonotonicNowNs();
  EXPECT_GE(BootTimeNowNs(), monotonic);
}

// PermitCell: readers on many threads never see a torn (deadline, token):
// every value written pairs deadline d with token {d, d}.
TEST(PermitCellTest, ReadersSeeWholeValues) {
  PermitCell cell;
  std::atomic<bool> stop{false};
  std::atomic<int> torn{0};
  std::vector<std::thread> readers;
  for (int i = 0; i < 4; ++i) {
    readers.emplace_back([&] {
      while (!stop.load()) {
        int64_t d = 0;
        Token t;
        cell.Read(&d, &t);
        if (t.term != static_cast<uint64_t>(d) || t.index != t.term) ++torn;
      }
    });
  }
  for (int64_t d = 1; d <= 200000; ++d) {
    cell.Write(d, Token{static_cast<uint64_t>(d), static_cast<uint64_t>(d)});
  }
  stop = true;
  for (std::thread& r : readers) r.join();
  EXPECT_EQ(torn.load(), 0);
}

}  // namespace
}  // namespace quorate::guard
