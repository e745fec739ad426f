// The streams peers open to this member: Hello, then batches.
#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <optional>
#include <random>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "transport/grpc_status.h"
#include "transport/internal.h"
#include "util/clock.h"
#include "util/thread_name.h"

namespace quorate::transport::internal {

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
      if (!owner_->RegisterStream(this)) {
        next([this] {
          rw_.Finish(grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                                  "too many peer streams"),
                     &finished_);
        });
        return;
      }
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
        const grpc::Status refused = owner_->CheckHello(frame_, context_);
        if (!refused.ok()) {
          next([this, &refused] { rw_.Finish(refused, &finished_); });
          return;
        }
        greeted_ = true;
        from_ = frame_.hello().from();
        owner_->GreetedStream(this, frame_.hello());
        next([this] { rw_.Write(ack_, &wrote_); });
        return;
      }
      if (frame_.has_batch() &&
          !owner_->Received(from_, frame_.mutable_batch())) {
        next([this] {
          rw_.Finish(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                                  "malformed message"),
                     &finished_);
        });
        return;
      }
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

InStream::~InStream() { owner_->UnregisterStream(this); }

namespace {

// Whether `host` (of HOST:PORT) is a loopback address.
bool IsLoopback(absl::string_view host) {
  return host == "localhost" || absl::StartsWith(host, "127.") ||
         host == "[::1]" || host == "::1";
}

}  // namespace

void WarnIfPlaintextOnNetwork(const Transport::Options& o) {
  if (o.tls.enabled()) return;
  const absl::string_view host =
      absl::string_view(o.listen).substr(0, o.listen.rfind(':'));
  if (IsLoopback(host)) return;
  if (o.log) {
    o.log(absl::StrCat(
        "WARNING: plaintext on ", o.listen,
        ": anyone who reaches this address can speak as any member; give "
        "--tls_ca, --tls_cert and --tls_key (docs/operations.md, \"Mutual "
        "TLS\")"));
  }
}

grpc::Status TransportImpl::CheckHello(
    const peer::PeerFrame& frame, const grpc::ServerContext& context) const {
  const Options& o = options_;
  const peer::Hello& hello = frame.hello();
  std::string why;
  std::optional<std::string> name;
  {
    MutexLock lock(&peers_mu_);
    auto it = peer_names_.find(hello.from());
    if (it != peer_names_.end()) name = it->second;
  }
  // A member from before versions were exchanged speaks protocol 1 only.
  const uint32_t their_max = std::max<uint32_t>(hello.protocol(), 1);
  const uint32_t their_min =
      hello.min_protocol() == 0 ? their_max : hello.min_protocol();
  const TimingSettings theirs{
      static_cast<int64_t>(hello.election_timeout_ms()),
      static_cast<int64_t>(hello.max_clock_drift_ppm())};
  if (!frame.has_hello()) {
    why = "its stream did not start with Hello";
  } else if (hello.cluster_id() != o.cluster_id) {
    why = absl::StrCat("it belongs to cluster '", hello.cluster_id(),
                       "', this member to cluster '", o.cluster_id, "'");
  } else if (!name.has_value()) {
    why =
        "it is not a member of this cluster (it was removed, or not added "
        "yet: quoratectl member list)";
  } else if (hello.to() != o.self.id) {
    why = "it meant to reach another member";
  } else if (o.tls.enabled() &&
             !HasMemberIdentity(*context.auth_context(), *name)) {
    why = absl::StrCat("its certificate does not name member '", *name,
                       "' (no URI SAN ", MemberUri(*name),
                       "): a client's certificate, or another member's");
  } else if (theirs != o.timing) {
    why = absl::StrCat(
        "its election timeout is ", theirs.election_timeout_ms,
        " ms and its clock-drift bound ", theirs.max_clock_drift_ppm,
        " ppm; this member's are ", o.timing.election_timeout_ms, " ms and ",
        o.timing.max_clock_drift_ppm,
        " ppm. Members must agree (docs/operations.md, \"Changing the "
        "election timeout\")");
  } else if (their_min > kPeerProtocol || their_max < kMinPeerProtocol) {
    why = absl::StrCat(
        "it runs release ", hello.version().empty() ? "?" : hello.version(),
        " speaking peer protocols ", their_min, " to ", their_max,
        "; this member speaks ", kMinPeerProtocol, " to ", kPeerProtocol,
        ". Upgrade through a release that speaks both (docs/operations.md, "
        "\"Rolling upgrades\")");
  }
  if (why.empty()) return grpc::Status::OK;
  // A refused member (one removed, say, and still running) retries every
  // second: one line per claimed member every 10 s, with the count held
  // back.
  uint64_t held_back = 0;
  {
    MutexLock lock(&streams_mu_);
    // Keyed by a claim anyone can make: bounded.
    if (hello_refusals_.size() >= 1024 &&
        hello_refusals_.count(hello.from()) == 0) {
      hello_refusals_.clear();
    }
    RefusalLog& log = hello_refusals_[hello.from()];
    const int64_t now = MonotonicNowNs();
    if (log.logged_ns != 0 && now - log.logged_ns < 10'000'000'000) {
      ++log.held_back;
      return grpc::Status(grpc::StatusCode::PERMISSION_DENIED, "refused");
    }
    held_back = log.held_back;
    log = RefusalLog{now, 0};
  }
  Log(absl::StrCat("refused a peer stream from ", context.peer(),
                   " claiming to be member '", hello.from_name(), "' (id ",
                   hello.from(), "): ", why,
                   held_back > 0 ? absl::StrCat(" (", held_back,
                                                " more refused since the "
                                                "last such line)")
                                 : ""));
  return grpc::Status(grpc::StatusCode::PERMISSION_DENIED, "refused");
}

bool TransportImpl::RegisterStream(InStream* in) {
  MutexLock lock(&streams_mu_);
  if (in_streams_.size() >= options_.max_inbound_streams) return false;
  in_streams_[in] = InStreamInfo{MonotonicNowNs(), 0};
  return true;
}

void TransportImpl::GreetedStream(InStream* in, const peer::Hello& hello) {
  const uint64_t from = hello.from();
  {
    MutexLock lock(&mu_);
    versions_[from] = hello.version();
    // A member from before versions were exchanged speaks protocol 1.
    protocols_[from] = std::max<uint32_t>(hello.protocol(), 1);
  }
  RegisterGreeted(in, from);
  // SetPeers may have dropped the peer since CheckHello: it updates the
  // names before it cancels streams, and this stream's `from` is set
  // before the names are read again, so one of the two sees the other.
  bool still_a_peer;
  {
    MutexLock lock(&peers_mu_);
    still_a_peer = peer_names_.count(from) > 0;
  }
  if (!still_a_peer) {
    MutexLock lock(&streams_mu_);
    if (in_streams_.count(in) > 0) in->Cancel();
  }
}

void TransportImpl::RegisterGreeted(InStream* in, uint64_t from) {
  MutexLock lock(&streams_mu_);
  // A member keeps one stream to each peer: a new one replaces the old,
  // which may be dead without either side knowing yet (a black-holed link
  // is found by the dialing side's pings, not by ours).
  for (auto& [other, info] : in_streams_) {
    if (other != in && info.from == from) other->Cancel();
  }
  auto it = in_streams_.find(in);
  if (it != in_streams_.end()) it->second.from = from;
}

void TransportImpl::UnregisterStream(InStream* in) {
  MutexLock lock(&streams_mu_);
  in_streams_.erase(in);
}

void TransportImpl::Refuse(uint64_t peer, const std::string& why) {
  std::string name = std::to_string(peer);
  {
    MutexLock lock(&peers_mu_);
    auto it = peer_names_.find(peer);
    if (it != peer_names_.end()) name = it->second;
  }
  std::string line;
  {
    MutexLock lock(&streams_mu_);
    ++refused_[peer];
    for (auto& [in, info] : in_streams_) {
      if (info.from == peer) in->Cancel();
    }
    RefusalLog& log = refusal_log_[peer];
    const int64_t now = MonotonicNowNs();
    if (log.logged_ns != 0 && now - log.logged_ns < 10'000'000'000) {
      ++log.held_back;
      return;
    }
    line = absl::StrCat("refused a message from member '", name,
                        "' and ended its stream: ", why);
    if (log.held_back > 0) {
      absl::StrAppend(&line, " (", log.held_back,
                      " more refused since the last such line)");
    }
    log = RefusalLog{now, 0};
  }
  Log(line);
}

void TransportImpl::SweepHellos() {
  MutexLock lock(&streams_mu_);
  const int64_t timeout = absl::ToInt64Nanoseconds(options_.hello_timeout);
  while (sweeping_) {
    const int64_t now = MonotonicNowNs();
    for (auto& [in, info] : in_streams_) {
      if (info.from == 0 && now - info.accepted_ns > timeout) in->Cancel();
    }
    streams_changed_.WaitWithTimeout(&streams_mu_, options_.hello_timeout / 4);
  }
}

}  // namespace quorate::transport::internal
