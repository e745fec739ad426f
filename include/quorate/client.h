// quorate/client.h: read and write a Quorate cluster's key-value store.
//
//   quorate::ClientOptions o;
//   o.endpoints = {"10.0.0.1:7000", "10.0.0.2:7000", "10.0.0.3:7000"};
//   absl::StatusOr<std::unique_ptr<quorate::Client>> c =
//       quorate::Client::Create(o);
//   absl::StatusOr<uint64_t> rev = (*c)->Put("config/owner", "n2");
//   absl::StatusOr<quorate::KeyValue> kv = (*c)->Get("config/owner");
//   // Write only if nobody changed it since we read it:
//   rev = (*c)->CompareAndSet("config/owner", kv->revision, "n3");
//
// Any endpoint will do: the client follows the leader (members name it
// when they are not). Every call has a deadline (`timeout`).
//
// Errors:
//  - NOT_FOUND: Get/Delete of a key that does not exist.
//  - ABORTED: a compare-and-set whose expected revision did not match (the
//    message gives the current one): read again and start over.
//  - INVALID_ARGUMENT: an empty key, or a key or value over the limits
//    (4 KiB, 1 MiB).
//  - UNKNOWN: a write whose outcome is unknown. No leader confirmed it
//    before the deadline, and it may have been applied. Each write carries
//    an operation id and the cluster applies an id once, so calling again
//    is safe only through the same call's retries; a new call is a new
//    write. No other error is UNKNOWN.
//  - UNAVAILABLE: no leader answered before the deadline, and nothing was
//    applied (a read, or a write every member refused).
//  - RESOURCE_EXHAUSTED: more than `max_in_flight` calls at once.
//
// Thread-safe: share one Client between threads.
#ifndef QUORATE_CLIENT_H_
#define QUORATE_CLIENT_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "quorate/tls.h"

namespace quorate {

struct ClientOptions {
  std::vector<std::string> endpoints;         // HOST:PORT of any members
  absl::Duration timeout = absl::Seconds(2);  // per call, retries included
  size_t max_in_flight = 1024;
  // Mutual TLS, as the members' (quorate/tls.h; all empty: plaintext).
  TlsOptions tls;
};

struct KeyValue {
  std::string value;
  uint64_t revision = 0;       // the key's last write
  uint64_t read_revision = 0;  // the cluster revision the read saw
};

struct ClusterMember {
  std::string id;
  std::string zone;
  std::string address;
  std::string role;  // "" when the member did not answer
  uint64_t term = 0;
  std::string leader_id;
  uint64_t commit_index = 0;
  std::string mode;    // "active" or "paused" (the partition guard)
  absl::Status error;  // why it did not answer
};

class Client {
 public:
  static absl::StatusOr<std::unique_ptr<Client>> Create(ClientOptions options);
  virtual ~Client() = default;

  // Each returns the cluster revision its write created.
  virtual absl::StatusOr<uint64_t> Put(absl::string_view key,
                                       absl::string_view value) = 0;
  virtual absl::StatusOr<uint64_t> Delete(absl::string_view key) = 0;
  // `expected_revision` 0: the key must not exist.
  virtual absl::StatusOr<uint64_t> CompareAndSet(absl::string_view key,
                                                 uint64_t expected_revision,
                                                 absl::string_view value) = 0;
  // Linearizable: sees every write acknowledged before the call. `stale`:
  // whatever the member answering has applied (faster; may be behind).
  virtual absl::StatusOr<KeyValue> Get(absl::string_view key,
                                       bool stale = false) = 0;
  // Every member the cluster lists, each asked for its own view.
  virtual absl::StatusOr<std::vector<ClusterMember>> Members() = 0;
};

}  // namespace quorate

#endif  // QUORATE_CLIENT_H_
