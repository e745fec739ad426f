// chaos/runner_internal.h: one run's state, shared by runner.cc (the
// phases of a run: setup, members, schedule, checks, report) and
// faults.cc (injecting and healing each fault of the schedule).
#ifndef QUORATE_CHAOS_RUNNER_INTERNAL_H_
#define QUORATE_CHAOS_RUNNER_INTERNAL_H_

#include <sys/types.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "chaos/network.h"
#include "chaos/runner.h"
#include "chaos/timeline.h"
#include "chaos/workload.h"
#include "quorate/client.h"

namespace quorate::chaos::internal {

// Set by Interrupt(); every wait of a run checks it.
extern std::atomic<bool> g_interrupted;

constexpr const char* kFaketime =
    "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1";

// "+N ms" since t0.
inline std::string At(int64_t t_ns, int64_t t0) {
  return absl::StrCat(
      "+",
      absl::Dec(static_cast<uint64_t>(std::max<int64_t>(0, t_ns - t0)) /
                1'000'000),
      " ms");
}

struct Member {
  std::string id, zone, address, listen, admin, dir, log, events;
  pid_t pid = -1;
  bool stopped = false;  // SIGSTOP
  bool expected_down = false;
  double rate = 1.0;
};

// A service's process (Schedule::services).
struct ServiceProc {
  std::string name, zone, address, log;
  int net_index = -1;  // in the Network; -1: the harness's namespace
  pid_t pid = -1;
  bool stopped_by_plan = false;
};

class Runner {
 public:
  explicit Runner(const RunOptions& o) : o_(o), rng_(o.seed) {}

  RunResult Go();

 private:
  absl::Status Setup();
  absl::Status StartServices();
  // A command template's words with their placeholders filled (`self`: the
  // service whose command it is, or null).
  absl::StatusOr<std::vector<std::string>> Expand(
      const std::vector<std::string>& words, const ServiceProc* self,
      int depth = 0) const;
  // Runs a step of the service's own (await, run, stop); `what` says what
  // it did. A run that fails is an error; an await that times out is a
  // violation, noted in failed_awaits_.
  absl::Status Act(const Step& step, std::string* what);
  void StopService(ServiceProc& v);
  std::vector<Verdict> RunChecks();
  absl::Status StartMember(int i, double rate);
  void KillMember(int i);
  absl::Status RestartGracefully(int i, double rate);
  int Leader();
  absl::StatusOr<int> Target(const std::string& arg);
  absl::StatusOr<std::string> Inject(const Step& step);
  absl::Status Heal(const Step& step);
  absl::Status SetRules(const std::vector<LinkRules>& rules);
  absl::Status WriteFaults(const std::string& text);
  void Sleep(absl::Duration d);
  void NoteExits();
  // Appends a step's start and end (now) to steps.jsonl.
  void NoteStep(const Step& step, int64_t start_ns);
  std::string Names(const std::set<int>& members) const;
  // The clock-drift bound the members are told: enough for every skew in
  // the schedule (at least 0.01, at most 0.49, what a member accepts).
  std::string DriftBound() const;
  std::set<int> Others(const std::set<int>& of) const;
  std::string Report(const std::vector<Op>& history,
                     const std::vector<Event>& events,
                     const std::vector<Verdict>& verdicts, int64_t end_ns);

  const RunOptions& o_;
  std::mt19937_64 rng_;
  std::unique_ptr<Network> net_;
  std::vector<Member> m_;
  std::unique_ptr<Client> admin_client_;
  int64_t t0_ = 0;
  // What the timeline and the report show.
  std::vector<Period> periods_;  // nemeses
  std::vector<Period> down_;     // per member: killed, stopped, skewed
  std::vector<std::string> unexpected_exits_;
  std::vector<ServiceProc> svc_;
  std::vector<std::string> failed_awaits_;
  std::string steps_jsonl_;       // every step's start and end (steps.jsonl)
  std::vector<std::string> log_;  // what was injected, in order
};

}  // namespace quorate::chaos::internal

#endif  // QUORATE_CHAOS_RUNNER_INTERNAL_H_
