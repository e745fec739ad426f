#include "transport/transport.h"

#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <deque>
#include <fstream>
#include <random>
#include <set>
#include <sstream>
#include <thread>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "transport/cq.h"
#include "transport/grpc_status.h"
#include "util/clock.h"
#include "util/mutex.h"
#include "util/thread_name.h"
#include "wire/peer.grpc.pb.h"

namespace quorate::transport {
namespace {

// The fault hooks of transport.h (Options::faults_file), shared by every
// sender of a transport.
class FaultFile {
 public:
  struct Faults {
    int64_t delay_ms = 0;
    int duplicate_percent = 0;
  };

  explicit FaultFile(std::string path) : path_(std::move(path)) {}

  Faults Current() {
    if (path_.empty()) return {};
    MutexLock lock(&mu_);
    const int64_t now = MonotonicNowNs();
    if (now - read_ns_ < 100'000'000) return faults_;
    read_ns_ = now;
    faults_ = {};
    std::ifstream in(path_);
    std::string word;
    while (in >> word) {
      const size_t eq = word.find('=');
      if (eq == std::string::npos) continue;
      const std::string key = word.substr(0, eq);
      const int64_t value = std::atoll(word.c_str() + eq + 1);
      if (key == "delay_ms") faults_.delay_ms = std::max<int64_t>(0, value);
      if (key == "duplicate_percent") {
        faults_.duplicate_percent =
            static_cast<int>(std::clamp<int64_t>(value, 0, 100));
      }
    }
    return faults_;
  }

 private:
  const std::string path_;
  Mutex mu_;
  int64_t read_ns_ ABSL_GUARDED_BY(mu_) = -1'000'000'000'000;
  Faults faults_ ABSL_GUARDED_BY(mu_);
};

int Ms(absl::Duration d) {
  return static_cast<int>(absl::ToInt64Milliseconds(d));
}

class TransportImpl;

// A stream a peer opened to this member: Hello, then batches until it
// breaks. Lives on the io thread, and deletes itself when it is over.
class InStream final : public CqHandler {
 public:
  InStream(TransportImpl* owner, peer::Peer::AsyncService* service,
           grpc::ServerCompletionQueue* cq)
      : owner_(owner), rw_(&context_) {
    service->RequestStream(&context_, &rw_, cq, cq, &requested_);
  }
  void OnEvent(int kind, bool ok) override;

 private:
  enum Kind { kRequested, kRead, kWrote, kFinished };
  ~InStream() = default;

  TransportImpl* const owner_;
  grpc::ServerContext context_;
  grpc::ServerAsyncReaderWriter<peer::StreamAck, peer::PeerFrame> rw_;
  peer::PeerFrame frame_;
  peer::StreamAck ack_;
  bool greeted_ = false;  // Hello read and accepted
  uint64_t from_ = 0;     // the member that said Hello
  CqTag requested_{this, kRequested};
  CqTag read_{this, kRead};
  CqTag wrote_{this, kWrote};
  CqTag finished_{this, kFinished};
};

// One peer's outgoing stream and its queue.
//
// Messages are written from the thread that queues them (the node loop or
// the storage thread) when no write is in flight, and otherwise by the io
// thread as soon as the previous write completes: everything queued
// meanwhile goes out as the next batch, in one frame. No thread wakes up
// just to pass a message on. A thread of the sender's own does the slow
// part, connecting: waiting for a channel, the Hello exchange, backoff.
class PeerSender final : public CqHandler {
 public:
  // `make_channel` returns a new channel to the peer (its own connection).
  PeerSender(TransportImpl* owner, PeerAddress peer, grpc::CompletionQueue* cq,
             std::function<std::shared_ptr<grpc::Channel>()> make_channel);
  ~PeerSender();

  void Enqueue(std::vector<raft::Message> messages);
  PeerState State() const;
  bool connected() const {
    MutexLock lock(&mu_);
    return connected_;
  }
  // Ends the stream and the thread, and joins it. The io thread must still
  // run: the stream's last operations complete there.
  void Stop();
  void OnEvent(int kind, bool ok) override;  // the io thread

 private:
  enum Kind { kStarted, kWrote, kRead, kFinished };
  // One attempt's stream. Destroyed only when none of its operations is
  // outstanding (phase kDone).
  struct Stream {
    enum class Phase { kStarting, kHello, kAwaitAck, kOpen, kFinishing, kDone };
    grpc::ClientContext context;
    std::unique_ptr<
        grpc::ClientAsyncReaderWriter<peer::PeerFrame, peer::StreamAck>>
        rw;
    peer::StreamAck ack;
    grpc::Status status;
    Phase phase = Phase::kStarting;
    int outstanding = 0;  // operations started and not yet completed
    bool failed = false;  // finishing once nothing is outstanding
    bool cancelled = false;
  };

  void Run();
  // Waits until a channel to the peer is ready, or `deadline`, or Stop().
  bool AwaitChannel(absl::Time deadline);
  // Opens the stream and exchanges Hello; false (after logging why) if the
  // peer cannot be reached or refuses.
  bool Connect();
  // Until the open stream breaks or Stop(): writes what the io thread and
  // Enqueue leave to this thread (frames under injected faults).
  void Serve();
  // Takes a batch off the queue and starts writing it.
  void StartWriteLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The stream broke, or is being stopped (`cancel`): finish it once no
  // operation is outstanding. A failed read needs no cancelling: the peer
  // ended the stream, and Finish() then returns the peer's own status (a
  // refusal's reason, which a cancel would replace).
  void FailLocked(bool cancel) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void LogOnce(const std::string& line) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Counts an operation about to begin on `s` (it completes on the io
  // thread), and tells ThreadSanitizer so.
  void BeginLocked(Stream* s) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    TsanStarting(cq_);
    ++s->outstanding;
  }

  TransportImpl* const owner_;
  const PeerAddress peer_;
  grpc::CompletionQueue* const cq_;
  const std::function<std::shared_ptr<grpc::Channel>()> make_channel_;
  // The channel in use and its stub, and the connection attempts under
  // way (newest last; kept from one AwaitChannel() to the next, so that an
  // attempt about to succeed is not dropped): the sender's thread only.
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<peer::Peer::Stub> stub_;
  std::deque<std::shared_ptr<grpc::Channel>> tries_;
  std::mt19937_64 rng_;  // the sender's thread only
  mutable Mutex mu_;
  CondVar changed_;  // stream phase, queue or stop changed
  std::unique_ptr<Stream> stream_ ABSL_GUARDED_BY(mu_);
  std::deque<raft::Message> queue_ ABSL_GUARDED_BY(mu_);
  peer::PeerFrame out_ ABSL_GUARDED_BY(mu_);  // the frame being written
  size_t out_messages_ ABSL_GUARDED_BY(mu_) = 0;
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool duplicate_ ABSL_GUARDED_BY(mu_) = false;  // write `out_` once more
  bool connected_ ABSL_GUARDED_BY(mu_) = false;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  uint64_t dropped_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t sent_ ABSL_GUARDED_BY(mu_) = 0;
  std::string last_log_ ABSL_GUARDED_BY(mu_);
  CqTag started_{this, kStarted};
  CqTag wrote_{this, kWrote};
  CqTag read_{this, kRead};
  CqTag finished_{this, kFinished};
  std::thread thread_;
};

bool FaultsActive(FaultFile& file) {
  const FaultFile::Faults f = file.Current();
  return f.delay_ms > 0 || f.duplicate_percent > 0;
}

class TransportImpl final : public Transport, public CallQueue {
 public:
  explicit TransportImpl(Options options)
      : options_(std::move(options)), faults_(options_.faults_file) {}
  ~TransportImpl() override { Stop(); }

  absl::Status Init(const std::vector<PeerAddress>& peers);

  void Send(std::vector<raft::Message> messages) override {
    std::map<uint64_t, std::vector<raft::Message>> by_peer;
    for (raft::Message& m : messages) {
      by_peer[m.to()].push_back(std::move(m));
    }
    for (auto& [to, batch] : by_peer) {
      auto it = senders_.find(to);
      if (it == senders_.end()) continue;  // not a peer (a bug upstream)
      it->second->Enqueue(std::move(batch));
    }
  }

  std::string listen_address() const override { return listen_address_; }

  std::map<uint64_t, PeerState> Peers() const override {
    std::map<uint64_t, PeerState> out;
    for (const auto& [id, sender] : senders_) out[id] = sender->State();
    MutexLock lock(&mu_);
    for (auto& [id, state] : out) {
      auto it = last_received_.find(id);
      if (it != last_received_.end()) state.last_received_ns = it->second;
      auto n = received_.find(id);
      if (n != received_.end()) state.received = n->second;
    }
    return out;
  }

  bool Connected(uint64_t peer) const override {
    auto it = senders_.find(peer);
    return it != senders_.end() && it->second->connected();
  }

  void Stop() override {
    if (stopped_.exchange(true)) return;
    // Senders first: their streams' last operations complete on the io
    // thread, which still runs.
    for (auto& [id, sender] : senders_) sender->Stop();
    accepting_.store(false);
    if (server_ != nullptr) {
      // Streams never end by themselves: cancel them now.
      server_->Shutdown(std::chrono::system_clock::now());
      server_->Wait();
    }
    if (cq_ != nullptr) {
      {
        MutexLock lock(&cq_mu_);
        cq_closed_ = true;
        cq_->Shutdown();
      }
      if (io_thread_.joinable()) {
        io_thread_.join();
      } else {
        void* tag;
        bool ok;
        while (cq_->Next(&tag, &ok)) {
        }
      }
    }
  }

  const Options& options() const { return options_; }
  FaultFile& faults() { return faults_; }

  // Waits for the next stream a peer opens (the io thread).
  void AcceptNextStream() {
    if (!accepting_.load()) return;
    StartOperation([this] { new InStream(this, &service_, cq_.get()); });
  }

  grpc::ServerCompletionQueue* cq() override { return cq_.get(); }
  bool StartOperation(absl::FunctionRef<void()> start) override {
    MutexLock lock(&cq_mu_);
    if (cq_closed_) return false;
    TsanStarting(cq_.get());
    start();
    return true;
  }

  // OK if `frame` is a Hello from a member of this cluster meant for this
  // member; otherwise the status to end the stream with (logged).
  grpc::Status CheckHello(const peer::PeerFrame& frame,
                          const std::string& address) const {
    const Options& o = options_;
    if (!frame.has_hello()) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                          "a peer stream must start with Hello");
    }
    const peer::Hello& hello = frame.hello();
    if (hello.cluster_id() != o.cluster_id) {
      Log(absl::StrCat("refused member '", hello.from_name(),
                       "' connecting from ", address,
                       ": it belongs to cluster '", hello.cluster_id(),
                       "', this member to cluster '", o.cluster_id, "'"));
      return grpc::Status(
          grpc::StatusCode::FAILED_PRECONDITION,
          absl::StrCat("member '", o.self.name, "' is in cluster '",
                       o.cluster_id, "', not in cluster '", hello.cluster_id(),
                       "'"));
    }
    if (peer_ids_.count(hello.from()) == 0) {
      Log(absl::StrCat("refused member '", hello.from_name(),
                       "' connecting from ", address,
                       ": it is not a member of this cluster"));
      return grpc::Status(
          grpc::StatusCode::FAILED_PRECONDITION,
          absl::StrCat("member '", o.self.name, "' does not know a member '",
                       hello.from_name(), "' in its cluster"));
    }
    if (hello.to() != o.self.id) {
      Log(absl::StrCat("refused member '", hello.from_name(),
                       "' connecting from ", address,
                       ": it meant to reach another member"));
      return grpc::Status(
          grpc::StatusCode::FAILED_PRECONDITION,
          absl::StrCat("this address serves member '", o.self.name,
                       "', not the one asked for"));
    }
    return grpc::Status::OK;
  }

  void Log(const std::string& line) const {
    if (options_.log) options_.log(line);
  }

  // A batch arrived on the stream `from` opened (the io thread).
  void Received(uint64_t from, raft::MessageBatch* batch) {
    std::vector<raft::Message> messages;
    messages.reserve(static_cast<size_t>(batch->messages_size()));
    for (raft::Message& m : *batch->mutable_messages()) {
      // A stream speaks for the member that said Hello, and only to us.
      if (m.from() != from || m.to() != options_.self.id) continue;
      messages.push_back(std::move(m));
    }
    {
      MutexLock lock(&mu_);
      last_received_[from] = MonotonicNowNs();
      received_[from] += messages.size();
    }
    if (options_.on_messages && !messages.empty()) {
      options_.on_messages(std::move(messages));
    }
  }

  void Unreachable(uint64_t peer) const {
    if (options_.on_unreachable) options_.on_unreachable(peer);
  }
  void Reconnected(uint64_t peer) const {
    if (options_.on_connected) options_.on_connected(peer);
  }

 private:
  const Options options_;
  FaultFile faults_;
  peer::Peer::AsyncService service_;
  std::unique_ptr<grpc::ServerCompletionQueue> cq_;
  std::thread io_thread_;
  std::atomic<bool> accepting_{true};
  Mutex cq_mu_;
  bool cq_closed_ ABSL_GUARDED_BY(cq_mu_) = false;
  std::unique_ptr<grpc::Server> server_;
  std::string listen_address_;
  // Fixed before the server starts: streams may arrive at once.
  std::set<uint64_t> peer_ids_;
  // Fixed after Init(); the senders lock themselves.
  std::map<uint64_t, std::unique_ptr<PeerSender>> senders_;
  mutable Mutex mu_;
  std::map<uint64_t, int64_t> last_received_ ABSL_GUARDED_BY(mu_);
  std::map<uint64_t, uint64_t> received_ ABSL_GUARDED_BY(mu_);
  std::atomic<bool> stopped_{false};
};

void InStream::OnEvent(int kind, bool ok) {
  // Exactly one operation is outstanding at a time, and none once an
  // event arrives: `next` starts the next one, or the stream ends here.
  auto next = [this](absl::FunctionRef<void()> start) {
    if (!owner_->StartOperation(start)) delete this;  // shutting down
  };
  switch (kind) {
    case kRequested:
      if (!ok) {  // the server is shutting down
        delete this;
        return;
      }
      owner_->AcceptNextStream();
      next([this] { rw_.Read(&frame_, &read_); });
      return;
    case kRead:
      if (!ok) {  // the peer closed or the stream broke
        next([this] {
          rw_.Finish(greeted_ ? grpc::Status::OK : grpc::Status::CANCELLED,
                     &finished_);
        });
        return;
      }
      if (!greeted_) {
        const grpc::Status refused =
            owner_->CheckHello(frame_, context_.peer());
        if (!refused.ok()) {
          next([this, &refused] { rw_.Finish(refused, &finished_); });
          return;
        }
        greeted_ = true;
        from_ = frame_.hello().from();
        next([this] { rw_.Write(ack_, &wrote_); });
        return;
      }
      if (frame_.has_batch()) owner_->Received(from_, frame_.mutable_batch());
      next([this] { rw_.Read(&frame_, &read_); });
      return;
    case kWrote:
      if (!ok) {
        next([this] { rw_.Finish(grpc::Status::CANCELLED, &finished_); });
        return;
      }
      next([this] { rw_.Read(&frame_, &read_); });
      return;
    case kFinished:
      delete this;
      return;
  }
}

PeerSender::PeerSender(
    TransportImpl* owner, PeerAddress peer, grpc::CompletionQueue* cq,
    std::function<std::shared_ptr<grpc::Channel>()> make_channel)
    : owner_(owner),
      peer_(std::move(peer)),
      cq_(cq),
      make_channel_(std::move(make_channel)),
      channel_(make_channel_()),
      stub_(peer::Peer::NewStub(channel_)),
      rng_(std::random_device{}()),
      thread_([this] {
        SetThreadName("q-connect");
        Run();
      }) {}

PeerSender::~PeerSender() { Stop(); }

void PeerSender::Stop() {
  {
    MutexLock lock(&mu_);
    stopping_ = true;
  }
  changed_.SignalAll();
  if (thread_.joinable() && thread_.get_id() != std::this_thread::get_id()) {
    thread_.join();
  }
}

void PeerSender::Enqueue(std::vector<raft::Message> messages) {
  MutexLock lock(&mu_);
  const size_t max = owner_->options().max_queued_messages;
  for (raft::Message& m : messages) {
    if (!connected_ || queue_.size() >= max) {
      ++dropped_;
      continue;
    }
    queue_.push_back(std::move(m));
  }
  if (!connected_ || writing_ || queue_.empty()) return;
  if (FaultsActive(owner_->faults())) {
    changed_.SignalAll();  // the sender's thread delays the frame
    return;
  }
  StartWriteLocked();
}

void PeerSender::StartWriteLocked() {
  const size_t max_bytes = owner_->options().max_batch_bytes;
  out_.Clear();
  raft::MessageBatch* batch = out_.mutable_batch();
  size_t bytes = 0;
  out_messages_ = 0;
  while (!queue_.empty() && bytes < max_bytes) {
    bytes += queue_.front().ByteSizeLong();
    *batch->add_messages() = std::move(queue_.front());
    queue_.pop_front();
    ++out_messages_;
  }
  writing_ = true;
  BeginLocked(stream_.get());
  stream_->rw->Write(out_, &wrote_);  // serializes `out_` before returning
}

void PeerSender::FailLocked(bool cancel) {
  Stream* s = stream_.get();
  connected_ = false;
  s->failed = true;
  if (cancel && !s->cancelled) {
    s->cancelled = true;
    s->context.TryCancel();
  }
  if (s->outstanding == 0 && s->phase != Stream::Phase::kFinishing &&
      s->phase != Stream::Phase::kDone) {
    s->phase = Stream::Phase::kFinishing;
    BeginLocked(s);
    s->rw->Finish(&s->status, &finished_);
  }
}

void PeerSender::OnEvent(int kind, bool ok) {
  MutexLock lock(&mu_);
  Stream* s = stream_.get();  // set: operations are outstanding
  --s->outstanding;
  if (kind == kFinished) {
    s->phase = Stream::Phase::kDone;
    changed_.SignalAll();
    return;
  }
  if (!ok || s->failed) {
    FailLocked(/*cancel=*/kind != kRead);
    changed_.SignalAll();
    return;
  }
  switch (kind) {
    case kStarted: {
      const Transport::Options& o = owner_->options();
      peer::PeerFrame hello;
      hello.mutable_hello()->set_cluster_id(o.cluster_id);
      hello.mutable_hello()->set_from(o.self.id);
      hello.mutable_hello()->set_from_name(o.self.name);
      hello.mutable_hello()->set_to(peer_.id);
      s->phase = Stream::Phase::kHello;
      BeginLocked(s);
      s->rw->Write(hello, &wrote_);
      return;
    }
    case kWrote:
      if (s->phase == Stream::Phase::kHello) {
        s->phase = Stream::Phase::kAwaitAck;
        BeginLocked(s);
        s->rw->Read(&s->ack, &read_);
        return;
      }
      sent_ += out_messages_;
      if (duplicate_) {
        duplicate_ = false;
        BeginLocked(s);
        s->rw->Write(out_, &wrote_);
        return;
      }
      writing_ = false;
      if (queue_.empty()) return;
      if (FaultsActive(owner_->faults())) {
        changed_.SignalAll();  // the sender's thread delays the frame
        return;
      }
      StartWriteLocked();
      return;
    case kRead:
      if (s->phase == Stream::Phase::kAwaitAck) {
        s->phase = Stream::Phase::kOpen;
        connected_ = true;
        changed_.SignalAll();
      }
      // The peer sends nothing after its ack, so this read completes only
      // when the stream breaks: that is how an idle stream (a follower's
      // to another follower) notices a dead link, which a writer would
      // only see at its next write.
      BeginLocked(s);
      s->rw->Read(&s->ack, &read_);
      return;
    default:
      return;
  }
}

PeerState PeerSender::State() const {
  MutexLock lock(&mu_);
  PeerState s;
  s.name = peer_.name;
  s.address = peer_.address;
  s.connected = connected_;
  s.dropped = dropped_;
  s.sent = sent_;
  return s;
}

void PeerSender::LogOnce(const std::string& line) {
  // A peer that stays down would otherwise log on every retry.
  if (line == last_log_) return;
  last_log_ = line;
  owner_->Log(line);
}

bool PeerSender::AwaitChannel(absl::Time deadline) {
  // A connection attempt into a black-holed link waits out its whole
  // connect timeout, and one started just before a heal would hold the
  // healed link unused until then. So while the newest channel is still
  // connecting, a fresh one (a new connection attempt) starts every
  // `attempt_interval`, the older ones go on trying, and the first one
  // ready is used: a healed link is noticed within about one interval. A
  // peer that refuses at once (nothing listening) needs no more than the
  // one channel's own retries.
  const Transport::Options& o = owner_->options();
  if (tries_.empty()) tries_.push_back(channel_);
  absl::Time next_try = absl::Now() + o.attempt_interval;
  while (true) {
    for (const std::shared_ptr<grpc::Channel>& ch : tries_) {
      if (ch->GetState(/*try_to_connect=*/true) == GRPC_CHANNEL_READY) {
        if (ch != channel_) {
          channel_ = ch;
          stub_ = peer::Peer::NewStub(channel_);
        }
        tries_.clear();
        return true;
      }
    }
    {
      MutexLock lock(&mu_);
      if (stopping_) return false;
    }
    const absl::Time now = absl::Now();
    if (now >= deadline) return false;
    if (now >= next_try) {
      // The newest attempt still hanging means a black hole; one that
      // already failed was refused, and more attempts would not help.
      if (tries_.back()->GetState(false) == GRPC_CHANNEL_CONNECTING) {
        tries_.push_back(make_channel_());
        tries_.back()->GetState(/*try_to_connect=*/true);
        if (tries_.size() > o.max_connect_attempts) tries_.pop_front();
      }
      next_try = now + o.attempt_interval;
    }
    // Wakes when the newest attempt changes state, and every quarter of
    // an interval to look at the older ones (one thread cannot wait on
    // several channels with the synchronous API; this costs a few
    // microseconds 200 times a second, only while the peer is away).
    const std::shared_ptr<grpc::Channel>& newest = tries_.back();
    newest->WaitForStateChange(
        newest->GetState(false),
        absl::ToChronoTime(
            std::min({next_try, deadline, now + o.attempt_interval / 4})));
  }
}

bool PeerSender::Connect() {
  const Transport::Options& o = owner_->options();
  if (!AwaitChannel(absl::Now() + o.connect_timeout)) {
    MutexLock lock(&mu_);
    LogOnce(absl::StrCat("cannot reach member '", peer_.name, "' at ",
                         peer_.address, "; retrying"));
    return false;
  }
  grpc::Status status;
  {
    MutexLock lock(&mu_);
    if (stopping_) return false;
    stream_ = std::make_unique<Stream>();
    Stream* s = stream_.get();
    s->context.set_deadline(
        absl::ToChronoTime(absl::Now() + o.stream_lifetime));
    s->rw = stub_->PrepareAsyncStream(&s->context, cq_);
    BeginLocked(s);
    s->rw->StartCall(&started_);
    // The io thread sends Hello and reads the ack.
    while (s->phase != Stream::Phase::kOpen &&
           s->phase != Stream::Phase::kDone) {
      if (stopping_) FailLocked(/*cancel=*/true);
      changed_.Wait(&mu_);
    }
    if (s->phase == Stream::Phase::kOpen) return true;
    status = s->status;
    stream_.reset();
    if (stopping_) return false;
    if (status.error_code() == grpc::StatusCode::FAILED_PRECONDITION) {
      LogOnce(absl::StrCat("member '", peer_.name, "' at ", peer_.address,
                           " refused this member: ", status.error_message()));
    } else {
      LogOnce(absl::StrCat("stream to member '", peer_.name, "' at ",
                           peer_.address, " failed: ", status.error_message()));
    }
  }
  return false;
}

void PeerSender::Serve() {
  while (true) {
    absl::Duration delay;
    bool duplicate = false;
    {
      MutexLock lock(&mu_);
      while (true) {
        if (stopping_) FailLocked(/*cancel=*/true);
        if (stream_->phase == Stream::Phase::kDone) return;
        // Enqueue and the io thread write themselves unless faults are
        // injected; then frames are left here, to be delayed.
        if (connected_ && !writing_ && !queue_.empty()) break;
        changed_.Wait(&mu_);
      }
      const FaultFile::Faults faults = owner_->faults().Current();
      delay = absl::Milliseconds(faults.delay_ms) *
              std::uniform_real_distribution<double>(0.5, 1.5)(rng_);
      duplicate = faults.duplicate_percent > 0 &&
                  std::uniform_int_distribution<int>(0, 99)(rng_) <
                      faults.duplicate_percent;
      // Claimed, so that nobody else writes meanwhile.
      writing_ = true;
    }
    absl::SleepFor(delay);
    MutexLock lock(&mu_);
    writing_ = false;
    if (connected_ && !queue_.empty()) {
      StartWriteLocked();
      duplicate_ = duplicate;
    }
  }
}

void PeerSender::Run() {
  const Transport::Options& o = owner_->options();
  absl::Duration backoff = o.initial_backoff;
  while (true) {
    {
      MutexLock lock(&mu_);
      if (stopping_) return;
    }
    if (Connect()) {
      {
        MutexLock lock(&mu_);
        if (!last_log_.empty()) {
          owner_->Log(absl::StrCat("connected to member '", peer_.name, "' at ",
                                   peer_.address));
          last_log_.clear();
        }
      }
      backoff = o.initial_backoff;
      owner_->Reconnected(peer_.id);
      const absl::Time opened = absl::Now();
      Serve();
      MutexLock lock(&mu_);
      const grpc::Status status = stream_->status;
      stream_.reset();
      connected_ = false;
      writing_ = false;
      duplicate_ = false;
      dropped_ += queue_.size();
      queue_.clear();
      if (stopping_) return;
      if (absl::Now() - opened >= o.stream_lifetime - absl::Seconds(1)) {
        continue;  // its deadline came: a planned replacement, at once
      }
      LogOnce(absl::StrCat("lost the stream to member '", peer_.name, "' at ",
                           peer_.address, ": ",
                           status.ok() ? "closed" : status.error_message()));
    }
    owner_->Unreachable(peer_.id);
    // Jittered exponential backoff: [0.5, 1.5) x backoff.
    const double jitter =
        std::uniform_real_distribution<double>(0.5, 1.5)(rng_);
    const absl::Time until = absl::Now() + backoff * jitter;
    backoff = std::min(backoff * 2, o.max_backoff);
    MutexLock lock(&mu_);
    while (!stopping_ && absl::Now() < until) {
      changed_.WaitWithTimeout(&mu_, until - absl::Now());
    }
  }
}

absl::Status TransportImpl::Init(const std::vector<PeerAddress>& peers) {
  for (const PeerAddress& p : peers) {
    if (p.id != options_.self.id) peer_ids_.insert(p.id);
  }
  absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> server =
      ServerCredentials(options_.tls);
  if (!server.ok()) return server.status();
  absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> channel =
      ChannelCredentials(options_.tls);
  if (!channel.ok()) return channel.status();
  std::shared_ptr<grpc::ServerCredentials> server_creds = *std::move(server);
  std::shared_ptr<grpc::ChannelCredentials> channel_creds = *std::move(channel);

  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort(options_.listen, server_creds, &port);
  builder.RegisterService(&service_);
  cq_ = builder.AddCompletionQueue();
  for (AsyncService* extra : options_.services) {
    builder.RegisterService(extra->grpc_service());
  }
  builder.SetMaxReceiveMessageSize(options_.max_message_bytes);
  builder.SetMaxSendMessageSize(options_.max_message_bytes);
  // Peers ping often (keepalive below): allow it, without data too.
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  builder.AddChannelArgument(
      GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS,
      Ms(options_.keepalive_time) / 2);
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MAX_PING_STRIKES, 0);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIME_MS,
                             Ms(options_.keepalive_time));
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIMEOUT_MS,
                             Ms(options_.keepalive_timeout));
  server_ = builder.BuildAndStart();
  if (server_ == nullptr || port == 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot listen on '", options_.listen,
                     "' (address in use, or not an address of this host)"));
  }
  listen_address_ = options_.listen.substr(0, options_.listen.rfind(':')) +
                    ":" + std::to_string(port);
  AcceptNextStream();
  for (AsyncService* extra : options_.services) extra->Start(this);
  io_thread_ = std::thread([this] {
    SetThreadName("q-io");
    void* tag;
    bool ok;
    while (cq_->Next(&tag, &ok)) {
      TsanTaken(cq_.get());
      const CqTag* t = static_cast<const CqTag*>(tag);
      t->handler->OnEvent(t->kind, ok);
    }
  });

  for (const PeerAddress& p : peers) {
    if (p.id == options_.self.id) continue;
    grpc::ChannelArguments args;
    args.SetMaxReceiveMessageSize(options_.max_message_bytes);
    args.SetMaxSendMessageSize(options_.max_message_bytes);
    args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, Ms(options_.keepalive_time));
    args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, Ms(options_.keepalive_timeout));
    args.SetInt(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
    args.SetInt(GRPC_ARG_HTTP2_MAX_PINGS_WITHOUT_DATA, 0);
    args.SetInt(GRPC_ARG_HTTP2_MIN_SENT_PING_INTERVAL_WITHOUT_DATA_MS,
                Ms(options_.keepalive_time));
    args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS,
                Ms(options_.initial_backoff));
    // gRPC gives each connection attempt at least this long.
    args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS,
                Ms(options_.min_connect_timeout));
    args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, Ms(options_.max_backoff));
    // A channel of its own per peer, not shared through gRPC's pool.
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    senders_[p.id] = std::make_unique<PeerSender>(
        this, p, cq_.get(), [address = p.address, channel_creds, args] {
          return grpc::CreateCustomChannel(address, channel_creds, args);
        });
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::unique_ptr<Transport>> Transport::Start(
    Options options, const std::vector<PeerAddress>& peers) {
  if (options.self.id == 0) {
    return absl::InvalidArgumentError("the member's id must not be 0");
  }
  auto t = std::make_unique<TransportImpl>(std::move(options));
  if (absl::Status s = t->Init(peers); !s.ok()) return s;
  return t;
}

}  // namespace quorate::transport
