// This member's stream to one peer: connecting with backoff, batching,
// and the chaos fault hooks.
#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <random>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "transport/grpc_status.h"
#include "transport/internal.h"
#include "util/clock.h"
#include "util/thread_name.h"

namespace quorate::transport::internal {

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
  const bool cut = owner_->faults().Current().drop.count(peer_.name) > 0;
  MutexLock lock(&mu_);
  const size_t max = owner_->options().max_queued_messages;
  for (raft::Message& m : messages) {
    if (cut || !connected_ || queue_.size() >= max) {
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
  // Up to max_bytes, or one message if it alone is larger: a frame stays
  // within the receiver's limit (Options::max_message_bytes).
  while (!queue_.empty()) {
    const size_t size = queue_.front().ByteSizeLong();
    if (out_messages_ > 0 && bytes + size > max_bytes) break;
    bytes += size;
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
      // With mutual TLS the listener must prove it is the member we meant
      // to reach, as we prove it to the listener, before anything is sent.
      if (o.tls.enabled() &&
          !HasMemberIdentity(*s->context.auth_context(), peer_.name)) {
        s->impostor = true;
        FailLocked(/*cancel=*/true);
        changed_.SignalAll();
        return;
      }
      peer::PeerFrame hello;
      hello.mutable_hello()->set_cluster_id(o.cluster_id);
      hello.mutable_hello()->set_from(o.self.id);
      hello.mutable_hello()->set_from_name(o.self.name);
      hello.mutable_hello()->set_to(peer_.id);
      hello.mutable_hello()->set_election_timeout_ms(
          static_cast<uint64_t>(o.timing.election_timeout_ms));
      hello.mutable_hello()->set_max_clock_drift_ppm(
          static_cast<uint64_t>(o.timing.max_clock_drift_ppm));
      hello.mutable_hello()->set_version(o.version);
      hello.mutable_hello()->set_protocol(kPeerProtocol);
      hello.mutable_hello()->set_min_protocol(kMinPeerProtocol);
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
        // Older attempts that failed make room; one still connecting is
        // never dropped for a newer one: a TLS handshake on a loaded
        // machine may take longer than a few attempt intervals, and
        // dropping it would start the handshake over, for ever.
        for (auto it = tries_.begin(); it + 1 != tries_.end();) {
          if ((*it)->GetState(false) == GRPC_CHANNEL_CONNECTING) {
            ++it;
          } else {
            it = tries_.erase(it);
          }
        }
        if (tries_.size() < o.max_connect_attempts) {
          tries_.push_back(make_channel_());
          tries_.back()->GetState(/*try_to_connect=*/true);
        }
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
    const bool impostor = s->impostor;
    stream_.reset();
    if (stopping_) return false;
    // A refusal is a configuration to fix, not a link to heal: retry
    // slowly, not in a tight loop of handshakes.
    refused_ =
        impostor || status.error_code() == grpc::StatusCode::PERMISSION_DENIED;
    if (impostor) {
      LogOnce(absl::StrCat("the listener at ", peer_.address,
                           " is not member '", peer_.name,
                           "': its certificate has no URI SAN ",
                           MemberUri(peer_.name), "; retrying"));
    } else if (status.error_code() == grpc::StatusCode::PERMISSION_DENIED) {
      LogOnce(absl::StrCat("member '", peer_.name, "' at ", peer_.address,
                           " refused this member: its log says why (this "
                           "member may have been removed from the cluster, "
                           "or its cluster id, timing or release differ)"));
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
    MutexLock lock(&mu_);
    const absl::Time until =
        absl::Now() + (refused_ ? o.refused_backoff : backoff) * jitter;
    backoff = std::min(backoff * 2, o.max_backoff);
    while (!stopping_ && absl::Now() < until) {
      changed_.WaitWithTimeout(&mu_, until - absl::Now());
    }
  }
}

}  // namespace quorate::transport::internal
