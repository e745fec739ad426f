#include "coord/campaign.h"

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "coord/kv.h"

namespace quorate::coord {
namespace {

// The prefix's keys, oldest candidate first, without values.
client::RequestOp CandidatesRange(absl::string_view prefix) {
  client::RequestOp op;
  client::RangeRequest* r = op.mutable_range();
  r->set_key(std::string(prefix));
  r->set_range_end(PrefixEnd(prefix));
  r->set_sort_target(client::RangeRequest::CREATE);
  r->set_sort_order(client::RangeRequest::ASCEND);
  r->set_keys_only(true);
  return op;
}

client::RequestOp KeyRange(absl::string_view key) {
  client::RequestOp op;
  op.mutable_range()->set_key(std::string(key));
  op.mutable_range()->set_keys_only(true);
  return op;
}

client::Compare CreatedAt(absl::string_view key, uint64_t revision) {
  client::Compare c;
  c.set_key(std::string(key));
  c.set_target(client::Compare::CREATE);
  c.set_result(client::Compare::EQUAL);
  c.set_create_revision(static_cast<int64_t>(revision));
  return c;
}

}  // namespace

absl::Status CheckName(absl::string_view what, absl::string_view name) {
  if (name.empty() || absl::StrContains(name, '/') ||
      absl::StrContains(name, '\0')) {
    return absl::InvalidArgumentError(
        absl::StrCat(what,
                     " is one non-empty path element, without '/' or NUL; "
                     "got '",
                     name, "'"));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> CampaignPrefix(CampaignKind kind,
                                           absl::string_view name) {
  if (absl::Status s = CheckName("an election or lock name", name); !s.ok()) {
    return s;
  }
  return absl::StrCat(
      kind == CampaignKind::kElection ? "quorate/election/" : "quorate/lock/",
      name, "/");
}

std::string CampaignKey(absl::string_view prefix, uint64_t lease) {
  return absl::StrFormat("%s%016x", prefix, lease);
}

std::string CampaignFenceName(CampaignKind kind, absl::string_view name) {
  return absl::StrCat(kind == CampaignKind::kElection ? "election/" : "lock/",
                      name);
}

client::TxnRequest EnterTxn(absl::string_view prefix, absl::string_view key,
                            absl::string_view value, uint64_t lease) {
  client::TxnRequest t;
  *t.add_compare() = CreatedAt(key, 0);  // the key does not exist
  client::PutRequest* put = t.add_success()->mutable_put();
  put->set_key(std::string(key));
  put->set_value(std::string(value));
  put->set_lease(lease);
  for (auto* branch : {t.mutable_success(), t.mutable_failure()}) {
    *branch->Add() = KeyRange(key);
    *branch->Add() = CandidatesRange(prefix);
  }
  return t;
}

client::TxnRequest StandingTxn(absl::string_view prefix,
                               absl::string_view key) {
  client::TxnRequest t;
  *t.add_success() = KeyRange(key);
  *t.add_success() = CandidatesRange(prefix);
  return t;
}

client::TxnRequest ProclaimTxn(absl::string_view key, absl::string_view value,
                               uint64_t lease, uint64_t token) {
  client::TxnRequest t;
  *t.add_compare() = CreatedAt(key, token);
  client::PutRequest* put = t.add_success()->mutable_put();
  put->set_key(std::string(key));
  put->set_value(std::string(value));
  put->set_lease(lease);
  return t;
}

client::TxnRequest ResignTxn(absl::string_view key, uint64_t token) {
  client::TxnRequest t;
  *t.add_compare() = CreatedAt(key, token);
  t.add_success()->mutable_delete_range()->set_key(std::string(key));
  return t;
}

client::TxnRequest WithdrawTxn(absl::string_view key, uint64_t lease) {
  client::TxnRequest t;
  client::Compare* c = t.add_compare();
  c->set_key(std::string(key));
  c->set_target(client::Compare::LEASE);
  c->set_result(client::Compare::EQUAL);
  c->set_lease(static_cast<int64_t>(lease));
  t.add_success()->mutable_delete_range()->set_key(std::string(key));
  return t;
}

absl::StatusOr<Standing> ReadStanding(const client::TxnResponse& response) {
  // The two ranges are the last two answers of either branch.
  const int n = response.responses_size();
  if (n < 2 || !response.responses(n - 2).has_range() ||
      !response.responses(n - 1).has_range()) {
    return absl::InternalError(
        "the campaign's transaction came back without its reads");
  }
  const client::RangeResponse& mine = response.responses(n - 2).range();
  const client::RangeResponse& all = response.responses(n - 1).range();
  Standing s;
  s.revision = response.revision();
  if (mine.kvs_size() == 0) return s;
  s.present = true;
  s.token = mine.kvs(0).create_revision();
  s.leads = true;
  for (const client::KeyValue& kv : all.kvs()) {
    if (kv.create_revision() >= s.token) break;  // ascending
    s.leads = false;
    s.predecessor = kv.key();
    s.predecessor_token = kv.create_revision();
  }
  // An answer cut short (3 MiB of keys) may end before our key: then
  // predecessor is the last key it has, and waiting on it still serves the
  // candidates in order, only with more rounds.
  return s;
}

void CandidateSet::Reset(
    const google::protobuf::RepeatedPtrField<client::KeyValue>& kvs) {
  by_token_.clear();
  token_of_.clear();
  for (const client::KeyValue& kv : kvs) Put(kv);
}

void CandidateSet::Put(const client::KeyValue& kv) {
  auto it = token_of_.find(kv.key());
  if (it != token_of_.end() && it->second != kv.create_revision()) {
    by_token_.erase(it->second);  // deleted and created again in between
  }
  token_of_[kv.key()] = kv.create_revision();
  by_token_[kv.create_revision()] =
      Leader{kv.key(), kv.value(), kv.create_revision(), kv.lease()};
}

void CandidateSet::Delete(absl::string_view key) {
  auto it = token_of_.find(key);
  if (it == token_of_.end()) return;
  by_token_.erase(it->second);
  token_of_.erase(it);
}

std::optional<Leader> CandidateSet::First() const {
  if (by_token_.empty()) return std::nullopt;
  return by_token_.begin()->second;
}

std::optional<Leader> LeaderWatch::Reset(
    const google::protobuf::RepeatedPtrField<client::KeyValue>& kvs) {
  candidates_.Reset(kvs);
  shown_ = candidates_.First();
  return shown_;
}

bool LeaderWatch::Revision(const std::vector<client::WatchEvent>& events,
                           std::optional<Leader>* now) {
  for (const client::WatchEvent& e : events) {
    if (e.type() == client::WatchEvent::PUT) {
      candidates_.Put(e.kv());
    } else {
      candidates_.Delete(e.kv().key());
    }
  }
  std::optional<Leader> first = candidates_.First();
  if (first == shown_) return false;
  shown_ = first;
  *now = std::move(first);
  return true;
}

}  // namespace quorate::coord
