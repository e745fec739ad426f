// quorate/workload.h: workload switches. An operator stops one kind of
// work (outbound email, say) across every processor at once, and starts
// it again, without touching the processors:
//
//   quoratectl pause outbound-email --reason="queue flood, incident 2041"
//   quoratectl resume outbound-email
//
// A processor checks its switch before each unit of work:
//
//   auto sw = quorate::WorkloadSwitch::Create(client, session,
//   "outbound-email", {}); while (...) {
//     if (!(*sw)->Running()) { wait; continue; }   // paused, or cut off
//     send_one();
//   }
//
// Running() is true only while the switch is on *and* the session is
// valid, so a processor cut off from the cluster (which cannot learn of a
// pause) stops by itself, at its session's deadline: it fails closed. A
// switch learns of changes through a watch: a pause reaches every
// connected processor within a round trip (well under a second).
//
// A switch that was never set is on. The state lives in the cluster's
// key-value store under "quorate/workload/NAME".
//
// Thread-safe. The Client and the Session must outlive a WorkloadSwitch.
#ifndef QUORATE_WORKLOAD_H_
#define QUORATE_WORKLOAD_H_

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "quorate/client.h"

namespace quorate {

struct WorkloadState {
  std::string name;
  bool running = true;
  std::string reason;  // the pause's, when paused
};

// Pause (with a reason, which may be empty) and resume: INVALID_ARGUMENT
// for a name that is empty or has a '/' or a NUL, or a reason over 1 KiB
// or of more than one line; the Client's errors otherwise.
absl::Status PauseWorkload(Client* client, absl::string_view name,
                           absl::string_view reason);
absl::Status ResumeWorkload(Client* client, absl::string_view name);
// Every workload ever switched, by name (a linearizable read).
absl::StatusOr<std::vector<WorkloadState>> ListWorkloads(Client* client);

struct WorkloadSwitchOptions {
  // Called on the switch's own thread, in order, never under a lock, when
  // the switch is turned (not when the session ends: watch
  // Session::Done() for that).
  std::function<void(const WorkloadState& state)> on_change;
};

class WorkloadSwitch {
 public:
  // Reads the switch, then watches it. INVALID_ARGUMENT for a bad name.
  static absl::StatusOr<std::unique_ptr<WorkloadSwitch>> Create(
      Client* client, Session* session, absl::string_view name,
      WorkloadSwitchOptions options);
  virtual ~WorkloadSwitch() = default;  // stops the watch

  // On, and the session valid: a few atomic loads and a clock read.
  virtual bool Running() const = 0;
  // The switch as last seen (whatever the session says).
  virtual WorkloadState state() const = 0;
};

}  // namespace quorate

#endif  // QUORATE_WORKLOAD_H_
