// coord/kv.h: the replicated key-value store, a node::StateMachine.
//
// Every member applies the same committed commands (client.proto KvCommand)
// in the same order and so holds the same map. Each successful write
// (put, delete of a present key, compare-and-set that matched) increases
// the cluster revision by one, and the key remembers that revision.
//
// Duplicate operations: a command carries OpId{client, seq}. The store
// keeps, per client, the results of its last kSessionWindow operations; a
// command whose op was already applied returns the stored result and
// changes nothing, so a client may retry a write whose outcome it does not
// know. An op older than the window is refused with UNKNOWN: the store can
// no longer tell whether it was applied before. At most kMaxSessions clients
// are remembered; the one used longest ago is forgotten first (by log index, so
// every member forgets the same one).
//
// Apply() runs on the node loop; Get() and revision() may be called from
// any thread.
#ifndef QUORATE_COORD_KV_H_
#define QUORATE_COORD_KV_H_

#include <cstdint>
#include <map>
#include <optional>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "node/node.h"
#include "quorate/client.pb.h"
#include "util/mutex.h"

namespace quorate::coord {

inline constexpr size_t kMaxKeyBytes = 4096;
inline constexpr size_t kMaxValueBytes = 1 << 20;
inline constexpr size_t kSessionWindow = 4096;
inline constexpr size_t kMaxSessions = 10000;

// INVALID_ARGUMENT naming the limit, or OK.
absl::Status CheckKeyValue(absl::string_view key, absl::string_view value);

// The status a KvResult stands for.
absl::Status ResultStatus(const client::KvResult& result);

class KvStore final : public node::StateMachine {
 public:
  struct Value {
    std::string value;
    uint64_t revision = 0;
  };

  // node::StateMachine. Apply returns a serialized client::KvResult.
  std::string Apply(uint64_t index, const std::string& command) override;
  std::string Snapshot() const override;
  absl::Status Restore(const std::string& snapshot) override;

  std::optional<Value> Get(absl::string_view key) const;
  uint64_t revision() const;
  size_t sessions() const;

 private:
  struct Session {
    uint64_t last_used = 0;  // log index of its last operation
    uint64_t newest = 0;     // the highest seq applied
    // By seq. Holds every op within the window (seq + kSessionWindow >
    // newest); older ones linger until the map doubles, but are never
    // looked up.
    absl::flat_hash_map<uint64_t, client::KvResult> results;

    bool TooOld(uint64_t seq) const { return seq + kSessionWindow <= newest; }
  };

  client::KvResult Execute(const client::KvCommand& cmd)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Remember(uint64_t index, const client::OpId& op,
                const client::KvResult& result)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  mutable Mutex mu_;
  uint64_t revision_ ABSL_GUARDED_BY(mu_) = 0;
  // Hashed for speed; Snapshot() sorts, so snapshots stay identical on
  // every member.
  absl::flat_hash_map<std::string, Value> data_ ABSL_GUARDED_BY(mu_);
  std::map<uint64_t, Session> sessions_ ABSL_GUARDED_BY(mu_);
};

}  // namespace quorate::coord

#endif  // QUORATE_COORD_KV_H_
