// chaos/schedule.h: what a chaos run does, read from a small text file or
// drawn from a seed.
//
//   # 5 members in 3 zones; each line is a setting or a step.
//   members 5
//   zones az-a az-a az-b az-b az-c
//   clients 4            # workload threads
//   keys 5               # registers they write and read
//   rate 40              # operations per second per client
//   settle 2s            # before the first step
//   resume_within 600ms  # after a heal, every member active again (0: off)
//   partition-zone az-a 6s
//   quiet 3s
//   kill leader 3s
//
// A step is a nemesis and how long it lasts; when the time is up it is
// undone (healed, restarted, resumed). Steps never overlap. Targets name a
// member (n1 ... nN), or `leader`, `follower` or `random`, chosen when the
// step starts. The nemeses:
//   isolate T D           T cut off from every other member, both ways
//   one-way T D           T hears no other member; they still hear T
//   partition A|B D       two groups of members, e.g. n1,n2|n3,n4,n5
//   partition-zone Z D    zone Z (or `leader`: the leader's) cut off from
//                         the other zones
//   partition-halves D    random halves (the smaller side is a minority)
//   ring D                majorities ring: each member hears its two
//                         neighbours, so each sees a majority, no two the same
//   bridge D              two halves that hear only one member between them
//   kill T D              kill -9, restarted after D
//   pause T D             SIGSTOP, SIGCONT after D
//   skew T RATE D         restarted under libfaketime with its clock running
//                         at RATE (e.g. 1.3 or 0.7), then restarted normally;
//                         members are told a drift bound that covers it
//                         (|RATE - 1| below 0.5, or the run breaks the
//                         partition guard's assumption on purpose)
//   loss P D              P % of packets between members dropped at random
//   delay MS D            every peer frame delayed by MS (±50 %)
//   duplicate P D         P % of peer frames sent twice
//   quiet D               nothing
//   isolate-zone Z D      zone Z cut off from everything outside it,
//                         including the services of zone `*`
//
// A service's own processes can join a run (docs/operations.md, "Replaying
// an incident against your own service"):
//   set NAME VALUE        a placeholder {NAME} (--set NAME=VALUE overrides)
//   service NAME ZONE COMMAND...
//                         a process started, in file order, once the
//                         members have a leader. ZONE is a zone (cut with
//                         it), `*` (a shared service every zone reaches,
//                         such as a database: only isolate-zone cuts it
//                         off) or `-` (runs in the harness's own namespace
//                         and is never cut: a load generator standing for
//                         clients in every zone). Exit status 0 is fine;
//                         any other end is a violation.
//   ready NAME TIMEOUT COMMAND...
//                         after starting NAME, COMMAND is run until it
//                         exits 0 (the run fails after TIMEOUT)
//   check COMMAND...      after the last step, services still running: a
//                         verdict, held if COMMAND exits 0; its output
//                         goes in the report
// and steps of their own (no heal; `run` and `stop` take no time):
//   await TIMEOUT COMMAND...  COMMAND again every 500 ms until it exits 0
//                         (a violation if TIMEOUT passes first; a try
//                         still running then is killed)
//   run COMMAND...        COMMAND once (the run fails if it does not exit 0)
//   stop NAME[,NAME...]   SIGTERM, then SIGKILL after 20 s
//   mark NAME             nothing: an instant named in steps.jsonl, for the
//                         tools that read it (the email example's replays)
// Commands are split at blanks (no quoting) and run in the harness's
// namespace. Placeholders in services' and steps' commands: {NAME} of
// `set`, {name} {zone} {address} of the service itself, {out_dir},
// {endpoints} (every member's HOST:PORT for clients, comma-separated),
// {admins} (their admin HOST:PORTs), {address:X} (member or service X's
// address). An unknown placeholder fails the run before it starts.
#ifndef QUORATE_CHAOS_SCHEDULE_H_
#define QUORATE_CHAOS_SCHEDULE_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace quorate::chaos {

struct Step {
  std::string nemesis;  // as in the file; "quiet" for none
  std::vector<std::string> args;
  absl::Duration duration;

  std::string Describe() const;
  // A step of the service's own (await, run, stop): no fault to heal.
  bool Action() const;
};

struct Service {
  std::string name;
  std::string zone;  // a members' zone, "*" or "-"
  std::vector<std::string> command;
  std::vector<std::string> ready;  // empty: none
  absl::Duration ready_within = absl::ZeroDuration();
  bool netns() const { return zone != "-"; }
};

struct Schedule {
  int members = 5;
  std::vector<std::string> zones;  // one per member
  int clients = 4;  // 0: no register workload (a service brings its own)
  int keys = 5;
  double rate = 40;
  absl::Duration settle = absl::Seconds(2);
  // After each heal followed by at least this much quiet, every member
  // must be active again within it (0: not checked). The default is the
  // default member's resume dwell (500 ms) plus two heartbeats (50 ms).
  absl::Duration resume_within = absl::Milliseconds(600);
  std::vector<Step> steps;
  std::vector<Service> services;
  std::vector<std::pair<std::string, std::string>> vars;  // `set`, in order
  std::vector<std::vector<std::string>> checks;

  std::string Id(int member) const { return "n" + std::to_string(member + 1); }
  absl::Duration Length() const;
  // The largest |rate - 1| of the skew steps (0 without any).
  double MaxSkew() const;
  // Whether a step cuts or thins links (needs namespaces and nftables).
  bool CutsLinks() const;
  std::string Describe() const;  // in the file's syntax
};

absl::StatusOr<Schedule> ParseSchedule(const std::string& text);

// Random steps (each nemesis 2-8 s, then 2-4 s of quiet) until `length`,
// on 5 members in zones az-a:2 az-b:2 az-c:1; resume_within 1 s.
Schedule RandomSchedule(uint64_t seed, absl::Duration length);

}  // namespace quorate::chaos

#endif  // QUORATE_CHAOS_SCHEDULE_H_
