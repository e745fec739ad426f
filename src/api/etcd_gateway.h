// api/etcd_gateway.h: etcd's v3 gRPC API (proto/wire/etcd/), served by
// every member on its listen address beside Quorate's own client API, so
// that etcd's tools and client libraries work against Quorate unchanged.
//
// The gateway is a translator in front of the client API, not a second
// store: each etcd call becomes calls of client.proto's Kv service, made
// through a Client of the member's own (api/client.cc: retries, the leader
// followed, writes with an operation id so that a retry applies once). A
// follower therefore forwards writes to the leader, as etcd's members do.
// Watches are served from this member's own state (a Watch stream to
// itself). docs/etcd-compatibility.md lists every call and option and how
// it is served.
//
// Revisions: etcd's store starts at revision 1 (the first write makes
// revision 2); Quorate's starts at 0. The gateway adds 1 to every store
// revision it shows and takes 1 from every one it is given, so that an
// etcd client sees the numbers etcd would show. A key's create and mod
// revisions of 0 (no such key) stay 0.
//
// The calls are synchronous gRPC handlers: each holds a thread of gRPC's
// pool while it waits (a watch or keep-alive stream for its whole life).
//
// Threads: every method from any thread.
#ifndef QUORATE_API_ETCD_GATEWAY_H_
#define QUORATE_API_ETCD_GATEWAY_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "quorate/client.h"

namespace grpc {
class Service;
}
namespace quorate::coord {
class KvService;
}

namespace quorate::api {

// What the gateway reads of its own member (for response headers and
// Maintenance.Status).
struct EtcdLocalView {
  uint64_t term = 0;
  std::string leader_id;  // empty: none known
  uint64_t commit_index = 0;
  uint64_t applied_index = 0;
  bool learner = false;
  std::string version;    // the release (quorate::Version())
  uint64_t revision = 0;  // the store's, as applied here
};

struct EtcdGatewayOptions {
  std::string cluster_id;
  std::string member_id;
  // Leases: the members' floor (etcd raises a shorter TTL to its minimum,
  // and so does the gateway) in milliseconds.
  int64_t min_lease_ttl_ms = 1000;
  // Whether client addresses are shown as https:// (TLS on).
  bool tls = false;
  std::function<EtcdLocalView()> local;
  // The member's own client API, to serve a call here without a call over
  // the network when this member can (reads; writes at the leader). Null:
  // every call goes through the client.
  coord::KvService* kv_service = nullptr;
};

// The etcd-style numeric id of a Quorate member or cluster name: the
// same on every member (a 64-bit FNV-1a hash; never 0).
uint64_t EtcdId(std::string_view name);

class EtcdGateway {
 public:
  explicit EtcdGateway(EtcdGatewayOptions options);
  ~EtcdGateway();
  EtcdGateway(const EtcdGateway&) = delete;
  EtcdGateway& operator=(const EtcdGateway&) = delete;

  // The services to register with the member's gRPC server (owned by the
  // gateway, which must outlive the server).
  std::vector<grpc::Service*> services();

  // The client the gateway calls through, and this member's own address
  // (watches and snapshots are served from its state). Until it is set,
  // every call answers UNAVAILABLE. Once.
  void Start(std::unique_ptr<Client> client, std::string self_address);

  struct Impl;  // etcd_gateway.cc

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace quorate::api

#endif  // QUORATE_API_ETCD_GATEWAY_H_
