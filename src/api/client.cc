// quorate::Client (include/quorate/client.h) over the Kv gRPC service.
#include "quorate/client.h"

#include <grpcpp/grpcpp.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <future>
#include <map>
#include <random>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "api/client_internal.h"
#include "api/watch_mux.h"
#include "coord/fence_check.h"
#include "coord/kv.h"
#include "coord/lease_holder.h"
#include "quorate/fence.h"
#include "storage/file.h"
#include "storage/storage.h"
#include "transport/grpc_status.h"
#include "transport/tls.h"
#include "util/clock.h"
#include "util/mutex.h"
#include "wire/client.grpc.pb.h"

namespace quorate {

std::string PrefixEnd(absl::string_view prefix) {
  return coord::PrefixEnd(prefix);
}

namespace {
Compare Make(std::string key, Compare::Target target, Compare::Op op) {
  Compare c;
  c.key = std::move(key);
  c.target = target;
  c.op = op;
  return c;
}
}  // namespace

Compare Compare::Value(std::string key, Op op, std::string value) {
  Compare c = Make(std::move(key), Target::kValue, op);
  c.value = std::move(value);
  return c;
}
Compare Compare::Version(std::string key, Op op, int64_t version) {
  Compare c = Make(std::move(key), Target::kVersion, op);
  c.number = version;
  return c;
}
Compare Compare::CreateRevision(std::string key, Op op, int64_t revision) {
  Compare c = Make(std::move(key), Target::kCreateRevision, op);
  c.number = revision;
  return c;
}
Compare Compare::ModRevision(std::string key, Op op, int64_t revision) {
  Compare c = Make(std::move(key), Target::kModRevision, op);
  c.number = revision;
  return c;
}
Compare Compare::Lease(std::string key, Op op, int64_t lease) {
  Compare c = Make(std::move(key), Target::kLease, op);
  c.number = lease;
  return c;
}

TxnOp TxnOp::Put(std::string key, std::string value, uint64_t lease) {
  TxnOp op;
  op.kind = Kind::kPut;
  op.key = std::move(key);
  op.value = std::move(value);
  op.lease = lease;
  return op;
}
TxnOp TxnOp::Delete(std::string key, std::string range_end) {
  TxnOp op;
  op.kind = Kind::kDelete;
  op.key = std::move(key);
  op.range.range_end = std::move(range_end);
  return op;
}
TxnOp TxnOp::Range(std::string key, RangeOptions options) {
  TxnOp op;
  op.kind = Kind::kRange;
  op.key = std::move(key);
  op.range = std::move(options);
  return op;
}

namespace {

client::RangeRequest ToWire(absl::string_view key, const RangeOptions& o) {
  client::RangeRequest r;
  r.set_key(std::string(key));
  r.set_range_end(o.range_end);
  r.set_limit(o.limit);
  r.set_sort_order(o.descending ? client::RangeRequest::DESCEND
                                : client::RangeRequest::ASCEND);
  switch (o.sort_by) {
    case RangeOptions::SortBy::kKey:
      r.set_sort_target(client::RangeRequest::KEY);
      break;
    case RangeOptions::SortBy::kVersion:
      r.set_sort_target(client::RangeRequest::VERSION);
      break;
    case RangeOptions::SortBy::kCreateRevision:
      r.set_sort_target(client::RangeRequest::CREATE);
      break;
    case RangeOptions::SortBy::kModRevision:
      r.set_sort_target(client::RangeRequest::MOD);
      break;
    case RangeOptions::SortBy::kValue:
      r.set_sort_target(client::RangeRequest::VALUE);
      break;
  }
  r.set_keys_only(o.keys_only);
  r.set_count_only(o.count_only);
  r.set_serializable(o.stale);
  r.set_revision(o.revision);
  return r;
}

RangeResult FromWire(const client::RangeResponse& r) {
  RangeResult out;
  out.count = r.count();
  out.more = r.more();
  out.revision = r.revision();
  out.kvs.reserve(static_cast<size_t>(r.kvs_size()));
  for (const client::KeyValue& kv : r.kvs()) {
    out.kvs.push_back(api::FromWire(kv));
  }
  return out;
}

client::Compare ToWire(const Compare& c) {
  client::Compare w;
  w.set_key(c.key);
  w.set_range_end(c.range_end);
  switch (c.op) {
    case Compare::Op::kEqual:
      w.set_result(client::Compare::EQUAL);
      break;
    case Compare::Op::kNotEqual:
      w.set_result(client::Compare::NOT_EQUAL);
      break;
    case Compare::Op::kLess:
      w.set_result(client::Compare::LESS);
      break;
    case Compare::Op::kGreater:
      w.set_result(client::Compare::GREATER);
      break;
  }
  switch (c.target) {
    case Compare::Target::kValue:
      w.set_target(client::Compare::VALUE);
      w.set_value(c.value);
      break;
    case Compare::Target::kVersion:
      w.set_target(client::Compare::VERSION);
      w.set_version(c.number);
      break;
    case Compare::Target::kCreateRevision:
      w.set_target(client::Compare::CREATE);
      w.set_create_revision(c.number);
      break;
    case Compare::Target::kModRevision:
      w.set_target(client::Compare::MOD);
      w.set_mod_revision(c.number);
      break;
    case Compare::Target::kLease:
      w.set_target(client::Compare::LEASE);
      w.set_lease(c.number);
      break;
  }
  return w;
}

client::RequestOp ToWire(const TxnOp& op) {
  client::RequestOp w;
  switch (op.kind) {
    case TxnOp::Kind::kPut:
      w.mutable_put()->set_key(op.key);
      w.mutable_put()->set_value(op.value);
      w.mutable_put()->set_lease(op.lease);
      break;
    case TxnOp::Kind::kDelete:
      w.mutable_delete_range()->set_key(op.key);
      w.mutable_delete_range()->set_range_end(op.range.range_end);
      break;
    case TxnOp::Kind::kRange:
      *w.mutable_range() = ToWire(op.key, op.range);
      break;
  }
  return w;
}

std::string Metadata(const grpc::ClientContext& ctx, const std::string& key) {
  const auto& md = ctx.GetServerTrailingMetadata();
  auto it = md.find(key);
  return it == md.end() ? ""
                        : std::string(it->second.data(), it->second.size());
}

class ClientImpl final : public Client {
 public:
  explicit ClientImpl(ClientOptions options) : o_(std::move(options)) {
    std::random_device rd;
    client_id_ = (uint64_t{rd()} << 32) | rd();
    if (client_id_ == 0) client_id_ = 1;
  }

  absl::Status Init() {
    if (o_.endpoints.empty()) {
      return absl::InvalidArgumentError("no endpoints given");
    }
    if (o_.timeout <= absl::ZeroDuration()) {
      return absl::InvalidArgumentError("the timeout must be positive");
    }
    absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> creds =
        transport::ChannelCredentials(
            {o_.tls.ca_file, o_.tls.cert_file, o_.tls.key_file});
    if (!creds.ok()) return creds.status();
    creds_ = *std::move(creds);
    api::WatchLink link;
    link.stub = [this](const std::string& address) { return Stub(address); };
    link.pick = [this] { return Pick(); };
    link.await_connected = [this](const std::string& address,
                                  absl::Duration timeout) {
      return AwaitConnected(address, timeout);
    };
    link.connected = [this](const std::string& address) {
      return Connected(address);
    };
    link.endpoints = o_.endpoints;
    link.accept_timeout = o_.timeout;
    watches_ = std::make_unique<api::WatchMux>(std::move(link));
    return absl::OkStatus();
  }

  absl::StatusOr<uint64_t> Put(absl::string_view key,
                               absl::string_view value) override {
    return Put(key, value, /*lease=*/0);
  }

  absl::StatusOr<uint64_t> Put(absl::string_view key, absl::string_view value,
                               uint64_t lease) override {
    client::PutRequest req;
    req.set_key(std::string(key));
    req.set_value(std::string(value));
    req.set_lease(lease);
    SetOp(req.mutable_op());
    client::PutResponse resp;
    absl::Status s = Call(true, &client::Kv::Stub::Put, req, &resp);
    if (!s.ok()) return s;
    return resp.revision();
  }

  absl::StatusOr<uint64_t> Delete(absl::string_view key) override {
    client::DeleteRequest req;
    req.set_key(std::string(key));
    SetOp(req.mutable_op());
    client::DeleteResponse resp;
    absl::Status s = Call(true, &client::Kv::Stub::Delete, req, &resp);
    if (!s.ok()) return s;
    return resp.revision();
  }

  absl::StatusOr<uint64_t> CompareAndSet(absl::string_view key,
                                         uint64_t expected_revision,
                                         absl::string_view value) override {
    client::CasRequest req;
    req.set_key(std::string(key));
    req.set_expected_revision(expected_revision);
    req.set_value(std::string(value));
    SetOp(req.mutable_op());
    client::CasResponse resp;
    absl::Status s = Call(true, &client::Kv::Stub::Cas, req, &resp);
    if (!s.ok()) return s;
    return resp.revision();
  }

  absl::StatusOr<KeyValue> Get(absl::string_view key, bool stale) override {
    client::GetRequest req;
    req.set_key(std::string(key));
    req.set_stale(stale);
    client::GetResponse resp;
    absl::Status s = Call(false, &client::Kv::Stub::Get, req, &resp);
    if (!s.ok()) return s;
    if (!resp.found()) {
      return absl::NotFoundError(absl::StrCat("key '", key, "' not found"));
    }
    return KeyValue{resp.value(), resp.revision(), resp.read_revision()};
  }

  absl::StatusOr<RangeResult> Range(absl::string_view key,
                                    const RangeOptions& options) override {
    client::RangeResponse resp;
    absl::Status s =
        Call(false, &client::Kv::Stub::Range, ToWire(key, options), &resp);
    if (!s.ok()) return s;
    return FromWire(resp);
  }

  absl::StatusOr<TxnResult> Txn(const Transaction& txn) override {
    client::TxnRequest req;
    for (const Compare& c : txn.compare) *req.add_compare() = ToWire(c);
    for (const TxnOp& op : txn.success) *req.add_success() = ToWire(op);
    for (const TxnOp& op : txn.failure) *req.add_failure() = ToWire(op);
    const bool write = !coord::IsReadOnly(req);
    if (write) SetOp(req.mutable_op());
    client::TxnResponse resp;
    absl::Status s = Call(write, &client::Kv::Stub::Txn, req, &resp);
    if (!s.ok()) return s;
    TxnResult out;
    out.succeeded = resp.succeeded();
    out.revision = resp.revision();
    out.replayed = resp.replayed();
    for (const client::ResponseOp& r : resp.responses()) {
      TxnOpResult one;
      if (r.has_put()) one.revision = r.put().revision();
      if (r.has_delete_range()) one.deleted = r.delete_range().deleted();
      if (r.has_range()) one.range = FromWire(r.range());
      out.results.push_back(std::move(one));
    }
    return out;
  }

  absl::StatusOr<Configuration> MemberList() override {
    client::MemberListResponse r;
    absl::Status s = Call(false, &client::Kv::Stub::MemberList,
                          client::MemberListRequest(), &r);
    if (!s.ok()) return s;
    if (!r.leader().empty() && r.leader() != r.answered_by()) {
      // The leader's view is the newest, and only it knows who caught up.
      for (const client::MemberListResponse::Member& m : r.members()) {
        if (m.id() != r.leader()) continue;
        grpc::ClientContext ctx;
        ctx.set_deadline(absl::ToChronoTime(absl::Now() + o_.timeout));
        client::MemberListResponse from_leader;
        if (Stub(m.address())
                ->MemberList(&ctx, client::MemberListRequest(), &from_leader)
                .ok()) {
          r = std::move(from_leader);
        }
        break;
      }
    }
    Configuration out;
    out.cluster_id = r.cluster_id();
    out.leader = r.leader();
    out.from_leader = !r.leader().empty() && r.leader() == r.answered_by();
    out.commit_index = r.commit_index();
    for (const client::MemberListResponse::Member& m : r.members()) {
      out.members.push_back({m.id(), m.zone(), m.address(), m.voter(),
                             m.version(), m.match_index(), m.caught_up()});
    }
    return out;
  }

  absl::StatusOr<uint64_t> ChangeMember(MemberChange change,
                                        absl::string_view id,
                                        absl::string_view zone,
                                        absl::string_view address) override {
    client::MemberChangeRequest req;
    switch (change) {
      case MemberChange::kAdd:
        req.set_type(client::MEMBER_CHANGE_TYPE_ADD);
        break;
      case MemberChange::kAddLearner:
        req.set_type(client::MEMBER_CHANGE_TYPE_ADD_LEARNER);
        break;
      case MemberChange::kRemove:
        req.set_type(client::MEMBER_CHANGE_TYPE_REMOVE);
        break;
      case MemberChange::kPromote:
        req.set_type(client::MEMBER_CHANGE_TYPE_PROMOTE);
        break;
    }
    req.set_id(std::string(id));
    req.set_zone(std::string(zone));
    req.set_address(std::string(address));
    client::MemberChangeResponse r;
    absl::Status s = Call(true, &client::Kv::Stub::MemberChange, req, &r,
                          /*retry_maybe_applied=*/false);
    if (s.ok()) return r.index();
    if (!absl::IsUnknown(s)) return s;
    // Perhaps applied: a retry would be refused (ALREADY_EXISTS, say) if
    // it was. The configuration says whether it is in place.
    absl::StatusOr<Configuration> conf = MemberList();
    if (conf.ok()) {
      const ConfigMember* m = nullptr;
      for (const ConfigMember& x : conf->members) {
        if (x.id == id) m = &x;
      }
      const bool in_place =
          change == MemberChange::kRemove
              ? m == nullptr
              : m != nullptr &&
                    (change == MemberChange::kAddLearner ? !m->voter
                                                         : m->voter) &&
                    (change == MemberChange::kPromote || m->address == address);
      if (in_place) return uint64_t{0};
    }
    return absl::UnknownError(absl::StrCat(
        s.message(), ". `quoratectl member list` shows whether it was"));
  }

  absl::StatusOr<std::string> TransferLeadership(
      absl::string_view to) override {
    client::TransferLeaderRequest req;
    req.set_to(std::string(to));
    client::TransferLeaderResponse r;
    absl::Status s = Call(false, &client::Kv::Stub::TransferLeader, req, &r);
    if (!s.ok()) return s;
    return r.leader();
  }

  absl::StatusOr<SavedSnapshot> SaveSnapshot(const std::string& path) override {
    std::string last_error = "no member answered";
    for (const std::string& address : o_.endpoints) {
      absl::StatusOr<SavedSnapshot> saved = SaveSnapshotFrom(address, path);
      if (saved.ok() || absl::IsDataLoss(saved.status()) ||
          absl::IsFailedPrecondition(saved.status())) {
        return saved;
      }
      last_error = absl::StrCat(address, ": ", saved.status().message());
    }
    return absl::UnavailableError(
        absl::StrCat("no member sent a snapshot. Last error: ", last_error));
  }

  absl::StatusOr<std::vector<ClusterMember>> Members() override {
    client::MemberStatusResponse first;
    absl::Status s = Call(false, &client::Kv::Stub::MemberStatus,
                          client::MemberStatusRequest(), &first);
    if (!s.ok()) return s;
    std::vector<ClusterMember> out;
    // One deadline for the whole call, not one per member.
    const absl::Time deadline = absl::Now() + o_.timeout;
    for (int i = 0; i < first.member_ids_size(); ++i) {
      ClusterMember m;
      m.id = first.member_ids(i);
      m.address = first.member_addresses(i);
      grpc::ClientContext ctx;
      ctx.set_deadline(absl::ToChronoTime(deadline));
      client::MemberStatusResponse r;
      const grpc::Status gs = Stub(m.address)->MemberStatus(
          &ctx, client::MemberStatusRequest(), &r);
      if (gs.ok()) {
        m.zone = r.zone();
        m.role = r.role();
        m.term = r.term();
        m.leader_id = r.leader_id();
        m.commit_index = r.commit_index();
        m.mode = r.mode();
        m.version = r.version();
        m.voter = r.voter();
        for (const client::MemberStatusResponse::Peer& p : r.peers()) {
          m.links.push_back(
              {p.id(), p.zone(), p.reachable(), p.last_contact_ms()});
        }
      } else {
        m.error = FromGrpcStatus(gs);
      }
      out.push_back(std::move(m));
    }
    return out;
  }

  absl::StatusOr<LeaseGrant> GrantLease(absl::Duration ttl,
                                        uint64_t id) override {
    client::LeaseGrantRequest req;
    req.set_ttl_ms(absl::ToInt64Milliseconds(ttl));
    req.set_id(id);
    SetOp(req.mutable_op());
    client::LeaseGrantResponse resp;
    absl::Status s = Call(true, &client::Kv::Stub::LeaseGrant, req, &resp);
    if (!s.ok()) return s;
    return LeaseGrant{resp.id(), absl::Milliseconds(resp.ttl_ms())};
  }

  absl::Status RevokeLease(uint64_t id) override {
    client::LeaseRevokeRequest req;
    req.set_id(id);
    SetOp(req.mutable_op());
    client::LeaseRevokeResponse resp;
    return Call(true, &client::Kv::Stub::LeaseRevoke, req, &resp);
  }

  absl::StatusOr<LeaseStatus> LeaseTimeToLive(uint64_t id, bool keys) override {
    client::LeaseTimeToLiveRequest req;
    req.set_id(id);
    req.set_keys(keys);
    client::LeaseTimeToLiveResponse resp;
    absl::Status s =
        Call(false, &client::Kv::Stub::LeaseTimeToLive, req, &resp);
    if (!s.ok()) return s;
    LeaseStatus out;
    out.id = resp.id();
    out.remaining = absl::Milliseconds(resp.remaining_ms());
    out.granted_ttl = absl::Milliseconds(resp.granted_ttl_ms());
    out.key_count = resp.key_count();
    out.keys.assign(resp.keys().begin(), resp.keys().end());
    return out;
  }

  absl::StatusOr<std::vector<uint64_t>> Leases() override {
    client::LeaseLeasesResponse resp;
    absl::Status s = Call(false, &client::Kv::Stub::LeaseLeases,
                          client::LeaseLeasesRequest(), &resp);
    if (!s.ok()) return s;
    return std::vector<uint64_t>(resp.ids().begin(), resp.ids().end());
  }

  absl::Status CheckFence(absl::string_view name, uint64_t epoch) override {
    const Fence fence{std::string(name), epoch};
    if (absl::Status s = ::quorate::CheckFence(fence, 0); !s.ok()) return s;
    client::CheckFenceRequest req;
    req.set_name(fence.name);
    client::CheckFenceResponse resp;
    absl::Status s = Call(false, &client::Kv::Stub::CheckFence, req, &resp);
    if (!s.ok()) return s;
    return coord::FenceVerdict(fence.name, epoch, {resp.epoch(), resp.held()});
  }

  absl::StatusOr<std::unique_ptr<Session>> StartSession(
      SessionOptions options) override;
  absl::StatusOr<std::unique_ptr<Session>> AdoptSession(
      uint64_t lease, SessionOptions options) override;
  absl::StatusOr<std::unique_ptr<Watcher>> Watch(absl::string_view key,
                                                 WatchOptions options) override;

  const ClientOptions& options() const { return o_; }

  // A transaction as the wire has it (api/client_internal.h).
  absl::Status WireTxn(client::TxnRequest req, client::TxnResponse* resp) {
    const bool write = !coord::IsReadOnly(req);
    if (write) SetOp(req.mutable_op());
    return Call(write, &client::Kv::Stub::Txn, req, resp);
  }

  absl::Status WireShard(client::ShardRequest req,
                         client::ShardResponse* resp) {
    SetOp(req.mutable_op());
    return Call(true, &client::Kv::Stub::Shard, req, resp);
  }

  template <class Req, class Resp>
  absl::Status WireCall(bool write, api::WireMethod<Req, Resp> rpc, Req req,
                        Resp* resp) {
    if constexpr (requires { req.mutable_op(); }) {
      if (write) SetOp(req.mutable_op());
    }
    return Call(write, rpc, req, resp);
  }

  absl::StatusOr<client::LeaseRenewalAnswer> WireRenew(uint64_t id) {
    const absl::Time deadline = absl::Now() + o_.timeout;
    std::string last_error = "no member answered";
    absl::Duration backoff = absl::Milliseconds(10);
    while (absl::Now() < deadline) {
      const std::string address = Pick();
      grpc::ClientContext ctx;
      ctx.set_deadline(absl::ToChronoTime(deadline));
      auto stream = Stub(address)->LeaseKeepAlive(&ctx);
      client::LeaseKeepAliveRequest req;
      req.add_renewals()->set_id(id);
      client::LeaseKeepAliveResponse resp;
      const bool answered = stream->Write(req) && stream->WritesDone() &&
                            stream->Read(&resp) && resp.answers_size() > 0;
      if (!answered) ctx.TryCancel();
      const grpc::Status gs = stream->Finish();
      if (answered) {
        const client::LeaseRenewalAnswer& a = resp.answers(0);
        if (a.code() != static_cast<int>(absl::StatusCode::kUnavailable)) {
          SetLeader(address);
          return a;
        }
        last_error = absl::StrCat(address, ": ", a.message());
        if (!a.leader_address().empty() && a.leader_address() != address) {
          SetLeader(a.leader_address());
          continue;
        }
      } else {
        last_error = absl::StrCat(address, ": ", gs.error_message());
      }
      Forget(address);
      BackOff(address, std::min(backoff, deadline - absl::Now()));
      backoff = std::min(backoff * 2, absl::Milliseconds(200));
    }
    return absl::UnavailableError(absl::StrCat(
        "no leader renewed the lease before the deadline. Last error: ",
        last_error));
  }

  // For sessions.
  client::Kv::Stub* Stub(const std::string& address) {
    MutexLock lock(&mu_);
    return LinkLocked(address).stub.get();
  }
  // Waits until the channel to `address` is connected or `timeout` passed,
  // polling it meanwhile; true if connected. gRPC moves a connection
  // attempt on only while something polls its channel (a call waiting on
  // it), or else every 5 s (its backup poller). A stream that broke waits
  // here before its next try, not on a timer: on a timer, a session
  // lapsed after a partition healed, its channel reconnecting 5 s late.
  // Whether the channel to `address` is connected now (no attempt made).
  bool Connected(const std::string& address) {
    std::shared_ptr<grpc::Channel> channel;
    {
      MutexLock lock(&mu_);
      channel = LinkLocked(address).channel;
    }
    return channel->GetState(false) == GRPC_CHANNEL_READY;
  }
  // Waits `d` before a call is retried, polling the channel of `address`
  // (the member the call just failed on) meanwhile, and returns early if it
  // becomes ready. gRPC moves a connection attempt on only while something
  // polls its channel; a plain sleep here left a reconnecting channel to
  // gRPC's backup poller (every 5 s), and each attempt has 2 s: after a
  // partition, calls failed one after another while their channels never
  // finished connecting (seen through an HTTP CONNECT proxy in make demo).
  void BackOff(const std::string& address, absl::Duration d) {
    std::shared_ptr<grpc::Channel> channel;
    {
      MutexLock lock(&mu_);
      channel = LinkLocked(address).channel;
    }
    grpc_connectivity_state state = channel->GetState(/*try_to_connect=*/true);
    if (state == GRPC_CHANNEL_READY) {
      // Connected, and it refused: nothing to poll for.
      absl::SleepFor(d);
      return;
    }
    const auto until = absl::ToChronoTime(absl::Now() + d);
    while (state != GRPC_CHANNEL_READY &&
           channel->WaitForStateChange(state, until)) {
      state = channel->GetState(/*try_to_connect=*/true);
    }
  }

  bool AwaitConnected(const std::string& address, absl::Duration timeout) {
    std::shared_ptr<grpc::Channel> channel;
    {
      MutexLock lock(&mu_);
      channel = LinkLocked(address).channel;
    }
    const auto deadline = absl::ToChronoTime(absl::Now() + timeout);
    for (grpc_connectivity_state state = channel->GetState(true);
         state != GRPC_CHANNEL_READY; state = channel->GetState(true)) {
      if (!channel->WaitForStateChange(state, deadline)) return false;
    }
    return true;
  }
  // The member to try next: the leader if known, else the endpoints in
  // turn.
  std::string Pick() {
    MutexLock lock(&mu_);
    if (!leader_.empty()) return leader_;
    return o_.endpoints[next_endpoint_++ % o_.endpoints.size()];
  }
  void SetLeader(const std::string& address) {
    MutexLock lock(&mu_);
    leader_ = address;
  }
  void Forget(const std::string& address) {
    MutexLock lock(&mu_);
    if (leader_ == address) leader_.clear();
  }

 private:
  // A member's channel, and the stub on it.
  struct Link {
    std::shared_ptr<grpc::Channel> channel;
    std::unique_ptr<client::Kv::Stub> stub;
  };
  Link& LinkLocked(const std::string& address)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    Link& link = links_[address];
    if (link.stub == nullptr) {
      grpc::ChannelArguments args;
      // A watch response holds one revision's events whole, however many
      // (a lease's keys end at one revision).
      args.SetMaxReceiveMessageSize(256 << 20);
      // Back within a second of a partition's end. gRPC's defaults wait
      // up to 120 s between attempts, give each attempt 20 s, and never
      // notice a black-holed connection: a session (whose window is a few
      // seconds) would lapse after the heal, its renewals written into a
      // dead stream or held back by the backoff.
      args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, 1'000);
      args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 2'000);
      args.SetInt(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
      args.SetInt(GRPC_ARG_HTTP2_MAX_PINGS_WITHOUT_DATA, 0);
      args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 50);
      args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 2'000);
      args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1'000);
      link.channel = grpc::CreateCustomChannel(address, creds_, args);
      link.stub = client::Kv::NewStub(link.channel);
    }
    return link;
  }

  template <typename Op>
  void SetOp(Op* op) {
    op->set_client(client_id_);
    op->set_seq(next_seq_.fetch_add(1) + 1);
  }

  // Calls `rpc` until it succeeds, is refused for good, or the deadline
  // passes. A write's retries carry the same operation id.
  template <typename Rpc, typename Req, typename Resp>
  // `retry_maybe_applied` false: a write without an operation id (which
  // a retry would apply again, or be refused for) stops at the first
  // attempt that may have been applied, with UNKNOWN.
  absl::Status Call(bool write, Rpc rpc, const Req& req, Resp* resp,
                    bool retry_maybe_applied = true) {
    if (in_flight_.fetch_add(1) >= o_.max_in_flight) {
      in_flight_.fetch_sub(1);
      return absl::ResourceExhaustedError(absl::StrCat(
          o_.max_in_flight, " calls are already in flight on this client"));
    }
    struct Release {
      std::atomic<size_t>* n;
      ~Release() { n->fetch_sub(1); }
    } release{&in_flight_};

    const absl::Time deadline = absl::Now() + o_.timeout;
    bool maybe_applied = false;
    std::string last_error = "no member answered";
    absl::Duration backoff = absl::Milliseconds(10);
    int hops = 0;  // leader hints followed in a row
    while (absl::Now() < deadline) {
      const std::string address = Pick();
      grpc::ClientContext ctx;
      ctx.set_deadline(absl::ToChronoTime(deadline));
      const grpc::Status gs = (Stub(address)->*rpc)(&ctx, req, resp);
      if (gs.ok()) {
        SetLeader(address);
        return absl::OkStatus();
      }
      const absl::Status s = FromGrpcStatus(gs);
      // The state machine's answer (a CAS conflict is ABORTED too).
      if (!Metadata(ctx, "quorate-final").empty()) return s;
      // ABORTED: the leader changed and the write was not applied.
      // CANCELLED: the member shut down mid-call. UNKNOWN: it stopped with
      // the write proposed. All are retried (a write with the same
      // operation id, so it is applied at most once) like an unreachable
      // leader.
      if (!absl::IsUnavailable(s) && !absl::IsDeadlineExceeded(s) &&
          !absl::IsAborted(s) && !absl::IsCancelled(s) && !absl::IsUnknown(s)) {
        return s;
      }
      last_error = absl::StrCat(address, ": ", s.message());
      const std::string hint = Metadata(ctx, "quorate-leader");
      // A member that refused before proposing applied nothing; anything
      // else (a broken connection, a deadline) may have.
      if (write && !absl::IsAborted(s) &&
          Metadata(ctx, "quorate-refused").empty()) {
        maybe_applied = true;
        if (!retry_maybe_applied) {
          return absl::UnknownError(absl::StrCat(
              "the outcome is not known (it may have been applied): ",
              last_error));
        }
      }
      // Follow a hint at once, but not round and round between members
      // whose views are stale.
      if (!hint.empty() && hint != address && ++hops <= 3) {
        SetLeader(hint);
        continue;
      }
      hops = 0;
      Forget(address);
      // Jittered, so that the threads sharing this client spread out.
      static thread_local std::mt19937 rng(std::random_device{}());
      const double jitter =
          std::uniform_real_distribution<double>(0.5, 1.5)(rng);
      const absl::Duration left = deadline - absl::Now();
      BackOff(address, std::min(backoff * jitter, left));
      backoff = std::min(backoff * 2, absl::Milliseconds(200));
    }
    if (write && maybe_applied) {
      // A code of its own (client.h): a program tests it, not the text.
      return absl::UnknownError(absl::StrCat(
          "no leader confirmed the write before the deadline; its outcome is "
          "unknown (it may have been applied). Last error: ",
          last_error));
    }
    return absl::UnavailableError(absl::StrCat(
        "no leader answered before the deadline. Last error: ", last_error));
  }

  // One member's snapshot into `path`. FAILED_PRECONDITION: the file
  // cannot be written; DATA_LOSS: what arrived does not check out.
  absl::StatusOr<SavedSnapshot> SaveSnapshotFrom(const std::string& address,
                                                 const std::string& path) {
    grpc::ClientContext ctx;
    // A large state takes a while to send: the client's timeout (meant for
    // one request) would cut it short.
    ctx.set_deadline(
        absl::ToChronoTime(absl::Now() + std::max(o_.timeout, absl::Hours(1))));
    auto stream = Stub(address)->SnapshotSave(&ctx);
    if (!stream->Write(client::SnapshotSaveRequest()) ||
        !stream->WritesDone()) {
      ctx.TryCancel();
      (void)stream->Finish();
      return absl::UnavailableError("cannot start the snapshot stream");
    }
    const std::string tmp = path + ".tmp";
    std::FILE* f = std::fopen(tmp.c_str(), "wb");
    if (f == nullptr) {
      ctx.TryCancel();
      (void)stream->Finish();
      return absl::FailedPreconditionError(
          absl::StrCat("cannot write ", tmp, ": ", std::strerror(errno)));
    }
    client::SnapshotSaveChunk chunk;
    uint64_t total = 0, written = 0, index = 0;
    bool write_failed = false;
    while (stream->Read(&chunk)) {
      if (written == 0) {
        total = chunk.total_size();
        index = chunk.index();
      }
      if (std::fwrite(chunk.data().data(), 1, chunk.data().size(), f) !=
          chunk.data().size()) {
        write_failed = true;
        ctx.TryCancel();
        break;
      }
      written += chunk.data().size();
    }
    const grpc::Status gs = stream->Finish();
    const bool synced = std::fflush(f) == 0 && ::fsync(fileno(f)) == 0;
    std::fclose(f);
    auto fail = [&](absl::Status s) {
      std::remove(tmp.c_str());
      return s;
    };
    if (write_failed || !synced) {
      return fail(absl::FailedPreconditionError(
          absl::StrCat("cannot write ", tmp, ": ", std::strerror(errno))));
    }
    if (!gs.ok()) return fail(FromGrpcStatus(gs));
    if (written != total) {
      return fail(
          absl::DataLossError(absl::StrCat("the snapshot stream ended after ",
                                           written, " of ", total, " bytes")));
    }
    absl::StatusOr<std::string> contents =
        storage::PosixFileSystem()->ReadFile(tmp);
    if (!contents.ok()) return fail(contents.status());
    if (absl::StatusOr<storage::SnapshotFile> file =
            storage::ReadSnapshotFile(*contents);
        !file.ok()) {
      return fail(absl::DataLossError(
          absl::StrCat("the snapshot from ", address,
                       " does not check out: ", file.status().message())));
    }
    if (std::rename(tmp.c_str(), path.c_str()) != 0) {
      return fail(absl::FailedPreconditionError(absl::StrCat(
          "cannot rename ", tmp, " to ", path, ": ", std::strerror(errno))));
    }
    return SavedSnapshot{index, written};
  }

  const ClientOptions o_;
  uint64_t client_id_ = 0;
  std::atomic<uint64_t> next_seq_{0};
  std::atomic<size_t> in_flight_{0};
  std::shared_ptr<grpc::ChannelCredentials> creds_;
  Mutex mu_;
  std::map<std::string, Link> links_ ABSL_GUARDED_BY(mu_);
  std::string leader_ ABSL_GUARDED_BY(mu_);
  size_t next_endpoint_ ABSL_GUARDED_BY(mu_) = 0;
  // Every watch, on few streams. Last: its threads use the stubs.
  std::unique_ptr<api::WatchMux> watches_;
};

// A session: coord::LeaseHolder (the deadline arithmetic, shared with the
// simulator) run on two threads of its own: one sends renewals on the
// KeepAlive stream (and reconnects it, following the leader), one reads
// the answers. The deadline is published in an atomic for Valid().
class SessionImpl final : public Session {
 public:
  // `granted_sent_ns`: when the grant was sent (the first renewal). An
  // adopted lease (`adopt_give_up_ns` > 0) counts from nothing: its first
  // renewal makes it valid.
  SessionImpl(ClientImpl* client, SessionOptions options, uint64_t lease,
              int64_t ttl_ms, int64_t granted_sent_ns,
              int64_t adopt_give_up_ns = 0)
      : client_(client),
        options_(std::move(options)),
        lease_(lease),
        holder_(HolderOptionsOf(options_), ttl_ms,
                adopt_give_up_ns > 0
                    ? granted_sent_ns -
                          coord::HolderWindow(ttl_ms, HolderOptionsOf(options_))
                    : granted_sent_ns),
        adopted_(adopt_give_up_ns > 0),
        adopt_give_up_ns_(adopt_give_up_ns) {
    Publish();
    done_future_ = done_.get_future().share();
    thread_ = std::thread([this] { Run(); });
  }

  ~SessionImpl() override { Shutdown(); }

  uint64_t lease() const override { return lease_; }
  bool Valid() const override {
    return BootTimeNowNs() < deadline_ns_.load(std::memory_order_acquire);
  }
  bool InJeopardy() const override {
    const int64_t left =
        deadline_ns_.load(std::memory_order_acquire) - BootTimeNowNs();
    return left > 0 && left < window_ns_.load(std::memory_order_acquire) / 2;
  }
  absl::Duration Remaining() const override {
    return absl::Nanoseconds(std::max<int64_t>(
        0, deadline_ns_.load(std::memory_order_acquire) - BootTimeNowNs()));
  }
  std::shared_future<void> Done() const override { return done_future_; }
  double max_clock_drift() const override { return options_.max_clock_drift; }
  absl::Duration margin() const override { return options_.margin; }

  absl::Status Close() override {
    {
      MutexLock lock(&mu_);
      holder_.End();
      Publish();
    }
    Shutdown();
    return client_->RevokeLease(lease_);
  }

 private:
  static coord::HolderOptions HolderOptionsOf(const SessionOptions& o) {
    coord::HolderOptions h;
    h.max_clock_drift = o.max_clock_drift;
    h.margin_ns = absl::ToInt64Nanoseconds(o.margin);
    return h;
  }

  void Publish() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    window_ns_.store(holder_.window_ns(), std::memory_order_release);
    deadline_ns_.store(holder_.ended() ? 0 : holder_.deadline_ns(),
                       std::memory_order_release);
  }

  void Shutdown() {
    {
      MutexLock lock(&mu_);
      if (stopping_) return;
      stopping_ = true;
      if (ctx_ != nullptr) ctx_->TryCancel();
      wake_.SignalAll();
    }
    if (thread_.joinable()) thread_.join();
  }

  // The stream to `address`, and its reader.
  void Connect(const std::string& address) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    ctx_ = std::make_unique<grpc::ClientContext>();
    stream_ = client_->Stub(address)->LeaseKeepAlive(ctx_.get());
    address_ = address;
    broken_ = false;
    heard_on_stream_ = false;
    reader_ = std::thread([this, stream = stream_.get()] { Read(stream); });
  }
  // Closes the stream (the reader sees it end) and joins the reader.
  void Disconnect() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (stream_ == nullptr) return;
    ctx_->TryCancel();
    std::thread reader = std::move(reader_);
    mu_.Unlock();
    reader.join();
    mu_.Lock();
    stream_.reset();
    ctx_.reset();
  }

  void Read(grpc::ClientReaderWriter<client::LeaseKeepAliveRequest,
                                     client::LeaseKeepAliveResponse>* stream) {
    client::LeaseKeepAliveResponse batch;
    while (stream->Read(&batch)) {
      MutexLock lock(&mu_);
      heard_on_stream_ = true;
      for (const client::LeaseRenewalAnswer& r : batch.answers()) {
        const absl::Status status(static_cast<absl::StatusCode>(r.code()),
                                  r.message());
        holder_.Answered(r.cookie(), status, r.ttl_ms(), BootTimeNowNs());
        if (status.ok()) renewed_ = true;
        if (absl::IsUnavailable(status)) {
          // Not the leader: go where it points, or anywhere else.
          redirect_ = r.leader_address();
          broken_ = true;
        } else if (status.ok()) {
          client_->SetLeader(address_);
        }
      }
      Publish();
      wake_.SignalAll();
    }
    MutexLock lock(&mu_);
    broken_ = true;
    wake_.SignalAll();
  }

  void Run() {
    MutexLock lock(&mu_);
    int64_t last_send = 0;
    absl::Duration backoff = absl::Milliseconds(20);
    std::string next_try;  // the member the backoff waited for
    // Resend an unanswered renewal this often (it may have been lost).
    const int64_t resend =
        std::max<int64_t>(holder_.window_ns() / 10, 50'000'000);
    // Until a new stream's first answer: renewals written into a stream
    // just reopened after a partition (through a CONNECT proxy, in make
    // demo) were answered only once the client wrote again, so a session
    // came back 2 to 5 s after the heal with the resend above (0.2 to
    // 1.2 s with this one). Only fresh streams resend so fast, so an
    // overloaded leader's slow answers are not multiplied.
    const int64_t fresh_resend = std::min<int64_t>(resend, 100'000'000);
    while (!stopping_) {
      const int64_t now = BootTimeNowNs();
      Evaluate(now);
      if (renewed_) {
        renewed_ = false;
        if (options_.on_renewed) {
          const absl::Duration left = Remaining();
          mu_.Unlock();
          options_.on_renewed(left);
          mu_.Lock();
        }
      }
      // An adopted lease is not valid before its first answer: it may be
      // renewed until then.
      if (holder_.ended() ||
          (!holder_.Valid(now) &&
           !(adopted_ && !ever_valid_ && now < adopt_give_up_ns_))) {
        break;
      }
      ever_valid_ = ever_valid_ || holder_.Valid(now);
      if (stream_ != nullptr && broken_) {
        const std::string redirect = std::move(redirect_);
        redirect_.clear();
        client_->Forget(address_);
        if (!redirect.empty()) client_->SetLeader(redirect);
        Disconnect();
        if (stopping_) break;
        if (redirect.empty()) {
          // The backoff, cut short only if the member to try next gets
          // connected meanwhile (a member that is connected but refused
          // the stream waits it out), looking at stopping_ every 50 ms.
          next_try = client_->Pick();
          const bool was_up = client_->Connected(next_try);
          const absl::Time until = absl::Now() + backoff;
          for (absl::Time t = absl::Now(); t < until && !stopping_;
               t = absl::Now()) {
            const absl::Duration slice =
                std::min(until - t, absl::Milliseconds(50));
            if (was_up) {
              wake_.WaitWithTimeout(&mu_, slice);
              continue;
            }
            mu_.Unlock();
            const bool up = client_->AwaitConnected(next_try, slice);
            mu_.Lock();
            if (up) break;
          }
          backoff = std::min(backoff * 2, absl::Milliseconds(500));
          continue;
        }
      }
      if (stream_ == nullptr) {
        Connect(next_try.empty() ? client_->Pick()
                                 : std::exchange(next_try, std::string()));
        last_send = 0;  // an unanswered renewal goes again at once
      }
      const int64_t resend_now = heard_on_stream_ ? resend : fresh_resend;
      if (now >= holder_.NextRenewalAt() &&
          (holder_.outstanding() == 0 || now - last_send >= resend_now)) {
        client::LeaseKeepAliveRequest req;
        client::LeaseRenewal* renewal = req.add_renewals();
        renewal->set_id(lease_);
        renewal->set_cookie(holder_.RenewalSent(now));
        last_send = now;
        grpc::ClientReaderWriter<client::LeaseKeepAliveRequest,
                                 client::LeaseKeepAliveResponse>* stream =
            stream_.get();
        mu_.Unlock();
        const bool sent = stream->Write(req);
        mu_.Lock();
        if (!sent) broken_ = true;
        if (sent) backoff = absl::Milliseconds(20);
        continue;
      }
      // Until the next renewal, a resend, jeopardy (if still ahead: once
      // in it, waking for it again at once would spin the loop until the
      // next resend, a core's worth of CPU in every cut-off holder) or the
      // deadline.
      int64_t next = holder_.NextRenewalAt();
      if (holder_.outstanding() > 0) {
        next = std::max(next, last_send + resend_now);
      }
      const int64_t jeopardy_at =
          holder_.deadline_ns() - holder_.window_ns() / 2;
      if (!in_jeopardy_ && holder_.Valid(now)) {
        next = std::min(next, std::max(jeopardy_at, now + 1));
      }
      // (An adopted lease's deadline is behind it until its first answer.)
      if (holder_.deadline_ns() > now) {
        next = std::min(next, holder_.deadline_ns());
      }
      if (next > now)
        wake_.WaitWithTimeout(&mu_, absl::Nanoseconds(next - now));
    }
    Evaluate(BootTimeNowNs());
    Disconnect();
    // Over: by its deadline, the cluster's word, Close() or destruction.
    holder_.End();
    Publish();
    Call(options_.on_expired);
    done_.set_value();
  }

  // Reports jeopardy and safety as they change. Under mu_; the callbacks
  // run without it.
  void Evaluate(int64_t now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    const bool jeopardy = holder_.InJeopardy(now);
    if (jeopardy == in_jeopardy_) return;
    in_jeopardy_ = jeopardy;
    if (!holder_.Valid(now)) return;  // over: on_expired says it
    Call(jeopardy ? options_.on_jeopardy : options_.on_safe);
  }
  void Call(const std::function<void()>& fn)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (!fn) return;
    mu_.Unlock();
    fn();
    mu_.Lock();
  }

  ClientImpl* const client_;
  const SessionOptions options_;
  const uint64_t lease_;
  Mutex mu_;
  CondVar wake_;
  coord::LeaseHolder holder_ ABSL_GUARDED_BY(mu_);
  std::atomic<int64_t> deadline_ns_{0};
  std::atomic<int64_t> window_ns_{0};
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  bool in_jeopardy_ ABSL_GUARDED_BY(mu_) = false;
  std::unique_ptr<grpc::ClientContext> ctx_ ABSL_GUARDED_BY(mu_);
  std::unique_ptr<grpc::ClientReaderWriter<client::LeaseKeepAliveRequest,
                                           client::LeaseKeepAliveResponse>>
      stream_ ABSL_GUARDED_BY(mu_);
  std::string address_ ABSL_GUARDED_BY(mu_);
  std::string redirect_ ABSL_GUARDED_BY(mu_);
  bool broken_ ABSL_GUARDED_BY(mu_) = false;
  // The current stream has delivered an answer.
  bool heard_on_stream_ ABSL_GUARDED_BY(mu_) = false;
  bool renewed_ ABSL_GUARDED_BY(mu_) = false;
  bool ever_valid_ ABSL_GUARDED_BY(mu_) = false;
  std::thread reader_;
  // An adopted lease is renewed until valid, or given up on at this time.
  const bool adopted_;
  const int64_t adopt_give_up_ns_;
  std::promise<void> done_;
  std::shared_future<void> done_future_;
  std::thread thread_;
};

absl::StatusOr<std::unique_ptr<Session>> ClientImpl::StartSession(
    SessionOptions options) {
  // The grant is the first renewal: counted from before it was sent.
  const int64_t sent = BootTimeNowNs();
  absl::StatusOr<LeaseGrant> grant = GrantLease(options.ttl, 0);
  if (!grant.ok()) return grant.status();
  return std::unique_ptr<Session>(
      new SessionImpl(this, std::move(options), grant->id,
                      absl::ToInt64Milliseconds(grant->ttl), sent));
}

absl::StatusOr<std::unique_ptr<Session>> ClientImpl::AdoptSession(
    uint64_t lease, SessionOptions options) {
  absl::StatusOr<LeaseStatus> status = LeaseTimeToLive(lease, false);
  if (!status.ok()) return status.status();
  const int64_t now = BootTimeNowNs();
  const int64_t ttl_ms = absl::ToInt64Milliseconds(status->granted_ttl);
  return std::unique_ptr<Session>(new SessionImpl(
      this, std::move(options), lease, ttl_ms, now, now + ttl_ms * 1'000'000));
}

absl::StatusOr<std::unique_ptr<Watcher>> ClientImpl::Watch(
    absl::string_view key, WatchOptions options) {
  if (absl::Status s = coord::CheckRange(key, options.range_end); !s.ok()) {
    return s;
  }
  return watches_->Watch(std::string(key), std::move(options));
}

}  // namespace

namespace api {

KeyRecord FromWire(const client::KeyValue& kv) {
  return KeyRecord{kv.key(),          kv.value(),   kv.create_revision(),
                   kv.mod_revision(), kv.version(), kv.lease()};
}

namespace {

absl::StatusOr<ClientImpl*> ImplOf(Client* c) {
  auto* impl = dynamic_cast<ClientImpl*>(c);
  if (impl == nullptr) {
    return absl::InvalidArgumentError(
        "elections, locks and shard groups need a Client made by "
        "Client::Create");
  }
  return impl;
}

}  // namespace

absl::Status WireTxn(Client* c, client::TxnRequest req,
                     client::TxnResponse* resp) {
  absl::StatusOr<ClientImpl*> impl = ImplOf(c);
  if (!impl.ok()) return impl.status();
  return (*impl)->WireTxn(std::move(req), resp);
}

absl::Status WireShard(Client* c, client::ShardRequest req,
                       client::ShardResponse* resp) {
  absl::StatusOr<ClientImpl*> impl = ImplOf(c);
  if (!impl.ok()) return impl.status();
  return (*impl)->WireShard(std::move(req), resp);
}

template <class Req, class Resp>
absl::Status WireCall(Client* c, bool write, WireMethod<Req, Resp> rpc, Req req,
                      Resp* resp) {
  absl::StatusOr<ClientImpl*> impl = ImplOf(c);
  if (!impl.ok()) return impl.status();
  return (*impl)->WireCall(write, rpc, std::move(req), resp);
}

template absl::Status WireCall(
    Client*, bool, WireMethod<client::RangeRequest, client::RangeResponse>,
    client::RangeRequest, client::RangeResponse*);
template absl::Status WireCall(
    Client*, bool, WireMethod<client::CompactRequest, client::CompactResponse>,
    client::CompactRequest, client::CompactResponse*);
template absl::Status WireCall(
    Client*, bool,
    WireMethod<client::LeaseGrantRequest, client::LeaseGrantResponse>,
    client::LeaseGrantRequest, client::LeaseGrantResponse*);
template absl::Status WireCall(
    Client*, bool,
    WireMethod<client::LeaseRevokeRequest, client::LeaseRevokeResponse>,
    client::LeaseRevokeRequest, client::LeaseRevokeResponse*);
template absl::Status WireCall(
    Client*, bool,
    WireMethod<client::LeaseTimeToLiveRequest, client::LeaseTimeToLiveResponse>,
    client::LeaseTimeToLiveRequest, client::LeaseTimeToLiveResponse*);
template absl::Status WireCall(
    Client*, bool,
    WireMethod<client::LeaseLeasesRequest, client::LeaseLeasesResponse>,
    client::LeaseLeasesRequest, client::LeaseLeasesResponse*);

absl::StatusOr<client::LeaseRenewalAnswer> WireRenew(Client* c, uint64_t id) {
  absl::StatusOr<ClientImpl*> impl = ImplOf(c);
  if (!impl.ok()) return impl.status();
  return (*impl)->WireRenew(id);
}

absl::StatusOr<client::Kv::Stub*> WireStub(Client* c,
                                           const std::string& address) {
  absl::StatusOr<ClientImpl*> impl = ImplOf(c);
  if (!impl.ok()) return impl.status();
  return (*impl)->Stub(address);
}

absl::StatusOr<RangeResult> RangeAll(Client* c, absl::string_view key,
                                     RangeOptions options) {
  RangeResult all;
  std::string from(key);
  while (true) {
    absl::StatusOr<RangeResult> r = c->Range(from, options);
    if (!r.ok()) return r.status();
    options.revision = all.revision = r->revision;
    all.count = std::max(all.count, r->count);
    for (KeyRecord& k : r->kvs) all.kvs.push_back(std::move(k));
    if (!r->more || r->kvs.empty()) return all;
    from = all.kvs.back().key + std::string(1, '\0');  // the next key
  }
}
}  // namespace api

absl::StatusOr<std::unique_ptr<Client>> Client::Create(ClientOptions options) {
  auto c = std::make_unique<ClientImpl>(std::move(options));
  if (absl::Status s = c->Init(); !s.ok()) return s;
  return std::unique_ptr<Client>(std::move(c));
}

}  // namespace quorate
