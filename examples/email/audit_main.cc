// email-audit: reads the email example's database (and the sink's file)
// and prints name=value lines: accepted, processed_once, quarantined,
// missing, processed_twice, replies delivered and duplicated, fence
// refusals, and more (store.h, AuditReport). Exits 0 only when nothing is
// missing, nothing was processed twice and no reply marked sent was lost;
// 1 otherwise; 2 when it cannot read what it audits. With --latency it
// also prints how long messages took from accept to conversation row.
//
//   email-audit --db=DB [--sink=FILE] [--latency]
#include <cstdio>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "lib/db.h"
#include "lib/store.h"

ABSL_FLAG(std::string, db, "", "SQLite file or postgresql:// URL");
ABSL_FLAG(std::string, sink, "", "the sink's file (optional)");
ABSL_FLAG(bool, latency, false,
          "also print latency_p50_ms, latency_p99_ms, latency_max_ms and "
          "messages_per_second (accept to conversation row)");

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  using namespace quorate_email;
  absl::StatusOr<std::unique_ptr<Db>> db = Db::Open(absl::GetFlag(FLAGS_db));
  if (!db.ok()) {
    std::fprintf(stderr, "email-audit: %s\n", db.status().ToString().c_str());
    return 2;
  }
  absl::StatusOr<AuditReport> r = Audit(**db, absl::GetFlag(FLAGS_sink));
  if (!r.ok()) {
    std::fprintf(stderr, "email-audit: %s\n", r.status().ToString().c_str());
    return 2;
  }
  std::fputs(FormatAudit(*r).c_str(), stdout);
  if (absl::GetFlag(FLAGS_latency)) {
    absl::StatusOr<LatencyReport> l = Latency(**db);
    if (!l.ok()) {
      std::fprintf(stderr, "email-audit: %s\n", l.status().ToString().c_str());
      return 2;
    }
    std::printf(
        "latency_p50_ms=%.1f\nlatency_p99_ms=%.1f\nlatency_max_ms=%.1f\n"
        "messages_per_second=%.1f\n",
        l->p50_ms, l->p99_ms, l->max_ms, l->per_second);
  }
  return r->ok() ? 0 : 1;
}
