// admin/admin_server.h: the admin HTTP endpoint of a member (Boost.Beast).
//
//   GET /healthz   200 "ok" while the process serves
//   GET /readyz    200 while the member is active, 503 while it is paused
//   GET /status    200, JSON: the member's view (docs/contracts.md)
//   GET /metrics   200, Prometheus text format
//   GET /ui        200, the dashboard: a self-contained page (nothing
//                  fetched from elsewhere) that polls /ui/state
//   GET /ui/state  200, JSON: what the page shows (api/dashboard.h)
// /ui and /ui/state only when the server was given a ui_state source.
// Anything else is 404 (405 for other methods). Read-only so far: write
// operations will need authentication.
//
// One thread of its own runs the listener; each connection has a deadline
// for every request, so a stuck client cannot hold it.
#ifndef QUORATE_ADMIN_ADMIN_SERVER_H_
#define QUORATE_ADMIN_ADMIN_SERVER_H_

#include <functional>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "coord/watch.h"
#include "guard/partition_guard.h"
#include "node/node.h"

namespace quorate::admin {

// What a member shows: its node's view and its guard's.
struct MemberView {
  node::NodeStatus node;
  guard::GuardStatus guard;
  int64_t now_ns = 0;  // when the guard's state was read (its clock)
  coord::WatchHub::Stats watches;
  uint64_t revision = 0;            // the store's
  uint64_t compacted_revision = 0;  // the watch history starts after it
};

// The /status document.
std::string StatusJson(const MemberView& view);
// The /metrics page (Prometheus text exposition format 0.0.4).
std::string MetricsText(const MemberView& view);
// `s` as a JSON string, quotes included.
std::string JsonQuote(absl::string_view s);
// The /ui page (admin/dashboard_page.cc).
absl::string_view DashboardPage();

class AdminServer {
 public:
  // Binds `address` (HOST:PORT; port 0 picks one) and serves the view
  // that `view` returns (called on the server's thread).
  // `ui_state` (may be empty: no /ui) answers /ui/state; it must return
  // at once (the server has one thread).
  static absl::StatusOr<std::unique_ptr<AdminServer>> Start(
      const std::string& address, std::function<MemberView()> view,
      std::function<std::string()> ui_state = nullptr);
  virtual ~AdminServer() = default;
  virtual std::string address() const = 0;  // with the port actually bound
  virtual void Stop() = 0;                  // idempotent
  // Failed accepts so far (EMFILE and the like). Each is retried after a
  // pause that doubles from 10 ms to 1 s, so the server outlives running
  // out of file descriptors. At most 64 sessions are open at once; more
  // connections are closed as they arrive.
  virtual uint64_t accept_errors() const = 0;
};

}  // namespace quorate::admin

#endif  // QUORATE_ADMIN_ADMIN_SERVER_H_
