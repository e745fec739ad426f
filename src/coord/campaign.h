// coord/campaign.h: named elections and locks on the key-value store, pure:
// the transactions a campaigner sends and what their answers mean. No
// clock, no thread, no I/O. quorate::Election and quorate::Lock run it on
// the client's threads; the simulator runs it for its simulated processes.
//
// A campaigner holds a session (a lease). It enters the campaign by
// creating its key, PREFIX + the lease in hex, attached to the lease; the
// key's create revision is its token. The candidates are served in the
// order they entered: the one whose key has the lowest create revision
// leads (holds the lock). The others wait for the key just before theirs
// to go, then look again.
//
// Why "leads" stays true without asking again (docs/design.md, "Elections
// and locks"): create revisions only grow, so no key created later can come
// before ours; ours leads until it is deleted. It is deleted only by its
// holder (Resign), or when its lease ends, and a lease ends only after
// its holder's session stopped being valid (coord/lease_holder.h). So
// "leads and the session is valid" is true of at most one campaigner at
// any real time, and checking it costs what Session::Valid() costs. An
// operator who deletes the key or revokes the lease by hand steps outside
// this argument: the holder learns of it through its watch, later.
#ifndef QUORATE_COORD_CAMPAIGN_H_
#define QUORATE_COORD_CAMPAIGN_H_

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "wire/client.pb.h"

namespace quorate::coord {

enum class CampaignKind { kElection, kLock };

// OK if `name` is one non-empty path element (no '/', no NUL): the rule
// for election, lock and workload names. INVALID_ARGUMENT naming `what`
// otherwise.
absl::Status CheckName(absl::string_view what, absl::string_view name);
// "quorate/election/NAME/" or "quorate/lock/NAME/"; CheckName's errors.
absl::StatusOr<std::string> CampaignPrefix(CampaignKind kind,
                                           absl::string_view name);
// A campaigner's key: the prefix, then its lease in 16 hex digits.
std::string CampaignKey(absl::string_view prefix, uint64_t lease);
// The fence name of a campaign (quorate/fence.h's form): "election/NAME"
// or "lock/NAME".
std::string CampaignFenceName(CampaignKind kind, absl::string_view name);

// Enters the campaign: creates `key` with `value`, attached to `lease`,
// unless it exists; either way reads the standing (see ReadStanding).
// Refused with NOT_FOUND when the lease is gone: a campaign on an expired
// or revoked session never starts.
client::TxnRequest EnterTxn(absl::string_view prefix, absl::string_view key,
                            absl::string_view value, uint64_t lease);
// Reads the standing, writing nothing.
client::TxnRequest StandingTxn(absl::string_view prefix, absl::string_view key);
// Changes the leader's value, if `key` is still the one created at `token`.
client::TxnRequest ProclaimTxn(absl::string_view key, absl::string_view value,
                               uint64_t lease, uint64_t token);
// Leaves the campaign: deletes `key` if it is the one created at `token`.
client::TxnRequest ResignTxn(absl::string_view key, uint64_t token);
// Leaves a campaign whose token was never read (an entry of unknown
// outcome): deletes `key` if it is attached to `lease`.
client::TxnRequest WithdrawTxn(absl::string_view key, uint64_t lease);

// Where a campaigner stands, as of one revision.
struct Standing {
  uint64_t revision = 0;  // the read's
  bool present = false;   // its key exists
  uint64_t token = 0;     // the key's create revision (when present)
  bool leads = false;     // no key under the prefix was created before it
  // When present and not leading: the key created just before it, which it
  // waits on, and that key's create revision.
  std::string predecessor;
  uint64_t predecessor_token = 0;
};

// Reads the answer to EnterTxn or StandingTxn. INTERNAL if the
// answer does not have the ranges those transactions ask for (a replayed
// EnterTxn has none: send StandingTxn).
absl::StatusOr<Standing> ReadStanding(const client::TxnResponse& response);

// A leader, as an observer sees it: the first candidate under a prefix.
struct Leader {
  std::string key;
  std::string value;
  uint64_t token = 0;  // its create revision
  uint64_t lease = 0;
  bool operator==(const Leader&) const = default;
};

// The candidates under one prefix, kept from a range read and the watch
// events after it: what an observer needs to see every change of leader,
// in order. A watch delivers every revision's events, so applying each
// revision's events and asking Leader() after each misses no leader.
class CandidateSet {
 public:
  // The prefix's keys as of one read (values included).
  void Reset(const google::protobuf::RepeatedPtrField<client::KeyValue>& kvs);
  // One event of a watch on the prefix.
  void Put(const client::KeyValue& kv);
  void Delete(absl::string_view key);
  // The first candidate, if any.
  std::optional<Leader> First() const;
  size_t size() const { return by_token_.size(); }

 private:
  std::map<uint64_t, Leader> by_token_;                    // by create revision
  std::map<std::string, uint64_t, std::less<>> token_of_;  // key -> token
};

// What an election's observer reports (ObserveElection, and the
// simulator's observers): the first candidate as of a read, then again
// after each revision's events, whenever it changed. Fed every revision
// one at a time, it reports every leader, in order.
class LeaderWatch {
 public:
  // The prefix's keys as of one read; the first candidate then.
  std::optional<Leader> Reset(
      const google::protobuf::RepeatedPtrField<client::KeyValue>& kvs);
  // One revision's events on the prefix. True if the first candidate
  // changed: then `*now` is the new one (or none).
  bool Revision(const std::vector<client::WatchEvent>& events,
                std::optional<Leader>* now);

 private:
  CandidateSet candidates_;
  std::optional<Leader> shown_;
};

}  // namespace quorate::coord

#endif  // QUORATE_COORD_CAMPAIGN_H_
