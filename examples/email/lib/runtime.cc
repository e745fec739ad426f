#include "runtime.h"

#include <fcntl.h>
#include <signal.h>
#include <time.h>
#include <unistd.h>

#include <condition_variable>
#include <cstdio>
#include <mutex>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

namespace quorate_email {
namespace {

std::mutex g_mu;
std::condition_variable g_stopped;
bool g_stop = false;
std::string g_name = "email";

}  // namespace

void InstallStopSignals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  std::thread([set] {
    int sig = 0;
    sigwait(&set, &sig);
    std::lock_guard<std::mutex> lock(g_mu);
    g_stop = true;
    g_stopped.notify_all();
  }).detach();
}

bool StopRequested() {
  std::lock_guard<std::mutex> lock(g_mu);
  return g_stop;
}

bool WaitForStop(absl::Duration limit) {
  std::unique_lock<std::mutex> lock(g_mu);
  return g_stopped.wait_for(lock, absl::ToChronoNanoseconds(limit),
                            [] { return g_stop; });
}

void SetLogName(absl::string_view name) {
  std::lock_guard<std::mutex> lock(g_mu);
  g_name = std::string(name);
}

void Log(absl::string_view text) {
  std::string name;
  {
    std::lock_guard<std::mutex> lock(g_mu);
    name = g_name;
  }
  std::string line = absl::StrCat(
      name, " ",
      absl::FormatTime("%H:%M:%E3S", absl::Now(), absl::LocalTimeZone()), " ",
      text, "\n");
  std::fwrite(line.data(), 1, line.size(), stderr);
  std::fflush(stderr);
}

namespace {
int g_event_fd = -1;
std::string g_event_who;  // as JSON, quoted
}  // namespace

void OpenEventLog(const std::string& path, absl::string_view who) {
  if (path.empty()) return;
  g_event_fd =
      ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (g_event_fd < 0) {
    Log(absl::StrCat("cannot open the event log ", path));
    return;
  }
  std::string quoted = "\"";
  for (char c : who) {
    if (c == '"' || c == '\\') quoted += '\\';
    if (static_cast<unsigned char>(c) >= 0x20) quoted += c;
  }
  g_event_who = quoted + "\"";
}

void Event(absl::string_view event, absl::string_view fields) {
  if (g_event_fd < 0) return;
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  const int64_t now = int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
  std::string line = absl::StrCat(
      "{\"t_mono_ns\": ", now, ", \"who\": ", g_event_who, ", \"event\": \"",
      event, "\"", fields.empty() ? "" : ", ", fields, "}\n");
  // O_APPEND: a whole line per write, even from several threads.
  if (::write(g_event_fd, line.data(), line.size()) < 0) return;
}

}  // namespace quorate_email
