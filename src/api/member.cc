// The public Member API (include/quorate/member.h): options checked up
// front, a node::Node, its admin server and its event log.
#include "quorate/member.h"

#include <grpcpp/grpcpp.h>
#include <stdio.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <set>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "admin/admin_server.h"
#include "api/dashboard.h"
#include "api/etcd_gateway.h"
#include "coord/kv.h"
#include "coord/kv_service.h"
#include "coord/watch.h"
#include "guard/partition_guard.h"
#include "node/node.h"
#include "quorate/version.h"
#include "storage/file.h"
#include "storage/storage.h"
#include "transport/cq.h"
#include "transport/tls.h"
#include "util/clock.h"
#include "util/log_time.h"
#include "util/mutex.h"
#include "util/serial_executor.h"
#include "wire/client.grpc.pb.h"
#include "wire/peer.pb.h"

namespace quorate {
namespace {

constexpr size_t kMaxWatchHistory = 10'000'000;
constexpr size_t kMaxWatchersPerStream = 1'000'000;

bool IsName(absl::string_view s) {
  if (s.empty() || s.size() > 32) return false;
  for (char c : s) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-')) {
      return false;
    }
  }
  return true;
}

absl::Status CheckAddress(absl::string_view what, absl::string_view address) {
  const size_t colon = address.rfind(':');
  int port = -1;
  if (colon == absl::string_view::npos || colon == 0 ||
      !absl::SimpleAtoi(address.substr(colon + 1), &port) || port < 0 ||
      port > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, " '", address,
                     "' is not HOST:PORT (for example 127.0.0.1:7000)"));
  }
  return absl::OkStatus();
}

// Appends one JSON object per line, flushed each time, from a thread of its
// own: events come from the node loop, which must not wait on a file.
// Each line's time is taken when the event happens, not when it is written,
// from the kernel's monotonic clock (util/clock.h), so that the logs of
// members on one machine compare even when one's clock is skewed.
class EventLog {
 public:
  static absl::StatusOr<std::unique_ptr<EventLog>> Open(
      const std::string& path) {
    FILE* f = fopen(path.c_str(), "a");
    if (f == nullptr) {
      return absl::InvalidArgumentError(
          absl::StrCat("cannot open the event log '", path, "' for appending"));
    }
    return std::unique_ptr<EventLog>(new EventLog(f));
  }
  // Writes what is queued, then closes the file.
  ~EventLog() {
    writer_.reset();
    fclose(file_);
  }

  void Write(const std::string& json_fields) {
    std::string line = absl::StrCat("{\"t_mono_ns\": ", KernelMonotonicNowNs(),
                                    ", ", json_fields, "}\n");
    writer_->Post([f = file_, line = std::move(line)] {
      fputs(line.c_str(), f);
      fflush(f);
    });
  }

 private:
  explicit EventLog(FILE* f)
      : file_(f), writer_(std::make_unique<SerialExecutor>()) {}

  FILE* const file_;
  std::unique_ptr<SerialExecutor> writer_;
};

guard::GuardOptions GuardOptionsOf(const MemberOptions& o) {
  guard::GuardOptions g;
  g.election_timeout_ns = absl::ToInt64Nanoseconds(o.election_timeout);
  g.max_clock_drift = o.max_clock_drift;
  g.margin_ns = absl::ToInt64Nanoseconds(o.window_margin);
  g.dwell_ns = absl::ToInt64Nanoseconds(o.resume_dwell);
  return g;
}

}  // namespace

// Builds Permits (their constructor is private to the public header).
class MemberAccess {
 public:
  static Permit MakePermit(std::shared_ptr<const guard::PermitCell> cell) {
    Permit p;
    p.cell_ = std::move(cell);
    return p;
  }
};

bool Permit::Valid() const { return Valid(nullptr); }

bool Permit::Valid(FencingToken* token) const {
  if (cell_ == nullptr) return false;
  guard::Token t;
  if (!static_cast<const guard::PermitCell*>(cell_.get())->Valid(&t)) {
    return false;
  }
  if (token != nullptr) *token = FencingToken{t.term, t.index};
  return true;
}

namespace {

// Whether `dir` holds no snapshot yet (missing, empty, or only what a
// member that never started wrote).
absl::StatusOr<bool> DataDirIsNew(const std::string& dir) {
  std::error_code ec;
  if (!std::filesystem::exists(dir, ec)) return true;
  for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
    const std::string name = entry.path().filename().string();
    if (absl::StartsWith(name, "snap-") || absl::EndsWith(name, ".wal")) {
      return false;
    }
  }
  if (ec) {
    return absl::FailedPreconditionError(absl::StrCat(
        "cannot read the data directory ", dir, ": ", ec.message()));
  }
  return true;
}

// The members of the cluster `o.join` names, for a member added at
// runtime: from the first endpoint that answers MemberList, after checking
// that it is the right cluster and that this member was added as it is.
absl::StatusOr<std::vector<node::MemberSpec>> JoinPeers(
    const MemberOptions& o) {
  absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> creds =
      transport::ChannelCredentials(
          {o.tls.ca_file, o.tls.cert_file, o.tls.key_file});
  if (!creds.ok()) return creds.status();
  std::string errors;
  for (const std::string& endpoint : o.join) {
    auto stub = client::Kv::NewStub(grpc::CreateChannel(endpoint, *creds));
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() +
                     std::chrono::seconds(3));
    client::MemberListResponse list;
    const grpc::Status st =
        stub->MemberList(&ctx, client::MemberListRequest(), &list);
    if (!st.ok()) {
      absl::StrAppend(&errors, errors.empty() ? "" : "; ", endpoint, ": ",
                      st.error_message());
      continue;
    }
    if (list.cluster_id() != o.cluster_id) {
      return absl::FailedPreconditionError(absl::StrCat(
          "--join: the member at ", endpoint, " belongs to cluster '",
          list.cluster_id(), "', not '", o.cluster_id,
          "'; give the cluster id it was created with"));
    }
    std::vector<node::MemberSpec> peers;
    const client::MemberListResponse::Member* self = nullptr;
    for (const client::MemberListResponse::Member& m : list.members()) {
      if (m.id() == o.id) self = &m;
      peers.push_back({m.id(), m.zone(), m.address(), m.voter()});
    }
    if (self == nullptr) {
      return absl::FailedPreconditionError(absl::StrCat(
          "--join: member '", o.id, "' is not in cluster '", o.cluster_id,
          "' (as member '", list.answered_by(),
          "' knows it). Add it first: quoratectl --endpoints=", endpoint,
          " member add ", o.id, " ", o.zone, " ", o.listen_address,
          " --learner"));
    }
    if (self->address() != o.listen_address) {
      return absl::FailedPreconditionError(absl::StrCat(
          "--join: member '", o.id, "' was added with the address ",
          self->address(), ", but listens on ", o.listen_address,
          "; the others would not reach it. Start it with --listen=",
          self->address(), ", or remove it and add it again"));
    }
    return peers;
  }
  return absl::UnavailableError(
      absl::StrCat("--join: no member of the cluster answered (", errors, ")"));
}

// The state machine's state from o.restore_file, once its checksums hold
// and its cluster id may be reused.
absl::StatusOr<std::shared_ptr<const std::string>> RestoredState(
    const MemberOptions& o) {
  absl::StatusOr<std::string> contents =
      storage::PosixFileSystem()->ReadFile(o.restore_file);
  if (!contents.ok()) {
    return absl::FailedPreconditionError(
        absl::StrCat("--restore: cannot read ", o.restore_file, ": ",
                     contents.status().message()));
  }
  absl::StatusOr<storage::SnapshotFile> file =
      storage::ReadSnapshotFile(*contents);
  if (!file.ok()) {
    return absl::DataLossError(absl::StrCat(
        "--restore: ", o.restore_file, " is damaged (", file.status().message(),
        "); nothing was written. Use another backup (quoratectl snapshot "
        "status FILE checks one)"));
  }
  if (file->header.cluster_id() == o.cluster_id &&
      !o.restore_keeps_cluster_id) {
    return absl::FailedPreconditionError(absl::StrCat(
        "--restore: the backup was saved in cluster '", o.cluster_id,
        "', and the restored cluster would have the same id: members of "
        "the old one could still reach it. Give a new --cluster_id, or "
        "--restore_keeps_cluster_id if the old cluster is gone for good"));
  }
  peer::NodeSnapshot snap;
  if (!snap.ParseFromArray(
          contents->data() + file->data_offset,
          static_cast<int>(contents->size() - file->data_offset))) {
    return absl::DataLossError(
        absl::StrCat("--restore: ", o.restore_file,
                     " was not written by quoratectl snapshot save"));
  }
  return std::make_shared<const std::string>(snap.state());
}

class MemberImpl final : public Member {
 public:
  ~MemberImpl() override { Stop(); }

  absl::Status Init(MemberOptions options) {
    options_ = std::move(options);
    if (!options_.log) {
      options_.log = [id = options_.id](absl::string_view line) {
        fprintf(stderr, "%s quorate %s: %.*s\n", LogTime().c_str(), id.c_str(),
                static_cast<int>(line.size()), line.data());
      };
    }
    if (!options_.event_log_path.empty()) {
      auto log = EventLog::Open(options_.event_log_path);
      if (!log.ok()) return log.status();
      events_ = *std::move(log);
    }
    node::NodeOptions o;
    o.name = options_.id;
    o.zone = options_.zone;
    o.cluster_id = options_.cluster_id;
    o.listen = options_.listen_address;
    for (const PeerSpec& p : options_.peers) {
      o.initial_members.push_back({p.id, p.zone, p.address});
    }
    for (const PeerSpec& p : options_.learners) {
      o.initial_members.push_back({p.id, p.zone, p.address, /*voter=*/false});
    }
    o.data_dir = options_.data_dir;
    o.version = Version();
    o.force_new_cluster = options_.force_new_cluster;
    if (!options_.join.empty() || !options_.restore_file.empty()) {
      absl::StatusOr<bool> fresh = DataDirIsNew(options_.data_dir);
      if (!fresh.ok()) return fresh.status();
      if (!*fresh && !options_.join.empty()) {
        // A restart: the directory says who the members are. The join
        // endpoints still help a member that restarted before it caught
        // up to its own addition (node.h, join_peers).
        absl::StatusOr<std::vector<node::MemberSpec>> peers =
            JoinPeers(options_);
        if (peers.ok()) o.join_peers = *std::move(peers);
      } else if (!*fresh) {
        options_.log(absl::StrCat("the data directory ", options_.data_dir,
                                  " is in use: --restore is ignored, and the "
                                  "member restarts from it"));
      } else if (!options_.join.empty()) {
        absl::StatusOr<std::vector<node::MemberSpec>> peers =
            JoinPeers(options_);
        if (!peers.ok()) return peers.status();
        o.join_peers = *std::move(peers);
      } else {
        absl::StatusOr<std::shared_ptr<const std::string>> state =
            RestoredState(options_);
        if (!state.ok()) return state.status();
        o.restore_state = *std::move(state);
      }
    }
    o.state_machine = &kv_;
    o.services = {&kv_service_};
    if (options_.etcd_api) {
      api::EtcdGatewayOptions eo;
      eo.cluster_id = options_.cluster_id;
      eo.member_id = options_.id;
      eo.min_lease_ttl_ms =
          2 * absl::ToInt64Milliseconds(options_.election_timeout);
      eo.tls = !options_.tls.cert_file.empty();
      eo.kv_service = &kv_service_;
      eo.local = [this] {
        api::EtcdLocalView v;
        node::Node* n = node_raw_.load();
        if (n == nullptr) return v;
        const node::NodeStatus s = n->GetStatus();
        v.term = s.term;
        v.leader_id = s.leader;
        v.commit_index = s.commit_index;
        v.applied_index = s.applied_index;
        v.learner = s.role == raft::Role::kLearner;
        v.version = Version();
        v.revision = kv_.revision();
        return v;
      };
      etcd_ = std::make_unique<api::EtcdGateway>(std::move(eo));
      for (grpc::Service* service : etcd_->services()) {
        etcd_services_.push_back(
            std::make_unique<transport::SyncService>(service));
        o.services.push_back(etcd_services_.back().get());
      }
    }
    {
      coord::LeaseKeeperOptions ko;
      ko.lessor.checkpoint_interval_ns =
          absl::ToInt64Nanoseconds(options_.lease_checkpoint_interval);
      ko.round_timeout_ns = absl::ToInt64Nanoseconds(options_.election_timeout);
      ko.log = [log = options_.log](const std::string& line) {
        log(absl::StrCat("leases: ", line));
      };
      ko.on_lease_ended = [this](uint64_t lease) {
        if (events_ == nullptr) return;
        events_->Write(absl::StrCat("\"id\": \"", options_.id,
                                    "\", \"event\": \"lease_ended\", "
                                    "\"lease\": \"",
                                    absl::Hex(lease), "\""));
      };
      lease_keeper_ = std::make_unique<coord::LeaseKeeper>(&kv_, std::move(ko));
      coord::LeaseLimits limits;
      limits.min_ttl_ms =
          2 * absl::ToInt64Milliseconds(options_.election_timeout);
      limits.max_ttl_ms = absl::ToInt64Milliseconds(options_.max_lease_ttl);
      limits.max_leases_per_client = options_.max_leases_per_client;
      limits.max_keys_per_lease = options_.max_keys_per_lease;
      kv_service_.SetLeases(lease_keeper_.get(), limits);
    }
    {
      kv_.SetHistoryWindow(options_.watch_history);
      coord::WatchLimits limits;
      limits.buffer_bytes = options_.watch_buffer_bytes;
      limits.max_watchers_per_stream = options_.max_watchers_per_stream;
      limits.progress_interval_ns =
          absl::ToInt64Nanoseconds(options_.watch_progress_interval);
      watch_hub_ = std::make_unique<coord::WatchHub>(&kv_, limits);
      kv_.SetChangeListener(
          [hub = watch_hub_.get()](uint64_t) { hub->Notify(); });
      watch_hub_->Start();
      kv_service_.SetWatches(watch_hub_.get());
    }
    o.heartbeat_interval = options_.heartbeat_interval;
    o.segment_bytes = options_.wal_segment_bytes;
    o.snapshot_every = options_.snapshot_every_entries;
    o.election_timeout = options_.election_timeout;
    o.max_clock_drift = options_.max_clock_drift;
    o.tls = {options_.tls.ca_file, options_.tls.cert_file,
             options_.tls.key_file};
    o.faults_file = options_.faults_file;
    o.log = [log = options_.log](const std::string& line) { log(line); };
    // A member that starts following or leading, or whose stream to a
    // peer opens again, can renew its window at once: after a heal, this
    // saves up to a heartbeat.
    o.on_peer_connected = [this](uint64_t) {
      if (guard::PartitionGuard* g = guard_raw_.load()) g->Nudge();
    };
    o.on_role = [this](raft::Role role, uint64_t term) {
      if (guard::PartitionGuard* g = guard_raw_.load()) g->Nudge(term);
      lease_keeper_->OnRole(role, term);
      if (options_.on_role_change) {
        options_.on_role_change(static_cast<Role>(role), term);
      }
      if (events_ == nullptr) return;
      events_->Write(absl::StrCat(
          "\"id\": \"", options_.id, "\", \"event\": \"role\", \"role\": \"",
          raft::RoleName(role), "\", \"term\": ", term));
    };
    o.on_fatal = [this](const absl::Status& s) {
      if (options_.on_fatal) options_.on_fatal(s);
    };
    // Before the node starts serving the client API.
    kv_service_.SetLimits(
        coord::TxnLimits{options_.max_txn_ops, options_.max_txn_bytes});
    kv_service_.SetModeSource([this]() -> std::string {
      guard::PartitionGuard* g = guard_raw_.load();
      return g != nullptr && g->Status().active ? "active" : "paused";
    });
    absl::StatusOr<std::unique_ptr<node::Node>> n =
        node::Node::Start(std::move(o));
    if (!n.ok()) return n.status();
    node_ = *std::move(n);
    node_raw_.store(node_.get());
    kv_service_.SetNode(node_.get());
    lease_keeper_->Start(node_.get());

    guard::PartitionGuard::Options go;
    go.guard = GuardOptionsOf(options_);
    go.renew_interval_ns =
        absl::ToInt64Nanoseconds(options_.heartbeat_interval);
    go.node = node_.get();
    go.on_transition = [this](const guard::Transition& t) { ModeChanged(t); };
    auto g = guard::PartitionGuard::Start(std::move(go));
    if (!g.ok()) {
      node_->Stop(false);
      return g.status();
    }
    guard_ = *std::move(g);
    guard_raw_.store(guard_.get());
    if (etcd_ != nullptr) {
      // The gateway's calls: this member first (reads are served where
      // they arrive when it can), then the others.
      ClientOptions co;
      co.endpoints.push_back(node_->GetStatus().listen_address);
      for (const PeerSpec& p : options_.peers) {
        if (p.id != options_.id) co.endpoints.push_back(p.address);
      }
      co.timeout = absl::Seconds(5);
      co.max_in_flight = 1 << 20;
      co.tls = options_.tls;
      absl::StatusOr<std::unique_ptr<Client>> c = Client::Create(co);
      if (!c.ok()) {
        node_->Stop(false);
        return c.status();
      }
      etcd_->Start(*std::move(c), node_->GetStatus().listen_address);
    }
    if (!options_.admin_address.empty()) {
      // The /ui page reads the cluster as any client would.
      ClientOptions co;
      co.endpoints.push_back(node_->GetStatus().listen_address);
      for (const PeerSpec& p : options_.peers) {
        if (p.id != options_.id) co.endpoints.push_back(p.address);
      }
      co.timeout = absl::Seconds(1);
      co.tls = options_.tls;
      dashboard_ = std::make_unique<api::Dashboard>(std::move(co), options_.id,
                                                    options_.cluster_id);
      auto admin = admin::AdminServer::Start(
          options_.admin_address,
          [this] {
            admin::MemberView v;
            v.node = node_->GetStatus();
            v.guard = guard_->Status();
            v.now_ns = BootTimeNowNs();  // the guard's clock
            v.watches = watch_hub_->stats();
            v.revision = kv_.revision();
            v.compacted_revision = kv_.compacted();
            return v;
          },
          [this] { return dashboard_->State(); });
      if (!admin.ok()) {
        guard_->Stop();
        node_->Stop(false);
        return admin.status();
      }
      admin_ = *std::move(admin);
      options_.log(absl::StrCat("admin HTTP on ", admin_->address()));
    }
    return absl::OkStatus();
  }

  void Stop() override {
    if (stopped_.exchange(true)) return;
    // First, while the member still answers its reads. (The admin server,
    // stopped last, may still ask it for its last reading.)
    if (dashboard_ != nullptr) dashboard_->Stop();
    guard_raw_.store(nullptr);
    // The permit goes invalid first: a stopping member does not act.
    if (guard_ != nullptr) guard_->Stop();
    if (lease_keeper_ != nullptr) lease_keeper_->Stop();
    if (node_ != nullptr) node_->Stop(/*graceful=*/true);
    if (admin_ != nullptr) admin_->Stop();
  }

  Permit GetPermit() const override {
    return MemberAccess::MakePermit(guard_->permit());
  }

  MemberStatus GetStatus() const override {
    const node::NodeStatus n = node_->GetStatus();
    MemberStatus s;
    s.id = n.name;
    s.zone = n.zone;
    s.cluster_id = n.cluster_id;
    s.listen_address = n.listen_address;
    s.admin_address = admin_ != nullptr ? admin_->address() : "";
    s.role = static_cast<Role>(n.role);
    s.term = n.term;
    s.leader_id = n.leader;
    s.commit_index = n.commit_index;
    s.applied_index = n.applied_index;
    s.last_log_index = n.last_log_index;
    s.error = n.error;
    for (const node::PeerStatus& p : n.peers) {
      s.peers.push_back({p.name, p.zone, p.address, p.voter, p.reachable,
                         p.last_contact_ms, p.version});
    }
    const guard::GuardStatus g = guard_->Status();
    s.active = g.active;
    s.pause_reason = g.pause_reason;
    s.active_for_ms =
        g.active ? std::max<int64_t>(
                       0, (g.active_until_ns - BootTimeNowNs()) / 1'000'000)
                 : 0;
    s.token = {g.token.term, g.token.index};
    s.pauses = g.pauses;
    return s;
  }

 private:
  MemberOptions options_;
  std::unique_ptr<EventLog> events_;
  // The replicated store and its client API; they outlive the node, which
  // serves the API and applies to the store.
  coord::KvStore kv_;
  // The leader's side of leases; fed by the store and the node's roles.
  std::unique_ptr<coord::LeaseKeeper> lease_keeper_;
  // Outlives the service and the node: their streams hold its streams.
  std::unique_ptr<coord::WatchHub> watch_hub_;
  coord::KvService kv_service_{&kv_};
  // etcd's API (api/etcd_gateway.h), served by the node's listener beside
  // kv_service_: it outlives the node.
  std::unique_ptr<api::EtcdGateway> etcd_;
  std::vector<std::unique_ptr<transport::SyncService>> etcd_services_;
  std::unique_ptr<node::Node> node_;
  std::atomic<node::Node*> node_raw_{nullptr};  // for the gateway's view
  std::unique_ptr<api::Dashboard> dashboard_;
  std::unique_ptr<admin::AdminServer> admin_;
  std::atomic<bool> stopped_{false};
  // The application's on_pause/on_resume, in order, outside every lock.
  // Destroyed after the guard (declared before it): queued calls still run.
  SerialExecutor callbacks_;
  std::unique_ptr<guard::PartitionGuard> guard_;
  // For the node loop's role callback, which may run before guard_ is set.
  std::atomic<guard::PartitionGuard*> guard_raw_{nullptr};

  // On the guard's thread.
  void ModeChanged(const guard::Transition& t) {
    if (events_ != nullptr) {
      // The guard's times (CLOCK_BOOTTIME, skewed by libfaketime if it is
      // loaded) on the kernel's CLOCK_MONOTONIC, like the line's own time.
      const int64_t skew = KernelMonotonicNowNs() - BootTimeNowNs();
      if (t.active) {
        events_->Write(absl::StrCat(
            "\"id\": \"", options_.id,
            "\", \"event\": \"mode\", \"mode\": \"active\", \"term\": ", t.term,
            ", \"leader_id\": \"", node_->GetStatus().leader,
            "\", \"fencing_token\": {\"term\": ", t.token.term,
            ", \"index\": ", t.token.index,
            "}, \"healthy_since_mono_ns\": ", t.healthy_since_ns + skew));
      } else {
        const int64_t until = t.active_until_ns + skew;
        events_->Write(absl::StrCat(
            "\"id\": \"", options_.id,
            "\", \"event\": \"mode\", \"mode\": \"paused\", \"term\": ", t.term,
            ", \"active_until_mono_ns\": ", until, ", \"reason\": \"", t.reason,
            "\""));
      }
    }
    options_.log(t.active ? absl::StrCat("active (term ", t.term, ")")
                          : absl::StrCat("paused: ", t.reason));
    if (t.active && options_.on_resume) {
      callbacks_.Post([f = options_.on_resume, token = t.token] {
        f(FencingToken{token.term, token.index});
      });
    }
    if (!t.active && options_.on_pause) {
      callbacks_.Post(
          [f = options_.on_pause, reason = t.reason] { f(reason); });
    }
  }
};

static_assert(static_cast<int>(Role::kLeader) ==
              static_cast<int>(raft::Role::kLeader));
static_assert(static_cast<int>(Role::kLearner) ==
              static_cast<int>(raft::Role::kLearner));

}  // namespace

absl::string_view RoleName(Role role) {
  return raft::RoleName(static_cast<raft::Role>(role));
}

absl::Status ValidateMemberOptions(const MemberOptions& o) {
  auto bad = [](auto&&... parts) {
    return absl::InvalidArgumentError(absl::StrCat(parts...));
  };
  if (!IsName(o.id)) {
    return bad("member id '", o.id,
               "' must be 1 to 32 characters of a-z, 0-9 and '-'");
  }
  if (!IsName(o.zone)) {
    return bad("zone '", o.zone,
               "' must be 1 to 32 characters of a-z, 0-9 and '-'");
  }
  if (o.cluster_id.empty() || o.cluster_id.size() > 64) {
    return bad("the cluster id must be 1 to 64 characters");
  }
  if (absl::Status s = CheckAddress("listen address", o.listen_address);
      !s.ok()) {
    return s;
  }
  if (!o.admin_address.empty()) {
    if (absl::Status s = CheckAddress("admin address", o.admin_address);
        !s.ok()) {
      return s;
    }
  }
  if (o.data_dir.empty()) return bad("no data directory given");
  if (!o.join.empty()) {
    if (!o.peers.empty() || !o.learners.empty()) {
      return bad(
          "a joining member gets the members from the cluster: give --join "
          "or --peers, not both");
    }
    if (!o.restore_file.empty() || o.force_new_cluster) {
      return bad("a joining member cannot also restore or force a cluster");
    }
    for (const std::string& a : o.join) {
      if (absl::Status s = CheckAddress("a --join address", a); !s.ok()) {
        return s;
      }
    }
  }
  if (!o.restore_file.empty() && o.force_new_cluster) {
    return bad(
        "--restore seeds a new cluster, --force_new_cluster recovers "
        "an old one: give one of them");
  }
  std::set<std::string> ids;
  if (o.peers.empty() && !o.learners.empty()) {
    return bad("learners were given without the voters (peers)");
  }
  if (!o.restore_file.empty() && o.peers.empty()) {
    return bad("--restore needs the new cluster's members (--peers)");
  }
  bool self = o.peers.empty();
  std::vector<PeerSpec> members = o.peers;
  members.insert(members.end(), o.learners.begin(), o.learners.end());
  for (const PeerSpec& p : members) {
    if (!IsName(p.id)) {
      return bad("peer id '", p.id,
                 "' must be 1 to 32 characters of a-z, 0-9 and '-'");
    }
    if (!ids.insert(p.id).second)
      return bad("peer '", p.id, "' is listed twice");
    if (!IsName(p.zone)) return bad("peer '", p.id, "' has no valid zone");
    if (absl::Status s = CheckAddress(
            absl::StrCat("the address of peer '", p.id, "'"), p.address);
        !s.ok()) {
      return s;
    }
    self |= p.id == o.id;
  }
  if (!self) {
    return bad("the peers or the learners must include this member ('", o.id,
               "') itself");
  }
  if (o.heartbeat_interval <= absl::ZeroDuration()) {
    return bad("the heartbeat interval must be positive");
  }
  if (o.election_timeout < 3 * o.heartbeat_interval) {
    return bad("the election timeout (",
               absl::FormatDuration(o.election_timeout),
               ") must be at least three heartbeat intervals (",
               absl::FormatDuration(o.heartbeat_interval), ")");
  }
  if (!(o.max_clock_drift >= 0 && o.max_clock_drift < 0.5)) {
    return bad(
        "the maximum clock drift must be at least 0 and below 0.5 "
        "(0.01 means 1 %)");
  }
  if (o.resume_dwell < absl::ZeroDuration() ||
      o.window_margin < absl::ZeroDuration()) {
    return bad("the resume dwell and the window margin must not be negative");
  }
  if (absl::Status s = guard::ValidateGuardOptions(GuardOptionsOf(o));
      !s.ok()) {
    return s;
  }
  if (o.snapshot_every_entries < 1) {
    return bad("snapshots must be taken at least every 1 entries");
  }
  if (o.max_txn_ops < 1 || o.max_txn_ops > coord::kMaxTxnOps) {
    return bad(absl::StrCat("the transaction operation limit must be 1 to ",
                            coord::kMaxTxnOps, ", not ", o.max_txn_ops));
  }
  if (o.max_txn_bytes < 1024 || o.max_txn_bytes > coord::kMaxTxnBytes) {
    return bad(absl::StrCat("the transaction size limit must be 1024 to ",
                            coord::kMaxTxnBytes, " bytes, not ",
                            o.max_txn_bytes));
  }
  if (o.max_lease_ttl < 2 * o.election_timeout ||
      o.max_lease_ttl > absl::Milliseconds(coord::kMaxLeaseTtlMs)) {
    return bad(absl::StrCat(
        "the lease TTL limit must be at least twice the election timeout (",
        absl::FormatDuration(2 * o.election_timeout),
        ") and at most 30 days, not ", absl::FormatDuration(o.max_lease_ttl)));
  }
  if (o.max_leases_per_client < 1 ||
      o.max_leases_per_client > coord::kMaxLeasesPerClient) {
    return bad(absl::StrCat("the leases-per-client limit must be 1 to ",
                            coord::kMaxLeasesPerClient, ", not ",
                            o.max_leases_per_client));
  }
  if (o.max_keys_per_lease < 1 ||
      o.max_keys_per_lease > coord::kMaxKeysPerLease) {
    return bad(absl::StrCat("the keys-per-lease limit must be 1 to ",
                            coord::kMaxKeysPerLease, ", not ",
                            o.max_keys_per_lease));
  }
  if (o.lease_checkpoint_interval < absl::Milliseconds(10)) {
    return bad("the lease checkpoint interval must be at least 10ms");
  }
  if (o.watch_history < coord::kMinWatchHistory ||
      o.watch_history > kMaxWatchHistory) {
    return bad(absl::StrCat("the watch history must be ",
                            coord::kMinWatchHistory, " to ", kMaxWatchHistory,
                            " revisions, not ", o.watch_history));
  }
  if (o.watch_buffer_bytes < (64 << 10) ||
      o.watch_buffer_bytes > (size_t{1} << 30)) {
    return bad(absl::StrCat("the watch buffer must be 64 KiB to 1 GiB, not ",
                            o.watch_buffer_bytes, " bytes"));
  }
  if (o.max_watchers_per_stream < 1 ||
      o.max_watchers_per_stream > kMaxWatchersPerStream) {
    return bad(absl::StrCat("the watchers-per-stream limit must be 1 to ",
                            kMaxWatchersPerStream, ", not ",
                            o.max_watchers_per_stream));
  }
  if (o.watch_progress_interval < absl::Milliseconds(10)) {
    return bad("the watch progress interval must be at least 10ms");
  }
  if (o.wal_segment_bytes < (64 << 10)) {
    return bad("log segments must be at least 64 KiB");
  }
  return transport::CheckTlsFiles(
      {o.tls.ca_file, o.tls.cert_file, o.tls.key_file});
}

absl::StatusOr<std::unique_ptr<Member>> Member::Start(MemberOptions options) {
  if (absl::Status s = ValidateMemberOptions(options); !s.ok()) return s;
  auto m = std::make_unique<MemberImpl>();
  if (absl::Status s = m->Init(std::move(options)); !s.ok()) return s;
  return std::unique_ptr<Member>(std::move(m));
}

}  // namespace quorate
