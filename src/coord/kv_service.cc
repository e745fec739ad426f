#include "coord/kv_service.h"

#include <chrono>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "util/grpc_status.h"

namespace quorate::coord {
namespace {

constexpr absl::Duration kDefaultTimeout = absl::Seconds(5);
constexpr absl::Duration kMaxTimeout = absl::Seconds(30);

// What is left of the client's deadline, within bounds.
absl::Duration Timeout(const grpc::CallbackServerContext* context) {
  const auto deadline = context->deadline();
  if (deadline == std::chrono::system_clock::time_point::max()) {
    return kDefaultTimeout;
  }
  const absl::Duration left = absl::FromChrono(deadline) - absl::Now();
  return std::min(std::max(left, absl::ZeroDuration()), kMaxTimeout);
}

grpc::ServerUnaryReactor* Finish(grpc::CallbackServerContext* context,
                                 const absl::Status& status) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(ToGrpcStatus(status));
  return reactor;
}

}  // namespace

grpc::ServerUnaryReactor* KvService::Write(
    grpc::CallbackServerContext* context, client::KvCommand cmd,
    std::function<void(const client::KvResult&)> fill) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  node::Node* node = node_.load();
  if (node == nullptr) {
    context->AddTrailingMetadata("quorate-refused", "1");
    reactor->Finish(
        grpc::Status(grpc::StatusCode::UNAVAILABLE, "the member is starting"));
    return reactor;
  }
  node->Propose(
      cmd.SerializeAsString(), Timeout(context),
      [reactor, context, node,
       fill = std::move(fill)](absl::StatusOr<node::Applied> applied) {
        if (!applied.ok()) {
          if (absl::IsUnavailable(applied.status())) {
            // Refused before proposing (not the leader, or none known):
            // nothing was applied. Say who leads.
            context->AddTrailingMetadata("quorate-refused", "1");
            const std::string leader = node->GetStatus().leader_address;
            if (!leader.empty()) {
              context->AddTrailingMetadata("quorate-leader", leader);
            }
          }
          reactor->Finish(ToGrpcStatus(applied.status()));
          return;
        }
        client::KvResult result;
        if (!result.ParseFromString(applied->result)) {
          reactor->Finish(
              grpc::Status(grpc::StatusCode::INTERNAL, "unreadable result"));
          return;
        }
        const absl::Status s = ResultStatus(result);
        if (s.ok()) fill(result);
        reactor->Finish(ToGrpcStatus(s));
      });
  return reactor;
}

grpc::ServerUnaryReactor* KvService::Put(grpc::CallbackServerContext* context,
                                         const client::PutRequest* request,
                                         client::PutResponse* response) {
  if (absl::Status s = CheckKeyValue(request->key(), request->value());
      !s.ok()) {
    return Finish(context, s);
  }
  client::KvCommand cmd;
  *cmd.mutable_op() = request->op();
  *cmd.mutable_put() = *request;
  cmd.mutable_put()->clear_op();
  return Write(context, std::move(cmd), [response](const client::KvResult& r) {
    response->set_revision(r.revision());
  });
}

grpc::ServerUnaryReactor* KvService::Delete(
    grpc::CallbackServerContext* context, const client::DeleteRequest* request,
    client::DeleteResponse* response) {
  if (absl::Status s = CheckKeyValue(request->key(), ""); !s.ok()) {
    return Finish(context, s);
  }
  client::KvCommand cmd;
  *cmd.mutable_op() = request->op();
  cmd.mutable_del()->set_key(request->key());
  return Write(context, std::move(cmd), [response](const client::KvResult& r) {
    response->set_revision(r.revision());
  });
}

grpc::ServerUnaryReactor* KvService::Cas(grpc::CallbackServerContext* context,
                                         const client::CasRequest* request,
                                         client::CasResponse* response) {
  if (absl::Status s = CheckKeyValue(request->key(), request->value());
      !s.ok()) {
    return Finish(context, s);
  }
  client::KvCommand cmd;
  *cmd.mutable_op() = request->op();
  *cmd.mutable_cas() = *request;
  cmd.mutable_cas()->clear_op();
  return Write(context, std::move(cmd), [response](const client::KvResult& r) {
    response->set_revision(r.revision());
  });
}

grpc::ServerUnaryReactor* KvService::Get(grpc::CallbackServerContext* context,
                                         const client::GetRequest* request,
                                         client::GetResponse* response) {
  if (absl::Status s = CheckKeyValue(request->key(), ""); !s.ok()) {
    return Finish(context, s);
  }
  const KvStore* store = store_;
  auto answer = [store, response, key = request->key()] {
    const uint64_t read_revision = store->revision();
    std::optional<KvStore::Value> v = store->Get(key);
    response->set_read_revision(read_revision);
    if (!v.has_value()) return;
    response->set_found(true);
    response->set_value(std::move(v->value));
    response->set_revision(v->revision);
  };
  if (request->stale()) {
    answer();
    return Finish(context, absl::OkStatus());
  }
  node::Node* node = node_.load();
  if (node == nullptr) {
    return Finish(context, absl::UnavailableError("the member is starting"));
  }
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  node->Read(Timeout(context), [reactor, answer](absl::StatusOr<uint64_t> at) {
    if (at.ok()) answer();
    reactor->Finish(ToGrpcStatus(at.status()));
  });
  return reactor;
}

grpc::ServerUnaryReactor* KvService::MemberStatus(
    grpc::CallbackServerContext* context, const client::MemberStatusRequest*,
    client::MemberStatusResponse* response) {
  node::Node* node = node_.load();
  if (node == nullptr) {
    return Finish(context, absl::UnavailableError("the member is starting"));
  }
  const node::NodeStatus s = node->GetStatus();
  response->set_id(s.name);
  response->set_zone(s.zone);
  response->set_role(raft::RoleName(s.role));
  response->set_term(s.term);
  response->set_leader_id(s.leader);
  response->set_leader_address(s.leader_address);
  response->set_commit_index(s.commit_index);
  if (mode_) response->set_mode(mode_());
  response->add_member_ids(s.name);
  response->add_member_addresses(s.listen_address);
  for (const node::PeerStatus& p : s.peers) {
    response->add_member_ids(p.name);
    response->add_member_addresses(p.address);
  }
  return Finish(context, absl::OkStatus());
}

}  // namespace quorate::coord
