// coord/kv_service.h: the client API (client.proto `Kv`), served by every
// member on its listen address.
//
// Writes (Put, Delete, Cas) are proposed to the local node. A follower does
// not forward them: it answers UNAVAILABLE with the leader's address in the
// trailing metadata "quorate-leader", and the client retries there (one
// hop fewer for the common case of a client that already talks to the
// leader, and no request relayed by a member that may be cut off).
// Reads are linearizable by default: any member confirms a read point with
// the leader (ReadIndex), waits until it has applied it, and answers from
// its own state; `stale` reads answer from local state at once.
//
// Every call has a deadline: the client's, capped at 30 s, or 5 s when the
// client sets none. The handlers never block a gRPC thread: each finishes
// from the node loop when its proposal or read completes.
#ifndef QUORATE_COORD_KV_SERVICE_H_
#define QUORATE_COORD_KV_SERVICE_H_

#include <atomic>
#include <functional>

#include "coord/kv.h"
#include "node/node.h"
#include "quorate/client.grpc.pb.h"

namespace quorate::coord {

class KvService final : public client::Kv::CallbackService {
 public:
  explicit KvService(const KvStore* store) : store_(store) {}

  // The node to serve through; until it is set, calls get UNAVAILABLE.
  void SetNode(node::Node* node) { node_.store(node); }
  // What MemberStatus reports as the member's mode (the partition guard
  // lives above this layer). Set once, before serving.
  void SetModeSource(std::function<std::string()> mode) {
    mode_ = std::move(mode);
  }

  grpc::ServerUnaryReactor* Put(grpc::CallbackServerContext* context,
                                const client::PutRequest* request,
                                client::PutResponse* response) override;
  grpc::ServerUnaryReactor* Get(grpc::CallbackServerContext* context,
                                const client::GetRequest* request,
                                client::GetResponse* response) override;
  grpc::ServerUnaryReactor* Delete(grpc::CallbackServerContext* context,
                                   const client::DeleteRequest* request,
                                   client::DeleteResponse* response) override;
  grpc::ServerUnaryReactor* Cas(grpc::CallbackServerContext* context,
                                const client::CasRequest* request,
                                client::CasResponse* response) override;
  grpc::ServerUnaryReactor* MemberStatus(
      grpc::CallbackServerContext* context,
      const client::MemberStatusRequest* request,
      client::MemberStatusResponse* response) override;

 private:
  // Proposes `cmd` and finishes the call with the state machine's result
  // (`fill` writes a successful one into the response) or the error.
  grpc::ServerUnaryReactor* Write(
      grpc::CallbackServerContext* context, client::KvCommand cmd,
      std::function<void(const client::KvResult&)> fill);

  const KvStore* const store_;
  std::atomic<node::Node*> node_{nullptr};
  std::function<std::string()> mode_;
};

}  // namespace quorate::coord

#endif  // QUORATE_COORD_KV_SERVICE_H_
