// Links the installed component fence_postgres the way a service would.
// No server runs here: a connection that could not be made is refused as
// UNAVAILABLE, and a fence without a holder's epoch as INVALID_ARGUMENT.
#include <libpq-fe.h>

#include <iostream>

#include "quorate/fence_postgres.h"

int main() {
  PGconn* conn = PQconnectdb("host=/nonexistent-quorate-consumer dbname=x");
  const absl::Status broken =
      quorate::FencePostgres(conn, quorate::ShardFence("mailboxes", 7, 2));
  const absl::Status invalid =
      quorate::FencePostgres(conn, quorate::ShardFence("mailboxes", 7, 0));
  PQfinish(conn);
  std::cout << "fence_postgres: " << broken << "\n";
  return absl::IsUnavailable(broken) && absl::IsInvalidArgument(invalid) ? 0
                                                                         : 1;
}
