// quorate-sim: runs seeds of the deterministic cluster simulation.
//
//   quorate-sim --seed=N --runs=K [--members=3|5] [--scenario=NAME|random]
//               [--trace] [--check_determinism] [--rho=0.01]
//               [--delay=MIN_US-MAX_US[:tail]]
//               [--drift_beyond_rho] [--unsafe=commit-previous-terms|
//               forget-vote-on-restart|stale-reads|ack-on-propose|
//               answer-before-commit|propose-what-it-sheds|
//               no-startup-lease|
//               guard-monotonic-clock|txn-ignores-compares|
//               lease-deadline-from-reply|lease-renew-without-round|
//               lease-no-checkpoints|watch-skip-when-full|
//               lock-ignores-session|lock-lost-wakeup|
//               observe-per-response|shard-skip-drain|
//               shard-keep-epoch|
//               shard-ignore-session-end]
//
// Runs K seeds starting at N (K=0: without end, printing progress). Without
// --members, each seed picks 3 or 5 members. For each failure it prints the
// command that replays it. It ends with "X passed, Y failed" and exits 1 if
// anything failed.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <map>
#include <string>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "sim/simulator.h"

namespace {

int Usage(const std::string& why) {
  std::cerr << "quorate-sim: " << why << "\n"
            << "usage: quorate-sim --seed=N --runs=K [--members=3|5] "
               "[--scenario=NAME|random] [--trace] [--check_determinism] "
               "[--snapshot_every=N]\n";
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  using quorate::sim::SimOptions;
  uint64_t seed = 1;
  uint64_t runs = 1;
  int members = 0;  // 0: chosen per seed
  bool check_determinism = false;
  SimOptions base;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    const size_t eq = arg.find('=');
    const std::string name = arg.substr(0, eq);
    const std::string value = eq == std::string::npos ? "" : arg.substr(eq + 1);
    if (name == "--seed") {
      if (!absl::SimpleAtoi(value, &seed)) return Usage("bad --seed");
    } else if (name == "--runs") {
      if (!absl::SimpleAtoi(value, &runs)) return Usage("bad --runs");
    } else if (name == "--members") {
      if (!absl::SimpleAtoi(value, &members) ||
          (members != 3 && members != 5)) {
        return Usage("--members must be 3 or 5");
      }
    } else if (name == "--scenario") {
      std::vector<quorate::sim::Fault> faults;
      if (!quorate::sim::ParseScenario(value, &faults)) {
        return Usage("unknown scenario '" + value + "'");
      }
      base.scenario = value;
    } else if (name == "--trace") {
      base.trace = true;
    } else if (name == "--check_determinism") {
      check_determinism = true;
    } else if (name == "--rho") {
      if (!absl::SimpleAtod(value, &base.rho) || base.rho < 0 ||
          base.rho >= 1) {
        return Usage("bad --rho");
      }
    } else if (name == "--delay") {
      // MIN_US-MAX_US[:tail]
      const size_t dash = value.find('-');
      const size_t colon = value.find(':');
      int64_t lo = 0;
      int64_t hi = 0;
      if (dash == std::string::npos ||
          !absl::SimpleAtoi(value.substr(0, dash), &lo) ||
          !absl::SimpleAtoi(value.substr(dash + 1, colon == std::string::npos
                                                       ? std::string::npos
                                                       : colon - dash - 1),
                            &hi) ||
          lo < 0 || hi < lo) {
        return Usage("--delay must be MIN_US-MAX_US or MIN_US-MAX_US:tail");
      }
      base.delay_min_ns = lo * 1000;
      base.delay_max_ns = hi * 1000;
      base.delay_tail =
          colon != std::string::npos && value.substr(colon + 1) == "tail";
    } else if (name == "--snapshot_every") {
      if (!absl::SimpleAtoi(value, &base.snapshot_every) ||
          base.snapshot_every == 0) {
        return Usage("bad --snapshot_every");
      }
    } else if (name == "--drift_beyond_rho") {
      base.drift_beyond_rho = true;
    } else if (name == "--unsafe") {
      if (value == "commit-previous-terms") {
        base.unsafe_commit_previous_terms = true;
      } else if (value == "forget-vote-on-restart") {
        base.unsafe_forget_vote_on_restart = true;
      } else if (value == "stale-reads") {
        base.unsafe_stale_reads = true;
      } else if (value == "ack-on-propose") {
        base.unsafe_ack_on_propose = true;
      } else if (value == "answer-before-commit") {
        base.unsafe_answer_before_commit = true;
      } else if (value == "no-startup-lease") {
        base.unsafe_no_startup_lease = true;
      } else if (value == "guard-monotonic-clock") {
        base.unsafe_guard_monotonic_clock = true;
      } else if (value == "txn-ignores-compares") {
        base.unsafe_txn_ignores_compares = true;
      } else if (value == "lease-deadline-from-reply") {
        base.unsafe_lease_deadline_from_reply = true;
      } else if (value == "lease-renew-without-round") {
        base.unsafe_lease_renew_without_round = true;
      } else if (value == "lease-no-checkpoints") {
        base.unsafe_lease_no_checkpoints = true;
      } else if (value == "watch-skip-when-full") {
        base.unsafe_watch_skip_when_full = true;
      } else if (value == "lock-ignores-session") {
        base.unsafe_lock_ignores_session = true;
      } else if (value == "lock-lost-wakeup") {
        base.unsafe_lock_lost_wakeup = true;
      } else if (value == "observe-per-response") {
        base.unsafe_observe_per_response = true;
      } else if (value == "propose-what-it-sheds") {
        base.unsafe_propose_what_it_sheds = true;
      } else if (value == "shard-skip-drain") {
        base.unsafe_shard_skip_drain = true;
      } else if (value == "shard-keep-epoch") {
        base.unsafe_shard_keep_epoch = true;
      } else if (value == "shard-ignore-session-end") {
        base.unsafe_shard_ignore_session_end = true;
      } else if (value == "join-without-snapshot") {
        base.unsafe_join_without_snapshot = true;
      } else if (value == "restart-snapshot-transfers") {
        base.unsafe_restart_snapshot_transfers = true;
      } else {
        return Usage("unknown --unsafe variant '" + value + "'");
      }
    } else {
      return Usage("unknown flag " + arg);
    }
  }

  const auto start = std::chrono::steady_clock::now();
  uint64_t passed = 0;
  uint64_t failed = 0;
  uint64_t liveness_failed = 0;
  uint64_t storage_events = 0;
  uint64_t leases_granted = 0, renewals = 0, leases_expired = 0, died = 0;
  uint64_t watch_revisions = 0, watch_resumes = 0, watch_cut_off = 0;
  uint64_t lock_holds = 0;
  uint64_t shard_tenures = 0, shard_releases = 0, shard_leaves = 0;
  uint64_t shard_checked = 0;
  uint64_t lock_checked = 0;
  uint64_t observed = 0;
  uint64_t refused = 0, shed = 0;
  uint64_t added = 0, promoted = 0, removed = 0;
  double simulated_s = 0;
  std::map<std::string, uint64_t> faults;
  for (uint64_t k = 0; runs == 0 || k < runs; ++k) {
    SimOptions o = base;
    o.seed = seed + k;
    o.members = members != 0 ? members : (o.seed % 2 == 0 ? 5 : 3);
    const quorate::sim::SimResult r = quorate::sim::RunSimulation(o);
    simulated_s += static_cast<double>(r.simulated_ns) / 1e9;
    storage_events += r.storage_events;
    leases_granted += r.leases_granted;
    renewals += r.renewals_answered;
    leases_expired += r.leases_expired;
    died += r.holders_died;
    watch_revisions += r.watch_revisions;
    watch_resumes += r.watch_resumes;
    watch_cut_off += r.watch_cut_off;
    lock_holds += r.lock_holds;
    observed += r.observer_leaders;
    shard_tenures += r.shard_tenures;
    shard_releases += r.shard_releases;
    shard_leaves += r.shard_leaves;
    shard_checked += r.shard_liveness_checked;
    lock_checked += r.lock_liveness_checked;
    refused += r.writes_refused;
    shed += r.writes_shed;
    added += r.members_added;
    promoted += r.members_promoted;
    removed += r.members_removed;
    for (const std::string& f : r.faults) ++faults[f];
    std::string problem;
    if (!r.safety_ok) problem = "SAFETY: " + r.safety_violation;
    if (r.safety_ok && !r.liveness_ok) {
      problem = "LIVENESS: " + r.liveness_violation;
      ++liveness_failed;
    }
    if (problem.empty() && check_determinism) {
      const quorate::sim::SimResult again = quorate::sim::RunSimulation(o);
      if (again.trace_hash != r.trace_hash) {
        problem = absl::StrCat("NONDETERMINISTIC: trace hash ", r.trace_hash,
                               " then ", again.trace_hash);
      }
    }
    if (base.trace) std::cout << r.trace;
    if (problem.empty()) {
      ++passed;
    } else {
      ++failed;
      std::cout
          << "FAIL seed=" << o.seed << " members=" << o.members << " "
          << problem << "\n  replay: quorate-sim --seed=" << o.seed
          << " --runs=1 --members=" << o.members << " --scenario=" << o.scenario
          << (o.unsafe_commit_previous_terms ? " --unsafe=commit-previous-terms"
                                             : "")
          << (o.unsafe_forget_vote_on_restart
                  ? " --unsafe=forget-vote-on-restart"
                  : "")
          << (o.unsafe_stale_reads ? " --unsafe=stale-reads" : "")
          << (o.unsafe_ack_on_propose ? " --unsafe=ack-on-propose" : "")
          << (o.unsafe_answer_before_commit ? " --unsafe=answer-before-commit"
                                            : "")
          << (o.unsafe_no_startup_lease ? " --unsafe=no-startup-lease" : "")
          << (o.unsafe_guard_monotonic_clock ? " --unsafe=guard-monotonic-clock"
                                             : "")
          << (o.unsafe_txn_ignores_compares ? " --unsafe=txn-ignores-compares"
                                            : "")
          << (o.unsafe_lease_deadline_from_reply
                  ? " --unsafe=lease-deadline-from-reply"
                  : "")
          << (o.unsafe_lease_renew_without_round
                  ? " --unsafe=lease-renew-without-round"
                  : "")
          << (o.unsafe_watch_skip_when_full ? " --unsafe=watch-skip-when-full"
                                            : "")
          << (o.unsafe_lock_ignores_session ? " --unsafe=lock-ignores-session"
                                            : "")
          << (o.unsafe_lock_lost_wakeup ? " --unsafe=lock-lost-wakeup" : "")
          << (o.unsafe_observe_per_response ? " --unsafe=observe-per-response"
                                            : "")
          << (o.unsafe_lease_no_checkpoints ? " --unsafe=lease-no-checkpoints"
                                            : "")
          << (o.unsafe_propose_what_it_sheds ? " --unsafe=propose-what-it-sheds"
                                             : "")
          << (o.unsafe_shard_skip_drain ? " --unsafe=shard-skip-drain" : "")
          << (o.unsafe_shard_keep_epoch ? " --unsafe=shard-keep-epoch" : "")
          << (o.unsafe_shard_ignore_session_end
                  ? " --unsafe=shard-ignore-session-end"
                  : "")
          << (o.unsafe_join_without_snapshot ? " --unsafe=join-without-snapshot"
                                             : "")
          << (o.unsafe_restart_snapshot_transfers
                  ? " --unsafe=restart-snapshot-transfers"
                  : "")
          << (o.drift_beyond_rho ? " --drift_beyond_rho" : "")
          << (o.snapshot_every != SimOptions().snapshot_every
                  ? absl::StrCat(" --snapshot_every=", o.snapshot_every)
                  : "")
          << " --delay=" << o.delay_min_ns / 1000 << "-"
          << o.delay_max_ns / 1000 << (o.delay_tail ? ":tail" : "")
          << " --trace\n";
    }
    if (runs == 0 && (k + 1) % 1000 == 0) {
      const double real_s = std::chrono::duration<double>(
                                std::chrono::steady_clock::now() - start)
                                .count();
      std::cout << "progress: " << (k + 1) << " seeds, " << failed
                << " failed, " << static_cast<uint64_t>((k + 1) * 3600 / real_s)
                << " seeds/hour" << std::endl;
    }
  }
  const double real_s =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
          .count();
  std::cout << "faults:";
  for (const auto& [f, n] : faults) std::cout << " " << f << "=" << n;
  std::cout << "\nsimulated " << simulated_s << " s in " << real_s
            << " s real: " << (real_s > 0 ? simulated_s / real_s : 0)
            << "x real time; " << liveness_failed << " liveness failures; "
            << storage_events << " torn writes cut off at recovery\n"
            << "sessions: " << leases_granted << " leases granted, " << renewals
            << " renewals answered, " << leases_expired << " ended, " << died
            << " holders died\n"
            << "watches: " << watch_revisions << " revisions delivered, "
            << watch_resumes << " resumes (" << watch_cut_off
            << " after cut-offs)\n"
            << "writes refused before the log: " << refused << " (" << shed
            << " shed by time)\n"
            << "locks: " << lock_holds << " times held; held lately at the "
            << "end of " << lock_checked << " quiet runs; " << observed
            << " leaders reported by observers\n"
            << "shards: " << shard_tenures << " tenures, " << shard_releases
            << " releases, " << shard_leaves << " leaves; every shard owned "
            << "at the end of " << shard_checked << " quiet runs\n"
            << "membership: " << added << " members added, " << promoted
            << " promoted, " << removed << " removed\n";
  std::cout << passed << " passed, " << failed << " failed\n";
  return failed == 0 ? 0 : 1;
}
