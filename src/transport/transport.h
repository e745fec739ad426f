// transport/transport.h: Raft messages between members over gRPC.
//
//   Transport::Options o;
//   o.self = {id, "n1", ""};  o.cluster_id = "demo";  o.listen = "127.0.0.1:0";
//   o.on_messages = [&](std::vector<raft::Message> m) { post_to_loop(...); };
//   QUORATE_ASSIGN_OR_RETURN(auto t, Transport::Start(o, peers));
//   t->Send(std::move(ready.messages));   // never blocks
//
// Each member keeps one long-lived stream to each peer for its outgoing
// messages (the peer does the same the other way), so a pair of members
// shares two streams on one or two HTTP/2 connections. Every stream, and
// every call of the services served beside them, completes on one
// completion queue drained by one io thread (transport/cq.h). A message is
// written by the thread that sends it when no write to that peer is in
// flight; otherwise it waits in the peer's bounded queue, and everything
// queued while a write was in flight goes out as the next batch, in one
// frame, started by the io thread when that write completes. A thread per
// peer does only the connecting.
//
// The first frame of a stream is a Hello naming the cluster, both members
// and the sender's timing settings (T and ρ). A member of another cluster,
// a stream meant for another member, a member whose T or ρ differ from
// ours, or (with mutual TLS) a certificate that does not name the member
// the Hello claims to be (a URI SAN `quorate:member:NAME`; a client
// certificate has none) is refused: the refusing member logs why in one
// line, and the caller learns only PERMISSION_DENIED, nothing about this
// cluster. A Hello must arrive within `hello_timeout`, and at most
// `max_inbound_streams` peer streams are open at once. A batch holding a
// malformed message (raft::ValidateMessage) ends its stream at once; so
// does Refuse(), for messages the core refused. A broken stream is retried with
// jittered exponential backoff; while a peer is unreachable its messages are
// dropped (Raft retries) and `on_unreachable` tells the core to probe it
// gently. Reconnecting, a new connection attempt starts every
// `attempt_interval` beside the older ones still trying, so a healed link is
// used within about that long (one attempt sent into a black hole would hold it
// until its timeout), and `on_connected` says when the stream is up again.
//
// HTTP/2 keepalive pings every `keepalive_time` and gives up after
// `keepalive_timeout` without an answer, so a black-holed link (packets
// silently dropped: TCP alone would wait for minutes) breaks the stream
// within about a second. Every stream has a deadline (`stream_lifetime`,
// after which it is replaced) and every message a size limit.
//
// Fault hooks, for chaos tests only: when Options::faults_file names a file
// (quorate-node --faults_file), each sender reads it (at most every 100 ms)
// and obeys `delay_ms=N` (every outgoing frame waits N ms, with
// ±50 % jitter, before it is written) and `duplicate_percent=P` (a frame is
// written twice with probability P %), and `drop=NAME,NAME` (every frame to
// those peers is dropped instead of sent: each side of a partition lists
// the other, as make demo does to cut a zone off without root). A missing
// or empty file means no faults. Packet loss and partitions on real
// interfaces are made with nftables instead.
//
// Thread-safety: all methods may be called from any thread. The callbacks
// run on the io thread (on_connected and on_unreachable on a peer's
// connecting thread) and must not block.
#ifndef QUORATE_TRANSPORT_TRANSPORT_H_
#define QUORATE_TRANSPORT_TRANSPORT_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "transport/tls.h"
#include "wire/raft.pb.h"

namespace quorate::transport {

class AsyncService;

struct PeerAddress {
  uint64_t id = 0;
  std::string name;     // as in logs and /status
  std::string address;  // HOST:PORT
};

// The peer protocol this release speaks, and the oldest it still speaks.
// Each Hello carries both; two members whose ranges do not overlap refuse
// each other, naming both ranges in the log. Raise kPeerProtocol with any
// change to the peer wire format that an older member cannot read, and
// kMinPeerProtocol only when this release can no longer work beside
// members that speak less (docs/operations.md, "Rolling upgrades").
//   1: the first.
//   2: the state machine's commands of etcd's API (nested transactions,
//      puts keeping a key's value or lease, Compact). A member that
//      speaks 1 applies them differently: the client API refuses them
//      until every member is heard to speak 2 (PeerState::protocol).
inline constexpr uint32_t kPeerProtocol = 2;
inline constexpr uint32_t kMinPeerProtocol = 1;

// What members must agree on (docs/design.md, "Members agree on T and ρ").
struct TimingSettings {
  int64_t election_timeout_ms = 0;  // T
  int64_t max_clock_drift_ppm = 0;  // ρ, in millionths
  bool operator==(const TimingSettings&) const = default;
};

struct PeerState {
  std::string name;
  std::string address;
  bool connected = false;  // our stream to it is up
  // Monotonic time (ns) of the last batch received from it; 0 if never.
  int64_t last_received_ns = 0;
  uint64_t dropped = 0;   // messages dropped: queue full or link down
  uint64_t sent = 0;      // messages written to its stream
  uint64_t received = 0;  // messages received from it
  uint64_t refused = 0;   // messages refused (malformed, or by the core)
  // The release it runs, and the newest peer protocol it speaks, from its
  // last accepted Hello; empty and 0 until then.
  std::string version;
  uint32_t protocol = 0;
};

class Transport {
 public:
  struct Options {
    PeerAddress self;
    std::string cluster_id;
    std::string listen;  // HOST:PORT; port 0 picks a free one
    TlsFiles tls;
    absl::Duration keepalive_time = absl::Milliseconds(300);
    absl::Duration keepalive_timeout = absl::Milliseconds(700);
    absl::Duration stream_lifetime = absl::Minutes(10);
    absl::Duration connect_timeout = absl::Seconds(1);
    // Reconnecting to a peer: attempts at least `min_connect_timeout` long
    // (it must exceed the round trip between members), spaced by a
    // jittered backoff from `initial_backoff` to `max_backoff`. Short, so
    // that a healed partition is noticed within a heartbeat or two: the
    // partition guard resumes only once its renewals get through again.
    absl::Duration min_connect_timeout = absl::Milliseconds(100);
    // With TLS: the handshake is part of the attempt, and under CPU load
    // takes longer; a healed link is still noticed within about
    // attempt_interval, since attempts overlap.
    absl::Duration min_tls_connect_timeout = absl::Milliseconds(500);
    // While a peer is unreachable a new connection attempt starts this
    // often, alongside up to `max_connect_attempts` - 1 older ones still
    // trying: a healed link is used within about this long.
    absl::Duration attempt_interval = absl::Milliseconds(20);
    size_t max_connect_attempts = 4;
    absl::Duration initial_backoff = absl::Milliseconds(10);
    absl::Duration max_backoff = absl::Milliseconds(30);
    // After the peer refused our Hello (or its certificate named another
    // member): a configuration to fix, retried this often.
    absl::Duration refused_backoff = absl::Seconds(1);
    size_t max_queued_messages = 4096;  // per peer
    // A frame holds messages up to this many bytes, or one larger message.
    size_t max_batch_bytes = 1 << 20;
    // The listener's receive limit, for peer frames and client requests
    // alike (one gRPC server): a larger message is refused from its length
    // prefix, before it is buffered. A peer message is at most about the
    // core's max_message_bytes plus one entry, and an entry at most the
    // value limit plus its key: 1 MiB each by default.
    int max_message_bytes = kDefaultMaxMessageBytes;
    static constexpr int kDefaultMaxMessageBytes = (2 << 20) + (64 << 10);
    // What the listener sends at most (its answers to clients).
    static constexpr int kMaxSendMessageBytes = 16 << 20;
    // Must agree with every peer's (above).
    TimingSettings timing;
    // This member's release, sent in its Hello (quorate::Version()).
    std::string version;
    absl::Duration hello_timeout = absl::Seconds(2);
    size_t max_inbound_streams = 64;
    // Per HTTP/2 connection, for peers and clients alike.
    int max_concurrent_streams_per_connection = 16384;
    // Memory gRPC may use for this listener's connections and calls. It
    // also bounds how much of one oversized request is buffered before the
    // stream is reset (gRPC 1.51 checks max_message_bytes only once the
    // whole message is read).
    size_t resource_quota_bytes = size_t{64} << 20;
    // More services to serve on the same listener and completion queue
    // (the client API; transport/cq.h). Not owned; they must outlive the
    // transport.
    std::vector<AsyncService*> services;
    // Chaos tests only: the fault file above; empty: no faults.
    std::string faults_file;
    // Batches received, in order per peer. Must not block.
    std::function<void(std::vector<raft::Message>)> on_messages;
    // A peer's stream broke or could not be opened.
    std::function<void(uint64_t peer)> on_unreachable;
    // Our stream to a peer opened (again). Must not block.
    std::function<void(uint64_t peer)> on_connected;
    std::function<void(const std::string&)> log;
  };

  // Binds `listen` and starts serving; then connects to `peers` lazily.
  // Only `peers` may open streams to this member (SetPeers changes them).
  static absl::StatusOr<std::unique_ptr<Transport>> Start(
      Options options, const std::vector<PeerAddress>& peers);
  virtual ~Transport() = default;

  // Replaces the peers: new ones are connected to (lazily) and may open
  // streams to this member; streams to and from the ones left out end,
  // and their Hellos are refused from now on ("not a member of this
  // cluster"). A peer whose address changed is reconnected. Any thread;
  // it waits for the dropped peers' connecting threads to end.
  virtual void SetPeers(const std::vector<PeerAddress>& peers) = 0;
  // Queues messages for their peers. Never blocks; drops (and counts) what
  // does not fit or has nowhere to go.
  virtual void Send(std::vector<raft::Message> messages) = 0;
  // The address actually bound (with the port chosen for port 0).
  virtual std::string listen_address() const = 0;
  virtual std::map<uint64_t, PeerState> Peers() const = 0;
  // Whether our stream to `peer` is up: what is sent to it now can arrive.
  virtual bool Connected(uint64_t peer) const = 0;
  // The core refused a message `peer` sent: count it, log `why` (at most
  // once per peer every 10 s, with the number held back), and end the
  // streams `peer` opened to this member. It reconnects with a new Hello.
  virtual void Refuse(uint64_t peer, const std::string& why) = 0;
  // Closes every stream and stops serving. Idempotent; the destructor does
  // it too.
  virtual void Stop() = 0;
};

}  // namespace quorate::transport

#endif  // QUORATE_TRANSPORT_TRANSPORT_H_
