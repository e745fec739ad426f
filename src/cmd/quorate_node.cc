// quorate-node: one member of a Quorate cluster as a process.
//
// Flags, signals and exit codes are an outside contract
// (docs/contracts.md):
//   0  stopped cleanly on SIGTERM or SIGINT (a leader hands over first)
//   1  the member stopped working by itself (its disk failed)
//   2  a bad flag, or an unusable data directory or address
//   3  the data directory is corrupt (the message names file and offset);
//      nothing was truncated
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "cmd/flags.h"
#include "quorate/member.h"
#include "quorate/version.h"
#include "util/log_time.h"

namespace {

constexpr char kUsage[] =
    R"(usage: quorate-node --id=ID --listen=HOST:PORT --data_dir=PATH
                    --cluster_id=NAME --peers=ID@ZONE=HOST:PORT,... [flags]

  --id=n1                      member id, [a-z0-9-]{1,32}
  --zone=az-a                  availability-zone label
  --listen=HOST:PORT           gRPC address for peers and clients
  --admin=HOST:PORT            admin HTTP (/healthz, /readyz, /status); host defaults
                               to 127.0.0.1, port to 0 (any free port)
  --peers=n1@az-a=HOST:PORT,.. the initial voters; used only when
                               --data_dir is new
  --learners=n4@az-c=HOST:PORT,..
                               the initial learners (non-voting members);
                               used only when --data_dir is new. Give every
                               member the same --peers and --learners
  --data_dir=PATH              the log, hard state and snapshots
  --cluster_id=NAME            members of other clusters are refused
  --heartbeat_interval=50ms
  --election_timeout=500ms     the minimum; actual in [T, 2T)
  --max_clock_drift=0.01       bound on clock-rate drift (rho)
  --resume_dwell=500ms         after a pause, healthy this long before
                               resuming (the partition guard)
  --window_margin=50ms         every active window ends this much early
  --event_log=PATH             append one JSON line per role or mode change
  --segment_bytes=67108864     size of each write-ahead log segment
  --snapshot_entries=10000     snapshot and compact every this many entries
  --max_txn_ops=128            compares and operations per transaction (1-1024)
  --max_txn_bytes=1572864      bytes per transaction, serialized (1 KiB-2 MiB)
  --max_lease_ttl=24h          longest lease TTL (at least 2 election timeouts)
  --max_leases_per_client=16384  leases one client may hold
  --max_keys_per_lease=10000   keys attached to one lease
  --lease_checkpoint_interval=1s  silent leases' rest is logged this often
  --watch_history=10000        revisions of events kept for watches and
                               reads at past revisions (at least 10000)
  --watch_buffer_bytes=4194304 a caught-up watcher that falls this far
                               behind is cut off (RESOURCE_EXHAUSTED)
  --max_watchers_per_stream=10000  watchers on one Watch stream
  --watch_progress_interval=1s progress notifications, to watchers that ask
  --no_etcd_api                do not serve etcd's v3 API on --listen
                               (docs/etcd-compatibility.md)
  --tls_ca=PEM --tls_cert=PEM --tls_key=PEM   mutual TLS between members
  --faults_file=PATH           chaos tests and make demo: delays,
                               duplicates and drops of peer frames, read
                               from PATH (operations.md)
  --learner                    this member is a learner: it must be listed
                               in --learners (and is refused otherwise)

Changing a running cluster (docs/operations.md):
  --join=HOST:PORT,...         instead of --peers: start as a member added
                               with `quoratectl member add`; the members
                               are read from these, the state comes from
                               the leader. Used only when --data_dir is new
  --restore=FILE               seed a new cluster (--peers as usual) from a
                               `quoratectl snapshot save` file; start every
                               initial member with the same file, and a new
                               --cluster_id (or --restore_keeps_cluster_id)
  --force_new_cluster          disaster recovery: start a one-member cluster
                               from this --data_dir, the other members
                               removed. Writes only the lost members held
                               are gone; uncommitted entries of this member
                               become committed. Then add members back
  --version, --help
)";

[[noreturn]] void UsageError(const std::string& message) {
  fprintf(stderr, "quorate-node: %s\n(--help lists the flags)\n",
          message.c_str());
  exit(2);
}

std::vector<quorate::PeerSpec> ParsePeers(const std::string& flag,
                                          const std::string& value) {
  std::vector<quorate::PeerSpec> out;
  if (value.empty()) return out;
  for (absl::string_view item : absl::StrSplit(value, ',')) {
    const size_t at = item.find('@');
    const size_t eq = item.find('=');
    if (at == absl::string_view::npos || eq == absl::string_view::npos ||
        eq < at) {
      UsageError(absl::StrCat("--", flag, " entry '", item,
                              "' is not ID@ZONE=HOST:PORT"));
    }
    out.push_back({std::string(item.substr(0, at)),
                   std::string(item.substr(at + 1, eq - at - 1)),
                   std::string(item.substr(eq + 1))});
  }
  return out;
}

std::atomic<int> fatal_exit{0};

}  // namespace

int main(int argc, char** argv) {
  // Debian's abseil is built with its debug checks on, so every Mutex lock
  // (ours and gRPC's) records the lock order in a global graph: about 5 %
  // of a busy member's CPU. The in-process tests keep the check.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--help" || a == "-help" || a == "-h") {
      fputs(kUsage, stdout);
      return 0;
    }
    if (a == "--version" || a == "-version") {
      printf("quorate-node %s\n", quorate::Version());
      return 0;
    }
  }
  absl::StatusOr<quorate::cmd::Flags> parsed =
      quorate::cmd::ParseFlags(argc, argv,
                               {"id",
                                "zone",
                                "listen",
                                "admin",
                                "peers",
                                "learners",
                                "data_dir",
                                "cluster_id",
                                "heartbeat_interval",
                                "election_timeout",
                                "max_clock_drift",
                                "event_log",
                                "tls_ca",
                                "tls_cert",
                                "tls_key",
                                "segment_bytes",
                                "snapshot_entries",
                                "max_txn_ops",
                                "max_txn_bytes",
                                "max_lease_ttl",
                                "max_leases_per_client",
                                "max_keys_per_lease",
                                "lease_checkpoint_interval",
                                "watch_history",
                                "watch_buffer_bytes",
                                "max_watchers_per_stream",
                                "watch_progress_interval",
                                "resume_dwell",
                                "window_margin",
                                "faults_file",
                                "join",
                                "restore"},
                               {"learner", "force_new_cluster",
                                "restore_keeps_cluster_id", "no_etcd_api"});
  if (!parsed.ok()) UsageError(std::string(parsed.status().message()));
  const quorate::cmd::Flags& flags = *parsed;
  if (!flags.positional.empty()) {
    UsageError(absl::StrCat("unexpected argument '", flags.positional[0], "'"));
  }
  quorate::MemberOptions o;
  o.id = flags.Get("id");
  o.zone = flags.Get("zone", "default");
  o.cluster_id = flags.Get("cluster_id");
  o.listen_address = flags.Get("listen");
  o.admin_address = flags.Get("admin", "127.0.0.1:0");
  if (!o.admin_address.empty() && o.admin_address[0] == ':') {
    o.admin_address = "127.0.0.1" + o.admin_address;
  } else if (o.admin_address.find(':') == std::string::npos) {
    o.admin_address += ":0";
  }
  o.peers = ParsePeers("peers", flags.Get("peers"));
  o.learners = ParsePeers("learners", flags.Get("learners"));
  // --learner says which list this member expects to be on, so that a
  // typo cannot quietly make a voter of a learner or the other way round.
  const bool listed_learner =
      std::any_of(o.learners.begin(), o.learners.end(),
                  [&](const quorate::PeerSpec& p) { return p.id == o.id; });
  if (flags.Bool("learner") && !o.peers.empty() && !listed_learner) {
    UsageError(absl::StrCat("--learner: member '", o.id,
                            "' is not listed in --learners"));
  }
  if (!flags.Bool("learner") && listed_learner) {
    UsageError(absl::StrCat("member '", o.id,
                            "' is listed in --learners: start it with "
                            "--learner"));
  }
  if (flags.Has("join")) {
    o.join = absl::StrSplit(flags.Get("join"), ',', absl::SkipEmpty());
    if (o.join.empty()) UsageError("--join needs HOST:PORT,...");
  }
  o.restore_file = flags.Get("restore");
  o.restore_keeps_cluster_id = flags.Bool("restore_keeps_cluster_id");
  o.force_new_cluster = flags.Bool("force_new_cluster");
  o.etcd_api = !flags.Bool("no_etcd_api");
  if (o.force_new_cluster) {
    fprintf(stderr,
            "quorate-node %s: --force_new_cluster: this member becomes the "
            "only member of its cluster. Writes that only the other members "
            "held are lost, and entries this member never saw committed now "
            "count as committed. Do this only when a quorum is gone for "
            "good, and never while the other members may run "
            "(docs/operations.md, \"Disaster recovery\").\n",
            o.id.c_str());
  }
  o.data_dir = flags.Get("data_dir");
  absl::StatusOr<absl::Duration> d =
      flags.Duration("heartbeat_interval", absl::Milliseconds(50));
  if (!d.ok()) UsageError(std::string(d.status().message()));
  o.heartbeat_interval = *d;
  d = flags.Duration("election_timeout", absl::Milliseconds(500));
  if (!d.ok()) UsageError(std::string(d.status().message()));
  o.election_timeout = *d;
  const std::string drift = flags.Get("max_clock_drift", "0.01");
  if (!absl::SimpleAtod(drift, &o.max_clock_drift)) {
    UsageError(absl::StrCat("--max_clock_drift='", drift,
                            "' is not a number such as 0.01"));
  }
  o.event_log_path = flags.Get("event_log");
  // Zero is allowed for both (Duration() wants positive ones).
  for (const auto& [flag, field] :
       {std::pair{"resume_dwell", &o.resume_dwell},
        std::pair{"window_margin", &o.window_margin}}) {
    if (!flags.Has(flag)) continue;
    if (!absl::ParseDuration(flags.Get(flag), field) ||
        *field < absl::ZeroDuration()) {
      UsageError(absl::StrCat("--", flag, "='", flags.Get(flag),
                              "' is not a duration such as 500ms"));
    }
  }
  const std::string txn_ops = flags.Get("max_txn_ops", "128");
  if (!absl::SimpleAtoi(txn_ops, &o.max_txn_ops)) {
    UsageError(absl::StrCat("--max_txn_ops='", txn_ops, "' is not a number"));
  }
  const std::string txn_bytes = flags.Get("max_txn_bytes", "1572864");
  if (!absl::SimpleAtoi(txn_bytes, &o.max_txn_bytes)) {
    UsageError(absl::StrCat("--max_txn_bytes='", txn_bytes,
                            "' is not a number of bytes"));
  }
  for (const auto& [flag, field] :
       {std::pair{"max_lease_ttl", &o.max_lease_ttl},
        std::pair{"lease_checkpoint_interval", &o.lease_checkpoint_interval},
        std::pair{"watch_progress_interval", &o.watch_progress_interval}}) {
    if (!flags.Has(flag)) continue;
    if (!absl::ParseDuration(flags.Get(flag), field)) {
      UsageError(absl::StrCat("--", flag, "='", flags.Get(flag),
                              "' is not a duration such as 24h"));
    }
  }
  for (const auto& [flag, field] :
       {std::pair{"max_leases_per_client", &o.max_leases_per_client},
        std::pair{"max_keys_per_lease", &o.max_keys_per_lease}}) {
    if (flags.Has(flag) && !absl::SimpleAtoi(flags.Get(flag), field)) {
      UsageError(
          absl::StrCat("--", flag, "='", flags.Get(flag), "' is not a number"));
    }
  }
  for (const auto& [flag, field] :
       {std::pair{"watch_history", &o.watch_history},
        std::pair{"watch_buffer_bytes", &o.watch_buffer_bytes},
        std::pair{"max_watchers_per_stream", &o.max_watchers_per_stream}}) {
    if (flags.Has(flag) && !absl::SimpleAtoi(flags.Get(flag), field)) {
      UsageError(
          absl::StrCat("--", flag, "='", flags.Get(flag), "' is not a number"));
    }
  }
  const std::string snap = flags.Get("snapshot_entries", "10000");
  if (!absl::SimpleAtoi(snap, &o.snapshot_every_entries)) {
    UsageError(absl::StrCat("--snapshot_entries='", snap,
                            "' is not a number of entries"));
  }
  const std::string segment = flags.Get("segment_bytes", "67108864");
  if (!absl::SimpleAtoi(segment, &o.wal_segment_bytes)) {
    UsageError(absl::StrCat("--segment_bytes='", segment,
                            "' is not a number of bytes"));
  }
  o.tls = {flags.Get("tls_ca"), flags.Get("tls_cert"), flags.Get("tls_key")};
  o.faults_file = flags.Get("faults_file");
  if (o.id.empty()) UsageError("--id is required");
  if (absl::Status s = quorate::ValidateMemberOptions(o); !s.ok()) {
    UsageError(std::string(s.message()));
  }

  // Signals are taken by sigwait() below, on this thread only: block them
  // before any other thread starts.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGUSR1);  // the member failed by itself
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  o.on_fatal = [](const absl::Status&) {
    fatal_exit = 1;
    kill(getpid(), SIGUSR1);
  };
  absl::StatusOr<std::unique_ptr<quorate::Member>> member =
      quorate::Member::Start(o);
  if (!member.ok()) {
    fprintf(stderr, "quorate-node %s: cannot start: %s\n", o.id.c_str(),
            std::string(member.status().message()).c_str());
    return absl::IsDataLoss(member.status()) ? 3 : 2;
  }
  // Tests and scripts that asked for port 0 read the ports from this line.
  const quorate::MemberStatus started = (*member)->GetStatus();
  fprintf(
      stderr, "%s quorate-node %s: serving on %s; admin HTTP on %s\n",
      quorate::LogTime().c_str(), o.id.c_str(), started.listen_address.c_str(),
      started.admin_address.empty() ? "(none)" : started.admin_address.c_str());

  int sig = 0;
  sigwait(&signals, &sig);
  if (sig == SIGUSR1 && fatal_exit != 0) {
    const absl::Status why = (*member)->GetStatus().error;
    fprintf(stderr, "%s quorate-node %s: stopped after an error: %s\n",
            quorate::LogTime().c_str(), o.id.c_str(),
            std::string(why.message()).c_str());
    member->reset();
    return fatal_exit;
  }
  fprintf(stderr, "%s quorate-node %s: %s, stopping\n",
          quorate::LogTime().c_str(), o.id.c_str(), strsignal(sig));
  (*member)->Stop();
  member->reset();
  return 0;
}
