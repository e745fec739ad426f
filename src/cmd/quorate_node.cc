// quorate-node: one member of a Quorate cluster as a process.
//
// Flags, signals and exit codes are an outside contract
// (../shared/design/CONTRACTS.md):
//   0  stopped cleanly on SIGTERM or SIGINT (a leader hands over first)
//   1  the member stopped working by itself (its disk failed)
//   2  a bad flag, or an unusable data directory or address
//   3  the data directory is corrupt (the message names file and offset);
//      nothing was truncated
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <atomic>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "quorate/member.h"
#include "quorate/version.h"

namespace {

constexpr char kUsage[] =
    R"(usage: quorate-node --id=ID --listen=HOST:PORT --data_dir=PATH
                    --cluster_id=NAME --peers=ID@ZONE=HOST:PORT,... [flags]

  --id=n1                      member id, [a-z0-9-]{1,32}
  --zone=az-a                  availability-zone label
  --listen=HOST:PORT           gRPC address for peers and clients
  --admin=HOST:PORT            admin HTTP (/healthz, /status); host defaults
                               to 127.0.0.1, port to 0 (any free port)
  --peers=n1@az-a=HOST:PORT,.. the initial voters, this member included;
                               used only when --data_dir is new
  --data_dir=PATH              the log, hard state and snapshots
  --cluster_id=NAME            members of other clusters are refused
  --heartbeat_interval=50ms
  --election_timeout=500ms     the minimum; actual in [T, 2T)
  --max_clock_drift=0.01       bound on clock-rate drift (rho)
  --event_log=PATH             append one JSON line per role change
  --segment_bytes=67108864     size of each write-ahead log segment
  --tls_ca=PEM --tls_cert=PEM --tls_key=PEM   mutual TLS between members
  --learner                    join as a non-voting member (not supported
                               yet: refused)
  --version, --help
)";

[[noreturn]] void UsageError(const std::string& message) {
  fprintf(stderr, "quorate-node: %s\n(--help lists the flags)\n",
          message.c_str());
  exit(2);
}

struct Flags {
  std::map<std::string, std::string> values;
  bool learner = false;
};

Flags ParseFlags(int argc, char** argv) {
  static const char* const kKnown[] = {"id",
                                       "zone",
                                       "listen",
                                       "admin",
                                       "peers",
                                       "data_dir",
                                       "cluster_id",
                                       "heartbeat_interval",
                                       "election_timeout",
                                       "max_clock_drift",
                                       "event_log",
                                       "tls_ca",
                                       "segment_bytes",
                                       "tls_cert",
                                       "tls_key"};
  Flags f;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--help" || arg == "-help" || arg == "-h") {
      fputs(kUsage, stdout);
      exit(0);
    }
    if (arg == "--version" || arg == "-version") {
      printf("quorate-node %s\n", quorate::Version());
      exit(0);
    }
    if (arg.rfind("--", 0) == 0) {
      arg = arg.substr(2);
    } else if (arg.rfind("-", 0) == 0) {
      arg = arg.substr(1);
    } else {
      UsageError(absl::StrCat("unexpected argument '", arg, "'"));
    }
    if (arg == "learner" || arg == "learner=true") {
      f.learner = true;
      continue;
    }
    if (arg == "nolearner" || arg == "learner=false") {
      f.learner = false;
      continue;
    }
    std::string name = arg;
    std::string value;
    const size_t eq = arg.find('=');
    if (eq != std::string::npos) {
      name = arg.substr(0, eq);
      value = arg.substr(eq + 1);
    } else if (i + 1 < argc) {
      value = argv[++i];
    } else {
      UsageError(absl::StrCat("flag --", name, " needs a value"));
    }
    bool known = false;
    for (const char* k : kKnown) known |= name == k;
    if (!known) UsageError(absl::StrCat("unknown flag --", name));
    f.values[name] = value;
  }
  return f;
}

absl::Duration DurationFlag(const Flags& f, const std::string& name,
                            absl::Duration def) {
  auto it = f.values.find(name);
  if (it == f.values.end()) return def;
  absl::Duration d;
  if (!absl::ParseDuration(it->second, &d) || d <= absl::ZeroDuration()) {
    UsageError(absl::StrCat("--", name, "='", it->second,
                            "' is not a positive duration such as 50ms or "
                            "1.5s"));
  }
  return d;
}

std::string Flag(const Flags& f, const std::string& name,
                 const std::string& def = "") {
  auto it = f.values.find(name);
  return it == f.values.end() ? def : it->second;
}

std::vector<quorate::PeerSpec> ParsePeers(const std::string& value) {
  std::vector<quorate::PeerSpec> out;
  if (value.empty()) return out;
  for (absl::string_view item : absl::StrSplit(value, ',')) {
    const size_t at = item.find('@');
    const size_t eq = item.find('=');
    if (at == absl::string_view::npos || eq == absl::string_view::npos ||
        eq < at) {
      UsageError(
          absl::StrCat("--peers entry '", item, "' is not ID@ZONE=HOST:PORT"));
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
  const Flags flags = ParseFlags(argc, argv);
  if (flags.learner) {
    UsageError(
        "--learner is not supported yet: members join as voters listed in "
        "--peers");
  }
  quorate::MemberOptions o;
  o.id = Flag(flags, "id");
  o.zone = Flag(flags, "zone", "default");
  o.cluster_id = Flag(flags, "cluster_id");
  o.listen_address = Flag(flags, "listen");
  o.admin_address = Flag(flags, "admin", "127.0.0.1:0");
  if (!o.admin_address.empty() && o.admin_address[0] == ':') {
    o.admin_address = "127.0.0.1" + o.admin_address;
  } else if (o.admin_address.find(':') == std::string::npos) {
    o.admin_address += ":0";
  }
  o.peers = ParsePeers(Flag(flags, "peers"));
  o.data_dir = Flag(flags, "data_dir");
  o.heartbeat_interval =
      DurationFlag(flags, "heartbeat_interval", absl::Milliseconds(50));
  o.election_timeout =
      DurationFlag(flags, "election_timeout", absl::Milliseconds(500));
  const std::string drift = Flag(flags, "max_clock_drift", "0.01");
  if (!absl::SimpleAtod(drift, &o.max_clock_drift)) {
    UsageError(absl::StrCat("--max_clock_drift='", drift,
                            "' is not a number such as 0.01"));
  }
  o.event_log_path = Flag(flags, "event_log");
  const std::string segment = Flag(flags, "segment_bytes", "67108864");
  if (!absl::SimpleAtoi(segment, &o.wal_segment_bytes)) {
    UsageError(absl::StrCat("--segment_bytes='", segment,
                            "' is not a number of bytes"));
  }
  o.tls = {Flag(flags, "tls_ca"), Flag(flags, "tls_cert"),
           Flag(flags, "tls_key")};
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
  fprintf(stderr, "quorate-node %s: serving on %s\n", o.id.c_str(),
          (*member)->GetStatus().listen_address.c_str());

  int sig = 0;
  sigwait(&signals, &sig);
  if (sig == SIGUSR1 && fatal_exit != 0) {
    const absl::Status why = (*member)->GetStatus().error;
    fprintf(stderr, "quorate-node %s: stopped after an error: %s\n",
            o.id.c_str(), std::string(why.message()).c_str());
    member->reset();
    return fatal_exit;
  }
  fprintf(stderr, "quorate-node %s: %s, stopping\n", o.id.c_str(),
          strsignal(sig));
  (*member)->Stop();
  member->reset();
  return 0;
}
