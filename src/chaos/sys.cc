#include "chaos/sys.h"

#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"

extern char** environ;

namespace quorate::chaos {
namespace {

std::vector<char*> Pointers(std::vector<std::string>& strings) {
  std::vector<char*> out;
  for (std::string& s : strings) out.push_back(s.data());
  out.push_back(nullptr);
  return out;
}

}  // namespace

absl::StatusOr<std::string> RunCommand(const std::vector<std::string>& argv,
                                       const std::string& input) {
  int in[2], out[2];
  if (pipe2(in, O_CLOEXEC) != 0 || pipe2(out, O_CLOEXEC) != 0) {
    return absl::InternalError(absl::StrCat("pipe: ", strerror(errno)));
  }
  std::vector<std::string> args = argv;
  std::vector<char*> ptrs = Pointers(args);
  const pid_t pid = fork();
  if (pid < 0)
    return absl::InternalError(absl::StrCat("fork: ", strerror(errno)));
  if (pid == 0) {
    dup2(in[0], 0);
    dup2(out[1], 1);
    dup2(out[1], 2);
    execvp(ptrs[0], ptrs.data());
    _exit(127);
  }
  close(in[0]);
  close(out[1]);
  // Inputs are small (an nftables rule set): the pipe's buffer holds them.
  size_t off = 0;
  while (off < input.size()) {
    const ssize_t n = write(in[1], input.data() + off, input.size() - off);
    if (n <= 0) break;
    off += static_cast<size_t>(n);
  }
  close(in[1]);
  std::string output;
  char buf[4096];
  ssize_t n;
  while ((n = read(out[0], buf, sizeof buf)) > 0 || (n < 0 && errno == EINTR)) {
    if (n > 0) output.append(buf, static_cast<size_t>(n));
  }
  close(out[0]);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return output;
  return absl::InternalError(absl::StrCat(
      "'", absl::StrJoin(argv, " "), "' failed (",
      WIFEXITED(status) ? absl::StrCat("exit ", WEXITSTATUS(status))
                        : absl::StrCat("signal ", WTERMSIG(status)),
      "): ", output));
}

absl::StatusOr<pid_t> Spawn(const SpawnOptions& options) {
  if (options.argv.empty()) return absl::InvalidArgumentError("no command");
  // Everything the child needs is prepared before fork: after it, in a
  // process with threads, only async-signal-safe calls are allowed.
  std::vector<std::string> args = options.argv;
  if (args[0].find('/') == std::string::npos) {
    // A bare name is looked up in PATH, as a shell would (before fork).
    const char* path = getenv("PATH");
    for (absl::string_view dir :
         absl::StrSplit(path != nullptr ? path : "/usr/bin:/bin", ':')) {
      const std::string candidate = absl::StrCat(dir, "/", args[0]);
      if (!dir.empty() && access(candidate.c_str(), X_OK) == 0) {
        args[0] = candidate;
        break;
      }
    }
  }
  std::vector<char*> argv = Pointers(args);
  static constexpr char kExecFailed[] = "quorate-chaos: cannot execute ";
  std::map<std::string, std::string> env_map;
  for (char** e = environ; *e != nullptr; ++e) {
    const std::string kv = *e;
    const size_t eq = kv.find('=');
    if (eq != std::string::npos) env_map[kv.substr(0, eq)] = kv.substr(eq + 1);
  }
  for (const auto& [k, v] : options.env) env_map[k] = v;
  std::vector<std::string> env;
  for (const auto& [k, v] : env_map) env.push_back(absl::StrCat(k, "=", v));
  std::vector<char*> envp = Pointers(env);
  int ns_fd = -1;
  if (!options.netns.empty()) {
    const std::string path = absl::StrCat("/run/netns/", options.netns);
    ns_fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (ns_fd < 0) {
      return absl::InternalError(absl::StrCat("cannot open network namespace ",
                                              path, ": ", strerror(errno)));
    }
  }
  const int log_fd =
      options.log_path.empty()
          ? open("/dev/null", O_WRONLY | O_CLOEXEC)
          : open(options.log_path.c_str(),
                 O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (log_fd < 0) {
    if (ns_fd >= 0) close(ns_fd);
    return absl::InternalError(absl::StrCat("cannot open '", options.log_path,
                                            "': ", strerror(errno)));
  }
  const pid_t pid = fork();
  if (pid == 0) {
    setpgid(0, 0);
    if (ns_fd >= 0 && setns(ns_fd, CLONE_NEWNET) != 0) _exit(126);
    dup2(log_fd, 1);
    dup2(log_fd, 2);
    const int null_fd = open("/dev/null", O_RDONLY);
    if (null_fd >= 0) dup2(null_fd, 0);
    execve(argv[0], argv.data(), envp.data());
    // Said in the process's log (write(2) is async-signal-safe).
    if (write(2, kExecFailed, sizeof kExecFailed - 1) < 0 ||
        write(2, argv[0], strlen(argv[0])) < 0 || write(2, "\n", 1) < 0) {
      _exit(127);
    }
    _exit(127);
  }
  if (ns_fd >= 0) close(ns_fd);
  close(log_fd);
  if (pid < 0)
    return absl::InternalError(absl::StrCat("fork: ", strerror(errno)));
  setpgid(pid, pid);  // also here, so no signal can race the child's own
  return pid;
}

void KillAndReap(pid_t pid) {
  if (pid <= 0) return;
  kill(-pid, SIGKILL);
  kill(pid, SIGKILL);
  while (waitpid(pid, nullptr, 0) < 0 && errno == EINTR) {
  }
}

bool Exited(pid_t pid, int* status) {
  return waitpid(pid, status, WNOHANG) == pid;
}

}  // namespace quorate::chaos
