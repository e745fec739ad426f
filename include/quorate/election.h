// quorate/election.h: named elections and locks, held by a session.
//
//   auto session = (*client)->StartSession({.ttl = absl::Seconds(2)});
//   auto lock = quorate::Lock::Create(client->get(), session->get(),
//   "billing"); if ((*lock)->Acquire(absl::Seconds(30)).ok()) {
//     uint64_t token;
//     while ((*lock)->Held(&token)) {   // before each unit of work
//       db.WriteFenced("lock/billing", token, ...);  // the resource checks it
//     }
//     (*lock)->Release();
//   }
//
// The candidates are served in the order they entered. Each holds a key
// under "quorate/election/NAME/" (or "quorate/lock/NAME/") attached to its
// session's lease; the one created first leads. Its token is that key's
// create revision: it grows with every new leader of the name, so a
// resource that remembers the highest token it accepted refuses a deposed
// leader's late writes (fence name: fence_name()).
//
// IsLeader()/Held() is the check at use. It is true only while this
// campaign leads *and* the session is valid by the holder's own clock, and
// costs what Session::Valid() costs. No two holders of one name are ever
// both true at the same moment: the key goes only when its lease ends,
// after its holder's session stopped being valid, or when its holder
// resigns (docs/design.md, "Elections and locks"). An operator who deletes
// the key or revokes the lease by hand breaks that rule; the holder learns
// it from a watch, within a round trip.
//
// Errors: FAILED_PRECONDITION when the session is over (a campaign on an
// expired or revoked session is refused; it never starts) or when this
// campaign no longer leads (Proclaim); DEADLINE_EXCEEDED when the timeout
// passed first (the campaign is withdrawn); INVALID_ARGUMENT for a bad
// name; and the Client's errors (UNAVAILABLE, UNKNOWN) for calls that
// failed.
//
// Thread-safe. The Client and the Session must outlive them.
#ifndef QUORATE_ELECTION_H_
#define QUORATE_ELECTION_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "quorate/client.h"

namespace quorate {

// The leader of an election (or the holder of a lock), as read.
struct LeaderInfo {
  std::string value;   // what it proclaimed (a lock's holder: empty)
  uint64_t token = 0;  // its key's create revision
  uint64_t lease = 0;  // its session's lease
  std::string key;
};

class Election {
 public:
  // An election named `name` (one path element: no '/'), campaigned in by
  // `session`.
  static absl::StatusOr<std::unique_ptr<Election>> Create(
      Client* client, Session* session, absl::string_view name);
  // Resigns if this campaign was entered (best effort).
  virtual ~Election() = default;

  // Enters the election with `value` and waits until this session leads.
  // On DEADLINE_EXCEEDED or a failure the campaign is withdrawn: calling
  // again queues anew, behind whoever came meanwhile (so do not wait in
  // short slices; to give up from another thread, end the session).
  // Campaign while leading answers OK at once (the value is not changed:
  // Proclaim).
  virtual absl::Status Campaign(
      absl::string_view value,
      absl::Duration timeout = absl::InfiniteDuration()) = 0;
  // Whether this campaign leads now, and its token.
  virtual bool IsLeader(uint64_t* token = nullptr) const = 0;
  // The leader changes its value (observers see it); FAILED_PRECONDITION
  // unless this campaign leads.
  virtual absl::Status Proclaim(absl::string_view value) = 0;
  // Stops leading (or waiting): IsLeader() is false before the call
  // returns, whatever the cluster answers.
  virtual absl::Status Resign() = 0;
  // "election/NAME": the fence name a resource files the token under.
  virtual std::string fence_name() const = 0;
};

// The current leader of election `name`; NOT_FOUND if it has none.
absl::StatusOr<LeaderInfo> ElectionLeader(Client* client,
                                          absl::string_view name);

struct ObserveOptions {
  // Called on the watch's thread, in order: the leader when the watch
  // starts, then at every change of leader or of its value, without
  // skipping any. nullopt: no one leads.
  std::function<void(const std::optional<LeaderInfo>& leader)> on_leader;
  // As WatchOptions::on_end.
  std::function<void(const absl::Status& why)> on_end;
};

// Watches election `name`'s leadership (a Watcher: Cancel() stops it).
absl::StatusOr<std::unique_ptr<Watcher>> ObserveElection(
    Client* client, absl::string_view name, ObserveOptions options);

class Lock {
 public:
  // A lock named `name` (one path element), taken by `session`.
  static absl::StatusOr<std::unique_ptr<Lock>> Create(Client* client,
                                                      Session* session,
                                                      absl::string_view name);
  // Releases it if held or waited for (best effort).
  virtual ~Lock() = default;

  // Waits for the lock, in the order the waiters came. DEADLINE_EXCEEDED:
  // the timeout passed first and this session no longer waits (calling
  // again queues anew, at the back).
  virtual absl::Status Acquire(
      absl::Duration timeout = absl::InfiniteDuration()) = 0;
  // Whether this session holds the lock now, and its token.
  virtual bool Held(uint64_t* token = nullptr) const = 0;
  // Held() is false before the call returns, whatever the cluster answers.
  virtual absl::Status Release() = 0;
  // "lock/NAME".
  virtual std::string fence_name() const = 0;
};

}  // namespace quorate

#endif  // QUORATE_ELECTION_H_
