#include "transport/transport.h"

#include <grpcpp/grpcpp.h>
#include <unistd.h>

#include <algorithm>
#include <random>
#include <set>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "transport/grpc_status.h"
#include "transport/internal.h"
#include "util/clock.h"
#include "util/thread_name.h"

namespace quorate::transport {
namespace internal {

int Ms(absl::Duration d) {
  return static_cast<int>(absl::ToInt64Milliseconds(d));
}

bool FaultsActive(FaultFile& file) {
  const FaultFile::Faults f = file.Current();
  return f.delay_ms > 0 || f.duplicate_percent > 0;
}

void QueueThread::Run(const char* thread_name) {
  thread_ = std::thread([this, thread_name] {
    SetThreadName(thread_name);
    void* tag;
    bool ok;
    while (cq_->Next(&tag, &ok)) {
      TsanTaken(cq_.get());
      const CqTag* t = static_cast<const CqTag*>(tag);
      t->handler->OnEvent(t->kind, ok);
    }
  });
}

void QueueThread::Shutdown() {
  {
    MutexLock lock(&mu_);
    if (closed_) return;
    closed_ = true;
    cq_->Shutdown();
  }
  if (thread_.joinable()) {
    thread_.join();
  } else {
    void* tag;
    bool ok;
    while (cq_->Next(&tag, &ok)) {
    }
  }
}

absl::Status TransportImpl::Init(const std::vector<PeerAddress>& peers) {
  {
    MutexLock lock(&peers_mu_);
    for (const PeerAddress& p : peers) {
      if (p.id != options_.self.id) peer_names_[p.id] = p.name;
    }
  }
  WarnIfPlaintextOnNetwork(options_);
  absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> server =
      ServerCredentials(options_.tls);
  if (!server.ok()) return server.status();
  absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> channel =
      ChannelCredentials(options_.tls);
  if (!channel.ok()) return channel.status();
  std::shared_ptr<grpc::ServerCredentials> server_creds = *std::move(server);
  channel_creds_ = *std::move(channel);

  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort(options_.listen, server_creds, &port);
  builder.RegisterService(&service_);
  peer_queue_ = std::make_unique<QueueThread>(builder.AddCompletionQueue());
  client_queue_ = std::make_unique<QueueThread>(builder.AddCompletionQueue());
  for (AsyncService* extra : options_.services) {
    builder.RegisterService(extra->grpc_service());
  }
  builder.SetMaxReceiveMessageSize(options_.max_message_bytes);
  // What this listener sends: answers to clients (a range answer holds up
  // to 3 MiB of keys and values, a watch response about 1 MiB) and peers'
  // acknowledgements. The limit is for what it receives.
  builder.SetMaxSendMessageSize(Options::kMaxSendMessageBytes);
  grpc::ResourceQuota quota("quorate-listener");
  quota.Resize(options_.resource_quota_bytes);
  builder.SetResourceQuota(quota);
  builder.AddChannelArgument(GRPC_ARG_MAX_CONCURRENT_STREAMS,
                             options_.max_concurrent_streams_per_connection);
  // A connection must finish its TLS handshake within the Hello deadline.
  builder.AddChannelArgument(GRPC_ARG_SERVER_HANDSHAKE_TIMEOUT_MS,
                             Ms(options_.hello_timeout));
  // Peers ping often (keepalive below): allow it, without data too.
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  builder.AddChannelArgument(
      GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS,
      Ms(options_.keepalive_time) / 2);
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MAX_PING_STRIKES, 0);
  // The listener's own pings find dead connections slowly (the dialing
  // member's pings find a dead peer link in about a second; a client's
  // connection may be busy): a busy client must not be cut off for a
  // late answer.
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIME_MS, 10'000);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 20'000);
  server_ = builder.BuildAndStart();
  if (server_ == nullptr || port == 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot listen on '", options_.listen,
                     "' (address in use, or not an address of this host)"));
  }
  listen_address_ = options_.listen.substr(0, options_.listen.rfind(':')) +
                    ":" + std::to_string(port);
  AcceptNextStream();
  sweeper_ = std::thread([this] {
    SetThreadName("q-hello");
    SweepHellos();
  });
  for (AsyncService* extra : options_.services) {
    extra->Start(client_queue_.get());
  }
  // Both at the process's priority: a thread at a lower one that holds a
  // lock the others need (the allocator's, gRPC's) stalls them all when
  // the CPU is scarce (docs/design.md, "Overload").
  peer_queue_->Run("q-io");
  client_queue_->Run("q-client");

  {
    MutexLock lock(&peers_mu_);
    for (const PeerAddress& p : peers) {
      if (p.id != options_.self.id) senders_[p.id] = MakeSender(p);
    }
  }
  return absl::OkStatus();
}

std::unique_ptr<PeerSender> TransportImpl::MakeSender(const PeerAddress& p) {
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
  // gRPC gives each connection attempt at least this long. A TLS
  // handshake on a loaded machine takes longer than a TCP connect: cut
  // short at 100 ms, every attempt would fail while the load lasts.
  args.SetInt(
      GRPC_ARG_MIN_RECONNECT_BACKOFF_MS,
      Ms(options_.tls.enabled() ? std::max(options_.min_connect_timeout,
                                           options_.min_tls_connect_timeout)
                                : options_.min_connect_timeout));
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, Ms(options_.max_backoff));
  // A channel of its own per peer, not shared through gRPC's pool.
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  return std::make_unique<PeerSender>(
      this, p, cq(), [address = p.address, creds = channel_creds_, args] {
        return grpc::CreateCustomChannel(address, creds, args);
      });
}

void TransportImpl::SetPeers(const std::vector<PeerAddress>& peers) {
  std::vector<std::string> added;
  std::vector<std::string> names;  // of those dropped
  std::set<uint64_t> kept;
  {
    MutexLock lock(&peers_mu_);
    // Stop() sets stopped_ before it takes peers_mu_ to collect the
    // senders and the reapers: nothing is added after that.
    if (stopped_.load()) return;
    std::map<uint64_t, const PeerAddress*> wanted;
    for (const PeerAddress& p : peers) {
      if (p.id != options_.self.id) wanted[p.id] = &p;
    }
    std::vector<std::unique_ptr<PeerSender>> dropped;
    for (auto it = senders_.begin(); it != senders_.end();) {
      auto w = wanted.find(it->first);
      if (w != wanted.end() && w->second->address == it->second->address()) {
        ++it;
        continue;
      }
      names.push_back(it->second->name());
      dropped.push_back(std::move(it->second));
      it = senders_.erase(it);
    }
    peer_names_.clear();
    for (const auto& [id, p] : wanted) {
      peer_names_[id] = p->name;
      kept.insert(id);
      if (senders_.count(id) > 0) continue;
      senders_[id] = MakeSender(*p);
      added.push_back(absl::StrCat(p->name, " at ", p->address));
    }
    if (!dropped.empty()) {
      // Stopped on a thread of their own: joining a sender's thread may
      // take a moment, and the caller is the node's loop. Stop() joins it.
      reapers_.emplace_back([dropped = std::move(dropped)] {
        for (const std::unique_ptr<PeerSender>& sender : dropped) {
          sender->Stop();
        }
      });
    }
  }
  {
    // Streams from peers no longer listed end now; they come back, if they
    // try, to a refusal.
    MutexLock lock(&streams_mu_);
    for (auto& [in, info] : in_streams_) {
      if (info.from != 0 && kept.count(info.from) == 0) in->Cancel();
    }
  }
  if (!names.empty() || !added.empty()) {
    Log(absl::StrCat("peers changed: ", added.empty() ? "" : "added ",
                     absl::StrJoin(added, ", "),
                     !added.empty() && !names.empty() ? "; " : "",
                     names.empty() ? "" : "dropped or moved ",
                     absl::StrJoin(names, ", ")));
  }
}

}  // namespace internal

absl::StatusOr<std::unique_ptr<Transport>> Transport::Start(
    Options options, const std::vector<PeerAddress>& peers) {
  if (options.self.id == 0) {
    return absl::InvalidArgumentError("the member's id must not be 0");
  }
  auto t = std::make_unique<internal::TransportImpl>(std::move(options));
  if (absl::Status s = t->Init(peers); !s.ok()) return s;
  return t;
}

}  // namespace quorate::transport
