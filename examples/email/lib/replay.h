// replay.h: what an incident replay (examples/email/replay/) measured, from
// what the run left behind: the chaos run's steps (steps.jsonl), the
// processors' event logs (--event_log), the members' event logs, the
// sampler's time series (email-audit --samples) and the database.
//
// Two kinds of replay:
// - "zone-cut": one zone is cut off (a partition-zone or isolate-zone
//   step). Measured: the majority's longest wait, when the cut zone's
//   processors stopped, when every orphaned shard had a new owner, when
//   the cut zone owned shards again after the heal, when the backlog of
//   the cut was drained, and the fence refusals with their causes.
// - "outbound-flood": the smarthost stalls (marks "stall" and "unstall"),
//   an operator pauses outbound-email (mark "pause") and resumes it (mark
//   "resume"). Checked: every SMTP call ends by its deadline, none holds a
//   database connection, each shard's outbox stays within its bound,
//   inbound goes on, no session lapses, no member pauses, and the pause
//   stops every send within 1 s.
// Both: nothing lost or processed twice (the audit). Every failed check is
// a violation, named in `violations`.
#ifndef QUORATE_EMAIL_REPLAY_H_
#define QUORATE_EMAIL_REPLAY_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "db.h"
#include "store.h"

namespace quorate_email {

// One JSON object's top-level members: strings unescaped, numbers and
// booleans as written; nested objects and arrays are skipped.
using Fields = std::map<std::string, std::string>;
absl::StatusOr<Fields> ParseJsonObject(absl::string_view line);
// Every line of a JSON-lines file (NOT_FOUND if it is missing).
absl::StatusOr<std::vector<Fields>> ReadJsonLines(const std::string& path);

struct ReplayStep {
  std::string text;  // as the schedule says it: "partition-zone az-c 1m0s"
  int64_t start_ns = 0, end_ns = 0;
};

// A message's processing: its conversation row (or quarantine row).
struct ProcessedMessage {
  std::string message_id;
  int64_t shard = 0;
  int64_t accepted_ns = 0, processed_ns = 0;
  std::string processor;
};

struct RefusalRow {
  std::string processor, what, reason;
  int64_t shard = 0, epoch = 0, at_ns = 0;
};

struct ReplayInput {
  std::string kind;  // "zone-cut" or "outbound-flood"
  std::string title;
  std::vector<ReplayStep> steps;
  std::vector<Fields> events;         // the processors' (with "who")
  std::vector<Fields> member_events;  // the members' (with "id")
  std::vector<Fields> samples;        // the sampler's
  std::vector<ProcessedMessage> processed;
  std::vector<RefusalRow> refusals;
  AuditReport audit;
  int64_t outbox_limit = 256;
  absl::Duration send_timeout = absl::Seconds(10);
  // zone-cut: a majority-side wait past this is a violation (a shard held
  // up, not a slow one: the goal is a heartbeat or two).
  absl::Duration max_wait = absl::Seconds(30);
};

struct ReplayResult {
  std::string text;  // the printed report: name = value lines and notes
  std::string json;  // the same numbers as one JSON object (for medians)
  std::string html;  // a self-contained page: the table and an SVG timeline
  std::vector<std::string> violations;
  bool ok() const { return violations.empty(); }
};

ReplayResult AnalyzeReplay(const ReplayInput& in);

// Reads a replay's directory and database into an input.
absl::StatusOr<ReplayInput> LoadReplay(Db& db, const std::string& dir,
                                       const std::string& kind);

// Runs' replay.json files, named by their directories, summed up as one
// Markdown table: a column per kind of run (the directory's name without
// its trailing "-N"), a row per number, each cell the median over that
// kind's runs with the smallest and largest. Violations are summed.
std::string SummarizeReplays(
    const std::vector<std::pair<std::string, Fields>>& runs);

// One sample of the sampler (email-audit --samples): backlog, outbox
// depths and, on PostgreSQL, the example's connections by state, as one
// JSON line with "t_mono_ns".
absl::StatusOr<std::string> Sample(Db& db);

}  // namespace quorate_email

#endif  // QUORATE_EMAIL_REPLAY_H_
