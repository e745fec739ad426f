// chaos/sys.h: the processes and commands a chaos run drives.
#ifndef QUORATE_CHAOS_SYS_H_
#define QUORATE_CHAOS_SYS_H_

#include <sys/types.h>

#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace quorate::chaos {

// Runs argv[0] (searched in PATH) to completion, with `input` on its
// standard input. Its output, or an error holding the command, its exit
// status and its output.
absl::StatusOr<std::string> RunCommand(const std::vector<std::string>& argv,
                                       const std::string& input = "");

struct SpawnOptions {
  std::vector<std::string> argv;
  std::map<std::string, std::string> env;  // added to this process's
  std::string netns;     // a name under /run/netns, or "" for this one
  std::string log_path;  // standard output and error, appended
};

// Starts a process in its own process group. The child enters `netns`
// before it runs the program, so the pid is the program's own.
absl::StatusOr<pid_t> Spawn(const SpawnOptions& options);

// Kills (SIGKILL) and reaps a process started by Spawn, with its group.
void KillAndReap(pid_t pid);

// Whether a child started by Spawn has exited (reaping it if so).
bool Exited(pid_t pid, int* status);

}  // namespace quorate::chaos

#endif  // QUORATE_CHAOS_SYS_H_
