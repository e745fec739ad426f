// coord/kv_service.h: the client API (client.proto `Kv`), served by every
// member on its listen address.
//
// Writes (Put, Delete, Cas, and transactions that write) are proposed to
// the local node. A follower does
// not forward them: it answers UNAVAILABLE with the leader's address in the
// trailing metadata "quorate-leader", and the client retries there (one
// hop fewer for the common case of a client that already talks to the
// leader, and no request relayed by a member that may be cut off).
// Reads are linearizable by default: any member confirms a read point with
// the leader (ReadIndex), waits until it has applied it, and answers from
// its own state; `stale` reads answer from local state at once. Range
// reads (and transactions that only read) follow the same rules.
//
// Watch streams are served by every member, from its own applied state
// (coord/watch.h).
//
// Every call has a deadline: the client's, capped at 30 s, or 5 s when the
// client sets none. Calls arrive on the transport's io thread
// (transport/cq.h) and never block it: each finishes from the node loop
// when its proposal or read completes.
#ifndef QUORATE_COORD_KV_SERVICE_H_
#define QUORATE_COORD_KV_SERVICE_H_

#include <atomic>
#include <functional>
#include <string>

#include "coord/fence_check.h"
#include "coord/kv.h"
#include "coord/lease_keeper.h"
#include "coord/watch.h"
#include "node/node.h"
#include "transport/cq.h"
#include "wire/client.grpc.pb.h"

namespace quorate::coord {

class KvService final : public transport::AsyncService {
 public:
  explicit KvService(const KvStore* store) : store_(store) {}

  // The node to serve through; until it is set, calls get UNAVAILABLE.
  void SetNode(node::Node* node) { node_.store(node); }
  // The transactions this member accepts (default: TxnLimits's). Set
  // once, before serving.
  void SetLimits(const TxnLimits& limits) { limits_ = limits; }
  // Leases: the member's keeper (renewals, time to live) and limits. Set
  // once, before serving; without a keeper, lease calls get UNAVAILABLE.
  void SetLeases(LeaseKeeper* keeper, const LeaseLimits& limits) {
    keeper_ = keeper;
    lease_limits_ = limits;
  }
  // Watches: the member's hub. Set once, before serving; without it,
  // Watch calls get UNAVAILABLE.
  void SetWatches(WatchHub* hub) { watches_ = hub; }
  // What MemberStatus reports as the member's mode (the partition guard
  // lives above this layer). Set once, before serving.
  void SetModeSource(std::function<std::string()> mode) {
    mode_ = std::move(mode);
  }

  // Txn and Range for a caller in this process (the etcd gateway,
  // api/etcd_gateway.h), without a gRPC call, with the same rules:
  // `done` gets the answer or the error, once, on any thread. A write is
  // proposed here only; `refused` says that it was not (this member is
  // not the leader, or is starting): send it to the leader instead.
  void LocalTxn(
      client::TxnRequest request, absl::Duration timeout,
      std::function<void(absl::StatusOr<client::TxnResponse>, bool refused)>
          done);
  void LocalRange(
      client::RangeRequest request, absl::Duration timeout,
      std::function<void(absl::StatusOr<client::RangeResponse>)> done);

  // A renewal, from a KeepAlive stream or a caller in this process (the
  // etcd gateway); `reply` gets its answer, once, on any thread
  // (UNAVAILABLE naming the leader if this member does not lead).
  void KeepAlive(const client::LeaseRenewal& request,
                 std::function<void(client::LeaseRenewalAnswer)> reply);

  // OK if every other member is heard to speak peer protocol `protocol`
  // or newer (transport/transport.h): a command that needs it is applied
  // the same way everywhere. FAILED_PRECONDITION naming the member that
  // does not (or has not been heard from) otherwise.
  absl::Status CheckPeersSpeak(uint32_t protocol) const;

  grpc::Service* grpc_service() override { return &service_; }
  void Start(transport::CallQueue* queue) override;

  // One call of a method (kv_service.cc).
  template <class Request, class Response>
  class Call;

 private:
  using PutCall = Call<client::PutRequest, client::PutResponse>;
  using GetCall = Call<client::GetRequest, client::GetResponse>;
  using DeleteCall = Call<client::DeleteRequest, client::DeleteResponse>;
  using CasCall = Call<client::CasRequest, client::CasResponse>;
  using RangeCall = Call<client::RangeRequest, client::RangeResponse>;
  using TxnCall = Call<client::TxnRequest, client::TxnResponse>;
  using StatusCall =
      Call<client::MemberStatusRequest, client::MemberStatusResponse>;
  using GrantCall = Call<client::LeaseGrantRequest, client::LeaseGrantResponse>;
  using RevokeCall =
      Call<client::LeaseRevokeRequest, client::LeaseRevokeResponse>;
  using TtlCall =
      Call<client::LeaseTimeToLiveRequest, client::LeaseTimeToLiveResponse>;
  using LeasesCall =
      Call<client::LeaseLeasesRequest, client::LeaseLeasesResponse>;
  using ShardCall = Call<client::ShardRequest, client::ShardResponse>;
  using FenceCall = Call<client::CheckFenceRequest, client::CheckFenceResponse>;
  using MemberListCall =
      Call<client::MemberListRequest, client::MemberListResponse>;
  using MemberChangeCall =
      Call<client::MemberChangeRequest, client::MemberChangeResponse>;
  using TransferCall =
      Call<client::TransferLeaderRequest, client::TransferLeaderResponse>;
  using CompactCall = Call<client::CompactRequest, client::CompactResponse>;
  // A bidirectional stream, and its two kinds (kv_service.cc).
  template <class Derived, class Request, class Response>
  class BidiCall;
  class KeepAliveStream;
  class WatchCall;
  class SnapshotStream;

  void Put(PutCall* call);
  void Get(GetCall* call);
  void Delete(DeleteCall* call);
  void Cas(CasCall* call);
  void MemberStatus(StatusCall* call);
  void Range(RangeCall* call);
  void Txn(TxnCall* call);
  void LeaseGrant(GrantCall* call);
  void LeaseRevoke(RevokeCall* call);
  void LeaseTimeToLive(TtlCall* call);
  void LeaseLeases(LeasesCall* call);
  void Shard(ShardCall* call);
  void CheckFence(FenceCall* call);
  void MemberList(MemberListCall* call);
  void MemberChange(MemberChangeCall* call);
  void TransferLeader(TransferCall* call);
  void Compact(CompactCall* call);
  // The limits the state machine applies to this member's commands.
  client::CommandLimits CommandLimits() const;
  // Refuses `call` UNAVAILABLE, naming the leader (as a follower's writes).
  template <class C>
  void NotLeader(C* call, const absl::Status& status);
  // Proposes `cmd` and finishes the call with the state machine's result
  // (a success's revision goes into the response) or the error.
  template <class C>
  void Write(C* call, const client::KvCommand& cmd);
  // Answers DEADLINE_EXCEEDED (refused: nothing done) if the client's
  // deadline has already passed; false otherwise.
  template <class C>
  bool RefuseIfExpired(C* call);
  // The node to read through; nullptr after finishing `call` (the member
  // is starting, or the call's deadline passed).
  template <class C>
  node::Node* NodeForRead(C* call);
  // Finishes the call after answer() fills its response, or with the error
  // it returns: at a read point (linearizable), or at once if `stale`.
  template <class C, class Answer>
  void Read(C* call, bool stale, Answer answer);

  const KvStore* const store_;
  client::Kv::AsyncService service_;
  transport::CallQueue* queue_ = nullptr;  // set by Start()
  TxnLimits limits_;
  LeaseKeeper* keeper_ = nullptr;
  LeaseLimits lease_limits_;
  WatchHub* watches_ = nullptr;
  std::atomic<node::Node*> node_{nullptr};
  std::function<std::string()> mode_;
};

}  // namespace quorate::coord

#endif  // QUORATE_COORD_KV_SERVICE_H_
