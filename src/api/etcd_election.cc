// The etcd gateway's Election and Lock services (api/etcd_gateway.h).
//
// etcd serves these with its own client-side recipe (the Go client's
// concurrency package), and so does the gateway, on the same keys, so
// that a campaigner through these services and one through etcd's
// libraries contend as equals: a campaign NAME is the keys under
// "NAME/", each "NAME/" and its lease in lower-case hex, attached to the
// lease. The candidate whose key was created first leads (holds the
// lock); the others wait for the key created just before theirs to go,
// then look again. These keys are not Quorate's own elections' (which
// live under "quorate/election/", coord/campaign.h).
#include <grpcpp/grpcpp.h>

#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "api/client_internal.h"
#include "api/etcd_internal.h"
#include "coord/campaign.h"
#include "coord/kv.h"
#include "transport/grpc_status.h"

namespace quorate::api::etcd {

namespace {

namespace epb = ::etcdserverpb;
namespace elpb = ::v3electionpb;
namespace lkpb = ::v3lockpb;
using Impl = EtcdGateway::Impl;

std::string Prefix(const std::string& name) { return name + "/"; }
std::string KeyOf(const std::string& name, int64_t lease) {
  return absl::StrCat(Prefix(name), absl::Hex(lease));
}

client::Compare CreatedAt(const std::string& key, uint64_t revision) {
  client::Compare c;
  c.set_key(key);
  c.set_target(client::Compare::CREATE);
  c.set_result(client::Compare::EQUAL);
  c.set_create_revision(static_cast<int64_t>(revision));
  return c;
}

// Enters: creates `key` with `value` on `lease` unless it exists. Returns
// its create revision (ours) and its value then.
absl::StatusOr<std::pair<uint64_t, std::string>> Enter(const Impl* g,
                                                       const std::string& key,
                                                       const std::string& value,
                                                       int64_t lease) {
  client::TxnRequest t;
  *t.add_compare() = CreatedAt(key, 0);
  client::PutRequest* put = t.add_success()->mutable_put();
  put->set_key(key);
  put->set_value(value);
  put->set_lease(static_cast<uint64_t>(lease));
  t.add_failure()->mutable_range()->set_key(key);
  client::TxnResponse resp;
  if (absl::Status s = g->Txn(t, &resp); !s.ok()) return s;
  if (resp.succeeded()) return std::make_pair(resp.revision(), value);
  if (resp.responses_size() == 0 || resp.responses(0).range().kvs_size() == 0) {
    // A replayed entry (its read is not kept), or the key went since:
    // read it again.
    client::RangeRequest r;
    r.set_key(key);
    client::RangeResponse now;
    if (absl::Status s = g->Range(r, &now); !s.ok()) {
      return s;
    }
    if (now.kvs_size() == 0) {
      return absl::AbortedError("the campaign's key went while entering");
    }
    return std::make_pair(now.kvs(0).create_revision(), now.kvs(0).value());
  }
  const client::KeyValue& kv = resp.responses(0).range().kvs(0);
  return std::make_pair(kv.create_revision(), kv.value());
}

// Waits until `key` is deleted (seen from revision `from` on), on a watch
// of this member's. CANCELLED if the caller went away.
absl::Status AwaitDelete(const Impl* g, grpc::ServerContext* ctx,
                         const std::string& key, uint64_t from) {
  absl::StatusOr<client::Kv::Stub*> stub = WireStub(g->client(), g->self);
  if (!stub.ok()) return stub.status();
  auto native_ctx = grpc::ClientContext::FromServerContext(*ctx);
  auto stream = (*stub)->Watch(native_ctx.get());
  client::WatchRequest req;
  req.mutable_create()->set_key(key);
  req.mutable_create()->set_start_revision(from);
  absl::Status result = absl::UnavailableError("the watch ended");
  if (stream->Write(req)) {
    client::WatchResponses msg;
    bool done = false;
    while (!done && stream->Read(&msg)) {
      for (const client::WatchResponse& r : msg.responses()) {
        if (r.canceled()) {
          // Compacted, or cut off: the caller looks again.
          result = absl::OkStatus();
          done = true;
          break;
        }
        for (const client::WatchEvent& e : r.events()) {
          if (e.type() == client::WatchEvent::DELETE) done = true;
        }
        if (done) result = absl::OkStatus();
      }
    }
  }
  native_ctx->TryCancel();
  (void)stream->Finish();
  if (ctx->IsCancelled()) return absl::CancelledError("the caller went away");
  return result;
}

// Waits until no key under `prefix` was created before revision `mine`
// (ours), then checks that `key` is still there (its lease may have ended
// meanwhile).
absl::Status WaitForTurn(const Impl* g, grpc::ServerContext* ctx,
                         const std::string& prefix, const std::string& key,
                         uint64_t mine) {
  while (mine > 1) {
    client::RangeRequest r;
    r.set_key(prefix);
    r.set_range_end(coord::PrefixEnd(prefix));
    r.set_sort_target(client::RangeRequest::CREATE);
    r.set_sort_order(client::RangeRequest::DESCEND);
    r.set_limit(1);
    r.set_max_create_revision(mine - 1);
    r.set_keys_only(true);
    client::RangeResponse before;
    if (absl::Status s = g->Range(r, &before); !s.ok()) {
      return s;
    }
    if (before.kvs_size() == 0) break;
    if (absl::Status s =
            AwaitDelete(g, ctx, before.kvs(0).key(), before.revision() + 1);
        !s.ok()) {
      return s;
    }
  }
  client::RangeRequest r;
  r.set_key(key);
  r.set_keys_only(true);
  client::RangeResponse own;
  if (absl::Status s = g->Range(r, &own); !s.ok()) {
    return s;
  }
  if (own.kvs_size() == 0 || own.kvs(0).create_revision() != mine) {
    return absl::FailedPreconditionError(
        "etcdserver: session expired: the campaign's lease ended while it "
        "waited");
  }
  return absl::OkStatus();
}

// Deletes `key` if it was created at `revision`.
absl::Status Leave(const Impl* g, const std::string& key, uint64_t revision) {
  client::TxnRequest t;
  *t.add_compare() = CreatedAt(key, revision);
  t.add_success()->mutable_delete_range()->set_key(key);
  client::TxnResponse resp;
  return g->Txn(t, &resp);
}

// The first candidate under `prefix`, if any.
absl::StatusOr<std::optional<client::KeyValue>> First(const Impl* g,
                                                      const std::string& prefix,
                                                      uint64_t* revision) {
  client::RangeRequest r;
  r.set_key(prefix);
  r.set_range_end(coord::PrefixEnd(prefix));
  r.set_sort_target(client::RangeRequest::CREATE);
  r.set_sort_order(client::RangeRequest::ASCEND);
  r.set_limit(1);
  client::RangeResponse resp;
  if (absl::Status s = g->Range(r, &resp); !s.ok()) {
    return s;
  }
  if (revision != nullptr) *revision = resp.revision();
  if (resp.kvs_size() == 0) return std::nullopt;
  return resp.kvs(0);
}

// etcd's server grants a lease of its own for a campaign or lock without
// one, and keeps it alive for as long as the server runs: a key that
// outlives its holder that way is not copied here.
grpc::Status NoLease() {
  return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                      "etcdserver: give a lease (LeaseGrant, kept alive by "
                      "the caller): a key without one would outlive its "
                      "holder");
}

grpc::Status NoLeader() {
  return grpc::Status(grpc::StatusCode::UNKNOWN, "election: no leader");
}

class ElectionImpl final : public elpb::Election::Service {
 public:
  explicit ElectionImpl(Impl* g) : g_(g) {}

  grpc::Status Campaign(grpc::ServerContext* ctx,
                        const elpb::CampaignRequest* req,
                        elpb::CampaignResponse* resp) override {
    Client* c = g_->client();
    if (c == nullptr) return Impl::NotStarted();
    if (req->name().empty()) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                          "etcdserver: an election needs a name");
    }
    if (req->lease() <= 0) return NoLease();
    const std::string key = KeyOf(req->name(), req->lease());
    auto entered = Enter(g_, key, req->value(), req->lease());
    if (!entered.ok()) return ToEtcdStatus(entered.status());
    const uint64_t mine = entered->first;
    if (entered->second != req->value()) {
      // Entered before with another value: the new one stands.
      if (grpc::Status s = Put(g_, key, mine, req->lease(), req->value());
          !s.ok()) {
        return s;
      }
    }
    if (absl::Status s = WaitForTurn(g_, ctx, Prefix(req->name()), key, mine);
        !s.ok()) {
      (void)Leave(g_, key, mine);  // as etcd: a campaign given up leaves
      return ToEtcdStatus(s);
    }
    g_->FillNow(resp->mutable_header());
    elpb::LeaderKey* l = resp->mutable_leader();
    l->set_name(req->name());
    l->set_key(key);
    l->set_rev(KeyRev(mine));
    l->set_lease(req->lease());
    return grpc::Status::OK;
  }

  grpc::Status Proclaim(grpc::ServerContext*, const elpb::ProclaimRequest* req,
                        elpb::ProclaimResponse* resp) override {
    Client* c = g_->client();
    if (c == nullptr) return Impl::NotStarted();
    const elpb::LeaderKey& l = req->leader();
    if (grpc::Status s =
            Put(g_, l.key(), NativeRev(l.rev()), l.lease(), req->value());
        !s.ok()) {
      return s;
    }
    g_->FillNow(resp->mutable_header());
    return grpc::Status::OK;
  }

  grpc::Status Leader(grpc::ServerContext*, const elpb::LeaderRequest* req,
                      elpb::LeaderResponse* resp) override {
    Client* c = g_->client();
    if (c == nullptr) return Impl::NotStarted();
    uint64_t revision = 0;
    auto first = First(g_, Prefix(req->name()), &revision);
    if (!first.ok()) return ToEtcdStatus(first.status());
    if (!first->has_value()) return NoLeader();
    g_->Fill(resp->mutable_header(), revision);
    ToEtcd(**first, resp->mutable_kv());
    return grpc::Status::OK;
  }

  grpc::Status Observe(
      grpc::ServerContext* ctx, const elpb::LeaderRequest* req,
      grpc::ServerWriter<elpb::LeaderResponse>* writer) override {
    Client* c = g_->client();
    if (c == nullptr) return Impl::NotStarted();
    absl::StatusOr<client::Kv::Stub*> stub = WireStub(c, g_->self);
    if (!stub.ok()) return ToEtcdStatus(stub.status());
    const std::string prefix = Prefix(req->name());
    // Every candidate as of one read, then every revision's events after
    // it: each change of leader (or of its value) is seen, in order.
    client::RangeRequest r;
    r.set_key(prefix);
    r.set_range_end(coord::PrefixEnd(prefix));
    client::RangeResponse all;
    if (absl::Status s = RangeWhole(*g_, r, &all); !s.ok()) {
      return ToEtcdStatus(s);
    }
    coord::LeaderWatch leaders;
    std::optional<coord::Leader> now = leaders.Reset(all.kvs());
    if (now.has_value() && !Send(writer, *now, all)) return grpc::Status::OK;
    auto native_ctx = grpc::ClientContext::FromServerContext(*ctx);
    auto stream = (*stub)->Watch(native_ctx.get());
    client::WatchRequest w;
    w.mutable_create()->set_key(prefix);
    w.mutable_create()->set_range_end(coord::PrefixEnd(prefix));
    w.mutable_create()->set_start_revision(all.revision() + 1);
    client::WatchResponses msg;
    bool ok = stream->Write(w);
    std::vector<client::WatchEvent> revision;
    while (ok && stream->Read(&msg)) {
      for (const client::WatchResponse& resp : msg.responses()) {
        if (resp.canceled()) {
          ok = false;
          break;
        }
        // One revision at a time (a response may hold several).
        for (int i = 0; ok && i < resp.events_size(); ++i) {
          revision.push_back(resp.events(i));
          const bool last = i + 1 == resp.events_size() ||
                            resp.events(i + 1).kv().mod_revision() !=
                                resp.events(i).kv().mod_revision();
          if (!last || resp.fragment()) continue;
          if (leaders.Revision(revision, &now) && now.has_value()) {
            client::RangeResponse at;
            at.set_revision(revision.back().kv().mod_revision());
            ok = Send(writer, *now, at);
          }
          revision.clear();
        }
      }
    }
    native_ctx->TryCancel();
    const grpc::Status s = stream->Finish();
    if (ctx->IsCancelled()) return grpc::Status::OK;
    return grpc::Status(
        grpc::StatusCode::UNAVAILABLE,
        absl::StrCat("etcdserver: the observation ended: ", s.error_message()));
  }

  grpc::Status Resign(grpc::ServerContext*, const elpb::ResignRequest* req,
                      elpb::ResignResponse* resp) override {
    Client* c = g_->client();
    if (c == nullptr) return Impl::NotStarted();
    if (absl::Status s =
            Leave(g_, req->leader().key(), NativeRev(req->leader().rev()));
        !s.ok()) {
      return ToEtcdStatus(s);
    }
    g_->FillNow(resp->mutable_header());
    return grpc::Status::OK;
  }

 private:
  // Sets the leader's value if `key` is still the one created at
  // `revision`.
  static grpc::Status Put(const Impl* g, const std::string& key,
                          uint64_t revision, int64_t lease,
                          const std::string& value) {
    client::TxnRequest t;
    *t.add_compare() = CreatedAt(key, revision);
    client::PutRequest* put = t.add_success()->mutable_put();
    put->set_key(key);
    put->set_value(value);
    put->set_lease(static_cast<uint64_t>(lease));
    client::TxnResponse resp;
    if (absl::Status s = g->Txn(t, &resp); !s.ok()) {
      return ToEtcdStatus(s);
    }
    if (!resp.succeeded()) {
      return grpc::Status(grpc::StatusCode::UNKNOWN, "election: not leader");
    }
    return grpc::Status::OK;
  }

  // Sends the leader `l`, as a key-value with what the store says of it
  // (the header at `read`'s revision).
  bool Send(grpc::ServerWriter<elpb::LeaderResponse>* writer,
            const coord::Leader& l, const client::RangeResponse& read) {
    elpb::LeaderResponse resp;
    g_->Fill(resp.mutable_header(), read.revision());
    client::KeyValue kv;
    kv.set_key(l.key);
    kv.set_value(l.value);
    kv.set_create_revision(l.token);
    kv.set_lease(l.lease);
    for (const client::KeyValue& k : read.kvs()) {
      if (k.key() == l.key) kv = k;  // with its version and mod revision
    }
    ToEtcd(kv, resp.mutable_kv());
    return writer->Write(resp);
  }

  Impl* const g_;
};

class LockImpl final : public lkpb::Lock::Service {
 public:
  explicit LockImpl(Impl* g) : g_(g) {}

  grpc::Status Lock(grpc::ServerContext* ctx, const lkpb::LockRequest* req,
                    lkpb::LockResponse* resp) override {
    Client* c = g_->client();
    if (c == nullptr) return Impl::NotStarted();
    if (req->name().empty()) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                          "etcdserver: a lock needs a name");
    }
    if (req->lease() <= 0) return NoLease();
    const std::string key = KeyOf(req->name(), req->lease());
    auto entered = Enter(g_, key, "", req->lease());
    if (!entered.ok()) return ToEtcdStatus(entered.status());
    const uint64_t mine = entered->first;
    if (absl::Status s = WaitForTurn(g_, ctx, Prefix(req->name()), key, mine);
        !s.ok()) {
      (void)Leave(g_, key, mine);
      return ToEtcdStatus(s);
    }
    g_->FillNow(resp->mutable_header());
    resp->set_key(key);
    return grpc::Status::OK;
  }

  grpc::Status Unlock(grpc::ServerContext*, const lkpb::UnlockRequest* req,
                      lkpb::UnlockResponse* resp) override {
    Client* c = g_->client();
    if (c == nullptr) return Impl::NotStarted();
    client::TxnRequest t;
    t.add_success()->mutable_delete_range()->set_key(req->key());
    client::TxnResponse native;
    if (absl::Status s = g_->Txn(t, &native); !s.ok()) {
      return ToEtcdStatus(s);
    }
    g_->Fill(resp->mutable_header(), native.revision());
    return grpc::Status::OK;
  }

 private:
  Impl* const g_;
};

}  // namespace

std::unique_ptr<grpc::Service> NewElectionService(EtcdGateway::Impl* gateway) {
  return std::make_unique<ElectionImpl>(gateway);
}
std::unique_ptr<grpc::Service> NewLockService(EtcdGateway::Impl* gateway) {
  return std::make_unique<LockImpl>(gateway);
}

}  // namespace quorate::api::etcd
