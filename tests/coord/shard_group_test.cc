// A shard group's replicated state (coord/shard_group.h): each rule on a
// small group, then random joins, leaves, session ends, releases and drain
// deadlines checked step by step: a shard changes owner only by a release,
// an acknowledged drain deadline or its owner's session ending; epochs
// grow by one with each new owner; no more than K shards are revoking;
// and once the owners release what they are asked to, every shard has
// the owner the assignment function gives. Each check has a broken
// variant (ShardGroup::Unsafe) that it is shown to catch.
#include "coord/shard_group.h"

#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"

namespace quorate::coord {
namespace {

ShardGroup MakeGroup(uint32_t shards, uint32_t k,
                     ShardGroup::Unsafe unsafe = {}) {
  ShardGroupConfig c;
  c.shards = shards;
  c.max_in_motion = k;
  c.max_processors = 50;
  absl::StatusOr<ShardGroup> g = ShardGroup::Create(c, unsafe);
  EXPECT_TRUE(g.ok()) << g.status();
  return *std::move(g);
}

TEST(ShardGroupTest, Config_IsChecked) {
  ShardGroupConfig c;
  c.shards = 0;
  EXPECT_TRUE(absl::IsInvalidArgument(ShardGroup::Create(c).status()));
  c.shards = kMaxShardsPerGroup + 1;
  EXPECT_TRUE(absl::IsInvalidArgument(ShardGroup::Create(c).status()));
  c.shards = 8;
  c.max_in_motion = 0;
  EXPECT_TRUE(absl::IsInvalidArgument(ShardGroup::Create(c).status()));
  c.max_in_motion = 1;
  EXPECT_TRUE(ShardGroup::Create(c).ok());
}

TEST(ShardGroupTest, FirstJoin_TakesEveryShardAtOnce) {
  ShardGroup g = MakeGroup(8, 2);
  ASSERT_TRUE(g.Join({"p1", "a", 1}).ok());
  for (const ShardState& s : g.shards()) {
    EXPECT_EQ(s.owner, "p1");
    EXPECT_EQ(s.epoch, 1u);
    EXPECT_EQ(s.phase, ShardPhase::kOwned);
  }
  EXPECT_EQ(g.changed().size(), 8u);
}

TEST(ShardGroupTest, PlannedJoin_DrainsBeforeTheShardMoves) {
  ShardGroup g = MakeGroup(8, 2);
  ASSERT_TRUE(g.Join({"p1", "a", 1}).ok());
  ASSERT_TRUE(g.Join({"p2", "a", 1}).ok());
  // Four shards should move; two (K) are revoking, and still p1's.
  std::vector<uint32_t> revoking;
  for (uint32_t s = 0; s < 8; ++s) {
    const ShardState& st = g.shards()[s];
    EXPECT_EQ(st.owner, "p1");
    if (st.phase == ShardPhase::kRevoking) {
      EXPECT_EQ(st.next, "p2");
      revoking.push_back(s);
    }
  }
  ASSERT_EQ(revoking.size(), 2u);
  const uint32_t s = revoking[0];
  // Only the owner, at its epoch, may release.
  EXPECT_TRUE(absl::IsFailedPrecondition(g.Release(s, "p2", 1)));
  EXPECT_TRUE(absl::IsFailedPrecondition(g.Release(s, "p1", 7)));
  EXPECT_TRUE(absl::IsInvalidArgument(g.Release(99, "p1", 1)));
  ASSERT_TRUE(g.Release(s, "p1", 1).ok());
  EXPECT_EQ(g.shards()[s].owner, "p2");
  EXPECT_EQ(g.shards()[s].epoch, 2u);
  EXPECT_EQ(g.in_motion(), 2u);  // the next one started
}

TEST(ShardGroupTest, DrainDeadline_HandsOverOnlyAfterTheOwnerAcknowledged) {
  ShardGroup g = MakeGroup(2, 1);
  ASSERT_TRUE(g.Join({"p1", "a", 1}).ok());
  ASSERT_TRUE(g.Join({"p2", "a", 1}).ok());
  uint32_t s = 0;
  while (g.shards()[s].phase != ShardPhase::kRevoking) ++s;
  EXPECT_TRUE(absl::IsFailedPrecondition(g.DrainExpired(s, 1)))
      << "a deadline counted before the owner knew";
  ASSERT_TRUE(g.AckRevoke(s, "p1", 1).ok());
  EXPECT_TRUE(absl::IsFailedPrecondition(g.DrainExpired(s, 2)));
  ASSERT_TRUE(g.DrainExpired(s, 1).ok());
  EXPECT_EQ(g.shards()[s].owner, "p2");
  EXPECT_EQ(g.shards()[s].epoch, 2u);
}

TEST(ShardGroupTest, SessionEnd_MovesItsShardsAtOnce) {
  ShardGroup g = MakeGroup(6, 1);
  ASSERT_TRUE(g.Join({"p1", "a", 1}).ok());
  ASSERT_TRUE(g.Join({"p2", "b", 1}).ok());
  g.SessionEnded("p1");
  for (const ShardState& st : g.shards()) {
    EXPECT_EQ(st.owner, "p2");
    EXPECT_EQ(st.phase, ShardPhase::kOwned);
  }
  EXPECT_EQ(g.members().count("p1"), 0u);
}

TEST(ShardGroupTest, Leave_RevokesAndForgetsTheProcessorAfterItsLastRelease) {
  ShardGroup g = MakeGroup(4, 4);
  ASSERT_TRUE(g.Join({"p1", "a", 1}).ok());
  ASSERT_TRUE(g.Join({"p2", "a", 1}).ok());
  for (uint32_t s = 0; s < 4; ++s) {
    const ShardState st = g.shards()[s];
    if (st.phase == ShardPhase::kRevoking) {
      ASSERT_TRUE(g.Release(s, st.owner, st.epoch).ok());
    }
  }
  ASSERT_TRUE(g.Leave("p1").ok());
  EXPECT_TRUE(absl::IsNotFound(g.Leave("p9")));
  EXPECT_EQ(g.members().count("p1"), 1u);  // still owns its shards
  for (uint32_t s = 0; s < 4; ++s) {
    const ShardState st = g.shards()[s];
    if (st.owner == "p1") {
      EXPECT_EQ(st.phase, ShardPhase::kRevoking);
      ASSERT_TRUE(g.Release(s, "p1", st.epoch).ok());
    }
  }
  EXPECT_EQ(g.members().count("p1"), 0u);
  for (const ShardState& st : g.shards()) EXPECT_EQ(st.owner, "p2");
}

TEST(ShardGroupTest, Limits_AreRefusedAndChangeNothing) {
  ShardGroupConfig c;
  c.shards = 4;
  c.max_processors = 2;
  ShardGroup g = *ShardGroup::Create(c);
  ASSERT_TRUE(g.Join({"p1", "a", 1}).ok());
  ASSERT_TRUE(g.Join({"p2", "a", 1}).ok());
  const std::vector<ShardState> before = g.shards();
  EXPECT_TRUE(absl::IsResourceExhausted(g.Join({"p3", "a", 1})));
  EXPECT_TRUE(absl::IsInvalidArgument(g.Join({"p4", "a", 0})));
  EXPECT_TRUE(absl::IsInvalidArgument(g.Join({"", "a", 1})));
  EXPECT_EQ(g.members().size(), 2u);
  for (uint32_t s = 0; s < 4; ++s) {
    EXPECT_EQ(g.shards()[s].owner, before[s].owner);
    EXPECT_EQ(g.shards()[s].epoch, before[s].epoch);
  }
  EXPECT_TRUE(g.Join({"p2", "b", 2}).ok()) << "a new zone or weight";
}

// One step of the random walk: what was done, to check the change by.
struct Step {
  enum Kind { kJoin, kLeave, kSessionEnded, kRelease, kAck, kDrain } kind;
  std::string id;
  uint32_t shard = 0;
  bool ok = false;  // the call succeeded
};

// What a step may change: a shard leaves its owner X only by X's release
// of it, an acknowledged drain deadline of it, or X's session ending; an
// epoch grows by exactly one with each new owner and never otherwise; no
// more than K shards are revoking; every owner is in the group.
std::vector<std::string> Violations(const std::vector<ShardState>& before,
                                    const ShardGroup& g, const Step& step) {
  std::vector<std::string> out;
  const std::vector<ShardState>& after = g.shards();
  for (uint32_t s = 0; s < after.size(); ++s) {
    const ShardState& b = before[s];
    const ShardState& a = after[s];
    const bool new_owner = a.phase != ShardPhase::kUnowned &&
                           (b.phase == ShardPhase::kUnowned ||
                            a.owner != b.owner || a.epoch != b.epoch);
    if (b.phase != ShardPhase::kUnowned &&
        (a.owner != b.owner || a.epoch != b.epoch)) {
      const bool allowed =
          step.ok &&
          ((step.kind == Step::kRelease && step.shard == s &&
            step.id == b.owner) ||
           (step.kind == Step::kDrain && step.shard == s && b.acked) ||
           (step.kind == Step::kSessionEnded && step.id == b.owner));
      if (!allowed) {
        out.push_back(absl::StrCat("shard ", s, " left '", b.owner,
                                   "' without a release, an acknowledged "
                                   "drain or the end of its session"));
      }
    }
    if (a.epoch < b.epoch)
      out.push_back(absl::StrCat("shard ", s, ": epoch fell"));
    if (new_owner && a.epoch != b.epoch + 1) {
      out.push_back(absl::StrCat("shard ", s, ": a new owner at epoch ",
                                 a.epoch, " after ", b.epoch));
    }
    if (!new_owner && a.epoch != b.epoch) {
      out.push_back(absl::StrCat("shard ", s, ": epoch changed, owner not"));
    }
    if (!a.owner.empty() && g.members().count(a.owner) == 0) {
      out.push_back(absl::StrCat("shard ", s, ": owner '", a.owner,
                                 "' is not in the group"));
    }
  }
  if (g.in_motion() > g.config().max_in_motion) {
    out.push_back(absl::StrCat(g.in_motion(), " shards revoking, K is ",
                               g.config().max_in_motion));
  }
  return out;
}

// Random steps on a group built with `unsafe`; returns every violation.
std::vector<std::string> Walk(uint64_t seed, ShardGroup::Unsafe unsafe,
                              bool check_liveness) {
  std::mt19937_64 rng(seed);
  auto pick = [&](uint64_t lo, uint64_t hi) {
    return std::uniform_int_distribution<uint64_t>(lo, hi)(rng);
  };
  const uint32_t shards = static_cast<uint32_t>(pick(1, 64));
  ShardGroup g = MakeGroup(shards, static_cast<uint32_t>(pick(1, 6)), unsafe);
  std::vector<std::string> out;
  int next_id = 0;
  for (int i = 0; i < 200; ++i) {
    const std::vector<ShardState> before = g.shards();
    Step step;
    step.kind = static_cast<Step::Kind>(pick(0, 5));
    std::vector<std::string> ids;
    for (const auto& [id, m] : g.members()) ids.push_back(id);
    const std::string some =
        ids.empty() ? "none" : ids[pick(0, ids.size() - 1)];
    step.shard = static_cast<uint32_t>(pick(0, shards - 1));
    const ShardState st = g.shards()[step.shard];
    switch (step.kind) {
      case Step::kJoin:
        step.id = absl::StrCat("p", next_id++);
        step.ok = g.Join({step.id, absl::StrCat("z", pick(0, 2)),
                          static_cast<uint32_t>(pick(1, 3))})
                      .ok();
        break;
      case Step::kLeave:
        step.id = some;
        step.ok = g.Leave(some).ok();
        break;
      case Step::kSessionEnded:
        step.id = some;
        step.ok = g.members().count(some) > 0;
        g.SessionEnded(some);
        break;
      case Step::kRelease:
        step.id = st.owner;
        step.ok = g.Release(step.shard, st.owner, st.epoch).ok();
        break;
      case Step::kAck:
        step.id = st.owner;
        step.ok = g.AckRevoke(step.shard, st.owner, st.epoch).ok();
        break;
      case Step::kDrain:
        step.ok = g.DrainExpired(step.shard, st.epoch).ok();
        break;
    }
    for (std::string& v : Violations(before, g, step)) {
      out.push_back(absl::StrCat("seed ", seed, " step ", i, ": ", v));
    }
  }
  if (!check_liveness) return out;
  // Owners do as asked: every revoked shard is released, until none is.
  for (int round = 0; round < 10000 && g.in_motion() > 0; ++round) {
    for (uint32_t s = 0; s < shards; ++s) {
      const ShardState st = g.shards()[s];
      if (st.phase == ShardPhase::kRevoking) {
        (void)g.Release(s, st.owner, st.epoch);
      }
    }
  }
  std::vector<ShardProcessor> active;
  for (const auto& [id, m] : g.members()) {
    if (!m.leaving) active.push_back(m.processor);
  }
  std::vector<std::string> owners;
  for (const ShardState& st : g.shards()) owners.push_back(st.owner);
  const ShardAssignment target = AssignShards(shards, active, owners);
  if (g.in_motion() != 0 || target.moved != 0) {
    out.push_back(absl::StrCat("seed ", seed, ": did not settle (",
                               g.in_motion(), " revoking, ", target.moved,
                               " shards away from their target)"));
  }
  for (const ShardState& st : g.shards()) {
    if (!active.empty() && st.phase != ShardPhase::kOwned) {
      out.push_back(absl::StrCat("seed ", seed, ": a shard has no owner"));
      break;
    }
  }
  return out;
}

TEST(ShardGroupTest, RandomWalks_KeepEveryRuleAndSettle) {
  for (uint64_t seed = 1; seed <= 300; ++seed) {
    const std::vector<std::string> v = Walk(seed, {}, true);
    ASSERT_TRUE(v.empty()) << v.size() << " violations, first: " << v[0];
  }
}

TEST(ShardGroupTest, HandingOverWithoutTheDrain_IsCaught) {
  ShardGroup::Unsafe unsafe;
  unsafe.skip_drain = true;
  size_t caught = 0;
  for (uint64_t seed = 1; seed <= 50; ++seed) {
    caught += Walk(seed, unsafe, false).size();
  }
  EXPECT_GT(caught, 0u);
}

TEST(ShardGroupTest, NotBumpingTheEpoch_IsCaught) {
  ShardGroup::Unsafe unsafe;
  unsafe.keep_epoch = true;
  size_t caught = 0;
  for (uint64_t seed = 1; seed <= 50; ++seed) {
    caught += Walk(seed, unsafe, false).size();
  }
  EXPECT_GT(caught, 0u);
}

}  // namespace
}  // namespace quorate::coord
