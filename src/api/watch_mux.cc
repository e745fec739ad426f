// api/watch_mux.h: the watches of one Client, multiplexed on few streams.
#include "api/watch_mux.h"

#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <atomic>
#include <deque>
#include <future>
#include <map>
#include <set>
#include <thread>
#include <utility>

#include "absl/strings/str_cat.h"
#include "api/client_internal.h"
#include "transport/grpc_status.h"
#include "util/clock.h"
#include "util/thread_name.h"

namespace quorate::api {
namespace {

// On a stream's thread, inside a callback: the revision that callback
// delivered up to (0 elsewhere). A watch started from the callback without
// a start revision starts after it.
thread_local uint64_t t_callback_revision = 0;

}  // namespace

// One watch. Everything but the atomics and `fragments` is guarded by the
// mux's mu_; `fragments` is its stream thread's.
struct WatchMux::Entry {
  Entry(std::string k, WatchOptions opts, bool in_callback)
      : key(std::move(k)),
        o(std::move(opts)),
        from_callback(in_callback),
        next(o.start_revision) {
    done_future = done.get_future().share();
  }

  enum class State { kPending, kRunning, kEnded };

  const std::string key;
  const WatchOptions o;
  // Started from a watch's callback: Watch() did not wait for it to be
  // accepted, so a refusal goes to on_end.
  const bool from_callback;
  State state = State::kPending;
  Stream* stream = nullptr;  // the stream it is placed on
  int64_t id = -1;           // its id there, once a create was sent
  uint64_t conn = 0;         // the connection that create went on
  bool created = false;      // the member accepted that create
  uint64_t next;             // the next revision to deliver; 0: not known
  std::thread::id caller;    // the thread running one of its callbacks
  absl::Status refusal;      // why it ended before it was accepted
  std::vector<WatchEvent> fragments;  // of a revision in parts
  std::atomic<uint64_t> revision{0};
  std::atomic<uint64_t> resumes{0};
  std::promise<absl::Status> done;
  std::shared_future<absl::Status> done_future;
};

// One gRPC Watch stream and its thread. The fields marked "mux" are
// guarded by the mux's mu_ (not annotated: the analysis cannot tell that
// a stream's mux_->mu_ is the mux's own).
class WatchMux::Stream {
 public:
  explicit Stream(WatchMux* mux) : mux_(mux) {
    thread_ = std::thread([this] {
      SetThreadName("q-watch");
      Run();
    });
  }
  ~Stream() {
    if (thread_.joinable()) thread_.join();
  }

  std::set<std::shared_ptr<Entry>> entries;  // mux: placed here
  size_t capacity = SIZE_MAX;  // mux: learned from a member's refusal

  bool HasRoomLocked() const {
    return entries.size() < std::min(capacity, mux_->link_.per_stream);
  }
  bool IsOwnThread() const {
    return std::this_thread::get_id() == thread_.get_id();
  }

  // Claims `e`'s create on the connection, if one is up: adds the request,
  // with a fresh id (ids are never used twice on a stream, so a late
  // answer for an old one is ignored).
  void ClaimLocked(const std::shared_ptr<Entry>& e, Requests* out) {
    if (!live_ || e->state == Entry::State::kEnded) return;
    if (e->id >= 0) by_id_.erase(e->id);
    e->id = next_id_++;
    e->conn = conn_;
    e->created = false;
    e->fragments.clear();  // a revision in parts starts over, whole
    by_id_[e->id] = e;
    client::WatchRequest req;
    client::WatchCreate* c = req.mutable_create();
    c->set_watch_id(e->id);
    c->set_key(e->key);
    c->set_range_end(e->o.range_end);
    c->set_start_revision(e->next);
    c->set_prev_kv(e->o.prev_kv);
    c->set_no_put(e->o.no_put);
    c->set_no_delete(e->o.no_delete);
    c->set_progress_notify(true);  // keeps `next` fresh for resuming
    Queue(std::move(req), out);
  }

  // Takes `e` off this stream, adding the cancel if the member has it.
  void DetachLocked(const std::shared_ptr<Entry>& e, Requests* out) {
    entries.erase(e);
    e->stream = nullptr;
    if (e->id < 0) return;
    const int64_t id = std::exchange(e->id, -1);
    by_id_.erase(id);
    if (!live_ || e->conn != conn_) return;
    client::WatchRequest req;
    req.mutable_cancel()->set_watch_id(id);
    Queue(std::move(req), out);
  }

  // Writes what was queued, in the order it was queued (a cancel never
  // overtakes its watch's create), on the connection it was made for.
  void Flush() {
    MutexLock write(&write_mu_);
    while (true) {
      Outgoing o;
      {
        MutexLock lock(&mux_->mu_);
        if (pending_.empty()) return;
        o = std::move(pending_.front());
        pending_.pop_front();
      }
      if (rw_ != nullptr && rw_conn_ == o.conn) (void)rw_->Write(o.request);
    }
  }

  // Wakes the thread if it waits for a watch to serve.
  void Wake() { wake_.SignalAll(); }
  // Breaks the connection: the mux is stopping.
  void StopLocked() {
    if (ctx_ != nullptr) ctx_->TryCancel();
    wake_.SignalAll();
  }

  absl::Status last_error() const { return last_error_; }  // mux

 private:
  void Run();
  // Connects to `address` and serves until the connection breaks; true
  // if the member answered anything.
  bool Serve(const std::string& address);
  void Dispatch(const client::WatchResponse& r, Requests* out);
  // A member refused `e`'s create because this stream is full: moves it
  // to another stream; false if there is no point (it takes none).
  bool MoveOnLocked(const std::shared_ptr<Entry>& e, Requests* out)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mux_->mu_);
  void Deliver(const std::shared_ptr<Entry>& e, const client::WatchResponse& r);
  // The watch is over, for good, with why (on this thread).
  void End(const std::shared_ptr<Entry>& e, const absl::Status& why);

  // Queues `req` for the connection up, and notes that this stream has
  // something to write (the caller flushes it once it let go of mu_).
  void Queue(client::WatchRequest req, Requests* out) {
    pending_.push_back(Outgoing{conn_, std::move(req)});
    out->push_back(this);
  }

  WatchMux* const mux_;
  CondVar wake_;
  std::deque<Outgoing> pending_;  // mux: to write, in order
  bool live_ = false;             // mux: a connection is up
  uint64_t conn_ = 0;             // mux: its number
  int64_t next_id_ = 0;           // mux
  // mux: the creates sent on the connection up, by id.
  std::map<int64_t, std::shared_ptr<Entry>> by_id_;
  grpc::ClientContext* ctx_ = nullptr;  // mux
  absl::Status last_error_ =            // mux
      absl::UnavailableError("no member answered yet");
  // Writes go one at a time, on the connection up.
  Mutex write_mu_;
  grpc::ClientReaderWriter<client::WatchRequest, client::WatchResponses>* rw_
      ABSL_GUARDED_BY(write_mu_) = nullptr;
  uint64_t rw_conn_ ABSL_GUARDED_BY(write_mu_) = 0;
  std::thread thread_;  // last: it uses everything above
};

void WatchMux::Stream::Run() {
  const std::vector<std::string>& endpoints = mux_->link_.endpoints;
  size_t turn = 0;
  bool pick = true;
  int64_t backoff_ms = 20;
  while (true) {
    {
      MutexLock lock(&mux_->mu_);
      while (!mux_->stopping_ && entries.empty()) wake_.Wait(&mux_->mu_);
      if (mux_->stopping_) return;
    }
    const std::string address =
        pick ? mux_->link_.pick() : endpoints[turn++ % endpoints.size()];
    if (Serve(address)) {
      // It worked for a while: the client's member first again, at once.
      pick = true;
      backoff_ms = 20;
      continue;
    }
    pick = false;
    // The backoff, cut short only if the next member to try gets connected
    // meanwhile (WatchLink::await_connected says why not on a timer); a
    // member connected already that refused the stream waits it out.
    const std::string next = endpoints[turn % endpoints.size()];
    const bool was_up = mux_->link_.connected(next);
    const int64_t until = MonotonicNowNs() + backoff_ms * 1'000'000;
    for (int64_t now = MonotonicNowNs(); now < until; now = MonotonicNowNs()) {
      const absl::Duration slice =
          std::min(absl::Nanoseconds(until - now), absl::Milliseconds(50));
      {
        MutexLock lock(&mux_->mu_);
        if (mux_->stopping_) return;
        if (was_up) {
          wake_.WaitWithTimeout(&mux_->mu_, slice);
          continue;
        }
      }
      if (mux_->link_.await_connected(next, slice)) break;
    }
    backoff_ms = std::min<int64_t>(backoff_ms * 2, 1000);
  }
}

bool WatchMux::Stream::Serve(const std::string& address) {
  grpc::ClientContext ctx;
  uint64_t conn;
  {
    MutexLock lock(&mux_->mu_);
    if (mux_->stopping_) return false;
    ctx_ = &ctx;
    conn = ++conn_;
  }
  auto rw = mux_->link_.stub(address)->Watch(&ctx);
  {
    MutexLock lock(&write_mu_);
    rw_ = rw.get();
    rw_conn_ = conn;
  }
  Requests creates;
  {
    MutexLock lock(&mux_->mu_);
    live_ = true;
    by_id_.clear();
    for (const std::shared_ptr<Entry>& e : entries) {
      e->id = -1;
      ClaimLocked(e, &creates);
    }
  }
  Send(creates);
  bool answered = false;
  client::WatchResponses batch;
  while (rw->Read(&batch)) {
    answered = true;
    Requests out;
    for (const client::WatchResponse& r : batch.responses()) Dispatch(r, &out);
    Send(out);
  }
  {
    MutexLock lock(&mux_->mu_);
    live_ = false;
    ctx_ = nullptr;
    by_id_.clear();
    for (const std::shared_ptr<Entry>& e : entries) {
      e->id = -1;
      if (e->state == Entry::State::kRunning) e->resumes.fetch_add(1);
    }
  }
  ctx.TryCancel();  // unblocks a write in progress
  {
    MutexLock lock(&write_mu_);
    rw_ = nullptr;
  }
  while (rw->Read(&batch)) {
  }
  const grpc::Status gs = rw->Finish();
  if (!gs.ok()) {
    MutexLock lock(&mux_->mu_);
    last_error_ = absl::Status(FromGrpcStatus(gs).code(),
                               absl::StrCat(address, ": ", gs.error_message()));
  }
  return answered;
}

void WatchMux::Stream::Dispatch(const client::WatchResponse& r, Requests* out) {
  std::shared_ptr<Entry> e;
  {
    MutexLock lock(&mux_->mu_);
    auto it = by_id_.find(r.watch_id());
    if (it == by_id_.end()) return;  // canceled, or an old id
    e = it->second;
    if (e->state == Entry::State::kEnded) return;
    if (r.canceled()) {
      by_id_.erase(it);
      e->id = -1;
      const auto code = static_cast<absl::StatusCode>(r.code());
      if (code == absl::StatusCode::kResourceExhausted ||
          code == absl::StatusCode::kUnavailable) {
        // A refusal of a create comes as created and canceled at once.
        if (!r.created()) {
          // Cut off for falling behind: again, from the next revision.
          if (e->state == Entry::State::kRunning) e->resumes.fetch_add(1);
          ClaimLocked(e, out);
          return;
        }
        // Refused at create: this stream is full on this member.
        last_error_ = absl::Status(code, r.message());
        if (MoveOnLocked(e, out)) return;
      }
    } else if (r.created()) {
      e->created = true;
      if (e->next == 0) e->next = r.revision() + 1;
      if (e->state == Entry::State::kPending) {
        e->state = Entry::State::kRunning;
        mux_->changed_.SignalAll();
      }
      return;
    }
  }
  if (r.canceled()) {
    End(e, absl::Status(static_cast<absl::StatusCode>(r.code()), r.message()));
    return;
  }
  Deliver(e, r);
}

bool WatchMux::Stream::MoveOnLocked(const std::shared_ptr<Entry>& e,
                                    Requests* out) {
  size_t created = 0;
  for (const auto& [id, other] : by_id_) created += other->created ? 1 : 0;
  if (mux_->stopping_) return false;
  // A member that takes no watch on a stream (its limit is at least 1, so
  // only in passing): a new watch is refused (Watch() or on_end says
  // why), but a running one is never ended for it: it moves on.
  if (created == 0 && e->state != Entry::State::kRunning) return false;
  capacity = created;
  DetachLocked(e, out);
  mux_->PlaceLocked(e, out);
  return true;
}

void WatchMux::Stream::Deliver(const std::shared_ptr<Entry>& e,
                               const client::WatchResponse& r) {
  uint64_t next;
  {
    MutexLock lock(&mux_->mu_);
    next = e->next;
  }
  // A revision's parts are delivered together, with the last.
  std::vector<WatchEvent> events = std::move(e->fragments);
  e->fragments.clear();
  for (const client::WatchEvent& w : r.events()) {
    if (w.kv().mod_revision() < next) continue;  // delivered already
    WatchEvent& ev = events.emplace_back();
    ev.type = w.type() == client::WatchEvent::DELETE ? WatchEvent::Type::kDelete
                                                     : WatchEvent::Type::kPut;
    ev.kv = FromWire(w.kv());
    if (w.has_prev_kv()) ev.prev = FromWire(w.prev_kv());
  }
  if (r.fragment()) {
    e->fragments = std::move(events);
    return;
  }
  if (r.revision() < next && events.empty()) return;  // nothing new
  {
    MutexLock lock(&mux_->mu_);
    if (e->state != Entry::State::kRunning) return;
    e->next = std::max(next, r.revision() + 1);
    e->revision.store(e->next - 1);
    e->caller = std::this_thread::get_id();
  }
  t_callback_revision = e->revision.load();
  if (e->o.on_events) e->o.on_events(events, r.revision());
  t_callback_revision = 0;
  MutexLock lock(&mux_->mu_);
  e->caller = std::thread::id();
  mux_->changed_.SignalAll();
}

void WatchMux::Stream::End(const std::shared_ptr<Entry>& e,
                           const absl::Status& why) {
  Requests out;  // stays empty: the member ended it
  {
    MutexLock lock(&mux_->mu_);
    if (e->state == Entry::State::kEnded) return;
    const bool was_running = e->state == Entry::State::kRunning;
    e->state = Entry::State::kEnded;
    if (e->stream != nullptr) e->stream->DetachLocked(e, &out);
    if (!was_running && !e->from_callback) {
      e->refusal = why;  // Watch() returns it
      mux_->changed_.SignalAll();
      return;
    }
    e->caller = std::this_thread::get_id();
  }
  t_callback_revision = e->revision.load();
  if (e->o.on_end) e->o.on_end(why);
  t_callback_revision = 0;
  e->done.set_value(why);
  MutexLock lock(&mux_->mu_);
  e->caller = std::thread::id();
  mux_->changed_.SignalAll();
}

class WatchMux::Handle final : public Watcher {
 public:
  Handle(WatchMux* mux, std::shared_ptr<Entry> e)
      : mux_(mux), e_(std::move(e)) {}
  ~Handle() override { Cancel(); }
  uint64_t revision() const override { return e_->revision.load(); }
  uint64_t resumes() const override { return e_->resumes.load(); }
  std::shared_future<absl::Status> Done() const override {
    return e_->done_future;
  }
  void Cancel() override { mux_->Cancel(e_); }

 private:
  WatchMux* const mux_;
  const std::shared_ptr<Entry> e_;
};

WatchMux::WatchMux(WatchLink link) : link_(std::move(link)) {}

WatchMux::~WatchMux() {
  std::vector<std::unique_ptr<Stream>> streams;
  {
    MutexLock lock(&mu_);
    stopping_ = true;
    for (auto& s : streams_) s->StopLocked();
    streams = std::move(streams_);
  }
  streams.clear();  // joins their threads
}

size_t WatchMux::streams() const {
  MutexLock lock(&mu_);
  return streams_.size();
}

void WatchMux::PlaceLocked(const std::shared_ptr<Entry>& e, Requests* out) {
  Stream* home = nullptr;
  for (auto& s : streams_) {
    if (s->HasRoomLocked()) {
      home = s.get();
      break;
    }
  }
  if (home == nullptr) {
    streams_.push_back(std::make_unique<Stream>(this));
    home = streams_.back().get();
  }
  home->entries.insert(e);
  e->stream = home;
  home->ClaimLocked(e, out);
  home->Wake();  // if it waits for a watch to serve
}

void WatchMux::Send(Requests& requests) {
  std::sort(requests.begin(), requests.end());
  requests.erase(std::unique(requests.begin(), requests.end()), requests.end());
  for (Stream* s : requests) s->Flush();
  requests.clear();
}

absl::StatusOr<std::unique_ptr<Watcher>> WatchMux::Watch(std::string key,
                                                         WatchOptions options) {
  Requests out;
  std::shared_ptr<Entry> e;
  {
    MutexLock lock(&mu_);
    // From a callback, waiting for the acceptance could wait on a stream
    // whose own callback waits on this one: return at once instead.
    const bool from_callback =
        std::any_of(streams_.begin(), streams_.end(),
                    [](const auto& s) { return s->IsOwnThread(); });
    // "From now", from a callback, is after what the callback delivered:
    // a write the callback then makes, or waits for, is seen.
    if (from_callback && options.start_revision == 0 &&
        t_callback_revision > 0) {
      options.start_revision = t_callback_revision + 1;
    }
    e = std::make_shared<Entry>(std::move(key), std::move(options),
                                from_callback);
    PlaceLocked(e, &out);
  }
  Send(out);
  if (e->from_callback) {
    return std::unique_ptr<Watcher>(new Handle(this, std::move(e)));
  }
  const int64_t give_up =
      MonotonicNowNs() + absl::ToInt64Nanoseconds(link_.accept_timeout);
  absl::Status last;
  {
    MutexLock lock(&mu_);
    while (e->state == Entry::State::kPending) {
      const int64_t left = give_up - MonotonicNowNs();
      if (left <= 0) break;
      changed_.WaitWithTimeout(&mu_, absl::Nanoseconds(left));
    }
    if (e->state == Entry::State::kRunning) {
      return std::unique_ptr<Watcher>(new Handle(this, std::move(e)));
    }
    if (e->state == Entry::State::kEnded) return e->refusal;
    // Not accepted in time: withdrawn.
    e->state = Entry::State::kEnded;
    if (e->stream != nullptr) {
      last = e->stream->last_error();
      e->stream->DetachLocked(e, &out);
    }
  }
  Send(out);
  return absl::UnavailableError(absl::StrCat(
      "no member accepted the watch in time; last error: ", last.ToString()));
}

void WatchMux::Cancel(const std::shared_ptr<Entry>& e) {
  Requests out;
  {
    MutexLock lock(&mu_);
    // Waits for a callback of it in progress, unless it is the caller.
    const std::thread::id self = std::this_thread::get_id();
    auto running = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return e->caller != std::thread::id() && e->caller != self;
    };
    if (e->state == Entry::State::kEnded) {
      while (running()) changed_.Wait(&mu_);
      return;
    }
    e->state = Entry::State::kEnded;
    if (e->stream != nullptr) e->stream->DetachLocked(e, &out);
    while (running()) changed_.Wait(&mu_);
  }
  Send(out);
  if (e->o.on_end) e->o.on_end(absl::OkStatus());
  e->done.set_value(absl::OkStatus());
}

}  // namespace quorate::api
