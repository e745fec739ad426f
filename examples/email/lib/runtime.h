// runtime.h: what every process of the email example needs around its
// work: a stop on SIGINT/SIGTERM, and log lines on stderr.
#ifndef QUORATE_EMAIL_RUNTIME_H_
#define QUORATE_EMAIL_RUNTIME_H_

#include <string>

#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace quorate_email {

// Blocks SIGINT and SIGTERM in the calling thread (call it first in main,
// before any thread starts, so every thread inherits the mask) and starts
// a thread that waits for them.
void InstallStopSignals();
// True once SIGINT or SIGTERM arrived.
bool StopRequested();
// Waits up to `limit` for a stop; true if one came.
bool WaitForStop(absl::Duration limit);

// One line on stderr: "<program> <time> <text>".
void Log(absl::string_view text);
void SetLogName(absl::string_view name);

// Machine-readable events, one JSON object per line, appended to a file
// (the incident replays read them: examples/email/replay/): each line is
//   {"t_mono_ns": N, "who": "NAME", "event": "EVENT", <fields>}
// with `fields` already JSON (`"shard": 3, "epoch": 7`, or empty). Opened
// once (no path: events go nowhere); Event() is safe from any thread, and
// each line reaches the file in one write.
void OpenEventLog(const std::string& path, absl::string_view who);
void Event(absl::string_view event, absl::string_view fields = "");

}  // namespace quorate_email

#endif  // QUORATE_EMAIL_RUNTIME_H_
