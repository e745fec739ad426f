// The etcd gateway (api/etcd_gateway.h): its shared parts, and the KV,
// Lease, Cluster and Maintenance services. Watch is in etcd_watch.cc,
// Election and Lock in etcd_election.cc.
#include "api/etcd_gateway.h"

#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <deque>
#include <future>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "api/client_internal.h"
#include "api/etcd_internal.h"
#include "coord/kv.h"
#include "coord/kv_service.h"
#include "transport/grpc_status.h"
#include "util/mutex.h"

namespace quorate::api {

namespace epb = ::etcdserverpb;

namespace {
// A call served here waits this long at most (as the client's timeout).
constexpr absl::Duration kLocalTimeout = absl::Seconds(5);
}  // namespace

uint64_t EtcdId(std::string_view name) {
  uint64_t h = 14695981039346656037ull;
  for (unsigned char c : name) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return h == 0 ? 1 : h;
}

namespace etcd {

void ToEtcd(const client::KeyValue& in, mvccpb::KeyValue* out) {
  out->set_key(in.key());
  out->set_create_revision(KeyRev(in.create_revision()));
  out->set_mod_revision(KeyRev(in.mod_revision()));
  out->set_version(static_cast<int64_t>(in.version()));
  out->set_value(in.value());
  out->set_lease(static_cast<int64_t>(in.lease()));
}

grpc::Status ToEtcdStatus(const absl::Status& s) {
  using grpc::StatusCode;
  const absl::string_view m = s.message();
  auto err = [](StatusCode code, absl::string_view text) {
    return grpc::Status(code, std::string(text));
  };
  switch (s.code()) {
    case absl::StatusCode::kOk:
      return grpc::Status::OK;
    case absl::StatusCode::kOutOfRange:
      if (absl::StrContains(m, "compacted")) {
        return err(StatusCode::OUT_OF_RANGE, kErrCompacted);
      }
      if (absl::StrContains(m, "future")) {
        return err(StatusCode::OUT_OF_RANGE, kErrFutureRev);
      }
      break;
    case absl::StatusCode::kNotFound:
      if (absl::StrContains(m, "ignore_value")) {
        return err(StatusCode::INVALID_ARGUMENT, "etcdserver: key not found");
      }
      if (absl::StrContains(m, "lease")) {
        return err(StatusCode::NOT_FOUND, kErrLeaseNotFound);
      }
      break;
    case absl::StatusCode::kAlreadyExists:
      if (absl::StrContains(m, "lease")) {
        return err(StatusCode::FAILED_PRECONDITION,
                   "etcdserver: lease already exists");
      }
      break;
    case absl::StatusCode::kInvalidArgument:
      if (absl::StrContains(m, "twice") ||
          absl::StrContains(m, "and deletes it")) {
        return err(StatusCode::INVALID_ARGUMENT,
                   "etcdserver: duplicate key given in txn request");
      }
      if (absl::StrContains(m, "compares and operations; the limit")) {
        return err(StatusCode::INVALID_ARGUMENT,
                   "etcdserver: too many operations in txn request");
      }
      if (absl::StrContains(m, "--max_lease_ttl")) {
        return err(StatusCode::OUT_OF_RANGE, "etcdserver: too large lease TTL");
      }
      break;
    default:
      break;
  }
  // No etcd text of its own: Quorate's, under etcd's prefix (once).
  if (absl::StartsWith(m, "etcdserver: ")) return ToGrpcStatus(s);
  return ToGrpcStatus(absl::Status(s.code(), absl::StrCat("etcdserver: ", m)));
}

// A range, every page of it: answers are cut at 3 MiB (coord/kv.h); in
// key order the rest is read from the same revision, as etcd answers
// whole.
absl::Status RangeWhole(const EtcdGateway::Impl& g, client::RangeRequest r,
                        client::RangeResponse* out) {
  if (absl::Status s = g.Range(r, out); !s.ok()) {
    return s;
  }
  const bool key_order = r.sort_target() == client::RangeRequest::KEY &&
                         r.sort_order() != client::RangeRequest::DESCEND;
  const uint64_t limit = r.limit();
  // The listener sends at most 16 MiB in one message: past 12 MiB the
  // answer stops, with `more`.
  constexpr size_t kMaxAnswerBytes = size_t{12} << 20;
  while (out->more() && key_order && !r.count_only() && out->kvs_size() > 0 &&
         (limit == 0 || static_cast<uint64_t>(out->kvs_size()) < limit) &&
         out->ByteSizeLong() < kMaxAnswerBytes) {
    r.set_key(out->kvs(out->kvs_size() - 1).key() + std::string(1, '\0'));
    r.set_revision(out->revision());
    if (limit > 0) r.set_limit(limit - static_cast<uint64_t>(out->kvs_size()));
    client::RangeResponse page;
    if (absl::Status s = g.Range(r, &page); !s.ok()) {
      return s;
    }
    for (client::KeyValue& kv : *page.mutable_kvs()) {
      *out->add_kvs() = std::move(kv);
    }
    out->set_more(page.more());
  }
  return absl::OkStatus();
}

}  // namespace etcd

EtcdGateway::Impl::Impl(EtcdGatewayOptions o)
    : options(std::move(o)),
      cluster_id(EtcdId(options.cluster_id)),
      member_id(EtcdId(options.member_id)) {}

void EtcdGateway::Impl::Fill(epb::ResponseHeader* header,
                             uint64_t revision) const {
  header->set_cluster_id(cluster_id);
  header->set_member_id(member_id);
  header->set_revision(etcd::StoreRev(revision));
  header->set_raft_term(options.local ? options.local().term : 0);
}

absl::Status EtcdGateway::Impl::Txn(client::TxnRequest t,
                                    client::TxnResponse* out) const {
  if (options.kv_service != nullptr) {
    // Also before a write goes to the leader: an older leader would take
    // a command its older members apply differently.
    if (absl::Status s =
            options.kv_service->CheckPeersSpeak(coord::ProtocolOf(t));
        !s.ok()) {
      return s;
    }
    std::promise<std::pair<absl::StatusOr<client::TxnResponse>, bool>> answer;
    options.kv_service->LocalTxn(
        t, kLocalTimeout,
        [&answer](absl::StatusOr<client::TxnResponse> r, bool refused) {
          answer.set_value({std::move(r), refused});
        });
    auto [r, refused] = answer.get_future().get();
    // A read with no leader here: the client looks for one.
    if (absl::IsUnavailable(r.status()) && coord::IsReadOnly(t)) {
      refused = true;
    }
    if (!refused) {
      if (!r.ok()) return r.status();
      *out = *std::move(r);
      return absl::OkStatus();
    }
  }
  return WireTxn(client(), std::move(t), out);
}

absl::Status EtcdGateway::Impl::Range(const client::RangeRequest& r,
                                      client::RangeResponse* out) const {
  if (options.kv_service != nullptr) {
    std::promise<absl::StatusOr<client::RangeResponse>> answer;
    options.kv_service->LocalRange(
        r, kLocalTimeout, [&answer](absl::StatusOr<client::RangeResponse> a) {
          answer.set_value(std::move(a));
        });
    absl::StatusOr<client::RangeResponse> a = answer.get_future().get();
    // Without a leader here, the client looks for one.
    if (!absl::IsUnavailable(a.status())) {
      if (!a.ok()) return a.status();
      *out = *std::move(a);
      return absl::OkStatus();
    }
  }
  return WireCall(client(), false, &client::Kv::Stub::Range, r, out);
}

void EtcdGateway::Impl::FillNow(epb::ResponseHeader* header) const {
  const EtcdLocalView v = options.local ? options.local() : EtcdLocalView{};
  header->set_cluster_id(cluster_id);
  header->set_member_id(member_id);
  header->set_revision(etcd::StoreRev(v.revision));
  header->set_raft_term(v.term);
}

namespace {

using etcd::KeyRev;
using etcd::NativeRev;
using etcd::RangeWhole;
using etcd::ToEtcd;
using etcd::ToEtcdStatus;
using Impl = EtcdGateway::Impl;

// --- KV ---

// A compare's revision operand: etcd's revisions are ours plus one, and
// no key has etcd revision 1, so "= 1" never holds, "!= 1" always, "< 1"
// holds for absent keys only and "> 1" for present ones.
void CompareRevision(epb::Compare::CompareResult result, int64_t etcd,
                     client::Compare* out,
                     void (client::Compare::*set)(int64_t)) {
  if (etcd < 1 || etcd > 1) {
    (out->*set)(etcd > 1 ? etcd - 1 : etcd);
    return;
  }
  switch (result) {
    case epb::Compare::EQUAL:
    case epb::Compare::NOT_EQUAL:
      (out->*set)(-1);  // no key has it
      break;
    case epb::Compare::LESS:
      (out->*set)(1);  // ours: 0 only
      break;
    default:  // GREATER
      (out->*set)(0);
      break;
  }
}

absl::Status ToNative(const epb::Compare& in, client::Compare* out) {
  out->set_result(static_cast<client::Compare::Result>(in.result()));
  out->set_target(static_cast<client::Compare::Target>(in.target()));
  out->set_key(in.key());
  out->set_range_end(in.range_end());
  switch (in.target_union_case()) {
    case epb::Compare::kVersion:
      out->set_version(in.version());
      break;
    case epb::Compare::kCreateRevision:
      CompareRevision(in.result(), in.create_revision(), out,
                      &client::Compare::set_create_revision);
      break;
    case epb::Compare::kModRevision:
      CompareRevision(in.result(), in.mod_revision(), out,
                      &client::Compare::set_mod_revision);
      break;
    case epb::Compare::kValue:
      out->set_value(in.value());
      break;
    case epb::Compare::kLease:
      out->set_lease(in.lease());
      break;
    case epb::Compare::TARGET_UNION_NOT_SET:
      // etcd compares with the target's zero value.
      switch (in.target()) {
        case epb::Compare::VERSION:
          out->set_version(0);
          break;
        case epb::Compare::CREATE:
          out->set_create_revision(0);
          break;
        case epb::Compare::MOD:
          out->set_mod_revision(0);
          break;
        case epb::Compare::VALUE:
          out->set_value("");
          break;
        case epb::Compare::LEASE:
          out->set_lease(0);
          break;
        default:
          return absl::InvalidArgumentError("a compare has an unknown target");
      }
      break;
  }
  return absl::OkStatus();
}

// A range request, but for its revision (the caller's to set).
absl::Status ToNative(const epb::RangeRequest& in, client::RangeRequest* out) {
  if (in.key().empty()) return absl::InvalidArgumentError(etcd::kErrEmptyKey);
  out->set_key(in.key());
  out->set_range_end(in.range_end());
  out->set_limit(in.limit() > 0 ? static_cast<uint64_t>(in.limit()) : 0);
  out->set_sort_order(
      static_cast<client::RangeRequest::SortOrder>(in.sort_order()));
  out->set_sort_target(
      static_cast<client::RangeRequest::SortTarget>(in.sort_target()));
  out->set_keys_only(in.keys_only());
  out->set_count_only(in.count_only());
  out->set_serializable(in.serializable());
  out->set_min_mod_revision(NativeRev(in.min_mod_revision()));
  out->set_max_mod_revision(NativeRev(in.max_mod_revision()));
  out->set_min_create_revision(NativeRev(in.min_create_revision()));
  out->set_max_create_revision(NativeRev(in.max_create_revision()));
  // A bound of at most 1 (not 0, "none") rules out every key: no key has
  // etcd revision 1 or less. Ours cannot say "at most 0"; a lower bound
  // no key reaches says it.
  if (in.max_mod_revision() != 0 && in.max_mod_revision() <= 1) {
    out->set_min_mod_revision(UINT64_MAX);
  }
  if (in.max_create_revision() != 0 && in.max_create_revision() <= 1) {
    out->set_min_create_revision(UINT64_MAX);
  }
  return absl::OkStatus();
}

void FromNative(const client::RangeResponse& in, epb::RangeResponse* out) {
  out->set_count(static_cast<int64_t>(in.count()));
  out->set_more(in.more());
  for (const client::KeyValue& kv : in.kvs()) ToEtcd(kv, out->add_kvs());
}

absl::Status ToNative(const epb::RequestOp& in, client::RequestOp* out,
                      int depth);

absl::Status ToNative(const epb::TxnRequest& in, client::TxnRequest* out,
                      int depth) {
  for (const epb::Compare& c : in.compare()) {
    if (c.key().empty()) return absl::InvalidArgumentError(etcd::kErrEmptyKey);
    if (absl::Status s = ToNative(c, out->add_compare()); !s.ok()) return s;
  }
  for (const epb::RequestOp& op : in.success()) {
    if (absl::Status s = ToNative(op, out->add_success(), depth); !s.ok()) {
      return s;
    }
  }
  for (const epb::RequestOp& op : in.failure()) {
    if (absl::Status s = ToNative(op, out->add_failure(), depth); !s.ok()) {
      return s;
    }
  }
  return absl::OkStatus();
}

absl::Status ToNative(const epb::RequestOp& in, client::RequestOp* out,
                      int depth) {
  switch (in.request_case()) {
    case epb::RequestOp::kRequestRange: {
      if (in.request_range().revision() > 0) {
        return absl::InvalidArgumentError(
            "a range inside a transaction reads the current state: read a "
            "past revision with Range");
      }
      return ToNative(in.request_range(), out->mutable_range());
    }
    case epb::RequestOp::kRequestPut: {
      const epb::PutRequest& p = in.request_put();
      if (p.key().empty())
        return absl::InvalidArgumentError(etcd::kErrEmptyKey);
      client::PutRequest* put = out->mutable_put();
      put->set_key(p.key());
      put->set_value(p.value());
      put->set_lease(static_cast<uint64_t>(p.lease()));
      put->set_prev_kv(p.prev_kv());
      put->set_ignore_value(p.ignore_value());
      put->set_ignore_lease(p.ignore_lease());
      return absl::OkStatus();
    }
    case epb::RequestOp::kRequestDeleteRange: {
      const epb::DeleteRangeRequest& d = in.request_delete_range();
      if (d.key().empty())
        return absl::InvalidArgumentError(etcd::kErrEmptyKey);
      client::DeleteRangeRequest* del = out->mutable_delete_range();
      del->set_key(d.key());
      del->set_range_end(d.range_end());
      del->set_prev_kv(d.prev_kv());
      return absl::OkStatus();
    }
    case epb::RequestOp::kRequestTxn:
      return ToNative(in.request_txn(), out->mutable_txn(), depth + 1);
    case epb::RequestOp::REQUEST_NOT_SET:
      break;
  }
  return absl::InvalidArgumentError(
      "etcdserver: an operation of the transaction is empty");
}

// Whether `t` (or a transaction nested in it) answered a range.
bool HasRange(const client::TxnResponse& t) {
  for (const client::ResponseOp& r : t.responses()) {
    if (r.has_range() || (r.has_txn() && HasRange(r.txn()))) return true;
  }
  return false;
}

// `nested`: a transaction inside one, whose header etcd leaves empty.
void FromNative(const Impl& g, const client::TxnResponse& in,
                epb::TxnResponse* out, bool nested = false) {
  if (nested) {
    out->mutable_header();
  } else {
    g.Fill(out->mutable_header(), in.revision());
  }
  out->set_succeeded(in.succeeded());
  for (const client::ResponseOp& r : in.responses()) {
    epb::ResponseOp* o = out->add_responses();
    switch (r.response_case()) {
      case client::ResponseOp::kRange: {
        epb::RangeResponse* range = o->mutable_response_range();
        // (etcd's operations inside a transaction have a revision only.)
        range->mutable_header()->set_revision(
            etcd::StoreRev(r.range().revision()));
        FromNative(r.range(), range);
        break;
      }
      case client::ResponseOp::kPut: {
        epb::PutResponse* put = o->mutable_response_put();
        put->mutable_header()->set_revision(etcd::StoreRev(in.revision()));
        if (r.put().has_prev_kv()) {
          ToEtcd(r.put().prev_kv(), put->mutable_prev_kv());
        }
        break;
      }
      case client::ResponseOp::kDeleteRange: {
        epb::DeleteRangeResponse* del = o->mutable_response_delete_range();
        del->mutable_header()->set_revision(etcd::StoreRev(in.revision()));
        del->set_deleted(static_cast<int64_t>(r.delete_range().deleted()));
        for (const client::KeyValue& kv : r.delete_range().prev_kvs()) {
          ToEtcd(kv, del->add_prev_kvs());
        }
        break;
      }
      case client::ResponseOp::kTxn:
        FromNative(g, r.txn(), o->mutable_response_txn(), /*nested=*/true);
        break;
      case client::ResponseOp::RESPONSE_NOT_SET:
        break;
    }
  }
}

class KvImpl final : public epb::KV::Service {
 public:
  explicit KvImpl(Impl* g) : g_(g) {}

  grpc::Status Range(grpc::ServerContext*, const epb::RangeRequest* req,
                     epb::RangeResponse* resp) override {
    Client* c = g_->client();
    if (c == nullptr) return Impl::NotStarted();
    client::RangeRequest r;
    if (absl::Status s = ToNative(*req, &r); !s.ok()) return ToEtcdStatus(s);
    if (req->revision() == 1) {
      // etcd's first revision: the empty store.
      g_->FillNow(resp->mutable_header());
      return grpc::Status::OK;
    }
    r.set_revision(NativeRev(req->revision()));
    client::RangeResponse native;
    if (absl::Status s = RangeWhole(*g_, r, &native); !s.ok()) {
      return ToEtcdStatus(s);
    }
    // etcd's header shows the store's current revision, also for a read
    // of a past one.
    const uint64_t now = g_->options.local ? g_->options.local().revision : 0;
    g_->Fill(resp->mutable_header(), std::max(now, native.revision()));
    FromNative(native, resp);
    return grpc::Status::OK;
  }

  grpc::Status Put(grpc::ServerContext*, const epb::PutRequest* req,
                   epb::PutResponse* resp) override {
    epb::RequestOp op;
    *op.mutable_request_put() = *req;
    return One(op, [resp](const epb::TxnResponse& t) {
      *resp->mutable_header() = t.header();
      const epb::PutResponse& put = t.responses(0).response_put();
      if (put.has_prev_kv()) *resp->mutable_prev_kv() = put.prev_kv();
    });
  }

  grpc::Status DeleteRange(grpc::ServerContext*,
                           const epb::DeleteRangeRequest* req,
                           epb::DeleteRangeResponse* resp) override {
    epb::RequestOp op;
    *op.mutable_request_delete_range() = *req;
    return One(op, [resp](const epb::TxnResponse& t) {
      *resp = t.responses(0).response_delete_range();
      *resp->mutable_header() = t.header();
    });
  }

  grpc::Status Txn(grpc::ServerContext*, const epb::TxnRequest* req,
                   epb::TxnResponse* resp) override {
    Client* c = g_->client();
    if (c == nullptr) return Impl::NotStarted();
    client::TxnRequest t;
    if (absl::Status s = ToNative(*req, &t, 0); !s.ok()) {
      return ToEtcdStatus(s);
    }
    client::TxnResponse native;
    if (absl::Status s = g_->Txn(std::move(t), &native); !s.ok()) {
      return ToEtcdStatus(s);
    }
    if (native.replayed() && HasRange(native)) {
      // A retry of a transaction applied by an earlier attempt: the store
      // kept its outcome, not what its ranges read. Say so rather than
      // answer with empty reads.
      return grpc::Status(grpc::StatusCode::UNAVAILABLE,
                          "etcdserver: request timed out, possibly due to "
                          "previous leader failure (the transaction was "
                          "applied; read again for what it read)");
    }
    FromNative(*g_, native, resp);
    return grpc::Status::OK;
  }

  grpc::Status Compact(grpc::ServerContext*, const epb::CompactionRequest* req,
                       epb::CompactionResponse* resp) override {
    Client* c = g_->client();
    if (c == nullptr) return Impl::NotStarted();
    if (g_->options.kv_service != nullptr) {
      if (absl::Status s = g_->options.kv_service->CheckPeersSpeak(2);
          !s.ok()) {
        return ToEtcdStatus(s);
      }
    }
    client::CompactRequest r;
    r.set_revision(NativeRev(req->revision()));
    client::CompactResponse native;
    if (absl::Status s =
            WireCall(c, true, &client::Kv::Stub::Compact, r, &native);
        !s.ok()) {
      return ToEtcdStatus(s);
    }
    g_->Fill(resp->mutable_header(), native.revision());
    return grpc::Status::OK;
  }

 private:
  // A put or delete: a transaction of that one operation.
  template <class Answer>
  grpc::Status One(const epb::RequestOp& op, Answer answer) {
    epb::TxnRequest txn;
    *txn.add_success() = op;
    epb::TxnResponse t;
    grpc::Status s = Txn(nullptr, &txn, &t);
    if (s.ok()) answer(t);
    return s;
  }

  Impl* const g_;
};

// --- Lease ---

// The renewals of one KeepAlive stream, from the keeper's callbacks (any
// thread) to the stream's writer. Shared with the callbacks, which may
// come after the stream ended.
struct RenewalQueue {
  struct Item {
    int64_t id = 0;
    bool forward = false;  // not renewed here: send it to the leader
    client::LeaseRenewalAnswer answer;
  };
  Mutex mu;
  CondVar cv;
  std::deque<Item> ready ABSL_GUARDED_BY(mu);
  int in_flight ABSL_GUARDED_BY(mu) = 0;  // read, not yet written
  bool reading_done ABSL_GUARDED_BY(mu) = false;
  bool failed ABSL_GUARDED_BY(mu) = false;
  grpc::Status status ABSL_GUARDED_BY(mu);
};

int64_t Seconds(int64_t ms) { return (ms + 999) / 1000; }

class LeaseImpl final : public epb::Lease::Service {
 public:
  explicit LeaseImpl(Impl* g) : g_(g) {}

  grpc::Status LeaseGrant(grpc::ServerContext*,
                          const epb::LeaseGrantRequest* req,
                          epb::LeaseGrantResponse* resp) override {
    Client* c = g_->client();
    if (c == nullptr) return Impl::NotStarted();
    if (req->id() < 0) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                          "etcdserver: a lease id must not be negative");
    }
    client::LeaseGrantRequest r;
    // etcd raises a TTL below its minimum to it; so does the gateway, in
    // whole seconds (the TTL it answers is the lease's own).
    const int64_t floor_s = Seconds(g_->options.min_lease_ttl_ms);
    r.set_ttl_ms(
        std::max(std::min<int64_t>(req->ttl(), INT64_MAX / 1000), floor_s) *
        1000);
    r.set_id(static_cast<uint64_t>(req->id()));
    client::LeaseGrantResponse native;
    if (absl::Status s =
            WireCall(c, true, &client::Kv::Stub::LeaseGrant, r, &native);
        !s.ok()) {
      return ToEtcdStatus(s);
    }
    g_->Fill(resp->mutable_header(), native.revision());
    resp->set_id(static_cast<int64_t>(native.id()));
    resp->set_ttl(Seconds(native.ttl_ms()));
    return grpc::Status::OK;
  }

  grpc::Status LeaseRevoke(grpc::ServerContext*,
                           const epb::LeaseRevokeRequest* req,
                           epb::LeaseRevokeResponse* resp) override {
    Client* c = g_->client();
    if (c == nullptr) return Impl::NotStarted();
    client::LeaseRevokeRequest r;
    r.set_id(static_cast<uint64_t>(req->id()));
    client::LeaseRevokeResponse native;
    if (absl::Status s =
            WireCall(c, true, &client::Kv::Stub::LeaseRevoke, r, &native);
        !s.ok()) {
      return ToEtcdStatus(s);
    }
    g_->Fill(resp->mutable_header(), native.revision());
    return grpc::Status::OK;
  }

  // Renewals are answered as they are decided, not one after another:
  // this thread reads them and hands each to the member's lease keeper
  // (KvService::KeepAlive, in the process: the leader renews at once, in
  // its next round); a writer thread writes the answers in the order they
  // come. A renewal this member cannot make (it does not lead) goes to the
  // leader through the client, on the writer's thread.
  grpc::Status LeaseKeepAlive(
      grpc::ServerContext* ctx,
      grpc::ServerReaderWriter<epb::LeaseKeepAliveResponse,
                               epb::LeaseKeepAliveRequest>* stream) override {
    Client* c = g_->client();
    if (c == nullptr) return Impl::NotStarted();
    auto q = std::make_shared<RenewalQueue>();
    std::thread writer([&] { WriteAnswers(c, ctx, stream, q.get()); });
    epb::LeaseKeepAliveRequest req;
    while (stream->Read(&req)) {
      {
        MutexLock lock(&q->mu);
        if (q->failed) break;
        ++q->in_flight;
      }
      Renew(req.id(), q);
    }
    {
      MutexLock lock(&q->mu);
      q->reading_done = true;
      q->cv.SignalAll();
    }
    writer.join();
    MutexLock lock(&q->mu);
    return q->status;
  }

  grpc::Status LeaseTimeToLive(grpc::ServerContext*,
                               const epb::LeaseTimeToLiveRequest* req,
                               epb::LeaseTimeToLiveResponse* resp) override {
    Client* c = g_->client();
    if (c == nullptr) return Impl::NotStarted();
    client::LeaseTimeToLiveRequest r;
    r.set_id(static_cast<uint64_t>(req->id()));
    r.set_keys(req->keys());
    client::LeaseTimeToLiveResponse native;
    const absl::Status s =
        WireCall(c, false, &client::Kv::Stub::LeaseTimeToLive, r, &native);
    g_->FillNow(resp->mutable_header());
    resp->set_id(req->id());
    if (absl::IsNotFound(s)) {
      resp->set_ttl(-1);  // etcd's answer for a lease that is gone
      return grpc::Status::OK;
    }
    if (!s.ok()) return ToEtcdStatus(s);
    resp->set_ttl(native.remaining_ms() / 1000);
    resp->set_grantedttl(Seconds(native.granted_ttl_ms()));
    for (const std::string& k : native.keys()) resp->add_keys(k);
    return grpc::Status::OK;
  }

  grpc::Status LeaseLeases(grpc::ServerContext*, const epb::LeaseLeasesRequest*,
                           epb::LeaseLeasesResponse* resp) override {
    Client* c = g_->client();
    if (c == nullptr) return Impl::NotStarted();
    client::LeaseLeasesResponse native;
    if (absl::Status s = WireCall(c, false, &client::Kv::Stub::LeaseLeases,
                                  client::LeaseLeasesRequest(), &native);
        !s.ok()) {
      return ToEtcdStatus(s);
    }
    g_->FillNow(resp->mutable_header());
    for (uint64_t id : native.ids()) {
      resp->add_leases()->set_id(static_cast<int64_t>(id));
    }
    return grpc::Status::OK;
  }

 private:
  // Hands renewal `id` to the member's keeper; its answer goes into `q`.
  void Renew(int64_t id, const std::shared_ptr<RenewalQueue>& q) {
    auto push = [q, id](client::LeaseRenewalAnswer a, bool forward) {
      MutexLock lock(&q->mu);
      q->ready.push_back({id, forward, std::move(a)});
      q->cv.SignalAll();
    };
    if (g_->options.kv_service == nullptr) {
      push({}, true);
      return;
    }
    client::LeaseRenewal r;
    r.set_id(static_cast<uint64_t>(id));
    g_->options.kv_service->KeepAlive(r, [push](client::LeaseRenewalAnswer a) {
      const bool forward =
          a.code() == static_cast<int>(absl::StatusCode::kUnavailable);
      push(std::move(a), forward);
    });
  }

  // Writes the answers of `q` until every renewal read is answered and the
  // client is done, or the stream fails.
  void WriteAnswers(
      Client* c, grpc::ServerContext* ctx,
      grpc::ServerReaderWriter<epb::LeaseKeepAliveResponse,
                               epb::LeaseKeepAliveRequest>* stream,
      RenewalQueue* q) {
    auto fail = [&](grpc::Status s) {
      MutexLock lock(&q->mu);
      q->failed = true;
      q->status = std::move(s);
      ctx->TryCancel();  // the reader's Read returns
    };
    while (true) {
      RenewalQueue::Item item;
      {
        MutexLock lock(&q->mu);
        while (q->ready.empty() && !(q->reading_done && q->in_flight == 0)) {
          q->cv.Wait(&q->mu);
        }
        if (q->ready.empty()) return;
        item = std::move(q->ready.front());
        q->ready.pop_front();
        --q->in_flight;
      }
      if (item.forward) {
        absl::StatusOr<client::LeaseRenewalAnswer> a =
            WireRenew(c, static_cast<uint64_t>(item.id));
        if (!a.ok()) {
          fail(ToEtcdStatus(a.status()));
          return;
        }
        item.answer = *std::move(a);
      }
      epb::LeaseKeepAliveResponse resp;
      g_->FillNow(resp.mutable_header());
      resp.set_id(item.id);
      const client::LeaseRenewalAnswer& a = item.answer;
      if (a.code() == 0) {
        resp.set_ttl(Seconds(a.ttl_ms()));
      } else if (a.code() != static_cast<int>(absl::StatusCode::kNotFound)) {
        fail(ToEtcdStatus(absl::Status(static_cast<absl::StatusCode>(a.code()),
                                       a.message())));
        return;
      }
      // (Gone: TTL 0, as etcd answers.)
      if (!stream->Write(resp)) {
        fail(grpc::Status::OK);
        return;
      }
    }
  }

  Impl* const g_;
};

// --- Cluster ---

// "HOST:PORT" from an etcd peer URL ("http://HOST:PORT").
std::string AddressOf(std::string url) {
  for (const char* scheme : {"http://", "https://", "unix://"}) {
    if (absl::StartsWith(url, scheme)) return url.substr(strlen(scheme));
  }
  return url;
}

class ClusterImpl final : public epb::Cluster::Service {
 public:
  explicit ClusterImpl(Impl* g) : g_(g) {}

  grpc::Status MemberList(grpc::ServerContext*, const epb::MemberListRequest*,
                          epb::MemberListResponse* resp) override {
    Client* c = g_->client();
    if (c == nullptr) return Impl::NotStarted();
    absl::StatusOr<Configuration> conf = c->MemberList();
    if (!conf.ok()) return ToEtcdStatus(conf.status());
    g_->FillNow(resp->mutable_header());
    AddMembers(*conf, resp->mutable_members());
    return grpc::Status::OK;
  }

  // A new member gets the id "m" and 16 hex digits of its address's hash
  // (a retry names the same one) and zone "default"; it starts with
  // quorate-node --id=THAT --zone=default --join=... (operations.md).
  grpc::Status MemberAdd(grpc::ServerContext*, const epb::MemberAddRequest* req,
                         epb::MemberAddResponse* resp) override {
    Client* c = g_->client();
    if (c == nullptr) return Impl::NotStarted();
    if (req->peerurls_size() != 1) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                          "etcdserver: give exactly one peer URL (a Quorate "
                          "member has one address for peers and clients)");
    }
    const std::string address = AddressOf(req->peerurls(0));
    const std::string id =
        absl::StrCat("m", absl::Hex(EtcdId(address), absl::kZeroPad16));
    absl::StatusOr<uint64_t> added = c->ChangeMember(
        req->islearner() ? MemberChange::kAddLearner : MemberChange::kAdd, id,
        "default", address);
    if (!added.ok()) return Refusal(added.status());
    epb::Member* m = resp->mutable_member();
    m->set_id(EtcdId(id));
    m->add_peerurls(req->peerurls(0));
    m->set_islearner(req->islearner());
    return List(c, resp->mutable_header(), resp->mutable_members());
  }

  grpc::Status MemberRemove(grpc::ServerContext*,
                            const epb::MemberRemoveRequest* req,
                            epb::MemberRemoveResponse* resp) override {
    return Change(MemberChange::kRemove, req->id(), resp->mutable_header(),
                  resp->mutable_members());
  }

  grpc::Status MemberPromote(grpc::ServerContext*,
                             const epb::MemberPromoteRequest* req,
                             epb::MemberPromoteResponse* resp) override {
    return Change(MemberChange::kPromote, req->id(), resp->mutable_header(),
                  resp->mutable_members());
  }

  grpc::Status MemberUpdate(grpc::ServerContext*,
                            const epb::MemberUpdateRequest*,
                            epb::MemberUpdateResponse*) override {
    return grpc::Status(grpc::StatusCode::UNIMPLEMENTED,
                        "etcdserver: a Quorate member's address does not "
                        "change: remove the member and add it again");
  }

 private:
  using Members = google::protobuf::RepeatedPtrField<epb::Member>;

  void AddMembers(const Configuration& conf, Members* out) const {
    const char* scheme = g_->options.tls ? "https://" : "http://";
    for (const ConfigMember& m : conf.members) {
      epb::Member* e = out->Add();
      e->set_id(EtcdId(m.id));
      e->set_name(m.id);
      e->add_peerurls(absl::StrCat(scheme, m.address));
      e->add_clienturls(absl::StrCat(scheme, m.address));
      e->set_islearner(!m.voter);
    }
  }

  grpc::Status List(Client* c, epb::ResponseHeader* header, Members* out) {
    absl::StatusOr<Configuration> conf = c->MemberList();
    if (!conf.ok()) return ToEtcdStatus(conf.status());
    g_->FillNow(header);
    AddMembers(*conf, out);
    return grpc::Status::OK;
  }

  grpc::Status Change(MemberChange change, uint64_t etcd_id,
                      epb::ResponseHeader* header, Members* out) {
    Client* c = g_->client();
    if (c == nullptr) return Impl::NotStarted();
    absl::StatusOr<Configuration> conf = c->MemberList();
    if (!conf.ok()) return ToEtcdStatus(conf.status());
    auto it = std::find_if(
        conf->members.begin(), conf->members.end(),
        [etcd_id](const ConfigMember& m) { return EtcdId(m.id) == etcd_id; });
    if (it == conf->members.end()) {
      return grpc::Status(grpc::StatusCode::NOT_FOUND,
                          "etcdserver: member not found");
    }
    if (change == MemberChange::kPromote && it->voter) {
      return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                          "etcdserver: can only promote a learner member");
    }
    absl::StatusOr<uint64_t> done = c->ChangeMember(change, it->id);
    if (!done.ok()) return Refusal(done.status());
    return List(c, header, out);
  }

  static grpc::Status Refusal(const absl::Status& s) {
    if (absl::IsAlreadyExists(s)) {
      return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                          "etcdserver: Peer URLs already exists");
    }
    if (absl::IsFailedPrecondition(s) &&
        absl::StrContains(s.message(), "caught up")) {
      return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                          "etcdserver: can only promote a learner member "
                          "which is in sync with leader");
    }
    return ToEtcdStatus(s);
  }

  Impl* const g_;
};

// --- Maintenance ---

class MaintenanceImpl final : public epb::Maintenance::Service {
 public:
  explicit MaintenanceImpl(Impl* g) : g_(g) {}

  grpc::Status Status(grpc::ServerContext*, const epb::StatusRequest*,
                      epb::StatusResponse* resp) override {
    const EtcdLocalView v =
        g_->options.local ? g_->options.local() : EtcdLocalView{};
    g_->FillNow(resp->mutable_header());
    resp->set_version(v.version);
    resp->set_leader(v.leader_id.empty() ? 0 : EtcdId(v.leader_id));
    resp->set_raftindex(v.commit_index);
    resp->set_raftterm(v.term);
    resp->set_raftappliedindex(v.applied_index);
    resp->set_islearner(v.learner);
    if (v.leader_id.empty()) resp->add_errors("etcdserver: no leader");
    return grpc::Status::OK;
  }

  grpc::Status Alarm(grpc::ServerContext*, const epb::AlarmRequest* req,
                     epb::AlarmResponse* resp) override {
    if (req->action() != epb::AlarmRequest::GET) {
      return grpc::Status(grpc::StatusCode::UNIMPLEMENTED,
                          "etcdserver: Quorate raises no alarms (a member "
                          "short of disk stops writing and says so in its "
                          "log and /status)");
    }
    g_->FillNow(resp->mutable_header());
    return grpc::Status::OK;
  }

  grpc::Status Defragment(grpc::ServerContext*, const epb::DefragmentRequest*,
                          epb::DefragmentResponse* resp) override {
    // The store lives in memory and its files are compacted by snapshots:
    // there is nothing to defragment.
    g_->FillNow(resp->mutable_header());
    return grpc::Status::OK;
  }

  grpc::Status Snapshot(
      grpc::ServerContext* ctx, const epb::SnapshotRequest*,
      grpc::ServerWriter<epb::SnapshotResponse>* writer) override {
    Client* c = g_->client();
    if (c == nullptr) return Impl::NotStarted();
    absl::StatusOr<client::Kv::Stub*> stub = WireStub(c, g_->self);
    if (!stub.ok()) return ToEtcdStatus(stub.status());
    auto native_ctx = grpc::ClientContext::FromServerContext(*ctx);
    auto stream = (*stub)->SnapshotSave(native_ctx.get());
    if (!stream->Write(client::SnapshotSaveRequest()) ||
        !stream->WritesDone()) {
      native_ctx->TryCancel();
      return ToEtcdStatus(FromGrpcStatus(stream->Finish()));
    }
    client::SnapshotSaveChunk chunk;
    uint64_t total = 0, sent = 0;
    bool first = true;
    while (stream->Read(&chunk)) {
      if (first) total = chunk.total_size();
      epb::SnapshotResponse r;
      if (first) g_->FillNow(r.mutable_header());
      first = false;
      sent += chunk.data().size();
      r.set_remaining_bytes(total > sent ? total - sent : 0);
      r.set_blob(std::move(*chunk.mutable_data()));
      if (!writer->Write(r)) {
        native_ctx->TryCancel();
        break;
      }
    }
    const grpc::Status s = stream->Finish();
    if (!s.ok()) return ToEtcdStatus(FromGrpcStatus(s));
    return grpc::Status::OK;
  }

  grpc::Status MoveLeader(grpc::ServerContext*,
                          const epb::MoveLeaderRequest* req,
                          epb::MoveLeaderResponse* resp) override {
    Client* c = g_->client();
    if (c == nullptr) return Impl::NotStarted();
    absl::StatusOr<Configuration> conf = c->MemberList();
    if (!conf.ok()) return ToEtcdStatus(conf.status());
    for (const ConfigMember& m : conf->members) {
      if (EtcdId(m.id) != req->targetid()) continue;
      absl::StatusOr<std::string> led = c->TransferLeadership(m.id);
      if (!led.ok()) return ToEtcdStatus(led.status());
      if (*led != m.id) {
        return grpc::Status(grpc::StatusCode::UNAVAILABLE,
                            absl::StrCat("etcdserver: leadership went to ",
                                         *led, ", not ", m.id));
      }
      g_->FillNow(resp->mutable_header());
      return grpc::Status::OK;
    }
    return grpc::Status(grpc::StatusCode::NOT_FOUND,
                        "etcdserver: member not found");
  }

  // Hash and HashKV are not served (UNIMPLEMENTED, the default).

 private:
  Impl* const g_;
};

}  // namespace

EtcdGateway::EtcdGateway(EtcdGatewayOptions options)
    : impl_(std::make_unique<Impl>(std::move(options))) {
  impl_->kv = std::make_unique<KvImpl>(impl_.get());
  impl_->lease = std::make_unique<LeaseImpl>(impl_.get());
  impl_->cluster = std::make_unique<ClusterImpl>(impl_.get());
  impl_->maintenance = std::make_unique<MaintenanceImpl>(impl_.get());
  impl_->watch = etcd::NewWatchService(impl_.get());
  impl_->election = etcd::NewElectionService(impl_.get());
  impl_->lock = etcd::NewLockService(impl_.get());
}

EtcdGateway::~EtcdGateway() = default;

std::vector<grpc::Service*> EtcdGateway::services() {
  return {impl_->kv.get(),      impl_->watch.get(),       impl_->lease.get(),
          impl_->cluster.get(), impl_->maintenance.get(), impl_->election.get(),
          impl_->lock.get()};
}

void EtcdGateway::Start(std::unique_ptr<Client> client,
                        std::string self_address) {
  impl_->client_ = std::move(client);
  impl_->self = std::move(self_address);
  impl_->started.store(true, std::memory_order_release);
}

}  // namespace quorate::api
