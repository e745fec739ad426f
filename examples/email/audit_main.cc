// email-audit: reads the email example's database (and the sink's file)
// and prints name=value lines: accepted, processed_once, quarantined,
// missing, processed_twice, replies delivered and duplicated, fence
// refusals, and more (store.h, AuditReport). Exits 0 only when nothing is
// missing, nothing was processed twice and no reply marked sent was lost;
// 1 otherwise; 2 when it cannot read what it audits. With --latency it
// also prints how long messages took from accept to conversation row.
//
//   email-audit --db=DB [--sink=FILE] [--latency]
//
// For the incident replays (examples/email/replay/, lib/replay.h):
//   email-audit --db=DB --drained [--min_accepted=N]
//       exit 0 when nothing waits (no inbound message unprocessed, no reply
//       pending) and at least N messages were accepted, 1 otherwise
//   email-audit --db=DB --samples=FILE [--sample_interval=250ms]
//       appends a sample (backlog, outbox depths, PostgreSQL connections by
//       state) every interval until SIGTERM
//   email-audit --db=DB --sink=FILE --replay=DIR --kind=zone-cut|outbound-flood
//               [--outbox_limit=N] [--send_timeout=D]
//       the replay's report: printed, and written to DIR/replay.txt,
//       DIR/replay.json and DIR/replay.html (the table and a timeline);
//       exit 1 on any violation
#include <cstdio>
#include <fstream>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "lib/db.h"
#include "lib/replay.h"
#include "lib/runtime.h"
#include "lib/store.h"

ABSL_FLAG(std::string, db, "", "SQLite file or postgresql:// URL");
ABSL_FLAG(std::string, sink, "", "the sink's file (optional)");
ABSL_FLAG(bool, latency, false,
          "also print latency_p50_ms, latency_p99_ms, latency_max_ms and "
          "messages_per_second (accept to conversation row)");
ABSL_FLAG(bool, drained, false,
          "only say (exit status) whether nothing waits: 0 drained, 1 not");
ABSL_FLAG(int64_t, min_accepted, 0,
          "with --drained: not drained before this many messages were "
          "accepted (a generator still sending)");
ABSL_FLAG(std::string, samples, "",
          "append a sample to this file every --sample_interval until "
          "SIGTERM");
ABSL_FLAG(absl::Duration, sample_interval, absl::Milliseconds(250),
          "how often to sample");
ABSL_FLAG(std::string, replay, "",
          "a replay's directory (quorate-chaos --out): report on it");
ABSL_FLAG(std::string, kind, "", "the replay: zone-cut or outbound-flood");
ABSL_FLAG(std::string, summarize, "",
          "replay directories, comma-separated: their replay.json as one "
          "table of medians (no database needed)");
ABSL_FLAG(int64_t, outbox_limit, 256, "the processors' --outbox_limit");
ABSL_FLAG(absl::Duration, send_timeout, absl::Seconds(10),
          "the processors' --send_timeout");
ABSL_FLAG(absl::Duration, max_wait, absl::Seconds(30),
          "zone-cut: the longest a message may wait on a majority-side "
          "shard");

namespace quorate_email {
namespace {

int Fail(const absl::Status& s) {
  std::fprintf(stderr, "email-audit: %s\n", s.ToString().c_str());
  return 2;
}

int Drained(Db& db) {
  absl::StatusOr<std::vector<Row>> rows = db.Query(
      "SELECT (SELECT count(*) FROM inbound WHERE processed_by IS NULL), "
      "(SELECT count(*) FROM outbox WHERE state = 'pending'), "
      "(SELECT count(*) FROM inbound)");
  if (!rows.ok()) return Fail(rows.status());
  const int64_t inbound = AsInt((*rows)[0][0]), outbox = AsInt((*rows)[0][1]),
                accepted = AsInt((*rows)[0][2]);
  std::printf("backlog=%lld outbox_pending=%lld accepted=%lld\n",
              static_cast<long long>(inbound), static_cast<long long>(outbox),
              static_cast<long long>(accepted));
  return inbound == 0 && outbox == 0 &&
                 accepted >= absl::GetFlag(FLAGS_min_accepted)
             ? 0
             : 1;
}

int Samples(Db& db, const std::string& path) {
  InstallStopSignals();
  std::ofstream out(path, std::ios::app);
  if (!out)
    return Fail(absl::NotFoundError(absl::StrCat("cannot open ", path)));
  const absl::Duration every = absl::GetFlag(FLAGS_sample_interval);
  while (!WaitForStop(every)) {
    absl::StatusOr<std::string> line = Sample(db);
    if (!line.ok()) {
      // The database may be out of reach for a while (a cut): note it.
      Log(absl::StrCat("sample: ", line.status().ToString()));
      continue;
    }
    out << *line << "\n" << std::flush;
  }
  return 0;
}

int Replay(Db& db, const std::string& dir) {
  absl::StatusOr<ReplayInput> in =
      LoadReplay(db, dir, absl::GetFlag(FLAGS_kind));
  if (!in.ok()) return Fail(in.status());
  absl::StatusOr<AuditReport> audit = Audit(db, absl::GetFlag(FLAGS_sink));
  if (!audit.ok()) return Fail(audit.status());
  in->audit = *audit;
  in->outbox_limit = absl::GetFlag(FLAGS_outbox_limit);
  in->send_timeout = absl::GetFlag(FLAGS_send_timeout);
  in->max_wait = absl::GetFlag(FLAGS_max_wait);
  const ReplayResult r = AnalyzeReplay(*in);
  std::fputs(r.text.c_str(), stdout);
  std::ofstream(dir + "/replay.txt") << r.text;
  std::ofstream(dir + "/replay.json") << r.json;
  std::ofstream(dir + "/replay.html") << r.html;
  return r.ok() ? 0 : 1;
}

int Summarize(const std::string& dirs) {
  std::vector<std::pair<std::string, Fields>> runs;
  int missing = 0;
  for (absl::string_view dir : absl::StrSplit(dirs, ',', absl::SkipEmpty())) {
    absl::StatusOr<std::vector<Fields>> lines =
        ReadJsonLines(absl::StrCat(dir, "/replay.json"));
    if (!lines.ok() || lines->empty()) {
      std::fprintf(stderr, "email-audit: %.*s has no report\n",
                   static_cast<int>(dir.size()), dir.data());
      ++missing;
      continue;
    }
    runs.emplace_back(std::string(dir), (*lines)[0]);
  }
  std::fputs(SummarizeReplays(runs).c_str(), stdout);
  return missing == 0 ? 0 : 1;
}

int Main() {
  if (!absl::GetFlag(FLAGS_summarize).empty()) {
    return Summarize(absl::GetFlag(FLAGS_summarize));
  }
  absl::StatusOr<std::unique_ptr<Db>> db = Db::Open(absl::GetFlag(FLAGS_db));
  if (!db.ok()) return Fail(db.status());
  if (absl::GetFlag(FLAGS_drained)) return Drained(**db);
  if (!absl::GetFlag(FLAGS_samples).empty()) {
    return Samples(**db, absl::GetFlag(FLAGS_samples));
  }
  if (!absl::GetFlag(FLAGS_replay).empty()) {
    return Replay(**db, absl::GetFlag(FLAGS_replay));
  }
  absl::StatusOr<AuditReport> r = Audit(**db, absl::GetFlag(FLAGS_sink));
  if (!r.ok()) return Fail(r.status());
  std::fputs(FormatAudit(*r).c_str(), stdout);
  if (absl::GetFlag(FLAGS_latency)) {
    absl::StatusOr<LatencyReport> l = Latency(**db);
    if (!l.ok()) return Fail(l.status());
    std::printf(
        "latency_p50_ms=%.1f\nlatency_p99_ms=%.1f\nlatency_max_ms=%.1f\n"
        "messages_per_second=%.1f\n",
        l->p50_ms, l->p99_ms, l->max_ms, l->per_second);
  }
  return r->ok() ? 0 : 1;
}

}  // namespace
}  // namespace quorate_email

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  return quorate_email::Main();
}
