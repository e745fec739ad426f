#include "coord/lessor.h"

#include <algorithm>
#include <limits>
#include <utility>

#include "absl/strings/str_cat.h"

namespace quorate::coord {
namespace {

constexpr int64_t kNsPerMs = 1'000'000;

absl::Status LeaseGone(uint64_t id) {
  return absl::NotFoundError(absl::StrCat(
      "lease ", id, " does not exist (it expired or was revoked)"));
}

}  // namespace

int64_t Lessor::FromElection(const Lease& lease) const {
  int64_t ttl = lease.ttl_ns;
  if (lease.checkpoint_ns >= 0 && !options_.unsafe.no_checkpoints) {
    ttl = std::min(ttl, lease.checkpoint_ns);
  }
  return elected_ns_ + ttl;
}

int64_t Lessor::SilenceForCheckpoint(const Lease& lease) const {
  return std::max(options_.checkpoint_interval_ns, lease.ttl_ns / 2);
}

void Lessor::StartLeading(Lease& lease, int64_t now_ns) const {
  lease.expires_ns = FromElection(lease);
  lease.renewed_until_ns = 0;
  // What renewals the last leader saw is not known here: count every lease
  // as silent long enough that its first checkpoint comes C after the
  // election (unless it is renewed first), so that every tenure advances
  // a dead holder's lease.
  lease.last_renewal_ns =
      now_ns - SilenceForCheckpoint(lease) + options_.checkpoint_interval_ns;
  lease.last_checkpoint_ns = now_ns;
  lease.expiring = false;
  lease.expiry_in_flight = false;
  lease.checkpoint_in_flight = false;
}

void Lessor::OnLeaseEvents(const std::vector<LeaseEvent>& events,
                           int64_t now_ns) {
  for (const LeaseEvent& e : events) {
    switch (e.kind) {
      case LeaseEvent::Kind::kReset:
        leases_.clear();
        break;
      case LeaseEvent::Kind::kGranted: {
        Lease& l = leases_[e.id];
        l = Lease{};
        l.ttl_ns = e.ttl_ms * kNsPerMs;
        l.checkpoint_ns = e.checkpoint_ms < 0 ? -1 : e.checkpoint_ms * kNsPerMs;
        if (leader_) {
          // Granted now (or, before catching up, by a predecessor: its
          // holder asked before this election).
          StartLeading(l, now_ns);
          l.renewed_until_ns = now_ns + l.ttl_ns;
          l.expires_ns = std::max(l.expires_ns, l.renewed_until_ns);
        }
        break;
      }
      case LeaseEvent::Kind::kRemoved:
        leases_.erase(e.id);
        break;
      case LeaseEvent::Kind::kCheckpoint:
        if (auto it = leases_.find(e.id); it != leases_.end()) {
          it->second.checkpoint_ns =
              e.checkpoint_ms < 0 ? -1 : e.checkpoint_ms * kNsPerMs;
        }
        break;
    }
  }
}

void Lessor::BecomeLeader(uint64_t term, int64_t now_ns) {
  leader_ = true;
  term_ = term;
  elected_ns_ = now_ns;
  caught_up_ = false;
  for (auto& [id, lease] : leases_) StartLeading(lease, now_ns);
}

std::vector<Lessor::Answer> Lessor::StepDown() {
  leader_ = false;
  std::vector<Answer> answers;
  answers.reserve(pending_.size());
  for (const Pending& p : pending_) {
    answers.push_back(Answer{
        p.lease, p.cookie,
        absl::UnavailableError("this member stopped leading; renew with the "
                               "new leader"),
        0});
  }
  pending_.clear();
  return answers;
}

absl::Status Lessor::Renew(uint64_t id, uint64_t cookie, int64_t now_ns) {
  if (!leader_) {
    return absl::UnavailableError(
        "this member is not the leader; only the leader renews leases");
  }
  auto it = leases_.find(id);
  if (it == leases_.end()) return LeaseGone(id);
  Lease& lease = it->second;
  if (lease.expiring) {
    return absl::NotFoundError(
        absl::StrCat("lease ", id, " is expiring: its TTL passed"));
  }
  if (pending_.size() >= options_.max_pending) {
    return absl::ResourceExhaustedError(
        absl::StrCat(pending_.size(), " renewals wait for a round already"));
  }
  lease.renewed_until_ns =
      std::max(lease.renewed_until_ns, now_ns + lease.ttl_ns);
  lease.expires_ns = std::max(lease.expires_ns, lease.renewed_until_ns);
  lease.last_renewal_ns = now_ns;
  pending_.push_back(Pending{id, cookie});
  return absl::OkStatus();
}

std::optional<Lessor::Round> Lessor::TakeRound() {
  if (!WantsRound()) return std::nullopt;
  Round round;
  round.id = next_round_++;
  round_ = round.id;
  round_term_ = term_;
  in_round_ = std::move(pending_);
  pending_.clear();
  if (!options_.unsafe.no_checkpoints) {
    for (const Pending& p : in_round_) {
      auto it = leases_.find(p.lease);
      if (it != leases_.end() && NeedsClear(it->second)) {
        round.clear.push_back(p.lease);
      }
    }
    std::sort(round.clear.begin(), round.clear.end());
    round.clear.erase(std::unique(round.clear.begin(), round.clear.end()),
                      round.clear.end());
  }
  return round;
}

std::vector<Lessor::Answer> Lessor::RoundDone(
    uint64_t round, const absl::StatusOr<node::Confirmation>& c) {
  if (round != round_ || round == 0) return {};
  round_ = 0;
  std::vector<Pending> renewals = std::move(in_round_);
  in_round_.clear();
  absl::Status all;
  if (!options_.unsafe.renew_without_round) {
    if (!c.ok()) {
      all = c.status();
    } else if (!leader_ || term_ != round_term_ || c->term != round_term_) {
      all = absl::UnavailableError(
          "leadership changed before the renewal was confirmed; renew with "
          "the new leader");
    } else if (c->applied < c->term_start) {
      all = absl::UnavailableError(
          "the new leader is still applying its predecessors' entries; renew "
          "again");
    }
  }
  if (c.ok() && leader_ && term_ == round_term_ && c->term == round_term_ &&
      c->applied >= c->term_start && !caught_up_) {
    // Every checkpoint a predecessor committed is applied: the election's
    // grants are known now.
    caught_up_ = true;
    for (auto& [id, lease] : leases_) {
      if (lease.expiring) continue;
      lease.expires_ns = std::max(lease.renewed_until_ns, FromElection(lease));
    }
  }
  std::vector<Answer> answers;
  answers.reserve(renewals.size());
  for (const Pending& p : renewals) {
    Answer a{p.lease, p.cookie, all, 0};
    if (a.status.ok()) {
      auto it = leases_.find(p.lease);
      if (it == leases_.end()) {
        a.status = LeaseGone(p.lease);
      } else if (it->second.expiring) {
        a.status = absl::NotFoundError(
            absl::StrCat("lease ", p.lease, " is expiring: its TTL passed"));
      } else if (!options_.unsafe.no_checkpoints && NeedsClear(it->second)) {
        a.status = absl::UnavailableError(absl::StrCat(
            "lease ", p.lease,
            " has a checkpoint that is being cleared; renew again"));
      } else {
        a.ttl_ms = it->second.ttl_ns / kNsPerMs;
      }
    }
    answers.push_back(std::move(a));
  }
  return answers;
}

std::vector<uint64_t> Lessor::TakeExpired(int64_t now_ns) {
  std::vector<uint64_t> ids;
  if (!leader_ || !caught_up()) return ids;
  for (auto& [id, lease] : leases_) {
    if (ids.size() >= options_.max_ids_per_command) break;
    if (lease.expiry_in_flight || lease.expires_ns > now_ns) continue;
    lease.expiring = true;
    lease.expiry_in_flight = true;
    ids.push_back(id);
  }
  return ids;
}

void Lessor::ExpiryDone(const std::vector<uint64_t>& ids, bool applied) {
  if (applied) return;  // the leases are gone (their kRemoved events)
  // Not applied, or not known to be: propose again. The leases stay
  // expiring: the command may still be applied, so no renewal may be
  // answered now.
  for (uint64_t id : ids) {
    if (auto it = leases_.find(id); it != leases_.end()) {
      it->second.expiry_in_flight = false;
    }
  }
}

Lessor::Checkpoint Lessor::TakeCheckpoints(int64_t now_ns) {
  Checkpoint out;
  if (!leader_ || !caught_up() || options_.unsafe.no_checkpoints) return out;
  const int64_t c = options_.checkpoint_interval_ns;
  for (auto& [id, lease] : leases_) {
    if (out.ids.size() >= options_.max_ids_per_command) break;
    if (lease.expiring || lease.checkpoint_in_flight ||
        now_ns - lease.last_renewal_ns < SilenceForCheckpoint(lease) ||
        now_ns - lease.last_checkpoint_ns < c) {
      continue;
    }
    lease.checkpoint_in_flight = true;
    lease.last_checkpoint_ns = now_ns;
    // Rounded up: a new leader must not give less than this leader would.
    const int64_t left = std::max<int64_t>(0, lease.expires_ns - now_ns);
    out.ids.push_back(id);
    out.remaining_ms.push_back((left + kNsPerMs - 1) / kNsPerMs);
  }
  return out;
}

void Lessor::CheckpointDone(const std::vector<uint64_t>& ids) {
  for (uint64_t id : ids) {
    if (auto it = leases_.find(id); it != leases_.end()) {
      it->second.checkpoint_in_flight = false;
    }
  }
}

absl::StatusOr<int64_t> Lessor::Remaining(uint64_t id, int64_t now_ns) const {
  if (!leader_) {
    return absl::UnavailableError(
        "this member is not the leader; only the leader times leases");
  }
  auto it = leases_.find(id);
  if (it == leases_.end()) return LeaseGone(id);
  if (it->second.expiring) return int64_t{0};
  return std::max<int64_t>(0, it->second.expires_ns - now_ns);
}

int64_t Lessor::NextDeadline() const {
  int64_t next = std::numeric_limits<int64_t>::max();
  if (!leader_ || !caught_up()) return next;
  const int64_t c = options_.checkpoint_interval_ns;
  for (const auto& [id, lease] : leases_) {
    if (!lease.expiry_in_flight) next = std::min(next, lease.expires_ns);
    if (!options_.unsafe.no_checkpoints && !lease.expiring &&
        !lease.checkpoint_in_flight) {
      next = std::min(
          next, std::max(lease.last_renewal_ns + SilenceForCheckpoint(lease),
                         lease.last_checkpoint_ns + c));
    }
  }
  return next;
}

client::KvCommand ExpiryCommand(const std::vector<uint64_t>& ids) {
  client::KvCommand cmd;
  for (uint64_t id : ids) cmd.mutable_lease_expire()->add_ids(id);
  return cmd;
}

client::KvCommand CheckpointCommand(const Lessor::Checkpoint& checkpoint) {
  client::KvCommand cmd;
  client::LeaseCheckpointCommand* c = cmd.mutable_lease_checkpoint();
  for (size_t i = 0; i < checkpoint.ids.size(); ++i) {
    c->add_ids(checkpoint.ids[i]);
    c->add_remaining_ms(checkpoint.remaining_ms[i]);
  }
  return cmd;
}

client::KvCommand ClearCommand(const std::vector<uint64_t>& ids) {
  client::KvCommand cmd;
  for (uint64_t id : ids) cmd.mutable_lease_checkpoint()->add_clear(id);
  return cmd;
}

absl::StatusOr<node::Confirmation> ClearRoundOutcome(
    uint64_t term, const absl::StatusOr<node::Applied>& applied) {
  // Applying the clear is the round: a quorum took it after the renewals
  // arrived, and this leader applied it (term_start 0: nothing to wait for).
  if (!applied.ok()) return applied.status();
  return node::Confirmation{term, 0, applied->index};
}

}  // namespace quorate::coord
