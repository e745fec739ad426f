// api/dashboard.h: what a member's /ui page shows (admin/admin_server.h),
// read from the cluster through a Client of its own: every member's view
// (role, term, mode, its links), the sessions, every shard group's map,
// the workload switches, application cards, and a timeline of what
// changed (elections, pauses and resumes, shard moves, switches, sessions).
//
// Application cards: a service publishes its own counters on the page by
// putting a flat JSON object under "quorate/dashboard/APP/NAME" (attached
// to its session's lease, so it goes when the service does). A card with
// "lease": "HEX" names that lease on the page (shard owners, sessions).
//
// The dashboard reads the cluster on a thread of its own, every
// `interval` while the page was asked for within the last minute, and
// State() answers at once with the latest reading. The timeline is what
// this member saw change between readings, from the first request on.
#ifndef QUORATE_API_DASHBOARD_H_
#define QUORATE_API_DASHBOARD_H_

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/time/time.h"
#include "quorate/client.h"
#include "quorate/shards.h"
#include "quorate/workload.h"
#include "util/mutex.h"

namespace quorate::api {

inline constexpr char kDashboardPrefix[] = "quorate/dashboard/";

// One reading of the cluster.
struct DashboardSnapshot {
  std::vector<ClusterMember> members;
  struct Lease {
    uint64_t id = 0;
    int64_t remaining_ms = 0;
    int64_t granted_ms = 0;
    uint64_t keys = 0;
  };
  std::vector<Lease> sessions;
  struct Group {
    std::string name;
    std::vector<ShardInfo> shards;
  };
  std::vector<Group> groups;
  std::vector<WorkloadState> workloads;
  std::vector<std::pair<std::string, std::string>> cards;  // key, value
  std::string error;  // what could not be read, if anything
  // Which parts were read (the others are empty).
  bool members_read = false, sessions_read = false, groups_read = false,
       workloads_read = false, cards_read = false;
};

struct TimelineEvent {
  int64_t t_ms = 0;  // wall clock, Unix milliseconds
  std::string kind;  // election, mode, shard, workload, session
  std::string text;
};

// Reads the cluster (up to 100 sessions). Returns early, with what it
// has, once `stopping` (may be empty) says so: it is asked before each
// call.
DashboardSnapshot ReadDashboard(Client* client,
                                const std::function<bool()>& stopping = {});
// What changed from `before` to `after`.
std::vector<TimelineEvent> DashboardDiff(const DashboardSnapshot& before,
                                         const DashboardSnapshot& after,
                                         int64_t t_ms);
// The /ui/state document.
std::string DashboardJson(const DashboardSnapshot& s,
                          const std::deque<TimelineEvent>& timeline,
                          const std::string& self,
                          const std::string& cluster_id, int64_t t_ms);

class Dashboard {
 public:
  Dashboard(ClientOptions options, std::string self, std::string cluster_id,
            absl::Duration interval = absl::Milliseconds(500));
  ~Dashboard();  // Stop()
  Dashboard(const Dashboard&) = delete;
  Dashboard& operator=(const Dashboard&) = delete;

  // The latest reading as JSON (at once), and a request for fresh ones.
  // Thread-safe; after Stop() it keeps answering with the last reading.
  std::string State();
  // Ends the reading thread (idempotent).
  void Stop();

 private:
  void Run();

  const ClientOptions options_;
  const std::string self_;
  const std::string cluster_id_;
  const absl::Duration interval_;
  Mutex mu_;
  CondVar wake_;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  absl::Time wanted_until_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  std::string json_ ABSL_GUARDED_BY(mu_);
  std::thread thread_;
};

}  // namespace quorate::api

#endif  // QUORATE_API_DASHBOARD_H_
