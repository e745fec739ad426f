// tests/util/pg_server.h: a private PostgreSQL server for tests and
// benchmarks. Debian's server binaries (package postgresql) create a
// cluster in a temporary directory (initdb) and serve it on a Unix socket
// in that directory only: no TCP port, nothing shared with another test or
// with the package's own cluster, which is never started. Stopped and
// removed when destroyed.
//
// PostgreSQL refuses to run as root. Under root (CI), the server runs as
// the unprivileged user `postgres` (made by the Debian package), else
// `nobody`; the test process connects through the socket as database user
// `quorate` (trust authentication, on the private socket only).
#ifndef QUORATE_TESTS_UTIL_PG_SERVER_H_
#define QUORATE_TESTS_UTIL_PG_SERVER_H_

#include <sys/types.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace quorate::testing {

class PgServer {
 public:
  // The directory of Debian's PostgreSQL server binaries (the newest
  // version installed); "" if there are none. Tests skip, saying so in
  // one line, when this is "".
  static std::string BinDir();
  // initdb and start. `settings` go to the server's command line as
  // "-c name=value" pairs, e.g. {"fsync=off"}.
  static absl::StatusOr<std::unique_ptr<PgServer>> Start(
      const std::vector<std::string>& settings = {});
  ~PgServer();
  PgServer(const PgServer&) = delete;
  PgServer& operator=(const PgServer&) = delete;

  // libpq's connection string for `database`.
  std::string Conninfo(absl::string_view database = "postgres") const;
  // The same as a postgresql:// URL (the socket directory
  // percent-encoded), for programs that take only URLs.
  std::string Url(absl::string_view database = "postgres") const;
  // Creates a database of that name (an error if it cannot).
  absl::Status CreateDatabase(absl::string_view name) const;

 private:
  PgServer() = default;

  std::string bin_;
  std::string dir_;  // the temporary directory: data/, the socket, log
  uid_t uid_ = 0;    // the server's user (that of this process unless root)
  gid_t gid_ = 0;
  bool started_ = false;
};

}  // namespace quorate::testing

#endif  // QUORATE_TESTS_UTIL_PG_SERVER_H_
