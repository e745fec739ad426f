#include "coord/kv_service.h"

#include <chrono>
#include <deque>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "transport/grpc_status.h"
#include "util/mutex.h"

namespace quorate::coord {

// One call: requested on the queue, handled on the io thread when it
// arrives, finished from whichever thread has the answer (the io thread,
// or the node loop for proposals and reads), and deleted on the io thread
// when the answer is sent.
template <class Request, class Response>
class KvService::Call final : public transport::CqHandler {
 public:
  using RequestMethod = void (client::Kv::AsyncService::*)(
      grpc::ServerContext*, Request*,
      grpc::ServerAsyncResponseWriter<Response>*, grpc::CompletionQueue*,
      grpc::ServerCompletionQueue*, void*);
  using Handler = void (KvService::*)(Call*);

  // Waits for the next call of `method`; it goes to
  // `handle`. Nothing, once the queue is shutting down.
  static void Await(KvService* service, RequestMethod method, Handler handle) {
    auto* call = new Call(service, method, handle);
    transport::CallQueue* queue = service->queue_;
    if (!queue->StartOperation([&] {
          (service->service_.*method)(&call->context, &call->request,
                                      &call->writer_, queue->cq(), queue->cq(),
                                      &call->requested_);
        })) {
      delete call;
    }
  }

  // Answers: `response` if `status` is OK, otherwise the status alone.
  // Once, from any thread.
  void Finish(const grpc::Status& status) {
    bool started;
    {
      MutexLock lock(&mu_);
      started = service_->queue_->StartOperation(
          [&] { writer_.Finish(response, status, &finished_); });
    }
    // The server is shutting down and has cancelled the call.
    if (!started) delete this;
  }

  void OnEvent(int kind, bool ok) override {
    if (kind == kRequested) {
      if (!ok) {  // the server is shutting down
        delete this;
        return;
      }
      Await(service_, request_method_, handle_);  // the method's next call
      (service_->*handle_)(this);
      return;
    }
    // Finished (sent or not). The finishing thread's writes happened under
    // mu_: taking it orders them before the delete for ThreadSanitizer,
    // which cannot see gRPC's own synchronization.
    { MutexLock lock(&mu_); }
    delete this;
  }

  Request request;
  Response response;
  grpc::ServerContext context;

 private:
  enum Kind { kRequested, kFinished };

  Call(KvService* service, RequestMethod method, Handler handle)
      : service_(service),
        request_method_(method),
        handle_(handle),
        writer_(&context) {}
  ~Call() = default;

  KvService* const service_;
  const RequestMethod request_method_;
  const Handler handle_;
  grpc::ServerAsyncResponseWriter<Response> writer_;
  Mutex mu_;
  transport::CqTag requested_{this, kRequested};
  transport::CqTag finished_{this, kFinished};
};

// A bidirectional stream's life, shared by the KeepAlive and Watch calls:
// requested on the queue; requests read one at a time, each handed to the
// derived class (Received, outside the lock) before the next read starts;
// messages written one in flight, each taken from the derived class
// (NextLocked) when the last write completes or when it calls PumpLocked;
// finished once, after the write in flight; deleted on the io thread once
// finished, with no operation in flight and nothing else holding it
// (IdleLocked). The derived class also says what the client's half-close
// means (ReadClosedLocked) and what a completed write leads to
// (WrittenLocked). The hooks are virtual: the thread-safety analysis then
// knows that the *Locked ones run under this call's mu_.
template <class Derived, class Request, class Response>
class KvService::BidiCall : public transport::CqHandler {
 public:
  using RequestMethod = void (client::Kv::AsyncService::*)(
      grpc::ServerContext*, grpc::ServerAsyncReaderWriter<Response, Request>*,
      grpc::CompletionQueue*, grpc::ServerCompletionQueue*, void*);

  // Waits for the next call of `method`. Nothing, once the queue is
  // shutting down.
  static void Await(KvService* service, RequestMethod method) {
    auto* call = new Derived(service);
    call->method_ = method;
    transport::CallQueue* queue = service->queue_;
    if (!queue->StartOperation([&] {
          (service->service_.*method)(&call->context_, &call->stream_,
                                      queue->cq(), queue->cq(),
                                      &call->requested_);
        })) {
      delete call;
    }
  }

  void OnEvent(int kind, bool ok) override {
    if (kind == kRequested && !ok) {  // the server is shutting down
      delete self();
      return;
    }
    {
      // An answer on another thread must not delete the call while this
      // handler still uses it.
      MutexLock lock(&mu_);
      in_handler_ = true;
    }
    switch (kind) {
      case kRequested: {
        Await(service_, method_);
        Started();
        MutexLock lock(&mu_);
        StartRead();
        break;
      }
      case kRead: {
        Request request;
        {
          MutexLock lock(&mu_);
          read_in_flight_ = false;
          if (!ok) {  // half-closed, or gone
            read_closed_ = true;
            ReadClosedLocked();
          } else {
            request.Swap(&request_);
          }
        }
        if (ok) {
          Received(std::move(request));
          MutexLock lock(&mu_);
          StartRead();
        }
        break;
      }
      case kWritten: {
        MutexLock lock(&mu_);
        write_in_flight_ = false;
        if (finishing_) {
          StartFinish();
        } else if (!ok) {
          Finish(grpc::Status(grpc::StatusCode::CANCELLED, "stream broken"));
        } else {
          WrittenLocked();
        }
        break;
      }
      case kFinished: {
        MutexLock lock(&mu_);
        finish_done_ = true;
        break;
      }
    }
    {
      MutexLock lock(&mu_);
      in_handler_ = false;
    }
    MaybeDelete();
  }

 protected:
  explicit BidiCall(KvService* service)
      : service_(service), stream_(&context_) {}
  ~BidiCall() = default;

  // What the kind of stream does (the *Locked ones under mu_):
  // the call has arrived (before the first read);
  virtual void Started() = 0;
  // a request (the next read starts after it);
  virtual void Received(Request request) = 0;
  // the client half-closed, or is gone;
  virtual void ReadClosedLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) = 0;
  // a write completed;
  virtual void WrittenLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) = 0;
  // fills the next message; false if there is none;
  virtual bool NextLocked(Response* message)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) = 0;
  // nothing but the call's own operations holds it;
  virtual bool IdleLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) = 0;
  // it is about to be deleted (not under mu_).
  virtual void BeforeDelete() = 0;

  // Writes the derived class's next message, if no write is in flight.
  void PumpLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (finishing_ || write_in_flight_) return;
    writing_.Clear();
    if (!NextLocked(&writing_)) return;
    // (The message stays put until the write completes.)
    const Response* message = &writing_;
    write_in_flight_ = service_->queue_->StartOperation(
        [&] { stream_.Write(*message, &written_); });
    if (!write_in_flight_) {  // shutting down: the call is cancelled
      finishing_ = finish_started_ = finish_done_ = true;
    }
  }
  void Finish(const grpc::Status& status) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (finishing_) return;
    finishing_ = true;
    finish_status_ = status;
    StartFinish();
  }
  // Deletes the call if it is done (any thread, not under mu_).
  void MaybeDelete() {
    {
      MutexLock lock(&mu_);
      if (!finish_done_ || read_in_flight_ || write_in_flight_ || in_handler_ ||
          deleting_ || !IdleLocked()) {
        return;
      }
      deleting_ = true;
    }
    BeforeDelete();
    delete self();
  }

  KvService* const service_;
  Mutex mu_;
  bool read_closed_ ABSL_GUARDED_BY(mu_) = false;
  bool write_in_flight_ ABSL_GUARDED_BY(mu_) = false;
  bool finishing_ ABSL_GUARDED_BY(mu_) = false;

 private:
  enum Kind { kRequested, kRead, kWritten, kFinished };

  Derived* self() { return static_cast<Derived*>(this); }

  void StartRead() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (finishing_ || read_closed_ || read_in_flight_) return;
    read_in_flight_ = service_->queue_->StartOperation(
        [&] { stream_.Read(&request_, &read_); });
    if (!read_in_flight_) read_closed_ = true;
  }
  // The finish goes out once no write is in flight.
  void StartFinish() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (!finishing_ || finish_started_ || write_in_flight_) return;
    finish_started_ = true;
    if (!service_->queue_->StartOperation([&, status = finish_status_] {
          stream_.Finish(status, &finished_);
        })) {
      finish_done_ = true;  // shutting down: the call is cancelled already
    }
  }

  RequestMethod method_ = nullptr;
  grpc::ServerContext context_;
  grpc::ServerAsyncReaderWriter<Response, Request> stream_;
  Request request_;                        // the read in flight fills it
  Response writing_ ABSL_GUARDED_BY(mu_);  // the write in flight's
  bool read_in_flight_ ABSL_GUARDED_BY(mu_) = false;
  bool finish_started_ ABSL_GUARDED_BY(mu_) = false;
  grpc::Status finish_status_ ABSL_GUARDED_BY(mu_);
  bool finish_done_ ABSL_GUARDED_BY(mu_) = false;
  bool deleting_ ABSL_GUARDED_BY(mu_) = false;
  bool in_handler_ ABSL_GUARDED_BY(mu_) = false;
  transport::CqTag requested_{this, kRequested};
  transport::CqTag read_{this, kRead};
  transport::CqTag written_{this, kWritten};
  transport::CqTag finished_{this, kFinished};
};

// One SnapshotSave stream: the member captures a snapshot when the call
// arrives (node::Node::SaveSnapshot); its file's bytes go out in chunks of
// kChunkBytes, one write at a time, then the call finishes. The call lives
// until the snapshot's callback has run.
class KvService::SnapshotStream final
    : public BidiCall<SnapshotStream, client::SnapshotSaveRequest,
                      client::SnapshotSaveChunk> {
 public:
  static constexpr size_t kChunkBytes = 1 << 20;

  explicit SnapshotStream(KvService* service) : BidiCall(service) {}

  void Started() override {
    node::Node* node = service_->node_.load();
    if (node == nullptr) {
      MutexLock lock(&mu_);
      Finish(ToGrpcStatus(absl::UnavailableError("the member is starting")));
      return;
    }
    {
      MutexLock lock(&mu_);
      capturing_ = true;
    }
    node->SaveSnapshot([this](absl::StatusOr<node::SnapshotFileBytes> file) {
      {
        MutexLock lock(&mu_);
        capturing_ = false;
        if (!file.ok()) {
          Finish(ToGrpcStatus(file.status()));
        } else {
          file_ = *std::move(file);
          PumpLocked();
        }
      }
      MaybeDelete();
    });
  }
  void Received(client::SnapshotSaveRequest) override {}
  void ReadClosedLocked() override ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {}
  void WrittenLocked() override ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (sent_ < Total()) {
      PumpLocked();
    } else {
      Finish(grpc::Status::OK);
    }
  }
  bool NextLocked(client::SnapshotSaveChunk* message) override
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (file_.data == nullptr || sent_ >= Total()) return false;
    if (sent_ == 0) {
      message->set_total_size(Total());
      message->set_index(file_.index);
    }
    // The header, then the data, in chunks.
    std::string* out = message->mutable_data();
    while (out->size() < kChunkBytes && sent_ < Total()) {
      const size_t header = file_.header.size();
      const size_t want = kChunkBytes - out->size();
      if (sent_ < header) {
        const size_t n = std::min(want, header - sent_);
        out->append(file_.header, sent_, n);
        sent_ += n;
      } else {
        const size_t at = sent_ - header;
        const size_t n = std::min(want, file_.data->size() - at);
        out->append(*file_.data, at, n);
        sent_ += n;
      }
    }
    return true;
  }
  bool IdleLocked() override ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return !capturing_;
  }
  void BeforeDelete() override {}

 private:
  size_t Total() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return file_.header.size() +
           (file_.data != nullptr ? file_.data->size() : 0);
  }

  bool capturing_ ABSL_GUARDED_BY(mu_) = false;
  node::SnapshotFileBytes file_ ABSL_GUARDED_BY(mu_);
  size_t sent_ ABSL_GUARDED_BY(mu_) = 0;
};

// One KeepAlive stream: each request's renewals go to the keeper at once;
// answers are written in the order they come, and all those that came
// while a write was in flight go out together in the next (a quorum round
// answers many renewals at once). At most kMaxQueued wait: a client that
// does not read its answers is cut off with RESOURCE_EXHAUSTED. It
// finishes once the client stopped sending and every renewal is answered
// and written, and lives until no renewal is unanswered.
class KvService::KeepAliveStream final
    : public BidiCall<KeepAliveStream, client::LeaseKeepAliveRequest,
                      client::LeaseKeepAliveResponse> {
 public:
  static constexpr size_t kMaxQueued = 4096;

  explicit KeepAliveStream(KvService* service) : BidiCall(service) {}

  void Started() override {}
  void Received(client::LeaseKeepAliveRequest request) override {
    {
      MutexLock lock(&mu_);
      unanswered_ += request.renewals_size();
    }
    for (const client::LeaseRenewal& renewal : request.renewals()) {
      service_->KeepAlive(renewal, [this](client::LeaseRenewalAnswer a) {
        Answered(std::move(a));
      });
    }
  }
  void ReadClosedLocked() override ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    MaybeFinishLocked();
  }
  void WrittenLocked() override ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (out_.answers_size() > 0) {
      PumpLocked();
    } else {
      MaybeFinishLocked();
    }
  }
  bool NextLocked(client::LeaseKeepAliveResponse* message) override
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (out_.answers_size() == 0) return false;
    // What is written must stay put until the write completes; new
    // answers gather in out_.
    message->Swap(&out_);
    out_.Clear();
    return true;
  }
  bool IdleLocked() override ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return unanswered_ == 0;
  }
  void BeforeDelete() override {}

 private:
  void Answered(client::LeaseRenewalAnswer answer) {
    {
      MutexLock lock(&mu_);
      --unanswered_;
      if (!finishing_) {
        if (static_cast<size_t>(out_.answers_size()) >= kMaxQueued) {
          Finish(grpc::Status(
              grpc::StatusCode::RESOURCE_EXHAUSTED,
              absl::StrCat("the client left ", out_.answers_size(),
                           " renewal answers unread; the limit is ",
                           kMaxQueued)));
        } else {
          *out_.add_answers() = std::move(answer);
          PumpLocked();
        }
      }
      MaybeFinishLocked();
    }
    // The stream may have finished meanwhile, waiting only for this.
    MaybeDelete();
  }
  // Once the client stopped sending and every answer is written.
  void MaybeFinishLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (read_closed_ && unanswered_ == 0 && out_.answers_size() == 0 &&
        !write_in_flight_) {
      Finish(grpc::Status::OK);
    }
  }

  client::LeaseKeepAliveResponse out_ ABSL_GUARDED_BY(mu_);  // waiting
  int unanswered_ ABSL_GUARDED_BY(mu_) = 0;
};

// One Watch stream: its requests go to a WatchStream of the member's hub,
// whose outbox it writes: everything waiting, in one message. The client
// half-closing ends it. It closes the hub's stream before it is deleted,
// so that the hub no longer wakes it.
class KvService::WatchCall final
    : public BidiCall<WatchCall, client::WatchRequest, client::WatchResponses> {
 public:
  explicit WatchCall(KvService* service) : BidiCall(service) {}

  void Started() override {
    WatchHub* hub = service_->watches_;
    if (hub == nullptr) {
      MutexLock lock(&mu_);
      Finish(grpc::Status(grpc::StatusCode::UNAVAILABLE,
                          "the member is starting"));
      return;
    }
    // Opened before the first read: requests need it.
    std::shared_ptr<WatchStream> watch = hub->Open([this] { Wake(); });
    MutexLock lock(&mu_);
    watch_ = std::move(watch);
  }
  // Not under mu_: the stream may wake this call at once.
  void Received(client::WatchRequest request) override {
    watch_->Handle(request);
  }
  void ReadClosedLocked() override ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    Finish(grpc::Status::OK);  // the client is done
  }
  void WrittenLocked() override ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    PumpLocked();
  }
  // Everything waiting goes in one message (a put wakes many watchers).
  bool NextLocked(client::WatchResponses* message) override
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return watch_ != nullptr && watch_->Take(kMaxWatchMessageBytes, message);
  }
  bool IdleLocked() override ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return true; }
  // Not under mu_: Close() waits for a wake in progress, which takes it.
  void BeforeDelete() override {
    if (watch_ != nullptr) watch_->Close();
  }

 private:
  // The hub's stream has something to send.
  void Wake() {
    MutexLock lock(&mu_);
    PumpLocked();
  }

  std::shared_ptr<WatchStream> watch_;  // set before the first read
};

namespace {

constexpr absl::Duration kDefaultTimeout = absl::Seconds(5);
constexpr absl::Duration kMaxTimeout = absl::Seconds(30);

// What is left of the client's deadline, within bounds; zero once it has
// passed.
absl::Duration Timeout(const grpc::ServerContext& context) {
  const auto deadline = context.deadline();
  if (deadline == std::chrono::system_clock::time_point::max()) {
    return kDefaultTimeout;
  }
  const absl::Duration left = absl::FromChrono(deadline) - absl::Now();
  return std::min(std::max(left, absl::ZeroDuration()), kMaxTimeout);
}

// A successful write's answer: its revision, or a transaction's response.
template <class Response>
void FillResponse(Response& response, client::KvResult& result) {
  response.set_revision(result.revision());
}
void FillResponse(client::TxnResponse& response, client::KvResult& result) {
  response = std::move(*result.mutable_txn());
}
void FillResponse(client::LeaseGrantResponse& response,
                  client::KvResult& result) {
  response.set_id(result.lease_id());
  response.set_ttl_ms(result.lease_ttl_ms());
  response.set_revision(result.revision());
}

}  // namespace

// Under overload calls wait in gRPC's queue before this member takes them.
// One whose client has already given up is answered at once, without work:
// proposing it anyway would spend the leader's time on answers no one
// reads, the queue would grow, and every later call would expire in it
// too (goodput falls to nothing and stays there). Refusing it keeps the
// member's time for calls that can still succeed.
template <class C>
bool KvService::RefuseIfExpired(C* call) {
  if (Timeout(call->context) > absl::ZeroDuration()) return false;
  call->context.AddTrailingMetadata("quorate-refused", "1");
  call->Finish(grpc::Status(grpc::StatusCode::DEADLINE_EXCEEDED,
                            "the call's deadline passed before this member "
                            "could take it (the member is overloaded); "
                            "nothing was done"));
  return true;
}

template <class C>
node::Node* KvService::NodeForRead(C* call) {
  node::Node* node = node_.load();
  if (node == nullptr) {
    call->Finish(
        ToGrpcStatus(absl::UnavailableError("the member is starting")));
    return nullptr;
  }
  return RefuseIfExpired(call) ? nullptr : node;
}

void KvService::Start(transport::CallQueue* queue) {
  queue_ = queue;
  PutCall::Await(this, &client::Kv::AsyncService::RequestPut, &KvService::Put);
  GetCall::Await(this, &client::Kv::AsyncService::RequestGet, &KvService::Get);
  DeleteCall::Await(this, &client::Kv::AsyncService::RequestDelete,
                    &KvService::Delete);
  CasCall::Await(this, &client::Kv::AsyncService::RequestCas, &KvService::Cas);
  StatusCall::Await(this, &client::Kv::AsyncService::RequestMemberStatus,
                    &KvService::MemberStatus);
  RangeCall::Await(this, &client::Kv::AsyncService::RequestRange,
                   &KvService::Range);
  TxnCall::Await(this, &client::Kv::AsyncService::RequestTxn, &KvService::Txn);
  GrantCall::Await(this, &client::Kv::AsyncService::RequestLeaseGrant,
                   &KvService::LeaseGrant);
  RevokeCall::Await(this, &client::Kv::AsyncService::RequestLeaseRevoke,
                    &KvService::LeaseRevoke);
  TtlCall::Await(this, &client::Kv::AsyncService::RequestLeaseTimeToLive,
                 &KvService::LeaseTimeToLive);
  LeasesCall::Await(this, &client::Kv::AsyncService::RequestLeaseLeases,
                    &KvService::LeaseLeases);
  ShardCall::Await(this, &client::Kv::AsyncService::RequestShard,
                   &KvService::Shard);
  FenceCall::Await(this, &client::Kv::AsyncService::RequestCheckFence,
                   &KvService::CheckFence);
  MemberListCall::Await(this, &client::Kv::AsyncService::RequestMemberList,
                        &KvService::MemberList);
  MemberChangeCall::Await(this, &client::Kv::AsyncService::RequestMemberChange,
                          &KvService::MemberChange);
  TransferCall::Await(this, &client::Kv::AsyncService::RequestTransferLeader,
                      &KvService::TransferLeader);
  CompactCall::Await(this, &client::Kv::AsyncService::RequestCompact,
                     &KvService::Compact);
  SnapshotStream::Await(this, &client::Kv::AsyncService::RequestSnapshotSave);
  KeepAliveStream::Await(this,
                         &client::Kv::AsyncService::RequestLeaseKeepAlive);
  WatchCall::Await(this, &client::Kv::AsyncService::RequestWatch);
}

client::CommandLimits KvService::CommandLimits() const {
  client::CommandLimits l;
  l.set_max_leases_per_client(lease_limits_.max_leases_per_client);
  l.set_max_keys_per_lease(lease_limits_.max_keys_per_lease);
  return l;
}

template <class C>
void KvService::NotLeader(C* call, const absl::Status& status) {
  call->context.AddTrailingMetadata("quorate-refused", "1");
  if (node::Node* node = node_.load()) {
    const std::string leader = node->GetStatus().leader_address;
    if (!leader.empty()) {
      call->context.AddTrailingMetadata("quorate-leader", leader);
    }
  }
  call->Finish(ToGrpcStatus(status));
}

void KvService::LeaseGrant(GrantCall* call) {
  const client::LeaseGrantRequest& request = call->request;
  if (absl::Status s = CheckLeaseTtl(request.ttl_ms(), lease_limits_);
      !s.ok()) {
    call->Finish(ToGrpcStatus(s));
    return;
  }
  client::KvCommand cmd;
  *cmd.mutable_op() = request.op();
  *cmd.mutable_lease_grant() = request;
  cmd.mutable_lease_grant()->clear_op();
  *cmd.mutable_limits() = CommandLimits();
  Write(call, cmd);
}

void KvService::LeaseRevoke(RevokeCall* call) {
  client::KvCommand cmd;
  *cmd.mutable_op() = call->request.op();
  cmd.mutable_lease_revoke()->set_id(call->request.id());
  Write(call, cmd);
}

void KvService::CheckFence(FenceCall* call) {
  absl::StatusOr<FenceTarget> target = ParseFenceName(call->request.name());
  if (!target.ok()) {
    call->Finish(ToGrpcStatus(target.status()));
    return;
  }
  if (target->kind != FenceTarget::Kind::kCluster) {
    const KvStore* store = store_;
    Read(call, /*stale=*/false, [store, call, t = *target] {
      absl::StatusOr<FenceHolder> h = ReadFenceHolder(*store, t);
      if (!h.ok()) return h.status();
      call->response.set_epoch(h->epoch);
      call->response.set_held(h->held);
      return absl::OkStatus();
    });
    return;
  }
  // The cluster's holder is its leader: a confirmation round says which
  // term leads now.
  node::Node* node = NodeForRead(call);
  if (node == nullptr) return;
  node->Confirm(Timeout(call->context),
                [call](absl::StatusOr<node::Confirmation> c) {
                  if (!c.ok()) {
                    call->Finish(ToGrpcStatus(c.status()));
                    return;
                  }
                  call->response.set_epoch(c->term);
                  call->response.set_held(true);
                  call->Finish(grpc::Status::OK);
                });
}

void KvService::Shard(ShardCall* call) {
  // The drain deadline is the leader's to call (DrainClock): a client
  // that could call it would cut an owner's drain short.
  if (call->request.kind_case() == client::ShardRequest::kDrainExpired ||
      call->request.kind_case() == client::ShardRequest::KIND_NOT_SET) {
    call->Finish(ToGrpcStatus(absl::InvalidArgumentError(
        "a shard request creates a group, joins, leaves, or acknowledges "
        "or releases a shard")));
    return;
  }
  absl::Status s = call->request.has_create()
                       ? CheckNewShardGroupName(call->request.group())
                       : ShardGroupPrefix(call->request.group()).status();
  if (!s.ok()) {
    call->Finish(ToGrpcStatus(s));
    return;
  }
  client::KvCommand cmd;
  *cmd.mutable_op() = call->request.op();
  *cmd.mutable_shard() = call->request;
  cmd.mutable_shard()->clear_op();
  Write(call, cmd);
}

void KvService::LeaseTimeToLive(TtlCall* call) {
  if (keeper_ == nullptr) {
    call->Finish(
        ToGrpcStatus(absl::UnavailableError("the member is starting")));
    return;
  }
  const uint64_t id = call->request.id();
  absl::StatusOr<int64_t> left = keeper_->Remaining(id);
  if (absl::IsUnavailable(left.status())) {
    NotLeader(call, left.status());
    return;
  }
  std::optional<KvStore::LeaseInfo> info =
      store_->GetLease(id, call->request.keys());
  if (!left.ok() || !info.has_value()) {
    call->Finish(ToGrpcStatus(absl::NotFoundError(absl::StrCat(
        "lease ", id, " does not exist (it expired or was revoked)"))));
    return;
  }
  client::LeaseTimeToLiveResponse& r = call->response;
  r.set_id(id);
  r.set_remaining_ms(*left / 1'000'000);
  r.set_granted_ttl_ms(info->ttl_ms);
  r.set_key_count(info->key_count);
  for (std::string& key : info->keys) r.add_keys(std::move(key));
  call->Finish(grpc::Status::OK);
}

void KvService::LeaseLeases(LeasesCall* call) {
  const KvStore* store = store_;
  Read(call, /*stale=*/false, [store, call] {
    for (uint64_t id : store->LeaseIds()) call->response.add_ids(id);
    return absl::OkStatus();
  });
}

void KvService::KeepAlive(
    const client::LeaseRenewal& request,
    std::function<void(client::LeaseRenewalAnswer)> reply) {
  client::LeaseRenewalAnswer r;
  r.set_id(request.id());
  r.set_cookie(request.cookie());
  if (keeper_ == nullptr) {
    r.set_code(static_cast<int32_t>(absl::StatusCode::kUnavailable));
    r.set_message("the member is starting");
    reply(std::move(r));
    return;
  }
  keeper_->Renew(request.id(), [this, r, reply = std::move(reply)](
                                   const Lessor::Answer& a) mutable {
    r.set_code(static_cast<int32_t>(a.status.code()));
    r.set_message(std::string(a.status.message()));
    r.set_ttl_ms(a.ttl_ms);
    if (absl::IsUnavailable(a.status)) {
      if (node::Node* node = node_.load()) {
        r.set_leader_address(node->GetStatus().leader_address);
      }
    }
    reply(std::move(r));
  });
}

template <class C>
void KvService::Write(C* call, const client::KvCommand& cmd) {
  node::Node* node = node_.load();
  if (node == nullptr) {
    call->context.AddTrailingMetadata("quorate-refused", "1");
    call->Finish(
        grpc::Status(grpc::StatusCode::UNAVAILABLE, "the member is starting"));
    return;
  }
  if (RefuseIfExpired(call)) return;
  node->Propose(
      cmd.SerializeAsString(), Timeout(call->context),
      [call, node](absl::StatusOr<node::Applied> applied) {
        if (!applied.ok()) {
          if (absl::IsUnavailable(applied.status())) {
            // Refused before proposing (not the leader, or none known):
            // nothing was applied. Say who leads.
            call->context.AddTrailingMetadata("quorate-refused", "1");
            const std::string leader = node->GetStatus().leader_address;
            if (!leader.empty()) {
              call->context.AddTrailingMetadata("quorate-leader", leader);
            }
          }
          call->Finish(ToGrpcStatus(applied.status()));
          return;
        }
        client::KvResult result;
        if (!result.ParseFromString(applied->result)) {
          call->Finish(
              grpc::Status(grpc::StatusCode::INTERNAL, "unreadable result"));
          return;
        }
        const absl::Status s = ResultStatus(result);
        if (s.ok()) FillResponse(call->response, result);
        // The state machine's own answer: final, whatever its code. A
        // client retries ABORTED from a leader change (the write was not
        // applied), never this.
        if (!s.ok()) call->context.AddTrailingMetadata("quorate-final", "1");
        call->Finish(ToGrpcStatus(s));
      });
}

namespace {

// A client's write of one key: refused here, before it costs a log entry,
// for what the state machine would refuse anyway (a bad key or value, a
// key under a prefix only the state machine writes).
absl::Status CheckClientWrite(absl::string_view key, absl::string_view value) {
  if (absl::Status s = CheckKeyValue(key, value); !s.ok()) return s;
  return CheckWritable(key, "");
}

}  // namespace

void KvService::Put(PutCall* call) {
  const client::PutRequest& request = call->request;
  if (absl::Status s = CheckClientWrite(request.key(), request.value());
      !s.ok()) {
    call->Finish(ToGrpcStatus(s));
    return;
  }
  client::KvCommand cmd;
  *cmd.mutable_op() = request.op();
  *cmd.mutable_put() = request;
  cmd.mutable_put()->clear_op();
  if (request.lease() != 0) *cmd.mutable_limits() = CommandLimits();
  Write(call, cmd);
}

void KvService::Delete(DeleteCall* call) {
  const client::DeleteRequest& request = call->request;
  if (absl::Status s = CheckClientWrite(request.key(), ""); !s.ok()) {
    call->Finish(ToGrpcStatus(s));
    return;
  }
  client::KvCommand cmd;
  *cmd.mutable_op() = request.op();
  cmd.mutable_del()->set_key(request.key());
  Write(call, cmd);
}

void KvService::Cas(CasCall* call) {
  const client::CasRequest& request = call->request;
  if (absl::Status s = CheckClientWrite(request.key(), request.value());
      !s.ok()) {
    call->Finish(ToGrpcStatus(s));
    return;
  }
  client::KvCommand cmd;
  *cmd.mutable_op() = request.op();
  *cmd.mutable_cas() = request;
  cmd.mutable_cas()->clear_op();
  Write(call, cmd);
}

absl::Status KvService::CheckPeersSpeak(uint32_t protocol) const {
  if (protocol <= 1) return absl::OkStatus();
  node::Node* node = node_.load();
  if (node == nullptr) return absl::UnavailableError("the member is starting");
  for (const node::PeerStatus& p : node->GetStatus().peers) {
    if (p.protocol >= protocol) continue;
    return absl::FailedPreconditionError(absl::StrCat(
        "member ", p.name,
        p.protocol == 0 ? " has not been heard from since this member started"
                        : absl::StrCat(" runs release ", p.version,
                                       ", which would apply this command "
                                       "differently"),
        ": upgrade every member first (docs/operations.md, \"Rolling "
        "upgrades\")"));
  }
  return absl::OkStatus();
}

void KvService::Compact(CompactCall* call) {
  if (absl::Status s = CheckPeersSpeak(2); !s.ok()) {
    call->context.AddTrailingMetadata("quorate-final", "1");
    call->Finish(ToGrpcStatus(s));
    return;
  }
  client::KvCommand cmd;
  *cmd.mutable_op() = call->request.op();
  cmd.mutable_compact()->set_revision(call->request.revision());
  Write(call, cmd);
}

template <class C, class Answer>
void KvService::Read(C* call, bool stale, Answer answer) {
  if (stale) {
    call->Finish(ToGrpcStatus(answer()));
    return;
  }
  node::Node* node = NodeForRead(call);
  if (node == nullptr) return;
  node->Read(Timeout(call->context),
             [call, answer](absl::StatusOr<uint64_t> at) {
               call->Finish(ToGrpcStatus(at.ok() ? answer() : at.status()));
             });
}

void KvService::Range(RangeCall* call) {
  const client::RangeRequest& request = call->request;
  if (absl::Status s = CheckRange(request.key(), request.range_end());
      !s.ok()) {
    call->Finish(ToGrpcStatus(s));
    return;
  }
  const KvStore* store = store_;
  Read(call, request.serializable(), [store, call] {
    absl::StatusOr<client::RangeResponse> r = store->Range(call->request);
    if (!r.ok()) return r.status();
    call->response = *std::move(r);
    return absl::OkStatus();
  });
}

void KvService::Txn(TxnCall* call) {
  const client::TxnRequest& request = call->request;
  if (absl::Status s = CheckTxn(request, limits_); !s.ok()) {
    call->Finish(ToGrpcStatus(s));
    return;
  }
  if (absl::Status s = CheckPeersSpeak(ProtocolOf(request)); !s.ok()) {
    call->context.AddTrailingMetadata("quorate-final", "1");
    call->Finish(ToGrpcStatus(s));
    return;
  }
  if (IsReadOnly(request)) {
    // Nothing to write: a read point is enough, as for Range.
    const KvStore* store = store_;
    Read(call, /*stale=*/false, [store, call] {
      call->response = store->ReadTxn(call->request);
      return absl::OkStatus();
    });
    return;
  }
  client::KvCommand cmd;
  *cmd.mutable_op() = request.op();
  *cmd.mutable_txn() = request;
  cmd.mutable_txn()->clear_op();
  *cmd.mutable_limits() = CommandLimits();
  Write(call, cmd);
}

void KvService::LocalTxn(
    client::TxnRequest request, absl::Duration timeout,
    std::function<void(absl::StatusOr<client::TxnResponse>, bool refused)>
        done) {
  if (absl::Status s = CheckTxn(request, limits_); !s.ok()) {
    done(s, false);
    return;
  }
  if (absl::Status s = CheckPeersSpeak(ProtocolOf(request)); !s.ok()) {
    done(s, false);
    return;
  }
  node::Node* node = node_.load();
  if (node == nullptr) {
    done(absl::UnavailableError("the member is starting"), true);
    return;
  }
  if (IsReadOnly(request)) {
    const KvStore* store = store_;
    auto txn = std::make_shared<client::TxnRequest>(std::move(request));
    node->Read(timeout, [store, txn, done](absl::StatusOr<uint64_t> at) {
      if (!at.ok()) {
        done(at.status(), false);
      } else {
        done(store->ReadTxn(*txn), false);
      }
    });
    return;
  }
  client::KvCommand cmd;
  *cmd.mutable_op() = request.op();
  *cmd.mutable_txn() = std::move(request);
  cmd.mutable_txn()->clear_op();
  *cmd.mutable_limits() = CommandLimits();
  node->Propose(cmd.SerializeAsString(), timeout,
                [done](absl::StatusOr<node::Applied> applied) {
                  if (!applied.ok()) {
                    // UNAVAILABLE: refused before proposing.
                    done(applied.status(),
                         absl::IsUnavailable(applied.status()));
                    return;
                  }
                  client::KvResult result;
                  if (!result.ParseFromString(applied->result)) {
                    done(absl::InternalError("unreadable result"), false);
                    return;
                  }
                  const absl::Status s = ResultStatus(result);
                  if (!s.ok()) {
                    done(s, false);
                  } else {
                    done(std::move(*result.mutable_txn()), false);
                  }
                });
}

void KvService::LocalRange(
    client::RangeRequest request, absl::Duration timeout,
    std::function<void(absl::StatusOr<client::RangeResponse>)> done) {
  if (absl::Status s = CheckRange(request.key(), request.range_end());
      !s.ok()) {
    done(s);
    return;
  }
  const KvStore* store = store_;
  if (request.serializable()) {
    done(store->Range(request));
    return;
  }
  node::Node* node = node_.load();
  if (node == nullptr) {
    done(absl::UnavailableError("the member is starting"));
    return;
  }
  auto r = std::make_shared<client::RangeRequest>(std::move(request));
  node->Read(timeout, [store, r, done](absl::StatusOr<uint64_t> at) {
    if (!at.ok()) {
      done(at.status());
    } else {
      done(store->Range(*r));
    }
  });
}

void KvService::Get(GetCall* call) {
  if (absl::Status s = CheckKeyValue(call->request.key(), ""); !s.ok()) {
    call->Finish(ToGrpcStatus(s));
    return;
  }
  const KvStore* store = store_;
  auto answer = [store, call] {
    const uint64_t read_revision = store->revision();
    std::optional<KvStore::Value> v = store->Get(call->request.key());
    client::GetResponse& response = call->response;
    response.set_read_revision(read_revision);
    if (!v.has_value()) return absl::OkStatus();
    response.set_found(true);
    response.set_value(std::move(v->value));
    response.set_revision(v->revision);
    return absl::OkStatus();
  };
  Read(call, call->request.stale(), answer);
}

namespace {

void FillMembers(const node::MembersView& view, const node::NodeStatus& self,
                 client::MemberListResponse* out) {
  out->set_cluster_id(self.cluster_id);
  out->set_answered_by(self.name);
  out->set_leader(view.leader);
  out->set_commit_index(view.commit_index);
  for (const node::MemberView& m : view.members) {
    client::MemberListResponse::Member* r = out->add_members();
    r->set_id(m.name);
    r->set_zone(m.zone);
    r->set_address(m.address);
    r->set_voter(m.voter);
    r->set_version(m.version);
    r->set_match_index(m.match_index);
    r->set_caught_up(m.caught_up);
  }
}

}  // namespace

void KvService::MemberList(MemberListCall* call) {
  node::Node* node = NodeForRead(call);
  if (node == nullptr) return;
  node->ListMembers([call, node](absl::StatusOr<node::MembersView> view) {
    if (!view.ok()) {
      call->Finish(ToGrpcStatus(view.status()));
      return;
    }
    FillMembers(*view, node->GetStatus(), &call->response);
    call->Finish(grpc::Status::OK);
  });
}

void KvService::MemberChange(MemberChangeCall* call) {
  node::Node* node = NodeForRead(call);  // (a write, refused alike)
  if (node == nullptr) return;
  const client::MemberChangeRequest& request = call->request;
  node::MembershipChange change;
  switch (request.type()) {
    case client::MEMBER_CHANGE_TYPE_ADD:
      change.kind = node::MembershipChange::Kind::kAddVoter;
      break;
    case client::MEMBER_CHANGE_TYPE_ADD_LEARNER:
      change.kind = node::MembershipChange::Kind::kAddLearner;
      break;
    case client::MEMBER_CHANGE_TYPE_REMOVE:
      change.kind = node::MembershipChange::Kind::kRemove;
      break;
    case client::MEMBER_CHANGE_TYPE_PROMOTE:
      change.kind = node::MembershipChange::Kind::kPromote;
      break;
    default:
      call->Finish(ToGrpcStatus(
          absl::InvalidArgumentError("unknown membership change type")));
      return;
  }
  change.name = request.id();
  change.zone = request.zone();
  change.address = request.address();
  node->ChangeMembership(
      std::move(change), Timeout(call->context),
      [this, call, node](absl::StatusOr<uint64_t> index) {
        if (!index.ok()) {
          if (index.status().code() == absl::StatusCode::kUnavailable) {
            NotLeader(call, index.status());
          } else {
            call->Finish(ToGrpcStatus(index.status()));
          }
          return;
        }
        call->response.set_index(*index);
        // The configuration including the change (this answer runs on the
        // loop thread: ListMembers' answer comes after it).
        node->ListMembers([call, node](absl::StatusOr<node::MembersView> view) {
          if (view.ok()) {
            FillMembers(*view, node->GetStatus(),
                        call->response.mutable_members());
          }
          call->Finish(grpc::Status::OK);
        });
      });
}

void KvService::TransferLeader(TransferCall* call) {
  node::Node* node = NodeForRead(call);
  if (node == nullptr) return;
  node->TransferLeadership(
      call->request.to(), Timeout(call->context),
      [this, call, node](absl::StatusOr<std::string> leader) {
        if (!leader.ok()) {
          if (leader.status().code() == absl::StatusCode::kUnavailable) {
            NotLeader(call, leader.status());
          } else {
            call->Finish(ToGrpcStatus(leader.status()));
          }
          return;
        }
        call->response.set_leader(*leader);
        call->response.set_term(node->GetStatus().term);
        call->Finish(grpc::Status::OK);
      });
}

void KvService::MemberStatus(StatusCall* call) {
  node::Node* node = node_.load();
  if (node == nullptr) {
    call->Finish(
        ToGrpcStatus(absl::UnavailableError("the member is starting")));
    return;
  }
  const node::NodeStatus s = node->GetStatus();
  client::MemberStatusResponse& response = call->response;
  response.set_id(s.name);
  response.set_zone(s.zone);
  response.set_role(raft::RoleName(s.role));
  response.set_term(s.term);
  response.set_leader_id(s.leader);
  response.set_leader_address(s.leader_address);
  response.set_commit_index(s.commit_index);
  response.set_version(s.version);
  response.set_voter(s.voter);
  if (mode_) response.set_mode(mode_());
  response.add_member_ids(s.name);
  response.add_member_addresses(s.listen_address);
  for (const node::PeerStatus& p : s.peers) {
    response.add_member_ids(p.name);
    response.add_member_addresses(p.address);
    client::MemberStatusResponse::Peer* peer = response.add_peers();
    peer->set_id(p.name);
    peer->set_zone(p.zone);
    peer->set_reachable(p.reachable);
    peer->set_last_contact_ms(p.last_contact_ms);
    peer->set_version(p.version);
    peer->set_voter(p.voter);
  }
  call->Finish(grpc::Status::OK);
}

}  // namespace quorate::coord
