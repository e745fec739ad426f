// The etcd gateway's Watch service (api/etcd_gateway.h).
//
// Each etcd Watch stream is served by one Watch stream of the client API
// to this member (watches are served from the member's own applied
// state): etcd's requests become ours on it, and our responses etcd's.
// The handler's thread reads the client's requests; a thread of the
// stream's own reads the member's responses and writes the client's.
//
// Where the two APIs differ, the gateway makes up for it here:
//  - a watcher that falls behind is cut off by the member (coord/watch.h)
//    and resumed from history by the client; etcd's clients do not expect
//    that, so the gateway creates it again, from where it stopped, without
//    telling the client;
//  - a revision's events come in parts when they are large; unless the
//    client asked for fragments, the gateway joins them into one response;
//  - etcd numbers watchers itself when the client sends id 0: the lowest
//    free id from 0 on.
#include <grpcpp/grpcpp.h>

#include <map>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "api/client_internal.h"
#include "api/etcd_internal.h"
#include "transport/grpc_status.h"
#include "util/mutex.h"

namespace quorate::api::etcd {

namespace {

namespace epb = ::etcdserverpb;
using Impl = EtcdGateway::Impl;
using EtcdStream =
    grpc::ServerReaderWriter<epb::WatchResponse, epb::WatchRequest>;
using NativeStream =
    grpc::ClientReaderWriter<client::WatchRequest, client::WatchResponses>;

class WatchSession {
 public:
  WatchSession(const Impl* g, grpc::ServerContext* ctx, EtcdStream* stream)
      : g_(g), ctx_(ctx), stream_(stream) {}

  grpc::Status Run(client::Kv::Stub* stub) {
    native_ctx_ = grpc::ClientContext::FromServerContext(*ctx_);
    native_ = stub->Watch(native_ctx_.get());
    std::thread reader([this] { ReadNative(); });
    epb::WatchRequest req;
    while (stream_->Read(&req)) Handle(req);
    // A client that only half-closed still gets its events, as etcd's do,
    // until its call ends (the member's stream ends with it: its context
    // is this call's).
    if (ctx_->IsCancelled()) native_ctx_->TryCancel();
    reader.join();
    const grpc::Status s = native_->Finish();
    MutexLock lock(&mu_);
    if (native_failed_ && !ctx_->IsCancelled()) {
      return grpc::Status(grpc::StatusCode::UNAVAILABLE,
                          absl::StrCat("etcdserver: the member's watch stream "
                                       "ended: ",
                                       s.error_message()));
    }
    return grpc::Status::OK;
  }

 private:
  struct Watcher {
    client::WatchCreate create;         // to create it again
    bool fragments = false;             // the client takes them
    bool announced = false;             // the client was told it is created
    std::vector<mvccpb::Event> joined;  // parts of a revision not yet sent
  };

  // --- The client's requests (the handler's thread). ---

  void Handle(const epb::WatchRequest& req) {
    client::WatchRequest out;
    switch (req.request_union_case()) {
      case epb::WatchRequest::kCreateRequest: {
        const epb::WatchCreateRequest& c = req.create_request();
        client::WatchCreate* n = out.mutable_create();
        {
          MutexLock lock(&mu_);
          int64_t id = c.watch_id();
          if (id == 0) {
            while (watchers_.contains(next_id_)) ++next_id_;
            id = next_id_++;
          } else if (watchers_.contains(id)) {
            epb::WatchResponse r;
            g_->FillNow(r.mutable_header());
            r.set_watch_id(id);
            r.set_created(true);
            r.set_canceled(true);
            r.set_cancel_reason("etcdserver: duplicate watch ID provided");
            Send({std::move(r)});
            return;
          }
          n->set_key(c.key());
          n->set_range_end(c.range_end());
          if (c.start_revision() > 0) {
            // etcd's first events are at its revision 2, ours at 1.
            n->set_start_revision(
                std::max<uint64_t>(NativeRev(c.start_revision()), 1));
          }
          n->set_prev_kv(c.prev_kv());
          n->set_progress_notify(c.progress_notify());
          n->set_watch_id(id);
          for (int f : c.filters()) {
            if (f == epb::WatchCreateRequest::NOPUT) n->set_no_put(true);
            if (f == epb::WatchCreateRequest::NODELETE) n->set_no_delete(true);
          }
          Watcher& w = watchers_[id];
          w.create = *n;
          w.fragments = c.fragment();
        }
        break;
      }
      case epb::WatchRequest::kCancelRequest: {
        MutexLock lock(&mu_);
        // etcd ignores a cancel of a watcher it does not have.
        if (!watchers_.contains(req.cancel_request().watch_id())) return;
        out.mutable_cancel()->set_watch_id(req.cancel_request().watch_id());
        break;
      }
      case epb::WatchRequest::kProgressRequest:
        out.mutable_progress();
        break;
      case epb::WatchRequest::REQUEST_UNION_NOT_SET:
        return;
    }
    WriteNative(out);
  }

  void WriteNative(const client::WatchRequest& req) {
    MutexLock lock(&native_write_mu_);
    if (!native_->Write(req)) native_ctx_->TryCancel();
  }

  // --- The member's responses (the reader's thread). ---

  void ReadNative() {
    client::WatchResponses msg;
    while (native_->Read(&msg)) {
      std::vector<epb::WatchResponse> out;
      std::vector<client::WatchRequest> again;
      {
        MutexLock lock(&mu_);
        for (const client::WatchResponse& r : msg.responses()) {
          Translate(r, &out, &again);
        }
      }
      for (const client::WatchRequest& req : again) WriteNative(req);
      if (!Send(std::move(out))) break;
    }
    {
      MutexLock lock(&mu_);
      native_failed_ = true;
    }
    // The client's reads end too.
    ctx_->TryCancel();
  }

  void Translate(const client::WatchResponse& r,
                 std::vector<epb::WatchResponse>* out,
                 std::vector<client::WatchRequest>* again)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    auto it = watchers_.find(r.watch_id());
    if (it == watchers_.end()) return;
    Watcher& w = it->second;
    auto response = [&]() -> epb::WatchResponse& {
      epb::WatchResponse& e = out->emplace_back();
      g_->Fill(e.mutable_header(), r.revision());
      e.set_watch_id(r.watch_id());
      return e;
    };
    const auto code = static_cast<absl::StatusCode>(r.code());
    if (r.canceled()) {
      if (!r.created() && code == absl::StatusCode::kResourceExhausted) {
        // Cut off for falling behind: created again from the first
        // revision not delivered whole (a revision cut off between its
        // parts comes again from its first part); the client does not
        // see it.
        client::WatchRequest& req = again->emplace_back();
        *req.mutable_create() = w.create;
        if (w.create.start_revision() == 0) {
          req.mutable_create()->set_start_revision(r.revision() + 1);
        }
        w.joined.clear();
        return;
      }
      if (r.created() && !w.announced) response().set_created(true);
      epb::WatchResponse& e = response();
      e.set_canceled(true);
      if (code == absl::StatusCode::kOutOfRange) {
        // Compacted: etcd says so with the revision alone, the first one a
        // watch can start from (ours: the history starts after
        // compact_revision), so that the client may restart there.
        e.set_compact_revision(StoreRev(r.compact_revision()) + 1);
      } else if (code != absl::StatusCode::kOk) {
        e.set_cancel_reason(absl::StrCat("etcdserver: ", r.message()));
      }
      watchers_.erase(it);
      return;
    }
    if (r.created()) {
      // Events from the revision after r.revision() on: the resume point
      // of a watcher created "from now".
      if (w.create.start_revision() == 0) {
        w.create.set_start_revision(r.revision() + 1);
      }
      // (Created again after a cut-off: the client knows it already.)
      if (!w.announced) response().set_created(true);
      w.announced = true;
      return;
    }
    std::vector<mvccpb::Event> events;
    events.reserve(static_cast<size_t>(r.events_size()));
    for (const client::WatchEvent& ev : r.events()) {
      mvccpb::Event& e = events.emplace_back();
      e.set_type(ev.type() == client::WatchEvent::DELETE ? mvccpb::Event::DELETE
                                                         : mvccpb::Event::PUT);
      ToEtcd(ev.kv(), e.mutable_kv());
      if (ev.has_prev_kv()) ToEtcd(ev.prev_kv(), e.mutable_prev_kv());
    }
    // Every revision up to this one delivered whole: a resume starts
    // after it. (Not after a part of one.)
    if (!r.fragment()) w.create.set_start_revision(r.revision() + 1);
    if (!w.fragments && (r.fragment() || !w.joined.empty())) {
      for (mvccpb::Event& e : events) w.joined.push_back(std::move(e));
      if (r.fragment()) return;  // more parts to come
      events = std::move(w.joined);
      w.joined.clear();
    }
    epb::WatchResponse& e = response();
    e.set_fragment(w.fragments && r.fragment());
    for (mvccpb::Event& ev : events) *e.add_events() = std::move(ev);
  }

  bool Send(std::vector<epb::WatchResponse> out) {
    MutexLock lock(&write_mu_);
    for (const epb::WatchResponse& r : out) {
      if (!stream_->Write(r)) return false;
    }
    return true;
  }

  const Impl* const g_;
  grpc::ServerContext* const ctx_;
  EtcdStream* const stream_;
  std::unique_ptr<grpc::ClientContext> native_ctx_;
  std::unique_ptr<NativeStream> native_;
  Mutex native_write_mu_;  // one write at a time on the member's stream
  Mutex write_mu_;         // and on the client's
  Mutex mu_;
  std::map<int64_t, Watcher> watchers_ ABSL_GUARDED_BY(mu_);
  int64_t next_id_ ABSL_GUARDED_BY(mu_) = 0;
  bool native_failed_ ABSL_GUARDED_BY(mu_) = false;
};

class WatchImpl final : public epb::Watch::Service {
 public:
  explicit WatchImpl(Impl* g) : g_(g) {}

  grpc::Status Watch(grpc::ServerContext* ctx, EtcdStream* stream) override {
    Client* c = g_->client();
    if (c == nullptr) return Impl::NotStarted();
    absl::StatusOr<client::Kv::Stub*> stub = WireStub(c, g_->self);
    if (!stub.ok()) return ToEtcdStatus(stub.status());
    WatchSession session(g_, ctx, stream);
    return session.Run(*stub);
  }

 private:
  Impl* const g_;
};

}  // namespace

std::unique_ptr<grpc::Service> NewWatchService(EtcdGateway::Impl* gateway) {
  return std::make_unique<WatchImpl>(gateway);
}

}  // namespace quorate::api::etcd
