// email-audit: reads the email example's database (and the sink's file)
// and prints name=value lines: accepted, processed_once, quarantined,
// missing, processed_twice, replies delivered and duplicated, fence
// refusals, and more (store.h, AuditReport). Exits 0 only when nothing is
// missing, nothing was processed twice and no reply marked sent was lost;
// 1 otherwise; 2 when it cannot read what it audits.
//
//   email-audit --db=DB [--sink=FILE]
#include <cstdio>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "lib/db.h"
#include "lib/store.h"

ABSL_FLAG(std::string, db, "", "SQLite file or postgresql:// URL");
ABSL_FLAG(std::string, sink, "", "the sink's file (optional)");

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
  return r->ok() ? 0 : 1;
}
