// quorate-chaos: chaos runs on real processes (src/chaos/runner.h).
//
//   quorate-chaos --schedule=FILE [--out=DIR]
//   quorate-chaos --random --seed=N --duration=30m [--run_length=60s]
//
// Exit codes: 0 every verdict held; 1 a verdict failed (a violation);
// 2 usage; 3 a run could not be completed (setup failed, or the cluster
// did not serve again after the faults were healed); 77 this machine
// cannot run it (not root, or ip or nft missing): one line says why.
#include <signal.h>
#include <stdio.h>
#include <unistd.h>

#include <fstream>
#include <map>
#include <sstream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "chaos/runner.h"
#include "chaos/schedule.h"
#include "cmd/flags.h"

namespace {

constexpr char kUsage[] = R"(usage:
  quorate-chaos --schedule=FILE [flags] [NAME=VALUE...]
                                              one run of a schedule file;
                                              NAME=VALUE fills {NAME} in its
                                              services and steps
  quorate-chaos --random [--seed=N] [--duration=30m] [--run_length=60s]
                                              random runs until the duration

  --out=DIR            reports, timelines, member logs (default: a new
                       directory under /tmp)
  --node_binary=PATH   quorate-node to run (default: beside quorate-chaos)
  --command=TEMPLATE   a member command of your own instead, with
                       placeholders {id} {zone} {address} {listen} {admin}
                       {peers} {cluster} {data_dir} {event_log}
                       {max_clock_drift} {faults_file}
  --break=stale-reads  a deliberately broken workload (stale reads), to see
                       the checkers fail
  --expect_violation=NAME
                       exit 0 only if the verdict NAME failed (for testing
                       the checkers), e.g. linearizable
  --quiet              no progress lines
  --loopback           no network namespaces: every member and service on
                       an address of its own on 127/8 (the default without
                       root; a schedule that cuts links then cannot run)

Schedule files: see src/chaos/schedule.h or docs/operations.md.
Exit: 0 all verdicts held, 1 a violation, 2 usage, 3 a run could not
complete, 77 cannot run here (needs root, ip and nft).
)";

[[noreturn]] void Usage(const std::string& why) {
  fprintf(stderr, "quorate-chaos: %s (see --help)\n", why.c_str());
  exit(2);
}

void OnSignal(int) { quorate::chaos::Interrupt(); }

std::string SelfDir() {
  char buf[4096];
  const ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
  if (n <= 0) return ".";
  std::string path(buf, static_cast<size_t>(n));
  return path.substr(0, path.rfind('/'));
}

std::string NewDir() {
  char tmpl[] = "/tmp/quorate-chaos-XXXXXX";
  if (mkdtemp(tmpl) == nullptr) Usage("cannot create a directory under /tmp");
  return tmpl;
}

}  // namespace

int main(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    if (std::string(argv[i]) == "--help" || std::string(argv[i]) == "-h") {
      fputs(kUsage, stdout);
      return 0;
    }
  }
  absl::StatusOr<quorate::cmd::Flags> parsed = quorate::cmd::ParseFlags(
      argc, argv,
      {"schedule", "out", "node_binary", "command", "break", "expect_violation",
       "seed", "duration", "run_length"},
      {"random", "quiet", "loopback"});
  if (!parsed.ok()) Usage(std::string(parsed.status().message()));
  const quorate::cmd::Flags& flags = *parsed;
  std::map<std::string, std::string> vars;
  for (const std::string& arg : flags.positional) {
    const size_t eq = arg.find('=');
    if (eq == std::string::npos || eq == 0) {
      Usage(absl::StrCat("unexpected argument '", arg,
                         "' (placeholders are given as NAME=VALUE)"));
    }
    vars[arg.substr(0, eq)] = arg.substr(eq + 1);
  }
  const bool random = flags.Bool("random");
  if (random == flags.Has("schedule")) {
    Usage("give either --schedule=FILE or --random");
  }
  quorate::chaos::RunOptions base;
  base.quiet = flags.Bool("quiet");
  base.vars = vars;
  // Without root, a schedule that cuts no link runs on loopback addresses.
  base.loopback = flags.Bool("loopback") || geteuid() != 0;
  if (flags.Has("command")) {
    base.command = absl::StrSplit(flags.Get("command"), ' ', absl::SkipEmpty());
  } else {
    base.command = quorate::chaos::DefaultCommand(
        flags.Get("node_binary", SelfDir() + "/quorate-node"));
  }
  if (base.command.empty() || access(base.command[0].c_str(), X_OK) != 0) {
    Usage(absl::StrCat("the member command '",
                       base.command.empty() ? "" : base.command[0],
                       "' is not an executable file (give a full path)"));
  }
  const std::string broken = flags.Get("break");
  if (!broken.empty() && broken != "stale-reads") {
    Usage(absl::StrCat("--break='", broken, "': the only one is stale-reads"));
  }
  base.stale_reads = broken == "stale-reads";
  uint64_t seed = static_cast<uint64_t>(absl::ToUnixNanos(absl::Now()));
  if (flags.Has("seed") && !absl::SimpleAtoi(flags.Get("seed"), &seed)) {
    Usage("--seed takes a whole number");
  }
  base.seed = seed;
  absl::StatusOr<absl::Duration> duration =
      flags.Duration("duration", absl::Minutes(30));
  absl::StatusOr<absl::Duration> run_length =
      flags.Duration("run_length", absl::Seconds(60));
  if (!duration.ok()) Usage(std::string(duration.status().message()));
  if (!run_length.ok()) Usage(std::string(run_length.status().message()));

  std::vector<quorate::chaos::Schedule> schedules;
  if (!random) {
    std::ifstream in(flags.Get("schedule"));
    if (!in) Usage(absl::StrCat("cannot read '", flags.Get("schedule"), "'"));
    std::stringstream text;
    text << in.rdbuf();
    absl::StatusOr<quorate::chaos::Schedule> s =
        quorate::chaos::ParseSchedule(text.str());
    if (!s.ok()) {
      Usage(absl::StrCat(flags.Get("schedule"), ": ", s.status().message()));
    }
    schedules.push_back(*std::move(s));
  }
  if (flags.Bool("loopback") && (random || schedules[0].CutsLinks())) {
    Usage("--loopback cannot cut links: this schedule cuts some");
  }
  if (absl::Status s = quorate::chaos::CanRun(random ? nullptr : &schedules[0]);
      !s.ok()) {
    printf("skipped: %s\n", std::string(s.message()).c_str());
    return 77;
  }
  signal(SIGINT, OnSignal);
  signal(SIGTERM, OnSignal);
  signal(SIGHUP, OnSignal);
  // Output to a closed pipe (| head) must not kill the run before it
  // cleans up.
  signal(SIGPIPE, SIG_IGN);

  const std::string out = flags.Get("out", NewDir());
  const absl::Time until = absl::Now() + *duration;
  int runs = 0, violations = 0, incomplete = 0;
  std::vector<std::string> summary;
  for (int i = 0;; ++i) {
    quorate::chaos::RunOptions o = base;
    if (random) {
      if (i > 0 && absl::Now() >= until) break;
      o.seed = seed + static_cast<uint64_t>(i);
      o.schedule = quorate::chaos::RandomSchedule(o.seed, *run_length);
      o.out_dir = absl::StrCat(out, "/run-", i + 1);
    } else {
      if (i > 0) break;
      o.schedule = schedules[0];
      o.out_dir = out;
    }
    if (!o.quiet) printf("== run %d: %s\n", i + 1, o.out_dir.c_str());
    const quorate::chaos::RunResult r = quorate::chaos::Run(o);
    ++runs;
    if (!o.quiet || !r.ok()) fputs(r.report.c_str(), stdout);
    if (r.report.empty()) {
      fprintf(stderr, "quorate-chaos: %s\n", r.status.ToString().c_str());
    }
    std::string line = absl::StrCat("run ", i + 1, " (seed ", o.seed, "): ");
    if (!r.status.ok()) {
      ++incomplete;
      absl::StrAppend(&line, "INCOMPLETE: ", r.status.message());
    } else if (!r.ok()) {
      ++violations;
      for (const auto& v : r.verdicts) {
        if (!v.ok) absl::StrAppend(&line, "FAIL ", v.name, "; ");
      }
    } else {
      absl::StrAppend(&line, "pass");
    }
    summary.push_back(line + "  " + o.out_dir);
    if (absl::IsCancelled(r.status)) break;
    const std::string expect = flags.Get("expect_violation");
    if (!expect.empty()) {
      for (const auto& v : r.verdicts) {
        if (v.name == expect && !v.ok) {
          printf("the expected violation of '%s' was reported\n",
                 expect.c_str());
          return 0;
        }
      }
      printf("expected a violation of '%s', but none was reported\n",
             expect.c_str());
      return 1;
    }
  }
  if (random) {
    printf("\n== summary: %d runs, %d with violations, %d incomplete\n", runs,
           violations, incomplete);
    for (const std::string& line : summary) printf("  %s\n", line.c_str());
  }
  if (violations > 0) return 1;
  if (incomplete > 0) return 3;
  return 0;
}
