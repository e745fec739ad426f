// The public Member API (include/quorate/member.h): options checked up
// front, a node::Node, its admin server and its event log.
#include "quorate/member.h"

#include <stdio.h>

#include <atomic>
#include <deque>
#include <set>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "admin/admin_server.h"
#include "coord/kv.h"
#include "coord/kv_service.h"
#include "node/node.h"
#include "util/clock.h"
#include "util/mutex.h"

namespace quorate {
namespace {

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
// Each line's time is taken when the event happens, not when it is written.
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
    {
      MutexLock lock(&mu_);
      stopping_ = true;
    }
    queued_.SignalAll();
    thread_.join();
    fclose(file_);
  }

  void Write(const std::string& json_fields) {
    std::string line = absl::StrCat("{\"t_mono_ns\": ", KernelMonotonicNowNs(),
                                    ", ", json_fields, "}\n");
    {
      MutexLock lock(&mu_);
      lines_.push_back(std::move(line));
    }
    queued_.Signal();
  }

 private:
  explicit EventLog(FILE* f) : file_(f), thread_([this] { Run(); }) {}

  void Run() {
    while (true) {
      std::deque<std::string> lines;
      {
        MutexLock lock(&mu_);
        while (!stopping_ && lines_.empty()) queued_.Wait(&mu_);
        if (lines_.empty()) return;  // stopping, and all written
        lines.swap(lines_);
      }
      for (const std::string& line : lines) fputs(line.c_str(), file_);
      fflush(file_);
    }
  }

  FILE* const file_;
  Mutex mu_;
  CondVar queued_;
  // Role changes: a handful per election, so no bound is needed.
  std::deque<std::string> lines_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

class MemberImpl final : public Member {
 public:
  ~MemberImpl() override { Stop(); }

  absl::Status Init(MemberOptions options) {
    options_ = std::move(options);
    if (!options_.log) {
      options_.log = [id = options_.id](absl::string_view line) {
        fprintf(stderr, "quorate %s: %.*s\n", id.c_str(),
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
    o.data_dir = options_.data_dir;
    o.state_machine = &kv_;
    o.services = {&kv_service_};
    o.heartbeat_interval = options_.heartbeat_interval;
    o.segment_bytes = options_.wal_segment_bytes;
    o.snapshot_every = options_.snapshot_every_entries;
    o.election_timeout = options_.election_timeout;
    o.tls = {options_.tls.ca_file, options_.tls.cert_file,
             options_.tls.key_file};
    o.log = [log = options_.log](const std::string& line) { log(line); };
    o.on_role = [this](raft::Role role, uint64_t term) {
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
    absl::StatusOr<std::unique_ptr<node::Node>> n =
        node::Node::Start(std::move(o));
    if (!n.ok()) return n.status();
    node_ = *std::move(n);
    kv_service_.SetNode(node_.get());
    if (!options_.admin_address.empty()) {
      auto admin = admin::AdminServer::Start(
          options_.admin_address, [this] { return node_->GetStatus(); });
      if (!admin.ok()) {
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
    if (node_ != nullptr) node_->Stop(/*graceful=*/true);
    if (admin_ != nullptr) admin_->Stop();
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
      s.peers.push_back(
          {p.name, p.zone, p.address, p.voter, p.reachable, p.last_contact_ms});
    }
    return s;
  }

 private:
  MemberOptions options_;
  std::unique_ptr<EventLog> events_;
  // The replicated store and its client API; they outlive the node, which
  // serves the API and applies to the store.
  coord::KvStore kv_;
  coord::KvService kv_service_{&kv_};
  std::unique_ptr<node::Node> node_;
  std::unique_ptr<admin::AdminServer> admin_;
  std::atomic<bool> stopped_{false};
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
  std::set<std::string> ids;
  bool self = o.peers.empty();
  for (const PeerSpec& p : o.peers) {
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
    return bad("the peers must include this member ('", o.id, "') itself");
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
  if (o.snapshot_every_entries < 1) {
    return bad("snapshots must be taken at least every 1 entries");
  }
  if (o.wal_segment_bytes < (64 << 10)) {
    return bad("log segments must be at least 64 KiB");
  }
  const TlsOptions& t = o.tls;
  const int tls_files =
      !t.ca_file.empty() + !t.cert_file.empty() + !t.key_file.empty();
  if (tls_files != 0 && tls_files != 3) {
    return bad(
        "mutual TLS needs all three of the CA, certificate and key "
        "files");
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<Member>> Member::Start(MemberOptions options) {
  if (absl::Status s = ValidateMemberOptions(options); !s.ok()) return s;
  auto m = std::make_unique<MemberImpl>();
  if (absl::Status s = m->Init(std::move(options)); !s.ok()) return s;
  return std::unique_ptr<Member>(std::move(m));
}

}  // namespace quorate
