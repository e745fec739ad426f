// api/etcd_internal.h: what the etcd gateway's parts (etcd_gateway.cc,
// etcd_watch.cc, etcd_election.cc) share: the translation of revisions,
// keys and errors, and the gateway's state.
#ifndef QUORATE_API_ETCD_INTERNAL_H_
#define QUORATE_API_ETCD_INTERNAL_H_

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "api/etcd_gateway.h"
#include "quorate/client.h"
#include "wire/client.grpc.pb.h"
#include "wire/etcd/election.grpc.pb.h"
#include "wire/etcd/lock.grpc.pb.h"
#include "wire/etcd/rpc.grpc.pb.h"

namespace quorate::api::etcd {

// Revisions (etcd_gateway.h): a store revision as etcd shows it, a key's
// create or mod revision (0 stays 0), and back (0: the current one).
inline int64_t StoreRev(uint64_t native) {
  return static_cast<int64_t>(native) + 1;
}
inline int64_t KeyRev(uint64_t native) {
  return native == 0 ? 0 : static_cast<int64_t>(native) + 1;
}
inline uint64_t NativeRev(int64_t etcd) {
  return etcd <= 1 ? 0 : static_cast<uint64_t>(etcd - 1);
}

void ToEtcd(const client::KeyValue& in, mvccpb::KeyValue* out);

// etcd's own error texts, which its clients match (the Go client turns
// them back into typed errors).
inline constexpr char kErrCompacted[] =
    "etcdserver: mvcc: required revision has been compacted";
inline constexpr char kErrFutureRev[] =
    "etcdserver: mvcc: required revision is a future revision";
inline constexpr char kErrLeaseNotFound[] =
    "etcdserver: requested lease not found";
inline constexpr char kErrEmptyKey[] = "etcdserver: key is not provided";

// A status of the client API as etcd would answer it.
grpc::Status ToEtcdStatus(const absl::Status& status);

}  // namespace quorate::api::etcd

namespace quorate::api {

// The gateway's state, shared by its services.
struct EtcdGateway::Impl {
  explicit Impl(EtcdGatewayOptions options);

  // The client, once started; nullptr before (the caller answers
  // UNAVAILABLE: NotStarted()).
  Client* client() const {
    return started.load(std::memory_order_acquire) ? client_.get() : nullptr;
  }
  static grpc::Status NotStarted() {
    return grpc::Status(grpc::StatusCode::UNAVAILABLE,
                        "etcdserver: the member is starting");
  }
  // A header from this member, at native store revision `revision`.
  void Fill(etcdserverpb::ResponseHeader* header, uint64_t revision) const;
  // At the member's own current revision.
  void FillNow(etcdserverpb::ResponseHeader* header) const;

  // A transaction and a range of the client API: served here when this
  // member can (options.kv_service), otherwise through the client.
  absl::Status Txn(client::TxnRequest t, client::TxnResponse* out) const;
  absl::Status Range(const client::RangeRequest& r,
                     client::RangeResponse* out) const;

  const EtcdGatewayOptions options;
  const uint64_t cluster_id;
  const uint64_t member_id;
  std::unique_ptr<Client> client_;  // set once, before `started`
  std::string self;                 // this member's address
  std::atomic<bool> started{false};

  std::unique_ptr<grpc::Service> kv, watch, lease, cluster, maintenance,
      election, lock;
};

namespace etcd {
// A range through the gateway, every page of it: answers are cut at 3 MiB
// (coord/kv.h); in key order the rest is read from the same revision, as
// etcd answers whole. (In other orders the first 3 MiB.)
absl::Status RangeWhole(const EtcdGateway::Impl& g, client::RangeRequest r,
                        client::RangeResponse* out);

// The services (each in its file), over `gateway`.
std::unique_ptr<grpc::Service> NewWatchService(EtcdGateway::Impl* gateway);
std::unique_ptr<grpc::Service> NewElectionService(EtcdGateway::Impl* gateway);
std::unique_ptr<grpc::Service> NewLockService(EtcdGateway::Impl* gateway);
}  // namespace etcd

}  // namespace quorate::api

#endif  // QUORATE_API_ETCD_INTERNAL_H_
