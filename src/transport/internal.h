// transport/internal.h: the transport's parts, shared by its files:
// transport.cc (the transport itself: listener, peers, status), inbound.cc
// (streams peers open to this member) and sender.cc (this member's stream
// to one peer: connecting, backoff, batching, the fault hooks).
#ifndef QUORATE_TRANSPORT_INTERNAL_H_
#define QUORATE_TRANSPORT_INTERNAL_H_

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <deque>
#include <fstream>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "raft/validate.h"
#include "transport/cq.h"
#include "transport/transport.h"
#include "util/clock.h"
#include "util/mutex.h"
#include "wire/peer.grpc.pb.h"

namespace quorate::transport::internal {

// The fault hooks of transport.h (Options::faults_file), shared by every
// sender of a transport.
class FaultFile {
 public:
  struct Faults {
    int64_t delay_ms = 0;
    int duplicate_percent = 0;
    // Peers (by name) whose frames are dropped instead of sent: a
    // partition without root (make demo cuts a zone so).
    std::set<std::string> drop;
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
      if (key == "drop") {
        for (absl::string_view name :
             absl::StrSplit(word.substr(eq + 1), ',', absl::SkipEmpty())) {
          faults_.drop.insert(std::string(name));
        }
      }
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

// Whether the fault file asks for delays or duplicates now.
bool FaultsActive(FaultFile& file);

// One line in the log if `o` serves plaintext beyond loopback.
void WarnIfPlaintextOnNetwork(const Transport::Options& o);

// Milliseconds, for gRPC's integer arguments.
int Ms(absl::Duration d);

class TransportImpl;

// A server completion queue and the thread that drains it. A member has
// two: one for the peer streams (Raft's traffic, the renewals among it)
// and one for the client API, so that no flood of client calls can delay
// a heartbeat or a renewal behind its completions.
class QueueThread final : public CallQueue {
 public:
  explicit QueueThread(std::unique_ptr<grpc::ServerCompletionQueue> cq)
      : cq_(std::move(cq)) {}
  ~QueueThread() { Shutdown(); }
  // Starts the thread, which hands each event to its CqTag's handler.
  void Run(const char* thread_name);
  grpc::ServerCompletionQueue* cq() override { return cq_.get(); }
  bool StartOperation(absl::FunctionRef<void()> start) override {
    MutexLock lock(&mu_);
    if (closed_) return false;
    TsanStarting(cq_.get());
    start();
    return true;
  }
  // After the server's shutdown: closes the queue and waits until its
  // last event is handled. Idempotent.
  void Shutdown();

 private:
  const std::unique_ptr<grpc::ServerCompletionQueue> cq_;
  std::thread thread_;
  Mutex mu_;
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
};

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
  // Ends the stream (any thread, under the owner's registry lock).
  void Cancel() { context_.TryCancel(); }

 private:
  enum Kind { kRequested, kRead, kWrote, kFinished };
  ~InStream();

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
  const std::string& name() const { return peer_.name; }
  const std::string& address() const { return peer_.address; }
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
    // With mutual TLS: the listener's certificate did not name the peer.
    bool impostor = false;
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
  // The last attempt was refused (or reached an impostor).
  bool refused_ ABSL_GUARDED_BY(mu_) = false;
  uint64_t dropped_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t sent_ ABSL_GUARDED_BY(mu_) = 0;
  std::string last_log_ ABSL_GUARDED_BY(mu_);
  CqTag started_{this, kStarted};
  CqTag wrote_{this, kWrote};
  CqTag read_{this, kRead};
  CqTag finished_{this, kFinished};
  std::thread thread_;
};

class TransportImpl final : public Transport {
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
    MutexLock lock(&peers_mu_);
    for (auto& [to, batch] : by_peer) {
      auto it = senders_.find(to);
      // Not a peer: one just removed (the core may still address it for a
      // moment), or a bug upstream.
      if (it == senders_.end()) continue;
      it->second->Enqueue(std::move(batch));
    }
  }

  void SetPeers(const std::vector<PeerAddress>& peers) override;

  std::string listen_address() const override { return listen_address_; }

  std::map<uint64_t, PeerState> Peers() const override {
    std::map<uint64_t, PeerState> out;
    {
      MutexLock peers(&peers_mu_);
      for (const auto& [id, sender] : senders_) out[id] = sender->State();
    }
    MutexLock lock(&mu_);
    {
      MutexLock streams(&streams_mu_);
      for (auto& [id, state] : out) {
        auto it = refused_.find(id);
        if (it != refused_.end()) state.refused = it->second;
      }
    }
    for (auto& [id, state] : out) {
      auto it = last_received_.find(id);
      if (it != last_received_.end()) state.last_received_ns = it->second;
      auto n = received_.find(id);
      if (n != received_.end()) state.received = n->second;
      auto v = versions_.find(id);
      if (v != versions_.end()) state.version = v->second;
      auto p = protocols_.find(id);
      if (p != protocols_.end()) state.protocol = p->second;
    }
    return out;
  }

  bool Connected(uint64_t peer) const override {
    MutexLock lock(&peers_mu_);
    auto it = senders_.find(peer);
    return it != senders_.end() && it->second->connected();
  }

  void Stop() override {
    if (stopped_.exchange(true)) return;
    // Senders first: their streams' last operations complete on the io
    // thread, which still runs.
    // Stopped outside peers_mu_: a sender's last operations complete on
    // the io thread, which takes peers_mu_ to check a Hello. The senders
    // stay in the map until the transport is destroyed.
    std::vector<PeerSender*> senders;
    std::vector<std::thread> reapers;
    {
      MutexLock lock(&peers_mu_);
      for (auto& [id, sender] : senders_) senders.push_back(sender.get());
      reapers.swap(reapers_);
    }
    for (PeerSender* sender : senders) sender->Stop();
    // Senders SetPeers dropped: their streams end on the io thread too.
    for (std::thread& t : reapers) t.join();
    accepting_.store(false);
    {
      MutexLock lock(&streams_mu_);
      sweeping_ = false;
      streams_changed_.SignalAll();
    }
    if (sweeper_.joinable()) sweeper_.join();
    if (server_ != nullptr) {
      // Streams never end by themselves: cancel them now.
      server_->Shutdown(std::chrono::system_clock::now());
      server_->Wait();
    }
    if (peer_queue_ != nullptr) peer_queue_->Shutdown();
    if (client_queue_ != nullptr) client_queue_->Shutdown();
  }

  const Options& options() const { return options_; }
  FaultFile& faults() { return faults_; }

  // Waits for the next stream a peer opens (the io thread).
  void AcceptNextStream() {
    if (!accepting_.load()) return;
    StartOperation([this] { new InStream(this, &service_, cq()); });
  }

  // The peer streams' queue.
  grpc::ServerCompletionQueue* cq() { return peer_queue_->cq(); }
  bool StartOperation(absl::FunctionRef<void()> start) {
    return peer_queue_->StartOperation(start);
  }

  // OK if `frame` is a Hello from a member of this cluster meant for this
  // member, with our timing settings and (with TLS) a certificate naming
  // it. Otherwise the reason is logged here and the caller gets a bare
  // PERMISSION_DENIED: nothing about this cluster leaks to a stranger.
  grpc::Status CheckHello(const peer::PeerFrame& frame,
                          const grpc::ServerContext& context) const;

  // The registry of streams peers opened (any thread).
  // False if `max_inbound_streams` are open already.
  bool RegisterStream(InStream* in);
  void GreetedStream(InStream* in, const peer::Hello& hello);
  // Records which member a greeted stream speaks for.
  void RegisterGreeted(InStream* in, uint64_t from);
  void UnregisterStream(InStream* in);

  // Refuses (counts, logs at most every 10 s per peer) and ends `peer`'s
  // streams. Any thread.
  void Refuse(uint64_t peer, const std::string& why) override;

  void Log(const std::string& line) const {
    if (options_.log) options_.log(line);
  }

  // A batch arrived on the stream `from` opened (the io thread). False if
  // it held a malformed message: nothing of it is delivered, and the
  // stream is refused.
  bool Received(uint64_t from, raft::MessageBatch* batch) {
    std::vector<raft::Message> messages;
    messages.reserve(static_cast<size_t>(batch->messages_size()));
    for (raft::Message& m : *batch->mutable_messages()) {
      // A stream speaks for the member that said Hello, and only to us.
      if (m.from() != from || m.to() != options_.self.id) {
        Refuse(from, absl::StrCat("a message from member ", m.from(),
                                  " to member ", m.to(), " on its stream"));
        return false;
      }
      if (absl::Status s = raft::ValidateMessage(m); !s.ok()) {
        Refuse(from, std::string(s.message()));
        return false;
      }
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
    return true;
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
  std::unique_ptr<QueueThread> peer_queue_;
  std::unique_ptr<QueueThread> client_queue_;
  std::atomic<bool> accepting_{true};
  std::unique_ptr<grpc::Server> server_;
  std::string listen_address_;
  // Cancels streams whose Hello is overdue; ends at Stop().
  void SweepHellos();

  // A new sender for `p` (Init, SetPeers).
  std::unique_ptr<PeerSender> MakeSender(const PeerAddress& p);

  // The peers (SetPeers): set before the server starts, since streams may
  // arrive at once. The senders lock themselves.
  mutable Mutex peers_mu_;
  std::map<uint64_t, std::string> peer_names_ ABSL_GUARDED_BY(peers_mu_);
  std::map<uint64_t, std::unique_ptr<PeerSender>> senders_
      ABSL_GUARDED_BY(peers_mu_);
  std::shared_ptr<grpc::ChannelCredentials> channel_creds_;
  // Threads stopping the senders SetPeers dropped (joining a sender's
  // thread may take a moment: not on the caller's thread, the node loop).
  std::vector<std::thread> reapers_ ABSL_GUARDED_BY(peers_mu_);
  struct InStreamInfo {
    int64_t accepted_ns = 0;
    uint64_t from = 0;  // 0 until its Hello is accepted
  };
  struct RefusalLog {
    int64_t logged_ns = 0;
    uint64_t held_back = 0;
  };
  mutable Mutex streams_mu_;
  CondVar streams_changed_;
  std::map<InStream*, InStreamInfo> in_streams_ ABSL_GUARDED_BY(streams_mu_);
  std::map<uint64_t, uint64_t> refused_ ABSL_GUARDED_BY(streams_mu_);
  std::map<uint64_t, RefusalLog> refusal_log_ ABSL_GUARDED_BY(streams_mu_);
  // Refused Hellos, by the member they claimed to be (CheckHello).
  mutable std::map<uint64_t, RefusalLog> hello_refusals_
      ABSL_GUARDED_BY(streams_mu_);
  bool sweeping_ ABSL_GUARDED_BY(streams_mu_) = true;
  std::thread sweeper_;
  mutable Mutex mu_;
  std::map<uint64_t, std::string> versions_ ABSL_GUARDED_BY(mu_);
  std::map<uint64_t, uint32_t> protocols_ ABSL_GUARDED_BY(mu_);
  std::map<uint64_t, int64_t> last_received_ ABSL_GUARDED_BY(mu_);
  std::map<uint64_t, uint64_t> received_ ABSL_GUARDED_BY(mu_);
  std::atomic<bool> stopped_{false};
};

}  // namespace quorate::transport::internal

#endif  // QUORATE_TRANSPORT_INTERNAL_H_
