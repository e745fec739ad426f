#include "raft/invariants.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace quorate::raft::testing {

void Invariants::Fail(std::string what) {
  if (violation_.empty()) violation_ = std::move(what);
}

void Invariants::Observe(uint64_t id, const Raft& r) {
  MemberState& m = members_[id];
  if (r.term() < m.max_term) {
    Fail(absl::StrCat("member ", id, " term went back from ", m.max_term,
                      " to ", r.term()));
  }
  if (r.commit() < m.max_commit) {
    Fail(absl::StrCat("member ", id, " commit went back from ", m.max_commit,
                      " to ", r.commit()));
  }
  m.max_term = std::max(m.max_term, r.term());
  m.max_commit = std::max(m.max_commit, r.commit());
  if (r.role() == Role::kLeader) {
    auto [it, inserted] = leaders_.emplace(r.term(), id);
    if (!inserted && it->second != id) {
      Fail(absl::StrCat("election safety: members ", it->second, " and ", id,
                        " both led term ", r.term()));
    }
  }
}

void Invariants::OnRestart(uint64_t id, const Raft& r) {
  MemberState& m = members_[id];
  if (r.term() < m.max_durable_term) {
    Fail(absl::StrCat("member ", id, " restarted in term ", r.term(),
                      " after making term ", m.max_durable_term, " durable"));
  }
  m.max_term = r.term();
  m.max_commit = r.commit();
  Observe(id, r);
}

void Invariants::OnApplied(uint64_t id, const Entry& e, uint64_t term_now) {
  auto [it, inserted] =
      applied_.emplace(e.index(), Applied{e.term(), e.data(), term_now});
  if (inserted) return;
  it->second.committed_by_term =
      std::min(it->second.committed_by_term, term_now);
  if (it->second.term != e.term() || it->second.data != e.data()) {
    Fail(absl::StrCat("state machine safety: member ", id, " applied term ",
                      e.term(), " at index ", e.index(),
                      " where another member applied term ", it->second.term));
  }
}

void Invariants::OnPersisted(uint64_t id, const HardState& hs) {
  MemberState& m = members_[id];
  if (hs.commit() < m.max_durable_commit) {
    Fail(absl::StrCat("member ", id, " durable commit went back from ",
                      m.max_durable_commit, " to ", hs.commit()));
  }
  m.max_durable_commit = std::max(m.max_durable_commit, hs.commit());
  if (hs.term() < m.max_durable_term) {
    Fail(absl::StrCat("member ", id, " durable term went back from ",
                      m.max_durable_term, " to ", hs.term()));
  }
  m.max_durable_term = std::max(m.max_durable_term, hs.term());
  if (hs.vote() == 0) return;
  auto [it, inserted] = m.votes.emplace(hs.term(), hs.vote());
  if (!inserted && it->second != hs.vote()) {
    Fail(absl::StrCat("member ", id, " voted twice in term ", hs.term(),
                      ": for ", it->second, " and for ", hs.vote()));
  }
}

void Invariants::CheckLogs(
    const std::vector<std::pair<uint64_t, const Raft*>>& live) {
  for (const auto& [id, r] : live) {
    if (r->role() != Role::kLeader) continue;
    const RaftLog& log = r->log();
    for (const auto& [index, applied] : applied_) {
      if (index <= log.snapshot_index()) continue;
      if (r->term() <= applied.committed_by_term) continue;
      if (!log.MatchTerm(index, applied.term)) {
        Fail(absl::StrCat("leader completeness: leader ", id, " of term ",
                          r->term(), " lacks entry ", index, " (term ",
                          applied.term, ") committed by term ",
                          applied.committed_by_term));
        return;
      }
    }
  }
  for (size_t a = 0; a < live.size(); ++a) {
    for (size_t b = a + 1; b < live.size(); ++b) {
      const RaftLog& la = live[a].second->log();
      const RaftLog& lb = live[b].second->log();
      const uint64_t lo = std::max(la.first_index(), lb.first_index());
      const uint64_t hi = std::min(la.last_index(), lb.last_index());
      // The highest index where both hold the same term: everything up to
      // it must agree.
      for (uint64_t i = hi; i >= lo && i > 0; --i) {
        if (la.At(i).term() != lb.At(i).term()) continue;
        for (uint64_t j = lo; j <= i; ++j) {
          if (la.At(j).term() != lb.At(j).term() ||
              la.At(j).data() != lb.At(j).data()) {
            Fail(absl::StrCat("log matching: members ", live[a].first, " and ",
                              live[b].first, " share entry ", i, " (term ",
                              la.At(i).term(), ") but differ at ", j));
            return;
          }
        }
        break;
      }
    }
  }
}

}  // namespace quorate::raft::testing
