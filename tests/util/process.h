// tests/util/process.h: child processes and their admin HTTP, for tests
// and benchmarks that run quorate-node (or a peer such as etcd) as real
// processes.
#ifndef QUORATE_TESTS_UTIL_PROCESS_H_
#define QUORATE_TESTS_UTIL_PROCESS_H_

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/time/time.h"

namespace quorate::testing {

// GET http://127.0.0.1:port/path: the body, or "" if nothing answers.
std::string HttpGet(int port, const std::string& path);
// POST with a JSON body to http://127.0.0.1:port/path: the response body.
std::string HttpPost(int port, const std::string& path,
                     const std::string& body);

// Top-level fields of a flat JSON document such as /status (the first
// occurrence of the key). "" or -1 when absent.
std::string JsonString(const std::string& doc, const std::string& key);
int64_t JsonInt(const std::string& doc, const std::string& key);

std::string ReadAll(const std::string& path);

// The admin HTTP port quorate-node printed in its log ("admin HTTP on
// HOST:PORT", on the line that says it serves), in the part of `log` from
// byte `from` on: pass the log's size from before the process started, so
// that an earlier run's line is not taken. 0 while there is none yet.
int AdminPortInLog(const std::string& log, size_t from);
// The size of the file at `path`; 0 if there is none.
size_t FileSize(const std::string& path);

// A child process, its standard output and error appended to `log`.
// Killed (SIGKILL) when destroyed if it still runs.
class Process {
 public:
  Process(const std::vector<std::string>& args, const std::string& log);
  ~Process();
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;

  bool started() const { return pid_ > 0; }
  pid_t pid() const { return pid_; }
  void Signal(int sig);
  // The exit code (128 + signal if killed); nullopt if it still runs
  // after `limit`.
  std::optional<int> Wait(absl::Duration limit);

 private:
  pid_t pid_ = -1;
  std::optional<int> exit_;
};

}  // namespace quorate::testing

#endif  // QUORATE_TESTS_UTIL_PROCESS_H_
