// chaos/runner.h: one chaos run, from a schedule to a report.
//
//   RunOptions o;
//   o.schedule = *ParseSchedule(text);
//   o.command = {"/usr/bin/quorate-node", "--id={id}", ...};
//   o.out_dir = "/tmp/run1";
//   RunResult r = Run(o);   // report.txt and timeline.html in out_dir
//
// The member command is a template. Placeholders: {id} {zone} {address}
// (the member's own IP) {listen} (address:7000, peers and clients) {admin}
// (address:7100) {peers} (quorate-node's --peers value) {cluster}
// {data_dir} {event_log} {max_clock_drift} (the bound on clock-rate drift
// that covers the schedule's skews: the partition guard's windows are
// only safe when the members are told how far clocks may drift)
// {faults_file} (the transport's fault file, MemberOptions::faults_file). Each
// member runs it in its own network namespace; its output goes to
// <out_dir>/<id>.log.
//
// A schedule's services (schedule.h) run beside the members, each in a
// namespace of its own in its zone; their output goes to
// <out_dir>/<name>.log. Every step's start and end goes to
// <out_dir>/steps.jsonl ({"step", "start_mono_ns", "end_mono_ns"}, on
// CLOCK_MONOTONIC, which every process of the machine shares), for tools
// that measure a service's own logs against the faults.
//
// Namespaces, processes and links are removed when the run ends, fails or
// is interrupted (Interrupt(), e.g. from a signal handler); a later run
// removes what a killed one left.
#ifndef QUORATE_CHAOS_RUNNER_H_
#define QUORATE_CHAOS_RUNNER_H_

#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "chaos/check.h"
#include "chaos/schedule.h"
#include "chaos/timeline.h"

namespace quorate::chaos {

struct RunOptions {
  Schedule schedule;
  std::vector<std::string> command;  // the member template, split in words
  std::string out_dir;
  std::string cluster_id = "chaos";
  bool stale_reads = false;  // a deliberately broken workload
  uint64_t seed = 1;         // targets chosen at random
  bool quiet = false;        // no progress lines on stdout
  // Placeholders for services and steps (over the schedule's `set`).
  std::map<std::string, std::string> vars;
  // No namespaces: every member and service on an address of its own on
  // the loopback interface (Network::Loopback). For runs without root.
  bool loopback = false;
};

struct RunResult {
  absl::Status status;  // the harness itself failed (setup, final reads)
  std::vector<Verdict> verdicts;
  // What happened, for tools that measure runs (tests/bench/guard_bench):
  // every member's events in time order, and the nemesis periods.
  std::vector<Event> events;
  std::vector<Period> nemeses;
  bool ok() const;     // status ok and every verdict ok
  std::string report;  // as written to report.txt
};

// The default member template: quorate-node with the flags of
// docs/contracts.md.
std::vector<std::string> DefaultCommand(const std::string& node_binary);

// Why a run cannot happen here (not root, no ip or nft), or OK. Without
// root, a schedule that cuts no link can still run on loopback addresses
// (RunOptions::loopback); null: a random schedule, which may cut any.
absl::Status CanRun(const Schedule* schedule);

RunResult Run(const RunOptions& options);

// Makes a run in progress stop soon, clean up and report. Async-signal-safe.
void Interrupt();

}  // namespace quorate::chaos

#endif  // QUORATE_CHAOS_RUNNER_H_
