#include "runtime.h"

#include <signal.h>

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

}  // namespace quorate_email
